/* base/shm.h — shared-memory segments for big values, and the side
 * socket that carries them between a parent and a local worker.
 *
 * A segment is a memfd: it has no name anywhere, and the kernel frees it
 * when its last descriptor and its last mapping are gone, so no process
 * death, in any order, can leave one behind. The writer fills it, unmaps
 * it and seals it (no shrinking, growing or writing, by anyone): what a
 * reader maps cannot change or shrink under it (no SIGBUS), and a reader
 * checks those seals before it trusts a segment. A segment travels as a
 * descriptor with an 8-byte id over a SOCK_SEQPACKET side socket
 * (SCM_RIGHTS), before the frame that names the id (docs/protocol.md,
 * "Shared memory"): the kernel queues it at the receiver when the send
 * returns, so a reader that meets the id has it waiting. */
#ifndef VOW_BASE_SHM_H
#define VOW_BASE_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A new segment of size bytes, its pages reserved (so a full memory is an
 * error here, not a SIGBUS later), mapped writable at *map unless map is
 * NULL. 0, or an errno value. */
int vow__shm_create(size_t size, int* fd, unsigned char** map);
/* Writes len bytes at the segment's start without mapping it (so they
 * never count in this process's resident memory). 0 or an errno. */
int vow__shm_write(int fd, const void* bytes, size_t len);
/* The same, at byte off of the segment. */
int vow__shm_write_at(int fd, size_t off, const void* bytes, size_t len);
/* Unmaps the writer's mapping and seals the segment. 0 or an errno. */
int vow__shm_seal(int fd, unsigned char* map, size_t size);

/* A reader's view of len bytes at off of a segment it was sent. */
typedef struct vow__shm_view {
  const unsigned char* data; /* the bytes */
  size_t len;
  void* base;     /* what to unmap (page-aligned), or malloc'd */
  size_t map_len; /* 0: base is malloc'd (the pages were read) */
} vow__shm_view;

/* How a view holds its bytes. */
enum vow__shm_how {
  VOW__SHM_READ,   /* read into memory of its own */
  VOW__SHM_MAP,    /* mapped; pages come in as they are touched */
  VOW__SHM_MAP_ALL /* mapped, every page at once (to be read through) */
};
/* Maps the bytes read-only (as how says) after checking that fd is a
 * sealed segment that holds them. With VOW__SHM_READ, or where mapping
 * fails, the bytes are read into memory instead: the same bytes. 0, or
 * -1 with why (a sentence) in why. */
int vow__shm_view_open(int fd, uint64_t off, uint64_t len, int how,
                       vow__shm_view* v, char* why, size_t why_len);
void vow__shm_view_close(vow__shm_view* v);

/* Sends id, and fd when fd >= 0, as one packet. 0, or an errno value
 * (EAGAIN when the socket is full: the caller sends the value another
 * way). */
int vow__shm_send(int sock, uint64_t id, int fd);

/* Descriptors that have arrived ahead of the frames naming them. */
typedef struct vow__shm_inbox {
  uint64_t* ids;
  int* fds;
  size_t n, cap;
} vow__shm_inbox;

/* The descriptor sent with id: from those that arrived before, else read
 * from sock until it comes. -1 when it is not there (the sender broke the
 * protocol, or the socket failed); VOW__SHM_LOST when its packet came
 * but its descriptor could not be received (this process is at its
 * limit of open descriptors). The caller owns it. */
#define VOW__SHM_LOST (-2)
int vow__shm_take(vow__shm_inbox* in, int sock, uint64_t id);
/* Closes whatever arrived and was never named. */
void vow__shm_inbox_clear(vow__shm_inbox* in);

/* The id a worker sends, without a descriptor, before its HELLO: it takes
 * segments. */
#define VOW__SHM_ID_HELLO 0
/* Whether that word has come on sock. */
bool vow__shm_heard_hello(int sock);

#endif
