/*
** adapters/records/load.c -- `ravand records load DIR`: CSV files into
** the rec_* tables, every row validated (format in docs/adapters.md).
**
** A bad row is reported (file, line, reason) and skipped; it never stops
** the load. Good rows are upserted, 50,000 per transaction, so loading a
** directory again is harmless and a crash loses nothing that a second
** run would not redo.
*/
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sqlite3.h>
#include "records/records.h"
#include "common/csv.h"
#include "common/util.h"
#include "cal/cal.h"
#include "core/json.h"
#include "core/mem.h"
#include "store/store.h"

#define COMMIT_EVERY 50000
#define MAX_ISSUES   200        /* listed in the report; all are counted */

bool rv_mobile_normalise(char *s){
  char t[64];
  size_t w = 0;
  const char *p;
  if (s == NULL || strlen(s) >= sizeof t) return false;
  rv_digits_ascii(s);
  for (p = s; *p; p++) if (*p != ' ' && *p != '-') t[w++] = *p;
  t[w] = 0;
  p = t;
  if (strncmp(p, "+98", 3) == 0) p += 3;
  else if (strncmp(p, "0098", 4) == 0) p += 4;
  else if (strncmp(p, "98", 2) == 0 && strlen(p) == 12) p += 2;
  else if (p[0] == '0') p += 1;
  if (strlen(p) != 10 || p[0] != '9' || strspn(p, "0123456789") != 10) return false;
  snprintf(s, 12, "0%s", p);
  return rv_valid_mobile(s);
}

/*--- field checks (NULL = fine; fields may be rewritten in place) ---*/

static const char *req_text(char *v){ return *v ? NULL : "missing"; }
static const char *opt_text(char *v){ (void)v; return NULL; }
static const char *nid(char *v){
  if (!*v) return "missing";
  return rv_valid_national_id(v) ? NULL : "not a valid national ID";
}
static const char *jdate(char *v){
  int y, m, d;
  const char *why;
  if (!*v) return "missing";
  if ((why = rv_jalali_parse(v, &y, &m, &d)) != NULL) return why;
  snprintf(v, 11, "%04d/%02d/%02d", y, m, d);
  return NULL;
}
static const char *opt_jdate(char *v){ return *v ? jdate(v) : NULL; }
static const char *jmonth(char *v){
  int y, m;
  const char *why;
  if (!*v) return "missing";
  if ((why = rv_jalali_parse_month(v, &y, &m)) != NULL) return why;
  snprintf(v, 8, "%04d-%02d", y, m);
  return NULL;
}
static const char *rials(char *v){
  size_t n = strlen(v);
  if (n == 0) return "missing";
  if (n > 16 || strspn(v, "0123456789") != n) return "not a whole number of Rials";
  return NULL;
}
static const char *dpm(char *v){
  int d = atoi(v);
  if (strspn(v, "0123456789") != strlen(v) || d < 1 || d > 31) return "must be 1..31";
  return NULL;
}
static const char *gender(char *v){ return strcmp(v, "m") == 0 || strcmp(v, "f") == 0 ? NULL : "must be m or f"; }
static const char *role(char *v){
  return strcmp(v, "insured") == 0 || strcmp(v, "pensioner") == 0 ? NULL : "must be insured or pensioner";
}
static const char *ins_type(char *v){
  return !*v || strcmp(v, "compulsory") == 0 || strcmp(v, "voluntary") == 0 ||
         strcmp(v, "self-employed") == 0 ? NULL : "must be compulsory, voluntary or self-employed";
}
static const char *req_ins_type(char *v){ return *v ? ins_type(v) : "missing"; }
static const char *sheba(char *v){
  char t[64];
  size_t w = 0;
  if (!*v) return NULL;
  if (strlen(v) >= sizeof t) return "not a valid Sheba";
  for (char *p = v; *p; p++) if (*p != ' ' && *p != '-') t[w++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
  t[w] = 0;
  if (!rv_valid_sheba(t)) return "not a valid Sheba (IR + 24 digits, mod 97)";
  strcpy(v, t);
  return NULL;
}
static const char *mobile(char *v){ return !*v || rv_mobile_normalise(v) ? NULL : "not a mobile number 09xxxxxxxxx"; }
static const char *supp(char *v){
  return !*v || strcmp(v, "has") == 0 || strcmp(v, "has_not") == 0 ? NULL : "must be has or has_not";
}
static const char *req_supp(char *v){ return *v ? supp(v) : "missing"; }
static const char *relation(char *v){
  static const char *const ok[] = { "spouse", "husband", "son", "daughter", "father", "mother" };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) if (strcmp(v, ok[i]) == 0) return NULL;
  return "must be spouse, husband, son, daughter, father or mother";
}
static const char *marital(char *v){
  return !*v || strcmp(v, "single") == 0 || strcmp(v, "married") == 0 || strcmp(v, "widowed") == 0 ||
         strcmp(v, "divorced") == 0 ? NULL : "must be single, married, widowed or divorced";
}

