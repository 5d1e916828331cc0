/*
** tests/unit/test_store.c -- the store's schema: which index each task
** lookup takes (EXPLAIN QUERY PLAN, on the database a fresh engine makes).
**
** Completing a task must only delete index entries (migration 8,
** docs/performance.md "What bounds workload 7"): no full index on tasks
** holds `state`, the open-task lookups go to partial indexes WHERE
** state='open', and for that the queries must write state='open' as a
** literal. The engine's own task list (rv_engine_tasks_json) is traced to
** see the SQL it really runs; the HTTP list's (engine/api/tasks.c with
** policy.c's scope) is written out here in the shape those files build.
** The due-jobs index is partial on pending jobs the same way (migration 11).
**
** And the pipelined WAL sync (store.c, rv_store_defer_sync): which commits
** it counts, that nothing counts as durable before the sync thread synced
** it, and that the engine hands no job to an adapter before the commit
** that created it is durable.
**
** And the self-check at open (RELIABILITY A6): the pragmas it promises, a
** store that cannot be WAL refused, network and FUSE filesystems refused.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <event2/event.h>
#include <sqlite3.h>
#include "runtime/engine.h"
#include "store/store.h"
#include "core/json.h"

typedef struct senv {
  char dir[64], db[128];
  rv_engine *e;
  sqlite3 *db_h;
} senv;

/* A fresh directory with the database's path in it (no engine yet). */
static void senv_dir(senv *t){
  snprintf(t->dir, sizeof t->dir, "/tmp/rvstore-XXXXXX");
  if (mkdtemp(t->dir) == NULL) fail_msg("mkdtemp");
  snprintf(t->db, sizeof t->db, "%s/t.db", t->dir);
  t->e = NULL;
}

static void senv_open(senv *t){
  rv_engine_cfg cfg = {0};
  rv_err err;
  senv_dir(t);
  cfg.db_path = t->db;
  if (rv_engine_open(&cfg, &t->e, &err) != RV_OK) fail_msg("%s", err.msg);
  t->db_h = rv_store_db(rv_engine_store(t->e));
}

static void senv_close(senv *t){
  char p[160];
  rv_engine_close(t->e);          /* NULL: a test that opened the store itself */
  snprintf(p, sizeof p, "%s-wal", t->db); unlink(p);
  snprintf(p, sizeof p, "%s-shm", t->db); unlink(p);
  unlink(t->db);
  rmdir(t->dir);
}

/* The plan's detail lines joined by "; ". */
static void plan(sqlite3 *db, const char *sql, char *out, size_t cap){
  sqlite3_stmt *s;
  char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
  size_t n = 0;
  out[0] = 0;
  if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK) fail_msg("%s: %s", sqlite3_errmsg(db), sql);
  sqlite3_free(q);
  while (sqlite3_step(s) == SQLITE_ROW && n + 2 < cap) {
    int w = snprintf(out + n, cap - n, "%s%s", n ? "; " : "", (const char *)sqlite3_column_text(s, 3));
    if (w < 0) break;
    n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
  }
  sqlite3_finalize(s);
}

/* Whether a plan scans tasks (aliases t, w) rather than searching it. */
static int scans_tasks(const char *p){
  for (const char *c = strstr(p, "SCAN "); c; c = strstr(c + 5, "SCAN ")) {
    size_t n = strcspn(c + 5, " ;");
    if ((n == 1 && (c[5] == 't' || c[5] == 'w')) || (n == 5 && strncmp(c + 5, "tasks", 5) == 0)) return 1;
  }
  return 0;
}

/* The plan of sql has each of the (NULL-ended) strings in want, and no
** full scan of tasks. */
static void expect_plan(sqlite3 *db, const char *sql, ...){
  char p[4096];
  va_list ap;
  const char *w;
  plan(db, sql, p, sizeof p);
  va_start(ap, sql);
  while ((w = va_arg(ap, const char *)) != NULL)
    if (strstr(p, w) == NULL) fail_msg("plan lacks '%s'\n  sql: %s\n  plan: %s", w, sql, p);
  va_end(ap);
  if (scans_tasks(p))
    fail_msg("full scan of tasks\n  sql: %s\n  plan: %s", sql, p);
}

