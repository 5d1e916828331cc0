/*
** journal/outputs.c -- what an instance tree did, as output lines.
**
** One function turns history rows into lines for the live database
** (record) and for a replay database alike, so equal behaviour gives
** equal lines. Lines never carry database ids (instances are numbered in
** creation order within the tree; tasks and jobs are named by element),
** and values come from the rows as they are at the end of the run.
**
** Line kinds (docs/testing.md has the full table):
**   enter / leave / terminate   an element was entered, left, terminated
**   flow                        a sequence flow was taken
**   decision                    a gateway's conditions, their values and choice
**                               (explanation only: never compared)
**   status                      the applicant-facing status text changed
**   task                        a human task was created (assignee, groups, ...)
**   sms                         an SMS was queued (to, text)
**   job                         an adapter job was queued (adapter, input)
**   incident                    an incident was raised
**   instance                    an instance started, completed, terminated, was canceled
**   event                       other history (timer fired, message correlated, ...)
**   ledger                      a payroll/finance ledger row written for the tree
**                               (live runs only: a replay calls no adapter, so this is
**                               carried, never compared; the job line that asked for it is)
**   end                         the final state of an instance
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "journal/journal_int.h"

int64_t rv__jr_scalar(sqlite3 *db, const char *sql, int64_t arg, int64_t dflt){
  sqlite3_stmt *s;
  int64_t v = dflt;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) return dflt;
  sqlite3_bind_int64(s, 1, arg);
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/*--- Trees -------------------------------------------------------------------------*/

static void tree_add(rv__jr_tree *t, int64_t id, const char *proc){
  t->ids = rv_realloc(t->ids, sizeof *t->ids * (size_t)(t->n + 1));
  t->procs = rv_realloc(t->procs, sizeof *t->procs * (size_t)(t->n + 1));
  t->ids[t->n] = id;
  t->procs[t->n] = rv_strdup(proc ? proc : "");
  t->n++;
}

void rv__jr_tree_load(sqlite3 *db, int64_t root, rv__jr_tree *t){
  sqlite3_stmt *s = NULL;
  memset(t, 0, sizeof *t);
  if (root <= 0) return;
  /* descendants have larger ids than their parents: one pass in id order */
  sqlite3_prepare_v2(db,
    "WITH RECURSIVE tr(id) AS (SELECT ?1 UNION SELECT i.id FROM instances i JOIN tr"
    " ON i.parent_instance=tr.id) SELECT i.id, i.process_id FROM instances i JOIN tr"
    " ON tr.id=i.id ORDER BY i.id", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, root);
  while (sqlite3_step(s) == SQLITE_ROW)
    tree_add(t, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1));
  sqlite3_finalize(s);
}

void rv__jr_tree_fini(rv__jr_tree *t){
  for (int i = 0; i < t->n; i++) rv_free(t->procs[i]);
  rv_free(t->procs);
  rv_free(t->ids);
  memset(t, 0, sizeof *t);
}

int rv__jr_tree_index(const rv__jr_tree *t, int64_t id){
  for (int i = 0; i < t->n; i++) if (t->ids[i] == id) return i + 1;
  return 0;
}

char *rv__jr_tree_sql_list(const rv__jr_tree *t){
  rv_buf b;
  rv_buf_init(&b, 0);
  rv_buf_adds(&b, "-1");                 /* never an id: keeps "IN (...)" valid */
  for (int i = 0; i < t->n; i++) rv_buf_printf(&b, ",%lld", (long long)t->ids[i]);
  return rv_buf_take(&b);
}

/*--- Output lists ----------------------------------------------------------------*/

void rv__jr_outs_add(rv__jr_outs *o, cJSON *line, int group){
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 64;
    o->v = rv_realloc(o->v, sizeof *o->v * (size_t)o->cap);
    o->group = rv_realloc(o->group, sizeof *o->group * (size_t)o->cap);
  }
  o->v[o->n] = line;
  o->group[o->n] = group;
  o->n++;
}

void rv__jr_outs_fini(rv__jr_outs *o){
  for (int i = 0; i < o->n; i++) cJSON_Delete(o->v[i]);
  rv_free(o->v);
  rv_free(o->group);
  memset(o, 0, sizeof *o);
}

bool rv__jr_is_info(const cJSON *line){
  const char *k = rv_json_str(line, "out");
  return k && (strcmp(k, "decision") == 0 || strcmp(k, "ledger") == 0);
}

/*--- Canonical JSON ---------------------------------------------------------------*/

