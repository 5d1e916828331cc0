/* core/buf.c -- capped growable string. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/buf.h"
#include "core/mem.h"

void rv_buf_init(rv_buf *b, size_t max){
  b->p = NULL; b->len = b->cap = 0; b->toobig = false;
  b->max = max ? max : (size_t)64 << 20;
}
void rv_buf_fini(rv_buf *b){
  rv_free(b->p);
  b->p = NULL; b->len = b->cap = 0;
}
bool rv_buf_add_slow(rv_buf *b, const char *s, size_t n){
  if (b->toobig) return false;
  if (b->len + n + 1 > b->max) { b->toobig = true; return false; }
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 64;
    while (nc < b->len + n + 1) nc *= 2;
    if (nc > b->max) nc = b->max;
    b->p = rv_realloc(b->p, nc);
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
  return true;
}
bool rv_buf_adds(rv_buf *b, const char *s){ return rv_buf_add(b, s, strlen(s)); }
bool rv_buf_printf(rv_buf *b, const char *fmt, ...){
  char tmp[512];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return false;
  if ((size_t)n < sizeof tmp) return rv_buf_add(b, tmp, (size_t)n);
  {
    char *big = rv_malloc((size_t)n + 1);
    bool ok;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ok = rv_buf_add(b, big, (size_t)n);
    rv_free(big);
    return ok;
  }
}
bool rv_buf_add_int(rv_buf *b, long long v){
  char tmp[24];
  int i = (int)sizeof tmp;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) tmp[--i] = '-';
  return rv_buf_add(b, tmp + i, sizeof tmp - (size_t)i);
}
char *rv_buf_take(rv_buf *b){
  char *p = b->p ? b->p : rv_strdup("");
  b->p = NULL; b->len = b->cap = 0; b->toobig = false;
  return p;
}
