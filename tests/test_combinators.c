/* all, all-settled, first-settled, any-fulfilled; succeed and fail. */
#include "helpers.h"

static int cancel_count[8];
static void count_cancel(vow_promise_t* p, void* data) {
  (void)p;
  cancel_count[(intptr_t)data]++;
}

static void make(fixture* fx, vow_promise_t** ps, vow_promise_t** keep, int n) {
  int i;
  memset(cancel_count, 0, sizeof(cancel_count));
  for (i = 0; i < n; i++) {
    ps[i] = vow_promise_new(fx->ctx, count_cancel, (void*)(intptr_t)i);
    keep[i] = vow_promise_ref(ps[i]);
  }
}

static void release_all(vow_promise_t** keep, int n) {
  int i;
  for (i = 0; i < n; i++)
    vow_promise_release(keep[i]);
}

static vow_value_t* result;
static vow_outcome_t grab(vow_value_t* v, void* data) {
  (void)data;
  result = vow_value_ref(v);
  return vow_ok(v);
}

static void all_in_input_order(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[3], *keep[3];
  vow_promise_t* all;
  make(fx, ps, keep, 3);
  all = vow_add_callback(vow_all(fx->ctx, ps, 3), grab, NULL);
  vow_fulfil(keep[2], vow_value_new_int(30));
  vow_fulfil(keep[0], vow_value_new_int(10));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_promise_state(all), VOW_PENDING);
  vow_fulfil(keep[1], vow_value_new_int(20));
  vow_ctx_drain(fx->ctx);
  assert_non_null(result);
  assert_int_equal(vow_value_array_len(result), 3);
  assert_int_equal(int_of(vow_value_array_at(result, 0)), 10);
  assert_int_equal(int_of(vow_value_array_at(result, 1)), 20);
  assert_int_equal(int_of(vow_value_array_at(result, 2)), 30);
  vow_value_release(result);
  result = NULL;
  release_all(keep, 3);
  vow_promise_release(all);
}

static void all_first_failure_cancels_rest(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[3], *keep[3];
  seen e = {0};
  vow_promise_t* all;
  make(fx, ps, keep, 3);
  all = vow_add_errback(vow_all(fx->ctx, ps, 3), record_and_recover, &e);
  vow_fulfil(keep[0], vow_value_new_int(1));
  vow_reject(keep[1], vow_failure_new(VOW_FAIL_IO, -5, "disk"));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_IO);
  assert_int_equal(cancel_count[0], 0); /* settled already */
  assert_int_equal(cancel_count[1], 0);
  assert_int_equal(cancel_count[2], 1);
  release_all(keep, 3);
  vow_promise_release(all);
}

static void all_settled_keeps_failures(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[2], *keep[2];
  vow_promise_t* all;
  make(fx, ps, keep, 2);
  all = vow_add_callback(vow_all_settled(fx->ctx, ps, 2), grab, NULL);
  vow_reject(keep[0], vow_failure_new(VOW_FAIL_TASK_ERROR, 0, "no"));
  vow_fulfil(keep[1], vow_value_new_int(2));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_value_array_len(result), 2);
  assert_int_equal(vow_value_kind(vow_value_array_at(result, 0)),
                   VOW_VALUE_FAILURE);
  assert_int_equal(
      vow_failure_kind(vow_value_get_failure(vow_value_array_at(result, 0))),
      VOW_FAIL_TASK_ERROR);
  assert_int_equal(int_of(vow_value_array_at(result, 1)), 2);
  vow_value_release(result);
  result = NULL;
  release_all(keep, 2);
  vow_promise_release(all);
}

static void first_settled_cancels_losers_once(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[3], *keep[3];
  seen e = {0};
  vow_promise_t* race;
  make(fx, ps, keep, 3);
  race = vow_add_errback(vow_first_settled(fx->ctx, ps, 3), record_and_recover,
                         &e);
  vow_reject(keep[1], vow_failure_new(VOW_FAIL_USER, 0, "first"));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.kind, VOW_FAIL_USER);
  assert_int_equal(cancel_count[0], 1);
  assert_int_equal(cancel_count[1], 0);
  assert_int_equal(cancel_count[2], 1);
  vow_cancel(race); /* settled: nothing more is cancelled */
  vow_ctx_drain(fx->ctx);
  assert_int_equal(cancel_count[0], 1);
  assert_int_equal(cancel_count[2], 1);
  release_all(keep, 3);
  vow_promise_release(race);
}

static void any_fulfilled_first_value_wins(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[3], *keep[3];
  seen s = {0};
  vow_promise_t* any;
  make(fx, ps, keep, 3);
  any = vow_add_callback(vow_any_fulfilled(fx->ctx, ps, 3), record_value, &s);
  vow_reject(keep[0], vow_failure_new(VOW_FAIL_USER, 0, "a"));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.calls, 0);
  vow_fulfil(keep[2], vow_value_new_int(3));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.value, 3);
  assert_int_equal(cancel_count[1], 1);
  assert_int_equal(cancel_count[0], 0);
  assert_int_equal(cancel_count[2], 0);
  release_all(keep, 3);
  vow_promise_release(any);
}

