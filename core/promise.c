/* The promise core: settling, the callback chain, waiting on another
 * promise, cancel, branch.
 *
 * Chains never run inside the call that settles a promise or adds a
 * callback: both only put the promise on the context's ready queue, which
 * is drained from the loop (an idle handle) or by vow_ctx_drain. A chain
 * runs in a loop, and a promise that waits on another is resumed by
 * queueing it again, so a million links or a million nested promises run
 * in constant stack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Bit 0 of a node's next pointer marks a node whose tag is a kind (both,
 * trap, internal) rather than the user's errback. Nodes come from a pool
 * of 8-byte aligned slots, so the bit is free. */
#define KIND_BIT ((uintptr_t)1)

static vow__node* node_next(const vow__node* n) {
  return (vow__node*)((uintptr_t)n->next & ~KIND_BIT);
}
static void node_set_next(vow__node* n, vow__node* next) {
  n->next = (vow__node*)((uintptr_t)next | ((uintptr_t)n->next & KIND_BIT));
}

/* The size the pools and the benchmarks are planned around. */
_Static_assert(sizeof(void*) != 8 || sizeof(vow_promise_t) == 24,
               "a promise is three words on LP64");

static bool is_settled(const vow_promise_t* p) {
  return p->state == VOW_FULFILLED || p->state == VOW_REJECTED;
}

/* ---- outcomes -------------------------------------------------------- */

vow_outcome_t vow_ok(vow_value_t* v) {
  vow_outcome_t o = {VOW__TAG_VALUE, v ? v : vow_value_nil()};
  return o;
}

vow_outcome_t vow_err(vow_failure_t* f) {
  vow_outcome_t o = {VOW__TAG_FAILURE, f ? f : vow__failure_nomem()};
  return o;
}

vow_outcome_t vow_errf(int kind, int code, const char* fmt, ...) {
  va_list ap;
  vow_failure_t* f;
  va_start(ap, fmt);
  f = vow__failure_newv(kind, code, fmt, ap);
  va_end(ap);
  return vow_err(f);
}

vow_outcome_t vow_wait(vow_promise_t* p) {
  /* NULL (a constructor out of memory) becomes a failure in the chain. */
  VOW__REQUIRE(p == NULL || p->state != VOW__FREED,
               "the promise was used after its last reference was released");
  vow_outcome_t o = {VOW__TAG_WAIT, p};
  return o;
}

/* ---- life cycle ------------------------------------------------------ */

static vow_promise_t* init_promise(vow_promise_t* p, vow_ctx_t* ctx) {
  p->tail = NULL;
  p->r.canceller = NULL;
  p->refs = 1;
  p->state = VOW_PENDING;
  p->flags = 0;
  p->ctx_id = ctx->id;
  return p;
}

/* Makes room in the ready queue for one more promise with a chain (see
 * struct vow_promise). UV_ENOMEM when there is no memory for it. */
static int ready_room(vow_ctx_t* ctx) {
  size_t cap = ctx->ready_cap ? ctx->ready_cap * 2 : 64;
  vow_promise_t** ring;
  if (ctx->chained < ctx->ready_cap)
    return 0;
  if ((ring = vow__realloc(ctx->ready, cap * sizeof(*ring))) == NULL)
    return UV_ENOMEM;
  /* The queue fills as fast as promises are made: its new half gets the
   * same page advice as a slab. */
  vow__prepare_pages(ring + ctx->ready_cap,
                     (cap - ctx->ready_cap) * sizeof(*ring));
  /* Entries that wrapped round the old end move to just past it. */
  if (ctx->ready_head + ctx->ready_len > ctx->ready_cap)
    memcpy(ring + ctx->ready_cap, ring,
           (ctx->ready_head + ctx->ready_len - ctx->ready_cap) * sizeof(*ring));
  ctx->ready = ring;
  ctx->ready_cap = cap;
  return 0;
}

