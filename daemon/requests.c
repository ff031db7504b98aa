/* The daemon's requests: one handler per op, each answering through
 * conn.c and acting through run.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "requests.h"
#include "json.h"

static void begin_ok(msgpack_sbuffer* sb, msgpack_packer* pk, size_t more) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(pk, 1 + more);
  qw_pack_str(pk, "ok");
  msgpack_pack_true(pk);
}

/* An ok reply with one count in it. */
static void reply_count(client* c, const char* key, int64_t n) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, key, n);
  qconn_reply(c, &sb);
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

/* A text field of a job as status shows it: whole up to TEXT_SHOWN
 * bytes, else cut there and said so, so that one job (a command of
 * megabytes, quoted) always fits in a page of a reply. */
#define TEXT_SHOWN ((size_t)1 << 20)

static void pack_kv_text(msgpack_packer* pk, const char* key, const char* v,
                         size_t len) {
  char note[64];
  int n;
  qw_pack_str(pk, key);
  if (v == NULL) {
    msgpack_pack_nil(pk);
    return;
  }
  if (len <= TEXT_SHOWN) {
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, v, len);
    return;
  }
  n = snprintf(note, sizeof(note), "... [cut: %zu bytes in all]", len);
  msgpack_pack_str(pk, TEXT_SHOWN + (size_t)n);
  msgpack_pack_str_body(pk, v, TEXT_SHOWN);
  msgpack_pack_str_body(pk, note, (size_t)n);
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
  msgpack_pack_map(pk, 18);
  qw_pack_kv_int(pk, "id", j->id);
  pack_kv_text(pk, "name", j->name, j->name ? strlen(j->name) : 0);
  qw_pack_kv_str(pk, "group", j->grp ? j->grp->name : QD_DEFAULT_GROUP);
  qw_pack_kv_str(pk, "state", qstate_name(j->state));
  qw_pack_kv_int(pk, "status", qstate_final(j->state) ? qjob_status(j) : -1);
  qw_pack_kv_int(pk, "exit", j->exit_status);
  qw_pack_kv_int(pk, "signal", j->term_signal);
  qw_pack_kv_int(pk, "priority", j->priority);
  qw_pack_kv_int(pk, "attempts", j->attempts);
  pack_kv_text(pk, "command", cmd.data ? cmd.data : "", cmd.len);
  pack_kv_text(pk, "error", j->error, j->error ? strlen(j->error) : 0);
  pack_kv_text(pk, "result", j->result, j->result ? strlen(j->result) : 0);
  qw_pack_kv_str(pk, "output_error", j->output_error);
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

/* Replies that list jobs go in pages: frames of about PAGE_BYTES, each a
 * map with "ok", "jobs" and "more" (true but on the last), the first
 * with the reply's other fields too. However many jobs, or however long
 * their commands, no frame passes VOW_QUEUE_MAX_FRAME. */
#define PAGE_BYTES ((size_t)4 << 20)

typedef struct page {
  client* c;
  void (*head)(msgpack_packer* pk, void* data); /* the first page's fields */
  void* head_data;
  size_t nhead;
  bool first;
  msgpack_sbuffer jobs; /* the packed jobs of this page */
  msgpack_packer jpk;
  size_t njobs;
} page;

static void page_init(page* pg, client* c, size_t nhead,
                      void (*head)(msgpack_packer*, void*), void* data) {
  memset(pg, 0, sizeof(*pg));
  pg->c = c;
  pg->nhead = nhead;
  pg->head = head;
  pg->head_data = data;
  pg->first = true;
  msgpack_sbuffer_init(&pg->jobs);
  msgpack_packer_init(&pg->jpk, &pg->jobs, msgpack_sbuffer_write);
}

static void page_send(page* pg, bool more) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3 + (pg->first ? pg->nhead : 0));
  qw_pack_str(&pk, "ok");
  msgpack_pack_true(&pk);
  if (pg->first && pg->head != NULL)
    pg->head(&pk, pg->head_data);
  qw_pack_str(&pk, "jobs");
  msgpack_pack_array(&pk, pg->njobs);
  msgpack_sbuffer_write(&sb, pg->jobs.data, pg->jobs.size);
  qw_pack_str(&pk, "more");
  if (more)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  qconn_reply(pg->c, &sb);
  pg->first = false;
  pg->jobs.size = 0;
  pg->njobs = 0;
}

