/*
** tests/unit/test_model.c -- model/parse.c, validate.c, diag.c.
**
** Each test parses a document (a fixture under tests/fixtures/model/ or an
** inline string), asserts on the resulting rv_model and diagnostics, and
** frees everything; run under ASan this also checks for leaks.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/mem.h"
#include "model/model.h"

#ifndef RV_SOURCE_ROOT
#define RV_SOURCE_ROOT "."
#endif
#define FIXTURE(name) RV_SOURCE_ROOT "/tests/fixtures/model/" name

#define NS_DECLS \
  "xmlns:rv=\"urn:ravand:bpmn:1\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "

/*--- helpers -------------------------------------------------------------*/

static rv_model *parse_ok(const char *xml, rv_diags *d){
  rv_model *m = NULL;
  rv_status rc = rv_model_parse_memory(xml, strlen(xml), "t.bpmn", d, &m);
  if (rc != RV_OK) rv_diags_print(d, "t.bpmn", stderr);
  assert_int_equal(rc, RV_OK);
  assert_non_null(m);
  return m;
}

static const rv_node *node(const rv_model *m, const char *id){
  int i = rv_model_find_node(m, id);
  if (i < 0) fail_msg("no node '%s'", id);
  return &m->nodes[i];
}

static const rv_flow *flow(const rv_model *m, const char *id){
  for (int i = 0; i < m->n_flows; i++)
    if (strcmp(m->flows[i].id, id) == 0) return &m->flows[i];
  fail_msg("no flow '%s'", id);
  return NULL;
}

/* Returns the first diagnostic whose message contains s, or NULL. */
static const rv_diag *find_diag(const rv_diags *d, const char *s){
  for (int i = 0; i < d->n; i++)
    if (strstr(d->v[i].msg, s) != NULL) return &d->v[i];
  return NULL;
}

static int count_diag(const rv_diags *d, const char *s){
  int n = 0;
  for (int i = 0; i < d->n; i++) n += strstr(d->v[i].msg, s) != NULL;
  return n;
}

static void expect_diag(const rv_diags *d, rv_diag_level lv, int line, const char *s){
  const rv_diag *g = find_diag(d, s);
  if (g == NULL) {
    rv_diags_print(d, "t.bpmn", stderr);
    fail_msg("no diagnostic containing \"%s\"", s);
  }
  assert_int_equal(g->level, lv);
  if (line >= 0) assert_int_equal(g->line, line);
}

/* Parse expecting failure; returns with d filled. */
static void parse_fail(const char *xml, rv_diags *d){
  rv_model *m = (rv_model *)1;
  rv_status rc = rv_model_parse_memory(xml, strlen(xml), "t.bpmn", d, &m);
  assert_int_not_equal(rc, RV_OK);
  assert_null(m);
  assert_true(d->n_errors > 0);
}

/*--- the full fixture ----------------------------------------------------*/

