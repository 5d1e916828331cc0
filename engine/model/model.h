/*
** model/model.h -- parsed, immutable BPMN process definitions.
**
** A definitions file (one .bpmn) parses into an rv_model holding one or
** more executable processes. Nodes and flows live in flat arrays and
** refer to each other by index; -1 means "none". Strings are owned by
** the model and freed by rv_model_free(). The runtime only borrows a
** model. No libxml2 type appears in this header: libxml2 documents are
** freed before rv_model_parse_* returns.
**
** Expressions (conditions, mappings, correlation keys, "=expr" timers)
** are Lua source text stored as-is; rules/ compiles them.
*/
#ifndef RV_MODEL_H
#define RV_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include "core/err.h"

#define RV_NS_BPMN   "http://www.omg.org/spec/BPMN/20100524/MODEL"
#define RV_NS_RAVAND "urn:ravand:bpmn:1"
#define RV_NS_CAMUNDA "http://camunda.org/schema/1.0/bpmn"
#define RV_NS_ZEEBE  "http://camunda.org/schema/zeebe/1.0"
#define RV_NS_FLOWABLE "http://flowable.org/bpmn"
#define RV_NS_ACTIVITI "http://activiti.org/bpmn"

typedef enum rv_elem_type {
  RV_ELEM_NONE = 0,
#define RV_ELEMENT(uc, bpmn) RV_ELEM_##uc,
#include "model/elements.def"
#undef RV_ELEMENT
  RV_ELEM_COUNT
} rv_elem_type;

/* Returns the BPMN local name ("userTask"), or "?" */
const char  *rv_elem_name(rv_elem_type t);
/* Returns RV_ELEM_NONE when name is not an executable flow node. */
rv_elem_type rv_elem_lookup(const char *local_name);

/* The event definition carried by an event node (or an event subprocess's
** start event). At most one per node; more is a lint error. */
typedef enum rv_evdef {
  RV_EV_NONE = 0,
  RV_EV_TIMER,
  RV_EV_MESSAGE,
  RV_EV_SIGNAL,
  RV_EV_ERROR,
  RV_EV_ESCALATION,
  RV_EV_TERMINATE
} rv_evdef;

typedef enum rv_timer_kind {
  RV_TIMER_NONE = 0,
  RV_TIMER_DATE,        /* <timeDate>: ISO 8601 date-time */
  RV_TIMER_DURATION,    /* <timeDuration>: ISO 8601 duration "P3D" */
  RV_TIMER_CYCLE        /* <timeCycle>: "R3/PT10M", "R/2026-01-01T00:00:00Z/P1M" */
} rv_timer_kind;

/* "target = Lua expression" mapping (inputs, outputs, call activity in/out). */
typedef struct rv_mapping {
  char *target;          /* variable name written */
  char *expr;            /* Lua expression evaluated against the source scope */
  int   line;
} rv_mapping;

/* A user-task form field. Types: string, long, boolean, date, enum, json. */
typedef struct rv_field {
  char *id;
  char *label;           /* may be Persian */
  char *type;
  bool  required;
  char **values;         /* enum values, n_values of them; NULL otherwise */
  int    n_values;
  int    line;
} rv_field;

typedef struct rv_flow {
  char *id;
  char *name;
  int   line;
  int   source, target;  /* node indices */
  char *condition;       /* Lua expression, NULL when unconditional */
  int   cond_line;
  bool  is_default;      /* the source gateway/activity names it as default */
} rv_flow;

