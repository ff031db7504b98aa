/* mpi/mpi_link.h — what rank 0 and the node agents share: messages
 * between ranks, local channels (a socket to the pool, or to a worker)
 * relayed to and from a peer rank, and one pump that moves bytes both
 * ways without blocking and without spinning while idle.
 *
 * All MPI calls of a process are made by the one thread that runs its
 * pump (MPI_THREAD_SERIALIZED is all it needs). Every rank runs the same
 * build on the same kind of machine, so message heads travel as they lie
 * in memory. */
#ifndef VOW_MPI_LINK_H
#define VOW_MPI_LINK_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mpi.h>

#include "mpi_module.h"

/* The tag of every vow message on MPI_COMM_WORLD. */
#define VOW_MPI_TAG 7291

/* A worker's stderr travels as a channel of its own: its id with this
 * bit set. */
#define MCHAN_STDERR 0x80000000u

enum mpi_msg_kind {
  MM_HELLO = 1, /* agent → 0: a = worker slots it offers */
  MM_START,     /* 0 → agent: start a worker; a = argc, b = stderr (1:
                   relayed, VOW_MPI_ERR_*); payload: cwd, argv... */
  MM_DATA,      /* either way: channel bytes */
  MM_EOF,       /* 0 → agent: the pool closed its end */
  MM_KILL,      /* 0 → agent: a = signal */
  MM_EXIT,      /* agent → 0: a = status, b = signal */
  MM_QUIT       /* 0 → agent: stop everything and leave */
};

typedef struct mpi_head {
  uint32_t kind;
  uint32_t chan;
  int64_t a;
  int64_t b;
} mpi_head;

/* One relayed channel. */
typedef struct mchan {
  uint32_t id;
  int fd;   /* our end, non-blocking; -1 once closed */
  int rank; /* the peer rank its bytes go to */
  pid_t pid;
  bool in_eof;             /* nothing more to read from fd */
  bool shut_when_flushed;  /* then shut down our writing side */
  bool close_when_flushed; /* then close fd and forget the channel */
  bool exited;             /* rank 0: its worker's exit was reported */
  char* out;               /* bytes waiting to be written to fd */
  size_t out_off, out_len, out_cap;
  vow_mpi_exit_fn on_exit; /* rank 0 */
  void* user;
} mchan;

typedef struct msend {
  MPI_Request req;
  void* buf;
  size_t len;
} msend;

typedef void (*mpi_on_msg)(void* ud, int src, const mpi_head* h,
                           const char* payload, size_t n);

typedef struct mlink {
  mchan** chans;
  size_t nchans, chans_cap;
  msend* sends;
  size_t nsends, sends_cap;
  size_t send_bytes;   /* in sends not yet complete */
  long sleep_ns;       /* the next idle wait */
  uint64_t busy_at_ns; /* when something last happened */
  uint64_t idle_waits; /* counted for the docs' cost figures */
} mlink;

/* Sends a message (the payload is copied). Returns 0 or -1. */
int mlink_send(mlink* l, int rank, uint32_t kind, uint32_t chan, int64_t a,
               int64_t b, const void* payload, size_t n);
mchan* mlink_find(mlink* l, uint32_t id);
mchan* mlink_add(mlink* l, uint32_t id, int fd, int rank);
void mlink_remove(mlink* l, mchan* c);
/* Queues bytes for c's fd; dropped if the fd is closed. */
int mlink_queue_out(mchan* c, const void* p, size_t n);
/* Reads what c's fd holds now and sends it to c->rank. */
void mlink_drain(mlink* l, mchan* c);
/* One turn: waits for a channel, one of extra[] or a message (waiting
 * longer the longer nothing has happened, up to 1 ms), moves what is
 * ready and hands each message to on_msg. extra[i].revents is set. */
void mlink_turn(mlink* l, struct pollfd* extra, size_t nextra,
                mpi_on_msg on_msg, void* ud);
/* Waits until every send has completed. */
void mlink_flush(mlink* l);
void mlink_destroy(mlink* l);

#endif
