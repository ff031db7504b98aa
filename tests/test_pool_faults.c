/* Pool faults found from outside: an immediate shutdown with a reply in
 * the pipe, a program that forgets vow_worker_main(), out-of-range
 * retries, map replies of the wrong shape, workers that leave a process
 * holding their channel, workers killed before HELLO, a worker whose
 * decoder runs out of memory. This test binary is its own worker; the
 * protocol-level misbehaviour comes from tests/hostile_worker.c with
 * HOSTILE_FAULT set. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_helpers.h"

static void nap(fixture* fx, uint64_t ms) {
  vow_promise_t* p = vow_sleep(fx->ctx, ms);
  vow_ctx_wait(fx->ctx, p);
  vow_promise_release(p);
}

/* The one child of this process, or 0 when there is none; -1 when there
 * are several. */
static int only_child(void) {
  int pid = 0, n = list_children(&pid, 1);
  return n == 1 ? pid : n == 0 ? 0 : -1;
}

/* A reply already in the pipe when an immediate shutdown settles its
 * task: the reply is stale, the promise settles once, as cancelled. The
 * loop is kept from running (usleep) so that the reply arrives after the
 * shutdown; without that wait the reply may come first, and the test
 * then checks the ordinary path instead. */
static void immediate_shutdown_with_reply_waiting(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_promise_t* p;
  vow_promise_t* done;
  outcome r = {NULL, NULL, 0};
  wait_alive(fx, pool, 1);
  p = vow_pool_submit(pool, "add", pair(1, 2)); /* sent at once: idle */
  vow_add_both(p, keep, &r);
  usleep(300 * 1000);
  done = vow_pool_shutdown(pool, false);
  assert_int_equal(vow_ctx_wait(fx->ctx, done), VOW_FULFILLED);
  vow_ctx_wait(fx->ctx, p);
  assert_int_equal(r.settled, 1);
  assert_non_null(r.f);
  assert_int_equal(vow_failure_kind(r.f), VOW_FAIL_CANCELLED);
  vow_failure_release(r.f);
  vow_promise_release(p);
  vow_promise_release(done);
  vow_pool_free(pool);
}

/* Here, in a process that looks like a worker, vow_pool_new refuses. */
static void pool_refused_in_a_worker_process(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  int err = 0;
  setenv("VOW_WORKER_CHANNEL", "3", 1);
  assert_null(vow_pool_new(fx->ctx, &o, &err));
  unsetenv("VOW_WORKER_CHANNEL");
  assert_int_equal(err, UV_EPERM);
}

/* A worker program that forgets vow_worker_main() (VOW_TEST_START=forget
 * in main below) cannot start: its pool refuses, it exits, and the
 * parent gives the slot up after its tries, with the advice in the
 * failure. No worker of a worker is ever started. */
static void forgotten_worker_main_fails_clearly(void** state) {
  static const char* const env[] = {"VOW_TEST_START=forget", NULL};
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_failure_t* f;
  vow_pool_stats_t st;
  o.env = env;
  o.start_attempts = 2;
  o.stderr_mode = VOW_STDERR_RELAY; /* the failure quotes its stderr */
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 2)),
               VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "cannot start (2 tries)"));
  assert_non_null(
      strstr(vow_failure_message(f), "call vow_worker_main() first"));
  vow_failure_release(f);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 2);
  end_pool(fx, pool, false);
  assert_int_equal(count_children(), 0);
}

/* The same program, but one that lives on after its pool was refused and
 * never says HELLO: bounded by hello_timeout_ms, each such start counts as
 * a failed one, and none is left running. */
static void worker_that_never_says_hello(void** state) {
  static const char* const env[] = {"VOW_TEST_START=forget_and_live", NULL};
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_failure_t* f;
  o.env = env;
  o.start_attempts = 2;
  o.hello_timeout_ms = 300;
  o.stderr_mode = VOW_STDERR_RELAY;
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 2)),
               VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "cannot start (2 tries)"));
  assert_non_null(
      strstr(vow_failure_message(f), "did not say HELLO within 300 ms"));
  assert_non_null(
      strstr(vow_failure_message(f), "call vow_worker_main() first"));
  vow_failure_release(f);
  end_pool(fx, pool, false);
  assert_int_equal(count_children(), 0);
}

