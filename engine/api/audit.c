/*
** api/audit.c -- the audit log: who, when (UTC ms), from where, what, and
** the outcome, for every state-changing call, every read of personal data
** by staff or an organisation, and every failed authentication or
** authorization.
**
** Rows are append-only (triggers refuse UPDATE and DELETE) and chained:
** hash = SHA-256(previous hash, the row's fields), so `ravand audit
** verify` finds any row that was changed, removed or inserted afterwards,
** and with `--anchor ID:HASH` (a head written down earlier) rows cut off
** the end too.
** Text is stored with control characters replaced (no log injection) and
** never holds a token or an access code: query strings that may carry one
** are masked.
** Rows are written inside the caller's transaction: with the state
** change they record, and before the reply is sent.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include "core/sha256.h"
#include "api/api_int.h"
#include "cal/cal.h"

/* Copy s into *at (advanced past it): cut at max bytes, control
** characters replaced. No allocation: one row's fields share a buffer. */
static const char *clean(const char *s, size_t max, char **at){
  char *o = *at;
  size_t n;
  if (s == NULL) return NULL;
  n = strnlen(s, max);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    o[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
  }
  o[n] = 0;
  *at = o + n + 1;
  return o;
}

/* hash = SHA-256(prev, "\x1e" at "\x1f" outcome, then "\x1f" and each field,
** "\0" for an absent one). The bytes are laid out in one buffer and hashed
** in one call: the same digest as feeding them piece by piece (what
** `ravand audit verify` does), with one pass instead of a dozen. */
static void chain(const char *prev, const rv_audit_rec *a, const char *const *f, int nf,
                  char hex[65]){
  unsigned char h[RV_SHA256_BYTES];
  char buf[64 + 48 + 2048 + 32], *o = buf;
  size_t n = strlen(prev), flen = 0;
  for (int i = 0; i < nf; i++) flen += f[i] ? strlen(f[i]) : 0;
  if (n > 64) o = NULL;            /* a tampered row (verify): stream it all */
  if (o) {
    memcpy(o, prev, n);
    o += n;
    o += snprintf(o, 48, "\x1e%lld\x1f%d", (long long)a->at, a->outcome);
  }
  if (o == NULL || (size_t)(o - buf) + flen + (size_t)nf > sizeof buf) {
    /* longer than clean() lets a row be: only a tampered row in verify */
    rv_sha256_ctx *st = rv_sha256_begin();
    char num[48];
    rv_sha256_add(st, prev, strlen(prev));
    snprintf(num, sizeof num, "\x1e%lld\x1f%d", (long long)a->at, a->outcome);
    rv_sha256_add(st, num, strlen(num));
    for (int i = 0; i < nf; i++) {
      rv_sha256_add(st, "\x1f", 1);
      if (f[i]) rv_sha256_add(st, f[i], strlen(f[i]));
      else rv_sha256_add(st, "\x00", 1);
    }
    rv_sha256_end(st, h);
  } else {
    for (int i = 0; i < nf; i++) {
      *o++ = '\x1f';
      if (f[i]) { n = strlen(f[i]); memcpy(o, f[i], n); o += n; }
      else *o++ = 0;
    }
    rv_sha256(buf, (size_t)(o - buf), h);
  }
  sodium_bin2hex(hex, 65, h, sizeof h);
}

#define N_FIELDS 11

rv_status rv__audit_write(rv_store *st, const rv_audit_rec *a, rv_err *err){
  const char *raw[N_FIELDS] = { a->request_id, a->principal, a->role, a->scope, a->address,
                                a->method, a->path, a->action ? a->action : "-", a->object,
                                a->detail, NULL };
  static const size_t max[N_FIELDS] = { 64, 96, 32, 600, 64, 16, 600, 64, 96, 300, 0 };
  char text[2048], *at = text;          /* the sum of max, plus a NUL each */
  const char *f[N_FIELDS] = {0};
  char prev[65] = "", hex[65];
  sqlite3_stmt *s;

  for (int i = 0; i < N_FIELDS - 1; i++) f[i] = clean(raw[i], max[i], &at);
  s = rv_store_stmt(st, "SELECT hash FROM audit ORDER BY id DESC LIMIT 1");
  if (sqlite3_step(s) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(s, 0);
    size_t n = v ? strnlen(v, sizeof prev - 1) : 0;
    memcpy(prev, v ? v : "", n);
    prev[n] = 0;
  }
  sqlite3_reset(s);
  chain(prev, a, f, N_FIELDS - 1, hex);
  return rv_store_exec(st, err,
    "INSERT INTO audit(at, request_id, principal, role, scope, address, method, path, action,"
    " object, outcome, detail, hash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", "itttttttttitt",
    a->at, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], (int64_t)a->outcome,
    f[9], hex);
}

