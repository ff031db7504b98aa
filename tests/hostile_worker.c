/* A worker that speaks the protocol on fd 3 (or stdin and stdout under a
 * launcher) and, at random, breaks it.
 * It offers one function, "calc" (x -> 3x + 1), answers each task with
 * its own RESULTS frame, and before one task in HOSTILE_RATE (default 50)
 * it misbehaves in one of these ways instead:
 *
 *   garbage        1 to 64 random bytes, then carries on as if nothing
 *   truncate       half of the task's RESULTS frame, then stalls
 *   claim_4g       a header claiming a 4 GiB frame, then stalls
 *   twice          the right reply, twice
 *   stray          a reply for an id it was never sent, then the right one
 *   hello_again    a second HELLO, then the right reply
 *   close_stdout   closes its channel and stays alive
 *
 * Map chunks (MAPS) are answered with one array of 3x + 1 per item.
 *
 * With HOSTILE_FAULT=NAME it commits that one fault on every task or
 * chunk instead, for tests that need one misbehaviour for certain; these
 * names exist only there:
 *
 *   maps_short     a chunk's reply with one result too few
 *   maps_long      a chunk's reply with one result too many
 *   maps_not_array a chunk's reply that is a single integer
 *   fork_hold_die  forks a child that keeps the channel and stderr open
 *                  and sleeps, then exits
 *   fork_hold_live the same, then goes silent itself
 *   silent         reads on and never replies
 *   error_detail   fails every task with a task error that carries a
 *                  detail, as a Python worker sends its traceback
 *
 * Each fault is appended as "PID KIND" to the file HOSTILE_LOG names, so
 * the test knows what was injected and by whom. Built on the protocol
 * library alone: it must be able to say what no well-behaved worker
 * would. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "proto.h"
#include "fdio.h"

/* fd 3, or stdin and stdout under a launcher (VOW_WORKER_CHANNEL=stdio). */
static int chan_in = 3, chan_out = 3;

enum fault {
  F_GARBAGE,
  F_TRUNCATE,
  F_CLAIM_4G,
  F_TWICE,
  F_STRAY,
  F_HELLO_AGAIN,
  F_CLOSE,
  F_COUNT
};

static const char* const fault_names[F_COUNT] = {
    "garbage", "truncate",    "claim_4g",    "twice",
    "stray",   "hello_again", "close_stdout"};

static uint64_t rng_state;

static uint64_t next_random(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void write_all(const void* data, size_t len) {
  if (vowp_write_all(chan_out, data, len) != 0)
    _exit(3); /* the parent is gone or killed us */
}

static void flush(vowp_encoder* e) {
  size_t len;
  const char* data = vowp_encoder_data(e, &len);
  write_all(data, len);
  vowp_encoder_reset(e);
}

static void log_fault(int fault) {
  const char* path = getenv("HOSTILE_LOG");
  char line[64];
  int fd, len;
  if (path == NULL)
    return;
  len = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(),
                 fault_names[fault]);
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  if (write(fd, line, (size_t)len) < 0) {
    /* the test will miss one line and say so */
  }
  close(fd);
}

static void stall(void) {
  for (;;)
    pause(); /* until the parent kills us */
}

static const char* forced; /* HOSTILE_FAULT */

static bool forced_is(const char* name) {
  return forced != NULL && strcmp(forced, name) == 0;
}

/* A child that holds every descriptor we have, for a long while. */
static void fork_holder(void) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(60);
    stall();
  }
}

/* The forced faults that do not depend on the message: true when one
 * was committed and the task must not be answered. */
static bool forced_silence(void) {
  if (forced_is("fork_hold_die")) {
    fork_holder();
    _exit(0);
  }
  if (forced_is("fork_hold_live")) {
    fork_holder();
    stall();
  }
  return forced_is("silent");
}

static void hello(vowp_encoder* e) {
  static const char* const functions[] = {"calc"};
  /* HOSTILE_HELLO_PID: the pid a worker on another machine would give,
   * which means nothing here. */
  const char* pid = getenv("HOSTILE_HELLO_PID");
  vowp_encode_hello(e, VOWP_VERSION, pid ? atoll(pid) : (long long)getpid(),
                    functions, 1);
  flush(e);
}

static void result(vowp_encoder* e, uint64_t id, int64_t value) {
  vowp_results_begin(e, 1);
  msgpack_pack_int64(vowp_result_open(e, id), value);
  vowp_batch_end(e);
}

static int64_t arg_int(vowp_slice args) {
  msgpack_unpacked u;
  int64_t x = 0;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, args.data, args.len, NULL) ==
          MSGPACK_UNPACK_SUCCESS &&
      (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
       u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
    x = u.data.via.i64;
  msgpack_unpacked_destroy(&u);
  return x;
}

