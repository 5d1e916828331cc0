/* core/json.c -- small cJSON conveniences. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "core/json.h"
#include "core/buf.h"
#include "core/mem.h"

/* cJSON's allocations through the small-block pool: a parsed state of 2 KB
** is some 200 blocks, allocated and freed by every command that loads a
** case (marriage month end: 12% fewer instructions). Installed by a
** constructor, before main(), so that no cJSON block can predate it (a
** block from malloc would reach rv_pool_free) -- in every program that
** links this file; one that does not (a test of cJSON alone) keeps
** malloc and free throughout, consistent too. Under AddressSanitizer the
** pool keeps nothing and every block is its own malloc: a block freed
** through the wrong function is reported there. */
static void *pool_alloc_hook(size_t n){ return rv_pool_alloc(n); }

__attribute__((constructor)) static void json_hooks(void){
  cJSON_Hooks h = { pool_alloc_hook, rv_pool_free };
  cJSON_InitHooks(&h);
}

cJSON *rv_json_member(const cJSON *o, const char *key){
  cJSON *c;
  if (o == NULL || key == NULL || !cJSON_IsObject(o)) return NULL;
  for (c = o->child; c; c = c->next)
    if (c->string && c->string[0] == key[0] && strcmp(c->string, key) == 0) return c;
  return NULL;
}

const char *rv_json_str(const cJSON *o, const char *key){
  const cJSON *v = rv_json_member(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}
int64_t rv_num_i64(double d){
  if (d >= 9223372036854775807.0) return INT64_MAX;    /* 2^63: the first double past the range */
  if (d <= -9223372036854775808.0) return INT64_MIN;
  if (d != d) return 0;                                /* NaN */
  return (int64_t)d;
}
bool rv_num_whole(double d, int64_t *out){
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return false;
  *out = (int64_t)d;
  return true;
}
int64_t rv_json_int(const cJSON *o, const char *key, int64_t dflt){
  const cJSON *v = rv_json_member(o, key);
  return cJSON_IsNumber(v) ? rv_num_i64(v->valuedouble) : dflt;
}
bool rv_json_bool(const cJSON *o, const char *key, bool dflt){
  const cJSON *v = rv_json_member(o, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}
static void put_int(rv_buf *b, int64_t v){
  char tmp[24];
  int i = (int)sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) tmp[--i] = '-';
  rv_buf_add(b, tmp + i, sizeof tmp - (size_t)i);
}

/* The escapes cJSON writes: two bytes for the usual ones, \u00XX for the
** other control bytes. */
size_t rv_json_escape(unsigned char c, char out[6]){
  static const char hex[] = "0123456789abcdef";
  out[0] = '\\';
  switch (c) {
  case '"':  out[1] = '"'; return 2;
  case '\\': out[1] = '\\'; return 2;
  case '\n': out[1] = 'n'; return 2;
  case '\r': out[1] = 'r'; return 2;
  case '\t': out[1] = 't'; return 2;
  case '\b': out[1] = 'b'; return 2;
  case '\f': out[1] = 'f'; return 2;
  default:
    out[1] = 'u'; out[2] = '0'; out[3] = '0'; out[4] = hex[c >> 4]; out[5] = hex[c & 15];
    return 6;
  }
}

static void put_string(rv_buf *b, const char *s){
  rv_buf_add(b, "\"", 1);
  for (;;) {
    size_t n = rv_json_plain_len(s);      /* the run that needs no escape */
    char e[6];
    rv_buf_add(b, s, n);
    s += n;
    if (*s == 0) break;
    rv_buf_add(b, e, rv_json_escape((unsigned char)*s++, e));
  }
  rv_buf_add(b, "\"", 1);
}

/* 1 for the bytes a JSON string cannot hold as they are (NUL ends it) */
static const unsigned char NEEDS_ESCAPE[256] = {
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
};

/* Byte by byte through the table: most strings here are short (keys,
** codes, dates), and word-at-a-time scanning cost more than it saved
** (measured: 64 -> 104 M instructions in the feed import). */
size_t rv_json_plain_len(const char *s){
  size_t n = 0;
  while (!NEEDS_ESCAPE[(unsigned char)s[n]]) n++;
  return n;
}

/* pre (unless 0), s quoted, post (unless 0). A state is mostly short strings
** without escapes: those are written into the buffer in one go. */
static void put_quoted(rv_buf *b, const char *s, char pre, char post){
  size_t n = rv_json_plain_len(s);
  if (s[n] == 0 && !b->toobig && n + 4 < b->cap - b->len) {   /* room for n + 5 */
    char *w = b->p + b->len;
    if (pre) *w++ = pre;
    *w++ = '"';
    memcpy(w, s, n);
    w += n;
    *w++ = '"';
    if (post) *w++ = post;
    *w = 0;
    b->len = (size_t)(w - b->p);
    return;
  }
  if (pre) rv_buf_add(b, &pre, 1);
  put_string(b, s);
  if (post) rv_buf_add(b, &post, 1);
}

void rv_json_write_string(rv_buf *b, const char *s){ put_quoted(b, s ? s : "", 0, 0); }

void rv_json_write(rv_buf *b, const cJSON *v){
  const cJSON *c;
  if (v == NULL || cJSON_IsNull(v) || cJSON_IsInvalid(v)) { rv_buf_add(b, "null", 4); return; }
  if (cJSON_IsFalse(v)) { rv_buf_add(b, "false", 5); return; }
  if (cJSON_IsTrue(v)) { rv_buf_add(b, "true", 4); return; }
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (!isfinite(d)) rv_buf_add(b, "null", 4);
    else if (d == floor(d) && fabs(d) <= 9007199254740992.0) put_int(b, (int64_t)d);
    else {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%1.15g", d);
      if (strtod(tmp, NULL) != d) snprintf(tmp, sizeof tmp, "%1.17g", d);
      rv_buf_adds(b, tmp);
    }
    return;
  }
  if (cJSON_IsString(v)) { put_quoted(b, v->valuestring ? v->valuestring : "", 0, 0); return; }
  if (cJSON_IsRaw(v)) { rv_buf_adds(b, v->valuestring ? v->valuestring : ""); return; }
  if (cJSON_IsArray(v)) {
    rv_buf_add(b, "[", 1);
    for (c = v->child; c; c = c->next) {
      if (c != v->child) rv_buf_add(b, ",", 1);
      rv_json_write(b, c);
    }
    rv_buf_add(b, "]", 1);
    return;
  }
  if (v->child == NULL) { rv_buf_add(b, "{}", 2); return; }
  for (c = v->child; c; c = c->next) {           /* {"key": and ,"key": in one append */
    put_quoted(b, c->string ? c->string : "", c == v->child ? '{' : ',', ':');
    rv_json_write(b, c);
  }
  rv_buf_add(b, "}", 1);
}

