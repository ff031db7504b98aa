/* The pool: tasks, the queue, dispatch, worker life and death, shutdown.
 *
 * Every task's promise settles exactly once. A task is either in the
 * pool's queue, or in flight on exactly one worker, or settled and freed;
 * a worker's in-flight list is settled, re-queued or failed as a whole when
 * that worker goes, whatever the reason. */
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool_internal.h"
#include "strv.h"
#include "os.h"

extern char** environ;

/* ---- the pool -------------------------------------------------------- */

static void pool_shutdown_op(vow__op* op);

static void on_handle_closed(uv_handle_t* h) {
  vow_pool_t* pool = h->data;
  pool->handles_open--;
  vow__pool_maybe_destroy(pool);
}

static void close_handles(vow_pool_t* pool) {
  if (!uv_is_closing((uv_handle_t*)&pool->kick))
    uv_close((uv_handle_t*)&pool->kick, on_handle_closed);
  if (pool->transport != NULL && pool->transport->close != NULL)
    pool->transport->close(pool, on_handle_closed);
}

static void destroy(vow_pool_t* pool) {
  size_t i;
  while (pool->queue.head != NULL) {
    ptask* t = pool->queue.head;
    vow__tlist_remove(&pool->queue, t);
    vow__task_free(pool, t);
  }
  vow__free(pool->cwd_copy);
  if (pool->transport != NULL && pool->transport->free != NULL)
    pool->transport->free(pool);
  vow__strv_free(pool->argv);
  vow__strv_free(pool->env);
  vow__free(pool->slot_failures);
  vow__free(pool->slot_given_up);
  for (i = 0; i < pool->nnames; i++)
    vow__free(pool->names[i]);
  vow__free(pool->names);
  vow__free(pool->workers);
  vow__arena_destroy(&pool->tasks);
  vow__free(pool);
}

/* This process was started as a pool's worker, and its main() went on
 * past where vow_worker_main() should have served: a pool here would
 * start workers that do the same, without end. Say what to do, and make
 * sure this process still dies with the parent that started it. */
static void refuse_in_worker(void) {
  const char* parent = getenv(VOWP_ENV_PARENT);
  fprintf(stderr,
          "vow: vow_pool_new was called in a worker process: call "
          "vow_worker_main() first in main(), before anything else, so "
          "that this program serves as its own worker\n");
  vow__os_die_with_parent();
  if (parent != NULL && (pid_t)strtol(parent, NULL, 10) != getppid())
    _exit(1); /* the parent is gone already: the signal will never come */
}

void vow_pool_options_init(vow_pool_options_t* o) {
  VOW__NOT_NULL(o, "the options");
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
}

/* The caller's options as this library's struct: the fields it was given
 * (those of its header), the rest at their defaults. Fields of a newer
 * header are refused unless they are all at their defaults. */
static int take_options(const vow_pool_options_t* in, vow_pool_options_t* out) {
  const unsigned char* extra;
  size_t i;
  vow_pool_options_init(out);
  if (in == NULL)
    return 0;
  if (in->size < offsetof(vow_pool_options_t, workers))
    return UV_EINVAL; /* not set: vow_pool_options_init was not called */
  extra = (const unsigned char*)in + sizeof(*out);
  for (i = sizeof(*out); i < in->size; i++)
    if (extra[i - sizeof(*out)] != 0)
      return UV_EINVAL;
  memcpy(out, in, in->size < sizeof(*out) ? in->size : sizeof(*out));
  out->size = sizeof(*out);
  return 0;
}

