/*
** rules/rules.c -- the Lua 5.4 bridge: sandbox, limits, JSON <-> Lua.
**
** Shape of the state (see rules.h for the contract):
**
**   registry["rv.sg"]      sandbox globals SG (never reachable by scripts)
**   registry["rv.envmt"]   {__index = SG, __metatable = false}: metatable of
**                          every per-call / per-module environment
**   registry["rv.frozen"]  set of read-only proxies (string, math, cal, ...)
**   registry["rv.modsrc"]  module name -> compiled chunk (rv_rules_add_module)
**   registry["rv.loaded"]  module name -> module value (require cache)
**   registry["rv.ecache"]  expression text -> function(_ENV) (compile cache)
**   registry["rv.scache"]  script text -> function(_ENV)
**
** Expressions and scripts are compiled as "return function(_ENV) ... end";
** the outer chunk's own _ENV is set to nil, so text that closes the function
** early cannot touch SG. Each evaluation calls the cached function with a
** fresh environment table, so closures never share an _ENV across calls.
**
** Invariants:
**   - Every entry into Lua is lua_pcall of a C function (protected()); no
**     Lua API call that can raise runs outside it. The panic handler aborts.
**   - C memory built while Lua may raise (cJSON results) is anchored in
**     struct call before it is filled, so a longjmp leaks nothing.
**   - Budgets are sticky: once r->killed is set, the count hook re-arms
**     with count 1 and raises on every instruction, in every coroutine,
**     until the host pcall returns; then the flag is cleared.
**   - SG and the library tables are never writable by scripts: library
**     tables are proxies (__newindex raises; rawset wrapper refuses; their
**     metatables are protected), _G is the per-call env, and the string
**     metatable is protected.
**   - Work done in C out of the hook's sight is charged to the same budget:
**     every allocation (8 + bytes/16), pcall/xpcall/resume/yield (50),
**     table.move/insert/remove/sort/concat/unpack (elements), pattern calls
**     (estimated cost). A wall-clock deadline (max(1 s, budget / 5M/s))
**     is the last line for what remains (e.g. == on huge strings).
** Beyond rules.h's list, the coroutine library is opened (hooks are
** inherited by coroutines in 5.4; yield/resume are charged).
** Never: open io/os/debug/package, load binary chunks, run __gc or __close
** code, or let a Lua message handler run inside the count hook (hooks are
** off there), hence the C xpcall.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "rules/rules.h"
#include "core/json.h"
#include "cal/cal.h"
#include "core/mem.h"

#if LUA_VERSION_NUM != 504
#error "ravand's rules bridge needs Lua 5.4"
#endif

#define DEFAULT_INSTRUCTIONS INT64_C(10000000)
#define DEFAULT_MEMORY       ((size_t)32 << 20)
#define DEFAULT_SUBJECT      ((size_t)16 << 10)
#define HOOK_COUNT           200      /* instructions between hook calls */
#define ALLOC_CHARGE_BASE    8        /* instructions charged per allocation */
#define ALLOC_CHARGE_SHIFT   4        /* plus 1 per 16 bytes allocated */
#define PCALL_CHARGE         50       /* setjmp/longjmp cost of a pcall */
#define JSON_MAX_DEPTH       64
#define CACHE_MAX            1024     /* compiled expressions/scripts kept */
#define PATTERN_MAX_QUANT    2        /* '-' and '*' allowed in one pattern */
#define PATTERN_MAX_COST     3.0e7    /* estimated worst-case match steps */

typedef enum { KILL_NONE = 0, KILL_INSTR, KILL_MEM, KILL_TIME } kill_reason;

/* Lua's small blocks (strings, tables, closures) are kept for reuse in
** lists per size (l_alloc): Lua tells the size on every free, so no header
** is needed, and most blocks of a call are freed by the next. The lists
** belong to one rules object (one Lua state, one thread). */
#define LSMALL_STEP 16
#if defined(__SANITIZE_ADDRESS__)
#define LSMALL_MAX  0             /* AddressSanitizer sees every block */
#else
#define LSMALL_MAX  256
#endif

struct rv_rules {
  lua_State      *L;
  rv_clock       *clock;          /* borrowed */
  rv_rules_limits lim;            /* defaults filled in */
  size_t          mem_used;
  int64_t         budget;         /* instructions left in this evaluation */
  bool            armed;          /* inside an evaluation: budgets apply */
  kill_reason     killed;         /* sticky until the host pcall returns */
  struct timespec deadline;       /* wall-clock safety net */
  unsigned        hook_calls;
  const void     *refused_ptr;    /* last refused allocation (see l_alloc) */
  size_t          refused_size;
  bool            refused_pending;
  int             ncache;
  bool            no_traceback;   /* compile errors: message only */
  const cJSON    *lazy_vars;      /* the variables of the expression being evaluated */
  const char     *lazy_xname;     /* ... one more of them (rv_rules_eval_extra) */
  const cJSON    *lazy_xval;
  lua_Integer     lazy_call;      /* ... and its number (push_lazy_env) */
  const cJSON    *larg_vars;      /* the variables of the rv:function call running */
  const void     *larg_ptr;       /* ... its argument table (push_lazy_arg) */
  bool            larg_full;      /* ... every variable already converted */
  unsigned char  *larg_seen;      /* ... per variable: read, written or converted */
  int             larg_n, larg_cap;
  bool            lprox_anchored; /* ... the registry holds a call's nested tables */
  struct lprox   *lprox;          /* ... the objects inside it read so far (lprox_push) */
  int             n_lprox, cap_lprox;
  void           *small[LSMALL_MAX / LSMALL_STEP + 1];   /* freed small blocks (l_alloc) */
};

/* An object inside an rv:function's argument, a table converted member by
** member as the function reads it (like the argument itself). */
typedef struct lprox {
  const void    *t;               /* the table (lua_topointer) */
  const cJSON   *obj;
  int            depth;           /* of obj */
  int            n;               /* members of obj */
  unsigned char *seen;            /* per member: read, written or converted */
  bool           full;
} lprox;

static char json_null_tag;         /* &json_null_tag is json.null */
#define JSON_NULL ((void *)&json_null_tag)

static const char *const kill_msg[] = {
  "", "instruction limit exceeded", "memory limit exceeded",
  "time limit exceeded"
};

static rv_rules *getr(lua_State *L){
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/*--- Allocator and hook -------------------------------------------------*/

/* Enforces lim.memory. Lua retries a refused request once after an
** emergency full GC; a second refusal of the same request is final and,
** during an evaluation, kills it (sticky, like the instruction budget).
** Allocations are also charged to the instruction budget, so copying work
** done inside C functions (s:upper(), .., table.concat) is paid for. */
static void *small_get(rv_rules *r, size_t n){
  size_t k = (n + LSMALL_STEP - 1) / LSMALL_STEP;
  void *p;
  if (n > LSMALL_MAX) return malloc(n);
  if ((p = r->small[k]) != NULL) { r->small[k] = *(void **)p; return p; }
  return malloc(k * LSMALL_STEP);
}

static void small_put(rv_rules *r, void *p, size_t n){
  size_t k = (n + LSMALL_STEP - 1) / LSMALL_STEP;
  if (p == NULL) return;
  if (n > LSMALL_MAX) { free(p); return; }
  *(void **)p = r->small[k];
  r->small[k] = p;
}

/* realloc over the lists: a block stays where its size class stays. */
static void *small_realloc(rv_rules *r, void *p, size_t osize, size_t nsize){
  void *q;
  if (p == NULL) return small_get(r, nsize);
  if (osize > LSMALL_MAX && nsize > LSMALL_MAX) return realloc(p, nsize);
  if (osize <= LSMALL_MAX && nsize <= LSMALL_MAX &&
      (osize + LSMALL_STEP - 1) / LSMALL_STEP == (nsize + LSMALL_STEP - 1) / LSMALL_STEP) return p;
  if ((q = small_get(r, nsize)) == NULL) return NULL;
  memcpy(q, p, osize < nsize ? osize : nsize);
  small_put(r, p, osize);
  return q;
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize){
  rv_rules *r = ud;
  void *p;

  if (ptr == NULL) osize = 0;              /* osize then encodes a type */
  if (nsize == 0) {
    small_put(r, ptr, osize);
    r->mem_used -= osize;
    return NULL;
  }
  if (nsize > osize && (nsize - osize > r->lim.memory - r->mem_used
                        || r->mem_used > r->lim.memory)) {
    if (r->refused_pending && r->refused_ptr == ptr && r->refused_size == nsize) {
      r->refused_pending = false;
      if (r->armed && r->killed == KILL_NONE) r->killed = KILL_MEM;
    } else {
      r->refused_pending = true;
      r->refused_ptr = ptr;
      r->refused_size = nsize;
    }
    return NULL;
  }
  p = small_realloc(r, ptr, osize, nsize);
  if (p == NULL) return NULL;
  r->mem_used = r->mem_used - osize + nsize;
  if (nsize > osize) {
    r->refused_pending = false;
    if (r->armed)
      r->budget -= ALLOC_CHARGE_BASE + (int64_t)((nsize - osize) >> ALLOC_CHARGE_SHIFT);
  }
  return p;
}

static bool past_deadline(const rv_rules *r){
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > r->deadline.tv_sec
      || (now.tv_sec == r->deadline.tv_sec && now.tv_nsec >= r->deadline.tv_nsec);
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* Raise the sticky kill: re-arm this thread's hook at count 1 and raise a
** message string made at setup (no allocation, so it works at the cap). */
static int kill_now(lua_State *L, rv_rules *r){    /* [-0, +1, v] */
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, kill_msg[r->killed]);
  return lua_error(L);
}

static void count_hook(lua_State *L, lua_Debug *ar){
  rv_rules *r = getr(L);
  int count = lua_gethookcount(L);

  (void)ar;
  if (!r->armed) return;
  if (r->killed == KILL_NONE) {
    r->budget -= count;
    if (r->budget <= 0) r->killed = KILL_INSTR;
    else if ((++r->hook_calls & 15) == 0 && past_deadline(r)) r->killed = KILL_TIME;
  }
  if (r->killed != KILL_NONE) {
    kill_now(L, r);
    return;
  }
  if (count != HOOK_COUNT)                 /* a thread left at count 1 */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

/* Charge work done inside a C function (table.move, sort, ...) to the
** instruction budget; raises the sticky kill when it runs out. */
static void charge(lua_State *L, double units){
  rv_rules *r = getr(L);
  if (!r->armed) return;
  if (units > 4.0e18) units = 4.0e18;
  r->budget -= (int64_t)units;
  if (r->budget <= 0 && r->killed == KILL_NONE) r->killed = KILL_INSTR;
  if (r->killed != KILL_NONE) kill_now(L, r);
}

static int at_panic(lua_State *L){
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "ravand: unprotected Lua error: %s\n", msg ? msg : "?");
  abort();
  return 0;
}

/*--- JSON -> Lua --------------------------------------------------------*/

static void push_json(lua_State *L, const cJSON *j, int depth){  /* [-0, +1, m] */
  if (depth > JSON_MAX_DEPTH)
    luaL_error(L, "JSON nesting deeper than %d", JSON_MAX_DEPTH);
  luaL_checkstack(L, 4, "JSON too deep");
  if (cJSON_IsObject(j)) {
    const cJSON *c;
    lua_createtable(L, 0, cJSON_GetArraySize(j));
    cJSON_ArrayForEach(c, j) {
      push_json(L, c, depth + 1);
      lua_setfield(L, -2, c->string ? c->string : "");
    }
  } else if (cJSON_IsArray(j)) {
    const cJSON *c;
    lua_Integer i = 0;
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    cJSON_ArrayForEach(c, j) {
      push_json(L, c, depth + 1);
      lua_rawseti(L, -2, ++i);
    }
  } else if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) <= 9007199254740992.0)
      lua_pushinteger(L, (lua_Integer)d);
    else
      lua_pushnumber(L, d);
  } else if (cJSON_IsString(j)) {
    lua_pushstring(L, j->valuestring);
  } else if (cJSON_IsBool(j)) {
    lua_pushboolean(L, cJSON_IsTrue(j));
  } else if (cJSON_IsNull(j)) {
    lua_pushlightuserdata(L, JSON_NULL);
  } else {
    luaL_error(L, "unsupported JSON value");
  }
}

