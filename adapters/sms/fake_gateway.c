/*
** adapters/sms/fake_gateway.c -- `ravand-fake-sms`, a fake SMS gateway for
** tests and demos. Listens on 127.0.0.1 only (evhttp).
**
**   ravand-fake-sms [--port N] [--port-file PATH] [--api-key KEY]
**                   [--api-key-header NAME] [--delay MS] [--fail N]
**                   [--fail-status CODE] [--drop N] [--reject N] [--no-dedupe]
**                   [--tls-cert FILE --tls-key FILE]
**
** With --tls-cert and --tls-key (PEM; the cert file may hold the chain) it
** serves https instead of http (TLS 1.2+, no client certificates).
**
**   POST /send      {"to","text","ref"[,"sender"]} -> 200 {"id","duplicate"}
**   GET  /messages  what was delivered, and counters (JSON)
**   POST /control   change the modes: {"delay_ms","fail","fail_status","drop",
**                   "reject","dedupe"} (any subset) -> the current modes
**   POST /reset     forget messages and counters (modes stay)
**
** A /send request goes through, in order:
**   1. API key check (when --api-key is set)             -> 401
**   2. body check (JSON object with to, text, ref)       -> 400
**   3. fail:   the next N requests get fail_status (500) and are NOT delivered
**   4. reject: the next N requests get 400 and are NOT delivered
**   5. accept: delivered, unless dedupe is on and ref was seen: then the
**      earlier message's id is answered with "duplicate": true
**   6. drop:   the next N accepted requests are answered by closing the
**      connection without a reply (accepted, then dropped)
**   7. delay:  the reply is sent after delay_ms (the message is already
**      delivered at step 5: "slow" is slow to answer, not slow to deliver)
** Port 0 (the default) takes a free port; the port is printed on stdout
** ("listening 127.0.0.1:PORT") and written to --port-file.
*/
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>

typedef struct msg {
  char *id, *to, *text, *ref, *sender;
  int   count;                  /* requests carrying this ref that were accepted */
} msg;

typedef struct pending {        /* a delayed reply */
  struct pending        *next;
  struct evhttp_request *req;
  struct event          *ev;
  char                  *body;
} pending;

static struct {
  int  delay_ms, fail, fail_status, drop, reject;
  bool dedupe;
  const char *api_key, *api_key_header;
} mode = { 0, 0, 500, 0, 0, true, NULL, "X-API-Key" };

static struct {
  long requests, delivered, accepted, duplicates, failed, rejected, dropped, unauthorized, bad;
} count;

static msg *msgs;
static int n_msgs, cap_msgs;
static long next_id = 1;
static pending *pendings;
static struct event_base *base;

static char *dup_str(const char *s){
  size_t n = strlen(s ? s : "") + 1;
  char *d = malloc(n);
  if (d == NULL) abort();
  memcpy(d, s ? s : "", n);
  return d;
}

static void reset_all(void){
  for (int i = 0; i < n_msgs; i++) {
    free(msgs[i].id); free(msgs[i].to); free(msgs[i].text); free(msgs[i].ref); free(msgs[i].sender);
  }
  free(msgs);
  msgs = NULL; n_msgs = cap_msgs = 0;
  memset(&count, 0, sizeof count);
  next_id = 1;
}

static void reply(struct evhttp_request *req, int code, const char *reason, cJSON *body){
  struct evbuffer *b = evbuffer_new();
  char *text = cJSON_PrintUnformatted(body);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
  evbuffer_add_printf(b, "%s\n", text);
  evhttp_send_reply(req, code, reason, b);
  evbuffer_free(b);
  cJSON_free(text);
  cJSON_Delete(body);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *why){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", why);
  reply(req, code, reason, o);
}

static cJSON *read_json(struct evhttp_request *req){
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(in);
  char *s;
  cJSON *j;
  if (n > (1u << 20)) return NULL;
  s = malloc(n + 1);
  if (s == NULL) abort();
  evbuffer_copyout(in, s, n);
  s[n] = 0;
  j = cJSON_Parse(s);
  free(s);
  return j;
}