vow_promise_t* vow_promise_new(vow_ctx_t* ctx, vow_canceller_fn canceller,
                               void* data) {
  VOW__NOT_NULL(ctx, "the context");
  vow_promise_t* p;
  vow__node* record = NULL;
  if (ctx->closing)
    return NULL;
  /* Most promises have no canceller; one that does keeps it in a node
   * slot beside it rather than two words in every promise. */
  if (canceller != NULL) {
    if ((record = vow__arena_get(&ctx->nodes)) == NULL)
      return NULL;
    record->link.fn.cancel = canceller;
    record->link.data = data;
  }
  p = vow__arena_get(&ctx->promises);
  if (p == NULL) {
    if (record != NULL)
      vow__arena_put(&ctx->nodes, record);
    return NULL;
  }
  init_promise(p, ctx);
  p->r.canceller = record;
  return p;
}

vow_promise_t* vow_succeed(vow_ctx_t* ctx, vow_value_t* v) {
  VOW__NOT_NULL(ctx, "the context");
  vow_promise_t* p = vow_promise_new(ctx, NULL, NULL);
  if (p == NULL) {
    vow_value_release(v);
    return NULL;
  }
  vow_fulfil(p, v);
  return p;
}

vow_promise_t* vow_fail(vow_ctx_t* ctx, vow_failure_t* f) {
  VOW__NOT_NULL(ctx, "the context");
  return vow__fail_always(ctx, f);
}

vow_promise_t* vow__fail_always(vow_ctx_t* ctx, vow_failure_t* f) {
  vow_promise_t* p = vow_promise_new(ctx, NULL, NULL);
  if (p == NULL && !ctx->closing && ctx->reserve_len > 0) {
    p = init_promise(ctx->reserve[--ctx->reserve_len], ctx);
    if (f != vow__failure_nomem()) {
      vow_failure_release(f); /* no memory to say more than that */
      f = vow__failure_nomem();
    }
  }
  if (p == NULL) {
    vow_failure_release(f);
    return NULL;
  }
  vow_reject(p, f);
  return p;
}

static void release_result(vow_promise_t* p) {
  if (p->state == VOW_FULFILLED)
    vow_value_release(p->r.value);
  else if (p->state == VOW_REJECTED)
    vow_failure_release(p->r.failure);
  p->r.value = NULL;
}

/* Frees p when nothing can reach it any more and nothing is left to run. A
 * failure still there is unhandled: it is reported now. */
static void maybe_free(vow_promise_t* p) {
  vow_ctx_t* ctx = vow__ctx_of(p);
  if (p->refs != 0 || (p->flags & (VOW__QUEUED | VOW__RUNNING)) ||
      vow__has_chain(p) || !is_settled(p) || ctx->closing)
    return;
  if (p->state == VOW_REJECTED && !(p->flags & VOW__PASSED_ON) &&
      vow__failure_claim_report(p->r.failure))
    vow__report(ctx, VOW_REPORT_UNHANDLED, p->r.failure);
  release_result(p);
  p->state = VOW__FREED; /* not a live promise for the walks at close */
  if (ctx->reserve_len < VOW__RESERVE) {
    ctx->reserve[ctx->reserve_len++] = p;
    return;
  }
  vow__arena_put(&ctx->promises, p);
}

vow_promise_t* vow_promise_ref(vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  p->refs++;
  return p;
}

void vow_promise_release(vow_promise_t* p) {
  if (p == NULL)
    return;
  VOW__REQUIRE(p->refs > 0 && p->state != VOW__FREED,
               "the promise was released once more than it was referenced "
               "(released twice?)");
  if (--p->refs == 0)
    maybe_free(p);
}

vow_state_t vow_promise_state(const vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  return (vow_state_t)p->state;
}

bool vow_promise_started(const vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  return (p->flags & VOW__STARTED) != 0;
}

vow_value_t* vow_promise_value(const vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  return p->state == VOW_FULFILLED ? p->r.value : NULL;
}

