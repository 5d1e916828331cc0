/*
** api/tasks.c -- the cartables: list and get tasks, claim, unclaim,
** complete with form data, transfer to another branch, comments.
**
** Who sees a task is policy.c's rule, applied in the SQL. Who acts on it:
** the roles of the route table, and only on tasks they see; a task claimed
** by someone else can be completed or claimed by nobody else (409) until
** it is released. Form data is checked by the engine against the task's
** declared fields (types, required, enum values; unknown fields refused);
** a task that declares no fields takes no data through the API, so the
** API can never be used to write arbitrary process variables.
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"
#include "core/fatext.h"
#include "core/mem.h"

/*--- GET /v1/tasks ---------------------------------------------------------------*/

typedef struct task_filter {
  const char *state, *assignee;
  int64_t cf, ct, df, dt, inst;
  bool has_cf, has_ct, has_df, has_dt, has_inst, unassigned, has_un;
  const char *branch, *county;        /* normalised (core/fatext.h), like the rows */
  char branch_buf[RV_SCOPE_BYTES + 1], county_buf[RV_SCOPE_BYTES + 1];
} task_filter;

/* A branch/county filter in the normal form the task rows are written in,
** so «شعبه كرج» typed with an Arabic kaf finds «شعبه کرج». Text that is not
** UTF-8 is kept as sent: it matches nothing. */
static const char *scope_filter(rv_req *r, const char *key, char *buf, size_t cap){
  const char *v = rv__q_str(r, key);
  if (v == NULL || rv_fa_normalize(v, buf, cap, NULL) != RV_OK) return v;
  return buf;
}

static void add_filters(rv_sql *s, rv_req *r, const task_filter *f){
  /* open is written as a literal: SQLite uses the partial indexes on open
  ** tasks (store.c, migration 8) only when the query states state='open' */
  if (strcmp(f->state, "open") == 0) rv__sql_add(s, " AND t.state='open'");
  else if (strcmp(f->state, "all") != 0) rv__sql_t(s, " AND t.state=?", f->state);
  if (rv__q_str(r, "process")) rv__sql_t(s, " AND t.process_id=?", rv__q_str(r, "process"));
  if (rv__q_str(r, "element")) rv__sql_t(s, " AND t.element_id=?", rv__q_str(r, "element"));
  if (rv__q_str(r, "status_text")) rv__sql_t(s, " AND t.status_text=?", rv__q_str(r, "status_text"));
  if (f->branch) rv__sql_t(s, " AND t.branch=?", f->branch);
  if (f->county) rv__sql_t(s, " AND t.county=?", f->county);
  if (f->assignee)
    rv__sql_t(s, " AND t.assignee=?", strcmp(f->assignee, "me") == 0 ? r->p.name : f->assignee);
  if (f->has_un) rv__sql_add(s, f->unassigned ? " AND t.assignee IS NULL" : " AND t.assignee IS NOT NULL");
  if (rv__q_str(r, "group"))
    rv__sql_t(s, " AND instr(','||replace(coalesce(t.candidate_groups,''),' ','')||',', ','||?||',')>0",
              rv__q_str(r, "group"));
  if (rv__q_str(r, "business_key")) rv__sql_t(s, " AND i.business_key=?", rv__q_str(r, "business_key"));
  if (f->has_inst) rv__sql_i(s, " AND t.instance_id=?", f->inst);
  if (f->has_cf) rv__sql_i(s, " AND t.created>=?", f->cf);
  if (f->has_ct) rv__sql_i(s, " AND t.created<?", f->ct);
  if (f->has_df) rv__sql_i(s, " AND t.due>=?", f->df);
  if (f->has_dt) rv__sql_i(s, " AND t.due<?", f->dt);
}

