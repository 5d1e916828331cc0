/*
** tests/unit/test_records.c -- adapters/records: the generator (every
** national ID, Sheba and mobile valid, IDs unique, deterministic in the
** seed, its registry file imports cleanly), the loader (bad rows
** reported by file, line and reason; loading twice is harmless), the
** queries (person, dependents as of a date, contribution summary by
** hand, statement, benefits), the adapter in a process, and a
** replacement backend.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>
#include "records/records.h"
#include "registry/feed.h"
#include "common/util.h"
#include "core/json.h"
#include "core/mem.h"
#include "adapters_testutil.h"
#include "test/test_adapters.h"

static void generate(const char *dir, int64_t n, int64_t feed, uint64_t seed){
  cJSON *rep = NULL;
  rv_err err;
  if (rv_records_generate_feed(n, feed, seed, dir, &rep, &err) != RV_OK) fail_msg("%s", err.msg);
  cJSON_Delete(rep);
}

static void file_sha(const char *dir, const char *name, char sha[65]){
  char path[512], *buf;
  size_t n;
  rv_err err;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (rv_file_read(path, (size_t)1 << 30, &buf, &n, &err) != RV_OK) fail_msg("%s", err.msg);
  rv_sha256_hex(buf, n, sha);
  rv_free(buf);
}

static void test_generator_valid(void **state){
  tenv t;
  char dir[300], path[400];
  cJSON *rep = NULL, *imp = NULL;
  rv_err err;
  rv_feed_opts o = {0};
  sqlite3_stmt *s;
  int64_t checked = 0;
  (void)state;
  tenv_open(&t);
  snprintf(dir, sizeof dir, "%s/gen", t.dir);
  generate(dir, 3000, 800, 5);
  assert_int_equal(rv_records_load(rv_engine_store(t.e), dir, false, 0, &rep, &err), RV_OK);
  assert_int_equal(rv_json_int(rep, "issues_total", -1), 0);           /* the loader validates every field */
  cJSON_Delete(rep);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM rec_persons"), 3000);
  /* and once more, explicitly, with the validators of engine/cal */
  sqlite3_prepare_v2(rv_store_db(rv_engine_store(t.e)),
    "SELECT national_id, 'n' FROM rec_persons UNION ALL SELECT national_id, 'n' FROM rec_dependents"
    " UNION ALL SELECT principal_id, 'n' FROM rec_dependents"
    " UNION ALL SELECT sheba, 's' FROM rec_persons WHERE sheba IS NOT NULL"
    " UNION ALL SELECT mobile, 'm' FROM rec_persons WHERE mobile IS NOT NULL", -1, &s, NULL);
  while (sqlite3_step(s) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(s, 0);
    char k = *(const char *)sqlite3_column_text(s, 1);
    bool ok = k == 'n' ? rv_valid_national_id(v) : k == 's' ? rv_valid_sheba(v) : rv_valid_mobile(v);
    if (!ok) fail_msg("generated %c value '%s' does not validate", k, v);
    checked++;
  }
  sqlite3_finalize(s);
  assert_true(checked > 3000 * 2);
  /* unique across persons and dependents */
  assert_int_equal(tenv_int(&t, "SELECT count(*) - count(DISTINCT x) FROM (SELECT national_id AS x FROM"
                              " rec_persons UNION ALL SELECT national_id FROM rec_dependents)"), 0);
  /* realistic shares: about 95% with a Sheba, 93% with a mobile, 30% pensioners */
  assert_in_range(tenv_int(&t, "SELECT count(*) FROM rec_persons WHERE sheba IS NOT NULL"), 2750, 2950);
  assert_in_range(tenv_int(&t, "SELECT count(*) FROM rec_persons WHERE mobile IS NOT NULL"), 2700, 2900);
  assert_in_range(tenv_int(&t, "SELECT count(*) FROM rec_persons WHERE role='pensioner'"), 780, 1020);
  assert_true(tenv_int(&t, "SELECT count(*) FROM rec_statements") > 0);
  assert_true(tenv_int(&t, "SELECT count(*) FROM rec_dependents WHERE dependency_end < '1404/07/01'") > 0);
  /* its registry file imports without a single rejected line */
  snprintf(path, sizeof path, "%s/marriages.csv", dir);
  tenv_deploy(&t, "marriage-feed.bpmn");
  assert_int_equal(rv_feed_import(t.e, path, &o, &imp, &err), RV_OK);
  assert_string_equal(rv_json_str(imp, "state"), "done");
  assert_int_equal(rv_json_int(imp, "applied", 0), 800);
  assert_int_equal(rv_json_int(imp, "rejected", -1), 0);
  {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(imp, "spouses");
    int64_t started = rv_json_int(sp, "started", 0), not_ins = rv_json_int(sp, "not_insured", 0);
    assert_int_equal(started + not_ins, 1600);
    assert_in_range(started, 800, 1120);                               /* ~60% of spouses are persons */
  }
  cJSON_Delete(imp);
  tenv_close(&t);
}

