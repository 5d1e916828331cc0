/*
** cal/cal.h -- time arithmetic: ISO 8601 dates, durations and cycles, the
** Jalali (Solar Hijri) calendar, and the Asia/Tehran offset.
**
** All instants are int64 milliseconds since the Unix epoch (UTC).
** Asia/Tehran is UTC+03:30 without daylight saving (Iran abolished DST in
** 2022); earlier instants are not corrected for historic DST. Calendar
** arithmetic on durations (years, months, days) is done in Tehran local
** time, so "P1M" from the 31st clamps to the month's last day.
*/
#ifndef RV_CAL_H
#define RV_CAL_H
#include <stdbool.h>
#include <stdint.h>
#include "core/err.h"

#define RV_TEHRAN_OFFSET_MS ((int64_t)(3 * 3600 + 1800) * 1000)

typedef struct rv_duration {
  int  years, months, weeks, days;
  int  hours, minutes;
  double seconds;
} rv_duration;

/* "P1Y2M3DT4H5M6.5S", "P2W", "PT10S". Negative durations are rejected. */
rv_status rv_duration_parse(const char *s, rv_duration *out /* OUT */, rv_err *err);
/* Add d to t (calendar-aware as described above). */
int64_t   rv_duration_add(int64_t t, const rv_duration *d);
/* Total milliseconds when d has no years/months (else uses 30-day months
** and 365-day years: only for display and backoff). */
int64_t   rv_duration_ms(const rv_duration *d);

/* "2026-03-21T10:00:00Z", "2026-03-21T10:00:00+03:30", "2026-03-21T10:00:00"
** (no zone: Asia/Tehran), "2026-03-21" (midnight Tehran). */
rv_status rv_datetime_parse(const char *s, int64_t *out_ms /* OUT */, rv_err *err);
/* Format as "2026-03-21T06:30:00Z" (UTC); buf >= 32 bytes. */
void      rv_datetime_format(int64_t ms, char *buf, size_t n);

/* "R5/PT10M", "R/PT1H" (unbounded), "R3/2026-01-01T00:00:00Z/P1M". */
typedef struct rv_cycle {
  int         repeat;       /* -1 = unbounded */
  bool        has_start;
  int64_t     start_ms;
  rv_duration period;
} rv_cycle;
rv_status rv_cycle_parse(const char *s, rv_cycle *out /* OUT */, rv_err *err);
/* The due time of the (n+1)th firing, n = firings so far, given the time
** the timer was armed; returns -1 once the repetitions are used up. */
int64_t   rv_cycle_next(const rv_cycle *c, int64_t armed_ms, int n);

/* Jalali <-> Gregorian (proleptic; valid for Jalali years 1..3177). */
void rv_jalali_from_gregorian(int gy, int gm, int gd, int *jy, int *jm, int *jd);
void rv_gregorian_from_jalali(int jy, int jm, int jd, int *gy, int *gm, int *gd);
bool rv_jalali_is_leap(int jy);
int  rv_jalali_month_days(int jy, int jm);
/* Civil date in Tehran of instant t. */
void rv_tehran_date(int64_t t, int *y, int *m, int *d, int *hh, int *mm, int *ss);
/* Midnight Tehran of a Gregorian date, as an instant. */
int64_t rv_tehran_midnight(int gy, int gm, int gd);

/* Iranian identifiers, for rules and form validation. */
bool rv_valid_national_id(const char *s);   /* 10 digits, check digit */
bool rv_valid_sheba(const char *s);         /* "IR" + 24 digits, ISO 13616 mod 97 */
bool rv_valid_mobile(const char *s);        /* 09xxxxxxxxx */

/* An office or body name used as an authorization scope (branch, county,
** organisation, agreement): valid UTF-8, 1..64 code points, each a letter
** (ASCII, Latin, Greek, Cyrillic, Arabic and Persian, incl. Arabic-script
** presentation forms and marks), a digit (ASCII, Persian, Arabic-Indic), a
** space, '.', '_', '-', a zero-width non-joiner between letters, or '/'
** when allow_slash (agreement numbers such as "AG-1405/17"). No control,
** format or bidi characters, no leading or trailing space or ZWNJ.
** This checks a value already in normal form; normalise first with
** rv_fa_normalize / rv_fa_scope (core/fatext.h: Arabic yeh/kaf, digits,
** spaces), as `ravand principal add` and the runtime do. */
bool rv_valid_scope_value(const char *s, bool allow_slash);

#endif
