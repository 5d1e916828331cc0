/*
** tests/unit/test_feed.c -- adapters/common/csv.c and adapters/registry:
** the CSV reader's edge cases, record validation, and whole imports on a
** real engine: exact counts, line-numbered reasons, duplicate and
** conflicting records, re-import as a no-op, truncated files rejected as
** a whole, the insured-spouse rule, and the loop running between chunks.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include "common/csv.h"
#include "registry/feed.h"
#include "records/records.h"
#include "core/json.h"
#include "adapters_testutil.h"

/*--- the reader ---------------------------------------------------------------*/

static void test_csv_basics(void **state){
  const char buf[] = "\xEF\xBB\xBF" "a, b ,\"c,\"\"d\"\"\"\r\n"
                     "x,\"multi\nline\",y\n"
                     "\r"
                     "1,2\r"
                     "\xDB\xB1\xDB\xB2,\xD9\xA3" "4";    /* Persian 12, Arabic-Indic 3 then 4; no EOL */
  rv_csv r;
  rv_csv_rec rec;
  (void)state;
  rv_csv_init(&r, buf, sizeof buf - 1, true);
  assert_true(rv_csv_next(&r, &rec));
  assert_null(rec.error);
  assert_int_equal(rec.line, 1);
  assert_int_equal(rec.n, 3);
  assert_string_equal(rec.f[0], "a");
  assert_string_equal(rec.f[1], "b");
  assert_string_equal(rec.f[2], "c,\"d\"");
  assert_true(rv_csv_next(&r, &rec));
  assert_int_equal(rec.line, 2);
  assert_int_equal(rec.last_line, 3);
  assert_string_equal(rec.f[1], "multi\nline");
  assert_true(rv_csv_next(&r, &rec));          /* the lone CR: a blank line 4 */
  assert_int_equal(rec.line, 4);
  assert_int_equal(rec.n, 0);
  assert_null(rec.error);
  assert_true(rv_csv_next(&r, &rec));
  assert_int_equal(rec.line, 5);
  assert_string_equal(rec.f[1], "2");
  assert_true(rv_csv_next(&r, &rec));
  assert_int_equal(rec.line, 6);
  assert_false(rec.eol);
  assert_string_equal(rec.f[0], "12");
  assert_string_equal(rec.f[1], "34");
  assert_false(rv_csv_next(&r, &rec));
  rv_csv_fini(&r);
}

static void test_csv_errors_cost_one_line(void **state){
  char buf[6000];
  size_t n = 0;
  rv_csv r;
  rv_csv_rec rec;
  (void)state;
  n += (size_t)sprintf(buf + n, "ok,1\n");
  n += (size_t)sprintf(buf + n, "\"open,2\n");                 /* 2: a stray quote, closed on line 3 */
  n += (size_t)sprintf(buf + n, "bad\"q,3\n");                 /* 3: quote inside a field */
  n += (size_t)sprintf(buf + n, "\"x\"y,4\n");                 /* 4: text after a quote */
  memcpy(buf + n, "nul\0,5\n", 7); n += 7;                     /* 5: NUL */
  n += (size_t)sprintf(buf + n, "bad\xC3\x28,6\n");            /* 6: invalid UTF-8 */
  n += (size_t)sprintf(buf + n, "over\xC0\xAF,7\n");           /* 7: overlong encoding */
  memset(buf + n, 'z', 4200); n += 4200; buf[n++] = '\n';      /* 8: too long */
  n += (size_t)sprintf(buf + n, "ok,9\n");
  rv_csv_init(&r, buf, n, false);
  static const char *const want[] = { NULL, "unterminated quoted field", "quote inside an unquoted field",
    "text after a closing quote", "NUL byte", "invalid UTF-8", "invalid UTF-8", "record too long", NULL };
  for (int i = 0; i < 9; i++) {
    assert_true(rv_csv_next(&r, &rec));
    assert_int_equal(rec.line, i + 1);
    if (want[i] == NULL) { assert_null(rec.error); assert_int_equal(rec.n, 2); }
    else { assert_non_null(rec.error); assert_string_equal(rec.error, want[i]); }
  }
  assert_string_equal(rec.f[1], "9");
  assert_false(rv_csv_next(&r, &rec));
  rv_csv_fini(&r);
}

