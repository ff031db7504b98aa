/* The joblog: one tab-separated line per finished job, with GNU
 * parallel's columns, read back by --resume and --resume-failed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Calls fn for each line of the joblog with its seq, exit value, signal
 * and command. A missing file is an empty log. */
static int each_line(const char* path,
                     void (*fn)(void*, size_t, long long, int, const char*),
                     void* arg) {
  FILE* f = fopen(path, "r");
  char* line = NULL; /* commands have no length limit: nor do lines */
  size_t cap = 0;
  ssize_t len;
  if (f == NULL)
    return 0; /* nothing run yet */
  while ((len = getline(&line, &cap, f)) >= 0) {
    size_t seq;
    long long exitval;
    int sig, at = 0;
    if (strncmp(line, "Seq\t", 4) == 0)
      continue;
    if (sscanf(line, "%zu\t%*s\t%*s\t%*s\t%*s\t%*s\t%lld\t%d\t%n", &seq,
               &exitval, &sig, &at) < 3 ||
        at == 0 || seq == 0 || seq > ((size_t)1 << 40)) {
      vow_cli_error(
          "%s is not a joblog: bad line \"%.60s\" (give another "
          "--joblog file, or remove this one)",
          path, line);
      free(line);
      fclose(f);
      return -1;
    }
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = '\0';
    for (ssize_t k = at; k < len; k++)
      if (line[k] == '\0')
        line[k] = '\n'; /* a command's newlines, as they are logged */
    fn(arg, seq, exitval, sig, line + at);
  }
  free(line);
  fclose(f);
  return 0;
}

typedef struct by_seq {
  void** items; /* char* for commands; (void*)1 for marks */
  size_t n;
  int mode;
} by_seq;

static void grow_to(by_seq* b, size_t seq) {
  if (seq <= b->n)
    return;
  b->items = realloc(b->items, seq * sizeof(void*));
  if (b->items == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  memset(b->items + b->n, 0, (seq - b->n) * sizeof(void*));
  b->n = seq;
}

static void mark(void* arg, size_t seq, long long exitval, int sig,
                 const char* cmd) {
  by_seq* b = arg;
  (void)cmd;
  grow_to(b, seq);
  /* The last line for a job wins: a rerun's result replaces the first. */
  b->items[seq - 1] =
      b->mode == 1 || (exitval == 0 && sig == 0) ? (void*)1 : NULL;
}

int vow_cli_joblog_read(const char* path, char** skip, size_t* n, int mode) {
  by_seq b = {NULL, 0, mode};
  size_t i;
  if (each_line(path, mark, &b) != 0)
    return -1;
  *skip = calloc(b.n ? b.n : 1, 1);
  if (*skip == NULL)
    exit(VOW_EXIT_ERROR);
  for (i = 0; i < b.n; i++)
    (*skip)[i] = b.items[i] != NULL;
  *n = b.n;
  free(b.items);
  return 0;
}

static void keep_failed(void* arg, size_t seq, long long exitval, int sig,
                        const char* cmd) {
  by_seq* b = arg;
  grow_to(b, seq);
  free(b->items[seq - 1]);
  b->items[seq - 1] = exitval != 0 || sig != 0 ? strdup(cmd) : NULL;
}

int vow_cli_joblog_failed(const char* path, char*** cmds, size_t* n) {
  by_seq b = {NULL, 0, 0};
  if (each_line(path, keep_failed, &b) != 0)
    return -1;
  *cmds = (char**)(b.items ? b.items : calloc(1, sizeof(char*)));
  *n = b.n;
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
  if (fflush(f) != 0) {
    vow_cli_error("cannot write the joblog %s: %s", path, strerror(errno));
    fclose(f);
    return NULL;
  }
  return f;
}

void vow_cli_joblog_line(vbuf* out, size_t seq, double start, double runtime,
                         size_t received, long long exitval, int sig,
                         const char* command) {
  char head[160];
  int n =
      snprintf(head, sizeof(head), "%zu\t:\t%.3f\t%10.3f\t0\t%zu\t%lld\t%d\t",
               seq, start, runtime, received, exitval, sig);
  vbuf_add(out, head, (size_t)n);
  /* A newline in the command is logged as a NUL, as GNU parallel logs
   * it: a job stays one line, and --resume reads it back. */
  for (; *command; command++)
    vbuf_add(out, *command == '\n' ? "" : command, 1);
  vbuf_add(out, "\n", 1);
}

int vow_cli_joblog_write(FILE* f, size_t seq, double start, double runtime,
                         size_t received, long long exitval, int sig,
                         const char* command) {
  vbuf line = {0};
  if (f == NULL)
    return 0;
  vow_cli_joblog_line(&line, seq, start, runtime, received, exitval, sig,
                      command);
  fwrite(line.data, 1, line.len, f);
  vbuf_free(&line);
  if (fflush(f) != 0 || ferror(f))
    return -(errno ? errno : EIO);
  return 0;
}
