/* The joblog: one tab-separated line per finished job, with GNU
 * parallel's columns, read back by --resume and --resume-failed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

int vow_cli_joblog_read(const char* path, size_t total, char* skip, int mode) {
  FILE* f = fopen(path, "r");
  char* line = NULL; /* commands have no length limit: nor do lines */
  size_t cap = 0;
  if (f == NULL)
    return 0; /* nothing run yet */
  while (getline(&line, &cap, f) >= 0) {
    size_t seq;
    long long exitval;
    int sig;
    if (strncmp(line, "Seq\t", 4) == 0)
      continue;
    if (sscanf(line, "%zu\t%*s\t%*s\t%*s\t%*s\t%*s\t%lld\t%d", &seq, &exitval,
               &sig) != 3) {
      vow_cli_error(
          "%s is not a joblog: bad line \"%.60s\" (give another "
          "--joblog file, or remove this one)",
          path, line);
      free(line);
      fclose(f);
      return -1;
    }
    if (seq == 0 || seq > total)
      continue;
    /* The last line for a job wins: a rerun's result replaces the first. */
    skip[seq - 1] = mode == 1 || (exitval == 0 && sig == 0);
  }
  free(line);
  fclose(f);
  return 0;
}

FILE* vow_cli_joblog_open(const char* path, bool resume) {
  struct stat st;
  bool fresh = !resume || stat(path, &st) != 0 || st.st_size == 0;
  FILE* f = fopen(path, resume ? "a" : "w");
  if (f == NULL) {
    vow_cli_error("cannot write the joblog %s: %s", path, strerror(errno));
    return NULL;
  }
  if (fresh)
    fputs(
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal"
        "\tCommand\n",
        f);
  fflush(f);
  return f;
}

void vow_cli_joblog_write(FILE* f, size_t seq, double start, double runtime,
                          size_t received, long long exitval, int sig,
                          const char* command) {
  if (f == NULL)
    return;
  fprintf(f, "%zu\t:\t%.3f\t%10.3f\t0\t%zu\t%lld\t%d\t%s\n", seq, start,
          runtime, received, exitval, sig, command);
  fflush(f);
}
