/*
** adapters/records/records.c -- the built-in records backend (rec_*
** tables), the request dispatcher and the `records` adapter.
**
** The adapter only reads. It answers from a zero-delay event with
** {found, ...}; an unknown person is found=false, not an error, so a
** gateway can branch on it; a malformed request is the BPMN error
** INVALID_INPUT; a store failure is a technical failure (retried).
*/
#include <string.h>
#include <event2/event.h>
#include "records/records.h"
#include "common/util.h"
#include "common/csv.h"
#include "adapter.h"
#include "cal/cal.h"
#include "core/json.h"
#include "core/mem.h"
#include "runtime/engine.h"
#include "store/store.h"

/*--- built-in backend -------------------------------------------------------*/

static void add_col(cJSON *o, const char *k, sqlite3_stmt *s, int i){
  switch (sqlite3_column_type(s, i)) {
  case SQLITE_NULL: cJSON_AddNullToObject(o, k); break;
  case SQLITE_INTEGER: cJSON_AddNumberToObject(o, k, (double)sqlite3_column_int64(s, i)); break;
  default: {
    const char *t = (const char *)sqlite3_column_text(s, i);
    if (t && *t) cJSON_AddStringToObject(o, k, t); else cJSON_AddNullToObject(o, k);
  }
  }
}

/* Rows of s as an array of objects with the given keys (one per column). */
static rv_status rows(rv_store *st, sqlite3_stmt *s, const char *const *keys, int nk,
                      cJSON **out, rv_err *err){
  cJSON *arr = cJSON_CreateArray();
  int r;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < nk; i++) add_col(o, keys[i], s, i);
    cJSON_AddItemToArray(arr, o);
  }
  sqlite3_reset(s);
  if (r != SQLITE_DONE) {
    cJSON_Delete(arr);
    return rv_fail(err, RV_IO, "records: %s", sqlite3_errmsg(rv_store_db(st)));
  }
  *out = arr;
  return RV_OK;
}

/*--- what one transaction already read ---------------------------------------*/

/* A case asks about the same person several times in one command (the
** person, two summaries of the contributions, the benefits: see
** processes/marriage-grant.bpmn), so the built-in backend keeps, per
** person, whether the record exists and the contribution spans. The rec_*
** tables only change in `ravand records load` (its own transaction, which
** also forgets this memo), so what was read holds while the store's
** transaction and generation stay (rv_store_gen: new at each BEGIN and
** each rollback, unique in the process). Outside a transaction nothing is
** kept. */
typedef struct rec_span { int lo, hi; int64_t dpm, wage; } rec_span;   /* month indexes */

#define MEMO_SLOTS 4
static struct rec_memo {
  const rv_store *st;
  unsigned  gen;
  char      nid[16];
  int8_t    exists;            /* -1 unknown, 0, 1 */
  bool      has_spans;
  rec_span *spans;
  int       n_spans;
} memo[MEMO_SLOTS];
static unsigned memo_next;

static struct rec_memo *memo_find(const rv_store *st, const char *nid, bool add){
  struct rec_memo *m;
  if (rv_store_depth(st) == 0 || strlen(nid) >= sizeof memo[0].nid) return NULL;
  for (int i = 0; i < MEMO_SLOTS; i++)
    if (memo[i].st == st && memo[i].gen == rv_store_gen(st) && strcmp(memo[i].nid, nid) == 0)
      return &memo[i];
  if (!add) return NULL;
  m = &memo[memo_next++ % MEMO_SLOTS];
  rv_free(m->spans);
  memset(m, 0, sizeof *m);
  m->st = st;
  m->gen = rv_store_gen(st);
  m->exists = -1;
  rv_strcpy_to(m->nid, sizeof m->nid, nid);
  return m;
}

void rv_records_forget(void){
  for (int i = 0; i < MEMO_SLOTS; i++) rv_free(memo[i].spans);
  memset(memo, 0, sizeof memo);
}

static void memo_exists(rv_store *st, const char *nid, bool found){
  struct rec_memo *m = memo_find(st, nid, true);
  if (m) m->exists = found;
}

static int month_index(int y, int m){ return y * 12 + (m - 1); }

/* One contribution span; false when a month does not parse (skipped). */
static bool span_of(const char *f, const char *t, int64_t dpm, int64_t wage, rec_span *out){
  int fy, fm, ty, tm;
  if (f == NULL || t == NULL || rv_jalali_parse_month(f, &fy, &fm) || rv_jalali_parse_month(t, &ty, &tm))
    return false;
  out->lo = month_index(fy, fm);
  out->hi = month_index(ty, tm);
  out->dpm = dpm;
  out->wage = wage;
  return true;
}

