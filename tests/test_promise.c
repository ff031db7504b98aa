/* The promise core: settling, the chain, waiting, cycles, branch, order,
 * failures and reports, cancel. */
#include "helpers.h"

static void settle_once(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  vow_add_callbacks(p, record_value, record_failure, &s);
  assert_int_equal(vow_fulfil(p, vow_value_new_int(1)), 0);
  assert_int_equal(vow_fulfil(p, vow_value_new_int(2)), VOW_ESETTLED);
  assert_int_equal(vow_reject(p, vow_failure_new(VOW_FAIL_USER, 0, "x")),
                   VOW_ESETTLED);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.value, 1);
  assert_int_equal(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_release(p);
}

static void settle_after_cancel_is_dropped(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  vow_add_callbacks(p, record_value, record_and_recover, &s);
  vow_cancel(p);
  assert_int_equal(vow_fulfil(p, vow_value_new_int(5)), 0);
  assert_int_equal(vow_reject(p, vow_failure_new(VOW_FAIL_USER, 0, "x")), 0);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.kind, VOW_FAIL_CANCELLED);
  vow_promise_release(p);
}

static void add_functions_return_the_promise(void** state) {
  fixture* fx = *state;
  seen a = {0}, b = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  assert_ptr_equal(vow_add_callbacks(p, add_one, NULL, NULL), p);
  assert_ptr_equal(vow_add_callback(p, add_one, NULL), p);
  assert_ptr_equal(vow_add_errback(p, record_failure, &b), p);
  assert_ptr_equal(vow_add_both(p, NULL, NULL), p);
  assert_ptr_equal(vow_trap(p, VOW_FAIL_TIMEOUT, record_failure, &b), p);
  vow_add_callback(vow_add_callback(p, add_one, NULL), record_value, &a);
  vow_fulfil(p, vow_value_new_int(10));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(a.value, 13); /* three add_one, errbacks skipped */
  assert_int_equal(b.calls, 0);
  vow_promise_release(p);
}

static vow_outcome_t fail_user(vow_value_t* v, void* data) {
  (void)data;
  vow_value_release(v);
  return vow_errf(VOW_FAIL_USER, -22, "bad %d", 7);
}

static void failing_callback_switches_to_errbacks(void** state) {
  fixture* fx = *state;
  seen skipped = {0}, caught = {0}, after = {0};
  vow_promise_t* p = vow_succeed(fx->ctx, vow_value_new_int(1));
  vow_add_callback(p, fail_user, NULL);
  vow_add_callback(p, record_value, &skipped); /* passed over */
  vow_add_callbacks(p, record_value, record_and_recover, &caught);
  vow_add_callbacks(p, record_value, record_failure, &after);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(skipped.calls, 0);
  assert_int_equal(caught.calls, 1);
  assert_int_equal(caught.kind, VOW_FAIL_USER);
  assert_int_equal(after.calls, 1); /* recovered to the callback path */
  assert_int_equal(after.value, 0);
  assert_int_equal(after.kind, 0);
  vow_promise_release(p);
}

static vow_outcome_t both_count(vow_value_t* v, vow_failure_t* f, void* data) {
  int* n = data;
  assert_true((v == NULL) != (f == NULL));
  (*n)++;
  return f ? vow_err(f) : vow_ok(v);
}

static vow_outcome_t check_cancelled(vow_failure_t* f, void* data) {
  seen* s = data;
  s->calls++;
  s->kind = vow_failure_kind(f);
  vow_failure_release(f);
  return vow_ok(NULL);
}