vow_failure_t* vow_promise_failure(vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  if (p->state != VOW_REJECTED)
    return NULL;
  p->flags |= VOW__PASSED_ON; /* the caller has seen it */
  return p->r.failure;
}

vow_ctx_t* vow_promise_ctx(const vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  return vow__ctx_of(p);
}

/* ---- scheduling ------------------------------------------------------ */

/* p must have a chain: that is what made room for it (ready_room). */
void vow__schedule(vow_promise_t* p) {
  vow_ctx_t* ctx = vow__ctx_of(p);
  if (p->flags & (VOW__QUEUED | VOW__RUNNING) || ctx->closing)
    return;
  p->flags |= VOW__QUEUED;
  if (ctx->ready_len == 0 && !ctx->draining)
    vow__wake(ctx);
  ctx->ready[(ctx->ready_head + ctx->ready_len++) & (ctx->ready_cap - 1)] = p;
}

/* ---- settling -------------------------------------------------------- */

int vow__settle(vow_promise_t* p, int state, void* result) {
  if (p->ctx_id == 0) { /* its context has closed */
    if (state == VOW_FULFILLED)
      vow_value_release(result);
    else
      vow_failure_release(result);
    return VOW_ECLOSED;
  }
  if (p->state != VOW_PENDING) {
    if (state == VOW_FULFILLED)
      vow_value_release(result);
    else
      vow_failure_release(result);
    return (p->flags & VOW__CANCELLED) ? 0 : VOW_ESETTLED;
  }
  vow__clear_canceller(p);
  p->state = (uint8_t)state;
  if (state == VOW_FULFILLED)
    p->r.value = result;
  else
    p->r.failure = result;
  if (vow__has_chain(p))
    vow__schedule(p);
  else
    maybe_free(p);
  return 0;
}

void vow__clear_canceller(vow_promise_t* p) {
  if (p->state != VOW_PENDING || p->r.canceller == NULL)
    return;
  vow__arena_put(&vow__ctx_of(p)->nodes, p->r.canceller);
  p->r.canceller = NULL;
}

int vow_fulfil(vow_promise_t* p, vow_value_t* v) {
  VOW__LIVE_PROMISE(p);
  return vow__settle(p, VOW_FULFILLED, v ? v : vow_value_nil());
}

int vow_reject(vow_promise_t* p, vow_failure_t* f) {
  VOW__LIVE_PROMISE(p);
  return vow__settle(p, VOW_REJECTED, f ? f : vow__failure_nomem());
}

void* vow__share(vow_promise_t* p, int* state) {
  *state = p->state;
  /* Whoever takes it on answers for a failure now: p no longer reports
   * it as unhandled. */
  p->flags |= VOW__PASSED_ON;
  if (p->state == VOW_FULFILLED)
    return vow_value_ref(p->r.value);
  return vow_failure_ref(p->r.failure);
}

void vow__put(vow_promise_t* p, int state, void* result) {
  release_result(p);
  p->state = (uint8_t)state;
  p->r.value = result;
}

/* ---- the chain ------------------------------------------------------- */

/* Returns the link to fill at the end of p's chain, a new node. NULL when
 * out of memory. Schedules p when it is settled: a link added to a
 * settled promise runs on a later tick. */
static vow__link* append_link(vow_promise_t* p, bool is_kind) {
  vow_ctx_t* ctx = vow__ctx_of(p);
  vow__node* n;
  if (ctx->closing)
    return NULL; /* nothing runs any more */
  if (p->tail == NULL && ready_room(ctx) != 0)
    return NULL;
  if ((n = vow__arena_get(&ctx->nodes)) == NULL)
    return NULL;
  n->next = (vow__node*)(is_kind ? KIND_BIT : 0);
  if (p->tail == NULL) {
    node_set_next(n, n);
    ctx->chained++;
  } else {
    node_set_next(n, node_next(p->tail));
    node_set_next(p->tail, n);
  }
  p->tail = n;
  if (is_settled(p))
    vow__schedule(p);
  return &n->link;
}

/* Moves the first link of p's chain into *out; returns whether it is a
 * kind link. The chain must not be empty. */
