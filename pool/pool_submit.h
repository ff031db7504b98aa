/* pool/pool_submit.h — the pool's engine as its front ends see it. The
 * front ends (vow_pool_map in pool_map.c, vow_pool_stream in
 * pool_stream.c, the collector in collect.c) use the public API
 * (vow/pool.h) and this, never struct vow_pool or its workers: the engine
 * does not know them, and they call it one way. The `layout` test holds
 * them to it. Private to pool/. */
#ifndef VOW_POOL_SUBMIT_H
#define VOW_POOL_SUBMIT_H

#include <stdint.h>

#include "vow/pool.h"

/* Arguments per batch: a frame stays far below the protocol's limit and
 * one worker does not take a long run of big tasks at once. */
#define VOW__BATCH_BYTES ((size_t)1 << 20)

/* The context the pool runs on. */
vow_ctx_t* vow__pool_ctx(const vow_pool_t* pool);
/* How many workers the pool runs at most. */
unsigned vow__pool_slots(const vow_pool_t* pool);
/* Takes n run indexes (each a task's id and seed index, as if submitted
 * alone) for the caller's items and returns the first. */
uint64_t vow__pool_take_ids(vow_pool_t* pool, uint64_t n);
/* Queues a task (count == 0) or a map chunk of count items. id: its id on
 * the wire, 0 to take the next; index: its seed's run index (a chunk's
 * first item's), 0 for its id; flat: args is an array of at most 4096
 * scalars, within a message's limits without a walk to prove it. Takes
 * args. */
vow_promise_t* vow__pool_submit_task(vow_pool_t* pool, const char* fn,
                                     vow_value_t* args, uint64_t timeout_ms,
                                     uint64_t id, uint64_t index,
                                     uint16_t count, bool flat);
/* A run index a caller gave (vow_pool_*_indexed): NULL when it is one
 * (from 1), else a promise rejected with the reason, args released. */
vow_promise_t* vow__pool_bad_index(vow_pool_t* pool, uint64_t index,
                                   vow_value_t* args);

#endif