static void both_and_trap(void** state) {
  fixture* fx = *state;
  int both = 0;
  seen trap_timeout = {0}, trap_user = {0};
  vow_promise_t* p = vow_fail(fx->ctx, vow_failure_new(VOW_FAIL_USER, 0, "u"));
  vow_add_both(p, both_count, &both);
  vow_trap(p, VOW_FAIL_TIMEOUT, check_cancelled, &trap_timeout);
  vow_trap(p, VOW_FAIL_USER, check_cancelled, &trap_user);
  vow_add_both(p, both_count, &both);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(both, 2);
  assert_int_equal(trap_timeout.calls, 0); /* not matching: passed on */
  assert_int_equal(trap_user.calls, 1);
  assert_int_equal(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_release(p);
}

static vow_outcome_t return_promise(vow_value_t* v, void* data) {
  vow_value_release(v);
  return vow_wait(data);
}

static void callback_returning_pending_promise_pauses(void** state) {
  fixture* fx = *state;
  seen s = {0}, e = {0};
  vow_promise_t* inner = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* outer = vow_succeed(fx->ctx, NULL);
  vow_promise_t* inner2 = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* outer2 = vow_succeed(fx->ctx, NULL);
  vow_add_callback(outer, return_promise, vow_promise_ref(inner));
  vow_add_callback(outer, record_value, &s);
  vow_add_callbacks(outer2, return_promise, NULL, vow_promise_ref(inner2));
  vow_add_callbacks(outer2, record_value, record_and_recover, &e);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_promise_state(outer), VOW_WAITING);
  assert_int_equal(s.calls, 0);
  vow_fulfil(inner, vow_value_new_int(42));
  vow_reject(inner2, vow_failure_new(VOW_FAIL_IO, -2, "gone"));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.value, 42);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_IO);
  vow_promise_release(inner);
  vow_promise_release(outer);
  vow_promise_release(inner2);
  vow_promise_release(outer2);
}

static void already_settled_inner(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_promise_t* outer = vow_succeed(fx->ctx, NULL);
  vow_add_callback(outer, return_promise,
                   vow_succeed(fx->ctx, vow_value_new_int(9)));
  vow_add_callback(outer, record_value, &s);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.value, 9);
  vow_promise_release(outer);
}

static vow_outcome_t return_self(vow_value_t* v, void* data) {
  vow_promise_t** self = data;
  vow_value_release(v);
  return vow_wait(vow_promise_ref(*self));
}

static void returning_itself_is_a_cycle(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_promise_t* p = vow_succeed(fx->ctx, NULL);
  vow_add_callback(p, return_self, &p);
  vow_add_errback(p, check_cancelled, &e);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_CYCLE);
  vow_promise_release(p);
}

static void longer_cycle_fails(void** state) {
  fixture* fx = *state;
  seen ea = {0}, eb = {0};
  vow_promise_t* a = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* b = vow_promise_new(fx->ctx, NULL, NULL);
  /* A waits on B; then B's callback returns A: a cycle. */
  vow_add_callback(a, return_promise, vow_promise_ref(b));
  vow_add_errback(a, check_cancelled, &ea);
  vow_add_callback(b, return_promise, vow_promise_ref(a));
  vow_add_errback(b, record_failure, &eb);
  vow_fulfil(a, NULL);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_promise_state(a), VOW_WAITING);
  vow_fulfil(b, NULL);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(eb.calls, 1);
  assert_int_equal(eb.kind, VOW_FAIL_CYCLE);
  /* B's failure flows on to A, which was waiting on B. */
  assert_int_equal(ea.calls, 1);
  assert_int_equal(ea.kind, VOW_FAIL_CYCLE);
  vow_promise_release(a);
  vow_promise_release(b);
}

static void branch_gets_result_at_that_point(void** state) {
  fixture* fx = *state;
  seen main_s = {0}, branch_s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* b;
  vow_add_callback(p, add_one, NULL); /* 1 -> 2 */
  b = vow_branch(p);
  vow_add_callback(p, add_one, NULL); /* 2 -> 3 on the main chain only */
  vow_add_callback(p, record_value, &main_s);
  vow_add_callback(b, record_value, &branch_s);
  vow_fulfil(p, vow_value_new_int(1));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(branch_s.value, 2);
  assert_int_equal(main_s.value, 3);
  vow_promise_release(b);
  vow_promise_release(p);
}

static vow_outcome_t grab_pointer(vow_value_t* v, void* data) {
  *(vow_value_t**)data = v;
  return vow_ok(v);
}

static void branch_shares_the_value(void** state) {
  fixture* fx = *state;
  vow_value_t* v = vow_value_new_str("shared", 6);
  vow_value_t* seen_main = NULL;
  vow_value_t* seen_branch = NULL;
  vow_promise_t* p = vow_succeed(fx->ctx, v);
  vow_promise_t* b = vow_branch(p);
  vow_add_callback(p, grab_pointer, &seen_main);
  vow_add_callback(b, grab_pointer, &seen_branch);
  vow_ctx_drain(fx->ctx);
  /* Both chains see the very same value object, shared by count. */
  assert_non_null(seen_main);
  assert_ptr_equal(seen_main, v);
  assert_ptr_equal(seen_branch, v);
  vow_promise_release(b);
  vow_promise_release(p);
}

