/* vow — the context: vow's state for one libuv loop.
 *
 * A context holds the ready queue of callback chains, the timer heap, the
 * promise allocator and the report handler. It works on a loop you already
 * run, or on one it creates and owns.
 */
#ifndef VOW_CONTEXT_H
#define VOW_CONTEXT_H

#include <uv.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Binds a new context to loop (borrowed; it must outlive the context);
 * with loop == NULL the context creates its own loop and closes it in
 * vow_ctx_close. Returns the context, which the caller owns and ends with
 * vow_ctx_close; or NULL, with *err (when err is not NULL) set to
 * UV_ENOMEM, UV_EMFILE when 65,535 contexts are open already (a promise
 * names its context by a 16-bit id; closing a context frees its id), or
 * the error that kept the loop from being set up. */
VOW_EXTERN vow_ctx_t* vow_ctx_new(uv_loop_t* loop, int* err);

/* Borrowed. */
VOW_EXTERN uv_loop_t* vow_ctx_loop(vow_ctx_t* ctx);

/* Runs the loop until nothing is left to do (uv_run, UV_RUN_DEFAULT).
 * Returns uv_run's result. Not from inside a callback (see
 * vow_ctx_wait). */
VOW_EXTERN int vow_ctx_run(vow_ctx_t* ctx);

/* Runs the loop until p is settled and its chain has run, for programs
 * and tests that need one result before going on. Returns p's final state
 * (VOW_FULFILLED or VOW_REJECTED). p is borrowed: its reference stays
 * the caller's. Blocks forever if p never settles. Not from inside a
 * callback (a chain's, or any callback the loop runs while vow_ctx_run
 * or vow_ctx_wait runs it): it would wait for the loop that runs its
 * caller, so it stops the program saying so; a callback returns
 * vow_wait(p) instead. vow_ctx_run and vow_ctx_close are held to the
 * same rule. */
VOW_EXTERN int vow_ctx_wait(vow_ctx_t* ctx, vow_promise_t* p);

/* Runs every callback chain that is ready, without running the loop, and
 * returns how many chains ran. For tests and for hosts that drive the loop
 * themselves. Must not be called from inside a callback. */
VOW_EXTERN size_t vow_ctx_drain(vow_ctx_t* ctx);

typedef enum vow_report_kind {
  VOW_REPORT_UNHANDLED = 1, /* a failure reached the end of a chain */
  VOW_REPORT_PENDING        /* a promise was still pending at close */
} vow_report_kind_t;

/* Called once for each failure that was never handled (when its promise is
 * freed, or at close) and once for each promise still pending at close.
 * failure is borrowed and NULL for VOW_REPORT_PENDING. */
typedef void (*vow_report_fn)(vow_ctx_t* ctx, vow_report_kind_t kind,
                              vow_failure_t* failure, void* data);

/* Replaces the handler; fn == NULL restores the default, which writes one
 * line per report to stderr. */
VOW_EXTERN void vow_ctx_set_report_handler(vow_ctx_t* ctx, vow_report_fn fn,
                                           void* data);

/* Closes the context: runs the callbacks already ready, reports every
 * promise still pending and every failure still unhandled (once each), stops
 * the context's timers, kills its child commands and frees its promises.
 * Every promise of the context is invalid afterwards. With a loop the
 * context owns, this returns when everything is freed. With your own loop,
 * the last memory is freed from close callbacks: run your loop once more
 * before uv_loop_close. Not callable from inside a callback. */
VOW_EXTERN void vow_ctx_close(vow_ctx_t* ctx);

/* The context's clock in milliseconds (the loop's time, or the fake
 * clock's). */
VOW_EXTERN uint64_t vow_ctx_now(vow_ctx_t* ctx);

/* Switches the context to a fake clock that starts at start_ms and moves
 * only when vow_ctx_advance is called: timeouts and sleeps are then tested
 * without waiting. Call before any timer is armed; returns UV_EBUSY
 * otherwise. */
VOW_EXTERN int vow_ctx_use_fake_clock(vow_ctx_t* ctx, uint64_t start_ms);
/* Moves the fake clock forward, fires the timers now due (in deadline
 * order) and drains the callbacks they make ready. Returns UV_EINVAL when
 * the context is on the real clock. */
VOW_EXTERN int vow_ctx_advance(vow_ctx_t* ctx, uint64_t ms);

/* Counters, for tests and benchmarks. */
typedef struct vow_ctx_stats {
  size_t promises_live; /* allocated and not yet freed */
  size_t promises_pending;
  size_t timers;         /* armed timers */
  size_t bytes_reserved; /* promise and callback slabs */
} vow_ctx_stats_t;
VOW_EXTERN void vow_ctx_stats(vow_ctx_t* ctx, vow_ctx_stats_t* out);

#ifdef __cplusplus
}
#endif
#endif /* VOW_CONTEXT_H */
