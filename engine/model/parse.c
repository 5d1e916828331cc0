/*
** model/parse.c -- BPMN 2.0 XML -> rv_model.
**
** This is the only file of ravand that includes libxml2. It reads one
** definitions document, walks its <process> elements and builds the flat
** node/flow arrays of model.h; the xmlDoc is freed before returning, so no
** libxml2 pointer ever escapes.
**
** Invariants and rules:
** - Elements are matched by namespace URI, never by prefix ("bpmn:",
**   "bpmn2:", "semantic:" or a default namespace all work).
** - The parser never expands entities or touches the network
**   (XML_PARSE_NONET, no NOENT/DTDLOAD/HUGE). A DTD that declares any
**   entity is rejected outright (billion laughs, XXE).
** - Every BPMN element inside a process is either executed, tolerated
**   (documentation, lanes, data objects, ...), or reported as an error
**   naming the element and its line. Nothing is silently dropped.
** - Nodes are referred to by index, and m->nodes may move while parsing
**   (it grows), so code here never keeps an rv_node * across a call that
**   may add nodes: it re-reads NODE(P, i).
** - References (sourceRef, attachedToRef, default) are resolved after the
**   whole document has been read, since BPMN allows forward references.
**   messageRef & co. are resolved against root elements collected in a
**   first pass over <definitions>.
** - On any error the partial model is freed and *out is NULL.
*/
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include "core/mem.h"
#include "model/model.h"

#define RV_MAX_XML_BYTES  ((size_t)64 << 20)
#define RV_MAX_XML_DIAGS  20

/*--- Element names -------------------------------------------------------*/

static const char *const elem_names[RV_ELEM_COUNT] = {
  [RV_ELEM_NONE] = "?",
#define RV_ELEMENT(uc, bpmn) [RV_ELEM_##uc] = bpmn,
#include "model/elements.def"
#undef RV_ELEMENT
};

const char *rv_elem_name(rv_elem_type t){
  return (t > RV_ELEM_NONE && t < RV_ELEM_COUNT) ? elem_names[t] : "?";
}

rv_elem_type rv_elem_lookup(const char *local_name){
  if (local_name == NULL) return RV_ELEM_NONE;
  for (int i = 1; i < RV_ELEM_COUNT; i++)
    if (strcmp(elem_names[i], local_name) == 0) return (rv_elem_type)i;
  return RV_ELEM_NONE;
}

/*--- Id map: open addressing, keys owned by the map ----------------------*/

/* K_UNSUP: an element already reported as unsupported; references to it
** are not reported a second time. */
enum { K_NODE, K_FLOW, K_PROC, K_MESSAGE, K_SIGNAL, K_ERROR, K_ESCALATION, K_UNSUP };

typedef struct ident { char *key; int kind; int idx; } ident;
typedef struct idmap { ident *v; size_t cap, n; } idmap;

static size_t hash_str(const char *s){
  size_t h = 1469598103934665603u;
  for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211u; }
  return h;
}

static ident *idmap_slot(const idmap *im, const char *key){
  size_t i;
  if (im->cap == 0) return NULL;
  i = hash_str(key) & (im->cap - 1);
  while (im->v[i].key != NULL && strcmp(im->v[i].key, key) != 0)
    i = (i + 1) & (im->cap - 1);
  return &im->v[i];
}

static const ident *idmap_get(const idmap *im, const char *key){
  const ident *s = idmap_slot(im, key);
  return (s != NULL && s->key != NULL) ? s : NULL;
}

/* Returns false when key is already present. */
static bool idmap_put(idmap *im, const char *key, int kind, int idx){
  ident *s;
  if ((im->n + 1) * 2 > im->cap) {
    idmap old = *im;
    im->cap = old.cap ? old.cap * 2 : 64;
    im->v = rv_calloc(im->cap, sizeof *im->v);
    im->n = 0;
    for (size_t i = 0; i < old.cap; i++) {
      if (old.v[i].key == NULL) continue;
      *idmap_slot(im, old.v[i].key) = old.v[i];
      im->n++;
    }
    rv_free(old.v);
  }
  s = idmap_slot(im, key);
  if (s->key != NULL) return false;
  s->key = rv_strdup(key);
  s->kind = kind;
  s->idx = idx;
  im->n++;
  return true;
}

static void idmap_fini(idmap *im){
  for (size_t i = 0; i < im->cap; i++) rv_free(im->v[i].key);
  rv_free(im->v);
}

/*--- Parser state --------------------------------------------------------*/

typedef struct root_def {      /* <message>, <signal>, <error>, <escalation> */
  int   kind;
  char *value;                 /* name or code the refs resolve to */
  char *corr;                  /* message correlation key (rv:/zeebe:) */
} root_def;

typedef struct pend_flow { char *src, *tgt; int scope, process; } pend_flow;
typedef struct pend_ref  { int node; char *ref; int line; } pend_ref;

typedef struct parser {
  rv_model  *m;
  rv_diags  *d;
  int        errors0;          /* d->n_errors when we started */
  int        cap_nodes, cap_flows, cap_procs;
  idmap      ids;
  root_def  *roots; int n_roots;
  pend_flow *pf;               /* parallel to m->flows, cap_flows long */
  pend_ref  *attach;   int n_attach;
  pend_ref  *defaults; int n_defaults;
  char     **warned;   int n_warned;
  int        n_xml_diags;
} parser;

#define NODE(P, i) (&(P)->m->nodes[(i)])

static void vdiag(parser *P, rv_diag_level lv, int line, const char *fmt, va_list ap){
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  rv_diags_add(P->d, lv, line, "%s", buf);
}

