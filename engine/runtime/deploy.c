/*
** runtime/deploy.c -- deployments and the definition cache.
**
** A deployment stores the BPMN files and every Lua module of scripts/ as
** they were, so an instance always runs the XML and rules it started
** with. Each process gets a content hash over its file and the modules;
** deploying unchanged content creates no version. Definitions are cached
** by id; a deployment's parsed models and its Lua state are shared by its
** definitions and live until the engine closes (definitions are few and
** small; instances are what the cache must not hold).
*/
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "core/sha256.h"
#include "runtime/runtime_int.h"
#include "core/mem.h"
#include "core/buf.h"
#include "cal/cal.h"
#include "lint/lint.h"

struct rv_deployment_entry {
  int64_t    id;
  rv_txmark  mark;
  char     **files; rv_model **models; int n;
  rv_rules  *rules;
};

static void dep_free(rv_deployment_entry *d){
  if (d == NULL) return;
  for (int i = 0; i < d->n; i++) { rv_free(d->files[i]); rv_model_free(d->models[i]); }
  rv_free(d->files);
  rv_free(d->models);
  rv_rules_free(d->rules);
  rv_free(d);
}

void rv__defs_free(rv_engine *e){
  for (int i = 0; i < e->n_defs; i++) { rv_free(e->defs[i]->process_id); rv_free(e->defs[i]); }
  for (int i = 0; i < e->n_old_defs; i++) { rv_free(e->old_defs[i]->process_id); rv_free(e->old_defs[i]); }
  for (int i = 0; i < e->n_deps; i++) dep_free(e->deps[i]);
  for (int i = 0; i < e->n_old_deps; i++) dep_free(e->old_deps[i]);
  rv_free(e->defs); rv_free(e->old_defs);
  rv_free(e->deps); rv_free(e->old_deps);
  e->defs = e->old_defs = NULL; e->deps = e->old_deps = NULL;
  e->n_defs = e->n_deps = e->n_old_defs = e->n_old_deps = 0;
}

/* Definitions and deployments are cached by id. One read inside an open
** transaction in which a deploy wrote rows (a deploy and a start in one
** HTTP batch) may come from those rows; if the transaction or the deploy's
** savepoint is rolled back, SQLite gives those ids to the next rows
** written, and a cached model would run in place of the one deployed then.
** So such an entry stays tentative until a commit with no rollback since;
** after a rollback it is retired (kept until the engine closes: cached
** instances may point to it) and read again. Every other read is of
** committed rows (a deploy that is its own transaction committed them). */
static void mark_read(rv_engine *e, rv_txmark *m){
  rv_store_tx_counts(e->st, &m->commits, &m->rollbacks);
  m->tentative = rv_store_depth(e->st) > 0 && e->deploy_open && m->commits == e->deploy_commits;
}

static bool mark_good(rv_engine *e, rv_txmark *m){
  unsigned commits, rollbacks;
  if (!m->tentative) return true;
  rv_store_tx_counts(e->st, &commits, &rollbacks);
  if (rollbacks != m->rollbacks) return false;
  if (commits != m->commits) m->tentative = false;   /* its transaction committed */
  return true;
}

#define RETIRE(e, arr, n, olds, nolds, i) do {                                  \
    (e)->olds = rv_realloc((e)->olds, sizeof *(e)->olds * (size_t)((e)->nolds + 1)); \
    (e)->olds[(e)->nolds++] = (e)->arr[i];                                      \
    (e)->arr[i] = (e)->arr[--(e)->n];                                           \
  } while (0)

static char *module_name(const char *rel){
  size_t n = strlen(rel);
  char *m;
  if (n > 4 && strcmp(rel + n - 4, ".lua") == 0) n -= 4;
  m = rv_strndup(rel, n);
  for (char *p = m; *p; p++) if (*p == '/') *p = '.';
  return m;
}

