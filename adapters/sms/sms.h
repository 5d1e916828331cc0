/*
** adapters/sms/sms.h -- the SMS gateway adapter and its delivery log.
**
** The adapter (sms.c) posts each `sms` job to an HTTP or HTTPS gateway on
** the libevent loop (https: TLS 1.2+, certificate and host name always
** verified, against sms.ca_file or the system CA store):
**     POST <url>   Content-Type: application/json; charset=utf-8
**                  <api_key_header>: <api_key>     (when a key is set)
**                  Idempotency-Key: <job key>
**     {"to": "...", "text": "...", "ref": "<job key>", "sender": "..."}
** and answers the engine:
**     2xx                                -> RV_JOB_OK {gateway_id, http_status, duplicate}
**     5xx, 429, 408                      -> RV_JOB_FAILED code "http_5xx" (retried)
**     other 4xx                          -> RV_JOB_FAILED code "rejected" + the
**                                           gateway's reason (retried; incident last)
**     connect refused / connect timeout  -> RV_JOB_FAILED code "unreachable"
**     timeout or close after the request
**       was sent                         -> RV_JOB_FAILED code "uncertain"
**     TLS handshake failed (untrusted
**       certificate, wrong host name)    -> RV_JOB_FAILED code "tls", "TLS: ..."
** The job key is stable across retries and restarts, so a gateway that
** deduplicates on `ref` delivers each message once.
**
** It is registered under the name `sms` by rv_sms_configure() only when a
** gateway URL is configured; otherwise the in-memory test recorder keeps
** the name (adapters/test).
**
** The delivery log (sms_log.c, table sms_log, schema slot 3) is written by
** the engine when it applies an `sms` job's result (runtime/flow.c calls
** rv_sms_log_result in the same transaction): the adapter itself never
** touches the database.
*/
#ifndef RV_SMS_H
#define RV_SMS_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "adapter.h"
#include "core/err.h"
#include "store/store.h"

/* Configure from the "sms" object of the config file (may be NULL) and
** the environment (RAVAND_SMS_URL, RAVAND_SMS_API_KEY, RAVAND_SMS_API_KEY_HEADER,
** RAVAND_SMS_SENDER, RAVAND_SMS_TIMEOUT_MS, RAVAND_SMS_CA_FILE; the environment
** wins). An https URL loads its trust (ca_file or the system store) here. With no
** URL the adapter stays unregistered and RV_OK is returned.
** Borrows section; everything needed is copied. */
rv_status rv_sms_configure(const cJSON *section, rv_err *err);
/* Whether rv_sms_configure registered the gateway adapter. */
int       rv_sms_configured(void);
/* Cancel every in-flight request (their done() runs with RV_JOB_FAILED,
** "shutting down"), free connections and configuration, unregister.
** Call before the event_base is freed. Safe to call twice. */
void      rv_sms_stop(void);

/* Engine hook: record the outcome of one attempt of job_id in sms_log,
** inside the caller's transaction. A no-op (RV_OK) unless the job is a
** pending `sms` job. now is the engine clock (ms). */
rv_status rv_sms_log_result(rv_store *st, int64_t now, int64_t job_id,
                            rv_job_outcome o, const cJSON *result,
                            const char *code, const char *msg, rv_err *err);

/* Read the delivery log. filter (borrowed, may be NULL):
** {"instance": id, "state": "sent|failed|uncertain|retrying", "limit": n, "offset": n}.
** Returns: new JSON array in *out, caller frees with cJSON_Delete(). */
rv_status rv_sms_log_json(rv_store *st, const cJSON *filter, cJSON **out /* OUT */,
                          rv_err *err);

/* `ravand sms log ...` (argv[0] is the word after `sms`). Exit code. */
struct rv_cli_env;
int       rv_sms_cli(const struct rv_cli_env *env, int argc, char **argv);

/* "09121234567" -> "*******4567": every character but the last four
** becomes '*'. Returns: new string, caller frees with rv_free(). */
char     *rv_sms_mask(const char *mobile);

#endif
