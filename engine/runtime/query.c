/*
** runtime/query.c -- read-only views for the command line and the API:
** one instance with where each token waits, lists with filters and
** paging. Nothing here writes.
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/fatext.h"
#include "core/mem.h"
#include "core/buf.h"

#define MAX_LIMIT 500

static cJSON *col_json(sqlite3_stmt *s, int i){
  switch (sqlite3_column_type(s, i)) {
  case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(s, i));
  case SQLITE_FLOAT:   return cJSON_CreateNumber(sqlite3_column_double(s, i));
  case SQLITE_NULL:    return cJSON_CreateNull();
  default:             return cJSON_CreateString((const char *)sqlite3_column_text(s, i));
  }
}

/* Rows of a prepared statement as an array of objects keyed by column
** name; columns named *_json are parsed. */
static cJSON *rows_json(sqlite3_stmt *s){
  cJSON *a = cJSON_CreateArray();
  int nc = sqlite3_column_count(s);
  while (sqlite3_step(s) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < nc; i++) {
      const char *name = sqlite3_column_name(s, i);
      size_t len = strlen(name);
      if (len > 5 && strcmp(name + len - 5, "_json") == 0) {
        char *key = rv_strndup(name, len - 5);
        cJSON *v = sqlite3_column_type(s, i) == SQLITE_NULL ? cJSON_CreateNull()
                 : rv_json_parse((const char *)sqlite3_column_text(s, i));
        cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateNull());
        rv_free(key);
      } else cJSON_AddItemToObject(o, name, col_json(s, i));
    }
    cJSON_AddItemToArray(a, o);
  }
  sqlite3_reset(s);
  return a;
}

static rv_status query(rv_engine *e, const char *sql, const char *fmt, const char **targs,
                       const int64_t *iargs, cJSON **out, rv_err *err){
  sqlite3_stmt *s;
  int ti = 0, ii = 0;
  *out = NULL;
  if (sqlite3_prepare_v2(rv_store_db(e->st), sql, -1, &s, NULL) != SQLITE_OK)
    return rv_fail(err, RV_IO, "query: %s", sqlite3_errmsg(rv_store_db(e->st)));
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 't') sqlite3_bind_text(s, i + 1, targs[ti++], -1, SQLITE_TRANSIENT);
    else sqlite3_bind_int64(s, i + 1, iargs[ii++]);
  }
  *out = rows_json(s);
  sqlite3_finalize(s);
  return RV_OK;
}

/* Build "WHERE a=? AND b=?" from the string filters present. */
typedef struct qb {
  rv_buf sql; char fmt[32]; const char *t[16]; int64_t i[16]; int nf, nt, ni;
  char scope[2][256]; int ns;         /* normalised branch/county filters */
} qb;

static void qb_str(qb *q, const cJSON *f, const char *key, const char *cond){
  const char *v = rv_json_str(f, key);
  if (v == NULL || q->nf >= 30) return;
  rv_buf_printf(&q->sql, " AND %s", cond);
  q->fmt[q->nf++] = 't'; q->fmt[q->nf] = 0;
  q->t[q->nt++] = v;
}
/* A branch/county filter, in the normal form the task rows are written in
** (core/fatext.h); text that is not UTF-8 is kept as sent (matches nothing). */
static void qb_scope(qb *q, const cJSON *f, const char *key, const char *cond){
  const char *v = rv_json_str(f, key);
  if (v == NULL || q->nf >= 30 || q->ns >= 2) return;
  if (rv_fa_normalize(v, q->scope[q->ns], sizeof q->scope[0], NULL) == RV_OK) v = q->scope[q->ns++];
  rv_buf_printf(&q->sql, " AND %s", cond);
  q->fmt[q->nf++] = 't'; q->fmt[q->nf] = 0;
  q->t[q->nt++] = v;
}
static void qb_int(qb *q, const cJSON *f, const char *key, const char *cond){
  const cJSON *v = f ? cJSON_GetObjectItemCaseSensitive(f, key) : NULL;
  if (!cJSON_IsNumber(v) || q->nf >= 30) return;
  rv_buf_printf(&q->sql, " AND %s", cond);
  q->fmt[q->nf++] = 'i'; q->fmt[q->nf] = 0;
  q->i[q->ni++] = rv_num_i64(v->valuedouble);
}
static void qb_page(qb *q, const cJSON *f){
  int64_t limit = rv_json_int(f, "limit", 50), offset = rv_json_int(f, "offset", 0);
  if (limit <= 0 || limit > MAX_LIMIT) limit = limit <= 0 ? 50 : MAX_LIMIT;
  if (offset < 0) offset = 0;
  rv_buf_printf(&q->sql, " LIMIT %lld OFFSET %lld", (long long)limit, (long long)offset);
}