void rv__h_tasks(rv_req *r){
  static const char *const q[] = {
    "process", "element", "status_text", "branch", "county", "assignee", "group", "state",
    "created_from", "created_to", "due_from", "due_to", "business_key", "instance", "unassigned",
    "limit", "offset", NULL,
  };
  static const char *const cols_public =
    "SELECT t.id, t.instance_id AS instance, t.process_id AS process, t.element_id AS element,"
    " t.name, t.assignee, t.status_text, t.created, t.due, t.state"
    " FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE 1";
  static const char *const cols_staff =
    "SELECT t.id, t.instance_id AS instance, t.process_id AS process, t.element_id AS element,"
    " t.name, t.candidate_groups, t.assignee, t.branch, t.county, t.status_text, t.created, t.due,"
    " t.state, i.business_key FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE 1";
  task_filter f = {0};
  int64_t limit, offset;
  bool pub = r->p.role == RV_ROLE_APPLICANT || r->p.role == RV_ROLE_ORGANISATION;
  rv_sql s;

  if (!rv__q_parse(r, q) || !rv__q_page(r, &limit, &offset) ||
      !rv__q_time(r, "created_from", &f.cf, &f.has_cf) || !rv__q_time(r, "created_to", &f.ct, &f.has_ct) ||
      !rv__q_time(r, "due_from", &f.df, &f.has_df) || !rv__q_time(r, "due_to", &f.dt, &f.has_dt) ||
      !rv__q_int(r, "instance", 1, INT64_C(1) << 53, &f.inst, &f.has_inst) ||
      !rv__q_bool(r, "unassigned", &f.unassigned, &f.has_un)) return;
  f.state = rv__q_str(r, "state");
  if (f.state == NULL) f.state = "open";
  if (strcmp(f.state, "open") && strcmp(f.state, "completed") && strcmp(f.state, "canceled") &&
      strcmp(f.state, "all")) {
    rv__problem(r, 400, "'state' is open, completed, canceled or all");
    return;
  }
  f.assignee = rv__q_str(r, "assignee");
  f.branch = scope_filter(r, "branch", f.branch_buf, sizeof f.branch_buf);
  f.county = scope_filter(r, "county", f.county_buf, sizeof f.county_buf);
  rv__sql_init(&s, pub ? cols_public : cols_staff);
  add_filters(&s, r, &f);
  if (r->p.role == RV_ROLE_OPERATOR) {
    rv__sql_add(&s, " ORDER BY t.id");
  } else {
    /* by office and group UNION ALL assigned by name: see policy.c */
    rv__scope_tasks_arm(&s, &r->p, false);
    rv__sql_add(&s, " UNION ALL ");
    rv__sql_add(&s, pub ? cols_public : cols_staff);
    add_filters(&s, r, &f);
    rv__scope_tasks_arm(&s, &r->p, true);
    rv__sql_add(&s, " ORDER BY 1");
  }
  rv__reply_page_sql(r, &s, limit, offset, NULL);
}

/*--- One task ----------------------------------------------------------------------*/

/* The task if p may see it; NULL with a 404 otherwise. New cJSON. */
static cJSON *visible_task(rv_req *r){
  int64_t id = r->ids[0];
  cJSON *t = NULL;
  rv_err err;
  rv_status rc;
  snprintf(r->object, sizeof r->object, "task:%lld", (long long)id);
  if (!rv__task_visible(r, id)) { rv__not_found(r); return NULL; }
  rc = rv_engine_task_json(r->api->e, id, &t, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return NULL; }
  return t;
}

static void public_fields(rv_req *r, cJSON *t){
  if (r->p.role != RV_ROLE_APPLICANT && r->p.role != RV_ROLE_ORGANISATION) return;
  cJSON_DeleteItemFromObject(t, "candidate_groups");
  cJSON_DeleteItemFromObject(t, "branch");
  cJSON_DeleteItemFromObject(t, "county");
  cJSON_DeleteItemFromObject(t, "completed_by");
  cJSON_DeleteItemFromObject(t, "business_key");
}

void rv__h_task_get(rv_req *r){
  cJSON *t, *d = NULL;
  if (!rv__q_parse(r, NULL) || (t = visible_task(r)) == NULL) return;
  /* rv:display: the variables the step shows (to the applicant: only these) */
  if (rv_engine_task_display(r->api->e, r->ids[0], &d, NULL) == RV_OK && d)
    cJSON_AddItemToObject(t, "display", d);
  if (r->p.role != RV_ROLE_APPLICANT && r->p.role != RV_ROLE_ORGANISATION) {
    /* staff decide on the request's data: the instance's variables */
    cJSON *inst = NULL;
    rv_err err;
    if (rv_engine_instance_json(r->api->e, (int64_t)rv_json_int(t, "instance", 0), &inst, &err) == RV_OK) {
      cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(inst, "variables");
      cJSON_AddItemToObject(t, "variables", v ? v : cJSON_CreateObject());
      cJSON_Delete(inst);
    }
  }
  public_fields(r, t);
  rv__reply_json(r, 200, t);
}

static bool held_by_other(rv_req *r, const cJSON *t){
  const char *a = rv_json_str(t, "assignee");
  if (a && strcmp(a, r->p.name) != 0) {
    rv__problem(r, 409, "the task is claimed by another user");
    return true;
  }
  return false;
}

