/*
** api/policy.c -- object-level authorization: what each principal may see.
**
** Deny by default. The route table decides which roles may call a route
** at all (function level, 403). Here we decide which objects a caller may
** see; everything else is "not found" (404, the same body as a missing
** object). Scope is applied inside the SQL of every list and every lookup,
** so a filter, a path id or a page can never widen it.
**
** A task is visible to p when
**     t.assignee = p.name
**  or one of t's candidate groups is one of p's groups, and the task is in
**     p's scope:  applicant     instance business key = p.national_id
**                 branch        t.branch = p.branch
**                 association   t.county = p.county
**                 committee     (no office scope)
**                 it_admin      (no office scope; its group is "it_admin")
**                 organisation  the instance was started by p's organisation
** Operators see every task; analysts none.
** Branch and county compare exactly: both sides are in the normal form of
** core/fatext.h (principal add and auth.c for p, the runtime's task writes
** for t), so the comparison stays an indexed equality.
** An instance is visible to an applicant by business key, to an
** organisation if it started it, to branch/association/committee staff and
** IT admins if one of its tasks (open or done) is visible to them, to
** operators always.
*/
#include <string.h>
#include "api/api_int.h"
#include "core/mem.h"

/*--- SQL with bindings --------------------------------------------------------*/

void rv__sql_init(rv_sql *q, const char *base){
  memset(q, 0, sizeof *q);
  rv_buf_init(&q->sql, 16384);
  rv_buf_adds(&q->sql, base);
}

void rv__sql_fini(rv_sql *q){
  rv_buf_fini(&q->sql);
}

void rv__sql_add(rv_sql *q, const char *frag){
  rv_buf_adds(&q->sql, frag);
}

void rv__sql_t(rv_sql *q, const char *frag, const char *v){
  if (q->n >= RV_SQL_MAX_BINDS) { q->sql.toobig = true; return; }
  rv_buf_adds(&q->sql, frag);
  q->fmt[q->n] = 't';
  q->t[q->n++] = v;
  q->fmt[q->n] = 0;
}

void rv__sql_i(rv_sql *q, const char *frag, int64_t v){
  if (q->n >= RV_SQL_MAX_BINDS) { q->sql.toobig = true; return; }
  rv_buf_adds(&q->sql, frag);
  q->fmt[q->n] = 'i';
  q->i[q->n++] = v;
  q->fmt[q->n] = 0;
}

static cJSON *col_json(sqlite3_stmt *s, int i){
  switch (sqlite3_column_type(s, i)) {
  case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(s, i));
  case SQLITE_FLOAT:   return cJSON_CreateNumber(sqlite3_column_double(s, i));
  case SQLITE_NULL:    return cJSON_CreateNull();
  default:             return cJSON_CreateString((const char *)sqlite3_column_text(s, i));
  }
}

/* Dynamic SQL is cached by its text: the same role and the same filters
** give the same text, and parsing it costs more than running it. */
static uint64_t text_hash(const char *s){
  uint64_t h = 1469598103934665603u;
  for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211u; }
  return h;
}

static sqlite3_stmt *prepare(rv_api *a, rv_sql *q, rv_err *err){
  sqlite3_stmt *s = NULL;
  uint64_t h;
  int slot = -1, oldest = 0;
  if (q->sql.toobig) { rv_fail(err, RV_INVALID, "query too complex"); return NULL; }
  h = text_hash(q->sql.p);
  for (int i = 0; i < RV_QCACHE; i++) {
    if (a->qcache[i].sql && a->qcache[i].hash == h && strcmp(a->qcache[i].sql, q->sql.p) == 0) {
      slot = i;
      s = a->qcache[i].stmt;
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
      break;
    }
    if (a->qcache[i].used < a->qcache[oldest].used) oldest = i;
  }
  if (s == NULL) {
    if (sqlite3_prepare_v3(rv_store_db(a->st), q->sql.p, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
      rv_fail(err, RV_IO, "query: %s", sqlite3_errmsg(rv_store_db(a->st)));
      return NULL;
    }
    slot = oldest;
    sqlite3_finalize(a->qcache[slot].stmt);
    rv_free(a->qcache[slot].sql);
    a->qcache[slot].sql = rv_strdup(q->sql.p);
    a->qcache[slot].hash = h;
    a->qcache[slot].stmt = s;
  }
  a->qcache[slot].used = ++a->qtick;
  for (int i = 0; i < q->n; i++) {
    if (q->fmt[i] == 't') {
      if (q->t[i]) sqlite3_bind_text(s, i + 1, q->t[i], -1, SQLITE_TRANSIENT);
      else sqlite3_bind_null(s, i + 1);
    } else sqlite3_bind_int64(s, i + 1, q->i[i]);
  }
  return s;
}

void rv__qcache_free(rv_api *a){
  for (int i = 0; i < RV_QCACHE; i++) {
    sqlite3_finalize(a->qcache[i].stmt);
    rv_free(a->qcache[i].sql);
    a->qcache[i].stmt = NULL;
    a->qcache[i].sql = NULL;
  }
}

cJSON *rv__sql_rows(rv_api *api, rv_sql *q, rv_err *err){
  sqlite3_stmt *s = prepare(api, q, err);
  cJSON *a;
  int nc, rc;
  if (s == NULL) return NULL;
  a = cJSON_CreateArray();
  nc = sqlite3_column_count(s);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < nc; i++) {
      const char *name = sqlite3_column_name(s, i);
      size_t len = strlen(name);
      if (len > 5 && strcmp(name + len - 5, "_json") == 0) {
        char *key = rv_strndup(name, len - 5);
        cJSON *v = sqlite3_column_type(s, i) == SQLITE_NULL ? NULL
                 : rv_json_parse((const char *)sqlite3_column_text(s, i));
        cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateNull());
        rv_free(key);
      } else cJSON_AddItemToObject(o, name, col_json(s, i));
    }
    cJSON_AddItemToArray(a, o);
  }
  if (rc != SQLITE_DONE) {
    rv_fail(err, rc == SQLITE_BUSY ? RV_BUSY : RV_IO, "query: %s", sqlite3_errmsg(rv_store_db(api->st)));
    cJSON_Delete(a);
    a = NULL;
  }
  sqlite3_reset(s);
  return a;
}

