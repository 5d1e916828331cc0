/*
** store/store.c -- SQLite connection, schema migrations, statement cache
** and nested transactions.
**
** Invariants:
**   - depth == 0 <=> no transaction is open on db.
**   - every statement in the cache is reset before it is handed out.
**   - migrations run in one transaction; user_version is the schema level.
*/
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include "store/store.h"
#include "core/mem.h"
#include "core/fatext.h"

#define STMT_CACHE 256
#define STMT_SLOTS 1024          /* open addressing over the cache, by SQL pointer */
#define MAX_SP     32            /* savepoint levels with prepared statements */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames);
static int commit_hook(void *arg);
#define STR_(x) #x
#define RV_STR(x) STR_(x)

struct rv_store {
  sqlite3 *db;
  int      depth;
  struct { const char *sql; sqlite3_stmt *stmt; } cache[STMT_CACHE];
  int      n_cache;
  short    slot[STMT_SLOTS];     /* index + 1 into cache; 0 = empty */
  unsigned gen;                  /* new per outermost BEGIN and per rollback (gen_serial) */
  unsigned commits, rollbacks;   /* outermost COMMITs; rollbacks (of savepoints too) */
  uint64_t wrote;                /* commits that wrote WAL frames (the WAL hook counts them) */
  bool     committing;           /* our own COMMIT runs (commit_hook lets it through) */
  struct rv_sync *sync;          /* pipelined WAL sync (rv_store_defer_sync), or NULL */
};

/* Transaction statements, prepared once (rv_store_stmt keys on these
** pointers): BEGIN/COMMIT and one SAVEPOINT/RELEASE per nesting level.
** Parsing them for every command cost more than running them. */
#define SP2(n) "SAVEPOINT sp" #n
#define RL2(n) "RELEASE sp" #n
static const char *const sp_sql[MAX_SP] = {
  SP2(0), SP2(1), SP2(2), SP2(3), SP2(4), SP2(5), SP2(6), SP2(7), SP2(8), SP2(9), SP2(10),
  SP2(11), SP2(12), SP2(13), SP2(14), SP2(15), SP2(16), SP2(17), SP2(18), SP2(19), SP2(20),
  SP2(21), SP2(22), SP2(23), SP2(24), SP2(25), SP2(26), SP2(27), SP2(28), SP2(29), SP2(30), SP2(31),
};
static const char *const rl_sql[MAX_SP] = {
  RL2(0), RL2(1), RL2(2), RL2(3), RL2(4), RL2(5), RL2(6), RL2(7), RL2(8), RL2(9), RL2(10),
  RL2(11), RL2(12), RL2(13), RL2(14), RL2(15), RL2(16), RL2(17), RL2(18), RL2(19), RL2(20),
  RL2(21), RL2(22), RL2(23), RL2(24), RL2(25), RL2(26), RL2(27), RL2(28), RL2(29), RL2(30), RL2(31),
};
static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";

/* Generations are unique in the process, not only per store: a cache keyed
** on (store, generation) cannot mistake a new store at a freed store's
** address for the old one. The engine runs on one thread. */
static unsigned gen_serial;

/*--- Schema ---------------------------------------------------------------*/

/* Each entry brings the schema from version i to i+1. Never edit a
** released entry; append a new one. */
/* The events of history_log, one row each (migration 9). */
#define HISTORY_VIEW \
  "(id, seq, instance_id, at, event, element_id, ei, detail) AS" \
  " SELECT id, 0, instance_id, at, event, element_id, ei, detail FROM history_log" \
  " WHERE event <> 'BATCH'" \
  " UNION ALL SELECT h.id, e.key, h.instance_id, h.at, e.value ->> 0, e.value ->> 1," \
  " e.value ->> 2, e.value ->> 3 FROM history_log h, json_each(h.detail) e" \
  " WHERE h.event = 'BATCH'"

