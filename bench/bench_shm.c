/* bench/shm: big values between a pool and a local worker, against
 * memcpy of the same bytes in the same run. Prints
 * "measure<TAB>value<TAB>unit" lines, then a table.
 *
 *   bench-shm [MiB]   (default 1024)
 *
 * Each figure is the median of 3 rounds, the rounds interleaved (memcpy,
 * then the pool, then the next figure), so a passing disturbance moves
 * one sample, not a side:
 *   - memcpy of MiB into memory written before (warm) and into memory
 *     mapped fresh (its pages faulted in, as any new buffer's are);
 *   - an array of MiB float64s, sent to a worker that sums them (a
 *     reduction back): bytes / time from submit to the sum. Made in
 *     ordinary memory, the send copies it once into a new segment; made
 *     in a segment (vow_value_new_shared_bin), nothing is copied;
 *   - the same array to 8 tasks on 2 workers: the parent's peak RSS
 *     growth over the array itself;
 *   - 60 MiB each way (echo) by shared memory and by the channel (the
 *     most a frame holds): what the threshold buys where both can go.
 * This binary is its own worker (see main). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_functions.h"
#include "bench_pool.h"
#include "vow/vow.h"

#define MiB ((size_t)1 << 20)
#define ROUNDS 3

static void out(const char* measure, double value, const char* unit) {
  printf("%s\t%.2f\t%s\n", measure, value, unit);
  fflush(stdout);
}

static double now_s(void) {
  return (double)uv_hrtime() / 1e9;
}

static double median3(double* x) {
  qsort(x, ROUNDS, sizeof(*x), bench_cmp_double);
  return x[ROUNDS / 2];
}

/* VmRSS or VmHWM (the peak since clear_peak), KiB. */
static long status_kib(const char* field) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  size_t len = strlen(field);
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      kib = atol(line + len + 1);
      break;
    }
  fclose(f);
  return kib;
}

/* Starts VmHWM again from the RSS now. */
static void clear_peak(void) {
  FILE* f = fopen("/proc/self/clear_refs", "w");
  if (f == NULL)
    return;
  fputs("5", f);
  fclose(f);
}

/* memcpy of n bytes into memory mapped fresh (*fresh) and then into the
 * same memory again (the return): GB/s. */
static double memcpy_gbs(const void* src, size_t n, double* fresh) {
  void* dst =
      mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  double t0, t;
  if (dst == MAP_FAILED)
    abort();
  t0 = now_s();
  memcpy(dst, src, n);
  *fresh = (double)n / (now_s() - t0) / 1e9;
  t0 = now_s();
  memcpy(dst, src, n);
  t = now_s() - t0;
  munmap(dst, n);
  return (double)n / t / 1e9;
}

/* The float64s 0, 1, 2... into n bytes at p. */
static void fill_floats(unsigned char* p, size_t n) {
  size_t i;
  for (i = 0; i < n / 8; i++) {
    double x = (double)i;
    memcpy(p + i * 8, &x, 8);
  }
}

/* A msgpack bin of n/8 float64s 0, 1, 2...; its header written in front. */
static vow_value_t* float_array(size_t n) {
  unsigned char* b = malloc(n + 5);
  vow_value_t* v;
  if (b == NULL)
    abort();
  b[0] = 0xc6;
  b[1] = (unsigned char)(n >> 24);
  b[2] = (unsigned char)(n >> 16);
  b[3] = (unsigned char)(n >> 8);
  b[4] = (unsigned char)n;
  fill_floats(b + 5, n);
  v = vow_value_new_msgpack(b, n + 5, NULL);
  free(b);
  if (v == NULL)
    abort();
  return v;
}

static double run_double(vow_ctx_t* ctx, vow_promise_t* p) {
  vow_value_t* v;
  double d = -1;
  if (vow_ctx_wait(ctx, p) != VOW_FULFILLED) {
    fprintf(stderr, "bench-shm: %s\n",
            vow_failure_message(vow_promise_failure(p)));
    abort();
  }
  v = vow_promise_value(p);
  vow_value_get_double(v, &d);
  vow_promise_release(p);
  return d;
}

