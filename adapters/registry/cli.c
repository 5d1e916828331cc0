/*
** adapters/registry/cli.c -- `ravand feed`:
**
**   ravand feed import FILE [--all-spouses] [--chunk N] [--chunk-ms MS] [--ttl DURATION]
**                           [--message NAME]
**       validate and apply a civil-registry marriage file; prints the
**       reconciliation report with every rejected and duplicate line.
**       Exit 0: applied (or already applied); 1: the file was rejected as
**       a whole, or the import stopped (run it again to resume).
**   ravand feed list                    every import with its counts
**   ravand feed report ID               one import's report with its issues
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "registry/feed.h"
#include "common/util.h"
#include "cal/cal.h"
#include "core/json.h"
#include "runtime/engine.h"
#include "store/store.h"

static int usage(const char *msg){
  if (msg) fprintf(stderr, "ravand: %s\n", msg);
  fprintf(stderr,
    "usage: ravand feed import FILE [--all-spouses] [--chunk N] [--chunk-ms MS] [--ttl DURATION]\n"
    "                              [--message NAME]\n"
    "       ravand feed list | report ID\n");
  return 2;
}

static void print_report(const cJSON *r){
  const cJSON *sp = cJSON_GetObjectItemCaseSensitive(r, "spouses"), *it;
  printf("import %lld of %s (sha256 %s): %s%s\n", (long long)rv_json_int(r, "import", 0),
         rv_json_str(r, "file"), rv_json_str(r, "sha256"), rv_json_str(r, "state"),
         rv_json_bool(r, "already_imported", false) ? " earlier; nothing applied now" : "");
  if (rv_json_str(r, "reason")) printf("  rejected as a whole: %s\n", rv_json_str(r, "reason"));
  printf("  records %lld: applied %lld, rejected %lld, duplicate %lld\n",
         (long long)rv_json_int(r, "records", 0), (long long)rv_json_int(r, "applied", 0),
         (long long)rv_json_int(r, "rejected", 0), (long long)rv_json_int(r, "duplicate", 0));
  printf("  spouses: correlated %lld, started %lld, buffered %lld, dropped %lld, duplicate %lld,"
         " not insured %lld\n", (long long)rv_json_int(sp, "correlated", 0),
         (long long)rv_json_int(sp, "started", 0), (long long)rv_json_int(sp, "buffered", 0),
         (long long)rv_json_int(sp, "dropped", 0), (long long)rv_json_int(sp, "duplicate", 0),
         (long long)rv_json_int(sp, "not_insured", 0));
  if (rv_json_int(r, "chunks", 0) > 0)
    printf("  time %.0f ms in %lld chunk(s), longest chunk %.1f ms\n",
           cJSON_GetObjectItemCaseSensitive(r, "time_ms")->valuedouble,
           (long long)rv_json_int(r, "chunks", 0),
           cJSON_GetObjectItemCaseSensitive(r, "max_chunk_ms")->valuedouble);
  it = cJSON_GetObjectItemCaseSensitive(r, "issues");
  if (cJSON_GetArraySize(it) > 0) {
    const cJSON *x;
    printf("rejected and duplicate lines:\n");
    cJSON_ArrayForEach(x, it)
      printf("  line %lld: %s: %s\n", (long long)rv_json_int(x, "line", 0), rv_json_str(x, "kind"),
             rv_json_str(x, "reason"));
  }
}

int rv_feed_cli(const rv_cli_env *env, int argc, char **argv){
  bool bad = false;
  const char *chunk = rv_cli_opt(&argc, argv, "--chunk", &bad);
  const char *chunk_ms = rv_cli_opt(&argc, argv, "--chunk-ms", &bad);
  const char *ttl = rv_cli_opt(&argc, argv, "--ttl", &bad);
  const char *msg = rv_cli_opt(&argc, argv, "--message", &bad);
  bool all = rv_cli_flag(&argc, argv, "--all-spouses");
  const char *sub = argc > 0 ? argv[0] : NULL;
  rv_clock clk;
  rv_engine *e;
  rv_err err;
  int rc;

  if (bad || !rv_cli_no_unknown(argc, argv)) return 2;
  if (sub == NULL) return usage("feed needs import, list or report");
  if (strcmp(sub, "import") == 0) {
    /* Chunks of up to 10,000 records and about 1 s: nothing but the import
    ** runs on this loop, and a server on the same database waits at most
    ** about that long for its next write (busy timeout 5 s). Bigger
    ** transactions write each page of a random-key index (message ids,
    ** business keys, certificates) once per commit instead of about once
    ** per record: the 100,000-record month end took 69 s in chunks of
    ** 100 ms, 50 s in chunks of 1 s (docs/performance.md). The engine's
    ** own default (100 ms) stays for programs that embed the engine and
    ** import on a loop that also serves requests. */
    rv_feed_opts o = { .chunk = 10000, .chunk_ms = 1000 };
    cJSON *rep = NULL;
    rv_status st;
    if (argc != 2) return usage("feed import needs one FILE");
    if (chunk) { o.chunk = atoi(chunk); if (o.chunk <= 0) return usage("--chunk must be a positive number"); }
    if (chunk_ms) { o.chunk_ms = atoi(chunk_ms); if (o.chunk_ms <= 0) return usage("--chunk-ms must be a positive number"); }
    if (ttl) {
      rv_duration d;
      if (rv_duration_parse(ttl, &d, &err) != RV_OK) { fprintf(stderr, "ravand: --ttl: %s\n", err.msg); return 2; }
      o.ttl_ms = rv_duration_ms(&d);
    }
    o.all_spouses = all;
    o.message = msg;
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) return rc;
    st = rv_feed_import(e, argv[1], &o, &rep, &err);
    rv_cli_close(e);
    if (rep) { if (env->json) rv_cli_print_json(rep); else print_report(rep); }
    if (st != RV_OK && rep == NULL) {
      fprintf(stderr, "ravand: feed import: %s\n", err.msg);
      return 1;
    }
    if (st != RV_OK) {
      fprintf(stderr, "ravand: feed import stopped: %s (run it again to resume)\n", err.msg);
      cJSON_Delete(rep);
      return 1;
    }
    rc = rv_json_str(rep, "state") && strcmp(rv_json_str(rep, "state"), "done") == 0 ? 0 : 1;
    cJSON_Delete(rep);
    return rc;
  }
  if (strcmp(sub, "report") == 0) {
    char *end;
    long long id = argc == 2 ? strtoll(argv[1], &end, 10) : 0;
    cJSON *rep;
    if (argc != 2 || *end || id <= 0) return usage("feed report needs an import id");
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) return rc;
    if (rv_feed_report(rv_engine_store(e), id, true, &rep, &err) != RV_OK) {
      rv_cli_close(e);
      fprintf(stderr, "ravand: %s\n", err.msg);
      return 1;
    }
    rv_cli_close(e);
    if (env->json) rv_cli_print_json(rep); else print_report(rep);
    cJSON_Delete(rep);
    return 0;
  }
  if (strcmp(sub, "list") == 0) {
    sqlite3_stmt *s;
    cJSON *arr = cJSON_CreateArray(), *x;
    if (argc != 1) { cJSON_Delete(arr); return usage("feed list takes no arguments"); }
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) { cJSON_Delete(arr); return rc; }
    s = rv_store_stmt(rv_engine_store(e), "SELECT id FROM feed_imports ORDER BY id");
    while (sqlite3_step(s) == SQLITE_ROW) {
      cJSON *rep;
      if (rv_feed_report(rv_engine_store(e), sqlite3_column_int64(s, 0), false, &rep, &err) == RV_OK)
        cJSON_AddItemToArray(arr, rep);
    }
    sqlite3_reset(s);
    rv_cli_close(e);
    if (env->json) rv_cli_print_json(arr);
    else {
      printf("%-6s %-9s %8s %8s %8s %9s  %s\n", "import", "state", "records", "applied", "rejected", "duplicate", "file");
      cJSON_ArrayForEach(x, arr)
        printf("%-6lld %-9s %8lld %8lld %8lld %9lld  %s\n", (long long)rv_json_int(x, "import", 0),
               rv_json_str(x, "state"), (long long)rv_json_int(x, "records", 0),
               (long long)rv_json_int(x, "applied", 0), (long long)rv_json_int(x, "rejected", 0),
               (long long)rv_json_int(x, "duplicate", 0), rv_json_str(x, "file"));
      if (cJSON_GetArraySize(arr) == 0) printf("(none)\n");
    }
    cJSON_Delete(arr);
    return 0;
  }
  return usage(NULL);
}