rv_status rv_engine_instances_json(rv_engine *e, const cJSON *f, cJSON **out, rv_err *err){
  qb q = {0};
  rv_status rc;
  rv_buf_init(&q.sql, 4096);
  rv_buf_adds(&q.sql,
    "SELECT i.id, i.process_id AS process, d.version, i.business_key, i.status, i.status_text,"
    " i.started, i.ended, i.parent_instance FROM instances i JOIN definitions d"
    " ON d.id=i.definition_id WHERE 1");
  qb_str(&q, f, "status", "i.status=?");
  qb_str(&q, f, "process", "i.process_id=?");
  qb_str(&q, f, "business_key", "i.business_key=?");
  qb_str(&q, f, "status_text", "i.status_text=?");
  qb_int(&q, f, "started_from", "i.started>=?");
  qb_int(&q, f, "started_to", "i.started<?");
  qb_int(&q, f, "version", "d.version=?");
  rv_buf_adds(&q.sql, " ORDER BY i.id DESC");
  qb_page(&q, f);
  rc = query(e, q.sql.p, q.fmt, q.t, q.i, out, err);
  rv_buf_fini(&q.sql);
  return rc;
}

rv_status rv_engine_tasks_json(rv_engine *e, const cJSON *f, cJSON **out, rv_err *err){
  qb q = {0};
  rv_status rc;
  rv_buf_init(&q.sql, 4096);
  rv_buf_adds(&q.sql,
    "SELECT t.id, t.instance_id AS instance, t.element_id AS element, t.name, t.process_id AS process,"
    " t.candidate_groups, t.assignee, t.branch, t.county, t.status_text, t.form AS form_json,"
    " t.created, t.due, t.state, t.completed_by, t.completed, i.business_key"
    " FROM tasks t JOIN instances i ON i.id=t.instance_id WHERE 1");
  /* open, asked for or by default, is a literal: the partial indexes on open
  ** tasks (store.c, migration 8) serve only queries that state it */
  if (rv_json_str(f, "state") ? strcmp(rv_json_str(f, "state"), "open") == 0
                              : !rv_json_bool(f, "all", false))
    rv_buf_adds(&q.sql, " AND t.state='open'");
  else qb_str(&q, f, "state", "t.state=?");
  qb_int(&q, f, "instance", "t.instance_id=?");
  qb_str(&q, f, "element", "t.element_id=?");
  qb_str(&q, f, "process", "t.process_id=?");
  qb_scope(&q, f, "branch", "t.branch=?");
  qb_scope(&q, f, "county", "t.county=?");
  qb_str(&q, f, "assignee", "t.assignee=?");
  qb_str(&q, f, "status_text", "t.status_text=?");
  qb_str(&q, f, "group", "(','||t.candidate_groups||',') LIKE ('%,'||?||',%')");
  qb_int(&q, f, "created_from", "t.created>=?");
  qb_int(&q, f, "created_to", "t.created<?");
  qb_int(&q, f, "due_from", "t.due>=?");
  qb_int(&q, f, "due_to", "t.due<?");
  rv_buf_adds(&q.sql, " ORDER BY t.id");
  qb_page(&q, f);
  rc = query(e, q.sql.p, q.fmt, q.t, q.i, out, err);
  rv_buf_fini(&q.sql);
  return rc;
}

rv_status rv_engine_incidents_json(rv_engine *e, const cJSON *f, cJSON **out, rv_err *err){
  qb q = {0};
  rv_status rc;
  rv_buf_init(&q.sql, 2048);
  rv_buf_adds(&q.sql,
    "SELECT id, instance_id AS instance, element_id AS element, kind, message, job_id AS job,"
    " created, resolved, state FROM incidents WHERE 1");
  if (rv_json_str(f, "state") == NULL && !rv_json_bool(f, "all", false))
    rv_buf_adds(&q.sql, " AND state='open'");
  qb_str(&q, f, "state", "state=?");
  qb_int(&q, f, "instance", "instance_id=?");
  rv_buf_adds(&q.sql, " ORDER BY id");
  qb_page(&q, f);
  rc = query(e, q.sql.p, q.fmt, q.t, q.i, out, err);
  rv_buf_fini(&q.sql);
  return rc;
}

rv_status rv_engine_definitions_json(rv_engine *e, cJSON **out, rv_err *err){
  return query(e, "SELECT id, process_id AS process, version, name, file, hash, deployment_id"
                  " AS deployment, created FROM definitions ORDER BY process_id, version",
               "", NULL, NULL, out, err);
}

