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
**   the TLS handshake failed      -> callback with NULL (error_cb first)
** The first never reached the gateway ("unreachable"); the second may
** have been accepted ("uncertain"); the third never sent the request
** ("tls"), told apart from the second by whether the handshake finished.
**
** https:// (OpenSSL through bufferevent_openssl): TLS 1.2 or later, the
** server's certificate is always verified -- against sms.ca_file when set,
** else the system's CA store -- and so is the host name (SSL_set1_host, or
** the IP address for a numeric host); SNI is sent for host names. There is
** no way to turn verification off. The SSL_CTX lives from configure to
** stop; each connection has its own SSL, freed with its bufferevent. The
** first verification error is caught in a verify callback, because
** libevent clears the SSL (SSL_clear) before it calls back.
*/
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
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
  bool  tls;                              /* https:// */
  bool  numeric_host;                     /* an IPv4/IPv6 literal */
  char *ca_file;
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
  bool                      tls_up;       /* https: the handshake finished */
  int                       verify_err;   /* https: first X509_V_ERR_*, or 0 */
  int                       verify_depth; /* and the certificate's depth */
  unsigned long             ssl_err;      /* https: an OpenSSL error, or 0 */
} call;

static rv_status sms_invoke(void *self, struct event_base *base, const rv_job_info *job,
                            rv_adapter_done_fn done, void *arg);
static const rv_adapter_ops sms_ops = { .name = "sms", .invoke = sms_invoke, .self = NULL };

static sms_cfg cfg;
static bool configured;
static call *calls;
static struct { struct event_base *base; struct evdns_base *dns; } dns;
static SSL_CTX *ssl_ctx;                 /* https only; from configure to stop */
static int call_idx = -1;                /* SSL ex_data slot: the call */

/*--- Configuration -----------------------------------------------------------*/

static void cfg_free(void){
  rv_free(cfg.url); rv_free(cfg.host); rv_free(cfg.path); rv_free(cfg.host_header);
  rv_free(cfg.ca_file);
  if (ssl_ctx) SSL_CTX_free(ssl_ctx);
  ssl_ctx = NULL;
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

static bool is_numeric(const char *host){
  struct in_addr a4;
  struct in6_addr a6;
  return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

/* An OpenSSL error code as one line of text. */
static void ssl_err_text(unsigned long e, char *out, size_t n){
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r) snprintf(out, n, "%s", r);
  else if (e) ERR_error_string_n(e, out, n);
  else snprintf(out, n, "handshake failed");
}

/* The client context: TLS 1.2+, peer verification on, trust from ca_file
** or the system store. */
static rv_status tls_setup(rv_err *err){
  char why[256];
  ERR_clear_error();
  if (call_idx < 0) call_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (ssl_ctx == NULL || call_idx < 0 ||
      SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
    ssl_err_text(ERR_get_error(), why, sizeof why);
    ERR_clear_error();
    return rv_fail(err, RV_IO, "sms: cannot set up TLS: %s", why);
  }
  SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
  if (cfg.ca_file && *cfg.ca_file) {
    if (SSL_CTX_load_verify_locations(ssl_ctx, cfg.ca_file, NULL) != 1) {
      ssl_err_text(ERR_get_error(), why, sizeof why);
      ERR_clear_error();
      return rv_fail(err, RV_INVALID, "sms: ca_file '%s' cannot be loaded: %s", cfg.ca_file, why);
    }
  } else if (SSL_CTX_set_default_verify_paths(ssl_ctx) != 1) {
    ssl_err_text(ERR_get_error(), why, sizeof why);
    ERR_clear_error();
    return rv_fail(err, RV_IO, "sms: cannot load the system CA store: %s", why);
  }
  ERR_clear_error();
  return RV_OK;
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
  cfg.ca_file = setting(sec, "ca_file", "RAVAND_SMS_CA_FILE", NULL);
  timeout = getenv("RAVAND_SMS_TIMEOUT_MS");
  cfg.timeout_ms = timeout && *timeout ? atoi(timeout)
                 : (int)rv_json_int(sec, "timeout_ms", 10000);
  if (cfg.timeout_ms <= 0 || cfg.timeout_ms > 600000)
    rc = rv_fail(err, RV_INVALID, "sms: timeout_ms must be 1..600000");
  if (rc == RV_OK && (!header_safe(cfg.api_key) || !header_safe(cfg.api_key_header) ||
                      !header_safe(cfg.sender)))
    rc = rv_fail(err, RV_INVALID, "sms: api_key, api_key_header and sender must not contain control characters");
  if (rc == RV_OK && cJSON_GetObjectItemCaseSensitive(sec, "insecure_skip_verify"))
    rc = rv_fail(err, RV_INVALID, "sms: insecure_skip_verify is not supported: the gateway's "
                 "certificate is always verified (use ca_file to trust a private CA)");
  if (rc != RV_OK) { cfg_free(); return rc; }

  u = evhttp_uri_parse(cfg.url);
  scheme = u ? evhttp_uri_get_scheme(u) : NULL;
  host = u ? evhttp_uri_get_host(u) : NULL;
  if (u == NULL || scheme == NULL || host == NULL || !*host)
    rc = rv_fail(err, RV_INVALID, "sms: url '%s' is not an http:// or https:// URL", cfg.url);
  else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
    rc = rv_fail(err, RV_INVALID, "sms: url scheme '%s' is not supported (http or https)", scheme);
  if (rc == RV_OK) {
    int dflt;
    path = evhttp_uri_get_path(u);
    query = evhttp_uri_get_query(u);
    cfg.tls = strcmp(scheme, "https") == 0;
    dflt = cfg.tls ? 443 : 80;
    cfg.host = rv_strdup(host);
    cfg.numeric_host = is_numeric(host);
    cfg.port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : dflt;
    cfg.path = rv_asprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "", query ? query : "");
    cfg.host_header = cfg.port == dflt ? rv_strdup(host) : rv_asprintf("%s:%d", host, cfg.port);
  }
  if (u) evhttp_uri_free(u);
  if (rc == RV_OK && cfg.tls) rc = tls_setup(err);
  else if (rc == RV_OK && cfg.ca_file && *cfg.ca_file)
    rc = rv_fail(err, RV_INVALID, "sms: ca_file is set but url '%s' is not https://", cfg.url);
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

/* Free the connection (and, for https, its bufferevent and SSL). libevent
** may finish freeing the bufferevent a loop turn later: the SSL forgets c. */
static void evcon_free(call *c){
  if (c->evcon == NULL) return;
  if (cfg.tls) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (ssl) SSL_set_ex_data(ssl, call_idx, NULL);
  }
  evhttp_connection_free(c->evcon);
  c->evcon = NULL;
}