sqlite3_stmt *rv__sql_stmt(rv_api *a, rv_sql *q, rv_err *err){
  return prepare(a, q, err);
}

static bool exists(rv_api *a, rv_sql *q){
  rv_err err;
  sqlite3_stmt *s = prepare(a, q, &err);
  bool yes;
  if (s == NULL) return false;
  yes = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  return yes;
}

/*--- Scope ---------------------------------------------------------------------*/

#define GROUP_MATCH \
  "instr(','||replace(coalesce(t.candidate_groups,''),' ','')||',', ','||?||',')>0"

/* The group-and-office part, without the assignee clause. */
static void task_group_scope(rv_sql *q, const rv_principal *p){
  if (p->n_groups == 0) { rv__sql_add(q, "0"); return; }
  rv__sql_add(q, "((");
  for (int g = 0; g < p->n_groups; g++)
    rv__sql_t(q, g ? " OR " GROUP_MATCH : GROUP_MATCH, p->groups[g]);
  rv__sql_add(q, ")");
  switch (p->role) {
  case RV_ROLE_APPLICANT:    rv__sql_t(q, " AND i.business_key=?", p->national_id); break;
  case RV_ROLE_BRANCH:       rv__sql_t(q, " AND t.branch=?", p->branch); break;
  case RV_ROLE_ASSOCIATION:  rv__sql_t(q, " AND t.county=?", p->county); break;
  case RV_ROLE_COMMITTEE:
  case RV_ROLE_IT_ADMIN:     break;
  case RV_ROLE_ORGANISATION:
    rv__sql_t(q, " AND t.instance_id IN (SELECT instance_id FROM api_starts WHERE organisation=?)",
              p->organisation);
    break;
  default: rv__sql_add(q, " AND 0"); break;
  }
  rv__sql_add(q, ")");
}

void rv__scope_tasks(rv_sql *q, const rv_principal *p){
  if (p->role == RV_ROLE_OPERATOR) return;
  if (!(ROLES_TASK_ACTORS & (1u << p->role))) { rv__sql_add(q, " AND 0"); return; }
  rv__sql_t(q, " AND (t.assignee=? OR ", p->name);
  task_group_scope(q, p);
  rv__sql_add(q, ")");
}

void rv__scope_tasks_arm(rv_sql *q, const rv_principal *p, bool by_assignee){
  if (!by_assignee) {
    rv__sql_add(q, " AND ");
    task_group_scope(q, p);
  } else {
    rv__sql_t(q, " AND t.assignee=? AND NOT ", p->name);
    task_group_scope(q, p);
  }
}

void rv__scope_instances(rv_sql *q, const rv_principal *p){
  switch (p->role) {
  case RV_ROLE_OPERATOR: return;
  case RV_ROLE_APPLICANT:
    rv__sql_t(q, " AND i.business_key=?", p->national_id);
    return;
  case RV_ROLE_ORGANISATION:
    rv__sql_t(q, " AND i.id IN (SELECT instance_id FROM api_starts WHERE organisation=?)", p->organisation);
    return;
  case RV_ROLE_BRANCH:
  case RV_ROLE_ASSOCIATION:
  case RV_ROLE_COMMITTEE:
  case RV_ROLE_IT_ADMIN:
    rv__sql_add(q, " AND EXISTS (SELECT 1 FROM tasks t WHERE t.instance_id=i.id");
    rv__scope_tasks(q, p);
    rv__sql_add(q, ")");
    return;
  default:
    rv__sql_add(q, " AND 0");
    return;
  }
}

bool rv__task_visible(rv_req *r, int64_t task){
  rv_sql q;
  bool yes;
  rv__sql_init(&q, "SELECT 1 FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE ");
  rv__sql_i(&q, "t.id=?", task);
  rv__scope_tasks(&q, &r->p);
  yes = exists(r->api, &q);
  rv__sql_fini(&q);
  return yes;
}

bool rv__instance_visible(rv_req *r, int64_t inst){
  rv_sql q;
  bool yes;
  rv__sql_init(&q, "SELECT 1 FROM instances i WHERE ");
  rv__sql_i(&q, "i.id=?", inst);
  rv__scope_instances(&q, &r->p);
  yes = exists(r->api, &q);
  rv__sql_fini(&q);
  return yes;
}

static bool in_list(const char *list, const char *id){
  size_t n = strlen(id);
  if (list == NULL) return false;
  if (strcmp(list, "*") == 0) return true;
  for (const char *p = list; p && *p; ) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && strncmp(p, id, n) == 0) return true;
    p = c ? c + 1 : NULL;
  }
  return false;
}

/* The model decides first (rv:startableBy on the process or its start
** event); the serve options --applicant-starts / --organisation-starts add
** processes on top (an override for models that do not declare it). */
bool rv__may_start(rv_api *a, const rv_principal *p, const rv_start_info *info){
  switch (p->role) {
  case RV_ROLE_OPERATOR:     return true;
  case RV_ROLE_APPLICANT:    return info->found && (info->declared || in_list(a->applicant_starts, info->process));
  case RV_ROLE_ORGANISATION: return info->found && (info->declared || in_list(a->organisation_starts, info->process));
  default:                   return false;
  }
}
