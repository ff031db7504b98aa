/* Task functions for the pool tests. The test binary serves them as its
 * own worker (vow_worker_main), and the same file builds the plugin that
 * the stock vow-worker loads. Some misbehave on purpose. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "pool_functions.h"

static int64_t int_arg(const msgpack_object* a, uint32_t i) {
  if (a->type == MSGPACK_OBJECT_ARRAY && i < a->via.array.size)
    a = &a->via.array.ptr[i];
  if (a->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return (int64_t)a->via.u64;
  if (a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return a->via.i64;
  return 0;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int fn_echo(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)t;
  return msgpack_pack_object(r, *a);
}

static int fn_add(vow_task_ctx_t* t, const msgpack_object* a,
                  msgpack_packer* r) {
  (void)t;
  return msgpack_pack_int64(r, int_arg(a, 0) + int_arg(a, 1));
}

/* [a, b, us]: a + b after us microseconds. */
static int fn_add_after(vow_task_ctx_t* t, const msgpack_object* a,
                        msgpack_packer* r) {
  int64_t us = int_arg(a, 2);
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  (void)t;
  while (us > 0 && nanosleep(&ts, &ts) != 0) {
  }
  return msgpack_pack_int64(r, int_arg(a, 0) + int_arg(a, 1));
}

static int fn_noop(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)a;
  (void)t;
  return msgpack_pack_nil(r);
}

static int fn_sleep(vow_task_ctx_t* t, const msgpack_object* a,
                    msgpack_packer* r) {
  (void)t;
  sleep_ms(int_arg(a, 0));
  return msgpack_pack_int64(r, int_arg(a, 0));
}

static int fn_pid(vow_task_ctx_t* t, const msgpack_object* a,
                  msgpack_packer* r) {
  (void)a;
  (void)t;
  return msgpack_pack_int64(r, getpid());
}

static int fn_seed(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)a;
  return msgpack_pack_uint64(r, vow_task_seed(t));
}

static int fn_fail(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)r;
  return vow_task_fail(t, "refused %lld", (long long)int_arg(a, 0));
}

static int fn_fail_if_9(vow_task_ctx_t* t, const msgpack_object* a,
                        msgpack_packer* r) {
  if (int_arg(a, 0) == 9)
    return vow_task_fail(t, "nine");
  return msgpack_pack_int64(r, int_arg(a, 0));
}

static int fn_crash(vow_task_ctx_t* t, const msgpack_object* a,
                    msgpack_packer* r) {
  (void)a;
  (void)r;
  (void)t;
  raise(SIGSEGV);
  return 0;
}

/* Says it has started (PROGRESS 0), then dies by SIGKILL. */
static int fn_start_then_die(vow_task_ctx_t* t, const msgpack_object* a,
                             msgpack_packer* r) {
  (void)a;
  (void)r;
  vow_task_progress(t, 0.0, "started");
  raise(SIGKILL);
  return 0;
}

static int fn_exit(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)r;
  (void)t;
  _exit((int)int_arg(a, 0));
}

/* Writes bytes that are not the protocol onto the channel. */
static int fn_garbage(vow_task_ctx_t* t, const msgpack_object* a,
                      msgpack_packer* r) {
  static const char junk[] = "\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1";
  (void)a;
  (void)r;
  (void)t;
  if (write(3, junk, sizeof(junk) - 1) < 0)
    _exit(9);
  sleep_ms(60000);
  return 0;
}

/* Replies for a task id it was never sent. */
static int fn_stray_reply(vow_task_ctx_t* t, const msgpack_object* a,
                          msgpack_packer* r) {
  /* RESULTS [[999999, nil]] */
  static const char frame[] =
      "\x00\x00\x00\x0a\x92\x03\x91\x92\xce\x00\x0f"
      "\x42\x3f\xc0";
  (void)a;
  (void)t;
  if (write(3, frame, sizeof(frame) - 1) < 0)
    _exit(9);
  return msgpack_pack_nil(r);
}

static int fn_hello_again(vow_task_ctx_t* t, const msgpack_object* a,
                          msgpack_packer* r) {
  static const char hello[] = "\x00\x00\x00\x06\x94\x01\x01\x01\x91\xa0";
  (void)a;
  (void)t;
  if (write(3, hello, sizeof(hello) - 1) < 0)
    _exit(9);
  return msgpack_pack_nil(r);
}

/* Claims a 4 GiB frame, then stalls. */
static int fn_claim_4g(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  (void)a;
  (void)r;
  (void)t;
  if (write(3, "\xff\xff\xff\xff\x92", 5) < 0)
    _exit(9);
  sleep_ms(60000);
  return 0;
}

