/*
** model/validate.c -- graph and settings checks on a parsed rv_model.
**
** Runs after rv_model_parse_* succeeded; the model is only read. Parse
** already guarantees that every flow has a source and target in one scope
** and that every boundary has an attached node, so the checks here are
** about meaning: which events may go where, what each task needs to run,
** reachability, gateways that can get stuck, timer texts that do not parse.
** Lua syntax is not checked here (lint/ does it through rules/).
**
** Errors make a deployment fail; warnings are advice for the analyst.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cal/cal.h"
#include "core/mem.h"
#include "model/model.h"

typedef struct vctx { const rv_model *m; rv_diags *d; } vctx;

__attribute__((format(printf, 3, 4)))
static void verr(vctx *V, int line, const char *fmt, ...){
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  rv_diags_add(V->d, RV_DIAG_ERROR, line, "%s", buf);
}

__attribute__((format(printf, 3, 4)))
static void vwarn(vctx *V, int line, const char *fmt, ...){
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  rv_diags_add(V->d, RV_DIAG_WARNING, line, "%s", buf);
}

static bool is_activity(rv_elem_type t){
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

static bool is_gateway(rv_elem_type t){
  return t == RV_ELEM_EXCLUSIVE_GATEWAY || t == RV_ELEM_PARALLEL_GATEWAY ||
         t == RV_ELEM_INCLUSIVE_GATEWAY || t == RV_ELEM_EVENT_BASED_GATEWAY;
}

static const char *ev_name(rv_evdef ev){
  switch (ev) {
  case RV_EV_NONE: return "none";
  case RV_EV_TIMER: return "timer";
  case RV_EV_MESSAGE: return "message";
  case RV_EV_SIGNAL: return "signal";
  case RV_EV_ERROR: return "error";
  case RV_EV_ESCALATION: return "escalation";
  case RV_EV_TERMINATE: return "terminate";
  }
  return "?";
}

/*--- Event kinds allowed per element -------------------------------------*/

static bool in_event_sub(const rv_model *m, const rv_node *n){
  return n->scope >= 0 && m->nodes[n->scope].triggered_by_event;
}

static void check_event_kind(vctx *V, const rv_node *n){
  unsigned ok = 0;
#define B(e) (1u << (e))
  switch (n->type) {
  case RV_ELEM_START_EVENT:
    ok = B(RV_EV_NONE) | B(RV_EV_TIMER) | B(RV_EV_MESSAGE) | B(RV_EV_SIGNAL);
    if (in_event_sub(V->m, n)) ok |= B(RV_EV_ERROR) | B(RV_EV_ESCALATION);
    break;
  case RV_ELEM_END_EVENT:
    ok = B(RV_EV_NONE) | B(RV_EV_ERROR) | B(RV_EV_TERMINATE) | B(RV_EV_SIGNAL) |
         B(RV_EV_ESCALATION) | B(RV_EV_MESSAGE);
    break;
  case RV_ELEM_INTERMEDIATE_CATCH:
    ok = B(RV_EV_TIMER) | B(RV_EV_MESSAGE) | B(RV_EV_SIGNAL);
    break;
  case RV_ELEM_INTERMEDIATE_THROW:
    ok = B(RV_EV_NONE) | B(RV_EV_SIGNAL) | B(RV_EV_ESCALATION) | B(RV_EV_MESSAGE);
    break;
  case RV_ELEM_BOUNDARY_EVENT:
    ok = B(RV_EV_TIMER) | B(RV_EV_MESSAGE) | B(RV_EV_SIGNAL) | B(RV_EV_ERROR) |
         B(RV_EV_ESCALATION);
    break;
  default:
    return;
  }
  if (!(ok & B(n->ev))) {
    verr(V, n->line, "%s '%s': %s event definition not supported here",
         rv_elem_name(n->type), n->id, ev_name(n->ev));
  }
#undef B
  if ((n->ev == RV_EV_MESSAGE || n->ev == RV_EV_SIGNAL) && n->ref_name == NULL &&
      n->type != RV_ELEM_RECEIVE_TASK)
    verr(V, n->line, "%s '%s' has a %s event definition without %sRef",
         rv_elem_name(n->type), n->id, ev_name(n->ev), ev_name(n->ev));
  if (n->type == RV_ELEM_BOUNDARY_EVENT && n->ev == RV_EV_ERROR && !n->interrupting)
    verr(V, n->line, "error boundary event '%s' must be interrupting", n->id);
}

