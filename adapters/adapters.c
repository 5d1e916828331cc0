/*
** adapters/adapters.c -- the adapter registry: built-in adapters plus
** extras registered at run time (tests, benchmarks).
*/
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "runtime/engine.h"
#include "common/util.h"
#include "core/json.h"
#include "core/mem.h"
#include "sms/sms.h"

extern const rv_adapter_ops rv_adapter_test_echo, rv_adapter_test_fail,
  rv_adapter_test_flaky, rv_adapter_test_error, rv_adapter_test_sms;
extern const rv_adapter_ops rv_adapter_payroll, rv_adapter_finance, rv_adapter_records;
extern const rv_adapter_ops rv_adapter_inquiry, rv_adapter_message;

static const rv_adapter_ops *const builtin[] = {
  &rv_adapter_test_echo, &rv_adapter_test_fail, &rv_adapter_test_flaky,
  &rv_adapter_test_error, &rv_adapter_test_sms,
  &rv_adapter_payroll, &rv_adapter_finance, &rv_adapter_records,
  &rv_adapter_inquiry, &rv_adapter_message,
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
void rv_adapter_unregister(const rv_adapter_ops *ops){
  for (int i = n_extra - 1; i >= 0; i--)
    if (extra[i] == ops) {
      memmove(&extra[i], &extra[i + 1], sizeof extra[0] * (size_t)(n_extra - i - 1));
      n_extra--;
      return;
    }
}

/*--- configuration (see adapter.h; the keys are in docs/adapters.md) ---*/

rv_status rv_adapters_configure(const char *path, rv_err *err){
  cJSON *conf = NULL;
  rv_status rc = RV_OK;
  if (path == NULL || !*path) path = getenv("RAVAND_CONFIG");
  if (path && *path) {
    char *text = NULL;
    size_t len = 0;
    rc = rv_file_read(path, 1 << 20, &text, &len, err);
    if (rc == RV_OK) {
      conf = rv_json_parse(text);
      if (!cJSON_IsObject(conf))
        rc = rv_fail(err, RV_INVALID, "config '%s' is not a JSON object", path);
    }
    rv_free(text);
  }
  if (rc == RV_OK) rc = rv_sms_configure(cJSON_GetObjectItemCaseSensitive(conf, "sms"), err);
  cJSON_Delete(conf);
  return rc;
}

void rv_adapters_stop(void){
  rv_sms_stop();
}

/*--- engine binding (see adapter.h) ---*/
#define MAX_BOUND 8
static struct { struct event_base *base; rv_engine *e; } bound[MAX_BOUND];

void rv_adapters_bind_engine(rv_engine *e){
  struct event_base *b = rv_engine_base(e);
  int free_slot = -1;
  for (int i = 0; i < MAX_BOUND; i++) {
    if (bound[i].base == b) { bound[i].e = e; return; }
    if (bound[i].base == NULL && free_slot < 0) free_slot = i;
  }
  if (free_slot >= 0) { bound[free_slot].base = b; bound[free_slot].e = e; }
}
void rv_adapters_unbind_engine(rv_engine *e){
  for (int i = 0; i < MAX_BOUND; i++)
    if (bound[i].e == e) { bound[i].base = NULL; bound[i].e = NULL; }
}
rv_engine *rv_adapters_engine(struct event_base *base){
  for (int i = 0; i < MAX_BOUND; i++)
    if (bound[i].base != NULL && bound[i].base == base) return bound[i].e;
  return NULL;
}
