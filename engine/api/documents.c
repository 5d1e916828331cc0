/*
** api/documents.c -- the portal's document store: POST /v1/documents,
** GET /v1/documents/{sha256}, and the check on "doc:sha256-..." references
** in task data and start variables.
**
** A document is one file (JPEG, PNG or PDF) uploaded as the raw request
** body. It is content-addressed per owner: its id is "doc:sha256-<64 hex>",
** and the same bytes uploaded again by the same principal are the same
** document (201 the first time, 200 after). The engine stores no files: a
** process variable holds the id, the bytes live here (store migration 7).
**
** Who may read a document (deny by default, the same 404 otherwise):
**   - its owner (the principal who uploaded it);
**   - staff and operators who may see an instance (policy.c) that the
**     document was given to: a start or a task completion whose data
**     referred to it records the link (document_refs).
** A reference can only be made by the owner: a start, a completion, or an
** operator's message or signal (messages.c) whose data name a document that
** does not exist or is someone else's is refused with 422, so nobody can
** make a case point at another person's file (and so make it readable to
** the staff of that case).
**
** Bounded: one file <= --max-document [2 MiB]; per principal at most
** --document-quota files [50] and --document-quota-bytes [20 MiB]; at most
** MAX_REFS references per call.
*/
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>
#include "core/sha256.h"
#include "api/api_int.h"
#include "core/mem.h"

#define DOC_PREFIX "doc:sha256-"
#define DOC_PREFIX_LEN 11
#define SHA_HEX 64
#define MAX_REFS 64

/* The types we take, each with the bytes its files begin with. A client's
** Content-Type is a claim; the magic bytes must agree with it, so a file
** is always served back with the type it really has. */
static const struct { const char *type, *ext; const char *magic; size_t n; } types[] = {
  { "image/jpeg",      "jpg", "\xFF\xD8\xFF", 3 },
  { "image/png",       "png", "\x89PNG\r\n\x1A\n", 8 },
  { "application/pdf", "pdf", "%PDF-", 5 },
};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

/* The media type of a Content-Type value (parameters dropped), or -1. */
static int type_of(const char *ct){
  size_t n;
  if (ct == NULL) return -1;
  while (*ct == ' ') ct++;
  n = strcspn(ct, "; ");
  for (int i = 0; i < N_TYPES; i++)
    if (strlen(types[i].type) == n && strncasecmp(ct, types[i].type, n) == 0) return i;
  return -1;
}

static bool valid_hex(const char *s, size_t n){
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return s[n] == 0;
}

static void doc_json(rv_req *r, int status, const char *hex, int64_t size, const char *type){
  cJSON *o = cJSON_CreateObject();
  char id[DOC_PREFIX_LEN + SHA_HEX + 1];
  snprintf(id, sizeof id, DOC_PREFIX "%s", hex);
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddNumberToObject(o, "size", (double)size);
  cJSON_AddStringToObject(o, "type", type);
  if (status == 201) r->location = rv_asprintf("/v1/documents/%s", hex);
  rv__reply_json(r, status, o);
}

/*--- POST /v1/documents --------------------------------------------------------*/

