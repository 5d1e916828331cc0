/*
** runtime/flow.c -- token movement: activation, leaving, joins, scopes,
** termination, event triggers, errors and escalations, call activities.
**
** Everything here runs inside one command (rv_ctx) and writes through
** the command's transaction. Work is queued (rv__push) and run in FIFO
** order by rv__run_queue, so no BPMN construct recurses on the C stack.
**
** Pointer rule: rv__ei_new and rv__ei_remove may move element instances,
** so code keeps element-instance *keys* across such calls and re-finds.
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "core/buf.h"
#include "cal/cal.h"
#include "sms/sms.h"

static const rv_model *M(const rv_inst *in){ return in->def->model; }

bool rv__is_activity(rv_elem_type t){
  switch (t) {
  case RV_ELEM_TASK: case RV_ELEM_USER_TASK: case RV_ELEM_MANUAL_TASK:
  case RV_ELEM_SERVICE_TASK: case RV_ELEM_SEND_TASK: case RV_ELEM_RECEIVE_TASK:
  case RV_ELEM_SCRIPT_TASK: case RV_ELEM_BUSINESS_RULE_TASK:
  case RV_ELEM_SUB_PROCESS: case RV_ELEM_CALL_ACTIVITY:
    return true;
  default:
    return false;
  }
}

static rv_inst *find_loaded(rv_ctx *c, int64_t id){
  for (int i = 0; i < c->n_insts; i++) if (c->insts[i]->id == id) return c->insts[i];
  return NULL;
}

/*--- Side rows ----------------------------------------------------------------*/

rv_status rv__side_clear(rv_ctx *c, rv_inst *in, int64_t key){
  rv_store *st = c->e->st;
  rv_ei *ei = rv__ei_find(in, key);
  unsigned side = ei ? ei->side : RV_SIDE_ALL;
  rv_status rc = RV_OK;
  if (side & RV_SIDE_TIMER)
    rc = rv_store_exec(st, c->err, "DELETE FROM timers WHERE instance_id=? AND ei=?",
                       "ii", in->id, key);
  if (rc == RV_OK && (side & RV_SIDE_SUB))
    rc = rv_store_exec(st, c->err, "DELETE FROM subscriptions WHERE instance_id=? AND ei=?",
                       "ii", in->id, key);
  if (rc == RV_OK && (side & RV_SIDE_TASK))
    rc = rv_store_exec(st, c->err,
      "UPDATE tasks SET state='canceled', completed=? WHERE instance_id=? AND ei=? AND state='open'",
      "iii", c->now, in->id, key);
  if (rc == RV_OK && (side & RV_SIDE_JOB))
    rc = rv_store_exec(st, c->err,
      "UPDATE jobs SET state='canceled' WHERE instance_id=? AND ei=? AND state IN ('pending','incident')"
      " AND notify=0", "ii", in->id, key);
  if (rc == RV_OK && (side & RV_SIDE_INC))   /* marked by every incident of the ei */
    rc = rv_store_exec(st, c->err,
      "UPDATE incidents SET state='canceled', resolved=? WHERE instance_id=? AND ei=? AND state='open'",
      "iii", c->now, in->id, key);
  if (rc == RV_OK && ei && (ei->side & ~RV_SIDE_NOTIFY)) {
    ei->side &= RV_SIDE_NOTIFY;   /* a notification may still fail into an incident */
    in->dirty = true;
  }
  return rc;
}

/*--- Status and SMS -------------------------------------------------------------*/

/* Whether an open task of the instance may exist: only an element that
** created one carries RV_SIDE_TASK until it is left (states of version 1
** carry every flag). */
static bool has_open_tasks(const rv_inst *in){
  for (int i = 0; i < in->n_eis; i++)
    if (in->eis[i].side & RV_SIDE_TASK) return true;
  return false;
}

void rv__set_status(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  if (n->status) {
    /* a status may name variables like an SMS template: "{days} of 720 days" */
    char *text;
    if (strchr(n->status, '{')) {
      cJSON *owned;
      text = rv__render(n->status, rv__vars_view(in, ei, &owned));
      cJSON_Delete(owned);
    } else text = rv_strdup(n->status);
    rv_free(in->status_text);
    in->status_text = text;
    in->dirty = true;
    rv__history(c, in, "STATUS", ei->node, ei->key, text);
    if (has_open_tasks(in))       /* a new task copies the status when created */
      rv_store_exec(c->e->st, NULL,
        "UPDATE tasks SET status_text=? WHERE instance_id=? AND state='open'", "ti",
        text, in->id);
  }
  if (n->sms) {
    cJSON *owned;
    const cJSON *vars = rv__vars_view(in, ei, &owned);
    cJSON *input = cJSON_CreateObject();
    char *text = rv__render(n->sms, vars);
    const char *to = rv_json_str(vars, "mobile");
    cJSON_AddStringToObject(input, "to", to ? to : "");
    cJSON_AddStringToObject(input, "text", text);
    cJSON_AddNumberToObject(input, "instance", (double)in->id);
    cJSON_AddStringToObject(input, "element", n->id);
    rv_free(text);
    cJSON_Delete(owned);
    /* the element's policy (rv:smsRetries, rv:smsRetryBackoff), else 5 attempts a minute apart, doubling */
    rv__create_job(c, in, ei, "sms", input, n->sms_retries > 0 ? n->sms_retries : 5,
                   n->sms_retry_backoff ? n->sms_retry_backoff : "PT1M", true, "sms");
    cJSON_Delete(input);
  }
}

/*--- Jobs -------------------------------------------------------------------------*/

/* A job's row in the state it has now: pending when created, or (engine.c
** answers_now) done with its answer, canceled, or pending after a decline.
** The same key again (an element run again) resets the row, keeping its id;
** *id (if wanted) is the row's id either way. */
rv_status rv__job_row_write(rv_ctx *c, int64_t inst, int64_t ei, const char *elem,
                            const char *adapter, const char *input, const char *key,
                            const char *state, int attempts, int64_t retries,
                            int64_t backoff_ms, bool notify, int64_t *id){
  int64_t last = rv_store_last_id(c->e->st);
  rv_status rc = rv_store_exec(c->e->st, c->err,
    "INSERT INTO jobs(instance_id, ei, element_id, adapter, input, key, state, attempts,"
    " retries, backoff_ms, next_try, created, notify) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(key) DO UPDATE SET state=excluded.state, attempts=excluded.attempts,"
    " next_try=excluded.next_try, input=excluded.input",
    "iitttttiiiiii", inst, ei, elem, adapter, input, key, state, (int64_t)attempts,
    retries, backoff_ms, c->now, c->now, (int64_t)notify);
  if (rc != RV_OK || id == NULL) return rc;
  *id = rv_store_last_id(c->e->st);
  if (*id == last) {                     /* the upsert's update path leaves the last rowid */
    sqlite3_stmt *s = rv_store_stmt(c->e->st, "SELECT id FROM jobs WHERE key=?");
    rv_store_bind(s, "t", key);
    *id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (*id == 0) rc = rv_fail(c->err, RV_CORRUPT, "job %s: no row after its upsert", key);
  }
  return rc;
}

