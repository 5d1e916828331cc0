/*
** adapters/sms/sms.c -- the `sms` adapter: an asynchronous HTTP client
** for an SMS gateway, on the engine's libevent loop (evhttp).
**
** One connection per message ("Connection: close"): SMS volume is low and
** a fresh connection per attempt keeps retries independent. The
** connection's timeout (connect, read and write inactivity) is the
** configured timeout_ms.
**
** Call life cycle (struct call, kept on the `calls` list):
**     invoke        evhttp_make_request          -> IN FLIGHT
**     on_response   done() once, free_ev armed   -> FINISHED
**     free_cb       evhttp_connection_free, unlink, free
**     rv_sms_stop   in flight: done(FAILED "shutting down"); all: freed
** The connection is never freed inside on_response: libevent still uses
** it after the request callback returns, so the free waits one loop turn.
**
** How libevent 2.1 reports failures (checked against 2.1.12):
**   connect refused or timed out  -> callback with a request whose code is 0
**   the peer closed or timed out after the request was written
**                                 -> callback with NULL (error_cb first)
** The first never reached the gateway ("unreachable"); the second may
** have been accepted ("uncertain").
*/
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "sms/sms.h"
#include "core/json.h"
#include "core/mem.h"

typedef struct sms_cfg {
  char *url, *host, *path, *host_header;
  int   port;
  char *api_key, *api_key_header, *sender;
  int   timeout_ms;
} sms_cfg;

typedef struct call {
  struct call              *prev, *next;
  struct evhttp_connection *evcon;
  struct event             *free_ev;
  rv_adapter_done_fn        done;
  void                     *arg;
  int                       http_err;     /* enum evhttp_request_error, or -1 */
  bool                      finished;     /* done() has run */
} call;

static rv_status sms_invoke(void *self, struct event_base *base, const rv_job_info *job,
                            rv_adapter_done_fn done, void *arg);
static const rv_adapter_ops sms_ops = { .name = "sms", .invoke = sms_invoke, .self = NULL };

static sms_cfg cfg;
static bool configured;
static call *calls;
static struct { struct event_base *base; struct evdns_base *dns; } dns;

/*--- Configuration -----------------------------------------------------------*/

static void cfg_free(void){
  rv_free(cfg.url); rv_free(cfg.host); rv_free(cfg.path); rv_free(cfg.host_header);
  rv_free(cfg.api_key); rv_free(cfg.api_key_header); rv_free(cfg.sender);
  memset(&cfg, 0, sizeof cfg);
}

/* Environment first, then the config file, then the default. */
static char *setting(const cJSON *sec, const char *key, const char *env, const char *dflt){
  const char *v = getenv(env);
  if (v == NULL || !*v) v = rv_json_str(sec, key);
  if (v == NULL) v = dflt;
  return rv_strdup(v);
}

static bool header_safe(const char *s){
  for (; s && *s; s++) if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
  return true;
}

rv_status rv_sms_configure(const cJSON *sec, rv_err *err){
  struct evhttp_uri *u;
  char *timeout;
  const char *scheme, *host, *path, *query;
  rv_status rc = RV_OK;

  rv_sms_stop();
  cfg.url = setting(sec, "url", "RAVAND_SMS_URL", NULL);
  if (cfg.url == NULL || !*cfg.url) { cfg_free(); return RV_OK; }   /* not configured */
  cfg.api_key = setting(sec, "api_key", "RAVAND_SMS_API_KEY", NULL);
  cfg.api_key_header = setting(sec, "api_key_header", "RAVAND_SMS_API_KEY_HEADER", "X-API-Key");
  cfg.sender = setting(sec, "sender", "RAVAND_SMS_SENDER", NULL);
  timeout = getenv("RAVAND_SMS_TIMEOUT_MS");
  cfg.timeout_ms = timeout && *timeout ? atoi(timeout)
                 : (int)rv_json_int(sec, "timeout_ms", 10000);
  if (cfg.timeout_ms <= 0 || cfg.timeout_ms > 600000)
    rc = rv_fail(err, RV_INVALID, "sms: timeout_ms must be 1..600000");
  if (rc == RV_OK && (!header_safe(cfg.api_key) || !header_safe(cfg.api_key_header) ||
                      !header_safe(cfg.sender)))
    rc = rv_fail(err, RV_INVALID, "sms: api_key, api_key_header and sender must not contain control characters");
  if (rc != RV_OK) { cfg_free(); return rc; }

  u = evhttp_uri_parse(cfg.url);
  scheme = u ? evhttp_uri_get_scheme(u) : NULL;
  host = u ? evhttp_uri_get_host(u) : NULL;
  if (u == NULL || scheme == NULL || host == NULL || !*host)
    rc = rv_fail(err, RV_INVALID, "sms: url '%s' is not an http:// URL", cfg.url);
  else if (strcmp(scheme, "http") != 0)
    rc = rv_fail(err, RV_INVALID, "sms: url scheme '%s' is not supported (http only; "
                 "put a TLS proxy in front for https)", scheme);
  if (rc == RV_OK) {
    path = evhttp_uri_get_path(u);
    query = evhttp_uri_get_query(u);
    cfg.host = rv_strdup(host);
    cfg.port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    cfg.path = rv_asprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "", query ? query : "");
    cfg.host_header = cfg.port == 80 ? rv_strdup(host) : rv_asprintf("%s:%d", host, cfg.port);
  }
  if (u) evhttp_uri_free(u);
  if (rc != RV_OK) { cfg_free(); return rc; }
  configured = true;
  rv_adapter_register(&sms_ops);      /* found before the built-in recorder */
  return RV_OK;
}

