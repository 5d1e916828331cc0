/*
** adapters/inquiry/inquiry.c -- the `inquiry` adapter (access codes of
** status documents, agreements of outside bodies) and the verification
** behind POST /v1/inquiry/documents/fetch. See inquiry.h.
**
** An access code is SELECTOR + SECRET in Crockford base32 (no I, L, O, U;
** case, '-' and spaces are ignored when typed; I/L read as 1, O as 0):
**   selector  8 characters, 40 random bits: the public half, looked up by
**             an index, and the "reference" a lock is counted against;
**   secret    ceil(code_bits / 5) characters, >= 80 random bits.
** Shown as groups of four: "K7M2-9QXR-ABCD-EFGH-JKMN-PQRS".
**
** Storage (RELIABILITY E3): only the selector and
**   Argon2id(HMAC-SHA-256(key, "v1:" selector ":" secret), 16-byte salt,
**            t = 2, m = 19 MiB)
** with the parameters beside it. The key comes from the API's pepper, so
** the database alone does not let anyone test guesses. Verification
** compares the KDF output with sodium_memcmp (constant time). A selector
** that matches nothing is answered without running the KDF: that only
** tells a guesser that a random 40-bit selector is unused, which costs
** him one of his 20 refusals per 10 minutes and gains him nothing.
*/
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <event2/event.h>
#include <sodium.h>
#include "inquiry/inquiry.h"
#include "adapter.h"
#include "cal/cal.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "runtime/engine.h"

#define B32        "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define SEL_LEN    8
#define SECRET_MAX 32                /* 160 bits */
#define SALT_LEN   16
#define KDF_OPS    2ULL
#define KDF_MEM    ((size_t)19 << 20)
#define MIN_BITS   80
#define MAX_BITS   160
#define DEFAULT_SMS \
  "رمز بهره‌برداری سند استعلام وضعیت بیمه‌ای شما: {code} . این رمز را فقط به مرجعی بدهید که باید سند را دریافت کند."

static unsigned char code_key[32];
static bool have_key;

void rv_inquiry_set_pepper(const unsigned char pepper[32]){
  static const char label[] = "ravand/inquiry-code-key/v1";
  crypto_auth_hmacsha256(code_key, (const unsigned char *)label, sizeof label - 1, pepper);
  have_key = true;
}
void rv_inquiry_clear_key(void){ sodium_memzero(code_key, sizeof code_key); have_key = false; }
bool rv_inquiry_has_key(void){ return have_key; }

void rv_inquiry_limits_default(rv_inquiry_limits *l){
  l->max_failures_user = 20;
  l->max_failures_org = 50;
  l->window_ms = 10 * 60 * 1000;
  l->lock_after = 5;
  l->lock_ms = 60 * 60 * 1000;
}

void rv_inquiry_code_id(int64_t id, char *buf, size_t n){
  snprintf(buf, n, "IC-%lld", (long long)id);
}

int64_t rv_inquiry_code_id_parse(const char *s){
  int64_t v = 0;
  if (s == NULL || strncmp(s, "IC-", 3) != 0 || s[3] == 0 || s[3] == '0') return 0;
  for (s += 3; *s; s++) {
    if (*s < '0' || *s > '9' || v > INT64_C(1) << 50) return 0;
    v = v * 10 + (*s - '0');
  }
  return v;
}

/*--- codes -------------------------------------------------------------------*/

static int b32_value(unsigned char c){
  if (c >= 'a' && c <= 'z') c = (unsigned char)(c - 32);
  if (c == 'I' || c == 'L') c = '1';
  if (c == 'O') c = '0';
  for (int i = 0; i < 32; i++) if (B32[i] == c) return i;
  return -1;
}

/* A typed code into its canonical halves. False when it cannot be a code. */
static bool code_parse(const char *in, char sel[SEL_LEN + 1], char secret[SECRET_MAX + 1],
                       size_t *slen){
  char buf[SEL_LEN + SECRET_MAX + 1];
  size_t n = 0;
  if (in == NULL) return false;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    int v;
    if (*p == '-' || *p == ' ') continue;
    if ((v = b32_value(*p)) < 0 || n >= sizeof buf - 1) { sodium_memzero(buf, sizeof buf); return false; }
    buf[n++] = B32[v];
  }
  if (n < SEL_LEN + MIN_BITS / 5 || n > SEL_LEN + SECRET_MAX) { sodium_memzero(buf, sizeof buf); return false; }
  memcpy(sel, buf, SEL_LEN);
  sel[SEL_LEN] = 0;
  *slen = n - SEL_LEN;
  memcpy(secret, buf + SEL_LEN, *slen);
  secret[*slen] = 0;
  sodium_memzero(buf, sizeof buf);
  return true;
}