static const char *jstr(const cJSON *o, const char *k){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*--- drop and delay ---------------------------------------------------------------*/

/* Close the connection without a word. Deferred by one loop turn: libevent
** still holds the connection while our request callback runs. */
static void drop_cb(evutil_socket_t fd, short what, void *arg){
  (void)fd; (void)what;
  evhttp_connection_free(arg);
}

static void delayed_cb(evutil_socket_t fd, short what, void *arg){
  pending *p = arg, **pp;
  struct evbuffer *b = evbuffer_new();
  (void)fd; (void)what;
  for (pp = &pendings; *pp; pp = &(*pp)->next) if (*pp == p) { *pp = p->next; break; }
  evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type", "application/json");
  evbuffer_add_printf(b, "%s\n", p->body);
  evhttp_send_reply(p->req, 200, "OK", b);   /* frees the request if the client left */
  evbuffer_free(b);
  event_free(p->ev);
  free(p->body);
  free(p);
}

/*--- handlers ---------------------------------------------------------------------*/

static void on_send(struct evhttp_request *req){
  struct evkeyvalq *h = evhttp_request_get_input_headers(req);
  cJSON *in, *out;
  const char *to, *text, *ref;
  msg *m = NULL;
  bool dup = false;

  count.requests++;
  if (mode.api_key) {
    const char *k = evhttp_find_header(h, mode.api_key_header);
    if (k == NULL || strcmp(k, mode.api_key) != 0) {
      count.unauthorized++;
      reply_error(req, 401, "Unauthorized", "missing or wrong API key");
      return;
    }
  }
  in = read_json(req);
  to = jstr(in, "to"); text = jstr(in, "text"); ref = jstr(in, "ref");
  if (!cJSON_IsObject(in) || to == NULL || !*to || text == NULL || !*text || ref == NULL || !*ref) {
    count.bad++;
    cJSON_Delete(in);
    reply_error(req, 400, "Bad Request", "body must be a JSON object with to, text and ref");
    return;
  }
  if (mode.fail > 0) {
    mode.fail--;
    count.failed++;
    cJSON_Delete(in);
    reply_error(req, mode.fail_status, "Simulated Failure", "simulated gateway failure");
    return;
  }
  if (mode.reject > 0) {
    mode.reject--;
    count.rejected++;
    cJSON_Delete(in);
    reply_error(req, 400, "Bad Request", "simulated rejection: invalid recipient");
    return;
  }
  count.accepted++;
  if (mode.dedupe)
    for (int i = 0; i < n_msgs && m == NULL; i++) if (strcmp(msgs[i].ref, ref) == 0) m = &msgs[i];
  if (m) { dup = true; m->count++; count.duplicates++; }
  else {
    char id[32];
    if (n_msgs == cap_msgs) {
      cap_msgs = cap_msgs ? cap_msgs * 2 : 64;
      msgs = realloc(msgs, sizeof *msgs * (size_t)cap_msgs);
      if (msgs == NULL) abort();
    }
    snprintf(id, sizeof id, "m%ld", next_id++);
    m = &msgs[n_msgs++];
    m->id = dup_str(id); m->to = dup_str(to); m->text = dup_str(text); m->ref = dup_str(ref);
    m->sender = dup_str(jstr(in, "sender")); m->count = 1;
    count.delivered++;
  }
  cJSON_Delete(in);
  if (mode.drop > 0) {
    struct timeval tv = {0, 0};
    mode.drop--;
    count.dropped++;
    event_base_once(base, -1, EV_TIMEOUT, drop_cb, evhttp_request_get_connection(req), &tv);
    return;
  }
  out = cJSON_CreateObject();
  cJSON_AddStringToObject(out, "id", m->id);
  cJSON_AddBoolToObject(out, "duplicate", dup);
  if (mode.delay_ms > 0) {
    pending *p = calloc(1, sizeof *p);
    struct timeval tv = { mode.delay_ms / 1000, (mode.delay_ms % 1000) * 1000 };
    if (p == NULL) abort();
    p->req = req;
    p->body = cJSON_PrintUnformatted(out);
    p->ev = evtimer_new(base, delayed_cb, p);
    p->next = pendings;
    pendings = p;
    evtimer_add(p->ev, &tv);
    cJSON_Delete(out);
    return;
  }
  reply(req, 200, "OK", out);
}

static cJSON *status_json(bool with_messages){
  cJSON *o = cJSON_CreateObject(), *a, *md = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "delivered", (double)count.delivered);
  cJSON_AddNumberToObject(o, "accepted", (double)count.accepted);
  cJSON_AddNumberToObject(o, "requests", (double)count.requests);
  cJSON_AddNumberToObject(o, "duplicates", (double)count.duplicates);
  cJSON_AddNumberToObject(o, "failed", (double)count.failed);
  cJSON_AddNumberToObject(o, "rejected", (double)count.rejected);
  cJSON_AddNumberToObject(o, "dropped", (double)count.dropped);
  cJSON_AddNumberToObject(o, "unauthorized", (double)count.unauthorized);
  cJSON_AddNumberToObject(o, "bad", (double)count.bad);
  cJSON_AddNumberToObject(md, "delay_ms", mode.delay_ms);
  cJSON_AddNumberToObject(md, "fail", mode.fail);
  cJSON_AddNumberToObject(md, "fail_status", mode.fail_status);
  cJSON_AddNumberToObject(md, "drop", mode.drop);
  cJSON_AddNumberToObject(md, "reject", mode.reject);
  cJSON_AddBoolToObject(md, "dedupe", mode.dedupe);
  cJSON_AddItemToObject(o, "modes", md);
  if (!with_messages) return o;
  a = cJSON_AddArrayToObject(o, "messages");
  for (int i = 0; i < n_msgs; i++) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", msgs[i].id);
    cJSON_AddStringToObject(m, "to", msgs[i].to);
    cJSON_AddStringToObject(m, "text", msgs[i].text);
    cJSON_AddStringToObject(m, "ref", msgs[i].ref);
    cJSON_AddStringToObject(m, "sender", msgs[i].sender);
    cJSON_AddNumberToObject(m, "count", msgs[i].count);
    cJSON_AddItemToArray(a, m);
  }
  return o;
}