/* The spans of any backend's contributions array (new array in *out). */
static int spans_of_rows(const cJSON *rows, rec_span **out){
  int n = 0, cap = cJSON_GetArraySize(rows);
  const cJSON *sp;
  *out = rv_malloc(sizeof **out * (size_t)(cap > 0 ? cap : 1));
  cJSON_ArrayForEach(sp, rows)
    if (n < cap && span_of(rv_json_str(sp, "from"), rv_json_str(sp, "to"),
                           rv_json_int(sp, "days_per_month", 0), rv_json_int(sp, "wage_rials", 0), &(*out)[n]))
      n++;
  return n;
}

/* The built-in backend's spans, straight from the rows. */
static rv_status sq_spans(rv_store *st, const char *nid, rec_span **out, int *n, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT from_period, to_period, days_per_month, wage_rials"
    " FROM rec_contributions WHERE national_id=? ORDER BY from_period, workshop");
  int r, cap = 8;
  *n = 0;
  *out = rv_malloc(sizeof **out * (size_t)cap);
  rv_store_bind(s, "t", nid);
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) { cap *= 2; *out = rv_realloc(*out, sizeof **out * (size_t)cap); }
    if (span_of((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
                sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3), &(*out)[*n]))
      (*n)++;
  }
  sqlite3_reset(s);
  if (r != SQLITE_DONE) {
    rv_free(*out);
    *out = NULL;
    return rv_fail(err, RV_IO, "records: %s", sqlite3_errmsg(rv_store_db(st)));
  }
  return RV_OK;
}

static const char *const PERSON_KEYS[] = {
  "national_id", "first_name", "last_name", "father_name", "gender", "birth_date", "role",
  "insurance_type", "pension_no", "branch", "county", "sheba", "mobile", "marital_status",
  "supplementary",
};

static rv_status sq_person(void *self, const char *nid, cJSON **out, rv_err *err){
  rv_store *st = self;
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT national_id, first_name, last_name, father_name, gender, birth_date, role,"
    " insurance_type, pension_no, branch, county, sheba, mobile, marital_status, supplementary"
    " FROM rec_persons WHERE national_id=?");
  cJSON *arr = NULL;
  rv_status rc;
  *out = NULL;
  rv_store_bind(s, "t", nid);
  rc = rows(st, s, PERSON_KEYS, 15, &arr, err);
  if (rc != RV_OK) return rc;
  memo_exists(st, nid, cJSON_GetArraySize(arr) > 0);
  if (cJSON_GetArraySize(arr) == 0) {
    cJSON_Delete(arr);
    return rv_fail(err, RV_NOTFOUND, "no person %s", nid);
  }
  *out = cJSON_DetachItemFromArray(arr, 0);
  cJSON_Delete(arr);
  return RV_OK;
}

static rv_status sq_dependents(void *self, const char *nid, const char *as_of, cJSON **out, rv_err *err){
  static const char *const k[] = { "national_id", "first_name", "last_name", "relation", "gender",
                                   "birth_date", "dependency_end", "supplementary" };
  rv_store *st = self;
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT national_id, first_name, last_name, relation, gender, birth_date, dependency_end,"
    " supplementary FROM rec_dependents WHERE principal_id=?1"
    " AND (?2 IS NULL OR dependency_end IS NULL OR dependency_end='' OR dependency_end>=?2)"
    " ORDER BY birth_date, national_id");
  *out = NULL;
  rv_store_bind(s, "tt", nid, as_of);
  return rows(st, s, k, 8, out, err);
}

static rv_status sq_contributions(void *self, const char *nid, cJSON **out, rv_err *err){
  static const char *const k[] = { "from", "to", "days_per_month", "wage_rials", "insurance_type",
                                   "workshop" };
  rv_store *st = self;
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT from_period, to_period, days_per_month, wage_rials, insurance_type, workshop"
    " FROM rec_contributions WHERE national_id=? ORDER BY from_period, workshop");
  *out = NULL;
  rv_store_bind(s, "t", nid);
  return rows(st, s, k, 6, out, err);
}

static rv_status sq_statement(void *self, const char *nid, int year, cJSON **out, rv_err *err){
  static const char *const k[] = { "period", "due_rials", "paid_rials", "paid_date" };
  rv_store *st = self;
  char lo[16], hi[16];
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT period, due_rials, paid_rials, paid_date FROM rec_statements"
    " WHERE national_id=? AND period>=? AND period<=? ORDER BY period");
  *out = NULL;
  snprintf(lo, sizeof lo, "%04d-01", year % 10000);
  snprintf(hi, sizeof hi, "%04d-12", year % 10000);
  rv_store_bind(s, "ttt", nid, lo, hi);
  return rows(st, s, k, 4, out, err);
}

