/* The worker pool with real worker processes: this test binary is its own
 * worker (see main). Every fault is made for real: kill -9, SIGSEGV, early
 * exits, garbage on the channel, hangs, stdout writes; after each, every
 * promise has settled exactly once and the pool still serves. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_helpers.h"

/* ---- helpers --------------------------------------------------------- */

/* A worker that crashes before its set-up dies of the signal, unless
 * AddressSanitizer's own handler catches it first and exits with 1. */
#if defined(__SANITIZE_ADDRESS__)
#define SEGV_AT_START "exited with status 1"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEGV_AT_START "exited with status 1"
#endif
#endif
#ifndef SEGV_AT_START
#define SEGV_AT_START "signal 11"
#endif

static int count_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  int n = 0;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

/* ---- results ------------------------------------------------------- */

static void results_settle_promises(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  enum { N = 1000 };
  vow_promise_t* ps[N];
  vow_pool_stats_t st;
  int i;
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "add", pair(i, i));
  for (i = 0; i < N; i++)
    assert_int_equal(run_int(fx, ps[i]), 2 * i);
  wait_alive(fx, pool, 2); /* one may have done all the work alone */
  vow_pool_stats(pool, &st);
  assert_int_equal(st.submitted, N);
  assert_int_equal(st.completed, N);
  assert_int_equal(st.failed, 0);
  assert_int_equal(st.queued, 0);
  assert_int_equal(st.in_flight, 0);
  assert_int_equal(st.workers_alive, 2);
  end_pool(fx, pool, true);
}

static void map_keeps_input_order(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  enum { N = 5000 };
  vow_value_t* items[N];
  outcome out;
  msgpack_unpacked un;
  vow_failure_t* f;
  int i;
  for (i = 0; i < N; i++)
    items[i] = pair(i, 1000);
  out = run(fx, vow_pool_map(pool, "add", vow_value_new_array(items, N)));
  assert_null(out.f);
  assert_int_equal(vow_value_array_len(out.v), N);
  msgpack_unpacked_init(&un);
  assert_int_equal(vow_value_unpack(out.v, &un), 0);
  for (i = 0; i < N; i++)
    assert_int_equal(un.data.via.array.ptr[i].via.i64, i + 1000);
  msgpack_unpacked_destroy(&un);
  vow_value_release(out.v);
  /* A msgpack array works as well. */
  out = run(fx,
            vow_pool_map(pool, "echo",
                         vow_value_new_msgpack("\x93\x01\xa1x\xc0", 5, NULL)));
  assert_int_equal(vow_value_array_len(out.v), 3);
  msgpack_unpacked_init(&un);
  assert_int_equal(vow_value_unpack(out.v, &un), 0);
  assert_int_equal(un.data.via.array.ptr[0].via.u64, 1);
  assert_int_equal(un.data.via.array.ptr[1].via.str.size, 1);
  assert_int_equal(un.data.via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
  msgpack_unpacked_destroy(&un);
  vow_value_release(out.v);
  /* An item that fails fails the map, and says which item. */
  for (i = 0; i < N; i++)
    items[i] = num(i == 4321 ? 9 : 1);
  f = run_fail(fx,
               vow_pool_map(pool, "fail_if_9", vow_value_new_array(items, N)),
               VOW_FAIL_TASK_ERROR);
  if (strstr(vow_failure_message(f), "map item 4321: nine") == NULL)
    fail_msg("\"%s\"", vow_failure_message(f));
  vow_failure_release(f);
  /* Empty input: an empty array. */
  out = run(fx, vow_pool_map(pool, "echo", vow_value_new_array(NULL, 0)));
  assert_null(out.f);
  assert_int_equal(vow_value_array_len(out.v), 0);
  vow_value_release(out.v);
  /* Not an array: refused. */
  f = run_fail(fx, vow_pool_map(pool, "echo", num(3)), VOW_FAIL_BAD_INPUT);
  vow_failure_release(f);
  end_pool(fx, pool, true);
}

static void stream_delivers_each_once(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  enum { N = 300 };
  vow_value_t* items[N];
  char seen_idx[N];
  vow_stream_t* s;
  int i, got = 0, failed = 0;
  memset(seen_idx, 0, sizeof(seen_idx));
  for (i = 0; i < N; i++)
    items[i] = i == 7 ? pair(-1, 0) : pair(i, 0);
  s = vow_pool_stream(pool, "add", vow_value_new_array(items, N), 16);
  for (;;) {
    outcome r = run(fx, vow_stream_get(s));
    assert_null(r.f);
    if (vow_value_is_nil(r.v))
      break;
    if (vow_value_get_failure(r.v)) {
      failed++;
    } else {
      int64_t idx = int_of(vow_value_array_at(r.v, 0));
      assert_true(idx >= 0 && idx < N);
      assert_int_equal(seen_idx[(size_t)idx % N], 0);
      seen_idx[(size_t)idx % N] = 1;
      assert_int_equal(int_of(vow_value_array_at(r.v, 1)), idx == 7 ? -1 : idx);
      got++;
    }
    vow_value_release(r.v);
  }
  assert_int_equal(got + failed, N);
  vow_stream_free(s);
  end_pool(fx, pool, true);
}

static void bad_input_rejected_clearly(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_failure_t* f;
  f = run_fail(fx, vow_pool_submit(pool, "no_such_fn", NULL),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "no_such_fn"));
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "echo", vow_value_new_ptr(NULL, NULL)),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "msgpack"));
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_map(pool, "echo", num(3)), VOW_FAIL_BAD_INPUT);
  vow_failure_release(f);
  end_pool(fx, pool, true);
}

/* Without a function table the pool learns its functions from the first
 * HELLO; a name submitted before then that no worker offers fails only
 * its own task, and later workers are not refused for it. */
