/*
** journal/script.c -- reading and writing the recording format.
**
** One JSON object per line. Blank lines and lines starting with '#' are
** comments (hand-written process tests use them; recordings never do).
** The first object is the header; every other line is classified by its
** first key, and an unknown line is an error naming its line number, so
** a typo in a hand-written test never passes silently.
*/
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include "journal/journal_int.h"

void rv__jr_file_add_text(rv__jr_file *f, const char *data, size_t len){
  rv_buf_add(&f->text, data, len);
}

void rv__jr_rec_fini(rv__jr_rec *r){
  rv_free(r->path);
  rv_free(r->dir);
  cJSON_Delete(r->header);
  for (int i = 0; i < r->n_insts; i++) cJSON_Delete(r->insts[i]);
  rv_free(r->insts);
  for (int i = 0; i < r->n_deps; i++) rv_free(r->deps[i].hash);
  rv_free(r->deps);
  for (int i = 0; i < r->n_files; i++) {
    rv_free(r->files[i].name);
    rv_free(r->files[i].kind);
    rv_buf_fini(&r->files[i].text);
  }
  rv_free(r->files);
  for (int i = 0; i < r->n_deploys; i++) cJSON_Delete(r->deploys[i]);
  rv_free(r->deploys);
  for (int i = 0; i < r->n_steps; i++) cJSON_Delete(r->steps[i].j);
  rv_free(r->steps);
  rv__jr_outs_fini(&r->outs);
  memset(r, 0, sizeof *r);
}

#define GROW(arr, n) ((arr) = rv_realloc((arr), sizeof *(arr) * (size_t)((n) + 1)))

/* Read one line of any length; NULL at end of file. Caller frees. */
static char *read_line(FILE *f){
  rv_buf b;
  char chunk[4096];
  rv_buf_init(&b, 0);
  while (fgets(chunk, sizeof chunk, f)) {
    size_t n = strlen(chunk);
    rv_buf_add(&b, chunk, n);
    if (n > 0 && chunk[n - 1] == '\n') break;
  }
  if (b.len == 0) { rv_buf_fini(&b); return NULL; }
  return rv_buf_take(&b);
}

static int dep_index(const rv__jr_rec *r, int id){
  for (int i = 0; i < r->n_deps; i++) if (r->deps[i].id == id) return i;
  return -1;
}

static rv_status add_line(rv__jr_rec *r, cJSON *j, int lineno, rv_err *err){
  const cJSON *first = j->child;
  const char *key = first ? first->string : "";
  if (strcmp(key, "instance") == 0) {
    if (rv_json_int(j, "instance", 0) != r->n_insts + 1)
      return rv_fail(err, RV_INVALID, "line %d: instances must be numbered 1, 2, ... in order", lineno);
    GROW(r->insts, r->n_insts);
    r->insts[r->n_insts++] = j;
    return RV_OK;
  }
  if (strcmp(key, "deployment") == 0) {
    int id = (int)rv_json_int(j, "deployment", 0);
    if (dep_index(r, id) >= 0)      /* its files would be written once per line */
      return rv_fail(err, RV_INVALID, "line %d: deployment %d appears twice", lineno, id);
    GROW(r->deps, r->n_deps);
    r->deps[r->n_deps].id = id;
    r->deps[r->n_deps].created = rv_json_int(j, "created", 0);
    r->deps[r->n_deps].hash = rv_strdup(rv_json_str(j, "hash"));
    r->n_deps++;
    cJSON_Delete(j);
    return RV_OK;
  }
  if (strcmp(key, "file") == 0) {
    const char *name = rv_json_str(j, "file"), *kind = rv_json_str(j, "kind");
    int dep = (int)rv_json_int(j, "deployment", 1);
    if (name == NULL || kind == NULL || (strcmp(kind, "bpmn") != 0 && strcmp(kind, "lua") != 0))
      return rv_fail(err, RV_INVALID, "line %d: a file needs a name and kind bpmn or lua", lineno);
    if (dep_index(r, dep) < 0)      /* a file belongs to a deployment stated before it */
      return rv_fail(err, RV_INVALID, "line %d: file '%s' of deployment %d, which no line before"
                     " it declares", lineno, name, dep);
    GROW(r->files, r->n_files);
    memset(&r->files[r->n_files], 0, sizeof r->files[0]);
    r->files[r->n_files].name = rv_strdup(name);
    r->files[r->n_files].kind = rv_strdup(kind);
    r->files[r->n_files].dep = dep;
    rv_buf_init(&r->files[r->n_files].text, 0);
    r->n_files++;
    cJSON_Delete(j);
    return RV_OK;
  }
  if (strcmp(key, "src") == 0) {
    rv__jr_file *f = r->n_files ? &r->files[r->n_files - 1] : NULL;
    const char *name = rv_json_str(j, "src"), *text = rv_json_str(j, "text");
    if (f == NULL || name == NULL || strcmp(name, f->name) != 0 || text == NULL)
      return rv_fail(err, RV_INVALID, "line %d: source line outside its file", lineno);
    /* lines are joined with '\n'; a file ending in a newline ends with an empty line */
    if (f->n_lines++ > 0) rv_buf_add(&f->text, "\n", 1);
    rv_buf_adds(&f->text, text);
    cJSON_Delete(j);
    return RV_OK;
  }
  if (strcmp(key, "deploy") == 0) {
    GROW(r->deploys, r->n_deploys);
    r->deploys[r->n_deploys++] = j;
    return RV_OK;
  }
  if (strcmp(key, "in") == 0 || strcmp(key, "expect") == 0) {
    GROW(r->steps, r->n_steps);
    r->steps[r->n_steps].j = j;
    r->steps[r->n_steps].lineno = lineno;
    r->steps[r->n_steps].expect = key[0] == 'e';
    r->n_steps++;
    return RV_OK;
  }
  if (strcmp(key, "out") == 0) {
    rv__jr_outs_add(&r->outs, j, r->n_steps - 1);
    return RV_OK;
  }
  return rv_fail(err, RV_INVALID, "line %d: unknown line (starts with \"%s\")", lineno, key);
}

