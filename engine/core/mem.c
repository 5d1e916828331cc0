/* core/mem.c -- aborting allocators (see mem.h for why). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "core/mem.h"

static void *oom(size_t n){
  fprintf(stderr, "ravand: out of memory (%zu bytes)\n", n);
  abort();
}
void *rv_malloc(size_t n){
  void *p = malloc(n ? n : 1);
  return p ? p : oom(n);
}
void *rv_calloc(size_t n, size_t sz){
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  return p ? p : oom(n * sz);
}
void *rv_realloc(void *p, size_t n){
  void *q = realloc(p, n ? n : 1);
  return q ? q : oom(n);
}
char *rv_strdup(const char *s){
  return s ? rv_strndup(s, strlen(s)) : NULL;
}
char *rv_strndup(const char *s, size_t n){
  char *p;
  if (s == NULL) return NULL;
  p = rv_malloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}
size_t rv_strcpy_to(char *dst, size_t cap, const char *src){
  size_t n = src ? strnlen(src, cap - 1) : 0;
  memcpy(dst, src ? src : "", n);
  dst[n] = 0;
  return n;
}
unsigned rv_str_hash(const char *s){
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}
char *rv_asprintf(const char *fmt, ...){
  va_list ap, ap2;
  char tmp[256];
  int n;
  char *p;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) { va_end(ap2); return rv_strdup(""); }
  if ((size_t)n < sizeof tmp) { va_end(ap2); return rv_strndup(tmp, (size_t)n); }
  p = rv_malloc((size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

/*--- The small-block pool -------------------------------------------------*/

/* SQLite (Debian's is built without lookaside memory) and cJSON allocate
** and free a few hundred small blocks per command: a parsed state of 2 KB
** is ~200 of them, a statement's cursors and records ~30. Freed blocks of
** up to POOL_MAX bytes wait here, one list per 16-byte size, for the next
** block of their size; larger ones go back to malloc. Each block carries
** an 8-byte header holding its size (SQLite's xSize needs it; cJSON's free
** gets only the pointer). The lists grow to the peak of small blocks in
** use at once and are not trimmed. The engine runs on one thread (the
** loop), so the lists take no lock.
**
** Under AddressSanitizer nothing is kept (RV_POOL_MAX 0, mem.h): every block is
** malloc'd and freed at once, so use after free is still seen -- and so is
** a block freed through the wrong function, as the header moves the
** pointer off malloc's (free() of a pool block, rv_pool_free() of a
** malloc'd one). */
#define POOL_MAX   RV_POOL_MAX
#define POOL_STEP  16
typedef union pool_blk { union pool_blk *next; size_t size; } pool_blk;
static pool_blk *pool_lists[POOL_MAX / POOL_STEP + 1];

/* SIZE_MAX for a size no block can have (rounding it up would wrap to a
** small one): rv_pool_alloc then fails as malloc would. */
static inline size_t pool_round(size_t n){
  if (n == 0) n = 1;
  if (n > SIZE_MAX / 2) return SIZE_MAX;
  return n <= POOL_MAX ? (n + POOL_STEP - 1) / POOL_STEP * POOL_STEP : (n + 7) / 8 * 8;
}

size_t rv_pool_round(size_t n){ return pool_round(n); }

void *rv_pool_alloc(size_t n){
  size_t r = pool_round(n);
  pool_blk *b = r <= POOL_MAX ? pool_lists[r / POOL_STEP] : NULL;
  if (b) pool_lists[r / POOL_STEP] = b->next;
  else if (r > SIZE_MAX - sizeof *b || (b = malloc(sizeof *b + r)) == NULL) return NULL;
  b->size = r;
  return b + 1;
}

void rv_pool_free(void *p){
  pool_blk *b;
  if (p == NULL) return;
  b = (pool_blk *)p - 1;
  if (b->size <= POOL_MAX) {
    size_t k = b->size / POOL_STEP;
    b->next = pool_lists[k];
    pool_lists[k] = b;
  } else {
    free(b);
  }
}

size_t rv_pool_size(const void *p){
  return p ? ((const pool_blk *)p - 1)->size : 0;
}

void *rv_pool_realloc(void *p, size_t n){
  void *q;
  if (p == NULL) return rv_pool_alloc(n);
  if (pool_round(n) <= rv_pool_size(p)) return p;
  if ((q = rv_pool_alloc(n)) == NULL) return NULL;
  memcpy(q, p, rv_pool_size(p));
  rv_pool_free(p);
  return q;
}