static void names_learnt_from_hello(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t* unknown;
  vow_promise_t* known;
  vow_pool_stats_t st;
  vow_failure_t* f;
  outcome r;
  o.functions = NULL;
  o.nfunctions = 0;
  pool = make_pool(fx, &o);
  unknown = vow_pool_submit(pool, "no_such_fn", NULL);
  known = vow_pool_submit(pool, "echo", num(5));
  f = run_fail(fx, unknown, VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "no_such_fn"));
  vow_failure_release(f);
  r = run(fx, known);
  assert_non_null(r.v);
  assert_int_equal(int_of(r.v), 5);
  vow_value_release(r.v);
  /* Now known: an unoffered name is refused at submit. */
  f = run_fail(fx, vow_pool_submit(pool, "other_fn", NULL), VOW_FAIL_BAD_INPUT);
  vow_failure_release(f);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_deaths, 0);
  assert_int_equal(st.worker_starts, 1);
  end_pool(fx, pool, true);
}

static void task_error_has_origin(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_failure_t* f =
      run_fail(fx, vow_pool_submit(pool, "fail", num(42)), VOW_FAIL_TASK_ERROR);
  assert_string_equal(vow_failure_message(f), "refused 42");
  assert_string_equal(vow_failure_origin(f)->function, "fail");
  assert_true(vow_failure_origin(f)->task_id > 0);
  assert_true(vow_failure_origin(f)->pid > 0);
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "two", NULL), VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "trailing"));
  vow_failure_release(f);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

/* Megabytes each way: the paths that skip copies for big frames. */
static void big_arguments_and_results(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  size_t n = (size_t)3 << 20, len, i;
  char* data = malloc(n);
  const void* back;
  outcome r;
  for (i = 0; i < n; i++)
    data[i] = (char)(i * 31);
  r = run(fx, vow_pool_submit(pool, "echo", vow_value_new_bin(data, n)));
  assert_null(r.f);
  assert_int_equal(vow_value_get_bin(r.v, &back, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(back, data, n);
  vow_value_release(r.v);
  r = run(fx, vow_pool_submit(pool, "big", num(5 << 20)));
  assert_int_equal(vow_value_get_bin(r.v, &back, &len), 0);
  assert_int_equal(len, 5 << 20);
  assert_int_equal(((const char*)back)[len - 1], 0x42);
  vow_value_release(r.v);
  free(data);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

/* What one result may take: a frame of docs/protocol.md's 64 MiB holding
 * it alone (VOWP_VALUE_MAX_BYTES). */
#define RESULT_MAX_BYTES (((size_t)64 << 20) - 64)

/* A result no frame can carry (past the message's bytes or objects)
 * fails its own task, saying so, and the worker lives on; a big result
 * after small ones still waiting to be sent goes in a frame of its own. */
static void oversized_results_fail_their_task(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_pool_stats_t st;
  vow_failure_t* f;
  vow_promise_t *small, *large;
  outcome r;
  size_t len;
  const void* back;
  o.in_flight = 4;
  o.shm_threshold = UINT64_MAX; /* the channel's own limits */
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "big", num((int64_t)65 << 20)),
               VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "result too big"));
  assert_non_null(strstr(vow_failure_message(f), "bytes, limit"));
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "nils", num(1100000)),
               VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "result too big"));
  assert_non_null(strstr(vow_failure_message(f), "objects"));
  vow_failure_release(f);
  /* 60,000 bytes, then nearly a whole frame: sent apart. */
  small = vow_pool_submit(pool, "big", num(60000));
  large = vow_pool_submit(pool, "big", num((int64_t)RESULT_MAX_BYTES - 16));
  r = run(fx, small);
  assert_null(r.f);
  vow_value_release(r.v);
  r = run(fx, large);
  assert_null(r.f);
  assert_int_equal(vow_value_get_bin(r.v, &back, &len), 0);
  assert_int_equal(len, RESULT_MAX_BYTES - 16);
  vow_value_release(r.v);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_deaths, 0);
  assert_int_equal(st.worker_starts, 1);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

static void space_waits_for_room(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t *busy, *queued[3], *space;
  vow_failure_t* f;
  int i;
  o.in_flight = 1;
  o.queue_limit = 3;
  pool = make_pool(fx, &o);
  wait_alive(fx, pool, 1);
  busy = vow_pool_submit(pool, "sleep", num(300));
  {
    vow_promise_t* nap = vow_sleep(fx->ctx, 50); /* busy is on the worker */
    vow_ctx_wait(fx->ctx, nap);
    vow_promise_release(nap);
  }
  for (i = 0; i < 3; i++)
    queued[i] = vow_pool_submit(pool, "add", pair(i, 0));
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(9, 9)),
               VOW_FAIL_QUEUE_FULL);
  assert_non_null(strstr(vow_failure_message(f), "vow_pool_space"));
  vow_failure_release(f);
  space = vow_pool_space(pool);
  assert_int_equal(vow_promise_state(space), VOW_PENDING);
  /* Room comes when the worker takes the next task. */
  assert_int_equal(vow_ctx_wait(fx->ctx, space), VOW_FULFILLED);
  vow_promise_release(space);
  assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(5, 5))), 10);
  assert_int_equal(run_int(fx, busy), 300);
  for (i = 0; i < 3; i++)
    assert_int_equal(run_int(fx, queued[i]), i);
  end_pool(fx, pool, true);
}