/* "instance:ei:element[:suffix]" (new string; without printf, as every
** job of every case builds one) */
static char *job_key(int64_t inst, int64_t ei, const char *elem, const char *suffix){
  rv_buf b;
  rv_buf_init(&b, 0);
  rv_buf_add_int(&b, inst);
  rv_buf_add(&b, ":", 1);
  rv_buf_add_int(&b, ei);
  rv_buf_add(&b, ":", 1);
  rv_buf_adds(&b, elem);
  if (suffix) { rv_buf_add(&b, ":", 1); rv_buf_adds(&b, suffix); }
  return rv_buf_take(&b);
}

rv_status rv__create_job(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *adapter,
                         const cJSON *input, int retries, const char *backoff, bool notify,
                         const char *keysuffix){
  const rv_node *n = rv__node(in, ei->node);
  char *key = job_key(in->id, ei->key, n->id, keysuffix);
  char *text = rv_json_print(input);
  rv_duration d;
  int64_t backoff_ms = 10000;
  rv_status rc = RV_OK;
  const rv_adapter_ops *ops = !notify && c->e->answer_now ? rv_adapter_find(adapter) : NULL;
  if (backoff && rv_duration_parse(backoff, &d, NULL) == RV_OK) backoff_ms = rv_duration_ms(&d);
  if (ops && ops->answer_now)      /* its row is written with its answer (engine.c answers_now) */
    rv__answer_later(c, in, ei, ops, key, text, retries > 0 ? retries : 1, backoff_ms);
  else
    rc = rv__job_row_write(c, in->id, ei->key, n->id, adapter, text, key, "pending", 0,
                           retries > 0 ? retries : 1, backoff_ms, notify, NULL);
  if (rc == RV_OK) {
    rv__side_mark(in, ei, notify ? RV_SIDE_NOTIFY : RV_SIDE_JOB);
    rv__history(c, in, "JOB_CREATED", ei->node, ei->key, adapter);
  }
  rv_free(key);
  rv_free(text);
  return rc;
}

/*--- Subscriptions ------------------------------------------------------------------*/

#define SQL_BUFFERED \
  "SELECT id FROM messages WHERE name=? AND consumed_by IS NULL AND expires>?" \
  " AND (?3 IS NULL OR corr_key=?3) ORDER BY id LIMIT 1"

rv_status rv__open_message_sub(rv_ctx *c, rv_inst *in, rv_ei *ei, int node){
  const rv_node *bn = rv__node(in, node);
  char *key = NULL;
  rv_status rc;
  sqlite3_stmt *s;
  int64_t msg = 0;

  if (bn->correlation_key) {
    cJSON *v = NULL;
    rc = rv__eval(c, in, ei, bn->correlation_key, &v);
    if (rc != RV_OK) return rc;
    if (!cJSON_IsNull(v)) key = rv_json_text(v);
    cJSON_Delete(v);
  }
  rc = rv_store_exec(c->e->st, c->err,
    "INSERT INTO subscriptions(kind, name, corr_key, instance_id, ei, element_id, definition_id)"
    " VALUES('message',?,?,?,?,?,?)", "ttiiti",
    bn->ref_name ? bn->ref_name : bn->id, key, in->id, ei->key, bn->id, in->def->id);
  if (rc == RV_OK) {
    rv__side_mark(in, ei, RV_SIDE_SUB);
    s = rv_store_stmt(c->e->st, SQL_BUFFERED);
    rv_store_bind(s, "tit", bn->ref_name ? bn->ref_name : bn->id, c->now, key);
    if (sqlite3_step(s) == SQLITE_ROW) msg = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (msg) {
      rv__push(c, ACT_BUFFERED, in, ei->key);
      c->q[c->qt - 1].node = node;
      c->q[c->qt - 1].aux = msg;
    }
  }
  rv_free(key);
  return rc;
}

static rv_status open_signal_sub(rv_ctx *c, rv_inst *in, rv_ei *ei, int node){
  const rv_node *bn = rv__node(in, node);
  rv__side_mark(in, ei, RV_SIDE_SUB);
  return rv_store_exec(c->e->st, c->err,
    "INSERT INTO subscriptions(kind, name, corr_key, instance_id, ei, element_id, definition_id)"
    " VALUES('signal',?,NULL,?,?,?,?)", "tiiti",
    bn->ref_name ? bn->ref_name : bn->id, in->id, ei->key, bn->id, in->def->id);
}

/* Arm whatever node `node` waits for, on behalf of ei. */
static rv_status open_event(rv_ctx *c, rv_inst *in, rv_ei *ei, int node){
  const rv_node *bn = rv__node(in, node);
  switch (bn->ev) {
  case RV_EV_TIMER:   return rv__timer_arm(c, in, ei, node);
  case RV_EV_MESSAGE: return rv__open_message_sub(c, in, ei, node);
  case RV_EV_SIGNAL:  return open_signal_sub(c, in, ei, node);
  default:
    if (bn->type == RV_ELEM_RECEIVE_TASK) return rv__open_message_sub(c, in, ei, node);
    return RV_OK;   /* errors/escalations are found when thrown */
  }
}

rv_status rv__open_evsubs(rv_ctx *c, rv_inst *in, int64_t scope_key, int scope_node){
  const rv_model *m = M(in);
  const int *subs = scope_node < 0 ? m->processes[in->def->proc].event_subs : m->nodes[scope_node].event_subs;
  int ns = scope_node < 0 ? m->processes[in->def->proc].n_event_subs : m->nodes[scope_node].n_event_subs;
  for (int i = 0; i < ns; i++) {
    const rv_node *es = &m->nodes[subs[i]];
    for (int k = 0; k < es->n_children; k++) {
      const rv_node *st = &m->nodes[es->children[k]];
      if (st->type != RV_ELEM_START_EVENT) continue;
      rv_ei *scope = rv__ei_find(in, scope_key);
      rv_status rc = open_event(c, in, scope, es->children[k]);
      if (rc != RV_OK) return rc;
    }
  }
  return RV_OK;
}

static rv_status open_boundaries(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n){
  for (int i = 0; i < n->n_boundaries; i++) {
    rv_status rc = open_event(c, in, ei, n->boundaries[i]);
    if (rc != RV_OK) return rc;
  }
  return RV_OK;
}

/*--- Running an element ----------------------------------------------------------------*/

/* A failure in user content (a rule, a condition, a mapping) becomes an
** incident on the element; engine failures (I/O, corruption) abort the
** command. */
static bool is_user_failure(rv_status rc){
  return rc == RV_SCRIPT || rc == RV_INVALID || rc == RV_NOTFOUND || rc == RV_CONFLICT ||
         rc == RV_ADAPTER || rc == RV_DENIED;
}

