/* cli/cli.h — shared by the vow command's files; not for use outside
 * cli/. */
#ifndef VOW_CLI_H
#define VOW_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h" /* vowp_write_all for every command */

/* Exit statuses, as GNU parallel's: 1..100 failed jobs, 101 more. */
#define VOW_EXIT_MANY 101
#define VOW_EXIT_ERROR 255

int vow_cli_run(int argc, char** argv);
int vow_cli_map(int argc, char** argv);

/* Prints "vow: " and the message to stderr. */
void vow_cli_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* vow-worker: $VOW_WORKER, else beside this vow binary, else on PATH.
 * malloc'd. */
char* vow_cli_find_worker(void);

/* The time of day in seconds. */
double vow_cli_now(void);

/* Online CPUs, at least 1. */
unsigned vow_cli_cpus(void);
/* -j N, N%, +N, -N, 0 as GNU parallel reads them; 0 on a bad value. */
unsigned vow_cli_jobs(const char* spec, unsigned max_useful);

/* The joblog, in GNU parallel's format (joblog.c). */
#include <stdio.h>
/* Reads which jobs not to run again into *skip (malloc'd, by seq - 1,
 * *n of them): every job logged (mode 1, --resume) or every job logged as
 * a success (mode 2, --resume-failed). A missing file is an empty log.
 * Returns 0, or -1 after saying what is wrong with the file. */
int vow_cli_joblog_read(const char* path, char** skip, size_t* n, int mode);
/* --retry-failed: the command of every job the joblog shows as failed,
 * by seq - 1 (NULL for the others), *n of them. */
int vow_cli_joblog_failed(const char* path, char*** cmds, size_t* n);
/* Opens the joblog for writing, appending when resuming, with the header
 * when the file is new. NULL after an error message. */
FILE* vow_cli_joblog_open(const char* path, bool resume);
/* One line; flushed, so a run killed midway can be resumed. Write it
 * only once the job's output is out. 0, or -errno when it could not be
 * written. */
int vow_cli_joblog_write(FILE* f, size_t seq, double start, double runtime,
                         size_t received, long long exitval, int sig,
                         const char* command);
/* The same line, appended to out, for a caller that writes it later. */
struct vbuf;
void vow_cli_joblog_line(struct vbuf* out, size_t seq, double start,
                         double runtime, size_t received, long long exitval,
                         int sig, const char* command);

/* A growing byte buffer. */
typedef struct vbuf {
  char* data;
  size_t len, cap;
} vbuf;
void vbuf_add(vbuf* b, const void* p, size_t n);
void vbuf_str(vbuf* b, const char* s);
void vbuf_free(vbuf* b);

/* The progress line of --bar, --eta and --progress (progress.c): on
 * stderr, only when it is a terminal, redrawn in place. */
typedef struct vow_progress {
  int style; /* 0 none, 'b' --bar, 'e' --eta, 'p' --progress */
  bool on;   /* a style is set and stderr is a terminal */
  bool drawn;
  double started;
} vow_progress;
typedef struct vow_progress_counts {
  size_t done, total, running, failed; /* total: 0 while not known */
} vow_progress_counts;
void vow_progress_init(vow_progress* p, int style);
void vow_progress_draw(vow_progress* p, const vow_progress_counts* c,
                       bool final);
/* Clears the line, before anything else is written to the terminal. */
void vow_progress_erase(vow_progress* p);

/* Shell-quotes s onto b: as is when it is made of safe characters, else
 * in single quotes. */
void vow_cli_quote(vbuf* b, const char* s);

#endif