static void schema_has_no_full_index_on_state(void **state){
  senv t;
  sqlite3_stmt *s;
  int partial = 0;
  (void)state;
  senv_open(&t);
  assert_int_equal(sqlite3_prepare_v2(t.db_h,
    "SELECT m.name, m.sql FROM sqlite_schema m, pragma_index_info(m.name) c"
    " WHERE m.type='index' AND m.tbl_name='tasks' AND c.name='state'", -1, &s, NULL), SQLITE_OK);
  while (sqlite3_step(s) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(s, 0), *sql = (const char *)sqlite3_column_text(s, 1);
    /* an index on state is partial on open tasks: a completion only deletes from it */
    if (sql == NULL || strstr(sql, "WHERE state='open'") == NULL)
      fail_msg("index %s holds state for every task: %s", name, sql ? sql : "(auto)");
    partial++;
  }
  sqlite3_finalize(s);
  assert_int_equal(partial, 3);
  senv_close(&t);
}

/*--- rv_engine_tasks_json, traced -----------------------------------------------------*/

static char traced[8192];

static int on_trace(unsigned type, void *ctx, void *p, void *x){
  const char *sql = sqlite3_sql((sqlite3_stmt *)p);
  (void)type; (void)ctx; (void)x;
  if (sql && strstr(sql, "FROM tasks t JOIN instances i"))
    snprintf(traced, sizeof traced, "%s", sql);
  return 0;
}

static void engine_list(senv *t, const char *filter_json, ...){
  cJSON *f = rv_json_parse(filter_json), *out = NULL;
  char p[4096];
  va_list ap;
  const char *w;
  rv_err err;
  traced[0] = 0;
  sqlite3_trace_v2(t->db_h, SQLITE_TRACE_STMT, on_trace, NULL);
  assert_int_equal(rv_engine_tasks_json(t->e, f, &out, &err), RV_OK);
  sqlite3_trace_v2(t->db_h, 0, NULL, NULL);
  cJSON_Delete(out);
  cJSON_Delete(f);
  if (traced[0] == 0) fail_msg("no task list statement seen for %s", filter_json);
  plan(t->db_h, traced, p, sizeof p);
  va_start(ap, filter_json);
  while ((w = va_arg(ap, const char *)) != NULL)
    if (strstr(p, w) == NULL) fail_msg("%s: plan lacks '%s'\n  sql: %s\n  plan: %s", filter_json, w, traced, p);
  va_end(ap);
  if (scans_tasks(p))
    fail_msg("%s: scans tasks\n  sql: %s\n  plan: %s", filter_json, traced, p);
  /* an office's or a user's list comes out of its index in id order: a page
  ** costs its own rows */
  if (strstr(p, "TEMP B-TREE") && (strstr(filter_json, "branch") || strstr(filter_json, "county") ||
                                   strstr(filter_json, "assignee")))
    fail_msg("%s: sorts\n  sql: %s\n  plan: %s", filter_json, traced, p);
}

