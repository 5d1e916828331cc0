/*
** adapters/inquiry/api.c -- POST /v1/inquiry/documents/fetch: an outside
** body's user fetches a person's status document with the access code the
** person gave it (route row in engine/api/routes.c; docs/api.md).
**
**   {"code": "K7M2-9QXR-ABCD-EFGH-JKMN-PQRS"}
**   -> 200 {"code_id", "document", "valid_until", "fetch_no", "max_fetches", "fetched_at"}
**   -> 404 (the one "no such object" body) for every refusal: unknown,
**      malformed or wrong code, locked, expired, revoked or used-up code,
**      the organisation's agreement not active
**   -> 429 after too many refusals of the user or of the organisation
**
** Organisation principals only; the code travels in the body, never in the
** URL. Every attempt is audited (action inquiry.fetch, object code:IC-n or
** code:?, the refusal reason in the detail -- the reply never says which),
** also when refused by a rate limit. The verification (inquiry.c) runs in
** the request's savepoint with the audit row; a store failure rolls it back.
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"
#include "inquiry/inquiry.h"

void rv__h_inquiry_fetch(rv_req *r){
  static const char *const fields[] = { "code", NULL };
  const char *code;
  rv_inquiry_fetch_in in;
  rv_inquiry_fetch_out out;
  rv_err err;
  rv_status rc;

  r->audit = true;
  snprintf(r->object, sizeof r->object, "code:?");
  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields) ||
      !rv__body_str(r, r->body, "code", true, 128, &code)) return;
  memset(&in, 0, sizeof in);
  in.code = code;
  in.principal_id = r->p.id;
  in.principal = r->p.name;
  in.organisation = r->p.organisation;
  in.agreement = r->p.agreement;
  in.request_id = r->id;
  rc = rv_inquiry_fetch(r->api->e, &r->api->inquiry, &in, &out, &err);
  if (rc != RV_OK) {
    r->rollback = true;
    cJSON_Delete(out.reply);
    rv__reply_err(r, rc, &err);
    return;
  }
  if (out.code_id > 0) {
    char id[32];
    rv_inquiry_code_id(out.code_id, id, sizeof id);
    snprintf(r->object, sizeof r->object, "code:%s", id);
  }
  snprintf(r->detail, sizeof r->detail, "%s; attempt %lld", out.reason, (long long)out.attempt_id);
  switch (out.outcome) {
  case RV_FETCH_OK:
    rv__reply_json(r, 200, out.reply);
    break;
  case RV_FETCH_THROTTLED:
    rv__problem(r, 429, "too many failed fetches; wait");
    r->retry_after = out.retry_after_s;
    break;
  default:
    rv__not_found(r);
    break;
  }
}
