/* One worker as the pool sees it: starting it (through its transport),
 * what it says on its channel, its exit.
 *
 * A worker is finished only when its exit has been reported and both of
 * its pipes have reached EOF: exit can arrive before the last bytes it
 * wrote (libuv #610), and a crash report is the last thing on stderr. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pool_internal.h"
#include "transport.h"

void vow__worker_kill(pworker* w, int why) {
  if (w->kill == PK_NONE || w->kill == PK_ASKED)
    w->kill = why;
  static const char* const reasons[] = {
      "it died by itself", "task timeout",  "cancel grace over",
      "protocol error",    "asked to stop", "silent past the liveness bound"};
  VOW__TRACE(w, "kill (%s)", reasons[w->kill]);
  if (w->state != PW_DEAD)
    vow__worker_set_state(w, PW_STOPPING);
  if (w->spawned && !w->exited)
    w->pool->transport->kill(w);
}

/* ---- tasks on it ------------------------------------------------------ */

static void on_head_timeout(vow__timer* timer) {
  pworker* w = VOW__CONTAINER_OF(timer, pworker, task_timer);
  w->pool->events->task_timeout(w);
}

void vow__worker_arm_head(pworker* w) {
  vow_pool_t* pool = w->pool;
  ptask* t = w->inflight.head;
  uint64_t ms;
  vow__timer_stop(pool->ctx, &w->task_timer);
  if (t == NULL || w->state == PW_STOPPING || w->state == PW_DEAD)
    return;
  if (!vow__task_settled(t))
    vow__promise_mark_started(t->p); /* workers run what they hold in order */
  if ((t->flags & PT_CANCELLED) && w->grace_timer.index == SIZE_MAX &&
      w->grace_timer.fire != NULL)
    vow__timer_start(
        pool->ctx, &w->grace_timer,
        pool->opt.cancel_grace_ms ? pool->opt.cancel_grace_ms : 1000);
  ms = t->timeout_ms ? t->timeout_ms : pool->opt.timeout_ms;
  if (ms == 0 || vow__task_settled(t))
    return;
  w->task_timer.fire = on_head_timeout;
  w->task_timer.discard = NULL;
  vow__timer_start(pool->ctx, &w->task_timer, ms);
}

void vow__worker_task_done(pworker* w, ptask* t) {
  vow_pool_t* pool = w->pool;
  vow__task_free(pool, t);
  if (pool->opt.recycle_after && w->state == PW_READY &&
      w->completed >= pool->opt.recycle_after && pool->closing != 2) {
    /* Recycled, like maxtasksperchild: it takes nothing new, finishes
     * what it holds, and a fresh worker takes its slot now, a graceful
     * shutdown included: one left at its limit would be sent nothing
     * more, and what is queued would never run. A fresh worker with
     * nothing to do is sent SHUTDOWN once it is ready. */
    vow__worker_set_state(w, PW_RETIRING);
    pool->workers[w->slot] = NULL;
    w->next_retiring = pool->retiring;
    pool->retiring = w;
    vow__worker_start(pool, w->slot);
  }
  if (w->state == PW_RETIRING && w->inflight.len == 0)
    vow__worker_send_shutdown(w);
}

/* ---- finishing ------------------------------------------------------- */

static void closed_one(pworker* w) {
  if (--w->open_handles > 0)
    return;
  vow__chan_destroy(&w->chan);
  if (w->shm_sock >= 0)
    close(w->shm_sock);
  vow__shm_inbox_clear(&w->shm_in);
  w->pool->live_workers--;
  w->pool->events->gone(w); /* frees w */
}

static void on_closed(uv_handle_t* h) {
  closed_one(h->data);
}

static void on_chan_closed(uv_handle_t* h) {
  vow__chan* ch = h->data;
  closed_one(ch->owner);
}

static void on_proc_closed(vow__proc* p) {
  closed_one(p->data);
}

static void close_all(pworker* w) {
  if (!w->proc_closing) {
    w->proc_closing = true;
    if (w->has_proc)
      vow__proc_close(&w->proc, on_proc_closed);
    else
      w->open_handles--; /* not spawned here: nothing to close */
  }
  if (!vow__chan_closing(&w->chan))
    vow__chan_close(&w->chan, on_chan_closed);
  if (!uv_is_closing((uv_handle_t*)&w->errp))
    uv_close((uv_handle_t*)&w->errp, on_closed);
}

