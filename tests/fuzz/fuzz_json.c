/*
** tests/fuzz/fuzz_json.c -- libFuzzer target for core/json.c, checked
** against cJSON itself: rv_json_parse promises to accept what
** cJSON_ParseWithOpts(s, NULL, 1) accepts and to build the same nodes
** (it reads the stored states, job inputs and journal payloads of every
** command). For each input, as a C string (up to its first NUL):
**   - both accept it or both refuse it -- but for cJSON's leniencies with
**     \u escapes that rv_json_parse does not copy (tests/json_quirks.h);
**   - what both accept is the same tree: the same types, members in the
**     same order under the same keys (duplicates too), the same strings and
**     numbers (cJSON_Compare looks members up by key, so it cannot tell
**     {"k":1,"k":2} from itself);
**   - what rv_json_print writes of it, cJSON reads back as the same tree
**     (where a number overflowed to infinity, written null, as cJSON does).
** A disagreement aborts, so libFuzzer keeps the input. The same function
** runs over tests/fuzz/corpus-json in every build (replay.c).
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/json.h"
#include "core/mem.h"
#include "../json_quirks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a and b the same tree (see above); printed: b was read back from a's
** text, where a number that is not finite became null */
static int same(const cJSON *a, const cJSON *b, int printed){
  const cJSON *x, *y;
  if (printed && cJSON_IsNumber(a) && !isfinite(a->valuedouble)) return cJSON_IsNull(b);
  if ((a->type & 0xFF) != (b->type & 0xFF)) return 0;
  if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble;
  if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
  for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
    if (cJSON_IsObject(a) && strcmp(x->string, y->string) != 0) return 0;
    if (!same(x, y, printed)) return 0;
  }
  return x == NULL && y == NULL;
}

static void disagree(const char *what, const char *text){
  fprintf(stderr, "fuzz_json: %s for input (%zu bytes): %.200s\n", what, strlen(text), text);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  char *text = malloc(size + 1);
  cJSON *ours, *theirs;
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  ours = rv_json_parse(text);
  theirs = cJSON_ParseWithOpts(text, NULL, 1);
  if (ours == NULL && theirs != NULL && bad_u_escape(text)) {   /* json_quirks.h */
    cJSON_Delete(theirs);
    theirs = NULL;
  }
  if ((ours == NULL) != (theirs == NULL))
    disagree(ours ? "rv_json_parse accepts what cJSON refuses" : "rv_json_parse refuses what cJSON accepts",
             text);
  if (ours != NULL) {
    char *printed;
    cJSON *back;
    if (!same(ours, theirs, 0)) disagree("the parsers built different values", text);
    printed = rv_json_print(ours);
    back = cJSON_ParseWithOpts(printed, NULL, 1);
    if (back == NULL || !same(ours, back, 1)) disagree("rv_json_print did not round-trip", text);
    cJSON_Delete(back);
    rv_free(printed);
  }
  cJSON_Delete(ours);
  cJSON_Delete(theirs);
  free(text);
  return 0;
}
