/*
** api/routes.c -- the routing table, and the steps every request takes:
** route, authenticate, authorize (role), body, handler, audit.
**
** The table is the function-level policy: `roles` lists who may call a
** route at all (others get 403). Object-level scope is the handlers'
** business (policy.c). A new resource is one row here and one handler.
*/
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include "api/api_int.h"
#include "core/mem.h"

#define GET  EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST

#define READERS_OF_INSTANCES (ROLE(APPLICANT) | ROLE(ORGANISATION) | ROLES_STAFF)
#define READERS_OF_TASKS     (ROLES_TASK_ACTORS | ROLE(OPERATOR))
#define ENGINE_PEOPLE        (ROLE(ANALYST) | ROLE(OPERATOR) | ROLE(IT_ADMIN))

void rv__h_bank_confirmations(rv_req *r);     /* adapters/bank/api.c */
void rv__h_inquiry_fetch(rv_req *r);          /* adapters/inquiry/api.c */

const rv_route rv__routes[] = {
  /* method  pattern                            action               roles                 flags */
  { GET,  "/healthz",                           "health",            0,                    RT_PUBLIC,         rv__h_health },
  { GET,  "/metrics",                           "metrics",           ROLE(OPERATOR) | ROLE(IT_ADMIN), 0,      rv__h_metrics },
  { GET,  "/v1/me",                             "me",                ROLES_ALL,            0,                 rv__h_me },
  { POST, "/v1/deployments",                    "definition.deploy", ROLE(ANALYST),        RT_WRITE | RT_BIG | RT_BODY, rv__h_deploy },
  { POST, "/v1/lint",                           "definition.lint",   ROLE(ANALYST),        RT_BIG | RT_BODY,  rv__h_lint },
  { GET,  "/v1/definitions",                    "definition.list",   ROLES_ALL,            0,                 rv__h_definitions },
  { GET,  "/v1/definitions/{name}/{id}/xml",    "definition.xml",    ENGINE_PEOPLE,        0,                 rv__h_definition_xml },
  { GET,  "/v1/definitions/{name}/{id}/waiting", "definition.waiting", ENGINE_PEOPLE,      0,                 rv__h_definition_waiting },
  { POST, "/v1/instances",                      "instance.start",    ROLE(APPLICANT) | ROLE(ORGANISATION) | ROLE(OPERATOR),
                                                                                           RT_WRITE | RT_BODY, rv__h_instance_start },
  { GET,  "/v1/instances",                      "instance.list",     READERS_OF_INSTANCES, RT_PII,            rv__h_instances },
  { GET,  "/v1/instances/{id}",                 "instance.get",      READERS_OF_INSTANCES, RT_PII,            rv__h_instance_get },
  { POST, "/v1/instances/{id}/cancel",          "instance.cancel",   ROLE(OPERATOR),       RT_WRITE | RT_BODY | RT_OPTBODY, rv__h_instance_cancel },
  { GET,  "/v1/tasks",                          "task.list",         READERS_OF_TASKS,     RT_PII,            rv__h_tasks },
  { GET,  "/v1/tasks/{id}",                     "task.get",          READERS_OF_TASKS,     RT_PII,            rv__h_task_get },
  { POST, "/v1/tasks/{id}/claim",               "task.claim",        ROLES_TASK_ACTORS,    RT_WRITE,          rv__h_task_claim },
  { POST, "/v1/tasks/{id}/unclaim",             "task.unclaim",      ROLES_TASK_ACTORS,    RT_WRITE,          rv__h_task_unclaim },
  { POST, "/v1/tasks/{id}/complete",            "task.complete",     ROLES_TASK_ACTORS,    RT_WRITE | RT_BODY | RT_OPTBODY, rv__h_task_complete },
  { POST, "/v1/tasks/{id}/transfer",            "task.transfer",     ROLE(BRANCH),         RT_WRITE | RT_BODY, rv__h_task_transfer },
  { GET,  "/v1/tasks/{id}/comments",            "task.comments",     READERS_OF_TASKS,     RT_PII,            rv__h_task_comments },
  { POST, "/v1/tasks/{id}/comments",            "task.comment",      ROLES_TASK_ACTORS,    RT_WRITE | RT_BODY, rv__h_task_comment_add },
  { GET,  "/v1/my/requests",                    "my.requests",       ROLE(APPLICANT),      0,                 rv__h_my_requests },
  { POST, "/v1/my/requests",                    "my.request.start",  ROLE(APPLICANT),      RT_WRITE | RT_BODY, rv__h_my_request_start },
  { GET,  "/v1/my/requests/{id}",               "my.request",        ROLE(APPLICANT),      0,                 rv__h_my_request },
  /* the portal's document store (documents.c): upload, and read by owner or by the staff of its case */
  { POST, "/v1/documents",                      "document.upload",   ROLES_TASK_ACTORS,    RT_WRITE | RT_RAW, rv__h_document_upload },
  { GET,  "/v1/documents/{name}",               "document.get",      ROLES_TASK_ACTORS | ROLE(OPERATOR), RT_PII, rv__h_document_get },
  { POST, "/v1/messages",                       "message.correlate", ROLE(OPERATOR),       RT_WRITE | RT_BODY, rv__h_message },
  { POST, "/v1/signals",                        "signal.broadcast",  ROLE(OPERATOR),       RT_WRITE | RT_BODY, rv__h_signal },
  /* the bank's callback (adapters/bank/api.c): organisations need the bank agreement */
  { POST, "/v1/bank/confirmations",             "bank.confirm",      ROLE(OPERATOR) | ROLE(ORGANISATION),
                                                                                           RT_WRITE | RT_BODY, rv__h_bank_confirmations },
  /* an outside body fetches a status document with the person's access code (adapters/inquiry/api.c) */
  { POST, "/v1/inquiry/documents/fetch",        "inquiry.fetch",     ROLE(ORGANISATION),
                                                    RT_WRITE | RT_BODY | RT_AUDIT_ALL | RT_OWN_AGREEMENT, rv__h_inquiry_fetch },
  { GET,  "/v1/incidents",                      "incident.list",     ROLE(OPERATOR),       RT_PII,            rv__h_incidents },
  { POST, "/v1/incidents/{id}/retry",           "incident.retry",    ROLE(OPERATOR),       RT_WRITE,          rv__h_incident_retry },
  { GET,  "/v1/audit",                          "audit.list",        ROLE(IT_ADMIN),       RT_PII,            rv__audit_list },
};
const int rv__n_routes = (int)(sizeof rv__routes / sizeof rv__routes[0]);