static void test_full_fixture(void **state){
  rv_diags d;
  rv_model *m = NULL;
  const rv_node *n;
  (void)state;

  rv_diags_init(&d);
  assert_int_equal(rv_model_parse_file(FIXTURE("full.bpmn"), &d, &m), RV_OK);
  assert_int_equal(d.n_errors, 0);
  rv_model_validate(m, &d);
  if (d.n != 0) rv_diags_print(&d, "full.bpmn", stderr);
  assert_int_equal(d.n, 0);
  assert_int_equal(m->n_processes, 2);

  const rv_process *p = rv_model_find_process(m, "pension");
  assert_non_null(p);
  assert_true(p->executable);
  assert_string_equal(p->name, "مستمری");
  assert_int_equal(rv_model_process_index(m, "child"), 1);
  assert_null(rv_model_find_process(m, "nope"));
  assert_int_equal(rv_model_find_node(m, "nope"), -1);
  assert_int_equal(p->n_starts, 1);
  assert_string_equal(m->nodes[p->starts[0]].id, "start");
  assert_int_equal(p->n_event_subs, 1);
  assert_string_equal(m->nodes[p->event_subs[0]].id, "evsub");

  n = node(m, "start");
  assert_int_equal(n->type, RV_ELEM_START_EVENT);
  assert_int_equal(n->line, 16);
  assert_int_equal(n->scope, -1);
  assert_int_equal(n->process, 0);
  assert_string_equal(n->status, "درخواست ثبت شد");
  assert_non_null(strstr(n->sms, "{case_id}"));
  assert_int_equal(n->n_out, 1);
  assert_string_equal(m->flows[n->out[0]].id, "f1");

  n = node(m, "check");
  assert_int_equal(n->type, RV_ELEM_SCRIPT_TASK);
  assert_string_equal(n->function, "pension.eligible");
  assert_string_equal(n->result_var, "eligible");
  assert_int_equal(n->n_inputs, 1);
  assert_string_equal(n->inputs[0].target, "age");
  assert_string_equal(n->inputs[0].expr, "applicant.age");
  assert_int_equal(n->inputs[0].line, 22);
  assert_int_equal(n->n_outputs, 1);
  assert_string_equal(n->outputs[0].expr, "result.ok");

  n = node(m, "gw");
  assert_int_equal(n->type, RV_ELEM_EXCLUSIVE_GATEWAY);
  assert_int_equal(n->n_out, 2);
  assert_true(n->default_flow >= 0);
  assert_string_equal(m->flows[n->default_flow].id, "f_no");
  assert_true(flow(m, "f_no")->is_default);
  assert_false(flow(m, "f_yes")->is_default);
  assert_string_equal(flow(m, "f_yes")->condition, "eligible and age >= 60");
  assert_int_equal(flow(m, "f_yes")->cond_line, 29);
  assert_null(flow(m, "f_no")->condition);

  n = node(m, "review");
  assert_int_equal(n->type, RV_ELEM_USER_TASK);
  assert_string_equal(n->candidate_groups, "clerk,supervisor");
  assert_string_equal(n->assignee, "initiator");
  assert_string_equal(n->branch_expr, "branch_of(applicant)");
  assert_string_equal(n->county_expr, "applicant.county");
  assert_string_equal(n->due, "P3D");
  assert_int_equal(n->n_fields, 2);
  assert_string_equal(n->fields[0].id, "approved");
  assert_string_equal(n->fields[0].label, "تایید");
  assert_string_equal(n->fields[0].type, "boolean");
  assert_true(n->fields[0].required);
  assert_string_equal(n->fields[1].type, "enum");
  assert_false(n->fields[1].required);
  assert_int_equal(n->fields[1].n_values, 2);
  assert_string_equal(n->fields[1].values[1], "b");
  assert_int_equal(n->n_boundaries, 1);
  assert_string_equal(m->nodes[n->boundaries[0]].id, "b_timer");

  n = node(m, "b_timer");
  assert_int_equal(n->type, RV_ELEM_BOUNDARY_EVENT);
  assert_int_equal(n->ev, RV_EV_TIMER);
  assert_int_equal(n->timer_kind, RV_TIMER_DURATION);
  assert_string_equal(n->timer_expr, "PT48H");
  assert_false(n->interrupting);
  assert_string_equal(m->nodes[n->attached_to].id, "review");

  n = node(m, "esc_throw");
  assert_int_equal(n->ev, RV_EV_ESCALATION);
  assert_string_equal(n->ref_name, "LATE");

  n = node(m, "pay");
  assert_int_equal(n->type, RV_ELEM_SERVICE_TASK);
  assert_string_equal(n->adapter, "payroll");
  assert_int_equal(n->retries, 5);
  assert_string_equal(n->retry_backoff, "PT1M");
  assert_true(n->mi);
  assert_true(n->mi_sequential);
  assert_string_equal(n->mi_collection, "dependents");
  assert_string_equal(n->mi_element_var, "dep");
  assert_string_equal(n->mi_output_collection, "payments");
  assert_string_equal(n->mi_output_element, "payment");
  assert_string_equal(n->mi_completion, "nrOfCompletedInstances >= 2");

  n = node(m, "send");
  assert_int_equal(n->retries, 3);
  assert_string_equal(n->retry_backoff, "PT10S");
  assert_false(n->mi);

  n = node(m, "wait_docs");
  assert_int_equal(n->type, RV_ELEM_INTERMEDIATE_CATCH);
  assert_int_equal(n->ev, RV_EV_MESSAGE);
  assert_string_equal(n->ref_name, "documents-received");
  assert_string_equal(n->correlation_key, "national_id");   /* own key wins */
  n = node(m, "wait_time");
  assert_int_equal(n->timer_kind, RV_TIMER_DATE);
  assert_string_equal(n->timer_expr, "2026-03-21T10:00:00Z");

  n = node(m, "sub");
  assert_int_equal(n->type, RV_ELEM_SUB_PROCESS);
  assert_int_equal(n->n_children, 4);      /* start, recv, call, end */
  assert_int_equal(n->n_event_subs, 1);
  assert_string_equal(m->nodes[n->event_subs[0]].id, "sub_evsub");
  assert_int_equal(n->n_boundaries, 1);
  int sub = rv_model_find_node(m, "sub");
  n = node(m, "recv");
  assert_int_equal(n->scope, sub);
  assert_int_equal(n->ev, RV_EV_MESSAGE);
  assert_string_equal(n->ref_name, "documents-received");
  assert_string_equal(n->correlation_key, "case_id");       /* from <message rv:correlationKey> */
  n = node(m, "call");
  assert_string_equal(n->called_element, "child");
  assert_int_equal(n->n_inputs, 1);
  n = node(m, "sub_evsub");
  assert_true(n->triggered_by_event);
  assert_int_equal(n->scope, sub);
  n = node(m, "sub_evstart");
  assert_false(n->interrupting);
  assert_int_equal(n->ev, RV_EV_SIGNAL);
  assert_string_equal(n->ref_name, "law-changed");
  assert_int_equal(n->scope, rv_model_find_node(m, "sub_evsub"));

  n = node(m, "b_err");
  assert_int_equal(n->ev, RV_EV_ERROR);
  assert_string_equal(n->ref_name, "REJECTED");
  assert_true(n->interrupting);
  n = node(m, "reject_end");
  assert_int_equal(n->n_in, 2);
  assert_string_equal(m->flows[n->in[0]].id, "f_no");      /* document order */
  assert_string_equal(m->flows[n->in[1]].id, "f9");

  assert_int_equal(node(m, "par")->type, RV_ELEM_PARALLEL_GATEWAY);
  assert_int_equal(node(m, "incl")->type, RV_ELEM_INCLUSIVE_GATEWAY);
  assert_int_equal(node(m, "evgw")->type, RV_ELEM_EVENT_BASED_GATEWAY);
  assert_int_equal(node(m, "manual")->type, RV_ELEM_MANUAL_TASK);
  assert_int_equal(node(m, "rule")->type, RV_ELEM_BUSINESS_RULE_TASK);
  assert_int_equal(node(m, "plain")->type, RV_ELEM_TASK);
  assert_string_equal(node(m, "inline")->script, "total = amount * 2\nreturn total");
  assert_int_equal(node(m, "done")->ev, RV_EV_TERMINATE);
  assert_int_equal(node(m, "evstart")->ev, RV_EV_MESSAGE);
  assert_int_equal(node(m, "c_start")->timer_kind, RV_TIMER_CYCLE);
  assert_int_equal(node(m, "c_start")->process, 1);
  assert_int_equal(node(m, "c_end")->ev, RV_EV_SIGNAL);

  rv_model_free(m);
  rv_diags_fini(&d);
}