/*--- rv:function arguments, converted on first read ---------------------*/

/* An rv:function call gets the case's variables as its argument table, and
** a variable is converted from JSON when the function first reads it: a
** rule reads a handful of a case's variables, and converting all of them
** (person records, contribution summaries) for every call was most of the
** time those calls took. To the function it is a plain table:
**   - a read converts the variable once and keeps it in the table, so a
**     nested table read twice is the same table and writes into it stick;
**   - writes (v.x = 1, v.x = nil, rawset) win over the variable for the
**     rest of the call: a variable is never converted once its key has
**     been read or written (a "seen" byte per variable, r->larg_seen);
**   - pairs(v), next(v), rawget(v, k), and turning v (or a table holding
**     it) back into JSON first convert every variable not yet seen;
**   - other keys read nil: no globals show through.
** Differences: getmetatable(v) is false and setmetatable(v, mt) is refused.
** A table kept past its call (a module's upvalue) keeps what was read and
** sees no more variables: the JSON behind it belongs to that call. The
** current table is known by its address (r->larg_ptr), which protected()
** keeps anchored on the stack for the whole call. */
static char larg_mt_key;                   /* registry key (its address) */

static int l_next(lua_State *L);

static bool is_larg(lua_State *L, int idx){
  rv_rules *r = getr(L);
  return r->larg_ptr != NULL && lua_topointer(L, idx) == r->larg_ptr;
}

/* Nested objects of the argument are converted on first read too: a rule
** reads the role of a person record, not its fifteen fields. Each such
** table shares the argument's metatable and is known by its address while
** the call runs (anchored in a registry table, so no new table can take
** the address); reads, writes, pairs, next, rawget, rawset and turning it
** into JSON behave as on the argument itself. Arrays, and objects beyond
** LPROX_MAX per call, are converted whole as before. */
#define LPROX_MAX 256
static char lprox_anchor_key;           /* registry: the call's nested tables */

static lprox *lprox_of(lua_State *L, int idx){
  rv_rules *r = getr(L);
  const void *t;
  if (r->n_lprox == 0 || r->larg_ptr == NULL || lua_type(L, idx) != LUA_TTABLE) return NULL;
  t = lua_topointer(L, idx);
  for (int i = r->n_lprox - 1; i >= 0; i--)
    if (r->lprox[i].t == t) return &r->lprox[i];
  return NULL;
}

static void lprox_reset(rv_rules *r){
  for (int i = 0; i < r->n_lprox; i++) rv_free(r->lprox[i].seen);
  r->n_lprox = 0;
}

/* Push v as a read of the argument gives it: an object with members as a
** table converted on demand, anything else converted whole. */
static void lprox_push(lua_State *L, const cJSON *v, int depth){   /* [-0, +1, e] */
  rv_rules *r = getr(L);
  lprox *p;
  int n;
  if (!cJSON_IsObject(v) || v->child == NULL || r->larg_ptr == NULL || r->n_lprox >= LPROX_MAX) {
    push_json(L, v, depth);
    return;
  }
  if (depth > JSON_MAX_DEPTH) luaL_error(L, "JSON nesting deeper than %d", JSON_MAX_DEPTH);
  n = cJSON_GetArraySize(v);
  luaL_checkstack(L, 4, "variables");
  if (r->n_lprox == 0) {                /* the call's first: a new anchor */
    lua_createtable(L, 4, 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lprox_anchor_key);
    r->lprox_anchored = true;
  }
  lua_createtable(L, 0, 4);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &larg_mt_key);
  lua_setmetatable(L, -2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lprox_anchor_key);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)r->n_lprox + 1);
  lua_pop(L, 1);
  if (r->n_lprox == r->cap_lprox) {
    r->cap_lprox = r->cap_lprox ? r->cap_lprox * 2 : 16;
    r->lprox = rv_realloc(r->lprox, sizeof *r->lprox * (size_t)r->cap_lprox);
  }
  p = &r->lprox[r->n_lprox++];
  p->t = lua_topointer(L, -1);
  p->obj = v;
  p->depth = depth;
  p->n = n;
  p->seen = rv_calloc((size_t)n, 1);
  p->full = false;
}

/* Mark every member named k seen; the index of the last one (the one a
** whole conversion keeps, as setfield overwrites), or -1. *was (if not
** NULL): whether they had been seen before. */
static int lprox_mark(lprox *p, const char *k, bool *was){
  const cJSON *c;
  int i = 0, last = -1;
  if (was) *was = false;
  for (c = p->obj->child; c; c = c->next, i++)
    if (c->string && c->string[0] == k[0] && strcmp(c->string, k) == 0) {
      if (was && p->seen[i]) *was = true;
      last = i;
      p->seen[i] = 1;
    }
  return last;
}

static const cJSON *lprox_member(const lprox *p, int i){
  const cJSON *c = p->obj->child;
  while (i-- > 0 && c) c = c->next;
  return c;
}

/* Convert every member of the nested table at idx not seen yet. */
static void lprox_fill(lua_State *L, lprox *p, int idx){   /* [-0, +0, e] */
  const cJSON *c;
  int i = 0;
  rv_rules *r = getr(L);
  if (p->full) return;
  p->full = true;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "variables");
  for (c = p->obj->child; c; c = c->next, i++) {
    int last;
    ptrdiff_t at = p - r->lprox;
    if (p->seen[i] || c->string == NULL) continue;
    last = lprox_mark(p, c->string, NULL);
    lua_pushstring(L, c->string);
    lprox_push(L, lprox_member(p, last), p->depth + 1);   /* may move r->lprox */
    p = r->lprox + at;
    lua_rawset(L, idx);
  }
}

/* Mark every variable named k seen; the first of them (the one a read
** converts, as cJSON_GetObjectItem finds it), or NULL. *fresh (if not
** NULL): whether it had not been seen before. */
static const cJSON *larg_take(rv_rules *r, const char *k, bool *fresh){
  const cJSON *c, *first = NULL;
  int i = 0;
  bool was = false;
  for (c = r->larg_vars->child; c && i < r->larg_n; c = c->next, i++)
    if (c->string && c->string[0] == k[0] && strcmp(c->string, k) == 0) {
      if (first == NULL) { first = c; was = r->larg_seen[i] != 0; }
      r->larg_seen[i] = 1;
    }
  if (fresh) *fresh = first != NULL && !was;
  return first;
}

/* Convert every variable not seen yet into the argument table at idx (a
** no-op for any other table). */
static void larg_fill(lua_State *L, int idx){    /* [-0, +0, m] */
  rv_rules *r = getr(L);
  const cJSON *c;
  int i = 0;
  lprox *p = lprox_of(L, idx);
  if (p) { lprox_fill(L, p, idx); return; }
  if (!is_larg(L, idx) || r->larg_full || r->larg_vars == NULL) return;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "variables");
  for (c = r->larg_vars->child; c && i < r->larg_n; c = c->next, i++) {
    if (r->larg_seen[i] || c->string == NULL) continue;
    larg_take(r, c->string, NULL);           /* c and its namesakes: seen */
    lua_pushstring(L, c->string);
    lprox_push(L, c, 1);
    lua_rawset(L, idx);                      /* t[k] = value */
  }
  r->larg_full = true;
}

/* An __index(t, key) answer: v converted, and kept in t under key so it
** is converted once per call. */
static int push_kept(lua_State *L, const cJSON *v, int depth){
  lprox_push(L, v, depth);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

static int l_larg_index(lua_State *L){         /* (t, key) */
  rv_rules *r = getr(L);
  lprox *p;
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  if ((p = lprox_of(L, 1)) != NULL) {             /* a nested object */
    bool was;
    int i;
    if (!p->full && (i = lprox_mark(p, lua_tostring(L, 2), &was)) >= 0 && !was)
      return push_kept(L, lprox_member(p, i), p->depth + 1);
    lua_pushnil(L);
    return 1;
  }
  if (is_larg(L, 1) && !r->larg_full && r->larg_vars != NULL) {
    bool fresh;
    const cJSON *v = larg_take(r, lua_tostring(L, 2), &fresh);
    if (fresh) return push_kept(L, v, 1);
  }
  lua_pushnil(L);
  return 1;
}

/* A write or rawset of key (string, at index key) into the table at t:
** that member is never converted over it. */
static void larg_written(lua_State *L, int t, int key){
  rv_rules *r = getr(L);
  lprox *p;
  if (lua_type(L, key) != LUA_TSTRING) return;
  if ((p = lprox_of(L, t)) != NULL) lprox_mark(p, lua_tostring(L, key), NULL);
  else if (is_larg(L, t) && r->larg_vars != NULL) larg_take(r, lua_tostring(L, key), NULL);
}

static int l_larg_newindex(lua_State *L){      /* (t, key, value) */
  larg_written(L, 1, 2);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

static int l_larg_pairs(lua_State *L){         /* (t) */
  larg_fill(L, 1);
  lua_pushcfunction(L, l_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* The rest of a proxy's metatable (at the top): writes go to newindex,
** pairs() to pairs, and getmetatable() answers false. Shared by the lazy
** argument tables and the frozen library tables. */
static void proxy_mt_fields(lua_State *L, lua_CFunction newindex, lua_CFunction pairs){
  lua_pushcfunction(L, newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
}

/* The metatable every argument table shares (set up once). */
static void larg_setup(lua_State *L){
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, l_larg_index);
  lua_setfield(L, -2, "__index");
  proxy_mt_fields(L, l_larg_newindex, l_larg_pairs);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &larg_mt_key);
}

/* Push the argument table of an rv:function call over the object vars. */
static void push_lazy_arg(lua_State *L, const cJSON *vars){  /* [-0, +1, m] */
  rv_rules *r = getr(L);
  int n = cJSON_GetArraySize(vars);
  if (r->lprox_anchored) {                 /* the last call's nested tables go */
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lprox_anchor_key);
    r->lprox_anchored = false;
  }
  lprox_reset(r);
  if (n > r->larg_cap) {
    r->larg_cap = n;
    r->larg_seen = rv_realloc(r->larg_seen, (size_t)n);
  }
  if (n > 0) memset(r->larg_seen, 0, (size_t)n);
  r->larg_n = n;
  lua_createtable(L, 0, 8);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &larg_mt_key);
  lua_setmetatable(L, -2);
  r->larg_vars = vars;
  r->larg_ptr = lua_topointer(L, -1);
  r->larg_full = false;
}

/*--- Lua -> JSON --------------------------------------------------------*/

static int cmp_keys(const void *a, const void *b){
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string, y->string);
}

