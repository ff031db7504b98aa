/* bench/pool: the worker pool's figures, and the floors and ceilings they
 * are held against, measured in one run on this machine. Prints
 * "measure<TAB>value<TAB>unit" lines for bench/run.sh; the Python peers
 * are measured by bench/pool_peers.py in the same invocation.
 *
 *   pool [N]   tasks for the throughput shapes (default 1,000,000)
 *
 * This binary is its own worker (see main). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_pool.h"
#include "bench_functions.h"
#include "vow/vow.h"

static double now_s(void) {
  return (double)uv_hrtime() / 1e9;
}

static void out(const char* measure, double value, const char* unit) {
  printf("%s\t%.2f\t%s\n", measure, value, unit);
  fflush(stdout);
}

static vow_pool_t* make_pool(vow_ctx_t* ctx, unsigned workers) {
  vow_pool_options_t o;
  vow_pool_options_init(&o);
  o.workers = workers;
  o.functions = bench_functions;
  o.nfunctions = bench_nfunctions;
  return bench_pool_new(ctx, &o);
}

/* (a) n no-op tasks, each submitted alone with its own promise. */
static void submit_one_by_one(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, 2);
  out("a_submit_tasks_per_s", bench_noops_per_s(ctx, pool, n), "tasks/s");
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
}

/* (b) map over n items, no chunk size chosen by the user: the items are
 * packed into one msgpack array inside the clock. */
static void map_items(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, 2);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  vow_value_t* items;
  vow_promise_t* all;
  size_t done = 0, i;
  double t0;
  /* The clock covers packing the items, as Python's covers building its
   * list from range(n). */
  t0 = now_s();
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, n);
  for (i = 0; i < n; i++)
    msgpack_pack_uint64(&pk, i);
  items = vow_value_new_msgpack(sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  all = vow_pool_map(pool, "echo", items);
  vow_add_both(all, bench_count, &done);
  vow_ctx_wait(ctx, all);
  out("b_map_items_per_s", (double)n / (now_s() - t0), "items/s");
  vow_promise_release(all);
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
}

static void percentiles(const char* who, double* us, size_t n) {
  char key[64];
  qsort(us, n, sizeof(double), bench_cmp_double);
  snprintf(key, sizeof(key), "c_%s_p50_us", who);
  out(key, us[n / 2], "us");
  snprintf(key, sizeof(key), "c_%s_p99_us", who);
  out(key, us[n * 99 / 100], "us");
}

/* A two-way byte link with a forked child: one socketpair, or two pipes.
 * Forks; in each process `in` and `out` are its own ends, the other's
 * closed (so the last close is an EOF on the other side). Returns the
 * child's pid in the parent, 0 in the child. */
typedef struct raw_link {
  int in, out;
} raw_link;

static pid_t raw_link_fork(bool pipes, raw_link* l) {
  int down[2], up[2];
  pid_t child;
  if (pipes ? pipe(down) != 0 || pipe(up) != 0
            : socketpair(AF_UNIX, SOCK_STREAM, 0, down) != 0)
    abort();
  if ((child = fork()) < 0)
    abort();
  if (child == 0) { /* a socketpair's down[1] is the child's, both ways */
    l->in = pipes ? down[0] : down[1];
    l->out = pipes ? up[1] : down[1];
    close(pipes ? down[1] : down[0]);
    if (pipes)
      close(up[0]);
  } else {
    l->out = pipes ? down[1] : down[0];
    l->in = pipes ? up[0] : down[0];
    close(pipes ? down[0] : down[1]);
    if (pipes)
      close(up[1]);
  }
  return child;
}

static void raw_link_close(bool pipes, raw_link* l) {
  close(l->out);
  if (pipes)
    close(l->in);
}

/* A floor for a round trip: two processes, a 16-byte message each way,
 * blocking reads, over a raw link. The first 100 trips warm up. */
