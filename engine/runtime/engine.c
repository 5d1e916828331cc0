/*
** runtime/engine.c -- commands: each one is a transaction.
**
** A command (start, complete task, correlate, signal, fire timer, job
** result, cancel, retry) runs as:
**     cmd_begin   BEGIN IMMEDIATE (or SAVEPOINT inside a batch)
**     ...         load instances, queue actions, run the queue (flow.c)
**     cmd_end     write every touched instance back, then COMMIT
** and returns RV_OK only after the commit: that is the acknowledgement.
** On any error the whole command is rolled back and nothing is left in
** memory (instances are reloaded by the next command).
**
** Instance state is stored as JSON in instances.state (see save_inst);
** side tables are written directly by flow.c in the same transaction.
*/
#include <assert.h>
#include <stddef.h>
#include <string.h>
#include <sodium.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"

/*--- Instance (de)serialisation -------------------------------------------*/

static void inst_free(rv_inst *in){
  if (in == NULL) return;
  for (int i = 0; i < in->n_eis; i++) {
    cJSON_Delete(in->eis[i].vars);
    cJSON_Delete(in->eis[i].mi_items);
  }
  for (int i = 0; i < in->n_joins; i++) rv_free(in->joins[i].counts);
  rv_free(in->eis);
  rv_free(in->joins);
  rv_free(in->status);
  rv_free(in->status_text);
  rv_free(in->business_key);
  rv_free(in);
}

static cJSON *state_json(const rv_inst *in){
  cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "eis");
  cJSON_AddNumberToObject(o, "next", (double)in->next_key);
  for (int i = 0; i < in->n_eis; i++) {
    const rv_ei *ei = &in->eis[i];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "k", (double)ei->key);
    cJSON_AddNumberToObject(e, "n", ei->node);
    cJSON_AddNumberToObject(e, "p", (double)ei->parent);
    cJSON_AddNumberToObject(e, "s", ei->state);
    if (ei->vars) cJSON_AddItemToObject(e, "v", cJSON_Duplicate(ei->vars, 1));
    if (ei->mi_body) {
      cJSON_AddNumberToObject(e, "mb", 1);
      cJSON_AddNumberToObject(e, "tot", ei->mi_total);
      cJSON_AddNumberToObject(e, "done", ei->mi_done);
      cJSON_AddNumberToObject(e, "nx", ei->mi_next);
      if (ei->mi_items) cJSON_AddItemToObject(e, "items", cJSON_Duplicate(ei->mi_items, 1));
    }
    if (ei->mi_inner) {
      cJSON_AddNumberToObject(e, "mi", 1);
      cJSON_AddNumberToObject(e, "ix", ei->mi_index);
    }
    if (ei->child_instance) cJSON_AddNumberToObject(e, "ci", (double)ei->child_instance);
    cJSON_AddItemToArray(a, e);
  }
  if (in->n_joins) {
    cJSON *j = cJSON_AddArrayToObject(o, "joins");
    for (int i = 0; i < in->n_joins; i++) {
      const rv_join *jn = &in->joins[i];
      const rv_node *n = &in->def->model->nodes[jn->node];
      cJSON *x = cJSON_CreateObject(), *c = cJSON_AddArrayToObject(x, "c");
      cJSON_AddNumberToObject(x, "s", (double)jn->scope);
      cJSON_AddNumberToObject(x, "n", jn->node);
      for (int k = 0; k < n->n_in; k++) cJSON_AddItemToArray(c, cJSON_CreateNumber(jn->counts[k]));
      cJSON_AddItemToArray(j, x);
    }
  }
  return o;
}

static rv_status parse_state(rv_inst *in, const char *text, rv_err *err){
  cJSON *o = rv_json_parse(text), *a, *e;
  if (o == NULL) return rv_fail(err, RV_CORRUPT, "instance %lld: unreadable state", (long long)in->id);
  in->next_key = rv_json_int(o, "next", 1);
  a = cJSON_GetObjectItemCaseSensitive(o, "eis");
  cJSON_ArrayForEach(e, a) {
    rv_ei *ei;
    int node = (int)rv_json_int(e, "n", -1);
    if (node < -1 || node >= in->def->model->n_nodes) {
      cJSON_Delete(o);
      return rv_fail(err, RV_CORRUPT, "instance %lld: bad node index", (long long)in->id);
    }
    ei = rv__ei_new(in, node, rv_json_int(e, "p", 0));
    ei->key = rv_json_int(e, "k", 0);
    ei->state = (int)rv_json_int(e, "s", 0);
    ei->vars = cJSON_DetachItemFromObjectCaseSensitive(e, "v");
    ei->mi_body = rv_json_int(e, "mb", 0) != 0;
    ei->mi_total = (int)rv_json_int(e, "tot", 0);
    ei->mi_done = (int)rv_json_int(e, "done", 0);
    ei->mi_next = (int)rv_json_int(e, "nx", 0);
    ei->mi_items = cJSON_DetachItemFromObjectCaseSensitive(e, "items");
    ei->mi_inner = rv_json_int(e, "mi", 0) != 0;
    ei->mi_index = (int)rv_json_int(e, "ix", 0);
    ei->child_instance = rv_json_int(e, "ci", 0);
  }
  in->next_key = rv_json_int(o, "next", 1);   /* rv__ei_new advanced it */
  a = cJSON_GetObjectItemCaseSensitive(o, "joins");
  cJSON_ArrayForEach(e, a) {
    int node = (int)rv_json_int(e, "n", -1);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "c"), *x;
    rv_join *jn;
    int k = 0;
    if (node < 0 || node >= in->def->model->n_nodes) continue;
    in->joins = rv_realloc(in->joins, sizeof *in->joins * (size_t)(in->n_joins + 1));
    jn = &in->joins[in->n_joins++];
    jn->scope = rv_json_int(e, "s", 0);
    jn->node = node;
    jn->counts = rv_calloc((size_t)in->def->model->nodes[node].n_in + 1, sizeof(int));
    cJSON_ArrayForEach(x, c) {
      if (k < in->def->model->nodes[node].n_in) jn->counts[k] = x->valueint;
      k++;
    }
  }
  cJSON_Delete(o);
  return RV_OK;
}

