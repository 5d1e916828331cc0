/*
** main.c -- the `ravand` command: argument parsing and wiring.
**
**   ravand lint [--scripts DIR] [--json] FILE...
**   ravand deploy [--scripts DIR] FILE...
**   ravand definitions
**   ravand start PROCESS [VARS-JSON] [--version N] [--business-key K] [--request-key K]
**   ravand instances [list] [--status S] [--process P] [--business-key K] [--limit N] [--offset N]
**   ravand instances show ID
**   ravand tasks [list] [--branch B] [--county C] [--group G] [--element E] [--instance ID] [--all]
**   ravand tasks complete ID [DATA-JSON] [--actor NAME]
**   ravand message NAME [PAYLOAD-JSON] [--key K] [--id MESSAGE-ID] [--ttl DURATION]
**   ravand signal NAME [PAYLOAD-JSON]
**   ravand cancel ID
**   ravand incidents [list] [--all] | ravand incidents retry ID
**   ravand tick            fire due timers and run due jobs, then exit
**   ravand record ID... [--process P] [-o FILE | --dir DIR]
**   ravand replay FILE... [--against FILE.bpmn [--scripts DIR]] [--emit FILE]
**   ravand test DIR...     process tests and recordings, with coverage
**   ravand serve [--listen HOST:PORT] [--max-body SIZE] [--max-conns N] [--rate N] ...
**   ravand principal add|list|token|tokens|revoke|disable|enable ...   (api/auth.c)
**   ravand audit [list|verify]                                          (api/audit.c)
**   ravand export payroll|finance|again|list|report ...   (adapters/finance/cli.c)
**   ravand feed import|list|report ...                    (adapters/registry/cli.c)
**   ravand records load|generate|show|query ...           (adapters/records/cli.c)
**   ravand sms log [--instance ID] [--state S]            (adapters/sms/cli.c)
**   ravand bank import FILE | list | report ID            (adapters/bank/cli.c)
** Global: --db PATH (default ./ravand.db), --json, --now TIME (a fixed
** virtual clock: ISO 8601 instant or epoch ms; for tests and replays),
** --config FILE (adapter settings, e.g. the SMS gateway, read by tick and
** serve; default $RAVAND_CONFIG; docs/adapters.md).
** Exit codes: 0 ok, 1 the command failed, 2 bad usage.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include "runtime/engine.h"
#include "lint/lint.h"
#include "cal/cal.h"
#include "core/json.h"
#include "cli.h"
#include "api/api.h"
#include "adapter.h"
#include "common/util.h"
#include "sms/sms.h"
#include "bank/bank.h"
#include "journal/journal.h"
#include "store/store.h"
#include "core/mem.h"

typedef struct args {
  int    n;
  char **v;
  const char *db;
  bool   json;
  const char *now;
  const char *config;    /* --config FILE (adapters; else $RAVAND_CONFIG) */
} args;

static int usage(const char *msg){
  if (msg) fprintf(stderr, "ravand: %s\n", msg);
  fprintf(stderr,
    "usage: ravand [--db PATH] [--json] [--config FILE] COMMAND ...\n"
    "commands:\n"
    "  lint [--scripts DIR] FILE...          check process files\n"
    "  deploy [--scripts DIR] FILE...        deploy process files with their Lua rules\n"
    "  definitions                           list deployed versions\n"
    "  start PROCESS [JSON] [--version N] [--business-key K] [--request-key K]\n"
    "  instances [list|show ID] [--status S] [--process P] [--business-key K] [--limit N]\n"
    "  tasks [list|complete ID [JSON]] [--branch B] [--county C] [--group G] [--actor A]\n"
    "  message NAME [JSON] [--key K] [--id MESSAGE-ID] [--ttl DURATION]\n"
    "  signal NAME [JSON]\n"
    "  cancel ID\n"
    "  incidents [list|retry ID] [--all]\n"
    "  tick                                  fire due timers and run due jobs once\n"
    "  backup DEST [--pepper FILE]           a consistent copy of the database (also while serving)\n"
    "  record ID... [--process P] [-o FILE | --dir DIR]   write recordings of instances\n"
    "  replay FILE... [--against FILE.bpmn [--scripts DIR]] [--emit FILE]\n"
    "                                        replay recordings, or the impact of a change\n"
    "  test DIR...                           run process tests and recordings, with coverage\n"
    "  serve [--listen HOST:PORT] [LIMITS]   serve the HTTP API, timers and jobs (default 127.0.0.1:8080)\n"
    "  principal add|list|token|tokens|revoke|disable|enable ...   API principals and tokens\n"
    "  audit [list [--limit N] | verify [--anchor ID:HASH]]   the API audit log\n"
    "  export payroll|finance [--period YYYY-MM] [--dir DIR] | again BATCH | list | report BATCH\n"
    "  feed import FILE [--all-spouses] [--chunk N] | list | report ID\n"
    "  records load DIR [--replace] | generate N DIR [--seed S] [--feed M] | show NID | query JSON\n"
    "  sms log [--instance ID] [--state S]   SMS delivery log (tick/serve take --config FILE)\n"
    "  bank import FILE [--ttl DURATION] | list | report ID   bank payment confirmations\n");
  fputs(rv_api_opt_usage, stderr);
  return 2;
}

