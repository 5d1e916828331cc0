/*
** adapters/bank/bank.c -- import of bank payment confirmations (see
** bank.h for the outcomes, docs/adapters.md for the file format).
**
** One import is one transaction on the engine's store:
**     BEGIN (or SAVEPOINT)  bank_imports row
**       per line: validate -> duplicate? -> amount check -> correlate
**                 (each correlation is an engine command in its own
**                 savepoint) -> bank_confirmations row
**     report stored in bank_imports.report
**     COMMIT                or ROLLBACK of everything on an engine error
** so a crash leaves either the whole file applied or none of it, and a
** re-import after a crash applies it then. The SHA-256 of the file is
** UNIQUE: a file seen before is not applied again.
**
** Rules (decisions, documented in docs/adapters.md):
**   - a line is rejected, not guessed at: bad CSV, wrong field count,
**     empty ids, an amount that is not a positive integer of Rials, a
**     paid_at that is not an ISO 8601 date or instant, and a last line
**     with no line break (the file may have been cut off there);
**   - a bank_ref applied before (correlated, started or buffered; in this
**     file or an earlier one) is a duplicate (UNIQUE index on bank_ref);
**   - a new bank_ref for a payment_id that was already confirmed, with no
**     instance waiting for it now, is a duplicate too: a second payment
**     (refund or investigate), not buffered for a future instance;
**   - when an instance is waiting for the payment and has a variable
**     amount_rials (else slip_amount) that differs from the line's
**     amount, the line is "mismatched" and not correlated: the instance
**     keeps waiting for an operator. A confirmation that is buffered (no
**     one waiting yet) is checked by no one: the process should compare
**     when it receives it.
*/
#include <string.h>
#include <sqlite3.h>
#include "bank/bank.h"
#include "common/csv.h"
#include "common/util.h"
#include "cal/cal.h"
#include "core/json.h"
#include "core/mem.h"
#include "store/store.h"

#define MAX_FILE      ((size_t)64 << 20)
#define DEFAULT_TTL   (7LL * 24 * 3600 * 1000)
#define MAX_ID        128

static const char *const COLS[4] = { "payment_id", "amount_rials", "paid_at", "bank_ref" };

typedef struct counts { int64_t correlated, started, buffered, duplicate, mismatched, rejected, applied_rials; } counts;

typedef struct line_in {
  int64_t     line;
  const char *payment_id, *paid_at, *bank_ref;
  int64_t     amount;
} line_in;

/*--- validation ------------------------------------------------------------------*/

static const char *id_check(const char *v){
  size_t n = strlen(v);
  if (n == 0) return "missing";
  if (n > MAX_ID) return "longer than 128 bytes";
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)v[i] < 0x20 || v[i] == 0x7F) return "contains a control character";
  return NULL;
}

static bool parse_amount(const char *s, int64_t *out){
  size_t n = strlen(s);
  int64_t v = 0;
  *out = 0;
  if (n == 0 || n > 16 || strspn(s, "0123456789") != n) return false;
  for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
  if (v < 1 || v > 1000000000000000LL) return false;
  *out = v;
  return true;
}

/* Fill li from the fields, or write the reason into why and return false. */
static bool check_line(char *const *f, const int col[4], line_in *li, char *why, size_t cap){
  const char *r;
  int64_t ms;
  li->payment_id = f[col[0]];
  li->paid_at = f[col[2]];
  li->bank_ref = f[col[3]];
  if ((r = id_check(li->payment_id)) != NULL) { snprintf(why, cap, "payment_id: %s", r); return false; }
  if ((r = id_check(li->bank_ref)) != NULL) { snprintf(why, cap, "bank_ref: %s", r); return false; }
  if (!parse_amount(f[col[1]], &li->amount)) {
    snprintf(why, cap, "amount_rials: '%.40s' is not a whole number of Rials (1..10^15, digits only)",
             f[col[1]]);
    return false;
  }
  if (rv_datetime_parse(li->paid_at, &ms, NULL) != RV_OK) {
    snprintf(why, cap, "paid_at: '%.40s' is not an ISO 8601 date or date-time", li->paid_at);
    return false;
  }
  return true;
}

