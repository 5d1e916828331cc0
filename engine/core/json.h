/* core/json.h -- small cJSON conveniences. */
#ifndef RV_CORE_JSON_H
#define RV_CORE_JSON_H
#include <stdint.h>
#include <stdbool.h>
#include <cjson/cJSON.h>

/* The member named key (the first, as cJSON_GetObjectItemCaseSensitive
** finds it), or NULL; o may be NULL or not an object. Compares the first
** byte before the rest: the engine looks names up in a case's variables
** (30 and more members) many times per command. */
cJSON      *rv_json_member(const cJSON *o, const char *key);
const char *rv_json_str(const cJSON *o, const char *key);          /* NULL if absent/not string */
int64_t     rv_json_int(const cJSON *o, const char *key, int64_t dflt);
bool        rv_json_bool(const cJSON *o, const char *key, bool dflt);
/* cJSON's memory comes from the small-block pool (core/mem.h): installed
** before main() runs, so every cJSON block is the pool's. What cJSON
** allocates goes back through cJSON (cJSON_Delete, cJSON_free: the texts of
** cJSON_Print); what rv_json_print/rv_json_text return goes to rv_free. */

/* Serialize unformatted; caller frees with rv_free(). "null" for NULL.
** The text is what cJSON_PrintUnformatted gives, written directly:
** integral numbers up to 2^53 as integers (cJSON sends every number
** beyond 32 bits through "%1.15g" and an sscanf round trip), others as
** the shortest of %.15g/%.17g that reads back; non-finite as null. */
char       *rv_json_print(const cJSON *o);
struct rv_buf;
/* The same, appended to b (core/buf.h; cap it generously). */
void        rv_json_write(struct rv_buf *b, const cJSON *o);
/* A JSON string literal (quoted, escaped as cJSON does), appended to b. */
void        rv_json_write_string(struct rv_buf *b, const char *s);
/* How many bytes at the start of s a JSON string holds as they are (up to
** the first NUL, quote, backslash or control byte). */
size_t      rv_json_plain_len(const char *s);
/* The escape of a byte rv_json_plain_len stopped at (not NUL) into out:
** its length, 2 or 6 (\u00XX). */
size_t      rv_json_escape(unsigned char c, char out[6]);
/* A JSON number as an int64_t, truncated toward zero and saturated at the
** ends of the range (NaN gives 0): a plain cast of a double outside the
** range is undefined behaviour, and numbers come from outside (requests,
** recordings, rules). */
int64_t     rv_num_i64(double d);
/* Whether d is a whole number an int64_t holds; *out gets it. */
bool        rv_num_whole(double d, int64_t *out);
/* Value as text for templates: strings bare, others as JSON. Caller frees. */
char       *rv_json_text(const cJSON *v);
/* Parse with a depth/size sanity limit; NULL when invalid. */
cJSON      *rv_json_parse(const char *s);
#endif
