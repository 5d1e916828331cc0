/*
** api/request.c -- replies, problem details, query strings and JSON bodies.
**
** Everything a client sends is checked here before a handler sees it:
** query keys against the route's list (unknown or repeated -> 400), JSON
** bodies against fixed limits (depth, sizes, UTF-8, duplicate keys,
** finite numbers) and body fields against each handler's list. A client's
** mistake is always a 4xx; 5xx is kept for the store and the engine.
*/
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <event2/keyvalq_struct.h>
#include "api/api_int.h"
#include "core/mem.h"
#include "cal/cal.h"

#define JSON_MAX_DEPTH   32
#define JSON_MAX_ITEMS   10000
#define JSON_MAX_STRING  (64 * 1024)
#define JSON_MAX_NODES   200000

/*--- Replies ----------------------------------------------------------------*/

static const struct { int status; const char *title, *type; } titles[] = {
  { 400, "Bad Request",            "bad-request" },
  { 401, "Unauthorized",           "unauthorized" },
  { 403, "Forbidden",              "forbidden" },
  { 404, "Not Found",              "not-found" },
  { 405, "Method Not Allowed",     "method-not-allowed" },
  { 409, "Conflict",               "conflict" },
  { 413, "Content Too Large",      "too-large" },
  { 415, "Unsupported Media Type", "unsupported-media-type" },
  { 422, "Unprocessable Content",  "rule-failed" },
  { 429, "Too Many Requests",      "rate-limited" },
  { 431, "Request Header Fields Too Large", "headers-too-large" },
  { 500, "Internal Server Error",  "internal" },
  { 502, "Bad Gateway",            "adapter" },
  { 503, "Service Unavailable",    "unavailable" },
};

const char *rv__status_title(int status){
  for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++)
    if (titles[i].status == status) return titles[i].title;
  return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
}

static const char *status_type(int status){
  for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++)
    if (titles[i].status == status) return titles[i].type;
  return "error";
}

cJSON *rv__problem_json(int status, const char *detail, const char *request_id){
  cJSON *o = cJSON_CreateObject();
  char type[64];
  snprintf(type, sizeof type, "urn:ravand:problem:%s", status_type(status));
  cJSON_AddStringToObject(o, "type", type);
  cJSON_AddStringToObject(o, "title", rv__status_title(status));
  cJSON_AddNumberToObject(o, "status", status);
  if (detail) cJSON_AddStringToObject(o, "detail", detail);
  if (request_id) cJSON_AddStringToObject(o, "request_id", request_id);
  return o;
}

static void clear_reply(rv_req *r){
  cJSON_Delete(r->out);
  r->out = NULL;
  rv_free(r->raw);
  r->raw = NULL;
  r->raw_len = 0;
  r->ctype = NULL;
}

void rv__reply_json(rv_req *r, int status, cJSON *body){
  clear_reply(r);
  r->status = status;
  r->out = body;
}

void rv__reply_raw(rv_req *r, int status, const char *ctype, char *data, size_t len){
  clear_reply(r);
  r->status = status;
  r->raw = data;
  r->raw_len = len;
  r->ctype = ctype;
}

void rv__problem(rv_req *r, int status, const char *fmt, ...){
  char detail[sizeof r->detail];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  snprintf(r->detail, sizeof r->detail, "%s", detail);
  rv__reply_json(r, status, rv__problem_json(status, detail, r->id));
}

/* One body for "does not exist" and "not yours": no enumeration oracle. */
void rv__not_found(rv_req *r){
  rv__problem(r, 404, "no such object");
  r->audit = true;          /* missing or not yours: both worth a row */
}

void rv__forbidden(rv_req *r){
  rv__problem(r, 403, "your role may not do this");
}

void rv__reply_err(rv_req *r, rv_status s, const rv_err *err){
  const char *msg = err && err->msg[0] ? err->msg : rv_status_text(s);
  switch (s) {
  case RV_INVALID:  rv__problem(r, 400, "%s", msg); break;
  case RV_NOTFOUND: rv__not_found(r); break;
  case RV_CONFLICT: rv__problem(r, 409, "%s", msg); break;
  case RV_DENIED:   rv__forbidden(r); break;
  case RV_SCRIPT:   rv__problem(r, 422, "%s", msg); break;
  case RV_ADAPTER:  rv__problem(r, 502, "an adapter call failed"); break;
  case RV_BUSY:
  case RV_NOMEM:    rv__problem(r, 503, "the store is busy; retry"); r->retry_after = 1; break;
  case RV_FULL:
    fprintf(stderr, "ravand: request %s: %s\n", r->id, msg);
    rv__problem(r, 507, "the server's disk is full; retry later");
    r->retry_after = 30;
    break;
  default:
    /* Store or engine failure: no SQL, paths or internals in the reply;
    ** the log has the message under the request id. */
    fprintf(stderr, "ravand: request %s: %s: %s\n", r->id, rv_status_name(s), msg);
    rv__problem(r, 500, "internal error; quote the request id");
    break;
  }
}

