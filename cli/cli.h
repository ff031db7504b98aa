/* cli/cli.h — shared by the vow command's files: the commands, the joblog
 * and the progress line. Not for use outside cli/. */
#ifndef VOW_CLI_CLI_H
#define VOW_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fdio.h" /* vowp_write_all for every command */
#include "tool.h"

int vow_cli_run(int argc, char** argv);
int vow_cli_map(int argc, char** argv);
/* vow merge: shards' outputs or joblogs back in input order (shard.c). */
int vow_cli_merge(int argc, char** argv);
/* --shard K/N or "slurm" into *k (1..N) and *n; -1 after an error
 * message. */
int vow_cli_parse_shard(const char* spec, size_t* k, size_t* n);
/* True for a queue client command's name (submit, status, ...). */
bool vow_cli_queue_command(const char* name);
int vow_cli_queue_client(const char* command, int argc, char** argv);

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
void vow_cli_joblog_line(vbuf* out, size_t seq, double start, double runtime,
                         size_t received, long long exitval, int sig,
                         const char* command);

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

#endif
