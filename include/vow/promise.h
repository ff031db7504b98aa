/* vow — promises: Twisted's Deferred with the ordering of Promises/A+.
 *
 * A promise is pending, then fulfilled with a value or rejected with a
 * failure, once. Its chain of callbacks runs from the event loop, in the
 * order they were added, never inside the call that adds them or settles
 * the promise. Each callback receives the current result, which it now
 * owns, and returns an outcome: vow_ok(value), vow_err(failure) or
 * vow_wait(promise). The chain owns whatever is returned.
 *
 * Ownership of promises: whoever creates a promise holds one reference.
 * Passing a promise to vow_wait or to a combinator hands that reference
 * over. A promise is freed once its last reference is gone and its chain has
 * run; a pending promise is never freed before it settles or its context
 * closes. Releasing a promise does not cancel it.
 *
 * All functions here must be called on the loop thread of the promise's
 * context, except those named *_threadsafe (see io.h).
 */
#ifndef VOW_PROMISE_H
#define VOW_PROMISE_H

#include "common.h"
#include "failure.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a callback returns. Build it only with the functions below; the
 * fields are private. */
typedef struct vow_outcome {
  int vow__tag;    /* private */
  void* vow__what; /* private */
} vow_outcome_t;

/* Continue down the callback path with v (taken over; NULL means nil). */
VOW_EXTERN vow_outcome_t vow_ok(vow_value_t* v);
/* Switch to the errback path with f (taken over; NULL means out of
 * memory). */
VOW_EXTERN vow_outcome_t vow_err(vow_failure_t* f);
/* Shorthand for vow_err(vow_failure_new(kind, code, fmt, ...)). */
VOW_EXTERN vow_outcome_t vow_errf(int kind, int code, const char* fmt, ...)
    VOW_PRINTF(3, 4);
/* Pause the chain until p settles, then continue with its outcome. Takes
 * over a reference to p. Waiting on the promise whose chain is running, or
 * on one that (through others) waits on it, fails with VOW_FAIL_CYCLE. */
VOW_EXTERN vow_outcome_t vow_wait(vow_promise_t* p);

typedef vow_outcome_t (*vow_callback_fn)(vow_value_t* value, void* data);
typedef vow_outcome_t (*vow_errback_fn)(vow_failure_t* failure, void* data);
/* Exactly one of value and failure is non-NULL. */
typedef vow_outcome_t (*vow_both_fn)(vow_value_t* value, vow_failure_t* failure,
                                     void* data);
/* Runs once when a pending promise is cancelled, before it is rejected as
 * cancelled. It may settle p itself with another outcome. */
typedef void (*vow_canceller_fn)(vow_promise_t* p, void* data);

typedef enum vow_state {
  VOW_PENDING = 0,
  VOW_FULFILLED,
  VOW_REJECTED,
  VOW_WAITING /* ran callbacks, now paused until another promise settles */
} vow_state_t;

/* A new pending promise with one reference (the caller's). canceller may be
 * NULL. Returns NULL only when memory runs out or ctx is closed. */
VOW_EXTERN vow_promise_t* vow_promise_new(vow_ctx_t* ctx,
                                          vow_canceller_fn canceller,
                                          void* data);
/* Already-settled promises (Twisted's succeed / fail). Take over v / f. */
VOW_EXTERN vow_promise_t* vow_succeed(vow_ctx_t* ctx, vow_value_t* v);
VOW_EXTERN vow_promise_t* vow_fail(vow_ctx_t* ctx, vow_failure_t* f);

/* Settle p. Always takes over v / f. Returns 0, or VOW_ESETTLED when p was
 * already settled (nothing changes). A settle that arrives after p was
 * cancelled is dropped silently and returns 0. */
VOW_EXTERN int vow_fulfil(vow_promise_t* p, vow_value_t* v);
VOW_EXTERN int vow_reject(vow_promise_t* p, vow_failure_t* f);

/* Append to p's chain and return p (the same reference: no new one is
 * made), so calls chain. NULL functions pass the result on unchanged.
 * data is yours; vow never frees it. */
VOW_EXTERN vow_promise_t* vow_add_callbacks(vow_promise_t* p,
                                            vow_callback_fn callback,
                                            vow_errback_fn errback, void* data);
VOW_EXTERN vow_promise_t* vow_add_callback(vow_promise_t* p,
                                           vow_callback_fn callback,
                                           void* data);
