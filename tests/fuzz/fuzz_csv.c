/*
** tests/fuzz/fuzz_csv.c -- libFuzzer target for adapters/common/csv.c,
** the reader of registry feeds, bank confirmations and records files
** (bytes from outside). For each input, read with and without digit
** normalisation, the reader must:
**   - end (every call moves forward, and it stops at the end of the buffer);
**   - give each record's raw bytes inside the buffer, its lines in order;
**   - give either fields (NUL-terminated, at most RV_CSV_MAX_FIELDS) or an
**     error, never both;
**   - keep the lines in order: each record starts on a later line than the
**     one before, and after a well-formed record, after its last line (a
**     malformed one spanning lines is reported at its first, and the lines
**     after it are read again).
** A broken promise aborts. The same function runs over
** tests/fuzz/corpus-csv in every build (replay.c).
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what, size_t pos){
  fprintf(stderr, "fuzz_csv: %s (at byte %zu)\n", what, pos);
  abort();
}

static void read_all(const char *buf, size_t size, bool digits){
  rv_csv r;
  rv_csv_rec rec;
  size_t last_pos = 0, calls = 0;
  int64_t prev_line = 0, prev_end = 0;     /* start line; last line of a good record */
  rv_csv_init(&r, buf, size, digits);
  while (rv_csv_next(&r, &rec)) {
    size_t pos = rv_csv_tell(&r);
    if (++calls > size + 2) broken("more records than bytes", pos);
    if (pos <= last_pos && calls > 1) broken("a record that did not move the reader", pos);
    if (pos > size) broken("read past the end", pos);
    if (rec.raw != NULL && (rec.raw < buf || rec.raw + rec.raw_len > buf + size))
      broken("raw bytes outside the buffer", pos);
    if (rec.line <= prev_line || rec.line <= prev_end || rec.last_line < rec.line)
      broken("lines out of order", pos);
    if (rec.error != NULL && rec.n != 0) broken("an error with fields", pos);
    if (rec.n < 0 || rec.n > RV_CSV_MAX_FIELDS) broken("a field count out of range", pos);
    for (int i = 0; i < rec.n; i++)
      if (rec.f[i] == NULL || strlen(rec.f[i]) > size) broken("a field without its end", pos);
    if (rec.error == NULL && rv_csv_line(&r) <= rec.last_line && pos < size)
      broken("the next record on a line the last one had", pos);
    last_pos = pos;
    prev_line = rec.line;
    prev_end = rec.error == NULL ? rec.last_line : 0;
  }
  if (rv_csv_tell(&r) > size) broken("ended past the end", rv_csv_tell(&r));
  rv_csv_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  /* a copy of exactly size bytes: the reader must not look past them */
  char *buf = malloc(size ? size : 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  read_all(buf, size, false);
  read_all(buf, size, true);
  free(buf);
  return 0;
}