static void page_add(page* pg, int64_t id) {
  pack_job(&pg->jpk, id);
  pg->njobs++;
  if (pg->jobs.size >= PAGE_BYTES)
    page_send(pg, true);
}

static void page_end(page* pg) {
  page_send(pg, false);
  msgpack_sbuffer_destroy(&pg->jobs);
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
    qconn_reply_error(c, "the request needs \"ids\", an array of job ids");
    return NULL;
  }
  ids = calloc(o->via.array.size + 1, sizeof(int64_t));
  if (ids == NULL) {
    qconn_reply_error(c, "out of memory");
    return NULL;
  }
  for (i = 0; i < o->via.array.size; i++) {
    const msgpack_object* e = &o->via.array.ptr[i];
    if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 > INT64_MAX ||
        qd_job((int64_t)e->via.u64) == NULL) {
      if (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        qconn_reply_error(c, "there is no job %llu",
                          (unsigned long long)e->via.u64);
      else
        qconn_reply_error(c, "job ids are positive integers");
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
    qconn_reply_error(c, "out of memory");
    return;
  }
  if (the_daemon.draining || the_daemon.stopping) {
    qconn_reply_error(c, "the daemon is shutting down and takes no new jobs");
    goto refuse;
  }
  j->name = qw_get_str(req, "name");
  j->group = qw_get_str(req, "group");
  if (j->group != NULL && (j->group[0] == '\0' || strlen(j->group) > 64 ||
                           strcmp(j->group, QD_DEFAULT_GROUP) == 0)) {
    if (j->group[0] != '\0' && strlen(j->group) > 64) {
      qconn_reply_error(c, "a group's name is at most 64 bytes");
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
      qconn_reply_error(c, "out of memory");
      goto refuse;
    }
    if (j->argv == NULL) {
      qconn_reply_error(c,
                        "a job needs \"argv\", a non-empty array of strings");
      goto refuse;
    }
    if (j->cwd == NULL || j->cwd[0] != '/') {
      qconn_reply_error(c, "a job needs \"cwd\", an absolute directory");
      goto refuse;
    }
  } else {
    vbuf packed = {0};
    char err[256];
    j->lib = qw_get_str(req, "lib");
    j->fn = qw_get_str(req, "fn");
    j->arg_json = qw_get_str(req, "arg");
    if (j->lib == NULL || j->fn == NULL || j->arg_json == NULL) {
      qconn_reply_error(
          c, "a task-function job needs \"lib\", \"fn\" and \"arg\"");
      goto refuse;
    }
    if (vow_json_to_msgpack(j->arg_json, strlen(j->arg_json), &packed, err,
                            sizeof(err)) != 0) {
      vbuf_free(&packed);
      qconn_reply_error(c, "the argument: %s", err);
      goto refuse;
    }
    vbuf_free(&packed);
  }
  if (qw_get_int(req, "priority", &v))
    j->priority = v;
  if (qw_get_double(req, "timeout", &t)) {
    if (t < 0 || t > 1e9) {
      qconn_reply_error(c, "the timeout must be between 0 and 1e9 seconds");
      goto refuse;
    }
    j->timeout_s = t;
  }
  if (qw_get_int(req, "retries", &v)) {
    if (v < 0 || v > 1000) {
      qconn_reply_error(c, "retries must be between 0 and 1000");
      goto refuse;
    }
    j->retries = v;
  }
  if (after != NULL &&
      (j->after = ids_from(c, after, &j->nafter, true)) == NULL)
    goto refuse;
  j->state = QS_QUEUED;
  j->submitted = vow_cli_now();
  if (qdb_insert(the_daemon.db, j) != 0) {
    qconn_reply_error(c, "the job was not accepted: %s",
                      qdb_error(the_daemon.db));
    goto refuse;
  }
  qd_add(j);
  begin_ok(&sb, &pk, 1);
  qw_pack_kv_int(&pk, "id", j->id);
  qconn_reply_for(c, &sb, &j, 1);
  qd_schedule();
  return;
refuse:
  qjob_free(j);
}

