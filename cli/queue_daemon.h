/* cli/queue_daemon.h — the daemon's state, shared by queue_serve.c (the
 * socket, the clients and their requests) and queue_run.c (starting,
 * reaping and recovering jobs). Private to cli/. */
#ifndef VOW_CLI_QUEUE_DAEMON_H
#define VOW_CLI_QUEUE_DAEMON_H

#include <sys/types.h>

#include "queue.h"
#include "queue_db.h"

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

typedef struct daemon {
  uv_loop_t* loop;
  vow_ctx_t* ctx;
  queue_paths paths;
  qdb* db;
  char boot_id[64];
  bool paused, draining, stopping; /* paused: every group */
  qgroup** groups;                 /* groups[0] is the default group */
  size_t ngroups;
  const char* on_finish; /* --on-finish CMD: run as each job ends */
  uv_pipe_t listener;
  uv_signal_t sigchld, sigterm, sigint;
  uv_timer_t retry_timer; /* a start that failed on the database */
  uv_prepare_t committer; /* commits once per turn of the loop */
  qjob** to_start;        /* recorded as running; started once committed */
  size_t nto_start, to_start_cap;
  qjob** dirty; /* changed in the open transaction */
  size_t ndirty, dirty_cap;
  qjob** graveyard; /* forgotten, freed at the end of the commit */
  size_t ngraveyard, graveyard_cap;
  struct pending* pending_head; /* replies held until the commit */
  struct pending* pending_tail;
  struct client* clients;
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
} daemon_t;

extern daemon_t D;

double qd_now(void);
/* The job with this id, or NULL. */
qjob* qd_job(int64_t id);
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
/* Runs --on-finish's command for a job that has ended. */
void qd_on_finish(const qjob* j);
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
void qd_on_sigchld(uv_signal_t* h, int sig);
/* queue_spawn.c: a command job's process and output; its reaping; what a
 * dead daemon left running. */
int qd_spawn(qjob* j, char* why, size_t whylen);
void qd_reap(void);
unsigned qd_kill_leftovers(void);
void qd_log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes j's state into the open transaction. */
void qd_store(qjob* j);
/* The prepare callback: commit, answer, start (queue_run.c). */
void qd_commit(uv_prepare_t* h);
/* The last commit, as the daemon stops: answers everyone still waiting
 * for one. */
void qd_final_commit(void);
/* Sends (ok) or, for a submission rolled back, refuses and forgets every
 * reply held for the commit (queue_serve.c). */
void qd_flush_replies(bool ok);
/* Drops a job whose submission was rolled back. */
void qd_forget(qjob* j);
/* A running job ended: final, or queued again for another try. */
void qd_job_ended(qjob* j, int state, const char* error);
/* Starts a task-function job on its plugin's pool (queue_serve.c). */
void qd_map_start(qjob* j);
/* Called when nothing runs and nothing is queued, for --drain. */
void qd_maybe_drained(void);

#endif