static void engine_task_list_uses_partial_indexes(void **state){
  senv t;
  (void)state;
  senv_open(&t);
  /* an office's open tasks, by default or asked for: partial index, id order */
  engine_list(&t, "{\"branch\":\"0101\"}", "tasks_open_branch (state=? AND branch=?)", NULL);
  engine_list(&t, "{\"branch\":\"0101\",\"state\":\"open\"}", "tasks_open_branch (state=? AND branch=?)", NULL);
  engine_list(&t, "{\"branch\":\"0101\",\"group\":\"clerk\",\"limit\":50,\"offset\":100}",
              "tasks_open_branch (state=? AND branch=?)", NULL);
  engine_list(&t, "{\"county\":\"01\"}", "tasks_open_county (state=? AND county=?)", NULL);
  engine_list(&t, "{\"assignee\":\"u1\"}", "tasks_open_assignee (state=? AND assignee=?)", NULL);
  engine_list(&t, "{}", "tasks_open_branch (state=?)", NULL);
  /* closed or all tasks: the full indexes, which do not hold state */
  engine_list(&t, "{\"branch\":\"0101\",\"state\":\"completed\"}", "tasks_branch (branch=?)", NULL);
  engine_list(&t, "{\"county\":\"01\",\"state\":\"canceled\"}", "tasks_county (county=?)", NULL);
  engine_list(&t, "{\"assignee\":\"u1\",\"all\":true}", "tasks_assignee (assignee=?)", NULL);
  engine_list(&t, "{\"instance\":7}", "tasks_inst (instance_id=?)", NULL);
  senv_close(&t);
}

/*--- the HTTP list and the other task queries ---------------------------------------------*/

#define COLS "SELECT t.id, t.state, i.business_key FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE 1"
#define GM "instr(','||replace(coalesce(t.candidate_groups,''),' ','')||',', ','||?||',')>0"
/* GET /v1/tasks for branch staff: by office and group UNION ALL assigned by name */
#define STAFF(state, office) \
  COLS state " AND ((" GM ") AND " office ")" " UNION ALL " \
  COLS state " AND t.assignee=? AND NOT ((" GM ") AND " office ") ORDER BY 1 LIMIT ? OFFSET ?"

static void other_task_queries_keep_their_indexes(void **state){
  senv t;
  (void)state;
  senv_open(&t);
  expect_plan(t.db_h, STAFF(" AND t.state='open'", "t.branch=?"),
              "tasks_open_branch (state=? AND branch=?)", "tasks_open_assignee (state=? AND assignee=?)", NULL);
  expect_plan(t.db_h, STAFF(" AND t.state='open'", "t.county=?"),
              "tasks_open_county (state=? AND county=?)", "tasks_open_assignee (state=? AND assignee=?)", NULL);
  expect_plan(t.db_h, STAFF(" AND t.state=?", "t.branch=?"),
              "tasks_branch (branch=?)", "tasks_assignee (assignee=?)", NULL);
  expect_plan(t.db_h, STAFF("", "t.county=?"), "tasks_county (county=?)", "tasks_assignee (assignee=?)", NULL);
  expect_plan(t.db_h, COLS " AND t.state='open' ORDER BY t.id LIMIT ? OFFSET ?", "tasks_open_branch (state=?)", NULL);
  /* metrics */
  expect_plan(t.db_h, "SELECT count(*) FROM tasks WHERE state='open' AND due>0 AND due<?",
              "tasks_open_branch (state=?)", NULL);
  /* by instance (flow.c, journal/replay.c, waiting counts): tasks_inst, not an open index */
  expect_plan(t.db_h, "UPDATE tasks SET status_text=? WHERE instance_id=? AND state='open'",
              "tasks_inst (instance_id=?)", NULL);
  expect_plan(t.db_h, "SELECT id FROM tasks WHERE instance_id=?1 AND element_id=?2 AND state='open'"
              " ORDER BY ei=?3 DESC, id LIMIT 1", "tasks_inst (instance_id=?)", NULL);
  expect_plan(t.db_h, "SELECT 1 FROM instances i CROSS JOIN tasks w ON w.instance_id=i.id"
              " WHERE i.status='active' AND i.process_id=?1 AND i.definition_id=?2 AND w.state='open'",
              "tasks_inst (instance_id=?)", NULL);
  senv_close(&t);
}

/*--- jobs: the due index holds pending jobs only (migration 11) ----------------------------*/

