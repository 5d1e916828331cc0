/*
** tests/unit/test_cal.c -- ISO 8601 durations, date-times and cycles, the
** Jalali calendar (vectors from DOMAIN-RULES.md section 6.3) and the
** Iranian identifier validators.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "cal/cal.h"

#define H  INT64_C(3600000)
#define D  (24 * H)

static int64_t at(const char *iso){
  int64_t t = 0;
  rv_err e;
  if (rv_datetime_parse(iso, &t, &e) != RV_OK) fail_msg("parse %s: %s", iso, e.msg);
  return t;
}

static void fmt_is(int64_t t, const char *want){
  char buf[48];
  rv_datetime_format(t, buf, sizeof buf);
  assert_string_equal(buf, want);
}

static void add_is(const char *start, const char *dur, const char *want){
  rv_duration d;
  rv_err e;
  if (rv_duration_parse(dur, &d, &e) != RV_OK) fail_msg("duration %s: %s", dur, e.msg);
  fmt_is(rv_duration_add(at(start), &d), want);
}

/*--- durations ---*/

static void duration_parse_all_fields(void **state){
  rv_duration d;
  (void)state;
  assert_int_equal(rv_duration_parse("P1Y2M3W4DT5H6M7.5S", &d, NULL), RV_OK);
  assert_int_equal(d.years, 1); assert_int_equal(d.months, 2);
  assert_int_equal(d.weeks, 3); assert_int_equal(d.days, 4);
  assert_int_equal(d.hours, 5); assert_int_equal(d.minutes, 6);
  assert_true(d.seconds > 7.49 && d.seconds < 7.51);
  assert_int_equal(rv_duration_parse("PT10S", &d, NULL), RV_OK);
  assert_int_equal(rv_duration_ms(&d), 10000);
  assert_int_equal(rv_duration_parse("P2W", &d, NULL), RV_OK);
  assert_int_equal(rv_duration_ms(&d), 14 * D);
  assert_int_equal(rv_duration_parse("PT0,25S", &d, NULL), RV_OK);
  assert_int_equal(rv_duration_ms(&d), 250);
  assert_int_equal(rv_duration_parse("PT1M", &d, NULL), RV_OK);   /* minutes */
  assert_int_equal(rv_duration_ms(&d), 60000);
  assert_int_equal(rv_duration_parse("P1M", &d, NULL), RV_OK);    /* months */
  assert_int_equal(d.months, 1);
  assert_int_equal(rv_duration_ms(&d), 30 * D);
}

static void duration_parse_rejects(void **state){
  static const char *bad[] = {
    "", "P", "PT", "1D", "-P1D", "P-1D", "P1", "P1X", "PT1D", "P1H", "P1D2Y",
    "P1.5D", "PT1.5M", "P1DT", "PT1S2M", "P1YY", "P1234567890D", "P99999999Y",
    "p1d", "P1D ", NULL
  };
  rv_duration d;
  rv_err e;
  int i;
  (void)state;
  for (i = 0; bad[i]; i++) {
    if (rv_duration_parse(bad[i], &d, &e) != RV_INVALID) fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(e.code, RV_INVALID);
  }
  assert_int_equal(rv_duration_parse(NULL, &d, NULL), RV_INVALID);
}

static void duration_add_calendar(void **state){
  (void)state;
  /* Tehran local midnight 2024-01-31 = 2024-01-30T20:30Z */
  add_is("2024-01-31", "P1M", "2024-02-28T20:30:00Z");         /* leap Feb 29 */
  add_is("2023-01-31", "P1M", "2023-02-27T20:30:00Z");         /* Feb 28 */
  add_is("2024-03-31", "P1M", "2024-04-29T20:30:00Z");         /* Apr 30 */
  add_is("2024-02-29", "P1Y", "2025-02-27T20:30:00Z");         /* Feb 28 */
  add_is("2024-12-15T10:00:00Z", "P1M", "2025-01-15T10:00:00Z");
  add_is("2024-01-01T00:00:00Z", "P1DT12H", "2024-01-02T12:00:00Z");
  add_is("2024-01-01T00:00:00Z", "PT90M", "2024-01-01T01:30:00Z");
  add_is("2024-01-01T00:00:00Z", "PT0.5S", "2024-01-01T00:00:00.500Z");
  add_is("2024-01-01T00:00:00Z", "P2W", "2024-01-15T00:00:00Z");
  add_is("2024-01-31T22:00:00Z", "P1M", "2024-02-29T22:00:00Z"); /* Tehran: Feb 1 */
}

