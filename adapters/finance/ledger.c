/*
** adapters/finance/ledger.c -- the `payroll` and `finance` adapters and
** the idempotent ledger write behind them: inside the command that
** reached the service task (answer_now), or through the loop in a short
** transaction of its own (finance.h says why both are exactly-once).
**
** Answers: OK with the ledger row {ledger_id, ledger, national_id, period,
** amount_rials, kind, reference, sheba, created}; the same row for every
** retry of the same job. BPMN error INVALID_INPUT when the input cannot
** make a row (the process may catch it, e.g. "no valid Sheba"); technical
** failure (retried) when the store is busy or no engine is bound;
** technical failure with "fingerprint" in the message when the job key
** already has a row with different input (an incident: someone changed
** the input of a job that had already been paid).
*/
#include <string.h>
#include <event2/event.h>
#include "finance/finance.h"
#include "common/util.h"
#include "common/csv.h"
#include "adapter.h"
#include "cal/cal.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "runtime/engine.h"

/*--- validation --------------------------------------------------------------*/

static bool text_ok(const char *s, size_t max){
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F) return false;
  return true;
}

/* Copy a string input, with Persian/Arabic-Indic digits made ASCII and
** spaces/dashes removed when strip is set. */
static bool get_str(const cJSON *in, const char *k, char *out, size_t cap, bool strip){
  const char *v = rv_json_str(in, k);
  char tmp[512];
  size_t w = 0;
  if (v == NULL || strlen(v) >= sizeof tmp) return false;
  snprintf(tmp, sizeof tmp, "%s", v);
  rv_digits_ascii(tmp);
  for (size_t i = 0; tmp[i]; i++) {
    if (strip && (tmp[i] == ' ' || tmp[i] == '-')) continue;
    if (w + 1 >= cap) return false;
    out[w++] = strip && tmp[i] >= 'a' && tmp[i] <= 'z' ? (char)(tmp[i] - 32) : tmp[i];
  }
  out[w] = 0;
  return true;
}

rv_status rv_ledger_parse(const char *ledger, const cJSON *in, int64_t now,
                          rv_ledger_entry *en, rv_err *err){
  bool fin = strcmp(ledger, "finance") == 0;
  const char *why;
  int jy, jm, jd;
  rv_buf fp;

  memset(en, 0, sizeof *en);
  if (!fin && strcmp(ledger, "payroll") != 0) return rv_fail(err, RV_INVALID, "no ledger '%s'", ledger);
  snprintf(en->ledger, sizeof en->ledger, "%s", ledger);
  if (!cJSON_IsObject(in)) return rv_fail(err, RV_INVALID, "input must be an object");
  if (!get_str(in, "national_id", en->national_id, sizeof en->national_id, true) ||
      !rv_valid_national_id(en->national_id))
    return rv_fail(err, RV_INVALID, "national_id: missing or not a valid national ID");
  if (!rv_json_rials(cJSON_GetObjectItemCaseSensitive(in, "amount_rials"), &en->amount_rials))
    return rv_fail(err, RV_INVALID, "amount_rials: must be a whole number of Rials, 1..10^15");
  if (!get_str(in, "kind", en->kind, sizeof en->kind, false) || !text_ok(en->kind, 128))
    return rv_fail(err, RV_INVALID, "kind: missing, empty, too long or has control characters");
  if (cJSON_GetObjectItemCaseSensitive(in, "reference") != NULL &&
      (!get_str(in, "reference", en->reference, sizeof en->reference, false) ||
       !text_ok(en->reference, 128)))
    return rv_fail(err, RV_INVALID, "reference: not a string of 1..128 printable characters");
  if (cJSON_GetObjectItemCaseSensitive(in, "period") != NULL || !fin) {
    if (!get_str(in, "period", en->period, sizeof en->period, false))
      return rv_fail(err, RV_INVALID, "period: missing; a Jalali month yyyy-mm is required");
    if ((why = rv_jalali_parse_month(en->period, &jy, &jm)) != NULL)
      return rv_fail(err, RV_INVALID, "period: %s", why);
    snprintf(en->period, sizeof en->period, "%04d-%02d", jy, jm);
  }
  if (fin) {
    if (!get_str(in, "sheba", en->sheba, sizeof en->sheba, true) || !rv_valid_sheba(en->sheba))
      return rv_fail(err, RV_INVALID, "sheba: missing or not a valid Sheba (IR + 24 digits, mod 97)");
    if (en->reference[0] == 0)
      return rv_fail(err, RV_INVALID, "reference: required for a finance payment document");
  }
  /* the fingerprint covers what the input said, not defaults derived from now */
  rv_buf_init(&fp, 4096);
  rv_buf_printf(&fp, "%s\x1f%s\x1f%s\x1f%s\x1f%lld\x1f%s\x1f%s", en->ledger, en->national_id,
                en->period, en->sheba, (long long)en->amount_rials, en->kind, en->reference);
  rv_sha256_hex(fp.p, fp.len, en->fingerprint);
  rv_buf_fini(&fp);
  if (en->period[0] == 0) {
    rv_jalali_today(now, &jy, &jm, &jd);
    snprintf(en->period, sizeof en->period, "%04d-%02d", jy, jm);
  }
  return RV_OK;
}

