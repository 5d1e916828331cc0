/*
** adapters/finance/export.c -- cutting ledger rows into batches and
** publishing each batch as one CSV file (see finance.h and
** docs/adapters.md "Payroll and finance" for the file format).
**
** Invariants:
**   - a row's batch_id goes from NULL to a batch once, in the transaction
**     that creates the batch (trigger fin_ledger_frozen), so every row is
**     in at most one batch, and an exported row in exactly one;
**   - the file is computed from the batch's rows and the batch row only
**     (no clock, no locale, rows in id order), so every export of a batch
**     gives the same bytes; the first publication records their SHA-256
**     and later ones are checked against it *before* the rename;
**   - a file is visible under its name only complete (temp, fsync,
**     rename, fsync dir); a crash leaves at most a hidden ".name.PID.tmp",
**     removed by the next publication of that batch.
** Crash points (RV_TEST_CRASH_AT): export-batched (batch committed, no
** file yet), export-partial (the first row written and flushed),
** export-written, export-synced, export-renamed (util.c).
*/
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include "core/sha256.h"
#include "finance/finance.h"
#include "common/util.h"
#include "core/buf.h"
#include "core/mem.h"

void rv_csv_cell(rv_buf *b, const char *s){
  bool formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
                 s[0] == '\t' || s[0] == '\r';
  size_t n = strlen(s);
  /* quote what RFC 4180 requires, and leading/trailing blanks, which
  ** readers (ours included) trim from unquoted cells */
  bool quote = strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' || s[0] == '\t' ||
               (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'));
  if (!quote && !formula) { rv_buf_adds(b, s); return; }
  if (quote) rv_buf_adds(b, "\"");
  if (formula) rv_buf_adds(b, "'");
  for (const char *p = s; *p; p++) {
    if (*p == '"') rv_buf_adds(b, "\"\"");
    else rv_buf_add(b, p, 1);
  }
  if (quote) rv_buf_adds(b, "\"");
}

static const char *const HEADER_PAYROLL =
  "batch_id,line,ledger_id,national_id,period,kind,amount_rials,reference,idempotency_key\r\n";
static const char *const HEADER_FINANCE =
  "batch_id,line,ledger_id,national_id,sheba,amount_rials,kind,reference,period,idempotency_key\r\n";

#define SQL_BATCH_GET \
  "SELECT ledger, period, created, row_count, sum_rials, file_name, sha256, published" \
  " FROM fin_batches WHERE id=?"
#define SQL_BATCH_ROWS \
  "SELECT id, national_id, period, sheba, amount_rials, kind, reference, job_key" \
  " FROM fin_ledger WHERE batch_id=? ORDER BY id"

static const char *col(sqlite3_stmt *s, int i){
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? (const char *)t : "";
}

rv_status rv_export_get(rv_store *st, int64_t batch, rv_export_report *r, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, SQL_BATCH_GET);
  memset(r, 0, sizeof *r);
  rv_store_bind(s, "i", batch);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return rv_fail(err, RV_NOTFOUND, "no export batch %lld", (long long)batch);
  }
  r->batch = batch;
  snprintf(r->ledger, sizeof r->ledger, "%s", col(s, 0));
  snprintf(r->period, sizeof r->period, "%s", col(s, 1));
  r->created = sqlite3_column_int64(s, 2);
  r->rows = sqlite3_column_int64(s, 3);
  r->sum_rials = sqlite3_column_int64(s, 4);
  snprintf(r->file, sizeof r->file, "%s", col(s, 5));
  snprintf(r->sha256, sizeof r->sha256, "%s", col(s, 6));
  r->published = sqlite3_column_int64(s, 7);
  sqlite3_reset(s);
  return RV_OK;
}

cJSON *rv_export_report_json(const rv_export_report *r){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "batch", (double)r->batch);
  cJSON_AddStringToObject(o, "ledger", r->ledger);
  if (r->period[0]) cJSON_AddStringToObject(o, "period", r->period);
  else cJSON_AddNullToObject(o, "period");
  cJSON_AddNumberToObject(o, "rows", (double)r->rows);
  cJSON_AddNumberToObject(o, "sum_rials", (double)r->sum_rials);
  cJSON_AddStringToObject(o, "file", r->file);
  if (r->sha256[0]) cJSON_AddStringToObject(o, "sha256", r->sha256);
  else cJSON_AddNullToObject(o, "sha256");
  cJSON_AddNumberToObject(o, "created", (double)r->created);
  if (r->published) cJSON_AddNumberToObject(o, "published", (double)r->published);
  else cJSON_AddNullToObject(o, "published");
  return o;
}