/* Remove "--name VALUE" from a and return VALUE (NULL when absent). */
static const char *take_opt(args *a, const char *name, bool *bad){
  for (int i = 0; i < a->n; i++) {
    if (strcmp(a->v[i], name) != 0) continue;
    if (i + 1 >= a->n) { fprintf(stderr, "ravand: %s needs a value\n", name); *bad = true; return NULL; }
    {
      const char *v = a->v[i + 1];
      memmove(&a->v[i], &a->v[i + 2], sizeof(char *) * (size_t)(a->n - i - 2));
      a->n -= 2;
      return v;
    }
  }
  return NULL;
}
static bool take_flag(args *a, const char *name){
  for (int i = 0; i < a->n; i++) {
    if (strcmp(a->v[i], name) == 0) {
      memmove(&a->v[i], &a->v[i + 1], sizeof(char *) * (size_t)(a->n - i - 1));
      a->n--;
      return true;
    }
  }
  return false;
}
static bool no_unknown_opts(args *a){
  for (int i = 0; i < a->n; i++)
    if (strncmp(a->v[i], "--", 2) == 0) { fprintf(stderr, "ravand: unknown option '%s'\n", a->v[i]); return false; }
  return true;
}
static bool parse_id(const char *s, int64_t *out){
  char *end;
  long long v;
  if (s == NULL) return false;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end || v <= 0) { fprintf(stderr, "ravand: '%s' is not an id\n", s); return false; }
  *out = v;
  return true;
}
static cJSON *parse_obj(const char *s, const char *what, bool *bad){
  cJSON *o;
  if (s == NULL) return NULL;
  o = rv_json_parse(s);
  if (!cJSON_IsObject(o)) {
    fprintf(stderr, "ravand: %s must be a JSON object, e.g. '{\"age\": 61}'\n", what);
    cJSON_Delete(o);
    *bad = true;
    return NULL;
  }
  return o;
}

static rv_clock vclock;

/* The engine bound to the adapters (ledger and records use its store). */
static int open_engine(const args *a, rv_engine **e){
  rv_cli_env env = { a->db, a->now, false };
  return rv_cli_open(&env, &vclock, e);
}

static int fail(rv_engine *e, const rv_err *err){
  fprintf(stderr, "ravand: %s\n", err->msg);
  rv_engine_close(e);
  return 1;
}

/*--- commands ---*/

static int cmd_deploy(args *a){
  bool bad = false;
  const char *scripts = take_opt(a, "--scripts", &bad);
  rv_engine *e;
  rv_err err;
  cJSON *rep = NULL;
  int rc;
  if (bad || !no_unknown_opts(a)) return 2;
  if (a->n < 1) return usage("deploy needs at least one BPMN file");
  if (scripts == NULL && access("scripts", F_OK) == 0) scripts = "scripts";
  if ((rc = open_engine(a, &e)) != 0) return rc;
  if (rv_engine_deploy(e, (const char *const *)a->v, a->n, scripts, &rep, &err) != RV_OK) {
    if (a->json && rep) cli_json(rep);
    cJSON_Delete(rep);
    return fail(e, &err);
  }
  if (a->json) cli_json(rep);
  else {
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(rep, "processes"))
      printf("%s: version %d%s\n", rv_json_str(p, "id"), (int)rv_json_int(p, "version", 0),
             rv_json_bool(p, "new", false) ? " (new)" : " (unchanged)");
  }
  cJSON_Delete(rep);
  rv_engine_close(e);
  return 0;
}

static int cmd_definitions(args *a){
  rv_engine *e;
  rv_err err;
  cJSON *rows;
  int rc;
  if (!no_unknown_opts(a)) return 2;
  if ((rc = open_engine(a, &e)) != 0) return rc;
  if (rv_engine_definitions_json(e, &rows, &err) != RV_OK) return fail(e, &err);
  if (a->json) cli_json(rows); else cli_table(rows, "id,process,version,name,file,created");
  cJSON_Delete(rows);
  rv_engine_close(e);
  return 0;
}

static int cmd_start(args *a){
  bool bad = false;
  const char *ver = take_opt(a, "--version", &bad), *bkey = take_opt(a, "--business-key", &bad);
  const char *rkey = take_opt(a, "--request-key", &bad);
  cJSON *vars;
  rv_engine *e;
  rv_err err;
  int64_t id;
  int rc, version = 0;
  if (bad || !no_unknown_opts(a)) return 2;
  if (a->n < 1 || a->n > 2) return usage("start needs PROCESS and optionally a JSON object of variables");
  if (ver) { version = atoi(ver); if (version <= 0) return usage("--version must be a positive number"); }
  vars = parse_obj(a->n > 1 ? a->v[1] : NULL, "variables", &bad);
  if (bad) return 2;
  if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(vars); return rc; }
  if (rv_engine_start_keyed(e, rkey, a->v[0], version, vars, bkey, &id, &err) != RV_OK) {
    cJSON_Delete(vars);
    return fail(e, &err);
  }
  cJSON_Delete(vars);
  if (a->json) printf("{\"instance\": %lld}\n", (long long)id);
  else printf("started instance %lld\n", (long long)id);
  rv_engine_close(e);
  return 0;
}

