/*
** api/ratelimit.c -- token buckets keyed by address or principal.
**
** A bucket holds up to burst*rate tokens and refills at rate per second;
** a request takes one. The table is open-addressed with a fixed capacity:
** when it fills, buckets that have refilled completely (idle keys, the
** same as absent ones) are swept out; if none has, the new key is refused
** (fail closed -- the connection cap keeps honest traffic far below it).
*/
#include <string.h>
#include <time.h>
#include "api/api_int.h"
#include "core/mem.h"

typedef struct bucket {
  char    key[72];      /* "" = empty slot */
  double  tokens;
  int64_t at_ns;
} bucket;

struct rv_rl {
  double  rate, cap;
  int     n, used;
  bucket *b;
};

int64_t rv__mono_ns(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

rv_rl *rv__rl_new(double rate, double burst, int capacity){
  rv_rl *rl;
  if (rate < 0) return NULL;      /* unlimited */
  rl = rv_calloc(1, sizeof *rl);
  rl->rate = rate;
  rl->cap = rate * (burst > 0 ? burst : 2);
  if (rl->cap < 1) rl->cap = 1;
  rl->n = capacity;
  rl->b = rv_calloc((size_t)capacity, sizeof *rl->b);
  return rl;
}

void rv__rl_free(rv_rl *rl){
  if (rl == NULL) return;
  rv_free(rl->b);
  rv_free(rl);
}

static double level(const rv_rl *rl, const bucket *b, int64_t now){
  double t = b->tokens + rl->rate * (double)(now - b->at_ns) / 1e9;
  return t > rl->cap ? rl->cap : t;
}

/* Rebuild without the buckets that are full again. */
static void sweep(rv_rl *rl, int64_t now){
  bucket *old = rl->b;
  int n = rl->n;
  rl->b = rv_calloc((size_t)n, sizeof *rl->b);
  rl->used = 0;
  for (int i = 0; i < n; i++) {
    uint32_t h;
    if (!old[i].key[0] || level(rl, &old[i], now) >= rl->cap) continue;
    h = rv_str_hash(old[i].key) % (uint32_t)n;
    while (rl->b[h].key[0]) h = (h + 1) % (uint32_t)n;
    rl->b[h] = old[i];
    rl->used++;
  }
  rv_free(old);
}

bool rv__rl_take(rv_rl *rl, const char *key, int64_t now, int *retry_s){
  uint32_t h;
  bucket *b = NULL;
  if (retry_s) *retry_s = 0;
  if (rl == NULL) return true;
  for (int pass = 0; pass < 2 && b == NULL; pass++) {
    h = rv_str_hash(key) % (uint32_t)rl->n;
    for (int probes = 0; probes < rl->n; probes++, h = (h + 1) % (uint32_t)rl->n) {
      if (strncmp(rl->b[h].key, key, sizeof rl->b[h].key - 1) == 0 && rl->b[h].key[0]) { b = &rl->b[h]; break; }
      if (!rl->b[h].key[0]) {
        if (rl->used * 4 >= rl->n * 3) break;      /* 75% full: sweep, then retry */
        b = &rl->b[h];
        snprintf(b->key, sizeof b->key, "%s", key);
        b->tokens = rl->cap;
        b->at_ns = now;
        rl->used++;
        break;
      }
    }
    if (b == NULL && pass == 0) sweep(rl, now);
  }
  if (b == NULL) { if (retry_s) *retry_s = 1; return false; }
  b->tokens = level(rl, b, now);
  b->at_ns = now;
  if (b->tokens < 1) {
    if (retry_s) *retry_s = (int)((1 - b->tokens) / rl->rate) + 1;
    return false;
  }
  b->tokens -= 1;
  return true;
}
