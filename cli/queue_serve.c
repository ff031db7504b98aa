/* vow serve: the job queue's daemon. One libuv loop: client connections
 * are I/O on it, command jobs are child processes, task-function jobs run
 * on a worker pool, and `vow wait` is a promise (a branch of each job's
 * "ended" promise, joined with vow_all or vow_first_settled).
 *
 * A client of another uid is refused by its peer credentials
 * (SO_PEERCRED), root included: the socket's mode 0600 does not stop
 * root. A client that sends what is not a request (bad msgpack, a frame
 * over the limit, an unknown op) gets an error and is dropped. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "proto.h"
#include "uv_buf.h"
#include "queue_daemon.h"

/* Replies waiting for a client that reads nothing: past this it goes. */
#define CLIENT_BACKLOG ((size_t)64 << 20)
/* A client that began a request and sent nothing more for this long. */
#define CLIENT_STALL_MS 10000

typedef struct waiter waiter;

typedef struct client {
  struct client* next;
  uv_pipe_t pipe;
  uv_shutdown_t shut;
  uv_timer_t stall; /* runs while a request is half received */
  int open_handles;
  int npending;           /* replies held for the commit */
  bool close_after_flush; /* closed with replies still held */
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

static void close_client(client* c);

/* A reply held until the changes it speaks of are committed. */
typedef struct pending {
  struct pending* next;
  client* c;   /* NULL once the client has gone */
  qjob* job;   /* a submission's job: refused if the commit fails */
  char* frame; /* header and payload */
  size_t len;
} pending;

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
    close_client(c);
    return;
  }
  buf = uv_buf_init(frame, (unsigned)len);
  w->data = frame;
  if (uv_write(&w->req, (uv_stream_t*)&c->pipe, &buf, 1, on_written) != 0) {
    free(frame);
    free(w);
    close_client(c);
    return;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t*)&c->pipe) > CLIENT_BACKLOG)
    close_client(c);
}

/* Sends the packed reply in sb (taken over) as one frame: at once, or,
 * when it follows changes not yet committed, after the commit. job: the
 * job a submission created, or NULL. */
static void send_reply_for(client* c, msgpack_sbuffer* sb, qjob* job) {
  char* frame;
  size_t len = sb->size + 4;
  if (c->closing || sb->size > VOW_QUEUE_MAX_FRAME) {
    msgpack_sbuffer_destroy(sb);
    return;
  }
  frame = malloc(len);
  if (frame == NULL) {
    msgpack_sbuffer_destroy(sb);
    close_client(c);
    return;
  }
  frame[0] = (char)(sb->size >> 24);
  frame[1] = (char)(sb->size >> 16);
  frame[2] = (char)(sb->size >> 8);
  frame[3] = (char)sb->size;
  memcpy(frame + 4, sb->data, sb->size);
  msgpack_sbuffer_destroy(sb);
  if (qdb_in_txn(D.db) || D.pending_head != NULL) {
    pending* p = calloc(1, sizeof(*p));
    if (p == NULL) {
      free(frame);
      close_client(c);
      return;
    }
    p->c = c;
    p->job = job;
    p->frame = frame;
    p->len = len;
    c->npending++;
    if (D.pending_tail)
      D.pending_tail->next = p;
    else
      D.pending_head = p;
    D.pending_tail = p;
    return;
  }
  write_frame(c, frame, len);
}

static void send_reply(client* c, msgpack_sbuffer* sb) {
  send_reply_for(c, sb, NULL);
}

static void reply_error(client* c, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void start_shutdown(client* c);

void qd_flush_replies(bool ok) {
  pending* p = D.pending_head;
  D.pending_head = D.pending_tail = NULL;
  while (p != NULL) {
    pending* next = p->next;
    client* c = p->c;
    if (!ok && p->job != NULL) {
      free(p->frame);
      qd_forget(p->job);
      if (p->c != NULL)
        reply_error(p->c, "the job was not accepted: %s", qdb_error(D.db));
    } else {
      write_frame(p->c, p->frame, p->len);
    }
    free(p);
    p = next;
    if (c != NULL && --c->npending == 0 && c->close_after_flush)
      start_shutdown(c);
  }
}

static void reply_error(client* c, const char* fmt, ...) {
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
  send_reply(c, &sb);
}

static void begin_ok(msgpack_sbuffer* sb, msgpack_packer* pk, size_t more) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(pk, 1 + more);
  qw_pack_str(pk, "ok");
  msgpack_pack_true(pk);
}

/* Its dependencies that have not ended yet. */
static size_t pack_waiting_on(msgpack_packer* pk, const qjob* j, bool pack) {
  size_t i, n = 0;
  for (i = 0; i < j->nafter; i++) {
    qjob* d = qd_job(j->after[i]);
    if (d != NULL && !qstate_final(d->state)) {
      if (pack)
        msgpack_pack_int64(pk, d->id);
      n++;
    }
  }
  return n;
}

