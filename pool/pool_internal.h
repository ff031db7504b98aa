/* pool/pool_internal.h — private to the pool (pool*.c, transport*.c,
 * sched.c); not for use outside pool/. */
#ifndef VOW_POOL_INTERNAL_H
#define VOW_POOL_INTERNAL_H

#include "channel.h"
#include "proc.h"
#include "core.h"
#include "pool_submit.h"
#include "proto.h"
#include "shm.h"
#include "transport.h"
#include "vow/pool.h"

typedef struct ptask ptask;
typedef struct pworker pworker;

enum ptask_flags {
  PT_SUSPECT = 1,   /* was on a worker that died: runs alone */
  PT_CANCELLED = 2, /* cancelled in flight: its worker is on grace */
  PT_INFLIGHT = 4,  /* at.w is valid (else at.pool) */
  PT_STARTED = 8,   /* its worker said it started it (PROGRESS) */
  PT_RECALLED = 16  /* asked back (CANCEL) for an idle worker */
};

/* One submitted task. Lives from submit until its promise is settled and,
 * if it was sent, its worker has replied or died. */
struct ptask {
  ptask* prev;
  ptask* next;    /* in the pool's queue or a worker's in-flight list */
  uint64_t id;    /* on the wire: unique in the pool */
  uint64_t index; /* its seed's run index (a chunk's: its first item's) */
  const char* fn; /* interned in the pool */
  vow_value_t* args;
  vow_promise_t* p; /* NULL once settled by cancel or timeout */
  union {
    vow_pool_t* pool; /* while queued */
    pworker* w;       /* while in flight (PT_INFLIGHT) */
  } at;
  uint32_t timeout_ms;
  uint8_t attempts; /* deaths it was on */
  uint8_t flags;
  uint16_t count; /* a map chunk of this many items; 0: one task */
}; /* 72 bytes on LP64: a queued task costs this and its promise */

/* A task is settled exactly when its promise pointer is gone: whatever
 * settled it (a reply, cancel, a timeout, an immediate shutdown), a reply
 * that comes later is stale. */
static inline bool vow__task_settled(const ptask* t) {
  return t->p == NULL;
}

typedef struct tlist {
  ptask* head;
  ptask* tail;
  size_t len;
} tlist;

void vow__tlist_push(tlist* l, ptask* t);
void vow__tlist_push_front(tlist* l, ptask* t);
void vow__tlist_remove(tlist* l, ptask* t);

enum pworker_state {
  PW_STARTING, /* spawned, no HELLO yet */
  PW_READY,
  PW_RETIRING, /* recycled: takes nothing new, SHUTDOWN once drained */
  PW_STOPPING, /* SHUTDOWN sent, or killed */
  PW_DEAD      /* exit and EOFs all in; being finalised */
};

enum pworker_kill {
  PK_NONE,     /* it died by itself */
  PK_TIMEOUT,  /* its head task ran past its timeout */
  PK_GRACE,    /* a cancelled task did not stop within the grace period */
  PK_PROTOCOL, /* it broke the protocol */
  PK_ASKED,    /* shutdown or recycling */
  PK_SILENT    /* silent past the liveness bound: lost with its host */
};

