/* core/mem.c -- aborting allocators (see mem.h for why). */
#include <stdarg.h>
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