static int sequence;
static vow_outcome_t stamp(vow_value_t* v, void* data) {
  seen* s = data;
  s->calls++;
  s->order = ++sequence;
  return vow_ok(v);
}

static void never_synchronous_and_in_order(void** state) {
  fixture* fx = *state;
  seen s[3] = {{0}};
  seen late = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  sequence = 0;
  vow_add_callback(p, stamp, &s[0]);
  vow_add_callback(p, stamp, &s[1]);
  vow_fulfil(p, NULL);
  assert_int_equal(s[0].calls, 0); /* not inside fulfil */
  vow_add_callback(p, stamp, &s[2]);
  assert_int_equal(s[2].calls, 0); /* not inside add */
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s[0].order, 1);
  assert_int_equal(s[1].order, 2);
  assert_int_equal(s[2].order, 3);
  /* Added to a settled promise whose chain has run: runs on the loop. */
  vow_add_callback(p, stamp, &late);
  assert_int_equal(late.calls, 0);
  vow_ctx_run(fx->ctx);
  assert_int_equal(late.calls, 1);
  assert_int_equal(late.order, 4);
  vow_promise_release(p);
}

static void failure_fields(void** state) {
  vow_failure_t* f = vow_failure_new(VOW_FAIL_WORKER_DIED, -9, "worker %d", 3);
  vow_origin_t o = {17, "sum", "/tmp/x", 1234, -1, 9};
  char line[256];
  (void)state;
  assert_int_equal(vow_failure_set_origin(f, &o), 0);
  assert_int_equal(vow_failure_kind(f), VOW_FAIL_WORKER_DIED);
  assert_int_equal(vow_failure_code(f), -9);
  assert_string_equal(vow_failure_message(f), "worker 3");
  assert_int_equal(vow_failure_origin(f)->task_id, 17);
  assert_string_equal(vow_failure_origin(f)->function, "sum");
  assert_int_equal(vow_failure_origin(f)->pid, 1234);
  assert_int_equal(vow_failure_origin(f)->term_signal, 9);
  assert_true(vow_failure_check(f, VOW_FAIL_WORKER_DIED));
  assert_false(vow_failure_check(f, VOW_FAIL_TIMEOUT));
  vow_failure_describe(f, line, sizeof(line));
  assert_non_null(strstr(line, "worker died: worker 3"));
  assert_non_null(strstr(line, "task 17"));
  assert_non_null(strstr(line, "signal 9"));
  assert_string_equal(vow_failure_kind_name(VOW_FAIL_POISON), "poison task");
  assert_string_equal(vow_strerror(VOW_ESETTLED), "promise already settled");
  assert_string_equal(vow_err_name(VOW_ESETTLED), "VOW_ESETTLED");
  assert_string_equal(vow_err_name(UV_ENOENT), "ENOENT");
  vow_failure_release(f);
}

static void unhandled_reported_once_when_freed(void** state) {
  fixture* fx = *state;
  vow_promise_t* p = vow_fail(fx->ctx, vow_failure_new(VOW_FAIL_IO, -5, "x"));
  vow_promise_t* b = vow_branch(p); /* the same failure, twice */
  vow_ctx_drain(fx->ctx);
  assert_int_equal(fx->unhandled, 0); /* still referenced: may be handled */
  vow_promise_release(p);
  vow_promise_release(b);
  assert_int_equal(fx->unhandled, 1);
  assert_int_equal(fx->last_kind, VOW_FAIL_IO);
  fx->unhandled = 0;
}

static void handled_failure_never_reported(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_promise_t* p = vow_fail(fx->ctx, vow_failure_new(VOW_FAIL_IO, -5, "x"));
  vow_add_errback(p, check_cancelled, &e);
  vow_promise_release(p);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.calls, 1);
  assert_int_equal(fx->unhandled, 0);
}

static void close_reports_pending_and_unhandled_once(void** state) {
  fixture* fx = *state;
  vow_promise_t* p1 = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* p2 = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* bad =
      vow_fail(fx->ctx, vow_failure_new(VOW_FAIL_USER, 0, "y"));
  vow_promise_t* waiting = vow_succeed(fx->ctx, NULL);
  vow_add_callback(waiting, return_promise, vow_promise_ref(p2));
  vow_ctx_drain(fx->ctx);
  (void)p1;
  (void)bad;
  fx_close(fx);
  assert_int_equal(fx->pending, 3); /* p1, p2, waiting */
  assert_int_equal(fx->unhandled, 1);
  fx->pending = fx->unhandled = 0;
}

