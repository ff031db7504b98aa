/* Task-function jobs: each runs as one task on a worker pool, one pool
 * per plugin library, its end reported like a command job's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "json.h"

static vow_pool_t* pool_for(const char* lib, char* why, size_t whylen) {
  size_t i;
  vow_pool_options_t o;
  const char* argv[3];
  char* worker;
  vow_pool_t* pool;
  vow_pool_t** pools;
  char** libs;
  int err = 0;
  for (i = 0; i < the_daemon.npools; i++)
    if (strcmp(the_daemon.pool_libs[i], lib) == 0)
      return the_daemon.pools[i];
  worker = vow_cli_find_worker();
  argv[0] = worker;
  argv[1] = lib;
  argv[2] = NULL;
  vow_pool_options_init(&o);
  o.workers = the_daemon.groups[0]->slots;
  o.worker_argv = argv;
  pool = vow_pool_new(the_daemon.ctx, &o, &err);
  free(worker);
  pools = realloc(the_daemon.pools, (the_daemon.npools + 1) * sizeof(*pools));
  libs = realloc(the_daemon.pool_libs, (the_daemon.npools + 1) * sizeof(*libs));
  if (pool == NULL || pools == NULL || libs == NULL) {
    snprintf(why, whylen, "cannot start workers for %s: %s", lib,
             err ? uv_strerror(err) : "out of memory");
    if (pools)
      the_daemon.pools = pools;
    if (libs)
      the_daemon.pool_libs = libs;
    return NULL;
  }
  the_daemon.pools = pools;
  the_daemon.pool_libs = libs;
  the_daemon.pools[the_daemon.npools] = pool;
  the_daemon.pool_libs[the_daemon.npools++] = strdup(lib);
  return pool;
}

static vow_outcome_t on_task(vow_value_t* v, vow_failure_t* f, void* data) {
  qjob* j = data;
  j->task_p = NULL;
  if (f != NULL) {
    char text[1024];
    vow_failure_describe(f, text, sizeof(text));
    vow_failure_release(f);
    the_daemon.hooks.job_ended(j,
                               j->cancel_asked       ? QS_CANCELLED
                               : the_daemon.stopping ? QS_INTERRUPTED
                                                     : QS_FAILED,
                               text);
  } else {
    size_t len;
    const void* b = vow_value_bytes(v, &len);
    free(j->result);
    j->result = b ? vow_msgpack_to_json(b, len, 0) : NULL;
    vow_value_release(v);
    if (j->result == NULL)
      the_daemon.hooks.job_ended(j, QS_FAILED,
                                 "its result cannot be written as JSON");
    else
      the_daemon.hooks.job_ended(j, QS_DONE, NULL);
  }
  return vow_ok(NULL);
}

void qd_task_start(qjob* j) {
  char why[512];
  vbuf packed = {0};
  char err[256];
  vow_pool_t* pool = pool_for(j->lib, why, sizeof(why));
  vow_value_t* args;
  vow_promise_t* p;
  if (pool == NULL) {
    the_daemon.hooks.job_ended(j, QS_FAILED, why);
    return;
  }
  if (vow_json_to_msgpack(j->arg_json, strlen(j->arg_json), &packed, err,
                          sizeof(err)) != 0) {
    vbuf_free(&packed);
    the_daemon.hooks.job_ended(j, QS_FAILED, err);
    return;
  }
  args = vow_value_new_msgpack(packed.data, packed.len, NULL);
  vbuf_free(&packed);
  if (args == NULL) {
    /* Never run with nil instead: the job says what went wrong. */
    the_daemon.hooks.job_ended(j, QS_FAILED, "no memory for its argument");
    return;
  }
  p = vow_pool_submit(pool, j->fn, args);
  j->task_p = p; /* pending until on_task runs */
  vow_promise_release(vow_add_both(p, on_task, j));
}

void qd_tasks_stop(void) {
  size_t i;
  for (i = 0; i < the_daemon.npools; i++)
    vow_promise_release(vow_pool_shutdown(the_daemon.pools[i], false));
}
