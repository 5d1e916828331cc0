/*
** adapters/common/csv.c -- RFC 4180 record reader (see csv.h).
**
** Two passes per record: the first finds where the record ends (a quote
** at the start of a field opens a quoted field, whose line breaks belong
** to the record) and checks the length; then NUL and UTF-8 are checked and
** the second pass splits fields. A malformed record that spans lines is
** cut back to its first line, so the resync point never moves past a line
** that was not reported.
*/
#include <string.h>
#include "common/csv.h"
#include "core/mem.h"

void rv_csv_init(rv_csv *r, const char *buf, size_t len, bool digits){
  memset(r, 0, sizeof *r);
  r->buf = buf;
  r->len = len;
  r->line = 1;
  r->max_record = 4096;
  r->digits = digits;
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;
}

void rv_csv_fini(rv_csv *r){
  if (r == NULL) return;
  rv_free(r->work);
  r->work = NULL;
  r->work_cap = 0;
}

void rv_csv_seek(rv_csv *r, size_t pos, int64_t line){
  r->pos = pos <= r->len ? pos : r->len;
  r->line = line;
}

bool rv_utf8_valid(const char *s, size_t n, size_t *bad){
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k;
    unsigned cp;
    if (c == 0) goto fail;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
    else goto fail;
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (p[i + j] & 0xC0) != 0x80) goto fail;
      cp = (cp << 6) | (p[i + j] & 0x3F);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) goto fail;
    i += k + 1;
  }
  return true;
fail:
  if (bad) *bad = i;
  return false;
}

char *rv_digits_ascii(char *s){
  unsigned char *r = (unsigned char *)s, *w = (unsigned char *)s;
  if (s == NULL) return s;
  while (*r) {
    if (r[0] == 0xDB && r[1] >= 0xB0 && r[1] <= 0xB9) {        /* U+06F0..06F9 */
      *w++ = (unsigned char)('0' + (r[1] - 0xB0)); r += 2;
    } else if (r[0] == 0xD9 && r[1] >= 0xA0 && r[1] <= 0xA9) { /* U+0660..0669 */
      *w++ = (unsigned char)('0' + (r[1] - 0xA0)); r += 2;
    } else {
      *w++ = *r++;
    }
  }
  *w = 0;
  return s;
}

/* Length of the line break at p (0 if none): CRLF, LF or CR. */
static size_t eol_len(const char *p, const char *end){
  if (p >= end) return 0;
  if (*p == '\n') return 1;
  if (*p == '\r') return (p + 1 < end && p[1] == '\n') ? 2 : 1;
  return 0;
}

/* Skip to just after the next physical line break from pos. */
static void resync(rv_csv *r, size_t from){
  const char *p = r->buf + from, *end = r->buf + r->len;
  while (p < end && *p != '\n' && *p != '\r') p++;
  r->pos = (size_t)(p - r->buf) + eol_len(p, end);
  r->line++;
}

static void set_error(rv_csv *r, rv_csv_rec *out, size_t start, const char *why, int col){
  const char *p = r->buf + start, *end = r->buf + r->len;
  const char *e = p;
  while (e < end && *e != '\n' && *e != '\r') e++;
  out->error = why;
  out->error_col = col;
  out->n = 0;
  out->raw = p;
  out->raw_len = (size_t)(e - p);
  out->last_line = out->line;
  out->eol = e < end;
  resync(r, start);
}

static bool is_sp(char c){ return c == ' ' || c == '\t'; }

/* Split raw [p, e) into fields in r->work; returns an error reason or NULL. */
static const char *split(rv_csv *r, const char *p, const char *e, int *n, int *col){
  char *w = r->work;
  const char *start = p;
  int nf = 0;
  for (;;) {
    const char *fstart;
    while (p < e && is_sp(*p)) p++;
    if (nf == RV_CSV_MAX_FIELDS) { *col = (int)(p - start) + 1; return "too many fields"; }
    r->fields[nf++] = w;
    fstart = w;
    if (p < e && *p == '"') {
      p++;
      for (;;) {
        if (p >= e) { *col = (int)(p - start) + 1; return "unterminated quoted field"; }
        if (*p == '"') {
          if (p + 1 < e && p[1] == '"') { *w++ = '"'; p += 2; continue; }
          p++;
          break;
        }
        *w++ = *p++;
      }
      while (p < e && is_sp(*p)) p++;
      if (p < e && *p != ',') { *col = (int)(p - start) + 1; return "text after a closing quote"; }
    } else {
      while (p < e && *p != ',') {
        if (*p == '"') { *col = (int)(p - start) + 1; return "quote inside an unquoted field"; }
        *w++ = *p++;
      }
      while (w > fstart && is_sp(w[-1])) w--;
    }
    *w++ = 0;
    if (r->digits) rv_digits_ascii(r->fields[nf - 1]);
    if (p >= e) break;
    p++;                          /* the comma */
  }
  *n = nf;
  return NULL;
}

bool rv_csv_next(rv_csv *r, rv_csv_rec *out){
  const char *base = r->buf, *end = r->buf + r->len, *p, *rec_end;
  size_t start = r->pos, bad;
  bool q = false, at_start = true;
  int64_t breaks = 0;
  const char *why;
  int col = 0;

  memset(out, 0, sizeof *out);
  if (r->pos >= r->len) return false;
  out->line = r->line;
  out->f = r->fields;
  /* pass 1: find the end of the record. A quote opens a quoted field
  ** only at the start of a field; inside one, "" is an escaped quote. */
  for (p = base + start; p < end; p++) {
    if (q) {
      if (*p == '"') {
        if (p + 1 < end && p[1] == '"') p++;
        else q = false;
      } else if (*p == '\n' || *p == '\r') {
        if (*p == '\r' && p + 1 < end && p[1] == '\n') p++;
        breaks++;
      }
    } else if (*p == '\n' || *p == '\r') {
      break;
    } else if (*p == ',') {
      at_start = true;
    } else if (*p == '"' && at_start) {
      q = true;
      at_start = false;
    } else if (!is_sp(*p)) {
      at_start = false;
    }
    if ((size_t)(p - (base + start)) >= r->max_record) {
      set_error(r, out, start, "record too long", (int)r->max_record);
      return true;
    }
  }
  if (q) { set_error(r, out, start, "unterminated quoted field", 0); return true; }
  rec_end = p;
  out->raw = base + start;
  out->raw_len = (size_t)(rec_end - (base + start));
  out->last_line = out->line + breaks;
  out->eol = rec_end < end;
  if (!rv_utf8_valid(out->raw, out->raw_len, &bad)) {
    why = out->raw[bad] == 0 ? "NUL byte" : "invalid UTF-8";
    col = (int)bad + 1;
  } else if (out->raw_len > 0) {
    if (r->work_cap < out->raw_len + RV_CSV_MAX_FIELDS + 1) {
      r->work_cap = out->raw_len + RV_CSV_MAX_FIELDS + 1;
      r->work = rv_realloc(r->work, r->work_cap);
    }
    why = split(r, out->raw, rec_end, &out->n, &col);
  } else {
    why = NULL;                          /* blank line: n = 0 */
  }
  if (why && breaks > 0) {
    /* A malformed record that spans lines is most likely a stray quote
    ** that swallowed the following lines: report the first line and read
    ** the others again on their own, so none of them is lost. */
    set_error(r, out, start, "unterminated quoted field", 0);
    return true;
  }
  r->pos = (size_t)(rec_end - base) + eol_len(rec_end, end);
  r->line = out->last_line + 1;
  if (why) { out->error = why; out->error_col = col; out->n = 0; }
  return true;
}
