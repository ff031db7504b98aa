/* The thread lanes: blocking calls on libuv's thread pool, and settling
 * promises from other threads through one locked queue and uv_async_send.
 *
 * Several uv_async_send calls may merge into one wake-up, so the loop side
 * always takes the whole queue at once.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core.h"

/* ---- thread pool ----------------------------------------------------- */

typedef struct work {
  vow__op op;
  uv_work_t req;
  vow_ctx_t* ctx;
  vow_promise_t* p; /* NULL once cancelled or closing */
  vow_work_fn fn;
  void* data;
  vow_outcome_t out;
} work;

static void work_run(uv_work_t* req) {
  work* w = req->data;
  w->out = w->fn(w->data);
}

static void work_after(uv_work_t* req, int status) {
  work* w = req->data;
  vow_promise_t* p = w->p;
  /* UV_ECANCELED comes only from our own uv_cancel, after which p is NULL
   * and fn never ran. */
  if (status == 0) {
    if (w->out.vow__tag == VOW__TAG_VALUE) {
      if (p)
        vow_fulfil(p, w->out.vow__what);
      else
        vow_value_release(w->out.vow__what);
    } else if (w->out.vow__tag == VOW__TAG_FAILURE) {
      if (p)
        vow_reject(p, w->out.vow__what);
      else
        vow_failure_release(w->out.vow__what);
    } else if (p) {
      vow_reject(p, vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                    "a blocking function must return "
                                    "vow_ok or vow_err"));
    }
  }
  vow__op_done(w->ctx, &w->op);
  vow__free(w);
}

static void work_cancel(vow_promise_t* p, void* data) {
  work* w = data;
  (void)p;
  w->p = NULL;
  uv_cancel((uv_req_t*)&w->req);
}

static void work_shutdown(vow__op* op) {
  work* w = VOW__CONTAINER_OF(op, work, op);
  w->p = NULL;
  uv_cancel((uv_req_t*)&w->req);
}

vow_promise_t* vow_run_blocking(vow_ctx_t* ctx, vow_work_fn fn, void* data) {
  VOW__NOT_NULL(ctx, "the context");
  VOW__NOT_NULL(fn, "the function");
  work* w = vow__calloc(1, sizeof(*w));
  vow_promise_t* p;
  int rc;
  if (w == NULL)
    return vow_fail(ctx, vow__failure_nomem());
  p = vow_promise_new(ctx, work_cancel, w);
  if (p == NULL) {
    vow__free(w);
    return NULL;
  }
  w->ctx = ctx;
  w->p = p;
  w->fn = fn;
  w->data = data;
  w->req.data = w;
  rc = uv_queue_work(ctx->loop, &w->req, work_run, work_after);
  if (rc != 0) {
    vow__free(w);
    vow_reject(p, vow_failure_new(VOW_FAIL_IO, rc,
                                  "cannot queue work on the thread pool: %s",
                                  uv_strerror(rc)));
    return p;
  }
  vow__op_start(ctx, &w->op, work_shutdown);
  return p;
}

/* ---- threadsafe settle ----------------------------------------------- */

struct vow__ts_entry {
  vow__ts_entry* next;
  vow_promise_t* p;
  bool fulfil;
  void* result;
};

/* Held while a thread looks from a promise to its context, and while a
 * closing context turns its threadsafe door away and re-points the
 * promises still referenced to vow__closed_ctx: a settle from another
 * thread then sees either a live context or one marked closed, never a
 * freed one. */
static pthread_mutex_t ts_door = PTHREAD_MUTEX_INITIALIZER;

void vow__threadsafe_door_lock(void) {
  pthread_mutex_lock(&ts_door);
}

void vow__threadsafe_door_unlock(void) {
  pthread_mutex_unlock(&ts_door);
}

static int ts_push(vow_promise_t* p, bool fulfil, void* result) {
  vow_ctx_t* ctx;
  vow__ts_entry* e = vow__malloc(sizeof(*e));
  bool first;
  if (e == NULL)
    return UV_ENOMEM;
  e->p = p;
  e->fulfil = fulfil;
  e->result = result;
  pthread_mutex_lock(&ts_door);
  ctx = vow__ctx_of(p);
  if (ctx->ts_closed) { /* written only behind the door */
    pthread_mutex_unlock(&ts_door);
    vow__free(e);
    return VOW_ECLOSED;
  }
  uv_mutex_lock(&ctx->ts_lock);
  /* Pushed at the head; the loop reverses the list to keep send order. */
  e->next = ctx->ts_head;
  first = ctx->ts_head == NULL;
  ctx->ts_head = e;
  uv_mutex_unlock(&ctx->ts_lock);
  /* Still behind the door: the context cannot be freed before this. */
  if (first)
    uv_async_send(&ctx->async);
  pthread_mutex_unlock(&ts_door);
  return 0;
}

int vow_fulfil_threadsafe(vow_promise_t* p, vow_value_t* v) {
  VOW__LIVE_PROMISE(p);
  return ts_push(p, true, v ? v : vow_value_nil());
}

int vow_reject_threadsafe(vow_promise_t* p, vow_failure_t* f) {
  VOW__LIVE_PROMISE(p);
  return ts_push(p, false, f ? f : vow__failure_nomem());
}

void vow__threadsafe_drain(vow_ctx_t* ctx) {
  vow__ts_entry* list;
  vow__ts_entry* ordered = NULL;
  uv_mutex_lock(&ctx->ts_lock);
  list = ctx->ts_head;
  ctx->ts_head = NULL;
  uv_mutex_unlock(&ctx->ts_lock);
  while (list != NULL) {
    vow__ts_entry* next = list->next;
    list->next = ordered;
    ordered = list;
    list = next;
  }
  while (ordered != NULL) {
    vow__ts_entry* e = ordered;
    ordered = e->next;
    if (e->fulfil)
      vow_fulfil(e->p, e->result);
    else
      vow_reject(e->p, e->result);
    vow_promise_release(e->p);
    vow__free(e);
  }
}

void vow__threadsafe_close(vow_ctx_t* ctx) {
  pthread_mutex_lock(&ts_door);
  uv_mutex_lock(&ctx->ts_lock);
  ctx->ts_closed = true;
  uv_mutex_unlock(&ctx->ts_lock);
  pthread_mutex_unlock(&ts_door);
  vow__threadsafe_drain(ctx);
}