static void retries_out_of_range_refused(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  int err = 0;
  o.retries = VOW_POOL_MAX_RETRIES + 1;
  assert_null(vow_pool_new(fx->ctx, &o, &err));
  assert_int_equal(err, UV_EINVAL);
  o.retries = 100000;
  assert_null(vow_pool_new(fx->ctx, &o, &err));
  o.retries = VOW_POOL_MAX_RETRIES;
  pool = make_pool(fx, &o);
  assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(2, 3))), 5);
  end_pool(fx, pool, true);
}

/* Options carry their size: ones never initialised are refused, and so
 * are ones from a newer header with a field set that this library does
 * not have; a newer header's fields left at their defaults are fine. */
static void options_carry_their_size(void** state) {
  fixture* fx = *state;
  struct {
    vow_pool_options_t known;
    uint64_t newer_field;
  } newer;
  vow_pool_options_t o;
  vow_pool_t* pool;
  int err = 0;
  memset(&o, 0, sizeof(o));
  o.workers = 1;
  assert_null(vow_pool_new(fx->ctx, &o, &err));
  assert_int_equal(err, UV_EINVAL);
  memset(&newer, 0, sizeof(newer));
  newer.known = defaults(1);
  newer.known.size = sizeof(newer);
  newer.newer_field = 7;
  err = 0;
  assert_null(vow_pool_new(fx->ctx, &newer.known, &err));
  assert_int_equal(err, UV_EINVAL);
  newer.newer_field = 0;
  pool = make_pool(fx, &newer.known);
  assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(2, 3))), 5);
  end_pool(fx, pool, true);
}

static vow_pool_t* hostile_pool(fixture* fx, const char* fault,
                                unsigned retries, char* env_buf) {
  static const char* argv[] = {HOSTILE_WORKER_BIN, NULL};
  static const char* env[2];
  vow_pool_options_t o;
  vow_pool_options_init(&o);
  o.workers = 1;
  o.worker_argv = argv;
  o.retries = retries;
  o.start_attempts = 3;
  o.stderr_mode = VOW_STDERR_DISCARD;
  sprintf(env_buf, "HOSTILE_FAULT=%s", fault);
  env[0] = env_buf;
  env[1] = NULL;
  o.env = env;
  return make_pool(fx, &o);
}

static vow_value_t* ints(int n) {
  vow_value_t* items[16];
  vow_value_t* arr;
  int i;
  for (i = 0; i < n; i++)
    items[i] = vow_value_new_int(i);
  arr = vow_value_new_array(items, (size_t)n);
  return arr;
}

/* A chunk's reply with too few, too many or no array of results is a
 * protocol break of that worker: the map fails (or, with retries, ends
 * as poison) instead of yielding a corrupt array or waiting forever. */
static void map_replies_of_the_wrong_shape(void** state) {
  static const char* const faults[] = {"maps_short", "maps_long",
                                       "maps_not_array"};
  fixture* fx = *state;
  char env_buf[64];
  size_t i;
  for (i = 0; i < 3; i++) {
    vow_pool_t* pool = hostile_pool(fx, faults[i], 0, env_buf);
    vow_failure_t* f =
        run_fail(fx, vow_pool_map(pool, "calc", ints(10)), VOW_FAIL_PROTOCOL);
    assert_non_null(strstr(vow_failure_message(f), "map chunk"));
    vow_failure_release(f);
    end_pool(fx, pool, false);
    pool = hostile_pool(fx, faults[i], 2, env_buf);
    f = run_fail(fx, vow_pool_map(pool, "calc", ints(10)), VOW_FAIL_POISON);
    vow_failure_release(f);
    end_pool(fx, pool, false);
  }
}

