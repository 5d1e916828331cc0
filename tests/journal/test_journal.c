/*
** tests/journal/test_journal.c -- record and replay (engine/journal/).
**
** A live engine on a virtual clock runs the fixtures of
** tests/fixtures/journal/ (claim.bpmn: script, gateways, user tasks, a
** boundary timer, an echo service task, a called process, SMS;
** inputs.bpmn: a buffered message, a signal, a flaky and a failing
** adapter, retry, cancel, a message start), records every case and
** checks:
**   - every journaled input kind appears, and every recording replays
**     "identical";
**   - journal marks equal max(history.id) at each command's start inside
**     optimistic and savepoint batches, after a claim and a rollback;
**   - replaying twice gives byte-identical output, equal to the recording;
**   - a tampered recording (an SMS text, an input's data) is caught, and a
**     changed decision text alone is not a divergence;
**   - --against: a changed condition flags exactly the case that crosses
**     it, with the values the gateway read; a new user task is "needs
**     input" for every case;
**   - a run killed with SIGKILL at random points and recovered replays
**     identically (same end state as the live run);
**   - `ravand test` passes the hand-written process tests, fails a wrong
**     expectation and a malformed line, and reports coverage.
**
** `test_journal --write DIR` writes the fixture recordings to DIR (this
** is how tests/recordings/ is refreshed).
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "runtime/engine.h"
#include "journal/journal.h"
#include "journal/reads.h"
#include "adapter.h"
#include "store/store.h"
#include "cal/cal.h"
#include "core/json.h"
#include "core/buf.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif
#define FIX RV_SOURCE_ROOT "/tests/fixtures/journal/"

/*--- A live engine --------------------------------------------------------------------*/

typedef struct live { rv_engine *e; rv_clock clk; char dir[256], db[300]; } live;

static int rm_entry(const char *p, const struct stat *sb, int f, struct FTW *w){
  (void)sb; (void)f; (void)w;
  return remove(p);
}

