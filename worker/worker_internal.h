/* worker/worker_internal.h — private to the worker side of libvow; not for use
 * outside worker/. */
#ifndef VOW_WORKER_INTERNAL_H
#define VOW_WORKER_INTERNAL_H

#include <stdio.h>

#include "misuse.h"
#include "proto.h"
#include "shm.h"
#include "vow/worker.h"

/* The process-level set-up of a worker (worker_setup.c): parent-death signal,
 * resource limits, crash reports, and fd 1 pointed at stderr. Fills the
 * channel's fds. Returns 0, or -1 after writing why to stderr. */
int vow__worker_setup(int* in_fd, int* out_fd);
/* The side socket for shared-memory segments, announced to the parent,
 * with the size from which results go there; -1 when there is none. */
int vow__worker_shm_sock(uint64_t* threshold);
/* Writes to the channel, taking turns with the heartbeat thread. */
int vow__worker_write(int fd, const void* data, size_t len);
/* Under a launcher: sends a heartbeat now, so that a link holding back
 * the rest of a message until it hears from us (srun's) goes on. False,
 * sending nothing, elsewhere. */
bool vow__worker_nudge_link(void);
/* Whether the channel is a launcher's link (a heartbeat is asked for). */
bool vow__worker_on_link(void);
/* A mapping of a segment's bytes that the tasks using them share
 * (worker_segments.c). */
typedef struct vow__seg_map vow__seg_map;
/* The mapping of the len bytes at off of segment fd (taken: closed here),
 * shared with the tasks that hold it already, else made. NULL with why
 * (a sentence) when the segment cannot be mapped or read. */
vow__seg_map* vow__seg_map_open(vow__seg_map** list, int fd, uint64_t off,
                                uint64_t len, char* why, size_t why_len);
const unsigned char* vow__seg_map_data(const vow__seg_map* m, size_t* len);
/* One task is done with it; the last one unmaps it. */
void vow__seg_map_release(vow__seg_map** list, vow__seg_map* m);
/* Why a task fails whose segment's descriptor could not be received. */
#define VOW__WORKER_LOST_SEGMENT                                    \
  "the worker could not receive the shared-memory segment of its "  \
  "arguments: it has as many descriptors open as its limit allows " \
  "(RLIMIT_NOFILE)"
/* Parts (worker_parts.c): the segments of the parts that references in
 * a task's arguments stand for, mapped in the order the references come
 * (*parts, *nparts; none: NULL, 0). 0; 1 when the task is to fail with
 * why (a segment that cannot be mapped or received); -1 when the parent
 * broke the protocol (why says how). */
int vow__parts_map(int sock, vow__shm_inbox* in, vow__seg_map** maps,
                   const char* args, size_t args_len, vow__seg_map*** parts,
                   size_t* nparts, char* why, size_t why_len);
void vow__parts_free(vow__seg_map** maps, vow__seg_map** parts, size_t n);
/* Each part's object, decoded from its mapping, put where its reference
 * stands in args; what holds them (vow__parts_destroy after the task),
 * or NULL when one is not msgpack or memory ran out. */
msgpack_unpacked* vow__parts_unpack(msgpack_object* args, vow__seg_map** parts,
                                    size_t n);
void vow__parts_destroy(msgpack_unpacked* un, size_t n);
/* Where a task writes its big result in place (worker_result_space.c):
 * a segment's writable mapping, or memory of its own. */
typedef struct vow__result_space {
  void* heap;         /* the bytes, where no segment holds them */
  unsigned char* map; /* the segment's writable mapping */
  int fd;             /* the segment, or -1 */
  size_t size, lead, len;
} vow__result_space;
/* Space for a bin result of len bytes: in a new segment when shm_sock is
 * a side socket and the result reaches threshold, else malloc'd. Where to
 * write the bytes, or NULL (no memory, or past 4 GiB - 1). */
void* vow__result_space_open(vow__result_space* r, size_t len, int shm_sock,
                             uint64_t threshold);
bool vow__result_space_used(const vow__result_space* r);
/* Packs the result into pk: a segment sealed and sent under id with its
 * reference, or the bin. 0, or an errno value (the segment could not be
 * sealed or sent: nothing was packed). The space is let go either way. */
int vow__result_space_finish(vow__result_space* r, msgpack_packer* pk,
                             int shm_sock, uint64_t id);
void vow__result_space_drop(vow__result_space* r);
/* Names the task running now in a crash report (NULL: none). The strings
 * must stay valid while the task runs. */
void vow__worker_crash_context(uint64_t task_id, const char* fn);

#endif
