/* Values in shared-memory segments (docs/pool.md, "Big values"): made
 * there from the start, given a segment the first time they are sent,
 * or over a segment another process sent; counted, sealed, let go. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto.h"
#include "shm.h"
#include "value_internal.h"

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

void vow__value_drop_hold(void* hold) {
  shm_hold* h = hold;
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

bool vow_value_is_shared(const vow_value_t* v) {
  VOW__NOT_NULL(v, "the value");
  return v->kind == VOW_VALUE_MSGPACK && v->holder == HOLD_SHM;
}

void vow__value_freeze(vow_value_t* v) {
  if (v != NULL && v->kind == VOW_VALUE_MSGPACK && v->holder == HOLD_SHM &&
      ((shm_hold*)v->u.ext.base)->writable)
    seal_shared(v, v->u.ext.base);
  if (v != NULL && v->kind == VOW_VALUE_MSGPACK && v->holder == HOLD_PARTS) {
    const vow__part_ref* refs;
    size_t k, n = vow__value_parts(v, &refs);
    for (k = 0; k < n; k++)
      vow__value_freeze(refs[k].part);
  }
}

/* Bytes before a value in its segment that put byte align_at of it on a
 * page. */
static size_t lead_for(size_t align_at) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (page - align_at % page) % page;
}

/* A msgpack value over view, the bytes at off of segment fd, which it
 * then holds (sealed: no one can change them; else writable by us until
 * sealed). NULL when memory runs out, the view closed and fd too. */
static vow_value_t* over_view(int fd, uint64_t off, vow__shm_view* view,
                              bool sealed) {
  vow_value_t* v = vow__value_alloc(VOW_VALUE_MSGPACK, 0);
  shm_hold* h = v ? new_hold(fd, off, view->len) : NULL;
  if (h == NULL) {
    vow__free(v);
    vow__shm_view_close(view);
    close(fd);
    return NULL;
  }
  h->view = *view;
  h->sealed = sealed;
  h->writable = !sealed;
  v->len = view->len;
  v->u.ext.base = h;
  v->u.ext.data = view->data;
  v->holder = HOLD_SHM;
  return v;
}

vow_value_t* vow_value_new_shared(size_t len, size_t align_at, void** bytes,
                                  int* err) {
  size_t lead;
  vow__shm_view view;
  unsigned char* map;
  vow_value_t* v;
  int fd, rc;
  if (bytes)
    *bytes = NULL;
  if (len == 0 || align_at > len || bytes == NULL)
    return vow__value_fail(err, UV_EINVAL);
  /* The value starts lead bytes in, so that byte align_at is at a page. */
  lead = lead_for(align_at);
  if ((rc = vow__shm_create(lead + len, &fd, &map)) != 0)
    return vow__value_fail(err, uv_translate_sys_error(rc));
  view.base = map;
  view.map_len = lead + len;
  view.data = map + lead;
  view.len = len;
  if ((v = over_view(fd, lead, &view, false)) == NULL)
    return vow__value_fail(err, UV_ENOMEM);
  *bytes = map + lead;
  return v;
}

vow_value_t* vow_value_new_shared_from(const void* const* pieces,
                                       const size_t* lens, size_t n,
                                       size_t align_at, int* err) {
  size_t lead, len = 0, at, i;
  vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
  vowp_error perr;
  vow__shm_view view;
  char why[128];
  vow_value_t* v;
  int fd, rc;
  for (i = 0; i < n; i++)
    len += lens[i];
  if (len == 0 || align_at > len || (n > 0 && pieces == NULL))
    return vow__value_fail(err, UV_EINVAL);
  lead = lead_for(align_at);
  if ((rc = vow__shm_create(lead + len, &fd, NULL)) != 0)
    return vow__value_fail(err, uv_translate_sys_error(rc));
  for (i = 0, at = lead; i < n && rc == 0; at += lens[i], i++)
    rc = vow__shm_write_at(fd, at, pieces[i], lens[i]);
  if (rc == 0)
    rc = vow__shm_seal(fd, NULL, lead + len);
  if (rc != 0) {
    close(fd);
    return vow__value_fail(err, uv_translate_sys_error(rc));
  }
  /* Read back through a mapping whose pages come in only as read: the
   * check reads an array's header, not its data. */
  if (vow__shm_view_open(fd, lead, len, VOW__SHM_MAP, &view, why,
                         sizeof(why)) != 0) {
    close(fd);
    return vow__value_fail(err, UV_ENOMEM);
  }
  if (vowp_prescan((const char*)view.data, len, &lim, 0, &perr) != VOWP_OK) {
    vow__shm_view_close(&view);
    close(fd);
    return vow__value_fail(err, UV_EINVAL);
  }
  if ((v = over_view(fd, lead, &view, true)) == NULL)
    return vow__value_fail(err, UV_ENOMEM);
  return v;
}

vow_value_t* vow_value_new_shared_bin(size_t len, void** data, int* err) {
  unsigned char* b;
  vow_value_t* v;
  if (data)
    *data = NULL;
  if (len == 0 || len > UINT32_MAX || data == NULL)
    return vow__value_fail(err, UV_EINVAL);
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
  if (v->kind != VOW_VALUE_MSGPACK || v == vow_value_nil() ||
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
  v = over_view(fd, off, &view, true); /* sealed: the view checked */
  if (v == NULL)
    snprintf(why, why_len, "no memory for a shared-memory value");
  return v;
}
