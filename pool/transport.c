/* What the transports share: choosing one, the command that runs on
 * another machine, and spawning a worker process. */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "os.h"
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
  if (!bad) {
    char every[32];
    snprintf(every, sizeof(every), "%llu",
             (unsigned long long)(vow__liveness_ms(pool) / 4));
    bad = vow__strv_push_env(v, VOWP_ENV_HEARTBEAT, every);
  }
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

static void on_exit_cb(vow__proc* p) {
  /* As libuv reports it: a status only when no signal ended it. */
  vow__worker_exited(p->data, p->term_signal ? 0 : p->exit_status,
                     p->term_signal);
}

static const vow__proc_calls worker_calls = {NULL, NULL, on_exit_cb, NULL};

/* The side socket for shared-memory segments (base/shm.h): ours
 * non-blocking in *mine, the worker's in *theirs, above fd 4 so that
 * the child's dup2 to 3 cannot take it first. False when it cannot be
 * made: the worker then goes without (values take the channel). */
static bool side_socket(int* mine, int* theirs) {
  int sv[2], high;
  *mine = *theirs = -1;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                 sv) != 0)
    return false;
  high = sv[1] > 4 ? sv[1] : fcntl(sv[1], F_DUPFD_CLOEXEC, 5);
  if (high != sv[1])
    close(sv[1]);
  if (high < 0) {
    close(sv[0]);
    return false;
  }
  *mine = sv[0];
  *theirs = high;
  return true;
}

int vow__spawn(pworker* w, char** argv, char** env, bool chan_on_stdio) {
  vow_pool_t* pool = w->pool;
  vow__proc_spec spec = {0};
  int chan[2] = {-1, -1}, errp[2] = {-1, -1}, rc, side = -1;
  int mode = pool->opt.stderr_mode;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) != 0 ||
      (w->err_piped && vow__os_pipe(errp, false) != 0)) {
    rc = uv_translate_sys_error(errno);
    snprintf(w->why, sizeof(w->why), "cannot make a channel: %s",
             uv_strerror(rc));
    if (chan[0] >= 0) {
      close(chan[0]);
      close(chan[1]);
    }
    return rc;
  }
  spec.argv = argv;
  spec.env = env;
  spec.cwd = pool->opt.cwd;
  spec.fd[2] = w->err_piped                 ? errp[1]
               : mode == VOW_STDERR_INHERIT ? 2
                                            : VOW__PROC_NULL;
  /* stdout is ours when asked, else stderr's when stderr is ours: a
   * stray print is seen. */
  spec.fd[1] = pool->opt.inherit_stdout                      ? 1
               : mode == VOW_STDERR_INHERIT && !w->err_piped ? 2
                                                             : VOW__PROC_NULL;
  spec.fd[0] = VOW__PROC_NULL;
  spec.fd3 = -1;
  if (chan_on_stdio)
    spec.fd[0] = spec.fd[1] = chan[1];
  else
    spec.fd3 = chan[1];
  if (!chan_on_stdio && vow__pool_shm_threshold(pool) != UINT64_MAX &&
      side_socket(&w->shm_sock, &side))
    spec.fd4 = side;
  /* A group of its own, so that a kill takes what it started too, and
   * what it left running goes with it. */
  spec.own_group = spec.end_group_at_exit = true;
  spec.default_signals = true;
  rc = vow__proc_spawn(&w->proc, &pool->ctx->procs, &spec, &worker_calls, w);
  close(chan[1]);
  if (side >= 0)
    close(side);
  if (errp[1] >= 0)
    close(errp[1]);
  if (rc != 0) {
    close(chan[0]);
    if (errp[0] >= 0)
      close(errp[0]);
    snprintf(w->why, sizeof(w->why), "cannot start %s: %s", pool->argv[0],
             strerror(rc));
    return uv_translate_sys_error(rc);
  }
  uv_pipe_open(&w->chan.pipe, chan[0]);
  if (errp[0] >= 0)
    uv_pipe_open(&w->errp, errp[0]);
  w->has_proc = true;
  w->pid = w->proc.pid; /* until its HELLO names the worker itself */
  return 0;
}

/* The process we spawned, not w->pid: under a launcher the worker's own
 * pid is another machine's. */
void vow__spawn_kill(pworker* w) {
  vow__proc_kill(&w->proc);
}