/* Sort n member pointers by key: insertion sort for the few members
** objects usually have (qsort allocates and calls back), qsort beyond. */
static void sort_keys(const cJSON **v, int n){
  if (n > 24) { qsort(v, (size_t)n, sizeof *v, cmp_keys); return; }
  for (int i = 1; i < n; i++) {
    const cJSON *x = v[i];
    int j = i;
    for (; j > 0 && strcmp(v[j - 1]->string, x->string) > 0; j--) v[j] = v[j - 1];
    v[j] = x;
  }
}

/* Sort an object's members by key: lua_next order depends on the string
** hash seed, which Lua randomises per state. Pure C; never raises. */
static void sort_members(cJSON *obj){
  int n = cJSON_GetArraySize(obj), i;
  cJSON **v, *c, *small[24];

  if (n < 2) return;
  v = n <= 24 ? small : rv_malloc(sizeof *v * (size_t)n);
  for (i = 0, c = obj->child; c; c = c->next) v[i++] = c;
  sort_keys((const cJSON **)v, n);
  for (i = 0; i < n; i++) {
    v[i]->prev = i ? v[i - 1] : v[n - 1];  /* cJSON: head->prev is the tail */
    v[i]->next = i + 1 < n ? v[i + 1] : NULL;
  }
  obj->child = v[0];
  if (v != small) rv_free(v);
}

/* Attach a fresh item to parent (or to *root) before filling it, so an
** error raised later leaves nothing unreachable. */
static cJSON *attach(lua_State *L, cJSON *item, cJSON *parent, const char *key,
                     cJSON **root){
  if (item == NULL) luaL_error(L, "out of memory building JSON");
  if (parent == NULL) *root = item;
  else if (key != NULL) cJSON_AddItemToObject(parent, key, item);
  else cJSON_AddItemToArray(parent, item);
  return item;
}

static void to_json(lua_State *L, int idx, int depth, cJSON *parent,
                    const char *key, cJSON **root);

static void table_to_json(lua_State *L, int idx, int depth, cJSON *parent,
                          const char *key, cJSON **root){
  lua_Integer maxk = 0, nint = 0, nstr = 0;
  cJSON *item;

  if (depth > JSON_MAX_DEPTH)
    luaL_error(L, "table nesting deeper than %d (a cycle?) cannot become JSON",
               JSON_MAX_DEPTH);
  luaL_checkstack(L, 6, "table too deep");
  larg_fill(L, idx);                       /* a returned argument table: all of it */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      nstr++;
    } else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
      lua_Integer k = lua_tointeger(L, -2);
      nint++;
      if (k > maxk) maxk = k;
    } else {
      luaL_error(L, "table key of type %s cannot become JSON",
                 kt == LUA_TNUMBER ? "number (not 1..n)" : lua_typename(L, kt));
    }
    lua_pop(L, 1);
  }
  if (nint > 0 && nstr > 0)
    luaL_error(L, "table key of type number cannot become JSON "
                  "(table mixes string and integer keys)");
  if (nint > 0 && maxk != nint)
    luaL_error(L, "table key of type number cannot become JSON "
                  "(array with holes: %d keys, largest %d)", (int)nint, (int)maxk);
  if (nint > 0) {
    lua_Integer i;
    item = attach(L, cJSON_CreateArray(), parent, key, root);
    for (i = 1; i <= nint; i++) {
      lua_rawgeti(L, idx, i);
      to_json(L, lua_gettop(L), depth + 1, item, NULL, root);
      lua_pop(L, 1);
    }
    return;
  }
  item = attach(L, cJSON_CreateObject(), parent, key, root);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_tostring(L, -2);   /* a string key: no conversion */
    to_json(L, lua_gettop(L), depth + 1, item, k, root);
    lua_pop(L, 1);
  }
  sort_members(item);
}

static void to_json(lua_State *L, int idx, int depth, cJSON *parent,
                    const char *key, cJSON **root){             /* [-0, +0, e] */
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      attach(L, cJSON_CreateNull(), parent, key, root);
      return;
    case LUA_TBOOLEAN:
      attach(L, cJSON_CreateBool(lua_toboolean(L, idx)), parent, key, root);
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i > (INT64_C(1) << 53) || i < -(INT64_C(1) << 53))
          luaL_error(L, "integer %I is too large for JSON (beyond 2^53)", i);
        attach(L, cJSON_CreateNumber((double)i), parent, key, root);
      } else {
        lua_Number d = lua_tonumber(L, idx);
        if (isnan(d) || isinf(d))
          luaL_error(L, "number %s cannot become JSON", isnan(d) ? "nan" : "inf");
        attach(L, cJSON_CreateNumber(d), parent, key, root);
      }
      return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (strlen(s) != len) luaL_error(L, "string with a NUL byte cannot become JSON");
      attach(L, cJSON_CreateString(s), parent, key, root);
      return;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == JSON_NULL) {
        attach(L, cJSON_CreateNull(), parent, key, root);
        return;
      }
      break;
    case LUA_TTABLE:
      table_to_json(L, idx, depth, parent, key, root);
      return;
    default:
      break;
  }
  luaL_error(L, "value of type %s cannot become JSON", luaL_typename(L, idx));
}

/*--- Sandbox library wrappers -------------------------------------------*/

static int l_noop(lua_State *L){ (void)L; return 0; }

static int l_readonly(lua_State *L){
  return luaL_error(L, "attempt to modify a read-only table");
}

static bool is_frozen(lua_State *L, int idx){
  bool frozen;
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.frozen");
  lua_pushvalue(L, idx);
  frozen = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return frozen;
}

static int l_rawset(lua_State *L){
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  if (is_frozen(L, 1)) return l_readonly(L);
  larg_written(L, 1, 2);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 1;
}

/* next and rawget see an rv:function argument table whole. */
static int l_sb_next(lua_State *L){
  luaL_checktype(L, 1, LUA_TTABLE);
  larg_fill(L, 1);
  return l_next(L);
}

