/*
** api/instances.c -- start, list, get, cancel; and "My requests".
**
** Applicants are matched to instances by business key = national ID: an
** applicant's start always gets their own national ID as business key,
** and they see exactly the instances with that key. Organisation users
** see the instances their organisation started (api_starts). Staff see an
** instance when one of its tasks is theirs (policy.c); operators see all.
**
** Two views: staff and operators get the engine's full view (tokens,
** variables, jobs, history with gateway decisions); applicants and
** organisations get the applicant-facing one (status texts in Persian,
** their status history, their open tasks) and never the variables.
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"
#include "cal/cal.h"
#include "core/mem.h"

static const char *status_fa(const char *status){
  if (status == NULL) return NULL;
  if (strcmp(status, "active") == 0) return "در جریان";
  if (strcmp(status, "completed") == 0) return "مختومه";
  if (strcmp(status, "canceled") == 0) return "لغو شده";
  if (strcmp(status, "terminated") == 0) return "خاتمه یافته";
  return status;
}

static bool public_view(const rv_principal *p){
  return p->role == RV_ROLE_APPLICANT || p->role == RV_ROLE_ORGANISATION;
}

/* Add "status_label": the applicant-facing text, or a Persian word for
** the engine status when the process set none. */
static void add_label(cJSON *o){
  const char *t = rv_json_str(o, "status_text");
  cJSON_AddStringToObject(o, "status_label", t ? t : status_fa(rv_json_str(o, "status")));
}

/*--- POST /v1/instances, POST /v1/my/requests ---------------------------------------------*/

typedef struct start_req {
  const char *process, *message, *bkey, *rkey;
  int64_t     version;
  const cJSON *vars;
} start_req;

static void reply_started(rv_req *r, int64_t id, const char *process, const char *result, int status){
  sqlite3_stmt *s = rv_store_stmt(r->api->st, "SELECT status, status_text, process_id FROM instances WHERE id=?");
  cJSON *o = cJSON_CreateObject();
  char loc[64];
  cJSON_AddNumberToObject(o, "id", (double)id);
  rv_store_bind(s, "i", id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    cJSON_AddStringToObject(o, "process", process ? process : (const char *)sqlite3_column_text(s, 2));
    cJSON_AddStringToObject(o, "status", (const char *)sqlite3_column_text(s, 0));
    if (sqlite3_column_type(s, 1) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "status_text", (const char *)sqlite3_column_text(s, 1));
  }
  sqlite3_reset(s);
  if (result) cJSON_AddStringToObject(o, "result", result);
  add_label(o);
  snprintf(r->object, sizeof r->object, "instance:%lld", (long long)id);
  snprintf(loc, sizeof loc, "/v1/instances/%lld", (long long)id);
  if (status == 201) r->location = rv_strdup(loc);
  rv__reply_json(r, status, o);
}

static rv_status record_start(rv_req *r, int64_t id, rv_err *err){
  bool org = r->p.role == RV_ROLE_ORGANISATION;
  return rv_store_exec(r->api->st, err,
    "INSERT OR IGNORE INTO api_starts(instance_id, principal_id, role, organisation, agreement)"
    " VALUES(?,?,?,?,?)", "iittt", id, r->p.id, rv__role_name(r->p.role),
    org ? r->p.organisation : NULL, org ? r->p.agreement : NULL);
}