static int cancels;
static void count_cancel(vow_promise_t* p, void* data) {
  (void)p;
  (void)data;
  cancels++;
}

static void cancel_runs_canceller_once(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, count_cancel, NULL);
  cancels = 0;
  vow_add_errback(p, check_cancelled, &e);
  vow_cancel(p);
  vow_cancel(p);
  assert_int_equal(cancels, 1);
  assert_int_equal(vow_promise_state(p), VOW_REJECTED);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  vow_promise_release(p);
}

static void cancel_settled_does_nothing(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, count_cancel, NULL);
  cancels = 0;
  vow_add_callback(p, record_value, &s);
  vow_fulfil(p, vow_value_new_int(3));
  vow_cancel(p);
  vow_ctx_drain(fx->ctx);
  vow_cancel(p);
  assert_int_equal(cancels, 0);
  assert_int_equal(s.value, 3);
  vow_promise_release(p);
}

static void settle_in_canceller(vow_promise_t* p, void* data) {
  (void)data;
  vow_fulfil(p, vow_value_new_int(77));
}

static void canceller_may_settle(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, settle_in_canceller, NULL);
  vow_add_callback(p, record_value, &s);
  vow_cancel(p);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.value, 77);
  vow_promise_release(p);
}

static void cancel_waiting_cancels_inner(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_promise_t* inner = vow_promise_new(fx->ctx, count_cancel, NULL);
  vow_promise_t* outer = vow_succeed(fx->ctx, NULL);
  cancels = 0;
  vow_add_callback(outer, return_promise, vow_promise_ref(inner));
  vow_add_errback(outer, check_cancelled, &e);
  vow_ctx_drain(fx->ctx);
  vow_cancel(outer);
  assert_int_equal(cancels, 1);
  assert_int_equal(vow_promise_state(inner), VOW_REJECTED);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  vow_promise_release(inner);
  vow_promise_release(outer);
}

static vow_outcome_t not_an_outcome(vow_value_t* v, void* data) {
  vow_outcome_t zero;
  (void)data;
  vow_value_release(v);
  memset(&zero, 0, sizeof(zero));
  return zero;
}

static void garbage_outcome_is_a_failure(void** state) {
  fixture* fx = *state;
  seen e = {0};
  vow_promise_t* p = vow_succeed(fx->ctx, NULL);
  vow_add_callback(p, not_an_outcome, NULL);
  vow_add_errback(p, check_cancelled, &e);
  vow_add_callback(p, return_promise, NULL); /* vow_wait(NULL) */
  vow_add_errback(p, record_and_recover, &e);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.calls, 2);
  assert_int_equal(e.kind, VOW_FAIL_BAD_INPUT);
  vow_promise_release(p);
}

static void release_does_not_cancel(void** state) {
  fixture* fx = *state;
  seen s = {0};
  vow_promise_t* p = vow_promise_new(fx->ctx, count_cancel, NULL);
  vow_promise_t* keep = vow_promise_ref(p);
  cancels = 0;
  vow_add_callback(p, record_value, &s);
  vow_promise_release(p);
  assert_int_equal(cancels, 0);
  vow_fulfil(keep, vow_value_new_int(4));
  vow_promise_release(keep);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.value, 4);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(settle_once),
      T(settle_after_cancel_is_dropped),
      T(add_functions_return_the_promise),
      T(failing_callback_switches_to_errbacks),
      T(both_and_trap),
      T(callback_returning_pending_promise_pauses),
      T(already_settled_inner),
      T(returning_itself_is_a_cycle),
      T(longer_cycle_fails),
      T(branch_gets_result_at_that_point),
      T(branch_shares_the_value),
      T(never_synchronous_and_in_order),
      cmocka_unit_test(failure_fields),
      T(unhandled_reported_once_when_freed),
      T(handled_failure_never_reported),
      T(close_reports_pending_and_unhandled_once),
      T(cancel_runs_canceller_once),
      T(cancel_settled_does_nothing),
      T(canceller_may_settle),
      T(cancel_waiting_cancels_inner),
      T(garbage_outcome_is_a_failure),
      T(release_does_not_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
