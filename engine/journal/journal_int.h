/*
** journal/journal_int.h -- types shared by the journal's files.
**
**   script.c   the recording format: read a file into an rv__jr_rec, write one
**   outputs.c  history rows -> output lines; end states; instance trees
**   record.c   a live instance tree -> rv__jr_rec -> file
**   replay.c   run an rv__jr_rec on a fresh engine, compare, classify, report
**   proctest.c `ravand test`: many files, expectations, coverage
**
** Names: rv__jr_* are shared between these files and nowhere else.
**
** journal/ sits above the runtime: it drives an engine only through
** runtime/engine.h and reads the store with plain SELECTs; it never writes
** state tables. Output lines are produced by one function (rv__jr_outputs) for
** the live database and for the replay, which is what makes them
** comparable line by line.
*/
#ifndef RV_JOURNAL_INT_H
#define RV_JOURNAL_INT_H
#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include <cjson/cJSON.h>
#include "journal/journal.h"
#include "runtime/engine.h"
#include "store/store.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"

/* 2: an input line may carry "answers", the adapter answers given inside
** its command (engine.c answers_now); format 1 is read too. */
#define RV_JR_FORMAT 2

/*--- outputs.c ----------------------------------------------------------------*/

/* An instance tree: the root and every instance it called, in creation
** (id) order. procs[i] is the process id of ids[i]. */
typedef struct rv__jr_tree { int64_t *ids; char **procs; int n; } rv__jr_tree;
void rv__jr_tree_load(sqlite3 *db, int64_t root, rv__jr_tree *t /* OUT */);
void rv__jr_tree_fini(rv__jr_tree *t);
int  rv__jr_tree_index(const rv__jr_tree *t, int64_t id);   /* 1-based; 0 when absent */
/* ", 3, 4" style list of the ids for an SQL IN (...). New string. */
char *rv__jr_tree_sql_list(const rv__jr_tree *t);

/* Output lines in order; group[i] is the index of the step (input line)
** that caused line i, -1 before any input. Lines are owned. */
typedef struct rv__jr_outs { cJSON **v; int *group; int n, cap; } rv__jr_outs;
void rv__jr_outs_add(rv__jr_outs *o, cJSON *line, int group);   /* takes ownership */
void rv__jr_outs_fini(rv__jr_outs *o);

/* Append the output lines for the tree's history rows lo < id <= hi
** (hi < 0: no upper bound), in history order. */
void rv__jr_outputs(sqlite3 *db, const rv__jr_tree *t, int64_t lo, int64_t hi, int group, rv__jr_outs *o);
/* Append a {"out":"ledger",...} line per payroll/finance ledger row of
** the tree, when the adapters' ledger table exists. */
void rv__jr_ledger(sqlite3 *db, const rv__jr_tree *t, int group, rv__jr_outs *o);
/* Append one {"out":"end",...} line per tree instance. */
void rv__jr_end_states(rv_engine *e, const rv__jr_tree *t, int group, rv__jr_outs *o);
/* Decisions and ledger rows are carried for explanation only, never compared. */
bool rv__jr_is_info(const cJSON *line);
/* A deep copy with every object's keys sorted (stable output). New tree. */
cJSON *rv__jr_sorted(const cJSON *v);
/* The comparison form of a line: keys sorted at every level. New string. */
char *rv__jr_canon(const cJSON *line);
int64_t rv__jr_scalar(sqlite3 *db, const char *sql, int64_t arg, int64_t dflt);

/*--- script.c -----------------------------------------------------------------*/

typedef struct rv__jr_dep { int id; int64_t created; char *hash; } rv__jr_dep;
typedef struct rv__jr_file {
  char  *name, *kind;     /* kind: "bpmn" or "lua" */
  int    dep;             /* rv__jr_dep.id */
  int    n_lines;         /* source lines read so far */
  rv_buf text;
} rv__jr_file;
typedef struct rv__jr_step { cJSON *j; int lineno; bool expect; } rv__jr_step;

/* A recording or a process test, as read from a file or built by record.c. */
typedef struct rv__jr_rec {
  char    *path, *dir;            /* file and its directory (tests resolve paths) */
  bool     is_test;
  cJSON   *header;
  cJSON  **insts; int n_insts;    /* {"instance":K,...} lines, K = index + 1 */
  rv__jr_dep  *deps; int n_deps;
  rv__jr_file *files; int n_files;
  cJSON  **deploys; int n_deploys;   /* tests: {"deploy":[FILE...],"scripts":DIR} */
  rv__jr_step *steps; int n_steps;    /* inputs ("in") and expectations ("expect") */
  rv__jr_outs  outs;                  /* recorded outputs; group = step index */
} rv__jr_rec;

rv_status rv__jr_rec_load(const char *path, rv__jr_rec *r /* OUT */, rv_err *err);
/* The same from an open stream; path names it in messages and gives the
** directory tests resolve their paths against. */
rv_status rv__jr_rec_read(FILE *f, const char *path, rv__jr_rec *r /* OUT */, rv_err *err);
void      rv__jr_rec_fini(rv__jr_rec *r);
/* Write r in the recording format (header, instances, deployments, files,
** then each step followed by its outputs). */
void      rv__jr_rec_write(const rv__jr_rec *r, FILE *f);
/* Print one line: the object as built (top-level keys in insertion order). */
void      rv__jr_line_print(const cJSON *line, FILE *f);
void      rv__jr_file_add_text(rv__jr_file *f, const char *data, size_t len);

/*--- replay.c -----------------------------------------------------------------*/

/* Everything one run produced, for reports and coverage. */
typedef struct rv__jr_result {
  rv_replay_verdict verdict;
  char    where[256];
  rv_buf  report;           /* lines for humans */
  rv__jr_outs outs;             /* what the run produced */
  char  **procs; int n_procs;        /* process id per tree instance */
  char  **bpmn; size_t *bpmn_len; int n_bpmn;   /* BPMN texts deployed */
  int     n_checks, n_failed;        /* tests: expectations */
  int     n_inputs;
} rv__jr_result;

/*--- proctest.c ---------------------------------------------------------------*/

/* Check one {"expect":...} line of a process test against the engine's
** state now. path_mark/sms_mark: history marks of the previous path and
** SMS expectations (updated). On failure msg says what was found. */
bool rv__jr_check(rv_engine *e, int64_t root, const cJSON *expect, int64_t *path_mark,
              int64_t *sms_mark, rv_buf *msg);

rv_status rv__jr_run_file(const char *path, const rv_replay_opts *o, rv__jr_result *res /* OUT */,
                      rv_err *err);
void      rv__jr_result_fini(rv__jr_result *res);

#endif
