/*
** runtime/engine.h -- the public face of ravand's core: deploy definitions,
** start instances and feed them commands; every command is applied in one
** SQLite transaction and is acknowledged (returns RV_OK) only after commit.
**
** Commands: start, complete task, correlate message, broadcast signal,
** fire timer, job result, cancel, retry incident. Each may touch several
** instances (call activities, signals); all their effects share the
** command's transaction. Between rv_engine_batch_begin() and
** rv_engine_batch_end() commands share one transaction (group commit);
** each runs in its own savepoint so a failing command rolls back alone.
**
** Loop thread only. The engine borrows the event_base and the clock.
*/
#ifndef RV_ENGINE_H
#define RV_ENGINE_H
#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "core/clock.h"
#include "rules/rules.h"
#include "adapter.h"

typedef struct rv_engine rv_engine;

typedef struct rv_engine_cfg {
  const char        *db_path;
  rv_clock          *clock;        /* NULL: system clock */
  struct event_base *base;         /* NULL: the engine makes its own */
  rv_rules_limits    limits;       /* zeroes: defaults */
  bool               relaxed_sync; /* synchronous=NORMAL (benchmarks only) */
  int64_t            message_ttl_ms; /* default buffer TTL; 0: 1 hour */
  int                def_cache;    /* definitions kept in memory; 0: 64 */
  int                history;      /* RV_HISTORY_*; 0 (full) unless $RAVAND_HISTORY says */
  /* Let adapters that can (adapter.h answer_now: `records`) answer inside
  ** the command that created their job. On in `ravand` (serve, tick, feed
  ** import, ...); off by default, so replays and process tests take every
  ** answer from the journal. */
  bool               answer_now;
} rv_engine_cfg;

/* What the history table keeps (like Camunda's history levels). Every
** level keeps the instance's life (INSTANCE_*), status texts (STATUS),
** tasks (TASK_*) and incidents (INCIDENT_*); journal and state are the
** same at every level.
**   full      every event: elements, flows, gateway decisions with their
**             reasons, jobs, timers, messages. The default; record/replay
**             and process tests need it.
**   activity  no FLOW_TAKEN, and gateways only by their GATEWAY_DECISION
**             (not activated/completed): about 40% fewer rows.
**   instance  only the four kinds above.
** $RAVAND_HISTORY (full|activity|instance) sets it when cfg.history is 0. */
enum { RV_HISTORY_FULL = 1, RV_HISTORY_ACTIVITY = 2, RV_HISTORY_INSTANCE = 3 };
/* "full"/"activity"/"instance" -> level; 0 when unknown. */
int rv_history_level(const char *name);

rv_status rv_engine_open(const rv_engine_cfg *cfg, rv_engine **out /* OUT */, rv_err *err);
void      rv_engine_close(rv_engine *e);   /* NULL is a no-op */
struct event_base *rv_engine_base(rv_engine *e);
rv_clock          *rv_engine_clock(rv_engine *e);
struct rv_store   *rv_engine_store(rv_engine *e);

/* Deploy BPMN files with the Lua modules under scripts_dir (may be NULL).
** Files that fail lint are refused as a whole (RV_INVALID; diagnostics in
** err and, when out_report is given, as a JSON array there). A process
** whose XML+Lua hash equals its latest version is left as it is.
** Returns: new JSON report {deployment, processes:[{id,version,new}]}. */
rv_status rv_engine_deploy(rv_engine *e, const char *const *files, int n_files,
                           const char *scripts_dir, cJSON **out_report /* OUT */,
                           rv_err *err);

/* version 0 = latest. vars (borrowed) may be NULL. */
rv_status rv_engine_start(rv_engine *e, const char *process_id, int version,
                          const cJSON *vars, const char *business_key,
                          int64_t *out_instance /* OUT */, rv_err *err);
/* As rv_engine_start, made idempotent by request_key: a key that was
** already applied returns the instance it started then, without a new
** start (the key is recorded in the same transaction as the start). */
rv_status rv_engine_start_keyed(rv_engine *e, const char *request_key,
                                const char *process_id, int version,
                                const cJSON *vars, const char *business_key,
                                int64_t *out_instance /* OUT */, rv_err *err);