/*--- date-times ---*/

static void datetime_parse_forms(void **state){
  (void)state;
  assert_int_equal(at("1970-01-01T00:00:00Z"), 0);
  assert_int_equal(at("2026-03-21T10:00:00Z"), INT64_C(1774087200000));
  assert_int_equal(at("2026-03-21T10:00:00+03:30"), at("2026-03-21T06:30:00Z"));
  assert_int_equal(at("2026-03-21T10:00:00"), at("2026-03-21T06:30:00Z"));
  assert_int_equal(at("2026-03-21"), at("2026-03-20T20:30:00Z"));
  assert_int_equal(at("2026-03-21T10:00:00-05:00"), at("2026-03-21T15:00:00Z"));
  assert_int_equal(at("2026-03-21T10:00:00+0330"), at("2026-03-21T06:30:00Z"));
  assert_int_equal(at("2026-03-21T10:00Z"), at("2026-03-21T10:00:00Z"));
  assert_int_equal(at("2026-03-21T10:00:00.123Z"), at("2026-03-21T10:00:00Z") + 123);
  assert_int_equal(at("2024-02-29T00:00:00Z") + D, at("2024-03-01T00:00:00Z"));
  assert_int_equal(at("1969-12-31T23:59:59Z"), -1000);
}

static void datetime_parse_rejects(void **state){
  static const char *bad[] = {
    "", "2026", "2026-3-21", "2026-13-01", "2026-02-29", "2023-02-29T00:00:00Z",
    "2026-04-31", "2026-03-21T24:00:00Z", "2026-03-21T10:60:00Z",
    "2026-03-21T10:00:60Z", "2026-03-21T10:00:00+15:00", "2026-03-21T10:00:00Zjunk",
    "2026-03-21T10", "2026-03-21T10:00:00.", "x2026-03-21", "2026-03-00", NULL
  };
  int64_t t;
  int i;
  (void)state;
  for (i = 0; bad[i]; i++)
    if (rv_datetime_parse(bad[i], &t, NULL) != RV_INVALID) fail_msg("accepted '%s'", bad[i]);
}

static void datetime_format_utc(void **state){
  (void)state;
  fmt_is(0, "1970-01-01T00:00:00Z");
  fmt_is(-1, "1969-12-31T23:59:59.999Z");
  fmt_is(at("2026-03-21T10:00:00+03:30"), "2026-03-21T06:30:00Z");
  fmt_is(at("2000-02-29T12:34:56.789Z"), "2000-02-29T12:34:56.789Z");
}

static void tehran_dates(void **state){
  int y, m, d, hh, mm, ss;
  (void)state;
  rv_tehran_date(at("2024-03-19T20:29:59Z"), &y, &m, &d, &hh, &mm, &ss);
  assert_int_equal(d, 19); assert_int_equal(hh, 23); assert_int_equal(mm, 59);
  rv_tehran_date(at("2024-03-19T20:30:00Z"), &y, &m, &d, &hh, &mm, &ss);
  assert_int_equal(y, 2024); assert_int_equal(m, 3); assert_int_equal(d, 20);
  assert_int_equal(hh, 0);
  assert_int_equal(rv_tehran_midnight(2024, 3, 20), at("2024-03-19T20:30:00Z"));
}

/*--- cycles ---*/

