/* Combinators: all, all-settled, first-settled, any-fulfilled.
 *
 * A combinator appends one node to each input's chain. Its state lives
 * until every one of those nodes has run (or been discarded at close), so
 * a late input never touches freed memory; after the combinator's promise
 * settles, late results are simply released.
 */
#include <stdlib.h>

#include "core.h"

enum mode { ALL, ALL_SETTLED, FIRST_SETTLED, ANY_FULFILLED };

typedef struct comb comb;

typedef struct comb_input {
  comb* c;
  vow_promise_t* p; /* our reference, until its node runs */
  bool cancelled;   /* cancelled by us, at most once */
} comb_input;

struct comb {
  int mode;
  bool finished;      /* out is settled */
  vow_promise_t* out; /* pending until finished; never freed before */
  size_t n;
  size_t outstanding; /* nodes not yet run or discarded */
  size_t arrived;     /* results counted toward finishing */
  void** results;     /* per input: a value or a failure */
  comb_input inputs[];
};

static void free_comb(comb* c) {
  size_t i;
  for (i = 0; i < c->n; i++) {
    if (c->results[i] == NULL)
      continue;
    /* Leftovers only exist when out never used them. */
    if (c->mode == ANY_FULFILLED)
      vow_failure_release(c->results[i]);
    else
      vow_value_release(c->results[i]);
  }
  vow__free(c->results);
  vow__free(c);
}

static void cancel_rest(comb* c) {
  size_t i;
  for (i = 0; i < c->n; i++) {
    comb_input* in = &c->inputs[i];
    if (in->p == NULL || in->cancelled)
      continue;
    in->cancelled = true;
    vow_cancel(in->p);
  }
}

static void finish(comb* c, int state, void* result) {
  c->finished = true;
  vow__settle(c->out, state, result);
  cancel_rest(c);
}

/* Builds the array from c->results, moving each out. */
static vow_value_t* take_array(comb* c) {
  vow_value_t* arr = vow_value_new_array((vow_value_t**)c->results, c->n);
  size_t i;
  for (i = 0; i < c->n; i++)
    c->results[i] = NULL;
  return arr;
}

static void on_result(comb* c, size_t i, int state, void* result) {
  if (c->finished) {
    if (state == VOW_FULFILLED)
      vow_value_release(result);
    else
      vow_failure_release(result);
    return;
  }
  switch (c->mode) {
    case ALL:
      if (state == VOW_REJECTED) {
        finish(c, VOW_REJECTED, result);
        return;
      }
      c->results[i] = result;
      break;
    case ALL_SETTLED:
      c->results[i] =
          state == VOW_FULFILLED ? result : vow_value_new_failure(result);
      if (c->results[i] == NULL) {
        finish(c, VOW_REJECTED, vow__failure_nomem());
        return;
      }
      break;
    case FIRST_SETTLED:
      finish(c, state, result);
      return;
    case ANY_FULFILLED:
      if (state == VOW_FULFILLED) {
        finish(c, VOW_FULFILLED, result);
        return;
      }
      c->results[i] = result;
      break;
  }
  if (++c->arrived < c->n)
    return;
  if (c->mode == ANY_FULFILLED) {
    vow_failure_t* all =
        vow_failure_new(VOW_FAIL_ALL_FAILED, 0, "all %zu inputs failed", c->n);
    size_t j;
    for (j = 0; j < c->n; j++) {
      vow_failure_add_cause(all, c->results[j]);
      c->results[j] = NULL;
    }
    finish(c, VOW_REJECTED, all);
  } else {
    vow_value_t* arr = take_array(c);
    if (arr == NULL)
      finish(c, VOW_REJECTED, vow__failure_nomem());
    else
      finish(c, VOW_FULFILLED, arr);
  }
}

static void input_done(comb* c) {
  if (--c->outstanding == 0)
    free_comb(c);
}

static void run_input(vow_promise_t* p, const vow__link* n) {
  comb_input* in = n->data;
  comb* c = in->c;
  int state;
  void* result = vow__share(p, &state);
  in->p = NULL;
  vow_promise_release(p); /* p is running: not freed here */
  on_result(c, (size_t)(in - c->inputs), state, result);
  input_done(c);
}

static void discard_input(const vow__link* n) {
  comb_input* in = n->data;
  in->p = NULL;
  input_done(in->c);
}

static const vow__node_kind input_kind = {run_input, discard_input};

static void cancel_comb(vow_promise_t* out, void* data) {
  comb* c = data;
  (void)out;
  c->finished = true; /* vow_cancel rejects out right after this */
  cancel_rest(c);
}

static vow_promise_t* combine(vow_ctx_t* ctx, vow_promise_t** ps, size_t n,
                              int mode) {
  comb* c;
  size_t i;
  vow_promise_t* out;
  if (n == 0) {
    if (mode == ALL || mode == ALL_SETTLED)
      return vow_succeed(ctx, vow_value_new_array(NULL, 0));
    return vow_fail(ctx, vow_failure_new(VOW_FAIL_EMPTY_INPUT, UV_EINVAL,
                                         "no promises were given"));
  }
  c = vow__calloc(1, sizeof(*c) + n * sizeof(comb_input));
  if (c != NULL)
    c->results = vow__calloc(n, sizeof(void*));
  out = c && c->results ? vow_promise_new(ctx, cancel_comb, c) : NULL;
  if (out == NULL) {
    if (c)
      vow__free(c->results);
    vow__free(c);
    for (i = 0; i < n; i++) {
      vow_cancel(ps[i]);
      vow_promise_release(ps[i]);
    }
    return vow_fail(ctx, vow__failure_nomem());
  }
  c->mode = mode;
  c->out = out;
  c->n = n;
  c->outstanding = n + 1; /* + 1 until the set-up loop is done */
  for (i = 0; i < n; i++) {
    c->inputs[i].c = c;
    c->inputs[i].p = ps[i];
  }
  for (i = 0; i < n; i++) {
    if (vow__append(ps[i], &input_kind, &c->inputs[i]) != NULL)
      continue;
    /* Out of memory: this input can never report, so account for it as a
     * failure now. */
    c->inputs[i].p = NULL;
    vow_promise_release(ps[i]);
    on_result(c, i, VOW_REJECTED, vow__failure_nomem());
    input_done(c);
  }
  input_done(c);
  return out;
}

vow_promise_t* vow_all(vow_ctx_t* ctx, vow_promise_t** ps, size_t n) {
  VOW__NOT_NULL(ctx, "the context");
  return combine(ctx, ps, n, ALL);
}
vow_promise_t* vow_all_settled(vow_ctx_t* ctx, vow_promise_t** ps, size_t n) {
  VOW__NOT_NULL(ctx, "the context");
  return combine(ctx, ps, n, ALL_SETTLED);
}
vow_promise_t* vow_first_settled(vow_ctx_t* ctx, vow_promise_t** ps, size_t n) {
  VOW__NOT_NULL(ctx, "the context");
  return combine(ctx, ps, n, FIRST_SETTLED);
}
vow_promise_t* vow_any_fulfilled(vow_ctx_t* ctx, vow_promise_t** ps, size_t n) {
  VOW__NOT_NULL(ctx, "the context");
  return combine(ctx, ps, n, ANY_FULFILLED);
}
