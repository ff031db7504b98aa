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

/* A task's big arguments go by shared memory to a worker that takes
 * segments: the segment (made once per value) is sent on the side socket
 * and ref gets the reference that stands in the frame for the bytes.
 * False when they go by the wire; then *why says why shared memory could
 * not take them, when it was tried. */
static bool args_by_segment(pworker* w, ptask* t, size_t alen,
                            unsigned char ref[VOWP_SHM_REF_LEN], int* why) {
  vow_pool_t* pool = w->pool;
  uint64_t off, id = w->shm_sent + 1;
  int fd;
  *why = 0;
  if (!w->shm_ok || t->count > 0 || alen < vow__pool_shm_threshold(pool))
    return false;
  if ((*why = vow__value_segment(t->args, vow__pool_shm_max_bytes(pool),
                                 vow__pool_shm_max_segments(pool), &fd,
                                 &off)) != 0 ||
      (*why = vow__shm_send(w->shm_sock, id, fd)) != 0)
    return false;
  w->shm_sent = id;
  vowp_shm_ref_write(ref, id, off, alen);
  VOW__TRACE(w, "-> segment %llu for task %llu (%zu bytes)",
             (unsigned long long)id, (unsigned long long)t->id, alen);
  return true;
}

/* Arguments with parts (vow_value_new_with_parts) as this worker gets
 * them: each part that shared memory takes goes by its segment, its
 * reference rewritten to name it, the others are written in where their
 * references stand. The segments are sent only once the whole is known
 * to be sendable, so none is sent for a task that then fails. A new
 * buffer in *out, which the caller frees; false when they cannot go,
 * with *why an errno value, or -1 for arguments that, with parts written
 * in, pass a task's limits. */
static bool args_with_parts(pworker* w, ptask* t, unsigned char** out,
                            size_t* out_len, int* why) {
  vow_pool_t* pool = w->pool;
  const vow__part_ref* refs;
  size_t n = vow__value_parts(t->args, &refs), hlen, total, k, from, to;
  const unsigned char* head = vow_value_bytes(t->args, &hlen);
  int* fds = vow__malloc((n ? n : 1) * sizeof(*fds)); /* -1: written in */
  uint64_t* offs = vow__malloc((n ? n : 1) * sizeof(*offs));
  size_t* ref_at = vow__malloc((n ? n : 1) * sizeof(*ref_at));
  unsigned char* buf = NULL;
  bool inline_any = false;
  *why = 0;
  if (fds == NULL || offs == NULL || ref_at == NULL) {
    *why = ENOMEM;
    goto out;
  }
  total = hlen;
  for (k = 0; k < n; k++) {
    size_t plen;
    vow_value_bytes(refs[k].part, &plen);
    fds[k] = -1;
    if (!w->shm_ok ||
        (!vow_value_is_shared(refs[k].part) &&
         plen < vow__pool_shm_threshold(pool)) ||
        vow__value_segment(refs[k].part, vow__pool_shm_max_bytes(pool),
                           vow__pool_shm_max_segments(pool), &fds[k],
                           &offs[k]) != 0) {
      fds[k] = -1;
      total += plen - VOWP_SHM_REF_LEN;
      inline_any = true;
    }
  }
  if (total > VOWP_VALUE_MAX_BYTES) {
    *why = E2BIG;
    goto out;
  }
  if ((buf = vow__malloc(total)) == NULL) {
    *why = ENOMEM;
    goto out;
  }
  for (k = 0, from = 0, to = 0; k < n; k++) {
    size_t plen;
    const void* part = vow_value_bytes(refs[k].part, &plen);
    memcpy(buf + to, head + from, refs[k].at - from);
    to += refs[k].at - from;
    from = refs[k].at + VOWP_SHM_REF_LEN;
    ref_at[k] = to;
    if (fds[k] >= 0) {
      memcpy(buf + to, head + refs[k].at, VOWP_SHM_REF_LEN); /* for now */
      to += VOWP_SHM_REF_LEN;
    } else {
      memcpy(buf + to, part, plen);
      to += plen;
    }
  }
  memcpy(buf + to, head + from, hlen - from);
  /* Written in, parts may nest the whole past what a worker takes. */
  if (inline_any && total > VOWP_TASK_MAX_DEPTH) {
    vowp_limits lim = {0, VOWP_VALUE_MAX_OBJECTS, VOWP_TASK_MAX_DEPTH};
    vowp_error e;
    if (vowp_prescan((const char*)buf, total, &lim, 0, &e) != VOWP_OK) {
      *why = -1;
      goto out;
    }
  }
  for (k = 0; k < n; k++) {
    size_t plen;
    if (fds[k] < 0)
      continue;
    vow_value_bytes(refs[k].part, &plen);
    if ((*why = vow__shm_send(w->shm_sock, w->shm_sent + 1, fds[k])) != 0)
      goto out; /* a broken side socket: the worker is going */
    vowp_shm_ref_write(buf + ref_at[k], ++w->shm_sent, offs[k], plen);
    VOW__TRACE(w, "-> segment %llu for a part of task %llu (%zu bytes)",
               (unsigned long long)w->shm_sent, (unsigned long long)t->id,
               plen);
  }
out:
  if (*why != 0) {
    vow__free(buf);
    buf = NULL;
  }
  vow__free(fds);
  vow__free(offs);
  vow__free(ref_at);
  *out = buf;
  *out_len = buf ? total : 0;
  return buf != NULL;
}

/* Arguments too big for a frame that shared memory could not take: the
 * task fails, saying both. */