/* The message of an applicant's request (rv:startableBy on a message start
** event): key = the applicant's national ID. It starts a case, or reaches
** the applicant's open one (e.g. supplementary insurance: one open request
** per pensioner) -- never anyone else's. */
static void start_by_message(rv_req *r, const start_req *sr, const rv_start_info *info, cJSON *vars){
  const char *nid = r->p.national_id;
  sqlite3_stmt *s;
  cJSON *res = NULL;
  char *mid = NULL;
  const char *result;
  int64_t id;
  bool keyless, ok_key = false;
  rv_err err;
  rv_status rc;

  /* a subscription without a key would take anyone's message: refuse */
  s = rv_store_stmt(r->api->st, "SELECT 1 FROM subscriptions WHERE kind='message' AND name=?"
                                " AND instance_id<>0 AND corr_key IS NULL LIMIT 1");
  rv_store_bind(s, "t", sr->message);
  keyless = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  if (keyless) {
    rv__problem(r, 409, "message '%s' is awaited without a correlation key; it cannot be sent from the portal",
                sr->message);
    return;
  }
  if (sr->rkey) mid = rv_asprintf("api:%lld:%s", (long long)r->p.id, sr->rkey);
  rc = rv_engine_correlate(r->api->e, sr->message, nid, vars, mid, 0, &res, &err);
  rv_free(mid);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  result = rv_json_str(res, "result");
  id = rv_json_int(res, "instance", 0);
  if (id > 0) {
    s = rv_store_stmt(r->api->st, "SELECT business_key FROM instances WHERE id=?");
    rv_store_bind(s, "i", id);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
      ok_key = strcmp((const char *)sqlite3_column_text(s, 0), nid) == 0;
    sqlite3_reset(s);
  }
  if (id <= 0 || !ok_key) {
    /* nothing took it, or it reached a case that is not the applicant's */
    r->rollback = true;
    rv__problem(r, 409, "the request could not be filed (%s)", result ? result : "?");
    cJSON_Delete(res);
    return;
  }
  snprintf(r->detail, sizeof r->detail, "message %.80s: %s", sr->message, result);
  if ((strcmp(result, "started") == 0 && (rc = record_start(r, id, &err)) != RV_OK) ||
      (rc = rv__doc_refs_link(r, vars, id, &err)) != RV_OK) {
    cJSON_Delete(res);
    rv__reply_err(r, rc, &err);
    return;
  }
  reply_started(r, id, NULL, result, strcmp(result, "started") == 0 ? 201 : 200);
  cJSON_Delete(res);
}

/* Start for anyone the route lets through. Applicants and organisations
** start only what the model (or the serve option) opens to their role; the
** server sets national_id, organisation, started_by and the business key. */
static void start(rv_req *r, const start_req *sr){
  rv_principal *p = &r->p;
  bool pub = p->role == RV_ROLE_APPLICANT || p->role == RV_ROLE_ORGANISATION;
  const char *bkey = sr->bkey, *person = NULL;
  cJSON *vars = sr->vars ? cJSON_Duplicate(sr->vars, 1) : cJSON_CreateObject(), *it;
  char *nskey = NULL, bk[RV_SCOPE_BYTES + 8];
  rv_start_info info;
  int64_t id = 0;
  rv_err err;
  rv_status rc;

  snprintf(r->object, sizeof r->object, "%s:%.80s", sr->message ? "message" : "process",
           sr->message ? sr->message : sr->process);
  if (pub) {
    const char *given = rv_json_str(vars, "national_id");
    if (p->role == RV_ROLE_APPLICANT) {
      if ((given && strcmp(given, p->national_id) != 0) || (bkey && strcmp(bkey, p->national_id) != 0)) {
        rv__problem(r, 400, "your requests carry your own national ID; leave 'national_id' and 'business_key' out");
        goto out;
      }
      person = p->national_id;
    } else {
      /* an agency files a case for an insured person: the key is that person's national ID */
      if (given && bkey && strcmp(given, bkey) != 0) {
        rv__problem(r, 400, "'business_key' and 'variables.national_id' differ");
        goto out;
      }
      person = bkey ? bkey : given;
      if (person && !rv_valid_national_id(person)) {
        rv__problem(r, 400, "'business_key' of a case an organisation files is the person's national ID;"
                            " '%.20s' is not a valid one", person);
        goto out;
      }
      if (rv_json_str(vars, "organisation") && strcmp(rv_json_str(vars, "organisation"), p->organisation) != 0) {
        rv__problem(r, 400, "'organisation' is your organisation; leave it out");
        goto out;
      }
    }
    for (it = vars->child; it; it = it->next)
      if (strcmp(it->string, "started_by") == 0) {
        rv__problem(r, 400, "'started_by' is set by the server");
        goto out;
      }
    cJSON_DeleteItemFromObjectCaseSensitive(vars, "national_id");
    if (p->role == RV_ROLE_ORGANISATION) cJSON_DeleteItemFromObjectCaseSensitive(vars, "organisation");
  }
  rc = rv_engine_start_info(r->api->e, sr->process, (int)sr->version, sr->message,
                            pub ? rv__role_name(p->role) : NULL, pub ? vars : NULL, &info, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); goto out; }
  if (!rv__may_start(r->api, p, &info)) {
    rv__problem(r, 403, "your role may not start '%s'", sr->message ? sr->message : sr->process);
    goto out;
  }
  if (pub && (info.declared || info.n_fields > 0) && !info.form_ok) {
    /* opened by the model, or a start form declared: the form (rv:field on the start
    ** event) is the schema; a start opened only by the serve option keeps open variables */
    rv__problem(r, 400, "%s", info.form_error);
    goto out;
  }
  if (!rv__doc_refs_check(r, vars)) goto out;          /* doc:sha256-... must be the caller's */
  if (person) cJSON_AddStringToObject(vars, "national_id", person);
  if (p->role == RV_ROLE_ORGANISATION) {
    cJSON *by = cJSON_CreateObject();
    cJSON_AddStringToObject(vars, "organisation", p->organisation);
    cJSON_AddStringToObject(by, "role", "organisation");
    cJSON_AddStringToObject(by, "principal", p->name);
    cJSON_AddStringToObject(by, "organisation", p->organisation);
    cJSON_AddStringToObject(by, "agreement", p->agreement);
    cJSON_AddItemToObject(vars, "started_by", by);
  }
  if (sr->message) { start_by_message(r, sr, &info, vars); goto out; }
  switch (p->role) {
  case RV_ROLE_APPLICANT:
    bkey = p->national_id;
    break;
  case RV_ROLE_ORGANISATION:
    if (person) bkey = person;
    else {
      snprintf(bk, sizeof bk, "org:%s", p->organisation);
      bkey = bk;
    }
    break;
  default:
    break;
  }
  /* request keys are per principal: one caller cannot learn another's instance */
  if (sr->rkey) nskey = rv_asprintf("api:%lld:%s", (long long)p->id, sr->rkey);
  rc = rv_engine_start_keyed(r->api->e, nskey, sr->process, (int)sr->version, vars, bkey, &id, &err);
  rv_free(nskey);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); goto out; }
  if ((rc = record_start(r, id, &err)) != RV_OK || (rc = rv__doc_refs_link(r, vars, id, &err)) != RV_OK) {
    rv__reply_err(r, rc, &err);
    goto out;
  }
  if (p->role == RV_ROLE_ORGANISATION)
    snprintf(r->detail, sizeof r->detail, "for %s", person ? person : "the organisation");
  reply_started(r, id, sr->process, NULL, 201);
