/* proc/: real children on a real loop. Exit statuses and signals, both
 * streams, the exit-plus-EOF join in its three forms, the stop policy on
 * a child that ignores TERM, a group ended with its leader, children
 * closed early, and a child of the program's own that proc/ must leave
 * for the program to reap. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc.h"

typedef struct seen {
  char out[4096], err[4096];
  size_t out_len, err_len;
  int eofs, exits, dones, closes;
} seen;

static void on_output(vow__proc* p, int stream, const char* data, size_t len) {
  seen* s = p->data;
  char* to = stream == 1 ? s->out : s->err;
  size_t* at = stream == 1 ? &s->out_len : &s->err_len;
  assert_true(*at + len < sizeof(s->out));
  memcpy(to + *at, data, len);
  *at += len;
  to[*at] = '\0';
}
static void on_eof(vow__proc* p, int stream) {
  (void)stream;
  ((seen*)p->data)->eofs++;
}
static void on_exit_seen(vow__proc* p) {
  ((seen*)p->data)->exits++;
}
static void on_done(vow__proc* p) {
  ((seen*)p->data)->dones++;
}
static void on_closed(vow__proc* p) {
  ((seen*)p->data)->closes++;
}

static const vow__proc_calls calls = {on_output, on_eof, on_exit_seen, on_done};

typedef struct fx {
  uv_loop_t loop;
  vow__procs set;
} fx;

static int setup(void** state) {
  fx* f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  vow__procs_init(&f->set, &f->loop);
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fx* f = *state;
  vow__procs_close(&f->set, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

/* A shell command with stdout and stderr piped. */
static vow__proc_spec sh_spec(const char* script) {
  static char* argv[4];
  vow__proc_spec s;
  memset(&s, 0, sizeof(s));
  argv[0] = "sh";
  argv[1] = "-c";
  argv[2] = (char*)script;
  argv[3] = NULL;
  s.argv = argv;
  s.fd[0] = VOW__PROC_NULL;
  s.fd[1] = s.fd[2] = VOW__PROC_PIPE;
  s.fd3 = -1;
  s.default_signals = true;
  return s;
}

static void run_until_closed(fx* f, vow__proc* p, seen* s) {
  while (s->dones == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  vow__proc_close(p, on_closed);
  while (s->closes == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
}

static bool alive(pid_t pid) {
  return kill(pid, 0) == 0;
}

static void exit_status_and_both_streams(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  vow__proc_spec spec = sh_spec("echo out; echo err >&2; exit 3");
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  assert_true(p.pid > 0);
  run_until_closed(f, &p, &s);
  assert_string_equal(s.out, "out\n");
  assert_string_equal(s.err, "err\n");
  assert_int_equal(p.exit_status, 3);
  assert_int_equal(p.term_signal, 0);
  assert_int_equal(s.exits, 1);
  assert_int_equal(s.dones, 1);
  assert_int_equal(s.eofs, 2);
  /* Reaped: no zombie of ours is left. */
  assert_int_equal(waitpid(p.pid, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

static void a_signal_is_reported(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  vow__proc_spec spec = sh_spec("kill -USR1 $$; sleep 5");
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  run_until_closed(f, &p, &s);
  assert_int_equal(p.term_signal, SIGUSR1);
  assert_int_equal(p.exit_status, -1);
}

static void a_missing_command_is_enoent(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  char* argv[] = {"vow-no-such-command-anywhere", NULL};
  vow__proc_spec spec = sh_spec("");
  spec.argv = argv;
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), ENOENT);
  char* env[] = {"PATH=/nonexistent", NULL};
  char* sh[] = {"sh", "-c", "true", NULL};
  spec.argv = sh;
  spec.env = env; /* looked up in the child's PATH, not ours */
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), ENOENT);
}

/* TERM is ignored: KILL follows the grace. */
static void stop_kills_after_the_grace(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  vow__proc_spec spec = sh_spec(
      "trap '' TERM; echo ready; "
      "while :; do sleep 0.05; done");
  spec.own_group = true;
  spec.eof_grace_ms = VOW__GRACE_EOF_MS;
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  while (s.out_len == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  vow__proc_stop(&p, 50);
  run_until_closed(f, &p, &s);
  assert_int_equal(p.term_signal, SIGKILL);
}

/* The child's group goes when its leader exits: a background process
 * it left (holding its stdout, too) is killed. */
static void end_group_at_exit_takes_what_it_left(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  pid_t bg;
  vow__proc_spec spec = sh_spec("sleep 30 & echo $!");
  spec.own_group = spec.end_group_at_exit = true;
  spec.eof_grace_ms = 100;
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  run_until_closed(f, &p, &s);
  bg = (pid_t)atoi(s.out);
  assert_true(bg > 0);
  assert_int_equal(p.exit_status, 0);
  /* Its parent (the shell) is gone, so init reaps it: gone, or a
   * zombie on its way out, never a sleeping process. */
  for (int i = 0; i < 3000 && alive(bg); i++) {
    char path[64], state_c = 0;
    FILE* st;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)bg);
    if ((st = fopen(path, "r")) == NULL)
      break;
    if (fscanf(st, "%*d %*s %c", &state_c) != 1)
      state_c = 0;
    fclose(st);
    if (state_c == 'Z' || state_c == 'X')
      break;
    usleep(10000);
    assert_true(i < 2999); /* 30 s: not killed at all */
  }
}

