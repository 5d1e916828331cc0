/*
** adapters/sms/sms_log.c -- the per-instance SMS delivery log (table
** sms_log, schema slot 3).
**
** One row per SMS job (UNIQUE job_id; ref is the job key sent to the
** gateway). The engine calls rv_sms_log_result() when it applies a
** result of an `sms` job, in the same transaction that updates the job,
** so the log never disagrees with the outbox. The row's state after each
** attempt:
**
**   attempt answered                      state
**   2xx                                   sent       (sent_at, gateway_id)
**   failed, and some attempt so far was
**     ambiguous (code "uncertain")        uncertain  (ambiguous counts them)
**   failed, retries left                  retrying
**   failed, no retries left               failed     (the engine opens an incident)
**
** "uncertain" means the gateway may have accepted the message: the
** request was written and the connection then closed or timed out. Against
** a gateway that deduplicates on ref this is harmless; against one that
** does not, each such attempt may be one duplicate SMS (see docs/adapters.md).
**
** The recipient is personal data: the log keeps only the last four digits
** ("*******4567"). The full number stays in the job's input, which the
** adapter needs for retries.
*/
#include <string.h>
#include "sms/sms.h"
#include "core/json.h"
#include "core/mem.h"

char *rv_sms_mask(const char *m){
  size_t n = m ? strlen(m) : 0, keep = 0, cps = 0;
  char *out;
  const char *tail;
  if (m == NULL) return rv_strdup("");
  /* Count code points from the end: keep the last four whole characters. */
  tail = m + n;
  while (tail > m && keep < 4) {
    tail--;
    if (((unsigned char)*tail & 0xC0) != 0x80) keep++;
  }
  for (const char *p = m; p < tail; p++) if (((unsigned char)*p & 0xC0) != 0x80) cps++;
  out = rv_malloc(cps + strlen(tail) + 1);
  memset(out, '*', cps);
  strcpy(out + cps, tail);
  return out;
}

#define SQL_SMS_JOB \
  "SELECT j.instance_id, j.element_id, j.input, j.key, j.attempts, j.retries, j.created," \
  " l.ambiguous FROM jobs j LEFT JOIN sms_log l ON l.job_id=j.id" \
  " WHERE j.id=? AND j.adapter='sms' AND j.state='pending'"

#define SQL_SMS_UPSERT \
  "INSERT INTO sms_log(job_id, instance_id, element_id, recipient, text, ref, state," \
  " attempts, ambiguous, gateway_id, duplicate, http_status, last_error, created, updated, sent_at)" \
  " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)" \
  " ON CONFLICT(job_id) DO UPDATE SET state=?7, attempts=?8, ambiguous=?9," \
  " gateway_id=coalesce(?10, gateway_id), duplicate=?11, http_status=?12, last_error=?13," \
  " updated=?15, sent_at=coalesce(?16, sent_at), text=?5, recipient=?4"