static rv_status dep_load(rv_engine *e, int64_t id, rv_deployment_entry **out, rv_err *err){
  sqlite3_stmt *s;
  rv_deployment_entry *d;
  rv_status rc = RV_OK;
  int step = SQLITE_DONE;

  for (int i = 0; i < e->n_deps; i++) {
    if (e->deps[i]->id != id) continue;
    if (mark_good(e, &e->deps[i]->mark)) { *out = e->deps[i]; return RV_OK; }
    RETIRE(e, deps, n_deps, old_deps, n_old_deps, i);
    break;
  }
  d = rv_calloc(1, sizeof *d);
  d->id = id;
  mark_read(e, &d->mark);
  rc = rv_rules_new(&e->limits, &e->cmd_clock, &d->rules, err);   /* frozen per command */
  s = rv_store_stmt(e->st,
    "SELECT path, kind, content FROM deployment_files WHERE deployment_id=? ORDER BY kind DESC, path");
  rv_store_bind(s, "i", id);
  while (rc == RV_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
    const char *path = (const char *)sqlite3_column_text(s, 0);
    const char *kind = (const char *)sqlite3_column_text(s, 1);
    const char *body = (const char *)sqlite3_column_blob(s, 2);
    size_t len = (size_t)sqlite3_column_bytes(s, 2);
    if (strcmp(kind, "lua") == 0) {
      char *name = module_name(path);
      rc = rv_rules_add_module(d->rules, name, body ? body : "", len, err);
      rv_free(name);
    } else {
      rv_diags dg;
      rv_model *m = NULL;
      rv_diags_init(&dg);
      rc = rv_model_parse_memory(body ? body : "", len, path, &dg, &m);
      if (rc != RV_OK) rc = rv_fail(err, RV_CORRUPT, "stored definition '%s' no longer parses", path);
      rv_diags_fini(&dg);
      if (rc == RV_OK) {
        d->files = rv_realloc(d->files, sizeof *d->files * (size_t)(d->n + 1));
        d->models = rv_realloc(d->models, sizeof *d->models * (size_t)(d->n + 1));
        d->files[d->n] = rv_strdup(path);
        d->models[d->n] = m;
        d->n++;
      }
    }
  }
  /* a read that failed (an I/O error) must not leave a deployment with
  ** files missing in the cache: every later command would find it so */
  if (rc == RV_OK && step != SQLITE_DONE)
    rc = rv_fail(err, RV_IO, "deployment %lld: %s", (long long)id, sqlite3_errmsg(rv_store_db(e->st)));
  sqlite3_reset(s);
  if (rc != RV_OK) { dep_free(d); return rc; }
  if (e->n_deps == e->cap_deps) {
    e->cap_deps = e->cap_deps ? e->cap_deps * 2 : 8;
    e->deps = rv_realloc(e->deps, sizeof *e->deps * (size_t)e->cap_deps);
  }
  e->deps[e->n_deps++] = d;
  *out = d;
  return RV_OK;
}