static void cycles(void **state){
  rv_cycle c;
  int64_t armed = at("2026-01-10T08:00:00Z");
  (void)state;
  assert_int_equal(rv_cycle_parse("R5/PT10M", &c, NULL), RV_OK);
  assert_int_equal(c.repeat, 5);
  assert_false(c.has_start);
  assert_int_equal(rv_cycle_next(&c, armed, 0), armed + 600000);
  assert_int_equal(rv_cycle_next(&c, armed, 4), armed + 5 * 600000);
  assert_int_equal(rv_cycle_next(&c, armed, 5), -1);

  assert_int_equal(rv_cycle_parse("R/PT1H", &c, NULL), RV_OK);
  assert_int_equal(c.repeat, -1);
  assert_int_equal(rv_cycle_next(&c, armed, 999), armed + 1000 * H);

  assert_int_equal(rv_cycle_parse("R3/2026-01-31T00:00:00Z/P1M", &c, NULL), RV_OK);
  assert_true(c.has_start);
  assert_int_equal(rv_cycle_next(&c, armed, 0), at("2026-01-31T00:00:00Z"));
  assert_int_equal(rv_cycle_next(&c, armed, 1), at("2026-02-28T00:00:00Z"));
  assert_int_equal(rv_cycle_next(&c, armed, 2), at("2026-03-31T00:00:00Z")); /* no drift */
  assert_int_equal(rv_cycle_next(&c, armed, 3), -1);

  assert_int_equal(rv_cycle_parse("R0/PT1M", &c, NULL), RV_OK);
  assert_int_equal(rv_cycle_next(&c, armed, 0), -1);

  assert_int_equal(rv_cycle_parse("R5", &c, NULL), RV_INVALID);
  assert_int_equal(rv_cycle_parse("PT1M", &c, NULL), RV_INVALID);
  assert_int_equal(rv_cycle_parse("R5/", &c, NULL), RV_INVALID);
  assert_int_equal(rv_cycle_parse("R/PT0S", &c, NULL), RV_INVALID);
  assert_int_equal(rv_cycle_parse("Rx/PT1M", &c, NULL), RV_INVALID);
  assert_int_equal(rv_cycle_parse("R2/bad/PT1M", &c, NULL), RV_INVALID);
  assert_int_equal(rv_cycle_parse("R2/2026-01-01/PT1M/x", &c, NULL), RV_INVALID);
}

/*--- Jalali ---*/

static const struct { int jy, jm, jd, gy, gm, gd; } pairs[] = {
  {1403,  1,  1, 2024, 3, 20}, {1402, 12, 29, 2024, 3, 19},
  {1403, 12, 30, 2025, 3, 20}, {1404,  1,  1, 2025, 3, 21},
  {1404, 12, 29, 2026, 3, 20}, {1405,  1,  1, 2026, 3, 21},
  {1399,  1,  1, 2020, 3, 20}, {1399, 12, 30, 2021, 3, 20},
  {1400,  1,  1, 2021, 3, 21}, {1408,  1,  1, 2029, 3, 20},
  {1408, 12, 30, 2030, 3, 20}, {1395,  1, 23, 2016, 4, 11},
  {1360,  5, 26, 1981, 8, 17}, {1391, 10, 21, 2013, 1, 10},
  {1393,  5, 13, 2014, 8,  4}, {1357, 11, 22, 1979, 2, 11},
  {1304,  1,  1, 1925, 3, 21}, {1403,  7,  1, 2024, 9, 22},
};

static void jalali_known_pairs(void **state){
  size_t i;
  (void)state;
  for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    int a, b, c;
    rv_jalali_from_gregorian(pairs[i].gy, pairs[i].gm, pairs[i].gd, &a, &b, &c);
    if (a != pairs[i].jy || b != pairs[i].jm || c != pairs[i].jd)
      fail_msg("g2j %d-%d-%d gave %d-%d-%d", pairs[i].gy, pairs[i].gm, pairs[i].gd, a, b, c);
    rv_gregorian_from_jalali(pairs[i].jy, pairs[i].jm, pairs[i].jd, &a, &b, &c);
    if (a != pairs[i].gy || b != pairs[i].gm || c != pairs[i].gd)
      fail_msg("j2g %d-%d-%d gave %d-%d-%d", pairs[i].jy, pairs[i].jm, pairs[i].jd, a, b, c);
  }
}