/* drain_at_exit: what is in the pipes at the exit is read, a background
 * process holding them is not waited for. */
static void drain_at_exit_does_not_wait(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  uint64_t t0;
  vow__proc_spec spec = sh_spec("sleep 60 & echo $!; echo done");
  spec.own_group = true;
  spec.drain_at_exit = true;
  t0 = uv_hrtime();
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  run_until_closed(f, &p, &s);
  /* Waiting for the sleep would take a minute; a loaded machine takes
   * far less than half of that to start a shell. */
  assert_true(uv_hrtime() - t0 < 30000000000u);
  assert_non_null(strstr(s.out, "done\n"));
  kill((pid_t)atoi(s.out), SIGKILL);
}

/* Without a grace, the join waits for EOF, as a shell's $(...) does. */
static void without_a_grace_eof_is_waited_for(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  vow__proc_spec spec = sh_spec("(sleep 0.3; echo late) & echo early");
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  run_until_closed(f, &p, &s);
  assert_string_equal(s.out, "early\nlate\n");
}

/* Closed while running: killed and reaped, by the time the set closes
 * at the latest. */
static void closing_a_running_child_kills_it(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  vow__proc_spec spec = sh_spec("exec sleep 30");
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  pid_t pid = p.pid;
  vow__proc_close(&p, on_closed);
  while (s.closes == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  vow__procs_close(&f->set, NULL);
  assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
  assert_int_equal(s.exits, 0); /* closed: no callbacks after */
}

/* A background child closed early is left to run. */
static void a_background_child_is_left_running(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  vow__proc_spec spec = sh_spec("exec sleep 30");
  spec.background = true;
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  pid_t pid = p.pid;
  vow__proc_close(&p, on_closed);
  while (s.closes == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(alive(pid));
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* A child the program forked itself is the program's to reap. */
static void the_programs_own_child_is_left_alone(void** state) {
  fx* f = *state;
  seen s = {0};
  vow__proc p;
  int status = -1;
  pid_t mine = fork();
  if (mine == 0)
    _exit(7);
  assert_true(mine > 0);
  /* Exited before ours, so it is the first zombie a waitid would see. */
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  assert_int_equal(waitid(P_PID, (id_t)mine, &info, WEXITED | WNOWAIT), 0);
  vow__proc_spec spec = sh_spec("exit 4");
  assert_int_equal(vow__proc_spawn(&p, &f->set, &spec, &calls, &s), 0);
  run_until_closed(f, &p, &s);
  assert_int_equal(p.exit_status, 4);
  assert_int_equal(waitpid(mine, &status, 0), mine);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 7);
}

/* Many at once: each reaped once, each status its own. */
static void many_children_each_reaped_once(void** state) {
  fx* f = *state;
  enum { N = 64 };
  static vow__proc ps[N];
  static seen ss[N];
  char script[32];
  int i, done = 0;
  memset(ss, 0, sizeof(ss));
  for (i = 0; i < N; i++) {
    snprintf(script, sizeof(script), "exit %d", i);
    vow__proc_spec spec = sh_spec(script);
    spec.fd[1] = spec.fd[2] = VOW__PROC_NULL;
    assert_int_equal(vow__proc_spawn(&ps[i], &f->set, &spec, &calls, &ss[i]),
                     0);
  }
  while (done < N) {
    uv_run(&f->loop, UV_RUN_ONCE);
    for (done = 0, i = 0; i < N; i++)
      done += ss[i].dones;
  }
  for (i = 0; i < N; i++) {
    assert_int_equal(ss[i].exits, 1);
    assert_int_equal(ps[i].exit_status, i);
    vow__proc_close(&ps[i], on_closed);
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
  for (i = 0; i < N; i++)
    assert_int_equal(ss[i].closes, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(exit_status_and_both_streams, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(a_signal_is_reported, setup, teardown),
      cmocka_unit_test_setup_teardown(a_missing_command_is_enoent, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(stop_kills_after_the_grace, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(end_group_at_exit_takes_what_it_left,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(drain_at_exit_does_not_wait, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(without_a_grace_eof_is_waited_for, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(closing_a_running_child_kills_it, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(a_background_child_is_left_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(the_programs_own_child_is_left_alone,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(many_children_each_reaped_once, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
