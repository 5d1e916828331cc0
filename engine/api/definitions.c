/*
** api/definitions.c -- deploy (BPMN + Lua as one deployment), lint, list
** versions, get a version's XML.
**
** Deploy and lint take the files in the JSON body, write them to a private
** temporary directory and run the same code as `ravand deploy` / `ravand
** lint` there, with the working directory switched to it for the call, so
** the stored file names are the relative paths the client sent
** ("processes/x.bpmn"), as with the command line. The loop is single-
** threaded, so nothing else sees the changed directory.
*/
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "api/api_int.h"
#include "core/mem.h"
#include "lint/lint.h"
#include "model/model.h"

#define MAX_FILES   64
#define MAX_SCRIPTS 256
#define SCRIPTS_DIR ".scripts"

static const char *const deploy_fields[] = { "files", "scripts", NULL };
static const char *const file_fields[] = { "path", "content", NULL };

/* "a/b/c.bpmn": a safe relative path (rv__safe_relpath) ending in one of
** the suffixes. */
static bool valid_path(const char *p, const char *suf1, const char *suf2){
  size_t n = strlen(p);
  if (!rv__safe_relpath(p)) return false;
  return (n > strlen(suf1) && strcmp(p + n - strlen(suf1), suf1) == 0) ||
         (suf2 && n > strlen(suf2) && strcmp(p + n - strlen(suf2), suf2) == 0);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw){
  (void)sb; (void)flag; (void)ftw;
  return remove(path);
}

static void rm_tree(const char *dir){
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool write_file(const char *root, const char *rel, const char *content){
  char path[512];
  size_t n = strlen(content);
  int fd;
  snprintf(path, sizeof path, "%s/%s", root, rel);
  for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')) != NULL; s++) {
    *s = 0;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return false;
    *s = '/';
  }
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  if (write(fd, content, n) != (ssize_t)n) { close(fd); return false; }
  close(fd);
  return true;
}

typedef struct upload {
  char   dir[256];
  char **paths;         /* borrowed from the body */
  int    n;
  bool   scripts;
} upload;

/* Check the body and write it out; false means a reply was set. */
static bool unpack(rv_req *r, upload *u){
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(r->body, "files");
  const cJSON *scripts = cJSON_GetObjectItemCaseSensitive(r->body, "scripts");
  const cJSON *f;
  const char *tmp = getenv("TMPDIR");
  int i = 0;

  memset(u, 0, sizeof *u);
  if (!rv__body_fields(r, r->body, NULL, deploy_fields)) return false;
  if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) < 1 || cJSON_GetArraySize(files) > MAX_FILES) {
    rv__problem(r, 400, "'files' must be an array of 1..%d {path, content} objects", MAX_FILES);
    return false;
  }
  if (scripts && !cJSON_IsNull(scripts) &&
      (!cJSON_IsArray(scripts) || cJSON_GetArraySize(scripts) > MAX_SCRIPTS)) {
    rv__problem(r, 400, "'scripts' must be an array of up to %d {path, content} objects", MAX_SCRIPTS);
    return false;
  }
  /* validate everything before touching the disk */
  for (int pass = 0; pass < 2; pass++) {
    const cJSON *arr = pass ? scripts : files;
    if (!cJSON_IsArray(arr)) continue;
    cJSON_ArrayForEach(f, arr) {
      const char *path, *content;
      if (!cJSON_IsObject(f)) { rv__problem(r, 400, "each file is a {path, content} object"); return false; }
      if (!rv__body_fields(r, f, pass ? "a script" : "a file", file_fields) ||
          !rv__body_str(r, f, "path", true, 200, &path) ||
          !rv__body_str(r, f, "content", true, r->api->cfg.max_deploy_body, &content)) return false;
      if (pass ? !valid_path(path, ".lua", NULL) : !valid_path(path, ".bpmn", ".xml")) {
        rv__problem(r, 400, "'%s' is not an allowed %s path (relative, letters, digits, '._-', ending in %s)",
                    path, pass ? "script" : "process file", pass ? ".lua" : ".bpmn or .xml");
        return false;
      }
    }
  }
  snprintf(u->dir, sizeof u->dir, "%s/ravand-deploy-XXXXXX", tmp && *tmp && strlen(tmp) < 200 ? tmp : "/tmp");
  if (mkdtemp(u->dir) == NULL) {
    u->dir[0] = 0;
    rv__reply_err(r, RV_IO, &(rv_err){ RV_IO, "cannot make a temporary directory" });
    return false;
  }
  u->paths = rv_calloc((size_t)cJSON_GetArraySize(files), sizeof *u->paths);
  cJSON_ArrayForEach(f, files) {
    const char *path = rv_json_str(f, "path");
    if (!write_file(u->dir, path, rv_json_str(f, "content"))) {
      rv__problem(r, 400, "file '%s' is given twice", path);
      return false;
    }
    u->paths[i++] = (char *)path;
  }
  u->n = i;
  if (cJSON_IsArray(scripts)) {
    char sd[300];
    snprintf(sd, sizeof sd, "%s/" SCRIPTS_DIR, u->dir);
    mkdir(sd, 0700);
    u->scripts = true;
    cJSON_ArrayForEach(f, scripts) {
      char rel[256];
      snprintf(rel, sizeof rel, SCRIPTS_DIR "/%s", rv_json_str(f, "path"));
      if (!write_file(u->dir, rel, rv_json_str(f, "content"))) {
        rv__problem(r, 400, "script '%s' is given twice", rv_json_str(f, "path"));
        return false;
      }
    }
  }
  return true;
}

