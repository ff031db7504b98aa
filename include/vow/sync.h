/* vow — lock, semaphore and queue whose waits return promises (Twisted's
 * DeferredLock, DeferredSemaphore and DeferredQueue).
 *
 * A waiting acquire or get can be cancelled: it leaves the wait list, and a
 * later release or put goes to the next waiter, so nothing is lost. Each
 * object belongs to one context and must be freed before it closes.
 */
#ifndef VOW_SYNC_H
#define VOW_SYNC_H

#include "promise.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vow_semaphore vow_semaphore_t;
typedef struct vow_queue vow_queue_t;

/* A semaphore with `tokens` tokens (a lock is a semaphore of one token),
 * the caller's to end with vow_semaphore_free; NULL when memory runs
 * out. */
VOW_EXTERN vow_semaphore_t* vow_semaphore_new(vow_ctx_t* ctx, size_t tokens);
/* Fulfils (with nil) once a token is held by the caller. */
VOW_EXTERN vow_promise_t* vow_semaphore_acquire(vow_semaphore_t* s);
/* Gives a token back, to the oldest waiter if any. Returns 0, or
 * VOW_ENOTLOCKED when every token is already free. */
VOW_EXTERN int vow_semaphore_release(vow_semaphore_t* s);
/* Runs fn(data) once a token is held; fn returns a promise (taken over);
 * the token goes back when that promise settles, and the returned promise
 * settles like it. At most `tokens` such operations run at once. */
typedef vow_promise_t* (*vow_operation_fn)(void* data);
VOW_EXTERN vow_promise_t* vow_semaphore_run(vow_semaphore_t* s,
                                            vow_operation_fn fn, void* data);
VOW_EXTERN size_t vow_semaphore_available(const vow_semaphore_t* s);
VOW_EXTERN size_t vow_semaphore_waiting(const vow_semaphore_t* s);
/* Waiting acquires are cancelled. */
VOW_EXTERN void vow_semaphore_free(vow_semaphore_t* s);

/* The lock: a semaphore of one token. */
VOW_EXTERN vow_semaphore_t* vow_lock_new(vow_ctx_t* ctx);
#define vow_lock_acquire vow_semaphore_acquire
#define vow_lock_release vow_semaphore_release
#define vow_lock_run vow_semaphore_run
#define vow_lock_free vow_semaphore_free

/* No limit, for vow_queue_new's size and backlog. */
#define VOW_UNBOUNDED SIZE_MAX

/* A queue holding at most `size` values with at most `backlog` waiting
 * gets; VOW_UNBOUNDED for either means no limit (Twisted's None). A size
 * of 0 holds nothing: a put succeeds only when a get is waiting for it,
 * a rendezvous. A backlog of 0 makes a get on an empty queue fail at
 * once. The queue is the
 * caller's to end with vow_queue_free; NULL when memory runs out. */
VOW_EXTERN vow_queue_t* vow_queue_new(vow_ctx_t* ctx, size_t size,
                                      size_t backlog);
/* Takes over v. Hands it to the oldest waiting get, or keeps it. Returns 0,
 * or VOW_EFULL (v is released) when no get is waiting and the queue holds
 * `size` values already. */
VOW_EXTERN int vow_queue_put(vow_queue_t* q, vow_value_t* v);
/* Fulfils with the next value. With a full backlog it rejects at once with
 * VOW_FAIL_QUEUE_FULL. */
VOW_EXTERN vow_promise_t* vow_queue_get(vow_queue_t* q);
VOW_EXTERN size_t vow_queue_len(const vow_queue_t* q);
/* Waiting gets are cancelled; held values are released. */
VOW_EXTERN void vow_queue_free(vow_queue_t* q);

#ifdef __cplusplus
}
#endif
#endif /* VOW_SYNC_H */