static const char *const migrations[] = {
  /* 1: initial schema */
  "CREATE TABLE deployments(id INTEGER PRIMARY KEY, name TEXT, hash TEXT NOT NULL,"
  "  created INTEGER NOT NULL);"
  "CREATE TABLE deployment_files(deployment_id INTEGER NOT NULL REFERENCES deployments(id),"
  "  path TEXT NOT NULL, kind TEXT NOT NULL, content BLOB NOT NULL,"
  "  PRIMARY KEY(deployment_id, path));"
  "CREATE TABLE definitions(id INTEGER PRIMARY KEY, process_id TEXT NOT NULL,"
  "  version INTEGER NOT NULL, deployment_id INTEGER NOT NULL REFERENCES deployments(id),"
  "  file TEXT NOT NULL, hash TEXT NOT NULL, name TEXT, created INTEGER NOT NULL,"
  "  UNIQUE(process_id, version));"
  "CREATE TABLE instances(id INTEGER PRIMARY KEY, definition_id INTEGER NOT NULL"
  "  REFERENCES definitions(id), process_id TEXT NOT NULL, business_key TEXT,"
  "  status TEXT NOT NULL, state TEXT NOT NULL, status_text TEXT,"
  "  parent_instance INTEGER, parent_ei INTEGER, started INTEGER NOT NULL,"
  "  ended INTEGER, rev INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX instances_status ON instances(status, process_id);"
  "CREATE INDEX instances_bkey ON instances(business_key);"
  "CREATE TABLE tasks(id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL,"
  "  ei INTEGER NOT NULL, element_id TEXT NOT NULL, name TEXT, process_id TEXT,"
  "  candidate_groups TEXT, assignee TEXT, branch TEXT, county TEXT,"
  "  status_text TEXT, form TEXT, created INTEGER NOT NULL, due INTEGER,"
  "  state TEXT NOT NULL, completed_by TEXT, completed INTEGER, data TEXT);"
  "CREATE INDEX tasks_open ON tasks(state, branch, county);"
  "CREATE INDEX tasks_inst ON tasks(instance_id, ei);"
  "CREATE TABLE timers(id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL,"
  "  ei INTEGER NOT NULL, element_id TEXT NOT NULL, definition_id INTEGER,"
  "  due INTEGER NOT NULL, repeat_left INTEGER NOT NULL DEFAULT 0,"
  "  fired INTEGER NOT NULL DEFAULT 0, armed INTEGER NOT NULL);"
  "CREATE INDEX timers_due ON timers(due);"
  "CREATE INDEX timers_inst ON timers(instance_id, ei);"
  "CREATE TABLE jobs(id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL,"
  "  ei INTEGER NOT NULL, element_id TEXT NOT NULL, adapter TEXT NOT NULL,"
  "  input TEXT NOT NULL, key TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
  "  attempts INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL,"
  "  backoff_ms INTEGER NOT NULL, next_try INTEGER NOT NULL, last_error TEXT,"
  "  created INTEGER NOT NULL, notify INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX jobs_due ON jobs(state, next_try);"
  "CREATE INDEX jobs_inst ON jobs(instance_id, ei);"
  "CREATE TABLE subscriptions(id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
  "  name TEXT NOT NULL, corr_key TEXT, instance_id INTEGER NOT NULL,"
  "  ei INTEGER NOT NULL, element_id TEXT NOT NULL, definition_id INTEGER);"
  "CREATE INDEX subs_name ON subscriptions(kind, name, corr_key);"
  "CREATE INDEX subs_inst ON subscriptions(instance_id, ei);"
  "CREATE TABLE messages(id INTEGER PRIMARY KEY, message_id TEXT UNIQUE,"
  "  name TEXT NOT NULL, corr_key TEXT, payload TEXT, created INTEGER NOT NULL,"
  "  expires INTEGER NOT NULL, consumed_by INTEGER);"
  "CREATE INDEX messages_name ON messages(name, corr_key);"
  "CREATE TABLE incidents(id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL,"
  "  ei INTEGER NOT NULL, element_id TEXT NOT NULL, kind TEXT NOT NULL,"
  "  message TEXT, job_id INTEGER, created INTEGER NOT NULL, resolved INTEGER,"
  "  state TEXT NOT NULL);"
  "CREATE INDEX incidents_state ON incidents(state);"
  "CREATE TABLE history(id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL,"
  "  at INTEGER NOT NULL, event TEXT NOT NULL, element_id TEXT, ei INTEGER, detail TEXT);"
  "CREATE INDEX history_inst ON history(instance_id, id);"
  "CREATE TABLE journal(seq INTEGER PRIMARY KEY, instance_id INTEGER, at INTEGER NOT NULL,"
  "  command TEXT NOT NULL, payload TEXT);"
  "CREATE INDEX journal_inst ON journal(instance_id, seq);"
  "CREATE TABLE commands(key TEXT PRIMARY KEY, result TEXT NOT NULL, at INTEGER NOT NULL);",
  /* 2: API -- principals, tokens, audit (owned by engine/api) */
  "CREATE TABLE principals(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
  "  role TEXT NOT NULL, national_id TEXT, branch TEXT, county TEXT, organisation TEXT,"
  "  agreement TEXT, groups TEXT, created INTEGER NOT NULL, disabled INTEGER);"
  "CREATE TABLE api_tokens(id INTEGER PRIMARY KEY, principal_id INTEGER NOT NULL"
  "  REFERENCES principals(id), hash BLOB NOT NULL UNIQUE, prefix TEXT NOT NULL,"
  "  created INTEGER NOT NULL, expires INTEGER, revoked INTEGER);"
  "CREATE INDEX api_tokens_principal ON api_tokens(principal_id);"
  "CREATE TABLE audit(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, request_id TEXT,"
  "  principal TEXT, role TEXT, scope TEXT, address TEXT, method TEXT, path TEXT,"
  "  action TEXT NOT NULL, object TEXT, outcome INTEGER NOT NULL, detail TEXT,"
  "  hash TEXT NOT NULL);"
  "CREATE INDEX audit_at ON audit(at);"
  "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
  "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
  "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
  "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
  "CREATE TABLE task_comments(id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL,"
  "  instance_id INTEGER NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL,"
  "  created INTEGER NOT NULL);"
  "CREATE INDEX task_comments_task ON task_comments(task_id, id);"
  "CREATE TABLE api_starts(instance_id INTEGER PRIMARY KEY, principal_id INTEGER NOT NULL,"
  "  role TEXT NOT NULL, organisation TEXT, agreement TEXT);"
  "CREATE INDEX api_starts_org ON api_starts(organisation);"
  /* cartable lists: one office's (or one user's) tasks come out of these in
  ** id order, so a page costs its own rows, not the whole backlog */
  "CREATE INDEX api_tasks_branch ON tasks(branch, state);"
  "CREATE INDEX api_tasks_county ON tasks(county, state);"
  "CREATE INDEX api_tasks_assignee ON tasks(assignee, state);",
  /* 3: adapters: SMS delivery log, bank confirmations (owned by adapters/sms, adapters/bank) */
  "CREATE TABLE sms_log(id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL UNIQUE,"
  "  instance_id INTEGER NOT NULL, element_id TEXT NOT NULL, recipient TEXT NOT NULL,"
  "  text TEXT NOT NULL, ref TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,"
  "  ambiguous INTEGER NOT NULL DEFAULT 0, gateway_id TEXT, duplicate INTEGER NOT NULL DEFAULT 0,"
  "  http_status INTEGER, last_error TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
  "  sent_at INTEGER);"
  "CREATE INDEX sms_log_inst ON sms_log(instance_id, id);"
  "CREATE INDEX sms_log_state ON sms_log(state, id);"
  "CREATE TABLE bank_imports(id INTEGER PRIMARY KEY, source TEXT NOT NULL, file_name TEXT,"
  "  sha256 TEXT UNIQUE, imported INTEGER NOT NULL, lines INTEGER NOT NULL DEFAULT 0,"
  "  report TEXT);"
  "CREATE TABLE bank_confirmations(id INTEGER PRIMARY KEY,"
  "  import_id INTEGER NOT NULL REFERENCES bank_imports(id), line INTEGER NOT NULL,"
  "  payment_id TEXT, amount_rials INTEGER, paid_at TEXT, bank_ref TEXT,"
  "  outcome TEXT NOT NULL, instance_id INTEGER, reason TEXT, at INTEGER NOT NULL,"
  "  UNIQUE(import_id, line));"
  "CREATE UNIQUE INDEX bank_conf_ref ON bank_confirmations(bank_ref)"
  "  WHERE outcome IN ('correlated','started','buffered');"
  "CREATE INDEX bank_conf_payment ON bank_confirmations(payment_id);",
  /* 4: record/replay (owned by engine/journal): mark = max(history.id) when
  **    the journaled command began, so a recording can tell which history
  **    rows each input caused (journal rows before this level have NULL). */
  "ALTER TABLE journal ADD COLUMN mark INTEGER;",
  /* 5: adapters: ledgers, batches, feed imports, records (owned by adapters/finance,
  **    adapters/registry, adapters/records; described in docs/adapters.md) */
  /* payroll deductions and finance payment documents; one row per job key */
  "CREATE TABLE fin_batches(id INTEGER PRIMARY KEY,"
  "  ledger TEXT NOT NULL CHECK(ledger IN ('payroll','finance')), period TEXT,"
  "  created INTEGER NOT NULL, row_count INTEGER NOT NULL, sum_rials INTEGER NOT NULL,"
  "  file_name TEXT NOT NULL UNIQUE, sha256 TEXT, published INTEGER);"
  "CREATE TABLE fin_ledger(id INTEGER PRIMARY KEY,"
  "  ledger TEXT NOT NULL CHECK(ledger IN ('payroll','finance')),"
  "  job_key TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL,"
  "  instance_id INTEGER, element_id TEXT, national_id TEXT NOT NULL,"
  "  period TEXT NOT NULL, sheba TEXT, amount_rials INTEGER NOT NULL CHECK(amount_rials > 0),"
  "  kind TEXT NOT NULL, reference TEXT, created INTEGER NOT NULL,"
  "  batch_id INTEGER REFERENCES fin_batches(id));"
  "CREATE INDEX fin_ledger_open ON fin_ledger(ledger, batch_id, period);"
  "CREATE TRIGGER fin_ledger_frozen BEFORE UPDATE ON fin_ledger WHEN OLD.batch_id IS NOT NULL"
  "  OR NEW.batch_id IS NULL OR NEW.id IS NOT OLD.id OR NEW.ledger IS NOT OLD.ledger"
  "  OR NEW.job_key IS NOT OLD.job_key OR NEW.fingerprint IS NOT OLD.fingerprint"
  "  OR NEW.national_id IS NOT OLD.national_id OR NEW.period IS NOT OLD.period"
  "  OR NEW.sheba IS NOT OLD.sheba OR NEW.amount_rials IS NOT OLD.amount_rials"
  "  OR NEW.kind IS NOT OLD.kind OR NEW.reference IS NOT OLD.reference"
  "  OR NEW.created IS NOT OLD.created OR NEW.instance_id IS NOT OLD.instance_id"
  "  OR NEW.element_id IS NOT OLD.element_id"
  "  BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable once written'); END;"
  "CREATE TRIGGER fin_ledger_keep BEFORE DELETE ON fin_ledger"
  "  BEGIN SELECT RAISE(ABORT, 'ledger rows are never deleted'); END;"
  "CREATE TRIGGER fin_batches_frozen BEFORE UPDATE ON fin_batches WHEN"
  "  NEW.id IS NOT OLD.id OR NEW.ledger IS NOT OLD.ledger OR NEW.period IS NOT OLD.period"
  "  OR NEW.created IS NOT OLD.created OR NEW.row_count IS NOT OLD.row_count"
  "  OR NEW.sum_rials IS NOT OLD.sum_rials OR NEW.file_name IS NOT OLD.file_name"
  "  OR (OLD.sha256 IS NOT NULL AND NEW.sha256 IS NOT OLD.sha256)"
  "  BEGIN SELECT RAISE(ABORT, 'a batch never changes; only its first publication is recorded'); END;"
  "CREATE TRIGGER fin_batches_keep BEFORE DELETE ON fin_batches"
  "  BEGIN SELECT RAISE(ABORT, 'batches are never deleted'); END;"
  /* civil-registry marriage feed: files, applied records, rejected/duplicate lines */
  "CREATE TABLE feed_imports(id INTEGER PRIMARY KEY, file_name TEXT NOT NULL,"
  "  sha256 TEXT NOT NULL UNIQUE, bytes INTEGER NOT NULL, lines INTEGER NOT NULL DEFAULT 0,"
  "  state TEXT NOT NULL CHECK(state IN ('running','done','rejected')), reason TEXT,"
  "  started INTEGER NOT NULL, finished INTEGER, resume_pos INTEGER NOT NULL DEFAULT 0,"
  "  resume_line INTEGER NOT NULL DEFAULT 0, report TEXT);"
  "CREATE TABLE feed_records(id INTEGER PRIMARY KEY,"
  "  import_id INTEGER NOT NULL REFERENCES feed_imports(id), line INTEGER NOT NULL,"
  "  registry_office TEXT NOT NULL, certificate_no TEXT NOT NULL,"
  "  husband_id TEXT NOT NULL, wife_id TEXT NOT NULL, marriage_date TEXT NOT NULL,"
  "  marriage_type TEXT NOT NULL, husband_outcome TEXT NOT NULL, wife_outcome TEXT NOT NULL,"
  "  husband_instance INTEGER, wife_instance INTEGER,"
  "  UNIQUE(registry_office, certificate_no));"
  "CREATE INDEX feed_records_import ON feed_records(import_id);"
  "CREATE INDEX feed_records_husband ON feed_records(husband_id);"
  "CREATE INDEX feed_records_wife ON feed_records(wife_id);"
  "CREATE TABLE feed_issues(import_id INTEGER NOT NULL REFERENCES feed_imports(id),"
  "  line INTEGER NOT NULL, kind TEXT NOT NULL CHECK(kind IN ('rejected','duplicate')),"
  "  reason TEXT NOT NULL, excerpt TEXT, PRIMARY KEY(import_id, line)) WITHOUT ROWID;"
  /* person records the processes read (records.h); replaceable by a real backend */
  "CREATE TABLE rec_persons(national_id TEXT PRIMARY KEY, first_name TEXT NOT NULL,"
  "  last_name TEXT NOT NULL, father_name TEXT, gender TEXT NOT NULL CHECK(gender IN ('m','f')),"
  "  birth_date TEXT NOT NULL, role TEXT NOT NULL CHECK(role IN ('insured','pensioner')),"
  "  insurance_type TEXT, pension_no TEXT, branch TEXT, county TEXT, sheba TEXT, mobile TEXT,"
  "  marital_status TEXT, supplementary TEXT) WITHOUT ROWID;"
  /* key columns first: SQLite 3.40's integrity_check misreads WITHOUT ROWID
  ** tables whose key columns are not the leading ones ("NULL value in ...") */
  "CREATE TABLE rec_contributions(national_id TEXT NOT NULL, from_period TEXT NOT NULL,"
  "  workshop TEXT NOT NULL, to_period TEXT NOT NULL, days_per_month INTEGER NOT NULL,"
  "  wage_rials INTEGER NOT NULL, insurance_type TEXT NOT NULL,"
  "  PRIMARY KEY(national_id, from_period, workshop)) WITHOUT ROWID;"
  "CREATE TABLE rec_dependents(principal_id TEXT NOT NULL, national_id TEXT NOT NULL,"
  "  first_name TEXT NOT NULL, last_name TEXT NOT NULL, relation TEXT NOT NULL,"
  "  gender TEXT NOT NULL, birth_date TEXT NOT NULL, dependency_end TEXT,"
  "  supplementary TEXT NOT NULL, PRIMARY KEY(principal_id, national_id)) WITHOUT ROWID;"
  "CREATE TABLE rec_statements(national_id TEXT NOT NULL, period TEXT NOT NULL,"
  "  due_rials INTEGER NOT NULL, paid_rials INTEGER NOT NULL, paid_date TEXT,"
  "  PRIMARY KEY(national_id, period)) WITHOUT ROWID;"
  "CREATE TABLE rec_benefits(national_id TEXT NOT NULL, kind TEXT NOT NULL,"
  "  date TEXT NOT NULL, amount_rials INTEGER NOT NULL,"
  "  PRIMARY KEY(national_id, kind, date)) WITHOUT ROWID;"
  "CREATE TABLE rec_loads(id INTEGER PRIMARY KEY, dir TEXT NOT NULL, at INTEGER NOT NULL,"
  "  report TEXT NOT NULL);",
  /* 6: inquiry documents and agreements (owned by adapters/inquiry, read by the API's
  **    POST /v1/inquiry/documents/fetch; docs/directives/inquiry.md). A code is stored
  **    as its selector (the public half, looked up) and a salted, peppered Argon2id
  **    hash of the secret half; never in clear. */
  "CREATE TABLE inquiry_codes(id INTEGER PRIMARY KEY, job_key TEXT NOT NULL UNIQUE,"
  "  instance_id INTEGER, national_id TEXT NOT NULL, selector TEXT NOT NULL UNIQUE,"
  "  salt BLOB NOT NULL, hash BLOB NOT NULL, kdf_ops INTEGER NOT NULL, kdf_mem INTEGER NOT NULL,"
  "  generation INTEGER NOT NULL DEFAULT 1, document TEXT NOT NULL, issued INTEGER NOT NULL,"
  "  valid_until INTEGER NOT NULL, max_fetches INTEGER NOT NULL, fetches INTEGER NOT NULL DEFAULT 0,"
  "  failures INTEGER NOT NULL DEFAULT 0, locked_until INTEGER, last_fetch INTEGER,"
  "  state TEXT NOT NULL CHECK(state IN ('active','revoked','expired')), reason TEXT,"
  "  updated INTEGER NOT NULL);"
  "CREATE INDEX inquiry_codes_inst ON inquiry_codes(instance_id);"
  "CREATE TABLE inquiry_agreements(organisation TEXT NOT NULL, agreement TEXT NOT NULL,"
  "  scope TEXT NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL,"
  "  state TEXT NOT NULL CHECK(state IN ('active','revoked','expired')), reason TEXT,"
  "  instance_id INTEGER, job_key TEXT, updated INTEGER NOT NULL,"
  "  PRIMARY KEY(organisation, agreement)) WITHOUT ROWID;"
  /* every fetch attempt (the audit log has them too): the throttle counts refusals
  ** per principal and per organisation over a sliding window from here */
  "CREATE TABLE inquiry_attempts(id INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
  "  request_id TEXT, principal_id INTEGER NOT NULL, principal TEXT NOT NULL,"
  "  organisation TEXT NOT NULL, agreement TEXT, code_id INTEGER,"
  "  outcome TEXT NOT NULL, reason TEXT);"
  "CREATE INDEX inquiry_attempts_principal ON inquiry_attempts(principal_id, outcome, at);"
  "CREATE INDEX inquiry_attempts_org ON inquiry_attempts(organisation, outcome, at);"
  "CREATE INDEX inquiry_attempts_code ON inquiry_attempts(code_id);",
  /* 7: the portal's document store (owned by engine/api/documents.c; docs/api.md
  **    "Documents"). Content-addressed per owner: one row per (SHA-256, owner), so
  **    the same bytes uploaded again by the same principal are the same document.
  **    document_refs: which instances' variables a document was given to (start or
  **    task completion); staff who see such an instance may read the document. */
  "CREATE TABLE documents(id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL,"
  "  owner_id INTEGER NOT NULL, owner_national_id TEXT, type TEXT NOT NULL,"
  "  size INTEGER NOT NULL, created INTEGER NOT NULL, data BLOB NOT NULL,"
  "  UNIQUE(sha256, owner_id));"
  "CREATE INDEX documents_owner ON documents(owner_id);"
  "CREATE TABLE document_refs(document_id INTEGER NOT NULL, instance_id INTEGER NOT NULL,"
  "  PRIMARY KEY(document_id, instance_id)) WITHOUT ROWID;"
  "CREATE INDEX document_refs_inst ON document_refs(instance_id);",
  /* 8: task indexes that completing a task only deletes from (docs/performance.md
  **    "What bounds workload 7"). The open-task lookups (cartables by branch,
  **    county, assignee; every open task for metrics and unscoped lists) use
  **    partial indexes WHERE state='open': a completion or cancellation drops the
  **    row out of them, where it used to move in four indexes on state. Queries
  **    must write state='open' literally to use them (SQLite proves the index's
  **    WHERE from the query's text). Their key leads with state (always 'open'
  **    there): without statistics, state='open' AND branch=? is then two equality
  **    columns against one in the full index, so the planner takes the partial
  **    one; state='open' alone finds every open task. The full indexes (closed or
  **    all tasks of an office or a user) leave state out, so a state change does
  **    not touch them. Rows with a NULL key are left out (no query looks tasks up
  **    by a NULL), except from tasks_open_branch: it holds every open task.
  **    Order matters: on a tie between lookups on as many columns SQLite takes
  **    the index created last, so branch comes after county, assignee after
  **    branch, and tasks_inst is built again, last, so that instance_id=? AND
  **    state='open' (flow, replay, waiting counts) stays on it. */
  "DROP INDEX tasks_open;"
  "DROP INDEX api_tasks_branch;"
  "DROP INDEX api_tasks_county;"
  "DROP INDEX api_tasks_assignee;"
  "CREATE INDEX tasks_county ON tasks(county) WHERE county IS NOT NULL;"
  "CREATE INDEX tasks_branch ON tasks(branch) WHERE branch IS NOT NULL;"
  "CREATE INDEX tasks_assignee ON tasks(assignee) WHERE assignee IS NOT NULL;"
  "CREATE INDEX tasks_open_county ON tasks(state, county) WHERE state='open' AND county IS NOT NULL;"
  "CREATE INDEX tasks_open_branch ON tasks(state, branch) WHERE state='open';"
  "CREATE INDEX tasks_open_assignee ON tasks(state, assignee)"
  "  WHERE state='open' AND assignee IS NOT NULL;"
  "DROP INDEX tasks_inst;"
  "CREATE INDEX tasks_inst ON tasks(instance_id, ei);",
  /* 9: history in batches (owned by engine/runtime: engine.c hist_pack). The
  **    table keeps its rows as history_log; a command's consecutive events for
  **    one instance are one row there (event 'BATCH', detail a JSON array of
  **    [event, element, ei, detail?]), a lone event a row of its own. The view
  **    `history` shows one row per event, ordered by (id, seq); the marks
  **    (journal.mark) are history_log ids. A view in the schema may not call
  **    the JSON functions while trusted_schema is OFF, so every connection of
  **    ravand creates the same view as TEMP (rv_store_open), which shadows
  **    this one; this one is for other tools (the sqlite3 shell). */
  "ALTER TABLE history RENAME TO history_log;"
  "CREATE VIEW history" HISTORY_VIEW ";",
  /* 10: scope values in normal form everywhere (core/fatext.h): principals
  **     and tasks written before the normaliser existed are rewritten once,
  **     so the token check and the cartables compare stored values as they
  **     are. rv_fa_norm() is registered on the connection (rv_store_open). */
  "UPDATE principals SET branch=rv_fa_norm(branch) WHERE branch IS NOT rv_fa_norm(branch);"
  "UPDATE principals SET county=rv_fa_norm(county) WHERE county IS NOT rv_fa_norm(county);"
  "UPDATE tasks SET branch=rv_fa_norm(branch) WHERE branch IS NOT rv_fa_norm(branch);"
  "UPDATE tasks SET county=rv_fa_norm(county) WHERE county IS NOT rv_fa_norm(county);",
  /* 11: the due-jobs index holds pending jobs only. Most jobs are answered
  **     inside the command that created them and are written done (records
  **     lookups, ledger rows): they never needed an entry, and a job that
  **     ends leaves the index instead of moving in it. Every reader names
  **     state='pending' literally (dispatch, next due, metrics). */
  "DROP INDEX jobs_due;"
  "CREATE INDEX jobs_due ON jobs(next_try) WHERE state='pending';",
  /* 12: indexes that every registry record paid for and nothing read.
  **     The message-name index holds waiting (buffered) messages only: a
  **     message is written consumed when it reaches a case at once (every
  **     record of a registry feed), and only waiting ones are looked up by
  **     name (flow.c SQL_BUFFERED names consumed_by IS NULL). The feed
  **     records' indexes on the spouses' national IDs had no reader at all
  **     (a person's cases are found by business key, instances_bkey, and
  **     hold their feed_import and feed_line). Three random inserts less
  **     per record. */
  "DROP INDEX messages_name;"
  "CREATE INDEX messages_name ON messages(name, corr_key) WHERE consumed_by IS NULL;"
  "DROP INDEX feed_records_husband;"
  "DROP INDEX feed_records_wife;",
};