static bool code_hash(const char *sel, const char *secret, size_t slen, const unsigned char *salt,
                      unsigned long long ops, size_t mem, unsigned char out[32]){
  crypto_auth_hmacsha256_state st;
  unsigned char pre[32];
  int rc;
  crypto_auth_hmacsha256_init(&st, code_key, sizeof code_key);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)"v1:", 3);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)sel, SEL_LEN);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)":", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)secret, slen);
  crypto_auth_hmacsha256_final(&st, pre);
  rc = crypto_pwhash(out, 32, (const char *)pre, sizeof pre, salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13);
  sodium_memzero(pre, sizeof pre);
  sodium_memzero(&st, sizeof st);
  return rc == 0;
}

static void random_chars(char *out, size_t n){
  for (size_t i = 0; i < n; i++) out[i] = B32[randombytes_uniform(32)];
  out[n] = 0;
}

/* "ABCD-EFGH-..." from sel + secret. */
static void code_format(const char *sel, const char *secret, char *out, size_t cap){
  char all[SEL_LEN + SECRET_MAX + 1];
  size_t n, w = 0;
  snprintf(all, sizeof all, "%s%s", sel, secret);
  n = strlen(all);
  for (size_t i = 0; i < n && w + 2 < cap; i++) {
    if (i > 0 && i % 4 == 0) out[w++] = '-';
    out[w++] = all[i];
  }
  out[w] = 0;
  sodium_memzero(all, sizeof all);
}

/* tmpl with every "{code}" replaced. New string, or NULL without one. */
static char *render_sms(const char *tmpl, const char *code){
  rv_buf b;
  const char *p = tmpl, *q;
  bool any = false;
  char *out;
  rv_buf_init(&b, 4096);
  while ((q = strstr(p, "{code}")) != NULL) {
    rv_buf_add(&b, p, (size_t)(q - p));
    rv_buf_adds(&b, code);
    p = q + 6;
    any = true;
  }
  rv_buf_adds(&b, p);
  out = any && !b.toobig ? rv_strdup(b.p) : NULL;
  sodium_memzero(b.p, b.len);
  rv_buf_fini(&b);
  return out;
}

/*--- agreements --------------------------------------------------------------------*/

#define SQL_AGR_GET \
  "SELECT state, valid_from, valid_to FROM inquiry_agreements WHERE organisation=? AND agreement=?"

rv_agreement_state rv_inquiry_agreement(rv_store *st, const char *org, const char *agr, int64_t now){
  sqlite3_stmt *s;
  rv_agreement_state r = RV_AGREEMENT_UNREGISTERED;
  if (org == NULL || agr == NULL || !*org || !*agr) return r;
  s = rv_store_stmt(st, SQL_AGR_GET);
  rv_store_bind(s, "tt", org, agr);
  if (sqlite3_step(s) == SQLITE_ROW) {
    const char *state = (const char *)sqlite3_column_text(s, 0);
    bool on = state && strcmp(state, "active") == 0 && sqlite3_column_int64(s, 1) <= now &&
              now < sqlite3_column_int64(s, 2);
    r = on ? RV_AGREEMENT_ACTIVE : RV_AGREEMENT_INACTIVE;
  }
  sqlite3_reset(s);
  return r;
}

/*--- the adapter --------------------------------------------------------------------*/

typedef enum { OP_ISSUE, OP_REVOKE, OP_AGR_ON, OP_AGR_OFF, OP_AGR_CHECK } op_kind;

typedef struct ijob {
  struct event_base *base;
  rv_adapter_done_fn done;
  void   *arg;
  op_kind op;
  char   *key, *element;
  int64_t instance;
  int     attempt, waits;
  /* an answer decided at invoke time (validation) */
  bool    decided;
  rv_job_outcome outcome;
  char   *code, *msg;
  /* validated input */
  char    nid[16], mobile[16];
  char   *document, *sms_tmpl;
  int64_t valid_until, max_fetches, code_id, from, to;
  int     bits;
  char    reason[16], scope[32];
  char   *org, *agr;
} ijob;

static void job_free(ijob *j){
  rv_free(j->key); rv_free(j->element); rv_free(j->code); rv_free(j->msg);
  rv_free(j->document); rv_free(j->sms_tmpl); rv_free(j->org); rv_free(j->agr);
  rv_free(j);
}

static void decide(ijob *j, rv_job_outcome o, const char *code, const char *msg){
  j->decided = true;
  j->outcome = o;
  j->code = rv_strdup(code);
  j->msg = rv_strdup(msg);
}

/* "+989121234567", "00989...", "9121234567" -> "09121234567". */
static bool norm_mobile(const char *in, char out[16]){
  char d[24];
  size_t n = 0;
  if (in == NULL) return false;
  for (const char *p = in; *p; p++) {
    if (*p == ' ' || *p == '-') continue;
    if (*p == '+' && n == 0) continue;
    if (*p < '0' || *p > '9' || n >= sizeof d - 1) return false;
    d[n++] = *p;
  }
  d[n] = 0;
  if (n == 12 && strncmp(d, "98", 2) == 0) snprintf(out, 16, "0%.10s", d + 2);
  else if (n == 14 && strncmp(d, "0098", 4) == 0) snprintf(out, 16, "0%.10s", d + 4);
  else if (n == 10 && d[0] == '9') snprintf(out, 16, "0%.10s", d);
  else snprintf(out, 16, "%.15s", d);
  return rv_valid_mobile(out);
}

