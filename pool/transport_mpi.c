/* Workers on the other ranks of an MPI job. The channel (and in relay
 * mode the stderr) is a socketpair whose other end the MPI module's relay
 * thread carries to the worker's agent; exits come back from that thread
 * through the pool's async handle. Without relay, the worker's stderr is
 * its agent's, which mpirun shows. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpi_host.h"
#include "pool_internal.h"
#include "strv.h"
#include "transport.h"

typedef struct mpi_link {
  uv_async_t exits;      /* remote workers' exits, from the relay thread */
  unsigned live;         /* remote workers whose exit is still to come */
  uv_close_cb on_closed; /* set: close once live is 0 */
  char** remote_argv;
} mpi_link;

typedef struct exit_event {
  pworker* w;
  int64_t status;
  int sig;
} exit_event;

/* Every pool's exits, from the one relay thread. */
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static exit_event* events;
static size_t nevents, events_cap;

static unsigned mpi_slots(const vow_pool_options_t* o) {
  if (o != NULL && o->nlaunchers > 0)
    return 0; /* workers run on the job's ranks, not launchers */
  if (o != NULL && o->workers > 0)
    return o->workers;
  return vow__mpi_slots();
}

/* On the relay thread. */
static void on_remote_exit(void* user, int64_t status, int sig) {
  pworker* w = user;
  mpi_link* k = w->pool->link;
  pthread_mutex_lock(&events_mu);
  if (nevents == events_cap) {
    size_t cap = events_cap ? events_cap * 2 : 16;
    exit_event* n = vow__realloc(events, cap * sizeof(*n));
    if (n == NULL) {
      /* Cannot be dropped: the pool would wait for this exit forever. */
      fprintf(stderr, "vow: out of memory for a worker's exit\n");
      abort();
    }
    events = n;
    events_cap = cap;
  }
  events[nevents].w = w;
  events[nevents].status = status;
  events[nevents].sig = sig;
  nevents++;
  pthread_mutex_unlock(&events_mu);
  uv_async_send(&k->exits);
}

static void on_exits(uv_async_t* a) {
  vow_pool_t* pool = a->data;
  mpi_link* k = pool->link;
  exit_event mine[64];
  size_t n, i, j;
  do {
    n = 0;
    pthread_mutex_lock(&events_mu);
    for (i = 0, j = 0; i < nevents; i++)
      if (events[i].w->pool == pool && n < 64)
        mine[n++] = events[i];
      else
        events[j++] = events[i];
    nevents = j;
    pthread_mutex_unlock(&events_mu);
    for (i = 0; i < n; i++) {
      pworker* w = mine[i].w;
      if (--k->live == 0)
        uv_unref((uv_handle_t*)&k->exits);
      if (mine[i].status == -1 && w->why[0] == '\0') {
        snprintf(w->why, sizeof(w->why), "cannot start %s on MPI rank %d: %s",
                 pool->argv[0], vow__mpi_ops()->slot_rank(w->slot),
                 mine[i].sig < 0 ? strerror(-mine[i].sig) : "unknown error");
        mine[i].sig = 0;
      }
      vow__worker_exited(w, mine[i].status, mine[i].sig);
    }
  } while (n == 64);
  if (k->live == 0 && k->on_closed != NULL && !uv_is_closing((uv_handle_t*)a))
    uv_close((uv_handle_t*)a, k->on_closed);
}

static int mpi_open(vow_pool_t* pool, const vow_pool_options_t* o) {
  mpi_link* k = vow__calloc(1, sizeof(*k));
  int rc;
  pool->link = k;
  if (k == NULL || (k->remote_argv = vow__remote_argv(pool, o)) == NULL)
    return UV_ENOMEM;
  if ((rc = uv_async_init(pool->ctx->loop, &k->exits, on_exits)) != 0)
    return rc;
  k->exits.data = pool;
  /* Keeps the loop alive only while a remote worker may still exit. */
  uv_unref((uv_handle_t*)&k->exits);
  return 1;
}

static int mpi_start(pworker* w) {
  vow_pool_t* pool = w->pool;
  mpi_link* k = pool->link;
  int sv[2], ev[2] = {-1, -1}, err;
  bool relay = w->err_piped;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
      (relay && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ev) != 0)) {
    int rc = uv_translate_sys_error(errno);
    w->err_piped = false;
    snprintf(w->why, sizeof(w->why), "cannot make a channel: %s",
             uv_strerror(rc));
    return rc;
  }
  uv_pipe_open(&w->chan.pipe, sv[0]);
  if (relay)
    uv_pipe_open(&w->errp, ev[0]);
  err = relay                                         ? ev[1]
        : pool->opt.stderr_mode == VOW_STDERR_DISCARD ? VOW_MPI_ERR_DISCARD
                                                      : VOW_MPI_ERR_INHERIT;
  w->link_id = vow__mpi_ops()->start(w->slot, sv[1], err, k->remote_argv,
                                     pool->opt.cwd, on_remote_exit, w);
  if (w->link_id == 0) {
    close(sv[1]);
    if (relay)
      close(ev[1]);
    snprintf(w->why, sizeof(w->why), "cannot start a worker on an MPI rank: %s",
             uv_strerror(UV_ENOMEM));
    return UV_ENOMEM;
  }
  if (k->live++ == 0)
    uv_ref((uv_handle_t*)&k->exits);
  return 0;
}

static void mpi_kill(pworker* w) {
  vow__mpi_ops()->kill(w->link_id, SIGKILL);
}

/* Closed once the last remote worker's exit is in: until then the
 * handle is how that exit arrives. */
static void mpi_close(vow_pool_t* pool, uv_close_cb on_closed) {
  mpi_link* k = pool->link;
  k->on_closed = on_closed;
  if (k->live == 0 && !uv_is_closing((uv_handle_t*)&k->exits))
    uv_close((uv_handle_t*)&k->exits, on_closed);
}

static void mpi_free(vow_pool_t* pool) {
  mpi_link* k = pool->link;
  if (k == NULL)
    return;
  vow__strv_free(k->remote_argv);
  vow__free(k);
  pool->link = NULL;
}

const vow__transport vow__transport_mpi = {
    "mpi", mpi_slots, mpi_open, mpi_start, mpi_kill, mpi_close, mpi_free};