#define SQL_LOAD_INST \
  "SELECT definition_id, status, state, status_text, business_key, parent_instance," \
  " parent_ei, started FROM instances WHERE id=?"

rv_status rv__ctx_load(rv_ctx *c, int64_t id, rv_inst **out){
  sqlite3_stmt *s;
  rv_inst *in;
  rv_status rc;
  int64_t def_id;

  *out = NULL;
  for (int i = 0; i < c->n_insts; i++)
    if (c->insts[i]->id == id) { *out = c->insts[i]; return RV_OK; }
  s = rv_store_stmt(c->e->st, SQL_LOAD_INST);
  rv_store_bind(s, "i", id);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return rv_fail(c->err, RV_NOTFOUND, "no instance %lld", (long long)id);
  }
  in = rv_calloc(1, sizeof *in);
  in->id = id;
  def_id = sqlite3_column_int64(s, 0);
  in->status = rv_strdup((const char *)sqlite3_column_text(s, 1));
  in->status_text = rv_strdup((const char *)sqlite3_column_text(s, 3));
  in->business_key = rv_strdup((const char *)sqlite3_column_text(s, 4));
  in->parent_instance = sqlite3_column_int64(s, 5);
  in->parent_ei = sqlite3_column_int64(s, 6);
  in->started = sqlite3_column_int64(s, 7);
  in->ended = strcmp(in->status, "active") != 0;
  rc = rv__def_get(c->e, def_id, &in->def, c->err);
  if (rc == RV_OK) {
    char *state = rv_strdup((const char *)sqlite3_column_text(s, 2));
    sqlite3_reset(s);
    rc = parse_state(in, state, c->err);
    rv_free(state);
  } else sqlite3_reset(s);
  if (rc != RV_OK) { inst_free(in); return rc; }
  if (c->n_insts == c->cap_insts) {
    c->cap_insts = c->cap_insts ? c->cap_insts * 2 : 4;
    c->insts = rv_realloc(c->insts, sizeof *c->insts * (size_t)c->cap_insts);
  }
  c->insts[c->n_insts++] = in;
  *out = in;
  return RV_OK;
}

static rv_status save_inst(rv_ctx *c, rv_inst *in){
  cJSON *st = state_json(in);
  char *text = rv_json_print(st);
  rv_status rc = rv_store_exec(c->e->st, c->err,
    "UPDATE instances SET status=?, state=?, status_text=?, ended=?, rev=rev+1 WHERE id=?",
    "tttii", in->status, text, in->status_text,
    (int64_t)(in->ended ? c->now : 0), in->id);
  cJSON_Delete(st);
  cJSON_free(text);
  return rc;
}

/*--- Element instances ------------------------------------------------------*/

rv_ei *rv__ei_find(rv_inst *in, int64_t key){
  for (int i = 0; i < in->n_eis; i++) if (in->eis[i].key == key) return &in->eis[i];
  return NULL;
}

rv_ei *rv__ei_new(rv_inst *in, int node, int64_t parent){
  rv_ei *ei;
  if (in->n_eis == in->cap_eis) {
    in->cap_eis = in->cap_eis ? in->cap_eis * 2 : 8;
    in->eis = rv_realloc(in->eis, sizeof *in->eis * (size_t)in->cap_eis);
  }
  ei = &in->eis[in->n_eis++];
  memset(ei, 0, sizeof *ei);
  ei->key = in->next_key++;
  ei->node = node;
  ei->parent = parent;
  in->dirty = true;
  return ei;
}

/* Pointers into in->eis are invalidated by rv__ei_new and rv__ei_remove:
** callers re-find by key after either. */
void rv__ei_remove(rv_inst *in, int64_t key){
  for (int i = 0; i < in->n_eis; i++) {
    if (in->eis[i].key == key) {
      cJSON_Delete(in->eis[i].vars);
      cJSON_Delete(in->eis[i].mi_items);
      in->eis[i] = in->eis[--in->n_eis];
      in->dirty = true;
      return;
    }
  }
}

const rv_node *rv__node(const rv_inst *in, int node){
  return node >= 0 ? &in->def->model->nodes[node] : NULL;
}

/*--- History, incidents, journal ------------------------------------------*/

void rv__history(rv_ctx *c, rv_inst *in, const char *event, int node, int64_t ei,
                 const char *detail){
  const rv_node *n = rv__node(in, node);
  rv_store_exec(c->e->st, NULL,
    "INSERT INTO history(instance_id, at, event, element_id, ei, detail) VALUES(?,?,?,?,?,?)",
    "iittit", in->id, c->now, event, n ? n->id : NULL, ei, detail);
}

rv_status rv__incident(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *kind,
                       int64_t job_id, const char *msg){
  const rv_node *n = rv__node(in, ei->node);
  rv_status rc;
  ei->state = EI_INCIDENT;
  in->dirty = true;
  rc = rv__incident_row(c, in->id, ei->key, n ? n->id : "(process)", kind, job_id, msg);
  rv__history(c, in, "INCIDENT_CREATED", ei->node, ei->key, msg);
  c->e->stats.incidents++;
  return rc;
}

