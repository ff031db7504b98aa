/* The daemon's jobs: which may start, starting them,
 * reaping them, timeouts, cancel, dependencies, and the recovery of jobs
 * a dead daemon left running.
 *
 * Command jobs' processes are job_spawn.c's, task-function jobs' tasks are
 * tasks.c's; this file decides. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon.h"

/* ---- lists ------------------------------------------------------------ */

static void push(qjob*** v, size_t* n, size_t* cap, qjob* j) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    qjob** grown = realloc(*v, c * sizeof(qjob*));
    if (grown == NULL) {
      qd_log("out of memory");
      exit(VOW_EXIT_ERROR);
    }
    *v = grown;
    *cap = c;
  }
  (*v)[(*n)++] = j;
}

static void drop(qjob** v, size_t* n, qjob* j) {
  size_t i;
  for (i = 0; i < *n; i++)
    if (v[i] == j) {
      v[i] = v[--*n];
      return;
    }
}

/* The ready heaps: higher priority first, then lower id. */
static bool before(const qjob* a, const qjob* b) {
  return a->priority != b->priority ? a->priority > b->priority : a->id < b->id;
}

/* Swaps two places of a heap, keeping each job's heap_at. */
static void heap_swap(qheap* h, size_t a, size_t b) {
  qjob* t = h->v[a];
  h->v[a] = h->v[b];
  h->v[b] = t;
  h->v[a]->heap_at = a + 1;
  h->v[b]->heap_at = b + 1;
}

static void sift_up(qheap* h, size_t i) {
  for (; i > 0 && before(h->v[i], h->v[(i - 1) / 2]); i = (i - 1) / 2)
    heap_swap(h, i, (i - 1) / 2);
}

static void sift_down(qheap* h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && before(h->v[l], h->v[m]))
      m = l;
    if (r < h->n && before(h->v[r], h->v[m]))
      m = r;
    if (m == i)
      return;
    heap_swap(h, i, m);
    i = m;
  }
}

static void heap_push(qjob* j) {
  qheap* h = &j->grp->ready;
  push(&h->v, &h->n, &h->cap, j);
  j->heap_at = h->n;
  sift_up(h, h->n - 1);
}

/* Takes the job at place i out of its heap. */
static qjob* heap_take(qheap* h, size_t i) {
  qjob* j = h->v[i];
  if (i != h->n - 1)
    heap_swap(h, i, h->n - 1);
  h->n--;
  j->heap_at = 0;
  if (i < h->n) {
    sift_down(h, i);
    sift_up(h, i);
  }
  return j;
}

static qjob* heap_pop(qheap* h) {
  return h->n == 0 ? NULL : heap_take(h, 0);
}

/* Removes a job from its heap (a cancel or removal of a ready job): by
 * its place, so that cancelling many is not quadratic. */
static void heap_remove(qjob* j) {
  if (j->heap_at > 0 && j->grp != NULL)
    heap_take(&j->grp->ready, j->heap_at - 1);
}

/* ---- groups ----------------------------------------------------------- */

