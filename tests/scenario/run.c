/*
** tests/scenario/run.c -- runs one scenario file (.scn) against a fresh
** engine on a temporary SQLite file and a virtual clock.
**
** A scenario is a list of commands, one per line ('#' starts a comment):
**   deploy FILE...                  paths relative to the .scn file; Lua from
**                                   tests/fixtures/scripts unless `scripts DIR`
**   scripts DIR                     set the Lua directory for later deploys
**   start PROCESS [JSON] [as NAME]  start an instance; it becomes current
**   use NAME                        make a named instance current
**   complete ELEMENT [JSON]         complete the open task of ELEMENT (current instance)
**   complete-fails ELEMENT JSON TEXT   completing must fail with TEXT in the error
**   message NAME KEY|- [JSON] [ID]  correlate (KEY '-' = none)
**   message-result WORD             the last message call's result (correlated, buffered, ...)
**   signal NAME [JSON]
**   advance DURATION                move the clock, then fire timers and run jobs
**   clock DURATION                  move the clock only (as if the engine were down)
**   drain                           fire due timers and run jobs
**   retry                           retry the first open incident of the current instance
**   cancel                          cancel the current instance
**   cancel-fails TEXT               canceling the current instance must fail with TEXT
**   restart                         close and reopen the engine (state must survive)
**   expect EVENT [ELEMENT] [DETAIL-SUBSTRING]   the next matching history entry
**                                   after the previous expect (order matters)
**   never EVENT [ELEMENT]           no such history entry at all
**   count EVENT ELEMENT N           exactly N such history entries
**   status WORD                     instance status (active, completed, canceled, terminated)
**   status-text TEXT...             the applicant-facing status
**   var NAME JSON                   a process variable equals JSON ("text" or a
**                                   word that is not JSON: that string)
**   no-var NAME                     the instance has no variable NAME
**   tasks N [ELEMENT]               open tasks of the current instance
**   waiting ELEMENT...              the elements where tokens rest (sorted), or '-' for none
**   incidents N [TEXT]              open incidents of the current instance (first contains TEXT)
**   jobs STATE N                    jobs of the current instance in STATE
**   job ELEMENT COLUMN VALUE        the latest job of ELEMENT has COLUMN (of the jobs
**                                   table) = VALUE; $inst/$ei in VALUE: instance, job ei
**   redeliver ELEMENT               hand the latest job of ELEMENT (current instance) to its
**                                   adapter once more, as after a crash between the adapter's
**                                   effect and its answer; the adapter must answer OK
**   sms N                           messages the test SMS adapter has recorded
**   sms-last TO TEXT...             the last recorded SMS went to TO with TEXT
**   instances PROCESS N             instances of PROCESS
**   child [K] [as NAME]             the K-th instance (1-based, default: the last)
**                                   the current one called becomes current
**   versions PROCESS N              deployed versions of PROCESS
**   version N                       the current instance runs version N
**   records DIR                     load records CSV fixtures (persons.csv, statements.csv,
**                                   ...) from DIR into the rec_* tables (rv_records_load);
**                                   the `records` adapter then answers from them
**   bank FILE [TTL]                 import a bank confirmation CSV (rv_bank_import_file);
**                                   TTL an ISO duration for unmatched lines (default 7 days)
**   bank-outcome WORD N             the last bank import had N lines with outcome WORD
**   feed FILE                       import a civil-registry marriage file (rv_feed_import)
**   feed-report KEY VALUE           the last feed report has KEY (dotted: spouses.started) = VALUE
**   ledger KIND N [SUM]             fin_ledger has N rows of KIND (and they sum to SUM Rials)
**   find PROCESS KEY [as NAME]      the newest instance of PROCESS with business key KEY
**                                   becomes current
**   stub NAME [JSON]                register a stand-in adapter NAME (for adapters not built
**                                   yet): answers OK with its input, JSON's keys added; when
**                                   JSON has a key equal to the input's "op", that object's keys
**                                   are added instead
**   clock-to ISO                    set the virtual clock to an instant (also backwards: for
**                                   dated rules, before anything runs), then fire timers and run jobs
**   transfer ELEMENT BRANCH [REASON]   send the open task of ELEMENT to another branch
**                                   (rv_engine_task_transfer, the API's transfer)
**   task ELEMENT COLUMN VALUE       the latest task of ELEMENT has COLUMN (of the tasks table:
**                                   branch, county, state, candidate_groups, ...) = VALUE
**   sms-code TO                     the last SMS went to TO and carries an access code of the
**                                   `inquiry` adapter (six groups of four Crockford base32
**                                   characters); it is remembered for `fetch`
**   fetch ORG AGREEMENT USER CODE OUTCOME
**                                   an organisation user fetches a document as the API's
**                                   POST /v1/inquiry/documents/fetch does (rv_inquiry_fetch,
**                                   default limits): CODE is `code` (the remembered one),
**                                   `wrong` (its last character changed) or a literal code;
**                                   OUTCOME is ok, throttled, or the refusal reason (unknown,
**                                   malformed, wrong, wrong-locked, locked, expired, revoked,
**                                   used, agreement)
** Output is TAP: one "ok"/"not ok" line per expectation.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>
#include "runtime/engine.h"
#include "runtime/runtime_int.h"
#include "cal/cal.h"
#include "core/json.h"
#include "core/mem.h"
#include "test/test_adapters.h"
#include "adapter.h"
#include "records/records.h"
#include "bank/bank.h"
#include "registry/feed.h"
#include "inquiry/inquiry.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif

static rv_engine *E;
static rv_clock clk;
static char dbpath[256], scriptdir[4096], basedir[1024];
static int64_t cur, hist_cursor;
static struct { char name[64]; int64_t id; } named[64];
static int n_named, n_ok, n_fail, lineno;
static char last_msg_result[32];
static cJSON *last_bank_report;
static cJSON *last_feed_report;
static char last_code[64];            /* sms-code */

