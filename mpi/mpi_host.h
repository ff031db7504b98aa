/* mpi/mpi_host.h — whether this process is rank 0 of an MPI job, and
 * the MPI module's ops when it is. Private to libvow. */
#ifndef VOW_MPI_HOST_H
#define VOW_MPI_HOST_H

#include <stdbool.h>

#include "mpi_module.h"

typedef enum vow__mpi_role {
  VOW__MPI_NONE,  /* not under an MPI launcher, or one rank: local workers */
  VOW__MPI_RANK0, /* rank 0 of a job of two or more: workers on the ranks */
  VOW__MPI_AGENT  /* another rank, which has served as a node agent */
} vow__mpi_role;

/* Joins the MPI job, once per process, when there is one to join (runner/
 * entry.c calls it: see vow__runner_mpi_rank0). A rank other than 0
 * serves as a node agent inside the first call, until rank 0 finishes;
 * then VOW__MPI_AGENT comes back with the status to exit with. */
vow__mpi_role vow__mpi_join(int* agent_status);
/* The worker slots the agents offer (rank 0 only). */
unsigned vow__mpi_slots(void);
/* The module's ops once joined, else NULL. */
const vow_mpi_ops* vow__mpi_ops(void);

#endif
