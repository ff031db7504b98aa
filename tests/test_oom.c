/* Out of memory at every allocation: a whole promise run and a whole pool
 * run are repeated with the Nth allocation vow makes failing, for every N
 * the run reaches. Each must not crash, must leave no allocation behind
 * once its context is closed, and must settle every promise it was handed
 * (a VOW_FAIL_NOMEM failure is fine). The allocator is replaced through
 * vow_replace_allocator, the seam a user has too. VOW_QUICK=1 tries every
 * 10th N only. */
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "pool_helpers.h"

/* ---- a counting allocator that fails on demand -------------------------- */

static long allocations; /* made in this run, failed ones included */
static long fail_at;     /* the allocation to fail; 0: none */
static long live;        /* handed out and not yet freed */

/* VOW_OOM_TRACE=1 prints where each failed allocation was asked for. */
static bool should_fail(void) {
  if (++allocations != fail_at)
    return false;
  if (getenv("VOW_OOM_TRACE")) {
    void* frames[16];
    fprintf(stderr, "test_oom: failing allocation %ld here:\n", fail_at);
    backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
  }
  return true;
}

static void* oom_malloc(size_t size) {
  void* p;
  if (should_fail())
    return NULL;
  if ((p = malloc(size)) != NULL)
    live++;
  return p;
}

static void* oom_calloc(size_t count, size_t size) {
  void* p;
  if (should_fail())
    return NULL;
  if ((p = calloc(count, size)) != NULL)
    live++;
  return p;
}

static void* oom_realloc(void* ptr, size_t size) {
  void* p;
  if (should_fail())
    return NULL;
  p = realloc(ptr, size);
  if (p != NULL && ptr == NULL)
    live++;
  return p;
}

static void oom_free(void* ptr) {
  live--;
  free(ptr);
}

static size_t stride(void) {
  return scaled(1000) < 1000 ? 10 : 1;
}

/* ---- the promise run ---------------------------------------------------- */

typedef struct run_reports {
  int pending;
} run_reports;

static void note_report(vow_ctx_t* ctx, vow_report_kind_t kind,
                        vow_failure_t* f, void* data) {
  (void)ctx;
  (void)f;
  if (kind == VOW_REPORT_PENDING)
    ((run_reports*)data)->pending++;
}

static void cancel_noop(vow_promise_t* p, void* data) {
  (void)p;
  (void)data;
}

static vow_outcome_t recover(vow_failure_t* f, void* data) {
  (void)data;
  vow_failure_release(f);
  return vow_ok(vow_value_new_int(-1));
}

static vow_outcome_t wait_on_data(vow_value_t* v, void* data) {
  vow_value_release(v);
  return vow_wait(vow_promise_ref(data));
}

enum { NP = 24, NREADY = 300 };

static bool settled(vow_promise_t* p) {
  vow_state_t s = vow_promise_state(p);
  return s == VOW_FULFILLED || s == VOW_REJECTED;
}

/* Promises, chains, combinators, timeouts, branches, adoption, a queue
 * and a semaphore, all on one context with a fake clock. Returns false if
 * any promise it holds is left unsettled. */