static void make_dir(char *buf, size_t n){
  snprintf(buf, n, "%s/ravand-jt-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(buf));
}

static bool live_answer_now;   /* cfg.answer_now for the next live_engine() */

static void live_engine(live *l){
  rv_engine_cfg cfg = {0};
  rv_err err;
  cfg.db_path = l->db;
  cfg.clock = &l->clk;
  cfg.answer_now = live_answer_now;
  if (rv_engine_open(&cfg, &l->e, &err) != RV_OK) fail_msg("open: %s", err.msg);
}

static void live_open(live *l){
  memset(l, 0, sizeof *l);
  make_dir(l->dir, sizeof l->dir);
  snprintf(l->db, sizeof l->db, "%s/live.db", l->dir);
  rv_clock_init_virtual(&l->clk, 1774080000000LL);     /* 2026-03-21T08:00:00Z */
  live_engine(l);
}

static void live_close(live *l){
  rv_engine_close(l->e);
  nftw(l->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void at(live *l, const char *iso){
  int64_t ms;
  assert_int_equal(rv_datetime_parse(iso, &ms, NULL), RV_OK);
  rv_clock_set(&l->clk, ms);
}

static void deploy(live *l, const char *file){
  rv_err err;
  const char *files[] = { file };
  if (rv_engine_deploy(l->e, files, 1, FIX "scripts", NULL, &err) != RV_OK) fail_msg("deploy: %s", err.msg);
}

static int64_t start(live *l, const char *key, const char *proc, const char *vars){
  cJSON *v = rv_json_parse(vars);
  int64_t id = 0;
  rv_err err;
  if (rv_engine_start_keyed(l->e, key, proc, 0, v, NULL, &id, &err) != RV_OK) fail_msg("start: %s", err.msg);
  cJSON_Delete(v);
  return id;
}

static int64_t q1(live *l, const char *sql, int64_t a, const char *t){
  sqlite3_stmt *s = NULL;
  int64_t v = 0;
  sqlite3_prepare_v2(rv_store_db(rv_engine_store(l->e)), sql, -1, &s, NULL);
  sqlite3_bind_int64(s, 1, a);
  if (t) sqlite3_bind_text(s, 2, t, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* Complete the open task `element` of the tree of root (root or its
** children). Returns false when there is none (already done). */
static bool complete(live *l, int64_t root, const char *element, const char *data, const char *actor){
  int64_t t = q1(l, "SELECT id FROM tasks WHERE state='open' AND element_id=?2 AND (instance_id=?1"
                    " OR instance_id IN (SELECT id FROM instances WHERE parent_instance=?1)) ORDER BY id LIMIT 1",
                 root, element);
  cJSON *d = data ? rv_json_parse(data) : NULL;
  rv_err err;
  if (t == 0) { cJSON_Delete(d); return false; }
  if (rv_engine_complete_task(l->e, t, d, actor, &err) != RV_OK) fail_msg("complete %s: %s", element, err.msg);
  cJSON_Delete(d);
  return true;
}

static void message(live *l, const char *name, const char *key, const char *payload, const char *id){
  cJSON *p = rv_json_parse(payload), *res = NULL;
  rv_err err;
  if (rv_engine_correlate(l->e, name, key, p, id, -1, &res, &err) != RV_OK) fail_msg("message: %s", err.msg);
  cJSON_Delete(res);
  cJSON_Delete(p);
}

static void record(live *l, int64_t id, const char *path){
  FILE *f = fopen(path, "w");
  rv_err err;
  assert_non_null(f);
  if (rv_journal_record(l->e, id, f, &err) != RV_OK) fail_msg("record %lld: %s", (long long)id, err.msg);
  fclose(f);
}

/*--- The fixture cases ----------------------------------------------------------------*/

typedef struct cases { int64_t auto_, review, late, mid, open, docs, payfail, apply; } cases;

/* Runs every case on l; timeline of about five days. */
static void run_cases(live *l, cases *c){
  rv_err err;
  deploy(l, FIX "claim.bpmn");
  deploy(l, FIX "inputs.bpmn");
  at(l, "2026-03-21T08:10:00Z");
  c->auto_ = start(l, "c1", "claim", "{\"case_id\":\"C-1\",\"days\":10,\"daily_rate\":100000,\"mobile\":\"09120000001\"}");
  c->review = start(l, "c2", "claim", "{\"case_id\":\"C-2\",\"days\":80,\"daily_rate\":100000,\"mobile\":\"09120000002\"}");
  c->late = start(l, "c3", "claim", "{\"case_id\":\"C-3\",\"days\":90,\"daily_rate\":100000,\"mobile\":\"09120000003\"}");
  c->mid = start(l, "c4", "claim", "{\"case_id\":\"C-4\",\"days\":40,\"daily_rate\":100000,\"mobile\":\"09120000004\"}");
  c->docs = start(l, "d1", "docs", "{\"case_id\":\"D-1\",\"pages\":3}");
  c->payfail = start(l, "p1", "pay_fail", "{}");
  rv_engine_drain(l->e);
  at(l, "2026-03-21T09:00:00Z");
  complete(l, c->auto_, "file", "{\"shelf\":\"A-1\"}", "archivist");
  complete(l, c->mid, "file", "{\"shelf\":\"A-4\"}", "archivist");
  at(l, "2026-03-21T09:30:00Z");
  message(l, "docs", "D-1", "{\"docs_ok\":true}", "msg-1");   /* before prep is done: buffered (1 hour) */
  at(l, "2026-03-21T10:00:00Z");
  complete(l, c->docs, "prep", NULL, "clerk-1");               /* consumes the buffered message */
  {                                                             /* API task commands */
    int64_t t = q1(l, "SELECT id FROM tasks WHERE instance_id=? AND element_id='review'", c->review, NULL);
    assert_int_equal(rv_engine_task_transfer(l->e, t, "1203", "office-1", "wrong office", &err), RV_OK);
    assert_int_equal(rv_engine_task_claim(l->e, t, "clerk-2", &err), RV_OK);
  }
  complete(l, c->review, "review", "{\"approved\":true}", "clerk-2");
  rv_engine_signal(l->e, "go", NULL, NULL, &err);
  rv_engine_drain(l->e);                                        /* flaky fails once */
  {
    int64_t inc = q1(l, "SELECT id FROM incidents WHERE instance_id=? AND state='open'", c->payfail, NULL);
    assert_true(inc > 0);
    at(l, "2026-03-21T10:30:00Z");
    assert_int_equal(rv_engine_retry_incident(l->e, inc, &err), RV_OK);
    rv_engine_drain(l->e);                                      /* fails again */
  }
  at(l, "2026-03-21T11:00:00Z");
  rv_engine_drain(l->e);                                        /* flaky answers */
  complete(l, c->review, "file", "{\"shelf\":\"B-2\"}", "archivist");
  {
    cJSON *res = NULL, *p = rv_json_parse("{\"name\":\"Sara\"}");
    assert_int_equal(rv_engine_correlate(l->e, "apply", "N-1", p, NULL, -1, &res, &err), RV_OK);
    c->apply = rv_json_int(res, "instance", 0);
    cJSON_Delete(res);
    cJSON_Delete(p);
  }
  assert_int_equal(rv_engine_cancel(l->e, c->payfail, &err), RV_OK);
  at(l, "2026-03-22T08:00:00Z");
  c->open = start(l, "c5", "claim", "{\"case_id\":\"C-5\",\"days\":70,\"daily_rate\":100000,\"mobile\":\"09120000005\"}");
  complete(l, c->apply, "intake", "{\"ok\":true}", "clerk-3");
  rv_engine_drain(l->e);
  at(l, "2026-03-24T08:10:05Z");                                /* C-3's 72 hours are over */
  rv_engine_drain(l->e);
  at(l, "2026-03-24T09:00:00Z");
  complete(l, c->late, "escalate", "{\"approved\":false}", "supervisor-1");
  rv_engine_drain(l->e);
  at(l, "2026-03-25T00:00:00Z");
}

static const char *const case_names[] = { "claim-auto", "claim-review", "claim-late", "claim-threshold",
                                          "claim-open", "inputs-docs", "inputs-pay-fail", "inputs-apply" };
#define N_CASES 8

static void case_ids(const cases *c, int64_t *ids){
  ids[0] = c->auto_; ids[1] = c->review; ids[2] = c->late; ids[3] = c->mid;
  ids[4] = c->open; ids[5] = c->docs; ids[6] = c->payfail; ids[7] = c->apply;
}

/* Run the cases and write their recordings to dir/<name>.rec.jsonl. */
static void write_recordings(const char *dir){
  live l;
  cases c;
  int64_t ids[N_CASES];
  live_open(&l);
  run_cases(&l, &c);
  case_ids(&c, ids);
  for (int i = 0; i < N_CASES; i++) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s.rec.jsonl", dir, case_names[i]);
    record(&l, ids[i], path);
  }
  live_close(&l);
}

/*--- Helpers on files ----------------------------------------------------------------------*/

static char *slurp(const char *path){
  FILE *f = fopen(path, "rb");
  rv_buf b;
  char chunk[4096];
  size_t n;
  if (f == NULL) return NULL;
  rv_buf_init(&b, 0);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) rv_buf_add(&b, chunk, n);
  fclose(f);
  return rv_buf_take(&b);
}

static void spit(const char *path, const char *text){
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Copy src to dst replacing the first occurrence of from by to. */
static void tamper(const char *src, const char *dst, const char *from, const char *to){
  char *t = slurp(src), *p;
  rv_buf b;
  assert_non_null(t);
  p = strstr(t, from);
  if (p == NULL) fail_msg("'%s' not in %s", from, src);
  rv_buf_init(&b, 0);
  rv_buf_add(&b, t, (size_t)(p - t));
  rv_buf_adds(&b, to);
  rv_buf_adds(&b, p + strlen(from));
  spit(dst, b.p);
  rv_buf_fini(&b);
  free(t);
}

static rv_replay_verdict replay(const char *path, const rv_replay_opts *o, char *where, size_t n,
                                char **report){
  rv_replay_result r;
  rv_err err;
  rv_status rc = rv_journal_replay(path, o, &r, &err);
  if (rc != RV_OK) fail_msg("replay %s: %s", path, err.msg);
  if (where) snprintf(where, n, "%s", r.where);
  if (report) *report = r.report;
  else free(r.report);
  return r.verdict;
}

static char recdir[256];

static int setup_recordings(void **state){
  (void)state;
  make_dir(recdir, sizeof recdir);
  write_recordings(recdir);
  return 0;
}

static int teardown_recordings(void **state){
  (void)state;
  nftw(recdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

static void rec_path(char *buf, size_t n, const char *name){
  snprintf(buf, n, "%s/%s.rec.jsonl", recdir, name);
}

/*--- Tests -------------------------------------------------------------------------------------*/

static void test_every_input_is_journaled(void **state){
  static const char *const kinds[] = {
    "{\"in\":\"start\"", "{\"in\":\"complete\"", "{\"in\":\"job\"", "\"outcome\":\"failed\"",
    "{\"in\":\"timer\"", "{\"in\":\"message\"", "\"result\":\"buffered\"", "\"result\":\"started\"",
    "{\"in\":\"signal\"", "{\"in\":\"retry\"", "{\"in\":\"cancel\"", "\"suffix\":\"sms\"",
    "{\"in\":\"claim\"", "{\"in\":\"transfer\"", "\"assignee\":\"clerk-2\"",
    "\"out\":\"sms\"", "\"out\":\"task\"", "\"out\":\"job\"", "\"out\":\"incident\"",
    "\"out\":\"status\"", "\"out\":\"decision\"", "(amount=9000000)", "\"inst\":2", NULL
  };
  rv_buf all;
  (void)state;
  rv_buf_init(&all, 0);
  for (int i = 0; i < N_CASES; i++) {
    char p[600], *t;
    rec_path(p, sizeof p, case_names[i]);
    t = slurp(p);
    assert_non_null(t);
    rv_buf_adds(&all, t);
    free(t);
  }
  for (int i = 0; kinds[i]; i++)
    if (strstr(all.p, kinds[i]) == NULL) fail_msg("no recording contains %s", kinds[i]);
  /* no journal row of the tree is left without its instance */
  rv_buf_fini(&all);
}

static void test_journal_rows_name_their_instance(void **state){
  live l;
  cases c;
  (void)state;
  live_open(&l);
  run_cases(&l, &c);
  /* only inputs that reached no instance (a buffered message before it is
  ** consumed, a signal nobody waited for) may name instance 0 */
  assert_int_equal(q1(&l, "SELECT count(*) FROM journal WHERE coalesce(instance_id, 0)=0"
                          " AND command NOT IN ('message','signal')", 0, NULL), 0);
  assert_int_equal(q1(&l, "SELECT count(*) FROM journal WHERE mark IS NULL", 0, NULL), 0);
  assert_true(q1(&l, "SELECT count(*) FROM journal WHERE command='timer' AND instance_id=?", c.late, NULL) == 1);
  assert_true(q1(&l, "SELECT count(*) FROM journal WHERE command='job' AND instance_id=?", c.docs, NULL) == 2);
  live_close(&l);
}

/* journal.mark is max(history.id) when the command began, also now that
** the engine keeps it in memory inside a transaction (engine.c
** rv__hist_mark): across the commands of an optimistic and of a savepoint
** batch, after a claim (taskops.c writes its own history row), after a
** savepoint that held written history rows was rolled back, and outside
** any batch. Each expected value is read from the table before the command. */
static int64_t hist_max(live *l){ return q1(l, "SELECT coalesce(max(id), 0) FROM history_log", 0, NULL); }
static int64_t last_mark(live *l){ return q1(l, "SELECT mark FROM journal ORDER BY seq DESC LIMIT 1", 0, NULL); }

static void test_marks_in_batches(void **state){
  live l;
  rv_err err;
  rv_store *st;
  int64_t m, id = 0, task;
  (void)state;
  live_open(&l);
  st = rv_engine_store(l.e);
  deploy(&l, RV_SOURCE_ROOT "/bench/workloads/human.bpmn");
  for (int pass = 0; pass < 2; pass++) {
    rv_status rc = pass == 0 ? rv_engine_batch_begin_optimistic(l.e, &err) : rv_engine_batch_begin(l.e, &err);
    if (rc != RV_OK) fail_msg("batch: %s", err.msg);
    for (int i = 0; i < 3; i++) {
      m = hist_max(&l);
      id = start(&l, NULL, "bench-human", "{\"branch\":\"1203\"}");
      assert_int_equal(last_mark(&l), m);
      assert_true(hist_max(&l) > m);            /* it wrote history: the kept mark had to move */
    }
    task = q1(&l, "SELECT id FROM tasks WHERE instance_id=?", id, NULL);
    m = hist_max(&l);
    if (rv_engine_task_claim(l.e, task, "clerk-1", &err) != RV_OK) fail_msg("claim: %s", err.msg);
    assert_int_equal(last_mark(&l), m);
    m = hist_max(&l);
    assert_true(complete(&l, id, "review", "{\"ok\":true}", "clerk-1"));
    assert_int_equal(last_mark(&l), m);
    if (pass == 1) {                            /* rows written, then rolled back */
      m = hist_max(&l);
      assert_int_equal(rv_store_begin(st, &err), RV_OK);
      start(&l, NULL, "bench-human", "{\"branch\":\"1203\"}");
      assert_true(hist_max(&l) > m);
      rv_store_rollback(st);
      assert_int_equal(hist_max(&l), m);
      start(&l, NULL, "bench-human", "{\"branch\":\"1203\"}");
      assert_int_equal(last_mark(&l), m);
    }
    if (rv_engine_batch_end(l.e, &err) != RV_OK) fail_msg("batch end: %s", err.msg);
  }
  m = hist_max(&l);                             /* one command, its own transaction */
  start(&l, NULL, "bench-human", "{\"branch\":\"1203\"}");
  assert_int_equal(last_mark(&l), m);
  live_close(&l);
}

static void test_replay_identical(void **state){
  (void)state;
  for (int i = 0; i < N_CASES; i++) {
    char p[600], where[256];
    char *report = NULL;
    rv_replay_verdict v;
    rec_path(p, sizeof p, case_names[i]);
    v = replay(p, NULL, where, sizeof where, &report);
    if (v != RV_REPLAY_IDENTICAL) fail_msg("%s: %s: %s\n%s", case_names[i], rv_replay_verdict_name(v), where, report);
    free(report);
  }
}

static void test_replay_twice_is_byte_identical(void **state){
  (void)state;
  for (int i = 0; i < N_CASES; i++) {
    char p[600], e1[640], e2[640];
    char *a, *b, *orig;
    rv_replay_opts o1 = { NULL, NULL, e1 }, o2 = { NULL, NULL, e2 };
    rec_path(p, sizeof p, case_names[i]);
    snprintf(e1, sizeof e1, "%s.one", p);
    snprintf(e2, sizeof e2, "%s.two", p);
    assert_int_equal(replay(p, &o1, NULL, 0, NULL), RV_REPLAY_IDENTICAL);
    assert_int_equal(replay(p, &o2, NULL, 0, NULL), RV_REPLAY_IDENTICAL);
    a = slurp(e1); b = slurp(e2); orig = slurp(p);
    assert_non_null(a);
    assert_string_equal(a, b);
    assert_string_equal(a, orig);      /* the replay writes back what was recorded */
    free(a); free(b); free(orig);
    unlink(e1); unlink(e2);
  }
}

static void test_tampering_is_caught(void **state){
  char p[600], t[640], where[256];
  char *report = NULL;
  (void)state;
  rec_path(p, sizeof p, "claim-auto");
  snprintf(t, sizeof t, "%s/tampered.jsonl", recdir);
  /* an output the engine would not produce */
  tamper(p, t, "ریال برای پرونده C-1", "تومان برای پرونده C-1");
  assert_int_equal(replay(t, NULL, where, sizeof where, &report), RV_REPLAY_SAME_PATH);
  assert_non_null(strstr(where, "SMS"));
  free(report);
  /* a decision's text is an explanation, not an output */
  tamper(p, t, "is false (amount=1000000)", "is false (amount=42)");
  assert_int_equal(replay(t, NULL, NULL, 0, NULL), RV_REPLAY_IDENTICAL);
  /* a different input: the clerk rejects instead */
  rec_path(p, sizeof p, "claim-review");
  tamper(p, t, "\"data\":{\"approved\":true}", "\"data\":{\"approved\":false}");
  assert_int_equal(replay(t, NULL, where, sizeof where, &report), RV_REPLAY_DIVERGED);
  assert_non_null(strstr(where, "gw_ok"));
  assert_non_null(strstr(report, "`approved` is false (approved=false)"));
  free(report);
  /* a recording whose embedded files were edited is refused */
  rec_path(p, sizeof p, "claim-auto");
  tamper(p, t, "amount &gt; 5000000", "amount &gt; 5000001");
  {
    rv_replay_result r;
    rv_err err;
    assert_int_not_equal(rv_journal_replay(t, NULL, &r, &err), RV_OK);
    assert_non_null(strstr(err.msg, "hash"));
    free(r.report);
  }
  /* a malformed line names its line number */
  tamper(p, t, "{\"in\":\"start\"", "{\"inn\":\"start\"");
  {
    rv_replay_result r;
    rv_err err;
    assert_int_equal(rv_journal_replay(t, NULL, &r, &err), RV_INVALID);
    assert_non_null(strstr(err.msg, "unknown line"));
    free(r.report);
  }
  unlink(t);
}

static void test_against_changed_condition(void **state){
  rv_replay_opts o = { FIX "claim-v2.bpmn", NULL, NULL };
  (void)state;
  for (int i = 0; i < 5; i++) {
    char p[600], where[256];
    char *report = NULL;
    rv_replay_verdict v;
    rec_path(p, sizeof p, case_names[i]);
    v = replay(p, &o, where, sizeof where, &report);
    if (strcmp(case_names[i], "claim-threshold") == 0) {
      /* 4,000,000 crosses the new 3,000,000 threshold */
      assert_int_equal(v, RV_REPLAY_DIVERGED);
      assert_non_null(strstr(where, "gw_amount"));
      assert_non_null(strstr(report, "`amount > 3000000` is true (amount=4000000)"));
      assert_non_null(strstr(report, "`amount > 5000000` is false (amount=4000000)"));
    } else if (v != RV_REPLAY_SAME_PATH && v != RV_REPLAY_IDENTICAL) {
      fail_msg("%s: %s: %s\n%s", case_names[i], rv_replay_verdict_name(v), where, report);
    }
    free(report);
  }
}

static void test_against_new_task_needs_input(void **state){
  rv_replay_opts o = { FIX "claim-v3.bpmn", NULL, NULL };
  (void)state;
  for (int i = 0; i < 5; i++) {
    char p[600], where[256];
    rec_path(p, sizeof p, case_names[i]);
    assert_int_equal(replay(p, &o, where, sizeof where, NULL), RV_REPLAY_NEEDS_INPUT);
    assert_non_null(strstr(where, "verify"));
  }
}

static void test_impact_report(void **state){
  const char *files[5];
  char paths[5][600], out[700], *text;
  FILE *f;
  int rc;
  (void)state;
  for (int i = 0; i < 5; i++) { rec_path(paths[i], sizeof paths[i], case_names[i]); files[i] = paths[i]; }
  snprintf(out, sizeof out, "%s/impact.txt", recdir);
  f = fopen(out, "w");
  rc = rv_journal_impact_main(FIX "claim-v2.bpmn", NULL, files, 5, false, f);
  fclose(f);
  assert_int_equal(rc, 1);
  text = slurp(out);
  assert_non_null(strstr(text, "keep their path  4"));
  assert_non_null(strstr(text, "diverge          1"));
  assert_non_null(strstr(text, "claim-threshold.rec.jsonl  diverges"));
  free(text);
  /* the same file against itself: everything keeps its path, exit 0 */
  f = fopen(out, "w");
  rc = rv_journal_impact_main(FIX "claim.bpmn", NULL, files, 5, true, f);
  fclose(f);
  assert_int_equal(rc, 0);
  unlink(out);
}

/*--- Crash and recovery ------------------------------------------------------------------------*/

static int64_t root_of(live *l, const char *key){
  return q1(l, "SELECT cast(result AS INTEGER) FROM commands WHERE key=?2", 0, key);
}

/* A fixed script of commands, each idempotent (keys, "if still open"), so
** that a child killed after a commit but before its acknowledgement can
** be resumed at the next step. */
static void crash_step(live *l, int i){
  rv_err err;
  static const char *const times[] = {
    "2026-03-21T08:10:00Z", "2026-03-21T08:10:00Z", "2026-03-21T08:10:00Z", "2026-03-21T08:11:00Z",
    "2026-03-21T08:12:00Z", "2026-03-21T08:13:00Z", "2026-03-21T08:14:00Z", "2026-03-21T08:15:00Z",
    "2026-03-21T08:20:00Z", "2026-03-21T09:00:00Z", "2026-03-21T09:01:00Z", "2026-03-21T09:02:00Z",
    "2026-03-24T09:00:00Z", "2026-03-24T09:01:00Z", "2026-03-24T09:02:00Z",
  };
  at(l, times[i]);
  switch (i) {
  case 0: start(l, "k1", "claim", "{\"case_id\":\"K-1\",\"days\":10,\"daily_rate\":100000,\"mobile\":\"0911\"}"); break;
  case 1: start(l, "k2", "claim", "{\"case_id\":\"K-2\",\"days\":80,\"daily_rate\":100000,\"mobile\":\"0912\"}"); break;
  case 2: start(l, "k3", "docs", "{\"case_id\":\"K-3\",\"pages\":7}"); break;
  case 3: rv_engine_drain(l->e); break;
  case 4: message(l, "docs", "K-3", "{\"x\":1}", "k-msg-1"); break;
  case 5: complete(l, root_of(l, "k3"), "prep", NULL, "c"); break;
  case 6: complete(l, root_of(l, "k1"), "file", "{\"shelf\":\"S1\"}", "a"); break;
  case 7: rv_engine_signal(l->e, "go", NULL, NULL, &err); break;
  case 8: rv_engine_drain(l->e); break;
  case 9: rv_engine_drain(l->e); break;
  case 10: complete(l, root_of(l, "k2"), "review", "{\"approved\":true}", "b"); break;
  case 11: rv_engine_drain(l->e); break;
  case 12: rv_engine_drain(l->e); break;
  case 13: complete(l, root_of(l, "k2"), "file", "{\"shelf\":\"S2\"}", "a"); break;
  case 14: rv_engine_drain(l->e); break;
  }
}
#define CRASH_STEPS 15

static void crash_child(const char *db, int from, int fd){
  live l;
  memset(&l, 0, sizeof l);
  snprintf(l.db, sizeof l.db, "%s", db);
  rv_clock_init_virtual(&l.clk, 1774080000000LL);
  live_engine(&l);
  if (from > 0) {
    at(&l, "2026-03-21T08:10:00Z");
    rv_engine_drain(l.e);          /* recovery, as `serve` does first */
  }
  for (int i = from; i < CRASH_STEPS; i++) {
    char ack[16];
    crash_step(&l, i);
    snprintf(ack, sizeof ack, "%d\n", i);
    if (write(fd, ack, strlen(ack)) < 0) _exit(3);
  }
  rv_engine_close(l.e);
  _exit(0);
}

static void test_crash_recovery_replays(void **state){
  char dir[256], db[300];
  int next = 0, kills = 0, target;
  unsigned seed = (unsigned)time(NULL);
  live l;
  (void)state;
  srand(seed);
  make_dir(dir, sizeof dir);
  snprintf(db, sizeof db, "%s/crash.db", dir);
  memset(&l, 0, sizeof l);
  snprintf(l.db, sizeof l.db, "%s", db);
  rv_clock_init_virtual(&l.clk, 1774080000000LL);
  live_engine(&l);
  deploy(&l, FIX "claim.bpmn");
  deploy(&l, FIX "inputs.bpmn");
  rv_engine_close(l.e);
  while (next < CRASH_STEPS) {
    int p[2];
    pid_t pid;
    FILE *in;
    char line[32];
    int st;
    assert_int_equal(pipe(p), 0);
    pid = fork();
    if (pid == 0) { close(p[0]); crash_child(db, next, p[1]); }
    close(p[1]);
    in = fdopen(p[0], "r");
    /* kill after a random number of acknowledged steps and a random
    ** moment more: between commands, or inside one (a drain with jobs in
    ** flight, a commit); the first kills may come before any ack */
    target = kills < 8 ? next - 1 + rand() % (CRASH_STEPS - next + 1) : CRASH_STEPS;
    if (target < next) {
      usleep((useconds_t)(rand() % 4000));
      kill(pid, SIGKILL);
      kills++;
    }
    while (fgets(line, sizeof line, in)) {
      if (atoi(line) + 1 > next) next = atoi(line) + 1;
      if (next > target && kills < 8) {
        usleep((useconds_t)(rand() % 4000));
        kill(pid, SIGKILL);
        kills++;
        break;
      }
    }
    fclose(in);
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0) fail_msg("child failed (%d), seed %u", WEXITSTATUS(st), seed);
    if (WIFSIGNALED(st)) print_message("# killed; resuming at step %d of %d\n", next, CRASH_STEPS);
  }
  /* the live run as it ended, recorded; every case replays identically */
  memset(&l, 0, sizeof l);
  snprintf(l.dir, sizeof l.dir, "%s", dir);
  snprintf(l.db, sizeof l.db, "%s", db);
  rv_clock_init_virtual(&l.clk, 1774600000000LL);
  live_engine(&l);
  rv_engine_drain(l.e);
  {
    int64_t *roots = NULL;
    int n = 0, k = 0;
    rv_err err;
    static const char *const procs[] = { "claim", "docs" };
    for (int pi = 0; pi < 2; pi++) {
      assert_int_equal(rv_journal_roots(l.e, procs[pi], &roots, &n, &err), RV_OK);
      for (int i = 0; i < n; i++, k++) {
        char path[400], e1[420], e2[420], where[256];
        char *report = NULL, *a, *b;
        rv_replay_opts o1 = { NULL, NULL, e1 }, o2 = { NULL, NULL, e2 };
        rv_replay_verdict v;
        snprintf(path, sizeof path, "%s/r%d.jsonl", dir, k);
        snprintf(e1, sizeof e1, "%s.1", path);
        snprintf(e2, sizeof e2, "%s.2", path);
        record(&l, roots[i], path);
        v = replay(path, &o1, where, sizeof where, &report);
        if (v != RV_REPLAY_IDENTICAL)
          fail_msg("seed %u, %d kills, instance %lld: %s: %s\n%s", seed, kills, (long long)roots[i],
                   rv_replay_verdict_name(v), where, report);
        free(report);
        /* the replayed end state is the live end state (the recording's
        ** "end" lines come from the live database) and replaying is stable */
        assert_int_equal(replay(path, &o2, NULL, 0, NULL), RV_REPLAY_IDENTICAL);
        a = slurp(e1); b = slurp(e2);
        assert_string_equal(a, b);
        free(a); free(b);
      }
      free(roots);
      roots = NULL;
    }
    assert_int_equal(k, 3);
    /* the claims finished as the script says, crash or not */
    assert_int_equal(q1(&l, "SELECT count(*) FROM instances WHERE process_id='claim' AND status='completed'"
                            "", 0, NULL), 2);
  }
  live_close(&l);
}

/*--- Process tests -----------------------------------------------------------------------------*/

static int run_tests_dir(const char *dir, char **out){
  char path[400];
  const char *dirs[] = { dir };
  FILE *f;
  int rc;
  snprintf(path, sizeof path, "%s/test-out.txt", recdir);
  f = fopen(path, "w");
  rc = rv_journal_test_main(dirs, 1, false, f);
  fclose(f);
  *out = slurp(path);
  unlink(path);
  return rc;
}

static void test_process_tests(void **state){
  char *out = NULL, dir[400], file[500];
  (void)state;
  /* the hand-written tests of tests/process pass, with coverage */
  if (run_tests_dir(RV_SOURCE_ROOT "/tests/process", &out) != 0) fail_msg("%s", out);
  assert_non_null(strstr(out, "coverage per process:"));
  assert_non_null(strstr(out, "claim "));
  free(out);
  /* a wrong expectation fails, naming the line and what was found */
  snprintf(dir, sizeof dir, "%s/bad", recdir);
  mkdir(dir, 0700);
  snprintf(file, sizeof file, "%s/wrong.test.jsonl", dir);
  spit(file,
    "{\"ravand\":\"test\",\"format\":1,\"name\":\"wrong path\"}\n"
    "{\"deploy\":[\"" FIX "claim.bpmn\"],\"scripts\":\"" FIX "scripts\"}\n"
    "# a comment\n"
    "{\"in\":\"start\",\"process\":\"claim\",\"vars\":{\"case_id\":\"T\",\"days\":1,\"daily_rate\":1}}\n"
    "{\"expect\":\"path\",\"elements\":[\"s\",\"assess\",\"gw_amount\",\"review\"]}\n"
    "{\"expect\":\"vars\",\"vars\":{\"amount\":1}}\n");
  assert_int_equal(run_tests_dir(dir, &out), 1);
  assert_non_null(strstr(out, "line 5: expect path"));
  assert_non_null(strstr(out, "\"pay\""));
  assert_null(strstr(out, "line 6"));
  free(out);
  /* an input that cannot be applied fails too */
  spit(file,
    "{\"ravand\":\"test\",\"format\":1}\n"
    "{\"deploy\":[\"" FIX "claim.bpmn\"],\"scripts\":\"" FIX "scripts\"}\n"
    "{\"in\":\"start\",\"process\":\"claim\",\"vars\":{\"case_id\":\"T\",\"days\":1,\"daily_rate\":1}}\n"
    "{\"in\":\"complete\",\"element\":\"review\",\"data\":{\"approved\":true}}\n");
  assert_int_equal(run_tests_dir(dir, &out), 1);
  assert_non_null(strstr(out, "no open task 'review'"));
  free(out);
  /* a malformed line is named */
  spit(file, "{\"ravand\":\"test\",\"format\":1}\n{\"expct\":\"path\"}\n");
  assert_int_equal(run_tests_dir(dir, &out), 1);
  assert_non_null(strstr(out, "line 2: unknown line"));
  free(out);
  unlink(file);
  rmdir(dir);
}

/*--- Answers inside the command; history batches ------------------------------------------------*/

/* `lookup` (lookup.bpmn): doubles input.n; a negative n is the BPMN error
** BAD_N; with input.defer true, answer_now leaves the job to the loop,
** where invoke() answers the same way. */
static int lookup_now_calls;

static void lookup_decide(const cJSON *in, rv_answer *a){
  int64_t n = rv_json_int(in, "n", 0);
  if (n < 0) {
    a->outcome = RV_JOB_BPMN_ERROR;
    snprintf(a->code, sizeof a->code, "BAD_N");
    snprintf(a->message, sizeof a->message, "n is negative");
    return;
  }
  a->outcome = RV_JOB_OK;
  a->result = cJSON_CreateObject();
  cJSON_AddNumberToObject(a->result, "n", (double)(n * 2));
}

static bool lookup_now(void *self, struct rv_engine *e, const rv_job_info *job, rv_answer *a){
  (void)self; (void)e;
  lookup_now_calls++;
  if (rv_json_bool(job->input, "defer", false)) return false;
  lookup_decide(job->input, a);
  return true;
}

typedef struct lookup_later { rv_adapter_done_fn done; void *arg; rv_answer a; } lookup_later;

static void lookup_deliver(evutil_socket_t fd, short what, void *p){
  lookup_later *k = p;
  (void)fd; (void)what;
  k->done(k->arg, k->a.outcome, k->a.result, k->a.code[0] ? k->a.code : NULL,
          k->a.message[0] ? k->a.message : NULL);
  free(k);
}

static rv_status lookup_invoke(void *self, struct event_base *base, const rv_job_info *job,
                               rv_adapter_done_fn done, void *arg){
  lookup_later *k = calloc(1, sizeof *k);
  struct timeval tv = {0, 0};
  (void)self;
  k->done = done;
  k->arg = arg;
  lookup_decide(job->input, &k->a);
  if (event_base_once(base, -1, EV_TIMEOUT, lookup_deliver, k, &tv) != 0) {
    cJSON_Delete(k->a.result);
    free(k);
    return RV_IO;
  }
  return RV_OK;
}

static const rv_adapter_ops lookup_ops = { .name = "lookup", .invoke = lookup_invoke,
                                           .answer_now = lookup_now };

static int64_t count_of(live *l, const char *sql, int64_t inst){ return q1(l, sql, inst, NULL); }

/* A live engine that answers inside the command, with lookup.bpmn and the
** lookup adapter (unregistered by the caller). */
static void lookup_open(live *l){
  rv_adapter_register(&lookup_ops);
  live_answer_now = true;
  live_open(l);
  live_answer_now = false;
  deploy(l, FIX "lookup.bpmn");
}

#define JOBS_IN(state) "SELECT count(*) FROM jobs WHERE instance_id=? AND state='" state "'"
#define CHECK_OPEN "SELECT count(*) FROM tasks WHERE instance_id=? AND element_id='check' AND state='open'"

static void replay_identical(const char *path){
  char where[256];
  char *report = NULL;
  rv_replay_verdict v = replay(path, NULL, where, sizeof where, &report);
  if (v != RV_REPLAY_IDENTICAL) fail_msg("%s: %s: %s\n%s", path, rv_replay_verdict_name(v), where, report);
  free(report);
}

static void test_answers_now(void **state){
  live l;
  rv_err err;
  int64_t a, bad, later, answered0, t;
  char path[600];
  (void)state;
  lookup_open(&l);
  answered0 = rv_engine_stats_get(l.e)->answered_now;

  /* both lookups answered before the start returns: no drain */
  a = start(&l, "n1", "lookup", "{\"n\":3}");
  assert_int_equal(count_of(&l, CHECK_OPEN, a), 1);
  /* answered inside the command: no job rows at all (engine.c answers_now) */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=?", a), 0);
  assert_int_equal(rv_engine_stats_get(l.e)->answered_now - answered0, 2);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM instances WHERE id=? AND instr(state, '\"n\":12') > 0", a), 1);
  /* one command: its own journal row, then one "answers" row (the same mark) with both answers
  ** in order; no "job" rows; one history batch */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='start'", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='job'", a), 0);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'"
                                " AND json_array_length(payload)=2 AND json_extract(payload, '$[0].element')='a'"
                                " AND json_extract(payload, '$[1].element')='b' AND json_extract(payload, '$[0].outcome')='ok'"
                                " AND json_extract(payload, '$[0].inst')=instance_id", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal j WHERE instance_id=?1 AND command='answers'"
                                " AND seq=(SELECT seq+1 FROM journal WHERE instance_id=?1 AND command='start')"
                                " AND mark=(SELECT mark FROM journal WHERE instance_id=?1 AND command='start')", a), 1);
  /* each answer carries its job's input, and no job id (there is no row) */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'"
                                " AND json_extract(payload, '$[0].input.n')=3 AND json_extract(payload, '$[1].input.n')=6"
                                " AND json_type(payload, '$[0].input.defer')='false'"
                                " AND json_type(payload, '$[0].job') IS NULL AND json_type(payload, '$[1].job') IS NULL", a), 1);
  /* history: the command's one batch, events in order: a's answer before b's job */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM history_log WHERE instance_id=?", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM history_log WHERE instance_id=? AND event='BATCH'", a), 1);
  assert_true(count_of(&l, "SELECT count(*) FROM history WHERE instance_id=?", a) > 12);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM (SELECT event, element_id, row_number() OVER (ORDER BY id, seq) AS k"
                                " FROM history WHERE instance_id=?1) x, (SELECT event, element_id,"
                                " row_number() OVER (ORDER BY id, seq) AS k FROM history WHERE instance_id=?1) y"
                                " WHERE x.event='JOB_COMPLETED' AND x.element_id='a' AND y.event='JOB_CREATED'"
                                " AND y.element_id='b' AND x.k < y.k", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM (SELECT event FROM history WHERE instance_id=?"
                                " ORDER BY id, seq LIMIT 1) WHERE event='INSTANCE_STARTED'", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM (SELECT event, element_id FROM history WHERE instance_id=?"
                                " ORDER BY id DESC, seq DESC LIMIT 1) WHERE event='TASK_CREATED' AND element_id='check'", a), 1);
  assert_true(complete(&l, a, "check", NULL, "clerk-1"));
  assert_int_equal(count_of(&l, "SELECT count(*) FROM instances WHERE id=? AND status='completed'", a), 1);

  /* a business error answered now is thrown and caught as ever */
  bad = start(&l, "n2", "lookup", "{\"n\":-1}");
  assert_int_equal(count_of(&l, "SELECT count(*) FROM instances WHERE id=? AND status='completed'", bad), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM history WHERE instance_id=? AND event='ELEMENT_COMPLETED'"
                                " AND element_id='e_bad'", bad), 1);
  /* its job has a row (done, one attempt: an incident could name it), and the answer its id */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=? AND element_id='a' AND state='done'"
                                " AND attempts=1", bad), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=?1 AND command='answers'"
                                " AND json_extract(payload, '$[0].job')=(SELECT id FROM jobs WHERE instance_id=?1)"
                                " AND json_extract(payload, '$[0].outcome')='error'", bad), 1);

  /* declined: the loop answers a; b, created by that answer, is answered inside it */
  later = start(&l, "n3", "lookup", "{\"n\":5,\"defer\":true}");
  assert_int_equal(count_of(&l, JOBS_IN("pending"), later), 1);
  assert_int_equal(count_of(&l, CHECK_OPEN, later), 0);
  rv_engine_drain(l.e);
  assert_int_equal(count_of(&l, CHECK_OPEN, later), 1);
  assert_int_equal(count_of(&l, JOBS_IN("done"), later), 1);     /* a's, through the loop; b left none */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=? AND element_id='b'", later), 0);
  /* a's answer came through the loop (a "job" row), b's inside that command (its "answers" row) */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='job'"
                                " AND json_extract(payload, '$.element')='a'", later), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'"
                                " AND json_extract(payload, '$[0].element')='b'", later), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM instances WHERE id=? AND instr(state, '\"n\":20') > 0", later), 1);
  assert_int_equal(rv_engine_stats_get(l.e)->answered_now - answered0, 4);   /* a, b of n1; a of n2; b of n3 */

  /* a replay takes every answer from the journal: the same rows */
  snprintf(path, sizeof path, "%s/now-a.rec.jsonl", l.dir); record(&l, a, path); replay_identical(path);
  {   /* the answers ride on the start's input line, in order */
    char *text = slurp(path), *line = strstr(text, "{\"in\":\"start\"");
    assert_non_null(line);
    *strchr(line, '\n') = 0;
    assert_non_null(strstr(line, "\"answers\":[{\"in\":\"job\",\"inst\":1,\"element\":\"a\""));
    assert_non_null(strstr(line, "{\"in\":\"job\",\"inst\":1,\"element\":\"b\""));
    assert_null(strstr(line + strlen(line) + 1, "{\"in\":\"job\""));
    assert_null(strstr(line, "\"input\""));       /* the live database's copy stays out of the input line */
    /* the job output lines have their inputs though no row held them (outputs.c, from the journal) */
    assert_non_null(strstr(line + strlen(line) + 1, "{\"out\":\"job\",\"inst\":1,\"element\":\"a\",\"adapter\":\"lookup\","
                                                      "\"input\":{\"defer\":false,\"n\":3}}"));
    assert_non_null(strstr(line + strlen(line) + 1, "{\"out\":\"job\",\"inst\":1,\"element\":\"b\",\"adapter\":\"lookup\","
                                                      "\"input\":{\"n\":6}}"));
    free(text);
  }
  snprintf(path, sizeof path, "%s/now-bad.rec.jsonl", l.dir); record(&l, bad, path); replay_identical(path);
  snprintf(path, sizeof path, "%s/now-later.rec.jsonl", l.dir); record(&l, later, path); replay_identical(path);

  /* one broadcast, two instance trees answered inside its command: an "answers" row each,
  ** and each tree's recording replays */
  {
    int64_t s1 = start(&l, "g1", "lookup_sig", "{\"n\":1}"), s2 = start(&l, "g2", "lookup_sig", "{\"n\":2}");
    assert_int_equal(rv_engine_signal(l.e, "go", NULL, NULL, &err), RV_OK);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM tasks WHERE instance_id=? AND element_id='check2'"
                                  " AND state='open'", s1), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM tasks WHERE instance_id=? AND element_id='check2'"
                                  " AND state='open'", s2), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'"
                                  " AND json_array_length(payload)=1", s1), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'"
                                  " AND json_array_length(payload)=1", s2), 1);
    snprintf(path, sizeof path, "%s/now-sig1.rec.jsonl", l.dir); record(&l, s1, path); replay_identical(path);
    snprintf(path, sizeof path, "%s/now-sig2.rec.jsonl", l.dir); record(&l, s2, path); replay_identical(path);
  }

  /* a signal thrown inside another case: the waiting case's journal has its answers but no
  ** command row to carry them, so its recording gives them as "job" inputs of their own; a
  ** replay does not throw the other case's signal, so it waits for input (docs/testing.md) */
  {
    char *text, *line;
    int64_t w = start(&l, "w1", "lookup_sig", "{\"n\":6}");
    start(&l, "x1", "go_throw", "{}");
    assert_int_equal(count_of(&l, "SELECT count(*) FROM tasks WHERE instance_id=? AND element_id='check2'"
                                  " AND state='open'", w), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'", w), 1);
    snprintf(path, sizeof path, "%s/now-thrown.rec.jsonl", l.dir);
    record(&l, w, path);
    text = slurp(path);
    line = strstr(text, "\n{\"in\":\"job\"");
    assert_non_null(line);
    assert_non_null(strstr(line, "\"element\":\"a2\""));
    assert_null(strstr(text, "\"answers\":"));
    free(text);
    assert_int_equal(replay(path, NULL, NULL, 0, NULL), RV_REPLAY_NEEDS_INPUT);
  }

  /* the element was left in the same command before its answer: the job row says canceled,
  ** as rv__side_clear leaves a pending one; no answer, no "answers" row */
  {
    int64_t before = lookup_now_calls, tm = start(&l, "t1", "lookup_term", "{\"n\":4}");
    assert_int_equal(count_of(&l, "SELECT count(*) FROM instances WHERE id=? AND status='completed'", tm), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=? AND element_id='a3'"
                                  " AND state='canceled' AND attempts=0", tm), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'", tm), 0);
    assert_int_equal(lookup_now_calls, before);
    snprintf(path, sizeof path, "%s/now-term.rec.jsonl", l.dir); record(&l, tm, path); replay_identical(path);
  }
  live_close(&l);

  /* without cfg.answer_now the adapter is only invoked through the loop */
  lookup_now_calls = 0;
  live_open(&l);
  deploy(&l, FIX "lookup.bpmn");
  a = start(&l, "n1", "lookup", "{\"n\":3}");
  assert_int_equal(count_of(&l, JOBS_IN("pending"), a), 1);
  rv_engine_drain(l.e);
  assert_int_equal(count_of(&l, CHECK_OPEN, a), 1);
  assert_int_equal(lookup_now_calls, 0);
  assert_int_equal(rv_engine_stats_get(l.e)->answered_now, 0);
  t = count_of(&l, "SELECT count(*) FROM history_log WHERE instance_id=?", a);
  assert_int_equal(t, 3);   /* the start, then one command per answer */
  live_close(&l);
  rv_adapter_unregister(&lookup_ops);
  (void)err;
}