/*--- prefixes ------------------------------------------------------------*/

static char *small_doc(const char *pfx){
  /* pfx "" means the BPMN namespace is the default namespace */
  const char *c = *pfx ? ":" : "";
  return rv_asprintf(
    "<?xml version=\"1.0\"?>\n"
    "<%s%sdefinitions xmlns%s%s=\"" RV_NS_BPMN "\" " NS_DECLS ">\n"
    "<%s%sprocess id=\"p\" isExecutable=\"true\">\n"
    "<%s%sstartEvent id=\"s\"/>\n"
    "<%s%ssequenceFlow id=\"f\" sourceRef=\"s\" targetRef=\"u\"/>\n"
    "<%s%suserTask id=\"u\" rv:candidateGroups=\"g\"/>\n"
    "<%s%ssequenceFlow id=\"f2\" sourceRef=\"u\" targetRef=\"e\"/>\n"
    "<%s%sendEvent id=\"e\"/>\n"
    "</%s%sprocess>\n"
    "</%s%sdefinitions>\n",
    pfx, c, c, pfx, pfx, c, pfx, c, pfx, c, pfx, c, pfx, c, pfx, c, pfx, c, pfx, c);
}

static void test_prefixes(void **state){
  const char *pfx[] = { "bpmn", "bpmn2", "semantic", "" };
  (void)state;
  for (size_t i = 0; i < sizeof pfx / sizeof pfx[0]; i++) {
    rv_diags d;
    char *xml = small_doc(pfx[i]);
    rv_model *m;
    rv_diags_init(&d);
    m = parse_ok(xml, &d);
    rv_model_validate(m, &d);
    assert_int_equal(d.n, 0);
    assert_int_equal(m->n_nodes, 3);
    assert_int_equal(m->n_flows, 2);
    assert_int_equal(node(m, "u")->line, 6);
    assert_string_equal(node(m, "u")->candidate_groups, "g");
    assert_int_equal(m->processes[0].n_children, 3);
    rv_model_free(m);
    rv_diags_fini(&d);
    rv_free(xml);
  }
}

static void test_wrong_namespace_is_error(void **state){
  rv_diags d;
  (void)state;
  rv_diags_init(&d);
  parse_fail("<definitions xmlns=\"http://example.com/not-bpmn\"><process id=\"p\"/></definitions>", &d);
  expect_diag(&d, RV_DIAG_ERROR, 1, "not BPMN");
  rv_diags_fini(&d);
}

/*--- encodings -----------------------------------------------------------*/

/* UTF-8 -> UTF-16LE with BOM (BMP only, enough for the test). */
static char *to_utf16le(const char *s, size_t *len){
  size_t n = strlen(s);
  unsigned char *o = rv_malloc(2 * n + 2), *p = o;
  const unsigned char *u = (const unsigned char *)s;
  *p++ = 0xFF; *p++ = 0xFE;
  while (*u) {
    unsigned cp;
    if (*u < 0x80) cp = *u++;
    else if ((*u & 0xE0) == 0xC0) { cp = (unsigned)(*u & 0x1F) << 6 | (u[1] & 0x3F); u += 2; }
    else { cp = (unsigned)(*u & 0x0F) << 12 | (unsigned)(u[1] & 0x3F) << 6 | (u[2] & 0x3F); u += 3; }
    *p++ = (unsigned char)(cp & 0xFF);
    *p++ = (unsigned char)(cp >> 8);
  }
  *len = (size_t)(p - o);
  return (char *)o;
}

static void test_utf16_bom(void **state){
  const char *xml =
    "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"
    "<bpmn:definitions xmlns:bpmn=\"" RV_NS_BPMN "\" " NS_DECLS ">\n"
    "<bpmn:process id=\"p\" isExecutable=\"true\">\n"
    "<bpmn:startEvent id=\"s\" name=\"شروع\" rv:status=\"ثبت شد\"/>\n"
    "</bpmn:process></bpmn:definitions>\n";
  size_t len;
  char *u16 = to_utf16le(xml, &len);
  rv_diags d;
  rv_model *m = NULL;
  (void)state;
  rv_diags_init(&d);
  assert_int_equal(rv_model_parse_memory(u16, len, "u16.bpmn", &d, &m), RV_OK);
  assert_string_equal(node(m, "s")->name, "شروع");
  assert_string_equal(node(m, "s")->status, "ثبت شد");
  assert_int_equal(node(m, "s")->line, 4);
  rv_model_free(m);
  rv_diags_fini(&d);
  rv_free(u16);
}

static void test_latin1(void **state){
  const char *xml =
    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n"
    "<definitions xmlns=\"" RV_NS_BPMN "\">\n"
    "<process id=\"p\"><startEvent id=\"s\" name=\"caf\xe9\"/></process></definitions>\n";
  rv_diags d;
  rv_model *m;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  assert_string_equal(node(m, "s")->name, "caf\xc3\xa9");
  assert_false(m->processes[0].executable);
  rv_model_free(m);
  rv_diags_fini(&d);
}

/*--- vendors -------------------------------------------------------------*/

