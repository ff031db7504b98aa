/* bench/promise: rates of vow's promise core on four shapes, printed as
 * tab-separated lines "shape<TAB>n<TAB>value<TAB>unit" for bench/run.sh,
 * which sets them beside Node.js's native Promise on the same shapes.
 *
 * Every shape runs twice on one context and both runs are reported: the
 * first ("cold") pays for fresh memory, the second ("warm") finds the
 * promise pool filled, as a long-running program would, just as Node's
 * second run finds its heap grown and its code compiled.
 *
 *   promise [N]     N defaults to 1,000,000
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "vow/vow.h"

static double now_s(void) {
  return (double)uv_hrtime() / 1e9;
}

static vow_outcome_t pass(vow_value_t* v, void* data) {
  (void)data;
  return vow_ok(v);
}

static vow_outcome_t pass_failure(vow_failure_t* f, void* data) {
  (void)data;
  return vow_err(f);
}

static vow_outcome_t count(vow_value_t* v, void* data) {
  (*(size_t*)data)++;
  return vow_ok(v);
}

static const char* run_name = "cold";

static void report(const char* shape, size_t n, double secs) {
  printf("%s\t%zu\t%s\t%.0f\tper_s\n", shape, n, run_name, (double)n / secs);
}

/* One promise, n callbacks on its chain: adding them and running them. */
static void chain(vow_ctx_t* ctx, size_t n, const char* shape) {
  vow_promise_t* p = vow_promise_new(ctx, NULL, NULL);
  double t0 = now_s();
  size_t i;
  for (i = 0; i < n; i++)
    vow_add_callback(p, pass, NULL);
  vow_fulfil(p, NULL);
  vow_ctx_run(ctx);
  report(shape, n, now_s() - t0);
  vow_promise_release(p);
}

/* n promises, one callback each: create, add, fulfil, run, free. */
static void many(vow_ctx_t* ctx, size_t n) {
  size_t calls = 0, i;
  double t0 = now_s();
  for (i = 0; i < n; i++) {
    vow_promise_t* p = vow_promise_new(ctx, NULL, NULL);
    vow_add_callback(p, count, &calls);
    vow_fulfil(p, NULL);
    vow_promise_release(p);
  }
  vow_ctx_run(ctx);
  report("many_promises", n, now_s() - t0);
  if (calls != n)
    abort();
}

static vow_outcome_t wait_next(vow_value_t* v, void* data) {
  vow_value_release(v);
  return vow_wait(data);
}

/* n promises, each waiting on the next; the last settles the lot. */
static void nest(vow_ctx_t* ctx, size_t n) {
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  size_t calls = 0, i;
  double t0 = now_s();
  for (i = 0; i < n; i++)
    ps[i] = vow_promise_new(ctx, NULL, NULL);
  for (i = 0; i + 1 < n; i++) {
    vow_add_callback(ps[i], wait_next, ps[i + 1]);
    vow_fulfil(ps[i], NULL);
  }
  vow_add_callback(ps[0], count, &calls);
  vow_ctx_run(ctx);
  vow_fulfil(ps[n - 1], NULL);
  vow_ctx_run(ctx);
  report("nested_promises", n, now_s() - t0);
  if (calls != 1)
    abort();
  vow_promise_release(ps[0]);
  free(ps);
}

/* Heap bytes per pending promise holding one callback pair. */
static void bytes(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  size_t before, after, i;
  malloc_trim(0);
  before = mallinfo2().uordblks;
  for (i = 0; i < n; i++)
    ps[i] = vow_add_callbacks(vow_promise_new(ctx, NULL, NULL), pass,
                              pass_failure, NULL);
  after = mallinfo2().uordblks;
  /* The pointer array is the benchmark's, not vow's. */
  printf("bytes_per_pending\t%zu\tcold\t%.1f\tbytes\n", n,
         (double)(after - before) / (double)n);
  for (i = 0; i < n; i++) {
    vow_fulfil(ps[i], NULL);
    vow_promise_release(ps[i]);
  }
  vow_ctx_run(ctx);
  free(ps);
  vow_ctx_close(ctx);
}

int main(int argc, char** argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  int run;
  for (run = 0; run < 2; run++) {
    run_name = run == 0 ? "cold" : "warm";
    chain(ctx, n / 10, "chain_small");
    chain(ctx, n, "chain");
    chain(ctx, n * 4, "chain_4x");
    many(ctx, n);
    nest(ctx, n);
  }
  vow_ctx_close(ctx);
  bytes(n); /* on a fresh context: what a new pending promise costs */
  return 0;
}
