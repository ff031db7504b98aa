/* Big values by shared memory between a pool and its local workers
 * (docs/pool.md, "Big values"): the same bytes as the wire, past the
 * wire's limit, one segment per value however many tasks take it, none
 * left once its users are gone (whatever killed them), lying workers
 * caught, limits that say what was refused, launchers on the wire. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_helpers.h"
#include "shm_functions.h"

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
#define MiB ((size_t)1 << 20)

static vow_pool_options_t shm_defaults(unsigned workers) {
  vow_pool_options_t o;
  vow_pool_options_init(&o);
  o.workers = workers;
  o.functions = shm_test_functions;
  o.nfunctions = shm_test_nfunctions;
  o.stderr_mode = VOW_STDERR_DISCARD;
  return o;
}

/* A bin of n bytes 0, 1, 2, ... 255, 0, ... */
static vow_value_t* ramp(size_t n) {
  unsigned char* b = malloc(n);
  vow_value_t* v;
  size_t i;
  assert_non_null(b);
  for (i = 0; i < n; i++)
    b[i] = (unsigned char)i;
  v = vow_value_new_bin(b, n);
  free(b);
  assert_non_null(v);
  return v;
}

static void assert_ramp(const vow_value_t* v, size_t n) {
  const unsigned char* b;
  size_t len, i;
  assert_int_equal(vow_value_get_bin(v, (const void**)&b, &len), 0);
  assert_int_equal(len, n);
  for (i = 0; i < n; i++)
    if (b[i] != (unsigned char)i)
      fail_msg("byte %zu is %u, not %u", i, b[i], (unsigned)(i & 0xff));
}

static int64_t item(const vow_value_t* v, uint32_t i) {
  msgpack_unpacked u;
  int64_t x;
  msgpack_unpacked_init(&u);
  assert_int_equal(vow_value_unpack(v, &u), 0);
  assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
  assert_true(i < u.data.via.array.size);
  x = (int64_t)u.data.via.array.ptr[i].via.u64;
  msgpack_unpacked_destroy(&u);
  return x;
}

/* The sum of the bytes of ramp(n), n a multiple of 256. */
static int64_t ramp_sum(size_t n) {
  return (int64_t)(n / 256) * (255 * 256 / 2);
}

/* The greatest of the ints the n promises are fulfilled with. */
static int64_t most_of(fixture* fx, vow_promise_t** ps, int n) {
  int64_t most = INT64_MIN;
  int i;
  for (i = 0; i < n; i++) {
    vow_value_t* v = run_value(fx, ps[i]);
    int64_t k;
    assert_int_equal(vow_value_get_int(v, &k), 0);
    most = k > most ? k : most;
    vow_value_release(v);
  }
  return most;
}

/* Workers started through a launcher ("env": on this machine, but as a
 * launcher's worker, so never sent a segment). */
static void under_a_launcher(vow_pool_options_t* o) {
  static const char* const env_argv[] = {"env", NULL};
  static const vow_launcher_t launchers[] = {{1, env_argv}};
  o->launchers = launchers;
  o->nlaunchers = 1;
}

static int live_segments(void) {
  return shm_segments_held(getpid());
}

static vow_value_t* hold_args(vow_value_t* bin, uint64_t ms) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const void* b;
  size_t len;
  vow_value_t* v;
  assert_int_equal(vow_value_get_bin(bin, &b, &len), 0);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_bin(&pk, len);
  msgpack_pack_bin_body(&pk, b, len);
  msgpack_pack_uint64(&pk, ms);
  v = vow_value_new_msgpack(sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  return v;
}

/* Both ways by segments: the worker maps the arguments (it holds a
 * segment while the task runs), the result comes back as a value over a
 * segment, the bytes are the bytes; nothing is held once the values go. */
