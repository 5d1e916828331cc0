/*
** tests/unit/adapters_testutil.h -- helpers shared by test_feed.c,
** test_finance.c and test_records.c: a temporary directory, an engine on
** a virtual clock with the adapters bound, fixture deployment, files.
*/
#ifndef RV_ADAPTERS_TESTUTIL_H
#define RV_ADAPTERS_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "adapter.h"
#include "cal/cal.h"
#include "runtime/engine.h"
#include "store/store.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif
#define FIXTURES RV_SOURCE_ROOT "/tests/fixtures/adapters/"

typedef struct tenv {
  char       dir[256];
  char       db[300];
  rv_clock   clock;
  rv_engine *e;
} tenv;

/* A fresh directory and engine at 2025-10-01T10:00:00+03:30 (1404/07/09);
** answer_now: in-process adapters answer inside the command, as in every
** `ravand` command (engine.h cfg.answer_now). */
static inline void tenv_open_opts(tenv *t, bool answer_now){
  rv_err err;
  rv_engine_cfg cfg = {0};
  cfg.answer_now = answer_now;
  int64_t now;
  snprintf(t->dir, sizeof t->dir, "/tmp/rvtest-XXXXXX");
  if (mkdtemp(t->dir) == NULL) { perror("mkdtemp"); abort(); }
  snprintf(t->db, sizeof t->db, "%s/t.db", t->dir);
  rv_datetime_parse("2025-10-01T10:00:00+03:30", &now, NULL);
  rv_clock_init_virtual(&t->clock, now);
  cfg.db_path = t->db;
  cfg.clock = &t->clock;
  if (rv_engine_open(&cfg, &t->e, &err) != RV_OK) { fprintf(stderr, "%s\n", err.msg); abort(); }
  rv_adapters_bind_engine(t->e);
}

static inline void tenv_open(tenv *t){ tenv_open_opts(t, false); }

static inline void tenv_close(tenv *t){
  char cmd[400];
  rv_err err;
  if (rv_store_integrity(rv_engine_store(t->e), &err) != RV_OK) {
    fprintf(stderr, "integrity_check: %s\n", err.msg);
    abort();
  }
  rv_adapters_unbind_engine(t->e);
  rv_engine_close(t->e);
  t->e = NULL;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t->dir);
}

static inline void tenv_deploy(tenv *t, const char *fixture){
  char path[512];
  const char *files[1] = { path };
  cJSON *rep = NULL;
  rv_err err;
  snprintf(path, sizeof path, FIXTURES "%s", fixture);
  if (rv_engine_deploy(t->e, files, 1, NULL, &rep, &err) != RV_OK) {
    fprintf(stderr, "deploy %s: %s\n", fixture, err.msg);
    abort();
  }
  cJSON_Delete(rep);
}

/* Write data to dir/name; returns the path in a static buffer. */
static inline const char *tenv_file(tenv *t, const char *name, const char *data, size_t n){
  static char path[512];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", t->dir, name);
  f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, n, f) != n) abort();
  fclose(f);
  return path;
}

/* A single integer from SQL on the engine's database. */
static inline int64_t tenv_int(tenv *t, const char *sql){
  sqlite3_stmt *s;
  int64_t v = -1;
  if (sqlite3_prepare_v2(rv_store_db(rv_engine_store(t->e)), sql, -1, &s, NULL) != SQLITE_OK) {
    fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(rv_store_db(rv_engine_store(t->e))));
    abort();
  }
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

static inline void tenv_sql(tenv *t, const char *sql){
  char *msg = NULL;
  if (sqlite3_exec(rv_store_db(rv_engine_store(t->e)), sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
    abort();
  }
}

#endif
