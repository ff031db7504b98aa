/* vow — values: what a promise is fulfilled with.
 *
 * Values are immutable and reference-counted. Most hold one msgpack object
 * as its encoded bytes, decoded only when read: a result that came over a
 * pipe costs its bytes, not a msgpack zone. A value can also wrap an opaque
 * pointer with its destructor, an array of values (what vow_all fulfils
 * with), or a failure (an element of vow_all_settled's array).
 *
 * Ownership: every constructor returns a new reference (never NULL unless
 * stated); vow_value_release drops one. Getters return borrowed data that
 * lives as long as the value. Reference counts are not atomic: a value may
 * move to another thread but not be shared between threads.
 */
#ifndef VOW_VALUE_H
#define VOW_VALUE_H

#include <msgpack.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vow_value_kind {
  VOW_VALUE_MSGPACK = 1, /* one msgpack object, kept encoded */
  VOW_VALUE_PTR,         /* an opaque pointer and its destructor */
  VOW_VALUE_ARRAY,       /* an array of values */
  VOW_VALUE_FAILURE      /* a failure, as an element of all-settled */
} vow_value_kind_t;

/* The nil value. It is shared and immortal; ref and release are no-ops. */
VOW_EXTERN vow_value_t* vow_value_nil(void);

/* Constructors return a new value with one reference, the caller's, or
 * NULL only when memory runs out. Strings and bytes are copied. */
VOW_EXTERN vow_value_t* vow_value_new_int(int64_t i);
VOW_EXTERN vow_value_t* vow_value_new_double(double d);
VOW_EXTERN vow_value_t* vow_value_new_bool(bool b);
VOW_EXTERN vow_value_t* vow_value_new_str(const char* s, size_t len);
VOW_EXTERN vow_value_t* vow_value_new_bin(const void* data, size_t len);
/* A bin of len bytes that lives in a shared-memory segment from the
 * start, for a big value that local workers then map without a copy
 * (docs/pool.md, "Big values"). Write its bytes at *data (page-aligned);
 * they stay writable until the value is first submitted, when the
 * segment is sealed: from then on they are read-only, at the address
 * vow_value_get_bin gives (*data is not to be used again). NULL, with
 * *err (if err) UV_EINVAL for len 0 or past 4 GiB - 1, else the
 * system's error for a segment that cannot be made. */
VOW_EXTERN vow_value_t* vow_value_new_shared_bin(size_t len, void** data,
                                                 int* err);
/* The same for any msgpack value of len bytes: write exactly one msgpack
 * object of len bytes at *bytes (before submitting; a pool checks it at
 * submit as it checks any value). Byte align_at of it lands on a page
 * boundary (the first byte of an array's data, say; 0: the value's
 * first). NULL, with *err UV_EINVAL for len 0 or align_at past len, else
 * the system's error. */
VOW_EXTERN vow_value_t* vow_value_new_shared(size_t len, size_t align_at,
                                             void** bytes, int* err);
/* A msgpack value in a new shared-memory segment, written from the n
 * pieces (pieces[i] of lens[i] bytes, in order; together one msgpack
 * object, checked as vow_value_new_msgpack checks) without mapping them
 * writable: the copy goes through the kernel, so this process's memory
 * does not grow by the value (as writing a file does not). Byte align_at
 * of the value lands on a page. Sealed at once. NULL with *err UV_EINVAL
 * for no bytes, align_at past them or bytes that are not one object,
 * else the system's error. */
VOW_EXTERN vow_value_t* vow_value_new_shared_from(const void* const* pieces,
                                                  const size_t* lens, size_t n,
                                                  size_t align_at, int* err);
/* Task arguments that keep their big values apart, as parts: the msgpack
 * array of items[0..n) (msgpack values, borrowed: the caller keeps its
 * references, and the value takes its own). Each item in shared memory
 * (vow_value_new_shared*) or of VOW_VALUE_PART_MIN bytes or more is a
 * part: a local worker is sent its segment, made once for the item
 * however many tasks' arguments hold it, and maps it once while its
 * tasks use it; any other worker gets its bytes written in. The others
 * are copied in. NULL with *err UV_EINVAL for a NULL item or one that is
 * not msgpack, UV_ENOMEM. docs/pool.md, "Big values". */
VOW_EXTERN vow_value_t* vow_value_new_args(vow_value_t* const* items, size_t n,
                                           int* err);