static void big_values_go_by_segments(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_value_t *arg = ramp(8 * MiB), *back, *info;
  vow_value_ref(arg);
  back = run_value(fx, vow_pool_submit(pool, "echo", arg));
  assert_ramp(back, 8 * MiB);
  /* The argument's segment (kept with it) and the result's. */
  assert_int_equal(live_segments(), 2);
  vow_value_release(back);
  vow_value_ref(arg);
  info = run_value(fx, vow_pool_submit(pool, "bin_info", arg));
  assert_int_equal(item(info, 0), (int64_t)(8 * MiB));
  assert_int_equal(item(info, 1), ramp_sum(8 * MiB));
  assert_true(item(info, 2) >= 1); /* mapped while it ran */
  vow_value_release(info);
  assert_int_equal(live_segments(), 1); /* arg's, made once */
  vow_value_release(arg);
  assert_int_equal(live_segments(), 0);
  /* Small values keep the channel. */
  info = run_value(fx, vow_pool_submit(pool, "segments", NULL));
  assert_int_equal(live_segments(), 0);
  vow_value_release(info);
  end_pool(fx, pool, true);
}

/* A value past the wire's 64 MiB goes by a segment each way. */
static void values_past_the_wire_limit(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_value_t* back =
      run_value(fx, vow_pool_submit(pool, "echo", ramp(100 * MiB)));
  assert_ramp(back, 100 * MiB);
  vow_value_release(back);
  back = run_value(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(70 * (int64_t)MiB)));
  assert_ramp(back, 70 * MiB);
  vow_value_release(back);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* One value to many tasks on two workers: one segment in all. */
static void one_segment_for_many_tasks(void** state) {
  enum { N = 16 };
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(2);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_value_t* arg = ramp(4 * MiB);
  vow_promise_t* ps[N];
  int i;
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "bin_info", vow_value_ref(arg));
  for (i = 0; i < N; i++) {
    vow_value_t* info = run_value(fx, ps[i]);
    assert_int_equal(item(info, 0), (int64_t)(4 * MiB));
    vow_value_release(info);
  }
  assert_int_equal(live_segments(), 1);
  vow_value_release(arg);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* Eight tasks of one value queued at one worker: one mapping of it, not
 * eight; none once they are over. */