static rv_status sq_benefits(void *self, const char *nid, cJSON **out, rv_err *err){
  static const char *const k[] = { "kind", "date", "amount_rials" };
  rv_store *st = self;
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT kind, date, amount_rials FROM rec_benefits WHERE national_id=? ORDER BY date, kind");
  *out = NULL;
  rv_store_bind(s, "t", nid);
  return rows(st, s, k, 3, out, err);
}

static rv_status sq_exists(void *self, const char *nid, bool *found, rv_err *err){
  rv_store *st = self;
  struct rec_memo *m = memo_find(st, nid, false);
  sqlite3_stmt *s;
  int r;
  if (m && m->exists >= 0) { *found = m->exists; return RV_OK; }
  s = rv_store_stmt(st, "SELECT 1 FROM rec_persons WHERE national_id=?");
  rv_store_bind(s, "t", nid);
  r = sqlite3_step(s);
  sqlite3_reset(s);
  if (r != SQLITE_ROW && r != SQLITE_DONE)
    return rv_fail(err, RV_IO, "records: %s", sqlite3_errmsg(rv_store_db(st)));
  *found = r == SQLITE_ROW;
  memo_exists(st, nid, *found);
  return RV_OK;
}

static const rv_records_ops sqlite_ops = {
  .name = "sqlite",
  .person = sq_person,
  .dependents = sq_dependents,
  .contributions = sq_contributions,
  .statement = sq_statement,
  .benefits = sq_benefits,
  .close = NULL,                 /* statements belong to the store's cache */
  .exists = sq_exists,
};

void rv_records_sqlite(rv_records *r, rv_store *st){
  r->ops = &sqlite_ops;
  r->self = st;
}

/*--- requests ----------------------------------------------------------------*/

/* Aggregate contribution spans over months [lo, hi] (month indexes). */
static rv_status summary(const rec_span *spans, int n_spans, int lo, int hi, cJSON *res, rv_err *err){
  int n = hi - lo + 1;
  int *days;
  int64_t earnings = 0, paid_days = 0;
  int months_paid = 0;
  if (n <= 0 || n > 12 * 200) return rv_fail(err, RV_INVALID, "summary: the window must be 1..2400 months");
  days = rv_calloc((size_t)n, sizeof *days);
  for (int k = 0; k < n_spans; k++) {
    const rec_span *sp = &spans[k];
    int from = sp->lo > lo ? sp->lo : lo, to = sp->hi < hi ? sp->hi : hi;
    for (int i = from; i <= to; i++) {
      int y = i / 12, m = i % 12 + 1, len, d;
      len = rv_jalali_month_days(y, m);
      d = (int)(sp->dpm < len ? sp->dpm : len);
      if (d > len - days[i - lo]) d = len - days[i - lo];     /* two workshops: cap at the month */
      if (d <= 0) continue;
      days[i - lo] += d;
      earnings += sp->wage * d / len;
    }
  }
  for (int i = 0; i < n; i++) { paid_days += days[i]; if (days[i] > 0) months_paid++; }
  cJSON_AddNumberToObject(res, "paid_days", (double)paid_days);
  cJSON_AddNumberToObject(res, "earnings_rials", (double)earnings);
  cJSON_AddNumberToObject(res, "months_paid", months_paid);
  cJSON_AddBoolToObject(res, "paid_in_to", days[n - 1] > 0);
  rv_free(days);
  return RV_OK;
}

/* The spans of nid: from the memo, else read (and kept when the memo can). */
static rv_status spans_for(const rv_records *r, const char *nid, const rec_span **spans, int *n,
                           rec_span **owned, rv_err *err){
  struct rec_memo *m = NULL;
  rv_status rc;
  *owned = NULL;
  if (r->ops == &sqlite_ops) {
    m = memo_find(r->self, nid, true);
    if (m && m->has_spans) { *spans = m->spans; *n = m->n_spans; return RV_OK; }
    rc = sq_spans(r->self, nid, owned, n, err);
  } else {
    cJSON *x = NULL;
    rc = r->ops->contributions(r->self, nid, &x, err);
    if (rc == RV_OK) *n = spans_of_rows(x, owned);
    cJSON_Delete(x);
  }
  if (rc != RV_OK) return rc;
  *spans = *owned;
  if (m) {                              /* the memo owns them now */
    m->spans = *owned;
    m->n_spans = *n;
    m->has_spans = true;
    *owned = NULL;
  }
  return RV_OK;
}