static bool promise_run(void) {
  run_reports reports = {0};
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t* held[NP * 3 + 16 + NREADY];
  vow_promise_t* p[NP];
  size_t nheld = 0, i;
  vow_queue_t* q;
  vow_semaphore_t* sem;
  bool all_settled = true;
  if (ctx == NULL)
    return true;
  vow_ctx_set_report_handler(ctx, note_report, &reports);
  vow_ctx_use_fake_clock(ctx, 0);
#define HOLD(x)              \
  do {                       \
    vow_promise_t* h_ = (x); \
    if (h_ != NULL)          \
      held[nheld++] = h_;    \
  } while (0)
  for (i = 0; i < NP; i++) {
    p[i] = vow_promise_new(ctx, cancel_noop, NULL);
    if (p[i] == NULL)
      continue;
    vow_add_callback(p[i], add_one, NULL);
    vow_add_errback(p[i], recover, NULL);
    if (i % 4 == 3)
      vow_timeout(p[i], 50); /* never settled by hand: times out */
    HOLD(vow_promise_ref(p[i]));
  }
  {
    /* Each combinator over four of them: p[0..4) to all, and so on. */
    static vow_promise_t* (*const combine[4])(vow_ctx_t*, vow_promise_t**,
                                              size_t) = {
        vow_all, vow_any_fulfilled, vow_first_settled, vow_all_settled};
    size_t c;
    for (c = 0; c < 4; c++) {
      vow_promise_t* ins[4];
      size_t n = 0;
      for (i = 4 * c; i < 4 * c + 4; i++)
        if (p[i])
          ins[n++] = vow_promise_ref(p[i]);
      HOLD(combine[c](ctx, ins, n));
    }
  }
  for (i = 16; i < 20; i++)
    if (p[i])
      HOLD(vow_branch(p[i]));
  for (i = 20; i < NP; i++) {
    vow_promise_t* outer = vow_succeed(ctx, NULL);
    if (outer != NULL && p[i] != NULL)
      vow_add_callback(outer, wait_on_data, p[i]);
    HOLD(outer);
  }
  q = vow_queue_new(ctx, VOW_UNBOUNDED, VOW_UNBOUNDED);
  if (q != NULL) {
    HOLD(vow_queue_get(q));
    HOLD(vow_queue_get(q));
    vow_queue_put(q, vow_value_new_int(1));
    vow_queue_put(q, vow_value_new_int(2));
  }
  sem = vow_semaphore_new(ctx, 1);
  if (sem != NULL) {
    HOLD(vow_semaphore_acquire(sem));
    HOLD(vow_semaphore_acquire(sem));
    vow_ctx_drain(ctx);
    vow_semaphore_release(sem);
  }
  HOLD(vow_sleep(ctx, 10));
  /* More chains due at once than the ready queue and the first slabs
   * have room for, so they all grow. */
  for (i = 0; i < NREADY; i++) {
    vow_promise_t* r = vow_succeed(ctx, vow_value_new_int((int64_t)i));
    if (r != NULL)
      vow_add_callback(r, add_one, NULL);
    HOLD(r);
  }
  for (i = 0; i < NP; i++) {
    if (p[i] == NULL || i % 4 == 3)
      continue;
    if (i % 2 == 0)
      vow_fulfil(p[i], vow_value_new_int((int64_t)i));
    else
      vow_reject(p[i], vow_failure_new(VOW_FAIL_TASK_ERROR, 0, "no %zu", i));
  }
  vow_ctx_drain(ctx);
  vow_ctx_advance(ctx, 100);
  vow_ctx_drain(ctx);
  for (i = 0; i < nheld; i++) {
    if (!settled(held[i]))
      all_settled = false;
    vow_promise_release(held[i]);
  }
  for (i = 0; i < NP; i++)
    vow_promise_release(p[i]);
  vow_queue_free(q);
  vow_semaphore_free(sem);
  vow_ctx_close(ctx);
  return all_settled && reports.pending == 0;
#undef HOLD
}

static void every_allocation_of_a_promise_run(void** state) {
  long total, n, base;
  (void)state;
  base = live;
  allocations = 0;
  fail_at = 0;
  assert_true(promise_run());
  total = allocations;
  assert_int_equal(live, base);
  assert_true(total > 10);
  printf("promise run: %ld allocations, each made to fail in turn\n", total);
  for (n = 1; n <= total; n += (long)stride()) {
    allocations = 0;
    fail_at = n;
    if (!promise_run())
      fail_msg("allocation %ld of %ld failing left a promise unsettled", n,
               total);
    fail_at = 0;
    if (live != base)
      fail_msg("allocation %ld of %ld failing leaked %ld allocations", n, total,
               live - base);
  }
}

/* ---- the pool run ---------------------------------------------------------
 */

