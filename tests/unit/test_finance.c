/*
** tests/unit/test_finance.c -- adapters/finance: input validation, the
** idempotent ledger write under retried jobs (same key: one row, the same
** answer; same key with other input: refused), the adapters driven by a
** real process, batches (each row in exactly one batch, period filter,
** nothing left), byte-identical re-export, immutability triggers, and
** CSV-injection neutralisation as a round-trip property.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include "finance/finance.h"
#include "common/csv.h"
#include "common/util.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "adapters_testutil.h"

static cJSON *obj(const char *json){
  cJSON *o = rv_json_parse(json);
  if (o == NULL) fail_msg("bad test JSON %s", json);
  return o;
}

static void expect_invalid(const char *ledger, const char *json, const char *text){
  rv_ledger_entry en;
  rv_err err;
  cJSON *in = obj(json);
  assert_int_equal(rv_ledger_parse(ledger, in, 0, &en, &err), RV_INVALID);
  if (strstr(err.msg, text) == NULL) fail_msg("'%s' lacks '%s'", err.msg, text);
  cJSON_Delete(in);
}

static void test_parse(void **state){
  rv_ledger_entry en, en2;
  rv_err err;
  int64_t now;
  cJSON *in;
  (void)state;
  rv_datetime_parse("2025-10-01T10:00:00+03:30", &now, NULL);
  in = obj("{\"national_id\":\"۰۴۹۹۳۷۰۸۹۹\",\"period\":\"1404/7\",\"amount_rials\":\"4700000\",\"kind\":\"premium\"}");
  assert_int_equal(rv_ledger_parse("payroll", in, now, &en, &err), RV_INVALID);   /* 1404/7: not yyyy-mm */
  cJSON_Delete(in);
  in = obj("{\"national_id\":\"۰۴۹۹۳۷۰۸۹۹\",\"period\":\"1404/07\",\"amount_rials\":\"4700000\",\"kind\":\"premium\"}");
  assert_int_equal(rv_ledger_parse("payroll", in, now, &en, &err), RV_OK);
  assert_string_equal(en.national_id, "0499370899");
  assert_string_equal(en.period, "1404-07");
  assert_int_equal(en.amount_rials, 4700000);
  cJSON_Delete(in);
  in = obj("{\"national_id\":\"0499370899\",\"sheba\":\"ir06 2960 0000 0010 0324 2000 01\","
           "\"amount_rials\":103909680,\"kind\":\"marriage-grant\",\"reference\":\"MG-1\"}");
  assert_int_equal(rv_ledger_parse("finance", in, now, &en, &err), RV_OK);
  assert_string_equal(en.sheba, "IR062960000000100324200001");
  assert_string_equal(en.period, "1404-07");                     /* month of now (1404/07/09) */
  /* the fingerprint does not depend on the defaulted period */
  assert_int_equal(rv_ledger_parse("finance", in, now + (int64_t)40 * 86400000, &en2, &err), RV_OK);
  assert_string_equal(en2.period, "1404-08");
  assert_string_equal(en.fingerprint, en2.fingerprint);
  cJSON_Delete(in);
  expect_invalid("payroll", "{\"national_id\":\"0684159415\",\"period\":\"1404-07\",\"amount_rials\":1,\"kind\":\"k\"}", "national_id");
  expect_invalid("payroll", "{\"national_id\":\"0499370899\",\"amount_rials\":1,\"kind\":\"k\"}", "period: missing");
  expect_invalid("payroll", "{\"national_id\":\"0499370899\",\"period\":\"1404-13\",\"amount_rials\":1,\"kind\":\"k\"}", "month out of range");
  expect_invalid("payroll", "{\"national_id\":\"0499370899\",\"period\":\"1404-07\",\"amount_rials\":1.5,\"kind\":\"k\"}", "amount_rials");
  expect_invalid("payroll", "{\"national_id\":\"0499370899\",\"period\":\"1404-07\",\"amount_rials\":0,\"kind\":\"k\"}", "amount_rials");
  expect_invalid("payroll", "{\"national_id\":\"0499370899\",\"period\":\"1404-07\",\"amount_rials\":\"1e6\",\"kind\":\"k\"}", "amount_rials");
  expect_invalid("payroll", "{\"national_id\":\"0499370899\",\"period\":\"1404-07\",\"amount_rials\":5,\"kind\":\"\"}", "kind");
  expect_invalid("finance", "{\"national_id\":\"0499370899\",\"sheba\":\"IR062960000000100324200002\",\"amount_rials\":5,\"kind\":\"k\",\"reference\":\"r\"}", "sheba");
  expect_invalid("finance", "{\"national_id\":\"0499370899\",\"sheba\":\"IR062960000000100324200001\",\"amount_rials\":5,\"kind\":\"k\"}", "reference: required");
  expect_invalid("bank", "{}", "no ledger");
}

