/* Submitting and dispatching: a task enters the queue here, waits for
 * room, is cancelled while queued, and goes to the worker that can take
 * it. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

/* ---- tasks ----------------------------------------------------------- */

size_t vow__pool_in_flight(const vow_pool_t* pool) {
  const pworker* w;
  size_t n = 0;
  unsigned i;
  for (i = 0; i < pool->nworkers; i++)
    if ((w = pool->workers[i]) != NULL)
      n += w->inflight.len;
  for (w = pool->retiring; w != NULL; w = w->next_retiring)
    n += w->inflight.len;
  return n;
}

unsigned vow__pool_workers_alive(const vow_pool_t* pool) {
  unsigned i, n = 0;
  for (i = 0; i < pool->nworkers; i++)
    if (pool->workers[i] != NULL && pool->workers[i]->said_hello)
      n++;
  return n;
}

/* ---- dispatch -------------------------------------------------------- */

static void wake_space_waiters(vow_pool_t* pool);
static pworker* idle_worker(const vow_pool_t* pool) {
  unsigned i;
  for (i = 0; i < pool->nworkers; i++) {
    pworker* w = pool->workers[i];
    if (w != NULL && w->state == PW_READY && w->inflight.len == 0)
      return w;
  }
  return NULL;
}

/* Bytes of unsent messages a worker may have waiting in its pipe's write
 * queue before it is sent more. */
#define SEND_BACKLOG ((size_t)4 << 20)

/* How many of the n tasks at the queue's head fit in one batch: at
 * least one, then while their arguments stay within VOW__BATCH_BYTES. */
static size_t batch_within_bytes(const tlist* queue, size_t n) {
  const ptask* t = queue->head;
  size_t k, bytes = 0, len;
  for (k = 0; k < n && t != NULL; k++, t = t->next) {
    if (vow_value_bytes(t->args, &len) == NULL)
      len = 0;
    bytes += len;
    if (k > 0 && bytes > VOW__BATCH_BYTES)
      break;
  }
  return k;
}

/* A task sent ahead to a busy worker waits behind what it runs; once
 * another worker is idle with nothing queued, it is asked back (a CANCEL
 * the worker answers "cancelled before it started", if it had not begun
 * it, and the task goes back to the queue's front) from a worker that
 * has sent nothing for RECALL_AFTER_NS, so tiny tasks, always briefly
 * queued, are left where they are. */
#define RECALL_AFTER_NS 5000000ull

static void on_recall_timer(vow__timer* timer);

static unsigned idle_workers(const vow_pool_t* pool) {
  unsigned i, n = 0;
  for (i = 0; i < pool->nworkers; i++) {
    const pworker* w = pool->workers[i];
    if (w != NULL && w->state == PW_READY && w->inflight.len == 0)
      n++;
  }
  return n;
}

/* The last task w holds that it has not begun and that can be asked
 * back, or NULL. */
static ptask* recallable(const pworker* w) {
  ptask* t;
  for (t = w->inflight.tail; t != NULL && t != w->inflight.head; t = t->prev)
    if (!vow__task_settled(t) &&
        !(t->flags & (PT_CANCELLED | PT_RECALLED | PT_STARTED | PT_SUSPECT)))
      return t;
  return NULL;
}

static void recall_for_idle(vow_pool_t* pool) {
  unsigned idle, i;
  uint64_t now, soonest = 0;
  if (pool->queue.head != NULL || pool->closing == 2 ||
      (idle = idle_workers(pool)) == 0)
    return;
  now = vow__now_ns();
  for (i = 0; i < pool->nworkers && idle > 0; i++) {
    pworker* w = pool->workers[i];
    ptask* t;
    if (w == NULL || w->state != PW_READY || w->inflight.len < 2)
      continue;
    while (idle > 0 && (t = recallable(w)) != NULL) {
      uint64_t quiet = now - w->last_event_ns;
      if (quiet < RECALL_AFTER_NS) {
        uint64_t wait = RECALL_AFTER_NS - quiet;
        if (soonest == 0 || wait < soonest)
          soonest = wait;
        break;
      }
      VOW__TRACE(w, "task %llu asked back for an idle worker",
                 (unsigned long long)t->id);
      t->flags |= PT_RECALLED;
      vow__worker_send_cancel(w, t->id);
      idle--;
    }
  }
  if (soonest && idle > 0 && pool->recall_timer.index == SIZE_MAX) {
    pool->recall_timer.fire = on_recall_timer;
    pool->recall_timer.discard = NULL;
    vow__timer_start(pool->ctx, &pool->recall_timer, soonest / 1000000 + 1);
  }
}

