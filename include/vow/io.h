/* vow — the loop's I/O lane, the thread-pool lane, and settling from other
 * threads. Each returns a promise owned by the caller.
 *
 * Failures of I/O are VOW_FAIL_IO with the errno-style code (UV_ENOENT...)
 * and the path or command in the origin.
 */
#ifndef VOW_IO_H
#define VOW_IO_H

#include "promise.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fulfils with nil after ms milliseconds of the context's clock.
 * Cancelling it removes its timer. */
VOW_EXTERN vow_promise_t* vow_sleep(vow_ctx_t* ctx, uint64_t ms);

/* Fulfils with the whole file as a msgpack bin value (vow_value_get_bin). */
VOW_EXTERN vow_promise_t* vow_read_file(vow_ctx_t* ctx, const char* path);

/* Creates or truncates path (mode 0644 before umask) and writes len bytes,
 * copied at the call. Fulfils with the number of bytes written. */
VOW_EXTERN vow_promise_t* vow_write_file(vow_ctx_t* ctx, const char* path,
                                         const void* data, size_t len);

/* What vow_run_command fulfils with: a VOW_VALUE_PTR value whose pointer is
 * a vow_command_result_t, valid as long as the value. */
typedef struct vow_command_result {
  int64_t exit_status; /* -1 when a signal ended it */
  int term_signal;     /* 0 unless a signal ended it */
  char* out;           /* everything it wrote to stdout, NUL-terminated */
  size_t out_len;
  char* err; /* everything it wrote to stderr, NUL-terminated */
  size_t err_len;
} vow_command_result_t;

/* Runs argv[0] (looked up in PATH) with argv, stdin from /dev/null, and
 * collects its exit status and output. A non-zero exit is a result, not a
 * failure; a command that cannot start is a VOW_FAIL_IO failure.
 * Cancelling it kills the command (SIGKILL). */
VOW_EXTERN vow_promise_t* vow_run_command(vow_ctx_t* ctx,
                                          const char* const* argv);

/* Runs fn(data) on libuv's thread pool, for a blocking call with no
 * non-blocking form; the promise settles on the loop with fn's outcome
 * (vow_ok or vow_err; vow_wait is not allowed there). Cancelling it before
 * fn starts keeps fn from running; once started, fn runs to its end and its
 * result is dropped. */
typedef vow_outcome_t (*vow_work_fn)(void* data);
VOW_EXTERN vow_promise_t* vow_run_blocking(vow_ctx_t* ctx, vow_work_fn fn,
                                           void* data);

/* Settle p from any thread. Takes over one reference to p (hold one for
 * the other thread; it is released on the loop thread after settling) and
 * over v / f. The settle happens on the loop thread soon after; its result
 * code is dropped as for a settle after cancel. Returns 0, or VOW_ECLOSED
 * when the context is closing or closed (v / f and the reference are then
 * leaked rather than touched from the wrong thread). A promise still
 * referenced when its context closes stays valid memory for this call. */
VOW_EXTERN int vow_fulfil_threadsafe(vow_promise_t* p, vow_value_t* v);
VOW_EXTERN int vow_reject_threadsafe(vow_promise_t* p, vow_failure_t* f);

#ifdef __cplusplus
}
#endif
#endif /* VOW_IO_H */
