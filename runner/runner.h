/* runner/runner.h — what this process is: a pool's worker, a node agent
 * of an MPI job, or a parent. Decided in runner/entry.c, the one file that
 * sees both the worker and the MPI roles and the one place in libvow that
 * ends the process in an orderly way (exit(), so the program's atexit
 * handlers run). */
#ifndef VOW_RUNNER_H
#define VOW_RUNNER_H

#include <stdbool.h>

/* True on rank 0 of an MPI job of two or more ranks (the pool's workers
 * then run on the ranks), false when workers are local. On the other
 * ranks the process serves as a node agent and exits here when rank 0
 * finishes. Called by vow_worker_main and vow_pool_new; decides once. */
bool vow__runner_mpi_rank0(void);

#endif