/*--- the idempotent write ----------------------------------------------------*/

#define SQL_LEDGER_GET \
  "SELECT id, ledger, national_id, period, amount_rials, kind, reference, sheba, created," \
  " fingerprint FROM fin_ledger WHERE job_key=?"

/* A ledger row as the adapter answers it; reference and sheba NULL when
** the row has none. */
static cJSON *ledger_json(int64_t id, const char *ledger, const char *nid, const char *period,
                          int64_t amount, const char *kind, const char *reference,
                          const char *sheba, int64_t created){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "ledger_id", (double)id);
  cJSON_AddStringToObject(o, "ledger", ledger);
  cJSON_AddStringToObject(o, "national_id", nid);
  cJSON_AddStringToObject(o, "period", period);
  cJSON_AddNumberToObject(o, "amount_rials", (double)amount);
  cJSON_AddStringToObject(o, "kind", kind);
  if (reference) cJSON_AddStringToObject(o, "reference", reference);
  if (sheba) cJSON_AddStringToObject(o, "sheba", sheba);
  cJSON_AddNumberToObject(o, "created", (double)created);
  return o;
}

static cJSON *row_json(sqlite3_stmt *s){
  return ledger_json(sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
                     (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
                     sqlite3_column_int64(s, 4), (const char *)sqlite3_column_text(s, 5),
                     (const char *)sqlite3_column_text(s, 6), (const char *)sqlite3_column_text(s, 7),
                     sqlite3_column_int64(s, 8));
}

/* Look the key up; *out_row set when found. */
static rv_status find_row(rv_store *st, const char *key, const char *fingerprint,
                          cJSON **out_row, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, SQL_LEDGER_GET);
  rv_status rc = RV_OK;
  int r;
  rv_store_bind(s, "t", key);
  r = sqlite3_step(s);
  if (r == SQLITE_ROW) {
    if (strcmp((const char *)sqlite3_column_text(s, 9), fingerprint) != 0)
      rc = rv_fail(err, RV_CONFLICT, "job key '%s' already has ledger row %lld with a different"
                   " input fingerprint; refusing a second row", key, (long long)sqlite3_column_int64(s, 0));
    else *out_row = row_json(s);
  } else if (r != SQLITE_DONE) {
    rc = rv_fail(err, RV_IO, "ledger lookup: %s", sqlite3_errmsg(rv_store_db(st)));
  }
  sqlite3_reset(s);
  return rc;
}

