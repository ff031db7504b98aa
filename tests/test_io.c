/* The loop lane (files, commands, sleep) and the thread lanes (thread pool,
 * threadsafe settle), on the real loop. */
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

static char tmpdir[64];

static int io_setup(void** state) {
  strcpy(tmpdir, "/tmp/vow-io-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  return fx_setup(state);
}

static int io_teardown(void** state) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
  assert_int_equal(system(cmd), 0);
  return fx_teardown(state);
}

static vow_value_t* got;
static vow_failure_t* failed;
static vow_outcome_t keep_value(vow_value_t* v, void* data) {
  (void)data;
  got = v;
  return vow_ok(NULL);
}
static vow_outcome_t keep_failure(vow_failure_t* f, void* data) {
  (void)data;
  failed = f;
  return vow_ok(NULL);
}

static void run_and_keep(fixture* fx, vow_promise_t* p) {
  got = NULL;
  failed = NULL;
  vow_add_callbacks(p, keep_value, keep_failure, NULL);
  vow_ctx_wait(fx->ctx, p);
  vow_promise_release(p);
}

static void write_then_read_file(void** state) {
  fixture* fx = *state;
  char path[128];
  size_t n = 300000, i, len;
  char* data = malloc(n);
  const void* back;
  int64_t written;
  for (i = 0; i < n; i++)
    data[i] = (char)(i * 7);
  snprintf(path, sizeof(path), "%s/data.bin", tmpdir);
  run_and_keep(fx, vow_write_file(fx->ctx, path, data, n));
  assert_null(failed);
  assert_int_equal(vow_value_get_int(got, &written), 0);
  assert_int_equal(written, n);
  vow_value_release(got);
  run_and_keep(fx, vow_read_file(fx->ctx, path));
  assert_null(failed);
  assert_int_equal(vow_value_get_bin(got, &back, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(back, data, n);
  vow_value_release(got);
  free(data);
}

static void read_empty_file(void** state) {
  fixture* fx = *state;
  char path[128];
  const void* back;
  size_t len = 99;
  snprintf(path, sizeof(path), "%s/empty", tmpdir);
  run_and_keep(fx, vow_write_file(fx->ctx, path, "", 0));
  vow_value_release(got);
  run_and_keep(fx, vow_read_file(fx->ctx, path));
  assert_int_equal(vow_value_get_bin(got, &back, &len), 0);
  assert_int_equal(len, 0);
  vow_value_release(got);
}

static void file_errors_name_errno_and_path(void** state) {
  fixture* fx = *state;
  char path[128];
  snprintf(path, sizeof(path), "%s/missing/file", tmpdir);
  run_and_keep(fx, vow_read_file(fx->ctx, path));
  assert_null(got);
  assert_non_null(failed);
  assert_int_equal(vow_failure_kind(failed), VOW_FAIL_IO);
  assert_int_equal(vow_failure_code(failed), UV_ENOENT);
  assert_string_equal(vow_failure_origin(failed)->path, path);
  assert_non_null(strstr(vow_failure_message(failed), path));
  vow_failure_release(failed);
  run_and_keep(fx, vow_write_file(fx->ctx, path, "x", 1));
  assert_int_equal(vow_failure_code(failed), UV_ENOENT);
  vow_failure_release(failed);
  /* Reading a directory fails at read time, not open time. */
  run_and_keep(fx, vow_read_file(fx->ctx, tmpdir));
  assert_int_equal(vow_failure_code(failed), UV_EISDIR);
  vow_failure_release(failed);
}

static void command_output_and_status(void** state) {
  fixture* fx = *state;
  const char* const argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3",
                              NULL};
  const vow_command_result_t* r;
  run_and_keep(fx, vow_run_command(fx->ctx, argv));
  assert_null(failed);
  r = vow_value_get_ptr(got);
  assert_int_equal(r->exit_status, 3);
  assert_int_equal(r->term_signal, 0);
  assert_string_equal(r->out, "out\n");
  assert_string_equal(r->err, "err\n");
  vow_value_release(got);
}

static void command_killed_by_signal(void** state) {
  fixture* fx = *state;
  const char* const argv[] = {"sh", "-c", "kill -9 $$", NULL};
  const vow_command_result_t* r;
  run_and_keep(fx, vow_run_command(fx->ctx, argv));
  r = vow_value_get_ptr(got);
  assert_int_equal(r->term_signal, 9);
  assert_int_equal(r->exit_status, -1);
  vow_value_release(got);
}

static void command_not_found(void** state) {
  fixture* fx = *state;
  const char* const argv[] = {"/nonexistent/vow-no-such-command", NULL};
  run_and_keep(fx, vow_run_command(fx->ctx, argv));
  assert_non_null(failed);
  assert_int_equal(vow_failure_kind(failed), VOW_FAIL_IO);
  assert_int_equal(vow_failure_code(failed), UV_ENOENT);
  assert_string_equal(vow_failure_origin(failed)->function,
                      "/nonexistent/vow-no-such-command");
  vow_failure_release(failed);
}

static void cancel_kills_command(void** state) {
  fixture* fx = *state;
  const char* const argv[] = {"sleep", "30", NULL};
  vow_promise_t* p = vow_run_command(fx->ctx, argv);
  vow_promise_t* t = vow_timeout(p, 50);
  (void)t;
  run_and_keep(fx, p);
  assert_non_null(failed);
  assert_int_equal(vow_failure_kind(failed), VOW_FAIL_TIMEOUT);
  vow_failure_release(failed);
  /* The loop only ends once the killed child is reaped and its pipes are
   * closed; a live `sleep 30` would hold it for 30 s. */
  vow_ctx_run(fx->ctx);
}

static vow_outcome_t blocking_sum(void* data) {
  int* n = data;
  int64_t s = 0;
  int i;
  usleep(1000); /* a real blocking call */
  for (i = 1; i <= *n; i++)
    s += i;
  return vow_ok(vow_value_new_int(s));
}

static vow_outcome_t blocking_fail(void* data) {
  (void)data;
  return vow_errf(VOW_FAIL_IO, UV_EIO, "device said no");
}

static void thread_pool_lane(void** state) {
  fixture* fx = *state;
  int n = 1000;
  run_and_keep(fx, vow_run_blocking(fx->ctx, blocking_sum, &n));
  assert_int_equal(int_of(got), 500500);
  vow_value_release(got);
  run_and_keep(fx, vow_run_blocking(fx->ctx, blocking_fail, NULL));
  assert_int_equal(vow_failure_code(failed), UV_EIO);
  vow_failure_release(failed);
}

/* Holds a pool thread until the test opens the gate. */
static uv_sem_t gate;
static int ran_after_cancel;

static vow_outcome_t wait_at_gate(void* data) {
  (void)data;
  uv_sem_wait(&gate);
  return vow_ok(NULL);
}

static vow_outcome_t must_not_run(void* data) {
  (void)data;
  ran_after_cancel++;
  return vow_ok(NULL);
}

static void cancelled_blocking_call_never_runs(void** state) {
  fixture* fx = *state;
  /* libuv's pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise;
   * fill every one so the next call stays queued. */
  enum { BUSY = 128 };
  vow_promise_t* busy[BUSY];
  vow_promise_t* queued;
  seen e = {0};
  const char* size = getenv("UV_THREADPOOL_SIZE");
  int threads = size ? atoi(size) : 4, i;
  assert_true(threads > 0 && threads <= BUSY);
  assert_int_equal(uv_sem_init(&gate, 0), 0);
  ran_after_cancel = 0;
  for (i = 0; i < threads; i++)
    busy[i] = vow_run_blocking(fx->ctx, wait_at_gate, NULL);
  queued = vow_run_blocking(fx->ctx, must_not_run, NULL);
  vow_add_errback(queued, record_and_recover, &e);
  vow_cancel(queued);
  for (i = 0; i < threads; i++)
    uv_sem_post(&gate);
  for (i = 0; i < threads; i++) {
    assert_int_equal(vow_ctx_wait(fx->ctx, busy[i]), VOW_FULFILLED);
    vow_promise_release(busy[i]);
  }
  vow_ctx_run(fx->ctx); /* the cancelled request completes as cancelled */
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  assert_int_equal(ran_after_cancel, 0);
  vow_promise_release(queued);
  uv_sem_destroy(&gate);
}

enum { THREADS = 4 };
typedef struct settler {
  uv_thread_t tid;
  vow_promise_t** ps;
  size_t from, to;
} settler;

static void settle_range(void* arg) {
  settler* s = arg;
  size_t i;
  for (i = s->from; i < s->to; i++) {
    if (i % 10 == 0)
      vow_reject_threadsafe(s->ps[i],
                            vow_failure_new(VOW_FAIL_USER, 0, "%zu", i));
    else
      vow_fulfil_threadsafe(s->ps[i], vow_value_new_int((int64_t)i));
  }
}

static vow_outcome_t sum_settled(vow_value_t* arr, void* data) {
  int64_t* sums = data; /* [sum of values, count of failures] */
  size_t i;
  for (i = 0; i < vow_value_array_len(arr); i++) {
    vow_value_t* v = vow_value_array_at(arr, i);
    if (vow_value_get_failure(v))
      sums[1]++;
    else
      sums[0] += int_of(v);
  }
  vow_value_release(arr);
  return vow_ok(NULL);
}

static void threads_settle_thousands(void** state) {
  fixture* fx = *state;
  size_t n = 20000, i;
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  settler s[THREADS];
  int64_t sums[2] = {0, 0}, expect = 0;
  vow_promise_t* all;
  for (i = 0; i < n; i++) {
    ps[i] = vow_promise_new(fx->ctx, NULL, NULL);
    vow_promise_ref(ps[i]); /* the reference the other thread hands back */
    if (i % 10)
      expect += (int64_t)i;
  }
  all = vow_all_settled(fx->ctx, ps, n); /* takes the creators' refs */
  vow_add_callback(all, sum_settled, sums);
  for (i = 0; i < THREADS; i++) {
    s[i].ps = ps;
    s[i].from = n * i / THREADS;
    s[i].to = n * (i + 1) / THREADS;
    assert_int_equal(uv_thread_create(&s[i].tid, settle_range, &s[i]), 0);
  }
  assert_int_equal(vow_ctx_wait(fx->ctx, all), VOW_FULFILLED);
  for (i = 0; i < THREADS; i++)
    uv_thread_join(&s[i].tid);
  assert_int_equal(sums[0], expect);
  assert_int_equal(sums[1], n / 10);
  vow_promise_release(all);
  free(ps);
}

#define T(name) cmocka_unit_test_setup_teardown(name, io_setup, io_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(write_then_read_file),
      T(read_empty_file),
      T(file_errors_name_errno_and_path),
      T(command_output_and_status),
      T(command_killed_by_signal),
      T(command_not_found),
      T(cancel_kills_command),
      T(thread_pool_lane),
      T(cancelled_blocking_call_never_runs),
      T(threads_settle_thousands),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