/*--- the adapter under retries -----------------------------------------------*/

typedef struct answer { int n; rv_job_outcome o; char *result, *msg; } answer;

static void on_done(void *arg, rv_job_outcome o, cJSON *result, const char *code, const char *msg){
  answer *a = arg;
  (void)code;
  a->n++;
  a->o = o;
  rv_free(a->result);
  rv_free(a->msg);
  a->result = result ? rv_json_print(result) : NULL;
  a->msg = msg ? rv_strdup(msg) : NULL;
  cJSON_Delete(result);
}

static void invoke(tenv *t, const char *adapter, const char *key, int attempt, const char *input, answer *a){
  const rv_adapter_ops *ops = rv_adapter_find(adapter);
  cJSON *in = obj(input);
  rv_job_info job = { 1, 7, "pay", key, in, attempt };
  int before = a->n;
  assert_non_null(ops);
  assert_int_equal(ops->invoke(ops->self, rv_engine_base(t->e), &job, on_done, a), RV_OK);
  assert_int_equal(a->n, before);                      /* never answers inside invoke() */
  cJSON_Delete(in);
  while (a->n == before) event_base_loop(rv_engine_base(t->e), EVLOOP_ONCE);
  assert_int_equal(a->n, before + 1);                  /* exactly once */
}

static void test_ledger_retries(void **state){
  tenv t;
  answer a = {0}, b = {0};
  const char *in = "{\"national_id\":\"0499370899\",\"sheba\":\"IR062960000000100324200001\","
                   "\"amount_rials\":103909680,\"kind\":\"marriage-grant\",\"reference\":\"MG-1\"}";
  (void)state;
  tenv_open(&t);
  invoke(&t, "finance", "7:3:pay", 1, in, &a);
  assert_int_equal(a.o, RV_JOB_OK);
  /* a retry, a re-dispatch after restart, and a later attempt: same row, same answer */
  for (int attempt = 1; attempt <= 3; attempt++) {
    invoke(&t, "finance", "7:3:pay", attempt, in, &b);
    assert_int_equal(b.o, RV_JOB_OK);
    assert_string_equal(b.result, a.result);
  }
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 1);
  /* even when the clock has moved to another month (default period) */
  rv_clock_advance(&t.clock, (int64_t)40 * 86400000);
  invoke(&t, "finance", "7:3:pay", 4, in, &b);
  assert_string_equal(b.result, a.result);
  /* the same key with another amount is refused, never a second row */
  invoke(&t, "finance", "7:3:pay", 5, "{\"national_id\":\"0499370899\",\"sheba\":\"IR062960000000100324200001\","
         "\"amount_rials\":1,\"kind\":\"marriage-grant\",\"reference\":\"MG-1\"}", &b);
  assert_int_equal(b.o, RV_JOB_FAILED);
  assert_non_null(strstr(b.msg, "different input fingerprint"));
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 1);
  /* bad input is a BPMN error, no row */
  invoke(&t, "payroll", "7:4:deduct", 1, "{\"national_id\":\"0499370899\",\"amount_rials\":5,\"kind\":\"k\"}", &b);
  assert_int_equal(b.o, RV_JOB_BPMN_ERROR);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 1);
  /* a transaction open on the connection: the write waits for it to end */
  rv_store_begin(rv_engine_store(t.e), NULL);
  {
    const rv_adapter_ops *ops = rv_adapter_find("payroll");
    cJSON *pin = obj("{\"national_id\":\"0790419904\",\"period\":\"1404-07\",\"amount_rials\":5,\"kind\":\"k\"}");
    rv_job_info job = { 2, 8, "deduct", "8:3:deduct", pin, 1 };
    int before = b.n;
    assert_int_equal(ops->invoke(ops->self, rv_engine_base(t.e), &job, on_done, &b), RV_OK);
    cJSON_Delete(pin);
    for (int i = 0; i < 5; i++) event_base_loop(rv_engine_base(t.e), EVLOOP_ONCE);
    assert_int_equal(b.n, before);                        /* still waiting */
    rv_store_rollback(rv_engine_store(t.e));
    while (b.n == before) event_base_loop(rv_engine_base(t.e), EVLOOP_ONCE);
    assert_int_equal(b.o, RV_JOB_OK);
  }
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 2);
  rv_free(a.result); rv_free(a.msg); rv_free(b.result); rv_free(b.msg);
  tenv_close(&t);
}

