/*
** runtime/taskops.c -- task assignment and office, for the HTTP API:
** claim, unclaim, transfer to another branch, and one task as JSON.
**
** These commands change only the task's side row (assignee, branch), not
** the instance's token state, so they do not go through the action queue.
** Each is still one command: one transaction (a savepoint inside a batch),
** a journal entry (the input, for replay) and a history row.
**
** The caller (api/) has already decided *who* may do this; the runtime
** checks only what the task's state allows:
**   claim     open, and unassigned or already held by the same user
**   unclaim   open, and unassigned or held by the same user
**   transfer  open; assignee cleared (the new office claims it afresh)
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "core/fatext.h"

#define SQL_TASK_ROW \
  "SELECT t.instance_id, t.state, t.assignee, t.branch, t.element_id, t.ei" \
  " FROM tasks t WHERE t.id=?"

typedef struct task_row {
  int64_t instance, ei;
  char    state[16];
  char   *assignee, *branch, *element;
} task_row;

static void row_fini(task_row *r){
  rv_free(r->assignee); rv_free(r->branch); rv_free(r->element);
}

static rv_status row_get(rv_engine *e, int64_t id, task_row *r, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(e->st, SQL_TASK_ROW);
  rv_status rc = RV_OK;
  memset(r, 0, sizeof *r);
  rv_store_bind(s, "i", id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    r->instance = sqlite3_column_int64(s, 0);
    snprintf(r->state, sizeof r->state, "%s", (const char *)sqlite3_column_text(s, 1));
    r->assignee = rv_strdup((const char *)sqlite3_column_text(s, 2));
    r->branch = rv_strdup((const char *)sqlite3_column_text(s, 3));
    r->element = rv_strdup((const char *)sqlite3_column_text(s, 4));
    r->ei = sqlite3_column_int64(s, 5);
  } else rc = rv_fail(err, RV_NOTFOUND, "no task %lld", (long long)id);
  sqlite3_reset(s);
  if (rc == RV_OK && strcmp(r->state, "open") != 0)
    rc = rv_fail(err, RV_CONFLICT, "task %lld is %s", (long long)id, r->state);
  return rc;
}

/* Journal the input (with the history mark, as engine.c does: see
** journal/journal.h) and record history; both in the open transaction.
** The payload names the task by element and ei too, as a recording does. */
static rv_status note(rv_engine *e, int64_t now, const task_row *r, const char *cmd,
                      const char *event, cJSON *payload, const char *detail, rv_err *err){
  int64_t mark = rv__hist_mark(e);
  char *p;
  rv_status rc;
  cJSON_AddStringToObject(payload, "element", r->element);
  cJSON_AddNumberToObject(payload, "ei", (double)r->ei);
  p = rv_json_print(payload);
  rc = rv_store_exec(e->st, err,
    "INSERT INTO journal(instance_id, at, command, payload, mark) VALUES(?,?,?,?,?)",
    "iitti", r->instance, now, cmd, p, mark);
  rv_free(p);
  if (rc == RV_OK)
    rc = rv_store_exec(e->st, err,
      "INSERT INTO history_log(instance_id, at, event, element_id, ei, detail) VALUES(?,?,?,?,?,?)",
      "iittit", r->instance, now, event, r->element, r->ei, detail);
  if (rc == RV_OK) rv__hist_wrote(e);
  return rc;
}

static rv_status finish(rv_engine *e, rv_status rc, rv_err *err){
  if (rc == RV_OK) {
    rc = rv_store_commit(e->st, err);
    if (rc == RV_OK && rv_store_depth(e->st) == 0) e->stats.commits++;
  } else rv_store_rollback(e->st);
  return rc;
}

static rv_status set_assignee(rv_engine *e, int64_t id, const char *user, bool claim, rv_err *err){
  task_row r;
  rv_status rc;
  int64_t now = rv_clock_now(e->clock);

  if (user == NULL || !*user) return rv_fail(err, RV_INVALID, "a user is required");
  rc = rv_store_begin(e->st, err);
  if (rc != RV_OK) return rc;
  e->stats.commands++;
  rc = row_get(e, id, &r, err);
  if (rc == RV_OK && r.assignee && strcmp(r.assignee, user) != 0)
    rc = rv_fail(err, RV_CONFLICT, "task %lld is claimed by another user", (long long)id);
  /* Claiming what one holds, or releasing what nobody holds: no change. */
  if (rc == RV_OK && (claim ? r.assignee == NULL : r.assignee != NULL)) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "task", (double)id);
    cJSON_AddStringToObject(p, "user", user);
    rc = rv_store_exec(e->st, err, "UPDATE tasks SET assignee=? WHERE id=?", "ti",
                       claim ? user : NULL, id);
    if (rc == RV_OK)
      rc = note(e, now, &r, claim ? "claim" : "unclaim", claim ? "TASK_CLAIMED" : "TASK_UNCLAIMED",
                p, user, err);
    cJSON_Delete(p);
  }
  row_fini(&r);
  return finish(e, rc, err);
}

