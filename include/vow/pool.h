/* vow — the worker pool: CPU-bound tasks on worker processes, each task's
 * result settling a promise in the parent.
 *
 * Whatever happens to a worker, every submitted task's promise settles
 * exactly once: with the task's result, or with a failure whose kind and
 * origin say what happened (VOW_FAIL_TASK_ERROR, WORKER_DIED, POISON,
 * TIMEOUT, CANCELLED, PROTOCOL, QUEUE_FULL, BAD_INPUT).
 */
#ifndef VOW_POOL_H
#define VOW_POOL_H

#include "promise.h"
#include "sync.h"
#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vow_pool vow_pool_t;

/* Workers started through a launcher: `argv` (e.g. {"ssh", "-T", "hostA",
 * NULL} or {"srun", "-N1", "-n1", NULL}) runs the worker command, which
 * then speaks the protocol over the launcher's stdin and stdout. The
 * command reaches it as words after `env VOW_WORKER_CHANNEL=stdio`, so
 * it must exist at the same path there; ssh joins the words with spaces
 * for the remote shell, so they must not need quoting. */
typedef struct vow_launcher {
  unsigned workers;        /* slots started through it (0: 1) */
  const char* const* argv; /* NULL-terminated; borrowed until vow_pool_new */
} vow_launcher_t;

/* What becomes of the workers' stderr. */
typedef enum vow_stderr_mode {
  VOW_STDERR_RELAY = 0, /* each line to our stderr, "[worker N] " in front */
  VOW_STDERR_INHERIT,   /* the workers write to our stderr directly */
  VOW_STDERR_DISCARD
} vow_stderr_mode_t;

/* Zero means the default everywhere. Start from vow_pool_options_init (or
 * VOW_POOL_OPTIONS_INIT), which sets `size`: a library built with more
 * fields than the caller knows reads only the ones it was given, and
 * older ones refuse options they cannot honour (UV_EINVAL) rather than
 * ignore them. */
typedef struct vow_pool_options {
  size_t size;      /* sizeof(vow_pool_options_t) where it was filled */
  unsigned workers; /* default: online CPUs */
  /* The worker command. Default: this program again (its main must call
   * vow_worker_main first), with no arguments. */
  const char* const* worker_argv;
  /* The functions workers offer, to refuse unknown names at submit
   * (default: the names the first worker's HELLO lists). */
  const vow_function_t* functions;
  size_t nfunctions;
  /* Tasks sent ahead to each worker. Default: adaptive, from 2 for long
   * tasks up to 1024 for tiny ones (about 2 ms of work queued). */
  unsigned in_flight;
  size_t queue_limit;       /* queued tasks; default: unlimited */
  uint64_t timeout_ms;      /* per task, from when it starts; 0: none */
  unsigned retries;         /* for tasks whose worker died; default 0, at
                               most VOW_POOL_MAX_RETRIES */
  unsigned recycle_after;   /* tasks per worker before it is replaced */
  uint64_t seed;            /* the run's seed for per-task seeds */
  uint64_t cancel_grace_ms; /* before a cancelled task's worker is
                               killed; default 1000 */
  unsigned start_attempts;  /* failed starts in a row before the pool gives
                               up; default 5 */
  const char* const* env;   /* extra "NAME=value" entries for workers */
  const char* cwd;          /* workers' working directory */
  const char* limits;       /* "as=BYTES,cpu=SECONDS,nofile=N" */
  vow_stderr_mode_t stderr_mode;
  /* A worker that began a message and sent nothing more for this long is
   * hung: it is killed like one that broke the protocol. Workers write
   * each message whole, so only a stuck or hostile one stops in the
   * middle. Default 10000. */
  uint64_t stall_ms;
  /* Launchers: when given, the pool's slots are theirs (the sum of their
   * counts; `workers` is ignored). A slot whose worker fails to start
   * `start_attempts` times in a row (a host down, an authentication
   * refused) is given up with its reason, and the others go on; the pool
   * gives up only when every slot has. */
  const vow_launcher_t* launchers;
  size_t nlaunchers;
  /* A worker that has not said HELLO this long after it was started is
   * killed, and counts as a failed start. Default 30000 (room for a slow
   * launcher or a sanitizer build). */
  uint64_t hello_timeout_ms;
  /* Local workers write to our stdout (their fd 1), as child processes
   * usually do. Default false: a worker's stdout goes where stderr_mode
   * sends its stderr (nowhere under VOW_STDERR_RELAY: the C worker points
   * fd 1 at its stderr, so a stray printf is relayed). Under a launcher
   * fd 1 is the channel, and this is ignored. */
  bool inherit_stdout;
  /* Liveness, under launchers: a worker there says it is alive every
   * liveness_ms / 4 from a thread of its own (so a task that never
   * yields cannot starve it); one silent for liveness_ms while it holds
   * tasks is lost (a host gone without a word: link down, frozen,
   * partitioned). Its launcher is killed, its tasks go back to the queue
   * without counting a try, and its slot starts again as after any death
   * (a host back from a partition rejoins). Default 20000; local and MPI
   * workers are watched by the kernel and MPI instead. */
  uint64_t liveness_ms;
  /* Local workers: a task's arguments or a result of at least this many
   * bytes travels in a shared-memory segment (a sealed memfd passed
   * beside the channel), with a 27-byte reference on the wire, instead
   * of through the channel. 0: the default, VOW_POOL_SHM_THRESHOLD;
   * UINT64_MAX: never. Workers under launchers or MPI always use the
   * wire. docs/pool.md, "Big values". */
  uint64_t shm_threshold;
  /* At most this many bytes in segments at once in this process (those
   * it made and those it mapped); past it a value goes by the wire, and
   * one too big for the wire fails its task, saying so. 0: the default,
   * half the machine's memory. */
  uint64_t shm_max_bytes;
  /* At most this many segments at once in this process, made or mapped
   * (each holds a descriptor); past it as past shm_max_bytes. 0: the
   * default, a quarter of the process's descriptor limit
   * (RLIMIT_NOFILE), at least 16. */
  uint64_t shm_max_segments;
} vow_pool_options_t;

