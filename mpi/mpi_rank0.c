/* mpi/mpi_rank0.c — rank 0: joins the job, learns the agents' slots,
 * and runs the relay thread between the pools' channels and the agents.
 *
 * The pools' loops never call MPI: they hand starts and kills to the
 * relay thread through a locked list and an eventfd, and the thread
 * reports exits through the callback each start gave. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_agent.h"
#include "mpi_link.h"
#include "os.h"

enum { CMD_START, CMD_KILL };

typedef struct cmd {
  int kind;
  uint32_t chan;
  int rank;
  int fd;
  int err_fd; /* or VOW_MPI_ERR_* */
  int sig;
  char* payload;
  size_t n;
  int64_t argc;
  vow_mpi_exit_fn on_exit;
  void* user;
} cmd;

static struct {
  pthread_t thread;
  bool running;
  pthread_mutex_t mu;
  int wake_fd;
  cmd* cmds;
  size_t ncmds, cmds_cap;
  bool quit;
  int size;
  int* slot_ranks;
  unsigned nslots;
  uint32_t next_chan;
  mlink link;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1};

static void on_agent_msg(void* ud, int src, const mpi_head* h,
                         const char* payload, size_t n) {
  mchan* c = mlink_find(&R.link, h->chan);
  (void)ud;
  (void)src;
  if (c == NULL)
    return;
  if (h->kind == MM_DATA) {
    mlink_queue_out(c, payload, n);
  } else if (h->kind == MM_EOF) {
    /* The worker closed its channel: so does ours, after its bytes. */
    c->shut_when_flushed = true;
    mlink_queue_out(c, NULL, 0);
  } else if (h->kind == MM_EXIT && !c->exited) {
    mchan* err = mlink_find(&R.link, h->chan | MCHAN_STDERR);
    c->exited = true;
    c->on_exit(c->user, h->a, (int)h->b);
    /* Deliver what the worker wrote, then close: the pool sees EOF. */
    c->in_eof = true;
    c->close_when_flushed = true;
    mlink_queue_out(c, NULL, 0);
    if (err != NULL) {
      err->close_when_flushed = true;
      mlink_queue_out(err, NULL, 0);
    }
  }
}

static void run_cmd(cmd* k) {
  mchan* c;
  if (k->kind == CMD_KILL) {
    c = mlink_find(&R.link, k->chan);
    if (c != NULL && !c->exited)
      mlink_send(&R.link, c->rank, MM_KILL, c->id, k->sig, 0, NULL, 0);
    return;
  }
  /* The channel and its stderr are ours from here: each fd is closed
   * exactly once, by mlink_remove or below. */
  c = mlink_add(&R.link, k->chan, k->fd, k->rank);
  if (c == NULL)
    close(k->fd);
  if (k->err_fd >= 0) {
    mchan* err =
        c ? mlink_add(&R.link, k->chan | MCHAN_STDERR, k->err_fd, k->rank)
          : NULL;
    if (err != NULL)
      err->in_eof = true; /* the pool never writes to a stderr */
    else
      close(k->err_fd);
    if (err == NULL && c != NULL) {
      mlink_remove(&R.link, c);
      c = NULL;
    }
  }
  if (c != NULL &&
      mlink_send(&R.link, k->rank, MM_START, k->chan, k->argc,
                 k->err_fd >= 0 ? 1 : k->err_fd, k->payload, k->n) != 0) {
    mchan* err = mlink_find(&R.link, k->chan | MCHAN_STDERR);
    if (err != NULL)
      mlink_remove(&R.link, err);
    mlink_remove(&R.link, c);
    c = NULL;
  }
  if (c == NULL) {
    k->on_exit(k->user, -1, -ENOMEM);
  } else {
    c->on_exit = k->on_exit;
    c->user = k->user;
  }
  free(k->payload);
}

static void* relay_main(void* arg) {
  struct pollfd wake = {R.wake_fd, POLLIN, 0};
  bool quit = false;
  (void)arg;
  vow__os_timer_slack(1000UL); /* the idle waits are microseconds */
  while (!quit) {
    mlink_turn(&R.link, &wake, 1, on_agent_msg, NULL);
    if (wake.revents & POLLIN) {
      uint64_t v;
      cmd* cmds;
      size_t n, i;
      if (read(R.wake_fd, &v, sizeof(v)) < 0) {
      }
      pthread_mutex_lock(&R.mu);
      cmds = R.cmds;
      n = R.ncmds;
      R.cmds = NULL;
      R.ncmds = R.cmds_cap = 0;
      quit = R.quit;
      pthread_mutex_unlock(&R.mu);
      for (i = 0; i < n; i++)
        run_cmd(&cmds[i]);
      free(cmds);
    }
  }
  for (int r = 1; r < R.size; r++)
    mlink_send(&R.link, r, MM_QUIT, 0, 0, 0, NULL, 0);
  mlink_flush(&R.link);
  return NULL;
}

static int push(const cmd* k) {
  uint64_t one = 1;
  pthread_mutex_lock(&R.mu);
  if (R.ncmds == R.cmds_cap) {
    size_t cap = R.cmds_cap ? R.cmds_cap * 2 : 16;
    cmd* n = realloc(R.cmds, cap * sizeof(*n));
    if (n == NULL) {
      pthread_mutex_unlock(&R.mu);
      return -1;
    }
    R.cmds = n;
    R.cmds_cap = cap;
  }
  R.cmds[R.ncmds++] = *k;
  pthread_mutex_unlock(&R.mu);
  if (write(R.wake_fd, &one, sizeof(one)) < 0) {
  }
  return 0;
}

