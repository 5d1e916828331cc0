/*
** journal/replay.c -- run a recording (or a process test) on a fresh
** engine and say how its outputs compare.
**
** A run:
**   1. a temporary directory and SQLite file; a virtual clock;
**   2. the recorded deployments are written out and deployed at their
**      recorded instants (--against swaps the root process's BPMN file,
**      and with --scripts its Lua modules);
**   3. the inputs are applied in order, the clock set to each one's `at`.
**      Targets are found by element, never by id: a completion goes to the
**      open task of that element (the same element instance first), an
**      adapter answer to the pending job of that element, a timer firing
**      to the armed timer of that element. An input whose target does not
**      exist is not applied, and that is noted;
**   4. with --against only, timers of the new version that fell due before
**      the next input (or before the recording was made), and that the
**      recording never fired, fire when due: time passes in a replay too.
**      A plain replay fires only recorded timers, so an engine that was
**      late or down is replayed as it was;
**   5. the outputs are read from the replay's history exactly as record.c
**      read the live one, grouped by input, and compared line by line
**      (decisions excluded).
**
** Verdicts, first that applies: identical; same path (the elements
** entered agree, some other output differs); diverged at a gateway whose
** choice changed; needs input (the replay waits at a task, job or message
** the recording never answered); incident; diverged.
*/
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "journal/journal_int.h"
#include "cal/cal.h"

#define DEFAULT_CLOCK 1774051200000LL    /* 2026-03-21T00:00:00Z */

typedef struct rv__jr_run {
  rv__jr_rec      rec;
  const rv_replay_opts *o;
  rv_engine  *e;
  sqlite3    *db;
  rv_clock    clk;
  char        tmp[256];
  int64_t     root;
  int64_t    *marks;          /* per step: history mark before it */
  char      **why_not;        /* per step: why the input was not applied */
  int         first_fail;     /* first input not applied, -1 */
  cJSON      *waits;          /* what the replay waited for then (or at the end) */
  int64_t     path_mark, sms_mark;
  int         extra_timers;
  rv__jr_result  *res;
} rv__jr_run;

const char *rv_replay_verdict_name(rv_replay_verdict v){
  switch (v) {
  case RV_REPLAY_IDENTICAL:   return "identical";
  case RV_REPLAY_SAME_PATH:   return "same path";
  case RV_REPLAY_DIVERGED:    return "diverges";
  case RV_REPLAY_NEEDS_INPUT: return "needs input";
  case RV_REPLAY_INCIDENT:    return "incident";
  case RV_REPLAY_ERROR:       return "error";
  }
  return "?";
}

/*--- Small helpers --------------------------------------------------------------------*/

/* First column of the first row as int64; fmt: 'i' int64, 't' text (NULL binds NULL). */
static int64_t q_int(sqlite3 *db, int64_t dflt, const char *sql, const char *fmt, ...){
  sqlite3_stmt *s = NULL;
  va_list ap;
  int64_t v = dflt;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) return dflt;
  va_start(ap, fmt);
  for (int i = 0; fmt[i]; i++) {
    if (fmt[i] == 'i') sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
    else {
      const char *t = va_arg(ap, const char *);
      if (t) sqlite3_bind_text(s, i + 1, t, -1, SQLITE_TRANSIENT);
    }
  }
  va_end(ap);
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

static int64_t history_mark(rv__jr_run *r){
  return q_int(r->db, 0, "SELECT coalesce(max(id), 0) FROM history_log", "");
}

static rv_status mkdirs(const char *path, rv_err *err){
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return rv_fail(err, RV_IO, "mkdir %s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST) return rv_fail(err, RV_IO, "mkdir %s: %s", buf, strerror(errno));
  return RV_OK;
}

static rv_status write_file(const char *path, const char *data, size_t len, rv_err *err){
  FILE *f;
  char *dir = rv_strdup(path), *slash = strrchr(dir, '/');
  rv_status rc = RV_OK;
  if (slash) { *slash = 0; rc = mkdirs(dir, err); }
  rv_free(dir);
  if (rc != RV_OK) return rc;
  f = fopen(path, "wb");
  if (f == NULL) return rv_fail(err, RV_IO, "%s: %s", path, strerror(errno));
  if (len && fwrite(data, 1, len, f) != len) rc = rv_fail(err, RV_IO, "%s: short write", path);
  if (fclose(f) != 0 && rc == RV_OK) rc = rv_fail(err, RV_IO, "%s: %s", path, strerror(errno));
  return rc;
}

static char *slurp(const char *path, size_t *len){
  FILE *f = fopen(path, "rb");
  rv_buf b;
  char chunk[8192];
  size_t n;
  *len = 0;
  if (f == NULL) return NULL;
  rv_buf_init(&b, 0);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) rv_buf_add(&b, chunk, n);
  fclose(f);
  *len = b.len;
  return rv_buf_take(&b);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw){
  (void)sb; (void)flag; (void)ftw;
  return remove(path);
}