static bool pop_link(vow_promise_t* p, vow__link* out) {
  vow__node* head = node_next(p->tail);
  bool is_kind;
  if (head == p->tail) {
    p->tail = NULL;
    vow__ctx_of(p)->chained--;
  } else
    node_set_next(p->tail, node_next(head));
  is_kind = ((uintptr_t)head->next & KIND_BIT) != 0;
  *out = head->link;
  vow__arena_put(&vow__ctx_of(p)->nodes, head);
  return is_kind;
}

vow_promise_t* vow__append(vow_promise_t* p, const vow__node_kind* kind,
                           void* data) {
  vow__link* n = append_link(p, true);
  if (n == NULL)
    return NULL;
  n->fn.cb = NULL;
  n->tag.kind = kind;
  n->data = data;
  return p;
}

/* A link that cannot be added leaves the chain unable to go on as asked,
 * so the chain is switched to an out-of-memory failure. */
static void fail_chain_nomem(vow_promise_t* p) {
  if (vow__ctx_of(p)->closing)
    return;
  if (p->state == VOW_PENDING)
    vow_reject(p, vow__failure_nomem());
  else if (is_settled(p))
    vow__put(p, VOW_REJECTED, vow__failure_nomem());
}

vow_promise_t* vow_add_callbacks(vow_promise_t* p, vow_callback_fn callback,
                                 vow_errback_fn errback, void* data) {
  VOW__LIVE_PROMISE(p);
  vow__link* n;
  if (callback == NULL && errback == NULL)
    return p;
  n = append_link(p, false);
  if (n == NULL) {
    fail_chain_nomem(p);
    return p;
  }
  n->fn.cb = callback;
  n->tag.eb = errback;
  n->data = data;
  return p;
}

vow_promise_t* vow_add_callback(vow_promise_t* p, vow_callback_fn callback,
                                void* data) {
  VOW__LIVE_PROMISE(p);
  return vow_add_callbacks(p, callback, NULL, data);
}

vow_promise_t* vow_add_errback(vow_promise_t* p, vow_errback_fn errback,
                               void* data) {
  VOW__LIVE_PROMISE(p);
  return vow_add_callbacks(p, NULL, errback, data);
}

static void run_both(vow_promise_t* p, const vow__link* n);
static const vow__node_kind both_kind = {run_both, NULL};

vow_promise_t* vow_add_both(vow_promise_t* p, vow_both_fn fn, void* data) {
  VOW__LIVE_PROMISE(p);
  vow__link* n;
  if (fn == NULL)
    return p;
  n = append_link(p, true);
  if (n == NULL) {
    fail_chain_nomem(p);
    return p;
  }
  n->fn.both = fn;
  n->tag.kind = &both_kind;
  n->data = data;
  return p;
}

/* One kind per failure kind, so a trap node needs no room for the kind it
 * matches: it is the kind's index in this table. */
static void run_trap(vow_promise_t* p, const vow__link* n);
#define TRAP_KIND(name, text) {run_trap, NULL},
static const vow__node_kind trap_kinds[VOW_FAIL_KIND_COUNT] = {
    {run_trap, NULL}, VOW_FAILURE_KIND_MAP(TRAP_KIND)};
#undef TRAP_KIND

vow_promise_t* vow_trap(vow_promise_t* p, int kind, vow_errback_fn errback,
                        void* data) {
  VOW__LIVE_PROMISE(p);
  vow__link* n;
  if (errback == NULL || kind <= 0 || kind >= VOW_FAIL_KIND_COUNT)
    return p;
  n = append_link(p, true);
  if (n == NULL) {
    fail_chain_nomem(p);
    return p;
  }
  n->fn.trap_eb = errback;
  n->tag.kind = &trap_kinds[kind];
  n->data = data;
  return p;
}

