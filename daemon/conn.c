/* The daemon's client connections. A client of another uid is refused by
 * its peer credentials (SO_PEERCRED), root included: the socket's mode
 * 0600 does not stop root. A client that sends what is not a frame (one
 * over the limit, one begun and never finished) gets an error and is
 * dropped. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "uv_buf.h"
#include "os.h"

/* Replies waiting for a client that reads nothing: past this it goes. */
#define CLIENT_BACKLOG ((size_t)64 << 20)
/* A client that began a request and sent nothing more for this long. */
#define CLIENT_STALL_MS 10000

/* ---- replies ---------------------------------------------------------- */

typedef struct wreq {
  uv_write_t req;
  char* data;
} wreq;

static void on_written(uv_write_t* req, int status) {
  wreq* w = (wreq*)req;
  (void)status;
  free(w->data);
  free(w);
}

static void write_frame(client* c, char* frame, size_t len) {
  wreq* w;
  uv_buf_t buf;
  if (c == NULL || c->shut_started) {
    free(frame);
    return;
  }
  w = malloc(sizeof(*w));
  if (w == NULL) {
    free(frame);
    qconn_close(c);
    return;
  }
  buf = uv_buf_init(frame, (unsigned)len);
  w->data = frame;
  if (uv_write(&w->req, (uv_stream_t*)&c->pipe, &buf, 1, on_written) != 0) {
    free(frame);
    free(w);
    qconn_close(c);
    return;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t*)&c->pipe) > CLIENT_BACKLOG)
    qconn_close(c);
}

/* Sends the packed reply in sb (taken over) as one frame: at once, or,
 * when it follows changes not yet committed, after the commit. job: the
 * job a submission created, or NULL. */
void qconn_reply_for(client* c, msgpack_sbuffer* sb, qjob* const* jobs,
                     size_t n) {
  char* frame;
  size_t len = sb->size + 4;
  if (c->closing) {
    msgpack_sbuffer_destroy(sb);
    return;
  }
  if (sb->size > VOW_QUEUE_MAX_FRAME) {
    /* Never dropped without a word: the client is told, not left
     * waiting. (Replies that list jobs are paged and never get here.) */
    size_t size = sb->size;
    msgpack_sbuffer_destroy(sb);
    qconn_reply_error(c,
                      "the reply would take %zu bytes, more than a frame "
                      "may (%zu)",
                      size, VOW_QUEUE_MAX_FRAME);
    return;
  }
  frame = malloc(len);
  if (frame == NULL) {
    msgpack_sbuffer_destroy(sb);
    qconn_close(c);
    return;
  }
  vowp_write_be32((unsigned char*)frame, (uint32_t)sb->size);
  memcpy(frame + 4, sb->data, sb->size);
  msgpack_sbuffer_destroy(sb);
  if (qdb_in_txn(the_daemon.db) || the_daemon.pending_head != NULL) {
    pending* p = calloc(1, sizeof(*p));
    if (p != NULL && n > 0 && (p->jobs = malloc(n * sizeof(qjob*))) == NULL) {
      free(p);
      p = NULL;
    }
    if (p == NULL) {
      free(frame);
      qconn_close(c);
      return;
    }
    p->c = c;
    if (n > 0)
      memcpy(p->jobs, jobs, n * sizeof(qjob*));
    p->njobs = n;
    p->frame = frame;
    p->len = len;
    c->npending++;
    if (the_daemon.pending_tail)
      the_daemon.pending_tail->next = p;
    else
      the_daemon.pending_head = p;
    the_daemon.pending_tail = p;
    return;
  }
  write_frame(c, frame, len);
}

void qconn_reply(client* c, msgpack_sbuffer* sb) {
  qconn_reply_for(c, sb, NULL, 0);
}

static void start_shutdown(client* c);

void qconn_flush_replies(bool ok) {
  pending* p = the_daemon.pending_head;
  the_daemon.pending_head = the_daemon.pending_tail = NULL;
  while (p != NULL) {
    pending* next = p->next;
    client* c = p->c;
    if (!ok && p->njobs > 0) {
      free(p->frame); /* run.c has forgotten the jobs */
      if (p->c != NULL)
        qconn_reply_error(p->c, "the job was not accepted: %s",
                          qdb_error(the_daemon.db));
    } else {
      write_frame(p->c, p->frame, p->len);
    }
    free(p->jobs);
    free(p);
    p = next;
    if (c != NULL && --c->npending == 0 && c->close_after_flush)
      start_shutdown(c);
  }
}

