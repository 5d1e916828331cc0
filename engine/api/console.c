/*
** api/console.c -- the web console's static files (console/dist) at "/".
**
** The console is a static bundle built from console/ by the project's build
** (docs/console.md); it talks to the API below /v1 with the user's bearer
** token, so it needs no privileges of its own. Serving it is public (the
** files hold no data) and happens before the engine batch: no store, no
** audit row.
**
** Path handling is deliberately narrow:
**   - GET and HEAD only; /v1/..., /healthz and /metrics are never files;
**   - "/" is index.html; every other path is 1-4 segments of
**     [A-Za-z0-9._-], no segment starting with '.', so ".." and hidden
**     files cannot be named; '%' (encoded bytes) is refused;
**   - the file is opened with O_NOFOLLOW below the configured directory and
**     must be a regular file (a directory is a 404: no listing);
**   - only known extensions are served, each with its content type.
** Replies carry a Content-Security-Policy that allows nothing but this
** origin (scripts, styles, images, fetch), so the console cannot load
** anything from outside at run time.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "api/api_int.h"
#include "core/mem.h"

#define MAX_FILE (32 << 20)

static const struct { const char *ext, *ctype; } types[] = {
  { ".html",  "text/html; charset=utf-8" },
  { ".js",    "text/javascript; charset=utf-8" },
  { ".mjs",   "text/javascript; charset=utf-8" },
  { ".css",   "text/css; charset=utf-8" },
  { ".json",  "application/json" },
  { ".svg",   "image/svg+xml" },
  { ".png",   "image/png" },
  { ".ico",   "image/x-icon" },
  { ".woff2", "font/woff2" },
  { ".woff",  "font/woff" },
  { ".ttf",   "font/ttf" },
  { ".txt",   "text/plain; charset=utf-8" },
  { ".webmanifest", "application/manifest+json" },
};

static const char *ctype_of(const char *p){
  const char *dot = strrchr(p, '.');
  if (dot == NULL || strchr(dot, '/')) return NULL;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(dot, types[i].ext) == 0) return types[i].ctype;
  return NULL;
}

bool rv__console_handle(rv_req *r){
  rv_api *a = r->api;
  const char *path = r->path, *rel, *ctype;
  char full[4096];
  struct stat sb;
  char *data;
  size_t got = 0;
  int fd;

  if (a->console_dir == NULL) return false;
  if (r->method != EVHTTP_REQ_GET && r->method != EVHTTP_REQ_HEAD) return false;
  if (strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0 ||
      strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) return false;
  r->console = true;
  rel = strcmp(path, "/") == 0 ? "index.html" : path + 1;
  if (strchr(rel, '%') || !rv__safe_relpath(rel) || (ctype = ctype_of(rel)) == NULL) {
    rv__problem(r, 404, "no such file");
    return true;
  }
  if ((size_t)snprintf(full, sizeof full, "%s/%s", a->console_dir, rel) >= sizeof full) {
    rv__problem(r, 404, "no such file");
    return true;
  }
  fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > MAX_FILE) {
    if (fd >= 0) close(fd);
    rv__problem(r, 404, "no such file");
    return true;
  }
  data = rv_malloc((size_t)sb.st_size + 1);
  while (got < (size_t)sb.st_size) {
    ssize_t n = read(fd, data + got, (size_t)sb.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (got != (size_t)sb.st_size) {
    rv_free(data);
    rv__problem(r, 500, "the file could not be read");
    return true;
  }
  rv__reply_raw(r, 200, ctype, data, got);
  /* Vite names what it builds under assets/ by content hash: cache those
  ** for good; everything else (index.html) is checked every time. */
  r->cache = strncmp(rel, "assets/", 7) == 0 ? "public, max-age=31536000, immutable" : "no-cache";
  return true;
}

/* The directory to serve: --console DIR, else the build's default if it
** holds an index.html; "none" (or "") switches the console off. */
char *rv__console_dir(const char *opt){
  struct stat sb;
  char probe[4096];
  const char *dir = opt;
#ifdef RV_CONSOLE_DIR
  if (dir == NULL) {
    dir = RV_CONSOLE_DIR;
    snprintf(probe, sizeof probe, "%s/index.html", dir);
    if (stat(probe, &sb) != 0) return NULL;
  }
#endif
  if (dir == NULL || dir[0] == 0 || strcmp(dir, "none") == 0) return NULL;
  snprintf(probe, sizeof probe, "%s/index.html", dir);
  if (stat(probe, &sb) != 0)
    fprintf(stderr, "ravand: --console %s: no index.html there (run `npm ci && npm run build` in console/)\n", dir);
  return rv_strdup(dir);
}
