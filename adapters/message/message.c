/*
** adapters/message/message.c -- `message`: a BPMN message thrown by an
** intermediate throw or end event without rv:adapter, delivered inside
** this engine (runtime/elements.c send_message writes the job; its input
** is {message, key?, payload}).
**
** After the thrower's command committed, the job reaches invoke(), which
** defers to a zero-delay event (invoke must not block or re-enter the
** engine) and there correlates the message as a command of its own
** (rv_engine_correlate), as POST /v1/messages would: to the oldest instance
** waiting for that name and key, else to a message start event (a new
** instance), else it is buffered for the input's ttl (rv:messageTtl; 0:
** dropped) or the engine's message TTL. Its message
** id is "throw:" + the job's idempotency key, so a job run again after a
** crash between the correlation and its answer finds a duplicate: the
** message is delivered once. The answer carries no variables back to the
** thrower. A correlation that fails (the store) is a technical failure:
** retried with the element's rv:retries, then an incident on the thrower.
*/
#include <string.h>
#include "adapter.h"
#include "common/util.h"
#include "runtime/engine.h"
#include "core/json.h"
#include "core/mem.h"

static void msg_run(evutil_socket_t fd, short what, void *p){
  rv_job_copy *j = p;
  rv_engine *e = rv_adapters_engine(j->base);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(j->input, "message");
  const cJSON *key = cJSON_GetObjectItemCaseSensitive(j->input, "key");
  const cJSON *payload = cJSON_GetObjectItemCaseSensitive(j->input, "payload");
  const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(j->input, "ttl");
  char *id = rv_asprintf("throw:%s", j->key);
  rv_err err;
  (void)fd; (void)what;
  memset(&err, 0, sizeof err);
  if (e == NULL) {
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, "message adapter: no engine bound to this loop");
  } else if (!cJSON_IsString(name) || !*name->valuestring ||
             (key != NULL && !cJSON_IsString(key)) || (payload != NULL && !cJSON_IsObject(payload)) ||
             (ttl != NULL && (!cJSON_IsNumber(ttl) || !(ttl->valuedouble >= 0 && ttl->valuedouble <= 1e15)))) {
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, "message adapter: the input must be"
            " {message: text, key?: text, payload?: object, ttl?: milliseconds}");
  } else if (rv_engine_correlate(e, name->valuestring, key ? key->valuestring : NULL, payload,
                                 id, ttl ? (int64_t)ttl->valuedouble : -1, NULL, &err) != RV_OK) {
    char msg[600];
    snprintf(msg, sizeof msg, "message '%s' not delivered: %s", name->valuestring, err.msg);
    j->done(j->arg, RV_JOB_FAILED, NULL, NULL, msg);
  } else {
    j->done(j->arg, RV_JOB_OK, NULL, NULL, NULL);
  }
  rv_free(id);
  rv_job_copy_free(j);
}

static rv_status message_invoke(void *self, struct event_base *base, const rv_job_info *job,
                                rv_adapter_done_fn done, void *arg){
  (void)self;
  return rv_job_defer(base, job, done, arg, msg_run);
}

const rv_adapter_ops rv_adapter_message = { .name = "message", .invoke = message_invoke };