rv_status rv__incident_row(rv_ctx *c, int64_t inst, int64_t ei, const char *element,
                           const char *kind, int64_t job_id, const char *msg){
  return rv_store_exec(c->e->st, c->err,
    "INSERT INTO incidents(instance_id, ei, element_id, kind, message, job_id, created, state)"
    " VALUES(?,?,?,?,?,?,?,'open')",
    "iitttii", inst, ei, element, kind, msg, job_id, c->now);
}

/* Every external input is journaled with the instance it applied to, the
** command's instant and the history mark (journal/journal.h explains how
** record and replay use them). */
static void journal(rv_ctx *c, int64_t inst, const char *cmd, const cJSON *payload){
  char *p = payload ? rv_json_print(payload) : NULL;
  rv_store_exec(c->e->st, NULL,
    "INSERT INTO journal(instance_id, at, command, payload, mark) VALUES(?,?,?,?,?)",
    "iitti", inst, c->now, cmd, p, c->hist_mark);
  if (p) cJSON_free(p);
}

/*--- Command frame ----------------------------------------------------------*/

static rv_status cmd_begin(rv_engine *e, rv_ctx *c, rv_err *err){
  rv_status rc;
  memset(c, 0, sizeof *c);
  c->e = e;
  c->err = err ? err : &c->local_err;
  c->now = rv_clock_now(e->clock);
  e->stats.commands++;
  rc = rv_store_begin(e->st, err);
  if (rc == RV_OK) {
    sqlite3_stmt *s = rv_store_stmt(e->st, "SELECT coalesce(max(id), 0) FROM history");
    if (sqlite3_step(s) == SQLITE_ROW) c->hist_mark = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    e->cmd_now = c->now;
    e->in_cmd = true;
  }
  return rc;
}

/* Lua's now() inside a command is the command's instant, the value
** journaled with it: a replay that sets its virtual clock to each
** journaled instant hands Lua the same clock values. Outside commands it
** is the engine clock. */
static int64_t cmd_clock_now(rv_clock *k){
  rv_engine *e = (rv_engine *)(void *)((char *)k - offsetof(rv_engine, cmd_clock));
  return e->in_cmd ? e->cmd_now : rv_clock_now(e->clock);
}

static void ctx_free(rv_ctx *c){
  c->e->in_cmd = false;
  for (int i = 0; i < c->n_insts; i++) inst_free(c->insts[i]);
  rv_free(c->insts);
  rv_free(c->q);
  c->insts = NULL; c->q = NULL; c->n_insts = 0;
}

extern rv_status rv__run_queue(rv_ctx *c);

static rv_status cmd_end(rv_ctx *c, rv_status rc){
  rv_engine *e = c->e;
  if (rc == RV_OK) rc = rv__run_queue(c);
  for (int i = 0; rc == RV_OK && i < c->n_insts; i++)
    if (c->insts[i]->dirty) rc = save_inst(c, c->insts[i]);
  if (rc == RV_OK) {
    rc = rv_store_commit(e->st, c->err);
    if (rc == RV_OK && rv_store_depth(e->st) == 0) e->stats.commits++;
  } else {
    rv_store_rollback(e->st);
  }
  if (e->batch > 0 && rc == RV_OK) e->batch_count++;
  ctx_free(c);
  return rc;
}

void rv__push(rv_ctx *c, rv_act_kind k, rv_inst *in, int64_t key){
  if (c->qt == c->qcap) {
    if (c->qh > 0) {
      memmove(c->q, c->q + c->qh, sizeof *c->q * (size_t)(c->qt - c->qh));
      c->qt -= c->qh; c->qh = 0;
    }
    if (c->qt == c->qcap) {
      c->qcap = c->qcap ? c->qcap * 2 : 32;
      c->q = rv_realloc(c->q, sizeof *c->q * (size_t)c->qcap);
    }
  }
  c->q[c->qt++] = (rv_act){ .kind = k, .inst = in->id, .key = key, .node = -1 };
}

/*--- Open / close ------------------------------------------------------------*/

static void flush_cb(evutil_socket_t fd, short what, void *arg);

rv_status rv_engine_open(const rv_engine_cfg *cfg, rv_engine **out, rv_err *err){
  rv_engine *e;
  rv_store_opts so = {0};
  rv_status rc;

  *out = NULL;
  if (sodium_init() < 0) return rv_fail(err, RV_IO, "libsodium failed to initialise");
  e = rv_calloc(1, sizeof *e);
  rv_clock_init_system(&e->sysclock);
  e->clock = cfg->clock ? cfg->clock : &e->sysclock;
  e->cmd_clock.now = cmd_clock_now;
  e->limits = cfg->limits;
  e->message_ttl_ms = cfg->message_ttl_ms > 0 ? cfg->message_ttl_ms : 3600 * 1000;
  e->def_cache = cfg->def_cache > 0 ? cfg->def_cache : 64;
  so.relaxed_sync = cfg->relaxed_sync;
  rc = rv_store_open(cfg->db_path, &so, &e->st, err);
  if (rc != RV_OK) { rv_free(e); return rc; }
  if (cfg->base) e->base = cfg->base;
  else { e->base = event_base_new(); e->own_base = true; }
  if (e->base == NULL) { rv_engine_close(e); return rv_fail(err, RV_IO, "event_base_new failed"); }
  e->flush_ev = event_new(e->base, -1, 0, flush_cb, e);
  *out = e;
  return RV_OK;
}