static int key_cmp(const void *a, const void *b){
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

cJSON *rv__jr_sorted(const cJSON *v){
  cJSON *o;
  const cJSON *it;
  if (v == NULL) return NULL;
  if (cJSON_IsArray(v)) {
    o = cJSON_CreateArray();
    cJSON_ArrayForEach(it, v) cJSON_AddItemToArray(o, rv__jr_sorted(it));
    return o;
  }
  if (cJSON_IsObject(v)) {
    int n = cJSON_GetArraySize(v), i = 0;
    const cJSON **kids = rv_malloc(sizeof *kids * (size_t)(n + 1));
    o = cJSON_CreateObject();
    cJSON_ArrayForEach(it, v) kids[i++] = it;
    qsort(kids, (size_t)n, sizeof *kids, key_cmp);
    for (i = 0; i < n; i++) cJSON_AddItemToObject(o, kids[i]->string, rv__jr_sorted(kids[i]));
    rv_free(kids);
    return o;
  }
  return cJSON_Duplicate(v, 1);
}

char *rv__jr_canon(const cJSON *line){
  cJSON *s = rv__jr_sorted(line);
  char *t = rv_json_print(s);
  cJSON_Delete(s);
  return t;
}

/*--- History -> lines ------------------------------------------------------------*/

static cJSON *line_new(const char *kind, int k, const char *element){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "out", kind);
  cJSON_AddNumberToObject(o, "inst", k);
  if (element) cJSON_AddStringToObject(o, "element", element);
  return o;
}

static void add_col(cJSON *o, const char *key, sqlite3_stmt *s, int col){
  switch (sqlite3_column_type(s, col)) {
  case SQLITE_NULL: break;
  case SQLITE_INTEGER: cJSON_AddNumberToObject(o, key, (double)sqlite3_column_int64(s, col)); break;
  default:
    if (*(const char *)sqlite3_column_text(s, col))
      cJSON_AddStringToObject(o, key, (const char *)sqlite3_column_text(s, col));
  }
}

static void task_line(sqlite3 *db, cJSON *o, const char *detail){
  sqlite3_stmt *s = NULL;
  long long id = 0;
  if (detail == NULL || sscanf(detail, "task %lld", &id) != 1) return;
  sqlite3_prepare_v2(db, "SELECT name, candidate_groups, assignee, branch, county, due"
                         " FROM tasks WHERE id=?", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    add_col(o, "name", s, 0);
    add_col(o, "groups", s, 1);
    add_col(o, "assignee", s, 2);
    add_col(o, "branch", s, 3);
    add_col(o, "county", s, 4);
    if (sqlite3_column_int64(s, 5) > 0) add_col(o, "due", s, 5);
  }
  sqlite3_finalize(s);
}

/* The input of a job answered inside its command (no row: engine.c
** answers_now), from its entry in the instance's "answers" journal rows:
** the latest answer for that element instance. */
static cJSON *answered_input(sqlite3 *db, int64_t inst, int64_t ei, const char *elem){
  sqlite3_stmt *s = NULL;
  cJSON *in = NULL;
  sqlite3_prepare_v2(db, "SELECT payload FROM journal WHERE instance_id=? AND command='answers'"
                         " ORDER BY seq DESC", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, inst);
  while (in == NULL && sqlite3_step(s) == SQLITE_ROW) {
    cJSON *arr = rv_json_parse((const char *)sqlite3_column_text(s, 0));
    const cJSON *a, *found = NULL;
    cJSON_ArrayForEach(a, arr)
      if (rv_json_int(a, "inst", 0) == inst && rv_json_int(a, "ei", -1) == ei &&
          rv_json_str(a, "element") && strcmp(rv_json_str(a, "element"), elem) == 0 &&
          cJSON_GetObjectItemCaseSensitive(a, "input"))
        found = cJSON_GetObjectItemCaseSensitive(a, "input");
    if (found) in = cJSON_Duplicate(found, 1);
    cJSON_Delete(arr);
  }
  sqlite3_finalize(s);
  return in;
}

