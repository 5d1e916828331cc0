/*
** core/buf.h -- a growable string with a cap (curl's dynbuf idea).
*/
#ifndef RV_CORE_BUF_H
#define RV_CORE_BUF_H
#include <stddef.h>
#include <stdbool.h>
#include <string.h>

typedef struct rv_buf {
  char  *p;        /* always NUL-terminated when len > 0 or after init */
  size_t len, cap, max;
  bool   toobig;   /* set once an append would pass max; later appends no-op */
} rv_buf;

void rv_buf_init(rv_buf *b, size_t max);   /* max 0 = 64 MiB */
void rv_buf_fini(rv_buf *b);
bool rv_buf_add_slow(rv_buf *b, const char *s, size_t n);
/* Append n bytes (inline when they fit: the JSON and history writers
** append a few bytes at a time). */
static inline bool rv_buf_add(rv_buf *b, const char *s, size_t n){
  if (!b->toobig && b->len + n + 1 <= b->cap) {
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
  }
  return rv_buf_add_slow(b, s, n);
}
bool rv_buf_adds(rv_buf *b, const char *s);
bool rv_buf_printf(rv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Decimal integer (no printf). */
bool rv_buf_add_int(rv_buf *b, long long v);
/* Returns the string and resets b; caller frees. */
char *rv_buf_take(rv_buf *b);

#endif