static void reply_task(rv_req *r, int64_t id){
  cJSON *t = NULL;
  rv_err err;
  rv_status rc = rv_engine_task_json(r->api->e, id, &t, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  public_fields(r, t);
  rv__reply_json(r, 200, t);
}

static void claim(rv_req *r, bool on){
  cJSON *t;
  rv_err err;
  rv_status rc;
  if (!rv__q_parse(r, NULL) || (t = visible_task(r)) == NULL) return;
  cJSON_Delete(t);
  rc = on ? rv_engine_task_claim(r->api->e, r->ids[0], r->p.name, &err)
          : rv_engine_task_unclaim(r->api->e, r->ids[0], r->p.name, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  reply_task(r, r->ids[0]);
}

void rv__h_task_claim(rv_req *r){ claim(r, true); }
void rv__h_task_unclaim(rv_req *r){ claim(r, false); }

/*--- POST /v1/tasks/{id}/complete ----------------------------------------------------*/

/* What completing needs to know of a task the caller sees: its instance,
** whether it is open and not held by someone else, whether it declares
** form fields. Read straight from its row: building the task's whole JSON
** view (rv_engine_task_json) for this was a tenth of a completion's CPU.
** The row comes from the visibility query itself (rv__scope_tasks, the
** same scope every lookup uses), so one indexed statement, kept prepared,
** both decides "yours or 404" and reads the row; it was two.
** A completion sent again -- the same user, the same data, as a client
** does whose reply was lost -- is answered as it was the first time, 200,
** with "duplicate": true, and changes nothing (*dup); the same data sent by
** another user, or other data, is 409 as before.
** False means the reply is set. */
static bool same_completion(sqlite3_stmt *s, const rv_req *r, const cJSON *data){
  const char *by = (const char *)sqlite3_column_text(s, 4), *was = (const char *)sqlite3_column_text(s, 5);
  cJSON *old;
  bool same;
  if (strcmp((const char *)sqlite3_column_text(s, 1), "completed") != 0 || by == NULL ||
      strcmp(by, r->p.name) != 0)
    return false;
  if (was == NULL) return data == NULL || cJSON_GetArraySize(data) == 0;
  old = rv_json_parse(was);
  same = old != NULL && (data ? cJSON_Compare(old, data, 1) : cJSON_GetArraySize(old) == 0);
  cJSON_Delete(old);
  return same;
}

static bool completable(rv_req *r, const cJSON *data, int64_t *inst, bool *dup){
  sqlite3_stmt *s;
  const char *form;
  bool ok = false;
  rv_sql q;
  rv_err err;
  int rc;
  snprintf(r->object, sizeof r->object, "task:%lld", (long long)r->ids[0]);
  *dup = false;
  rv__sql_init(&q, "SELECT t.instance_id, t.state, t.assignee, t.form, t.completed_by, t.data"
                   " FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE ");
  rv__sql_i(&q, "t.id=?", r->ids[0]);
  rv__scope_tasks(&q, &r->p);
  s = rv__sql_stmt(r->api, &q, &err);
  rv__sql_fini(&q);
  if (s == NULL) { rv__reply_err(r, err.code, &err); return false; }
  if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
    if (rc == SQLITE_DONE) rv__not_found(r);         /* missing, or not yours: the same 404 */
    else {
      rv_fail(&err, rc == SQLITE_BUSY ? RV_BUSY : RV_IO, "task: %s", sqlite3_errmsg(rv_store_db(r->api->st)));
      rv__reply_err(r, err.code, &err);
    }
  } else if (same_completion(s, r, data)) {
    *inst = sqlite3_column_int64(s, 0);
    *dup = ok = true;
  } else if (strcmp((const char *)sqlite3_column_text(s, 1), "open") != 0) {
    rv__problem(r, 409, "the task is %s", (const char *)sqlite3_column_text(s, 1));
  } else if (sqlite3_column_type(s, 2) != SQLITE_NULL &&
             strcmp((const char *)sqlite3_column_text(s, 2), r->p.name) != 0) {
    rv__problem(r, 409, "the task is claimed by another user");
  } else {
    /* the form is the array rv__form_json printed: "[]" when it has no field */
    form = (const char *)sqlite3_column_text(s, 3);
    if (data && cJSON_GetArraySize(data) > 0 && (form == NULL || form[0] != '[' || form[1] == ']'))
      rv__problem(r, 400, "this task declares no form fields; send no data");
    else {
      *inst = sqlite3_column_int64(s, 0);
      ok = true;
    }
  }
  sqlite3_reset(s);
  return ok;
}

void rv__h_task_complete(rv_req *r){
  static const char *const fields[] = { "data", NULL };
  const cJSON *data = NULL;
  cJSON *o;
  rv_err err;
  rv_status rc;
  int64_t inst = 0;
  bool dup;

  if (!rv__q_parse(r, NULL)) return;
  if (r->body && (!rv__body_fields(r, r->body, NULL, fields) ||
                  !rv__body_obj(r, r->body, "data", false, &data))) return;
  if (!completable(r, data, &inst, &dup)) return;
  if (!dup) {
    if (!rv__doc_refs_check(r, data)) return;         /* doc:sha256-... must be the caller's */
    rc = rv_engine_complete_task(r->api->e, r->ids[0], data, r->p.name, &err);
    if (rc == RV_OK) rc = rv__doc_refs_link(r, data, inst, &err);
    if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  }
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", (double)r->ids[0]);
  cJSON_AddStringToObject(o, "state", "completed");
  cJSON_AddNumberToObject(o, "instance", (double)inst);
  if (dup) cJSON_AddTrueToObject(o, "duplicate");
  {
    sqlite3_stmt *s = rv_store_stmt(r->api->st, "SELECT status, status_text FROM instances WHERE id=?");
    rv_store_bind(s, "i", inst);
    if (sqlite3_step(s) == SQLITE_ROW) {
      cJSON_AddStringToObject(o, "instance_status", (const char *)sqlite3_column_text(s, 0));
      if (sqlite3_column_type(s, 1) != SQLITE_NULL)
        cJSON_AddStringToObject(o, "status_text", (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
  }
  rv__reply_json(r, 200, o);
}

/*--- POST /v1/tasks/{id}/transfer ------------------------------------------------------*/

static rv_status add_comment(rv_req *r, int64_t task, int64_t inst, const char *text, rv_err *err){
  return rv_store_exec(r->api->st, err,
    "INSERT INTO task_comments(task_id, instance_id, author, body, created) VALUES(?,?,?,?,?)",
    "iitti", task, inst, r->p.name, text, rv_clock_now(rv_engine_clock(r->api->e)));
}

void rv__h_task_transfer(rv_req *r){
  static const char *const fields[] = { "branch", "reason", NULL };
  const char *branch, *reason;
  cJSON *t;
  rv_err err;
  rv_status rc;
  int64_t inst;

  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "branch", true, RV_SCOPE_BYTES, &branch) ||
      !rv__body_str(r, r->body, "reason", false, 500, &reason)) return;
  if (!rv__valid_scope(branch, false)) { rv__problem(r, 400, "'branch' is not a branch code"); return; }
  if ((t = visible_task(r)) == NULL) return;
  inst = rv_json_int(t, "instance", 0);
  if (held_by_other(r, t)) { cJSON_Delete(t); return; }
  cJSON_Delete(t);
  rc = rv_engine_task_transfer(r->api->e, r->ids[0], branch, r->p.name, reason, &err);
  if (rc == RV_OK && reason) rc = add_comment(r, r->ids[0], inst, reason, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  snprintf(r->detail, sizeof r->detail, "to branch %s", branch);
  /* the caller usually no longer sees it: answer with what changed */
  t = cJSON_CreateObject();
  cJSON_AddNumberToObject(t, "id", (double)r->ids[0]);
  cJSON_AddStringToObject(t, "branch", branch);
  cJSON_AddStringToObject(t, "state", "open");
  rv__reply_json(r, 200, t);
}

/*--- Comments ---------------------------------------------------------------------------*/

void rv__h_task_comments(rv_req *r){
  cJSON *t, *rows, *o;
  rv_sql s;
  rv_err err;
  if (!rv__q_parse(r, NULL) || (t = visible_task(r)) == NULL) return;
  cJSON_Delete(t);
  rv__sql_init(&s, "SELECT id, author, body, created FROM task_comments WHERE ");
  rv__sql_i(&s, "task_id=? ORDER BY id", r->ids[0]);
  rows = rv__sql_rows(r->api, &s, &err);
  rv__sql_fini(&s);
  if (rows == NULL) { rv__reply_err(r, err.code, &err); return; }
  o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "items", rows);
  rv__reply_json(r, 200, o);
}

void rv__h_task_comment_add(rv_req *r){
  static const char *const fields[] = { "text", NULL };
  const char *text;
  cJSON *t, *o;
  rv_err err;
  rv_status rc;
  int64_t inst;
  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "text", true, 2000, &text)) return;
  if ((t = visible_task(r)) == NULL) return;
  inst = rv_json_int(t, "instance", 0);
  cJSON_Delete(t);
  rc = add_comment(r, r->ids[0], inst, text, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", (double)rv_store_last_id(r->api->st));
  cJSON_AddNumberToObject(o, "task", (double)r->ids[0]);
  cJSON_AddStringToObject(o, "author", r->p.name);
  cJSON_AddStringToObject(o, "body", text);
  rv__reply_json(r, 201, o);
}
