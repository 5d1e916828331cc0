/*
** tests/json_oracle.h -- what rv_json_parse (core/json.c) is checked
** against, by tests/unit/test_json.c and tests/fuzz/fuzz_json.c:
**   bad_u_escape  where it and cJSON may disagree on purpose: a \u escape
**                 without four hex digits, or a surrogate out of its pair
**                 (cJSON lets some through, an invalid \u reading as U+0000;
**                 rv_json_parse refuses them all);
**   json_same     two trees alike: types, members in order under the same
**                 keys (duplicates too: cJSON_Compare looks members up by
**                 key and cannot tell {"k":1,"k":2} from {"k":2,"k":2}),
**                 strings, numbers.
*/
#ifndef RV_TESTS_JSON_ORACLE_H
#define RV_TESTS_JSON_ORACLE_H
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <cjson/cJSON.h>

static inline bool json_hex4(const char *p, unsigned *v){
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];                      /* stops at a NUL: not a hex digit */
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
    *v = *v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
  }
  return true;
}

/* Escapes are read in pairs from the left, so "\\\u" is an escaped
** backslash and then a \u escape. */
static inline bool bad_u_escape(const char *s){
  for (const char *p = s; *p; p++) {
    unsigned v, lo;
    if (*p != '\\') continue;
    if (p[1] != 'u') { if (p[1]) p++; continue; }     /* a one-byte escape */
    if (!json_hex4(p + 2, &v) || (v >= 0xDC00 && v <= 0xDFFF)) return true;
    if (v >= 0xD800 && v <= 0xDBFF) {                  /* needs its low half */
      if (p[6] != '\\' || p[7] != 'u' || !json_hex4(p + 8, &lo)) return true;
      p += 6;
    }
    p += 5;
  }
  return false;
}

/* printed: b was read back from a's text, where a number that is not
** finite became null (JSON has no infinity; cJSON writes null too) */
static inline bool json_same(const cJSON *a, const cJSON *b, bool printed){
  const cJSON *x, *y;
  if (printed && cJSON_IsNumber(a) && !isfinite(a->valuedouble)) return cJSON_IsNull(b);
  if ((a->type & 0xFF) != (b->type & 0xFF)) return false;
  if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble;
  if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
  for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
    if (cJSON_IsObject(a) && strcmp(x->string, y->string) != 0) return false;
    if (!json_same(x, y, printed)) return false;
  }
  return x == NULL && y == NULL;
}

#endif