extern void rv__results_free(rv_engine *e);

void rv_engine_close(rv_engine *e){
  if (e == NULL) return;
  rv_adapters_unbind_engine(e);   /* adapter.h: no binding may outlive the engine */
  rv__results_free(e);
  if (e->flush_ev) event_free(e->flush_ev);
  rv__defs_free(e);
  rv_store_close(e->st);
  if (e->own_base && e->base) event_base_free(e->base);
  rv_free(e->inflight_ids);
  rv_free(e);
}

struct event_base *rv_engine_base(rv_engine *e){ return e->base; }
rv_clock *rv_engine_clock(rv_engine *e){ return e->clock; }
struct rv_store *rv_engine_store(rv_engine *e){ return e->st; }
const rv_engine_stats *rv_engine_stats_get(const rv_engine *e){ return &e->stats; }

rv_status rv_engine_batch_begin(rv_engine *e, rv_err *err){
  rv_status rc = rv_store_begin(e->st, err);
  if (rc == RV_OK) { e->batch++; e->batch_count = 0; e->stats.batches++; }
  return rc;
}
rv_status rv_engine_batch_end(rv_engine *e, rv_err *err){
  rv_status rc;
  if (e->batch <= 0) return rv_fail(err, RV_CONFLICT, "no batch open");
  e->batch--;
  if (e->batch_count > e->stats.max_batch) e->stats.max_batch = e->batch_count;
  rc = rv_store_commit(e->st, err);
  if (rc == RV_OK) e->stats.commits++;
  return rc;
}

/*--- Commands ----------------------------------------------------------------*/

static rv_status do_start(rv_ctx *c, const char *process_id, int version,
                          const cJSON *vars, const char *bkey, int64_t *out){
  rv_def *d;
  rv_inst *in;
  rv_status rc;
  if (vars && !cJSON_IsObject(vars))
    return rv_fail(c->err, RV_INVALID, "start variables must be a JSON object");
  rc = rv__def_latest(c->e, process_id, version, &d, c->err);
  if (rc != RV_OK) return rc;
  if (d->model->processes[d->proc].n_starts == 0)
    return rv_fail(c->err, RV_INVALID, "process '%s' has no start event", process_id);
  rc = rv__start_instance(c, d, -1, vars, bkey, 0, 0, &in);
  if (rc != RV_OK) return rc;
  {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "process", process_id);
    cJSON_AddNumberToObject(p, "version", d->version);
    if (bkey) cJSON_AddStringToObject(p, "business_key", bkey);
    cJSON_AddItemToObject(p, "vars", vars ? cJSON_Duplicate(vars, 1) : cJSON_CreateObject());
    journal(c, in->id, "start", p);
    cJSON_Delete(p);
  }
  *out = in->id;
  return RV_OK;
}

rv_status rv_engine_start(rv_engine *e, const char *process_id, int version,
                          const cJSON *vars, const char *business_key,
                          int64_t *out_instance, rv_err *err){
  return rv_engine_start_keyed(e, NULL, process_id, version, vars, business_key,
                               out_instance, err);
}

rv_status rv_engine_start_keyed(rv_engine *e, const char *request_key,
                                const char *process_id, int version,
                                const cJSON *vars, const char *business_key,
                                int64_t *out_instance, rv_err *err){
  rv_ctx c;
  rv_status rc;
  int64_t id = 0;

  *out_instance = 0;
  if (process_id == NULL || !*process_id) return rv_fail(err, RV_INVALID, "process id is required");
  rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  if (request_key) {
    sqlite3_stmt *s = rv_store_stmt(e->st, "SELECT result FROM commands WHERE key=?");
    rv_store_bind(s, "t", request_key);
    if (sqlite3_step(s) == SQLITE_ROW) {
      id = sqlite3_column_int64(s, 0);
      sqlite3_reset(s);
      rv_store_rollback(e->st);
      ctx_free(&c);
      *out_instance = id;
      return RV_OK;
    }
    sqlite3_reset(s);
  }
  rc = do_start(&c, process_id, version, vars, business_key, &id);
  if (rc == RV_OK && request_key) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)id);
    rc = rv_store_exec(e->st, err, "INSERT INTO commands(key, result, at) VALUES(?,?,?)",
                       "tti", request_key, buf, c.now);
  }
  rc = cmd_end(&c, rc);
  if (rc == RV_OK) *out_instance = id;
  return rc;
}

#define SQL_TASK_GET "SELECT instance_id, ei, state FROM tasks WHERE id=?"

