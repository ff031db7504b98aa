/* The pool: tasks, the queue, dispatch, worker life and death, shutdown.
 *
 * Every task's promise settles exactly once. A task is either in the
 * pool's queue, or in flight on exactly one worker, or settled and freed;
 * a worker's in-flight list is settled, re-queued or failed as a whole when
 * that worker goes, whatever the reason. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "mpi_host.h"
#include "pool_internal.h"

extern char** environ;

uint64_t vow__now_ns(void) {
  return uv_hrtime();
}

static void maybe_destroy(vow_pool_t* pool);

/* ---- task lists ------------------------------------------------------ */

void vow__tlist_push(tlist* l, ptask* t) {
  t->next = NULL;
  t->prev = l->tail;
  if (l->tail)
    l->tail->next = t;
  else
    l->head = t;
  l->tail = t;
  l->len++;
}

void vow__tlist_push_front(tlist* l, ptask* t) {
  t->prev = NULL;
  t->next = l->head;
  if (l->head)
    l->head->prev = t;
  else
    l->tail = t;
  l->head = t;
  l->len++;
}

void vow__tlist_remove(tlist* l, ptask* t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    l->head = t->next;
  if (t->next)
    t->next->prev = t->prev;
  else
    l->tail = t->prev;
  t->prev = t->next = NULL;
  l->len--;
}

/* ---- tasks ----------------------------------------------------------- */

static void free_task(vow_pool_t* pool, ptask* t) {
  vow_value_release(t->args);
  vow__pool_put(&pool->tasks, t);
}

void vow__pool_fail_task(vow_pool_t* pool, ptask* t, vow_failure_t* f) {
  if (t->p == NULL) {
    vow_failure_release(f);
    return;
  }
  pool->stats.failed++;
  vow_reject(t->p, f);
  t->p = NULL;
}

void vow__pool_task_done(pworker* w, ptask* t) {
  vow_pool_t* pool = w->pool;
  free_task(pool, t);
  if (pool->opt.recycle_after && w->state == PW_READY &&
      w->completed >= pool->opt.recycle_after && !pool->closing) {
    /* Recycled, like maxtasksperchild: it takes nothing new, finishes
     * what it holds, and a fresh worker takes its slot now. */
    w->state = PW_RETIRING;
    pool->workers[w->slot] = NULL;
    w->next_retiring = pool->retiring;
    pool->retiring = w;
    pool->stats.workers_alive--;
    w->said_hello = false; /* no longer counted as alive */
    vow__worker_start(pool, w->slot);
  }
  if (w->state == PW_RETIRING && w->inflight.len == 0)
    vow__worker_send_shutdown(w);
}

ptask* vow__pool_find_inflight(pworker* w, uint64_t id) {
  ptask* t;
  /* Replies come in the order the worker runs its tasks: the head, almost
   * always. */
  for (t = w->inflight.head; t != NULL; t = t->next)
    if (t->id == id)
      return t;
  return NULL;
}

static vow_failure_t* task_failure(int kind, int code, ptask* t, pworker* w,
                                   const char* fmt, ...) VOW_PRINTF(5, 6);
static vow_failure_t* task_failure(int kind, int code, ptask* t, pworker* w,
                                   const char* fmt, ...) {
  va_list ap;
  vow_failure_t* f;
  va_start(ap, fmt);
  f = vow__failure_newv(kind, code, fmt, ap);
  va_end(ap);
  vow_origin_t o = {t->id, t->fn, NULL, w ? w->pid : 0, -1, -1};
  if (w != NULL && w->exited) {
    o.exit_status = w->term_signal ? -1 : (int)w->exit_status;
    o.term_signal = w->term_signal ? w->term_signal : -1;
  }
  vow_failure_set_origin(f, &o);
  if (w != NULL && w->tail_len > 0)
    vow_failure_set_detail(f, w->tail);
  return f;
}

/* Puts tasks back at the queue's front in their order, untouched. */
static void requeue_front(vow_pool_t* pool, tlist* from, bool suspect) {
  while (from->tail != NULL) {
    ptask* t = from->tail;
    vow__tlist_remove(from, t);
    pool->stats.in_flight--;
    t->flags &= (uint8_t)~PT_INFLIGHT;
    t->at.pool = pool;
    if (vow__task_settled(t)) {
      free_task(pool, t);
      continue;
    }
    if (suspect)
      t->flags |= PT_SUSPECT;
    vow__tlist_push_front(&pool->queue, t);
  }
  pool->stats.queued = pool->queue.len;
}

/* ---- timers ---------------------------------------------------------- */

static void on_task_timeout(vow__timer* timer) {
  pworker* w = VOW__CONTAINER_OF(timer, pworker, task_timer);
  vow_pool_t* pool = w->pool;
  ptask* t = w->inflight.head;
  char why[64];
  if (t == NULL)
    return;
  vow__tlist_remove(&w->inflight, t);
  pool->stats.in_flight--;
  snprintf(why, sizeof(why), "%llu ms",
           (unsigned long long)(t->timeout_ms ? t->timeout_ms
                                              : pool->opt.timeout_ms));
  if (!vow__task_settled(t))
    vow__pool_fail_task(pool, t,
                        task_failure(VOW_FAIL_TIMEOUT, UV_ETIMEDOUT, t, w,
                                     "the task ran past its timeout of %s; "
                                     "its worker was killed",
                                     why));
  free_task(pool, t);
  /* The others it held never started: they go back as they were. */
  requeue_front(pool, &w->inflight, false);
  vow__worker_kill(w, PK_TIMEOUT);
  vow__pool_kick(pool);
}

static void on_grace_over(vow__timer* timer) {
  pworker* w = VOW__CONTAINER_OF(timer, pworker, grace_timer);
  requeue_front(w->pool, &w->inflight, false);
  vow__worker_kill(w, PK_GRACE);
  vow__pool_kick(w->pool);
}

void vow__pool_arm_head(pworker* w) {
  vow_pool_t* pool = w->pool;
  ptask* t = w->inflight.head;
  uint64_t ms;
  vow__timer_stop(pool->ctx, &w->task_timer);
  if (t == NULL || w->state == PW_STOPPING || w->state == PW_DEAD)
    return;
  ms = t->timeout_ms ? t->timeout_ms : pool->opt.timeout_ms;
  if (ms == 0 || vow__task_settled(t))
    return;
  w->task_timer.fire = on_task_timeout;
  w->task_timer.discard = NULL;
  vow__timer_start(pool->ctx, &w->task_timer, ms);
}