static bool time_of(const cJSON *v, int64_t *out){
  if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15 && rv_num_whole(v->valuedouble, out))
    return true;
  return cJSON_IsString(v) && rv_datetime_parse(v->valuestring, out, NULL) == RV_OK;
}

static const char *reason_state(const char *reason){
  return reason && strcmp(reason, "expired") == 0 ? "expired" : "revoked";
}

/* Validate the input of j's op; a BPMN error is decided on failure. */
static void parse_input(ijob *j, const cJSON *in, int64_t now){
  const char *op = rv_json_str(in, "op");
  char why[256] = "";
  if (!cJSON_IsObject(in) || op == NULL) {
    decide(j, RV_JOB_BPMN_ERROR, "INVALID_INPUT", "inquiry: the input needs an op");
    return;
  }
  if (strcmp(op, "code-issue") == 0) {
    const cJSON *doc = cJSON_GetObjectItemCaseSensitive(in, "document");
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(in, "code_bits");
    const cJSON *maxf = cJSON_GetObjectItemCaseSensitive(in, "max_fetches");
    const char *nid = rv_json_str(in, "national_id"), *tmpl = rv_json_str(in, "sms_text");
    j->op = OP_ISSUE;
    j->bits = MIN_BITS;
    if (nid == NULL || strlen(nid) != 10 || !rv_valid_national_id(nid))
      snprintf(why, sizeof why, "national_id is not a valid national ID");
    else if (!cJSON_IsObject(doc))
      snprintf(why, sizeof why, "document must be an object");
    else if (!time_of(cJSON_GetObjectItemCaseSensitive(in, "valid_until"), &j->valid_until) ||
             j->valid_until <= now)
      snprintf(why, sizeof why, "valid_until must be an instant after now");
    else if (bits && !cJSON_IsNull(bits) &&
             (!cJSON_IsNumber(bits) || bits->valuedouble < MIN_BITS || bits->valuedouble > MAX_BITS))
      snprintf(why, sizeof why, "code_bits must be %d..%d", MIN_BITS, MAX_BITS);
    else if (maxf && !cJSON_IsNull(maxf) &&
             (!cJSON_IsNumber(maxf) || maxf->valuedouble < 0 || maxf->valuedouble > 1000000))
      snprintf(why, sizeof why, "max_fetches must be 0 (no cap) .. 1000000");
    else if (tmpl && (strlen(tmpl) > 1000 || strstr(tmpl, "{code}") == NULL))
      snprintf(why, sizeof why, "sms_text must contain {code} and be at most 1000 bytes");
    if (why[0]) {
      char msg[300];
      snprintf(msg, sizeof msg, "inquiry code-issue: %s", why);
      decide(j, RV_JOB_BPMN_ERROR, "INVALID_INPUT", msg);
      return;
    }
    if (!norm_mobile(rv_json_str(in, "mobile"), j->mobile)) {
      decide(j, RV_JOB_BPMN_ERROR, "NO_MOBILE", "inquiry code-issue: no valid mobile to send the code to");
      return;
    }
    snprintf(j->nid, sizeof j->nid, "%s", nid);
    if (cJSON_IsNumber(bits)) {
      int64_t b = rv_num_i64(bits->valuedouble);
      j->bits = b < INT_MIN ? INT_MIN : b > INT_MAX ? INT_MAX : (int)b;
    }
    j->max_fetches = cJSON_IsNumber(maxf) ? rv_num_i64(maxf->valuedouble) : 0;
    if (rv_json_bool(in, "single_use", false)) j->max_fetches = 1;
    j->document = rv_json_print(doc);
    j->sms_tmpl = rv_strdup(tmpl ? tmpl : DEFAULT_SMS);
  } else if (strcmp(op, "code-revoke") == 0) {
    j->op = OP_REVOKE;
    if ((j->code_id = rv_inquiry_code_id_parse(rv_json_str(in, "code_id"))) == 0)
      decide(j, RV_JOB_BPMN_ERROR, "INVALID_INPUT", "inquiry code-revoke: code_id is not a code id (IC-n)");
    snprintf(j->reason, sizeof j->reason, "%s", reason_state(rv_json_str(in, "reason")));
  } else if (strcmp(op, "agreement-activate") == 0 || strcmp(op, "agreement-revoke") == 0 ||
             strcmp(op, "agreement-check") == 0) {
    /* check: may this body's agreement do what scope names, now? (read only) */
    const char *org = rv_json_str(in, "organisation"), *agr = rv_json_str(in, "agreement");
    const char *scope = rv_json_str(in, "scope");
    bool check = strcmp(op, "agreement-check") == 0;
    bool on = strcmp(op, "agreement-activate") == 0;
    j->op = check ? OP_AGR_CHECK : on ? OP_AGR_ON : OP_AGR_OFF;
    if (!rv_valid_scope_value(org, false))
      snprintf(why, sizeof why, "organisation is not an organisation id");
    else if (!rv_valid_scope_value(agr, true))
      snprintf(why, sizeof why, "agreement is not an agreement number");
    else if ((on || check) && (scope == NULL || (strcmp(scope, "document_by_code") != 0 &&
                                                 strcmp(scope, "document_and_status") != 0)))
      snprintf(why, sizeof why, "scope must be document_by_code or document_and_status");
    else if (on && (!time_of(cJSON_GetObjectItemCaseSensitive(in, "valid_from"), &j->from) ||
                    !time_of(cJSON_GetObjectItemCaseSensitive(in, "valid_to"), &j->to) || j->to <= j->from))
      snprintf(why, sizeof why, "valid_from and valid_to must be dates, valid_to after valid_from");
    if (why[0]) {
      char msg[300];
      snprintf(msg, sizeof msg, "inquiry %s: %s", op, why);
      decide(j, RV_JOB_BPMN_ERROR, "INVALID_INPUT", msg);
      return;
    }
    j->org = rv_strdup(org);
    j->agr = rv_strdup(agr);
    if (on || check) snprintf(j->scope, sizeof j->scope, "%s", scope);
    snprintf(j->reason, sizeof j->reason, "%s", reason_state(rv_json_str(in, "reason")));
  } else {
    char msg[200];
    snprintf(msg, sizeof msg, "inquiry: unknown op '%.60s' (code-issue, code-revoke, "
             "agreement-activate, agreement-revoke, agreement-check)", op);
    decide(j, RV_JOB_BPMN_ERROR, "INVALID_INPUT", msg);
  }
}

