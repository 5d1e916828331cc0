/*
** runtime/elements.c -- one handler per BPMN element kind, in one table.
**
** Adding an element kind: a row in model/elements.def, a handler here,
** and an entry in `table` below; nothing else dispatches on the type.
** A handler either completes at once (rv__push ACT_COMPLETE) or leaves
** the element waiting (ei->state = EI_WAITING). Returning a user-content
** failure (RV_SCRIPT, RV_INVALID, ...) turns into an incident on the
** element (flow.c: run_handler).
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "core/buf.h"
#include "core/fatext.h"
#include "cal/cal.h"
#include "journal/reads.h"

static const rv_model *M(const rv_inst *in){ return in->def->model; }

static rv_status done_now(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  (void)n;
  rv__push(c, ACT_COMPLETE, in, ei->key);
  return RV_OK;
}

static rv_status wait_here(rv_inst *in, rv_ei *ei){
  ei->state = EI_WAITING;
  in->dirty = true;
  return RV_OK;
}

/*--- Results of rules and adapters -------------------------------------------*/

static rv_status apply_result(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n,
                              const cJSON *res, cJSON *owned){
  int64_t key = ei->key;
  if (n->result_var) rv__vars_set(in, ei, n->result_var, res ? cJSON_Duplicate(res, 1) : cJSON_CreateNull());
  if (n->n_outputs > 0) {
    cJSON *o = NULL;
    rv_status rc = owned ? rv__map_owned(c, in, rv__ei_find(in, key), n->outputs, n->n_outputs, owned, &o)
                         : rv__map(c, in, rv__ei_find(in, key), n->outputs, n->n_outputs, res, &o);
    if (rc != RV_OK) return rc;
    rv__vars_take(in, rv__ei_find(in, key), o);     /* o is ours: its values move */
    cJSON_Delete(o);
  } else if (n->result_var == NULL && cJSON_IsObject(res)) {
    if (owned) rv__vars_take(in, rv__ei_find(in, key), owned);
    else rv__vars_merge(in, rv__ei_find(in, key), res);
  }
  return RV_OK;
}

rv_status rv__apply_result(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n, const cJSON *res){
  return apply_result(c, in, ei, n, res, NULL);
}

rv_status rv__apply_result_owned(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n, cJSON *res){
  return apply_result(c, in, ei, n, res, res);
}

/*--- Events ----------------------------------------------------------------------*/

static char *eval_text(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, rv_status *rc);

/* A message thrown by an intermediate throw or end event (or a none event
** with rv:adapter) is a job, written in this command's transaction like a
** service task's (the outbox) and delivered after the commit: by the
** element's rv:adapter, whose input is the rv:input mappings; without one
** by the built-in `message` adapter (adapters/message/message.c), which
** correlates it in this engine as a command of its own -- the receiver's
** journal gets a "message" input like any other, and the job's key, the
** message's id, makes a redelivery after a crash a duplicate. Its input:
** {message: name, key: rv:correlationKey evaluated here (absent if none or
** null), payload: the rv:input mappings, ttl: rv:messageTtl in ms (absent:
** the engine's)}. The token waits for the answer. */
static rv_status send_message(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  cJSON *payload = NULL, *input;
  rv_status rc = rv__map(c, in, ei, n->inputs, n->n_inputs, NULL, &payload);
  if (rc != RV_OK) return rc;
  if (n->adapter) {
    input = payload;
  } else {
    char *k = eval_text(c, in, rv__ei_find(in, key), n->correlation_key, &rc);
    if (rc != RV_OK) { cJSON_Delete(payload); return rc; }
    input = cJSON_CreateObject();
    cJSON_AddStringToObject(input, "message", n->ref_name ? n->ref_name : n->id);
    if (k) cJSON_AddStringToObject(input, "key", k);
    cJSON_AddItemToObject(input, "payload", payload);
    if (n->message_ttl) {      /* checked by validate */
      rv_duration d;
      if (rv_duration_parse(n->message_ttl, &d, NULL) == RV_OK)
        cJSON_AddNumberToObject(input, "ttl", (double)rv_duration_ms(&d));
    }
    rv_free(k);
  }
  rc = rv__create_job(c, in, rv__ei_find(in, key), n->adapter ? n->adapter : "message", input,
                      n->retries, n->retry_backoff, false, NULL);
  cJSON_Delete(input);
  if (rc != RV_OK) return rc;
  return wait_here(in, rv__ei_find(in, key));
}

