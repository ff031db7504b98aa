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
  uv_stdio_container_t stdio[4];
  vow__spawn_stdio(w, stdio);
  stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
  stdio[3].data.stream = (uv_stream_t*)&w->chan.pipe;
  return vow__spawn(w, w->pool->argv, w->pool->env, stdio, 4);
}

const vow__transport vow__transport_local = {
    "local",         local_slots,     local_open, local_start,
    vow__spawn_kill, vow__spawn_reap, NULL,       NULL};
