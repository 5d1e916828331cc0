/*
** api/api.h -- the HTTP/JSON API served by `ravand serve` (evhttp + cJSON).
**
** Every request is handled on the loop thread. Requests that arrive in
** the same loop pass are processed together in one engine batch (group
** commit): each runs in its own savepoint, its audit row is written in the
** same savepoint as its state change, and every reply is sent only after
** the batch committed. Authentication is by bearer token (keyed hash in
** the store); authorization is deny-by-default, per route (role) and per
** object (scope). The resources and the policy are documented in
** docs/api.md.
**
** The API also owns `ravand principal ...` and `ravand audit ...`.
*/
#ifndef RV_API_H
#define RV_API_H
#include <stdbool.h>
#include <stddef.h>
#include <event2/http.h>
#include "runtime/engine.h"

typedef struct rv_api rv_api;

/* Limits and policy. Zero fields take the defaults in brackets. */
typedef struct rv_api_cfg {
  const char *db_path;         /* pepper file defaults to "<db_path>.pepper" */
  const char *pepper_path;
  size_t max_body;             /* bytes [1 MiB] */
  size_t max_deploy_body;      /* bytes, deploy and lint only [5 MiB] */
  size_t max_headers;          /* request line + headers, bytes [16 KiB] */
  int    max_header_count;     /* [64] */
  int    deadline_ms;          /* absolute, per request incl. its reply [10 000] */
  int    max_conns;            /* [512]; at the cap the listener pauses */
  int    max_conns_per_addr;   /* [64]; beyond it new connections are closed */
  double rate;                 /* requests/s per principal [50]; < 0: unlimited */
  double rate_addr;            /* requests/s per address [200]; < 0: unlimited */
  double burst;                /* bucket size in seconds of rate [2] */
  int    max_auth_failures;    /* per address per 10 minutes, then 429 [20] */
  int    inquiry_max_failures;     /* refused inquiry fetches per principal per 10 minutes [20] */
  int    inquiry_max_failures_org; /* ... per organisation [50] */
  size_t max_document;         /* bytes of one uploaded document [2 MiB] */
  int    document_quota;       /* documents per principal [50] */
  size_t document_quota_bytes; /* their bytes per principal [20 MiB] */
  /* Who may start which process, beyond operators: comma lists of process
  ** ids, or "*". NULL: nobody. */
  const char *applicant_starts;
  const char *organisation_starts;
  /* The web console's built files (console/dist), served at "/".
  ** NULL: the build's console/dist if it was built; "none": off. */
  const char *console_dir;
  /* "--commit-sync inline": every COMMIT waits for its fdatasync on the
  ** loop's thread (synchronous=FULL), as before session 9; default
  ** "pipelined": a thread syncs, replies wait for it (server.c) */
  bool inline_sync;
} rv_api_cfg;

/* Names of the `serve` options rv_api_cfg_set() understands
** ("--max-body", ...), NULL-terminated, and a usage text for them. */
extern const char *const rv_api_opt_names[];
extern const char rv_api_opt_usage[];
/* Set one option from its command-line text ("1M", "10s", "50"). */
rv_status rv_api_cfg_set(rv_api_cfg *cfg, const char *name, const char *value, rv_err *err);

/* Attach the API to http: routes, limits, connection tracking. http must
** already be bound (the listeners are paused at the connection cap).
** Borrows http and e; both must outlive the API.
** Returns: new API in *out, caller frees with rv_api_free(). */
rv_status rv_api_start(struct evhttp *http, rv_engine *e, const rv_api_cfg *cfg,
                       rv_api **out /* OUT */, rv_err *err);
/* Reply 503 to anything still queued and detach from every connection.
** Call before evhttp_free(). NULL is a no-op. */
void      rv_api_free(rv_api *api);
/* Stop taking requests (new ones get 503, the listeners pause); replies
** waiting for the WAL sync are synced and sent now, and later batches
** sync before they reply. The loop should run a little longer so the
** replies are written out. NULL is a no-op. */
void      rv_api_quiesce(rv_api *api);

/* `ravand principal add|list|token|revoke|disable ...` and
** `ravand audit [list|verify] ...`: argv[0] is the first word after the
** command. Returns the exit code (0 ok, 1 failed, 2 usage). */
int rv_api_principal_cli(rv_engine *e, const char *db_path, int argc, char **argv, bool json);
/* Load the pepper (pepper_path, else "<db_path>.pepper"; created on first
** use) and hand the keys derived from it to the adapters that need one (the
** `inquiry` adapter's access codes). rv_api_start does this itself; commands
** that run jobs without the API (`ravand tick`) call it. */
rv_status rv_api_load_keys(const char *db_path, const char *pepper_path, rv_err *err);
int rv_api_audit_cli(rv_engine *e, int argc, char **argv, bool json);

#endif
