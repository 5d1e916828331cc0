/*
** lint/lint.c -- static checks of a BPMN file and its Lua, and the
** `ravand lint` command.
**
** Nothing here runs user code except the top-level chunks of scripts/
** modules (rules/ does that under its sandbox and limits, with a virtual
** clock, as a deployment would). Each diagnostic carries the line of the
** element or flow whose text is wrong; problems inside .lua files name
** the .lua file and line in the message and use line 0.
*/
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "core/clock.h"
#include "core/mem.h"
#include "lint/lint.h"
#include "rules/rules.h"

#define RV_LINT_MAX_LUA_BYTES  ((size_t)8 << 20)
#define RV_LINT_MAX_DEPTH      16

/*--- Loading scripts/ ----------------------------------------------------*/

static bool is_dir(const char *p){
  struct stat st;
  return p != NULL && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b){
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns: new buffer with the file's bytes, caller frees; NULL on error. */
static char *read_all(const char *path, size_t *len){
  FILE *fp = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0, got;
  if (fp == NULL) return NULL;
  do {
    if (n == cap) {
      if (cap > RV_LINT_MAX_LUA_BYTES) { rv_free(buf); fclose(fp); errno = EFBIG; return NULL; }
      cap = cap ? cap * 2 : 4096;
      buf = rv_realloc(buf, cap + 1);
    }
    got = fread(buf + n, 1, cap - n, fp);
    n += got;
  } while (got > 0);
  fclose(fp);
  buf[n] = 0;
  *len = n;
  return buf;
}

/* rules/ appends a traceback to some messages; one line is enough here. */
static void trim_traceback(char *msg){
  char *p = strstr(msg, " | stack traceback:");
  if (p == NULL) p = strstr(msg, "\nstack traceback:");
  if (p != NULL) *p = 0;
}

/* Lua reports "chunk:12: msg"; rewrite it as "shown:12: msg". */
static void lua_file_diag(rv_diags *d, const char *shown, const char *modname, const char *msg){
  size_t ml = strlen(modname);
  const char *rest = NULL;
  if (strncmp(msg, modname, ml) == 0 && msg[ml] == ':') {
    rest = msg + ml;
  } else {
    for (const char *p = strchr(msg, ':'); p != NULL; p = strchr(p + 1, ':')) {
      const char *q = p + 1;
      while (*q >= '0' && *q <= '9') q++;
      if (q > p + 1 && *q == ':') { rest = p; break; }
    }
  }
  if (rest != NULL) rv_diags_add(d, RV_DIAG_ERROR, 0, "%s%s", shown, rest);
  else rv_diags_add(d, RV_DIAG_ERROR, 0, "%s: %s", shown, msg);
}

/* Add every *.lua under dir (rel is the path below the scripts root, ""
** at the top) to r. Directory entries are visited in sorted order so the
** diagnostics come out the same on every machine. */
static void load_dir(rv_rules *r, const char *root, const char *rel, int depth, rv_diags *d){
  char *dirpath = *rel ? rv_asprintf("%s/%s", root, rel) : rv_strdup(root);
  DIR *dir = opendir(dirpath);
  char **names = NULL;
  int n = 0;
  struct dirent *de;

  if (dir == NULL) {
    rv_diags_add(d, RV_DIAG_ERROR, 0, "cannot open scripts directory %s: %s", dirpath, strerror(errno));
    rv_free(dirpath);
    return;
  }
  while ((de = readdir(dir)) != NULL) {
    if (de->d_name[0] == '.') continue;
    names = rv_realloc(names, sizeof *names * (size_t)(n + 1));
    names[n++] = rv_strdup(de->d_name);
  }
  closedir(dir);
  if (n > 0) qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int i = 0; i < n; i++) {
    char *relpath = *rel ? rv_asprintf("%s/%s", rel, names[i]) : rv_strdup(names[i]);
    char *full = rv_asprintf("%s/%s", root, relpath);
    size_t nl = strlen(names[i]);
    if (is_dir(full)) {
      if (depth < RV_LINT_MAX_DEPTH) load_dir(r, root, relpath, depth + 1, d);
    } else if (nl > 4 && strcmp(names[i] + nl - 4, ".lua") == 0) {
      size_t len = 0;
      char *src = read_all(full, &len);
      char *mod = rv_strndup(relpath, strlen(relpath) - 4);
      for (char *p = mod; *p; p++) if (*p == '/') *p = '.';
      if (src == NULL) {
        rv_diags_add(d, RV_DIAG_ERROR, 0, "cannot read %s: %s", full, strerror(errno));
      } else {
        rv_err e;
        memset(&e, 0, sizeof e);
        if (rv_rules_add_module(r, mod, src, len, &e) != RV_OK) {
          trim_traceback(e.msg);
          lua_file_diag(d, full, mod, e.msg);
        }
      }
      rv_free(src);
      rv_free(mod);
    }
    rv_free(full);
    rv_free(relpath);
    rv_free(names[i]);
  }
  rv_free(names);
  rv_free(dirpath);
}