/* `stub NAME [JSON]`: a stand-in adapter answering its input plus JSON's keys. */
struct stub { rv_adapter_ops ops; char name[64]; cJSON *extra; };
static struct stub stubs[8];
static int n_stubs;
struct stub_answer { rv_adapter_done_fn done; void *arg; cJSON *result; };
static void stub_deliver(evutil_socket_t fd, short what, void *p){
  struct stub_answer *a = p;
  (void)fd; (void)what;
  a->done(a->arg, RV_JOB_OK, a->result, NULL, NULL);
  rv_free(a);
}
static rv_status stub_invoke(void *self, struct event_base *base, const rv_job_info *job,
                             rv_adapter_done_fn done, void *arg){
  struct stub *sb = self;
  struct stub_answer *a = rv_calloc(1, sizeof *a);
  struct timeval tv = {0, 0};
  const cJSON *x, *extra = sb->extra;
  a->done = done; a->arg = arg;
  a->result = job->input ? cJSON_Duplicate(job->input, 1) : cJSON_CreateObject();
  {  /* JSON keyed by the input's op: {"op-a": {...}, "op-b": {...}} answers per op */
    const char *op = rv_json_str(job->input, "op");
    const cJSON *per = op ? cJSON_GetObjectItemCaseSensitive(sb->extra, op) : NULL;
    if (cJSON_IsObject(per)) extra = per;
  }
  cJSON_ArrayForEach(x, extra) {
    cJSON_DeleteItemFromObjectCaseSensitive(a->result, x->string);
    cJSON_AddItemToObject(a->result, x->string, cJSON_Duplicate(x, 1));
  }
  if (event_base_once(base, -1, EV_TIMEOUT, stub_deliver, a, &tv) != 0) {
    cJSON_Delete(a->result); rv_free(a); return RV_IO;
  }
  return RV_OK;
}

static void okf(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void okf(bool ok, const char *fmt, ...){
  va_list ap;
  printf("%s %d - line %d: ", ok ? "ok" : "not ok", n_ok + n_fail + 1, lineno);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  if (ok) n_ok++; else n_fail++;
}

static void open_engine(void){
  rv_engine_cfg cfg = {0};
  rv_err err;
  cfg.db_path = dbpath;
  cfg.clock = &clk;
  if (rv_engine_open(&cfg, &E, &err) != RV_OK) { printf("Bail out! %s\n", err.msg); exit(1); }
  rv_adapters_bind_engine(E);   /* the records adapter reads the engine's store */
}

static sqlite3 *db(void){ return rv_store_db(rv_engine_store(E)); }

static int64_t scalar(const char *sql, const char *fmt, ...){
  sqlite3_stmt *s;
  va_list ap;
  int64_t v = -1;
  sqlite3_prepare_v2(db(), sql, -1, &s, NULL);
  va_start(ap, fmt);
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 'i') sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
    else sqlite3_bind_text(s, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
  }
  va_end(ap);
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* Split a line into words; a word starting with '{' or '[' runs to its
** matching bracket (JSON), a word starting with '"' to the next quote. */
static int split(char *line, char **w, int max){
  int n = 0;
  char *p = line;
  while (*p && n < max) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') break;
    if (*p == '{' || *p == '[') {
      int depth = 0;
      bool str = false;
      w[n++] = p;
      for (; *p; p++) {
        if (str) { if (*p == '\\' && p[1]) p++; else if (*p == '"') str = false; continue; }
        if (*p == '"') str = true;
        else if (*p == '{' || *p == '[') depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0) { p++; break; }
      }
    } else if (*p == '"') {
      w[n++] = ++p;
      while (*p && *p != '"') p++;
      if (*p) *p++ = 0;
      continue;
    } else {
      w[n++] = p;
      while (*p && *p != ' ' && *p != '\t') p++;
    }
    if (*p) *p++ = 0;
  }
  return n;
}

static void drain(void){ rv_engine_drain(E); }