static void pack_status_head(msgpack_packer* pk, void* data) {
  size_t i, queued = qd_nready() + the_daemon.nwaiting;
  (void)data;
  qw_pack_str(pk, "paused");
  if (the_daemon.paused)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
  qw_pack_kv_int(pk, "running", (int64_t)the_daemon.nrunning);
  qw_pack_kv_int(pk, "queued", (int64_t)queued);
  qw_pack_kv_int(pk, "pid", (int64_t)getpid());
  qw_pack_str(pk, "groups");
  msgpack_pack_array(pk, the_daemon.ngroups);
  for (i = 0; i < the_daemon.ngroups; i++) {
    const qgroup* g = the_daemon.groups[i];
    msgpack_pack_map(pk, 5);
    qw_pack_kv_str(pk, "name", g->name);
    qw_pack_kv_int(pk, "slots", g->slots);
    qw_pack_kv_int(pk, "running", (int64_t)g->nrunning);
    qw_pack_kv_int(pk, "ready", (int64_t)g->ready.n);
    qw_pack_str(pk, "paused");
    if (g->paused)
      msgpack_pack_true(pk);
    else
      msgpack_pack_false(pk);
  }
}

static void op_status(client* c, const msgpack_object* req) {
  size_t n = 0, i;
  int64_t* ids = NULL;
  page pg;
  if (qw_get(req, "ids") != NULL &&
      (ids = request_ids(c, req, &n, true)) == NULL)
    return;
  page_init(&pg, c, 5, pack_status_head, NULL);
  if (ids != NULL && n > 0) {
    for (i = 0; i < n; i++)
      page_add(&pg, ids[i]);
  } else {
    int64_t id;
    for (id = 1; id <= the_daemon.max_id; id++)
      if (the_daemon.jobs[id] != NULL)
        page_add(&pg, id);
  }
  page_end(&pg);
  free(ids);
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
  page pg;
  size_t i;
  vow_value_release(v);
  w->p = NULL;
  if (f != NULL || w->c == NULL) {
    /* Cancelled: the client went away. */
    vow_failure_release(f);
    drop_waiter(w);
    return vow_ok(NULL);
  }
  page_init(&pg, w->c, 0, NULL, NULL);
  for (i = 0; i < w->nids; i++)
    page_add(&pg, w->ids[i]);
  page_end(&pg);
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
    qconn_reply_error(c, "out of memory");
    return;
  }
  for (i = 0; i < w->nids; i++)
    ps[i] = qd_ended(qd_job(w->ids[i]));
  w->c = c;
  w->next = c->waits;
  c->waits = w;
  w->p = qw_get_bool(req, "any")
             ? vow_first_settled(the_daemon.ctx, ps, w->nids)
             : vow_all(the_daemon.ctx, ps, w->nids);
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
    qconn_reply(c, &sb);
    return;
  }
  snprintf(out, sizeof(out), "%s/%lld.out", the_daemon.paths.out,
           (long long)j->id);
  snprintf(err, sizeof(err), "%s/%lld.err", the_daemon.paths.out,
           (long long)j->id);
  begin_ok(&sb, &pk, 4);
  qw_pack_kv_str(&pk, "state", qstate_name(j->state));
  qw_pack_kv_str(&pk, "out", out);
  qw_pack_kv_str(&pk, "err", err);
  qw_pack_kv_str(&pk, "output_error", j->output_error);
  qconn_reply(c, &sb);
}

