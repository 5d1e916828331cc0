/*
** tests/json_quirks.h -- where rv_json_parse (core/json.c) and cJSON may
** disagree on purpose: a \u escape without four hex digits, or a surrogate
** out of its pair. cJSON lets some of these through (an invalid \u reads
** as U+0000); rv_json_parse refuses them all. Used by tests/unit/test_json.c
** and tests/fuzz/fuzz_json.c, which check everything else against cJSON.
*/
#ifndef RV_TESTS_JSON_QUIRKS_H
#define RV_TESTS_JSON_QUIRKS_H
#include <stdbool.h>
#include <string.h>

static inline bool bad_u_escape(const char *s){
  for (const char *p = s; (p = strstr(p, "\\u")) != NULL; p += 2) {
    unsigned v = 0;
    if (p > s && p[-1] == '\\') continue;        /* "\\u": an escaped backslash, then u */
    for (int i = 2; i < 6; i++) {
      char c = p[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return true;
      v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
    }
    if (v >= 0xDC00 && v <= 0xDFFF) return true;
    if (v >= 0xD800 && v <= 0xDBFF) {
      if (p[6] != '\\' || p[7] != 'u') return true;
      p += 6;
    }
  }
  return false;
}

#endif