/*--- one confirmation ---------------------------------------------------------*/

/* Whether bank_ref was applied before; imp and line say where. */
static bool applied_before(rv_store *st, const char *bank_ref, int64_t *imp, int64_t *line){
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT import_id, line FROM bank_confirmations WHERE bank_ref=?"
    " AND outcome IN ('correlated','started','buffered')");
  bool hit = false;
  rv_store_bind(s, "t", bank_ref);
  if (sqlite3_step(s) == SQLITE_ROW) {
    hit = true;
    *imp = sqlite3_column_int64(s, 0);
    *line = sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  return hit;
}

/* Whether payment_id was confirmed to an instance before (another bank_ref). */
static bool paid_before(rv_store *st, const char *payment_id, int64_t *imp, int64_t *line){
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT import_id, line FROM bank_confirmations WHERE payment_id=?"
    " AND outcome IN ('correlated','started') ORDER BY id DESC LIMIT 1");
  bool hit = false;
  rv_store_bind(s, "t", payment_id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    hit = true;
    *imp = sqlite3_column_int64(s, 0);
    *line = sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  return hit;
}

/* The amount the waiting instance expects, or 0 when it states none. */
static int64_t expected_amount(rv_engine *e, int64_t inst, const char **var){
  cJSON *o = NULL;
  const cJSON *vars;
  int64_t v = 0;
  rv_err err;
  *var = NULL;
  if (rv_engine_instance_json(e, inst, &o, &err) != RV_OK) return 0;
  vars = cJSON_GetObjectItemCaseSensitive(o, "variables");
  if (rv_json_rials(cJSON_GetObjectItemCaseSensitive(vars, "amount_rials"), &v)) *var = "amount_rials";
  else if (rv_json_rials(cJSON_GetObjectItemCaseSensitive(vars, "slip_amount"), &v)) *var = "slip_amount";
  cJSON_Delete(o);
  return v;
}

/* Decide and apply one valid line. Sets *outcome (static string),
** *inst and why. An error here is an engine error: the import stops. */
static rv_status confirm(rv_engine *e, const line_in *li, int64_t ttl_ms, const char **outcome,
                         int64_t *inst, char *why, size_t cap, rv_err *err){
  rv_store *st = rv_engine_store(e);
  int64_t imp = 0, ln = 0, waiting, expect;
  const char *var;
  cJSON *payload, *res = NULL;
  rv_status rc;

  *inst = 0;
  *why = 0;
  if (applied_before(st, li->bank_ref, &imp, &ln)) {
    *outcome = "duplicate";
    snprintf(why, cap, "bank_ref %.128s was applied before (import %lld, line %lld)",
             li->bank_ref, (long long)imp, (long long)ln);
    return RV_OK;
  }
  waiting = rv_engine_message_target(e, RV_BANK_MESSAGE, li->payment_id);   /* 0: none waits */
  if (waiting == 0 && paid_before(st, li->payment_id, &imp, &ln)) {
    *outcome = "duplicate";
    snprintf(why, cap, "payment %.128s was already confirmed (import %lld, line %lld) and no one "
             "waits for it: a second payment, not applied", li->payment_id, (long long)imp, (long long)ln);
    return RV_OK;
  }
  if (waiting > 0 && (expect = expected_amount(e, waiting, &var)) != 0 && expect != li->amount) {
    *outcome = "mismatched";
    *inst = waiting;
    snprintf(why, cap, "mismatched amount: paid %lld Rials, instance %lld expects %lld (%s); not correlated",
             (long long)li->amount, (long long)waiting, (long long)expect, var);
    return RV_OK;
  }
  payload = cJSON_CreateObject();
  cJSON_AddNumberToObject(payload, "amount_rials", (double)li->amount);
  cJSON_AddStringToObject(payload, "paid_at", li->paid_at);
  cJSON_AddStringToObject(payload, "bank_ref", li->bank_ref);
  rc = rv_engine_correlate(e, RV_BANK_MESSAGE, li->payment_id, payload, li->bank_ref, ttl_ms, &res, err);
  cJSON_Delete(payload);
  if (rc != RV_OK) return rc;
  {
    const char *r = rv_json_str(res, "result");
    *inst = rv_json_int(res, "instance", 0);
    *outcome = r && strcmp(r, "correlated") == 0 ? "correlated"
             : r && strcmp(r, "started") == 0 ? "started"
             : r && strcmp(r, "buffered") == 0 ? "buffered"
             : "duplicate";                   /* the engine had seen this message id */
    if (strcmp(*outcome, "duplicate") == 0)
      snprintf(why, cap, "message id %.128s was applied before", li->bank_ref);
    else if (strcmp(*outcome, "buffered") == 0)
      snprintf(why, cap, "no instance waits for payment %.128s yet; kept for delivery on arrival",
               li->payment_id);
  }
  cJSON_Delete(res);
  return RV_OK;
}

