/*
** adapters/common/csv.h -- a strict RFC 4180 record reader for feed and
** records files, built for reporting, not for guessing.
**
** The reader walks a borrowed, complete buffer. Every record it returns
** carries the physical line it started on, and either its fields or the
** reason it is malformed; it never skips a line silently. Tolerated:
** a UTF-8 BOM at the start, CRLF, LF or lone-CR line ends (mixed too),
** spaces around unquoted fields (trimmed), Persian (U+06F0..9) and
** Arabic-Indic (U+0660..9) digits (rewritten to ASCII when asked).
** Refused, as a record-level error: NUL bytes, invalid UTF-8 (overlong,
** surrogates, > U+10FFFF), bad quoting, an unterminated quote at the end
** of the buffer, records longer than max_record bytes, more than
** RV_CSV_MAX_FIELDS fields. After an error the reader resynchronises at
** the next line break, so one bad line costs one line; a malformed record
** that spans lines (a stray quote) is reported at its first line and the
** lines after it are read again on their own, so none is swallowed.
**
** Loop thread or any single thread; no global state.
*/
#ifndef RV_CSV_H
#define RV_CSV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RV_CSV_MAX_FIELDS 64

typedef struct rv_csv {
  const char *buf;          /* borrowed; valid while the reader is used */
  size_t      len, pos;
  int64_t     line;         /* physical line of pos (1-based) */
  size_t      max_record;   /* bytes; 0 = 4096 */
  bool        digits;       /* normalise Persian/Arabic-Indic digits */
  char       *work;         /* field storage (owned) */
  size_t      work_cap;
  char       *fields[RV_CSV_MAX_FIELDS];
} rv_csv;

typedef struct rv_csv_rec {
  int64_t      line;        /* physical line the record starts on */
  int64_t      last_line;   /* physical line it ends on (> line with quoted breaks) */
  int          n;           /* fields, 0 for a blank line */
  char *const *f;           /* f[0..n-1]: NUL-terminated, valid until the next call */
  const char  *raw;         /* the raw record bytes, without the line end */
  size_t       raw_len;
  const char  *error;       /* non-NULL: malformed (a static reason); n is 0 */
  int          error_col;   /* 1-based byte column of the problem, 0 if none */
  bool         eol;         /* ended with a line break (false: ran into EOF) */
} rv_csv_rec;

/* Start reading buf[0..len). A leading UTF-8 BOM is skipped. */
void rv_csv_init(rv_csv *r, const char *buf, size_t len, bool digits);
/* Release the field storage. NULL is a no-op. */
void rv_csv_fini(rv_csv *r);
/* Next record into *out; false at the end of the buffer. */
bool rv_csv_next(rv_csv *r, rv_csv_rec *out /* OUT */);
/* Resume position (for chunked processing): offset and line of the next record. */
static inline size_t  rv_csv_tell(const rv_csv *r){ return r->pos; }
static inline int64_t rv_csv_line(const rv_csv *r){ return r->line; }
void rv_csv_seek(rv_csv *r, size_t pos, int64_t line);

/* Rewrite Persian and Arabic-Indic digits in s to ASCII, in place (the
** string only shrinks). Returns s. */
char *rv_digits_ascii(char *s);
/* True if s[0..n) is well-formed UTF-8 (no NUL). On false, *bad is the
** byte offset of the first bad byte. */
bool  rv_utf8_valid(const char *s, size_t n, size_t *bad /* OUT, may be NULL */);

#endif