static bool set_int(const cJSON *o, const char *k, int *dst, int lo, int hi){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (v == NULL) return true;
  if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi) return false;
  *dst = (int)v->valuedouble;
  return true;
}

static void on_control(struct evhttp_request *req){
  cJSON *in = read_json(req);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(in, "dedupe");
  if (!cJSON_IsObject(in) ||
      !set_int(in, "delay_ms", &mode.delay_ms, 0, 600000) ||
      !set_int(in, "fail", &mode.fail, 0, 1000000) ||
      !set_int(in, "fail_status", &mode.fail_status, 400, 599) ||
      !set_int(in, "drop", &mode.drop, 0, 1000000) ||
      !set_int(in, "reject", &mode.reject, 0, 1000000) ||
      (d && !cJSON_IsBool(d))) {
    cJSON_Delete(in);
    reply_error(req, 400, "Bad Request", "control: delay_ms, fail, fail_status, drop, reject (numbers), dedupe (bool)");
    return;
  }
  if (d) mode.dedupe = cJSON_IsTrue(d);
  cJSON_Delete(in);
  reply(req, 200, "OK", status_json(false));
}

static void on_request(struct evhttp_request *req, void *arg){
  const char *uri = evhttp_request_get_uri(req);
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  (void)arg;
  if (strcmp(uri, "/send") == 0 && cmd == EVHTTP_REQ_POST) on_send(req);
  else if (strcmp(uri, "/messages") == 0 && cmd == EVHTTP_REQ_GET) reply(req, 200, "OK", status_json(true));
  else if (strcmp(uri, "/control") == 0 && cmd == EVHTTP_REQ_POST) on_control(req);
  else if (strcmp(uri, "/reset") == 0 && cmd == EVHTTP_REQ_POST) {
    reset_all();
    reply(req, 200, "OK", status_json(false));
  } else reply_error(req, 404, "Not Found", "no such resource");
}

static void on_signal(evutil_socket_t fd, short what, void *arg){
  (void)fd; (void)what; (void)arg;
  event_base_loopexit(base, NULL);
}

