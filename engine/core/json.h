/* core/json.h -- small cJSON conveniences. */
#ifndef RV_CORE_JSON_H
#define RV_CORE_JSON_H
#include <stdint.h>
#include <stdbool.h>
#include <cjson/cJSON.h>

const char *rv_json_str(const cJSON *o, const char *key);          /* NULL if absent/not string */
int64_t     rv_json_int(const cJSON *o, const char *key, int64_t dflt);
bool        rv_json_bool(const cJSON *o, const char *key, bool dflt);
/* Serialize unformatted; caller frees with free(). "null" for NULL. */
char       *rv_json_print(const cJSON *o);
/* Value as text for templates: strings bare, others as JSON. Caller frees. */
char       *rv_json_text(const cJSON *v);
/* Parse with a depth/size sanity limit; NULL when invalid. */
cJSON      *rv_json_parse(const char *s);
#endif
