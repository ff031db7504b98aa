/* Values: msgpack bytes, opaque pointers, arrays and failures. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "proto.h"
#include "value_internal.h"

static vow_value_t nil_value = {IMMORTAL, VOW_VALUE_MSGPACK, 0, 1, {{0, 0}}};
static const unsigned char nil_byte = 0xc0;

vow_value_t* vow_value_nil(void) {
  return &nil_value;
}

vow_value_t* vow__value_alloc(int kind, size_t nbytes) {
  vow_value_t* v = vow__malloc(sizeof(*v) + nbytes);
  if (v == NULL)
    return NULL;
  v->refs = 1;
  v->kind = (uint8_t)kind;
  v->holder = HOLD_HEAP;
  v->len = nbytes;
  v->u.p.ptr = NULL;
  v->u.p.dtor = NULL;
  return v;
}

/* Packs with the protocol's encoder, whose buffer grows as needed, then
 * copies the bytes into a value of their exact size. */
static vow_value_t* from_encoder(vowp_encoder* e) {
  vow_value_t* v = NULL;
  if (!e->failed)
    v = vow__value_alloc(VOW_VALUE_MSGPACK, e->len);
  if (v != NULL)
    memcpy(v->bytes, e->data, e->len);
  vowp_encoder_destroy(e);
  return v;
}

#define PACK_WITH(stmt)         \
  do {                          \
    vowp_encoder e;             \
    msgpack_packer* pk = &e.pk; \
    vowp_encoder_init(&e);      \
    stmt;                       \
    return from_encoder(&e);    \
  } while (0)

