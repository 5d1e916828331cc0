/* tests/integration/lostwrites.c -- a disk that keeps only what was synced.
**
** An LD_PRELOAD library for power-loss tests (RELIABILITY A2): what LazyFS
** does with FUSE, done by interposing the libc calls SQLite and ravand make.
** The process sees an ordinary file system; beside it the library keeps an
** image of what a disk would still hold if the power went now:
**
**   - a write marks its pages (4 KiB) dirty: they are in the page cache only;
**   - fsync/fdatasync of a file (any of its descriptors, from any thread)
**     copies the file's dirty pages, as they are when it is called, into the
**     image and sets the image's length to the file's: from then on they are
**     durable (writes another thread makes during the sync are not);
**   - with LOSTWRITES_EARLY=N (per mille), after a write one dirty page of the
**     file is written back early with that probability (the kernel flushes
**     in its own order), so the image can hold some unsynced pages and not
**     others -- what SQLite's checksums and ravand's ordering must survive;
**   - a new file is durable from its first sync (as ext4 commits its name
**     with it); unlink takes it out of the image at once;
**   - "-shm" files are memory, never durable: they are not in the image.
**
** The test SIGKILLs the process and replaces the tracked files with the
** image: that is the disk after a power loss. LOSTWRITES_LIE=1 makes syncs
** do nothing (a disk that lies): the harness's canary, which must then see
** acknowledged commits lost. LOSTWRITES_FULL=PATH: while that file exists,
** writes to tracked files fail with ENOSPC (a full disk, RELIABILITY A5);
** LOSTWRITES_EIO=PATH: while that file exists, reads of them fail with EIO.
**
** Environment: LOSTWRITES_PREFIX (tracked files: paths that start with it,
** as the process spells them), LOSTWRITES_IMAGE (a directory: the image, one
** file per tracked file under its base name; the files existing at start
** are copied into it), LOSTWRITES_EARLY, LOSTWRITES_SEED, LOSTWRITES_LIE,
** LOSTWRITES_FULL, LOSTWRITES_EIO.
** Without LOSTWRITES_PREFIX the library does nothing. Test code only.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#undef _FILE_OFFSET_BITS        /* define open, pwrite... themselves, not their 64 redirects */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define PAGE     4096
#define MAX_FD   4096
#define MAX_FILE 64

