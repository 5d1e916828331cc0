/*
** bench/bench_engine.c -- durable instances per second, against the
** storage limit measured in the same run.
**
**   (a) start -> script (Lua) -> exclusive gateway -> service task
**       (in-process echo adapter) -> end
**   (b) start -> user task -> end, started then completed
**   limit: bare SQLite transactions (one INSERT each) on the same disk
**          with the same pragmas (WAL, synchronous=FULL)
** Every engine command is a durable transaction; job answers are group-
** committed. Reports ops/s, the ratio to the limit and peak RSS.
** Usage: bench_engine [N] [DIR]   (default 2000, /tmp)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sqlite3.h>
#include "runtime/engine.h"
#include "store/store.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif

static double now_s(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_db(const char *p){
  char b[600];
  unlink(p);
  snprintf(b, sizeof b, "%s-wal", p); unlink(b);
  snprintf(b, sizeof b, "%s-shm", p); unlink(b);
}

static double sqlite_limit(const char *path, int n){
  sqlite3 *h;
  double t0, t;
  rm_db(path);
  sqlite3_open(path, &h);
  sqlite3_exec(h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                  "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", NULL, NULL, NULL);
  t0 = now_s();
  for (int i = 0; i < n; i++) {
    sqlite3_exec(h, "BEGIN IMMEDIATE; INSERT INTO t(v) VALUES('{\"state\":\"x\"}'); COMMIT",
                 NULL, NULL, NULL);
  }
  t = now_s() - t0;
  sqlite3_close(h);
  rm_db(path);
  return n / t;
}

int main(int argc, char **argv){
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  const char *dir = argc > 2 ? argv[2] : "/tmp";
  char path[512];
  rv_engine_cfg cfg = {0};
  rv_engine *e;
  rv_err err;
  const char *files[] = { RV_SOURCE_ROOT "/bench/fixtures/bench.bpmn" };
  double t0, ta, tb_start, tb_done, limit;
  struct rusage ru;
  cJSON *vars = cJSON_CreateObject();
  int64_t id;

  snprintf(path, sizeof path, "%s/ravand-bench-%d.db", dir, (int)getpid());
  limit = sqlite_limit(path, n);

  rm_db(path);
  cfg.db_path = path;
  cfg.relaxed_sync = getenv("RV_BENCH_RELAXED") != NULL;   /* CPU profile only */
  if (rv_engine_open(&cfg, &e, &err) != RV_OK ||
      rv_engine_deploy(e, files, 1, RV_SOURCE_ROOT "/bench/scripts", NULL, &err) != RV_OK) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return 1;
  }
  cJSON_AddNumberToObject(vars, "wage", 120000000);
  cJSON_AddStringToObject(vars, "branch", "1203");

  /* (a) automatic path: n starts (one commit each) + job answers (group-committed) */
  t0 = now_s();
  for (int i = 0; i < n; i++)
    if (rv_engine_start(e, "bench-auto", 0, vars, NULL, &id, &err) != RV_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
  rv_engine_drain(e);
  ta = now_s() - t0;

  /* (a') the same, starts group-committed 256 per transaction (as the
  ** HTTP server does for requests that arrive together) */
  {
    double t1 = now_s(), tag;
    for (int i = 0; i < n; ) {
      rv_engine_batch_begin(e, &err);
      for (int k = 0; k < 256 && i < n; k++, i++)
        if (rv_engine_start(e, "bench-auto", 0, vars, NULL, &id, &err) != RV_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
      rv_engine_batch_end(e, &err);
    }
    rv_engine_drain(e);
    tag = now_s() - t1;
    printf("(a') auto path, group commit   %.0f instances/s\n", n / tag);
  }

  /* (b) human path: n starts, then n completions */
  t0 = now_s();
  for (int i = 0; i < n; i++)
    if (rv_engine_start(e, "bench-human", 0, vars, NULL, &id, &err) != RV_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
  tb_start = now_s() - t0;
  {
    sqlite3_stmt *s;
    int64_t *ids = malloc(sizeof *ids * (size_t)n);
    int k = 0;
    sqlite3_prepare_v2(rv_store_db(rv_engine_store(e)),
      "SELECT id FROM tasks WHERE state='open' ORDER BY id", -1, &s, NULL);
    while (sqlite3_step(s) == SQLITE_ROW && k < n) ids[k++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    t0 = now_s();
    for (int i = 0; i < k; i++)
      if (rv_engine_complete_task(e, ids[i], NULL, "bench", &err) != RV_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
    tb_done = now_s() - t0;
    free(ids);
  }
  {
    const rv_engine_stats *st = rv_engine_stats_get(e);
    getrusage(RUSAGE_SELF, &ru);
    printf("instances                      %d per scenario\n", n);
    printf("storage limit (bare SQLite tx) %.0f tx/s\n", limit);
    printf("(a) auto path, instances/s     %.0f  (%.2f of limit)\n", n / ta, n / ta / limit);
    printf("(b) starts/s                   %.0f  (%.2f of limit)\n", n / tb_start, n / tb_start / limit);
    printf("(b) completions/s              %.0f  (%.2f of limit)\n", n / tb_done, n / tb_done / limit);
    printf("(b) instances/s (start+done)   %.0f\n", n / (tb_start + tb_done));
    printf("commits %lld, largest group commit %lld commands\n", (long long)st->commits, (long long)st->max_batch);
    printf("peak RSS                       %ld KiB\n", ru.ru_maxrss);
  }
  cJSON_Delete(vars);
  rv_engine_close(e);
  rm_db(path);
  return 0;
}