/* A job answered inside its command is written done and must not enter
** jobs_due; the readers of due jobs (runtime/engine.c dispatch and next
** due, api/metrics.c) take the partial index in next_try order. */
/* The first value of a query on the schema contains want (a bracketed
** list: is exactly it). */
static void expect_schema(sqlite3 *db, const char *sql, const char *want){
  sqlite3_stmt *s;
  const char *got;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  got = (const char *)sqlite3_column_text(s, 0);
  if (got == NULL || strstr(got, want) == NULL) fail_msg("%s\n  got: %s\n  want: %s", sql, got ? got : "NULL", want);
  sqlite3_finalize(s);
}

static void due_jobs_use_the_pending_index(void **state){
  senv t;
  char p[4096];
  (void)state;
  senv_open(&t);
  expect_schema(t.db_h, "SELECT sql FROM sqlite_schema WHERE name='jobs_due'", "WHERE state='pending'");
  expect_plan(t.db_h, "SELECT id, instance_id, element_id, adapter, input, key, attempts FROM jobs"
              " WHERE state='pending' AND next_try<=? ORDER BY next_try, id LIMIT 256",
              "jobs_due (next_try<?)", NULL);
  plan(t.db_h, "SELECT id FROM jobs WHERE state='pending' AND next_try<=? ORDER BY next_try, id LIMIT 256",
       p, sizeof p);
  if (strstr(p, "TEMP B-TREE")) fail_msg("dispatch sorts: %s", p);
  expect_plan(t.db_h, "SELECT min(x) FROM (SELECT min(due) AS x FROM timers UNION ALL"
              " SELECT min(next_try) FROM jobs WHERE state='pending')", "jobs_due", NULL);
  expect_plan(t.db_h, "SELECT count(*) FROM jobs WHERE state='pending' AND attempts>0", "jobs_due", NULL);
  senv_close(&t);
}

/* Waiting messages are found by name through the partial index
** (migration 12), which consumed messages never enter; the feed records
** keep only the indexes something reads. */
static void feed_and_message_indexes(void **state){
  senv t;
  (void)state;
  senv_open(&t);
  expect_schema(t.db_h, "SELECT sql FROM sqlite_schema WHERE name='messages_name'", "WHERE consumed_by IS NULL");
  expect_plan(t.db_h, "SELECT id FROM messages WHERE name=? AND consumed_by IS NULL AND expires>?"
              " AND (?3 IS NULL OR corr_key=?3) ORDER BY id LIMIT 1", "messages_name", NULL);
  expect_plan(t.db_h, "SELECT import_id, line, husband_id, wife_id, marriage_date, marriage_type"
              " FROM feed_records WHERE registry_office=? AND certificate_no=?",
              "sqlite_autoindex_feed_records_1", NULL);
  expect_plan(t.db_h, "SELECT count(*) FROM feed_records WHERE import_id=?", "feed_records_import", NULL);
  expect_schema(t.db_h, "SELECT '[' || group_concat(name) || ']' FROM (SELECT name FROM sqlite_schema"
                " WHERE type='index' AND tbl_name='feed_records' ORDER BY name)",
                "[feed_records_import,sqlite_autoindex_feed_records_1]");   /* and no other */
  senv_close(&t);
}

/* The value of a PRAGMA that answers one integer. */
static int pragma_int(sqlite3 *db, const char *sql){
  sqlite3_stmt *s;
  int n = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
  if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return n;
}

static int db_page_size(sqlite3 *db){ return pragma_int(db, "PRAGMA page_size"); }

