/*
** store/backup.c -- a consistent copy of a live database (`ravand backup`).
**
** A connection of its own, read-only, runs VACUUM INTO a temporary file
** beside the destination. That is one read transaction: the copy is the
** database as of one commit -- every commit acknowledged before the backup
** began is in it, and nothing half-done is -- and in WAL mode the reader and
** `ravand serve`'s writer never wait for each other (the WAL cannot be
** checkpointed past the reader's snapshot meanwhile, so it grows for the
** length of the backup). Copying the files instead (cp of the database and
** its -wal) can give a torn copy: the two are not read at one instant.
**
** The copy is then synced, checked on a connection of its own
** (PRAGMA integrity_check, its schema version), and only then renamed to the
** destination, with the directory synced: the destination either does not
** exist or is a complete, checked copy. An existing destination is refused,
** never overwritten. The files beside the database that are not in it
** (the token pepper) are the caller's: main.c `cmd_backup`.
*/
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store/store.h"
#include "core/mem.h"

/* fsync a file, or a directory (path of one of its entries: its parent). */
static int sync_path(const char *path, bool parent){
  char *copy = rv_strdup(path);
  const char *p = parent ? dirname(copy) : copy;
  int fd = open(p, O_RDONLY | O_CLOEXEC), rc = -1;
  if (fd >= 0) { rc = fsync(fd); close(fd); }
  rv_free(copy);
  return rc;
}

static int64_t scalar(sqlite3 *db, const char *sql){
  sqlite3_stmt *s;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* Open path read-only (must exist), with a busy timeout. */
static rv_status open_ro(const char *path, sqlite3 **db, rv_err *err){
  if (sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    rv_status rc = rv_fail(err, RV_IO, "cannot open '%s': %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_close(*db);
    *db = NULL;
    return rc;
  }
  sqlite3_busy_timeout(*db, 5000);
  return RV_OK;
}

/* The copy at path: integrity, and what the report shows. */
static rv_status check_copy(const char *path, rv_backup_info *info, rv_err *err){
  sqlite3 *db;
  sqlite3_stmt *s;
  rv_status rc = open_ro(path, &db, err);
  if (rc != RV_OK) return rc;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK) {
    rc = rv_fail(err, RV_CORRUPT, "the copy cannot be checked: %s", sqlite3_errmsg(db));
  } else {
    const char *r = sqlite3_step(s) == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
    if (r == NULL || strcmp(r, "ok") != 0)
      rc = rv_fail(err, RV_CORRUPT, "the copy fails integrity_check: %s", r ? r : sqlite3_errmsg(db));
    sqlite3_finalize(s);
  }
  if (rc == RV_OK) {
    info->schema = (int)scalar(db, "PRAGMA user_version");
    info->instances = scalar(db, "SELECT count(*) FROM instances");
    info->last_command = scalar(db, "SELECT coalesce(max(seq), 0) FROM journal");
    if (info->schema <= 0 || info->instances < 0 || info->last_command < 0)
      rc = rv_fail(err, RV_CORRUPT, "'%s' is not a ravand database", path);
  }
  sqlite3_close(db);
  return rc;
}

rv_status rv_store_backup(const char *src, const char *dest, rv_backup_info *info, rv_err *err){
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  struct stat sb;
  char *tmp;
  rv_status rc;

  memset(info, 0, sizeof *info);
  if (stat(src, &sb) != 0)
    return rv_fail(err, RV_NOTFOUND, "no database '%s': %s", src, strerror(errno));
  if (lstat(dest, &sb) == 0)
    return rv_fail(err, RV_CONFLICT, "'%s' exists: a backup never overwrites a file", dest);
  rc = open_ro(src, &db, err);
  if (rc != RV_OK) return rc;
  if (scalar(db, "PRAGMA user_version") != rv_store_schema_version()) {
    rc = rv_fail(err, RV_INVALID, "'%s' is not a ravand database of this version (schema %lld, this "
                 "build %d): back it up with the ravand that serves it", src,
                 (long long)scalar(db, "PRAGMA user_version"), rv_store_schema_version());
    sqlite3_close(db);
    return rc;
  }
  tmp = rv_asprintf("%s.tmp-%ld", dest, (long)getpid());
  unlink(tmp);                             /* a leftover of a process with our pid */
  if (sqlite3_prepare_v2(db, "VACUUM INTO ?", -1, &s, NULL) != SQLITE_OK ||
      sqlite3_bind_text(s, 1, tmp, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_step(s) != SQLITE_DONE)
    rc = rv_fail(err, sqlite3_errcode(db) == SQLITE_FULL ? RV_FULL : RV_IO,
                 "copying '%s' failed: %s", src, sqlite3_errmsg(db));
  sqlite3_finalize(s);
  sqlite3_close(db);
  if (rc == RV_OK && sync_path(tmp, false) != 0)
    rc = rv_fail(err, RV_IO, "cannot sync '%s': %s", tmp, strerror(errno));
  if (rc == RV_OK) rc = check_copy(tmp, info, err);
  if (rc == RV_OK && stat(tmp, &sb) == 0) info->bytes = (int64_t)sb.st_size;
  if (rc == RV_OK && link(tmp, dest) != 0)   /* link, not rename: never over a DEST made meanwhile */
    rc = rv_fail(err, errno == EEXIST ? RV_CONFLICT : RV_IO, "cannot create '%s': %s", dest, strerror(errno));
  unlink(tmp);
  if (rc == RV_OK && sync_path(dest, true) != 0)
    rc = rv_fail(err, RV_IO, "cannot sync the directory of '%s': %s", dest, strerror(errno));
  rv_free(tmp);
  return rc;
}
