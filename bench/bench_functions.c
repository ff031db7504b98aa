/* Task functions for bench/pool: the bench binary serves them as its own
 * worker, and the same file builds the plugin that the idle-memory
 * measurement loads into the stock vow-worker. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "bench_functions.h"

static int noop(vow_task_ctx_t* t, const msgpack_object* a, msgpack_packer* r) {
  (void)a;
  (void)t;
  return msgpack_pack_nil(r);
}

static int echo(vow_task_ctx_t* t, const msgpack_object* a, msgpack_packer* r) {
  (void)t;
  return msgpack_pack_object(r, *a);
}

int bench_spin(uint64_t iterations, uint64_t* out) {
  volatile uint64_t x = 88172645463325252ull;
  uint64_t i;
  for (i = 0; i < iterations; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  *out = x;
  return 0;
}

/* [iterations] of pure CPU work. */
static int busy(vow_task_ctx_t* t, const msgpack_object* a, msgpack_packer* r) {
  uint64_t x;
  (void)t;
  bench_spin(a->via.u64, &x);
  return msgpack_pack_uint64(r, x);
}

/* [bytes] -> a bin that size. */
static int big(vow_task_ctx_t* t, const msgpack_object* a, msgpack_packer* r) {
  static char chunk[65536];
  uint64_t n = a->via.u64, done;
  (void)t;
  msgpack_pack_bin(r, (size_t)n);
  for (done = 0; done < n; done += sizeof(chunk)) {
    size_t k = n - done < sizeof(chunk) ? (size_t)(n - done) : sizeof(chunk);
    msgpack_pack_bin_body(r, chunk, k);
  }
  return 0;
}

/* A bin of float64s -> their sum: a reduction that reads every byte, in
 * eight running sums (as numpy's pairwise sum keeps several), so memory,
 * not one chain of additions, sets its speed. */
static int sum_f64(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  double s[8] = {0}, x[8], sum = 0;
  size_t i, k, n;
  if (a->type != MSGPACK_OBJECT_BIN)
    return vow_task_fail(t, "sum_f64 takes a bin of float64s");
  n = a->via.bin.size / sizeof(double);
  for (i = 0; i + 8 <= n; i += 8) {
    memcpy(x, a->via.bin.ptr + i * sizeof(double), sizeof(x));
    for (k = 0; k < 8; k++)
      s[k] += x[k];
  }
  for (; i < n; i++) {
    memcpy(x, a->via.bin.ptr + i * sizeof(double), sizeof(double));
    s[0] += x[0];
  }
  for (k = 0; k < 8; k++)
    sum += s[k];
  return msgpack_pack_double(r, sum);
}

static int pid(vow_task_ctx_t* t, const msgpack_object* a, msgpack_packer* r) {
  (void)a;
  (void)t;
  return msgpack_pack_int64(r, (int64_t)getpid());
}

/* The worker's parent: the pool's process, or the node agent under MPI. */
static int ppid(vow_task_ctx_t* t, const msgpack_object* a, msgpack_packer* r) {
  (void)a;
  (void)t;
  return msgpack_pack_int64(r, (int64_t)getppid());
}

const vow_function_t bench_functions[] = {
    {"noop", noop}, {"echo", echo}, {"busy", busy},      {"big", big},
    {"pid", pid},   {"ppid", ppid}, {"sum_f64", sum_f64}};
const size_t bench_nfunctions =
    sizeof(bench_functions) / sizeof(bench_functions[0]);

#ifdef VOW_BENCH_PLUGIN
VOW_PLUGIN(bench_functions);
#endif
