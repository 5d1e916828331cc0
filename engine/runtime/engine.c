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
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "core/buf.h"

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

/* The state, written directly (no cJSON tree for the frame; variables go
** through rv_json_write): {"v":3,"next":N,"eis":[{"k","n","p","s",...}],
** "joins":[...]}. "v":2 says the element instances carry "sd" (side rows,
** RV_SIDE_*); parse_state reads a state without it as "all". "v":3 says a
** failed notification's incident is marked RV_SIDE_INC too (flow.c
** rv__job_result); parse_state gives a "v":2 element with a notification
** RV_SIDE_INC, as its notification may have failed unmarked. */
static void put_kv(rv_buf *b, const char *key, int64_t v){   /* ,"key":v */
  rv_buf_add(b, ",\"", 2);
  rv_buf_adds(b, key);
  rv_buf_add(b, "\":", 2);
  rv_buf_add_int(b, v);
}

static void state_write(const rv_inst *in, rv_buf *b){
  rv_buf_add(b, "{\"v\":3", 6);
  put_kv(b, "next", in->next_key);
  rv_buf_add(b, ",\"eis\":[", 8);
  for (int i = 0; i < in->n_eis; i++) {
    const rv_ei *ei = &in->eis[i];
    rv_buf_add(b, i ? ",{\"k\":" : "{\"k\":", i ? 6 : 5);
    rv_buf_add_int(b, ei->key);
    put_kv(b, "n", ei->node);
    put_kv(b, "p", ei->parent);
    put_kv(b, "s", ei->state);
    if (ei->side) put_kv(b, "sd", ei->side);
    if (ei->vars) { rv_buf_add(b, ",\"v\":", 5); rv_json_write(b, ei->vars); }
    if (ei->mi_body) {
      put_kv(b, "mb", 1);
      put_kv(b, "tot", ei->mi_total);
      put_kv(b, "done", ei->mi_done);
      put_kv(b, "nx", ei->mi_next);
      if (ei->mi_items) { rv_buf_add(b, ",\"items\":", 9); rv_json_write(b, ei->mi_items); }
    }
    if (ei->mi_inner) { put_kv(b, "mi", 1); put_kv(b, "ix", ei->mi_index); }
    if (ei->child_instance) put_kv(b, "ci", ei->child_instance);
    rv_buf_add(b, "}", 1);
  }
  rv_buf_add(b, "]", 1);
  if (in->n_joins) {
    rv_buf_add(b, ",\"joins\":[", 10);
    for (int i = 0; i < in->n_joins; i++) {
      const rv_join *jn = &in->joins[i];
      const rv_node *nd = &in->def->model->nodes[jn->node];
      rv_buf_add(b, i ? ",{\"s\":" : "{\"s\":", i ? 6 : 5);
      rv_buf_add_int(b, jn->scope);
      put_kv(b, "n", jn->node);
      rv_buf_add(b, ",\"c\":[", 6);
      for (int k = 0; k < nd->n_in; k++) {
        if (k) rv_buf_add(b, ",", 1);
        rv_buf_add_int(b, jn->counts[k]);
      }
      rv_buf_add(b, "]}", 2);
    }
    rv_buf_add(b, "]", 1);
  }
  rv_buf_add(b, "}", 1);
}

static rv_status parse_state(rv_inst *in, const char *text, rv_err *err){
  cJSON *o = rv_json_parse(text), *a, *e;
  unsigned side_default;
  int64_t version;
  if (o == NULL) return rv_fail(err, RV_CORRUPT, "instance %lld: unreadable state", (long long)in->id);
  version = rv_json_int(o, "v", 1);
  side_default = version >= 2 ? 0 : RV_SIDE_ALL;
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
    ei->side = (unsigned)rv_json_int(e, "sd", side_default);
    if (version < 3 && (ei->side & RV_SIDE_NOTIFY)) ei->side |= RV_SIDE_INC;
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
  " parent_ei, started, rev FROM instances WHERE id=?"

/*--- Instance cache ----------------------------------------------------------
** A command that commits leaves its instances here (ctx_free); the next
** command that loads one takes it (ownership moves to its ctx) if
** instances.rev is still the rev we wrote -- else (rolled back, or changed
** by another process) the row is parsed as before. Whatever may not have
** reached the disk is dropped: a failed command's instances are freed, and
** a failed or spoiled batch empties the cache. States of more than
** ICACHE_MAX_TEXT bytes are not kept (memory stays bounded). */
#define ICACHE_SLOTS 1024
#define ICACHE_MAX_TEXT 32768

static void icache_put(rv_engine *e, rv_inst *in){
  rv_inst **slot;
  if (e->icache == NULL) e->icache = rv_calloc(ICACHE_SLOTS, sizeof *e->icache);
  slot = &e->icache[(uint64_t)in->id % ICACHE_SLOTS];
  if (*slot && *slot != in) inst_free(*slot);
  *slot = in;
}

static rv_inst *icache_take(rv_engine *e, int64_t id, int64_t rev){
  rv_inst **slot, *in;
  if (e->icache == NULL) return NULL;
  slot = &e->icache[(uint64_t)id % ICACHE_SLOTS];
  in = *slot;
  if (in == NULL || in->id != id) return NULL;
  *slot = NULL;
  if (in->rev != rev) { inst_free(in); return NULL; }
  return in;
}

/* Keeping instances pays when commands come back to an instance soon (a
** start and its job's answer); when they sweep over many more instances
** than the cache holds (a month's batch), it only costs. So: measured per
** window of loads; below a 1-in-16 hit rate the cache rests, with every
** 8th window a probe. */
#define ICACHE_WINDOW 1024
static void icache_count(rv_engine *e, bool hit){
  if (hit) { e->icache_hits++; e->win_hits++; } else e->icache_misses++;
  if (++e->win_loads < ICACHE_WINDOW) return;
  if (e->icache_on) e->icache_on = e->win_hits * 16 >= e->win_loads;
  else e->icache_on = ++e->win_idle % 8 == 0;
  e->win_loads = e->win_hits = 0;
}

static void rv__icache_clear(rv_engine *e){
  if (e->icache == NULL) return;
  for (int i = 0; i < ICACHE_SLOTS; i++) { inst_free(e->icache[i]); e->icache[i] = NULL; }
}

/* At the start of a transaction: if another connection committed since we
** last looked, forget what we keep (inside our transaction nobody can). */
static void icache_check(rv_engine *e){
  sqlite3_stmt *s;
  if (e->icache == NULL) return;
  s = rv_store_stmt(e->st, "PRAGMA data_version");
  if (sqlite3_step(s) == SQLITE_ROW) {
    int64_t v = sqlite3_column_int64(s, 0);
    if (v != e->data_version) { rv__icache_clear(e); e->data_version = v; }
  }
  sqlite3_reset(s);
}

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
  def_id = sqlite3_column_int64(s, 0);
  in = icache_take(c->e, id, sqlite3_column_int64(s, 8));
  icache_count(c->e, in != NULL && in->def->id == def_id);
  if (in != NULL && in->def->id == def_id) {        /* as we committed it: no parsing */
    sqlite3_reset(s);
    in->dirty = in->is_new = false;
    goto loaded;
  }
  if (in != NULL) inst_free(in);
  in = rv_calloc(1, sizeof *in);
  in->id = id;
  in->rev = sqlite3_column_int64(s, 8);
  in->status = rv_strdup((const char *)sqlite3_column_text(s, 1));
  in->status_text = rv_strdup((const char *)sqlite3_column_text(s, 3));
  in->business_key = rv_strdup((const char *)sqlite3_column_text(s, 4));
  in->parent_instance = sqlite3_column_int64(s, 5);
  in->parent_ei = sqlite3_column_int64(s, 6);
  in->started = sqlite3_column_int64(s, 7);
  in->ended = strcmp(in->status, "active") != 0;
  snprintf(in->status0, sizeof in->status0, "%s", in->status);
  rc = rv__def_get(c->e, def_id, &in->def, c->err);
  if (rc == RV_OK) {
    char *state = rv_strdup((const char *)sqlite3_column_text(s, 2));
    sqlite3_reset(s);
    rc = parse_state(in, state, c->err);
    rv_free(state);
  } else sqlite3_reset(s);
  if (rc != RV_OK) { inst_free(in); return rc; }
loaded:
  if (c->n_insts == c->cap_insts) {
    c->cap_insts = c->cap_insts ? c->cap_insts * 2 : 4;
    c->insts = rv_realloc(c->insts, sizeof *c->insts * (size_t)c->cap_insts);
  }
  c->insts[c->n_insts++] = in;
  *out = in;
  return RV_OK;
}