static int l_sb_rawget(lua_State *L){
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  larg_fill(L, 1);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

/* setmetatable minus finalizers: a metatable with a __gc field (of any
** value) is refused. Lua marks an object for finalization only when its
** metatable has __gc at setmetatable time, so adding __gc later is inert.
** __close is refused too: coroutine.close() runs pending __close handlers
** of a coroutine that our hook killed, and Lua 5.4.4 leaves that thread's
** hooks disabled (allowhook = 0), so the handler would run unbudgeted. */
static int l_setmetatable(lua_State *L){
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc not allowed");
    lua_pushliteral(L, "__close");
    if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__close not allowed");
    lua_pop(L, 2);
  }
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* xpcall(f, h, ...) as pcall plus a call of h after unwinding. Lua calls a
** message handler at the raise point, which for our hook's kill is inside
** the hook with hooks disabled: a looping handler would never stop. With
** no debug library a handler cannot inspect the stack anyway, so running
** it after the unwind loses nothing a rule could use. */
static int l_xpcall(lua_State *L){
  rv_rules *r = getr(L);
  int n = lua_gettop(L), i;

  charge(L, PCALL_CHARGE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checkstack(L, n, "too many arguments");
  lua_pushvalue(L, 1);
  for (i = 3; i <= n; i++) lua_pushvalue(L, i);
  if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_insert(L, n + 1);
    return lua_gettop(L) - n;
  }
  if (r->killed != KILL_NONE) return kill_now(L, r);
  lua_pushvalue(L, 2);
  lua_insert(L, -2);
  lua_pcall(L, 1, 1, 0);                   /* handler's error replaces it */
  if (r->killed != KILL_NONE) return kill_now(L, r);
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

/* pcall: charged (a loop of failing pcalls spends its time in C) and
** quick to pass a kill on. */
static int l_pcall(lua_State *L){
  rv_rules *r = getr(L);
  int n = lua_gettop(L);

  charge(L, PCALL_CHARGE);
  luaL_checkany(L, 1);
  if (lua_pcall(L, n - 1, LUA_MULTRET, 0) == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    return lua_gettop(L);
  }
  if (r->killed != KILL_NONE) return kill_now(L, r);
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

static void push_new_env(lua_State *L){     /* [-0, +1, m] */
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.envmt");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
}

/* load(s [, name [, mode [, env]]]): strings only, text only. Without env
** the chunk gets a fresh environment (never the shared globals). */
static int l_load(lua_State *L){
  size_t len;
  const char *s, *name, *mode;

  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "load: only string chunks are allowed");
  s = lua_tolstring(L, 1, &len);
  name = luaL_optstring(L, 2, "=(load)");
  mode = luaL_optstring(L, 3, "t");
  if (strcmp(mode, "t") != 0)
    return luaL_error(L, "load: binary chunks are not allowed (mode must be \"t\")");
  if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (!lua_isnoneornil(L, 4)) lua_pushvalue(L, 4);
  else push_new_env(L);
  lua_setupvalue(L, -2, 1);
  return 1;
}

/* Count '-' '*' (the limit rule) and all unbounded items ('-' '*' '+',
** %b) and '?' (for the cost estimate), walking the pattern item by item
** as lstrlib does (so '-' in a set or after ')' is no quantifier). */
static void pattern_shape(const char *p, size_t n, int *minus_star, int *unbounded,
                          int *optional, bool *anchored){
  const char *e = p + n;
  *minus_star = *unbounded = *optional = 0;
  *anchored = n > 0 && *p == '^';
  if (*anchored) p++;
  while (p < e) {
    const char *q;
    if (*p == '(' || *p == ')') { p++; continue; }
    if (*p == '$' && p + 1 == e) break;
    if (*p == '%' && p + 1 < e && p[1] == 'b') { (*unbounded)++; p += 4; continue; }
    if (*p == '%' && p + 1 < e && p[1] == 'f') {
      p += 2;
      if (p < e && *p == '[') {
        for (p++; p < e && *p != ']'; p++) if (*p == '%') p++;
        p++;
      }
      continue;
    }
    q = p;                                 /* single character class */
    if (*q == '%') q += 2;
    else if (*q == '[') {
      q++;
      if (q < e && *q == '^') q++;
      do {
        if (q >= e) break;
        if (*q++ == '%') q++;
      } while (q < e && *q != ']');
      q++;
    } else q++;
    if (q < e && (*q == '*' || *q == '-')) { (*minus_star)++; (*unbounded)++; q++; }
    else if (q < e && *q == '+') { (*unbounded)++; q++; }
    else if (q < e && *q == '?') { (*optional)++; q++; }
    p = q;
  }
}

/* Lua's matcher backtracks in C, out of reach of the count hook, so the
** subject length and the pattern's shape are bounded before calling it. */
static void check_pattern(lua_State *L, int subj, int pat, bool plain_ok){
  rv_rules *r = getr(L);
  size_t sn, pn;
  int ms, unb, opt;
  bool anchored;
  double cost;

  luaL_checklstring(L, subj, &sn);
  luaL_checklstring(L, pat, &pn);
  if (sn > r->lim.pattern_subject)
    luaL_error(L, "pattern subject too long (%d bytes, limit %d)",
               (int)(sn > 2147483647 ? 2147483647 : sn), (int)r->lim.pattern_subject);
  if (plain_ok) {
    charge(L, (double)sn / 64.0);
    return;
  }
  pattern_shape(lua_tostring(L, pat), pn, &ms, &unb, &opt, &anchored);
  if (ms > PATTERN_MAX_QUANT)
    luaL_error(L, "pattern too complex (more than %d '-' or '*' quantifiers)",
               PATTERN_MAX_QUANT);
  cost = (anchored ? 1.0 : (double)sn + 1) * pow((double)sn + 1, unb)
       * pow(2.0, opt > 60 ? 60 : opt);
  if (cost > PATTERN_MAX_COST)
    luaL_error(L, "pattern too complex for a subject of %d bytes",
               (int)sn);
  charge(L, cost / 4.0);                   /* worst case ~0.1 s: ~1 per evaluation */
}

/* The library function a guard wraps (its upvalue), on the guard's own
** arguments: a C function is called directly, on this frame (no second
** call of the VM); anything else through lua_call. */
static int call_upvalue(lua_State *L){
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
  if (f != NULL) return f(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int l_find(lua_State *L){
  check_pattern(L, 1, 2, lua_toboolean(L, 4));
  return call_upvalue(L);
}
static int l_match(lua_State *L){ check_pattern(L, 1, 2, false); return call_upvalue(L); }
static int l_gmatch(lua_State *L){ check_pattern(L, 1, 2, false); return call_upvalue(L); }
static int l_gsub(lua_State *L){ check_pattern(L, 1, 2, false); return call_upvalue(L); }

/* string.rep: fail fast (and sticky) before a huge result is built. */
static int l_rep(lua_State *L){
  rv_rules *r = getr(L);
  size_t l, lsep = 0;
  lua_Integer n;
  double total;

  luaL_checklstring(L, 1, &l);
  n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  total = n > 0 ? (double)l * (double)n + (double)lsep * (double)(n - 1) : 0;
  if (total >= (double)r->lim.memory) {
    if (r->armed && r->killed == KILL_NONE) r->killed = KILL_MEM;
    if (r->killed != KILL_NONE) return kill_now(L, r);
    return luaL_error(L, "memory limit exceeded (string.rep result too large)");
  }
  return call_upvalue(L);
}

static double table_len(lua_State *L, int idx){
  return lua_type(L, idx) == LUA_TTABLE ? (double)lua_rawlen(L, idx) : 0;
}

static int l_tmove(lua_State *L){
  lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  if (e >= f) charge(L, (double)e - (double)f + 1);
  return call_upvalue(L);
}
static int l_tinsert(lua_State *L){
  charge(L, lua_gettop(L) >= 3 ? table_len(L, 1) : 1);
  return call_upvalue(L);
}
static int l_tremove(lua_State *L){
  charge(L, lua_gettop(L) >= 2 ? table_len(L, 1) : 1);
  return call_upvalue(L);
}
static int l_tsort(lua_State *L){
  double n = table_len(L, 1);
  charge(L, n > 1 ? n * log2(n) : 1);
  return call_upvalue(L);
}
static int l_tconcat(lua_State *L){
  lua_Integer i = luaL_optinteger(L, 3, 1);
  lua_Integer j = lua_isnoneornil(L, 4) ? (lua_Integer)table_len(L, 1)
                                        : luaL_checkinteger(L, 4);
  if (j >= i) charge(L, (double)j - (double)i + 1);
  return call_upvalue(L);
}
static int l_tunpack(lua_State *L){
  lua_Integer i = luaL_optinteger(L, 2, 1);
  lua_Integer j = lua_isnoneornil(L, 3) ? (lua_Integer)table_len(L, 1)
                                        : luaL_checkinteger(L, 3);
  if (j >= i) charge(L, (double)j - (double)i + 1);
  return call_upvalue(L);
}
static int l_strcharge(lua_State *L){        /* utf8.len & co.: linear scans */
  size_t n = 0;
  if (lua_type(L, 1) == LUA_TSTRING) lua_tolstring(L, 1, &n);
  charge(L, (double)n / 64.0);
  return call_upvalue(L);
}

static int l_resume(lua_State *L){           /* coroutine switches cost C time */
  charge(L, PCALL_CHARGE);
  return call_upvalue(L);
}
static int l_yield(lua_State *L){
  charge(L, PCALL_CHARGE);
  return lua_yield(L, lua_gettop(L));
}

/* Replace t[name] (t at top) by a wrapper that runs check then the
** original. call_upvalue runs a C original on the wrapper's own frame,
** where lua_upvalueindex names the wrapper's upvalues: an original with
** upvalues of its own (none in the standard library) is refused here. */
static void wrap(lua_State *L, const char *name, lua_CFunction fn){
  lua_getfield(L, -1, name);
  if (lua_getupvalue(L, -1, 1) != NULL) luaL_error(L, "cannot guard '%s': it has upvalues", name);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
}

/*--- require ------------------------------------------------------------*/

/* Resolve module name: cached value, else run its chunk with a fresh
** environment. A chunk that returns nothing exports its environment. */
static int l_require(lua_State *L){               /* [-0, +1, e] */
  const char *name = luaL_checkstring(L, 1);

  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.loaded");    /* 2 */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 2) != LUA_TNIL) {
    if (lua_touserdata(L, -1) == (void *)&l_require)
      return luaL_error(L, "circular require of module '%s'", name);
    return 1;
  }
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.modsrc");    /* 3 */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 3) != LUA_TFUNCTION)              /* 4: chunk */
    return luaL_error(L, "module '%s' not found (only the deployment's "
                         "scripts can be required)", name);
  lua_pushvalue(L, 1);                                /* mark as loading */
  lua_pushlightuserdata(L, (void *)&l_require);
  lua_rawset(L, 2);
  push_new_env(L);                                    /* 5: env */
  lua_pushvalue(L, 5);
  lua_setupvalue(L, 4, 1);
  lua_pushvalue(L, 4);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {              /* 6: result or error */
    lua_pushvalue(L, 1);                              /* unmark, re-raise */
    lua_pushnil(L);
    lua_rawset(L, 2);
    return lua_error(L);
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, 5);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, 2);
  return 1;
}

/*--- Injected globals: now, cal, validate, json -------------------------*/

static int l_now(lua_State *L){
  lua_pushinteger(L, rv_clock_now(getr(L)->clock));
  return 1;
}

static int check_jdate(lua_State *L, int i, int *jy, int *jm, int *jd){
  lua_Integer y = luaL_checkinteger(L, i), m = luaL_checkinteger(L, i + 1);
  lua_Integer d = luaL_optinteger(L, i + 2, 1);
  if (y < 1 || y > 3177 || m < 1 || m > 12 || d < 1
      || d > rv_jalali_month_days((int)y, (int)m))
    return luaL_error(L, "invalid Jalali date %I-%I-%I", y, m, d);
  *jy = (int)y; *jm = (int)m; *jd = (int)d;
  return 0;
}

static lua_Integer check_ms(lua_State *L, int i){
  lua_Integer t = luaL_checkinteger(L, i);
  /* about +-100,000 years: keeps the calendar arithmetic exact */
  if (t > INT64_C(3155760000000000) || t < -INT64_C(3155760000000000))
    luaL_error(L, "instant %I out of range", t);
  return t;
}

static void tehran_jalali(lua_Integer t, int *jy, int *jm, int *jd){
  int y, m, d, hh, mi, ss;
  rv_tehran_date(t, &y, &m, &d, &hh, &mi, &ss);
  rv_jalali_from_gregorian(y, m, d, jy, jm, jd);
}

static int l_cal_jalali(lua_State *L){
  int jy, jm, jd;
  tehran_jalali(check_ms(L, 1), &jy, &jm, &jd);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, jy); lua_setfield(L, -2, "year");
  lua_pushinteger(L, jm); lua_setfield(L, -2, "month");
  lua_pushinteger(L, jd); lua_setfield(L, -2, "day");
  return 1;
}

static int l_cal_gregorian(lua_State *L){
  int jy, jm, jd, gy, gm, gd;
  check_jdate(L, 1, &jy, &jm, &jd);
  rv_gregorian_from_jalali(jy, jm, jd, &gy, &gm, &gd);
  lua_pushinteger(L, rv_tehran_midnight(gy, gm, gd));
  return 1;
}

static int l_cal_month_days(lua_State *L){
  int jy, jm, jd;
  check_jdate(L, 1, &jy, &jm, &jd);
  lua_pushinteger(L, rv_jalali_month_days(jy, jm));
  return 1;
}

static int l_cal_is_leap(lua_State *L){
  lua_Integer y = luaL_checkinteger(L, 1);
  if (y < 1 || y > 3177) return luaL_error(L, "Jalali year %I out of range", y);
  lua_pushboolean(L, rv_jalali_is_leap((int)y));
  return 1;
}

static int l_cal_add(lua_State *L){
  lua_Integer t = check_ms(L, 1);
  const char *iso = luaL_checkstring(L, 2);
  rv_duration d;
  rv_err e;
  if (rv_duration_parse(iso, &d, &e) != RV_OK) return luaL_error(L, "%s", e.msg);
  lua_pushinteger(L, rv_duration_add(t, &d));
  return 1;
}

static int l_cal_end_of_jalali_month(lua_State *L){
  int jy, jm, jd, gy, gm, gd;
  tehran_jalali(check_ms(L, 1), &jy, &jm, &jd);
  rv_gregorian_from_jalali(jy, jm, rv_jalali_month_days(jy, jm), &gy, &gm, &gd);
  lua_pushinteger(L, rv_tehran_midnight(gy, gm, gd) + INT64_C(86400000) - 1);
  return 1;
}

static int l_cal_format(lua_State *L){
  char buf[48];
  rv_datetime_format(check_ms(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static int l_cal_parse(lua_State *L){
  int64_t t;
  rv_err e;
  if (rv_datetime_parse(luaL_checkstring(L, 1), &t, &e) != RV_OK)
    return luaL_error(L, "%s", e.msg);
  lua_pushinteger(L, t);
  return 1;
}

/* Whole years between two instants, counted on Jalali dates in Tehran
** (the birthday of 30 Esfand falls on 1 Farvardin in common years). */
static int l_cal_age(lua_State *L){
  int by, bm, bd, ay, am, ad, age;
  tehran_jalali(check_ms(L, 1), &by, &bm, &bd);
  tehran_jalali(check_ms(L, 2), &ay, &am, &ad);
  age = ay - by;
  if (am < bm || (am == bm && ad < bd)) age--;
  lua_pushinteger(L, age);
  return 1;
}

static int validate_with(lua_State *L, bool (*fn)(const char *)){
  lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && fn(lua_tostring(L, 1)));
  return 1;
}
static int l_val_nid(lua_State *L){ return validate_with(L, rv_valid_national_id); }
static int l_val_sheba(lua_State *L){ return validate_with(L, rv_valid_sheba); }
static int l_val_mobile(lua_State *L){ return validate_with(L, rv_valid_mobile); }

static const luaL_Reg cal_funcs[] = {
  {"jalali", l_cal_jalali}, {"gregorian", l_cal_gregorian},
  {"month_days", l_cal_month_days}, {"is_leap", l_cal_is_leap},
  {"add", l_cal_add}, {"end_of_jalali_month", l_cal_end_of_jalali_month},
  {"format", l_cal_format}, {"parse", l_cal_parse}, {"age", l_cal_age},
  {NULL, NULL}
};
static const luaL_Reg validate_funcs[] = {
  {"national_id", l_val_nid}, {"sheba", l_val_sheba}, {"mobile", l_val_mobile},
  {NULL, NULL}
};

/*--- Building the sandbox -----------------------------------------------*/

static int l_next(lua_State *L){
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

static int l_proxy_pairs(lua_State *L){
  lua_pushcfunction(L, l_next);
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__index");
  lua_remove(L, -2);
  lua_pushnil(L);
  return 3;
}

/* Replace SG[name] (SG at top) with a read-only proxy of it. */
static void freeze(lua_State *L, const char *name){
  lua_newtable(L);                         /* proxy */
  lua_createtable(L, 0, 4);                /* its metatable */
  lua_getfield(L, -3, name);
  lua_setfield(L, -2, "__index");
  proxy_mt_fields(L, l_readonly, l_proxy_pairs);
  lua_setmetatable(L, -2);
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.frozen");
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_setfield(L, -2, name);
}

static void set_nil(lua_State *L, const char *name){
  lua_pushnil(L);
  lua_setfield(L, -2, name);
}

static int setup(lua_State *L){
  static const struct { const char *name; lua_CFunction open; } libs[] = {
    {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
  };
  size_t i;

  for (i = 0; i < sizeof libs / sizeof libs[0]; i++) {
    luaL_requiref(L, libs[i].name, libs[i].open, 1);
    lua_pop(L, 1);
  }
  for (i = 1; i < sizeof kill_msg / sizeof kill_msg[0]; i++) {
    lua_pushstring(L, kill_msg[i]);          /* preallocated for the hook */
    lua_rawsetp(L, LUA_REGISTRYINDEX, kill_msg[i]);
  }
  lua_newtable(L); lua_setfield(L, LUA_REGISTRYINDEX, "rv.frozen");
  lua_newtable(L); lua_setfield(L, LUA_REGISTRYINDEX, "rv.modsrc");
  lua_newtable(L); lua_setfield(L, LUA_REGISTRYINDEX, "rv.loaded");
  lua_newtable(L); lua_setfield(L, LUA_REGISTRYINDEX, "rv.ecache");
  lua_newtable(L); lua_setfield(L, LUA_REGISTRYINDEX, "rv.scache");
  larg_setup(L);

  lua_pushglobaltable(L);                                  /* SG */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "rv.sg");
  lua_createtable(L, 0, 2);                                /* env metatable */
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setfield(L, LUA_REGISTRYINDEX, "rv.envmt");

  set_nil(L, "dofile"); set_nil(L, "loadfile"); set_nil(L, "collectgarbage");
  set_nil(L, "warn"); set_nil(L, "_G");
  lua_pushcfunction(L, l_noop);        lua_setfield(L, -2, "print");
  lua_pushcfunction(L, l_load);        lua_setfield(L, -2, "load");
  lua_pushcfunction(L, l_rawset);      lua_setfield(L, -2, "rawset");
  lua_pushcfunction(L, l_sb_next);     lua_setfield(L, -2, "next");
  lua_pushcfunction(L, l_sb_rawget);   lua_setfield(L, -2, "rawget");
  lua_pushcfunction(L, l_xpcall);      lua_setfield(L, -2, "xpcall");
  lua_pushcfunction(L, l_pcall);       lua_setfield(L, -2, "pcall");
  lua_pushcfunction(L, l_setmetatable); lua_setfield(L, -2, "setmetatable");
  lua_pushcfunction(L, l_require);     lua_setfield(L, -2, "require");
  lua_pushcfunction(L, l_now);         lua_setfield(L, -2, "now");
  lua_pushlightuserdata(L, JSON_NULL); lua_setfield(L, -2, "null");

  lua_getfield(L, -1, "string");
  set_nil(L, "dump"); set_nil(L, "pack"); set_nil(L, "unpack"); set_nil(L, "packsize");
  wrap(L, "find", l_find); wrap(L, "match", l_match);
  wrap(L, "gmatch", l_gmatch); wrap(L, "gsub", l_gsub); wrap(L, "rep", l_rep);
  lua_pop(L, 1);
  lua_getfield(L, -1, "math");
  set_nil(L, "random"); set_nil(L, "randomseed");
  lua_pop(L, 1);
  lua_getfield(L, -1, "table");
  wrap(L, "move", l_tmove); wrap(L, "insert", l_tinsert);
  wrap(L, "remove", l_tremove); wrap(L, "sort", l_tsort);
  wrap(L, "concat", l_tconcat); wrap(L, "unpack", l_tunpack);
  lua_pop(L, 1);
  lua_getfield(L, -1, "utf8");
  wrap(L, "len", l_strcharge); wrap(L, "offset", l_strcharge);
  wrap(L, "codepoint", l_strcharge);
  lua_pop(L, 1);

  lua_getfield(L, -1, "coroutine");
  wrap(L, "resume", l_resume);
  lua_pushcfunction(L, l_yield);
  lua_setfield(L, -2, "yield");
  lua_pop(L, 1);

  luaL_newlib(L, cal_funcs);       lua_setfield(L, -2, "cal");
  luaL_newlib(L, validate_funcs);  lua_setfield(L, -2, "validate");
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, JSON_NULL);
  lua_setfield(L, -2, "null");
  lua_setfield(L, -2, "json");

  /* string metatable: protected, __index stays the real string table */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);

  freeze(L, "string"); freeze(L, "table"); freeze(L, "math");
  freeze(L, "utf8"); freeze(L, "coroutine"); freeze(L, "cal");
  freeze(L, "validate"); freeze(L, "json");
  lua_pop(L, 1);
  return 0;
}

/*--- Protected calls ----------------------------------------------------*/

typedef enum {
  OP_SETUP, OP_ADD_MODULE, OP_EVAL, OP_EVAL_BOOL, OP_RUN, OP_CALL,
  OP_CHECK_EXPR, OP_CHECK_SCRIPT, OP_CHECK_FN
} op_kind;

struct call {
  op_kind      op;
  const char  *text;       /* expression, body, module source or function */
  size_t       len;
  const char  *name;       /* module name (OP_ADD_MODULE) */
  const cJSON *vars;       /* borrowed */
  const char  *extra_name; /* OP_EVAL: one more variable (rv_rules_eval_extra) */
  const cJSON *extra;
  bool         want_vars;
  bool         truth;      /* OP_EVAL_BOOL result */
  cJSON       *out;        /* built under protection; freed by host on error */
  cJSON       *out_vars;
};

/* Compile text as "return function(_ENV) ... end" (expressions:
** "return function(_ENV) return (<expr>) end") and leave the inner
** function on the stack; cached by text. */
static void push_compiled(lua_State *L, struct call *c, bool run){  /* [-0,+1,e] */
  rv_rules *r = getr(L);
  bool expr = c->op == OP_EVAL || c->op == OP_EVAL_BOOL || c->op == OP_CHECK_EXPR;
  const char *cache = expr ? "rv.ecache" : "rv.scache";
  luaL_Buffer b;

  lua_getfield(L, LUA_REGISTRYINDEX, cache);
  lua_pushlstring(L, c->text, c->len);
  if (lua_rawget(L, -2) == LUA_TFUNCTION) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, expr ? "return function(_ENV) return (" : "return function(_ENV) ");
  luaL_addlstring(&b, c->text, c->len);
  /* Close on the same line, so errors at the end of the text point at
  ** its last line, unless a "--" comment could swallow the closing tokens. */
  if (strstr(c->text, "--") != NULL) luaL_addstring(&b, expr ? "\n) end" : "\nend");
  else luaL_addstring(&b, expr ? ") end" : " end");
  luaL_pushresult(&b);
  if (luaL_loadbufferx(L, lua_tostring(L, -1), lua_rawlen(L, -1),
                       expr ? "=[expr]" : "=[script]", "t") != LUA_OK) {
    r->no_traceback = true;
    lua_error(L);
  }
  if (!run) {                              /* lint: compiled is enough */
    lua_pushnil(L);
    return;
  }
  lua_pushnil(L);                          /* outer chunk sees no globals */
  lua_setupvalue(L, -2, 1);
  lua_call(L, 0, 1);
  if (!lua_isfunction(L, -1)) {
    r->no_traceback = true;
    luaL_error(L, "%s is not well formed", expr ? "[expr]" : "[script]");
  }
  if (++r->ncache > CACHE_MAX) {           /* crude bound: start over */
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, cache);
    lua_getfield(L, LUA_REGISTRYINDEX, cache);
    lua_replace(L, -4);
    r->ncache = 1;
  }
  lua_pushlstring(L, c->text, c->len);     /* cache[text] = fn */
  lua_pushvalue(L, -2);
  lua_rawset(L, -5);
  lua_remove(L, -2);                       /* the source */
  lua_remove(L, -2);                       /* the cache */
}

