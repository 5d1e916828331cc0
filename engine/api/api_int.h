/*
** api/api_int.h -- what the API's files share.
**
** A request's life (server.c, routes.c):
**   intake     evhttp hands us the request; per-address rate limit; queued
**   flush      once per loop pass: one optimistic engine batch (no
**              savepoint per request); for each request: authenticate,
**              route, authorize (role), run the handler (object scope,
**              engine command), audit. A request that fails after writing
**              spoils the batch: it is rolled back and every request of it
**              runs again, each in its own savepoint (server.c on_flush)
**   commit     the batch commits; if it fails every reply becomes 503
**   reply      problem details or JSON; latency observed
** Handlers never reply themselves: they fill r->status and r->out (or
** r->raw) through the rv__reply_* / rv__problem helpers.
*/
#ifndef RV_API_INT_H
#define RV_API_INT_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>      /* TAILQ_* for evkeyvalq, before libevent */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <cjson/cJSON.h>
#include "api/api.h"
#include "core/buf.h"
#include "core/json.h"
#include "store/store.h"
#include "inquiry/inquiry.h"

/*--- Principals and roles (auth.c) ---------------------------------------*/

#define RV_ROLE_MAP(X)                                           \
  X(APPLICANT,    "applicant",    "applicant")                   \
  X(BRANCH,       "branch",       "branch")                      \
  X(ASSOCIATION,  "association",  "association")                 \
  X(COMMITTEE,    "committee",    "committee")                   \
  X(IT_ADMIN,     "it_admin",     "it_admin")                    \
  X(ORGANISATION, "organisation", "organisation")                \
  X(OPERATOR,     "operator",     NULL)                          \
  X(ANALYST,      "analyst",      NULL)

typedef enum rv_role {
  RV_ROLE_NONE = 0,
#define X(uc, name, group) RV_ROLE_##uc,
  RV_ROLE_MAP(X)
#undef X
  RV_ROLE_COUNT
} rv_role;

#define ROLE(uc) (1u << RV_ROLE_##uc)
#define ROLES_ALL 0xFFFEu
/* Roles that work on tasks (claim, complete, comment). IT admins do the
** tasks of their group ("grant access" in org onboarding), nothing else. */
#define ROLES_TASK_ACTORS (ROLE(APPLICANT) | ROLE(BRANCH) | ROLE(ASSOCIATION) | \
                           ROLE(COMMITTEE) | ROLE(ORGANISATION) | ROLE(IT_ADMIN))
#define ROLES_STAFF (ROLE(BRANCH) | ROLE(ASSOCIATION) | ROLE(COMMITTEE) | ROLE(IT_ADMIN) | \
                     ROLE(OPERATOR))

#define RV_MAX_GROUPS 16
#define RV_SCOPE_LEN  64          /* names, groups: ASCII identifiers */
#define RV_SCOPE_BYTES 256        /* branch, county, organisation, agreement: up to 64
                                     code points of UTF-8 (rv_valid_scope_value) */

typedef struct rv_principal {
  int64_t id;
  rv_role role;
  char    name[RV_SCOPE_LEN + 1];
  char    national_id[RV_SCOPE_LEN + 1], branch[RV_SCOPE_BYTES + 1], county[RV_SCOPE_BYTES + 1];
  char    organisation[RV_SCOPE_BYTES + 1], agreement[RV_SCOPE_BYTES + 1];
  char    groups[RV_MAX_GROUPS][RV_SCOPE_LEN + 1];   /* the role's group first */
  int     n_groups;
} rv_principal;

const char *rv__role_name(rv_role r);
rv_role     rv__role_parse(const char *s);
const char *rv__role_group(rv_role r);          /* NULL: the role has no group */
/* "branch=B1" etc.; buf >= 2*RV_SCOPE_BYTES + 32. */
const char *rv__principal_scope(const rv_principal *p, char *buf, size_t n);

/* Pepper (32 bytes) from path, created on first use (mode 0600). */
rv_status rv__pepper_load(const char *path, bool create, unsigned char key[32], rv_err *err);
/* Look a bearer token up. RV_OK and *p filled, or RV_DENIED (unknown,
** revoked, expired, disabled) -- never says which. */
rv_status rv__authenticate(rv_store *st, const unsigned char key[32], const char *token,
                           int64_t now, rv_principal *p);

/*--- Requests --------------------------------------------------------------*/

typedef struct rv_req rv_req;
typedef struct rv_conn rv_conn;

