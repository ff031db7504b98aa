/* pool/transport.h — how a pool's workers are started, reached and
 * stopped. The pool and its workers know only these ops; each transport
 * keeps its own state in pool->link. Private to pool/.
 *
 *   local     a child process, the channel on its fd 3
 *   launcher  a command (ssh, srun...) that runs the worker elsewhere, the
 *             channel on its stdin and stdout
 *   mpi       a worker on another rank of this MPI job, started by that
 *             rank's agent, the channel relayed by the MPI module */
#ifndef VOW_POOL_TRANSPORT_H
#define VOW_POOL_TRANSPORT_H

#include <stdbool.h>
#include <uv.h>

#include "vow/pool.h"

typedef struct pworker pworker;

typedef struct vow__transport {
  const char* name;
  /* The pool's slot count for these options, or 0 when the options do not
   * fit this transport (a launcher without a command). */
  unsigned (*slots)(const vow_pool_options_t* o);
  /* Makes pool->link from the options, after the pool's argv and env.
   * Returns how many loop handles it opened for the pool (each closed by
   * `close`), or a negative libuv error. */
  int (*open)(vow_pool_t* pool, const vow_pool_options_t* o);
  /* Starts w's worker. On success the channel w->chan (and w->errp when
   * w->err_piped) is open, and the worker's exit will reach
   * vow__worker_exited. On failure returns a negative libuv error with
   * w->why saying what could not be done. */
  int (*start)(pworker* w);
  /* Kills w's worker and whatever it started (what it left running at
   * its exit goes by itself: proc/ ends a worker's group, an MPI agent
   * takes what its worker left). */
  void (*kill)(pworker* w);
  /* Closes the handles `open` counted, each calling on_closed; NULL
   * when open makes none. */
  void (*close)(vow_pool_t* pool, uv_close_cb on_closed);
  /* Frees pool->link, the handles closed by then; NULL when there is
   * none. */
  void (*free)(vow_pool_t* pool);
} vow__transport;

extern const vow__transport vow__transport_local;
extern const vow__transport vow__transport_launcher;
extern const vow__transport vow__transport_mpi;

/* The transport for these options: MPI's ranks when this process is rank
 * 0 of an MPI job, launchers when given, else local processes. */
const vow__transport* vow__transport_for(const vow_pool_options_t* o);

/* ---- shared by the transports (transport.c) ----------------------------- */

/* What runs on another machine: `env VOW_WORKER_CHANNEL=stdio
 * [VOW_WORKER_LIMITS=...] [the caller's variables...]` and the worker
 * command, as launchers such as ssh pass no environment; the channel is
 * the worker's stdin and stdout. NULL when memory ran out. */
char** vow__remote_argv(const vow_pool_t* pool, const vow_pool_options_t* o);
/* Starts argv as w's process (proc/) in a group of its own, its exit
 * reported to vow__worker_exited, with w->chan open on one end of a
 * socketpair whose other end is the worker's stdin and stdout
 * (chan_on_stdio: a launcher's channel) or its fd 3 (a local worker's).
 * Its stderr goes to w->errp when w->err_piped, else ours or nowhere per
 * the pool's stderr mode. 0, or a negative libuv error with w->why
 * saying why. */
int vow__spawn(pworker* w, char** argv, char** env, bool chan_on_stdio);
/* Kills the spawned process and its group. */
void vow__spawn_kill(pworker* w);

#endif
