/*
** tests/unit/test_lint.c -- lint/lint.c: one test per diagnostic kind.
**
** Each fixture under tests/fixtures/lint/ has exactly one problem; the
** test lints it against tests/fixtures/lint/scripts/ and asserts the
** level, the line and a substring of the message. The last tests drive
** the CLI (rv_lint_main) with stdout redirected to a temporary file.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "lint/lint.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif
#define DIR_LINT RV_SOURCE_ROOT "/tests/fixtures/lint/"
#define SCRIPTS  DIR_LINT "scripts"

/* Lint one fixture and expect a diagnostic of level lv at line with msg. */
static void expect_one(const char *fixture, const char *scripts, rv_diag_level lv,
                       int line, const char *msg){
  char path[512];
  rv_diags d;
  int n_err;
  const rv_diag *hit = NULL;

  snprintf(path, sizeof path, DIR_LINT "%s", fixture);
  rv_diags_init(&d);
  n_err = rv_lint_file(path, scripts, &d);
  assert_int_equal(n_err, d.n_errors);
  for (int i = 0; i < d.n && hit == NULL; i++)
    if (strstr(d.v[i].msg, msg) != NULL) hit = &d.v[i];
  if (hit == NULL) {
    rv_diags_print(&d, fixture, stderr);
    fail_msg("%s: no diagnostic containing \"%s\"", fixture, msg);
  }
  assert_int_equal(hit->level, lv);
  assert_int_equal(hit->line, line);
  if (lv == RV_DIAG_WARNING) assert_int_equal(d.n_errors, 0);   /* warnings only */
  rv_diags_fini(&d);
}

#define LINT_TEST(name, fixture, lv, line, msg) \
  static void name(void **state){ (void)state; expect_one(fixture, SCRIPTS, lv, line, msg); }

#define E RV_DIAG_ERROR
#define W RV_DIAG_WARNING

LINT_TEST(test_malformed_xml,      "malformed.bpmn",        E, 7, "Opening and ending tag mismatch")
LINT_TEST(test_dangling_reference, "dangling-ref.bpmn",     E, 6, "dangling reference: messageRef 'no_such_message'")
LINT_TEST(test_flow_to_nowhere,    "flow-to-nowhere.bpmn",  E, 5, "sequence flow 'f1' targetRef 'ghost' names no element")
LINT_TEST(test_unreachable,        "unreachable.bpmn",      W, 7, "task 'orphan' is unreachable")
LINT_TEST(test_stuck_gateway,      "stuck-gateway.bpmn",    W, 6, "gateway 'g1' has no default flow and its conditions may all be false")
LINT_TEST(test_unsupported,        "unsupported.bpmn",      E, 6, "unsupported element 'complexGateway'")
LINT_TEST(test_lua_syntax_cond,    "lua-syntax.bpmn",       E, 8, "condition of sequence flow 'f2' is not a valid Lua expression")
LINT_TEST(test_lua_syntax_mapping, "bad-expr-mapping.bpmn", E, 8, "input mapping 'to' is not a valid Lua expression")
LINT_TEST(test_lua_syntax_script,  "bad-script.bpmn",       E, 6, "script of 't' is not valid Lua")
LINT_TEST(test_missing_function,   "missing-function.bpmn", E, 6, "calls Lua function 'util.no_such_function' that does not exist")
LINT_TEST(test_bad_timer,          "bad-timer.bpmn",        E, 6, "timeDuration '3 days' is not valid ISO 8601")
LINT_TEST(test_empty_timer,        "empty-timer.bpmn",      E, 6, "timer of 'w' has an empty expression")
LINT_TEST(test_missing_adapter,    "missing-adapter.bpmn",  E, 6, "serviceTask 'svc' has no adapter")
LINT_TEST(test_entity_bomb,        "entity-bomb.bpmn",      E, 3, "entity declarations are not allowed")
LINT_TEST(test_xxe,                "xxe.bpmn",              E, 3, "DTD declares entity 'xxe'")
LINT_TEST(test_end_outgoing,       "end-outgoing.bpmn",     E, 6, "end event 'e' has outgoing sequence flows")
LINT_TEST(test_start_incoming,     "start-incoming.bpmn",   E, 4, "start event 's' has incoming sequence flows")
LINT_TEST(test_no_start,           "no-start.bpmn",         E, 3, "process 'p' has no none, message, timer or signal start event")
LINT_TEST(test_boundary_on_gw,     "boundary-on-gateway.bpmn", E, 7, "which is not an activity")
LINT_TEST(test_event_gateway,      "event-gateway.bpmn",    E, 6, "event-based gateway 'eg' leads to userTask 't'")
LINT_TEST(test_mi_no_collection,   "mi-no-collection.bpmn", E, 6, "multi-instance 't' has no collection")
LINT_TEST(test_call_no_element,    "call-no-element.bpmn",  E, 6, "callActivity 'c' has no calledElement")
LINT_TEST(test_no_correlation,     "no-correlation.bpmn",   W, 6, "no correlation key: correlates by name only")
LINT_TEST(test_start_role_node,    "start-role.bpmn",       E, 6, "rv:startableBy on 'e': only a process's own start events")
LINT_TEST(test_start_role_name,    "start-role-process.bpmn", E, 3, "rv:startableBy of process 'p' names 'operator'")
LINT_TEST(test_start_role_timer,   "start-role-timer.bpmn", E, 4, "only none and message start events")
LINT_TEST(test_display_name,       "display-bad.bpmn",      E, 6, "rv:display of 't': 'final statuses' is not a variable name")
LINT_TEST(test_display_not_user,   "display-not-user.bpmn", W, 6, "rv:display on task 't' is ignored")