static void test_marriage_check(void **state){
  rv_marriage m;
  char why[256];
  const char *ok[6] = { "0499370899", "0790419904", "1403/12/30", "A-12/3", "دفتر ۱۲", "دائم" };
  const char *f[6];
  (void)state;
  assert_null(rv_marriage_check(ok, 1404, 7, 9, &m, why, sizeof why));
  assert_string_equal(m.type, "permanent");
  assert_string_equal(m.gdate, "2025-03-20");               /* 1403 is leap: 30 Esfand exists */
#define EXPECT(col, val, text) \
  memcpy(f, ok, sizeof f); f[col] = val; \
  assert_non_null(rv_marriage_check(f, 1404, 7, 9, &m, why, sizeof why)); \
  if (strstr(why, text) == NULL) fail_msg("'%s' lacks '%s'", why, text)
  EXPECT(0, "0684159415", "husband_national_id: '0684159415' fails the national-ID check digit");
  EXPECT(1, "068415941", "wife_national_id: '068415941' must be 10 digits");
  EXPECT(1, "0499370899", "the same as husband_national_id");
  EXPECT(2, "1404/12/30", "no such day");                   /* 1404 is not leap */
  EXPECT(2, "1404/07/10", "after the import date 1404/07/09");
  EXPECT(2, "14040101", "not a Jalali date");
  EXPECT(3, "", "certificate_no: missing");
  EXPECT(3, "12:34", "certificate_no");
  EXPECT(4, "", "registry_office: missing");
  EXPECT(5, "sigheh", "marriage_type");
#undef EXPECT
}

/*--- imports -----------------------------------------------------------------*/

static const char FEED[] =
  "\xEF\xBB\xBF" "husband_national_id,wife_national_id,marriage_date,certificate_no,registry_office,marriage_type\r\n"
  "0499370899,0790419904,1404/06/15,5001,office-12,permanent\r\n"          /*  2 applied */
  "0084575948,0963695398,1404/02/31,5002,office-12,دائم\r\n"               /*  3 applied */
  "0684159415,0067749828,1404/05/01,5003,office-12,permanent\r\n"          /*  4 check digit */
  "0650451252,1583250689,1403/12/30,5004,office-7,temporary\n"             /*  5 applied (LF) */
  "0650451252,1583250689,1404/12/30,5005,office-7,permanent\r\n"           /*  6 no such day */
  "۴۰۳۲۱۵۲۳۱۴,0076229645,1404/01/05,5006,\"office, 9\",permanent\r\n"      /*  7 applied */
  "0499370899,0790419904,1404/06/15,5001,office-12,permanent\r\n"          /*  8 duplicate of 2 */
  "0499370899,0200203241,1404/06/15,5001,office-12,permanent\r\n"          /*  9 conflict with 2 */
  "4271467685,4271467685,1404/03/03,5007,office-1,permanent\r\n"           /* 10 same person */
  "\r\n"                                                                   /* 11 empty */
  "4271467685,0200203241,1404/08/01,5008,office-1,permanent\r\n"           /* 12 future */
  "4271467685,0200203241,1404/03/03,5009,office-1\r\n"                     /* 13 5 fields */
  "4271467685,0200203241,1404/03/03,5010,office-1,شیک\r\n"                 /* 14 type */
  "\"4271467685,0200203241,1404/03/03,5011,office-1,permanent\r\n"         /* 15 quote */
  "4271467685,0200203241,1404/03/03,5012,office-1,permanent\r\n"           /* 16 applied */
  "END,15\r\n";

static const struct { int line; const char *kind, *text; } ISSUES[] = {
  {  4, "rejected", "husband_national_id: '0684159415' fails the national-ID check digit" },
  {  6, "rejected", "marriage_date: '1404/12/30' no such day in that month" },
  {  8, "duplicate", "the same record as line 2 of this file" },
  {  9, "rejected", "already imported from line 2 of this file with different data" },
  { 10, "rejected", "wife_national_id: the same as husband_national_id" },
  { 11, "rejected", "empty line" },
  { 12, "rejected", "is after the import date 1404/07/09" },
  { 13, "rejected", "expected 6 fields, found 5" },
  { 14, "rejected", "marriage_type: 'شیک' is not permanent/temporary" },
  { 15, "rejected", "unterminated quoted field" },
};