void vow__worker_maybe_finished(pworker* w) {
  if (!w->exited || !w->chan_eof || (w->err_piped && !w->err_eof))
    return;
  if (w->state == PW_DEAD)
    return;
  vow__worker_set_state(w, PW_DEAD);
  vow__timer_stop(w->pool->ctx, &w->task_timer);
  vow__timer_stop(w->pool->ctx, &w->grace_timer);
  vow__timer_stop(w->pool->ctx, &w->eof_timer);
  vow__timer_stop(w->pool->ctx, &w->stall_timer);
  vow__timer_stop(w->pool->ctx, &w->hello_timer);
  vow__timer_stop(w->pool->ctx, &w->silence_timer);
  vow__timer_stop(w->pool->ctx, &w->nudge_timer);
  close_all(w);
}

static void on_pipes_held(vow__timer* t) {
  pworker* w = VOW__CONTAINER_OF(t, pworker, eof_timer);
  vow__worker_err_flush(w);
  if (!w->chan_eof)
    vow__chan_stop_reading(&w->chan);
  if (w->err_piped && !w->err_eof)
    uv_read_stop((uv_stream_t*)&w->errp);
  w->chan_eof = w->err_eof = true;
  vow__worker_maybe_finished(w);
}

void vow__worker_exited(pworker* w, int64_t status, int sig) {
  VOW__TRACE(w, "exited: status %lld, signal %d", (long long)status, sig);
  w->exited = true;
  w->exit_status = status;
  w->term_signal = sig;
  vow__timer_stop(w->pool->ctx, &w->eof_timer);
  if (!w->chan_eof || (w->err_piped && !w->err_eof)) {
    w->eof_timer.fire = on_pipes_held;
    w->eof_timer.discard = NULL;
    /* A process it left behind (a forked child that kept fd 3 or stderr)
     * must not keep it from being finished: proc/'s EOF grace. */
    vow__timer_start(w->pool->ctx, &w->eof_timer, VOW__GRACE_EOF_MS);
  }
  vow__worker_maybe_finished(w);
}

/* ---- its stderr ------------------------------------------------------ */

static void on_err_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  static char scratch[16384]; /* loop thread only; consumed at once */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_err_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  pworker* w = s->data;
  if (n < 0) {
    vow__worker_err_flush(w); /* a last line without a newline */
    w->err_eof = true;
    uv_read_stop(s);
    vow__worker_maybe_finished(w);
    return;
  }
  vow__worker_err_take(w, buf->base, (size_t)n);
}

/* ---- the channel ----------------------------------------------------- */

/* A write to the worker has finished: one held back for its backlog may
 * take more now. A failed write means a dead worker, which is noticed by
 * its exit, not here. */
static void on_chan_sent(vow__chan* ch, int status) {
  pworker* w = ch->owner;
  if (status == 0 && w->pool->queue.head != NULL)
    w->pool->events->kick(w->pool);
}

static void protocol_error(pworker* w, const char* fmt, ...) VOW_PRINTF(2, 3);
static void protocol_error(pworker* w, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->why, sizeof(w->why), fmt, ap);
  va_end(ap);
  VOW__TRACE(w, "protocol error: %s", w->why);
  vow__worker_kill(w, PK_PROTOCOL);
}

static bool slice_is(vowp_slice s, const char* name) {
  return strlen(name) == s.len && memcmp(name, s.data, s.len) == 0;
}

/* No table given: the first worker's list becomes the pool's. Names
 * interned by submits made before it stay where tasks point at them;
 * the offered ones move to the front, names[0..nknown). */
static void learn_functions(vow_pool_t* pool, vowp_iter it) {
  vowp_slice s;
  while (vowp_next_function(&it, &s)) {
    size_t k = 0;
    char* moved;
    while (k < pool->nnames && !slice_is(s, pool->names[k]))
      k++;
    if (k < pool->nknown)
      continue; /* offered twice */
    if (k == pool->nnames) {
      char** grown = vow__realloc(pool->names, (k + 1) * sizeof(char*));
      if (grown == NULL)
        return;
      pool->names = grown;
      if ((pool->names[k] = vow__strndup(s.data, s.len)) == NULL)
        return;
      pool->nnames++;
    }
    moved = pool->names[k];
    pool->names[k] = pool->names[pool->nknown];
    pool->names[pool->nknown++] = moved;
  }
}