vow_value_t* vow_value_new_int(int64_t i) {
  PACK_WITH(msgpack_pack_int64(pk, i));
}
vow_value_t* vow_value_new_double(double d) {
  PACK_WITH(msgpack_pack_double(pk, d));
}
vow_value_t* vow_value_new_bool(bool b) {
  PACK_WITH(b ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}
vow_value_t* vow_value_new_str(const char* s, size_t len) {
  PACK_WITH(msgpack_pack_str(pk, len); msgpack_pack_str_body(pk, s, len));
}
vow_value_t* vow_value_new_bin(const void* data, size_t len) {
  PACK_WITH(msgpack_pack_bin(pk, len); msgpack_pack_bin_body(pk, data, len));
}

vow_value_t* vow_value_new_msgpack(const void* bytes, size_t len, int* err) {
  /* The protocol's pre-scan checks the bytes without allocating: exactly
   * one well-formed object, nesting within what msgpack-c can unpack. */
  vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
  vowp_error perr;
  vow_value_t* v;
  if (bytes == NULL || len == 0 ||
      vowp_prescan(bytes, len, &lim, 0, &perr) != VOWP_OK) {
    if (err)
      *err = UV_EINVAL;
    return NULL;
  }
  v = vow__value_alloc(VOW_VALUE_MSGPACK, len);
  if (v == NULL) {
    if (err)
      *err = UV_ENOMEM;
    return NULL;
  }
  memcpy(v->bytes, bytes, len);
  return v;
}

vow_value_t* vow__value_alloc_encoded(size_t len, unsigned char** bytes) {
  vow_value_t* v = vow__value_alloc(VOW_VALUE_MSGPACK, len);
  if (v != NULL)
    *bytes = v->bytes;
  return v;
}

void vow__value_set_len(vow_value_t* v, size_t len) {
  v->len = len; /* only ever shrinks a value still being filled */
}

vow_value_t* vow__value_adopt(void* base, const void* bytes, size_t len) {
  vow_value_t* v = vow__value_alloc(VOW_VALUE_MSGPACK, 0);
  if (v == NULL)
    return NULL;
  v->len = len;
  v->u.ext.base = base;
  v->u.ext.data = bytes;
  return v;
}

vow_value_t* vow__value_from_encoded(const void* bytes, size_t len) {
  vow_value_t* v = vow__value_alloc(VOW_VALUE_MSGPACK, len);
  if (v != NULL)
    memcpy(v->bytes, bytes, len);
  return v;
}

vow_value_t* vow__value_fail(int* err, int code) {
  if (err)
    *err = code;
  return NULL;
}

vow_value_t* vow_value_new_ptr(void* ptr, void (*dtor)(void*)) {
  vow_value_t* v = vow__value_alloc(VOW_VALUE_PTR, 0);
  if (v == NULL)
    return NULL;
  v->u.p.ptr = ptr;
  v->u.p.dtor = dtor;
  return v;
}

vow_value_t* vow_value_new_array(vow_value_t** items, size_t n) {
  vow_value_t* v = NULL;
  size_t i;
  /* A NULL item is a constructor that ran out of memory: so does this. */
  for (i = 0; i < n && items[i] != NULL; i++) {
  }
  if (i == n)
    v = vow__value_alloc(VOW_VALUE_ARRAY, 0);
  if (v != NULL && n > 0) {
    v->u.items = vow__malloc(n * sizeof(*items));
    if (v->u.items == NULL) {
      vow__free(v);
      v = NULL;
    }
  }
  if (v == NULL) {
    for (i = 0; i < n; i++)
      vow_value_release(items[i]);
    return NULL;
  }
  if (n > 0)
    memcpy(v->u.items, items, n * sizeof(*items));
  v->len = n;
  return v;
}

vow_value_t* vow_value_new_failure(vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  vow_value_t* v = vow__value_alloc(VOW_VALUE_FAILURE, 0);
  if (v == NULL) {
    vow_failure_release(f);
    return NULL;
  }
  v->u.failure = f;
  return v;
}

vow_value_t* vow_value_ref(vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  if (v->refs != IMMORTAL)
    v->refs++;
  return v;
}

void vow_value_release(vow_value_t* v) {
  size_t i;
  if (v == NULL || v->refs == IMMORTAL)
    return;
  VOW__REQUIRE(v->refs > 0,
               "the value was released once more than it was referenced "
               "(released twice?)");
  if (--v->refs > 0)
    return;
  switch (v->kind) {
    case VOW_VALUE_PTR:
      if (v->u.p.dtor)
        v->u.p.dtor(v->u.p.ptr);
      break;
    case VOW_VALUE_ARRAY:
      for (i = 0; i < v->len; i++)
        vow_value_release(v->u.items[i]);
      vow__free(v->u.items);
      break;
    case VOW_VALUE_FAILURE:
      vow_failure_release(v->u.failure);
      break;
    case VOW_VALUE_MSGPACK:
      if (v->holder == HOLD_SHM)
        vow__value_drop_hold(v->u.ext.base);
      else if (v->holder == HOLD_PARTS)
        vow__value_drop_parts(v->u.ext.base);
      else
        vow__free(v->u.ext.base);
      break;
    default:
      break;
  }
  vow__free(v);
}

vow_value_kind_t vow_value_kind(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  return (vow_value_kind_t)v->kind;
}

const void* vow_value_bytes(const vow_value_t* v, size_t* len) {
  VOW__NOT_NULL(v, "the value");
  if (v->kind != VOW_VALUE_MSGPACK)
    return NULL;
  if (len)
    *len = v->len;
  if (v == &nil_value)
    return &nil_byte;
  return v->u.ext.data ? (const void*)v->u.ext.data : (const void*)v->bytes;
}

bool vow_value_is_nil(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  size_t len;
  const unsigned char* b = vow_value_bytes(v, &len);
  return b != NULL && len == 1 && b[0] == 0xc0;
}

int vow_value_get_int(const vow_value_t* v, int64_t* out) {
  VOW__NOT_NULL(v, "the value");
  VOW__NOT_NULL(out, "out");
  size_t len;
  const unsigned char* b = vow_value_bytes(v, &len);
  uint64_t u;
  if (b == NULL || len == 0)
    return UV_EINVAL;
  if (b[0] <= 0x7f) {
    *out = b[0];
    return 0;
  }
  if (b[0] >= 0xe0) {
    *out = (int8_t)b[0];
    return 0;
  }
  switch (b[0]) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      int n = 1 << (b[0] - 0xcc);
      if (len != (size_t)n + 1)
        return UV_EINVAL;
      u = vowp_read_be(b + 1, n);
      if (u > INT64_MAX)
        return UV_ERANGE;
      *out = (int64_t)u;
      return 0;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      int n = 1 << (b[0] - 0xd0);
      if (len != (size_t)n + 1)
        return UV_EINVAL;
      u = vowp_read_be(b + 1, n);
      /* Sign-extend from n bytes. */
      if (n < 8 && (u >> (n * 8 - 1)) & 1)
        u |= ~(uint64_t)0 << (n * 8);
      *out = (int64_t)u;
      return 0;
    }
    default:
      return UV_EINVAL;
  }
}