static void cwd_and_limits_apply(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  outcome r;
  msgpack_unpacked un;
  msgpack_object* f;
  o.cwd = "/tmp";
  o.limits = "nofile=77";
  pool = make_pool(fx, &o);
  r = run(fx, vow_pool_submit(pool, "env", NULL));
  assert_null(r.f);
  /* A worker's result is msgpack: read it with msgpack-c. */
  msgpack_unpacked_init(&un);
  assert_int_equal(vow_value_unpack(r.v, &un), 0);
  assert_int_equal(un.data.type, MSGPACK_OBJECT_ARRAY);
  f = un.data.via.array.ptr;
  assert_int_equal(f[0].via.str.size, 4);
  assert_memory_equal(f[0].via.str.ptr, "/tmp", 4);
  assert_int_equal(f[1].via.u64, 77);
  msgpack_unpacked_destroy(&un);
  vow_value_release(r.v);
  end_pool(fx, pool, true);
}

/* ---- faults ---------------------------------------------------------- */

static void kill9_fails_only_its_tasks(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_pool_stats_t st;
  expect_kill9_fails_only_its_task(fx, pool);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.workers_alive, 2);
  end_pool(fx, pool, true);
}

static void segv_reports_crash(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  o.stderr_mode = VOW_STDERR_RELAY;
  pool = make_pool(fx, &o);
  expect_crash_report(fx, pool);
  end_pool(fx, pool, true);
}

static void early_exit_fails_its_task(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_failure_t* f =
      run_fail(fx, vow_pool_submit(pool, "exit", num(7)), VOW_FAIL_WORKER_DIED);
  assert_int_equal(vow_failure_origin(f)->exit_status, 7);
  assert_non_null(strstr(vow_failure_message(f), "status 7"));
  vow_failure_release(f);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

static void protocol_breakers_are_replaced(void** state) {
  static const struct {
    const char* fn;
    const char* says;
  } cases[] = {
      {"garbage", "reserved byte 0xc1"},
      {"stray", "task 999999, which it was not running"},
      {"hello_again", "HELLO twice"},
      {"claim_4g", "frame of 4294967295 bytes exceeds the limit"},
      {"truncate_stall", "stopped in the middle of a message: 6 bytes"},
      {"claim_60m", "stopped in the middle of a message: 104 bytes"},
  };
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  o.stall_ms = 300;
  pool = make_pool(fx, &o);
  size_t i;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    vow_failure_t* f = run_fail(fx, vow_pool_submit(pool, cases[i].fn, NULL),
                                VOW_FAIL_PROTOCOL);
    if (strstr(vow_failure_message(f), cases[i].says) == NULL)
      fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].fn, vow_failure_message(f),
               cases[i].says);
    vow_failure_release(f);
    still_serves(fx, pool);
  }
  end_pool(fx, pool, true);
}

/* Slots through launchers: two through `env` (a launcher that runs the
 * worker command here, channel on its stdin and stdout) and one through
 * `false`, which never starts a worker: that slot is given up after its
 * tries, the tasks all run on the other two, and the pool goes on. */
static void launchers_and_a_dead_one(void** state) {
  static const char* const env_argv[] = {"env", NULL};
  static const char* const false_argv[] = {"false", NULL};
  const vow_launcher_t launchers[] = {{2, env_argv}, {1, false_argv}};
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_pool_stats_t st;
  enum { N = 40 };
  vow_promise_t* ps[N];
  int i, rounds = 0;
  o.launchers = launchers;
  o.nlaunchers = 2;
  o.start_attempts = 2;
  pool = make_pool(fx, &o);
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "add", pair(i, 1));
  for (i = 0; i < N; i++)
    assert_int_equal(run_int(fx, ps[i]), i + 1);
  /* The dead slot's tries take their backoff (100 ms, then given up). */
  do {
    vow_promise_t* nap = vow_sleep(fx->ctx, 20);
    vow_ctx_wait(fx->ctx, nap);
    vow_promise_release(nap);
    vow_pool_stats(pool, &st);
  } while (st.slots_given_up == 0 && rounds++ < 200);
  assert_int_equal(st.slots_given_up, 1);
  assert_int_equal(st.workers_alive, 2);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

/* Arguments that cannot fit in one protocol message are refused at
 * submit, not sent to a worker that would have to refuse them (without
 * shared memory, which can carry them: test_shm). */
