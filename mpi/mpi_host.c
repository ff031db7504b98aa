/* mpi/mpi_host.c — finds out whether this process is a rank of an MPI
 * job, and loads the MPI module if so. The pool's side of the module is
 * the MPI transport (transport_mpi.c). */
#include "mpi_host.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_module.h"
#include "proto.h"

#ifndef VOW_MPI_MODULE_BUILD
#define VOW_MPI_MODULE_BUILD ""
#endif
#ifndef VOW_MPI_MODULE_INSTALL
#define VOW_MPI_MODULE_INSTALL ""
#endif

static pthread_once_t join_once = PTHREAD_ONCE_INIT;
static vow__mpi_role role = VOW__MPI_NONE;
static int agent_status_; /* what an agent rank exits with */
static const vow_mpi_ops* ops;
static unsigned nslots;

/* The launcher's word for the job's size: Open MPI's mpirun, PMI's
 * (MPICH's and Intel's mpiexec, srun --mpi=pmi2), else a PMIx rank
 * started by srun --mpi=pmix, which sets no size of PMIx's own: the
 * step's task count is the job's size. */
static int job_size(void) {
  const char* s = getenv("OMPI_COMM_WORLD_SIZE");
  if (s == NULL)
    s = getenv("PMI_SIZE");
  if (s == NULL && getenv("PMIX_RANK") != NULL) {
    s = getenv("PMIX_SIZE");
    if (s == NULL)
      s = getenv("SLURM_STEP_NUM_TASKS");
  }
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
  int r;
  if (getenv(VOWP_ENV_CHANNEL) != NULL || size < 2 ||
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
  r = o->join(&nslots, &agent_status_, why, sizeof(why));
  if (r == 1) {
    role = VOW__MPI_AGENT;
    return;
  }
  if (r != 0) {
    fprintf(stderr, "vow: cannot join the MPI job (%s): local workers\n", why);
    return;
  }
  ops = o;
  role = VOW__MPI_RANK0;
  atexit(finish);
}

vow__mpi_role vow__mpi_join(int* agent_status) {
  pthread_once(&join_once, join);
  if (role == VOW__MPI_AGENT)
    *agent_status = agent_status_;
  return role;
}

unsigned vow__mpi_slots(void) {
  return nslots;
}

const vow_mpi_ops* vow__mpi_ops(void) {
  return ops;
}
