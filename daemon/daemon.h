/* daemon/daemon.h — the job queue daemon's state, and the calls of its
 * layers. Calls go down only:
 *
 *   vow_serve.c the daemon's start and stop, its socket and signals
 *   requests.c  one handler per request op
 *   conn.c      client connections and replies
 *   jobs.c      which jobs start, their ends, retries, the commit
 *   job_spawn.c command jobs' processes;  tasks.c  task-function jobs
 *   store.c     the database;  daemon.c  the log and the job table
 *
 * What a lower layer reports up goes through the_daemon.hooks, set once
 * by vow serve. Private to daemon/. */
#ifndef VOW_DAEMON_DAEMON_H
#define VOW_DAEMON_DAEMON_H

#include <sys/types.h>

#include "proc.h"
#include "proto.h"
#include "queue.h"
#include "store.h"

/* A binary heap of queued jobs that may start: higher priority first,
 * then lower id. */
typedef struct qheap {
  qjob** v;
  size_t n, cap;
} qheap;

/* Jobs run in groups, each with slots of its own (pueue's groups): the
 * default group's are -j N; a new group has 1 until vow parallel says. */
typedef struct qgroup {
  char* name; /* "default" for jobs submitted without --group */
  unsigned slots;
  bool paused;
  size_t nrunning;
  qheap ready; /* its queued jobs whose dependencies have all succeeded */
} qgroup;

#define QD_DEFAULT_GROUP "default"

struct client;

/* A reply held until the changes it speaks of are committed. */
typedef struct pending {
  struct pending* next;
  struct client* c; /* NULL once the client has gone */
  qjob** jobs;      /* the jobs a submission or restart made (malloc'd):
                       forgotten, and the reply a refusal, if the commit
                       fails */
  size_t njobs;
  char* frame; /* header and payload */
  size_t len;
} pending;

/* Reports that go up a layer. */
typedef struct qd_hooks {
  /* job_spawn.c, tasks.c: a running job ended (jobs.c's qd_job_ended). */
  void (*job_ended)(qjob* j, int state, const char* error);
  /* jobs.c: the open transaction was committed, or rolled back (its
   * submissions' jobs already forgotten); the replies held for it go
   * out (conn.c). */
  void (*committed)(bool ok);
  /* jobs.c: the daemon is stopping and nothing runs any more (vow_serve.c). */
  void (*stop)(void);
  /* conn.c: a client sent a request frame (requests.c). */
  void (*request)(struct client* c, const char* data, size_t len);
} qd_hooks;

typedef struct daemon {
  uv_loop_t* loop;
  vow_ctx_t* ctx;
  queue_paths paths;
  int out_dir; /* PATH.out/, opened once and checked to be ours */
  qdb* db;
  char boot_id[64];
  bool paused, draining, stopping; /* paused: every group */
  qgroup** groups;                 /* groups[0] is the default group */
  size_t ngroups;
  const char* on_finish; /* --on-finish CMD: run as each job ends */
  uv_pipe_t listener;
  vow__procs procs; /* command jobs and --on-finish hooks */
  uv_signal_t sigterm, sigint;
  uv_timer_t retry_timer; /* a start that failed on the database */
  uv_prepare_t committer; /* commits once per turn of the loop */
  qjob** to_start;        /* recorded as running; started once committed */
  size_t nto_start, to_start_cap;
  qjob** dirty; /* changed in the open transaction */
  size_t ndirty, dirty_cap;
  qjob** graveyard; /* forgotten, freed at the end of the commit */
  size_t ngraveyard, graveyard_cap;
  pending* pending_head; /* replies held until the commit */
  pending* pending_tail;
  struct client* clients;
  size_t nclients, max_clients; /* connections, and how many may be open */
  size_t nrefusing;             /* connections past the limit, being told so */
  bool accept_paused; /* one waits unaccepted until a refusal closes */
  size_t max_fds;     /* RLIMIT_NOFILE, raised as far as it goes */
  uint64_t idle_ms;   /* a connection that asks nothing goes after this */
  /* every job by id (ids are dense from 1) */
  qjob** jobs;
  size_t njobs_cap;
  int64_t max_id;
  /* queued jobs still waiting on a dependency */
  qjob** waiting;
  size_t nwaiting, waiting_cap;
  qjob** running;
  size_t nrunning, running_cap;
  vow_pool_t** pools; /* task-function jobs: one pool per plugin */
  char** pool_libs;
  size_t npools;
  mode_t job_umask; /* the daemon's files are private; jobs get this */
  qd_hooks hooks;
} daemon_t;