rv_status rv_engine_complete_task(rv_engine *e, int64_t task_id, const cJSON *data,
                                  const char *actor, rv_err *err){
  rv_ctx c;
  rv_status rc = cmd_begin(e, &c, err);
  sqlite3_stmt *s;
  int64_t inst_id = 0, key = 0;
  char state[16] = "";
  rv_inst *in = NULL;
  rv_ei *ei;
  const rv_node *n;

  if (rc != RV_OK) return rc;
  if (data && !cJSON_IsObject(data)) {
    rc = rv_fail(err, RV_INVALID, "task data must be a JSON object");
    return cmd_end(&c, rc);
  }
  s = rv_store_stmt(e->st, SQL_TASK_GET);
  rv_store_bind(s, "i", task_id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    inst_id = sqlite3_column_int64(s, 0);
    key = sqlite3_column_int64(s, 1);
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(s, 2));
  }
  sqlite3_reset(s);
  if (inst_id == 0) return cmd_end(&c, rv_fail(err, RV_NOTFOUND, "no task %lld", (long long)task_id));
  if (strcmp(state, "open") != 0)
    return cmd_end(&c, rv_fail(err, RV_CONFLICT, "task %lld is %s", (long long)task_id, state));
  rc = rv__ctx_load(&c, inst_id, &in);
  if (rc != RV_OK) return cmd_end(&c, rc);
  ei = rv__ei_find(in, key);
  if (ei == NULL) return cmd_end(&c, rv_fail(err, RV_CORRUPT, "task %lld has no element", (long long)task_id));
  n = rv__node(in, ei->node);
  rc = rv__validate_form(n, data, err);
  if (rc != RV_OK) return cmd_end(&c, rc);
  {
    char *d = data ? rv_json_print(data) : NULL;
    rc = rv_store_exec(e->st, err,
      "UPDATE tasks SET state='completed', completed_by=?, completed=?, data=? WHERE id=?",
      "titi", actor, c.now, d, task_id);
    if (d) cJSON_free(d);
  }
  if (rc == RV_OK && data) {
    if (n->n_outputs > 0) {
      cJSON *o = NULL;
      rc = rv__map(&c, in, ei, n->outputs, n->n_outputs, data, &o);
      if (rc == RV_OK) { rv__vars_merge(in, ei, o); cJSON_Delete(o); }
    } else rv__vars_merge(in, ei, data);
  }
  if (rc == RV_OK) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "task", (double)task_id);
    cJSON_AddStringToObject(p, "element", n->id);
    cJSON_AddNumberToObject(p, "ei", (double)ei->key);
    if (actor) cJSON_AddStringToObject(p, "actor", actor);
    if (data) cJSON_AddItemToObject(p, "data", cJSON_Duplicate(data, 1));   /* absent: none given */
    journal(&c, in->id, "complete", p);
    cJSON_Delete(p);
    rv__history(&c, in, "TASK_COMPLETED", ei->node, ei->key, actor);
    rv__push(&c, ACT_COMPLETE, in, ei->key);
  }
  return cmd_end(&c, rc);
}

#define SQL_SUB_FIND \
  "SELECT id, instance_id, ei, element_id, definition_id FROM subscriptions" \
  " WHERE kind='message' AND name=? AND (corr_key IS NULL OR corr_key=?)" \
  " ORDER BY instance_id=0, id LIMIT 1"   /* a waiting instance before a start event */

rv_status rv_engine_correlate(rv_engine *e, const char *name, const char *key,
                              const cJSON *payload, const char *message_id,
                              int64_t ttl_ms, cJSON **out_result, rv_err *err){
  rv_ctx c;
  rv_status rc;
  sqlite3_stmt *s;
  int64_t sub_inst = -1, sub_ei = 0, sub_def = 0, result_inst = 0;
  char elem[256] = "";
  const char *result = NULL;

  if (out_result) *out_result = NULL;
  if (name == NULL || !*name) return rv_fail(err, RV_INVALID, "message name is required");
  if (payload && !cJSON_IsObject(payload)) return rv_fail(err, RV_INVALID, "message payload must be a JSON object");
  rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  if (message_id) {
    s = rv_store_stmt(e->st, "SELECT consumed_by FROM messages WHERE message_id=?");
    rv_store_bind(s, "t", message_id);
    if (sqlite3_step(s) == SQLITE_ROW) {
      result_inst = sqlite3_column_int64(s, 0);
      result = "duplicate";
    }
    sqlite3_reset(s);
  }
  if (result == NULL) {
    s = rv_store_stmt(e->st, SQL_SUB_FIND);
    rv_store_bind(s, "tt", name, key);
    if (sqlite3_step(s) == SQLITE_ROW) {
      sub_inst = sqlite3_column_int64(s, 1);
      sub_ei = sqlite3_column_int64(s, 2);
      snprintf(elem, sizeof elem, "%s", (const char *)sqlite3_column_text(s, 3));
      sub_def = sqlite3_column_int64(s, 4);
    }
    sqlite3_reset(s);
  }
  if (result == NULL && sub_inst > 0) {
    rv_inst *in;
    bool consumed = false;
    rc = rv__ctx_load(&c, sub_inst, &in);
    if (rc == RV_OK) {
      int node = rv_model_find_node(in->def->model, elem);
      rv__history(&c, in, "MESSAGE_CORRELATED", node, sub_ei, name);
      rc = rv__trigger(&c, in, sub_ei, node, payload, &consumed);
    }
    result = "correlated";
    result_inst = sub_inst;
  } else if (result == NULL && sub_inst == 0) {
    rv_def *d;
    rv_inst *in;
    rc = rv__def_get(e, sub_def, &d, err);
    if (rc == RV_OK) {
      int node = rv_model_find_node(d->model, elem);
      rc = rv__start_instance(&c, d, node, payload, key, 0, 0, &in);
      if (rc == RV_OK) result_inst = in->id;
    }
    result = "started";
  } else if (result == NULL) {
    int64_t ttl = ttl_ms < 0 ? e->message_ttl_ms : ttl_ms;
    result = ttl > 0 ? "buffered" : "dropped";
    if (ttl > 0) {
      char *p = payload ? rv_json_print(payload) : NULL;
      rc = rv_store_exec(e->st, err,
        "INSERT INTO messages(message_id, name, corr_key, payload, created, expires) VALUES(?,?,?,?,?,?)",
        "ttttii", message_id, name, key, p, c.now, c.now + ttl);
      if (p) cJSON_free(p);
      message_id = NULL;    /* recorded already */
    }
  }
  if (rc == RV_OK && message_id && strcmp(result, "duplicate") != 0) {
    rc = rv_store_exec(e->st, err,
      "INSERT INTO messages(message_id, name, corr_key, payload, created, expires, consumed_by)"
      " VALUES(?,?,?,NULL,?,?,?)", "tttiii", message_id, name, key, c.now, c.now, result_inst);
  }
  if (rc == RV_OK && strcmp(result, "duplicate") != 0) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "name", name);
    if (key) cJSON_AddStringToObject(p, "key", key);
    if (message_id) cJSON_AddStringToObject(p, "message_id", message_id);
    cJSON_AddItemToObject(p, "payload", payload ? cJSON_Duplicate(payload, 1) : cJSON_CreateObject());
    cJSON_AddStringToObject(p, "result", result);
    cJSON_AddNumberToObject(p, "ttl", (double)(ttl_ms < 0 ? e->message_ttl_ms : ttl_ms));
    journal(&c, result_inst, "message", p);
    cJSON_Delete(p);
  }
  rc = cmd_end(&c, rc);
  if (rc == RV_OK && out_result) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "result", result);
    if (result_inst > 0) cJSON_AddNumberToObject(o, "instance", (double)result_inst);
    *out_result = o;
  }
  return rc;
}

