/* Hostile workers: tests/hostile_worker.c answers most tasks right and,
 * at random, writes random bytes, stops in mid-message, claims a 4 GiB
 * frame, replies twice, replies to an id it was never sent, says HELLO
 * again or closes its channel and lives on. The parent must never crash
 * or hang, must fail only the tasks of the worker that misbehaved, and
 * must keep serving: every promise settles exactly once, every value
 * that arrives is the right one, and with retries every task succeeds.
 * VOW_QUICK=1 scales it down. */
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

typedef struct tally {
  int settled; /* must end at exactly 1 */
  int wrong;   /* a value that is not 3i + 1 */
  int kind;    /* failure kind, 0 when fulfilled */
  int pid;     /* the failure's worker */
} tally;

typedef struct run_result {
  size_t failed;
  size_t faults[8]; /* by kind, in the worker's order */
  size_t total_faults;
  uint64_t worker_starts;
} run_result;

static const char* const fault_names[] = {
    "garbage", "truncate",    "claim_4g",    "twice",
    "stray",   "hello_again", "close_stdout"};
enum { NFAULTS = sizeof(fault_names) / sizeof(fault_names[0]) };

typedef struct settle_ctx {
  tally* t;
  int64_t want;
  size_t* settled_total;
} settle_ctx;

static vow_outcome_t on_done(vow_value_t* v, vow_failure_t* f, void* data) {
  settle_ctx* s = data;
  s->t->settled++;
  (*s->settled_total)++;
  if (f != NULL) {
    const vow_origin_t* o = vow_failure_origin(f);
    s->t->kind = vow_failure_kind(f);
    s->t->pid = o ? o->pid : -1;
    vow_failure_release(f);
  } else {
    if (int_of(v) != s->want)
      s->t->wrong++;
    vow_value_release(v);
  }
  return vow_ok(NULL);
}

/* The workers that logged a fault, and how many of each kind. */
static size_t read_log(const char* path, int* pids, size_t max, run_result* r) {
  FILE* f = fopen(path, "r");
  char kind[32];
  int pid;
  size_t n = 0;
  if (f == NULL)
    return 0;
  while (fscanf(f, "%d %31s", &pid, kind) == 2) {
    size_t k;
    for (k = 0; k < NFAULTS; k++)
      if (strcmp(kind, fault_names[k]) == 0)
        r->faults[k]++;
    r->total_faults++;
    if (n < max)
      pids[n++] = pid;
  }
  fclose(f);
  return n;
}