out:
  cJSON_Delete(vars);
}

void rv__h_instance_start(rv_req *r){
  static const char *const fields[] = { "process", "version", "variables", "business_key",
                                        "request_key", NULL };
  start_req sr = {0};
  if (!rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "process", true, 128, &sr.process) ||
      !rv__body_int(r, r->body, "version", false, 1, 1000000, &sr.version, NULL) ||
      !rv__body_obj(r, r->body, "variables", false, &sr.vars) ||
      !rv__body_str(r, r->body, "business_key", false, 128, &sr.bkey) ||
      !rv__body_str(r, r->body, "request_key", false, 128, &sr.rkey)) return;
  if (!rv__valid_ident(sr.process, 128)) { rv__problem(r, 400, "'process' is not a process id"); return; }
  start(r, &sr);
}

/* An applicant files a request: {process | message, variables?, request_key?}. */
void rv__h_my_request_start(rv_req *r){
  static const char *const fields[] = { "process", "message", "variables", "request_key", NULL };
  start_req sr = {0};
  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "process", false, 128, &sr.process) ||
      !rv__body_str(r, r->body, "message", false, 128, &sr.message) ||
      !rv__body_obj(r, r->body, "variables", false, &sr.vars) ||
      !rv__body_str(r, r->body, "request_key", false, 128, &sr.rkey)) return;
  if ((sr.process == NULL) == (sr.message == NULL)) {
    rv__problem(r, 400, "give either 'process' or 'message'");
    return;
  }
  if (!rv__valid_ident(sr.process ? sr.process : sr.message, 128)) {
    rv__problem(r, 400, "'%s' is not a %s name", sr.process ? "process" : "message", sr.process ? "process" : "message");
    return;
  }
  start(r, &sr);
}

/*--- GET /v1/instances ---------------------------------------------------------------*/

static const char *const list_q[] = {
  "process", "version", "status", "status_text", "business_key", "started_from", "started_to",
  "waiting_at", "incident", "limit", "offset", NULL,
};

