/*
** core/mem.h -- allocation, and a few string helpers. rv_malloc & co.
** abort the process on exhaustion with a message: the engine runs on one
** loop thread and has no meaningful way to continue a half-applied command
** without memory;
** SQLite's transaction guarantees that nothing partial is committed.
** Memory bounds for untrusted content (Lua) are enforced separately.
*/
#ifndef RV_CORE_MEM_H
#define RV_CORE_MEM_H
#include <stddef.h>

void *rv_malloc(size_t n);
void *rv_calloc(size_t n, size_t sz);
void *rv_realloc(void *p, size_t n);
char *rv_strdup(const char *s);            /* NULL in, NULL out */
char *rv_strndup(const char *s, size_t n);
char *rv_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* snprintf(dst, cap, "%s", src) without the format machinery (cap > 0;
** src NULL copies ""): at most cap - 1 bytes and a NUL. Returns the bytes
** copied. */
size_t rv_strcpy_to(char *dst, size_t cap, const char *src);
/* FNV-1a of a string, for the small hash tables (rate limiter buckets,
** the sms recorder's keys). */
unsigned rv_str_hash(const char *s);
#define rv_free free
#include <stdlib.h>

#endif
