/*
** bench/bench_ravand.c -- ravand's side of bench/run: one workload per call,
** one JSON object on stdout. Durable as in production (WAL,
** synchronous=FULL; a command is acknowledged after its COMMIT) unless
** --relaxed is given (CPU profiles only).
**
**   bench_ravand straight N BATCH DB   start -> script -> xor -> service (echo) -> end
**   bench_ravand human    N BATCH DB   N starts, then N completions
**   bench_ravand timer    N BATCH DB   N starts, then the clock passes their 1 s timer
**   bench_ravand fanout   N BATCH DB   parallel gateway to 10 branches and a join
**   bench_ravand cartable N BATCH DB [QUERIES]
**                                      N open tasks over 31 provinces' branches, then
**                                      QUERIES filtered, paged list queries (latency)
**
** BATCH is how many commands share one transaction (group commit, as the
** HTTP server does for requests that arrive together; optimistic, no
** savepoint per command, unless --savepoints); 1 = one command per
** transaction. BENCH_KEEP_DB=1 keeps the database (to compare rows). The
** engine runs as `ravand` runs it (cfg.answer_now): the in-process echo
** service answers inside the command that reached it, as a JavaDelegate
** runs in its caller's transaction in Camunda. --loop-answers: as an
** external adapter instead, every answer through the event loop, those
** that arrived in one loop pass applied in one transaction. Timers fire as the scheduler fires
** them (rv_engine_fire_due: up to 1,000 per transaction).
** Workload files: bench/workloads/ (read unchanged by bench/peer.mjs too).
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
#define WL RV_SOURCE_ROOT "/bench/workloads"

static double now_s(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const rv_err *err){
  fprintf(stderr, "bench_ravand: %s: %s\n", what, err ? err->msg : "");
  exit(1);
}

static void rm_db(const char *p){
  char b[1100];
  unlink(p);
  snprintf(b, sizeof b, "%s-wal", p); unlink(b);
  snprintf(b, sizeof b, "%s-shm", p); unlink(b);
}

static int64_t count(rv_engine *e, const char *sql){
  sqlite3_stmt *s;
  int64_t v = -1;
  if (sqlite3_prepare_v2(rv_store_db(rv_engine_store(e)), sql, -1, &s, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

static int cmp_double(const void *a, const void *b){
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Rows the run left, per instance: what bench_limit must write too. */
static void print_rows(rv_engine *e, int n){
  static const char *const tables[] = { "instances", "history", "history_log", "journal", "jobs", "tasks", "timers" };
  printf(", \"rows_per_instance\": {");
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
    printf("%s\"%s\": %.2f", i ? ", " : "", tables[i], (double)count(e, sql) / n);
  }
  printf("}");
}

/* --savepoints: a savepoint per command, as rv_engine_batch_begin (the
** HTTP server's rerun of a spoiled batch); default: optimistic batches, as
** the server runs them first (no command of the benchmark fails, so none
** is ever run twice). */
static bool loop_answers;   /* --loop-answers: cfg.answer_now off */
static bool savepoints;
static rv_status batch_begin(rv_engine *e, rv_err *err){
  return savepoints ? rv_engine_batch_begin(e, err) : rv_engine_batch_begin_optimistic(e, err);
}

static void start_batch(rv_engine *e, const char *process, const cJSON *vars, int k, int batch){
  rv_err err;
  int64_t id;
  if (batch > 1 && batch_begin(e, &err) != RV_OK) die("batch", &err);
  for (int i = 0; i < k; i++)
    if (rv_engine_start(e, process, 0, vars, NULL, &id, &err) != RV_OK) die("start", &err);
  if (batch > 1 && rv_engine_batch_end(e, &err) != RV_OK) die("commit", &err);
}

