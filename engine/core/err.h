/*
** core/err.h -- the one error type of ravand.
**
** Functions that can fail return rv_status. Functions that can say why
** also take a trailing rv_err * (NULL allowed) filled by rv_fail().
*/
#ifndef RV_CORE_ERR_H
#define RV_CORE_ERR_H

#define RV_STATUS_MAP(X)                                          \
  X(OK,       200, "ok")                                          \
  X(NOMEM,    503, "out of memory")                               \
  X(INVALID,  400, "invalid argument or document")                \
  X(NOTFOUND, 404, "no such object")                              \
  X(CONFLICT, 409, "not allowed in the object's current state")   \
  X(BUSY,     503, "store busy; retry")                           \
  X(IO,       500, "I/O error")                                   \
  X(SCRIPT,   422, "rule script failed")                          \
  X(ADAPTER,  502, "adapter call failed")                         \
  X(CORRUPT,  500, "stored state is inconsistent")                \
  X(DENIED,   403, "not allowed")                                 \
  X(FULL,     507, "the store's disk is full")

typedef enum rv_status {
#define X(name, http, text) RV_##name,
  RV_STATUS_MAP(X)
#undef X
  RV_STATUS_COUNT
} rv_status;

typedef struct rv_err {
  rv_status code;
  char      msg[512];     /* one line, no trailing newline */
} rv_err;

const char *rv_status_name(rv_status s);       /* "NOTFOUND" */
const char *rv_status_text(rv_status s);       /* "no such object" */
int         rv_status_http(rv_status s);       /* 404 */

/* Record code and a formatted message in err (NULL is allowed) and
** return code, so callers can write:  return rv_fail(err, RV_INVALID, ...); */
rv_status rv_fail(rv_err *err, rv_status code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

#endif
