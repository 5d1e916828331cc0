/* core/err.c -- status names and rv_fail(). */
#include <stdarg.h>
#include <stdio.h>
#include "core/err.h"

static const struct { const char *name; int http; const char *text; } tab[] = {
#define X(name, http, text) { #name, http, text },
  RV_STATUS_MAP(X)
#undef X
};

const char *rv_status_name(rv_status s){
  return (unsigned)s < RV_STATUS_COUNT ? tab[s].name : "UNKNOWN";
}
const char *rv_status_text(rv_status s){
  return (unsigned)s < RV_STATUS_COUNT ? tab[s].text : "unknown status";
}
int rv_status_http(rv_status s){
  return (unsigned)s < RV_STATUS_COUNT ? tab[s].http : 500;
}

rv_status rv_fail(rv_err *err, rv_status code, const char *fmt, ...){
  if (err != NULL) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}
