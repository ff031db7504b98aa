/* Timeouts and sleep through the clock interface: the fake clock for
 * exact tests, the real loop once end to end. */
#include "helpers.h"

static void timeout_rejects_at_deadline(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_ctx_stats_t st;
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  vow_timeout(p, 100);
  vow_add_errback(p, record_and_recover, &e);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.timers, 1);
  vow_ctx_advance(fx->ctx, 99);
  assert_int_equal(e.calls, 0);
  assert_int_equal(vow_promise_state(p), VOW_PENDING);
  vow_ctx_advance(fx->ctx, 1);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_TIMEOUT);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.timers, 0);
  /* A late settle after the timeout is dropped silently. */
  assert_int_equal(vow_fulfil(p, NULL), 0);
  vow_promise_release(p);
}

static void timer_gone_once_settled(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_ctx_stats_t st;
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  vow_timeout(p, 100);
  vow_add_callback(p, record_value, &s);
  vow_fulfil(p, vow_value_new_int(5));
  vow_ctx_drain(fx->ctx);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.timers, 0);
  vow_ctx_advance(fx->ctx, 1000);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.value, 5);
  vow_promise_release(p);
}

static int cancelled_inner;
static void note_cancel(vow_promise_t* p, void* data) {
  (void)p;
  (void)data;
  cancelled_inner++;
}

static vow_outcome_t wait_on(vow_value_t* v, void* data) {
  vow_value_release(v);
  return vow_wait(data);
}

static void timeout_of_waiting_promise_cancels_inner(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_promise_t* inner = vow_promise_new(fx->ctx, note_cancel, NULL);
  vow_promise_t* outer = vow_succeed(fx->ctx, NULL);
  cancelled_inner = 0;
  vow_add_callback(outer, wait_on, vow_promise_ref(inner));
  vow_timeout(outer, 50);
  vow_add_errback(outer, record_and_recover, &e);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_promise_state(outer), VOW_WAITING);
  vow_ctx_advance(fx->ctx, 50);
  assert_int_equal(cancelled_inner, 1);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_TIMEOUT);
  vow_promise_release(inner);
  vow_promise_release(outer);
}

static void sleep_fulfils_in_order(void** state) {
  fixture* fx = *state;
  seen a = {0}, b = {0}, c = {0};
  vow_promise_t* pa =
      vow_add_callback(vow_sleep(fx->ctx, 30), record_value, &a);
  vow_promise_t* pb =
      vow_add_callback(vow_sleep(fx->ctx, 10), record_value, &b);
  vow_promise_t* pc =
      vow_add_callback(vow_sleep(fx->ctx, 10), record_value, &c);
  vow_ctx_advance(fx->ctx, 10);
  assert_int_equal(b.calls, 1);
  assert_int_equal(c.calls, 1);
  assert_int_equal(a.calls, 0);
  vow_ctx_advance(fx->ctx, 20);
  assert_int_equal(a.calls, 1);
  assert_int_equal(vow_ctx_now(fx->ctx), 1030);
  vow_promise_release(pa);
  vow_promise_release(pb);
  vow_promise_release(pc);
}

static void cancelled_sleep_removes_its_timer(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_ctx_stats_t st;
  vow_promise_t* p = vow_sleep(fx->ctx, 1000);
  vow_add_errback(p, record_and_recover, &e);
  vow_cancel(p);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.timers, 0);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  vow_promise_release(p);
}

static void fake_clock_refuses_when_armed(void** state) {
  fixture* fx = *state;
  vow_promise_t* p = vow_sleep(fx->ctx, 5);
  assert_int_equal(vow_ctx_use_fake_clock(fx->ctx, 0), UV_EBUSY);
  vow_ctx_advance(fx->ctx, 5);
  vow_promise_release(p);
}

static void many_timeouts_one_heap(void** state) {
  fixture* fx = *state;
  enum { N = 1000 };
  vow_promise_t* ps[N];
  seen e[N];
  vow_ctx_stats_t st;
  int i, fired = 0;
  memset(e, 0, sizeof(e));
  for (i = 0; i < N; i++) {
    ps[i] = vow_promise_new(fx->ctx, NULL, NULL);
    vow_timeout(ps[i], (uint64_t)(N - i));
    vow_add_errback(ps[i], record_and_recover, &e[i]);
  }
  for (i = 0; i < N; i += 2)
    vow_fulfil(ps[i], NULL); /* half settle */
  vow_ctx_drain(fx->ctx);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.timers, N / 2);
  vow_ctx_advance(fx->ctx, N);
  for (i = 0; i < N; i++)
    fired += e[i].calls;
  assert_int_equal(fired, N / 2);
  for (i = 0; i < N; i++)
    vow_promise_release(ps[i]);
}

/* End to end on the real loop: a 30 ms timeout beats a 2 s sleep. */
static void real_loop_timeout(void** state) {
  fixture* fx;
  seen e = {0};
  vow_promise_t* p;
  vow_ctx_stats_t st;
  uint64_t start;
  fx_setup(state);
  fx = *state;
  start = vow_ctx_now(fx->ctx);
  p = vow_timeout(vow_sleep(fx->ctx, 2000), 30);
  vow_add_errback(p, record_and_recover, &e);
  vow_ctx_run(fx->ctx);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_TIMEOUT);
  /* The sleep's timer went with its cancel: nothing is left armed, and
   * the loop's clock did not run on to the sleep's deadline. */
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.timers, 0);
  assert_true(vow_ctx_now(fx->ctx) - start < 2000);
  vow_promise_release(p);
  fx_teardown(state);
}

#define T(name) \
  cmocka_unit_test_setup_teardown(name, fx_setup_fake, fx_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(timeout_rejects_at_deadline),
      T(timer_gone_once_settled),
      T(timeout_of_waiting_promise_cancels_inner),
      T(sleep_fulfils_in_order),
      T(cancelled_sleep_removes_its_timer),
      T(fake_clock_refuses_when_armed),
      T(many_timeouts_one_heap),
      cmocka_unit_test(real_loop_timeout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