int rv_store_schema_version(void){
  return (int)(sizeof migrations / sizeof migrations[0]);
}

static rv_status sqlfail(rv_store *st, rv_err *err, const char *what){
  int rc = sqlite3_errcode(st->db);
  rv_status s = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? RV_BUSY
              : (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) ? RV_CORRUPT
              : (rc == SQLITE_NOMEM) ? RV_NOMEM
              : (rc == SQLITE_FULL) ? RV_FULL
              : (rc == SQLITE_CONSTRAINT) ? RV_CONFLICT : RV_IO;
  return rv_fail(err, s, "%s: %s", what, sqlite3_errmsg(st->db));
}

static rv_status exec_plain(rv_store *st, const char *sql, rv_err *err){
  char *msg = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    rv_status s = sqlfail(st, err, "sql");
    if (err && msg) snprintf(err->msg, sizeof err->msg, "%s", msg);
    sqlite3_free(msg);
    return s;
  }
  return RV_OK;
}

static int pragma_int(rv_store *st, const char *sql){
  sqlite3_stmt *s;
  int v = -1;
  if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* rv_fa_norm(x): x in normal form (core/fatext.h); NULL and text that is
** not UTF-8 come back as they are. For migration 10. */
static void sql_fa_norm(sqlite3_context *cx, int argc, sqlite3_value **argv){
  const char *v = (const char *)sqlite3_value_text(argv[0]);
  char *n;
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || v == NULL) { sqlite3_result_null(cx); return; }
  n = rv_fa_normdup(v);
  sqlite3_result_text(cx, n, -1, SQLITE_TRANSIENT);
  rv_free(n);
}

