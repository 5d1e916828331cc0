/*
** api/server.c -- the API on evhttp: connections, limits, the request
** queue and group commit.
**
** libevent 2.1.12 has neither a connection cap nor an absolute request
** deadline (its timeouts are inactivity timeouts: a client trickling one
** byte a second is never timed out), so we track connections ourselves:
**
**   accept   evhttp asks our bevcb for a bufferevent; we make it, count the
**            connection and, via event_active(), get control back in the
**            same loop pass, after evhttp has built the connection. There
**            we find the evhttp_connection (the bufferevent's cbarg), hang
**            a close callback on it and arm the deadline. At the cap the
**            listeners pause (the kernel backlog holds new clients); beyond
**            the per-address cap a new connection is closed at once.
**   deadline every request must be read, handled and its reply written
**            within deadline_ms of the moment the connection was ready for
**            it (accept, or the end of the previous reply); else the
**            connection is closed. A connection whose request sits in our
**            queue is never closed under it.
**   close    evhttp calls our close callback from evhttp_connection_free;
**            we drop the conn and detach any queued request from it.
**
** Requests that arrive in one loop pass are queued and handled together in
** one engine batch (on_flush), replies after the commit. The batch is
** optimistic: no savepoint per request (a savepoint copies every page a
** command first touches; with the engine command's own, two per
** completion). A request that fails before writing fails alone, as usual.
** One that fails after writing (a Lua output mapping that throws after the
** task row was updated, a handler that must undo, an audit row that cannot
** be written) spoils the batch: the rest of it is not run, the whole
** transaction is rolled back, and every request of the batch runs again
** from the start, each in its own savepoint (routes.c rv__dispatch), so
** one bad request never loses or changes another's outcome. Nothing was
** replied before, and what a request decided once (rate-limit tokens,
** failure counters) is kept, not taken twice (req_rerun). If the commit
** fails, every reply of the batch becomes 503.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include "api/api_int.h"
#include "core/mem.h"
#include "cal/cal.h"

struct rv_conn {
  rv_api   *api;
  struct evhttp_connection *evcon;
  struct bufferevent *bev;        /* until set up */
  struct event *setup_ev, *timer;
  char      addr[64];
  int       pending;              /* our queued requests on it */
  rv_conn  *prev, *next;
};

/*--- Options ------------------------------------------------------------------*/

const char *const rv_api_opt_names[] = {
  "--max-body", "--max-deploy-body", "--max-headers", "--max-header-count", "--deadline",
  "--max-conns", "--max-conns-per-addr", "--rate", "--rate-addr", "--burst",
  "--max-auth-failures", "--pepper", "--applicant-starts", "--organisation-starts", "--console",
  "--inquiry-max-failures", "--inquiry-max-failures-org",
  "--max-document", "--document-quota", "--document-quota-bytes", "--commit-sync", NULL,
};

const char rv_api_opt_usage[] =
  "  serve options (limits; 0 keeps the default):\n"
  "    --max-body SIZE          request body limit [1M]\n"
  "    --max-deploy-body SIZE   body limit for deploy and lint [5M]\n"
  "    --max-headers SIZE       request line + headers [16K]\n"
  "    --max-header-count N     [64]\n"
  "    --deadline DURATION      absolute limit per request, e.g. 10s or PT10S [10s]\n"
  "    --max-conns N            open connections; at the cap new ones wait [512]\n"
  "    --max-conns-per-addr N   [64]\n"
  "    --rate N                 requests per second per principal, -1 unlimited [50]\n"
  "    --rate-addr N            requests per second per address, -1 unlimited [200]\n"
  "    --burst SECONDS          bucket size in seconds of rate [2]\n"
  "    --max-auth-failures N    failed logins per address per 10 minutes [20]\n"
  "    --pepper FILE            token pepper [DB.pepper]\n"
  "    --applicant-starts LIST  processes applicants may start besides those the models open\n"
  "                             (rv:startableBy): ids, comma separated, or '*'\n"
  "    --organisation-starts LIST  the same for organisation users\n"
  "    --inquiry-max-failures N refused inquiry fetches per user per 10 minutes, then 429 [20]\n"
  "    --inquiry-max-failures-org N  ... per organisation [50]\n"
  "    --max-document SIZE      one uploaded document (POST /v1/documents) [2M]\n"
  "    --document-quota N       documents per principal [50]\n"
  "    --document-quota-bytes SIZE  their total size per principal [20M]\n"
  "    --console DIR            the web console's files at / [console/dist if built; none: off]\n"
  "    --commit-sync MODE       pipelined: a thread syncs the WAL, replies wait for it;\n"
  "                             inline: each COMMIT syncs on the loop's thread [pipelined]\n";