typedef const char *(*check_fn)(char *v);

typedef struct col_def { const char *name; check_fn check; } col_def;

typedef struct table_def {
  const char   *file, *table;
  int           n;
  col_def       cols[16];
  const char   *insert;         /* placeholders in column order */
  /* a cross-field check, or NULL */
  const char *(*row_check)(char **v);
} table_def;

static const char *span_check(char **v){
  return strcmp(v[1], v[2]) > 0 ? "from_period is after to_period" : NULL;
}
static const char *dep_check(char **v){
  return strcmp(v[0], v[1]) == 0 ? "a person cannot be their own dependent" : NULL;
}

static const table_def TABLES[] = {
  { "persons.csv", "rec_persons", 15,
    { {"national_id", nid}, {"first_name", req_text}, {"last_name", req_text},
      {"father_name", opt_text}, {"gender", gender}, {"birth_date", jdate}, {"role", role},
      {"insurance_type", ins_type}, {"pension_no", opt_text}, {"branch", opt_text},
      {"county", opt_text}, {"sheba", sheba}, {"mobile", mobile}, {"marital_status", marital},
      {"supplementary", supp} },
    "INSERT OR REPLACE INTO rec_persons(national_id, first_name, last_name, father_name, gender,"
    " birth_date, role, insurance_type, pension_no, branch, county, sheba, mobile, marital_status,"
    " supplementary) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", NULL },
  { "contributions.csv", "rec_contributions", 7,
    { {"national_id", nid}, {"from_period", jmonth}, {"to_period", jmonth},
      {"days_per_month", dpm}, {"wage_rials", rials}, {"insurance_type", req_ins_type},
      {"workshop", req_text} },
    "INSERT OR REPLACE INTO rec_contributions(national_id, from_period, to_period, days_per_month,"
    " wage_rials, insurance_type, workshop) VALUES(?,?,?,?,?,?,?)", span_check },
  { "dependents.csv", "rec_dependents", 9,
    { {"principal_national_id", nid}, {"national_id", nid}, {"first_name", req_text},
      {"last_name", req_text}, {"relation", relation}, {"gender", gender},
      {"birth_date", jdate}, {"dependency_end", opt_jdate}, {"supplementary", req_supp} },
    "INSERT OR REPLACE INTO rec_dependents(principal_id, national_id, first_name, last_name,"
    " relation, gender, birth_date, dependency_end, supplementary) VALUES(?,?,?,?,?,?,?,?,?)",
    dep_check },
  { "statements.csv", "rec_statements", 5,
    { {"national_id", nid}, {"period", jmonth}, {"due_rials", rials}, {"paid_rials", rials},
      {"paid_date", opt_jdate} },
    "INSERT OR REPLACE INTO rec_statements(national_id, period, due_rials, paid_rials, paid_date)"
    " VALUES(?,?,?,?,?)", NULL },
  { "benefits.csv", "rec_benefits", 4,
    { {"national_id", nid}, {"kind", req_text}, {"date", jdate}, {"amount_rials", rials} },
    "INSERT OR REPLACE INTO rec_benefits(national_id, kind, date, amount_rials) VALUES(?,?,?,?)",
    NULL },
};