char *rv_json_print(const cJSON *o){
  rv_buf b;
  if (o == NULL) return rv_strdup("null");
  rv_buf_init(&b, SIZE_MAX / 4);
  b.cap = 256;                         /* most texts fit: no regrowth */
  b.p = rv_malloc(b.cap);
  b.p[0] = 0;
  rv_json_write(&b, o);
  return rv_buf_take(&b);
}
char *rv_json_text(const cJSON *v){
  if (v == NULL) return rv_strdup("");
  if (cJSON_IsString(v)) return rv_strdup(v->valuestring);
  {
    int64_t x;
    if (cJSON_IsNumber(v) && rv_num_whole(v->valuedouble, &x)) return rv_asprintf("%lld", (long long)x);
  }
  return rv_json_print(v);
}
/*--- Parsing -----------------------------------------------------------------
** What cJSON_ParseWithOpts(s, NULL, 1) accepts, built into the same cJSON
** nodes, without its per-number strtod and per-node list walks: integers
** of up to 15 digits are read directly (instance states and payloads are
** mostly integers). Same leniency: whitespace is any byte <= 32, a UTF-8
** BOM is skipped, a number is what strtod reads from the longest run of
** [0-9+-.eE], strings copy bytes as they are; same nesting limit (1000).
** One difference, kept: a \u escape without four hex digits is refused
** (cJSON reads it as U+0000 and cuts the string there). test_json and
** tests/fuzz/fuzz_json.c check the rest against cJSON. */

typedef struct jp { const unsigned char *p; int depth; } jp;

static void jp_ws(jp *j){ while (*j->p && *j->p <= 32) j->p++; }

static cJSON *jp_value(jp *j);

static int hex4(const unsigned char *p, unsigned *out){
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return 0;
  }
  *out = v;
  return 1;
}

/* A string at j->p (after the quote); returns text from cJSON_malloc (it
** becomes a node's key or value) or NULL. */
static char *jp_string(jp *j){
  const unsigned char *p = j->p, *q;
  size_t n = strcspn((const char *)p, "\"\\");
  char *out, *w;
  if (p[n] == '"') {                  /* no escape (most strings): one copy */
    out = cJSON_malloc(n + 1);
    if (out == NULL) return NULL;
    memcpy(out, p, n);
    out[n] = 0;
    j->p = p + n + 1;
    return out;
  }
  n = 0;
  /* length first: escapes never grow the text (\uXXXX is 6 bytes for <= 4) */
  for (q = p; *q && *q != '"'; q++) {
    if (*q == '\\') { if (!q[1]) return NULL; q++; }
    n++;
  }
  if (*q != '"') return NULL;
  out = cJSON_malloc((size_t)(q - p) + 1);
  if (out == NULL) return NULL;
  w = out;
  while (p < q) {
    if (*p != '\\') { *w++ = (char)*p++; continue; }
    p++;
    switch (*p) {
    case 'b': *w++ = '\b'; p++; break;
    case 'f': *w++ = '\f'; p++; break;
    case 'n': *w++ = '\n'; p++; break;
    case 'r': *w++ = '\r'; p++; break;
    case 't': *w++ = '\t'; p++; break;
    case '"': case '\\': case '/': *w++ = (char)*p++; break;
    case 'u': {
      unsigned cp, lo;
      if (q - p < 5 || !hex4(p + 1, &cp)) goto fail;
      p += 5;
      if (cp >= 0xDC00 && cp <= 0xDFFF) goto fail;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF) goto fail;
        p += 6;
        cp = 0x10000 + (((cp & 0x3FF) << 10) | (lo & 0x3FF));
      }
      if (cp < 0x80) *w++ = (char)cp;
      else if (cp < 0x800) { *w++ = (char)(0xC0 | (cp >> 6)); *w++ = (char)(0x80 | (cp & 0x3F)); }
      else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | (cp >> 12)); *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
      } else {
        *w++ = (char)(0xF0 | (cp >> 18)); *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *w++ = (char)(0x80 | (cp & 0x3F));
      }
      break;
    }
    default: goto fail;
    }
  }
  *w = 0;
  (void)n;
  j->p = q + 1;
  return out;