/* The write itself, inside the caller's transaction. */
static rv_status put_in_tx(rv_store *st, const rv_ledger_entry *en, const char *key,
                           int64_t instance_id, const char *element_id, int64_t now,
                           cJSON **out_row, rv_err *err){
  rv_status rc = rv_store_exec(st, err,
    "INSERT OR IGNORE INTO fin_ledger(ledger, job_key, fingerprint, instance_id, element_id,"
    " national_id, period, sheba, amount_rials, kind, reference, created)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", "tttittttitti",
    en->ledger, key, en->fingerprint, instance_id, element_id, en->national_id, en->period,
    en->sheba[0] ? en->sheba : NULL, en->amount_rials, en->kind,
    en->reference[0] ? en->reference : NULL, now);
  /* inserted: the row is what was bound (the callers looked the key up
  ** first, so it is new); ignored: the row that is there answers */
  if (rc == RV_OK && sqlite3_changes(rv_store_db(st)) == 1)
    *out_row = ledger_json(sqlite3_last_insert_rowid(rv_store_db(st)), en->ledger, en->national_id,
                           en->period, en->amount_rials, en->kind,
                           en->reference[0] ? en->reference : NULL, en->sheba[0] ? en->sheba : NULL, now);
  else if (rc == RV_OK) rc = find_row(st, key, en->fingerprint, out_row, err);
  if (rc == RV_OK && *out_row == NULL) rc = rv_fail(err, RV_CORRUPT, "ledger row vanished");
  return rc;
}

rv_status rv_ledger_put(rv_store *st, const rv_ledger_entry *en, const char *key,
                        int64_t instance_id, const char *element_id, int64_t now,
                        cJSON **out_row, rv_err *err){
  rv_status rc;
  *out_row = NULL;
  if (rv_store_depth(st) != 0)
    return rv_fail(err, RV_CONFLICT, "ledger write inside another transaction");
  rc = find_row(st, key, en->fingerprint, out_row, err);      /* the common retry case: no write lock */
  if (rc != RV_OK || *out_row) return rc;
  rc = rv_store_begin(st, err);
  if (rc != RV_OK) return rc;
  rc = put_in_tx(st, en, key, instance_id, element_id, now, out_row, err);
  if (rc == RV_OK) rc = rv_store_commit(st, err);
  else rv_store_rollback(st);
  if (rc != RV_OK) { cJSON_Delete(*out_row); *out_row = NULL; }
  return rc;
}

/*--- the adapters --------------------------------------------------------------*/

typedef struct ledger_job {
  struct event_base *base;
  rv_adapter_done_fn done;
  void           *arg;
  rv_ledger_entry en;
  char           *key, *element;
  int64_t         instance;
  int             waits;
  /* an answer decided at invoke time (validation) */
  rv_job_outcome  outcome;
  char           *code, *msg;
  bool            decided;
} ledger_job;

static void job_free(ledger_job *j){
  rv_free(j->key); rv_free(j->element); rv_free(j->code); rv_free(j->msg); rv_free(j);
}

/* Group commit: the rows of every job that reached the adapter in one
** loop pass are written in one transaction (a savepoint each, so a bad
** one fails alone), and the answers are given after its COMMIT -- as
** before, never before the row is durable. One transaction per row was
** one fsync per payment: the month-end batch's bound. */
static struct pending_q { ledger_job **v; int n, cap; bool armed; int waits; } pq;

static void answer_all(ledger_job **v, int n, const rv_err *commit_err, cJSON **rows,
                       rv_status *rcs, rv_err *errs){
  for (int i = 0; i < n; i++) {
    ledger_job *j = v[i];
    if (commit_err) { cJSON_Delete(rows[i]); j->done(j->arg, RV_JOB_FAILED, NULL, NULL, commit_err->msg); }
    else if (rcs[i] != RV_OK) j->done(j->arg, RV_JOB_FAILED, NULL, NULL, errs[i].msg);
    else j->done(j->arg, RV_JOB_OK, rows[i], NULL, NULL);
    job_free(j);
  }
}

