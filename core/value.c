/* Values: msgpack bytes, opaque pointers, arrays and failures. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"
#include "proto.h"
#include "shm.h"

#define IMMORTAL UINT32_MAX

/* What a msgpack value's u.ext.base points to. */
enum {
  HOLD_HEAP,  /* a malloc'd buffer holding the bytes, or NULL */
  HOLD_SHM,   /* a shm_hold: the value has a segment */
  HOLD_PARTS, /* a value_parts: the bytes follow the header */
};

/* A msgpack value keeps its bytes right after the header, one allocation
 * per value. */
struct vow_value {
  uint32_t refs;
  uint8_t kind;
  uint8_t holder; /* VOW_VALUE_MSGPACK: what u.ext.base is (HOLD_...) */
  size_t len;     /* bytes, or array length */
  union {
    struct {
      void* ptr;
      void (*dtor)(void*);
    } p;
    vow_failure_t* failure;
    vow_value_t** items;
    struct {
      void* base;                /* owned buffer the bytes live in */
      const unsigned char* data; /* NULL: the bytes follow the header */
    } ext;                       /* VOW_VALUE_MSGPACK */
  } u;
  unsigned char bytes[];
};

static vow_value_t nil_value = {IMMORTAL, VOW_VALUE_MSGPACK, 0, 1, {{0, 0}}};
static const unsigned char nil_byte = 0xc0;

vow_value_t* vow_value_nil(void) {
  return &nil_value;
}

static vow_value_t* alloc_value(int kind, size_t nbytes) {
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
    v = alloc_value(VOW_VALUE_MSGPACK, e->len);
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
  v = alloc_value(VOW_VALUE_MSGPACK, len);
  if (v == NULL) {
    if (err)
      *err = UV_ENOMEM;
    return NULL;
  }
  memcpy(v->bytes, bytes, len);
  return v;
}

vow_value_t* vow__value_alloc_encoded(size_t len, unsigned char** bytes) {
  vow_value_t* v = alloc_value(VOW_VALUE_MSGPACK, len);
  if (v != NULL)
    *bytes = v->bytes;
  return v;
}

void vow__value_set_len(vow_value_t* v, size_t len) {
  v->len = len; /* only ever shrinks a value still being filled */
}

vow_value_t* vow__value_adopt(void* base, const void* bytes, size_t len) {
  vow_value_t* v = alloc_value(VOW_VALUE_MSGPACK, 0);
  if (v == NULL)
    return NULL;
  v->len = len;
  v->u.ext.base = base;
  v->u.ext.data = bytes;
  return v;
}

vow_value_t* vow__value_from_encoded(const void* bytes, size_t len) {
  vow_value_t* v = alloc_value(VOW_VALUE_MSGPACK, len);
  if (v != NULL)
    memcpy(v->bytes, bytes, len);
  return v;
}

static vow_value_t* fail_with(int* err, int code) {
  if (err)
    *err = code;
  return NULL;
}

/* A value's segment, and the mapping its bytes are read from when it came
 * from one. */
typedef struct shm_hold {
  int fd; /* the sealed segment */
  uint64_t off, len;
  vow__shm_view view; /* base NULL: the bytes are the value's own */
  void* heap;         /* the value's own buffer, if any (was u.ext.base) */
  bool writable;      /* made by vow_value_new_shared, not yet sealed */
  bool sealed;        /* may be sent: no one can change it */
} shm_hold;

static _Atomic size_t shm_segments;
static _Atomic uint64_t shm_bytes;

size_t vow__shm_live(uint64_t* bytes) {
  if (bytes)
    *bytes = shm_bytes;
  return shm_segments;
}

static shm_hold* new_hold(int fd, uint64_t off, uint64_t len) {
  shm_hold* h = vow__calloc(1, sizeof(*h));
  if (h == NULL)
    return NULL;
  h->fd = fd;
  h->off = off;
  h->len = len;
  shm_segments++;
  shm_bytes += len;
  return h;
}