static void note(rv__jr_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(rv__jr_run *r, const char *fmt, ...){
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  rv_buf_printf(&r->res->report, "  %s\n", line);
}

static void set_where(rv__jr_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_where(rv__jr_result *res, const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->where, sizeof res->where, fmt, ap);
  va_end(ap);
}

static void add_bpmn(rv__jr_result *res, const char *text, size_t len){
  res->bpmn = rv_realloc(res->bpmn, sizeof *res->bpmn * (size_t)(res->n_bpmn + 1));
  res->bpmn_len = rv_realloc(res->bpmn_len, sizeof *res->bpmn_len * (size_t)(res->n_bpmn + 1));
  res->bpmn[res->n_bpmn] = rv_strndup(text ? text : "", len);
  res->bpmn_len[res->n_bpmn] = len;
  res->n_bpmn++;
}

static const char *S(const char *s){ return s ? s : ""; }

static int64_t time_of(const cJSON *v, int64_t dflt){
  int64_t ms;
  if (cJSON_IsNumber(v)) return rv_num_i64(v->valuedouble);
  if (cJSON_IsString(v) && rv_datetime_parse(v->valuestring, &ms, NULL) == RV_OK) return ms;
  return dflt;
}

/*--- Instances ------------------------------------------------------------------------*/

static void find_root(rv__jr_run *r){
  const char *proc = rv_json_str(r->rec.header, "process");
  if (r->root) return;
  r->root = q_int(r->db, 0, "SELECT min(id) FROM instances WHERE coalesce(parent_instance, 0)=0"
                  " AND (?1 IS NULL OR process_id=?1)", "t", proc);
}

/* The replay's instance number k (1 = root), or 0 when it does not exist. */
static int64_t inst_of(rv__jr_run *r, const cJSON *j){
  rv__jr_tree t;
  int k = (int)rv_json_int(j, "inst", 1);
  int64_t id = 0;
  find_root(r);
  rv__jr_tree_load(r->db, r->root, &t);
  if (k >= 1 && k <= t.n) id = t.ids[k - 1];
  rv__jr_tree_fini(&t);
  return id;
}

/*--- Deploying --------------------------------------------------------------------------*/

static rv_status deploy_recorded(rv__jr_run *r, rv_err *err){
  const cJSON *i1 = r->rec.n_insts ? r->rec.insts[0] : NULL;
  const char *root_file = rv_json_str(i1, "file");
  int root_dep = (int)rv_json_int(i1, "deployment", 1);
  bool swapped = false;
  rv_status rc = RV_OK;

  if (r->rec.n_deps == 0) return rv_fail(err, RV_INVALID, "the recording embeds no deployment");
  for (int d = 0; rc == RV_OK && d < r->rec.n_deps; d++) {
    const rv__jr_dep *dep = &r->rec.deps[d];
    char dir[512], scripts[600];
    const char **files = NULL;
    char **paths = NULL;
    int nf = 0;
    bool own_scripts = r->o && r->o->against && r->o->scripts_dir && dep->id == root_dep;
    snprintf(dir, sizeof dir, "%s/dep%d", r->tmp, dep->id);
    snprintf(scripts, sizeof scripts, "%s/scripts", dir);
    rc = mkdirs(scripts, err);
    for (int i = 0; rc == RV_OK && i < r->rec.n_files; i++) {
      const rv__jr_file *f = &r->rec.files[i];
      char *path;
      if (f->dep != dep->id) continue;
      if (strchr(f->name, '\\') || strstr(f->name, "..") || f->name[0] == '/')
        { rc = rv_fail(err, RV_INVALID, "bad file name '%s' in the recording", f->name); break; }
      if (strcmp(f->kind, "lua") == 0) {
        if (own_scripts) continue;
        path = rv_asprintf("%s/%s", scripts, f->name);
        rc = write_file(path, f->text.p, f->text.len, err);
        rv_free(path);
        continue;
      }
      path = rv_asprintf("%s/%s", dir, f->name);
      if (r->o && r->o->against && dep->id == root_dep && root_file && strcmp(f->name, root_file) == 0) {
        size_t len;
        char *text = slurp(r->o->against, &len);
        if (text == NULL) rc = rv_fail(err, RV_NOTFOUND, "%s: %s", r->o->against, strerror(errno));
        else {
          rc = write_file(path, text, len, err);
          add_bpmn(r->res, text, len);
        }
        rv_free(text);
        swapped = true;
      } else {
        rc = write_file(path, f->text.p, f->text.len, err);
        add_bpmn(r->res, f->text.p, f->text.len);
      }
      files = rv_realloc(files, sizeof *files * (size_t)(nf + 1));
      paths = rv_realloc(paths, sizeof *paths * (size_t)(nf + 1));
      files[nf] = paths[nf] = path;
      nf++;
    }
    if (rc == RV_OK) {
      cJSON *rep = NULL;
      rv_clock_set(&r->clk, dep->created);
      rc = rv_engine_deploy(r->e, files, nf, own_scripts ? r->o->scripts_dir : scripts, &rep, err);
      cJSON_Delete(rep);
    }
    for (int i = 0; i < nf; i++) rv_free(paths[i]);
    rv_free(paths);
    rv_free(files);
  }
  if (rc == RV_OK && r->o && r->o->against && !swapped)
    rc = rv_fail(err, RV_INVALID, "the recording has no file '%s' to replace", root_file ? root_file : "?");
  if (rc == RV_OK && r->o && r->o->against && r->rec.n_insts > 0 &&
      q_int(r->db, 0, "SELECT count(*) FROM definitions WHERE process_id=?", "t",
            rv_json_str(i1, "process")) == 0)
    rc = rv_fail(err, RV_INVALID, "%s does not define process '%s'", r->o->against,
                 rv_json_str(i1, "process"));
  /* a plain replay runs exactly what was recorded */
  for (int k = 0; rc == RV_OK && !(r->o && r->o->against) && k < r->rec.n_insts; k++) {
    const char *p = rv_json_str(r->rec.insts[k], "process"), *h = rv_json_str(r->rec.insts[k], "hash");
    if (p && h && q_int(r->db, 0, "SELECT count(*) FROM definitions WHERE process_id=? AND hash=?",
                        "tt", p, h) == 0)
      rc = rv_fail(err, RV_CORRUPT, "the embedded files do not hash to the recorded definition of '%s'", p);
  }
  return rc;
}

static rv_status deploy_test(rv__jr_run *r, rv_err *err){
  rv_status rc = RV_OK;
  if (r->rec.n_deploys == 0) return rv_fail(err, RV_INVALID, "a process test needs a {\"deploy\":[...]} line");
  for (int d = 0; rc == RV_OK && d < r->rec.n_deploys; d++) {
    const cJSON *dl = r->rec.deploys[d], *fs = cJSON_GetObjectItemCaseSensitive(dl, "deploy"), *it;
    const char *sd = rv_json_str(dl, "scripts");
    char *scripts = sd ? (sd[0] == '/' ? rv_strdup(sd) : rv_asprintf("%s/%s", r->rec.dir, sd)) : NULL;
    const char **files = NULL;
    char **paths = NULL;
    int nf = 0;
    cJSON *rep = NULL;
    const cJSON *arr = cJSON_IsArray(fs) ? fs : NULL;
    cJSON_ArrayForEach(it, arr) {
      if (!cJSON_IsString(it)) continue;
      files = rv_realloc(files, sizeof *files * (size_t)(nf + 1));
      paths = rv_realloc(paths, sizeof *paths * (size_t)(nf + 1));
      paths[nf] = it->valuestring[0] == '/' ? rv_strdup(it->valuestring)
                                            : rv_asprintf("%s/%s", r->rec.dir, it->valuestring);
      files[nf] = paths[nf];
      nf++;
    }
    if (cJSON_IsString(fs)) {
      files = rv_malloc(sizeof *files);
      paths = rv_malloc(sizeof *paths);
      paths[0] = fs->valuestring[0] == '/' ? rv_strdup(fs->valuestring)
                                           : rv_asprintf("%s/%s", r->rec.dir, fs->valuestring);
      files[0] = paths[0];
      nf = 1;
    }
    for (int i = 0; i < nf; i++) {
      size_t len;
      char *text = slurp(paths[i], &len);
      if (text) add_bpmn(r->res, text, len);
      rv_free(text);
    }
    rc = nf ? rv_engine_deploy(r->e, files, nf, scripts, &rep, err)
            : rv_fail(err, RV_INVALID, "line {\"deploy\":...} names no file");
    cJSON_Delete(rep);
    for (int i = 0; i < nf; i++) rv_free(paths[i]);
    rv_free(paths);
    rv_free(files);
    rv_free(scripts);
  }
  return rc;
}

/*--- Inputs --------------------------------------------------------------------------------*/

static rv_job_outcome outcome_of(const char *s){
  if (s && strcmp(s, "failed") == 0) return RV_JOB_FAILED;
  if (s && strcmp(s, "error") == 0) return RV_JOB_BPMN_ERROR;
  return RV_JOB_OK;
}

static rv_status fire_due_all(rv__jr_run *r){
  for (int i = 0; i < 1000; i++) if (rv_engine_fire_due(r->e) == 0) break;
  return RV_OK;
}

static rv_status apply_input(rv__jr_run *r, const cJSON *j, rv_err *err){
  const char *kind = rv_json_str(j, "in"), *el = rv_json_str(j, "element");
  const cJSON *obj;
  int64_t ei = rv_json_int(j, "ei", -1), id, target;

  if (kind == NULL) return rv_fail(err, RV_INVALID, "an input needs \"in\"");
  if (strcmp(kind, "start") == 0) {
    const char *proc = rv_json_str(j, "process");
    int version = 0;
    if (proc == NULL) proc = rv_json_str(r->rec.header, "process");
    if (proc == NULL) return rv_fail(err, RV_INVALID, "start: which process?");
    if (!(r->o && r->o->against)) {
      for (int k = 0; k < r->rec.n_insts; k++) {
        const char *p = rv_json_str(r->rec.insts[k], "process");
        if (p && strcmp(p, proc) == 0 && version == 0)
          version = (int)q_int(r->db, 0, "SELECT version FROM definitions WHERE process_id=? AND hash=?",
                               "tt", proc, rv_json_str(r->rec.insts[k], "hash"));
      }
    }
    obj = cJSON_GetObjectItemCaseSensitive(j, "vars");
    return rv_engine_start(r->e, proc, version, cJSON_IsObject(obj) ? obj : NULL,
                           rv_json_str(j, "business_key"), &id, err);
  }
  if (strcmp(kind, "message") == 0) {
    cJSON *out = NULL;
    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(j, "ttl");
    rv_status rc;
    obj = cJSON_GetObjectItemCaseSensitive(j, "payload");
    rc = rv_engine_correlate(r->e, rv_json_str(j, "name"), rv_json_str(j, "key"),
                             cJSON_IsObject(obj) ? obj : NULL, rv_json_str(j, "message_id"),
                             cJSON_IsNumber(ttl) ? rv_num_i64(ttl->valuedouble) : -1, &out, err);
    cJSON_Delete(out);
    return rc;
  }
  if (strcmp(kind, "signal") == 0) {
    obj = cJSON_GetObjectItemCaseSensitive(j, "payload");
    return rv_engine_signal(r->e, rv_json_str(j, "name"), cJSON_IsObject(obj) ? obj : NULL, NULL, err);
  }
  if (strcmp(kind, "time") == 0) {
    const char *adv = rv_json_str(j, "advance");
    int64_t now = rv_clock_now(&r->clk), to = time_of(cJSON_GetObjectItemCaseSensitive(j, "to"), -1);
    if (adv) {
      rv_duration d;
      rv_status rc = rv_duration_parse(adv, &d, err);
      if (rc != RV_OK) return rc;
      to = rv_duration_add(now, &d);
    }
    if (to < 0) return rv_fail(err, RV_INVALID, "time: give \"advance\": DURATION or \"to\": TIME");
    if (to > now) rv_clock_set(&r->clk, to);
    return fire_due_all(r);
  }
  id = inst_of(r, j);
  if (strcmp(kind, "timer") == 0) {
    target = id ? q_int(r->db, 0, "SELECT id FROM timers WHERE instance_id=?1 AND element_id=?2"
                        " ORDER BY ei=?3 DESC, due, id LIMIT 1", "iti", id, el, ei)
                : q_int(r->db, 0, "SELECT id FROM timers WHERE instance_id=0 AND element_id=?"
                        " ORDER BY due, id LIMIT 1", "t", el);
    if (target == 0) return rv_fail(err, RV_NOTFOUND, "no timer of '%s' is armed", el ? el : "?");
    return rv_engine_fire_timer(r->e, target, err);
  }
  if (id == 0) return rv_fail(err, RV_NOTFOUND, "instance %lld of the tree does not exist",
                              (long long)rv_json_int(j, "inst", 1));
  if (strcmp(kind, "complete") == 0) {
    target = q_int(r->db, 0, "SELECT id FROM tasks WHERE instance_id=?1 AND element_id=?2 AND state='open'"
                   " ORDER BY ei=?3 DESC, id LIMIT 1", "iti", id, el, ei);
    if (target == 0) return rv_fail(err, RV_NOTFOUND, "no open task '%s'", el ? el : "?");
    obj = cJSON_GetObjectItemCaseSensitive(j, "data");
    return rv_engine_complete_task(r->e, target, cJSON_IsObject(obj) ? obj : NULL,
                                   rv_json_str(j, "actor"), err);
  }
  if (strcmp(kind, "job") == 0) {
    if (rv_json_bool(j, "stale", false)) return RV_OK;   /* changed nothing live either */
    target = q_int(r->db, 0, "SELECT id FROM jobs WHERE instance_id=?1 AND element_id=?2"
                   " AND state='pending' AND key = instance_id||':'||ei||':'||element_id"
                   "||coalesce(':'||?3, '') ORDER BY ei=?4 DESC, id LIMIT 1", "itti",
                   id, el, rv_json_str(j, "suffix"), ei);
    if (target == 0) return rv_fail(err, RV_NOTFOUND, "no pending job of '%s'", el ? el : "?");
    return rv_engine_job_result(r->e, target, outcome_of(rv_json_str(j, "outcome")),
                                cJSON_GetObjectItemCaseSensitive(j, "result"),
                                rv_json_str(j, "code"), rv_json_str(j, "message"), err);
  }
  if (strcmp(kind, "claim") == 0 || strcmp(kind, "unclaim") == 0 || strcmp(kind, "transfer") == 0) {
    /* task assignment (runtime/taskops.c): the open task of that element */
    target = q_int(r->db, 0, "SELECT id FROM tasks WHERE instance_id=?1 AND element_id=?2 AND state='open'"
                   " ORDER BY ei=?3 DESC, id LIMIT 1", "iti", id, el, ei);
    if (target == 0) return rv_fail(err, RV_NOTFOUND, "no open task '%s'", el ? el : "?");
    if (kind[0] == 't')
      return rv_engine_task_transfer(r->e, target, rv_json_str(j, "branch"), rv_json_str(j, "actor"),
                                     rv_json_str(j, "reason"), err);
    return (kind[0] == 'c' ? rv_engine_task_claim : rv_engine_task_unclaim)(r->e, target,
                                                                            rv_json_str(j, "user"), err);
  }
  if (strcmp(kind, "cancel") == 0) return rv_engine_cancel(r->e, id, err);
  if (strcmp(kind, "retry") == 0) {
    target = q_int(r->db, 0, "SELECT id FROM incidents WHERE instance_id=?1 AND element_id=?2"
                   " AND state='open' ORDER BY ei=?3 DESC, id LIMIT 1", "iti", id, el, ei);
    if (target == 0) return rv_fail(err, RV_NOTFOUND, "no open incident at '%s'", el ? el : "?");
    return rv_engine_retry_incident(r->e, target, err);
  }
  return rv_fail(err, RV_INVALID, "unknown input \"%s\"", kind);
}

/* The adapter answers given inside the input's command (format 2,
** "answers": record.c), each applied as the "job" input it is, in the same
** step: its outputs belong to the input, as they did live. */
static rv_status apply_answers(rv__jr_run *r, const cJSON *j, rv_err *err){
  const cJSON *a;
  cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(j, "answers")) {
    rv_status rc;
    if (!cJSON_IsObject(a) || rv_json_str(a, "in") == NULL || strcmp(rv_json_str(a, "in"), "job") != 0)
      return rv_fail(err, RV_INVALID, "\"answers\" holds \"job\" inputs only");
    rc = apply_input(r, a, err);
    if (rc != RV_OK) return rc;
  }
  return RV_OK;
}