int rv_sms_configured(void){ return configured; }

/*--- Calls ----------------------------------------------------------------------*/

static void unlink_call(call *c){
  if (c->prev) c->prev->next = c->next; else calls = c->next;
  if (c->next) c->next->prev = c->prev;
}

static void call_free(call *c){
  unlink_call(c);
  if (c->evcon) evhttp_connection_free(c->evcon);
  if (c->free_ev) event_free(c->free_ev);
  rv_free(c);
}

static void free_cb(evutil_socket_t fd, short what, void *arg){
  (void)fd; (void)what;
  call_free(arg);
}

/* Deliver the answer once and arrange for the call to be freed next turn. */
static void finish(call *c, rv_job_outcome o, cJSON *result, const char *code, const char *msg){
  struct timeval tv = {0, 0};
  if (c->finished) { cJSON_Delete(result); return; }
  c->finished = true;
  c->done(c->arg, o, result, code, msg);
  evtimer_add(c->free_ev, &tv);
}

static void on_error(enum evhttp_request_error e, void *arg){
  ((call *)arg)->http_err = (int)e;
}

static const char *err_name(int e){
  switch (e) {
  case EVREQ_HTTP_TIMEOUT:        return "timeout";
  case EVREQ_HTTP_EOF:            return "connection closed";
  case EVREQ_HTTP_INVALID_HEADER: return "invalid response header";
  case EVREQ_HTTP_BUFFER_ERROR:   return "buffer error";
  case EVREQ_HTTP_DATA_TOO_LONG:  return "response too long";
  default:                        return "request failed";
  }
}

/* The response body (at most 4 KiB), NUL-terminated. Caller frees. */
static char *body_text(struct evhttp_request *req){
  struct evbuffer *b = evhttp_request_get_input_buffer(req);
  size_t n = b ? evbuffer_get_length(b) : 0;
  char *s;
  if (n > 4096) n = 4096;
  s = rv_malloc(n + 1);
  if (n) evbuffer_copyout(b, s, n);
  s[n] = 0;
  return s;
}

/* One printable line out of the gateway's answer, for last_error. */
static void reason(const char *body, char *out, size_t n){
  cJSON *j = rv_json_parse(body);
  const char *r = rv_json_str(j, "error");
  size_t k = 0;
  if (r == NULL) r = rv_json_str(j, "message");
  if (r == NULL) r = body;
  for (; *r && k + 1 < n; r++) out[k++] = ((unsigned char)*r < 0x20) ? ' ' : *r;
  out[k] = 0;
  cJSON_Delete(j);
}

static void on_response(struct evhttp_request *req, void *arg){
  call *c = arg;
  int status = req ? evhttp_request_get_response_code(req) : 0;
  char msg[400], why[256];

  if (req == NULL) {
    snprintf(msg, sizeof msg, "sms gateway: %s after the request was sent; delivery unknown",
             err_name(c->http_err));
    finish(c, RV_JOB_FAILED, NULL, "uncertain", msg);
    return;
  }
  if (status == 0) {
    snprintf(msg, sizeof msg, "sms gateway %s:%d unreachable (connection refused or timed out)",
             cfg.host ? cfg.host : "?", cfg.port);
    finish(c, RV_JOB_FAILED, NULL, "unreachable", msg);
    return;
  }
  {
    char *body = body_text(req);
    if (status >= 200 && status < 300) {
      cJSON *j = rv_json_parse(body), *res = cJSON_CreateObject();
      const char *id = rv_json_str(j, "id");
      if (id == NULL) id = rv_json_str(j, "message_id");
      if (id) cJSON_AddStringToObject(res, "gateway_id", id);
      cJSON_AddNumberToObject(res, "http_status", status);
      cJSON_AddBoolToObject(res, "duplicate", rv_json_bool(j, "duplicate", false));
      cJSON_Delete(j);
      finish(c, RV_JOB_OK, res, NULL, NULL);
    } else {
      bool transient = status >= 500 || status == 429 || status == 408;
      reason(body, why, sizeof why);
      snprintf(msg, sizeof msg, "sms gateway answered HTTP %d%s%s", status, *why ? ": " : "", why);
      finish(c, RV_JOB_FAILED, NULL, transient ? "http_5xx" : "rejected", msg);
    }
    rv_free(body);
  }
}