static void test_generator_deterministic(void **state){
  tenv t;
  char a[300], b[300], c[300];
  static const char *const files[] = { "persons.csv", "contributions.csv", "dependents.csv",
                                       "statements.csv", "benefits.csv", "marriages.csv" };
  (void)state;
  tenv_open(&t);
  snprintf(a, sizeof a, "%s/a", t.dir);
  snprintf(b, sizeof b, "%s/b", t.dir);
  snprintf(c, sizeof c, "%s/c", t.dir);
  generate(a, 500, 50, 42);
  generate(b, 500, 50, 42);
  generate(c, 500, 50, 43);
  for (int i = 0; i < 6; i++) {
    char h1[65], h2[65], h3[65];
    file_sha(a, files[i], h1);
    file_sha(b, files[i], h2);
    file_sha(c, files[i], h3);
    assert_string_equal(h1, h2);
    assert_string_not_equal(h1, h3);
  }
  tenv_close(&t);
}

static const char PERSONS[] =
  "national_id,first_name,last_name,father_name,gender,birth_date,role,insurance_type,pension_no,"
  "branch,county,sheba,mobile,marital_status,supplementary\r\n"
  "0499370899,علی,رضایی,حسن,m,1370/01/01,insured,compulsory,,1201,تهران,IR062960000000100324200001,+98 912 123 4567,married,\r\n"
  "0684159415,x,y,,m,1370/01/01,insured,compulsory,,,,,,,\r\n"                               /* 3 */
  "0790419904,مریم,احمدی,,x,1370/01/01,insured,compulsory,,,,,,,\r\n"                         /* 4 */
  "0084575948,زهرا,کریمی,,f,1370/13/01,insured,compulsory,,,,,,,\r\n"                         /* 5 */
  "0963695398,سارا,نوری,,f,1370/01/01,insured,compulsory,,,,IR062960000000100324200002,,,\r\n" /* 6 */
  "0684159414,نیما,حیدری,,m,1370/01/01,insured,compulsory,,,,,0812345678,,\r\n"               /* 7 */
  "0067749828,too,few\r\n"                                                                    /* 8 */
  "۰۶۵۰۴۵۱۲۵۲,پروین,قاسمی,,f,1330/05/05,pensioner,,1000000009,5101,تبریز,,09351234567,widowed,has\r\n";

static const char DEPENDENTS[] =
  "principal_national_id,national_id,first_name,last_name,relation,gender,birth_date,dependency_end,supplementary\n"
  "0650451252,1583250689,علی,قاسمی,son,m,1370/02/02,1390/02/02,has_not\n"
  "0650451252,4032152314,سارا,قاسمی,daughter,f,1380/02/02,,has\n"
  "0650451252,0076229645,رضا,قاسمی,son,m,1388/02/02,1408/02/02,has\n"
  "0650451252,0650451252,x,y,son,m,1388/02/02,,has\n";                                      /* 5 */

static const char CONTRIB[] =
  "national_id,from_period,to_period,days_per_month,wage_rials,insurance_type,workshop\n"
  "0499370899,1403-01,1403-12,31,31000000,compulsory,W1\n"
  "0499370899,1403-06,1403-07,10,3000000,compulsory,W2\n"
  "0499370899,1404-01,1404-02,15,6200000,voluntary,VOLUNTARY\n"
  "0499370899,1404-05,1404-02,15,6200000,voluntary,X\n";                                     /* 5 */

static const char STATEMENTS[] =
  "national_id,period,due_rials,paid_rials,paid_date\n"
  "0499370899,1403-01,1000,1000,1403/02/05\n"
  "0499370899,1403-02,1000,0,\n"
  "0499370899,1404-01,1000,500,1404/02/01\n";

static const char BENEFITS[] =
  "national_id,kind,date,amount_rials\n"
  "0499370899,marriage-grant,1399/03/03,20000000\n";