/* A worker that offers "*" looks names up as tasks ask for them. */
static bool offers_any(vowp_iter it) {
  vowp_slice s;
  while (vowp_next_function(&it, &s))
    if (slice_is(s, "*"))
      return true;
  return false;
}

static void on_hello(pworker* w, vowp_msg* m) {
  vow_pool_t* pool = w->pool;
  vowp_slice s;
  size_t i;
  vow__timer_stop(pool->ctx, &w->hello_timer);
  w->pid = (int)m->u.hello.pid;
  /* A worker that takes segments said so on the side socket before its
   * HELLO, so the word is there by now. */
  w->shm_ok = w->shm_sock >= 0 && vow__shm_heard_hello(w->shm_sock);
  if (offers_any(m->u.hello.functions)) {
    w->pool->events->ready(w);
    return;
  }
  if (pool->names_from_hello && pool->nknown == 0)
    learn_functions(pool, m->u.hello.functions);
  /* Every name the pool accepts must be offered by this worker. */
  for (i = 0; i < pool->nknown; i++) {
    vowp_iter it = m->u.hello.functions;
    bool found = false;
    while (!found && vowp_next_function(&it, &s))
      found = slice_is(s, pool->names[i]);
    if (!found) {
      snprintf(w->why, sizeof(w->why),
               "the worker offers no function named \"%s\"", pool->names[i]);
      vow__worker_kill(w, PK_PROTOCOL);
      return;
    }
  }
  w->pool->events->ready(w);
}

/* base: the decoder's buffer when a big value was taken from it whole
 * (the value then owns it), else NULL. */
/* The worker's detail (a remote traceback, say), as a C string. */
static void set_detail(vow_failure_t* f, vowp_slice detail) {
  char* text = vow__malloc(detail.len + 1);
  if (text == NULL)
    return; /* the failure stands without it */
  memcpy(text, detail.data, detail.len);
  text[detail.len] = '\0';
  vow_failure_set_detail(f, text);
  vow__free(text);
}

/* Why a result in shared memory was refused, its task failed and its
 * worker left alone. */
typedef enum refusal {
  REFUSED_NONE,
  REFUSED_BYTES,    /* past shm_max_bytes, and too big for the channel */
  REFUSED_SEGMENTS, /* past shm_max_segments, and too big for it */
  REFUSED_LOST,     /* its descriptor could not be received (EMFILE) */
} refusal;

/* A result that is a segment's reference (docs/protocol.md, "Shared
 * memory"): 1 with *v the value over the segment; 0 when the value is
 * not a reference; -1 after failing the worker (a reference that breaks
 * the protocol) or with *refused set and *over the result's length (past
 * the process's limits: the task fails, the worker lives on). */