fail:
  cJSON_free(out);
  return NULL;
}

static cJSON *jp_number(jp *j){
  const unsigned char *p = j->p, *e = p;
  double d;
  cJSON *item;
  while ((*e >= '0' && *e <= '9') || *e == '+' || *e == '-' || *e == '.' || *e == 'e' || *e == 'E') e++;
  {
    const unsigned char *x = p;
    bool neg = false;
    if (*x == '-') { neg = true; x++; }
    if (e > x && e - x <= 15) {
      int64_t v = 0;
      const unsigned char *y = x;
      while (y < e && *y >= '0' && *y <= '9') v = v * 10 + (*y++ - '0');
      if (y == e) {                     /* digits only: exact in a double */
        j->p = e;
        return cJSON_CreateNumber((double)(neg ? -v : v));
      }
    }
  }
  {
    char small[64], *buf = small, *end;
    size_t len = (size_t)(e - p);
    if (len == 0) return NULL;
    if (len >= sizeof small && (buf = rv_malloc(len + 1)) == NULL) return NULL;   /* as cJSON: any length */
    memcpy(buf, p, len);
    buf[len] = 0;
    d = strtod(buf, &end);
    len = (size_t)(end - buf);                     /* what strtod read */
    if (buf != small) rv_free(buf);
    if (len == 0) return NULL;
    j->p = p + len;
  }
  item = cJSON_CreateNumber(d);
  return item;
}

static cJSON *jp_container(jp *j, bool object){
  cJSON *c = object ? cJSON_CreateObject() : cJSON_CreateArray(), *last = NULL;
  if (c == NULL) return NULL;
  if (++j->depth > 1000) goto fail;
  j->p++;                     /* { or [ */
  jp_ws(j);
  if (*j->p == (object ? '}' : ']')) { j->p++; j->depth--; return c; }
  for (;;) {
    char *key = NULL;
    cJSON *v;
    if (object) {
      if (*j->p != '"') goto fail;
      j->p++;
      if ((key = jp_string(j)) == NULL) goto fail;
      jp_ws(j);
      if (*j->p != ':') { cJSON_free(key); goto fail; }
      j->p++;
      jp_ws(j);
    }
    v = jp_value(j);
    if (v == NULL) { cJSON_free(key); goto fail; }
    v->string = key;
    if (last == NULL) { c->child = v; v->prev = v; }
    else { last->next = v; v->prev = last; c->child->prev = v; }
    last = v;
    jp_ws(j);
    if (*j->p == ',') { j->p++; jp_ws(j); continue; }
    if (*j->p == (object ? '}' : ']')) { j->p++; break; }
    goto fail;
  }
  j->depth--;
  return c;
fail:
  cJSON_Delete(c);
  return NULL;
}

static cJSON *jp_value(jp *j){
  const unsigned char *p = j->p;
  switch (*p) {
  case '{': return jp_container(j, true);
  case '[': return jp_container(j, false);
  case '"': {
    cJSON *item;
    char *t;
    j->p++;
    if ((t = jp_string(j)) == NULL) return NULL;
    item = cJSON_CreateNull();
    if (item == NULL) { cJSON_free(t); return NULL; }
    item->type = cJSON_String;
    item->valuestring = t;
    return item;
  }
  case 'n': if (strncmp((const char *)p, "null", 4) == 0) { j->p += 4; return cJSON_CreateNull(); } return NULL;
  case 't': if (strncmp((const char *)p, "true", 4) == 0) { j->p += 4; return cJSON_CreateTrue(); } return NULL;
  case 'f': if (strncmp((const char *)p, "false", 5) == 0) { j->p += 5; return cJSON_CreateFalse(); } return NULL;
  default:
    if ((*p >= '0' && *p <= '9') || *p == '-') return jp_number(j);
    return NULL;
  }
}

cJSON *rv_json_parse(const char *s){
  jp j;
  cJSON *v;
  if (s == NULL) return NULL;
  j.p = (const unsigned char *)s;
  j.depth = 0;
  if (j.p[0] == 0xEF && j.p[1] == 0xBB && j.p[2] == 0xBF) j.p += 3;
  jp_ws(&j);
  v = jp_value(&j);
  if (v == NULL) return NULL;
  jp_ws(&j);
  if (*j.p) { cJSON_Delete(v); return NULL; }
  return v;
}