static void call_free(call *c){
  unlink_call(c);
  evcon_free(c);
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

/*--- TLS ------------------------------------------------------------------------*/

/* Remember the first verification error (libevent clears the SSL before
** it calls back, and with it SSL_get_verify_result). */
static int verify_cb(int ok, X509_STORE_CTX *x){
  SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
  call *c = ssl ? SSL_get_ex_data(ssl, call_idx) : NULL;
  if (!ok && c && c->verify_err == 0) {
    c->verify_err = X509_STORE_CTX_get_error(x);
    c->verify_depth = X509_STORE_CTX_get_error_depth(x);
  }
  return ok;
}

static void info_cb(const SSL *ssl, int where, int ret){
  call *c = SSL_get_ex_data(ssl, call_idx);
  (void)ret;
  if (c && (where & SSL_CB_HANDSHAKE_DONE)) c->tls_up = true;
}

/* The OpenSSL errors libevent kept for this connection (it keeps a few):
** remember one, empty the rest. */
static void take_ssl_errors(call *c){
  struct bufferevent *bev = c->evcon ? evhttp_connection_get_bufferevent(c->evcon) : NULL;
  unsigned long e;
  while (bev && (e = bufferevent_get_openssl_error(bev)) != 0)
    if (c->ssl_err == 0) c->ssl_err = e;
}

/* Why the handshake failed, one line. */
static void tls_reason(call *c, char *out, size_t n){
  char why[256];
  if (c->verify_err == X509_V_ERR_HOSTNAME_MISMATCH || c->verify_err == X509_V_ERR_IP_ADDRESS_MISMATCH)
    snprintf(out, n, "TLS: certificate verify failed: %s (the certificate is not for '%s')",
             X509_verify_cert_error_string(c->verify_err), cfg.host);
  else if (c->verify_err)
    snprintf(out, n, "TLS: certificate verify failed: %s (depth %d)",
             X509_verify_cert_error_string(c->verify_err), c->verify_depth);
  else {
    ssl_err_text(c->ssl_err, why, sizeof why);
    snprintf(out, n, "TLS: handshake with %s:%d failed: %s", cfg.host, cfg.port, why);
  }
}

/* A bufferevent that speaks TLS to cfg.host, not yet connected. */
static struct bufferevent *tls_bev(struct event_base *base, call *c){
  struct bufferevent *bev;
  SSL *ssl = SSL_new(ssl_ctx);
  if (ssl == NULL) return NULL;
  SSL_set_ex_data(ssl, call_idx, c);
  SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
  SSL_set_info_callback(ssl, info_cb);
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (cfg.numeric_host) {                 /* no SNI for an address (RFC 6066) */
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), cfg.host) != 1) { SSL_free(ssl); return NULL; }
  } else if (SSL_set_tlsext_host_name(ssl, cfg.host) != 1 || SSL_set1_host(ssl, cfg.host) != 1) {
    SSL_free(ssl);
    return NULL;
  }
  bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  if (bev == NULL) { SSL_free(ssl); ERR_clear_error(); return NULL; }
  /* Gateways often close without close_notify; the HTTP framing
  ** (Content-Length) still tells a whole answer from a cut one. */
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

/*--- Answers ----------------------------------------------------------------------*/

static void on_response(struct evhttp_request *req, void *arg){
  call *c = arg;
  int status = req ? evhttp_request_get_response_code(req) : 0;
  char msg[400], why[256];

  if (cfg.tls) take_ssl_errors(c);
  if (cfg.tls && !c->tls_up && (req == NULL || status == 0) &&
      (c->verify_err || c->ssl_err || req == NULL)) {
    /* The handshake did not finish: the request was never sent. */
    tls_reason(c, msg, sizeof msg);
    finish(c, RV_JOB_FAILED, NULL, "tls", msg);
    return;
  }
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
  if (cfg.numeric_host) return NULL;    /* numeric: no resolver needed */
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
  if (cfg.tls) {
    struct bufferevent *bev = c->free_ev ? tls_bev(base, c) : NULL;
    /* On success the connection owns bev (and bev the SSL). */
    c->evcon = bev ? evhttp_connection_base_bufferevent_new(base, dns_for(base), bev, cfg.host,
                                                             (unsigned short)cfg.port) : NULL;
    if (bev && c->evcon == NULL) bufferevent_free(bev);
  } else
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
  rv_free(payload);
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
      evcon_free(c);
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