static vow_pool_t* pool_of(vow_ctx_t* ctx, unsigned workers, uint64_t threshold,
                           unsigned in_flight) {
  vow_pool_options_t o;
  vow_pool_options_init(&o);
  o.workers = workers;
  o.in_flight = in_flight;
  o.functions = bench_functions;
  o.nfunctions = bench_nfunctions;
  o.shm_threshold = threshold;
  return bench_pool_new(ctx, &o);
}

/* The same array made in a segment from the start. */
static vow_value_t* shared_float_array(size_t n) {
  void* p;
  vow_value_t* v = vow_value_new_shared_bin(n, &p, NULL);
  if (v == NULL)
    abort();
  fill_floats(p, n);
  return v;
}

/* Sends n bytes of float64s (made before the clock starts, as a caller
 * has its array, and kept after it, as a caller keeps it: freeing its
 * pages is not part of sending them) and waits for the worker's sum:
 * GB/s. */
static double send_and_reduce_gbs(vow_ctx_t* ctx, vow_pool_t* pool, size_t n,
                                  bool shared) {
  vow_value_t* v = shared ? shared_float_array(n) : float_array(n);
  double t0 = now_s(), t, sum, k = (double)(n / 8);
  sum = run_double(ctx, vow_pool_submit(pool, "sum_f64", vow_value_ref(v)));
  t = now_s() - t0;
  vow_value_release(v);
  if (sum != k * (k - 1) / 2) {
    fprintf(stderr, "bench-shm: the sum is %g, not %g\n", sum, k * (k - 1) / 2);
    abort();
  }
  return (double)n / t / 1e9;
}

/* One array to 8 tasks on 2 workers: the parent's RSS growth, KiB, over
 * the array itself. */
static double eight_tasks_rss_growth_kib(vow_ctx_t* ctx, vow_pool_t* pool,
                                         size_t n) {
  vow_value_t* v = float_array(n);
  vow_promise_t* ps[8];
  long before;
  int i;
  clear_peak();
  before = status_kib("VmRSS");
  for (i = 0; i < 8; i++)
    ps[i] = vow_pool_submit(pool, "sum_f64", vow_value_ref(v));
  for (i = 0; i < 8; i++)
    run_double(ctx, ps[i]);
  vow_value_release(v);
  return (double)(status_kib("VmHWM") - before);
}

/* The array made in a segment, summed by 8 tasks on the pool's workers,
 * which hold several of its tasks at once and so map it once: bytes
 * reduced per second over the 8. */
static double eight_reductions_gbs(vow_ctx_t* ctx, vow_pool_t* pool, size_t n) {
  vow_value_t* v = shared_float_array(n);
  vow_promise_t* ps[8];
  double t0 = now_s(), t;
  int i;
  for (i = 0; i < 8; i++)
    ps[i] = vow_pool_submit(pool, "sum_f64", vow_value_ref(v));
  for (i = 0; i < 8; i++)
    run_double(ctx, ps[i]);
  t = now_s() - t0;
  vow_value_release(v);
  return 8.0 * (double)n / t / 1e9;
}

/* 60 MiB each way (echo): seconds. */
static double echo_s(vow_ctx_t* ctx, vow_pool_t* pool, size_t n) {
  vow_value_t* v = float_array(n);
  double t0 = now_s();
  vow_promise_t* p = vow_pool_submit(pool, "echo", v);
  if (vow_ctx_wait(ctx, p) != VOW_FULFILLED)
    abort();
  vow_promise_release(p);
  return now_s() - t0;
}

