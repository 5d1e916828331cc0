/* core/sha256.c -- see sha256.h. */
#include <stdio.h>
#include <stdlib.h>
#include <openssl/evp.h>
#include "core/sha256.h"

static void fail(const char *what){
  fprintf(stderr, "ravand: SHA-256: %s failed (out of memory?)\n", what);
  abort();
}

/* The algorithm, looked up once: with OpenSSL 3 every EVP_sha256() init
** would look it up again. */
static const EVP_MD *sha256_md(void){
  static const EVP_MD *md;
  if (md == NULL) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    md = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    md = EVP_sha256();
#endif
    if (md == NULL) fail("looking up the algorithm");
  }
  return md;
}

struct rv_sha256_ctx { EVP_MD_CTX *x; };

static void ctx_init(EVP_MD_CTX *x){
  if (EVP_DigestInit_ex(x, sha256_md(), NULL) != 1) fail("init");
}

static void ctx_final(EVP_MD_CTX *x, unsigned char out[RV_SHA256_BYTES]){
  unsigned len = 0;
  if (EVP_DigestFinal_ex(x, out, &len) != 1 || len != RV_SHA256_BYTES) fail("final");
}

rv_sha256_ctx *rv_sha256_begin(void){
  rv_sha256_ctx *c = malloc(sizeof *c);
  if (c == NULL || (c->x = EVP_MD_CTX_new()) == NULL) fail("a new context");
  ctx_init(c->x);
  return c;
}

void rv_sha256_add(rv_sha256_ctx *c, const void *buf, size_t n){
  if (n > 0 && EVP_DigestUpdate(c->x, buf, n) != 1) fail("update");
}

void rv_sha256_end(rv_sha256_ctx *c, unsigned char out[RV_SHA256_BYTES]){
  ctx_final(c->x, out);
  EVP_MD_CTX_free(c->x);
  free(c);
}

void rv_sha256(const void *buf, size_t n, unsigned char out[RV_SHA256_BYTES]){
  static EVP_MD_CTX *one;          /* reused: a context is two allocations */
  if (one == NULL && (one = EVP_MD_CTX_new()) == NULL) fail("a new context");
  ctx_init(one);
  if (n > 0 && EVP_DigestUpdate(one, buf, n) != 1) fail("update");
  ctx_final(one, out);
}

void rv_sha256_hex(const void *buf, size_t n, char out[2 * RV_SHA256_BYTES + 1]){
  static const char hex[] = "0123456789abcdef";
  unsigned char h[RV_SHA256_BYTES];
  rv_sha256(buf, n, h);
  for (int i = 0; i < RV_SHA256_BYTES; i++) {
    out[2 * i] = hex[h[i] >> 4];
    out[2 * i + 1] = hex[h[i] & 15];
  }
  out[2 * RV_SHA256_BYTES] = 0;
}
