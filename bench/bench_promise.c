/* bench/promise: one shape of vow's promise core per process, printed as
 * "shape<TAB>n<TAB>run<TAB>value<TAB>unit" for bench/run.sh, which sets it
 * beside Node.js's native Promise on the same shape (bench/promise.js).
 *
 * Each run is a fresh process, so no shape finds memory another one
 * filled. "cold" times the first run of the shape on a new context;
 * "warm" runs it once untimed, then times a second run, as a long-running
 * program would find it (and as Node's second run finds its heap grown
 * and its code compiled).
 *
 * The memory shapes count what n pending promises add to the heap in
 * every arena, mmap'd blocks included (mallinfo2's uordblks + hblkhd),
 * and to the resident set: a bare pending promise, and one holding a
 * callback pair.
 *
 *   promise SHAPE [N [cold|warm]]   N defaults to 1,000,000
 *   shapes: chain_small chain chain_4x many_promises nested_promises
 *           pending_then_resolve bytes_bare bytes_pair */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* One promise, n callbacks on its chain: adding them and running them. */
static double chain(vow_ctx_t* ctx, size_t n) {
  vow_promise_t* p = vow_promise_new(ctx, NULL, NULL);
  double t0 = now_s(), secs;
  size_t i;
  for (i = 0; i < n; i++)
    vow_add_callback(p, pass, NULL);
  vow_fulfil(p, NULL);
  vow_ctx_run(ctx);
  secs = now_s() - t0;
  vow_promise_release(p);
  return secs;
}

/* n promises, one callback each: create, add, fulfil, run, free. */
static double many(vow_ctx_t* ctx, size_t n) {
  size_t calls = 0, i;
  double t0 = now_s();
  for (i = 0; i < n; i++) {
    vow_promise_t* p = vow_promise_new(ctx, NULL, NULL);
    vow_add_callback(p, count, &calls);
    vow_fulfil(p, NULL);
    vow_promise_release(p);
  }
  vow_ctx_run(ctx);
  if (calls != n)
    abort();
  return now_s() - t0;
}

static vow_outcome_t wait_next(vow_value_t* v, void* data) {
  vow_value_release(v);
  return vow_wait(data);
}

/* n promises, each waiting on the next; the last settles the lot. */
static double nest(vow_ctx_t* ctx, size_t n) {
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  size_t calls = 0, i;
  double t0 = now_s(), secs;
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
  secs = now_s() - t0;
  if (calls != 1)
    abort();
  vow_promise_release(ps[0]);
  free(ps);
  return secs;
}

/* The pool's pattern: n promises made and given a callback while their
 * work is outstanding, then all resolved and their callbacks run. */
static double pending_then_resolve(vow_ctx_t* ctx, size_t n) {
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  size_t calls = 0, i;
  double t0 = now_s(), secs;
  for (i = 0; i < n; i++)
    ps[i] = vow_add_callback(vow_promise_new(ctx, NULL, NULL), count, &calls);
  for (i = 0; i < n; i++) {
    vow_fulfil(ps[i], NULL);
    vow_promise_release(ps[i]);
  }
  vow_ctx_run(ctx);
  secs = now_s() - t0;
  if (calls != n)
    abort();
  free(ps);
  return secs;
}

static double run_shape(vow_ctx_t* ctx, const char* shape, size_t n) {
  if (strcmp(shape, "chain_small") == 0)
    return chain(ctx, n / 10);
  if (strcmp(shape, "chain") == 0)
    return chain(ctx, n);
  if (strcmp(shape, "chain_4x") == 0)
    return chain(ctx, n * 4);
  if (strcmp(shape, "many_promises") == 0)
    return many(ctx, n);
  if (strcmp(shape, "nested_promises") == 0)
    return nest(ctx, n);
  if (strcmp(shape, "pending_then_resolve") == 0)
    return pending_then_resolve(ctx, n);
  fprintf(stderr, "bench-promise: unknown shape %s\n", shape);
  exit(2);
}

static size_t shape_count(const char* shape, size_t n) {
  if (strcmp(shape, "chain_small") == 0)
    return n / 10;
  if (strcmp(shape, "chain_4x") == 0)
    return n * 4;
  return n;
}

static size_t heap_bytes(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

static size_t rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
    abort();
  fclose(f);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* What n pending promises (with a callback pair when pair is set) add to
 * the heap and to the resident set. The benchmark's own array of
 * pointers is made and touched before the first reading. */
static void bytes(const char* shape, size_t n, bool pair) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t** ps = calloc(n, sizeof(*ps));
  size_t heap0, rss0, heap1, rss1, i;
  memset(ps, 1, n * sizeof(*ps));
  malloc_trim(0);
  heap0 = heap_bytes();
  rss0 = rss_bytes();
  for (i = 0; i < n; i++) {
    ps[i] = vow_promise_new(ctx, NULL, NULL);
    if (pair)
      vow_add_callbacks(ps[i], pass, pass_failure, NULL);
  }
  heap1 = heap_bytes();
  rss1 = rss_bytes();
  printf("%s_heap\t%zu\tcold\t%.1f\tbytes\n", shape, n,
         (double)(heap1 - heap0) / (double)n);
  printf("%s_rss\t%zu\tcold\t%.1f\tbytes\n", shape, n,
         (double)(rss1 - rss0) / (double)n);
  for (i = 0; i < n; i++) {
    vow_fulfil(ps[i], NULL);
    vow_promise_release(ps[i]);
  }
  vow_ctx_run(ctx);
  free(ps);
  vow_ctx_close(ctx);
}

int main(int argc, char** argv) {
  const char* shape = argc > 1 ? argv[1] : "chain";
  size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
  const char* run = argc > 3 ? argv[3] : "cold";
  vow_ctx_t* ctx;
  double secs;
  if (strcmp(shape, "bytes_bare") == 0 || strcmp(shape, "bytes_pair") == 0) {
    bytes(shape, n, strcmp(shape, "bytes_pair") == 0);
    return 0;
  }
  ctx = vow_ctx_new(NULL, NULL);
  if (strcmp(run, "warm") == 0)
    run_shape(ctx, shape, n);
  secs = run_shape(ctx, shape, n);
  printf("%s\t%zu\t%s\t%.0f\tper_s\n", shape, shape_count(shape, n), run,
         (double)shape_count(shape, n) / secs);
  vow_ctx_close(ctx);
  return 0;
}