static rv_status end_event(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key, scope = ei->parent;
  bool caught = false;
  rv_status rc;

  switch (n->ev) {
  case RV_EV_TERMINATE: {
    rv_ei *s;
    rv__history(c, in, "ELEMENT_COMPLETED", ei->node, key, "terminate");
    rv__ei_remove(in, key);
    rc = rv__terminate_children(c, in, scope);
    if (rc != RV_OK) return rc;
    s = rv__ei_find(in, scope);
    if (s == NULL) return RV_OK;
    if (s->node < 0) {
      rc = rv__side_clear(c, in, scope);
      rv_free(in->status);
      in->status = rv_strdup("completed");
      in->ended = true;
      in->dirty = true;
      rv__history(c, in, "INSTANCE_COMPLETED", -1, scope, "terminated by end event");
      if (rc == RV_OK && in->parent_instance) rc = rv__child_done(c, in, false, NULL);
      return rc;
    }
    rv__push(c, ACT_COMPLETE, in, scope);
    return RV_OK;
  }
  case RV_EV_ERROR:
    rc = rv__throw_error(c, in, ei, false, n->ref_name, n->name, false, &caught);
    if (rc != RV_OK) return rc;
    if (!caught) {
      ei = rv__ei_find(in, key);
      return rv_fail(c->err, RV_CONFLICT, "unhandled BPMN error '%s'", n->ref_name ? n->ref_name : "");
    }
    if (rv__ei_find(in, key)) rv__push(c, ACT_COMPLETE, in, key);
    return RV_OK;
  case RV_EV_ESCALATION:
    rc = rv__throw_error(c, in, ei, false, n->ref_name, NULL, true, &caught);
    if (rc == RV_OK && rv__ei_find(in, key)) rv__push(c, ACT_COMPLETE, in, key);
    return rc;
  case RV_EV_SIGNAL:
    rc = rv__signal(c, n->ref_name ? n->ref_name : n->id, NULL, NULL);
    if (rc == RV_OK && rv__ei_find(in, key)) rv__push(c, ACT_COMPLETE, in, key);
    return rc;
  default:
    if (n->adapter || n->ev == RV_EV_MESSAGE) return send_message(c, in, ei, n);
    return done_now(c, in, ei, n);
  }
}

static rv_status catch_event(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  rv_status rc;
  switch (n->ev) {
  case RV_EV_TIMER:   rc = rv__timer_arm(c, in, ei, ei->node); break;
  case RV_EV_MESSAGE: rc = rv__open_message_sub(c, in, ei, ei->node); break;
  case RV_EV_SIGNAL:
    rv__side_mark(in, ei, RV_SIDE_SUB);
    rc = rv_store_exec(c->e->st, c->err,
      "INSERT INTO subscriptions(kind, name, corr_key, instance_id, ei, element_id, definition_id)"
      " VALUES('signal',?,NULL,?,?,?,?)", "tiiti",
      n->ref_name ? n->ref_name : n->id, in->id, key, n->id, in->def->id);
    break;
  default:
    return done_now(c, in, ei, n);
  }
  if (rc != RV_OK) return rc;
  return wait_here(in, rv__ei_find(in, key));
}

static rv_status throw_event(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  bool caught;
  rv_status rc = RV_OK;
  if (n->ev == RV_EV_SIGNAL) rc = rv__signal(c, n->ref_name ? n->ref_name : n->id, NULL, NULL);
  else if (n->ev == RV_EV_ESCALATION) rc = rv__throw_error(c, in, ei, false, n->ref_name, NULL, true, &caught);
  else if (n->adapter || n->ev == RV_EV_MESSAGE) return send_message(c, in, ei, n);
  if (rc == RV_OK && rv__ei_find(in, key)) rv__push(c, ACT_COMPLETE, in, key);
  return rc;
}

