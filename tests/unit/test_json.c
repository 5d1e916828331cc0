/*
** tests/unit/test_json.c -- core/json.c: rv_json_parse() builds the same
** tree as cJSON_ParseWithOpts(text, NULL, 1) for what both accept
** (strings with and without escapes, \u escapes and surrogate pairs,
** numbers, nesting), refuses what cJSON refuses (and malformed \u
** escapes that cJSON lets through), and rv_json_write()
** prints what parses back to an equal tree; the small-block pool
** (core/mem.c) and cJSON's use of it.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>
#include "core/json.h"
#include "core/buf.h"
#include "core/mem.h"
#include "../json_oracle.h"

static void same_as_cjson(const char *text){
  cJSON *a = rv_json_parse(text), *b = cJSON_ParseWithOpts(text, NULL, 1);
  if (a == NULL && b != NULL && bad_u_escape(text)) { cJSON_Delete(b); return; }
  if ((a == NULL) != (b == NULL))
    fail_msg("%s: rv_json_parse %s, cJSON %s", text, a ? "accepts" : "refuses", b ? "accepts" : "refuses");
  if (a && !json_same(a, b, false)) fail_msg("%s: different trees", text);
  if (a) {                         /* and back: what we write parses to the same tree */
    char *out = rv_json_print(a);
    cJSON *c = rv_json_parse(out);
    if (c == NULL || !json_same(a, c, true)) fail_msg("%s: written as %s, read back differently", text, out);
    cJSON_Delete(c);
    rv_free(out);
  }
  cJSON_Delete(a);
  cJSON_Delete(b);
}

static void test_strings(void **state){
  static const char *const texts[] = {
    "\"\"", "\"plain\"", "\"کمک هزینه ازدواج پرداخت شد\"",
    "\"a\\\"b\"", "\"back\\\\slash\"", "\"\\/\\b\\f\\n\\r\\t\"",
    "\"\\u0041\\u00e9\\u06a9\"", "\"\\ud83d\\ude00 smile\"",
    "\"tail escape\\n\"", "\"\\\\\"", "{\"k\\u0065y\":\"v\",\"x\":\"y\\\"z\"}",
    "[\"a\",\"\",\"\\\"\",\"b\\\\\"]",
    /* refused by both */
    "\"unterminated", "\"bad escape \\x\"", "\"lone \\udc00\"", "\"cut \\u12\"",
    "\"high then nothing \\ud83d\"", "\"ends in backslash \\",
  };
  (void)state;
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) same_as_cjson(texts[i]);
}

/* Numbers as int64_t: a double outside the range is saturated, never cast
** (undefined behaviour; the sanitizer build checks float-cast-overflow). */
static void test_numbers_as_int64(void **state){
  int64_t x;
  char *t;
  cJSON *o = rv_json_parse("{\"big\":1e300,\"small\":-1e300,\"edge\":9223372036854775807,"
                           "\"n\":-42.9,\"w\":12345678901234}");
  (void)state;
  assert_non_null(o);
  assert_true(rv_json_int(o, "big", 7) == INT64_MAX);
  assert_true(rv_json_int(o, "small", 7) == INT64_MIN);
  assert_true(rv_json_int(o, "edge", 7) == INT64_MAX);      /* reads as 2^63 */
  assert_int_equal(rv_json_int(o, "n", 7), -42);
  assert_int_equal(rv_json_int(o, "none", 7), 7);
  assert_true(rv_num_whole(12345678901234.0, &x) && x == 12345678901234);
  assert_true(rv_num_whole(-9223372036854775808.0, &x) && x == INT64_MIN);
  assert_false(rv_num_whole(9223372036854775808.0, &x));
  assert_false(rv_num_whole(1e300, &x));
  assert_false(rv_num_whole(-2.5, &x));
  assert_int_equal(rv_num_i64(0.0 / 0.0), 0);
  t = rv_json_text(cJSON_GetObjectItemCaseSensitive(o, "big"));     /* not as an integer */
  assert_string_equal(t, "1e+300");
  rv_free(t);
  t = rv_json_text(cJSON_GetObjectItemCaseSensitive(o, "w"));
  assert_string_equal(t, "12345678901234");
  rv_free(t);
  cJSON_Delete(o);
}

static void test_values(void **state){
  static const char *const texts[] = {
    "0", "-0", "12345678901234", "-9007199254740992", "1.5", "-2.5e-3", "1e308", "123456789012345678",
    /* longer than 63 characters: cJSON reads any length (found by tests/fuzz/fuzz_json) */
    "-45288888888888888888888888888888888888888888888888888888888888888888888888888888",
    "[0.00000000000000000000000000000000000000000000000000000000000000000000000000012345]",
    "true", "false", "null", "[]", "{}", " { \"a\" : [ 1 , { \"b\" : null } ] } ",
    "{\"v\":2,\"next\":13,\"eis\":[{\"k\":1,\"n\":-1,\"p\":0,\"s\":1,\"v\":{\"national_id\":\"0499370899\"}}]}",
    "[1,2", "{\"a\":}", "{\"a\" 1}", "tru", "[1,]x", "",
  };
  (void)state;
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) same_as_cjson(texts[i]);
}

/* Random strings over an alphabet rich in quotes, backslashes and escape
** letters: whatever the bytes, both parsers agree. */
static void test_random_strings(void **state){
  static const char alphabet[] = "\"\\/bfnrtu0123456789abcdefABCDEF xyz\xd8\xa7";
  uint32_t seed = 2025;
  char text[64];
  (void)state;
  for (int round = 0; round < 20000; round++) {
    int n = 2 + (int)(seed % 20), k = 0;
    text[k++] = '"';
    for (int i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      text[k++] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
    }
    text[k++] = '"';
    text[k] = 0;
    same_as_cjson(text);
  }
}

