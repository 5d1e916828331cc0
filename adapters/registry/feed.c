/*
** adapters/registry/feed.c -- import of the civil-registry marriage file
** (see feed.h for the rules and docs/adapters.md for the format).
**
** An import goes through these states (feed_imports.state):
**
**     (new file) --structure ok--> running --last chunk--> done
**         \--no header / no END / count mismatch--> rejected
**
**   running -> running   [chunk_cb]  one transaction: up to `chunk`
**                         records, their messages, their issues and the
**                         new resume position (resume_pos, resume_line)
**   running -> done      [finish]    report written
** A file whose SHA-256 is known: done/rejected -> reported again, nothing
** applied; running -> resumed from resume_pos (a crash or an engine error
** stopped it).
*/
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/event.h>
#include <sqlite3.h>
#include "registry/feed.h"
#include "common/csv.h"
#include "common/util.h"
#include "cal/cal.h"
#include "core/mem.h"
#include "core/json.h"
#include "runtime/engine.h"
#include "store/store.h"

#define MSG_DEFAULT "marriage-registered"
#define MAX_FILE    ((size_t)1 << 31)

static const char *const COLS[6] = {
  "husband_national_id", "wife_national_id", "marriage_date",
  "certificate_no", "registry_office", "marriage_type",
};

/*--- record validation -----------------------------------------------------*/

static const char *nid_check(const char *v){
  size_t n = strlen(v);
  if (n == 0) return "missing";
  if (n != 10 || strspn(v, "0123456789") != 10) return "must be 10 digits";
  if (!rv_valid_national_id(v)) return "fails the national-ID check digit";
  return NULL;
}

/* "yyyy/mm/dd" (sep '/') or "yyyy-mm-dd" into out[11], as
** snprintf("%04d/%02d/%02d") writes it for the years a check lets
** through; snprintf itself beyond. */
static void date_text(char out[11], int y, int m, int d, char sep){
  if (y < 0 || y > 9999 || m < 0 || m > 99 || d < 0 || d > 99) {
    snprintf(out, 11, sep == '/' ? "%04d/%02d/%02d" : "%04d-%02d-%02d", y, m, d);
    return;
  }
  out[0] = (char)('0' + y / 1000); out[1] = (char)('0' + y / 100 % 10);
  out[2] = (char)('0' + y / 10 % 10); out[3] = (char)('0' + y % 10);
  out[4] = sep; out[5] = (char)('0' + m / 10); out[6] = (char)('0' + m % 10);
  out[7] = sep; out[8] = (char)('0' + d / 10); out[9] = (char)('0' + d % 10);
  out[10] = 0;
}

const char *rv_marriage_check(const char *const f[6], int ty, int tm, int td,
                              rv_marriage *m, char *why, size_t cap){
  const char *r;
  int y, mo, d;
  size_t n;

  memset(m, 0, sizeof *m);
#define BAD(...) do { snprintf(why, cap, __VA_ARGS__); return why; } while (0)
  if ((r = nid_check(f[0])) != NULL) BAD("husband_national_id: '%.40s' %s", f[0], r);
  if ((r = nid_check(f[1])) != NULL) BAD("wife_national_id: '%.40s' %s", f[1], r);
  if (strcmp(f[0], f[1]) == 0) BAD("wife_national_id: the same as husband_national_id");
  if ((r = rv_jalali_parse(f[2], &y, &mo, &d)) != NULL) BAD("marriage_date: '%.40s' %s", f[2], r);
  if (y > ty || (y == ty && (mo > tm || (mo == tm && d > td))))
    BAD("marriage_date: %04d/%02d/%02d is after the import date %04d/%02d/%02d", y, mo, d, ty, tm, td);
  n = strlen(f[3]);
  if (n == 0) BAD("certificate_no: missing");
  if (n > 32 || strspn(f[3], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-/") != n)
    BAD("certificate_no: '%.40s' must be 1..32 letters, digits, '-' or '/'", f[3]);
  n = strlen(f[4]);
  if (n == 0) BAD("registry_office: missing");
  if (n > 256) BAD("registry_office: longer than 256 bytes");
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)f[4][i] < 0x20 || f[4][i] == 0x7F) BAD("registry_office: control character");
  if (strcasecmp(f[5], "permanent") == 0 || strcmp(f[5], "دائم") == 0 || strcmp(f[5], "دایم") == 0)
    rv_strcpy_to(m->type, sizeof m->type, "permanent");
  else if (strcasecmp(f[5], "temporary") == 0 || strcmp(f[5], "موقت") == 0)
    rv_strcpy_to(m->type, sizeof m->type, "temporary");
  else if (f[5][0] == 0) BAD("marriage_type: missing");
  else BAD("marriage_type: '%.40s' is not permanent/temporary (دائم/موقت)", f[5]);
#undef BAD
  memcpy(m->husband, f[0], 11);
  memcpy(m->wife, f[1], 11);
  date_text(m->date, y, mo, d, '/');
  {
    int gy, gm, gd;
    rv_gregorian_from_jalali(y, mo, d, &gy, &gm, &gd);
    date_text(m->gdate, gy, gm, gd, '-');
  }
  rv_strcpy_to(m->certificate, sizeof m->certificate, f[3]);
  rv_strcpy_to(m->office, sizeof m->office, f[4]);
  return NULL;
}

