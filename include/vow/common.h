/* vow — common definitions: export macro, version, error codes.
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

#define VOW_VERSION_MAJOR 0
#define VOW_VERSION_MINOR 1
#define VOW_VERSION_PATCH 0

/* Returns VOW_VERSION_MAJOR << 16 | MINOR << 8 | PATCH of the library that is
 * linked, which may differ from the header that was compiled against. */
VOW_EXTERN unsigned vow_version(void);

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