vow_pool_t* vow_pool_new(vow_ctx_t* ctx, const vow_pool_options_t* given,
                         int* err) {
  VOW__NOT_NULL(ctx, "the context");
  vow_pool_options_t taken;
  const vow_pool_options_t* options = &taken;
  vow_pool_t* pool = NULL;
  char buf[4096];
  size_t n, i;
  int rc = UV_ENOMEM, handles;
  struct sigaction sa;
  if (getenv(VOWP_ENV_CHANNEL) != NULL) {
    refuse_in_worker();
    rc = UV_EPERM;
    goto fail;
  }
  if ((rc = take_options(given, &taken)) != 0 ||
      options->retries > VOW_POOL_MAX_RETRIES) {
    rc = UV_EINVAL;
    goto fail;
  }
  rc = UV_ENOMEM;
  if ((pool = vow__calloc(1, sizeof(*pool))) == NULL)
    goto fail;
  pool->ctx = ctx;
  pool->events = &vow__engine_events;
  pool->opt = *options;
  /* Pointers the caller owns are copied below or not kept. */
  pool->opt.worker_argv = NULL;
  pool->opt.env = NULL;
  pool->opt.functions = NULL;
  pool->opt.launchers = NULL;
  pool->opt.limits = NULL;
  pool->opt.cwd = NULL;
  vow__trace_init();
  pool->transport = vow__transport_for(options);
  pool->opt.workers = pool->transport->slots(options);
  if (pool->opt.workers == 0) {
    rc = UV_EINVAL;
    goto fail;
  }
  pool->nworkers = pool->opt.workers;
  pool->respawn_timer.index = SIZE_MAX;
  pool->recall_timer.index = SIZE_MAX;
  vow__arena_init(&pool->tasks, sizeof(ptask), 256);

  /* The worker command: given, or this very program. */
  if (options->worker_argv && options->worker_argv[0]) {
    pool->argv = vow__strv_copy(options->worker_argv, 0);
  } else {
    n = sizeof(buf);
    if ((rc = uv_exepath(buf, &n)) != 0)
      goto fail;
    rc = UV_ENOMEM;
    pool->argv = vow__strv_copy(NULL, 1);
    if (pool->argv != NULL)
      vow__strv_push(pool->argv, buf); /* argv[0] is checked below */
  }
  if (pool->argv == NULL || pool->argv[0] == NULL)
    goto fail;

  /* Its environment: ours, the caller's additions, and the channel. */
  pool->env = vow__strv_copy((const char* const*)environ,
                             vow__strv_len(options->env) + 5);
  if (pool->env == NULL)
    goto fail;
  for (i = 0; options->env && options->env[i]; i++)
    if (vow__strv_push(pool->env, options->env[i]) != 0)
      goto fail;
  snprintf(buf, sizeof(buf), "%d", (int)getpid());
  if (vow__strv_push_env(pool->env, VOWP_ENV_CHANNEL, "3") != 0 ||
      vow__strv_push_env(pool->env, VOWP_ENV_PARENT, buf) != 0 ||
      (options->limits &&
       vow__strv_push_env(pool->env, VOWP_ENV_LIMITS, options->limits) != 0))
    goto fail;
  if (vow__pool_shm_threshold(pool) != UINT64_MAX) {
    /* A local worker finds its side socket for segments at fd 4. */
    snprintf(buf, sizeof(buf), "4,%llu",
             (unsigned long long)vow__pool_shm_threshold(pool));
    if (vow__strv_push_env(pool->env, VOWP_ENV_SHM, buf) != 0)
      goto fail;
  }

  /* The functions, known now from a table or later from a HELLO. */
  if (options->functions && options->nfunctions > 0) {
    pool->names = vow__calloc(options->nfunctions, sizeof(char*));
    if (pool->names == NULL)
      goto fail;
    for (i = 0; i < options->nfunctions; i++) {
      if ((pool->names[i] = vow__strdup(options->functions[i].name)) == NULL)
        goto fail;
      pool->nnames++;
    }
    pool->nknown = pool->nnames;
  } else {
    pool->names_from_hello = true;
  }
  if (options->cwd) {
    pool->cwd_copy = vow__strdup(options->cwd);
    if (pool->cwd_copy == NULL)
      goto fail;
    pool->opt.cwd = pool->cwd_copy;
  }

  pool->workers = vow__calloc(pool->nworkers, sizeof(pworker*));
  pool->slot_failures = vow__calloc(pool->nworkers, sizeof(unsigned));
  pool->slot_given_up = vow__calloc(pool->nworkers, sizeof(bool));
  if (pool->workers == NULL || pool->slot_failures == NULL ||
      pool->slot_given_up == NULL)
    goto fail;

  /* A worker that dies while we write to it must show as EPIPE, not kill
   * us; we touch SIGPIPE only when the host left it at its default. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }

  if ((handles = pool->transport->open(pool, options)) < 0) {
    rc = handles;
    goto fail;
  }
  uv_idle_init(ctx->loop, &pool->kick);
  pool->kick.data = pool;
  pool->handles_open = 1 + handles;
  vow__op_start(ctx, &pool->op, pool_shutdown_op);
  vow__pool_start_empty_slots(pool);
  return pool;
fail:
  if (err)
    *err = rc;
  if (pool)
    destroy(pool);
  return NULL;
}

vow_promise_t* vow_pool_shutdown(vow_pool_t* pool, bool graceful) {
  VOW__NOT_NULL(pool, "the pool");
  if (pool->shutdown_p == NULL) {
    pool->shutdown_p = vow_promise_new(pool->ctx, NULL, NULL);
    if (pool->shutdown_p == NULL)
      return NULL;
  }
  if (!graceful && pool->closing != 2) {
    pool->closing = 2;
    vow__timer_stop(pool->ctx, &pool->respawn_timer);
    vow__timer_stop(pool->ctx, &pool->recall_timer);
    vow__pool_cancel_all(pool, "the pool was shut down");
    vow__pool_kill_all(pool);
  } else if (pool->closing == 0) {
    pool->closing = 1;
    if (pool->broken)
      vow__pool_kill_all(pool);
    vow__pool_kick(pool);
  }
  vow__pool_refuse_space_waiters(pool);
  vow__pool_finish_shutdown(pool);
  return vow_promise_ref(pool->shutdown_p);
}

/* Frees the pool once nothing of it is left on the loop: after
 * vow_pool_free, or when its context closes. */
void vow__pool_maybe_destroy(vow_pool_t* pool) {
  if (pool->handles_open > 0 || pool->live_workers > 0)
    return;
  if (!pool->freeing && !pool->ctx->closing)
    return;
  if (!pool->freeing)
    vow__op_done(pool->ctx, &pool->op);
  /* A graceful shutdown leaves them as they were: armed, they would fire
   * on freed memory (the recall timer did, a test later, under load). */
  vow__timer_stop(pool->ctx, &pool->respawn_timer);
  vow__timer_stop(pool->ctx, &pool->recall_timer);
  destroy(pool);
}

void vow_pool_free(vow_pool_t* pool) {
  VOW__NOT_NULL(pool, "the pool");
  if (pool == NULL)
    return;
  if (pool->live_workers > 0) {
    fprintf(stderr,
            "vow: vow_pool_free called before its shutdown "
            "completed\n");
    abort();
  }
  vow__op_done(pool->ctx, &pool->op);
  /* The workers' last lines (a crash report) reach stderr before the
   * caller goes on, unless stderr is stuck. */
  if (pool->opt.stderr_mode == VOW_STDERR_RELAY)
    vow__relay_flush(1000);
  vow_promise_release(pool->shutdown_p);
  pool->shutdown_p = NULL;
  pool->freeing = true;
  vow__pool_fail_queue(pool, VOW_FAIL_CANCELLED, "the pool was freed");
  close_handles(pool);
}

/* At context close: kill everything, settle nothing; the pool is freed
 * once every handle of it is closed. */
static void pool_shutdown_op(vow__op* op) {
  vow_pool_t* pool = VOW__CONTAINER_OF(op, vow_pool_t, op);
  pool->closing = 2;
  vow__timer_stop(pool->ctx, &pool->respawn_timer);
  vow__timer_stop(pool->ctx, &pool->recall_timer);
  vow__pool_kill_all(pool);
  close_handles(pool);
}

void vow_pool_stats(const vow_pool_t* pool, vow_pool_stats_t* out) {
  VOW__NOT_NULL(pool, "the pool");
  VOW__NOT_NULL(out, "out");
  *out = pool->stats;
  out->queued = pool->queue.len;
  out->in_flight = vow__pool_in_flight(pool);
  out->workers_alive = vow__pool_workers_alive(pool);
}

void vow_pool_on_progress(vow_pool_t* pool, vow_progress_fn fn, void* data) {
  VOW__NOT_NULL(pool, "the pool");
  pool->progress = fn;
  pool->progress_data = data;
}