/* ---- dispatch -------------------------------------------------------- */

static bool has_suspect(const pworker* w) {
  const ptask* t;
  for (t = w->inflight.head; t != NULL; t = t->next)
    if (t->flags & PT_SUSPECT)
      return true;
  return false;
}

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
/* Arguments per batch: a frame stays far below the protocol's limit and
 * one worker does not take a long run of big tasks at once. */
#define BATCH_BYTES ((size_t)1 << 20)

/* How many of the n tasks at the queue's head fit in one batch: at
 * least one, then while their arguments stay within BATCH_BYTES. */
static size_t batch_within_bytes(const tlist* queue, size_t n) {
  const ptask* t = queue->head;
  size_t k, bytes = 0, len;
  for (k = 0; k < n && t != NULL; k++, t = t->next) {
    if (vow_value_bytes(t->args, &len) == NULL)
      len = 0;
    bytes += len;
    if (k > 0 && bytes > BATCH_BYTES)
      break;
  }
  return k;
}

static void dispatch(vow_pool_t* pool) {
  unsigned i, start;
  bool sent = true;
  if (pool->closing == 2)
    return;
  /* Round after round, so workers share a backlog in turn. */
  start = (unsigned)(pool->next_id % (pool->nworkers ? pool->nworkers : 1));
  while (sent && pool->queue.head != NULL) {
    sent = false;
    for (i = 0; i < pool->nworkers; i++) {
      pworker* w = pool->workers[(start + i) % pool->nworkers];
      size_t n;
      if (w == NULL || w->state != PW_READY)
        continue;
      /* A worker that is not reading what we send gets no more until
       * it has: bytes waiting for it stay within SEND_BACKLOG and one
       * batch. */
      if (w->chan.write_queue_size >= SEND_BACKLOG)
        continue;
      n = vow__sched_take(&pool->queue, w->inflight.len, w->limit,
                          has_suspect(w));
      n = batch_within_bytes(&pool->queue, n);
      /* A worker to be recycled after N tasks is sent no more than N. */
      if (pool->opt.recycle_after && n > pool->opt.recycle_after - w->sent)
        n = pool->opt.recycle_after - w->sent;
      if (n == 0)
        continue;
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
  }
  wake_space_waiters(pool);
  if (pool->closing == 1 && pool->queue.head == NULL &&
      pool->stats.in_flight == 0) {
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
    pool->stats.queued = pool->queue.len;
    free_task(pool, t);
    wake_space_waiters(pool);
    return;
  }
  t->flags |= PT_CANCELLED;
  w->cancelled_pending++;
  vow__worker_send_cancel(w, t->id);
  if (w->grace_timer.index == SIZE_MAX && w->state != PW_STOPPING) {
    w->grace_timer.fire = on_grace_over;
    w->grace_timer.discard = NULL;
    vow__timer_start(
        pool->ctx, &w->grace_timer,
        pool->opt.cancel_grace_ms ? pool->opt.cancel_grace_ms : 1000);
  }
  if (t == w->inflight.head)
    vow__pool_arm_head(w);
}

static vow_promise_t* reject_now(vow_pool_t* pool, vow_value_t* args,
                                 vow_failure_t* f) {
  vow_value_release(args);
  return vow_fail(pool->ctx, f);
}

/* Queues a task (count == 0) or a map chunk of count items whose first
 * has run index id; id 0 takes the next index. */
static vow_promise_t* submit_task(vow_pool_t* pool, const char* fn,
                                  vow_value_t* args, uint64_t timeout_ms,
                                  uint64_t id, uint16_t count) {
  ptask* t;
  const char* name;
  size_t alen;
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
      alen > VOWP_DEFAULT_MAX_FRAME - strlen(fn) - 64)
    return reject_now(
        pool, args,
        vow_failure_new(VOW_FAIL_BAD_INPUT, UV_E2BIG,
                        "arguments for %s of %zu bytes exceed "
                        "the protocol's message limit of %zu "
                        "bytes",
                        fn, alen, (size_t)VOWP_DEFAULT_MAX_FRAME));
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
  t = vow__pool_get(&pool->tasks);
  if (t == NULL)
    return reject_now(pool, args, vow__failure_nomem());
  memset(t, 0, sizeof(*t));
  t->p = vow_promise_new(pool->ctx, task_cancel, t);
  if (t->p == NULL) {
    vow__pool_put(&pool->tasks, t);
    return reject_now(pool, args, vow__failure_nomem());
  }
  t->id = id ? id : ++pool->next_id;
  t->count = count;
  t->fn = name;
  t->args = args;
  t->timeout_ms = timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)timeout_ms;
  t->at.pool = pool;
  vow__tlist_push(&pool->queue, t);
  pool->stats.submitted++;
  pool->stats.queued = pool->queue.len;
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
  return t->p;
}

vow_promise_t* vow_pool_submit_timeout(vow_pool_t* pool, const char* fn,
                                       vow_value_t* args, uint64_t timeout_ms) {
  return submit_task(pool, fn, args, timeout_ms, 0, 0);
}

vow_promise_t* vow_pool_submit(vow_pool_t* pool, const char* fn,
                               vow_value_t* args) {
  return submit_task(pool, fn, args, 0, 0, 0);
}

/* ---- worker life ----------------------------------------------------- */

static void start_empty_slots(vow_pool_t* pool) {
  unsigned i;
  for (i = 0; i < pool->nworkers; i++)
    if (pool->workers[i] == NULL && !pool->slot_given_up[i])
      vow__worker_start(pool, i);
}

static void on_respawn(vow__timer* timer) {
  vow_pool_t* pool = VOW__CONTAINER_OF(timer, vow_pool_t, respawn_timer);
  if (pool->closing == 2 || pool->broken)
    return;
  start_empty_slots(pool);
}

void vow__pool_start_later(vow_pool_t* pool) {
  if (pool->respawn_timer.index != SIZE_MAX || pool->closing == 2)
    return;
  pool->respawn_timer.fire = on_respawn;
  pool->respawn_timer.discard = NULL;
  vow__timer_start(pool->ctx, &pool->respawn_timer,
                   vow__sched_backoff_ms(pool->start_failures + 1));
}

