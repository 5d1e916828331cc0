/*
** adapters/finance/finance.h -- payroll deductions and finance payment
** documents: the ledger the `payroll` and `finance` adapters write, and
** the batches `ravand export` cuts from it.
**
** Ledger rows (table fin_ledger) are written by service tasks:
**   payroll  {national_id, period "yyyy-mm" (Jalali), amount_rials, kind [, reference]}
**            e.g. the supplementary-insurance premium of one person for one month,
**            deducted from the pension;
**   finance  {national_id, sheba, amount_rials, kind, reference [, period]}
**            e.g. a marriage-grant payment document for the finance department;
**            period defaults to the Jalali month the row is written in.
** A row is keyed by the job's idempotency key (UNIQUE), so a retried or
** re-dispatched job never makes a second row; it gets the first row back.
**
** Inside the command (adapter.h answer_now; every `ravand` command): the
** row is written in the transaction of the command that reached the
** service task, so row and step commit together or not at all.
**
** Through the loop (no answer_now, or declined), the adapter writes
** outside the command transaction: the adapter
** commits the row in its own short transaction on the loop thread, and
** only then answers OK. If the process dies in between, the job is still
** pending in the outbox and is dispatched again after restart with the
** same key; the INSERT finds the row (same key, same fingerprint) and
** answers with it. The engine applies a job's answer only while the job
** is pending, so the answer takes effect once. Net effect: exactly one
** row per job, and the process continues once.
**
** Export: a batch takes every unbatched row of one ledger (optionally of
** one period) in one transaction (each row ends in exactly one batch),
** then the CSV is written from the batch alone (a pure function of it:
** re-export is byte-identical) and published atomically (temp, fsync,
** rename, fsync dir). Rows and batches are immutable (triggers).
*/
#ifndef RV_FINANCE_H
#define RV_FINANCE_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "store/store.h"

/* A validated ledger entry; strings point into the entry's own storage. */
typedef struct rv_ledger_entry {
  char    ledger[16];          /* "payroll" | "finance" */
  char    national_id[11];
  char    period[8];           /* "yyyy-mm", Jalali */
  char    sheba[27];           /* finance only, else "" */
  char    kind[129];
  char    reference[129];      /* may be "" */
  int64_t amount_rials;
  char    fingerprint[65];     /* sha256 of the input fields */
} rv_ledger_entry;

/* Validate a job input for ledger ("payroll" or "finance"); now gives
** the default period of finance rows. RV_INVALID with the field and the
** reason in err when the input is not acceptable. */
rv_status rv_ledger_parse(const char *ledger, const cJSON *input, int64_t now,
                          rv_ledger_entry *out /* OUT */, rv_err *err);

/* Write the entry under job_key in its own transaction (the store must
** have no transaction open), or find the row already written under that
** key. RV_CONFLICT when the key exists with a different fingerprint.
** Returns: new JSON of the row in *out_row, caller frees with cJSON_Delete(). */
rv_status rv_ledger_put(rv_store *st, const rv_ledger_entry *en, const char *job_key,
                        int64_t instance_id, const char *element_id, int64_t now,
                        cJSON **out_row /* OUT */, rv_err *err);

/* The reconciliation report of one batch. */
typedef struct rv_export_report {
  int64_t batch;
  char    ledger[16];
  char    period[8];           /* "" = all periods */
  int64_t rows, sum_rials, created, published;
  char    file[4096];          /* full path of the published file */
  char    sha256[65];
} rv_export_report;

/* Publish every batch of ledger that was cut but never published (a
** crash between cutting and publishing); *n_out gets how many. */
rv_status rv_export_recover(rv_store *st, const char *ledger, const char *dir,
                            int *n_out /* OUT */, rv_err *err);
/* Cut a new batch of ledger's unbatched rows (period "yyyy-mm" or NULL)
** and publish its file in dir. RV_NOTFOUND when there is nothing to
** export (no batch is created). */
rv_status rv_export_batch(rv_store *st, const char *ledger, const char *period,
                          const char *dir, int64_t now, rv_export_report *out /* OUT */,
                          rv_err *err);
/* (Re)write the file of an existing batch into dir and check it against
** the SHA-256 recorded at its first publication (RV_CORRUPT if it
** differs; the first publication records it). */
rv_status rv_export_publish(rv_store *st, int64_t batch, const char *dir, int64_t now,
                            rv_export_report *out /* OUT */, rv_err *err);
/* The recorded report of a batch, without writing anything. */
rv_status rv_export_get(rv_store *st, int64_t batch, rv_export_report *out /* OUT */,
                        rv_err *err);
/* Report as JSON. Returns: new object, caller frees with cJSON_Delete(). */
cJSON    *rv_export_report_json(const rv_export_report *r);

/* Write one CSV cell: neutralises spreadsheet formulas (a leading = + - @
** TAB or CR gets a ' prefix) and quotes per RFC 4180 when needed. */
struct rv_buf;
void rv_csv_cell(struct rv_buf *b, const char *s);

#endif