static rv_status migrate(rv_store *st, rv_err *err){
  int have = pragma_int(st, "PRAGMA user_version");
  int want = rv_store_schema_version();
  rv_status rc;
  char sql[64];

  if (have < 0) return sqlfail(st, err, "read schema version");
  if (have > want)
    return rv_fail(err, RV_CORRUPT, "database schema %d is newer than this ravand (%d)", have, want);
  if (have == want) return RV_OK;
  if (sqlite3_create_function(st->db, "rv_fa_norm", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                              NULL, sql_fa_norm, NULL, NULL) != SQLITE_OK)
    return sqlfail(st, err, "register rv_fa_norm");
  rc = exec_plain(st, "BEGIN IMMEDIATE", err);
  for (int i = have; rc == RV_OK && i < want; i++) rc = exec_plain(st, migrations[i], err);
  snprintf(sql, sizeof sql, "PRAGMA user_version=%d", want);
  if (rc == RV_OK) rc = exec_plain(st, sql, err);
  if (rc == RV_OK) rc = exec_plain(st, "COMMIT", err);
  else exec_plain(st, "ROLLBACK", NULL);
  return rc;
}

/*--- SQLite's small allocations --------------------------------------------*/

/* Every small allocation of a statement (cursors, records, values: about
** 130 per case of the marriage feed import) comes from the small-block
** pool (core/mem.c) instead of malloc. Not under AddressSanitizer, which
** should see SQLite's own blocks too. */
#if !defined(RV_ASAN)
static void *pool_malloc(int n){ return rv_pool_alloc(n > 0 ? (size_t)n : 1); }
static void *pool_realloc(void *p, int n){ return rv_pool_realloc(p, n > 0 ? (size_t)n : 1); }
static int pool_size(void *p){ return (int)rv_pool_size(p); }
static int pool_round(int n){ return (int)rv_pool_round(n > 0 ? (size_t)n : 1); }
static int pool_init(void *x){ (void)x; return SQLITE_OK; }
static void pool_shutdown(void *x){ (void)x; }