rv_status rv_engine_signal(rv_engine *e, const char *name, const cJSON *payload,
                           int *out_count, rv_err *err){
  rv_ctx c;
  int n = 0;
  rv_status rc;
  if (out_count) *out_count = 0;
  if (name == NULL || !*name) return rv_fail(err, RV_INVALID, "signal name is required");
  if (payload && !cJSON_IsObject(payload)) return rv_fail(err, RV_INVALID, "signal payload must be a JSON object");
  rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  rc = rv__signal(&c, name, payload, &n);
  if (rc == RV_OK) {
    cJSON *p = cJSON_CreateObject();
    cJSON *ids = cJSON_CreateArray();
    cJSON_AddStringToObject(p, "name", name);
    cJSON_AddItemToObject(p, "payload", payload ? cJSON_Duplicate(payload, 1) : cJSON_CreateObject());
    for (int i = 0; i < c.n_insts; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)c.insts[i]->id));
    cJSON_AddItemToObject(p, "instances", ids);
    /* one row per instance it reached (adjacent, same payload), so each
    ** instance's journal is found by index; 0 when it reached none */
    for (int i = 0; i < c.n_insts; i++) journal(&c, c.insts[i]->id, "signal", p);
    if (c.n_insts == 0) journal(&c, 0, "signal", p);
    cJSON_Delete(p);
  }
  rc = cmd_end(&c, rc);
  if (rc == RV_OK && out_count) *out_count = n;
  return rc;
}

rv_status rv_engine_cancel(rv_engine *e, int64_t instance, rv_err *err){
  rv_ctx c;
  rv_inst *in;
  rv_status rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  rc = rv__ctx_load(&c, instance, &in);
  if (rc == RV_OK && in->ended)
    rc = rv_fail(err, RV_CONFLICT, "instance %lld is %s", (long long)instance, in->status);
  if (rc == RV_OK) rc = rv__terminate_children(&c, in, 1);
  if (rc == RV_OK) rc = rv__side_clear(&c, in, 1);
  if (rc == RV_OK) {
    free(in->status);
    in->status = rv_strdup("canceled");
    in->ended = true;
    in->dirty = true;
  }
  if (rc == RV_OK) {
    journal(&c, instance, "cancel", NULL);
    rv__history(&c, in, "INSTANCE_CANCELED", -1, 0, NULL);
  }
  return cmd_end(&c, rc);
}

extern rv_status rv__retry(rv_ctx *c, int64_t incident);
extern rv_status rv__fire_timer(rv_ctx *c, int64_t timer_id);

/* The instance, element and element instance a timer, job or incident
** row names, for the journal (looked up before the command changes it). */
typedef struct target { int64_t inst, ei; char elem[256]; char state[16]; int attempts; char key[512]; } target;

static void target_get(rv_engine *e, const char *sql, int64_t id, target *t){
  sqlite3_stmt *s = rv_store_stmt(e->st, sql);
  memset(t, 0, sizeof *t);
  rv_store_bind(s, "i", id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    t->inst = sqlite3_column_int64(s, 0);
    t->ei = sqlite3_column_int64(s, 1);
    snprintf(t->elem, sizeof t->elem, "%s", (const char *)sqlite3_column_text(s, 2));
    if (sqlite3_column_count(s) > 3) {
      snprintf(t->state, sizeof t->state, "%s", (const char *)sqlite3_column_text(s, 3));
      t->attempts = sqlite3_column_int(s, 4);
      snprintf(t->key, sizeof t->key, "%s", (const char *)sqlite3_column_text(s, 5));
    }
  }
  sqlite3_reset(s);
}

rv_status rv_engine_retry_incident(rv_engine *e, int64_t incident, rv_err *err){
  rv_ctx c;
  target t;
  rv_status rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  target_get(e, "SELECT instance_id, ei, element_id FROM incidents WHERE id=?", incident, &t);
  rc = rv__retry(&c, incident);
  if (rc == RV_OK) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "incident", (double)incident);
    cJSON_AddStringToObject(p, "element", t.elem);
    cJSON_AddNumberToObject(p, "ei", (double)t.ei);
    journal(&c, t.inst, "retry", p);
    cJSON_Delete(p);
  }
  return cmd_end(&c, rc);
}