rv_status rv_engine_task_claim(rv_engine *e, int64_t task, const char *user, rv_err *err){
  return set_assignee(e, task, user, true, err);
}

rv_status rv_engine_task_unclaim(rv_engine *e, int64_t task, const char *user, rv_err *err){
  return set_assignee(e, task, user, false, err);
}

static rv_status transfer(rv_engine *e, int64_t task, const char *branch,
                         const char *actor, const char *reason, rv_err *err){
  task_row r;
  rv_status rc;
  int64_t now = rv_clock_now(e->clock);

  if (branch == NULL || !*branch) return rv_fail(err, RV_INVALID, "a target branch is required");
  rc = rv_store_begin(e->st, err);
  if (rc != RV_OK) return rc;
  e->stats.commands++;
  rc = row_get(e, task, &r, err);
  if (rc == RV_OK && r.branch && strcmp(r.branch, branch) == 0)
    rc = rv_fail(err, RV_CONFLICT, "task %lld already belongs to branch %s", (long long)task, branch);
  if (rc == RV_OK) {
    cJSON *p = cJSON_CreateObject();
    char *detail;
    cJSON_AddNumberToObject(p, "task", (double)task);
    cJSON_AddStringToObject(p, "branch", branch);
    if (r.branch) cJSON_AddStringToObject(p, "from", r.branch);
    if (actor) cJSON_AddStringToObject(p, "actor", actor);
    if (reason) cJSON_AddStringToObject(p, "reason", reason);
    detail = rv_asprintf("%s -> %s%s%s", r.branch ? r.branch : "(none)", branch,
                         reason ? ": " : "", reason ? reason : "");
    rc = rv_store_exec(e->st, err, "UPDATE tasks SET branch=?, assignee=NULL WHERE id=?", "ti",
                       branch, task);
    if (rc == RV_OK) rc = note(e, now, &r, "transfer", "TASK_TRANSFERRED", p, detail, err);
    rv_free(detail);
    cJSON_Delete(p);
  }
  row_fini(&r);
  return finish(e, rc, err);
}

/* The branch is a scope value: kept in normal form (core/fatext.h), as
** the principals' branch is, so that policy.c's t.branch=? matches. */
rv_status rv_engine_task_transfer(rv_engine *e, int64_t task, const char *branch,
                                  const char *actor, const char *reason, rv_err *err){
  char *b = rv_fa_normdup(branch);
  rv_status rc = transfer(e, task, b, actor, reason, err);
  rv_free(b);
  return rc;
}

static cJSON *col_value(sqlite3_stmt *s, int i, bool parse){
  switch (sqlite3_column_type(s, i)) {
  case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(s, i));
  case SQLITE_FLOAT:   return cJSON_CreateNumber(sqlite3_column_double(s, i));
  case SQLITE_NULL:    return cJSON_CreateNull();
  default: {
    const char *t = (const char *)sqlite3_column_text(s, i);
    cJSON *v = parse ? rv_json_parse(t) : NULL;
    return v ? v : cJSON_CreateString(t);
  }
  }
}

rv_status rv_engine_task_json(rv_engine *e, int64_t task, cJSON **out, rv_err *err){
  static const char *const names[] = {
    "id", "instance", "process", "element", "name", "candidate_groups", "assignee",
    "branch", "county", "status_text", "form", "created", "due", "state",
    "completed_by", "completed", "data", "business_key",
  };
  sqlite3_stmt *s = rv_store_stmt(e->st,
    "SELECT t.id, t.instance_id, t.process_id, t.element_id, t.name, t.candidate_groups,"
    " t.assignee, t.branch, t.county, t.status_text, t.form, t.created, t.due, t.state,"
    " t.completed_by, t.completed, t.data, i.business_key"
    " FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE t.id=?");
  rv_status rc = RV_OK;
  *out = NULL;
  rv_store_bind(s, "i", task);
  if (sqlite3_step(s) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
      bool json = strcmp(names[i], "form") == 0 || strcmp(names[i], "data") == 0;
      cJSON_AddItemToObject(o, names[i], col_value(s, i, json));
    }
    *out = o;
  } else rc = rv_fail(err, RV_NOTFOUND, "no task %lld", (long long)task);
  sqlite3_reset(s);
  return rc;
}