static void sqlite_memory_setup(void){
  static const sqlite3_mem_methods m = {
    pool_malloc, rv_pool_free, pool_realloc, pool_size, pool_round, pool_init, pool_shutdown, NULL
  };
  sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
}
#else
static void sqlite_memory_setup(void){ }
#endif

/* Faults SQLite reported (its error log, SQLITE_CONFIG_LOG): an I/O error,
** a full disk, no memory, a corrupt file. A command that failed after one
** failed because of the store, whatever it made of the reads that failed
** ("no such task" from a read that could not read): rv_store_failed says
** so. Logged to stderr for operators. */
static _Atomic unsigned long store_faults;
static _Atomic int last_fault;          /* its primary result code */

static void sqlite_log(void *arg, int code, const char *msg){
  int primary = code & 0xff;
  (void)arg;
  if (primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_NOMEM ||
      primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    atomic_store(&last_fault, primary);
    atomic_fetch_add(&store_faults, 1);
    fprintf(stderr, "ravand: sqlite: %s (code %d)\n", msg, code);
  }
}

unsigned long rv_store_faults(void){ return atomic_load(&store_faults); }
rv_status rv_store_fault_status(void){
  return atomic_load(&last_fault) == SQLITE_FULL ? RV_FULL : RV_IO;
}

rv_status rv_store_failed(rv_status rc, unsigned long faults0, rv_err *err){
  char why[sizeof err->msg];
  rv_status s;
  if (rc == RV_OK || rv_store_faults() == faults0) return rc;
  if ((s = rv_store_fault_status()) == rc) return rc;
  snprintf(why, sizeof why, "%s", err ? err->msg : rv_status_name(rc));
  return rv_fail(err, s, "the store failed during the operation (%s)", why);
}