static void flush(evutil_socket_t fd, short what, void *p){
  struct event_base *base = p;
  rv_engine *e = rv_adapters_engine(base);
  ledger_job **v = pq.v;
  int n = pq.n;
  cJSON **rows;
  rv_status *rcs, rc;
  rv_err *errs, err;
  rv_store *st;
  (void)fd; (void)what;
  if (e != NULL && rv_store_depth(rv_engine_store(e)) != 0 && pq.waits < 1000) {
    /* a transaction is open on this connection (we run inside someone's
    ** loop turn): come back when it has ended, never write inside it */
    struct timeval tv = {0, 1000};
    pq.waits++;
    if (event_base_once(base, -1, EV_TIMEOUT, flush, base, &tv) == 0) return;
  }
  pq.v = NULL; pq.n = pq.cap = 0; pq.armed = false; pq.waits = 0;
  if (n == 0) { rv_free(v); return; }
  rows = rv_calloc((size_t)n, sizeof *rows);
  rcs = rv_calloc((size_t)n, sizeof *rcs);
  errs = rv_calloc((size_t)n, sizeof *errs);
  if (e == NULL) {
    rv_fail(&err, RV_IO, "ledger adapter: no engine bound to this loop");
    answer_all(v, n, &err, rows, rcs, errs);
    goto out;
  }
  st = rv_engine_store(e);
  if (rv_store_depth(st) != 0) {
    rv_fail(&err, RV_BUSY, "ledger adapter: a transaction stayed open");
    answer_all(v, n, &err, rows, rcs, errs);
    goto out;
  }
  rc = rv_store_begin(st, &err);
  if (rc != RV_OK) { answer_all(v, n, &err, rows, rcs, errs); goto out; }
  for (int i = 0; i < n; i++) {
    ledger_job *j = v[i];
    rcs[i] = find_row(st, j->key, j->en.fingerprint, &rows[i], &errs[i]);   /* a retry */
    if (rcs[i] != RV_OK || rows[i]) continue;
    rcs[i] = rv_store_begin(st, &errs[i]);                                    /* savepoint */
    if (rcs[i] != RV_OK) continue;
    rcs[i] = put_in_tx(st, &j->en, j->key, j->instance, j->element,
                       rv_clock_now(rv_engine_clock(e)), &rows[i], &errs[i]);
    if (rcs[i] == RV_OK) rcs[i] = rv_store_commit(st, &errs[i]);
    else { rv_store_rollback(st); cJSON_Delete(rows[i]); rows[i] = NULL; }
  }
  rc = rv_store_commit(st, &err);
  if (rc != RV_OK) { answer_all(v, n, &err, rows, rcs, errs); goto out; }
  for (int i = 0; i < n; i++)            /* once per row, as when each had its own commit */
    rv_crash_point("ledger-written");   /* rows durable, answers not yet given */
  answer_all(v, n, NULL, rows, rcs, errs);
out:
  rv_free(rows); rv_free(rcs); rv_free(errs); rv_free(v);
}

static void run(evutil_socket_t fd, short what, void *p){
  ledger_job *j = p;
  struct timeval tv = {0, 0};
  (void)fd; (void)what;
  if (j->decided) {
    j->done(j->arg, j->outcome, NULL, j->code, j->msg);
    job_free(j);
    return;
  }
  if (pq.n == pq.cap) {
    pq.cap = pq.cap ? pq.cap * 2 : 64;
    pq.v = rv_realloc(pq.v, sizeof *pq.v * (size_t)pq.cap);
  }
  pq.v[pq.n++] = j;
  if (!pq.armed) {
    /* after every job of this loop pass has been queued */
    if (event_base_once(j->base, -1, EV_TIMEOUT, flush, j->base, &tv) == 0) pq.armed = true;
    else flush(-1, 0, j->base);
  }
}