static void add_str(cJSON *f, const char *k, const char *v){ if (v) cJSON_AddStringToObject(f, k, v); }

static int print_instance(const cJSON *o){
  char t[40];
  const cJSON *x;
  printf("instance %lld  %s v%d  %s", (long long)rv_json_int(o, "id", 0), rv_json_str(o, "process"),
         (int)rv_json_int(o, "version", 0), rv_json_str(o, "status"));
  if (rv_json_str(o, "status_text")) printf("  «%s»", rv_json_str(o, "status_text"));
  printf("\n  started %s", cli_time(rv_json_int(o, "started", 0), t, sizeof t));
  if (rv_json_str(o, "business_key")) printf("  business key %s", rv_json_str(o, "business_key"));
  printf("\n\nwaiting:\n");
  cli_table(cJSON_GetObjectItemCaseSensitive(o, "tokens"), "element,name,type,state");
  x = cJSON_GetObjectItemCaseSensitive(o, "tasks");
  if (cJSON_GetArraySize(x)) { printf("\ntasks:\n"); cli_table(x, "id,element,state,assignee,branch,county,due"); }
  x = cJSON_GetObjectItemCaseSensitive(o, "timers");
  if (cJSON_GetArraySize(x)) { printf("\ntimers:\n"); cli_table(x, "id,element,due"); }
  x = cJSON_GetObjectItemCaseSensitive(o, "jobs");
  if (cJSON_GetArraySize(x)) { printf("\njobs:\n"); cli_table(x, "id,element,adapter,state,attempts,next_try,last_error"); }
  x = cJSON_GetObjectItemCaseSensitive(o, "incidents");
  if (cJSON_GetArraySize(x)) { printf("\nincidents:\n"); cli_table(x, "id,element,kind,state,message"); }
  printf("\nvariables:\n");
  {
    char *s = cJSON_Print(cJSON_GetObjectItemCaseSensitive(o, "variables"));
    printf("%s\n", s);
    cJSON_free(s);
  }
  printf("\nhistory:\n");
  cli_table(cJSON_GetObjectItemCaseSensitive(o, "history"), "at,event,element,detail");
  return 0;
}

static int cmd_instances(args *a){
  bool bad = false;
  cJSON *f = cJSON_CreateObject(), *rows = NULL;
  rv_engine *e;
  rv_err err;
  int rc;
  const char *sub = a->n > 0 && strncmp(a->v[0], "--", 2) != 0 ? a->v[0] : "list";
  if (strcmp(sub, "show") == 0) {
    int64_t id;
    cJSON_Delete(f);
    if (!no_unknown_opts(a)) return 2;
    if (a->n != 2 || !parse_id(a->v[1], &id)) return usage("instances show needs an instance id");
    if ((rc = open_engine(a, &e)) != 0) return rc;
    if (rv_engine_instance_json(e, id, &rows, &err) != RV_OK) return fail(e, &err);
    if (a->json) cli_json(rows); else print_instance(rows);
    cJSON_Delete(rows);
    rv_engine_close(e);
    return 0;
  }
  if (strcmp(sub, "list") != 0) { cJSON_Delete(f); return usage("instances: use 'list' or 'show ID'"); }
  add_str(f, "status", take_opt(a, "--status", &bad));
  add_str(f, "process", take_opt(a, "--process", &bad));
  add_str(f, "business_key", take_opt(a, "--business-key", &bad));
  {
    const char *l = take_opt(a, "--limit", &bad), *o = take_opt(a, "--offset", &bad);
    if (l) cJSON_AddNumberToObject(f, "limit", atoi(l));
    if (o) cJSON_AddNumberToObject(f, "offset", atoi(o));
  }
  if (bad || !no_unknown_opts(a)) { cJSON_Delete(f); return 2; }
  if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(f); return rc; }
  if (rv_engine_instances_json(e, f, &rows, &err) != RV_OK) { cJSON_Delete(f); return fail(e, &err); }
  if (a->json) cli_json(rows); else cli_table(rows, "id,process,version,status,status_text,business_key,started");
  cJSON_Delete(rows);
  cJSON_Delete(f);
  rv_engine_close(e);
  return 0;
}