/* Within the caller's quota with one more file of len bytes? */
static bool quota_ok(rv_req *r, size_t len){
  rv_api *a = r->api;
  sqlite3_stmt *s = rv_store_stmt(a->st, "SELECT count(*), coalesce(sum(size),0) FROM documents WHERE owner_id=?");
  int64_t n = 0, bytes = 0;
  rv_store_bind(s, "i", r->p.id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    n = sqlite3_column_int64(s, 0);
    bytes = sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  if (n + 1 > a->cfg.document_quota || (uint64_t)bytes + len > a->cfg.document_quota_bytes) {
    rv__problem(r, 409, "your document quota is used up (%d files, %zu bytes); you have %lld files, %lld bytes",
                a->cfg.document_quota, a->cfg.document_quota_bytes, (long long)n, (long long)bytes);
    return false;
  }
  return true;
}

void rv__h_document_upload(rv_req *r){
  struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
  size_t len = evbuffer_get_length(in);
  const unsigned char *data;
  char hex[SHA_HEX + 1];
  sqlite3_stmt *s;
  int ti;
  bool have;
  int64_t size = 0;

  if (!rv__q_parse(r, NULL)) return;
  ti = type_of(evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Content-Type"));
  if (ti < 0) {
    rv__problem(r, 415, "send the file as the body with Content-Type image/jpeg, image/png or application/pdf");
    return;
  }
  if (len == 0) { rv__problem(r, 400, "the body is the file; it is empty"); return; }
  data = evbuffer_pullup(in, -1);
  if (len < types[ti].n || memcmp(data, types[ti].magic, types[ti].n) != 0) {
    rv__problem(r, 422, "the file is not a %s (its first bytes do not match its Content-Type)", types[ti].type);
    return;
  }
  rv_sha256_hex(data, len, hex);
  snprintf(r->object, sizeof r->object, DOC_PREFIX "%s", hex);
  snprintf(r->detail, sizeof r->detail, "%s, %zu bytes", types[ti].type, len);

  /* the same bytes from the same owner: the same document */
  s = rv_store_stmt(r->api->st, "SELECT size FROM documents WHERE sha256=? AND owner_id=?");
  rv_store_bind(s, "ti", hex, r->p.id);
  have = sqlite3_step(s) == SQLITE_ROW;
  if (have) size = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (have) { doc_json(r, 200, hex, size, types[ti].type); return; }

  if (!quota_ok(r, len)) return;
  s = rv_store_stmt(r->api->st, "INSERT INTO documents(sha256, owner_id, owner_national_id, type, size, created, data)"
                                " VALUES(?,?,?,?,?,?,?)");
  rv_store_bind(s, "titti", hex, r->p.id, r->p.national_id[0] ? r->p.national_id : NULL, types[ti].type,
                (int64_t)len);
  sqlite3_bind_int64(s, 6, rv_clock_now(rv_engine_clock(r->api->e)));
  sqlite3_bind_blob64(s, 7, data, len, SQLITE_STATIC);
  if (sqlite3_step(s) != SQLITE_DONE) {
    rv_err err;
    rv_status rc = rv_fail(&err, sqlite3_errcode(rv_store_db(r->api->st)) == SQLITE_BUSY ? RV_BUSY : RV_IO,
                           "document insert: %s", sqlite3_errmsg(rv_store_db(r->api->st)));
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);      /* the blob was bound without a copy */
    rv__reply_err(r, rc, &err);
    return;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  doc_json(r, 201, hex, (int64_t)len, types[ti].type);
}

/*--- GET /v1/documents/{sha256} -------------------------------------------------------*/

/* The row id of the document hex that p may read, or 0. Applicants and
** organisations read their own uploads only (they never see variables);
** staff and operators also those given to an instance they may see. */
static int64_t visible_doc(rv_req *r, const char *hex){
  rv_sql q;
  rv_err err;
  cJSON *rows;
  int64_t id = 0;
  rv__sql_init(&q, "SELECT d.id FROM documents d WHERE ");
  rv__sql_t(&q, "d.sha256=?", hex);
  rv__sql_i(&q, " AND (d.owner_id=?", r->p.id);
  if (ROLES_STAFF & (1u << r->p.role)) {
    rv__sql_add(&q, " OR EXISTS (SELECT 1 FROM document_refs x JOIN instances i ON i.id=x.instance_id"
                    " WHERE x.document_id=d.id");
    rv__scope_instances(&q, &r->p);
    rv__sql_add(&q, ")");
  }
  rv__sql_add(&q, ") ORDER BY d.owner_id<>");
  rv__sql_i(&q, "? LIMIT 1", r->p.id);
  rows = rv__sql_rows(r->api, &q, &err);
  rv__sql_fini(&q);
  if (rows && cJSON_GetArraySize(rows) == 1) id = rv_json_int(cJSON_GetArrayItem(rows, 0), "id", 0);
  cJSON_Delete(rows);
  return id;
}

void rv__h_document_get(rv_req *r){
  const char *hex = r->n_names > 0 ? r->names[0] : "";
  sqlite3_stmt *s;
  int64_t id;
  int ti = -1;
  char *data = NULL;
  size_t len = 0;
  char disp[128];

  if (!rv__q_parse(r, NULL)) return;
  snprintf(r->object, sizeof r->object, DOC_PREFIX "%.64s", hex);
  if (strlen(hex) != SHA_HEX || !valid_hex(hex, SHA_HEX) || (id = visible_doc(r, hex)) == 0) {
    rv__not_found(r);
    return;
  }
  s = rv_store_stmt(r->api->st, "SELECT type, data FROM documents WHERE id=?");
  rv_store_bind(s, "i", id);
  if (sqlite3_step(s) == SQLITE_ROW) {
    ti = type_of((const char *)sqlite3_column_text(s, 0));
    len = (size_t)sqlite3_column_bytes(s, 1);
    data = rv_malloc(len ? len : 1);
    if (len) memcpy(data, sqlite3_column_blob(s, 1), len);
  }
  sqlite3_reset(s);
  if (ti < 0) { rv_free(data); rv__not_found(r); return; }
  /* a download, never rendered in the console's origin (nosniff: send_reply) */
  snprintf(disp, sizeof disp, "attachment; filename=\"%.16s.%s\"", hex, types[ti].ext);
  evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Disposition", disp);
  snprintf(r->detail, sizeof r->detail, "%s, %zu bytes", types[ti].type, len);
  rv__reply_raw(r, 200, types[ti].type, data, len);
}

/*--- References in task data and start variables -------------------------------------*/

typedef struct refs {
  const char *hex[MAX_REFS];
  int n;
  bool too_many;
  const char *bad;           /* a malformed "doc:sha256-" string */
} refs;

/* Collect the distinct document references in v (bounded: the body parser
** already limited depth and size). */
static void collect(const cJSON *v, refs *f){
  if (cJSON_IsString(v) && v->valuestring && strncmp(v->valuestring, DOC_PREFIX, DOC_PREFIX_LEN) == 0) {
    const char *hex = v->valuestring + DOC_PREFIX_LEN;
    if (strlen(hex) != SHA_HEX || !valid_hex(hex, SHA_HEX)) { if (!f->bad) f->bad = v->valuestring; return; }
    for (int i = 0; i < f->n; i++) if (strcmp(f->hex[i], hex) == 0) return;
    if (f->n == MAX_REFS) { f->too_many = true; return; }
    f->hex[f->n++] = hex;
    return;
  }
  if (cJSON_IsArray(v) || cJSON_IsObject(v))
    for (const cJSON *c = v->child; c; c = c->next) collect(c, f);
}

static int64_t own_doc(rv_req *r, const char *hex){
  sqlite3_stmt *s = rv_store_stmt(r->api->st, "SELECT id FROM documents WHERE sha256=? AND owner_id=?");
  int64_t id = 0;
  rv_store_bind(s, "ti", hex, r->p.id);
  if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  return id;
}

bool rv__doc_refs_check(rv_req *r, const cJSON *v){
  refs f = {0};
  if (v == NULL) return true;
  collect(v, &f);
  if (f.bad) {
    rv__problem(r, 422, "'%.40s...' is not a document id (doc:sha256-<64 hex digits>)", f.bad);
    return false;
  }
  if (f.too_many) {
    rv__problem(r, 422, "more than %d documents in one call", MAX_REFS);
    return false;
  }
  for (int i = 0; i < f.n; i++)
    if (own_doc(r, f.hex[i]) == 0) {
      /* missing and "someone else's" look the same */
      rv__problem(r, 422, "document doc:sha256-%.64s is not one you uploaded (POST /v1/documents)", f.hex[i]);
      return false;
    }
  return true;
}

rv_status rv__doc_refs_link(rv_req *r, const cJSON *v, int64_t inst, rv_err *err){
  refs f = {0};
  if (v == NULL || inst <= 0) return RV_OK;
  collect(v, &f);
  for (int i = 0; i < f.n; i++) {
    int64_t id = own_doc(r, f.hex[i]);
    rv_status rc;
    if (id == 0) continue;           /* checked before the call: cannot happen */
    rc = rv_store_exec(r->api->st, err, "INSERT OR IGNORE INTO document_refs(document_id, instance_id) VALUES(?,?)",
                       "ii", id, inst);
    if (rc != RV_OK) return rc;
  }
  return RV_OK;
}
