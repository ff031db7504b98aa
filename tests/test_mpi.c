/* One program, run both ways: alone, its pools use local worker
 * processes; under `mpirun -n 3` ranks 1 and 2 become node agents in
 * vow_worker_main and the pools of rank 0 (which runs these tests) put
 * their workers there. Results, task errors, a worker killed by a
 * signal, timeouts and shutdown must behave the same either way. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "pool_helpers.h"

/* The job's ranks, under mpirun or srun --mpi=pmix|pmi2; 1 alone. */
static int job_size(void) {
  const char* s = getenv("OMPI_COMM_WORLD_SIZE");
  if (s == NULL)
    s = getenv("PMI_SIZE");
  if (s == NULL && getenv("PMIX_RANK") != NULL)
    s = getenv("SLURM_STEP_NUM_TASKS");
  return s != NULL ? atoi(s) : 1;
}

/* Our workers carry VOW_TEST_MPI_MARK=<our pid>: other tests' workers
 * may run on this machine at the same time. */
static char mark_var[64];

static vow_pool_options_t mpi_defaults(unsigned workers) {
  static const char* mark[2] = {mark_var, NULL};
  vow_pool_options_t o = defaults(workers);
  snprintf(mark_var, sizeof(mark_var), "VOW_TEST_MPI_MARK=%d", (int)getpid());
  o.env = mark;
  o.stderr_mode = VOW_STDERR_INHERIT;
  return o;
}

/* Processes on this machine started by these tests' pools; with pids,
 * up to max of them into pids. */
static int find_marked_workers(int* found, int max) {
  DIR* d = opendir("/proc");
  struct dirent* e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    char path[300], env[65536];
    FILE* f;
    size_t len, at;
    if (atoi(e->d_name) <= 0)
      continue;
    snprintf(path, sizeof(path), "/proc/%s/environ", e->d_name);
    if ((f = fopen(path, "r")) == NULL)
      continue;
    len = fread(env, 1, sizeof(env) - 1, f);
    fclose(f);
    env[len] = '\0';
    for (at = 0; at < len; at += strlen(env + at) + 1)
      if (strcmp(env + at, mark_var) == 0) {
        if (n < max)
          found[n] = atoi(e->d_name);
        n++;
      }
  }
  closedir(d);
  return n;
}

static int count_marked_workers(void) {
  return find_marked_workers(NULL, 0);
}

static void results_come_from_the_ranks(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(0);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_pool_stats_t st;
  enum { N = 2000, R = 16 };
  vow_promise_t* ps[R];
  int ranks_seen[8] = {0}, i, size = job_size();
  for (i = 0; i < R; i++)
    ps[i] = vow_pool_submit(pool, "parent_rank", num(20));
  for (i = 0; i < R; i++) {
    int64_t rank = run_int(fx, ps[i]);
    if (size == 1) {
      assert_int_equal(rank, -1); /* our own child */
    } else {
      assert_true(rank >= 1 && rank < size && rank < 8);
      ranks_seen[rank]++;
    }
  }
  for (i = 1; i < size && i < 8; i++)
    assert_true(ranks_seen[i] > 0); /* every agent ran some */
  {
    vow_promise_t** all = malloc(N * sizeof(*all));
    for (i = 0; i < N; i++)
      all[i] = vow_pool_submit(pool, "add", pair(i, 7));
    for (i = 0; i < N; i++)
      assert_int_equal(run_int(fx, all[i]), i + 7);
    free(all);
  }
  vow_pool_stats(pool, &st);
  assert_int_equal(st.completed, N + R);
  assert_int_equal(st.worker_deaths, 0);
  end_pool(fx, pool, true);
}

static void task_errors_and_crashes(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_failure_t* f;
  f = run_fail(fx, vow_pool_submit(pool, "fail", num(7)), VOW_FAIL_TASK_ERROR);
  assert_string_equal(vow_failure_message(f), "refused 7");
  assert_string_equal(vow_failure_origin(f)->function, "fail");
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "crash", NULL), VOW_FAIL_WORKER_DIED);
  assert_int_equal(vow_failure_origin(f)->term_signal, SIGSEGV);
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "exit", num(5)), VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "exited with status 5"));
  vow_failure_release(f);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

/* A killer SIGKILLs one of our workers every 40 ms while 4,000 tasks run
 * with retries on: every task settles once, with its right result. The
 * relay sees deaths mid-frame, exits racing data, and restarts. */
