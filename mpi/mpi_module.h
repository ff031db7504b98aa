/* mpi/mpi_module.h — the interface between libvow and its MPI module
 * (libvow-mpi.so), which libvow loads only when a program runs under
 * mpirun. Keeping MPI in a module of its own means no vow program, worker
 * or command pays for loading libmpi unless it is one of an MPI job's
 * ranks. Both sides are built from one tree: the ABI number guards
 * against a module from another build. */
#ifndef VOW_MPI_MODULE_H
#define VOW_MPI_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define VOW_MPI_ABI 2
#define VOW_MPI_ENTRY "vow_mpi_module_v1"

/* Called on the module's thread when a remote worker has exited: status
 * and signal as libuv reports them; or status -1 if it never started,
 * with -sig its errno (0 if unknown). */
typedef void (*vow_mpi_exit_fn)(void* user, int64_t status, int sig);

typedef struct vow_mpi_ops {
  int abi;
  /* Joins the MPI job. On ranks other than 0 the process serves as a
   * node agent until rank 0 finishes, then returns 1 with the status the
   * process should exit with in *agent_status (the caller exits: the
   * module never ends the process). On rank 0 it returns 0 with the
   * number of worker slots the agents offer, or -1 with a message in
   * err. */
  int (*join)(unsigned* nslots, int* agent_status, char* err, size_t errlen);
  /* The rank that runs slot's workers (slots are spread over ranks). */
  int (*slot_rank)(unsigned slot);
  /* Starts argv on slot's rank with its stdin and stdout relayed to fd,
   * and its stderr to err_fd (or VOW_MPI_ERR_INHERIT: the agent's own;
   * VOW_MPI_ERR_DISCARD: /dev/null). The module owns the fds it is given
   * (it closes them once the worker has exited and what it wrote has
   * been delivered). Returns a channel id for kill, or 0 if it could
   * not (the fds are then still the caller's). */
  uint32_t (*start)(unsigned slot, int fd, int err_fd, char* const* argv,
                    const char* cwd, vow_mpi_exit_fn on_exit, void* user);
  /* Sends sig to the channel's worker; nothing if it has exited. */
  void (*kill)(uint32_t chan, int sig);
  /* Tells the agents to stop (killing what runs there) and leaves MPI. */
  void (*finish)(void);
} vow_mpi_ops;

#define VOW_MPI_ERR_INHERIT (-1)
#define VOW_MPI_ERR_DISCARD (-2)

typedef const vow_mpi_ops* (*vow_mpi_entry_fn)(void);

#endif