/*--- Checking the model's Lua --------------------------------------------*/

typedef struct lctx { rv_rules *r; rv_diags *d; bool have_scripts; bool warned_no_scripts; } lctx;

/* Message: "<what> '<id>' is not a valid Lua expression: ...". */
static void chk_expr(lctx *L, int line, const char *expr, const char *what, const char *id){
  rv_err e;
  if (expr == NULL) return;
  memset(&e, 0, sizeof e);
  if (rv_rules_check_expr(L->r, expr, &e) == RV_OK) return;
  trim_traceback(e.msg);
  rv_diags_add(L->d, RV_DIAG_ERROR, line, "%s '%s' is not a valid Lua expression: %s",
               what, id, e.msg);
}

/* Timer and due texts: only "=lua" ones are Lua. */
static void chk_eq_expr(lctx *L, int line, const char *text, const char *what, const char *id){
  if (text != NULL && text[0] == '=') chk_expr(L, line, text + 1, what, id);
}

static void chk_node(lctx *L, const rv_node *n){
  rv_err e;
  chk_expr(L, n->line, n->correlation_key, "correlation key of", n->id);
  chk_expr(L, n->line, n->branch_expr, "rv:branch of", n->id);
  chk_expr(L, n->line, n->county_expr, "rv:county of", n->id);
  chk_eq_expr(L, n->line, n->timer_expr, "timer of", n->id);
  chk_eq_expr(L, n->line, n->due, "due date of", n->id);
  chk_expr(L, n->line, n->mi_collection, "multi-instance collection of", n->id);
  chk_expr(L, n->line, n->mi_output_element, "multi-instance outputElement of", n->id);
  chk_expr(L, n->line, n->mi_completion, "completionCondition of", n->id);
  chk_expr(L, n->line, n->mi_cardinality, "loopCardinality of", n->id);
  for (int i = 0; i < n->n_inputs; i++)
    chk_expr(L, n->inputs[i].line, n->inputs[i].expr, "input mapping", n->inputs[i].target);
  for (int i = 0; i < n->n_outputs; i++)
    chk_expr(L, n->outputs[i].line, n->outputs[i].expr, "output mapping", n->outputs[i].target);
  if (n->script != NULL) {
    memset(&e, 0, sizeof e);
    if (rv_rules_check_script(L->r, n->script, &e) != RV_OK) {
      trim_traceback(e.msg);
      rv_diags_add(L->d, RV_DIAG_ERROR, n->line, "script of '%s' is not valid Lua: %s", n->id, e.msg);
    }
  }
  if (n->function != NULL) {
    if (!L->have_scripts) {
      if (!L->warned_no_scripts)
        rv_diags_add(L->d, RV_DIAG_WARNING, n->line,
                     "no scripts directory: Lua function calls (rv:function) are not checked");
      L->warned_no_scripts = true;
      return;
    }
    memset(&e, 0, sizeof e);
    if (rv_rules_check_function(L->r, n->function, &e) != RV_OK) {
      trim_traceback(e.msg);
      rv_diags_add(L->d, RV_DIAG_ERROR, n->line,
                   "'%s' calls Lua function '%s' that does not exist (%s)", n->id, n->function, e.msg);
    }
  }
}

