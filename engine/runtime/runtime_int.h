/*
** runtime/runtime_int.h -- types shared by the runtime's files.
**
** An instance is loaded from its row (state JSON) at the start of a
** command, mutated in memory and written back before commit. Its state is
** the tree of element instances (rv_ei): the root (node -1) holds the
** process variables, subprocesses/MI bodies are scopes, and every token
** that rests is an ei in a wait state. Side tables (tasks, timers, jobs,
** subscriptions, incidents) are indexes over that state and always carry
** (instance_id, ei): when an ei ends, every side row of it goes.
**
** Element-instance states:
**   ACTIVE   -> WAITING    the element waits (task, timer, job, message, scope)
**   ACTIVE   -> (removed)  completed or terminated; history records it
**   any      -> INCIDENT   a rule, condition or adapter failed; retry -> ACTIVE
*/
#ifndef RV_RUNTIME_INT_H
#define RV_RUNTIME_INT_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "runtime/engine.h"
#include "model/model.h"
#include "store/store.h"
#include "rules/rules.h"
#include "adapter.h"

typedef enum { EI_ACTIVE = 0, EI_WAITING = 1, EI_INCIDENT = 2 } rv_ei_state;

typedef struct rv_ei {
  int64_t key;
  int     node;            /* -1: process root */
  int64_t parent;          /* scope ei key; 0 for root */
  int     state;
  cJSON  *vars;            /* local variables (object) or NULL */
  bool    mi_body;         /* multi-instance body */
  bool    mi_inner;        /* one iteration of a multi-instance body */
  int     mi_index;        /* inner: 0-based item index */
  int     mi_total, mi_done, mi_next; /* body */
  int64_t child_instance;  /* call activity */
  cJSON  *mi_items;        /* body: the collection being iterated */
  unsigned side;           /* RV_SIDE_*: side rows this ei may have */
} rv_ei;

/* Which side tables may hold rows of an element instance, so that leaving
** it touches only those (rv__side_clear): most elements have none, and
** five no-op statements per element were a fifth of a simple instance's
** cost. Set wherever a row is written for the ei; kept in the state; a
** state written before these existed reads as "all". */
#define RV_SIDE_TIMER   1u
#define RV_SIDE_SUB     2u
#define RV_SIDE_TASK    4u
#define RV_SIDE_JOB     8u       /* a job that is canceled with the ei */
#define RV_SIDE_NOTIFY 16u       /* a notification job: outlives the ei, may raise an incident */
#define RV_SIDE_INC    32u
#define RV_SIDE_ALL    63u

/* Tokens collected by a joining gateway (n_in > 1) in one scope. */
typedef struct rv_join {
  int64_t scope;
  int     node;
  int    *counts;          /* per incoming flow position */
} rv_join;

/* Whether a cached row may still be rolled back (deploy.c). */
typedef struct rv_txmark { bool tentative; unsigned commits, rollbacks; } rv_txmark;

typedef struct rv_def {
  int64_t    id;
  rv_txmark  mark;         /* read inside a transaction: see deploy.c */
  char      *process_id;
  int        version;
  int64_t    deployment_id;
  rv_model  *model;        /* owned by the deployment entry */
  int        proc;         /* process index in model */
  rv_rules  *rules;        /* owned by the deployment entry */
} rv_def;

typedef struct rv_inst {
  int64_t id;
  rv_def *def;
  char   *status;          /* active, completed, terminated, canceled */
  char   *status_text;
  char   *business_key;
  int64_t parent_instance, parent_ei;
  int64_t next_key;
  rv_ei  *eis; int n_eis, cap_eis;
  rv_join *joins; int n_joins;
  bool    dirty, is_new, ended;
  int64_t started;
  char    status0[16];     /* status as loaded: unchanged -> its index is left alone */
  int64_t rev;             /* instances.rev of the state in memory */
} rv_inst;

/* Actions queued inside one command. */
typedef enum {
  ACT_ACTIVATE,     /* run generic activation, then the element's handler */
  ACT_RUN,          /* run the element's handler only (retry) */
  ACT_COMPLETE,     /* the element is done: leave it, take flows */
  ACT_SCOPE_CHECK,  /* a token in scope `key` ended: complete the scope if empty */
  ACT_BUFFERED      /* a subscription opened: consume a buffered message `aux` */
} rv_act_kind;

typedef struct rv_act {
  rv_act_kind kind;
  int64_t     inst;
  int64_t     key;
  int         node;
  int64_t     aux;
} rv_act;