#define SQL_CODE_PUT \
  "INSERT INTO inquiry_codes(job_key, instance_id, national_id, selector, salt, hash, kdf_ops," \
  " kdf_mem, document, issued, valid_until, max_fetches, state, updated)" \
  " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,'active',?)" \
  " ON CONFLICT(job_key) DO UPDATE SET selector=excluded.selector, salt=excluded.salt," \
  " hash=excluded.hash, kdf_ops=excluded.kdf_ops, kdf_mem=excluded.kdf_mem," \
  " generation=generation+1, document=excluded.document, issued=excluded.issued," \
  " valid_until=excluded.valid_until, max_fetches=excluded.max_fetches, fetches=0, failures=0," \
  " locked_until=NULL, last_fetch=NULL, state='active', reason=NULL, updated=excluded.updated"

/* Store a new code for j (same row for every retry of the job). */
static rv_status issue_store(rv_store *st, ijob *j, int64_t now, const char *sel,
                             const unsigned char *salt, const unsigned char *hash,
                             int *generation, rv_err *err){
  sqlite3_stmt *s;
  int rc;
  rv_status r = rv_store_begin(st, err);
  if (r != RV_OK) return r;
  s = rv_store_stmt(st, SQL_CODE_PUT);
  sqlite3_bind_text(s, 1, j->key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, j->instance);
  sqlite3_bind_text(s, 3, j->nid, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 4, sel, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob(s, 5, salt, SALT_LEN, SQLITE_TRANSIENT);
  sqlite3_bind_blob(s, 6, hash, 32, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 7, (int64_t)KDF_OPS);
  sqlite3_bind_int64(s, 8, (int64_t)KDF_MEM);
  sqlite3_bind_text(s, 9, j->document, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 10, now);
  sqlite3_bind_int64(s, 11, j->valid_until);
  sqlite3_bind_int64(s, 12, j->max_fetches);
  sqlite3_bind_int64(s, 13, now);
  rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    r = rv_fail(err, rc == SQLITE_CONSTRAINT ? RV_CONFLICT : rc == SQLITE_BUSY ? RV_BUSY : RV_IO,
                "inquiry: %s", sqlite3_errmsg(rv_store_db(st)));
    rv_store_rollback(st);
    return r;
  }
  s = rv_store_stmt(st, "SELECT id, generation FROM inquiry_codes WHERE job_key=?");
  rv_store_bind(s, "t", j->key);
  if (sqlite3_step(s) == SQLITE_ROW) {
    j->code_id = sqlite3_column_int64(s, 0);
    *generation = sqlite3_column_int(s, 1);
  }
  sqlite3_reset(s);
  return rv_store_commit(st, err);
}

static void sms_done(void *arg, rv_job_outcome o, cJSON *result, const char *code, const char *msg){
  ijob *j = arg;
  (void)msg;            /* a gateway's message might quote the text: never passed on */
  cJSON_Delete(result);
  if (o == RV_JOB_OK) {
    cJSON *res = cJSON_CreateObject();
    char id[32];
    rv_inquiry_code_id(j->code_id, id, sizeof id);
    cJSON_AddStringToObject(res, "code_id", id);
    cJSON_AddStringToObject(res, "state", "active");
    cJSON_AddNumberToObject(res, "valid_until", (double)j->valid_until);
    j->done(j->arg, RV_JOB_OK, res, NULL, NULL);
  } else {
    char m[160];
    snprintf(m, sizeof m, "inquiry: the access code could not be sent by SMS (%.40s)", code ? code : "failed");
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, m);
  }
  job_free(j);
}