__attribute__((format(printf, 3, 4)))
static void err(parser *P, int line, const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  vdiag(P, RV_DIAG_ERROR, line, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void warn(parser *P, int line, const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  vdiag(P, RV_DIAG_WARNING, line, fmt, ap);
  va_end(ap);
}

/* Growth for int lists without a stored capacity: double at powers of 2. */
static void push_int(int **v, int *n, int x){
  if (*n == 0 || (*n & (*n - 1)) == 0)
    *v = rv_realloc(*v, sizeof **v * (size_t)(*n ? *n * 2 : 1));
  (*v)[(*n)++] = x;
}

static void grow(void **v, int *cap, int need, size_t sz){
  if (need <= *cap) return;
  int nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  *v = rv_realloc(*v, sz * (size_t)nc);
  memset((char *)*v + sz * (size_t)*cap, 0, sz * (size_t)(nc - *cap));
  *cap = nc;
}

/*--- libxml2 helpers -----------------------------------------------------*/

static int line_of(const xmlNode *x){
  long l = xmlGetLineNo(x);
  return (l > 0 && l < INT_MAX) ? (int)l : 0;
}

static bool in_ns(const xmlNs *ns, const char *uri){
  return ns != NULL && ns->href != NULL && strcmp((const char *)ns->href, uri) == 0;
}

static bool is_bpmn(const xmlNode *x){ return in_ns(x->ns, RV_NS_BPMN); }

static bool named(const xmlNode *x, const char *n){
  return strcmp((const char *)x->name, n) == 0;
}

static bool bpmn_named(const xmlNode *x, const char *n){
  return is_bpmn(x) && named(x, n);
}

static const xmlNode *first_elem(const xmlNode *c){
  while (c != NULL && c->type != XML_ELEMENT_NODE) c = c->next;
  return c;
}
#define FOR_ELEMS(c, parent) \
  for (const xmlNode *c = first_elem((parent)->children); c != NULL; c = first_elem(c->next))

/* Returns: new string (unqualified attribute) or NULL, caller frees. */
static char *attr(const xmlNode *x, const char *name){
  xmlChar *v = xmlGetNoNsProp(x, BAD_CAST name);
  char *s = v ? rv_strdup((const char *)v) : NULL;
  xmlFree(v);
  return s;
}

static char *attr_value(const xmlAttr *a){
  xmlChar *v = xmlNodeGetContent((const xmlNode *)a);
  char *s = rv_strdup(v ? (const char *)v : "");
  xmlFree(v);
  return s;
}

static bool attr_is(const xmlNode *x, const char *name, const char *val){
  char *v = attr(x, name);
  bool r = v != NULL && strcmp(v, val) == 0;
  rv_free(v);
  return r;
}

/* Text content with leading/trailing whitespace removed.
** Returns: new string ("" when empty), caller frees. */
static char *text_trim(const xmlNode *x){
  xmlChar *v = xmlNodeGetContent(x);
  const char *s = v ? (const char *)v : "";
  size_t n;
  char *r;
  while (*s && isspace((unsigned char)*s)) s++;
  n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
  r = rv_strndup(s, n);
  xmlFree(v);
  return r;
}

/* Empty strings become NULL. Takes ownership of s. */
static char *nonempty(char *s){
  if (s != NULL && *s == 0) { rv_free(s); return NULL; }
  return s;
}

/* Takes ownership of val. */
static void set_str(char **dst, char *val){
  rv_free(*dst);
  *dst = val;
}

static const char *vendor_of(const xmlNs *ns){
  if (in_ns(ns, RV_NS_CAMUNDA))  return "camunda";
  if (in_ns(ns, RV_NS_ZEEBE))    return "zeebe";
  if (in_ns(ns, RV_NS_FLOWABLE)) return "flowable";
  if (in_ns(ns, RV_NS_ACTIVITI)) return "activiti";
  return NULL;
}

/* One warning per distinct vendor attribute or element per document. */
static void warn_ignored(parser *P, int line, const char *vendor, const char *name){
  char *key = rv_asprintf("%s:%s", vendor, name);
  for (int i = 0; i < P->n_warned; i++)
    if (strcmp(P->warned[i], key) == 0) { rv_free(key); return; }
  warn(P, line, "ignored %s", key);
  P->warned = rv_realloc(P->warned, sizeof *P->warned * (size_t)(P->n_warned + 1));
  P->warned[P->n_warned++] = key;
}

/* Zeebe values are FEEL when they start with '='; we take the rest as Lua.
** Takes ownership of v; returns it (possibly shifted copy). */
static char *feel(parser *P, int line, char *v){
  if (v != NULL && v[0] == '=') {
    char *s = rv_strdup(v + 1);
    warn(P, line, "FEEL expression taken as Lua: '%s'", v);
    rv_free(v);
    return s;
  }
  return v;
}

/* Camunda/Flowable expressions are JUEL ("${x}"); keep text, warn. */
static void juel_check(parser *P, int line, const char *v){
  if (v != NULL && strncmp(v, "${", 2) == 0)
    warn(P, line, "JUEL expression not supported, write Lua: '%s'", v);
}

static bool register_id(parser *P, const char *id, int kind, int idx, int line){
  if (!idmap_put(&P->ids, id, kind, idx)) {
    err(P, line, "duplicate id '%s'", id);
    return false;
  }
  return true;
}

/*--- Root elements (message, signal, error, escalation) -----------------*/

static const char *kind_name(int k){
  switch (k) {
  case K_MESSAGE: return "message";
  case K_SIGNAL: return "signal";
  case K_ERROR: return "error";
  case K_ESCALATION: return "escalation";
  case K_NODE: return "flow node";
  case K_FLOW: return "sequence flow";
  default: return "process";
  }
}

static void parse_root_def(parser *P, const xmlNode *x, int kind){
  int line = line_of(x);
  char *id = attr(x, "id"), *v = NULL, *corr = NULL;
  root_def *r;

  if (id == NULL) { err(P, line, "<%s> without id", (const char *)x->name); return; }
  if (kind == K_ERROR) v = nonempty(attr(x, "errorCode"));
  if (kind == K_ESCALATION) v = nonempty(attr(x, "escalationCode"));
  if (v == NULL) v = nonempty(attr(x, "name"));
  if (v == NULL) v = rv_strdup(id);
  if (kind == K_MESSAGE) {
    xmlChar *ck = xmlGetNsProp(x, BAD_CAST "correlationKey", BAD_CAST RV_NS_RAVAND);
    if (ck != NULL) corr = rv_strdup((const char *)ck);
    xmlFree(ck);
    FOR_ELEMS(e, x) {
      if (!bpmn_named(e, "extensionElements")) continue;
      FOR_ELEMS(z, e) {
        if (in_ns(z->ns, RV_NS_ZEEBE) && named(z, "subscription") && corr == NULL)
          corr = feel(P, line_of(z), nonempty(attr(z, "correlationKey")));
      }
    }
  }
  if (register_id(P, id, kind, P->n_roots, line)) {
    P->roots = rv_realloc(P->roots, sizeof *P->roots * (size_t)(P->n_roots + 1));
    r = &P->roots[P->n_roots++];
    r->kind = kind; r->value = v; r->corr = corr;
  } else {
    rv_free(v); rv_free(corr);
  }
  rv_free(id);
}

/* Resolve a messageRef/signalRef/... Returns the root or NULL (error added). */
static const root_def *resolve_root(parser *P, const char *ref, int kind,
                                    const char *attr_name, int line){
  const ident *e = idmap_get(&P->ids, ref);
  if (e == NULL || e->kind != kind) {
    err(P, line, "dangling reference: %s '%s' names no %s", attr_name, ref, kind_name(kind));
    return NULL;
  }
  return &P->roots[e->idx];
}

/*--- Nodes ---------------------------------------------------------------*/

static bool is_activity(rv_elem_type t){
  switch (t) {
  case RV_ELEM_TASK: case RV_ELEM_USER_TASK: case RV_ELEM_MANUAL_TASK:
  case RV_ELEM_SERVICE_TASK: case RV_ELEM_SEND_TASK: case RV_ELEM_RECEIVE_TASK:
  case RV_ELEM_SCRIPT_TASK: case RV_ELEM_BUSINESS_RULE_TASK:
  case RV_ELEM_SUB_PROCESS: case RV_ELEM_CALL_ACTIVITY:
    return true;
  default:
    return false;
  }
}

static bool is_event(rv_elem_type t){
  return t == RV_ELEM_START_EVENT || t == RV_ELEM_END_EVENT ||
         t == RV_ELEM_INTERMEDIATE_CATCH || t == RV_ELEM_INTERMEDIATE_THROW ||
         t == RV_ELEM_BOUNDARY_EVENT;
}

static int new_node(parser *P, rv_elem_type t, int proc, int scope, int line){
  rv_model *m = P->m;
  rv_node *n;
  grow((void **)&m->nodes, &P->cap_nodes, m->n_nodes + 1, sizeof *m->nodes);
  n = &m->nodes[m->n_nodes];
  memset(n, 0, sizeof *n);
  n->type = t;
  n->line = line;
  n->process = proc;
  n->scope = scope;
  n->default_flow = -1;
  n->attached_to = -1;
  n->interrupting = true;
  n->sms_retries = -1;
  /* also throw and end events: a message one is a job (elements.c) */
  if (t == RV_ELEM_SERVICE_TASK || t == RV_ELEM_SEND_TASK ||
      t == RV_ELEM_INTERMEDIATE_THROW || t == RV_ELEM_END_EVENT) {
    n->retries = 3;
    n->retry_backoff = rv_strdup("PT10S");
  }
  return m->n_nodes++;
}

/* rv: string attributes of flow nodes, by offset in rv_node. */
static const struct { const char *name; size_t off; } rv_str_attrs[] = {
  { "function",       offsetof(rv_node, function) },
  { "resultVariable", offsetof(rv_node, result_var) },
  { "adapter",        offsetof(rv_node, adapter) },
  { "retryBackoff",   offsetof(rv_node, retry_backoff) },
  { "candidateGroups", offsetof(rv_node, candidate_groups) },
  { "assignee",       offsetof(rv_node, assignee) },
  { "branch",         offsetof(rv_node, branch_expr) },
  { "county",         offsetof(rv_node, county_expr) },
  { "due",            offsetof(rv_node, due) },
  { "correlationKey", offsetof(rv_node, correlation_key) },
  { "status",         offsetof(rv_node, status) },
  { "sms",            offsetof(rv_node, sms) },
  { "smsRetryBackoff", offsetof(rv_node, sms_retry_backoff) },
  { "messageTtl",     offsetof(rv_node, message_ttl) },
  { "startableBy",    offsetof(rv_node, startable_by) },
  { "display",        offsetof(rv_node, display) },
};

static char **node_str(rv_node *n, size_t off){ return (char **)(void *)((char *)n + off); }

static bool parse_int(const char *s, int *out){
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != 0 || v < 0 || v > 1000000) return false;
  *out = (int)v;
  return true;
}

/* Takes ownership of val. */
static void rv_attr(parser *P, int ni, const char *name, char *val, int line){
  rv_node *n = NODE(P, ni);
  for (size_t i = 0; i < sizeof rv_str_attrs / sizeof rv_str_attrs[0]; i++) {
    if (strcmp(rv_str_attrs[i].name, name) == 0) {
      set_str(node_str(n, rv_str_attrs[i].off), val);
      return;
    }
  }
  if (strcmp(name, "retries") == 0) {
    if (!parse_int(val, &n->retries))
      err(P, line, "rv:retries of '%s' must be a non-negative integer, not '%s'", n->id, val);
  } else if (strcmp(name, "smsRetries") == 0) {
    if (!parse_int(val, &n->sms_retries) || n->sms_retries < 1)
      err(P, line, "rv:smsRetries of '%s' must be a whole number of attempts, 1 or more, not '%s'",
          n->id, val);
  } else {
    warn(P, line, "unknown ravand extension 'rv:%s'", name);
  }
  rv_free(val);
}

/* camunda:/flowable:/activiti: attributes. Takes ownership of val. */
static void vendor_attr(parser *P, int ni, const char *vendor, const char *name,
                        char *val, int line){
  rv_node *n = NODE(P, ni);
  bool svc = n->type == RV_ELEM_SERVICE_TASK || n->type == RV_ELEM_SEND_TASK ||
             n->type == RV_ELEM_BUSINESS_RULE_TASK;

  if (strcmp(vendor, "zeebe") == 0) {
    warn_ignored(P, line, vendor, name);
  } else if (strcmp(name, "candidateGroups") == 0) {
    set_str(&n->candidate_groups, val); val = NULL;
  } else if (strcmp(name, "assignee") == 0) {
    set_str(&n->assignee, val); val = NULL;
  } else if (strcmp(name, "dueDate") == 0) {
    juel_check(P, line, val);
    set_str(&n->due, val); val = NULL;
  } else if (strcmp(name, "resultVariable") == 0) {
    set_str(&n->result_var, val); val = NULL;
  } else if (svc && strcmp(name, "topic") == 0) {
    set_str(&n->adapter, val); val = NULL;
  } else if (svc && strcmp(name, "type") == 0) {
    if (n->adapter == NULL) { n->adapter = val; val = NULL; }
  } else {
    warn_ignored(P, line, vendor, name);
  }
  rv_free(val);
}

/* Attributes of a flow-node element. */
static void node_attrs(parser *P, int ni, const xmlNode *x){
  int line = line_of(x);
  for (const xmlAttr *a = x->properties; a != NULL; a = a->next) {
    const char *nm = (const char *)a->name, *vendor;
    rv_node *n = NODE(P, ni);
    if (a->ns == NULL) {
      if (strcmp(nm, "attachedToRef") == 0 && n->type == RV_ELEM_BOUNDARY_EVENT) {
        P->attach = rv_realloc(P->attach, sizeof *P->attach * (size_t)(P->n_attach + 1));
        P->attach[P->n_attach++] = (pend_ref){ ni, attr_value(a), line };
      } else if (strcmp(nm, "default") == 0) {
        P->defaults = rv_realloc(P->defaults, sizeof *P->defaults * (size_t)(P->n_defaults + 1));
        P->defaults[P->n_defaults++] = (pend_ref){ ni, attr_value(a), line };
      } else if (strcmp(nm, "cancelActivity") == 0 || strcmp(nm, "isInterrupting") == 0) {
        char *v = attr_value(a);
        n->interrupting = strcmp(v, "false") != 0 && strcmp(v, "0") != 0;
        rv_free(v);
      } else if (strcmp(nm, "triggeredByEvent") == 0) {
        char *v = attr_value(a);
        n->triggered_by_event = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        rv_free(v);
      } else if (strcmp(nm, "calledElement") == 0) {
        set_str(&n->called_element, nonempty(attr_value(a)));
      } else if (strcmp(nm, "messageRef") == 0 &&
                 (n->type == RV_ELEM_RECEIVE_TASK || n->type == RV_ELEM_SEND_TASK)) {
        char *ref = attr_value(a);
        const root_def *r = resolve_root(P, ref, K_MESSAGE, "messageRef", line);
        if (r != NULL) {
          set_str(&n->ref_name, rv_strdup(r->value));
          if (n->type == RV_ELEM_RECEIVE_TASK) n->ev = RV_EV_MESSAGE;
          if (n->correlation_key == NULL) n->correlation_key = rv_strdup(r->corr);
        }
        rv_free(ref);
      } else if (strcmp(nm, "scriptFormat") == 0) {
        char *v = attr_value(a);
        if (*v && strcasecmp(v, "lua") != 0)
          err(P, line, "script format '%s' not supported (only Lua)", v);
        rv_free(v);
      }
      /* id, name, isForCompensation, startQuantity, implementation, ...:
      ** id/name are read by the caller, the rest have no effect here. */
    } else if (in_ns(a->ns, RV_NS_RAVAND)) {
      rv_attr(P, ni, nm, attr_value(a), line);
    } else if ((vendor = vendor_of(a->ns)) != NULL) {
      vendor_attr(P, ni, vendor, nm, attr_value(a), line);
    }
    /* any other foreign namespace: ignored silently */
  }
}

/*--- Extension elements --------------------------------------------------*/

static void add_mapping(rv_mapping **v, int *n, char *target, char *expr, int line){
  *v = rv_realloc(*v, sizeof **v * (size_t)(*n + 1));
  (*v)[*n] = (rv_mapping){ target, expr, line };
  (*n)++;
}

static bool field_type_ok(const char *t){
  static const char *const ok[] = { "string", "long", "boolean", "date", "enum", "json" };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strcmp(t, ok[i]) == 0) return true;
  return false;
}