/* data (borrowed) is checked against the task's form fields. */
rv_status rv_engine_complete_task(rv_engine *e, int64_t task_id, const cJSON *data,
                                  const char *actor, rv_err *err);
/* Correlate a message. key may be NULL. message_id (may be NULL) makes the
** call idempotent: a repeated id is not applied again (*out_result says
** "duplicate"). ttl_ms < 0: engine default; 0: do not buffer.
** Returns: new JSON {result: correlated|started|buffered|duplicate, instance}. */
rv_status rv_engine_correlate(rv_engine *e, const char *name, const char *key,
                              const cJSON *payload, const char *message_id,
                              int64_t ttl_ms, cJSON **out_result /* OUT */, rv_err *err);
/* The instance a message (name, key) would reach now, as rv_engine_correlate
** chooses it: a waiting instance's id, or 0 (a start event, or nothing). */
int64_t   rv_engine_message_target(rv_engine *e, const char *name, const char *key);
rv_status rv_engine_signal(rv_engine *e, const char *name, const cJSON *payload,
                           int *out_count /* OUT, may be NULL */, rv_err *err);
rv_status rv_engine_cancel(rv_engine *e, int64_t instance, rv_err *err);
rv_status rv_engine_retry_incident(rv_engine *e, int64_t incident, rv_err *err);
rv_status rv_engine_fire_timer(rv_engine *e, int64_t timer_id, rv_err *err);
/* Apply an adapter's answer for a job as one command: what the loop does
** when an adapter calls done(), and what replay does with a recorded
** answer. An answer for a job that is no longer pending changes nothing
** (it is journaled as stale). result and the strings are borrowed. */
rv_status rv_engine_job_result(rv_engine *e, int64_t job_id, rv_job_outcome outcome,
                               const cJSON *result, const char *code, const char *message,
                               rv_err *err);

/* Group commit. */
rv_status rv_engine_batch_begin(rv_engine *e, rv_err *err);
rv_status rv_engine_batch_end(rv_engine *e, rv_err *err);
/* Optimistic group commit: the commands share the transaction without a
** savepoint each (a savepoint copies every page a command touches; that
** was a quarter of a simple command's cost). A command that fails before
** writing anything fails alone, as usual. A command that fails after
** writing spoils the batch: later commands fail at once, batch_end rolls
** everything back and returns RV_CONFLICT with rv_engine_batch_spoiled()
** true, and the caller runs the same commands again in a normal batch
** (nothing of the spoiled one was acknowledged: acknowledge only after
** batch_end returned RV_OK). Inside another batch it is a normal batch.
** rv_engine_batch_spoiled() is already true inside the batch once a
** command spoiled it (stop feeding it); rv_engine_batch_spoil() lets the
** caller spoil it for a write of its own that it cannot undo alone. */
rv_status rv_engine_batch_begin_optimistic(rv_engine *e, rv_err *err);
bool      rv_engine_batch_spoiled(const rv_engine *e);
void      rv_engine_batch_spoil(rv_engine *e);

/* Scheduling. fire_due fires every timer due at the clock's now (one
** command each, all in one batch) and returns how many fired.
** dispatch_jobs hands every due pending job to its adapter (after
** commit); results come back through the event loop as commands.
** drain loops timers, jobs and the event loop until nothing is due or
** in flight (tests, `ravand tick`). */
int       rv_engine_fire_due(rv_engine *e);
/* The same, but the batch ends (and commits) once budget_ms have passed,
** the timers not reached staying due: `serve` keeps a burst of timers from
** holding the loop (and requests) for long. budget_ms <= 0: no limit. */
int       rv_engine_fire_due_within(rv_engine *e, double budget_ms);
int       rv_engine_dispatch_jobs(rv_engine *e);
/* Pipelined commit (store.h, rv_store_defer_sync; docs/architecture.md,
** "Pipelined WAL sync"): commits no longer wait for fdatasync; a thread
** syncs the WAL when asked. Jobs are dispatched only once the commits
** that created them are durable. on_durable: fn(arg) runs on the loop
** after every sync, for others that must wait (the server's replies);
** fn NULL: nobody. */
rv_status rv_engine_defer_sync(rv_engine *e, rv_err *err);
void      rv_engine_on_durable(rv_engine *e, void (*fn)(void *arg), void *arg);
int       rv_engine_inflight(const rv_engine *e);
void      rv_engine_drain(rv_engine *e);
/* Earliest due time of a timer or job retry, or -1. */
int64_t   rv_engine_next_due(rv_engine *e);

