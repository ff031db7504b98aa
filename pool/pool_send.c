/* What the pool sends a worker: batches of tasks (a big lone task's
 * arguments written where they are, not copied), CANCEL and SHUTDOWN,
 * encoded here and written by its channel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

/* A lone task with big arguments goes out without copying them: the
 * frame is written as its head, the argument bytes where they are, and
 * the seed. Returns false when it cannot (no memory, or a dead channel),
 * and the caller encodes it the ordinary way. */
static bool send_big_task(pworker* w, ptask* t, uint64_t seed) {
  vowp_encoder head, tail;
  size_t alen, hlen;
  char* h;
  bool sent;
  if (!w->spawned || w->state == PW_DEAD || !vow__chan_writable(&w->chan))
    return false;
  vow_value_bytes(t->args, &alen);
  vowp_encoder_init(&head);
  vowp_encoder_init(&tail);
  vowp_tasks_begin(&head, 1);
  vowp_task_open(&head, t->id, t->fn);
  msgpack_pack_uint64(&tail.pk, seed);
  if (head.failed || tail.failed) {
    vowp_encoder_destroy(&head);
    vowp_encoder_destroy(&tail);
    return false;
  }
  h = vowp_encoder_release(&head, &hlen);
  /* The frame's length covers the argument bytes and the seed too. */
  vowp_write_be32((unsigned char*)h, (uint32_t)(hlen - 4 + alen + tail.len));
  sent =
      vow__chan_write_around(&w->chan, h, hlen, t->args, tail.data, tail.len);
  if (!sent)
    vow__free(h);
  vowp_encoder_destroy(&tail);
  return sent;
}

/* Writes the encoder's frames (see vow__chan_write); a worker that is
 * gone counts as written, as its death deals with what it held. */
static bool write_frames(pworker* w, vowp_encoder* e) {
  if (!e->failed && (w->state == PW_DEAD || !w->spawned)) {
    size_t len;
    vow__free(vowp_encoder_release(e, &len));
    return true;
  }
  return vow__chan_write(&w->chan, e);
}

/* Control frames that cannot be sent for want of memory: the worker is
 * stopped the hard way, which is what a SHUTDOWN asks and what a CANCEL's
 * grace period would come to. */
static void write_control(pworker* w, vowp_encoder* e) {
  if (!write_frames(w, e))
    vow__worker_kill(w, PK_ASKED);
}

void vow__worker_send(pworker* w, size_t n) {
  vow_pool_t* pool = w->pool;
  vowp_encoder e;
  ptask* batch[1024];
  size_t i, start, encode, alen;
  if (n > sizeof(batch) / sizeof(batch[0]))
    n = sizeof(batch) / sizeof(batch[0]);
  for (i = 0; i < n; i++) {
    ptask* t = pool->queue.head;
    vow__tlist_remove(&pool->queue, t);
    t->at.w = w;
    t->flags = (uint8_t)((t->flags | PT_INFLIGHT) & ~PT_STARTED);
    vow__tlist_push(&w->inflight, t);
    batch[i] = t;
    if (t->count > 0)
      VOW__TRACE(w, "-> CHUNK task %llu %s (%u items from %llu)",
                 (unsigned long long)t->id, t->fn, (unsigned)t->count,
                 (unsigned long long)t->index);
    else
      VOW__TRACE(w, "-> TASK %llu %s", (unsigned long long)t->id, t->fn);
  }
  vowp_encoder_init(&e);
  encode = n;
  if (n == 1 && batch[0]->count == 0 &&
      vow_value_bytes(batch[0]->args, &alen) != NULL &&
      alen >= VOW__BIG_VALUE &&
      send_big_task(w, batch[0],
                    vow__task_seed(pool->opt.seed, batch[0]->index)))
    encode = 0; /* already on its way */
  /* Tasks go in TASKS frames and map chunks in MAPS frames: one frame per
   * run of the same kind, all in one write. */
  for (start = 0; start < encode; start = i) {
    bool chunks = batch[start]->count > 0;
    for (i = start; i < encode && (batch[i]->count > 0) == chunks; i++) {
    }
    if (chunks)
      vowp_maps_begin(&e, i - start);
    else
      vowp_tasks_begin(&e, i - start);
    for (size_t k = start; k < i; k++) {
      ptask* t = batch[k];
      const void* a = vow_value_bytes(t->args, &alen);
      if (chunks)
        vowp_chunk_raw(&e, t->id, t->fn, a, alen, pool->opt.seed, t->index);
      else
        vowp_task_raw(&e, t->id, t->fn, a, alen,
                      vow__task_seed(pool->opt.seed, t->index));
    }
    vowp_batch_end(&e);
  }
  w->sent += n;
  if (w->inflight.len == n) {
    /* It was idle: its busy time starts now. */
    w->busy_since_ns = w->last_event_ns = vow__now_ns();
    vow__worker_arm_head(w);
    vow__worker_watch_silence(w);
  }
  if (!write_frames(w, &e)) {
    /* Never sent: these fail now with out-of-memory, rather than wait
     * for replies that cannot come. */
    for (i = 0; i < encode; i++) {
      ptask* t = batch[i];
      vow__task_recall(w, t);
      vow__pool_fail_task(pool, t, vow__failure_nomem());
      vow__worker_task_done(w, t);
    }
    vow__worker_arm_head(w);
  }
  vowp_encoder_destroy(&e);
}

/* A control message of one number (CANCEL's id, PING's token). */
static void send_control(pworker* w,
                         vowp_err (*encode)(vowp_encoder*, uint64_t),
                         uint64_t n) {
  vowp_encoder e;
  vowp_encoder_init(&e);
  encode(&e, n);
  write_control(w, &e);
  vowp_encoder_destroy(&e);
}

void vow__worker_send_cancel(pworker* w, uint64_t id) {
  VOW__TRACE(w, "-> CANCEL task %llu", (unsigned long long)id);
  send_control(w, vowp_encode_cancel, id);
}

void vow__worker_send_ping(pworker* w, uint64_t token) {
  VOW__TRACE(w, "-> PING %llu", (unsigned long long)token);
  send_control(w, vowp_encode_ping, token);
}

void vow__worker_send_shutdown(pworker* w) {
  vowp_encoder e;
  VOW__TRACE(w, "-> SHUTDOWN");
  vowp_encoder_init(&e);
  vowp_encode_shutdown(&e);
  write_control(w, &e);
  vowp_encoder_destroy(&e);
  vow__worker_set_state(w, PW_STOPPING);
  if (w->kill == PK_NONE)
    w->kill = PK_ASKED;
}