static void load_fixture(tenv *t){
  char dir[300];
  cJSON *rep = NULL, *it;
  rv_err err;
  static const struct { int line; const char *file, *text; } want[] = {
    { 3, "persons.csv", "national_id: not a valid national ID" },
    { 4, "persons.csv", "gender: must be m or f" },
    { 5, "persons.csv", "birth_date: month out of range" },
    { 6, "persons.csv", "sheba: not a valid Sheba" },
    { 7, "persons.csv", "mobile: not a mobile number" },
    { 8, "persons.csv", "expected 15 fields, found 3" },
    { 5, "contributions.csv", "from_period is after to_period" },
    { 5, "dependents.csv", "cannot be their own dependent" },
  };
  int i = 0;
  snprintf(dir, sizeof dir, "%s/rec", t->dir);
  mkdir(dir, 0755);
  tenv_file(t, "rec/persons.csv", PERSONS, sizeof PERSONS - 1);
  tenv_file(t, "rec/dependents.csv", DEPENDENTS, sizeof DEPENDENTS - 1);
  tenv_file(t, "rec/contributions.csv", CONTRIB, sizeof CONTRIB - 1);
  tenv_file(t, "rec/statements.csv", STATEMENTS, sizeof STATEMENTS - 1);
  tenv_file(t, "rec/benefits.csv", BENEFITS, sizeof BENEFITS - 1);
  assert_int_equal(rv_records_load(rv_engine_store(t->e), dir, false, 0, &rep, &err), RV_OK);
  assert_int_equal(rv_json_int(rep, "issues_total", 0), 8);
  cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(rep, "issues")) {
    assert_int_equal(rv_json_int(it, "line", 0), want[i].line);
    assert_string_equal(rv_json_str(it, "file"), want[i].file);
    if (strstr(rv_json_str(it, "reason"), want[i].text) == NULL)
      fail_msg("%s:%d '%s' lacks '%s'", want[i].file, want[i].line, rv_json_str(it, "reason"), want[i].text);
    i++;
  }
  assert_int_equal(i, 8);
  cJSON_Delete(rep);
}

static cJSON *q(tenv *t, const char *json, rv_status want){
  rv_records r;
  cJSON *req = rv_json_parse(json), *res = NULL;
  rv_err err;
  rv_records_sqlite(&r, rv_engine_store(t->e));
  assert_int_equal(rv_records_query(&r, req, &res, &err), want);
  cJSON_Delete(req);
  return res;
}