static void a_worker_maps_a_value_once_for_its_tasks(void** state) {
  enum { N = 8 };
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t *bin = ramp(4 * MiB), *arg = hold_args(bin, 300);
  vow_promise_t* ps[N];
  int i;
  o.in_flight = N;
  pool = make_pool(fx, &o);
  for (i = 0; i < N; i++)
    ps[i] = vow_pool_submit(pool, "maps_while_queued", vow_value_ref(arg));
  assert_int_equal(most_of(fx, ps, N), 1);
  vow_value_release(arg);
  vow_value_release(bin);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* A bin made in shared memory from the start: written in place, sealed
 * at its first submission, sent to three tasks as the one segment it
 * is; refused for a size it cannot be. */
static void a_value_made_in_shared_memory(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  unsigned char* b;
  vow_value_t* v;
  vow_promise_t* ps[3];
  size_t i, n = 4 * MiB;
  int err = 0;
  assert_null(vow_value_new_shared_bin(0, (void**)&b, &err));
  assert_int_equal(err, UV_EINVAL);
  v = vow_value_new_shared_bin(n, (void**)&b, &err);
  assert_non_null(v);
  assert_int_equal((uintptr_t)b % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
  for (i = 0; i < n; i++)
    b[i] = (unsigned char)i;
  assert_int_equal(live_segments(), 1);
  for (i = 0; i < 3; i++)
    ps[i] = vow_pool_submit(pool, "bin_info", vow_value_ref(v));
  for (i = 0; i < 3; i++) {
    vow_value_t* info = run_value(fx, ps[i]);
    assert_int_equal(item(info, 0), (int64_t)n);
    assert_int_equal(item(info, 1), ramp_sum(n));
    vow_value_release(info);
  }
  assert_ramp(v, n); /* still readable here, read-only now */
  assert_int_equal(live_segments(), 1);
  vow_value_release(v);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

static int progress_pid;
static void note_worker_pid(vow_pool_t* pool, uint64_t task_id, double fraction,
                            const char* text, void* data) {
  (void)pool;
  (void)task_id;
  (void)fraction;
  (void)data;
  progress_pid = atoi(text);
}

static void wait_for_pid(fixture* fx) {
  int rounds = 0;
  while (progress_pid == 0 && rounds++ < 1000) {
    vow_promise_t* nap = vow_sleep(fx->ctx, 5);
    vow_ctx_wait(fx->ctx, nap);
    vow_promise_release(nap);
  }
  assert_true(progress_pid > 0);
}

/* The segments held by the pool's workers now, asked of each. */
static int64_t workers_hold(fixture* fx, vow_pool_t* pool, unsigned n) {
  int64_t held = 0;
  unsigned i;
  for (i = 0; i < n; i++) {
    vow_value_t* v = run_value(fx, vow_pool_submit(pool, "segments", NULL));
    int64_t k;
    assert_int_equal(vow_value_get_int(v, &k), 0);
    held += k;
    vow_value_release(v);
  }
  return held;
}

/* A worker killed while it holds a segment, a task timed out while it
 * holds one, a task cancelled before it began: afterwards no worker and
 * not this process holds any. */
static void no_segment_outlives_its_users(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t* bin = ramp(4 * MiB);
  vow_promise_t *held, *queued;
  vow_failure_t* f;
  o.retries = 0;
  pool = make_pool(fx, &o);
  vow_pool_on_progress(pool, note_worker_pid, NULL);
  /* SIGKILL */
  progress_pid = 0;
  held = vow_pool_submit(pool, "bin_hold", hold_args(bin, 60000));
  wait_for_pid(fx);
  assert_true(shm_segments_held(progress_pid) >= 1);
  kill(progress_pid, SIGKILL);
  f = run_fail(fx, held, VOW_FAIL_WORKER_DIED);
  vow_failure_release(f);
  assert_int_equal(workers_hold(fx, pool, 1), 0);
  /* timeout */
  progress_pid = 0;
  held = vow_pool_submit_timeout(pool, "bin_hold", hold_args(bin, 60000), 300);
  f = run_fail(fx, held, VOW_FAIL_TIMEOUT);
  vow_failure_release(f);
  assert_int_equal(workers_hold(fx, pool, 1), 0);
  /* cancelled while queued behind a running one */
  progress_pid = 0;
  held = vow_pool_submit(pool, "bin_hold", hold_args(bin, 300));
  queued = vow_pool_submit(pool, "bin_hold", hold_args(bin, 300));
  wait_for_pid(fx);
  vow_cancel(queued);
  f = run_fail(fx, queued, VOW_FAIL_CANCELLED);
  vow_failure_release(f);
  vow_value_release(run_value(fx, held));
  assert_int_equal(workers_hold(fx, pool, 1), 0);
  vow_value_release(bin);
  assert_int_equal(live_segments(), 0);
  assert_int_equal(shm_segments_held(getpid()), 0);
  end_pool(fx, pool, true);
}

/* The parent SIGKILLed while its worker holds a segment: the worker goes
 * with it, and with them every mapping and descriptor. */
static void a_killed_parent_leaves_no_segment(void** state) {
  int ready[2], worker_pid = 0, status;
  pid_t parent;
  (void)state;
  assert_int_equal(pipe(ready), 0);
  parent = fork();
  assert_true(parent >= 0);
  if (parent == 0) {
    vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
    vow_pool_options_t o = shm_defaults(1);
    vow_pool_t* pool;
    vow_value_t* bin = ramp(4 * MiB);
    pool = vow_pool_new(ctx, &o, NULL);
    vow_pool_on_progress(pool, note_worker_pid, NULL);
    progress_pid = 0;
    vow_promise_t* p = vow_pool_submit(pool, "bin_hold", hold_args(bin, 60000));
    while (progress_pid == 0) {
      vow_promise_t* nap = vow_sleep(ctx, 5);
      vow_ctx_wait(ctx, nap);
      vow_promise_release(nap);
    }
    if (write(ready[1], &progress_pid, sizeof(progress_pid)) < 0)
      _exit(2);
    vow_ctx_wait(ctx, p);
    _exit(1);
  }
  close(ready[1]);
  assert_int_equal(read(ready[0], &worker_pid, sizeof(worker_pid)),
                   sizeof(worker_pid));
  close(ready[0]);
  assert_true(shm_segments_held(worker_pid) >= 1);
  assert_true(shm_segments_held(parent) >= 1); /* the argument's segment */
  kill(parent, SIGKILL);
  assert_int_equal(waitpid(parent, &status, 0), parent);
  /* The worker dies of its parent's death (a grandchild: not ours to
   * reap, so wait for its /proc entry to go). */
  for (int rounds = 0; kill(worker_pid, 0) == 0 && rounds < 1000; rounds++)
    usleep(5000);
  assert_int_equal(shm_segments_held(worker_pid), 0);
  assert_int_equal(shm_segments_held(getpid()), 0);
}

/* Workers that lie about segments break the protocol: the task fails
 * saying how, the worker is replaced, the pool serves on. */
static void lying_workers_break_the_protocol(void** state) {
  static const struct {
    const char* fn;
    const char* says;
  } cases[] = {
      {"shm_unsent", "segment 1000000, which never came"},
      {"shm_unsealed", "not sealed"},
      {"shm_short", "past the end of its segment"},
      {"shm_pipe", "not a segment"},
      {"shm_garbage", "not one msgpack value"},
  };
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  size_t i;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    vow_failure_t* f = run_fail(fx, vow_pool_submit(pool, cases[i].fn, NULL),
                                VOW_FAIL_PROTOCOL);
    if (strstr(vow_failure_message(f), cases[i].says) == NULL)
      fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].fn, vow_failure_message(f),
               cases[i].says);
    vow_failure_release(f);
    vow_value_release(run_value(fx, vow_pool_submit(pool, "segments", NULL)));
  }
  assert_int_equal(live_segments(), 0);
  assert_int_equal(shm_segments_held(getpid()), 0);
  end_pool(fx, pool, true);
}