int rv_lint_file(const char *path, const char *scripts_dir, rv_diags *d){
  int errors0 = d->n_errors;
  rv_model *m = NULL;
  rv_rules *r = NULL;
  rv_clock clk;
  rv_err e;

  if (rv_model_parse_file(path, d, &m) != RV_OK) return d->n_errors - errors0;
  rv_model_validate(m, d);
  rv_clock_init_virtual(&clk, 0);
  memset(&e, 0, sizeof e);
  if (rv_rules_new(NULL, &clk, &r, &e) != RV_OK) {
    rv_diags_add(d, RV_DIAG_ERROR, 0, "cannot create the Lua sandbox: %s", e.msg);
  } else {
    lctx L = { r, d, scripts_dir != NULL, false };
    if (scripts_dir != NULL) load_dir(r, scripts_dir, "", 0, d);
    for (int i = 0; i < m->n_flows; i++) {
      const rv_flow *f = &m->flows[i];
      if (f->condition != NULL)
        chk_expr(&L, f->cond_line ? f->cond_line : f->line, f->condition,
                 "condition of sequence flow", f->id);
    }
    for (int i = 0; i < m->n_nodes; i++) chk_node(&L, &m->nodes[i]);
    rv_rules_free(r);
  }
  rv_model_free(m);
  return d->n_errors - errors0;
}

/*--- CLI -----------------------------------------------------------------*/

static void usage(FILE *fp){
  fprintf(fp, "usage: ravand lint [--scripts DIR] [--json] FILE...\n");
}

/* Returns: new string or NULL, caller frees. */
static char *default_scripts(const char *file){
  const char *slash;
  char *p;
  if (is_dir("scripts")) return rv_strdup("scripts");
  slash = strrchr(file, '/');
  p = slash ? rv_asprintf("%.*s/../scripts", (int)(slash - file), file) : rv_strdup("../scripts");
  if (is_dir(p)) return p;
  rv_free(p);
  return NULL;
}

typedef struct jkey { int line, idx; } jkey;
static int jkey_cmp(const void *a, const void *b){
  const jkey *x = a, *y = b;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void add_json(cJSON *arr, const char *file, const rv_diags *d){
  jkey *k = rv_malloc(sizeof *k * (size_t)(d->n ? d->n : 1));
  for (int i = 0; i < d->n; i++) k[i] = (jkey){ d->v[i].line, i };
  qsort(k, (size_t)d->n, sizeof *k, jkey_cmp);
  for (int i = 0; i < d->n; i++) {
    const rv_diag *g = &d->v[k[i].idx];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddNumberToObject(o, "line", g->line);
    cJSON_AddStringToObject(o, "level", g->level == RV_DIAG_ERROR ? "error" : "warning");
    cJSON_AddStringToObject(o, "message", g->msg);
    cJSON_AddItemToArray(arr, o);
  }
  rv_free(k);
}

int rv_lint_main(int argc, char **argv){
  const char *scripts = NULL;
  bool json = false, any_err = false;
  int first = -1;
  cJSON *arr = NULL;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { first = i + 1; break; }
    if (strcmp(a, "--json") == 0) json = true;
    else if (strcmp(a, "--scripts") == 0) {
      if (i + 1 >= argc) { usage(stderr); return 2; }
      scripts = argv[++i];
    } else if (strncmp(a, "--scripts=", 10) == 0) scripts = a + 10;
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "ravand lint: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    } else { first = i; break; }
  }
  if (first < 0 || first >= argc) { usage(stderr); return 2; }
  if (json) arr = cJSON_CreateArray();
  for (int i = first; i < argc; i++) {
    rv_diags d;
    char *dir = scripts ? rv_strdup(scripts) : default_scripts(argv[i]);
    rv_diags_init(&d);
    if (rv_lint_file(argv[i], dir, &d) > 0) any_err = true;
    if (json) add_json(arr, argv[i], &d);
    else rv_diags_print(&d, argv[i], stdout);
    rv_diags_fini(&d);
    rv_free(dir);
  }
  if (json) {
    char *s = cJSON_Print(arr);
    if (s != NULL) { fputs(s, stdout); fputc('\n', stdout); }
    cJSON_free(s);
    cJSON_Delete(arr);
  }
  fflush(stdout);
  return any_err ? 1 : 0;
}