/* Filesystems a WAL database cannot be trusted on: SQLite's locks and the
** -shm mapping need one kernel to see every access ("WAL does not work over
** a network filesystem", sqlite.org/wal.html), and what a FUSE server does
** with fsync is its own affair. By statfs's f_type. */
const char *rv_store_fs_refused(uint32_t magic){
  static const struct { uint32_t magic; const char *name; } bad[] = {
    { 0x6969, "NFS" }, { 0x517B, "SMB" }, { 0xFF534D42, "CIFS" }, { 0xFE534D42, "SMB2" },
    { 0x65735546, "FUSE" }, { 0x01021997, "9P" }, { 0x00C36400, "Ceph" },
    { 0x5346414F, "AFS" }, { 0x73757245, "Coda" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (bad[i].magic == magic) return bad[i].name;
  return NULL;
}

/* Refuse a database on such a filesystem, unless RAVAND_ALLOW_FS=1 (the
** operator's decision, e.g. a FUSE volume known to be local and honest).
** RV_TEST_FS_MAGIC (hex, tests only) stands for statfs's answer. A
** directory statfs cannot read is not refused here (open fails later if
** it matters). */
static rv_status fs_check(const char *path, rv_err *err){
  char *copy = rv_strdup(path);
  const char *dir = dirname(copy), *fake = getenv("RV_TEST_FS_MAGIC"), *allow = getenv("RAVAND_ALLOW_FS");
  struct statfs sf;
  uint32_t magic = 0;
  bool known = false;
  const char *name;
  rv_status rc = RV_OK;
  if (fake && *fake) { magic = (uint32_t)strtoul(fake, NULL, 16); known = true; }
  else if (statfs(dir, &sf) == 0) { magic = (uint32_t)sf.f_type; known = true; }
  if (known && (name = rv_store_fs_refused(magic)) != NULL && !(allow && strcmp(allow, "1") == 0))
    rc = rv_fail(err, RV_INVALID, "database '%s' is on a %s filesystem: SQLite's WAL needs local "
                 "locks and shared memory, and a sync the disk keeps; put it on a local disk, or "
                 "set RAVAND_ALLOW_FS=1 to run there anyway", path, name);
  rv_free(copy);
  return rc;
}

rv_status rv_store_open(const char *path, const rv_store_opts *opts,
                        rv_store **out, rv_err *err){
  rv_store *st;
  rv_status rc;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  bool relaxed = opts && opts->relaxed_sync;

  *out = NULL;
  if (strcmp(path, ":memory:") != 0 && (rc = fs_check(path, err)) != RV_OK) return rc;
  /* Process-wide, before SQLite initialises (refused afterwards, which is
  ** harmless): no memory statistics -- they take a global mutex on every
  ** allocation, and we never read them -- the pooled small blocks, and the
  ** error log that counts the store's faults. */
  {
    static bool configured;
    if (!configured) {
      configured = true;
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
      sqlite_memory_setup();
      sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log, NULL);
    }
  }
  st = rv_calloc(1, sizeof *st);
  if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
    rc = rv_fail(err, RV_IO, "cannot open database '%s': %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
    rv_store_close(st);
    return rc;
  }
  sqlite3_busy_timeout(st->db, 5000);
  /* a larger lookaside: a command's statements allocate many small
  ** objects (cursors, records); 512 slots of 512 bytes (default 100 x 1200).
  ** Without effect where the library is built with SQLITE_OMIT_LOOKASIDE
  ** (Debian's is): there SQLite's allocations all go to malloc. */
  sqlite3_db_config(st->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 512, 512);
  sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_extended_result_codes(st->db, 0);
  /* Pages of 8 KiB in a new database (SQLite's default is 4 KiB): the
  ** rows a command writes are large (an instance's state ~1.4 KB, a
  ** history batch ~2 KB), so with 4 KiB pages every other insert split a
  ** page, and every commit wrote more, smaller pages to the WAL and from it
  ** (marriage feed import, 100,000 records: system time 4.1 -> 2.7 s,
  ** wall about -10%; docs/performance.md). Only a new file takes it: an
  ** existing database keeps its page size (SQLite changes it in a VACUUM
  ** outside WAL mode only; docs/architecture.md, "Durability"). */
  rc = exec_plain(st, "PRAGMA page_size=" RV_STR(RV_STORE_PAGE_SIZE), err);
  if (rc == RV_OK) rc = exec_plain(st, "PRAGMA journal_mode=WAL", err);
  if (rc == RV_OK)
    rc = exec_plain(st, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", err);
  if (rc == RV_OK) rc = exec_plain(st, "PRAGMA foreign_keys=ON", err);
  if (rc == RV_OK) rc = exec_plain(st, "PRAGMA trusted_schema=OFF", err);
  if (rc == RV_OK) rc = exec_plain(st, "PRAGMA journal_size_limit=67108864", err);
  /* Savepoint journals in memory: every command of a group commit runs in
  ** its own savepoint, and the first change of each page in it copies the
  ** page to the sub-journal; on disk (the default) that spilled to a temp
  ** file past 64 KiB and was most of a batch's system time. Durability is
  ** the WAL's business and does not change. */
  if (rc == RV_OK) rc = exec_plain(st, "PRAGMA temp_store=MEMORY", err);
  /* Page cache: 32 MiB instead of SQLite's 2 MiB. A month's batch touches
  ** the records, the instances and the journal all over a database of a
  ** gigabyte; with 2 MiB every other page was a pread() from the OS cache
  ** (marriage month end, 20,000 registry records: 16.3 -> 14.0 s, system
  ** time 1.7 -> 0.95 s). Memory grows with use, up to this per connection. */
  if (rc == RV_OK) rc = exec_plain(st, "PRAGMA cache_size=-32768", err);
  /* counts the commits that wrote (rv_store_commit_seq) and checkpoints at
  ** 1,000 frames, as SQLite's own hook, which this one replaces, did */
  if (rc == RV_OK) sqlite3_wal_hook(st->db, wal_hook, st);
  if (rc == RV_OK) sqlite3_commit_hook(st->db, commit_hook, st);
  if (rc == RV_OK) rc = migrate(st, err);
  if (rc == RV_OK) rc = exec_plain(st, "CREATE TEMP VIEW history" HISTORY_VIEW, err);
  /* Self-check (RELIABILITY A6): refuse to run on a store that would not
  ** keep its promises. */
  if (rc == RV_OK) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK) {
      if (sqlite3_step(s) == SQLITE_ROW &&
          strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0)
        rc = rv_fail(err, RV_IO, "database '%s' cannot use WAL mode", path);
      sqlite3_finalize(s);
    }
    if (rc == RV_OK && !relaxed && pragma_int(st, "PRAGMA synchronous") != 2)
      rc = rv_fail(err, RV_IO, "synchronous=FULL could not be set");
    if (rc == RV_OK && pragma_int(st, "PRAGMA foreign_keys") != 1)
      rc = rv_fail(err, RV_IO, "foreign_keys could not be enabled");
    if (rc == RV_OK && pragma_int(st, "PRAGMA trusted_schema") != 0)
      rc = rv_fail(err, RV_IO, "trusted_schema could not be turned off");
    if (rc == RV_OK && pragma_int(st, "PRAGMA busy_timeout") < 5000)
      rc = rv_fail(err, RV_IO, "the busy timeout could not be set");
  }
  if (rc != RV_OK) { rv_store_close(st); return rc; }
  *out = st;
  return RV_OK;
}

static void sync_stop(rv_store *st);

void rv_store_close(rv_store *st){
  if (st == NULL) return;
  sync_stop(st);
  for (int i = 0; i < st->n_cache; i++) sqlite3_finalize(st->cache[i].stmt);
  sqlite3_close(st->db);
  rv_free(st);
}

sqlite3 *rv_store_db(rv_store *st){ return st->db; }
int rv_store_depth(const rv_store *st){ return st->depth; }

/* Run a cached statement that returns no rows. */
static rv_status exec_cached(rv_store *st, const char *sql, rv_err *err){
  sqlite3_stmt *s = rv_store_stmt(st, sql);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    rv_status r = sqlfail(st, err, "sql");
    if (err) snprintf(err->msg, sizeof err->msg, "%s", sqlite3_errmsg(st->db));   /* as exec_plain */
    sqlite3_reset(s);
    return r;
  }
  sqlite3_reset(s);
  return RV_OK;
}

rv_status rv_store_begin(rv_store *st, rv_err *err){
  char sql[48];
  rv_status rc;
  /* our transaction is gone (SQLite rolled it back after an error): a
  ** SAVEPOINT now would begin another one, holding only what comes next */
  if (st->depth > 0 && sqlite3_get_autocommit(st->db))
    return rv_fail(err, RV_IO, "the transaction was rolled back by an earlier error");
  if (st->depth == 0) rc = exec_cached(st, sql_begin, err);
  else if (st->depth < MAX_SP) rc = exec_cached(st, sp_sql[st->depth], err);
  else {
    snprintf(sql, sizeof sql, "SAVEPOINT sp%d", st->depth);
    rc = exec_plain(st, sql, err);
  }
  if (rc == RV_OK && st->depth++ == 0) st->gen = ++gen_serial;
  return rc;
}