static void push_env_with_vars(lua_State *L, const cJSON *vars){  /* [-0,+1,m] */
  const cJSON *c;
  if (vars != NULL && !cJSON_IsObject(vars) && !cJSON_IsNull(vars))
    luaL_error(L, "variables must be a JSON object");
  lua_newtable(L);
  if (vars != NULL)
    cJSON_ArrayForEach(c, vars) {
      if (c->string == NULL) continue;
      push_json(L, c, 1);
      lua_setfield(L, -2, c->string);
    }
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.envmt");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
}

/* Expressions (OP_EVAL, OP_EVAL_BOOL) get an environment that converts a
** variable to Lua when the expression first reads it, not all of them
** before it runs: a condition or a mapping reads one or two variables,
** and converting a case's whole variable set (person records, contribution
** windows) for each was most of the time a process spent in Lua. Reads
** fall back to the sandbox globals as before; a variable still shadows a
** global of the same name. The __index closure carries the call's number:
** an environment that outlives its call (a closure kept by a module) sees
** no variables, never another call's. pairs(_ENV) lists only what was read. */
static int l_lazy_index(lua_State *L){           /* (env, key) */
  rv_rules *r = getr(L);
  if ((r->lazy_vars || r->lazy_xname) && lua_tointeger(L, lua_upvalueindex(1)) == r->lazy_call &&
      lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    const cJSON *v = r->lazy_xname && strcmp(k, r->lazy_xname) == 0 ? r->lazy_xval
                   : rv_json_member(r->lazy_vars, k);
    if (v != NULL) return push_kept(L, v, 1);      /* whole: no argument table here */
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "rv.sg");
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

static void push_lazy_env(lua_State *L, const cJSON *vars, const char *xname,
                          const cJSON *xval){  /* [-0,+1,m] */
  rv_rules *r = getr(L);
  if (vars != NULL && !cJSON_IsObject(vars) && !cJSON_IsNull(vars))
    luaL_error(L, "variables must be a JSON object");
  r->lazy_vars = cJSON_IsObject(vars) ? vars : NULL;
  r->lazy_xname = xval ? xname : NULL;
  r->lazy_xval = xval;
  r->lazy_call++;
  lua_newtable(L);
  lua_createtable(L, 0, 2);                      /* its own metatable */
  lua_pushinteger(L, r->lazy_call);
  lua_pushcclosure(L, l_lazy_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
}

/* out_vars: every string key of env whose value, as JSON, differs from
** vars (new keys included); a key of vars that the script set to nil is
** reported as null. Functions and coroutines stored in globals are
** helpers, not variables: skipped. */
static void collect_vars(lua_State *L, int env, struct call *c){
  const cJSON *v;

  c->out_vars = cJSON_CreateObject();
  if (c->out_vars == NULL) luaL_error(L, "out of memory building JSON");
  lua_pushnil(L);
  while (lua_next(L, env)) {
    const char *k;
    int t = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING || t == LUA_TFUNCTION || t == LUA_TTHREAD
        || (t == LUA_TTABLE && lua_rawequal(L, -1, env))) {
      lua_pop(L, 1);
      continue;
    }
    k = lua_tostring(L, -2);
    to_json(L, lua_gettop(L), 1, c->out_vars, k, &c->out_vars);
    if (c->vars != NULL) {
      const cJSON *old = cJSON_GetObjectItemCaseSensitive(c->vars, k);
      cJSON *now = cJSON_GetObjectItemCaseSensitive(c->out_vars, k);
      if (old != NULL && now != NULL && cJSON_Compare(old, now, 1))
        cJSON_Delete(cJSON_DetachItemViaPointer(c->out_vars, now));
    }
    lua_pop(L, 1);
  }
  if (c->vars != NULL)
    cJSON_ArrayForEach(v, c->vars) {
      if (v->string == NULL || lua_getfield(L, env, v->string) != LUA_TNIL) {
        lua_pop(L, 1);
        continue;
      }
      lua_pop(L, 1);
      attach(L, cJSON_CreateNull(), c->out_vars, v->string, &c->out_vars);
    }
  sort_members(c->out_vars);
}

/* Find "mod.sub.func": the longest registered module prefix, then walk
** the remaining dotted path. Leaves the value on the stack. */
static void push_function(lua_State *L, const char *fname){
  size_t n = strlen(fname), cut;

  lua_getfield(L, LUA_REGISTRYINDEX, "rv.modsrc");
  for (cut = n; cut-- > 0; ) {
    if (fname[cut] != '.') continue;
    lua_pushlstring(L, fname, cut);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
      const char *p = fname + cut + 1, *dot;
      lua_pop(L, 2);
      lua_pushcfunction(L, l_require);
      lua_pushlstring(L, fname, cut);
      lua_call(L, 1, 1);
      while ((dot = strchr(p, '.')) != NULL) {
        if (!lua_istable(L, -1))
          luaL_error(L, "'%s': '%s' is not a table", fname, p);
        lua_pushlstring(L, p, (size_t)(dot - p));
        lua_gettable(L, -2);
        lua_remove(L, -2);
        p = dot + 1;
      }
      if (!lua_istable(L, -1))
        luaL_error(L, "'%s': module value is not a table", fname);
      lua_getfield(L, -1, p);
      lua_remove(L, -2);
      return;
    }
    lua_pop(L, 1);
  }
  luaL_error(L, "no module for function '%s' (expected \"module.function\")", fname);
}