static void upload_fini(upload *u){
  if (u->dir[0]) rm_tree(u->dir);
  rv_free(u->paths);
}

/* Run fn with the upload directory as the working directory. */
static int enter(const upload *u){
  int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0 || chdir(u->dir) != 0) { if (cwd >= 0) close(cwd); return -1; }
  return cwd;
}
static void leave(int cwd){
  if (fchdir(cwd) != 0) fprintf(stderr, "ravand: cannot return to the working directory\n");
  close(cwd);
}

void rv__h_deploy(rv_req *r){
  upload u;
  cJSON *rep = NULL;
  rv_err err = {0};
  rv_status rc;
  int cwd;

  if (!unpack(r, &u)) { upload_fini(&u); return; }
  if ((cwd = enter(&u)) < 0) {
    upload_fini(&u);
    rv__reply_err(r, RV_IO, &(rv_err){ RV_IO, "cannot enter the temporary directory" });
    return;
  }
  rc = rv_engine_deploy(r->api->e, (const char *const *)u.paths, u.n, u.scripts ? SCRIPTS_DIR : NULL,
                        &rep, &err);
  leave(cwd);
  upload_fini(&u);
  if (rc == RV_INVALID) {
    cJSON *p = rv__problem_json(422, "the deployment does not pass lint; nothing was deployed", r->id);
    cJSON *d = rep ? cJSON_DetachItemFromObjectCaseSensitive(rep, "diagnostics") : NULL;
    cJSON_AddItemToObject(p, "diagnostics", d ? d : cJSON_CreateArray());
    snprintf(r->detail, sizeof r->detail, "lint failed");
    rv__reply_json(r, 422, p);
  } else if (rc != RV_OK) {
    rv__reply_err(r, rc, &err);
  } else {
    const cJSON *p;
    snprintf(r->object, sizeof r->object, "deployment:%lld", (long long)rv_json_int(rep, "deployment", 0));
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(rep, "processes"))
      if (strlen(r->detail) + 80 < sizeof r->detail)
        snprintf(r->detail + strlen(r->detail), sizeof r->detail - strlen(r->detail), "%s%s v%d",
                 r->detail[0] ? ", " : "", rv_json_str(p, "id"), (int)rv_json_int(p, "version", 0));
    rv__reply_json(r, rv_json_bool(rep, "changed", false) ? 201 : 200, rep);
    rep = NULL;
  }
  cJSON_Delete(rep);
}

void rv__h_lint(rv_req *r){
  upload u;
  cJSON *o, *diags;
  int cwd, errors = 0;

  if (!unpack(r, &u)) { upload_fini(&u); return; }
  if ((cwd = enter(&u)) < 0) {
    upload_fini(&u);
    rv__reply_err(r, RV_IO, &(rv_err){ RV_IO, "cannot enter the temporary directory" });
    return;
  }
  o = cJSON_CreateObject();
  diags = cJSON_CreateArray();
  for (int i = 0; i < u.n; i++) {
    rv_diags dg;
    rv_diags_init(&dg);
    errors += rv_lint_file(u.paths[i], u.scripts ? SCRIPTS_DIR : NULL, &dg);
    for (int k = 0; k < dg.n; k++) {
      cJSON *d = cJSON_CreateObject();
      cJSON_AddStringToObject(d, "file", u.paths[i]);
      cJSON_AddNumberToObject(d, "line", dg.v[k].line);
      cJSON_AddStringToObject(d, "level", dg.v[k].level == RV_DIAG_ERROR ? "error" : "warning");
      cJSON_AddStringToObject(d, "message", dg.v[k].msg);
      cJSON_AddItemToArray(diags, d);
    }
    rv_diags_fini(&dg);
  }
  leave(cwd);
  upload_fini(&u);
  cJSON_AddBoolToObject(o, "ok", errors == 0);
  cJSON_AddNumberToObject(o, "errors", errors);
  cJSON_AddItemToObject(o, "diagnostics", diags);
  rv__reply_json(r, 200, o);
}