VOW_EXTERN vow_promise_t* vow_add_errback(vow_promise_t* p,
                                          vow_errback_fn errback, void* data);
VOW_EXTERN vow_promise_t* vow_add_both(vow_promise_t* p, vow_both_fn fn,
                                       void* data);
/* Twisted's trap: an errback that runs only for failures of one kind;
 * failures of other kinds pass on to the next errback unchanged. */
VOW_EXTERN vow_promise_t* vow_trap(vow_promise_t* p, int kind,
                                   vow_errback_fn errback, void* data);

/* A new promise (one reference, the caller's) that settles with p's result
 * as it stands at this point of p's chain, shared by reference; p's chain
 * goes on untouched. Cancelling the branch does not cancel p. */
VOW_EXTERN vow_promise_t* vow_branch(vow_promise_t* p);

/* Adds a reference to p, which the caller then owns; returns p. */
VOW_EXTERN vow_promise_t* vow_promise_ref(vow_promise_t* p);
/* Gives up one reference (NULL is fine). Does not cancel p. */
VOW_EXTERN void vow_promise_release(vow_promise_t* p);

VOW_EXTERN vow_state_t vow_promise_state(const vow_promise_t* p);
/* Whether the work p stands for has begun: a pool task's promise once a
 * worker runs it (the oldest task a worker holds; the others wait behind
 * it), and from then on, settled or not. A task still queued, or sent
 * ahead to a busy worker, has not begun, and cancelling it stops nothing
 * that ran. Promises made otherwise never say so. */
VOW_EXTERN bool vow_promise_started(const vow_promise_t* p);
/* The result of a settled promise, borrowed: valid while you hold p and
 * its chain does not run again (take vow_value_ref / vow_failure_ref to
 * keep it). vow_promise_value is NULL unless p is VOW_FULFILLED, and
 * vow_promise_failure NULL unless it is VOW_REJECTED. Reading a failure
 * here counts as handling it: it is not reported as unhandled. */
VOW_EXTERN vow_value_t* vow_promise_value(const vow_promise_t* p);
VOW_EXTERN vow_failure_t* vow_promise_failure(vow_promise_t* p);
/* Borrowed: the context p belongs to. */
VOW_EXTERN vow_ctx_t* vow_promise_ctx(const vow_promise_t* p);

/* Cancel a pending promise: its canceller runs once, then, unless the
 * canceller settled it, it is rejected with VOW_FAIL_CANCELLED. A promise
 * waiting on another cancels that one instead. A settled promise is left
 * alone. */
VOW_EXTERN void vow_cancel(vow_promise_t* p);
/* Cancel p with a VOW_FAIL_TIMEOUT failure unless it settles within ms
 * milliseconds of the context's clock. Returns p (no new reference). The
 * timer is removed
 * when p's chain passes this point. */
VOW_EXTERN vow_promise_t* vow_timeout(vow_promise_t* p, uint64_t ms);

/* Combinators. Each takes over the references to ps[0..n) (the array
 * itself stays yours) and returns a new promise.
 * - vow_all: fulfils with an array of the values in input order; the first
 *   failure rejects it and the other inputs are cancelled.
 * - vow_all_settled: fulfils with an array holding each input's value, or a
 *   VOW_VALUE_FAILURE value for each that failed (Twisted's DeferredList).
 * - vow_first_settled: settles like the first input to settle (JS race).
 * - vow_any_fulfilled: fulfils like the first input to fulfil; when all
 *   fail it rejects with VOW_FAIL_ALL_FAILED whose causes are every
 *   failure in input order.
 * The losers of first_settled and any_fulfilled are cancelled exactly
 * once. Cancelling a combinator's promise cancels its pending inputs. With
 * n == 0, all and all_settled fulfil with an empty array and the other two
 * reject with VOW_FAIL_EMPTY_INPUT. */
VOW_EXTERN vow_promise_t* vow_all(vow_ctx_t* ctx, vow_promise_t** ps, size_t n);
VOW_EXTERN vow_promise_t* vow_all_settled(vow_ctx_t* ctx, vow_promise_t** ps,
                                          size_t n);
VOW_EXTERN vow_promise_t* vow_first_settled(vow_ctx_t* ctx, vow_promise_t** ps,
                                            size_t n);
VOW_EXTERN vow_promise_t* vow_any_fulfilled(vow_ctx_t* ctx, vow_promise_t** ps,
                                            size_t n);

#ifdef __cplusplus
}
#endif
#endif /* VOW_PROMISE_H */