rv_status rv_engine_fire_timer(rv_engine *e, int64_t timer_id, rv_err *err){
  rv_ctx c;
  target t;
  rv_status rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  target_get(e, "SELECT instance_id, ei, element_id FROM timers WHERE id=?", timer_id, &t);
  rc = rv__fire_timer(&c, timer_id);
  if (rc == RV_OK) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "timer", (double)timer_id);
    cJSON_AddNumberToObject(p, "at", (double)c.now);
    cJSON_AddStringToObject(p, "element", t.elem);
    cJSON_AddNumberToObject(p, "ei", (double)t.ei);
    /* a start timer (instance 0) applies to the instance it started */
    if (t.inst == 0 && c.n_insts > 0) t.inst = c.insts[0]->id;
    journal(&c, t.inst, "timer", p);
    cJSON_Delete(p);
  }
  return cmd_end(&c, rc);
}

/*--- Adapter results (group-committed) --------------------------------------*/

struct rv_result {
  int64_t        job_id;
  rv_job_outcome outcome;
  cJSON         *result;
  char          *code, *message;
};

extern rv_status rv__job_result(rv_ctx *c, int64_t job_id, rv_job_outcome o,
                                const cJSON *result, const char *code, const char *msg);

void rv__results_free(rv_engine *e){
  for (int i = 0; i < e->n_results; i++) {
    cJSON_Delete(e->results[i].result);
    rv_free(e->results[i].code);
    rv_free(e->results[i].message);
  }
  rv_free(e->results);
  e->results = NULL; e->n_results = e->cap_results = 0;
}

static void inflight_del(rv_engine *e, int64_t id){
  for (int i = 0; i < e->n_inflight_ids; i++)
    if (e->inflight_ids[i] == id) { e->inflight_ids[i] = e->inflight_ids[--e->n_inflight_ids]; break; }
  e->inflight = e->n_inflight_ids;
}

rv_status rv_engine_job_result(rv_engine *e, int64_t job_id, rv_job_outcome outcome,
                               const cJSON *result, const char *code, const char *message,
                               rv_err *err){
  rv_ctx c;
  target t;
  rv_status rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  target_get(e, "SELECT instance_id, ei, element_id, state, attempts, key FROM jobs WHERE id=?",
             job_id, &t);
  rc = rv__job_result(&c, job_id, outcome, result, code, message);
  if (rc == RV_OK) {
    cJSON *p = cJSON_CreateObject();
    const char *suffix = NULL;
    size_t el = strlen(t.elem);
    /* key "<inst>:<ei>:<element>[:<suffix>]": the suffix tells an SMS
    ** notification apart from the element's own job */
    for (const char *k = strchr(t.key, ':'); k && !suffix; k = strchr(k + 1, ':'))
      if (strncmp(k + 1, t.elem, el) == 0 && k[1 + el] == ':') suffix = k + 2 + el;
    cJSON_AddNumberToObject(p, "job", (double)job_id);
    cJSON_AddStringToObject(p, "element", t.elem);
    cJSON_AddNumberToObject(p, "ei", (double)t.ei);
    if (suffix) cJSON_AddStringToObject(p, "suffix", suffix);
    cJSON_AddNumberToObject(p, "attempt", t.attempts + 1);
    cJSON_AddStringToObject(p, "outcome", outcome == RV_JOB_OK ? "ok"
                            : outcome == RV_JOB_FAILED ? "failed" : "error");
    if (result) cJSON_AddItemToObject(p, "result", cJSON_Duplicate(result, 1));
    if (code) cJSON_AddStringToObject(p, "code", code);
    if (message) cJSON_AddStringToObject(p, "message", message);
    if (strcmp(t.state, "pending") != 0) cJSON_AddBoolToObject(p, "stale", true);
    journal(&c, t.inst, "job", p);
    cJSON_Delete(p);
  }
  return cmd_end(&c, rc);
}

/* Apply every queued adapter answer: one transaction for all of them,
** one savepoint each (a failing one is rolled back alone and its job
** stays pending, to be dispatched again). */
static void flush_cb(evutil_socket_t fd, short what, void *arg){
  rv_engine *e = arg;
  struct rv_result *rs = e->results;
  int n = e->n_results;
  rv_err err;
  bool batch;
  (void)fd; (void)what;
  e->results = NULL; e->n_results = e->cap_results = 0;
  batch = rv_engine_batch_begin(e, &err) == RV_OK;
  for (int i = 0; i < n; i++) {
    rv_status rc = rv_engine_job_result(e, rs[i].job_id, rs[i].outcome, rs[i].result,
                                        rs[i].code, rs[i].message, &err);
    if (rc != RV_OK) fprintf(stderr, "ravand: job %lld result not applied: %s\n",
                             (long long)rs[i].job_id, err.msg);
  }
  if (batch && rv_engine_batch_end(e, &err) != RV_OK)
    fprintf(stderr, "ravand: batch commit failed: %s\n", err.msg);
  for (int i = 0; i < n; i++) {
    inflight_del(e, rs[i].job_id);
    cJSON_Delete(rs[i].result);
    rv_free(rs[i].code);
    rv_free(rs[i].message);
  }
  rv_free(rs);
}

struct done_arg { rv_engine *e; int64_t job_id; };

static void job_done(void *arg, rv_job_outcome o, cJSON *result, const char *code,
                     const char *message){
  struct done_arg *d = arg;
  rv_engine *e = d->e;
  struct rv_result *r;
  if (e->n_results == e->cap_results) {
    e->cap_results = e->cap_results ? e->cap_results * 2 : 16;
    e->results = rv_realloc(e->results, sizeof *e->results * (size_t)e->cap_results);
  }
  r = &e->results[e->n_results++];
  r->job_id = d->job_id;
  r->outcome = o;
  r->result = result;
  r->code = rv_strdup(code);
  r->message = rv_strdup(message);
  rv_free(d);
  event_active(e->flush_ev, 0, 0);
}