static void on_recall_timer(vow__timer* timer) {
  vow_pool_t* pool = VOW__CONTAINER_OF(timer, vow_pool_t, recall_timer);
  recall_for_idle(pool);
}

static void dispatch(vow_pool_t* pool) {
  unsigned i, start;
  bool sent, idle_round = true;
  if (pool->closing == 2)
    return;
  /* Round after round, so workers share a backlog in turn; the first
   * round only to idle workers, so a task is sent ahead to a busy worker
   * only when no worker is idle. */
  start = (unsigned)(pool->next_id % (pool->nworkers ? pool->nworkers : 1));
  while (pool->queue.head != NULL) {
    sent = false;
    for (i = 0; i < pool->nworkers; i++) {
      pworker* w = pool->workers[(start + i) % pool->nworkers];
      size_t n;
      if (w == NULL || w->state != PW_READY ||
          (idle_round && w->inflight.len != 0))
        continue;
      /* A worker that is not reading what we send gets no more until
       * it has: bytes waiting for it stay within SEND_BACKLOG and one
       * batch. */
      if (vow__chan_backlog(&w->chan) >= SEND_BACKLOG)
        continue;
      if (w->inflight.len >= w->limit)
        continue; /* full */
      /* (its tasks searched only once there are suspects at all) */
      n = vow__sched_take(
          &pool->queue, w->inflight.len, w->limit,
          pool->had_suspects && vow__worker_holds(w, PT_SUSPECT));
      n = batch_within_bytes(&pool->queue, n);
      /* A worker to be recycled after N tasks is sent no more than N. */
      if (pool->opt.recycle_after && n > pool->opt.recycle_after - w->sent)
        n = pool->opt.recycle_after - w->sent;
      if (n == 0)
        continue;
      /* An idle worker takes one task in the first round: one more would
       * wait behind it while another worker may be idle too. */
      if (idle_round)
        n = 1;
      /* Share a backlog rather than fill the first worker to its limit. */
      if (n > 1 && pool->queue.len < (size_t)w->limit * pool->nworkers) {
        size_t share = (pool->queue.len + pool->nworkers - 1) / pool->nworkers;
        if (share < n)
          n = share ? share : 1;
      }
      vow__worker_send(w, n);
      sent = true;
      if (pool->queue.head == NULL)
        break;
    }
    if (idle_round)
      idle_round = false; /* then the rounds that send ahead */
    else if (!sent)
      break;
  }
  wake_space_waiters(pool);
  recall_for_idle(pool);
  if (pool->closing == 1 && pool->queue.head == NULL &&
      vow__pool_in_flight(pool) == 0) {
    for (i = 0; i < pool->nworkers; i++) {
      pworker* w = pool->workers[i];
      if (w != NULL && (w->state == PW_READY || w->state == PW_RETIRING))
        vow__worker_send_shutdown(w);
    }
  }
}

static void on_kick(uv_idle_t* idle) {
  vow_pool_t* pool = idle->data;
  uv_idle_stop(idle);
  pool->kick_armed = false;
  dispatch(pool);
}

void vow__pool_kick(vow_pool_t* pool) {
  if (pool->kick_armed || pool->ctx->closing)
    return;
  pool->kick_armed = true;
  uv_idle_start(&pool->kick, on_kick);
}

/* ---- space ----------------------------------------------------------- */

typedef struct space_wait {
  struct space_wait* next;
  vow_pool_t* pool;
  vow_promise_t* p;
} space_wait;

static void space_cancel(vow_promise_t* p, void* data) {
  space_wait* sw = data;
  space_wait** at;
  (void)p;
  for (at = &sw->pool->space; *at != NULL; at = &(*at)->next)
    if (*at == sw) {
      *at = sw->next;
      break;
    }
  vow__free(sw);
}

