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

/* Fills out with up to max of the promises that have settled, in the
 * order they settled, and returns how many. Releases what the previous
 * take handed out. */
VOW_EXTERN size_t vow_collector_take(vow_collector_t* c, vow_settled_t* out,
                                     size_t max);

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
