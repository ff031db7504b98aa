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
/* Names the task running now in a crash report (NULL: none). The strings
 * must stay valid while the task runs. */
void vow__worker_crash_context(uint64_t task_id, const char* fn);

#endif
