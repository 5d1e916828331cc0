/*
** adapters/common/util.c -- see util.h.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "common/util.h"
#include "core/json.h"
#include "common/csv.h"
#include "adapter.h"
#include "cal/cal.h"
#include "core/mem.h"
#include "runtime/engine.h"

rv_status rv_file_read(const char *path, size_t max, char **out, size_t *len, rv_err *err){
  int fd;
  struct stat sb;
  char *buf;
  size_t got = 0;

  *out = NULL;
  *len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rv_fail(err, RV_IO, "cannot open '%s': %s", path, strerror(errno));
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return rv_fail(err, RV_INVALID, "'%s' is not a regular file", path);
  }
  if ((uint64_t)sb.st_size > max) {
    close(fd);
    return rv_fail(err, RV_INVALID, "'%s' is larger than %zu bytes", path, max);
  }
  buf = rv_malloc((size_t)sb.st_size + 1);
  while (got < (size_t)sb.st_size) {
    ssize_t k = read(fd, buf + got, (size_t)sb.st_size - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;              /* shrank while reading: take what is there */
    got += (size_t)k;
  }
  close(fd);
  buf[got] = 0;
  *out = buf;
  *len = got;
  return RV_OK;
}

/*--- atomic publication --------------------------------------------------*/

rv_status rv_publish_begin(rv_publish *p, const char *dir, const char *name,
                           const char *tag, rv_err *err){
  int fd;
  memset(p, 0, sizeof *p);
  p->tag = tag;
  if (strchr(name, '/') != NULL || name[0] == '.' || name[0] == 0)
    return rv_fail(err, RV_INVALID, "bad output file name '%s'", name);
  if ((size_t)snprintf(p->final, sizeof p->final, "%s/%s", dir, name) >= sizeof p->final ||
      (size_t)snprintf(p->tmp, sizeof p->tmp, "%s/.%s.%ld.tmp", dir, name, (long)getpid()) >= sizeof p->tmp)
    return rv_fail(err, RV_INVALID, "output path too long");
  fd = open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return rv_fail(err, RV_IO, "cannot create '%s': %s", p->tmp, strerror(errno));
  p->f = fdopen(fd, "w");
  if (p->f == NULL) { close(fd); unlink(p->tmp); return rv_fail(err, RV_IO, "fdopen: %s", strerror(errno)); }
  return RV_OK;
}

static rv_status fsync_dir(const char *file, rv_err *err){
  char d[4096];
  const char *slash = strrchr(file, '/');
  int fd;
  size_t n = slash ? (size_t)(slash - file) : 1;
  if (n >= sizeof d) return rv_fail(err, RV_INVALID, "path too long");
  memcpy(d, slash ? file : ".", n);
  if (slash && n == 0) { d[0] = '/'; n = 1; }
  d[n] = 0;
  fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return rv_fail(err, RV_IO, "cannot open directory '%s': %s", d, strerror(errno));
  if (fsync(fd) != 0) { int e = errno; close(fd); return rv_fail(err, RV_IO, "fsync('%s'): %s", d, strerror(e)); }
  close(fd);
  return RV_OK;
}

rv_status rv_publish_end(rv_publish *p, rv_err *err){
  char point[64];
  int fd;
  if (p->f == NULL) return rv_fail(err, RV_CONFLICT, "nothing to publish");
  if (fflush(p->f) != 0 || ferror(p->f)) {
    rv_status rc = rv_fail(err, RV_IO, "writing '%s': %s", p->tmp, strerror(errno));
    rv_publish_abort(p);
    return rc;
  }
  snprintf(point, sizeof point, "%s-written", p->tag);
  rv_crash_point(point);
  fd = fileno(p->f);
  if (fsync(fd) != 0) {
    rv_status rc = rv_fail(err, RV_IO, "fsync('%s'): %s", p->tmp, strerror(errno));
    rv_publish_abort(p);
    return rc;
  }
  if (fclose(p->f) != 0) {
    p->f = NULL;
    unlink(p->tmp);
    return rv_fail(err, RV_IO, "close('%s'): %s", p->tmp, strerror(errno));
  }
  p->f = NULL;
  snprintf(point, sizeof point, "%s-synced", p->tag);
  rv_crash_point(point);
  if (rename(p->tmp, p->final) != 0) {
    rv_status rc = rv_fail(err, RV_IO, "rename to '%s': %s", p->final, strerror(errno));
    unlink(p->tmp);
    return rc;
  }
  snprintf(point, sizeof point, "%s-renamed", p->tag);
  rv_crash_point(point);
  return fsync_dir(p->final, err);
}