/*--- the import --------------------------------------------------------------*/

typedef struct imp {
  rv_engine      *e;
  rv_store       *st;
  sqlite3        *db;
  rv_feed_opts    o;
  char            msg[128];
  char           *path, *buf;
  size_t          len;
  char            sha[65];
  int64_t         id, records;     /* records between header and trailer */
  rv_csv          csv;
  int             map[6], nfields;
  int             ty, tm, td;
  rv_feed_done_fn done;
  void           *arg;
  double          t0, max_chunk_ms;
  unsigned long   faults0;         /* rv_store_faults() when the import began */
  int             chunks;
  bool            already;         /* the same bytes were imported before */
  cJSON          *rep;             /* the final report, once finish() made it */
  sqlite3_stmt   *s_find, *s_ins, *s_issue, *s_insured, *s_pos, *s_getpos;
} imp;

static void imp_free(imp *im){
  if (im == NULL) return;
  sqlite3_finalize(im->s_find);
  sqlite3_finalize(im->s_ins);
  sqlite3_finalize(im->s_issue);
  sqlite3_finalize(im->s_insured);
  sqlite3_finalize(im->s_pos);
  sqlite3_finalize(im->s_getpos);
  rv_csv_fini(&im->csv);
  cJSON_Delete(im->rep);
  rv_free(im->path);
  rv_free(im->buf);
  rv_free(im);
}

static rv_status prep(imp *im, sqlite3_stmt **s, const char *sql, rv_err *err){
  if (sqlite3_prepare_v2(im->db, sql, -1, s, NULL) != SQLITE_OK)
    return rv_fail(err, RV_IO, "feed: %s", sqlite3_errmsg(im->db));
  return RV_OK;
}

static bool is_trailer(const rv_csv_rec *r){
  return r->error == NULL && r->n >= 1 && strcmp(r->f[0], "END") == 0;
}

/* Check header and trailer; leaves the reader at the first data record.
** Returns NULL or the reason the file is rejected as a whole. */
static const char *structure(imp *im, char *why, size_t cap){
  rv_csv_rec r;
  size_t data_pos;
  int64_t data_line, count = 0, declared = -1;
  bool trailer = false;

  rv_csv_init(&im->csv, im->buf, im->len, true);
  if (!rv_csv_next(&im->csv, &r) || r.n == 0) {
    snprintf(why, cap, "line 1: the header is missing");
    return why;
  }
  if (r.error) { snprintf(why, cap, "line 1: bad header: %s", r.error); return why; }
  for (int c = 0; c < 6; c++) im->map[c] = -1;
  for (int i = 0; i < r.n; i++) {
    for (char *p = r.f[i]; *p; p++) if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    for (int c = 0; c < 6; c++) {
      if (strcmp(r.f[i], COLS[c]) != 0) continue;
      if (im->map[c] >= 0) { snprintf(why, cap, "line 1: column %s appears twice", COLS[c]); return why; }
      im->map[c] = i;
    }
  }
  for (int c = 0; c < 6; c++)
    if (im->map[c] < 0) { snprintf(why, cap, "line 1: the header has no column %s", COLS[c]); return why; }
  im->nfields = r.n;
  data_pos = rv_csv_tell(&im->csv);
  data_line = rv_csv_line(&im->csv);
  while (rv_csv_next(&im->csv, &r)) {
    if (trailer) {
      if (r.n == 0 && r.error == NULL) continue;       /* blank lines after END are fine */
      snprintf(why, cap, "line %lld: data after the END trailer", (long long)r.line);
      return why;
    }
    if (is_trailer(&r)) {
      char *end;
      long long v = r.n == 2 ? strtoll(r.f[1], &end, 10) : -1;
      if (r.n != 2 || *r.f[1] == 0 || *end || v < 0) {
        snprintf(why, cap, "line %lld: the trailer must be END,<number of records>", (long long)r.line);
        return why;
      }
      declared = v;
      trailer = true;
      continue;
    }
    count++;
  }
  if (!trailer) {
    snprintf(why, cap, "no END trailer after %lld records: the file is truncated or incomplete",
             (long long)count);
    return why;
  }
  if (declared != count) {
    snprintf(why, cap, "the END trailer declares %lld records, the file has %lld: truncated or"
             " incomplete", (long long)declared, (long long)count);
    return why;
  }
  im->records = count;
  rv_csv_seek(&im->csv, data_pos, data_line);
  return NULL;
}