/* A new database has RV_STORE_PAGE_SIZE pages; one made with SQLite's
** 4 KiB pages keeps them, opens, migrates and takes writes. */
static void page_size_of_new_and_old_databases(void **state){
  senv t;
  sqlite3 *h;
  rv_store *st;
  rv_err err;
  (void)state;
  senv_open(&t);
  assert_int_equal(db_page_size(t.db_h), RV_STORE_PAGE_SIZE);
  assert_int_equal(RV_STORE_PAGE_SIZE, 8192);
  senv_close(&t);

  senv_dir(&t);
  assert_int_equal(sqlite3_open(t.db, &h), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h, "PRAGMA page_size=4096; CREATE TABLE before_ravand(x);"
                                   " INSERT INTO before_ravand VALUES(1)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  if (rv_store_open(t.db, NULL, &st, &err) != RV_OK) fail_msg("%s", err.msg);
  assert_int_equal(db_page_size(rv_store_db(st)), 4096);
  assert_int_equal(rv_store_exec(st, &err, "INSERT INTO before_ravand VALUES(2)", NULL), RV_OK);
  rv_store_close(st);
  if (rv_store_open(t.db, NULL, &st, &err) != RV_OK) fail_msg("%s", err.msg);   /* again: migrated, same pages */
  assert_int_equal(db_page_size(rv_store_db(st)), 4096);
  rv_store_close(st);
  senv_close(&t);                 /* no engine (senv_dir): removes the files */
}

/* Wait (at most 10 s) until the sync thread's eventfd is readable. */
static void wait_sync_note(rv_store *st){
  struct pollfd p = { rv_store_sync_fd(st), POLLIN, 0 };
  uint64_t n;
  assert_true(p.fd >= 0);
  assert_int_equal(poll(&p, 1, 10000), 1);
  assert_int_equal(read(p.fd, &n, sizeof n), (ssize_t)sizeof n);
}

static int sync_pragma(rv_store *st){ return pragma_int(rv_store_db(st), "PRAGMA synchronous"); }

static void pipelined_sync_counts_and_syncs(void **state){
  senv t;
  rv_store *st;
  rv_err err;
  uint64_t s0, s1;
  (void)state;
  senv_dir(&t);
  if (rv_store_open(t.db, NULL, &st, &err) != RV_OK) fail_msg("%s", err.msg);
  assert_int_equal(sync_pragma(st), 2);                       /* FULL until deferred */
  assert_false(rv_store_sync_deferred(st));
  assert_int_equal(rv_store_sync_fd(st), -1);
  assert_int_equal(rv_store_exec(st, &err, "CREATE TABLE t(x)", NULL), RV_OK);

  /* commits are counted when they wrote, not otherwise */
  s0 = rv_store_commit_seq(st);
  assert_int_equal(rv_store_begin(st, &err), RV_OK);
  assert_int_equal(rv_store_commit(st, &err), RV_OK);
  assert_true(rv_store_commit_seq(st) == s0);
  assert_int_equal(rv_store_begin(st, &err), RV_OK);
  assert_int_equal(rv_store_exec(st, &err, "INSERT INTO t VALUES(1)", NULL), RV_OK);
  assert_int_equal(rv_store_commit(st, &err), RV_OK);
  assert_true(rv_store_commit_seq(st) == s0 + 1);
  assert_true(rv_store_synced(st) == rv_store_commit_seq(st));   /* FULL: durable at COMMIT */

  assert_int_equal(rv_store_defer_sync(st, &err), RV_OK);
  assert_true(rv_store_sync_deferred(st));
  assert_int_equal(sync_pragma(st), 1);                       /* NORMAL: COMMIT does not sync */
  assert_true(rv_store_synced(st) == s0 + 1);                 /* what came before is durable */

  /* a commit is not durable until the thread synced it, and only when asked */
  assert_int_equal(rv_store_exec(st, &err, "INSERT INTO t VALUES(2)", NULL), RV_OK);
  assert_int_equal(rv_store_exec(st, &err, "INSERT INTO t VALUES(3)", NULL), RV_OK);
  s1 = rv_store_commit_seq(st);
  assert_true(s1 == s0 + 3);
  assert_true(rv_store_synced(st) < s1);
  assert_true(rv_store_sync_count(st) == 0);
  rv_store_sync_async(st);
  wait_sync_note(st);
  assert_true(rv_store_synced(st) == s1);                     /* one sync: both commits */
  assert_true(rv_store_sync_count(st) == 1);
  rv_store_sync_async(st);                                    /* nothing owed: no sync */
  assert_true(rv_store_sync_count(st) == 1);

  /* sync_now, on the caller's thread */
  assert_int_equal(rv_store_exec(st, &err, "INSERT INTO t VALUES(4)", NULL), RV_OK);
  assert_true(rv_store_synced(st) < rv_store_commit_seq(st));
  rv_store_sync_now(st);
  assert_true(rv_store_synced(st) == rv_store_commit_seq(st));
  rv_store_close(st);                                         /* joins the thread */

  if (rv_store_open(t.db, NULL, &st, &err) != RV_OK) fail_msg("%s", err.msg);
  {
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(rv_store_db(st), "SELECT group_concat(x) FROM t", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "1,2,3,4");
    sqlite3_finalize(q);
  }
  rv_store_close(st);
  senv_close(&t);
}

/* An engine on t's database with two processes -- echo-once: start ->
** service task (the test adapter echo, answering through the loop) -> end;
** quiet: start -> end -- deployed, jobs dispatched through the loop, and
** the pipelined sync on (slowed by delay_ms, the store's test hook). */
static rv_store *echo_engine(senv *t, char *bpmn, size_t n, const char *delay_ms){
  rv_engine_cfg cfg = {0};
  rv_err err;
  FILE *f;
  senv_dir(t);
  snprintf(bpmn, n, "%s/echo.bpmn", t->dir);
  f = fopen(bpmn, "w");
  assert_non_null(f);
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\" xmlns:rv=\"urn:ravand:bpmn:1\""
        " id=\"d\" targetNamespace=\"urn:t\">\n"
        " <process id=\"echo-once\" isExecutable=\"true\">\n"
        "  <startEvent id=\"s\"/><sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"call\"/>\n"
        "  <serviceTask id=\"call\" rv:adapter=\"echo\"/><sequenceFlow id=\"f2\" sourceRef=\"call\" targetRef=\"e\"/>\n"
        "  <endEvent id=\"e\"/>\n"
        " </process>\n"
        " <process id=\"quiet\" isExecutable=\"true\">\n"
        "  <startEvent id=\"qs\"/><sequenceFlow id=\"qf\" sourceRef=\"qs\" targetRef=\"qe\"/><endEvent id=\"qe\"/>\n"
        " </process>\n</definitions>\n", f);
  fclose(f);
  cfg.db_path = t->db;
  cfg.answer_now = false;                  /* the job goes out through dispatch */
  if (rv_engine_open(&cfg, &t->e, &err) != RV_OK) fail_msg("%s", err.msg);
  {
    const char *files[] = { bpmn };
    if (rv_engine_deploy(t->e, files, 1, NULL, NULL, &err) != RV_OK) fail_msg("%s", err.msg);
  }
  if (delay_ms) setenv("RV_TEST_SYNC_DELAY_MS", delay_ms, 1);
  assert_int_equal(rv_engine_defer_sync(t->e, &err), RV_OK);
  unsetenv("RV_TEST_SYNC_DELAY_MS");
  return rv_engine_store(t->e);
}

