/*
** tests/unit/test_fatext.c -- the normal form of Persian scope values
** (core/fatext.c): foldings, spaces, malformed UTF-8, and the scope check.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/fatext.h"
#include "core/mem.h"

/* Persian spellings (U+06CC yeh, U+06A9 keheh) and their Arabic twins. */
#define FA_YEH  "\xdb\x8c"
#define AR_YEH  "\xd9\x8a"
#define AR_ALEF_MAKSURA "\xd9\x89"
#define FA_KAF  "\xda\xa9"
#define AR_KAF  "\xd9\x83"
#define ZWNJ    "\xe2\x80\x8c"
#define NBSP    "\xc2\xa0"

static void norm_is(const char *in, const char *want){
  char out[512];
  rv_err e;
  if (rv_fa_normalize(in, out, sizeof out, &e) != RV_OK) fail_msg("normalize '%s': %s", in, e.msg);
  if (strcmp(out, want) != 0) fail_msg("normalize '%s' gave '%s', want '%s'", in, out, want);
}

static void norm_bad(const char *in, const char *what){
  char out[512];
  rv_err e;
  memset(&e, 0, sizeof e);
  if (rv_fa_normalize(in, out, sizeof out, &e) == RV_OK) fail_msg("accepted %s", what);
  assert_int_equal(e.code, RV_INVALID);
  assert_non_null(strstr(e.msg, "UTF-8"));
}

static void folds_arabic_letters(void **state){
  (void)state;
  /* شمیرانات, کرج, نیک‌شهر: Arabic keyboard spellings give the Persian one */
  norm_is("\xd8\xb4\xd9\x85" AR_YEH "\xd8\xb1\xd8\xa7\xd9\x86\xd8\xa7\xd8\xaa",
          "\xd8\xb4\xd9\x85" FA_YEH "\xd8\xb1\xd8\xa7\xd9\x86\xd8\xa7\xd8\xaa");
  norm_is(AR_KAF "\xd8\xb1\xd8\xac", FA_KAF "\xd8\xb1\xd8\xac");
  norm_is("\xd9\x86" AR_YEH AR_KAF ZWNJ "\xd8\xb4\xd9\x87\xd8\xb1",
          "\xd9\x86" FA_YEH FA_KAF ZWNJ "\xd8\xb4\xd9\x87\xd8\xb1");
  norm_is("\xd8\xb1" AR_ALEF_MAKSURA, "\xd8\xb1" FA_YEH);               /* رى -> ری */
  /* already Persian, and ASCII: unchanged */
  norm_is("\xd8\xb1" FA_YEH, "\xd8\xb1" FA_YEH);
  norm_is("B-12.x_y", "B-12.x_y");
  /* other Arabic-script letters are left alone (heh, teh marbuta, hamza) */
  norm_is("\xd9\x87\xd8\xa9\xd8\xa1", "\xd9\x87\xd8\xa9\xd8\xa1");
}

static void folds_digits(void **state){
  (void)state;
  norm_is("\xdb\xb0\xdb\xb1\xdb\xb2\xdb\xb3\xdb\xb4\xdb\xb5\xdb\xb6\xdb\xb7\xdb\xb8\xdb\xb9",
          "0123456789");                                                  /* ۰..۹ */
  norm_is("\xd9\xa0\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6\xd9\xa7\xd9\xa8\xd9\xa9",
          "0123456789");                                                  /* ٠..٩ */
  norm_is("\xd8\xb4\xd8\xb9\xd8\xa8\xd9\x87 \xdb\xb1\xdb\xb2", "\xd8\xb4\xd8\xb9\xd8\xa8\xd9\x87 12");
}

static void trims_and_collapses_spaces(void **state){
  (void)state;
  norm_is("  a  b  ", "a b");
  norm_is("\ta\r\n b\x0b\x0c", "a b");
  norm_is(NBSP "a" NBSP NBSP "b" NBSP, "a b");
  norm_is("a\xe2\x80\x80\xe2\x80\x8a\xe2\x80\xaf\xe2\x81\x9f\xe3\x80\x80" "b", "a b");
  norm_is("   ", "");
  norm_is("", "");
  /* ZWNJ is not a space: kept where it is */
  norm_is("a" ZWNJ "b", "a" ZWNJ "b");
  /* a zero-width space (format character) is not folded: the check refuses it */
  norm_is("a\xe2\x80\x8b" "b", "a\xe2\x80\x8b" "b");
}

static void rejects_malformed_utf8(void **state){
  (void)state;
  norm_bad("\xd8", "a truncated 2-byte sequence");
  norm_bad("a\xe2\x80", "a truncated 3-byte sequence");
  norm_bad("\xf0\x9f\x99", "a truncated 4-byte sequence");
  norm_bad("\x80", "a lone continuation byte");
  norm_bad("a\xbf" "b", "a continuation byte inside");
  norm_bad("\xff", "byte 0xFF");
  norm_bad("\xfe", "byte 0xFE");
  norm_bad("\xd8" "a", "a lead byte followed by ASCII");
  norm_bad("\xf8\x88\x80\x80\x80", "a 5-byte sequence");
  norm_bad("\xf4\x90\x80\x80", "a code point past U+10FFFF");
}

