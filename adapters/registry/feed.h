/*
** adapters/registry/feed.h -- the civil-registry (ثبت احوال) monthly
** marriage file: validation, idempotent import, reconciliation report.
** The file format is specified in docs/adapters.md, "Civil-registry feed".
**
** Rules:
**   - every line is validated; a bad line is recorded (feed_issues) with
**     its line number and reason and counted, never dropped silently;
**   - a file is identified by its SHA-256: importing the same bytes again
**     applies nothing and reports the earlier import;
**   - a record is identified by (registry_office, certificate_no): a
**     record seen before (in this file or an earlier one) is a duplicate
**     if identical, and rejected as a conflict if its data differ;
**   - a file without its END trailer, or whose trailer count disagrees,
**     is truncated or incomplete: it is rejected as a whole and nothing
**     of it is applied (the reason is recorded);
**   - each valid record sends the message "marriage-registered" for each
**     insured spouse (a person in the records store; --all-spouses: both),
**     key = that spouse's national ID, message id derived from the record
**     key and the spouse, so a waiting case is correlated, or a process
**     with that message start event is started, exactly once;
**   - records are applied in chunks (at most 1,000 records and about 100 ms
**     per transaction, whichever comes first); each
**     chunk commits the records, their messages, their issues and the
**     resume position together, so a crash resumes exactly where the last
**     commit ended, and the loop runs other events between chunks.
*/
#ifndef RV_FEED_H
#define RV_FEED_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/err.h"

struct rv_engine;
struct rv_store;

typedef struct rv_feed_opts {
  int         chunk;        /* records per transaction at most; 0 = 1000 */
  int         chunk_ms;     /* and a chunk stops after this long; 0 = 100 ms */
  bool        all_spouses;  /* message both spouses even if not in the records store */
  int64_t     ttl_ms;       /* buffer TTL of an unmatched message; 0 = 35 days */
  const char *message;      /* message name; NULL = "marriage-registered" */
} rv_feed_opts;

/* Called once when an import ends. report (borrowed; may be NULL on an
** engine error) is the reconciliation report; err holds the reason when
** rc != RV_OK (the import stays resumable: run it again). */
typedef void (*rv_feed_done_fn)(void *arg, rv_status rc, const cJSON *report,
                                const rv_err *err);

/* Start importing path. Validation of the file's structure happens now;
** records are applied by loop events, one chunk per event. RV_OK: done()
** will be called exactly once, later. Error: done() is never called.
** path and opts are copied. */
rv_status rv_feed_import_start(struct rv_engine *e, const char *path, const rv_feed_opts *opts,
                               rv_feed_done_fn done, void *arg, rv_err *err);

/* Start an import and run the engine's loop until it ends.
** Returns: new report in *out_report (also on a rejected file), caller
** frees with cJSON_Delete(). */
rv_status rv_feed_import(struct rv_engine *e, const char *path, const rv_feed_opts *opts,
                         cJSON **out_report /* OUT */, rv_err *err);

/* The report of import id from the store, with every issue when
** with_issues. Returns: new object, caller frees with cJSON_Delete(). */
rv_status rv_feed_report(struct rv_store *st, int64_t id, bool with_issues,
                         cJSON **out /* OUT */, rv_err *err);

/* Validate one data record (fields per the header names of the format).
** Returns NULL when valid, with normalised values written back into the
** field buffers; else a reason "column: why" in why (cap bytes).
** today_* is the import date (a marriage cannot be later). Exposed for tests. */
typedef struct rv_marriage {
  char husband[11], wife[11];
  char date[11];                /* yyyy/mm/dd */
  char gdate[11];               /* the same day, Gregorian yyyy-mm-dd */
  char certificate[33];
  char office[257];
  char type[10];                /* permanent | temporary */
} rv_marriage;
const char *rv_marriage_check(const char *const fields[6], int today_y, int today_m, int today_d,
                              rv_marriage *out /* OUT */, char *why, size_t cap);

#endif