rv_status rv__def_get(rv_engine *e, int64_t def_id, rv_def **out, rv_err *err){
  sqlite3_stmt *s;
  char *process = NULL, *file = NULL;
  int version = 0;
  int64_t dep_id = 0;
  rv_deployment_entry *dep;
  rv_status rc;
  int step;
  rv_def *d;

  *out = NULL;
  for (int i = 0; i < e->n_defs; i++) {
    if (e->defs[i]->id != def_id) continue;
    if (mark_good(e, &e->defs[i]->mark)) { *out = e->defs[i]; return RV_OK; }
    RETIRE(e, defs, n_defs, old_defs, n_old_defs, i);
    break;
  }
  s = rv_store_stmt(e->st, "SELECT process_id, version, deployment_id, file FROM definitions WHERE id=?");
  rv_store_bind(s, "i", def_id);
  if ((step = sqlite3_step(s)) == SQLITE_ROW) {
    process = rv_strdup((const char *)sqlite3_column_text(s, 0));
    version = sqlite3_column_int(s, 1);
    dep_id = sqlite3_column_int64(s, 2);
    file = rv_strdup((const char *)sqlite3_column_text(s, 3));
  } else if (step != SQLITE_DONE) {
    rc = rv_fail(err, RV_IO, "definition %lld: %s", (long long)def_id, sqlite3_errmsg(rv_store_db(e->st)));
    sqlite3_reset(s);
    return rc;
  }
  sqlite3_reset(s);
  if (process == NULL) return rv_fail(err, RV_NOTFOUND, "no definition %lld", (long long)def_id);
  rc = dep_load(e, dep_id, &dep, err);
  if (rc == RV_OK) {
    d = rv_calloc(1, sizeof *d);
    d->id = def_id;
    mark_read(e, &d->mark);
    d->process_id = process;
    d->version = version;
    d->deployment_id = dep_id;
    d->rules = dep->rules;
    d->proc = -1;
    for (int i = 0; i < dep->n && d->proc < 0; i++) {
      if (strcmp(dep->files[i], file) != 0) continue;
      d->model = dep->models[i];
      d->proc = rv_model_process_index(d->model, process);
    }
    if (d->proc < 0) {
      rv_free(d);                      /* process_id is still `process`, freed below */
      rc = rv_fail(err, RV_CORRUPT, "definition %lld: process '%s' missing from its deployment",
                   (long long)def_id, process);
    } else {
      if (e->n_defs == e->cap_defs) {
        e->cap_defs = e->cap_defs ? e->cap_defs * 2 : 16;
        e->defs = rv_realloc(e->defs, sizeof *e->defs * (size_t)e->cap_defs);
      }
      e->defs[e->n_defs++] = d;
      *out = d;
      process = NULL;
    }
  }
  rv_free(process);
  rv_free(file);
  return rc;
}

rv_status rv__def_latest(rv_engine *e, const char *process_id, int version,
                         rv_def **out, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(e->st, version > 0
    ? "SELECT id FROM definitions WHERE process_id=?1 AND version=?2"
    : "SELECT id FROM definitions WHERE process_id=?1 ORDER BY version DESC LIMIT 1");
  int64_t id = 0;
  *out = NULL;
  rv_store_bind(s, "ti", process_id, (int64_t)version);
  if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (id == 0) {
    if (version > 0)
      return rv_fail(err, RV_NOTFOUND, "no version %d of process '%s'", version, process_id);
    return rv_fail(err, RV_NOTFOUND, "no process '%s' is deployed", process_id);
  }
  return rv__def_get(e, id, out, err);
}

/*--- Deploying ----------------------------------------------------------------------*/

typedef struct file_blob { char *path; char *data; size_t len; } file_blob;

static rv_status read_file(const char *path, file_blob *out, rv_err *err){
  FILE *f = fopen(path, "rb");
  long n;
  out->path = NULL; out->data = NULL; out->len = 0;
  if (f == NULL) return rv_fail(err, RV_NOTFOUND, "%s: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return rv_fail(err, RV_IO, "%s: cannot read", path);
  }
  if (n > 16L * 1024 * 1024) { fclose(f); return rv_fail(err, RV_INVALID, "%s: larger than 16 MiB", path); }
  out->data = rv_malloc((size_t)n + 1);
  if (fread(out->data, 1, (size_t)n, f) != (size_t)n) {
    fclose(f); rv_free(out->data); out->data = NULL;
    return rv_fail(err, RV_IO, "%s: short read", path);
  }
  out->data[n] = 0;
  out->len = (size_t)n;
  out->path = rv_strdup(path);
  fclose(f);
  return RV_OK;
}

static int blob_cmp(const void *a, const void *b){
  return strcmp(((const file_blob *)a)->path, ((const file_blob *)b)->path);
}

