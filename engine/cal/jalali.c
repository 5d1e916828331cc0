/*
** cal/jalali.c -- the Jalali (Solar Hijri) calendar and the Iranian
** identifier checks (national ID, Sheba, mobile number).
**
** Jalali <-> Gregorian uses Borkowski's 33-year rule with break years, as
** implemented by jalaali-js (jalCal, j2d, d2j, g2d, d2g; MIT). Unlike the
** Birashk 2820-year cycle it is right today (1403 is leap, 1404 is not).
** Valid for Jalali years -61 .. 3177; outside that range the functions
** clamp the year (documented in cal.h as 1..3177).
**
** Invariant: div() and mod() below TRUNCATE toward zero, exactly as the
** reference's ~~(a/b) does. C's / and % on int already do that; never
** replace them with floor division (every year would come out wrong).
**
** Day numbers here are Julian Day Numbers (JDN, noon-based integers).
*/
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "cal/cal.h"
#include "core/fatext.h"

static const int breaks[] = {
  -61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210,
  1635, 2060, 2097, 2192, 2262, 2324, 2394, 2456, 3178
};
#define NBREAKS ((int)(sizeof breaks / sizeof breaks[0]))

static long tdiv(long a, long b){ return a / b; }           /* truncating */
static long tmod(long a, long b){ return a - (a / b) * b; } /* sign of a */

static int clamp_jy(int jy){
  if (jy < breaks[0]) return breaks[0];
  if (jy >= breaks[NBREAKS - 1]) return breaks[NBREAKS - 1] - 1;
  return jy;
}

/* Gregorian date -> JDN (valid far beyond any date we need). */
static long g2d(long gy, long gm, long gd){
  long d = tdiv((gy + tdiv(gm - 8, 6) + 100100) * 1461, 4)
         + tdiv(153 * tmod(gm + 9, 12) + 2, 5)
         + gd - 34840408;
  return d - tdiv(tdiv(gy + 100100 + tdiv(gm - 8, 6), 100) * 3, 4) + 752;
}

static void d2g(long jdn, int *gy, int *gm, int *gd){
  long j = 4 * jdn + 139361631, i;
  j = j + tdiv(tdiv(4 * jdn + 183187720, 146097) * 3, 4) * 4 - 3908;
  i = tdiv(tmod(j, 1461), 4) * 5 + 308;
  *gd = (int)(tdiv(tmod(i, 153), 5) + 1);
  *gm = (int)(tmod(tdiv(i, 153), 12) + 1);
  *gy = (int)(tdiv(j, 1461) - 100100 + tdiv(8 - *gm, 6));
}

/* jalCal: for year jy, the Gregorian year of its 1 Farvardin (gy), the day
** of March it falls on (march), and the years since the last leap year
** (leap; 0 means jy itself is leap). */
static void jal_cal(int jy, long *gy, long *march, long *leap){
  long leap_j = -14, jp = breaks[0], jump = 0, n, leap_g;
  int i;

  jy = clamp_jy(jy);
  *gy = jy + 621;
  for (i = 1; i < NBREAKS; i++) {
    long jm = breaks[i];
    jump = jm - jp;
    if (jy < jm) break;
    leap_j += tdiv(jump, 33) * 8 + tdiv(tmod(jump, 33), 4);
    jp = jm;
  }
  n = jy - jp;
  leap_j += tdiv(n, 33) * 8 + tdiv(tmod(n, 33) + 3, 4);
  if (tmod(jump, 33) == 4 && jump - n == 4) leap_j += 1;
  leap_g = tdiv(*gy, 4) - tdiv((tdiv(*gy, 100) + 1) * 3, 4) - 150;
  *march = 20 + leap_j - leap_g;
  if (jump - n < 6) n = n - jump + tdiv(jump + 4, 33) * 33;
  *leap = tmod(tmod(n + 1, 33) - 1, 4);
  if (*leap == -1) *leap = 4;
}

static long j2d(int jy, int jm, int jd){
  long gy, march, leap;
  jal_cal(jy, &gy, &march, &leap);
  return g2d(gy, 3, march) + (jm - 1) * 31 - tdiv(jm, 7) * (jm - 7) + jd - 1;
}