/* Past shm_max_bytes: what fits the wire goes by the wire; arguments that
 * do not are refused at submit, a result that does not fails its task;
 * each says which limit. */
static void the_limit_sends_by_wire_or_says_so(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t* back;
  vow_failure_t* f;
  o.shm_max_bytes = 4 * MiB;
  pool = make_pool(fx, &o);
  back = run_value(fx, vow_pool_submit(pool, "echo", ramp(8 * MiB)));
  assert_ramp(back, 8 * MiB); /* by the wire both ways: 8 > 4 */
  assert_int_equal(live_segments(), 0);
  vow_value_release(back);
  f = run_fail(fx, vow_pool_submit(pool, "echo", ramp(70 * MiB)),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "message limit"));
  vow_failure_release(f);
  f = run_fail(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(70 * (int64_t)MiB)),
      VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "shm_max_bytes"));
  vow_failure_release(f);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* At shm_max_segments, values that fit the channel take it (a result is
 * read into memory), and bigger ones fail naming the limit; below it
 * again, segments. */
static void the_segment_limit_sends_by_wire_or_says_so(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t *held, *back;
  vow_failure_t* f;
  o.shm_max_segments = 1;
  pool = make_pool(fx, &o);
  held = run_value(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(2 * (int64_t)MiB)));
  assert_true(vow_value_is_shared(held));
  assert_int_equal(live_segments(), 1);
  back = run_value(fx, vow_pool_submit(pool, "echo", ramp(8 * MiB)));
  assert_ramp(back, 8 * MiB);
  assert_false(vow_value_is_shared(back)); /* read into memory */
  vow_value_release(back);
  f = run_fail(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(70 * (int64_t)MiB)),
      VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "shm_max_segments"));
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "echo", ramp(70 * MiB)),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "shm_max_segments"));
  vow_failure_release(f);
  assert_int_equal(live_segments(), 1);
  vow_value_release(held);
  back = run_value(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(8 * (int64_t)MiB)));
  assert_true(vow_value_is_shared(back));
  vow_value_release(back);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* A parent at its limit of open descriptors cannot receive a result's
 * segment: that task fails, saying so, and the worker serves on. */
static void a_parent_out_of_descriptors_fails_only_the_task(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_pool_stats_t st;
  struct rlimit was, now;
  vow_failure_t* f;
  vow_value_t* v;
  int lowest_free;
  v = run_value(fx, vow_pool_submit(pool, "segments", NULL)); /* it is up */
  vow_value_release(v);
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
  lowest_free = dup(0);
  assert_true(lowest_free > 0);
  close(lowest_free);
  now = was;
  now.rlim_cur = (rlim_t)lowest_free; /* no new descriptor from here */
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &now), 0);
  f = run_fail(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(8 * (int64_t)MiB)),
      VOW_FAIL_TASK_ERROR);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
  assert_non_null(strstr(vow_failure_message(f), "RLIMIT_NOFILE"));
  vow_failure_release(f);
  v = run_value(
      fx, vow_pool_submit(pool, "ramp", vow_value_new_int(8 * (int64_t)MiB)));
  assert_ramp(v, 8 * MiB);
  vow_value_release(v);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 1);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