/* Output mappings over an answer given inside the command take their values
** out of it when they can; the case's variables, the journaled answer and a
** replay must be as when they are copied (overlapping paths and Lua copy). */
static void test_answer_mappings(void **state){
  live l;
  char path[600];
  int64_t a, b, c;
  (void)state;
  lookup_open(&l);
  a = start(&l, "m1", "lookup_take", "{\"n\":3}");
  b = start(&l, "m2", "lookup_overlap", "{\"n\":4}");
  c = start(&l, "m3", "lookup_lua", "{\"n\":5}");
#define VAR(path) "SELECT count(*) FROM instances WHERE id=? AND status='completed' AND " path
  assert_int_equal(count_of(&l, VAR("json_extract(state, '$.eis[0].v.n1')=6"
                                    " AND json_extract(state, '$.eis[0].v.label')='taken'"), a), 1);
  assert_int_equal(count_of(&l, VAR("json_extract(state, '$.eis[0].v.n1')=8"
                                    " AND json_extract(state, '$.eis[0].v.whole')='{\"n\":8}'"), b), 1);
  assert_int_equal(count_of(&l, VAR("json_extract(state, '$.eis[0].v.n1')=10"
                                    " AND json_extract(state, '$.eis[0].v.n2')=100"), c), 1);
#undef VAR
  assert_int_equal(count_of(&l, "SELECT count(*) FROM journal WHERE instance_id=? AND command='answers'"
                                " AND json_extract(payload, '$[0].result.n')=6", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM incidents", 0), 0);
  snprintf(path, sizeof path, "%s/take.rec.jsonl", l.dir); record(&l, a, path); replay_identical(path);
  snprintf(path, sizeof path, "%s/overlap.rec.jsonl", l.dir); record(&l, b, path); replay_identical(path);
  live_close(&l);
  rv_adapter_unregister(&lookup_ops);
}

/* The SMS an element sends is retried as the element says (rv:smsRetries,
** rv:smsRetryBackoff); without them, 5 attempts a minute apart. */
static void test_sms_retry_policy(void **state){
  live l;
  int64_t a;
  (void)state;
  live_open(&l);
  deploy(&l, FIX "sms_policy.bpmn");
  a = start(&l, "k1", "sms_policy", "{\"case_id\":\"C-1\",\"mobile\":\"09121234567\"}");
  assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=? AND adapter='sms' AND notify=1"
                                " AND element_id='s' AND retries=8 AND backoff_ms=300000"
                                " AND json_extract(input, '$.text')='درخواست C-1 ثبت شد'", a), 1);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=? AND adapter='sms' AND notify=1"
                                " AND element_id='wait' AND retries=5 AND backoff_ms=60000", a), 1);
  live_close(&l);
}