static bool parse_size(const char *v, size_t *out){
  char *end;
  double d;
  errno = 0;
  d = strtod(v, &end);
  if (errno || end == v || d < 0) return false;
  if (*end == 'K' || *end == 'k') { d *= 1024; end++; }
  else if (*end == 'M' || *end == 'm') { d *= 1024 * 1024; end++; }
  else if (*end == 'G' || *end == 'g') { d *= 1024.0 * 1024 * 1024; end++; }
  if (*end == 'B' || *end == 'b') end++;
  if (*end || d > 1024.0 * 1024 * 1024) return false;
  *out = (size_t)d;
  return true;
}

static bool parse_num(const char *v, double min, double max, double *out){
  char *end;
  double d;
  errno = 0;
  d = strtod(v, &end);
  if (errno || end == v || *end || d < min || d > max) return false;
  *out = d;
  return true;
}

rv_status rv_api_cfg_set(rv_api_cfg *c, const char *name, const char *v, rv_err *err){
  double d;
  size_t z;
  if (strcmp(name, "--max-body") == 0 || strcmp(name, "--max-deploy-body") == 0 ||
      strcmp(name, "--max-headers") == 0 || strcmp(name, "--max-document") == 0 ||
      strcmp(name, "--document-quota-bytes") == 0) {
    if (!parse_size(v, &z)) return rv_fail(err, RV_INVALID, "%s takes a size such as 64K or 1M", name);
    if (strcmp(name, "--max-body") == 0) c->max_body = z;
    else if (strcmp(name, "--max-deploy-body") == 0) c->max_deploy_body = z;
    else if (strcmp(name, "--max-document") == 0) c->max_document = z;
    else if (strcmp(name, "--document-quota-bytes") == 0) c->document_quota_bytes = z;
    else c->max_headers = z;
    return RV_OK;
  }
  if (strcmp(name, "--deadline") == 0) {
    size_t n = strlen(v);
    if (n > 1 && v[n - 1] == 's' && v[0] != 'P') {
      char buf[32];
      snprintf(buf, sizeof buf, "%.*s", (int)(n - 1), v);
      if (!parse_num(buf, 0.05, 3600, &d)) return rv_fail(err, RV_INVALID, "--deadline: 0.05s..3600s");
      c->deadline_ms = (int)(d * 1000);
      return RV_OK;
    }
    if (v[0] == 'P') {
      rv_duration dur;
      int64_t ms;
      if (rv_duration_parse(v, &dur, NULL) != RV_OK || (ms = rv_duration_ms(&dur)) < 50 || ms > 3600000)
        return rv_fail(err, RV_INVALID, "--deadline: an ISO 8601 duration of 0.05 s to 1 h");
      c->deadline_ms = (int)ms;
      return RV_OK;
    }
    if (!parse_num(v, 50, 3600000, &d)) return rv_fail(err, RV_INVALID, "--deadline takes e.g. 10s (or milliseconds)");
    c->deadline_ms = (int)d;
    return RV_OK;
  }
  if (strcmp(name, "--rate") == 0 || strcmp(name, "--rate-addr") == 0 || strcmp(name, "--burst") == 0) {
    if (!parse_num(v, -1, 1e9, &d)) return rv_fail(err, RV_INVALID, "%s takes a number (-1: unlimited)", name);
    if (d < 0) d = -1;
    if (strcmp(name, "--rate") == 0) c->rate = d;
    else if (strcmp(name, "--rate-addr") == 0) c->rate_addr = d;
    else c->burst = d;
    return RV_OK;
  }
  if (strcmp(name, "--max-conns") == 0 || strcmp(name, "--max-conns-per-addr") == 0 ||
      strcmp(name, "--max-header-count") == 0 || strcmp(name, "--max-auth-failures") == 0 ||
      strcmp(name, "--inquiry-max-failures") == 0 || strcmp(name, "--inquiry-max-failures-org") == 0 ||
      strcmp(name, "--document-quota") == 0) {
    if (!parse_num(v, 1, 1000000, &d)) return rv_fail(err, RV_INVALID, "%s takes a positive number", name);
    if (strcmp(name, "--inquiry-max-failures") == 0) c->inquiry_max_failures = (int)d;
    else if (strcmp(name, "--inquiry-max-failures-org") == 0) c->inquiry_max_failures_org = (int)d;
    else if (strcmp(name, "--document-quota") == 0) c->document_quota = (int)d;
    else if (strcmp(name, "--max-conns") == 0) c->max_conns = (int)d;
    else if (strcmp(name, "--max-conns-per-addr") == 0) c->max_conns_per_addr = (int)d;
    else if (strcmp(name, "--max-header-count") == 0) c->max_header_count = (int)d;
    else c->max_auth_failures = (int)d;
    return RV_OK;
  }
  if (strcmp(name, "--pepper") == 0) { c->pepper_path = v; return RV_OK; }
  if (strcmp(name, "--applicant-starts") == 0) { c->applicant_starts = v; return RV_OK; }
  if (strcmp(name, "--organisation-starts") == 0) { c->organisation_starts = v; return RV_OK; }
  if (strcmp(name, "--console") == 0) { c->console_dir = v; return RV_OK; }
  if (strcmp(name, "--commit-sync") == 0) {
    if (strcmp(v, "inline") == 0) c->inline_sync = true;
    else if (strcmp(v, "pipelined") == 0) c->inline_sync = false;
    else return rv_fail(err, RV_INVALID, "--commit-sync is 'pipelined' or 'inline'");
    return RV_OK;
  }
  return rv_fail(err, RV_INVALID, "unknown option %s", name);
}

