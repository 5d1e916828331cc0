/* cli.h -- output helpers shared by the command-line front end. */
#ifndef RV_CLI_H
#define RV_CLI_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* Print rows (array of objects) as an aligned table with the given
** columns ("id,process,status"). Values longer than 40 columns are cut. */
void cli_table(const cJSON *rows, const char *columns);
/* Print JSON pretty (machines) */
void cli_json(const cJSON *v);
/* Format epoch ms as "2026-11-22 10:04:05Z" into buf (>= 32). */
const char *cli_time(int64_t ms, char *buf, size_t n);
#endif