struct pworker {
  vow_pool_t* pool;
  unsigned slot;
  int state;
  int kill;       /* pworker_kill */
  int pid;        /* the worker's: the spawned process's until HELLO names it */
  vow__proc proc; /* the process we spawned, if the transport did */
  vow__chan chan; /* the channel: fd 3 in a local worker */
  uv_pipe_t errp; /* its stderr, when relayed */
  int open_handles;
  bool spawned, exited, chan_eof, err_eof, err_piped, said_hello;
  bool has_proc;     /* proc was spawned: it must be closed */
  bool proc_closing; /* close_all has seen to proc */
  uint32_t link_id;  /* the transport's name for it, if it needs one */
  pworker* next_retiring;
  int64_t exit_status;
  int term_signal;
  tlist inflight;   /* sent, in the order the worker runs them */
  unsigned limit;   /* in-flight limit now */
  uint64_t ewma_ns; /* recent time per task */
  uint64_t last_event_ns;
  /* last_event_ns is when it was sent work while idle: the next replies'
   * time holds its waking up too */
  bool woken;
  uint64_t busy_since_ns;
  uint64_t completed;
  uint64_t sent;            /* tasks ever sent, for recycling */
  vow__timer task_timer;    /* the head task's timeout */
  vow__timer grace_timer;   /* a cancelled task's grace */
  vow__timer eof_timer;     /* channel closed: how long it may live on */
  vow__timer stall_timer;   /* a message begun and not finished */
  vow__timer hello_timer;   /* started, and no HELLO yet */
  vow__timer silence_timer; /* holding tasks: heard from too long ago */
  vow__timer nudge_timer;   /* a message begun: ask the link to go on */
  bool heartbeats;          /* it says it is alive (under a launcher) */
  int shm_sock;             /* the side socket for segments, or -1 */
  bool shm_ok;              /* it said it takes segments */
  uint64_t shm_sent;        /* ids of the segments sent to it */
  vow__shm_inbox shm_in;    /* segments it sent, ahead of their frames */
  char why[512];            /* what went wrong, for failures */
  char tail[4096];          /* the end of its stderr: crash reports */
  size_t tail_len;
  char line[1024]; /* a stderr line being relayed */
  size_t line_len;
};

struct vow_pool {
  vow_ctx_t* ctx;
  const struct vow__pool_events* events; /* the engine, to its workers */
  vow__op op;
  vow_pool_options_t opt; /* strings and arrays copied */
  char** argv;
  char** env;   /* the full environment for workers */
  char** names; /* interned function names, sorted */
  size_t nnames;
  bool names_from_hello; /* learnt from the first HELLO */
  pworker** workers;     /* by slot; NULL while none runs there */
  unsigned nworkers;
  const struct vow__transport* transport;
  void* link;              /* the transport's own state */
  unsigned* slot_failures; /* by slot: failed starts in a row */
  bool* slot_given_up;
  tlist queue;
  vow__arena tasks;         /* ptask records */
  struct space_wait* space; /* producers waiting for room */
  size_t nknown;            /* names[0..nknown) are offered by workers */
  pworker* retiring;        /* recycled workers draining, out of slots */
  uint64_t next_id;
  uv_idle_t kick; /* dispatches on the next tick */
  bool kick_armed;
  int handles_open;        /* the pool's own and its transport's handles */
  unsigned start_failures; /* in a row */
  bool broken;             /* gave up starting workers */
  bool served;             /* a worker has said HELLO */
  bool had_suspects;       /* a task was ever made a suspect */
  char broken_why[5120];   /* why, and the end of the last stderr */
  vow__timer respawn_timer;
  vow__timer recall_timer; /* looks again for tasks to take back */
  unsigned respawn_pending;
  int closing; /* 0, or 1 graceful, 2 immediate */
  vow_promise_t* shutdown_p;
  vow_progress_fn progress;
  void* progress_data;
  vow_pool_stats_t stats;
  unsigned live_workers; /* pworkers allocated and not yet freed */
  char* cwd_copy;
  bool freeing; /* vow_pool_free was called */
};

/* ---- pool_tasks.c: task records (the parts) --------------------------- */

uint64_t vow__now_ns(void);
/* Finds w's in-flight task by id, or NULL. */
ptask* vow__pool_find_inflight(pworker* w, uint64_t id);
/* Whether a task with this flag (ptask_flags) is on w: a suspect runs
 * alone; a cancel's grace runs until no cancelled task is left. */