/* What the tree waits for now: open tasks, pending jobs, subscriptions. */
static cJSON *waits_now(rv__jr_run *r){
  cJSON *a = cJSON_CreateArray();
  rv__jr_tree t;
  char *list, *sql;
  sqlite3_stmt *s = NULL;
  find_root(r);
  rv__jr_tree_load(r->db, r->root, &t);
  list = rv__jr_tree_sql_list(&t);
  sql = rv_asprintf(
    "SELECT 'task', instance_id, element_id, NULL FROM tasks WHERE instance_id IN (%s) AND state='open'"
    " UNION ALL SELECT 'job', instance_id, element_id, adapter FROM jobs WHERE instance_id IN (%s)"
    "  AND state='pending' AND notify=0"
    " UNION ALL SELECT kind, instance_id, element_id, name FROM subscriptions WHERE instance_id IN (%s)",
    list, list, list);
  sqlite3_prepare_v2(r->db, sql, -1, &s, NULL);
  while (sqlite3_step(s) == SQLITE_ROW) {
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "kind", (const char *)sqlite3_column_text(s, 0));
    cJSON_AddNumberToObject(w, "inst", rv__jr_tree_index(&t, sqlite3_column_int64(s, 1)));
    cJSON_AddStringToObject(w, "element", (const char *)sqlite3_column_text(s, 2));
    if (sqlite3_column_type(s, 3) != SQLITE_NULL)
      cJSON_AddStringToObject(w, "name", (const char *)sqlite3_column_text(s, 3));
    cJSON_AddItemToArray(a, w);
  }
  sqlite3_finalize(s);
  rv_free(sql);
  rv_free(list);
  rv__jr_tree_fini(&t);
  return a;
}

