/*
** api/metrics.c -- /healthz, /metrics (Prometheus text format 0.0.4) and
** /v1/me.
**
** Gauges are read from the store at scrape time (instances by status,
** task backlog per cartable, jobs, incidents); counters and histograms
** (command latency per route, commit batch sizes) are kept in memory since
** the server started.
*/
#include <stdio.h>
#include <string.h>
#include "api/api_int.h"
#include "core/mem.h"

const double rv__lat_bounds[RV_LAT_BUCKETS] = {
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void rv__h_health(rv_req *r){
  cJSON *o = cJSON_CreateObject();
  sqlite3_stmt *s = rv_store_stmt(r->api->st, "SELECT count(*) FROM definitions");
  bool ok = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
  cJSON_AddNumberToObject(o, "schema", rv_store_schema_version());
  rv__reply_json(r, ok ? 200 : 503, o);
}

/* Label value escaping: backslash, quote, newline. */
static void label(rv_buf *b, const char *v){
  for (const char *p = v ? v : ""; *p; p++) {
    if (*p == '\\' || *p == '"') { rv_buf_add(b, "\\", 1); rv_buf_add(b, p, 1); }
    else if (*p == '\n') rv_buf_adds(b, "\\n");
    else rv_buf_add(b, p, 1);
  }
}

static void head(rv_buf *b, const char *name, const char *type, const char *help){
  rv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One gauge per row of sql: label columns first, the value last. */
static void gauge_rows(rv_buf *b, rv_store *st, const char *name, const char *sql,
                       const char *const *labels, int nl){
  sqlite3_stmt *s = rv_store_stmt(st, sql);
  while (sqlite3_step(s) == SQLITE_ROW) {
    rv_buf_adds(b, name);
    if (nl > 0) {
      rv_buf_adds(b, "{");
      for (int i = 0; i < nl; i++) {
        rv_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
        label(b, (const char *)sqlite3_column_text(s, i));
        rv_buf_adds(b, "\"");
      }
      rv_buf_adds(b, "}");
    }
    rv_buf_printf(b, " %lld\n", (long long)sqlite3_column_int64(s, nl));
  }
  sqlite3_reset(s);
}

static void hist(rv_buf *b, const char *name, const char *lname, const char *lval, const rv_hist *h){
  int64_t cum = 0;
  for (int i = 0; i <= RV_LAT_BUCKETS; i++) {
    cum += h->counts[i];
    rv_buf_printf(b, "%s_bucket{", name);
    if (lname) { rv_buf_printf(b, "%s=\"", lname); label(b, lval); rv_buf_adds(b, "\","); }
    if (i < RV_LAT_BUCKETS) rv_buf_printf(b, "le=\"%g\"} %lld\n", rv__lat_bounds[i], (long long)cum);
    else rv_buf_printf(b, "le=\"+Inf\"} %lld\n", (long long)cum);
  }
  rv_buf_printf(b, "%s_sum{", name);
  if (lname) { rv_buf_printf(b, "%s=\"", lname); label(b, lval); rv_buf_adds(b, "\""); }
  rv_buf_printf(b, "} %.6f\n%s_count{", h->sum, name);
  if (lname) { rv_buf_printf(b, "%s=\"", lname); label(b, lval); rv_buf_adds(b, "\""); }
  rv_buf_printf(b, "} %lld\n", (long long)h->n);
}

void rv__h_metrics(rv_req *r){
  static const char *const st_l[] = { "status" };
  static const char *const cart_l[] = { "process", "element", "candidate_groups", "branch", "county" };
  static const char *const job_l[] = { "adapter", "state" };
  static const char *const cls[] = { "", "1xx", "2xx", "3xx", "4xx", "5xx" };
  static const int bb[RV_BATCH_BUCKETS] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };
  rv_api *a = r->api;
  rv_store *st = a->st;
  const rv_engine_stats *es = rv_engine_stats_get(a->e);
  rv_buf b;
  int64_t cum = 0;
  char *txt;
  size_t n;

  if (!rv__q_parse(r, NULL)) return;
  rv_buf_init(&b, 0);
  head(&b, "ravand_instances", "gauge", "Process instances by status.");
  gauge_rows(&b, st, "ravand_instances", "SELECT status, count(*) FROM instances GROUP BY status", st_l, 1);
  head(&b, "ravand_task_backlog", "gauge", "Open human tasks per cartable (process, element, groups, office).");
  gauge_rows(&b, st, "ravand_task_backlog",
    "SELECT coalesce(process_id,''), element_id, coalesce(candidate_groups,''), coalesce(branch,''),"
    " coalesce(county,''), count(*) FROM tasks WHERE state='open' GROUP BY 1,2,3,4,5", cart_l, 5);
  head(&b, "ravand_tasks_overdue", "gauge", "Open tasks past their due time.");
  {
    sqlite3_stmt *s = rv_store_stmt(st, "SELECT count(*) FROM tasks WHERE state='open' AND due>0 AND due<?");
    rv_store_bind(s, "i", rv_clock_now(rv_engine_clock(a->e)));
    if (sqlite3_step(s) == SQLITE_ROW) rv_buf_printf(&b, "ravand_tasks_overdue %lld\n", (long long)sqlite3_column_int64(s, 0));
    sqlite3_reset(s);
  }
  head(&b, "ravand_jobs", "gauge", "Jobs (outbox) by adapter and state.");
  gauge_rows(&b, st, "ravand_jobs", "SELECT adapter, state, count(*) FROM jobs GROUP BY adapter, state", job_l, 2);
  head(&b, "ravand_job_retries_pending", "gauge", "Pending jobs that have failed at least once (waiting to retry).");
  gauge_rows(&b, st, "ravand_job_retries_pending",
             "SELECT count(*) FROM jobs WHERE state='pending' AND attempts>0", NULL, 0);
  head(&b, "ravand_incidents_open", "gauge", "Open incidents.");
  gauge_rows(&b, st, "ravand_incidents_open", "SELECT count(*) FROM incidents WHERE state='open'", NULL, 0);

  head(&b, "ravand_engine_commands_total", "counter", "Engine commands since start.");
  rv_buf_printf(&b, "ravand_engine_commands_total %lld\n", (long long)es->commands);
  head(&b, "ravand_engine_commits_total", "counter", "Store commits since start.");
  rv_buf_printf(&b, "ravand_engine_commits_total %lld\n", (long long)es->commits);
  head(&b, "ravand_engine_max_batch", "gauge", "Largest group commit (commands) since start.");
  rv_buf_printf(&b, "ravand_engine_max_batch %lld\n", (long long)es->max_batch);
  head(&b, "ravand_jobs_dispatched_total", "counter", "Jobs handed to adapters since start.");
  rv_buf_printf(&b, "ravand_jobs_dispatched_total %lld\n", (long long)es->jobs_dispatched);
  head(&b, "ravand_jobs_answered_now_total", "counter",
       "Jobs answered inside the command that created them (adapters with answer_now) since start.");
  rv_buf_printf(&b, "ravand_jobs_answered_now_total %lld\n", (long long)es->answered_now);
  head(&b, "ravand_jobs_failed_total", "counter", "Job attempts that failed since start.");
  rv_buf_printf(&b, "ravand_jobs_failed_total %lld\n", (long long)es->jobs_failed);
  head(&b, "ravand_incidents_total", "counter", "Incidents raised since start.");
  rv_buf_printf(&b, "ravand_incidents_total %lld\n", (long long)es->incidents);

  head(&b, "ravand_http_request_duration_seconds", "histogram",
       "API request latency from arrival to reply, by route (includes the group commit).");
  for (int i = 0; i <= rv__n_routes; i++) {
    if (a->lat[i].n == 0) continue;
    hist(&b, "ravand_http_request_duration_seconds", "route",
         i < rv__n_routes ? rv__routes[i].action : "unrouted", &a->lat[i]);
  }
  head(&b, "ravand_http_commit_batch_size", "histogram", "API requests per group commit.");
  for (int i = 0; i <= RV_BATCH_BUCKETS; i++) {
    cum += a->batch_hist[i];
    if (i < RV_BATCH_BUCKETS) rv_buf_printf(&b, "ravand_http_commit_batch_size_bucket{le=\"%d\"} %lld\n", bb[i], (long long)cum);
    else rv_buf_printf(&b, "ravand_http_commit_batch_size_bucket{le=\"+Inf\"} %lld\n", (long long)cum);
  }
  rv_buf_printf(&b, "ravand_http_commit_batch_size_sum %lld\nravand_http_commit_batch_size_count %lld\n",
                (long long)a->batch_sum, (long long)a->batches);
  head(&b, "ravand_http_batch_reruns_total", "counter",
       "Group commits rolled back by a request that failed after writing and run again with a savepoint per request.");
  rv_buf_printf(&b, "ravand_http_batch_reruns_total %lld\n", (long long)a->batch_reruns);
  head(&b, "ravand_wal_syncs_total", "counter",
       "fdatasync calls of the WAL made by the sync thread (pipelined commit; 0 with --commit-sync inline).");
  rv_buf_printf(&b, "ravand_wal_syncs_total %llu\n", (unsigned long long)rv_store_sync_count(a->st));
  head(&b, "ravand_http_replies_awaiting_sync", "gauge",
       "Replies of committed requests waiting for the WAL sync of their commit; the most at once.");
  rv_buf_printf(&b, "ravand_http_replies_awaiting_sync %lld\nravand_http_replies_awaiting_sync_max %lld\n",
                (long long)a->parked_now, (long long)a->parked_max);
  head(&b, "ravand_http_responses_total", "counter", "API responses by status class.");
  for (int i = 1; i <= 5; i++)
    rv_buf_printf(&b, "ravand_http_responses_total{class=\"%s\"} %lld\n", cls[i], (long long)a->responses[i]);
  head(&b, "ravand_http_connections", "gauge", "Open API connections.");
  rv_buf_printf(&b, "ravand_http_connections %d\n", a->n_conns);
  head(&b, "ravand_http_connections_accepted_total", "counter", "Connections accepted.");
  rv_buf_printf(&b, "ravand_http_connections_accepted_total %lld\n", (long long)a->accepted);
  head(&b, "ravand_http_rejected_total", "counter", "Requests or connections refused by a limit.");
  rv_buf_printf(&b, "ravand_http_rejected_total{reason=\"connection_cap\"} %lld\n", (long long)a->rejected_conn_cap);
  rv_buf_printf(&b, "ravand_http_rejected_total{reason=\"address_cap\"} %lld\n", (long long)a->rejected_addr_cap);
  rv_buf_printf(&b, "ravand_http_rejected_total{reason=\"rate\"} %lld\n", (long long)a->rejected_rate);
  rv_buf_printf(&b, "ravand_http_rejected_total{reason=\"deadline\"} %lld\n", (long long)a->deadline_kills);
  head(&b, "ravand_http_auth_failures_total", "counter", "Failed authentications.");
  rv_buf_printf(&b, "ravand_http_auth_failures_total %lld\n", (long long)a->auth_failures);
  n = b.len;
  txt = rv_buf_take(&b);
  rv__reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", txt, n);
}

void rv__h_me(rv_req *r){
  cJSON *o, *sc, *g;
  if (!rv__q_parse(r, NULL)) return;
  o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", r->p.name);
  cJSON_AddStringToObject(o, "role", rv__role_name(r->p.role));
  sc = cJSON_AddObjectToObject(o, "scope");
  if (r->p.national_id[0]) cJSON_AddStringToObject(sc, "national_id", r->p.national_id);
  if (r->p.branch[0]) cJSON_AddStringToObject(sc, "branch", r->p.branch);
  if (r->p.county[0]) cJSON_AddStringToObject(sc, "county", r->p.county);
  if (r->p.organisation[0]) cJSON_AddStringToObject(sc, "organisation", r->p.organisation);
  if (r->p.agreement[0]) cJSON_AddStringToObject(sc, "agreement", r->p.agreement);
  g = cJSON_AddArrayToObject(o, "groups");
  for (int i = 0; i < r->p.n_groups; i++) cJSON_AddItemToArray(g, cJSON_CreateString(r->p.groups[i]));
  /* the server's clock (follows --now), so a client compares due dates
  ** with the time the server keeps, not its own */
  cJSON_AddNumberToObject(o, "now", (double)rv_clock_now(rv_engine_clock(r->api->e)));
  rv__reply_json(r, 200, o);
}
