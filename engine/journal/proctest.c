/*
** journal/proctest.c -- process tests: expectations, `ravand test`, coverage.
**
** A process test is a hand-written file in the recording format whose
** header says "ravand":"test": it names BPMN files to deploy instead of
** embedding them, gives inputs without database ids (a task by its
** element, an adapter answer by its element, time as "advance"), and
** states expectations ({"expect":...}) between the inputs. `ravand test
** DIR` runs every *.jsonl below DIR -- process tests and recordings alike
** (a recording passes when it replays identically) -- and reports, per
** process, which elements and sequence flows the files visited.
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "journal/journal_int.h"
#include "model/model.h"

/*--- Expectations ----------------------------------------------------------------------*/

static int str_cmp(const void *a, const void *b){
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The strings of a JSON array, sorted when asked, as a new array ["a","b"]. */
static cJSON *strings(const cJSON *a, bool sort){
  const char *v[512];
  int n = 0;
  const cJSON *it;
  cJSON *o = cJSON_CreateArray();
  cJSON_ArrayForEach(it, a) if (cJSON_IsString(it) && n < 512) v[n++] = it->valuestring;
  if (sort) qsort(v, (size_t)n, sizeof *v, str_cmp);
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(o, cJSON_CreateString(v[i]));
  return o;
}

static bool same_list(cJSON *got, const cJSON *want, bool sort, rv_buf *msg){
  cJSON *w = strings(want, sort), *g = sort ? strings(got, true) : cJSON_Duplicate(got, 1);
  bool ok = cJSON_Compare(g, w, 1);
  if (!ok) {
    char *gs = rv_json_print(g), *ws = rv_json_print(w);
    rv_buf_printf(msg, "expected %s, got %s", ws, gs);
    rv_free(gs);
    rv_free(ws);
  }
  cJSON_Delete(w);
  cJSON_Delete(g);
  cJSON_Delete(got);
  return ok;
}

/* Every field of want equals the same field of got (objects compared whole). */
static bool subset(const cJSON *got, const cJSON *want, const char *what, rv_buf *msg){
  const cJSON *it;
  bool ok = true;
  if (!cJSON_IsObject(want)) { rv_buf_printf(msg, "give %s as a JSON object", what); return false; }
  cJSON_ArrayForEach(it, want) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, it->string);
    if (!cJSON_Compare(g, it, 1)) {
      char *gs = g ? rv_json_print(g) : rv_strdup("(unset)"), *ws = rv_json_print(it);
      rv_buf_printf(msg, "%s%s %s: expected %s, got %s", ok ? "" : "; ", what, it->string, ws, gs);
      rv_free(ws);
      rv_free(gs);
      ok = false;
    }
  }
  return ok;
}

/* Lines of one kind since *mark; advances *mark. */
static cJSON *since(sqlite3 *db, const rv__jr_tree *t, int64_t *mark, const char *kind, const char *field,
                    int only_inst){
  rv__jr_outs o = {0};
  cJSON *a = cJSON_CreateArray();
  rv__jr_outputs(db, t, *mark, -1, 0, &o);
  for (int i = 0; i < o.n; i++) {
    const char *k = rv_json_str(o.v[i], "out"), *v = rv_json_str(o.v[i], field);
    if (k == NULL || strcmp(k, kind) != 0 || v == NULL) continue;
    if (only_inst > 0 && rv_json_int(o.v[i], "inst", 1) != only_inst) continue;
    cJSON_AddItemToArray(a, cJSON_CreateString(v));
  }
  rv__jr_outs_fini(&o);
  *mark = rv__jr_scalar(db, "SELECT coalesce(max(id), 0) FROM history_log", 0, 0);
  return a;
}