/* Begins a RESULTS frame, stops after six of its bytes, and stalls. */
static int fn_truncate_stall(vow_task_ctx_t* t, const msgpack_object* a,
                             msgpack_packer* r) {
  (void)a;
  (void)r;
  (void)t;
  if (write(3, "\x00\x00\x00\x0a\x92\x03", 6) < 0)
    _exit(9);
  sleep_ms(60000);
  return 0;
}

/* Claims a 60 MiB frame (under the limit), sends 100 bytes of it, and
 * stalls: the parent must neither allocate the claim nor wait forever. */
static int fn_claim_60m(vow_task_ctx_t* t, const msgpack_object* a,
                        msgpack_packer* r) {
  char bytes[104];
  (void)a;
  (void)r;
  (void)t;
  memset(bytes, 0x90, sizeof(bytes));
  memcpy(bytes, "\x03\xc0\x00\x00", 4);
  if (write(3, bytes, sizeof(bytes)) < 0)
    _exit(9);
  sleep_ms(60000);
  return 0;
}

/* Closes the channel and lives on. */
static int fn_close_channel(vow_task_ctx_t* t, const msgpack_object* a,
                            msgpack_packer* r) {
  (void)a;
  (void)r;
  (void)t;
  close(3);
  close(0); /* the channel's other end under a launcher or an MPI agent */
  sleep_ms(60000);
  return 0;
}

static int fn_print(vow_task_ctx_t* t, const msgpack_object* a,
                    msgpack_packer* r) {
  (void)t;
  printf("task says hello on stdout\n");
  fflush(stdout);
  fprintf(stderr, "task says hello on stderr\n");
  return msgpack_pack_int64(r, int_arg(a, 0));
}

/* Writes [n] lines to stderr and returns n. */
static int fn_spew(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  int64_t n = int_arg(a, 0), i;
  (void)t;
  for (i = 0; i < n; i++)
    fprintf(stderr, "spew line %lld of a task's many\n", (long long)i);
  return msgpack_pack_int64(r, n);
}

/* Ignores SIGTERM and never returns. */
static int fn_hang(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)a;
  (void)r;
  (void)t;
  signal(SIGTERM, SIG_IGN);
  vow_task_progress(t, 0.0, "0"); /* tests wait for this: it is running */
  for (;;)
    sleep_ms(1000);
  return 0;
}

/* Runs until cancelled (checking), then fails. */
static int fn_until_cancelled(vow_task_ctx_t* t, const msgpack_object* a,
                              msgpack_packer* r) {
  int64_t n = 0;
  (void)a;
  (void)r;
  vow_task_progress(t, 0.0, "0"); /* tests wait for this: it is running */
  while (!vow_task_cancelled(t)) {
    sleep_ms(1);
    if (++n > 30000)
      break;
  }
  return vow_task_fail(t, "stopped after %lld ms", (long long)n);
}

static int fn_progress(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  vow_task_progress(t, 0.5, "halfway");
  return msgpack_pack_int64(r, int_arg(a, 0));
}

/* Says its pid as progress, then sleeps [ms]: tests learn which worker
 * runs it while it runs. */
static int fn_pidsleep(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  char text[32];
  snprintf(text, sizeof(text), "%d", (int)getpid());
  vow_task_progress(t, 0.0, text);
  sleep_ms(int_arg(a, 0));
  return msgpack_pack_int64(r, getpid());
}

/* Sleeps [ms] a millisecond at a time, reading the channel as it goes
 * (as a task that checks vow_task_cancelled does), then says its pid. */
static int fn_pidnap(vow_task_ctx_t* t, const msgpack_object* a,
                     msgpack_packer* r) {
  int64_t ms = int_arg(a, 0), i;
  for (i = 0; i < ms && !vow_task_cancelled(t); i++)
    sleep_ms(1);
  return msgpack_pack_int64(r, getpid());
}

/* Where it runs and what it may open: [cwd, open-files limit]. */
static int fn_env(vow_task_ctx_t* t, const msgpack_object* a,
                  msgpack_packer* r) {
  char cwd[1024];
  struct rlimit rl;
  (void)a;
  if (getcwd(cwd, sizeof(cwd)) == NULL)
    return vow_task_fail(t, "getcwd");
  getrlimit(RLIMIT_NOFILE, &rl);
  msgpack_pack_array(r, 2);
  msgpack_pack_str(r, strlen(cwd));
  msgpack_pack_str_body(r, cwd, strlen(cwd));
  return msgpack_pack_uint64(r, (uint64_t)rl.rlim_cur);
}

/* Monte Carlo: [samples] -> hits inside the unit circle, from the task's
 * own seed (xorshift64*). */