/* An honest map through the same worker, so the cases above fail for
 * the fault and nothing else. */
static void map_through_the_hostile_worker(void** state) {
  fixture* fx = *state;
  char env_buf[64];
  vow_pool_t* pool = hostile_pool(fx, "none", 0, env_buf);
  outcome r = run(fx, vow_pool_map(pool, "calc", ints(10)));
  msgpack_unpacked un;
  uint32_t i;
  assert_null(r.f);
  msgpack_unpacked_init(&un);
  assert_int_equal(vow_value_unpack(r.v, &un), 0);
  assert_int_equal(un.data.via.array.size, 10);
  for (i = 0; i < 10; i++)
    assert_int_equal(un.data.via.array.ptr[i].via.i64, 3 * i + 1);
  msgpack_unpacked_destroy(&un);
  vow_value_release(r.v);
  end_pool(fx, pool, true);
}

/* A task error's detail (a Python worker's traceback) reaches the
 * failure, beside its message and origin. */
static void task_errors_keep_their_detail(void** state) {
  fixture* fx = *state;
  char env_buf[64];
  vow_pool_t* pool = hostile_pool(fx, "error_detail", 0, env_buf);
  vow_failure_t* f =
      run_fail(fx, vow_pool_submit(pool, "calc", num(1)), VOW_FAIL_TASK_ERROR);
  assert_string_equal(vow_failure_message(f), "ValueError: boom");
  assert_non_null(vow_failure_detail(f));
  assert_non_null(strstr(vow_failure_detail(f), "Traceback (most recent"));
  assert_true(vow_failure_origin(f)->pid > 0);
  vow_failure_release(f);
  end_pool(fx, pool, false);
}

/* Under a launcher the pid a worker's HELLO gives is another machine's:
 * killing and reaping it must take the launcher's process group, never a
 * local group that happens to bear that number. */
static void launcher_worker_pid_means_nothing_here(void** state) {
  static const char* const env_argv[] = {"env", NULL};
  static const char* argv[] = {HOSTILE_WORKER_BIN, NULL};
  const vow_launcher_t launchers[] = {{1, env_argv}};
  fixture* fx = *state;
  char pid_buf[64];
  const char* env[] = {pid_buf, "HOSTILE_FAULT=silent", NULL};
  vow_pool_options_t o;
  vow_pool_t* pool;
  vow_failure_t* f;
  int status;
  pid_t bystander = fork();
  assert_true(bystander >= 0);
  if (bystander == 0) {
    setpgid(0, 0);
    alarm(60);
    for (;;)
      pause();
  }
  setpgid(bystander, bystander); /* a group leader before the pool runs */
  snprintf(pid_buf, sizeof(pid_buf), "HOSTILE_HELLO_PID=%d", (int)bystander);
  vow_pool_options_init(&o);
  o.worker_argv = argv;
  o.launchers = launchers;
  o.nlaunchers = 1;
  o.env = env;
  o.timeout_ms = 200;
  o.stderr_mode = VOW_STDERR_DISCARD;
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "calc", num(1)), VOW_FAIL_TIMEOUT);
  assert_int_equal(vow_failure_origin(f)->pid, bystander);
  vow_failure_release(f);
  end_pool(fx, pool, false);
  assert_int_equal(waitpid(bystander, &status, WNOHANG), 0);
  kill(bystander, SIGKILL);
  assert_int_equal(waitpid(bystander, &status, 0), bystander);
}

/* A worker that exits leaving a child with its channel open is dead when
 * its pid exits; one that lives on silent is bounded by the task
 * timeout, and killing it takes its child too (its process group). */
