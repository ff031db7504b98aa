/* Collectors: settled promises taken in batches, in the order they
 * settled, each once; failures taken count as handled; a collector freed
 * or a context closed with promises still watched leaks nothing; and a
 * worker killed mid-task reaches the collector as that task's failure. */
#include <signal.h>
#include <string.h>

#include "pool_helpers.h"

static const char* const plugin_worker[] = {VOW_WORKER_BIN,
                                            VOW_TEST_PLUGIN_PATH, NULL};

static void takes_in_settle_order_with_tags(void** state) {
  fixture* fx = *state;
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_promise_t* p[4];
  vow_settled_t out[8];
  int64_t i64;
  size_t i, n;
  for (i = 0; i < 4; i++) {
    p[i] = vow_promise_new(fx->ctx, NULL, NULL);
    assert_int_equal(vow_collector_add(c, p[i], 100 + i), 0);
    vow_promise_release(p[i]); /* the collector keeps its own */
  }
  assert_int_equal(vow_collector_watching(c), 4);
  vow_fulfil(p[2], vow_value_new_int(2));
  vow_reject(p[0], vow_failure_new(VOW_FAIL_TASK_ERROR, 0, "zero"));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_collector_ready(c), 2);
  assert_int_equal(vow_collector_watching(c), 2);
  n = vow_collector_take(c, out, 8);
  assert_int_equal(n, 2);
  assert_int_equal(out[0].tag, 102);
  assert_int_equal(out[0].state, VOW_FULFILLED);
  assert_int_equal(vow_value_get_int(out[0].value, &i64), 0);
  assert_int_equal(i64, 2);
  assert_non_null(out[0].bytes);
  assert_int_equal(out[0].len, 1); /* msgpack positive fixint */
  assert_int_equal(((const unsigned char*)out[0].bytes)[0], 2);
  assert_null(out[0].failure);
  assert_int_equal(out[1].tag, 100);
  assert_int_equal(out[1].state, VOW_REJECTED);
  assert_string_equal(vow_failure_message(out[1].failure), "zero");
  assert_null(out[1].value);
  /* Nothing more until more settles; a take of at most 1 leaves the rest. */
  assert_int_equal(vow_collector_take(c, out, 8), 0);
  vow_fulfil(p[3], NULL);
  vow_fulfil(p[1], NULL);
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_collector_take(c, out, 1), 1);
  assert_int_equal(out[0].tag, 103);
  assert_int_equal(vow_collector_take(c, out, 1), 1);
  assert_int_equal(out[0].tag, 101);
  assert_int_equal(vow_collector_watching(c), 0);
  vow_collector_free(c);
  /* The failure was taken: handled, so the teardown sees no report. */
}

static void refuses_a_promise_of_another_context(void** state) {
  fixture* fx = *state;
  vow_ctx_t* other = vow_ctx_new(NULL, NULL);
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_promise_t* p = vow_succeed(other, NULL);
  assert_int_equal(vow_collector_add(c, p, 1), UV_EINVAL);
  vow_promise_release(p);
  vow_collector_free(c);
  vow_ctx_close(other);
}

/* Freed while watching: the promises still settle and run the rest of
 * their chains; the links left behind only drop their entries. */
static void freed_while_watching(void** state) {
  fixture* fx = *state;
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  vow_promise_t* q = vow_succeed(fx->ctx, NULL);
  seen s = {0};
  assert_int_equal(vow_collector_add(c, p, 1), 0);
  assert_int_equal(vow_collector_add(c, q, 2), 0);
  vow_ctx_drain(fx->ctx); /* q is ready and not taken */
  vow_collector_free(c);
  vow_add_callback(p, record_value, &s);
  vow_fulfil(p, vow_value_new_int(5));
  vow_ctx_drain(fx->ctx);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.value, 5);
  vow_promise_release(p);
  vow_promise_release(q);
}

/* Closed with a promise watched and never settled: it is reported
 * pending like any other, and the entry goes with the context. */