/*--- Tasks --------------------------------------------------------------------------*/

static rv_status script_task(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  cJSON *res = NULL, *setvars = NULL;
  rv_status rc;
  if (n->function) {
    cJSON *arg = NULL;
    const cJSON *view;
    if (n->n_inputs > 0) { rc = rv__map(c, in, ei, n->inputs, n->n_inputs, NULL, &arg); view = arg; }
    else { view = rv__vars_view(in, ei, &arg); rc = RV_OK; }
    if (rc == RV_OK) rc = rv_rules_call(in->def->rules, n->function, view, &res, c->err);
    cJSON_Delete(arg);
  } else {
    cJSON *owned;
    const cJSON *vars = rv__vars_view(in, ei, &owned);
    rc = rv_rules_run(in->def->rules, n->script ? n->script : "", vars, &res, &setvars, c->err);
    cJSON_Delete(owned);
    if (rc == RV_OK && setvars) rv__vars_take(in, ei, setvars);
  }
  if (rc == RV_OK) {
    if (n->function || n->result_var || n->n_outputs > 0)
      rc = rv__apply_result_owned(c, in, rv__ei_find(in, key), n, res);
  }
  cJSON_Delete(res);
  cJSON_Delete(setvars);
  if (rc != RV_OK) return rc;
  rv__push(c, ACT_COMPLETE, in, key);
  return RV_OK;
}

static rv_status service_task(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  cJSON *input = NULL;
  const cJSON *view;
  rv_status rc;
  if (n->n_inputs > 0) { rc = rv__map(c, in, ei, n->inputs, n->n_inputs, NULL, &input); view = input; }
  else { view = rv__vars_view(in, ei, &input); rc = RV_OK; }
  if (rc != RV_OK) return rc;
  rc = rv__create_job(c, in, ei, n->adapter ? n->adapter : "", view, n->retries,
                      n->retry_backoff, false, NULL);
  cJSON_Delete(input);
  if (rc != RV_OK) return rc;
  return wait_here(in, rv__ei_find(in, key));
}

static rv_status receive_task(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  rv_status rc = rv__open_message_sub(c, in, ei, ei->node);
  (void)n;
  if (rc != RV_OK) return rc;
  return wait_here(in, rv__ei_find(in, key));
}

static char *eval_text(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, rv_status *rc){
  cJSON *v = NULL;
  char *s = NULL;
  if (expr == NULL) return NULL;
  *rc = rv__eval(c, in, ei, expr, &v);
  if (*rc == RV_OK && v && !cJSON_IsNull(v)) s = rv_json_text(v);
  cJSON_Delete(v);
  return s;
}

/* A task's branch and county are compared with the principal's in SQL:
** both are kept in normal form (core/fatext.h: Persian yeh/keheh, ASCII
** digits, single spaces), whatever spelling the record used. */
static char *scope_text(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, rv_status *rc){
  char *s = eval_text(c, in, ei, expr, rc), *n = rv_fa_normdup(s);
  rv_free(s);
  return n;
}