/* Does a later recorded input fire this timer (inst k, element)? */
static bool timer_recorded(const rv__jr_run *r, int from, int k, const char *el){
  for (int i = from; i < r->rec.n_steps; i++) {
    const cJSON *j = r->rec.steps[i].j;
    const char *kind = rv_json_str(j, "in"), *e2 = rv_json_str(j, "element");
    if (kind && strcmp(kind, "timer") == 0 && e2 && strcmp(e2, el) == 0 &&
        rv_json_int(j, "inst", 1) == k) return true;
  }
  return false;
}

/* --against: fire the timers that fell due before horizon and that no
** remaining recorded input fires (see the file header, step 4). */
static void fire_unrecorded(rv__jr_run *r, int from, int64_t horizon){
  for (int guard = 0; guard < 1000; guard++) {
    rv__jr_tree t;
    char *list, *sql;
    sqlite3_stmt *s = NULL;
    int64_t fire = 0, due = 0;
    find_root(r);
    rv__jr_tree_load(r->db, r->root, &t);
    list = rv__jr_tree_sql_list(&t);
    sql = rv_asprintf("SELECT id, instance_id, element_id, due FROM timers WHERE instance_id IN (%s)"
                      " AND due<? ORDER BY due, id", list);
    sqlite3_prepare_v2(r->db, sql, -1, &s, NULL);
    sqlite3_bind_int64(s, 1, horizon);
    while (fire == 0 && sqlite3_step(s) == SQLITE_ROW) {
      int k = rv__jr_tree_index(&t, sqlite3_column_int64(s, 1));
      if (!timer_recorded(r, from, k, (const char *)sqlite3_column_text(s, 2))) {
        fire = sqlite3_column_int64(s, 0);
        due = sqlite3_column_int64(s, 3);
      }
    }
    sqlite3_finalize(s);
    rv_free(sql);
    rv_free(list);
    rv__jr_tree_fini(&t);
    if (fire == 0) return;
    if (due > rv_clock_now(&r->clk)) rv_clock_set(&r->clk, due);
    if (rv_engine_fire_timer(r->e, fire, NULL) != RV_OK) return;
    r->extra_timers++;
  }
}

/*--- Comparing --------------------------------------------------------------------------*/

/* Canonical strings of the lines that are compared, and where they are. */
typedef struct cmpv { char **s; int *at; int n; } cmpv;