/*--- Matching ---------------------------------------------------------------------*/

/* Match path against pattern; with r, collect {id} and {name} values. */
static bool match(const char *pat, const char *path, rv_req *r){
  while (*pat && *path) {
    if (*pat == '{') {
      const char *pe = strchr(pat, '}');
      const char *se = strchr(path, '/');
      size_t n = se ? (size_t)(se - path) : strlen(path);
      bool is_id = strncmp(pat, "{id}", 4) == 0;
      if (n == 0 || n > 128) return false;
      for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (is_id ? !isdigit(c) : !(isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
      }
      if (is_id) {
        int64_t v = 0;
        if (n > 15 || path[0] == '0') return false;           /* 1 .. 2^53 */
        for (size_t i = 0; i < n; i++) v = v * 10 + (path[i] - '0');
        if (r && r->n_ids < RV_MAX_PARAMS) r->ids[r->n_ids++] = v;
      } else if (r && r->n_names < RV_MAX_PARAMS) {
        r->names[r->n_names++] = rv_strndup(path, n);
      }
      pat = pe + 1;
      path += n;
      continue;
    }
    if (*pat != *path) return false;
    pat++;
    path++;
  }
  return *pat == 0 && *path == 0;
}

static const char *method_name(int m){
  return m == GET ? "GET" : m == POST ? "POST" : m == EVHTTP_REQ_PUT ? "PUT"
       : m == EVHTTP_REQ_DELETE ? "DELETE" : m == EVHTTP_REQ_PATCH ? "PATCH" : "OTHER";
}

static bool route(rv_req *r){
  char allow[64] = "";
  bool known = false;
  if (strlen(r->path) > 512 || strchr(r->path, '%')) { rv__not_found(r); return false; }
  for (int i = 0; i < rv__n_routes; i++) {
    const rv_route *rt = &rv__routes[i];
    if (!match(rt->pattern, r->path, NULL)) continue;
    known = true;
    if (rt->method == r->method) {
      r->route = rt;
      r->route_ix = i;
      match(rt->pattern, r->path, r);
      return true;
    }
    if (strlen(allow) + 10 < sizeof allow)
      snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
               method_name(rt->method));
  }
  if (known) {
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Allow", allow);
    rv__problem(r, 405, "use %s", allow);
  } else rv__not_found(r);
  return false;
}