/* A failure found before any I/O, answered on the next loop turn. */
struct later { rv_adapter_done_fn done; void *arg; const char *code, *msg; };

static void later_cb(evutil_socket_t fd, short what, void *p){
  struct later *l = p;
  (void)fd; (void)what;
  l->done(l->arg, RV_JOB_FAILED, NULL, l->code, l->msg);
  rv_free(l);
}

static rv_status answer_later(struct event_base *base, rv_adapter_done_fn done, void *arg,
                              const char *code, const char *msg){
  struct later *l = rv_malloc(sizeof *l);
  struct timeval tv = {0, 0};
  l->done = done; l->arg = arg; l->code = code; l->msg = msg;   /* static strings */
  if (event_base_once(base, -1, EV_TIMEOUT, later_cb, l, &tv) != 0) { rv_free(l); return RV_IO; }
  return RV_OK;
}

static struct evdns_base *dns_for(struct event_base *base){
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, cfg.host, &a4) == 1 || inet_pton(AF_INET6, cfg.host, &a6) == 1)
    return NULL;                        /* numeric: no resolver needed */
  if (dns.base != base) {
    if (dns.dns) evdns_base_free(dns.dns, 0);
    dns.base = base;
    dns.dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  }
  return dns.dns;
}

static rv_status sms_invoke(void *self, struct event_base *base, const rv_job_info *job,
                            rv_adapter_done_fn done, void *arg){
  const char *to = rv_json_str(job->input, "to"), *text = rv_json_str(job->input, "text");
  struct evhttp_request *req;
  struct evkeyvalq *h;
  struct timeval tv;
  cJSON *body;
  char *payload;
  call *c;
  (void)self;

  if (!configured) return RV_INVALID;
  if (to == NULL || !*to || text == NULL || !*text)
    return answer_later(base, done, arg, "rejected",
                        to == NULL || !*to ? "sms: no recipient (the instance has no `mobile` variable)"
                                           : "sms: empty text");
  c = rv_calloc(1, sizeof *c);
  c->done = done;
  c->arg = arg;
  c->http_err = -1;
  c->free_ev = evtimer_new(base, free_cb, c);
  c->next = calls;
  if (calls) calls->prev = c;
  calls = c;
  c->evcon = evhttp_connection_base_new(base, dns_for(base), cfg.host, (unsigned short)cfg.port);
  if (c->evcon == NULL || c->free_ev == NULL) { call_free(c); return RV_IO; }
  tv.tv_sec = cfg.timeout_ms / 1000;
  tv.tv_usec = (cfg.timeout_ms % 1000) * 1000;
  evhttp_connection_set_timeout_tv(c->evcon, &tv);
  evhttp_connection_set_retries(c->evcon, 0);

  req = evhttp_request_new(on_response, c);
  evhttp_request_set_error_cb(req, on_error);
  h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Host", cfg.host_header);
  evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
  evhttp_add_header(h, "Accept", "application/json");
  evhttp_add_header(h, "Connection", "close");
  evhttp_add_header(h, "Idempotency-Key", job->key);
  if (cfg.api_key && *cfg.api_key) evhttp_add_header(h, cfg.api_key_header, cfg.api_key);

  body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "to", to);
  cJSON_AddStringToObject(body, "text", text);
  cJSON_AddStringToObject(body, "ref", job->key);
  if (cfg.sender) cJSON_AddStringToObject(body, "sender", cfg.sender);
  payload = rv_json_print(body);
  evbuffer_add(evhttp_request_get_output_buffer(req), payload, strlen(payload));
  cJSON_free(payload);
  cJSON_Delete(body);

  if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, cfg.path) != 0) {
    /* libevent took the request off the connection without calling back
    ** (a socket could not be created); the attempt fails now. */
    if (!c->finished) { c->finished = true; call_free(c); return RV_IO; }
  }
  return RV_OK;
}

/*--- Stop -----------------------------------------------------------------------*/

void rv_sms_stop(void){
  while (calls) {
    call *c = calls;
    if (!c->finished) {
      c->finished = true;
      /* The connection goes first, so libevent never calls back. */
      evhttp_connection_free(c->evcon);
      c->evcon = NULL;
      c->done(c->arg, RV_JOB_FAILED, NULL, "uncertain", "sms: engine shutting down");
    }
    call_free(c);
  }
  if (dns.dns) evdns_base_free(dns.dns, 0);
  dns.dns = NULL; dns.base = NULL;
  if (configured) rv_adapter_unregister(&sms_ops);
  configured = false;
  cfg_free();
}

