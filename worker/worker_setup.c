/* The Linux side of a worker's set-up, done after exec because libuv's
 * spawn has no hook before it: parent-death signal and a watch on the
 * channel's hang-up, resource limits, the channel's fds, and a crash
 * handler that reports from memory set aside in advance. */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "worker_internal.h"
#include "fdio.h"
#include "os.h"
#include "shm.h"

/* ---- crash reports --------------------------------------------------- */

static char crash_stack[64 * 1024]; /* the handler runs on its own stack */
static void* crash_frames[64];
static volatile uint64_t crash_task;
static const char* volatile crash_fn;

void vow__worker_crash_context(uint64_t task_id, const char* fn) {
  crash_task = task_id;
  crash_fn = fn;
}

/* Async-signal-safe formatting into a fixed buffer. */
static size_t put_str(char* buf, size_t at, size_t cap, const char* s) {
  while (*s && at + 1 < cap)
    buf[at++] = *s++;
  return at;
}

static size_t put_u64(char* buf, size_t at, size_t cap, uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v && n < 24);
  while (n > 0 && at + 1 < cap)
    buf[at++] = digits[--n];
  return at;
}

static void on_crash(int sig) {
  char line[512];
  size_t at = 0;
  int frames;
  const char* name = sig == SIGSEGV   ? "SIGSEGV"
                     : sig == SIGBUS  ? "SIGBUS"
                     : sig == SIGFPE  ? "SIGFPE"
                     : sig == SIGILL  ? "SIGILL"
                     : sig == SIGABRT ? "SIGABRT"
                                      : "signal";
  at = put_str(line, at, sizeof(line), "vow worker crash: ");
  at = put_str(line, at, sizeof(line), name);
  at = put_str(line, at, sizeof(line), " (");
  at = put_u64(line, at, sizeof(line), (uint64_t)sig);
  at = put_str(line, at, sizeof(line), ") in pid ");
  at = put_u64(line, at, sizeof(line), (uint64_t)getpid());
  if (crash_task) {
    at = put_str(line, at, sizeof(line), " running task ");
    at = put_u64(line, at, sizeof(line), crash_task);
    if (crash_fn) {
      at = put_str(line, at, sizeof(line), " (");
      at = put_str(line, at, sizeof(line), crash_fn);
      at = put_str(line, at, sizeof(line), ")");
    }
  }
  at = put_str(line, at, sizeof(line), "\nbacktrace:\n");
  if (write(2, line, at) < 0) {
    /* nothing more can be done from here */
  }
  frames = backtrace(crash_frames, 64);
  backtrace_symbols_fd(crash_frames, frames, 2);
  /* Die of the same signal, so the parent sees what happened. */
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_crash_handler(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
  struct sigaction sa;
  stack_t ss;
  size_t i;
  /* backtrace() loads libgcc on its first call, which allocates: do it
   * now, not in the handler. */
  backtrace(crash_frames, 1);
  ss.ss_sp = crash_stack;
  ss.ss_size = sizeof(crash_stack);
  ss.ss_flags = 0;
  sigaltstack(&ss, NULL);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_crash;
  sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    sigaction(sigs[i], &sa, NULL);
}

/* ---- limits ---------------------------------------------------------- */

static int apply_limits(const char* spec) {
  char buf[256], *item, *save = NULL;
  if (spec == NULL || *spec == '\0')
    return 0;
  snprintf(buf, sizeof(buf), "%s", spec);
  for (item = strtok_r(buf, ",", &save); item != NULL;
       item = strtok_r(NULL, ",", &save)) {
    struct rlimit rl;
    int resource;
    char* eq = strchr(item, '=');
    if (eq == NULL)
      goto bad;
    *eq = '\0';
    if (strcmp(item, "as") == 0)
      resource = RLIMIT_AS;
    else if (strcmp(item, "cpu") == 0)
      resource = RLIMIT_CPU;
    else if (strcmp(item, "nofile") == 0)
      resource = RLIMIT_NOFILE;
    else
      goto bad;
    rl.rlim_cur = rl.rlim_max = strtoull(eq + 1, NULL, 10);
    if (setrlimit(resource, &rl) != 0) {
      fprintf(stderr, "vow worker: cannot set limit %s=%s: %s\n", item, eq + 1,
              strerror(errno));
      return -1;
    }
  }
  return 0;
bad:
  fprintf(stderr,
          "vow worker: bad %s entry \"%s\" (want as=, cpu= or "
          "nofile=)\n",
          VOWP_ENV_LIMITS, item);
  return -1;
}

/* ---- the parent's end ------------------------------------------------ */

/* PR_SET_PDEATHSIG ends a local worker with its parent. A worker under a
 * launcher (ssh, srun: the stdio channel) has the launcher's side for a
 * parent, and learns that the parent is gone only as its channel hangs
 * up, which a worker busy in a task would see at the task's end, long
 * after. So there a thread waits for the hang-up alone (POLLIN is not
 * asked for: no byte is taken from the loop's reads) and ends the worker
 * then: nobody is left to read what it would send. It waits in slices of
 * HANGUP_POLL_MS: a poll holds the channel open while it sleeps, and a
 * worker that closes its channel must be seen to (the parent sees EOF);
 * between slices it checks that the descriptor is still the channel.
 * A local worker stays single-threaded: an exiting process with a second
 * thread is reaped only once that thread has been scheduled to die too. */
#define HANGUP_POLL_MS 400

/* The same thread says the worker is alive every heartbeat_ms (the
 * pool's liveness bound over 4, VOW_HEARTBEAT_MS): an unasked PONG with
 * token 0. A task that never yields cannot starve it, so only a worker
 * that is gone, frozen or cut off goes silent. Its frames and the main
 * thread's take turns on the channel (vow__worker_write). */
static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;
static int heartbeat_fd = -1;
static uint64_t heartbeat_ms;
static bool said_hello; /* the first frame is HELLO: none may go before */

int vow__worker_write(int fd, const void* data, size_t len) {
  int rc;
  pthread_mutex_lock(&chan_lock);
  rc = vowp_write_all(fd, data, len);
  said_hello = true;
  pthread_mutex_unlock(&chan_lock);
  return rc;
}

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The heartbeat's frame, made once when the watch starts. */
static char beat[16];
static size_t beat_len;

static void make_beat(void) {
  vowp_encoder e;
  const char* data;
  size_t len;
  vowp_encoder_init(&e);
  if (vowp_encode_pong(&e, 0) == VOWP_OK) {
    data = vowp_encoder_data(&e, &len);
    if (len <= sizeof(beat)) {
      memcpy(beat, data, len);
      beat_len = len;
    }
  }
  vowp_encoder_destroy(&e);
}

/* Returns 1 when it went, 0 when it may not yet (none goes before
 * HELLO), -1 when the channel is no longer ours to write to: the worker
 * closed it (and the number may now be another file's). */
static int send_heartbeat(const struct stat* out_was) {
  int sent = 0, rc = 0;
  struct stat out_now;
  pthread_mutex_lock(&chan_lock);
  if (fstat(heartbeat_fd, &out_now) != 0 || out_now.st_ino != out_was->st_ino ||
      out_now.st_dev != out_was->st_dev)
    sent = -1;
  else if (said_hello) {
    rc = vowp_write_all(heartbeat_fd, beat, beat_len);
    sent = 1;
  }
  pthread_mutex_unlock(&chan_lock);
  if (rc != 0)
    _exit(0); /* nobody is left to read what we would send */
  return sent;
}

bool vow__worker_on_link(void) {
  return heartbeat_ms > 0 && heartbeat_fd >= 0 && beat_len > 0;
}

bool vow__worker_nudge_link(void) {
  if (!vow__worker_on_link())
    return false;
  if (vow__worker_write(heartbeat_fd, beat, beat_len) != 0)
    _exit(0);
  return true;
}

static void* watch_hangup(void* arg) {
  int fd = (int)(intptr_t)arg;
  struct stat first, now, out;
  /* The first beat goes as soon as HELLO has: the pool watches only a
   * worker it has heard beat. */
  uint64_t last_beat = 0;
  int slice = HANGUP_POLL_MS;
  if (fstat(fd, &first) != 0 || fstat(heartbeat_fd, &out) != 0)
    return NULL;
  if (heartbeat_ms > 0 && heartbeat_ms / 2 < (uint64_t)slice)
    slice = heartbeat_ms / 2 > 0 ? (int)(heartbeat_ms / 2) : 1;
  if (heartbeat_ms > 0)
    slice = slice > 50 ? 50 : slice; /* until the first beat */
  for (;;) {
    short hangup = vow__os_hangup_events();
    struct pollfd p = {fd, hangup, 0};
    int n = poll(&p, 1, slice);
    if (n < 0 && errno != EINTR)
      return NULL;
    if (n > 0 && (p.revents & POLLNVAL))
      return NULL; /* closed by the worker itself */
    if (fstat(fd, &now) != 0 || now.st_ino != first.st_ino ||
        now.st_dev != first.st_dev)
      return NULL; /* closed, and the number taken by something else */
    if (n > 0 && (p.revents & (POLLHUP | hangup | POLLERR)))
      _exit(0);
    if (heartbeat_ms > 0 && beat_len > 0 &&
        monotonic_ms() - last_beat >= heartbeat_ms) {
      int sent = send_heartbeat(&out);
      if (sent < 0)
        return NULL;
      if (sent > 0) {
        last_beat = monotonic_ms();
        slice = heartbeat_ms / 2 < HANGUP_POLL_MS ? (int)(heartbeat_ms / 2)
                                                  : HANGUP_POLL_MS;
        if (slice < 1)
          slice = 1;
      }
    }
  }
}

static void start_hangup_watch(int fd, int out_fd) {
  pthread_attr_t at;
  pthread_t t;
  sigset_t all, old;
  const char* every = getenv(VOWP_ENV_HEARTBEAT);
  heartbeat_fd = out_fd;
  heartbeat_ms = every ? strtoull(every, NULL, 10) : 0;
  make_beat();
  if (pthread_attr_init(&at) != 0)
    return;
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 64 * 1024);
  /* Signals stay the task's: the thread blocks them all. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_create(&t, &at, watch_hangup, (void*)(intptr_t)fd);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&at);
}

/* ---- set-up ---------------------------------------------------------- */

static int make_blocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

/* Whether fd 1 is /dev/null (what a pool gives a worker whose stdout it
 * does not want). */
static bool stdout_is_null(void) {
  struct stat out, null;
  return fstat(1, &out) != 0 ||
         (stat("/dev/null", &null) == 0 && S_ISCHR(out.st_mode) &&
          out.st_rdev == null.st_rdev);
}

int vow__worker_setup(int* in_fd, int* out_fd) {
  const char* channel = getenv(VOWP_ENV_CHANNEL);
  const char* parent = getenv(VOWP_ENV_PARENT);
  if (channel == NULL) {
    fprintf(stderr,
            "vow worker: %s is not set; a worker is started by a "
            "vow pool\n",
            VOWP_ENV_CHANNEL);
    return -1;
  }
  /* If the parent dies, so do we; and if it died before this line, the
   * signal will never come, so check by hand. */
  vow__os_die_with_parent();
  if (parent != NULL && (pid_t)strtol(parent, NULL, 10) != getppid()) {
    fprintf(stderr, "vow worker: parent %s is gone\n", parent);
    return -1;
  }
  if (strcmp(channel, "stdio") == 0) {
    /* Under a launcher the channel is stdin/stdout: keep stdout for
     * frames on a new fd before fd 1 goes to stderr. */
    *in_fd = 0;
    *out_fd = dup(1);
  } else {
    *in_fd = *out_fd = (int)strtol(channel, NULL, 10);
    if (*in_fd < 3 || fcntl(*in_fd, F_GETFD) < 0) {
      fprintf(stderr, "vow worker: channel fd %s is not open\n", channel);
      return -1;
    }
  }
  if (*out_fd < 0 || make_blocking(*in_fd) != 0 ||
      make_blocking(*out_fd) != 0) {
    fprintf(stderr, "vow worker: cannot set up the channel: %s\n",
            strerror(errno));
    return -1;
  }
  /* A task's printf must never reach the channel (fd 1 under a
   * launcher), nor vanish: it goes to stderr unless the pool gave the
   * worker a stdout of its own (inherit_stdout). */
  if ((strcmp(channel, "stdio") == 0 || stdout_is_null()) && dup2(2, 1) < 0)
    return -1;
  /* A parent that stops reading must not kill us with SIGPIPE mid-write;
   * the write error says it instead. */
  signal(SIGPIPE, SIG_IGN);
  if (apply_limits(getenv(VOWP_ENV_LIMITS)) != 0)
    return -1;
  install_crash_handler();
  if (strcmp(channel, "stdio") == 0)
    start_hangup_watch(*in_fd, *out_fd);
  return 0;
}

/* A local worker's side socket for shared-memory segments (VOW_SHM_FD,
 * "FD,THRESHOLD"), announced to the parent before the HELLO: -1 when
 * there is none (under a launcher, or from a parent that offers none). */
int vow__worker_shm_sock(uint64_t* threshold) {
  const char* spec = getenv(VOWP_ENV_SHM);
  const char* channel = getenv(VOWP_ENV_CHANNEL);
  char* end;
  long fd;
  int type = 0;
  socklen_t tlen = sizeof(type);
  if (spec == NULL || channel == NULL || strcmp(channel, "stdio") == 0)
    return -1;
  fd = strtol(spec, &end, 10);
  if (fd < 3 || *end != ',')
    return -1;
  *threshold = strtoull(end + 1, NULL, 10);
  if (*threshold == 0 ||
      getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
      type != SOCK_SEQPACKET ||
      vow__shm_send((int)fd, VOW__SHM_ID_HELLO, -1) != 0)
    return -1;
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  return (int)fd;
}
