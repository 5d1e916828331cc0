/*
** cal/cal.c -- ISO 8601 durations, date-times and repeating cycles, and
** civil dates in Asia/Tehran (fixed UTC+03:30, see cal.h).
**
** Gregorian civil <-> day number uses Howard Hinnant's days_from_civil /
** civil_from_days (proleptic Gregorian, day 0 = 1970-01-01). All
** arithmetic is int64 and saturates instead of overflowing.
**
** Invariants:
**   - a parsed rv_duration has every field >= 0 and its total span is at
**     most MAX_SPAN_MS (10,000 years), so rv_duration_add cannot overflow
**     for instants within +-100,000 years of the epoch;
**   - calendar parts (Y, M, W, D) are applied to the Tehran local date,
**     then the clock parts (H, M, S) as exact elapsed time; days are
**     clamped to the target month's length (Jan 31 + P1M = Feb 28/29).
** Never: consult the system time zone (no localtime/mktime/TZ).
*/
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cal/cal.h"

#define DAY_MS      INT64_C(86400000)
#define MAX_SPAN_MS (INT64_C(10000) * 366 * DAY_MS)

/*--- Civil dates --------------------------------------------------------*/

static int64_t floor_div(int64_t a, int64_t b){
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d){
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = floor_div(y, 400);
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d){
  int64_t era, doe, yoe, doy, mp;
  z += 719468;
  era = floor_div(z, 146097);
  doe = z - era * 146097;
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y){
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m){
  static const int md[12] = {31,28,31,30,31,30,31,31,30,31,30,31};
  return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

static int64_t sat_add(int64_t a, int64_t b){
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}
static int64_t sat_mul(int64_t a, int64_t b){
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
  return r;
}

void rv_tehran_date(int64_t t, int *y, int *m, int *d, int *hh, int *mm, int *ss){
  int64_t local = sat_add(t, RV_TEHRAN_OFFSET_MS);
  int64_t days = floor_div(local, DAY_MS), msod = local - days * DAY_MS, yy;
  civil_from_days(days, &yy, m, d);
  *y = (int)yy;
  *hh = (int)(msod / 3600000);
  *mm = (int)(msod / 60000 % 60);
  *ss = (int)(msod / 1000 % 60);
}

int64_t rv_tehran_midnight(int gy, int gm, int gd){
  return days_from_civil(gy, gm, gd) * DAY_MS - RV_TEHRAN_OFFSET_MS;
}

/*--- Durations ----------------------------------------------------------*/

/* Reads an unsigned decimal integer, at most 9 digits (fits in int). */
static bool read_uint(const char **p, int64_t *out){
  const char *s = *p;
  int64_t v = 0;
  int n = 0;
  while (isdigit((unsigned char)*s)) {
    if (++n > 9) return false;
    v = v * 10 + (*s++ - '0');
  }
  if (n == 0) return false;
  *p = s;
  *out = v;
  return true;
}

rv_status rv_duration_parse(const char *s, rv_duration *out, rv_err *err){
  static const char date_units[] = "YMWD", time_units[] = "HMS";
  const char *p = s, *units = date_units;
  int last = -1, nparts = 0;
  bool in_time = false;

  memset(out, 0, sizeof *out);
  if (s == NULL || *p != 'P')
    return rv_fail(err, RV_INVALID, "duration '%s' must start with 'P'", s ? s : "");
  p++;
  while (*p) {
    int64_t v, frac_num = 0, frac_den = 1;
    const char *u;
    int idx;

    if (*p == 'T') {
      if (in_time) goto bad;
      in_time = true; units = time_units; last = -1; p++;
      if (*p == 0) goto bad;               /* "PT" alone */
      continue;
    }
    if (!read_uint(&p, &v)) goto bad;
    if (*p == '.' || *p == ',') {          /* fraction: seconds only */
      p++;
      if (!isdigit((unsigned char)*p)) goto bad;
      while (isdigit((unsigned char)*p)) {
        if (frac_den < INT64_C(1000000000)) {
          frac_num = frac_num * 10 + (*p - '0');
          frac_den *= 10;
        }
        p++;
      }
      if (!in_time || *p != 'S') goto bad;
    }
    if (*p == 0 || (u = strchr(units, *p)) == NULL) goto bad;
    idx = (int)(u - units);
    if (idx <= last) goto bad;             /* order Y M W D / H M S */
    last = idx;
    p++;
    nparts++;
    if (!in_time) {
      switch (idx) {
        case 0: out->years  = (int)v; break;
        case 1: out->months = (int)v; break;
        case 2: out->weeks  = (int)v; break;
        default: out->days  = (int)v; break;
      }
    } else {
      switch (idx) {
        case 0: out->hours   = (int)v; break;
        case 1: out->minutes = (int)v; break;
        default: out->seconds = (double)v + (double)frac_num / (double)frac_den;
      }
    }
  }
  if (nparts == 0) goto bad;
  if (rv_duration_ms(out) > MAX_SPAN_MS)
    return rv_fail(err, RV_INVALID, "duration '%s' is longer than 10000 years", s);
  return RV_OK;
bad:
  memset(out, 0, sizeof *out);
  return rv_fail(err, RV_INVALID, "'%s' is not an ISO 8601 duration (PnYnMnWnDTnHnMnS)", s);
}

static int64_t clock_part_ms(const rv_duration *d, int64_t k){
  double sec = d->seconds * 1000.0 * (double)k;
  int64_t ms = sat_add(sat_mul(d->hours, INT64_C(3600000) * k),
                       sat_mul(d->minutes, INT64_C(60000) * k));
  if (!(sec < 9.2e18 && sec > -9.2e18)) return sec > 0 ? INT64_MAX : INT64_MIN;
  return sat_add(ms, (int64_t)llround(sec));
}

/* t + k * d, with the calendar parts multiplied first (so the 3rd monthly
** firing from Jan 31 is Apr 30, not a drifted Apr 28). */
static int64_t add_k(int64_t t, const rv_duration *d, int64_t k){
  int64_t local, days, msod, y, mon;
  int m, dd, md;

  if (d->years || d->months || d->weeks || d->days) {
    local = sat_add(t, RV_TEHRAN_OFFSET_MS);
    days = floor_div(local, DAY_MS);
    msod = local - days * DAY_MS;
    civil_from_days(days, &y, &m, &dd);
    if (d->years || d->months) {
      mon = sat_add(sat_add(sat_mul(y, 12) + (m - 1), sat_mul(d->years, 12 * k)),
                    sat_mul(d->months, k));
      if (mon > INT64_C(12) * 1000000 || mon < -INT64_C(12) * 1000000)
        return mon > 0 ? INT64_MAX : INT64_MIN;
      y = floor_div(mon, 12);
      m = (int)(mon - y * 12) + 1;
      md = month_days(y, m);
      if (dd > md) dd = md;
    }
    days = sat_add(days_from_civil(y, m, dd),
                   sat_add(sat_mul(d->weeks, 7 * k), sat_mul(d->days, k)));
    t = sat_add(sat_add(sat_mul(days, DAY_MS), msod), -RV_TEHRAN_OFFSET_MS);
  }
  return sat_add(t, clock_part_ms(d, k));
}

int64_t rv_duration_add(int64_t t, const rv_duration *d){
  return add_k(t, d, 1);
}

int64_t rv_duration_ms(const rv_duration *d){
  int64_t days = sat_add(sat_add(sat_mul(d->years, 365), sat_mul(d->months, 30)),
                         sat_add(sat_mul(d->weeks, 7), d->days));
  return sat_add(sat_mul(days, DAY_MS), clock_part_ms(d, 1));
}

/*--- Date-times ---------------------------------------------------------*/

static bool read_fixed(const char **p, int ndig, int *out){
  int v = 0, i;
  for (i = 0; i < ndig; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += ndig;
  *out = v;
  return true;
}

rv_status rv_datetime_parse(const char *s, int64_t *out_ms, rv_err *err){
  const char *p = s;
  int y, mo, d, hh = 0, mi = 0, ss = 0, ms = 0;
  int64_t offset = RV_TEHRAN_OFFSET_MS, t;

  *out_ms = 0;
  if (s == NULL) goto bad;
  if (!read_fixed(&p, 4, &y) || *p++ != '-' || !read_fixed(&p, 2, &mo)
      || *p++ != '-' || !read_fixed(&p, 2, &d))
    goto bad;
  if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo)) goto bad;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (!read_fixed(&p, 2, &hh) || *p++ != ':' || !read_fixed(&p, 2, &mi)) goto bad;
    if (*p == ':') {
      p++;
      if (!read_fixed(&p, 2, &ss)) goto bad;
      if (*p == '.' || *p == ',') {        /* fraction: keep milliseconds */
        int scale = 100;
        p++;
        if (!isdigit((unsigned char)*p)) goto bad;
        for (; isdigit((unsigned char)*p); p++, scale /= 10)
          ms += (*p - '0') * scale;
      }
    }
    if (hh > 23 || mi > 59 || ss > 59) goto bad;
    if (*p == 'Z' || *p == 'z') {
      offset = 0;
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
      if (!read_fixed(&p, 2, &oh)) goto bad;
      if (*p == ':') p++;
      if (isdigit((unsigned char)*p) && !read_fixed(&p, 2, &om)) goto bad;
      if (oh > 14 || om > 59) goto bad;
      offset = sign * ((int64_t)oh * 3600000 + (int64_t)om * 60000);
    }
  }
  if (*p != 0) goto bad;
  t = days_from_civil(y, mo, d) * DAY_MS + (int64_t)hh * 3600000
    + (int64_t)mi * 60000 + (int64_t)ss * 1000 + ms;
  *out_ms = t - offset;
  return RV_OK;