/*--- Timers and ISO texts ------------------------------------------------*/

static void check_timer(vctx *V, const rv_node *n){
  rv_err e;
  rv_status rc = RV_OK;
  const char *t = n->timer_expr;

  if (n->ev != RV_EV_TIMER) return;
  if (t == NULL || *t == 0) {
    verr(V, n->line, "timer of '%s' has an empty expression", n->id);
    return;
  }
  if (t[0] == '=') return;          /* Lua, checked by lint */
  memset(&e, 0, sizeof e);
  switch (n->timer_kind) {
  case RV_TIMER_DATE: { int64_t ms; rc = rv_datetime_parse(t, &ms, &e); break; }
  case RV_TIMER_DURATION: { rv_duration d; rc = rv_duration_parse(t, &d, &e); break; }
  case RV_TIMER_CYCLE: { rv_cycle c; rc = rv_cycle_parse(t, &c, &e); break; }
  default: break;
  }
  if (rc != RV_OK) {
    static const char *const kind[] = { "?", "timeDate", "timeDuration", "timeCycle" };
    verr(V, n->line, "timer of '%s': %s '%s' is not valid ISO 8601 (write \"=lua\" for "
         "an expression)%s%s", n->id, kind[n->timer_kind], t, e.msg[0] ? ": " : "", e.msg);
  }
}

static void check_due(vctx *V, const rv_node *n){
  rv_err e;
  rv_duration d;
  int64_t ms;
  memset(&e, 0, sizeof e);
  if (n->due != NULL && n->due[0] != '=' &&
      rv_duration_parse(n->due, &d, &e) != RV_OK &&
      rv_datetime_parse(n->due, &ms, &e) != RV_OK)
    verr(V, n->line, "due date of '%s': '%s' is neither an ISO 8601 duration nor a date "
         "(write \"=lua\" for an expression)", n->id, n->due);
  memset(&e, 0, sizeof e);
  if (n->retry_backoff != NULL && rv_duration_parse(n->retry_backoff, &d, &e) != RV_OK)
    verr(V, n->line, "rv:retryBackoff of '%s': '%s' is not an ISO 8601 duration",
         n->id, n->retry_backoff);
  memset(&e, 0, sizeof e);
  if (n->sms_retry_backoff != NULL && rv_duration_parse(n->sms_retry_backoff, &d, &e) != RV_OK)
    verr(V, n->line, "rv:smsRetryBackoff of '%s': '%s' is not an ISO 8601 duration",
         n->id, n->sms_retry_backoff);
  memset(&e, 0, sizeof e);
  if (n->message_ttl != NULL && rv_duration_parse(n->message_ttl, &d, &e) != RV_OK)
    verr(V, n->line, "rv:messageTtl of '%s': '%s' is not an ISO 8601 duration",
         n->id, n->message_ttl);
  else if (n->message_ttl != NULL && (n->ev != RV_EV_MESSAGE || n->adapter != NULL ||
           (n->type != RV_ELEM_INTERMEDIATE_THROW && n->type != RV_ELEM_END_EVENT)))
    vwarn(V, n->line, "rv:messageTtl of '%s' does nothing: only a message throw or end event "
          "without rv:adapter has one", n->id);
  if ((n->sms_retry_backoff != NULL || n->sms_retries >= 0) && n->sms == NULL)
    vwarn(V, n->line, "'%s' has rv:smsRetries or rv:smsRetryBackoff but no rv:sms: they do nothing",
          n->id);
}

/*--- Per-node checks -----------------------------------------------------*/