qgroup* qd_group(const char* name, bool create) {
  size_t i;
  qgroup* g;
  qgroup** grown;
  if (name == NULL || *name == '\0')
    name = QD_DEFAULT_GROUP;
  for (i = 0; i < the_daemon.ngroups; i++)
    if (strcmp(the_daemon.groups[i]->name, name) == 0)
      return the_daemon.groups[i];
  if (!create)
    return NULL;
  g = calloc(1, sizeof(*g));
  grown = realloc(the_daemon.groups, (the_daemon.ngroups + 1) * sizeof(*grown));
  if (g == NULL || grown == NULL || (g->name = strdup(name)) == NULL) {
    qd_log("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  g->slots = 1;
  the_daemon.groups = grown;
  the_daemon.groups[the_daemon.ngroups++] = g;
  return g;
}

size_t qd_nready(void) {
  size_t i, n = 0;
  for (i = 0; i < the_daemon.ngroups; i++)
    n += the_daemon.groups[i]->ready.n;
  return n;
}

int qd_set_group(qgroup* g, unsigned slots, bool paused) {
  if (qdb_set_group(the_daemon.db, g->name, slots, paused) != 0) {
    qd_log("group %s: %s", g->name, qdb_error(the_daemon.db));
    return -1;
  }
  g->slots = slots;
  g->paused = paused;
  return 0;
}

void qd_left_slot(qjob* j) {
  if (j->holds_slot) {
    j->holds_slot = false;
    j->grp->nrunning--;
  }
}

static qgroup* group_of(qjob* j) {
  if (j->grp == NULL)
    j->grp = qd_group(j->group, true);
  return j->grp;
}

/* ---- dependencies ----------------------------------------------------- */

/* 1: every dependency succeeded; 0: some still pending; -1: one ended
 * without success (its id in *bad). */
static int deps_state(const qjob* j, int64_t* bad) {
  size_t i;
  int result = 1;
  for (i = 0; i < j->nafter; i++) {
    qjob* d = qd_job(j->after[i]);
    if (d == NULL || d->state == QS_DONE)
      continue; /* unknown ids are refused at submit */
    if (qstate_final(d->state)) {
      *bad = d->id;
      return -1;
    }
    result = 0;
  }
  return result;
}

static void settle_waiters(qjob* j) {
  if (j->ended_p != NULL) {
    vow_fulfil(j->ended_p, vow_value_new_int(j->id));
    vow_promise_release(j->ended_p);
    j->ended_p = NULL;
  }
}

vow_promise_t* qd_ended(qjob* j) {
  if (qstate_final(j->state))
    return vow_succeed(the_daemon.ctx, vow_value_new_int(j->id));
  if (j->ended_p == NULL)
    j->ended_p = vow_promise_new(the_daemon.ctx, NULL, NULL);
  /* Each waiter gets a branch: cancelling it (a client that went away)
   * leaves the job's own promise alone. */
  return vow_branch(j->ended_p);
}

static void set_final(qjob* j, int state, const char* error);

/* A job ended: the queued jobs that waited on it may go, or never will.
 * One pass over the waiting jobs settles every one that can be settled;
 * a cancellation may free others (a call from set_final below only asks
 * for another pass), so passes go on until one changes nothing. */
static void release_dependents(void) {
  static bool releasing, again;
  if (releasing) {
    again = true;
    return;
  }
  releasing = true;
  do {
    size_t i = 0;
    again = false;
    while (i < the_daemon.nwaiting) {
      qjob* w = the_daemon.waiting[i];
      int64_t bad = 0;
      int st = deps_state(w, &bad);
      char why[96];
      if (st == 0) {
        i++;
        continue;
      }
      /* Out of the list in place: the last one takes its place. */
      the_daemon.waiting[i] = the_daemon.waiting[--the_daemon.nwaiting];
      if (st > 0) {
        heap_push(w);
      } else {
        snprintf(why, sizeof(why), "dependency %lld did not succeed (%s)",
                 (long long)bad, qstate_name(qd_job(bad)->state));
        set_final(w, QS_CANCELLED, why);
      }
    }
  } while (again);
  releasing = false;
}

void qd_add(qjob* j) {
  int64_t bad = 0;
  int st;
  if (j->id >= (int64_t)the_daemon.njobs_cap) {
    size_t cap = the_daemon.njobs_cap ? the_daemon.njobs_cap : 1024;
    qjob** grown;
    while ((int64_t)cap <= j->id)
      cap *= 2;
    grown = realloc(the_daemon.jobs, cap * sizeof(qjob*));
    if (grown == NULL) {
      qd_log("out of memory");
      exit(VOW_EXIT_ERROR);
    }
    memset(grown + the_daemon.njobs_cap, 0,
           (cap - the_daemon.njobs_cap) * sizeof(qjob*));
    the_daemon.jobs = grown;
    the_daemon.njobs_cap = cap;
  }
  the_daemon.jobs[j->id] = j;
  if (j->id > the_daemon.max_id)
    the_daemon.max_id = j->id;
  group_of(j);
  if (j->state != QS_QUEUED)
    return;
  st = deps_state(j, &bad);
  if (st > 0)
    heap_push(j);
  else
    push(&the_daemon.waiting, &the_daemon.nwaiting, &the_daemon.waiting_cap, j);
  if (st < 0)
    release_dependents();
}

/* ---- ending ----------------------------------------------------------- */

static void close_timer(qjob* j) {
  if (j->timer != NULL) {
    uv_timer_stop(j->timer);
    uv_close((uv_handle_t*)j->timer, (uv_close_cb)free);
    j->timer = NULL;
  }
}

static void set_final(qjob* j, int state, const char* error) {
  j->state = state;
  j->ended = vow_cli_now();
  if (error != NULL) {
    free(j->error);
    j->error = strdup(error);
  }
  qd_store(j);
  settle_waiters(j);
  release_dependents();
  qd_on_finish(j);
}

/* A running job's end: final, or back in the queue for another try. */
void qd_job_ended(qjob* j, int state, const char* error) {
  qd_left_slot(j);
  drop(the_daemon.running, &the_daemon.nrunning, j);
  close_timer(j);
  if ((state == QS_FAILED || state == QS_INTERRUPTED) && !j->cancel_asked &&
      j->attempts <= j->retries) {
    j->state = QS_QUEUED;
    free(j->error);
    j->error = error ? strdup(error) : NULL;
    qd_store(j);
    heap_push(j);
  } else {
    set_final(j, state, error);
  }
  qd_schedule();
  qd_maybe_drained();
}

/* Its timeout: TERM now, KILL if it is still there after the grace. */
static void on_timeout(uv_timer_t* t) {
  qjob* j = t->data;
  if (j->pgid <= 0)
    return; /* ended already */
  j->term_sent = true;
  qd_job_stop(j);
}

static void terminate(qjob* j) {
  if (j->kind == 1 && j->task_p != NULL) {
    vow_cancel(j->task_p); /* its worker is stopped by the pool */
    return;
  }
  if (j->kind != 0 || j->pgid <= 0)
    return;
  j->term_sent = true;
  qd_job_stop(j); /* a paused job is sent CONT too, to hear it */
}

void qd_cancel(qjob* j, const char* why) {
  if (j->state == QS_QUEUED) {
    drop(the_daemon.waiting, &the_daemon.nwaiting, j);
    heap_remove(j);
    set_final(j, QS_CANCELLED, why);
    qd_maybe_drained();
  } else if (j->state == QS_RUNNING && !j->cancel_asked) {
    j->cancel_asked = true;
    terminate(j);
  }
}

void qd_signal_running(int sig, const qgroup* g) {
  size_t i;
  for (i = 0; i < the_daemon.nrunning; i++)
    if (g == NULL || the_daemon.running[i]->grp == g)
      qd_job_signal(the_daemon.running[i], sig);
}

void qd_stop_all(void) {
  size_t i;
  the_daemon.stopping = true;
  for (i = 0; i < the_daemon.nrunning; i++)
    terminate(the_daemon.running[i]);
}

/* ---- starting --------------------------------------------------------- */

static void on_retry(uv_timer_t* t) {
  (void)t;
  qd_schedule();
}

static void start_timeout(qjob* j) {
  if (j->timeout_s <= 0)
    return;
  j->timer = malloc(sizeof(*j->timer));
  if (j->timer == NULL)
    return;
  uv_timer_init(the_daemon.loop, j->timer);
  j->timer->data = j;
  uv_timer_start(j->timer, on_timeout, (uint64_t)(j->timeout_s * 1000.0), 0);
}

/* Records j as running; it starts once that is committed (qd_commit), so
 * a daemon that dies in between finds it marked running and never reruns
 * it unasked. */
static void start(qjob* j) {
  j->attempts++;
  j->state = QS_RUNNING;
  j->holds_slot = true;
  j->grp->nrunning++;
  j->started = vow_cli_now();
  j->term_sent = j->cancel_asked = false;
  j->exit_status = j->term_signal = 0;
  push(&the_daemon.running, &the_daemon.nrunning, &the_daemon.running_cap, j);
  qd_store(j);
  push(&the_daemon.to_start, &the_daemon.nto_start, &the_daemon.to_start_cap,
       j);
}

static void launch(qjob* j) {
  char why[300];
  if (j->state != QS_RUNNING)
    return; /* cancelled before it could start */
  if (j->kind == 1) {
    qd_task_start(j);
    return;
  }
  if (qd_spawn(j, qd_left_slot, why, sizeof(why)) != 0) {
    j->exit_status = 127;
    qd_job_ended(j, QS_FAILED, why);
    return;
  }
  qd_store(j); /* its process group */
  start_timeout(j);
}

void qd_maybe_drained(void) {
  if (the_daemon.stopping && the_daemon.nrunning == 0) {
    the_daemon.hooks.stop();
    return;
  }
  if (the_daemon.draining && the_daemon.nrunning == 0 && qd_nready() == 0 &&
      the_daemon.nwaiting == 0) {
    the_daemon.stopping = true;
    the_daemon.hooks.stop();
  }
}

void qd_store(qjob* j) {
  if (qdb_update(the_daemon.db, j) != 0)
    qd_log("job %lld: %s", (long long)j->id, qdb_error(the_daemon.db));
  if (!j->dirty) {
    j->dirty = true;
    push(&the_daemon.dirty, &the_daemon.ndirty, &the_daemon.dirty_cap, j);
  }
}

void qd_forget(qjob* j) {
  drop(the_daemon.waiting, &the_daemon.nwaiting, j);
  heap_remove(j);
  qd_left_slot(j);
  drop(the_daemon.running, &the_daemon.nrunning, j);
  if (qd_job(j->id) == j)
    the_daemon.jobs[j->id] = NULL;
  while (the_daemon.max_id > 0 && the_daemon.jobs[the_daemon.max_id] == NULL)
    the_daemon.max_id--;
  j->forgotten = true;
  push(&the_daemon.graveyard, &the_daemon.ngraveyard, &the_daemon.graveyard_cap,
       j);
}

void qd_remove(qjob* j) {
  char name[48];
  int k;
  if (j->state == QS_QUEUED) {
    /* Taken out of the queue first, so what waits on it is cancelled. */
    drop(the_daemon.waiting, &the_daemon.nwaiting, j);
    heap_remove(j);
    j->state = QS_CANCELLED;
    j->ended = vow_cli_now();
    settle_waiters(j);
    release_dependents();
  }
  if (qdb_delete(the_daemon.db, j->id) != 0)
    qd_log("job %lld: %s", (long long)j->id, qdb_error(the_daemon.db));
  for (k = 0; k < 2; k++) {
    snprintf(name, sizeof(name), "%lld.%s", (long long)j->id,
             k == 0 ? "out" : "err");
    unlinkat(the_daemon.out_dir, name, 0);
  }
  qd_forget(j);
  qd_maybe_drained();
}

/* A job recorded as running whose start did not happen: queued again as
 * it was before start(). */
static void unstart(qjob* j) {
  drop(the_daemon.running, &the_daemon.nrunning, j);
  qd_left_slot(j);
  j->state = QS_QUEUED;
  j->attempts--;
}

static void clear_dirty(void) {
  size_t i;
  for (i = 0; i < the_daemon.ndirty; i++)
    the_daemon.dirty[i]->dirty = false;
}

/* The submissions a failed commit rolled back: their jobs go; their
 * replies become refusals. */
static void forget_refused(void) {
  pending* p;
  for (p = the_daemon.pending_head; p != NULL; p = p->next)
    for (size_t i = 0; i < p->njobs; i++)
      qd_forget(p->jobs[i]);
}

void qd_final_commit(void) {
  size_t i;
  for (i = 0; i < the_daemon.nto_start; i++) {
    unstart(the_daemon.to_start[i]);
    qd_store(the_daemon.to_start[i]);
  }
  the_daemon.nto_start = 0;
  if (qdb_flush(the_daemon.db) != 0)
    qd_log("%s", qdb_error(the_daemon.db));
  clear_dirty();
  the_daemon.ndirty = 0;
  the_daemon.hooks.committed(true);
}

void qd_commit(uv_prepare_t* h) {
  int round;
  size_t i;
  (void)h;
  /* Commit, answer, start what was recorded; the starts record process
   * groups, committed in the next round. */
  for (round = 0; round < 3; round++) {
    bool ok;
    qjob** starts;
    size_t nstarts;
    if (!qdb_in_txn(the_daemon.db) && the_daemon.pending_head == NULL &&
        the_daemon.nto_start == 0)
      break;
    ok = qdb_flush(the_daemon.db) == 0;
    clear_dirty();
    if (!ok) {
      size_t n = the_daemon.ndirty;
      qjob** again = malloc((n ? n : 1) * sizeof(*again));
      qd_log("%s; trying again in 1 s", qdb_error(the_daemon.db));
      for (i = 0; i < the_daemon.nto_start; i++) {
        unstart(the_daemon.to_start[i]);
        heap_push(the_daemon.to_start[i]);
      }
      the_daemon.nto_start = 0;
      if (again != NULL)
        memcpy(again, the_daemon.dirty, n * sizeof(*again));
      the_daemon.ndirty = 0;
      forget_refused();
      the_daemon.hooks.committed(false); /* refuses the submissions */
      for (i = 0; again != NULL && i < n; i++)
        if (!again[i]->forgotten)
          qd_store(again[i]);
      free(again);
      uv_timer_start(&the_daemon.retry_timer, on_retry, 1000, 0);
      break;
    }
    the_daemon.ndirty = 0;
    the_daemon.hooks.committed(true);
    starts = the_daemon.to_start;
    nstarts = the_daemon.nto_start;
    the_daemon.to_start = NULL;
    the_daemon.nto_start = the_daemon.to_start_cap = 0;
    for (i = 0; i < nstarts; i++)
      launch(starts[i]);
    free(starts);
  }
  for (i = 0; i < the_daemon.ngraveyard; i++)
    qjob_free(the_daemon.graveyard[i]);
  the_daemon.ngraveyard = 0;
}

void qd_schedule(void) {
  size_t i;
  if (the_daemon.retry_timer.data == NULL) {
    uv_timer_init(the_daemon.loop, &the_daemon.retry_timer);
    the_daemon.retry_timer.data = &the_daemon;
  }
  if (uv_is_active((uv_handle_t*)&the_daemon.retry_timer))
    return;
  for (i = 0;
       i < the_daemon.ngroups && !the_daemon.paused && !the_daemon.stopping;
       i++) {
    qgroup* g = the_daemon.groups[i];
    while (!g->paused && g->nrunning < g->slots && g->ready.n > 0) {
      qjob* j = heap_pop(&g->ready);
      if (j->state == QS_QUEUED)
        start(j);
    }
  }
}

/* ---- recovery --------------------------------------------------------- */

void qd_recover(void) {
  int64_t id;
  unsigned killed = qd_kill_leftovers();
  if (killed > 0)
    qd_log("killed %u processes of jobs the last daemon left running", killed);
  for (id = 1; id <= the_daemon.max_id; id++) {
    qjob* j = the_daemon.jobs[id];
    if (j == NULL || j->state != QS_RUNNING)
      continue;
    j->pgid = 0;
    if (j->attempts <= j->retries) {
      j->state = QS_QUEUED;
      free(j->error);
      j->error = strdup("interrupted by the daemon's death; retried");
      qd_store(j);
      heap_push(j);
    } else {
      set_final(j, QS_INTERRUPTED,
                "the daemon died while it ran (no retries left)");
    }
    qd_log("job %lld was running when the last daemon died: %s",
           (long long)j->id, qstate_name(j->state));
  }
}
