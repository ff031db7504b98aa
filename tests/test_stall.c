/* Stalls: a task that never returns and ignores SIGTERM, a worker that
 * stops reading its pipe, a consumer that stops taking results. The
 * parent must never block, must keep what waits for a stuck peer within
 * a stated bound, and must lose nothing once the stall ends. This binary
 * is its own worker. */
#include "pool_helpers.h"
#include "pool_internal.h"

/* The bound docs/pool.md states for bytes waiting to be sent to one
 * worker: under 4 MiB of backlog, plus one batch of at most 1 MiB of
 * arguments and their tasks' framing (a few dozen bytes each). */
#define SEND_BOUND (((size_t)5 << 20) + 64 * 1024)

/* A graceful shutdown, bounded: one that never ends says what the pool
 * looked like and stops the test, rather than hang it. */
static void end_pool_bounded(fixture* fx, vow_pool_t* pool) {
  vow_promise_t* done = vow_timeout(vow_pool_shutdown(pool, true), 60000);
  if (vow_ctx_wait(fx->ctx, done) != VOW_FULFILLED) {
    vow_pool_stats_t st;
    vow_pool_stats(pool, &st);
    fprintf(stderr,
            "graceful shutdown still pending after 60 s: queued %zu, in "
            "flight %zu, workers alive %u, live records %u\n",
            st.queued, st.in_flight, st.workers_alive, pool->live_workers);
    abort();
  }
  vow_promise_release(done);
  vow_pool_free(pool);
}

static void nap(fixture* fx, uint64_t ms) {
  vow_promise_t* p = vow_sleep(fx->ctx, ms);
  vow_ctx_wait(fx->ctx, p);
  vow_promise_release(p);
}

/* The pid a "hang" task reports once it runs (its progress text is 0,
 * so the task id is what is kept). */
static void note_running(vow_pool_t* pool, uint64_t task_id, double fraction,
                         const char* text, void* data) {
  (void)pool;
  (void)fraction;
  (void)text;
  *(uint64_t*)data = task_id;
}

static void wait_running(fixture* fx, const uint64_t* id) {
  int rounds = 0;
  while (*id == 0 && rounds++ < 1000)
    nap(fx, 10);
  assert_true(*id != 0);
}

typedef struct got {
  int settled;
  int kind;
  int64_t value;
} got;

static vow_outcome_t keep_got(vow_value_t* v, vow_failure_t* f, void* data) {
  got* g = data;
  g->settled++;
  if (f) {
    g->kind = vow_failure_kind(f);
    vow_failure_release(f);
  } else {
    g->value = int_of(v);
    vow_value_release(v);
  }
  return vow_ok(NULL);
}

/* A task that never returns and ignores SIGTERM: its timeout kills the
 * worker with SIGKILL, and the pool goes on with a fresh one. */
static void hang_past_its_timeout(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(1);
  vow_pool_t* pool = vow_pool_new(fx->ctx, &o, NULL);
  got hang = {0, 0, 0}, after = {0, 0, 0};
  vow_pool_stats_t st;
  vow_promise_t* p;
  p = vow_pool_submit_timeout(pool, "hang", NULL, 300);
  vow_promise_release(vow_add_both(p, keep_got, &hang));
  p = vow_pool_submit(pool, "echo", vow_value_new_int(41));
  vow_promise_release(vow_add_both(p, keep_got, &after));
  while (after.settled == 0)
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
  assert_int_equal(hang.settled, 1);
  assert_int_equal(hang.kind, VOW_FAIL_TIMEOUT);
  assert_int_equal(after.kind, 0);
  assert_int_equal(after.value, 41);
  vow_pool_stats(pool, &st);
  assert_int_equal(st.worker_starts, 2);
  end_pool_bounded(fx, pool);
}

/* Graceful shutdown waits for a task that never returns; an immediate
 * shutdown after it ends it: the task is cancelled, the worker killed,
 * and no child is left. */
static void hang_then_shutdown(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = vow_pool_new(fx->ctx, &o, NULL);
  uint64_t running = 0;
  got hang = {0, 0, 0};
  vow_promise_t *graceful, *now;
  vow_pool_on_progress(pool, note_running, &running);
  vow_promise_release(
      vow_add_both(vow_pool_submit(pool, "hang", NULL), keep_got, &hang));
  wait_running(fx, &running);
  graceful = vow_pool_shutdown(pool, true);
  nap(fx, 300);
  assert_int_equal(vow_promise_state(graceful), VOW_PENDING);
  assert_int_equal(hang.settled, 0);
  now = vow_pool_shutdown(pool, false);
  assert_int_equal(vow_ctx_wait(fx->ctx, now), VOW_FULFILLED);
  vow_ctx_wait(fx->ctx, graceful);
  assert_int_equal(vow_promise_state(graceful), VOW_FULFILLED);
  assert_int_equal(hang.settled, 1);
  assert_int_equal(hang.kind, VOW_FAIL_CANCELLED);
  assert_int_equal(count_children(), 0);
  vow_promise_release(graceful);
  vow_promise_release(now);
  vow_pool_free(pool);
}