/* No engine bound to the loop: a technical failure (retried), never lost. */
static void test_unbound_fails_technically(void **state){
  tenv t;
  answer a = {0};
  (void)state;
  tenv_open(&t);
  rv_adapters_unbind_engine(t.e);
  invoke(&t, "payroll", "1:1:x", 1, "{\"national_id\":\"0499370899\",\"period\":\"1404-07\",\"amount_rials\":5,\"kind\":\"k\"}", &a);
  assert_int_equal(a.o, RV_JOB_FAILED);
  assert_non_null(strstr(a.msg, "no engine bound"));
  rv_free(a.result); rv_free(a.msg);
  tenv_close(&t);
}

/*--- processes, batches and files ---------------------------------------------*/

static void start_cases(tenv *t, int n){
  static const char *const ids[] = { "0499370899", "0790419904", "0084575948", "0963695398",
                                     "0684159414", "0067749828", "0650451252", "1583250689" };
  rv_err err;
  for (int i = 0; i < n; i++) {
    char vars[512];
    int64_t id;
    cJSON *v;
    snprintf(vars, sizeof vars, "{\"national_id\":\"%s\",\"period\":\"%s\",\"premium\":%d,"
             "\"grant\":%d,\"sheba\":\"IR820540102680020817909002\",\"reference\":\"%s\"}",
             ids[i % 8], i % 2 ? "1404-06" : "1404-07", 4700000 + i, 103909680 + i,
             i == 0 ? "=cmd|' /C calc'!A0" : "MG");
    v = obj(vars);
    assert_int_equal(rv_engine_start(t->e, "ledger_case", 0, v, NULL, &id, &err), RV_OK);
    cJSON_Delete(v);
  }
  rv_engine_drain(t->e);
}

static char *slurp(const char *path, size_t *n){
  char *buf;
  rv_err err;
  if (rv_file_read(path, 1 << 26, &buf, n, &err) != RV_OK) fail_msg("%s", err.msg);
  return buf;
}