static void floor_trips(bool pipes, double* us, size_t n) {
  raw_link l;
  char msg[16] = {0};
  size_t i;
  pid_t child = raw_link_fork(pipes, &l);
  if (child == 0) {
    while (read(l.in, msg, sizeof(msg)) == (ssize_t)sizeof(msg))
      if (write(l.out, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
        break;
    _exit(0);
  }
  for (i = 0; i < n + 100; i++) {
    uint64_t t0 = uv_hrtime();
    if (write(l.out, msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
        read(l.in, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
      abort();
    if (i >= 100)
      us[i - 100] = (double)(uv_hrtime() - t0) / 1e3;
  }
  raw_link_close(pipes, &l);
  waitpid(child, NULL, 0);
}

/* (c) n sequential round trips of one small task. */
static void round_trips(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, 1);
  double* us = malloc(n * sizeof(double));
  bench_round_trips(ctx, pool, us, n, 100);
  percentiles("vow", us, n);
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);

  floor_trips(false, us, n);
  percentiles("floor", us, n);
  floor_trips(true, us, n);
  percentiles("pipe_floor", us, n);
  free(us);
}

/* Iterations of bench_spin that take about ms milliseconds here. */
static uint64_t calibrate(double ms) {
  uint64_t x, it = 1000000;
  double t0 = now_s(), dt;
  bench_spin(it, &x);
  dt = now_s() - t0;
  return (uint64_t)((double)it * (ms / 1000.0) / dt);
}

/* Seconds for `tasks` spins of `it` iterations on a pool of `workers`. */
static double vow_run(unsigned workers, size_t tasks, uint64_t it) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, workers);
  size_t done = 0, i;
  double t0 = now_s(), secs;
  for (i = 0; i < tasks; i++)
    vow_promise_release(vow_add_both(
        vow_pool_submit(pool, "busy", vow_value_new_int((int64_t)it)),
        bench_count, &done));
  while (done < tasks)
    uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
  secs = now_s() - t0;
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
  return secs;
}

/* The same work in `procs` plain forked processes, task k on k % procs. */
static double fork_run(unsigned procs, size_t tasks, uint64_t it) {
  pid_t kids[8];
  unsigned k;
  uint64_t x;
  double t0 = now_s();
  for (k = 0; k < procs; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      size_t i;
      for (i = k; i < tasks; i += procs)
        bench_spin(it, &x);
      _exit(0);
    }
  }
  for (k = 0; k < procs; k++)
    waitpid(kids[k], NULL, 0);
  return now_s() - t0;
}

static double median3(double* v) {
  qsort(v, 3, sizeof(double), bench_cmp_double);
  return v[1];
}

/* (d) tasks of ~10 ms: the speedup of 2 workers over 1, and the ceiling,
 * the speedup of 2 forked processes over 1 on the same work. Three rounds,
 * each taking all four in turn, so a disturbance moves one round; the
 * medians of the rounds' ratios are reported. */
static void speedup(size_t tasks) {
  uint64_t it = calibrate(10.0);
  double vow_r[3], fork_r[3];
  int round;
  for (round = 0; round < 3; round++) {
    double v1 = vow_run(1, tasks, it), v2 = vow_run(2, tasks, it);
    double f1 = fork_run(1, tasks, it), f2 = fork_run(2, tasks, it);
    vow_r[round] = v1 / v2;
    fork_r[round] = f1 / f2;
  }
  out("d_vow_speedup", median3(vow_r), "x");
  out("d_ceiling_speedup", median3(fork_r), "x");
}

/* The same bytes each way through a bare socketpair or a pair of pipes,
 * best of three like vow: the child reads them all, then sends them all
 * back. MB/s counted both ways. */
static double raw_copy_mb_s(bool pipes, const char* data, size_t bytes) {
  double best = 1e9;
  int round;
  for (round = 0; round < 3; round++) {
    raw_link l;
    char* buf = malloc(bytes);
    size_t got;
    ssize_t k;
    double t0, secs;
    pid_t child = raw_link_fork(pipes, &l);
    if (child == 0) {
      for (got = 0; got < bytes; got += (size_t)k)
        if ((k = read(l.in, buf + got, bytes - got)) <= 0)
          _exit(1);
      for (got = 0; got < bytes; got += (size_t)k)
        if ((k = write(l.out, buf + got, bytes - got)) <= 0)
          _exit(1);
      _exit(0);
    }
    t0 = now_s();
    for (got = 0; got < bytes; got += (size_t)k)
      if ((k = write(l.out, data + got, bytes - got)) <= 0)
        abort();
    for (got = 0; got < bytes; got += (size_t)k)
      if ((k = read(l.in, buf + got, bytes - got)) <= 0)
        abort();
    secs = now_s() - t0;
    if (secs < best)
      best = secs;
    raw_link_close(pipes, &l);
    waitpid(child, NULL, 0);
    free(buf);
  }
  return 2.0 * (double)bytes / best / 1e6;
}

/* (e) a 60 MiB argument and a 60 MiB result, and raw socketpair and
 * pipe bandwidth for the same bytes each way. */