/*--- report --------------------------------------------------------------------------*/

static void count_outcome(counts *c, const char *o, int64_t amount){
  if (strcmp(o, "correlated") == 0) c->correlated++;
  else if (strcmp(o, "started") == 0) c->started++;
  else if (strcmp(o, "buffered") == 0) c->buffered++;
  else if (strcmp(o, "duplicate") == 0) c->duplicate++;
  else if (strcmp(o, "mismatched") == 0) c->mismatched++;
  else c->rejected++;
  if (strcmp(o, "correlated") == 0 || strcmp(o, "started") == 0 || strcmp(o, "buffered") == 0)
    c->applied_rials += amount;
}

static cJSON *counts_json(const counts *c){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "correlated", (double)c->correlated);
  cJSON_AddNumberToObject(o, "started", (double)c->started);
  cJSON_AddNumberToObject(o, "buffered", (double)c->buffered);
  cJSON_AddNumberToObject(o, "duplicate", (double)c->duplicate);
  cJSON_AddNumberToObject(o, "mismatched", (double)c->mismatched);
  cJSON_AddNumberToObject(o, "rejected", (double)c->rejected);
  return o;
}

static cJSON *line_json(int64_t line, const char *pid, int64_t amount, const char *paid_at,
                        const char *ref, const char *outcome, int64_t inst, const char *why){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "line", (double)line);
  cJSON_AddStringToObject(o, "outcome", outcome);
  if (pid) cJSON_AddStringToObject(o, "payment_id", pid);
  if (amount > 0) cJSON_AddNumberToObject(o, "amount_rials", (double)amount);
  if (paid_at) cJSON_AddStringToObject(o, "paid_at", paid_at);
  if (ref) cJSON_AddStringToObject(o, "bank_ref", ref);
  if (inst > 0) cJSON_AddNumberToObject(o, "instance", (double)inst);
  if (why && *why) cJSON_AddStringToObject(o, "reason", why);
  return o;
}

/*--- import --------------------------------------------------------------------------*/

#define SQL_CONF_INSERT \
  "INSERT INTO bank_confirmations(import_id, line, payment_id, amount_rials, paid_at, bank_ref," \
  " outcome, instance_id, reason, at) VALUES(?,?,?,?,?,?,?,?,?,?)"

static rv_status record_line(rv_store *st, int64_t imp, int64_t now, const cJSON *l, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, SQL_CONF_INSERT);
  int r;
  rv_store_bind(s, "iititttiti", imp, rv_json_int(l, "line", 0), rv_json_str(l, "payment_id"),
                rv_json_int(l, "amount_rials", 0), rv_json_str(l, "paid_at"),
                rv_json_str(l, "bank_ref"), rv_json_str(l, "outcome"),
                rv_json_int(l, "instance", 0), rv_json_str(l, "reason"), now);
  if (rv_json_int(l, "amount_rials", 0) == 0) sqlite3_bind_null(s, 4);
  if (rv_json_int(l, "instance", 0) == 0) sqlite3_bind_null(s, 8);
  r = sqlite3_step(s);
  sqlite3_reset(s);
  return r == SQLITE_DONE ? RV_OK
       : rv_fail(err, RV_IO, "bank_confirmations: %s", sqlite3_errmsg(rv_store_db(st)));
}