typedef struct rv_node {
  char        *id;
  char        *name;
  int          line;
  rv_elem_type type;
  int          process;        /* index into rv_model.processes */
  int          scope;          /* enclosing subProcess node index, -1 = process */

  int *in;  int n_in;          /* incoming flow indices (document order) */
  int *out; int n_out;         /* outgoing flow indices (document order) */
  int  default_flow;           /* flow index or -1 */

  /* events */
  rv_evdef      ev;
  rv_timer_kind timer_kind;
  char         *timer_expr;     /* ISO 8601 text, or "=<lua>" for a Lua expression */
  char         *ref_name;       /* message name, signal name, error code or
                                   escalation code (resolved from messageRef etc.);
                                   NULL on an error/escalation catch = catch all */
  char         *correlation_key;/* Lua expr (messages) */
  int           attached_to;    /* boundary: node index */
  bool          interrupting;   /* boundary cancelActivity, event-subprocess isInterrupting; default true */
  int          *boundaries; int n_boundaries; /* on activities: attached boundary node indices */

  /* scopes: subProcess children */
  bool  triggered_by_event;     /* event subprocess */
  int  *children; int n_children;   /* direct child node indices */
  int  *event_subs; int n_event_subs; /* event subprocess node indices directly in this scope */

  /* script / business rule task */
  char *function;              /* "module.func" in scripts/ (rv:function) */
  char *script;                /* inline Lua body (scriptTask <script>) */
  char *result_var;
  rv_mapping *inputs;  int n_inputs;   /* also service/send task, call activity "in" */
  rv_mapping *outputs; int n_outputs;  /* also call activity "out" */

  /* service / send task */
  char *adapter;               /* rv:adapter, zeebe:taskDefinition type, camunda:type/topic */
  int   retries;               /* default 3 */
  char *retry_backoff;         /* ISO 8601 duration, default "PT10S" */
  char *message_ttl;           /* rv:messageTtl (a message throw or end event delivered by
                                  `message`): ISO 8601 duration; NULL: the engine's */

  /* user task */
  char *candidate_groups;      /* comma-separated */
  char *assignee;              /* Lua expr or literal */
  char *branch_expr;           /* Lua expr giving the branch (office scope) */
  char *county_expr;           /* Lua expr giving the county */
  char *due;                   /* ISO duration, date, or "=<lua>" */
  rv_field *fields; int n_fields;

  /* call activity */
  char *called_element;        /* process id */

  /* multi-instance */
  bool  mi;
  bool  mi_sequential;
  char *mi_collection;         /* Lua expr giving an array */
  char *mi_element_var;
  char *mi_output_collection;
  char *mi_output_element;     /* Lua expr evaluated in the child scope */
  char *mi_completion;         /* completionCondition, Lua */
  char *mi_cardinality;        /* loopCardinality, Lua giving a count (no collection) */

  /* applicant-facing */
  char *status;                /* rv:status, Persian text set when entered */
  char *sms;                   /* rv:sms template sent with it */
  int   sms_retries;           /* rv:smsRetries: attempts before an incident; -1: 5 */
  char *sms_retry_backoff;     /* rv:smsRetryBackoff, ISO 8601; NULL: PT1M */

  /* portal (API) */
  char *startable_by;          /* start events: rv:startableBy, roles that may
                                  start through the API ("applicant,organisation");
                                  NULL: the process's rv:startableBy applies */
  char *display;               /* user tasks: rv:display, comma-separated variable
                                  names the applicant-facing task view shows */
} rv_node;

typedef struct rv_process {
  char *id;
  char *name;
  int   line;
  bool  executable;
  int  *children;   int n_children;    /* top-level node indices */
  int  *event_subs; int n_event_subs;  /* top-level event subprocesses */
  int  *starts;     int n_starts;      /* top-level start events (not in event subprocesses) */
  char *startable_by;                  /* rv:startableBy on <process>: roles that may start
                                          it through the API; NULL = none (operators only) */
} rv_process;

typedef struct rv_model {
  char       *file;          /* for diagnostics */
  rv_process *processes; int n_processes;
  rv_node    *nodes;     int n_nodes;
  rv_flow    *flows;     int n_flows;
} rv_model;

/* Diagnostics: lint output and parse errors. */
typedef enum rv_diag_level { RV_DIAG_WARNING, RV_DIAG_ERROR } rv_diag_level;
typedef struct rv_diag {
  rv_diag_level level;
  int           line;        /* 0 when unknown */
  char         *msg;
} rv_diag;
typedef struct rv_diags {
  rv_diag *v; int n, cap;
  int      n_errors;
} rv_diags;

void rv_diags_init(rv_diags *d);
void rv_diags_fini(rv_diags *d);
void rv_diags_add(rv_diags *d, rv_diag_level lvl, int line, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
/* Print as "FILE:LINE: error: msg" one per line, sorted by line. */
void rv_diags_print(const rv_diags *d, const char *file, void *FILE_stream);

/* Parse a BPMN 2.0 document. Elements are found by namespace URI, never
** by prefix. Structural problems (malformed XML, unsupported elements,
** dangling references) are added to diags as errors; on any error *out
** is NULL. XML is parsed with XML_PARSE_NONET and no entity expansion.
** Returns: new model in *out, caller frees with rv_model_free(). */
rv_status rv_model_parse_file(const char *path, rv_diags *diags, rv_model **out /* OUT */);
rv_status rv_model_parse_memory(const char *buf, size_t len, const char *name,
                                rv_diags *diags, rv_model **out /* OUT */);
void      rv_model_free(rv_model *m);   /* NULL is a no-op */

/* Graph checks on a parsed model: flows to nowhere, unreachable nodes,
** gateways that can get stuck, missing adapters/functions settings.
** Lua checks (syntax, unknown functions) are done by rules/ through
** rv_rules_lint(); see rules.h. */
void rv_model_validate(const rv_model *m, rv_diags *diags);

/* Look-ups; return -1 / NULL when absent (not an error). */
int               rv_model_find_node(const rv_model *m, const char *id);
const rv_process *rv_model_find_process(const rv_model *m, const char *id);
int               rv_model_process_index(const rv_model *m, const char *id);

/* rv:startableBy: may role ("applicant") start through start event node
** (an index of a top-level start event of process pi)? The start event's own
** list wins; without one the process's list applies to its none start
** event only (a message start is opened only by its own list). */
bool              rv_model_startable(const rv_model *m, int pi, int node, const char *role);
/* The roles rv:startableBy may name. */
bool              rv_model_start_role_ok(const char *role, size_t len);

#endif