/* Queries (read-only). Each returns a new cJSON the caller frees. */
rv_status rv_engine_instance_json(rv_engine *e, int64_t id, cJSON **out, rv_err *err);
/* filter: {"status":..,"process":..,"business_key":..,"limit":n,"offset":n} */
rv_status rv_engine_instances_json(rv_engine *e, const cJSON *filter, cJSON **out, rv_err *err);
/* filter: {"state":"open","instance":id,"element":..,"branch":..,"county":..,
**          "group":..,"assignee":..,"limit":n,"offset":n} */
rv_status rv_engine_tasks_json(rv_engine *e, const cJSON *filter, cJSON **out, rv_err *err);
rv_status rv_engine_incidents_json(rv_engine *e, const cJSON *filter, cJSON **out, rv_err *err);
rv_status rv_engine_definitions_json(rv_engine *e, cJSON **out, rv_err *err);

/* Counters for tests and metrics. */
typedef struct rv_engine_stats {
  int64_t commands, commits, batches, max_batch;
  int64_t jobs_dispatched, jobs_failed, incidents;
  int64_t answered_now;     /* jobs answered inside their command (cfg.answer_now) */
} rv_engine_stats;
const rv_engine_stats *rv_engine_stats_get(const rv_engine *e);

/* Task assignment and office, for the API (taskops.c). Each is one
** command (journaled, in history). The caller decides who may act; these
** check only the task's state. claim: CONFLICT when the task is not open
** or another user holds it (claiming one's own task again is a no-op).
** unclaim: CONFLICT when another user holds it. transfer: moves an open
** task to another branch and clears its assignee. */
rv_status rv_engine_task_claim(rv_engine *e, int64_t task, const char *user, rv_err *err);
rv_status rv_engine_task_unclaim(rv_engine *e, int64_t task, const char *user, rv_err *err);
rv_status rv_engine_task_transfer(rv_engine *e, int64_t task, const char *branch,
                                  const char *actor, const char *reason, rv_err *err);
/* One task with its instance's business key; form and data parsed.
** Returns: new cJSON in *out, caller frees. NOTFOUND when absent. */
rv_status rv_engine_task_json(rv_engine *e, int64_t task, cJSON **out, rv_err *err);

/* The portal side of the model (portal.c; docs/process-xml.md).
** rv_engine_start_info: the start event an API caller would use -- the none
** start event of process_id (latest version, or version) or, with message
** instead, the message start event the engine starts for that message --
** whether rv:startableBy opens it to role, and, when vars is given, whether
** vars fit its rv:field start form (task-form rules; no fields declared: no
** variables). found == false when there is no such start event. */
typedef struct rv_start_info {
  bool found, declared, form_ok;
  char process[128];
  int  version;
  int  n_fields;
  char form_error[256];
} rv_start_info;
rv_status rv_engine_start_info(rv_engine *e, const char *process_id, int version,
                               const char *message, const char *role, const cJSON *vars,
                               rv_start_info *info /* OUT */, rv_err *err);
/* What a client needs to label a definition's steps and build its start
** forms (version 0 = latest): {"elements": {id: name} (named elements),
** "starts": [{"element", "name"?, "message"? (message starts), "form":
** [{id, label, type, required, values?}]}]} -- the process's top-level none
** and message start events. Who may use a start is rv_engine_start_info's
** business. NOTFOUND when there is no such version.
** Returns: new object in *out, caller frees. */
rv_status rv_engine_definition_info(rv_engine *e, const char *process_id, int version,
                                    cJSON **out /* OUT */, rv_err *err);
/* The variables a user task shows its applicant (rv:display), as the
** task's token sees them; absent ones are null. *out NULL when the task
** declares no rv:display. Returns: new object in *out, caller frees. */
rv_status rv_engine_task_display(rv_engine *e, int64_t task, cJSON **out, rv_err *err);

#endif
