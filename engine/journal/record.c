/*
** journal/record.c -- `ravand record`: a live instance tree as a recording.
**
** Inputs are the journal rows of the tree's instances in journal order,
** plus two kinds of rows that name another instance: a signal reaches
** several instances and is journaled once per instance it reached (rows
** of one broadcast are adjacent and identical: only the first is kept),
** and a buffered message is journaled with instance 0 and consumed later
** (found through messages.consumed_by).
**
** Outputs: a journal row's mark is max(history_log.id) when its command began,
** so the history rows of the tree between one input's mark and the next
** input's mark are what that input caused. Journals written before marks
** existed (NULL) put every output after the last input.
*/
#include <string.h>
#include "journal/journal_int.h"
#include "cal/cal.h"

typedef struct jrow {
  int64_t seq, inst, at, mark;
  bool has_mark;
  char *cmd, *payload;
  cJSON *answers;      /* the answers given inside this command, as "job" input lines */
} jrow;

static void jrow_add(jrow **v, int *n, sqlite3_stmt *s){
  jrow *r;
  *v = rv_realloc(*v, sizeof **v * (size_t)(*n + 1));
  r = &(*v)[(*n)++];
  r->seq = sqlite3_column_int64(s, 0);
  r->inst = sqlite3_column_int64(s, 1);
  r->at = sqlite3_column_int64(s, 2);
  r->cmd = rv_strdup((const char *)sqlite3_column_text(s, 3));
  r->payload = rv_strdup((const char *)sqlite3_column_text(s, 4));
  r->has_mark = sqlite3_column_type(s, 5) != SQLITE_NULL;
  r->mark = sqlite3_column_int64(s, 5);
  r->answers = NULL;
}

static int jrow_cmp(const void *a, const void *b){
  int64_t x = ((const jrow *)a)->seq, y = ((const jrow *)b)->seq;
  return x < y ? -1 : x > y;
}

#define SQL_JCOLS "SELECT seq, instance_id, at, command, payload, mark FROM journal"

static void collect_inputs(sqlite3 *db, const rv__jr_tree *t, jrow **v, int *n){
  char *list = rv__jr_tree_sql_list(t), *sql;
  sqlite3_stmt *s = NULL, *q = NULL;

  sql = rv_asprintf(SQL_JCOLS " WHERE instance_id IN (%s) ORDER BY seq", list);
  sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  while (sqlite3_step(s) == SQLITE_ROW) jrow_add(v, n, s);
  sqlite3_finalize(s);
  rv_free(sql);
  /* buffered messages the tree consumed later */
  sql = rv_asprintf("SELECT name, corr_key, created FROM messages WHERE consumed_by IN (%s)"
                    " AND expires>created", list);   /* buffered, not an id-only dedupe row */
  sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  sqlite3_prepare_v2(db, SQL_JCOLS " WHERE instance_id=0 AND command='message' AND at=?"
                     " AND json_extract(payload, '$.name')=?"
                     " AND json_extract(payload, '$.key') IS ?"
                     " AND json_extract(payload, '$.result')='buffered' ORDER BY seq LIMIT 1",
                     -1, &q, NULL);
  while (sqlite3_step(s) == SQLITE_ROW) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, sqlite3_column_int64(s, 2));
    sqlite3_bind_value(q, 2, sqlite3_column_value(s, 0));
    sqlite3_bind_value(q, 3, sqlite3_column_value(s, 1));
    if (sqlite3_step(q) == SQLITE_ROW) {
      bool dup = false;
      for (int i = 0; i < *n; i++) if ((*v)[i].seq == sqlite3_column_int64(q, 0)) dup = true;
      if (!dup) jrow_add(v, n, q);
    }
  }
  sqlite3_finalize(q);
  sqlite3_finalize(s);
  rv_free(sql);
  rv_free(list);
  qsort(*v, (size_t)*n, sizeof **v, jrow_cmp);
  /* one broadcast reached several instances of the tree: keep its first row */
  for (int i = 1; i < *n; i++) {
    jrow *a = &(*v)[i - 1], *b = &(*v)[i];
    if (strcmp(b->cmd, "signal") == 0 && strcmp(a->cmd, "signal") == 0 && b->seq == a->seq + 1 &&
        b->at == a->at && strcmp(a->payload ? a->payload : "", b->payload ? b->payload : "") == 0) {
      a->seq = b->seq;      /* so a third row of the same broadcast matches too */
      rv_free(b->cmd); rv_free(b->payload);
      memmove(b, b + 1, sizeof *b * (size_t)(*n - i - 1));
      (*n)--;
      i--;
    }
  }
}

/* Payload fields that are database ids (meaningless elsewhere). */
static const char *const volatile_keys[] = { "task", "job", "timer", "incident", "instances", "at", NULL };