static const char *method_name(int m){
  switch (m) {
  case EVHTTP_REQ_GET: return "GET";
  case EVHTTP_REQ_POST: return "POST";
  case EVHTTP_REQ_PUT: return "PUT";
  case EVHTTP_REQ_DELETE: return "DELETE";
  case EVHTTP_REQ_PATCH: return "PATCH";
  case EVHTTP_REQ_HEAD: return "HEAD";
  case EVHTTP_REQ_OPTIONS: return "OPTIONS";
  default: return "OTHER";
  }
}

bool rv__audit_req(rv_req *r){
  rv_audit_rec a = {0};
  char scope[2 * RV_SCOPE_BYTES + 64], path[640];
  rv_err err;
  bool mask = r->query_text && (strstr(r->query_text, "rvt_") || strcasestr(r->query_text, "token") ||
                                 strcasestr(r->query_text, "code"));   /* an inquiry access code */
  snprintf(path, sizeof path, "%s%s%s", r->path ? r->path : "?", r->query_text ? "?" : "",
           r->query_text ? (mask ? "(masked)" : r->query_text) : "");
  a.at = rv_clock_now(rv_engine_clock(r->api->e));
  a.request_id = r->id;
  a.principal = r->authed ? r->p.name : NULL;
  a.role = r->authed ? rv__role_name(r->p.role) : NULL;
  a.scope = r->authed ? rv__principal_scope(&r->p, scope, sizeof scope) : NULL;
  a.address = r->addr;
  a.method = method_name(r->method);
  a.path = path;
  a.action = r->route ? r->route->action : "unrouted";
  a.object = r->object[0] ? r->object : NULL;
  a.outcome = r->status;
  a.detail = r->detail[0] ? r->detail : NULL;
  if (rv__audit_write(r->api->st, &a, &err) != RV_OK) {
    fprintf(stderr, "ravand: request %s: audit write failed: %s\n", r->id, err.msg);
    rv__problem(r, 503, "the audit log cannot be written; nothing was done");
    r->retry_after = 1;
    return false;
  }
  return true;
}

/*--- GET /v1/audit ---------------------------------------------------------------*/

void rv__audit_list(rv_req *r){
  static const char *const q[] = { "principal", "action", "from", "to", "outcome", "limit", "offset", NULL };
  int64_t limit, offset, from = 0, to = 0, outcome = 0;
  bool has_from, has_to, has_out;
  rv_sql s;

  if (!rv__q_parse(r, q) || !rv__q_page(r, &limit, &offset) ||
      !rv__q_time(r, "from", &from, &has_from) || !rv__q_time(r, "to", &to, &has_to) ||
      !rv__q_int(r, "outcome", 100, 599, &outcome, &has_out)) return;
  rv__sql_init(&s, "SELECT id, at, request_id, principal, role, scope, address, method, path,"
                   " action, object, outcome, detail FROM audit WHERE 1");
  if (rv__q_str(r, "principal")) rv__sql_t(&s, " AND principal=?", rv__q_str(r, "principal"));
  if (rv__q_str(r, "action")) rv__sql_t(&s, " AND action=?", rv__q_str(r, "action"));
  if (has_from) rv__sql_i(&s, " AND at>=?", from);
  if (has_to) rv__sql_i(&s, " AND at<?", to);
  if (has_out) rv__sql_i(&s, " AND outcome=?", outcome);
  rv__sql_add(&s, " ORDER BY id DESC");
  rv__reply_page_sql(r, &s, limit, offset, NULL);
}

/*--- `ravand audit` ------------------------------------------------------------*/