#define SQL_DUE_JOBS \
  "SELECT id, instance_id, element_id, adapter, input, key, attempts FROM jobs" \
  " WHERE state='pending' AND next_try<=? ORDER BY next_try, id LIMIT 256"

int rv_engine_dispatch_jobs(rv_engine *e){
  sqlite3_stmt *s = rv_store_stmt(e->st, SQL_DUE_JOBS);
  int n = 0;
  struct job { int64_t id, inst; char *elem, *adapter, *input, *key; int attempts; } *jobs = NULL;
  int nj = 0, cap = 0;

  rv_store_bind(s, "i", rv_clock_now(e->clock));
  while (sqlite3_step(s) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s, 0);
    bool busy = false;
    for (int i = 0; i < e->n_inflight_ids; i++) if (e->inflight_ids[i] == id) busy = true;
    if (busy) continue;
    if (nj == cap) { cap = cap ? cap * 2 : 16; jobs = rv_realloc(jobs, sizeof *jobs * (size_t)cap); }
    jobs[nj].id = id;
    jobs[nj].inst = sqlite3_column_int64(s, 1);
    jobs[nj].elem = rv_strdup((const char *)sqlite3_column_text(s, 2));
    jobs[nj].adapter = rv_strdup((const char *)sqlite3_column_text(s, 3));
    jobs[nj].input = rv_strdup((const char *)sqlite3_column_text(s, 4));
    jobs[nj].key = rv_strdup((const char *)sqlite3_column_text(s, 5));
    jobs[nj].attempts = sqlite3_column_int(s, 6);
    nj++;
  }
  sqlite3_reset(s);
  for (int i = 0; i < nj; i++) {
    const rv_adapter_ops *ops = rv_adapter_find(jobs[i].adapter);
    struct done_arg *d = rv_malloc(sizeof *d);
    cJSON *input = rv_json_parse(jobs[i].input);
    rv_job_info info = { jobs[i].id, jobs[i].inst, jobs[i].elem, jobs[i].key, input,
                         jobs[i].attempts + 1 };
    rv_status rc;
    d->e = e; d->job_id = jobs[i].id;
    if (e->n_inflight_ids == e->cap_inflight_ids) {
      e->cap_inflight_ids = e->cap_inflight_ids ? e->cap_inflight_ids * 2 : 16;
      e->inflight_ids = rv_realloc(e->inflight_ids, sizeof(int64_t) * (size_t)e->cap_inflight_ids);
    }
    e->inflight_ids[e->n_inflight_ids++] = jobs[i].id;
    e->inflight = e->n_inflight_ids;
    e->stats.jobs_dispatched++;
    rc = ops ? ops->invoke(ops->self, e->base, &info, job_done, d) : RV_NOTFOUND;
    if (rc != RV_OK) {
      char msg[300];
      snprintf(msg, sizeof msg, ops ? "adapter '%s' refused the job" : "no adapter named '%s'",
               jobs[i].adapter);
      job_done(d, RV_JOB_FAILED, NULL, NULL, msg);
    }
    cJSON_Delete(input);
    rv_free(jobs[i].elem); rv_free(jobs[i].adapter); rv_free(jobs[i].input); rv_free(jobs[i].key);
    n++;
  }
  rv_free(jobs);
  return n;
}

int rv_engine_inflight(const rv_engine *e){ return e->inflight; }

int rv_engine_fire_due(rv_engine *e){
  int64_t now = rv_clock_now(e->clock);
  int64_t *ids = NULL;
  int n = 0, cap = 0, fired = 0;
  sqlite3_stmt *s = rv_store_stmt(e->st,
    "SELECT id FROM timers WHERE due<=? ORDER BY due, id LIMIT 1000");
  rv_err err;
  rv_store_bind(s, "i", now);
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (n == cap) { cap = cap ? cap * 2 : 16; ids = rv_realloc(ids, sizeof *ids * (size_t)cap); }
    ids[n++] = sqlite3_column_int64(s, 0);
  }
  sqlite3_reset(s);
  if (n == 0) return 0;
  if (rv_engine_batch_begin(e, &err) != RV_OK) { rv_free(ids); return 0; }
  for (int i = 0; i < n; i++) {
    rv_status rc = rv_engine_fire_timer(e, ids[i], &err);
    if (rc == RV_OK) fired++;
    else if (rc != RV_NOTFOUND)   /* NOTFOUND: withdrawn by an earlier timer of this batch */
      fprintf(stderr, "ravand: timer %lld: %s\n", (long long)ids[i], err.msg);
  }
  if (rv_engine_batch_end(e, &err) != RV_OK) {
    fprintf(stderr, "ravand: timer batch commit failed: %s\n", err.msg);
    fired = 0;
  }
  rv_free(ids);
  return fired;
}

int64_t rv_engine_next_due(rv_engine *e){
  sqlite3_stmt *s = rv_store_stmt(e->st,
    "SELECT min(x) FROM (SELECT min(due) AS x FROM timers UNION ALL"
    " SELECT min(next_try) FROM jobs WHERE state='pending')");
  int64_t v = -1;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  return v;
}

void rv_engine_drain(rv_engine *e){
  for (int round = 0; round < 100000; round++) {
    int n = rv_engine_fire_due(e) + rv_engine_dispatch_jobs(e);
    while (e->inflight > 0 || e->n_results > 0) {
      if (event_base_loop(e->base, EVLOOP_ONCE) < 0) break;
    }
    if (n == 0) break;
  }
}
