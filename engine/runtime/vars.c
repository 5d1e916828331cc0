/*
** runtime/vars.c -- variable scopes and expression evaluation.
**
** Variables live on element instances: the root holds the process
** variables; multi-instance iterations hold their element variable and
** loopCounter; subprocesses hold what was written while inside them only
** if it already existed there. Reads see the whole chain, the innermost
** value winning. Writes go to the nearest scope that already has the
** name, else the nearest multi-instance iteration (so parallel
** iterations do not overwrite each other), else the root.
*/
#include <string.h>
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "core/buf.h"

static void merge_into(cJSON *dst, const cJSON *src){
  const cJSON *it;
  cJSON_ArrayForEach(it, src) {
    cJSON_DeleteItemFromObjectCaseSensitive(dst, it->string);
    cJSON_AddItemToObject(dst, it->string, cJSON_Duplicate(it, 1));
  }
}

/* The scopes from ei up to the root that hold variables, innermost first. */
static int var_chain(rv_inst *in, rv_ei *ei, rv_ei **chain){
  int n = 0;
  for (rv_ei *x = ei; x != NULL && n < 64; x = x->parent ? rv__ei_find(in, x->parent) : NULL)
    if (x->vars && x->vars->child) chain[n++] = x;
  return n;
}

/* Merged root first, inner overriding; the outermost scope is copied
** whole (no per-key replace: that was quadratic in the variables). */
static cJSON *merged(rv_ei **chain, int n){
  cJSON *o;
  if (n == 0) return cJSON_CreateObject();
  o = cJSON_Duplicate(chain[n - 1]->vars, 1);
  for (int i = n - 2; i >= 0; i--) merge_into(o, chain[i]->vars);
  return o;
}

cJSON *rv__vars_visible(rv_inst *in, rv_ei *ei){
  rv_ei *chain[64];
  return merged(chain, var_chain(in, ei, chain));
}

const cJSON *rv__vars_view(rv_inst *in, rv_ei *ei, cJSON **owned){
  rv_ei *chain[64];
  int n = var_chain(in, ei, chain);
  *owned = NULL;
  if (n == 1) return chain[0]->vars;     /* the usual case: only the root has variables */
  return *owned = merged(chain, n);
}

void rv__vars_set(rv_inst *in, rv_ei *ei, const char *name, cJSON *value){
  rv_ei *target = NULL, *mi = NULL, *root = NULL;
  cJSON *old = NULL;
  for (rv_ei *x = ei; x != NULL; x = x->parent ? rv__ei_find(in, x->parent) : NULL) {
    if (x->vars && (old = rv_json_member(x->vars, name)) != NULL) { target = x; break; }
    if (x->mi_inner && mi == NULL) mi = x;
    if (x->node < 0) root = x;
  }
  if (target == NULL) target = mi ? mi : root;
  if (target == NULL && (target = rv__ei_find(in, 1)) != NULL && target->vars)
    old = rv_json_member(target->vars, name);     /* not on the way up */
  if (target == NULL) { cJSON_Delete(value); return; }
  if (target->vars == NULL) target->vars = cJSON_CreateObject();
  if (old) cJSON_Delete(cJSON_DetachItemViaPointer(target->vars, old));   /* found above: no second scan */
  if (value->string == name && !(value->type & cJSON_StringIsConst))
    cJSON_AddItemToArray(target->vars, value);    /* its own key already: linked as it is */
  else
    cJSON_AddItemToObject(target->vars, name, value);
  in->dirty = true;
}

void rv__vars_merge(rv_inst *in, rv_ei *ei, const cJSON *obj){
  const cJSON *it;
  if (!cJSON_IsObject(obj) || ei == NULL) return;
  cJSON_ArrayForEach(it, obj) rv__vars_set(in, ei, it->string, cJSON_Duplicate(it, 1));
}

/* As rv__vars_merge, moving the members out of obj (left empty) instead
** of copying them: for objects the caller made and drops anyway (mapped
** outputs, a rule's result). */
void rv__vars_take(rv_inst *in, rv_ei *ei, cJSON *obj){
  if (!cJSON_IsObject(obj) || ei == NULL) return;
  while (obj->child) {
    cJSON *it = cJSON_DetachItemViaPointer(obj, obj->child);
    rv__vars_set(in, ei, it->string, it);    /* it keeps its key (rv__vars_set) */
  }
}

rv_status rv__eval(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, cJSON **out){
  cJSON *owned;
  const cJSON *vars = rv__vars_view(in, ei, &owned);
  rv_status rc = rv_rules_eval(in->def->rules, expr, vars, out, c->err);
  cJSON_Delete(owned);
  return rc;
}