static void test_camunda(void **state){
  const char *xml =
    "<?xml version=\"1.0\"?>\n"
    "<bpmn:definitions xmlns:bpmn=\"" RV_NS_BPMN "\" xmlns:camunda=\"" RV_NS_CAMUNDA "\">\n"
    "<bpmn:process id=\"p\" isExecutable=\"true\" camunda:historyTimeToLive=\"180\">\n"
    "<bpmn:startEvent id=\"s\" camunda:asyncBefore=\"true\"/>\n"
    "<bpmn:sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"u\"/>\n"
    "<bpmn:userTask id=\"u\" camunda:candidateGroups=\"clerk\" camunda:assignee=\"ali\"\n"
    "    camunda:dueDate=\"P2D\" camunda:formKey=\"embedded:x\" camunda:asyncBefore=\"true\">\n"
    "  <bpmn:extensionElements><camunda:formData>\n"
    "    <camunda:formField id=\"amount\" label=\"Amount\" type=\"long\">\n"
    "      <camunda:validation><camunda:constraint name=\"required\"/></camunda:validation>\n"
    "    </camunda:formField>\n"
    "    <camunda:formField id=\"kind\" label=\"Kind\" type=\"enum\">\n"
    "      <camunda:value id=\"x\" name=\"X\"/><camunda:value id=\"y\" name=\"Y\"/>\n"
    "    </camunda:formField>\n"
    "  </camunda:formData><camunda:properties/></bpmn:extensionElements>\n"
    "</bpmn:userTask>\n"
    "<bpmn:sequenceFlow id=\"f2\" sourceRef=\"u\" targetRef=\"t\"/>\n"
    "<bpmn:serviceTask id=\"t\" camunda:type=\"external\" camunda:topic=\"payroll\" camunda:resultVariable=\"r\">\n"
    "  <bpmn:multiInstanceLoopCharacteristics camunda:collection=\"items\" camunda:elementVariable=\"it\"/>\n"
    "</bpmn:serviceTask>\n"
    "<bpmn:sequenceFlow id=\"f3\" sourceRef=\"t\" targetRef=\"g\"/>\n"
    "<bpmn:exclusiveGateway id=\"g\" default=\"f5\"/>\n"
    "<bpmn:sequenceFlow id=\"f4\" sourceRef=\"g\" targetRef=\"e\">\n"
    "  <bpmn:conditionExpression>${amount > 5}</bpmn:conditionExpression></bpmn:sequenceFlow>\n"
    "<bpmn:sequenceFlow id=\"f5\" sourceRef=\"g\" targetRef=\"e\"/>\n"
    "<bpmn:endEvent id=\"e\"/>\n"
    "</bpmn:process></bpmn:definitions>\n";
  rv_diags d;
  rv_model *m;
  const rv_node *n;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  n = node(m, "u");
  assert_string_equal(n->candidate_groups, "clerk");
  assert_string_equal(n->assignee, "ali");
  assert_string_equal(n->due, "P2D");
  assert_int_equal(n->n_fields, 2);
  assert_string_equal(n->fields[0].id, "amount");
  assert_string_equal(n->fields[0].type, "long");
  assert_true(n->fields[0].required);
  assert_int_equal(n->fields[1].n_values, 2);
  assert_string_equal(n->fields[1].values[0], "x");
  n = node(m, "t");
  assert_string_equal(n->adapter, "payroll");
  assert_string_equal(n->result_var, "r");
  assert_string_equal(n->mi_collection, "items");
  assert_string_equal(n->mi_element_var, "it");
  assert_false(n->mi_sequential);
  assert_string_equal(flow(m, "f4")->condition, "${amount > 5}");
  expect_diag(&d, RV_DIAG_WARNING, 24, "JUEL expression not supported, write Lua");
  expect_diag(&d, RV_DIAG_WARNING, 4, "ignored camunda:asyncBefore");
  assert_int_equal(count_diag(&d, "camunda:asyncBefore"), 1);   /* once per distinct name */
  /* libxml2 numbers an element by the line its start tag ends on */
  expect_diag(&d, RV_DIAG_WARNING, 7, "ignored camunda:formKey");
  expect_diag(&d, RV_DIAG_WARNING, 3, "ignored camunda:historyTimeToLive");
  expect_diag(&d, RV_DIAG_WARNING, 15, "ignored camunda:properties");
  assert_int_equal(d.n_errors, 0);
  rv_model_free(m);
  rv_diags_fini(&d);
}