static void check_gateway(vctx *V, const rv_node *n){
  const rv_model *m = V->m;
  int n_cond = 0, n_plain = 0;

  if (n->type == RV_ELEM_EVENT_BASED_GATEWAY) {
    for (int i = 0; i < n->n_out; i++) {
      const rv_node *t = &m->nodes[m->flows[n->out[i]].target];
      bool ok = t->type == RV_ELEM_RECEIVE_TASK ||
                (t->type == RV_ELEM_INTERMEDIATE_CATCH &&
                 (t->ev == RV_EV_TIMER || t->ev == RV_EV_MESSAGE || t->ev == RV_EV_SIGNAL));
      if (!ok)
        verr(V, n->line, "event-based gateway '%s' leads to %s '%s': only intermediate "
             "catch events (timer, message, signal) and receive tasks may follow it",
             n->id, rv_elem_name(t->type), t->id);
    }
    return;
  }
  for (int i = 0; i < n->n_out; i++) {
    const rv_flow *f = &m->flows[n->out[i]];
    if (f->is_default) continue;
    if (f->condition != NULL) n_cond++; else n_plain++;
  }
  if (n->type == RV_ELEM_PARALLEL_GATEWAY) {
    if (n_cond > 0)
      vwarn(V, n->line, "parallel gateway '%s': conditions on its outgoing flows are ignored", n->id);
    return;
  }
  if (n->default_flow >= 0 && m->flows[n->default_flow].condition != NULL)
    vwarn(V, m->flows[n->default_flow].line, "default flow '%s' has a condition; it is ignored",
          m->flows[n->default_flow].id);
  if (n->type == RV_ELEM_EXCLUSIVE_GATEWAY && n->n_out > 1) {
    for (int i = 0; i < n->n_out; i++) {
      const rv_flow *f = &m->flows[n->out[i]];
      if (!f->is_default && f->condition == NULL)
        vwarn(V, f->line, "flow '%s' leaves exclusive gateway '%s' without a condition and "
              "is not its default", f->id, n->id);
    }
  }
  if (n->default_flow < 0 && n_cond > 0)   /* some flow may be false, nothing catches it */
    vwarn(V, n->line, "gateway '%s' has no default flow and its conditions may all be false", n->id);
}

static void check_portal(vctx *V, const rv_node *n);

static void check_node(vctx *V, int i){
  const rv_model *m = V->m;
  const rv_node *n = &m->nodes[i];

  check_event_kind(V, n);
  check_timer(V, n);
  check_due(V, n);
  check_portal(V, n);

  if (n->type == RV_ELEM_END_EVENT && n->n_out > 0)
    verr(V, n->line, "end event '%s' has outgoing sequence flows", n->id);
  if (n->type == RV_ELEM_START_EVENT && n->n_in > 0)
    verr(V, n->line, "start event '%s' has incoming sequence flows", n->id);
  if (n->type == RV_ELEM_BOUNDARY_EVENT && n->n_in > 0)
    verr(V, n->line, "boundary event '%s' has incoming sequence flows", n->id);
  if (n->triggered_by_event && (n->n_in > 0 || n->n_out > 0))
    verr(V, n->line, "event subprocess '%s' must have no incoming or outgoing flows", n->id);
  if (n->type == RV_ELEM_BOUNDARY_EVENT && n->attached_to >= 0) {
    const rv_node *a = &m->nodes[n->attached_to];
    if (!is_activity(a->type))
      verr(V, n->line, "boundary event '%s' is attached to %s '%s', which is not an activity",
           n->id, rv_elem_name(a->type), a->id);
    else if (a->scope != n->scope || a->process != n->process)
      verr(V, n->line, "boundary event '%s' is attached to '%s' in another scope", n->id, a->id);
  }
  if ((n->type == RV_ELEM_SERVICE_TASK || n->type == RV_ELEM_SEND_TASK) && n->adapter == NULL)
    verr(V, n->line, "%s '%s' has no adapter (set rv:adapter)", rv_elem_name(n->type), n->id);
  if (n->type == RV_ELEM_BUSINESS_RULE_TASK && n->function == NULL)
    verr(V, n->line, "businessRuleTask '%s' has no rv:function", n->id);
  if (n->type == RV_ELEM_SCRIPT_TASK && n->function == NULL && n->script == NULL)
    verr(V, n->line, "scriptTask '%s' has neither a <script> nor rv:function", n->id);
  if (n->type == RV_ELEM_CALL_ACTIVITY && (n->called_element == NULL || !*n->called_element))
    verr(V, n->line, "callActivity '%s' has no calledElement", n->id);
  if (n->mi && (n->mi_collection == NULL || !*n->mi_collection) &&
      (n->mi_cardinality == NULL || !*n->mi_cardinality))
    verr(V, n->line, "multi-instance '%s' has no collection (set rv:collection) and no loopCardinality", n->id);
  if (n->mi && n->mi_collection != NULL && n->mi_cardinality != NULL)
    vwarn(V, n->line, "multi-instance '%s' has both a collection and a loopCardinality: the collection "
          "decides how many instances run", n->id);
  if (n->mi && n->mi_output_collection != NULL && n->mi_output_element == NULL)
    vwarn(V, n->line, "multi-instance '%s' has rv:outputCollection but no rv:outputElement", n->id);
  if (is_gateway(n->type)) check_gateway(V, n);
  if (n->default_flow >= 0 && !is_gateway(n->type) && m->flows[n->default_flow].condition != NULL)
    vwarn(V, m->flows[n->default_flow].line, "default flow '%s' has a condition; it is ignored",
          m->flows[n->default_flow].id);

  bool msg_catch = n->ev == RV_EV_MESSAGE &&
    (n->type == RV_ELEM_INTERMEDIATE_CATCH || n->type == RV_ELEM_BOUNDARY_EVENT ||
     n->type == RV_ELEM_RECEIVE_TASK);
  if (msg_catch && n->correlation_key == NULL)
    vwarn(V, n->line, "'%s' has no correlation key: correlates by name only", n->id);

  if (n->type == RV_ELEM_SUB_PROCESS) {
    int starts = 0, plain = 0;
    for (int k = 0; k < n->n_children; k++) {
      const rv_node *c = &m->nodes[n->children[k]];
      if (c->type != RV_ELEM_START_EVENT) continue;
      starts++;
      if (c->ev == RV_EV_NONE) plain++;
    }
    if (n->triggered_by_event) {
      if (starts != 1)
        verr(V, n->line, "event subprocess '%s' must have exactly one start event", n->id);
      for (int k = 0; k < n->n_children; k++) {
        const rv_node *c = &m->nodes[n->children[k]];
        if (c->type == RV_ELEM_START_EVENT && c->ev == RV_EV_NONE)
          verr(V, c->line, "start event '%s' of event subprocess '%s' needs an event definition",
               c->id, n->id);
      }
    } else {
      if (plain == 0)
        verr(V, n->line, "subProcess '%s' has no none start event", n->id);
      if (starts > plain)
        verr(V, n->line, "subProcess '%s' has a start event with an event definition "
             "(only event subprocesses may)", n->id);
    }
  }
}