static void cfg_defaults(rv_api_cfg *c){
  if (c->max_body == 0) c->max_body = 1 << 20;
  if (c->max_deploy_body == 0) c->max_deploy_body = 5 << 20;
  if (c->max_deploy_body < c->max_body) c->max_deploy_body = c->max_body;
  if (c->max_headers == 0) c->max_headers = 16 << 10;
  if (c->max_header_count == 0) c->max_header_count = 64;
  if (c->deadline_ms == 0) c->deadline_ms = 10000;
  if (c->max_conns == 0) c->max_conns = 512;
  if (c->max_conns_per_addr == 0) c->max_conns_per_addr = 64;
  if (c->rate == 0) c->rate = 50;
  if (c->rate_addr == 0) c->rate_addr = 200;
  if (c->burst == 0) c->burst = 2;
  if (c->max_auth_failures == 0) c->max_auth_failures = 20;
  if (c->max_document == 0) c->max_document = 2 << 20;
  if (c->document_quota == 0) c->document_quota = 50;
  if (c->document_quota_bytes == 0) c->document_quota_bytes = 20 << 20;
}

/*--- Connections -----------------------------------------------------------------*/

static void listeners_pause(rv_api *a, bool pause){
  if (a->paused == pause) return;
  a->paused = pause;
  for (int i = 0; i < a->n_listeners; i++) {
    if (pause) evconnlistener_disable(a->listeners[i]);
    else evconnlistener_enable(a->listeners[i]);
  }
}

static void conn_free(rv_conn *c){
  rv_api *a = c->api;
  if (c->prev) c->prev->next = c->next; else a->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  a->n_conns--;
  if (c->setup_ev) event_free(c->setup_ev);
  if (c->timer) event_free(c->timer);
  rv_free(c);
  if (a->n_conns < a->cfg.max_conns) listeners_pause(a, false);
}