static vow_value_t* args_with_part(vow_value_t* bin, int64_t ms);

/* The same at the worker: a worker that cannot receive its arguments'
 * segment fails that task, saying so, and serves on. */
static void a_worker_out_of_descriptors_fails_only_the_task(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  vow_pool_stats_t st;
  vow_failure_t* f;
  vow_value_t *v, *bin = ramp(2 * MiB);
  int64_t soft;
  v = run_value(fx, vow_pool_submit(pool, "nofile", NULL));
  assert_int_equal(vow_value_get_int(v, &soft), 0);
  vow_value_release(v);
  f = run_fail(fx, vow_pool_submit(pool, "bin_info", vow_value_ref(bin)),
               VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "RLIMIT_NOFILE"));
  vow_failure_release(f);
  f = run_fail(fx, vow_pool_submit(pool, "bin_info", args_with_part(bin, 0)),
               VOW_FAIL_TASK_ERROR); /* as a part */
  assert_non_null(strstr(vow_failure_message(f), "RLIMIT_NOFILE"));
  vow_failure_release(f);
  v = run_value(fx, vow_pool_submit(pool, "nofile", vow_value_new_int(soft)));
  vow_value_release(v);
  v = run_value(fx, vow_pool_submit(pool, "bin_info", vow_value_ref(bin)));
  assert_int_equal(item(v, 0), (int64_t)(2 * MiB));
  vow_value_release(v);
  vow_value_release(bin);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 1);
  end_pool(fx, pool, true);
}

/* Under a launcher the worker may be on another machine: the wire. */
static void launchers_keep_the_wire(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t* back;
  under_a_launcher(&o);
  pool = make_pool(fx, &o);
  back = run_value(fx, vow_pool_submit(pool, "echo", ramp(8 * MiB)));
  assert_ramp(back, 8 * MiB);
  assert_int_equal(live_segments(), 0);
  vow_value_release(back);
  end_pool(fx, pool, true);
}

/* A worker that can neither map nor read a segment (its address space
 * limited below the value) fails that task, saying so, and serves on:
 * through the channel it could not have taken the value either. */
static void a_worker_that_cannot_map_fails_only_the_task(void** state) {
#ifdef UNDER_ASAN
  (void)state;
  skip(); /* the sanitizer's shadow memory needs more address space */
#else
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_failure_t* f;
  vow_value_t* v;
  o.limits = "as=50000000";
  pool = make_pool(fx, &o);
  f = run_fail(fx, vow_pool_submit(pool, "bin_info", ramp(60 * MiB)),
               VOW_FAIL_TASK_ERROR);
  assert_non_null(strstr(vow_failure_message(f), "no memory to map or read"));
  vow_failure_release(f);
  v = run_value(fx, vow_pool_submit(pool, "bin_info", ramp(2 * MiB)));
  assert_int_equal(item(v, 0), (int64_t)(2 * MiB));
  vow_value_release(v);
  end_pool(fx, pool, true);
#endif
}

/* A value shaped as a reference is the protocol's: refused at submit. */
static void a_reference_shaped_value_is_refused(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  unsigned char ref[27] = {0xc7, 24, 83};
  vow_failure_t* f =
      run_fail(fx,
               vow_pool_submit(pool, "echo",
                               vow_value_new_msgpack(ref, sizeof(ref), NULL)),
               VOW_FAIL_BAD_INPUT);
  assert_non_null(
      strstr(vow_failure_message(f), "references to shared memory"));
  vow_failure_release(f);
  end_pool(fx, pool, true);
}

/* [bin, ms] with the bin a part kept apart (vow_value_new_args): a new
 * arguments value per task, the bin's one segment for all. */
static vow_value_t* args_with_part(vow_value_t* bin, int64_t ms) {
  vow_value_t* ms_value = vow_value_new_int(ms);
  vow_value_t* items[2] = {bin, ms_value};
  int err = 0;
  vow_value_t* v = vow_value_new_args(items, 2, &err);
  assert_non_null(v);
  vow_value_release(ms_value);
  return v;
}