enum {
  RT_PUBLIC = 1 << 0,   /* no authentication */
  RT_WRITE  = 1 << 1,   /* changes state: every call is audited */
  RT_PII    = 1 << 2,   /* reads personal data: audited for staff/organisations */
  RT_BIG    = 1 << 3,   /* deploy-sized body allowed */
  RT_BODY   = 1 << 4,   /* takes a JSON object body (optional when RT_OPTBODY) */
  RT_OPTBODY= 1 << 5,
  RT_AUDIT_ALL = 1 << 6,   /* audited even when refused by a rate limit (429) */
  RT_OWN_AGREEMENT = 1 << 7, /* the handler checks the organisation's agreement itself */
  RT_RAW    = 1 << 8,   /* takes a raw (binary) body of up to max_document bytes */
};

typedef struct rv_route {
  int         method;       /* EVHTTP_REQ_* */
  const char *pattern;      /* "/v1/tasks/{id}/claim": {id} integer, {name} identifier */
  const char *action;       /* audit action and metrics label: "task.claim" */
  unsigned    roles;        /* function-level policy: who may call it at all */
  unsigned    flags;        /* RT_* */
  void      (*fn)(rv_req *r);
} rv_route;

extern const rv_route rv__routes[];
extern const int      rv__n_routes;

#define RV_MAX_PARAMS 3

struct rv_req {
  rv_api   *api;
  struct evhttp_request *ev;
  rv_conn  *conn;              /* NULL once the connection went away */
  rv_req   *next;
  const rv_route *route;
  int       route_ix;          /* -1: none */
  char      id[32];
  char      addr[64];
  int       method;
  char     *path;              /* decoded path, no query */
  char     *query_text;        /* raw query or NULL */
  int64_t   t0_ns;
  bool      authed;
  rv_principal p;
  int64_t   ids[RV_MAX_PARAMS];  int n_ids;
  char     *names[RV_MAX_PARAMS]; int n_names;
  struct evkeyvalq query;
  bool      query_ok;
  cJSON    *body;
  /* response */
  int       status;
  cJSON    *out;
  char     *raw; size_t raw_len; const char *ctype;
  char     *location;
  bool      www_auth;
  int       retry_after;
  bool      console;           /* a console file (console.c): its own headers */
  const char *cache;           /* Cache-Control of a console file */
  bool      rollback;          /* undo the handler's changes (its savepoint); the audit row stays */
  /* decided once, kept when a spoiled batch runs the request again
  ** (server.c req_rerun): a rerun takes no second rate-limit token and
  ** moves no counter twice */
  signed char rl_verdict;      /* principal's rate limit: 0 not asked, 1 passed, -1 refused */
  int       rl_retry;
  signed char authfail_verdict;/* failed authentication counted: 0 not yet, 1 under, -1 over the cap */
  /* audit */
  bool      audit;             /* force an audit row */
  char      object[96];
  char      detail[256];
};

/*--- The API object (server.c) ----------------------------------------------*/

#define RV_LAT_BUCKETS 14
#define RV_BATCH_BUCKETS 10

typedef struct rv_hist {
  int64_t counts[RV_LAT_BUCKETS + 1];
  int64_t n;
  double  sum;
} rv_hist;

typedef struct rv_rl rv_rl;     /* rate limiter, ratelimit.c */

#define RV_QCACHE 64

struct rv_api {
  rv_engine     *e;
  rv_store      *st;
  struct evhttp *http;
  struct event_base *base;
  rv_api_cfg     cfg;
  unsigned char  pepper[32];
  char          *applicant_starts, *organisation_starts;
  rv_inquiry_limits inquiry;      /* POST /v1/inquiry/documents/fetch */
  char          *console_dir;    /* console/dist or --console DIR; NULL: none */
  /* connections */
  rv_conn       *conns;
  int            n_conns;
  struct evconnlistener *listeners[8];
  int            n_listeners;
  bool           paused;
  /* queue */
  rv_req        *head, *tail;
  int            queued;
  struct event  *flush_ev;
  /* Batches whose replies wait for the WAL sync of their commit (oldest
  ** first; server.c, "Pipelined WAL sync") */
  struct rv_parked *parked, *parked_tail;
  int64_t        parked_now, parked_max;   /* requests waiting; most at once */
  bool           stopping;        /* rv_api_quiesce */
  uint64_t       seq;
  char           boot[8];
  rv_rl         *rl_addr, *rl_principal, *rl_authfail;
  bool           optimistic;      /* the open batch has no savepoint per request */
  struct { char *sql; uint64_t hash, used; sqlite3_stmt *stmt; } qcache[RV_QCACHE];
  uint64_t       qtick;
  /* metrics */
  rv_hist       *lat;             /* per route, + 1 for "other" */
  int64_t        batch_hist[RV_BATCH_BUCKETS + 1];
  int64_t        batches, batch_sum;
  int64_t        batch_reruns;    /* spoiled optimistic batches run again with savepoints */
  int64_t        responses[6];    /* by status class 1xx..5xx, [0] unused */
  int64_t        rejected_conn_cap, rejected_addr_cap, rejected_rate, deadline_kills;
  int64_t        auth_failures, accepted;
};