struct rv_engine;
typedef struct rv_ctx {
  struct rv_engine *e;
  rv_inst **insts; int n_insts, cap_insts;   /* loaded in this command */
  rv_act   *q; int qh, qt, qcap;
  rv_err   *err;
  rv_err    local_err;   /* used when the caller passed no err */
  int64_t   now;
  int       depth;     /* signal/call recursion guard */
  int64_t   hist_mark; /* max(history.id) when the command began: journal.mark */
  unsigned long faults0; /* rv_store_faults() when the command began */
  /* history rows of this command, written together before it commits
  ** (engine.c: rv__history, hist_flush); strings in hist_text */
  struct rv_hrow *hist; int n_hist, cap_hist;
  char     *hist_text; size_t hist_len, hist_cap;
  int64_t   next_inst; /* id for the next instance started; 0: not read yet */
  bool      ok;        /* it committed (or will with its batch): keep its instances */
  bool      opt;       /* in an optimistic batch: no savepoint of its own */
  int64_t   changes0;  /* sqlite3_total_changes when it began (optimistic) */
  /* jobs created by this command that their adapter may answer now
  ** (engine.c answers_now): their rows are written there, with the
  ** answer; n_answered counts the answers applied */
  struct rv_now_job {
    int64_t inst, ei, retries, backoff_ms;
    const char *elem;                    /* the model's element id */
    const struct rv_adapter_ops *ops;    /* its adapter (one with answer_now) */
    char *key, *input;
  } *now_jobs;
  int       n_now_jobs, cap_now_jobs, n_answered;
} rv_ctx;

typedef struct rv_deployment_entry rv_deployment_entry;

struct rv_engine {
  rv_store          *st;
  rv_clock           sysclock;
  rv_clock          *clock;
  rv_clock           cmd_clock;      /* Lua's now(): the command's instant (engine.c) */
  int64_t            cmd_now;
  bool               in_cmd;
  struct event_base *base;
  bool               own_base;
  rv_rules_limits    limits;
  int64_t            message_ttl_ms;
  rv_def           **defs; int n_defs, cap_defs;      /* cache */
  rv_deployment_entry **deps; int n_deps, cap_deps;
  /* cache entries whose rows a rollback may have taken back: kept until
  ** close, as instances may still point to them (deploy.c) */
  rv_def           **old_defs; int n_old_defs;
  rv_deployment_entry **old_deps; int n_old_deps;
  /* a deploy wrote rows inside an enclosing transaction that had made
  ** deploy_commits commits when it ran (deploy.c mark_read) */
  bool               deploy_open;
  unsigned           deploy_commits;
  int                def_cache;
  int                inflight;
  int64_t           *inflight_ids; int n_inflight_ids, cap_inflight_ids;
  struct rv_result  *results; int n_results, cap_results; /* adapter answers */
  /* a command's work buffers, kept between commands (cmd_begin takes
  ** them, ctx_free gives them back): allocating them anew for every
  ** command was measurable */
  rv_act            *spare_q; int spare_qcap;
  struct rv_hrow    *spare_hist; int spare_hcap;
  char              *spare_text; size_t spare_tcap;
  rv_inst          **spare_insts; int spare_icap;
  struct rv_buf     *scratch;       /* save_inst's state text */
  /* Instances as the last command that committed them left them, by id
  ** (direct-mapped): the next command on one takes it instead of parsing
  ** its state again, if instances.rev still matches (engine.c: rv__ctx_load). */
  rv_inst          **icache;
  int64_t            icache_hits, icache_misses;
  bool               icache_on;
  int                win_loads, win_hits, win_idle;
  int64_t            data_version;   /* PRAGMA data_version when the cache was last checked */
  struct event      *flush_ev;
  /* pipelined WAL sync (rv_engine_defer_sync): the store's note that a sync
  ** finished; jobs held back until the commit they were read at is durable;
  ** who else waits for durability (the HTTP server's parked replies) */
  struct event      *sync_ev;
  struct rv_held_jobs *held;         /* due jobs read at a commit not yet durable */
  void             (*on_durable)(void *arg);
  void              *on_durable_arg;
  int                history;        /* RV_HISTORY_* */
  bool               answer_now;     /* cfg.answer_now */
  int                batch;          /* open batch depth */
  bool               optimistic;     /* the open (outermost) batch has no savepoints */
  bool               spoiled;        /* ... and a command that wrote has failed in it */
  bool               last_spoiled;   /* the last optimistic batch was rolled back */
  int                batch_count;
  /* max(history.id) as last read or written, valid while the store's
  ** transaction generation is hmark_gen (engine.c: rv__hist_mark) */
  int64_t            hmark;
  unsigned           hmark_gen;
  bool               hmark_ok;
  rv_engine_stats    stats;
};