static void bandwidth(size_t bytes) {
  char* data = malloc(bytes);
  memset(data, 0x61, bytes);
  {
    vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
    vow_pool_t* pool = make_pool(ctx, 1);
    double best = 1e9;
    int round;
    for (round = 0; round < 3; round++) {
      vow_value_t* arg = vow_value_new_bin(data, bytes);
      vow_promise_t* p;
      double t0 = now_s();
      p = vow_pool_submit(pool, "echo", arg);
      if (vow_ctx_wait(ctx, p) != VOW_FULFILLED)
        abort();
      vow_promise_release(p);
      if (now_s() - t0 < best)
        best = now_s() - t0;
    }
    out("e_vow_mb_s", 2.0 * (double)bytes / best / 1e6, "MB/s");
    bench_pool_end(ctx, pool);
    vow_ctx_close(ctx);
  }
  out("e_socketpair_mb_s", raw_copy_mb_s(false, data, bytes), "MB/s");
  out("e_pipe_mb_s", raw_copy_mb_s(true, data, bytes), "MB/s");
  free(data);
}

static void ignore_reports(vow_ctx_t* ctx, vow_report_kind_t kind,
                           vow_failure_t* f, void* data) {
  (void)ctx;
  (void)kind;
  (void)f;
  (void)data;
}

/* (f) heap bytes held per queued task, with n queued. */
static void bytes_per_queued(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_options_t o;
  vow_pool_t* pool;
  struct mallinfo2 before, after;
  vow_promise_t* done;
  size_t i;
  vow_pool_options_init(&o);
  o.workers = 2;
  o.functions = bench_functions;
  o.nfunctions = bench_nfunctions;
  pool = vow_pool_new(ctx, &o, NULL);
  malloc_trim(0);
  before = mallinfo2();
  /* The loop has not run: the workers have not said HELLO, so every task
   * stays queued. */
  for (i = 0; i < n; i++)
    vow_promise_release(vow_pool_submit(pool, "noop", NULL));
  after = mallinfo2();
  out("f_bytes_per_queued_task",
      (double)((after.uordblks + after.hblkhd) -
               (before.uordblks + before.hblkhd)) /
          (double)n,
      "bytes");
  /* The queued tasks are cancelled unobserved: that is the point here,
   * so their reports are dropped. */
  vow_ctx_set_report_handler(ctx, ignore_reports, NULL);
  done = vow_pool_shutdown(pool, false);
  vow_ctx_wait(ctx, done);
  vow_promise_release(done);
  vow_pool_free(pool);
  vow_ctx_close(ctx);
}

static long rss_kib(int pid) {
  char path[64], line[256];
  long kib = -1;
  FILE* f;
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

static vow_outcome_t grab(vow_value_t* v, vow_failure_t* f, void* data) {
  vow_value_t** out = data;
  if (f) {
    vow_failure_release(f);
    abort();
  }
  *out = v;
  return vow_ok(NULL);
}

/* Runs the loop until p settles; returns its value (yours). */
static vow_value_t* value_of(vow_ctx_t* ctx, vow_promise_t* p) {
  vow_value_t* v = NULL;
  vow_add_both(p, grab, &v);
  vow_ctx_wait(ctx, p);
  vow_promise_release(p);
  return v;
}

static void nap(vow_ctx_t* ctx, uint64_t ms) {
  vow_promise_t* p = vow_sleep(ctx, ms);
  vow_ctx_wait(ctx, p);
  vow_promise_release(p);
}

/* (g) resident memory of an idle stock vow-worker, fresh and after a
 * task with a 60 MiB argument and one with a 60 MiB result. */
static void worker_rss(const char* worker_bin, const char* plugin,
                       size_t bytes) {
  const char* argv[] = {worker_bin, plugin, NULL};
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_options_t o;
  vow_pool_t* pool;
  vow_value_t* v;
  int64_t pid;
  char* data = calloc(1, bytes);
  vow_pool_options_init(&o);
  o.workers = 1;
  o.worker_argv = argv;
  pool = vow_pool_new(ctx, &o, NULL);
  v = value_of(ctx, vow_pool_submit(pool, "pid", NULL));
  vow_value_get_int(v, &pid);
  vow_value_release(v);
  nap(ctx, 200);
  out("g_worker_rss_idle_kib", (double)rss_kib((int)pid), "KiB");
  vow_value_release(value_of(
      ctx, vow_pool_submit(pool, "echo", vow_value_new_bin(data, bytes))));
  vow_value_release(value_of(
      ctx, vow_pool_submit(pool, "big", vow_value_new_int((int64_t)bytes))));
  nap(ctx, 300);
  out("g_worker_rss_after_60mib_kib", (double)rss_kib((int)pid), "KiB");
  free(data);
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
}

int main(int argc, char** argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
  vow_worker_main(bench_functions, bench_nfunctions);
  submit_one_by_one(n);
  map_items(n);
  round_trips(10000);
  speedup(200);
  bandwidth((size_t)60 << 20);
  bytes_per_queued(n);
  if (argc > 3)
    worker_rss(argv[2], argv[3], (size_t)60 << 20);
  return 0;
}