static int protected(lua_State *L){
  struct call *c = lua_touserdata(L, 1);
  int env;

  switch (c->op) {
    case OP_SETUP:
      return setup(L);
    case OP_ADD_MODULE: {
      char *chunk = rv_asprintf("=%s", c->name);
      int st = luaL_loadbufferx(L, c->text, c->len, chunk, "t");
      rv_free(chunk);
      if (st != LUA_OK) { getr(L)->no_traceback = true; return lua_error(L); }
      lua_getfield(L, LUA_REGISTRYINDEX, "rv.modsrc");
      lua_pushstring(L, c->name);
      lua_pushvalue(L, -3);
      lua_rawset(L, -3);
      lua_getfield(L, LUA_REGISTRYINDEX, "rv.loaded");  /* re-add: reload */
      lua_pushstring(L, c->name);
      lua_pushnil(L);
      lua_rawset(L, -3);
      return 0;
    }
    case OP_CHECK_EXPR:
    case OP_CHECK_SCRIPT:
      push_compiled(L, c, false);
      return 0;
    case OP_EVAL:
    case OP_EVAL_BOOL:
    case OP_RUN:
      push_compiled(L, c, true);
      if (c->op == OP_RUN) push_env_with_vars(L, c->vars);   /* collect_vars walks it */
      else push_lazy_env(L, c->vars, c->extra_name, c->extra);
      env = lua_gettop(L);
      lua_pushvalue(L, env - 1);           /* the compiled function */
      lua_pushvalue(L, env);
      lua_call(L, 1, 1);
      getr(L)->lazy_vars = NULL;
      getr(L)->lazy_xname = NULL;
      if (c->op == OP_EVAL_BOOL) {
        c->truth = lua_toboolean(L, -1);
        return 0;
      }
      to_json(L, lua_gettop(L), 0, NULL, NULL, &c->out);
      if (c->op == OP_RUN && c->want_vars) collect_vars(L, env, c);
      return 0;
    case OP_CALL:
    case OP_CHECK_FN:
      push_function(L, c->text);
      if (!lua_isfunction(L, -1))
        luaL_error(L, "'%s' is not a function (it is a %s)", c->text,
                   luaL_typename(L, -1));
      if (c->op == OP_CHECK_FN) return 0;
      if (cJSON_IsObject(c->vars)) {
        push_lazy_arg(L, c->vars);
        lua_pushvalue(L, -1);
        lua_insert(L, -3);                 /* anchored below the function */
      } else if (c->vars != NULL && !cJSON_IsNull(c->vars)) {
        push_json(L, c->vars, 0);
      } else {
        lua_newtable(L);
      }
      lua_call(L, 1, 1);
      to_json(L, lua_gettop(L), 0, NULL, NULL, &c->out);
      return 0;
  }
  return 0;
}

/* Message handler: message plus a short traceback. Never calls
** __tostring (an error object could loop there, outside any budget). */
static int msgh(lua_State *L){
  rv_rules *r = getr(L);
  const char *msg;
  if (r->killed != KILL_NONE) return 1;    /* classified by the host */
  msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  if (r->no_traceback) {
    lua_pushstring(L, msg);
    return 1;
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Copy a Lua message into err as one line: newlines become " | ", tabs
** are dropped. */
static void set_err(rv_err *err, const char *msg){
  char line[sizeof err->msg];
  size_t o = 0;
  if (err == NULL) return;
  for (; *msg && o + 4 < sizeof line; msg++) {
    if (*msg == '\t') continue;
    if (*msg == '\n') { memcpy(line + o, " | ", 3); o += 3; continue; }
    line[o++] = *msg;
  }
  line[o] = 0;
  rv_fail(err, RV_SCRIPT, "%s", line);
}

static rv_status run_protected(rv_rules *r, struct call *c, bool budget, rv_err *err){
  lua_State *L = r->L;
  int top = lua_gettop(L), st;
  rv_status rc = RV_OK;

  c->out = c->out_vars = NULL;
  r->killed = KILL_NONE;
  r->no_traceback = false;
  r->refused_pending = false;
  r->hook_calls = 0;
  if (budget) {
    double secs = (double)r->lim.instructions / 5.0e6;   /* >= 5M instr/s */
    if (secs < 1.0) secs = 1.0;
    clock_gettime(CLOCK_MONOTONIC, &r->deadline);
    r->deadline.tv_sec += (time_t)secs;
    r->deadline.tv_nsec += (long)((secs - floor(secs)) * 1e9);
    if (r->deadline.tv_nsec >= 1000000000L) {
      r->deadline.tv_sec++;
      r->deadline.tv_nsec -= 1000000000L;
    }
    r->budget = r->lim.instructions;
    r->armed = true;
  }
  r->lazy_vars = NULL;
  r->lazy_xname = NULL;
  r->larg_vars = NULL;
  r->larg_ptr = NULL;
  lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_COUNT);
  lua_pushcfunction(L, msgh);              /* these three never raise */
  lua_pushcfunction(L, protected);
  lua_pushlightuserdata(L, c);
  st = lua_pcall(L, 1, 0, top + 1);
  r->armed = false;
  r->lazy_vars = NULL;                     /* also when the call raised */
  r->lazy_xname = NULL;
  r->larg_vars = NULL;                     /* a kept argument table goes stale */
  r->larg_ptr = NULL;
  lprox_reset(r);                          /* ... and the tables inside it */
  if (st != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (r->killed == KILL_INSTR)
      rv_fail(err, RV_SCRIPT, "instruction limit exceeded (%lld instructions)",
              (long long)r->lim.instructions);
    else if (r->killed == KILL_MEM || st == LUA_ERRMEM)
      rv_fail(err, RV_SCRIPT, "memory limit exceeded (%zu bytes)", r->lim.memory);
    else if (r->killed == KILL_TIME)
      rv_fail(err, RV_SCRIPT, "time limit exceeded (wall clock)");
    else
      set_err(err, msg ? msg : "(error in error handling)");
    rc = RV_SCRIPT;
    cJSON_Delete(c->out);
    cJSON_Delete(c->out_vars);
    c->out = c->out_vars = NULL;
  }
  lua_settop(L, top);
  if (r->killed != KILL_NONE || st == LUA_ERRMEM)
    lua_gc(L, LUA_GCCOLLECT);              /* give the memory back now */
  r->killed = KILL_NONE;
  lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_COUNT);
  return rc;
}

/*--- Expressions answered without Lua ----------------------------------*/

/* Most data mappings are a quoted string ('person') or a path of names
** (national_id, result.person, mg.window_months): thousands of them per
** second in a batch, each a protected call, an environment and a round
** trip of the value through Lua. These are answered on the JSON directly
** with the value Lua would give: the same copy (object keys sorted, an
** empty array becomes {}, as table_to_json does), null for a missing last
** field. Anything else goes to Lua, and so does a path Lua might answer
** differently: a first name that is not a variable (a global), a step
** through something that is not an object (string methods, errors), a
** missing middle field (an error), duplicate keys, deep nesting. */

#define SIMPLE_MAX_SEGS  8
#define SIMPLE_MAX_DEPTH 32

static bool lua_keyword(const char *s, size_t n){
  static const char *const kw[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
  };
  if (n < 2 || n > 8 || s[0] < 'a' || s[0] > 'w') return false;     /* most names */
  for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (kw[i][0] == s[0] && strncmp(kw[i], s, n) == 0 && kw[i][n] == 0) return true;
  return false;
}