static void test_good_is_clean(void **state){
  rv_diags d;
  (void)state;
  rv_diags_init(&d);
  assert_int_equal(rv_lint_file(DIR_LINT "good.bpmn", SCRIPTS, &d), 0);
  if (d.n != 0) rv_diags_print(&d, "good.bpmn", stderr);
  assert_int_equal(d.n, 0);
  rv_diags_fini(&d);
}

static void test_lua_module_syntax_error(void **state){
  rv_diags d;
  const rv_diag *hit = NULL;
  (void)state;
  rv_diags_init(&d);
  assert_true(rv_lint_file(DIR_LINT "good.bpmn", DIR_LINT "scripts-broken", &d) > 0);
  for (int i = 0; i < d.n; i++)
    if (strstr(d.v[i].msg, "scripts-broken/broken.lua:4:") != NULL) hit = &d.v[i];
  if (hit == NULL) { rv_diags_print(&d, "good.bpmn", stderr); fail(); }
  assert_int_equal(hit->level, RV_DIAG_ERROR);
  assert_int_equal(hit->line, 0);
  rv_diags_fini(&d);
}

static void test_no_scripts_dir_warns(void **state){
  (void)state;
  expect_one("good.bpmn", NULL, W, 6, "no scripts directory");
}

/*--- CLI -----------------------------------------------------------------*/

/* Run rv_lint_main with stdout captured. Returns: exit code; *out is a
** new string, caller frees. */
static int run_cli(int argc, char **argv, char **out){
  char tmpl[] = "/tmp/rv_lint_test_XXXXXX";
  int fd = mkstemp(tmpl), saved, rc;
  FILE *fp;
  long n;

  assert_true(fd >= 0);
  fflush(stdout);
  saved = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);
  rc = rv_lint_main(argc, argv);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  close(fd);
  fp = fopen(tmpl, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  rewind(fp);
  *out = calloc(1, (size_t)n + 1);
  assert_int_equal(fread(*out, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  unlink(tmpl);
  return rc;
}

static void test_cli_exit_codes(void **state){
  char *out;
  char *ok[] = { "lint", "--scripts", SCRIPTS, DIR_LINT "good.bpmn", DIR_LINT "unreachable.bpmn" };
  char *bad[] = { "lint", "--scripts=" SCRIPTS, DIR_LINT "good.bpmn", DIR_LINT "missing-adapter.bpmn" };
  char *none[] = { "lint" };
  char *opt[] = { "lint", "--frobnicate", "x.bpmn" };
  (void)state;

  assert_int_equal(run_cli(5, ok, &out), 0);      /* warnings only */
  assert_non_null(strstr(out, DIR_LINT "unreachable.bpmn:7: warning: task 'orphan' is unreachable"));
  free(out);
  assert_int_equal(run_cli(4, bad, &out), 1);
  assert_non_null(strstr(out, DIR_LINT "missing-adapter.bpmn:6: error: serviceTask 'svc' has no adapter"));
  free(out);
  assert_int_equal(run_cli(1, none, &out), 2);
  free(out);
  assert_int_equal(run_cli(3, opt, &out), 2);
  free(out);
}

static void test_cli_json(void **state){
  char *out;
  char *argv[] = { "lint", "--json", "--scripts", SCRIPTS, DIR_LINT "bad-timer.bpmn" };
  cJSON *arr, *o;
  (void)state;
  assert_int_equal(run_cli(5, argv, &out), 1);
  arr = cJSON_Parse(out);
  assert_non_null(arr);
  assert_true(cJSON_IsArray(arr));
  assert_int_equal(cJSON_GetArraySize(arr), 1);
  o = cJSON_GetArrayItem(arr, 0);
  assert_string_equal(cJSON_GetObjectItem(o, "file")->valuestring, DIR_LINT "bad-timer.bpmn");
  assert_int_equal(cJSON_GetObjectItem(o, "line")->valueint, 6);
  assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "error");
  assert_non_null(strstr(cJSON_GetObjectItem(o, "message")->valuestring, "3 days"));
  cJSON_Delete(arr);
  free(out);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_malformed_xml),
    cmocka_unit_test(test_dangling_reference),
    cmocka_unit_test(test_flow_to_nowhere),
    cmocka_unit_test(test_unreachable),
    cmocka_unit_test(test_stuck_gateway),
    cmocka_unit_test(test_unsupported),
    cmocka_unit_test(test_lua_syntax_cond),
    cmocka_unit_test(test_lua_syntax_mapping),
    cmocka_unit_test(test_lua_syntax_script),
    cmocka_unit_test(test_missing_function),
    cmocka_unit_test(test_bad_timer),
    cmocka_unit_test(test_empty_timer),
    cmocka_unit_test(test_missing_adapter),
    cmocka_unit_test(test_entity_bomb),
    cmocka_unit_test(test_xxe),
    cmocka_unit_test(test_end_outgoing),
    cmocka_unit_test(test_start_incoming),
    cmocka_unit_test(test_no_start),
    cmocka_unit_test(test_boundary_on_gw),
    cmocka_unit_test(test_event_gateway),
    cmocka_unit_test(test_mi_no_collection),
    cmocka_unit_test(test_call_no_element),
    cmocka_unit_test(test_no_correlation),
    cmocka_unit_test(test_start_role_node),
    cmocka_unit_test(test_start_role_name),
    cmocka_unit_test(test_start_role_timer),
    cmocka_unit_test(test_display_name),
    cmocka_unit_test(test_display_not_user),
    cmocka_unit_test(test_good_is_clean),
    cmocka_unit_test(test_lua_module_syntax_error),
    cmocka_unit_test(test_no_scripts_dir_warns),
    cmocka_unit_test(test_cli_exit_codes),
    cmocka_unit_test(test_cli_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
