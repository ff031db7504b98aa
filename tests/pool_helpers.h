/* Helpers for the tests that run real pools (test_pool, test_mpi): pools
 * with the test functions, outcomes counted as they settle, and waits on
 * the loop for workers and for the pids of running tasks. */
#ifndef VOW_TESTS_POOL_HELPERS_H
#define VOW_TESTS_POOL_HELPERS_H

#include "helpers.h"
#include "pool_functions.h"

static inline vow_pool_options_t defaults(unsigned workers) {
  vow_pool_options_t o;
  memset(&o, 0, sizeof(o));
  o.workers = workers;
  o.functions = test_functions;
  o.nfunctions = test_nfunctions;
  o.stderr_mode = VOW_STDERR_DISCARD;
  return o;
}

static inline vow_pool_t* make_pool(fixture* fx, const vow_pool_options_t* o) {
  int err = 0;
  vow_pool_t* pool = vow_pool_new(fx->ctx, o, &err);
  assert_non_null(pool);
  return pool;
}

/* Shuts the pool down (immediately) and frees it. */
static inline void end_pool(fixture* fx, vow_pool_t* pool, bool graceful) {
  vow_promise_t* done = vow_pool_shutdown(pool, graceful);
  assert_int_equal(vow_ctx_wait(fx->ctx, done), VOW_FULFILLED);
  vow_promise_release(done);
  vow_pool_free(pool);
}

/* Runs the loop until p settles; returns its value (a reference) or NULL
 * with *failure set (a reference). */
typedef struct outcome {
  vow_value_t* v;
  vow_failure_t* f;
  int settled; /* times the callback ran: must be 1 */
} outcome;

static inline vow_outcome_t keep(vow_value_t* v, vow_failure_t* f, void* data) {
  outcome* o = data;
  o->settled++;
  o->v = v;
  o->f = f;
  return vow_ok(NULL);
}

static inline outcome run(fixture* fx, vow_promise_t* p) {
  outcome o = {NULL, NULL, 0};
  vow_add_both(p, keep, &o);
  vow_ctx_wait(fx->ctx, p);
  vow_promise_release(p);
  assert_int_equal(o.settled, 1);
  return o;
}

static inline int64_t run_int(fixture* fx, vow_promise_t* p) {
  outcome o = run(fx, p);
  int64_t i = -1;
  if (o.f)
    fail_msg("task failed: %s", vow_failure_message(o.f));
  assert_int_equal(vow_value_get_int(o.v, &i), 0);
  vow_value_release(o.v);
  return i;
}

/* The failure of p, which must fail with `kind`; caller releases. */
static inline vow_failure_t* run_fail(fixture* fx, vow_promise_t* p, int kind) {
  outcome o = run(fx, p);
  if (o.v)
    fail_msg("expected %s, got a value", vow_failure_kind_name(kind));
  if (vow_failure_kind(o.f) != kind)
    fail_msg("expected %s, got %s: %s", vow_failure_kind_name(kind),
             vow_failure_kind_name(vow_failure_kind(o.f)),
             vow_failure_message(o.f));
  return o.f;
}

static inline vow_value_t* pair(int64_t a, int64_t b) {
  char buf[32];
  msgpack_sbuffer sb;
  msgpack_packer pk;
  vow_value_t* v;
  (void)buf;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int64(&pk, a);
  msgpack_pack_int64(&pk, b);
  v = vow_value_new_msgpack(sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  return v;
}

static inline vow_value_t* num(int64_t i) {
  return vow_value_new_int(i);
}

/* The pool still works: a fresh task on every worker. */
static inline void still_serves(fixture* fx, vow_pool_t* pool) {
  enum { N = 20 };
  vow_promise_t* ps[N];
  int i;
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "add", pair(i, 1));
  for (i = 0; i < N; i++)
    assert_int_equal(run_int(fx, ps[i]), i + 1);
}

/* Runs the loop until `n` workers have said HELLO. */
static inline void wait_alive(fixture* fx, vow_pool_t* pool, unsigned n) {
  vow_pool_stats_t st;
  int rounds = 0;
  for (;;) {
    vow_promise_t* nap;
    vow_pool_stats(pool, &st);
    if (st.workers_alive >= n)
      return;
    assert_true(rounds++ < 1000);
    nap = vow_sleep(fx->ctx, 5);
    vow_ctx_wait(fx->ctx, nap);
    vow_promise_release(nap);
  }
}

/* Progress texts are the pids of the workers running pidsleep tasks. */
typedef struct pids {
  uint64_t task[8];
  int pid[8];
  int n;
} pids;

static inline void note_pid(uint64_t task_id, double fraction, const char* text,
                            void* data) {
  pids* p = data;
  (void)fraction;
  if (p->n < 8) {
    p->task[p->n] = task_id;
    p->pid[p->n++] = atoi(text);
  }
}

/* Runs the loop until `want` pidsleep tasks have said their pid. */
static inline void wait_pids(fixture* fx, pids* p, int want) {
  int rounds = 0;
  while (p->n < want && rounds++ < 500) {
    vow_promise_t* nap = vow_sleep(fx->ctx, 10);
    vow_ctx_wait(fx->ctx, nap);
    vow_promise_release(nap);
  }
  assert_int_equal(p->n, want);
}

#endif