static int usage(void){
  fprintf(stderr, "usage: ravand-fake-sms [--port N] [--port-file PATH] [--api-key KEY]\n"
                  "         [--api-key-header NAME] [--delay MS] [--fail N] [--fail-status CODE]\n"
                  "         [--drop N] [--reject N] [--no-dedupe] [--tls-cert FILE --tls-key FILE]\n");
  return 2;
}

/*--- https ------------------------------------------------------------------------*/

/* Each accepted connection gets its own SSL, freed with its bufferevent. */
static struct bufferevent *tls_bevcb(struct event_base *b, void *arg){
  SSL *ssl = SSL_new(arg);
  struct bufferevent *bev;
  if (ssl == NULL) return NULL;
  bev = bufferevent_openssl_socket_new(b, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (bev == NULL) SSL_free(ssl);
  return bev;
}

static SSL_CTX *tls_ctx(const char *cert, const char *key){
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    char why[256];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    fprintf(stderr, "ravand-fake-sms: TLS certificate %s / key %s: %s\n", cert, key, why);
    if (ctx) SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

int main(int argc, char **argv){
  int port = 0;
  const char *port_file = NULL, *tls_cert = NULL, *tls_key = NULL;
  SSL_CTX *ctx = NULL;
  struct evhttp *http;
  struct evhttp_bound_socket *sock;
  struct event *sint, *sterm;

  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(o, "--no-dedupe") == 0) { mode.dedupe = false; continue; }
    if (v == NULL) return usage();
    i++;
    if (strcmp(o, "--port") == 0) port = atoi(v);
    else if (strcmp(o, "--port-file") == 0) port_file = v;
    else if (strcmp(o, "--api-key") == 0) mode.api_key = v;
    else if (strcmp(o, "--api-key-header") == 0) mode.api_key_header = v;
    else if (strcmp(o, "--delay") == 0) mode.delay_ms = atoi(v);
    else if (strcmp(o, "--fail") == 0) mode.fail = atoi(v);
    else if (strcmp(o, "--fail-status") == 0) mode.fail_status = atoi(v);
    else if (strcmp(o, "--drop") == 0) mode.drop = atoi(v);
    else if (strcmp(o, "--reject") == 0) mode.reject = atoi(v);
    else if (strcmp(o, "--tls-cert") == 0) tls_cert = v;
    else if (strcmp(o, "--tls-key") == 0) tls_key = v;
    else return usage();
  }
  if (port < 0 || port > 65535 || mode.fail_status < 400 || mode.fail_status > 599 ||
      (tls_cert == NULL) != (tls_key == NULL)) return usage();
  if (tls_cert && (ctx = tls_ctx(tls_cert, tls_key)) == NULL) return 1;
  signal(SIGPIPE, SIG_IGN);
  base = event_base_new();
  http = evhttp_new(base);
  if (ctx) evhttp_set_bevcb(http, tls_bevcb, ctx);
  evhttp_set_max_body_size(http, 1 << 20);
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
  evhttp_set_gencb(http, on_request, NULL);
  sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);   /* loopback only */
  if (sock == NULL) {
    fprintf(stderr, "ravand-fake-sms: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    evhttp_free(http);
    event_base_free(base);
    if (ctx) SSL_CTX_free(ctx);
    return 1;
  }
  {
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof ss;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  if (port_file) {
    char tmp[4096];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
      fprintf(stderr, "ravand-fake-sms: cannot write %s\n", port_file);
      return 1;
    }
  }
  printf("listening 127.0.0.1:%d\n", port);
  fflush(stdout);
  sint = evsignal_new(base, SIGINT, on_signal, NULL);
  sterm = evsignal_new(base, SIGTERM, on_signal, NULL);
  event_add(sint, NULL);
  event_add(sterm, NULL);
  event_base_dispatch(base);
  while (pendings) {             /* answer what is still delayed, then close */
    pending *p = pendings;
    pendings = p->next;
    event_free(p->ev);
    reply_error(p->req, 503, "Service Unavailable", "gateway stopping");
    free(p->body);
    free(p);
  }
  event_free(sint);
  event_free(sterm);
  evhttp_free(http);
  event_base_free(base);
  if (ctx) SSL_CTX_free(ctx);
  reset_all();
  return 0;
}
