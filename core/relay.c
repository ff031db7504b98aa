/* Workers' stderr lines on their way to ours, without ever blocking the
 * loop.
 *
 * Our stderr may be a pipe that nobody reads (a host whose log consumer
 * hung): a write(2) there blocks, and on the loop thread it would stop
 * every timer and timeout. Setting O_NONBLOCK on fd 2 is not ours to do
 * (the file description is shared with the host and its children). So the
 * loop only appends whole lines to a bounded buffer, and one writer thread
 * per process does the blocking writes. When the buffer is full, lines are
 * dropped and counted, and a note says how many once the writer catches
 * up. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define RELAY_BYTES ((size_t)1 << 20)

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;    /* the writer: something to write */
  pthread_cond_t drained; /* flushers: the buffer is empty */
  char* buf;              /* RELAY_BYTES, a ring */
  size_t head, len;
  size_t dropped; /* lines dropped since the last note */
  bool writing;   /* the writer holds bytes taken out of the ring */
  bool started;
  bool failed; /* no thread could be started: write inline */
} relay = {PTHREAD_MUTEX_INITIALIZER,
           PTHREAD_COND_INITIALIZER,
           PTHREAD_COND_INITIALIZER,
           NULL,
           0,
           0,
           0,
           false,
           false,
           false};

static void write_fully(const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(2, p, n);
    if (w <= 0)
      return; /* our stderr is gone: nothing to relay to */
    p += w;
    n -= (size_t)w;
  }
}

static void* writer(void* arg) {
  char chunk[16384];
  (void)arg;
  pthread_mutex_lock(&relay.lock);
  for (;;) {
    size_t n;
    while (relay.len == 0 && relay.dropped == 0)
      pthread_cond_wait(&relay.wake, &relay.lock);
    n = relay.len < sizeof(chunk) ? relay.len : sizeof(chunk);
    if (n > 0) {
      size_t first = RELAY_BYTES - relay.head;
      if (first > n)
        first = n;
      memcpy(chunk, relay.buf + relay.head, first);
      memcpy(chunk + first, relay.buf, n - first);
      relay.head = (relay.head + n) % RELAY_BYTES;
      relay.len -= n;
      relay.writing = true;
      pthread_mutex_unlock(&relay.lock);
      write_fully(chunk, n);
      pthread_mutex_lock(&relay.lock);
      relay.writing = false;
    } else {
      int len = snprintf(chunk, sizeof(chunk),
                         "vow: %zu lines of worker stderr dropped: our "
                         "stderr was not being read\n",
                         relay.dropped);
      relay.dropped = 0;
      relay.writing = true;
      pthread_mutex_unlock(&relay.lock);
      write_fully(chunk, (size_t)len);
      pthread_mutex_lock(&relay.lock);
      relay.writing = false;
    }
    if (relay.len == 0 && relay.dropped == 0)
      pthread_cond_broadcast(&relay.drained);
  }
  return NULL;
}

static void flush_at_exit(void) {
  vow__relay_flush(1000);
}

/* Under relay.lock. */
static bool start_writer(void) {
  pthread_t th;
  pthread_attr_t attr;
  if (relay.started)
    return true;
  if (relay.failed)
    return false;
  relay.buf = vow__malloc(RELAY_BYTES);
  if (relay.buf != NULL && pthread_attr_init(&attr) == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, writer, NULL) == 0) {
      relay.started = true;
      atexit(flush_at_exit);
    }
    pthread_attr_destroy(&attr);
  }
  if (!relay.started) {
    vow__free(relay.buf);
    relay.buf = NULL;
    relay.failed = true;
  }
  return relay.started;
}

static void put(const char* p, size_t n) {
  size_t at = (relay.head + relay.len) % RELAY_BYTES;
  size_t first = RELAY_BYTES - at;
  if (first > n)
    first = n;
  memcpy(relay.buf + at, p, first);
  memcpy(relay.buf, p + first, n - first);
  relay.len += n;
}

void vow__relay_line(const char* head, size_t hlen, const char* line,
                     size_t len) {
  bool newline = len > 0 && line[len - 1] == '\n';
  size_t need = hlen + len + (newline ? 0 : 1);
  pthread_mutex_lock(&relay.lock);
  if (!start_writer()) {
    pthread_mutex_unlock(&relay.lock);
    return; /* no memory or threads: the line is lost, the loop is not */
  }
  if (RELAY_BYTES - relay.len < need) {
    relay.dropped++;
  } else {
    put(head, hlen);
    put(line, len);
    if (!newline)
      put("\n", 1);
  }
  pthread_cond_signal(&relay.wake);
  pthread_mutex_unlock(&relay.lock);
}

void vow__relay_flush(uint64_t max_ms) {
  struct timespec until;
  pthread_mutex_lock(&relay.lock);
  if (!relay.started) {
    pthread_mutex_unlock(&relay.lock);
    return;
  }
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(max_ms / 1000);
  until.tv_nsec += (long)(max_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (relay.len > 0 || relay.dropped > 0 || relay.writing)
    if (pthread_cond_timedwait(&relay.drained, &relay.lock, &until) != 0)
      break;
  pthread_mutex_unlock(&relay.lock);
}
