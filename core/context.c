/* The context: loop glue, the ready queue's idle handle, reports, close. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static void default_report(vow_ctx_t* ctx, vow_report_kind_t kind,
                           vow_failure_t* f, void* data) {
  char line[1024];
  (void)ctx;
  (void)data;
  if (kind == VOW_REPORT_PENDING) {
    fprintf(stderr,
            "vow: a promise was still pending when its context "
            "closed\n");
    return;
  }
  vow_failure_describe(f, line, sizeof(line));
  fprintf(stderr, "vow: unhandled failure: %s\n", line);
}

void vow__report(vow_ctx_t* ctx, vow_report_kind_t kind, vow_failure_t* f) {
  ctx->report(ctx, kind, f, ctx->report_data);
}

static void on_idle(uv_idle_t* idle) {
  vow__drain(VOW__CONTAINER_OF(idle, vow_ctx_t, idle));
}

void vow__wake(vow_ctx_t* ctx) {
  uv_idle_start(&ctx->idle, on_idle);
}

static void on_async(uv_async_t* async) {
  vow__threadsafe_drain(VOW__CONTAINER_OF(async, vow_ctx_t, async));
}

/* ---- context ids ---------------------------------------------------- */

vow_ctx_t vow__closed_ctx = {.closing = true, .ts_closed = true};
vow_ctx_t* vow__ctxs[VOW__CTX_MAX] = {&vow__closed_ctx};
static pthread_mutex_t ids_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t next_id = 1; /* where the search for a free id starts */