static void workers_that_leave_a_process_behind(void** state) {
  fixture* fx = *state;
  char env_buf[64];
  vow_pool_t* pool = hostile_pool(fx, "fork_hold_die", 0, env_buf);
  vow_failure_t* f =
      run_fail(fx, vow_pool_submit(pool, "calc", num(1)), VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "exited with status 0"));
  vow_failure_release(f);
  end_pool(fx, pool, false);

  pool = hostile_pool(fx, "fork_hold_live", 0, env_buf);
  f = run_fail(fx, vow_pool_submit_timeout(pool, "calc", num(1), 300),
               VOW_FAIL_TIMEOUT);
  vow_failure_release(f);
  end_pool(fx, pool, false);

  pool = hostile_pool(fx, "silent", 3, env_buf);
  f = run_fail(fx, vow_pool_submit_timeout(pool, "calc", num(1), 300),
               VOW_FAIL_TIMEOUT);
  vow_failure_release(f);
  end_pool(fx, pool, false);
  assert_int_equal(count_children(), 0);
}

/* Workers SIGKILLed from outside before their HELLO, more times than
 * start_attempts: deaths, not failed starts, so the pool keeps its slot
 * and serves once they are let through. They wait at a gate (a file) so
 * that each can be killed before it says HELLO. */
static void killed_before_hello_is_not_a_failed_start(void** state) {
  fixture* fx = *state;
  char self[4096], gate[64], gate_env[96];
  const char* argv[] = {
      "/bin/sh", "-c",
      "while [ ! -e \"$VOW_TEST_GATE\" ]; do sleep 0.01; done; exec \"$0\"",
      self, NULL};
  const char* env[] = {gate_env, NULL};
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_pool_stats_t st;
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  int kills = 0, last = 0, rounds = 0;
  FILE* g;
  assert_true(len > 0);
  self[len] = '\0';
  snprintf(gate, sizeof(gate), "/tmp/vow-gate-%d", (int)getpid());
  snprintf(gate_env, sizeof(gate_env), "VOW_TEST_GATE=%s", gate);
  unlink(gate);
  o.worker_argv = argv;
  o.env = env;
  o.start_attempts = 2;
  pool = make_pool(fx, &o);
  while (kills < 5) {
    int pid = only_child();
    assert_true(rounds++ < 2000);
    if (pid > 0 && pid != last) {
      assert_int_equal(kill(pid, SIGKILL), 0);
      last = pid;
      kills++;
    }
    nap(fx, 5);
  }
  g = fopen(gate, "w");
  assert_non_null(g);
  fclose(g);
  assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(20, 22))), 42);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.slots_given_up, 0);
  assert_true(st.worker_starts >= 6);
  end_pool(fx, pool, true);
  unlink(gate);
}

/* A worker whose decoder cannot get the memory for a frame (an address
 * space limit below the argument's size) exits with a report; it does not
 * spin. The task's own timeout only bounds the test if it did. */
static void worker_out_of_memory_for_a_frame_exits(void** state) {
#ifdef UNDER_ASAN
  (void)state;
  skip(); /* the sanitizer's shadow memory needs more address space */
#else
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_failure_t* f;
  size_t n = (size_t)60 << 20;
  char* big = calloc(1, n);
  o.limits = "as=50000000";
  o.stderr_mode = VOW_STDERR_RELAY;
  o.shm_threshold = UINT64_MAX; /* the channel's decoder (test_shm: mapping) */
  pool = make_pool(fx, &o);
  f = run_fail(
      fx,
      vow_pool_submit_timeout(pool, "echo", vow_value_new_bin(big, n), 20000),
      VOW_FAIL_WORKER_DIED);
  assert_non_null(vow_failure_detail(f));
  assert_non_null(strstr(vow_failure_detail(f), "cannot read the next"));
  vow_failure_release(f);
  free(big);
  end_pool(fx, pool, false);
#endif
}

/* Our stderr is a full pipe that nobody reads: relayed worker lines must
 * not block the loop, so a task timeout and a timer still fire on time;
 * lines that do not fit are dropped and counted in a note once stderr is
 * read again. alarm() ends the test if the loop is stuck. */
