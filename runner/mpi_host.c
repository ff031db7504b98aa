/* runner/mpi_host.c — finds out whether this process is a rank of an MPI
 * job, loads the MPI module if so, and carries remote workers' exits from
 * the module's relay thread to the loops of the pools they belong to. */
#include "mpi_host.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_module.h"
#include "pool_internal.h"

#ifndef VOW_MPI_MODULE_BUILD
#define VOW_MPI_MODULE_BUILD ""
#endif
#ifndef VOW_MPI_MODULE_INSTALL
#define VOW_MPI_MODULE_INSTALL ""
#endif

typedef struct exit_event {
  pworker* w;
  int64_t status;
  int sig;
} exit_event;

static pthread_once_t join_once = PTHREAD_ONCE_INIT;
static const vow_mpi_ops* ops;
static unsigned nslots;
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static exit_event* events;
static size_t nevents, events_cap;

/* The launcher's word for the job's size: Open MPI's, else PMI's (MPICH,
 * Slurm's srun). */
static int job_size(void) {
  const char* s = getenv("OMPI_COMM_WORLD_SIZE");
  if (s == NULL)
    s = getenv("PMI_SIZE");
  return s != NULL ? atoi(s) : 0;
}

static void* try_load(const char* path, char* why, size_t whylen) {
  void* h;
  if (path == NULL || path[0] == '\0')
    return NULL;
  /* Global: MPI's own components are loaded later and look for libmpi's
   * symbols among the global ones. */
  h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (h == NULL && why[0] == '\0')
    snprintf(why, whylen, "%s", dlerror());
  return h;
}

/* Where the module may be: named by VOW_MPI_MODULE; beside the object
 * holding this code, or in its vow/ directory (an installed libvow.so);
 * in the build tree; in the install tree. */
static void* load_module(char* why, size_t whylen) {
  char path[PATH_MAX];
  Dl_info info;
  void* h = try_load(getenv("VOW_MPI_MODULE"), why, whylen);
  if (h == NULL && dladdr((void*)vow__mpi_join, &info) != 0 &&
      info.dli_fname != NULL) {
    const char* slash = strrchr(info.dli_fname, '/');
    int dir = slash ? (int)(slash - info.dli_fname) : 1;
    const char* base = slash ? info.dli_fname : ".";
    snprintf(path, sizeof(path), "%.*s/libvow-mpi.so", dir, base);
    if (access(path, R_OK) == 0)
      h = try_load(path, why, whylen);
    snprintf(path, sizeof(path), "%.*s/vow/libvow-mpi.so", dir, base);
    if (h == NULL && access(path, R_OK) == 0)
      h = try_load(path, why, whylen);
  }
  if (h == NULL && access(VOW_MPI_MODULE_BUILD, R_OK) == 0)
    h = try_load(VOW_MPI_MODULE_BUILD, why, whylen);
  if (h == NULL && access(VOW_MPI_MODULE_INSTALL, R_OK) == 0)
    h = try_load(VOW_MPI_MODULE_INSTALL, why, whylen);
  if (h == NULL && why[0] == '\0')
    snprintf(why, whylen, "libvow-mpi.so was not built or installed");
  return h;
}

static void finish(void) {
  ops->finish();
}

static void join(void) {
  char why[512] = "";
  const char* off = getenv("VOW_MPI");
  int size = job_size();
  void* h;
  vow_mpi_entry_fn entry;
  const vow_mpi_ops* o;
  if (getenv("VOW_WORKER_CHANNEL") != NULL || size < 2 ||
      (off != NULL && strcmp(off, "0") == 0))
    return;
  h = load_module(why, sizeof(why));
  entry = h ? (vow_mpi_entry_fn)dlsym(h, VOW_MPI_ENTRY) : NULL;
  o = entry ? entry() : NULL;
  if (o == NULL || o->abi != VOW_MPI_ABI) {
    if (h != NULL && why[0] == '\0')
      snprintf(why, sizeof(why), "the module is from another vow build");
    fprintf(stderr,
            "vow: this process is one of %d MPI ranks, but the MPI "
            "transport cannot be used (%s): each rank runs on its own with "
            "local workers\n",
            size, why);
    return;
  }
  /* Programs this rank starts (commands, other vow programs) inherit the
   * launcher's variables but are not ranks: they must not join. Set now,
   * before MPI starts threads of its own. */
  setenv("VOW_MPI", "0", 1);
  if (o->join(&nslots, why, sizeof(why)) != 0) {
    fprintf(stderr, "vow: cannot join the MPI job (%s): local workers\n", why);
    return;
  }
  ops = o;
  atexit(finish);
}

