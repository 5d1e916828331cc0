/*
** tests/unit/test_ioerr.c -- an I/O error at every step (RELIABILITY A3).
**
** A VFS of the test's, wrapping SQLite's "unix", fails the Nth read, write,
** truncate or sync of the database or its WAL: once (transient), or from
** the Nth on (persistent). Each of nine operations -- deploy, start,
** complete a task, correlate a message, an adapter's failure that raises an
** incident, retrying the incident, an adapter's answer, fire a timer, and
** importing a registry file (several transactions, resumable) --
** runs for N = 0, 1, 2, ... until it no longer reaches the Nth call, from a
** copy of the same prepared database, and after each run:
**   - the operation failed as the store's failure (RV_IO, not "no such task"
**     from a read that failed) and nothing of it is in the database (a dump
**     of every table, read through another connection, equals the one before;
**     an import may keep the chunks it committed, and must resume from them),
**     or it succeeded and the database is exactly what a run without errors
**     leaves;
**   - integrity_check is ok;
**   - with the errors stopped, the same operation on the same engine succeeds
**     and leaves that same database (the engine recovers without a restart).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "runtime/engine.h"
#include "registry/feed.h"
#include "store/store.h"
#include "core/json.h"
#include "core/mem.h"

/*--- the failing VFS ------------------------------------------------------*/

static sqlite3_vfs *unix_vfs, fail_vfs;
static int countdown = -1;        /* fail when it reaches 0; -1: off */
static bool persistent;

typedef struct { sqlite3_file base; sqlite3_file *real; } ffile;

static bool inject(void){
  if (countdown < 0) return false;
  if (countdown == 0) {
    if (!persistent) countdown = -1;
    return true;
  }
  countdown--;
  return false;
}