/* Make, store and send a code. Returns true when j was handed to the SMS
** adapter (its done() finishes j); false with *msg set otherwise. */
static bool issue(rv_engine *e, ijob *j, char *msg, size_t cap){
  rv_store *st = rv_engine_store(e);
  int64_t now = rv_clock_now(rv_engine_clock(e));
  const rv_adapter_ops *sms = rv_adapter_find("sms");
  char sel[SEL_LEN + 1], secret[SECRET_MAX + 1], shown[64], *text;
  unsigned char salt[SALT_LEN], hash[32];
  int generation = 1;
  size_t slen = (size_t)(j->bits + 4) / 5;
  rv_status rc = RV_CONFLICT;
  rv_err err;
  char skey[600];
  cJSON *in;
  rv_job_info info;

  if (!have_key) { snprintf(msg, cap, "inquiry: no code key (codes are issued under `ravand serve` or `ravand tick`)"); return false; }
  if (sms == NULL) { snprintf(msg, cap, "inquiry: no sms adapter"); return false; }
  for (int tries = 0; tries < 3 && rc == RV_CONFLICT; tries++) {      /* selector collision: again */
    random_chars(sel, SEL_LEN);
    random_chars(secret, slen);
    randombytes_buf(salt, sizeof salt);
    if (!code_hash(sel, secret, slen, salt, KDF_OPS, KDF_MEM, hash)) {
      rc = rv_fail(&err, RV_NOMEM, "inquiry: the key derivation failed (memory)");
      break;
    }
    rc = issue_store(st, j, now, sel, salt, hash, &generation, &err);
  }
  if (rc != RV_OK) {
    sodium_memzero(secret, sizeof secret);
    snprintf(msg, cap, "%.250s", err.msg);
    return false;
  }
  code_format(sel, secret, shown, sizeof shown);
  sodium_memzero(secret, sizeof secret);
  text = render_sms(j->sms_tmpl, shown);
  sodium_memzero(shown, sizeof shown);
  /* the SMS of this code: its own idempotency key per generation, so a
  ** new code of a retried job is not taken for a duplicate */
  snprintf(skey, sizeof skey, "%s:code:%d", j->key, generation);
  in = cJSON_CreateObject();
  cJSON_AddStringToObject(in, "to", j->mobile);
  cJSON_AddStringToObject(in, "text", text ? text : "");
  if (text) { sodium_memzero(text, strlen(text)); rv_free(text); }
  memset(&info, 0, sizeof info);
  info.instance_id = j->instance;
  info.element_id = j->element;
  info.key = skey;
  info.input = in;
  info.attempt = 1;
  rc = sms->invoke(sms->self, j->base, &info, sms_done, j);
  {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(in, "text");
    if (cJSON_IsString(t)) sodium_memzero(t->valuestring, strlen(t->valuestring));
  }
  cJSON_Delete(in);
  if (rc != RV_OK) { snprintf(msg, cap, "inquiry: the SMS adapter refused the code message"); return false; }
  return true;
}

/* agreement-check: {allowed, reason} for the body's agreement and the scope
** asked. An agreement of scope document_and_status allows document_by_code
** too; one of document_by_code allows only fetches by code. The reason is
** one of ok, no_agreement, not_active (revoked/expired), outside_validity,
** scope. */
static rv_status check_agreement(rv_engine *e, ijob *j, cJSON **res, rv_err *err){
  rv_store *st = rv_engine_store(e);
  int64_t now = rv_clock_now(rv_engine_clock(e));
  sqlite3_stmt *s = rv_store_stmt(st, "SELECT scope, valid_from, valid_to, state"
                                      " FROM inquiry_agreements WHERE organisation=? AND agreement=?");
  const char *reason = "no_agreement";
  int rc;
  rv_store_bind(s, "tt", j->org, j->agr);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const char *scope = (const char *)sqlite3_column_text(s, 0);
    const char *state = (const char *)sqlite3_column_text(s, 3);
    if (state == NULL || strcmp(state, "active") != 0) reason = "not_active";
    else if (now < sqlite3_column_int64(s, 1) || now >= sqlite3_column_int64(s, 2)) reason = "outside_validity";
    else if (strcmp(j->scope, "document_and_status") == 0 &&
             (scope == NULL || strcmp(scope, "document_and_status") != 0)) reason = "scope";
    else reason = "ok";
  } else if (rc != SQLITE_DONE) {
    rv_status r = rv_fail(err, rc == SQLITE_BUSY ? RV_BUSY : RV_IO, "inquiry agreement-check: %s",
                          sqlite3_errmsg(rv_store_db(st)));
    sqlite3_reset(s);
    return r;
  }
  sqlite3_reset(s);
  *res = cJSON_CreateObject();
  cJSON_AddStringToObject(*res, "organisation", j->org);
  cJSON_AddStringToObject(*res, "agreement", j->agr);
  cJSON_AddStringToObject(*res, "scope", j->scope);
  cJSON_AddBoolToObject(*res, "allowed", strcmp(reason, "ok") == 0);
  cJSON_AddStringToObject(*res, "reason", reason);
  return RV_OK;
}