static rv_status run_handler(rv_ctx *c, rv_inst *in, int64_t key){
  rv_ei *ei = rv__ei_find(in, key);
  const rv_node *n;
  rv_status rc;
  if (ei == NULL) return RV_OK;
  n = rv__node(in, ei->node);
  if (n->mi && ei->mi_body) rc = rv__mi_start(c, in, ei);
  else rc = rv__elem_ops(n->type)->run(c, in, ei, n);
  if (rc != RV_OK && is_user_failure(rc)) {
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    ei = rv__ei_find(in, key);
    if (ei == NULL) return RV_OK;
    rc = rv__incident(c, in, ei, n->mi && ei->mi_body ? "mi" : rv_status_name(rc), 0, msg);
  }
  return rc;
}

static rv_status activate(rv_ctx *c, rv_inst *in, int64_t key){
  rv_ei *ei = rv__ei_find(in, key);
  const rv_node *n;
  rv_status rc = RV_OK;
  if (ei == NULL) return RV_OK;
  n = rv__node(in, ei->node);
  rv__history(c, in, "ELEMENT_ACTIVATED", ei->node, key, NULL);
  if (!ei->mi_inner) rv__set_status(c, in, ei, n);
  ei = rv__ei_find(in, key);
  if (n->mi && !ei->mi_body && !ei->mi_inner) ei->mi_body = true;
  if (!ei->mi_inner && n->n_boundaries > 0) {
    rc = open_boundaries(c, in, ei, n);
    if (rc != RV_OK) {
      if (!is_user_failure(rc)) return rc;
      return rv__incident(c, in, rv__ei_find(in, key), rv_status_name(rc), 0, c->err->msg);
    }
  }
  return run_handler(c, in, key);
}

/*--- Flows and joins -------------------------------------------------------------------*/

static int flow_pos(const rv_node *n, int flow){
  for (int i = 0; i < n->n_in; i++) if (n->in[i] == flow) return i;
  return -1;
}

static rv_join *join_find(rv_inst *in, int64_t scope, int node){
  for (int i = 0; i < in->n_joins; i++)
    if (in->joins[i].scope == scope && in->joins[i].node == node) return &in->joins[i];
  return NULL;
}

static void join_remove(rv_inst *in, rv_join *j){
  int i = (int)(j - in->joins);
  rv_free(j->counts);
  in->joins[i] = in->joins[--in->n_joins];
  in->dirty = true;
}

/* Can a token at node `from` still arrive at the join through flow f?
** Breadth-first over flows and boundary events, never through the join. */
static bool reaches(const rv_model *m, int from, int f, int join){
  int target = m->flows[f].source;
  int *q, qh = 0, qt = 0;
  bool *seen, hit = false;
  if (from == target) return true;
  q = rv_malloc(sizeof *q * (size_t)m->n_nodes);
  seen = rv_calloc((size_t)m->n_nodes, sizeof *seen);
  q[qt++] = from; seen[from] = true;
  while (qh < qt && !hit) {
    const rv_node *n = &m->nodes[q[qh++]];
    for (int i = 0; i < n->n_out + n->n_boundaries && !hit; i++) {
      int next = i < n->n_out ? m->flows[n->out[i]].target : n->boundaries[i - n->n_out];
      if (next == join || seen[next]) continue;
      if (next == target) { hit = true; break; }
      seen[next] = true;
      q[qt++] = next;
    }
  }
  rv_free(q);
  rv_free(seen);
  return hit;
}

static bool join_ready(rv_inst *in, rv_join *j){
  const rv_model *m = M(in);
  const rv_node *g = &m->nodes[j->node];
  bool any = false;
  for (int k = 0; k < g->n_in; k++) if (j->counts[k] > 0) any = true;
  if (!any) return false;
  if (g->type == RV_ELEM_PARALLEL_GATEWAY) {
    for (int k = 0; k < g->n_in; k++) if (j->counts[k] == 0) return false;
    return true;
  }
  /* inclusive: every missing flow must be unreachable from every token in the scope */
  for (int k = 0; k < g->n_in; k++) {
    if (j->counts[k] > 0) continue;
    for (int i = 0; i < in->n_eis; i++) {
      if (in->eis[i].parent != j->scope || in->eis[i].node < 0) continue;
      if (reaches(m, in->eis[i].node, g->in[k], j->node)) return false;
    }
    for (int i = 0; i < in->n_joins; i++) {
      rv_join *o = &in->joins[i];
      if (o == j || o->scope != j->scope) continue;
      if (reaches(m, o->node, g->in[k], j->node)) return false;
    }
  }
  return true;
}

static rv_status join_fire(rv_ctx *c, rv_inst *in, rv_join *j){
  const rv_node *g = &M(in)->nodes[j->node];
  bool left = false;
  int node = j->node;
  int64_t scope = j->scope;
  rv_ei *ei;
  for (int k = 0; k < g->n_in; k++) {
    if (j->counts[k] > 0) j->counts[k]--;
    if (j->counts[k] > 0) left = true;
  }
  if (!left) join_remove(in, j);
  in->dirty = true;
  ei = rv__ei_new(in, node, scope);
  rv__push(c, ACT_ACTIVATE, in, ei->key);
  return RV_OK;
}

rv_status rv__take_flow(rv_ctx *c, rv_inst *in, int64_t scope, int flow){
  const rv_model *m = M(in);
  const rv_flow *f = &m->flows[flow];
  const rv_node *t = &m->nodes[f->target];
  rv_ei *ei;
  rv__history(c, in, "FLOW_TAKEN", -1, 0, f->id);
  if ((t->type == RV_ELEM_PARALLEL_GATEWAY || t->type == RV_ELEM_INCLUSIVE_GATEWAY) && t->n_in > 1) {
    rv_join *j = join_find(in, scope, f->target);
    int pos = flow_pos(t, flow);
    if (j == NULL) {
      in->joins = rv_realloc(in->joins, sizeof *in->joins * (size_t)(in->n_joins + 1));
      j = &in->joins[in->n_joins++];
      j->scope = scope;
      j->node = f->target;
      j->counts = rv_calloc((size_t)t->n_in + 1, sizeof(int));
    }
    if (pos >= 0) j->counts[pos]++;
    in->dirty = true;
    if (t->type == RV_ELEM_PARALLEL_GATEWAY && join_ready(in, j)) return join_fire(c, in, j);
    return RV_OK;   /* inclusive joins are checked when the command is quiet */
  }
  ei = rv__ei_new(in, f->target, scope);
  rv__push(c, ACT_ACTIVATE, in, ei->key);
  return RV_OK;
}

/*--- Leaving ----------------------------------------------------------------------------*/