static void test_load_and_query(void **state){
  tenv t;
  cJSON *res;
  const cJSON *p;
  char dir[300];
  rv_err err;
  (void)state;
  tenv_open(&t);
  load_fixture(&t);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM rec_persons"), 2);
  /* loading again changes nothing */
  snprintf(dir, sizeof dir, "%s/rec", t.dir);
  {
    cJSON *rep;
    assert_int_equal(rv_records_load(rv_engine_store(t.e), dir, false, 0, &rep, &err), RV_OK);
    cJSON_Delete(rep);
  }
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM rec_persons"), 2);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM rec_dependents"), 3);

  res = q(&t, "{\"op\":\"person\",\"national_id\":\"0499370899\"}", RV_OK);
  assert_true(rv_json_bool(res, "found", false));
  p = cJSON_GetObjectItemCaseSensitive(res, "person");
  assert_string_equal(rv_json_str(p, "mobile"), "09121234567");            /* +98 form normalised */
  assert_string_equal(rv_json_str(p, "county"), "تهران");
  assert_string_equal(rv_json_str(p, "sheba"), "IR062960000000100324200001");
  cJSON_Delete(res);
  res = q(&t, "{\"op\":\"person\",\"national_id\":\"۰۶۵۰۴۵۱۲۵۲\"}", RV_OK);   /* Persian digits */
  assert_string_equal(rv_json_str(cJSON_GetObjectItemCaseSensitive(res, "person"), "supplementary"), "has");
  cJSON_Delete(res);
  res = q(&t, "{\"op\":\"person\",\"national_id\":\"4271467685\"}", RV_OK);
  assert_false(rv_json_bool(res, "found", true));
  assert_null(cJSON_GetObjectItemCaseSensitive(res, "person"));
  cJSON_Delete(res);

  /* dependents whose dependency ended before the request date are not listed */
  res = q(&t, "{\"op\":\"dependents\",\"national_id\":\"0650451252\"}", RV_OK);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "dependents")), 3);
  cJSON_Delete(res);
  res = q(&t, "{\"op\":\"dependents\",\"national_id\":\"0650451252\",\"as_of\":\"1404/07/09\"}", RV_OK);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "dependents")), 2);
  assert_string_equal(rv_json_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "dependents"), 0),
                                  "national_id"), "4032152314");
  cJSON_Delete(res);

  /* contribution summary, by hand: 1403 is leap (Esfand 30 days);
  ** W2 overlaps full months of W1 and adds nothing; 1404-01/02 are 15/31 */
  res = q(&t, "{\"op\":\"summary\",\"national_id\":\"0499370899\",\"from\":\"1403-01\",\"to\":\"1404-03\"}", RV_OK);
  assert_int_equal(rv_json_int(res, "paid_days", 0), 6 * 31 + 6 * 30 + 15 + 15);
  assert_int_equal(rv_json_int(res, "earnings_rials", 0), 12 * 31000000LL + 2 * 3000000LL);
  assert_int_equal(rv_json_int(res, "months_paid", 0), 14);
  assert_false(rv_json_bool(res, "paid_in_to", true));
  cJSON_Delete(res);
  res = q(&t, "{\"op\":\"summary\",\"national_id\":\"0499370899\",\"before\":\"1404/02/10\",\"months\":2}", RV_OK);
  assert_string_equal(rv_json_str(res, "from"), "1404-01");
  assert_int_equal(rv_json_int(res, "paid_days", 0), 30);
  assert_true(rv_json_bool(res, "paid_in_to", false));
  cJSON_Delete(res);
  /* the ops other than person only say whether the person exists */
  res = q(&t, "{\"op\":\"summary\",\"national_id\":\"4271467685\",\"before\":\"1404/02/10\",\"months\":2}", RV_OK);
  assert_false(rv_json_bool(res, "found", true));
  assert_int_equal(rv_json_int(res, "paid_days", -1), 0);
  cJSON_Delete(res);
  res = q(&t, "{\"op\":\"benefits\",\"national_id\":\"0499370899\"}", RV_OK);
  assert_true(rv_json_bool(res, "found", false));
  assert_null(cJSON_GetObjectItemCaseSensitive(res, "person"));
  assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(res, "benefits")));
  cJSON_Delete(res);

  res = q(&t, "{\"op\":\"statement\",\"national_id\":\"0499370899\",\"year\":1403}", RV_OK);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "months")), 2);
  assert_int_equal(rv_json_int(res, "balance_rials", 0), -1000);
  cJSON_Delete(res);
  res = q(&t, "{\"op\":\"benefits\",\"national_id\":\"0499370899\"}", RV_OK);
  assert_string_equal(rv_json_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "benefits"), 0), "kind"),
                      "marriage-grant");
  cJSON_Delete(res);
  assert_null(q(&t, "{\"op\":\"salary\",\"national_id\":\"0499370899\"}", RV_INVALID));
  assert_null(q(&t, "{\"op\":\"person\",\"national_id\":\"0684159415\"}", RV_INVALID));
  assert_null(q(&t, "{\"op\":\"summary\",\"national_id\":\"0499370899\"}", RV_INVALID));
  tenv_close(&t);
}