extern daemon_t the_daemon;

/* ---- daemon.c --------------------------------------------------------- */

/* The job with this id, or NULL. */
qjob* qd_job(int64_t id);
void qd_log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- jobs.c ----------------------------------------------------------- */

/* Takes a new job (state queued, already in the database). */
void qd_add(qjob* j);
/* Starts what may start. */
void qd_schedule(void);
/* The group of that name; made (with 1 slot) when create is set and it
 * is new; NULL otherwise. NULL or "" is the default group. */
qgroup* qd_group(const char* name, bool create);
/* A running job no longer takes its group's slot (its leader exited, or
 * it ended). */
void qd_left_slot(qjob* j);
/* Queued jobs whose dependencies have all succeeded, in every group. */
size_t qd_nready(void);
/* Sets a group's slots and pause and records them. 0 or -1 (logged). */
int qd_set_group(qgroup* g, unsigned slots, bool paused);
/* Drops a job that has ended, or is queued (its dependents are then
 * cancelled), from the queue and the database. */
void qd_remove(qjob* j);
/* Ends a queued or running job as cancelled (running: TERM, then KILL). */
void qd_cancel(qjob* j, const char* why);
/* A promise (the caller's reference) that fulfils when j has ended. */
vow_promise_t* qd_ended(qjob* j);
/* Jobs left running when a daemon died: their process groups killed,
 * then requeued or marked interrupted per their retries. */
void qd_recover(void);
/* SIGSTOP / SIGCONT to every running job's process group, or only
 * group g's. */
void qd_signal_running(int sig, const qgroup* g);
/* Every running job killed (TERM, then KILL after 2 s); they end
 * interrupted. */
void qd_stop_all(void);
/* Writes j's state into the open transaction. */
void qd_store(qjob* j);
/* The prepare callback: commit, answer, start. */
void qd_commit(uv_prepare_t* h);
/* The last commit, as the daemon stops: answers everyone still waiting
 * for one. */
void qd_final_commit(void);
/* Drops a job whose submission was rolled back. */
void qd_forget(qjob* j);
/* A running job ended: final, or queued again for another try. */
void qd_job_ended(qjob* j, int state, const char* error);
/* Stops the daemon (hooks.stop) when it is stopping and nothing runs, or
 * draining and nothing is left to run. */
void qd_maybe_drained(void);

/* ---- job_spawn.c: command jobs' processes and output ------------------ */

/* Starts command job j; left_slot is called when its leader has exited
 * (and the rest of its group is killed), its end once its output is in. */
int qd_spawn(qjob* j, void (*left_slot)(qjob* j), char* why, size_t whylen);
/* Signals a running command job's process group. */
void qd_job_signal(qjob* j, int sig);
/* Stops a running command job: TERM, then KILL after proc/'s queue
 * grace. */
void qd_job_stop(qjob* j);
/* Closes the --on-finish hooks still running (they go on) and the watch
 * on the daemon's children, as the daemon stops. */
void qd_spawn_close(void);
/* Kills what a dead daemon left running; returns how many. */
unsigned qd_kill_leftovers(void);
/* Runs --on-finish's command for a job that has ended. */
void qd_on_finish(const qjob* j);

/* ---- tasks.c: task-function jobs on worker pools ------------------------- */

/* Starts j as one task on its plugin's pool. */
void qd_task_start(qjob* j);
/* Shuts every pool down, at once. */
void qd_tasks_stop(void);

#endif