static void oversized_arguments_refused(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  o.shm_threshold = UINT64_MAX;
  pool = make_pool(fx, &o);
  size_t len = (size_t)65 << 20;
  char* big = calloc(1, len);
  vow_failure_t* f;
  assert_non_null(big);
  f = run_fail(fx, vow_pool_submit(pool, "echo", vow_value_new_bin(big, len)),
               VOW_FAIL_BAD_INPUT);
  free(big);
  assert_non_null(strstr(vow_failure_message(f), "message limit"));
  assert_int_equal(vow_failure_code(f), UV_E2BIG);
  vow_failure_release(f);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

/* Nested arrays n deep around nil, as one msgpack value. */
static vow_value_t* nested_value(unsigned n) {
  unsigned char buf[64];
  memset(buf, 0x91, n); /* fixarray of one */
  buf[n] = 0xc0;
  return vow_value_new_msgpack(buf, n + 1, NULL);
}

/* An array of n nils: n + 1 objects in n + 5 bytes. */
static vow_value_t* many_nils(size_t n) {
  unsigned char* b = malloc(n + 5);
  vow_value_t* v;
  assert_non_null(b);
  b[0] = 0xdd;
  b[1] = (unsigned char)(n >> 24);
  b[2] = (unsigned char)(n >> 16);
  b[3] = (unsigned char)(n >> 8);
  b[4] = (unsigned char)n;
  memset(b + 5, 0xc0, n);
  v = vow_value_new_msgpack(b, n + 5, NULL);
  free(b);
  return v;
}

/* Arguments a message cannot carry (nested past what TASKS leaves room
 * for, or more objects than a frame may hold) are refused at submit: a
 * worker sent them would refuse the whole message and die of it. A map
 * never puts items together past those limits either. */
static void unsendable_arguments_refused(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_pool_stats_t st;
  vow_failure_t* f;
  vow_value_t* items[4];
  vow_value_t* v;
  size_t i;
  f = run_fail(fx, vow_pool_submit(pool, "echo", nested_value(29)),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "cannot be sent"));
  assert_non_null(strstr(vow_failure_message(f), "nesting"));
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "echo", many_nils((size_t)1 << 20)),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "objects"));
  vow_failure_release(f);
  /* As deep as a task may be: it goes and comes back. */
  v = run_value(fx, vow_pool_submit(pool, "echo", nested_value(28)));
  vow_value_release(v);
  /* Two items of 600,000 objects each: each fits a message, both do not. */
  items[0] = many_nils(600000);
  items[1] = many_nils(600000);
  items[2] = vow_value_new_int(1);
  items[3] = vow_value_new_int(2);
  v = run_value(fx, vow_pool_map(pool, "echo", vow_value_new_array(items, 4)));
  {
    msgpack_unpacked un;
    msgpack_unpacked_init(&un);
    assert_int_equal(vow_value_unpack(v, &un), 0);
    assert_int_equal(un.data.via.array.size, 4);
    for (i = 0; i < 2; i++)
      assert_int_equal(un.data.via.array.ptr[i].via.array.size, 600000);
    assert_int_equal(un.data.via.array.ptr[3].via.u64, 2);
    msgpack_unpacked_destroy(&un);
  }
  vow_value_release(v);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_deaths, 0);
  assert_int_equal(st.worker_starts, 1);
  still_serves(fx, pool);
  end_pool(fx, pool, true);
}

/* vow_pool_map_chunked gives each task that many items (the pool's own
 * rule for 0, at most 4096), flat chunks and chunks of containers alike,
 * and the results are the same either way. */
static void map_chunked_gives_each_task_that_many_items(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  /* 10 items: 3 ints, a str, an array, a map, nil, 3 more ints */
  static const char items[] =
      "\x9a\x01\xcd\x01\x00\xd3\xff\xff\xff\xff\xff"
      "\xff\xff\xfe\xa2hi\x92\x01\x91\x02\x81\xa1k"
      "\xc3\xc0\x7f\xce\x00\x01\x00\x00\xe0";
  static const struct {
    size_t chunk;
    uint64_t tasks;
  } cases[] = {{3, 4}, {1, 10}, {10, 1}, {5000, 1}, {0, 10}};
  char first[64];
  size_t i, first_len = 0;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    vow_pool_stats_t before, after;
    size_t len;
    const char* got;
    vow_value_t* v;
    vow_pool_stats(pool, &before);
    v = run_value(fx, vow_pool_map_chunked(
                          pool, "echo",
                          vow_value_new_msgpack(items, sizeof(items) - 1, NULL),
                          cases[i].chunk));
    vow_pool_stats(pool, &after);
    got = vow_value_bytes(v, &len);
    /* echo of every item, as the worker encodes it: the same whatever the
     * chunks were */
    assert_int_equal(vow_value_array_len(v), 10);
    if (i == 0) {
      msgpack_unpacked un;
      msgpack_object* a;
      msgpack_unpacked_init(&un);
      assert_int_equal(vow_value_unpack(v, &un), 0);
      a = un.data.via.array.ptr;
      assert_int_equal(a[1].via.u64, 256);
      assert_int_equal(a[2].via.i64, -2);
      assert_int_equal(a[3].via.str.size, 2);
      assert_int_equal(a[4].via.array.size, 2);
      assert_int_equal(a[5].via.map.size, 1);
      assert_int_equal(a[6].type, MSGPACK_OBJECT_NIL);
      assert_int_equal(a[8].via.u64, 65536);
      assert_int_equal(a[9].via.i64, -32);
      msgpack_unpacked_destroy(&un);
      assert_true(len < sizeof(first));
      memcpy(first, got, len);
      first_len = len;
    }
    assert_int_equal(len, first_len);
    assert_memory_equal(got, first, len);
    if (after.submitted - before.submitted != cases[i].tasks)
      fail_msg("chunk %zu: %llu tasks, expected %llu", cases[i].chunk,
               (unsigned long long)(after.submitted - before.submitted),
               (unsigned long long)cases[i].tasks);
    vow_value_release(v);
  }
  end_pool(fx, pool, true);
}

/* A worker that closes its channel but stays alive is killed, and its
 * task fails as worker-died. */
static void closed_channel_is_a_death(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_pool_stats_t st;
  expect_closed_channel_death(fx, pool);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 2);
  end_pool(fx, pool, true);
}

static void stdout_cannot_corrupt_frames(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool;
  enum { N = 50 };
  vow_promise_t* ps[N];
  int i;
  o.stderr_mode = VOW_STDERR_RELAY;
  pool = make_pool(fx, &o);
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "print", num(i));
  for (i = 0; i < N; i++)
    assert_int_equal(run_int(fx, ps[i]), i);
  end_pool(fx, pool, true);
}

static void retries_find_the_poison_task(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  enum { N = 6 };
  vow_promise_t* ps[N];
  vow_promise_t* poison;
  vow_failure_t* f;
  vow_pool_stats_t st;
  int i;
  o.retries = 2;
  o.in_flight = 8; /* the innocent ones ride on the same worker */
  pool = make_pool(fx, &o);
  for (i = 0; i < N / 2; i++)
    ps[i] = vow_pool_submit(pool, "sleep", num(20));
  poison = vow_pool_submit(pool, "crash", NULL);
  for (i = N / 2; i < N; i++)
    ps[i] = vow_pool_submit(pool, "sleep", num(20));
  f = run_fail(fx, poison, VOW_FAIL_POISON);
  assert_non_null(strstr(vow_failure_message(f), "poison"));
  vow_failure_release(f);
  for (i = 0; i < N; i++)
    assert_int_equal(run_int(fx, ps[i]), 20);
  vow_pool_stats(pool, &st);
  /* The first death had company, so it counts against nobody; then the
   * poison dies alone on each of its retries + 1 tries. */
  assert_int_equal(st.worker_deaths, 4);
  end_pool(fx, pool, true);
}