/*--- Portal attributes: rv:startableBy, rv:display --------------------------*/

/* Each comma-separated name of an rv:startableBy is a role that may start. */
static void check_start_roles(vctx *V, int line, const char *what, const char *list){
  const char *p = list;
  if (list == NULL) return;
  if (!*list) { verr(V, line, "rv:startableBy of %s is empty", what); return; }
  while (p) {
    const char *c = strchr(p, ',');
    const char *e = c ? c : p + strlen(p);
    while (p < e && *p == ' ') p++;
    while (e > p && e[-1] == ' ') e--;
    if (!rv_model_start_role_ok(p, (size_t)(e - p)))
      verr(V, line, "rv:startableBy of %s names '%.*s': only applicant and organisation "
           "(operators may always start)", what, (int)(e - p), p);
    p = c ? c + 1 : NULL;
  }
}

static bool lua_name(const char *s, size_t n){
  if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) return false;
  return true;
}

static void check_portal(vctx *V, const rv_node *n){
  if (n->startable_by) {
    char what[300];
    snprintf(what, sizeof what, "'%s'", n->id);
    if (n->type != RV_ELEM_START_EVENT || n->scope != -1)
      verr(V, n->line, "rv:startableBy on '%s': only a process's own start events may carry it", n->id);
    else if (n->ev != RV_EV_NONE && n->ev != RV_EV_MESSAGE)
      verr(V, n->line, "rv:startableBy on '%s': only none and message start events can be started "
           "through the API", n->id);
    else check_start_roles(V, n->line, what, n->startable_by);
  }
  if (n->display) {
    const char *p = n->display;
    if (n->type != RV_ELEM_USER_TASK)
      vwarn(V, n->line, "rv:display on %s '%s' is ignored (user tasks only)", rv_elem_name(n->type), n->id);
    while (p) {
      const char *c = strchr(p, ',');
      const char *e = c ? c : p + strlen(p);
      while (p < e && *p == ' ') p++;
      while (e > p && e[-1] == ' ') e--;
      if (!lua_name(p, (size_t)(e - p)))
        verr(V, n->line, "rv:display of '%s': '%.*s' is not a variable name", n->id, (int)(e - p), p);
      p = c ? c + 1 : NULL;
    }
  }
}

