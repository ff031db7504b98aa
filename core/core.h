/* core/core.h — the promise core's private header; for libvow's folders
 * above it (pool/, worker/), never for outside libvow.
 *
 * Divisions: values and failures, promise and chain nodes, the
 * context, timers, operations registered with the context.
 */
#ifndef VOW_CORE_CORE_H
#define VOW_CORE_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "alloc.h"
#include "arena.h"
#include "misuse.h"
#include "proc.h"
#include "vow/vow.h"

#define VOW__CONTAINER_OF(ptr, type, field) \
  ((type*)((char*)(ptr)-offsetof(type, field)))

/* ---- failures -------------------------------------------------------- */

/* vow_failure_new with a va_list, so other formatting calls share it. */
vow_failure_t* vow__failure_newv(int kind, int code, const char* fmt,
                                 va_list ap) VOW_PRINTF(3, 0);
/* The failure to use when there is no memory for another. Immortal. */
vow_failure_t* vow__failure_nomem(void);
/* What a promise still referenced when its context closed holds from then
 * on. Immortal. */
vow_failure_t* vow__failure_closed(void);
/* Marks f as reported; returns true the first time only, so one failure
 * shared by several promises is reported once. */
bool vow__failure_claim_report(vow_failure_t* f);

/* ---- promises -------------------------------------------------------- */

/* vow_outcome_t tags. */
enum { VOW__TAG_VALUE = 1, VOW__TAG_FAILURE, VOW__TAG_WAIT };

/* A link of a promise's chain: a user pair, a user both-function, or an
 * internal step (RESUME of a waiting promise, BRANCH, TIMEOUT, combinator
 * input). `tag` points to one of the static kinds below, or is the user's
 * errback itself for a pair; which one is recorded by a bit of the node's
 * next pointer, so a link is three words and a node four. */
typedef struct vow__link vow__link;
typedef struct vow__node_kind {
  /* Runs with the chain's result on p; may replace it (see vow__take). */
  void (*run)(vow_promise_t* p, const vow__link* link);
  /* Releases what the link holds when its chain will never run (the
   * context is closing). */
  void (*discard)(const vow__link* link);
} vow__node_kind;

struct vow__link {
  union {
    vow_callback_fn cb;
    vow_both_fn both;
    vow_errback_fn trap_eb;
    vow_canceller_fn cancel; /* a pending promise's canceller record */
  } fn;
  union {
    vow_errback_fn eb;          /* user pair */
    const vow__node_kind* kind; /* internal, both or trap */
  } tag;
  void* data;
};

/* A pooled link. */
typedef struct vow__node vow__node;
struct vow__node {
  vow__node* next; /* circular; bit 0 set when link.tag is a kind */
  vow__link link;
};

enum vow__flags {
  VOW__QUEUED = 1,     /* in the context's ready queue */
  VOW__RUNNING = 2,    /* its chain is running now */
  VOW__CANCELLED = 4,  /* cancelled: late settles are dropped silently */
  VOW__CANCELLING = 8, /* its canceller is running */
  VOW__PASSED_ON = 16, /* its result was shared with another promise */
  VOW__STARTED = 32    /* the work it stands for has begun */
};

/* The state of an arena slot that holds no promise (free, or kept back in
 * the context's reserve), so walks over the slots can tell them apart. */
#define VOW__FREED 0xff

/* Invariants: state is one of vow_state_t (or VOW__FREED). The chain is
 * the pooled nodes from tail->next round to tail. While pending, `r`
 * holds the canceller's record (a node slot) or NULL; once settled, the
 * result; while VOW_WAITING, a reference to the promise it waits on, whose
 * chain holds a RESUME node pointing back here. A promise is in its
 * context's ready queue only while it has a chain, and the queue keeps
 * room for every promise with a chain (made when a chain starts, where
 * running out of memory can be reported): queueing cannot fail. A pending or
 * waiting promise is never freed. 24 bytes on LP64: the context is a 16-bit
 * index into vow__ctxs, so a promise does not carry a pointer to it. */
struct vow_promise {
  vow__node* tail; /* last node of the chain; tail->next is the first */
  union {
    vow__node* canceller;   /* VOW_PENDING: fn and data, or NULL */
    vow_value_t* value;     /* VOW_FULFILLED */
    vow_failure_t* failure; /* VOW_REJECTED */
    vow_promise_t* inner;   /* VOW_WAITING */
  } r;
  uint32_t refs;
  uint8_t state;
  uint8_t flags;
  uint16_t ctx_id; /* 0 once its context has closed */
};

/* Every live context by id; vow__ctxs[0] is vow__closed_ctx. An entry is
 * written when a context opens and cleared once no promise names it. */
#define VOW__CTX_MAX 65536
extern vow_ctx_t* vow__ctxs[VOW__CTX_MAX];