#define REAL(f) (((ffile *)(f))->real)
static int f_close(sqlite3_file *f){ return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o){
  return inject() ? SQLITE_IOERR_READ : REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  return inject() ? SQLITE_IOERR_WRITE : REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 n){
  return inject() ? SQLITE_IOERR_TRUNCATE : REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int f_sync(sqlite3_file *f, int flags){
  return inject() ? SQLITE_IOERR_FSYNC : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *n){ return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int f_lock(sqlite3_file *f, int l){ return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l){ return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check(sqlite3_file *f, int *r){ return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int f_fcntl(sqlite3_file *f, int op, void *a){ return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int f_sector(sqlite3_file *f){ return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_caps(sqlite3_file *f){ return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **pp){
  return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, pp);
}
static int f_shmlock(sqlite3_file *f, int o, int n, int fl){ return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl); }
static void f_shmbarrier(sqlite3_file *f){ REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shmunmap(sqlite3_file *f, int del){ return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int f_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp){
  *pp = NULL;                      /* no memory-mapped reads: every read is xRead */
  (void)f; (void)o; (void)n;
  return SQLITE_OK;
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p){
  (void)f; (void)o; (void)p;
  return SQLITE_OK;
}

static const sqlite3_io_methods fail_io = {
  3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock, f_check,
  f_fcntl, f_sector, f_caps, f_shmmap, f_shmlock, f_shmbarrier, f_shmunmap, f_fetch, f_unfetch
};

static int v_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *f, int flags, int *out){
  ffile *p = (ffile *)f;
  int rc;
  (void)v;
  p->real = (sqlite3_file *)&p[1];
  rc = unix_vfs->xOpen(unix_vfs, name, p->real, flags, out);
  p->base.pMethods = p->real->pMethods ? &fail_io : NULL;
  return rc;
}
static int v_delete(sqlite3_vfs *v, const char *n, int d){ (void)v; return unix_vfs->xDelete(unix_vfs, n, d); }
static int v_access(sqlite3_vfs *v, const char *n, int f, int *r){ (void)v; return unix_vfs->xAccess(unix_vfs, n, f, r); }
static int v_full(sqlite3_vfs *v, const char *n, int len, char *out){ (void)v; return unix_vfs->xFullPathname(unix_vfs, n, len, out); }
static void *v_dlopen(sqlite3_vfs *v, const char *n){ (void)v; return unix_vfs->xDlOpen(unix_vfs, n); }
static void v_dlerror(sqlite3_vfs *v, int n, char *m){ (void)v; unix_vfs->xDlError(unix_vfs, n, m); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void){ (void)v; return unix_vfs->xDlSym(unix_vfs, h, s); }
static void v_dlclose(sqlite3_vfs *v, void *h){ (void)v; unix_vfs->xDlClose(unix_vfs, h); }
static int v_random(sqlite3_vfs *v, int n, char *out){ (void)v; return unix_vfs->xRandomness(unix_vfs, n, out); }
static int v_sleep(sqlite3_vfs *v, int us){ (void)v; return unix_vfs->xSleep(unix_vfs, us); }
static int v_time(sqlite3_vfs *v, double *t){ (void)v; return unix_vfs->xCurrentTime(unix_vfs, t); }
static int v_lasterr(sqlite3_vfs *v, int n, char *m){ (void)v; return unix_vfs->xGetLastError(unix_vfs, n, m); }
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t){ (void)v; return unix_vfs->xCurrentTimeInt64(unix_vfs, t); }

/* the failing VFS, made the default (the engine opens through it) */
static void install(void){
  if (unix_vfs) return;
  unix_vfs = sqlite3_vfs_find("unix");
  assert_non_null(unix_vfs);
  fail_vfs = (sqlite3_vfs){ 2, (int)sizeof(ffile) + unix_vfs->szOsFile, unix_vfs->mxPathname, NULL,
    "failing", NULL, v_open, v_delete, v_access, v_full, v_dlopen, v_dlerror, v_dlsym, v_dlclose,
    v_random, v_sleep, v_time, v_lasterr, v_time64, NULL, NULL, NULL };
  assert_int_equal(sqlite3_vfs_register(&fail_vfs, 1), SQLITE_OK);
}

/*--- the process and the operations ---------------------------------------*/

#define T0 INT64_C(1759300200000)       /* 2025-10-01T10:00:00+03:30 */

static const char *const BPMN =
  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
  "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\" xmlns:rv=\"urn:ravand:bpmn:1\""
  " id=\"d\" targetNamespace=\"urn:t\">\n"
  " <message id=\"m\" name=\"io-msg\" rv:correlationKey=\"key\"/>\n"
  " <process id=\"io\" isExecutable=\"true\">\n"
  "  <startEvent id=\"s\" rv:status=\"ثبت شد\"/><sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/>\n"
  "  <userTask id=\"t\" rv:status=\"بررسی\"/><sequenceFlow id=\"f2\" sourceRef=\"t\" targetRef=\"w\"/>\n"
  "  <intermediateCatchEvent id=\"w\"><messageEventDefinition messageRef=\"m\"/></intermediateCatchEvent>\n"
  "  <sequenceFlow id=\"f3\" sourceRef=\"w\" targetRef=\"call\"/>\n"
  "  <serviceTask id=\"call\" rv:adapter=\"echo\" rv:retries=\"1\"/><sequenceFlow id=\"f4\" sourceRef=\"call\" targetRef=\"z\"/>\n"
  "  <intermediateCatchEvent id=\"z\"><timerEventDefinition><timeDuration>PT1H</timeDuration>"
  "</timerEventDefinition></intermediateCatchEvent>\n"
  "  <sequenceFlow id=\"f5\" sourceRef=\"z\" targetRef=\"e\"/><endEvent id=\"e\" rv:status=\"پایان\"/>\n"
  " </process>\n</definitions>\n";

typedef struct fx {
  char dir[64], db[128], bpmn[160], tmpl[160], feed[160];
  rv_clock clock;
  rv_engine *e;
} fx;

static rv_engine *open_engine(fx *f){
  rv_engine_cfg cfg = {0};
  rv_err err;
  rv_engine *e = NULL;
  cfg.db_path = f->db;
  cfg.clock = &f->clock;
  cfg.answer_now = false;                   /* the echo job waits for its answer */
  if (rv_engine_open(&cfg, &e, &err) != RV_OK) fail_msg("open: %s", err.msg);
  return e;
}

static int64_t one_int(const char *db, const char *sql){
  sqlite3 *h;
  sqlite3_stmt *s;
  int64_t v = -1;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

/* The operations, each on the state the ones before it left. */
static rv_status op_deploy(fx *f, rv_err *err){
  const char *files[] = { f->bpmn };
  return rv_engine_deploy(f->e, files, 1, NULL, NULL, err);
}
static rv_status op_start(fx *f, rv_err *err){
  cJSON *v = cJSON_Parse("{\"key\":\"0013542419\"}");
  int64_t inst = 0;
  rv_status rc = rv_engine_start(f->e, "io", 0, v, "0013542419", &inst, err);
  cJSON_Delete(v);
  return rc;
}
static rv_status op_complete(fx *f, rv_err *err){
  return rv_engine_complete_task(f->e, one_int(f->db, "SELECT max(id) FROM tasks"), NULL, "clerk", err);
}
static rv_status op_correlate(fx *f, rv_err *err){
  cJSON *out = NULL;
  rv_status rc = rv_engine_correlate(f->e, "io-msg", "0013542419", NULL, "msg-1", -1, &out, err);
  cJSON_Delete(out);
  return rc;
}
static rv_status op_failure(fx *f, rv_err *err){      /* one attempt allowed: an incident */
  return rv_engine_job_result(f->e, one_int(f->db, "SELECT max(id) FROM jobs"), RV_JOB_FAILED,
                              NULL, NULL, "the other system is down", err);
}
static rv_status op_retry(fx *f, rv_err *err){
  return rv_engine_retry_incident(f->e, one_int(f->db, "SELECT max(id) FROM incidents"), err);
}
static rv_status op_answer(fx *f, rv_err *err){
  cJSON *r = cJSON_Parse("{\"echo\":true}");
  rv_status rc = rv_engine_job_result(f->e, one_int(f->db, "SELECT max(id) FROM jobs"), RV_JOB_OK,
                                      r, NULL, NULL, err);
  cJSON_Delete(r);
  return rc;
}
static rv_status op_timer(fx *f, rv_err *err){
  return rv_engine_fire_timer(f->e, one_int(f->db, "SELECT max(id) FROM timers"), err);
}
/* a registry file of three marriages in chunks of two: three transactions
** after the one that registers the file (resumable: see check_op) */
static rv_status op_import(fx *f, rv_err *err){
  rv_feed_opts o = {0};
  cJSON *rep = NULL;
  rv_status rc;
  o.chunk = 2;
  o.all_spouses = true;                /* no records store: every spouse is messaged */
  rc = rv_feed_import(f->e, f->feed, &o, &rep, err);
  cJSON_Delete(rep);
  return rc;
}

typedef rv_status (*op_fn)(fx *f, rv_err *err);
static const struct { const char *name; op_fn fn; bool resumable; } OPS[] = {
  { "deploy", op_deploy, false }, { "start", op_start, false },
  { "complete a task", op_complete, false }, { "correlate a message", op_correlate, false },
  { "an adapter's failure (an incident)", op_failure, false },
  { "retry the incident", op_retry, false }, { "an adapter's answer", op_answer, false },
  { "fire a timer", op_timer, false }, { "import a registry file", op_import, true },
};
#define N_OPS ((int)(sizeof OPS / sizeof OPS[0]))

/*--- dumps ----------------------------------------------------------------*/

/* Every row of every table, in order, through a connection of its own
** (what is committed); malloc'd. */
static char *dump(const char *db){
  sqlite3 *h;
  sqlite3_stmt *t, *s;
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  out[0] = 0;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(h, "SELECT name FROM sqlite_master WHERE type='table'"
                                        " AND name NOT LIKE 'sqlite_%' ORDER BY name", -1, &t, NULL), SQLITE_OK);
  while (sqlite3_step(t) == SQLITE_ROW) {
    char *sql = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY 1", (const char *)sqlite3_column_text(t, 0));
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
    sqlite3_free(sql);
    while (sqlite3_step(s) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(s); i++) {
        const char *v = (const char *)sqlite3_column_text(s, i);
        size_t n = (v ? strlen(v) : 4) + 2;
        if (len + n + 64 > cap) { cap = (len + n + 64) * 2; out = realloc(out, cap); assert_non_null(out); }
        len += (size_t)snprintf(out + len, cap - len, "%s|", v ? v : "NULL");
      }
      out[len++] = '\n';
      out[len] = 0;
    }
    sqlite3_finalize(s);
    if (len + 2 > cap) { cap *= 2; out = realloc(out, cap); assert_non_null(out); }
    out[len++] = '#';
    out[len] = 0;
  }
  sqlite3_finalize(t);
  sqlite3_close(h);
  return out;
}

/* where two dumps part: the first differing line of each (for the message) */
static void first_diff(const char *a, const char *b, char *out, size_t cap){
  const char *la = a, *lb = b;
  while (*a && *a == *b) {
    if (*a == '\n' || *a == '#') { la = a + 1; lb = b + 1; }
    a++; b++;
  }
  snprintf(out, cap, "[%.*s] against [%.*s]", (int)strcspn(la, "\n#"), la, (int)strcspn(lb, "\n#"), lb);
}

static void copy_file(const char *from, const char *to){
  char buf[1 << 15];
  size_t n;
  FILE *a = fopen(from, "rb"), *b;
  assert_non_null(a);
  b = fopen(to, "wb");
  assert_non_null(b);
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, n, b), n);
  fclose(a);
  fclose(b);
}