static void run_hostile(unsigned workers, unsigned retries, size_t n,
                        unsigned rate, run_result* r) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_options_t o;
  vow_pool_t* pool;
  char dir[] = "/tmp/vow-hostile-XXXXXX";
  char log[64], log_env[96], rate_env[32], seed_env[32];
  const char* argv[] = {HOSTILE_WORKER_BIN, NULL};
  const char* env[4];
  tally* tallies = calloc(n, sizeof(*tallies));
  settle_ctx* ctxs = calloc(n, sizeof(*ctxs));
  int* pids = calloc(100000, sizeof(int));
  size_t i, npids, settled = 0;
  uint64_t deadline;
  assert_non_null(tallies);
  assert_non_null(ctxs);
  assert_non_null(pids);
  assert_non_null(mkdtemp(dir));
  snprintf(log, sizeof(log), "%s/faults", dir);
  snprintf(log_env, sizeof(log_env), "HOSTILE_LOG=%s", log);
  snprintf(rate_env, sizeof(rate_env), "HOSTILE_RATE=%u", rate);
  snprintf(seed_env, sizeof(seed_env), "HOSTILE_SEED=%u",
           workers * 10 + retries);
  env[0] = log_env;
  env[1] = rate_env;
  env[2] = seed_env;
  env[3] = NULL;
  vow_pool_options_init(&o);
  memset(r, 0, sizeof(*r));
  o.workers = workers;
  o.worker_argv = argv;
  o.env = env;
  o.retries = retries;
  o.stall_ms = 100;
  o.stderr_mode = VOW_STDERR_DISCARD;
  o.start_attempts = 1000; /* killed workers are not start failures */
  pool = vow_pool_new(ctx, &o, NULL);
  assert_non_null(pool);
  for (i = 0; i < n; i++) {
    ctxs[i].t = &tallies[i];
    ctxs[i].want = 3 * (int64_t)i + 1;
    ctxs[i].settled_total = &settled;
    vow_promise_release(vow_add_both(
        vow_pool_submit(pool, "calc", vow_value_new_int((int64_t)i)), on_done,
        &ctxs[i]));
  }
  /* Never hang: a bound far above what the run needs. */
  deadline = uv_hrtime() + 240ull * 1000000000ull;
  while (settled < n) {
    uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
    if (uv_hrtime() > deadline)
      fail_msg("hung: %zu of %zu tasks settled after 240 s", settled, n);
  }
  {
    vow_pool_stats_t st;
    vow_promise_t* done;
    vow_pool_stats(pool, &st);
    r->worker_starts = st.worker_starts;
    done = vow_pool_shutdown(pool, true);
    vow_ctx_wait(ctx, done);
    assert_int_equal(vow_promise_state(done), VOW_FULFILLED);
    vow_promise_release(done);
  }
  vow_pool_free(pool);
  vow_ctx_close(ctx);

  npids = read_log(log, pids, 100000, r);
  for (i = 0; i < n; i++) {
    size_t k;
    bool from_faulty = false;
    if (tallies[i].settled != 1)
      fail_msg("task %zu settled %d times", i, tallies[i].settled);
    if (tallies[i].wrong)
      fail_msg("task %zu got a wrong value", i);
    if (tallies[i].kind == 0)
      continue;
    r->failed++;
    if (tallies[i].kind != VOW_FAIL_PROTOCOL &&
        tallies[i].kind != VOW_FAIL_WORKER_DIED &&
        tallies[i].kind != VOW_FAIL_POISON)
      fail_msg("task %zu failed as %s", i,
               vow_failure_kind_name(tallies[i].kind));
    /* Only the misbehaving worker's tasks fail. */
    for (k = 0; k < npids && !from_faulty; k++)
      from_faulty = pids[k] == tallies[i].pid;
    if (!from_faulty)
      fail_msg("task %zu failed on worker %d, which injected no fault", i,
               tallies[i].pid);
  }
  unlink(log);
  rmdir(dir);
  free(pids);
  free(ctxs);
  free(tallies);
}

static void print_faults(const char* what, size_t n, const run_result* r) {
  size_t k;
  printf("# %s: %zu tasks, %zu faults (", what, n, r->total_faults);
  for (k = 0; k < NFAULTS; k++)
    printf("%s%s %zu", k ? ", " : "", fault_names[k], r->faults[k]);
  printf("), %llu worker starts, %zu failed, 0 lost, 0 duplicated\n",
         (unsigned long long)r->worker_starts, r->failed);
}

static unsigned rate(void) {
  return scaled(100) == 100 ? 100 : 10; /* enough faults in a quick run */
}

static void hostile_without_retries(void** state) {
  run_result r;
  size_t n = scaled(20000);
  (void)state;
  run_hostile(2, 0, n, rate(), &r);
  print_faults("2 workers, retries off", n, &r);
  assert_true(r.total_faults > 0);
  assert_true(r.failed > 0);
  assert_true(r.worker_starts > 2);
}

static void hostile_with_retries(void** state) {
  run_result r;
  size_t n = scaled(20000);
  (void)state;
  run_hostile(4, 5, n, rate(), &r);
  print_faults("4 workers, retries 5", n, &r);
  assert_true(r.total_faults > 0);
  assert_int_equal(r.failed, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hostile_without_retries),
      cmocka_unit_test(hostile_with_retries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