static void cmpv_build(const rv__jr_outs *o, cmpv *v, const char *only){
  v->s = rv_malloc(sizeof *v->s * (size_t)(o->n + 1));
  v->at = rv_malloc(sizeof *v->at * (size_t)(o->n + 1));
  v->n = 0;
  for (int i = 0; i < o->n; i++) {
    const char *k = rv_json_str(o->v[i], "out");
    if (rv__jr_is_info(o->v[i])) continue;
    if (only && (k == NULL || strcmp(k, only) != 0)) continue;
    v->s[v->n] = rv__jr_canon(o->v[i]);
    v->at[v->n] = i;
    v->n++;
  }
}

static void cmpv_fini(cmpv *v){
  for (int i = 0; i < v->n; i++) rv_free(v->s[i]);
  rv_free(v->s);
  rv_free(v->at);
}

/* First index where the two differ, or -1 when equal. */
static int cmpv_diff(const cmpv *a, const cmpv *b){
  int n = a->n < b->n ? a->n : b->n;
  for (int i = 0; i < n; i++) if (strcmp(a->s[i], b->s[i]) != 0) return i;
  return a->n == b->n ? -1 : n;
}

/* A short human form of a line: "enter review", "flow f3", ... */
static void brief(const cJSON *l, char *buf, size_t n){
  const char *k = rv_json_str(l, "out"), *el = rv_json_str(l, "element");
  if (l == NULL) { snprintf(buf, n, "(nothing)"); return; }
  if (k && strcmp(k, "flow") == 0) snprintf(buf, n, "flow %s", S(rv_json_str(l, "flow")));
  else if (k && strcmp(k, "status") == 0) snprintf(buf, n, "status '%s'", S(rv_json_str(l, "text")));
  else if (k && strcmp(k, "sms") == 0) snprintf(buf, n, "SMS '%s'", S(rv_json_str(l, "text")));
  else if (k && strcmp(k, "incident") == 0) snprintf(buf, n, "incident at %s: %s", el ? el : "?",
                                                     S(rv_json_str(l, "message")));
  else if (k && strcmp(k, "instance") == 0) snprintf(buf, n, "instance %s", S(rv_json_str(l, "event")));
  else if (k && strcmp(k, "event") == 0) snprintf(buf, n, "%s %s", S(rv_json_str(l, "event")), el ? el : "");
  else if (k && strcmp(k, "end") == 0) snprintf(buf, n, "end state (%s)", S(rv_json_str(l, "status")));
  else if (k && strcmp(k, "job") == 0) {
    char *in = rv_json_print(cJSON_GetObjectItemCaseSensitive(l, "input"));
    snprintf(buf, n, "job %s input %.120s%s", el ? el : "?", in, strlen(in) > 120 ? "..." : "");
    rv_free(in);
  }
  else if (el) snprintf(buf, n, "%s %s", k ? k : "?", el);
  else {
    char *t = rv_json_print(l);
    snprintf(buf, n, "%s", t);
    rv_free(t);
  }
  if (rv_json_int(l, "inst", 1) != 1 && strlen(buf) + 16 < n)
    snprintf(buf + strlen(buf), n - strlen(buf), " (instance %lld)", (long long)rv_json_int(l, "inst", 1));
}

/* The nearest decision before line `at` of instance k, or NULL. */
static const cJSON *decision_before(const rv__jr_outs *o, int at, int k){
  for (int i = at - 1; i >= 0; i--)
    if (strcmp(S(rv_json_str(o->v[i], "out")), "decision") == 0 && rv_json_int(o->v[i], "inst", 1) == k)
      return o->v[i];
  return NULL;
}

static const char *chosen(const cJSON *d){
  const char *t = rv_json_str(d, "detail"), *arrow = t ? strstr(t, " -> ") : NULL;
  while (arrow && strstr(arrow + 4, " -> ")) arrow = strstr(arrow + 4, " -> ");
  return arrow ? arrow + 4 : (t ? t : "");
}

/* Note every difference of two end states; the first one also becomes
** the verdict's one-line "where". */
static void end_diff(rv__jr_run *r, const cJSON *e, const cJSON *a){
  size_t before = r->res->report.len;
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(e, "vars"), *av = cJSON_GetObjectItemCaseSensitive(a, "vars"), *it;
  static const char *const fields[] = { "status", "status_text", "waiting", "timers", NULL };
  for (int i = 0; fields[i]; i++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, fields[i]), *y = cJSON_GetObjectItemCaseSensitive(a, fields[i]);
    if (!cJSON_Compare(x, y, 1) && (x || y)) {
      char *xs = rv_json_print(x), *ys = rv_json_print(y);
      note(r, "%s: recorded %s, replayed %s", fields[i], xs, ys);
      rv_free(xs); rv_free(ys);
    }
  }
  cJSON_ArrayForEach(it, ev) {
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(av, it->string);
    if (!cJSON_Compare(it, y, 1)) {
      char *xs = rv_json_print(it), *ys = y ? rv_json_print(y) : rv_strdup("(unset)");
      note(r, "variable %s: recorded %s, replayed %s", it->string, xs, ys);
      rv_free(xs); rv_free(ys);
    }
  }
  cJSON_ArrayForEach(it, av)
    if (cJSON_GetObjectItemCaseSensitive(ev, it->string) == NULL) {
      char *ys = rv_json_print(it);
      note(r, "variable %s: recorded (unset), replayed %s", it->string, ys);
      rv_free(ys);
    }
  if (r->res->report.len > before) {
    const char *first = r->res->report.p + before + 2;      /* past the indent */
    size_t len = strcspn(first, "\n");
    set_where(r->res, "end of instance %lld: %.*s", (long long)rv_json_int(e, "inst", 1),
              (int)(len > 200 ? 200 : len), first);
  }
}

static const char *step_name(const rv__jr_run *r, int g, char *buf, size_t n){
  const cJSON *j;
  if (g < 0 || g >= r->rec.n_steps) { snprintf(buf, n, "before any input"); return buf; }
  j = r->rec.steps[g].j;
  snprintf(buf, n, "input %d (line %d: %s%s%s)", g + 1, r->rec.steps[g].lineno,
           rv_json_str(j, "in") ? rv_json_str(j, "in") : "expect",
           rv_json_str(j, "element") || rv_json_str(j, "name") ? " " : "",
           rv_json_str(j, "element") ? rv_json_str(j, "element")
           : rv_json_str(j, "name") ? rv_json_str(j, "name") : "");
  return buf;
}

