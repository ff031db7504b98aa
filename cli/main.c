/* vow: the command. Subcommands: run (command lines in parallel, in the
 * manner of GNU parallel) and map (task functions over JSON lines). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "vow_serve.h"
#include "vow/vow.h"

static void usage(FILE* f) {
  fputs(
      "usage: vow COMMAND [options] ...\n"
      "\n"
      "  vow run  CMD [ARG...] ::: ARGS   run command lines in parallel\n"
      "  vow map  LIB.so FUNCTION         a task function over JSON lines\n"
      "  vow merge OUT.1 ... OUT.N        shards' outputs in input order\n"
      "\n"
      "  vow submit [opts] -- CMD ARGS    queue a job (starts vow serve)\n"
      "  vow status | wait | output | cancel | remove | clean | restart\n"
      "  vow parallel N | pause | resume | shutdown\n"
      "  vow serve                        the job queue's daemon\n"
      "\n"
      "vow COMMAND --help says more; vow --version prints the version.\n"
      "The queue's commands take --socket PATH before or after their name.\n",
      f);
}

/* A closed stdin, stdout or stderr becomes /dev/null: else the first
 * descriptor opened (a job's pipe, a worker's channel) would take its
 * number, and input, output and libuv's own handles would mix. GNU
 * parallel runs on the same way. */
static void open_closed_stdio(void) {
  int fd;
  for (fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
        open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
      _exit(VOW_EXIT_ERROR); /* no descriptor to say it on */
}

int main(int argc, char** argv) {
  open_closed_stdio();
  /* Under mpirun every rank but 0 becomes a node agent here, before
   * reading input or opening a joblog, and serves rank 0's workers. */
  vow_worker_main(NULL, 0);
  /* The command may change process-wide state the library leaves alone:
   * no descriptor of ours leaks into a job, and a closed pipe is an
   * error, not a death. */
  uv_disable_stdio_inheritance();
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return VOW_EXIT_ERROR;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    unsigned v = vow_version();
    printf("vow %u.%u.%u\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
    return 0;
  }
  if (strcmp(argv[1], "run") == 0)
    return vow_cli_run(argc - 1, argv + 1);
  if (strcmp(argv[1], "map") == 0)
    return vow_cli_map(argc - 1, argv + 1);
  if (strcmp(argv[1], "merge") == 0)
    return vow_cli_merge(argc - 1, argv + 1);
  if (strcmp(argv[1], "--socket") == 0 && argc > 3) {
    /* vow --socket PATH COMMAND ... is vow COMMAND --socket PATH ... */
    char* sock = argv[2];
    argv[1] = argv[3];
    argv[2] = (char*)"--socket";
    argv[3] = sock;
  }
  if (strcmp(argv[1], "serve") == 0)
    return vow_cli_serve(argc - 1, argv + 1);
  if (vow_cli_queue_command(argv[1]))
    return vow_cli_queue_client(argv[1], argc - 1, argv + 1);
  vow_cli_error("unknown command \"%s\" (try vow --help)", argv[1]);
  return VOW_EXIT_ERROR;
}