static void drop_hold(shm_hold* h) {
  vow__shm_view_close(&h->view);
  close(h->fd);
  vow__free(h->heap);
  shm_segments--;
  shm_bytes -= h->len;
  vow__free(h);
}

/* A value made writable in its segment, sealed on its way out: its
 * writable mapping gives way to a read-only one of the same pages. */
static int seal_shared(vow_value_t* v, shm_hold* h) {
  char why[128];
  vow__shm_view ro;
  /* No mapping may be writable, even in name, when the write seal goes
   * on: the read-only one comes after, its pages only as they are read.
   * Past the unmapping there is no way back: a segment of ours that no
   * one else maps is always sealed, and a failure to read it back is a
   * memory exhausted (as for malloc, the process cannot go on). */
  int rc = vow__shm_seal(h->fd, h->view.base, h->view.map_len);
  h->view.base = NULL;
  h->writable = false;
  h->sealed = true;
  if (rc != 0 || vow__shm_view_open(h->fd, h->off, h->len, VOW__SHM_MAP, &ro,
                                    why, sizeof(why)) != 0) {
    fprintf(stderr, "vow: a value in shared memory is lost: %s\n",
            rc ? strerror(rc) : why);
    abort();
  }
  h->view = ro;
  v->u.ext.data = ro.data;
  return 0;
}

/* The values a value's references stand for (vow_value_new_with_parts),
 * and where the references are. */
typedef struct value_parts {
  size_t nrefs, nparts;
  vow__part_ref* refs; /* in order of position */
  vow_value_t** parts;
} value_parts;

static void drop_parts(value_parts* ps) {
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

bool vow_value_is_shared(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  return v->kind == VOW_VALUE_MSGPACK && v->holder == HOLD_SHM;
}

void vow__value_freeze(vow_value_t* v) {
  if (v != NULL && v->kind == VOW_VALUE_MSGPACK && v->holder == HOLD_SHM &&
      ((shm_hold*)v->u.ext.base)->writable)
    seal_shared(v, v->u.ext.base);
  if (v != NULL && v->kind == VOW_VALUE_MSGPACK && v->holder == HOLD_PARTS) {
    value_parts* ps = v->u.ext.base;
    for (size_t i = 0; i < ps->nparts; i++)
      vow__value_freeze(ps->parts[i]);
  }
}

vow_value_t* vow_value_new_shared(size_t len, size_t align_at, void** bytes,
                                  int* err) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), lead, size;
  unsigned char* map;
  vow_value_t* v;
  shm_hold* h;
  int fd, rc;
  if (bytes)
    *bytes = NULL;
  if (len == 0 || align_at > len || bytes == NULL) {
    if (err)
      *err = UV_EINVAL;
    return NULL;
  }
  /* The value starts lead bytes in, so that byte align_at is at a page. */
  lead = (page - align_at % page) % page;
  size = lead + len;
  if ((rc = vow__shm_create(size, &fd, &map)) != 0) {
    if (err)
      *err = uv_translate_sys_error(rc);
    return NULL;
  }
  v = alloc_value(VOW_VALUE_MSGPACK, 0);
  h = v ? new_hold(fd, lead, len) : NULL;
  if (h == NULL) {
    vow__free(v);
    munmap(map, size);
    close(fd);
    if (err)
      *err = UV_ENOMEM;
    return NULL;
  }
  h->view.base = map;
  h->view.map_len = size;
  h->view.data = map + lead;
  h->view.len = len;
  h->writable = true;
  v->len = len;
  v->u.ext.base = h;
  v->u.ext.data = map + lead;
  v->holder = HOLD_SHM;
  *bytes = map + lead;
  return v;
}

