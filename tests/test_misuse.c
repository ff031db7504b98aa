/* A caller's bug in using the API stops the program at once, saying which
 * call and what was wrong: a NULL where an object is due, a promise
 * released once too often, vow_ctx_wait inside a callback (which would
 * wait for ever). Each case runs in a child process, which must die of
 * SIGABRT with the call named on its stderr. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vow/vow.h>

#include "helpers_plain.h"

typedef void (*misuse_fn)(void);

/* Runs fn in a child; returns what the child wrote to stderr (up to
 * 4 KiB) and sets *sig to the signal it died of (0: it did not die of
 * one, or was still running after 20 s and was killed: -1). */
static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void run_child(misuse_fn fn, char* err, size_t size, int* sig) {
  const int deadline_ms = 20000;
  uint64_t start = now_ms();
  int fds[2], status = 0;
  size_t got = 0;
  pid_t pid;
  assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child dies of what it does: not caught by cmocka's handlers,
     * which would run the rest of the suite in it. */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
      signal(fatal[i], SIG_DFL);
    close(fds[0]);
    dup2(fds[1], 2);
    fn();
    _exit(0); /* the misuse went unnoticed */
  }
  close(fds[1]);
  for (;;) {
    struct pollfd p = {fds[0], POLLIN, 0};
    ssize_t n;
    int left = deadline_ms - (int)(now_ms() - start);
    if (left <= 0 || poll(&p, 1, left) <= 0) { /* it hangs: the bug */
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      close(fds[0]);
      err[got] = '\0';
      *sig = -1;
      return;
    }
    n = read(fds[0], err + got, size - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || (got += (size_t)n) == size - 1)
      break;
  }
  err[got] = '\0';
  close(fds[0]);
  waitpid(pid, &status, 0);
  *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void expect_misuse(misuse_fn fn, const char* said) {
  char err[4096];
  int sig;
  run_child(fn, err, sizeof(err), &sig);
  if (sig != SIGABRT || strstr(err, said) == NULL)
    fail_msg("expected SIGABRT and \"%s\", got signal %d and: %s", said, sig,
             err);
}

static vow_outcome_t pass(vow_value_t* v, void* data) {
  (void)data;
  return vow_ok(v);
}

static void null_promise(void) {
  vow_add_callback(NULL, pass, NULL);
}

static void null_pool(void) {
  vow_pool_submit(NULL, "f", NULL);
}

static void null_value(void) {
  int64_t i;
  vow_value_get_int(NULL, &i);
}

static void null_context(void) {
  vow_sleep(NULL, 10);
}

static void null_failure(void) {
  vow_failure_message(NULL);
}

static void promise_released_twice(void) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t* p = vow_succeed(ctx, NULL);
  vow_promise_release(p);
  vow_ctx_drain(ctx); /* its chain has run: its slot is free now */
  vow_promise_release(p);
}

static void promise_used_after_release(void) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t* p = vow_succeed(ctx, NULL);
  vow_promise_release(p);
  vow_ctx_drain(ctx);
  vow_add_callback(p, pass, NULL);
}

static vow_ctx_t* the_ctx;

/* Runs cb as a chain's callback, under vow_ctx_wait. */
static void in_a_callback(vow_callback_fn cb) {
  vow_promise_t* p;
  the_ctx = vow_ctx_new(NULL, NULL);
  p = vow_succeed(the_ctx, NULL);
  vow_add_callback(p, cb, NULL);
  vow_ctx_wait(the_ctx, p);
}

static vow_outcome_t wait_inside(vow_value_t* v, void* data) {
  vow_promise_t* later = vow_sleep(the_ctx, 10);
  (void)data;
  vow_ctx_wait(the_ctx, later); /* would wait for its own caller */
  return vow_ok(v);
}

static void wait_inside_a_callback(void) {
  in_a_callback(wait_inside);
}

static void on_timer(uv_timer_t* t) {
  vow_ctx_wait(the_ctx, vow_sleep(the_ctx, 10)); /* inside vow_ctx_run */
  (void)t;
}

static void wait_inside_a_loop_callback(void) {
  static uv_timer_t t;
  the_ctx = vow_ctx_new(NULL, NULL);
  uv_timer_init(vow_ctx_loop(the_ctx), &t);
  uv_timer_start(&t, on_timer, 1, 0);
  vow_ctx_run(the_ctx);
}

static vow_outcome_t close_inside(vow_value_t* v, void* data) {
  (void)data;
  vow_ctx_close(the_ctx);
  return vow_ok(v);
}

static void close_inside_a_callback(void) {
  in_a_callback(close_inside);
}

static void nulls_are_named(void** state) {
  (void)state;
  expect_misuse(null_promise, "vow: vow_add_callback: the promise is NULL");
  expect_misuse(null_pool, "vow: vow_pool_submit: the pool is NULL");
  expect_misuse(null_value, "vow: vow_value_get_int: the value is NULL");
  expect_misuse(null_context, "vow: vow_sleep: the context is NULL");
  expect_misuse(null_failure, "vow: vow_failure_message: the failure is NULL");
}

static void a_release_too_many_is_named(void** state) {
  (void)state;
  expect_misuse(promise_released_twice,
                "vow: vow_promise_release: the promise was released once "
                "more than it was referenced");
  expect_misuse(promise_used_after_release,
                "vow: vow_add_callback: the promise was used after its last "
                "reference was released");
}

static void waiting_inside_a_callback_is_named(void** state) {
  (void)state;
  expect_misuse(wait_inside_a_callback,
                "vow: vow_ctx_wait: called inside a callback");
  expect_misuse(wait_inside_a_loop_callback,
                "vow: vow_ctx_wait: called inside a callback");
  expect_misuse(close_inside_a_callback,
                "vow: vow_ctx_close: called inside a callback");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nulls_are_named),
      cmocka_unit_test(a_release_too_many_is_named),
      cmocka_unit_test(waiting_inside_a_callback_is_named),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