static inline vow_ctx_t* vow__ctx_of(const vow_promise_t* p) {
  return vow__ctxs[p->ctx_id];
}

/* Marks the work p stands for as begun (a pool task: a worker runs it);
 * vow_promise_started reads it. */
static inline void vow__promise_mark_started(vow_promise_t* p) {
  p->flags |= VOW__STARTED;
}

/* True while links are left on p's chain. */
static inline bool vow__has_chain(const vow_promise_t* p) {
  return p->tail != NULL;
}

/* Drops a pending promise's canceller without running it. */
void vow__clear_canceller(vow_promise_t* p);

/* The link a waiting promise leaves in the chain it waits on. */
extern const vow__node_kind vow__resume_kind;

/* Appends an internal node; returns p, or NULL when out of memory. */
vow_promise_t* vow__append(vow_promise_t* p, const vow__node_kind* kind,
                           void* data);
/* Settles p, bypassing the "already settled" check when force is set (used
 * by cancel). Takes over v / f. */
int vow__settle(vow_promise_t* p, int state, void* result);
/* Cancels with a failure of the given kind (CANCELLED or TIMEOUT). */
void vow__cancel_as(vow_promise_t* p, int kind, const char* message);
/* A new reference to p's current result, for nodes that hand it to
 * another promise; p keeps its own. *state receives VOW_FULFILLED or
 * VOW_REJECTED. */
void* vow__share(vow_promise_t* p, int* state);
/* Puts a result back (after vow__take). */
void vow__put(vow_promise_t* p, int state, void* result);
/* Runs the chains in the ready queue until it is empty. */
size_t vow__drain(vow_ctx_t* ctx);
void vow__destroy_promise_at_close(vow_promise_t* p);
/* Empties p at close but keeps its slot: someone still holds it. */
void vow__orphan_promise_at_close(vow_promise_t* p);

/* ---- operations ------------------------------------------------------ */

/* Anything in flight that the context must stop or free when it closes:
 * timers of combinators, file requests, child commands, thread work. */
typedef struct vow__op vow__op;
struct vow__op {
  vow__op* prev;
  vow__op* next;
  /* Called once at close: stop what is running, settle nothing. May
   * vow__op_done now or later (from a libuv callback). */
  void (*shutdown)(vow__op* op);
};
void vow__op_start(vow_ctx_t* ctx, vow__op* op, void (*shutdown)(vow__op*));
/* Unregisters op; may free the context when it is closing and this was the
 * last thing it waited for. */
void vow__op_done(vow_ctx_t* ctx, vow__op* op);

/* ---- timers ---------------------------------------------------------- */

typedef struct vow__timer vow__timer;
struct vow__timer {
  uint64_t deadline;
  uint64_t seq; /* ties break in arming order */
  size_t index; /* position in the heap; SIZE_MAX when not armed */
  void (*fire)(vow__timer* t);
  /* Frees the owner when the context closes with the timer armed; NULL
   * when something else owns it. */
  void (*discard)(vow__timer* t);
};

/* Arms t to fire after ms; t must not be armed. Returns 0 or UV_ENOMEM. */
int vow__timer_start(vow_ctx_t* ctx, vow__timer* t, uint64_t ms);
void vow__timer_stop(vow_ctx_t* ctx, vow__timer* t);

/* ---- stderr relay (relay.c) ------------------------------------------ */

/* Queues head + line (+ a newline when it lacks one) for our stderr,
 * never blocking: when the bounded buffer is full the line is dropped and
 * counted, and a note says how many once stderr is read again. */
void vow__relay_line(const char* head, size_t hlen, const char* line,
                     size_t len);
/* Waits up to max_ms for queued lines to be written. */
void vow__relay_flush(uint64_t max_ms);

/* ---- the context ----------------------------------------------------- */

typedef struct vow__clock {
  uint64_t (*now)(vow_ctx_t* ctx);
  /* Makes sure the earliest deadline will be noticed. */
  void (*rearm)(vow_ctx_t* ctx);
} vow__clock;

typedef struct vow__ts_entry vow__ts_entry;

#define VOW__RESERVE 16
/* A rejected promise even when memory has run out: from the reserve if
 * the slab cannot grow. NULL only when the context is closed or the
 * reserve is spent too. Takes over f. */
vow_promise_t* vow__fail_always(vow_ctx_t* ctx, vow_failure_t* f);