/*--- engine.c ---*/
rv_status rv__ctx_load(rv_ctx *c, int64_t id, rv_inst **out);
int64_t   rv__hist_mark(rv_engine *e);
void      rv__hist_wrote(rv_engine *e);
void      rv__push(rv_ctx *c, rv_act_kind k, rv_inst *in, int64_t key);
rv_ei    *rv__ei_find(rv_inst *in, int64_t key);
rv_ei    *rv__ei_new(rv_inst *in, int node, int64_t parent);
void      rv__ei_remove(rv_inst *in, int64_t key);
/* Note that ei (may be NULL) now has rows in the side tables of bits. */
void      rv__side_mark(rv_inst *in, rv_ei *ei, unsigned bits);
const rv_node *rv__node(const rv_inst *in, int node);
void      rv__history(rv_ctx *c, rv_inst *in, const char *event, int node,
                      int64_t ei, const char *detail);
/* Whether the engine's history level keeps event (of node n, may be NULL):
** to skip building a detail nobody will store. */
bool      rv__history_kept(const rv_ctx *c, const char *event, const rv_node *n);
/* The job of key (just written; id if known, else 0; input its JSON text)
** is one its adapter may answer before the command ends (engine.c
** answers_now). */
void      rv__answer_later(rv_ctx *c, rv_inst *in, rv_ei *ei, const struct rv_adapter_ops *ops,
                           const char *key, const char *input, int64_t retries, int64_t backoff_ms);
rv_status rv__job_row_write(rv_ctx *c, int64_t inst, int64_t ei, const char *elem,
                            const char *adapter, const char *input, const char *key,
                            const char *state, int attempts, int64_t retries,
                            int64_t backoff_ms, bool notify, int64_t *id);
rv_status rv__incident(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *kind,
                       int64_t job_id, const char *msg);
rv_status rv__take_flow(rv_ctx *c, rv_inst *in, int64_t scope, int flow);
rv_status rv__leave(rv_ctx *c, rv_inst *in, rv_ei *ei);
rv_status rv__terminate(rv_ctx *c, rv_inst *in, int64_t key, bool record);
rv_status rv__terminate_children(rv_ctx *c, rv_inst *in, int64_t key);
/* Remove the side rows (timers, subscriptions; tasks and jobs canceled) of ei key. */
rv_status rv__side_clear(rv_ctx *c, rv_inst *in, int64_t key);
rv_status rv__throw_error(rv_ctx *c, rv_inst *in, rv_ei *from, bool include_self,
                          const char *code, const char *msg, bool escalation,
                          bool *out_caught);
rv_status rv__trigger(rv_ctx *c, rv_inst *in, int64_t ei_key, int node,
                      const cJSON *payload, bool *out_consumed);
rv_status rv__start_instance(rv_ctx *c, rv_def *d, int start_node, const cJSON *vars,
                             const char *bkey, int64_t parent_inst, int64_t parent_ei,
                             rv_inst **out);
rv_status rv__open_message_sub(rv_ctx *c, rv_inst *in, rv_ei *ei, int node);
rv_status rv__create_job(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *adapter,
                         const cJSON *input /* borrowed */, int retries, const char *backoff,
                         bool notify, const char *keysuffix);
rv_status rv__open_evsubs(rv_ctx *c, rv_inst *in, int64_t scope_key, int scope_node);
rv_status rv__incident_row(rv_ctx *c, int64_t inst, int64_t ei, const char *element,
                           const char *kind, int64_t job_id, const char *msg);
void      rv__set_status(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n);
rv_status rv__signal(rv_ctx *c, const char *name, const cJSON *payload, int *count);
rv_status rv__child_done(rv_ctx *c, rv_inst *child, bool error, const char *code);

