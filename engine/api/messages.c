/*
** api/messages.c -- correlate a message; broadcast a signal (operators).
**
** A message id makes correlation idempotent (the engine records applied
** ids): a client that retries after a timeout sends the same id and gets
** "duplicate" instead of a second effect.
**
** A payload is checked for document references as start variables and
** task data are (documents.c): a "doc:sha256-..." must be a document the
** caller uploaded, else 422 and nothing is sent. Operators upload none, so
** they cannot make a case point at someone's file by message or signal.
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"
#include "cal/cal.h"

void rv__h_message(rv_req *r){
  static const char *const fields[] = { "name", "correlation_key", "payload", "message_id", "ttl", NULL };
  const char *name, *key, *mid, *ttl;
  const cJSON *payload;
  cJSON *res = NULL;
  int64_t ttl_ms = -1;
  rv_err err;
  rv_status rc;

  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "name", true, 128, &name) ||
      !rv__body_str(r, r->body, "correlation_key", false, 256, &key) ||
      !rv__body_obj(r, r->body, "payload", false, &payload) ||
      !rv__body_str(r, r->body, "message_id", false, 128, &mid) ||
      !rv__body_str(r, r->body, "ttl", false, 64, &ttl)) return;
  snprintf(r->object, sizeof r->object, "message:%.80s", name);
  if (!rv__doc_refs_check(r, payload)) return;          /* doc:sha256-... must be the caller's */
  if (ttl) {
    rv_duration d;
    if (rv_duration_parse(ttl, &d, &err) != RV_OK) {
      rv__problem(r, 400, "'ttl' must be an ISO 8601 duration such as PT1H");
      return;
    }
    ttl_ms = rv_duration_ms(&d);
  }
  rc = rv_engine_correlate(r->api->e, name, key, payload, mid, ttl_ms, &res, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  snprintf(r->detail, sizeof r->detail, "%s%s%.100s", rv_json_str(res, "result") ? rv_json_str(res, "result") : "?",
           key ? " key=" : "", key ? key : "");
  rv__reply_json(r, 200, res);
}

void rv__h_signal(rv_req *r){
  static const char *const fields[] = { "name", "payload", NULL };
  const char *name;
  const cJSON *payload;
  int n = 0;
  rv_err err;
  rv_status rc;
  cJSON *o;

  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "name", true, 128, &name) ||
      !rv__body_obj(r, r->body, "payload", false, &payload)) return;
  snprintf(r->object, sizeof r->object, "signal:%.80s", name);
  if (!rv__doc_refs_check(r, payload)) return;
  rc = rv_engine_signal(r->api->e, name, payload, &n, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  snprintf(r->detail, sizeof r->detail, "received by %d", n);
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddNumberToObject(o, "received", n);
  rv__reply_json(r, 200, o);
}