#if RV_POOL_MAX > 0
#define R16(a, b) (a)           /* sizes rounded to 16 */
#else
#define R16(a, b) (b)           /* AddressSanitizer: to 8 */
#endif

/* The small-block pool (core/mem.c): sizes rounded to 16 bytes up to 1 KiB,
** a freed block reused for the next of its size (not under
** AddressSanitizer, where every block is its own malloc), contents kept
** by realloc, large blocks through malloc. */
static void test_pool(void **state){
  char *a, *b, *c;
  (void)state;
  assert_int_equal(rv_pool_round(1), R16(16, 8));
  assert_int_equal(rv_pool_round(16), 16);
  assert_int_equal(rv_pool_round(17), R16(32, 24));
  assert_int_equal(rv_pool_round(1024), 1024);
  assert_int_equal(rv_pool_round(1025), 1032);
  a = rv_pool_alloc(20);
  assert_non_null(a);
  assert_int_equal(rv_pool_size(a), R16(32, 24));
  memcpy(a, "0123456789abcdefghi", 20);
  b = rv_pool_realloc(a, 22);                /* fits its block: the same one */
  assert_ptr_equal(b, a);
  c = rv_pool_realloc(b, 100);               /* moves, keeping the text */
  assert_int_equal(rv_pool_size(c), R16(112, 104));
  assert_string_equal(c, "0123456789abcdefghi");
  rv_pool_free(c);
#if RV_POOL_MAX > 0
  b = rv_pool_alloc(97);                     /* 112 again: the freed block */
  assert_ptr_equal(b, c);
  rv_pool_free(b);
#endif
  a = rv_pool_alloc(5000);
  assert_int_equal(rv_pool_size(a), 5000);
  memset(a, 'x', 5000);
  rv_pool_free(a);
  rv_pool_free(NULL);
  assert_int_equal(rv_pool_size(NULL), 0);
  assert_null(rv_pool_alloc(SIZE_MAX - 3));    /* no small block for a size that wraps */
  assert_null(rv_pool_realloc(NULL, SIZE_MAX));
}

/* cJSON allocates from the pool from the start (json.c installs the
** hooks before main): its blocks have the pool's sizes, and what it
** frees goes back to the pool's lists. */
static void test_cjson_uses_the_pool(void **state){
  static const char text[] = "{\"key\":\"a value of some length\",\"n\":[1,2,3]}";
  cJSON *o = rv_json_parse(text);
  char *t = cJSON_malloc(40), *u;
  (void)state;
  assert_non_null(o);
  assert_int_equal(rv_pool_size(t), R16(48, 40));
  assert_int_equal(rv_pool_size(o->child->string), R16(16, 8));        /* "key" */
  assert_int_equal(rv_pool_size(o->child->valuestring), R16(32, 24));  /* 22 bytes */
  cJSON_free(t);
#if RV_POOL_MAX > 0
  u = rv_pool_alloc(33);
  assert_ptr_equal(u, t);
  rv_pool_free(u);
#else
  (void)u;
#endif
  t = cJSON_PrintUnformatted(o);
  assert_string_equal(t, text);
  assert_int_equal(rv_pool_size(t), rv_pool_round(sizeof text));   /* printed: copied to its size */
  cJSON_free(t);
  cJSON_Delete(o);
}

/* rv_json_plain_len stops at the first byte a JSON string must escape,
** whatever the start offset, length and bytes (UTF-8 included), and
** strings written in one go by the writer come out as cJSON prints them. */
static void test_plain_len(void **state){
  static const unsigned char pick[] = { 'a', 'Z', ' ', '~', 0x7f, 0x80, 0xd8, 0xa7, 0xff,
                                        '"', '\\', 0x01, 0x1f, 0x20, 0x21, 0x5b, 0x5d };
  uint32_t seed = 7;
  char buf[96];
  (void)state;
  for (int round = 0; round < 40000; round++) {
    int off, len, k;
    size_t want = 0;
    seed = seed * 1103515245u + 12345u;
    off = (int)(seed >> 8) % 8;
    len = (int)(seed >> 12) % 70;
    for (k = 0; k < len; k++) {
      seed = seed * 1103515245u + 12345u;
      /* mostly plain bytes, sometimes one that ends the run */
      buf[off + k] = (char)((seed >> 16) % 16 ? pick[(seed >> 20) % 9] : pick[9 + (seed >> 20) % 8]);
    }
    buf[off + len] = 0;
    while ((unsigned char)buf[off + want] >= 0x20 && buf[off + want] != '"' && buf[off + want] != '\\') want++;
    assert_int_equal(rv_json_plain_len(buf + off), want);
    if (round % 8 == 0) {                    /* and quoted as cJSON quotes it */
      cJSON *v = cJSON_CreateString(buf + off);
      char *mine = rv_json_print(v), *theirs = cJSON_PrintUnformatted(v);
      assert_string_equal(mine, theirs);
      rv_free(mine);
      cJSON_free(theirs);
      cJSON_Delete(v);
    }
  }
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_strings),
    cmocka_unit_test(test_values),
    cmocka_unit_test(test_numbers_as_int64),
    cmocka_unit_test(test_random_strings),
    cmocka_unit_test(test_pool),
    cmocka_unit_test(test_cjson_uses_the_pool),
    cmocka_unit_test(test_plain_len),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
