/*
** adapters/adapter.h -- how a service or send task reaches the outside.
**
** The runtime writes a job to the outbox (jobs table) in the command's
** transaction; after commit the scheduler hands it to the adapter named
** by the task. invoke() must not block: it starts the work on the
** libevent loop and calls done() exactly once, later (possibly from a
** zero-delay event), when it returns RV_OK. If invoke() returns an error,
** done() is never called and the error counts as a failed attempt.
**
** job->key is the idempotency key: stable across retries and restarts
** ("<instance>:<element-instance>:<element>"), so a receiver that
** deduplicates on it sees every side effect once.
*/
#ifndef RV_ADAPTER_H
#define RV_ADAPTER_H
#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>
#include <cjson/cJSON.h>
#include "core/err.h"

typedef struct rv_job_info {
  int64_t      id;
  int64_t      instance_id;
  const char  *element_id;
  const char  *key;          /* idempotency key */
  const cJSON *input;        /* borrowed for the duration of invoke() */
  int          attempt;      /* 1 for the first try */
} rv_job_info;

typedef enum rv_job_outcome {
  RV_JOB_OK = 0,        /* result holds the answer (object or NULL) */
  RV_JOB_FAILED,        /* technical failure: retried with backoff */
  RV_JOB_BPMN_ERROR     /* business error: thrown as BPMN error `code` */
} rv_job_outcome;

/* Takes ownership of result (may be NULL). code/message are copied. */
typedef void (*rv_adapter_done_fn)(void *arg, rv_job_outcome outcome,
                                   cJSON *result, const char *code,
                                   const char *message);

struct rv_engine;

/* What answer_now() decided: outcome and result as for done(); code and
** message are the adapter's (empty: none). */
typedef struct rv_answer {
  rv_job_outcome outcome;
  cJSON         *result;       /* the engine takes ownership */
  char           code[64];
  char           message[512];
} rv_answer;

typedef struct rv_adapter_ops {
  const char *name;                     /* the task's rv:adapter value */
  rv_status (*invoke)(void *self, struct event_base *base, const rv_job_info *job,
                      rv_adapter_done_fn done, void *arg);
  void       *self;
  /* Optional: answer inside the command that created the job. Only for
  ** adapters whose answer is decided inside the process by data in the
  ** same transaction and whose only effect is a write to that store:
  ** `records` (reads the engine's own store), `payroll`/`finance` (the
  ** ledger row, written in the command's transaction) and the test
  ** adapter `echo` (its input alone).
  ** The engine (cfg.answer_now; off in replays and process tests) calls it
  ** once the command's own work is done, applies the answer in the same
  ** transaction, writes the job's row once with it and journals it with
  ** the command ("answers": a replay feeds the same answer, as for any
  ** adapter), saving the job's round trip through the loop and the reload
  ** of the instance (engine.c answers_now). job->id is 0 (no row yet);
  ** job->key is the idempotency key. Return false to leave the job to
  ** invoke() (e.g. a technical failure: retried as usual). */
  bool (*answer_now)(void *self, struct rv_engine *e, const rv_job_info *job, rv_answer *out);
} rv_adapter_ops;

/* Adapters that keep durable records (payroll, finance, records) use the
** engine's store on the loop thread, outside any command transaction.
** Whoever opens an engine whose jobs may reach them binds it; the binding
** is looked up by the event_base passed to invoke(); rv_engine_close()
** removes it. A job reaching such an adapter on an unbound base fails
** technically ("no engine bound"), so it is retried, never lost. */
void              rv_adapters_bind_engine(struct rv_engine *e);
void              rv_adapters_unbind_engine(struct rv_engine *e);
struct rv_engine *rv_adapters_engine(struct event_base *base);   /* NULL if none */

/* The registry of adapters compiled into this binary (adapters.c). */
const rv_adapter_ops *rv_adapter_find(const char *name);
/* Register an extra adapter at run time (tests); ops is borrowed. */
void rv_adapter_register(const rv_adapter_ops *ops);
void rv_adapter_reset_extra(void);
/* Remove one run-time registration (the built-in of that name is found again). */
void rv_adapter_unregister(const rv_adapter_ops *ops);

/* Configure the adapters that talk to the outside (today: `sms`) from the
** JSON config file at path (NULL or "": $RAVAND_CONFIG, else none) and
** the environment; see docs/adapters.md. Unconfigured adapters keep their
** built-in test stand-ins. rv_adapters_stop() cancels in-flight calls
** (their done() runs) and frees what configure made: call it before the
** engine and its event_base are closed. */
rv_status rv_adapters_configure(const char *path, rv_err *err);
void      rv_adapters_stop(void);

#endif
