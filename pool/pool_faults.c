/* What goes wrong with workers and tasks: timeouts, cancel grace,
 * deaths, retries, poison tasks, failed starts and their backoff. Every
 * task a worker held is settled, re-queued or failed here when it goes. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"
#include "vow/worker.h"

vow_failure_t* vow__task_failure(int kind, int code, ptask* t, pworker* w,
                                 const char* fmt, ...) {
  va_list ap;
  vow_failure_t* f;
  va_start(ap, fmt);
  f = vow__failure_newv(kind, code, fmt, ap);
  va_end(ap);
  vow_origin_t o = {t->id, t->fn, NULL, w ? w->pid : 0, -1, -1};
  if (w != NULL && w->exited) {
    o.exit_status = w->term_signal ? -1 : (int)w->exit_status;
    o.term_signal = w->term_signal ? w->term_signal : -1;
  }
  vow_failure_set_origin(f, &o);
  if (w != NULL && w->tail_len > 0)
    vow_failure_set_detail(f, w->tail);
  return f;
}

/* Takes back w's next task still to settle, from its tail or its head,
 * freeing the settled ones on the way; NULL once w holds none. */
static ptask* recall_live(pworker* w, bool from_tail) {
  ptask* t;
  while ((t = from_tail ? w->inflight.tail : w->inflight.head) != NULL) {
    vow__task_recall(w, t);
    if (!vow__task_settled(t))
      return t;
    vow__task_free(w->pool, t);
  }
  return NULL;
}

/* Puts tasks back at the queue's front in their order, untouched. */
static void requeue_front(pworker* w, bool suspect) {
  vow_pool_t* pool = w->pool;
  ptask* t;
  while ((t = recall_live(w, true)) != NULL) {
    if (suspect) {
      t->flags |= PT_SUSPECT;
      pool->had_suspects = true;
    }
    vow__tlist_push_front(&pool->queue, t);
  }
}

/* ---- timers ---------------------------------------------------------- */

/* w's head task ran past its timeout (the event vow__worker_arm_head's
 * timer raises). */
static void head_timed_out(pworker* w) {
  vow_pool_t* pool = w->pool;
  ptask* t = w->inflight.head;
  char why[64];
  if (t == NULL)
    return;
  VOW__TRACE(w, "task %llu ran past its timeout", (unsigned long long)t->id);
  vow__task_recall(w, t);
  snprintf(why, sizeof(why), "%llu ms",
           (unsigned long long)(t->timeout_ms ? t->timeout_ms
                                              : pool->opt.timeout_ms));
  if (!vow__task_settled(t))
    vow__pool_fail_task(
        pool, t,
        vow__task_failure(VOW_FAIL_TIMEOUT, UV_ETIMEDOUT, t, w,
                          "the task ran past its timeout of %s; "
                          "its worker was killed",
                          why));
  vow__task_free(pool, t);
  /* The others it held never started: they go back as they were. */
  requeue_front(w, false);
  vow__worker_kill(w, PK_TIMEOUT);
  vow__pool_kick(pool);
}

void vow__worker_grace_over(vow__timer* timer) {
  pworker* w = VOW__CONTAINER_OF(timer, pworker, grace_timer);
  requeue_front(w, false);
  vow__worker_kill(w, PK_GRACE);
  vow__pool_kick(w->pool);
}

/* ---- worker life ----------------------------------------------------- */

void vow__pool_start_empty_slots(vow_pool_t* pool) {
  unsigned i;
  for (i = 0; i < pool->nworkers; i++)
    if (pool->workers[i] == NULL && !pool->slot_given_up[i])
      vow__worker_start(pool, i);
}

static void on_respawn(vow__timer* timer) {
  vow_pool_t* pool = VOW__CONTAINER_OF(timer, vow_pool_t, respawn_timer);
  if (pool->closing == 2 || pool->broken)
    return;
  vow__pool_start_empty_slots(pool);
}

void vow__pool_start_later(vow_pool_t* pool) {
  if (pool->respawn_timer.index != SIZE_MAX || pool->closing == 2)
    return;
  pool->respawn_timer.fire = on_respawn;
  pool->respawn_timer.discard = NULL;
  vow__timer_start(pool->ctx, &pool->respawn_timer,
                   vow__sched_backoff_ms(pool->start_failures + 1));
}