rv_status rv__leave(rv_ctx *c, rv_inst *in, rv_ei *ei){
  const rv_model *m = M(in);
  const rv_node *n = rv__node(in, ei->node);
  int64_t key = ei->key, scope = ei->parent;
  int *take, nt = 0;
  rv_status rc = RV_OK;

  if (ei->mi_inner) {
    rv_ei *body = rv__ei_find(in, ei->parent);
    if (body == NULL) return RV_OK;
    return rv__mi_child_done(c, in, body, ei);
  }
  take = rv_malloc(sizeof *take * (size_t)(n->n_out + 1));
  for (int i = 0; i < n->n_out; i++) {
    const rv_flow *f = &m->flows[n->out[i]];
    bool hit = true;
    if (f->is_default) continue;
    if (f->condition) {
      rc = rv__eval_bool(c, in, rv__ei_find(in, key), f->condition, &hit);
      if (rc != RV_OK) break;
    }
    if (hit) take[nt++] = n->out[i];
  }
  if (rc == RV_OK && nt == 0 && n->default_flow >= 0) take[nt++] = n->default_flow;
  if (rc == RV_OK && nt == 0 && n->n_out > 0)
    rc = rv_fail(c->err, RV_CONFLICT, "no outgoing flow of '%s' can be taken", n->id);
  if (rc != RV_OK) {
    rv_free(take);
    if (!is_user_failure(rc)) return rc;
    return rv__incident(c, in, rv__ei_find(in, key), "condition", 0, c->err->msg);
  }
  rv__history(c, in, "ELEMENT_COMPLETED", ei->node, key, NULL);
  rc = rv__side_clear(c, in, key);
  rv__ei_remove(in, key);
  if (rc == RV_OK && nt == 0) rv__push(c, ACT_SCOPE_CHECK, in, scope);
  for (int i = 0; rc == RV_OK && i < nt; i++) rc = rv__take_flow(c, in, scope, take[i]);
  rv_free(take);
  return rc;
}

static rv_status instance_complete(rv_ctx *c, rv_inst *in, const char *how){
  rv_status rc = rv__side_clear(c, in, 1);
  rv_free(in->status);
  in->status = rv_strdup("completed");
  in->ended = true;
  in->dirty = true;
  rv__history(c, in, "INSTANCE_COMPLETED", -1, 1, how);
  if (rc == RV_OK && in->parent_instance) rc = rv__child_done(c, in, false, NULL);
  return rc;
}

static rv_status scope_check(rv_ctx *c, rv_inst *in, int64_t key){
  rv_ei *s = rv__ei_find(in, key);
  if (s == NULL || in->ended) return RV_OK;
  for (int i = 0; i < in->n_eis; i++) if (in->eis[i].parent == key) return RV_OK;
  for (int i = 0; i < in->n_joins; i++) if (in->joins[i].scope == key) return RV_OK;
  if (s->node < 0) return instance_complete(c, in, NULL);
  if (s->mi_body) return RV_OK;
  rv__push(c, ACT_COMPLETE, in, key);
  return RV_OK;
}

/*--- Termination --------------------------------------------------------------------*/

static rv_status cancel_child_instance(rv_ctx *c, int64_t id){
  rv_inst *ch;
  rv_status rc = rv__ctx_load(c, id, &ch);
  if (rc == RV_NOTFOUND) return RV_OK;
  if (rc != RV_OK || ch->ended) return rc;
  rc = rv__terminate_children(c, ch, 1);
  if (rc == RV_OK) rc = rv__side_clear(c, ch, 1);
  rv_free(ch->status);
  ch->status = rv_strdup("terminated");
  ch->ended = true;
  ch->dirty = true;
  rv__history(c, ch, "INSTANCE_TERMINATED", -1, 1, "parent left the call activity");
  return rc;
}

rv_status rv__terminate_children(rv_ctx *c, rv_inst *in, int64_t key){
  for (;;) {
    int64_t child = 0;
    rv_status rc;
    for (int i = 0; i < in->n_eis; i++) if (in->eis[i].parent == key) { child = in->eis[i].key; break; }
    if (child == 0) break;
    rc = rv__terminate(c, in, child, true);
    if (rc != RV_OK) return rc;
  }
  for (int i = in->n_joins - 1; i >= 0; i--)
    if (in->joins[i].scope == key) join_remove(in, &in->joins[i]);
  return RV_OK;
}

rv_status rv__terminate(rv_ctx *c, rv_inst *in, int64_t key, bool record){
  rv_ei *ei;
  rv_status rc = rv__terminate_children(c, in, key);
  int64_t child;
  if (rc != RV_OK) return rc;
  ei = rv__ei_find(in, key);
  if (ei == NULL) return RV_OK;
  child = ei->child_instance;
  if (record) rv__history(c, in, "ELEMENT_TERMINATED", ei->node, key, NULL);
  rc = rv__side_clear(c, in, key);
  rv__ei_remove(in, key);
  if (rc == RV_OK && child) rc = cancel_child_instance(c, child);
  return rc;
}

/*--- Triggers -------------------------------------------------------------------------*/

static rv_status complete_new(rv_ctx *c, rv_inst *in, int node, int64_t scope,
                              const cJSON *payload){
  rv_ei *b = rv__ei_new(in, node, scope);
  int64_t key = b->key;
  rv__history(c, in, "ELEMENT_ACTIVATED", node, key, NULL);
  rv__set_status(c, in, rv__ei_find(in, key), rv__node(in, node));
  if (payload) rv__vars_merge(in, rv__ei_find(in, key), payload);
  rv__push(c, ACT_COMPLETE, in, key);
  return RV_OK;
}

static bool is_evsub_start(const rv_model *m, int node){
  const rv_node *n = &m->nodes[node];
  return n->type == RV_ELEM_START_EVENT && n->scope >= 0 && m->nodes[n->scope].triggered_by_event;
}

static rv_status clear_evsub_rows(rv_ctx *c, rv_inst *in, int64_t scope_key, int scope_node){
  const rv_model *m = M(in);
  const int *subs = scope_node < 0 ? m->processes[in->def->proc].event_subs : m->nodes[scope_node].event_subs;
  int ns = scope_node < 0 ? m->processes[in->def->proc].n_event_subs : m->nodes[scope_node].n_event_subs;
  rv_status rc = RV_OK;
  for (int i = 0; rc == RV_OK && i < ns; i++) {
    const rv_node *es = &m->nodes[subs[i]];
    for (int k = 0; rc == RV_OK && k < es->n_children; k++) {
      const char *id = m->nodes[es->children[k]].id;
      rc = rv_store_exec(c->e->st, c->err,
        "DELETE FROM timers WHERE instance_id=? AND ei=? AND element_id=?", "iit", in->id, scope_key, id);
      if (rc == RV_OK) rc = rv_store_exec(c->e->st, c->err,
        "DELETE FROM subscriptions WHERE instance_id=? AND ei=? AND element_id=?", "iit", in->id, scope_key, id);
    }
  }
  return rc;
}