typedef struct {
  char     *path;                /* as the process opened it */
  char     *image;               /* its file in the image directory */
  uint64_t *dirty;               /* bit per page: written, not yet durable */
  size_t    words;
  bool      live;                /* false once unlinked (old descriptors sync nothing) */
} lw_file;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_read)(int, void *, size_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *prefix, *image_dir;
static size_t prefix_len;
static int early_permille;
static bool lie;
static const char *full_flag;    /* LOSTWRITES_FULL: while this file exists the disk is full */
static const char *eio_flag;     /* LOSTWRITES_EIO: while this file exists reads fail */
static uint64_t rng = 88172645463325252ull;
static lw_file files[MAX_FILE];
static int nfiles;
static short fdmap[MAX_FD];      /* file index + 1, 0 = not tracked */

/* the next definition of a libc function (POSIX's way to take a function
** pointer from dlsym) */
#define REAL(name) (real_##name ? real_##name \
                    : (*(void **)&real_##name = dlsym(RTLD_NEXT, #name), real_##name))

static void die(const char *what){   /* not through our write: mu may be held */
  char line[256];
  int n = snprintf(line, sizeof line, "lostwrites: %s: %s\n", what, strerror(errno));
  if (REAL(write)(2, line, n > 0 && n < (int)sizeof line ? (size_t)n : 0) < 0) abort();
  abort();
}

static uint64_t next_rand(void){  /* xorshift64 */
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return rng;
}

static bool tracked_name(const char *path){
  size_t n;
  if (prefix == NULL || path == NULL || strncmp(path, prefix, prefix_len) != 0) return false;
  n = strlen(path);
  return !(n >= 4 && strcmp(path + n - 4, "-shm") == 0);
}

static char *image_of(const char *path){
  char *copy = strdup(path), *out;
  if (copy == NULL || asprintf(&out, "%s/%s", image_dir, basename(copy)) < 0) die("memory");
  free(copy);
  return out;
}

static int fill(int i, const char *path){
  files[i].path = strdup(path);
  files[i].image = image_of(path);
  files[i].live = true;
  return i;
}

/* the live file of a path, made if asked */
static int file_of(const char *path, bool make){
  for (int i = 0; i < nfiles; i++)
    if (files[i].live && strcmp(files[i].path, path) == 0) return i;
  if (!make) return -1;
  for (int i = 0; i < nfiles; i++)            /* reuse an unlinked slot no descriptor holds */
    if (!files[i].live) {
      bool held = false;
      for (int fd = 0; fd < MAX_FD && !held; fd++) held = fdmap[fd] == i + 1;
      if (!held) {
        free(files[i].path); free(files[i].image); free(files[i].dirty);
        memset(&files[i], 0, sizeof files[i]);
        return fill(i, path);
      }
    }
  if (nfiles == MAX_FILE) { errno = EMFILE; die("too many files"); }
  return fill(nfiles++, path);
}

static void mark(lw_file *f, uint64_t first, uint64_t last){
  if (last / 64 + 1 > f->words) {
    size_t w = f->words ? f->words : 16;
    while (w < last / 64 + 1) w *= 2;
    f->dirty = realloc(f->dirty, w * sizeof *f->dirty);
    if (f->dirty == NULL) die("memory");
    memset(f->dirty + f->words, 0, (w - f->words) * sizeof *f->dirty);
    f->words = w;
  }
  for (uint64_t p = first; p <= last; p++) f->dirty[p / 64] |= (uint64_t)1 << (p % 64);
}

/* copy page p of the file as it is now into the image (clipped at its end) */
static void copy_page(int src, int dst, uint64_t p, off_t size){
  char buf[PAGE];
  off_t at = (off_t)(p * PAGE);
  ssize_t n;
  if (at >= size) return;
  n = REAL(pread)(src, buf, (size_t)(size - at < PAGE ? size - at : PAGE), at);
  if (n < 0) die("pread");
  if (n > 0 && REAL(pwrite)(dst, buf, (size_t)n, at) != n) die("pwrite image");
}

static int open_pair(lw_file *f, int *src, off_t *size){
  struct stat sb;
  *src = REAL(open)(f->path, O_RDONLY | O_CLOEXEC);
  if (*src < 0) return -1;
  if (fstat(*src, &sb) != 0) die("fstat");
  *size = sb.st_size;
  int dst = REAL(open)(f->image, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (dst < 0) die("open image");
  return dst;
}

/* fsync: every dirty page into the image, and the image's length */
static void make_durable(lw_file *f){
  int src, dst;
  off_t size;
  if (!f->live || lie) return;
  if ((dst = open_pair(f, &src, &size)) < 0) return;
  for (size_t w = 0; w < f->words; w++)
    for (uint64_t bits = f->dirty[w]; bits; bits &= bits - 1)
      copy_page(src, dst, w * 64 + (uint64_t)__builtin_ctzll(bits), size);
  if (f->words) memset(f->dirty, 0, f->words * sizeof *f->dirty);
  if (REAL(ftruncate)(dst, size) != 0) die("ftruncate image");
  REAL(close)(src);
  REAL(close)(dst);
}

/* the kernel's own writeback: one dirty page, as it is now */
static void write_back_one(lw_file *f){
  int src, dst;
  off_t size;
  uint64_t p;
  if (lie || f->words == 0) return;
  p = next_rand() % (f->words * 64);
  for (size_t i = 0; i < f->words * 64; i++, p = (p + 1) % (f->words * 64))
    if (f->dirty[p / 64] & ((uint64_t)1 << (p % 64))) break;
  if (!(f->dirty[p / 64] & ((uint64_t)1 << (p % 64)))) return;
  if ((dst = open_pair(f, &src, &size)) < 0) return;
  copy_page(src, dst, p, size);
  f->dirty[p / 64] &= ~((uint64_t)1 << (p % 64));
  REAL(close)(src);
  REAL(close)(dst);
}

static void copy_file(const char *from, const char *to){
  char buf[1 << 16];
  ssize_t n;
  int a = REAL(open)(from, O_RDONLY | O_CLOEXEC), b;
  if (a < 0) return;
  b = REAL(open)(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (b < 0) die("open image");
  while ((n = REAL(read)(a, buf, sizeof buf)) > 0)
    if (REAL(write)(b, buf, (size_t)n) != n) die("write image");
  REAL(close)(a);
  REAL(close)(b);
}

__attribute__((constructor)) static void lw_init(void){
  const char *e;
  prefix = getenv("LOSTWRITES_PREFIX");
  image_dir = getenv("LOSTWRITES_IMAGE");
  if (prefix == NULL || *prefix == 0) { prefix = NULL; return; }
  if (image_dir == NULL) { errno = EINVAL; die("LOSTWRITES_IMAGE not set"); }
  prefix_len = strlen(prefix);
  early_permille = (e = getenv("LOSTWRITES_EARLY")) ? atoi(e) : 0;
  lie = (e = getenv("LOSTWRITES_LIE")) && strcmp(e, "1") == 0;
  full_flag = getenv("LOSTWRITES_FULL");
  eio_flag = getenv("LOSTWRITES_EIO");
  if ((e = getenv("LOSTWRITES_SEED")) && strtoull(e, NULL, 10) != 0) rng = strtoull(e, NULL, 10);
  {   /* what is on disk now is durable: it is where the image starts */
    char *copy = strdup(prefix), *dir = dirname(copy);
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d == NULL) die("opendir");
    while ((de = readdir(d)) != NULL) {
      char *full;
      if (asprintf(&full, "%s/%s", dir, de->d_name) < 0) die("memory");
      if (tracked_name(full)) {
        struct stat sb;
        if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode)) {
          char *img = image_of(full);
          copy_file(full, img);
          free(img);
        }
      }
      free(full);
    }
    closedir(d);
    free(copy);
  }
}

static void opened(int fd, const char *path, int flags){
  if (fd < 0 || fd >= MAX_FD || !tracked_name(path)) return;
  pthread_mutex_lock(&mu);
  int i = file_of(path, true);
  fdmap[fd] = (short)(i + 1);
  if (flags & O_TRUNC) mark(&files[i], 0, 0);     /* the length changed */
  pthread_mutex_unlock(&mu);
}

static lw_file *file_at(int fd){
  return fd >= 0 && fd < MAX_FD && fdmap[fd] ? &files[fdmap[fd] - 1] : NULL;
}

static void written(int fd, off_t at, ssize_t n){
  lw_file *f;
  if (n <= 0 || prefix == NULL) return;
  pthread_mutex_lock(&mu);
  if ((f = file_at(fd)) != NULL && f->live) {
    mark(f, (uint64_t)at / PAGE, (uint64_t)(at + n - 1) / PAGE);
    if (early_permille > 0 && (int)(next_rand() % 1000) < early_permille) write_back_one(f);
  }
  pthread_mutex_unlock(&mu);
}

static int mode_arg(int flags, va_list ap){
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...){
  va_list ap;
  va_start(ap, flags);
  int mode = mode_arg(flags, ap);
  va_end(ap);
  int fd = REAL(open)(path, flags, mode);
  opened(fd, path, flags);
  return fd;
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...){
  va_list ap;
  va_start(ap, flags);
  int mode = mode_arg(flags, ap);
  va_end(ap);
  int fd = REAL(openat)(dirfd, path, flags, mode);
  if (path[0] == '/') opened(fd, path, flags);   /* relative: not ours */
  return fd;
}
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

int close(int fd){
  if (fd >= 0 && fd < MAX_FD && prefix) {
    pthread_mutex_lock(&mu);
    fdmap[fd] = 0;
    pthread_mutex_unlock(&mu);
  }
  return REAL(close)(fd);
}

/* a write to a tracked file while the disk is "full" */
static bool full(int fd){
  if (full_flag == NULL || file_at(fd) == NULL || access(full_flag, F_OK) != 0) return false;
  errno = ENOSPC;
  return true;
}

/* a read of a tracked file while the disk "fails" */
static bool failing(int fd){
  if (eio_flag == NULL || file_at(fd) == NULL || access(eio_flag, F_OK) != 0) return false;
  errno = EIO;
  return true;
}

ssize_t read(int fd, void *buf, size_t n){
  return failing(fd) ? -1 : REAL(read)(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t at){
  return failing(fd) ? -1 : REAL(pread)(fd, buf, n, at);
}
ssize_t pread64(int fd, void *buf, size_t n, off_t at) __attribute__((alias("pread")));

ssize_t write(int fd, const void *buf, size_t n){
  off_t at = file_at(fd) ? lseek(fd, 0, SEEK_CUR) : 0;
  ssize_t r;
  if (full(fd)) return -1;
  r = REAL(write)(fd, buf, n);
  written(fd, at, r);
  return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at){
  ssize_t r;
  if (full(fd)) return -1;
  r = REAL(pwrite)(fd, buf, n, at);
  written(fd, at, r);
  return r;
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t at) __attribute__((alias("pwrite")));

int ftruncate(int fd, off_t len){
  int r = REAL(ftruncate)(fd, len);
  if (r == 0) written(fd, len, 1);      /* the length changed (the page at it, harmlessly) */
  return r;
}
int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

/* What a sync promises is what was written before it was called: the pages
** are copied into the image on entry, so writes another thread makes while
** the real sync runs are not made durable by it. */
static void syncing(int fd){
  lw_file *f;
  if (prefix == NULL) return;
  pthread_mutex_lock(&mu);
  if ((f = file_at(fd)) != NULL) make_durable(f);
  pthread_mutex_unlock(&mu);
}

int fsync(int fd){ syncing(fd); return REAL(fsync)(fd); }
int fdatasync(int fd){ syncing(fd); return REAL(fdatasync)(fd); }

static void unlinked(const char *path){
  int i;
  if (!tracked_name(path)) return;
  pthread_mutex_lock(&mu);
  if ((i = file_of(path, false)) >= 0) {
    files[i].live = false;
    REAL(unlink)(files[i].image);
  } else {
    char *img = image_of(path);
    REAL(unlink)(img);
    free(img);
  }
  pthread_mutex_unlock(&mu);
}

int unlink(const char *path){
  int r = REAL(unlink)(path);
  if (r == 0) unlinked(path);
  return r;
}

int unlinkat(int dirfd, const char *path, int flags){
  int r = REAL(unlinkat)(dirfd, path, flags);
  if (r == 0 && path[0] == '/') unlinked(path);
  return r;
}