static const char *skip_sp(const char *p){ while (*p == ' ' || *p == '\t') p++; return p; }

static bool is_name_start(char c){ return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name_char(char c){ return is_name_start(c) || (c >= '0' && c <= '9'); }

/* One name of a path at *pp (not past end): *k, *n its text, *pp after
** it; false when there is no name, it is a keyword, or the path has more
** than SIMPLE_MAX_SEGS names (*seg counts them). Shared by the paths
** answered without Lua (simple_eval), taken (plain_path) and compared
** (cond_clause). */
static bool path_name(const char **pp, const char *end, int *seg, const char **k, size_t *n){
  const char *p = *pp;
  if (p >= end || !is_name_start(*p)) return false;
  *k = p;
  while (p < end && is_name_char(*p)) p++;
  *n = (size_t)(p - *k);
  *pp = p;
  return !lua_keyword(*k, *n) && ++*seg <= SIMPLE_MAX_SEGS;
}

/* expr without the spaces around it: [*b, *e); false when nothing is left. */
static bool trimmed(const char *expr, const char **b, const char **e){
  const char *p = expr, *end;
  while (*p == ' ') p++;
  end = p + strlen(p);
  while (end > p && end[-1] == ' ') end--;
  *b = p;
  *e = end;
  return end > p;
}

/* The member named (k, n) of object o; NULL if absent or if the name is
** there twice (Lua would keep the last one: not worth copying that rule). */
static const cJSON *unique_member(const cJSON *o, const char *k, size_t n, bool *dup){
  const cJSON *c, *hit = NULL;
  cJSON_ArrayForEach(c, o) {
    if (c->string == NULL || c->string[0] != k[0] || strncmp(c->string, k, n) != 0 ||
        c->string[n] != 0) continue;
    if (hit != NULL) { *dup = true; return NULL; }
    hit = c;
  }
  return hit;
}

/* A copy of j as JSON -> Lua -> JSON gives it; NULL where Lua might not. */
static cJSON *lua_shaped_copy(const cJSON *j, int depth){
  cJSON *o, *c;
  const cJSON *x;
  if (depth > SIMPLE_MAX_DEPTH) return NULL;
  if (cJSON_IsNumber(j))                          /* -0 comes back from Lua as 0 */
    return isfinite(j->valuedouble) ? cJSON_CreateNumber(j->valuedouble == 0 ? 0.0 : j->valuedouble)
                                    : NULL;
  if (cJSON_IsString(j)) return cJSON_CreateString(j->valuestring);
  if (cJSON_IsBool(j)) return cJSON_CreateBool(cJSON_IsTrue(j));
  if (cJSON_IsNull(j)) return cJSON_CreateNull();
  if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) return NULL;
  o = cJSON_IsArray(j) && j->child != NULL ? cJSON_CreateArray() : cJSON_CreateObject();
  if (o == NULL) return NULL;
  cJSON_ArrayForEach(x, j) {
    if ((c = lua_shaped_copy(x, depth + 1)) == NULL) { cJSON_Delete(o); return NULL; }
    if (cJSON_IsArray(o)) cJSON_AddItemToArray(o, c);
    else cJSON_AddItemToObject(o, x->string ? x->string : "", c);
  }
  if (cJSON_IsObject(o)) {
    sort_members(o);
    for (c = o->child; c && c->next; c = c->next)
      if (strcmp(c->string, c->next->string) == 0) { cJSON_Delete(o); return NULL; }
  }
  return o;
}

/* true when expr was answered here (*out is then a new value). */
static bool simple_eval(const char *expr, const cJSON *vars, const char *xname,
                        const cJSON *xval, cJSON **out){
  const char *p = expr, *end;
  const cJSON *node = NULL;
  int seg = 0;
  bool dup = false;

  *out = NULL;
  if (vars != NULL && !cJSON_IsObject(vars) && !cJSON_IsNull(vars)) return false;  /* Lua raises */
  if (!trimmed(expr, &p, &end)) return false;
  if (*p == '\'' || *p == '"') {                 /* 'text': no escapes, one line */
    const char *q = p + 1;
    while (q < end && *q != *p && *q != '\\' && *q != '\n' && *q != '\r' && *q != 0) q++;
    if (q != end - 1 || *q != *p) return false;
    {
      char *t = rv_malloc((size_t)(q - p));
      memcpy(t, p + 1, (size_t)(q - p - 1));
      t[q - p - 1] = 0;
      *out = cJSON_CreateString(t);
      rv_free(t);
    }
    return *out != NULL;
  }
  while (p < end) {                               /* name(.name)* */
    const char *k;
    size_t n;
    if (!path_name(&p, end, &seg, &k, &n)) return false;
    if (p < end && (*p != '.' || p + 1 == end)) return false;
    if (seg == 1) {
      if (xval != NULL && xname != NULL && strlen(xname) == n && memcmp(xname, k, n) == 0)
        node = xval;
      else if (cJSON_IsObject(vars))
        node = unique_member(vars, k, n, &dup);
      if (node == NULL) return false;            /* a global, or nothing: Lua decides */
    } else {
      const cJSON *m;
      if (!cJSON_IsObject(node)) return false;   /* strings have methods, others raise */
      m = unique_member(node, k, n, &dup);
      if (dup) return false;
      if (m == NULL) {
        if (p < end) return false;               /* nil.x raises in Lua */
        *out = cJSON_CreateNull();
        return *out != NULL;
      }
      node = m;
    }
    if (p < end) p++;                             /* the '.' */
  }
  *out = lua_shaped_copy(node, 1);
  return *out != NULL;
}

/*--- Conditions answered without Lua ---------------------------------------*/

/* Most conditions of the processes compare one variable with a literal
** (`eligible == true`, `reason_code == "ROLE"`, `blocked ~= true`, `n > 0`),
** alone or joined by `and`. Those are answered here, as Lua answers them:
** == and ~= with true, false, a text without escapes or an integer of up
** to 15 digits (a variable of another type, or none, is simply unequal);
** <, <=, > and >= only when the variable is a number; clauses from the left,
** the first false one deciding. Anything else, and any clause whose answer
** needs Lua (a missing middle field, a global, `== nil` of a missing name,
** a comparison Lua would refuse), leaves the whole condition to Lua. */
typedef struct cond_lit { int kind; const char *s; size_t n; double num; } cond_lit;  /* kind: 1 bool, 2 text, 3 number */


/* One clause at *pp: path op literal. 1 or 0 its value; -1 when Lua must
** answer it (it may raise); -2 when it is not of this shape. */
static int cond_clause(const char **pp, const cJSON *vars){
  const char *p = skip_sp(*pp);
  const cJSON *node = NULL;
  int seg = 0, opk, lua = 0;
  bool dup = false, missing = false;
  cond_lit lit = { 0, NULL, 0, 0 };
  while (true) {                                  /* name(.name)* */
    const char *k;
    size_t n;
    if (!path_name(&p, p + strlen(p), &seg, &k, &n)) return -2;
    if (missing || (seg > 1 && !cJSON_IsObject(node))) lua = 1;   /* nil.x raises; strings have methods */
    else {
      node = seg == 1 ? (cJSON_IsObject(vars) ? unique_member(vars, k, n, &dup) : NULL)
                      : unique_member(node, k, n, &dup);
      if (dup) lua = 1;
      else if (node == NULL) missing = true;      /* nil, or (a first name) a global */
    }
    if (*p != '.') break;
    p++;
  }
  p = skip_sp(p);
  if ((p[0] == '=' || p[0] == '~') && p[1] == '=') { opk = p[0] == '=' ? 0 : 1; p += 2; }
  else if ((p[0] == '<' || p[0] == '>') && p[1] == '=') { opk = p[0] == '<' ? 3 : 5; p += 2; }
  else if (p[0] == '<' || p[0] == '>') { opk = p[0] == '<' ? 2 : 4; p += 1; }
  else return -2;
  p = skip_sp(p);
  if (strncmp(p, "true", 4) == 0 && !is_name_char(p[4])) { lit.kind = 1; lit.num = 1; p += 4; }
  else if (strncmp(p, "false", 5) == 0 && !is_name_char(p[5])) { lit.kind = 1; lit.num = 0; p += 5; }
  else if (*p == '"' || *p == '\'') {
    const char *q = p + 1;
    while (*q && *q != *p && *q != '\\' && *q != '\n' && *q != '\r') q++;
    if (*q != *p) return -2;
    lit.kind = 2; lit.s = p + 1; lit.n = (size_t)(q - p - 1);
    p = q + 1;
  } else if ((*p >= '0' && *p <= '9') || (*p == '-' && p[1] >= '0' && p[1] <= '9')) {
    const char *q = p + (*p == '-');
    double v = 0;
    int nd = 0;
    while (*q >= '0' && *q <= '9') { v = v * 10 + (*q - '0'); q++; nd++; }
    if (nd > 15 || *q == '.' || is_name_char(*q)) return -2;
    lit.kind = 3; lit.num = *p == '-' ? -v : v;
    p = q;
  } else {
    return -2;                                    /* nil, another name, a call, ... */
  }
  *pp = p;
  if (lua) return -1;
  if (opk >= 2) {                                 /* order: numbers only */
    double x;
    if (missing || !cJSON_IsNumber(node) || lit.kind != 3 || !isfinite(node->valuedouble)) return -1;
    x = node->valuedouble;
    return opk == 2 ? x < lit.num : opk == 3 ? x <= lit.num : opk == 4 ? x > lit.num : x >= lit.num;
  }
  {
    bool eq;
    if (missing) eq = false;                      /* nil or a global: never one of these */
    else if (lit.kind == 1) eq = cJSON_IsBool(node) && (cJSON_IsTrue(node) != 0) == (lit.num != 0);
    else if (lit.kind == 2) eq = cJSON_IsString(node) && node->valuestring != NULL &&
                                 strlen(node->valuestring) == lit.n &&
                                 memcmp(node->valuestring, lit.s, lit.n) == 0;
    else eq = cJSON_IsNumber(node) && node->valuedouble == lit.num;
    return opk == 0 ? eq : !eq;
  }
}

/* 1 true, 0 false, -1 for Lua. Every clause must have the shape (Lua
** compiles all of them); the first false one decides, as `and` stops
** there, and a clause only Lua can answer before it hands the whole to Lua. */
static int simple_cond(const char *expr, const cJSON *vars){
  const char *p = expr;
  int result = 1;
  if (vars != NULL && !cJSON_IsObject(vars) && !cJSON_IsNull(vars)) return -1;   /* Lua raises */
  while (true) {
    int v = cond_clause(&p, vars);
    if (v == -2) return -1;
    if (result == 1) result = v;                  /* still deciding: 1, 0 or -1 */
    p = skip_sp(p);
    if (*p == 0) return result;
    if (strncmp(p, "and", 3) != 0 || is_name_char(p[3])) return -1;
    p += 3;
  }
}

/*--- Taking a path out of an answer the caller drops -------------------------*/