static void pack_job(msgpack_packer* pk, int64_t id) {
  const qjob* j = qd_job(id);
  vbuf cmd = {0};
  if (j == NULL) {
    /* Removed (vow remove, vow clean) while someone waited on it. */
    msgpack_pack_map(pk, 3);
    qw_pack_kv_int(pk, "id", id);
    qw_pack_kv_str(pk, "state", "removed");
    qw_pack_kv_int(pk, "status", 125);
    return;
  }
  qjob_command(j, &cmd);
  msgpack_pack_map(pk, 17);
  qw_pack_kv_int(pk, "id", j->id);
  qw_pack_kv_str(pk, "name", j->name);
  qw_pack_kv_str(pk, "group", j->grp ? j->grp->name : QD_DEFAULT_GROUP);
  qw_pack_kv_str(pk, "state", qstate_name(j->state));
  qw_pack_kv_int(pk, "status", qstate_final(j->state) ? qjob_status(j) : -1);
  qw_pack_kv_int(pk, "exit", j->exit_status);
  qw_pack_kv_int(pk, "signal", j->term_signal);
  qw_pack_kv_int(pk, "priority", j->priority);
  qw_pack_kv_int(pk, "attempts", j->attempts);
  qw_pack_kv_str(pk, "command", cmd.data ? cmd.data : "");
  qw_pack_kv_str(pk, "error", j->error);
  qw_pack_kv_str(pk, "result", j->result);
  qw_pack_str(pk, "submitted");
  msgpack_pack_double(pk, j->submitted);
  qw_pack_str(pk, "started");
  msgpack_pack_double(pk, j->started);
  qw_pack_str(pk, "ended");
  msgpack_pack_double(pk, j->ended);
  qw_pack_kv_int(pk, "pgid", j->state == QS_RUNNING ? j->pgid : 0);
  qw_pack_str(pk, "waiting_on");
  msgpack_pack_array(pk,
                     j->state == QS_QUEUED ? pack_waiting_on(pk, j, false) : 0);
  if (j->state == QS_QUEUED)
    pack_waiting_on(pk, j, true);
  vbuf_free(&cmd);
}

/* ---- requests --------------------------------------------------------- */

/* A copy of an array of strings, or NULL when o is not one (or is empty
 * and must not be); *nomem says when NULL means out of memory instead. */
static char** strv_from(const msgpack_object* o, bool nonempty, bool* nomem) {
  char** v;
  uint32_t i;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY ||
      (nonempty && o->via.array.size == 0))
    return NULL;
  v = calloc(o->via.array.size + 1, sizeof(char*));
  if (v == NULL) {
    *nomem = true;
    return NULL;
  }
  for (i = 0; i < o->via.array.size; i++) {
    const msgpack_object* s = &o->via.array.ptr[i];
    bool bad = s->type != MSGPACK_OBJECT_STR ||
               memchr(s->via.str.ptr, '\0', s->via.str.size) != NULL;
    if (!bad && (v[i] = strndup(s->via.str.ptr, s->via.str.size)) == NULL)
      *nomem = bad = true;
    if (bad) {
      uint32_t k;
      for (k = 0; k < i; k++)
        free(v[k]);
      free(v);
      return NULL;
    }
  }
  return v;
}

/* The ids in the array o, each one a known job; NULL after an error
 * reply. */
static int64_t* ids_from(client* c, const msgpack_object* o, size_t* n,
                         bool allow_empty) {
  int64_t* ids;
  uint32_t i;
  *n = 0;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY ||
      (!allow_empty && o->via.array.size == 0)) {
    reply_error(c, "the request needs \"ids\", an array of job ids");
    return NULL;
  }
  ids = calloc(o->via.array.size + 1, sizeof(int64_t));
  if (ids == NULL) {
    reply_error(c, "out of memory");
    return NULL;
  }
  for (i = 0; i < o->via.array.size; i++) {
    const msgpack_object* e = &o->via.array.ptr[i];
    if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 > INT64_MAX ||
        qd_job((int64_t)e->via.u64) == NULL) {
      if (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        reply_error(c, "there is no job %llu", (unsigned long long)e->via.u64);
      else
        reply_error(c, "job ids are positive integers");
      free(ids);
      return NULL;
    }
    ids[(*n)++] = (int64_t)e->via.u64;
  }
  return ids;
}

static int64_t* request_ids(client* c, const msgpack_object* req, size_t* n,
                            bool allow_empty) {
  return ids_from(c, qw_get(req, "ids"), n, allow_empty);
}

static void op_submit(client* c, const msgpack_object* req) {
  qjob* j = calloc(1, sizeof(*j));
  const msgpack_object* after = qw_get(req, "after");
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int64_t v;
  double t;
  if (j == NULL) {
    reply_error(c, "out of memory");
    return;
  }
  if (D.draining || D.stopping) {
    reply_error(c, "the daemon is shutting down and takes no new jobs");
    goto refuse;
  }
  j->name = qw_get_str(req, "name");
  j->group = qw_get_str(req, "group");
  if (j->group != NULL && (j->group[0] == '\0' || strlen(j->group) > 64 ||
                           strcmp(j->group, QD_DEFAULT_GROUP) == 0)) {
    if (j->group[0] != '\0' && strlen(j->group) > 64) {
      reply_error(c, "a group's name is at most 64 bytes");
      goto refuse;
    }
    free(j->group);
    j->group = NULL;
  }
  j->kind = qw_get_bool(req, "map") ? 1 : 0;
  if (j->kind == 0) {
    bool nomem = false;
    j->argv = strv_from(qw_get(req, "argv"), true, &nomem);
    j->env = strv_from(qw_get(req, "env"), false, &nomem);
    j->cwd = qw_get_str(req, "cwd");
    if (nomem) {
      reply_error(c, "out of memory");
      goto refuse;
    }
    if (j->argv == NULL) {
      reply_error(c, "a job needs \"argv\", a non-empty array of strings");
      goto refuse;
    }
    if (j->cwd == NULL || j->cwd[0] != '/') {
      reply_error(c, "a job needs \"cwd\", an absolute directory");
      goto refuse;
    }
  } else {
    vbuf packed = {0};
    char err[256];
    j->lib = qw_get_str(req, "lib");
    j->fn = qw_get_str(req, "fn");
    j->arg_json = qw_get_str(req, "arg");
    if (j->lib == NULL || j->fn == NULL || j->arg_json == NULL) {
      reply_error(c, "a task-function job needs \"lib\", \"fn\" and \"arg\"");
      goto refuse;
    }
    if (vow_json_to_msgpack(j->arg_json, strlen(j->arg_json), &packed, err,
                            sizeof(err)) != 0) {
      vbuf_free(&packed);
      reply_error(c, "the argument is not JSON: %s", err);
      goto refuse;
    }
    vbuf_free(&packed);
  }
  if (qw_get_int(req, "priority", &v))
    j->priority = v;
  if (qw_get_double(req, "timeout", &t)) {
    if (t < 0 || t > 1e9) {
      reply_error(c, "the timeout must be between 0 and 1e9 seconds");
      goto refuse;
    }
    j->timeout_s = t;
  }
  if (qw_get_int(req, "retries", &v)) {
    if (v < 0 || v > 1000) {
      reply_error(c, "retries must be between 0 and 1000");
      goto refuse;
    }
    j->retries = v;
  }
  if (after != NULL &&
      (j->after = ids_from(c, after, &j->nafter, true)) == NULL)
    goto refuse;
  j->state = QS_QUEUED;
  j->submitted = qd_now();
  if (qdb_insert(D.db, j) != 0) {
    reply_error(c, "the job was not accepted: %s", qdb_error(D.db));
    goto refuse;
  }
  qd_add(j);
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, "id", j->id);
  send_reply_for(c, &sb, j);
  qd_schedule();
  return;