/*--- Identifiers -------------------------------------------------------------*/

bool rv__valid_ident(const char *s, size_t max){
  size_t n = 0;
  if (s == NULL || !*s) return false;
  for (; s[n]; n++) {
    unsigned char c = (unsigned char)s[n];
    if (n >= max) return false;
    if (!(isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

bool rv__valid_scope(const char *s, bool allow_slash){
  return rv_valid_scope_value(s, allow_slash);
}

/*--- Query strings -----------------------------------------------------------*/

bool rv__q_parse(rv_req *r, const char *const *allowed){
  struct evkeyval *kv;
  if (!r->query_ok) {
    TAILQ_INIT(&r->query);
    r->query_ok = true;
    if (r->query_text && evhttp_parse_query_str(r->query_text, &r->query) != 0) {
      rv__problem(r, 400, "the query string is malformed");
      return false;
    }
  }
  TAILQ_FOREACH(kv, &r->query, next) {
    bool known = false;
    struct evkeyval *o;
    for (int i = 0; allowed && allowed[i]; i++) if (strcmp(allowed[i], kv->key) == 0) known = true;
    if (!known) {
      char k[48];
      size_t n = 0;
      for (const char *p = kv->key; *p && n < sizeof k - 1; p++)
        k[n++] = isprint((unsigned char)*p) ? *p : '?';
      k[n] = 0;
      rv__problem(r, 400, "unknown query parameter '%s'", k);
      return false;
    }
    for (o = TAILQ_NEXT(kv, next); o; o = TAILQ_NEXT(o, next))
      if (strcmp(o->key, kv->key) == 0) {
        rv__problem(r, 400, "query parameter '%s' is repeated", kv->key);
        return false;
      }
  }
  return true;
}

const char *rv__q_str(rv_req *r, const char *key){
  if (!r->query_ok) return NULL;
  return evhttp_find_header(&r->query, key);
}

static bool parse_i64(const char *s, int64_t *out){
  char *end;
  long long v;
  if (s == NULL || !*s || strlen(s) > 19) return false;
  for (const char *p = *s == '-' ? s + 1 : s; *p; p++) if (!isdigit((unsigned char)*p)) return false;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

bool rv__q_int(rv_req *r, const char *key, int64_t min, int64_t max, int64_t *out, bool *present){
  const char *v = rv__q_str(r, key);
  int64_t x;
  if (present) *present = v != NULL;
  if (v == NULL) return true;
  if (!parse_i64(v, &x) || x < min || x > max) {
    rv__problem(r, 400, "query parameter '%s' must be an integer in %lld..%lld", key,
                (long long)min, (long long)max);
    return false;
  }
  *out = x;
  return true;
}

bool rv__q_time(rv_req *r, const char *key, int64_t *out, bool *present){
  const char *v = rv__q_str(r, key);
  if (present) *present = v != NULL;
  if (v == NULL) return true;
  if (parse_i64(v, out) && *out >= 0) return true;
  if (strlen(v) < 64 && rv_datetime_parse(v, out, NULL) == RV_OK) return true;
  rv__problem(r, 400, "query parameter '%s' must be an ISO 8601 time or epoch milliseconds", key);
  return false;
}

bool rv__q_bool(rv_req *r, const char *key, bool *out, bool *present){
  const char *v = rv__q_str(r, key);
  if (present) *present = v != NULL;
  if (v == NULL) return true;
  if (strcmp(v, "true") == 0) { *out = true; return true; }
  if (strcmp(v, "false") == 0) { *out = false; return true; }
  rv__problem(r, 400, "query parameter '%s' must be true or false", key);
  return false;
}

bool rv__q_page(rv_req *r, int64_t *limit, int64_t *offset){
  *limit = 50;
  *offset = 0;
  return rv__q_int(r, "limit", 1, 500, limit, NULL) &&
         rv__q_int(r, "offset", 0, 1000000000, offset, NULL);
}

void rv__reply_page_sql(rv_req *r, rv_sql *q, int64_t limit, int64_t offset, void (*each)(cJSON *row)){
  rv_err err;
  cJSON *rows, *o, *row;
  bool more;
  rv__sql_i(q, " LIMIT ?", limit + 1);       /* the extra row only says "more" */
  rv__sql_i(q, " OFFSET ?", offset);
  rows = rv__sql_rows(r->api, q, &err);
  rv__sql_fini(q);
  if (rows == NULL) { rv__reply_err(r, err.code, &err); return; }
  more = cJSON_GetArraySize(rows) > limit;
  if (more) cJSON_DeleteItemFromArray(rows, (int)limit);
  if (each) cJSON_ArrayForEach(row, rows) each(row);
  o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "items", rows);
  cJSON_AddNumberToObject(o, "limit", (double)limit);
  cJSON_AddNumberToObject(o, "offset", (double)offset);
  cJSON_AddBoolToObject(o, "more", more);
  rv__reply_json(r, 200, o);
}

/*--- JSON bodies ---------------------------------------------------------------*/

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) and no NUL. */
static bool utf8_ok(const unsigned char *s, size_t n){
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c == 0) return false;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) {
      if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return false;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return false;
      if (c == 0xE0 && s[i + 1] < 0xA0) return false;
      if (c == 0xED && s[i + 1] >= 0xA0) return false;
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
          (s[i + 3] & 0xC0) != 0x80) return false;
      if (c == 0xF0 && s[i + 1] < 0x90) return false;
      if (c == 0xF4 && s[i + 1] >= 0x90) return false;
      i += 4;
    } else return false;
  }
  return true;
}