/* A notification that failed into an incident while its element waits:
** leaving the element cancels the incident. The failure marks the element
** (RV_SIDE_INC), so leaving elements without one runs no incidents query;
** a state written before the mark existed ("v":2) gives every element with
** a notification the mark when read. */
static void test_notify_incident(void **state){
  live l;
  rv_err err;
  int64_t a, b, job;
  (void)state;
  live_open(&l);
  deploy(&l, FIX "sms_incident.bpmn");
  for (int old = 0; old < 2; old++) {
    a = start(&l, old ? "n2" : "n1", "sms_incident", "{\"mobile\":\"09121234567\"}");
    job = q1(&l, "SELECT id FROM jobs WHERE instance_id=? AND adapter='sms' AND notify=1 AND state='pending'", a, NULL);
    assert_true(job > 0);
    assert_int_equal(rv_engine_job_result(l.e, job, RV_JOB_FAILED, NULL, NULL, "gateway down", &err), RV_OK);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM incidents WHERE instance_id=? AND kind='notify'"
                                  " AND state='open'", a), 1);
    assert_int_equal(count_of(&l, "SELECT count(*) FROM instances WHERE id=? AND json_extract(state, '$.v')=3"
                                  " AND EXISTS (SELECT 1 FROM json_each(state, '$.eis') e"
                                  " WHERE json_extract(e.value, '$.sd') & 32)", a), 1);
    if (old) {    /* as a state before the mark: version 2, the element's INC bit off */
      sqlite3_stmt *s;
      assert_int_equal(sqlite3_prepare_v2(rv_store_db(rv_engine_store(l.e)),
        "UPDATE instances SET state=(SELECT json_set(state, '$.v', 2, '$.eis', (SELECT json_group_array("
        " json_set(e.value, '$.sd', json_extract(e.value, '$.sd') & ~32)) FROM json_each(state, '$.eis') e)))"
        " WHERE id=?", -1, &s, NULL), SQLITE_OK);
      sqlite3_bind_int64(s, 1, a);
      assert_int_equal(sqlite3_step(s), SQLITE_DONE);
      sqlite3_finalize(s);
      rv_engine_close(l.e);            /* read afresh, no cached instance */
      live_engine(&l);
    }
    assert_true(complete(&l, a, "wait", NULL, "u1"));
    assert_int_equal(count_of(&l, "SELECT count(*) FROM incidents WHERE instance_id=? AND kind='notify'"
                                  " AND state='canceled'", a), 1);
  }
  /* an element without a failed notification: nothing to cancel, no mark */
  b = start(&l, "n3", "sms_incident", "{\"mobile\":\"09121234567\"}");
  rv_engine_drain(l.e);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM jobs WHERE instance_id=? AND adapter='sms' AND state='done'", b), 1);
  assert_true(complete(&l, b, "wait", NULL, "u1"));
  assert_int_equal(count_of(&l, "SELECT count(*) FROM incidents WHERE instance_id=?", b), 0);
  live_close(&l);
}