/* Is there a recorded input that answers wait w? */
static bool answered(const rv__jr_run *r, const cJSON *w){
  const char *kind = rv_json_str(w, "kind"), *el = rv_json_str(w, "element"), *name = rv_json_str(w, "name");
  const char *want = strcmp(kind, "task") == 0 ? "complete" : strcmp(kind, "job") == 0 ? "job" : kind;
  bool by_name = strcmp(kind, "message") == 0 || strcmp(kind, "signal") == 0;
  for (int i = 0; i < r->rec.n_steps; i++) {
    const cJSON *j = r->rec.steps[i].j;
    const char *k = rv_json_str(j, "in");
    const char *x = rv_json_str(j, by_name ? "name" : "element");
    if (k && strcmp(k, want) == 0 && x && strcmp(x, by_name ? (name ? name : "") : el) == 0) return true;
  }
  return false;
}

static void classify(rv__jr_run *r){
  rv__jr_result *res = r->res;
  const rv__jr_outs *E = &r->rec.outs, *A = &res->outs;
  cmpv ce, ca, pe, pa;
  int d, dp, unapplied = 0;
  char be[300], ba[300], gname[200];

  for (int i = 0; i < r->rec.n_steps; i++) if (r->why_not[i]) unapplied++;
  if (r->rec.is_test && E->n == 0) {     /* a process test without recorded outputs */
    for (int i = 0; i < r->rec.n_steps; i++)
      if (r->why_not[i]) note(r, "%s was not applied: %s", step_name(r, i, gname, sizeof gname), r->why_not[i]);
    res->verdict = unapplied == 0 && res->n_failed == 0 ? RV_REPLAY_IDENTICAL : RV_REPLAY_DIVERGED;
    if (unapplied) set_where(res, "%d input(s) could not be applied", unapplied);
    return;
  }
  cmpv_build(E, &ce, NULL);
  cmpv_build(A, &ca, NULL);
  cmpv_build(E, &pe, "enter");
  cmpv_build(A, &pa, "enter");
  d = cmpv_diff(&ce, &ca);
  dp = cmpv_diff(&pe, &pa);
  res->verdict = RV_REPLAY_DIVERGED;
  if (d < 0 && unapplied == 0) {
    res->verdict = RV_REPLAY_IDENTICAL;
    goto done;
  }
  if (d >= 0) {          /* the first difference, in full */
    const cJSON *el = d < ce.n ? E->v[ce.at[d]] : NULL, *al = d < ca.n ? A->v[ca.at[d]] : NULL;
    const cJSON *de, *da;
    int k = (int)rv_json_int(el ? el : al, "inst", 1);
    brief(el, be, sizeof be);
    brief(al, ba, sizeof ba);
    note(r, "first difference, after %s:", step_name(r, el ? E->group[ce.at[d]] : A->group[ca.at[d]],
                                                    gname, sizeof gname));
    note(r, "  recorded: %s", be);
    note(r, "  replayed: %s", ba);
    de = decision_before(E, el ? ce.at[d] : E->n, k);
    da = decision_before(A, al ? ca.at[d] : A->n, k);
    if (de || da) {
      if (de) note(r, "  gateway %s, recorded: %s", S(rv_json_str(de, "element")), S(rv_json_str(de, "detail")));
      if (da) note(r, "  gateway %s, replayed: %s", S(rv_json_str(da, "element")), S(rv_json_str(da, "detail")));
    }
    set_where(res, "expected %s, got %s", be, ba);
    if (el && al && strcmp(S(rv_json_str(el, "out")), "end") == 0 && strcmp(S(rv_json_str(al, "out")), "end") == 0)
      end_diff(r, el, al);
  }
  for (int i = 0; i < r->rec.n_steps; i++)
    if (r->why_not[i]) note(r, "%s was not applied: %s", step_name(r, i, gname, sizeof gname), r->why_not[i]);
  if (dp < 0 && unapplied == 0) { res->verdict = RV_REPLAY_SAME_PATH; goto done; }
  /* a gateway that chose differently before the paths part */
  if (dp >= 0) {
    int pos = dp < pa.n ? pa.at[dp] : A->n;
    int k = (int)rv_json_int(dp < pa.n ? A->v[pa.at[dp]] : (dp < pe.n ? E->v[pe.at[dp]] : NULL), "inst", 1);
    const cJSON *da = decision_before(A, pos, k);
    const cJSON *de = decision_before(E, dp < pe.n ? pe.at[dp] : E->n, k);
    brief(dp < pe.n ? E->v[pe.at[dp]] : NULL, be, sizeof be);
    brief(dp < pa.n ? A->v[pa.at[dp]] : NULL, ba, sizeof ba);
    if (da && de && strcmp(S(rv_json_str(da, "element")), S(rv_json_str(de, "element"))) == 0 &&
        strcmp(chosen(da), chosen(de)) != 0) {
      set_where(res, "at %s: recorded -> %s, now -> %s (%s instead of %s)",
               S(rv_json_str(da, "element")), chosen(de), chosen(da), ba, be);
      goto done;
    }
    set_where(res, "expected %s, got %s", be, ba);
  }
  {
    const cJSON *w;
    cJSON_ArrayForEach(w, r->waits) {
      if (answered(r, w)) continue;
      res->verdict = RV_REPLAY_NEEDS_INPUT;
      set_where(res, "%s '%s'%s%s, which the recording never answered",
               strcmp(rv_json_str(w, "kind"), "task") == 0 ? "user task"
               : strcmp(rv_json_str(w, "kind"), "job") == 0 ? "adapter answer for"
               : rv_json_str(w, "kind"), rv_json_str(w, "element"),
               rv_json_str(w, "name") && strcmp(rv_json_str(w, "kind"), "job") != 0 ? " named " : "",
               rv_json_str(w, "name") && strcmp(rv_json_str(w, "kind"), "job") != 0 ? rv_json_str(w, "name") : "");
      goto done;
    }
  }
  for (int i = 0; i < ca.n; i++) {
    const cJSON *l = A->v[ca.at[i]];
    bool known = false;
    if (strcmp(S(rv_json_str(l, "out")), "incident") != 0) continue;
    for (int k = 0; k < ce.n && !known; k++) if (strcmp(ce.s[k], ca.s[i]) == 0) known = true;
    if (!known) {
      res->verdict = RV_REPLAY_INCIDENT;
      brief(l, ba, sizeof ba);
      set_where(res, "%s", ba);
      goto done;
    }
  }
  if (d < 0 && unapplied > 0)
    set_where(res, "%d recorded input(s) could not be applied", unapplied);
done:
  cmpv_fini(&ce); cmpv_fini(&ca); cmpv_fini(&pe); cmpv_fini(&pa);
}