refuse:
  qjob_free(j);
}

static void op_status(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n = 0, i, queued = qd_nready() + D.nwaiting;
  int64_t* ids = NULL;
  if (qw_get(req, "ids") != NULL &&
      (ids = request_ids(c, req, &n, true)) == NULL)
    return;
  begin_ok(&sb, &pk, 6);
  qw_pack_str(&pk, "paused");
  if (D.paused)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  qw_pack_kv_int(&pk, "running", (int64_t)D.nrunning);
  qw_pack_kv_int(&pk, "queued", (int64_t)queued);
  qw_pack_kv_int(&pk, "pid", (int64_t)getpid());
  qw_pack_str(&pk, "groups");
  msgpack_pack_array(&pk, D.ngroups);
  for (i = 0; i < D.ngroups; i++) {
    const qgroup* g = D.groups[i];
    msgpack_pack_map(&pk, 5);
    qw_pack_kv_str(&pk, "name", g->name);
    qw_pack_kv_int(&pk, "slots", g->slots);
    qw_pack_kv_int(&pk, "running", (int64_t)g->nrunning);
    qw_pack_kv_int(&pk, "ready", (int64_t)g->ready.n);
    qw_pack_str(&pk, "paused");
    if (g->paused)
      msgpack_pack_true(&pk);
    else
      msgpack_pack_false(&pk);
  }
  qw_pack_str(&pk, "jobs");
  if (ids != NULL && n > 0) {
    msgpack_pack_array(&pk, n);
    for (i = 0; i < n; i++)
      pack_job(&pk, ids[i]);
  } else {
    int64_t id;
    size_t count = 0;
    for (id = 1; id <= D.max_id; id++)
      count += D.jobs[id] != NULL;
    msgpack_pack_array(&pk, count);
    for (id = 1; id <= D.max_id; id++)
      if (D.jobs[id] != NULL)
        pack_job(&pk, id);
  }
  free(ids);
  send_reply(c, &sb);
}

static void drop_waiter(waiter* w) {
  waiter** at;
  if (w->c != NULL)
    for (at = &w->c->waits; *at != NULL; at = &(*at)->next)
      if (*at == w) {
        *at = w->next;
        break;
      }
  free(w->ids);
  free(w);
}

static vow_outcome_t on_waited(vow_value_t* v, vow_failure_t* f, void* data) {
  waiter* w = data;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t i;
  vow_value_release(v);
  w->p = NULL;
  if (f != NULL || w->c == NULL) {
    /* Cancelled: the client went away. */
    vow_failure_release(f);
    drop_waiter(w);
    return vow_ok(NULL);
  }
  begin_ok(&sb, &pk, 1);
  qw_pack_str(&pk, "jobs");
  msgpack_pack_array(&pk, w->nids);
  for (i = 0; i < w->nids; i++)
    pack_job(&pk, w->ids[i]);
  send_reply(w->c, &sb);
  drop_waiter(w);
  return vow_ok(NULL);
}

static void op_wait(client* c, const msgpack_object* req) {
  waiter* w = calloc(1, sizeof(*w));
  vow_promise_t** ps;
  size_t i;
  if (w == NULL || (w->ids = request_ids(c, req, &w->nids, false)) == NULL) {
    free(w);
    return;
  }
  ps = calloc(w->nids, sizeof(*ps));
  if (ps == NULL) {
    free(w->ids);
    free(w);
    reply_error(c, "out of memory");
    return;
  }
  for (i = 0; i < w->nids; i++)
    ps[i] = qd_ended(qd_job(w->ids[i]));
  w->c = c;
  w->next = c->waits;
  c->waits = w;
  w->p = qw_get_bool(req, "any") ? vow_first_settled(D.ctx, ps, w->nids)
                                 : vow_all(D.ctx, ps, w->nids);
  free(ps);
  /* A pending promise lives until it settles: w may keep the pointer
   * (to cancel it) until on_waited runs. */
  vow_promise_release(vow_add_both(w->p, on_waited, w));
}

static void op_output(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n;
  int64_t* ids = request_ids(c, req, &n, false);
  char out[192], err[192];
  qjob* j;
  if (ids == NULL)
    return;
  j = qd_job(ids[0]);
  free(ids);
  if (j->kind == 1) {
    begin_ok(&sb, &pk, 2);
    qw_pack_kv_str(&pk, "state", qstate_name(j->state));
    qw_pack_kv_str(&pk, "result", j->result ? j->result : j->error);
    send_reply(c, &sb);
    return;
  }
  snprintf(out, sizeof(out), "%s/%lld.out", D.paths.out, (long long)j->id);
  snprintf(err, sizeof(err), "%s/%lld.err", D.paths.out, (long long)j->id);
  begin_ok(&sb, &pk, 3);
  qw_pack_kv_str(&pk, "state", qstate_name(j->state));
  qw_pack_kv_str(&pk, "out", out);
  qw_pack_kv_str(&pk, "err", err);
  send_reply(c, &sb);
}

