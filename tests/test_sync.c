/* Lock, semaphore and queue (Twisted's DeferredLock, DeferredSemaphore,
 * DeferredQueue). */
#include "helpers.h"

static void lock_hands_over_in_order(void** state) {
  fixture* fx = *state;
  vow_semaphore_t* lock = vow_lock_new(fx->ctx);
  seen a = {0}, b = {0}, c = {0};
  vow_promise_t* pa =
      vow_add_callback(vow_lock_acquire(lock), record_value, &a);
  vow_promise_t* pb =
      vow_add_callback(vow_lock_acquire(lock), record_value, &b);
  vow_promise_t* pc =
      vow_add_callback(vow_lock_acquire(lock), record_value, &c);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(a.calls, 1);
  assert_int_equal(b.calls, 0);
  assert_int_equal(vow_semaphore_waiting(lock), 2);
  assert_int_equal(vow_lock_release(lock), 0);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(b.calls, 1);
  assert_int_equal(c.calls, 0);
  assert_int_equal(vow_lock_release(lock), 0);
  assert_int_equal(vow_lock_release(lock), 0);
  assert_int_equal(vow_lock_release(lock), VOW_ENOTLOCKED);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(c.calls, 1);
  vow_promise_release(pa);
  vow_promise_release(pb);
  vow_promise_release(pc);
  vow_lock_free(lock);
}

static void cancelled_acquire_loses_no_release(void** state) {
  fixture* fx = *state;
  vow_semaphore_t* lock = vow_lock_new(fx->ctx);
  seen e = {0}, c = {0};
  vow_promise_t* held = vow_lock_acquire(lock);
  vow_promise_t* gone =
      vow_add_errback(vow_lock_acquire(lock), record_and_recover, &e);
  vow_promise_t* next =
      vow_add_callback(vow_lock_acquire(lock), record_value, &c);
  vow_cancel(gone);
  assert_int_equal(vow_semaphore_waiting(lock), 1);
  vow_lock_release(lock); /* must reach `next`, not the cancelled one */
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  assert_int_equal(c.calls, 1);
  vow_lock_release(lock);
  assert_int_equal(vow_semaphore_available(lock), 1);
  vow_promise_release(held);
  vow_promise_release(gone);
  vow_promise_release(next);
  vow_lock_free(lock);
}

typedef struct op_env {
  fixture* fx;
  int running;
  int peak;
  vow_promise_t* gates[6];
  int started;
} op_env;

static vow_outcome_t op_finished(vow_value_t* v, vow_failure_t* f, void* data) {
  op_env* env = data;
  env->running--;
  if (f)
    return vow_err(f);
  return vow_ok(v);
}

static vow_promise_t* op_start(void* data) {
  op_env* env = data;
  vow_promise_t* gate = vow_promise_new(env->fx->ctx, NULL, NULL);
  env->gates[env->started++] = vow_promise_ref(gate);
  if (++env->running > env->peak)
    env->peak = env->running;
  return vow_add_both(gate, op_finished, env);
}

static void semaphore_limits_operations(void** state) {
  fixture* fx = *state;
  vow_semaphore_t* sem = vow_semaphore_new(fx->ctx, 2);
  op_env env;
  vow_promise_t* runs[6];
  int i, round;
  memset(&env, 0, sizeof(env));
  env.fx = fx;
  for (i = 0; i < 6; i++)
    runs[i] = vow_semaphore_run(sem, op_start, &env);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(env.started, 2);
  for (round = 0; round < 6; round++) {
    vow_fulfil(env.gates[round], vow_value_new_int(round));
    vow_ctx_drain(fx->ctx);
  }
  assert_int_equal(env.started, 6);
  assert_int_equal(env.peak, 2);
  assert_int_equal(vow_semaphore_available(sem), 2);
  for (i = 0; i < 6; i++) {
    assert_int_equal(vow_promise_state(runs[i]), VOW_FULFILLED);
    vow_promise_release(runs[i]);
    vow_promise_release(env.gates[i]);
  }
  vow_semaphore_free(sem);
}

static void queue_put_then_get_and_get_then_put(void** state) {
  fixture* fx = *state;
  vow_queue_t* q = vow_queue_new(fx->ctx, VOW_UNBOUNDED, VOW_UNBOUNDED);
  seen a = {0}, b = {0};
  vow_promise_t* pa;
  vow_promise_t* pb;
  assert_int_equal(vow_queue_put(q, vow_value_new_int(1)), 0);
  assert_int_equal(vow_queue_len(q), 1);
  pa = vow_add_callback(vow_queue_get(q), record_value, &a);
  pb = vow_add_callback(vow_queue_get(q), record_value, &b);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(a.value, 1);
  assert_int_equal(b.calls, 0);
  vow_queue_put(q, vow_value_new_int(2));
  assert_int_equal(vow_queue_len(q), 0);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(b.value, 2);
  vow_promise_release(pa);
  vow_promise_release(pb);
  vow_queue_free(q);
}

static void cancelled_get_loses_no_put(void** state) {
  fixture* fx = *state;
  vow_queue_t* q = vow_queue_new(fx->ctx, VOW_UNBOUNDED, VOW_UNBOUNDED);
  seen e = {0}, s = {0};
  vow_promise_t* gone =
      vow_add_errback(vow_queue_get(q), record_and_recover, &e);
  vow_promise_t* next = vow_add_callback(vow_queue_get(q), record_value, &s);
  vow_cancel(gone);
  vow_queue_put(q, vow_value_new_int(5));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.kind, VOW_FAIL_CANCELLED);
  assert_int_equal(s.value, 5);
  vow_promise_release(gone);
  vow_promise_release(next);
  vow_queue_free(q);
}

static void queue_limits(void** state) {
  fixture* fx = *state;
  vow_queue_t* q = vow_queue_new(fx->ctx, 2, 1);
  seen e = {0};
  vow_promise_t *g1, *g2;
  assert_int_equal(vow_queue_put(q, NULL), 0);
  assert_int_equal(vow_queue_put(q, NULL), 0);
  assert_int_equal(vow_queue_put(q, NULL), VOW_EFULL);
  vow_queue_free(q);
  q = vow_queue_new(fx->ctx, 2, 1);
  g1 = vow_queue_get(q);
  g2 = vow_add_errback(vow_queue_get(q), record_and_recover, &e);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.kind, VOW_FAIL_QUEUE_FULL);
  vow_queue_free(q); /* cancels the waiting get */
  assert_int_equal(vow_promise_state(g1), VOW_REJECTED);
  vow_add_errback(g1, record_and_recover, &e);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(e.calls, 2);
  vow_promise_release(g1);
  vow_promise_release(g2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(lock_hands_over_in_order),    T(cancelled_acquire_loses_no_release),
      T(semaphore_limits_operations), T(queue_put_then_get_and_get_then_put),
      T(cancelled_get_loses_no_put),  T(queue_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
