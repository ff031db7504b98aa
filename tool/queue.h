/* tool/queue.h — the job queue: `vow serve` (the daemon) and its clients
 * (`vow submit`, `status`, `wait`, `output`, `cancel`, `pause`, `resume`,
 * `shutdown`). Private to the vow executable (cli/, daemon/).
 *
 * Client and daemon speak msgpack over a Unix socket, in the worker
 * protocol's frames (a 4-byte big-endian length, then one msgpack map),
 * with the same pre-scan and limits. Every request carries "v" (the
 * protocol version) and "op"; every reply has "ok" and, when false,
 * "error". See docs/queue.md. */
#ifndef VOW_TOOL_QUEUE_H
#define VOW_TOOL_QUEUE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tool.h"

#define VOW_QUEUE_VERSION 1
/* Requests and replies: far above any real one (a submit carries its
 * environment), far below what would hurt. */
#define VOW_QUEUE_MAX_FRAME ((size_t)16 << 20)

/* Where a daemon keeps its socket and its files: the socket, and next to
 * it PATH.db (SQLite), PATH.lock, PATH.log and PATH.out/ (job output). */
typedef struct queue_paths {
  char sock[108]; /* sun_path's size */
  char db[128];
  char lock[128];
  char log[128];
  char out[128];
} queue_paths;

/* The socket from --socket, else $VOW_SOCKET, else
 * $XDG_RUNTIME_DIR/vow/queue.sock, else /tmp/vow-UID/queue.sock (the
 * directory made 0700 and checked to be ours). Returns 0, or -1 after
 * saying what is wrong. */
int queue_paths_init(queue_paths* p, const char* socket_opt);

/* ---- files of ours (owned.c) ------------------------------------------ */

/* Opens path (relative to dirfd when dirfd >= 0), never through a
 * symbolic link, creating it with mode 0600 when flags has O_CREAT, and
 * refuses what is not ours: not a regular file, another uid's, writable
 * by group or others, or with more than one link. Returns the
 * descriptor (close-on-exec), or -1 with the reason in err. */
int qf_open(int dirfd, const char* path, int flags, char* err, size_t errlen);
/* Makes the folder (mode 0700), or opens the one there, refused as
 * qf_open refuses a file; returns its descriptor or -1 with err. */
int qf_open_dir(const char* path, char* err, size_t errlen);
/* 0 when nothing is at path or what is there is ours (as qf_open
 * checks it); else -1 with err. */
int qf_check(const char* path, char* err, size_t errlen);

/* ---- wire (queue_wire.c) ------------------------------------------ */

/* Writes one frame, whole, on a blocking descriptor. 0 or -errno. */
int qw_write_frame(int fd, const void* data, size_t len);
/* Reads one frame into *out (pre-scanned, at most VOW_QUEUE_MAX_FRAME).
 * Returns 1, 0 at a clean EOF, or -1 with err filled. */
int qw_read_frame(int fd, vbuf* out, char* err, size_t errlen);
/* A map's value for key, or NULL. */
const msgpack_object* qw_get(const msgpack_object* map, const char* key);
bool qw_get_int(const msgpack_object* map, const char* key, int64_t* out);
bool qw_get_double(const msgpack_object* map, const char* key, double* out);
bool qw_get_bool(const msgpack_object* map, const char* key);
/* A string value copied to a NUL-terminated malloc'd string, or NULL. */
char* qw_get_str(const msgpack_object* map, const char* key);
void qw_pack_str(msgpack_packer* pk, const char* s);
void qw_pack_kv_str(msgpack_packer* pk, const char* key, const char* value);
void qw_pack_kv_int(msgpack_packer* pk, const char* key, int64_t value);

#endif
