/* proc/proc.h — every child process vow starts: spawned, watched for its
 * exit, its output read, stopped and reaped here, by one recipe. Used by
 * vow_run_command, the pool's transports, `vow run` and the queue
 * daemon. Private to vow.
 *
 * A child is done when its exit has been reaped and each of its piped
 * streams has reached EOF: the exit can arrive before its last output
 * (libuv #610). A process it left behind holding a pipe may be waited
 * for without end (as a shell's $(...) waits), for a grace after the
 * exit, or not at all, as the spec says.
 *
 * ---- Stopping: one policy -----------------------------------------------
 * vow__proc_stop sends SIGCONT (a stopped process must hear what follows)
 * and SIGTERM to the child, its whole group when it has one, and SIGKILL
 * once the grace is over if it is still there. The graces, each for whom
 * the process runs:
 *   VOW__GRACE_RUN_MS    200 ms  `vow run`: --timeout, a signal to the run.
 *                                GNU parallel's first --termseq step.
 *   VOW__GRACE_QUEUE_MS  2000 ms a queued job: cancel, --timeout, the
 *                                daemon's stop. Batch jobs may clean up.
 *   VOW__GRACE_EOF_MS    500 ms  after a worker's or a queued job's exit,
 *                                how long a process that escaped its
 *                                group may hold the pipes open.
 * Workers get no SIGTERM: the protocol asks them (CANCEL, SHUTDOWN), and
 * SIGKILL follows a cancelled task's cancel_grace_ms (1 s by default). A
 * cancelled vow_run_command gets SIGKILL at once: no one waits for it.
 */
#ifndef VOW_PROC_H
#define VOW_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#define VOW__GRACE_RUN_MS 200
#define VOW__GRACE_QUEUE_MS 2000
#define VOW__GRACE_EOF_MS 500

/* What a child gets as one of fds 0, 1, 2 besides an fd of ours. */
#define VOW__PROC_NULL (-1) /* /dev/null */
#define VOW__PROC_PIPE (-2) /* (1 and 2 only) a pipe read to on_output */

typedef struct vow__proc vow__proc;
typedef struct vow__procs vow__procs;

/* The children started on one loop, and the SIGCHLD watch that reaps
 * them. Only its own children are reaped: a waitpid of every child would
 * take those of the program vow runs in. */
struct vow__procs {
  uv_loop_t* loop;
  uv_signal_t sigchld;
  bool started;
  vow__proc* live;             /* spawned and not yet reaped */
  struct vow__orphan* orphans; /* closed while running, not yet reaped */
  size_t norphans, orphans_cap;
  size_t nforeground; /* live, and keeping the loop alive */
  char* scratch;      /* read buffer, consumed by on_output before the next */
  void (*on_closed)(vow__procs* set);
};

typedef struct vow__proc_spec {
  /* argv[0] without a '/' is looked up in the child's own PATH. */
  char* const* argv;
  char* const* env; /* NULL: ours */
  const char* cwd;  /* NULL: ours */
  /* The child's fds 0, 1, 2: an fd of ours (it may be 0, 1 or 2
   * itself), VOW__PROC_NULL or VOW__PROC_PIPE. */
  int fd[3];
  int fd3; /* given to the child as its fd 3, or -1 */
  int fd4; /* given to the child as its fd 4 when above 2 (0: none) */
  /* A session of its own, so that signals reach all it starts. */
  bool own_group;
  /* Once the leader has exited, SIGKILL what is left of its group. */
  bool end_group_at_exit;
  /* Every signal at its default in the child; otherwise only SIGPIPE
   * (vow ignores it; a signal its caller ignored stays ignored, as a
   * shell leaves it). */
  bool default_signals;
  /* After the exit, how long the pipes may stay open; 0: until EOF. */
  unsigned eof_grace_ms;
  /* At the exit, what is in the pipes is read and nothing more is waited
   * for (GNU parallel's way: a job's background process does not hold
   * the run). */
  bool drain_at_exit;
  /* It does not keep the loop alive, and closing it before its exit
   * leaves it running (a hook that must never hold its caller up). */
  bool background;
} vow__proc_spec;

typedef struct vow__proc_calls {
  /* Bytes from the child's stdout (stream 1) or stderr (2); data is
   * valid only during the call. May be NULL when nothing is piped. */
  void (*on_output)(vow__proc* p, int stream, const char* data, size_t len);
  /* That stream has ended (EOF, or not waited for any more). May be
   * NULL. */
  void (*on_eof)(vow__proc* p, int stream);
  /* The exit is reaped (exit_status, term_signal); output may follow.
   * May be NULL. */
  void (*on_exit)(vow__proc* p);
  /* Exited, and every pipe at EOF or past its grace: nothing more comes.
   * May be NULL. */
  void (*on_done)(vow__proc* p);
} vow__proc_calls;

struct vow__proc {
  vow__procs* set;
  const vow__proc_calls* calls;
  void* data;   /* the caller's */
  pid_t pid;    /* the child's, kept after the exit for messages */
  bool running; /* spawned and not yet reaped: safe to signal */
  bool exited, done, stopping, group, end_group, background, drain;
  int exit_status; /* once exited: its status, or -1 when killed */
  int term_signal; /* the signal that killed it, or 0 */
  unsigned eof_grace_ms;
  uv_pipe_t pipes[2]; /* stdout, stderr */
  bool piped[2], eof[2];
  uv_timer_t timer; /* the stop grace; after the exit, the EOF grace */
  int open_handles;
  void (*on_closed)(vow__proc* p);
  vow__proc *prev, *next; /* in set->live */
};

void vow__procs_init(vow__procs* set, uv_loop_t* loop);
/* Closes the SIGCHLD watch (then on_closed, if it was open; returns
 * whether it was), after waiting for the children it killed as they were
 * closed; background children still running are left to run. Every
 * child must have been closed. */
bool vow__procs_close(vow__procs* set, void (*on_closed)(vow__procs* set));

/* Starts spec's command as a child on set's loop. 0, or a positive errno
 * (ENOENT for a command not found) with nothing to close. */
int vow__proc_spawn(vow__proc* p, vow__procs* set, const vow__proc_spec* spec,
                    const vow__proc_calls* calls, void* data);
/* Sends sig to the child (its group when it has one) while it runs. */
void vow__proc_signal(vow__proc* p, int sig);
/* CONT and TERM now, KILL after grace_ms if it still runs (the policy
 * above). A second call while stopping does nothing. */
void vow__proc_stop(vow__proc* p, unsigned grace_ms);
/* KILL now (its group too when it has one). */
void vow__proc_kill(vow__proc* p);
/* Stops reading and frees the handles, then on_closed. A child still
 * running is killed (its group too) and reaped later, unless it runs in
 * the background: then it is only reaped later. */
void vow__proc_close(vow__proc* p, void (*on_closed)(vow__proc* p));

#endif