/* A node's rv:field form as the API shows it (also start forms, portal.c). */
cJSON *rv__form_json(const rv_node *n){
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < n->n_fields; i++) {
    const rv_field *f = &n->fields[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", f->id);
    if (f->label) cJSON_AddStringToObject(o, "label", f->label);
    cJSON_AddStringToObject(o, "type", f->type ? f->type : "string");
    cJSON_AddBoolToObject(o, "required", f->required);
    if (f->n_values > 0) {
      cJSON *v = cJSON_AddArrayToObject(o, "values");
      for (int k = 0; k < f->n_values; k++) cJSON_AddItemToArray(v, cJSON_CreateString(f->values[k]));
    }
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

static rv_status user_task(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key, due = 0;
  rv_status rc = RV_OK;
  char *assignee = NULL, *branch = NULL, *county = NULL, *form;
  cJSON *fj;

  if (n->assignee && n->assignee[0] == '=') assignee = eval_text(c, in, ei, n->assignee + 1, &rc);
  else assignee = rv_strdup(n->assignee);
  if (rc == RV_OK) branch = scope_text(c, in, ei, n->branch_expr, &rc);
  if (rc == RV_OK) county = scope_text(c, in, ei, n->county_expr, &rc);
  if (rc == RV_OK && n->due) rc = rv__due_expr(c, in, ei, n->due, &due);
  if (rc != RV_OK) { rv_free(assignee); rv_free(branch); rv_free(county); return rc; }
  fj = rv__form_json(n);
  form = rv_json_print(fj);
  cJSON_Delete(fj);
  rc = rv_store_exec(c->e->st, c->err,
    "INSERT INTO tasks(instance_id, ei, element_id, name, process_id, candidate_groups,"
    " assignee, branch, county, status_text, form, created, due, state)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,'open')",
    "iitttttttttii", in->id, key, n->id, n->name ? n->name : n->id, in->def->process_id,
    n->candidate_groups, assignee, branch, county, in->status_text, form, c->now, due);
  if (rc == RV_OK) {
    char buf[32];
    rv__side_mark(in, rv__ei_find(in, key), RV_SIDE_TASK);
    snprintf(buf, sizeof buf, "task %lld", (long long)rv_store_last_id(c->e->st));
    rv__history(c, in, "TASK_CREATED", n - M(in)->nodes, key, buf);
  }
  rv_free(assignee); rv_free(branch); rv_free(county);
  rv_free(form);
  if (rc != RV_OK) return rc;
  return wait_here(in, rv__ei_find(in, key));
}

rv_status rv__validate_form(const rv_node *n, const cJSON *data, rv_err *err){
  const cJSON *it;
  if (n == NULL || n->n_fields == 0) return RV_OK;
  cJSON_ArrayForEach(it, data) {
    bool known = false;
    for (int i = 0; i < n->n_fields; i++) if (strcmp(n->fields[i].id, it->string) == 0) known = true;
    if (!known) return rv_fail(err, RV_INVALID, "unknown field '%s'", it->string);
  }
  for (int i = 0; i < n->n_fields; i++) {
    const rv_field *f = &n->fields[i];
    const cJSON *v = data ? cJSON_GetObjectItemCaseSensitive(data, f->id) : NULL;
    const char *t = f->type ? f->type : "string";
    if (v == NULL || cJSON_IsNull(v)) {
      if (f->required) return rv_fail(err, RV_INVALID, "field '%s' is required", f->id);
      continue;
    }
    if (strcmp(t, "string") == 0 && !cJSON_IsString(v))
      return rv_fail(err, RV_INVALID, "field '%s' must be a string", f->id);
    if (strcmp(t, "long") == 0 &&
        !(cJSON_IsNumber(v) && rv_num_whole(v->valuedouble, &(int64_t){0})))
      return rv_fail(err, RV_INVALID, "field '%s' must be an integer", f->id);
    if (strcmp(t, "boolean") == 0 && !cJSON_IsBool(v))
      return rv_fail(err, RV_INVALID, "field '%s' must be true or false", f->id);
    if (strcmp(t, "date") == 0) {
      int64_t ms;
      if (!cJSON_IsString(v) || rv_datetime_parse(v->valuestring, &ms, NULL) != RV_OK)
        return rv_fail(err, RV_INVALID, "field '%s' must be an ISO 8601 date", f->id);
    }
    if (strcmp(t, "enum") == 0) {
      bool ok = false;
      for (int k = 0; cJSON_IsString(v) && k < f->n_values; k++)
        if (strcmp(f->values[k], v->valuestring) == 0) ok = true;
      if (!ok) return rv_fail(err, RV_INVALID, "field '%s' must be one of its values", f->id);
    }
  }
  return RV_OK;
}

/*--- Scopes ---------------------------------------------------------------------------*/

static rv_status sub_process(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  int start = -1;
  rv_status rc;
  rv_ei *st;
  for (int i = 0; i < n->n_children && start < 0; i++) {
    const rv_node *ch = &M(in)->nodes[n->children[i]];
    if (ch->type == RV_ELEM_START_EVENT && ch->ev == RV_EV_NONE) start = n->children[i];
  }
  if (start < 0) return rv_fail(c->err, RV_INVALID, "subprocess '%s' has no none start event", n->id);
  ei->state = EI_WAITING;
  in->dirty = true;
  rc = rv__open_evsubs(c, in, key, (int)(n - M(in)->nodes));
  if (rc != RV_OK) return rc;
  st = rv__ei_new(in, start, key);
  rv__push(c, ACT_ACTIVATE, in, st->key);
  return RV_OK;
}

static rv_status call_activity(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  int64_t key = ei->key;
  cJSON *vars = NULL;
  rv_def *d;
  rv_inst *child;
  rv_status rc;
  if (n->called_element == NULL) return rv_fail(c->err, RV_INVALID, "call activity '%s' names no process", n->id);
  rc = rv__def_latest(c->e, n->called_element, 0, &d, c->err);
  if (rc != RV_OK) return rc;
  {
    const cJSON *view;
    if (n->n_inputs > 0) { rc = rv__map(c, in, ei, n->inputs, n->n_inputs, NULL, &vars); view = vars; }
    else view = rv__vars_view(in, ei, &vars);
    if (rc == RV_OK) rc = rv__start_instance(c, d, -1, view, in->business_key, in->id, key, &child);
    cJSON_Delete(vars);
  }
  if (rc != RV_OK) return rc;
  ei = rv__ei_find(in, key);
  ei->child_instance = child->id;
  return wait_here(in, ei);
}

/*--- Gateways ---------------------------------------------------------------------------*/

rv_status rv__gateway_split(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  const rv_model *m = M(in);
  int64_t key = ei->key, scope = ei->parent;
  int *take = rv_malloc(sizeof(int) * (size_t)(n->n_out + 1)), nt = 0;
  rv_buf why;
  rv_status rc = RV_OK;

  /* the decision's reasons only when the history level keeps them */
  bool say = n->type != RV_ELEM_PARALLEL_GATEWAY && n->n_out > 1 &&
             rv__history_kept(c, "GATEWAY_DECISION", n);
  rv_buf_init(&why, 4096);
  for (int i = 0; i < n->n_out; i++) {
    const rv_flow *f = &m->flows[n->out[i]];
    bool hit = true;
    if (f->is_default) continue;
    if (n->type == RV_ELEM_EXCLUSIVE_GATEWAY && nt > 0) break;   /* first match wins */
    if (f->condition && n->type != RV_ELEM_PARALLEL_GATEWAY) {
      rc = rv__eval_bool(c, in, rv__ei_find(in, key), f->condition, &hit);
      if (rc != RV_OK) break;
      if (say) {
        if (why.len) rv_buf_add(&why, "; ", 2);         /* appends: no printf for every case */
        rv_buf_add(&why, "`", 1);
        rv_buf_adds(&why, f->condition);
        rv_buf_adds(&why, hit ? "` is true" : "` is false");
        {  /* the values it read, for replay reports (journal/reads.h) */
          cJSON *owned;
          rv_journal_reads(f->condition, rv__vars_view(in, rv__ei_find(in, key), &owned), &why);
          cJSON_Delete(owned);
        }
      }
    }
    if (hit) take[nt++] = n->out[i];
  }
  if (rc == RV_OK && nt == 0 && n->default_flow >= 0) {
    take[nt++] = n->default_flow;
    rv_buf_adds(&why, why.len ? "; default flow" : "default flow");
  }
  if (rc == RV_OK && nt == 0 && n->n_out > 0)
    rc = rv_fail(c->err, RV_CONFLICT, "no outgoing flow of gateway '%s' matched and it has no default", n->id);
  if (rc == RV_OK && say) {
    rv_buf_add(&why, " -> ", 4);
    for (int i = 0; i < nt; i++) {
      if (i) rv_buf_add(&why, ",", 1);
      rv_buf_adds(&why, m->flows[take[i]].id);
    }
    rv__history(c, in, "GATEWAY_DECISION", ei->node, key, why.p);
  }
  rv_buf_fini(&why);
  if (rc != RV_OK) { rv_free(take); return rc; }
  rv__history(c, in, "ELEMENT_COMPLETED", ei->node, key, NULL);
  rv__ei_remove(in, key);
  if (nt == 0) rv__push(c, ACT_SCOPE_CHECK, in, scope);
  for (int i = 0; rc == RV_OK && i < nt; i++) rc = rv__take_flow(c, in, scope, take[i]);
  rv_free(take);
  return rc;
}

static rv_status event_gateway(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  const rv_model *m = M(in);
  int64_t key = ei->key;
  for (int i = 0; i < n->n_out; i++) {
    int t = m->flows[n->out[i]].target;
    const rv_node *tn = &m->nodes[t];
    rv_status rc = RV_OK;
    rv_ei *g = rv__ei_find(in, key);
    if (tn->ev == RV_EV_TIMER) rc = rv__timer_arm(c, in, g, t);
    else if (tn->ev == RV_EV_MESSAGE || tn->type == RV_ELEM_RECEIVE_TASK) rc = rv__open_message_sub(c, in, g, t);
    else if (tn->ev == RV_EV_SIGNAL) {
      rv__side_mark(in, g, RV_SIDE_SUB);
      rc = rv_store_exec(c->e->st, c->err,
        "INSERT INTO subscriptions(kind, name, corr_key, instance_id, ei, element_id, definition_id)"
        " VALUES('signal',?,NULL,?,?,?,?)", "tiiti",
        tn->ref_name ? tn->ref_name : tn->id, in->id, key, tn->id, in->def->id);
    }
    if (rc != RV_OK) return rc;
  }
  return wait_here(in, rv__ei_find(in, key));
}

/*--- Multi-instance ------------------------------------------------------------------------*/

static void mi_spawn(rv_ctx *c, rv_inst *in, int64_t body_key, int index){
  rv_ei *body = rv__ei_find(in, body_key);
  const rv_node *n = rv__node(in, body->node);
  const cJSON *item = cJSON_GetArrayItem(body->mi_items, index);
  int node = body->node;
  rv_ei *inner = rv__ei_new(in, node, body_key);
  inner->mi_inner = true;
  inner->mi_index = index;
  inner->vars = cJSON_CreateObject();
  if (n->mi_element_var)
    cJSON_AddItemToObject(inner->vars, n->mi_element_var, item ? cJSON_Duplicate(item, 1) : cJSON_CreateNull());
  cJSON_AddNumberToObject(inner->vars, "loopCounter", index + 1);
  rv__push(c, ACT_ACTIVATE, in, inner->key);
}

/* loopCardinality: how many instances; the items are 1..N (the element
** variable, if named, gets the instance's number, as loopCounter does). */
#define MI_MAX_CARDINALITY 10000

static rv_status mi_cardinality(rv_ctx *c, rv_inst *in, rv_ei *body, const rv_node *n, cJSON **out){
  cJSON *v = NULL;
  rv_status rc = rv__eval(c, in, body, n->mi_cardinality, &v);
  double d;
  *out = NULL;
  if (rc != RV_OK) return rc;
  d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(v);
  if (!(d >= 0 && d <= MI_MAX_CARDINALITY) || d != (double)(int)d)   /* range first: the cast */
    return rv_fail(c->err, RV_INVALID, "loopCardinality `%s` of '%s' is not a whole number from 0 to %d",
                   n->mi_cardinality, n->id, MI_MAX_CARDINALITY);
  *out = cJSON_CreateArray();
  for (int i = 1; i <= (int)d; i++) cJSON_AddItemToArray(*out, cJSON_CreateNumber(i));
  return RV_OK;
}

rv_status rv__mi_start(rv_ctx *c, rv_inst *in, rv_ei *body){
  const rv_node *n = rv__node(in, body->node);
  int64_t key = body->key;
  cJSON *coll = NULL;
  rv_status rc;
  int total;

  if (n->mi_collection == NULL && n->mi_cardinality == NULL)
    return rv_fail(c->err, RV_INVALID, "multi-instance '%s' has no collection", n->id);
  rc = n->mi_collection ? rv__eval(c, in, body, n->mi_collection, &coll)
                        : mi_cardinality(c, in, body, n, &coll);
  if (rc != RV_OK) return rc;
  if (cJSON_IsObject(coll) && cJSON_GetArraySize(coll) == 0) {   /* {} from Lua is an empty list */
    cJSON_Delete(coll);
    coll = cJSON_CreateArray();
  }
  if (!cJSON_IsArray(coll)) {
    cJSON_Delete(coll);
    return rv_fail(c->err, RV_INVALID, "multi-instance collection `%s` is not a list", n->mi_collection);
  }
  total = cJSON_GetArraySize(coll);
  body = rv__ei_find(in, key);
  body->mi_body = true;
  body->mi_total = total;
  body->mi_done = 0;
  body->state = EI_WAITING;
  cJSON_Delete(body->mi_items);
  body->mi_items = coll;
  if (body->vars == NULL) body->vars = cJSON_CreateObject();
  if (n->mi_output_collection) {
    cJSON *out = cJSON_CreateArray();
    for (int i = 0; i < total; i++) cJSON_AddItemToArray(out, cJSON_CreateNull());
    cJSON_DeleteItemFromObjectCaseSensitive(body->vars, n->mi_output_collection);
    cJSON_AddItemToObject(body->vars, n->mi_output_collection, out);
  }
  in->dirty = true;
  if (total == 0) {
    if (n->mi_output_collection)
      rv__vars_set(in, rv__ei_find(in, body->parent), n->mi_output_collection, cJSON_CreateArray());
    rv__push(c, ACT_COMPLETE, in, key);
    return RV_OK;
  }
  if (n->mi_sequential) {
    body->mi_next = 1;
    mi_spawn(c, in, key, 0);
  } else {
    body->mi_next = total;
    for (int i = 0; i < total; i++) mi_spawn(c, in, key, i);
  }
  return RV_OK;
}

rv_status rv__mi_child_done(rv_ctx *c, rv_inst *in, rv_ei *body, rv_ei *inner){
  const rv_node *n = rv__node(in, body->node);
  int64_t body_key = body->key, inner_key = inner->key;
  int index = inner->mi_index;
  bool finished, stop = false;
  rv_status rc = RV_OK;

  if (n->mi_output_collection && n->mi_output_element) {
    cJSON *v = NULL;
    rc = rv__eval(c, in, inner, n->mi_output_element, &v);
    if (rc != RV_OK) return rv__incident(c, in, rv__ei_find(in, inner_key), "output", 0, c->err->msg);
    body = rv__ei_find(in, body_key);
    {
      cJSON *arr = cJSON_GetObjectItemCaseSensitive(body->vars, n->mi_output_collection);
      if (cJSON_IsArray(arr) && index < cJSON_GetArraySize(arr)) cJSON_ReplaceItemInArray(arr, index, v);
      else cJSON_Delete(v);
    }
  }
  /* The completion condition sees the finished iteration's variables (the
  ** task data it wrote are local to it), so evaluate it before the
  ** iteration goes; a failure is an incident on the iteration (a retry
  ** completes it again). */
  body = rv__ei_find(in, body_key);
  finished = body->mi_done + 1 >= body->mi_total;
  if (!finished && n->mi_completion) {
    cJSON *vars = rv__vars_visible(in, rv__ei_find(in, inner_key));
    cJSON_AddNumberToObject(vars, "nrOfInstances", body->mi_total);
    cJSON_AddNumberToObject(vars, "nrOfCompletedInstances", body->mi_done + 1);
    cJSON_AddNumberToObject(vars, "nrOfActiveInstances",
                            n->mi_sequential ? 0 : body->mi_next - body->mi_done - 1);
    rc = rv_rules_eval_bool(in->def->rules, n->mi_completion, vars, &stop, c->err);
    cJSON_Delete(vars);
    if (rc != RV_OK) return rv__incident(c, in, rv__ei_find(in, inner_key), "condition", 0, c->err->msg);
  }
  rv__history(c, in, "ELEMENT_COMPLETED", rv__ei_find(in, inner_key)->node, inner_key, "iteration");
  rc = rv__side_clear(c, in, inner_key);
  if (rc != RV_OK) return rc;
  rv__ei_remove(in, inner_key);
  body = rv__ei_find(in, body_key);
  body->mi_done++;
  in->dirty = true;
  if (stop) {
    rc = rv__terminate_children(c, in, body_key);
    if (rc != RV_OK) return rc;
    finished = true;
  }
  body = rv__ei_find(in, body_key);
  if (finished) {
    if (n->mi_output_collection) {
      cJSON *arr = cJSON_GetObjectItemCaseSensitive(body->vars, n->mi_output_collection);
      rv__vars_set(in, rv__ei_find(in, body->parent), n->mi_output_collection,
                   arr ? cJSON_Duplicate(arr, 1) : cJSON_CreateArray());
    }
    rv__push(c, ACT_COMPLETE, in, body_key);
  } else if (n->mi_sequential && body->mi_next < body->mi_total) {
    mi_spawn(c, in, body_key, body->mi_next++);
  }
  return RV_OK;
}

/*--- The table ---------------------------------------------------------------------------*/

static rv_status gateway(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  return rv__gateway_split(c, in, ei, n);
}

static const rv_elem_ops table[RV_ELEM_COUNT] = {
  [RV_ELEM_START_EVENT]         = { done_now },
  [RV_ELEM_END_EVENT]           = { end_event },
  [RV_ELEM_INTERMEDIATE_CATCH]  = { catch_event },
  [RV_ELEM_INTERMEDIATE_THROW]  = { throw_event },
  [RV_ELEM_BOUNDARY_EVENT]      = { done_now },     /* only ever entered by its trigger */
  [RV_ELEM_TASK]                = { done_now },
  [RV_ELEM_MANUAL_TASK]         = { done_now },
  [RV_ELEM_USER_TASK]           = { user_task },
  [RV_ELEM_SERVICE_TASK]        = { service_task },
  [RV_ELEM_SEND_TASK]           = { service_task },
  [RV_ELEM_RECEIVE_TASK]        = { receive_task },
  [RV_ELEM_SCRIPT_TASK]         = { script_task },
  [RV_ELEM_BUSINESS_RULE_TASK]  = { script_task },
  [RV_ELEM_SUB_PROCESS]         = { sub_process },
  [RV_ELEM_CALL_ACTIVITY]       = { call_activity },
  [RV_ELEM_EXCLUSIVE_GATEWAY]   = { gateway },
  [RV_ELEM_PARALLEL_GATEWAY]    = { gateway },
  [RV_ELEM_INCLUSIVE_GATEWAY]   = { gateway },
  [RV_ELEM_EVENT_BASED_GATEWAY] = { event_gateway },
};

static rv_status unknown(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  (void)in; (void)ei;
  return rv_fail(c->err, RV_INVALID, "element '%s' of kind %s cannot run", n->id, rv_elem_name(n->type));
}
static const rv_elem_ops unknown_ops = { unknown };

const rv_elem_ops *rv__elem_ops(rv_elem_type t){
  if ((unsigned)t >= RV_ELEM_COUNT || table[t].run == NULL) return &unknown_ops;
  return &table[t];
}
