/*
** tests/fuzz/fuzz_recording.c -- libFuzzer target for the recording and
** process-test reader (engine/journal/script.c): the files `ravand replay`
** and `ravand test` read, which analysts write by hand and recordings carry
** between machines. For each input the reader must:
**   - end, without a crash, a leak or undefined behaviour (the sanitizers);
**   - refuse with a message, or accept: then the recording as written back
**     (rv__jr_rec_write) must load again and write back the same bytes --
**     what ravand writes, ravand reads, and one round trip is stable.
** A broken promise aborts. The same function runs over
** tests/fuzz/corpus-recording in every build (replay.c).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "journal/journal_int.h"
#include "core/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what, const char *detail){
  fprintf(stderr, "fuzz_recording: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

/* Load from bytes; on success the recording written back, else NULL
** (*ok false) with the message checked. */
static char *load_write(const void *data, size_t size, size_t *out_len, int *ok){
  FILE *in = fmemopen((void *)data, size, "r"), *out;
  rv__jr_rec r;
  rv_err err;
  char *text = NULL;
  size_t len = 0;
  rv_status rc;

  *ok = 0;
  if (in == NULL) return NULL;                 /* fmemopen refuses size 0 */
  memset(&err, 0, sizeof err);
  rc = rv__jr_rec_read(in, "fuzz.jsonl", &r, &err);
  fclose(in);
  if (rc != RV_OK) {
    if (err.msg[0] == 0) broken("refused without a message", NULL);
    return NULL;
  }
  if (r.header == NULL) broken("accepted without a header", NULL);
  out = open_memstream(&text, &len);
  if (out == NULL) broken("open_memstream", NULL);
  rv__jr_rec_write(&r, out);
  fclose(out);
  rv__jr_rec_fini(&r);
  *ok = 1;
  *out_len = len;
  return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  size_t n1 = 0, n2 = 0;
  int ok1, ok2;
  char *w1 = load_write(data, size, &n1, &ok1), *w2;
  if (!ok1) return 0;
  w2 = load_write(w1, n1, &n2, &ok2);
  if (!ok2) broken("a recording ravand wrote does not load again", w1);
  if (n1 != n2 || memcmp(w1, w2, n1) != 0) broken("writing back is not stable", w1);
  free(w1);
  free(w2);
  return 0;
}