void qconn_reply_error(client* c, const char* fmt, ...) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  qw_pack_str(&pk, "ok");
  msgpack_pack_false(&pk);
  qw_pack_kv_str(&pk, "error", text);
  qconn_reply(c, &sb);
}
/* ---- clients ---------------------------------------------------------- */

static void on_client_closed(uv_handle_t* h) {
  client* c = h->data;
  client** at;
  pending* p;
  if (--c->open_handles > 0)
    return;
  for (p = the_daemon.pending_head; p != NULL; p = p->next)
    if (p->c == c)
      p->c = NULL;
  for (at = &the_daemon.clients; *at != NULL; at = &(*at)->next)
    if (*at == c) {
      *at = c->next;
      break;
    }
  if (c->refusing)
    the_daemon.nrefusing--;
  else
    the_daemon.nclients--;
  vowp_decoder_destroy(&c->dec);
  free(c);
  /* A connection left waiting (accept_later) takes the place freed. */
  if (the_daemon.accept_paused &&
      !uv_is_closing((uv_handle_t*)&the_daemon.listener)) {
    the_daemon.accept_paused = false;
    qconn_accept((uv_stream_t*)&the_daemon.listener, 0);
  }
}

static void close_handles(client* c) {
  uv_close((uv_handle_t*)&c->stall, on_client_closed);
  uv_close((uv_handle_t*)&c->pipe, on_client_closed);
}

static void on_client_shut(uv_shutdown_t* req, int status) {
  client* c = req->data;
  (void)status;
  close_handles(c);
}

/* Closes once what was written has gone out: an error reply reaches the
 * client before the connection ends. */
void qconn_close(client* c) {
  waiter* w;
  if (c->closing)
    return;
  c->closing = true;
  /* Its waits go: each is a join of branches, so cancelling it leaves
   * the jobs alone; on_waited frees the waiter. */
  for (w = c->waits; w != NULL; w = w->next) {
    w->c = NULL;
    if (w->p != NULL)
      vow_cancel(w->p);
  }
  c->waits = NULL;
  uv_read_stop((uv_stream_t*)&c->pipe);
  uv_timer_stop(&c->stall);
  if (c->npending > 0)
    c->close_after_flush = true; /* its last replies wait for the commit */
  else
    start_shutdown(c);
}

static void start_shutdown(client* c) {
  if (c->shut_started)
    return;
  c->shut_started = true;
  c->shut.data = c;
  if (uv_shutdown(&c->shut, (uv_stream_t*)&c->pipe, on_client_shut) != 0)
    close_handles(c);
}

static void on_client_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  client* c = h->data;
  (void)suggested;
  *buf = vowp_decoder_uv_buf(&c->dec);
}

static void on_client_stall(uv_timer_t* t) {
  client* c = t->data;
  qconn_reply_error(c, "a request began and stopped for %d s",
                    CLIENT_STALL_MS / 1000);
  qconn_close(c);
}

/* A connection that asks nothing and waits on nothing holds a descriptor
 * for no one: it goes after --idle-timeout. A wait may last hours and is
 * not idle; nor is a client with replies still to come. */
static void on_client_idle(uv_timer_t* t) {
  client* c = t->data;
  if (c->waits != NULL || c->npending > 0) {
    uv_timer_start(&c->stall, on_client_idle, the_daemon.idle_ms, 0);
    return;
  }
  qconn_reply_error(c, "closed: idle for %.3g s", the_daemon.idle_ms / 1000.0);
  qconn_close(c);
}

static void watch_idle(client* c) {
  if (the_daemon.idle_ms > 0)
    uv_timer_start(&c->stall, on_client_idle, the_daemon.idle_ms, 0);
}