/*--- Authentication --------------------------------------------------------------*/

/* A token that fails counts against the address; once an address has
** used up its failures (--max-auth-failures per 10 minutes) its failures
** get 429 and are no longer audited one by one (the counter still moves).
** Valid tokens are always accepted, so clients sharing an address (NAT,
** the portal's proxy) are never locked out by someone else's guessing;
** with 256-bit tokens guessing is hopeless anyway -- this makes scanners
** visible and cheap. A request without credentials is not a guess. */
static bool authenticate(rv_req *r){
  rv_api *a = r->api;
  struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
  struct evkeyval *kv;
  const char *auth = NULL;
  int n = 0;
  bool guess = false;
  int64_t now_ns = rv__mono_ns();

  TAILQ_FOREACH(kv, h, next)
    if (strcasecmp(kv->key, "Authorization") == 0) { auth = kv->value; n++; }
  if (r->query_text && (strcasestr(r->query_text, "token") || strstr(r->query_text, "rvt_") ||
                        strcasestr(r->query_text, "auth"))) {
    rv__problem(r, 401, "credentials are not accepted in the URL; use the Authorization header");
    guess = true;
  } else if (n == 0) {
    rv__problem(r, 401, "a bearer token is required");
  } else if (n > 1 || strncasecmp(auth, "Bearer ", 7) != 0) {
    rv__problem(r, 401, "send exactly one 'Authorization: Bearer <token>' header");
    guess = true;
  } else {
    const char *tok = auth + 7;
    while (*tok == ' ') tok++;
    if (rv__authenticate(a->st, a->pepper, tok, rv_clock_now(rv_engine_clock(a->e)), &r->p) == RV_OK) {
      r->authed = true;
      return true;
    }
    rv__problem(r, 401, "the token is not valid");
    guess = true;
  }
  r->www_auth = true;
  if (r->authfail_verdict == 0) {        /* counted once, also when a batch runs again */
    a->auth_failures++;
    r->authfail_verdict = guess && !rv__rl_take(a->rl_authfail, r->addr, now_ns, NULL) ? -1 : 1;
    if (r->authfail_verdict < 0) a->rejected_rate++;
  }
  if (r->authfail_verdict < 0) {
    rv__problem(r, 429, "too many failed authentications from your address; wait");
    r->retry_after = 60;
  }
  return false;
}

/*--- Body ----------------------------------------------------------------------*/

static bool read_body(rv_req *r){
  const rv_route *rt = r->route;
  struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
  size_t len = evbuffer_get_length(in);
  size_t max = (rt->flags & RT_RAW) ? r->api->cfg.max_document
             : (rt->flags & RT_BIG) ? r->api->cfg.max_deploy_body : r->api->cfg.max_body;
  const char *data;

  if (len > max) {
    rv__problem(r, 413, "the body is larger than %zu bytes", max);
    return false;
  }
  if (rt->flags & RT_RAW) return true;       /* the handler reads it (documents.c) */
  if (len == 0) {
    if ((rt->flags & RT_BODY) && !(rt->flags & RT_OPTBODY)) {
      rv__problem(r, 400, "a JSON object body is required");
      return false;
    }
    return true;
  }
  data = (const char *)evbuffer_pullup(in, -1);
  if (!(rt->flags & RT_BODY)) {
    /* an empty object is tolerated; anything else is a mistake */
    size_t i = 0, j = len;
    while (i < len && isspace((unsigned char)data[i])) i++;
    while (j > i && isspace((unsigned char)data[j - 1])) j--;
    if (j - i == 2 && data[i] == '{' && data[i + 1] == '}') return true;
    rv__problem(r, 400, "this call takes no body");
    return false;
  }
  return rv__body_parse(r, data, len, (rt->flags & RT_BIG) != 0);
}

/*--- Dispatch ----------------------------------------------------------------------*/

static bool needs_audit(const rv_req *r){
  const rv_route *rt = r->route;
  if (rt == NULL) return false;
  if (r->status == 429 && !r->audit && !(rt->flags & RT_AUDIT_ALL))
    return false;                                        /* floods are counted, not logged */
  if ((rt->flags & RT_WRITE) || r->audit) return true;
  if (r->status == 401 || r->status == 403) return true;
  return (rt->flags & RT_PII) && r->authed && r->p.role != RV_ROLE_APPLICANT;
}

