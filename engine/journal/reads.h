/*
** journal/reads.h -- which variables a Lua expression reads, with their
** values: kept with every gateway decision so that a replay that takes a
** different branch can say which values it decided on.
**
** A leaf helper (cJSON and core/buf only); runtime/elements.c calls it.
*/
#ifndef RV_JOURNAL_READS_H
#define RV_JOURNAL_READS_H
#include <cjson/cJSON.h>
#include "core/buf.h"

/* Append " (name=value, ...)" to out for every top-level variable of vars
** (a JSON object, borrowed) that expr names, in order of first use; values
** are JSON, cut at 60 bytes. Names that are not variables (Lua keywords,
** library tables, fields after '.' or ':', string contents) are skipped;
** a variable expr names but vars lacks is shown as name=nil. Appends
** nothing when expr reads no variable. */
void rv_journal_reads(const char *expr, const cJSON *vars, rv_buf *out);

#endif