rv_status rv_engine_instance_json(rv_engine *e, int64_t id, cJSON **out, rv_err *err){
  rv_ctx c;
  rv_inst *in;
  rv_status rc;
  cJSON *o, *waits, *tmp;
  int64_t iargs[1] = { id };

  *out = NULL;
  memset(&c, 0, sizeof c);
  c.e = e;
  c.err = err ? err : &c.local_err;
  rc = rv__ctx_load(&c, id, &in);
  if (rc != RV_OK) { rv_free(c.insts); return rc; }
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", (double)in->id);
  cJSON_AddStringToObject(o, "process", in->def->process_id);
  cJSON_AddNumberToObject(o, "version", in->def->version);
  cJSON_AddStringToObject(o, "status", in->status);
  if (in->status_text) cJSON_AddStringToObject(o, "status_text", in->status_text);
  if (in->business_key) cJSON_AddStringToObject(o, "business_key", in->business_key);
  cJSON_AddNumberToObject(o, "started", (double)in->started);
  if (in->parent_instance) cJSON_AddNumberToObject(o, "parent_instance", (double)in->parent_instance);
  {
    rv_ei *root = rv__ei_find(in, 1);
    cJSON_AddItemToObject(o, "variables", root && root->vars ? cJSON_Duplicate(root->vars, 1) : cJSON_CreateObject());
  }
  waits = cJSON_AddArrayToObject(o, "tokens");
  for (int i = 0; i < in->n_eis; i++) {
    const rv_ei *ei = &in->eis[i];
    const rv_node *n;
    cJSON *w;
    if (ei->node < 0) continue;
    n = &in->def->model->nodes[ei->node];
    w = cJSON_CreateObject();
    cJSON_AddNumberToObject(w, "key", (double)ei->key);
    cJSON_AddStringToObject(w, "element", n->id);
    if (n->name) cJSON_AddStringToObject(w, "name", n->name);
    cJSON_AddStringToObject(w, "type", rv_elem_name(n->type));
    cJSON_AddStringToObject(w, "state", ei->state == EI_INCIDENT ? "incident"
                            : ei->state == EI_WAITING ? "waiting" : "active");
    if (ei->mi_body) cJSON_AddStringToObject(w, "multi_instance", "body");
    if (ei->mi_inner) cJSON_AddNumberToObject(w, "loop_counter", ei->mi_index + 1);
    if (ei->child_instance) cJSON_AddNumberToObject(w, "called_instance", (double)ei->child_instance);
    if (ei->vars && cJSON_GetArraySize(ei->vars) > 0)
      cJSON_AddItemToObject(w, "local_variables", cJSON_Duplicate(ei->vars, 1));
    cJSON_AddItemToArray(waits, w);
  }
  for (int i = 0; i < in->n_joins; i++) {
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "element", in->def->model->nodes[in->joins[i].node].id);
    cJSON_AddStringToObject(w, "state", "joining");
    cJSON_AddItemToArray(waits, w);
  }
  if (query(e, "SELECT id, element_id AS element, state, assignee, branch, county, due FROM tasks"
               " WHERE instance_id=? ORDER BY id", "i", NULL, iargs, &tmp, err) == RV_OK)
    cJSON_AddItemToObject(o, "tasks", tmp);
  if (query(e, "SELECT id, element_id AS element, due, repeat_left FROM timers WHERE instance_id=?"
               " ORDER BY due", "i", NULL, iargs, &tmp, err) == RV_OK)
    cJSON_AddItemToObject(o, "timers", tmp);
  if (query(e, "SELECT id, element_id AS element, adapter, state, attempts, next_try, last_error, key"
               " FROM jobs WHERE instance_id=? ORDER BY id", "i", NULL, iargs, &tmp, err) == RV_OK)
    cJSON_AddItemToObject(o, "jobs", tmp);
  if (query(e, "SELECT id, kind, name, corr_key, element_id AS element FROM subscriptions"
               " WHERE instance_id=? ORDER BY id", "i", NULL, iargs, &tmp, err) == RV_OK)
    cJSON_AddItemToObject(o, "subscriptions", tmp);
  if (query(e, "SELECT id, element_id AS element, kind, message, state, created FROM incidents"
               " WHERE instance_id=? ORDER BY id", "i", NULL, iargs, &tmp, err) == RV_OK)
    cJSON_AddItemToObject(o, "incidents", tmp);
  if (query(e, "SELECT at, event, element_id AS element, detail FROM history WHERE instance_id=?"
               " ORDER BY id, seq", "i", NULL, iargs, &tmp, err) == RV_OK)
    cJSON_AddItemToObject(o, "history", tmp);
  /* the instance was only read: free it without saving */
  for (int i = 0; i < c.n_insts; i++) {
    rv_inst *x = c.insts[i];
    for (int k = 0; k < x->n_eis; k++) { cJSON_Delete(x->eis[k].vars); cJSON_Delete(x->eis[k].mi_items); }
    for (int k = 0; k < x->n_joins; k++) rv_free(x->joins[k].counts);
    rv_free(x->eis); rv_free(x->joins); rv_free(x->status); rv_free(x->status_text);
    rv_free(x->business_key); rv_free(x);
  }
  rv_free(c.insts);
  *out = o;
  return RV_OK;
}
