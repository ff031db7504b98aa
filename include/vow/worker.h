/* vow — the worker side: task functions and the worker process.
 *
 * A task function receives its arguments as a msgpack object, a packer for
 * its result, and a task context. It packs exactly one object and returns
 * 0, or returns vow_task_fail(...) with a message (and packs nothing).
 *
 * A program becomes its own worker: its main() first calls
 * vow_worker_main() with its function table, which returns at once unless
 * this process was started as a worker by a pool; then it serves tasks and
 * exits. Or the stock `vow-worker` binary loads a shared library that
 * exports its table with VOW_PLUGIN().
 */
#ifndef VOW_WORKER_H
#define VOW_WORKER_H

#include <msgpack.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vow_task_ctx vow_task_ctx_t;

typedef int (*vow_task_fn)(vow_task_ctx_t* task, const msgpack_object* args,
                           msgpack_packer* result);

typedef struct vow_function {
  const char* name;
  vow_task_fn fn;
} vow_function_t;

/* The task's id (unique in its pool) and its seed, derived from the run's
 * seed and the task's submission index: the same for a given task however
 * many workers there are. */
VOW_EXTERN uint64_t vow_task_id(const vow_task_ctx_t* task);
VOW_EXTERN uint64_t vow_task_seed(const vow_task_ctx_t* task);
/* Reports progress (0.0 to 1.0) with a short text (may be NULL). */
VOW_EXTERN void vow_task_progress(vow_task_ctx_t* task, double fraction,
                                  const char* text);
/* True once the parent has asked to cancel this task: a long task should
 * check it now and then and return early. Costs a poll(2) at most once a
 * millisecond. */
VOW_EXTERN bool vow_task_cancelled(vow_task_ctx_t* task);
/* Space for the task's result, a msgpack bin of len bytes, to be written
 * in place: write the bytes there and return 0 without packing anything
 * into result. In a pool's local worker a result of the pool's
 * shm_threshold or more is then a shared-memory segment made here (the
 * bytes page-aligned), sent to the parent as it is: never copied. Else
 * the bytes are packed after the function returns. The space lives until
 * the function returns. NULL for a map's item (its result is one of an
 * array), a second call in one task, len past 4 GiB - 1, or no memory:
 * then pack the result the usual way. docs/pool.md, "Big values". */
VOW_EXTERN void* vow_task_result_bin(vow_task_ctx_t* task, size_t len);
/* Records why the task failed; returns -1 for `return vow_task_fail(...)`. */
VOW_EXTERN int vow_task_fail(vow_task_ctx_t* task, const char* fmt, ...)
    VOW_PRINTF(2, 3);

/* If this process was started as a pool's worker, serves tasks with the
 * given functions and exits (never returns). Run under mpirun with two or
 * more ranks, every rank but 0 becomes a node agent here, runs its
 * node's workers for rank 0's pools, and exits when rank 0 exits; rank 0
 * returns, and its pools put their workers on the other ranks (see
 * docs/cluster.md). Otherwise returns at once. Call it first thing in
 * main(), before anything touches stdio or files. */
VOW_EXTERN void vow_worker_main(const vow_function_t* functions, size_t n);

/* Serves tasks on the channel named by the environment, whatever started
 * this process; returns the exit status for main(). The vow-worker binary
 * uses it. */
VOW_EXTERN int vow_worker_serve(const vow_function_t* functions, size_t n);

/* The exit status of a worker that can never serve, however often it is
 * started (its module does not import, its plugin does not load), before
 * its HELLO: the pool then gives up at once instead of starting it again
 * (sysexits' EX_CONFIG). Any program that serves as a worker may use it. */
#define VOW_WORKER_EXIT_CANNOT_SERVE 78

/* ---- plugins for the stock vow-worker ------------------------------------ */

/* 2: task functions take their context first. */
#define VOW_PLUGIN_ABI 2

typedef struct vow_plugin {
  uint32_t abi; /* VOW_PLUGIN_ABI of the headers it was built with */
  const vow_function_t* functions;
  size_t count;
} vow_plugin_t;

/* In a plugin: VOW_PLUGIN(table) exports the table of an array `table`.
 * The symbol's name carries the ABI version, so a library built for
 * another version is told apart before anything is called. */
#define VOW_PLUGIN_SYMBOL "vow_plugin_v2"
#define VOW_PLUGIN(table)                         \
  VOW_EXTERN const vow_plugin_t vow_plugin_v2 = { \
      VOW_PLUGIN_ABI, (table), sizeof(table) / sizeof((table)[0])}

#ifdef __cplusplus
}
#endif
#endif /* VOW_WORKER_H */