/* Applicants and organisations get the public view: no element names. */
static bool public_role(const rv_principal *p){
  return p->role == RV_ROLE_APPLICANT || p->role == RV_ROLE_ORGANISATION;
}

/* The start event's form in info's "starts" (message NULL: the none
** start), detached; NULL when there is none. */
static cJSON *take_form(cJSON *info, const char *message){
  cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(info, "starts")) {
    const char *m = rv_json_str(s, "message");
    if (message ? m && strcmp(m, message) == 0 : m == NULL)
      return cJSON_DetachItemFromObjectCaseSensitive(s, "form");
  }
  return NULL;
}

/* Add to one definition row what a client needs: element names (staff and
** engine people: the backlog's and the diagram's step names), "startable"
** and the start form when the caller may start this version by process,
** and for applicants the message starts opened to them ("start_messages",
** POST /v1/my/requests {message}). Who may start is decided by exactly
** what the start routes call: rv_engine_start_info + rv__may_start. */
static void describe(rv_req *r, cJSON *d){
  const char *proc = rv_json_str(d, "process");
  int version = (int)rv_json_int(d, "version", 0);
  const char *role = public_role(&r->p) ? rv__role_name(r->p.role) : NULL;
  cJSON *info = NULL, *form, *s, *msgs = NULL;
  rv_start_info si;
  rv_err err;
  bool startable = false;

  if (proc && rv_engine_definition_info(r->api->e, proc, version, &info, &err) == RV_OK) {
    if (!public_role(&r->p))
      cJSON_AddItemToObject(d, "elements", cJSON_DetachItemFromObjectCaseSensitive(info, "elements"));
    startable = rv_engine_start_info(r->api->e, proc, version, NULL, role, NULL, &si, &err) == RV_OK &&
                rv__may_start(r->api, &r->p, &si);
  }
  cJSON_AddBoolToObject(d, "startable", startable);
  if (startable && (form = take_form(info, NULL)) != NULL) cJSON_AddItemToObject(d, "start_form", form);
  if (info && r->p.role == RV_ROLE_APPLICANT) {
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(info, "starts")) {
      const char *m = rv_json_str(s, "message");
      cJSON *o;
      /* the message starts this very version: the engine starts the
      ** version whose start subscription is deployed (the latest) */
      if (m == NULL || rv_engine_start_info(r->api->e, NULL, 0, m, role, NULL, &si, &err) != RV_OK ||
          !si.found || strcmp(si.process, proc) != 0 || si.version != version ||
          !rv__may_start(r->api, &r->p, &si)) continue;
      if (msgs == NULL) msgs = cJSON_AddArrayToObject(d, "start_messages");
      o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "message", m);
      if (rv_json_str(s, "name")) cJSON_AddStringToObject(o, "name", rv_json_str(s, "name"));
      form = cJSON_DetachItemFromObjectCaseSensitive(s, "form");
      cJSON_AddItemToObject(o, "form", form ? form : cJSON_CreateArray());
      cJSON_AddItemToArray(msgs, o);
    }
  }
  cJSON_Delete(info);
}