/* Applies a callback's outcome to p, whose result the callback consumed. */
static void apply(vow_promise_t* p, vow_outcome_t out) {
  vow_promise_t* q;
  vow_promise_t* leaf;
  switch (out.vow__tag) {
    case VOW__TAG_VALUE:
      p->state = VOW_FULFILLED;
      p->r.value = out.vow__what;
      return;
    case VOW__TAG_FAILURE:
      p->state = VOW_REJECTED;
      p->r.failure = out.vow__what;
      return;
    case VOW__TAG_WAIT:
      break;
    default:
      p->state = VOW_REJECTED;
      p->r.failure = vow_failure_new(
          VOW_FAIL_BAD_INPUT, UV_EINVAL,
          "a callback returned something that is not an outcome "
          "(use vow_ok, vow_err or vow_wait)");
      return;
  }
  q = out.vow__what;
  p->state = VOW_REJECTED;
  if (q == NULL) {
    p->r.failure = vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                   "vow_wait was given a NULL promise");
    return;
  }
  if (q->ctx_id != p->ctx_id) {
    vow_promise_release(q);
    p->r.failure =
        vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                        "vow_wait was given a promise of another context");
    return;
  }
  /* p is running, so it waits on nothing: a cycle closes exactly when the
   * promise at the end of q's waiting path is p itself. */
  for (leaf = q; leaf->state == VOW_WAITING; leaf = leaf->r.inner) {
  }
  if (leaf == p) {
    vow_promise_release(q);
    p->r.failure = vow_failure_new(
        VOW_FAIL_CYCLE, UV_EINVAL,
        q == p ? "a callback returned the promise whose chain it is on"
               : "waiting on this promise would close a cycle of promises");
    return;
  }
  p->state = VOW_WAITING;
  p->r.inner = q;
  if (vow__append(q, &vow__resume_kind, p) == NULL) {
    vow_promise_release(q);
    p->state = VOW_REJECTED;
    p->r.failure = vow__failure_nomem();
  }
}

static void run_both(vow_promise_t* p, const vow__link* n) {
  vow_value_t* v = p->state == VOW_FULFILLED ? p->r.value : NULL;
  vow_failure_t* f = p->state == VOW_REJECTED ? p->r.failure : NULL;
  p->r.value = NULL;
  apply(p, n->fn.both(v, f, n->data));
}

static void run_trap(vow_promise_t* p, const vow__link* n) {
  int kind = (int)(n->tag.kind - trap_kinds);
  vow_failure_t* f;
  if (p->state != VOW_REJECTED || !vow_failure_check(p->r.failure, kind))
    return;
  f = p->r.failure;
  p->r.failure = NULL;
  apply(p, n->fn.trap_eb(f, n->data));
}

/* The link a waiting promise leaves in the chain of the promise it waits
 * on: it shares that chain's result with the waiter (q keeps its own, as
 * a JS promise does) and queues the waiter again. */
static void run_resume(vow_promise_t* q, const vow__link* n) {
  vow_promise_t* p = n->data;
  int state;
  void* result = vow__share(q, &state);
  vow_promise_release(p->r.inner); /* q is running: not freed here */
  p->state = (uint8_t)state;
  p->r.value = result;
  if (vow__has_chain(p))
    vow__schedule(p);
  else
    maybe_free(p);
}
const vow__node_kind vow__resume_kind = {run_resume, NULL};

static void run_chain(vow_promise_t* p) {
  vow__link n;
  p->flags |= VOW__RUNNING;
  while (vow__has_chain(p) && is_settled(p)) {
    if (pop_link(p, &n)) {
      n.tag.kind->run(p, &n);
    } else if (p->state == VOW_FULFILLED) {
      if (n.fn.cb != NULL) {
        vow_value_t* v = p->r.value;
        p->r.value = NULL;
        apply(p, n.fn.cb(v, n.data));
      }
    } else if (n.tag.eb != NULL) {
      vow_failure_t* f = p->r.failure;
      p->r.failure = NULL;
      apply(p, n.tag.eb(f, n.data));
    }
  }
  p->flags &= (uint8_t)~VOW__RUNNING;
  maybe_free(p);
}

