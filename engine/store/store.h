/*
** store/store.h -- durable state: one SQLite connection in WAL mode.
**
** The store owns the schema (migrations in store.c), a cache of prepared
** statements and the transaction discipline: every write happens between
** rv_store_begin() and rv_store_commit() on a BEGIN IMMEDIATE transaction;
** a command nested in a batch (group commit) runs inside a savepoint.
** Pragmas enforced at open: journal_mode=WAL, synchronous=FULL (or NORMAL
** when asked, for benchmarks only), foreign_keys=ON, trusted_schema=OFF,
** busy_timeout=5000, temp_store=MEMORY (savepoint journals), pages of
** RV_STORE_PAGE_SIZE bytes in a new database; a larger
** lookaside and, process-wide, no SQLite memory statistics (a global mutex
** per allocation). Loop thread only (the pipelined sync's thread touches
** only the WAL's file descriptor); never carried across fork().
**
** The store is deliberately thin: SQL lives next to the code that needs
** it, but always through rv_store_stmt() so statements are prepared once.
*/
#ifndef RV_STORE_H
#define RV_STORE_H
#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include "core/err.h"

typedef struct rv_store rv_store;

#define RV_STORE_PAGE_SIZE 8192   /* of a new database; an existing one keeps its own */

typedef struct rv_store_opts {
  bool relaxed_sync;      /* synchronous=NORMAL: benchmarks only */
  bool readonly;
} rv_store_opts;

/* Open or create the database at path and migrate its schema.
** Returns: new store in *out, caller closes it with rv_store_close(). */
rv_status rv_store_open(const char *path, const rv_store_opts *opts,
                        rv_store **out /* OUT */, rv_err *err);
void      rv_store_close(rv_store *st);     /* NULL is a no-op */
sqlite3  *rv_store_db(rv_store *st);        /* borrowed */
/* Faults SQLite reported in this process so far (I/O errors, a full disk,
** no memory, corruption): a caller compares before and after its work. */
unsigned long rv_store_faults(void);
/* What the last fault means for a caller: RV_FULL (a full disk) or RV_IO. */
rv_status rv_store_fault_status(void);
/* A failed operation during which the store reported a fault (faults were
** faults0 when it began) failed because of the store: rc becomes that
** failure (RV_IO or RV_FULL, err says so), not what the operation made of
** a read that failed ("no such task") or of a write refused after SQLite
** rolled its transaction back. rc when it succeeded or nothing failed.
** Call it after the rollback. */
rv_status rv_store_failed(rv_status rc, unsigned long faults0, rv_err *err);

/* Transactions. begin is BEGIN IMMEDIATE, or a SAVEPOINT when a
** transaction is already open (nesting depth tracked). commit of the
** outermost level is COMMIT; of an inner level RELEASE. rollback of an
** inner level rolls back to its savepoint only. */
rv_status rv_store_begin(rv_store *st, rv_err *err);
rv_status rv_store_commit(rv_store *st, rv_err *err);
void      rv_store_rollback(rv_store *st);
int       rv_store_depth(const rv_store *st);
/* Changes when an outermost transaction begins and on every rollback (of
** any level): what a caller learnt about the database inside a
** transaction holds while the generation and the transaction stay.
** Generations are unique in the process (not reused by another store). */
unsigned  rv_store_gen(const rv_store *st);
/* How many outermost transactions committed, and how many rollbacks (of a
** transaction or a savepoint) there were, on this connection: what was
** read inside a transaction is known durable once commits moved and
** rollbacks did not (runtime/deploy.c keeps its caches so). */
void      rv_store_tx_counts(const rv_store *st, unsigned *commits, unsigned *rollbacks);

/* A cached prepared statement for sql (a string literal: the pointer is
** the cache key, hashed). The statement is reset and its bindings cleared.
** Borrows: valid until rv_store_close(). */
sqlite3_stmt *rv_store_stmt(rv_store *st, const char *sql);
/* Run sql (no results) with the bindings given by fmt: 'i' int64,
** 't' text (NULL binds NULL), 'd' double. Texts are bound without a copy
** (the statement has run and been reset when this returns). */
rv_status rv_store_exec(rv_store *st, rv_err *err, const char *sql, const char *fmt, ...);
int64_t   rv_store_last_id(rv_store *st);
int       rv_store_changes(rv_store *st);
/* Bind values to a statement with the same fmt convention. */
void      rv_store_bind(sqlite3_stmt *s, const char *fmt, ...);

/* Pipelined WAL sync (store.c explains the promise). rv_store_defer_sync
** switches to synchronous=NORMAL and starts a thread that fdatasyncs the WAL
** when asked; from then on a commit is durable only once rv_store_synced()
** reached its number, and nothing that depends on it may leave the process
** before. Commit numbers count the outermost commits that wrote something.
**   commit_seq   the number of the last commit that wrote
**   synced       commits known durable (= commit_seq when not deferred)
**   sync_async   ask the thread to sync through commit_seq (returns at once)
**   sync_now     sync through commit_seq on this thread
**   sync_fd      readable (an eventfd; read it to clear) after each sync
**                the thread made; -1 when not deferred
**   sync_count   fdatasync calls the thread made */
rv_status rv_store_defer_sync(rv_store *st, rv_err *err);
bool      rv_store_sync_deferred(const rv_store *st);
uint64_t  rv_store_commit_seq(const rv_store *st);
uint64_t  rv_store_synced(const rv_store *st);
void      rv_store_sync_async(rv_store *st);
void      rv_store_sync_now(rv_store *st);
int       rv_store_sync_fd(const rv_store *st);
uint64_t  rv_store_sync_count(const rv_store *st);

/* "ok" check; RV_CORRUPT otherwise with SQLite's first message. */
rv_status rv_store_integrity(rv_store *st, rv_err *err);

/* The name of a filesystem a database is refused on (statfs f_type: NFS,
** SMB/CIFS, FUSE, 9P, Ceph, AFS, Coda), or NULL. rv_store_open refuses
** such a directory (RV_INVALID) unless RAVAND_ALLOW_FS=1. */
const char *rv_store_fs_refused(uint32_t magic);

/* Schema version number this build migrates to. */
int rv_store_schema_version(void);

/* A consistent copy of the database at src, taken while another process
** may be writing it (store/backup.c): dest is created complete and checked,
** or not at all; an existing dest is refused (RV_CONFLICT). src must be of
** this build's schema (RV_INVALID otherwise). */
typedef struct rv_backup_info {
  int64_t bytes;           /* of the copy */
  int     schema;          /* its schema version */
  int64_t instances;       /* instances in it */
  int64_t last_command;    /* the journal's last sequence number in it */
} rv_backup_info;
rv_status rv_store_backup(const char *src, const char *dest, rv_backup_info *info /* OUT */,
                          rv_err *err);

#endif