static void jalali_leap_years(void **state){
  static const int leap[] = {1395, 1399, 1403, 1408, 1412, 1416, 1420, 1424, 1428};
  int y, k = 0;
  (void)state;
  for (y = 1395; y <= 1430; y++) {
    bool want = k < 9 && leap[k] == y;
    if (want) k++;
    if (rv_jalali_is_leap(y) != want) fail_msg("leap(%d) wrong", y);
  }
  assert_false(rv_jalali_is_leap(1404));      /* Birashk gets this one wrong */
  assert_int_equal(rv_jalali_month_days(1403, 12), 30);
  assert_int_equal(rv_jalali_month_days(1404, 12), 29);
  assert_int_equal(rv_jalali_month_days(1393, 12), 29);
  assert_int_equal(rv_jalali_month_days(1395, 12), 30);
  for (y = 1; y <= 6; y++) assert_int_equal(rv_jalali_month_days(1404, y), 31);
  for (y = 7; y <= 11; y++) assert_int_equal(rv_jalali_month_days(1404, y), 30);
  assert_int_equal(rv_jalali_month_days(1404, 13), 0);
}

/* Every day of 1900..2100 round-trips, and Jalali days advance by one. */
static void jalali_round_trip_range(void **state){
  int64_t day;
  int pjy = 0, pjm = 0, pjd = 0;
  (void)state;
  for (day = -25567; day <= 47847; day++) {   /* 1900-01-01 .. 2100-12-31 */
    int y, m, d, hh, mm, ss, jy, jm, jd, gy, gm, gd;
    rv_tehran_date(day * D - INT64_C(12600000) + H, &y, &m, &d, &hh, &mm, &ss);
    rv_jalali_from_gregorian(y, m, d, &jy, &jm, &jd);
    rv_gregorian_from_jalali(jy, jm, jd, &gy, &gm, &gd);
    if (gy != y || gm != m || gd != d) fail_msg("round trip %d-%d-%d", y, m, d);
    if (jd < 1 || jd > rv_jalali_month_days(jy, jm)) fail_msg("bad jd %d", jd);
    if (pjy && !(jy == pjy && jm == pjm && jd == pjd + 1)
        && !(jy == pjy && jm == pjm + 1 && jd == 1 && pjd == rv_jalali_month_days(pjy, pjm))
        && !(jy == pjy + 1 && jm == 1 && jd == 1 && pjm == 12))
      fail_msg("jump %d-%d-%d -> %d-%d-%d", pjy, pjm, pjd, jy, jm, jd);
    pjy = jy; pjm = jm; pjd = jd;
  }
}

/*--- validators ---*/

static void make_national_id(const char *nine, char out[11]){
  int s = 0, i, r;
  for (i = 0; i < 9; i++) s += (nine[i] - '0') * (10 - i);
  r = s % 11;
  memcpy(out, nine, 9);
  out[9] = (char)('0' + (r < 2 ? r : 11 - r));
  out[10] = 0;
}

static void national_id(void **state){
  static const char *good[] = {
    "0499370899", "0790419904", "0084575948", "0963695398", "0684159414",
    "0067749828", "0650451252", "1583250689", "4032152314", "0076229645",
    "4271467685", "0200203241", NULL
  };
  static const char *bad[] = {
    "0684159415", "068415941", "06841594140", "0000000000", "1111111111",
    "9999999999", "06841594a4", "", "0010000001", NULL
  };
  char id[11];
  int i;
  (void)state;
  for (i = 0; good[i]; i++) if (!rv_valid_national_id(good[i])) fail_msg("%s", good[i]);
  for (i = 0; bad[i]; i++) if (rv_valid_national_id(bad[i])) fail_msg("%s", bad[i]);
  make_national_id("123456789", id);
  assert_true(rv_valid_national_id(id));
  id[9] = (char)(id[9] == '9' ? '0' : id[9] + 1);
  assert_false(rv_valid_national_id(id));
  assert_false(rv_valid_national_id(NULL));
}

static void make_sheba(const char *bban22, char out[27]){
  char num[29];
  unsigned rem = 0;
  int i, check;
  memcpy(num, bban22, 22);
  memcpy(num + 22, "182700", 6);
  for (i = 0; i < 28; i++) rem = (rem * 10 + (unsigned)(num[i] - '0')) % 97;
  check = 98 - (int)rem;
  snprintf(out, 27, "IR%02d%s", check, bban22);
}