/*--- The run --------------------------------------------------------------------------------*/

static void run_steps(rv__jr_run *r){
  int64_t recorded = rv_json_int(r->rec.header, "recorded", -1);
  bool against = r->o && r->o->against;
  for (int i = 0; i < r->rec.n_steps; i++) {
    const cJSON *j = r->rec.steps[i].j;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "at");
    rv_err err = {0};
    if (r->rec.steps[i].expect) {
      rv_buf msg;
      bool ok;
      find_root(r);
      rv_buf_init(&msg, 4096);
      ok = rv__jr_check(r->e, r->root, j, &r->path_mark, &r->sms_mark, &msg);
      r->res->n_checks++;
      if (!ok) {
        r->res->n_failed++;
        note(r, "line %d: expect %s: %s", r->rec.steps[i].lineno, rv_json_str(j, "expect"),
             msg.p ? msg.p : "failed");
      }
      rv_buf_fini(&msg);
      r->marks[i] = history_mark(r);
      continue;
    }
    r->res->n_inputs++;
    if (at) {
      int64_t t = time_of(at, rv_clock_now(&r->clk));
      if (against) fire_unrecorded(r, i, t - 1000);
      rv_clock_set(&r->clk, t);
    }
    r->marks[i] = history_mark(r);
    if (apply_input(r, j, &err) != RV_OK || apply_answers(r, j, &err) != RV_OK) {
      r->why_not[i] = rv_strdup(err.msg[0] ? err.msg : rv_status_name(err.code));
      if (r->first_fail < 0) {
        r->first_fail = i;
        r->waits = waits_now(r);
      }
    }
    find_root(r);
  }
  if (against && recorded > 0) fire_unrecorded(r, r->rec.n_steps, recorded - 1000);
  if (r->waits == NULL) r->waits = waits_now(r);
}

static void collect_outputs(rv__jr_run *r){
  rv__jr_tree t;
  int last = -1, prev = -1;
  find_root(r);
  rv__jr_tree_load(r->db, r->root, &t);
  int64_t lo = 0;                /* the first input's outputs: everything before too */
  for (int i = 0; i < r->rec.n_steps; i++) {
    if (r->rec.steps[i].expect) continue;
    if (prev >= 0) {
      rv__jr_outputs(r->db, &t, lo, r->marks[i], prev, &r->res->outs);
      lo = r->marks[i];
    }
    prev = i;
    last = i;
  }
  if (prev >= 0) rv__jr_outputs(r->db, &t, lo, -1, prev, &r->res->outs);
  rv__jr_ledger(r->db, &t, last, &r->res->outs);
  rv__jr_end_states(r->e, &t, last, &r->res->outs);
  r->res->n_procs = t.n;
  r->res->procs = rv_calloc((size_t)t.n + 1, sizeof *r->res->procs);
  for (int k = 0; k < t.n; k++) r->res->procs[k] = rv_strdup(t.procs[k]);
  rv__jr_tree_fini(&t);
}

static void emit(rv__jr_run *r, rv_err *err){
  FILE *f = fopen(r->o->emit, "w");
  rv__jr_outs keep = r->rec.outs;
  if (f == NULL) { rv_fail(err, RV_IO, "%s: %s", r->o->emit, strerror(errno)); return; }
  r->rec.outs = r->res->outs;
  rv__jr_rec_write(&r->rec, f);
  r->rec.outs = keep;
  fclose(f);
}

void rv__jr_result_fini(rv__jr_result *res){
  rv_buf_fini(&res->report);
  rv__jr_outs_fini(&res->outs);
  for (int i = 0; i < res->n_procs; i++) rv_free(res->procs[i]);
  rv_free(res->procs);
  for (int i = 0; i < res->n_bpmn; i++) rv_free(res->bpmn[i]);
  rv_free(res->bpmn);
  rv_free(res->bpmn_len);
  memset(res, 0, sizeof *res);
}