static void op_cancel(client* c, const msgpack_object* req) {
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
  reply_count(c, "cancelled", (int64_t)done);
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
    qconn_reply_error(c, "a group's name is at most 64 bytes");
    free(name);
    return NULL;
  }
  g = qd_group(name, create);
  if (g == NULL)
    qconn_reply_error(c, "there is no group \"%s\"", name);
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
      qconn_reply_error(c, "%s", qdb_error(the_daemon.db));
      return;
    }
  } else {
    if (qdb_set_paused(the_daemon.db, pause) != 0) {
      qconn_reply_error(c, "%s", qdb_error(the_daemon.db));
      return;
    }
    the_daemon.paused = pause;
  }
  /* A group's jobs stay stopped while the whole queue is paused. */
  if (pause || !the_daemon.paused)
    qd_signal_running(pause ? SIGSTOP : SIGCONT, g);
  if (!pause)
    qd_schedule();
  begin_ok(&sb, &pk, 0);
  qconn_reply(c, &sb);
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
    g = the_daemon.groups[0];
  if (!qw_get_int(req, "slots", &slots) || slots < 1 || slots > (1 << 16)) {
    qconn_reply_error(c, "slots must be a number from 1 to 65536");
    return;
  }
  if (qd_set_group(g, (unsigned)slots, g->paused) != 0) {
    qconn_reply_error(c, "%s", qdb_error(the_daemon.db));
    return;
  }
  qd_log("group %s: %u slots", g->name, g->slots);
  qd_schedule();
  begin_ok(&sb, &pk, 0);
  qconn_reply(c, &sb);
}

/* vow remove ID...: jobs that have ended, or are queued, leave the list
 * (and the database, and their output). A running job is refused. */