/* "yyyy-mm" of a month index (as "%04d-%02d", without printf). */
static void month_text(char out[16], int i){
  int y = (i / 12) % 10000, m = i % 12 + 1;
  out[0] = (char)('0' + y / 1000);
  out[1] = (char)('0' + y / 100 % 10);
  out[2] = (char)('0' + y / 10 % 10);
  out[3] = (char)('0' + y % 10);
  out[4] = '-';
  out[5] = (char)('0' + m / 10);
  out[6] = (char)('0' + m % 10);
  out[7] = 0;
}

static rv_status summary_window(const cJSON *req, int *lo, int *hi, char from[16], char to[16], rv_err *err){
  const char *f = rv_json_str(req, "from"), *t = rv_json_str(req, "to"), *b = rv_json_str(req, "before");
  const char *why;
  int y, m, d;
  if (f && t) {
    if ((why = rv_jalali_parse_month(f, &y, &m)) != NULL) return rv_fail(err, RV_INVALID, "from: %s", why);
    *lo = month_index(y, m);
    if ((why = rv_jalali_parse_month(t, &y, &m)) != NULL) return rv_fail(err, RV_INVALID, "to: %s", why);
    *hi = month_index(y, m);
  } else if (b) {
    int64_t months = rv_json_int(req, "months", 0);
    if ((why = rv_jalali_parse(b, &y, &m, &d)) != NULL) return rv_fail(err, RV_INVALID, "before: %s", why);
    if (months < 1 || months > 2400) return rv_fail(err, RV_INVALID, "months: 1..2400 required with before");
    *hi = month_index(y, m);
    *lo = *hi - (int)months + 1;
  } else {
    return rv_fail(err, RV_INVALID, "summary needs from and to (yyyy-mm), or before (yyyy/mm/dd) and months");
  }
  if (*lo > *hi) return rv_fail(err, RV_INVALID, "summary: from is after to");
  if (*lo < 0) return rv_fail(err, RV_INVALID, "summary: window starts before year 0");
  month_text(from, *lo);
  month_text(to, *hi);
  return RV_OK;
}

rv_status rv_records_query(const rv_records *r, const cJSON *req, cJSON **out, rv_err *err){
  const char *op = rv_json_str(req, "op");
  char nid[32];
  cJSON *res, *x = NULL, *person = NULL;
  rv_status rc;
  bool found;

  *out = NULL;
  if (!cJSON_IsObject(req)) return rv_fail(err, RV_INVALID, "records: the input must be an object");
  if (op == NULL) return rv_fail(err, RV_INVALID, "records: op is required");
  if (rv_json_str(req, "national_id") == NULL || strlen(rv_json_str(req, "national_id")) >= sizeof nid)
    return rv_fail(err, RV_INVALID, "records: national_id is required");
  rv_strcpy_to(nid, sizeof nid, rv_json_str(req, "national_id"));
  rv_digits_ascii(nid);
  if (!rv_valid_national_id(nid)) return rv_fail(err, RV_INVALID, "records: '%s' is not a valid national ID", nid);

  /* only op person returns the record; the others say whether it exists */
  if (strcmp(op, "person") == 0 || r->ops->exists == NULL) {
    rc = r->ops->person(r->self, nid, &person, err);
    if (rc != RV_OK && rc != RV_NOTFOUND) return rc;
    found = rc == RV_OK;
  } else {
    rc = r->ops->exists(r->self, nid, &found, err);
    if (rc != RV_OK) return rc;
  }
  res = cJSON_CreateObject();
  cJSON_AddStringToObject(res, "national_id", nid);
  cJSON_AddBoolToObject(res, "found", found);
  rc = RV_OK;
  if (strcmp(op, "person") == 0) {
    if (person) { cJSON_AddItemToObject(res, "person", person); person = NULL; }
  } else if (strcmp(op, "dependents") == 0) {
    const char *as_of = rv_json_str(req, "as_of");
    int y, m, d;
    const char *why = as_of ? rv_jalali_parse(as_of, &y, &m, &d) : NULL;
    char norm[11];
    if (why) rc = rv_fail(err, RV_INVALID, "as_of: %s", why);
    else {
      if (as_of) snprintf(norm, sizeof norm, "%04d/%02d/%02d", y, m, d);
      rc = r->ops->dependents(r->self, nid, as_of ? norm : NULL, &x, err);
      if (rc == RV_OK) cJSON_AddItemToObject(res, "dependents", x);
    }
  } else if (strcmp(op, "contributions") == 0) {
    rc = r->ops->contributions(r->self, nid, &x, err);
    if (rc == RV_OK) cJSON_AddItemToObject(res, "contributions", x);
  } else if (strcmp(op, "summary") == 0) {
    int lo = 0, hi = 0;
    char from[16], to[16];
    const rec_span *spans = NULL;
    rec_span *owned = NULL;
    int n_spans = 0;
    rc = summary_window(req, &lo, &hi, from, to, err);
    if (rc == RV_OK) rc = spans_for(r, nid, &spans, &n_spans, &owned, err);
    if (rc == RV_OK) {
      cJSON_AddStringToObject(res, "from", from);
      cJSON_AddStringToObject(res, "to", to);
      rc = summary(spans, n_spans, lo, hi, res, err);
    }
    rv_free(owned);
  } else if (strcmp(op, "statement") == 0) {
    int64_t year = rv_json_int(req, "year", 0);
    if (year < 1300 || year > 1600) rc = rv_fail(err, RV_INVALID, "statement: year 1300..1600 is required");
    else rc = r->ops->statement(r->self, nid, (int)year, &x, err);
    if (rc == RV_OK) {
      int64_t due = 0, paid = 0;
      const cJSON *m;
      cJSON_ArrayForEach(m, x) { due += rv_json_int(m, "due_rials", 0); paid += rv_json_int(m, "paid_rials", 0); }
      cJSON_AddNumberToObject(res, "year", (double)year);
      cJSON_AddItemToObject(res, "months", x);
      cJSON_AddNumberToObject(res, "due_rials", (double)due);
      cJSON_AddNumberToObject(res, "paid_rials", (double)paid);
      cJSON_AddNumberToObject(res, "balance_rials", (double)(paid - due));
    }
  } else if (strcmp(op, "benefits") == 0) {
    rc = r->ops->benefits(r->self, nid, &x, err);
    if (rc == RV_OK) cJSON_AddItemToObject(res, "benefits", x);
  } else {
    rc = rv_fail(err, RV_INVALID, "records: unknown op '%s' (person, dependents, contributions,"
                 " summary, statement, benefits)", op);
  }
  cJSON_Delete(person);
  if (rc != RV_OK) { cJSON_Delete(res); return rc; }
  *out = res;
  return RV_OK;
}