/* `redeliver`: what the adapter answered */
struct redo { bool done; rv_job_outcome outcome; char message[256]; };
static void redo_done(void *arg, rv_job_outcome outcome, cJSON *result, const char *code,
                      const char *message){
  struct redo *r = arg;
  (void)code;
  r->done = true;
  r->outcome = outcome;
  snprintf(r->message, sizeof r->message, "%s", message ? message : "ok");
  cJSON_Delete(result);
}

static int64_t task_of(const char *element){
  return scalar("SELECT id FROM tasks WHERE instance_id=? AND element_id=? AND state='open' ORDER BY id LIMIT 1",
                "it", cur, element);
}

static void cmd(char **w, int n){
  rv_err err = {0};
  const char *c = w[0];
  if (strcmp(c, "scripts") == 0) {
    snprintf(scriptdir, sizeof scriptdir, "%s/%s", basedir, w[1]);
  } else if (strcmp(c, "deploy") == 0) {
    const char *files[16];
    char buf[16][4096];
    int nf = 0;
    for (int i = 1; i < n && nf < 16; i++) {
      snprintf(buf[nf], sizeof buf[nf], "%s/%s", basedir, w[i]);
      files[nf] = buf[nf];
      nf++;
    }
    okf(rv_engine_deploy(E, files, nf, scriptdir, NULL, &err) == RV_OK, "deploy %s %s", w[1], err.msg);
  } else if (strcmp(c, "start") == 0) {
    cJSON *vars = n > 2 && w[2][0] == '{' ? rv_json_parse(w[2]) : NULL;
    rv_status rc = rv_engine_start(E, w[1], 0, vars, NULL, &cur, &err);
    okf(rc == RV_OK, "start %s %s", w[1], err.msg);
    if (n > 3 && strcmp(w[n - 2], "as") == 0 && n_named < 64) {
      snprintf(named[n_named].name, sizeof named[n_named].name, "%s", w[n - 1]);
      named[n_named++].id = cur;
    }
    hist_cursor = 0;
    cJSON_Delete(vars);
    drain();
  } else if (strcmp(c, "use") == 0) {
    for (int i = 0; i < n_named; i++) if (strcmp(named[i].name, w[1]) == 0) cur = named[i].id;
    hist_cursor = 0;
  } else if (strcmp(c, "complete") == 0 || strcmp(c, "complete-fails") == 0) {
    int64_t t = task_of(w[1]);
    cJSON *data = n > 2 ? rv_json_parse(w[2]) : NULL;
    rv_status rc = t > 0 ? rv_engine_complete_task(E, t, data, "tester", &err) : RV_NOTFOUND;
    if (c[8] == 0) okf(rc == RV_OK, "complete %s (task %lld) %s", w[1], (long long)t, err.msg);
    else okf(rc != RV_OK && n > 3 && strstr(err.msg, w[3]) != NULL, "completing %s fails: got '%s'", w[1], err.msg);
    cJSON_Delete(data);
    drain();
  } else if (strcmp(c, "message") == 0) {
    cJSON *p = n > 3 ? rv_json_parse(w[3]) : NULL, *res = NULL;
    rv_status rc = rv_engine_correlate(E, w[1], strcmp(w[2], "-") == 0 ? NULL : w[2], p,
                                       n > 4 ? w[4] : NULL, -1, &res, &err);
    okf(rc == RV_OK, "message %s %s", w[1], err.msg);
    snprintf(last_msg_result, sizeof last_msg_result, "%s", res ? rv_json_str(res, "result") : "");
    if (res && rv_json_int(res, "instance", 0) && strcmp(last_msg_result, "started") == 0)
      cur = rv_json_int(res, "instance", 0);
    cJSON_Delete(res);
    cJSON_Delete(p);
    drain();
  } else if (strcmp(c, "message-result") == 0) {
    okf(strcmp(last_msg_result, w[1]) == 0, "message result %s (got %s)", w[1], last_msg_result);
  } else if (strcmp(c, "signal") == 0) {
    cJSON *p = n > 2 ? rv_json_parse(w[2]) : NULL;
    int cnt;
    okf(rv_engine_signal(E, w[1], p, &cnt, &err) == RV_OK, "signal %s %s", w[1], err.msg);
    cJSON_Delete(p);
    drain();
  } else if (strcmp(c, "advance") == 0) {
    rv_duration d;
    okf(rv_duration_parse(w[1], &d, &err) == RV_OK, "advance %s %s", w[1], err.msg);
    rv_clock_set(&clk, rv_duration_add(rv_clock_now(&clk), &d));
    drain();
  } else if (strcmp(c, "clock") == 0) {
    rv_duration d;
    okf(rv_duration_parse(w[1], &d, &err) == RV_OK, "clock %s %s", w[1], err.msg);
    rv_clock_set(&clk, rv_duration_add(rv_clock_now(&clk), &d));
  } else if (strcmp(c, "drain") == 0) {
    drain();
  } else if (strcmp(c, "retry") == 0) {
    int64_t inc = scalar("SELECT id FROM incidents WHERE instance_id=? AND state='open' ORDER BY id LIMIT 1", "i", cur);
    okf(inc > 0 && rv_engine_retry_incident(E, inc, &err) == RV_OK, "retry incident %lld %s", (long long)inc, err.msg);
    drain();
  } else if (strcmp(c, "cancel") == 0) {
    okf(rv_engine_cancel(E, cur, &err) == RV_OK, "cancel %s", err.msg);
  } else if (strcmp(c, "cancel-fails") == 0) {
    rv_status rc = rv_engine_cancel(E, cur, &err);
    okf(rc != RV_OK && n > 1 && strstr(err.msg, w[1]) != NULL, "cancel fails with '%s' (got '%s')",
        n > 1 ? w[1] : "", rc == RV_OK ? "success" : err.msg);
  } else if (strcmp(c, "restart") == 0) {
    rv_adapters_unbind_engine(E);
    rv_engine_close(E);
    open_engine();
    drain();
  } else if (strcmp(c, "expect") == 0) {
    sqlite3_stmt *s;
    int64_t found = 0;
    sqlite3_prepare_v2(db(),
      /* an event's place: (id, seq) -- the events of one batch share an id */
      "SELECT id * 1000000 + seq FROM history WHERE instance_id=? AND id * 1000000 + seq > ?"
      " AND event=? AND (?4 IS NULL OR element_id=?4 OR detail=?4)"
      " AND (?5 IS NULL OR instr(detail, ?5) > 0) ORDER BY id, seq LIMIT 1", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, cur);
    sqlite3_bind_int64(s, 2, hist_cursor);
    sqlite3_bind_text(s, 3, w[1], -1, SQLITE_TRANSIENT);
    if (n > 2 && strcmp(w[2], "-") != 0) sqlite3_bind_text(s, 4, w[2], -1, SQLITE_TRANSIENT);
    if (n > 3) sqlite3_bind_text(s, 5, w[3], -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW) found = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    okf(found > 0, "expect %s %s %s", w[1], n > 2 ? w[2] : "", n > 3 ? w[3] : "");
    if (found) hist_cursor = found;
  } else if (strcmp(c, "never") == 0) {
    int64_t k = scalar("SELECT count(*) FROM history WHERE instance_id=? AND event=? AND (?3 IS NULL OR element_id=?3)",
                       n > 2 ? "itt" : "it", cur, w[1], n > 2 ? w[2] : NULL);
    okf(k == 0, "never %s %s (found %lld)", w[1], n > 2 ? w[2] : "", (long long)k);
  } else if (strcmp(c, "count") == 0) {
    int64_t k = scalar("SELECT count(*) FROM history WHERE instance_id=? AND event=? AND element_id=?",
                       "itt", cur, w[1], w[2]);
    okf(k == atoll(w[3]), "count %s %s = %s (got %lld)", w[1], w[2], w[3], (long long)k);
  } else if (strcmp(c, "status") == 0) {
    sqlite3_stmt *s;
    char got[32] = "";
    sqlite3_prepare_v2(db(), "SELECT status FROM instances WHERE id=?", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, cur);
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(got, sizeof got, "%s", sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    okf(strcmp(got, w[1]) == 0, "status %s (got %s)", w[1], got);
  } else if (strcmp(c, "status-text") == 0) {
    sqlite3_stmt *s;
    char got[512] = "", want[512] = "";
    for (int i = 1; i < n; i++) { strcat(want, i > 1 ? " " : ""); strncat(want, w[i], 200); }
    sqlite3_prepare_v2(db(), "SELECT status_text FROM instances WHERE id=?", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, cur);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
      snprintf(got, sizeof got, "%s", sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    okf(strcmp(got, want) == 0, "status text '%s' (got '%s')", want, got);
  } else if (strcmp(c, "var") == 0) {
    cJSON *inst = NULL, *want = rv_json_parse(w[2]);
    const cJSON *got;
    if (want == NULL) want = cJSON_CreateString(w[2]);   /* var NAME "some text" */
    rv_engine_instance_json(E, cur, &inst, &err);
    got = inst ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(inst, "variables"), w[1]) : NULL;
    {
      char *g = got ? rv_json_print(got) : NULL;
      okf(got && want && cJSON_Compare(got, want, 1), "var %s = %s (got %s)", w[1], w[2], g ? g : "nothing");
      if (g) rv_free(g);
    }
    cJSON_Delete(inst);
    cJSON_Delete(want);
  } else if (strcmp(c, "no-var") == 0) {
    cJSON *inst = NULL;
    rv_engine_instance_json(E, cur, &inst, &err);
    okf(inst && !cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(inst, "variables"), w[1]),
        "no variable %s", w[1]);
    cJSON_Delete(inst);
  } else if (strcmp(c, "tasks") == 0) {
    int64_t k = scalar("SELECT count(*) FROM tasks WHERE instance_id=? AND state='open' AND (?2 IS NULL OR element_id=?2)",
                       n > 2 ? "it" : "i", cur, n > 2 ? w[2] : NULL);
    okf(k == atoll(w[1]), "open tasks %s %s (got %lld)", w[1], n > 2 ? w[2] : "", (long long)k);
  } else if (strcmp(c, "waiting") == 0) {
    cJSON *inst = NULL;
    char got[2048] = "", want[2048] = "";
    const char *names[64];
    int nn = 0;
    const cJSON *t;
    rv_engine_instance_json(E, cur, &inst, &err);
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(inst, "tokens"))
      if (nn < 64) names[nn++] = rv_json_str(t, "element");
    for (int i = 0; i < nn; i++)
      for (int k = i + 1; k < nn; k++)
        if (strcmp(names[k], names[i]) < 0) { const char *x = names[i]; names[i] = names[k]; names[k] = x; }
    for (int i = 0; i < nn; i++) { if (i) strcat(got, " "); strncat(got, names[i], 100); }
    for (int i = 1; i < n; i++) {
      if (strcmp(w[i], "-") == 0) continue;
      if (want[0]) strcat(want, " ");
      strncat(want, w[i], 100);
    }
    okf(strcmp(got, want) == 0, "waiting at [%s] (got [%s])", want, got);
    cJSON_Delete(inst);
  } else if (strcmp(c, "incidents") == 0) {
    int64_t k = scalar("SELECT count(*) FROM incidents WHERE instance_id=? AND state='open'", "i", cur);
    bool text_ok = true;
    if (n > 2) {
      sqlite3_stmt *s;
      sqlite3_prepare_v2(db(), "SELECT message FROM incidents WHERE instance_id=? AND state='open' ORDER BY id LIMIT 1", -1, &s, NULL);
      sqlite3_bind_int64(s, 1, cur);
      text_ok = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) &&
                strstr((const char *)sqlite3_column_text(s, 0), w[2]) != NULL;
      if (!text_ok && sqlite3_column_text(s, 0)) printf("# incident says: %s\n", sqlite3_column_text(s, 0));
      sqlite3_finalize(s);
    }
    okf(k == atoll(w[1]) && text_ok, "open incidents %s %s (got %lld)", w[1], n > 2 ? w[2] : "", (long long)k);
  } else if (strcmp(c, "jobs") == 0) {
    int64_t k = scalar("SELECT count(*) FROM jobs WHERE instance_id=? AND state=?", "it", cur, w[1]);
    okf(k == atoll(w[2]), "jobs %s = %s (got %lld)", w[1], w[2], (long long)k);
  } else if (strcmp(c, "job") == 0 && n > 3) {
    /* job ELEMENT COLUMN VALUE: the latest job of ELEMENT (current instance) */
    sqlite3_stmt *s;
    char sql[256], got[512] = "(no job)", want[512];
    int64_t ei = 0;
    bool col_ok = strspn(w[2], "abcdefghijklmnopqrstuvwxyz_") == strlen(w[2]);
    snprintf(sql, sizeof sql, "SELECT %s, ei FROM jobs WHERE instance_id=? AND element_id=?"
             " ORDER BY id DESC LIMIT 1", col_ok ? w[2] : "NULL");
    sqlite3_prepare_v2(db(), sql, -1, &s, NULL);
    sqlite3_bind_int64(s, 1, cur);
    sqlite3_bind_text(s, 2, w[1], -1, SQLITE_TRANSIENT);
    if (s && sqlite3_step(s) == SQLITE_ROW) {
      snprintf(got, sizeof got, "%s", sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0) : "NULL");
      ei = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    {  /* $inst and $ei in VALUE stand for the instance id and the job's ei */
      const char *p = w[3];
      size_t k = 0;
      while (*p && k + 24 < sizeof want) {
        if (strncmp(p, "$inst", 5) == 0) { k += (size_t)snprintf(want + k, sizeof want - k, "%lld", (long long)cur); p += 5; }
        else if (strncmp(p, "$ei", 3) == 0) { k += (size_t)snprintf(want + k, sizeof want - k, "%lld", (long long)ei); p += 3; }
        else want[k++] = *p++;
      }
      want[k] = 0;
    }
    okf(col_ok && strcmp(got, want) == 0, "job %s %s = %s (got %s)", w[1], w[2], want, got);
  } else if (strcmp(c, "redeliver") == 0) {
    sqlite3_stmt *s;
    char adapter[64] = "", key[256] = "";
    cJSON *input = NULL;
    int64_t id = 0;
    struct redo r = { false, RV_JOB_FAILED, "" };
    sqlite3_prepare_v2(db(), "SELECT id, adapter, input, key FROM jobs WHERE instance_id=? AND element_id=?"
                       " ORDER BY id DESC LIMIT 1", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, cur);
    sqlite3_bind_text(s, 2, w[1], -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW) {
      id = sqlite3_column_int64(s, 0);
      snprintf(adapter, sizeof adapter, "%s", (const char *)sqlite3_column_text(s, 1));
      input = rv_json_parse((const char *)sqlite3_column_text(s, 2));
      snprintf(key, sizeof key, "%s", (const char *)sqlite3_column_text(s, 3));
    }
    sqlite3_finalize(s);
    const rv_adapter_ops *ops = id ? rv_adapter_find(adapter) : NULL;
    rv_job_info ji = { id, cur, w[1], key, input, 2 };
    if (ops && ops->invoke(ops->self, rv_engine_base(E), &ji, redo_done, &r) == RV_OK)
      while (!r.done) event_base_loop(rv_engine_base(E), EVLOOP_ONCE);
    okf(ops && r.done && r.outcome == RV_JOB_OK, "redeliver %s through '%s': %s", w[1], adapter,
        r.done ? r.message : "not invoked");
    cJSON_Delete(input);
    drain();
  } else if (strcmp(c, "sms") == 0) {
    okf(rv_test_sms_count() == atoi(w[1]), "sms %s (got %d)", w[1], rv_test_sms_count());
  } else if (strcmp(c, "instances") == 0) {
    int64_t k = scalar("SELECT count(*) FROM instances WHERE process_id=?", "t", w[1]);
    okf(k == atoll(w[2]), "instances of %s = %s (got %lld)", w[1], w[2], (long long)k);
  } else if (strcmp(c, "sms-last") == 0) {
    char want[1024] = "";
    int k = rv_test_sms_count() - 1;
    const char *to = k >= 0 ? rv_test_sms_to(k) : NULL, *text = k >= 0 ? rv_test_sms_text(k) : NULL;
    for (int i = 2; i < n; i++) { strcat(want, i > 2 ? " " : ""); strncat(want, w[i], 200); }
    okf(to && text && strcmp(to, w[1]) == 0 && strcmp(text, want) == 0,
        "last sms to %s '%s' (got %s '%s')", w[1], want, to ? to : "-", text ? text : "-");
  } else if (strcmp(c, "child") == 0) {
    int a = n > 1 && strcmp(w[1], "as") != 0 ? 2 : 1;   /* index of "as" */
    int64_t k = a == 2
      ? scalar("SELECT id FROM instances WHERE parent_instance=? ORDER BY id LIMIT 1 OFFSET ?", "ii",
               cur, (int64_t)(atoll(w[1]) - 1))
      : scalar("SELECT id FROM instances WHERE parent_instance=? ORDER BY id DESC LIMIT 1", "i", cur);
    okf(k > 0, "child of instance %lld (got %lld)", (long long)cur, (long long)k);
    if (k > 0) {
      cur = k;
      if (n > a + 1 && strcmp(w[a], "as") == 0 && n_named < 64) {
        snprintf(named[n_named].name, sizeof named[n_named].name, "%s", w[a + 1]);
        named[n_named++].id = cur;
      }
    }
    hist_cursor = 0;
  } else if (strcmp(c, "versions") == 0) {
    int64_t k = scalar("SELECT count(*) FROM definitions WHERE process_id=?", "t", w[1]);
    okf(k == atoll(w[2]), "versions of %s = %s (got %lld)", w[1], w[2], (long long)k);
  } else if (strcmp(c, "version") == 0) {
    int64_t k = scalar("SELECT d.version FROM instances i JOIN definitions d ON d.id=i.definition_id WHERE i.id=?",
                       "i", cur);
    okf(k == atoll(w[1]), "instance runs version %s (got %lld)", w[1], (long long)k);
  } else if (strcmp(c, "records") == 0 && n > 1) {
    char dir[4096];
    cJSON *rep = NULL;
    snprintf(dir, sizeof dir, "%s/%s", basedir, w[1]);
    okf(rv_records_load(rv_engine_store(E), dir, false, rv_clock_now(&clk), &rep, &err) == RV_OK,
        "records %s %s", w[1], err.msg);
    if (rep) { char *t = rv_json_print(rep); printf("# records: %s\n", t); rv_free(t); }
    cJSON_Delete(rep);
  } else if (strcmp(c, "bank") == 0 && n > 1) {
    char path[4096];
    rv_bank_opts o = {0};
    rv_duration d;
    snprintf(path, sizeof path, "%s/%s", basedir, w[1]);
    if (n > 2 && rv_duration_parse(w[2], &d, NULL) == RV_OK) o.ttl_ms = rv_duration_ms(&d);
    cJSON_Delete(last_bank_report);
    last_bank_report = NULL;
    okf(rv_bank_import_file(E, path, &o, &last_bank_report, &err) == RV_OK, "bank %s %s", w[1], err.msg);
    if (last_bank_report) { char *t = rv_json_print(last_bank_report); printf("# bank: %s\n", t); rv_free(t); }
    drain();
  } else if (strcmp(c, "bank-outcome") == 0 && n > 2) {
    int k = 0;
    const cJSON *l, *lines = last_bank_report ? cJSON_GetObjectItemCaseSensitive(last_bank_report, "lines") : NULL;
    cJSON_ArrayForEach(l, lines) {
      const char *o = rv_json_str(l, "outcome");
      if (o && strcmp(o, w[1]) == 0) k++;
    }
    okf(k == atoi(w[2]), "bank outcome %s = %s (got %d)", w[1], w[2], k);
  } else if (strcmp(c, "feed") == 0 && n > 1) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", basedir, w[1]);
    cJSON_Delete(last_feed_report);
    last_feed_report = NULL;
    okf(rv_feed_import(E, path, NULL, &last_feed_report, &err) == RV_OK, "feed %s %s", w[1], err.msg);
    if (last_feed_report) { char *t = rv_json_print(last_feed_report); printf("# feed: %s\n", t); rv_free(t); }
    drain();
  } else if (strcmp(c, "feed-report") == 0 && n > 2) {
    const cJSON *v = last_feed_report;
    char key[256], *tok, *save = NULL, *got;
    snprintf(key, sizeof key, "%s", w[1]);
    for (tok = strtok_r(key, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
      v = cJSON_GetObjectItemCaseSensitive(v, tok);
    got = v ? rv_json_text(v) : NULL;
    okf(got && strcmp(got, w[2]) == 0, "feed report %s = %s (got %s)", w[1], w[2], got ? got : "nothing");
    rv_free(got);
  } else if (strcmp(c, "ledger") == 0 && n > 2) {
    int64_t k = scalar("SELECT count(*) FROM fin_ledger WHERE kind=?", "t", w[1]);
    int64_t sum = scalar("SELECT coalesce(sum(amount_rials),0) FROM fin_ledger WHERE kind=?", "t", w[1]);
    okf(k == atoll(w[2]) && (n < 4 || sum == atoll(w[3])), "ledger %s rows = %s sum = %s (got %lld, %lld)",
        w[1], w[2], n > 3 ? w[3] : "-", (long long)k, (long long)sum);
  } else if (strcmp(c, "find") == 0 && n > 2) {
    int64_t k = scalar("SELECT id FROM instances WHERE process_id=? AND business_key=? ORDER BY id DESC LIMIT 1",
                       "tt", w[1], w[2]);
    okf(k > 0, "find %s %s (got %lld)", w[1], w[2], (long long)k);
    if (k > 0) {
      cur = k;
      hist_cursor = 0;
      if (n > 4 && strcmp(w[3], "as") == 0 && n_named < 64) {
        snprintf(named[n_named].name, sizeof named[n_named].name, "%s", w[4]);
        named[n_named++].id = cur;
      }
    }
  } else if (strcmp(c, "stub") == 0 && n > 1 && n_stubs < 8) {
    struct stub *sb = &stubs[n_stubs++];
    snprintf(sb->name, sizeof sb->name, "%s", w[1]);
    sb->extra = n > 2 ? rv_json_parse(w[2]) : NULL;
    sb->ops.name = sb->name;
    sb->ops.invoke = stub_invoke;
    sb->ops.self = sb;
    rv_adapter_register(&sb->ops);
    okf(n < 3 || sb->extra != NULL, "stub %s", w[1]);
  } else if (strcmp(c, "clock-to") == 0 && n > 1) {
    int64_t ms = 0;
    okf(rv_datetime_parse(w[1], &ms, &err) == RV_OK, "clock-to %s %s", w[1], err.msg);
    if (ms > 0) rv_clock_set(&clk, ms);
    drain();
  } else if (strcmp(c, "transfer") == 0 && n > 2) {
    int64_t t = task_of(w[1]);
    rv_status rc = t > 0 ? rv_engine_task_transfer(E, t, w[2], "tester", n > 3 ? w[3] : NULL, &err) : RV_NOTFOUND;
    okf(rc == RV_OK, "transfer %s (task %lld) to %s %s", w[1], (long long)t, w[2], err.msg);
    drain();
  } else if (strcmp(c, "task") == 0 && n > 3) {
    /* task ELEMENT COLUMN VALUE: the latest task of ELEMENT (current instance) */
    sqlite3_stmt *s;
    char sql[256], got[512] = "(no task)";
    bool col_ok = strspn(w[2], "abcdefghijklmnopqrstuvwxyz_") == strlen(w[2]);
    snprintf(sql, sizeof sql, "SELECT %s FROM tasks WHERE instance_id=? AND element_id=? ORDER BY id DESC LIMIT 1",
             col_ok ? w[2] : "NULL");
    sqlite3_prepare_v2(db(), sql, -1, &s, NULL);
    sqlite3_bind_int64(s, 1, cur);
    sqlite3_bind_text(s, 2, w[1], -1, SQLITE_TRANSIENT);
    if (s && sqlite3_step(s) == SQLITE_ROW)
      snprintf(got, sizeof got, "%s", sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0) : "NULL");
    sqlite3_finalize(s);
    okf(col_ok && strcmp(got, w[3]) == 0, "task %s %s = %s (got %s)", w[1], w[2], w[3], got);
  } else if (strcmp(c, "sms-code") == 0 && n > 1) {
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    int k = rv_test_sms_count() - 1;
    const char *to = k >= 0 ? rv_test_sms_to(k) : NULL, *text = k >= 0 ? rv_test_sms_text(k) : NULL;
    last_code[0] = 0;
    for (const char *p = text; p && *p && !last_code[0]; p++) {
      bool shape = strlen(p) >= 29;
      for (int i = 0; shape && i < 29; i++)
        shape = (i % 5 == 4) ? p[i] == '-' : (p[i] && strchr(b32, p[i]) != NULL);
      if (shape && (p[29] == 0 || !strchr(b32, p[29])) && (p == text || !strchr(b32, p[-1])))
        snprintf(last_code, sizeof last_code, "%.29s", p);
    }
    okf(to && strcmp(to, w[1]) == 0 && last_code[0], "last sms to %s carries an access code (got %s '%s')",
        w[1], to ? to : "-", text ? text : "-");
  } else if (strcmp(c, "fetch") == 0 && n > 5) {
    rv_inquiry_limits lim;
    rv_inquiry_fetch_in in = {0};
    rv_inquiry_fetch_out out;
    char code[64];
    const char *got;
    rv_status rc;
    int64_t pid = 0;
    rv_inquiry_limits_default(&lim);
    for (const char *p = w[3]; *p; p++) pid = (pid * 31 + (unsigned char)*p) % 1000000007;
    if (strcmp(w[4], "code") == 0) snprintf(code, sizeof code, "%s", last_code);
    else if (strcmp(w[4], "wrong") == 0) {
      size_t l = strlen(last_code);
      snprintf(code, sizeof code, "%s", last_code);
      if (l) code[l - 1] = code[l - 1] == 'A' ? 'B' : 'A';
    } else snprintf(code, sizeof code, "%s", w[4]);
    in.code = code;
    in.principal_id = pid + 1;
    in.principal = w[3];
    in.organisation = w[1];
    in.agreement = w[2];
    rc = rv_store_begin(rv_engine_store(E), &err);
    if (rc == RV_OK) rc = rv_inquiry_fetch(E, &lim, &in, &out, &err);
    if (rc == RV_OK) rc = rv_store_commit(rv_engine_store(E), &err);
    else rv_store_rollback(rv_engine_store(E));
    got = rc != RV_OK ? err.msg : out.outcome == RV_FETCH_OK ? "ok"
        : out.outcome == RV_FETCH_THROTTLED ? "throttled" : out.reason;
    okf(rc == RV_OK && strcmp(got, w[5]) == 0, "fetch by %s/%s with %s: %s (got %s)", w[1], w[3], w[4], w[5], got);
    if (rc == RV_OK) cJSON_Delete(out.reply);
    drain();
  } else {
    okf(false, "unknown scenario command '%s'", c);
  }
}