static void fail_unsendable(pworker* w, ptask* t, int why) {
  size_t alen;
  uint64_t live;
  vow_value_bytes(t->args, &alen);
  vow__shm_live(&live);
  vow__task_recall(w, t);
  if (vow__value_parts(t->args, NULL) > 0 && why != ENOMEM) {
    vow__pool_fail_task(
        w->pool, t,
        vow_failure_new(VOW_FAIL_BAD_INPUT, why == E2BIG ? UV_E2BIG : UV_EINVAL,
                        "arguments for %s cannot be sent: with the parts "
                        "that shared memory could not take written in, %s",
                        t->fn,
                        why == E2BIG ? "they pass the protocol's message limit"
                                     : "they pass a task's limits on nesting "
                                       "and objects"));
    vow__worker_task_done(w, t);
    return;
  }
  vow__pool_fail_task(
      w->pool, t,
      vow_failure_new(VOW_FAIL_BAD_INPUT, UV_E2BIG,
                      "arguments for %s of %zu bytes exceed the protocol's "
                      "message limit of %zu bytes, and shared memory could "
                      "not take them: %s (%llu bytes in segments now, "
                      "limit %llu)",
                      t->fn, alen, (size_t)VOWP_VALUE_MAX_BYTES,
                      why == ENOSPC   ? "its limit would be passed"
                      : why == EMFILE ? "its limit on segments "
                                        "(shm_max_segments) is reached"
                      : why           ? strerror(why)
                                      : "the worker takes no segments",
                      (unsigned long long)live,
                      (unsigned long long)vow__pool_shm_max_bytes(w->pool)));
  vow__worker_task_done(w, t);
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
  ptask* unsendable[1024];
  int unsendable_why[1024];
  /* by batch index: the reference that stands for big arguments */
  unsigned char(*refs)[VOWP_SHM_REF_LEN] = NULL;
  /* by batch index: arguments with parts, as this worker gets them */
  unsigned char** withparts = NULL;
  size_t* withparts_len = NULL;
  size_t i, start, encode, alen, taken, nbad = 0;
  bool was_idle = w->inflight.len == 0;
  if (n > sizeof(batch) / sizeof(batch[0]))
    n = sizeof(batch) / sizeof(batch[0]);
  for (taken = 0; taken < n;) {
    ptask* t = pool->queue.head;
    unsigned char ref[VOWP_SHM_REF_LEN];
    int why;
    vow__tlist_remove(&pool->queue, t);
    t->at.w = w;
    t->flags = (uint8_t)((t->flags | PT_INFLIGHT) & ~PT_STARTED);
    vow__tlist_push(&w->inflight, t);
    alen = 0;
    vow_value_bytes(t->args, &alen); /* 0: not msgpack (never big) */
    if (vow__value_parts(t->args, NULL) > 0) {
      unsigned char* b;
      size_t blen;
      if (withparts == NULL) {
        withparts = vow__calloc(n, sizeof(*withparts));
        withparts_len = vow__calloc(n, sizeof(*withparts_len));
      }
      if (withparts == NULL || withparts_len == NULL ||
          !args_with_parts(w, t, &b, &blen, &why)) {
        unsendable_why[nbad] = withparts && withparts_len ? why : ENOMEM;
        unsendable[nbad++] = t;
        n--;
        continue;
      }
      withparts[taken] = b;
      withparts_len[taken] = blen;
    } else if (args_by_segment(w, t, alen, ref, &why)) {
      if (refs == NULL)
        refs = vow__calloc(n, sizeof(*refs));
      if (refs != NULL)
        memcpy(refs[taken], ref, sizeof(ref));
    } else if (alen > VOWP_VALUE_MAX_BYTES) {
      unsendable_why[nbad] = why;
      unsendable[nbad++] = t;
      n--;
      continue;
    }
    batch[taken++] = t;
    if (t->count > 0)
      VOW__TRACE(w, "-> CHUNK task %llu %s (%u items from %llu)",
                 (unsigned long long)t->id, t->fn, (unsigned)t->count,
                 (unsigned long long)t->index);
    else
      VOW__TRACE(w, "-> TASK %llu %s", (unsigned long long)t->id, t->fn);
  }
  vowp_encoder_init(&e);
  encode = n;
  if (n == 1 && batch[0]->count == 0 && (refs == NULL || !refs[0][0]) &&
      withparts == NULL && vow_value_bytes(batch[0]->args, &alen) != NULL &&
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
      if (refs != NULL && refs[k][0]) {
        a = refs[k];
        alen = VOWP_SHM_REF_LEN;
      } else if (withparts != NULL && withparts[k] != NULL) {
        a = withparts[k];
        alen = withparts_len[k];
      }
      if (chunks)
        vowp_chunk_raw(&e, t->id, t->fn, a, alen, pool->opt.seed, t->index);
      else
        vowp_task_raw(&e, t->id, t->fn, a, alen,
                      vow__task_seed(pool->opt.seed, t->index));
    }
    vowp_batch_end(&e);
  }
  vow__free(refs);
  if (withparts != NULL)
    for (i = 0; i < n; i++)
      vow__free(withparts[i]);
  vow__free(withparts);
  vow__free(withparts_len);
  w->sent += n;
  if (was_idle && n > 0) {
    /* It was idle: its busy time starts now. */
    w->busy_since_ns = w->last_event_ns = vow__now_ns();
    w->woken = true;
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
  for (i = 0; i < nbad; i++)
    fail_unsendable(w, unsendable[i], unsendable_why[i]);
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
