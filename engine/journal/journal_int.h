/*
** journal/journal_int.h -- types shared by the journal's files.
**
**   script.c   the recording format: read a file into an rr_rec, write one
**   outputs.c  history rows -> output lines; end states; instance trees
**   record.c   a live instance tree -> rr_rec -> file
**   replay.c   run an rr_rec on a fresh engine, compare, classify, report
**   proctest.c `ravand test`: many files, expectations, coverage
**
** journal/ sits above the runtime: it drives an engine only through
** runtime/engine.h and reads the store with plain SELECTs; it never writes
** state tables. Output lines are produced by one function (rr_outputs) for
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

#define RR_FORMAT 1

/*--- outputs.c ----------------------------------------------------------------*/

/* An instance tree: the root and every instance it called, in creation
** (id) order. procs[i] is the process id of ids[i]. */
typedef struct rr_tree { int64_t *ids; char **procs; int n; } rr_tree;
void rr_tree_load(sqlite3 *db, int64_t root, rr_tree *t /* OUT */);
void rr_tree_fini(rr_tree *t);
int  rr_tree_index(const rr_tree *t, int64_t id);   /* 1-based; 0 when absent */
/* ", 3, 4" style list of the ids for an SQL IN (...). New string. */
char *rr_tree_sql_list(const rr_tree *t);

/* Output lines in order; group[i] is the index of the step (input line)
** that caused line i, -1 before any input. Lines are owned. */
typedef struct rr_outs { cJSON **v; int *group; int n, cap; } rr_outs;
void rr_outs_add(rr_outs *o, cJSON *line, int group);   /* takes ownership */
void rr_outs_fini(rr_outs *o);

/* Append the output lines for the tree's history rows lo < id <= hi
** (hi < 0: no upper bound), in history order. */
void rr_outputs(sqlite3 *db, const rr_tree *t, int64_t lo, int64_t hi, int group, rr_outs *o);
/* Append one {"out":"end",...} line per tree instance. */
void rr_end_states(rv_engine *e, const rr_tree *t, int group, rr_outs *o);
/* Decisions are carried for explanation only, never compared. */
bool rr_is_info(const cJSON *line);
/* A deep copy with every object's keys sorted (stable output). New tree. */
cJSON *rr_sorted(const cJSON *v);
/* The comparison form of a line: keys sorted at every level. New string. */
char *rr_canon(const cJSON *line);
int64_t rr_scalar(sqlite3 *db, const char *sql, int64_t arg, int64_t dflt);

/*--- script.c -----------------------------------------------------------------*/

typedef struct rr_dep { int id; int64_t created; char *hash; } rr_dep;
typedef struct rr_file {
  char  *name, *kind;     /* kind: "bpmn" or "lua" */
  int    dep;             /* rr_dep.id */
  int    n_lines;         /* source lines read so far */
  rv_buf text;
} rr_file;
typedef struct rr_step { cJSON *j; int lineno; bool expect; } rr_step;

/* A recording or a process test, as read from a file or built by record.c. */
typedef struct rr_rec {
  char    *path, *dir;            /* file and its directory (tests resolve paths) */
  bool     is_test;
  cJSON   *header;
  cJSON  **insts; int n_insts;    /* {"instance":K,...} lines, K = index + 1 */
  rr_dep  *deps; int n_deps;
  rr_file *files; int n_files;
  cJSON  **deploys; int n_deploys;   /* tests: {"deploy":[FILE...],"scripts":DIR} */
  rr_step *steps; int n_steps;    /* inputs ("in") and expectations ("expect") */
  rr_outs  outs;                  /* recorded outputs; group = step index */
} rr_rec;

rv_status rr_rec_load(const char *path, rr_rec *r /* OUT */, rv_err *err);
void      rr_rec_fini(rr_rec *r);
/* Write r in the recording format (header, instances, deployments, files,
** then each step followed by its outputs). */
void      rr_rec_write(const rr_rec *r, FILE *f);
/* Print one line: the object as built (top-level keys in insertion order). */
void      rr_line_print(const cJSON *line, FILE *f);
void      rr_file_add_text(rr_file *f, const char *data, size_t len);

/*--- replay.c -----------------------------------------------------------------*/

/* Everything one run produced, for reports and coverage. */
typedef struct rr_result {
  rv_replay_verdict verdict;
  char    where[256];
  rv_buf  report;           /* lines for humans */
  rr_outs outs;             /* what the run produced */
  char  **procs; int n_procs;        /* process id per tree instance */
  char  **bpmn; size_t *bpmn_len; int n_bpmn;   /* BPMN texts deployed */
  int     n_checks, n_failed;        /* tests: expectations */
  int     n_inputs;
} rr_result;

/*--- proctest.c ---------------------------------------------------------------*/

/* Check one {"expect":...} line of a process test against the engine's
** state now. path_mark/sms_mark: history marks of the previous path and
** SMS expectations (updated). On failure msg says what was found. */
bool rr_check(rv_engine *e, int64_t root, const cJSON *expect, int64_t *path_mark,
              int64_t *sms_mark, rv_buf *msg);

rv_status rr_run_file(const char *path, const rv_replay_opts *o, rr_result *res /* OUT */,
                      rv_err *err);
void      rr_result_fini(rr_result *res);

#endif