/*--- the adapter -------------------------------------------------------------*/

static const rv_records *backend;      /* NULL: built-in over the engine's store */

void rv_records_set_backend(const rv_records *r){ backend = r; }

/* One answer: OK, a BPMN error for a bad request (the model may catch
** INVALID_INPUT), or false for a technical failure (retried). */
static bool answer(rv_engine *e, const cJSON *input, rv_answer *a){
  rv_records local;
  rv_err err;
  rv_status rc;
  if (backend == NULL) rv_records_sqlite(&local, rv_engine_store(e));
  rc = rv_records_query(backend ? backend : &local, input, &a->result, &err);
  if (rc == RV_OK) { a->outcome = RV_JOB_OK; return true; }
  snprintf(a->message, sizeof a->message, "%s", err.msg);
  if (rc != RV_INVALID) return false;
  a->outcome = RV_JOB_BPMN_ERROR;
  snprintf(a->code, sizeof a->code, "INVALID_INPUT");
  return true;
}

static void rec_run(evutil_socket_t fd, short what, void *p){
  rv_job_copy *j = p;
  rv_engine *e = rv_adapters_engine(j->base);
  rv_answer a;
  (void)fd; (void)what;
  memset(&a, 0, sizeof a);
  if (backend == NULL && e == NULL)
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, "records adapter: no engine bound to this loop");
  else if (answer(e, j->input, &a))
    j->done(j->arg, a.outcome, a.result, a.code[0] ? a.code : NULL, a.message[0] ? a.message : NULL);
  else
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, a.message);
  rv_job_copy_free(j);
}

/* In the command that created the job (the engine's own store, read in
** its transaction): see adapter.h. */
static bool records_answer_now(void *self, rv_engine *e, const rv_job_info *job, rv_answer *a){
  cJSON *empty = NULL;
  bool ok;
  (void)self;
  if (job->input == NULL) empty = cJSON_CreateObject();
  ok = answer(e, job->input ? job->input : empty, a);
  cJSON_Delete(empty);
  if (!ok) { cJSON_Delete(a->result); a->result = NULL; }
  return ok;
}

static rv_status records_invoke(void *self, struct event_base *base, const rv_job_info *job,
                                rv_adapter_done_fn done, void *arg){
  (void)self;
  return rv_job_defer(base, job, done, arg, rec_run);
}

const rv_adapter_ops rv_adapter_records = { .name = "records", .invoke = records_invoke,
                                             .answer_now = records_answer_now };