/* Returns: pointer to a new zeroed field appended to the node. */
static rv_field *add_field(parser *P, int ni, int line){
  rv_node *n = NODE(P, ni);
  rv_field *f;
  n->fields = rv_realloc(n->fields, sizeof *n->fields * (size_t)(n->n_fields + 1));
  f = &n->fields[n->n_fields++];
  memset(f, 0, sizeof *f);
  f->line = line;
  return f;
}

static void field_value(rv_field *f, char *v){
  f->values = rv_realloc(f->values, sizeof *f->values * (size_t)(f->n_values + 1));
  f->values[f->n_values++] = v;
}

static void finish_field(parser *P, rv_field *f){
  if (f->id == NULL) {
    err(P, f->line, "form field without id");
    f->id = rv_strdup("");
  }
  if (f->type == NULL) f->type = rv_strdup("string");
  if (!field_type_ok(f->type)) {
    err(P, f->line, "form field '%s' has unknown type '%s' "
        "(string, long, boolean, date, enum, json)", f->id, f->type);
  }
}

static bool truthy(const char *v){
  return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void rv_ext_elem(parser *P, int ni, const xmlNode *e){
  int line = line_of(e);
  rv_node *n = NODE(P, ni);

  if (named(e, "input") || named(e, "output")) {
    char *name = nonempty(attr(e, "name")), *expr = nonempty(attr(e, "expr"));
    if (name == NULL || expr == NULL) {
      err(P, line, "rv:%s needs both name and expr", (const char *)e->name);
      rv_free(name); rv_free(expr);
    } else if (named(e, "input")) {
      add_mapping(&n->inputs, &n->n_inputs, name, expr, line);
    } else {
      add_mapping(&n->outputs, &n->n_outputs, name, expr, line);
    }
  } else if (named(e, "field")) {
    rv_field *f = add_field(P, ni, line);
    char *req = attr(e, "required");
    f->id = nonempty(attr(e, "id"));
    f->label = attr(e, "label");
    f->type = nonempty(attr(e, "type"));
    f->required = truthy(req);
    rv_free(req);
    FOR_ELEMS(v, e) {
      if (in_ns(v->ns, RV_NS_RAVAND) && named(v, "value")) field_value(f, text_trim(v));
      else if (in_ns(v->ns, RV_NS_RAVAND))
        warn(P, line_of(v), "unknown ravand extension 'rv:%s'", (const char *)v->name);
    }
    finish_field(P, f);
  } else {
    warn(P, line, "unknown ravand extension 'rv:%s'", (const char *)e->name);
  }
}

/* camunda:formField / flowable:formProperty -> rv_field */
static void vendor_field(parser *P, int ni, const xmlNode *e, bool flowable){
  rv_field *f = add_field(P, ni, line_of(e));
  f->id = nonempty(attr(e, "id"));
  f->label = attr(e, flowable ? "name" : "label");
  f->type = nonempty(attr(e, "type"));
  if (flowable) {
    char *req = attr(e, "required");
    f->required = truthy(req);
    rv_free(req);
  }
  FOR_ELEMS(c, e) {
    if (named(c, "value")) {
      char *v = attr(c, "id");
      if (v == NULL) v = text_trim(c);
      field_value(f, v);
    } else if (named(c, "validation")) {
      FOR_ELEMS(k, c)
        if (named(k, "constraint") && attr_is(k, "name", "required")) f->required = true;
    }
  }
  finish_field(P, f);
}

static void vendor_ext_elem(parser *P, int ni, const xmlNode *e, const char *vendor){
  int line = line_of(e);
  rv_node *n = NODE(P, ni);
  bool zeebe = strcmp(vendor, "zeebe") == 0;

  if (!zeebe && named(e, "formData")) {
    FOR_ELEMS(f, e) {
      if (named(f, "formField")) vendor_field(P, ni, f, false);
      else warn_ignored(P, line_of(f), vendor, (const char *)f->name);
    }
  } else if (!zeebe && named(e, "formProperty")) {
    vendor_field(P, ni, e, true);
  } else if (!zeebe && (named(e, "in") || named(e, "out")) &&
             n->type == RV_ELEM_CALL_ACTIVITY) {
    char *src = nonempty(attr(e, "source")), *tgt = nonempty(attr(e, "target"));
    if (src == NULL) src = nonempty(attr(e, "sourceExpression"));
    if (src == NULL || tgt == NULL) {
      warn_ignored(P, line, vendor, named(e, "in") ? "in variables" : "out variables");
      rv_free(src); rv_free(tgt);
    } else {
      juel_check(P, line, src);
      if (named(e, "in")) add_mapping(&n->inputs, &n->n_inputs, tgt, src, line);
      else add_mapping(&n->outputs, &n->n_outputs, tgt, src, line);
    }
  } else if (zeebe && named(e, "taskDefinition")) {
    char *type = feel(P, line, nonempty(attr(e, "type")));
    char *retries = feel(P, line, nonempty(attr(e, "retries")));
    if (type != NULL) set_str(&n->adapter, type);
    if (retries != NULL && !parse_int(retries, &n->retries))
      err(P, line, "zeebe:taskDefinition retries '%s' is not an integer", retries);
    rv_free(retries);
  } else if (zeebe && named(e, "assignmentDefinition")) {
    char *cg = feel(P, line, nonempty(attr(e, "candidateGroups")));
    char *as = feel(P, line, nonempty(attr(e, "assignee")));
    if (cg != NULL) set_str(&n->candidate_groups, cg);
    if (as != NULL) set_str(&n->assignee, as);
  } else if (zeebe && named(e, "calledElement")) {
    char *pid = feel(P, line, nonempty(attr(e, "processId")));
    if (pid != NULL) set_str(&n->called_element, pid);
  } else if (zeebe && named(e, "subscription")) {
    char *ck = feel(P, line, nonempty(attr(e, "correlationKey")));
    if (ck != NULL) set_str(&n->correlation_key, ck);
  } else if (zeebe && named(e, "ioMapping")) {
    FOR_ELEMS(io, e) {
      char *src = feel(P, line_of(io), nonempty(attr(io, "source")));
      char *tgt = nonempty(attr(io, "target"));
      rv_node *nn = NODE(P, ni);
      if (src == NULL || tgt == NULL || !(named(io, "input") || named(io, "output"))) {
        warn_ignored(P, line_of(io), vendor, (const char *)io->name);
        rv_free(src); rv_free(tgt);
      } else if (named(io, "input")) {
        add_mapping(&nn->inputs, &nn->n_inputs, tgt, src, line_of(io));
      } else {
        add_mapping(&nn->outputs, &nn->n_outputs, tgt, src, line_of(io));
      }
    }
  } else {
    warn_ignored(P, line, vendor, (const char *)e->name);
  }
}

static void node_extensions(parser *P, int ni, const xmlNode *ext){
  FOR_ELEMS(e, ext) {
    const char *vendor;
    if (in_ns(e->ns, RV_NS_RAVAND)) rv_ext_elem(P, ni, e);
    else if ((vendor = vendor_of(e->ns)) != NULL) vendor_ext_elem(P, ni, e, vendor);
  }
}

/*--- Event definitions, multi-instance, script ---------------------------*/

static void parse_evdef(parser *P, int ni, const xmlNode *c, rv_evdef ev){
  int line = line_of(c);
  rv_node *n = NODE(P, ni);
  const char *refattr = NULL;
  int kind = 0;

  if (n->ev != RV_EV_NONE) {
    err(P, line, "'%s' has more than one event definition", n->id);
    return;
  }
  n->ev = ev;
  switch (ev) {
  case RV_EV_TIMER:
    FOR_ELEMS(t, c) {
      rv_timer_kind k = RV_TIMER_NONE;
      if (bpmn_named(t, "timeDate")) k = RV_TIMER_DATE;
      else if (bpmn_named(t, "timeDuration")) k = RV_TIMER_DURATION;
      else if (bpmn_named(t, "timeCycle")) k = RV_TIMER_CYCLE;
      else continue;
      if (n->timer_kind != RV_TIMER_NONE) {
        err(P, line_of(t), "timer of '%s' has more than one of timeDate/timeDuration/timeCycle", n->id);
        continue;
      }
      n->timer_kind = k;
      set_str(&n->timer_expr, text_trim(t));
    }
    if (n->timer_kind == RV_TIMER_NONE) {
      n->timer_kind = RV_TIMER_DURATION;  /* validate reports the empty expression */
      n->timer_expr = rv_strdup("");
    }
    return;
  case RV_EV_MESSAGE:    refattr = "messageRef";    kind = K_MESSAGE;    break;
  case RV_EV_SIGNAL:     refattr = "signalRef";     kind = K_SIGNAL;     break;
  case RV_EV_ERROR:      refattr = "errorRef";      kind = K_ERROR;      break;
  case RV_EV_ESCALATION: refattr = "escalationRef"; kind = K_ESCALATION; break;
  default: return;
  }
  char *ref = nonempty(attr(c, refattr));
  if (ref != NULL) {
    const root_def *r = resolve_root(P, ref, kind, refattr, line);
    n = NODE(P, ni);
    if (r != NULL) {
      set_str(&n->ref_name, rv_strdup(r->value));
      if (n->correlation_key == NULL) n->correlation_key = rv_strdup(r->corr);
    }
    rv_free(ref);
  }
}

static void parse_mi(parser *P, int ni, const xmlNode *x){
  int line = line_of(x);
  rv_node *n = NODE(P, ni);

  if (n->mi) { err(P, line, "'%s' has more than one loop characteristics", n->id); return; }
  n->mi = true;
  n->mi_sequential = attr_is(x, "isSequential", "true");
  for (const xmlAttr *a = x->properties; a != NULL; a = a->next) {
    const char *nm = (const char *)a->name, *vendor;
    char **dst = NULL;
    if (a->ns == NULL) continue;
    if (in_ns(a->ns, RV_NS_RAVAND)) {
      if (strcmp(nm, "collection") == 0) dst = &n->mi_collection;
      else if (strcmp(nm, "elementVariable") == 0) dst = &n->mi_element_var;
      else if (strcmp(nm, "outputCollection") == 0) dst = &n->mi_output_collection;
      else if (strcmp(nm, "outputElement") == 0) dst = &n->mi_output_element;
      else warn(P, line, "unknown ravand extension 'rv:%s'", nm);
    } else if ((vendor = vendor_of(a->ns)) != NULL) {
      if (strcmp(vendor, "zeebe") != 0 && strcmp(nm, "collection") == 0) dst = &n->mi_collection;
      else if (strcmp(vendor, "zeebe") != 0 && strcmp(nm, "elementVariable") == 0)
        dst = &n->mi_element_var;
      else warn_ignored(P, line, vendor, nm);
    }
    if (dst != NULL) {
      set_str(dst, attr_value(a));
      if (dst == &n->mi_collection) juel_check(P, line, *dst);
    }
  }
  FOR_ELEMS(c, x) {
    if (bpmn_named(c, "completionCondition")) {
      set_str(&n->mi_completion, feel(P, line_of(c), nonempty(text_trim(c))));
      juel_check(P, line_of(c), n->mi_completion);
    } else if (bpmn_named(c, "loopCardinality")) {
      set_str(&n->mi_cardinality, feel(P, line_of(c), nonempty(text_trim(c))));
      juel_check(P, line_of(c), n->mi_cardinality);
    } else if (bpmn_named(c, "extensionElements")) {
      FOR_ELEMS(z, c) {
        if (in_ns(z->ns, RV_NS_ZEEBE) && named(z, "loopCharacteristics")) {
          int zl = line_of(z);
          char *v;
          if ((v = feel(P, zl, nonempty(attr(z, "inputCollection")))) != NULL) set_str(&n->mi_collection, v);
          if ((v = nonempty(attr(z, "inputElement"))) != NULL) set_str(&n->mi_element_var, v);
          if ((v = nonempty(attr(z, "outputCollection"))) != NULL) set_str(&n->mi_output_collection, v);
          if ((v = feel(P, zl, nonempty(attr(z, "outputElement")))) != NULL) set_str(&n->mi_output_element, v);
        } else if (in_ns(z->ns, RV_NS_RAVAND)) {
          warn(P, line_of(z), "unknown ravand extension 'rv:%s'", (const char *)z->name);
        } else if (vendor_of(z->ns) != NULL) {
          warn_ignored(P, line_of(z), vendor_of(z->ns), (const char *)z->name);
        }
      }
    } else if (bpmn_named(c, "documentation")) {
      /* tolerated */
    } else if (is_bpmn(c)) {
      err(P, line_of(c), "unsupported element '%s'", (const char *)c->name);
    }
  }
}

/*--- Scopes (process and subProcess bodies) ------------------------------*/

static void parse_scope(parser *P, const xmlNode *x, int proc, int scope);

static void unsupported(parser *P, const xmlNode *c){
  char *id = nonempty(attr(c, "id"));
  err(P, line_of(c), "unsupported element '%s'", (const char *)c->name);
  if (id != NULL) idmap_put(&P->ids, id, K_UNSUP, -1);
  rv_free(id);
}

/* Silently tolerated, non-executing BPMN elements. */
static bool tolerated(const xmlNode *c){
  static const char *const names[] = {
    "documentation", "extensionElements", "laneSet", "textAnnotation",
    "association", "dataObject", "dataObjectReference", "dataStoreReference",
    "ioSpecification", "group", "incoming", "outgoing", "category",
    "auditing", "monitoring", "rendering",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (named(c, names[i])) return true;
  return false;
}

/* Tolerated with a warning: data flow we do not execute. */
static bool ignored_with_warning(const xmlNode *c){
  static const char *const names[] = {
    "dataInputAssociation", "dataOutputAssociation", "property", "dataInput",
    "dataOutput", "inputSet", "outputSet", "potentialOwner", "humanPerformer",
    "performer",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (named(c, names[i])) return true;
  return false;
}

static void place_node(parser *P, int ni){
  rv_node *n = NODE(P, ni);
  if (n->scope < 0) {
    rv_process *p = &P->m->processes[n->process];
    if (n->triggered_by_event) push_int(&p->event_subs, &p->n_event_subs, ni);
    else push_int(&p->children, &p->n_children, ni);
    if (n->type == RV_ELEM_START_EVENT) push_int(&p->starts, &p->n_starts, ni);
  } else {
    rv_node *s = NODE(P, n->scope);
    if (n->triggered_by_event) push_int(&s->event_subs, &s->n_event_subs, ni);
    else push_int(&s->children, &s->n_children, ni);
  }
}

static void node_child(parser *P, int ni, const xmlNode *c){
  int line = line_of(c);
  rv_elem_type t = NODE(P, ni)->type;
  const char *nm = (const char *)c->name;
  static const struct { const char *name; rv_evdef ev; } evdefs[] = {
    { "timerEventDefinition", RV_EV_TIMER },
    { "messageEventDefinition", RV_EV_MESSAGE },
    { "signalEventDefinition", RV_EV_SIGNAL },
    { "errorEventDefinition", RV_EV_ERROR },
    { "escalationEventDefinition", RV_EV_ESCALATION },
    { "terminateEventDefinition", RV_EV_TERMINATE },
  };

  if (named(c, "extensionElements")) { node_extensions(P, ni, c); return; }
  if (tolerated(c)) return;
  if (ignored_with_warning(c)) {
    warn(P, line, "ignored element '%s' in '%s'", nm, NODE(P, ni)->id);
    return;
  }
  if (is_event(t)) {
    for (size_t i = 0; i < sizeof evdefs / sizeof evdefs[0]; i++)
      if (named(c, evdefs[i].name)) { parse_evdef(P, ni, c, evdefs[i].ev); return; }
  }
  if (is_activity(t) && named(c, "multiInstanceLoopCharacteristics")) {
    parse_mi(P, ni, c);
    return;
  }
  if (t == RV_ELEM_SCRIPT_TASK && named(c, "script")) {
    set_str(&NODE(P, ni)->script, nonempty(text_trim(c)));
    return;
  }
  unsupported(P, c);
}

static void parse_node(parser *P, const xmlNode *x, rv_elem_type t, int proc, int scope){
  int line = line_of(x);
  char *id = nonempty(attr(x, "id"));
  int ni;

  if (id == NULL) { err(P, line, "<%s> without id", rv_elem_name(t)); return; }
  ni = new_node(P, t, proc, scope, line);
  NODE(P, ni)->id = id;
  NODE(P, ni)->name = attr(x, "name");
  register_id(P, id, K_NODE, ni, line);
  node_attrs(P, ni, x);
  if (t == RV_ELEM_BOUNDARY_EVENT && !xmlHasNsProp(x, BAD_CAST "attachedToRef", NULL))
    err(P, line, "boundary event '%s' has no attachedToRef", id);
  if (t == RV_ELEM_SUB_PROCESS) {
    parse_scope(P, x, proc, ni);   /* flow elements; the rest comes back below */
  } else {
    FOR_ELEMS(c, x) if (is_bpmn(c)) node_child(P, ni, c);
  }
  if (t == RV_ELEM_SCRIPT_TASK && NODE(P, ni)->script == NULL && NODE(P, ni)->function == NULL)
    err(P, line, "scriptTask '%s' has neither a <script> nor rv:function", id);
  place_node(P, ni);
}

static void parse_flow(parser *P, const xmlNode *x, int proc, int scope){
  int line = line_of(x);
  char *id = nonempty(attr(x, "id"));
  rv_model *m = P->m;
  rv_flow *f;
  int fi;

  if (id == NULL) { err(P, line, "<sequenceFlow> without id"); return; }
  grow((void **)&m->flows, &P->cap_flows, m->n_flows + 1, sizeof *m->flows);
  P->pf = rv_realloc(P->pf, sizeof *P->pf * (size_t)P->cap_flows);
  fi = m->n_flows++;
  f = &m->flows[fi];
  memset(f, 0, sizeof *f);
  f->id = id;
  f->name = attr(x, "name");
  f->line = line;
  f->source = f->target = -1;
  P->pf[fi] = (pend_flow){ attr(x, "sourceRef"), attr(x, "targetRef"), scope, proc };
  register_id(P, id, K_FLOW, fi, line);
  for (const xmlAttr *a = x->properties; a != NULL; a = a->next) {
    const char *vendor;
    if (in_ns(a->ns, RV_NS_RAVAND))
      warn(P, line, "unknown ravand extension 'rv:%s'", (const char *)a->name);
    else if ((vendor = vendor_of(a->ns)) != NULL)
      warn_ignored(P, line, vendor, (const char *)a->name);
  }
  FOR_ELEMS(c, x) {
    if (!is_bpmn(c)) continue;
    if (named(c, "conditionExpression")) {
      int cl = line_of(c);
      char *lang = attr(c, "language");
      char *cond = nonempty(text_trim(c));
      if (lang != NULL && *lang && strcasecmp(lang, "lua") != 0)
        warn(P, cl, "condition language '%s' ignored: conditions are Lua", lang);
      rv_free(lang);
      juel_check(P, cl, cond);
      cond = feel(P, cl, cond);
      f = &m->flows[fi];
      set_str(&f->condition, nonempty(cond));
      f->cond_line = cl;
    } else if (!named(c, "documentation") && !named(c, "extensionElements")) {
      err(P, line_of(c), "unsupported element '%s'", (const char *)c->name);
    }
  }
}

/* Walk the children of a process or subProcess element. scope is the
** subProcess node index or -1. Non-flow children of a subProcess (its own
** loop characteristics, incoming/outgoing, ...) go to node_child. */
static void parse_scope(parser *P, const xmlNode *x, int proc, int scope){
  FOR_ELEMS(c, x) {
    rv_elem_type t;
    if (!is_bpmn(c)) continue;   /* foreign elements: not ours to judge */
    t = rv_elem_lookup((const char *)c->name);
    if (t != RV_ELEM_NONE) parse_node(P, c, t, proc, scope);
    else if (named(c, "sequenceFlow")) parse_flow(P, c, proc, scope);
    else if (scope >= 0) node_child(P, scope, c);
    else if (tolerated(c)) continue;
    else if (named(c, "property")) warn(P, line_of(c), "ignored element 'property'");
    else unsupported(P, c);
  }
}

static void parse_process(parser *P, const xmlNode *x){
  int line = line_of(x);
  char *id = nonempty(attr(x, "id"));
  rv_model *m = P->m;
  rv_process *p;
  int pi;

  if (id == NULL) { err(P, line, "<process> without id"); return; }
  grow((void **)&m->processes, &P->cap_procs, m->n_processes + 1, sizeof *m->processes);
  pi = m->n_processes++;
  p = &m->processes[pi];
  memset(p, 0, sizeof *p);
  p->id = id;
  p->name = attr(x, "name");
  p->line = line;
  p->executable = attr_is(x, "isExecutable", "true");
  register_id(P, id, K_PROC, pi, line);
  for (const xmlAttr *a = x->properties; a != NULL; a = a->next) {
    const char *vendor;
    if (in_ns(a->ns, RV_NS_RAVAND) && strcmp((const char *)a->name, "startableBy") == 0)
      set_str(&m->processes[pi].startable_by, attr_value(a));
    else if (in_ns(a->ns, RV_NS_RAVAND))
      warn(P, line, "unknown ravand extension 'rv:%s'", (const char *)a->name);
    else if ((vendor = vendor_of(a->ns)) != NULL)
      warn_ignored(P, line, vendor, (const char *)a->name);
  }
  parse_scope(P, x, pi, -1);
}

/*--- Reference resolution ------------------------------------------------*/

static void resolve_flows(parser *P){
  rv_model *m = P->m;
  for (int i = 0; i < m->n_flows; i++) {
    pend_flow *pf = &P->pf[i];
    rv_flow *f = &m->flows[i];
    const char *refs[2] = { pf->src, pf->tgt };
    const char *names[2] = { "sourceRef", "targetRef" };
    int idx[2] = { -1, -1 };
    for (int k = 0; k < 2; k++) {
      const ident *e;
      if (refs[k] == NULL || *refs[k] == 0) {
        err(P, f->line, "sequence flow '%s' has no %s", f->id, names[k]);
        continue;
      }
      e = idmap_get(&P->ids, refs[k]);
      if (e != NULL && e->kind == K_UNSUP) continue;
      if (e == NULL || e->kind != K_NODE) {
        err(P, f->line, "sequence flow '%s' %s '%s' names no element", f->id, names[k], refs[k]);
        continue;
      }
      idx[k] = e->idx;
    }
    if (idx[0] < 0 || idx[1] < 0) continue;
    if (m->nodes[idx[0]].scope != pf->scope || m->nodes[idx[1]].scope != pf->scope ||
        m->nodes[idx[0]].process != pf->process || m->nodes[idx[1]].process != pf->process) {
      err(P, f->line, "sequence flow '%s' connects elements of different scopes ('%s' -> '%s')",
          f->id, pf->src, pf->tgt);
      continue;
    }
    f->source = idx[0];
    f->target = idx[1];
    push_int(&m->nodes[idx[0]].out, &m->nodes[idx[0]].n_out, i);
    push_int(&m->nodes[idx[1]].in, &m->nodes[idx[1]].n_in, i);
  }
}

static void resolve_defaults(parser *P){
  rv_model *m = P->m;
  for (int i = 0; i < P->n_defaults; i++) {
    pend_ref *r = &P->defaults[i];
    rv_node *n = &m->nodes[r->node];
    const ident *e;
    if (*r->ref == 0) continue;
    e = idmap_get(&P->ids, r->ref);
    if (e == NULL || e->kind != K_FLOW || m->flows[e->idx].source != r->node) {
      err(P, r->line, "default flow '%s' of '%s' is not one of its outgoing sequence flows",
          r->ref, n->id);
      continue;
    }
    n->default_flow = e->idx;
    m->flows[e->idx].is_default = true;
  }
}

static void resolve_boundaries(parser *P){
  rv_model *m = P->m;
  for (int i = 0; i < P->n_attach; i++) {
    pend_ref *r = &P->attach[i];
    rv_node *n = &m->nodes[r->node];
    const ident *e = idmap_get(&P->ids, r->ref);
    if (e != NULL && e->kind == K_UNSUP) continue;
    if (e == NULL || e->kind != K_NODE) {
      err(P, r->line, "boundary event '%s' attachedToRef '%s' names no element", n->id, r->ref);
      continue;
    }
    n->attached_to = e->idx;
    push_int(&m->nodes[e->idx].boundaries, &m->nodes[e->idx].n_boundaries, r->node);
  }
}

/*--- Document ------------------------------------------------------------*/

static void parse_definitions(parser *P, const xmlNode *root){
  static const char *const silent_roots[] = {
    "collaboration", "itemDefinition", "category", "import", "extension",
    "documentation", "extensionElements", "dataStore", "interface",
    "relationship", "correlationProperty", "resource", "partnerRole",
    "partnerEntity", "endPoint",
  };
  if (root == NULL || !bpmn_named(root, "definitions")) {
    err(P, root ? line_of(root) : 0,
        "root element is not BPMN <definitions> (namespace " RV_NS_BPMN ")");
    return;
  }
  FOR_ELEMS(c, root) {
    if (!is_bpmn(c)) continue;
    if (named(c, "message")) parse_root_def(P, c, K_MESSAGE);
    else if (named(c, "signal")) parse_root_def(P, c, K_SIGNAL);
    else if (named(c, "error")) parse_root_def(P, c, K_ERROR);
    else if (named(c, "escalation")) parse_root_def(P, c, K_ESCALATION);
  }
  FOR_ELEMS(c, root) {
    bool silent = false;
    if (!is_bpmn(c)) continue;   /* BPMNDI, DC, DI and others */
    if (named(c, "process")) { parse_process(P, c); continue; }
    if (named(c, "message") || named(c, "signal") || named(c, "error") ||
        named(c, "escalation"))
      continue;
    for (size_t i = 0; i < sizeof silent_roots / sizeof silent_roots[0]; i++)
      silent |= named(c, silent_roots[i]);
    if (!silent) warn(P, line_of(c), "ignored root element '%s'", (const char *)c->name);
  }
  if (P->m->n_processes == 0) err(P, line_of(root), "no <process> in the document");
  resolve_flows(P);
  resolve_defaults(P);
  resolve_boundaries(P);
}

/*--- libxml2 glue --------------------------------------------------------*/

/* libxml2 error callbacks carry no reliable user pointer for every error
** path (I/O and encoding errors may come without a context), so the
** parser being run is kept per thread for the duration of one parse. */
static _Thread_local parser *cur_parser;

static void xml_error(void *ud, xmlErrorPtr e){
  parser *P = cur_parser;
  char msg[512];
  size_t n;
  (void)ud;
  if (P == NULL || e == NULL) return;
  if (e->level == XML_ERR_NONE) return;
  if (P->n_xml_diags++ >= RV_MAX_XML_DIAGS) return;
  snprintf(msg, sizeof msg, "%s", e->message ? e->message : "XML error");
  n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' ')) msg[--n] = 0;
  if (e->level == XML_ERR_WARNING) warn(P, e->line, "%s", msg);
  else err(P, e->line, "%s", msg);
}

static int ctxt_line(xmlParserCtxtPtr c){
  return (c != NULL && c->input != NULL) ? c->input->line : 0;
}

static void reject_entity(void *ctx, const xmlChar *name){
  xmlParserCtxtPtr c = ctx;
  parser *P = cur_parser;
  if (P != NULL)
    err(P, ctxt_line(c), "DTD declares entity '%s': entity declarations are not allowed",
        name ? (const char *)name : "?");
  xmlStopParser(c);
}

static void sax_entity_decl(void *ctx, const xmlChar *name, int type,
                            const xmlChar *public_id, const xmlChar *system_id,
                            xmlChar *content){
  (void)type; (void)public_id; (void)system_id; (void)content;
  reject_entity(ctx, name);
}

static void sax_unparsed_entity_decl(void *ctx, const xmlChar *name,
                                     const xmlChar *public_id, const xmlChar *system_id,
                                     const xmlChar *notation){
  (void)public_id; (void)system_id; (void)notation;
  reject_entity(ctx, name);
}

static void parser_fini(parser *P){
  idmap_fini(&P->ids);
  for (int i = 0; i < P->n_roots; i++) { rv_free(P->roots[i].value); rv_free(P->roots[i].corr); }
  rv_free(P->roots);
  for (int i = 0; i < P->m->n_flows; i++) { rv_free(P->pf[i].src); rv_free(P->pf[i].tgt); }
  rv_free(P->pf);
  for (int i = 0; i < P->n_attach; i++) rv_free(P->attach[i].ref);
  rv_free(P->attach);
  for (int i = 0; i < P->n_defaults; i++) rv_free(P->defaults[i].ref);
  rv_free(P->defaults);
  for (int i = 0; i < P->n_warned; i++) rv_free(P->warned[i]);
  rv_free(P->warned);
}

rv_status rv_model_parse_memory(const char *buf, size_t len, const char *name,
                                rv_diags *diags, rv_model **out /* OUT */){
  parser P;
  xmlParserCtxtPtr ctxt;
  xmlDocPtr doc = NULL;
  xmlStructuredErrorFunc old_serror = xmlStructuredError;
  void *old_sctx = xmlStructuredErrorContext;
  parser *old_cur = cur_parser;

  *out = NULL;
  memset(&P, 0, sizeof P);
  P.d = diags;
  P.errors0 = diags->n_errors;
  P.m = rv_calloc(1, sizeof *P.m);
  P.m->file = rv_strdup(name ? name : "<memory>");
  if (len > RV_MAX_XML_BYTES || len > INT_MAX) {
    err(&P, 0, "document too large (%zu bytes)", len);
    goto done;
  }
  xmlInitParser();
  ctxt = xmlNewParserCtxt();
  if (ctxt == NULL) { err(&P, 0, "cannot create XML parser"); goto done; }
  ctxt->sax->entityDecl = sax_entity_decl;
  ctxt->sax->unparsedEntityDecl = sax_unparsed_entity_decl;
  ctxt->sax->serror = xml_error;
  cur_parser = &P;
  xmlSetStructuredErrorFunc(NULL, xml_error);
  doc = xmlCtxtReadMemory(ctxt, buf, (int)len, P.m->file, NULL,
                          XML_PARSE_NONET | XML_PARSE_BIG_LINES);
  if (doc != NULL && diags->n_errors == P.errors0 && !ctxt->wellFormed)
    err(&P, ctxt_line(ctxt), "document is not well-formed");
  if (doc == NULL && diags->n_errors == P.errors0)
    err(&P, ctxt_line(ctxt), "document could not be parsed");
  xmlFreeParserCtxt(ctxt);
  if (doc != NULL && diags->n_errors == P.errors0)
    parse_definitions(&P, xmlDocGetRootElement(doc));
  xmlFreeDoc(doc);
  xmlSetStructuredErrorFunc(old_sctx, old_serror);
  cur_parser = old_cur;
done:
  parser_fini(&P);
  if (diags->n_errors != P.errors0) {
    rv_model_free(P.m);
    return RV_INVALID;
  }
  *out = P.m;
  return RV_OK;
}

rv_status rv_model_parse_file(const char *path, rv_diags *diags, rv_model **out /* OUT */){
  FILE *fp;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  rv_status rc;

  *out = NULL;
  fp = fopen(path, "rb");
  if (fp == NULL) {
    rv_diags_add(diags, RV_DIAG_ERROR, 0, "cannot open %s: %s", path, strerror(errno));
    return RV_IO;
  }
  for (;;) {
    size_t n;
    if (len == cap) {
      if (cap >= RV_MAX_XML_BYTES + 1) break;
      cap = cap ? cap * 2 : 65536;
      buf = rv_realloc(buf, cap);
    }
    n = fread(buf + len, 1, cap - len, fp);
    if (n == 0) break;
    len += n;
  }
  if (ferror(fp)) {
    rv_diags_add(diags, RV_DIAG_ERROR, 0, "cannot read %s: %s", path, strerror(errno));
    fclose(fp);
    rv_free(buf);
    return RV_IO;
  }
  fclose(fp);
  rc = rv_model_parse_memory(buf ? buf : "", len, path, diags, out);
  rv_free(buf);
  return rc;
}

/*--- Freeing and look-ups ------------------------------------------------*/

static void free_mappings(rv_mapping *v, int n){
  for (int i = 0; i < n; i++) { rv_free(v[i].target); rv_free(v[i].expr); }
  rv_free(v);
}

static void free_node(rv_node *n){
  rv_free(n->id); rv_free(n->name);
  rv_free(n->in); rv_free(n->out);
  rv_free(n->timer_expr); rv_free(n->ref_name); rv_free(n->correlation_key);
  rv_free(n->boundaries); rv_free(n->children); rv_free(n->event_subs);
  rv_free(n->function); rv_free(n->script); rv_free(n->result_var);
  free_mappings(n->inputs, n->n_inputs);
  free_mappings(n->outputs, n->n_outputs);
  rv_free(n->adapter); rv_free(n->retry_backoff);
  rv_free(n->candidate_groups); rv_free(n->assignee);
  rv_free(n->branch_expr); rv_free(n->county_expr); rv_free(n->due);
  for (int i = 0; i < n->n_fields; i++) {
    rv_field *f = &n->fields[i];
    rv_free(f->id); rv_free(f->label); rv_free(f->type);
    for (int k = 0; k < f->n_values; k++) rv_free(f->values[k]);
    rv_free(f->values);
  }
  rv_free(n->fields);
  rv_free(n->called_element);
  rv_free(n->mi_collection); rv_free(n->mi_element_var);
  rv_free(n->mi_output_collection); rv_free(n->mi_output_element);
  rv_free(n->mi_completion); rv_free(n->mi_cardinality);
  rv_free(n->status); rv_free(n->sms); rv_free(n->sms_retry_backoff);
  rv_free(n->message_ttl);
  rv_free(n->startable_by); rv_free(n->display);
}

void rv_model_free(rv_model *m){
  if (m == NULL) return;
  for (int i = 0; i < m->n_nodes; i++) free_node(&m->nodes[i]);
  rv_free(m->nodes);
  for (int i = 0; i < m->n_flows; i++) {
    rv_free(m->flows[i].id); rv_free(m->flows[i].name); rv_free(m->flows[i].condition);
  }
  rv_free(m->flows);
  for (int i = 0; i < m->n_processes; i++) {
    rv_process *p = &m->processes[i];
    rv_free(p->id); rv_free(p->name);
    rv_free(p->children); rv_free(p->event_subs); rv_free(p->starts);
    rv_free(p->startable_by);
  }
  rv_free(m->processes);
  rv_free(m->file);
  rv_free(m);
}

int rv_model_find_node(const rv_model *m, const char *id){
  if (m == NULL || id == NULL) return -1;
  for (int i = 0; i < m->n_nodes; i++)
    if (strcmp(m->nodes[i].id, id) == 0) return i;
  return -1;
}

int rv_model_process_index(const rv_model *m, const char *id){
  if (m == NULL || id == NULL) return -1;
  for (int i = 0; i < m->n_processes; i++)
    if (strcmp(m->processes[i].id, id) == 0) return i;
  return -1;
}

const rv_process *rv_model_find_process(const rv_model *m, const char *id){
  int i = rv_model_process_index(m, id);
  return i < 0 ? NULL : &m->processes[i];
}

bool rv_model_start_role_ok(const char *role, size_t len){
  return (len == 9 && strncmp(role, "applicant", 9) == 0) ||
         (len == 12 && strncmp(role, "organisation", 12) == 0);
}

/* Is role one of the comma-separated names of list (spaces ignored)? */
static bool list_has(const char *list, const char *role){
  size_t rl = strlen(role);
  for (const char *p = list; p && *p; ) {
    const char *c = strchr(p, ',');
    const char *e = c ? c : p + strlen(p);
    while (p < e && *p == ' ') p++;
    while (e > p && e[-1] == ' ') e--;
    if ((size_t)(e - p) == rl && strncmp(p, role, rl) == 0) return true;
    p = c ? c + 1 : NULL;
  }
  return false;
}

bool rv_model_startable(const rv_model *m, int pi, int node, const char *role){
  const rv_node *n;
  if (m == NULL || pi < 0 || pi >= m->n_processes || node < 0 || node >= m->n_nodes || role == NULL)
    return false;
  n = &m->nodes[node];
  if (n->type != RV_ELEM_START_EVENT || n->process != pi || n->scope != -1) return false;
  if (n->startable_by) return list_has(n->startable_by, role);
  /* the process's list opens its none start event only: a message start
  ** (a registry feed, a bank) is opened by its own rv:startableBy */
  return n->ev == RV_EV_NONE && list_has(m->processes[pi].startable_by, role);
}