/* The principal's rate limit, asked once per request (a rerun of a
** spoiled batch keeps the verdict). */
static bool rate_ok(rv_req *r){
  rv_api *a = r->api;
  char key[32];
  if (r->rl_verdict == 0) {
    snprintf(key, sizeof key, "p:%lld", (long long)r->p.id);
    r->rl_verdict = rv__rl_take(a->rl_principal, key, rv__mono_ns(), &r->rl_retry) ? 1 : -1;
    if (r->rl_verdict < 0) a->rejected_rate++;
  }
  if (r->rl_verdict > 0) return true;
  rv__problem(r, 429, "too many requests; slow down");
  r->retry_after = r->rl_retry;
  return false;
}

/* In an optimistic batch (server.c) a request has no savepoint: a change
** that must go (the handler's undo, or its audit row failed) cannot go
** alone. If the request wrote anything, it spoils the batch, which then
** runs again with a savepoint per request; if it wrote nothing, there is
** nothing to undo. */
static void undo_optimistic(rv_req *r, int64_t changes0){
  sqlite3 *db = rv_store_db(r->api->st);
  if (sqlite3_total_changes64(db) != changes0 || sqlite3_get_autocommit(db))
    rv_engine_batch_spoil(r->api->e);
}

void rv__dispatch(rv_req *r){
  rv_api *a = r->api;
  rv_err err;
  bool sp, opt;
  int64_t changes0 = 0;
  unsigned long faults0 = rv_store_faults();

  if (!route(r)) return;
  /* A call that changes state runs in its own savepoint, so that its audit
  ** row and its change commit or vanish together. Reads need none: their
  ** only write is the audit row, one statement. In an optimistic batch
  ** there is none: see undo_optimistic. */
  opt = a->optimistic && (r->route->flags & RT_WRITE) != 0;
  sp = (r->route->flags & RT_WRITE) != 0 && !opt;
  if (opt) changes0 = sqlite3_total_changes64(rv_store_db(a->st));
  if (sp && rv_store_begin(a->st, &err) != RV_OK) {
    rv__problem(r, 503, "the store is busy; retry");
    r->retry_after = 1;
    return;
  }
  if (!(r->route->flags & RT_PUBLIC)) {
    if (!authenticate(r)) goto done;
    if (!rate_ok(r)) goto done;
    if (!(r->route->roles & (1u << r->p.role))) {
      rv__forbidden(r);
      goto done;
    }
    /* An organisation's registered agreement is checked on every call: a
    ** revoked or expired one cuts its users off at once. Agreements that
    ** are not in the registry (e.g. the bank's) are not affected. */
    if (r->p.role == RV_ROLE_ORGANISATION && !(r->route->flags & RT_OWN_AGREEMENT) &&
        rv_inquiry_agreement(a->st, r->p.organisation, r->p.agreement,
                             rv_clock_now(rv_engine_clock(a->e))) == RV_AGREEMENT_INACTIVE) {
      rv__problem(r, 403, "your organisation's agreement is not active");
      goto done;
    }
  }
  if (!read_body(r)) goto done;
  r->route->fn(r);
done:
  if (r->status == 0) rv__problem(r, 500, "the handler gave no reply");
  if (r->status >= 400 && r->status < 500 && rv_store_faults() != faults0) {
    /* the store failed under the handler (an I/O error, a full disk): a 404
    ** or 409 it concluded from a read that failed is not the answer */
    char was[sizeof r->detail + 16];
    snprintf(was, sizeof was, "%d: %s", r->status, r->detail);
    rv__reply_err(r, rv_store_fault_status(), &(rv_err){ RV_IO, "" });
    fprintf(stderr, "ravand: request %s: the store failed (the handler's answer was %s)\n", r->id, was);
    r->rollback = true;
  }
  if (opt) {
    if (r->rollback) undo_optimistic(r, changes0);
    if (rv_engine_batch_spoiled(a->e)) return;     /* the batch runs again: no audit row now */
  }
  if (sp && r->rollback) {
    /* the handler's changes go; its audit row is written outside them */
    rv_store_rollback(a->st);
    sp = false;
  }
  if (needs_audit(r) && !rv__audit_req(r)) {
    if (sp) rv_store_rollback(a->st);
    if (opt) undo_optimistic(r, changes0);
    return;
  }
  if (sp && rv_store_commit(a->st, &err) != RV_OK) {
    rv__problem(r, 503, "the change could not be committed; retry");
    r->retry_after = 1;
  }
}