static int shared_result(pworker* w, uint64_t task_id, vowp_slice value,
                         vow_value_t** v, uint64_t* over, refusal* refused) {
  uint64_t sid, off, len, live;
  size_t segments;
  vowp_limits lim = {0, VOWP_VALUE_MAX_OBJECTS, VOWP_TASK_MAX_DEPTH};
  vowp_error err;
  char why[256];
  int fd;
  bool copy;
  *v = NULL;
  *over = 0;
  *refused = REFUSED_NONE;
  if (!vowp_shm_ref_read(value.data, value.len, &sid, &off, &len))
    return 0;
  if (!w->shm_ok) {
    protocol_error(w,
                   "the worker replied to task %llu with a shared-memory "
                   "reference, but takes no part in shared memory",
                   (unsigned long long)task_id);
    return -1;
  }
  fd = vow__shm_take(&w->shm_in, w->shm_sock, sid);
  if (fd == VOW__SHM_LOST) {
    *over = len;
    *refused = REFUSED_LOST;
    return -1;
  }
  if (fd < 0) {
    protocol_error(w,
                   "the worker's result for task %llu names shared-memory "
                   "segment %llu, which never came",
                   (unsigned long long)task_id, (unsigned long long)sid);
    return -1;
  }
  /* Past the limit, what the channel could have carried is read into
   * memory and the segment let go; the rest is refused. */
  segments = vow__shm_live(&live);
  copy = live + len > vow__pool_shm_max_bytes(w->pool) ||
         segments >= vow__pool_shm_max_segments(w->pool);
  if (copy && len > VOWP_VALUE_MAX_BYTES) {
    close(fd);
    *over = len;
    *refused = live + len > vow__pool_shm_max_bytes(w->pool) ? REFUSED_BYTES
                                                             : REFUSED_SEGMENTS;
    return -1;
  }
  if ((*v = vow__value_from_segment(fd, off, len, copy, why, sizeof(why))) ==
      NULL) {
    protocol_error(w, "the worker's result for task %llu: %s",
                   (unsigned long long)task_id, why);
    return -1;
  }
  lim.max_frame = (size_t)len;
  if (vowp_prescan(vow_value_bytes(*v, NULL), (size_t)len, &lim, 0, &err) !=
      VOWP_OK) {
    vow_value_release(*v);
    *v = NULL;
    protocol_error(w,
                   "the worker's result for task %llu in shared memory is "
                   "not one msgpack value within the limits: %s",
                   (unsigned long long)task_id, err.text);
    return -1;
  }
  VOW__TRACE(w, "<- segment %llu for task %llu (%llu bytes%s)",
             (unsigned long long)sid, (unsigned long long)task_id,
             (unsigned long long)len, copy ? ", read: past a limit" : "");
  return 1;
}

static vow_failure_t* refused_failure(vow_pool_t* pool, refusal refused,
                                      uint64_t len) {
  uint64_t live;
  size_t segments = vow__shm_live(&live);
  struct rlimit nofile = {0, 0};
  if (refused == REFUSED_BYTES)
    return vow_failure_new(
        VOW_FAIL_TASK_ERROR, UV_E2BIG,
        "the result of %llu bytes in shared memory was refused: this "
        "process holds %llu bytes in segments, and may hold %llu "
        "(shm_max_bytes)",
        (unsigned long long)len, (unsigned long long)live,
        (unsigned long long)vow__pool_shm_max_bytes(pool));
  if (refused == REFUSED_SEGMENTS)
    return vow_failure_new(
        VOW_FAIL_TASK_ERROR, UV_EMFILE,
        "the result of %llu bytes in shared memory was refused: this "
        "process holds %zu segments, and may hold %llu (shm_max_segments); "
        "results that fit the channel are read into memory instead",
        (unsigned long long)len, segments,
        (unsigned long long)vow__pool_shm_max_segments(pool));
  getrlimit(RLIMIT_NOFILE, &nofile);
  return vow_failure_new(
      VOW_FAIL_TASK_ERROR, UV_EMFILE,
      "the result of %llu bytes came in a shared-memory segment whose "
      "descriptor this process could not receive: it has as many open as "
      "its limit allows (RLIMIT_NOFILE %llu); raise it, or lower "
      "shm_max_segments (%llu)",
      (unsigned long long)len, (unsigned long long)nofile.rlim_cur,
      (unsigned long long)vow__pool_shm_max_segments(pool));
}