/* The default vow_pool_options_t.shm_threshold: below it the channel is
 * as fast (bench/shm.c). */
#define VOW_POOL_SHM_THRESHOLD ((uint64_t)1 << 20)

#define VOW_POOL_OPTIONS_INIT \
  { .size = sizeof(vow_pool_options_t) }
/* Every option at its default, and o->size set. */
VOW_EXTERN void vow_pool_options_init(vow_pool_options_t* o);

/* The most retries a pool takes (vow_pool_options_t.retries). */
#define VOW_POOL_MAX_RETRIES 255

/* Starts the workers. options (NULL: every default) is read during the
 * call only: the pool keeps copies of its strings and arrays. Returns the
 * pool, which the caller owns (end it with vow_pool_shutdown, then
 * vow_pool_free); or NULL, with *err set when err is not NULL, for bad
 * options (UV_EINVAL: size not set or from a newer vow with fields set
 * that this one lacks, retries above VOW_POOL_MAX_RETRIES, a launcher
 * without a command) or no memory; a worker that cannot start is reported
 * through the tasks' promises, not here. Called in a worker process (a
 * program started as a pool's worker whose main() did not call
 * vow_worker_main() first), it refuses with UV_EPERM and says so on
 * stderr, rather than start workers of its own, each of which would do
 * the same. */
VOW_EXTERN vow_pool_t* vow_pool_new(vow_ctx_t* ctx,
                                    const vow_pool_options_t* options,
                                    int* err);

/* Runs fn(args) on a worker. Takes over args (NULL: nil). Returns a
 * promise, which the caller owns: unknown function, a full queue, a pool
 * shutting down or no memory reject it at once (on the next tick, like
 * every callback). It is NULL only when the context is closed, or memory
 * has run out past the context's reserve of 16 promises kept for
 * out-of-memory failures. */
VOW_EXTERN vow_promise_t* vow_pool_submit(vow_pool_t* pool, const char* fn,
                                          vow_value_t* args);
/* As vow_pool_submit, with this task's own timeout (0: none). */
VOW_EXTERN vow_promise_t* vow_pool_submit_timeout(vow_pool_t* pool,
                                                  const char* fn,
                                                  vow_value_t* args,
                                                  uint64_t timeout_ms);
/* As vow_pool_submit, with the seed of run index `index` (from 1) rather
 * than of the next one: a caller that runs something again (an item of a
 * map that failed, run alone) gives it the seed it had, so that its
 * result never depends on what failed around it. The pool's own count
 * does not move. */
