/*
** adapters/bank/api.c -- POST /v1/bank/confirmations, the bank's callback
** (route row in engine/api/routes.c).
**
**   {"confirmations": [{"payment_id": "P-1", "amount_rials": 1500000,
**                       "paid_at": "2025-10-01T09:00:00+03:30", "bank_ref": "REF-1"}, ...]}
**   -> 200 with the reconciliation report (as `ravand bank import --json`)
**
** Who may call it: operators, and organisation principals whose agreement
** is "bank-confirmations" (`ravand principal add NAME --role organisation
** --organisation BANK --agreement bank-confirmations`); other
** organisations get 403. Runs inside the API's batch savepoint, so the
** confirmations, their outcomes and the audit row commit together.
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"
#include "bank/bank.h"

#define BANK_AGREEMENT "bank-confirmations"

void rv__h_bank_confirmations(rv_req *r){
  static const char *const fields[] = { "confirmations", NULL };
  const cJSON *items;
  cJSON *rep = NULL, *c;
  char source[160];
  rv_err err;
  rv_status rc;

  if (r->p.role == RV_ROLE_ORGANISATION && strcmp(r->p.agreement, BANK_AGREEMENT) != 0) {
    rv__problem(r, 403, "this organisation's agreement does not cover bank confirmations");
    return;
  }
  if (!rv__q_parse(r, NULL) || !rv__body_fields(r, r->body, NULL, fields)) return;
  items = cJSON_GetObjectItemCaseSensitive(r->body, "confirmations");
  if (!cJSON_IsArray(items) || cJSON_GetArraySize(items) == 0) {
    rv__problem(r, 400, "'confirmations' must be a non-empty array");
    return;
  }
  snprintf(source, sizeof source, "http:%s", r->p.name);
  rc = rv_bank_import_json(r->api->e, items, source, NULL, &rep, &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  c = cJSON_GetObjectItemCaseSensitive(rep, "counts");
  snprintf(r->object, sizeof r->object, "bank-import:%lld", (long long)rv_json_int(rep, "import", 0));
  snprintf(r->detail, sizeof r->detail, "correlated=%lld buffered=%lld duplicate=%lld mismatched=%lld rejected=%lld",
           (long long)(rv_json_int(c, "correlated", 0) + rv_json_int(c, "started", 0)),
           (long long)rv_json_int(c, "buffered", 0), (long long)rv_json_int(c, "duplicate", 0),
           (long long)rv_json_int(c, "mismatched", 0), (long long)rv_json_int(c, "rejected", 0));
  rv__reply_json(r, 200, rep);
}
