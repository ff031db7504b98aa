/* Arguments with parts (vow_value_new_with_parts, vow_value_new_args):
 * a msgpack value whose references stand for other values, which a pool
 * sends apart (docs/protocol.md, "Parts"). */
#include <string.h>

#include "proto.h"
#include "value_internal.h"

/* The values a value's references stand for (vow_value_new_with_parts),
 * and where the references are. */
typedef struct value_parts {
  size_t nrefs, nparts;
  vow__part_ref* refs; /* in order of position */
  vow_value_t** parts;
} value_parts;

void vow__value_drop_parts(void* parts) {
  value_parts* ps = parts;
  for (size_t i = 0; i < ps->nparts; i++)
    vow_value_release(ps->parts[i]);
  vow__free(ps->refs);
  vow__free(ps->parts);
  vow__free(ps);
}

size_t vow__value_parts(const vow_value_t* v, const vow__part_ref** refs) {
  const value_parts* ps;
  if (v->kind != VOW_VALUE_MSGPACK || v->holder != HOLD_PARTS)
    return 0;
  ps = v->u.ext.base;
  if (refs)
    *refs = ps->refs;
  return ps->nrefs;
}

void vow_value_part_ref(uint32_t i, void* out) {
  VOW__NOT_NULL(out, "the reference's bytes");
  vowp_shm_ref_write(out, i, 0, 0);
}

vow_value_t* vow_value_new_with_parts(const void* bytes, size_t len,
                                      vow_value_t* const* parts, size_t n,
                                      int* err) {
  vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
  vowp_error perr;
  value_parts* ps;
  vow_value_t* v;
  size_t i, nrefs;
  size_t* at = NULL;
  if (bytes == NULL || len == 0 || (n > 0 && parts == NULL) ||
      vowp_prescan(bytes, len, &lim, 0, &perr) != VOWP_OK)
    return vow__value_fail(err, UV_EINVAL);
  for (i = 0; i < n; i++)
    if (parts[i] == NULL || parts[i]->kind != VOW_VALUE_MSGPACK ||
        parts[i]->holder == HOLD_PARTS)
      return vow__value_fail(err, UV_EINVAL);
  nrefs = vowp_shm_refs(bytes, len, NULL, 0);
  if (nrefs > 0 && (at = vow__malloc(nrefs * sizeof(*at))) == NULL)
    return vow__value_fail(err, UV_ENOMEM);
  vowp_shm_refs(bytes, len, at, nrefs);
  /* Each reference names a part by its index, and nothing else. */
  for (i = 0; i < nrefs; i++) {
    uint64_t id = 0, off = 0, rlen = 0;
    if (!vowp_shm_ref_read((const char*)bytes + at[i], VOWP_SHM_REF_LEN, &id,
                           &off, &rlen) ||
        id >= n || off != 0 || rlen != 0) {
      vow__free(at);
      return vow__value_fail(err, UV_EINVAL);
    }
  }
  v = vow__value_alloc(VOW_VALUE_MSGPACK, len);
  ps = v ? vow__calloc(1, sizeof(*ps)) : NULL;
  if (ps != NULL) {
    ps->refs = nrefs ? vow__malloc(nrefs * sizeof(*ps->refs)) : NULL;
    ps->parts = n ? vow__malloc(n * sizeof(*ps->parts)) : NULL;
  }
  if (ps == NULL || (nrefs && ps->refs == NULL) || (n && ps->parts == NULL)) {
    if (ps != NULL) {
      vow__free(ps->refs);
      vow__free(ps->parts);
      vow__free(ps);
    }
    vow__free(v);
    vow__free(at);
    return vow__value_fail(err, UV_ENOMEM);
  }
  memcpy(v->bytes, bytes, len);
  for (i = 0; i < n; i++)
    ps->parts[i] = vow_value_ref(parts[i]);
  for (i = 0; i < nrefs; i++) {
    ps->refs[i].at = at[i];
    ps->refs[i].part = ps->parts[vowp_read_be(v->bytes + at[i] + 3, 8)];
  }
  ps->nrefs = nrefs;
  ps->nparts = n;
  vow__free(at);
  v->u.ext.base = ps;
  v->holder = HOLD_PARTS;
  return v;
}

/* Bytes already msgpack, appended as they are. */
static void put_raw(vowp_encoder* e, const void* b, size_t len) {
  e->pk.callback(e->pk.data, b, len);
}

vow_value_t* vow_value_new_args(vow_value_t* const* items, size_t n, int* err) {
  vowp_encoder e;
  vow_value_t** parts;
  vow_value_t* v;
  size_t i, nparts = 0;
  if (n > 0 && items == NULL)
    return vow__value_fail(err, UV_EINVAL);
  for (i = 0; i < n; i++)
    if (items[i] == NULL || items[i]->kind != VOW_VALUE_MSGPACK ||
        items[i]->holder == HOLD_PARTS)
      return vow__value_fail(err, UV_EINVAL);
  parts = vow__malloc((n ? n : 1) * sizeof(*parts));
  if (parts == NULL)
    return vow__value_fail(err, UV_ENOMEM);
  vowp_encoder_init(&e);
  msgpack_pack_array(&e.pk, n);
  for (i = 0; i < n; i++) {
    size_t ilen;
    const void* b = vow_value_bytes(items[i], &ilen);
    if (items[i]->holder == HOLD_SHM || ilen >= VOW_VALUE_PART_MIN) {
      unsigned char ref[VOW_VALUE_PART_REF_LEN];
      vow_value_part_ref((uint32_t)nparts, ref);
      parts[nparts++] = items[i];
      put_raw(&e, ref, sizeof(ref));
    } else {
      put_raw(&e, b, ilen);
    }
  }
  if (e.failed) {
    vowp_encoder_destroy(&e);
    vow__free(parts);
    return vow__value_fail(err, UV_ENOMEM);
  }
  v = vow_value_new_with_parts(e.data, e.len, parts, nparts, err);
  vowp_encoder_destroy(&e);
  vow__free(parts);
  return v;
}