static cJSON *import(tenv *t, const char *path, bool all, rv_status want){
  rv_feed_opts o = {0};
  cJSON *rep = NULL;
  rv_err err;
  o.all_spouses = all;
  o.chunk = 4;                                   /* several chunks even for a small file */
  assert_int_equal(rv_feed_import(t->e, path, &o, &rep, &err), want);
  assert_non_null(rep);
  return rep;
}

static int64_t num(const cJSON *o, const char *path1, const char *path2){
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, path1);
  if (path2) x = cJSON_GetObjectItemCaseSensitive(x, path2);
  if (!cJSON_IsNumber(x)) fail_msg("no number %s.%s", path1, path2 ? path2 : "");
  return (int64_t)x->valuedouble;
}

static void test_import_counts_and_reasons(void **state){
  tenv t;
  cJSON *rep, *again, *it;
  const char *path;
  int i = 0;
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "marriage-feed.bpmn");
  path = tenv_file(&t, "m-1404-07.csv", FEED, sizeof FEED - 1);
  rep = import(&t, path, true, RV_OK);
  assert_string_equal(rv_json_str(rep, "state"), "done");
  assert_int_equal(num(rep, "records", NULL), 15);
  assert_int_equal(num(rep, "applied", NULL), 5);
  assert_int_equal(num(rep, "rejected", NULL), 9);
  assert_int_equal(num(rep, "duplicate", NULL), 1);
  assert_int_equal(num(rep, "spouses", "started"), 10);
  assert_true(num(rep, "chunks", NULL) >= 4);
  cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(rep, "issues")) {
    assert_true(i < (int)(sizeof ISSUES / sizeof ISSUES[0]));
    assert_int_equal(rv_json_int(it, "line", 0), ISSUES[i].line);
    assert_string_equal(rv_json_str(it, "kind"), ISSUES[i].kind);
    if (strstr(rv_json_str(it, "reason"), ISSUES[i].text) == NULL)
      fail_msg("line %d: '%s' lacks '%s'", ISSUES[i].line, rv_json_str(it, "reason"), ISSUES[i].text);
    i++;
  }
  assert_int_equal(i, 10);
  {
    /* the report kept with the import: the same counts, the issues left
    ** to their rows, written after the import was marked done */
    sqlite3_stmt *s;
    cJSON *kept;
    assert_int_equal(sqlite3_prepare_v2(rv_store_db(rv_engine_store(t.e)),
                                        "SELECT report FROM feed_imports WHERE id=?", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, num(rep, "import", NULL));
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    kept = cJSON_Parse((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    assert_non_null(kept);
    assert_null(cJSON_GetObjectItemCaseSensitive(kept, "issues"));
    assert_string_equal(rv_json_str(kept, "state"), "done");
    assert_int_equal(num(kept, "applied", NULL), 5);
    assert_int_equal(num(kept, "rejected", NULL), 9);
    assert_int_equal(num(kept, "duplicate", NULL), 1);
    assert_int_equal(num(kept, "spouses", "started"), 10);
    cJSON_Delete(kept);
  }
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances WHERE process_id='marriage_case'"), 10);
  /* Persian digits and the quoted comma arrive normalised in the case */
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances WHERE business_key='4032152314'"
                              " AND state LIKE '%office, 9%'"), 1);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances WHERE business_key='0963695398'"
                              " AND state LIKE '%\"marriage_type\":\"permanent\"%'"), 1);

  /* the same bytes again: nothing new */
  again = import(&t, path, true, RV_OK);
  assert_true(rv_json_bool(again, "already_imported", false));
  assert_int_equal(num(again, "import", NULL), num(rep, "import", NULL));
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances"), 10);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_records"), 5);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_imports"), 1);
  cJSON_Delete(again);
  cJSON_Delete(rep);

  /* another file repeating record 5001 and conflicting with 5002 */
  {
    static const char F2[] =
      "husband_national_id,wife_national_id,marriage_date,certificate_no,registry_office,marriage_type\n"
      "0499370899,0790419904,1404/06/15,5001,office-12,permanent\n"
      "0084575948,0963695398,1404/02/30,5002,office-12,permanent\n"
      "0067749828,0650451252,1404/04/04,6001,office-3,permanent\n"
      "END,3\n";
    rep = import(&t, tenv_file(&t, "m2.csv", F2, sizeof F2 - 1), true, RV_OK);
    assert_int_equal(num(rep, "applied", NULL), 1);
    assert_int_equal(num(rep, "duplicate", NULL), 1);
    assert_int_equal(num(rep, "rejected", NULL), 1);
    it = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rep, "issues"), 0);
    assert_int_equal(rv_json_int(it, "line", 0), 2);
    assert_non_null(strstr(rv_json_str(it, "reason"), "import 1, line 2"));
    assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances"), 12);
    cJSON_Delete(rep);
  }
  tenv_close(&t);
}