static void op_cancel(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n, i, done = 0;
  int64_t* ids = request_ids(c, req, &n, false);
  if (ids == NULL)
    return;
  for (i = 0; i < n; i++) {
    qjob* j = qd_job(ids[i]);
    if (qstate_final(j->state))
      continue;
    qd_cancel(j, "cancelled by vow cancel");
    done++;
  }
  free(ids);
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, "cancelled", (int64_t)done);
  send_reply(c, &sb);
}

/* The group a request names ("group"), or NULL for none (after an error
 * reply when it names one that does not exist and create is not set). */
static qgroup* request_group(client* c, const msgpack_object* req, bool create,
                             bool* named) {
  char* name = qw_get_str(req, "group");
  qgroup* g;
  *named = name != NULL;
  if (name == NULL)
    return NULL;
  if (strlen(name) > 64) {
    reply_error(c, "a group's name is at most 64 bytes");
    free(name);
    return NULL;
  }
  g = qd_group(name, create);
  if (g == NULL)
    reply_error(c, "there is no group \"%s\"", name);
  free(name);
  return g;
}

/* vow pause / resume: the whole queue, or one group. Running jobs are
 * stopped (SIGSTOP) and continued with it. */
static void op_pause(client* c, const msgpack_object* req, bool pause) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  bool named;
  qgroup* g = request_group(c, req, false, &named);
  if (named && g == NULL)
    return;
  if (g != NULL) {
    if (qd_set_group(g, g->slots, pause) != 0) {
      reply_error(c, "%s", qdb_error(D.db));
      return;
    }
  } else {
    if (qdb_set_paused(D.db, pause) != 0) {
      reply_error(c, "%s", qdb_error(D.db));
      return;
    }
    D.paused = pause;
  }
  /* A group's jobs stay stopped while the whole queue is paused. */
  if (pause || !D.paused)
    qd_signal_running(pause ? SIGSTOP : SIGCONT, g);
  if (!pause)
    qd_schedule();
  begin_ok(&sb, &pk, 0);
  send_reply(c, &sb);
}

/* vow parallel N [--group G]: a group's slots, now and after restarts. */
static void op_parallel(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int64_t slots = 0;
  bool named;
  qgroup* g = request_group(c, req, true, &named);
  if (named && g == NULL)
    return;
  if (g == NULL)
    g = D.groups[0];
  if (!qw_get_int(req, "slots", &slots) || slots < 1 || slots > (1 << 16)) {
    reply_error(c, "slots must be a number from 1 to 65536");
    return;
  }
  if (qd_set_group(g, (unsigned)slots, g->paused) != 0) {
    reply_error(c, "%s", qdb_error(D.db));
    return;
  }
  qd_log("group %s: %u slots", g->name, g->slots);
  qd_schedule();
  begin_ok(&sb, &pk, 0);
  send_reply(c, &sb);
}

/* vow remove ID...: jobs that have ended, or are queued, leave the list
 * (and the database, and their output). A running job is refused. */
static void op_remove(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n, i, removed = 0;
  int64_t* ids = request_ids(c, req, &n, false);
  if (ids == NULL)
    return;
  for (i = 0; i < n; i++) {
    qjob* j = qd_job(ids[i]);
    if (j != NULL && j->state == QS_RUNNING) {
      reply_error(c, "job %lld is running: vow cancel it first",
                  (long long)j->id);
      free(ids);
      return;
    }
  }
  for (i = 0; i < n; i++) {
    qjob* j = qd_job(ids[i]);
    if (j != NULL) { /* named twice */
      qd_remove(j);
      removed++;
    }
  }
  free(ids);
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, "removed", (int64_t)removed);
  send_reply(c, &sb);
}

/* vow clean: every job that has ended (with "successful", those that
 * succeeded), in every group or in one. */
static void op_clean(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  bool only_done = qw_get_bool(req, "successful"), named;
  qgroup* g = request_group(c, req, false, &named);
  int64_t id;
  size_t removed = 0;
  if (named && g == NULL)
    return;
  for (id = 1; id <= D.max_id; id++) {
    qjob* j = D.jobs[id];
    if (j == NULL || !qstate_final(j->state) ||
        (only_done && j->state != QS_DONE) || (g != NULL && j->grp != g))
      continue;
    qd_remove(j);
    removed++;
  }
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, "removed", (int64_t)removed);
  send_reply(c, &sb);
}

/* A new queued job made from j: same command, place, environment,
 * group, name, priority, timeout and retries. */
static qjob* copy_job(const qjob* j) {
  qjob* n = calloc(1, sizeof(*n));
  size_t k, len;
  if (n == NULL)
    return NULL;
  n->name = j->name ? strdup(j->name) : NULL;
  n->group = j->group ? strdup(j->group) : NULL;
  n->kind = j->kind;
  for (k = 0; k < 2; k++) {
    char** from = k == 0 ? j->argv : j->env;
    char** to;
    for (len = 0; from != NULL && from[len] != NULL; len++) {
    }
    if (from == NULL)
      continue;
    to = calloc(len + 1, sizeof(char*));
    for (len = 0; to != NULL && from[len] != NULL; len++)
      to[len] = strdup(from[len]);
    if (k == 0)
      n->argv = to;
    else
      n->env = to;
  }
  n->cwd = j->cwd ? strdup(j->cwd) : NULL;
  n->lib = j->lib ? strdup(j->lib) : NULL;
  n->fn = j->fn ? strdup(j->fn) : NULL;
  n->arg_json = j->arg_json ? strdup(j->arg_json) : NULL;
  n->priority = j->priority;
  n->timeout_s = j->timeout_s;
  n->retries = j->retries;
  n->state = QS_QUEUED;
  n->submitted = qd_now();
  return n;
}

