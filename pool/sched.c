/* The scheduler's decisions, free of I/O so tests can check them alone:
 * how deep to pipeline each worker, how many tasks to send at once, how
 * long to wait before restarting a worker that failed to start, and the
 * per-task seeds. */
#include "pool_internal.h"

#define TARGET_QUEUED_NS 2000000ull /* keep ~2 ms of work on each worker */
#define MIN_LIMIT 2u
#define MAX_LIMIT 1024u
#define START_LIMIT 8u

unsigned vow__sched_limit(uint64_t ewma_ns, unsigned configured) {
  uint64_t n;
  if (configured != 0)
    return configured;
  if (ewma_ns == 0)
    return START_LIMIT; /* nothing measured yet */
  n = TARGET_QUEUED_NS / ewma_ns;
  if (n < MIN_LIMIT)
    return MIN_LIMIT;
  if (n > MAX_LIMIT)
    return MAX_LIMIT;
  return (unsigned)n;
}

uint64_t vow__sched_ewma(uint64_t ewma_ns, uint64_t elapsed_ns, size_t n,
                         bool upper_bound) {
  uint64_t per;
  if (n == 0)
    return ewma_ns;
  per = elapsed_ns / n;
  if (per == 0)
    per = 1;
  if (ewma_ns == 0)
    return per;
  /* The time to a reply may hold more than the tasks': the worker's
   * waking up when it was idle (tens of microseconds on a virtual
   * machine), or, once it has answered all it was sent, its waiting for
   * us (a parent reads replies only as often as its loop runs). Taken as
   * the tasks' own, such a figure shrinks the limit, which starves the
   * worker, which makes the next figure worse. */
  if (upper_bound && per > ewma_ns)
    return ewma_ns;
  /* Weight 1/4 for the new figure: a change of task size shows within a
   * few batches, one odd batch does not swing the limit. */
  return (ewma_ns * 3 + per) / 4;
}

size_t vow__sched_take(const tlist* queue, size_t inflight, unsigned limit,
                       bool worker_has_suspect) {
  const ptask* t;
  size_t n = 0;
  if (queue->head == NULL || worker_has_suspect || inflight >= limit)
    return 0;
  if (queue->head->flags & PT_SUSPECT)
    return inflight == 0 ? 1 : 0;
  for (t = queue->head; t != NULL && inflight + n < limit; t = t->next) {
    if (t->flags & PT_SUSPECT)
      break;
    n++;
  }
  return n;
}

uint64_t vow__task_seed(uint64_t run_seed, uint64_t id) {
  return vowp_task_seed(run_seed, id); /* workers derive map seeds too */
}

uint64_t vow__sched_backoff_ms(unsigned failures) {
  uint64_t ms = 100;
  while (failures-- > 1 && ms < 5000)
    ms *= 2;
  return ms > 5000 ? 5000 : ms;
}