static bool is_volatile(const char *k){
  for (int i = 0; volatile_keys[i]; i++) if (strcmp(k, volatile_keys[i]) == 0) return true;
  return false;
}

/* An "answers" row (engine.c answers_now: the adapter answers given inside
** the command journaled just before it, with the same mark) goes onto that
** command's input line as "answers": a replay applies them in the same
** step, so the outputs group as they did live. Each answer is a "job"
** input line ("inst" the tree's number; without the "input" each entry
** carries for the live database's readers -- the recording has it as the
** job's output line). A row whose command is not among
** the tree's inputs (not seen so far) becomes "job" input lines of its own. */
static void fold_answers(jrow **pv, int *n, const rv__jr_tree *t){
  for (int i = 0; i < *n; i++) {
    jrow *v = *pv;
    cJSON *arr, *a;
    int host = -1, m, at = 0;
    if (strcmp(v[i].cmd, "answers") != 0) continue;
    for (int k = i - 1; k >= 0 && host < 0; k--) {
      if (v[k].has_mark != v[i].has_mark || v[k].mark != v[i].mark) break;
      if (strcmp(v[k].cmd, "answers") != 0) host = k;
    }
    arr = rv_json_parse(v[i].payload);
    if (host >= 0) {
      if (v[host].answers == NULL) v[host].answers = cJSON_CreateArray();
      cJSON_ArrayForEach(a, arr) {
        cJSON *o = cJSON_CreateObject();
        const cJSON *it;
        int k = rv__jr_tree_index(t, rv_json_int(a, "inst", 0));
        cJSON_AddStringToObject(o, "in", "job");
        if (k > 0) cJSON_AddNumberToObject(o, "inst", k);
        cJSON_ArrayForEach(it, a)
          if (strcmp(it->string, "inst") != 0 && strcmp(it->string, "input") != 0 &&
              !is_volatile(it->string))
            cJSON_AddItemToObject(o, it->string, rv__jr_sorted(it));
        cJSON_AddItemToArray(v[host].answers, o);
      }
      cJSON_Delete(arr);
      rv_free(v[i].cmd); rv_free(v[i].payload);
      memmove(&v[i], &v[i + 1], sizeof *v * (size_t)(*n - i - 1));
      (*n)--;
      i--;
      continue;
    }
    /* no command to carry them: a "job" row each, in its place */
    m = cJSON_GetArraySize(arr);
    {
      jrow base = v[i];
      *pv = v = rv_realloc(v, sizeof *v * (size_t)(*n + m + 1));
      memmove(&v[i + m], &v[i + 1], sizeof *v * (size_t)(*n - i - 1));
      cJSON_ArrayForEach(a, arr) {
        jrow *r = &v[i + at++];
        cJSON *p = cJSON_Duplicate(a, 1);
        *r = base;
        r->inst = rv_json_int(a, "inst", 0);
        cJSON_DeleteItemFromObjectCaseSensitive(p, "inst");
        cJSON_DeleteItemFromObjectCaseSensitive(p, "input");
        r->cmd = rv_strdup("job");
        r->payload = rv_json_print(p);
        r->answers = NULL;
        cJSON_Delete(p);
      }
      rv_free(base.cmd); rv_free(base.payload);
    }
    *n += m - 1;
    i += m - 1;
    cJSON_Delete(arr);
  }
}

static cJSON *input_line(const jrow *r, const rv__jr_tree *t){
  cJSON *o = cJSON_CreateObject(), *p = rv_json_parse(r->payload);
  const cJSON *it;
  int k = rv__jr_tree_index(t, r->inst);
  cJSON_AddStringToObject(o, "in", r->cmd);
  cJSON_AddNumberToObject(o, "at", (double)r->at);
  if (k > 0) cJSON_AddNumberToObject(o, "inst", k);
  cJSON_ArrayForEach(it, p)
    if (!is_volatile(it->string)) cJSON_AddItemToObject(o, it->string, rv__jr_sorted(it));
  cJSON_Delete(p);
  if (r->answers) cJSON_AddItemToObject(o, "answers", r->answers);
  return o;
}