bad:
  return rv_fail(err, RV_INVALID, "'%s' is not an ISO 8601 date or date-time",
                 s ? s : "");
}

void rv_datetime_format(int64_t ms, char *buf, size_t n){
  int64_t days = floor_div(ms, DAY_MS), msod = ms - days * DAY_MS, y;
  int m, d, frac = (int)(msod % 1000);

  civil_from_days(days, &y, &m, &d);
  if (frac)
    snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(msod / 3600000), (int)(msod / 60000 % 60),
             (int)(msod / 1000 % 60), frac);
  else
    snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
             (int)(msod / 3600000), (int)(msod / 60000 % 60),
             (int)(msod / 1000 % 60));
}

/*--- Cycles -------------------------------------------------------------*/

rv_status rv_cycle_parse(const char *s, rv_cycle *out, rv_err *err){
  const char *p = s, *slash2;
  rv_status rc;

  memset(out, 0, sizeof *out);
  out->repeat = -1;
  if (s == NULL || *p++ != 'R') goto bad;
  if (*p != '/') {
    int64_t n;
    if (!read_uint(&p, &n)) goto bad;
    out->repeat = (int)n;
  }
  if (*p++ != '/') goto bad;
  slash2 = strchr(p, '/');
  if (slash2 != NULL) {                    /* R[n]/start/duration */
    char start[64];
    size_t len = (size_t)(slash2 - p);
    if (len == 0 || len >= sizeof start) goto bad;
    memcpy(start, p, len);
    start[len] = 0;
    rc = rv_datetime_parse(start, &out->start_ms, err);
    if (rc != RV_OK) return rc;
    out->has_start = true;
    p = slash2 + 1;
  }
  rc = rv_duration_parse(p, &out->period, err);
  if (rc != RV_OK) return rc;
  if (rv_duration_ms(&out->period) <= 0)
    return rv_fail(err, RV_INVALID, "cycle '%s' has a zero period", s);
  return RV_OK;
bad:
  memset(out, 0, sizeof *out);
  return rv_fail(err, RV_INVALID,
                 "'%s' is not an ISO 8601 cycle (R[n]/[start/]duration)", s ? s : "");
}

/* With a start, firings are at start, start+P, start+2P, ... (a start in
** the past yields past due times: the scheduler fires them at once).
** Without one, at armed+P, armed+2P, ... */
int64_t rv_cycle_next(const rv_cycle *c, int64_t armed_ms, int n){
  if (n < 0 || (c->repeat >= 0 && n >= c->repeat)) return -1;
  if (c->has_start) return add_k(c->start_ms, &c->period, n);
  return add_k(armed_ms, &c->period, (int64_t)n + 1);
}