static void stuck_stderr_does_not_stop_the_loop(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t *ps[64], *slow, *timer;
  vow_failure_t* f;
  int pipe_fds[2], saved, flags, i;
  unsigned watchdog;
  char buf[65536];
  size_t got = 0;
  static char text[1 << 21]; /* what came after the filler bytes */
  assert_int_equal(pipe(pipe_fds), 0);
  flags = fcntl(pipe_fds[1], F_GETFL);
  fcntl(pipe_fds[1], F_SETFL, flags | O_NONBLOCK);
  memset(buf, 'x', sizeof(buf));
  while (write(pipe_fds[1], buf, sizeof(buf)) > 0 || errno == EINTR) {
  }
  assert_int_equal(errno, EAGAIN);
  fcntl(pipe_fds[1], F_SETFL, flags); /* full, and blocking */
  saved = dup(2);
  dup2(pipe_fds[1], 2);
  watchdog = alarm(60);
  o.stderr_mode = VOW_STDERR_RELAY;
  pool = make_pool(fx, &o);
  for (i = 0; i < 64; i++)
    ps[i] = vow_pool_submit(pool, "spew", num(2000)); /* 2000 lines each */
  slow = vow_pool_submit_timeout(pool, "sleep", num(30000), 300);
  timer = vow_sleep(fx->ctx, 200);
  assert_int_equal(vow_ctx_wait(fx->ctx, timer), VOW_FULFILLED);
  for (i = 0; i < 64; i++)
    assert_int_equal(run_int(fx, ps[i]), 2000);
  f = run_fail(fx, slow, VOW_FAIL_TIMEOUT);
  vow_failure_release(f);
  alarm(watchdog);
  /* Read stderr again: the relay catches up and says what it dropped. */
  fcntl(pipe_fds[0], F_SETFL, fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
  for (i = 0;
       i < 2000 && strstr(text, "lines of worker stderr dropped") == NULL;
       i++) {
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n > 0) {
      ssize_t k;
      for (k = 0; k < n; k++)
        if (buf[k] != 'x' && got < sizeof(text) - 1)
          text[got++] = buf[k];
      text[got] = '\0';
    } else {
      nap(fx, 5);
    }
  }
  dup2(saved, 2);
  close(saved);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  assert_non_null(strstr(text, "[worker 0 pid"));
  assert_non_null(strstr(text, "lines of worker stderr dropped"));
  end_pool(fx, pool, false);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(void) {
  const char* start = getenv("VOW_TEST_START");
  if (start && strncmp(start, "forget", 6) == 0 &&
      getenv("VOW_WORKER_CHANNEL")) {
    /* A program whose main() forgot vow_worker_main(): it makes a pool
     * right away, as its parent did; "forget_and_live" then goes on with
     * something else. */
    vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
    vow_pool_options_t o = defaults(1);
    int err = 0;
    vow_pool_t* pool = vow_pool_new(ctx, &o, &err);
    if (pool == NULL && strcmp(start, "forget_and_live") == 0)
      for (;;)
        pause();
    if (pool == NULL)
      return 1;
    vow_ctx_run(ctx);
    return 0;
  }
  vow_worker_main(test_functions, test_nfunctions);
  alarm(300); /* a hang is a failure that names its test, not a timeout */
  {
    const struct CMUnitTest tests[] = {
        T(immediate_shutdown_with_reply_waiting),
        T(pool_refused_in_a_worker_process),
        T(forgotten_worker_main_fails_clearly),
        T(worker_that_never_says_hello),
        T(retries_out_of_range_refused),
        T(options_carry_their_size),
        T(map_through_the_hostile_worker),
        T(launcher_worker_pid_means_nothing_here),
        T(task_errors_keep_their_detail),
        T(map_replies_of_the_wrong_shape),
        T(workers_that_leave_a_process_behind),
        T(killed_before_hello_is_not_a_failed_start),
        T(worker_out_of_memory_for_a_frame_exits),
        T(stuck_stderr_does_not_stop_the_loop),
    };
    if (getenv("VOW_TEST_FILTER"))
      cmocka_set_test_filter(getenv("VOW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
}