static void test_zeebe(void **state){
  const char *xml =
    "<?xml version=\"1.0\"?>\n"
    "<bpmn:definitions xmlns:bpmn=\"" RV_NS_BPMN "\" xmlns:zeebe=\"" RV_NS_ZEEBE "\"\n"
    "    xmlns:modeler=\"http://camunda.org/schema/modeler/1.0\" modeler:executionPlatform=\"Camunda Cloud\">\n"
    "<bpmn:message id=\"m1\" name=\"paid\"><bpmn:extensionElements>\n"
    "  <zeebe:subscription correlationKey=\"=order_id\"/></bpmn:extensionElements></bpmn:message>\n"
    "<bpmn:process id=\"p\" isExecutable=\"true\">\n"
    "<bpmn:startEvent id=\"s\"/>\n"
    "<bpmn:sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/>\n"
    "<bpmn:serviceTask id=\"t\"><bpmn:extensionElements>\n"
    "  <zeebe:taskDefinition type=\"sms\" retries=\"7\"/>\n"
    "  <zeebe:ioMapping><zeebe:input source=\"=applicant.mobile\" target=\"to\"/>\n"
    "    <zeebe:output source=\"=status\" target=\"sms_status\"/></zeebe:ioMapping>\n"
    "  <zeebe:taskHeaders><zeebe:header key=\"a\" value=\"b\"/></zeebe:taskHeaders>\n"
    "  </bpmn:extensionElements>\n"
    "  <bpmn:multiInstanceLoopCharacteristics isSequential=\"true\"><bpmn:extensionElements>\n"
    "    <zeebe:loopCharacteristics inputCollection=\"=dependents\" inputElement=\"dep\"\n"
    "       outputCollection=\"results\" outputElement=\"=dep.share\"/>\n"
    "  </bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>\n"
    "</bpmn:serviceTask>\n"
    "<bpmn:sequenceFlow id=\"f2\" sourceRef=\"t\" targetRef=\"u\"/>\n"
    "<bpmn:userTask id=\"u\"><bpmn:extensionElements>\n"
    "  <zeebe:assignmentDefinition candidateGroups=\"clerk\" assignee=\"=initiator\"/>\n"
    "  <zeebe:formDefinition formKey=\"x\"/></bpmn:extensionElements></bpmn:userTask>\n"
    "<bpmn:sequenceFlow id=\"f3\" sourceRef=\"u\" targetRef=\"c\"/>\n"
    "<bpmn:callActivity id=\"c\"><bpmn:extensionElements>\n"
    "  <zeebe:calledElement processId=\"child\" propagateAllChildVariables=\"false\"/>\n"
    "</bpmn:extensionElements></bpmn:callActivity>\n"
    "<bpmn:sequenceFlow id=\"f4\" sourceRef=\"c\" targetRef=\"r\"/>\n"
    "<bpmn:receiveTask id=\"r\" messageRef=\"m1\"/>\n"
    "<bpmn:sequenceFlow id=\"f5\" sourceRef=\"r\" targetRef=\"e\"/>\n"
    "<bpmn:endEvent id=\"e\"/>\n"
    "</bpmn:process></bpmn:definitions>\n";
  rv_diags d;
  rv_model *m;
  const rv_node *n;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  n = node(m, "t");
  assert_string_equal(n->adapter, "sms");
  assert_int_equal(n->retries, 7);
  assert_int_equal(n->n_inputs, 1);
  assert_string_equal(n->inputs[0].target, "to");
  assert_string_equal(n->inputs[0].expr, "applicant.mobile");
  assert_int_equal(n->n_outputs, 1);
  assert_true(n->mi && n->mi_sequential);
  assert_string_equal(n->mi_collection, "dependents");
  assert_string_equal(n->mi_element_var, "dep");
  assert_string_equal(n->mi_output_collection, "results");
  assert_string_equal(n->mi_output_element, "dep.share");
  n = node(m, "u");
  assert_string_equal(n->candidate_groups, "clerk");
  assert_string_equal(n->assignee, "initiator");
  assert_string_equal(node(m, "c")->called_element, "child");
  n = node(m, "r");
  assert_int_equal(n->ev, RV_EV_MESSAGE);
  assert_string_equal(n->ref_name, "paid");
  assert_string_equal(n->correlation_key, "order_id");
  expect_diag(&d, RV_DIAG_WARNING, 5, "FEEL expression taken as Lua");
  expect_diag(&d, RV_DIAG_WARNING, 13, "ignored zeebe:taskHeaders");
  expect_diag(&d, RV_DIAG_WARNING, 23, "ignored zeebe:formDefinition");
  assert_int_equal(d.n_errors, 0);
  rv_model_free(m);
  rv_diags_fini(&d);
}

static void test_flowable(void **state){
  const char *xml =
    "<definitions xmlns=\"" RV_NS_BPMN "\" xmlns:flowable=\"" RV_NS_FLOWABLE "\">\n"
    "<process id=\"p\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\"/><sequenceFlow id=\"f\" sourceRef=\"s\" targetRef=\"u\"/>\n"
    "<userTask id=\"u\" flowable:candidateGroups=\"g1,g2\" flowable:dueDate=\"P1D\">\n"
    "<extensionElements><flowable:formProperty id=\"ok\" name=\"OK?\" type=\"boolean\" required=\"true\"/>\n"
    "</extensionElements></userTask></process></definitions>\n";
  rv_diags d;
  rv_model *m;
  const rv_node *n;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  n = node(m, "u");
  assert_string_equal(n->candidate_groups, "g1,g2");
  assert_string_equal(n->due, "P1D");
  assert_int_equal(n->n_fields, 1);
  assert_string_equal(n->fields[0].label, "OK?");
  assert_true(n->fields[0].required);
  rv_model_free(m);
  rv_diags_fini(&d);
}

/*--- structural errors ---------------------------------------------------*/

#define HEAD "<definitions xmlns=\"" RV_NS_BPMN "\" " NS_DECLS ">"