rv_status rv__jr_run_file(const char *path, const rv_replay_opts *o, rv__jr_result *res, rv_err *err){
  rv__jr_run r;
  rv_engine_cfg cfg = {0};
  rv_status rc;
  const char *tmpdir = getenv("TMPDIR");
  char dbpath[400];

  memset(res, 0, sizeof *res);
  rv_buf_init(&res->report, 1 << 20);
  memset(&r, 0, sizeof r);
  r.o = o;
  r.res = res;
  r.first_fail = -1;
  res->verdict = RV_REPLAY_ERROR;
  rc = rv__jr_rec_load(path, &r.rec, err);
  if (rc != RV_OK) return rc;
  if (r.rec.is_test && o && o->against) {
    rv__jr_rec_fini(&r.rec);
    return rv_fail(err, RV_INVALID, "%s: --against takes recordings, not process tests", path);
  }
  snprintf(r.tmp, sizeof r.tmp, "%s/ravand-replay-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (mkdtemp(r.tmp) == NULL) {
    rv__jr_rec_fini(&r.rec);
    return rv_fail(err, RV_IO, "mkdtemp %s: %s", r.tmp, strerror(errno));
  }
  snprintf(dbpath, sizeof dbpath, "%s/replay.db", r.tmp);
  {
    int64_t t0 = time_of(cJSON_GetObjectItemCaseSensitive(r.rec.header, "clock"), DEFAULT_CLOCK);
    if (r.rec.n_deps > 0) t0 = r.rec.deps[0].created;
    rv_clock_init_virtual(&r.clk, t0);
  }
  cfg.db_path = dbpath;
  cfg.clock = &r.clk;
  cfg.relaxed_sync = true;      /* a throw-away database */
  rc = rv_engine_open(&cfg, &r.e, err);
  if (rc == RV_OK) {
    r.db = rv_store_db(rv_engine_store(r.e));
    r.marks = rv_calloc((size_t)r.rec.n_steps + 1, sizeof *r.marks);
    r.why_not = rv_calloc((size_t)r.rec.n_steps + 1, sizeof *r.why_not);
    rc = r.rec.is_test ? deploy_test(&r, err) : deploy_recorded(&r, err);
    if (r.rec.is_test) {   /* tests start at their own clock, after deploying */
      rv_clock_set(&r.clk, time_of(cJSON_GetObjectItemCaseSensitive(r.rec.header, "clock"), DEFAULT_CLOCK));
    }
  }
  if (rc == RV_OK) {
    run_steps(&r);
    collect_outputs(&r);
    classify(&r);
    if (res->n_failed > 0 && res->verdict == RV_REPLAY_IDENTICAL) res->verdict = RV_REPLAY_DIVERGED;
    if (o && o->emit) emit(&r, err);
  } else {
    rv_buf_printf(&res->report, "  %s\n", err ? err->msg : "replay failed");
    set_where(res, "%s", err ? err->msg : "replay failed");
  }
  for (int i = 0; r.why_not && i < r.rec.n_steps; i++) rv_free(r.why_not[i]);
  rv_free(r.why_not);
  rv_free(r.marks);
  cJSON_Delete(r.waits);
  rv_engine_close(r.e);
  rv__jr_rec_fini(&r.rec);
  nftw(r.tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return rc;
}

/*--- Public entry points ----------------------------------------------------------------------*/

rv_status rv_journal_replay(const char *path, const rv_replay_opts *o, rv_replay_result *out,
                            rv_err *err){
  rv__jr_result res;
  rv_status rc = rv__jr_run_file(path, o, &res, err);
  memset(out, 0, sizeof *out);
  out->verdict = res.verdict;
  snprintf(out->where, sizeof out->where, "%s", res.where);
  out->report = rv_buf_take(&res.report);
  out->n_inputs = res.n_inputs;
  out->n_outputs = res.outs.n;
  rv__jr_result_fini(&res);
  return rc;
}

int rv_journal_replay_main(const char *const *files, int n, bool json, FILE *out){
  int bad = 0;
  cJSON *arr = json ? cJSON_CreateArray() : NULL;
  for (int i = 0; i < n; i++) {
    rv_replay_result r;
    rv_err err = {0};
    rv_status rc = rv_journal_replay(files[i], NULL, &r, &err);
    bool same = rc == RV_OK && r.verdict == RV_REPLAY_IDENTICAL;
    if (!same) bad++;
    if (json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "file", files[i]);
      cJSON_AddStringToObject(o, "result", rc == RV_OK ? rv_replay_verdict_name(r.verdict) : "error");
      if (!same) cJSON_AddStringToObject(o, "where", rc == RV_OK ? r.where : err.msg);
      if (!same && r.report) cJSON_AddStringToObject(o, "report", r.report);
      cJSON_AddItemToArray(arr, o);
    } else if (rc != RV_OK) {
      fprintf(out, "%s: error: %s\n", files[i], err.msg);
    } else if (same) {
      fprintf(out, "%s: identical (%d inputs, %d outputs)\n", files[i], r.n_inputs, r.n_outputs);
    } else {
      fprintf(out, "%s: %s%s%s\n%s", files[i], r.verdict == RV_REPLAY_SAME_PATH ? "DIFFERS (same path)"
              : "DIVERGES", r.where[0] ? ": " : "", r.where, r.report ? r.report : "");
    }
    free(r.report);
  }
  if (json) {
    char *t = cJSON_Print(arr);
    fprintf(out, "%s\n", t);
    cJSON_free(t);
    cJSON_Delete(arr);
  }
  return bad ? 1 : 0;
}

int rv_journal_impact_main(const char *against, const char *scripts_dir,
                           const char *const *files, int n, bool json, FILE *out){
  rv_replay_opts o = { against, scripts_dir, NULL };
  int counts[RV_REPLAY_ERROR + 1] = {0};
  cJSON *arr = cJSON_CreateArray();
  size_t width = 9;
  const cJSON *it;

  for (int i = 0; i < n; i++) {
    rv_replay_result r;
    rv_err err = {0};
    rv_status rc = rv_journal_replay(files[i], &o, &r, &err);
    rv_replay_verdict v = rc == RV_OK ? r.verdict : RV_REPLAY_ERROR;
    cJSON *x = cJSON_CreateObject();
    /* an identical replay keeps its path too: report the two together */
    if (v == RV_REPLAY_IDENTICAL) v = RV_REPLAY_SAME_PATH;
    counts[v]++;
    cJSON_AddStringToObject(x, "file", files[i]);
    cJSON_AddStringToObject(x, "result", rv_replay_verdict_name(v));
    cJSON_AddStringToObject(x, "where", rc == RV_OK ? (r.verdict == RV_REPLAY_IDENTICAL ? "" : r.where) : err.msg);
    if (rc == RV_OK && r.report && r.verdict != RV_REPLAY_IDENTICAL) cJSON_AddStringToObject(x, "report", r.report);
    cJSON_AddItemToArray(arr, x);
    if (strlen(files[i]) > width) width = strlen(files[i]);
    free(r.report);
  }
  if (json) {
    cJSON *o2 = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o2, "counts");
    char *t;
    cJSON_AddStringToObject(o2, "against", against);
    for (int v = RV_REPLAY_SAME_PATH; v <= RV_REPLAY_ERROR; v++)
      cJSON_AddNumberToObject(c, rv_replay_verdict_name((rv_replay_verdict)v), counts[v]);
    cJSON_AddItemToObject(o2, "recordings", arr);
    t = cJSON_Print(o2);
    fprintf(out, "%s\n", t);
    cJSON_free(t);
    cJSON_Delete(o2);
  } else {
    fprintf(out, "impact of %s on %d recorded case%s:\n", against, n, n == 1 ? "" : "s");
    fprintf(out, "  keep their path  %d\n", counts[RV_REPLAY_SAME_PATH]);
    fprintf(out, "  diverge          %d\n", counts[RV_REPLAY_DIVERGED]);
    fprintf(out, "  need new input   %d\n", counts[RV_REPLAY_NEEDS_INPUT]);
    fprintf(out, "  incident         %d\n", counts[RV_REPLAY_INCIDENT]);
    fprintf(out, "  could not replay %d\n\n", counts[RV_REPLAY_ERROR]);
    fprintf(out, "%-*s  %-11s  %s\n", (int)width, "recording", "result", "where");
    cJSON_ArrayForEach(it, arr)
      fprintf(out, "%-*s  %-11s  %s\n", (int)width, rv_json_str(it, "file"), rv_json_str(it, "result"),
              rv_json_str(it, "where"));
    cJSON_ArrayForEach(it, arr)
      if (rv_json_str(it, "report") && strcmp(rv_json_str(it, "result"), "same path") != 0)
        fprintf(out, "\n%s:\n%s", rv_json_str(it, "file"), rv_json_str(it, "report"));
    cJSON_Delete(arr);
  }
  return counts[RV_REPLAY_SAME_PATH] == n ? 0 : 1;
}