rv_status rv__trigger(rv_ctx *c, rv_inst *in, int64_t ei_key, int node,
                      const cJSON *payload, bool *out_consumed){
  const rv_model *m = M(in);
  rv_ei *ei = rv__ei_find(in, ei_key);
  const rv_node *bn, *en;
  rv_status rc = RV_OK;

  *out_consumed = false;
  if (ei == NULL || node < 0 || in->ended) return RV_OK;
  bn = &m->nodes[node];
  en = rv__node(in, ei->node);
  if (node == ei->node) {                                   /* catch event, receive task */
    rv__history(c, in, "EVENT_TRIGGERED", node, ei_key, NULL);
    if (payload) rv__vars_merge(in, ei, payload);
    rc = rv__side_clear(c, in, ei_key);
    rv__push(c, ACT_COMPLETE, in, ei_key);
  } else if (bn->type == RV_ELEM_BOUNDARY_EVENT && en && bn->attached_to == ei->node) {
    int64_t scope = ei->parent;
    rv__history(c, in, "BOUNDARY_TRIGGERED", node, ei_key, bn->interrupting ? "interrupting" : "non-interrupting");
    if (bn->interrupting) rc = rv__terminate(c, in, ei_key, true);
    if (rc == RV_OK) rc = complete_new(c, in, node, scope, payload);
  } else if (en && en->type == RV_ELEM_EVENT_BASED_GATEWAY) {
    int64_t scope = ei->parent;
    int flow = -1;
    for (int i = 0; i < en->n_out; i++) if (m->flows[en->out[i]].target == node) flow = en->out[i];
    if (flow < 0) return RV_OK;
    rv__history(c, in, "GATEWAY_DECISION", ei->node, ei_key, bn->id);
    rv__history(c, in, "ELEMENT_COMPLETED", ei->node, ei_key, NULL);
    rc = rv__side_clear(c, in, ei_key);
    rv__ei_remove(in, ei_key);
    rv__history(c, in, "FLOW_TAKEN", -1, 0, m->flows[flow].id);
    if (rc == RV_OK) rc = complete_new(c, in, node, scope, payload);
  } else if (is_evsub_start(m, node)) {
    int es = bn->scope;
    rv_ei *sub;
    int64_t sub_key;
    rv__history(c, in, "EVENT_SUBPROCESS_TRIGGERED", es, ei_key,
                bn->interrupting ? "interrupting" : "non-interrupting");
    if (bn->interrupting) {
      rc = rv__terminate_children(c, in, ei_key);
      if (rc == RV_OK) rc = clear_evsub_rows(c, in, ei_key, ei->node);
    }
    if (rc != RV_OK) return rc;
    sub = rv__ei_new(in, es, ei_key);
    sub->state = EI_WAITING;
    sub_key = sub->key;
    rv__history(c, in, "ELEMENT_ACTIVATED", es, sub_key, NULL);
    rv__set_status(c, in, rv__ei_find(in, sub_key), &m->nodes[es]);
    rc = complete_new(c, in, node, sub_key, payload);
  } else {
    return RV_OK;
  }
  *out_consumed = true;
  return rc;
}

/*--- Errors and escalations ------------------------------------------------------------*/

static bool code_match(const rv_node *catcher, const char *code){
  return catcher->ref_name == NULL || (code && strcmp(catcher->ref_name, code) == 0);
}

static int find_boundary(const rv_model *m, const rv_node *n, rv_evdef ev, const char *code){
  int any = -1;
  for (int i = 0; i < n->n_boundaries; i++) {
    const rv_node *b = &m->nodes[n->boundaries[i]];
    if (b->ev != ev) continue;
    if (b->ref_name && code && strcmp(b->ref_name, code) == 0) return n->boundaries[i];
    if (b->ref_name == NULL && any < 0) any = n->boundaries[i];
  }
  return any;
}

static int find_evsub_start(const rv_inst *in, int scope_node, rv_evdef ev, const char *code){
  const rv_model *m = M(in);
  const int *subs = scope_node < 0 ? m->processes[in->def->proc].event_subs : m->nodes[scope_node].event_subs;
  int ns = scope_node < 0 ? m->processes[in->def->proc].n_event_subs : m->nodes[scope_node].n_event_subs;
  for (int i = 0; i < ns; i++) {
    const rv_node *es = &m->nodes[subs[i]];
    for (int k = 0; k < es->n_children; k++) {
      const rv_node *st = &m->nodes[es->children[k]];
      if (st->type == RV_ELEM_START_EVENT && st->ev == ev && code_match(st, code))
        return es->children[k];
    }
  }
  return -1;
}

rv_status rv__throw_error(rv_ctx *c, rv_inst *in, rv_ei *from, bool include_self,
                          const char *code, const char *msg, bool escalation,
                          bool *out_caught){
  const rv_model *m = M(in);
  rv_evdef ev = escalation ? RV_EV_ESCALATION : RV_EV_ERROR;
  int64_t cur_key = include_self ? from->key : from->parent;
  bool self = include_self, consumed;
  cJSON *payload = cJSON_CreateObject();
  rv_status rc = RV_OK;

  *out_caught = false;
  cJSON_AddStringToObject(payload, escalation ? "escalationCode" : "errorCode", code ? code : "");
  if (msg && !escalation) cJSON_AddStringToObject(payload, "errorMessage", msg);
  rv__history(c, in, escalation ? "ESCALATION_THROWN" : "ERROR_THROWN", from->node, from->key, code);
  while (cur_key != 0 && rc == RV_OK && !*out_caught) {
    rv_ei *cur = rv__ei_find(in, cur_key);
    const rv_node *cn;
    if (cur == NULL) break;
    cn = rv__node(in, cur->node);
    if (!self && (cur->node < 0 || (cn->type == RV_ELEM_SUB_PROCESS && !cur->mi_body))) {
      int st = find_evsub_start(in, cur->node, ev, code);
      if (st >= 0) {
        rc = rv__trigger(c, in, cur_key, st, payload, &consumed);
        *out_caught = true;
        break;
      }
    }
    if (cn && !cur->mi_inner && rv__is_activity(cn->type)) {
      int b = find_boundary(m, cn, ev, code);
      if (b >= 0) {
        rc = rv__trigger(c, in, cur_key, b, payload, &consumed);
        *out_caught = true;
        break;
      }
    }
    self = false;
    cur_key = cur->parent;
  }
  if (rc == RV_OK && !*out_caught && in->parent_instance && c->depth < 32) {
    rv_inst *parent;
    rc = rv__ctx_load(c, in->parent_instance, &parent);
    if (rc == RV_OK) {
      rv_ei *pei = rv__ei_find(parent, in->parent_ei);
      if (pei) {
        c->depth++;
        rc = rv__throw_error(c, parent, pei, true, code, msg, escalation, out_caught);
        c->depth--;
      }
    }
  }
  cJSON_Delete(payload);
  return rc;
}

/*--- Instances ---------------------------------------------------------------------------*/