typedef struct killer {
  uv_timer_t timer;
  int kills;
  bool closed;
} killer;

static void killer_closed(uv_handle_t* h) {
  ((killer*)h->data)->closed = true;
}

static void kill_one(uv_timer_t* t) {
  killer* k = t->data;
  int victims[16];
  int n = find_marked_workers(victims, 16);
  if (n > 16)
    n = 16;
  if (n > 0 && kill(victims[rand() % n], SIGKILL) == 0)
    k->kills++;
}

/* [a, b, us]: add_after's arguments (a + b, after us microseconds). */
static vow_value_t* sum_after(int64_t a, int64_t b, int64_t us) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  vow_value_t* v;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int64(&pk, a);
  msgpack_pack_int64(&pk, b);
  msgpack_pack_int64(&pk, us);
  v = vow_value_new_msgpack(sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  return v;
}

static vow_outcome_t tally(vow_value_t* v, vow_failure_t* f, void* data) {
  int* got = data; /* got[0]: settled, got[1]: wrong or failed */
  int64_t sum = -1;
  got[0]++;
  if (f != NULL || vow_value_get_int(v, &sum) != 0 || sum != got[2])
    got[1]++;
  vow_value_release(v);
  if (f != NULL)
    vow_failure_release(f);
  return vow_ok(NULL);
}

static void deaths_under_fire(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(2);
  vow_pool_t* pool;
  vow_pool_stats_t st;
  killer k = {.kills = 0};
  enum { N = 4000 };
  static int got[N][3];
  vow_promise_t** ps = malloc(N * sizeof(*ps));
  int i, settled = 0, bad = 0;
  /* The killer picks at random, every 40 ms, and spares no one: a task
   * in flight through 6 of its kills is rightly poison with 5 retries,
   * and a parent slowed down (valgrind) keeps tasks in flight longer.
   * 20 retries make that out of reach, so a wrong or lost result is the
   * pool's fault alone. */
  o.retries = 20;
  pool = make_pool(fx, &o);
  wait_alive(fx, pool, 2);
  uv_timer_init(vow_ctx_loop(fx->ctx), &k.timer);
  k.timer.data = &k;
  uv_timer_start(&k.timer, kill_one, 40, 40);
  for (i = 0; i < N; i++) {
    got[i][0] = got[i][1] = 0;
    got[i][2] = i + 1;
    ps[i] =
        vow_add_both(vow_pool_submit(pool, "add_after", sum_after(i, 1, 500)),
                     tally, got[i]);
  }
  for (i = 0; i < N; i++) {
    vow_ctx_wait(fx->ctx, ps[i]);
    vow_promise_release(ps[i]);
  }
  uv_timer_stop(&k.timer);
  /* k lives on this stack: its timer must be closed before we return,
   * not on some later turn of the loop (after an immediate shutdown, say,
   * there may be none before the context closes). */
  uv_close((uv_handle_t*)&k.timer, killer_closed);
  while (!k.closed)
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_NOWAIT);
  for (i = 0; i < N; i++) {
    settled += got[i][0] == 1;
    bad += got[i][1];
  }
  assert_int_equal(settled, N); /* each exactly once */
  assert_int_equal(bad, 0);
  vow_pool_stats(pool, &st);
  print_message("%d kills, %llu deaths, %llu retried, all %d right\n", k.kills,
                (unsigned long long)st.worker_deaths,
                (unsigned long long)st.retried, N);
  assert_true(k.kills >= 5);
  assert_true(st.worker_deaths >= 5);
  free(ps);
  end_pool(fx, pool, true);
}

/* With stderr relayed, a crash report comes back with the failure from
 * wherever the worker ran. */
static void crash_report_comes_back(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(1);
  vow_pool_t* pool;
  o.stderr_mode = VOW_STDERR_RELAY;
  pool = make_pool(fx, &o);
  expect_crash_report(fx, pool);
  end_pool(fx, pool, true);
}

static void worker_killed_by_a_signal(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(2);
  vow_pool_t* pool;
  o.in_flight = 1; /* one task on each worker */
  pool = make_pool(fx, &o);
  /* The ranks share this machine, so the worker is ours to kill. */
  expect_kill9_fails_only_its_task(fx, pool);
  end_pool(fx, pool, true);
}