static int cmd_tasks(args *a){
  bool bad = false;
  rv_engine *e;
  rv_err err;
  int rc;
  const char *sub = a->n > 0 && strncmp(a->v[0], "--", 2) != 0 ? a->v[0] : "list";
  if (strcmp(sub, "complete") == 0) {
    const char *actor = take_opt(a, "--actor", &bad);
    int64_t id;
    cJSON *data;
    if (bad || !no_unknown_opts(a)) return 2;
    if (a->n < 2 || a->n > 3 || !parse_id(a->v[1], &id)) return usage("tasks complete needs a task id");
    data = parse_obj(a->n > 2 ? a->v[2] : NULL, "task data", &bad);
    if (bad) return 2;
    if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(data); return rc; }
    if (rv_engine_complete_task(e, id, data, actor ? actor : "cli", &err) != RV_OK) {
      cJSON_Delete(data);
      return fail(e, &err);
    }
    cJSON_Delete(data);
    if (a->json) printf("{\"completed\": %lld}\n", (long long)id);
    else printf("completed task %lld\n", (long long)id);
    rv_engine_close(e);
    return 0;
  }
  if (strcmp(sub, "list") == 0) {
    cJSON *f = cJSON_CreateObject(), *rows;
    const char *inst;
    add_str(f, "branch", take_opt(a, "--branch", &bad));
    add_str(f, "county", take_opt(a, "--county", &bad));
    add_str(f, "group", take_opt(a, "--group", &bad));
    add_str(f, "element", take_opt(a, "--element", &bad));
    add_str(f, "process", take_opt(a, "--process", &bad));
    add_str(f, "state", take_opt(a, "--state", &bad));
    inst = take_opt(a, "--instance", &bad);
    if (inst) cJSON_AddNumberToObject(f, "instance", atof(inst));
    if (take_flag(a, "--all")) cJSON_AddBoolToObject(f, "all", true);
    if (bad || !no_unknown_opts(a)) { cJSON_Delete(f); return 2; }
    if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(f); return rc; }
    if (rv_engine_tasks_json(e, f, &rows, &err) != RV_OK) { cJSON_Delete(f); return fail(e, &err); }
    if (a->json) cli_json(rows);
    else cli_table(rows, "id,instance,process,element,name,candidate_groups,branch,county,status_text,due");
    cJSON_Delete(rows);
    cJSON_Delete(f);
    rv_engine_close(e);
    return 0;
  }
  return usage("tasks: use 'list' or 'complete ID [JSON]'");
}

static int cmd_message(args *a){
  bool bad = false;
  const char *key = take_opt(a, "--key", &bad), *mid = take_opt(a, "--id", &bad);
  const char *ttl = take_opt(a, "--ttl", &bad);
  int64_t ttl_ms = -1;
  cJSON *payload, *res = NULL;
  rv_engine *e;
  rv_err err;
  int rc;
  if (bad || !no_unknown_opts(a)) return 2;
  if (a->n < 1 || a->n > 2) return usage("message needs NAME and optionally a JSON payload");
  if (ttl) {
    rv_duration d;
    if (rv_duration_parse(ttl, &d, &err) != RV_OK) { fprintf(stderr, "ravand: --ttl: %s\n", err.msg); return 2; }
    ttl_ms = rv_duration_ms(&d);
  }
  payload = parse_obj(a->n > 1 ? a->v[1] : NULL, "message payload", &bad);
  if (bad) return 2;
  if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(payload); return rc; }
  if (rv_engine_correlate(e, a->v[0], key, payload, mid, ttl_ms, &res, &err) != RV_OK) {
    cJSON_Delete(payload);
    return fail(e, &err);
  }
  if (a->json) cli_json(res);
  else {
    printf("message %s: %s", a->v[0], rv_json_str(res, "result"));
    if (rv_json_int(res, "instance", 0)) printf(" (instance %lld)", (long long)rv_json_int(res, "instance", 0));
    printf("\n");
  }
  cJSON_Delete(res);
  cJSON_Delete(payload);
  rv_engine_close(e);
  return 0;
}

static int cmd_signal(args *a){
  bool bad = false;
  cJSON *payload;
  rv_engine *e;
  rv_err err;
  int rc, n = 0;
  if (!no_unknown_opts(a)) return 2;
  if (a->n < 1 || a->n > 2) return usage("signal needs NAME and optionally a JSON payload");
  payload = parse_obj(a->n > 1 ? a->v[1] : NULL, "signal payload", &bad);
  if (bad) return 2;
  if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(payload); return rc; }
  if (rv_engine_signal(e, a->v[0], payload, &n, &err) != RV_OK) { cJSON_Delete(payload); return fail(e, &err); }
  cJSON_Delete(payload);
  if (a->json) printf("{\"received\": %d}\n", n); else printf("signal %s received by %d\n", a->v[0], n);
  rv_engine_close(e);
  return 0;
}

static int cmd_cancel(args *a){
  int64_t id;
  rv_engine *e;
  rv_err err;
  int rc;
  if (!no_unknown_opts(a)) return 2;
  if (a->n != 1 || !parse_id(a->v[0], &id)) return usage("cancel needs an instance id");
  if ((rc = open_engine(a, &e)) != 0) return rc;
  if (rv_engine_cancel(e, id, &err) != RV_OK) return fail(e, &err);
  printf(a->json ? "{\"canceled\": %lld}\n" : "canceled instance %lld\n", (long long)id);
  rv_engine_close(e);
  return 0;
}