static void rejects_overlong(void **state){
  (void)state;
  norm_bad("\xc0\xaf", "overlong '/' (2 bytes)");
  norm_bad("\xc1\xbf", "overlong U+007F");
  norm_bad("\xe0\x80\xaf", "overlong '/' (3 bytes)");
  norm_bad("\xe0\x9f\xbf", "overlong U+07FF");
  norm_bad("\xf0\x80\x80\xaf", "overlong '/' (4 bytes)");
  norm_bad("\xf0\x8f\xbf\xbf", "overlong U+FFFF");
  norm_bad("\xc0\x80", "overlong NUL");
}

static void rejects_surrogates(void **state){
  (void)state;
  norm_bad("\xed\xa0\x80", "U+D800");
  norm_bad("\xed\xbf\xbf", "U+DFFF");
  norm_bad("\xed\xa0\xbd\xed\xb8\x82", "a CESU-8 surrogate pair");
  norm_is("\xed\x9f\xbf", "\xed\x9f\xbf");                              /* U+D7FF is fine */
  norm_is("\xee\x80\x80", "\xee\x80\x80");                              /* U+E000 too */
}

static void bounded_output(void **state){
  char out[8];
  rv_err e;
  (void)state;
  assert_int_equal(rv_fa_normalize("abcdefg", out, sizeof out, &e), RV_OK);
  assert_string_equal(out, "abcdefg");
  assert_int_equal(rv_fa_normalize("abcdefgh", out, sizeof out, &e), RV_INVALID);
  /* folded digits shrink: 7 Persian digits (14 bytes) fit in 8 */
  assert_int_equal(rv_fa_normalize("\xdb\xb1\xdb\xb2\xdb\xb3\xdb\xb4\xdb\xb5\xdb\xb6\xdb\xb7",
                                   out, sizeof out, &e), RV_OK);
  assert_string_equal(out, "1234567");
  assert_int_equal(rv_fa_normalize(NULL, out, sizeof out, &e), RV_INVALID);
  assert_int_equal(rv_fa_normalize("a", out, 0, &e), RV_INVALID);
}

static void scope_values(void **state){
  char out[300], big[400];
  rv_err e;
  static const char *const bad[] = {
    "", "   ", "a;b", "a/b", "x<y", "\xf0\x9f\x99\x82" /* emoji */,
    "\xd8\xaa\xd9\x87\xe2\x80\xae\xd8\xb1" /* bidi override U+202E */,
    "a\xe2\x80\x8f" "b" /* RLM */, "a\xe2\x80\x8b" "b" /* ZWSP */, "a\x01" "b" /* control */,
    ZWNJ "\xd8\xaa" /* leading ZWNJ */, "\xd8\xaa" ZWNJ, "\xd8\xaa" ZWNJ " \xd8\xaa",
    "\xc0\xaf", "\xed\xa0\x80", NULL };
  (void)state;
  /* normal form first, then the check: spaces and spellings are not errors */
  assert_int_equal(rv_fa_scope(" " AR_KAF "\xd8\xb1\xd8\xac ", false, out, sizeof out, &e), RV_OK);
  assert_string_equal(out, FA_KAF "\xd8\xb1\xd8\xac");
  assert_int_equal(rv_fa_scope("AG-\xdb\xb1\xdb\xb4\xdb\xb0\xdb\xb5/17", true, out, sizeof out, &e), RV_OK);
  assert_string_equal(out, "AG-1405/17");
  assert_int_equal(rv_fa_scope("AG-1405/17", false, out, sizeof out, &e), RV_INVALID);
  assert_non_null(strstr(e.msg, "U+002F"));
  for (int i = 0; bad[i]; i++)
    if (rv_fa_scope(bad[i], false, out, sizeof out, &e) != RV_INVALID) fail_msg("bad #%d accepted", i);
  /* 64 code points yes, 65 no */
  big[0] = 0;
  for (int i = 0; i < 64; i++) strcat(big, "\xd8\xaa");
  assert_int_equal(rv_fa_scope(big, false, out, sizeof out, &e), RV_OK);
  strcat(big, "\xd8\xaa");
  assert_int_equal(rv_fa_scope(big, false, out, sizeof out, &e), RV_INVALID);
  assert_non_null(strstr(e.msg, "64"));
  /* the check alone does not normalise */
  assert_false(rv_fa_scope_ok(" a", false));
  assert_false(rv_fa_scope_ok(NULL, false));
  assert_true(rv_fa_scope_ok("\xd8\xa7\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85" ZWNJ "\xd8\xb4\xd9\x87\xd8\xb1", false));
}

static void normdup_for_the_runtime(void **state){
  char *s;
  (void)state;
  assert_null(rv_fa_normdup(NULL));
  s = rv_fa_normdup(" \xd8\xaa\xd9\x87\xd8\xb1\xd8\xa7\xd9\x86" NBSP);
  assert_string_equal(s, "\xd8\xaa\xd9\x87\xd8\xb1\xd8\xa7\xd9\x86");
  rv_free(s);
  s = rv_fa_normdup(AR_YEH AR_KAF);
  assert_string_equal(s, FA_YEH FA_KAF);
  rv_free(s);
  /* not UTF-8: copied as it is (it can match no principal) */
  s = rv_fa_normdup(" \xc0\xaf ");
  assert_string_equal(s, " \xc0\xaf ");
  rv_free(s);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(folds_arabic_letters),
    cmocka_unit_test(folds_digits),
    cmocka_unit_test(trims_and_collapses_spaces),
    cmocka_unit_test(rejects_malformed_utf8),
    cmocka_unit_test(rejects_overlong),
    cmocka_unit_test(rejects_surrogates),
    cmocka_unit_test(bounded_output),
    cmocka_unit_test(scope_values),
    cmocka_unit_test(normdup_for_the_runtime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
