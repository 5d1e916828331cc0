/*
** journal/reads.c -- the variables a Lua expression reads (see reads.h).
**
** A small scanner, not a Lua parser: identifiers outside string literals
** and comments, not preceded by '.' or ':' (fields, methods) and not Lua
** keywords. A name followed by '(' is a function call and is skipped
** unless it is a variable (a variable holding a function does not cross
** from JSON anyway). Good enough for gateway conditions, which are short.
*/
#include <ctype.h>
#include <string.h>
#include "journal/reads.h"
#include "core/json.h"
#include "core/mem.h"

static const char *const keywords[] = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
  "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true",
  "until", "while", NULL
};

static bool is_keyword(const char *s, size_t n){
  for (int i = 0; keywords[i]; i++)
    if (strlen(keywords[i]) == n && memcmp(keywords[i], s, n) == 0) return true;
  return false;
}

/* Skip a string literal or long bracket starting at p; returns the end. */
static const char *skip_string(const char *p){
  if (*p == '"' || *p == '\'') {
    char q = *p++;
    while (*p && *p != q) { if (*p == '\\' && p[1]) p++; p++; }
    return *p ? p + 1 : p;
  }
  if (*p == '[') {                 /* [[...]] or [==[...]==] */
    const char *s = p + 1;
    size_t eq = 0;
    while (*s == '=') { s++; eq++; }
    if (*s != '[') return NULL;
    for (s++; *s; s++) {
      if (*s == ']' && strncmp(s + 1, "==========", eq) == 0 && s[1 + eq] == ']')
        return s + 2 + eq;
    }
    return s;
  }
  return NULL;
}

void rv_journal_reads(const char *expr, const cJSON *vars, rv_buf *out){
  char seen[32][64];
  int n_seen = 0;
  const char *p = expr;
  char prev = 0;                   /* last non-space character before the name */

  if (expr == NULL) return;
  while (*p) {
    const char *q;
    if (p[0] == '-' && p[1] == '-') {                    /* comment */
      q = p[2] == '[' ? skip_string(p + 2) : NULL;
      if (q) p = q;
      else while (*p && *p != '\n') p++;
      continue;
    }
    if (*p == '"' || *p == '\'' || (*p == '[' && (p[1] == '[' || p[1] == '='))) {
      q = skip_string(p);
      if (q) { p = q; prev = '"'; continue; }
    }
    if (isalpha((unsigned char)*p) || *p == '_') {
      const char *s = p;
      size_t n;
      while (isalnum((unsigned char)*p) || *p == '_') p++;
      n = (size_t)(p - s);
      if (prev != '.' && prev != ':' && !is_keyword(s, n) && n < 64) {
        char name[64];
        bool dup = false;
        const cJSON *v;
        memcpy(name, s, n);
        name[n] = 0;
        for (int i = 0; i < n_seen; i++) if (strcmp(seen[i], name) == 0) dup = true;
        v = rv_json_member(vars, name);
        if (!dup && n_seen < 32) {
          const char *r = p;
          while (*r == ' ' || *r == '\t') r++;
          /* a call of a library or module function: not a variable */
          if (v != NULL || (*r != '(' && *r != '.' && *r != ':' && *r != '"' && *r != '{')) {
            char *text = v ? rv_json_print(v) : NULL;
            size_t len = text ? strlen(text) : 3;
            rv_buf_adds(out, n_seen ? ", " : " (");
            rv_buf_add(out, name, n);
            rv_buf_add(out, "=", 1);
            if (text == NULL) rv_buf_adds(out, "nil");
            else if (len <= 60) rv_buf_adds(out, text);
            else {
              size_t cut = 57;
              while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80) cut--;   /* UTF-8 */
              rv_buf_add(out, text, cut);
              rv_buf_adds(out, "...");
            }
            if (text) rv_free(text);
            memcpy(seen[n_seen++], name, n + 1);
          }
        }
      }
      prev = 'a';
      continue;
    }
    if (!isspace((unsigned char)*p)) prev = *p;
    p++;
  }
  if (n_seen) rv_buf_adds(out, ")");
}