static void timeouts_kill_only_the_late(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_promise_t* late = vow_pool_submit_timeout(pool, "sleep", num(10000), 300);
  vow_promise_t* fine = vow_pool_submit_timeout(pool, "sleep", num(50), 5000);
  vow_failure_t* f = run_fail(fx, late, VOW_FAIL_TIMEOUT);
  vow_failure_release(f);
  assert_int_equal(run_int(fx, fine), 50);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

static void shutdown_settles_everything(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  enum { G = 40, I = 20 };
  vow_promise_t *ps[G + I], *done;
  int i, left = 100;
  for (i = 0; i < G; i++)
    ps[i] = vow_pool_submit(pool, "sleep", num(5));
  done = vow_pool_shutdown(pool, true); /* graceful: all of them run */
  for (i = 0; i < G; i++)
    assert_int_equal(run_int(fx, ps[i]), 5);
  assert_int_equal(vow_ctx_wait(fx->ctx, done), VOW_FULFILLED);
  vow_promise_release(done);
  vow_pool_free(pool);

  pool = make_pool(fx, &o);
  wait_alive(fx, pool, 2);
  for (i = 0; i < I; i++)
    ps[i] = vow_pool_submit(pool, "sleep", num(2000));
  end_pool(fx, pool, false); /* immediate: each one cancelled, once */
  for (i = 0; i < I; i++)
    vow_failure_release(run_fail(fx, ps[i], VOW_FAIL_CANCELLED));
  /* No worker outlives its pool, wherever it ran. */
  while (count_marked_workers() > 0 && left-- > 0)
    usleep(20000);
  assert_int_equal(count_marked_workers(), 0);
}

/* 40 MiB each way, several at once: relayed in pieces, in order, none
 * lost, while small tasks go on beside them. */
static void big_values_cross_ranks(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  size_t n = (size_t)40 << 20, len, i;
  char* data = malloc(n);
  vow_promise_t* ps[3];
  const void* back;
  outcome r;
  for (i = 0; i < n; i++)
    data[i] = (char)(i * 31 + (i >> 20));
  for (i = 0; i < 3; i++)
    ps[i] = vow_pool_submit(pool, "echo", vow_value_new_bin(data, n));
  still_serves(fx, pool);
  for (i = 0; i < 3; i++) {
    r = run(fx, ps[i]);
    assert_null(r.f);
    assert_int_equal(vow_value_get_bin(r.v, &back, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    vow_value_release(r.v);
  }
  free(data);
  end_pool(fx, pool, true);
}

/* A worker that closes its channel and lives on is killed, its task
 * failed, and a new worker takes over. */
static void closed_channel_is_a_death(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  expect_closed_channel_death(fx, pool);
  end_pool(fx, pool, true);
}

/* A worker command missing where the workers run: a clear failure after
 * a bounded number of tries, not a hang. */
static void missing_worker_fails_clearly(void** state) {
  static const char* const missing[] = {"/nonexistent/vow-worker", NULL};
  fixture* fx = *state;
  vow_pool_options_t o = mpi_defaults(1);
  vow_pool_t* pool;
  vow_failure_t* f;
  o.worker_argv = missing;
  o.start_attempts = 3;
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 2)),
               VOW_FAIL_WORKER_DIED);
  if (strstr(vow_failure_message(f), "cannot start /nonexistent/vow-worker") ==
          NULL ||
      strcasestr(vow_failure_message(f), "no such file") == NULL ||
      strstr(vow_failure_message(f), "cannot start (3 tries)") == NULL)
    fail_msg("unclear: %s", vow_failure_message(f));
  vow_failure_release(f);
  end_pool(fx, pool, false);
}

/* Closing the context with a pool at work: its workers are killed (and
 * their exits still come back over MPI), the pool freed, the task left
 * pending reported. */
static void context_close_takes_the_pool(void** state) {
  vow_pool_options_t o = mpi_defaults(2);
  int left = 100;
  (void)state;
  close_context_under_busy_pool(&o);
  while (count_marked_workers() > 0 && left-- > 0)
    usleep(20000);
  assert_int_equal(count_marked_workers(), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(void) {
  vow_worker_main(test_functions, test_nfunctions);
  {
    const struct CMUnitTest tests[] = {
        T(results_come_from_the_ranks),
        T(task_errors_and_crashes),
        T(crash_report_comes_back),
        T(deaths_under_fire),
        T(worker_killed_by_a_signal),
        T(timeouts_kill_only_the_late),
        T(shutdown_settles_everything),
        T(big_values_cross_ranks),
        T(closed_channel_is_a_death),
        T(missing_worker_fails_clearly),
        cmocka_unit_test(context_close_takes_the_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
}