static const char *base_name(const char *path){
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* Instance lines and the deployments they ran. */
static rv_status describe_tree(sqlite3 *db, const rv__jr_tree *t, rv__jr_rec *r, int64_t **dep_ids,
                               rv_err *err){
  sqlite3_stmt *s = NULL;
  sqlite3_prepare_v2(db,
    "SELECT i.process_id, d.version, d.hash, d.file, d.deployment_id, i.parent_instance,"
    " i.parent_ei, i.business_key FROM instances i JOIN definitions d ON d.id=i.definition_id"
    " WHERE i.id=?", -1, &s, NULL);
  for (int k = 1; k <= t->n; k++) {
    cJSON *o;
    int64_t dep, parent, parent_ei;
    int d = 0;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, t->ids[k - 1]);
    if (sqlite3_step(s) != SQLITE_ROW) {
      sqlite3_finalize(s);
      return rv_fail(err, RV_CORRUPT, "instance %lld has no definition", (long long)t->ids[k - 1]);
    }
    dep = sqlite3_column_int64(s, 4);
    for (int i = 0; i < r->n_deps; i++) if ((*dep_ids)[i] == dep) d = i + 1;
    if (d == 0) {
      *dep_ids = rv_realloc(*dep_ids, sizeof **dep_ids * (size_t)(r->n_deps + 1));
      (*dep_ids)[r->n_deps] = dep;
      r->deps = rv_realloc(r->deps, sizeof *r->deps * (size_t)(r->n_deps + 1));
      memset(&r->deps[r->n_deps], 0, sizeof r->deps[0]);
      d = ++r->n_deps;
    }
    parent = sqlite3_column_int64(s, 5);
    parent_ei = sqlite3_column_int64(s, 6);
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "instance", k);
    cJSON_AddNumberToObject(o, "id", (double)t->ids[k - 1]);
    cJSON_AddStringToObject(o, "process", (const char *)sqlite3_column_text(s, 0));
    cJSON_AddNumberToObject(o, "version", sqlite3_column_int(s, 1));
    cJSON_AddStringToObject(o, "hash", (const char *)sqlite3_column_text(s, 2));
    cJSON_AddStringToObject(o, "file", base_name((const char *)sqlite3_column_text(s, 3)));
    cJSON_AddNumberToObject(o, "deployment", d);
    if (sqlite3_column_type(s, 7) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "business_key", (const char *)sqlite3_column_text(s, 7));
    if (parent > 0 && rv__jr_tree_index(t, parent) > 0) {
      sqlite3_stmt *c = NULL;
      cJSON_AddNumberToObject(o, "parent", rv__jr_tree_index(t, parent));
      sqlite3_prepare_v2(db, "SELECT element_id FROM history WHERE instance_id=? AND ei=?"
                             " AND event='ELEMENT_ACTIVATED' ORDER BY id, seq LIMIT 1", -1, &c, NULL);
      sqlite3_bind_int64(c, 1, parent);
      sqlite3_bind_int64(c, 2, parent_ei);
      if (sqlite3_step(c) == SQLITE_ROW)
        cJSON_AddStringToObject(o, "call", (const char *)sqlite3_column_text(c, 0));
      sqlite3_finalize(c);
    }
    r->insts = rv_realloc(r->insts, sizeof *r->insts * (size_t)(r->n_insts + 1));
    r->insts[r->n_insts++] = o;
  }
  sqlite3_finalize(s);
  return RV_OK;
}