/* Collect *.lua under dir (recursively); paths relative to dir. */
static rv_status collect_lua(const char *dir, const char *rel, file_blob **v, int *n, rv_err *err){
  char *full = rel[0] ? rv_asprintf("%s/%s", dir, rel) : rv_strdup(dir);
  DIR *d = opendir(full);
  struct dirent *de;
  rv_status rc = RV_OK;
  if (d == NULL) { rv_free(full); return RV_OK; }
  while (rc == RV_OK && (de = readdir(d)) != NULL) {
    char *r, *p;
    struct stat sb;
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.') continue;
    r = rel[0] ? rv_asprintf("%s/%s", rel, de->d_name) : rv_strdup(de->d_name);
    p = rv_asprintf("%s/%s", dir, r);
    if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rc = collect_lua(dir, r, v, n, err);
    else if (len > 4 && strcmp(de->d_name + len - 4, ".lua") == 0) {
      file_blob b;
      rc = read_file(p, &b, err);
      if (rc == RV_OK) {
        rv_free(b.path);
        b.path = rv_strdup(r);
        *v = rv_realloc(*v, sizeof **v * (size_t)(*n + 1));
        (*v)[(*n)++] = b;
      }
    }
    rv_free(r);
    rv_free(p);
  }
  closedir(d);
  rv_free(full);
  return rc;
}

static void hex(const unsigned char *h, size_t n, char *out){
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", h[i]);
}

/* Start events that live without an instance: message, signal and timer
** starts of the latest version. Older versions lose theirs. Their
** subscriptions have no correlation key (engine.c sub_find relies on it). */
static rv_status arm_starts(rv_engine *e, int64_t def_id, const rv_model *m, int proc,
                            const char *process_id, int64_t now, rv_err *err){
  const rv_process *p = &m->processes[proc];
  rv_status rc = rv_store_exec(e->st, err,
    "DELETE FROM subscriptions WHERE instance_id=0 AND definition_id IN"
    " (SELECT id FROM definitions WHERE process_id=?)", "t", process_id);
  if (rc == RV_OK) rc = rv_store_exec(e->st, err,
    "DELETE FROM timers WHERE instance_id=0 AND definition_id IN"
    " (SELECT id FROM definitions WHERE process_id=?)", "t", process_id);
  for (int i = 0; rc == RV_OK && i < p->n_starts; i++) {
    const rv_node *n = &m->nodes[p->starts[i]];
    if (n->ev == RV_EV_MESSAGE || n->ev == RV_EV_SIGNAL) {
      rc = rv_store_exec(e->st, err,
        "INSERT INTO subscriptions(kind, name, corr_key, instance_id, ei, element_id, definition_id)"
        " VALUES(?,?,NULL,0,0,?,?)", "ttti",
        n->ev == RV_EV_MESSAGE ? "message" : "signal", n->ref_name ? n->ref_name : n->id, n->id, def_id);
    } else if (n->ev == RV_EV_TIMER && n->timer_expr && n->timer_expr[0] != '=') {
      int64_t due = -1;
      int repeat = 0;
      if (n->timer_kind == RV_TIMER_CYCLE) {
        rv_cycle cy;
        if (rv_cycle_parse(n->timer_expr, &cy, err) != RV_OK) return RV_INVALID;
        due = rv_cycle_next(&cy, now, 0);
        repeat = cy.repeat < 0 ? -1 : cy.repeat - 1;
      } else if (n->timer_kind == RV_TIMER_DURATION) {
        rv_duration d;
        if (rv_duration_parse(n->timer_expr, &d, err) != RV_OK) return RV_INVALID;
        due = rv_duration_add(now, &d);
      } else if (rv_datetime_parse(n->timer_expr, &due, err) != RV_OK) return RV_INVALID;
      if (due >= 0)
        rc = rv_store_exec(e->st, err,
          "INSERT INTO timers(instance_id, ei, element_id, definition_id, due, repeat_left, fired, armed)"
          " VALUES(0,0,?,?,?,?,0,?)", "tiiii", n->id, def_id, due, (int64_t)repeat, now);
    }
  }
  return rc;
}

