/* Semaphore (and lock) and queue whose waits return promises.
 *
 * Waiters sit in a FIFO list. A waiter's promise has a canceller that takes
 * it off the list, so a cancelled acquire or get never swallows a later
 * release or put: the token or value goes to the next waiter instead.
 */
#include <stdlib.h>

#include "core.h"

typedef struct waiter waiter;
struct waiter {
  waiter* prev;
  waiter* next;
  vow_promise_t* p;
  struct waitlist* wl; /* the list it waits in */
};

typedef struct waitlist {
  waiter* head;
  waiter* tail;
  size_t len;
} waitlist;

static void wl_push(waitlist* wl, waiter* w) {
  w->next = NULL;
  w->prev = wl->tail;
  if (wl->tail)
    wl->tail->next = w;
  else
    wl->head = w;
  wl->tail = w;
  wl->len++;
}

static void wl_remove(waitlist* wl, waiter* w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    wl->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    wl->tail = w->prev;
  wl->len--;
}

/* Pops the oldest waiter and returns its promise. The waiter is freed. */
static vow_promise_t* wl_pop(waitlist* wl) {
  waiter* w = wl->head;
  vow_promise_t* p;
  if (w == NULL)
    return NULL;
  wl_remove(wl, w);
  p = w->p;
  vow__clear_canceller(p); /* w is gone: its canceller must not run */
  vow__free(w);
  return p;
}

static void cancel_all(waitlist* wl) {
  vow_promise_t* p;
  while ((p = wl_pop(wl)) != NULL) {
    vow__cancel_as(p, VOW_FAIL_CANCELLED, "the object it waited on was freed");
  }
}

/* Takes the cancelled waiter out of its line. */
static void waiter_cancel(vow_promise_t* p, void* data) {
  waiter* w = data;
  (void)p;
  wl_remove(w->wl, w);
  vow__free(w);
}

/* A new promise that waits at the end of wl until wl_pop hands it
 * something. */
static vow_promise_t* wl_wait(vow_ctx_t* ctx, waitlist* wl) {
  waiter* w = vow__malloc(sizeof(*w));
  vow_promise_t* p;
  if (w == NULL)
    return vow_fail(ctx, vow__failure_nomem());
  p = vow_promise_new(ctx, waiter_cancel, w);
  if (p == NULL) {
    vow__free(w);
    return NULL;
  }
  w->p = p;
  w->wl = wl;
  wl_push(wl, w);
  return p;
}

/* ---- semaphore ------------------------------------------------------- */

struct vow_semaphore {
  vow_ctx_t* ctx;
  size_t tokens;    /* total */
  size_t available; /* free now */
  waitlist waiters;
};

vow_semaphore_t* vow_semaphore_new(vow_ctx_t* ctx, size_t tokens) {
  VOW__NOT_NULL(ctx, "the context");
  vow_semaphore_t* s;
  if (tokens == 0)
    return NULL;
  s = vow__calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->ctx = ctx;
  s->tokens = s->available = tokens;
  return s;
}

vow_semaphore_t* vow_lock_new(vow_ctx_t* ctx) {
  VOW__NOT_NULL(ctx, "the context");
  return vow_semaphore_new(ctx, 1);
}

vow_promise_t* vow_semaphore_acquire(vow_semaphore_t* s) {
  VOW__NOT_NULL(s, "the semaphore");
  if (s->available > 0) {
    s->available--;
    return vow_succeed(s->ctx, NULL);
  }
  return wl_wait(s->ctx, &s->waiters);
}

int vow_semaphore_release(vow_semaphore_t* s) {
  VOW__NOT_NULL(s, "the semaphore");
  vow_promise_t* next = wl_pop(&s->waiters);
  if (next != NULL) {
    /* The token passes straight to the waiter. */
    vow_fulfil(next, NULL);
    return 0;
  }
  if (s->available == s->tokens)
    return VOW_ENOTLOCKED;
  s->available++;
  return 0;
}

size_t vow_semaphore_available(const vow_semaphore_t* s) {
  VOW__NOT_NULL(s, "the semaphore");
  return s->available;
}

size_t vow_semaphore_waiting(const vow_semaphore_t* s) {
  VOW__NOT_NULL(s, "the semaphore");
  return s->waiters.len;
}

void vow_semaphore_free(vow_semaphore_t* s) {
  if (s == NULL)
    return;
  cancel_all(&s->waiters);
  vow__free(s);
}

typedef struct sem_run {
  vow_semaphore_t* s;
  vow_operation_fn fn;
  void* data;
  bool acquired; /* the token is ours to give back */
} sem_run;

