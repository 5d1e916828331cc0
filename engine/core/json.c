/* core/json.c -- small cJSON conveniences. */
#include <stdio.h>
#include <string.h>
#include "core/json.h"
#include "core/mem.h"

const char *rv_json_str(const cJSON *o, const char *key){
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  return cJSON_IsString(v) ? v->valuestring : NULL;
}
int64_t rv_json_int(const cJSON *o, const char *key, int64_t dflt){
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}
bool rv_json_bool(const cJSON *o, const char *key, bool dflt){
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}
char *rv_json_print(const cJSON *o){
  char *s;
  if (o == NULL) return rv_strdup("null");
  s = cJSON_PrintUnformatted(o);
  if (s == NULL) { fputs("ravand: out of memory\n", stderr); abort(); }
  return s;
}
char *rv_json_text(const cJSON *v){
  if (v == NULL) return rv_strdup("");
  if (cJSON_IsString(v)) return rv_strdup(v->valuestring);
  if (cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble)
    return rv_asprintf("%lld", (long long)v->valuedouble);
  return rv_json_print(v);
}
cJSON *rv_json_parse(const char *s){
  return s ? cJSON_ParseWithOpts(s, NULL, 1) : NULL;
}
