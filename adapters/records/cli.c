/*
** adapters/records/cli.c -- `ravand records`:
**
**   ravand records load DIR [--replace]     CSV files into the records store
**   ravand records generate N DIR [--seed S] [--feed M]
**                                           demo/test data (and a registry file)
**   ravand records show NATIONAL_ID         person, dependents, benefits
**   ravand records query JSON               one adapter request, e.g.
**       '{"op":"summary","national_id":"...","before":"1403/05/12","months":60}'
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "records/records.h"
#include "common/util.h"
#include "core/json.h"
#include "runtime/engine.h"

static int usage(const char *msg){
  if (msg) fprintf(stderr, "ravand: %s\n", msg);
  fprintf(stderr,
    "usage: ravand records load DIR [--replace]\n"
    "       ravand records generate N DIR [--seed S] [--feed M]\n"
    "       ravand records show NATIONAL_ID | query JSON\n");
  return 2;
}

static double now_s(void){ return rv_mono_ms() / 1000.0; }

static int query(const rv_cli_env *env, cJSON *req){
  rv_clock clk;
  rv_engine *e;
  rv_records r;
  rv_err err;
  cJSON *res;
  int rc = rv_cli_open(env, &clk, &e);
  if (rc != 0) return rc;
  rv_records_sqlite(&r, rv_engine_store(e));
  if (rv_records_query(&r, req, &res, &err) != RV_OK) {
    rv_cli_close(e);
    fprintf(stderr, "ravand: %s\n", err.msg);
    return 1;
  }
  rv_cli_close(e);
  rv_cli_print_json(res);
  cJSON_Delete(res);
  return 0;
}

int rv_records_cli(const rv_cli_env *env, int argc, char **argv){
  bool bad = false;
  const char *seed = rv_cli_opt(&argc, argv, "--seed", &bad);
  const char *feed = rv_cli_opt(&argc, argv, "--feed", &bad);
  bool replace = rv_cli_flag(&argc, argv, "--replace");
  const char *sub = argc > 0 ? argv[0] : NULL;
  rv_err err;
  cJSON *rep = NULL;
  int rc;

  if (bad || !rv_cli_no_unknown(argc, argv)) return 2;
  if (sub == NULL) return usage("records needs load, generate, show or query");
  if (strcmp(sub, "generate") == 0) {
    char *end;
    long long n = argc == 3 ? strtoll(argv[1], &end, 10) : -1;
    unsigned long long s = seed ? strtoull(seed, NULL, 10) : 1;
    long long m = feed ? atoll(feed) : 0;
    double t0 = now_s();
    if (argc != 3 || *end || n < 0) return usage("records generate needs N and DIR");
    if (rv_records_generate_feed(n, m, s, argv[2], &rep, &err) != RV_OK) {
      fprintf(stderr, "ravand: %s\n", err.msg);
      return 1;
    }
    cJSON_AddNumberToObject(rep, "seconds", now_s() - t0);
    if (env->json) rv_cli_print_json(rep);
    else printf("generated %lld persons in %s (seed %llu) in %.1f s: %lld contribution spans,"
                " %lld dependents, %lld statement months, %lld benefits%s\n", n, argv[2], s,
                now_s() - t0, (long long)rv_json_int(rep, "contributions.csv", 0),
                (long long)rv_json_int(rep, "dependents.csv", 0),
                (long long)rv_json_int(rep, "statements.csv", 0),
                (long long)rv_json_int(rep, "benefits.csv", 0), m ? ", and marriages.csv" : "");
    cJSON_Delete(rep);
    return 0;
  }
  if (strcmp(sub, "load") == 0) {
    rv_clock clk;
    rv_engine *e;
    double t0 = now_s();
    if (argc != 2) return usage("records load needs DIR");
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) return rc;
    if (rv_records_load(rv_engine_store(e), argv[1], replace, rv_clock_now(rv_engine_clock(e)),
                        &rep, &err) != RV_OK) {
      rv_cli_close(e);
      fprintf(stderr, "ravand: %s\n", err.msg);
      return 1;
    }
    rv_cli_close(e);
    cJSON_AddNumberToObject(rep, "seconds", now_s() - t0);
    if (env->json) rv_cli_print_json(rep);
    else {
      const cJSON *f, *x;
      printf("loaded %s in %.1f s\n", argv[1], now_s() - t0);
      cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(rep, "files"))
        printf("  %-18s %10lld rows loaded, %lld rejected\n", f->string,
               (long long)rv_json_int(f, "loaded", 0), (long long)rv_json_int(f, "rejected", 0));
      cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(rep, "issues"))
        printf("  %s line %lld: %s\n", rv_json_str(x, "file"), (long long)rv_json_int(x, "line", 0),
               rv_json_str(x, "reason"));
      if (rv_json_int(rep, "issues_total", 0) > cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rep, "issues")))
        printf("  ... %lld rejected rows in all\n", (long long)rv_json_int(rep, "issues_total", 0));
    }
    rc = rv_json_int(rep, "issues_total", 0) > 0 ? 1 : 0;
    cJSON_Delete(rep);
    return rc;
  }
  if (strcmp(sub, "show") == 0) {
    cJSON *req = cJSON_CreateObject(), *batch;
    rv_clock clk;
    rv_engine *e;
    rv_records r;
    static const char *const ops[] = { "person", "dependents", "benefits", "contributions" };
    if (argc != 2) { cJSON_Delete(req); return usage("records show needs a national ID"); }
    if ((rc = rv_cli_open(env, &clk, &e)) != 0) { cJSON_Delete(req); return rc; }
    rv_records_sqlite(&r, rv_engine_store(e));
    cJSON_AddStringToObject(req, "national_id", argv[1]);
    cJSON_AddStringToObject(req, "op", "person");
    batch = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
      cJSON *res;
      cJSON_ReplaceItemInObject(req, "op", cJSON_CreateString(ops[i]));
      if (rv_records_query(&r, req, &res, &err) != RV_OK) {
        fprintf(stderr, "ravand: %s\n", err.msg);
        cJSON_Delete(req); cJSON_Delete(batch); rv_cli_close(e);
        return 1;
      }
      if (i == 0) cJSON_AddItemToObject(batch, "found", cJSON_Duplicate(cJSON_GetObjectItem(res, "found"), 1));
      {
        cJSON *v = cJSON_DetachItemFromObject(res, ops[i]);
        if (v) cJSON_AddItemToObject(batch, ops[i], v);
      }
      cJSON_Delete(res);
    }
    rv_cli_close(e);
    rv_cli_print_json(batch);
    rc = cJSON_IsTrue(cJSON_GetObjectItem(batch, "found")) ? 0 : 1;
    cJSON_Delete(batch);
    cJSON_Delete(req);
    return rc;
  }
  if (strcmp(sub, "query") == 0) {
    cJSON *req;
    if (argc != 2) return usage("records query needs a JSON request");
    req = rv_json_parse(argv[1]);
    if (!cJSON_IsObject(req)) { cJSON_Delete(req); return usage("the request must be a JSON object"); }
    rc = query(env, req);
    cJSON_Delete(req);
    return rc;
  }
  return usage(NULL);
}