bool vow__worker_holds(const pworker* w, unsigned flag);
/* Rejects t's promise with f (taken) unless it is settled already. */
void vow__pool_fail_task(vow_pool_t* pool, ptask* t, vow_failure_t* f);
/* Frees the record of a task that left every list. */
void vow__task_free(vow_pool_t* pool, ptask* t);
/* t leaves w's in-flight list and is the pool's again. */
void vow__task_recall(pworker* w, ptask* t);

/* ---- what a worker tells the engine ------------------------------------ */

/* The worker files (pool_worker.c, pool_send.c, the transports) call the
 * engine (pool.c, pool_dispatch.c, pool_faults.c) only through these,
 * set in pool->events: the engine calls them by name, never the other
 * way round. */
typedef struct vow__pool_events {
  /* A worker may take more: dispatch on the next tick. */
  void (*kick)(vow_pool_t* pool);
  /* w said HELLO. */
  void (*ready)(pworker* w);
  /* w is finished (exit and EOFs in, handles closed): settle or requeue
   * what it held and free it. */
  void (*gone)(pworker* w);
  /* No memory for a worker now: start the empty slots later. */
  void (*start_later)(vow_pool_t* pool);
  /* w's head task ran past its timeout. */
  void (*task_timeout)(pworker* w);
} vow__pool_events;

/* ---- sched.c: the decisions, kept free of I/O for unit tests -------- */

/* The in-flight limit for a worker whose tasks take ewma_ns each:
 * enough to keep about 2 ms of work queued on it, from 2 to 1024. A
 * configured limit wins. */
unsigned vow__sched_limit(uint64_t ewma_ns, unsigned configured);
/* Folds one observation (elapsed ns over n replies) into an EWMA. An
 * upper bound (the worker drained what it was sent, or was idle and woken
 * at the start) may only lower it. */
uint64_t vow__sched_ewma(uint64_t ewma_ns, uint64_t elapsed_ns, size_t n,
                         bool upper_bound);
/* How many tasks from the queue's head to send to a worker that has
 * `inflight` tasks and may have `limit`: 0 if none. A suspect task at the
 * head goes alone to an empty worker; suspects are never batched. */
size_t vow__sched_take(const tlist* queue, size_t inflight, unsigned limit,
                       bool worker_has_suspect);
/* The seed of task `id` in a run seeded with run_seed (splitmix64). */
uint64_t vow__task_seed(uint64_t run_seed, uint64_t id);
/* Backoff before the next start after `failures` failed starts in a row. */
uint64_t vow__sched_backoff_ms(unsigned failures);

/* ---- pool_worker.c, pool_send.c
 * ---------------------------------------------------- */

/* Spawns a worker into slot; a spawn that fails is handled like a worker
 * that died before HELLO. */
void vow__worker_start(vow_pool_t* pool, unsigned slot);
/* Sends tasks [from the queue] to w in one TASKS frame. */
void vow__worker_send(pworker* w, size_t n);
void vow__worker_send_cancel(pworker* w, uint64_t id);
void vow__worker_send_shutdown(pworker* w);
/* Kills w for the given reason; its in-flight tasks are dealt with when
 * it is finally gone. */
void vow__worker_kill(pworker* w, int why);
/* Its process has exited (status and signal as libuv gives them). */
void vow__worker_exited(pworker* w, int64_t status, int sig);
/* Finishes w once its exit and both EOFs are in. */
void vow__worker_maybe_finished(pworker* w);
/* Starts or stops w's head-task timer after the head changed. */
void vow__worker_arm_head(pworker* w);
/* Restarts w's silence clock while it holds tasks and says it is alive
 * (liveness, under launchers); stops it otherwise. */
void vow__worker_watch_silence(pworker* w);
void vow__worker_send_ping(pworker* w, uint64_t token);
/* The pool's liveness bound (its option, or the default). */
uint64_t vow__liveness_ms(const vow_pool_t* pool);
/* The size from which a value goes by shared memory to and from local
 * workers; UINT64_MAX: never. */
