/* The scheduler's decisions, alone: pipelining depth, how many tasks go
 * in one write, suspects, seeds, restart backoff. */
#include "helpers_plain.h"
#include "pool_internal.h"

static void limit_follows_task_size(void** state) {
  (void)state;
  assert_int_equal(vow__sched_limit(0, 0), 8);       /* nothing measured */
  assert_int_equal(vow__sched_limit(1000, 0), 1024); /* 1 us tasks: capped */
  assert_int_equal(vow__sched_limit(100000, 0), 20); /* 100 us: 2 ms / 100 us */
  assert_int_equal(vow__sched_limit(10000000, 0), 2); /* 10 ms: the floor */
  assert_int_equal(vow__sched_limit(1000, 3), 3);     /* configured wins */
}

static void ewma_moves_a_quarter(void** state) {
  (void)state;
  assert_int_equal(vow__sched_ewma(0, 4000, 4, false), 1000); /* first */
  assert_int_equal(vow__sched_ewma(1000, 5000, 1, false), 2000);
  assert_int_equal(vow__sched_ewma(1000, 0, 0, false), 1000); /* no replies */
  assert_int_equal(vow__sched_ewma(0, 0, 3, false), 1);       /* never zero */
}

static void an_upper_bound_only_lowers_it(void** state) {
  (void)state;
  /* It answered all it had, then waited for the parent's next read, or it
   * was woken for these tasks: the figure is no measure of its tasks, and
   * must not shrink the limit. */
  assert_int_equal(vow__sched_ewma(1000, 400000, 10, true), 1000);
  assert_int_equal(vow__sched_ewma(1000, 2000, 4, true), 875);   /* lower */
  assert_int_equal(vow__sched_ewma(0, 400000, 10, true), 40000); /* first */
  /* With tasks still out it was busy the whole time: taken as it is. */
  assert_int_equal(vow__sched_ewma(1000, 400000, 10, false), 10750);
}

static ptask tasks[8];

static tlist queue_of(const uint8_t* flags, int n) {
  tlist l = {NULL, NULL, 0};
  int i;
  for (i = 0; i < n; i++) {
    memset(&tasks[i], 0, sizeof(tasks[i]));
    tasks[i].flags = flags[i];
    vow__tlist_push(&l, &tasks[i]);
  }
  return l;
}

static void take_respects_limit_and_suspects(void** state) {
  static const uint8_t plain[5] = {0, 0, 0, 0, 0};
  static const uint8_t suspect_first[3] = {PT_SUSPECT, 0, 0};
  static const uint8_t suspect_third[4] = {0, 0, PT_SUSPECT, 0};
  tlist q;
  (void)state;
  q = queue_of(plain, 5);
  assert_int_equal(vow__sched_take(&q, 0, 8, false), 5);
  assert_int_equal(vow__sched_take(&q, 6, 8, false), 2);
  assert_int_equal(vow__sched_take(&q, 8, 8, false), 0);
  assert_int_equal(vow__sched_take(&q, 0, 8, true), 0); /* a suspect runs */
  q = queue_of(suspect_first, 3);
  assert_int_equal(vow__sched_take(&q, 0, 8, false), 1); /* alone */
  assert_int_equal(vow__sched_take(&q, 1, 8, false), 0); /* only if empty */
  q = queue_of(suspect_third, 4);
  assert_int_equal(vow__sched_take(&q, 0, 8, false), 2); /* stops before it */
  q.head = q.tail = NULL;
  q.len = 0;
  assert_int_equal(vow__sched_take(&q, 0, 8, false), 0);
}

static void seeds_depend_on_run_and_index_only(void** state) {
  (void)state;
  assert_true(vow__task_seed(1, 1) == vow__task_seed(1, 1));
  assert_true(vow__task_seed(1, 1) != vow__task_seed(1, 2));
  assert_true(vow__task_seed(1, 1) != vow__task_seed(2, 1));
  assert_true(vow__task_seed(0, 0) != 0);
}

static void backoff_doubles_to_a_cap(void** state) {
  (void)state;
  assert_int_equal(vow__sched_backoff_ms(1), 100);
  assert_int_equal(vow__sched_backoff_ms(2), 200);
  assert_int_equal(vow__sched_backoff_ms(4), 800);
  assert_int_equal(vow__sched_backoff_ms(30), 5000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(limit_follows_task_size),
      cmocka_unit_test(ewma_moves_a_quarter),
      cmocka_unit_test(an_upper_bound_only_lowers_it),
      cmocka_unit_test(take_respects_limit_and_suspects),
      cmocka_unit_test(seeds_depend_on_run_and_index_only),
      cmocka_unit_test(backoff_doubles_to_a_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
