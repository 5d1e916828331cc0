/*
** api/incidents.c -- incidents: list and retry (operators).
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"

void rv__h_incidents(rv_req *r){
  static const char *const q[] = { "state", "instance", "process", "limit", "offset", NULL };
  int64_t limit, offset, inst = 0;
  bool has_inst;
  const char *state;
  rv_sql s;

  if (!rv__q_parse(r, q) || !rv__q_page(r, &limit, &offset) ||
      !rv__q_int(r, "instance", 1, INT64_C(1) << 53, &inst, &has_inst)) return;
  state = rv__q_str(r, "state");
  if (state == NULL) state = "open";
  if (strcmp(state, "open") && strcmp(state, "resolved") && strcmp(state, "all")) {
    rv__problem(r, 400, "'state' is open, resolved or all");
    return;
  }
  rv__sql_init(&s, "SELECT x.id, x.instance_id AS instance, i.process_id AS process, x.element_id AS element,"
                   " x.kind, x.message, x.job_id AS job, x.created, x.resolved, x.state"
                   " FROM incidents x JOIN instances i ON i.id=x.instance_id WHERE 1");
  if (strcmp(state, "all") != 0) rv__sql_t(&s, " AND x.state=?", state);
  if (has_inst) rv__sql_i(&s, " AND x.instance_id=?", inst);
  if (rv__q_str(r, "process")) rv__sql_t(&s, " AND i.process_id=?", rv__q_str(r, "process"));
  rv__sql_add(&s, " ORDER BY x.id");
  rv__reply_page_sql(r, &s, limit, offset, NULL);
}

void rv__h_incident_retry(rv_req *r){
  rv_err err;
  rv_status rc;
  cJSON *o;
  if (!rv__q_parse(r, NULL)) return;
  snprintf(r->object, sizeof r->object, "incident:%lld", (long long)r->ids[0]);
  rc = rv_engine_retry_incident(r->api->e, r->ids[0], &err);
  if (rc != RV_OK) { rv__reply_err(r, rc, &err); return; }
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", (double)r->ids[0]);
  cJSON_AddStringToObject(o, "state", "resolved");
  rv__reply_json(r, 200, o);
}