/* The extent of a plain path name(.name)* in expr (spaces around allowed):
** [*b, *e). false for anything else (a quoted text, an operator, a call). */
static bool plain_path(const char *expr, const char **b, const char **e){
  const char *p, *k;
  size_t n;
  int seg = 0;
  if (!trimmed(expr, b, e)) return false;
  for (p = *b;; p++) {                            /* each name, then its '.' */
    if (!path_name(&p, *e, &seg, &k, &n)) return false;
    if (p == *e) return true;
    if (*p != '.' || p + 1 == *e) return false;
  }
}

int rv_rules_expr_reads(const char *expr, const char *name, const char **rest, size_t *rest_len){
  const char *b, *e;
  size_t n = strlen(name);
  *rest = NULL;
  *rest_len = 0;
  if (expr == NULL) return 0;
  if (!plain_path(expr, &b, &e)) {
    const char *p = expr;
    while (*p == ' ') p++;
    if ((*p == '\'' || *p == '"')) {             /* a text without escapes: reads nothing */
      const char *q = p + 1;
      while (*q && *q != *p && *q != '\\' && *q != '\n' && *q != '\r') q++;
      if (*q == *p) {
        for (q++; *q == ' '; q++) ;
        if (*q == 0) return 1;
      }
    }
    return 0;
  }
  if ((size_t)(e - b) < n || memcmp(b, name, n) != 0 || (b + n < e && b[n] != '.')) return 1;
  *rest = b + n;
  *rest_len = (size_t)(e - b) - n;
  return 2;
}

/* Whether j comes back from Lua as lua_shaped_copy would copy it: finite
** numbers, no raw values, named and distinct members, not too deep. */
static bool shaped_ok(const cJSON *j, int depth){
  const cJSON *x;
  if (depth > SIMPLE_MAX_DEPTH || (j->type & (cJSON_IsReference | cJSON_StringIsConst))) return false;
  if (cJSON_IsNumber(j)) return isfinite(j->valuedouble);
  if (cJSON_IsString(j)) return j->valuestring != NULL;
  if (cJSON_IsBool(j) || cJSON_IsNull(j)) return true;
  if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) return false;
  if (cJSON_IsObject(j)) {
    int n = cJSON_GetArraySize(j), i = 0;
    const cJSON **v;
    bool ok = true;
    if (n > 1) {
      const cJSON *small[24];
      v = n <= 24 ? small : rv_malloc(sizeof *v * (size_t)n);
      cJSON_ArrayForEach(x, j) {
        if (x->string == NULL) { if (v != small) rv_free(v); return false; }
        v[i++] = x;
      }
      sort_keys(v, n);
      for (i = 0; ok && i + 1 < n; i++) ok = strcmp(v[i]->string, v[i + 1]->string) != 0;
      if (v != small) rv_free(v);
      if (!ok) return false;
    }
  }
  cJSON_ArrayForEach(x, j) {
    if (cJSON_IsObject(j) && x->string == NULL) return false;
    if (!shaped_ok(x, depth + 1)) return false;
  }
  return true;
}

/* Give j, in place, the shape lua_shaped_copy gives a copy (shaped_ok(j)). */
static void shape(cJSON *j){
  cJSON *x;
  if (cJSON_IsNumber(j) && j->valuedouble == 0) { cJSON_SetNumberValue(j, 0.0); return; }
  if (cJSON_IsArray(j) && j->child == NULL) { j->type = (j->type & ~0xFF) | cJSON_Object; return; }
  if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) return;
  cJSON_ArrayForEach(x, j) shape(x);
  if (cJSON_IsObject(j)) sort_members(j);
}

cJSON *rv_rules_take_extra(const char *expr, const char *name, cJSON *value){
  const char *rest;
  size_t len;
  if (value == NULL || rv_rules_expr_reads(expr, name, &rest, &len) != 2) return NULL;
  return rv_rules_take_path(value, rest, len);
}

cJSON *rv_rules_take_path(cJSON *value, const char *rest, size_t len){
  const char *p;
  cJSON *parent = NULL, *node = value, *out;
  bool dup = false;
  if (value == NULL) return NULL;
  for (p = rest; p < rest + len; ) {             /* ".a.b" */
    const char *k = ++p;
    while (p < rest + len && *p != '.') p++;
    if (!cJSON_IsObject(node)) return NULL;
    parent = node;
    node = (cJSON *)unique_member(node, k, (size_t)(p - k), &dup);
    if (node == NULL) return NULL;               /* absent (null) or twice: eval decides */
  }
  if (!shaped_ok(node, 1)) return NULL;
  if (parent) out = cJSON_DetachItemViaPointer(parent, node);
  else {                                         /* the whole value: its members move */
    out = cJSON_IsArray(value) ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!cJSON_IsArray(value) && !cJSON_IsObject(value)) {
      cJSON_Delete(out);
      return NULL;                               /* a scalar answer: copying is cheap */
    }
    out->child = value->child;
    value->child = NULL;
  }
  shape(out);
  return out;
}

/*--- Public API ---------------------------------------------------------*/

rv_status rv_rules_new(const rv_rules_limits *limits, rv_clock *clock,
                       rv_rules **out, rv_err *err){
  rv_rules *r;
  struct call c = { .op = OP_SETUP };
  rv_status rc;

  *out = NULL;
  r = rv_calloc(1, sizeof *r);
  if (limits != NULL) r->lim = *limits;
  if (r->lim.instructions <= 0) r->lim.instructions = DEFAULT_INSTRUCTIONS;
  if (r->lim.memory == 0) r->lim.memory = DEFAULT_MEMORY;
  if (r->lim.pattern_subject == 0) r->lim.pattern_subject = DEFAULT_SUBJECT;
  r->clock = clock;
  r->L = lua_newstate(l_alloc, r);
  if (r->L == NULL) {
    rv_free(r);
    return rv_fail(err, RV_NOMEM, "cannot create a Lua state within %zu bytes",
                   limits ? limits->memory : DEFAULT_MEMORY);
  }
  lua_atpanic(r->L, at_panic);
  lua_setwarnf(r->L, NULL, NULL);
  rc = run_protected(r, &c, false, err);
  if (rc != RV_OK) {
    rv_rules_free(r);
    return rv_fail(err, RV_NOMEM, "cannot set up the Lua sandbox within %zu bytes",
                   limits ? limits->memory : DEFAULT_MEMORY);
  }
  *out = r;
  return RV_OK;
}

void rv_rules_free(rv_rules *r){
  if (r == NULL) return;
  lua_close(r->L);                         /* no __gc can exist: see setmetatable */
  lprox_reset(r);
  rv_free(r->lprox);
  rv_free(r->larg_seen);
  for (size_t k = 0; k < sizeof r->small / sizeof r->small[0]; k++)
    while (r->small[k]) { void *p = r->small[k]; r->small[k] = *(void **)p; free(p); }
  rv_free(r);
}

rv_status rv_rules_add_module(rv_rules *r, const char *name, const char *src,
                              size_t len, rv_err *err){
  struct call c = { .op = OP_ADD_MODULE, .text = src, .len = len, .name = name };
  if (name == NULL || *name == 0 || src == NULL)
    return rv_fail(err, RV_INVALID, "module needs a name and a source");
  return run_protected(r, &c, false, err);
}

rv_status rv_rules_eval(rv_rules *r, const char *expr, const cJSON *vars,
                        cJSON **out, rv_err *err){
  struct call c = { .op = OP_EVAL, .text = expr, .len = expr ? strlen(expr) : 0,
                    .vars = vars };
  rv_status rc;
  *out = NULL;
  if (expr == NULL) return rv_fail(err, RV_INVALID, "no expression");
  if (simple_eval(expr, vars, NULL, NULL, out)) return RV_OK;
  rc = run_protected(r, &c, true, err);
  if (rc == RV_OK) *out = c.out;
  return rc;
}

rv_status rv_rules_eval_extra(rv_rules *r, const char *expr, const cJSON *vars,
                              const char *name, const cJSON *value, cJSON **out, rv_err *err){
  struct call c = { .op = OP_EVAL, .text = expr, .len = expr ? strlen(expr) : 0,
                    .vars = vars, .extra_name = name, .extra = value };
  rv_status rc;
  *out = NULL;
  if (expr == NULL) return rv_fail(err, RV_INVALID, "no expression");
  if (simple_eval(expr, vars, name, value, out)) return RV_OK;
  rc = run_protected(r, &c, true, err);
  if (rc == RV_OK) *out = c.out;
  return rc;
}

rv_status rv_rules_eval_bool(rv_rules *r, const char *expr, const cJSON *vars,
                             bool *out, rv_err *err){
  struct call c = { .op = OP_EVAL_BOOL, .text = expr, .len = expr ? strlen(expr) : 0,
                    .vars = vars };
  rv_status rc;
  int v;
  *out = false;
  if (expr == NULL) return rv_fail(err, RV_INVALID, "no expression");
  if ((v = simple_cond(expr, vars)) >= 0) { *out = v == 1; return RV_OK; }
  rc = run_protected(r, &c, true, err);
  if (rc == RV_OK) *out = c.truth;
  return rc;
}

rv_status rv_rules_run(rv_rules *r, const char *body, const cJSON *vars,
                       cJSON **out_result, cJSON **out_vars, rv_err *err){
  struct call c = { .op = OP_RUN, .text = body, .len = body ? strlen(body) : 0,
                    .vars = vars, .want_vars = out_vars != NULL };
  rv_status rc;
  if (out_result) *out_result = NULL;
  if (out_vars) *out_vars = NULL;
  if (body == NULL) return rv_fail(err, RV_INVALID, "no script");
  rc = run_protected(r, &c, true, err);
  if (rc != RV_OK) return rc;
  if (out_result) *out_result = c.out;
  else cJSON_Delete(c.out);
  if (out_vars) *out_vars = c.out_vars;
  return RV_OK;
}

rv_status rv_rules_call(rv_rules *r, const char *function, const cJSON *arg,
                        cJSON **out, rv_err *err){
  struct call c = { .op = OP_CALL, .text = function, .vars = arg };
  rv_status rc;
  *out = NULL;
  if (function == NULL) return rv_fail(err, RV_INVALID, "no function name");
  rc = run_protected(r, &c, true, err);
  if (rc == RV_OK) *out = c.out;
  return rc;
}

rv_status rv_rules_check_expr(rv_rules *r, const char *expr, rv_err *err){
  struct call c = { .op = OP_CHECK_EXPR, .text = expr, .len = expr ? strlen(expr) : 0 };
  if (expr == NULL) return rv_fail(err, RV_INVALID, "no expression");
  return run_protected(r, &c, true, err);
}

rv_status rv_rules_check_script(rv_rules *r, const char *body, rv_err *err){
  struct call c = { .op = OP_CHECK_SCRIPT, .text = body, .len = body ? strlen(body) : 0 };
  if (body == NULL) return rv_fail(err, RV_INVALID, "no script");
  return run_protected(r, &c, true, err);
}

rv_status rv_rules_check_function(rv_rules *r, const char *function, rv_err *err){
  struct call c = { .op = OP_CHECK_FN, .text = function };
  if (function == NULL) return rv_fail(err, RV_INVALID, "no function name");
  return run_protected(r, &c, true, err);
}

size_t rv_rules_memory_used(const rv_rules *r){
  return r ? r->mem_used : 0;
}
