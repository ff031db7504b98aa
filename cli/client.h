/* cli/client.h — shared by the queue's client commands (client*.c):
 * a connection to the daemon, requests and replies, job id arguments.
 * Private to cli/. */
#ifndef VOW_CLI_CLIENT_H
#define VOW_CLI_CLIENT_H

#include "queue.h"

typedef struct conn {
  int fd;
  queue_paths paths;
  vbuf in;
  msgpack_unpacked reply;
} conn;

/* Whether a command may start the daemon (CONN_START), needs one running
 * (CONN_NEED), or only looks (CONN_LOOK: no daemon is an answer). */
typedef enum { CONN_START, CONN_NEED, CONN_LOOK } conn_mode;

/* Connects (CONN_LOOK: fd stays -1 when no daemon runs); 0, or -1 after
 * saying why. */
int qc_open(conn* c, const char* socket_opt, conn_mode mode);
void qc_close(conn* c);
/* With no reply outstanding: when the daemon has closed the connection
 * (it closes those idle past --idle-timeout), connects again. 0, or -1
 * after saying why. */
int qc_reopen_if_closed(conn* c);
/* Sends the request in sb (taken over): 0, or -1 after saying why. */
int qc_send(conn* c, msgpack_sbuffer* sb);
/* The next reply, a map with "ok" true (valid until the next call), or
 * NULL after saying what was wrong (its error, a closed connection). */
const msgpack_object* qc_reply(conn* c);
/* Reads a reply that lists jobs, which comes in pages (maps with "jobs"
 * and "more"): head (or NULL) gets the first page, whose other fields
 * are the reply's; each gets every job in order. Objects are valid only
 * during the call. 0, or -1 after saying what was wrong. */
int qc_jobs(conn* c, void (*head)(const msgpack_object* r, void* data),
            void (*each)(const msgpack_object* job, void* data), void* data);
/* Starts a request of op with `more` fields to follow. */
void qc_begin(msgpack_sbuffer* sb, msgpack_packer* pk, const char* op,
              size_t more);
bool qc_parse_id(const char* s, int64_t* out);
bool qc_parse_int(const char* s, const char* what, int64_t lo, int64_t hi,
                  int64_t* out);
void qc_pack_ids(msgpack_packer* pk, const int64_t* ids, size_t n);
/* Reads a reply's "id" and prints it; 0, or an exit status. */
int qc_print_id(conn* c);

/* Reads job ids from argv, and the flags a command takes: each of
 * bools[] (set when present) and --group G. */
typedef struct id_args {
  int64_t* ids;
  size_t n;
  bool flag[3];
  const char* group;
} id_args;
int qc_collect_ids(int argc, char** argv, id_args* r,
                   const char* const flags[3], bool takes_group);

/* The commands (client_submit.c, client_status.c, client_output.c). */
int cmd_submit(conn* c, int argc, char** argv);
int cmd_status(conn* c, int argc, char** argv);
int cmd_wait(conn* c, int argc, char** argv);
int cmd_output(conn* c, int argc, char** argv);

#endif
