/*
** tests/fuzz/fuzz_json.c -- libFuzzer target for core/json.c, checked
** against cJSON itself: rv_json_parse promises to accept what
** cJSON_ParseWithOpts(s, NULL, 1) accepts and to build the same nodes
** (it reads the stored states, job inputs and journal payloads of every
** command). For each input, as a C string (up to its first NUL):
**   - both accept it or both refuse it -- but for cJSON's leniencies with
**     \u escapes that rv_json_parse does not copy (tests/json_oracle.h);
**   - what both accept is the same tree (json_oracle.h json_same: members
**     in order, duplicate keys too);
**   - what rv_json_print writes of it, cJSON reads back as the same tree
**     (where a number overflowed to infinity, written null, as cJSON does).
** A disagreement aborts, so libFuzzer keeps the input. The same function
** runs over tests/fuzz/corpus-json in every build (replay.c).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/json.h"
#include "core/mem.h"
#include "../json_oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
  if (ours == NULL && theirs != NULL && bad_u_escape(text)) {   /* json_oracle.h */
    cJSON_Delete(theirs);
    theirs = NULL;
  }
  if ((ours == NULL) != (theirs == NULL))
    disagree(ours ? "rv_json_parse accepts what cJSON refuses" : "rv_json_parse refuses what cJSON accepts",
             text);
  if (ours != NULL) {
    char *printed;
    cJSON *back;
    if (!json_same(ours, theirs, false)) disagree("the parsers built different values", text);
    printed = rv_json_print(ours);
    back = cJSON_ParseWithOpts(printed, NULL, 1);
    if (back == NULL || !json_same(ours, back, true)) disagree("rv_json_print did not round-trip", text);
    cJSON_Delete(back);
    rv_free(printed);
  }
  cJSON_Delete(ours);
  cJSON_Delete(theirs);
  free(text);
  return 0;
}