static void timeout_kills_and_requeues_others(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t *slow, *after[5];
  vow_failure_t* f;
  int i;
  o.in_flight = 8;
  pool = make_pool(fx, &o);
  still_serves(fx, pool); /* the worker is up */
  slow = vow_pool_submit_timeout(pool, "sleep", num(10000), 100);
  for (i = 0; i < 5; i++)
    after[i] = vow_pool_submit(pool, "add", pair(i, 0));
  f = run_fail(fx, slow, VOW_FAIL_TIMEOUT);
  assert_non_null(strstr(vow_failure_message(f), "100 ms"));
  vow_failure_release(f);
  for (i = 0; i < 5; i++)
    assert_int_equal(run_int(fx, after[i]), i);
  end_pool(fx, pool, true);
}

static void cancel_queued_and_running(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t *running, *queued, *hang;
  vow_failure_t* f;
  pids p = {{0}, {0}, 0};
  vow_pool_stats_t st;
  o.in_flight = 1;
  o.cancel_grace_ms = 200;
  pool = make_pool(fx, &o);
  vow_pool_on_progress(pool, note_pid, &p);
  /* A task that notices its cancel stops; the worker lives on. */
  vow_promise_release(vow_pool_submit(pool, "pidsleep", num(1)));
  wait_pids(fx, &p, 1);
  running = vow_pool_submit(pool, "until_cancelled", NULL);
  queued = vow_pool_submit(pool, "add", pair(1, 1));
  wait_pids(fx, &p, 2); /* until_cancelled says it runs */
  vow_cancel(queued);
  vow_cancel(running);
  f = run_fail(fx, running, VOW_FAIL_CANCELLED);
  vow_failure_release(f);
  f = run_fail(fx, queued, VOW_FAIL_CANCELLED);
  vow_failure_release(f);
  still_serves(fx, pool);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_deaths, 0);
  /* One that ignores it is killed after the grace period, and a task
   * queued behind it completes on the next worker. */
  hang = vow_pool_submit(pool, "hang", NULL);
  queued = vow_pool_submit(pool, "add", pair(2, 2));
  wait_pids(fx, &p, 3); /* hang says it runs */
  vow_cancel(hang);
  f = run_fail(fx, hang, VOW_FAIL_CANCELLED);
  vow_failure_release(f);
  assert_int_equal(run_int(fx, queued), 4);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 2);
  end_pool(fx, pool, true);
}

static void recycling_loses_nothing(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool;
  enum { N = 200 };
  vow_promise_t* ps[N];
  int64_t pid[N];
  vow_pool_stats_t st;
  int i, j, distinct = 0;
  o.recycle_after = 10;
  pool = make_pool(fx, &o);
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "pid", NULL);
  for (i = 0; i < N; i++)
    pid[i] = run_int(fx, ps[i]);
  /* No worker ran more than 10 tasks, so at least N / 10 ran. */
  for (i = 0; i < N; i++) {
    int same = 0, first = 1;
    for (j = 0; j < N; j++) {
      if (pid[j] != pid[i])
        continue;
      same++;
      if (j < i)
        first = 0;
    }
    assert_true(same <= 10);
    distinct += first;
  }
  assert_true(distinct >= N / 10);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.completed, N);
  assert_int_equal(st.worker_deaths, 0);
  end_pool(fx, pool, true);
}

static void on_deadline(uv_timer_t* t) {
  *(bool*)t->data = true;
}

/* Recycling through a graceful shutdown: a worker at its limit as the
 * pool closes is replaced and the rest of the queue runs; the shutdown
 * completes (within a minute, far more than it needs). */
static void recycling_through_a_graceful_shutdown(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t* ps[12];
  vow_promise_t* done;
  uv_timer_t deadline;
  bool late = false;
  int i;
  o.recycle_after = 2;
  o.in_flight = 2;
  pool = make_pool(fx, &o);
  for (i = 0; i < 12; i++)
    ps[i] = vow_pool_submit(pool, "pid", NULL);
  done = vow_pool_shutdown(pool, true);
  uv_timer_init(vow_ctx_loop(fx->ctx), &deadline);
  deadline.data = &late;
  uv_timer_start(&deadline, on_deadline, 60000, 0);
  while (vow_promise_state(done) == VOW_PENDING && !late)
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
  uv_close((uv_handle_t*)&deadline, NULL);
  uv_run(vow_ctx_loop(fx->ctx), UV_RUN_NOWAIT); /* the timer is ours: gone */
  assert_false(late);
  assert_int_equal(vow_promise_state(done), VOW_FULFILLED);
  for (i = 0; i < 12; i++) {
    assert_int_equal(vow_promise_state(ps[i]), VOW_FULFILLED);
    vow_promise_release(ps[i]);
  }
  vow_promise_release(done);
  vow_pool_free(pool);
}