/* Gives ctx an id; UV_EMFILE when every id is taken. */
static int take_id(vow_ctx_t* ctx) {
  size_t i;
  int rc = UV_EMFILE;
  pthread_mutex_lock(&ids_lock);
  for (i = 0; i < VOW__CTX_MAX - 1; i++) {
    size_t id = 1 + (next_id - 1 + i) % (VOW__CTX_MAX - 1);
    if (vow__ctxs[id] == NULL) {
      vow__ctxs[id] = ctx;
      ctx->id = (uint16_t)id;
      next_id = id + 1;
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&ids_lock);
  return rc;
}

/* Once no promise names ctx any more: at close, or when it failed to
 * open. */
static void give_back_id(vow_ctx_t* ctx) {
  pthread_mutex_lock(&ids_lock);
  vow__ctxs[ctx->id] = NULL;
  pthread_mutex_unlock(&ids_lock);
  ctx->id = 0;
}

/* ---- life ------------------------------------------------------------ */

static void free_parts(vow_ctx_t* ctx) {
  vow__arena_destroy(&ctx->promises);
  vow__arena_destroy(&ctx->nodes);
  vow__free(ctx->ready);
  if (ctx->id != 0)
    give_back_id(ctx);
}

vow_ctx_t* vow_ctx_new(uv_loop_t* loop, int* err) {
  vow_ctx_t* ctx = vow__calloc(1, sizeof(*ctx));
  int rc = UV_ENOMEM;
  if (ctx == NULL)
    goto fail;
  if ((rc = take_id(ctx)) != 0)
    goto fail;
  if (loop == NULL) {
    if ((rc = uv_loop_init(&ctx->own_loop)) != 0)
      goto fail;
    loop = &ctx->own_loop;
    ctx->owns_loop = true;
  }
  if ((rc = uv_mutex_init(&ctx->ts_lock)) != 0) {
    if (ctx->owns_loop)
      uv_loop_close(loop);
    goto fail;
  }
  ctx->loop = loop;
  vow__arena_init(&ctx->promises, sizeof(vow_promise_t), 256);
  vow__arena_init(&ctx->nodes, sizeof(vow__node), 256);
  while (ctx->reserve_len < VOW__RESERVE) {
    vow_promise_t* p = vow__arena_get(&ctx->promises);
    if (p == NULL) {
      uv_mutex_destroy(&ctx->ts_lock);
      if (ctx->owns_loop)
        uv_loop_close(loop);
      rc = UV_ENOMEM;
      goto fail;
    }
    p->state = VOW__FREED;
    ctx->reserve[ctx->reserve_len++] = p;
  }
  ctx->clock = &vow__real_clock;
  vow__procs_init(&ctx->procs, loop);
  ctx->ops.prev = ctx->ops.next = &ctx->ops;
  ctx->report = default_report;
  uv_idle_init(loop, &ctx->idle);
  uv_timer_init(loop, &ctx->uv_timer);
  uv_async_init(loop, &ctx->async, on_async);
  /* Threadsafe settles must not keep a finished loop alive on their own;
   * vow_ctx_wait refs the handle while it waits. */
  uv_unref((uv_handle_t*)&ctx->async);
  ctx->idle.data = ctx;
  ctx->handles_open = 3;
  return ctx;
fail:
  if (err != NULL)
    *err = rc;
  if (ctx != NULL)
    free_parts(ctx);
  vow__free(ctx);
  return NULL;
}

uv_loop_t* vow_ctx_loop(vow_ctx_t* ctx) {
  VOW__NOT_NULL(ctx, "the context");
  return ctx->loop;
}

/* vow_ctx_run and vow_ctx_wait run the loop; a callback runs inside it
 * (a chain's, or any the loop calls while one of them runs it), so one
 * called from there would wait for its own caller, for ever. */
#define NOT_IN_A_CALLBACK(ctx)                                              \
  VOW__REQUIRE(!(ctx)->draining && (ctx)->looping == 0,                     \
               "called inside a callback, where it would wait for the "     \
               "loop that runs the callback, for ever (return vow_wait(p) " \
               "from the callback instead)")

int vow_ctx_run(vow_ctx_t* ctx) {
  int rc;
  VOW__NOT_NULL(ctx, "the context");
  NOT_IN_A_CALLBACK(ctx);
  ctx->looping++;
  rc = uv_run(ctx->loop, UV_RUN_DEFAULT);
  ctx->looping--;
  return rc;
}

/* A link that does nothing: its only use is that running it takes a turn
 * of the loop, so a promise settled from inside a uv_run turn (by a timer,
 * say) wakes vow_ctx_wait, which would otherwise poll on with nothing left
 * to wake it. */
static void run_wake(vow_promise_t* p, const vow__link* link) {
  (void)p;
  (void)link;
}
static const vow__node_kind wake_kind = {run_wake, NULL};

int vow_ctx_wait(vow_ctx_t* ctx, vow_promise_t* p) {
  int settled;
  bool woken;
  VOW__NOT_NULL(ctx, "the context");
  VOW__LIVE_PROMISE(p);
  NOT_IN_A_CALLBACK(ctx);
  ctx->looping++;
  vow_promise_ref(p);
  uv_ref((uv_handle_t*)&ctx->async);
  woken = vow__append(p, &wake_kind, NULL) != NULL;
  for (;;) {
    vow__drain(ctx);
    settled = p->state == VOW_FULFILLED || p->state == VOW_REJECTED;
    if (settled && !(p->flags & (VOW__QUEUED | VOW__RUNNING)) &&
        !vow__has_chain(p))
      break;
    if (woken) {
      uv_run(ctx->loop, UV_RUN_ONCE);
    } else {
      /* No memory for the wake link: look every millisecond instead. */
      uv_run(ctx->loop, UV_RUN_NOWAIT);
      uv_sleep(1);
    }
  }
  uv_unref((uv_handle_t*)&ctx->async);
  ctx->looping--;
  settled = p->state;
  vow_promise_release(p);
  return settled;
}

size_t vow_ctx_drain(vow_ctx_t* ctx) {
  VOW__NOT_NULL(ctx, "the context");
  return vow__drain(ctx);
}

void vow_ctx_set_report_handler(vow_ctx_t* ctx, vow_report_fn fn, void* data) {
  VOW__NOT_NULL(ctx, "the context");
  ctx->report = fn ? fn : default_report;
  ctx->report_data = fn ? data : NULL;
}

uint64_t vow_ctx_now(vow_ctx_t* ctx) {
  VOW__NOT_NULL(ctx, "the context");
  return ctx->clock->now(ctx);
}

typedef struct stats_walk {
  vow_ctx_t* ctx;
  size_t pending;
} stats_walk;

/* Every slot a walk visits was handed out once: a free or reserved one is
 * marked VOW__FREED, and one orphaned at close names context 0. */
static bool in_use(vow_ctx_t* ctx, const vow_promise_t* p) {
  return p->state != VOW__FREED && p->ctx_id == ctx->id;
}

static void count_pending(void* obj, void* arg) {
  vow_promise_t* p = obj;
  if (!in_use(((stats_walk*)arg)->ctx, p))
    return;
  if (p->state == VOW_PENDING || p->state == VOW_WAITING)
    ((stats_walk*)arg)->pending++;
}

void vow_ctx_stats(vow_ctx_t* ctx, vow_ctx_stats_t* out) {
  VOW__NOT_NULL(ctx, "the context");
  VOW__NOT_NULL(out, "out");
  stats_walk w = {ctx, 0};
  vow__arena_each(&ctx->promises, count_pending, &w);
  out->promises_live = ctx->promises.live - ctx->reserve_len;
  out->promises_pending = w.pending;
  out->timers = ctx->heap_len;
  out->bytes_reserved = ctx->promises.reserved + ctx->nodes.reserved +
                        ctx->ready_cap * sizeof(*ctx->ready);
}

/* ---- operations ------------------------------------------------------ */

void vow__op_start(vow_ctx_t* ctx, vow__op* op, void (*shutdown)(vow__op*)) {
  op->shutdown = shutdown;
  op->next = &ctx->ops;
  op->prev = ctx->ops.prev;
  op->prev->next = op;
  ctx->ops.prev = op;
}

static void maybe_finish(vow_ctx_t* ctx);

void vow__op_done(vow_ctx_t* ctx, vow__op* op) {
  op->prev->next = op->next;
  op->next->prev = op->prev;
  op->prev = op->next = op;
  if (ctx->closing)
    maybe_finish(ctx);
}

/* ---- close ----------------------------------------------------------- */

static bool is_orphan(void* obj, void* arg) {
  const vow_promise_t* p = obj;
  (void)arg;
  return p->state != VOW__FREED && p->ctx_id == 0;
}

static void free_ctx(vow_ctx_t* ctx) {
  vow__arena_destroy_keeping(&ctx->promises, is_orphan, NULL);
  free_parts(ctx);
  vow__free(ctx->heap);
  uv_mutex_destroy(&ctx->ts_lock);
  vow__free(ctx);
}

static void on_procs_closed(vow__procs* set) {
  vow_ctx_t* ctx = VOW__CONTAINER_OF(set, vow_ctx_t, procs);
  ctx->handles_open--;
  maybe_finish(ctx);
}

/* The children's SIGCHLD watch goes last: until every op is done, a
 * worker's exit may still be on its way. */
static void close_procs_when_idle(vow_ctx_t* ctx) {
  if (ctx->ops.next == &ctx->ops &&
      vow__procs_close(&ctx->procs, on_procs_closed))
    ctx->handles_open++;
}

static void maybe_finish(vow_ctx_t* ctx) {
  close_procs_when_idle(ctx);
  if (ctx->handles_open > 0 || ctx->ops.next != &ctx->ops)
    return;
  /* With its own loop, vow_ctx_close frees after closing the loop. */
  if (!ctx->owns_loop)
    free_ctx(ctx);
}

static void on_handle_closed(uv_handle_t* h) {
  vow_ctx_t* ctx = h->data;
  ctx->handles_open--;
  maybe_finish(ctx);
}

static void report_leftover(void* obj, void* arg) {
  vow_promise_t* p = obj;
  vow_ctx_t* ctx = arg;
  if (!in_use(ctx, p))
    return;
  if (p->state == VOW_PENDING || p->state == VOW_WAITING)
    vow__report(ctx, VOW_REPORT_PENDING, NULL);
  else if (p->state == VOW_REJECTED && vow__failure_claim_report(p->r.failure))
    vow__report(ctx, VOW_REPORT_UNHANDLED, p->r.failure);
}

/* A promise someone still holds a reference to (the caller, another
 * thread) stays readable: it points at vow__closed_ctx from now on, and
 * its slab outlives the context. */
static void destroy_leftover(void* obj, void* arg) {
  vow_promise_t* p = obj;
  if (!in_use(arg, p))
    return;
  if (p->refs == 0) {
    vow__destroy_promise_at_close(p);
    return;
  }
  vow__orphan_promise_at_close(p);
  p->ctx_id = 0;
}

void vow_ctx_close(vow_ctx_t* ctx) {
  VOW__NOT_NULL(ctx, "the context");
  vow__op* op;
  /* Freeing the context under a running chain cannot be made safe. */
  NOT_IN_A_CALLBACK(ctx);
  /* What is already settled runs first: it would have run on the next
   * tick, and its errbacks may handle failures that are otherwise
   * reported. Threadsafe settles already sent count as arrived. */
  vow__threadsafe_drain(ctx);
  vow__drain(ctx);
  vow__threadsafe_close(ctx);
  ctx->closing = true;
  ctx->ready_head = ctx->ready_len = 0;

  /* Stop everything in flight; each op unregisters when its libuv side is
   * done, which may be later. Iterate from the sentinel each time since a
   * shutdown may unregister its op at once. */
  for (op = ctx->ops.next; op != &ctx->ops;) {
    vow__op* next = op->next;
    op->shutdown(op);
    op = next;
  }
  vow__timers_close(ctx);
  vow__arena_each(&ctx->promises, report_leftover, ctx);
  vow__threadsafe_door_lock();
  vow__arena_each(&ctx->promises, destroy_leftover, ctx);
  vow__threadsafe_door_unlock();
  give_back_id(ctx); /* every promise left names context 0 now */

  ctx->idle.data = ctx;
  ctx->uv_timer.data = ctx;
  ctx->async.data = ctx;
  uv_close((uv_handle_t*)&ctx->idle, on_handle_closed);
  uv_close((uv_handle_t*)&ctx->uv_timer, on_handle_closed);
  uv_close((uv_handle_t*)&ctx->async, on_handle_closed);
  close_procs_when_idle(ctx);

  if (ctx->owns_loop) {
    while (ctx->handles_open > 0 || ctx->ops.next != &ctx->ops)
      uv_run(ctx->loop, UV_RUN_DEFAULT);
    uv_loop_close(ctx->loop);
    free_ctx(ctx);
  }
}