static void arm_deadline(rv_conn *c){
  struct timeval tv = { c->api->cfg.deadline_ms / 1000, (c->api->cfg.deadline_ms % 1000) * 1000 };
  event_add(c->timer, &tv);
}

/* A batch run and committed whose replies wait for the sync of commit seq. */
struct rv_parked {
  rv_req           *list;
  uint64_t          seq;
  struct rv_parked *next;
};

static void on_close(struct evhttp_connection *evcon, void *arg){
  rv_conn *c = arg;
  (void)evcon;
  if (c->pending > 0) {
    for (rv_req *r = c->api->head; r; r = r->next) if (r->conn == c) r->conn = NULL;
    for (struct rv_parked *p = c->api->parked; p; p = p->next)
      for (rv_req *r = p->list; r; r = r->next) if (r->conn == c) r->conn = NULL;
  }
  c->evcon = NULL;
  conn_free(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg){
  rv_conn *c = arg;
  (void)fd; (void)what;
  if (c->pending > 0 || c->evcon == NULL) {       /* we owe it a reply: soon */
    struct timeval tv = { 1, 0 };
    event_add(c->timer, &tv);
    return;
  }
  c->api->deadline_kills++;
  evhttp_connection_free(c->evcon);               /* calls on_close, which frees c */
}

static void on_setup(evutil_socket_t fd, short what, void *arg){
  rv_conn *c = arg;
  rv_api *a = c->api;
  void *cbarg = NULL;
  struct evhttp_connection *evcon;
  char *addr = NULL;
  ev_uint16_t port = 0;
  int same = 0;
  (void)fd; (void)what;

  bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
  evcon = cbarg;
  if (evcon == NULL || evhttp_connection_get_bufferevent(evcon) != c->bev) {
    /* evhttp gave up on the connection before we saw it */
    bufferevent_decref(c->bev);
    conn_free(c);
    return;
  }
  bufferevent_decref(c->bev);
  c->bev = NULL;
  event_free(c->setup_ev);           /* one-shot; freeing it in its callback is allowed */
  c->setup_ev = NULL;
  c->evcon = evcon;
  evhttp_connection_get_peer(evcon, &addr, &port);
  snprintf(c->addr, sizeof c->addr, "%s", addr ? addr : "?");
  for (rv_conn *o = a->conns; o; o = o->next) if (o != c && strcmp(o->addr, c->addr) == 0) same++;
  if (same >= a->cfg.max_conns_per_addr || a->n_conns > a->cfg.max_conns) {
    if (same >= a->cfg.max_conns_per_addr) a->rejected_addr_cap++; else a->rejected_conn_cap++;
    c->evcon = NULL;
    evhttp_connection_free(evcon);                /* no close callback set yet */
    conn_free(c);
    return;
  }
  a->accepted++;
  evhttp_connection_set_closecb(evcon, on_close, c);
  c->timer = evtimer_new(a->base, on_deadline, c);
  arm_deadline(c);
}

static struct bufferevent *on_bev(struct event_base *base, void *arg){
  rv_api *a = arg;
  struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  rv_conn *c;
  if (bev == NULL) return NULL;
  c = rv_calloc(1, sizeof *c);
  c->api = a;
  c->bev = bev;
  bufferevent_incref(bev);          /* keeps it valid until on_setup looks */
  c->setup_ev = event_new(base, -1, 0, on_setup, c);
  c->next = a->conns;
  if (a->conns) a->conns->prev = c;
  a->conns = c;
  a->n_conns++;
  if (a->n_conns >= a->cfg.max_conns) listeners_pause(a, true);
  event_active(c->setup_ev, EV_TIMEOUT, 0);
  return bev;
}

static rv_conn *conn_of(rv_api *a, struct evhttp_request *ev){
  struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
  for (rv_conn *c = a->conns; c; c = c->next) if (c->evcon == evcon && evcon) return c;
  return NULL;
}

static void on_complete(struct evhttp_request *ev, void *arg){
  rv_conn *c = arg;
  (void)ev;
  arm_deadline(c);                  /* the next request's deadline starts now */
}

/*--- Replies -----------------------------------------------------------------------*/

static void req_free(rv_req *r){
  cJSON_Delete(r->body);
  cJSON_Delete(r->out);
  rv_free(r->raw);
  rv_free(r->path);
  rv_free(r->query_text);
  rv_free(r->location);
  for (int i = 0; i < r->n_names; i++) rv_free(r->names[i]);
  if (r->query_ok) evhttp_clear_headers(&r->query);
  rv_free(r);
}

void rv__hist_observe(rv_hist *h, double v){
  int i = 0;
  while (i < RV_LAT_BUCKETS && v > rv__lat_bounds[i]) i++;
  h->counts[i]++;
  h->n++;
  h->sum += v;
}

static void send_reply(rv_api *a, rv_req *r){
  struct evbuffer *b = evbuffer_new();
  struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
  const char *ctype = "application/json";
  char num[24];

  if (r->status == 0) rv__problem(r, 500, "no reply");
  if (r->raw) {
    evbuffer_add(b, r->raw, r->raw_len);
    ctype = r->ctype ? r->ctype : "application/octet-stream";
  } else if (r->out) {
    rv_buf j;
    rv_buf_init(&j, 0);
    rv_json_write(&j, r->out);
    rv_buf_add(&j, "\n", 1);
    evbuffer_add(b, j.p, j.len);
    rv_buf_fini(&j);
    if (r->status >= 400) ctype = "application/problem+json";
  }
  evhttp_add_header(h, "Content-Type", ctype);
  evhttp_add_header(h, "X-Request-Id", r->id);
  evhttp_add_header(h, "Cache-Control", r->console && r->cache ? r->cache : "no-store");
  evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
  if (r->console) {            /* the console loads nothing from elsewhere */
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                      "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
                      "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
  }
  if (r->location) evhttp_add_header(h, "Location", r->location);
  if (r->www_auth) evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"ravand\"");
  if (r->retry_after > 0) {
    snprintf(num, sizeof num, "%d", r->retry_after);
    evhttp_add_header(h, "Retry-After", num);
  }
  if (r->conn) evhttp_request_set_on_complete_cb(r->ev, on_complete, r->conn);
  evhttp_send_reply(r->ev, r->status, rv__status_title(r->status), b);
  evbuffer_free(b);
  if (r->status >= 100 && r->status < 600) a->responses[r->status / 100]++;
  rv__hist_observe(&a->lat[r->route_ix >= 0 ? r->route_ix : rv__n_routes],
                   (double)(rv__mono_ns() - r->t0_ns) / 1e9);
}