rv_status rv_sms_log_result(rv_store *st, int64_t now, int64_t job_id, rv_job_outcome o,
                            const cJSON *result, const char *code, const char *msg,
                            rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, SQL_SMS_JOB);
  int64_t inst, created, attempts, retries, ambiguous;
  char *elem, *ref, *to, *text;
  const char *state;
  cJSON *input;
  rv_status rc;
  bool ok = o == RV_JOB_OK;

  rv_store_bind(s, "i", job_id);
  if (sqlite3_step(s) != SQLITE_ROW) { sqlite3_reset(s); return RV_OK; }
  inst = sqlite3_column_int64(s, 0);
  elem = rv_strdup((const char *)sqlite3_column_text(s, 1));
  input = rv_json_parse((const char *)sqlite3_column_text(s, 2));
  ref = rv_strdup((const char *)sqlite3_column_text(s, 3));
  attempts = sqlite3_column_int64(s, 4) + 1;
  retries = sqlite3_column_int64(s, 5);
  created = sqlite3_column_int64(s, 6);
  ambiguous = sqlite3_column_int64(s, 7);
  sqlite3_reset(s);

  if (!ok && code && strcmp(code, "uncertain") == 0) ambiguous++;
  if (ok) state = "sent";
  else if (ambiguous) state = "uncertain";       /* sticky until an attempt succeeds */
  else state = attempts < retries ? "retrying" : "failed";

  to = rv_sms_mask(rv_json_str(input, "to"));
  text = rv_strdup(rv_json_str(input, "text"));
  {
    const char *gw = ok ? rv_json_str(result, "gateway_id") : NULL;
    int64_t dup = ok && rv_json_bool(result, "duplicate", false);
    int64_t http = rv_json_int(result, "http_status", 0);
    sqlite3_stmt *u = rv_store_stmt(st, SQL_SMS_UPSERT);
    int r;
    rv_store_bind(u, "iittttt", job_id, inst, elem, to, text ? text : "", ref, state);
    sqlite3_bind_int64(u, 8, attempts);
    sqlite3_bind_int64(u, 9, ambiguous);
    if (gw) sqlite3_bind_text(u, 10, gw, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(u, 10);
    sqlite3_bind_int64(u, 11, dup);
    if (http) sqlite3_bind_int64(u, 12, http); else sqlite3_bind_null(u, 12);
    if (!ok && msg) sqlite3_bind_text(u, 13, msg, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(u, 13);
    sqlite3_bind_int64(u, 14, created);
    sqlite3_bind_int64(u, 15, now);
    if (ok) sqlite3_bind_int64(u, 16, now); else sqlite3_bind_null(u, 16);
    r = sqlite3_step(u);
    sqlite3_reset(u);
    rc = r == SQLITE_DONE ? RV_OK
       : rv_fail(err, RV_IO, "sms_log: %s", sqlite3_errmsg(rv_store_db(st)));
  }
  rv_free(elem); rv_free(ref); rv_free(to); rv_free(text);
  cJSON_Delete(input);
  return rc;
}

#define SQL_SMS_LIST \
  "SELECT id, job_id, instance_id, element_id, recipient, text, ref, state, attempts," \
  " ambiguous, gateway_id, duplicate, http_status, last_error, created, updated, sent_at" \
  " FROM sms_log WHERE (?1 IS NULL OR instance_id=?1) AND (?2 IS NULL OR state=?2)" \
  " ORDER BY id LIMIT ?3 OFFSET ?4"

rv_status rv_sms_log_json(rv_store *st, const cJSON *filter, cJSON **out, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, SQL_SMS_LIST);
  int64_t inst = rv_json_int(filter, "instance", 0), limit = rv_json_int(filter, "limit", 100);
  const char *state = rv_json_str(filter, "state");
  cJSON *a = cJSON_CreateArray();
  int r;
  (void)err;
  *out = NULL;
  if (inst > 0) sqlite3_bind_int64(s, 1, inst);
  if (state) sqlite3_bind_text(s, 2, state, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 3, limit > 0 && limit <= 10000 ? limit : 100);
  sqlite3_bind_int64(s, 4, rv_json_int(filter, "offset", 0));
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < sqlite3_column_count(s); i++) {
      const char *name = sqlite3_column_name(s, i);
      switch (sqlite3_column_type(s, i)) {
      case SQLITE_INTEGER:
        if (strcmp(name, "duplicate") == 0) cJSON_AddBoolToObject(o, name, sqlite3_column_int(s, i));
        else cJSON_AddNumberToObject(o, name, (double)sqlite3_column_int64(s, i));
        break;
      case SQLITE_NULL: cJSON_AddNullToObject(o, name); break;
      default: cJSON_AddStringToObject(o, name, (const char *)sqlite3_column_text(s, i));
      }
    }
    cJSON_AddItemToArray(a, o);
  }
  sqlite3_reset(s);
  if (r != SQLITE_DONE) {
    cJSON_Delete(a);
    return rv_fail(err, RV_IO, "sms_log: %s", sqlite3_errmsg(rv_store_db(st)));
  }
  *out = a;
  return RV_OK;
}
