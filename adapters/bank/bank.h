/*
** adapters/bank/bank.h -- bank payment confirmations.
**
** A confirmation (payment_id, amount_rials, paid_at, bank_ref) is
** correlated as the message "payment-confirmed" with key payment_id,
** payload {amount_rials, paid_at, bank_ref} and message id bank_ref, so a
** confirmation seen twice is applied once. Every line of every file gets
** an outcome in bank_confirmations (schema slot 3):
**   correlated  an instance was waiting and received it
**   started     no instance waited; a message start event started one
**   buffered    no one waiting yet: kept for the TTL, delivered on arrival
**   duplicate   this bank_ref was applied before (this file or an earlier one)
**   mismatched  the waiting instance expects another amount (amount_rials,
**               else slip_amount): NOT correlated; the instance keeps waiting
**   rejected    the line is malformed (reason and line number recorded)
** A file is applied in one transaction, and its SHA-256 is recorded: the
** same file imported again applies nothing and reports the first import.
** File format: docs/adapters.md.
*/
#ifndef RV_BANK_H
#define RV_BANK_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "runtime/engine.h"

#define RV_BANK_MESSAGE "payment-confirmed"

typedef struct rv_bank_opts {
  int64_t ttl_ms;            /* buffer TTL for unmatched confirmations; 0: 7 days */
} rv_bank_opts;

/* Import the CSV file at path. A file that cannot be read, is not UTF-8
** text, or lacks the header is refused as a whole (RV_INVALID, nothing
** recorded). Otherwise RV_OK with the reconciliation report.
** Returns: new JSON report in *out (also on a repeated file), caller
** frees with cJSON_Delete(). */
rv_status rv_bank_import_file(rv_engine *e, const char *path, const rv_bank_opts *opts,
                              cJSON **out /* OUT */, rv_err *err);
/* Import confirmations posted over HTTP: items is an array of objects
** {payment_id, amount_rials, paid_at, bank_ref} (amount a number or a
** string of digits); "line" in the report is the 1-based item number.
** Same rules and tables as a file (source "http", no file hash: a
** repeated call reports its confirmations as duplicates). Runs in the
** caller's transaction when one is open (a savepoint), else in its own.
** Returns: new JSON report in *out, caller frees with cJSON_Delete(). */
rv_status rv_bank_import_json(rv_engine *e, const cJSON *items, const char *source,
                              const rv_bank_opts *opts, cJSON **out /* OUT */, rv_err *err);
/* The report of an earlier import; NOTFOUND if there is none. */
rv_status rv_bank_report(rv_engine *e, int64_t import_id, cJSON **out /* OUT */, rv_err *err);
/* Every import with its counts, newest first. */
rv_status rv_bank_list(rv_engine *e, cJSON **out /* OUT */, rv_err *err);

/* `ravand bank import FILE | list | report ID`. Exit code. */
struct rv_cli_env;
int rv_bank_cli(const struct rv_cli_env *env, int argc, char **argv);

#endif