static void d2j(long jdn, int *jy, int *jm, int *jd){
  int gy, gm, gd;
  long cgy, march, leap, k;

  d2g(jdn, &gy, &gm, &gd);
  *jy = gy - 621;
  jal_cal(*jy, &cgy, &march, &leap);
  k = jdn - g2d(gy, 3, march);
  if (k >= 0) {
    if (k <= 185) {                        /* the first six 31-day months */
      *jm = (int)(1 + tdiv(k, 31));
      *jd = (int)(tmod(k, 31) + 1);
      return;
    }
    k -= 186;
  } else {                                 /* still in the previous year */
    *jy -= 1;
    k += 179;
    if (leap == 1) k += 1;
  }
  *jm = (int)(7 + tdiv(k, 30));
  *jd = (int)(tmod(k, 30) + 1);
}

void rv_jalali_from_gregorian(int gy, int gm, int gd, int *jy, int *jm, int *jd){
  d2j(g2d(gy, gm, gd), jy, jm, jd);
}

void rv_gregorian_from_jalali(int jy, int jm, int jd, int *gy, int *gm, int *gd){
  d2g(j2d(jy, jm, jd), gy, gm, gd);
}

bool rv_jalali_is_leap(int jy){
  long gy, march, leap;
  jal_cal(jy, &gy, &march, &leap);
  return leap == 0;
}

int rv_jalali_month_days(int jy, int jm){
  if (jm < 1 || jm > 12) return 0;
  if (jm <= 6) return 31;
  if (jm <= 11) return 30;
  return rv_jalali_is_leap(jy) ? 30 : 29;
}

/*--- Iranian identifiers ------------------------------------------------*/

static bool all_digits(const char *s, size_t n){
  size_t i;
  for (i = 0; i < n; i++) if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

/* Exactly 10 ASCII digits (no normalisation of Persian digits, no padding).
** Policy: codes made of one repeated digit are rejected, as are codes whose
** digits 4..9 are all zero (persian-tools' rule; rejects 0000000000). */
bool rv_valid_national_id(const char *s){
  int d[10], i, sum = 0, r;
  bool same = true, midzero = true;

  if (s == NULL || strlen(s) != 10 || !all_digits(s, 10)) return false;
  for (i = 0; i < 10; i++) d[i] = s[i] - '0';
  for (i = 1; i < 10; i++) if (d[i] != d[0]) same = false;
  for (i = 3; i < 9; i++) if (d[i] != 0) midzero = false;
  if (same || midzero) return false;
  for (i = 0; i < 9; i++) sum += d[i] * (10 - i);
  r = sum % 11;
  return r < 2 ? d[9] == r : d[9] == 11 - r;
}

/* "IR" + 24 digits, ISO 13616 mod 97 == 1 after moving the first four
** characters to the end (I = 18, R = 27). Upper-case "IR" only, no spaces. */
bool rv_valid_sheba(const char *s){
  char num[32];
  unsigned rem = 0;
  size_t i;

  if (s == NULL || strlen(s) != 26 || s[0] != 'I' || s[1] != 'R') return false;
  if (!all_digits(s + 2, 24)) return false;
  memcpy(num, s + 4, 22);                  /* BBAN */
  memcpy(num + 22, "1827", 4);             /* I R */
  memcpy(num + 26, s + 2, 2);              /* check digits */
  for (i = 0; i < 28; i++) rem = (rem * 10 + (unsigned)(num[i] - '0')) % 97;
  return rem == 1;
}

/* National format only: "09" followed by 9 digits. Callers normalise
** +98 / 0098 / Persian digits before asking. */
bool rv_valid_mobile(const char *s){
  return s != NULL && strlen(s) == 11 && s[0] == '0' && s[1] == '9'
      && all_digits(s, 11);
}

/*--- scope values (cal.h) ---*/

/* The rules live with the normaliser (core/fatext.c). */
bool rv_valid_scope_value(const char *str, bool allow_slash){
  return rv_fa_scope_ok(str, allow_slash);
}