#define WAITING_AT \
  " AND (EXISTS (SELECT 1 FROM tasks w WHERE w.instance_id=i.id AND w.state='open' AND w.element_id=?)" \
  " OR EXISTS (SELECT 1 FROM timers w WHERE w.instance_id=i.id AND w.element_id=?)" \
  " OR EXISTS (SELECT 1 FROM subscriptions w WHERE w.instance_id=i.id AND w.element_id=?)" \
  " OR EXISTS (SELECT 1 FROM jobs w WHERE w.instance_id=i.id AND w.state='pending' AND w.element_id=?)" \
  " OR EXISTS (SELECT 1 FROM incidents w WHERE w.instance_id=i.id AND w.state='open' AND w.element_id=?))"

static void list(rv_req *r, const char *const *allowed){
  int64_t limit, offset, version = 0, from = 0, to = 0;
  bool has_v, has_from, has_to, incident = false, has_inc;
  const char *w;
  bool pub = public_view(&r->p);
  rv_sql q;

  if (!rv__q_parse(r, allowed) || !rv__q_page(r, &limit, &offset) ||
      !rv__q_int(r, "version", 1, 1000000, &version, &has_v) ||
      !rv__q_time(r, "started_from", &from, &has_from) || !rv__q_time(r, "started_to", &to, &has_to) ||
      !rv__q_bool(r, "incident", &incident, &has_inc)) return;
  rv__sql_init(&q, pub
    ? "SELECT i.id, i.process_id AS process, d.name AS process_name, d.version, i.status,"
      " i.status_text, i.started, i.ended FROM instances i JOIN definitions d ON d.id=i.definition_id WHERE 1"
    : "SELECT i.id, i.process_id AS process, d.name AS process_name, d.version, i.business_key,"
      " i.status, i.status_text, i.started, i.ended, i.parent_instance"
      " FROM instances i JOIN definitions d ON d.id=i.definition_id WHERE 1");
  if (rv__q_str(r, "process")) rv__sql_t(&q, " AND i.process_id=?", rv__q_str(r, "process"));
  if (has_v) rv__sql_i(&q, " AND d.version=?", version);
  if (rv__q_str(r, "status")) rv__sql_t(&q, " AND i.status=?", rv__q_str(r, "status"));
  if (rv__q_str(r, "status_text")) rv__sql_t(&q, " AND i.status_text=?", rv__q_str(r, "status_text"));
  if (rv__q_str(r, "business_key")) rv__sql_t(&q, " AND i.business_key=?", rv__q_str(r, "business_key"));
  if (has_from) rv__sql_i(&q, " AND i.started>=?", from);
  if (has_to) rv__sql_i(&q, " AND i.started<?", to);
  if ((w = rv__q_str(r, "waiting_at")) != NULL) {
    rv__sql_t(&q, WAITING_AT, w);
    for (int k = 1; k < 5; k++) { q.fmt[q.n] = 't'; q.t[q.n++] = w; q.fmt[q.n] = 0; }
  }
  if (has_inc)
    rv__sql_add(&q, incident ? " AND EXISTS (SELECT 1 FROM incidents x WHERE x.instance_id=i.id AND x.state='open')"
                             : " AND NOT EXISTS (SELECT 1 FROM incidents x WHERE x.instance_id=i.id AND x.state='open')");
  rv__scope_instances(&q, &r->p);
  rv__sql_add(&q, " ORDER BY i.id DESC");
  rv__reply_page_sql(r, &q, limit, offset, add_label);
}

void rv__h_instances(rv_req *r){
  list(r, list_q);
}

void rv__h_my_requests(rv_req *r){
  static const char *const q[] = { "process", "status", "started_from", "started_to", "limit", "offset", NULL };
  list(r, q);
}

/*--- GET /v1/instances/{id} -------------------------------------------------------------*/