void vow__pool_worker_ready(pworker* w) {
  vow_pool_t* pool = w->pool;
  vow__worker_set_state(w, PW_READY);
  w->said_hello = true;
  pool->served = true;
  pool->start_failures = 0;
  pool->slot_failures[w->slot] = 0;
  vow__pool_kick(pool);
}

/* A worker that dies of a signal someone sends (kill, an OOM killer, a
 * chaos test) before its HELLO says nothing about whether the command can
 * start: it is a death like any other, not a failed start. Crashes
 * (SIGSEGV, SIGABRT...) at start-up and exits do count. */
static bool killed_from_outside(const pworker* w) {
  switch (w->term_signal) {
    case SIGKILL:
    case SIGTERM:
    case SIGINT:
    case SIGHUP:
    case SIGQUIT:
    case SIGUSR1:
    case SIGUSR2:
      return w->kill == PK_NONE && w->spawned;
    default:
      return false;
  }
}

/* No worker is started in slot any more; counted once. */
static void give_up_slot(vow_pool_t* pool, unsigned slot) {
  if (pool->slot_given_up[slot])
    return;
  pool->slot_given_up[slot] = true;
  pool->stats.slots_given_up++;
}

/* The last non-empty line of a worker's stderr tail, without its
 * newline, in a buffer of its own. */
static const char* last_line(const char* tail, size_t len) {
  static char line[512]; /* the loop's thread only; used at once */
  size_t end = len, start;
  while (end > 0 && (tail[end - 1] == '\n' || tail[end - 1] == '\r'))
    end--;
  start = end;
  while (start > 0 && tail[start - 1] != '\n')
    start--;
  if (end - start >= sizeof(line))
    start = end - (sizeof(line) - 1);
  memcpy(line, tail + start, end - start);
  line[end - start] = '\0';
  return line;
}

/* Describes how a worker ended, for failures and for the pool's reason to
 * give up. */
static void describe_end(const pworker* w, char* buf, size_t size) {
  if (w->why[0] != '\0')
    snprintf(buf, size, "%s", w->why);
  else if (w->term_signal)
    snprintf(buf, size, "worker pid %d was killed by signal %d (%s)", w->pid,
             w->term_signal, strsignal(w->term_signal));
  else
    snprintf(buf, size, "worker pid %d exited with status %lld", w->pid,
             (long long)w->exit_status);
}

void vow__pool_fail_queue(vow_pool_t* pool, int kind, const char* why) {
  while (pool->queue.head != NULL) {
    ptask* t = pool->queue.head;
    vow__tlist_remove(&pool->queue, t);
    vow__pool_fail_task(pool, t,
                        vow__task_failure(kind, 0, t, NULL, "%s", why));
    vow__task_free(pool, t);
  }
}

void vow__pool_finish_shutdown(vow_pool_t* pool) {
  if (pool->live_workers > 0 || pool->shutdown_p == NULL)
    return;
  vow__timer_stop(pool->ctx, &pool->respawn_timer);
  if (vow_promise_state(pool->shutdown_p) == VOW_PENDING)
    vow_fulfil(pool->shutdown_p, NULL);
}