static rv_status ledger_invoke(const char *ledger, struct event_base *base, const rv_job_info *job,
                               rv_adapter_done_fn done, void *arg){
  ledger_job *j = rv_calloc(1, sizeof *j);
  rv_engine *e = rv_adapters_engine(base);
  struct timeval tv = {0, 0};
  rv_err err;
  j->base = base;
  j->done = done;
  j->arg = arg;
  j->key = rv_strdup(job->key);
  j->element = rv_strdup(job->element_id);
  j->instance = job->instance_id;
  if (e != NULL &&
      rv_ledger_parse(ledger, job->input, rv_clock_now(rv_engine_clock(e)), &j->en, &err) != RV_OK) {
    j->decided = true;
    j->outcome = RV_JOB_BPMN_ERROR;
    j->code = rv_strdup("INVALID_INPUT");
    j->msg = rv_asprintf("%s: %s", ledger, err.msg);
  }
  if (event_base_once(base, -1, EV_TIMEOUT, run, j, &tv) != 0) {
    job_free(j);
    return RV_IO;
  }
  return RV_OK;
}

/* Inside the command that created the job (adapter.h answer_now): the
** ledger is a table of the engine's own store, so the row is written in
** the command's transaction -- the payment document and the step of the
** process that asked for it commit together, or neither does (the
** transactional outbox; `ravand export` is the relay). A retry of the same
** key finds its row as in the loop path. The single INSERT needs no
** savepoint: a statement that fails undoes itself and leaves the
** transaction as it was, and the job then goes through the loop, which
** reports the failure as before. */
static bool ledger_answer_now(const char *ledger, rv_engine *e, const rv_job_info *job, rv_answer *a){
  rv_ledger_entry en;
  rv_err err;
  rv_store *st = rv_engine_store(e);
  cJSON *row = NULL;
  int64_t now = rv_clock_now(rv_engine_clock(e));
  if (rv_ledger_parse(ledger, job->input, now, &en, &err) != RV_OK) {
    a->outcome = RV_JOB_BPMN_ERROR;
    snprintf(a->code, sizeof a->code, "INVALID_INPUT");
    snprintf(a->message, sizeof a->message, "%s: %.400s", ledger, err.msg);
    return true;
  }
  if (find_row(st, job->key, en.fingerprint, &row, &err) != RV_OK) return false;
  if (row == NULL) {
    if (put_in_tx(st, &en, job->key, job->instance_id, job->element_id, now, &row, &err) != RV_OK) {
      cJSON_Delete(row);
      return false;
    }
    rv_crash_point("ledger-written");   /* row written, command not yet committed */
  }
  a->outcome = RV_JOB_OK;
  a->result = row;
  return true;
}

static bool payroll_answer_now(void *self, rv_engine *e, const rv_job_info *job, rv_answer *a){
  (void)self;
  return ledger_answer_now("payroll", e, job, a);
}
static bool finance_answer_now(void *self, rv_engine *e, const rv_job_info *job, rv_answer *a){
  (void)self;
  return ledger_answer_now("finance", e, job, a);
}

static rv_status payroll_invoke(void *self, struct event_base *base, const rv_job_info *job,
                                rv_adapter_done_fn done, void *arg){
  (void)self;
  return ledger_invoke("payroll", base, job, done, arg);
}
static rv_status finance_invoke(void *self, struct event_base *base, const rv_job_info *job,
                                rv_adapter_done_fn done, void *arg){
  (void)self;
  return ledger_invoke("finance", base, job, done, arg);
}

const rv_adapter_ops rv_adapter_payroll = { .name = "payroll", .invoke = payroll_invoke,
                                             .answer_now = payroll_answer_now };
const rv_adapter_ops rv_adapter_finance = { .name = "finance", .invoke = finance_invoke,
                                             .answer_now = finance_answer_now };
