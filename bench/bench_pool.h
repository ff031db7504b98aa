/* bench/bench_pool.h — what the pool benchmarks (pool.c, transport.c)
 * share: a pool that has finished starting, its graceful end, a counting
 * callback, and the per-task submit loop both measure. */
#ifndef VOW_BENCH_POOL_H
#define VOW_BENCH_POOL_H

#include <stdio.h>
#include <stdlib.h>

#include "vow/vow.h"

/* A pool with options o, once every worker has said HELLO: what is
 * measured is work, not start-up. */
static inline vow_pool_t* bench_pool_new(vow_ctx_t* ctx,
                                         const vow_pool_options_t* o) {
  vow_pool_t* pool = vow_pool_new(ctx, o, NULL);
  vow_pool_stats_t st;
  if (pool == NULL)
    abort();
  do {
    uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
    vow_pool_stats(pool, &st);
  } while (st.workers_alive < o->workers);
  return pool;
}

static inline void bench_pool_end(vow_ctx_t* ctx, vow_pool_t* pool) {
  vow_promise_t* done = vow_pool_shutdown(pool, true);
  vow_ctx_wait(ctx, done);
  vow_promise_release(done);
  vow_pool_free(pool);
}

/* Counts a settled task into *(size_t*)data; a failure ends the run. */
static inline vow_outcome_t bench_count(vow_value_t* v, vow_failure_t* f,
                                        void* data) {
  (*(size_t*)data)++;
  if (f) {
    fprintf(stderr, "bench: %s\n", vow_failure_message(f));
    abort();
  }
  vow_value_release(v);
  return vow_ok(NULL);
}

/* n no-op tasks, each submitted alone with its own promise: tasks/s. */
static inline double bench_noops_per_s(vow_ctx_t* ctx, vow_pool_t* pool,
                                       size_t n) {
  size_t done = 0, i;
  uint64_t t0 = uv_hrtime();
  for (i = 0; i < n; i++)
    vow_promise_release(
        vow_add_both(vow_pool_submit(pool, "noop", NULL), bench_count, &done));
  while (done < n)
    uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
  return (double)n / ((double)(uv_hrtime() - t0) / 1e9);
}

/* n sequential round trips of one small task after `warm` unmeasured
 * ones: each one's microseconds into us[0..n). */
static inline void bench_round_trips(vow_ctx_t* ctx, vow_pool_t* pool,
                                     double* us, size_t n, size_t warm) {
  size_t i;
  for (i = 0; i < n + warm; i++) {
    uint64_t t0 = uv_hrtime();
    vow_promise_t* p = vow_pool_submit(pool, "echo", vow_value_new_int(7));
    vow_ctx_wait(ctx, p);
    vow_promise_release(p);
    if (i >= warm)
      us[i - warm] = (double)(uv_hrtime() - t0) / 1e3;
  }
}

/* For qsort over doubles. */
static inline int bench_cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

#endif