static void emit(rv_publish *p, rv_sha256_ctx *h, rv_buf *b){
  fwrite(b->p, 1, b->len, p->f);
  rv_sha256_add(h, b->p, b->len);
  b->len = 0;
  if (b->p) b->p[0] = 0;
}

rv_status rv_export_publish(rv_store *st, int64_t batch, const char *dir, int64_t now,
                            rv_export_report *r, rv_err *err){
  char name[sizeof r->file], sha[65];
  bool fin;
  rv_publish pub;
  rv_sha256_ctx *h;
  unsigned char digest[RV_SHA256_BYTES];
  sqlite3_stmt *s;
  rv_buf b;
  int64_t n = 0, sum = 0;
  rv_status rc = rv_export_get(st, batch, r, err);

  if (rc != RV_OK) return rc;
  snprintf(name, sizeof name, "%s", r->file);       /* file holds the bare name here */
  fin = strcmp(r->ledger, "finance") == 0;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return rv_fail(err, RV_IO, "cannot create directory '%s': %s", dir, strerror(errno));
  rv_publish_clean(dir, name);
  rc = rv_publish_begin(&pub, dir, name, "export", err);
  if (rc != RV_OK) return rc;
  h = rv_sha256_begin();
  rv_buf_init(&b, 1 << 20);
  rv_buf_adds(&b, fin ? HEADER_FINANCE : HEADER_PAYROLL);
  emit(&pub, h, &b);
  s = rv_store_stmt(st, SQL_BATCH_ROWS);
  rv_store_bind(s, "i", batch);
  while (sqlite3_step(s) == SQLITE_ROW) {
    char num[32];
    n++;
    sum += sqlite3_column_int64(s, 4);
    rv_buf_printf(&b, "%lld,%lld,%lld,", (long long)batch, (long long)n,
                  (long long)sqlite3_column_int64(s, 0));
    rv_csv_cell(&b, col(s, 1));
    rv_buf_adds(&b, ",");
    snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(s, 4));
    if (fin) {
      rv_csv_cell(&b, col(s, 3)); rv_buf_adds(&b, ",");
      rv_buf_adds(&b, num); rv_buf_adds(&b, ",");
      rv_csv_cell(&b, col(s, 5)); rv_buf_adds(&b, ",");
      rv_csv_cell(&b, col(s, 6)); rv_buf_adds(&b, ",");
      rv_csv_cell(&b, col(s, 2)); rv_buf_adds(&b, ",");
    } else {
      rv_csv_cell(&b, col(s, 2)); rv_buf_adds(&b, ",");
      rv_csv_cell(&b, col(s, 5)); rv_buf_adds(&b, ",");
      rv_buf_adds(&b, num); rv_buf_adds(&b, ",");
      rv_csv_cell(&b, col(s, 6)); rv_buf_adds(&b, ",");
    }
    rv_csv_cell(&b, col(s, 7));
    rv_buf_adds(&b, "\r\n");
    emit(&pub, h, &b);
    if (n == 1) { fflush(pub.f); rv_crash_point("export-partial"); }   /* half a file on disk */
  }
  sqlite3_reset(s);
  rv_buf_fini(&b);
  rv_sha256_end(h, digest);
  sodium_bin2hex(sha, sizeof sha, digest, sizeof digest);
  if (n != r->rows || sum != r->sum_rials) {
    rv_publish_abort(&pub);
    return rv_fail(err, RV_CORRUPT, "batch %lld: rows %lld / sum %lld in the ledger, %lld / %lld"
                   " recorded", (long long)batch, (long long)n, (long long)sum,
                   (long long)r->rows, (long long)r->sum_rials);
  }
  if (r->sha256[0] && strcmp(r->sha256, sha) != 0) {
    rv_publish_abort(&pub);
    return rv_fail(err, RV_CORRUPT, "batch %lld: the file would differ from its first publication"
                   " (sha256 %s, recorded %s); nothing written", (long long)batch, sha, r->sha256);
  }
  rc = rv_publish_end(&pub, err);
  if (rc != RV_OK) return rc;
  if (r->sha256[0] == 0) {
    rc = rv_store_exec(st, err, "UPDATE fin_batches SET sha256=?, published=? WHERE id=? AND sha256 IS NULL",
                       "tii", sha, now, batch);
    if (rc != RV_OK) return rc;
    snprintf(r->sha256, sizeof r->sha256, "%s", sha);
    r->published = now;
  }
  snprintf(r->file, sizeof r->file, "%s", pub.final);
  return RV_OK;
}