rv_status rv__start_instance(rv_ctx *c, rv_def *d, int start_node, const cJSON *vars,
                             const char *bkey, int64_t parent_inst, int64_t parent_ei,
                             rv_inst **out){
  const rv_process *p = &d->model->processes[d->proc];
  rv_inst *in;
  rv_ei *root, *st;
  rv_status rc;
  int64_t id;

  *out = NULL;
  if (start_node < 0) {
    for (int i = 0; i < p->n_starts && start_node < 0; i++)
      if (d->model->nodes[p->starts[i]].ev == RV_EV_NONE) start_node = p->starts[i];
    if (start_node < 0 && p->n_starts > 0) start_node = p->starts[0];
  }
  if (start_node < 0)
    return rv_fail(c->err, RV_INVALID, "process '%s' has no start event", p->id);
  /* The row is written once, with its state, when the command ends
  ** (engine.c: save_inst); its id is the one SQLite would give it
  ** (max + 1: the command holds the write lock, and only here are
  ** instances created). */
  if (c->next_inst == 0) {
    sqlite3_stmt *s = rv_store_stmt(c->e->st, "SELECT coalesce(max(id), 0) + 1 FROM instances");
    if (sqlite3_step(s) == SQLITE_ROW) c->next_inst = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (c->next_inst <= 0) return rv_fail(c->err, RV_IO, "cannot read the last instance id");
  }
  id = c->next_inst++;
  in = rv_calloc(1, sizeof *in);
  in->id = id;
  in->def = d;
  in->status = rv_strdup("active");
  in->business_key = rv_strdup(bkey);
  in->parent_instance = parent_inst;
  in->parent_ei = parent_ei;
  in->next_key = 1;
  in->started = c->now;
  in->dirty = in->is_new = true;
  if (c->n_insts == c->cap_insts) {
    c->cap_insts = c->cap_insts ? c->cap_insts * 2 : 4;
    c->insts = rv_realloc(c->insts, sizeof *c->insts * (size_t)c->cap_insts);
  }
  c->insts[c->n_insts++] = in;
  root = rv__ei_new(in, -1, 0);
  root->state = EI_WAITING;
  root->vars = vars ? cJSON_Duplicate(vars, 1) : cJSON_CreateObject();
  rv__history(c, in, "INSTANCE_STARTED", -1, 1, parent_inst ? "called" : NULL);
  rc = rv__open_evsubs(c, in, 1, -1);
  if (rc != RV_OK) return rc;
  st = rv__ei_new(in, start_node, 1);
  rv__push(c, ACT_ACTIVATE, in, st->key);
  *out = in;
  return RV_OK;
}

rv_status rv__child_done(rv_ctx *c, rv_inst *child, bool error, const char *code){
  rv_inst *parent;
  rv_ei *pei, *croot;
  const rv_node *n;
  rv_status rc;
  (void)error; (void)code;
  rc = rv__ctx_load(c, child->parent_instance, &parent);
  if (rc == RV_NOTFOUND) return RV_OK;
  if (rc != RV_OK) return rc;
  pei = rv__ei_find(parent, child->parent_ei);
  if (pei == NULL) return RV_OK;
  n = rv__node(parent, pei->node);
  croot = rv__ei_find(child, 1);
  if (n->n_outputs > 0) {
    for (int i = 0; i < n->n_outputs && rc == RV_OK; i++) {
      cJSON *v = NULL;
      rc = rv_rules_eval(parent->def->rules, n->outputs[i].expr, croot ? croot->vars : NULL, &v, c->err);
      if (rc == RV_OK) rv__vars_set(parent, pei, n->outputs[i].target, v);
    }
    if (rc != RV_OK) return rv__incident(c, parent, pei, "mapping", 0, c->err->msg);
  } else if (croot && croot->vars) {
    rv__vars_merge(parent, pei, croot->vars);
  }
  rv__history(c, parent, "CALL_COMPLETED", pei->node, pei->key, NULL);
  rv__push(c, ACT_COMPLETE, parent, pei->key);
  return RV_OK;
}

/*--- Signals ---------------------------------------------------------------------------*/

rv_status rv__signal(rv_ctx *c, const char *name, const cJSON *payload, int *count){
  sqlite3_stmt *s;
  struct row { int64_t inst, ei, def; char *elem; } *rows = NULL;
  int n = 0, cap = 0;
  rv_status rc = RV_OK;

  if (c->depth > 16) return rv_fail(c->err, RV_CONFLICT, "signal '%s' recursion too deep", name);
  s = rv_store_stmt(c->e->st,
    "SELECT instance_id, ei, definition_id, element_id FROM subscriptions"
    " WHERE kind='signal' AND name=? ORDER BY id");
  rv_store_bind(s, "t", name);
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (n == cap) { cap = cap ? cap * 2 : 8; rows = rv_realloc(rows, sizeof *rows * (size_t)cap); }
    rows[n].inst = sqlite3_column_int64(s, 0);
    rows[n].ei = sqlite3_column_int64(s, 1);
    rows[n].def = sqlite3_column_int64(s, 2);
    rows[n].elem = rv_strdup((const char *)sqlite3_column_text(s, 3));
    n++;
  }
  sqlite3_reset(s);
  c->depth++;
  for (int i = 0; i < n && rc == RV_OK; i++) {
    if (rows[i].inst == 0) {
      rv_def *d;
      rv_inst *in;
      rc = rv__def_get(c->e, rows[i].def, &d, c->err);
      if (rc == RV_OK) rc = rv__start_instance(c, d, rv_model_find_node(d->model, rows[i].elem),
                                               payload, NULL, 0, 0, &in);
      if (rc == RV_OK && count) (*count)++;
    } else {
      rv_inst *in;
      bool consumed = false;
      rc = rv__ctx_load(c, rows[i].inst, &in);
      if (rc == RV_OK && !in->ended) {
        int node = rv_model_find_node(in->def->model, rows[i].elem);
        rv__history(c, in, "SIGNAL_RECEIVED", node, rows[i].ei, name);
        rc = rv__trigger(c, in, rows[i].ei, node, payload, &consumed);
        if (consumed && count) (*count)++;
      }
    }
  }
  c->depth--;
  for (int i = 0; i < n; i++) rv_free(rows[i].elem);
  rv_free(rows);
  return rc;
}

/*--- Timers, jobs, incidents as commands -------------------------------------------------*/

#define SQL_TIMER_GET \
  "SELECT instance_id, ei, element_id, definition_id, repeat_left, fired, armed FROM timers WHERE id=?"

void rv__timer_row(rv_ctx *c, int64_t timer_id, rv_timer_row *t){
  sqlite3_stmt *s = rv_store_stmt(c->e->st, SQL_TIMER_GET);
  memset(t, 0, sizeof *t);
  t->id = timer_id;
  rv_store_bind(s, "i", timer_id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    t->found = true;
    t->inst = sqlite3_column_int64(s, 0);
    t->ei = sqlite3_column_int64(s, 1);
    snprintf(t->elem, sizeof t->elem, "%s", (const char *)sqlite3_column_text(s, 2));
    t->def = sqlite3_column_int64(s, 3);
    t->repeat = sqlite3_column_int(s, 4);
    t->fired = sqlite3_column_int(s, 5);
    t->armed = sqlite3_column_int64(s, 6);
  }
  sqlite3_reset(s);
}

