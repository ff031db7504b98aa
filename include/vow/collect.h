/* vow — collectors: settled promises taken in batches instead of through
 * callbacks.
 *
 * A program that cannot be called back cheaply (another language through
 * its foreign-function interface, say) adds each promise it waits on to a
 * collector with a tag of its own, runs the loop, and takes what has
 * settled, oldest first, many at a time.
 */
#ifndef VOW_COLLECT_H
#define VOW_COLLECT_H

#include "pool.h"
#include "promise.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vow_collector vow_collector_t;

/* One settled promise, as vow_collector_take hands it out. Everything in
 * it is borrowed: valid until the next vow_collector_take on the same
 * collector, or vow_collector_free. */
typedef struct vow_settled {
  uint64_t tag;           /* as given to vow_collector_add */
  vow_state_t state;      /* VOW_FULFILLED or VOW_REJECTED */
  vow_value_t* value;     /* when fulfilled */
  const void* bytes;      /* the value's msgpack encoding, when it has one */
  size_t len;             /* of bytes */
  vow_failure_t* failure; /* when rejected */
  vow_promise_t* promise;
} vow_settled_t;

/* NULL when out of memory. The caller owns the collector; free it before
 * closing ctx (promises it still watches then are reported pending, like
 * any other). */
VOW_EXTERN vow_collector_t* vow_collector_new(vow_ctx_t* ctx);

/* Watches p (borrowed: the collector takes a reference of its own) and
 * queues (tag, p) for vow_collector_take once p has settled; a failure
 * taken that way counts as handled. Returns 0, UV_EINVAL when p is of
 * another context, or UV_ENOMEM. */
VOW_EXTERN int vow_collector_add(vow_collector_t* c, vow_promise_t* p,
                                 uint64_t tag);

/* vow_pool_submit (timeout_ms 0) or vow_pool_submit_timeout of fn with
 * args, one msgpack object of len bytes (copied), watched by c as
 * vow_collector_add would: one call where a binding would make four.
 * Returns the task's promise, borrowed: the collector's reference keeps it
 * until it is taken. NULL, with *err set, when args is not one msgpack
 * object (UV_EINVAL), c is of another context than pool (UV_EINVAL), the
 * context is closed (UV_ECANCELED) or memory ran out (UV_ENOMEM). */
VOW_EXTERN vow_promise_t* vow_collector_submit(vow_collector_t* c,
                                               vow_pool_t* pool, const char* fn,
                                               const void* args, size_t len,
                                               uint64_t timeout_ms,
                                               uint64_t tag, int* err);

/* n submissions in one call, for a binding that gathers them: records is
 * n records back to back, record i lens[i] bytes long, each the function's
 * name as a msgpack str followed by its args as one msgpack object. Record
 * i is submitted as vow_collector_submit would (tag first_tag + i, the
 * same timeout_ms for all) and its borrowed promise stored in out[i], or
 * NULL with the reason in errs[i] (UV_EINVAL for a malformed record,
 * else as vow_collector_submit). Returns how many were submitted. */
VOW_EXTERN size_t vow_collector_submit_many(
    vow_collector_t* c, vow_pool_t* pool, const void* records,
    const size_t* lens, size_t n, uint64_t timeout_ms, uint64_t first_tag,
    vow_promise_t** out, int* errs);

/* Fills out with up to max of the promises that have settled, in the
 * order they settled, and returns how many. Releases what the previous
 * take handed out. */
VOW_EXTERN size_t vow_collector_take(vow_collector_t* c, vow_settled_t* out,
                                     size_t max);

/* As vow_collector_take, also copying the msgpack bytes of the values
 * taken into buf, one after another, so a binding decodes them as one
 * stream: *used is how many bytes it copied, the bytes of every entry
 * whose .bytes is set, in order. It stops before a value that would not
 * fit in what is left of cap, unless that is the first one: then it takes
 * just that one, copies nothing, and sets *used to 0 (read it through its
 * .bytes). */
VOW_EXTERN size_t vow_collector_take_into(vow_collector_t* c,
                                          vow_settled_t* out, size_t max,
                                          void* buf, size_t cap, size_t* used);

/* How many settled promises are waiting to be taken. */
VOW_EXTERN size_t vow_collector_ready(const vow_collector_t* c);
/* How many added promises have not settled yet. */
VOW_EXTERN size_t vow_collector_watching(const vow_collector_t* c);

/* Releases everything the collector holds; promises it watched still
 * settle, unobserved by it. NULL is ignored. */
VOW_EXTERN void vow_collector_free(vow_collector_t* c);

#ifdef __cplusplus
}
#endif
#endif /* VOW_COLLECT_H */