int main(int argc, char** argv) {
  size_t n;
  double cp[ROUNDS], fresh[ROUNDS], shm[ROUNDS], made[ROUNDS], rss[ROUNDS],
      e_shm[ROUNDS], e_wire[ROUNDS], eight[ROUNDS];
  char* src;
  vow_ctx_t* ctx;
  vow_pool_t *one, *two, *wire, *held;
  int r;
  vow_worker_main(bench_functions, bench_nfunctions);
  n = (argc > 1 ? (size_t)atol(argv[1]) : 1024) * MiB;
  src = malloc(n);
  if (src == NULL)
    abort();
  memset(src, 1, n);
  ctx = vow_ctx_new(NULL, NULL);
  one = pool_of(ctx, 1, 0, 0);
  two = pool_of(ctx, 2, 0, 0);
  wire = pool_of(ctx, 1, UINT64_MAX, 0);
  held = pool_of(ctx, 2, 0, 4);
  for (r = 0; r < ROUNDS; r++) {
    cp[r] = memcpy_gbs(src, n, &fresh[r]);
    shm[r] = send_and_reduce_gbs(ctx, one, n, false);
    made[r] = send_and_reduce_gbs(ctx, one, n, true);
    rss[r] = eight_tasks_rss_growth_kib(ctx, two, n);
    eight[r] = eight_reductions_gbs(ctx, held, n);
    e_shm[r] = echo_s(ctx, one, 60 * MiB);
    e_wire[r] = echo_s(ctx, wire, 60 * MiB);
  }
  free(src);
  out("memcpy_warm_gbs", median3(cp), "GB/s");
  out("memcpy_fresh_gbs", median3(fresh), "GB/s");
  out("shm_copied_send_reduce_gbs", median3(shm), "GB/s");
  out("shm_made_send_reduce_gbs", median3(made), "GB/s");
  out("shm_8_tasks_peak_rss_growth_mib", median3(rss) / 1024, "MiB");
  out("shm_made_8_reductions_gbs", median3(eight), "GB/s");
  out("echo_60mib_shm_s", median3(e_shm), "s");
  out("echo_60mib_wire_s", median3(e_wire), "s");
  printf("\n%zu MiB of float64s to a worker, summed there (median of %d)\n",
         n / MiB, ROUNDS);
  printf("  memcpy, warm destination        %6.2f GB/s\n", cp[ROUNDS / 2]);
  printf("  memcpy, fresh destination       %6.2f GB/s\n", fresh[ROUNDS / 2]);
  printf(
      "  vow, array in ordinary memory   %6.2f GB/s  (%.2fx warm, %.2fx "
      "fresh memcpy)\n",
      shm[ROUNDS / 2], shm[ROUNDS / 2] / cp[ROUNDS / 2],
      shm[ROUNDS / 2] / fresh[ROUNDS / 2]);
  printf(
      "  vow, array made in a segment    %6.2f GB/s  (%.2fx warm, %.2fx "
      "fresh memcpy)\n",
      made[ROUNDS / 2], made[ROUNDS / 2] / cp[ROUNDS / 2],
      made[ROUNDS / 2] / fresh[ROUNDS / 2]);
  printf(
      "  made in a segment, 8 tasks on 2 workers that map it once\n"
      "                                  %6.2f GB/s  (%.2fx warm, %.2fx "
      "fresh memcpy)\n",
      eight[ROUNDS / 2], eight[ROUNDS / 2] / cp[ROUNDS / 2],
      eight[ROUNDS / 2] / fresh[ROUNDS / 2]);
  printf(
      "  8 tasks on one array, 2 workers: parent peak RSS grew %.0f MiB "
      "over the array\n",
      rss[ROUNDS / 2] / 1024);
  printf(
      "60 MiB each way (echo): shared memory %.3f s, channel %.3f s "
      "(%.1fx)\n",
      e_shm[ROUNDS / 2], e_wire[ROUNDS / 2],
      e_wire[ROUNDS / 2] / e_shm[ROUNDS / 2]);
  bench_pool_end(ctx, one);
  bench_pool_end(ctx, two);
  bench_pool_end(ctx, wire);
  bench_pool_end(ctx, held);
  vow_ctx_close(ctx);
  return 0;
}