/* An echoed argument: ARG bytes starting with the task's index. */
enum { ARG = 64 * 1024 };
typedef struct echoed {
  size_t index;
  int settled;
  int bad; /* a failure, or bytes that are not the argument */
} echoed;

static vow_outcome_t check_echo(vow_value_t* v, vow_failure_t* f, void* data) {
  echoed* e = data;
  const void* bytes;
  size_t len, index;
  e->settled++;
  if (f) {
    e->bad = 1;
    vow_failure_release(f);
    return vow_ok(NULL);
  }
  if (vow_value_get_bin(v, &bytes, &len) != 0 || len != ARG)
    e->bad = 1;
  else if (memcpy(&index, bytes, sizeof(index)), index != e->index)
    e->bad = 1;
  vow_value_release(v);
  return vow_ok(NULL);
}

typedef struct watch {
  vow_pool_t* pool;
  int hung_pid;
  size_t worst_backlog; /* bytes waiting to be written to the hung one */
  unsigned ticks;
} watch;

static void on_tick(uv_timer_t* t) {
  watch* wa = t->data;
  unsigned i;
  wa->ticks++;
  for (i = 0; i < wa->pool->nworkers; i++) {
    pworker* w = wa->pool->workers[i];
    size_t q;
    if (w == NULL || w->pid != wa->hung_pid)
      continue;
    q = vow__chan_backlog(&w->chan);
    if (q > wa->worst_backlog)
      wa->worst_backlog = q;
  }
}

/* A worker stuck in a task reads nothing more. With deep pipelining
 * asked for, the parent still sends it only up to the stated backlog,
 * never blocks on it, and serves the rest on the other worker; once the
 * stuck task is cancelled, everything it held runs elsewhere. */
static void worker_that_stops_reading(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool;
  enum { N = 2000 };
  echoed* results = calloc(N, sizeof(echoed));
  char* arg = malloc(ARG);
  uint64_t running = 0;
  got hang = {0, 0, 0};
  vow_promise_t* hang_p;
  uv_timer_t* ticker = malloc(sizeof(*ticker));
  watch wa;
  size_t i, settled;
  uint64_t deadline;
  assert_non_null(results);
  assert_non_null(arg);
  o.in_flight = 1024;
  o.cancel_grace_ms = 100;
  pool = vow_pool_new(fx->ctx, &o, NULL);
  vow_pool_on_progress(pool, note_running, &running);
  hang_p = vow_pool_submit(pool, "hang", NULL);
  vow_promise_release(vow_add_both(vow_promise_ref(hang_p), keep_got, &hang));
  wait_running(fx, &running);
  memset(&wa, 0, sizeof(wa));
  wa.pool = pool;
  for (i = 0; i < pool->nworkers; i++)
    if (pool->workers[i] && pool->workers[i]->inflight.head &&
        pool->workers[i]->inflight.head->id == running)
      wa.hung_pid = pool->workers[i]->pid;
  assert_true(wa.hung_pid > 0);
  /* Each task echoes its 64 KiB argument, which starts with its index. */
  for (i = 0; i < N; i++) {
    vow_promise_t* p;
    memset(arg, (int)(i & 0xff), ARG);
    memcpy(arg, &i, sizeof(i));
    results[i].index = i;
    p = vow_pool_submit(pool, "echo", vow_value_new_bin(arg, ARG));
    vow_promise_release(vow_add_both(p, check_echo, &results[i]));
  }
  assert_non_null(ticker);
  uv_timer_init(vow_ctx_loop(fx->ctx), ticker);
  ticker->data = &wa;
  uv_timer_start(ticker, on_tick, 5, 5);
  nap(fx, 500);
  /* Gone before any assertion: a failed one must not leave it on the
   * loop for the teardown to wait on. */
  uv_timer_stop(ticker);
  uv_close((uv_handle_t*)ticker, (uv_close_cb)free);
  printf(
      "# stuck worker: %zu bytes at most waited for it (bound %zu), "
      "%u ticks of the loop in 500 ms\n",
      wa.worst_backlog, SEND_BOUND, wa.ticks);
  fflush(stdout);
  assert_true(wa.worst_backlog <= SEND_BOUND);
  /* A write that blocked on the stuck worker would stop the loop: the nap
   * would never end. It ended, and the ticker ran inside it (a busy
   * machine may run it rarely: 2 ticks in 500 ms were seen under ASan). */
  assert_true(wa.ticks >= 1);
  vow_cancel(hang_p);
  vow_promise_release(hang_p);
  deadline = uv_hrtime() + 120ull * 1000000000ull;
  for (settled = 0; settled < N;) {
    uv_run(vow_ctx_loop(fx->ctx), UV_RUN_ONCE);
    if (uv_hrtime() > deadline) {
      /* Say what the pool looks like, and stop here: unwinding out of
       * this frame would leave the pool's tasks half done. */
      vow_pool_stats_t st;
      unsigned k;
      vow_pool_stats(pool, &st);
      fprintf(stderr,
              "hung: %zu of %d tasks settled after 120 s; queued %zu, in "
              "flight %zu, workers alive %u, starts %llu\n",
              settled, N, st.queued, st.in_flight, st.workers_alive,
              (unsigned long long)st.worker_starts);
      for (k = 0; k < pool->nworkers; k++)
        if (pool->workers[k] != NULL)
          fprintf(stderr,
                  "  slot %u: pid %d state %d in flight %zu limit %u "
                  "unsent %zu\n",
                  k, pool->workers[k]->pid, pool->workers[k]->state,
                  pool->workers[k]->inflight.len, pool->workers[k]->limit,
                  vow__chan_backlog(&pool->workers[k]->chan));
      abort();
    }
    for (settled = 0, i = 0; i < N; i++)
      settled += results[i].settled;
  }
  assert_int_equal(hang.kind, VOW_FAIL_CANCELLED);
  for (i = 0; i < N; i++) {
    if (results[i].settled != 1 || results[i].bad)
      fail_msg("task %zu: settled %d times, bad %d", i, results[i].settled,
               results[i].bad);
  }
  end_pool_bounded(fx, pool);
  free(arg);
  free(results);
}