/* Replies to one task, honestly or not. */
static void answer(vowp_encoder* e, uint64_t id, int64_t x, unsigned rate) {
  int fault = -1;
  if (forced_silence())
    return;
  if (forced_is("error_detail")) {
    vowp_encode_error(e, id, 5 /* task error */, 0, "ValueError: boom",
                      "Traceback (most recent call last):\n"
                      "  File \"tasks.py\", line 3, in calc\n"
                      "ValueError: boom\n");
    flush(e);
    return;
  }
  if (rate > 0 && next_random() % rate == 0)
    fault = (int)(next_random() % F_COUNT);
  if (fault >= 0)
    log_fault(fault);
  switch (fault) {
    case F_GARBAGE: {
      unsigned char junk[64];
      size_t n = 1 + next_random() % sizeof(junk), i;
      for (i = 0; i < n; i++)
        junk[i] = (unsigned char)next_random();
      write_all(junk, n);
      break;
    }
    case F_TRUNCATE: {
      size_t len;
      const char* data;
      result(e, id, 3 * x + 1);
      data = vowp_encoder_data(e, &len);
      write_all(data, len / 2);
      stall();
      break;
    }
    case F_CLAIM_4G:
      write_all("\xff\xff\xff\xff\x92\x03", 6);
      stall();
      break;
    case F_TWICE:
      result(e, id, 3 * x + 1);
      break;
    case F_STRAY:
      result(e, id + 1000000000ull, 0);
      break;
    case F_HELLO_AGAIN:
      hello(e);
      break;
    case F_CLOSE:
      close(chan_in);
      close(chan_out);
      stall();
      break;
    default:
      break;
  }
  result(e, id, 3 * x + 1);
  flush(e);
}

/* A chunk: one array of results, honest unless a maps_ fault is forced. */
static void answer_chunk(vowp_encoder* e, const vowp_chunk* k) {
  msgpack_unpacked u;
  msgpack_packer* pk;
  uint32_t i, n = 0, extra = 0;
  if (forced_silence())
    return;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, k->items.data, k->items.len, NULL) ==
          MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY)
    n = u.data.via.array.size;
  vowp_results_begin(e, 1);
  pk = vowp_result_open(e, k->id);
  if (forced_is("maps_not_array")) {
    msgpack_pack_int64(pk, 7);
  } else {
    if (forced_is("maps_short") && n > 0)
      n--;
    if (forced_is("maps_long"))
      extra = 1;
    msgpack_pack_array(pk, n + extra);
    for (i = 0; i < n + extra; i++) {
      const msgpack_object* o = i < n ? &u.data.via.array.ptr[i] : NULL;
      msgpack_pack_int64(pk, o ? 3 * o->via.i64 + 1 : 0);
    }
  }
  vowp_batch_end(e);
  msgpack_unpacked_destroy(&u);
  flush(e);
}

int main(void) {
  vowp_decoder d;
  vowp_encoder e;
  const char* rate_env = getenv("HOSTILE_RATE");
  const char* seed_env = getenv("HOSTILE_SEED");
  unsigned rate = rate_env ? (unsigned)atoi(rate_env) : 50;
  forced = getenv("HOSTILE_FAULT");
  if (forced != NULL)
    rate = 0;
  if (getenv("VOW_WORKER_CHANNEL") != NULL &&
      strcmp(getenv("VOW_WORKER_CHANNEL"), "stdio") == 0)
    chan_in = 0, chan_out = 1;
  /* Never outlive the test, whatever it does. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1)
    return 1;
  alarm(300);
  rng_state = (seed_env ? strtoull(seed_env, NULL, 10) : 1) * 1000003u +
              (uint64_t)getpid();
  vowp_decoder_init(&d, NULL);
  vowp_encoder_init(&e);
  hello(&e);
  for (;;) {
    char* base;
    size_t room;
    ssize_t n;
    vowp_msg m;
    int rc;
    vowp_decoder_buffer(&d, &base, &room);
    if (room == 0)
      return 2;
    n = read(chan_in, base, room);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return 0;
    vowp_decoder_commit(&d, (size_t)n);
    while ((rc = vowp_decoder_next(&d, &m)) == 1) {
      vowp_task t;
      switch (m.type) {
        case VOWP_TASKS:
          while (vowp_next_task(&m.u.tasks.items, &t))
            answer(&e, t.id, arg_int(t.args), rate);
          break;
        case VOWP_MAPS: {
          vowp_chunk k;
          while (vowp_next_chunk(&m.u.maps.items, &k))
            answer_chunk(&e, &k);
          break;
        }
        case VOWP_PING:
          vowp_encode_pong(&e, m.u.ping.token);
          flush(&e);
          break;
        case VOWP_SHUTDOWN:
          return 0;
        default:
          break; /* CANCEL: every task here is quick */
      }
    }
    if (rc < 0)
      return 4;
  }
}
