/* The context: on the caller's loop and on its own, reports at close and
 * through the default handler, counters. */
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

static int user_timer_fired;
static void on_user_timer(uv_timer_t* t) {
  user_timer_fired++;
  uv_close((uv_handle_t*)t, NULL);
}

static void works_on_callers_loop(void** state) {
  uv_loop_t loop;
  uv_timer_t user_timer;
  vow_ctx_t* ctx;
  seen s = {0};
  vow_promise_t* p;
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_timer_init(&loop, &user_timer);
  uv_timer_start(&user_timer, on_user_timer, 5, 0);
  ctx = vow_ctx_new(&loop, NULL);
  assert_ptr_equal(vow_ctx_loop(ctx), &loop);
  p = vow_add_callback(vow_sleep(ctx, 10), record_value, &s);
  uv_run(&loop, UV_RUN_DEFAULT); /* the caller runs its own loop */
  assert_int_equal(s.calls, 1);
  assert_int_equal(user_timer_fired, 1);
  vow_promise_release(p);
  vow_ctx_close(ctx);
  /* vow's handles close on the caller's loop; afterwards nothing of vow's
   * is left on it. */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void close_on_callers_loop_with_work_in_flight(void** state) {
  uv_loop_t loop;
  vow_ctx_t* ctx;
  fixture fx = {0};
  const char* const argv[] = {"sleep", "30", NULL};
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  ctx = vow_ctx_new(&loop, NULL);
  vow_ctx_set_report_handler(ctx, count_report, &fx);
  vow_promise_release(vow_run_command(ctx, argv));
  vow_promise_release(vow_sleep(ctx, 100000));
  vow_promise_release(vow_read_file(ctx, "/etc/hostname"));
  vow_ctx_close(ctx); /* kills the command, drops the timer */
  assert_int_equal(fx.pending, 3);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once the child is reaped */
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Runs fn with stderr sent to a temp file and returns what it wrote. */
static char* capture_stderr(void (*fn)(void)) {
  char path[] = "/tmp/vow-stderr-XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  static char buf[4096];
  ssize_t n;
  fflush(stderr);
  dup2(fd, 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, buf, sizeof(buf) - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  return buf;
}

static void leave_one_unhandled_and_one_pending(void) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t* pending = vow_promise_new(ctx, NULL, NULL);
  vow_promise_release(
      vow_fail(ctx, vow_failure_new(VOW_FAIL_TASK_ERROR, 0, "sum of nothing")));
  (void)pending;
  vow_ctx_close(ctx);
}

static void default_handler_writes_stderr(void** state) {
  char* out;
  (void)state;
  out = capture_stderr(leave_one_unhandled_and_one_pending);
  assert_non_null(strstr(out, "unhandled failure: task error: sum of nothing"));
  assert_non_null(strstr(out, "still pending"));
  /* Each is reported exactly once. */
  assert_null(strstr(strstr(out, "sum of nothing") + 1, "sum of nothing"));
}

static void stats_count_live_and_pending(void** state) {
  fixture* fx = *state;
  vow_ctx_stats_t st;
  vow_promise_t* a = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* b = vow_succeed(fx->ctx, NULL);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.promises_live, 2);
  assert_int_equal(st.promises_pending, 1);
  assert_true(st.bytes_reserved > 0);
  vow_fulfil(a, NULL);
  vow_promise_release(a);
  vow_promise_release(b);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.promises_live, 0);
}

static void wait_returns_final_state(void** state) {
  fixture* fx = *state;
  vow_promise_t* ok = vow_add_callback(vow_sleep(fx->ctx, 1), add_one, NULL);
  vow_promise_t* bad = vow_timeout(vow_sleep(fx->ctx, 10000), 1);
  vow_add_errback(bad, record_failure, &(seen){0});
  assert_int_equal(vow_ctx_wait(fx->ctx, ok), VOW_FULFILLED);
  assert_int_equal(vow_ctx_wait(fx->ctx, bad), VOW_REJECTED);
  vow_add_errback(bad, record_and_recover, &(seen){0});
  vow_ctx_drain(fx->ctx);
  vow_promise_release(ok);
  vow_promise_release(bad);
}

static void settle_from_uv_timer(uv_timer_t* t) {
  vow_fulfil(t->data, vow_value_new_int(5));
}

/* A promise settled by a libuv callback at the start of vow_ctx_wait's
 * turn of the loop (a timer already due when the turn begins): the wait
 * returns, rather than poll on with nothing left that would wake it.
 * alarm() turns a hang into a failure. */