/* vow restart ID: a job that has ended runs again, as a new job (its id
 * in the reply, once committed); the old one keeps its result. The
 * client sends one request a job. */
static void op_restart(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n;
  int64_t* ids = request_ids(c, req, &n, false);
  qjob* old;
  qjob* j;
  if (ids == NULL)
    return;
  old = qd_job(ids[0]);
  free(ids);
  if (n != 1) {
    reply_error(c, "restart takes one job a request");
    return;
  }
  if (!qstate_final(old->state)) {
    reply_error(c, "job %lld is %s: only a job that has ended restarts",
                (long long)old->id, qstate_name(old->state));
    return;
  }
  if (D.draining || D.stopping) {
    reply_error(c, "the daemon is shutting down and takes no new jobs");
    return;
  }
  j = copy_job(old);
  if (j == NULL || qdb_insert(D.db, j) != 0) {
    reply_error(c, "the job was not accepted: %s",
                j ? qdb_error(D.db) : "out of memory");
    qjob_free(j);
    return;
  }
  qd_add(j);
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, "id", j->id);
  send_reply_for(c, &sb, j);
  qd_schedule();
}

static void stop_serving(void);

static void op_shutdown(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  begin_ok(&sb, &pk, 0);
  send_reply(c, &sb);
  if (qw_get_bool(req, "drain")) {
    D.draining = true;
    qd_log(
        "draining: no new jobs; stopping once %zu running and %zu "
        "queued are done",
        D.nrunning, qd_nready() + D.nwaiting);
    qd_maybe_drained();
  } else {
    qd_log("shutting down: %zu running jobs stopped", D.nrunning);
    qd_signal_running(SIGCONT, NULL);
    qd_stop_all();
    if (D.nrunning == 0)
      stop_serving();
  }
}

void qd_maybe_drained(void) {
  if (D.stopping && D.nrunning == 0) {
    stop_serving();
    return;
  }
  if (D.draining && D.nrunning == 0 && qd_nready() == 0 && D.nwaiting == 0) {
    D.stopping = true;
    stop_serving();
  }
}