static void test_errors(void **state){
  static const struct { const char *xml; int line; const char *msg; } cases[] = {
    { HEAD "<process id=\"p\"><startEvent id=\"a\"/>\n<task id=\"a\"/></process></definitions>",
      2, "duplicate id 'a'" },
    { HEAD "<message id=\"m\"/></definitions>", 1, "no <process>" },
    { HEAD "<process id=\"p\">\n<complexGateway id=\"c\"/></process></definitions>",
      2, "unsupported element 'complexGateway'" },
    { HEAD "<process id=\"p\">\n<task id=\"t\"><standardLoopCharacteristics/></task></process></definitions>",
      2, "unsupported element 'standardLoopCharacteristics'" },
    { HEAD "<process id=\"p\">\n<startEvent id=\"s\"><conditionalEventDefinition/></startEvent></process></definitions>",
      2, "unsupported element 'conditionalEventDefinition'" },
    { HEAD "<process id=\"p\">\n<scriptTask id=\"s\" scriptFormat=\"groovy\"><script>x</script></scriptTask></process></definitions>",
      2, "script format 'groovy' not supported" },
    { HEAD "<process id=\"p\">\n<scriptTask id=\"s\"/></process></definitions>",
      2, "neither a <script> nor rv:function" },
    { HEAD "<process id=\"p\"><startEvent id=\"s\"/>\n<sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"x\"/></process></definitions>",
      2, "sequence flow 'f1' targetRef 'x' names no element" },
    { HEAD "<process id=\"p\">\n<intermediateCatchEvent id=\"c\"><messageEventDefinition messageRef=\"nope\"/></intermediateCatchEvent></process></definitions>",
      2, "dangling reference: messageRef 'nope'" },
    { HEAD "<process id=\"p\"><task id=\"t\"/>\n<boundaryEvent id=\"b\" attachedToRef=\"zz\"><timerEventDefinition/></boundaryEvent></process></definitions>",
      2, "attachedToRef 'zz' names no element" },
    { HEAD "<process id=\"p\"><startEvent id=\"s\"/><task id=\"t\"/>\n<exclusiveGateway id=\"g\" default=\"f\"/>"
      "<sequenceFlow id=\"f\" sourceRef=\"s\" targetRef=\"t\"/></process></definitions>",
      2, "default flow 'f' of 'g' is not one of its outgoing" },
    { HEAD "<process id=\"p\"><task id=\"t\"/><subProcess id=\"sp\"><task id=\"in\"/></subProcess>\n"
      "<sequenceFlow id=\"f\" sourceRef=\"t\" targetRef=\"in\"/></process></definitions>",
      2, "different scopes" },
    { HEAD "<process id=\"p\">\n<userTask id=\"u\"><extensionElements><rv:field id=\"x\" type=\"money\"/></extensionElements></userTask></process></definitions>",
      2, "unknown type 'money'" },
    { HEAD "<process id=\"p\">\n<serviceTask id=\"s\" rv:retries=\"many\"/></process></definitions>",
      2, "rv:retries" },
    { HEAD "<process id=\"p\">\n<task id=\"t\" rv:sms=\"x\" rv:smsRetries=\"0\"/></process></definitions>",
      2, "rv:smsRetries of 't' must be a whole number of attempts, 1 or more" },
    { HEAD "<process id=\"p\">\n<intermediateCatchEvent id=\"c\"><timerEventDefinition/><signalEventDefinition/></intermediateCatchEvent></process></definitions>",
      2, "more than one event definition" },
    { HEAD "<process id=\"p\">\n<task id=\"t\"><timerEventDefinition/></task></process></definitions>",
      2, "unsupported element 'timerEventDefinition'" },
    { HEAD "<process id=\"p\">\n<boundaryEvent id=\"b\"><timerEventDefinition/></boundaryEvent></process></definitions>",
      2, "boundary event 'b' has no attachedToRef" },
    { "<definitions xmlns=\"" RV_NS_BPMN "\">\n<process id=\"p\">\n<task id=\"t\">\n</process></definitions>",
      4, "mismatch" },
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rv_diags d;
    rv_diags_init(&d);
    parse_fail(cases[i].xml, &d);
    expect_diag(&d, RV_DIAG_ERROR, cases[i].line, cases[i].msg);
    rv_diags_fini(&d);
  }
}

static void test_warnings(void **state){
  const char *xml = HEAD
    "<process id=\"p\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\" rv:colour=\"red\"/>\n"
    "<sequenceFlow id=\"f\" sourceRef=\"s\" targetRef=\"t\"/>\n"
    "<task id=\"t\"><dataInputAssociation/><extensionElements><rv:bogus/></extensionElements></task>\n"
    "</process></definitions>";
  rv_diags d;
  rv_model *m;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  expect_diag(&d, RV_DIAG_WARNING, 2, "unknown ravand extension 'rv:colour'");
  expect_diag(&d, RV_DIAG_WARNING, 4, "unknown ravand extension 'rv:bogus'");
  expect_diag(&d, RV_DIAG_WARNING, 4, "ignored element 'dataInputAssociation'");
  rv_model_free(m);
  rv_diags_fini(&d);
}

/* rv:smsRetries / rv:smsRetryBackoff: the SMS an element sends, retried
** as the element says; without rv:sms they are a warning, a bad duration
** an error with its line. */
static void test_sms_policy(void **state){
  const char *xml = HEAD
    "<process id=\"p\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\" rv:sms=\"ثبت شد\" rv:smsRetries=\"8\" rv:smsRetryBackoff=\"PT5M\"/>\n"
    "<sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/>\n"
    "<task id=\"t\" rv:sms=\"x\"/>\n"
    "<sequenceFlow id=\"f2\" sourceRef=\"t\" targetRef=\"u\"/>\n"
    "<task id=\"u\" rv:smsRetries=\"2\"/>\n"
    "<sequenceFlow id=\"f3\" sourceRef=\"u\" targetRef=\"v\"/>\n"
    "<task id=\"v\" rv:sms=\"y\" rv:smsRetryBackoff=\"soon\"/>\n"
    "<sequenceFlow id=\"f4\" sourceRef=\"v\" targetRef=\"e\"/><endEvent id=\"e\"/>\n"
    "</process></definitions>";
  rv_diags d;
  rv_model *m;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  assert_int_equal(node(m, "s")->sms_retries, 8);
  assert_string_equal(node(m, "s")->sms_retry_backoff, "PT5M");
  assert_int_equal(node(m, "t")->sms_retries, -1);          /* the defaults apply */
  assert_null(node(m, "t")->sms_retry_backoff);
  rv_model_validate(m, &d);
  expect_diag(&d, RV_DIAG_WARNING, 6, "'u' has rv:smsRetries or rv:smsRetryBackoff but no rv:sms");
  expect_diag(&d, RV_DIAG_ERROR, 8, "rv:smsRetryBackoff of 'v': 'soon' is not an ISO 8601 duration");
  assert_int_equal(d.n_errors, 1);
  rv_model_free(m);
  rv_diags_fini(&d);
}