static rv_status issue(imp *im, int64_t line, const char *kind, const char *reason,
                       const rv_csv_rec *r, rv_err *err){
  char ex[256];
  rv_excerpt(r->raw, r->raw_len, ex, sizeof ex);
  sqlite3_bind_int64(im->s_issue, 1, im->id);
  sqlite3_bind_int64(im->s_issue, 2, line);
  sqlite3_bind_text(im->s_issue, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(im->s_issue, 4, reason, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(im->s_issue, 5, ex, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(im->s_issue) != SQLITE_DONE) {
    rv_status rc = rv_fail(err, RV_IO, "feed issue: %s", sqlite3_errmsg(im->db));
    sqlite3_reset(im->s_issue);
    return rc;
  }
  sqlite3_reset(im->s_issue);
  return RV_OK;
}

static bool insured(imp *im, const char *nid){
  bool yes;
  if (im->o.all_spouses) return true;
  sqlite3_bind_text(im->s_insured, 1, nid, -1, SQLITE_STATIC);
  yes = sqlite3_step(im->s_insured) == SQLITE_ROW;
  sqlite3_reset(im->s_insured);
  return yes;
}

/* The record's part of its messages' ids: the hash of office \x1f
** certificate, 24 hex digits. */
static void record_hash(const rv_marriage *m, char h[65]){
  char key[600];
  size_t n = rv_strcpy_to(key, sizeof key, m->office);
  n += rv_strcpy_to(key + n, sizeof key - n, "\x1f");
  n += rv_strcpy_to(key + n, sizeof key - n, m->certificate);
  rv_sha256_hex(key, n, h);
  h[24] = 0;
}

/* Send the message for one spouse; *outcome gets the engine's word. h:
** the record's record_hash, made here for its first insured spouse ("" before). */
static rv_status notify(imp *im, const rv_marriage *m, char h[65], int64_t line, bool husband,
                        char *outcome, size_t cap, int64_t *inst, rv_err *err){
  const char *nid = husband ? m->husband : m->wife;
  char mid[400];
  size_t n;
  cJSON *p, *res = NULL;
  rv_status rc;

  *inst = 0;
  if (!insured(im, nid)) { rv_strcpy_to(outcome, cap, "not_insured"); return RV_OK; }
  if (h[0] == 0) record_hash(m, h);
  n = rv_strcpy_to(mid, sizeof mid, im->msg);               /* message:hash:national id */
  n += rv_strcpy_to(mid + n, sizeof mid - n, ":");
  n += rv_strcpy_to(mid + n, sizeof mid - n, h);
  n += rv_strcpy_to(mid + n, sizeof mid - n, ":");
  rv_strcpy_to(mid + n, sizeof mid - n, nid);
  p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "national_id", nid);
  cJSON_AddStringToObject(p, "spouse_national_id", husband ? m->wife : m->husband);
  cJSON_AddStringToObject(p, "role", husband ? "husband" : "wife");
  cJSON_AddStringToObject(p, "marriage_date", m->date);
  cJSON_AddStringToObject(p, "marriage_date_gregorian", m->gdate);
  cJSON_AddStringToObject(p, "certificate_no", m->certificate);
  cJSON_AddStringToObject(p, "registry_office", m->office);
  cJSON_AddStringToObject(p, "marriage_type", m->type);
  cJSON_AddNumberToObject(p, "feed_import", (double)im->id);
  cJSON_AddNumberToObject(p, "feed_line", (double)line);
  rc = rv_engine_correlate(im->e, im->msg, nid, p, mid, im->o.ttl_ms, &res, err);
  cJSON_Delete(p);
  if (rc == RV_OK) {
    rv_strcpy_to(outcome, cap, rv_json_str(res, "result") ? rv_json_str(res, "result") : "?");
    *inst = rv_json_int(res, "instance", 0);
  }
  cJSON_Delete(res);
  return rc;
}

/* One data record inside the chunk transaction. In an optimistic chunk
** (opt) the record has no savepoint of its own: any failure spoils the
** chunk, which is then run again with a savepoint per record. */
static rv_status apply_record(imp *im, const rv_csv_rec *r, bool opt, rv_err *err){
  char why[512];
  const char *f[6];
  rv_marriage m;
  int64_t line = r->line;

  if (r->error) {
    if (r->error_col) snprintf(why, sizeof why, "%s (byte %d)", r->error, r->error_col);
    else snprintf(why, sizeof why, "%s", r->error);
    return issue(im, line, "rejected", why, r, err);
  }
  if (r->n == 0) return issue(im, line, "rejected", "empty line", r, err);
  if (is_trailer(r)) return issue(im, line, "rejected", "unexpected END", r, err);
  if (r->n != im->nfields) {
    snprintf(why, sizeof why, "expected %d fields, found %d", im->nfields, r->n);
    return issue(im, line, "rejected", why, r, err);
  }
  for (int c = 0; c < 6; c++) f[c] = r->f[im->map[c]];
  if (rv_marriage_check(f, im->ty, im->tm, im->td, &m, why, sizeof why) != NULL)
    return issue(im, line, "rejected", why, r, err);

  /* seen before? */
  sqlite3_bind_text(im->s_find, 1, m.office, -1, SQLITE_STATIC);
  sqlite3_bind_text(im->s_find, 2, m.certificate, -1, SQLITE_STATIC);
  if (sqlite3_step(im->s_find) == SQLITE_ROW) {
    int64_t other = sqlite3_column_int64(im->s_find, 0), oline = sqlite3_column_int64(im->s_find, 1);
    bool same = strcmp((const char *)sqlite3_column_text(im->s_find, 2), m.husband) == 0 &&
                strcmp((const char *)sqlite3_column_text(im->s_find, 3), m.wife) == 0 &&
                strcmp((const char *)sqlite3_column_text(im->s_find, 4), m.date) == 0 &&
                strcmp((const char *)sqlite3_column_text(im->s_find, 5), m.type) == 0;
    char where[96];
    sqlite3_reset(im->s_find);
    if (other == im->id) snprintf(where, sizeof where, "line %lld of this file", (long long)oline);
    else snprintf(where, sizeof where, "import %lld, line %lld", (long long)other, (long long)oline);
    if (same) {
      snprintf(why, sizeof why, "the same record as %s (registry office and certificate number)", where);
      return issue(im, line, "duplicate", why, r, err);
    }
    snprintf(why, sizeof why, "certificate %.40s of registry office %.60s was already imported from %s"
             " with different data", m.certificate, m.office, where);
    return issue(im, line, "rejected", why, r, err);
  }
  sqlite3_reset(im->s_find);

  /* apply: the record row and its messages, atomically */
  {
    char oh[16], ow[16], h[65] = "";
    int64_t ih = 0, iw = 0;
    rv_status rc = opt ? RV_OK : rv_store_begin(im->st, err);
    if (rc != RV_OK) return rc;
    rc = notify(im, &m, h, line, true, oh, sizeof oh, &ih, err);
    if (rc == RV_OK) rc = notify(im, &m, h, line, false, ow, sizeof ow, &iw, err);
    if (rc == RV_OK) {
      sqlite3_stmt *s = im->s_ins;
      sqlite3_bind_int64(s, 1, im->id);
      sqlite3_bind_int64(s, 2, line);
      sqlite3_bind_text(s, 3, m.office, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 4, m.certificate, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 5, m.husband, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 6, m.wife, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 7, m.date, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 8, m.type, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 9, oh, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 10, ow, -1, SQLITE_STATIC);
      if (ih) sqlite3_bind_int64(s, 11, ih); else sqlite3_bind_null(s, 11);
      if (iw) sqlite3_bind_int64(s, 12, iw); else sqlite3_bind_null(s, 12);
      if (sqlite3_step(s) != SQLITE_DONE) rc = rv_fail(err, RV_IO, "feed record: %s", sqlite3_errmsg(im->db));
      sqlite3_reset(s);
    }
    if (opt) { if (rc != RV_OK) rv_engine_batch_spoil(im->e); }
    else if (rc == RV_OK) rc = rv_store_commit(im->st, err);
    else rv_store_rollback(im->st);
    if (rc != RV_OK) {
      char msg[sizeof err->msg];
      snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
      rv_fail(err, rc, "line %lld: %s", (long long)line, msg);
    }
    return rc;
  }
}

/* The import done: its state, and its report stored without the issues
** (they are rows of their own), in one transaction -- an import marked done
** without its report would keep none (tests/unit/test_ioerr.c: an I/O error
** between the two). The report is kept for end_import: each one counts
** every record of the import again. */
static rv_status finish(imp *im, rv_err *err){
  cJSON *rep = NULL, *issues;
  char *text;
  rv_status rc = rv_store_begin(im->st, err);
  if (rc != RV_OK) return rc;
  rc = rv_store_exec(im->st, err, "UPDATE feed_imports SET state='done', finished=? WHERE id=?",
                     "ii", rv_clock_now(rv_engine_clock(im->e)), im->id);
  if (rc == RV_OK) rc = rv_feed_report(im->st, im->id, true, &rep, err);
  if (rc == RV_OK) {
    issues = cJSON_DetachItemFromObjectCaseSensitive(rep, "issues");
    text = rv_json_print(rep);
    cJSON_AddItemToObject(rep, "issues", issues);     /* last, where rv_feed_report puts it */
    rc = rv_store_exec(im->st, err, "UPDATE feed_imports SET report=? WHERE id=?", "ti", text, im->id);
    rv_free(text);
  }
  if (rc == RV_OK) rc = rv_store_commit(im->st, err);
  else rv_store_rollback(im->st);
  if (rc == RV_OK) im->rep = rep;
  else cJSON_Delete(rep);
  return rc;
}

static void end_import(imp *im, rv_status rc, rv_err *err){
  cJSON *rep = NULL;
  rv_err e2;
  rc = rv_store_failed(rc, im->faults0, err);     /* an I/O error, not what a failed read suggested */
  if (im->rep != NULL) {
    rep = im->rep;                                  /* finish() made it */
    im->rep = NULL;
  } else if (im->id <= 0 || rv_feed_report(im->st, im->id, true, &rep, &e2) != RV_OK) {
    rep = NULL;
  }
  if (rep != NULL) {
    cJSON_AddNumberToObject(rep, "time_ms", rv_mono_ms() - im->t0);
    cJSON_AddNumberToObject(rep, "chunks", im->chunks);
    cJSON_AddNumberToObject(rep, "max_chunk_ms", im->max_chunk_ms);
    cJSON_AddBoolToObject(rep, "already_imported", im->already);
  }
  im->done(im->arg, rc, rep, err);
  cJSON_Delete(rep);
  imp_free(im);
}

/* One chunk of records, one transaction. It runs first as an optimistic
** batch (no savepoint per record or per command: a savepoint copies every
** page a command touches); if anything in it fails, the chunk is rolled
** back and run again with a savepoint per record, which stops at the
** failing record and keeps the ones before it, as it always did. */
static rv_status run_chunk(imp *im, bool opt, bool *finished, rv_err *err){
  rv_status rc;
  int n = 0, limit = im->o.chunk > 0 ? im->o.chunk : 1000;
  double t = rv_mono_ms(), budget = im->o.chunk_ms > 0 ? im->o.chunk_ms : 100;

  *finished = false;
  rc = opt ? rv_engine_batch_begin_optimistic(im->e, err) : rv_engine_batch_begin(im->e, err);
  if (rc != RV_OK) return rc;
  /* the resume position in the store must be ours: no second importer */
  sqlite3_bind_int64(im->s_getpos, 1, im->id);
  if (sqlite3_step(im->s_getpos) != SQLITE_ROW ||
      strcmp((const char *)sqlite3_column_text(im->s_getpos, 0), "running") != 0 ||
      (size_t)sqlite3_column_int64(im->s_getpos, 1) != rv_csv_tell(&im->csv))
    rc = rv_fail(err, RV_CONFLICT, "import %lld was moved on by another importer", (long long)im->id);
  sqlite3_reset(im->s_getpos);
  while (rc == RV_OK && n < limit) {
    rv_csv_rec r;
    size_t pos = rv_csv_tell(&im->csv);
    int64_t line = rv_csv_line(&im->csv);
    if (!rv_csv_next(&im->csv, &r)) { *finished = true; break; }
    if (is_trailer(&r) && r.n == 2) { *finished = true; break; }
    rc = apply_record(im, &r, opt, err);
    if (rc != RV_OK) { rv_csv_seek(&im->csv, pos, line); break; }
    n++;
    if ((n & 15) == 0 && rv_mono_ms() - t >= budget) break;   /* let the loop breathe */
  }
  {
    rv_err e2, e3;
    rv_status r2, r3;
    sqlite3_bind_int64(im->s_pos, 1, (int64_t)rv_csv_tell(&im->csv));
    sqlite3_bind_int64(im->s_pos, 2, rv_csv_line(&im->csv));
    sqlite3_bind_int64(im->s_pos, 3, im->id);
    r2 = sqlite3_step(im->s_pos) == SQLITE_DONE ? RV_OK
       : rv_fail(&e2, RV_IO, "feed position: %s", sqlite3_errmsg(im->db));
    sqlite3_reset(im->s_pos);
    if (r2 != RV_OK) rv_engine_batch_spoil(im->e);     /* optimistic: all of it back */
    r3 = rv_engine_batch_end(im->e, &e3);
    if (r2 == RV_OK && r3 != RV_OK) { r2 = r3; e2 = e3; }
    if (r2 != RV_OK && rc == RV_OK) { rc = r2; *err = e2; }
  }
  return rc;
}

static void chunk_cb(evutil_socket_t fd, short what, void *arg){
  imp *im = arg;
  rv_err err;
  rv_status rc;
  bool finished = false;
  size_t pos0;
  int64_t line0;
  double t = rv_mono_ms();
  (void)fd; (void)what;

  memset(&err, 0, sizeof err);
  if (rv_store_depth(im->st) != 0) {              /* never inside someone's transaction */
    struct timeval tv = {0, 1000};
    if (event_base_once(rv_engine_base(im->e), -1, EV_TIMEOUT, chunk_cb, im, &tv) == 0) return;
  }
  pos0 = rv_csv_tell(&im->csv);
  line0 = rv_csv_line(&im->csv);
  rc = run_chunk(im, true, &finished, &err);
  if (rc != RV_OK && rv_engine_batch_spoiled(im->e)) {   /* rolled back: again, carefully */
    rv_csv_seek(&im->csv, pos0, line0);
    memset(&err, 0, sizeof err);
    rc = run_chunk(im, false, &finished, &err);
  }
  im->chunks++;
  t = rv_mono_ms() - t;
  if (t > im->max_chunk_ms) im->max_chunk_ms = t;
  if (rc != RV_OK) { end_import(im, rc, &err); return; }
  rv_crash_point("feed-chunk");
  if (finished) {
    rc = finish(im, &err);
    end_import(im, rc, &err);
    return;
  }
  {
    /* a due timer, not an immediately active event: libevent runs events
    ** activated during its active pass in that same pass, so chunks chained
    ** that way would starve every timer and socket until the import ends */
    struct timeval tv = {0, 1};
    if (event_base_once(rv_engine_base(im->e), -1, EV_TIMEOUT, chunk_cb, im, &tv) != 0) {
      rv_fail(&err, RV_IO, "cannot schedule the next chunk");
      end_import(im, RV_IO, &err);
    }
  }
}

static void done_now(evutil_socket_t fd, short what, void *arg){
  (void)fd; (void)what;
  end_import(arg, RV_OK, NULL);
}

rv_status rv_feed_import_start(rv_engine *e, const char *path, const rv_feed_opts *opts,
                               rv_feed_done_fn done, void *arg, rv_err *err){
  imp *im = rv_calloc(1, sizeof *im);
  rv_status rc;
  sqlite3_stmt *s;
  char why[512];
  const char *bad;
  const char *name;
  struct timeval tv = {0, 0};
  int64_t resume_pos = 0, resume_line = 0;
  char state[16] = "";

  im->e = e;
  im->st = rv_engine_store(e);
  im->db = rv_store_db(im->st);
  if (opts) im->o = *opts;
  if (im->o.ttl_ms <= 0) im->o.ttl_ms = (int64_t)35 * 86400 * 1000;
  snprintf(im->msg, sizeof im->msg, "%s", im->o.message ? im->o.message : MSG_DEFAULT);
  im->o.message = NULL;
  im->done = done;
  im->arg = arg;
  im->t0 = rv_mono_ms();
  im->faults0 = rv_store_faults();
  im->path = rv_strdup(path);
  rv_jalali_today(rv_clock_now(rv_engine_clock(e)), &im->ty, &im->tm, &im->td);
  rc = rv_file_read(path, MAX_FILE, &im->buf, &im->len, err);
  if (rc == RV_OK) rc = prep(im, &im->s_find, "SELECT import_id, line, husband_id, wife_id,"
    " marriage_date, marriage_type FROM feed_records WHERE registry_office=? AND certificate_no=?", err);
  if (rc == RV_OK) rc = prep(im, &im->s_ins, "INSERT INTO feed_records(import_id, line,"
    " registry_office, certificate_no, husband_id, wife_id, marriage_date, marriage_type,"
    " husband_outcome, wife_outcome, husband_instance, wife_instance) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", err);
  if (rc == RV_OK) rc = prep(im, &im->s_issue, "INSERT OR IGNORE INTO feed_issues(import_id, line,"
    " kind, reason, excerpt) VALUES(?,?,?,?,?)", err);
  if (rc == RV_OK) rc = prep(im, &im->s_insured, "SELECT 1 FROM rec_persons WHERE national_id=?", err);
  if (rc == RV_OK) rc = prep(im, &im->s_pos,
    "UPDATE feed_imports SET resume_pos=?, resume_line=? WHERE id=?", err);
  if (rc == RV_OK) rc = prep(im, &im->s_getpos,
    "SELECT state, resume_pos FROM feed_imports WHERE id=?", err);
  if (rc != RV_OK) { imp_free(im); return rc; }
  rv_sha256_hex(im->buf, im->len, im->sha);
  name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

  s = rv_store_stmt(im->st, "SELECT id, state, resume_pos, resume_line FROM feed_imports WHERE sha256=?");
  rv_store_bind(s, "t", im->sha);
  if (sqlite3_step(s) == SQLITE_ROW) {
    im->id = sqlite3_column_int64(s, 0);
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(s, 1));
    resume_pos = sqlite3_column_int64(s, 2);
    resume_line = sqlite3_column_int64(s, 3);
  }
  sqlite3_reset(s);
  if (state[0] && strcmp(state, "running") != 0) {
    /* the same bytes were imported (or rejected) before: nothing to do */
    im->already = true;
    if (event_base_once(rv_engine_base(e), -1, EV_TIMEOUT, done_now, im, &tv) != 0) {
      imp_free(im);
      return rv_fail(err, RV_IO, "cannot schedule the import");
    }
    return RV_OK;
  }
  bad = structure(im, why, sizeof why);
  if (bad != NULL && state[0] == 0) {
    rc = rv_store_exec(im->st, err, "INSERT INTO feed_imports(file_name, sha256, bytes, lines, state,"
      " reason, started, finished) VALUES(?,?,?,?,'rejected',?,?,?)", "ttiitii", name, im->sha,
      (int64_t)im->len, (int64_t)0, bad, rv_clock_now(rv_engine_clock(e)), rv_clock_now(rv_engine_clock(e)));
    if (rc != RV_OK) { imp_free(im); return rc; }
    im->id = rv_store_last_id(im->st);
  } else if (bad != NULL) {
    imp_free(im);
    return rv_fail(err, RV_CORRUPT, "import of '%s' was started but its structure now fails: %s", path, bad);
  } else if (state[0] == 0) {
    rc = rv_store_exec(im->st, err, "INSERT INTO feed_imports(file_name, sha256, bytes, lines, state,"
      " started, resume_pos, resume_line) VALUES(?,?,?,?,'running',?,?,?)", "ttiiiii", name, im->sha,
      (int64_t)im->len, im->records, rv_clock_now(rv_engine_clock(e)),
      (int64_t)rv_csv_tell(&im->csv), rv_csv_line(&im->csv));
    if (rc != RV_OK) { imp_free(im); return rc; }
    im->id = rv_store_last_id(im->st);
  } else {
    rv_csv_seek(&im->csv, (size_t)resume_pos, resume_line);   /* resume */
  }
  if (event_base_once(rv_engine_base(e), -1, EV_TIMEOUT, bad ? done_now : chunk_cb, im, &tv) != 0) {
    imp_free(im);
    return rv_fail(err, RV_IO, "cannot schedule the import");
  }
  return RV_OK;
}

