/* Local workers: a child process each, the channel on its fd 3. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
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
  int sv[2], rc;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    rc = uv_translate_sys_error(errno);
    snprintf(w->why, sizeof(w->why), "cannot make a channel: %s",
             uv_strerror(rc));
    return rc;
  }
  rc = vow__spawn(w, w->pool->argv, w->pool->env, -1, sv[1]);
  close(sv[1]);
  if (rc == 0)
    uv_pipe_open(&w->chan.pipe, sv[0]);
  else
    close(sv[0]);
  return rc;
}

const vow__transport vow__transport_local = {
    "local", local_slots, local_open, local_start, vow__spawn_kill, NULL, NULL};