static vow_outcome_t sem_run_start(vow_value_t* v, void* data) {
  sem_run* r = data;
  vow_promise_t* op;
  vow_value_release(v);
  r->acquired = true;
  op = r->fn(r->data);
  if (op == NULL)
    return vow_errf(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                    "the operation returned no promise");
  return vow_wait(op);
}

static vow_outcome_t sem_run_done(vow_value_t* v, vow_failure_t* f,
                                  void* data) {
  sem_run* r = data;
  if (r->acquired)
    vow_semaphore_release(r->s);
  vow__free(r);
  return f ? vow_err(f) : vow_ok(v);
}

vow_promise_t* vow_semaphore_run(vow_semaphore_t* s, vow_operation_fn fn,
                                 void* data) {
  VOW__NOT_NULL(s, "the semaphore");
  VOW__NOT_NULL(fn, "the function");
  sem_run* r = vow__malloc(sizeof(*r));
  vow_promise_t* p;
  if (r == NULL)
    return vow_fail(s->ctx, vow__failure_nomem());
  r->s = s;
  r->fn = fn;
  r->data = data;
  r->acquired = false;
  p = vow_semaphore_acquire(s);
  if (p == NULL) {
    vow__free(r);
    return NULL;
  }
  /* A cancelled acquire skips the start and holds no token; once the
   * operation has started, the token goes back whatever its outcome. */
  vow_add_callback(p, sem_run_start, r);
  vow_add_both(p, sem_run_done, r);
  return p;
}

/* ---- queue ----------------------------------------------------------- */

struct vow_queue {
  vow_ctx_t* ctx;
  size_t size;    /* most values held; VOW_UNBOUNDED: no limit */
  size_t backlog; /* most waiting gets; VOW_UNBOUNDED: no limit */
  vow_value_t** ring;
  size_t cap, head, len;
  waitlist getters;
};

vow_queue_t* vow_queue_new(vow_ctx_t* ctx, size_t size, size_t backlog) {
  VOW__NOT_NULL(ctx, "the context");
  vow_queue_t* q = vow__calloc(1, sizeof(*q));
  if (q == NULL)
    return NULL;
  q->ctx = ctx;
  q->size = size;
  q->backlog = backlog;
  return q;
}

static int ring_push(vow_queue_t* q, vow_value_t* v) {
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16, i;
    vow_value_t** grown = vow__malloc(cap * sizeof(*grown));
    if (grown == NULL)
      return UV_ENOMEM;
    for (i = 0; i < q->len; i++)
      grown[i] = q->ring[(q->head + i) % q->cap];
    vow__free(q->ring);
    q->ring = grown;
    q->cap = cap;
    q->head = 0;
  }
  q->ring[(q->head + q->len++) % q->cap] = v;
  return 0;
}

static vow_value_t* ring_pop(vow_queue_t* q) {
  vow_value_t* v;
  if (q->len == 0)
    return NULL;
  v = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->len--;
  return v;
}

int vow_queue_put(vow_queue_t* q, vow_value_t* v) {
  VOW__NOT_NULL(q, "the queue");
  vow_promise_t* getter = wl_pop(&q->getters);
  int rc;
  if (v == NULL)
    v = vow_value_nil();
  if (getter != NULL) {
    vow_fulfil(getter, v);
    return 0;
  }
  if (q->len >= q->size) {
    vow_value_release(v);
    return VOW_EFULL;
  }
  rc = ring_push(q, v);
  if (rc != 0)
    vow_value_release(v);
  return rc;
}

vow_promise_t* vow_queue_get(vow_queue_t* q) {
  VOW__NOT_NULL(q, "the queue");
  if (q->len > 0)
    return vow_succeed(q->ctx, ring_pop(q));
  if (q->getters.len >= q->backlog)
    return vow_fail(q->ctx, vow_failure_new(VOW_FAIL_QUEUE_FULL, VOW_EFULL,
                                            "%zu gets are already waiting",
                                            q->getters.len));
  return wl_wait(q->ctx, &q->getters);
}

size_t vow_queue_len(const vow_queue_t* q) {
  VOW__NOT_NULL(q, "the queue");
  return q->len;
}

void vow_queue_free(vow_queue_t* q) {
  vow_value_t* v;
  if (q == NULL)
    return;
  cancel_all(&q->getters);
  while ((v = ring_pop(q)) != NULL)
    vow_value_release(v);
  vow__free(q->ring);
  vow__free(q);
}