/* The list describes (describe()) the latest version of each process, and
** with ?version= the version asked for: describing means loading the model,
** and loading every old version on every call would parse each one and push
** the live definitions out of the engine's cache. */
void rv__h_definitions(rv_req *r){
  static const char *const q[] = { "process", "version", NULL };
  cJSON *rows = NULL, *keep, *o;
  rv_err err;
  rv_status rc;
  const char *proc;
  int64_t version = 0;
  bool has_v;

  if (!rv__q_parse(r, q) || !rv__q_int(r, "version", 1, 1000000, &version, &has_v)) return;
  proc = rv__q_str(r, "process");
  rc = rv_engine_definitions_json(r->api->e, &rows, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  keep = cJSON_CreateArray();
  while (cJSON_GetArraySize(rows) > 0) {
    cJSON *d = cJSON_DetachItemFromArray(rows, 0);
    const char *p = rv_json_str(d, "process");
    /* rows come by process, then version: the last of a process is its latest */
    bool latest = rows->child == NULL || !p || !rv_json_str(rows->child, "process") ||
                  strcmp(rv_json_str(rows->child, "process"), p) != 0;
    if ((proc && (!p || strcmp(p, proc) != 0)) || (has_v && rv_json_int(d, "version", 0) != version)) {
      cJSON_Delete(d);
      continue;
    }
    cJSON_AddBoolToObject(d, "latest", latest);
    if (latest || has_v) describe(r, d);
    cJSON_AddItemToArray(keep, d);
  }
  cJSON_Delete(rows);
  o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "items", keep);
  rv__reply_json(r, 200, o);
}

/* GET /v1/definitions/{p}/{v}/waiting: how many active instances of this
** version have a token waiting at each element, in one grouped query.
** "Waiting" is what the instance list's waiting_at filter means (an open
** task, a timer, a message subscription, a pending job or an open
** incident), so a badge and the list it links to agree. Each arm starts
** from instances_status (status, process_id) and reaches the side table by
** its (instance_id, ei) index -- CROSS JOIN fixes that order: without
** statistics SQLite would rather scan every open task of every process
** (30 ms instead of 200 ms for 5 000 active instances beside 200 000 open
** tasks of another process). So the cost is the version's active instances
** plus the open incidents, not the size of the side tables, and no new
** index is needed. Counts are not personal data: no audit row (the route is
** not RT_PII). Elements with none are left out. */
#define WAIT_ARM(join, tbl, cond) \
  " SELECT w.element_id AS element, i.id AS inst FROM instances i " join " " tbl " w ON w.instance_id=i.id" \
  " WHERE i.status='active' AND i.process_id=?1 AND i.definition_id=?2" cond

void rv__h_definition_waiting(rv_req *r){
  sqlite3_stmt *s;
  int64_t def = 0;
  cJSON *o;

  if (!rv__q_parse(r, NULL)) return;
  s = rv_store_stmt(r->api->st, "SELECT id FROM definitions WHERE process_id=? AND version=?");
  rv_store_bind(s, "ti", r->names[0], r->ids[0]);
  if (sqlite3_step(s) == SQLITE_ROW) def = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (def == 0) { rv__not_found(r); return; }
  s = rv_store_stmt(r->api->st,
    "SELECT element, count(DISTINCT inst) FROM ("
    WAIT_ARM("CROSS JOIN", "tasks", " AND w.state='open'") " UNION ALL"
    WAIT_ARM("CROSS JOIN", "timers", "") " UNION ALL"
    WAIT_ARM("CROSS JOIN", "subscriptions", "") " UNION ALL"
    WAIT_ARM("CROSS JOIN", "jobs", " AND w.state='pending'") " UNION ALL"
    /* incidents have no instance index: from the open ones (few) instead */
    WAIT_ARM("JOIN", "incidents", " AND w.state='open'")
    ") GROUP BY element ORDER BY element");
  rv_store_bind(s, "ti", r->names[0], def);
  o = cJSON_CreateObject();
  while (sqlite3_step(s) == SQLITE_ROW)
    cJSON_AddNumberToObject(o, (const char *)sqlite3_column_text(s, 0), (double)sqlite3_column_int64(s, 1));
  sqlite3_reset(s);
  snprintf(r->object, sizeof r->object, "definition:%.60s:%lld", r->names[0], (long long)r->ids[0]);
  rv__reply_json(r, 200, o);
}

void rv__h_definition_xml(rv_req *r){
  sqlite3_stmt *s;
  if (!rv__q_parse(r, NULL)) return;
  s = rv_store_stmt(r->api->st,
    "SELECT f.content FROM definitions d JOIN deployment_files f"
    " ON f.deployment_id=d.deployment_id AND f.path=d.file WHERE d.process_id=? AND d.version=?");
  rv_store_bind(s, "ti", r->names[0], r->ids[0]);
  if (sqlite3_step(s) == SQLITE_ROW) {
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    char *x = rv_malloc(n + 1);
    if (n > 0) memcpy(x, sqlite3_column_blob(s, 0), n);
    x[n] = 0;
    rv__reply_raw(r, 200, "application/xml; charset=utf-8", x, n);
  } else rv__not_found(r);
  sqlite3_reset(s);
}
