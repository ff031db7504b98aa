/* runner/entry.c — the first call of a vow program's main(): decides
 * what this process is (a worker, an MPI node agent, or the parent). In a
 * file of its own so that the stock vow-worker, which serves and nothing
 * else, links none of the pool. */
#include <stdlib.h>

#include "mpi_host.h"
#include "proto.h"
#include "runner.h"
#include "vow/worker.h"

bool vow__runner_mpi_rank0(void) {
  int status = 0;
  switch (vow__mpi_join(&status)) {
    case VOW__MPI_RANK0:
      return true;
    case VOW__MPI_AGENT:
      exit(status);
    case VOW__MPI_NONE:
      break;
  }
  return false;
}

void vow_worker_main(const vow_function_t* functions, size_t n) {
  if (getenv(VOWP_ENV_CHANNEL) != NULL)
    exit(vow_worker_serve(functions, n));
  /* On ranks other than 0 of an MPI job this becomes a node agent and
   * never returns, before the program has done anything twice. */
  vow__runner_mpi_rank0();
}
