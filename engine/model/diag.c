/*
** model/diag.c -- rv_diags: a list of errors and warnings about a document.
**
** Messages are owned by the list and freed by rv_diags_fini(). n_errors
** counts the RV_DIAG_ERROR entries and is what callers test. Printing
** sorts by line, stably (equal lines keep the order they were added in),
** and never changes the list itself.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/mem.h"
#include "model/model.h"

void rv_diags_init(rv_diags *d){
  memset(d, 0, sizeof *d);
}

void rv_diags_fini(rv_diags *d){
  if (d == NULL) return;
  for (int i = 0; i < d->n; i++) rv_free(d->v[i].msg);
  rv_free(d->v);
  memset(d, 0, sizeof *d);
}

void rv_diags_add(rv_diags *d, rv_diag_level lvl, int line, const char *fmt, ...){
  char tmp[256];
  va_list ap, ap2;
  int n;
  char *msg;

  va_start(ap, fmt);
  va_copy(ap2, ap);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n < sizeof tmp) {
    msg = rv_strndup(tmp, (size_t)n);
  } else {
    msg = rv_malloc((size_t)n + 1);
    vsnprintf(msg, (size_t)n + 1, fmt, ap2);
  }
  va_end(ap2);
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 16;
    d->v = rv_realloc(d->v, sizeof *d->v * (size_t)d->cap);
  }
  d->v[d->n++] = (rv_diag){ lvl, line < 0 ? 0 : line, msg };
  if (lvl == RV_DIAG_ERROR) d->n_errors++;
}

/* Stable order by line: qsort with the insertion index as tie-breaker. */
typedef struct diag_key { int line, idx; } diag_key;

static int key_cmp(const void *a, const void *b){
  const diag_key *x = a, *y = b;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static diag_key *sorted_order(const rv_diags *d){
  diag_key *ix = rv_malloc(sizeof *ix * (size_t)(d->n ? d->n : 1));
  for (int i = 0; i < d->n; i++) ix[i] = (diag_key){ d->v[i].line, i };
  qsort(ix, (size_t)d->n, sizeof *ix, key_cmp);
  return ix;
}

void rv_diags_print(const rv_diags *d, const char *file, void *FILE_stream){
  FILE *fp = FILE_stream;
  diag_key *ix;
  if (d == NULL || fp == NULL) return;
  ix = sorted_order(d);
  for (int k = 0; k < d->n; k++) {
    const rv_diag *g = &d->v[ix[k].idx];
    const char *lv = g->level == RV_DIAG_ERROR ? "error" : "warning";
    if (g->line > 0) fprintf(fp, "%s:%d: %s: %s\n", file ? file : "-", g->line, lv, g->msg);
    else fprintf(fp, "%s: %s: %s\n", file ? file : "-", lv, g->msg);
  }
  rv_free(ix);
}