static int cmd_incidents(args *a){
  rv_engine *e;
  rv_err err;
  int rc;
  const char *sub = a->n > 0 && strncmp(a->v[0], "--", 2) != 0 ? a->v[0] : "list";
  if (strcmp(sub, "retry") == 0) {
    int64_t id;
    if (!no_unknown_opts(a)) return 2;
    if (a->n != 2 || !parse_id(a->v[1], &id)) return usage("incidents retry needs an incident id");
    if ((rc = open_engine(a, &e)) != 0) return rc;
    if (rv_engine_retry_incident(e, id, &err) != RV_OK) return fail(e, &err);
    printf(a->json ? "{\"retried\": %lld}\n" : "incident %lld resolved; the element runs again\n", (long long)id);
    rv_engine_close(e);
    return 0;
  }
  if (strcmp(sub, "list") == 0) {
    cJSON *f = cJSON_CreateObject(), *rows;
    if (take_flag(a, "--all")) cJSON_AddBoolToObject(f, "all", true);
    if (!no_unknown_opts(a)) { cJSON_Delete(f); return 2; }
    if ((rc = open_engine(a, &e)) != 0) { cJSON_Delete(f); return rc; }
    if (rv_engine_incidents_json(e, f, &rows, &err) != RV_OK) { cJSON_Delete(f); return fail(e, &err); }
    if (a->json) cli_json(rows); else cli_table(rows, "id,instance,element,kind,state,created,message");
    cJSON_Delete(rows);
    cJSON_Delete(f);
    rv_engine_close(e);
    return 0;
  }
  return usage("incidents: use 'list' or 'retry ID'");
}

static int cmd_tick(args *a){
  rv_engine *e;
  rv_err err;
  int rc;
  const rv_engine_stats *s;
  if (!no_unknown_opts(a)) return 2;
  if ((rc = open_engine(a, &e)) != 0) return rc;
  if (rv_adapters_configure(a->config, &err) != RV_OK) { rv_adapters_stop(); return fail(e, &err); }
  if (rv_api_load_keys(a->db, NULL, &err) != RV_OK) { rv_adapters_stop(); return fail(e, &err); }  /* inquiry codes */
  rv_engine_drain(e);
  rv_adapters_stop();
  s = rv_engine_stats_get(e);
  if (a->json) printf("{\"commands\": %lld, \"jobs\": %lld}\n", (long long)s->commands, (long long)s->jobs_dispatched);
  else printf("applied %lld commands, dispatched %lld jobs\n", (long long)s->commands, (long long)s->jobs_dispatched);
  rv_engine_close(e);
  return 0;
}

/*--- backup ---*/

/* Copy the token pepper (at most 64 bytes) to a new file dest, 0600, synced.
** 1: copied; 0: there is none at src; -1: failed (err). */
static int copy_pepper(const char *src, const char *dest, rv_err *err){
  unsigned char key[64];
  ssize_t n;
  int fd = open(src, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return 0;
  if (fd < 0) { rv_fail(err, RV_IO, "cannot read the token pepper '%s': %s", src, strerror(errno)); return -1; }
  n = read(fd, key, sizeof key);
  close(fd);
  if (n != 32) { rv_fail(err, RV_IO, "the token pepper '%s' is not 32 bytes", src); return -1; }
  fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) { rv_fail(err, RV_IO, "cannot create '%s': %s", dest, strerror(errno)); return -1; }
  if (write(fd, key, (size_t)n) != n || fsync(fd) != 0) {
    rv_fail(err, RV_IO, "cannot write '%s': %s", dest, strerror(errno));
    close(fd);
    unlink(dest);
    return -1;
  }
  close(fd);
  return 1;
}