static void on_result(pworker* w, uint64_t id, int ok, vowp_msg* m,
                      vowp_slice value, char* base) {
  vow_pool_t* pool = w->pool;
  ptask* t;
  vow_value_t* shared = NULL;
  uint64_t over = 0;
  refusal refused = REFUSED_NONE;
  if (ok && shared_result(w, id, value, &shared, &over, &refused) < 0 &&
      refused == REFUSED_NONE) {
    vow__free(base);
    return;
  }
  t = vow__pool_find_inflight(w, id);
  if (t == NULL) {
    vow_value_release(shared);
    vow__free(base);
    protocol_error(w,
                   "the worker replied for task %llu, which it was not "
                   "running (never sent to it, or already answered)",
                   (unsigned long long)id);
    return;
  }
  if (ok && t->count > 0) {
    /* A chunk's result is one array with a result per item; any other
     * shape would hand the caller a corrupt map. */
    uint32_t have = 0;
    size_t head;
    bool array = vowp_array_header(value.data, value.len, &have, &head);
    if (!array || have != t->count) {
      vow__free(base);
      vow_value_release(shared);
      if (array)
        protocol_error(w,
                       "the worker replied to map chunk %llu with %u "
                       "results where %u were due",
                       (unsigned long long)id, have, (unsigned)t->count);
      else
        protocol_error(w,
                       "the worker replied to map chunk %llu with something "
                       "that is not an array of results",
                       (unsigned long long)id);
      return;
    }
  }
  if ((t->flags & PT_RECALLED) && !ok && !vow__task_settled(t) &&
      m->u.error.kind == VOW_FAIL_CANCELLED) {
    /* Given back unbegun, as asked: to the queue's front, for the idle
     * worker it was asked back for. */
    vow__free(base);
    vow_value_release(shared);
    vow__task_recall(w, t);
    vow__tlist_push_front(&pool->queue, t);
    return;
  }
  vow__task_recall(w, t);
  w->completed++;
  /* The grace was the task's its worker ran: arm_head starts it again
   * if the next one is cancelled too. */
  if (t->flags & PT_CANCELLED)
    vow__timer_stop(pool->ctx, &w->grace_timer);
  if (vow__task_settled(t)) {
    /* Stale: its promise was settled already (cancelled, or failed by an
     * immediate shutdown); a task is settled exactly when t->p is NULL. */
    vow__free(base);
    vow_value_release(shared);
  } else if (ok && refused != REFUSED_NONE) {
    vow_origin_t o = {t->id, t->fn, NULL, w->pid, -1, -1};
    vow_failure_t* f = refused_failure(pool, refused, over);
    vow__free(base);
    vow_failure_set_origin(f, &o);
    vow__pool_fail_task(pool, t, f);
  } else if (ok) {
    vow_value_t* v = shared ? shared
                     : base ? vow__value_adopt(base, value.data, value.len)
                            : vow__value_from_encoded(value.data, value.len);
    if (v == NULL) {
      vow__pool_fail_task(pool, t, NULL);
    } else {
      pool->stats.completed++;
      vow_fulfil(t->p, v);
      t->p = NULL;
    }
  } else {
    int kind = (int)m->u.error.kind;
    vow_failure_t* f;
    vow_origin_t o = {t->id, t->fn, NULL, w->pid, -1, -1};
    if (kind <= 0 || kind >= VOW_FAIL_KIND_COUNT)
      kind = VOW_FAIL_TASK_ERROR;
    f = vow_failure_new(kind, (int)m->u.error.code, "%.*s",
                        (int)m->u.error.message.len, m->u.error.message.data);
    vow_failure_set_origin(f, &o);
    if (m->u.error.has_detail)
      set_detail(f, m->u.error.detail);
    vow__pool_fail_task(pool, t, f);
  }
  vow__worker_task_done(w, t);
}

static void on_eof_wait_over(vow__timer* t) {
  pworker* w = VOW__CONTAINER_OF(t, pworker, eof_timer);
  if (w->exited)
    return;
  if (w->why[0] == '\0')
    snprintf(w->why, sizeof(w->why),
             "worker pid %d closed its channel without exiting and was "
             "killed",
             w->pid);
  w->pool->transport->kill(w);
}

uint64_t vow__pool_shm_threshold(const vow_pool_t* pool) {
  if (pool->transport != &vow__transport_local)
    return UINT64_MAX;
  return pool->opt.shm_threshold ? pool->opt.shm_threshold
                                 : VOW_POOL_SHM_THRESHOLD;
}

uint64_t vow__pool_shm_max_bytes(const vow_pool_t* pool) {
  double avail;
  if (pool->opt.shm_max_bytes)
    return pool->opt.shm_max_bytes;
  avail = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  return avail > 0 ? (uint64_t)(avail / 2) : (uint64_t)1 << 30;
}

uint64_t vow__pool_shm_max_segments(const vow_pool_t* pool) {
  struct rlimit nofile;
  if (pool->opt.shm_max_segments)
    return pool->opt.shm_max_segments;
  /* Each holds a descriptor: a quarter of them, the rest for the rest. */
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 ||
      nofile.rlim_cur == RLIM_INFINITY)
    return 1024;
  return nofile.rlim_cur / 4 > 16 ? nofile.rlim_cur / 4 : 16;
}