/* Reply at once, outside the queue (limits hit before any work). */
static void reply_now(rv_api *a, rv_req *r){
  send_reply(a, r);
  req_free(r);
}

/*--- Intake and flush ----------------------------------------------------------------*/

static void on_request(struct evhttp_request *ev, void *arg){
  rv_api *a = arg;
  rv_req *r = rv_calloc(1, sizeof *r);
  const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(ev);
  struct evkeyvalq *h = evhttp_request_get_input_headers(ev);
  struct evkeyval *kv;
  int nh = 0, retry;
  const char *path = u ? evhttp_uri_get_path(u) : NULL, *query = u ? evhttp_uri_get_query(u) : NULL;

  r->api = a;
  r->ev = ev;
  r->route_ix = -1;
  r->t0_ns = rv__mono_ns();
  r->method = (int)evhttp_request_get_command(ev);
  snprintf(r->id, sizeof r->id, "%s-%06llu", a->boot, (unsigned long long)++a->seq);
  r->conn = conn_of(a, ev);
  snprintf(r->addr, sizeof r->addr, "%s", r->conn ? r->conn->addr : "?");
  r->path = rv_strdup(path && *path ? path : "/");
  r->query_text = query ? rv_strdup(query) : NULL;

  if (!rv__rl_take(a->rl_addr, r->addr, r->t0_ns, &retry)) {
    a->rejected_rate++;
    rv__problem(r, 429, "too many requests from your address");
    r->retry_after = retry;
    reply_now(a, r);
    return;
  }
  TAILQ_FOREACH(kv, h, next) nh++;
  if (nh > a->cfg.max_header_count) {
    rv__problem(r, 431, "more than %d header fields", a->cfg.max_header_count);
    reply_now(a, r);
    return;
  }
  if (a->stopping) {
    rv__problem(r, 503, "the server is stopping");
    r->retry_after = 1;
    reply_now(a, r);
    return;
  }
  if (rv__console_handle(r)) {       /* the web console's files: no store, no batch */
    reply_now(a, r);
    return;
  }
  if (r->conn) r->conn->pending++;
  if (a->tail) a->tail->next = r; else a->head = r;
  a->tail = r;
  if (a->queued++ == 0) event_active(a->flush_ev, EV_TIMEOUT, 0);
}