rv_status rv__jr_rec_load(const char *path, rv__jr_rec *r, rv_err *err){
  FILE *f = fopen(path, "r");
  rv_status rc;
  if (f == NULL) {
    memset(r, 0, sizeof *r);
    return rv_fail(err, RV_NOTFOUND, "%s: %s", path, strerror(errno));
  }
  rc = rv__jr_rec_read(f, path, r, err);
  fclose(f);
  return rc;
}

rv_status rv__jr_rec_read(FILE *f, const char *path, rv__jr_rec *r, rv_err *err){
  char *line, *copy;
  int lineno = 0;
  rv_status rc = RV_OK;

  memset(r, 0, sizeof *r);
  r->path = rv_strdup(path);
  copy = rv_strdup(path);
  r->dir = rv_strdup(dirname(copy));
  rv_free(copy);
  while (rc == RV_OK && (line = read_line(f)) != NULL) {
    char *p = line;
    cJSON *j;
    lineno++;
    p[strcspn(p, "\r\n")] = 0;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == 0 || *p == '#') { rv_free(line); continue; }
    j = rv_json_parse(p);
    rv_free(line);
    if (!cJSON_IsObject(j) || j->child == NULL) {
      cJSON_Delete(j);
      rc = rv_fail(err, RV_INVALID, "%s:%d: not a JSON object", path, lineno);
      break;
    }
    if (r->header == NULL) {
      const char *kind = rv_json_str(j, "ravand");
      if (kind == NULL || (strcmp(kind, "recording") != 0 && strcmp(kind, "test") != 0)) {
        cJSON_Delete(j);
        rc = rv_fail(err, RV_INVALID, "%s:%d: the first line must be a header"
                     " {\"ravand\":\"recording\"|\"test\",...}", path, lineno);
        break;
      }
      int64_t format = rv_json_int(j, "format", RV_JR_FORMAT);
      if (format < 1 || format > RV_JR_FORMAT) {
        cJSON_Delete(j);
        rc = rv_fail(err, RV_INVALID, "%s: format %lld is not supported (this ravand reads 1 to %d)",
                     path, (long long)format, RV_JR_FORMAT);
        break;
      }
      r->is_test = strcmp(kind, "test") == 0;
      r->header = j;
      continue;
    }
    rc = add_line(r, j, lineno, err);
    if (rc != RV_OK) {
      cJSON_Delete(j);
      if (err) {
        char *msg = rv_asprintf("%s: %s", path, err->msg);
        snprintf(err->msg, sizeof err->msg, "%.*s", (int)sizeof err->msg - 1, msg);
        rv_free(msg);
      }
    }
  }
  if (rc == RV_OK && r->header == NULL) rc = rv_fail(err, RV_INVALID, "%s: empty file", path);
  if (rc != RV_OK) rv__jr_rec_fini(r);
  return rc;
}

void rv__jr_line_print(const cJSON *line, FILE *f){
  char *t = rv_json_print(line);
  fputs(t, f);
  fputc('\n', f);
  rv_free(t);
}

void rv__jr_rec_write(const rv__jr_rec *r, FILE *f){
  int o = 0;
  rv__jr_line_print(r->header, f);
  for (int i = 0; i < r->n_insts; i++) rv__jr_line_print(r->insts[i], f);
  for (int d = 0; d < r->n_deps; d++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "deployment", r->deps[d].id);
    cJSON_AddNumberToObject(x, "created", (double)r->deps[d].created);
    if (r->deps[d].hash) cJSON_AddStringToObject(x, "hash", r->deps[d].hash);
    rv__jr_line_print(x, f);
    cJSON_Delete(x);
    for (int i = 0; i < r->n_files; i++) {
      const rv__jr_file *fl = &r->files[i];
      const char *p = fl->text.p ? fl->text.p : "", *nl;
      if (fl->dep != r->deps[d].id) continue;
      x = cJSON_CreateObject();
      cJSON_AddStringToObject(x, "file", fl->name);
      cJSON_AddStringToObject(x, "kind", fl->kind);
      cJSON_AddNumberToObject(x, "deployment", fl->dep);
      rv__jr_line_print(x, f);
      cJSON_Delete(x);
      for (;;) {            /* one line per source line, split on '\n' */
        char *text;
        nl = strchr(p, '\n');
        text = nl ? rv_strndup(p, (size_t)(nl - p)) : rv_strdup(p);
        x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "src", fl->name);
        cJSON_AddStringToObject(x, "text", text);
        rv__jr_line_print(x, f);
        cJSON_Delete(x);
        rv_free(text);
        if (nl == NULL) break;
        p = nl + 1;
      }
    }
  }
  for (int i = 0; i < r->n_deploys; i++) rv__jr_line_print(r->deploys[i], f);
  while (o < r->outs.n && r->outs.group[o] < 0) rv__jr_line_print(r->outs.v[o++], f);
  for (int i = 0; i < r->n_steps; i++) {
    rv__jr_line_print(r->steps[i].j, f);
    while (o < r->outs.n && r->outs.group[o] <= i) rv__jr_line_print(r->outs.v[o++], f);
  }
  while (o < r->outs.n) rv__jr_line_print(r->outs.v[o++], f);
}
