/* Prints the facts python/vow mirrors by hand, from the C headers
 * themselves, for python/tests/test_mirrors.py to hold the Python copies
 * against: one line each,
 *   const NAME VALUE
 *   field STRUCT NAME OFFSET SIZE
 *   size STRUCT SIZE
 * Names are the C ones without their prefix. */
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>

#include "os.h"
#include "proto.h"
#include "vow/vow.h"
#include "vow/worker.h"

#define CONST(name, value) printf("const %s %lld\n", name, (long long)(value))
#define FIELD(type, name)                                             \
  printf("field %s %s %zu %zu\n", #type, #name, offsetof(type, name), \
         sizeof(((type*)0)->name))
#define SIZE(type) printf("size %s %zu\n", #type, sizeof(type))

int main(void) {
  CONST("VERSION", VOWP_VERSION);
#define PRINT_MSG(name, value) CONST("MSG_" #name, VOWP_##name);
  VOWP_MSG_MAP(PRINT_MSG)
#undef PRINT_MSG
  CONST("VALUE_MAX_BYTES", VOWP_VALUE_MAX_BYTES);
  CONST("VALUE_MAX_OBJECTS", VOWP_VALUE_MAX_OBJECTS);
#define PRINT_KIND(name, text) CONST("FAIL_" #name, VOW_FAIL_##name);
  VOW_FAILURE_KIND_MAP(PRINT_KIND)
#undef PRINT_KIND
  CONST("PENDING", VOW_PENDING);
  CONST("FULFILLED", VOW_FULFILLED);
  CONST("REJECTED", VOW_REJECTED);
  CONST("WAITING", VOW_WAITING);
  CONST("STDERR_RELAY", VOW_STDERR_RELAY);
  CONST("STDERR_INHERIT", VOW_STDERR_INHERIT);
  CONST("STDERR_DISCARD", VOW_STDERR_DISCARD);
  CONST("UV_ENOMEM", UV_ENOMEM);
  CONST("UV_RUN_DEFAULT", UV_RUN_DEFAULT);
  CONST("UV_RUN_ONCE", UV_RUN_ONCE);
  CONST("UV_RUN_NOWAIT", UV_RUN_NOWAIT);
  CONST("PR_SET_PDEATHSIG", PR_SET_PDEATHSIG);
  CONST("PARENT_DEATH_SIGNAL", VOW__PARENT_DEATH_SIGNAL);
  CONST("WORKER_EXIT_CANNOT_SERVE", VOW_WORKER_EXIT_CANNOT_SERVE);

  FIELD(vow_pool_options_t, size);
  FIELD(vow_pool_options_t, workers);
  FIELD(vow_pool_options_t, worker_argv);
  FIELD(vow_pool_options_t, functions);
  FIELD(vow_pool_options_t, nfunctions);
  FIELD(vow_pool_options_t, in_flight);
  FIELD(vow_pool_options_t, queue_limit);
  FIELD(vow_pool_options_t, timeout_ms);
  FIELD(vow_pool_options_t, retries);
  FIELD(vow_pool_options_t, recycle_after);
  FIELD(vow_pool_options_t, seed);
  FIELD(vow_pool_options_t, cancel_grace_ms);
  FIELD(vow_pool_options_t, start_attempts);
  FIELD(vow_pool_options_t, env);
  FIELD(vow_pool_options_t, cwd);
  FIELD(vow_pool_options_t, limits);
  FIELD(vow_pool_options_t, stderr_mode);
  FIELD(vow_pool_options_t, stall_ms);
  FIELD(vow_pool_options_t, launchers);
  FIELD(vow_pool_options_t, nlaunchers);
  FIELD(vow_pool_options_t, hello_timeout_ms);
  FIELD(vow_pool_options_t, inherit_stdout);
  FIELD(vow_pool_options_t, liveness_ms);
  FIELD(vow_pool_options_t, shm_threshold);
  FIELD(vow_pool_options_t, shm_max_bytes);
  FIELD(vow_pool_options_t, shm_max_segments);
  SIZE(vow_pool_options_t);

  FIELD(vow_origin_t, task_id);
  FIELD(vow_origin_t, function);
  FIELD(vow_origin_t, path);
  FIELD(vow_origin_t, pid);
  FIELD(vow_origin_t, exit_status);
  FIELD(vow_origin_t, term_signal);
  SIZE(vow_origin_t);

  FIELD(vow_settled_t, tag);
  FIELD(vow_settled_t, state);
  FIELD(vow_settled_t, value);
  FIELD(vow_settled_t, bytes);
  FIELD(vow_settled_t, len);
  FIELD(vow_settled_t, failure);
  FIELD(vow_settled_t, promise);
  SIZE(vow_settled_t);
  return 0;
}