/* A deploy rolled back with its batch after a start had read its
** definition: the next deploy gets the same ids, and the engine must run
** what that one deployed, not the model it had cached (deploy.c). */
static void test_rolled_back_deploy(void **state){
  live l;
  rv_err err;
  int64_t first, second;
  (void)state;
  live_open(&l);
  assert_int_equal(rv_engine_batch_begin_optimistic(l.e, &err), RV_OK);
  deploy(&l, FIX "claim.bpmn");                       /* threshold 5,000,000 */
  first = start(&l, "rb1", "claim", "{\"case_id\":\"R-1\",\"days\":40,\"daily_rate\":100000,\"mobile\":\"09120000009\"}");
  assert_true(first > 0);
  rv_engine_batch_spoil(l.e);
  assert_int_not_equal(rv_engine_batch_end(l.e, &err), RV_OK);
  assert_int_equal(count_of(&l, "SELECT count(*) FROM definitions", 0), 0);
  deploy(&l, FIX "claim-v2.bpmn");                    /* threshold 3,000,000, same ids */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM definitions WHERE process_id='claim' AND version=1", 0), 1);
  second = start(&l, "rb2", "claim", "{\"case_id\":\"R-2\",\"days\":40,\"daily_rate\":100000,\"mobile\":\"09120000009\"}");
  assert_int_equal(second, first);                    /* the same instance id again */
  /* 4,000,000 is over version 2's threshold: review */
  assert_int_equal(count_of(&l, "SELECT count(*) FROM tasks WHERE instance_id=? AND element_id='review'", second), 1);
  live_close(&l);
}

