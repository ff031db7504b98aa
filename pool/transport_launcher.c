/* Workers through launchers (ssh, srun...): each slot runs its launcher
 * with the remote command after it; the channel is the launcher's stdin
 * and stdout, one end of a socketpair whose other end is ours. */
#include <string.h>

#include "pool_internal.h"
#include "strv.h"
#include "transport.h"

typedef struct launch_link {
  char*** slot_argv; /* by slot: the launcher, then the remote command */
  unsigned nslots;
  /* Ours without VOW_PARENT_PID and VOW_WORKER_CHANNEL: the launcher's
   * parent is us, the worker's is not. */
  char** env;
} launch_link;

static unsigned launcher_slots(const vow_pool_options_t* o) {
  unsigned n = 0;
  size_t i;
  for (i = 0; i < o->nlaunchers; i++) {
    if (o->launchers[i].argv == NULL || o->launchers[i].argv[0] == NULL)
      return 0;
    n += o->launchers[i].workers ? o->launchers[i].workers : 1;
  }
  return n;
}

/* srun holds a step's output until a newline unless told -u, and the
 * channel's frames are binary: the worker's HELLO would never arrive. So
 * an srun launcher always runs with -u, whether or not the user wrote it
 * (a second -u is harmless to srun). */
static bool needs_unbuffered(const char* const* argv) {
  const char* base = strrchr(argv[0], '/');
  size_t i;
  base = base ? base + 1 : argv[0];
  if (strcmp(base, "srun") != 0)
    return false;
  for (i = 1; argv[i] != NULL; i++)
    if (strcmp(argv[i], "-u") == 0 || strcmp(argv[i], "--unbuffered") == 0)
      return false;
  return true;
}

static int launcher_open(vow_pool_t* pool, const vow_pool_options_t* o) {
  launch_link* k = vow__calloc(1, sizeof(*k));
  char** remote = vow__remote_argv(pool, o);
  size_t nremote = vow__strv_len((const char*const*)remote), l, i;
  unsigned slot = 0;
  pool->link = k;
  if (k == NULL || remote == NULL)
    goto nomem;
  k->nslots = pool->nworkers;
  k->slot_argv = vow__calloc(pool->nworkers, sizeof(char**));
  k->env = vow__calloc(vow__strv_len((const char* const*)pool->env) + 1,
                       sizeof(char*));
  if (k->slot_argv == NULL || k->env == NULL)
    goto nomem;
  for (i = 0; pool->env[i] != NULL; i++)
    if (strncmp(pool->env[i], "VOW_PARENT_PID=", 15) != 0 &&
        strncmp(pool->env[i], "VOW_WORKER_CHANNEL=", 19) != 0 &&
        vow__strv_push(k->env, pool->env[i]) != 0)
      goto nomem;
  for (l = 0; l < o->nlaunchers; l++) {
    const vow_launcher_t* L = &o->launchers[l];
    unsigned n = L->workers ? L->workers : 1, s;
    size_t nl = vow__strv_len(L->argv);
    bool add_u = needs_unbuffered(L->argv);
    for (s = 0; s < n && slot < k->nslots; s++, slot++) {
      char** v = vow__calloc(nl + nremote + 2, sizeof(char*));
      if ((k->slot_argv[slot] = v) == NULL)
        goto nomem;
      for (i = 0; i < nl; i++)
        if (vow__strv_push(v, L->argv[i]) != 0 ||
            (i == 0 && add_u && vow__strv_push(v, "-u") != 0))
          goto nomem;
      for (i = 0; i < nremote; i++)
        if (vow__strv_push(v, remote[i]) != 0)
          goto nomem;
    }
  }
  vow__strv_free(remote);
  return 0;
nomem:
  vow__strv_free(remote);
  return UV_ENOMEM;
}

static int launcher_start(pworker* w) {
  launch_link* k = w->pool->link;
  return vow__spawn(w, k->slot_argv[w->slot], k->env, true);
}

static void launcher_free(vow_pool_t* pool) {
  launch_link* k = pool->link;
  unsigned i;
  if (k == NULL)
    return;
  for (i = 0; k->slot_argv && i < k->nslots; i++)
    vow__strv_free(k->slot_argv[i]);
  vow__free(k->slot_argv);
  vow__strv_free(k->env);
  vow__free(k);
  pool->link = NULL;
}

const vow__transport vow__transport_launcher = {
    "launcher",      launcher_slots, launcher_open, launcher_start,
    vow__spawn_kill, NULL,           launcher_free};