/* ravand backup DEST [--pepper FILE]: the database as of one commit, while
** `serve` may be writing it (store/backup.c), and its token pepper beside
** it as DEST.pepper (without it no token or access code of the copy could
** be checked). The pepper is copied first: a DEST that exists is a whole
** backup. */
static int cmd_backup(args *a){
  bool bad = false;
  const char *pepper = take_opt(a, "--pepper", &bad);
  char *src_pepper, *dest_pepper;
  rv_backup_info info;
  rv_err err;
  int had;
  double t0;
  if (bad || !no_unknown_opts(a)) return 2;
  if (a->n != 1 || !*a->v[0]) return usage("backup needs DEST, a file that does not exist");
  src_pepper = pepper ? rv_strdup(pepper) : rv_asprintf("%s.pepper", a->db);
  dest_pepper = rv_asprintf("%s.pepper", a->v[0]);
  t0 = rv_mono_ms();
  had = access(a->v[0], F_OK) == 0 ? -1 : copy_pepper(src_pepper, dest_pepper, &err);
  if (had == -1 && access(a->v[0], F_OK) == 0)
    rv_fail(&err, RV_CONFLICT, "'%s' exists: a backup never overwrites a file", a->v[0]);
  if (had >= 0 && rv_store_backup(a->db, a->v[0], &info, &err) != RV_OK) {
    if (had == 1) unlink(dest_pepper);
    had = -1;
  }
  if (had >= 0 && a->json) {
    printf("{\"backup\": \"%s\", \"bytes\": %lld, \"schema\": %d, \"instances\": %lld, "
           "\"last_command\": %lld, \"integrity\": \"ok\", \"pepper\": %s, \"ms\": %.0f}\n",
           a->v[0], (long long)info.bytes, info.schema, (long long)info.instances,
           (long long)info.last_command, had ? "true" : "false", rv_mono_ms() - t0);
  } else if (had >= 0) {
    printf("backup %s: %lld bytes, schema %d, %lld instances, journal through command %lld, "
           "integrity ok, %.1f s\n", a->v[0], (long long)info.bytes, info.schema,
           (long long)info.instances, (long long)info.last_command, (rv_mono_ms() - t0) / 1000);
    if (had) printf("token pepper copied to %s (keep it with the backup, as secret as the original)\n", dest_pepper);
    else printf("no token pepper at %s: none copied (no API tokens were ever made)\n", src_pepper);
  } else {
    fprintf(stderr, "ravand: %s\n", err.msg);
  }
  rv_free(src_pepper);
  rv_free(dest_pepper);
  return had >= 0 ? 0 : 1;
}

/*--- record / replay / test (journal/) ---*/

static int cmd_record(args *a){
  bool bad = false;
  const char *file = take_opt(a, "-o", &bad), *dir = take_opt(a, "--dir", &bad);
  const char *process = take_opt(a, "--process", &bad);
  int64_t *ids = NULL;
  int n = 0, rc = 0;
  rv_engine *e;
  rv_err err;

  if (bad || !no_unknown_opts(a)) return 2;
  if (a->n == 0 && process == NULL) return usage("record: give instance ids or --process P");
  if (file && dir) return usage("record: -o and --dir exclude each other");
  if ((rc = open_engine(a, &e)) != 0) return rc;
  if (process && rv_journal_roots(e, process, &ids, &n, &err) != RV_OK) { free(ids); return fail(e, &err); }
  for (int i = 0; i < a->n; i++) {
    int64_t id;
    if (!parse_id(a->v[i], &id)) { free(ids); rv_engine_close(e); return 2; }
    ids = realloc(ids, sizeof *ids * (size_t)(n + 1));
    ids[n++] = id;
  }
  if (n > 1 && dir == NULL) { free(ids); rv_engine_close(e); return usage("record: several instances need --dir DIR"); }
  for (int i = 0; i < n && rc == 0; i++) {
    FILE *f = stdout;
    char path[4096];
    if (dir) {
      snprintf(path, sizeof path, "%s/%lld.rec.jsonl", dir, (long long)ids[i]);
      file = path;
    }
    if (file && (f = fopen(file, "w")) == NULL) {
      fprintf(stderr, "ravand: %s: %s\n", file, strerror(errno));
      rc = 1;
      break;
    }
    if (rv_journal_record(e, ids[i], f, &err) != RV_OK) {
      fprintf(stderr, "ravand: instance %lld: %s\n", (long long)ids[i], err.msg);
      rc = 1;
    }
    if (f != stdout) fclose(f);
    if (dir && rc == 0 && !a->json) fprintf(stderr, "ravand: recorded instance %lld in %s\n", (long long)ids[i], path);
  }
  free(ids);
  rv_engine_close(e);
  return rc;
}

static int cmd_replay(args *a){
  bool bad = false;
  const char *against = take_opt(a, "--against", &bad), *scripts = take_opt(a, "--scripts", &bad);
  const char *emit = take_opt(a, "--emit", &bad);
  if (bad || !no_unknown_opts(a)) return 2;
  if (a->n == 0) return usage("replay: give recording files");
  if (scripts && against == NULL) return usage("replay: --scripts goes with --against");
  if (emit) {
    rv_replay_opts o = { against, scripts, emit };
    rv_replay_result r;
    rv_err err;
    if (a->n != 1) return usage("replay: --emit takes one recording");
    if (rv_journal_replay(a->v[0], &o, &r, &err) != RV_OK) {
      fprintf(stderr, "ravand: %s\n", err.msg);
      free(r.report);
      return 1;
    }
    printf("%s: %s%s%s\n", a->v[0], rv_replay_verdict_name(r.verdict), r.where[0] ? ": " : "", r.where);
    free(r.report);
    return r.verdict == RV_REPLAY_IDENTICAL ? 0 : 1;
  }
  if (against) return rv_journal_impact_main(against, scripts, (const char *const *)a->v, a->n, a->json, stdout);
  return rv_journal_replay_main((const char *const *)a->v, a->n, a->json, stdout);
}