rv_status rv__fire_timer(rv_ctx *c, const rv_timer_row *t){
  int64_t timer_id = t->id, inst = t->inst, ei_key = t->ei, def_id = t->def, armed = t->armed;
  int repeat = t->repeat, fired = t->fired;
  const char *elem = t->elem;
  rv_def *d;
  rv_status rc;
  int node;

  if (!t->found) return rv_fail(c->err, RV_NOTFOUND, "no timer %lld", (long long)timer_id);
  rc = rv__def_get(c->e, def_id, &d, c->err);
  if (rc != RV_OK) return rc;
  node = rv_model_find_node(d->model, elem);
  if (node < 0) return rv_fail(c->err, RV_CORRUPT, "timer %lld names no element", (long long)timer_id);
  /* re-arm a cycle before triggering: triggering may delete the row */
  if (repeat != 0) {
    rv_cycle cy;
    int64_t next = -1;
    if (rv_cycle_parse(d->model->nodes[node].timer_expr, &cy, NULL) == RV_OK)
      next = rv_cycle_next(&cy, armed, fired + 1);
    if (next >= 0)
      rc = rv_store_exec(c->e->st, c->err,
        "UPDATE timers SET due=?, fired=fired+1, repeat_left=? WHERE id=?", "iii",
        next, (int64_t)(repeat > 0 ? repeat - 1 : -1), timer_id);
    else
      rc = rv_store_exec(c->e->st, c->err, "DELETE FROM timers WHERE id=?", "i", timer_id);
  } else {
    rc = rv_store_exec(c->e->st, c->err, "DELETE FROM timers WHERE id=?", "i", timer_id);
  }
  if (rc != RV_OK) return rc;
  if (inst == 0) {
    rv_inst *in;
    rc = rv__start_instance(c, d, node, NULL, NULL, 0, 0, &in);
    if (rc == RV_OK) rv__history(c, in, "TIMER_FIRED", node, 0, NULL);
  } else {
    rv_inst *in;
    bool consumed;
    rc = rv__ctx_load(c, inst, &in);
    if (rc == RV_OK && !in->ended) {
      rv__history(c, in, "TIMER_FIRED", node, ei_key, NULL);
      rc = rv__trigger(c, in, ei_key, node, NULL, &consumed);
    }
  }
  return rc;
}

#define SQL_JOB_GET \
  "SELECT instance_id, ei, state, attempts, retries, backoff_ms, notify, element_id, key, adapter" \
  " FROM jobs WHERE id=?"

void rv__job_row(rv_ctx *c, int64_t job_id, rv_job_row *j){
  sqlite3_stmt *s = rv_store_stmt(c->e->st, SQL_JOB_GET);
  memset(j, 0, sizeof *j);
  j->id = job_id;
  rv_store_bind(s, "i", job_id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    j->found = true;
    j->inst = sqlite3_column_int64(s, 0);
    j->ei = sqlite3_column_int64(s, 1);
    snprintf(j->state, sizeof j->state, "%s", (const char *)sqlite3_column_text(s, 2));
    j->pending = strcmp(j->state, "pending") == 0;
    j->attempts = sqlite3_column_int(s, 3);
    j->retries = sqlite3_column_int(s, 4);
    j->backoff = sqlite3_column_int64(s, 5);
    j->notify = sqlite3_column_int(s, 6) != 0;
    snprintf(j->elem, sizeof j->elem, "%s", (const char *)sqlite3_column_text(s, 7));
    snprintf(j->key, sizeof j->key, "%s", (const char *)sqlite3_column_text(s, 8));
    snprintf(j->adapter, sizeof j->adapter, "%s", (const char *)sqlite3_column_text(s, 9));
  }
  sqlite3_reset(s);
}

rv_status rv__job_result(rv_ctx *c, const rv_job_row *j, rv_job_outcome o,
                         const cJSON *result, cJSON *owned, const char *code, const char *msg){
  int64_t job_id = j->id, inst = j->inst, key = j->ei, backoff = j->backoff;
  int attempts = j->attempts + 1, retries = j->retries;
  bool notify = j->notify, pending = j->pending;
  const char *elem = j->elem;
  rv_inst *in;
  rv_ei *ei;
  rv_status rc;

  if (!j->found) return RV_OK;
  if (!pending) return RV_OK;            /* canceled meanwhile, or applied already */
  /* SMS delivery log (adapters/sms/sms_log.c): only sms jobs have one. */
  if (strcmp(j->adapter, "sms") == 0) {
    rc = rv_sms_log_result(c->e->st, c->now, job_id, o, result, code, msg, c->err);
    if (rc != RV_OK) return rc;
  }

  if (o == RV_JOB_FAILED) {
    c->e->stats.jobs_failed++;
    if (attempts >= retries) {
      rc = rv_store_exec(c->e->st, c->err,
        "UPDATE jobs SET state='incident', attempts=?, last_error=? WHERE id=?", "iti",
        (int64_t)attempts, msg, job_id);
      if (rc != RV_OK) return rc;
      if (notify) {
        /* the element need not wait for its notification; if it still
        ** runs, it is marked so that leaving it cancels the incident */
        rc = rv__incident_row(c, inst, key, elem, "notify", job_id, msg);
        if (rc == RV_OK && rv__ctx_load(c, inst, &in) == RV_OK && !in->ended)
          rv__side_mark(in, rv__ei_find(in, key), RV_SIDE_INC);
        return rc;
      }
      rc = rv__ctx_load(c, inst, &in);
      if (rc != RV_OK) return rc;
      ei = rv__ei_find(in, key);
      return ei ? rv__incident(c, in, ei, "job", job_id, msg ? msg : "adapter failed") : RV_OK;
    } else {
      int64_t delay = backoff;
      for (int i = 1; i < attempts && delay < 86400000; i++) delay *= 2;
      if (delay > 86400000) delay = 86400000;
      return rv_store_exec(c->e->st, c->err,
        "UPDATE jobs SET attempts=?, next_try=?, last_error=? WHERE id=?", "iiti",
        (int64_t)attempts, c->now + delay, msg, job_id);
    }
  }
  /* OR FAIL: no statement journal; the command's rollback undoes it (engine.c save_inst) */
  rc = j->written ? RV_OK
     : rv_store_exec(c->e->st, c->err, "UPDATE OR FAIL jobs SET state='done', attempts=? WHERE id=?",
                     "ii", (int64_t)attempts, job_id);
  if (rc != RV_OK || notify) return rc;
  rc = rv__ctx_load(c, inst, &in);
  if (rc != RV_OK) return rc;
  ei = rv__ei_find(in, key);
  if (ei == NULL || in->ended) return RV_OK;
  if (o == RV_JOB_BPMN_ERROR) {
    bool caught = false;
    rc = rv__throw_error(c, in, ei, true, code, msg, false, &caught);
    if (rc == RV_OK && !caught) {
      char text[400];
      snprintf(text, sizeof text, "unhandled BPMN error '%s': %s", code ? code : "", msg ? msg : "");
      ei = rv__ei_find(in, key);
      if (ei) rc = rv__incident(c, in, ei, "error", job_id, text);
    }
    return rc;
  }
  ei->side &= ~RV_SIDE_JOB;      /* its one job is done: nothing to cancel on leaving */
  rv__history(c, in, "JOB_COMPLETED", ei->node, key, NULL);
  rc = owned ? rv__apply_result_owned(c, in, ei, rv__node(in, ei->node), owned)
             : rv__apply_result(c, in, ei, rv__node(in, ei->node), result);
  if (rc != RV_OK) {
    if (!is_user_failure(rc)) return rc;
    return rv__incident(c, in, rv__ei_find(in, key), "mapping", 0, c->err->msg);
  }
  rv__push(c, ACT_COMPLETE, in, key);
  return RV_OK;
}