uint64_t vow__liveness_ms(const vow_pool_t* pool) {
  return pool->opt.liveness_ms ? pool->opt.liveness_ms : 20000;
}

static void on_silence(vow__timer* t) {
  pworker* w = VOW__CONTAINER_OF(t, pworker, silence_timer);
  uint64_t ms = vow__liveness_ms(w->pool);
  /* Bytes waiting in the pipe mean our loop was busy, not the worker. */
  if (vow__chan_unread(&w->chan) > 0) {
    vow__timer_start(w->pool->ctx, &w->silence_timer, ms);
    return;
  }
  VOW__TRACE(w, "silent for %llu ms with %zu tasks on it: lost",
             (unsigned long long)ms, w->inflight.len);
  snprintf(w->why, sizeof(w->why),
           "worker pid %d sent nothing for %llu ms, though it says it is "
           "alive every %llu ms: lost with its host or link",
           w->pid, (unsigned long long)ms, (unsigned long long)(ms / 4));
  vow__worker_kill(w, PK_SILENT);
  w->pool->events->kick(w->pool);
}

void vow__worker_watch_silence(pworker* w) {
  vow__timer_stop(w->pool->ctx, &w->silence_timer);
  if (!w->heartbeats || w->inflight.len == 0 || w->state != PW_READY)
    return;
  w->silence_timer.fire = on_silence;
  w->silence_timer.discard = NULL;
  vow__timer_start(w->pool->ctx, &w->silence_timer, vow__liveness_ms(w->pool));
}

static uint64_t stall_ms(const vow_pool_t* pool) {
  return pool->opt.stall_ms ? pool->opt.stall_ms : 10000;
}

static void on_stall(vow__timer* t) {
  pworker* w = VOW__CONTAINER_OF(t, pworker, stall_timer);
  /* Bytes waiting in the pipe mean our loop was busy, not the worker:
   * the read callback comes next. */
  if (vow__chan_unread(&w->chan) > 0) {
    vow__timer_start(w->pool->ctx, &w->stall_timer, stall_ms(w->pool));
    return;
  }
  protocol_error(w,
                 "the worker stopped in the middle of a message: %zu bytes "
                 "of it arrived, then nothing for %llu ms",
                 vow__chan_partial(&w->chan),
                 (unsigned long long)stall_ms(w->pool));
}

/* A message begun and not finished after NUDGE_MS, through a launcher:
 * its link may be holding the rest back. srun's carries a step's output
 * in messages of 1 KiB over TCP, and holds the second of them until the
 * first is acknowledged, which the receiving side delays by up to 40 ms
 * unless it has bytes of its own to send the other way. A PING is such
 * bytes: its answer is harmless, and the rest of the message comes now. */
#define NUDGE_MS 2

static void on_nudge(vow__timer* t) {
  pworker* w = VOW__CONTAINER_OF(t, pworker, nudge_timer);
  if (vow__chan_partial(&w->chan) == 0 || w->state == PW_STOPPING ||
      w->state == PW_DEAD)
    return;
  vow__worker_send_ping(w, 1);
}

/* Restarts the stall clock while a message is incomplete: each read
 * that brings bytes of it proves the worker is still sending. */
static void watch_partial(pworker* w) {
  vow__timer_stop(w->pool->ctx, &w->nudge_timer);
  vow__timer_stop(w->pool->ctx, &w->stall_timer);
  if (vow__chan_partial(&w->chan) == 0 || w->state == PW_STOPPING ||
      w->state == PW_DEAD)
    return;
  w->stall_timer.fire = on_stall;
  w->stall_timer.discard = NULL;
  vow__timer_start(w->pool->ctx, &w->stall_timer, stall_ms(w->pool));
  if (w->pool->transport == &vow__transport_launcher) {
    w->nudge_timer.fire = on_nudge;
    w->nudge_timer.discard = NULL;
    vow__timer_start(w->pool->ctx, &w->nudge_timer, NUDGE_MS);
  }
}

/* The trace's line for one message from the worker; a RESULTS frame is a
 * line per result. */