#define VOW_VALUE_PART_MIN (64 * 1024)
/* The general form: bytes is one msgpack object in which the msgpack
 * that vow_value_part_ref(i) writes (VOW_VALUE_PART_REF_LEN bytes) stands
 * wherever parts[i] is to go, at any depth, as often as needed. parts are
 * borrowed as above. Reading the value itself (vow_value_bytes,
 * vow_value_unpack) gives the bytes with the references in them. NULL
 * with *err UV_EINVAL for bytes that are not one msgpack object, a NULL
 * part or one that is not msgpack or has parts itself, or a reference
 * to no part. */
VOW_EXTERN vow_value_t* vow_value_new_with_parts(const void* bytes, size_t len,
                                                 vow_value_t* const* parts,
                                                 size_t n, int* err);
#define VOW_VALUE_PART_REF_LEN 27
VOW_EXTERN void vow_value_part_ref(uint32_t i, void* out);
/* Whether v's bytes are in a shared-memory segment: made there, sent
 * by one, or a result that came by one (its bytes then are the
 * segment's read-only mapping, which lives as long as v). */
VOW_EXTERN bool vow_value_is_shared(const vow_value_t* v);
/* Copies exactly one well-formed msgpack object. Returns NULL (and sets
 * *err to UV_EINVAL or UV_ENOMEM when err is not NULL) for malformed input,
 * trailing bytes, or more than one object. */
VOW_EXTERN vow_value_t* vow_value_new_msgpack(const void* bytes, size_t len,
                                              int* err);
/* Wraps ptr; dtor (may be NULL) runs when the last reference goes. */
VOW_EXTERN vow_value_t* vow_value_new_ptr(void* ptr, void (*dtor)(void*));
/* Takes over the references in items[0..n); the items array itself is
 * copied, not kept. On failure the items are released. A NULL item (a
 * constructor that ran out of memory) makes this return NULL too, so
 * nothing is silently left out. */
VOW_EXTERN vow_value_t* vow_value_new_array(vow_value_t** items, size_t n);
/* Takes over f's reference. */
VOW_EXTERN vow_value_t* vow_value_new_failure(vow_failure_t* f);

/* Adds a reference, which the caller then owns; returns v. */
VOW_EXTERN vow_value_t* vow_value_ref(vow_value_t* v);
/* Gives up one reference (NULL is fine). */
VOW_EXTERN void vow_value_release(vow_value_t* v);

VOW_EXTERN vow_value_kind_t vow_value_kind(const vow_value_t* v);
VOW_EXTERN bool vow_value_is_nil(const vow_value_t* v);

/* Readers of msgpack values. Each returns 0, or UV_EINVAL when v does not
 * hold that type (ints read as double too; a positive int fits int64 only
 * up to INT64_MAX, else UV_ERANGE). */
VOW_EXTERN int vow_value_get_int(const vow_value_t* v, int64_t* out);
VOW_EXTERN int vow_value_get_double(const vow_value_t* v, double* out);
VOW_EXTERN int vow_value_get_bool(const vow_value_t* v, bool* out);
/* Borrowed pointer into the value's bytes; not NUL-terminated. */
VOW_EXTERN int vow_value_get_str(const vow_value_t* v, const char** s,
                                 size_t* len);
VOW_EXTERN int vow_value_get_bin(const vow_value_t* v, const void** data,
                                 size_t* len);

/* The encoded msgpack bytes (borrowed), or NULL for non-msgpack values. */
VOW_EXTERN const void* vow_value_bytes(const vow_value_t* v, size_t* len);
/* Decodes a msgpack value with msgpack-c into out, which the caller has
 * initialised with msgpack_unpacked_init and later destroys. Returns 0 or
 * UV_EINVAL. */
VOW_EXTERN int vow_value_unpack(const vow_value_t* v, msgpack_unpacked* out);

/* Borrowed; NULL when v is not of that kind. */
VOW_EXTERN void* vow_value_get_ptr(const vow_value_t* v);
/* Elements of an array value, or of a msgpack value holding an array
 * (such as what vow_pool_map fulfils with); 0 for anything else. */
VOW_EXTERN size_t vow_value_array_len(const vow_value_t* v);
/* The i-th element of an array value (VOW_VALUE_ARRAY), borrowed; NULL
 * for other kinds: read a msgpack array with vow_value_unpack. */
VOW_EXTERN vow_value_t* vow_value_array_at(const vow_value_t* v, size_t i);
/* Borrowed; NULL when v is not a failure value. */
VOW_EXTERN vow_failure_t* vow_value_get_failure(const vow_value_t* v);

#ifdef __cplusplus
}
#endif
#endif /* VOW_VALUE_H */