void vow__pool_worker_ready(pworker* w) {
  vow_pool_t* pool = w->pool;
  w->state = PW_READY;
  w->said_hello = true;
  pool->start_failures = 0;
  pool->slot_failures[w->slot] = 0;
  pool->stats.workers_alive++;
  vow__pool_kick(pool);
}

/* A worker that dies of a signal someone sends (kill, an OOM killer, a
 * chaos test) before its HELLO says nothing about whether the command can
 * start: it is a death like any other, not a failed start. Crashes
 * (SIGSEGV, SIGABRT...) at start-up and exits do count. */
static bool killed_from_outside(const pworker* w) {
  switch (w->term_signal) {
    case SIGKILL:
    case SIGTERM:
    case SIGINT:
    case SIGHUP:
    case SIGQUIT:
    case SIGUSR1:
    case SIGUSR2:
      return w->kill == PK_NONE && w->spawned;
    default:
      return false;
  }
}

/* Describes how a worker ended, for failures and for the pool's reason to
 * give up. */
static void describe_end(const pworker* w, char* buf, size_t size) {
  if (w->why[0] != '\0')
    snprintf(buf, size, "%s", w->why);
  else if (w->term_signal)
    snprintf(buf, size, "worker pid %d was killed by signal %d (%s)", w->pid,
             w->term_signal, strsignal(w->term_signal));
  else
    snprintf(buf, size, "worker pid %d exited with status %lld", w->pid,
             (long long)w->exit_status);
}

static void fail_queue(vow_pool_t* pool, int kind, const char* why) {
  while (pool->queue.head != NULL) {
    ptask* t = pool->queue.head;
    vow__tlist_remove(&pool->queue, t);
    vow__pool_fail_task(pool, t, task_failure(kind, 0, t, NULL, "%s", why));
    free_task(pool, t);
  }
  pool->stats.queued = 0;
}

static void finish_shutdown(vow_pool_t* pool) {
  if (pool->live_workers > 0 || pool->shutdown_p == NULL)
    return;
  vow__timer_stop(pool->ctx, &pool->respawn_timer);
  if (vow_promise_state(pool->shutdown_p) == VOW_PENDING)
    vow_fulfil(pool->shutdown_p, NULL);
}

/* Deals with every task the worker held when it went. */
static void settle_inflight(vow_pool_t* pool, pworker* w, const char* why) {
  bool alone = w->inflight.len == 1;
  tlist retry = {NULL, NULL, 0};
  while (w->inflight.head != NULL) {
    ptask* t = w->inflight.head;
    vow__tlist_remove(&w->inflight, t);
    pool->stats.in_flight--;
    t->flags &= (uint8_t)~PT_INFLIGHT;
    t->at.pool = pool;
    if (vow__task_settled(t)) {
      free_task(pool, t);
      continue;
    }
    if (w->kill == PK_PROTOCOL && pool->opt.retries == 0) {
      vow__pool_fail_task(pool, t,
                          task_failure(VOW_FAIL_PROTOCOL, 0, t, w,
                                       "%s; the worker was killed", why));
      free_task(pool, t);
      continue;
    }
    if (w->kill == PK_ASKED || w->kill == PK_TIMEOUT || w->kill == PK_GRACE) {
      vow__tlist_push(&retry, t); /* not its fault: as it was */
      continue;
    }
    /* It died on its own, or broke the protocol (retried alike: the task
     * may be what broke it), with this task on it. A task counts a try only
     * when it was alone on the worker, the one certain culprit; when
     * several were, each becomes a suspect and runs alone from now on,
     * so the one that kills its worker is found without blaming the
     * others for the company they kept. */
    if (pool->opt.retries > 0 && pool->closing != 2 &&
        (!alone || ++t->attempts <= pool->opt.retries)) {
      pool->stats.retried++;
      t->flags |= PT_SUSPECT;
      vow__tlist_push(&retry, t);
      continue;
    }
    if (pool->opt.retries > 0)
      vow__pool_fail_task(
          pool, t,
          task_failure(VOW_FAIL_POISON, 0, t, w,
                       "poison task: it was on a worker that died each of "
                       "its tries (%s)",
                       why));
    else
      vow__pool_fail_task(pool, t,
                          task_failure(VOW_FAIL_WORKER_DIED, 0, t, w,
                                       "the worker died: %s", why));
    free_task(pool, t);
  }
  while (retry.tail != NULL) {
    ptask* t = retry.tail;
    vow__tlist_remove(&retry, t);
    if (pool->closing == 2) {
      vow__pool_fail_task(pool, t,
                          task_failure(VOW_FAIL_CANCELLED, UV_ECANCELED, t,
                                       NULL, "%s", "the pool was shut down"));
      free_task(pool, t);
    } else {
      vow__tlist_push_front(&pool->queue, t);
    }
  }
  pool->stats.queued = pool->queue.len;
}