/* A store from before history batches (schema 8): its rows are kept and
** read through the view, one event each, after migration 9; migration 10
** rewrites the scope values of principals and tasks in normal form;
** migration 11 makes the due-jobs index partial on pending jobs. */
static void test_history_migration(void **state){
  char dir[256], db[300];
  sqlite3 *h;
  rv_store *st;
  rv_err err;
  sqlite3_stmt *s;
  int n = 0;
  (void)state;
  make_dir(dir, sizeof dir);
  snprintf(db, sizeof db, "%s/old.db", dir);
  assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h,
    "CREATE TABLE history(id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL,"
    "  at INTEGER NOT NULL, event TEXT NOT NULL, element_id TEXT, ei INTEGER, detail TEXT);"
    "CREATE INDEX history_inst ON history(instance_id, id);"
    "INSERT INTO history VALUES(1, 7, 100, 'INSTANCE_STARTED', NULL, 1, NULL),"
    "  (2, 7, 100, 'STATUS', 'e', 3, 'ثبت شد');"
    /* the columns migration 10 rewrites: Arabic yeh and kaf, Persian digits */
    "CREATE TABLE principals(id INTEGER PRIMARY KEY, branch TEXT, county TEXT);"
    "INSERT INTO principals VALUES(1, 'كهريزك ۱۲', 'تهران'), (2, NULL, NULL);"
    "CREATE TABLE tasks(id INTEGER PRIMARY KEY, branch TEXT, county TEXT);"
    "INSERT INTO tasks VALUES(1, 'كهريزك ۱۲', 'ري');"
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY, state TEXT NOT NULL, next_try INTEGER NOT NULL);"
    "CREATE INDEX jobs_due ON jobs(state, next_try);"
    "INSERT INTO jobs VALUES(1, 'done', 5), (2, 'pending', 9), (3, 'pending', 7);"
    /* the indexes migration 12 changes */
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, message_id TEXT UNIQUE, name TEXT NOT NULL,"
    "  corr_key TEXT, payload TEXT, created INTEGER NOT NULL, expires INTEGER NOT NULL,"
    "  consumed_by INTEGER);"
    "CREATE INDEX messages_name ON messages(name, corr_key);"
    "INSERT INTO messages VALUES(1, 'a', 'm', 'k', NULL, 1, 99, 4), (2, 'b', 'm', 'k', NULL, 1, 99, NULL),"
    "  (3, 'c', 'm', 'j', NULL, 1, 99, NULL);"
    "CREATE TABLE feed_records(id INTEGER PRIMARY KEY, husband_id TEXT, wife_id TEXT);"
    "CREATE INDEX feed_records_husband ON feed_records(husband_id);"
    "CREATE INDEX feed_records_wife ON feed_records(wife_id);"
    "PRAGMA user_version=8;", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  if (rv_store_open(db, NULL, &st, &err) != RV_OK) fail_msg("open: %s", err.msg);
  assert_int_equal(sqlite3_prepare_v2(rv_store_db(st),
    "SELECT id, seq, event, detail FROM history WHERE instance_id=7 ORDER BY id, seq", -1, &s, NULL), SQLITE_OK);
  while (sqlite3_step(s) == SQLITE_ROW) {
    assert_int_equal(sqlite3_column_int64(s, 0), n + 1);
    assert_int_equal(sqlite3_column_int64(s, 1), 0);
    assert_string_equal((const char *)sqlite3_column_text(s, 2), n == 0 ? "INSTANCE_STARTED" : "STATUS");
    n++;
  }
  sqlite3_finalize(s);
  assert_int_equal(n, 2);
  assert_int_equal(sqlite3_prepare_v2(rv_store_db(st),
    "SELECT (SELECT branch FROM principals WHERE id=1), (SELECT county FROM principals WHERE id=1),"
    " (SELECT branch FROM principals WHERE id=2), (SELECT branch FROM tasks), (SELECT county FROM tasks)",
    -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(s, 0), "کهریزک 12");
  assert_string_equal((const char *)sqlite3_column_text(s, 1), "تهران");
  assert_int_equal(sqlite3_column_type(s, 2), SQLITE_NULL);
  assert_string_equal((const char *)sqlite3_column_text(s, 3), "کهریزک 12");
  assert_string_equal((const char *)sqlite3_column_text(s, 4), "ری");
  sqlite3_finalize(s);
  assert_int_equal(sqlite3_prepare_v2(rv_store_db(st),
    "SELECT group_concat(id) FROM (SELECT id FROM jobs INDEXED BY jobs_due"
    " WHERE state='pending' ORDER BY next_try)", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(s, 0), "3,2");
  sqlite3_finalize(s);
  /* waiting messages only in the name index; the spouses' indexes gone */
  assert_int_equal(sqlite3_prepare_v2(rv_store_db(st),
    "SELECT group_concat(id) FROM (SELECT id FROM messages INDEXED BY messages_name"
    " WHERE name='m' AND consumed_by IS NULL ORDER BY corr_key, id),"
    " (SELECT count(*) FROM sqlite_schema WHERE name LIKE 'feed_records_%')", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(s, 0), "3,2");
  assert_int_equal(sqlite3_column_int(s, 1), 0);
  sqlite3_finalize(s);
  rv_store_close(st);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*--- Gateway values ----------------------------------------------------------------------------*/

static void test_reads(void **state){
  cJSON *vars = rv_json_parse("{\"amount\":60000,\"applicant\":{\"age\":61},\"kind\":\"x\",\"approved\":true,"
                              "\"long\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
  rv_buf b;
  (void)state;
  rv_buf_init(&b, 0);
  rv_journal_reads("amount > 50000 and applicant.age >= 60 and cal.days(missing) < 3"
                   " and 'amount' ~= kind -- approved", vars, &b);
  assert_string_equal(b.p, " (amount=60000, applicant={\"age\":61}, missing=nil, kind=\"x\")");
  rv_buf_fini(&b);
  rv_buf_init(&b, 0);
  rv_journal_reads("true", vars, &b);
  assert_null(b.p);
  rv_journal_reads("#long > 3", vars, &b);
  assert_non_null(strstr(b.p, "...)"));
  assert_true(strlen(b.p) < 80);
  rv_buf_fini(&b);
  cJSON_Delete(vars);
}

int main(int argc, char **argv){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_input_is_journaled),
    cmocka_unit_test(test_journal_rows_name_their_instance),
    cmocka_unit_test(test_marks_in_batches),
    cmocka_unit_test(test_replay_identical),
    cmocka_unit_test(test_replay_twice_is_byte_identical),
    cmocka_unit_test(test_tampering_is_caught),
    cmocka_unit_test(test_against_changed_condition),
    cmocka_unit_test(test_against_new_task_needs_input),
    cmocka_unit_test(test_impact_report),
    cmocka_unit_test(test_crash_recovery_replays),
    cmocka_unit_test(test_process_tests),
    cmocka_unit_test(test_reads),
    cmocka_unit_test(test_answers_now),
    cmocka_unit_test(test_history_migration),
    cmocka_unit_test(test_rolled_back_deploy),
    cmocka_unit_test(test_sms_retry_policy),
    cmocka_unit_test(test_notify_incident),
    cmocka_unit_test(test_answer_mappings),
  };
  if (argc == 3 && strcmp(argv[1], "--write") == 0) { write_recordings(argv[2]); return 0; }
  return cmocka_run_group_tests(tests, setup_recordings, teardown_recordings);
}
