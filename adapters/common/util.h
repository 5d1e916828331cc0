/*
** adapters/common/util.h -- helpers shared by the finance, registry and
** records adapters: file hashing and reading, atomic publication of an
** output file, the test-only crash hook, the engine binding the adapters
** use, and the glue for their `ravand` sub-commands.
*/
#ifndef RV_ADAPTERS_UTIL_H
#define RV_ADAPTERS_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/err.h"
#include "core/clock.h"
#include "core/sha256.h"          /* rv_sha256_hex, for the adapters */
#include "adapter.h"

struct rv_engine;

/* Read a whole regular file (at most max bytes). Returns: new buffer in
** *out (NUL-terminated, *len excludes the NUL), caller frees with rv_free(). */
rv_status rv_file_read(const char *path, size_t max, char **out /* OUT */,
                       size_t *len /* OUT */, rv_err *err);

/* Atomic publication of dir/name: the caller writes into the FILE* of
** rv_publish_begin(), which is a hidden temporary ".name.PID.tmp" in the
** same directory; rv_publish_end() flushes, fsyncs, closes, renames over
** dir/name and fsyncs the directory. A reader of dir/name sees the old
** file or the complete new one, never a part. rv_publish_abort() removes
** the temporary. Crash points (see rv_crash_point): "<tag>-written"
** before fsync, "<tag>-synced" before rename, "<tag>-renamed" before the
** directory fsync. */
typedef struct rv_publish {
  FILE *f;
  char  tmp[4096], final[4096];
  const char *tag;
} rv_publish;
rv_status rv_publish_begin(rv_publish *p, const char *dir, const char *name,
                           const char *tag, rv_err *err);
rv_status rv_publish_end(rv_publish *p, rv_err *err);
void      rv_publish_abort(rv_publish *p);
/* Remove stale temporaries ".name.*.tmp" left in dir by a crash. */
void      rv_publish_clean(const char *dir, const char *name);

/* Test hook: if the environment variable RV_TEST_CRASH_AT is point (or
** "point:N", the Nth time this process passes it), the process kills
** itself with SIGKILL (no cleanup, no atexit), so tests can stop it
** exactly between two durable steps. Points: ledger-written,
** export-batched, export-partial, export-written, export-synced, export-renamed,
** feed-chunk, records-written/-synced/-renamed. */
void rv_crash_point(const char *point);

/* Copy s into a printable one-line excerpt (at most cap-1 bytes): control
** characters become spaces, bytes of invalid UTF-8 become '?'. */
void rv_excerpt(const char *s, size_t n, char *out, size_t cap);

/* Current Jalali date at instant ms (Asia/Tehran) as "yyyy/mm/dd" and
** the month as "yyyy-mm". */
void rv_jalali_today(int64_t ms, int *jy, int *jm, int *jd);

/* Parse a Jalali date "yyyy/mm/dd" (also "yyyy-mm-dd"): 0 when valid
** (year 1300..1600, month 1..12, day within the month), else a reason. */
const char *rv_jalali_parse(const char *s, int *jy, int *jm, int *jd);
/* Parse a Jalali month "yyyy-mm" (also "yyyy/mm"). */
const char *rv_jalali_parse_month(const char *s, int *jy, int *jm);

/* Integer Rials from JSON: a number with no fraction, or a string of
** ASCII digits; 1 <= v <= 10^15. False otherwise. */
struct cJSON;
bool rv_json_rials(const struct cJSON *v, int64_t *out);

/*--- `ravand` sub-commands of the adapters (called from engine/main.c) ---*/

typedef struct rv_cli_env {
  const char *db;       /* --db */
  const char *now;      /* --now (virtual clock) or NULL */
  bool        json;     /* --json */
} rv_cli_env;

struct rv_engine_cfg;
/* The engine configuration of every `ravand` command: the database, a
** virtual clock at now when given (ISO 8601 or epoch ms; clk is caller
** storage that must outlive the engine), and cfg.answer_now on. RV_INVALID
** with the reason when now does not parse. */
rv_status rv_cli_engine_cfg(const char *db, const char *now, rv_clock *clk,
                            struct rv_engine_cfg *cfg /* OUT */, rv_err *err);
/* Open the engine of env (with its virtual clock when --now is given)
** and bind the adapters to it. Returns 0, or the exit code (1 or 2) after
** printing the reason. clk is caller storage that must outlive *out. */
int rv_cli_open(const rv_cli_env *env, rv_clock *clk, struct rv_engine **out /* OUT */);
/* Option helpers over argv[0..*argc): remove "--name VALUE" and return
** VALUE (NULL if absent; *bad set if the value is missing); remove a
** flag and say whether it was there; refuse leftover "--options". */
const char *rv_cli_opt(int *argc, char **argv, const char *name, bool *bad);
bool        rv_cli_flag(int *argc, char **argv, const char *name);
bool        rv_cli_no_unknown(int argc, char **argv);
/* Print JSON (pretty) to stdout. */
struct cJSON;
void        rv_cli_print_json(const struct cJSON *v);

/* A job whose work runs on the loop after invoke() returned (invoke must
** not block or re-enter the engine): rv_job_defer copies what the work
** needs and schedules run(fd, what, j) on a zero-delay event; run answers
** through j->done and ends with rv_job_copy_free(j). RV_IO if it could not
** be scheduled (nothing kept). Used by `records` and `message`. */
typedef struct rv_job_copy {
  struct event_base *base;
  rv_adapter_done_fn done;
  void  *arg;
  cJSON *input;              /* a copy of the job's input ({} when it had none) */
  char  *key;                /* the job's idempotency key */
} rv_job_copy;
rv_status rv_job_defer(struct event_base *base, const rv_job_info *job, rv_adapter_done_fn done,
                       void *arg, event_callback_fn run);
void      rv_job_copy_free(rv_job_copy *j);

/* Unbind and close. NULL is a no-op. */
void rv_cli_close(struct rv_engine *e);

int rv_export_cli(const rv_cli_env *env, int argc, char **argv);    /* ravand export ...  */
int rv_feed_cli(const rv_cli_env *env, int argc, char **argv);      /* ravand feed ...    */
int rv_records_cli(const rv_cli_env *env, int argc, char **argv);   /* ravand records ... */

#endif
