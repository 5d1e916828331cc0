/*
** bench/bench_limit.c -- the storage limit of a workload: the rows ravand
** writes for its instances, written straight into SQLite with prepared
** statements, the same schema (rv_store_open: same tables and indexes),
** the same pragmas (WAL, synchronous=FULL) and the same transactions
** (BATCH commands per commit). ravand's throughput as a fraction of this
** is the engine's own overhead.
**
**   bench_limit straight|human|timer|fanout N BATCH DB [--relaxed]
**
** "The same rows" is taken from ravand itself: the program first runs one
** instance of the workload through the engine (a scratch database next to
** DB) and copies what that left, command by command -- the instance row,
** its history rows (split by command with journal.mark), its journal rows,
** and its jobs/tasks/timers rows -- so the limit follows the engine when
** the engine writes more or fewer rows. Per command it then writes:
**
**   straight  start:    INSERT instance, history, journal, job (none when the
**                       engine answered it inside the command: it leaves no row)
**             answer:   UPDATE job, INSERT history, journal, UPDATE instance
**   human     start:    INSERT instance, history, journal, task
**             complete: UPDATE task, INSERT history, journal, UPDATE instance
**   timer     start:    INSERT instance, history, journal, timer
**             fire:     DELETE timer, INSERT history, journal, UPDATE instance
**                       (1,000 per transaction, as the scheduler fires them)
**   fanout    start:    INSERT instance, history, journal
**
** The instance row is inserted with its state (ravand inserts it, then
** updates it at the end of the command), and nothing is read back: no
** savepoints, no loads -- what any engine keeping these rows must do.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include "runtime/engine.h"
#include "store/store.h"
#include "core/mem.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif
#define WL RV_SOURCE_ROOT "/bench/workloads"
#define MAXCMD 4
#define MAXH 256

static double now_s(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg){
  fprintf(stderr, "bench_limit: %s: %s\n", what, msg ? msg : "");
  exit(1);
}

static void rm_db(const char *p){
  char b[1100];
  unlink(p);
  snprintf(b, sizeof b, "%s-wal", p); unlink(b);
  snprintf(b, sizeof b, "%s-shm", p); unlink(b);
}

static char *col_dup(sqlite3_stmt *s, int i){
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? rv_strdup((const char *)t) : NULL;
}

/*--- The template: one instance's rows, by command ---------------------------*/

typedef struct hrow { int64_t at, ei; bool ei_null; char *event, *element, *detail; } hrow;
typedef struct jrow { int64_t at, mark; char *command, *payload; } jrow;

static struct tmpl {
  /* instance row after the first command and at the end */
  int64_t def_id, started, ended;
  char *process_id, *status0, *state0, *text0, *status1, *state1, *text1;
  int ncmd;
  bool inline_answer;    /* the job was answered inside the start command (cfg.answer_now) */
  bool has_job;          /* the engine left a job row (not for a job answered inside its command) */
  hrow h[MAXCMD][MAXH]; int nh[MAXCMD];
  jrow j[MAXCMD];
  /* side rows after the first command */
  int64_t job_ei, job_retries, job_backoff, job_next, job_created;
  char *job_elem, *job_adapter, *job_input, *job_state1; int job_attempts1;
  int64_t task_ei, task_created, task_completed;
  char *task_elem, *task_name, *task_proc, *task_groups, *task_branch, *task_county,
       *task_text, *task_form, *task_by;
  int64_t tm_ei, tm_def, tm_due, tm_armed;
  char *tm_elem;
} T;

