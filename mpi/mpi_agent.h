/* mpi/mpi_agent.h — a node agent: what every rank but 0 becomes. */
#ifndef VOW_MPI_AGENT_H
#define VOW_MPI_AGENT_H

/* Offers this node's worker slots to rank 0, starts the workers it is
 * sent, relays their channels and reports their exits, until rank 0
 * says to stop. Returns the exit status for the process. */
int vow__mpi_agent_run(int rank);

#endif