static rv_status save_inst(rv_ctx *c, rv_inst *in){
  rv_buf *bp = c->e->scratch, b;
  rv_status rc;
  if (bp == NULL) {
    bp = c->e->scratch = rv_malloc(sizeof *bp);
    rv_buf_init(bp, SIZE_MAX / 4);
  }
  bp->len = 0;
  if (bp->p) bp->p[0] = 0;
  state_write(in, bp);
  b = *bp;
  /* OR FAIL (here, in hist_flush, on the completed task and the answered
  ** job): no statement journal of its own -- every page it touches copied
  ** first, to undo this statement alone; the command's savepoint or its
  ** (batch's) rollback undoes the whole command when a statement fails.
  ** docs/architecture.md, "Batches". */
  if (in->is_new)            /* started in this command: one write, with its state */
    rc = rv_store_exec(c->e->st, c->err,
      "INSERT INTO instances(id, definition_id, process_id, business_key, status, state,"
      " status_text, parent_instance, parent_ei, started, ended, rev)"
      " VALUES(?,?,?,?,?,?,?,?,?,?,?,1)",
      "iitttttiiii", in->id, in->def->id, in->def->process_id, in->business_key, in->status,
      b.p, in->status_text, in->parent_instance, in->parent_ei, in->started,
      (int64_t)(in->ended ? c->now : 0));
  else if (strcmp(in->status, in->status0) == 0)   /* leave the status index alone */
    rc = rv_store_exec(c->e->st, c->err,
      "UPDATE OR FAIL instances SET state=?, status_text=?, ended=?, rev=rev+1 WHERE id=?",
      "ttii", b.p, in->status_text, (int64_t)(in->ended ? c->now : 0), in->id);
  else
    rc = rv_store_exec(c->e->st, c->err,
      "UPDATE OR FAIL instances SET status=?, state=?, status_text=?, ended=?, rev=rev+1 WHERE id=?",
      "tttii", in->status, b.p, in->status_text,
      (int64_t)(in->ended ? c->now : 0), in->id);
  if (rc == RV_OK) {
    in->rev = in->is_new ? 1 : in->rev + 1;
    snprintf(in->status0, sizeof in->status0, "%s", in->status);
    if (b.len > ICACHE_MAX_TEXT) in->rev = -1;   /* too big to keep: never matches */
  }
  if (bp->cap > 65536) { rv_buf_fini(bp); rv_buf_init(bp, SIZE_MAX / 4); }   /* keep it small */
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

void rv__side_mark(rv_inst *in, rv_ei *ei, unsigned bits){
  if (ei == NULL || (ei->side & bits) == bits) return;
  ei->side |= bits;
  in->dirty = true;
}

const rv_node *rv__node(const rv_inst *in, int node){
  return node >= 0 ? &in->def->model->nodes[node] : NULL;
}

/*--- History, incidents, journal ------------------------------------------*/

/* History events are collected during the command and written at its
** end, in order. The events a command records for one instance in a row
** are stored as one row of history_log, a batch (event 'BATCH', detail a
** JSON array of [event, element, ei, detail?]); a lone event is a row of
** its own. The view `history` (store migration 9) shows one row per event,
** ordered by (id, seq), so readers see events as before. A straight-through
** instance records 19 events in two commands: as rows, their B-tree inserts
** were about half of the engine's instructions; as two batches, the JSON
** text costs a few per cent of that (docs/performance.md). Temporal stores
** its history the same way, as batches of events per workflow task. Rows
** are written up to 32 per INSERT. Nothing reads history inside a command
** (journal.mark, max(history_log.id), is taken when it begins). */
struct rv_hrow { int64_t inst, at, ei; size_t event, element, detail; };
#define NO_TEXT ((size_t)-1)
#define HIST_NO_EI INT64_MIN

static size_t hist_str(rv_ctx *c, const char *s){
  size_t n, at = c->hist_len;
  if (s == NULL) return NO_TEXT;
  n = strlen(s) + 1;
  if (c->hist_len + n > c->hist_cap) {
    size_t cap = c->hist_cap ? c->hist_cap * 2 : 1024;
    while (cap < c->hist_len + n) cap *= 2;
    c->hist_text = rv_realloc(c->hist_text, cap);
    c->hist_cap = cap;
  }
  memcpy(c->hist_text + at, s, n);
  c->hist_len += n;
  return at;
}

int rv_history_level(const char *name){
  if (name == NULL) return 0;
  if (strcmp(name, "full") == 0) return RV_HISTORY_FULL;
  if (strcmp(name, "activity") == 0) return RV_HISTORY_ACTIVITY;
  if (strcmp(name, "instance") == 0) return RV_HISTORY_INSTANCE;
  return 0;
}

/* Does the engine's history level keep this event? */
static bool hist_keep(int level, const char *event, const rv_node *n){
  if (level == RV_HISTORY_FULL) return true;
  if (strncmp(event, "INSTANCE_", 9) == 0 || strncmp(event, "TASK_", 5) == 0 ||
      strncmp(event, "INCIDENT_", 9) == 0 || strcmp(event, "STATUS") == 0) return true;
  if (level == RV_HISTORY_INSTANCE) return false;
  if (strcmp(event, "FLOW_TAKEN") == 0) return false;
  if (n && (strcmp(event, "ELEMENT_ACTIVATED") == 0 || strcmp(event, "ELEMENT_COMPLETED") == 0)) {
    switch (n->type) {
    case RV_ELEM_EXCLUSIVE_GATEWAY: case RV_ELEM_PARALLEL_GATEWAY:
    case RV_ELEM_INCLUSIVE_GATEWAY: case RV_ELEM_EVENT_BASED_GATEWAY:
      return false;
    default:
      break;
    }
  }
  return true;
}

bool rv__history_kept(const rv_ctx *c, const char *event, const rv_node *n){
  return hist_keep(c->e->history, event, n);
}

void rv__history(rv_ctx *c, rv_inst *in, const char *event, int node, int64_t ei,
                 const char *detail){
  const rv_node *n = rv__node(in, node);
  struct rv_hrow *h;
  if (!hist_keep(c->e->history, event, n)) return;
  if (c->n_hist == c->cap_hist) {
    c->cap_hist = c->cap_hist ? c->cap_hist * 2 : 32;
    c->hist = rv_realloc(c->hist, sizeof *c->hist * (size_t)c->cap_hist);
  }
  h = &c->hist[c->n_hist++];
  h->inst = in->id;
  h->at = c->now;
  h->ei = ei;
  h->event = hist_str(c, event);
  h->element = hist_str(c, n ? n->id : NULL);
  h->detail = hist_str(c, detail);
}

#define HV1  "(?,?,?,?,?,?)"
#define HV2  HV1 "," HV1
#define HV4  HV2 "," HV2
#define HV8  HV4 "," HV4
#define HV16 HV8 "," HV8
#define HV32 HV16 "," HV16
/* OR FAIL: see save_inst */
#define HINS "INSERT OR FAIL INTO history_log(instance_id, at, event, element_id, ei, detail) VALUES"

/* s as a JSON string at p (which has room for 2 + 6 * strlen(s) bytes),
** escaped as core/json.c escapes (rv_json_escape). Returns the bytes
** written. */
static size_t q_put(char *p, const char *s){
  char *o = p;
  *o++ = '"';
  for (;;) {
    size_t n = rv_json_plain_len(s);      /* the run that needs no escape */
    memcpy(o, s, n);
    o += n;
    s += n;
    if (*s == 0) break;
    o += rv_json_escape((unsigned char)*s++, o);
  }
  *o++ = '"';
  return (size_t)(o - p);
}

/* v in decimal at p (room for 21 bytes). Returns the bytes written. */
static size_t i_put(char *p, int64_t v){
  char d[24];
  size_t n = 0, len = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do { d[n++] = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) p[len++] = '-';
  while (n) p[len++] = d[--n];
  return len;
}

/* Fold each run of 2+ consecutive events of one instance into a batch row
** (c->hist compacted in place; the JSON text appended to hist_text). The
** text is written straight into hist_text, grown once for the worst case:
** a batch is written for every command, and appending piece by piece was
** most of its cost. */
static void hist_pack(rv_ctx *c){
  int out = 0;
  for (int i = 0; i < c->n_hist; ) {
    int j = i + 1;
    size_t need = 2, len = 0;
    char *t;
    while (j < c->n_hist && c->hist[j].inst == c->hist[i].inst) j++;
    if (j - i == 1) { c->hist[out++] = c->hist[i]; i = j; continue; }
    for (int k = i; k < j; k++) {
      const struct rv_hrow *h = &c->hist[k];
      need += 40 + 6 * strlen(c->hist_text + h->event);        /* [ , null , ei ] , */
      if (h->element != NO_TEXT) need += 6 * strlen(c->hist_text + h->element);
      if (h->detail != NO_TEXT) need += 6 * strlen(c->hist_text + h->detail);
    }
    {   /* written in place at the end of hist_text */
      size_t cap = c->hist_cap ? c->hist_cap : 1024;
      while (cap < c->hist_len + need) cap *= 2;
      if (cap != c->hist_cap) { c->hist_text = rv_realloc(c->hist_text, cap); c->hist_cap = cap; }
    }
    t = c->hist_text + c->hist_len;
    t[len++] = '[';
    for (int k = i; k < j; k++) {
      const struct rv_hrow *h = &c->hist[k];
      if (k > i) t[len++] = ',';
      t[len++] = '[';
      len += q_put(t + len, c->hist_text + h->event);
      t[len++] = ',';
      if (h->element != NO_TEXT) len += q_put(t + len, c->hist_text + h->element);
      else { memcpy(t + len, "null", 4); len += 4; }
      t[len++] = ',';
      len += i_put(t + len, h->ei);
      if (h->detail != NO_TEXT) { t[len++] = ','; len += q_put(t + len, c->hist_text + h->detail); }
      t[len++] = ']';
    }
    t[len++] = ']';
    t[len] = 0;
    c->hist[out] = c->hist[i];
    c->hist[out].detail = c->hist_len;
    c->hist_len += len + 1;
    c->hist[out].event = hist_str(c, "BATCH");
    c->hist[out].element = NO_TEXT;
    c->hist[out].ei = HIST_NO_EI;
    out++;
    i = j;
  }
  c->n_hist = out;
}

static rv_status hist_flush(rv_ctx *c){
  static const char *const sql[6] = { HINS HV1, HINS HV2, HINS HV4, HINS HV8, HINS HV16, HINS HV32 };
  int done = 0;
  hist_pack(c);
  while (done < c->n_hist) {
    int left = c->n_hist - done, lg = 5, k;
    sqlite3_stmt *s;
    while ((1 << lg) > left) lg--;
    k = 1 << lg;
    s = rv_store_stmt(c->e->st, sql[lg]);
    for (int i = 0; i < k; i++) {
      const struct rv_hrow *h = &c->hist[done + i];
      int b = 6 * i;
      sqlite3_bind_int64(s, b + 1, h->inst);
      sqlite3_bind_int64(s, b + 2, h->at);
      sqlite3_bind_text(s, b + 3, c->hist_text + h->event, -1, SQLITE_STATIC);
      if (h->element != NO_TEXT) sqlite3_bind_text(s, b + 4, c->hist_text + h->element, -1, SQLITE_STATIC);
      if (h->ei != HIST_NO_EI) sqlite3_bind_int64(s, b + 5, h->ei);
      if (h->detail != NO_TEXT) sqlite3_bind_text(s, b + 6, c->hist_text + h->detail, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(s) != SQLITE_DONE) {
      rv_status rc = rv_fail(c->err, RV_IO, "history: %s", sqlite3_errmsg(rv_store_db(c->e->st)));
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
      return rc;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);   /* the texts are freed with the command */
    done += k;
  }
  if (c->n_hist > 0) rv__hist_wrote(c->e);
  c->n_hist = 0;
  c->hist_len = 0;
  return RV_OK;
}

/* The journal mark, max(history.id), without a query per command: the
** value read or written last is kept while its transaction is open and
** nothing was rolled back (rv_store_gen). Only the engine writes history
** (hist_flush, taskops.c) and both report here what they inserted; a new
** rowid is max(id) + 1, so the last one inserted is the maximum. Outside
** a transaction another process may write: always read. */
int64_t rv__hist_mark(rv_engine *e){
  unsigned gen = rv_store_gen(e->st);
  if (!e->hmark_ok || e->hmark_gen != gen || rv_store_depth(e->st) == 0) {
    sqlite3_stmt *s = rv_store_stmt(e->st, "SELECT coalesce(max(id), 0) FROM history_log");
    e->hmark = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    e->hmark_gen = gen;
    e->hmark_ok = rv_store_depth(e->st) > 0;
  }
  return e->hmark;
}

/* History rows were just inserted (the last statement run): the mark is
** the last one's id, if the kept mark is still good. */
void rv__hist_wrote(rv_engine *e){
  if (e->hmark_ok && e->hmark_gen == rv_store_gen(e->st))
    e->hmark = sqlite3_last_insert_rowid(rv_store_db(e->st));
}

rv_status rv__incident(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *kind,
                       int64_t job_id, const char *msg){
  const rv_node *n = rv__node(in, ei->node);
  rv_status rc;
  ei->state = EI_INCIDENT;
  in->dirty = true;
  rv__side_mark(in, ei, RV_SIDE_INC);
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
static void journal_text(rv_ctx *c, int64_t inst, const char *cmd, const char *text){
  rv_store_exec(c->e->st, NULL,
    "INSERT INTO journal(instance_id, at, command, payload, mark) VALUES(?,?,?,?,?)",
    "iitti", inst, c->now, cmd, text, c->hist_mark);
}

static void journal(rv_ctx *c, int64_t inst, const char *cmd, const cJSON *payload){
  char *p = payload ? rv_json_print(payload) : NULL;
  journal_text(c, inst, cmd, p);
  if (p) rv_free(p);
}

/* The two commonest payloads are written directly (the same text as
** their cJSON objects printed, without building and copying them). */

/* A job's answer as the "job" input it is (written directly: the same
** text as its cJSON object printed); inst: with the instance (an entry of
** an "answers" row, below). */
/* ,"k": (never first), for a literal k that needs no escapes: one append */
#define CKEY(b, k) rv_buf_add((b), ",\"" k "\":", sizeof(",\"" k "\":") - 1)

/* ,"k": -- or "k": first in b, after its "{" (k a literal, as for CKEY) */
#define JKEY(b, k) (((b)->len > 1) ? CKEY(b, k) : rv_buf_add((b), "\"" k "\":", sizeof("\"" k "\":") - 1))

static void job_answer_text(rv_buf *b, const rv_job_row *t, bool inst, const char *input,
                            rv_job_outcome outcome, const cJSON *result, const char *code,
                            const char *message){
  const char *suffix = NULL;
  size_t el = strlen(t->elem);
  /* key "<inst>:<ei>:<element>[:<suffix>]": the suffix tells an SMS
  ** notification apart from the element's own job */
  for (const char *k = strchr(t->key, ':'); k && !suffix; k = strchr(k + 1, ':'))
    if (strncmp(k + 1, t->elem, el) == 0 && k[1 + el] == ':') suffix = k + 2 + el;
  rv_buf_add(b, "{", 1);
  if (inst) { rv_buf_adds(b, "\"inst\":"); rv_buf_add_int(b, t->inst); rv_buf_add(b, ",", 1); }
  if (t->id) { rv_buf_adds(b, "\"job\":"); rv_buf_add_int(b, t->id); rv_buf_add(b, ",", 1); }
  rv_buf_adds(b, "\"element\":"); rv_json_write_string(b, t->elem);
  CKEY(b, "ei"); rv_buf_add_int(b, t->ei);
  if (suffix) { CKEY(b, "suffix"); rv_json_write_string(b, suffix); }
  CKEY(b, "attempt"); rv_buf_add_int(b, t->attempts + 1);
  CKEY(b, "outcome");
  rv_json_write_string(b, outcome == RV_JOB_OK ? "ok" : outcome == RV_JOB_FAILED ? "failed" : "error");
  if (result) { CKEY(b, "result"); rv_json_write(b, result); }
  if (code) { CKEY(b, "code"); rv_json_write_string(b, code); }
  if (message) { CKEY(b, "message"); rv_json_write_string(b, message); }
  if (input) { CKEY(b, "input"); rv_buf_adds(b, input); }
  if (strcmp(t->state, "pending") != 0) { CKEY(b, "stale"); rv_buf_add(b, "true", 4); }
  rv_buf_add(b, "}", 1);
}

static void journal_job(rv_ctx *c, const rv_job_row *t, rv_job_outcome outcome,
                        const cJSON *result, const char *code, const char *message){
  rv_buf b;
  rv_buf_init(&b, SIZE_MAX / 4);
  job_answer_text(&b, t, false, NULL, outcome, result, code, message);
  journal_text(c, t->inst, "job", b.p);
  rv_buf_fini(&b);
}

/*--- Answers inside the command (cfg.answer_now) ------------------------------
**
** A job whose adapter can answer inside the process from data at hand
** (adapter.h answer_now: `records` from the engine's own store, the ledger
** adapters, the in-process `echo`) is answered once the command's own work
** is done, in the order the jobs were created, each as if its answer had
** come back through the loop as the next command -- and the work it causes
** may create the next such job. It stays one command: its history is the
** command's batch, and the answers are journaled together in "answers"
** rows right after the command's own row (the same mark; answers_row); a
** recording carries them on the command's input line and a replay applies
** them, through the loop's path, inside the same step -- the same outputs.
** A job answered so leaves no row in `jobs`, as a synchronous service task
** leaves no job in Camunda: it was never waiting, and its row cost more
** than the rest of its answer (marriage feed import: 12% of the
** instructions). What it was is kept where the other readers look: the
** history (JOB_CREATED, JOB_COMPLETED) and its entry in the "answers" row,
** which carries its input as well (outputs.c job_input reads it from there;
** a replay, without answer_now, writes the rows as the loop does). A job
** answered with a BPMN error is written done, one attempt (an incident may
** name it); a job the adapter declines or fails (a technical failure), or
** beyond ANSWER_NOW_MAX answers per command (a loop in a model cannot hold
** the command), is written pending and goes through the loop; a job whose
** element was left meanwhile is written canceled, as rv__side_clear would
** have left it. What is saved per answer: the loop's round trip, loading
** and writing the instance, the job's row, and the history batch and
** journal row of a command of its own. An answer that fails the engine
** (not a user failure: those are incidents as always) fails the whole
** command. */
#define ANSWER_NOW_MAX 64

void rv__answer_later(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_adapter_ops *ops,
                      const char *key, const char *input, int64_t retries, int64_t backoff_ms){
  struct rv_now_job *j = NULL;
  for (int i = 0; i < c->n_now_jobs && !j; i++)   /* the same key again: one row, the later input */
    if (strcmp(c->now_jobs[i].key, key) == 0) j = &c->now_jobs[i];
  if (j) { rv_free(j->input); j->input = rv_strdup(input); return; }
  if (c->n_now_jobs == c->cap_now_jobs) {
    c->cap_now_jobs = c->cap_now_jobs ? c->cap_now_jobs * 2 : 8;
    c->now_jobs = rv_realloc(c->now_jobs, sizeof *c->now_jobs * (size_t)c->cap_now_jobs);
  }
  j = &c->now_jobs[c->n_now_jobs++];
  j->inst = in->id;
  j->ei = ei->key;
  j->elem = rv__node(in, ei->node)->id;
  j->retries = retries;
  j->backoff_ms = backoff_ms;
  j->ops = ops;
  j->key = rv_strdup(key);
  j->input = rv_strdup(input);
}

static void now_jobs_free(rv_ctx *c){
  for (int i = 0; i < c->n_now_jobs; i++) {
    rv_free(c->now_jobs[i].key);
    rv_free(c->now_jobs[i].input);
  }
  rv_free(c->now_jobs);
  c->now_jobs = NULL; c->n_now_jobs = c->cap_now_jobs = 0;
}

/* The row of a job created in this command, in the state it has now. */
static rv_status now_job_write(rv_ctx *c, const struct rv_now_job *j, const char *state,
                               int attempts, int64_t *id){
  return rv__job_row_write(c, j->inst, j->ei, j->elem, j->ops->name, j->input, j->key, state,
                           attempts, j->retries, j->backoff_ms, false, id);
}

/* One "answers" journal row per run of answers for the same instance: a
** recording is one instance tree, so a command that reached several trees
** (a signal) gives each its own; within a tree the rows keep the order. */
static void answers_row(rv_ctx *c, rv_buf *ans, int64_t inst){
  rv_buf_add(ans, "]", 1);
  journal_text(c, inst, "answers", ans->p);
  ans->len = 0;
}

extern rv_status rv__run_queue(rv_ctx *c);

static rv_status answers_now(rv_ctx *c){
  rv_status rc = RV_OK;
  rv_buf ans;
  int64_t ans_inst = 0;
  rv_buf_init(&ans, SIZE_MAX / 4);
  for (int i = 0; rc == RV_OK && i < c->n_now_jobs; i++) {
    struct rv_now_job *nj = &c->now_jobs[i];
    const rv_adapter_ops *ops = nj->ops;
    rv_job_row t;
    rv_answer a;
    rv_inst *in;
    rv_ei *ei;
    int64_t id;
    size_t mark;
    bool answered = false, ok;
    rc = rv__ctx_load(c, nj->inst, &in);
    if (rc != RV_OK) break;
    ei = rv__ei_find(in, nj->ei);
    if (ei == NULL || in->ended || !(ei->side & RV_SIDE_JOB)) {    /* left meanwhile */
      rc = now_job_write(c, nj, "canceled", 0, &id);
      continue;
    }
    memset(&a, 0, sizeof a);
    if (c->n_answered < ANSWER_NOW_MAX) {
      cJSON *input = rv_json_parse(nj->input);      /* the text the row holds */
      rv_job_info info = { 0, nj->inst, nj->elem, nj->key, input, 1 };
      answered = ops->answer_now(ops->self, c->e, &info, &a);
      cJSON_Delete(input);
    }
    if (!answered) {                      /* through the loop */
      cJSON_Delete(a.result);
      rc = now_job_write(c, nj, "pending", 0, &id);
      continue;
    }
    ok = a.outcome != RV_JOB_FAILED;      /* a failed attempt: pending, retried as usual */
    id = 0;                               /* an answer: no row (above) */
    if (a.outcome != RV_JOB_OK) rc = now_job_write(c, nj, ok ? "done" : "pending", ok ? 1 : 0, &id);
    if (rc == RV_OK) {
      memset(&t, 0, sizeof t);
      t.found = t.pending = true;
      t.written = ok;
      t.id = id;
      t.inst = nj->inst;
      t.ei = nj->ei;
      t.backoff = nj->backoff_ms;
      t.retries = (int)nj->retries;
      rv_strcpy_to(t.state, sizeof t.state, "pending");
      rv_strcpy_to(t.elem, sizeof t.elem, nj->elem);
      rv_strcpy_to(t.key, sizeof t.key, nj->key);
      rv_strcpy_to(t.adapter, sizeof t.adapter, ops->name);
      c->n_answered++;
      c->e->stats.answered_now++;
      /* journaled as given, before its parts move into the case */
      if (ans.len && ans_inst != t.inst) answers_row(c, &ans, ans_inst);
      mark = ans.len;
      rv_buf_add(&ans, ans.len ? "," : "[", 1);
      job_answer_text(&ans, &t, true, nj->input, a.outcome, a.result, a.code[0] ? a.code : NULL,
                      a.message[0] ? a.message : NULL);
      ans_inst = t.inst;
      rc = rv__job_result(c, &t, a.outcome, a.result, a.result, a.code[0] ? a.code : NULL,
                          a.message[0] ? a.message : NULL);
      if (rc != RV_OK) ans.len = mark;    /* not applied: not journaled */
    }
    if (rc == RV_OK) rc = rv__run_queue(c);
    cJSON_Delete(a.result);
    nj = NULL;                            /* run_queue may have moved now_jobs */
  }
  if (rc == RV_OK && ans.len) answers_row(c, &ans, ans_inst);
  rv_buf_fini(&ans);
  now_jobs_free(c);
  return rc;
}

/*--- Command frame ----------------------------------------------------------*/

static void ctx_take_buffers(rv_ctx *c);

static rv_status cmd_begin(rv_engine *e, rv_ctx *c, rv_err *err){
  rv_status rc;
  memset(c, 0, sizeof *c);
  c->e = e;
  c->err = err ? err : &c->local_err;
  c->now = rv_clock_now(e->clock);
  c->faults0 = rv_store_faults();
  ctx_take_buffers(c);
  e->stats.commands++;
  if (e->optimistic && rv_store_depth(e->st) == 1) {
    /* optimistic batch: no savepoint; see rv_engine_batch_begin_optimistic */
    if (e->spoiled) return rv_fail(err, RV_CONFLICT, "the batch was spoiled by an earlier command");
    c->opt = true;
    c->changes0 = sqlite3_total_changes64(rv_store_db(e->st));
    rc = RV_OK;
  } else rc = rv_store_begin(e->st, err);
  if (rc == RV_OK && !c->opt && rv_store_depth(e->st) == 1) icache_check(e);   /* it began one */
  if (rc == RV_OK) {
    c->hist_mark = rv__hist_mark(e);
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

/* Give the command's buffers back to the engine for the next one (or
** free them if the engine holds some already). */
#define GIVE_BACK(ctxp, ctxcap, sparep, sparecap) do {            \
    if (e->sparep == NULL && (ctxp) != NULL) {                      \
      e->sparep = (ctxp); e->sparecap = (ctxcap);                   \
    } else rv_free(ctxp);                                           \
  } while (0)

static void ctx_free(rv_ctx *c){
  rv_engine *e = c->e;
  e->in_cmd = false;
  for (int i = 0; i < c->n_insts; i++) {
    rv_inst *in = c->insts[i];
    if (e->icache_on && c->ok && in->rev > 0 && !in->dirty) icache_put(e, in);
    else inst_free(in);
  }
  GIVE_BACK(c->insts, c->cap_insts, spare_insts, spare_icap);
  GIVE_BACK(c->q, c->qcap, spare_q, spare_qcap);
  GIVE_BACK(c->hist, c->cap_hist, spare_hist, spare_hcap);
  GIVE_BACK(c->hist_text, c->hist_cap, spare_text, spare_tcap);
  now_jobs_free(c);
  c->insts = NULL; c->q = NULL; c->n_insts = c->cap_insts = 0; c->qcap = c->qh = c->qt = 0;
  c->hist = NULL; c->hist_text = NULL; c->n_hist = c->cap_hist = 0; c->hist_len = c->hist_cap = 0;
}

static void ctx_take_buffers(rv_ctx *c){
  rv_engine *e = c->e;
  c->insts = e->spare_insts; c->cap_insts = e->spare_icap; e->spare_insts = NULL;
  c->q = e->spare_q; c->qcap = e->spare_qcap; e->spare_q = NULL;
  c->hist = e->spare_hist; c->cap_hist = e->spare_hcap; e->spare_hist = NULL;
  c->hist_text = e->spare_text; c->hist_cap = e->spare_tcap; e->spare_text = NULL;
}

/* Undo a command that will not commit: its savepoint, or (optimistic
** batch) nothing if it wrote nothing, else the whole batch at its end. */
static void cmd_abort(rv_ctx *c){
  if (!c->opt) { rv_store_rollback(c->e->st); return; }
  if (sqlite3_total_changes64(rv_store_db(c->e->st)) != c->changes0 ||
      sqlite3_get_autocommit(rv_store_db(c->e->st)))   /* SQLite ended the transaction */
    c->e->spoiled = true;
}

static rv_status cmd_end(rv_ctx *c, rv_status rc){
  rv_engine *e = c->e;
  if (rc == RV_OK) rc = rv__run_queue(c);
  if (rc == RV_OK && c->n_now_jobs > 0) rc = answers_now(c);
  if (rc == RV_OK) rc = hist_flush(c);
  for (int i = 0; rc == RV_OK && i < c->n_insts; i++)
    if (c->insts[i]->dirty) {
      rc = save_inst(c, c->insts[i]);
      c->insts[i]->dirty = false;
    }
  if (c->opt) {
    if (rc != RV_OK) cmd_abort(c);
  } else if (rc == RV_OK) {
    rc = rv_store_commit(e->st, c->err);
    if (rc == RV_OK && rv_store_depth(e->st) == 0) e->stats.commits++;
    if (rc != RV_OK) rv__icache_clear(e);
  } else {
    rv_store_rollback(e->st);
  }
  rc = rv_store_failed(rc, c->faults0, c->err);
  c->ok = rc == RV_OK;
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
  e->icache_on = true;
  e->answer_now = cfg->answer_now;
  e->history = cfg->history;
  if (e->history == 0 && getenv("RAVAND_HISTORY") && *getenv("RAVAND_HISTORY")) {
    e->history = rv_history_level(getenv("RAVAND_HISTORY"));
    if (e->history == 0) {
      rv_free(e);
      return rv_fail(err, RV_INVALID, "RAVAND_HISTORY is full, activity or instance");
    }
  }
  if (e->history < RV_HISTORY_FULL || e->history > RV_HISTORY_INSTANCE) e->history = RV_HISTORY_FULL;
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

static void held_free(struct rv_held_jobs *h);

void rv_engine_close(rv_engine *e){
  if (e == NULL) return;
  rv_adapters_unbind_engine(e);   /* adapter.h: no binding may outlive the engine */
  rv__results_free(e);
  rv__icache_clear(e);
  rv_free(e->icache);
  rv_free(e->spare_q); rv_free(e->spare_hist); rv_free(e->spare_text); rv_free(e->spare_insts);
  if (e->scratch) { rv_buf_fini(e->scratch); rv_free(e->scratch); }
  if (e->flush_ev) event_free(e->flush_ev);
  if (e->sync_ev) event_free(e->sync_ev);
  held_free(e->held);
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
  if (rc == RV_OK && rv_store_depth(e->st) == 1) icache_check(e);
  return rc;
}
rv_status rv_engine_batch_end(rv_engine *e, rv_err *err){
  rv_status rc;
  if (e->batch <= 0) return rv_fail(err, RV_CONFLICT, "no batch open");
  e->batch--;
  if (e->batch_count > e->stats.max_batch) e->stats.max_batch = e->batch_count;
  if (e->optimistic && rv_store_depth(e->st) == 1) {
    e->optimistic = false;
    if (e->spoiled) {
      e->spoiled = false;
      e->last_spoiled = true;
      rv__icache_clear(e);
      rv_store_rollback(e->st);
      return rv_fail(err, RV_CONFLICT, "a command failed after writing: the batch was rolled back");
    }
  }
  rc = rv_store_commit(e->st, err);
  if (rc == RV_OK) e->stats.commits++;
  else rv__icache_clear(e);
  return rc;
}

rv_status rv_engine_batch_begin_optimistic(rv_engine *e, rv_err *err){
  bool outer = rv_store_depth(e->st) == 0;
  rv_status rc = rv_engine_batch_begin(e, err);
  if (rc == RV_OK && outer) {
    e->optimistic = true;
    e->spoiled = e->last_spoiled = false;
  }
  return rc;
}

/* True from the moment a command spoils the optimistic batch (callers may
** stop feeding it) until the next optimistic batch begins. */
bool rv_engine_batch_spoiled(const rv_engine *e){ return e->spoiled || e->last_spoiled; }

/* The caller's own writes in an optimistic batch (the HTTP server's audit
** rows, a handler's undo) cannot be undone alone either: it spoils the
** batch the same way a failing command does. No-op in a normal batch. */
void rv_engine_batch_spoil(rv_engine *e){
  if (e->optimistic && rv_store_depth(e->st) >= 1) e->spoiled = true;
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
    rv_buf b;
    rv_buf_init(&b, SIZE_MAX / 4);
    rv_buf_add(&b, "{", 1);
    JKEY(&b, "process"); rv_json_write_string(&b, process_id);
    JKEY(&b, "version"); rv_buf_add_int(&b, d->version);
    if (bkey) { JKEY(&b, "business_key"); rv_json_write_string(&b, bkey); }
    JKEY(&b, "vars");
    if (vars) rv_json_write(&b, vars); else rv_buf_add(&b, "{}", 2);
    rv_buf_add(&b, "}", 1);
    journal_text(c, in->id, "start", b.p);
    rv_buf_fini(&b);
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
      cmd_abort(&c);
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
      "UPDATE OR FAIL tasks SET state='completed', completed_by=?, completed=?, data=? WHERE id=?",
      "titi", actor, c.now, d, task_id);
    if (d) rv_free(d);
    /* its one task is completed: nothing to cancel when it leaves */
    if (rc == RV_OK) ei->side &= ~RV_SIDE_TASK;
  }
  if (rc == RV_OK && data) {
    if (n->n_outputs > 0) {
      cJSON *o = NULL;
      rc = rv__map(&c, in, ei, n->outputs, n->n_outputs, data, &o);
      if (rc == RV_OK) { rv__vars_take(in, ei, o); cJSON_Delete(o); }
    } else rv__vars_merge(in, ei, data);
  }
  if (rc == RV_OK) {
    /* written directly, as "start" and "job": the text the cJSON object
    ** {task, element, ei, actor?, data?} printed */
    rv_buf b;
    rv_buf_init(&b, SIZE_MAX / 4);
    rv_buf_add(&b, "{", 1);
    JKEY(&b, "task"); rv_buf_add_int(&b, task_id);
    JKEY(&b, "element"); rv_json_write_string(&b, n->id);
    JKEY(&b, "ei"); rv_buf_add_int(&b, ei->key);
    if (actor) { JKEY(&b, "actor"); rv_json_write_string(&b, actor); }
    if (data) { JKEY(&b, "data"); rv_json_write(&b, data); }   /* absent: none given */
    rv_buf_add(&b, "}", 1);
    journal_text(&c, in->id, "complete", b.p);
    rv_buf_fini(&b);
    rv__history(&c, in, "TASK_COMPLETED", ei->node, ei->key, actor);
    rv__push(&c, ACT_COMPLETE, in, ei->key);
  }
  return cmd_end(&c, rc);
}

/* The subscription a message goes to: a waiting instance's (its key equal
** to the message's, or none) before a start event's, the oldest first. Four
** lookups in index order (subs_name: kind, name, corr_key, then id) instead
** of one statement that sorted its candidates in a temporary B-tree (a fifth
** of a feed record's correlation). */
typedef struct sub_hit { int64_t id, inst, ei, def; char elem[256]; } sub_hit;

static void sub_try(rv_store *st, const char *sql, const char *name, const char *key, sub_hit *best){
  sqlite3_stmt *s = rv_store_stmt(st, sql);
  rv_store_bind(s, key ? "tt" : "t", name, key);
  if (sqlite3_step(s) == SQLITE_ROW && (best->id == 0 || sqlite3_column_int64(s, 0) < best->id)) {
    best->id = sqlite3_column_int64(s, 0);
    best->inst = sqlite3_column_int64(s, 1);
    best->ei = sqlite3_column_int64(s, 2);
    rv_strcpy_to(best->elem, sizeof best->elem, (const char *)sqlite3_column_text(s, 3));
    best->def = sqlite3_column_int64(s, 4);
  }
  sqlite3_reset(s);
}

#define SUB_COLS "SELECT id, instance_id, ei, element_id, definition_id FROM subscriptions" \
                 " WHERE kind='message' AND name=?1 AND "
/* The oldest waiting instance's subscription (keyed or not), else a start
** event's. A start event's subscription has no key (deploy.c arm_starts
** writes the only ones, corr_key NULL), so there is one lookup for it. */
static bool sub_find(rv_store *st, const char *name, const char *key, sub_hit *hit){
  memset(hit, 0, sizeof *hit);
  if (key) sub_try(st, SUB_COLS "corr_key=?2 AND instance_id<>0 ORDER BY id LIMIT 1", name, key, hit);
  sub_try(st, SUB_COLS "corr_key IS NULL AND instance_id<>0 ORDER BY id LIMIT 1", name, NULL, hit);
  if (hit->id) return true;
  sub_try(st, SUB_COLS "corr_key IS NULL AND instance_id=0 ORDER BY id LIMIT 1", name, NULL, hit);
  return hit->id != 0;
}

int64_t rv_engine_message_target(rv_engine *e, const char *name, const char *key){
  sub_hit hit;
  return sub_find(e->st, name, key, &hit) ? hit.inst : 0;
}

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
    sub_hit hit;
    if (sub_find(e->st, name, key, &hit)) {
      sub_inst = hit.inst;
      sub_ei = hit.ei;
      rv_strcpy_to(elem, sizeof elem, hit.elem);
      sub_def = hit.def;
    }
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
      if (p) rv_free(p);
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
    /* the payload by reference: journal() writes it out before p goes */
    if (payload) cJSON_AddItemReferenceToObject(p, "payload", (cJSON *)payload);
    else cJSON_AddItemToObject(p, "payload", cJSON_CreateObject());
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
    if (payload) cJSON_AddItemReferenceToObject(p, "payload", (cJSON *)payload);   /* as above */
    else cJSON_AddItemToObject(p, "payload", cJSON_CreateObject());
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
  /* A called instance belongs to its caller: canceling it alone would
  ** leave the call activity waiting forever (Zeebe refuses it too). */
  if (rc == RV_OK && in->parent_instance) {
    rv_inst *parent;
    if (rv__ctx_load(&c, in->parent_instance, &parent) == RV_OK && !parent->ended)
      rc = rv_fail(err, RV_CONFLICT, "instance %lld was started by a call activity of instance %lld;"
                   " cancel instance %lld instead", (long long)instance,
                   (long long)in->parent_instance, (long long)in->parent_instance);
  }
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
  rv_timer_row t;
  rv_status rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  rv__timer_row(&c, timer_id, &t);
  rc = rv__fire_timer(&c, &t);
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
  rv_job_row t;
  rv_status rc = cmd_begin(e, &c, err);
  if (rc != RV_OK) return rc;
  rv__job_row(&c, job_id, &t);
  rc = rv__job_result(&c, &t, outcome, result, NULL, code, message);
  if (rc == RV_OK) journal_job(&c, &t, outcome, result, code, message);
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
  /* optimistic first; if an answer fails after writing, all again with a
  ** savepoint each (rv_engine_batch_begin_optimistic) */
  for (int pass = 0; pass < 2; pass++) {
    batch = (pass == 0 ? rv_engine_batch_begin_optimistic(e, &err) : rv_engine_batch_begin(e, &err)) == RV_OK;
    for (int i = 0; i < n; i++) {
      rv_status rc = rv_engine_job_result(e, rs[i].job_id, rs[i].outcome, rs[i].result,
                                          rs[i].code, rs[i].message, &err);
      if (rc != RV_OK && !e->spoiled)
        fprintf(stderr, "ravand: job %lld result not applied: %s\n", (long long)rs[i].job_id, err.msg);
    }
    if (!batch || rv_engine_batch_end(e, &err) == RV_OK) break;
    if (pass == 0 && rv_engine_batch_spoiled(e)) continue;
    fprintf(stderr, "ravand: batch commit failed: %s\n", err.msg);
    break;
  }
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

/* Due jobs as read at one commit: with the pipelined sync they wait in
** e->held until that commit is durable. */
struct held_job { int64_t id, inst; char *elem, *adapter, *input, *key; int attempts; };
struct rv_held_jobs { struct held_job *v; int n; uint64_t seq; };

static void held_free(struct rv_held_jobs *h){
  if (h == NULL) return;
  for (int i = 0; i < h->n; i++) {
    rv_free(h->v[i].elem); rv_free(h->v[i].adapter); rv_free(h->v[i].input); rv_free(h->v[i].key);
  }
  rv_free(h->v);
  rv_free(h);
}

static bool in_flight(const rv_engine *e, int64_t id){
  for (int i = 0; i < e->n_inflight_ids; i++) if (e->inflight_ids[i] == id) return true;
  return false;
}

/* The pending jobs due now and not in flight, as the store holds them after
** its last commit (number seq); NULL when there are none. */
static struct rv_held_jobs *read_due(rv_engine *e){
  sqlite3_stmt *s = rv_store_stmt(e->st, SQL_DUE_JOBS);
  struct rv_held_jobs *h = NULL;
  int cap = 0;
  rv_store_bind(s, "i", rv_clock_now(e->clock));
  while (sqlite3_step(s) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s, 0);
    struct held_job *j;
    if (in_flight(e, id)) continue;
    if (h == NULL) { h = rv_calloc(1, sizeof *h); h->seq = rv_store_commit_seq(e->st); }
    if (h->n == cap) { cap = cap ? cap * 2 : 16; h->v = rv_realloc(h->v, sizeof *h->v * (size_t)cap); }
    j = &h->v[h->n++];
    j->id = id;
    j->inst = sqlite3_column_int64(s, 1);
    j->elem = rv_strdup((const char *)sqlite3_column_text(s, 2));
    j->adapter = rv_strdup((const char *)sqlite3_column_text(s, 3));
    j->input = rv_strdup((const char *)sqlite3_column_text(s, 4));
    j->key = rv_strdup((const char *)sqlite3_column_text(s, 5));
    j->attempts = sqlite3_column_int(s, 6);
  }
  sqlite3_reset(s);
  return h;
}

/* Hand the jobs to their adapters; frees h. Returns how many. */
static int send_jobs(rv_engine *e, struct rv_held_jobs *h){
  int n = 0;
  for (int i = 0; h && i < h->n; i++) {
    struct held_job *j = &h->v[i];
    const rv_adapter_ops *ops;
    struct done_arg *d;
    cJSON *input;
    rv_status rc;
    if (in_flight(e, j->id)) continue;
    ops = rv_adapter_find(j->adapter);
    d = rv_malloc(sizeof *d);
    input = rv_json_parse(j->input);
    rv_job_info info = { j->id, j->inst, j->elem, j->key, input, j->attempts + 1 };
    d->e = e; d->job_id = j->id;
    if (e->n_inflight_ids == e->cap_inflight_ids) {
      e->cap_inflight_ids = e->cap_inflight_ids ? e->cap_inflight_ids * 2 : 16;
      e->inflight_ids = rv_realloc(e->inflight_ids, sizeof(int64_t) * (size_t)e->cap_inflight_ids);
    }
    e->inflight_ids[e->n_inflight_ids++] = j->id;
    e->inflight = e->n_inflight_ids;
    e->stats.jobs_dispatched++;
    rc = ops ? ops->invoke(ops->self, e->base, &info, job_done, d) : RV_NOTFOUND;
    if (rc != RV_OK) {
      char msg[300];
      snprintf(msg, sizeof msg, ops ? "adapter '%s' refused the job" : "no adapter named '%s'",
               j->adapter);
      job_done(d, RV_JOB_FAILED, NULL, NULL, msg);
    }
    cJSON_Delete(input);
    n++;
  }
  held_free(h);
  return n;
}

/* A job leaves the process (an SMS, a call to another system) only once
** the commit it was read at is durable. With the pipelined sync the jobs
** read at a commit not yet synced wait in e->held and go out when the sync
** reaches that commit (sync_cb calls this again), whatever was committed
** since: waiting for *every* commit to be durable instead starved the jobs
** of a server that never stops committing (found by tests/integration/
** power_loss.py: no SMS left under steady load with a slow disk). A job read
** then and changed by a later commit is answered as a stale job is. */
int rv_engine_dispatch_jobs(rv_engine *e){
  int n = 0;
  if (e->held) {
    if (rv_store_synced(e->st) < e->held->seq) {
      rv_store_sync_async(e->st);
      return 0;
    }
    n = send_jobs(e, e->held);
    e->held = NULL;
  }
  struct rv_held_jobs *h = read_due(e);
  if (h && rv_store_synced(e->st) < h->seq) {
    e->held = h;
    rv_store_sync_async(e->st);
    return n;
  }
  return n + send_jobs(e, h);
}

int rv_engine_inflight(const rv_engine *e){ return e->inflight; }

/* The store's sync thread made commits durable: jobs held back go out,
** and whoever else waits is told. */
static void sync_cb(evutil_socket_t fd, short what, void *arg){
  rv_engine *e = arg;
  uint64_t n;
  (void)what;
  if (read(fd, &n, sizeof n) < 0) { /* EAGAIN: nothing new */ }
  if (e->held) rv_engine_dispatch_jobs(e);
  if (e->on_durable) e->on_durable(e->on_durable_arg);
}

rv_status rv_engine_defer_sync(rv_engine *e, rv_err *err){
  rv_status rc;
  if (e->sync_ev) return RV_OK;                 /* deferred already */
  rc = rv_store_defer_sync(e->st, err);
  if (rc != RV_OK) return rc;
  e->sync_ev = event_new(e->base, rv_store_sync_fd(e->st), EV_READ | EV_PERSIST, sync_cb, e);
  if (e->sync_ev == NULL || event_add(e->sync_ev, NULL) != 0)
    return rv_fail(err, RV_IO, "cannot watch the WAL sync");
  return RV_OK;
}

void rv_engine_on_durable(rv_engine *e, void (*fn)(void *arg), void *arg){
  e->on_durable = fn;
  e->on_durable_arg = arg;
}

int rv_engine_fire_due(rv_engine *e){ return rv_engine_fire_due_within(e, 0); }

int rv_engine_fire_due_within(rv_engine *e, double budget_ms){
  int64_t now = rv_clock_now(e->clock);
  int64_t *ids = NULL;
  int n = 0, cap = 0, fired = 0;
  double t0 = budget_ms > 0 ? rv_mono_ms() : 0;
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
  /* optimistic first; if a timer fails after writing, all again with a
  ** savepoint each (rv_engine_batch_begin_optimistic) */
  for (int pass = 0; pass < 2; pass++) {
    fired = 0;
    if ((pass == 0 ? rv_engine_batch_begin_optimistic(e, &err) : rv_engine_batch_begin(e, &err)) != RV_OK)
      break;
    for (int i = 0; i < n; i++) {
      rv_status rc;
      /* out of time: the rest stay due for the next batch (a rerun with
      ** savepoints takes exactly the timers the first pass took) */
      if (pass == 0 && budget_ms > 0 && i > 0 && (i & 7) == 0 && rv_mono_ms() - t0 >= budget_ms) {
        n = i;
        break;
      }
      rc = rv_engine_fire_timer(e, ids[i], &err);
      if (rc == RV_OK) fired++;
      else if (rc != RV_NOTFOUND && !e->spoiled)   /* NOTFOUND: withdrawn by an earlier timer */
        fprintf(stderr, "ravand: timer %lld: %s\n", (long long)ids[i], err.msg);
    }
    if (rv_engine_batch_end(e, &err) == RV_OK) break;
    if (pass == 0 && rv_engine_batch_spoiled(e)) continue;
    fprintf(stderr, "ravand: timer batch commit failed: %s\n", err.msg);
    fired = 0;
    break;
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
