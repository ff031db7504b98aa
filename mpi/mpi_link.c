/* mpi/mpi_link.c — the pump shared by rank 0 and the node agents. */
#include "mpi_link.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MPI_TAG_VOW VOW_MPI_TAG
#define READ_CHUNK 65536
/* Past this much in unfinished sends, stop reading channels: the pool's
 * own in-flight limits keep far below it, but a runaway peer must not
 * grow our memory without bound. */
#define MAX_SEND_BYTES ((size_t)64 << 20)
/* No MPI call can wake a poll, so a rank that waits must look again
 * from time to time: after a spell of t with nothing to do it waits
 * t / IDLE_FRACTION, from 1 us up to MAX_SLEEP_NS. A message is thus
 * seen at most about 1/16 of the quiet time late (at worst 1 ms), and an
 * idle rank wakes a thousand times a second for a few microseconds each.
 * (A ramp by count of idle turns instead settles into a bad equilibrium
 * in ping-pong: slow replies make long sleeps make slow replies.) */
#define MAX_SLEEP_NS 1000000L
#define MIN_SLEEP_NS 1000L
#define IDLE_FRACTION 16
/* While a send is unfinished MPI needs us to call in to move it on. */
#define SENDING_SLEEP_NS 50000L

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int post(mlink* l, int rank, void* buf, size_t len) {
  msend* s;
  if (l->nsends == l->sends_cap) {
    size_t cap = l->sends_cap ? l->sends_cap * 2 : 16;
    msend* n = realloc(l->sends, cap * sizeof(*n));
    if (n == NULL) {
      free(buf);
      return -1;
    }
    l->sends = n;
    l->sends_cap = cap;
  }
  s = &l->sends[l->nsends];
  if (MPI_Isend(buf, (int)len, MPI_BYTE, rank, MPI_TAG_VOW, MPI_COMM_WORLD,
                &s->req) != MPI_SUCCESS) {
    free(buf);
    return -1;
  }
  s->buf = buf;
  s->len = len;
  l->nsends++;
  l->send_bytes += len;
  return 0;
}

int mlink_send(mlink* l, int rank, uint32_t kind, uint32_t chan, int64_t a,
               int64_t b, const void* payload, size_t n) {
  mpi_head h = {kind, chan, a, b};
  char* buf = malloc(sizeof(h) + n);
  if (buf == NULL)
    return -1;
  memcpy(buf, &h, sizeof(h));
  if (n > 0)
    memcpy(buf + sizeof(h), payload, n);
  return post(l, rank, buf, sizeof(h) + n);
}

static bool progress_sends(mlink* l) {
  size_t i, k = 0;
  bool any = false;
  for (i = 0; i < l->nsends; i++) {
    int done = 0;
    MPI_Test(&l->sends[i].req, &done, MPI_STATUS_IGNORE);
    if (done) {
      l->send_bytes -= l->sends[i].len;
      free(l->sends[i].buf);
      any = true;
    } else {
      l->sends[k++] = l->sends[i];
    }
  }
  l->nsends = k;
  return any;
}

void mlink_flush(mlink* l) {
  while (l->nsends > 0) {
    struct timespec ts = {0, 20000};
    if (!progress_sends(l))
      nanosleep(&ts, NULL);
  }
}

mchan* mlink_find(mlink* l, uint32_t id) {
  size_t i;
  for (i = 0; i < l->nchans; i++)
    if (l->chans[i]->id == id)
      return l->chans[i];
  return NULL;
}

mchan* mlink_add(mlink* l, uint32_t id, int fd, int rank) {
  mchan* c;
  if (l->nchans == l->chans_cap) {
    size_t cap = l->chans_cap ? l->chans_cap * 2 : 16;
    mchan** n = realloc(l->chans, cap * sizeof(*n));
    if (n == NULL)
      return NULL;
    l->chans = n;
    l->chans_cap = cap;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  /* The pump must never block on one channel while others wait. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  c->id = id;
  c->fd = fd;
  c->rank = rank;
  l->chans[l->nchans++] = c;
  return c;
}

void mlink_remove(mlink* l, mchan* c) {
  size_t i;
  for (i = 0; i < l->nchans; i++)
    if (l->chans[i] == c) {
      l->chans[i] = l->chans[--l->nchans];
      break;
    }
  if (c->fd >= 0)
    close(c->fd);
  free(c->out);
  free(c);
}

static void flush_out(mchan* c) {
  while (c->fd >= 0 && c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->out_off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      /* The reader is gone: what it did not take is of no use. */
      c->out_off = c->out_len;
    }
  }
  c->out_off = c->out_len = 0;
  if (c->fd >= 0 && c->shut_when_flushed) {
    shutdown(c->fd, SHUT_WR);
    c->shut_when_flushed = false;
  }
  if (c->fd >= 0 && c->close_when_flushed) {
    close(c->fd);
    c->fd = -1;
  }
}