/* Problem details and replies (request.c). status 404 always gets the
** same body: "not yours" and "does not exist" are indistinguishable. */
void rv__reply_json(rv_req *r, int status, cJSON *body);  /* takes ownership */
void rv__reply_raw(rv_req *r, int status, const char *ctype, char *data, size_t len); /* takes data */
void rv__problem(rv_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rv__not_found(rv_req *r);
void rv__forbidden(rv_req *r);
/* Map an engine status (with its message) to a problem. */
void rv__reply_err(rv_req *r, rv_status s, const rv_err *err);
const char *rv__status_title(int status);
/* Build the problem body (new cJSON). */
cJSON *rv__problem_json(int status, const char *detail, const char *request_id);

/* Query strings: rv__q_parse() checks every key against allowed (NULL-
** terminated) and that none repeats; false means a 400 was set. */
bool        rv__q_parse(rv_req *r, const char *const *allowed);
const char *rv__q_str(rv_req *r, const char *key);
/* false means a 400 was set; *present false when the key is absent. */
bool        rv__q_int(rv_req *r, const char *key, int64_t min, int64_t max, int64_t *out, bool *present);
bool        rv__q_time(rv_req *r, const char *key, int64_t *out, bool *present);
bool        rv__q_bool(rv_req *r, const char *key, bool *out, bool *present);
bool        rv__q_page(rv_req *r, int64_t *limit, int64_t *offset);

/* JSON bodies: parse with limits (depth 32, 10 000 items per array,
** strings <= 64 KiB unless big, valid UTF-8, no duplicate keys, finite
** numbers). False means a 400/415 was set. */
bool rv__body_parse(rv_req *r, const char *data, size_t len, bool big);
/* Unknown fields -> 400. allowed is NULL-terminated. */
bool rv__body_fields(rv_req *r, const cJSON *o, const char *where, const char *const *allowed);
/* Field getters: false means a 400 was set. Absent optional -> *out NULL. */
bool rv__body_str(rv_req *r, const cJSON *o, const char *key, bool required, size_t max,
                  const char **out);
bool rv__body_obj(rv_req *r, const cJSON *o, const char *key, bool required, const cJSON **out);
bool rv__body_int(rv_req *r, const cJSON *o, const char *key, bool required, int64_t min,
                  int64_t max, int64_t *out, bool *present);

/* Identifiers: process ids, group names, principal names. */
bool rv__valid_ident(const char *s, size_t max);
/* Scope values (branch, county, organisation; agreement with allow_slash):
** rv_valid_scope_value, Unicode letters allowed (cal.h). */
bool rv__valid_scope(const char *s, bool allow_slash);
/* A client-named relative file path: 1-4 segments of [A-Za-z0-9._-], none
** empty or starting with '.', <= 200 bytes (console files, deployed files). */
bool rv__safe_relpath(const char *p);

/*--- Scope (policy.c) -------------------------------------------------------*/

/* A query with positional bindings ('t' borrowed text, 'i' int64). */
#define RV_SQL_MAX_BINDS 96
typedef struct rv_sql {
  rv_buf      sql;
  char        fmt[RV_SQL_MAX_BINDS + 1];
  const char *t[RV_SQL_MAX_BINDS];
  int64_t     i[RV_SQL_MAX_BINDS];
  int         n;
} rv_sql;
void rv__sql_init(rv_sql *q, const char *base);
void rv__sql_fini(rv_sql *q);
void rv__sql_add(rv_sql *q, const char *frag);
void rv__sql_t(rv_sql *q, const char *frag, const char *v);    /* frag has one '?' */
void rv__sql_i(rv_sql *q, const char *frag, int64_t v);
/* Run and return rows as an array of objects (columns named *_json are
** parsed). Returns: new cJSON, or NULL with err set. */
cJSON *rv__sql_rows(rv_api *a, rv_sql *q, rv_err *err);
void   rv__qcache_free(rv_api *a);
/* q prepared (kept in the cache above) and bound; step it, then
** sqlite3_reset it. NULL with err set. q may be freed at once. */
sqlite3_stmt *rv__sql_stmt(rv_api *a, rv_sql *q, rv_err *err);
/* A list call's page (request.c): run q with LIMIT limit OFFSET offset (q is
** freed), pass each row to each (may be NULL), reply 200 with {"items",
** "limit", "offset", "more"}, or the error. */
void   rv__reply_page_sql(rv_req *r, rv_sql *q, int64_t limit, int64_t offset, void (*each)(cJSON *row));

/* Append " AND (<what p may see>)" for tasks aliased t joined to
** instances aliased i, and for instances aliased i. */
void rv__scope_tasks(rv_sql *q, const rv_principal *p);
void rv__scope_instances(rv_sql *q, const rv_principal *p);
/* The two disjoint halves of rv__scope_tasks() for task-acting roles:
** by office and group, or (by_assignee) assigned to p by name and not in
** the first half. As two arms of a UNION ALL each can use an index and
** yield rows in id order, so a cartable page does not sort the backlog. */
void rv__scope_tasks_arm(rv_sql *q, const rv_principal *p, bool by_assignee);
bool rv__task_visible(rv_req *r, int64_t task);
bool rv__instance_visible(rv_req *r, int64_t inst);
/* May p start through the start event info describes (rv_engine_start_info)?
** Yes for operators; for applicants and organisations when the model opens
** it to their role (rv:startableBy) or the serve option lists its process
** (--applicant-starts, --organisation-starts). */
bool rv__may_start(rv_api *a, const rv_principal *p, const rv_start_info *info);

/*--- Audit (audit.c) ---------------------------------------------------------*/

typedef struct rv_audit_rec {
  int64_t     at;
  const char *request_id, *principal, *role, *scope, *address, *method, *path;
  const char *action, *object, *detail;
  int         outcome;
} rv_audit_rec;
rv_status rv__audit_write(rv_store *st, const rv_audit_rec *a, rv_err *err);
/* Audit r; false (and a 503 set) when the row cannot be written. */
bool      rv__audit_req(rv_req *r);
void      rv__audit_list(rv_req *r);

/*--- Rate limiting (ratelimit.c) ---------------------------------------------*/

rv_rl *rv__rl_new(double rate, double burst, int capacity);
void   rv__rl_free(rv_rl *rl);
/* Take one token for key at now_ns; false when the bucket is empty.
** *retry_s is how long until one is available. */
bool   rv__rl_take(rv_rl *rl, const char *key, int64_t now_ns, int *retry_s);
int64_t rv__mono_ns(void);

/*--- Resources: one file each ------------------------------------------------*/

/* definitions.c */
void rv__h_deploy(rv_req *r);
void rv__h_lint(rv_req *r);
void rv__h_definitions(rv_req *r);
void rv__h_definition_xml(rv_req *r);
void rv__h_definition_waiting(rv_req *r);
/* instances.c */
void rv__h_instance_start(rv_req *r);
void rv__h_instances(rv_req *r);
void rv__h_instance_get(rv_req *r);
void rv__h_instance_cancel(rv_req *r);
void rv__h_my_requests(rv_req *r);
void rv__h_my_request(rv_req *r);
void rv__h_my_request_start(rv_req *r);
/* tasks.c */
void rv__h_tasks(rv_req *r);
void rv__h_task_get(rv_req *r);
void rv__h_task_claim(rv_req *r);
void rv__h_task_unclaim(rv_req *r);
void rv__h_task_complete(rv_req *r);
void rv__h_task_transfer(rv_req *r);
void rv__h_task_comments(rv_req *r);
void rv__h_task_comment_add(rv_req *r);
/* messages.c */
void rv__h_message(rv_req *r);
void rv__h_signal(rv_req *r);
/* incidents.c */
void rv__h_incidents(rv_req *r);
void rv__h_incident_retry(rv_req *r);
/* documents.c: the portal's document store */
void rv__h_document_upload(rv_req *r);
void rv__h_document_get(rv_req *r);
/* Every string "doc:sha256-..." in v (task data, start variables) must name a
** document the caller uploaded; false means a 422 was set. */
bool rv__doc_refs_check(rv_req *r, const cJSON *v);
/* After the start or completion succeeded: the documents v refers to are now
** in instance inst's variables (who may read them: documents.c). */
rv_status rv__doc_refs_link(rv_req *r, const cJSON *v, int64_t inst, rv_err *err);
/* console.c: the web console's files at "/" (before the batch; public).
** True when the request was a console request and has its reply. */
bool  rv__console_handle(rv_req *r);
char *rv__console_dir(const char *opt);     /* new string or NULL */
/* metrics.c */
void rv__h_health(rv_req *r);
void rv__h_metrics(rv_req *r);
void rv__h_me(rv_req *r);
void rv__hist_observe(rv_hist *h, double seconds);
extern const double rv__lat_bounds[RV_LAT_BUCKETS];

/* routes.c: route, authenticate, authorize, run, audit (inside the batch). */
void rv__dispatch(rv_req *r);

#endif