static vow_outcome_t take(vow_value_t* v, void* data) {
  *(vow_value_t**)data = v;
  return vow_ok(NULL);
}

/* A consumer that stops taking results holds the producer back: at most
 * `window` tasks are submitted ahead of it, however long it waits. */
static void consumer_that_stops_taking(void** state) {
  fixture* fx = *state;
  vow_pool_options_t o = defaults(2);
  vow_pool_t* pool = vow_pool_new(fx->ctx, &o, NULL);
  enum { WINDOW = 50 };
  size_t n = scaled(20000), i, taken = 0;
  int rounds;
  vow_value_t** items = calloc(n, sizeof(*items));
  unsigned char* marks = calloc(n, 1);
  vow_stream_t* s;
  vow_pool_stats_t st;
  assert_non_null(items);
  assert_non_null(marks);
  for (i = 0; i < n; i++) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int64(&pk, (int64_t)i);
    msgpack_pack_int64(&pk, 1);
    items[i] = vow_value_new_msgpack(sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
  }
  s = vow_pool_stream(pool, "add", vow_value_new_array(items, n), WINDOW);
  free(items);
  assert_non_null(s);
  /* The consumer is away: the window fills (its results wait to be
   * taken, however slowly workers start here), then nothing more goes
   * out for as long as it stays away. */
  for (rounds = 0; rounds < 3000; rounds++) {
    vow_pool_stats(pool, &st);
    if (st.completed >= WINDOW)
      break;
    nap(fx, 10);
  }
  assert_int_equal(st.completed, WINDOW);
  nap(fx, 300);
  vow_pool_stats(pool, &st);
  printf(
      "# consumer away: %llu of %zu submitted, %llu done (window %d), "
      "300 ms after the window filled\n",
      (unsigned long long)st.submitted, n, (unsigned long long)st.completed,
      WINDOW);
  fflush(stdout);
  assert_int_equal(st.submitted, WINDOW);
  assert_int_equal(st.completed, WINDOW);
  for (;;) {
    vow_value_t* v = NULL;
    vow_value_t *iv, *rv;
    int64_t index, value;
    vow_promise_t* p = vow_add_callbacks(vow_stream_get(s), take, NULL, &v);
    assert_int_equal(vow_ctx_wait(fx->ctx, p), VOW_FULFILLED);
    vow_promise_release(p);
    assert_non_null(v);
    if (vow_value_is_nil(v)) {
      vow_value_release(v);
      break;
    }
    assert_int_equal(vow_value_kind(v), VOW_VALUE_ARRAY);
    iv = vow_value_array_at(v, 0);
    rv = vow_value_array_at(v, 1);
    assert_int_equal(vow_value_get_int(iv, &index), 0);
    assert_int_equal(vow_value_get_int(rv, &value), 0);
    assert_true(index >= 0 && (size_t)index < n);
    assert_int_equal(marks[index], 0);
    assert_int_equal(value, index + 1);
    marks[index] = 1;
    taken++;
    vow_value_release(v);
  }
  assert_int_equal(taken, n);
  vow_stream_free(s);
  free(marks);
  end_pool_bounded(fx, pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(hang_past_its_timeout, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(hang_then_shutdown, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(worker_that_stops_reading, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(consumer_that_stops_taking, fx_setup,
                                      fx_teardown),
  };
  vow_worker_main(test_functions, test_nfunctions);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