static int key_cmp(const void *a, const void *b){
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Duplicate keys: pairwise for small objects, sorted for big ones. */
static bool has_duplicate_keys(const cJSON *o, int n){
  const cJSON *c;
  bool dup = false;
  if (n <= 16) {
    for (c = o->child; c && !dup; c = c->next)
      for (const cJSON *d = c->next; d && !dup; d = d->next) dup = strcmp(c->string, d->string) == 0;
    return dup;
  }
  {
    const char **k = rv_malloc(sizeof *k * (size_t)n);
    int i = 0;
    for (c = o->child; c; c = c->next) k[i++] = c->string;
    qsort(k, (size_t)n, sizeof *k, key_cmp);
    for (i = 1; i < n && !dup; i++) dup = strcmp(k[i - 1], k[i]) == 0;
    rv_free(k);
  }
  return dup;
}

/* Escapes like \ud800 decode to invalid UTF-8 inside cJSON; check again. */
static const char *check_tree(const cJSON *v, int depth, bool big, long *nodes){
  if (++*nodes > JSON_MAX_NODES) return "too many JSON values";
  if (depth > JSON_MAX_DEPTH) return "JSON nested too deeply (limit 32)";
  if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) return "numbers must be finite";
  if (cJSON_IsString(v)) {
    size_t n = strlen(v->valuestring);
    if (n > (big ? (size_t)64 << 20 : JSON_MAX_STRING)) return "a string is longer than 64 KiB";
    if (!utf8_ok((const unsigned char *)v->valuestring, n)) return "strings must be valid UTF-8";
  }
  if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
    const cJSON *c;
    int items = 0;
    cJSON_ArrayForEach(c, v) {
      const char *why;
      if (++items > JSON_MAX_ITEMS) return "an array or object has more than 10000 items";
      if (cJSON_IsObject(v) && !utf8_ok((const unsigned char *)c->string, strlen(c->string)))
        return "keys must be valid UTF-8";
      why = check_tree(c, depth + 1, big, nodes);
      if (why) return why;
    }
    if (cJSON_IsObject(v) && has_duplicate_keys(v, items)) return "duplicate key in a JSON object";
  }
  return NULL;
}