static void workers_that_cannot_start(void** state) {
  static const char* const missing[] = {"/nonexistent/vow-worker", NULL};
  static const char* const env_exit[] = {"VOW_TEST_START=exit", NULL};
  static const char* const env_segv[] = {"VOW_TEST_START=segv", NULL};
  static const char* const env_version[] = {"VOW_TEST_START=version", NULL};
  static const struct {
    const char* const* argv;
    const char* const* env;
    const char* says;
  } cases[] = {
      {missing, NULL, "cannot start /nonexistent/vow-worker"},
      {NULL, env_exit, "exited with status 3"},
      {NULL, env_segv, SEGV_AT_START},
      {NULL, env_version, "protocol version 99"},
  };
  fixture* fx = *state;
  size_t i;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    vow_pool_options_t o = defaults(1);
    vow_pool_t* pool;
    vow_failure_t* f;
    vow_pool_stats_t st;
    o.worker_argv = cases[i].argv;
    o.env = cases[i].env;
    o.start_attempts = 3;
    pool = make_pool(fx, &o);
    f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 2)),
                 VOW_FAIL_WORKER_DIED);
    if (strstr(vow_failure_message(f), cases[i].says) == NULL)
      fail_msg("\"%s\" lacks \"%s\"", vow_failure_message(f), cases[i].says);
    assert_non_null(strstr(vow_failure_message(f), "cannot start (3 tries)"));
    vow_failure_release(f);
    vow_pool_stats(pool, &st);
    assert_int_equal(st.worker_starts, 3); /* bounded */
    /* Later submits fail at once with the same reason. */
    f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 2)),
                 VOW_FAIL_WORKER_DIED);
    vow_failure_release(f);
    end_pool(fx, pool, false);
  }
}

/* ---- shutdown -------------------------------------------------------- */

static void graceful_shutdown_drains(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool;
  enum { N = 100 };
  vow_promise_t* ps[N];
  vow_failure_t* f;
  int fds, i;
  /* Warm up: libuv keeps a signal pipe for SIGCHLD once it has spawned. */
  pool = make_pool(fx, &o);
  end_pool(fx, pool, true);
  vow_ctx_run(fx->ctx);
  fds = count_fds();
  pool = make_pool(fx, &o);
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "sleep", num(1));
  vow_promise_t* done = vow_pool_shutdown(pool, true);
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 1)),
               VOW_FAIL_CANCELLED);
  vow_failure_release(f);
  assert_int_equal(vow_ctx_wait(fx->ctx, done), VOW_FULFILLED);
  vow_promise_release(done);
  for (i = 0; i < N; i++)
    assert_int_equal(run_int(fx, ps[i]), 1);
  vow_pool_free(pool);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(count_children(), 0);
  vow_ctx_run(fx->ctx); /* closes the pool's last handle */
  assert_int_equal(count_fds(), fds);
}

static void immediate_shutdown_cancels_everything(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  size_t n = scaled(100000), i, cancelled = 0;
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  vow_promise_t* done;
  for (i = 0; i < n; i++)
    ps[i] = vow_pool_submit(pool, "sleep", num(1));
  done = vow_pool_shutdown(pool, false);
  assert_int_equal(vow_ctx_wait(fx->ctx, done), VOW_FULFILLED);
  vow_promise_release(done);
  for (i = 0; i < n; i++) {
    outcome r = run(fx, ps[i]);
    if (r.f) {
      assert_int_equal(vow_failure_kind(r.f), VOW_FAIL_CANCELLED);
      vow_failure_release(r.f);
      cancelled++;
    } else {
      vow_value_release(r.v); /* finished before the shutdown */
    }
  }
  assert_int_equal(cancelled, n); /* nothing ran: the workers were starting */
  free(ps);
  vow_pool_free(pool);
  assert_int_equal(count_children(), 0);
}

static void same_seed_same_monte_carlo(void** state) {
  fixture* fx = *state;
  uint64_t hits[2] = {0, 0};
  unsigned workers;
  for (workers = 1; workers <= 2; workers++) {
    vow_pool_options_t o = defaults(workers);
    vow_pool_t* pool;
    vow_value_t* items[64];
    outcome r;
    msgpack_unpacked un;
    int i;
    o.seed = 2024;
    pool = make_pool(fx, &o);
    for (i = 0; i < 64; i++)
      items[i] = num(20000);
    r = run(fx, vow_pool_map(pool, "monte", vow_value_new_array(items, 64)));
    assert_null(r.f);
    msgpack_unpacked_init(&un);
    assert_int_equal(vow_value_unpack(r.v, &un), 0);
    for (i = 0; i < 64; i++)
      hits[workers - 1] += un.data.via.array.ptr[i].via.u64;
    msgpack_unpacked_destroy(&un);
    vow_value_release(r.v);

    end_pool(fx, pool, true);
  }
  assert_true(hits[0] > 0);
  assert_int_equal(hits[0], hits[1]);
}

/* Closing the context with a pool at work kills its workers, frees it and
 * reports the task left pending. */
static void context_close_takes_the_pool(void** state) {
  vow_pool_options_t o = defaults(2);
  (void)state;
  close_context_under_busy_pool(&o);
  assert_int_equal(count_children(), 0);
}

/* Mapped or submitted one by one, in order, a task gets the same seed. */
static void map_and_submit_share_seeds(void** state) {
  fixture* fx = *state;
  uint64_t mapped[5], alone[5];
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool;
  vow_value_t* items[5];
  msgpack_unpacked un;
  outcome r;
  int i;
  o.seed = 77;
  pool = make_pool(fx, &o);
  for (i = 0; i < 5; i++)
    items[i] = vow_value_nil();
  r = run(fx, vow_pool_map(pool, "seed", vow_value_new_array(items, 5)));
  msgpack_unpacked_init(&un);
  assert_int_equal(vow_value_unpack(r.v, &un), 0);
  for (i = 0; i < 5; i++)
    mapped[i] = un.data.via.array.ptr[i].via.u64;
  msgpack_unpacked_destroy(&un);
  vow_value_release(r.v);
  end_pool(fx, pool, true);
  pool = make_pool(fx, &o);
  for (i = 0; i < 5; i++) {
    r = run(fx, vow_pool_submit(pool, "seed", NULL));
    msgpack_unpacked_init(&un);
    assert_int_equal(vow_value_unpack(r.v, &un), 0);
    alone[i] = un.data.via.u64;
    msgpack_unpacked_destroy(&un);
    vow_value_release(r.v);
  }
  end_pool(fx, pool, true);
  for (i = 0; i < 5; i++)
    assert_true(mapped[i] == alone[i]);
  assert_true(mapped[0] != mapped[1]);
}