/* Deals with every task the worker held when it went. */
static void settle_inflight(vow_pool_t* pool, pworker* w, const char* why) {
  tlist retry = {NULL, NULL, 0};
  ptask *t, *last_started = NULL;
  size_t could_have_run = 0;
  bool alone, past_started = false;
  /* Tasks run in the order sent: those after the last one the worker said
   * it started never ran, and go back as they were. The rest, up to that
   * one (all of them when it said nothing), may have run; the one certain
   * culprit is a lone task among them. */
  for (t = w->inflight.head; t != NULL; t = t->next)
    if (t->flags & PT_STARTED)
      last_started = t;
  for (t = w->inflight.head; t != NULL; t = t->next) {
    could_have_run += !vow__task_settled(t);
    if (t == last_started)
      break;
  }
  alone = could_have_run == 1;
  while ((t = w->inflight.head) != NULL) {
    bool never_ran = past_started;
    past_started = past_started || t == last_started;
    vow__task_recall(w, t);
    if (vow__task_settled(t)) {
      vow__task_free(pool, t);
      continue;
    }
    if (never_ran) {
      VOW__TRACE(w, "task %llu back to the queue: it never started",
                 (unsigned long long)t->id);
      vow__tlist_push(&retry, t);
      continue;
    }
    if (w->kill == PK_PROTOCOL && pool->opt.retries == 0) {
      vow__pool_fail_task(pool, t,
                          vow__task_failure(VOW_FAIL_PROTOCOL, 0, t, w,
                                            "%s; the worker was killed", why));
      vow__task_free(pool, t);
      continue;
    }
    if (w->kill == PK_ASKED || w->kill == PK_TIMEOUT || w->kill == PK_GRACE ||
        w->kill == PK_SILENT) {
      VOW__TRACE(w, "task %llu back to the queue: not its fault",
                 (unsigned long long)t->id);
      vow__tlist_push(&retry, t); /* not its fault: as it was */
      continue;
    }
    /* It died on its own, or broke the protocol (retried alike: the task
     * may be what broke it), with this task on it. A task counts a try only
     * when it was alone on the worker, the one certain culprit; when
     * several were, each becomes a suspect and runs alone from now on,
     * without a try counted, retries or not, so the one that kills its
     * worker is found without blaming the others for the company they
     * kept: only the culprit fails. */
    if (pool->closing != 2 &&
        (!alone ||
         (pool->opt.retries > 0 && ++t->attempts <= pool->opt.retries))) {
      pool->stats.retried++;
      t->flags |= PT_SUSPECT;
      pool->had_suspects = true;
      VOW__TRACE(w, "task %llu back to the queue to run alone (try %u)",
                 (unsigned long long)t->id, (unsigned)t->attempts);
      vow__tlist_push(&retry, t);
      continue;
    }
    if (pool->opt.retries > 0)
      vow__pool_fail_task(
          pool, t,
          vow__task_failure(VOW_FAIL_POISON, 0, t, w,
                            "poison task: it was on a worker that died each of "
                            "its tries (%s)",
                            why));
    else
      vow__pool_fail_task(pool, t,
                          vow__task_failure(VOW_FAIL_WORKER_DIED, 0, t, w,
                                            "the worker died: %s", why));
    vow__task_free(pool, t);
  }
  while ((t = retry.tail) != NULL) {
    vow__tlist_remove(&retry, t);
    if (pool->closing == 2) {
      vow__pool_fail_task(
          pool, t,
          vow__task_failure(VOW_FAIL_CANCELLED, UV_ECANCELED, t, NULL, "%s",
                            "the pool was shut down"));
      vow__task_free(pool, t);
    } else {
      vow__tlist_push_front(&pool->queue, t);
    }
  }
}