static rv_status write_simple(rv_engine *e, ijob *j, cJSON **res, rv_err *err){
  rv_store *st = rv_engine_store(e);
  int64_t now = rv_clock_now(rv_engine_clock(e));
  rv_status rc = rv_store_begin(st, err);
  sqlite3_stmt *s;
  const char *state = j->reason;
  if (rc != RV_OK) return rc;
  *res = cJSON_CreateObject();
  if (j->op == OP_REVOKE) {
    char id[32];
    rc = rv_store_exec(st, err, "UPDATE inquiry_codes SET state=?, reason=?, updated=? WHERE id=? AND state='active'",
                       "ttii", j->reason, j->reason, now, j->code_id);
    s = rv_store_stmt(st, "SELECT state FROM inquiry_codes WHERE id=?");
    rv_store_bind(s, "i", j->code_id);
    if (rc == RV_OK && sqlite3_step(s) != SQLITE_ROW)
      rc = rv_fail(err, RV_NOTFOUND, "inquiry code-revoke: no code %lld", (long long)j->code_id);
    else if (rc == RV_OK) state = (const char *)sqlite3_column_text(s, 0);
    rv_inquiry_code_id(j->code_id, id, sizeof id);
    cJSON_AddStringToObject(*res, "code_id", id);
    if (rc == RV_OK) cJSON_AddStringToObject(*res, "state", state);
    sqlite3_reset(s);
  } else if (j->op == OP_AGR_ON) {
    rc = rv_store_exec(st, err,
      "INSERT INTO inquiry_agreements(organisation, agreement, scope, valid_from, valid_to, state,"
      " instance_id, job_key, updated) VALUES(?,?,?,?,?,'active',?,?,?)"
      " ON CONFLICT(organisation, agreement) DO UPDATE SET scope=excluded.scope,"
      " valid_from=excluded.valid_from, valid_to=excluded.valid_to, state='active', reason=NULL,"
      " instance_id=excluded.instance_id, job_key=excluded.job_key, updated=excluded.updated",
      "tttiiiti", j->org, j->agr, j->scope, j->from, j->to, j->instance, j->key, now);
    state = "active";
  } else {
    rc = rv_store_exec(st, err, "UPDATE inquiry_agreements SET state=?, reason=?, updated=?"
                       " WHERE organisation=? AND agreement=?", "ttitt", j->reason, j->reason, now,
                       j->org, j->agr);
    if (rc == RV_OK) cJSON_AddBoolToObject(*res, "found", rv_store_changes(st) > 0);
  }
  if (j->op != OP_REVOKE) {
    cJSON_AddStringToObject(*res, "organisation", j->org);
    cJSON_AddStringToObject(*res, "agreement", j->agr);
    cJSON_AddStringToObject(*res, "state", state);
  }
  if (rc == RV_OK) rc = rv_store_commit(st, err);
  else rv_store_rollback(st);
  if (rc != RV_OK) { cJSON_Delete(*res); *res = NULL; }
  return rc;
}

static void run(evutil_socket_t fd, short what, void *p){
  ijob *j = p;
  rv_engine *e = rv_adapters_engine(j->base);
  char msg[300];
  (void)fd; (void)what;
  if (j->decided) {
    j->done(j->arg, j->outcome, NULL, j->code, j->msg);
    job_free(j);
    return;
  }
  if (e == NULL) {
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, "inquiry adapter: no engine bound to this loop");
    job_free(j);
    return;
  }
  if (rv_store_depth(rv_engine_store(e)) != 0 && j->waits < 1000) {
    /* a transaction is open on this connection: write after it, never inside it */
    struct timeval tv = {0, 1000};
    j->waits++;
    if (event_base_once(j->base, -1, EV_TIMEOUT, run, j, &tv) == 0) return;
  }
  if (j->op == OP_ISSUE) {
    if (issue(e, j, msg, sizeof msg)) return;          /* sms_done finishes */
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, msg);
  } else {
    cJSON *res = NULL;
    rv_err err;
    rv_status rc = j->op == OP_AGR_CHECK ? check_agreement(e, j, &res, &err)
                                         : write_simple(e, j, &res, &err);
    if (rc == RV_OK) j->done(j->arg, RV_JOB_OK, res, NULL, NULL);
    else if (rc == RV_NOTFOUND) j->done(j->arg, RV_JOB_BPMN_ERROR, NULL, "INVALID_INPUT", err.msg);
    else j->done(j->arg, RV_JOB_FAILED, NULL, NULL, err.msg);
  }
  job_free(j);
}