bool rv__body_parse(rv_req *r, const char *data, size_t len, bool big){
  struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
  const char *ct = evhttp_find_header(h, "Content-Type");
  const char *why;
  const char *end = NULL;
  long nodes = 0;
  cJSON *v;

  if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
      (ct[16] != 0 && ct[16] != ';' && ct[16] != ' ')) {
    rv__problem(r, 415, "send the body as application/json");
    return false;
  }
  if (!utf8_ok((const unsigned char *)data, len)) {
    rv__problem(r, 400, "the body is not valid UTF-8 text");
    return false;
  }
  /* cJSON keeps strings NUL-terminated: a \u0000 escape would cut one short */
  for (size_t i = 0; i + 1 < len; i++) {
    if (data[i] != '\\') continue;
    if (data[i + 1] == 'u' && i + 5 < len && strncmp(data + i + 2, "0000", 4) == 0) {
      rv__problem(r, 400, "strings must not contain NUL (\\u0000)");
      return false;
    }
    i++;                              /* skip the escaped character */
  }
  v = cJSON_ParseWithLengthOpts(data, len, &end, 0);
  if (v == NULL) {
    size_t at = end && end >= data ? (size_t)(end - data) : 0;
    rv__problem(r, 400, "the body is not valid JSON (near byte %zu)", at);
    return false;
  }
  /* trailing garbage */
  while (end && (size_t)(end - data) < len && isspace((unsigned char)*end)) end++;
  if (end == NULL || (size_t)(end - data) != len) {
    cJSON_Delete(v);
    rv__problem(r, 400, "the body has text after the JSON value");
    return false;
  }
  if (!cJSON_IsObject(v)) {
    cJSON_Delete(v);
    rv__problem(r, 400, "the body must be a JSON object");
    return false;
  }
  why = check_tree(v, 1, big, &nodes);
  if (why) {
    cJSON_Delete(v);
    rv__problem(r, 400, "%s", why);
    return false;
  }
  r->body = v;
  return true;
}

bool rv__body_fields(rv_req *r, const cJSON *o, const char *where, const char *const *allowed){
  const cJSON *c;
  cJSON_ArrayForEach(c, o) {
    bool known = false;
    for (int i = 0; allowed[i]; i++) if (strcmp(allowed[i], c->string) == 0) known = true;
    if (!known) {
      char k[48];
      size_t n = 0;
      for (const char *p = c->string; *p && n < sizeof k - 1; p++)
        k[n++] = isprint((unsigned char)*p) ? *p : '?';
      k[n] = 0;
      rv__problem(r, 400, "unknown field '%s'%s%s", k, where ? " in " : "", where ? where : "");
      return false;
    }
  }
  return true;
}

bool rv__body_str(rv_req *r, const cJSON *o, const char *key, bool required, size_t max,
                  const char **out){
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  *out = NULL;
  if (v == NULL || cJSON_IsNull(v)) {
    if (required) { rv__problem(r, 400, "field '%s' is required", key); return false; }
    return true;
  }
  if (!cJSON_IsString(v)) { rv__problem(r, 400, "field '%s' must be a string", key); return false; }
  if (strlen(v->valuestring) > max) {
    rv__problem(r, 400, "field '%s' is longer than %zu bytes", key, max);
    return false;
  }
  if (required && !*v->valuestring) { rv__problem(r, 400, "field '%s' must not be empty", key); return false; }
  *out = v->valuestring;
  return true;
}

bool rv__body_obj(rv_req *r, const cJSON *o, const char *key, bool required, const cJSON **out){
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  *out = NULL;
  if (v == NULL || cJSON_IsNull(v)) {
    if (required) { rv__problem(r, 400, "field '%s' is required", key); return false; }
    return true;
  }
  if (!cJSON_IsObject(v)) { rv__problem(r, 400, "field '%s' must be a JSON object", key); return false; }
  *out = v;
  return true;
}

bool rv__body_int(rv_req *r, const cJSON *o, const char *key, bool required, int64_t min,
                  int64_t max, int64_t *out, bool *present){
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  if (present) *present = false;
  if (v == NULL || cJSON_IsNull(v)) {
    if (required) { rv__problem(r, 400, "field '%s' is required", key); return false; }
    return true;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
      v->valuedouble < (double)min || v->valuedouble > (double)max) {
    rv__problem(r, 400, "field '%s' must be an integer in %lld..%lld", key, (long long)min,
                (long long)max);
    return false;
  }
  *out = (int64_t)v->valuedouble;
  if (present) *present = true;
  return true;
}

/*--- Relative file paths (console files, deployed files) ---------------------------*/

/* The one shape of a path a client may name a file by, for the console's
** static files (console.c) and the files of a deployment (definitions.c):
** 1-4 segments of [A-Za-z0-9._-], none empty or starting with '.', at most
** 200 bytes. So "..", hidden files, absolute paths, encoded bytes and
** anything outside ASCII cannot be named; callers add their own suffix or
** extension rule. */
bool rv__safe_relpath(const char *p){
  int segs = 0;
  size_t n = p ? strlen(p) : 0;
  if (n == 0 || n > 200) return false;
  for (const char *s = p; *s; ) {
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 0 || s[0] == '.' || ++segs > 4) return false;
    for (size_t i = 0; i < len; i++) {
      char c = s[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-')) return false;
    }
    s = e ? e + 1 : s + len;
  }
  return true;
}