rv_status rv_export_recover(rv_store *st, const char *ledger, const char *dir,
                            int *n_out, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st,
    "SELECT id, created FROM fin_batches WHERE ledger=? AND published IS NULL ORDER BY id");
  int64_t ids[64], created[64];
  int n = 0;
  rv_status rc = RV_OK;
  *n_out = 0;
  rv_store_bind(s, "t", ledger);
  while (n < 64 && sqlite3_step(s) == SQLITE_ROW) {
    ids[n] = sqlite3_column_int64(s, 0);
    created[n++] = sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  for (int i = 0; i < n && rc == RV_OK; i++) {
    rv_export_report r;
    /* "published" is the batch's creation time: recovery must not make
    ** the record depend on when it ran */
    rc = rv_export_publish(st, ids[i], dir, created[i], &r, err);
    if (rc == RV_OK) (*n_out)++;
  }
  return rc;
}

rv_status rv_export_batch(rv_store *st, const char *ledger, const char *period,
                          const char *dir, int64_t now, rv_export_report *out, rv_err *err){
  sqlite3_stmt *s;
  int64_t count = 0, sum = 0, id = 0;
  char name[128];
  rv_status rc;

  memset(out, 0, sizeof *out);
  if (strcmp(ledger, "payroll") != 0 && strcmp(ledger, "finance") != 0)
    return rv_fail(err, RV_INVALID, "no ledger '%s' (payroll or finance)", ledger);
  rc = rv_store_begin(st, err);
  if (rc != RV_OK) return rc;
  s = rv_store_stmt(st, "SELECT count(*), coalesce(sum(amount_rials), 0) FROM fin_ledger"
                        " WHERE ledger=?1 AND batch_id IS NULL AND (?2 IS NULL OR period=?2)");
  rv_store_bind(s, "tt", ledger, period);
  if (sqlite3_step(s) == SQLITE_ROW) {
    count = sqlite3_column_int64(s, 0);
    sum = sqlite3_column_int64(s, 1);
  } else {
    rc = rv_fail(err, RV_IO, "ledger sum: %s", sqlite3_errmsg(rv_store_db(st)));
  }
  sqlite3_reset(s);
  if (rc == RV_OK && count == 0)
    rc = rv_fail(err, RV_NOTFOUND, "nothing to export: no unbatched %s rows%s%s", ledger,
                 period ? " for period " : "", period ? period : "");
  if (rc == RV_OK) {
    s = rv_store_stmt(st, "SELECT coalesce(max(id), 0) + 1 FROM fin_batches");
    if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    snprintf(name, sizeof name, "%s-%s-b%06lld.csv", ledger, period ? period : "all", (long long)id);
    rc = rv_store_exec(st, err,
      "INSERT INTO fin_batches(id, ledger, period, created, row_count, sum_rials, file_name)"
      " VALUES(?,?,?,?,?,?,?)", "ittiiit", id, ledger, period, now, count, sum, name);
  }
  if (rc == RV_OK)
    rc = rv_store_exec(st, err, "UPDATE fin_ledger SET batch_id=?1 WHERE ledger=?2"
                       " AND batch_id IS NULL AND (?3 IS NULL OR period=?3)", "itt", id, ledger, period);
  if (rc == RV_OK && rv_store_changes(st) != count)
    rc = rv_fail(err, RV_CORRUPT, "batch %lld: %d rows assigned, %lld counted",
                 (long long)id, rv_store_changes(st), (long long)count);
  if (rc == RV_OK) rc = rv_store_commit(st, err);
  else rv_store_rollback(st);
  if (rc != RV_OK) return rc;
  rv_crash_point("export-batched");
  return rv_export_publish(st, id, dir, now, out, err);
}