static void add_issue(cJSON *issues, int64_t *n, const char *file, int64_t line, const char *fmt,
                      const char *a, const char *b){
  char why[300];
  (*n)++;
  if (cJSON_GetArraySize(issues) >= MAX_ISSUES) return;
  snprintf(why, sizeof why, fmt, a, b);
  {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddNumberToObject(o, "line", (double)line);
    cJSON_AddStringToObject(o, "reason", why);
    cJSON_AddItemToArray(issues, o);
  }
}

static bool is_int_col(check_fn f){ return f == rials || f == dpm; }

static rv_status load_table(rv_store *st, const table_def *t, const char *dir, cJSON *rep,
                            cJSON *issues, int64_t *n_issues, rv_err *err){
  char path[4096], *buf = NULL;
  size_t len;
  rv_csv csv;
  rv_csv_rec r;
  int map[16];
  int64_t loaded = 0, rejected = 0, pending = 0;
  sqlite3 *db = rv_store_db(st);
  sqlite3_stmt *ins = NULL;
  rv_status rc;

  snprintf(path, sizeof path, "%s/%s", dir, t->file);
  if (access(path, F_OK) != 0) return RV_OK;
  rc = rv_file_read(path, (size_t)1 << 32, &buf, &len, err);
  if (rc != RV_OK) return rc;
  rv_csv_init(&csv, buf, len, true);
  if (!rv_csv_next(&csv, &r) || r.error || r.n == 0) {
    rv_csv_fini(&csv); rv_free(buf);
    return rv_fail(err, RV_INVALID, "%s: line 1: the header is missing or malformed", path);
  }
  for (int c = 0; c < t->n; c++) {
    map[c] = -1;
    for (int i = 0; i < r.n; i++) if (strcasecmp(r.f[i], t->cols[c].name) == 0) map[c] = i;
    if (map[c] < 0) {
      rv_csv_fini(&csv); rv_free(buf);
      return rv_fail(err, RV_INVALID, "%s: line 1: the header has no column %s", path, t->cols[c].name);
    }
  }
  {
    int nh = r.n;
    if (sqlite3_prepare_v2(db, t->insert, -1, &ins, NULL) != SQLITE_OK) {
      rv_csv_fini(&csv); rv_free(buf);
      return rv_fail(err, RV_IO, "%s: %s", t->table, sqlite3_errmsg(db));
    }
    rc = rv_store_begin(st, err);
    while (rc == RV_OK && rv_csv_next(&csv, &r)) {
      char *v[16];
      const char *why = NULL;
      int bad_col = -1;
      if (r.error) { add_issue(issues, n_issues, t->file, r.line, "%s%s", r.error, ""); rejected++; continue; }
      if (r.n == 0) continue;                            /* blank lines carry nothing */
      if (r.n != nh) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", nh); snprintf(b, sizeof b, "%d", r.n);
        add_issue(issues, n_issues, t->file, r.line, "expected %s fields, found %s", a, b);
        rejected++;
        continue;
      }
      for (int c = 0; c < t->n && why == NULL; c++) {
        v[c] = r.f[map[c]];
        why = t->cols[c].check(v[c]);
        if (why) bad_col = c;
      }
      if (why == NULL && t->row_check) why = t->row_check(v);
      if (why) {
        add_issue(issues, n_issues, t->file, r.line, "%s: %s",
                  bad_col >= 0 ? t->cols[bad_col].name : "row", why);
        rejected++;
        continue;
      }
      for (int c = 0; c < t->n; c++) {
        if (*v[c] == 0) sqlite3_bind_null(ins, c + 1);
        else if (is_int_col(t->cols[c].check)) sqlite3_bind_int64(ins, c + 1, strtoll(v[c], NULL, 10));
        else sqlite3_bind_text(ins, c + 1, v[c], -1, SQLITE_TRANSIENT);
      }
      if (sqlite3_step(ins) != SQLITE_DONE) rc = rv_fail(err, RV_IO, "%s line %lld: %s", t->file,
                                                         (long long)r.line, sqlite3_errmsg(db));
      sqlite3_reset(ins);
      loaded++;
      if (rc == RV_OK && ++pending >= COMMIT_EVERY) {
        pending = 0;
        rc = rv_store_commit(st, err);
        if (rc == RV_OK) rc = rv_store_begin(st, err);
        else rv_store_begin(st, NULL);      /* keep begin/commit paired for the rollback below */
      }
    }
    if (rc == RV_OK) rc = rv_store_commit(st, err);
    else rv_store_rollback(st);
  }
  sqlite3_finalize(ins);
  rv_csv_fini(&csv);
  rv_free(buf);
  {
    cJSON *o = cJSON_AddObjectToObject(rep, t->file);
    cJSON_AddNumberToObject(o, "loaded", (double)loaded);
    cJSON_AddNumberToObject(o, "rejected", (double)rejected);
  }
  return rc;
}