rv_status rv_store_commit(rv_store *st, rv_err *err){
  char sql[48];
  rv_status rc;
  if (st->depth <= 0) return rv_fail(err, RV_CONFLICT, "commit without a transaction");
  if (st->depth == 1) {
    st->committing = true;
    rc = exec_cached(st, sql_commit, err);
    st->committing = false;
    if (rc != RV_OK) { exec_plain(st, "ROLLBACK", NULL); st->depth = 0; st->gen = ++gen_serial; st->rollbacks++; return rc; }
    st->commits++;
  } else if (st->depth - 1 < MAX_SP) {
    rc = exec_cached(st, rl_sql[st->depth - 1], err);
    if (rc != RV_OK) return rc;
  } else {
    snprintf(sql, sizeof sql, "RELEASE sp%d", st->depth - 1);
    rc = exec_plain(st, sql, err);
    if (rc != RV_OK) return rc;
  }
  st->depth--;
  return RV_OK;
}

void rv_store_rollback(rv_store *st){
  char sql[64];
  if (st->depth <= 0) return;
  if (st->depth == 1) exec_plain(st, "ROLLBACK", NULL);
  else {
    snprintf(sql, sizeof sql, "ROLLBACK TO sp%d; RELEASE sp%d", st->depth - 1, st->depth - 1);
    exec_plain(st, sql, NULL);
  }
  st->depth--;
  st->gen = ++gen_serial;
  st->rollbacks++;
}

unsigned rv_store_gen(const rv_store *st){ return st->gen; }
void rv_store_tx_counts(const rv_store *st, unsigned *commits, unsigned *rollbacks){
  *commits = st->commits;
  *rollbacks = st->rollbacks;
}

static unsigned slot_of(const char *sql){
  uintptr_t h = (uintptr_t)sql;
  h ^= h >> 17;
  h *= (uintptr_t)0x9E3779B97F4A7C15ULL;
  return (unsigned)(h >> 7) & (STMT_SLOTS - 1);
}

sqlite3_stmt *rv_store_stmt(rv_store *st, const char *sql){
  sqlite3_stmt *s = NULL;
  unsigned h = slot_of(sql);
  for (;;) {
    int i = st->slot[h] - 1;
    if (i < 0) break;
    if (st->cache[i].sql == sql) {
      s = st->cache[i].stmt;
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
      return s;
    }
    h = (h + 1) & (STMT_SLOTS - 1);
  }
  if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
    fprintf(stderr, "ravand: internal SQL error: %s\n  in: %s\n", sqlite3_errmsg(st->db), sql);
    abort();   /* a bad statement in our own source is a programmer error */
  }
  if (st->n_cache < STMT_CACHE) {
    st->cache[st->n_cache].sql = sql;
    st->cache[st->n_cache].stmt = s;
    st->n_cache++;
    st->slot[h] = (short)st->n_cache;
  } else {
    abort();   /* raise STMT_CACHE */
  }
  return s;
}

/* dtor: SQLITE_TRANSIENT (the caller may free the text before it steps)
** or SQLITE_STATIC (rv_store_exec: steps and resets before it returns, and
** rv_store_stmt clears the bindings before the statement is used again). */
static void vbind(sqlite3_stmt *s, const char *fmt, va_list ap, sqlite3_destructor_type dtor){
  for (int i = 0; fmt && fmt[i]; i++) {
    switch (fmt[i]) {
    case 'i': sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t)); break;
    case 'd': sqlite3_bind_double(s, i + 1, va_arg(ap, double)); break;
    case 't': {
      const char *t = va_arg(ap, const char *);
      if (t) sqlite3_bind_text(s, i + 1, t, -1, dtor);
      else   sqlite3_bind_null(s, i + 1);
      break;
    }
    default: abort();
    }
  }
}

void rv_store_bind(sqlite3_stmt *s, const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  vbind(s, fmt, ap, SQLITE_TRANSIENT);
  va_end(ap);
}

rv_status rv_store_exec(rv_store *st, rv_err *err, const char *sql, const char *fmt, ...){
  sqlite3_stmt *s = rv_store_stmt(st, sql);
  va_list ap;
  int rc;
  va_start(ap, fmt);
  vbind(s, fmt, ap, SQLITE_STATIC);
  va_end(ap);
  rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sqlfail(st, err, "store");
  return RV_OK;
}

int64_t rv_store_last_id(rv_store *st){ return sqlite3_last_insert_rowid(st->db); }
int     rv_store_changes(rv_store *st){ return sqlite3_changes(st->db); }

rv_status rv_store_integrity(rv_store *st, rv_err *err){
  sqlite3_stmt *s;
  rv_status rc = RV_OK;
  if (sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK)
    return sqlfail(st, err, "integrity_check");
  if (sqlite3_step(s) == SQLITE_ROW) {
    const char *r = (const char *)sqlite3_column_text(s, 0);
    if (r == NULL || strcmp(r, "ok") != 0) rc = rv_fail(err, RV_CORRUPT, "integrity_check: %s", r ? r : "?");
  } else rc = sqlfail(st, err, "integrity_check");
  sqlite3_finalize(s);
  return rc;
}

/*--- Pipelined WAL sync ------------------------------------------------------
** With synchronous=FULL every COMMIT waits for fdatasync of the WAL on the
** loop's thread: the HTTP server spent a third of its time there (docs/
** performance.md, "Session 9"). rv_store_defer_sync() switches the
** connection to synchronous=NORMAL -- COMMIT writes the WAL frames but does
** not sync them -- and starts a thread whose only work is fdatasync() of
** the WAL file when asked. The caller must not let anything that depends on
** a commit leave the process (a reply, a job handed to an adapter) before
** rv_store_synced() reached that commit's number: the server parks replies
** until then (api/server.c), the engine holds jobs back (rv_engine_dispatch_
** jobs). WAL frames are appended in order and chained by checksums, so a
** sync makes every earlier commit durable too, and after a power loss the
** database is a prefix of the commits -- never a later one without an
** earlier one. In NORMAL mode SQLite still syncs the WAL before every
** checkpoint and before it reuses the WAL from its start, and the database
** file after a checkpoint. A failed fdatasync ends the process (the kernel
** may have dropped the dirty pages; nothing can be promised after it).
*/
struct rv_sync {
  pthread_t        thread;
  pthread_mutex_t  mu;
  pthread_cond_t   cv;
  int              wal_fd, note_fd;      /* the WAL file; an eventfd the loop reads */
  uint64_t         want;                 /* under mu: sync through this commit number */
  bool             stop;                 /* under mu */
  _Atomic uint64_t done;                 /* commits known durable */
  _Atomic uint64_t syncs;                /* fdatasync calls made */
  int              delay_ms;             /* RV_TEST_SYNC_DELAY_MS: tests only */
  int              log_fd;               /* RV_TEST_SYNC_LOG: tests only, or -1 */
};