void vow__pool_worker_gone(pworker* w) {
  vow_pool_t* pool = w->pool;
  char why[700];
  bool in_slot = pool->workers[w->slot] == w;
  describe_end(w, why, sizeof(why));
  if (w->said_hello && w->state != PW_STARTING) {
    /* counted in vow__pool_worker_ready */
  }
  if (w->said_hello)
    pool->stats.workers_alive--;
  if (w->kill == PK_NONE)
    pool->stats.worker_deaths++;
  if (!pool->ctx->closing) {
    settle_inflight(pool, w, why);
  } else {
    /* The context is closing: its promises are being reported and freed;
     * only our own records go. */
    while (w->inflight.head != NULL) {
      ptask* t = w->inflight.head;
      vow__tlist_remove(&w->inflight, t);
      free_task(pool, t);
    }
  }
  if (in_slot)
    pool->workers[w->slot] = NULL;
  if (!in_slot) {
    pworker** at;
    for (at = &pool->retiring; *at != NULL; at = &(*at)->next_retiring)
      if (*at == w) {
        *at = w->next_retiring;
        break;
      }
  }
  if (!pool->ctx->closing && in_slot && pool->closing != 2 &&
      (pool->closing == 0 || pool->queue.head != NULL)) {
    if (!w->said_hello && w->kill != PK_ASKED && !killed_from_outside(w)) {
      /* It never started. Try again later, and not forever: a slot whose
       * worker fails every time (a host down under a launcher) is given
       * up, and the pool only when every slot is. */
      unsigned attempts =
          pool->opt.start_attempts ? pool->opt.start_attempts : 5;
      pool->start_failures++;
      if (++pool->slot_failures[w->slot] >= attempts) {
        pool->slot_given_up[w->slot] = true;
        pool->stats.slots_given_up++;
        snprintf(pool->broken_why, sizeof(pool->broken_why),
                 "workers cannot start (%u tries): %s%s%s", attempts, why,
                 w->tail_len ? "; its stderr ends: " : "",
                 w->tail_len ? w->tail : "");
        if (pool->opt.stderr_mode == VOW_STDERR_RELAY &&
            pool->stats.slots_given_up < pool->nworkers) {
          char head[64];
          int h = snprintf(head, sizeof(head),
                           "[worker %u] slot given up: ", w->slot);
          vow__relay_line(head, (size_t)h, pool->broken_why,
                          strlen(pool->broken_why));
        }
      }
      if (pool->stats.slots_given_up == pool->nworkers) {
        pool->broken = true;
        fail_queue(pool, VOW_FAIL_WORKER_DIED, pool->broken_why);
      } else if (pool->slot_given_up[w->slot]) {
        /* its tasks went back to the queue: the other slots take them */
      } else if (pool->respawn_timer.index == SIZE_MAX) {
        pool->respawn_timer.fire = on_respawn;
        pool->respawn_timer.discard = NULL;
        vow__timer_start(pool->ctx, &pool->respawn_timer,
                         vow__sched_backoff_ms(pool->start_failures));
      }
    } else {
      vow__worker_start(pool, w->slot);
    }
  }
  vow__free(w);
  if (!pool->ctx->closing) {
    finish_shutdown(pool);
    vow__pool_kick(pool);
  }
  maybe_destroy(pool);
}

/* ---- the pool -------------------------------------------------------- */

static void free_strv(char** v) {
  size_t i;
  for (i = 0; v && v[i]; i++)
    vow__free(v[i]);
  vow__free(v);
}

/* A copy of v with room for `extra` more entries, or NULL: a copy that
 * lost an entry to a failed allocation would start workers with a
 * truncated environment. */
