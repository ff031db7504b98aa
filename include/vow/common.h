/* vow — common definitions: export macro, version, error codes,
 * conventions.
 *
 * Stability: everything in include/vow/ is the public API. Names, signatures
 * and the documented semantics are stable within a major version; fields
 * marked private and any name with a double underscore are not.
 */
#ifndef VOW_COMMON_H
#define VOW_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vow/version.h" /* generated from the build's project version */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VOW_EXTERN __attribute__((visibility("default")))
#define VOW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define VOW_EXTERN
#define VOW_PRINTF(fmt, args)
#endif

/* Returns VOW_VERSION_MAJOR << 16 | MINOR << 8 | PATCH of the library that is
 * linked, which may differ from the header that was compiled against. */
VOW_EXTERN unsigned vow_version(void);

/* Conventions, for every call in include/vow/ unless its comment says
 * otherwise:
 *
 * Errors. A constructor (*_new) returns its object or NULL; one that can
 * fail for a reason other than memory takes `int* err` and sets the
 * reason there (a negative code, below) when err is not NULL. Other calls
 * that can fail at once return 0 or a negative code. What fails later
 * (a task, a file, a timeout) rejects the call's promise with a
 * vow_failure_t; such calls never also return an error.
 *
 * Misuse. A bug in the calling program is not an error to return: NULL
 * where an object is due (the comments say which arguments take NULL),
 * a promise released once more than it was referenced or used after
 * that, vow_ctx_wait, vow_ctx_run or vow_ctx_close inside a callback.
 * Each stops the program at once, in every build, with one line on
 * stderr naming the call: "vow: vow_add_callback: the promise is NULL (a
 * bug in the calling program)". A value or failure released twice is
 * caught while its memory is still vow's; AddressSanitizer or valgrind
 * find the rest.
 *
 * Ownership. A call that returns a promise, value or failure returns one
 * reference, the caller's (vow_add_* and vow_timeout return their
 * argument instead). An argument is borrowed for the call unless the
 * comment says it is taken over; strings and option structs are copied.
 * What *_new makes is the caller's to end with its *_free or *_close.
 *
 * Callbacks. A callback's first argument is the object it is about (the
 * pool, the task, the promise, the context), its last the `data` given
 * when it was set; promise callbacks take the result first, which they
 * then own. */

/* Error codes returned at once by calls that fail synchronously. They are
 * negative, like libuv's: errno values pass through unchanged (UV_EINVAL,
 * UV_ENOMEM, ...), and vow's own codes take the range below -30000 so they
 * never collide with an errno. What fails later travels as a vow_failure_t
 * on a promise instead. */
#define VOW_ERRNO_MAP(XX)                         \
  XX(ESETTLED, -30001, "promise already settled") \
  XX(ECLOSED, -30002, "context is closed")        \
  XX(EFULL, -30003, "queue is full")              \
  XX(ENOTLOCKED, -30004, "release without a matching acquire")

typedef enum vow_errno {
#define VOW__ERRNO_ENUM(name, value, text) VOW_##name = (value),
  VOW_ERRNO_MAP(VOW__ERRNO_ENUM)
#undef VOW__ERRNO_ENUM
      VOW_OK = 0
} vow_errno_t;

/* Human-readable text and symbolic name for any code vow returns, its own or
 * an errno value. Never NULL; the strings are static. */
VOW_EXTERN const char* vow_strerror(int code);
VOW_EXTERN const char* vow_err_name(int code);

/* The allocator behind every allocation vow makes itself, in libuv's
 * shape (uv_replace_allocator). Call it before any other vow function, and
 * never again while vow holds memory: what one allocator gave, vow hands
 * back to the same one. Returns 0, or UV_EINVAL when a function is NULL.
 * Not covered: libuv's own allocations (give uv_replace_allocator the same
 * functions) and the buffers msgpack-c allocates inside its packers and
 * unpackers. When an allocation fails, vow fails only what needed it:
 * the promise it was for is rejected with VOW_FAIL_NOMEM. */
typedef void* (*vow_malloc_func)(size_t size);
typedef void* (*vow_realloc_func)(void* ptr, size_t size);
typedef void* (*vow_calloc_func)(size_t count, size_t size);
typedef void (*vow_free_func)(void* ptr);
VOW_EXTERN int vow_replace_allocator(vow_malloc_func malloc_fn,
                                     vow_realloc_func realloc_fn,
                                     vow_calloc_func calloc_fn,
                                     vow_free_func free_fn);

typedef struct vow_ctx vow_ctx_t;
typedef struct vow_promise vow_promise_t;
typedef struct vow_value vow_value_t;
typedef struct vow_failure vow_failure_t;

#ifdef __cplusplus
}
#endif
#endif /* VOW_COMMON_H */