/* The job a JOB_CREATED row announced: its input as queued -- from its
** row, or where a job answered inside its command left none, from the
** journal. */
static cJSON *job_input(sqlite3 *db, int64_t inst, int64_t ei, const char *elem, const char *adapter){
  sqlite3_stmt *s = NULL;
  cJSON *in = NULL;
  sqlite3_prepare_v2(db, "SELECT input FROM jobs WHERE instance_id=? AND ei=? AND element_id=?"
                         " AND adapter=? ORDER BY id DESC LIMIT 1", -1, &s, NULL);
  sqlite3_bind_int64(s, 1, inst);
  sqlite3_bind_int64(s, 2, ei);
  sqlite3_bind_text(s, 3, elem ? elem : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 4, adapter ? adapter : "", -1, SQLITE_TRANSIENT);
  if (sqlite3_step(s) == SQLITE_ROW) in = rv_json_parse((const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return in ? in : answered_input(db, inst, ei, elem ? elem : "");
}

/* History events whose detail is stable text worth comparing; any other
** event is shown without its detail (it may hold ids). */
static const char *const detail_events[] = {
  "TASK_COMPLETED", "MESSAGE_CORRELATED", "SIGNAL_RECEIVED", "BOUNDARY_TRIGGERED",
  "EVENT_SUBPROCESS_TRIGGERED", "ERROR_THROWN", "ESCALATION_THROWN", "INCIDENT_RESOLVED",
  "TASK_CLAIMED", "TASK_UNCLAIMED", "TASK_TRANSFERRED", NULL
};

static cJSON *history_line(sqlite3 *db, int k, int64_t inst, const char *ev, const char *elem,
                           int64_t ei, const char *detail){
  cJSON *o;
  if (strcmp(ev, "ELEMENT_ACTIVATED") == 0) return line_new("enter", k, elem);
  if (strcmp(ev, "ELEMENT_COMPLETED") == 0) {
    o = line_new("leave", k, elem);
    if (detail) cJSON_AddStringToObject(o, "how", detail);
    return o;
  }
  if (strcmp(ev, "ELEMENT_TERMINATED") == 0) return line_new("terminate", k, elem);
  if (strcmp(ev, "FLOW_TAKEN") == 0) {
    o = line_new("flow", k, NULL);
    cJSON_AddStringToObject(o, "flow", detail ? detail : "");
    return o;
  }
  if (strcmp(ev, "GATEWAY_DECISION") == 0) {
    o = line_new("decision", k, elem);
    cJSON_AddStringToObject(o, "detail", detail ? detail : "");
    return o;
  }
  if (strcmp(ev, "STATUS") == 0) {
    o = line_new("status", k, elem);
    cJSON_AddStringToObject(o, "text", detail ? detail : "");
    return o;
  }
  if (strcmp(ev, "TASK_CREATED") == 0) {
    o = line_new("task", k, elem);
    task_line(db, o, detail);
    return o;
  }
  if (strcmp(ev, "JOB_CREATED") == 0) {
    cJSON *in = job_input(db, inst, ei, elem, detail);
    if (detail && strcmp(detail, "sms") == 0) {
      const char *to = rv_json_str(in, "to"), *text = rv_json_str(in, "text");
      o = line_new("sms", k, elem);
      cJSON_AddStringToObject(o, "to", to ? to : "");
      cJSON_AddStringToObject(o, "text", text ? text : "");
    } else {
      o = line_new("job", k, elem);
      cJSON_AddStringToObject(o, "adapter", detail ? detail : "");
      cJSON_AddItemToObject(o, "input", in ? rv__jr_sorted(in) : cJSON_CreateNull());
    }
    cJSON_Delete(in);
    return o;
  }
  if (strcmp(ev, "INCIDENT_CREATED") == 0) {
    o = line_new("incident", k, elem);
    cJSON_AddStringToObject(o, "message", detail ? detail : "");
    return o;
  }
  if (strncmp(ev, "INSTANCE_", 9) == 0) {
    char word[32];
    size_t n = strlen(ev + 9);
    if (n >= sizeof word) n = sizeof word - 1;
    for (size_t i = 0; i < n; i++) word[i] = (char)(ev[9 + i] | 0x20);   /* lower case */
    word[n] = 0;
    o = line_new("instance", k, NULL);
    cJSON_AddStringToObject(o, "event", word);
    if (detail) cJSON_AddStringToObject(o, "detail", detail);
    return o;
  }
  o = line_new("event", k, elem);
  cJSON_AddStringToObject(o, "event", ev);
  for (int i = 0; detail && detail_events[i]; i++)
    if (strcmp(detail_events[i], ev) == 0) cJSON_AddStringToObject(o, "detail", detail);
  return o;
}

void rv__jr_outputs(sqlite3 *db, const rv__jr_tree *t, int64_t lo, int64_t hi, int group, rv__jr_outs *o){
  char *list = rv__jr_tree_sql_list(t);
  char *sql = rv_asprintf("SELECT instance_id, event, element_id, ei, detail FROM history"
                          " WHERE instance_id IN (%s) AND id>?1 AND (?2<0 OR id<=?2) ORDER BY id, seq", list);
  sqlite3_stmt *s = NULL;
  sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  sqlite3_bind_int64(s, 1, lo);
  sqlite3_bind_int64(s, 2, hi);
  while (sqlite3_step(s) == SQLITE_ROW) {
    int64_t inst = sqlite3_column_int64(s, 0);
    int k = rv__jr_tree_index(t, inst);
    if (k == 0) continue;
    rv__jr_outs_add(o, history_line(db, k, inst, (const char *)sqlite3_column_text(s, 1),
                                (const char *)sqlite3_column_text(s, 2),
                                sqlite3_column_int64(s, 3),
                                (const char *)sqlite3_column_text(s, 4)), group);
  }
  sqlite3_finalize(s);
  rv_free(sql);
  rv_free(list);
}

/*--- Ledger rows ----------------------------------------------------------------------*/

void rv__jr_ledger(sqlite3 *db, const rv__jr_tree *t, int group, rv__jr_outs *o){
  char *list, *sql;
  sqlite3_stmt *s = NULL;
  if (rv__jr_scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='fin_ledger'", 0, 0) == 0)
    return;
  list = rv__jr_tree_sql_list(t);
  sql = rv_asprintf("SELECT instance_id, element_id, ledger, national_id, period, sheba, amount_rials,"
                    " kind, reference FROM fin_ledger WHERE instance_id IN (%s) ORDER BY id", list);
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
    while (sqlite3_step(s) == SQLITE_ROW) {
      cJSON *l = line_new("ledger", rv__jr_tree_index(t, sqlite3_column_int64(s, 0)),
                          (const char *)sqlite3_column_text(s, 1));
      add_col(l, "ledger", s, 2);
      add_col(l, "national_id", s, 3);
      add_col(l, "period", s, 4);
      add_col(l, "sheba", s, 5);
      add_col(l, "amount_rials", s, 6);
      add_col(l, "kind", s, 7);
      add_col(l, "reference", s, 8);
      rv__jr_outs_add(o, l, group);
    }
  }
  sqlite3_finalize(s);
  rv_free(sql);
  rv_free(list);
}

/*--- End states ---------------------------------------------------------------------*/

static int str_cmp(const void *a, const void *b){
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void rv__jr_end_states(rv_engine *e, const rv__jr_tree *t, int group, rv__jr_outs *o){
  for (int k = 1; k <= t->n; k++) {
    cJSON *in = NULL, *line, *w, *tm;
    const cJSON *it;
    const char *names[256];
    char *bufs[256];
    int nn = 0;
    rv_err err;
    if (rv_engine_instance_json(e, t->ids[k - 1], &in, &err) != RV_OK) continue;
    line = line_new("end", k, NULL);
    cJSON_AddStringToObject(line, "process", rv_json_str(in, "process"));
    cJSON_AddStringToObject(line, "status", rv_json_str(in, "status"));
    if (rv_json_str(in, "status_text"))
      cJSON_AddStringToObject(line, "status_text", rv_json_str(in, "status_text"));
    cJSON_AddItemToObject(line, "vars", rv__jr_sorted(cJSON_GetObjectItemCaseSensitive(in, "variables")));
    /* where tokens rest: "element" or "element:incident" / ":joining", sorted */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(in, "tokens")) {
      const char *el = rv_json_str(it, "element"), *st = rv_json_str(it, "state");
      if (el == NULL || nn >= 256) continue;
      bufs[nn] = (st && (strcmp(st, "incident") == 0 || strcmp(st, "joining") == 0))
               ? rv_asprintf("%s:%s", el, st) : rv_strdup(el);
      names[nn] = bufs[nn];
      nn++;
    }
    qsort(names, (size_t)nn, sizeof *names, str_cmp);
    w = cJSON_AddArrayToObject(line, "waiting");
    for (int i = 0; i < nn; i++) cJSON_AddItemToArray(w, cJSON_CreateString(names[i]));
    for (int i = 0; i < nn; i++) rv_free(bufs[i]);
    tm = cJSON_AddArrayToObject(line, "timers");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(in, "timers")) {
      cJSON *x = cJSON_CreateObject();
      cJSON_AddStringToObject(x, "element", rv_json_str(it, "element") ? rv_json_str(it, "element") : "");
      cJSON_AddNumberToObject(x, "due", (double)rv_json_int(it, "due", 0));
      cJSON_AddItemToArray(tm, x);
    }
    cJSON_Delete(in);
    rv__jr_outs_add(o, line, group);
  }
}
