/*
** rules/rules.h -- the Lua 5.4 bridge: sandbox, limits, JSON <-> Lua.
**
** One rv_rules per deployment: it owns one lua_State whose modules are
** the deployment's scripts (added with rv_rules_add_module), so running
** instances keep the rule text they started with.
**
** Sandbox: only base (minus dofile/loadfile/load/collectgarbage/print
** writes to stdout is replaced by a no-op logger), string (no dump; pattern
** functions wrapped: subject and pattern size limited), table, math (no
** random), utf8. No io, os, debug, package. `require(name)` resolves only
** modules added to this rv_rules (i.e. files under scripts/). Text chunks only.
** Injected: now() -> engine clock in ms; cal.* (Jalali calendar, see
** cal.h); validate.national_id/sheba/mobile.
**
** Limits: an instruction budget per evaluation and an allocator cap; both
** are sticky (once exhausted every further hook call raises again), so a
** script's own pcall cannot swallow them. setmetatable with __gc is refused.
**
** Variables cross as JSON: objects <-> tables with string keys, arrays <->
** sequences 1..n, integers stay integers (Money is integer Rials), null <->
** a sentinel `null` value (json.null). Each evaluation gets a fresh
** environment table whose __index is the sandbox globals, and the variables
** visible in the calling scope are its fields.
**
** Every function here never raises: a Lua failure becomes RV_SCRIPT with the
** message (and traceback) in err. Budget exhaustion says "instruction limit"
** or "memory limit" in err->msg.
*/
#ifndef RV_RULES_H
#define RV_RULES_H
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "core/clock.h"

typedef struct rv_rules rv_rules;

typedef struct rv_rules_limits {
  int64_t instructions;    /* per evaluation; 0 = default 10,000,000 */
  size_t  memory;          /* bytes for the whole lua_State; 0 = default 32 MiB */
  size_t  pattern_subject; /* max subject length for find/match/gmatch/gsub; 0 = 16 KiB */
} rv_rules_limits;

/* Create a sandboxed Lua state. limits may be NULL (defaults). clock is
** borrowed and must outlive r. Returns: new rules, free with rv_rules_free(). */
rv_status rv_rules_new(const rv_rules_limits *limits, rv_clock *clock,
                       rv_rules **out /* OUT */, rv_err *err);
void      rv_rules_free(rv_rules *r);   /* NULL is a no-op */

/* Register a module's source text under name ("supplementary" for
** scripts/supplementary.lua, "lib.calendar" for scripts/lib/calendar.lua).
** The source is copied; it is compiled (text mode only) on first require.
** A syntax error is reported here (RV_SCRIPT, "name:line: msg"). */
rv_status rv_rules_add_module(rv_rules *r, const char *name, const char *src,
                              size_t len, rv_err *err);

/* Evaluate a Lua expression (e.g. "age >= 60 and not insured"); vars is a
** JSON object (borrowed, may be NULL; it must not change during the call).
** A variable becomes a Lua value when the expression first reads it (so
** the JSON limits apply to the variables it reads, and pairs(_ENV) lists
** only those). Returns: new cJSON in *out (cJSON null for nil), caller
** frees with cJSON_Delete(). */
rv_status rv_rules_eval(rv_rules *r, const char *expr, const cJSON *vars,
                        cJSON **out /* OUT */, rv_err *err);
/* Same, with one more variable name = value (borrowed; NULL: none), which
** wins over a variable of that name: an output mapping's `result`. */
rv_status rv_rules_eval_extra(rv_rules *r, const char *expr, const cJSON *vars,
                              const char *name, const cJSON *value,
                              cJSON **out /* OUT */, rv_err *err);
/* What expr reads, for mappings over an answer called name: 0 anything
** (Lua runs it), 1 no part of name (a text without escapes, or a path
** over the other variables), 2 a plain path name(.field)*; then *rest is
** its text after name ("" or ".a.b", not NUL-terminated: *rest_len). */
int rv_rules_expr_reads(const char *expr, const char *name, const char **rest /* OUT */,
                        size_t *rest_len /* OUT */);
/* For an answer the caller owns and drops next: when expr is a plain path
** over name, the value it names is taken out of value and returned as
** rv_rules_eval_extra would have copied it (JSON -> Lua -> JSON: members
** sorted, -0 as 0, an empty array as {}). NULL when it is no such path,
** the field is absent, or the value would not come back from Lua so
** (value is then unchanged). Returns: new cJSON, caller frees. */
cJSON *rv_rules_take_extra(const char *expr, const char *name, cJSON *value);
/* The same for the part after name that rv_rules_expr_reads gave (for a
** caller that classified its mappings already). */
cJSON *rv_rules_take_path(cJSON *value, const char *rest, size_t rest_len);
/* Same, and take Lua truthiness of the result. */
rv_status rv_rules_eval_bool(rv_rules *r, const char *expr, const cJSON *vars,
                             bool *out /* OUT */, rv_err *err);

/* Run a script body (statements; its `return` value is the result) with
** vars visible as globals. Assignments to globals inside the body are
** collected: *out_vars receives a new JSON object of the globals the
** script set (NULL allowed if unwanted). */
rv_status rv_rules_run(rv_rules *r, const char *body, const cJSON *vars,
                       cJSON **out_result /* OUT */, cJSON **out_vars /* OUT */,
                       rv_err *err);

/* Call "module.func" (module registered above) with one argument, the
** JSON object arg (borrowed; NULL means an empty table; it must not change
** during the call). Its members become Lua values when the function first
** reads them; pairs/next/rawget and returning the table see all of them,
** writes win over them (docs/rules.md, "The argument of a function task").
** Expressions that are a quoted string or a path of variable names
** (rv_rules_eval*) are answered from the JSON without Lua, same value. */
rv_status rv_rules_call(rv_rules *r, const char *function, const cJSON *arg,
                        cJSON **out /* OUT */, rv_err *err);

/* Lint helpers: compile without running. */
rv_status rv_rules_check_expr(rv_rules *r, const char *expr, rv_err *err);
rv_status rv_rules_check_script(rv_rules *r, const char *body, rv_err *err);
/* The module loads (its top-level chunk runs under the limits) and
** exports a function under that name. */
rv_status rv_rules_check_function(rv_rules *r, const char *function, rv_err *err);

/* Figures for metrics and tests. */
size_t rv_rules_memory_used(const rv_rules *r);

#endif
