/* worker/worker_internal.h — private to the worker side of libvow; not for use
 * outside worker/. */
#ifndef VOW_WORKER_INTERNAL_H
#define VOW_WORKER_INTERNAL_H

#include "misuse.h"
#include "proto.h"
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
/* Names the task running now in a crash report (NULL: none). The strings
 * must stay valid while the task runs. */
void vow__worker_crash_context(uint64_t task_id, const char* fn);

#endif