static void embed_deployments(sqlite3 *db, const int64_t *dep_ids, rv__jr_rec *r){
  sqlite3_stmt *s = NULL, *f = NULL;
  sqlite3_prepare_v2(db, "SELECT created, hash FROM deployments WHERE id=?", -1, &s, NULL);
  sqlite3_prepare_v2(db, "SELECT path, kind, content FROM deployment_files WHERE deployment_id=?"
                         " ORDER BY kind, path", -1, &f, NULL);
  for (int d = 0; d < r->n_deps; d++) {
    r->deps[d].id = d + 1;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, dep_ids[d]);
    if (sqlite3_step(s) == SQLITE_ROW) {
      r->deps[d].created = sqlite3_column_int64(s, 0);
      r->deps[d].hash = rv_strdup((const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(f);
    sqlite3_bind_int64(f, 1, dep_ids[d]);
    while (sqlite3_step(f) == SQLITE_ROW) {
      const char *path = (const char *)sqlite3_column_text(f, 0);
      const char *kind = (const char *)sqlite3_column_text(f, 1);
      rv__jr_file *fl;
      r->files = rv_realloc(r->files, sizeof *r->files * (size_t)(r->n_files + 1));
      fl = &r->files[r->n_files++];
      memset(fl, 0, sizeof *fl);
      /* BPMN files by base name (the deploying machine's paths mean nothing
      ** elsewhere); Lua modules by their path under scripts/ (the module name) */
      fl->name = rv_strdup(strcmp(kind, "bpmn") == 0 ? base_name(path) : path);
      fl->kind = rv_strdup(kind);
      fl->dep = d + 1;
      rv_buf_init(&fl->text, 0);
      rv__jr_file_add_text(fl, sqlite3_column_blob(f, 2) ? sqlite3_column_blob(f, 2) : "",
                       (size_t)sqlite3_column_bytes(f, 2));
    }
  }
  sqlite3_finalize(f);
  sqlite3_finalize(s);
}

rv_status rv_journal_roots(rv_engine *e, const char *process_id, int64_t **out, int *n,
                           rv_err *err){
  sqlite3 *db = rv_store_db(rv_engine_store(e));
  sqlite3_stmt *s = NULL;
  *out = NULL;
  *n = 0;
  if (sqlite3_prepare_v2(db, "SELECT id FROM instances WHERE process_id=?"
                             " AND coalesce(parent_instance, 0)=0 ORDER BY id", -1, &s, NULL) != SQLITE_OK)
    return rv_fail(err, RV_IO, "%s", sqlite3_errmsg(db));
  sqlite3_bind_text(s, 1, process_id, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(s) == SQLITE_ROW) {
    *out = rv_realloc(*out, sizeof **out * (size_t)(*n + 1));
    (*out)[(*n)++] = sqlite3_column_int64(s, 0);
  }
  sqlite3_finalize(s);
  return RV_OK;
}

rv_status rv_journal_record(rv_engine *e, int64_t instance, FILE *out, rv_err *err){
  sqlite3 *db = rv_store_db(rv_engine_store(e));
  int64_t root = instance, *dep_ids = NULL, now = rv_clock_now(rv_engine_clock(e));
  rv__jr_tree t;
  rv__jr_rec r;
  jrow *rows = NULL;
  int n_rows = 0;
  bool marks = true, snapshot = false;
  rv_status rc;
  char when[40];

  if (rv__jr_scalar(db, "SELECT count(*) FROM instances WHERE id=?", instance, 0) == 0)
    return rv_fail(err, RV_NOTFOUND, "no instance %lld", (long long)instance);
  /* one read transaction: a snapshot, even while `ravand serve` writes */
  if (rv_store_depth(rv_engine_store(e)) == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
    snapshot = true;
  for (int guard = 0; guard < 64; guard++) {      /* a call chain is never this deep */
    int64_t p = rv__jr_scalar(db, "SELECT coalesce(parent_instance, 0) FROM instances WHERE id=?", root, 0);
    if (p <= 0) break;
    root = p;
  }
  memset(&r, 0, sizeof r);
  rv__jr_tree_load(db, root, &t);
  rc = describe_tree(db, &t, &r, &dep_ids, err);
  if (rc != RV_OK) {
    rv__jr_tree_fini(&t); rv__jr_rec_fini(&r); rv_free(dep_ids);
    if (snapshot) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
  }
  embed_deployments(db, dep_ids, &r);
  rv_free(dep_ids);

  r.header = cJSON_CreateObject();
  cJSON_AddStringToObject(r.header, "ravand", "recording");
  cJSON_AddNumberToObject(r.header, "format", RV_JR_FORMAT);
  cJSON_AddStringToObject(r.header, "process", rv_json_str(r.insts[0], "process"));
  cJSON_AddNumberToObject(r.header, "version", (double)rv_json_int(r.insts[0], "version", 0));
  cJSON_AddStringToObject(r.header, "hash", rv_json_str(r.insts[0], "hash"));
  cJSON_AddNumberToObject(r.header, "instance", (double)root);
  cJSON_AddNumberToObject(r.header, "recorded", (double)now);
  rv_datetime_format(now, when, sizeof when);
  cJSON_AddStringToObject(r.header, "recorded_time", when);

  collect_inputs(db, &t, &rows, &n_rows);
  fold_answers(&rows, &n_rows, &t);
  for (int i = 0; i < n_rows; i++) if (!rows[i].has_mark) marks = false;
  for (int i = 0; i < n_rows; i++) {
    r.steps = rv_realloc(r.steps, sizeof *r.steps * (size_t)(r.n_steps + 1));
    r.steps[r.n_steps].j = input_line(&rows[i], &t);
    r.steps[r.n_steps].lineno = 0;
    r.steps[r.n_steps].expect = false;
    r.n_steps++;
  }
  if (marks) {
    for (int i = 0; i < n_rows; i++)
      rv__jr_outputs(db, &t, i == 0 ? 0 : rows[i].mark, i + 1 < n_rows ? rows[i + 1].mark : -1, i, &r.outs);
  } else {
    rv__jr_outputs(db, &t, 0, -1, n_rows - 1, &r.outs);
  }
  rv__jr_ledger(db, &t, n_rows - 1, &r.outs);
  rv__jr_end_states(e, &t, n_rows - 1, &r.outs);
  rv__jr_rec_write(&r, out);

  for (int i = 0; i < n_rows; i++) { rv_free(rows[i].cmd); rv_free(rows[i].payload); }
  rv_free(rows);
  rv__jr_tree_fini(&t);
  rv__jr_rec_fini(&r);
  if (snapshot) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  return ferror(out) ? rv_fail(err, RV_IO, "cannot write the recording") : RV_OK;
}
