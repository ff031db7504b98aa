/* runner/mpi_host.h — whether this process is rank 0 of an MPI job, and
 * the MPI module's ops when it is. Private to runner/. */
#ifndef VOW_RUNNER_MPI_HOST_H
#define VOW_RUNNER_MPI_HOST_H

#include <stdbool.h>

#include "mpi_module.h"

/* Run by vow_worker_main and vow_pool_new, once per process: under an
 * MPI launcher with two or more ranks, joins the job. Ranks other than 0
 * become node agents here and never return. Returns true on rank 0 of
 * such a job, false when workers are local. */
bool vow__mpi_join(void);
/* The worker slots the agents offer (rank 0 only). */
unsigned vow__mpi_slots(void);
/* The module's ops once joined, else NULL. */
const vow_mpi_ops* vow__mpi_ops(void);

#endif
