/*
** core/sha256.h -- SHA-256 (FIPS 180-4) through OpenSSL's libcrypto.
**
** libcrypto is linked already (the SMS adapter's https); its SHA-256 uses
** the processor's SHA instructions where there are some (x86 SHA-NI, ARMv8
** crypto) and is several times faster than libsodium's portable one, which
** every hash here went through before (docs/performance.md, "Session 9":
** a registry file, its records' keys, the audit chain, ledger fingerprints).
** libsodium stays for what it is there for: password hashing, HMAC tokens,
** keyed BLAKE2b, random bytes.
**
** One thread: the one-shot functions reuse one context. Out of memory
** aborts, as core/mem.h's allocators do.
*/
#ifndef RV_CORE_SHA256_H
#define RV_CORE_SHA256_H

#include <stddef.h>

#define RV_SHA256_BYTES 32

/* out = SHA-256(buf[0..n)) */
void rv_sha256(const void *buf, size_t n, unsigned char out[RV_SHA256_BYTES]);
/* the same as 64 lower-case hex digits and a NUL */
void rv_sha256_hex(const void *buf, size_t n, char out[2 * RV_SHA256_BYTES + 1]);

/* A digest over several pieces: begin, add any number of times, end
** (which writes the digest and frees the context). */
typedef struct rv_sha256_ctx rv_sha256_ctx;
rv_sha256_ctx *rv_sha256_begin(void);
void rv_sha256_add(rv_sha256_ctx *c, const void *buf, size_t n);
void rv_sha256_end(rv_sha256_ctx *c, unsigned char out[RV_SHA256_BYTES]);

#endif
