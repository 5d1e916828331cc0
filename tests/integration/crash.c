/*
** tests/integration/crash.c -- kill -9 at random points, restart, and
** check that no acknowledged command was lost or applied twice.
**
** A child process runs commands against the engine in a loop: start an
** instance (idempotent request key "k<N>", business key the same), or
** complete an open task, or run due jobs. After each command returns
** RV_OK -- the acknowledgement, given only after COMMIT -- it writes the
** ack to a pipe. The parent SIGKILLs the child after a random delay,
** starts a new child that continues the sequence (re-issuing the first
** un-acknowledged start with the same key), and repeats. At the end the
** parent checks, on the database:
**   - every acknowledged start exists exactly once (one instance per key);
**   - every acknowledged completion is completed, with exactly one
**     TASK_COMPLETED history entry; no task completed twice anywhere;
**   - after a final drain every job ran to "done" once and every
**     instance whose task was completed has completed;
**   - PRAGMA integrity_check is ok, after every kill (as the kill left the
**     database) and at the end.
** Usage: crash [COMMANDS [KILLS [SEED]]]   (defaults 2000 50 time)
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include "runtime/engine.h"
#include "store/store.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif

static char db[256];

/* PRAGMA integrity_check of the database as the kill left it (a connection
** of our own; opening it recovers the WAL, as the next child's would).
** Returns true when "ok"; else prints SQLite's first complaint. */
static bool intact(int kill_no){
  sqlite3 *h = NULL;
  sqlite3_stmt *s = NULL;
  bool ok = false;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
      sqlite3_busy_timeout(h, 5000) == SQLITE_OK &&
      sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    const char *r = (const char *)sqlite3_column_text(s, 0);
    ok = r && strcmp(r, "ok") == 0;
    if (!ok) printf("# after kill %d: integrity_check: %s\n", kill_no, r ? r : "?");
  } else {
    printf("# after kill %d: cannot check: %s\n", kill_no, h ? sqlite3_errmsg(h) : "no memory");
  }
  sqlite3_finalize(s);
  sqlite3_close(h);
  return ok;
}

static int child(int fd, int next_start, unsigned seed){
  rv_engine_cfg cfg = {0};
  rv_engine *e;
  rv_err err;
  cfg.db_path = db;
  if (rv_engine_open(&cfg, &e, &err) != RV_OK) { fprintf(stderr, "child open: %s\n", err.msg); return 3; }
  srand(seed);
  rv_engine_drain(e);     /* recovery: jobs left pending by the last kill */
  for (;;) {
    int r = rand() % 10;
    char line[64];
    if (r < 5) {
      char key[32];
      int64_t id;
      snprintf(key, sizeof key, "k%d", next_start);
      if (rv_engine_start_keyed(e, key, "crash", 0, NULL, key, &id, &err) != RV_OK) {
        fprintf(stderr, "start: %s\n", err.msg); return 4;
      }
      snprintf(line, sizeof line, "S %d %lld\n", next_start, (long long)id);
      next_start++;
    } else if (r < 9) {
      sqlite3_stmt *s = rv_store_stmt(rv_engine_store(e),
        "SELECT id FROM tasks WHERE state='open' ORDER BY random() LIMIT 1");
      int64_t t = 0;
      if (sqlite3_step(s) == SQLITE_ROW) t = sqlite3_column_int64(s, 0);
      sqlite3_reset(s);
      if (t == 0) continue;
      if (rv_engine_complete_task(e, t, NULL, "crash", &err) != RV_OK) {
        fprintf(stderr, "complete %lld: %s\n", (long long)t, err.msg); return 5;
      }
      snprintf(line, sizeof line, "C %lld\n", (long long)t);
    } else {
      rv_engine_drain(e);
      continue;
    }
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) return 6;
  }
}

static int64_t q1(sqlite3 *h, const char *sql){
  sqlite3_stmt *s;
  int64_t v = -1;
  if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) return -2;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