vow_value_t* vow_value_new_shared_from(const void* const* pieces,
                                       const size_t* lens, size_t n,
                                       size_t align_at, int* err) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), lead, len = 0, at, i;
  vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
  vowp_error perr;
  vow__shm_view view;
  char why[128];
  vow_value_t* v;
  shm_hold* h;
  int fd, rc;
  for (i = 0; i < n; i++)
    len += lens[i];
  if (len == 0 || align_at > len || (n > 0 && pieces == NULL))
    return fail_with(err, UV_EINVAL);
  lead = (page - align_at % page) % page;
  if ((rc = vow__shm_create(lead + len, &fd, NULL)) != 0)
    return fail_with(err, uv_translate_sys_error(rc));
  for (i = 0, at = lead; i < n && rc == 0; at += lens[i], i++)
    rc = vow__shm_write_at(fd, at, pieces[i], lens[i]);
  if (rc == 0)
    rc = vow__shm_seal(fd, NULL, lead + len);
  if (rc != 0) {
    close(fd);
    return fail_with(err, uv_translate_sys_error(rc));
  }
  /* Read back through a mapping whose pages come in only as read: the
   * check reads an array's header, not its data. */
  if (vow__shm_view_open(fd, lead, len, VOW__SHM_MAP, &view, why,
                         sizeof(why)) != 0) {
    close(fd);
    return fail_with(err, UV_ENOMEM);
  }
  if (vowp_prescan((const char*)view.data, len, &lim, 0, &perr) != VOWP_OK) {
    vow__shm_view_close(&view);
    close(fd);
    return fail_with(err, UV_EINVAL);
  }
  v = alloc_value(VOW_VALUE_MSGPACK, 0);
  h = v ? new_hold(fd, lead, len) : NULL;
  if (h == NULL) {
    vow__free(v);
    vow__shm_view_close(&view);
    close(fd);
    return fail_with(err, UV_ENOMEM);
  }
  h->view = view;
  h->sealed = true;
  v->len = len;
  v->u.ext.base = h;
  v->u.ext.data = view.data;
  v->holder = HOLD_SHM;
  return v;
}

vow_value_t* vow_value_new_shared_bin(size_t len, void** data, int* err) {
  unsigned char* b;
  vow_value_t* v;
  if (data)
    *data = NULL;
  if (len == 0 || len > UINT32_MAX || data == NULL) {
    if (err)
      *err = UV_EINVAL;
    return NULL;
  }
  /* The bin's header just before its page-aligned bytes: one msgpack
   * bin, as vow_value_new_bin would make it. */
  v = vow_value_new_shared(len + 5, 5, (void**)&b, err);
  if (v == NULL)
    return NULL;
  b[0] = 0xc6;
  vowp_write_be32(b + 1, (uint32_t)len);
  *data = b + 5;
  return v;
}

int vow__value_segment(vow_value_t* v, uint64_t max_live, uint64_t max_segments,
                       int* fd, uint64_t* off) {
  const void* bytes;
  size_t len;
  shm_hold* h;
  int rc, f;
  if (v->kind != VOW_VALUE_MSGPACK || v == &nil_value ||
      v->holder == HOLD_PARTS)
    return EINVAL;
  if (v->holder == HOLD_SHM) {
    h = v->u.ext.base;
    if (h->writable && (rc = seal_shared(v, h)) != 0)
      return rc;
    if (!h->sealed)
      return EPERM;
    *fd = h->fd;
    *off = h->off;
    return 0;
  }
  bytes = vow_value_bytes(v, &len);
  if (shm_bytes + len > max_live)
    return ENOSPC;
  if (shm_segments >= max_segments)
    return EMFILE;
  if ((rc = vow__shm_create(len, &f, NULL)) != 0)
    return rc;
  if ((rc = vow__shm_write(f, bytes, len)) != 0 ||
      (rc = vow__shm_seal(f, NULL, len)) != 0 ||
      (h = new_hold(f, 0, len)) == NULL) {
    close(f);
    return rc ? rc : ENOMEM;
  }
  /* The bytes stay where they are; the segment is kept beside them. */
  h->heap = v->u.ext.base;
  h->sealed = true;
  if (v->u.ext.data == NULL)
    v->u.ext.data = v->bytes;
  v->u.ext.base = h;
  v->holder = HOLD_SHM;
  *fd = f;
  *off = 0;
  return 0;
}

