/* Timers: one binary heap per context behind one uv timer (or the fake
 * clock), timeouts on promises, and sleep. */
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

/* ---- clocks ---------------------------------------------------------- */

static void on_uv_timer(uv_timer_t* t) {
  vow_ctx_t* ctx = VOW__CONTAINER_OF(t, vow_ctx_t, uv_timer);
  vow__timers_fire_due(ctx);
}

static uint64_t real_now(vow_ctx_t* ctx) {
  return uv_now(ctx->loop);
}

static void real_rearm(vow_ctx_t* ctx) {
  uint64_t now, due;
  if (ctx->closing)
    return;
  if (ctx->heap_len == 0) {
    uv_timer_stop(&ctx->uv_timer);
    return;
  }
  now = uv_now(ctx->loop);
  due = ctx->heap[0]->deadline;
  uv_timer_start(&ctx->uv_timer, on_uv_timer, due > now ? due - now : 0, 0);
}

const vow__clock vow__real_clock = {real_now, real_rearm};

static uint64_t fake_now(vow_ctx_t* ctx) {
  return ctx->fake_now;
}

static void fake_rearm(vow_ctx_t* ctx) {
  (void)ctx; /* time moves only in vow_ctx_advance */
}

static const vow__clock fake_clock = {fake_now, fake_rearm};

int vow_ctx_use_fake_clock(vow_ctx_t* ctx, uint64_t start_ms) {
  VOW__NOT_NULL(ctx, "the context");
  if (ctx->heap_len > 0)
    return UV_EBUSY;
  uv_timer_stop(&ctx->uv_timer);
  ctx->clock = &fake_clock;
  ctx->fake_now = start_ms;
  return 0;
}

int vow_ctx_advance(vow_ctx_t* ctx, uint64_t ms) {
  VOW__NOT_NULL(ctx, "the context");
  if (ctx->clock != &fake_clock)
    return UV_EINVAL;
  vow__drain(ctx);
  ctx->fake_now += ms;
  vow__timers_fire_due(ctx);
  vow__drain(ctx);
  return 0;
}

/* ---- the heap -------------------------------------------------------- */

static bool earlier(const vow__timer* a, const vow__timer* b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(vow_ctx_t* ctx, size_t i, vow__timer* t) {
  ctx->heap[i] = t;
  t->index = i;
}

static void sift_up(vow_ctx_t* ctx, size_t i) {
  vow__timer* t = ctx->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(t, ctx->heap[parent]))
      break;
    heap_set(ctx, i, ctx->heap[parent]);
    i = parent;
  }
  heap_set(ctx, i, t);
}

static void sift_down(vow_ctx_t* ctx, size_t i) {
  vow__timer* t = ctx->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= ctx->heap_len)
      break;
    if (child + 1 < ctx->heap_len &&
        earlier(ctx->heap[child + 1], ctx->heap[child]))
      child++;
    if (!earlier(ctx->heap[child], t))
      break;
    heap_set(ctx, i, ctx->heap[child]);
    i = child;
  }
  heap_set(ctx, i, t);
}

int vow__timer_start(vow_ctx_t* ctx, vow__timer* t, uint64_t ms) {
  uint64_t now;
  if (ctx->heap_len == ctx->heap_cap) {
    size_t cap = ctx->heap_cap ? ctx->heap_cap * 2 : 16;
    vow__timer** grown = vow__realloc(ctx->heap, cap * sizeof(*grown));
    if (grown == NULL)
      return UV_ENOMEM;
    ctx->heap = grown;
    ctx->heap_cap = cap;
  }
  now = ctx->clock->now(ctx);
  /* A deadline past the clock's end is never: it must not wrap round to
   * one in the past. */
  t->deadline = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
  t->seq = ctx->timer_seq++;
  ctx->heap[ctx->heap_len] = t;
  t->index = ctx->heap_len++;
  sift_up(ctx, t->index);
  if (t->index == 0)
    ctx->clock->rearm(ctx);
  return 0;
}

static void heap_remove(vow_ctx_t* ctx, vow__timer* t) {
  size_t i = t->index;
  vow__timer* last = ctx->heap[--ctx->heap_len];
  t->index = SIZE_MAX;
  if (last == t)
    return;
  heap_set(ctx, i, last);
  if (i > 0 && earlier(last, ctx->heap[(i - 1) / 2]))
    sift_up(ctx, i);
  else
    sift_down(ctx, i);
}