static rv_status stored_report(rv_store *st, const char *where, const char *key, int64_t id,
                               cJSON **out, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, "SELECT report FROM bank_imports WHERE sha256=?1 OR id=?2");
  rv_status rc = RV_NOTFOUND;
  *out = NULL;
  if (key) sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    *out = rv_json_parse((const char *)sqlite3_column_text(s, 0));
    rc = *out ? RV_OK : rv_fail(err, RV_CORRUPT, "bank import report unreadable");
  }
  sqlite3_reset(s);
  if (rc == RV_NOTFOUND) rv_fail(err, RV_NOTFOUND, "no bank import %s", where);
  return rc;
}

/* Find the header: the first non-blank record. col[i] = index of COLS[i]. */
static rv_status read_header(rv_csv *csv, int col[4], int *n_cols, rv_err *err){
  rv_csv_rec r;
  do {
    if (!rv_csv_next(csv, &r)) return rv_fail(err, RV_INVALID, "the file is empty: no header line");
  } while (r.n == 0 && r.error == NULL);
  if (r.error) return rv_fail(err, RV_INVALID, "header (line %lld): %s", (long long)r.line, r.error);
  for (int i = 0; i < 4; i++) {
    col[i] = -1;
    for (int k = 0; k < r.n; k++) {
      if (strcmp(r.f[k], COLS[i]) != 0) continue;
      if (col[i] >= 0) return rv_fail(err, RV_INVALID, "header: column '%s' appears twice", COLS[i]);
      col[i] = k;
    }
    if (col[i] < 0)
      return rv_fail(err, RV_INVALID, "header (line %lld) lacks column '%s' (expected "
                     "payment_id,amount_rials,paid_at,bank_ref)", (long long)r.line, COLS[i]);
  }
  *n_cols = r.n;
  return RV_OK;
}

/* One import in progress: the transaction, the counts, the report lines. */
typedef struct importer {
  rv_engine *e;
  rv_store  *st;
  int64_t    id, now, ttl;
  counts     c;
  cJSON     *lines;
} importer;

static rv_status imp_begin(importer *im, rv_engine *e, const rv_bank_opts *opts,
                           const char *source, const char *name, const char *sha, rv_err *err){
  rv_status rc;
  memset(im, 0, sizeof *im);
  im->e = e;
  im->st = rv_engine_store(e);
  im->now = rv_clock_now(rv_engine_clock(e));
  im->ttl = opts && opts->ttl_ms > 0 ? opts->ttl_ms : DEFAULT_TTL;
  rc = rv_store_begin(im->st, err);     /* BEGIN IMMEDIATE, or a savepoint in the caller's */
  if (rc != RV_OK) return rc;
  rc = rv_store_exec(im->st, err, "INSERT INTO bank_imports(source, file_name, sha256, imported)"
                     " VALUES(?,?,?,?)", "ttti", source, name, sha, im->now);
  if (rc != RV_OK) { rv_store_rollback(im->st); return rc; }
  im->id = rv_store_last_id(im->st);
  im->lines = cJSON_CreateArray();
  return RV_OK;
}