vow_value_t* vow__value_from_segment(int fd, uint64_t off, uint64_t len,
                                     bool copy, char* why, size_t why_len) {
  vow_value_t* v;
  shm_hold* h;
  vow__shm_view view;
  if (vow__shm_view_open(fd, off, len, copy ? VOW__SHM_READ : VOW__SHM_MAP_ALL,
                         &view, why, why_len) != 0) {
    close(fd);
    return NULL;
  }
  if (copy) {
    close(fd);
    v = vow__value_adopt(view.base, view.data, view.len);
    if (v == NULL) {
      vow__shm_view_close(&view);
      snprintf(why, why_len, "no memory for a value of %llu bytes",
               (unsigned long long)len);
    }
    return v;
  }
  v = alloc_value(VOW_VALUE_MSGPACK, 0);
  h = v ? new_hold(fd, off, len) : NULL;
  if (h == NULL) {
    vow__free(v);
    vow__shm_view_close(&view);
    close(fd);
    snprintf(why, why_len, "no memory for a shared-memory value");
    return NULL;
  }
  h->view = view;
  h->sealed = true; /* checked by the view */
  v->len = (size_t)len;
  v->u.ext.base = h;
  v->u.ext.data = view.data;
  v->holder = HOLD_SHM;
  return v;
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
    return fail_with(err, UV_EINVAL);
  for (i = 0; i < n; i++)
    if (parts[i] == NULL || parts[i]->kind != VOW_VALUE_MSGPACK ||
        parts[i]->holder == HOLD_PARTS)
      return fail_with(err, UV_EINVAL);
  nrefs = vowp_shm_refs(bytes, len, NULL, 0);
  if (nrefs > 0 && (at = vow__malloc(nrefs * sizeof(*at))) == NULL)
    return fail_with(err, UV_ENOMEM);
  vowp_shm_refs(bytes, len, at, nrefs);
  /* Each reference names a part by its index, and nothing else. */
  for (i = 0; i < nrefs; i++) {
    uint64_t id = 0, off = 0, rlen = 0;
    if (!vowp_shm_ref_read((const char*)bytes + at[i], VOWP_SHM_REF_LEN, &id,
                           &off, &rlen) ||
        id >= n || off != 0 || rlen != 0) {
      vow__free(at);
      return fail_with(err, UV_EINVAL);
    }
  }
  v = alloc_value(VOW_VALUE_MSGPACK, len);
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
    return fail_with(err, UV_ENOMEM);
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
    return fail_with(err, UV_EINVAL);
  for (i = 0; i < n; i++)
    if (items[i] == NULL || items[i]->kind != VOW_VALUE_MSGPACK ||
        items[i]->holder == HOLD_PARTS)
      return fail_with(err, UV_EINVAL);
  parts = vow__malloc((n ? n : 1) * sizeof(*parts));
  if (parts == NULL)
    return fail_with(err, UV_ENOMEM);
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
    return fail_with(err, UV_ENOMEM);
  }
  v = vow_value_new_with_parts(e.data, e.len, parts, nparts, err);
  vowp_encoder_destroy(&e);
  vow__free(parts);
  return v;
}

vow_value_t* vow_value_new_ptr(void* ptr, void (*dtor)(void*)) {
  vow_value_t* v = alloc_value(VOW_VALUE_PTR, 0);
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
    v = alloc_value(VOW_VALUE_ARRAY, 0);
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
  vow_value_t* v = alloc_value(VOW_VALUE_FAILURE, 0);
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
        drop_hold(v->u.ext.base);
      else if (v->holder == HOLD_PARTS)
        drop_parts(v->u.ext.base);
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