static void batch_observe(rv_api *a, int n){
  static const int bounds[RV_BATCH_BUCKETS] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };
  int i = 0;
  while (i < RV_BATCH_BUCKETS && n > bounds[i]) i++;
  a->batch_hist[i]++;
  a->batches++;
  a->batch_sum += n;
}

/* Forget what running r left behind (reply, route, principal, body,
** headers), so a spoiled batch can run it again from the start. Kept: its
** identity, timing, parsed query and the rate-limit verdicts; the request
** body is still in evhttp's input buffer (it is read with evbuffer_pullup,
** never drained). */
static void req_rerun(rv_req *r){
  cJSON_Delete(r->body);
  cJSON_Delete(r->out);
  rv_free(r->raw);
  rv_free(r->location);
  for (int i = 0; i < r->n_names; i++) rv_free(r->names[i]);
  r->body = r->out = NULL;
  r->raw = r->location = NULL;
  r->raw_len = 0;
  r->ctype = NULL;
  r->n_names = r->n_ids = 0;
  r->route = NULL;
  r->route_ix = -1;
  r->authed = false;
  memset(&r->p, 0, sizeof r->p);
  r->status = 0;
  r->www_auth = r->rollback = r->audit = false;
  r->retry_after = 0;
  r->object[0] = r->detail[0] = 0;
  evhttp_clear_headers(evhttp_request_get_output_headers(r->ev));   /* e.g. Allow of a 405 */
}

/* Run the queue in one batch: optimistic first; when a request spoiled
** it, everything again with a savepoint per request. */
static bool run_batch(rv_api *a, rv_req *list){
  rv_err err;
  rv_req *r;
  for (int pass = 0; pass < 2; pass++) {
    bool ok = (pass == 0 ? rv_engine_batch_begin_optimistic(a->e, &err)
                         : rv_engine_batch_begin(a->e, &err)) == RV_OK;
    a->optimistic = pass == 0;
    for (r = list; r; r = r->next) {
      if (pass > 0) req_rerun(r);
      if (!ok) { rv__problem(r, 503, "the store is busy; retry"); r->retry_after = 1; continue; }
      rv__dispatch(r);
      if (pass == 0 && rv_engine_batch_spoiled(a->e)) break;   /* all of it runs again */
    }
    a->optimistic = false;
    if (!ok) return false;
    if (rv_engine_batch_end(a->e, &err) == RV_OK) return true;
    if (pass == 0 && rv_engine_batch_spoiled(a->e)) { a->batch_reruns++; continue; }
    fprintf(stderr, "ravand: API batch commit failed: %s\n", err.msg);
    for (r = list; r; r = r->next) {
      if (err.code == RV_FULL) {            /* 507, Retry-After: not in a second */
        rv__reply_err(r, RV_FULL, &err);
        continue;
      }
      rv__problem(r, 503, "the change could not be committed; retry");
      r->retry_after = 1;
    }
    return false;
  }
  return false;     /* not reached: pass 1 is a normal batch, never spoiled */
}

static void reply_all(rv_api *a, rv_req *list){
  rv_req *r, *next;
  for (r = list; r; r = next) {
    next = r->next;
    if (r->conn) r->conn->pending--;
    send_reply(a, r);
    req_free(r);
  }
}