static void on_client_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  client* c = s->data;
  vowp_slice payload;
  int rc;
  (void)buf;
  if (n < 0) {
    if ((n == UV_EOF && vowp_decoder_finish(&c->dec) != 0) ||
        vowp_decoder_error(&c->dec)->code != VOWP_OK)
      qconn_reply_error(c, "bad request: %s",
                        vowp_decoder_error(&c->dec)->text);
    qconn_close(c);
    return;
  }
  vowp_decoder_commit(&c->dec, (size_t)n);
  while (!c->closing && (rc = vowp_decoder_next_frame(&c->dec, &payload)) == 1)
    the_daemon.hooks.request(c, payload.data, payload.len);
  if (!c->closing && rc < 0) {
    qconn_reply_error(c, "bad request: %s", vowp_decoder_error(&c->dec)->text);
    qconn_close(c);
  }
  if (!c->closing) {
    /* Idle between requests is fine (a wait may last hours); stopping
     * inside one is not. */
    if (vowp_decoder_partial(&c->dec) > 0)
      uv_timer_start(&c->stall, on_client_stall, CLIENT_STALL_MS, 0);
    else
      watch_idle(c);
  }
}

/* A connection we have no memory for is accepted into this and closed
 * at once: one left unaccepted would stop libuv listening for good. */
static uv_pipe_t refused;
static bool refused_busy, refused_pending;

static void on_refused_closed(uv_handle_t* h) {
  (void)h;
  refused_busy = false;
  if (refused_pending) {
    refused_pending = false;
    qconn_accept((uv_stream_t*)&the_daemon.listener, 0);
  }
}

static void refuse_connection(uv_stream_t* server) {
  if (refused_busy) {
    refused_pending = true; /* taken when the last one is closed */
    return;
  }
  if (uv_pipe_init(the_daemon.loop, &refused, 0) != 0)
    return;
  refused_busy = true;
  if (uv_accept(server, (uv_stream_t*)&refused) == 0)
    qd_log("refused a client: out of memory");
  uv_close((uv_handle_t*)&refused, on_refused_closed);
}

/* Connections being refused at once, each holding a descriptor until its
 * reason is out: past this many, the next connection waits unaccepted
 * (in the kernel's backlog) until one has closed. */
#define REFUSING_MAX 8

void qconn_accept(uv_stream_t* server, int status) {
  client* c;
  uid_t uid = (uid_t)-1;
  pid_t pid = 0;
  uv_os_fd_t fd;
  vowp_limits lim = {VOW_QUEUE_MAX_FRAME, 0, 0};
  if (status != 0)
    return;
  if (the_daemon.nclients >= the_daemon.max_clients &&
      the_daemon.nrefusing >= REFUSING_MAX) {
    /* Not accepted: libuv waits for the next uv_accept, on_client_closed
     * calls us again. */
    the_daemon.accept_paused = true;
    return;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    refuse_connection(server);
    return;
  }
  uv_pipe_init(the_daemon.loop, &c->pipe, 0);
  c->pipe.data = c;
  uv_timer_init(the_daemon.loop, &c->stall);
  c->stall.data = c;
  c->open_handles = 2;
  vowp_decoder_init(&c->dec, &lim);
  c->next = the_daemon.clients;
  the_daemon.clients = c;
  /* The descriptors the jobs, their output and the database need are
   * kept: past the limit a connection is told why and closed. */
  c->refusing = the_daemon.nclients >= the_daemon.max_clients;
  if (c->refusing)
    the_daemon.nrefusing++;
  else
    the_daemon.nclients++;
  if (uv_accept(server, (uv_stream_t*)&c->pipe) != 0) {
    qconn_close(c);
    return;
  }
  if (c->refusing) {
    qconn_reply_error(c,
                      "refused: too many connections (%zu, the limit for "
                      "this daemon's %zu descriptors)",
                      the_daemon.max_clients, the_daemon.max_fds);
    qconn_close(c);
    return;
  }
  if (uv_fileno((uv_handle_t*)&c->pipe, &fd) != 0 ||
      vow__os_peer_uid(fd, &uid, &pid) != 0 || uid != geteuid()) {
    qd_log("refused a client of uid %d (pid %d): this daemon serves uid %d",
           (int)uid, (int)pid, (int)geteuid());
    qconn_reply_error(c, "refused: uid %d is not this daemon's uid %d",
                      (int)uid, (int)geteuid());
    qconn_close(c);
    return;
  }
  uv_read_start((uv_stream_t*)&c->pipe, on_client_alloc, on_client_read);
  watch_idle(c);
}