rv_status rv__retry(rv_ctx *c, int64_t incident){
  sqlite3_stmt *s = rv_store_stmt(c->e->st,
    "SELECT instance_id, ei, job_id, state, kind FROM incidents WHERE id=?");
  int64_t inst, key, job;
  char state[16], kind[32];
  rv_inst *in;
  rv_ei *ei;
  rv_status rc;

  rv_store_bind(s, "i", incident);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return rv_fail(c->err, RV_NOTFOUND, "no incident %lld", (long long)incident);
  }
  inst = sqlite3_column_int64(s, 0);
  key = sqlite3_column_int64(s, 1);
  job = sqlite3_column_int64(s, 2);
  snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(s, 3));
  snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(s, 4));
  sqlite3_reset(s);
  if (strcmp(state, "open") != 0)
    return rv_fail(c->err, RV_CONFLICT, "incident %lld is %s", (long long)incident, state);
  rc = rv_store_exec(c->e->st, c->err,
    "UPDATE incidents SET state='resolved', resolved=? WHERE id=?", "ii", c->now, incident);
  if (rc != RV_OK) return rc;
  if (job) {
    rc = rv_store_exec(c->e->st, c->err,
      "UPDATE jobs SET state='pending', attempts=0, next_try=? WHERE id=?", "ii", c->now, job);
    if (rc != RV_OK) return rc;
  }
  rc = rv__ctx_load(c, inst, &in);
  if (rc != RV_OK) return rc;
  rv__history(c, in, "INCIDENT_RESOLVED", -1, key, kind);
  ei = rv__ei_find(in, key);
  if (ei == NULL || in->ended) return RV_OK;
  in->dirty = true;
  if (job) { ei->state = EI_WAITING; return RV_OK; }
  ei->state = EI_ACTIVE;
  if (strcmp(kind, "mapping") == 0 && ei->child_instance) {
    /* a call activity's output mapping failed on the finished child: map
    ** again from the child's final variables, do not call a new child */
    int64_t child_id = ei->child_instance;
    rv_inst *ch;
    rc = rv__ctx_load(c, child_id, &ch);
    if (rc != RV_OK && rc != RV_NOTFOUND) return rc;
    if (rc == RV_OK && ch->ended && strcmp(ch->status, "completed") == 0)
      return rv__child_done(c, ch, false, NULL);
    ei = rv__ei_find(in, key);
    if (ei == NULL) return RV_OK;
  }
  /* condition/output: the element's work is done, only leaving failed */
  rv__push(c, strcmp(kind, "condition") == 0 || strcmp(kind, "output") == 0 ? ACT_COMPLETE : ACT_RUN,
           in, key);
  return RV_OK;
}

/*--- The queue ------------------------------------------------------------------------------*/

static rv_status buffered(rv_ctx *c, rv_inst *in, const rv_act *a){
  sqlite3_stmt *s;
  char *payload = NULL;
  bool ok = false, consumed;
  rv_status rc;
  cJSON *p;
  if (rv__ei_find(in, a->key) == NULL) return RV_OK;
  s = rv_store_stmt(c->e->st,
    "SELECT payload FROM messages WHERE id=? AND consumed_by IS NULL");
  rv_store_bind(s, "i", a->aux);
  if (sqlite3_step(s) == SQLITE_ROW) {
    ok = true;
    payload = rv_strdup((const char *)sqlite3_column_text(s, 0));
  }
  sqlite3_reset(s);
  s = rv_store_stmt(c->e->st,
    "SELECT 1 FROM subscriptions WHERE instance_id=? AND ei=? AND element_id=?");
  rv_store_bind(s, "iit", in->id, a->key, M(in)->nodes[a->node].id);
  if (sqlite3_step(s) != SQLITE_ROW) ok = false;
  sqlite3_reset(s);
  if (!ok) { rv_free(payload); return RV_OK; }
  rc = rv_store_exec(c->e->st, c->err, "UPDATE messages SET consumed_by=? WHERE id=?",
                     "ii", in->id, a->aux);
  p = rv_json_parse(payload);
  rv_free(payload);
  rv__history(c, in, "MESSAGE_CORRELATED", a->node, a->key, "buffered");
  if (rc == RV_OK) rc = rv__trigger(c, in, a->key, a->node, p, &consumed);
  cJSON_Delete(p);
  return rc;
}

static rv_status step(rv_ctx *c, const rv_act *a){
  rv_inst *in = find_loaded(c, a->inst);
  rv_ei *ei;
  if (in == NULL) return rv_fail(c->err, RV_CORRUPT, "queued action for an unloaded instance");
  if (in->ended) return RV_OK;
  switch (a->kind) {
  case ACT_ACTIVATE:    return activate(c, in, a->key);
  case ACT_RUN:         return run_handler(c, in, a->key);
  case ACT_COMPLETE:
    ei = rv__ei_find(in, a->key);
    return ei ? rv__leave(c, in, ei) : RV_OK;
  case ACT_SCOPE_CHECK: return scope_check(c, in, a->key);
  case ACT_BUFFERED:    return buffered(c, in, a);
  }
  return RV_OK;
}

rv_status rv__run_queue(rv_ctx *c){
  rv_status rc = RV_OK;
  int guard = 0;
  for (;;) {
    bool fired = false;
    while (rc == RV_OK && c->qh < c->qt) {
      rv_act a = c->q[c->qh++];
      if (++guard > 1000000)
        return rv_fail(c->err, RV_CONFLICT, "command did not come to rest (endless loop in the process?)");
      rc = step(c, &a);
    }
    if (rc != RV_OK) return rc;
    /* quiet: inclusive joins whose missing tokens can no longer come */
    for (int i = 0; i < c->n_insts && !fired; i++) {
      rv_inst *in = c->insts[i];
      if (in->ended) continue;
      for (int k = 0; k < in->n_joins && !fired; k++) {
        rv_join *j = &in->joins[k];
        if (M(in)->nodes[j->node].type == RV_ELEM_INCLUSIVE_GATEWAY && join_ready(in, j)) {
          rc = join_fire(c, in, j);
          fired = true;
        }
      }
    }
    if (!fired) return rc;
  }
}