/*--- Pipelined WAL sync ----------------------------------------------------------
** A batch's COMMIT no longer waits for fdatasync (store.h, rv_store_defer_
** sync): its replies wait instead, parked with the number of the last
** commit they may depend on -- this batch's, or an earlier one's that a
** read in it saw -- until the store's sync thread has made that commit
** durable. Meanwhile the loop reads and runs the next batch, whose commit
** the next sync covers too: the fdatasync of one batch overlaps the work
** of the next, and no reply tells a client about a change a power loss
** could still take back. Jobs wait likewise (rv_engine_dispatch_jobs). */
static void on_durable(void *arg){
  rv_api *a = arg;
  uint64_t done = rv_store_synced(a->st);
  while (a->parked && a->parked->seq <= done) {
    struct rv_parked *p = a->parked;
    int n = 0;
    a->parked = p->next;
    if (a->parked == NULL) a->parked_tail = NULL;
    for (rv_req *r = p->list; r; r = r->next) n++;
    a->parked_now -= n;
    reply_all(a, p->list);
    rv_free(p);
  }
}

/* Sync now, on this thread, and send every parked reply. */
static void flush_parked(rv_api *a){
  if (a->parked == NULL) return;
  rv_store_sync_now(a->st);
  on_durable(a);
}

static void park(rv_api *a, rv_req *list, int n, uint64_t seq){
  struct rv_parked *p = rv_malloc(sizeof *p);
  p->list = list;
  p->seq = seq;
  p->next = NULL;
  if (a->parked_tail) a->parked_tail->next = p; else a->parked = p;
  a->parked_tail = p;
  a->parked_now += n;
  if (a->parked_now > a->parked_max) a->parked_max = a->parked_now;
  rv_store_sync_async(a->st);
}

static void on_flush(evutil_socket_t fd, short what, void *arg){
  rv_api *a = arg;
  rv_req *list = a->head;
  bool ok;
  int n = a->queued;
  uint64_t seq;
  (void)fd; (void)what;

  a->head = a->tail = NULL;
  a->queued = 0;
  ok = run_batch(a, list);
  batch_observe(a, n);
  seq = rv_store_commit_seq(a->st);
  if (a->stopping) {                 /* no later sync to wait for */
    rv_store_sync_now(a->st);
    flush_parked(a);
  }
  if (a->parked == NULL && rv_store_synced(a->st) >= seq) reply_all(a, list);
  else park(a, list, n, seq);        /* in order: behind any batch parked before */
  /* jobs created by these commands go out once durable, not at the next tick */
  if (ok) rv_engine_dispatch_jobs(a->e);
}

/*--- Start and stop --------------------------------------------------------------------*/

rv_status rv_api_load_keys(const char *db_path, const char *pepper_path, rv_err *err){
  unsigned char key[32];
  char path[4096];
  rv_status rc;
  if (pepper_path == NULL) {
    snprintf(path, sizeof path, "%s.pepper", db_path ? db_path : "ravand.db");
    pepper_path = path;
  }
  rc = rv__pepper_load(pepper_path, true, key, err);
  if (rc == RV_OK) rv_inquiry_set_pepper(key);
  sodium_memzero(key, sizeof key);
  return rc;
}

static void add_listener(struct evhttp_bound_socket *b, void *arg){
  rv_api *a = arg;
  if (a->n_listeners < (int)(sizeof a->listeners / sizeof a->listeners[0]))
    a->listeners[a->n_listeners++] = evhttp_bound_socket_get_listener(b);
}