static bool completed(rv_store *st, int64_t inst){
  sqlite3_stmt *q = rv_store_stmt(st, "SELECT status FROM instances WHERE id=?");
  bool done;
  rv_store_bind(q, "i", inst);
  done = sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "completed") == 0;
  sqlite3_reset(q);
  return done;
}

/* echo-once's job must not reach the adapter before the start's commit is
** durable. */
static void jobs_wait_for_the_sync(void **state){
  senv t;
  rv_err err;
  rv_store *st;
  char bpmn[160];
  int64_t inst = 0;
  uint64_t seq;
  bool done = false;
  (void)state;
  st = echo_engine(&t, bpmn, sizeof bpmn, NULL);
  if (rv_engine_start(t.e, "echo-once", 0, NULL, NULL, &inst, &err) != RV_OK) fail_msg("%s", err.msg);
  seq = rv_store_commit_seq(st);
  assert_true(rv_store_synced(st) < seq);
  assert_int_equal(rv_engine_dispatch_jobs(t.e), 0);          /* held back */
  assert_true(rv_engine_stats_get(t.e)->jobs_dispatched == 0);
  /* the loop: the sync note, then the held job, then its answer */
  for (int i = 0; i < 1000 && !done; i++) {
    event_base_loop(rv_engine_base(t.e), EVLOOP_ONCE);
    done = completed(st, inst);
  }
  assert_true(done);
  assert_true(rv_engine_stats_get(t.e)->jobs_dispatched == 1);
  assert_true(rv_store_synced(st) >= seq);
  assert_true(rv_store_sync_count(st) >= 1);
  t.db_h = NULL;
  unlink(bpmn);
  senv_close(&t);
}

