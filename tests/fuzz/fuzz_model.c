/*
** tests/fuzz/fuzz_model.c -- libFuzzer target: BPMN bytes -> parse ->
** validate -> free. Any crash, sanitizer report or leak is a bug in
** model/. The same function is driven by replay.c over tests/fuzz/corpus/
** in ordinary builds (test 'fuzz-corpus-replay').
*/
#include <stddef.h>
#include <stdint.h>
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  rv_diags d;
  rv_model *m = NULL;

  rv_diags_init(&d);
  if (rv_model_parse_memory((const char *)data, size, "fuzz.bpmn", &d, &m) == RV_OK) {
    rv_model_validate(m, &d);
    rv_model_free(m);
  }
  rv_diags_fini(&d);
  return 0;
}