static int cmd_test(args *a){
  if (!no_unknown_opts(a)) return 2;
  if (a->n == 0) return usage("test: give directories of process tests");
  return rv_journal_test_main((const char *const *)a->v, a->n, a->json, stdout);
}

/*--- serve ---*/

static struct event_base *serve_base;
/* Stop: no new requests; replies that wait for the WAL sync are synced and
** sent; then a moment for them to be written out before the loop ends. */
static void on_signal(evutil_socket_t fd, short what, void *arg){
  struct timeval grace = { 0, 200 * 1000 };
  (void)fd; (void)what;
  rv_api_quiesce(arg);
  event_base_loopexit(serve_base, &grace);
}
/* Every 200 ms: fire what fell due and hand out due jobs. While timers
** keep firing -- a month's end, when tens of thousands fall due at one
** instant -- the next batch follows at once, as an event of its own at the
** loop's lowest priority: libevent runs an active event of a lower priority
** only when none of a higher one is active, so every step of a request
** (read, batch, sync, reply) goes before the next batch, and each batch ends
** after 20 ms (up to 1,000 timers a transaction). At a fixed 200 ms the burst
** was held to 5,000 timers a second; with the next batch of 1,000 at once at
** the sockets' priority no request was answered until the burst was over
** (docs/performance.md, "Session 11"; tests/integration/timer_burst.py). */
#define BURST_BATCH_MS 20
#define PRIO_COUNT     3          /* 0 unused, 1 everything (the default), 2 the burst */
static struct event *burst_ev;
static void on_tick(evutil_socket_t fd, short what, void *arg){
  rv_engine *e = arg;
  int fired;
  (void)fd; (void)what;
  fired = rv_engine_fire_due_within(e, BURST_BATCH_MS);
  rv_engine_dispatch_jobs(e);
  if (fired > 0 && burst_ev && !event_pending(burst_ev, EV_TIMEOUT, NULL)) {
    struct timeval now = {0, 0};
    event_add(burst_ev, &now);
  }
}
static int cmd_serve(args *a){
  bool bad = false;
  const char *listen = take_opt(a, "--listen", &bad);
  char host[256] = "127.0.0.1";
  int port = 8080;
  rv_engine_cfg cfg = {0};
  rv_engine *e;
  rv_err err;
  struct evhttp *http;
  struct event *tick, *sig_int, *sig_term;
  struct timeval tv = {0, 200 * 1000};
  rv_api_cfg acfg = {0};
  rv_api *api = NULL;

  for (int i = 0; rv_api_opt_names[i]; i++) {       /* API limits: engine/api/api.h */
    const char *v;
    while ((v = take_opt(a, rv_api_opt_names[i], &bad)) != NULL)
      if (rv_api_cfg_set(&acfg, rv_api_opt_names[i], v, &err) != RV_OK) return usage(err.msg);
  }
  if (bad || !no_unknown_opts(a) || a->n != 0) return usage(bad ? NULL : "serve takes no arguments");
  if (listen) {
    const char *colon = strrchr(listen, ':');
    char *end;
    long p;
    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof host)
      return usage("--listen must be HOST:PORT");
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535) return usage("--listen port must be 1..65535");
    port = (int)p;
  }
  /* --now: a fixed virtual clock (tests, demos of a past period) */
  if (rv_cli_engine_cfg(a->db, a->now, &vclock, &cfg, &err) != RV_OK)
    return usage("--now: not an ISO 8601 instant or epoch ms");
  serve_base = event_base_new();
  if (serve_base == NULL || event_base_priority_init(serve_base, PRIO_COUNT) != 0) {
    fprintf(stderr, "ravand: cannot make the event loop\n");
    if (serve_base) event_base_free(serve_base);
    return 1;
  }
  cfg.base = serve_base;
  if (rv_engine_open(&cfg, &e, &err) != RV_OK) {
    fprintf(stderr, "ravand: %s\n", err.msg);
    event_base_free(serve_base);
    return 1;
  }
  rv_adapters_bind_engine(e);
  if (rv_adapters_configure(a->config, &err) != RV_OK) {       /* sms gateway: docs/adapters.md */
    fprintf(stderr, "ravand: %s\n", err.msg);
    rv_adapters_stop();
    rv_engine_close(e);
    event_base_free(serve_base);
    return 1;
  }
  http = evhttp_new(serve_base);
  if (evhttp_bind_socket(http, host, (ev_uint16_t)port) != 0) {
    fprintf(stderr, "ravand: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
    evhttp_free(http);
    rv_adapters_stop();
    rv_engine_close(e);
    event_base_free(serve_base);
    return 1;
  }
  acfg.db_path = a->db;
  if (rv_api_start(http, e, &acfg, &api, &err) != RV_OK) {
    fprintf(stderr, "ravand: %s\n", err.msg);
    evhttp_free(http);
    rv_adapters_stop();
    rv_engine_close(e);
    event_base_free(serve_base);
    return 1;
  }
  tick = event_new(serve_base, -1, EV_PERSIST, on_tick, e);
  event_add(tick, &tv);
  burst_ev = evtimer_new(serve_base, on_tick, e);
  event_priority_set(burst_ev, PRIO_COUNT - 1);
  sig_int = evsignal_new(serve_base, SIGINT, on_signal, api);
  sig_term = evsignal_new(serve_base, SIGTERM, on_signal, api);
  event_add(sig_int, NULL);
  event_add(sig_term, NULL);
  fprintf(stderr, "ravand: serving on http://%s:%d (database %s)\n", host, port, a->db);
  on_tick(-1, 0, e);       /* recovery: whatever fell due while we were down */
  event_base_dispatch(serve_base);
  fprintf(stderr, "ravand: stopping\n");
  event_free(tick);
  event_free(burst_ev);
  burst_ev = NULL;
  event_free(sig_int);
  event_free(sig_term);
  rv_api_free(api);
  evhttp_free(http);
  rv_adapters_stop();      /* in-flight SMS: answered "shutting down", re-sent after restart */
  rv_engine_close(e);
  event_base_free(serve_base);
  return 0;
}