bool rv__jr_check(rv_engine *e, int64_t root, const cJSON *x, int64_t *path_mark, int64_t *sms_mark,
              rv_buf *msg){
  sqlite3 *db = rv_store_db(rv_engine_store(e));
  const char *what = rv_json_str(x, "expect");
  int k = (int)rv_json_int(x, "inst", 1);
  bool explicit_inst = cJSON_GetObjectItemCaseSensitive(x, "inst") != NULL;
  int64_t id;
  rv__jr_tree t;
  cJSON *in = NULL;
  bool ok = false;
  rv_err err;

  rv__jr_tree_load(db, root, &t);
  id = k >= 1 && k <= t.n ? t.ids[k - 1] : 0;
  if (what == NULL) {
    rv_buf_adds(msg, "no \"expect\" kind");
  } else if (strcmp(what, "path") == 0) {
    ok = same_list(since(db, &t, path_mark, "enter", "element", explicit_inst ? k : 0),
                   cJSON_GetObjectItemCaseSensitive(x, "elements"), false, msg);
  } else if (strcmp(what, "sms") == 0) {
    ok = same_list(since(db, &t, sms_mark, "sms", "text", explicit_inst ? k : 0),
                   cJSON_GetObjectItemCaseSensitive(x, "texts"), false, msg);
  } else if (id == 0) {
    rv_buf_printf(msg, "instance %d of the tree does not exist", k);
  } else if (strcmp(what, "tasks") == 0) {
    sqlite3_stmt *s = NULL;
    cJSON *got = cJSON_CreateArray();
    sqlite3_prepare_v2(db, "SELECT element_id FROM tasks WHERE instance_id=? AND state='open'", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, id);
    while (sqlite3_step(s) == SQLITE_ROW)
      cJSON_AddItemToArray(got, cJSON_CreateString((const char *)sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    ok = same_list(got, cJSON_GetObjectItemCaseSensitive(x, "elements"), true, msg);
  } else if (strcmp(what, "incidents") == 0) {
    int64_t n = rv__jr_scalar(db, "SELECT count(*) FROM incidents WHERE instance_id=? AND state='open'", id, 0);
    ok = n == rv_json_int(x, "count", 0);
    if (!ok) rv_buf_printf(msg, "expected %lld open incidents, got %lld",
                           (long long)rv_json_int(x, "count", 0), (long long)n);
  } else if (strcmp(what, "job") == 0) {
    sqlite3_stmt *s = NULL;
    cJSON *got = NULL;
    sqlite3_prepare_v2(db, "SELECT input FROM jobs WHERE instance_id=? AND element_id=? ORDER BY id DESC LIMIT 1",
                       -1, &s, NULL);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, rv_json_str(x, "element") ? rv_json_str(x, "element") : "", -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW) got = rv_json_parse((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (got == NULL) rv_buf_printf(msg, "no job of '%s'", rv_json_str(x, "element") ? rv_json_str(x, "element") : "?");
    else ok = subset(got, cJSON_GetObjectItemCaseSensitive(x, "input"), "input", msg);
    cJSON_Delete(got);
  } else if (rv_engine_instance_json(e, id, &in, &err) != RV_OK) {
    rv_buf_printf(msg, "%s", err.msg);
  } else if (strcmp(what, "status") == 0 || strcmp(what, "status_text") == 0) {
    const char *got = rv_json_str(in, what), *want = rv_json_str(x, "is");
    ok = want && got && strcmp(got, want) == 0;
    if (!ok) rv_buf_printf(msg, "expected '%s', got '%s'", want ? want : "?", got ? got : "(none)");
  } else if (strcmp(what, "vars") == 0) {
    ok = subset(cJSON_GetObjectItemCaseSensitive(in, "variables"), cJSON_GetObjectItemCaseSensitive(x, "vars"),
                "variable", msg);
  } else if (strcmp(what, "waiting") == 0) {
    const cJSON *it;
    cJSON *got = cJSON_CreateArray();
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(in, "tokens"))
      if (rv_json_str(it, "element")) cJSON_AddItemToArray(got, cJSON_CreateString(rv_json_str(it, "element")));
    ok = same_list(got, cJSON_GetObjectItemCaseSensitive(x, "elements"), true, msg);
  } else {
    rv_buf_printf(msg, "unknown expectation '%s' (path, status, status_text, vars, waiting, tasks,"
                  " sms, job, incidents)", what);
  }
  cJSON_Delete(in);
  rv__jr_tree_fini(&t);
  return ok;
}

/*--- Coverage ------------------------------------------------------------------------------*/

typedef struct cov_proc {
  char  *id;
  char **elems; bool *elem_seen; int n_elems;
  char **flows; bool *flow_seen; int n_flows;
} cov_proc;

typedef struct cov { cov_proc *v; int n; } cov;

static cov_proc *cov_find(cov *c, const char *id){
  for (int i = 0; i < c->n; i++) if (strcmp(c->v[i].id, id) == 0) return &c->v[i];
  return NULL;
}

static void cov_models(cov *c, const rv__jr_result *res){
  for (int b = 0; b < res->n_bpmn; b++) {
    rv_diags dg;
    rv_model *m = NULL;
    rv_diags_init(&dg);
    if (rv_model_parse_memory(res->bpmn[b], res->bpmn_len[b], "coverage", &dg, &m) == RV_OK) {
      for (int p = 0; p < m->n_processes; p++) {
        cov_proc *cp;
        if (!m->processes[p].executable || cov_find(c, m->processes[p].id)) continue;
        c->v = rv_realloc(c->v, sizeof *c->v * (size_t)(c->n + 1));
        cp = &c->v[c->n++];
        memset(cp, 0, sizeof *cp);
        cp->id = rv_strdup(m->processes[p].id);
        for (int i = 0; i < m->n_nodes; i++) {
          if (m->nodes[i].process != p) continue;
          cp->elems = rv_realloc(cp->elems, sizeof *cp->elems * (size_t)(cp->n_elems + 1));
          cp->elems[cp->n_elems++] = rv_strdup(m->nodes[i].id);
        }
        for (int i = 0; i < m->n_flows; i++) {
          if (m->flows[i].source < 0 || m->nodes[m->flows[i].source].process != p) continue;
          cp->flows = rv_realloc(cp->flows, sizeof *cp->flows * (size_t)(cp->n_flows + 1));
          cp->flows[cp->n_flows++] = rv_strdup(m->flows[i].id);
        }
        cp->elem_seen = rv_calloc((size_t)cp->n_elems + 1, sizeof(bool));
        cp->flow_seen = rv_calloc((size_t)cp->n_flows + 1, sizeof(bool));
      }
    }
    rv_model_free(m);
    rv_diags_fini(&dg);
  }
}

static void cov_mark(cov *c, const rv__jr_result *res){
  for (int i = 0; i < res->outs.n; i++) {
    const cJSON *l = res->outs.v[i];
    const char *k = rv_json_str(l, "out");
    int inst = (int)rv_json_int(l, "inst", 1);
    cov_proc *cp;
    bool flow;
    const char *id;
    if (k == NULL || inst < 1 || inst > res->n_procs) continue;
    flow = strcmp(k, "flow") == 0;
    if (!flow && strcmp(k, "enter") != 0) continue;
    cp = cov_find(c, res->procs[inst - 1]);
    id = rv_json_str(l, flow ? "flow" : "element");
    if (cp == NULL || id == NULL) continue;
    for (int e = 0; !flow && e < cp->n_elems; e++) if (strcmp(cp->elems[e], id) == 0) cp->elem_seen[e] = true;
    for (int f = 0; flow && f < cp->n_flows; f++) if (strcmp(cp->flows[f], id) == 0) cp->flow_seen[f] = true;
  }
}

static void cov_print(const cov *c, FILE *out){
  fprintf(out, "\ncoverage per process:\n");
  for (int i = 0; i < c->n; i++) {
    const cov_proc *p = &c->v[i];
    int ne = 0, nf = 0;
    for (int e = 0; e < p->n_elems; e++) ne += p->elem_seen[e];
    for (int f = 0; f < p->n_flows; f++) nf += p->flow_seen[f];
    fprintf(out, "  %-28s elements %3d/%-3d (%3d%%)  flows %3d/%-3d (%3d%%)\n", p->id,
            ne, p->n_elems, p->n_elems ? 100 * ne / p->n_elems : 100,
            nf, p->n_flows, p->n_flows ? 100 * nf / p->n_flows : 100);
    if (ne < p->n_elems) {
      fprintf(out, "    never entered:");
      for (int e = 0; e < p->n_elems; e++) if (!p->elem_seen[e]) fprintf(out, " %s", p->elems[e]);
      fputc('\n', out);
    }
    if (nf < p->n_flows) {
      fprintf(out, "    never taken:  ");
      for (int f = 0; f < p->n_flows; f++) if (!p->flow_seen[f]) fprintf(out, " %s", p->flows[f]);
      fputc('\n', out);
    }
  }
}

static cJSON *cov_json(const cov *c){
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < c->n; i++) {
    const cov_proc *p = &c->v[i];
    cJSON *o = cJSON_CreateObject(), *ue = cJSON_CreateArray(), *uf = cJSON_CreateArray();
    int ne = 0, nf = 0;
    for (int e = 0; e < p->n_elems; e++) {
      ne += p->elem_seen[e];
      if (!p->elem_seen[e]) cJSON_AddItemToArray(ue, cJSON_CreateString(p->elems[e]));
    }
    for (int f = 0; f < p->n_flows; f++) {
      nf += p->flow_seen[f];
      if (!p->flow_seen[f]) cJSON_AddItemToArray(uf, cJSON_CreateString(p->flows[f]));
    }
    cJSON_AddStringToObject(o, "process", p->id);
    cJSON_AddNumberToObject(o, "elements", p->n_elems);
    cJSON_AddNumberToObject(o, "elements_visited", ne);
    cJSON_AddNumberToObject(o, "flows", p->n_flows);
    cJSON_AddNumberToObject(o, "flows_taken", nf);
    cJSON_AddItemToObject(o, "never_entered", ue);
    cJSON_AddItemToObject(o, "never_taken", uf);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

static void cov_fini(cov *c){
  for (int i = 0; i < c->n; i++) {
    cov_proc *p = &c->v[i];
    for (int e = 0; e < p->n_elems; e++) rv_free(p->elems[e]);
    for (int f = 0; f < p->n_flows; f++) rv_free(p->flows[f]);
    rv_free(p->elems); rv_free(p->flows); rv_free(p->elem_seen); rv_free(p->flow_seen);
    rv_free(p->id);
  }
  rv_free(c->v);
}

/*--- ravand test -------------------------------------------------------------------------------*/

static void find_files(const char *dir, char ***v, int *n){
  DIR *d = opendir(dir);
  struct dirent *de;
  if (d == NULL) {        /* a single file is fine too */
    size_t len = strlen(dir);
    if (len > 6 && strcmp(dir + len - 6, ".jsonl") == 0) {
      *v = rv_realloc(*v, sizeof **v * (size_t)(*n + 1));
      (*v)[(*n)++] = rv_strdup(dir);
    }
    return;
  }
  while ((de = readdir(d)) != NULL) {
    char *p;
    struct stat sb;
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.') continue;
    p = rv_asprintf("%s/%s", dir, de->d_name);
    if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) { find_files(p, v, n); rv_free(p); continue; }
    if (len > 6 && strcmp(de->d_name + len - 6, ".jsonl") == 0) {
      *v = rv_realloc(*v, sizeof **v * (size_t)(*n + 1));
      (*v)[(*n)++] = p;
    } else rv_free(p);
  }
  closedir(d);
}

int rv_journal_test_main(const char *const *dirs, int n, bool json, FILE *out){
  char **files = NULL;
  int nf = 0, failed = 0;
  cov c = {0};
  cJSON *arr = cJSON_CreateArray();

  for (int i = 0; i < n; i++) find_files(dirs[i], &files, &nf);
  qsort(files, (size_t)nf, sizeof *files, str_cmp);
  for (int i = 0; i < nf; i++) {
    rv__jr_result res;
    rv_err err = {0};
    rv_status rc = rv__jr_run_file(files[i], NULL, &res, &err);
    bool ok = rc == RV_OK && res.verdict == RV_REPLAY_IDENTICAL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", files[i]);
    cJSON_AddBoolToObject(o, "ok", ok);
    if (!ok) cJSON_AddStringToObject(o, "report", rc == RV_OK ? (res.report.p ? res.report.p : res.where) : err.msg);
    cJSON_AddItemToArray(arr, o);
    if (!ok) failed++;
    if (!json) {
      if (rc != RV_OK) fprintf(out, "FAIL %s: %s\n", files[i], err.msg);
      else if (ok) fprintf(out, "ok   %s (%d inputs, %d checks)\n", files[i], res.n_inputs, res.n_checks);
      else fprintf(out, "FAIL %s%s%s\n%s", files[i], res.where[0] ? ": " : "", res.where,
                   res.report.p ? res.report.p : "");
    }
    if (rc == RV_OK) {
      cov_models(&c, &res);
      cov_mark(&c, &res);
    }
    rv__jr_result_fini(&res);
    rv_free(files[i]);
  }
  rv_free(files);
  if (json) {
    cJSON *o = cJSON_CreateObject();
    char *t;
    cJSON_AddItemToObject(o, "files", arr);
    cJSON_AddNumberToObject(o, "failed", failed);
    cJSON_AddItemToObject(o, "coverage", cov_json(&c));
    t = cJSON_Print(o);
    fprintf(out, "%s\n", t);
    cJSON_free(t);
    cJSON_Delete(o);
  } else {
    cJSON_Delete(arr);
    cov_print(&c, out);
    fprintf(out, "\n%d file%s, %d failed\n", nf, nf == 1 ? "" : "s", failed);
  }
  cov_fini(&c);
  return failed || nf == 0 ? 1 : 0;
}