/*--- Processes and reachability -----------------------------------------*/

static void check_process(vctx *V, int pi){
  const rv_process *p = &V->m->processes[pi];
  bool ok = false;
  if (p->n_children == 0 && p->n_event_subs == 0 && !p->executable) return;
  for (int i = 0; i < p->n_starts; i++) {
    rv_evdef ev = V->m->nodes[p->starts[i]].ev;
    ok |= ev == RV_EV_NONE || ev == RV_EV_MESSAGE || ev == RV_EV_TIMER || ev == RV_EV_SIGNAL;
  }
  if (!ok) verr(V, p->line, "process '%s' has no none, message, timer or signal start event", p->id);
  if (p->startable_by) {
    char what[300];
    bool none = false;
    snprintf(what, sizeof what, "process '%s'", p->id);
    check_start_roles(V, p->line, what, p->startable_by);
    for (int i = 0; i < p->n_starts; i++) none |= V->m->nodes[p->starts[i]].ev == RV_EV_NONE;
    if (!none)
      vwarn(V, p->line, "rv:startableBy of process '%s' has no effect: it opens the none start event, "
            "and the process has none (put it on the message start event)", p->id);
  }
}

/* Mark node i and everything it leads to. Iterative (explicit stack) so a
** long chain in a hostile document cannot blow the C stack. */
static void reach(const rv_model *m, bool *seen, int *stack, int start){
  int sp = 0;
  if (seen[start]) return;
  seen[start] = true;
  stack[sp++] = start;
  while (sp > 0) {
    const rv_node *n = &m->nodes[stack[--sp]];
    for (int k = 0; k < n->n_out + n->n_boundaries + n->n_children + n->n_event_subs; k++) {
      int t;
      if (k < n->n_out) t = m->flows[n->out[k]].target;
      else if (k < n->n_out + n->n_boundaries) t = n->boundaries[k - n->n_out];
      else if (k < n->n_out + n->n_boundaries + n->n_children) {
        t = n->children[k - n->n_out - n->n_boundaries];
        if (m->nodes[t].type != RV_ELEM_START_EVENT) continue;  /* a subprocess enters at its starts */
      } else {
        t = n->event_subs[k - n->n_out - n->n_boundaries - n->n_children];
      }
      if (t < 0 || seen[t]) continue;
      seen[t] = true;
      stack[sp++] = t;
    }
  }
}

static void check_reachability(vctx *V){
  const rv_model *m = V->m;
  bool *seen;
  int *stack;

  if (m->n_nodes == 0) return;
  seen = rv_calloc((size_t)m->n_nodes, sizeof *seen);
  stack = rv_malloc(sizeof *stack * (size_t)m->n_nodes);
  for (int pi = 0; pi < m->n_processes; pi++) {
    const rv_process *p = &m->processes[pi];
    for (int i = 0; i < p->n_starts; i++) reach(m, seen, stack, p->starts[i]);
    for (int i = 0; i < p->n_event_subs; i++) reach(m, seen, stack, p->event_subs[i]);
  }
  /* Event subprocesses inside subprocesses are reached through their
  ** parent; those inside unreachable parents stay unreported below. */
  for (int i = 0; i < m->n_nodes; i++) {
    const rv_node *n = &m->nodes[i];
    if (seen[i]) continue;
    if (n->scope >= 0 && !seen[n->scope]) continue;   /* the container is reported */
    if (n->type == RV_ELEM_BOUNDARY_EVENT && n->attached_to >= 0 && !seen[n->attached_to])
      continue;                                         /* its activity is reported */
    vwarn(V, n->line, "%s '%s' is unreachable from any start event",
          rv_elem_name(n->type), n->id);
  }
  rv_free(seen);
  rv_free(stack);
}

void rv_model_validate(const rv_model *m, rv_diags *diags){
  vctx V = { m, diags };
  if (m == NULL) return;
  for (int pi = 0; pi < m->n_processes; pi++) check_process(&V, pi);
  for (int i = 0; i < m->n_nodes; i++) check_node(&V, i);
  check_reachability(&V);
}