/* One line: pre_error (a reason found while reading it) or its four
** fields, then the decision. Errors are engine errors only. */
static rv_status imp_line(importer *im, int64_t line, const char *pre_error,
                          char *const f[4], rv_err *err){
  static const int col[4] = {0, 1, 2, 3};
  line_in li = {0};
  const char *outcome = "rejected";
  int64_t inst = 0;
  char why[512];
  cJSON *l;
  rv_status rc = RV_OK;

  li.line = line;
  if (pre_error) snprintf(why, sizeof why, "%s", pre_error);
  else if (check_line(f, col, &li, why, sizeof why)) {
    rc = confirm(im->e, &li, im->ttl, &outcome, &inst, why, sizeof why, err);
    if (rc != RV_OK) return rc;
  } else {                                  /* keep what could be read, for the operator */
    li.payment_id = f[0];
    li.bank_ref = f[3];
  }
  l = line_json(line, li.payment_id, li.amount, li.paid_at, li.bank_ref, outcome, inst, why);
  rc = record_line(im->st, im->id, im->now, l, err);
  count_outcome(&im->c, outcome, li.amount);
  cJSON_AddItemToArray(im->lines, l);
  return rc;
}

/* Commit with the report (rc == RV_OK) or roll everything back. Takes
** the lines. Returns: new report in *out on success. */
static rv_status imp_end(importer *im, rv_status rc, const char *name, const char *sha,
                         cJSON **out, rv_err *err){
  cJSON *rep = cJSON_CreateObject();
  int n = cJSON_GetArraySize(im->lines);
  cJSON_AddNumberToObject(rep, "import", (double)im->id);
  if (name) cJSON_AddStringToObject(rep, "file", name);
  if (sha) cJSON_AddStringToObject(rep, "sha256", sha);
  cJSON_AddNumberToObject(rep, "imported", (double)im->now);
  cJSON_AddFalseToObject(rep, "already_imported");
  cJSON_AddNumberToObject(rep, "total", n);
  cJSON_AddItemToObject(rep, "counts", counts_json(&im->c));
  cJSON_AddNumberToObject(rep, "applied_rials", (double)im->c.applied_rials);
  cJSON_AddItemToObject(rep, "lines", im->lines);
  im->lines = NULL;
  if (rc == RV_OK) {
    char *text = rv_json_print(rep);
    rc = rv_store_exec(im->st, err, "UPDATE bank_imports SET lines=?, report=? WHERE id=?", "iti",
                       (int64_t)n, text, im->id);
    rv_free(text);
  }
  if (rc == RV_OK) rc = rv_store_commit(im->st, err);
  else rv_store_rollback(im->st);
  if (rc != RV_OK) { cJSON_Delete(rep); return rc; }
  *out = rep;
  return RV_OK;
}

static rv_status import_lines(importer *im, rv_csv *csv, const int col[4], int n_cols, rv_err *err){
  rv_csv_rec r;
  rv_status rc = RV_OK;
  char why[256];

  while (rc == RV_OK && rv_csv_next(csv, &r)) {
    char *f[4] = { NULL, NULL, NULL, NULL };
    const char *pre = why;
    if (r.n == 0 && r.error == NULL) continue;                 /* blank line */
    if (r.error) snprintf(why, sizeof why, "malformed CSV: %s (column %d)", r.error, r.error_col);
    else if (!r.eol) snprintf(why, sizeof why, "the last line has no line break: the file may be cut off here");
    else if (r.n != n_cols) snprintf(why, sizeof why, "%d fields, the header has %d", r.n, n_cols);
    else {
      pre = NULL;
      for (int i = 0; i < 4; i++) f[i] = r.f[col[i]];
    }
    rc = imp_line(im, r.line, pre, f, err);
  }
  return rc;
}

rv_status rv_bank_import_file(rv_engine *e, const char *path, const rv_bank_opts *opts,
                              cJSON **out, rv_err *err){
  rv_store *st = rv_engine_store(e);
  char *buf = NULL, sha[65];
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  size_t len = 0;
  int col[4], n_cols = 0;
  importer im;
  rv_csv csv;
  rv_status rc;

  *out = NULL;
  rc = rv_file_read(path, MAX_FILE, &buf, &len, err);
  if (rc != RV_OK) return rc;
  rv_sha256_hex(buf, len, sha);
  if (stored_report(st, "", sha, -1, out, NULL) == RV_OK) {      /* seen: nothing to do */
    cJSON_ReplaceItemInObjectCaseSensitive(*out, "already_imported", cJSON_CreateTrue());
    rv_free(buf);
    return RV_OK;
  }
  rv_csv_init(&csv, buf, len, true);
  rc = read_header(&csv, col, &n_cols, err);
  if (rc == RV_OK) rc = imp_begin(&im, e, opts, "file", name, sha, err);
  if (rc == RV_OK) {
    rc = import_lines(&im, &csv, col, n_cols, err);
    rc = imp_end(&im, rc, name, sha, out, err);
  }
  rv_csv_fini(&csv);
  rv_free(buf);
  return rc;
}