rv_status rv__eval_bool(rv_ctx *c, rv_inst *in, rv_ei *ei, const char *expr, bool *out){
  cJSON *owned;
  const cJSON *vars = rv__vars_view(in, ei, &owned);
  rv_status rc = rv_rules_eval_bool(in->def->rules, expr, vars, out, c->err);
  cJSON_Delete(owned);
  return rc;
}

/* What each mapping reads of the answer (rv_rules_expr_reads: kind, and
** the path after `result`), and whether they may take their values out of
** it instead of copying them: none runs Lua (which could read any part of
** it), and no two paths over it overlap (result.a and result.a.b, or
** result itself). */
typedef struct map_read { int kind; const char *rest; size_t len; } map_read;

static bool may_take(const rv_mapping *m, int n, map_read *rd){
  for (int i = 0; i < n; i++) {
    rd[i].kind = rv_rules_expr_reads(m[i].expr, "result", &rd[i].rest, &rd[i].len);
    if (rd[i].kind == 0) return false;
    if (rd[i].kind != 2) continue;
    for (int j = 0; j < i; j++) {
      const map_read *x = rd[i].len <= rd[j].len ? &rd[i] : &rd[j], *y = x == &rd[i] ? &rd[j] : &rd[i];
      if (rd[j].kind == 2 && memcmp(x->rest, y->rest, x->len) == 0 &&
          (x->len == y->len || y->rest[x->len] == '.'))
        return false;
    }
  }
  return true;
}

static rv_status map(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_mapping *m, int n,
                     const cJSON *result, cJSON *takeable, cJSON **out){
  enum { SMALL = 16 };
  map_read small[SMALL], *rd = n <= SMALL ? small : rv_malloc(sizeof *rd * (size_t)n);
  cJSON *owned = NULL;
  const cJSON *vars = rv__vars_view(in, ei, &owned);
  cJSON *o = cJSON_CreateObject();
  rv_status rc = RV_OK;
  bool take = takeable != NULL && may_take(m, n, rd);
  *out = NULL;
  for (int i = 0; i < n && rc == RV_OK; i++) {
    cJSON *v = take && rd[i].kind == 2 ? rv_rules_take_path(takeable, rd[i].rest, rd[i].len) : NULL;
    /* `result` (an answer being mapped) is one more variable, over the others */
    if (v == NULL)
      rc = rv_rules_eval_extra(in->def->rules, m[i].expr, vars, "result", result, &v, c->err);
    if (rc == RV_OK) {
      cJSON_DeleteItemFromObjectCaseSensitive(o, m[i].target);
      cJSON_AddItemToObject(o, m[i].target, v);
    }
  }
  if (rd != small) rv_free(rd);
  cJSON_Delete(owned);
  if (rc != RV_OK) { cJSON_Delete(o); return rc; }
  *out = o;
  return RV_OK;
}

rv_status rv__map(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_mapping *m, int n,
                  const cJSON *result, cJSON **out){
  return map(c, in, ei, m, n, result, NULL, out);
}

rv_status rv__map_owned(rv_ctx *c, rv_inst *in, rv_ei *ei, const rv_mapping *m, int n,
                        cJSON *result, cJSON **out){
  return map(c, in, ei, m, n, result, result, out);
}

char *rv__render(const char *tmpl, const cJSON *vars){
  rv_buf b;
  const char *p = tmpl;
  rv_buf_init(&b, 8192);
  while (*p) {
    const char *open = strchr(p, '{'), *close;
    if (open == NULL) { rv_buf_adds(&b, p); break; }
    close = strchr(open, '}');
    if (close == NULL) { rv_buf_adds(&b, p); break; }
    rv_buf_add(&b, p, (size_t)(open - p));
    {
      char name[128];
      size_t len = (size_t)(close - open - 1);
      const cJSON *v;
      if (len >= sizeof name) len = sizeof name - 1;
      memcpy(name, open + 1, len);
      name[len] = 0;
      /* dotted paths reach into objects: {contract.no} */
      v = vars;
      for (char *seg = name, *dot; v && seg; seg = dot ? dot + 1 : NULL) {
        dot = strchr(seg, '.');
        if (dot) *dot = 0;
        v = rv_json_member(v, seg);
      }
      if (v && !cJSON_IsNull(v)) { char *t = rv_json_text(v); rv_buf_adds(&b, t); rv_free(t); }
    }
    p = close + 1;
  }
  return rv_buf_take(&b);
}
