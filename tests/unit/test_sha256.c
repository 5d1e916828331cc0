/*
** tests/unit/test_sha256.c -- core/sha256.c: the FIPS 180-4 example
** digests, pieces against one call, and libsodium's SHA-256 (which every
** hash of the engine went through before) on every length around the
** 64-byte block, so stored digests (audit chains, feed and export files,
** deployments, ledger fingerprints) keep their values.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include "core/sha256.h"

static void fips_examples(void **state){
  char hex[65];
  static char million[1000000];
  (void)state;
  rv_sha256_hex("abc", 3, hex);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  rv_sha256_hex("", 0, hex);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  rv_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
  assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  memset(million, 'a', sizeof million);
  rv_sha256_hex(million, sizeof million, hex);
  assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every length 0..300 (the block boundaries, the padding's 55/56 bytes), in
** one call, in pieces of 1..7 bytes, and by libsodium: the same digest. */
static void pieces_and_libsodium_agree(void **state){
  unsigned char data[300], a[RV_SHA256_BYTES], b[RV_SHA256_BYTES], s[crypto_hash_sha256_BYTES];
  (void)state;
  assert_true(sodium_init() >= 0);
  for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 131 + 7);
  for (size_t n = 0; n <= sizeof data; n++) {
    rv_sha256_ctx *c = rv_sha256_begin();
    size_t off = 0, step = 1;
    rv_sha256(data, n, a);
    while (off < n) {
      size_t k = n - off < step ? n - off : step;
      rv_sha256_add(c, data + off, k);
      off += k;
      step = step % 7 + 1;
    }
    rv_sha256_add(c, data, 0);            /* an empty piece changes nothing */
    rv_sha256_end(c, b);
    crypto_hash_sha256(s, data, n);
    if (memcmp(a, s, sizeof a) != 0) fail_msg("length %zu: one call differs from libsodium", n);
    if (memcmp(b, s, sizeof b) != 0) fail_msg("length %zu: pieces differ from libsodium", n);
  }
}

/* The one-shot context is reused: a digest does not depend on the one before. */
static void one_shot_keeps_no_state(void **state){
  char x[65], y[65];
  (void)state;
  rv_sha256_hex("abc", 3, x);
  rv_sha256_hex("a long text hashed in between, longer than one block of sixty-four bytes", 72, y);
  rv_sha256_hex("abc", 3, y);
  assert_string_equal(x, y);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(fips_examples),
    cmocka_unit_test(pieces_and_libsodium_agree),
    cmocka_unit_test(one_shot_keeps_no_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
