/* A task's big result written in place (vow_task_result_bin): straight
 * into a shared-memory segment when the worker has a side socket and the
 * result is big enough to go by one, so it is never copied on its way to
 * the parent; into memory of its own otherwise, packed after the task
 * function returns. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "worker_internal.h"

#define BIN32_HEAD 5 /* c6 and the length */

void* vow__result_space_open(vow__result_space* r, size_t len, int shm_sock,
                             uint64_t threshold) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  memset(r, 0, sizeof(*r));
  r->fd = -1;
  if (len > UINT32_MAX)
    return NULL;
  r->len = len;
  if (shm_sock >= 0 && len + BIN32_HEAD >= threshold) {
    /* The bin's header just before its page-aligned bytes. */
    r->lead = (page - BIN32_HEAD % page) % page;
    r->size = r->lead + BIN32_HEAD + len;
    if (vow__shm_create(r->size, &r->fd, &r->map) == 0) {
      r->map[r->lead] = 0xc6;
      vowp_write_be32(r->map + r->lead + 1, (uint32_t)len);
      return r->map + r->lead + BIN32_HEAD;
    }
    r->fd = -1;
    r->map = NULL;
  }
  r->heap = vow__malloc(len ? len : 1);
  return r->heap;
}

bool vow__result_space_used(const vow__result_space* r) {
  return r->map != NULL || r->heap != NULL;
}

int vow__result_space_finish(vow__result_space* r, msgpack_packer* pk,
                             int shm_sock, uint64_t id) {
  int rc = 0;
  if (r->map != NULL) {
    unsigned char ref[VOWP_SHM_REF_LEN];
    rc = vow__shm_seal(r->fd, r->map, r->size);
    r->map = NULL; /* unmapped by the seal */
    if (rc == 0)
      rc = vow__shm_send(shm_sock, id, r->fd);
    if (rc == 0) {
      vowp_shm_ref_write(ref, id, r->lead, BIN32_HEAD + r->len);
      pk->callback(pk->data, (const char*)ref, sizeof(ref));
    }
  } else if (r->heap != NULL) {
    msgpack_pack_bin(pk, r->len);
    msgpack_pack_bin_body(pk, r->heap, r->len);
  }
  vow__result_space_drop(r);
  return rc;
}

void vow__result_space_drop(vow__result_space* r) {
  if (r->map != NULL)
    munmap(r->map, r->size);
  if (r->fd >= 0)
    close(r->fd); /* sent, the kernel holds it for the parent */
  vow__free(r->heap);
  memset(r, 0, sizeof(*r));
  r->fd = -1;
}
