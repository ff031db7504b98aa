/* runner/mpi_host.h — libvow's side of the MPI transport: whether this
 * process is rank 0 of an MPI job, and remote worker slots for pools.
 * Private to runner/. */
#ifndef VOW_RUNNER_MPI_HOST_H
#define VOW_RUNNER_MPI_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct pworker pworker;
typedef struct vow_pool vow_pool_t;

/* Run by vow_worker_main and vow_pool_new, once per process: under an
 * MPI launcher with two or more ranks, joins the job. Ranks other than 0
 * become node agents here and never return. Returns true on rank 0 of
 * such a job, false when workers are local. */
bool vow__mpi_join(void);
/* The worker slots the agents offer (rank 0 only). */
unsigned vow__mpi_slots(void);
/* Starts w's worker on its slot's rank, relayed over fd, its stderr over
 * err_fd (-1: per the pool's stderr mode); both taken, also on failure.
 * Returns its channel id, or 0 if it could not. */
uint32_t vow__mpi_start(pworker* w, int fd, int err_fd);
void vow__mpi_kill(uint32_t chan, int sig);
/* A pool's handle for exits reported by the relay thread. */
int vow__mpi_pool_init(vow_pool_t* pool);
void vow__mpi_pool_close(vow_pool_t* pool, void (*on_closed)(uv_handle_t*));

#endif