void vow__pool_worker_gone(pworker* w) {
  vow_pool_t* pool = w->pool;
  char why[700];
  bool in_slot = pool->workers[w->slot] == w;
  describe_end(w, why, sizeof(why));
  VOW__TRACE(w, "gone: %s", why);
  if (w->kill == PK_NONE || w->kill == PK_SILENT)
    pool->stats.worker_deaths++;
  if (!pool->ctx->closing) {
    settle_inflight(pool, w, why);
  } else {
    /* The context is closing: its promises are being reported and freed;
     * only our own records go. */
    while (w->inflight.head != NULL) {
      ptask* t = w->inflight.head;
      vow__tlist_remove(&w->inflight, t);
      vow__task_free(pool, t);
    }
  }
  if (in_slot)
    pool->workers[w->slot] = NULL;
  if (!in_slot) {
    pworker** at;
    for (at = &pool->retiring; *at != NULL; at = &(*at)->next_retiring)
      if (*at == w) {
        *at = w->next_retiring;
        break;
      }
  }
  if (!pool->ctx->closing && in_slot && pool->closing != 2 &&
      (pool->closing == 0 || pool->queue.head != NULL)) {
    if (!w->said_hello && w->kill != PK_ASKED && !killed_from_outside(w)) {
      /* It never started. Try again later, and not forever: a slot whose
       * worker fails every time (a host down under a launcher) is given
       * up, and the pool only when every slot is. */
      unsigned attempts =
          pool->opt.start_attempts ? pool->opt.start_attempts : 5;
      /* A worker that says it can never serve (its module does not
       * import) is not tried again: its slot is given up at once, and
       * every slot while no worker has ever served (they run the same
       * command; under launchers, a host that served shows the command
       * can run somewhere). */
      bool hopeless = w->exited && w->term_signal == 0 &&
                      w->exit_status == VOW_WORKER_EXIT_CANNOT_SERVE;
      pool->start_failures++;
      if (hopeless) {
        unsigned i;
        for (i = 0; i < pool->nworkers; i++)
          if (i == w->slot || !pool->served)
            give_up_slot(pool, i);
        /* Its stderr was relayed (or is in the failure of a worker's
         * start): the reason quotes only its last line. */
        snprintf(pool->broken_why, sizeof(pool->broken_why),
                 "the worker cannot serve: %s%s%s", why,
                 w->tail_len ? ": " : "", last_line(w->tail, w->tail_len));
      } else if (++pool->slot_failures[w->slot] >= attempts) {
        give_up_slot(pool, w->slot);
        snprintf(pool->broken_why, sizeof(pool->broken_why),
                 "workers cannot start (%u tries): %s%s%s", attempts, why,
                 w->tail_len ? "; its stderr ends: " : "",
                 w->tail_len ? w->tail : "");
        if (pool->opt.stderr_mode == VOW_STDERR_RELAY &&
            pool->stats.slots_given_up < pool->nworkers) {
          char head[64];
          int h = snprintf(head, sizeof(head),
                           "[worker %u] slot given up: ", w->slot);
          vow__relay_line(head, (size_t)h, pool->broken_why,
                          strlen(pool->broken_why));
        }
      }
      if (pool->stats.slots_given_up == pool->nworkers) {
        pool->broken = true;
        vow__pool_fail_queue(pool, VOW_FAIL_WORKER_DIED, pool->broken_why);
      } else if (pool->slot_given_up[w->slot]) {
        /* its tasks went back to the queue: the other slots take them */
      } else if (pool->respawn_timer.index == SIZE_MAX) {
        pool->respawn_timer.fire = on_respawn;
        pool->respawn_timer.discard = NULL;
        vow__timer_start(pool->ctx, &pool->respawn_timer,
                         vow__sched_backoff_ms(pool->start_failures));
      }
    } else {
      vow__worker_start(pool, w->slot);
    }
  }
  vow__free(w);
  if (!pool->ctx->closing) {
    vow__pool_finish_shutdown(pool);
    vow__pool_kick(pool);
  }
  vow__pool_maybe_destroy(pool);
}

void vow__pool_cancel_all(vow_pool_t* pool, const char* why) {
  unsigned i;
  pworker* w;
  vow__pool_fail_queue(pool, VOW_FAIL_CANCELLED, why);
  for (i = 0; i < pool->nworkers; i++) {
    w = pool->workers[i];
    if (w == NULL)
      continue;
    for (ptask* t = w->inflight.head; t != NULL; t = t->next)
      vow__pool_fail_task(
          pool, t,
          vow__task_failure(VOW_FAIL_CANCELLED, UV_ECANCELED, t, w, "%s", why));
  }
  for (w = pool->retiring; w != NULL; w = w->next_retiring)
    for (ptask* t = w->inflight.head; t != NULL; t = t->next)
      vow__pool_fail_task(
          pool, t,
          vow__task_failure(VOW_FAIL_CANCELLED, UV_ECANCELED, t, w, "%s", why));
}

void vow__pool_kill_all(vow_pool_t* pool) {
  unsigned i;
  pworker* w;
  for (i = 0; i < pool->nworkers; i++)
    if ((w = pool->workers[i]) != NULL)
      vow__worker_kill(w, PK_ASKED);
  for (w = pool->retiring; w != NULL; w = w->next_retiring)
    vow__worker_kill(w, PK_ASKED);
}

/* ---- what workers tell the engine ---------------------------------- */

const vow__pool_events vow__engine_events = {
    vow__pool_kick, vow__pool_worker_ready, vow__pool_worker_gone,
    vow__pool_start_later, head_timed_out};