static void sheba(void **state){
  static const char *good[] = {
    "IR062960000000100324200001", "IR820540102680020817909002",
    "IR580540105180021273113007", "IR710570029971601460641001", NULL
  };
  static const char *bad[] = {
    "IR062960000000100324200002", "IR012345678901234567890123", "IR01234567890123456789",
    "ir062960000000100324200001", "IR06296000000010032420000A", "DE062960000000100324200001",
    "IR0629600000001003242000011", "", NULL
  };
  char s[27];
  int i;
  (void)state;
  for (i = 0; good[i]; i++) if (!rv_valid_sheba(good[i])) fail_msg("%s", good[i]);
  for (i = 0; bad[i]; i++) if (rv_valid_sheba(bad[i])) fail_msg("%s", bad[i]);
  make_sheba("0170000000123456789012", s);
  assert_true(rv_valid_sheba(s));
  s[25] = (char)(s[25] == '9' ? '0' : s[25] + 1);
  assert_false(rv_valid_sheba(s));
  assert_false(rv_valid_sheba(NULL));
}

static void mobile(void **state){
  (void)state;
  assert_true(rv_valid_mobile("09123456789"));
  assert_true(rv_valid_mobile("09901234567"));
  assert_false(rv_valid_mobile("9123456789"));
  assert_false(rv_valid_mobile("+989123456789"));
  assert_false(rv_valid_mobile("0912345678"));
  assert_false(rv_valid_mobile("091234567890"));
  assert_false(rv_valid_mobile("08123456789"));
  assert_false(rv_valid_mobile("0912345678x"));
  assert_false(rv_valid_mobile(NULL));
}

static void scope_value(void **state){
  static const char *const good[] = {
    "B1", "1201", "C-1.x_y", "تهران", "کرج", "اسلام‌شهر" /* ZWNJ between letters */,
    "شعبه ۱۲ تهران", "شعبه ١٢", "São Paulo", "Ελλάδα", "Москва", NULL };
  static const char *const bad[] = {
    "", " تهران", "تهران ", "ته\u202eران" /* bidi override */, "a;b", "a/b", "a\tb",
    "\xe2\x80\x8cتهران" /* leading ZWNJ */, "تهران\xe2\x80\x8c",
    "\xd8" /* truncated UTF-8 */, "\xc0\xaf" /* overlong */, "\xed\xa0\x80" /* surrogate */,
    "a\xe2\x80\x8f" "b" /* RLM */, "x<y", "🙂", NULL };
  char big[300];
  (void)state;
  for (int i = 0; good[i]; i++) if (!rv_valid_scope_value(good[i], false)) fail_msg("good: %s", good[i]);
  for (int i = 0; bad[i]; i++)
    if (rv_valid_scope_value(bad[i], false)) fail_msg("bad #%d: %s", i, bad[i]);
  assert_false(rv_valid_scope_value("\xd8\xaa\xd9\x87\xe2\x80\xae\xd8\xb1", false));   /* bidi override */
  assert_false(rv_valid_scope_value(NULL, false));
  assert_true(rv_valid_scope_value("AG-1405/17", true));
  assert_false(rv_valid_scope_value("AG-1405/17", false));
  /* 64 code points (two bytes each) yes, 65 no */
  big[0] = 0;
  for (int i = 0; i < 64; i++) strcat(big, "ت");
  assert_true(rv_valid_scope_value(big, false));
  strcat(big, "ت");
  assert_false(rv_valid_scope_value(big, false));
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(scope_value),
    cmocka_unit_test(duration_parse_all_fields),
    cmocka_unit_test(duration_parse_rejects),
    cmocka_unit_test(duration_add_calendar),
    cmocka_unit_test(datetime_parse_forms),
    cmocka_unit_test(datetime_parse_rejects),
    cmocka_unit_test(datetime_format_utc),
    cmocka_unit_test(tehran_dates),
    cmocka_unit_test(cycles),
    cmocka_unit_test(jalali_known_pairs),
    cmocka_unit_test(jalali_leap_years),
    cmocka_unit_test(jalali_round_trip_range),
    cmocka_unit_test(national_id),
    cmocka_unit_test(sheba),
    cmocka_unit_test(mobile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
