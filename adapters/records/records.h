/*
** adapters/records/records.h -- the person data processes need, behind
** an interface a real backend (the central insurance and pension
** systems) can replace.
**
** Data: insured persons and pensioners (branch, county, Sheba, mobile,
** supplementary status), contribution history as spans of months, the
** dependents of a principal with their dependency end dates and
** supplementary status, the monthly account statement (premium due vs
** paid) of voluntary and self-employed contributors, and benefits paid
** earlier (e.g. a marriage grant). Dates are Jalali "yyyy/mm/dd", months
** "yyyy-mm", money integer Rials.
**
** The built-in backend reads the rec_* tables of the engine's store,
** filled by `ravand records load DIR` from CSV files (format in
** docs/adapters.md, "Records") or by the generator. Processes reach it
** through the adapter `records`: a service task with input
** {op, national_id, ...} gets a result object (see rv_records_query).
*/
#ifndef RV_RECORDS_H
#define RV_RECORDS_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/err.h"

struct rv_store;

/* A backend. Every method returns a new cJSON tree in *out that the
** caller frees with cJSON_Delete(); on error *out is NULL. */
typedef struct rv_records_ops {
  const char *name;
  /* {national_id, first_name, last_name, father_name, gender, birth_date,
  **  role, insurance_type, pension_no, branch, county, sheba, mobile,
  **  marital_status, supplementary}; RV_NOTFOUND when unknown. */
  rv_status (*person)(void *self, const char *nid, cJSON **out, rv_err *err);
  /* Array of {national_id, first_name, last_name, relation, gender,
  ** birth_date, dependency_end, supplementary}; as_of (Jalali date or
  ** NULL) keeps those whose dependency_end is empty or not before it. */
  rv_status (*dependents)(void *self, const char *nid, const char *as_of, cJSON **out, rv_err *err);
  /* Array of {from, to, days_per_month, wage_rials, insurance_type, workshop}, oldest first. */
  rv_status (*contributions)(void *self, const char *nid, cJSON **out, rv_err *err);
  /* Array of {period, due_rials, paid_rials, paid_date} of Jalali year. */
  rv_status (*statement)(void *self, const char *nid, int year, cJSON **out, rv_err *err);
  /* Array of {kind, date, amount_rials}. */
  rv_status (*benefits)(void *self, const char *nid, cJSON **out, rv_err *err);
  void      (*close)(void *self);       /* may be NULL */
  /* Whether the person is known, for the requests that only report found
  ** (summary, benefits, ...). May be NULL: person() answers then. */
  rv_status (*exists)(void *self, const char *nid, bool *found, rv_err *err);
} rv_records_ops;

typedef struct rv_records {
  const rv_records_ops *ops;
  void                 *self;
} rv_records;

/* The built-in backend over a store (borrowed; must outlive r). */
void rv_records_sqlite(rv_records *r /* OUT */, struct rv_store *st);

/* Forget what the built-in backend kept of the current transaction (who
** exists, contribution spans; records.c): `records load` calls it, as it
** changes the rec_* tables. */
void rv_records_forget(void);

/* Replace the backend the `records` adapter uses (NULL: back to the
** built-in one over the engine's store). r is borrowed. */
void rv_records_set_backend(const rv_records *r);

/* One request, as the adapter gets it:
**   {op:"person", national_id}            -> {found, person}
**   {op:"dependents", national_id [, as_of]} -> {found, dependents:[...]}
**   {op:"contributions", national_id}     -> {found, contributions:[...]}
**   {op:"summary", national_id, from:"yyyy-mm", to:"yyyy-mm"}
**   {op:"summary", national_id, before:"yyyy/mm/dd", months:N}
**        -> {found, from, to, paid_days, earnings_rials, months_paid, paid_in_to}
**           (days per month are capped at the month's length; earnings
**            prorate the monthly wage by days/length)
**   {op:"statement", national_id, year}   -> {found, year, months:[...], due_rials, paid_rials, balance_rials}
**   {op:"benefits", national_id}          -> {found, benefits:[...]}
** found is false when the person is unknown (the other fields are then
** empty). RV_INVALID for a bad request.
** Returns: new object in *out, caller frees with cJSON_Delete(). */
rv_status rv_records_query(const rv_records *r, const cJSON *req, cJSON **out /* OUT */, rv_err *err);

/* Load DIR/{persons,contributions,dependents,statements,benefits}.csv
** (each optional) into the rec_* tables: rows are validated, bad rows
** reported with file, line and reason and not loaded; good rows are
** upserted (replace: tables emptied first). Commits every 50,000 rows;
** loading again is harmless. Returns: new report in *out. */
rv_status rv_records_load(struct rv_store *st, const char *dir, bool replace, int64_t now,
                          cJSON **out /* OUT */, rv_err *err);

/* Write N generated persons (with histories, dependents, statements and
** benefits) as the CSV files rv_records_load reads, atomically, into
** dir. Deterministic in (n, seed). Returns: new report in *out. */
rv_status rv_records_generate(int64_t n, uint64_t seed, const char *dir,
                              cJSON **out /* OUT */, rv_err *err);
/* The same, plus a registry marriage file dir/marriages.csv of feed
** records whose spouses are partly the generated persons (60% each). */
rv_status rv_records_generate_feed(int64_t n, int64_t feed, uint64_t seed, const char *dir,
                                   cJSON **out /* OUT */, rv_err *err);

/* Normalise a mobile number (+98 / 0098 / 98 / 9 forms, Persian digits)
** to 09xxxxxxxxx in place; false if it is not a mobile number. */
bool rv_mobile_normalise(char *s);

#endif
