/* daemon/store.h — the job queue's jobs and their SQLite store (WAL). The
 * daemon holds every job in memory and writes each change here before it
 * acknowledges anything that depends on it. Private to daemon/. */
#ifndef VOW_DAEMON_STORE_H
#define VOW_DAEMON_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "vow/vow.h"

typedef enum qstate {
  QS_QUEUED,
  QS_RUNNING,
  QS_DONE,        /* exited 0 (or a task function fulfilled) */
  QS_FAILED,      /* non-zero exit, signal, timeout, task failure */
  QS_CANCELLED,   /* by vow cancel, or a dependency that did not succeed */
  QS_INTERRUPTED, /* running when the daemon died, and not retried */
  QS_COUNT
} qstate;

const char* qstate_name(int state);
bool qstate_final(int state);

typedef struct qjob {
  int64_t id;
  char* name;
  char* group; /* NULL: the default group */
  int kind;    /* 0: a command; 1: a task function */
  char** argv; /* NULL-terminated (kind 0) */
  char* cwd;
  char** env; /* NULL-terminated (kind 0) */
  char* lib;  /* kind 1: plugin, function, JSON argument */
  char* fn;
  char* arg_json;
  int64_t priority;
  double timeout_s;
  int64_t retries, attempts;
  int64_t* after;
  size_t nafter;
  int state;
  int64_t pgid;        /* its process group while it runs (kind 0) */
  int64_t start_ticks; /* the leader's start time, /proc clock ticks */
  char* boot_id;       /* the boot it ran in */
  int64_t exit_status, term_signal;
  char* result;       /* kind 1: the result as JSON */
  char* error;        /* why it failed, was cancelled or interrupted */
  char* output_error; /* why some of its output could not be kept */
  double submitted, started, ended;

  /* The daemon's, not stored. */
  uv_timer_t* timer;      /* timeout, then the KILL after TERM */
  vow_promise_t* ended_p; /* settled when it ends, for waiters */
  bool term_sent, cancel_asked;
  bool holds_slot;       /* counted as running in its group */
  bool dirty;            /* changed in the open transaction */
  bool forgotten;        /* its submission was rolled back */
  struct jobio* io;      /* a running command's pipes (job_spawn.c) */
  struct qgroup* grp;    /* its group (the daemon's) */
  size_t heap_at;        /* its place in its group's ready heap + 1; 0: none */
  vow_promise_t* task_p; /* a running task function's (borrowed) */
} qjob;

void qjob_free(qjob* j);
struct vbuf;
/* The job as a line of text, for status and the --on-finish hook: its
 * argv shell-quoted, or a task function's name and JSON argument. */
void qjob_command(const qjob* j, struct vbuf* out);
/* An exit status for the shell: its own, 128 + a signal, 124 for a
 * timeout (as timeout(1)), 125 for cancelled or interrupted. */
int qjob_status(const qjob* j);

typedef struct qdb qdb;

/* Opens (creating) the database: WAL, foreign nothing, schema checked.
 * NULL with err filled. */
qdb* qdb_open(const char* path, char* err, size_t errlen);
void qdb_close(qdb* db);
/* A transaction around several changes; commit makes them durable. Each
 * returns 0 or -1 with the reason in qdb_error. */
int qdb_begin(qdb* db);
void qdb_rollback(qdb* db);
const char* qdb_error(const qdb* db);
/* Changes go into one open transaction (begun by the first change) until
 * qdb_flush commits them: the daemon commits once per turn of its loop,
 * before it answers anyone or starts any job that turn recorded. On
 * failure everything since the last flush is rolled back. */
bool qdb_in_txn(qdb* db);
int qdb_flush(qdb* db);
/* Inserts j and sets j->id: ids only grow, so a removed job's id is never
 * another's. */
int qdb_insert(qdb* db, qjob* j);
/* Ids given from now on are above floor. Returns how many were skipped
 * (0 when the last id given is at floor or beyond), or -1. */
int64_t qdb_ids_after(qdb* db, int64_t floor);
/* Removes a job (vow remove, vow clean). */
int qdb_delete(qdb* db, int64_t id);
/* A group's slots and pause, kept across restarts. */
int qdb_set_group(qdb* db, const char* name, unsigned slots, bool paused);
int qdb_load_groups(qdb* db,
                    void (*fn)(const char* name, unsigned slots, bool paused,
                               void* data),
                    void* data);
/* Writes j's changing fields. */
int qdb_update(qdb* db, const qjob* j);
/* Every job, in id order, to fn. */
int qdb_load(qdb* db, void (*fn)(qjob* j, void* data), void* data);
/* The paused flag, kept across restarts. */
int qdb_set_paused(qdb* db, bool paused);
bool qdb_paused(qdb* db);

#endif
