/*
** adapters/inquiry/inquiry.h -- status documents with access codes, and
** the agreements of outside bodies (directive 002, docs/directives/inquiry.md).
**
** The `inquiry` adapter (inquiry.c) writes its own tables (schema slot 6):
**
**   code-issue {national_id, mobile, document, valid_until (ms), single_use,
**               max_fetches, code_bits, sms_text?}          -> {code_id, state, valid_until}
**       makes a random access code (a selector of 8 and a secret of >= 16
**       Crockford base32 characters: 40 + >= 80 bits from libsodium), stores
**       the selector and Argon2id(HMAC(key, code), salt) -- never the code --
**       and sends the code by SMS to `mobile` itself, through the `sms`
**       adapter, so the clear code never becomes a job result, a variable,
**       a history or journal row. Answers only after the SMS was accepted.
**       A retry (same job key) makes a new code: the last SMS wins.
**   code-revoke {code_id, reason}                            -> {code_id, state}
**   agreement-activate {organisation, agreement, scope, valid_from, valid_to}
**                                                            -> {organisation, agreement, state}
**   agreement-revoke {organisation, agreement, reason}       -> {organisation, agreement, state}
** reason "expired" gives state expired, anything else revoked. A malformed
** input is the BPMN error INVALID_INPUT (NO_MOBILE when no SMS can reach
** the person); a busy store or a failed SMS is a technical failure (retried).
**
** Writes happen on the loop thread in their own short transaction (never
** inside someone else's), as for the ledger adapters (finance.h).
**
** The API's POST /v1/inquiry/documents/fetch (api.c) calls
** rv_inquiry_fetch() inside its request's savepoint.
*/
#ifndef RV_INQUIRY_H
#define RV_INQUIRY_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "store/store.h"

struct rv_engine;

/* The key codes are hashed with: derived from the API's token pepper
** (HMAC-SHA-256(pepper, "ravand/inquiry-code-key/v1")), so a copy of the
** database alone cannot check guesses offline. `ravand serve` and
** `ravand tick` set it; without it code-issue and fetches fail. */
void rv_inquiry_set_pepper(const unsigned char pepper[32]);
void rv_inquiry_clear_key(void);
bool rv_inquiry_has_key(void);

/* An organisation's agreement, as the API sees it on every call. */
typedef enum rv_agreement_state {
  RV_AGREEMENT_UNREGISTERED = 0,   /* no row: not an inquiry agreement */
  RV_AGREEMENT_ACTIVE,             /* state active and valid_from <= now < valid_to */
  RV_AGREEMENT_INACTIVE            /* revoked, expired, or outside its validity */
} rv_agreement_state;
rv_agreement_state rv_inquiry_agreement(rv_store *st, const char *organisation,
                                        const char *agreement, int64_t now);

/* Limits of the fetch endpoint (serve options, docs/api.md). */
typedef struct rv_inquiry_limits {
  int     max_failures_user;     /* refusals per principal per window, then 429 [20] */
  int     max_failures_org;      /* refusals per organisation per window, then 429 [50] */
  int64_t window_ms;             /* [10 min] */
  int     lock_after;            /* consecutive wrong secrets on one code, then locked [5] */
  int64_t lock_ms;               /* [1 h] */
} rv_inquiry_limits;
void rv_inquiry_limits_default(rv_inquiry_limits *l);

typedef enum rv_fetch_outcome {
  RV_FETCH_OK = 0,
  RV_FETCH_REFUSED,      /* unknown, malformed, wrong, locked, expired, revoked, used up,
                            agreement not active: one answer for all (404) */
  RV_FETCH_THROTTLED     /* too many refusals of this principal or organisation (429) */
} rv_fetch_outcome;

typedef struct rv_inquiry_fetch_in {
  const char *code;           /* as typed: case, '-' and spaces do not matter */
  int64_t     principal_id;
  const char *principal, *organisation, *agreement;
  const char *request_id;     /* for the attempt row (may be NULL) */
} rv_inquiry_fetch_in;

typedef struct rv_inquiry_fetch_out {
  rv_fetch_outcome outcome;
  char     reason[32];        /* ok, unknown, malformed, wrong, locked, expired, revoked, used,
                                 agreement, throttled-user, throttled-org */
  int64_t  code_id;           /* 0 when the selector matched no code */
  int64_t  attempt_id;        /* the inquiry_attempts row */
  int      retry_after_s;     /* throttled: seconds until a refusal leaves the window */
  cJSON   *reply;             /* OK: {code_id, document, valid_until, fetch_no, max_fetches}; caller frees */
} rv_inquiry_fetch_out;

/* One fetch attempt by an organisation user: agreement active, not
** throttled, code verified (constant-time compare of the KDF output),
** within validity and fetch limits. Records the attempt (and the code's
** counters: fetches, consecutive failures, lock) and, on success,
** correlates the message `inquiry-fetched` (key code_id, no buffering,
** message id "inquiry-fetch-<attempt>") with {fetch_organisation,
** fetch_agreement, fetch_user, fetch_at}. Call inside a transaction.
** Returns an error only when the store failed (then roll back). */
rv_status rv_inquiry_fetch(struct rv_engine *e, const rv_inquiry_limits *lim,
                           const rv_inquiry_fetch_in *in, rv_inquiry_fetch_out *out,
                           rv_err *err);

/* "IC-12" <-> 12. */
void    rv_inquiry_code_id(int64_t id, char *buf, size_t n);
int64_t rv_inquiry_code_id_parse(const char *s);    /* 0 if malformed */

#endif
