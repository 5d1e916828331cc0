/*
** adapters/finance/cli.c -- `ravand export`:
**
**   ravand export payroll|finance [--period YYYY-MM] [--dir DIR]
**       publish batches left unpublished by a crash, then cut a new batch
**       of the ledger's unbatched rows and publish it (default dir ./exports)
**   ravand export again BATCH [--dir DIR]
**       write the batch's file again; fails unless byte-identical (sha256)
**   ravand export list                 every batch with its control totals
**   ravand export report BATCH         one batch's reconciliation report
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "finance/finance.h"
#include "common/util.h"
#include "runtime/engine.h"

static int usage(const char *msg){
  if (msg) fprintf(stderr, "ravand: %s\n", msg);
  fprintf(stderr,
    "usage: ravand export payroll|finance [--period YYYY-MM] [--dir DIR]\n"
    "       ravand export again BATCH [--dir DIR]\n"
    "       ravand export list | report BATCH\n");
  return 2;
}

static void print_report(const rv_cli_env *env, const char *what, const rv_export_report *r){
  if (env->json) {
    cJSON *o = rv_export_report_json(r);
    cJSON_AddStringToObject(o, "result", what);
    rv_cli_print_json(o);
    cJSON_Delete(o);
    return;
  }
  printf("%s batch %lld (%s, period %s): %lld rows, %lld Rials\n  file %s\n  sha256 %s\n", what,
         (long long)r->batch, r->ledger, r->period[0] ? r->period : "all", (long long)r->rows,
         (long long)r->sum_rials, r->file, r->sha256[0] ? r->sha256 : "(not published yet)");
}

static bool parse_batch(const char *s, int64_t *out){
  char *end;
  long long v = s ? strtoll(s, &end, 10) : 0;
  if (s == NULL || *end || v <= 0) return false;
  *out = v;
  return true;
}

int rv_export_cli(const rv_cli_env *env, int argc, char **argv){
  bool bad = false;
  const char *dir = rv_cli_opt(&argc, argv, "--dir", &bad);
  const char *period = rv_cli_opt(&argc, argv, "--period", &bad);
  rv_clock clk;
  rv_engine *e;
  rv_err err;
  int rc;
  const char *sub = argc > 0 ? argv[0] : NULL;

  if (bad || !rv_cli_no_unknown(argc, argv)) return 2;
  if (sub == NULL) return usage("export needs payroll, finance, again, list or report");
  if (dir == NULL) dir = "exports";
  if (period) {
    int y, m;
    const char *why = rv_jalali_parse_month(period, &y, &m);
    if (why) { fprintf(stderr, "ravand: --period: %s\n", why); return 2; }
  }
  if (strcmp(sub, "payroll") == 0 || strcmp(sub, "finance") == 0) {
    rv_export_report r;
    int recovered = 0;
    char per[8];
    if (argc != 1) return usage("export payroll|finance takes no arguments besides options");
    if (period) { int y, m; rv_jalali_parse_month(period, &y, &m); snprintf(per, sizeof per, "%04d-%02d", y, m); }
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) return rc;
    for (;;) {
      int n = 0;
      if (rv_export_recover(rv_engine_store(e), sub, dir, &n, &err) != RV_OK) {
        fprintf(stderr, "ravand: recovering unpublished batches: %s\n", err.msg);
        rv_cli_close(e);
        return 1;
      }
      recovered += n;
      if (n < 64) break;
    }
    if (recovered && !env->json)
      printf("published %d batch(es) left unpublished by an earlier interruption\n", recovered);
    if (rv_export_batch(rv_engine_store(e), sub, period ? per : NULL, dir,
                        rv_clock_now(rv_engine_clock(e)), &r, &err) != RV_OK) {
      rv_cli_close(e);
      if (err.code == RV_NOTFOUND) {
        if (env->json) printf("{\"result\": \"nothing\", \"recovered\": %d}\n", recovered);
        else printf("%s\n", err.msg);
        return 0;
      }
      fprintf(stderr, "ravand: %s\n", err.msg);
      return 1;
    }
    print_report(env, "exported", &r);
    rv_cli_close(e);
    return 0;
  }
  if (strcmp(sub, "again") == 0 || strcmp(sub, "report") == 0) {
    int64_t id;
    rv_export_report r;
    rv_status st;
    if (argc != 2 || !parse_batch(argv[1], &id)) return usage("a batch id is required");
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) return rc;
    if (strcmp(sub, "again") == 0)
      st = rv_export_publish(rv_engine_store(e), id, dir, rv_clock_now(rv_engine_clock(e)), &r, &err);
    else
      st = rv_export_get(rv_engine_store(e), id, &r, &err);
    rv_cli_close(e);
    if (st != RV_OK) { fprintf(stderr, "ravand: %s\n", err.msg); return 1; }
    print_report(env, strcmp(sub, "again") == 0 ? "re-exported (identical)" : "report", &r);
    return 0;
  }
  if (strcmp(sub, "list") == 0) {
    sqlite3_stmt *s;
    cJSON *arr = cJSON_CreateArray();
    if (argc != 1) { cJSON_Delete(arr); return usage("export list takes no arguments"); }
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) { cJSON_Delete(arr); return rc; }
    s = rv_store_stmt(rv_engine_store(e), "SELECT id FROM fin_batches ORDER BY id");
    while (sqlite3_step(s) == SQLITE_ROW) {
      rv_export_report r;
      if (rv_export_get(rv_engine_store(e), sqlite3_column_int64(s, 0), &r, &err) == RV_OK)
        cJSON_AddItemToArray(arr, rv_export_report_json(&r));
    }
    sqlite3_reset(s);
    rv_cli_close(e);
    if (env->json) rv_cli_print_json(arr);
    else {
      const cJSON *o;
      printf("%-6s %-8s %-8s %8s %16s  %-34s %s\n", "batch", "ledger", "period", "rows", "sum_rials", "file", "sha256");
      cJSON_ArrayForEach(o, arr) {
        const cJSON *p = cJSON_GetObjectItem(o, "period"), *h = cJSON_GetObjectItem(o, "sha256");
        printf("%-6lld %-8s %-8s %8lld %16lld  %-34s %s\n",
               (long long)cJSON_GetObjectItem(o, "batch")->valuedouble,
               cJSON_GetObjectItem(o, "ledger")->valuestring,
               cJSON_IsString(p) ? p->valuestring : "all",
               (long long)cJSON_GetObjectItem(o, "rows")->valuedouble,
               (long long)cJSON_GetObjectItem(o, "sum_rials")->valuedouble,
               cJSON_GetObjectItem(o, "file")->valuestring,
               cJSON_IsString(h) ? h->valuestring : "(unpublished)");
      }
      if (cJSON_GetArraySize(arr) == 0) printf("(none)\n");
    }
    cJSON_Delete(arr);
    return 0;
  }
  return usage(NULL);
}