int main(int argc, char **argv){
  FILE *f;
  char line[8192], *copy;
  if (argc != 2) { fprintf(stderr, "usage: scenario-run FILE.scn\n"); return 2; }
  f = fopen(argv[1], "r");
  if (f == NULL) { printf("Bail out! cannot open %s\n", argv[1]); return 1; }
  copy = rv_strdup(argv[1]);
  snprintf(basedir, sizeof basedir, "%s", dirname(copy));
  rv_free(copy);
  snprintf(scriptdir, sizeof scriptdir, "%s/../fixtures/scripts", basedir);
  snprintf(dbpath, sizeof dbpath, "/tmp/ravand-scn-%d.db", (int)getpid());
  unlink(dbpath);
  rv_clock_init_virtual(&clk, 1774051200000LL);   /* 2026-03-21T00:00:00Z */
  rv_test_sms_reset();
  {  /* a fixed pepper: the inquiry adapter hashes its access codes with a key from it */
    unsigned char pepper[32];
    memset(pepper, 0x5a, sizeof pepper);
    rv_inquiry_set_pepper(pepper);
  }
  open_engine();
  while (fgets(line, sizeof line, f)) {
    char *w[128];
    int n;
    lineno++;
    line[strcspn(line, "\r\n")] = 0;
    n = split(line, w, 128);
    if (n > 0) cmd(w, n);
  }
  fclose(f);
  {
    rv_err err;
    rv_status rc = rv_store_integrity(rv_engine_store(E), &err);
    okf(rc == RV_OK, "integrity_check");
  }
  rv_adapters_unbind_engine(E);
  rv_engine_close(E);
  cJSON_Delete(last_bank_report);
  cJSON_Delete(last_feed_report);
  for (int i = 0; i < n_stubs; i++) { rv_adapter_unregister(&stubs[i].ops); cJSON_Delete(stubs[i].extra); }
  rv_test_sms_reset();
  {
    char p[300];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath); unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath); unlink(p);
  }
  printf("1..%d\n", n_ok + n_fail);
  return n_fail ? 1 : 0;
}