static void test_truncated_rejected_whole(void **state){
  tenv t;
  cJSON *rep;
  size_t cut = strstr(FEED, "END,15") - FEED;
  char other[sizeof FEED + 8];
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "marriage-feed.bpmn");
  /* cut at a line boundary: only the trailer tells */
  rep = import(&t, tenv_file(&t, "cut.csv", FEED, cut), true, RV_OK);
  assert_string_equal(rv_json_str(rep, "state"), "rejected");
  assert_non_null(strstr(rv_json_str(rep, "reason"), "no END trailer after 15 records"));
  assert_int_equal(num(rep, "applied", NULL), 0);
  cJSON_Delete(rep);
  /* cut in the middle of a record */
  rep = import(&t, tenv_file(&t, "cut2.csv", FEED, cut - 20), true, RV_OK);
  assert_string_equal(rv_json_str(rep, "state"), "rejected");
  cJSON_Delete(rep);
  /* a trailer that disagrees */
  memcpy(other, FEED, sizeof FEED);
  memcpy(other + cut, "END,14", 6);
  rep = import(&t, tenv_file(&t, "wrong.csv", other, sizeof FEED - 1), true, RV_OK);
  assert_string_equal(rv_json_str(rep, "state"), "rejected");
  assert_non_null(strstr(rv_json_str(rep, "reason"), "declares 14 records, the file has 15"));
  cJSON_Delete(rep);
  /* no header */
  {
    const char *body = strstr(FEED, "\r\n") + 2;
    rep = import(&t, tenv_file(&t, "nohdr.csv", body, sizeof FEED - 1 - (size_t)(body - FEED)), true, RV_OK);
  }
  assert_string_equal(rv_json_str(rep, "state"), "rejected");
  assert_non_null(strstr(rv_json_str(rep, "reason"), "line 1: the header has no column"));
  cJSON_Delete(rep);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances"), 0);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_records"), 0);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_imports WHERE state='rejected'"), 4);
  /* the complete file afterwards is applied normally */
  rep = import(&t, tenv_file(&t, "full.csv", FEED, sizeof FEED - 1), true, RV_OK);
  assert_int_equal(num(rep, "applied", NULL), 5);
  cJSON_Delete(rep);
  tenv_close(&t);
}

static void test_only_insured_spouses(void **state){
  tenv t;
  cJSON *rep;
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "marriage-feed.bpmn");
  tenv_sql(&t, "INSERT INTO rec_persons(national_id, first_name, last_name, gender, birth_date, role)"
               " VALUES('0790419904','زهرا','احمدی','f','1375/01/01','insured'),"
               "       ('0084575948','علی','رضایی','m','1370/01/01','pensioner')");
  rep = import(&t, tenv_file(&t, "f.csv", FEED, sizeof FEED - 1), false, RV_OK);
  assert_int_equal(num(rep, "spouses", "started"), 2);
  assert_int_equal(num(rep, "spouses", "not_insured"), 8);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_records WHERE husband_outcome='not_insured'"
                              " AND wife_outcome='started' AND wife_id='0790419904'"), 1);
  cJSON_Delete(rep);
  tenv_close(&t);
}

/* The loop runs other events between chunks. */
static int ticks;
static void on_tick(evutil_socket_t fd, short what, void *arg){ (void)fd; (void)what; (void)arg; ticks++; }
static bool ended;
static cJSON *final;
static void on_done(void *arg, rv_status rc, const cJSON *report, const rv_err *err){
  (void)arg; (void)err;
  assert_int_equal(rc, RV_OK);
  ended = true;
  final = cJSON_Duplicate(report, 1);
}

