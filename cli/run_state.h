/* cli/run_state.h — vow run's state, shared by run.c (jobs),
 * run_output.c (captured output, --results, progress) and run_options.c;
 * private to cli/. */
#ifndef VOW_CLI_RUN_STATE_H
#define VOW_CLI_RUN_STATE_H

#include <limits.h>

#include "proc.h"
#include "run.h"

typedef struct capture {
  vbuf mem;
  int spill_fd;    /* -1 until the memory limit is passed */
  size_t total;    /* bytes received */
  off_t parked_at; /* -k: where it waits in the parking file; -1 none */
  size_t parked_len;
  bool eof;
  struct job* job;
  int fd;        /* 1 or 2: where it is printed */
  vbuf partial;  /* --line-buffer: a line not yet ended */
  bool mid_line; /* --tag: the last byte printed was not a newline */
} capture;

typedef struct job {
  size_t seq;
  run_args args;
  char** argv;   /* what runs */
  char* cmdline; /* for the joblog, --dry-run and messages */
  char* refused; /* --shell: a value that could not be quoted; never run */
  unsigned slot;
  unsigned attempts;
  vow__proc proc;
  capture out, err;
  uv_timer_t timer; /* --timeout */
  int open_handles; /* the timer, and the process once spawned */
  bool spawned, exited, timed_out, finished, printed, requeue;
  bool ended_by_run; /* killed as the run ends: not logged as run */
  bool direct; /* -k: the job printed next writes its stdout as it comes */
  int64_t exit_status;
  int term_signal;
  double start, runtime;
  struct job* next_waiting; /* --memfree: put back, to run again */
  char* tmp_wd; /* --wd ...: the job's own directory, removed after it */
} job;

enum { HALT_FAIL, HALT_SUCCESS, HALT_DONE };

typedef struct run_state {
  uv_loop_t* loop;
  run_inputs in;
  char** command;
  size_t ncommand;
  bool shell, keep_order, line_buffer, tag, dry_run, ungroup, shuf;
  bool values_command;       /* no command: each job's values are its command */
  bool hung_up;              /* SIGHUP: no new jobs; the running ones finish */
  char shell_path[PATH_MAX]; /* what runs a shell command */
  size_t shard_k, shard_n;   /* --shard K/N: only jobs J = K mod N run */
  int progress_style;        /* 0, 'b' --bar, 'e' --eta, 'p' --progress */
  vow_progress progress;
  unsigned jobs;
  double timeout_s;   /* 0: none */
  double timeout_pct; /* N%: of the median runtime */
  unsigned retries;   /* total tries per job (GNU: --retries N) */
  const char* joblog;
  FILE* joblog_f;
  int resume; /* 0, 1 --resume, 2 --resume-failed, 3 --retry-failed */
  char* skip; /* by seq: already done according to the joblog */
  size_t skip_n;
  char** retry_cmds;  /* --retry-failed: the failed jobs' commands by seq */
  bool joblog_append; /* --joblog +FILE */
  char* wd_pwd;       /* --wd: the job's $PWD (NULL for --wd ...) */
  char* caller_dir;   /* --wd: the job's $OLDPWD, where vow started */
  const char* retries_spec; /* --retries with replacement strings */
  const char* results;      /* --results DIR */
  const char* tagstring;    /* --tagstring STR */
  const char* workdir;      /* --workdir DIR: where jobs run */
  const char* nice;         /* --nice N: run jobs under nice -n N */
  double load_max;          /* --load N: 0 none */
  double memfree;           /* --memfree SIZE in bytes: 0 none */
  double delay_s;           /* --delay S: between job starts */
  double last_start;        /* when the last job started, for --delay */
  uv_timer_t delay;       /* the next start, while --delay or --load hold it */
  const char** arg_files; /* -a FILE, in order: input sources first */
  size_t narg_files;
  int halt_when;     /* 0 none, 1 soon, 2 now */
  int halt_why;      /* HALT_FAIL, HALT_SUCCESS or HALT_DONE */
  double halt_count; /* count, or fraction when halt_pct */
  bool halt_pct;
  bool halting;
  int halt_status;    /* the halting job's exit status */
  size_t halt_failed; /* failed jobs when the halt was decided */
  /* running */
  size_t total; /* jobs in all, once the input has ended */
  bool input_ended;
  size_t made, running, done, failed, succeeded;
  bool* slot_busy;
  job** running_jobs; /* by slot */
  job** ring;         /* -k: finished jobs by seq, until printed */
  size_t ring_cap;
  size_t next_print;  /* -k: the seq printed next */
  run_args* shuffled; /* --shuf: every job's values, in the order run */
  size_t nshuffled;
  job* waiting; /* --memfree: jobs put back */
  double* runtimes;
  size_t nruntimes, runtimes_cap;
  int signalled;
  bool broken_pipe;   /* stdout was closed under us */
  bool output_failed; /* some output could not be written: status 255 */
  uv_signal_t sigint, sigterm, sighup;
  vow__procs procs; /* the jobs' processes */
  char spill_dir[64];
  int park_fd; /* -k: one file for the output of jobs waiting their turn */
  off_t park_end;
} run_state;

extern run_state the_run;

/* run.c: output (named `what`) could not be written, for errno err: said
 * once, nothing more starts, the jobs running are ended, and the run's
 * status is 255. */
void run_output_failed(const char* what, int err);
/* Standard output was closed (| head): the run ends as SIGPIPE ends GNU
 * parallel. */
void run_stdout_closed(void);

/* run_options.c */
int run_parse_options(int argc, char** argv);

/* run_output.c */
void out_write(int fd, const char* p, size_t n);
void out_received(capture* c, const char* p, size_t n);
void out_ended(capture* c);
void out_print_job(job* j);
void out_park(job* j);
void out_go_direct(job* j);
void out_reset(capture* c);
void out_results(job* j);
void out_progress(bool final);
void out_finish(void);

#endif
