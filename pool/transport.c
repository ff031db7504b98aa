/* What the transports share: choosing one, the command that runs on
 * another machine, and spawning a worker process. */
#include "transport.h"

#include <signal.h>
#include <stdio.h>

#include "pool_internal.h"
#include "runner.h"
#include "strv.h"

const vow__transport* vow__transport_for(const vow_pool_options_t* o) {
  if (vow__runner_mpi_rank0())
    return &vow__transport_mpi;
  if (o != NULL && o->launchers != NULL && o->nlaunchers > 0)
    return &vow__transport_launcher;
  return &vow__transport_local;
}

char** vow__remote_argv(const vow_pool_t* pool, const vow_pool_options_t* o) {
  size_t nworker = vow__strv_len((const char* const*)pool->argv);
  size_t nenv = vow__strv_len(o ? o->env : NULL), i;
  char** v = vow__calloc(nworker + nenv + 4, sizeof(char*));
  int bad = v == NULL;
  if (!bad)
    bad = vow__strv_push(v, "env") ||
          vow__strv_push(v, "VOW_WORKER_CHANNEL=stdio");
  if (!bad && o && o->limits)
    bad = vow__strv_push_env(v, VOWP_ENV_LIMITS, o->limits);
  for (i = 0; !bad && i < nenv; i++)
    bad = vow__strv_push(v, o->env[i]);
  for (i = 0; !bad && i < nworker; i++)
    bad = vow__strv_push(v, pool->argv[i]);
  if (bad) {
    vow__strv_free(v);
    return NULL;
  }
  return v;
}

void vow__spawn_stdio(pworker* w, uv_stdio_container_t stdio[3]) {
  memset(stdio, 0, 3 * sizeof(*stdio));
  stdio[0].flags = UV_IGNORE;
  if (w->err_piped) {
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t*)&w->errp;
  } else if (w->pool->opt.stderr_mode == VOW_STDERR_INHERIT) {
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
  } else {
    stdio[2].flags = UV_IGNORE;
  }
  stdio[1] = stdio[2].flags == UV_INHERIT_FD ? stdio[2] : stdio[0];
}

static void on_exit_cb(uv_process_t* proc, int64_t status, int sig) {
  vow__worker_exited(proc->data, status, sig);
}

int vow__spawn(pworker* w, char** argv, char** env, uv_stdio_container_t* stdio,
               int nstdio) {
  vow_pool_t* pool = w->pool;
  uv_process_options_t o;
  int rc;
  memset(&o, 0, sizeof(o));
  o.file = argv[0];
  o.args = argv;
  o.env = env;
  o.cwd = pool->opt.cwd;
  o.stdio = stdio;
  o.stdio_count = nstdio;
  o.exit_cb = on_exit_cb;
  o.flags = UV_PROCESS_DETACHED; /* a process group of its own */
  rc = uv_spawn(pool->ctx->loop, &w->proc, &o);
  w->proc_init = true;
  if (rc != 0) {
    snprintf(w->why, sizeof(w->why), "cannot start %s: %s", pool->argv[0],
             uv_strerror(rc));
    return rc;
  }
  w->pid = w->proc.pid; /* until its HELLO names the worker itself */
  return 0;
}

/* The process we spawned, not w->pid: under a launcher the worker's own
 * pid is another machine's. */
void vow__spawn_kill(pworker* w) {
  if (w->proc.pid > 0)
    kill(-w->proc.pid, SIGKILL);
  uv_process_kill(&w->proc, SIGKILL);
}

void vow__spawn_reap(pworker* w) {
  if (w->proc_init && w->proc.pid > 0)
    kill(-w->proc.pid, SIGKILL);
}