static bool has_room(const vow_pool_t* pool) {
  return pool->opt.queue_limit == 0 || pool->queue.len < pool->opt.queue_limit;
}

static void wake_space_waiters(vow_pool_t* pool) {
  size_t room = pool->opt.queue_limit ? pool->opt.queue_limit - pool->queue.len
                                      : SIZE_MAX;
  while (pool->space != NULL && room-- > 0) {
    space_wait* sw = pool->space;
    pool->space = sw->next;
    vow__clear_canceller(sw->p);
    vow_fulfil(sw->p, NULL);
    vow__free(sw);
  }
}

vow_promise_t* vow_pool_space(vow_pool_t* pool) {
  VOW__NOT_NULL(pool, "the pool");
  space_wait* sw;
  if (has_room(pool) || pool->closing)
    return vow_succeed(pool->ctx, NULL);
  sw = vow__malloc(sizeof(*sw));
  if (sw == NULL)
    return vow_fail(pool->ctx, vow__failure_nomem());
  sw->pool = pool;
  sw->p = vow_promise_new(pool->ctx, space_cancel, sw);
  if (sw->p == NULL) {
    vow__free(sw);
    return vow_fail(pool->ctx, vow__failure_nomem());
  }
  sw->next = pool->space;
  pool->space = sw;
  return sw->p;
}

/* ---- submit ---------------------------------------------------------- */

/* The pool's copy of a function name, or NULL when the pool knows its
 * functions and this is not one of them. */
static const char* intern(vow_pool_t* pool, const char* fn) {
  size_t i;
  char** grown;
  for (i = 0; i < pool->nnames; i++)
    if (strcmp(pool->names[i], fn) == 0)
      return pool->names[i];
  if (pool->nknown > 0)
    return NULL;
  /* Functions not known yet (no table, no HELLO): keep the name; the
   * worker will refuse it if it has no such function. */
  grown = vow__realloc(pool->names, (pool->nnames + 1) * sizeof(char*));
  if (grown == NULL)
    return NULL;
  pool->names = grown;
  pool->names[pool->nnames] = vow__strdup(fn);
  if (pool->names[pool->nnames] == NULL)
    return NULL;
  return pool->names[pool->nnames++];
}

static pworker* task_worker(const ptask* t) {
  return (t->flags & PT_INFLIGHT) ? t->at.w : NULL;
}

static vow_pool_t* task_pool(const ptask* t) {
  return (t->flags & PT_INFLIGHT) ? t->at.w->pool : t->at.pool;
}

/* A queued task leaves the queue. A running one is asked to stop with
 * CANCEL; its worker is killed if it has not replied within the grace
 * period. Either way vow_cancel rejects the promise right after this. */
static void task_cancel(vow_promise_t* p, void* data) {
  ptask* t = data;
  pworker* w = task_worker(t);
  vow_pool_t* pool = task_pool(t);
  (void)p;
  t->p = NULL;
  pool->stats.cancelled++;
  if (w == NULL) {
    vow__tlist_remove(&pool->queue, t);
    vow__task_free(pool, t);
    wake_space_waiters(pool);
    return;
  }
  t->flags |= PT_CANCELLED;
  vow__worker_send_cancel(w, t->id);
  /* Only the task the worker runs (its oldest) has a grace: one behind
   * it has not begun, and its worker answers when it gets there (the
   * grace starts if it becomes the oldest unanswered). */
  w->grace_timer.fire = vow__worker_grace_over;
  w->grace_timer.discard = NULL;
  if (t == w->inflight.head)
    vow__worker_arm_head(w);
}

static vow_promise_t* reject_now(vow_pool_t* pool, vow_value_t* args,
                                 vow_failure_t* f) {
  vow_value_release(args);
  return vow_fail(pool->ctx, f);
}

/* Whether each part of args (written in place by the caller, perhaps)
 * is one msgpack value within a task's limits, as arguments are held to
 * at submit. */
static bool parts_are_msgpack(const vow_value_t* args) {
  const vow__part_ref* refs;
  size_t k, n = vow__value_parts(args, &refs);
  for (k = 0; k < n; k++) {
    size_t len;
    const char* bytes = vow_value_bytes(refs[k].part, &len);
    vowp_limits lim = {0, VOWP_VALUE_MAX_OBJECTS, VOWP_TASK_MAX_DEPTH};
    vowp_error e;
    if (vowp_prescan(bytes, len, &lim, 0, &e) != VOWP_OK)
      return false;
  }
  return true;
}