static void trace_received(pworker* w, const vowp_msg* m) {
  vowp_iter it;
  vowp_result r;
  switch (m->type) {
    case VOWP_HELLO:
      VOW__TRACE(w, "<- HELLO (pid %llu)", (unsigned long long)m->u.hello.pid);
      break;
    case VOWP_RESULTS:
      for (it = m->u.results.items; vowp_next_result(&it, &r);)
        VOW__TRACE(w, "<- RESULT task %llu (%zu bytes)",
                   (unsigned long long)r.id, r.value.len);
      break;
    case VOWP_ERROR:
      VOW__TRACE(
          w, "<- ERROR task %llu: %.*s", (unsigned long long)m->u.error.id,
          (int)(m->u.error.message.len > 200 ? 200 : m->u.error.message.len),
          m->u.error.message.data);
      break;
    case VOWP_PROGRESS:
      VOW__TRACE(w, "<- PROGRESS task %llu %.3f",
                 (unsigned long long)m->u.progress.id, m->u.progress.fraction);
      break;
    default:
      VOW__TRACE(w, "<- %s", vowp_type_name(m->type));
      break;
  }
}

static void on_chan_read(vow__chan* ch, ssize_t n) {
  pworker* w = ch->owner;
  vowp_msg m;
  int rc;
  size_t replies = 0;
  if (n < 0) {
    VOW__TRACE(w, "channel %s",
               n == UV_EOF ? "closed (EOF)" : uv_strerror((int)n));
    if (n != UV_EOF && w->why[0] == '\0')
      snprintf(w->why, sizeof(w->why), "reading from the worker failed: %s",
               uv_strerror((int)n));
    if (vow__chan_finish(ch) != 0 && w->why[0] == '\0' &&
        w->state != PW_STOPPING)
      snprintf(w->why, sizeof(w->why), "%s", vow__chan_error(ch));
    w->chan_eof = true;
    vow__chan_stop_reading(ch);
    if (!w->exited && w->state != PW_STOPPING && w->spawned) {
      /* EOF usually comes just before the exit. A worker that closed its
       * channel and still lives a moment later can never reply: it is a
       * dead worker that has not noticed, and is made one. */
      w->eof_timer.fire = on_eof_wait_over;
      w->eof_timer.discard = NULL;
      vow__timer_start(w->pool->ctx, &w->eof_timer, 200);
    }
    vow__worker_maybe_finished(w);
    return;
  }
  while (w->kill != PK_PROTOCOL && (rc = vow__chan_next(ch, &m)) == 1) {
    vowp_result r;
    if (w->state == PW_STARTING && m.type != VOWP_HELLO &&
        m.type != VOWP_ERROR) {
      protocol_error(w, "the worker sent %s before HELLO",
                     vowp_type_name(m.type));
      break;
    }
    if (vow__trace_fd >= 0)
      trace_received(w, &m);
    switch (m.type) {
      case VOWP_HELLO:
        if (w->state != PW_STARTING) {
          protocol_error(w, "the worker sent %s twice", "HELLO");
          break;
        }
        on_hello(w, &m);
        break;
      case VOWP_RESULTS:
        if (m.u.results.n == 1) {
          /* A lone big result keeps its bytes where they arrived. */
          vowp_iter peek = m.u.results.items;
          char* base;
          if (vowp_next_result(&peek, &r) && r.value.len >= VOW__BIG_VALUE &&
              (base = vow__chan_steal(ch)) != NULL) {
            on_result(w, r.id, 1, &m, r.value, base);
            replies++;
            break;
          }
        }
        while (w->kill != PK_PROTOCOL &&
               vowp_next_result(&m.u.results.items, &r)) {
          on_result(w, r.id, 1, &m, r.value, NULL);
          replies++;
        }
        break;
      case VOWP_ERROR:
        if (m.u.error.id == 0) {
          snprintf(w->why, sizeof(w->why), "the worker reported: %.*s",
                   (int)m.u.error.message.len, m.u.error.message.data);
          break;
        }
        on_result(w, m.u.error.id, 0, &m, m.u.error.message, NULL);
        replies++;
        break;
      case VOWP_PROGRESS: {
        /* A worker runs its tasks in the order sent, so a task it says
         * it has started tells which one it is on: should it die there,
         * those sent after it never ran (pool_faults.c). */
        ptask* t = vow__pool_find_inflight(w, m.u.progress.id);
        if (t != NULL)
          t->flags |= PT_STARTED;
        if (w->pool->progress) {
          char text[256];
          snprintf(text, sizeof(text), "%.*s", (int)m.u.progress.text.len,
                   m.u.progress.text.data);
          w->pool->progress(w->pool, m.u.progress.id, m.u.progress.fraction,
                            text, w->pool->progress_data);
        }
        break;
      }
      case VOWP_PONG:
        if (m.u.ping.token == 0)
          w->heartbeats = true; /* unasked: it says it is alive */
        break;
      default:
        protocol_error(w, "the worker sent %s, which only a parent sends",
                       vowp_type_name(m.type));
        break;
    }
  }
  if (w->kill != PK_PROTOCOL && rc < 0)
    protocol_error(w, "the worker broke the protocol: %s", vow__chan_error(ch));
  watch_partial(w);
  vow__worker_watch_silence(w);
  if (replies > 0) {
    uint64_t now = vow__now_ns();
    w->ewma_ns = vow__sched_ewma(w->ewma_ns, now - w->last_event_ns, replies,
                                 w->woken || w->inflight.len == 0);
    w->woken = false;
    w->last_event_ns = now;
    w->limit = vow__sched_limit(w->ewma_ns, w->pool->opt.in_flight);
    if (w->inflight.len == 0)
      w->pool->stats.busy_ns += now - w->busy_since_ns;
    vow__worker_arm_head(w);
    w->pool->events->kick(w->pool);
  }
}