static void wait_wakes_for_a_settle_inside_the_turn(void** state) {
  fixture* fx = *state;
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  uv_timer_t t;
  uv_timer_init(vow_ctx_loop(fx->ctx), &t);
  t.data = p;
  uv_timer_start(&t, settle_from_uv_timer, 0, 0);
  usleep(2000); /* the loop's cached time is behind: the timer is due */
  alarm(10);
  assert_int_equal(vow_ctx_wait(fx->ctx, p), VOW_FULFILLED);
  alarm(0);
  assert_int_equal(int_of(vow_promise_value(p)), 5);
  vow_promise_release(p);
  uv_close((uv_handle_t*)&t, NULL);
  vow_ctx_run(fx->ctx); /* lets the timer handle close */
}

/* Chains run in the order their promises became ready, also while the
 * ready queue wraps round and grows under a running drain: each callback
 * makes two more settled promises with callbacks, far past the queue's
 * first size. Promises are numbered as they are made, so the log must
 * read 0, 1, 2, ... */
enum { ORDER_ROOTS = 200, ORDER_TOTAL = 5000 };
typedef struct order_log {
  vow_ctx_t* ctx;
  int made;
  int ran;
  int log[ORDER_TOTAL];
} order_log;

static vow_outcome_t log_and_spawn(vow_value_t* v, void* data);

static void make_logged(order_log* o) {
  vow_value_t* id = vow_value_new_int(o->made++);
  vow_promise_release(
      vow_add_callback(vow_succeed(o->ctx, id), log_and_spawn, o));
}

static vow_outcome_t log_and_spawn(vow_value_t* v, void* data) {
  order_log* o = data;
  o->log[o->ran++] = (int)int_of(v);
  vow_value_release(v);
  if (o->made + 2 <= ORDER_TOTAL) {
    make_logged(o);
    make_logged(o);
  }
  return vow_ok(NULL);
}

static void ready_queue_keeps_order_as_it_grows(void** state) {
  fixture* fx = *state;
  order_log* o = calloc(1, sizeof(*o));
  int i;
  o->ctx = fx->ctx;
  for (i = 0; i < ORDER_ROOTS; i++)
    make_logged(o);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(o->made, ORDER_TOTAL);
  assert_int_equal(o->ran, ORDER_TOTAL);
  for (i = 0; i < ORDER_TOTAL; i++)
    assert_int_equal(o->log[i], i);
  free(o);
}

/* A promise names its context by a 16-bit id: 65,535 contexts may be open
 * at once, the next is refused with UV_EMFILE, and an id comes back when
 * its context is closed. */
static void contexts_run_out_of_ids(void** state) {
  enum { MAX = 65535 };
  uv_loop_t loop;
  vow_ctx_t** ctxs = calloc(MAX + 1, sizeof(*ctxs));
  vow_promise_t* p;
  int err = 0;
  size_t n = 0, i;
  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  while (n <= MAX && (ctxs[n] = vow_ctx_new(&loop, &err)) != NULL)
    n++;
  assert_int_equal(n, MAX);
  assert_int_equal(err, UV_EMFILE);
  /* The newest context still works, and a promise knows its own. */
  p = vow_succeed(ctxs[n - 1], vow_value_new_int(7));
  assert_ptr_equal(vow_promise_ctx(p), ctxs[n - 1]);
  vow_promise_release(p);
  vow_ctx_close(ctxs[0]);
  ctxs[0] = vow_ctx_new(&loop, &err);
  assert_non_null(ctxs[0]);
  p = vow_promise_new(ctxs[0], NULL, NULL);
  assert_ptr_equal(vow_promise_ctx(p), ctxs[0]);
  vow_fulfil(p, NULL);
  vow_promise_release(p);
  for (i = 0; i < n; i++)
    vow_ctx_close(ctxs[i]);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(ctxs);
}

static void version_is_header_version(void** state) {
  (void)state;
  assert_int_equal(vow_version(), (VOW_VERSION_MAJOR << 16) |
                                      (VOW_VERSION_MINOR << 8) |
                                      VOW_VERSION_PATCH);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(works_on_callers_loop),
      cmocka_unit_test(close_on_callers_loop_with_work_in_flight),
      cmocka_unit_test(default_handler_writes_stderr),
      T(stats_count_live_and_pending),
      T(wait_returns_final_state),
      T(wait_wakes_for_a_settle_inside_the_turn),
      cmocka_unit_test(version_is_header_version),
      T(ready_queue_keeps_order_as_it_grows),
      cmocka_unit_test(contexts_run_out_of_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