/*--- synchronous wrapper and reports ----------------------------------------*/

struct sync_state { bool ended; rv_status rc; cJSON *report; rv_err err; };

static void sync_done(void *arg, rv_status rc, const cJSON *report, const rv_err *err){
  struct sync_state *s = arg;
  s->ended = true;
  s->rc = rc;
  s->report = report ? cJSON_Duplicate(report, 1) : NULL;
  if (err) s->err = *err;
}

rv_status rv_feed_import(rv_engine *e, const char *path, const rv_feed_opts *opts,
                         cJSON **out_report, rv_err *err){
  struct sync_state s;
  rv_status rc;
  memset(&s, 0, sizeof s);
  *out_report = NULL;
  rc = rv_feed_import_start(e, path, opts, sync_done, &s, err);
  if (rc != RV_OK) return rc;
  while (!s.ended)
    if (event_base_loop(rv_engine_base(e), EVLOOP_ONCE) < 0) break;
  *out_report = s.report;
  if (s.rc != RV_OK && err) *err = s.err;
  return s.rc;
}

rv_status rv_feed_report(rv_store *st, int64_t id, bool with_issues, cJSON **out, rv_err *err){
  sqlite3 *db = rv_store_db(st);
  sqlite3_stmt *s = NULL;
  cJSON *o, *sp, *iss;
  int64_t rejected = 0, dup = 0;
  static const char *const outcomes[] = { "correlated", "started", "buffered", "dropped",
                                          "duplicate", "not_insured" };

  *out = NULL;
  if (sqlite3_prepare_v2(db, "SELECT file_name, sha256, bytes, lines, state, reason, started,"
      " finished FROM feed_imports WHERE id=?", -1, &s, NULL) != SQLITE_OK)
    return rv_fail(err, RV_IO, "feed report: %s", sqlite3_errmsg(db));
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_finalize(s);
    return rv_fail(err, RV_NOTFOUND, "no feed import %lld", (long long)id);
  }
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "import", (double)id);
  cJSON_AddStringToObject(o, "file", (const char *)sqlite3_column_text(s, 0));
  cJSON_AddStringToObject(o, "sha256", (const char *)sqlite3_column_text(s, 1));
  cJSON_AddNumberToObject(o, "bytes", (double)sqlite3_column_int64(s, 2));
  cJSON_AddNumberToObject(o, "records", (double)sqlite3_column_int64(s, 3));
  cJSON_AddStringToObject(o, "state", (const char *)sqlite3_column_text(s, 4));
  if (sqlite3_column_type(s, 5) != SQLITE_NULL)
    cJSON_AddStringToObject(o, "reason", (const char *)sqlite3_column_text(s, 5));
  sqlite3_finalize(s);

  sqlite3_prepare_v2(db, "SELECT count(*) FROM feed_records WHERE import_id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  sqlite3_step(s);
  cJSON_AddNumberToObject(o, "applied", (double)sqlite3_column_int64(s, 0));
  sqlite3_finalize(s);

  sqlite3_prepare_v2(db, "SELECT kind, count(*) FROM feed_issues WHERE import_id=? GROUP BY kind",
                     -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (strcmp((const char *)sqlite3_column_text(s, 0), "rejected") == 0) rejected = sqlite3_column_int64(s, 1);
    else dup = sqlite3_column_int64(s, 1);
  }
  sqlite3_finalize(s);
  cJSON_AddNumberToObject(o, "rejected", (double)rejected);
  cJSON_AddNumberToObject(o, "duplicate", (double)dup);

  sp = cJSON_AddObjectToObject(o, "spouses");
  for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) cJSON_AddNumberToObject(sp, outcomes[i], 0);
  sqlite3_prepare_v2(db, "SELECT x, count(*) FROM (SELECT husband_outcome AS x FROM feed_records"
    " WHERE import_id=?1 UNION ALL SELECT wife_outcome FROM feed_records WHERE import_id=?1) GROUP BY x",
    -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(s, 0);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(sp, k);
    if (v) cJSON_SetNumberValue(v, (double)sqlite3_column_int64(s, 1));
    else cJSON_AddNumberToObject(sp, k, (double)sqlite3_column_int64(s, 1));
  }
  sqlite3_finalize(s);

  if (with_issues) {
    iss = cJSON_AddArrayToObject(o, "issues");
    sqlite3_prepare_v2(db, "SELECT line, kind, reason, excerpt FROM feed_issues WHERE import_id=?"
                       " ORDER BY line", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, id);
    while (sqlite3_step(s) == SQLITE_ROW) {
      cJSON *it = cJSON_CreateObject();
      cJSON_AddNumberToObject(it, "line", (double)sqlite3_column_int64(s, 0));
      cJSON_AddStringToObject(it, "kind", (const char *)sqlite3_column_text(s, 1));
      cJSON_AddStringToObject(it, "reason", (const char *)sqlite3_column_text(s, 2));
      if (sqlite3_column_type(s, 3) != SQLITE_NULL)
        cJSON_AddStringToObject(it, "text", (const char *)sqlite3_column_text(s, 3));
      cJSON_AddItemToArray(iss, it);
    }
    sqlite3_finalize(s);
  }
  *out = o;
  return RV_OK;
}
