/*
** adapters/sms/cli.c -- `ravand sms`:
**
**   ravand sms log [--instance ID] [--state S] [--limit N] [--offset N]
**       the SMS delivery log (recipients masked), oldest first
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sms/sms.h"
#include "common/util.h"
#include "runtime/engine.h"
#include "cli.h"

static int usage(const char *msg){
  if (msg) fprintf(stderr, "ravand: %s\n", msg);
  fprintf(stderr, "usage: ravand sms log [--instance ID] [--state sent|retrying|uncertain|failed]"
                  " [--limit N] [--offset N]\n");
  return 2;
}

int rv_sms_cli(const rv_cli_env *env, int argc, char **argv){
  bool bad = false;
  const char *inst = rv_cli_opt(&argc, argv, "--instance", &bad);
  const char *state = rv_cli_opt(&argc, argv, "--state", &bad);
  const char *limit = rv_cli_opt(&argc, argv, "--limit", &bad);
  const char *offset = rv_cli_opt(&argc, argv, "--offset", &bad);
  cJSON *f, *rows = NULL;
  rv_clock clk;
  rv_engine *e;
  rv_err err;
  int rc;

  if (bad || !rv_cli_no_unknown(argc, argv)) return 2;
  if (argc > 1 || (argc == 1 && strcmp(argv[0], "log") != 0)) return usage("sms: use 'log'");
  f = cJSON_CreateObject();
  if (inst) cJSON_AddNumberToObject(f, "instance", atof(inst));
  if (state) cJSON_AddStringToObject(f, "state", state);
  if (limit) cJSON_AddNumberToObject(f, "limit", atoi(limit));
  if (offset) cJSON_AddNumberToObject(f, "offset", atoi(offset));
  if ((rc = rv_cli_open(env, &clk, &e)) != 0) { cJSON_Delete(f); return rc; }
  if (rv_sms_log_json(rv_engine_store(e), f, &rows, &err) != RV_OK) {
    fprintf(stderr, "ravand: %s\n", err.msg);
    cJSON_Delete(f);
    rv_cli_close(e);
    return 1;
  }
  if (env->json) rv_cli_print_json(rows);
  else cli_table(rows, "id,instance_id,element_id,recipient,state,attempts,gateway_id,sent_at,last_error,text");
  cJSON_Delete(rows);
  cJSON_Delete(f);
  rv_cli_close(e);
  return 0;
}