uint64_t vow__pool_shm_threshold(const vow_pool_t* pool);
/* The most bytes this process may hold in segments. */
uint64_t vow__pool_shm_max_bytes(const vow_pool_t* pool);
uint64_t vow__pool_shm_max_segments(const vow_pool_t* pool);
/* t (settled) is done with on w: freed; w retires when it has done
 * recycle_after tasks, and a retiring w with nothing left gets
 * SHUTDOWN. */
void vow__worker_task_done(pworker* w, ptask* t);

/* ---- pool_stderr.c ------------------------------------------------------ */

/* Writes one line to our stderr with the worker's name in front. */
void vow__worker_relay_line(pworker* w, const char* p, size_t n);
/* Bytes of w's stderr: kept in its tail, relayed line by line. */
void vow__worker_err_take(pworker* w, const char* p, size_t len);
/* Relays a last line that has no newline. */
void vow__worker_err_flush(pworker* w);

/* Values this big go without a copy: a lone task's arguments are written
 * where they are, a result is taken from the decoder whole. */
#define VOW__BIG_VALUE ((size_t)1 << 20)

/* ---- pool_dispatch.c: tasks in, tasks out ------------------------------ */

void vow__pool_kick(vow_pool_t* pool);
/* Counted, not kept: tasks on workers, and workers that said HELLO and
 * hold a slot. */
size_t vow__pool_in_flight(const vow_pool_t* pool);
unsigned vow__pool_workers_alive(const vow_pool_t* pool);
void vow__pool_refuse_space_waiters(vow_pool_t* pool);

/* ---- pool_faults.c: timeouts, deaths, retries, starts ------------------ */

/* A failure of task t (on w, or NULL) with its origin and w's stderr. */
vow_failure_t* vow__task_failure(int kind, int code, ptask* t, pworker* w,
                                 const char* fmt, ...) VOW_PRINTF(5, 6);
/* Timer callback: a cancelled task did not stop within the grace. */
void vow__worker_grace_over(vow__timer* timer);
void vow__pool_start_empty_slots(vow_pool_t* pool);
/* Starts the empty slots after a backoff: a worker could not even be
 * allocated. */
void vow__pool_start_later(vow_pool_t* pool);
void vow__pool_worker_ready(pworker* w);
void vow__pool_worker_gone(pworker* w);
void vow__pool_fail_queue(vow_pool_t* pool, int kind, const char* why);
void vow__pool_cancel_all(vow_pool_t* pool, const char* why);
void vow__pool_kill_all(vow_pool_t* pool);
/* Fulfils the shutdown promise once no worker is left. */
void vow__pool_finish_shutdown(vow_pool_t* pool);
/* The engine's answers to its workers' events (pool->events). */
extern const struct vow__pool_events vow__engine_events;

/* ---- pool_trace.c: VOW_DEBUG ------------------------------------------- */

/* The trace's descriptor, or -1 when VOW_DEBUG is off. */
extern int vow__trace_fd;
/* Reads VOW_DEBUG, once per process (vow_pool_new calls it). */
void vow__trace_init(void);
/* One line about worker w (NULL: the pool): printf-style, no newline. */
void vow__trace(const pworker* w, const char* fmt, ...) VOW_PRINTF(2, 3);
#define VOW__TRACE(w, ...)          \
  do {                              \
    if (vow__trace_fd >= 0)         \
      vow__trace((w), __VA_ARGS__); \
  } while (0)
const char* vow__worker_state_name(int state);
/* Every change of a worker's state goes through here, so the trace sees
 * it. */
void vow__worker_set_state(pworker* w, int state);

/* ---- pool.c: the pool's life ------------------------------------------- */

/* Frees the pool once nothing of it is left on the loop: after
 * vow_pool_free, or when its context closes. */
void vow__pool_maybe_destroy(vow_pool_t* pool);

#endif
