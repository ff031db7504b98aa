/* bench/transport: tiny-task throughput, round-trip latency and idle cost
 * over whichever transport this run uses: pipes to local workers (run
 * alone), launchers (--launcher N/CMD, e.g. ssh to loopback), or the
 * ranks of an MPI job (run under mpirun). Prints
 * "measure<TAB>value<TAB>unit" lines for bench/transport.sh.
 *
 *   transport TASKS TRIPS [--launcher N/CMD]...
 *
 * This binary is its own worker (see main). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_pool.h"
#include "bench_functions.h"
#include "vow/vow.h"

static vow_launcher_t launchers[8];
static size_t nlaunchers;

static void out(const char* measure, double value, const char* unit) {
  printf("%s\t%.2f\t%s\n", measure, value, unit);
  fflush(stdout);
}

/* "N/CMD WORDS" -> a launcher of N slots running CMD split at spaces. */
static void add_launcher(const char* spec) {
  char* copy = strdup(strchr(spec, '/') + 1);
  char** argv = calloc(strlen(copy) + 1, sizeof(char*));
  size_t n = 0;
  char* save = NULL;
  for (char* w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
    argv[n++] = w;
  launchers[nlaunchers].workers = (unsigned)atoi(spec);
  launchers[nlaunchers++].argv = (const char* const*)argv;
}

/* A pool of `workers` (through the launchers, given so many slots), with
 * every HELLO in: start-up is not what is measured. */
static vow_pool_t* make_pool(vow_ctx_t* ctx, unsigned workers) {
  vow_pool_options_t o;
  vow_launcher_t l[8];
  size_t i;
  vow_pool_options_init(&o);
  o.workers = workers;
  o.functions = bench_functions;
  o.nfunctions = bench_nfunctions;
  if (nlaunchers > 0) {
    for (i = 0; i < nlaunchers; i++) {
      l[i] = launchers[i];
      l[i].workers = workers > 1 ? l[i].workers : 1;
    }
    o.launchers = l;
    o.nlaunchers = workers > 1 ? nlaunchers : 1;
  }
  return bench_pool_new(ctx, &o);
}

static vow_outcome_t grab_int(vow_value_t* v, vow_failure_t* f, void* data) {
  if (f)
    abort();
  vow_value_get_int(v, data);
  vow_value_release(v);
  return vow_ok(NULL);
}

static int64_t result_int(vow_ctx_t* ctx, vow_promise_t* p) {
  int64_t i = -1;
  vow_add_both(p, grab_int, &i);
  vow_ctx_wait(ctx, p);
  vow_promise_release(p);
  return i;
}

/* Tasks submitted one by one, each with its own promise, on 2 workers. */
static void throughput(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, 2);
  out("tasks_per_s", bench_noops_per_s(ctx, pool, n), "tasks/s");
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
}

/* Sequential round trips of one small task on one worker. */
static void latency(size_t n) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, 1);
  double* us = malloc(n * sizeof(double));
  bench_round_trips(ctx, pool, us, n, 50);
  qsort(us, n, sizeof(double), bench_cmp_double);
  out("rt_p50_us", us[n / 2], "us");
  out("rt_p99_us", us[n * 99 / 100], "us");
  free(us);
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
}

static double cpu_s_of(int pid) {
  char path[64];
  unsigned long ut = 0, st = 0;
  FILE* f;
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  if ((f = fopen(path, "r")) == NULL)
    return 0;
  /* Fields 14 and 15; the command name (field 2) has no spaces here. */
  if (fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
             &ut, &st) != 2)
    ut = st = 0;
  fclose(f);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* What an idle pool costs: CPU of this process (with the MPI relay
 * thread) and of a worker's parent (an agent rank under MPI) over 2 s
 * with two live workers and nothing to do. */
static void idle_cost(void) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_t* pool = make_pool(ctx, 2);
  int parent = (int)result_int(ctx, vow_pool_submit(pool, "ppid", NULL));
  struct rusage r0, r1;
  double p0, p1;
  vow_promise_t* nap;
  getrusage(RUSAGE_SELF, &r0);
  p0 = parent != (int)getpid() ? cpu_s_of(parent) : 0;
  nap = vow_sleep(ctx, 2000);
  vow_ctx_wait(ctx, nap);
  vow_promise_release(nap);
  getrusage(RUSAGE_SELF, &r1);
  p1 = parent != (int)getpid() ? cpu_s_of(parent) : 0;
#define SECS(t) ((double)(t).tv_sec + (double)(t).tv_usec / 1e6)
  out("idle_cpu_pct_parent",
      100 *
          (SECS(r1.ru_utime) + SECS(r1.ru_stime) - SECS(r0.ru_utime) -
           SECS(r0.ru_stime)) /
          2.0,
      "%");
  out("idle_cpu_pct_agent", 100 * (p1 - p0) / 2.0, "%");
  bench_pool_end(ctx, pool);
  vow_ctx_close(ctx);
}

int main(int argc, char** argv) {
  size_t tasks, trips;
  int i;
  vow_worker_main(bench_functions, bench_nfunctions);
  tasks = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  trips = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
  for (i = 3; i + 1 < argc; i += 2)
    if (strcmp(argv[i], "--launcher") == 0 && strchr(argv[i + 1], '/'))
      add_launcher(argv[i + 1]);
  throughput(tasks);
  latency(trips);
  idle_cost();
  return 0;
}