rv_status rv_api_start(struct evhttp *http, rv_engine *e, const rv_api_cfg *cfg,
                       rv_api **out, rv_err *err){
  rv_api *a;
  rv_status rc;
  char path[4096];
  unsigned char boot[3];

  *out = NULL;
  if (!cfg->inline_sync) {            /* first: nothing to undo if it fails */
    rc = rv_engine_defer_sync(e, err);
    if (rc != RV_OK) return rc;
  }
  a = rv_calloc(1, sizeof *a);
  a->cfg = *cfg;
  cfg_defaults(&a->cfg);
  a->e = e;
  a->st = rv_engine_store(e);
  a->http = http;
  a->base = rv_engine_base(e);
  if (a->cfg.pepper_path == NULL) {
    snprintf(path, sizeof path, "%s.pepper", cfg->db_path ? cfg->db_path : "ravand.db");
    a->cfg.pepper_path = path;
  }
  rc = rv__pepper_load(a->cfg.pepper_path, true, a->pepper, err);
  a->cfg.pepper_path = NULL;       /* not kept: path is on our stack */
  if (rc != RV_OK) { rv_free(a); return rc; }
  rv_inquiry_set_pepper(a->pepper);       /* the inquiry adapter's code key */
  rv_inquiry_limits_default(&a->inquiry);
  if (a->cfg.inquiry_max_failures > 0) a->inquiry.max_failures_user = a->cfg.inquiry_max_failures;
  if (a->cfg.inquiry_max_failures_org > 0) a->inquiry.max_failures_org = a->cfg.inquiry_max_failures_org;
  a->applicant_starts = rv_strdup(cfg->applicant_starts);
  a->organisation_starts = rv_strdup(cfg->organisation_starts);
  a->cfg.applicant_starts = a->cfg.organisation_starts = NULL;
  a->console_dir = rv__console_dir(cfg->console_dir);
  a->cfg.console_dir = NULL;
  randombytes_buf(boot, sizeof boot);
  sodium_bin2hex(a->boot, sizeof a->boot, boot, sizeof boot);
  a->lat = rv_calloc((size_t)rv__n_routes + 1, sizeof *a->lat);
  a->rl_addr = rv__rl_new(a->cfg.rate_addr, a->cfg.burst, 8192);
  a->rl_principal = rv__rl_new(a->cfg.rate, a->cfg.burst, 8192);
  a->rl_authfail = rv__rl_new(a->cfg.max_auth_failures / 600.0, 600, 8192);
  a->flush_ev = event_new(a->base, -1, 0, on_flush, a);
  if (!cfg->inline_sync) rv_engine_on_durable(e, on_durable, a);

  evhttp_set_max_body_size(http, (ev_ssize_t)(a->cfg.max_document > a->cfg.max_deploy_body
                                              ? a->cfg.max_document : a->cfg.max_deploy_body));
  evhttp_set_max_headers_size(http, (ev_ssize_t)a->cfg.max_headers);
  /* inactivity timeout as a second line; the deadline is the real limit */
  evhttp_set_timeout(http, a->cfg.deadline_ms / 1000 > 0 ? a->cfg.deadline_ms / 1000 : 1);
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                             EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                             EVHTTP_REQ_OPTIONS);
  evhttp_set_bevcb(http, on_bev, a);
  evhttp_set_gencb(http, on_request, a);
  evhttp_foreach_bound_socket(http, add_listener, a);
  *out = a;
  return RV_OK;
}

void rv_api_quiesce(rv_api *a){
  if (a == NULL || a->stopping) return;
  a->stopping = true;
  listeners_pause(a, true);
  flush_parked(a);
}

void rv_api_free(rv_api *a){
  rv_req *r, *next;
  if (a == NULL) return;
  rv_engine_on_durable(a->e, NULL, NULL);
  flush_parked(a);                   /* committed: make it durable, then answer */
  for (r = a->head; r; r = next) {
    next = r->next;
    if (r->conn) r->conn->pending--;
    rv__problem(r, 503, "the server is stopping");
    send_reply(a, r);
    req_free(r);
  }
  a->head = a->tail = NULL;
  while (a->conns) {
    rv_conn *c = a->conns;
    if (c->evcon) evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    if (c->bev) bufferevent_decref(c->bev);
    conn_free(c);
  }
  evhttp_set_bevcb(a->http, NULL, NULL);
  evhttp_set_gencb(a->http, NULL, NULL);
  event_free(a->flush_ev);
  rv__qcache_free(a);
  rv__rl_free(a->rl_addr);
  rv__rl_free(a->rl_principal);
  rv__rl_free(a->rl_authfail);
  rv_free(a->lat);
  rv_free(a->applicant_starts);
  rv_free(a->organisation_starts);
  rv_free(a->console_dir);
  sodium_memzero(a->pepper, sizeof a->pepper);
  rv_free(a);
}