static int fn_monte(vow_task_ctx_t* t, const msgpack_object* a,
                    msgpack_packer* r) {
  uint64_t s = vow_task_seed(t) | 1, hits = 0;
  int64_t i, n = int_arg(a, 0);
  for (i = 0; i < n; i++) {
    double x, y;
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    x = (double)((s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    y = (double)((s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
    hits += x * x + y * y <= 1.0;
  }
  return msgpack_pack_uint64(r, hits);
}

/* [bytes] -> a bin of that size. */
static int fn_big(vow_task_ctx_t* t, const msgpack_object* a,
                  msgpack_packer* r) {
  size_t n = (size_t)int_arg(a, 0);
  char* buf = malloc(n ? n : 1);
  (void)t;
  if (buf == NULL)
    return vow_task_fail(t, "no memory for %zu bytes", n);
  memset(buf, 0x42, n);
  msgpack_pack_bin(r, n);
  msgpack_pack_bin_body(r, buf, n);
  free(buf);
  return 0;
}

/* [n] -> an array of n nils: n + 1 objects. */
static int fn_nils(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  int64_t i, n = int_arg(a, 0);
  (void)t;
  msgpack_pack_array(r, (size_t)n);
  for (i = 0; i < n; i++)
    msgpack_pack_nil(r);
  return 0;
}

/* [n] -> a bin of the bytes 0, 1, ... n-1. */
static int fn_bin3(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  char b[256];
  int64_t i, n = int_arg(a, 0);
  (void)t;
  if (n < 0 || n > 256)
    n = 0;
  for (i = 0; i < n; i++)
    b[i] = (char)i;
  msgpack_pack_bin(r, (size_t)n);
  return msgpack_pack_bin_body(r, b, (size_t)n);
}

/* Packs two objects: a broken function. */
static int fn_two(vow_task_ctx_t* t, const msgpack_object* a,
                  msgpack_packer* r) {
  (void)a;
  (void)t;
  msgpack_pack_int(r, 1);
  return msgpack_pack_int(r, 2);
}

/* The MPI rank of the worker's parent, read from the parent's
 * environment after sleeping [ms] (so that a batch spreads over the
 * workers): a node agent's rank under mpirun, -1 under a local pool. */
static int fn_parent_rank(vow_task_ctx_t* t, const msgpack_object* a,
                          msgpack_packer* r) {
  char path[64], env[65536];
  ssize_t n;
  int fd;
  int64_t rank = -1;
  (void)t;
  sleep_ms(int_arg(a, 0));
  snprintf(path, sizeof(path), "/proc/%d/environ", (int)getppid());
  fd = open(path, O_RDONLY | O_CLOEXEC);
  n = fd >= 0 ? read(fd, env, sizeof(env) - 1) : -1;
  if (fd >= 0)
    close(fd);
  for (ssize_t at = 0; n > 0 && at < n; at += (ssize_t)strlen(env + at) + 1) {
    env[n] = '\0';
    if (strncmp(env + at, "OMPI_COMM_WORLD_RANK=", 21) == 0)
      rank = atoll(env + at + 21);
    else if (strncmp(env + at, "PMIX_RANK=", 10) == 0 ||
             strncmp(env + at, "PMI_RANK=", 9) == 0)
      rank = atoll(strchr(env + at, '=') + 1); /* under srun --mpi= */
  }
  return msgpack_pack_int64(r, rank);
}

const vow_function_t test_functions[] = {
    {"parent_rank", fn_parent_rank},
    {"echo", fn_echo},
    {"spew", fn_spew},
    {"add", fn_add},
    {"add_after", fn_add_after},
    {"noop", fn_noop},
    {"sleep", fn_sleep},
    {"pidnap", fn_pidnap},
    {"pid", fn_pid},
    {"seed", fn_seed},
    {"fail", fn_fail},
    {"crash", fn_crash},
    {"start_then_die", fn_start_then_die},
    {"exit", fn_exit},
    {"garbage", fn_garbage},
    {"stray", fn_stray_reply},
    {"hello_again", fn_hello_again},
    {"print", fn_print},
    {"hang", fn_hang},
    {"until_cancelled", fn_until_cancelled},
    {"progress", fn_progress},
    {"monte", fn_monte},
    {"big", fn_big},
    {"nils", fn_nils},
    {"two", fn_two},
    {"pidsleep", fn_pidsleep},
    {"env", fn_env},
    {"fail_if_9", fn_fail_if_9},
    {"bin3", fn_bin3},
    {"claim_4g", fn_claim_4g},
    {"close_channel", fn_close_channel},
    {"truncate_stall", fn_truncate_stall},
    {"claim_60m", fn_claim_60m},
};
const size_t test_nfunctions =
    sizeof(test_functions) / sizeof(test_functions[0]);

#ifdef VOW_TEST_PLUGIN
VOW_PLUGIN(test_functions);
#endif