int main(int argc, char **argv){
  const char *wl, *db;
  int n, batch, queries = 2000;
  bool relaxed = false;
  rv_engine_cfg cfg = {0};
  rv_clock vclock;
  rv_engine *e;
  rv_err err;
  cJSON *vars = cJSON_CreateObject();
  const char *file, *process;
  char path[600];
  struct rusage ru;

  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--relaxed") == 0 || strcmp(argv[i], "--savepoints") == 0 ||
        strcmp(argv[i], "--loop-answers") == 0) {
      if (argv[i][2] == 'r') relaxed = true;
      else if (argv[i][2] == 's') savepoints = true;
      else loop_answers = true;
      memmove(argv + i, argv + i + 1, sizeof *argv * (size_t)(argc - i));
      argc--; i--;
    }
  if (argc < 5) {
    fprintf(stderr, "usage: bench_ravand straight|human|timer|fanout|cartable N BATCH DB [QUERIES] [--relaxed]"
                    " [--savepoints] [--loop-answers]\n");
    return 2;
  }
  wl = argv[1]; n = atoi(argv[2]); batch = atoi(argv[3]); db = argv[4];
  if (argc > 5) queries = atoi(argv[5]);
  if (n <= 0 || batch <= 0) { fprintf(stderr, "bench_ravand: N and BATCH must be positive\n"); return 2; }
  if (strcmp(wl, "straight") == 0)      { file = "straight.bpmn"; process = "bench-straight"; }
  else if (strcmp(wl, "human") == 0)    { file = "human.bpmn";    process = "bench-human"; }
  else if (strcmp(wl, "timer") == 0)    { file = "timer.bpmn";    process = "bench-timer"; }
  else if (strcmp(wl, "fanout") == 0)   { file = "fanout.bpmn";   process = "bench-fanout"; }
  else if (strcmp(wl, "cartable") == 0) { file = "cartable.bpmn"; process = "bench-cartable"; }
  else { fprintf(stderr, "bench_ravand: unknown workload '%s'\n", wl); return 2; }

  rm_db(db);
  cfg.db_path = db;
  cfg.relaxed_sync = relaxed;
  cfg.answer_now = !loop_answers;
  rv_clock_init_virtual(&vclock, INT64_C(1760000000000));   /* 2025-10-09, fixed */
  if (strcmp(wl, "timer") == 0) cfg.clock = &vclock;
  snprintf(path, sizeof path, "%s/%s", WL, file);
  {
    const char *files[] = { path };
    if (rv_engine_open(&cfg, &e, &err) != RV_OK) die("open", &err);
    if (rv_engine_deploy(e, files, 1, WL "/scripts", NULL, &err) != RV_OK) die("deploy", &err);
  }
  cJSON_AddNumberToObject(vars, "wage", 120000000);
  cJSON_AddStringToObject(vars, "branch", "1203");

  printf("{\"engine\": \"ravand\", \"workload\": \"%s\", \"n\": %d, \"batch\": %d, \"sync\": \"%s\","
         " \"savepoints\": %s, \"history\": \"%s\", \"answer_now\": %s", wl, n, batch, relaxed ? "NORMAL" : "FULL",
         savepoints || batch == 1 ? "true" : "false", getenv("RAVAND_HISTORY") ? getenv("RAVAND_HISTORY") : "full",
         loop_answers ? "false" : "true");

  if (strcmp(wl, "straight") == 0 || strcmp(wl, "fanout") == 0) {
    double t0 = now_s(), t;
    for (int i = 0; i < n; i += batch) {
      start_batch(e, process, vars, n - i < batch ? n - i : batch, batch);
      rv_engine_drain(e);     /* job answers: one transaction per loop pass */
    }
    t = now_s() - t0;
    printf(", \"seconds\": %.4f, \"per_s\": %.1f", t, n / t);
    printf(", \"completed\": %lld",
           (long long)count(e, "SELECT count(*) FROM instances WHERE status='completed'"));
  } else if (strcmp(wl, "human") == 0) {
    double t0 = now_s(), ts, tc;
    int64_t *ids = malloc(sizeof *ids * (size_t)n);
    int k = 0;
    sqlite3_stmt *s;
    for (int i = 0; i < n; i += batch) start_batch(e, process, vars, n - i < batch ? n - i : batch, batch);
    ts = now_s() - t0;
    sqlite3_prepare_v2(rv_store_db(rv_engine_store(e)),
      "SELECT id FROM tasks WHERE state='open' ORDER BY id", -1, &s, NULL);
    while (sqlite3_step(s) == SQLITE_ROW && k < n) ids[k++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    t0 = now_s();
    for (int i = 0; i < k; i += batch) {
      if (batch > 1 && batch_begin(e, &err) != RV_OK) die("batch", &err);
      for (int j = i; j < k && j < i + batch; j++)
        if (rv_engine_complete_task(e, ids[j], NULL, "bench", &err) != RV_OK) die("complete", &err);
      if (batch > 1 && rv_engine_batch_end(e, &err) != RV_OK) die("commit", &err);
    }
    tc = now_s() - t0;
    free(ids);
    printf(", \"start_seconds\": %.4f, \"starts_per_s\": %.1f, \"complete_seconds\": %.4f,"
           " \"completions_per_s\": %.1f, \"seconds\": %.4f, \"per_s\": %.1f",
           ts, n / ts, tc, k / tc, ts + tc, n / (ts + tc));
    printf(", \"completed\": %lld",
           (long long)count(e, "SELECT count(*) FROM instances WHERE status='completed'"));
  } else if (strcmp(wl, "timer") == 0) {
    double t0 = now_s(), ts, tf;
    int fired = 0, f;
    for (int i = 0; i < n; i += batch) start_batch(e, process, vars, n - i < batch ? n - i : batch, batch);
    ts = now_s() - t0;
    rv_clock_advance(&vclock, 2000);      /* every timer is due */
    t0 = now_s();
    while ((f = rv_engine_fire_due(e)) > 0) fired += f;
    tf = now_s() - t0;
    printf(", \"start_seconds\": %.4f, \"starts_per_s\": %.1f, \"fire_seconds\": %.4f,"
           " \"fired_per_s\": %.1f, \"fired\": %d, \"seconds\": %.4f, \"per_s\": %.1f",
           ts, n / ts, tf, fired / tf, fired, ts + tf, n / (ts + tf));
    printf(", \"completed\": %lld",
           (long long)count(e, "SELECT count(*) FROM instances WHERE status='completed'"));
  } else {   /* cartable */
    /* 31 provinces ("01".."31"), 12 branches each ("0101".."3112"); tasks
    ** spread uniformly (fixed LCG), so a branch holds n/372 open tasks */
    uint64_t rnd = 42;
    double t0 = now_s(), tf, *lat = malloc(sizeof *lat * (size_t)queries), sum = 0;
    int64_t rows = 0;
    char br[8], pr[4];
    cJSON_DeleteItemFromObject(vars, "branch");
    cJSON_AddStringToObject(vars, "branch", "0000");
    cJSON_AddStringToObject(vars, "province", "00");
    for (int i = 0; i < n; i += batch) {
      int k = n - i < batch ? n - i : batch;
      int64_t id;
      if (batch_begin(e, &err) != RV_OK) die("batch", &err);
      for (int j = 0; j < k; j++) {
        int p, b;
        rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
        p = (int)((rnd >> 33) % 31) + 1;
        b = (int)((rnd >> 17) % 12) + 1;
        snprintf(pr, sizeof pr, "%02d", p);
        snprintf(br, sizeof br, "%02d%02d", p, b);
        cJSON_SetValuestring(cJSON_GetObjectItem(vars, "branch"), br);
        cJSON_SetValuestring(cJSON_GetObjectItem(vars, "province"), pr);
        if (rv_engine_start(e, process, 0, vars, NULL, &id, &err) != RV_OK) die("start", &err);
      }
      if (rv_engine_batch_end(e, &err) != RV_OK) die("commit", &err);
    }
    tf = now_s() - t0;
    /* the queries a cartable makes: a branch's open tasks, a province's,
    ** a group's within a branch; pages 1-5 of 50 */
    for (int q = 0; q < queries; q++) {
      cJSON *f = cJSON_CreateObject(), *out = NULL;
      char *text;
      int kind, p, b, page;
      double t1;
      rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
      kind = (int)((rnd >> 40) % 3);
      p = (int)((rnd >> 33) % 31) + 1;
      b = (int)((rnd >> 17) % 12) + 1;
      page = (int)((rnd >> 50) % 5);
      snprintf(pr, sizeof pr, "%02d", p);
      snprintf(br, sizeof br, "%02d%02d", p, b);
      if (kind == 0) cJSON_AddStringToObject(f, "branch", br);
      else if (kind == 1) cJSON_AddStringToObject(f, "county", pr);
      else { cJSON_AddStringToObject(f, "branch", br); cJSON_AddStringToObject(f, "group", "clerk"); }
      cJSON_AddNumberToObject(f, "limit", 50);
      cJSON_AddNumberToObject(f, "offset", 50 * page);
      t1 = now_s();
      if (rv_engine_tasks_json(e, f, &out, &err) != RV_OK) die("tasks", &err);
      text = cJSON_PrintUnformatted(out);     /* a reply is serialised too */
      lat[q] = (now_s() - t1) * 1000;
      sum += lat[q];
      rows += cJSON_GetArraySize(out);
      cJSON_free(text);
      cJSON_Delete(out);
      cJSON_Delete(f);
    }
    qsort(lat, (size_t)queries, sizeof *lat, cmp_double);
    printf(", \"fill_seconds\": %.3f, \"starts_per_s\": %.1f, \"open_tasks\": %lld, \"branches\": 372,"
           " \"queries\": %d, \"rows_per_page\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f,"
           " \"max_ms\": %.3f, \"mean_ms\": %.3f",
           tf, n / tf, (long long)count(e, "SELECT count(*) FROM tasks WHERE state='open'"),
           queries, (double)rows / queries, lat[queries / 2], lat[(int)(queries * 0.99)],
           lat[queries - 1], sum / queries);
    free(lat);
  }
  {
    const rv_engine_stats *st = rv_engine_stats_get(e);
    print_rows(e, n);
    getrusage(RUSAGE_SELF, &ru);
    printf(", \"commits\": %lld, \"largest_batch\": %lld, \"answered_now\": %lld, \"peak_rss_kib\": %ld}\n",
           (long long)st->commits, (long long)st->max_batch, (long long)st->answered_now, ru.ru_maxrss);
  }
  cJSON_Delete(vars);
  rv_engine_close(e);
  if (!getenv("BENCH_KEEP_DB")) rm_db(db);
  return 0;
}