enum { NT = 12 };

/* A pool of two workers: tasks, a map, a stream, a graceful shutdown.
 * Returns false if a promise it was handed is left unsettled. */
static bool pool_run(unsigned workers) {
  run_reports reports = {0};
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_options_t o = defaults(workers);
  vow_pool_t* pool;
  vow_promise_t* ps[NT + 2];
  vow_promise_t* done;
  vow_stream_t* s;
  size_t n = 0, i;
  int err = 0;
  bool ok = true;
  if (ctx == NULL)
    return true;
  vow_ctx_set_report_handler(ctx, note_report, &reports);
  o.retries = 1;
  pool = vow_pool_new(ctx, &o, &err);
  if (pool == NULL) {
    vow_ctx_close(ctx);
    return reports.pending == 0;
  }
  for (i = 0; i < NT; i++) {
    vow_promise_t* p = vow_pool_submit(pool, "add", pair((int64_t)i, 1));
    if (p == NULL)
      return false; /* documented to always return a promise */
    ps[n++] = p;
  }
  {
    vow_value_t* items[40];
    for (i = 0; i < 40; i++)
      items[i] = vow_value_new_int((int64_t)i);
    ps[n] = vow_pool_map(pool, "echo", vow_value_new_array(items, 40));
    if (ps[n++] == NULL)
      return false;
  }
  s = vow_pool_stream(pool, "echo", vow_value_new_array(NULL, 0), 4);
  for (i = 0; i < n; i++) {
    vow_ctx_wait(ctx, ps[i]);
    if (!settled(ps[i]))
      ok = false;
    vow_promise_release(ps[i]);
  }
  vow_stream_free(s);
  done = vow_pool_shutdown(pool, true);
  if (done == NULL)
    return false; /* documented to always return a promise */
  vow_ctx_wait(ctx, done);
  if (!settled(done))
    ok = false;
  vow_promise_release(done);
  vow_pool_free(pool);
  vow_ctx_close(ctx);
  return ok && reports.pending == 0;
}

/* With one worker a lost worker start cannot hide behind the other. */
static void every_allocation_of_a_pool_run(void** state) {
  long total, n, base;
  unsigned workers = (unsigned)(uintptr_t)*state;
  base = live;
  allocations = 0;
  fail_at = 0;
  assert_true(pool_run(workers));
  total = allocations;
  assert_int_equal(live, base);
  printf("pool run, %u worker(s): %ld allocations, each made to fail in turn\n",
         workers, total);
  for (n = getenv("VOW_OOM_FROM") ? atol(getenv("VOW_OOM_FROM")) : 1;
       n <= total; n += (long)stride()) {
    allocations = 0;
    fail_at = n;
    alarm(60); /* a run that never ends names its allocation */
    if (!pool_run(workers))
      fail_msg("allocation %ld of %ld failing left a promise unsettled", n,
               total);
    alarm(0);
    fail_at = 0;
    if (live != base)
      fail_msg("allocation %ld of %ld failing leaked %ld allocations", n, total,
               live - base);
    assert_int_equal(count_children(), 0);
  }
}

static long alarm_at;
static void on_alarm(int sig) {
  char line[96];
  int len = snprintf(line, sizeof(line),
                     "test_oom: the run failing allocation %ld hung\n",
                     alarm_at ? alarm_at : fail_at);
  (void)sig;
  if (write(2, line, (size_t)len) < 0) {
  }
  _exit(70);
}

int main(void) {
  vow_replace_allocator(oom_malloc, oom_realloc, oom_calloc, oom_free);
  vow_worker_main(test_functions, test_nfunctions);
  signal(SIGALRM, on_alarm);
  {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_allocation_of_a_promise_run),
        cmocka_unit_test_prestate(every_allocation_of_a_pool_run,
                                  (void*)(uintptr_t)1),
        cmocka_unit_test_prestate(every_allocation_of_a_pool_run,
                                  (void*)(uintptr_t)2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
}