static void op_remove(client* c, const msgpack_object* req) {
  size_t n, i, removed = 0;
  int64_t* ids = request_ids(c, req, &n, false);
  if (ids == NULL)
    return;
  for (i = 0; i < n; i++) {
    qjob* j = qd_job(ids[i]);
    if (j != NULL && j->state == QS_RUNNING) {
      qconn_reply_error(c, "job %lld is running: vow cancel it first",
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
  reply_count(c, "removed", (int64_t)removed);
}

/* vow clean: every job that has ended (with "successful", those that
 * succeeded), in every group or in one. */
static void op_clean(client* c, const msgpack_object* req) {
  bool only_done = qw_get_bool(req, "successful"), named;
  qgroup* g = request_group(c, req, false, &named);
  int64_t id;
  size_t removed = 0;
  if (named && g == NULL)
    return;
  for (id = 1; id <= the_daemon.max_id; id++) {
    qjob* j = the_daemon.jobs[id];
    if (j == NULL || !qstate_final(j->state) ||
        (only_done && j->state != QS_DONE) || (g != NULL && j->grp != g))
      continue;
    qd_remove(j);
    removed++;
  }
  reply_count(c, "removed", (int64_t)removed);
}

/* A new queued job made from j: same command, place, environment,
 * group, name, priority, timeout and retries. Its dependencies are set
 * by the caller. */
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
  n->submitted = vow_cli_now();
  return n;
}

static int by_id(const void* a, const void* b) {
  const qjob* x = *(qjob* const*)a;
  const qjob* y = *(qjob* const*)b;
  return (x->id > y->id) - (x->id < y->id);
}

/* vow restart ID...: jobs that have ended run again, as new jobs (their
 * ids in the reply, in the order asked, once committed); the old ones
 * keep their results. Each keeps its dependencies: on the new job of one
 * restarted with it, else on the same job as before. A job only ever
 * depends on older ones, so copies made in id order find the new ids of
 * those they depend on. */
static void op_restart(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n, i, k, made = 0;
  int64_t* ids = request_ids(c, req, &n, false);
  qjob **old = NULL, **copies = NULL;
  if (ids == NULL)
    return;
  if (the_daemon.draining || the_daemon.stopping) {
    qconn_reply_error(c, "the daemon is shutting down and takes no new jobs");
    goto out;
  }
  old = calloc(n, sizeof(*old));
  copies = calloc(n, sizeof(*copies));
  if (old == NULL || copies == NULL) {
    qconn_reply_error(c, "out of memory");
    goto out;
  }
  for (i = 0; i < n; i++) {
    old[i] = qd_job(ids[i]);
    if (!qstate_final(old[i]->state)) {
      qconn_reply_error(c, "job %lld is %s: only a job that has ended restarts",
                        (long long)old[i]->id, qstate_name(old[i]->state));
      goto out;
    }
  }
  qsort(old, n, sizeof(*old), by_id);
  for (i = 0; i < n; i++) {
    qjob* j;
    if (i > 0 && old[i] == old[i - 1])
      continue; /* named twice: one restart */
    j = copy_job(old[i]);
    if (j != NULL && old[i]->nafter > 0) {
      j->after = calloc(old[i]->nafter, sizeof(int64_t));
      for (k = 0; j->after != NULL && k < old[i]->nafter; k++) {
        size_t d;
        j->after[k] = old[i]->after[k];
        for (d = 0; d < i; d++)
          if (old[d]->id == old[i]->after[k] && copies[d] != NULL)
            j->after[k] = copies[d]->id;
      }
      j->nafter = j->after ? old[i]->nafter : 0;
    }
    if (j == NULL || (old[i]->nafter > 0 && j->after == NULL) ||
        qdb_insert(the_daemon.db, j) != 0) {
      qconn_reply_error(c, "the job was not accepted: %s",
                        j ? qdb_error(the_daemon.db) : "out of memory");
      qjob_free(j);
      /* All or none: the copies made so far go again. */
      for (k = 0; k < i; k++)
        if (copies[k] != NULL)
          qd_remove(copies[k]);
      goto out;
    }
    qd_add(j);
    copies[i] = j;
    made++;
  }
  begin_ok(&sb, &pk, 1);
  qw_pack_str(&pk, "ids");
  msgpack_pack_array(&pk, n);
  for (i = 0; i < n; i++) /* in the order asked */
    for (k = 0; k < n; k++)
      if (old[k]->id == ids[i]) {
        size_t first = k;
        while (first > 0 && old[first - 1] == old[k])
          first--;
        msgpack_pack_int64(&pk, copies[first]->id);
        break;
      }
  {
    qjob** list = malloc((made ? made : 1) * sizeof(qjob*));
    size_t m = 0;
    for (i = 0; list != NULL && i < n; i++)
      if (copies[i] != NULL)
        list[m++] = copies[i];
    qconn_reply_for(c, &sb, list, list ? m : 0);
    free(list);
  }
  qd_schedule();
out:
  free(old);
  free(copies);
  free(ids);
}

static void op_shutdown(client* c, const msgpack_object* req) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  begin_ok(&sb, &pk, 0);
  qconn_reply(c, &sb);
  if (qw_get_bool(req, "drain")) {
    the_daemon.draining = true;
    qd_log(
        "draining: no new jobs; stopping once %zu running and %zu "
        "queued are done",
        the_daemon.nrunning, qd_nready() + the_daemon.nwaiting);
    qd_maybe_drained();
  } else {
    qd_log("shutting down: %zu running jobs stopped", the_daemon.nrunning);
    qd_signal_running(SIGCONT, NULL);
    qd_stop_all();
    qd_maybe_drained();
  }
}

void qd_request(client* c, const char* data, size_t len) {
  msgpack_unpacked u;
  const msgpack_object* req;
  char* op = NULL;
  int64_t v = 0;
  msgpack_unpacked_init(&u);
  /* The pre-scan has bounded every count by the bytes present, so
   * unpacking allocates at most a few times the frame. */
  if (msgpack_unpack_next(&u, data, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
      u.data.type != MSGPACK_OBJECT_MAP) {
    qconn_reply_error(c, "a request is one msgpack map");
    qconn_close(c);
    goto out;
  }
  req = &u.data;
  if (!qw_get_int(req, "v", &v) || v != VOW_QUEUE_VERSION) {
    qconn_reply_error(
        c,
        "protocol version %lld is not this daemon's (%d): use the "
        "vow that started it",
        (long long)v, VOW_QUEUE_VERSION);
    qconn_close(c);
    goto out;
  }
  op = qw_get_str(req, "op");
  if (op == NULL) {
    qconn_reply_error(c, "the request has no \"op\"");
    qconn_close(c);
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
    qconn_reply_error(c, "unknown op \"%.40s\"", op);
    qconn_close(c);
  }
out:
  free(op);
  msgpack_unpacked_destroy(&u);
}
