/* daemon/conn.h — the daemon's client connections: reading request
 * frames, and replies, sent at once or held until the changes they speak
 * of are committed. Private to daemon/. */
#ifndef VOW_DAEMON_CONN_H
#define VOW_DAEMON_CONN_H

#include "daemon.h"

typedef struct waiter waiter;

typedef struct client {
  struct client* next;
  uv_pipe_t pipe;
  uv_shutdown_t shut;
  uv_timer_t stall; /* a request half received, or nothing asked */
  int open_handles;
  int npending;           /* replies held for the commit */
  bool close_after_flush; /* closed with replies still held */
  bool refusing;          /* accepted past the limit, to say so and close */
  bool shut_started;
  vowp_decoder dec;
  bool closing;
  waiter* waits;
} client;

struct waiter {
  waiter* next;
  client* c;        /* NULL once the client has gone */
  vow_promise_t* p; /* the joined promise (borrowed), until it settles */
  int64_t* ids;
  size_t nids;
};

/* Accepts a connection on the listener (its connection callback). A
 * client of another uid is refused. Each request frame goes to
 * the_daemon.hooks.request. */
void qconn_accept(uv_stream_t* listener, int status);
/* Sends the packed reply in sb (taken over) as one frame: at once, or,
 * when it follows changes not yet committed, after the commit. jobs[0..n):
 * the jobs a submission or restart created (its reply is a refusal if the
 * commit fails), copied; none for other replies. */
void qconn_reply_for(client* c, msgpack_sbuffer* sb, qjob* const* jobs,
                     size_t n);
void qconn_reply(client* c, msgpack_sbuffer* sb);
void qconn_reply_error(client* c, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Closes once what was written has gone out: an error reply reaches the
 * client before the connection ends. Its waits are cancelled. */
void qconn_close(client* c);
/* Sends (committed) or, for submissions rolled back, refuses every reply
 * held for the commit (the_daemon.hooks.committed). */
void qconn_flush_replies(bool committed);

#endif