static void context_closed_while_watching(void** state) {
  fixture* fx = *state;
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_promise_t* p = vow_promise_new(fx->ctx, NULL, NULL);
  assert_int_equal(vow_collector_add(c, p, 1), 0);
  vow_promise_release(p);
  vow_collector_free(c);
  fx_close(fx);
  assert_int_equal(fx->pending, 1);
  fx->pending = 0;
}

/* Submits n tasks watched by c, tagged 0 to n-1: task `odd` runs fn with
 * no arguments, every other task i adds [i, 1]. */
static void submit_with_one_odd(vow_pool_t* pool, vow_collector_t* c, size_t n,
                                size_t odd, const char* fn) {
  size_t i;
  for (i = 0; i < n; i++) {
    vow_promise_t* p = i == odd ? vow_pool_submit(pool, fn, NULL)
                                : vow_pool_submit(pool, "add", pair(i, 1));
    assert_int_equal(vow_collector_add(c, p, i), 0);
    vow_promise_release(p);
  }
}

/* Runs the loop until the n tasks of submit_with_one_odd are taken: the
 * odd one must fail with `kind`, each other one from `checked_from` on
 * must have its sum (those before may have either outcome). */
static void take_with_one_odd(fixture* fx, vow_collector_t* c, size_t n,
                              size_t odd, int kind, size_t checked_from) {
  vow_settled_t out[16];
  size_t got = 0, odd_seen = 0;
  while (got < n) {
    size_t taken, k;
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
    taken = vow_collector_take(c, out, 16);
    for (k = 0; k < taken; k++) {
      uint64_t tag = out[k].tag;
      if (tag == odd) {
        assert_int_equal(out[k].state, VOW_REJECTED);
        assert_int_equal(vow_failure_kind(out[k].failure), kind);
        odd_seen++;
      } else if (tag >= checked_from) {
        int64_t sum = -1;
        assert_int_equal(out[k].state, VOW_FULFILLED);
        vow_value_get_int(out[k].value, &sum);
        assert_int_equal(sum, (int64_t)tag + 1);
      }
    }
    got += taken;
  }
  assert_int_equal(got, n);
  assert_int_equal(odd_seen, 1);
}

/* A worker that crashes mid-task (SIGSEGV) with others in flight: with a
 * retry, the companions run again alone and arrive with their results,
 * and only the task that crashes each worker it is given reaches the
 * collector as a failure (POISON). */
static void worker_killed_mid_task(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_pool_t* pool;
  o.worker_argv = plugin_worker;
  o.retries = 1;
  pool = make_pool(fx, &o);
  submit_with_one_odd(pool, c, 10, 4, "crash");
  take_with_one_odd(fx, c, 10, 4, VOW_FAIL_POISON, 0);
  vow_collector_free(c);
  end_pool(fx, pool, true);
}

/* Without retries, a worker that dies in a task it said it had started
 * (PROGRESS) fails that task; the tasks sent after it never ran and run
 * on the next worker, instead of failing with it. */
static void tasks_after_the_started_one_go_back(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_pool_t* pool;
  o.worker_argv = plugin_worker;
  o.in_flight = 16; /* all of them on the one worker at once */
  pool = make_pool(fx, &o);
  /* Tasks 0-2 ran before it: their results went out in a batch that may
   * have died with the worker, so either outcome is right for them. */
  submit_with_one_odd(pool, c, 8, 3, "start_then_die");
  take_with_one_odd(fx, c, 8, 3, VOW_FAIL_WORKER_DIED, 4);
  vow_collector_free(c);
  end_pool(fx, pool, true);
}

/* Without retries too, a worker that dies with several tasks in flight
 * and no word of which one it ran (a crash in a task's first instant)
 * fails none of them yet: each reruns alone, no try counted, and only the
 * one that kills the worker it has to itself fails. */
static void only_the_culprit_fails_without_retries(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_pool_t* pool;
  vow_pool_stats_t st;
  o.worker_argv = plugin_worker;
  o.in_flight = 16; /* all of them on the one worker at once */
  pool = make_pool(fx, &o);
  submit_with_one_odd(pool, c, 8, 3, "crash");
  take_with_one_odd(fx, c, 8, 3, VOW_FAIL_WORKER_DIED, 0);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.failed, 1);
  assert_int_equal(st.completed, 7);
  vow_collector_free(c);
  end_pool(fx, pool, true);
}

