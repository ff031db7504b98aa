/* Helpers for the tests that run real pools (test_pool, test_mpi,
 * test_stall): pools with the test functions, outcomes counted as they
 * settle, waits on the loop for workers and for the pids of running
 * tasks, and the fault scenarios that must hold for local and remote
 * workers alike. */
#ifndef VOW_TESTS_POOL_HELPERS_H
#define VOW_TESTS_POOL_HELPERS_H

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"
#include "pool_functions.h"

static inline vow_pool_options_t defaults(unsigned workers) {
  vow_pool_options_t o;
  vow_pool_options_init(&o);
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

/* The value p fulfils with (a reference); fails the test otherwise. */
static inline vow_value_t* run_value(fixture* fx, vow_promise_t* p) {
  outcome o = run(fx, p);
  if (o.f)
    fail_msg("task failed: %s", vow_failure_message(o.f));
  return o.v;
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

static inline void note_pid(vow_pool_t* pool, uint64_t task_id, double fraction,
                            const char* text, void* data) {
  pids* p = data;
  (void)pool;
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

/* The children of this process still alive (zombies included): their
 * count, and the first `max` pids in out. */
static inline int list_children(int* out, int max) {
  char path[64], buf[4096];
  FILE* f;
  int n = 0;
  char* at;
  size_t len;
  snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  len = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[len] = '\0';
  for (at = strtok(buf, " \n"); at != NULL; at = strtok(NULL, " \n")) {
    if (n < max)
      out[n] = atoi(at);
    n++;
  }
  return n;
}

static inline int count_children(void) {
  return list_children(NULL, 0);
}

/* ---- scenarios: each leaves the pool running for the caller ---------- */

/* On a pool of two workers with one task each: SIGKILL one worker; only
 * its task fails (with the signal and the pid), the other's completes, a
 * new worker serves, and the pool counts one death. */
static inline void expect_kill9_fails_only_its_task(fixture* fx,
                                                    vow_pool_t* pool) {
  pids p = {{0}, {0}, 0};
  vow_promise_t *a, *b;
  vow_failure_t* f;
  vow_pool_stats_t st;
  vow_pool_on_progress(pool, note_pid, &p);
  wait_alive(fx, pool, 2);
  a = vow_pool_submit(pool, "pidsleep", num(5000));
  b = vow_pool_submit(pool, "pidsleep", num(300));
  wait_pids(fx, &p, 2);
  assert_int_not_equal(p.pid[0], p.pid[1]); /* one task on each worker */
  assert_int_equal(kill(p.pid[0], SIGKILL), 0);
  f = run_fail(fx, p.task[0] == 1 ? a : b, VOW_FAIL_WORKER_DIED);
  assert_int_equal(vow_failure_origin(f)->term_signal, SIGKILL);
  assert_int_equal(vow_failure_origin(f)->pid, p.pid[0]);
  vow_failure_release(f);
  assert_int_equal(run_int(fx, p.task[0] == 1 ? b : a), p.pid[1]);
  still_serves(fx, pool);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_deaths, 1);
}

/* On a pool relaying stderr: a task that crashes fails with the signal
 * and, in its detail, the worker's crash report (signal, task, backtrace). */
static inline void expect_crash_report(fixture* fx, vow_pool_t* pool) {
  vow_failure_t* f =
      run_fail(fx, vow_pool_submit(pool, "crash", NULL), VOW_FAIL_WORKER_DIED);
  assert_int_equal(vow_failure_origin(f)->term_signal, SIGSEGV);
  assert_non_null(vow_failure_detail(f));
  assert_non_null(strstr(vow_failure_detail(f), "SIGSEGV"));
  assert_non_null(strstr(vow_failure_detail(f), "(crash)"));
  assert_non_null(strstr(vow_failure_detail(f), "backtrace"));
  vow_failure_release(f);
  still_serves(fx, pool);
}

/* A worker that closes its channel and lives on is killed, its task fails
 * as worker-died, and a new worker serves. */
static inline void expect_closed_channel_death(fixture* fx, vow_pool_t* pool) {
  vow_failure_t* f = run_fail(fx, vow_pool_submit(pool, "close_channel", NULL),
                              VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "closed its channel"));
  vow_failure_release(f);
  still_serves(fx, pool);
}

/* Closes a context of its own with a pool of two workers at work (no
 * vow_pool_free: the context does it); the task left pending is
 * reported. The caller checks that no worker is left. */
static inline void close_context_under_busy_pool(const vow_pool_options_t* o) {
  fixture mine = {0};
  vow_pool_t* pool;
  mine.ctx = vow_ctx_new(NULL, NULL);
  vow_ctx_set_report_handler(mine.ctx, count_report, &mine);
  pool = make_pool(&mine, o);
  wait_alive(&mine, pool, 2);
  vow_promise_release(vow_pool_submit(pool, "sleep", num(30000)));
  vow_ctx_close(mine.ctx);
  assert_int_equal(mine.pending, 1);
}

#endif