static rv_status inquiry_invoke(void *self, struct event_base *base, const rv_job_info *job,
                                rv_adapter_done_fn done, void *arg){
  ijob *j = rv_calloc(1, sizeof *j);
  rv_engine *e = rv_adapters_engine(base);
  struct timeval tv = {0, 0};
  (void)self;
  j->base = base;
  j->done = done;
  j->arg = arg;
  j->key = rv_strdup(job->key);
  j->element = rv_strdup(job->element_id);
  j->instance = job->instance_id;
  j->attempt = job->attempt;
  parse_input(j, job->input, e ? rv_clock_now(rv_engine_clock(e)) : 0);
  if (event_base_once(base, -1, EV_TIMEOUT, run, j, &tv) != 0) {
    job_free(j);
    return RV_IO;
  }
  return RV_OK;
}

const rv_adapter_ops rv_adapter_inquiry = { .name = "inquiry", .invoke = inquiry_invoke };

/*--- fetch (POST /v1/inquiry/documents/fetch) --------------------------------------------*/

#define SQL_CODE_GET \
  "SELECT id, salt, hash, kdf_ops, kdf_mem, state, valid_until, max_fetches, fetches, failures," \
  " locked_until, document FROM inquiry_codes WHERE selector=?"
#define SQL_FAIL_USER \
  "SELECT count(*), min(at) FROM inquiry_attempts WHERE principal_id=? AND outcome='refused' AND at>?"
#define SQL_FAIL_ORG \
  "SELECT count(*), min(at) FROM inquiry_attempts WHERE organisation=? AND outcome='refused' AND at>?"