/* Appends a record for vow_collector_submit_many: name as a fixstr or
 * str8, then the array [a, b]. */
static size_t record(unsigned char* at, const char* name, int a, int b) {
  size_t n = strlen(name), len = 0;
  if (n < 32) {
    at[len++] = (unsigned char)(0xa0 | n);
  } else {
    at[len++] = 0xd9;
    at[len++] = (unsigned char)n;
  }
  memcpy(at + len, name, n);
  len += n;
  at[len++] = 0x92;
  at[len++] = (unsigned char)a; /* positive fixints */
  at[len++] = (unsigned char)b;
  return len;
}

/* Submissions made in one call: each good record becomes a watched task
 * with its tag; a malformed one is refused alone, with its reason; names
 * too long for the stack copy work too. */
static void submits_many_in_one_call(void** state) {
  static const unsigned char not_a_str[] = {0x01, 0x90};
  static const unsigned char nul_in_name[] = {0xa3, 'a', 0, 'd', 0x90};
  static const unsigned char short_str[] = {0xaa, 'a', 'd', 'd'};
  fixture* fx = *state;
  vow_pool_t* pool;
  vow_pool_options_t o = defaults(1);
  vow_collector_t* c = vow_collector_new(fx->ctx);
  unsigned char buf[1024], *at = buf;
  char long_name[200];
  size_t lens[8];
  vow_promise_t* out[8];
  vow_settled_t settled[8];
  int errs[8];
  bool taken[8] = {false};
  size_t i;
  o.worker_argv = plugin_worker;
  pool = make_pool(fx, &o);
  memset(long_name, 'x', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  at += lens[0] = record(at, "add", 1, 2);
  memcpy(at, not_a_str, lens[1] = sizeof(not_a_str));
  at += lens[1];
  memcpy(at, nul_in_name, lens[2] = sizeof(nul_in_name));
  at += lens[2];
  memcpy(at, short_str, lens[3] = sizeof(short_str));
  at += lens[3];
  at += lens[4] = record(at, "add", 5, 6);
  at += lens[5] = record(at, long_name, 0, 0);
  assert_int_equal(
      vow_collector_submit_many(c, pool, buf, lens, 6, 0, 10, out, errs), 3);
  for (i = 0; i < 6; i++) {
    bool good = i == 0 || i == 4 || i == 5;
    assert_int_equal(out[i] != NULL, good);
    assert_int_equal(errs[i], good ? 0 : UV_EINVAL);
  }
  assert_int_equal(vow_collector_watching(c), 3);
  while (vow_collector_watching(c) > 0)
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
  assert_int_equal(vow_collector_take(c, settled, 8), 3);
  for (i = 0; i < 3; i++) {
    int64_t sum = -1;
    uint64_t tag = settled[i].tag;
    assert_true(tag == 10 || tag == 14 || tag == 15);
    assert_false(taken[tag - 10]);
    taken[tag - 10] = true;
    if (tag == 15) { /* no such function in the pool */
      assert_int_equal(settled[i].state, VOW_REJECTED);
      assert_non_null(
          strstr(vow_failure_message(settled[i].failure), long_name));
      continue;
    }
    if (settled[i].state != VOW_FULFILLED)
      fail_msg("%s", vow_failure_message(settled[i].failure));
    assert_int_equal(vow_value_get_int(settled[i].value, &sum), 0);
    assert_int_equal(sum, tag == 10 ? 3 : 11);
  }
  vow_collector_free(c);
  end_pool(fx, pool, true);
}

/* One submission: arguments that are not exactly one msgpack object, or
 * a pool of another context, are refused with UV_EINVAL and nothing is
 * watched; a good one is watched under its tag. */
static void submits_one_or_says_why_not(void** state) {
  static const char add_args[] = {(char)0x92, 0x02, 0x03};
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_ctx_t* other = vow_ctx_new(NULL, NULL);
  vow_collector_t* elsewhere = vow_collector_new(other);
  vow_settled_t out[2];
  vow_pool_t* pool;
  int err = 0;
  int64_t sum = -1;
  o.worker_argv = plugin_worker;
  pool = make_pool(fx, &o);
  assert_null(vow_collector_submit(c, pool, "add", "\xc1", 1, 0, 1, &err));
  assert_int_equal(err, UV_EINVAL); /* 0xc1 is no msgpack object */
  err = 0;
  assert_null(vow_collector_submit(c, pool, "add", "\x01\x02", 2, 0, 1, &err));
  assert_int_equal(err, UV_EINVAL); /* two objects */
  err = 0;
  assert_null(vow_collector_submit(elsewhere, pool, "add", add_args,
                                   sizeof(add_args), 0, 1, &err));
  assert_int_equal(err, UV_EINVAL);
  assert_int_equal(vow_collector_watching(c), 0);
  assert_non_null(vow_collector_submit(c, pool, "add", add_args,
                                       sizeof(add_args), 5000, 7, &err));
  assert_int_equal(vow_collector_watching(c), 1);
  while (vow_collector_ready(c) == 0)
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
  assert_int_equal(vow_collector_take(c, out, 2), 1);
  assert_int_equal(out[0].tag, 7);
  assert_int_equal(out[0].state, VOW_FULFILLED);
  assert_int_equal(vow_value_get_int(out[0].value, &sum), 0);
  assert_int_equal(sum, 5);
  vow_collector_free(elsewhere);
  vow_ctx_close(other);
  vow_collector_free(c);
  end_pool(fx, pool, true);
}

/* take_into copies the values' bytes back to back as far as the buffer
 * holds them; one too big for it is taken alone and read in place. */
static void takes_values_into_a_buffer(void** state) {
  fixture* fx = *state;
  vow_collector_t* c = vow_collector_new(fx->ctx);
  vow_settled_t out[8];
  char buf[8];
  char big[20];
  size_t used = 99, i;
  vow_promise_t* p[5];
  memset(big, 'b', sizeof(big));
  for (i = 0; i < 5; i++) {
    p[i] = vow_promise_new(fx->ctx, NULL, NULL);
    assert_int_equal(vow_collector_add(c, p[i], i), 0);
  }
  vow_fulfil(p[0], vow_value_new_int(1));         /* 1 byte */
  vow_fulfil(p[1], vow_value_new_str("abcd", 4)); /* 5 bytes */
  vow_reject(p[2], vow_failure_new(VOW_FAIL_TASK_ERROR, 0, "no"));
  vow_fulfil(p[3], vow_value_new_str("efgh", 4)); /* 5: does not fit after 6 */
  vow_fulfil(p[4], vow_value_new_bin(big, 20));   /* 22: never fits */
  vow_ctx_drain(fx->ctx);
  assert_int_equal(vow_collector_take_into(c, out, 8, buf, sizeof(buf), &used),
                   3);
  assert_int_equal(used, 6);
  assert_memory_equal(buf,
                      "\x01\xa4"
                      "abcd",
                      6);
  assert_int_equal(out[2].state, VOW_REJECTED);
  assert_null(out[2].bytes);
  assert_int_equal(vow_collector_take_into(c, out, 8, buf, sizeof(buf), &used),
                   1);
  assert_int_equal(out[0].tag, 3);
  assert_int_equal(used, 5);
  assert_int_equal(vow_collector_take_into(c, out, 8, buf, sizeof(buf), &used),
                   1);
  assert_int_equal(out[0].tag, 4);
  assert_int_equal(used, 0);
  assert_int_equal(out[0].len, 22);
  assert_memory_equal((const char*)out[0].bytes + 2, big, 20);
  assert_int_equal(vow_collector_take_into(c, out, 8, buf, sizeof(buf), &used),
                   0);
  for (i = 0; i < 5; i++)
    vow_promise_release(p[i]);
  vow_collector_free(c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(takes_in_settle_order_with_tags),
      T(refuses_a_promise_of_another_context),
      T(freed_while_watching),
      T(context_closed_while_watching),
      T(worker_killed_mid_task),
      T(tasks_after_the_started_one_go_back),
      T(only_the_culprit_fails_without_retries),
      T(submits_many_in_one_call),
      T(submits_one_or_says_why_not),
      T(takes_values_into_a_buffer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