/* loopCardinality: a count instead of a collection; with both, the
** collection decides (a warning); with neither, an error. */
static void test_loop_cardinality(void **state){
  const char *xml = HEAD
    "<process id=\"p\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\"/><sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"a\"/>\n"
    "<userTask id=\"a\"><multiInstanceLoopCharacteristics><loopCardinality>copies + 1</loopCardinality>"
    "</multiInstanceLoopCharacteristics></userTask>\n"
    "<sequenceFlow id=\"f2\" sourceRef=\"a\" targetRef=\"b\"/>\n"
    "<userTask id=\"b\"><multiInstanceLoopCharacteristics rv:collection=\"xs\"><loopCardinality>3</loopCardinality>"
    "</multiInstanceLoopCharacteristics></userTask>\n"
    "<sequenceFlow id=\"f3\" sourceRef=\"b\" targetRef=\"c\"/>\n"
    "<userTask id=\"c\"><multiInstanceLoopCharacteristics/></userTask>\n"
    "<sequenceFlow id=\"f4\" sourceRef=\"c\" targetRef=\"e\"/><endEvent id=\"e\"/>\n"
    "</process></definitions>";
  rv_diags d;
  rv_model *m;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  assert_string_equal(node(m, "a")->mi_cardinality, "copies + 1");
  assert_null(node(m, "a")->mi_collection);
  rv_model_validate(m, &d);
  expect_diag(&d, RV_DIAG_WARNING, 5, "'b' has both a collection and a loopCardinality");
  expect_diag(&d, RV_DIAG_ERROR, 7, "multi-instance 'c' has no collection (set rv:collection) and no loopCardinality");
  assert_int_equal(d.n_errors, 1);
  rv_model_free(m);
  rv_diags_fini(&d);
}

/* Message throw and end events are jobs (the element's rv:adapter, else
** the built-in `message` adapter): valid with their message, and retried
** like a service task by default; without a messageRef an error; other
** definitions a throw event cannot have are still refused. */
static void test_message_throw(void **state){
  const char *xml = HEAD
    "<message id=\"m\" name=\"case-ready\"/>\n"
    "<process id=\"p\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\"/><sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/>\n"
    "<intermediateThrowEvent id=\"t\"><messageEventDefinition messageRef=\"m\"/></intermediateThrowEvent>\n"
    "<sequenceFlow id=\"f2\" sourceRef=\"t\" targetRef=\"u\"/>\n"
    "<intermediateThrowEvent id=\"u\"><messageEventDefinition/></intermediateThrowEvent>\n"
    "<sequenceFlow id=\"f3\" sourceRef=\"u\" targetRef=\"v\"/>\n"
    "<intermediateThrowEvent id=\"v\"><timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition></intermediateThrowEvent>\n"
    "<sequenceFlow id=\"f4\" sourceRef=\"v\" targetRef=\"e\"/>\n"
    "<sequenceFlow id=\"f5\" sourceRef=\"s\" targetRef=\"w\"/>\n"
    "<intermediateThrowEvent id=\"w\" rv:messageTtl=\"soon\"><messageEventDefinition messageRef=\"m\"/></intermediateThrowEvent>\n"
    "<sequenceFlow id=\"f6\" sourceRef=\"w\" targetRef=\"x\"/>\n"
    "<intermediateThrowEvent id=\"x\" rv:messageTtl=\"P1D\" rv:adapter=\"echo\"><messageEventDefinition messageRef=\"m\"/></intermediateThrowEvent>\n"
    "<sequenceFlow id=\"f7\" sourceRef=\"x\" targetRef=\"e\"/>\n"
    "<endEvent id=\"e\" rv:retries=\"5\" rv:messageTtl=\"P7D\"><messageEventDefinition messageRef=\"m\"/></endEvent>\n"
    "</process></definitions>";
  rv_diags d;
  rv_model *m;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  assert_int_equal(node(m, "t")->ev, RV_EV_MESSAGE);
  assert_string_equal(node(m, "t")->ref_name, "case-ready");
  assert_int_equal(node(m, "t")->retries, 3);
  assert_string_equal(node(m, "t")->retry_backoff, "PT10S");
  assert_int_equal(node(m, "e")->ev, RV_EV_MESSAGE);
  assert_int_equal(node(m, "e")->retries, 5);
  assert_string_equal(node(m, "e")->message_ttl, "P7D");
  rv_model_validate(m, &d);
  expect_diag(&d, RV_DIAG_ERROR, 6, "intermediateThrowEvent 'u' has a message event definition without messageRef");
  expect_diag(&d, RV_DIAG_ERROR, 8, "intermediateThrowEvent 'v': timer event definition not supported here");
  expect_diag(&d, RV_DIAG_ERROR, 11, "rv:messageTtl of 'w': 'soon' is not an ISO 8601 duration");
  expect_diag(&d, RV_DIAG_WARNING, 13, "rv:messageTtl of 'x' does nothing");
  assert_int_equal(d.n_errors, 3);
  assert_int_equal(d.n - d.n_errors, 1);   /* the one warning */
  rv_model_free(m);
  rv_diags_fini(&d);
}

