/* Task records: the lists they wait in, taking one back from a worker,
 * failing and freeing one, finding one by id, and the clock tasks and
 * workers are timed by. The parts every other pool file stands on: they
 * call nothing of the pool's. */
#include "pool_internal.h"

uint64_t vow__now_ns(void) {
  return uv_hrtime();
}

/* ---- lists ----------------------------------------------------------- */

void vow__tlist_push(tlist* l, ptask* t) {
  t->next = NULL;
  t->prev = l->tail;
  if (l->tail)
    l->tail->next = t;
  else
    l->head = t;
  l->tail = t;
  l->len++;
}

void vow__tlist_push_front(tlist* l, ptask* t) {
  t->prev = NULL;
  t->next = l->head;
  if (l->head)
    l->head->prev = t;
  else
    l->tail = t;
  l->head = t;
  l->len++;
}

void vow__tlist_remove(tlist* l, ptask* t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    l->head = t->next;
  if (t->next)
    t->next->prev = t->prev;
  else
    l->tail = t->prev;
  t->prev = t->next = NULL;
  l->len--;
}

/* ---- tasks ----------------------------------------------------------- */

void vow__task_recall(pworker* w, ptask* t) {
  vow__tlist_remove(&w->inflight, t);
  /* Off its worker, it is no longer asked back from it either. */
  t->flags &= (uint8_t) ~(PT_INFLIGHT | PT_RECALLED);
  t->at.pool = w->pool;
}

void vow__task_free(vow_pool_t* pool, ptask* t) {
  vow_value_release(t->args);
  vow__arena_put(&pool->tasks, t);
}

void vow__pool_fail_task(vow_pool_t* pool, ptask* t, vow_failure_t* f) {
  if (t->p == NULL) {
    vow_failure_release(f);
    return;
  }
  pool->stats.failed++;
  VOW__TRACE(NULL, "task %llu failed: %s", (unsigned long long)t->id,
             vow_failure_message(f));
  vow_reject(t->p, f);
  t->p = NULL;
}

ptask* vow__pool_find_inflight(pworker* w, uint64_t id) {
  ptask* t;
  /* Replies come in the order the worker runs its tasks: the head, almost
   * always. */
  for (t = w->inflight.head; t != NULL; t = t->next)
    if (t->id == id)
      return t;
  return NULL;
}

bool vow__worker_holds(const pworker* w, unsigned flag) {
  const ptask* t;
  for (t = w->inflight.head; t != NULL; t = t->next)
    if (t->flags & flag)
      return true;
  return false;
}