rv_status rv_engine_deploy(rv_engine *e, const char *const *files, int n_files,
                           const char *scripts_dir, cJSON **out_report, rv_err *err){
  file_blob *bpmn = NULL, *lua = NULL;
  int n_lua = 0, n_bpmn = 0;
  rv_model **models = NULL;
  rv_status rc = RV_OK;
  cJSON *report = cJSON_CreateObject(), *procs = cJSON_AddArrayToObject(report, "processes");
  cJSON *diag_json = cJSON_CreateArray();
  rv_buf diag_text;
  int64_t now = rv_clock_now(e->clock), dep_id = 0;
  bool any_new = false;
  unsigned long faults0 = rv_store_faults();

  if (out_report) *out_report = NULL;
  rv_buf_init(&diag_text, 16384);
  if (n_files <= 0) rc = rv_fail(err, RV_INVALID, "nothing to deploy");
  /* 1. lint every file; refuse the deployment on any error */
  for (int i = 0; rc == RV_OK && i < n_files; i++) {
    rv_diags dg;
    rv_diags_init(&dg);
    rv_lint_file(files[i], scripts_dir, &dg);
    for (int k = 0; k < dg.n; k++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "file", files[i]);
      cJSON_AddNumberToObject(o, "line", dg.v[k].line);
      cJSON_AddStringToObject(o, "level", dg.v[k].level == RV_DIAG_ERROR ? "error" : "warning");
      cJSON_AddStringToObject(o, "message", dg.v[k].msg);
      cJSON_AddItemToArray(diag_json, o);
      if (dg.v[k].level == RV_DIAG_ERROR)
        rv_buf_printf(&diag_text, "%s%s:%d: error: %s", diag_text.len ? "\n" : "",
                      files[i], dg.v[k].line, dg.v[k].msg);
    }
    if (dg.n_errors > 0) rc = RV_INVALID;
    rv_diags_fini(&dg);
  }
  if (rc == RV_INVALID && diag_text.len)
    rv_fail(err, RV_INVALID, "%s", diag_text.p);
  cJSON_AddItemToObject(report, "diagnostics", diag_json);
  rv_buf_fini(&diag_text);

  /* 2. read the files and the Lua modules */
  if (rc == RV_OK) {
    bpmn = rv_calloc((size_t)n_files, sizeof *bpmn);
    models = rv_calloc((size_t)n_files, sizeof *models);
    for (int i = 0; rc == RV_OK && i < n_files; i++) {
      rc = read_file(files[i], &bpmn[i], err);
      if (rc == RV_OK) {
        rv_diags dg;
        rv_diags_init(&dg);
        n_bpmn++;
        rc = rv_model_parse_memory(bpmn[i].data, bpmn[i].len, files[i], &dg, &models[i]);
        rv_diags_fini(&dg);
      }
    }
  }
  if (rc == RV_OK && scripts_dir) rc = collect_lua(scripts_dir, "", &lua, &n_lua, err);
  if (rc == RV_OK && n_lua > 1) qsort(lua, (size_t)n_lua, sizeof *lua, blob_cmp);

  /* 3. one transaction: deployment, files, new versions, start events */
  if (rc == RV_OK) rc = rv_store_begin(e->st, err);
  if (rc == RV_OK) {
    for (int i = 0; rc == RV_OK && i < n_files; i++) {
      const rv_model *m = models[i];
      for (int p = 0; rc == RV_OK && p < m->n_processes; p++) {
        const rv_process *pr = &m->processes[p];
        rv_sha256_ctx *hs;
        unsigned char h[RV_SHA256_BYTES];
        char hx[2 * RV_SHA256_BYTES + 1];
        sqlite3_stmt *s;
        int latest = 0;
        bool same = false;
        cJSON *o;

        if (!pr->executable) continue;
        hs = rv_sha256_begin();
        rv_sha256_add(hs, bpmn[i].data, bpmn[i].len);
        for (int k = 0; k < n_lua; k++) {
          rv_sha256_add(hs, lua[k].path, strlen(lua[k].path) + 1);
          rv_sha256_add(hs, lua[k].data, lua[k].len);
        }
        rv_sha256_end(hs, h);
        hex(h, sizeof h, hx);
        s = rv_store_stmt(e->st,
          "SELECT version, hash FROM definitions WHERE process_id=? ORDER BY version DESC LIMIT 1");
        rv_store_bind(s, "t", pr->id);
        if (sqlite3_step(s) == SQLITE_ROW) {
          latest = sqlite3_column_int(s, 0);
          same = strcmp((const char *)sqlite3_column_text(s, 1), hx) == 0;
        }
        sqlite3_reset(s);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", pr->id);
        cJSON_AddStringToObject(o, "hash", hx);
        if (same) {
          cJSON_AddNumberToObject(o, "version", latest);
          cJSON_AddBoolToObject(o, "new", false);
        } else {
          int64_t def_id;
          if (dep_id == 0) {
            rc = rv_store_exec(e->st, err,
              "INSERT INTO deployments(name, hash, created) VALUES(?,?,?)", "tti",
              files[0], hx, now);
            dep_id = rv_store_last_id(e->st);
            for (int k = 0; rc == RV_OK && k < n_files; k++) {
              sqlite3_stmt *ins = rv_store_stmt(e->st,
                "INSERT INTO deployment_files(deployment_id, path, kind, content) VALUES(?,?,?,?)");
              rv_store_bind(ins, "itt", dep_id, files[k], "bpmn");
              sqlite3_bind_blob(ins, 4, bpmn[k].data, (int)bpmn[k].len, SQLITE_TRANSIENT);
              if (sqlite3_step(ins) != SQLITE_DONE) rc = rv_fail(err, RV_IO, "store: %s", sqlite3_errmsg(rv_store_db(e->st)));
              sqlite3_reset(ins);
            }
            for (int k = 0; rc == RV_OK && k < n_lua; k++) {
              sqlite3_stmt *ins = rv_store_stmt(e->st,
                "INSERT INTO deployment_files(deployment_id, path, kind, content) VALUES(?,?,?,?)");
              rv_store_bind(ins, "itt", dep_id, lua[k].path, "lua");
              sqlite3_bind_blob(ins, 4, lua[k].data, (int)lua[k].len, SQLITE_TRANSIENT);
              if (sqlite3_step(ins) != SQLITE_DONE) rc = rv_fail(err, RV_IO, "store: %s", sqlite3_errmsg(rv_store_db(e->st)));
              sqlite3_reset(ins);
            }
          }
          if (rc == RV_OK)
            rc = rv_store_exec(e->st, err,
              "INSERT INTO definitions(process_id, version, deployment_id, file, hash, name, created)"
              " VALUES(?,?,?,?,?,?,?)", "tiittti", pr->id, (int64_t)latest + 1, dep_id, files[i],
              hx, pr->name, now);
          def_id = rv_store_last_id(e->st);
          if (rc == RV_OK) rc = arm_starts(e, def_id, m, p, pr->id, now, err);
          cJSON_AddNumberToObject(o, "version", latest + 1);
          cJSON_AddBoolToObject(o, "new", true);
          any_new = true;
        }
        cJSON_AddItemToArray(procs, o);
      }
    }
    if (rc == RV_OK && any_new && rv_store_depth(e->st) > 1) {   /* inside another transaction */
      unsigned rollbacks;
      e->deploy_open = true;
      rv_store_tx_counts(e->st, &e->deploy_commits, &rollbacks);
    }
    if (rc == RV_OK) rc = rv_store_commit(e->st, err);
    else rv_store_rollback(e->st);
    rc = rv_store_failed(rc, faults0, err);
  }
  if (dep_id) cJSON_AddNumberToObject(report, "deployment", (double)dep_id);
  cJSON_AddBoolToObject(report, "changed", any_new);
  for (int i = 0; i < n_bpmn; i++) { rv_free(bpmn[i].path); rv_free(bpmn[i].data); }
  for (int i = 0; models && i < n_files; i++) rv_model_free(models[i]);
  for (int i = 0; i < n_lua; i++) { rv_free(lua[i].path); rv_free(lua[i].data); }
  rv_free(bpmn); rv_free(models); rv_free(lua);
  if (out_report) *out_report = report;
  else cJSON_Delete(report);
  return rc;
}