static void snap_instance(sqlite3 *db, int64_t id, int which){
  sqlite3_stmt *s;
  sqlite3_prepare_v2(db, "SELECT definition_id, process_id, status, state, status_text, started,"
                         " coalesce(ended,0) FROM instances WHERE id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) != SQLITE_ROW) die("template", "no instance");
  T.def_id = sqlite3_column_int64(s, 0);
  if (!T.process_id) T.process_id = col_dup(s, 1);
  if (which == 0) { T.status0 = col_dup(s, 2); T.state0 = col_dup(s, 3); T.text0 = col_dup(s, 4); }
  else { T.status1 = col_dup(s, 2); T.state1 = col_dup(s, 3); T.text1 = col_dup(s, 4); }
  T.started = sqlite3_column_int64(s, 5);
  T.ended = sqlite3_column_int64(s, 6);
  sqlite3_finalize(s);
}

static void snap_side(sqlite3 *db, int64_t id){
  sqlite3_stmt *s;
  sqlite3_prepare_v2(db, "SELECT ei, element_id, adapter, input, retries, backoff_ms, next_try,"
                         " created FROM jobs WHERE instance_id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    T.has_job = true;
    T.job_ei = sqlite3_column_int64(s, 0); T.job_elem = col_dup(s, 1);
    T.job_adapter = col_dup(s, 2); T.job_input = col_dup(s, 3);
    T.job_retries = sqlite3_column_int64(s, 4); T.job_backoff = sqlite3_column_int64(s, 5);
    T.job_next = sqlite3_column_int64(s, 6); T.job_created = sqlite3_column_int64(s, 7);
  }
  sqlite3_finalize(s);
  sqlite3_prepare_v2(db, "SELECT ei, element_id, name, process_id, candidate_groups, branch, county,"
                         " status_text, form, created FROM tasks WHERE instance_id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    T.task_ei = sqlite3_column_int64(s, 0); T.task_elem = col_dup(s, 1);
    T.task_name = col_dup(s, 2); T.task_proc = col_dup(s, 3); T.task_groups = col_dup(s, 4);
    T.task_branch = col_dup(s, 5); T.task_county = col_dup(s, 6); T.task_text = col_dup(s, 7);
    T.task_form = col_dup(s, 8); T.task_created = sqlite3_column_int64(s, 9);
  }
  sqlite3_finalize(s);
  sqlite3_prepare_v2(db, "SELECT ei, element_id, definition_id, due, armed FROM timers"
                         " WHERE instance_id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    T.tm_ei = sqlite3_column_int64(s, 0); T.tm_elem = col_dup(s, 1);
    T.tm_def = sqlite3_column_int64(s, 2); T.tm_due = sqlite3_column_int64(s, 3);
    T.tm_armed = sqlite3_column_int64(s, 4);
  }
  sqlite3_finalize(s);
}

static void snap_final(sqlite3 *db, int64_t id){
  sqlite3_stmt *s;
  int64_t marks[MAXCMD + 1];
  snap_instance(db, id, 1);
  sqlite3_prepare_v2(db, "SELECT at, command, payload, mark FROM journal WHERE instance_id=?"
                         " ORDER BY seq", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW && T.ncmd < MAXCMD) {
    jrow *j = &T.j[T.ncmd];
    j->at = sqlite3_column_int64(s, 0); j->command = col_dup(s, 1);
    j->payload = col_dup(s, 2); j->mark = sqlite3_column_int64(s, 3);
    marks[T.ncmd++] = j->mark;
  }
  sqlite3_finalize(s);
  marks[T.ncmd] = INT64_MAX;
  sqlite3_prepare_v2(db, "SELECT id, at, event, element_id, ei, detail FROM history_log"
                         " WHERE instance_id=? ORDER BY id", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  while (sqlite3_step(s) == SQLITE_ROW) {
    int64_t hid = sqlite3_column_int64(s, 0);
    int k = 0;
    while (k + 1 < T.ncmd && hid > marks[k + 1]) k++;
    if (T.nh[k] < MAXH) {
      hrow *h = &T.h[k][T.nh[k]++];
      h->at = sqlite3_column_int64(s, 1); h->event = col_dup(s, 2);
      h->element = col_dup(s, 3); h->ei = sqlite3_column_int64(s, 4); h->detail = col_dup(s, 5);
      h->ei_null = sqlite3_column_type(s, 4) == SQLITE_NULL;   /* a batch row (engine.c hist_pack) */
    }
  }
  sqlite3_finalize(s);
  sqlite3_prepare_v2(db, "SELECT state, attempts FROM jobs WHERE instance_id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) == SQLITE_ROW) { T.job_state1 = col_dup(s, 0); T.job_attempts1 = sqlite3_column_int(s, 1); }
  sqlite3_finalize(s);
  sqlite3_prepare_v2(db, "SELECT completed_by, completed FROM tasks WHERE instance_id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) == SQLITE_ROW) { T.task_by = col_dup(s, 0); T.task_completed = sqlite3_column_int64(s, 1); }
  sqlite3_finalize(s);
}

static bool loop_answers;   /* --loop-answers: as bench_ravand --loop-answers */

/* Run one instance of the workload through the engine and keep its rows. */
static void capture(const char *wl, const char *scratch){
  rv_engine_cfg cfg = {0};
  rv_clock vclock;
  rv_engine *e;
  rv_err err;
  char path[600];
  const char *files[] = { path };
  const char *proc;
  cJSON *vars = cJSON_CreateObject();
  sqlite3 *db;
  int64_t id;

  rm_db(scratch);
  rv_clock_init_virtual(&vclock, INT64_C(1760000000000));
  cfg.db_path = scratch;
  cfg.clock = &vclock;
  cfg.relaxed_sync = true;
  cfg.answer_now = !loop_answers;     /* as bench_ravand runs the engine */
  snprintf(path, sizeof path, "%s/%s.bpmn", WL, wl);
  proc = strcmp(wl, "straight") == 0 ? "bench-straight" : strcmp(wl, "human") == 0 ? "bench-human"
       : strcmp(wl, "timer") == 0 ? "bench-timer" : "bench-fanout";
  if (rv_engine_open(&cfg, &e, &err) != RV_OK) die("template", err.msg);
  if (rv_engine_deploy(e, files, 1, WL "/scripts", NULL, &err) != RV_OK) die("template", err.msg);
  db = rv_store_db(rv_engine_store(e));
  cJSON_AddNumberToObject(vars, "wage", 120000000);
  cJSON_AddStringToObject(vars, "branch", "1203");
  /* as bench_ravand: a batch of starts, then the rest */
  rv_engine_batch_begin(e, &err);
  if (rv_engine_start(e, proc, 0, vars, NULL, &id, &err) != RV_OK) die("template", err.msg);
  rv_engine_batch_end(e, &err);
  snap_instance(db, id, 0);
  snap_side(db, id);
  if (strcmp(wl, "straight") == 0) rv_engine_drain(e);
  else if (strcmp(wl, "human") == 0) {
    sqlite3_stmt *s;
    int64_t task = 0;
    sqlite3_prepare_v2(db, "SELECT id FROM tasks WHERE instance_id=?", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW) task = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (rv_engine_complete_task(e, task, NULL, "bench", &err) != RV_OK) die("template", err.msg);
  } else if (strcmp(wl, "timer") == 0) {
    rv_clock_advance(&vclock, 2000);
    rv_engine_fire_due(e);
  }
  snap_final(db, id);
  /* answered inside the command: the instance was written once, done */
  T.inline_answer = strcmp(wl, "straight") == 0 && T.ncmd == 2 && T.status0 && strcmp(T.status0, "completed") == 0;
  cJSON_Delete(vars);
  rv_engine_close(e);
  rm_db(scratch);
}

/*--- Writing -------------------------------------------------------------------*/

static sqlite3 *W;
static sqlite3_stmt *st_inst, *st_hist, *st_jour, *st_job, *st_job_up, *st_task, *st_task_up,
                    *st_timer, *st_timer_del, *st_inst_up;

static sqlite3_stmt *prep(const char *sql){
  sqlite3_stmt *s;
  if (sqlite3_prepare_v3(W, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(W));
  return s;
}

static void run(sqlite3_stmt *s){
  if (sqlite3_step(s) != SQLITE_DONE) die("write", sqlite3_errmsg(W));
  sqlite3_reset(s);
}

static void txt(sqlite3_stmt *s, int i, const char *t){
  if (t) sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC); else sqlite3_bind_null(s, i);
}

static void exec(const char *sql){
  if (sqlite3_exec(W, sql, NULL, NULL, NULL) != SQLITE_OK) die(sql, sqlite3_errmsg(W));
}

static sqlite3_stmt *st_histn[MAXCMD];

static void history_and_journal(int64_t id, int k){
  int64_t mark = sqlite3_last_insert_rowid(W);   /* stands for max(history.id) */
  if (T.nh[k] > 0) {
    sqlite3_stmt *s = st_histn[k];
    if (s == NULL) {
      char sql[8192];
      int n = snprintf(sql, sizeof sql, "INSERT INTO history_log(instance_id, at, event, element_id, ei, detail) VALUES");
      for (int i = 0; i < T.nh[k]; i++) n += snprintf(sql + n, sizeof sql - (size_t)n, "%s(?,?,?,?,?,?)", i ? "," : "");
      s = st_histn[k] = prep(sql);
    }
    for (int i = 0; i < T.nh[k]; i++) {
      const hrow *h = &T.h[k][i];
      sqlite3_bind_int64(s, 6 * i + 1, id);
      sqlite3_bind_int64(s, 6 * i + 2, h->at);
      txt(s, 6 * i + 3, h->event);
      txt(s, 6 * i + 4, h->element);
      if (h->ei_null) sqlite3_bind_null(s, 6 * i + 5); else sqlite3_bind_int64(s, 6 * i + 5, h->ei);
      txt(s, 6 * i + 6, h->detail);
    }
    run(s);
  }
  sqlite3_bind_int64(st_jour, 1, id);
  sqlite3_bind_int64(st_jour, 2, T.j[k].at);
  txt(st_jour, 3, T.j[k].command);
  txt(st_jour, 4, T.j[k].payload);
  sqlite3_bind_int64(st_jour, 5, mark);
  run(st_jour);
}

/* The first command of an instance: returns its id. */
static int64_t cmd_start(const char *wl, int64_t *side_id){
  int64_t id;
  bool one = T.ncmd == 1 || T.inline_answer;   /* the final state, inserted once */
  sqlite3_bind_int64(st_inst, 1, T.def_id);
  txt(st_inst, 2, T.process_id);
  txt(st_inst, 3, one ? T.status1 : T.status0);
  txt(st_inst, 4, one ? T.state1 : T.state0);
  txt(st_inst, 5, one ? T.text1 : T.text0);
  sqlite3_bind_int64(st_inst, 6, T.started);
  if (one) sqlite3_bind_int64(st_inst, 7, T.ended); else sqlite3_bind_null(st_inst, 7);
  run(st_inst);
  id = sqlite3_last_insert_rowid(W);
  history_and_journal(id, 0);
  *side_id = 0;
  if (strcmp(wl, "straight") == 0 && !T.has_job) {
    if (T.inline_answer) history_and_journal(id, 1);   /* the batch, and the "answers" row */
  } else if (strcmp(wl, "straight") == 0) {
    char key[96];
    snprintf(key, sizeof key, "%lld:%lld:%s", (long long)id, (long long)T.job_ei, T.job_elem);
    sqlite3_bind_int64(st_job, 1, id);
    sqlite3_bind_int64(st_job, 2, T.job_ei);
    txt(st_job, 3, T.job_elem);
    txt(st_job, 4, T.job_adapter);
    txt(st_job, 5, T.job_input);
    sqlite3_bind_text(st_job, 6, key, -1, SQLITE_TRANSIENT);
    /* answered inside the command: the row written once, done; no instance UPDATE */
    txt(st_job, 7, T.inline_answer ? T.job_state1 : "pending");
    sqlite3_bind_int64(st_job, 8, T.inline_answer ? T.job_attempts1 : 0);
    sqlite3_bind_int64(st_job, 9, T.job_retries);
    sqlite3_bind_int64(st_job, 10, T.job_backoff);
    sqlite3_bind_int64(st_job, 11, T.job_next);
    sqlite3_bind_int64(st_job, 12, T.job_created);
    run(st_job);
    *side_id = sqlite3_last_insert_rowid(W);
    if (T.inline_answer) history_and_journal(id, 1);   /* the batch, and the "answers" row */
  } else if (strcmp(wl, "human") == 0) {
    sqlite3_bind_int64(st_task, 1, id);
    sqlite3_bind_int64(st_task, 2, T.task_ei);
    txt(st_task, 3, T.task_elem); txt(st_task, 4, T.task_name); txt(st_task, 5, T.task_proc);
    txt(st_task, 6, T.task_groups); txt(st_task, 7, T.task_branch); txt(st_task, 8, T.task_county);
    txt(st_task, 9, T.task_text); txt(st_task, 10, T.task_form);
    sqlite3_bind_int64(st_task, 11, T.task_created);
    run(st_task);
    *side_id = sqlite3_last_insert_rowid(W);
  } else if (strcmp(wl, "timer") == 0) {
    sqlite3_bind_int64(st_timer, 1, id);
    sqlite3_bind_int64(st_timer, 2, T.tm_ei);
    txt(st_timer, 3, T.tm_elem);
    sqlite3_bind_int64(st_timer, 4, T.tm_def);
    sqlite3_bind_int64(st_timer, 5, T.tm_due);
    sqlite3_bind_int64(st_timer, 6, T.tm_armed);
    run(st_timer);
    *side_id = sqlite3_last_insert_rowid(W);
  }
  return id;
}

/* The second command: job answer, task completion or timer. */
static void cmd_second(const char *wl, int64_t id, int64_t side){
  if (strcmp(wl, "straight") == 0) {
    txt(st_job_up, 1, T.job_state1);
    sqlite3_bind_int64(st_job_up, 2, T.job_attempts1);
    sqlite3_bind_int64(st_job_up, 3, side);
    run(st_job_up);
  } else if (strcmp(wl, "human") == 0) {
    txt(st_task_up, 1, T.task_by);
    sqlite3_bind_int64(st_task_up, 2, T.task_completed);
    sqlite3_bind_int64(st_task_up, 3, side);
    run(st_task_up);
  } else {
    sqlite3_bind_int64(st_timer_del, 1, side);
    run(st_timer_del);
  }
  history_and_journal(id, 1);
  txt(st_inst_up, 1, T.status1);
  txt(st_inst_up, 2, T.state1);
  txt(st_inst_up, 3, T.text1);
  sqlite3_bind_int64(st_inst_up, 4, T.ended);
  sqlite3_bind_int64(st_inst_up, 5, id);
  run(st_inst_up);
}

int main(int argc, char **argv){
  const char *wl, *db;
  int n, batch, second_batch;
  bool relaxed = false;
  char scratch[1100];
  rv_store_opts so = {0};
  rv_store *st;
  rv_err err;
  int64_t *ids, *side;
  double t0, t_first = 0, t_second = 0, t;

  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--relaxed") == 0 || strcmp(argv[i], "--loop-answers") == 0) {
      if (argv[i][2] == 'r') relaxed = true; else loop_answers = true;
      memmove(argv + i, argv + i + 1, sizeof *argv * (size_t)(argc - i));
      argc--; i--;
    }
  if (argc < 5) {
    fprintf(stderr, "usage: bench_limit straight|human|timer|fanout N BATCH DB [--relaxed] [--loop-answers]\n");
    return 2;
  }
  wl = argv[1]; n = atoi(argv[2]); batch = atoi(argv[3]); db = argv[4];
  if (strcmp(wl, "straight") && strcmp(wl, "human") && strcmp(wl, "timer") && strcmp(wl, "fanout"))
    die("unknown workload", wl);
  if (n <= 0 || batch <= 0) die("usage", "N and BATCH must be positive");
  snprintf(scratch, sizeof scratch, "%s.template", db);
  capture(wl, scratch);
  if (T.ncmd < 1 || (strcmp(wl, "fanout") != 0 && T.ncmd < 2)) die("template", "unexpected journal");

  rm_db(db);
  so.relaxed_sync = relaxed;
  if (rv_store_open(db, &so, &st, &err) != RV_OK) die("open", err.msg);
  W = rv_store_db(st);
  /* the definition the instances name (foreign key) */
  exec("INSERT INTO deployments(id, name, hash, created) VALUES(1, 'bench', 'x', 0)");
  {
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO definitions(id, process_id, version, deployment_id, file,"
             " hash, created) VALUES(%lld, 'p', 1, 1, 'f', 'h', 0)", (long long)T.def_id);
    exec(sql);
  }
  st_inst = prep("INSERT INTO instances(definition_id, process_id, business_key, status, state,"
                 " status_text, parent_instance, parent_ei, started, ended, rev)"
                 " VALUES(?,?,NULL,?,?,?,0,0,?,?,1)");
  st_hist = prep("INSERT OR FAIL INTO history_log(instance_id, at, event, element_id, ei, detail) VALUES(?,?,?,?,?,?)");
  st_jour = prep("INSERT INTO journal(instance_id, at, command, payload, mark) VALUES(?,?,?,?,?)");
  st_job = prep("INSERT INTO jobs(instance_id, ei, element_id, adapter, input, key, state, attempts,"
                " retries, backoff_ms, next_try, created, notify) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,0)");
  st_job_up = prep("UPDATE jobs SET state=?, attempts=? WHERE id=?");
  st_task = prep("INSERT INTO tasks(instance_id, ei, element_id, name, process_id, candidate_groups,"
                 " assignee, branch, county, status_text, form, created, due, state)"
                 " VALUES(?,?,?,?,?,?,NULL,?,?,?,?,?,0,'open')");
  st_task_up = prep("UPDATE tasks SET state='completed', completed_by=?, completed=?, data=NULL WHERE id=?");
  st_timer = prep("INSERT INTO timers(instance_id, ei, element_id, definition_id, due, repeat_left,"
                  " fired, armed) VALUES(?,?,?,?,?,0,0,?)");
  st_timer_del = prep("DELETE FROM timers WHERE id=?");
  st_inst_up = prep("UPDATE instances SET status=?, state=?, status_text=?, ended=?, rev=rev+1 WHERE id=?");

  ids = malloc(sizeof *ids * (size_t)n);
  side = malloc(sizeof *side * (size_t)n);
  second_batch = strcmp(wl, "timer") == 0 ? 1000 : batch;   /* rv_engine_fire_due: 1,000 a batch */
  if (strcmp(wl, "straight") == 0) {
    /* a batch of starts, then the batch of their job answers (bench_ravand: drain) */
    t0 = now_s();
    for (int i = 0; i < n; i += batch) {
      int end = i + batch < n ? i + batch : n;
      exec("BEGIN IMMEDIATE");
      for (int k = i; k < end; k++) ids[k] = cmd_start(wl, &side[k]);
      exec("COMMIT");
      if (T.inline_answer) continue;
      exec("BEGIN IMMEDIATE");
      for (int k = i; k < end; k++) cmd_second(wl, ids[k], side[k]);
      exec("COMMIT");
    }
    t_first = now_s() - t0;
  } else {
    t0 = now_s();
    for (int i = 0; i < n; i += batch) {
      int end = i + batch < n ? i + batch : n;
      exec("BEGIN IMMEDIATE");
      for (int k = i; k < end; k++) ids[k] = cmd_start(wl, &side[k]);
      exec("COMMIT");
    }
    t_first = now_s() - t0;
    if (T.ncmd > 1) {
      t0 = now_s();
      for (int i = 0; i < n; i += second_batch) {
        int end = i + second_batch < n ? i + second_batch : n;
        exec("BEGIN IMMEDIATE");
        for (int k = i; k < end; k++) cmd_second(wl, ids[k], side[k]);
        exec("COMMIT");
      }
      t_second = now_s() - t0;
    }
  }
  t = t_first + t_second;
  printf("{\"engine\": \"limit\", \"workload\": \"%s\", \"n\": %d, \"batch\": %d, \"sync\": \"%s\","
         " \"seconds\": %.4f, \"per_s\": %.1f", wl, n, batch, relaxed ? "NORMAL" : "FULL", t, n / t);
  if (strcmp(wl, "straight") != 0 && strcmp(wl, "fanout") != 0)
    printf(", \"first_per_s\": %.1f, \"second_per_s\": %.1f", n / t_first, n / t_second);
  {
    static const char *const tables[] = { "instances", "history", "history_log", "journal", "jobs", "tasks", "timers" };
    printf(", \"rows_per_instance\": {");
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
      char sql[128];
      sqlite3_stmt *s;
      int64_t c = 0;
      snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
      sqlite3_prepare_v2(W, sql, -1, &s, NULL);
      if (sqlite3_step(s) == SQLITE_ROW) c = sqlite3_column_int64(s, 0);
      sqlite3_finalize(s);
      printf("%s\"%s\": %.2f", i ? ", " : "", tables[i], (double)c / n);
    }
    printf("}}\n");
  }
  sqlite3_finalize(st_inst); sqlite3_finalize(st_hist); sqlite3_finalize(st_jour);
  sqlite3_finalize(st_job); sqlite3_finalize(st_job_up); sqlite3_finalize(st_task);
  sqlite3_finalize(st_task_up); sqlite3_finalize(st_timer); sqlite3_finalize(st_timer_del);
  sqlite3_finalize(st_inst_up);
  rv_store_close(st);
  free(ids); free(side);
  if (!getenv("BENCH_KEEP_DB")) rm_db(db);
  return 0;
}