bool vow__mpi_join(void) {
  pthread_once(&join_once, join);
  return ops != NULL;
}

unsigned vow__mpi_slots(void) {
  return nslots;
}

/* On the relay thread. */
static void on_remote_exit(void* user, int64_t status, int sig) {
  pworker* w = user;
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
  uv_async_send(&w->pool->mpi_async);
}

uint32_t vow__mpi_start(pworker* w, int fd, int err_fd) {
  vow_pool_t* pool = w->pool;
  int err = err_fd >= 0                                   ? err_fd
            : pool->opt.stderr_mode == VOW_STDERR_DISCARD ? VOW_MPI_ERR_DISCARD
                                                          : VOW_MPI_ERR_INHERIT;
  uint32_t chan = ops->start(w->slot, fd, err, pool->remote_argv, pool->opt.cwd,
                             on_remote_exit, w);
  if (chan == 0) {
    close(fd);
    if (err_fd >= 0)
      close(err_fd);
    return 0;
  }
  if (pool->mpi_live++ == 0)
    uv_ref((uv_handle_t*)&pool->mpi_async);
  return chan;
}

void vow__mpi_kill(uint32_t chan, int sig) {
  ops->kill(chan, sig);
}

static void on_exits(uv_async_t* a) {
  vow_pool_t* pool = a->data;
  exit_event mine[64];
  size_t n, i, k;
  do {
    n = 0;
    pthread_mutex_lock(&events_mu);
    for (i = 0, k = 0; i < nevents; i++)
      if (events[i].w->pool == pool && n < 64)
        mine[n++] = events[i];
      else
        events[k++] = events[i];
    nevents = k;
    pthread_mutex_unlock(&events_mu);
    for (i = 0; i < n; i++) {
      pworker* w = mine[i].w;
      if (--pool->mpi_live == 0)
        uv_unref((uv_handle_t*)&pool->mpi_async);
      if (mine[i].status == -1 && w->why[0] == '\0') {
        snprintf(w->why, sizeof(w->why), "cannot start %s on MPI rank %d: %s",
                 pool->argv[0], ops->slot_rank(w->slot),
                 mine[i].sig < 0 ? strerror(-mine[i].sig) : "unknown error");
        mine[i].sig = 0;
      }
      vow__worker_exited(w, mine[i].status, mine[i].sig);
    }
  } while (n == 64);
  if (pool->mpi_live == 0 && pool->mpi_on_closed != NULL &&
      !uv_is_closing((uv_handle_t*)a))
    uv_close((uv_handle_t*)a, pool->mpi_on_closed);
}

int vow__mpi_pool_init(vow_pool_t* pool) {
  int rc = uv_async_init(pool->ctx->loop, &pool->mpi_async, on_exits);
  if (rc != 0)
    return rc;
  pool->mpi_async.data = pool;
  /* Keeps the loop alive only while a remote worker may still exit. */
  uv_unref((uv_handle_t*)&pool->mpi_async);
  return 0;
}

/* Closed once the last remote worker's exit is in: until then the
 * handle is how that exit arrives. */
void vow__mpi_pool_close(vow_pool_t* pool, void (*on_closed)(uv_handle_t*)) {
  pool->mpi_on_closed = on_closed;
  if (pool->mpi_live == 0 && !uv_is_closing((uv_handle_t*)&pool->mpi_async))
    uv_close((uv_handle_t*)&pool->mpi_async, on_closed);
}