/* A parent killed with SIGKILL takes its workers with it. */
static void parent_death_takes_workers(void** state) {
  int fds[2];
  pid_t parent;
  int worker_pids[2], i, status, alive = 0;
  ssize_t got;
  (void)state;
  assert_int_equal(pipe(fds), 0);
  parent = fork();
  assert_true(parent >= 0);
  if (parent == 0) {
    vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
    vow_pool_options_t o = defaults(2);
    vow_pool_t* pool = vow_pool_new(ctx, &o, NULL);
    pids p = {{0}, {0}, 0};
    vow_pool_stats_t st;
    close(fds[0]);
    vow_pool_on_progress(pool, note_pid, &p);
    while (vow_pool_stats(pool, &st), st.workers_alive < 2)
      uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
    vow_promise_release(vow_pool_submit(pool, "pidsleep", num(60000)));
    vow_promise_release(vow_pool_submit(pool, "pidsleep", num(60000)));
    while (p.n < 2)
      uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
    if (write(fds[1], p.pid, sizeof(int) * 2) < 0)
      _exit(1);
    for (;;)
      pause();
  }
  close(fds[1]);
  got = read(fds[0], worker_pids, sizeof(worker_pids));
  close(fds[0]);
  for (i = 0; i < 2; i++)
    alive +=
        got == (ssize_t)sizeof(worker_pids) && kill(worker_pids[i], 0) == 0;
  /* Killed before any check can fail: it would wait forever otherwise. */
  kill(parent, SIGKILL);
  waitpid(parent, &status, 0);
  assert_int_equal(got, (ssize_t)sizeof(worker_pids));
  assert_int_equal(alive, 2);
  /* Within a second, both are gone (or zombies awaiting their reaper). */
  for (i = 0; i < 2; i++) {
    int tries = 0;
    for (;;) {
      char path[64], st = '?';
      FILE* f;
      snprintf(path, sizeof(path), "/proc/%d/stat", worker_pids[i]);
      f = fopen(path, "r");
      if (f != NULL) {
        if (fscanf(f, "%*d %*s %c", &st) != 1)
          st = '?';
        fclose(f);
      }
      if (f == NULL || st == 'Z' || st == 'X')
        break;
      assert_true(++tries < 100);
      usleep(10000);
    }
  }
}

static void vow_worker_plugin(void** state) {
  static const char* const good[] = {VOW_WORKER_BIN, VOW_TEST_PLUGIN_PATH,
                                     NULL};
  static const char* const bad_abi[] = {VOW_WORKER_BIN, VOW_TEST_BADABI_PATH,
                                        NULL};
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_failure_t* f;
  o.worker_argv = good;
  pool = make_pool(fx, &o);
  assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(40, 2))), 42);
  end_pool(fx, pool, true);
  o.worker_argv = bad_abi;
  o.start_attempts = 1;
  o.stderr_mode = VOW_STDERR_RELAY;
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 1)),
               VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "plugin ABI"));
  vow_failure_release(f);
  end_pool(fx, pool, false);
}

/* A plugin that does not load can never serve: vow-worker says so by its
 * exit status, and the pool gives every slot up after one start each,
 * quoting the reason once, not its stderr whole. */
static void a_worker_that_cannot_serve_is_not_started_again(void** state) {
  static const char* const missing[] = {
      VOW_WORKER_BIN, "/nonexistent/vow-no-such-plugin.so", NULL};
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool;
  vow_failure_t* f;
  vow_pool_stats_t st;
  o.worker_argv = missing;
  o.stderr_mode = VOW_STDERR_RELAY; /* the failure quotes its stderr */
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(1, 1)),
               VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "cannot serve"));
  assert_non_null(strstr(vow_failure_message(f), "status 78"));
  assert_non_null(strstr(vow_failure_message(f), "cannot load plugin"));
  assert_null(strstr(vow_failure_message(f), "tries"));
  vow_failure_release(f);
  /* Later submissions fail at once with the same reason. */
  f = run_fail(fx, vow_pool_submit(pool, "add", pair(2, 2)),
               VOW_FAIL_WORKER_DIED);
  assert_non_null(strstr(vow_failure_message(f), "cannot serve"));
  vow_failure_release(f);
  vow_pool_stats(pool, &st);
  assert_true(st.worker_starts >= 1);
  assert_true(st.worker_starts <= 2); /* one start a slot at most */
  assert_int_equal(st.slots_given_up, 2);
  end_pool(fx, pool, false);
}

/* ---- which worker runs what -------------------------------------------- */

/* Three tasks on two warm workers: the third is sent ahead behind the
 * long one or the short one; either way it runs on the worker that
 * finished the short one (asked back from the long one's worker). */