/* The same job while the store never stops committing: a new commit comes
** before every sync note, so there is never a moment when *every* commit
** is durable. The job goes out once the commit it was read at is durable
** (it starved before: power_loss.py saw no SMS leave under steady load). */
static void jobs_go_out_under_steady_commits(void **state){
  senv t;
  rv_err err;
  rv_store *st;
  char bpmn[160];
  int64_t inst = 0;
  bool done = false;
  int rounds = 0;
  (void)state;
  st = echo_engine(&t, bpmn, sizeof bpmn, "5");   /* a slow disk: commits come during the sync */
  if (rv_engine_start(t.e, "echo-once", 0, NULL, NULL, &inst, &err) != RV_OK) fail_msg("%s", err.msg);
  assert_int_equal(rv_engine_dispatch_jobs(t.e), 0);          /* held back */
  for (; rounds < 200 && !done; rounds++) {
    int64_t other = 0;
    if (rv_engine_start(t.e, "quiet", 0, NULL, NULL, &other, &err) != RV_OK) fail_msg("%s", err.msg);
    assert_true(rv_store_synced(st) < rv_store_commit_seq(st));   /* never all durable */
    event_base_loop(rv_engine_base(t.e), EVLOOP_ONCE);
    done = completed(st, inst);
  }
  assert_true(done);
  assert_true(rounds < 20);
  assert_true(rv_engine_stats_get(t.e)->jobs_dispatched == 1);
  t.db_h = NULL;
  unlink(bpmn);
  senv_close(&t);
}

/*--- the self-check at open (RELIABILITY A6) ------------------------------*/