VOW_EXTERN vow_promise_t* vow_pool_submit_indexed(vow_pool_t* pool,
                                                  const char* fn,
                                                  vow_value_t* args,
                                                  uint64_t index);
/* Fulfils once the queue has room (at once when it has). */
VOW_EXTERN vow_promise_t* vow_pool_space(vow_pool_t* pool);

/* fn over every element of items (taken over): an array value of msgpack
 * values, or one msgpack array. Fulfils with one msgpack array of the
 * results in input order (read it with vow_value_unpack), or rejects with
 * the first failure, "map item K: ..." (the rest is then cancelled). The
 * items run in chunks, sized for about 64 per worker and at most 4096
 * items, each one task on a worker; item K gets the seed it would have
 * had if every item had been submitted alone, in order. */
VOW_EXTERN vow_promise_t* vow_pool_map(vow_pool_t* pool, const char* fn,
                                       vow_value_t* items);
/* As vow_pool_map, with `chunk` items to a task (the last may have
 * fewer; a chunk never passes 4096 items, nor half a message's bytes
 * unless one item does). 0: vow_pool_map's rule. For a caller that maps
 * one large input in several calls (as the Python pool does), whose
 * chunks should be sized for the whole of it. */
VOW_EXTERN vow_promise_t* vow_pool_map_chunked(vow_pool_t* pool, const char* fn,
                                               vow_value_t* items,
                                               size_t chunk);
/* As vow_pool_map, item K getting the seed of run index first_index + K
 * (first_index from 1) rather than of the pool's next indexes. */
VOW_EXTERN vow_promise_t* vow_pool_map_indexed(vow_pool_t* pool, const char* fn,
                                               vow_value_t* items,
                                               uint64_t first_index);

/* fn over every element of items (an array value, taken over), results
 * as they complete. Each vow_stream_get fulfils with [index, value] (an
 * array value of two), or with a VOW_VALUE_FAILURE value for a task that
 * failed, and once every result has been taken, with nil. At most `window`
 * results are running or waiting to be taken at a time (0: 1024), so a
 * slow consumer holds back the producer. */
typedef struct vow_stream vow_stream_t;
VOW_EXTERN vow_stream_t* vow_pool_stream(vow_pool_t* pool, const char* fn,
                                         vow_value_t* items, size_t window);
VOW_EXTERN vow_promise_t* vow_stream_get(vow_stream_t* stream);
/* Cancels what is still running and frees the stream. */
VOW_EXTERN void vow_stream_free(vow_stream_t* stream);

/* Graceful: refuse new tasks, finish the queued ones, then stop each
 * worker with SHUTDOWN. Immediate: kill the workers and reject every
 * pending task as cancelled. Either way the promise fulfils once every
 * worker has exited and every descriptor the pool opened is closed.
 * Calling it again returns the same promise's progress anew. */
VOW_EXTERN vow_promise_t* vow_pool_shutdown(vow_pool_t* pool, bool graceful);

/* Frees a pool whose shutdown has completed. */
VOW_EXTERN void vow_pool_free(vow_pool_t* pool);

typedef struct vow_pool_stats {
  uint64_t submitted, completed, failed, retried, cancelled;
  size_t queued;           /* waiting for a worker */
  size_t in_flight;        /* sent to workers */
  unsigned workers_alive;  /* said HELLO and not exited */
  uint64_t worker_starts;  /* every spawn, first ones included */
  uint64_t worker_deaths;  /* exits the pool did not ask for */
  unsigned slots_given_up; /* slots whose workers could not start */
  uint64_t busy_ns;        /* summed over workers: time with tasks sent */
} vow_pool_stats_t;
VOW_EXTERN void vow_pool_stats(const vow_pool_t* pool, vow_pool_stats_t* out);

/* Called with every PROGRESS a task reports (fraction 0..1, text
 * borrowed). */
typedef void (*vow_progress_fn)(vow_pool_t* pool, uint64_t task_id,
                                double fraction, const char* text, void* data);
VOW_EXTERN void vow_pool_on_progress(vow_pool_t* pool, vow_progress_fn fn,
                                     void* data);

#ifdef __cplusplus
}
#endif
#endif /* VOW_POOL_H */