/* rv:startableBy (process and start event), start forms, rv:display. */
static void test_portal_attributes(void **state){
  const char *xml = HEAD
    "<message id=\"m\" name=\"req\"/><message id=\"m2\" name=\"feed\"/>\n"
    "<process id=\"p\" isExecutable=\"true\" rv:startableBy=\"applicant, organisation\">\n"
    "<startEvent id=\"s\"><extensionElements><rv:field id=\"mobile\" type=\"string\"/></extensionElements></startEvent>\n"
    "<startEvent id=\"sm\" rv:startableBy=\"applicant\"><messageEventDefinition messageRef=\"m\"/></startEvent>\n"
    "<startEvent id=\"sf\"><messageEventDefinition messageRef=\"m2\"/></startEvent>\n"
    "<userTask id=\"t\" rv:candidateGroups=\"applicant\" rv:display=\"person,final_statuses\"/>\n"
    "<sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/><sequenceFlow id=\"f2\" sourceRef=\"sm\" targetRef=\"t\"/>\n"
    "<sequenceFlow id=\"f3\" sourceRef=\"sf\" targetRef=\"t\"/><sequenceFlow id=\"f4\" sourceRef=\"t\" targetRef=\"e\"/>\n"
    "<endEvent id=\"e\"/>\n"
    "</process>\n"
    "<process id=\"q\" isExecutable=\"true\"><startEvent id=\"qs\"/></process></definitions>";
  rv_diags d;
  rv_model *m;
  const rv_process *p;
  int pi;
  (void)state;
  rv_diags_init(&d);
  m = parse_ok(xml, &d);
  rv_model_validate(m, &d);
  if (d.n != 0) rv_diags_print(&d, "portal", stderr);
  assert_int_equal(d.n_errors, 0);
  p = rv_model_find_process(m, "p");
  pi = rv_model_process_index(m, "p");
  assert_string_equal(p->startable_by, "applicant, organisation");
  assert_string_equal(node(m, "t")->display, "person,final_statuses");
  assert_int_equal(node(m, "s")->n_fields, 1);
  /* the process's list opens its none start event */
  assert_true(rv_model_startable(m, pi, rv_model_find_node(m, "s"), "applicant"));
  assert_true(rv_model_startable(m, pi, rv_model_find_node(m, "s"), "organisation"));
  assert_false(rv_model_startable(m, pi, rv_model_find_node(m, "s"), "operator"));
  assert_false(rv_model_startable(m, pi, rv_model_find_node(m, "s"), "applic"));
  /* a message start only through its own list */
  assert_true(rv_model_startable(m, pi, rv_model_find_node(m, "sm"), "applicant"));
  assert_false(rv_model_startable(m, pi, rv_model_find_node(m, "sm"), "organisation"));
  assert_false(rv_model_startable(m, pi, rv_model_find_node(m, "sf"), "applicant"));
  /* not start events; other processes */
  assert_false(rv_model_startable(m, pi, rv_model_find_node(m, "t"), "applicant"));
  assert_false(rv_model_startable(m, rv_model_process_index(m, "q"), rv_model_find_node(m, "qs"), "applicant"));
  assert_false(rv_model_startable(m, rv_model_process_index(m, "q"), rv_model_find_node(m, "s"), "applicant"));
  rv_model_free(m);
  rv_diags_fini(&d);
}

static void test_entities_rejected(void **state){
  const char *xml =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE d [\n"
    "<!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
    "]>\n"
    "<definitions xmlns=\"" RV_NS_BPMN "\"><process id=\"p\" name=\"&b;\"/></definitions>";
  rv_diags d;
  (void)state;
  rv_diags_init(&d);
  parse_fail(xml, &d);
  expect_diag(&d, RV_DIAG_ERROR, 3, "entity declarations are not allowed");
  rv_diags_fini(&d);
}

static void test_missing_file(void **state){
  rv_diags d;
  rv_model *m = (rv_model *)1;
  (void)state;
  rv_diags_init(&d);
  assert_int_equal(rv_model_parse_file(FIXTURE("no-such-file.bpmn"), &d, &m), RV_IO);
  assert_null(m);
  assert_int_equal(d.n_errors, 1);
  rv_diags_fini(&d);
}

static void test_elem_names(void **state){
  (void)state;
  assert_string_equal(rv_elem_name(RV_ELEM_USER_TASK), "userTask");
  assert_string_equal(rv_elem_name(RV_ELEM_NONE), "?");
  assert_string_equal(rv_elem_name(RV_ELEM_COUNT), "?");
  assert_int_equal(rv_elem_lookup("eventBasedGateway"), RV_ELEM_EVENT_BASED_GATEWAY);
  assert_int_equal(rv_elem_lookup("complexGateway"), RV_ELEM_NONE);
  assert_int_equal(rv_elem_lookup(NULL), RV_ELEM_NONE);
}

static void test_diags_print_sorted(void **state){
  rv_diags d;
  char buf[512] = { 0 };
  FILE *fp = fmemopen(buf, sizeof buf - 1, "w");
  (void)state;
  rv_diags_init(&d);
  rv_diags_add(&d, RV_DIAG_WARNING, 7, "seven %d", 1);
  rv_diags_add(&d, RV_DIAG_ERROR, 3, "three");
  rv_diags_add(&d, RV_DIAG_ERROR, 0, "nowhere");
  rv_diags_add(&d, RV_DIAG_ERROR, 7, "seven %d", 2);
  assert_int_equal(d.n_errors, 3);
  rv_diags_print(&d, "x.bpmn", fp);
  fclose(fp);
  assert_string_equal(buf,
    "x.bpmn: error: nowhere\n"
    "x.bpmn:3: error: three\n"
    "x.bpmn:7: warning: seven 1\n"
    "x.bpmn:7: error: seven 2\n");
  rv_diags_fini(&d);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_full_fixture),
    cmocka_unit_test(test_prefixes),
    cmocka_unit_test(test_wrong_namespace_is_error),
    cmocka_unit_test(test_utf16_bom),
    cmocka_unit_test(test_latin1),
    cmocka_unit_test(test_camunda),
    cmocka_unit_test(test_zeebe),
    cmocka_unit_test(test_flowable),
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_warnings),
    cmocka_unit_test(test_portal_attributes),
    cmocka_unit_test(test_sms_policy),
    cmocka_unit_test(test_loop_cardinality),
    cmocka_unit_test(test_message_throw),
    cmocka_unit_test(test_entities_rejected),
    cmocka_unit_test(test_missing_file),
    cmocka_unit_test(test_elem_names),
    cmocka_unit_test(test_diags_print_sorted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