/* Inside one transaction the built-in backend answers a person it read
** again from what it kept (who exists, the contribution spans: records.c,
** "what one transaction already read"); a new transaction, a rollback and
** rv_records_forget (records load) read afresh. The tables are changed
** here behind the memo's back to see which answer came from where. */
static void test_memo_per_transaction(void **state){
  static const char sum[] =
    "{\"op\":\"summary\",\"national_id\":\"0499370899\",\"from\":\"1403-01\",\"to\":\"1404-03\"}";
  static const char ben[] = "{\"op\":\"benefits\",\"national_id\":\"4271467685\"}";
  const int64_t days = 6 * 31 + 6 * 30 + 15 + 15;
  tenv t;
  rv_store *st;
  rv_err err;
  cJSON *res;
  (void)state;
  tenv_open(&t);
  load_fixture(&t);
  st = rv_engine_store(t.e);

  assert_int_equal(rv_store_begin(st, &err), RV_OK);
  res = q(&t, sum, RV_OK);
  assert_int_equal(rv_json_int(res, "paid_days", 0), days);
  cJSON_Delete(res);
  res = q(&t, ben, RV_OK);
  assert_false(rv_json_bool(res, "found", true));
  cJSON_Delete(res);
  tenv_sql(&t, "DELETE FROM rec_contributions WHERE national_id='0499370899'");
  tenv_sql(&t, "INSERT INTO rec_persons(national_id, first_name, last_name, gender, birth_date, role)"
               " VALUES('4271467685', 'x', 'y', 'f', '1370/01/01', 'insured')");
  res = q(&t, sum, RV_OK);                       /* kept */
  assert_int_equal(rv_json_int(res, "paid_days", 0), days);
  cJSON_Delete(res);
  res = q(&t, ben, RV_OK);
  assert_false(rv_json_bool(res, "found", true));
  cJSON_Delete(res);
  rv_records_forget();                           /* what records load does */
  res = q(&t, sum, RV_OK);
  assert_true(rv_json_bool(res, "found", false));
  assert_int_equal(rv_json_int(res, "paid_days", -1), 0);
  cJSON_Delete(res);
  res = q(&t, ben, RV_OK);
  assert_true(rv_json_bool(res, "found", false));
  cJSON_Delete(res);
  rv_store_rollback(st);                         /* both changes undone */

  res = q(&t, sum, RV_OK);                       /* no transaction: nothing kept */
  assert_int_equal(rv_json_int(res, "paid_days", 0), days);
  cJSON_Delete(res);
  assert_int_equal(rv_store_begin(st, &err), RV_OK);
  res = q(&t, sum, RV_OK);
  assert_int_equal(rv_json_int(res, "paid_days", 0), days);
  cJSON_Delete(res);
  tenv_sql(&t, "DELETE FROM rec_contributions WHERE national_id='0499370899'");
  assert_int_equal(rv_store_commit(st, &err), RV_OK);
  assert_int_equal(rv_store_begin(st, &err), RV_OK);   /* a new generation */
  res = q(&t, sum, RV_OK);
  assert_int_equal(rv_json_int(res, "paid_days", -1), 0);
  cJSON_Delete(res);
  rv_store_rollback(st);
  tenv_close(&t);
}

/* The built-in `sms` recorder (no gateway configured: demos, benchmarks)
** keeps each job's message once, as a well-behaved gateway deduplicates on
** the key; a full log still answers and still deduplicates. */
static int sms_answers;
static void sms_done(void *arg, rv_job_outcome o, cJSON *result, const char *code, const char *msg){
  (void)arg; (void)result; (void)code; (void)msg;
  assert_int_equal(o, RV_JOB_OK);
  sms_answers++;
}

static void test_sms_recorder_dedupes(void **state){
  tenv t;
  char key[32];
  cJSON *in = rv_json_parse("{\"to\":\"09120000001\",\"text\":\"x\"}");
  rv_job_info job = { 1, 1, "e", key, in, 1 };
  const rv_adapter_ops *ops;
  (void)state;
  tenv_open(&t);
  ops = rv_adapter_find("sms");                   /* the recorder: no gateway configured */
  assert_non_null(ops);
  rv_test_sms_reset();
  sms_answers = 0;
  for (int round = 0; round < 2; round++)          /* every key twice */
    for (int i = 0; i < 5000; i++) {
      snprintf(key, sizeof key, "%d:2:e:sms", i);
      assert_int_equal(ops->invoke(NULL, rv_engine_base(t.e), &job, sms_done, NULL), RV_OK);
    }
  event_base_loop(rv_engine_base(t.e), EVLOOP_NONBLOCK);
  assert_int_equal(sms_answers, 10000);
  assert_int_equal(rv_test_sms_count(), 4096);      /* the log's size: the rest answered, not kept */
  snprintf(key, sizeof key, "%d:2:e:sms", 17);
  assert_int_equal(ops->invoke(NULL, rv_engine_base(t.e), &job, sms_done, NULL), RV_OK);
  event_base_loop(rv_engine_base(t.e), EVLOOP_NONBLOCK);
  assert_int_equal(rv_test_sms_count(), 4096);
  assert_string_equal(rv_test_sms_to(17), "09120000001");
  rv_test_sms_reset();
  assert_int_equal(rv_test_sms_count(), 0);
  assert_int_equal(ops->invoke(NULL, rv_engine_base(t.e), &job, sms_done, NULL), RV_OK);
  assert_int_equal(ops->invoke(NULL, rv_engine_base(t.e), &job, sms_done, NULL), RV_OK);
  event_base_loop(rv_engine_base(t.e), EVLOOP_NONBLOCK);
  assert_int_equal(rv_test_sms_count(), 1);        /* after a reset the key is new, once */
  rv_test_sms_reset();
  cJSON_Delete(in);
  tenv_close(&t);
}

