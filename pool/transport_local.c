/* Local workers: a child process each, the channel on its fd 3. */
#include <sys/types.h>
#include <unistd.h>

#include "pool_internal.h"
#include "transport.h"

static unsigned local_slots(const vow_pool_options_t* o) {
  long cpus;
  if (o != NULL && o->workers > 0)
    return o->workers;
  cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? (unsigned)cpus : 1;
}

static int local_open(vow_pool_t* pool, const vow_pool_options_t* o) {
  (void)pool;
  (void)o;
  return 0;
}

static int local_start(pworker* w) {
  return vow__spawn(w, w->pool->argv, w->pool->env, false);
}

const vow__transport vow__transport_local = {
    "local", local_slots, local_open, local_start, vow__spawn_kill, NULL, NULL};