/* The applicant-facing view of one instance. */
static void public_instance(rv_req *r, int64_t id){
  rv_sql q;
  rv_err err;
  cJSON *rows, *o, *x;

  rv__sql_init(&q, "SELECT i.id, i.process_id AS process, d.name AS process_name, i.status, i.status_text,"
                   " i.started, i.ended FROM instances i JOIN definitions d ON d.id=i.definition_id WHERE ");
  rv__sql_i(&q, "i.id=?", id);
  rv__scope_instances(&q, &r->p);
  rows = rv__sql_rows(r->api, &q, &err);
  rv__sql_fini(&q);
  if (rows == NULL) { rv__reply_err(r, err.code, &err); return; }
  if (cJSON_GetArraySize(rows) != 1) { cJSON_Delete(rows); rv__not_found(r); return; }
  o = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  add_label(o);
  /* status history: what the applicant was shown, and when */
  rv__sql_init(&q, "SELECT at, detail AS status_text FROM history WHERE event='STATUS' AND ");
  rv__sql_i(&q, "instance_id=? ORDER BY id, seq", id);
  x = rv__sql_rows(r->api, &q, &err);
  rv__sql_fini(&q);
  cJSON_AddItemToObject(o, "history", x ? x : cJSON_CreateArray());
  /* their own open steps */
  rv__sql_init(&q, "SELECT t.id, t.element_id AS element, t.name, t.created, t.due, t.form AS form_json"
                   " FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE t.state='open' AND ");
  rv__sql_i(&q, "t.instance_id=?", id);
  rv__scope_tasks(&q, &r->p);
  rv__sql_add(&q, " ORDER BY t.id");
  x = rv__sql_rows(r->api, &q, &err);
  rv__sql_fini(&q);
  if (x) {
    /* what each step shows its applicant (rv:display) */
    cJSON *t;
    cJSON_ArrayForEach(t, x) {
      cJSON *d = NULL;
      if (rv_engine_task_display(r->api->e, (int64_t)rv_json_int(t, "id", 0), &d, NULL) == RV_OK && d)
        cJSON_AddItemToObject(t, "display", d);
    }
  }
  cJSON_AddItemToObject(o, "tasks", x ? x : cJSON_CreateArray());
  rv__reply_json(r, 200, o);
}

static void get_instance(rv_req *r){
  int64_t id = r->ids[0];
  cJSON *o = NULL;
  rv_err err;
  rv_status rc;

  if (!rv__q_parse(r, NULL)) return;
  snprintf(r->object, sizeof r->object, "instance:%lld", (long long)id);
  if (public_view(&r->p)) { public_instance(r, id); return; }
  if (!rv__instance_visible(r, id)) { rv__not_found(r); return; }
  rc = rv_engine_instance_json(r->api->e, id, &o, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  add_label(o);
  {
    /* who filed it through the API (an agency for an insured person, ...) */
    sqlite3_stmt *s = rv_store_stmt(r->api->st,
      "SELECT p.name, a.role, a.organisation, a.agreement FROM api_starts a"
      " LEFT JOIN principals p ON p.id=a.principal_id WHERE a.instance_id=?");
    rv_store_bind(s, "i", id);
    if (sqlite3_step(s) == SQLITE_ROW) {
      static const char *const k[] = { "principal", "role", "organisation", "agreement" };
      cJSON *by = cJSON_CreateObject();
      for (int i = 0; i < 4; i++)
        if (sqlite3_column_type(s, i) != SQLITE_NULL)
          cJSON_AddStringToObject(by, k[i], (const char *)sqlite3_column_text(s, i));
      cJSON_AddItemToObject(o, "started_by", by);
    }
    sqlite3_reset(s);
  }
  rv__reply_json(r, 200, o);
}

void rv__h_instance_get(rv_req *r){
  get_instance(r);
}

void rv__h_my_request(rv_req *r){
  get_instance(r);
}

/*--- POST /v1/instances/{id}/cancel -------------------------------------------------------*/

void rv__h_instance_cancel(rv_req *r){
  static const char *const fields[] = { "reason", NULL };
  const char *reason = NULL;
  int64_t id = r->ids[0];
  rv_err err;
  rv_status rc;
  cJSON *o;

  snprintf(r->object, sizeof r->object, "instance:%lld", (long long)id);
  if (r->body && (!rv__body_fields(r, r->body, NULL, fields) ||
                  !rv__body_str(r, r->body, "reason", false, 200, &reason))) return;
  if (!rv__instance_visible(r, id)) { rv__not_found(r); return; }
  rc = rv_engine_cancel(r->api->e, id, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  if (reason) snprintf(r->detail, sizeof r->detail, "%s", reason);
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", (double)id);
  cJSON_AddStringToObject(o, "status", "canceled");
  rv__reply_json(r, 200, o);
}