static void window_count(rv_store *st, const char *sql, int64_t pid, const char *org, int64_t since,
                         int64_t *n, int64_t *oldest){
  sqlite3_stmt *s = rv_store_stmt(st, sql);
  if (org) rv_store_bind(s, "ti", org, since);
  else rv_store_bind(s, "ii", pid, since);
  *n = 0;
  *oldest = since;
  if (sqlite3_step(s) == SQLITE_ROW) {
    *n = sqlite3_column_int64(s, 0);
    if (sqlite3_column_type(s, 1) != SQLITE_NULL) *oldest = sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
}

static rv_status attempt_row(rv_store *st, const rv_inquiry_fetch_in *in, int64_t now,
                             const char *outcome, rv_inquiry_fetch_out *out, rv_err *err){
  rv_status rc = rv_store_exec(st, err,
    "INSERT INTO inquiry_attempts(at, request_id, principal_id, principal, organisation, agreement,"
    " code_id, outcome, reason) VALUES(?,?,?,?,?,?,?,?,?)", "itittttt" "t",
    now, in->request_id, in->principal_id, in->principal, in->organisation ? in->organisation : "",
    in->agreement, (const char *)NULL, outcome, out->reason);
  if (rc != RV_OK) return rc;
  out->attempt_id = rv_store_last_id(st);
  if (out->code_id > 0)
    rc = rv_store_exec(st, err, "UPDATE inquiry_attempts SET code_id=? WHERE id=?", "ii",
                       out->code_id, out->attempt_id);
  return rc;
}

static void refuse(rv_inquiry_fetch_out *out, const char *why){
  out->outcome = RV_FETCH_REFUSED;
  snprintf(out->reason, sizeof out->reason, "%s", why);
}

rv_status rv_inquiry_fetch(rv_engine *e, const rv_inquiry_limits *lim, const rv_inquiry_fetch_in *in,
                           rv_inquiry_fetch_out *out, rv_err *err){
  rv_store *st = rv_engine_store(e);
  int64_t now = rv_clock_now(rv_engine_clock(e));
  char sel[SEL_LEN + 1], secret[SECRET_MAX + 1];
  size_t slen = 0;
  const char *outcome = "refused";
  char *document = NULL;
  int64_t valid_until = 0, max_fetches = 0, fetch_no = 0;
  rv_status rc;

  memset(out, 0, sizeof *out);
  if (rv_inquiry_agreement(st, in->organisation, in->agreement, now) != RV_AGREEMENT_ACTIVE) {
    refuse(out, "agreement");
    return attempt_row(st, in, now, "denied", out, err);
  }
  {
    int64_t nu, no, ou, oo, since = now - lim->window_ms;
    window_count(st, SQL_FAIL_USER, in->principal_id, NULL, since, &nu, &ou);
    window_count(st, SQL_FAIL_ORG, 0, in->organisation, since, &no, &oo);
    if (nu >= lim->max_failures_user || no >= lim->max_failures_org) {
      int64_t oldest = nu >= lim->max_failures_user ? ou : oo;
      out->outcome = RV_FETCH_THROTTLED;
      snprintf(out->reason, sizeof out->reason, "%s",
               nu >= lim->max_failures_user ? "throttled-user" : "throttled-org");
      out->retry_after_s = (int)((oldest + lim->window_ms - now) / 1000) + 1;
      if (out->retry_after_s < 1) out->retry_after_s = 1;
      return attempt_row(st, in, now, "throttled", out, err);
    }
  }
  if (!code_parse(in->code, sel, secret, &slen)) {
    refuse(out, "malformed");
  } else {
    sqlite3_stmt *s = rv_store_stmt(st, SQL_CODE_GET);
    rv_store_bind(s, "t", sel);
    if (sqlite3_step(s) != SQLITE_ROW) {
      refuse(out, "unknown");
    } else if (!have_key) {
      sqlite3_reset(s);
      sodium_memzero(secret, sizeof secret);
      return rv_fail(err, RV_IO, "inquiry: no code key loaded");
    } else {
      unsigned char h[32];
      const void *salt = sqlite3_column_blob(s, 1), *stored = sqlite3_column_blob(s, 2);
      bool shape = sqlite3_column_bytes(s, 1) == SALT_LEN && sqlite3_column_bytes(s, 2) == 32;
      const char *state = (const char *)sqlite3_column_text(s, 5);
      int64_t failures = sqlite3_column_int64(s, 9);
      bool locked = sqlite3_column_type(s, 10) != SQLITE_NULL && sqlite3_column_int64(s, 10) > now;
      out->code_id = sqlite3_column_int64(s, 0);
      valid_until = sqlite3_column_int64(s, 6);
      max_fetches = sqlite3_column_int64(s, 7);
      fetch_no = sqlite3_column_int64(s, 8) + 1;
      if (locked) {
        refuse(out, "locked");                     /* not even checked */
      } else if (!shape || !code_hash(sel, secret, slen, salt, (unsigned long long)sqlite3_column_int64(s, 3),
                                      (size_t)sqlite3_column_int64(s, 4), h) ||
                 sodium_memcmp(h, stored, 32) != 0) {
        bool lock = failures + 1 >= lim->lock_after;
        refuse(out, lock ? "wrong-locked" : "wrong");
        sqlite3_reset(s);
        rc = lock ? rv_store_exec(st, err, "UPDATE inquiry_codes SET failures=0, locked_until=?, updated=?"
                                  " WHERE id=?", "iii", now + lim->lock_ms, now, out->code_id)
                  : rv_store_exec(st, err, "UPDATE inquiry_codes SET failures=failures+1, updated=? WHERE id=?",
                                  "ii", now, out->code_id);
        if (rc != RV_OK) { sodium_memzero(secret, sizeof secret); return rc; }
      } else if (state == NULL || strcmp(state, "active") != 0) {
        refuse(out, state && strcmp(state, "expired") == 0 ? "expired" : "revoked");
      } else if (now >= valid_until) {
        refuse(out, "expired");
      } else if (max_fetches > 0 && fetch_no > max_fetches) {
        refuse(out, "used");
      } else {
        out->outcome = RV_FETCH_OK;
        snprintf(out->reason, sizeof out->reason, "ok");
        outcome = "ok";
        document = rv_strdup((const char *)sqlite3_column_text(s, 11));
      }
      sodium_memzero(h, sizeof h);
    }
    sqlite3_reset(s);
  }
  sodium_memzero(secret, sizeof secret);
  if (out->outcome == RV_FETCH_OK) {
    rc = rv_store_exec(st, err, "UPDATE inquiry_codes SET fetches=fetches+1, failures=0, last_fetch=?,"
                       " updated=? WHERE id=?", "iii", now, now, out->code_id);
    if (rc != RV_OK) { rv_free(document); return rc; }
  }
  rc = attempt_row(st, in, now, outcome, out, err);
  if (rc != RV_OK || out->outcome != RV_FETCH_OK) { rv_free(document); return rc; }
  {
    cJSON *payload = cJSON_CreateObject(), *res = NULL, *doc = rv_json_parse(document);
    char id[32], at[40], mid[48];
    rv_inquiry_code_id(out->code_id, id, sizeof id);
    rv_datetime_format(now, at, sizeof at);
    snprintf(mid, sizeof mid, "inquiry-fetch-%lld", (long long)out->attempt_id);
    cJSON_AddStringToObject(payload, "fetch_organisation", in->organisation);
    cJSON_AddStringToObject(payload, "fetch_agreement", in->agreement ? in->agreement : "");
    cJSON_AddStringToObject(payload, "fetch_user", in->principal);
    cJSON_AddStringToObject(payload, "fetch_at", at);
    rc = rv_engine_correlate(e, "inquiry-fetched", id, payload, mid, 0, &res, err);
    cJSON_Delete(payload);
    cJSON_Delete(res);
    rv_free(document);
    if (rc != RV_OK) { cJSON_Delete(doc); return rc; }
    out->reply = cJSON_CreateObject();
    cJSON_AddStringToObject(out->reply, "code_id", id);
    cJSON_AddItemToObject(out->reply, "document", doc ? doc : cJSON_CreateObject());
    cJSON_AddNumberToObject(out->reply, "valid_until", (double)valid_until);
    cJSON_AddNumberToObject(out->reply, "fetch_no", (double)fetch_no);
    cJSON_AddNumberToObject(out->reply, "max_fetches", (double)max_fetches);
    cJSON_AddStringToObject(out->reply, "fetched_at", at);
  }
  return RV_OK;
}