/* What the store promises of every connection it opens. */
static void pragmas_as_promised(void **state){
  senv t;
  rv_store *st;
  rv_err err;
  char mode[16] = "";
  sqlite3_stmt *s;
  (void)state;
  senv_dir(&t);
  assert_int_equal(rv_store_open(t.db, NULL, &st, &err), RV_OK);
  assert_int_equal(sqlite3_prepare_v2(rv_store_db(st), "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  assert_string_equal(mode, "wal");
  assert_int_equal(pragma_int(rv_store_db(st), "PRAGMA synchronous"), 2);
  assert_int_equal(pragma_int(rv_store_db(st), "PRAGMA foreign_keys"), 1);
  assert_int_equal(pragma_int(rv_store_db(st), "PRAGMA trusted_schema"), 0);
  assert_true(pragma_int(rv_store_db(st), "PRAGMA busy_timeout") >= 5000);
  rv_store_close(st);
  senv_close(&t);
}

/* Files without shared memory (io methods of version 1: no xShmMap, as on
** a filesystem that cannot map the -shm) cannot hold a WAL: SQLite quietly
** keeps a rollback journal, and the store refuses. */
static sqlite3_vfs *nowal_base;
static sqlite3_io_methods nowal_methods;
static int nowal_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out){
  int rc = nowal_base->xOpen(v, name, f, flags, out);
  if (rc == SQLITE_OK && f->pMethods != NULL) {
    nowal_methods = *f->pMethods;
    nowal_methods.iVersion = 1;
    f->pMethods = &nowal_methods;
  }
  return rc;
}

/* In a child process: SQLite's unix VFS keeps what it knows of a file's
** locks per inode, process-wide, and the shim's connection leaves some
** behind; the parent stays clean. Exit 0: refused as expected. */
static int nowal_child(const char *db){
  static sqlite3_vfs nowal;
  rv_store *st = NULL;
  rv_err err;
  rv_status rc;
  sqlite3_initialize();
  nowal_base = sqlite3_vfs_find(NULL);
  nowal = *nowal_base;
  nowal.zName = "rv-test-nowal";
  nowal.pNext = NULL;
  nowal.xOpen = nowal_open;
  if (sqlite3_vfs_register(&nowal, 1) != SQLITE_OK) return 2;
  rc = rv_store_open(db, NULL, &st, &err);
  if (rc != RV_IO || st != NULL || strstr(err.msg, "cannot use WAL mode") == NULL) {
    fprintf(stderr, "no-WAL store: %s (%s)\n", rv_status_name(rc), err.msg);
    return 1;
  }
  return 0;
}

static void refuses_a_store_without_wal(void **state){
  senv t;
  pid_t pid;
  int status = -1;
  (void)state;
  senv_dir(&t);
  fflush(NULL);
  pid = fork();
  if (pid == 0) _exit(nowal_child(t.db));
  assert_true(pid > 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  senv_close(&t);
}

/* Network and FUSE filesystems are refused, by statfs's f_type (faked
** here with RV_TEST_FS_MAGIC), unless the operator says RAVAND_ALLOW_FS=1;
** the disk the test runs on is local and opens. */
static void refuses_network_filesystems(void **state){
  static const struct { const char *magic, *name; } bad[] = {
    { "6969", "NFS" }, { "FF534D42", "CIFS" }, { "FE534D42", "SMB2" }, { "517B", "SMB" },
    { "65735546", "FUSE" }, { "01021997", "9P" },
  };
  senv t;
  rv_store *st = NULL;
  rv_err err;
  (void)state;
  assert_null(rv_store_fs_refused(0xEF53));       /* ext2/3/4 */
  assert_null(rv_store_fs_refused(0x58465342));   /* XFS */
  assert_null(rv_store_fs_refused(0x01021994));   /* tmpfs */
  senv_dir(&t);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[64];
    setenv("RV_TEST_FS_MAGIC", bad[i].magic, 1);
    assert_int_equal(rv_store_open(t.db, NULL, &st, &err), RV_INVALID);
    assert_null(st);
    snprintf(want, sizeof want, "on a %s filesystem", bad[i].name);
    if (strstr(err.msg, want) == NULL || strstr(err.msg, "RAVAND_ALLOW_FS=1") == NULL)
      fail_msg("%s: %s", bad[i].name, err.msg);
    assert_int_equal(access(t.db, F_OK), -1);      /* refused before anything was made */
  }
  setenv("RAVAND_ALLOW_FS", "1", 1);
  assert_int_equal(rv_store_open(t.db, NULL, &st, &err), RV_OK);
  rv_store_close(st);
  unsetenv("RAVAND_ALLOW_FS");
  unsetenv("RV_TEST_FS_MAGIC");
  assert_int_equal(rv_store_open(t.db, NULL, &st, &err), RV_OK);   /* the real disk */
  rv_store_close(st);
  senv_close(&t);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(schema_has_no_full_index_on_state),
    cmocka_unit_test(engine_task_list_uses_partial_indexes),
    cmocka_unit_test(other_task_queries_keep_their_indexes),
    cmocka_unit_test(due_jobs_use_the_pending_index),
    cmocka_unit_test(feed_and_message_indexes),
    cmocka_unit_test(page_size_of_new_and_old_databases),
    cmocka_unit_test(pipelined_sync_counts_and_syncs),
    cmocka_unit_test(jobs_wait_for_the_sync),
    cmocka_unit_test(jobs_go_out_under_steady_commits),
    cmocka_unit_test(pragmas_as_promised),
    cmocka_unit_test(refuses_a_store_without_wal),
    cmocka_unit_test(refuses_network_filesystems),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