static void test_process_and_export(void **state){
  tenv t;
  rv_export_report r1, r2, r3, again;
  rv_err err;
  char dir[300], sha[65];
  size_t n1, n2;
  char *f1, *f2;
  rv_store *st;
  (void)state;
  tenv_open(&t);
  st = rv_engine_store(t.e);
  tenv_deploy(&t, "ledger.bpmn");
  start_cases(&t, 10);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM tasks WHERE element_id='wait' AND state='open'"), 10);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger WHERE ledger='payroll'"), 10);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger WHERE ledger='finance'"), 10);
  assert_int_equal(tenv_int(&t, "SELECT count(DISTINCT job_key) FROM fin_ledger"), 20);
  snprintf(dir, sizeof dir, "%s/out", t.dir);

  /* payroll of 1404-07 only, then the rest */
  assert_int_equal(rv_export_batch(st, "payroll", "1404-07", dir, 1000, &r1, &err), RV_OK);
  assert_int_equal(r1.rows, 5);
  assert_int_equal(r1.sum_rials, 5 * 4700000 + 0 + 2 + 4 + 6 + 8);
  assert_int_equal(rv_export_batch(st, "payroll", NULL, dir, 2000, &r2, &err), RV_OK);
  assert_int_equal(r2.rows, 5);
  assert_int_equal(rv_export_batch(st, "payroll", NULL, dir, 3000, &r3, &err), RV_NOTFOUND);
  assert_int_equal(rv_export_batch(st, "finance", NULL, dir, 4000, &r3, &err), RV_OK);
  assert_int_equal(r3.rows, 10);
  /* every row in exactly one batch; batch totals match the rows */
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger WHERE batch_id IS NULL"), 0);
  assert_int_equal(tenv_int(&t, "SELECT sum(row_count) FROM fin_batches"), 20);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_batches b WHERE row_count <> (SELECT count(*)"
                              " FROM fin_ledger l WHERE l.batch_id=b.id) OR sum_rials <> (SELECT sum(amount_rials)"
                              " FROM fin_ledger l WHERE l.batch_id=b.id)"), 0);
  /* the file: header, CRLF, neutralised formula, sha256 recorded */
  f1 = slurp(r3.file, &n1);
  rv_sha256_hex(f1, n1, sha);
  assert_string_equal(sha, r3.sha256);
  assert_memory_equal(f1, "batch_id,line,ledger_id,national_id,sheba,amount_rials,kind,reference,period,"
                      "idempotency_key\r\n3,1,", 94);
  assert_non_null(strstr(f1, ",marriage-grant,'=cmd|' /C calc'!A0,1404-07,"));
  /* re-export: byte-identical, even after the published file was damaged */
  tenv_file(&t, "out/finance-all-b000003.csv", "garbage", 7);
  assert_int_equal(rv_export_publish(st, 3, dir, 9999, &again, &err), RV_OK);
  f2 = slurp(r3.file, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(f1, f2, n1);
  assert_string_equal(again.sha256, r3.sha256);
  assert_int_equal(again.published, r3.published);         /* the first publication stays recorded */
  rv_free(f1); rv_free(f2);
  /* rows and batches are immutable */
  assert_int_not_equal(sqlite3_exec(rv_store_db(st), "UPDATE fin_ledger SET amount_rials=1 WHERE id=1", NULL, NULL, NULL), SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(rv_store_db(st), "UPDATE fin_ledger SET batch_id=2 WHERE id=1", NULL, NULL, NULL), SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(rv_store_db(st), "DELETE FROM fin_ledger", NULL, NULL, NULL), SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(rv_store_db(st), "UPDATE fin_batches SET sha256='x' WHERE id=1", NULL, NULL, NULL), SQLITE_OK);
  assert_int_not_equal(sqlite3_exec(rv_store_db(st), "UPDATE fin_batches SET row_count=0 WHERE id=1", NULL, NULL, NULL), SQLITE_OK);
  /* a batch whose rows no longer produce the recorded bytes is refused, file untouched */
  tenv_sql(&t, "DROP TRIGGER fin_ledger_frozen");
  tenv_sql(&t, "UPDATE fin_ledger SET kind='changed' WHERE batch_id=3 AND id=(SELECT min(id) FROM fin_ledger WHERE batch_id=3)");
  assert_int_equal(rv_export_publish(st, 3, dir, 9999, &again, &err), RV_CORRUPT);
  f2 = slurp(r3.file, &n2);
  assert_int_equal(n1, n2);
  rv_free(f2);
  tenv_close(&t);
}

/* A bad input is caught by the process (BPMN error INVALID_INPUT). */
static void test_bad_input_caught(void **state){
  tenv t;
  rv_err err;
  int64_t id;
  cJSON *v = obj("{\"national_id\":\"0499370899\"}");
  (void)state;
  tenv_open(&t);
  tenv_deploy(&t, "ledger.bpmn");
  assert_int_equal(rv_engine_start(t.e, "ledger_bad", 0, v, NULL, &id, &err), RV_OK);
  cJSON_Delete(v);
  rv_engine_drain(t.e);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM tasks WHERE element_id='fix' AND state='open'"), 1);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 0);
  tenv_close(&t);
}