/* fdatasync of the WAL, or the end of the process: after a failed sync the
** kernel may have dropped the pages, and nothing can be promised. */
static void wal_sync(int fd){
  if (fdatasync(fd) != 0) {
    fprintf(stderr, "ravand: fdatasync of the WAL failed: %s; stopping (acknowledged "
            "commits are safe, the unacknowledged ones may be lost)\n", strerror(errno));
    abort();
  }
}

/* Tests (RV_TEST_SYNC_LOG): append a length of the WAL known durable. */
static void log_length(const struct rv_sync *s, long long len){
  char line[32];
  int n = snprintf(line, sizeof line, "%lld\n", len);
  if (write(s->log_fd, line, (size_t)n) < 0) { /* a test's log: nothing to do */ }
}

static void *sync_main(void *arg){
  struct rv_sync *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    uint64_t target;
    while (!s->stop && s->want <= atomic_load(&s->done)) pthread_cond_wait(&s->cv, &s->mu);
    if (s->want <= atomic_load(&s->done)) break;           /* stopping, nothing owed */
    target = s->want;
    pthread_mutex_unlock(&s->mu);
    if (s->delay_ms > 0) {
      struct timespec ts = { s->delay_ms / 1000, (long)(s->delay_ms % 1000) * 1000000L };
      nanosleep(&ts, NULL);
    }
    struct stat sb;
    if (s->log_fd >= 0 && fstat(s->wal_fd, &sb) != 0) sb.st_size = -1;
    wal_sync(s->wal_fd);
    if (s->log_fd >= 0) log_length(s, (long long)sb.st_size);   /* durable now, at least */
    atomic_fetch_add(&s->syncs, 1);
    pthread_mutex_lock(&s->mu);              /* sync_now may have gone further */
    if (atomic_load(&s->done) < target) atomic_store(&s->done, target);
    pthread_mutex_unlock(&s->mu);
    {
      uint64_t one = 1;
      ssize_t w = write(s->note_fd, &one, sizeof one);    /* EAGAIN: already readable */
      (void)w;
    }
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* A transaction commits only through rv_store_commit while one is open.
** After an I/O error (or SQLITE_FULL, BUSY, NOMEM) SQLite may roll the whole
** transaction back by itself; the caller, not knowing, would go on and every
** later write would commit on its own -- half a command in the database
** (tests/unit/test_ioerr.c found it in deploy). Such a commit is refused: the
** statement fails (SQLITE_CONSTRAINT_COMMITHOOK), its write is undone, and
** the command fails whole. */
static int commit_hook(void *arg){
  const rv_store *st = arg;
  return st->depth > 0 && !st->committing;
}

/* After every commit that wrote frames: count it, and checkpoint as the
** default hook would (a WAL hook replaces SQLite's autocheckpoint). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames){
  rv_store *st = arg;
  st->wrote++;
  if (frames >= 1000) sqlite3_wal_checkpoint(db, name);
  return SQLITE_OK;
}

/* What rv_store_defer_sync made, once no thread runs. */
static void sync_free(struct rv_sync *s){
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  close(s->note_fd);
  close(s->wal_fd);
  if (s->log_fd >= 0) close(s->log_fd);
  rv_free(s);
}

/* fsync a directory so a file created in it stays after a power loss. */
static void sync_dir_of(const char *path){
  char *copy = rv_strdup(path);
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) { (void)fsync(fd); close(fd); }
  rv_free(copy);
}

rv_status rv_store_defer_sync(rv_store *st, rv_err *err){
  struct rv_sync *s;
  const char *db = sqlite3_db_filename(st->db, "main"), *wal;
  const char *delay = getenv("RV_TEST_SYNC_DELAY_MS");
  rv_status rc;

  if (st->sync) return RV_OK;
  if (db == NULL || *db == 0) return rv_fail(err, RV_INVALID, "a database in memory has no WAL to sync");
  if (st->depth != 0) return rv_fail(err, RV_CONFLICT, "deferred sync inside a transaction");
  /* the WAL exists once the connection has read (rv_store_open did) */
  wal = sqlite3_filename_wal(db);
  s = rv_calloc(1, sizeof *s);
  s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
  if (s->wal_fd < 0) {
    rc = rv_fail(err, RV_IO, "cannot open the WAL '%s': %s", wal, strerror(errno));
    rv_free(s);
    return rc;
  }
  s->note_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->note_fd < 0) {
    rc = rv_fail(err, RV_IO, "eventfd: %s", strerror(errno));
    close(s->wal_fd);
    rv_free(s);
    return rc;
  }
  rc = exec_plain(st, "PRAGMA synchronous=NORMAL", err);
  if (rc != RV_OK) { close(s->note_fd); close(s->wal_fd); rv_free(s); return rc; }
  /* what was committed so far (synchronous=FULL) is durable; so is the
  ** WAL's name in its directory from here on */
  sync_dir_of(wal);
  atomic_store(&s->done, st->wrote);
  s->want = st->wrote;
  s->delay_ms = delay ? atoi(delay) : 0;
  /* tests: the WAL's length as synced here and after every sync of the
  ** thread, so a test can cut the WAL there, as a power loss could
  ** (api_sync.py) */
  s->log_fd = getenv("RV_TEST_SYNC_LOG")
    ? open(getenv("RV_TEST_SYNC_LOG"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
  if (s->log_fd >= 0) {
    struct stat sb;
    log_length(s, fstat(s->wal_fd, &sb) == 0 ? (long long)sb.st_size : -1LL);
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
    sync_free(s);
    exec_plain(st, "PRAGMA synchronous=FULL", NULL);
    return rv_fail(err, RV_IO, "cannot start the WAL sync thread");
  }
  st->sync = s;
  return RV_OK;
}

bool rv_store_sync_deferred(const rv_store *st){ return st->sync != NULL; }
uint64_t rv_store_commit_seq(const rv_store *st){ return st->wrote; }
uint64_t rv_store_synced(const rv_store *st){
  return st->sync ? atomic_load(&st->sync->done) : st->wrote;
}
int rv_store_sync_fd(const rv_store *st){ return st->sync ? st->sync->note_fd : -1; }
uint64_t rv_store_sync_count(const rv_store *st){
  return st->sync ? atomic_load(&st->sync->syncs) : 0;
}

void rv_store_sync_async(rv_store *st){
  struct rv_sync *s = st->sync;
  if (s == NULL || atomic_load(&s->done) >= st->wrote) return;
  pthread_mutex_lock(&s->mu);
  if (s->want < st->wrote) {
    s->want = st->wrote;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
}

void rv_store_sync_now(rv_store *st){
  struct rv_sync *s = st->sync;
  if (s == NULL || atomic_load(&s->done) >= st->wrote) return;
  wal_sync(s->wal_fd);          /* the thread may be syncing too: harmless */
  pthread_mutex_lock(&s->mu);
  if (atomic_load(&s->done) < st->wrote) atomic_store(&s->done, st->wrote);
  pthread_mutex_unlock(&s->mu);
}

static void sync_stop(rv_store *st){
  struct rv_sync *s = st->sync;
  if (s == NULL) return;
  rv_store_sync_now(st);
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  sync_free(s);
  st->sync = NULL;
}