int mlink_queue_out(mchan* c, const void* p, size_t n) {
  if (c->fd < 0)
    return 0;
  if (n == 0) {
    flush_out(c);
    return 0;
  }
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 65536;
    char* b;
    while (cap < c->out_len + n)
      cap *= 2;
    b = realloc(c->out, cap);
    if (b == NULL)
      return -1;
    c->out = b;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  flush_out(c);
  return 0;
}

void mlink_drain(mlink* l, mchan* c) {
  int chunks;
  for (chunks = 0; chunks < 16 && c->fd >= 0 && !c->in_eof; chunks++) {
    mpi_head h = {MM_DATA, c->id, 0, 0};
    char* buf = malloc(sizeof(h) + READ_CHUNK);
    ssize_t n;
    if (buf == NULL)
      return;
    n = read(c->fd, buf + sizeof(h), READ_CHUNK);
    if (n > 0) {
      memcpy(buf, &h, sizeof(h));
      post(l, c->rank, buf, sizeof(h) + (size_t)n);
      if (n < READ_CHUNK)
        return;
      continue;
    }
    free(buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return;
    c->in_eof = true; /* closed, or an error that will not go away */
    mlink_send(l, c->rank, MM_EOF, c->id, 0, 0, NULL, 0);
  }
}

void mlink_turn(mlink* l, struct pollfd* extra, size_t nextra,
                mpi_on_msg on_msg, void* ud) {
  size_t n = l->nchans, i;
  struct pollfd stack[64];
  struct pollfd* pf =
      n + nextra <= 64 ? stack : malloc((n + nextra) * sizeof(*pf));
  struct timespec ts = {0, l->sleep_ns};
  bool busy = false, reading = l->send_bytes < MAX_SEND_BYTES;
  int ready;
  if (pf == NULL)
    return;
  for (i = 0; i < n; i++) {
    mchan* c = l->chans[i];
    pf[i].fd = c->fd;
    pf[i].events = (short)((reading && !c->in_eof ? POLLIN : 0) |
                           (c->out_len > c->out_off ? POLLOUT : 0));
    pf[i].revents = 0;
  }
  for (i = 0; i < nextra; i++) {
    pf[n + i] = extra[i];
    pf[n + i].revents = 0;
  }
  if (l->sleep_ns > 0)
    l->idle_waits++;
  ready = ppoll(pf, n + nextra, &ts, NULL);
  if (ready > 0) {
    busy = true;
    for (i = 0; i < n; i++) {
      mchan* c = l->chans[i];
      if (pf[i].revents == 0 || pf[i].fd != c->fd)
        continue;
      if (pf[i].events & POLLIN)
        mlink_drain(l, c);
      if (c->out_len > c->out_off)
        flush_out(c);
    }
  }
  for (i = 0; i < nextra; i++)
    extra[i].revents = ready > 0 ? pf[n + i].revents : 0;
  if (pf != stack)
    free(pf);
  if (progress_sends(l))
    busy = true;
  for (;;) {
    int flag = 0, count = 0;
    MPI_Status st;
    char* buf;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_TAG_VOW, MPI_COMM_WORLD, &flag, &st);
    if (!flag)
      break;
    MPI_Get_count(&st, MPI_BYTE, &count);
    buf = malloc(count > 0 ? (size_t)count : 1);
    if (buf == NULL)
      break;
    MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, MPI_TAG_VOW, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    if ((size_t)count >= sizeof(mpi_head)) {
      mpi_head h;
      memcpy(&h, buf, sizeof(h));
      on_msg(ud, st.MPI_SOURCE, &h, buf + sizeof(h), (size_t)count - sizeof(h));
    }
    free(buf);
    busy = true;
  }
  /* Channels whose fd was closed once flushed are done with. */
  for (i = 0; i < l->nchans;)
    if (l->chans[i]->fd < 0 && l->chans[i]->close_when_flushed)
      mlink_remove(l, l->chans[i]);
    else
      i++;
  if (busy) {
    l->busy_at_ns = now_ns();
    l->sleep_ns = 0;
  } else {
    uint64_t quiet = now_ns() - l->busy_at_ns;
    l->sleep_ns = (long)(quiet / IDLE_FRACTION);
    if (l->sleep_ns < MIN_SLEEP_NS)
      l->sleep_ns = MIN_SLEEP_NS;
    if (l->sleep_ns > MAX_SLEEP_NS)
      l->sleep_ns = MAX_SLEEP_NS;
  }
  if (l->nsends > 0 && l->sleep_ns > SENDING_SLEEP_NS)
    l->sleep_ns = SENDING_SLEEP_NS;
}

void mlink_destroy(mlink* l) {
  while (l->nchans > 0)
    mlink_remove(l, l->chans[0]);
  free(l->chans);
  mlink_flush(l);
  free(l->sends);
  memset(l, 0, sizeof(*l));
}