/* A JSON value as the text a CSV field would have had; NULL if it is
** neither a string nor a whole number. buf >= 32. */
static const char *json_field(const cJSON *v, char *buf, size_t n){
  int64_t x;
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsNumber(v) && rv_num_whole(v->valuedouble, &x)) {
    snprintf(buf, n, "%lld", (long long)x);
    return buf;
  }
  return NULL;
}

rv_status rv_bank_import_json(rv_engine *e, const cJSON *items, const char *source,
                              const rv_bank_opts *opts, cJSON **out, rv_err *err){
  const cJSON *it;
  importer im;
  rv_status rc;
  int64_t n = 0;

  *out = NULL;
  if (!cJSON_IsArray(items)) return rv_fail(err, RV_INVALID, "confirmations must be an array");
  if (cJSON_GetArraySize(items) > 10000) return rv_fail(err, RV_INVALID, "at most 10000 confirmations per call");
  rc = imp_begin(&im, e, opts, "http", source, NULL, err);
  if (rc != RV_OK) return rc;
  cJSON_ArrayForEach(it, items) {
    char bufs[4][32], why[128];
    char *f[4];
    const char *pre = NULL;
    n++;
    if (!cJSON_IsObject(it)) pre = "not a JSON object";
    for (int i = 0; pre == NULL && i < 4; i++) {
      const char *v = json_field(cJSON_GetObjectItemCaseSensitive(it, COLS[i]), bufs[i], sizeof bufs[i]);
      if (v == NULL) { snprintf(why, sizeof why, "%s: missing, or not a string or whole number", COLS[i]); pre = why; }
      f[i] = (char *)v;
    }
    if (pre) for (int i = 0; i < 4; i++) f[i] = NULL;
    rc = imp_line(&im, n, pre, f, err);
    if (rc != RV_OK) break;
  }
  return imp_end(&im, rc, source, NULL, out, err);
}

rv_status rv_bank_report(rv_engine *e, int64_t id, cJSON **out, rv_err *err){
  char where[32];
  snprintf(where, sizeof where, "%lld", (long long)id);
  return stored_report(rv_engine_store(e), where, NULL, id, out, err);
}

rv_status rv_bank_list(rv_engine *e, cJSON **out, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(rv_engine_store(e),
    "SELECT id, source, file_name, sha256, imported, lines, report FROM bank_imports ORDER BY id DESC");
  cJSON *a = cJSON_CreateArray();
  (void)err;
  while (sqlite3_step(s) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject(), *r = rv_json_parse((const char *)sqlite3_column_text(s, 6));
    cJSON *cn = cJSON_DetachItemFromObjectCaseSensitive(r, "counts");
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(s, 0));
    cJSON_AddStringToObject(o, "source", (const char *)sqlite3_column_text(s, 1));
    if (sqlite3_column_type(s, 2) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "file", (const char *)sqlite3_column_text(s, 2));
    cJSON_AddNumberToObject(o, "imported", (double)sqlite3_column_int64(s, 4));
    cJSON_AddNumberToObject(o, "total", (double)sqlite3_column_int64(s, 5));
    cJSON_AddItemToObject(o, "counts", cn ? cn : cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "applied_rials", (double)rv_json_int(r, "applied_rials", 0));
    cJSON_Delete(r);
    cJSON_AddItemToArray(a, o);
  }
  sqlite3_reset(s);
  *out = a;
  return RV_OK;
}