rv_status rv_records_load(rv_store *st, const char *dir, bool replace, int64_t now,
                          cJSON **out, rv_err *err){
  cJSON *rep = cJSON_CreateObject(), *files = cJSON_AddObjectToObject(rep, "files");
  cJSON *issues = cJSON_CreateArray();
  int64_t n_issues = 0;
  rv_status rc = RV_OK;
  int found = 0;

  *out = NULL;
  for (size_t i = 0; i < sizeof TABLES / sizeof TABLES[0]; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, TABLES[i].file);
    if (access(path, F_OK) == 0) found++;
  }
  if (found == 0) {
    cJSON_Delete(rep); cJSON_Delete(issues);
    return rv_fail(err, RV_NOTFOUND, "'%s' has none of persons.csv, contributions.csv,"
                   " dependents.csv, statements.csv, benefits.csv", dir);
  }
  /* the rows come in national-ID order of the file, which is random for
  ** the B-trees: a large page cache for the load saves most of the I/O */
  sqlite3_exec(rv_store_db(st), "PRAGMA cache_size=-262144", NULL, NULL, NULL);   /* 256 MiB */
  if (replace) {
    rc = rv_store_begin(st, err);
    for (size_t i = 0; rc == RV_OK && i < sizeof TABLES / sizeof TABLES[0]; i++) {
      char sql[64];
      snprintf(sql, sizeof sql, "DELETE FROM %s", TABLES[i].table);
      if (sqlite3_exec(rv_store_db(st), sql, NULL, NULL, NULL) != SQLITE_OK)
        rc = rv_fail(err, RV_IO, "%s", sqlite3_errmsg(rv_store_db(st)));
    }
    if (rc == RV_OK) rc = rv_store_commit(st, err); else rv_store_rollback(st);
  }
  for (size_t i = 0; rc == RV_OK && i < sizeof TABLES / sizeof TABLES[0]; i++)
    rc = load_table(st, &TABLES[i], dir, files, issues, &n_issues, err);
  rv_records_forget();               /* the tables changed under what a transaction read */
  sqlite3_exec(rv_store_db(st), "PRAGMA cache_size=-2000", NULL, NULL, NULL);      /* SQLite's default */
  cJSON_AddNumberToObject(rep, "issues_total", (double)n_issues);
  cJSON_AddItemToObject(rep, "issues", issues);
  if (rc == RV_OK) {
    char *text = rv_json_print(rep);
    rc = rv_store_exec(st, err, "INSERT INTO rec_loads(dir, at, report) VALUES(?,?,?)", "tit",
                       dir, now, text);
    rv_free(text);
  }
  if (rc != RV_OK) { cJSON_Delete(rep); return rc; }
  *out = rep;
  return RV_OK;
}