static void test_adapter_in_process(void **state){
  tenv t;
  rv_err err;
  int64_t id;
  cJSON *v = rv_json_parse("{\"national_id\":\"0499370899\"}"), *inst;
  const cJSON *vars;
  (void)state;
  tenv_open(&t);
  load_fixture(&t);
  tenv_deploy(&t, "ledger.bpmn");
  assert_int_equal(rv_engine_start(t.e, "records_case", 0, v, NULL, &id, &err), RV_OK);
  cJSON_Delete(v);
  rv_engine_drain(t.e);
  assert_int_equal(rv_engine_instance_json(t.e, id, &inst, &err), RV_OK);
  vars = cJSON_GetObjectItemCaseSensitive(inst, "variables");
  assert_true(rv_json_bool(vars, "known", false));
  assert_string_equal(rv_json_str(cJSON_GetObjectItemCaseSensitive(vars, "person"), "first_name"), "علی");
  /* 60 months to 1404-07: W1 (12 months) + 1404-01/02 */
  assert_int_equal(rv_json_int(vars, "paid_days", 0), 366 + 30);
  cJSON_Delete(inst);
  tenv_close(&t);
}

/* A replacement backend: every person is known and is called "fake". */
static rv_status fake_person(void *self, const char *nid, cJSON **out, rv_err *err){
  (void)self; (void)err;
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "national_id", nid);
  cJSON_AddStringToObject(*out, "first_name", "fake");
  return RV_OK;
}
static rv_status fake_list(void *self, const char *nid, cJSON **out, rv_err *err){
  (void)self; (void)nid; (void)err;
  *out = cJSON_CreateArray();
  return RV_OK;
}
static rv_status fake_deps(void *self, const char *nid, const char *as_of, cJSON **out, rv_err *err){
  (void)as_of;
  return fake_list(self, nid, out, err);
}
static rv_status fake_stmt(void *self, const char *nid, int year, cJSON **out, rv_err *err){
  (void)year;
  return fake_list(self, nid, out, err);
}

static void test_replacement_backend(void **state){
  static const rv_records_ops fake_ops = { "fake", fake_person, fake_deps, fake_list, fake_stmt, fake_list, NULL, NULL };
  rv_records fake = { &fake_ops, NULL };
  tenv t;
  rv_err err;
  int64_t id;
  cJSON *v = rv_json_parse("{\"national_id\":\"4271467685\"}"), *inst;
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "ledger.bpmn");
  rv_records_set_backend(&fake);
  assert_int_equal(rv_engine_start(t.e, "records_case", 0, v, NULL, &id, &err), RV_OK);
  rv_engine_drain(t.e);
  rv_records_set_backend(NULL);
  cJSON_Delete(v);
  assert_int_equal(rv_engine_instance_json(t.e, id, &inst, &err), RV_OK);
  {
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(inst, "variables");
    const cJSON *person = cJSON_GetObjectItemCaseSensitive(vars, "person");
    assert_string_equal(rv_json_str(person, "first_name"), "fake");
  }
  cJSON_Delete(inst);
  tenv_close(&t);
}

static void test_mobile_forms(void **state){
  static const char *const ok[] = { "09121234567", "+989121234567", "00989121234567", "989121234567",
                                    "9121234567", "۰۹۱۲۱۲۳۴۵۶۷", "0912-123 4567" };
  static const char *const bad[] = { "0812345678", "091212345678", "+98812345678", "", "abc" };
  (void)state;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char b[64];
    snprintf(b, sizeof b, "%s", ok[i]);
    assert_true(rv_mobile_normalise(b));
    assert_string_equal(b, "09121234567");
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char b[64];
    snprintf(b, sizeof b, "%s", bad[i]);
    assert_false(rv_mobile_normalise(b));
  }
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_generator_valid),
    cmocka_unit_test(test_generator_deterministic),
    cmocka_unit_test(test_load_and_query),
    cmocka_unit_test(test_memo_per_transaction),
    cmocka_unit_test(test_adapter_in_process),
    cmocka_unit_test(test_replacement_backend),
    cmocka_unit_test(test_mobile_forms),
    cmocka_unit_test(test_sms_recorder_dedupes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