void rv_publish_abort(rv_publish *p){
  if (p->f) { fclose(p->f); p->f = NULL; unlink(p->tmp); }
}

void rv_publish_clean(const char *dir, const char *name){
  DIR *d = opendir(dir);
  struct dirent *de;
  size_t n = strlen(name);
  if (d == NULL) return;
  while ((de = readdir(d)) != NULL) {
    const char *s = de->d_name;
    size_t len = strlen(s);
    if (s[0] == '.' && strncmp(s + 1, name, n) == 0 && s[1 + n] == '.' &&
        len > 4 && strcmp(s + len - 4, ".tmp") == 0) {
      char path[4096];
      if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, s) < sizeof path) unlink(path);
    }
  }
  closedir(d);
}

void rv_crash_point(const char *point){
  static int hits;
  const char *at = getenv("RV_TEST_CRASH_AT"), *colon;
  size_t n;
  if (at == NULL) return;
  colon = strchr(at, ':');
  n = colon ? (size_t)(colon - at) : strlen(at);
  if (strlen(point) != n || strncmp(at, point, n) != 0) return;
  if (colon && ++hits < atoi(colon + 1)) return;
  fflush(NULL);
  raise(SIGKILL);
}

void rv_excerpt(const char *s, size_t n, char *out, size_t cap){
  size_t i = 0, w = 0;
  if (cap == 0) return;
  while (i < n && w + 1 < cap) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
             : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (k == 0 || i + k > n || !rv_utf8_valid(s + i, k, NULL)) { out[w++] = '?'; i++; continue; }
    if (k == 1) { out[w++] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c; i++; continue; }
    if (w + k >= cap) break;
    memcpy(out + w, s + i, k);
    w += k;
    i += k;
  }
  out[w] = 0;
}

/*--- Jalali helpers --------------------------------------------------------*/

void rv_jalali_today(int64_t ms, int *jy, int *jm, int *jd){
  int y, m, d, hh, mi, ss;
  rv_tehran_date(ms, &y, &m, &d, &hh, &mi, &ss);
  rv_jalali_from_gregorian(y, m, d, jy, jm, jd);
}

static bool digits_n(const char *s, int n){
  for (int i = 0; i < n; i++) if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

const char *rv_jalali_parse(const char *s, int *jy, int *jm, int *jd){
  if (s == NULL || strlen(s) != 10 || !digits_n(s, 4) || !(s[4] == '/' || s[4] == '-') ||
      s[7] != s[4] || !digits_n(s + 5, 2) || !digits_n(s + 8, 2))
    return "not a Jalali date yyyy/mm/dd";
  *jy = atoi(s);
  *jm = (s[5] - '0') * 10 + (s[6] - '0');
  *jd = (s[8] - '0') * 10 + (s[9] - '0');
  if (*jy < 1300 || *jy > 1600) return "year out of range 1300..1600";
  if (*jm < 1 || *jm > 12) return "month out of range 1..12";
  if (*jd < 1 || *jd > rv_jalali_month_days(*jy, *jm)) return "no such day in that month";
  return NULL;
}

const char *rv_jalali_parse_month(const char *s, int *jy, int *jm){
  if (s == NULL || strlen(s) != 7 || !digits_n(s, 4) || !(s[4] == '-' || s[4] == '/') ||
      !digits_n(s + 5, 2))
    return "not a Jalali month yyyy-mm";
  *jy = atoi(s);
  *jm = (s[5] - '0') * 10 + (s[6] - '0');
  if (*jy < 1300 || *jy > 1600) return "year out of range 1300..1600";
  if (*jm < 1 || *jm > 12) return "month out of range 1..12";
  return NULL;
}

bool rv_json_rials(const cJSON *v, int64_t *out){
  *out = 0;
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    return d >= 1 && d <= 1e15 && rv_num_whole(d, out);
  }
  if (cJSON_IsString(v)) {
    const char *s = v->valuestring;
    size_t n = strlen(s);
    int64_t x = 0;
    if (n == 0 || n > 16 || !digits_n(s, (int)n)) return false;
    for (size_t i = 0; i < n; i++) x = x * 10 + (s[i] - '0');
    if (x < 1 || x > 1000000000000000LL) return false;
    *out = x;
    return true;
  }
  return false;
}