/* Inside the command (cfg.answer_now, as in every `ravand` command): the
** ledger rows are written in the transaction of the command that reached
** the service tasks -- committed with it, rolled back with it -- and the
** process moves on before the command returns; a bad input is the BPMN
** error as before; a key that already has a row with other input is left
** to the loop, which refuses it as before. */
static void test_answered_inside_the_command(void **state){
  tenv t;
  rv_err err;
  int64_t id, a0;
  cJSON *v = obj("{\"national_id\":\"0499370899\",\"period\":\"1404-07\",\"premium\":4700000,"
                 "\"grant\":103909680,\"sheba\":\"IR820540102680020817909002\",\"reference\":\"MG-1\"}");
  (void)state;
  tenv_open_opts(&t, true);
  tenv_deploy(&t, "ledger.bpmn");

  /* rolled back with the command's batch: no row, no case */
  assert_int_equal(rv_engine_batch_begin(t.e, &err), RV_OK);
  assert_int_equal(rv_engine_start(t.e, "ledger_case", 0, v, NULL, &id, &err), RV_OK);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 2);      /* inside the transaction */
  rv_store_rollback(rv_engine_store(t.e));
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 0);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances"), 0);
  rv_engine_batch_end(t.e, &err);

  /* committed with it: both rows, the case at its task -- no drain; the jobs, answered inside
  ** the command, left no rows (engine.c answers_now); the ledger rows carry their keys */
  a0 = rv_engine_stats_get(t.e)->answered_now;
  assert_int_equal(rv_engine_start(t.e, "ledger_case", 0, v, NULL, &id, &err), RV_OK);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger WHERE instance_id=(SELECT max(id) FROM instances)"), 2);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM jobs"), 0);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM tasks WHERE element_id='wait' AND state='open'"), 1);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger WHERE job_key LIKE instance_id||':%:'||element_id"), 2);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM instances WHERE instr(state, '\"payment_id\":')>0"), 1);
  assert_int_equal(rv_engine_stats_get(t.e)->answered_now - a0, 2);
  cJSON_Delete(v);

  /* bad input: the BPMN error, caught inside the command, no row */
  v = obj("{\"national_id\":\"0499370899\"}");
  assert_int_equal(rv_engine_start(t.e, "ledger_bad", 0, v, NULL, &id, &err), RV_OK);
  cJSON_Delete(v);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM tasks WHERE element_id='fix' AND state='open'"), 1);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger"), 2);

  /* a row under the next case's job key with other input: declined here, refused by the loop */
  tenv_sql(&t, "INSERT INTO fin_ledger(ledger, job_key, fingerprint, instance_id, element_id, national_id,"
               " period, amount_rials, kind, created) SELECT 'payroll', (SELECT max(id)+1 FROM instances)"
               "||':3:deduct', 'other', 0, 'deduct', '0499370899', '1404-07', 1, 'k', 0");
  v = obj("{\"national_id\":\"0790419904\",\"period\":\"1404-07\",\"premium\":1,"
          "\"grant\":2,\"sheba\":\"IR820540102680020817909002\",\"reference\":\"MG-2\"}");
  assert_int_equal(rv_engine_start(t.e, "ledger_case", 0, v, NULL, &id, &err), RV_OK);
  cJSON_Delete(v);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM jobs WHERE state='pending' AND element_id='deduct'"), 1);
  rv_engine_drain(t.e);
  assert_int_equal(tenv_int(&t, "SELECT count(*) FROM fin_ledger WHERE job_key LIKE '%:deduct'"), 2);
  assert_true(tenv_int(&t, "SELECT count(*) FROM jobs WHERE element_id='deduct' AND last_error LIKE"
                           " '%different input fingerprint%'") == 1);
  tenv_close(&t);
}

/* F7: hostile cells are neutralised and survive an RFC 4180 round trip. */
static void test_csv_injection_property(void **state){
  static const char alphabet[] = "=+-@\t\r\n,\" a1'|!";
  unsigned seed = 12345;
  (void)state;
  for (int k = 0; k < 10000; k++) {
    char in[24];
    int len = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 20;
    rv_buf b;
    rv_csv r;
    rv_csv_rec rec;
    for (int i = 0; i < len; i++) in[i] = alphabet[((seed = seed * 1103515245u + 12345u) >> 16) % (sizeof alphabet - 1)];
    in[len] = 0;
    rv_buf_init(&b, 0);
    rv_buf_adds(&b, "x,");
    rv_csv_cell(&b, in);
    rv_buf_adds(&b, "\r\n");
    rv_csv_init(&r, b.p, b.len, false);
    assert_true(rv_csv_next(&r, &rec));
    if (rec.error) fail_msg("cell for '%s' does not parse: %s", in, rec.error);
    assert_int_equal(rec.n, 2);
    if (strchr("=+-@\t\r", in[0])) {
      assert_int_equal(rec.f[1][0], '\'');
      /* the reader trims spaces of unquoted cells; the writer quotes those */
      assert_string_equal(rec.f[1] + 1, in);
    } else {
      assert_string_equal(rec.f[1], in);
    }
    assert_false(rv_csv_next(&r, &rec));
    rv_csv_fini(&r);
    rv_buf_fini(&b);
  }
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse),
    cmocka_unit_test(test_ledger_retries),
    cmocka_unit_test(test_unbound_fails_technically),
    cmocka_unit_test(test_process_and_export),
    cmocka_unit_test(test_bad_input_caught),
    cmocka_unit_test(test_answered_inside_the_command),
    cmocka_unit_test(test_csv_injection_property),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
