/* A worker's side of parts (docs/protocol.md, "Parts"): the segments
 * that references inside a task's arguments stand for, mapped when the
 * task arrives (one mapping per segment for all the tasks that hold it),
 * and their objects put where the references stand when it runs. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "worker_internal.h"

void vow__parts_free(vow__seg_map** maps, vow__seg_map** parts, size_t n) {
  for (size_t k = 0; k < n; k++)
    vow__seg_map_release(maps, parts[k]);
  vow__free(parts);
}

/* Takes and closes the descriptors of the references from k on. */
static void let_go_from(int sock, vow__shm_inbox* in, const char* args,
                        const size_t* at, size_t k, size_t n) {
  for (; k < n; k++) {
    uint64_t id = 0, off = 0, len = 0;
    int fd;
    vowp_shm_ref_read(args + at[k], VOWP_SHM_REF_LEN, &id, &off, &len);
    if ((fd = vow__shm_take(in, sock, id)) >= 0)
      close(fd);
  }
}

int vow__parts_map(int sock, vow__shm_inbox* in, vow__seg_map** maps,
                   const char* args, size_t args_len, vow__seg_map*** parts,
                   size_t* nparts, char* why, size_t why_len) {
  size_t n, k, *at;
  *parts = NULL;
  *nparts = 0;
  if ((n = vowp_shm_refs(args, args_len, NULL, 0)) == 0)
    return 0;
  at = vow__malloc(n * sizeof(*at));
  *parts = vow__calloc(n, sizeof(**parts));
  if (at == NULL || *parts == NULL) {
    vow__free(at);
    vow__free(*parts);
    *parts = NULL;
    snprintf(why, why_len, "worker out of memory");
    return 1;
  }
  vowp_shm_refs(args, args_len, at, n);
  for (k = 0; k < n; k++) {
    uint64_t id = 0, off = 0, len = 0;
    int fd;
    vowp_shm_ref_read(args + at[k], VOWP_SHM_REF_LEN, &id, &off, &len);
    fd = vow__shm_take(in, sock, id);
    if (fd == -1) {
      snprintf(why, why_len,
               "it names shared-memory segment %llu, which "
               "never came",
               (unsigned long long)id);
      vow__free(at);
      return -1;
    }
    if (fd == VOW__SHM_LOST)
      snprintf(why, why_len, "%s", VOW__WORKER_LOST_SEGMENT);
    else
      (*parts)[k] = vow__seg_map_open(maps, fd, off, len, why, why_len);
    if ((*parts)[k] == NULL) {
      let_go_from(sock, in, args, at, k + 1, n);
      vow__parts_free(maps, *parts, k);
      *parts = NULL;
      vow__free(at);
      return 1;
    }
  }
  vow__free(at);
  *nparts = n;
  return 0;
}

void vow__parts_destroy(msgpack_unpacked* un, size_t n) {
  for (size_t k = 0; un != NULL && k < n; k++)
    msgpack_unpacked_destroy(&un[k]);
  vow__free(un);
}

/* Puts each part where its reference stands in o (a depth-first walk
 * meets them in the order their bytes come), decoded from its mapping
 * into un[k]. The number of references met. */
static size_t splice(msgpack_object* o, vow__seg_map** parts, size_t n,
                     msgpack_unpacked* un, size_t k) {
  uint32_t i;
  if (o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == VOWP_EXT_SHM &&
      o->via.ext.size == 24) {
    if (k < n) {
      size_t len, off = 0;
      const char* data = (const char*)vow__seg_map_data(parts[k], &len);
      if (msgpack_unpack_next(&un[k], data, len, &off) ==
          MSGPACK_UNPACK_SUCCESS)
        *o = un[k].data;
    }
    return k + 1;
  }
  if (o->type == MSGPACK_OBJECT_ARRAY)
    for (i = 0; i < o->via.array.size; i++)
      k = splice(&o->via.array.ptr[i], parts, n, un, k);
  else if (o->type == MSGPACK_OBJECT_MAP)
    for (i = 0; i < o->via.map.size; i++) {
      k = splice(&o->via.map.ptr[i].key, parts, n, un, k);
      k = splice(&o->via.map.ptr[i].val, parts, n, un, k);
    }
  return k;
}

msgpack_unpacked* vow__parts_unpack(msgpack_object* args, vow__seg_map** parts,
                                    size_t n) {
  msgpack_unpacked* un = vow__calloc(n, sizeof(*un));
  size_t k;
  if (un == NULL)
    return NULL;
  for (k = 0; k < n; k++)
    msgpack_unpacked_init(&un[k]);
  splice(args, parts, n, un, 0);
  for (k = 0; k < n; k++)
    if (un[k].zone == NULL) { /* not msgpack: the parent's fault */
      vow__parts_destroy(un, n);
      return NULL;
    }
  return un;
}
