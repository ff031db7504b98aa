/* Constant stack: a million callbacks on one chain and a million promises
 * each waiting on the next. ctest runs this under `ulimit -s 256`, where
 * any recursion per link would overflow the stack at once. VOW_QUICK=1
 * scales the counts down. */
#include "helpers.h"

static vow_outcome_t increment(vow_value_t* v, void* data) {
  int64_t* count = data;
  (*count)++;
  return vow_ok(v);
}

static void million_callbacks_on_one_chain(void** state) {
  fixture* fx = *state;
  size_t n = scaled(1000000), i;
  int64_t count = 0;
  seen s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  for (i = 0; i < n; i++)
    vow_add_callback(p, increment, &count);
  vow_add_callback(p, record_value, &s);
  vow_fulfil(p, vow_value_new_int(5));
  vow_ctx_run(fx->ctx);
  assert_int_equal(count, n);
  assert_int_equal(s.value, 5);
  vow_promise_release(p);
}

typedef struct nest {
  vow_promise_t** ps;
  size_t n;
} nest;

static vow_outcome_t wait_next(vow_value_t* v, void* data) {
  vow_value_release(v);
  return vow_wait(data);
}

/* p[i]'s callback waits on p[i+1]; only the last is settled by hand. */
static vow_promise_t** build_nest(fixture* fx, size_t n) {
  vow_promise_t** ps = malloc(n * sizeof(*ps));
  size_t i;
  for (i = 0; i < n; i++)
    ps[i] = vow_promise_new(fx->ctx, NULL, NULL);
  for (i = 0; i + 1 < n; i++) {
    vow_add_callback(ps[i], wait_next, ps[i + 1]); /* hands p[i+1] over */
    vow_fulfil(ps[i], NULL);
  }
  return ps;
}

static void million_nested_promises(void** state) {
  fixture* fx = *state;
  size_t n = scaled(1000000);
  vow_promise_t** ps = build_nest(fx, n);
  seen s = {0};
  vow_add_callback(ps[0], record_value, &s);
  vow_ctx_run(fx->ctx);
  assert_int_equal(vow_promise_state(ps[0]), VOW_WAITING);
  vow_fulfil(ps[n - 1], vow_value_new_int(42));
  vow_ctx_run(fx->ctx);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.value, 42);
  vow_promise_release(ps[0]);
  free(ps);
}

static void cancel_through_million_nested(void** state) {
  fixture* fx = *state;
  size_t n = scaled(1000000);
  vow_promise_t** ps = build_nest(fx, n);
  seen e = {0};
  vow_add_errback(ps[0], record_and_recover, &e);
  vow_ctx_run(fx->ctx);
  vow_cancel(ps[0]); /* reaches the innermost, whose failure flows back */
  vow_ctx_run(fx->ctx);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  assert_int_equal(vow_promise_state(ps[0]), VOW_FULFILLED);
  vow_promise_release(ps[0]);
  free(ps);
}

static void million_promises_one_callback_each(void** state) {
  fixture* fx = *state;
  size_t n = scaled(1000000), i;
  int64_t count = 0;
  vow_ctx_stats_t st;
  for (i = 0; i < n; i++) {
    vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
    vow_add_callback(p, increment, &count);
    vow_fulfil(p, NULL);
    vow_promise_release(p);
  }
  vow_ctx_run(fx->ctx);
  assert_int_equal(count, n);
  vow_ctx_stats(fx->ctx, &st);
  assert_int_equal(st.promises_live, 0); /* all freed once their chains ran */
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(million_callbacks_on_one_chain),
      T(million_nested_promises),
      T(cancel_through_million_nested),
      T(million_promises_one_callback_each),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