struct vow_ctx {
  uv_loop_t* loop;
  uv_loop_t own_loop; /* used when the context owns its loop */
  bool owns_loop;
  bool closing;     /* vow_ctx_close has started */
  int handles_open; /* uv handles not yet through close_cb */
  vow__arena promises;
  vow__arena nodes;
  /* Promise slots kept back for rejecting with out-of-memory when the
   * slab cannot grow, so calls documented to return a promise do; a
   * freed promise refills it. */
  vow_promise_t* reserve[VOW__RESERVE];
  size_t reserve_len;
  uint16_t id; /* promises name their context by this */
  /* The ready queue: a ring of promises whose chains are due, with room
   * for every promise that has a chain (see struct vow_promise). */
  size_t chained; /* promises with a chain */
  vow_promise_t** ready;
  size_t ready_cap; /* a power of two */
  size_t ready_head;
  size_t ready_len;
  bool draining;
  unsigned looping;    /* vow_ctx_run or vow_ctx_wait is running the loop */
  uv_idle_t idle;      /* active while the ready queue is non-empty */
  uv_timer_t uv_timer; /* the one loop timer behind the heap */
  const vow__clock* clock;
  uint64_t fake_now;
  vow__timer** heap;
  size_t heap_len;
  size_t heap_cap;
  uint64_t timer_seq;
  vow__op ops;      /* sentinel of the circular list of ops */
  vow__procs procs; /* children: commands, workers */
  vow_report_fn report;
  void* report_data;
  uv_async_t async; /* wakes the loop for threadsafe settles */
  uv_mutex_t ts_lock;
  vow__ts_entry* ts_head; /* guarded by ts_lock */
  bool ts_closed;         /* guarded by ts_lock */
};

/* Starts the idle handle that drains the ready queue on the next tick. */
void vow__wake(vow_ctx_t* ctx);
/* Schedules p's chain to run on a later tick. */
void vow__schedule(vow_promise_t* p);
void vow__report(vow_ctx_t* ctx, vow_report_kind_t kind, vow_failure_t* f);
void vow__timers_fire_due(vow_ctx_t* ctx);
void vow__timers_close(vow_ctx_t* ctx);
extern const vow__clock vow__real_clock;
void vow__threadsafe_drain(vow_ctx_t* ctx);
void vow__threadsafe_close(vow_ctx_t* ctx);
void vow__threadsafe_door_lock(void);
void vow__threadsafe_door_unlock(void);
/* Where promises still referenced when their context closed point from
 * then on: closed, its threadsafe door shut, so a late settle or release
 * finds a context that refuses it instead of freed memory. */
extern vow_ctx_t vow__closed_ctx;

/* ---- value.c: values made by libvow's own readers --------------------- */

/* A value over bytes already known to be one msgpack object. */
vow_value_t* vow__value_from_encoded(const void* bytes, size_t len);
/* A msgpack value of len bytes for the caller to fill at *bytes before
 * anyone else sees it. */
vow_value_t* vow__value_alloc_encoded(size_t len, unsigned char** bytes);
void vow__value_set_len(vow_value_t* v, size_t len);
/* A value whose bytes stay where they are, inside base (malloc'd), which
 * the value frees when it goes: a big result taken without a copy. */
vow_value_t* vow__value_adopt(void* base, const void* bytes, size_t len);
/* The sealed shared-memory segment that holds v's bytes (base/shm.h):
 * made and kept with v the first time it is asked for, so a value sent to
 * many tasks is copied once; not made when the process's segments would
 * pass max_live bytes (ENOSPC) or number max_segments (EMFILE). *fd stays
 * v's (send it, do not close it). 0, or an errno value (the value then
 * goes by the wire). */
int vow__value_segment(vow_value_t* v, uint64_t max_live, uint64_t max_segments,
                       int* fd, uint64_t* off);
/* A value over the len bytes at off of a segment another process sent
 * (fd is taken, and kept for sending the value on), mapped read-only, or
 * read where it cannot be mapped; with copy, read into memory of its own
 * and the segment let go. The bytes must still be checked as a msgpack
 * object. NULL with why when the segment cannot be trusted. */
vow_value_t* vow__value_from_segment(int fd, uint64_t off, uint64_t len,
                                     bool copy, char* why, size_t why_len);
/* A value made writable in a segment (vow_value_new_shared) sealed now,
 * at its submission: its bytes read-only, its writable mapping gone (so
 * a queued value holds no memory of this process's). */
void vow__value_freeze(vow_value_t* v);
/* A reference inside a value's bytes (at: its first byte) and the part
 * it stands for (vow_value_new_with_parts). */
typedef struct vow__part_ref {
  size_t at;
  vow_value_t* part;
} vow__part_ref;
/* How many references v's bytes hold to parts, and (refs) where, in
 * order of position; 0 for a value made without parts. */
size_t vow__value_parts(const vow_value_t* v, const vow__part_ref** refs);
/* Segments this process holds (made or mapped) and their bytes. */
size_t vow__shm_live(uint64_t* bytes);

#endif /* VOW_CORE_CORE_H */