/* A jobs row and a timers row, read once per command (engine.c journals
** them, flow.c applies the command). found == false: no such row. */
typedef struct rv_job_row {
  bool    found, pending, notify;
  bool    written;   /* its row already says done (answered inside the command) */
  int64_t id, inst, ei, backoff;
  int     attempts, retries;
  char    state[16], elem[256], key[512], adapter[64];
} rv_job_row;
typedef struct rv_timer_row {
  bool    found;
  int64_t id, inst, ei, def, armed;
  int     repeat, fired;
  char    elem[256];
} rv_timer_row;
void      rv__job_row(rv_ctx *c, int64_t job_id, rv_job_row *j);
void      rv__timer_row(rv_ctx *c, int64_t timer_id, rv_timer_row *t);
/* owned: NULL, or result itself when the caller drops it next (its parts
** may then move into the case: rv__apply_result_owned). */
rv_status rv__job_result(rv_ctx *c, const rv_job_row *j, rv_job_outcome o,
                         const cJSON *result, cJSON *owned, const char *code, const char *msg);
rv_status rv__fire_timer(rv_ctx *c, const rv_timer_row *t);

/*--- elements.c: one handler per element kind ---*/
typedef struct rv_elem_ops {
  /* Do the element's work. Complete now with rv__push(ACT_COMPLETE), or
  ** set ei->state = EI_WAITING and return; failures become incidents. */
  rv_status (*run)(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n);
} rv_elem_ops;
const rv_elem_ops *rv__elem_ops(rv_elem_type t);
rv_status rv__mi_child_done(rv_ctx *c, rv_inst *in, rv_ei *body, rv_ei *inner);
rv_status rv__mi_start(rv_ctx *c, rv_inst *in, rv_ei *body);
rv_status rv__apply_result(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n, const cJSON *res);
/* The same for a result the caller owns and drops next: its members may be moved out. */
rv_status rv__apply_result_owned(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n, cJSON *res);
bool      rv__is_activity(rv_elem_type t);
rv_status rv__gateway_split(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n);
rv_status rv__validate_form(const rv_node *n, const cJSON *data, rv_err *err);

/*--- vars.c ---*/
/* All variables visible from ei (root first, inner overrides). New object. */
cJSON    *rv__vars_visible(rv_inst *in, rv_ei *ei);
/* The same, read-only and without a copy when one scope holds them all
** (the usual case); else a merged copy, which *owned gets (caller deletes
** it; NULL otherwise). Valid until a variable changes. */
const cJSON *rv__vars_view(rv_inst *in, rv_ei *ei, cJSON **owned);
/* Set name=value (takes ownership of value) from the point of view of ei:
** nearest scope that has it, else the nearest multi-instance iteration,
** else the root. */
void      rv__vars_set(rv_inst *in, rv_ei *ei, const char *name, cJSON *value);
/* Merge every field of obj (borrowed) with rv__vars_set. */
void      rv__vars_merge(rv_inst *in, rv_ei *ei, const cJSON *obj);
void      rv__vars_take(rv_inst *in, rv_ei *ei, cJSON *obj);
rv_status rv__eval(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, cJSON **out);
rv_status rv__eval_bool(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, bool *out);
/* Evaluate mappings into a new object; extra (borrowed, may be NULL) is
** visible as the global `result`. */
rv_status rv__map(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_mapping *m, int n,
                  const cJSON *result, cJSON **out);
/* The same over an answer the caller owns and drops next: values named by
** plain paths (result.person) are taken out of it, not copied, when no
** mapping runs Lua and no two paths overlap (rv_rules_take_extra). */
rv_status rv__map_owned(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_mapping *m, int n,
                        cJSON *result, cJSON **out);
/* "{name}" placeholders replaced by variable values. New string. */
char     *rv__render(const char *tmpl, const cJSON *vars);

/*--- elements.c ---*/
/* [{id, label, type, required, values}] of n's rv:fields; new array. */
cJSON *rv__form_json(const rv_node *n);

/*--- timer.c ---*/
/* Compute the first due time for a timer node (ms) and the repetitions
** left after it (cycles; 0 otherwise). */
rv_status rv__timer_due(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n,
                        int64_t *due, int *repeat_left);
rv_status rv__timer_arm(rv_ctx *c, rv_inst *in, rv_ei *ei, int node);
rv_status rv__due_expr(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, int64_t *out);

/*--- deploy.c ---*/
rv_status rv__def_get(rv_engine *e, int64_t def_id, rv_def **out, rv_err *err);
rv_status rv__def_latest(rv_engine *e, const char *process_id, int version,
                         rv_def **out, rv_err *err);
void      rv__defs_free(rv_engine *e);

/*--- small JSON helpers (core/json.c) ---*/
#include "core/json.h"

#endif
