/* pi: a Monte Carlo estimate of pi on every core, the program to copy.
 *
 *   vow-pi [SAMPLES]        (default 400,000,000)
 *
 * The samples are split into tasks; each task draws its points from its
 * own seed, which vow derives from the run's seed and the task's index, so
 * the estimate is the same with 1 worker or 64. The program runs the work
 * once on one worker and once on all cores, and prints the estimate, the
 * times and the speedup.
 *
 * This binary is its own worker: main() first hands its function table to
 * vow_worker_main(), which returns at once in the parent and, in a worker,
 * serves tasks and exits. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <vow/vow.h>

#define TASKS 256

/* The task: [samples] -> how many points fell inside the quarter circle. */
static int count_hits(vow_task_ctx_t* task, const msgpack_object* args,
                      msgpack_packer* result) {
  uint64_t s = vow_task_seed(task) | 1, hits = 0, i, n;
  if (args->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return vow_task_fail(task, "count_hits wants a sample count");
  n = args->via.u64;
  for (i = 0; i < n; i++) {
    double x, y;
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27; /* xorshift64* */
    x = (double)((s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    y = (double)((s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
    hits += x * x + y * y <= 1.0;
  }
  return msgpack_pack_uint64(result, hits);
}

static const vow_function_t functions[] = {{"count_hits", count_hits}};

/* Adds up the hits of every task: map fulfils with one msgpack array of
 * the results, in input order. */
static vow_outcome_t sum_hits(vow_value_t* results, void* data) {
  uint64_t* hits = data;
  msgpack_unpacked un;
  uint32_t i;
  msgpack_unpacked_init(&un);
  if (vow_value_unpack(results, &un) == 0 &&
      un.data.type == MSGPACK_OBJECT_ARRAY)
    for (i = 0; i < un.data.via.array.size; i++)
      *hits += un.data.via.array.ptr[i].via.u64;
  msgpack_unpacked_destroy(&un);
  vow_value_release(results);
  return vow_ok(NULL);
}

static vow_outcome_t report_failure(vow_failure_t* f, void* data) {
  char line[1024];
  vow_failure_describe(f, line, sizeof(line));
  fprintf(stderr, "vow-pi: %s\n", line);
  vow_failure_release(f);
  *(int*)data = 1;
  return vow_ok(NULL);
}

/* Runs the estimate on `workers` workers; returns the hits and sets the
 * seconds it took (from submitting the work to the last result). */
static uint64_t estimate(unsigned workers, uint64_t samples, double* secs) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_options_t opt = VOW_POOL_OPTIONS_INIT;
  vow_pool_t* pool;
  vow_value_t* items[TASKS];
  vow_promise_t *all, *done;
  uint64_t hits = 0, start;
  int failed = 0;
  size_t i;
  opt.workers = workers;
  opt.functions = functions;
  opt.nfunctions = 1;
  opt.seed = 42; /* the same estimate on any number of workers */
  pool = vow_pool_new(ctx, &opt, NULL);
  if (pool == NULL) {
    fprintf(stderr, "vow-pi: cannot make a pool\n");
    exit(1);
  }
  /* Time the work, not the start of the workers: wait for their HELLO. */
  {
    vow_pool_stats_t st;
    do {
      uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
      vow_pool_stats(pool, &st);
    } while (st.workers_alive < workers && st.worker_starts < 3 * workers);
  }
  for (i = 0; i < TASKS; i++)
    items[i] = vow_value_new_int(
        (int64_t)(samples / TASKS + (i < samples % TASKS ? 1 : 0)));
  start = uv_hrtime();
  all = vow_pool_map(pool, "count_hits", vow_value_new_array(items, TASKS));
  vow_add_callback(all, sum_hits, &hits);
  vow_add_errback(all, report_failure, &failed);
  vow_ctx_wait(ctx, all);
  *secs = (double)(uv_hrtime() - start) / 1e9;
  vow_promise_release(all);
  done = vow_pool_shutdown(pool, true);
  vow_ctx_wait(ctx, done);
  vow_promise_release(done);
  vow_pool_free(pool);
  vow_ctx_close(ctx);
  if (failed || hits == 0)
    exit(1);
  return hits;
}

int main(int argc, char** argv) {
  uint64_t samples = argc > 1 ? strtoull(argv[1], NULL, 10) : 400000000ull;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  uint64_t one, all;
  double t1, tn;
  vow_worker_main(functions, 1); /* in a worker: serves, never returns */
  if (samples < TASKS)
    samples = TASKS;
  if (cpus < 1)
    cpus = 1;
  printf("Monte Carlo pi: %llu samples in %d tasks\n",
         (unsigned long long)samples, TASKS);
  one = estimate(1, samples, &t1);
  printf("  1 worker:   pi ~ %.8f  in %6.3f s\n",
         4.0 * (double)one / (double)samples, t1);
  all = estimate((unsigned)cpus, samples, &tn);
  printf(
      "  %ld workers:  pi ~ %.8f  in %6.3f s  (speedup %.2fx on %ld "
      "cores)\n",
      cpus, 4.0 * (double)all / (double)samples, tn, t1 / tn, cpus);
  if (one != all) {
    fprintf(stderr,
            "vow-pi: the estimate changed with the number of "
            "workers (%llu != %llu hits)\n",
            (unsigned long long)one, (unsigned long long)all);
    return 1;
  }
  printf("  same estimate on 1 and %ld workers: yes\n", cpus);
  return 0;
}