/* Slots go round the ranks, so a pool that starts few workers still
 * spreads them. */
static int spread_slots(const unsigned* offered) {
  unsigned left = 0, at = 0;
  int r;
  for (r = 1; r < R.size; r++)
    left += offered[r];
  R.slot_ranks = malloc((left ? left : 1) * sizeof(int));
  if (R.slot_ranks == NULL)
    return -1;
  R.nslots = left;
  while (at < left)
    for (r = 1; r < R.size; r++)
      if (offered[r] > 0 && at < left) {
        unsigned used = 0, k;
        for (k = 0; k < at; k++)
          used += R.slot_ranks[k] == r;
        if (used < offered[r])
          R.slot_ranks[at++] = r;
      }
  return 0;
}

static int mpi_join(unsigned* nslots, int* agent_status, char* err,
                    size_t errlen) {
  int provided = 0, rank = 0, r;
  unsigned* offered;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) !=
      MPI_SUCCESS) {
    snprintf(err, errlen, "MPI_Init_thread failed");
    return -1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R.size);
  if (rank != 0) {
    *agent_status = vow__mpi_agent_run(rank);
    return 1;
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    snprintf(err, errlen,
             "this MPI gives thread level %d; vow needs "
             "MPI_THREAD_SERIALIZED",
             provided);
    return -1;
  }
  offered = calloc((size_t)R.size, sizeof(*offered));
  if (offered == NULL)
    return -1;
  for (r = 1; r < R.size; r++) {
    mpi_head h;
    MPI_Status st;
    MPI_Recv(&h, (int)sizeof(h), MPI_BYTE, MPI_ANY_SOURCE, VOW_MPI_TAG,
             MPI_COMM_WORLD, &st);
    if (h.kind == MM_HELLO && st.MPI_SOURCE > 0 && st.MPI_SOURCE < R.size)
      offered[st.MPI_SOURCE] = (unsigned)h.a;
  }
  r = spread_slots(offered);
  free(offered);
  R.wake_fd = vow__os_wake_fd();
  if (r != 0 || R.wake_fd < 0 ||
      pthread_create(&R.thread, NULL, relay_main, NULL) != 0) {
    snprintf(err, errlen, "cannot start the MPI relay: %s", strerror(errno));
    return -1;
  }
  R.running = true;
  *nslots = R.nslots;
  return 0;
}

/* A pool with more workers than slots puts the rest round again. */
static int mpi_slot_rank(unsigned slot) {
  return R.nslots > 0 ? R.slot_ranks[slot % R.nslots] : 1;
}

/* The payload of START: cwd, then each argument, each ending in NUL. */
static char* pack_start(char* const* argv, const char* cwd, size_t* n,
                        int64_t* argc) {
  size_t len = strlen(cwd ? cwd : "") + 1, i, at;
  char* p;
  for (i = 0; argv[i] != NULL; i++)
    len += strlen(argv[i]) + 1;
  *argc = (int64_t)i;
  p = malloc(len);
  if (p == NULL)
    return NULL;
  at = (size_t)sprintf(p, "%s", cwd ? cwd : "") + 1;
  for (i = 0; argv[i] != NULL; i++)
    at += (size_t)sprintf(p + at, "%s", argv[i]) + 1;
  *n = len;
  return p;
}

static uint32_t mpi_start(unsigned slot, int fd, int err_fd, char* const* argv,
                          const char* cwd, vow_mpi_exit_fn on_exit,
                          void* user) {
  cmd k = {CMD_START, 0,   mpi_slot_rank(slot), fd, err_fd, 0, NULL, 0, 0,
           on_exit,   user};
  k.payload = pack_start(argv, cwd, &k.n, &k.argc);
  if (k.payload == NULL)
    return 0;
  pthread_mutex_lock(&R.mu);
  k.chan = ++R.next_chan & ~MCHAN_STDERR;
  pthread_mutex_unlock(&R.mu);
  if (push(&k) != 0) {
    free(k.payload);
    return 0;
  }
  return k.chan;
}

static void mpi_kill(uint32_t chan, int sig) {
  cmd k = {CMD_KILL, chan, 0, -1, -1, sig, NULL, 0, 0, NULL, NULL};
  push(&k);
}

static void mpi_finish(void) {
  uint64_t one = 1;
  if (!R.running)
    return;
  pthread_mutex_lock(&R.mu);
  R.quit = true;
  pthread_mutex_unlock(&R.mu);
  if (write(R.wake_fd, &one, sizeof(one)) < 0) {
  }
  pthread_join(R.thread, NULL);
  R.running = false;
  mlink_destroy(&R.link);
  MPI_Finalize();
}

static const vow_mpi_ops ops = {VOW_MPI_ABI, mpi_join, mpi_slot_rank,
                                mpi_start,   mpi_kill, mpi_finish};

__attribute__((visibility("default"))) const vow_mpi_ops* vow_mpi_module_v1(
    void) {
  return &ops;
}