static char** copy_strv(const char* const* v, size_t extra) {
  size_t n = 0, i;
  char** out;
  while (v && v[n])
    n++;
  out = vow__calloc(n + extra + 1, sizeof(char*));
  if (out == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if ((out[i] = vow__strdup(v[i])) == NULL) {
      free_strv(out);
      return NULL;
    }
  return out;
}

static size_t strv_len(char** v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

static int add_env(char** env, const char* name, const char* value) {
  size_t n = strv_len(env);
  size_t len = strlen(name) + strlen(value) + 2;
  env[n] = vow__malloc(len);
  if (env[n] == NULL)
    return UV_ENOMEM;
  snprintf(env[n], len, "%s=%s", name, value);
  return 0;
}

/* What runs on another machine (through a launcher or on an MPI rank):
 * `env VOW_WORKER_CHANNEL=stdio [VOW_WORKER_LIMITS=...] [the caller's
 * variables...]` and the worker command, as launchers such as ssh pass no
 * environment; the channel is the worker's stdin and stdout. */
static int make_remote_argv(vow_pool_t* pool, const vow_pool_options_t* o) {
  size_t nworker = strv_len(pool->argv), nenv = 0, i, at = 0;
  char** v;
  char limits[512];
  while (o && o->env && o->env[nenv])
    nenv++;
  v = pool->remote_argv = vow__calloc(nworker + nenv + 4, sizeof(char*));
  if (v == NULL)
    return -1;
  if ((v[at++] = vow__strdup("env")) == NULL ||
      (v[at++] = vow__strdup("VOW_WORKER_CHANNEL=stdio")) == NULL)
    return -1;
  if (o && o->limits) {
    snprintf(limits, sizeof(limits), "VOW_WORKER_LIMITS=%s", o->limits);
    if ((v[at++] = vow__strdup(limits)) == NULL)
      return -1;
  }
  for (i = 0; i < nenv; i++)
    if ((v[at++] = vow__strdup(o->env[i])) == NULL)
      return -1;
  for (i = 0; i < nworker; i++)
    if ((v[at++] = vow__strdup(pool->argv[i])) == NULL)
      return -1;
  return 0;
}

/* Each launcher slot's command: the launcher, then the remote command.
 * The launcher itself runs without VOW_PARENT_PID: the worker's parent
 * is not us. */
static int make_launch_slots(vow_pool_t* pool, const vow_pool_options_t* o) {
  size_t l, i, slot = 0, nremote = strv_len(pool->remote_argv), k;
  pool->slot_argv = vow__calloc(pool->nworkers, sizeof(char**));
  pool->launch_env = vow__calloc(strv_len(pool->env) + 1, sizeof(char*));
  if (pool->slot_argv == NULL || pool->launch_env == NULL)
    return -1;
  for (i = 0, k = 0; pool->env[i] != NULL; i++)
    if (strncmp(pool->env[i], "VOW_PARENT_PID=", 15) != 0 &&
        strncmp(pool->env[i], "VOW_WORKER_CHANNEL=", 19) != 0 &&
        (pool->launch_env[k++] = vow__strdup(pool->env[i])) == NULL)
      return -1;
  for (l = 0; l < o->nlaunchers; l++) {
    const vow_launcher_t* L = &o->launchers[l];
    unsigned n = L->workers ? L->workers : 1, s;
    size_t nl = strv_len((char**)L->argv);
    for (s = 0; s < n; s++, slot++) {
      char** v = vow__calloc(nl + nremote + 1, sizeof(char*));
      size_t at = 0;
      if (v == NULL)
        return -1;
      pool->slot_argv[slot] = v;
      for (i = 0; i < nl; i++)
        if ((v[at++] = vow__strdup(L->argv[i])) == NULL)
          return -1;
      for (i = 0; i < nremote; i++)
        if ((v[at++] = vow__strdup(pool->remote_argv[i])) == NULL)
          return -1;
    }
  }
  return 0;
}

static void pool_shutdown_op(vow__op* op);

static void on_handle_closed(uv_handle_t* h) {
  vow_pool_t* pool = h->data;
  pool->handles_open--;
  maybe_destroy(pool);
}

static void close_handles(vow_pool_t* pool) {
  if (!uv_is_closing((uv_handle_t*)&pool->kick))
    uv_close((uv_handle_t*)&pool->kick, on_handle_closed);
  if (pool->mpi)
    vow__mpi_pool_close(pool, on_handle_closed);
}

static void destroy(vow_pool_t* pool) {
  size_t i;
  while (pool->queue.head != NULL) {
    ptask* t = pool->queue.head;
    vow__tlist_remove(&pool->queue, t);
    free_task(pool, t);
  }
  vow__free(pool->cwd_copy);
  free_strv(pool->argv);
  free_strv(pool->env);
  free_strv(pool->launch_env);
  free_strv(pool->remote_argv);
  for (i = 0; pool->slot_argv && i < pool->nworkers; i++)
    free_strv(pool->slot_argv[i]);
  vow__free(pool->slot_argv);
  vow__free(pool->slot_failures);
  vow__free(pool->slot_given_up);
  for (i = 0; i < pool->nnames; i++)
    vow__free(pool->names[i]);
  vow__free(pool->names);
  vow__free(pool->workers);
  vow__pool_destroy(&pool->tasks);
  vow__free(pool);
}

/* This process was started as a pool's worker, and its main() went on
 * past where vow_worker_main() should have served: a pool here would
 * start workers that do the same, without end. Say what to do, and make
 * sure this process still dies with the parent that started it. */
static void refuse_in_worker(void) {
  const char* parent = getenv("VOW_PARENT_PID");
  fprintf(stderr,
          "vow: vow_pool_new was called in a worker process: call "
          "vow_worker_main() first in main(), before anything else, so "
          "that this program serves as its own worker\n");
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent != NULL && (pid_t)strtol(parent, NULL, 10) != getppid())
    _exit(1); /* the parent is gone already: the signal will never come */
}

vow_pool_t* vow_pool_new(vow_ctx_t* ctx, const vow_pool_options_t* options,
                         int* err) {
  vow_pool_t* pool = vow__calloc(1, sizeof(*pool));
  char buf[4096];
  size_t n, i;
  int rc = UV_ENOMEM;
  struct sigaction sa;
  if (getenv("VOW_WORKER_CHANNEL") != NULL) {
    refuse_in_worker();
    rc = UV_EPERM;
    goto fail;
  }
  if (options && options->retries > VOW_POOL_MAX_RETRIES) {
    rc = UV_EINVAL;
    goto fail;
  }
  if (pool == NULL)
    goto fail;
  pool->ctx = ctx;
  if (options)
    pool->opt = *options;
  pool->opt.worker_argv = NULL;
  pool->opt.env = NULL;
  pool->opt.functions = NULL;
  if (options && options->launchers && options->nlaunchers > 0) {
    pool->opt.workers = 0;
    for (i = 0; i < options->nlaunchers; i++) {
      if (options->launchers[i].argv == NULL ||
          options->launchers[i].argv[0] == NULL) {
        rc = UV_EINVAL;
        goto fail;
      }
      pool->opt.workers +=
          options->launchers[i].workers ? options->launchers[i].workers : 1;
    }
  }
  pool->opt.launchers = NULL;
  /* Under mpirun the workers run on the other ranks: as many as asked
   * for, spread over the slots the ranks offer, or all of those. */
  pool->mpi = vow__mpi_join();
  if (pool->mpi) {
    if (options && options->nlaunchers > 0) {
      rc = UV_EINVAL; /* workers run on the job's ranks, not launchers */
      goto fail;
    }
    if (pool->opt.workers == 0)
      pool->opt.workers = vow__mpi_slots();
  }
  if (pool->opt.workers == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pool->opt.workers = cpus > 0 ? (unsigned)cpus : 1;
  }
  pool->nworkers = pool->opt.workers;
  pool->respawn_timer.index = SIZE_MAX;
  vow__pool_init(&pool->tasks, sizeof(ptask), 256);

  /* The worker command: given, or this very program. */
  if (options && options->worker_argv && options->worker_argv[0]) {
    pool->argv = copy_strv(options->worker_argv, 0);
  } else {
    n = sizeof(buf);
    if ((rc = uv_exepath(buf, &n)) != 0)
      goto fail;
    pool->argv = vow__calloc(2, sizeof(char*));
    if (pool->argv)
      pool->argv[0] = vow__strdup(buf);
    rc = UV_ENOMEM;
  }
  if (pool->argv == NULL || pool->argv[0] == NULL)
    goto fail;

  /* Its environment: ours, the caller's additions, and the channel. */
  pool->env = copy_strv((const char* const*)environ,
                        strv_len((char**)(options ? options->env : NULL)) + 4);
  if (pool->env == NULL)
    goto fail;
  for (i = 0; options && options->env && options->env[i]; i++)
    if ((pool->env[strv_len(pool->env)] = vow__strdup(options->env[i])) == NULL)
      goto fail;
  snprintf(buf, sizeof(buf), "%d", (int)getpid());
  if (add_env(pool->env, "VOW_WORKER_CHANNEL", "3") != 0 ||
      add_env(pool->env, "VOW_PARENT_PID", buf) != 0 ||
      (pool->opt.limits &&
       add_env(pool->env, "VOW_WORKER_LIMITS", pool->opt.limits) != 0))
    goto fail;
  if ((pool->mpi || (options && options->nlaunchers > 0)) &&
      make_remote_argv(pool, options) != 0)
    goto fail;
  if (options && options->launchers && options->nlaunchers > 0 &&
      make_launch_slots(pool, options) != 0)
    goto fail;
  pool->opt.limits = NULL;
  pool->opt.cwd = NULL; /* copied below */

  /* The functions, known now from a table or later from a HELLO. */
  if (options && options->functions && options->nfunctions > 0) {
    pool->names = vow__calloc(options->nfunctions, sizeof(char*));
    if (pool->names == NULL)
      goto fail;
    for (i = 0; i < options->nfunctions; i++) {
      if ((pool->names[i] = vow__strdup(options->functions[i].name)) == NULL)
        goto fail;
      pool->nnames++;
    }
    pool->nknown = pool->nnames;
  } else {
    pool->names_from_hello = true;
  }
  if (options && options->cwd) {
    pool->cwd_copy = vow__strdup(options->cwd);
    if (pool->cwd_copy == NULL)
      goto fail;
    pool->opt.cwd = pool->cwd_copy;
  }

  pool->workers = vow__calloc(pool->nworkers, sizeof(pworker*));
  pool->slot_failures = vow__calloc(pool->nworkers, sizeof(unsigned));
  pool->slot_given_up = vow__calloc(pool->nworkers, sizeof(bool));
  if (pool->workers == NULL || pool->slot_failures == NULL ||
      pool->slot_given_up == NULL)
    goto fail;

  /* A worker that dies while we write to it must show as EPIPE, not kill
   * us; we touch SIGPIPE only when the host left it at its default. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }

  if (pool->mpi && (rc = vow__mpi_pool_init(pool)) != 0)
    goto fail;
  uv_idle_init(ctx->loop, &pool->kick);
  pool->kick.data = pool;
  pool->handles_open = pool->mpi ? 2 : 1;
  vow__op_start(ctx, &pool->op, pool_shutdown_op);
  start_empty_slots(pool);
  return pool;
fail:
  if (err)
    *err = rc;
  if (pool)
    destroy(pool);
  return NULL;
}

static void cancel_all_tasks(vow_pool_t* pool, const char* why) {
  unsigned i;
  pworker* w;
  fail_queue(pool, VOW_FAIL_CANCELLED, why);
  for (i = 0; i < pool->nworkers; i++) {
    w = pool->workers[i];
    if (w == NULL)
      continue;
    for (ptask* t = w->inflight.head; t != NULL; t = t->next)
      vow__pool_fail_task(
          pool, t,
          task_failure(VOW_FAIL_CANCELLED, UV_ECANCELED, t, w, "%s", why));
  }
  for (w = pool->retiring; w != NULL; w = w->next_retiring)
    for (ptask* t = w->inflight.head; t != NULL; t = t->next)
      vow__pool_fail_task(
          pool, t,
          task_failure(VOW_FAIL_CANCELLED, UV_ECANCELED, t, w, "%s", why));
}

static void kill_all(vow_pool_t* pool) {
  unsigned i;
  pworker* w;
  for (i = 0; i < pool->nworkers; i++)
    if ((w = pool->workers[i]) != NULL)
      vow__worker_kill(w, PK_ASKED);
  for (w = pool->retiring; w != NULL; w = w->next_retiring)
    vow__worker_kill(w, PK_ASKED);
}

vow_promise_t* vow_pool_shutdown(vow_pool_t* pool, bool graceful) {
  if (pool->shutdown_p == NULL) {
    pool->shutdown_p = vow_promise_new(pool->ctx, NULL, NULL);
    if (pool->shutdown_p == NULL)
      return NULL;
  }
  if (!graceful && pool->closing != 2) {
    pool->closing = 2;
    vow__timer_stop(pool->ctx, &pool->respawn_timer);
    cancel_all_tasks(pool, "the pool was shut down");
    kill_all(pool);
  } else if (pool->closing == 0) {
    pool->closing = 1;
    if (pool->broken)
      kill_all(pool);
    vow__pool_kick(pool);
  }
  while (pool->space != NULL) {
    space_wait* sw = pool->space;
    pool->space = sw->next;
    vow__clear_canceller(sw->p);
    vow_reject(sw->p, vow_failure_new(VOW_FAIL_CANCELLED, UV_ECANCELED,
                                      "the pool is shutting down"));
    vow__free(sw);
  }
  finish_shutdown(pool);
  return vow_promise_ref(pool->shutdown_p);
}

/* Frees the pool once nothing of it is left on the loop: after
 * vow_pool_free, or when its context closes. */
static void maybe_destroy(vow_pool_t* pool) {
  if (pool->handles_open > 0 || pool->live_workers > 0)
    return;
  if (!pool->freeing && !pool->ctx->closing)
    return;
  if (!pool->freeing)
    vow__op_done(pool->ctx, &pool->op);
  destroy(pool);
}

void vow_pool_free(vow_pool_t* pool) {
  if (pool == NULL)
    return;
  if (pool->live_workers > 0) {
    fprintf(stderr,
            "vow: vow_pool_free called before its shutdown "
            "completed\n");
    abort();
  }
  vow__op_done(pool->ctx, &pool->op);
  /* The workers' last lines (a crash report) reach stderr before the
   * caller goes on, unless stderr is stuck. */
  if (pool->opt.stderr_mode == VOW_STDERR_RELAY)
    vow__relay_flush(1000);
  vow_promise_release(pool->shutdown_p);
  pool->shutdown_p = NULL;
  pool->freeing = true;
  fail_queue(pool, VOW_FAIL_CANCELLED, "the pool was freed");
  close_handles(pool);
}

/* At context close: kill everything, settle nothing; the pool is freed
 * once every handle of it is closed. */
static void pool_shutdown_op(vow__op* op) {
  vow_pool_t* pool = VOW__CONTAINER_OF(op, vow_pool_t, op);
  pool->closing = 2;
  vow__timer_stop(pool->ctx, &pool->respawn_timer);
  kill_all(pool);
  close_handles(pool);
}

void vow_pool_stats(const vow_pool_t* pool, vow_pool_stats_t* out) {
  *out = pool->stats;
  out->queued = pool->queue.len;
}

void vow_pool_on_progress(vow_pool_t* pool, vow_progress_fn fn, void* data) {
  pool->progress = fn;
  pool->progress_data = data;
}

/* ---- map and stream -------------------------------------------------- */

/* The elements of items as separate values: an array value's own items,
 * or each element of an encoded msgpack array. Returns the count, or
 * (size_t)-1 when items is neither. *out is malloc'd; each is a new
 * reference. */
static size_t split_items(vow_value_t* items, vow_value_t*** out) {
  size_t n, i;
  *out = NULL;
  if (items == NULL)
    return (size_t)-1;
  if (vow_value_kind(items) == VOW_VALUE_ARRAY) {
    n = vow_value_array_len(items);
    *out = vow__malloc((n ? n : 1) * sizeof(vow_value_t*));
    if (*out == NULL)
      return (size_t)-1;
    for (i = 0; i < n; i++)
      (*out)[i] = vow_value_ref(vow_value_array_at(items, i));
    return n;
  }
  {
    size_t len;
    const char* bytes = vow_value_bytes(items, &len);
    vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
    vowp_error err;
    msgpack_unpacked un;
    size_t off = 0;
    if (bytes == NULL || vowp_prescan(bytes, len, &lim, 0, &err) != VOWP_OK)
      return (size_t)-1;
    msgpack_unpacked_init(&un);
    if (msgpack_unpack_next(&un, bytes, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        un.data.type != MSGPACK_OBJECT_ARRAY) {
      msgpack_unpacked_destroy(&un);
      return (size_t)-1;
    }
    n = un.data.via.array.size;
    *out = vow__malloc((n ? n : 1) * sizeof(vow_value_t*));
    for (i = 0; *out != NULL && i < n; i++) {
      msgpack_sbuffer sb;
      msgpack_packer pk;
      msgpack_sbuffer_init(&sb);
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_object(&pk, un.data.via.array.ptr[i]);
      (*out)[i] = vow__value_from_encoded(sb.data, sb.size);
      msgpack_sbuffer_destroy(&sb);
      if ((*out)[i] == NULL)
        (*out)[i] = vow_value_nil();
    }
    msgpack_unpacked_destroy(&un);
    return *out ? n : (size_t)-1;
  }
}

/* A map runs in chunks: one task applies fn to a run of items, so a
 * million tiny items cost a few hundred messages, not a million. Chunks
 * are small enough (about 64 per worker) to share the work evenly, and at
 * most 4096 items. Item k of the map gets the seed of run index first + k,
 * exactly as if each had been submitted alone. */
typedef struct map_run {
  vow_pool_t* pool;
  uint64_t first; /* run index of item 0 */
  size_t n;
} map_run;

static size_t chunk_size(const vow_pool_t* pool, size_t n) {
  size_t c = n / ((size_t)pool->nworkers * 64);
  if (c < 1)
    c = 1;
  if (c > 4096)
    c = 4096;
  return c;
}

/* Joins the chunks' result arrays into one array of n results, in one
 * value: one allocation and one copy of the bytes. */
static vow_outcome_t map_join(vow_value_t* chunks, void* data) {
  map_run* m = data;
  size_t i, total = 5, at = 0, nchunks = vow_value_array_len(chunks);
  unsigned char* out;
  vow_value_t* joined;
  for (i = 0; i < nchunks; i++) {
    size_t len;
    vow_value_bytes(vow_value_array_at(chunks, i), &len);
    total += len;
  }
  joined = vow__value_alloc_encoded(total, &out);
  if (joined == NULL) {
    vow_value_release(chunks);
    vow__free(m);
    return vow_err(NULL);
  }
  /* A 32-bit array header whatever n is: the value stays valid msgpack
   * and its size is known before the items are counted. */
  out[at++] = 0xdd;
  out[at++] = (unsigned char)(m->n >> 24);
  out[at++] = (unsigned char)(m->n >> 16);
  out[at++] = (unsigned char)(m->n >> 8);
  out[at++] = (unsigned char)m->n;
  for (i = 0; i < nchunks; i++) {
    size_t len, head = 0;
    uint32_t count;
    const unsigned char* b =
        vow_value_bytes(vow_value_array_at(chunks, i), &len);
    /* checked an array of its count when it arrived: drop its header */
    vowp_array_header(b, len, &count, &head);
    memcpy(out + at, b + head, len - head);
    at += len - head;
  }
  vow__value_set_len(joined, at);
  vow_value_release(chunks);
  vow__free(m);
  return vow_ok(joined);
}

/* Renames "item k of the chunk" to the item's index in the map. */
static vow_outcome_t map_failed(vow_failure_t* f, void* data) {
  map_run* m = data;
  const vow_origin_t* o = vow_failure_origin(f);
  unsigned k;
  int used = 0;
  const char* msg = vow_failure_message(f);
  uint64_t first = m->first;
  vow__free(m);
  if (o->task_id >= first &&
      sscanf(msg, "item %u of the chunk: %n", &k, &used) == 1 && used > 0) {
    vow_failure_t* g = vow_failure_new(
        vow_failure_kind(f), vow_failure_code(f), "map item %llu: %s",
        (unsigned long long)(o->task_id - first + k), msg + used);
    vow_failure_set_origin(g, o);
    if (vow_failure_detail(f))
      vow_failure_set_detail(g, vow_failure_detail(f));
    vow_failure_release(f);
    return vow_err(g);
  }
  return vow_err(f);
}

vow_promise_t* vow_pool_map(vow_pool_t* pool, const char* fn,
                            vow_value_t* items) {
  vow_promise_t** ps = NULL;
  vow_promise_t* all;
  map_run* m = NULL;
  size_t n = 0, chunk, nchunks, c, i, len = 0;
  const char* bytes = NULL;
  const char* at = NULL;
  bool is_array = items && vow_value_kind(items) == VOW_VALUE_ARRAY;
  if (items == NULL) /* what a constructor returns when memory ran out */
    return vow_fail(pool->ctx, vow__failure_nomem());
  if (!is_array) {
    vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
    vowp_error err;
    bytes = vow_value_bytes(items, &len);
    if (bytes != NULL && vowp_prescan(bytes, len, &lim, 0, &err) == VOWP_OK) {
      uint32_t count;
      size_t head;
      if (vowp_array_header(bytes, len, &count, &head)) {
        n = count;
        at = bytes + head;
      }
    }
  } else if (is_array) {
    n = vow_value_array_len(items);
    for (i = 0; i < n; i++)
      if (vow_value_bytes(vow_value_array_at(items, i), NULL) == NULL)
        break;
    if (i < n)
      is_array = false, n = 0, at = NULL;
    else
      at = "";
  }
  if (at == NULL) {
    vow_value_release(items);
    return vow_fail(pool->ctx,
                    vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                    "vow_pool_map needs an array of msgpack "
                                    "items"));
  }
  chunk = chunk_size(pool, n);
  if (n > 0) {
    /* Big items make small chunks: about a batch's worth of bytes each,
     * far below the protocol's message limit. */
    size_t total = 0, per;
    if (is_array)
      for (i = 0; i < n; i++) {
        size_t ilen = 0;
        vow_value_bytes(vow_value_array_at(items, i), &ilen);
        total += ilen;
      }
    else
      total = len;
    per = total / n ? total / n : 1;
    if (chunk > BATCH_BYTES / per)
      chunk = BATCH_BYTES / per ? BATCH_BYTES / per : 1;
  }
  nchunks = (n + chunk - 1) / chunk;
  ps = vow__malloc((nchunks ? nchunks : 1) * sizeof(*ps));
  m = vow__malloc(sizeof(*m));
  if (ps == NULL || m == NULL) {
    vow__free(ps);
    vow__free(m);
    vow_value_release(items);
    return vow_fail(pool->ctx, vow__failure_nomem());
  }
  m->pool = pool;
  m->first = pool->next_id + 1;
  m->n = n;
  pool->next_id += n; /* the items' run indexes */
  for (c = 0; c < nchunks; c++) {
    size_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    vow_value_t* args;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, hi - lo);
    if (is_array) {
      for (i = lo; i < hi; i++) {
        size_t ilen;
        const void* ib = vow_value_bytes(vow_value_array_at(items, i), &ilen);
        msgpack_sbuffer_write(&sb, ib, ilen);
      }
    } else {
      /* The items of a chunk are contiguous in the encoded array. */
      const char* from = at;
      for (i = lo; i < hi; i++)
        at += vowp_object_size(at);
      msgpack_sbuffer_write(&sb, from, (size_t)(at - from));
    }
    args = vow__value_from_encoded(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ps[c] = submit_task(pool, fn, args ? args : vow_value_nil(), 0,
                        m->first + lo, (uint16_t)(hi - lo));
  }
  vow_value_release(items);
  all = vow_all(pool->ctx, ps, nchunks);
  vow__free(ps);
  return vow_add_callbacks(all, map_join, map_failed, m);
}

typedef struct stream_item {
  vow_stream_t* s;
  size_t index;
} stream_item;

struct vow_stream {
  vow_pool_t* pool;
  char* fn;
  vow_value_t** items; /* not yet submitted ones; NULL once sent */
  size_t n;
  size_t next; /* next to submit */
  size_t running;
  size_t delivered; /* results put into `ready` */
  size_t window;
  vow_queue_t* ready;
  vow_promise_t** ps; /* running tasks, for cancel at free */
  stream_item* recs;
  bool freed;
};

static void stream_fill(vow_stream_t* s);

static vow_outcome_t stream_result(vow_value_t* v, vow_failure_t* f,
                                   void* data) {
  stream_item* it = data;
  vow_stream_t* s = it->s;
  vow_value_t* out;
  s->running--;
  s->ps[it->index] = NULL;
  if (f != NULL) {
    out = vow_value_new_failure(f);
  } else {
    vow_value_t* pair[2];
    pair[0] = vow_value_new_int((int64_t)it->index);
    pair[1] = v;
    out = vow_value_new_array(pair, 2);
  }
  if (!s->freed) {
    vow_queue_put(s->ready, out);
    s->delivered++;
    stream_fill(s);
  } else {
    vow_value_release(out);
    if (s->running == 0) {
      vow__free(s->fn);
      vow__free(s->items);
      vow__free(s->ps);
      vow__free(s->recs);
      vow__free(s);
    }
  }
  return vow_ok(NULL);
}

static void stream_fill(vow_stream_t* s) {
  while (s->next < s->n && s->running + vow_queue_len(s->ready) < s->window) {
    size_t i = s->next++;
    vow_promise_t* p = vow_pool_submit(s->pool, s->fn, s->items[i]);
    s->items[i] = NULL;
    s->recs[i].s = s;
    s->recs[i].index = i;
    if (p == NULL) {
      /* Not even a rejected promise could be made (the context is
       * closing, or memory ran out past the reserve). */
      s->running++;
      stream_result(NULL, vow__failure_nomem(), &s->recs[i]);
      continue;
    }
    s->running++;
    s->ps[i] = p;
    vow_promise_release(vow_add_both(p, stream_result, &s->recs[i]));
  }
}

vow_stream_t* vow_pool_stream(vow_pool_t* pool, const char* fn,
                              vow_value_t* items, size_t window) {
  vow_stream_t* s = vow__calloc(1, sizeof(*s));
  size_t n;
  if (s == NULL) {
    vow_value_release(items);
    return NULL;
  }
  n = split_items(items, &s->items);
  vow_value_release(items);
  if (n == (size_t)-1)
    n = 0; /* nothing to stream: gets see nil */
  s->pool = pool;
  s->n = n;
  s->window = window ? window : 1024;
  s->fn = vow__strdup(fn ? fn : "");
  s->ready = vow_queue_new(pool->ctx, VOW_UNBOUNDED, VOW_UNBOUNDED);
  s->ps = vow__calloc(n ? n : 1, sizeof(*s->ps));
  s->recs = vow__calloc(n ? n : 1, sizeof(*s->recs));
  if (s->fn == NULL || s->ready == NULL || s->ps == NULL || s->recs == NULL) {
    s->next = n;
    vow_stream_free(s);
    return NULL;
  }
  stream_fill(s);
  return s;
}

vow_promise_t* vow_stream_get(vow_stream_t* s) {
  vow_promise_t* p;
  if (s->delivered == s->n && vow_queue_len(s->ready) == 0)
    return vow_succeed(s->pool->ctx, NULL);
  p = vow_queue_get(s->ready);
  stream_fill(s); /* taking one makes room for the next */
  return p;
}

void vow_stream_free(vow_stream_t* s) {
  size_t i;
  if (s == NULL)
    return;
  s->freed = true;
  for (i = s->next; i < s->n; i++)
    vow_value_release(s->items[i]);
  s->next = s->n;
  vow_queue_free(s->ready);
  s->ready = NULL;
  for (i = 0; i < s->n; i++)
    if (s->ps[i] != NULL)
      vow_cancel(s->ps[i]);
  if (s->running == 0) {
    vow__free(s->fn);
    vow__free(s->items);
    vow__free(s->ps);
    vow__free(s->recs);
    vow__free(s);
  }
}