static void test_loop_not_blocked(void **state){
  tenv t;
  cJSON *gen = NULL;
  rv_err err;
  char dir[300], path[400];
  struct event *tick;
  struct timeval tv = {0, 1000};
  rv_feed_opts o = {0};
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "marriage-feed.bpmn");
  snprintf(dir, sizeof dir, "%s/gen", t.dir);
  assert_int_equal(rv_records_generate_feed(300, 3000, 11, dir, &gen, &err), RV_OK);
  cJSON_Delete(gen);
  snprintf(path, sizeof path, "%s/marriages.csv", dir);
  tick = event_new(rv_engine_base(t.e), -1, EV_PERSIST, on_tick, NULL);
  event_add(tick, &tv);
  o.all_spouses = true;
  o.chunk_ms = 5;
  ticks = 0;
  ended = false;
  assert_int_equal(rv_feed_import_start(t.e, path, &o, on_done, NULL, &err), RV_OK);
  while (!ended) event_base_loop(rv_engine_base(t.e), EVLOOP_ONCE);
  event_free(tick);
  assert_int_equal(num(final, "applied", NULL), 3000);
  assert_int_equal(num(final, "spouses", "started"), 6000);
  assert_true(num(final, "chunks", NULL) > 1);
  /* the timer fired while the import ran: between chunks, not only at the
  ** end (chunks chained as immediately active events starved it) */
  assert_true(ticks >= 1);
  if (ticks < num(final, "chunks", NULL) / 2)
    fail_msg("the 1 ms timer fired %d times in %lld chunks", ticks, (long long)num(final, "chunks", NULL));
  cJSON_Delete(final);
  tenv_close(&t);
}

/* A chunk runs without a savepoint per record first; when a record fails
** after its cases were started, the whole chunk is rolled back and run
** again record by record: the records before the failing one are kept, the
** failing one leaves nothing behind, and the import resumes there later. */
static void test_failed_record_in_optimistic_chunk(void **state){
  tenv t;
  rv_feed_opts o = {0};
  cJSON *rep = NULL;
  rv_err err;
  const char *path;
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "marriage-feed.bpmn");
  path = tenv_file(&t, "m-fail.csv", FEED, sizeof FEED - 1);
  /* line 7 (certificate 5006) fails when its row is written, after its two cases started */
  tenv_sql(&t, "CREATE TEMP TRIGGER boom BEFORE INSERT ON feed_records WHEN NEW.certificate_no='5006'"
               " BEGIN SELECT RAISE(ABORT, 'boom'); END");
  o.all_spouses = true;
  o.chunk = 100;                                 /* the whole file is one chunk */
  assert_int_equal(rv_feed_import(t.e, path, &o, &rep, &err), RV_IO);
  assert_non_null(strstr(err.msg, "line 7"));
  assert_non_null(strstr(err.msg, "boom"));
  cJSON_Delete(rep);
  /* lines 2, 3 and 5 kept with their cases; nothing of line 7 */
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_records"), 3);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances"), 6);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances WHERE business_key='4032152314'"), 0);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM messages WHERE corr_key='4032152314'"), 0);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM feed_issues"), 2);          /* lines 4 and 6 */
  assert_int_equal(tenv_int(&t, "SELECT resume_line FROM feed_imports"), 7);
  /* fixed: the same file resumes at line 7 and ends as a clean import would */
  tenv_sql(&t, "DROP TRIGGER boom");
  assert_int_equal(rv_feed_import(t.e, path, &o, &rep, &err), RV_OK);
  assert_string_equal(rv_json_str(rep, "state"), "done");
  assert_int_equal(num(rep, "applied", NULL), 5);
  assert_int_equal(num(rep, "rejected", NULL), 9);
  assert_int_equal(num(rep, "duplicate", NULL), 1);
  assert_int_equal(num(rep, "spouses", "started"), 10);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances"), 10);
  cJSON_Delete(rep);
  tenv_close(&t);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_csv_basics),
    cmocka_unit_test(test_csv_errors_cost_one_line),
    cmocka_unit_test(test_marriage_check),
    cmocka_unit_test(test_import_counts_and_reasons),
    cmocka_unit_test(test_truncated_rejected_whole),
    cmocka_unit_test(test_only_insured_spouses),
    cmocka_unit_test(test_loop_not_blocked),
    cmocka_unit_test(test_failed_record_in_optimistic_chunk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
