/* vow — failures: why a promise was rejected.
 *
 * A failure is immutable once it is shared and reference-counted. It carries
 * a kind (what went wrong, in vow's terms), an errno-style code where one
 * applies, a message, and its origin (task, function, worker, path...).
 * Ownership: every function that returns a vow_failure_t* returns a new
 * reference unless it says "borrowed"; release it with vow_failure_release.
 */
#ifndef VOW_FAILURE_H
#define VOW_FAILURE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VOW_FAILURE_KIND_MAP(XX) \
  XX(CANCELLED, "cancelled")     \
  XX(TIMEOUT, "timeout")         \
  XX(WORKER_DIED, "worker died") \
  XX(POISON, "poison task")      \
  XX(TASK_ERROR, "task error")   \
  XX(PROTOCOL, "protocol error") \
  XX(IO, "I/O error")            \
  XX(QUEUE_FULL, "queue full")   \
  XX(EMPTY_INPUT, "empty input") \
  XX(CYCLE, "promise cycle")     \
  XX(ALL_FAILED, "all failed")   \
  XX(BAD_INPUT, "bad input")     \
  XX(NOMEM, "out of memory")     \
  XX(USER, "error")

typedef enum vow_failure_kind {
  VOW_FAIL_NONE = 0,
#define VOW__KIND_ENUM(name, text) VOW_FAIL_##name,
  VOW_FAILURE_KIND_MAP(VOW__KIND_ENUM)
#undef VOW__KIND_ENUM
      VOW_FAIL_KIND_COUNT
} vow_failure_kind_t;

/* Where a failure came from. Unknown numeric fields are 0 (task_id, pid) or
 * -1 (exit_status, term_signal); unknown strings are NULL. */
typedef struct vow_origin {
  uint64_t task_id;     /* task that failed, 0 if none */
  const char* function; /* task function or command name */
  const char* path;     /* file the I/O was about */
  int pid;              /* worker or child process id */
  int exit_status;      /* exit status of that process, -1 if unknown */
  int term_signal;      /* signal that ended it, -1 if none */
} vow_origin_t;

/* A new failure with one reference. The message is printf-formatted and
 * copied. Never returns NULL: when memory runs out it returns a shared,
 * preallocated failure of kind VOW_FAIL_NOMEM. */
VOW_EXTERN vow_failure_t* vow_failure_new(int kind, int code, const char* fmt,
                                          ...) VOW_PRINTF(3, 4);

/* Copies the origin's strings into f. Only meant for a failure you have just
 * made and not yet shared. Returns 0 or UV_ENOMEM. */
VOW_EXTERN int vow_failure_set_origin(vow_failure_t* f,
                                      const vow_origin_t* origin);

/* Attaches extra text, such as a worker's crash report (copied). Only
 * for a failure you have just made. Returns 0 or UV_ENOMEM. */
VOW_EXTERN int vow_failure_set_detail(vow_failure_t* f, const char* detail);
/* The extra text, or NULL. Borrowed. */
VOW_EXTERN const char* vow_failure_detail(const vow_failure_t* f);

/* Attaches a cause (takes over its reference); used by any-fulfilled to
 * report every input's failure, in input order. Returns 0 or UV_ENOMEM (the
 * cause is released either way on error). */
VOW_EXTERN int vow_failure_add_cause(vow_failure_t* f, vow_failure_t* cause);

/* Adds a reference, which the caller then owns; returns f. */
VOW_EXTERN vow_failure_t* vow_failure_ref(vow_failure_t* f);
/* Gives up one reference (NULL is fine). */
VOW_EXTERN void vow_failure_release(vow_failure_t* f);

VOW_EXTERN int vow_failure_kind(const vow_failure_t* f);
VOW_EXTERN int vow_failure_code(const vow_failure_t* f);
/* Borrowed; valid as long as f. Never NULL. */
VOW_EXTERN const char* vow_failure_message(const vow_failure_t* f);
/* Borrowed; valid as long as f. Never NULL. */
VOW_EXTERN const vow_origin_t* vow_failure_origin(const vow_failure_t* f);
VOW_EXTERN size_t vow_failure_cause_count(const vow_failure_t* f);
/* Borrowed; NULL when i is out of range. */
VOW_EXTERN vow_failure_t* vow_failure_cause(const vow_failure_t* f, size_t i);

/* Twisted's Failure.check: true when f is of the given kind. */
VOW_EXTERN bool vow_failure_check(const vow_failure_t* f, int kind);

/* Static text for a kind ("timeout", ...); "unknown" for a bad kind. */
VOW_EXTERN const char* vow_failure_kind_name(int kind);

/* Writes a one-line description ("timeout: message [task 7, pid 12]") into
 * buf, always NUL-terminated when size > 0. Returns the length it needed,
 * like snprintf. */
VOW_EXTERN size_t vow_failure_describe(const vow_failure_t* f, char* buf,
                                       size_t size);

#ifdef __cplusplus
}
#endif
#endif /* VOW_FAILURE_H */
