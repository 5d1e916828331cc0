/* cli.c -- table and JSON output for the command line. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "core/mem.h"
#include "core/json.h"

const char *cli_time(int64_t ms, char *buf, size_t n){
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (ms <= 0) { snprintf(buf, n, "-"); return buf; }
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

/* Display width of UTF-8 text: count code points (Persian is one column each). */
static int width(const char *s){
  int w = 0;
  for (; *s; s++) if (((unsigned char)*s & 0xC0) != 0x80) w++;
  return w;
}

static char *cell(const cJSON *row, const char *col){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, col);
  char buf[40];
  size_t len = strlen(col);
  if (v == NULL || cJSON_IsNull(v)) return rv_strdup("-");
  if (cJSON_IsNumber(v) && ((len >= 3 && strcmp(col + len - 3, "due") == 0) ||
      strcmp(col, "created") == 0 || strcmp(col, "started") == 0 || strcmp(col, "ended") == 0 ||
      strcmp(col, "at") == 0 || strcmp(col, "completed") == 0 || strcmp(col, "resolved") == 0 ||
      strcmp(col, "next_try") == 0)) {
    if (v->valuedouble == 0) return rv_strdup("-");
    return rv_strdup(cli_time(rv_num_i64(v->valuedouble), buf, sizeof buf));
  }
  {
    char *t = rv_json_text(v);
    /* cut long values at a code-point boundary */
    int w = 0;
    for (char *p = t; *p; p++) {
      if (((unsigned char)*p & 0xC0) != 0x80 && ++w > 48) { strcpy(p, "…"); break; }
    }
    for (char *p = t; *p; p++) if (*p == '\n' || *p == '\t') *p = ' ';
    return t;
  }
}

void cli_table(const cJSON *rows, const char *columns){
  char *cols = rv_strdup(columns), *save = NULL;
  const char *names[32];
  int nc = 0, wid[32], nr = cJSON_GetArraySize(rows);
  for (char *t = strtok_r(cols, ",", &save); t && nc < 32; t = strtok_r(NULL, ",", &save))
    names[nc++] = t;
  for (int c = 0; c < nc; c++) wid[c] = width(names[c]);
  for (int r = 0; r < nr; r++)
    for (int c = 0; c < nc; c++) {
      char *v = cell(cJSON_GetArrayItem(rows, r), names[c]);
      if (width(v) > wid[c]) wid[c] = width(v);
      rv_free(v);
    }
  for (int c = 0; c < nc; c++) printf("%s%-*s", c ? "  " : "", wid[c], names[c]);
  printf("\n");
  for (int r = 0; r < nr; r++) {
    for (int c = 0; c < nc; c++) {
      char *v = cell(cJSON_GetArrayItem(rows, r), names[c]);
      int pad = wid[c] - width(v);
      printf("%s%s%*s", c ? "  " : "", v, c + 1 < nc ? pad : 0, "");
      rv_free(v);
    }
    printf("\n");
  }
  if (nr == 0) printf("(none)\n");
  rv_free(cols);
}

void cli_json(const cJSON *v){
  char *s = cJSON_Print(v);
  puts(s ? s : "null");
  cJSON_free(s);
}
