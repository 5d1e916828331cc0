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

/* Small blocks kept for reuse (mem.c, "The small-block pool"): SQLite's
** allocations (store.c) and cJSON's (json.c) come from here. A block from
** rv_pool_alloc goes back through rv_pool_free only -- never free(), and
** rv_pool_free takes nothing else (under AddressSanitizer every block is
** its own malloc, so a mix-up is reported there). One thread only. */
/* RV_ASAN: built with AddressSanitizer -- GCC says so with
** __SANITIZE_ADDRESS__, clang (14) only through __has_feature, and the
** fuzzers are built with clang: with the pool on they could not see a
** block used after it was freed (session 9: fuzz_recording missed one). */
#if defined(__SANITIZE_ADDRESS__)
#define RV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RV_ASAN 1
#endif
#endif
#if defined(RV_ASAN)
#define RV_POOL_MAX 0                       /* nothing kept: sizes rounded to 8 */
#else
#define RV_POOL_MAX 1024                    /* up to here, sizes rounded to 16 */
#endif
void  *rv_pool_alloc(size_t n);             /* NULL when out of memory */
void   rv_pool_free(void *p);               /* NULL is fine */
void  *rv_pool_realloc(void *p, size_t n);
size_t rv_pool_size(const void *p);         /* the usable size (0 for NULL) */
size_t rv_pool_round(size_t n);             /* what rv_pool_alloc(n) gives */

#endif