/* A chain shows a row changed, removed or inserted in the middle, not rows
** cut off its end: a shorter chain is a chain too. The head verify prints
** (ID:HASH), written down elsewhere -- an operator's log, a ticket -- is an
** anchor: `verify --anchor ID:HASH` also requires that row, with that hash,
** to be there, so the rows up to it cannot have been removed or replaced. */
static int verify(rv_store *st, bool json, const char *anchor){
  sqlite3_stmt *s;
  char prev[65] = "", want[65] = "", found[65] = "";
  int64_t n = 0, bad = 0, first_bad = 0, head_id = 0, anchor_id = 0;
  const char *anchor_state = NULL;
  if (anchor) {
    char *end;
    const char *colon = strchr(anchor, ':');
    anchor_id = colon ? strtoll(anchor, &end, 10) : 0;
    if (colon == NULL || end != colon || anchor_id <= 0 || strlen(colon + 1) != 64) {
      fprintf(stderr, "ravand: --anchor takes ID:HASH, as `ravand audit verify` prints the head\n");
      return 2;
    }
    snprintf(want, sizeof want, "%s", colon + 1);
  }
  s = rv_store_stmt(st, "SELECT id, at, request_id, principal, role, scope, address, method, path,"
                        " action, object, outcome, detail, hash FROM audit ORDER BY id");
  while (sqlite3_step(s) == SQLITE_ROW) {
    rv_audit_rec a = {0};
    const char *f[N_FIELDS - 1];
    char hex[65];
    for (int i = 0; i < N_FIELDS - 1; i++) {
      int col = i < 7 ? i + 2 : i == 7 ? 9 : i == 8 ? 10 : 12;
      f[i] = (const char *)sqlite3_column_text(s, col);
    }
    a.at = sqlite3_column_int64(s, 1);
    a.outcome = sqlite3_column_int(s, 11);
    chain(prev, &a, f, N_FIELDS - 1, hex);
    if (strcmp(hex, (const char *)sqlite3_column_text(s, 13)) != 0) {
      if (!bad) first_bad = sqlite3_column_int64(s, 0);
      bad++;
    }
    snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(s, 13));
    head_id = sqlite3_column_int64(s, 0);
    if (anchor && head_id == anchor_id) snprintf(found, sizeof found, "%s", prev);
    n++;
  }
  sqlite3_reset(s);
  if (anchor)
    anchor_state = !found[0] ? "missing" : strcasecmp(found, want) != 0 ? "different" : "ok";
  if (json) {
    printf("{\"rows\": %lld, \"broken\": %lld, \"first_broken\": %lld, \"head\": \"%lld:%s\"",
           (long long)n, (long long)bad, (long long)first_bad, (long long)head_id, prev);
    if (anchor) printf(", \"anchor\": \"%s\"", anchor_state);
    printf("}\n");
  } else if (bad) {
    printf("audit log BROKEN: %lld of %lld rows do not chain; first at id %lld\n",
           (long long)bad, (long long)n, (long long)first_bad);
  } else if (anchor && strcmp(anchor_state, "ok") != 0) {
    printf("audit log BROKEN: the anchor row %lld is %s (rows up to it removed or replaced); "
           "%lld rows chain, head %lld:%s\n", (long long)anchor_id,
           strcmp(anchor_state, "missing") == 0 ? "gone" : "not the one anchored",
           (long long)n, (long long)head_id, prev);
  } else {
    printf("audit log intact: %lld rows, head %lld:%s%s\n", (long long)n, (long long)head_id, prev,
           anchor ? " (anchor found)" : "");
  }
  return bad || (anchor && strcmp(anchor_state, "ok") != 0) ? 1 : 0;
}

int rv_api_audit_cli(rv_engine *e, int argc, char **argv, bool json){
  rv_store *st = rv_engine_store(e);
  const char *sub = argc > 0 ? argv[0] : "list";
  if (strcmp(sub, "verify") == 0 && argc == 1) return verify(st, json, NULL);
  if (strcmp(sub, "verify") == 0 && argc == 3 && strcmp(argv[1], "--anchor") == 0)
    return verify(st, json, argv[2]);
  if (strcmp(sub, "list") == 0 && argc <= 3) {
    int limit = 50;
    sqlite3_stmt *s;
    if (argc == 3 && strcmp(argv[1], "--limit") == 0) limit = atoi(argv[2]);
    else if (argc != 1) goto usage;
    if (limit <= 0) limit = 50;
    s = rv_store_stmt(st, "SELECT id, at, principal, role, address, action, object, outcome, path"
                          " FROM audit ORDER BY id DESC LIMIT ?");
    rv_store_bind(s, "i", (int64_t)limit);
    while (sqlite3_step(s) == SQLITE_ROW) {
      char t[40];
      const char *v[7];
      for (int i = 0; i < 7; i++) {
        v[i] = (const char *)sqlite3_column_text(s, i == 6 ? 8 : i + 2);
        if (v[i] == NULL) v[i] = "-";
      }
      rv_datetime_format(sqlite3_column_int64(s, 1), t, sizeof t);
      if (json) {
        cJSON *o = cJSON_CreateObject();
        char *txt;
        cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(s, 0));
        cJSON_AddStringToObject(o, "at", t);
        cJSON_AddStringToObject(o, "principal", v[0]);
        cJSON_AddStringToObject(o, "role", v[1]);
        cJSON_AddStringToObject(o, "address", v[2]);
        cJSON_AddStringToObject(o, "action", v[3]);
        cJSON_AddStringToObject(o, "object", v[4]);
        cJSON_AddNumberToObject(o, "outcome", sqlite3_column_int(s, 7));
        cJSON_AddStringToObject(o, "path", v[6]);
        txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(o);
      } else
        printf("%-6lld %s %-16s %-12s %-15s %-22s %-16s %d %s\n", (long long)sqlite3_column_int64(s, 0), t,
               v[0], v[1], v[2], v[3], v[4], sqlite3_column_int(s, 7), v[6]);
    }
    sqlite3_reset(s);
    return 0;
  }
usage:
  fprintf(stderr, "usage: ravand audit [list [--limit N] | verify [--anchor ID:HASH]]\n");
  return 2;
}