size_t vow__drain(vow_ctx_t* ctx) {
  size_t ran = 0;
  vow_promise_t* p;
  if (ctx->draining)
    return 0;
  ctx->draining = true;
  while (ctx->ready_len > 0) {
    p = ctx->ready[ctx->ready_head];
    ctx->ready_head = (ctx->ready_head + 1) & (ctx->ready_cap - 1);
    ctx->ready_len--;
    p->flags &= ~VOW__QUEUED;
    run_chain(p);
    ran++;
  }
  ctx->draining = false;
  uv_idle_stop(&ctx->idle);
  return ran;
}

/* ---- branch ---------------------------------------------------------- */

static void run_branch(vow_promise_t* p, const vow__link* n) {
  vow_promise_t* b = n->data;
  if (p->state == VOW_FULFILLED)
    vow__settle(b, VOW_FULFILLED, vow_value_ref(p->r.value));
  else
    vow__settle(b, VOW_REJECTED, vow_failure_ref(p->r.failure));
  vow_promise_release(b);
}

static void discard_branch(const vow__link* n) {
  (void)n; /* the branch is pending and is reported by the walk at close */
}

static const vow__node_kind branch_kind = {run_branch, discard_branch};

vow_promise_t* vow_branch(vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  vow_promise_t* b = vow_promise_new(vow__ctx_of(p), NULL, NULL);
  if (b == NULL)
    return NULL;
  /* The chain holds a reference until the branch is settled, so the
   * caller may release theirs at any time. */
  vow_promise_ref(b);
  if (vow__append(p, &branch_kind, b) == NULL) {
    vow_promise_release(b);
    vow_reject(b, vow__failure_nomem());
  }
  return b;
}

/* ---- cancel ---------------------------------------------------------- */

void vow__cancel_as(vow_promise_t* p, int kind, const char* message) {
  /* A waiting promise is cancelled through the promise at the end of its
   * waiting path, whose outcome then flows back up. */
  while (p->state == VOW_WAITING)
    p = p->r.inner;
  if (p->state != VOW_PENDING || (p->flags & VOW__CANCELLING))
    return;
  p->refs++; /* the canceller may release the last reference */
  p->flags |= VOW__CANCELLING;
  if (p->r.canceller != NULL) {
    vow_canceller_fn fn = p->r.canceller->link.fn.cancel;
    void* data = p->r.canceller->link.data;
    vow__clear_canceller(p);
    fn(p, data);
  }
  if (p->state == VOW_PENDING)
    vow__settle(
        p, VOW_REJECTED,
        vow_failure_new(kind,
                        kind == VOW_FAIL_TIMEOUT ? UV_ETIMEDOUT : UV_ECANCELED,
                        "%s", message));
  p->flags = (uint8_t)((p->flags & ~VOW__CANCELLING) | VOW__CANCELLED);
  vow_promise_release(p);
}

void vow_cancel(vow_promise_t* p) {
  VOW__LIVE_PROMISE(p);
  vow__cancel_as(p, VOW_FAIL_CANCELLED, "cancelled");
}

/* ---- close ----------------------------------------------------------- */

static void empty_at_close(vow_promise_t* p) {
  vow__link n;
  while (vow__has_chain(p)) {
    if (pop_link(p, &n) && n.tag.kind->discard != NULL)
      n.tag.kind->discard(&n);
  }
  vow__clear_canceller(p);
  if (p->state == VOW_WAITING || p->state == VOW_PENDING)
    p->r.value = NULL;
  release_result(p);
}

void vow__destroy_promise_at_close(vow_promise_t* p) {
  empty_at_close(p);
  p->state = VOW__FREED;
  vow__arena_put(&vow__ctx_of(p)->promises, p);
}

void vow__orphan_promise_at_close(vow_promise_t* p) {
  empty_at_close(p);
  p->state = VOW_REJECTED;
  p->r.failure = vow__failure_closed();
  p->flags = VOW__PASSED_ON;
}