/*--- CLI glue --------------------------------------------------------------*/

rv_status rv_cli_engine_cfg(const char *db, const char *now, rv_clock *clk, rv_engine_cfg *cfg,
                            rv_err *err){
  memset(cfg, 0, sizeof *cfg);
  cfg->db_path = db;
  /* in-process adapters answer inside the command (adapter.h); $RAVAND_ANSWER_NOW=0 sends
  ** their jobs through the loop as an external adapter's (the crash tests use it) */
  cfg->answer_now = !(getenv("RAVAND_ANSWER_NOW") && strcmp(getenv("RAVAND_ANSWER_NOW"), "0") == 0);
  if (now) {
    int64_t ms;
    char *end;
    long long v = strtoll(now, &end, 10);
    if (*end == 0) ms = v;
    else if (rv_datetime_parse(now, &ms, err) != RV_OK) return RV_INVALID;
    rv_clock_init_virtual(clk, ms);
    cfg->clock = clk;
  }
  return RV_OK;
}

int rv_cli_open(const rv_cli_env *env, rv_clock *clk, rv_engine **out){
  rv_engine_cfg cfg;
  rv_err err;
  *out = NULL;
  if (rv_cli_engine_cfg(env->db, env->now, clk, &cfg, &err) != RV_OK) {
    fprintf(stderr, "ravand: --now: %s\n", err.msg);
    return 2;
  }
  if (rv_engine_open(&cfg, out, &err) != RV_OK) {
    fprintf(stderr, "ravand: %s\n", err.msg);
    return 1;
  }
  rv_adapters_bind_engine(*out);
  return 0;
}

void rv_cli_close(rv_engine *e){
  if (e == NULL) return;
  rv_adapters_unbind_engine(e);
  rv_engine_close(e);
}

const char *rv_cli_opt(int *argc, char **argv, const char *name, bool *bad){
  for (int i = 0; i < *argc; i++) {
    if (strcmp(argv[i], name) != 0) continue;
    if (i + 1 >= *argc) { fprintf(stderr, "ravand: %s needs a value\n", name); *bad = true; return NULL; }
    {
      const char *v = argv[i + 1];
      memmove(&argv[i], &argv[i + 2], sizeof(char *) * (size_t)(*argc - i - 2));
      *argc -= 2;
      return v;
    }
  }
  return NULL;
}

bool rv_cli_flag(int *argc, char **argv, const char *name){
  for (int i = 0; i < *argc; i++) {
    if (strcmp(argv[i], name) == 0) {
      memmove(&argv[i], &argv[i + 1], sizeof(char *) * (size_t)(*argc - i - 1));
      (*argc)--;
      return true;
    }
  }
  return false;
}

bool rv_cli_no_unknown(int argc, char **argv){
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "--", 2) == 0) {
      fprintf(stderr, "ravand: unknown option '%s'\n", argv[i]);
      return false;
    }
  return true;
}

void rv_cli_print_json(const cJSON *v){
  char *s = cJSON_Print(v);
  puts(s ? s : "null");
  cJSON_free(s);
}

/*--- jobs done later on the loop -------------------------------------------*/

rv_status rv_job_defer(struct event_base *base, const rv_job_info *job, rv_adapter_done_fn done,
                       void *arg, event_callback_fn run){
  rv_job_copy *j = rv_calloc(1, sizeof *j);
  struct timeval tv = {0, 0};
  j->base = base;
  j->done = done;
  j->arg = arg;
  j->input = job->input ? cJSON_Duplicate(job->input, 1) : cJSON_CreateObject();
  j->key = rv_strdup(job->key ? job->key : "");
  if (event_base_once(base, -1, EV_TIMEOUT, run, j, &tv) != 0) {
    rv_job_copy_free(j);
    return RV_IO;
  }
  return RV_OK;
}

void rv_job_copy_free(rv_job_copy *j){
  if (j == NULL) return;
  cJSON_Delete(j->input);
  rv_free(j->key);
  rv_free(j);
}
