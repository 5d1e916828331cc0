/*
** runtime/timer.c -- when a timer falls due.
**
** timeDate: an ISO 8601 instant; timeDuration: now + duration; timeCycle:
** "R[n]/[start/]duration". A text starting with '=' is a Lua expression
** evaluated in the element's scope; it may return epoch milliseconds, an
** ISO instant or an ISO duration (counted from now). Every "now" is the
** engine clock, so timers are deterministic under a virtual clock.
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "cal/cal.h"

static rv_status from_text(rv_ctx *c, const char *s, int64_t *out){
  rv_duration d;
  rv_err e2;
  if (s[0] == 'P' && rv_duration_parse(s, &d, NULL) == RV_OK) {
    *out = rv_duration_add(c->now, &d);
    return RV_OK;
  }
  if (rv_datetime_parse(s, out, &e2) == RV_OK) return RV_OK;
  return rv_fail(c->err, RV_INVALID, "'%s' is neither an ISO 8601 date nor a duration", s);
}

rv_status rv__due_expr(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, int64_t *out){
  *out = 0;
  if (expr[0] == '=') {
    cJSON *v = NULL;
    rv_status rc = rv__eval(c, in, ei, expr + 1, &v);
    if (rc != RV_OK) return rc;
    if (cJSON_IsNumber(v)) *out = rv_num_i64(v->valuedouble);
    else if (cJSON_IsString(v)) rc = from_text(c, v->valuestring, out);
    else rc = rv_fail(c->err, RV_INVALID, "time expression `%s` gave neither a number nor a text", expr + 1);
    cJSON_Delete(v);
    return rc;
  }
  return from_text(c, expr, out);
}

rv_status rv__timer_due(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_node *n,
                        int64_t *due, int *repeat_left){
  rv_status rc;
  *due = 0;
  *repeat_left = 0;
  if (n->timer_expr == NULL) return rv_fail(c->err, RV_INVALID, "timer '%s' has no expression", n->id);
  if (n->timer_kind == RV_TIMER_CYCLE && n->timer_expr[0] != '=') {
    rv_cycle cy;
    rc = rv_cycle_parse(n->timer_expr, &cy, c->err);
    if (rc != RV_OK) return rc;
    *due = rv_cycle_next(&cy, c->now, 0);
    if (*due < 0) return rv_fail(c->err, RV_INVALID, "timer cycle '%s' never fires", n->timer_expr);
    *repeat_left = cy.repeat < 0 ? -1 : cy.repeat - 1;
    return RV_OK;
  }
  if (n->timer_kind == RV_TIMER_DURATION && n->timer_expr[0] != '=') {
    rv_duration d;
    rc = rv_duration_parse(n->timer_expr, &d, c->err);
    if (rc == RV_OK) *due = rv_duration_add(c->now, &d);
    return rc;
  }
  return rv__due_expr(c, in, ei, n->timer_expr, due);
}

rv_status rv__timer_arm(rv_ctx *c, rv_inst *in, rv_ei *ei, int node){
  const rv_node *n = rv__node(in, node);
  int64_t due;
  int repeat;
  rv_status rc = rv__timer_due(c, in, ei, n, &due, &repeat);
  if (rc != RV_OK) return rc;
  rv__side_mark(in, ei, RV_SIDE_TIMER);
  return rv_store_exec(c->e->st, c->err,
    "INSERT INTO timers(instance_id, ei, element_id, definition_id, due, repeat_left, fired, armed)"
    " VALUES(?,?,?,?,?,?,0,?)", "iitiiii",
    in->id, ei->key, n->id, in->def->id, due, (int64_t)repeat, c->now);
}
