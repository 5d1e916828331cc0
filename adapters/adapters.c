/*
** adapters/adapters.c -- the adapter registry: built-in adapters plus
** extras registered at run time (tests, benchmarks).
*/
#include <string.h>
#include "adapter.h"

extern const rv_adapter_ops rv_adapter_test_echo, rv_adapter_test_fail,
  rv_adapter_test_flaky, rv_adapter_test_error, rv_adapter_test_sms;

static const rv_adapter_ops *const builtin[] = {
  &rv_adapter_test_echo, &rv_adapter_test_fail, &rv_adapter_test_flaky,
  &rv_adapter_test_error, &rv_adapter_test_sms,
};

#define MAX_EXTRA 32
static const rv_adapter_ops *extra[MAX_EXTRA];
static int n_extra;

const rv_adapter_ops *rv_adapter_find(const char *name){
  if (name == NULL) return NULL;
  for (int i = n_extra - 1; i >= 0; i--)
    if (strcmp(extra[i]->name, name) == 0) return extra[i];
  for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
    if (strcmp(builtin[i]->name, name) == 0) return builtin[i];
  return NULL;
}

void rv_adapter_register(const rv_adapter_ops *ops){
  if (n_extra < MAX_EXTRA) extra[n_extra++] = ops;
}
void rv_adapter_reset_extra(void){ n_extra = 0; }
