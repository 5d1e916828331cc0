/*
** runtime/portal.c -- what the model says about the portal (the API's
** applicant-facing side): who may start what (rv:startableBy) with which
** start form (rv:field on the start event), and which variables a user
** task shows its applicant (rv:display). Read-only; see engine.h.
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"

/* The start event of the none start of process_id, or of the message start
** the engine would start for message (the oldest start subscription of
** that name, as rv_engine_correlate picks it). */
static rv_status find_start(rv_engine *e, const char *process_id, int version, const char *message,
                            rv_def **d, int *node, rv_err *err){
  rv_status rc;
  *d = NULL;
  *node = -1;
  if (message) {
    sqlite3_stmt *s = rv_store_stmt(e->st,
      "SELECT definition_id, element_id FROM subscriptions"
      " WHERE kind='message' AND name=? AND instance_id=0 ORDER BY id LIMIT 1");
    int64_t def = 0;
    char elem[256] = "";
    rv_store_bind(s, "t", message);
    if (sqlite3_step(s) == SQLITE_ROW) {
      def = sqlite3_column_int64(s, 0);
      snprintf(elem, sizeof elem, "%s", (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
    if (def == 0) return RV_OK;
    rc = rv__def_get(e, def, d, err);
    if (rc != RV_OK) return rc;
    *node = rv_model_find_node((*d)->model, elem);
    return RV_OK;
  }
  rc = rv__def_latest(e, process_id, version, d, err);
  if (rc == RV_NOTFOUND) { *d = NULL; return RV_OK; }
  if (rc != RV_OK) return rc;
  {
    const rv_process *p = &(*d)->model->processes[(*d)->proc];
    for (int i = 0; i < p->n_starts && *node < 0; i++)
      if ((*d)->model->nodes[p->starts[i]].ev == RV_EV_NONE) *node = p->starts[i];
  }
  return RV_OK;
}

rv_status rv_engine_start_info(rv_engine *e, const char *process_id, int version, const char *message,
                               const char *role, const cJSON *vars, rv_start_info *info, rv_err *err){
  rv_def *d;
  int node;
  rv_status rc;
  memset(info, 0, sizeof *info);
  if ((process_id == NULL) == (message == NULL))
    return rv_fail(err, RV_INVALID, "give a process or a message");
  rc = find_start(e, process_id, version, message, &d, &node, err);
  if (rc != RV_OK) return rc;
  if (d == NULL || node < 0) return RV_OK;
  info->found = true;
  snprintf(info->process, sizeof info->process, "%s", d->process_id);
  info->version = d->version;
  info->declared = role != NULL && rv_model_startable(d->model, d->proc, node, role);
  info->n_fields = d->model->nodes[node].n_fields;
  info->form_ok = true;
  if (vars != NULL) {
    const rv_node *n = &d->model->nodes[node];
    rv_err ferr;
    if (n->n_fields == 0 && cJSON_GetArraySize(vars) > 0) {
      const cJSON *first = vars->child;
      info->form_ok = false;
      snprintf(info->form_error, sizeof info->form_error,
               "unknown field '%s' (this start takes no variables)", first && first->string ? first->string : "?");
    } else if (rv__validate_form(n, vars, &ferr) != RV_OK) {
      info->form_ok = false;
      snprintf(info->form_error, sizeof info->form_error, "%.200s", ferr.msg);
    }
  }
  return RV_OK;
}

/* Free instances loaded only to be read (as rv_engine_instance_json does). */
static void discard(rv_ctx *c){
  for (int i = 0; i < c->n_insts; i++) {
    rv_inst *x = c->insts[i];
    for (int k = 0; k < x->n_eis; k++) { cJSON_Delete(x->eis[k].vars); cJSON_Delete(x->eis[k].mi_items); }
    for (int k = 0; k < x->n_joins; k++) rv_free(x->joins[k].counts);
    rv_free(x->eis); rv_free(x->joins); rv_free(x->status); rv_free(x->status_text);
    rv_free(x->business_key); rv_free(x);
  }
  rv_free(c->insts);
  c->insts = NULL;
  c->n_insts = 0;
}

rv_status rv_engine_task_display(rv_engine *e, int64_t task, cJSON **out, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(e->st, "SELECT instance_id, ei, element_id FROM tasks WHERE id=?");
  int64_t inst = 0, eik = 0;
  char elem[256] = "";
  rv_ctx c;
  rv_inst *in;
  rv_status rc;
  int node;
  const rv_node *n;
  cJSON *vis, *o;

  *out = NULL;
  rv_store_bind(s, "i", task);
  if (sqlite3_step(s) == SQLITE_ROW) {
    inst = sqlite3_column_int64(s, 0);
    eik = sqlite3_column_int64(s, 1);
    snprintf(elem, sizeof elem, "%s", (const char *)sqlite3_column_text(s, 2));
  }
  sqlite3_reset(s);
  if (inst == 0) return rv_fail(err, RV_NOTFOUND, "no task %lld", (long long)task);
  memset(&c, 0, sizeof c);
  c.e = e;
  c.err = err ? err : &c.local_err;
  rc = rv__ctx_load(&c, inst, &in);
  if (rc != RV_OK) { discard(&c); return rc; }
  node = rv_model_find_node(in->def->model, elem);
  n = node >= 0 ? &in->def->model->nodes[node] : NULL;
  if (n == NULL || n->display == NULL) { discard(&c); return RV_OK; }
  /* the variables the task's token sees; a task that has ended (its token
  ** gone) shows the instance's variables */
  {
    rv_ei *ei = rv__ei_find(in, eik);
    vis = ei ? rv__vars_visible(in, ei) : NULL;
    if (vis == NULL) {
      rv_ei *root = rv__ei_find(in, 1);
      vis = root && root->vars ? cJSON_Duplicate(root->vars, 1) : cJSON_CreateObject();
    }
  }
  o = cJSON_CreateObject();
  for (const char *p = n->display; p; ) {
    const char *cm = strchr(p, ',');
    const char *end = cm ? cm : p + strlen(p);
    char name[80];
    while (p < end && *p == ' ') p++;
    while (end > p && end[-1] == ' ') end--;
    if (end > p && (size_t)(end - p) < sizeof name) {
      const cJSON *v;
      memcpy(name, p, (size_t)(end - p));
      name[end - p] = 0;
      v = cJSON_GetObjectItemCaseSensitive(vis, name);
      if (cJSON_GetObjectItemCaseSensitive(o, name) == NULL)
        cJSON_AddItemToObject(o, name, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    p = cm ? cm + 1 : NULL;
  }
  cJSON_Delete(vis);
  discard(&c);
  *out = o;
  return RV_OK;
}

rv_status rv_engine_definition_info(rv_engine *e, const char *process_id, int version, cJSON **out, rv_err *err){
  const rv_model *m;
  const rv_process *p;
  rv_def *d;
  cJSON *o, *names, *starts;
  rv_status rc;

  *out = NULL;
  rc = rv__def_latest(e, process_id, version, &d, err);
  if (rc != RV_OK) return rc;
  m = d->model;
  p = &m->processes[d->proc];
  o = cJSON_CreateObject();
  names = cJSON_AddObjectToObject(o, "elements");
  for (int i = 0; i < m->n_nodes; i++)
    if (m->nodes[i].process == d->proc && m->nodes[i].name && m->nodes[i].name[0])
      cJSON_AddStringToObject(names, m->nodes[i].id, m->nodes[i].name);
  starts = cJSON_AddArrayToObject(o, "starts");
  for (int i = 0; i < p->n_starts; i++) {
    const rv_node *n = &m->nodes[p->starts[i]];
    cJSON *s;
    /* what an API caller can start through: none starts (by process) and
    ** message starts (by message); timer and signal starts are the engine's */
    if (n->scope != -1 || (n->ev != RV_EV_NONE && n->ev != RV_EV_MESSAGE)) continue;
    if (n->ev == RV_EV_MESSAGE && (n->ref_name == NULL || n->ref_name[0] == 0)) continue;
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "element", n->id);
    if (n->name) cJSON_AddStringToObject(s, "name", n->name);
    if (n->ev == RV_EV_MESSAGE) cJSON_AddStringToObject(s, "message", n->ref_name);
    cJSON_AddItemToObject(s, "form", rv__form_json(n));
    cJSON_AddItemToArray(starts, s);
  }
  *out = o;
  return RV_OK;
}