/* Eight tasks, each its own arguments holding one big part: the part's
 * segment is made once, a worker maps it once for all the tasks it
 * holds, and the function reads it where the reference stood. */
static void a_part_is_mapped_once_for_many_tasks(void** state) {
  enum { N = 8 };
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t* bin = ramp(4 * MiB);
  vow_value_t* info;
  vow_promise_t* ps[N];
  int i;
  o.in_flight = N;
  pool = make_pool(fx, &o);
  for (i = 0; i < N; i++)
    ps[i] =
        vow_pool_submit(pool, "maps_while_queued", args_with_part(bin, 300));
  assert_int_equal(most_of(fx, ps, N), 1);
  info =
      run_value(fx, vow_pool_submit(pool, "bin_info", args_with_part(bin, 0)));
  assert_int_equal(item(info, 0), (int64_t)(4 * MiB));
  assert_int_equal(item(info, 1), ramp_sum(4 * MiB));
  vow_value_release(info);
  assert_int_equal(live_segments(), 1); /* the bin's, kept with it */
  vow_value_release(bin);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* To a worker under a launcher, and with small parts, the parts are
 * written in: the function sees the same arguments. */
static void parts_are_written_in_where_segments_cannot_go(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool;
  vow_value_t *bin = ramp(2 * MiB), *small = ramp(100 * 1024), *info;
  under_a_launcher(&o);
  pool = make_pool(fx, &o);
  info =
      run_value(fx, vow_pool_submit(pool, "bin_info", args_with_part(bin, 7)));
  assert_int_equal(item(info, 0), (int64_t)(2 * MiB));
  assert_int_equal(item(info, 1), ramp_sum(2 * MiB));
  assert_int_equal(item(info, 2), 0); /* no segment at the worker */
  vow_value_release(info);
  end_pool(fx, pool, true);
  /* Locally, a part under the threshold is written in too. */
  o = shm_defaults(1);
  pool = make_pool(fx, &o);
  info = run_value(fx,
                   vow_pool_submit(pool, "bin_info", args_with_part(small, 7)));
  assert_int_equal(item(info, 0), 100 * 1024);
  assert_int_equal(item(info, 2), 0);
  vow_value_release(info);
  assert_int_equal(live_segments(), 0);
  vow_value_release(bin);
  vow_value_release(small);
  end_pool(fx, pool, true);
}

/* A result written in place by the task function goes as the segment it
 * was written in: its bytes page-aligned in the parent's mapping too (a
 * copy on the way would have put them after the bin's header). Small, in
 * a map, or to a launcher's worker, it is packed the usual way. */
static void a_result_written_in_place(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  const void* bytes;
  size_t len;
  vow_value_t *v, *items;
  v = run_value(fx, vow_pool_submit(pool, "ramp_in_place",
                                    vow_value_new_int(8 * (int64_t)MiB)));
  assert_ramp(v, 8 * MiB);
  assert_true(vow_value_is_shared(v));
  assert_int_equal(vow_value_get_bin(v, &bytes, &len), 0);
  assert_int_equal((uintptr_t)bytes % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
  vow_value_release(v);
  v = run_value(
      fx, vow_pool_submit(pool, "ramp_in_place", vow_value_new_int(1000)));
  assert_ramp(v, 1000);
  assert_false(vow_value_is_shared(v));
  vow_value_release(v);
  {
    vow_value_t* one[1] = {vow_value_new_int(3000)};
    items = vow_value_new_array(one, 1);
  }
  v = run_value(fx, vow_pool_map(pool, "ramp_in_place", items));
  assert_int_equal(vow_value_array_len(v), 1);
  vow_value_release(v);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
  under_a_launcher(&o);
  pool = make_pool(fx, &o);
  v = run_value(fx, vow_pool_submit(pool, "ramp_in_place",
                                    vow_value_new_int(8 * (int64_t)MiB)));
  assert_ramp(v, 8 * MiB);
  assert_false(vow_value_is_shared(v));
  vow_value_release(v);
  end_pool(fx, pool, true);
}

/* A value written into a segment from pieces, through the kernel: the
 * same bytes, sealed, its data on a page; pieces that are not one value
 * are refused. A part left not msgpack is refused at submit. */
static void values_written_into_shared_memory(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  unsigned char head[5] = {0xc6, 0, 0x40, 0, 0}; /* bin of 4 MiB */
  unsigned char* data = malloc(4 * MiB);
  const void* pieces[2] = {head, data};
  size_t lens[2] = {sizeof(head), 4 * MiB}, i, len;
  const void* bytes;
  vow_value_t *v, *bad, *args, *info;
  vow_failure_t* f;
  void* raw;
  int err = 0;
  for (i = 0; i < 4 * MiB; i++)
    data[i] = (unsigned char)i;
  v = vow_value_new_shared_from(pieces, lens, 2, sizeof(head), &err);
  free(data);
  assert_non_null(v);
  assert_true(vow_value_is_shared(v));
  assert_ramp(v, 4 * MiB);
  assert_int_equal(vow_value_get_bin(v, &bytes, &len), 0);
  assert_int_equal((uintptr_t)bytes % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
  info = run_value(fx, vow_pool_submit(pool, "bin_info", vow_value_ref(v)));
  assert_int_equal(item(info, 0), (int64_t)(4 * MiB));
  vow_value_release(info);
  lens[1] = 100; /* a bin of 4 MiB that holds 100 bytes */
  assert_null(vow_value_new_shared_from(pieces, lens, 1, 0, &err));
  assert_int_equal(err, UV_EINVAL);
  bad = vow_value_new_shared(2 * MiB, 0, &raw, &err);
  assert_non_null(bad);
  memset(raw, 0xc1, 2 * MiB); /* never msgpack */
  {
    vow_value_t* items[1] = {bad};
    args = vow_value_new_args(items, 1, &err);
  }
  f = run_fail(fx, vow_pool_submit(pool, "echo", args), VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "not one msgpack value"));
  vow_failure_release(f);
  vow_value_release(bad);
  vow_value_release(v);
  assert_int_equal(live_segments(), 0);
  end_pool(fx, pool, true);
}

/* References name parts and nothing else: a stray one inside ordinary
 * arguments is refused at submit, one to no part at construction. */
static void stray_references_are_refused(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = shm_defaults(1);
  vow_pool_t* pool = make_pool(fx, &o);
  unsigned char bytes[1 + VOW_VALUE_PART_REF_LEN] = {0x91};
  vow_value_t* one = vow_value_new_int(1);
  vow_failure_t* f;
  int err = 0;
  vow_value_part_ref(0, bytes + 1);
  f = run_fail(
      fx,
      vow_pool_submit(pool, "echo",
                      vow_value_new_msgpack(bytes, sizeof(bytes), NULL)),
      VOW_FAIL_BAD_INPUT);
  assert_non_null(strstr(vow_failure_message(f), "vow_value_new_with_parts"));
  vow_failure_release(f);
  assert_null(vow_value_new_with_parts(bytes, sizeof(bytes), NULL, 0, &err));
  assert_int_equal(err, UV_EINVAL);
  vow_value_part_ref(1, bytes + 1);
  err = 0;
  assert_null(vow_value_new_with_parts(bytes, sizeof(bytes), &one, 1, &err));
  assert_int_equal(err, UV_EINVAL);
  vow_value_release(one);
  end_pool(fx, pool, true);
}

int main(void) {
  vow_worker_main(shm_test_functions, shm_test_nfunctions);
  {
    const struct CMUnitTest tests[] = {
        T(big_values_go_by_segments),
        T(values_past_the_wire_limit),
        T(one_segment_for_many_tasks),
        T(a_worker_maps_a_value_once_for_its_tasks),
        T(a_value_made_in_shared_memory),
        T(no_segment_outlives_its_users),
        T(a_killed_parent_leaves_no_segment),
        T(lying_workers_break_the_protocol),
        T(the_limit_sends_by_wire_or_says_so),
        T(the_segment_limit_sends_by_wire_or_says_so),
        T(a_parent_out_of_descriptors_fails_only_the_task),
        T(a_worker_out_of_descriptors_fails_only_the_task),
        T(launchers_keep_the_wire),
        T(a_reference_shaped_value_is_refused),
        T(a_worker_that_cannot_map_fails_only_the_task),
        T(a_part_is_mapped_once_for_many_tasks),
        T(parts_are_written_in_where_segments_cannot_go),
        T(stray_references_are_refused),
        T(a_result_written_in_place),
        T(values_written_into_shared_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
  }
}