/*--- principal / audit (api/) ---*/

static int cmd_principal(args *a, const char *cmd){
  rv_engine *e;
  int rc;
  if ((rc = open_engine(a, &e)) != 0) return rc;
  rc = cmd[0] == 'p' ? rv_api_principal_cli(e, a->db, a->n, a->v, a->json)
                     : rv_api_audit_cli(e, a->n, a->v, a->json);
  rv_engine_close(e);
  return rc;
}

int main(int argc, char **argv){
  args a = { 0, NULL, "ravand.db", false, NULL, NULL };
  const char *cmd;
  int rc;
  bool bad = false;

  if (argc < 2) return usage(NULL);
  /* A peer that closes a socket we write to (an API client, the SMS
  ** gateway) must cost that connection an EPIPE, not the process. */
  signal(SIGPIPE, SIG_IGN);
  a.v = malloc(sizeof(char *) * (size_t)argc);
  for (int i = 1; i < argc; i++) a.v[a.n++] = argv[i];
  if (strcmp(a.v[0], "lint") == 0) { rc = rv_lint_main(argc - 1, argv + 1); free(a.v); return rc; }
  {
    const char *db = take_opt(&a, "--db", &bad), *now = take_opt(&a, "--now", &bad);
    if (db) a.db = db;
    a.now = now;
    a.config = take_opt(&a, "--config", &bad);
    a.json = take_flag(&a, "--json");
  }
  if (bad || a.n < 1) { free(a.v); return usage(NULL); }
  cmd = a.v[0];
  a.v++; a.n--;
  if      (strcmp(cmd, "deploy") == 0) rc = cmd_deploy(&a);
  else if (strcmp(cmd, "definitions") == 0) rc = cmd_definitions(&a);
  else if (strcmp(cmd, "start") == 0) rc = cmd_start(&a);
  else if (strcmp(cmd, "instances") == 0) rc = cmd_instances(&a);
  else if (strcmp(cmd, "tasks") == 0) rc = cmd_tasks(&a);
  else if (strcmp(cmd, "message") == 0) rc = cmd_message(&a);
  else if (strcmp(cmd, "signal") == 0) rc = cmd_signal(&a);
  else if (strcmp(cmd, "cancel") == 0) rc = cmd_cancel(&a);
  else if (strcmp(cmd, "incidents") == 0) rc = cmd_incidents(&a);
  else if (strcmp(cmd, "tick") == 0) rc = cmd_tick(&a);
  else if (strcmp(cmd, "serve") == 0) rc = cmd_serve(&a);
  else if (strcmp(cmd, "principal") == 0 || strcmp(cmd, "audit") == 0) rc = cmd_principal(&a, cmd);
  else if (strcmp(cmd, "export") == 0 || strcmp(cmd, "feed") == 0 || strcmp(cmd, "records") == 0) {
    rv_cli_env env = { a.db, a.now, a.json };
    rc = cmd[0] == 'e' ? rv_export_cli(&env, a.n, a.v)
       : cmd[0] == 'f' ? rv_feed_cli(&env, a.n, a.v) : rv_records_cli(&env, a.n, a.v);
  }
  else if (strcmp(cmd, "sms") == 0 || strcmp(cmd, "bank") == 0) {
    rv_cli_env env = { a.db, a.now, a.json };
    rc = cmd[0] == 's' ? rv_sms_cli(&env, a.n, a.v) : rv_bank_cli(&env, a.n, a.v);
  }
  else if (strcmp(cmd, "record") == 0) rc = cmd_record(&a);
  else if (strcmp(cmd, "backup") == 0) rc = cmd_backup(&a);
  else if (strcmp(cmd, "replay") == 0) rc = cmd_replay(&a);
  else if (strcmp(cmd, "test") == 0) rc = cmd_test(&a);
  else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) { usage(NULL); rc = 0; }
  else { fprintf(stderr, "ravand: unknown command '%s'\n", cmd); rc = usage(NULL); }
  a.v--;
  free(a.v);
  return rc;
}
