/*
** adapters/test/test_adapters.c -- built-in adapters for tests and demos.
**
**   echo   answers with its input (after one loop turn; inside the command
**          in an engine with cfg.answer_now, as an in-process service
**          -- a JavaDelegate in Camunda -- runs in its caller's transaction)
**   fail   always fails technically ("test adapter: always fails")
**   flaky  fails while attempt <= input.fail_times, then echoes
**   error  throws the BPMN error input.code (default "TEST_ERROR")
**   sms    records the message in memory (rv_test_sms_log) and succeeds;
**          deduplicates on the job key, like a well-behaved gateway.
**          When a gateway is configured, adapters/sms registers the real
**          `sms` adapter, which is found before this one.
**
** Every answer is delivered from a zero-delay libevent callback, never
** from inside invoke(), as the adapter contract requires.
*/
#include <stdbool.h>
#include <string.h>
#include <event2/event.h>
#include "adapter.h"
#include "core/mem.h"
#include "test_adapters.h"

struct pending {
  rv_adapter_done_fn done;
  void          *arg;
  rv_job_outcome outcome;
  cJSON         *result;
  char          *code, *message;
};

static void deliver(evutil_socket_t fd, short what, void *p){
  struct pending *pd = p;
  (void)fd; (void)what;
  pd->done(pd->arg, pd->outcome, pd->result, pd->code, pd->message);
  rv_free(pd->code);
  rv_free(pd->message);
  rv_free(pd);
}

static rv_status answer(struct event_base *base, rv_adapter_done_fn done, void *arg,
                        rv_job_outcome o, cJSON *result, const char *code, const char *msg){
  struct pending *pd = rv_calloc(1, sizeof *pd);
  struct timeval tv = {0, 0};
  pd->done = done; pd->arg = arg; pd->outcome = o; pd->result = result;
  pd->code = rv_strdup(code); pd->message = rv_strdup(msg);
  if (event_base_once(base, -1, EV_TIMEOUT, deliver, pd, &tv) != 0) {
    cJSON_Delete(result); rv_free(pd->code); rv_free(pd->message); rv_free(pd);
    return RV_IO;
  }
  return RV_OK;
}

static rv_status echo_invoke(void *self, struct event_base *base, const rv_job_info *job,
                             rv_adapter_done_fn done, void *arg){
  (void)self;
  return answer(base, done, arg, RV_JOB_OK,
                job->input ? cJSON_Duplicate(job->input, 1) : NULL, NULL, NULL);
}
static bool echo_now(void *self, struct rv_engine *e, const rv_job_info *job, rv_answer *a){
  (void)self; (void)e;
  a->outcome = RV_JOB_OK;
  a->result = job->input ? cJSON_Duplicate(job->input, 1) : NULL;
  return true;
}
static rv_status fail_invoke(void *self, struct event_base *base, const rv_job_info *job,
                             rv_adapter_done_fn done, void *arg){
  (void)self; (void)job;
  return answer(base, done, arg, RV_JOB_FAILED, NULL, NULL, "test adapter: always fails");
}
static rv_status flaky_invoke(void *self, struct event_base *base, const rv_job_info *job,
                              rv_adapter_done_fn done, void *arg){
  const cJSON *n = job->input ? cJSON_GetObjectItemCaseSensitive(job->input, "fail_times") : NULL;
  int times = cJSON_IsNumber(n) ? n->valueint : 1;
  (void)self;
  if (job->attempt <= times)
    return answer(base, done, arg, RV_JOB_FAILED, NULL, NULL, "test adapter: flaky failure");
  return answer(base, done, arg, RV_JOB_OK,
                job->input ? cJSON_Duplicate(job->input, 1) : NULL, NULL, NULL);
}
static rv_status error_invoke(void *self, struct event_base *base, const rv_job_info *job,
                              rv_adapter_done_fn done, void *arg){
  const cJSON *c = job->input ? cJSON_GetObjectItemCaseSensitive(job->input, "code") : NULL;
  (void)self;
  return answer(base, done, arg, RV_JOB_BPMN_ERROR, NULL,
                cJSON_IsString(c) ? c->valuestring : "TEST_ERROR", "test adapter: business error");
}

/*--- sms recorder ---*/
#define SMS_MAX 4096
static struct { char *key, *to, *text; } sms_log[SMS_MAX];
static int sms_n;
/* The recorded keys, hashed (open addressing; index + 1, 0 empty): the
** dedupe was a scan of every recorded SMS for each new one, 4,096 string
** compares per SMS once the log was full (a month end sends 50,000). */
#define SMS_SLOTS (2 * SMS_MAX)
static int sms_slot[SMS_SLOTS];

/* The slot of key: where it is, or the empty one where it would go. */
static int *sms_find(const char *key){
  unsigned i = rv_str_hash(key) % SMS_SLOTS;
  while (sms_slot[i] != 0 && strcmp(sms_log[sms_slot[i] - 1].key, key) != 0) i = (i + 1) % SMS_SLOTS;
  return &sms_slot[i];
}

int rv_test_sms_count(void){ return sms_n; }
const char *rv_test_sms_text(int i){ return i >= 0 && i < sms_n ? sms_log[i].text : NULL; }
const char *rv_test_sms_to(int i){ return i >= 0 && i < sms_n ? sms_log[i].to : NULL; }
void rv_test_sms_reset(void){
  for (int i = 0; i < sms_n; i++) {
    rv_free(sms_log[i].key); rv_free(sms_log[i].to); rv_free(sms_log[i].text);
  }
  sms_n = 0;
  memset(sms_slot, 0, sizeof sms_slot);
}

static rv_status sms_invoke(void *self, struct event_base *base, const rv_job_info *job,
                            rv_adapter_done_fn done, void *arg){
  const cJSON *to = job->input ? cJSON_GetObjectItemCaseSensitive(job->input, "to") : NULL;
  const cJSON *tx = job->input ? cJSON_GetObjectItemCaseSensitive(job->input, "text") : NULL;
  const char *key = job->key ? job->key : "";
  int *slot = sms_find(key);
  (void)self;
  if (*slot == 0 && sms_n < SMS_MAX) {            /* not sent before, and room to record it */
    sms_log[sms_n].key = rv_strdup(key);
    sms_log[sms_n].to = rv_strdup(cJSON_IsString(to) ? to->valuestring : "");
    sms_log[sms_n].text = rv_strdup(cJSON_IsString(tx) ? tx->valuestring : "");
    *slot = ++sms_n;
  }
  return answer(base, done, arg, RV_JOB_OK, NULL, NULL, NULL);
}

const rv_adapter_ops rv_adapter_test_echo  = { .name = "echo",  .invoke = echo_invoke,
                                               .answer_now = echo_now };
const rv_adapter_ops rv_adapter_test_fail  = { .name = "fail",  .invoke = fail_invoke };
const rv_adapter_ops rv_adapter_test_flaky = { .name = "flaky", .invoke = flaky_invoke };
const rv_adapter_ops rv_adapter_test_error = { .name = "error", .invoke = error_invoke };
const rv_adapter_ops rv_adapter_test_sms   = { .name = "sms",   .invoke = sms_invoke };