/* ---- spawning -------------------------------------------------------- */

static uint64_t hello_timeout_ms(const vow_pool_t* pool) {
  return pool->opt.hello_timeout_ms ? pool->opt.hello_timeout_ms : 30000;
}

/* A worker that never says HELLO (a program that went on with something
 * else, a launcher stuck at a password prompt) would hold its slot, and
 * the tasks waiting for it, for ever. */
static void on_no_hello(vow__timer* t) {
  pworker* w = VOW__CONTAINER_OF(t, pworker, hello_timer);
  if (w->said_hello || w->state != PW_STARTING)
    return;
  protocol_error(w, "worker pid %d did not say HELLO within %llu ms", w->pid,
                 (unsigned long long)hello_timeout_ms(w->pool));
}

static void watch_hello(pworker* w) {
  w->hello_timer.fire = on_no_hello;
  w->hello_timer.discard = NULL;
  vow__timer_start(w->pool->ctx, &w->hello_timer, hello_timeout_ms(w->pool));
}

/* A worker that could not be started is finished at once, as one that
 * died before its HELLO, with the transport's reason in w->why. */
static void start_failed(pworker* w) {
  VOW__TRACE(w, "could not start: %s", w->why);
  w->exited = w->chan_eof = w->err_eof = true;
  w->exit_status = -1;
  vow__worker_maybe_finished(w);
}

void vow__worker_start(vow_pool_t* pool, unsigned slot) {
  pworker* w = vow__calloc(1, sizeof(*w));
  if (w == NULL) {
    pool->events->start_later(pool); /* the slot stays empty until then */
    return;
  }
  w->pool = pool;
  w->slot = slot;
  w->state = PW_STARTING;
  w->limit = vow__sched_limit(0, pool->opt.in_flight);
  w->task_timer.index = w->grace_timer.index = w->eof_timer.index =
      w->stall_timer.index = w->hello_timer.index = w->silence_timer.index =
          w->nudge_timer.index = SIZE_MAX;
  w->shm_sock = -1;
  pool->workers[slot] = w;
  pool->live_workers++;
  pool->stats.worker_starts++;
  vow__chan_init(&w->chan, pool->ctx->loop, w);
  uv_pipe_init(pool->ctx->loop, &w->errp, 0);
  w->errp.data = w;
  w->open_handles = 3;
  w->err_piped = pool->opt.stderr_mode == VOW_STDERR_RELAY;
  if (pool->transport->start(w) != 0) {
    start_failed(w);
    return;
  }
  w->spawned = true;
  VOW__TRACE(w, "spawned (%s transport), state STARTING",
             pool->transport->name);
  watch_hello(w);
  vow__chan_start(&w->chan, on_chan_read, on_chan_sent);
  if (w->err_piped)
    uv_read_start((uv_stream_t*)&w->errp, on_err_alloc, on_err_read);
}