vow_promise_t* vow__pool_submit_task(vow_pool_t* pool, const char* fn,
                                     vow_value_t* args, uint64_t timeout_ms,
                                     uint64_t id, uint64_t index,
                                     uint16_t count, bool flat) {
  ptask* t;
  vow_promise_t* p;
  const char* name;
  size_t alen;
  uint64_t ref_id, ref_off, ref_len;
  if (args == NULL)
    args = vow_value_nil();
  if (pool->closing)
    return reject_now(pool, args,
                      vow_failure_new(VOW_FAIL_CANCELLED, UV_ECANCELED,
                                      "the pool is shutting down"));
  if (pool->broken)
    return reject_now(
        pool, args,
        vow_failure_new(VOW_FAIL_WORKER_DIED, 0, "%s", pool->broken_why));
  if (fn == NULL)
    return reject_now(pool, args,
                      vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                      "no function name was given"));
  if (vow_value_kind(args) != VOW_VALUE_MSGPACK)
    return reject_now(
        pool, args,
        vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                        "arguments for %s must be a msgpack value, not a "
                        "pointer, array of values or failure",
                        fn));
  if (vow_value_bytes(args, &alen) != NULL &&
      vowp_shm_ref_read(vow_value_bytes(args, NULL), alen, &ref_id, &ref_off,
                        &ref_len))
    return reject_now(
        pool, args,
        vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                        "arguments for %s are a msgpack ext of type %d and "
                        "24 bytes, which the protocol keeps for references "
                        "to shared memory",
                        fn, VOWP_EXT_SHM));
  /* Inside arguments too a reference may stand only for a part. (A flat
   * chunk's items are scalars, which a reference is not.) */
  if (!flat && vow_value_bytes(args, &alen) != NULL &&
      vow__value_parts(args, NULL) == 0 &&
      vowp_shm_refs(vow_value_bytes(args, NULL), alen, NULL, 0) > 0)
    return reject_now(
        pool, args,
        vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                        "arguments for %s hold a msgpack ext of type %d and "
                        "24 bytes, which the protocol keeps for references "
                        "to shared memory (make them with "
                        "vow_value_new_with_parts)",
                        fn, VOWP_EXT_SHM));
  /* Past a frame's limit, only shared memory can carry them. */
  if (vow_value_bytes(args, &alen) != NULL &&
      alen > VOWP_DEFAULT_MAX_FRAME - strlen(fn) - 64 &&
      (vow__pool_shm_threshold(pool) == UINT64_MAX ||
       alen > vow__pool_shm_max_bytes(pool)))
    return reject_now(
        pool, args,
        vow_failure_new(VOW_FAIL_BAD_INPUT, UV_E2BIG,
                        "arguments for %s of %zu bytes exceed "
                        "the protocol's message limit of %zu "
                        "bytes",
                        fn, alen, (size_t)VOWP_DEFAULT_MAX_FRAME));
  /* Within the message's own limits, or the worker would refuse the
   * whole message and die of it. A value of at most VOWP_TASK_MAX_DEPTH
   * bytes cannot nest deeper, nor hold more objects, than allowed; nor
   * can a flat chunk. */
  if (alen > VOWP_TASK_MAX_DEPTH && !flat) {
    vowp_limits lim = {0, VOWP_VALUE_MAX_OBJECTS, VOWP_TASK_MAX_DEPTH};
    vowp_error e;
    const char* bytes = vow_value_bytes(args, NULL);
    if (vowp_prescan(bytes, alen, &lim, 0, &e) != VOWP_OK)
      return reject_now(
          pool, args,
          vow_failure_new(VOW_FAIL_BAD_INPUT, UV_E2BIG,
                          "arguments for %s cannot be sent: %s (a task's "
                          "arguments may nest %u containers deep and hold "
                          "%zu objects)",
                          fn, e.text, VOWP_TASK_MAX_DEPTH,
                          (size_t)VOWP_VALUE_MAX_OBJECTS));
  }
  /* Checked: a value made writable in shared memory is sealed now. */
  vow__value_freeze(args);
  if (!parts_are_msgpack(args))
    return reject_now(pool, args,
                      vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                      "arguments for %s hold a part that is "
                                      "not one msgpack value within a "
                                      "task's limits",
                                      fn));
  name = intern(pool, fn);
  if (name == NULL)
    return reject_now(pool, args,
                      vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                      "the pool's workers have no function "
                                      "named \"%s\"",
                                      fn));
  if (!has_room(pool))
    return reject_now(pool, args,
                      vow_failure_new(VOW_FAIL_QUEUE_FULL, VOW_EFULL,
                                      "the queue holds %zu tasks, its limit; "
                                      "wait on vow_pool_space",
                                      pool->queue.len));
  t = vow__arena_get(&pool->tasks);
  if (t == NULL)
    return reject_now(pool, args, vow__failure_nomem());
  memset(t, 0, sizeof(*t));
  t->p = vow_promise_new(pool->ctx, task_cancel, t);
  if (t->p == NULL) {
    vow__arena_put(&pool->tasks, t);
    return reject_now(pool, args, vow__failure_nomem());
  }
  t->id = id ? id : ++pool->next_id;
  t->index = index ? index : t->id;
  t->count = count;
  t->fn = name;
  t->args = args;
  t->timeout_ms = timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)timeout_ms;
  t->at.pool = pool;
  vow__tlist_push(&pool->queue, t);
  pool->stats.submitted++;
  p = t->p; /* t may be settled and gone once dispatched */
  if (pool->queue.len == 1 && idle_worker(pool) != NULL) {
    /* A lone task and an idle worker: send it now rather than on the next
     * tick, which is the whole round trip's latency for one-at-a-time
     * callers. Tasks submitted in a burst still queue and go in batches. */
    dispatch(pool);
  } else {
    vow__pool_kick(pool);
  }
  /* The caller's reference; the task keeps the pointer, not a
   * reference: a pending promise is never freed, and the task lets go of
   * it when it settles it. */
  return p;
}

