/*
** adapters/bank/cli.c -- `ravand bank`:
**
**   ravand bank import FILE [--ttl DURATION]
**       apply a payment-confirmation file and print the reconciliation
**       report (--json: the report as JSON). Exit 0 when the file was
**       applied or had been applied before (lines may still be rejected:
**       see the report); 1 when the file was refused as a whole.
**   ravand bank list            every import with its counts
**   ravand bank report ID       one import's report again
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bank/bank.h"
#include "common/util.h"
#include "cal/cal.h"
#include "core/json.h"
#include "cli.h"

static int usage(const char *msg){
  if (msg) fprintf(stderr, "ravand: %s\n", msg);
  fprintf(stderr, "usage: ravand bank import FILE [--ttl DURATION] | list | report ID\n");
  return 2;
}

#define MAX_SHOWN 200      /* lines listed in the text report; --json has all */

static void print_report(const cJSON *r){
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "counts");
  const cJSON *lines = cJSON_GetObjectItemCaseSensitive(r, "lines"), *l;
  cJSON *issues = cJSON_CreateArray();
  printf("bank import %lld of %s (sha256 %.16s…): %lld lines%s\n",
         (long long)rv_json_int(r, "import", 0), rv_json_str(r, "file") ? rv_json_str(r, "file") : "-",
         rv_json_str(r, "sha256") ? rv_json_str(r, "sha256") : "-", (long long)rv_json_int(r, "total", 0),
         rv_json_bool(r, "already_imported", false) ? "; imported before, nothing applied now" : "");
  printf("  correlated %lld, started %lld, buffered %lld, duplicate %lld, mismatched %lld, rejected %lld\n",
         (long long)rv_json_int(c, "correlated", 0), (long long)rv_json_int(c, "started", 0),
         (long long)rv_json_int(c, "buffered", 0), (long long)rv_json_int(c, "duplicate", 0),
         (long long)rv_json_int(c, "mismatched", 0), (long long)rv_json_int(c, "rejected", 0));
  printf("  applied %lld Rials\n", (long long)rv_json_int(r, "applied_rials", 0));
  int shown = 0, more = 0;
  cJSON_ArrayForEach(l, lines) {
    const char *o = rv_json_str(l, "outcome");
    if (o == NULL || strcmp(o, "correlated") == 0 || strcmp(o, "started") == 0) continue;
    if (shown < MAX_SHOWN) { cJSON_AddItemToArray(issues, cJSON_Duplicate(l, 1)); shown++; }
    else more++;
  }
  if (shown > 0) {
    printf("lines to look at:\n");
    cli_table(issues, "line,outcome,payment_id,amount_rials,bank_ref,instance,reason");
    if (more) printf("... and %d more (ravand --json bank report %lld)\n", more,
                     (long long)rv_json_int(r, "import", 0));
  }
  cJSON_Delete(issues);
}

int rv_bank_cli(const rv_cli_env *env, int argc, char **argv){
  bool bad = false;
  const char *ttl = rv_cli_opt(&argc, argv, "--ttl", &bad);
  const char *sub = argc > 0 ? argv[0] : NULL;
  rv_bank_opts o = {0};
  cJSON *rep = NULL;
  rv_clock clk;
  rv_engine *e;
  rv_err err;
  rv_status st;
  int rc;

  if (bad || !rv_cli_no_unknown(argc, argv)) return 2;
  if (sub == NULL) return usage("bank needs import, list or report");
  if (ttl) {
    rv_duration d;
    if (rv_duration_parse(ttl, &d, &err) != RV_OK) { fprintf(stderr, "ravand: --ttl: %s\n", err.msg); return 2; }
    o.ttl_ms = rv_duration_ms(&d);
  }
  if (strcmp(sub, "import") == 0) {
    if (argc != 2) return usage("bank import needs one FILE");
  } else if (strcmp(sub, "report") == 0) {
    if (argc != 2 || atoll(argv[1]) <= 0) return usage("bank report needs an import id");
  } else if (strcmp(sub, "list") == 0) {
    if (argc != 1) return usage("bank list takes no arguments");
  } else return usage("bank: use import, list or report");

  if ((rc = rv_cli_open(env, &clk, &e)) != 0) return rc;
  if (sub[0] == 'i') st = rv_bank_import_file(e, argv[1], &o, &rep, &err);
  else if (sub[0] == 'r') st = rv_bank_report(e, atoll(argv[1]), &rep, &err);
  else st = rv_bank_list(e, &rep, &err);
  if (st != RV_OK) {
    fprintf(stderr, "ravand: %s\n", err.msg);
    rv_cli_close(e);
    return 1;
  }
  if (env->json) rv_cli_print_json(rep);
  else if (sub[0] == 'l') {
    cJSON *row;
    cJSON_ArrayForEach(row, rep) {          /* flatten the counts into columns */
      cJSON *c = cJSON_DetachItemFromObjectCaseSensitive(row, "counts"), *x;
      cJSON_ArrayForEach(x, c)              /* "started" would print as a time */
        cJSON_AddNumberToObject(row, strcmp(x->string, "started") == 0 ? "new_instances" : x->string,
                                x->valuedouble);
      cJSON_Delete(c);
    }
    cli_table(rep, "id,source,file,total,correlated,new_instances,buffered,duplicate,"
                   "mismatched,rejected,applied_rials");
  }
  else print_report(rep);
  cJSON_Delete(rep);
  rv_cli_close(e);
  return 0;
}