static void handle(client* c, const char* data, size_t len) {
  msgpack_unpacked u;
  const msgpack_object* req;
  char* op = NULL;
  int64_t v = 0;
  msgpack_unpacked_init(&u);
  /* The pre-scan has bounded every count by the bytes present, so
   * unpacking allocates at most a few times the frame. */
  if (msgpack_unpack_next(&u, data, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
      u.data.type != MSGPACK_OBJECT_MAP) {
    reply_error(c, "a request is one msgpack map");
    close_client(c);
    goto out;
  }
  req = &u.data;
  if (!qw_get_int(req, "v", &v) || v != VOW_QUEUE_VERSION) {
    reply_error(c,
                "protocol version %lld is not this daemon's (%d): use the "
                "vow that started it",
                (long long)v, VOW_QUEUE_VERSION);
    close_client(c);
    goto out;
  }
  op = qw_get_str(req, "op");
  if (op == NULL) {
    reply_error(c, "the request has no \"op\"");
    close_client(c);
  } else if (strcmp(op, "submit") == 0) {
    op_submit(c, req);
  } else if (strcmp(op, "status") == 0) {
    op_status(c, req);
  } else if (strcmp(op, "wait") == 0) {
    op_wait(c, req);
  } else if (strcmp(op, "output") == 0) {
    op_output(c, req);
  } else if (strcmp(op, "cancel") == 0) {
    op_cancel(c, req);
  } else if (strcmp(op, "pause") == 0) {
    op_pause(c, req, true);
  } else if (strcmp(op, "resume") == 0) {
    op_pause(c, req, false);
  } else if (strcmp(op, "parallel") == 0) {
    op_parallel(c, req);
  } else if (strcmp(op, "remove") == 0) {
    op_remove(c, req);
  } else if (strcmp(op, "clean") == 0) {
    op_clean(c, req);
  } else if (strcmp(op, "restart") == 0) {
    op_restart(c, req);
  } else if (strcmp(op, "shutdown") == 0) {
    op_shutdown(c, req);
  } else {
    reply_error(c, "unknown op \"%.40s\"", op);
    close_client(c);
  }
out:
  free(op);
  msgpack_unpacked_destroy(&u);
}

/* ---- clients ---------------------------------------------------------- */

static void on_client_closed(uv_handle_t* h) {
  client* c = h->data;
  client** at;
  pending* p;
  if (--c->open_handles > 0)
    return;
  for (p = D.pending_head; p != NULL; p = p->next)
    if (p->c == c)
      p->c = NULL;
  for (at = &D.clients; *at != NULL; at = &(*at)->next)
    if (*at == c) {
      *at = c->next;
      break;
    }
  vowp_decoder_destroy(&c->dec);
  free(c);
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
static void close_client(client* c) {
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
  reply_error(c, "a request began and stopped for %d s",
              CLIENT_STALL_MS / 1000);
  close_client(c);
}

static void on_client_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  client* c = s->data;
  vowp_slice payload;
  int rc;
  (void)buf;
  if (n < 0) {
    if ((n == UV_EOF && vowp_decoder_finish(&c->dec) != 0) ||
        vowp_decoder_error(&c->dec)->code != VOWP_OK)
      reply_error(c, "bad request: %s", vowp_decoder_error(&c->dec)->text);
    close_client(c);
    return;
  }
  vowp_decoder_commit(&c->dec, (size_t)n);
  while (!c->closing && (rc = vowp_decoder_next_frame(&c->dec, &payload)) == 1)
    handle(c, payload.data, payload.len);
  if (!c->closing && rc < 0) {
    reply_error(c, "bad request: %s", vowp_decoder_error(&c->dec)->text);
    close_client(c);
  }
  if (!c->closing) {
    /* Idle between requests is fine (a wait may last hours); stopping
     * inside one is not. */
    if (vowp_decoder_partial(&c->dec) > 0)
      uv_timer_start(&c->stall, on_client_stall, CLIENT_STALL_MS, 0);
    else
      uv_timer_stop(&c->stall);
  }
}

/* A connection we have no memory for is accepted into this and closed
 * at once: one left unaccepted would stop libuv listening for good. */
static uv_pipe_t refused;
static bool refused_busy, refused_pending;

static void on_connection(uv_stream_t* server, int status);

static void on_refused_closed(uv_handle_t* h) {
  (void)h;
  refused_busy = false;
  if (refused_pending) {
    refused_pending = false;
    on_connection((uv_stream_t*)&D.listener, 0);
  }
}

static void refuse_connection(uv_stream_t* server) {
  if (refused_busy) {
    refused_pending = true; /* taken when the last one is closed */
    return;
  }
  if (uv_pipe_init(D.loop, &refused, 0) != 0)
    return;
  refused_busy = true;
  if (uv_accept(server, (uv_stream_t*)&refused) == 0)
    qd_log("refused a client: out of memory");
  uv_close((uv_handle_t*)&refused, on_refused_closed);
}

static void on_connection(uv_stream_t* server, int status) {
  client* c;
  struct ucred cred;
  socklen_t len = sizeof(cred);
  uv_os_fd_t fd;
  vowp_limits lim = {VOW_QUEUE_MAX_FRAME, 0, 0};
  if (status != 0)
    return;
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    refuse_connection(server);
    return;
  }
  uv_pipe_init(D.loop, &c->pipe, 0);
  c->pipe.data = c;
  uv_timer_init(D.loop, &c->stall);
  c->stall.data = c;
  c->open_handles = 2;
  vowp_decoder_init(&c->dec, &lim);
  c->next = D.clients;
  D.clients = c;
  if (uv_accept(server, (uv_stream_t*)&c->pipe) != 0) {
    close_client(c);
    return;
  }
  if (uv_fileno((uv_handle_t*)&c->pipe, &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      cred.uid != geteuid()) {
    qd_log("refused a client of uid %d (pid %d): this daemon serves uid %d",
           (int)cred.uid, (int)cred.pid, (int)geteuid());
    reply_error(c, "refused: uid %d is not this daemon's uid %d", (int)cred.uid,
                (int)geteuid());
    close_client(c);
    return;
  }
  uv_read_start((uv_stream_t*)&c->pipe, on_client_alloc, on_client_read);
}

/* ---- task-function jobs ----------------------------------------------- */

static vow_pool_t* pool_for(const char* lib, char* why, size_t whylen) {
  size_t i;
  vow_pool_options_t o;
  const char* argv[3];
  char* worker;
  vow_pool_t* pool;
  vow_pool_t** pools;
  char** libs;
  int err = 0;
  for (i = 0; i < D.npools; i++)
    if (strcmp(D.pool_libs[i], lib) == 0)
      return D.pools[i];
  worker = vow_cli_find_worker();
  argv[0] = worker;
  argv[1] = lib;
  argv[2] = NULL;
  memset(&o, 0, sizeof(o));
  o.workers = D.groups[0]->slots;
  o.worker_argv = argv;
  pool = vow_pool_new(D.ctx, &o, &err);
  free(worker);
  pools = realloc(D.pools, (D.npools + 1) * sizeof(*pools));
  libs = realloc(D.pool_libs, (D.npools + 1) * sizeof(*libs));
  if (pool == NULL || pools == NULL || libs == NULL) {
    snprintf(why, whylen, "cannot start workers for %s: %s", lib,
             err ? uv_strerror(err) : "out of memory");
    if (pools)
      D.pools = pools;
    if (libs)
      D.pool_libs = libs;
    return NULL;
  }
  D.pools = pools;
  D.pool_libs = libs;
  D.pools[D.npools] = pool;
  D.pool_libs[D.npools++] = strdup(lib);
  return pool;
}

static vow_outcome_t on_task(vow_value_t* v, vow_failure_t* f, void* data) {
  qjob* j = data;
  j->task_p = NULL;
  if (f != NULL) {
    char text[1024];
    vow_failure_describe(f, text, sizeof(text));
    vow_failure_release(f);
    qd_job_ended(j,
                 j->cancel_asked ? QS_CANCELLED
                 : D.stopping    ? QS_INTERRUPTED
                                 : QS_FAILED,
                 text);
  } else {
    size_t len;
    const void* b = vow_value_bytes(v, &len);
    free(j->result);
    j->result = b ? vow_msgpack_to_json(b, len, 0) : NULL;
    vow_value_release(v);
    qd_job_ended(j, QS_DONE, NULL);
  }
  return vow_ok(NULL);
}

void qd_map_start(qjob* j) {
  char why[512];
  vbuf packed = {0};
  char err[256];
  vow_pool_t* pool = pool_for(j->lib, why, sizeof(why));
  vow_promise_t* p;
  if (pool == NULL) {
    qd_job_ended(j, QS_FAILED, why);
    return;
  }
  if (vow_json_to_msgpack(j->arg_json, strlen(j->arg_json), &packed, err,
                          sizeof(err)) != 0) {
    vbuf_free(&packed);
    qd_job_ended(j, QS_FAILED, err);
    return;
  }
  p = vow_pool_submit(pool, j->fn,
                      vow_value_new_msgpack(packed.data, packed.len, NULL));
  vbuf_free(&packed);
  j->task_p = p; /* pending until on_task runs */
  vow_promise_release(vow_add_both(p, on_task, j));
}

/* ---- start and stop --------------------------------------------------- */

static void on_listener_closed(uv_handle_t* h) {
  (void)h;
}

static void stop_serving(void) {
  client* c;
  size_t i;
  if (uv_is_closing((uv_handle_t*)&D.listener))
    return;
  qd_final_commit();
  unlink(D.paths.sock);
  uv_close((uv_handle_t*)&D.listener, on_listener_closed);
  uv_close((uv_handle_t*)&D.committer, NULL);
  for (c = D.clients; c != NULL; c = c->next)
    close_client(c);
  uv_close((uv_handle_t*)&D.sigchld, NULL);
  uv_close((uv_handle_t*)&D.sigterm, NULL);
  uv_close((uv_handle_t*)&D.sigint, NULL);
  if (D.retry_timer.data != NULL)
    uv_close((uv_handle_t*)&D.retry_timer, NULL);
  for (i = 0; i < D.npools; i++)
    vow_promise_release(vow_pool_shutdown(D.pools[i], false));
  qd_log("stopped");
}

static void on_term(uv_signal_t* h, int sig) {
  (void)h;
  qd_log("signal %d: shutting down", sig);
  qd_stop_all();
  qd_maybe_drained();
}

static void read_boot_id(void) {
  FILE* f = fopen("/proc/sys/kernel/random/boot_id", "r");
  size_t n = 0;
  if (f != NULL) {
    n = fread(D.boot_id, 1, sizeof(D.boot_id) - 1, f);
    fclose(f);
  }
  while (n > 0 && (D.boot_id[n - 1] == '\n' || D.boot_id[n - 1] == ' '))
    n--;
  D.boot_id[n] = '\0';
}

static void load_one(qjob* j, void* data) {
  (void)data;
  qd_add(j);
}

static void load_group(const char* name, unsigned slots, bool paused,
                       void* data) {
  qgroup* g = qd_group(name, true);
  /* -j N given to this daemon is the default group's, over what was kept. */
  if (g != D.groups[0] || !*(bool*)data)
    g->slots = slots;
  g->paused = paused;
}

static void usage(FILE* f) {
  fputs(
      "usage: vow serve [--socket PATH] [-j N] [--on-finish CMD] "
      "[--foreground]\n"
      "\n"
      "The job queue's daemon; vow submit starts it when it is not\n"
      "running. Jobs, their states and results live in PATH.db (SQLite),\n"
      "their output in PATH.out/, its log in PATH.log. Its process is\n"
      "named \"vow serve\" (pgrep -x 'vow serve' finds it).\n"
      "\n"
      "  --socket PATH   the socket (default: $VOW_SOCKET, else\n"
      "                  $XDG_RUNTIME_DIR/vow/queue.sock, else\n"
      "                  /tmp/vow-UID/queue.sock)\n"
      "  -j N            the default group's slots (default: CPUs, or what\n"
      "                  vow parallel set last)\n"
      "  --on-finish CMD run CMD through /bin/sh as each job ends, with\n"
      "                  VOW_JOB_ID, _NAME, _GROUP, _STATE, _STATUS,\n"
      "                  _COMMAND, _STDOUT and _STDERR in its environment\n"
      "                  (default: $VOW_ON_FINISH); its output goes to the\n"
      "                  log\n"
      "  --foreground    stay attached, log to stderr\n",
      f);
}

/* Detaches: a new session, stdio to the log, the parent gone, so a
 * shell or test that started us never waits on us. ready_fd (or -1)
 * is written to once we listen. */
static int detach(int* ready_fd) {
  int fds[2], log;
  pid_t pid;
  char c;
  if (pipe(fds) != 0)
    return -1;
  pid = fork();
  if (pid < 0)
    return -1;
  if (pid > 0) {
    /* Our caller's answer: whether the daemon came up. */
    close(fds[1]);
    _exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
  }
  close(fds[0]);
  setsid();
  pid = fork();
  if (pid < 0)
    _exit(1);
  if (pid > 0)
    _exit(0);
  log = open(D.paths.log,
             O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (log >= 0) {
    dup2(log, 1);
    dup2(log, 2);
    close(log);
  }
  {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
      close(devnull);
    }
  }
  *ready_fd = fds[1];
  return 0;
}

/* The socket's place must be ours before anything there is replaced: a
 * --socket or VOW_SOCKET pointing at a user's file must not delete it, and
 * a directory others may write to (without the sticky bit) would let them
 * swap the socket, the lock or the log under us. */
static int check_socket_place(const char* sock, bool user_given) {
  struct stat st;
  if (user_given) {
    char dir[sizeof(D.paths.sock)];
    char* slash;
    snprintf(dir, sizeof(dir), "%s", sock);
    slash = strrchr(dir, '/');
    if (slash == NULL)
      snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
      dir[1] = '\0';
    else
      *slash = '\0';
    if (stat(dir, &st) != 0) {
      vow_cli_error("--socket %s: cannot use its directory %s: %s", sock, dir,
                    strerror(errno));
      return -1;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
      vow_cli_error(
          "--socket %s: its directory %s belongs to uid %u, not to "
          "us (uid %u)",
          sock, dir, (unsigned)st.st_uid, (unsigned)geteuid());
      return -1;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(st.st_mode & S_ISVTX)) {
      vow_cli_error(
          "--socket %s: others may write to its directory %s (mode "
          "%04o) and could replace the socket: use a directory "
          "only you can write to",
          sock, dir, (unsigned)(st.st_mode & 07777));
      return -1;
    }
  }
  if (lstat(sock, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      vow_cli_error("%s exists and is not a socket: refusing to replace it",
                    sock);
      return -1;
    }
    if (st.st_uid != geteuid()) {
      vow_cli_error(
          "%s is a socket of uid %u, not ours: refusing to replace "
          "it",
          sock, (unsigned)st.st_uid);
      return -1;
    }
  } else if (errno != ENOENT) {
    vow_cli_error("cannot look at %s: %s", sock, strerror(errno));
    return -1;
  }
  return 0;
}

int vow_cli_serve(int argc, char** argv) {
  const char* sock = NULL;
  bool foreground = false;
  int i, lock, ready_fd = -1, rc;
  char err[512];
  bool slots_given = false;
  unsigned slots = vow_cli_cpus();
  memset(&D, 0, sizeof(D));
  D.on_finish = getenv("VOW_ON_FINISH");
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      sock = argv[++i];
    } else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
      slots = vow_cli_jobs(argv[++i], 1u << 16);
      slots_given = true;
      if (slots == 0) {
        vow_cli_error("-j %s: not a number of jobs", argv[i]);
        return VOW_EXIT_ERROR;
      }
    } else if (strcmp(argv[i], "--on-finish") == 0 && i + 1 < argc) {
      D.on_finish = argv[++i];
    } else if (strcmp(argv[i], "--foreground") == 0) {
      foreground = true;
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      vow_cli_error("unknown option %s (see vow serve --help)", argv[i]);
      return VOW_EXIT_ERROR;
    }
  }
  if (queue_paths_init(&D.paths, sock) != 0)
    return VOW_EXIT_ERROR;
  if (sock == NULL)
    sock = getenv("VOW_SOCKET");
  if (check_socket_place(D.paths.sock, sock != NULL && *sock != '\0') != 0)
    return VOW_EXIT_ERROR;
  D.job_umask = umask(077);
  /* One daemon per socket: the lock is held for our whole life. Neither
   * it nor the log is followed through a link someone planted. */
  lock = open(D.paths.lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0) {
    vow_cli_error("cannot open %s: %s", D.paths.lock, strerror(errno));
    return VOW_EXIT_ERROR;
  }
  if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
    vow_cli_error("a daemon already serves %s", D.paths.sock);
    return VOW_EXIT_ERROR;
  }
  if (!foreground && detach(&ready_fd) != 0) {
    vow_cli_error("cannot detach: %s", strerror(errno));
    return VOW_EXIT_ERROR;
  }
  /* What ps and pgrep show: "vow serve", not "vow". */
  prctl(PR_SET_NAME, "vow serve", 0, 0, 0);
  if (mkdir(D.paths.out, 0700) != 0 && errno != EEXIST) {
    qd_log("cannot make %s: %s", D.paths.out, strerror(errno));
    return VOW_EXIT_ERROR;
  }
  D.db = qdb_open(D.paths.db, err, sizeof(err));
  if (D.db == NULL) {
    qd_log("%s", err);
    return VOW_EXIT_ERROR;
  }
  read_boot_id();
  D.loop = uv_default_loop();
  D.ctx = vow_ctx_new(D.loop);
  D.paused = qdb_paused(D.db);
  qd_group(QD_DEFAULT_GROUP, true)->slots = slots;
  if (qdb_load_groups(D.db, load_group, &slots_given) != 0)
    qd_log("%s", qdb_error(D.db));
  if (D.on_finish != NULL && *D.on_finish == '\0')
    D.on_finish = NULL;
  if (qdb_load(D.db, load_one, NULL) != 0)
    qd_log("%s", qdb_error(D.db));
  qd_recover();
  uv_pipe_init(D.loop, &D.listener, 0);
  /* A dead daemon's, the lock says; and a socket of ours, checked again
   * now that we hold the lock. */
  if (check_socket_place(D.paths.sock, false) != 0)
    return VOW_EXIT_ERROR;
  unlink(D.paths.sock);
  rc = uv_pipe_bind(&D.listener, D.paths.sock);
  if (rc == 0)
    rc = uv_listen((uv_stream_t*)&D.listener, 511, on_connection);
  if (rc != 0) {
    qd_log("cannot listen on %s: %s", D.paths.sock, uv_strerror(rc));
    return VOW_EXIT_ERROR;
  }
  chmod(D.paths.sock, 0600);
  uv_signal_init(D.loop, &D.sigchld);
  uv_signal_start(&D.sigchld, qd_on_sigchld, SIGCHLD);
  uv_signal_init(D.loop, &D.sigterm);
  uv_signal_start(&D.sigterm, on_term, SIGTERM);
  uv_signal_init(D.loop, &D.sigint);
  uv_signal_start(&D.sigint, on_term, SIGINT);
  qd_log("serving %s (pid %d, %u slots, %lld jobs known%s)", D.paths.sock,
         (int)getpid(), D.groups[0]->slots, (long long)D.max_id,
         D.paused ? ", paused" : "");
  if (ready_fd >= 0) {
    if (write(ready_fd, "r", 1) != 1) {
    }
    close(ready_fd);
  }
  uv_prepare_init(D.loop, &D.committer);
  uv_prepare_start(&D.committer, qd_commit);
  qd_schedule();
  qd_on_sigchld(NULL, SIGCHLD); /* children that ended before we watched */
  vow_ctx_run(D.ctx);
  /* What the last turns recorded (jobs that ended as we stopped). */
  if (qdb_flush(D.db) != 0)
    qd_log("%s", qdb_error(D.db));
  vow_ctx_close(D.ctx);
  qdb_close(D.db);
  /* The lock is not closed here: the kernel drops it as the process
   * exits, after its memory is gone, so a client that waits on the lock
   * ("vow shutdown") returns only once no daemon is left to be seen. */
  (void)lock;
  return 0;
}