vow_promise_t* vow_pool_submit_timeout(vow_pool_t* pool, const char* fn,
                                       vow_value_t* args, uint64_t timeout_ms) {
  VOW__NOT_NULL(pool, "the pool");
  return vow__pool_submit_task(pool, fn, args, timeout_ms, 0, 0, 0, false);
}

vow_promise_t* vow_pool_submit(vow_pool_t* pool, const char* fn,
                               vow_value_t* args) {
  VOW__NOT_NULL(pool, "the pool");
  return vow__pool_submit_task(pool, fn, args, 0, 0, 0, 0, false);
}

vow_ctx_t* vow__pool_ctx(const vow_pool_t* pool) {
  return pool->ctx;
}

unsigned vow__pool_slots(const vow_pool_t* pool) {
  return pool->nworkers;
}

uint64_t vow__pool_take_ids(vow_pool_t* pool, uint64_t n) {
  uint64_t first = pool->next_id + 1;
  pool->next_id += n;
  return first;
}

vow_promise_t* vow__pool_bad_index(vow_pool_t* pool, uint64_t index,
                                   vow_value_t* args) {
  if (index > 0)
    return NULL;
  vow_value_release(args);
  return vow_fail(pool->ctx, vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                             "run indexes start at 1"));
}

vow_promise_t* vow_pool_submit_indexed(vow_pool_t* pool, const char* fn,
                                       vow_value_t* args, uint64_t index) {
  vow_promise_t* refused;
  VOW__NOT_NULL(pool, "the pool");
  if ((refused = vow__pool_bad_index(pool, index, args)) != NULL)
    return refused;
  return vow__pool_submit_task(pool, fn, args, 0, 0, index, 0, false);
}

/* At shutdown: producers waiting for room will not get it. */
void vow__pool_refuse_space_waiters(vow_pool_t* pool) {
  while (pool->space != NULL) {
    space_wait* sw = pool->space;
    pool->space = sw->next;
    vow__clear_canceller(sw->p);
    vow_reject(sw->p, vow_failure_new(VOW_FAIL_CANCELLED, UV_ECANCELED,
                                      "the pool is shutting down"));
    vow__free(sw);
  }
}