static void remove_db(const char *db){
  char p[200];
  unlink(db);
  snprintf(p, sizeof p, "%s-wal", db); unlink(p);
  snprintf(p, sizeof p, "%s-shm", db); unlink(p);
}

/*--- the test -------------------------------------------------------------*/

static void check_op(fx *f, int k, bool persist, int *runs, int *failed){
  char *expect, *before;
  rv_err err;
  int n;
  /* what the operation leaves without errors */
  remove_db(f->db);
  copy_file(f->tmpl, f->db);
  f->e = open_engine(f);
  before = dump(f->db);
  if (OPS[k].fn(f, &err) != RV_OK) fail_msg("%s without errors: %s", OPS[k].name, err.msg);
  expect = dump(f->db);
  assert_string_not_equal(before, expect);
  rv_engine_close(f->e);
  for (n = 0; n < 5000; n++) {
    rv_status rc;
    char *after;
    bool reached;
    remove_db(f->db);
    copy_file(f->tmpl, f->db);
    f->e = open_engine(f);
    persistent = persist;
    countdown = n;
    rc = OPS[k].fn(f, &err);
    reached = countdown == -1 || (persist && countdown == 0);
    countdown = -1;
    after = dump(f->db);
    if (rc != RV_OK) {
      char d[600];
      if (rc != RV_IO)      /* not "no such task" because a read failed */
        fail_msg("%s, %s I/O error at call %d: failed as %s (%s), not as the store's failure",
                 OPS[k].name, persist ? "persistent" : "transient", n, rv_status_name(rc), err.msg);
      first_diff(before, after, d, sizeof d);
      /* an import keeps the chunks it committed and resumes (checked below) */
      if (!OPS[k].resumable && strcmp(after, before) != 0)
        fail_msg("%s, %s I/O error at call %d: failed (%s) but changed the database: %s",
                 OPS[k].name, persist ? "persistent" : "transient", n, err.msg, d);
      (*failed)++;
    } else if (strcmp(after, expect) != 0)
      fail_msg("%s, %s I/O error at call %d: succeeded but left another database",
               OPS[k].name, persist ? "persistent" : "transient", n);
    assert_int_equal(one_int(f->db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check<>'ok'"), 0);
    if (rc != RV_OK) {             /* the errors stop: the same engine does it now */
      char *again;
      if (OPS[k].fn(f, &err) != RV_OK)
        fail_msg("%s after a %s I/O error at call %d: %s", OPS[k].name,
                 persist ? "persistent" : "transient", n, err.msg);
      again = dump(f->db);
      if (strcmp(again, expect) != 0) {
        char d[600];
        first_diff(expect, again, d, sizeof d);
        fail_msg("%s after a %s I/O error at call %d: another database than without errors: %s",
                 OPS[k].name, persist ? "persistent" : "transient", n, d);
      }
      free(again);
    }
    free(after);
    rv_engine_close(f->e);
    f->e = NULL;
    (*runs)++;
    if (!reached) break;           /* the operation made fewer than n+1 calls: all covered */
  }
  assert_true(n < 5000);
  free(before);
  free(expect);
}

static void io_errors_at_every_call(void **state){
  fx f;
  int runs = 0, failed = 0;
  (void)state;
  memset(&f, 0, sizeof f);
  snprintf(f.dir, sizeof f.dir, "/tmp/rvioerr-XXXXXX");
  if (mkdtemp(f.dir) == NULL) fail_msg("mkdtemp");
  snprintf(f.db, sizeof f.db, "%s/t.db", f.dir);
  snprintf(f.tmpl, sizeof f.tmpl, "%s/tmpl.db", f.dir);
  snprintf(f.bpmn, sizeof f.bpmn, "%s/io.bpmn", f.dir);
  snprintf(f.feed, sizeof f.feed, "%s/marriages.csv", f.dir);
  {
    FILE *b = fopen(f.bpmn, "w");
    assert_non_null(b);
    fputs(BPMN, b);
    fclose(b);
    b = fopen(f.feed, "w");
    assert_non_null(b);
    fputs("husband_national_id,wife_national_id,marriage_date,certificate_no,registry_office,marriage_type\r\n"
          "0499370899,0790419904,1404/06/15,5001,office-12,permanent\r\n"
          "0084575948,0963695398,1404/02/31,5002,office-12,permanent\r\n"
          "0650451252,1583250689,1403/12/30,5004,office-7,temporary\r\n"
          "END,3\r\n", b);
    fclose(b);
  }
  rv_clock_init_virtual(&f.clock, T0);
  /* the template: an empty store; the first open configures SQLite (its
  ** error log among it), which registering a VFS would end */
  f.e = open_engine(&f);
  rv_engine_close(f.e);
  copy_file(f.db, f.tmpl);
  install();
  for (int k = 0; k < N_OPS; k++) {
    rv_err err;
    check_op(&f, k, false, &runs, &failed);
    check_op(&f, k, true, &runs, &failed);
    /* the next operation's template: this one applied */
    remove_db(f.db);
    copy_file(f.tmpl, f.db);
    f.e = open_engine(&f);
    if (OPS[k].fn(&f, &err) != RV_OK) fail_msg("%s: %s", OPS[k].name, err.msg);
    rv_engine_close(f.e);
    f.e = NULL;
    if (OPS[k].fn == op_answer) rv_clock_advance(&f.clock, 3600 * 1000);   /* the timer falls due */
    remove_db(f.tmpl);
    copy_file(f.db, f.tmpl);
  }
  print_message("%d runs, %d of them failed by an injected I/O error\n", runs, failed);
  assert_true(failed > 0);
  remove_db(f.db);
  remove_db(f.tmpl);
  unlink(f.bpmn);
  unlink(f.feed);
  {
    char p[200];
    snprintf(p, sizeof p, "%s.pepper", f.db); unlink(p);
    snprintf(p, sizeof p, "%s.pepper", f.tmpl); unlink(p);
  }
  rmdir(f.dir);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(io_errors_at_every_call),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
