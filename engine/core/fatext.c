/*
** core/fatext.c -- normal form and checks for Persian scope values
** (see fatext.h for the rules and why).
*/
#include <stdint.h>
#include <string.h>
#include "core/fatext.h"
#include "core/mem.h"

/* Decode one UTF-8 sequence at s: shortest form only, no surrogates,
** nothing past U+10FFFF. Returns its length, 0 when invalid. The checks
** stop at the first byte that is not a continuation, so a NUL ends a
** truncated sequence without reading past it. */
static int utf8_next(const unsigned char *s, uint32_t *cp){
  if (s[0] < 0x80) { *cp = s[0]; return 1; }
  if (s[0] >= 0xC2 && s[0] <= 0xDF && (s[1] & 0xC0) == 0x80) {
    *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    return 2;
  }
  if (s[0] >= 0xE0 && s[0] <= 0xEF && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
    *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    if (*cp < 0x800 || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
    return 3;
  }
  if (s[0] >= 0xF0 && s[0] <= 0xF4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
      (s[3] & 0xC0) == 0x80) {
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    if (*cp < 0x10000 || *cp > 0x10FFFF) return 0;
    return 4;
  }
  return 0;
}

static size_t utf8_put(uint32_t c, char *o){
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) {
    o[0] = (char)(0xC0 | (c >> 6));
    o[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (char)(0xE0 | (c >> 12));
    o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (c >> 18));
  o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  o[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

static bool fa_space(uint32_t c){
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xA0 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The one-to-one foldings. Each maps to a code point no longer in UTF-8
** than the original, so the normal form never grows. */
static uint32_t fa_fold(uint32_t c){
  if (c == 0x064A || c == 0x0649) return 0x06CC;                 /* ي ى -> ی */
  if (c == 0x0643) return 0x06A9;                                /* ك -> ک */
  if (c >= 0x0660 && c <= 0x0669) return '0' + (c - 0x0660);     /* ٠..٩ */
  if (c >= 0x06F0 && c <= 0x06F9) return '0' + (c - 0x06F0);     /* ۰..۹ */
  return c;
}

rv_status rv_fa_normalize(const char *str, char *out, size_t cap, rv_err *err){
  const unsigned char *s = (const unsigned char *)str;
  size_t n = 0;
  bool pending_space = false;
  if (str == NULL || cap == 0) return rv_fail(err, RV_INVALID, "is missing");
  while (*s) {
    uint32_t c;
    char enc[4];
    size_t k;
    int len = utf8_next(s, &c);
    if (len == 0)
      return rv_fail(err, RV_INVALID, "is not valid UTF-8 at byte %zu", (size_t)(s - (const unsigned char *)str));
    s += len;
    if (fa_space(c)) { pending_space = n > 0; continue; }
    k = utf8_put(fa_fold(c), enc);
    if (n + pending_space + k + 1 > cap) return rv_fail(err, RV_INVALID, "is too long");
    if (pending_space) out[n++] = ' ';
    pending_space = false;
    memcpy(out + n, enc, k);
    n += k;
  }
  out[n] = 0;
  return RV_OK;
}

/* Letters and digits of the scripts offices are named in. */
static bool scope_letter(uint32_t c){
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  if (c >= 0xC0 && c <= 0x24F) return c != 0xD7 && c != 0xF7;          /* Latin-1, Latin Extended */
  if (c >= 0x386 && c <= 0x3FF) return c != 0x387;                     /* Greek */
  if (c >= 0x400 && c <= 0x4FF) return c < 0x482 || c > 0x489;         /* Cyrillic */
  if (c >= 0x620 && c <= 0x669) return true;                           /* Arabic letters, marks, digits */
  if (c >= 0x66E && c <= 0x6D3) return true;                           /* Arabic/Persian letters (پ چ ژ ک گ ی ...) */
  if (c == 0x6D5 || (c >= 0x6E5 && c <= 0x6E6) || (c >= 0x6EE && c <= 0x6FF)) return true;
  if (c >= 0x750 && c <= 0x77F) return true;                           /* Arabic Supplement */
  if (c >= 0x8A0 && c <= 0x8C9) return true;                           /* Arabic Extended-A letters */
  if (c >= 0xFB50 && c <= 0xFD3D) return true;                         /* presentation forms A */
  if (c >= 0xFD50 && c <= 0xFDC7) return true;
  if (c >= 0xFE70 && c <= 0xFEFC) return true;                         /* presentation forms B */
  return false;
}

/* Why s is not a scope value, or NULL when it is. */
static const char *scope_why(const char *str, bool allow_slash, uint32_t *bad){
  const unsigned char *s = (const unsigned char *)str;
  int n = 0;
  uint32_t prev = 0;
  bool prev_letter = false;
  *bad = 0;
  if (s == NULL || !*s) return "is empty";
  while (*s) {
    uint32_t c;
    int len = utf8_next(s, &c);
    bool letter;
    if (len == 0) return "is not valid UTF-8";
    if (++n > RV_FA_SCOPE_CPS) return "is longer than 64 characters";
    letter = scope_letter(c);
    if (!letter) {
      if (c == 0x200C) {                              /* ZWNJ: only after a letter */
        if (!prev_letter) return "has a zero-width non-joiner outside a word";
      } else if (c == ' ') {
        if (n == 1) return "starts with a space";
      } else if (!(c == '.' || c == '_' || c == '-' || (allow_slash && c == '/'))) {
        *bad = c;
        return "has a character that is not allowed";
      }
    }
    if (prev == 0x200C && !letter) return "has a zero-width non-joiner outside a word";
    prev = c;
    prev_letter = letter;
    s += len;
  }
  if (prev == ' ') return "ends with a space";
  if (prev == 0x200C) return "has a zero-width non-joiner outside a word";
  return NULL;
}

bool rv_fa_scope_ok(const char *s, bool allow_slash){
  uint32_t bad;
  return scope_why(s, allow_slash, &bad) == NULL;
}

rv_status rv_fa_scope(const char *s, bool allow_slash, char *out, size_t cap, rv_err *err){
  const char *why;
  uint32_t bad;
  if (rv_fa_normalize(s, out, cap, err) != RV_OK) return RV_INVALID;
  if ((why = scope_why(out, allow_slash, &bad)) == NULL) return RV_OK;
  if (bad) return rv_fail(err, RV_INVALID, "%s (U+%04X)", why, (unsigned)bad);
  return rv_fail(err, RV_INVALID, "%s", why);
}

char *rv_fa_normdup(const char *s){
  size_t n;
  char *o;
  if (s == NULL) return NULL;
  n = strlen(s) + 1;
  o = rv_malloc(n);
  if (rv_fa_normalize(s, o, n, NULL) != RV_OK) memcpy(o, s, n);
  return o;
}