static vow_failure_t* agg;
static vow_outcome_t grab_failure(vow_failure_t* f, void* data) {
  (void)data;
  agg = f;
  return vow_ok(NULL);
}

static void any_fulfilled_all_fail_in_order(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[3], *keep[3];
  vow_promise_t* any;
  make(fx, ps, keep, 3);
  any = vow_add_errback(vow_any_fulfilled(fx->ctx, ps, 3), grab_failure, NULL);
  vow_reject(keep[2], vow_failure_new(VOW_FAIL_TIMEOUT, 0, "c"));
  vow_reject(keep[0], vow_failure_new(VOW_FAIL_IO, 0, "a"));
  vow_reject(keep[1], vow_failure_new(VOW_FAIL_USER, 0, "b"));
  vow_ctx_drain(fx->ctx);
  assert_non_null(agg);
  assert_int_equal(vow_failure_kind(agg), VOW_FAIL_ALL_FAILED);
  assert_int_equal(vow_failure_cause_count(agg), 3);
  assert_string_equal(vow_failure_message(vow_failure_cause(agg, 0)), "a");
  assert_string_equal(vow_failure_message(vow_failure_cause(agg, 1)), "b");
  assert_string_equal(vow_failure_message(vow_failure_cause(agg, 2)), "c");
  assert_null(vow_failure_cause(agg, 3));
  vow_failure_release(agg);
  agg = NULL;
  release_all(keep, 3);
  vow_promise_release(any);
}

static void cancelling_combinator_cancels_inputs(void** state) {
  fixture* fx = *state;
  vow_promise_t *ps[3], *keep[3];
  seen e = {0};
  vow_promise_t* all;
  make(fx, ps, keep, 3);
  all = vow_add_errback(vow_all(fx->ctx, ps, 3), record_and_recover, &e);
  vow_fulfil(keep[1], NULL);
  vow_cancel(all);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(cancel_count[0], 1);
  assert_int_equal(cancel_count[1], 0);
  assert_int_equal(cancel_count[2], 1);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  release_all(keep, 3);
  vow_promise_release(all);
}

static void empty_inputs(void** state) {
  fixture* fx = *state;
  seen e1 = {0}, e2 = {0};
  vow_promise_t* a = vow_add_callback(vow_all(fx->ctx, NULL, 0), grab, NULL);
  vow_promise_t* s = vow_all_settled(fx->ctx, NULL, 0);
  vow_promise_t* f = vow_add_errback(vow_first_settled(fx->ctx, NULL, 0),
                                     record_and_recover, &e1);
  vow_promise_t* y = vow_add_errback(vow_any_fulfilled(fx->ctx, NULL, 0),
                                     record_and_recover, &e2);
  /* Settled at once; the callbacks still wait for the loop. */
  assert_int_equal(vow_promise_state(s), VOW_FULFILLED);
  assert_null(result);
  vow_ctx_drain(fx->ctx);
  assert_non_null(result);
  assert_int_equal(vow_value_kind(result), VOW_VALUE_ARRAY);
  assert_int_equal(vow_value_array_len(result), 0);
  assert_int_equal(e1.kind, VOW_FAIL_EMPTY_INPUT);
  assert_int_equal(e2.kind, VOW_FAIL_EMPTY_INPUT);
  vow_value_release(result);
  result = NULL;
  vow_promise_release(a);
  vow_promise_release(s);
  vow_promise_release(f);
  vow_promise_release(y);
}

static void succeed_and_fail(void** state) {
  fixture* fx = *state;
  seen s = {0}, e = {0};
  vow_promise_t* ok = vow_succeed(fx->ctx, vow_value_new_int(8));
  vow_promise_t* bad =
      vow_fail(fx->ctx, vow_failure_new(VOW_FAIL_USER, 1, "x"));
  assert_int_equal(vow_promise_state(ok), VOW_FULFILLED);
  assert_int_equal(vow_promise_state(bad), VOW_REJECTED);
  vow_add_callback(ok, record_value, &s);
  vow_add_errback(bad, record_and_recover, &e);
  assert_int_equal(s.calls, 0);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.value, 8);
  assert_int_equal(e.kind, VOW_FAIL_USER);
  vow_promise_release(ok);
  vow_promise_release(bad);
}

static void inputs_released_by_caller_early(void** state) {
  fixture* fx = *state;
  vow_promise_t* ps[2];
  seen s = {0};
  vow_promise_t* all;
  ps[0] = vow_succeed(fx->ctx, vow_value_new_int(1));
  ps[1] = vow_sleep(fx->ctx, 0);
  all = vow_add_callback(vow_all(fx->ctx, ps, 2), record_value, &s);
  vow_promise_release(all); /* nobody holds anything now but vow */
  vow_ctx_run(fx->ctx);
  assert_int_equal(s.calls, 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(all_in_input_order),
      T(all_first_failure_cancels_rest),
      T(all_settled_keeps_failures),
      T(first_settled_cancels_losers_once),
      T(any_fulfilled_first_value_wins),
      T(any_fulfilled_all_fail_in_order),
      T(cancelling_combinator_cancels_inputs),
      T(empty_inputs),
      T(succeed_and_fail),
      T(inputs_released_by_caller_early),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