static void an_idle_worker_takes_what_waits_behind_a_busy_one(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  int i, round;
  wait_alive(fx, pool, 2);
  for (i = 0; i < 50; i++) /* tiny tasks measured: deep in-flight */
    assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(i, 1))),
                     i + 1);
  /* Twice, an odd number of task ids apart: the third is sent ahead
   * behind the long task in one of the rounds (dispatch starts at a
   * worker chosen by the task ids). */
  for (round = 0; round < 2; round++) {
    vow_promise_t *lng, *shrt, *third;
    int64_t t, s, l;
    if (round == 1) /* 3 + 2 ids: the other parity */
      for (i = 0; i < 2; i++)
        assert_int_equal(run_int(fx, vow_pool_submit(pool, "add", pair(1, 1))),
                         2);
    lng = vow_pool_submit(pool, "pidnap", num(1500));
    shrt = vow_pool_submit(pool, "pidnap", num(50));
    third = vow_pool_submit(pool, "pidnap", num(300));
    t = run_int(fx, third);
    s = run_int(fx, shrt);
    l = run_int(fx, lng);
    assert_int_equal(t, s);
    assert_int_not_equal(t, l);
  }
  end_pool(fx, pool, true);
}

/* A task sent ahead and cancelled before it begins is answered by its
 * worker and dropped: the worker and the task it runs are not touched,
 * however short the grace. */
static void a_task_cancelled_before_it_begins_costs_nothing(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool;
  vow_promise_t *lng, *queued;
  vow_pool_stats_t st;
  int64_t pid;
  o.cancel_grace_ms = 50;
  pool = make_pool(fx, &o);
  wait_alive(fx, pool, 1);
  pid = run_int(fx, vow_pool_submit(pool, "pid", NULL));
  lng = vow_pool_submit(pool, "pidnap", num(600));
  queued = vow_pool_submit(pool, "add", pair(1, 2));
  while (!vow_promise_started(lng))
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
  assert_false(vow_promise_started(queued));
  vow_cancel(queued);
  vow_failure_release(run_fail(fx, queued, VOW_FAIL_CANCELLED));
  assert_int_equal(run_int(fx, lng), pid); /* ran to its end, on it */
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 1);
  end_pool(fx, pool, true);
}

/* The kernel's parent-death signal comes when the thread that started a
 * worker ends, not the process: a pool driven from a thread that has
 * since ended keeps its workers. */
typedef struct started_in_thread {
  fixture* fx;
  vow_pool_t* pool;
  int64_t pid;
} started_in_thread;

static void* start_pool_in_thread(void* arg) {
  started_in_thread* s = arg;
  vow_pool_options_t o = defaults(1);
  s->pool = make_pool(s->fx, &o);
  wait_alive(s->fx, s->pool, 1);
  s->pid = run_int(s->fx, vow_pool_submit(s->pool, "pid", NULL));
  return NULL;
}

static void a_worker_outlives_the_thread_that_started_it(void** state) {
  started_in_thread s = {*state, NULL, 0};
  pthread_t t;
  vow_pool_stats_t st;
  vow_promise_t* nap;
  assert_int_equal(pthread_create(&t, NULL, start_pool_in_thread, &s), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  nap = vow_sleep(s.fx->ctx, 200); /* time for a signal to be acted on */
  vow_ctx_wait(s.fx->ctx, nap);
  vow_promise_release(nap);
  assert_int_equal(run_int(s.fx, vow_pool_submit(s.pool, "pid", NULL)), s.pid);
  vow_pool_stats(s.pool, &st);
  assert_int_equal(st.worker_starts, 1);
  end_pool(s.fx, s.pool, true);
}

/* ---- the scheduler's decisions ---------------------------------------- */

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(int argc, char** argv) {
  const char* start = getenv("VOW_TEST_START");
  (void)argc;
  (void)argv;
  /* Ways for a worker to fail before it says HELLO. */
  if (start && getenv("VOW_WORKER_CHANNEL")) {
    if (strcmp(start, "exit") == 0)
      _exit(3);
    if (strcmp(start, "segv") == 0)
      raise(SIGSEGV);
    if (strcmp(start, "version") == 0) {
      static const char hello[] = "\x00\x00\x00\x05\x94\x01\x63\x01\x90";
      if (write(3, hello, sizeof(hello) - 1) < 0)
        _exit(4);
      _exit(0);
    }
  }
  vow_worker_main(test_functions, test_nfunctions);
  {
    const struct CMUnitTest tests[] = {
        T(results_settle_promises),
        T(map_keeps_input_order),
        T(map_chunked_gives_each_task_that_many_items),
        T(stream_delivers_each_once),
        T(bad_input_rejected_clearly),
        T(names_learnt_from_hello),
        T(task_error_has_origin),
        T(big_arguments_and_results),
        T(oversized_results_fail_their_task),
        T(space_waits_for_room),
        T(cwd_and_limits_apply),
        T(kill9_fails_only_its_tasks),
        T(segv_reports_crash),
        T(early_exit_fails_its_task),
        T(protocol_breakers_are_replaced),
        T(oversized_arguments_refused),
        T(unsendable_arguments_refused),
        T(launchers_and_a_dead_one),
        T(closed_channel_is_a_death),
        T(stdout_cannot_corrupt_frames),
        T(retries_find_the_poison_task),
        T(timeout_kills_and_requeues_others),
        T(cancel_queued_and_running),
        T(recycling_loses_nothing),
        T(recycling_through_a_graceful_shutdown),
        T(workers_that_cannot_start),
        T(graceful_shutdown_drains),
        T(immediate_shutdown_cancels_everything),
        T(same_seed_same_monte_carlo),
        T(map_and_submit_share_seeds),
        cmocka_unit_test(context_close_takes_the_pool),
        cmocka_unit_test(parent_death_takes_workers),
        T(vow_worker_plugin),
        T(a_worker_that_cannot_serve_is_not_started_again),
        T(an_idle_worker_takes_what_waits_behind_a_busy_one),
        T(a_task_cancelled_before_it_begins_costs_nothing),
        T(a_worker_outlives_the_thread_that_started_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
}