int main(int argc, char **argv){
  int want = argc > 1 ? atoi(argv[1]) : 2000, kills = argc > 2 ? atoi(argv[2]) : 50;
  unsigned seed = argc > 3 ? (unsigned)atoi(argv[3]) : (unsigned)time(NULL);
  int acks = 0, starts = 0, n_kill = 0, fails = 0, next_start = 0;
  /* room for the commands a fast child acknowledges past `want` while
  ** the kills are still being spread out (the loop below runs until both
  ** counts are reached) */
  int cap = 8 * want + 1024;
  int64_t *completed = calloc((size_t)cap, sizeof *completed);
  int n_completed = 0, intact_after = 0;
  char *start_ack = calloc((size_t)cap, 1);
  rv_err err;

  printf("# seed %u, %d commands, %d kills\n", seed, want, kills);
  srand(seed);
  snprintf(db, sizeof db, "/tmp/ravand-crash-%d.db", (int)getpid());
  unlink(db);
  {
    rv_engine_cfg cfg = {0};
    rv_engine *e;
    const char *files[] = { RV_SOURCE_ROOT "/tests/fixtures/runtime/crash.bpmn" };
    cfg.db_path = db;
    if (rv_engine_open(&cfg, &e, &err) != RV_OK ||
        rv_engine_deploy(e, files, 1, NULL, NULL, &err) != RV_OK) {
      printf("Bail out! %s\n", err.msg);
      return 1;
    }
    rv_engine_close(e);
  }
  while (acks < want || n_kill < kills) {
    int p[2];
    pid_t pid;
    FILE *in;
    char line[128];
    bool kill_it = n_kill < kills;
    if (pipe(p) != 0) return 1;
    pid = fork();
    if (pid == 0) { close(p[0]); _exit(child(p[1], next_start, seed + (unsigned)n_kill)); }
    close(p[1]);
    if (kill_it) {
      /* spread the kills over the run: each child lives 5..40 ms */
      usleep((useconds_t)(5000 + rand() % 35000));
      kill(pid, SIGKILL);
      n_kill++;
    }
    in = fdopen(p[0], "r");
    while (fgets(line, sizeof line, in)) {
      int k; long long id;
      if (sscanf(line, "S %d %lld", &k, &id) == 2) {
        if (k < cap) start_ack[k] = 1;
        if (k + 1 > next_start) next_start = k + 1;
        starts++; acks++;
      } else if (sscanf(line, "C %lld", &id) == 1) {
        if (n_completed < cap) completed[n_completed++] = id;
        acks++;
      }
      if (!kill_it && acks >= want) { kill(pid, SIGKILL); break; }
    }
    fclose(in);
    {
      int st;
      waitpid(pid, &st, 0);
      if (WIFEXITED(st) && WEXITSTATUS(st) != 0) { printf("Bail out! child exited %d\n", WEXITSTATUS(st)); return 1; }
    }
    if (kill_it && intact(n_kill)) intact_after++;
  }
  if (intact_after == kills) printf("ok - integrity_check after each of the %d kills\n", kills);
  else { printf("not ok - integrity_check after %d of %d kills\n", intact_after, kills); fails++; }
  /* final drain: pending jobs finish */
  {
    rv_engine_cfg cfg = {0};
    rv_engine *e;
    cfg.db_path = db;
    if (rv_engine_open(&cfg, &e, &err) != RV_OK) { printf("Bail out! %s\n", err.msg); return 1; }
    rv_engine_drain(e);
    if (rv_store_integrity(rv_engine_store(e), &err) != RV_OK) { printf("not ok - integrity: %s\n", err.msg); fails++; }
    else printf("ok - PRAGMA integrity_check\n");
    rv_engine_close(e);
  }
  {
    sqlite3 *h;
    int lost_starts = 0, lost_completes = 0;
    int64_t dup_keys, dup_completions, mismatch, jobs_twice, not_done;
    sqlite3_open(db, &h);
    for (int k = 0; k < next_start && k < cap; k++) {
      char sql[160];
      if (!start_ack[k]) continue;
      snprintf(sql, sizeof sql, "SELECT count(*) FROM instances WHERE business_key='k%d'", k);
      if (q1(h, sql) != 1) lost_starts++;
    }
    for (int i = 0; i < n_completed; i++) {
      char sql[200];
      snprintf(sql, sizeof sql, "SELECT count(*) FROM tasks WHERE id=%lld AND state='completed'", (long long)completed[i]);
      if (q1(h, sql) != 1) lost_completes++;
    }
    dup_keys = q1(h, "SELECT count(*) FROM (SELECT business_key FROM instances GROUP BY business_key HAVING count(*)>1)");
    dup_completions = q1(h, "SELECT count(*) FROM (SELECT instance_id, ei FROM history WHERE event='TASK_COMPLETED'"
                            " GROUP BY instance_id, ei HAVING count(*)>1)");
    mismatch = q1(h, "SELECT (SELECT count(*) FROM tasks WHERE state='completed')"
                     " - (SELECT count(*) FROM history WHERE event='TASK_COMPLETED')");
    jobs_twice = q1(h, "SELECT count(*) FROM (SELECT instance_id FROM history WHERE event='JOB_COMPLETED'"
                       " GROUP BY instance_id, ei HAVING count(*)>1)");
    not_done = q1(h, "SELECT count(*) FROM instances i WHERE status!='completed' AND EXISTS"
                     " (SELECT 1 FROM tasks t WHERE t.instance_id=i.id AND t.state='completed')");
    printf("# %d acknowledged commands (%d starts, %d completions), %d kills, %lld instances\n",
           acks, starts, n_completed, n_kill, (long long)q1(h, "SELECT count(*) FROM instances"));
    printf("%s - acknowledged starts lost: %d\n", lost_starts ? "not ok" : "ok", lost_starts);
    printf("%s - acknowledged completions lost: %d\n", lost_completes ? "not ok" : "ok", lost_completes);
    printf("%s - starts applied twice: %lld\n", dup_keys ? "not ok" : "ok", (long long)dup_keys);
    printf("%s - tasks completed twice: %lld\n", dup_completions ? "not ok" : "ok", (long long)dup_completions);
    printf("%s - completed tasks match history: %lld\n", mismatch ? "not ok" : "ok", (long long)mismatch);
    printf("%s - jobs applied twice: %lld\n", jobs_twice ? "not ok" : "ok", (long long)jobs_twice);
    if (not_done) {
      sqlite3_stmt *s;
      sqlite3_prepare_v2(h, "SELECT state, count(*), min(next_try), max(attempts) FROM jobs GROUP BY state", -1, &s, NULL);
      while (sqlite3_step(s) == SQLITE_ROW)
        printf("# jobs %s: %lld (min next_try %lld, max attempts %lld)\n", sqlite3_column_text(s, 0),
               (long long)sqlite3_column_int64(s, 1), (long long)sqlite3_column_int64(s, 2),
               (long long)sqlite3_column_int64(s, 3));
      sqlite3_finalize(s);
    }
    printf("%s - instances stuck after their task: %lld\n", not_done ? "not ok" : "ok", (long long)not_done);
    printf("%s - kills happened: %d\n", n_kill >= kills ? "ok" : "not ok", n_kill);
    fails += (lost_starts != 0) + (lost_completes != 0) + (dup_keys != 0) + (dup_completions != 0) +
             (mismatch != 0) + (jobs_twice != 0) + (not_done != 0) + (n_kill < kills);
    sqlite3_close(h);
  }
  printf("1..10\n");
  {
    char p[300];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db); unlink(p);
    snprintf(p, sizeof p, "%s-shm", db); unlink(p);
  }
  free(completed);
  free(start_ack);
  return fails ? 1 : 0;
}