int vow_value_get_double(const vow_value_t* v, double* out) {
  VOW__NOT_NULL(v, "the value");
  VOW__NOT_NULL(out, "out");
  size_t len;
  const unsigned char* b = vow_value_bytes(v, &len);
  int64_t i;
  if (b == NULL || len == 0)
    return UV_EINVAL;
  if (b[0] == 0xcb && len == 9) {
    uint64_t u = vowp_read_be(b + 1, 8);
    memcpy(out, &u, sizeof(*out));
    return 0;
  }
  if (b[0] == 0xca && len == 5) {
    uint32_t u = (uint32_t)vowp_read_be(b + 1, 4);
    float f;
    memcpy(&f, &u, sizeof(f));
    *out = f;
    return 0;
  }
  if (vow_value_get_int(v, &i) == 0) {
    *out = (double)i;
    return 0;
  }
  return UV_EINVAL;
}

int vow_value_get_bool(const vow_value_t* v, bool* out) {
  VOW__NOT_NULL(v, "the value");
  VOW__NOT_NULL(out, "out");
  size_t len;
  const unsigned char* b = vow_value_bytes(v, &len);
  if (b == NULL || len != 1 || (b[0] != 0xc2 && b[0] != 0xc3))
    return UV_EINVAL;
  *out = b[0] == 0xc3;
  return 0;
}

/* Reads a str (want_bin false) or bin header; the body must fill the rest
 * exactly, which holds for values built by vow or validated on entry. */
static int get_blob(const vow_value_t* v, bool want_bin, const void** data,
                    size_t* out_len) {
  size_t len;
  const unsigned char* b = vow_value_bytes(v, &len);
  size_t hdr, n;
  if (b == NULL || len == 0)
    return UV_EINVAL;
  if (!want_bin && b[0] >= 0xa0 && b[0] <= 0xbf) {
    hdr = 1;
    n = b[0] & 0x1f;
  } else if ((want_bin ? b[0] >= 0xc4 && b[0] <= 0xc6
                       : b[0] >= 0xd9 && b[0] <= 0xdb)) {
    int w = 1 << (b[0] - (want_bin ? 0xc4 : 0xd9));
    if (len < (size_t)w + 1)
      return UV_EINVAL;
    hdr = (size_t)w + 1;
    n = (size_t)vowp_read_be(b + 1, w);
  } else {
    return UV_EINVAL;
  }
  if (len - hdr != n)
    return UV_EINVAL;
  *data = b + hdr;
  *out_len = n;
  return 0;
}

int vow_value_get_str(const vow_value_t* v, const char** s, size_t* len) {
  VOW__NOT_NULL(v, "the value");
  VOW__NOT_NULL(s, "s");
  return get_blob(v, false, (const void**)s, len);
}
int vow_value_get_bin(const vow_value_t* v, const void** data, size_t* len) {
  VOW__NOT_NULL(v, "the value");
  VOW__NOT_NULL(data, "data");
  return get_blob(v, true, data, len);
}

int vow_value_unpack(const vow_value_t* v, msgpack_unpacked* out) {
  VOW__NOT_NULL(v, "the value");
  VOW__NOT_NULL(out, "out");
  size_t len, off = 0;
  const void* b = vow_value_bytes(v, &len);
  if (b == NULL)
    return UV_EINVAL;
  if (msgpack_unpack_next(out, b, len, &off) != MSGPACK_UNPACK_SUCCESS)
    return UV_EINVAL;
  return 0;
}

void* vow_value_get_ptr(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  return v->kind == VOW_VALUE_PTR ? v->u.p.ptr : NULL;
}
size_t vow_value_array_len(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  size_t len;
  const unsigned char* b;
  if (v->kind == VOW_VALUE_ARRAY)
    return v->len;
  b = vow_value_bytes(v, &len);
  uint32_t n;
  size_t head;
  if (b == NULL || !vowp_array_header(b, len, &n, &head))
    return 0;
  return n;
}
vow_value_t* vow_value_array_at(const vow_value_t* v, size_t i) {
  VOW__NOT_NULL(v, "the value");
  return v->kind == VOW_VALUE_ARRAY && i < v->len ? v->u.items[i] : NULL;
}
vow_failure_t* vow_value_get_failure(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  return v->kind == VOW_VALUE_FAILURE ? v->u.failure : NULL;
}