void vow__timer_stop(vow_ctx_t* ctx, vow__timer* t) {
  bool was_first;
  if (t->index == SIZE_MAX)
    return;
  was_first = t->index == 0;
  heap_remove(ctx, t);
  if (was_first)
    ctx->clock->rearm(ctx);
}

void vow__timers_fire_due(vow_ctx_t* ctx) {
  uint64_t now = ctx->clock->now(ctx);
  while (ctx->heap_len > 0 && ctx->heap[0]->deadline <= now) {
    vow__timer* t = ctx->heap[0];
    heap_remove(ctx, t);
    t->fire(t);
  }
  ctx->clock->rearm(ctx);
}

void vow__timers_close(vow_ctx_t* ctx) {
  while (ctx->heap_len > 0) {
    vow__timer* t = ctx->heap[ctx->heap_len - 1];
    heap_remove(ctx, t);
    if (t->discard)
      t->discard(t);
  }
}

/* ---- timeout --------------------------------------------------------- */

/* Owned by the chain node; the timer is armed until it fires or the chain
 * passes the node. */
typedef struct timeout {
  vow__timer timer;
  vow_promise_t* p;
  uint64_t ms;
} timeout;

static void timeout_fire(vow__timer* t) {
  timeout* to = VOW__CONTAINER_OF(t, timeout, timer);
  char msg[64];
  snprintf(msg, sizeof(msg), "timed out after %llu ms",
           (unsigned long long)to->ms);
  vow__cancel_as(to->p, VOW_FAIL_TIMEOUT, msg);
}

static void timeout_node_run(vow_promise_t* p, const vow__link* n) {
  timeout* to = n->data;
  vow__timer_stop(vow__ctx_of(p), &to->timer);
  vow__free(to);
}

static void timeout_node_discard(const vow__link* n) {
  vow__free(n->data); /* its timer left the heap when the context closed */
}

static const vow__node_kind timeout_kind = {timeout_node_run,
                                            timeout_node_discard};

vow_promise_t* vow_timeout(vow_promise_t* p, uint64_t ms) {
  VOW__LIVE_PROMISE(p);
  timeout* to = vow__malloc(sizeof(*to));
  if (to == NULL)
    goto nomem;
  to->p = p;
  to->ms = ms;
  to->timer.fire = timeout_fire;
  to->timer.discard = NULL;
  to->timer.index = SIZE_MAX;
  if (vow__append(p, &timeout_kind, to) == NULL) {
    vow__free(to);
    goto nomem;
  }
  if (vow__timer_start(vow__ctx_of(p), &to->timer, ms) != 0)
    goto nomem;
  return p;
nomem:
  /* A timeout that cannot be armed must not turn into a promise that
   * waits forever: fail it now. */
  vow__cancel_as(p, VOW_FAIL_NOMEM, "no memory to arm a timeout");
  return p;
}

/* ---- sleep ----------------------------------------------------------- */

typedef struct sleeper {
  vow__timer timer;
  vow_promise_t* p;
} sleeper;

static void sleep_fire(vow__timer* t) {
  sleeper* s = VOW__CONTAINER_OF(t, sleeper, timer);
  vow_promise_t* p = s->p;
  vow__free(s);
  vow_fulfil(p, NULL);
}

static void sleep_discard(vow__timer* t) {
  vow__free(VOW__CONTAINER_OF(t, sleeper, timer));
}

static void sleep_cancel(vow_promise_t* p, void* data) {
  sleeper* s = data;
  (void)p;
  vow__timer_stop(vow__ctx_of(p), &s->timer);
  vow__free(s);
}

vow_promise_t* vow_sleep(vow_ctx_t* ctx, uint64_t ms) {
  VOW__NOT_NULL(ctx, "the context");
  sleeper* s = vow__malloc(sizeof(*s));
  vow_promise_t* p;
  if (s == NULL)
    return vow_fail(ctx, vow__failure_nomem());
  p = vow_promise_new(ctx, sleep_cancel, s);
  if (p == NULL) {
    vow__free(s);
    return NULL;
  }
  s->p = p;
  s->timer.fire = sleep_fire;
  s->timer.discard = sleep_discard;
  s->timer.index = SIZE_MAX;
  if (vow__timer_start(ctx, &s->timer, ms) != 0) {
    vow__free(s);
    vow_reject(p, vow__failure_nomem());
  }
  return p;
}
