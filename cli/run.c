/* vow run: command lines in parallel, in the manner of GNU parallel.
 *
 * Each job is a child process (proc/) in its own session (so its process
 * group can be signalled whole), its output captured by run_output.c. Jobs are
 * made from the inputs as they are read (run_input.c), so the first starts as
 * the first line arrives. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_state.h"
#include "os.h"

#define RUNTIMES_KEPT 65536 /* for --timeout N%: a median of this many */

run_state the_run;
extern char** environ;

static void* xcalloc(size_t n, size_t size) {
  void* p = calloc(n ? n : 1, size);
  if (p == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  return p;
}

/* --retries N: N tries in all; --retries with replacement strings is
 * worked out for each job, as GNU parallel does (--retries {//}). */
static unsigned job_tries(const job* j) {
  vbuf b = {0};
  long n;
  if (the_run.retries_spec == NULL)
    return the_run.retries;
  run_expand_plain(&b, the_run.retries_spec, &the_run.in, &j->args, j->seq,
                   j->slot);
  vbuf_add(&b, "", 1);
  n = strtol(b.data, NULL, 10);
  vbuf_free(&b);
  return n > 0 ? (unsigned)n : 1;
}

/* ---- joblog ----------------------------------------------------------- */

/* As GNU parallel logs a job: its own exit status and signal, -1 when
 * vow killed it (--timeout); a job the run itself ended (--halt now, a
 * signal, a closed stdout) is not logged, so --resume runs it again.
 * Called once the job's output has been written: a line in the joblog
 * means its output is out, so --resume after a crash never skips a job
 * whose output was lost. */
static void log_job(job* j) {
  int rc;
  if (j->ended_by_run || the_run.joblog_f == NULL)
    return;
  rc = vow_cli_joblog_write(the_run.joblog_f, j->seq, j->start, j->runtime,
                            j->out.total, j->timed_out ? -1 : j->exit_status,
                            j->term_signal, j->cmdline);
  if (rc != 0)
    run_output_failed(the_run.joblog, -rc);
}

/* --joblog FILE; +FILE appends to it, as GNU parallel's does; - is
 * standard output. */
static int open_joblog(void) {
  if (the_run.joblog == NULL)
    return 0;
  if (strcmp(the_run.joblog, "-") == 0) {
    int fd = dup(STDOUT_FILENO);
    the_run.joblog_f = fd < 0 ? NULL : fdopen(fd, "w");
    if (the_run.joblog_f == NULL) {
      vow_cli_error("cannot write the joblog to standard output: %s",
                    strerror(errno));
      return -1;
    }
    fputs(
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal"
        "\tCommand\n",
        the_run.joblog_f);
    return 0;
  }
  if (the_run.joblog[0] == '+') {
    the_run.joblog++;
    the_run.joblog_append = true;
  }
  if (the_run.resume == 3) {
    if (vow_cli_joblog_failed(the_run.joblog, &the_run.retry_cmds,
                              &the_run.skip_n) != 0)
      return -1;
  } else if (the_run.resume &&
             vow_cli_joblog_read(the_run.joblog, &the_run.skip, &the_run.skip_n,
                                 the_run.resume) != 0) {
    return -1;
  }
  the_run.joblog_f = vow_cli_joblog_open(
      the_run.joblog, the_run.resume != 0 || the_run.joblog_append);
  return the_run.joblog_f ? 0 : -1;
}

static bool skipped(size_t seq) {
  if (the_run.shard_n && (seq - 1) % the_run.shard_n != the_run.shard_k - 1)
    return true; /* another shard's job: counted, never run */
  if (the_run.retry_cmds != NULL)
    return seq > the_run.skip_n || the_run.retry_cmds[seq - 1] == NULL;
  return the_run.skip != NULL && seq <= the_run.skip_n && the_run.skip[seq - 1];
}

/* Once nothing more will start, input is not waited for. */
static void stop_starting(void) {
  run_inputs_pause(&the_run.in);
  uv_timer_stop(&the_run.delay);
}

/* ---- jobs ------------------------------------------------------------- */

static void start_jobs(void);
static void kill_job(job* j, int sig);

/* The run is ending (--halt now, a signal, a closed stdout): every job
 * still running gets sig, and is not counted as run. */
static void end_running_jobs(int sig) {
  unsigned i;
  for (i = 0; i < the_run.jobs; i++) {
    job* j = the_run.running_jobs[i];
    if (j != NULL && !j->exited) {
      j->ended_by_run = true;
      kill_job(j, sig);
    }
  }
}

void run_stdout_closed(void) {
  the_run.broken_pipe = true;
  if (the_run.signalled)
    return;
  /* stdout is gone: start nothing more and end the rest, as a closed
   * pipe ends GNU parallel; at once, not when a job ends (a job that
   * never ends, under --line-buffer, would hold the run). */
  the_run.signalled = SIGPIPE;
  end_running_jobs(SIGTERM);
  stop_starting();
}

void run_output_failed(const char* what, int err) {
  if (the_run.output_failed)
    return;
  the_run.output_failed = true;
  vow_cli_error("output is incomplete: writing %s: %s%s", what, strerror(err),
                err == ENOSPC || err == EDQUOT ? " (is the disk full?)" : "");
  if (!the_run.signalled) {
    end_running_jobs(SIGTERM);
    stop_starting();
  }
}

static int compare_doubles(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median_runtime(void) {
  double* r;
  double m;
  if (the_run.nruntimes < 3)
    return 0;
  r = malloc(the_run.nruntimes * sizeof(double));
  if (r == NULL)
    return 0;
  memcpy(r, the_run.runtimes, the_run.nruntimes * sizeof(double));
  qsort(r, the_run.nruntimes, sizeof(double), compare_doubles);
  m = r[the_run.nruntimes / 2];
  free(r);
  return m;
}

static int remove_entry(const char* path, const struct stat* st, int flag,
                        struct FTW* ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* --wd ...: the job's directory goes with it, whatever it left there. */
static void remove_tmp_wd(job* j) {
  if (j->tmp_wd == NULL)
    return;
  nftw(j->tmp_wd, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(j->tmp_wd);
  j->tmp_wd = NULL;
}

static void free_job(job* j) {
  size_t i;
  remove_tmp_wd(j);
  for (i = 0; j->argv[i]; i++)
    free(j->argv[i]);
  free(j->argv);
  free(j->cmdline);
  free(j->refused);
  run_args_free(&j->args);
  out_reset(&j->out);
  out_reset(&j->err);
  vbuf_free(&j->out.mem);
  vbuf_free(&j->err.mem);
  vbuf_free(&j->out.partial);
  vbuf_free(&j->err.partial);
  free(j);
}

/* -k: finished jobs wait in a ring by seq until the ones before them are
 * printed; it grows with the window between the oldest unprinted job and
 * the newest started, not with the input. */
static job** ring_at(size_t seq) {
  return &the_run.ring[seq & (the_run.ring_cap - 1)];
}

static void ring_fit(size_t seq) {
  size_t cap = the_run.ring_cap ? the_run.ring_cap : 64, s;
  job** grown;
  if (the_run.ring_cap && seq - the_run.next_print < the_run.ring_cap)
    return;
  while (seq - the_run.next_print >= cap)
    cap *= 2;
  grown = xcalloc(cap, sizeof(job*));
  for (s = the_run.next_print;
       the_run.ring_cap && s < the_run.next_print + the_run.ring_cap; s++)
    grown[s & (cap - 1)] = *ring_at(s);
  free(the_run.ring);
  the_run.ring = grown;
  the_run.ring_cap = cap;
}

/* Prints what may be printed now: everything finished with -k stops at
 * the first job still running, which then writes straight through. */
static void flush_ordered(void) {
  while (the_run.next_print <= the_run.made) {
    job* j;
    if (skipped(the_run.next_print)) {
      the_run.next_print++;
      continue;
    }
    if (the_run.ring_cap == 0 || (j = *ring_at(the_run.next_print)) == NULL)
      break;
    if (!j->finished) {
      out_go_direct(j);
      break;
    }
    out_print_job(j);
    log_job(j);
    *ring_at(the_run.next_print) = NULL;
    free_job(j);
    the_run.next_print++;
  }
}

static bool failed_job(const job* j) {
  return j->term_signal != 0 || j->exit_status != 0;
}

/* GNU parallel's exit status after a --halt: the failing job's own with
 * fail=1; 0 with success=; with a percentage, the percentage of all jobs
 * that had failed when the halt was decided, rounded up; otherwise their
 * number (101 past 100). */
static int halt_exit_status(void) {
  /* fail=1 and done=1: the job's own status, as GNU parallel has it */
  if (the_run.halt_why != HALT_SUCCESS && !the_run.halt_pct &&
      the_run.halt_count == 1)
    return the_run.halt_status;
  if (the_run.halt_why == HALT_SUCCESS)
    return 0;
  if (the_run.halt_pct)
    return (int)ceil(
        (double)the_run.halt_failed * 100.0 / (double)the_run.total - 1e-9);
  return the_run.halt_failed > 100 ? VOW_EXIT_MANY : (int)the_run.halt_failed;
}

static void check_halt(job* j) {
  double n = the_run.halt_why == HALT_SUCCESS ? (double)the_run.succeeded
             : the_run.halt_why == HALT_FAIL
                 ? (double)the_run.failed
                 : (double)(the_run.succeeded + the_run.failed);
  bool hit;
  if (the_run.halt_when == 0 || the_run.halting)
    return;
  if ((the_run.halt_why == HALT_SUCCESS && failed_job(j)) ||
      (the_run.halt_why == HALT_FAIL && !failed_job(j)))
    return;
  hit = the_run.halt_pct ? n / (double)the_run.total >= the_run.halt_count
                         : n >= the_run.halt_count;
  if (!hit)
    return;
  the_run.halting = true;
  the_run.halt_status =
      j->term_signal ? 128 + j->term_signal : (int)j->exit_status;
  the_run.halt_failed = the_run.failed;
  fprintf(stderr, "vow: this job %s:\n%s\n",
          failed_job(j) ? "failed" : "succeeded", j->cmdline);
  if (the_run.halt_when != 2 && the_run.running > 0) {
    fprintf(stderr, "vow: starting no more jobs; waiting for %zu to finish\n",
            the_run.running);
  }
}

static int spawn_job(job* j);

/* A job about to run again: what its last run left is dropped. */
static void reset_for_rerun(job* j) {
  j->requeue = j->exited = j->finished = j->timed_out = false;
  j->exit_status = 0;
  j->term_signal = 0;
  out_reset(&j->out);
  out_reset(&j->err);
}

/* --memfree: a job killed for memory is put back, to run again. */
static void put_back(job* j) {
  reset_for_rerun(j);
  j->direct = false;
  j->attempts--;
  j->next_waiting = the_run.waiting;
  the_run.waiting = j;
}

static void job_finished(job* j) {
  j->runtime = vow_cli_now() - j->start;
  j->finished = true;
  the_run.running--;
  the_run.slot_busy[j->slot - 1] = false;
  the_run.running_jobs[j->slot - 1] = NULL;
  if (j->requeue && !the_run.halting && !the_run.signalled &&
      !the_run.output_failed) {
    put_back(j);
    start_jobs();
    return;
  }
  if (failed_job(j) && j->attempts < job_tries(j) && !the_run.halting &&
      !the_run.signalled && !the_run.output_failed) {
    /* Try again in the same slot: what this attempt printed is dropped,
     * and only the last attempt goes in the joblog. */
    reset_for_rerun(j);
    if (spawn_job(j) == 0)
      return;
  }
  the_run.done++;
  if (failed_job(j))
    the_run.failed++;
  else
    the_run.succeeded++;
  if (the_run.nruntimes < RUNTIMES_KEPT) {
    if (the_run.nruntimes == the_run.runtimes_cap) {
      the_run.runtimes_cap =
          the_run.runtimes_cap ? the_run.runtimes_cap * 2 : 256;
      the_run.runtimes =
          realloc(the_run.runtimes, the_run.runtimes_cap * sizeof(double));
      if (the_run.runtimes == NULL)
        exit(VOW_EXIT_ERROR);
    }
    the_run.runtimes[the_run.nruntimes++] = j->runtime;
  }
  out_results(j);
  check_halt(j);
  if (the_run.halt_when == 2 && the_run.halting)
    end_running_jobs(SIGTERM);
  if (the_run.keep_order) {
    if (j->seq != the_run.next_print)
      out_park(j);
    flush_ordered();
  } else {
    out_print_job(j);
    log_job(j);
    free_job(j);
  }
  start_jobs();
  if (the_run.signalled || the_run.halting)
    stop_starting();
}

/* ---- one job's process ------------------------------------------------- */

/* The job's timer and its process. */
static void on_job_part_closed(job* j) {
  if (--j->open_handles == 0)
    job_finished(j);
}

static void on_timer_closed(uv_handle_t* h) {
  on_job_part_closed(h->data);
}

static void on_proc_closed(vow__proc* p) {
  on_job_part_closed(p->data);
}

static void maybe_done(job* j) {
  if (!j->exited || !j->out.eof || !j->err.eof)
    return;
  if (j->spawned)
    vow__proc_close(&j->proc, on_proc_closed);
  uv_close((uv_handle_t*)&j->timer, on_timer_closed);
}

static void on_job_output(vow__proc* p, int stream, const char* data,
                          size_t n) {
  job* j = p->data;
  out_received(stream == 1 ? &j->out : &j->err, data, n);
}

static void on_job_eof(vow__proc* p, int stream) {
  job* j = p->data;
  out_ended(stream == 1 ? &j->out : &j->err);
}

static void on_job_exit(vow__proc* p) {
  job* j = p->data;
  j->exited = true;
  j->exit_status = p->exit_status < 0 ? 0 : p->exit_status;
  j->term_signal = p->term_signal;
  uv_timer_stop(&j->timer);
}

/* Exited, and what it wrote while it ran is in: a background process it
 * left holding the pipe does not hold the run (GNU parallel, writing to
 * files, does not wait for one). */
static void on_job_done(vow__proc* p) {
  maybe_done(p->data);
}

static const vow__proc_calls job_calls = {on_job_output, on_job_eof,
                                          on_job_exit, on_job_done};

static void kill_job(job* j, int sig) {
  if (j->spawned && !j->exited)
    vow__proc_signal(&j->proc, sig); /* its whole group */
}

static void on_job_timer(uv_timer_t* t) {
  job* j = t->data;
  j->timed_out = true;
  /* said as GNU parallel says it */
  fprintf(stderr,
          "vow: warning: this job was killed because it timed out:\n%s\n",
          j->cmdline);
  vow__proc_stop(&j->proc, VOW__GRACE_RUN_MS);
}

/* The environment of a job: ours, with GNU parallel's $PARALLEL_SEQ (its
 * job number, {#}) and $PARALLEL_JOBSLOT (its slot, {%}); with --wd, its
 * $PWD is the directory as named (so that a shell's pwd says /bin, not
 * /usr/bin) and $OLDPWD where vow was started, as a cd would leave them.
 * Built in place for each spawn; the spawn copies it before it returns. */
static char** job_environ(const job* j) {
  static char** env;
  static size_t cap;
  static char seq[48], slot[48];
  static vbuf pwd, oldpwd;
  size_t n = 0, k = 0;
  bool wd = the_run.workdir != NULL;
  while (environ[n] != NULL)
    n++;
  if (cap < n + 5) {
    char** grown = realloc(env, (n + 5) * sizeof(char*));
    if (grown == NULL)
      return environ; /* without the variables rather than not at all */
    env = grown;
    cap = n + 5;
  }
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "PARALLEL_SEQ=", 13) != 0 &&
        strncmp(environ[i], "PARALLEL_JOBSLOT=", 17) != 0 &&
        !(wd && (strncmp(environ[i], "PWD=", 4) == 0 ||
                 strncmp(environ[i], "OLDPWD=", 7) == 0)))
      env[k++] = environ[i];
  snprintf(seq, sizeof(seq), "PARALLEL_SEQ=%zu", j->seq);
  snprintf(slot, sizeof(slot), "PARALLEL_JOBSLOT=%u", j->slot);
  env[k++] = seq;
  env[k++] = slot;
  if (wd) {
    pwd.len = oldpwd.len = 0;
    vbuf_str(&pwd, "PWD=");
    vbuf_str(&pwd, j->tmp_wd ? j->tmp_wd : the_run.wd_pwd);
    vbuf_add(&pwd, "", 1);
    vbuf_str(&oldpwd, "OLDPWD=");
    vbuf_str(&oldpwd, the_run.caller_dir);
    vbuf_add(&oldpwd, "", 1);
    env[k++] = pwd.data;
    env[k++] = oldpwd.data;
  }
  env[k] = NULL;
  return env;
}

static int make_workdir(const char* dir);

/* --wd ...: a directory of the job's own, as GNU parallel makes it:
 * $HOME/.parallel/tmp/HOST-PID-SEQ. NULL after an error message. */
static char* make_tmp_wd(const job* j) {
  const char* home = getenv("HOME");
  char host[256] = "localhost";
  char tail[320];
  vbuf dir = {0};
  int k;
  gethostname(host, sizeof(host) - 1);
  vbuf_str(&dir, home && *home ? home : "/tmp");
  vbuf_str(&dir, "/.parallel/tmp");
  vbuf_add(&dir, "", 1);
  if (make_workdir(dir.data) != 0) {
    vbuf_free(&dir);
    return NULL;
  }
  dir.len--;
  k = snprintf(tail, sizeof(tail), "/%s-%ld-%zu", host, (long)getpid(), j->seq);
  vbuf_add(&dir, tail, (size_t)k);
  vbuf_add(&dir, "", 1);
  if (mkdir(dir.data, 0700) != 0 && errno != EEXIST) {
    vow_cli_error("--wd ...: cannot make %s: %s", dir.data, strerror(errno));
    vbuf_free(&dir);
    return NULL;
  }
  return dir.data;
}

/* Starts the job in a session of its own, stdin from /dev/null, stdout
 * and stderr into pipes (with -u, ours), and SIGPIPE back at its
 * default. Returns 0 or a positive errno. */
static int spawn_process(job* j) {
  vow__proc_spec spec = {0};
  char** av = NULL;
  int rc;
  spec.argv = j->argv;
  if (the_run.workdir != NULL && strcmp(the_run.workdir, "...") == 0 &&
      j->tmp_wd == NULL && (j->tmp_wd = make_tmp_wd(j)) == NULL)
    return EIO;
  spec.env = job_environ(j);
  spec.cwd = j->tmp_wd ? j->tmp_wd : the_run.workdir;
  spec.fd[0] = VOW__PROC_NULL;
  spec.fd[1] = the_run.ungroup ? 1 : VOW__PROC_PIPE;
  spec.fd[2] = the_run.ungroup ? 2 : VOW__PROC_PIPE;
  spec.fd3 = -1;
  spec.own_group = true;
  spec.drain_at_exit = true;
  if (the_run.nice != NULL) {
    /* A spawn cannot set a priority, and lowering our own would take
     * vow's loop down with its jobs: nice(1) runs the command. */
    size_t n = 0;
    while (j->argv[n] != NULL)
      n++;
    if ((av = calloc(n + 4, sizeof(char*))) == NULL)
      return ENOMEM;
    av[0] = (char*)"nice";
    av[1] = (char*)"-n";
    av[2] = (char*)the_run.nice;
    memcpy(av + 3, j->argv, n * sizeof(char*));
    spec.argv = av;
  }
  rc = vow__proc_spawn(&j->proc, &the_run.procs, &spec, &job_calls, j);
  free(av);
  return rc;
}

static int spawn_job(job* j) {
  int rc;
  j->attempts++;
  the_run.slot_busy[j->slot - 1] = true;
  the_run.running_jobs[j->slot - 1] = j;
  the_run.running++;
  j->out.job = j->err.job = j;
  j->out.fd = 1;
  j->err.fd = 2;
  uv_timer_init(the_run.loop, &j->timer);
  j->timer.data = j;
  j->open_handles = 1;
  j->spawned = false;
  j->start = vow_cli_now();
  rc = j->refused ? EPERM : spawn_process(j);
  if (rc != 0) {
    /* As a shell says it: the job fails with 127, the run goes on. */
    char msg[512];
    int len = j->refused
                  ? snprintf(msg, sizeof(msg), "vow: %s\n", j->refused)
                  : snprintf(msg, sizeof(msg), "vow: %s: %s\n", j->argv[0],
                             uv_strerror(uv_translate_sys_error(rc)));
    if (len >= (int)sizeof(msg))
      len = (int)sizeof(msg) - 1;
    if (the_run.ungroup)
      out_write(2, msg, (size_t)len);
    else
      vbuf_add(&j->err.mem, msg, (size_t)len);
    j->exited = true;
    j->exit_status = 127;
    j->out.eof = j->err.eof = true;
    maybe_done(j);
    return 0;
  }
  j->spawned = true;
  j->open_handles++;
  if (the_run.ungroup)
    j->out.eof = j->err.eof = true; /* nothing comes through us */
  if (!j->exited) {
    double limit = the_run.timeout_s;
    if (the_run.timeout_pct > 0) {
      double m = median_runtime();
      limit = m > 0 ? m * the_run.timeout_pct / 100.0 : 0;
    }
    if (limit > 0)
      uv_timer_start(&j->timer, on_job_timer, (uint64_t)(limit * 1000.0), 0);
  }
  return 0;
}

/* Builds the job's command: each word with its replacements made (or the
 * values appended when no word has one); with --shell, one string for
 * /bin/sh in which every value is quoted. */
/* argv for the shell running text. */
static char** shell_argv(const char* text) {
  char** argv = xcalloc(4, sizeof(char*));
  argv[0] = strdup(the_run.shell_path);
  argv[1] = strdup("-c");
  argv[2] = strdup(text);
  return argv;
}

static void build_command(job* j) {
  run_words w = {0};
  size_t i;
  vbuf line = {0};
  if (the_run.retry_cmds != NULL) {
    /* --retry-failed: the joblog's command, as the shell it ran in. */
    j->argv = shell_argv(the_run.retry_cmds[j->seq - 1]);
    j->cmdline = strdup(the_run.retry_cmds[j->seq - 1]);
    return;
  }
  if (the_run.values_command) {
    /* No command given: the values are the command, as in GNU parallel
     * (cat commands | parallel): with --shell their text, joined by
     * spaces, for the shell; else each value one word. */
    for (i = 0; i < j->args.n; i++) {
      if (i)
        vbuf_add(&line, " ", 1);
      vbuf_str(&line, j->args.v[i]);
    }
    j->cmdline = line.data ? line.data : strdup("");
    if (the_run.shell || j->args.n == 0) {
      j->argv = shell_argv(j->cmdline);
    } else {
      j->argv = xcalloc(j->args.n + 1, sizeof(char*));
      for (i = 0; i < j->args.n; i++)
        j->argv[i] = strdup(j->args.v[i]);
    }
    return;
  }
  w.mode = the_run.shell ? WORDS_SHELL : WORDS_ARGV;
  run_expand_command(&w, the_run.command, the_run.ncommand, &the_run.in,
                     &j->args, j->seq, j->slot);
  if (the_run.shell) {
    char** sh;
    j->refused = w.refused; /* the job fails instead of running */
    w.refused = NULL;
    sh = run_words_take(&w);
    j->argv = shell_argv(sh[0]);
    j->cmdline = sh[0];
    free(sh);
    return;
  }
  j->argv = run_words_take(&w);
  for (i = 0; j->argv[i]; i++) {
    if (i)
      vbuf_add(&line, " ", 1);
    vow_cli_quote(&line, j->argv[i]);
  }
  j->cmdline = line.data ? line.data : strdup("");
}

/* The next job's values: 1, 0 while input is awaited, -1 at the end. */
static int next_args(run_args* a) {
  if (the_run.retry_cmds != NULL) {
    /* --retry-failed: the failed seqs of the joblog, nothing else. */
    while (the_run.made < the_run.skip_n &&
           the_run.retry_cmds[the_run.made] == NULL)
      the_run.made++;
    return the_run.made < the_run.skip_n ? (memset(a, 0, sizeof(*a)), 1) : -1;
  }
  if (the_run.shuffled != NULL) {
    if (the_run.made >= the_run.nshuffled)
      return -1;
    *a = the_run.shuffled[the_run.made];
    memset(&the_run.shuffled[the_run.made], 0, sizeof(*a));
    return 1;
  }
  return run_inputs_next(&the_run.in, a, false);
}

static job* make_job(run_args* a, unsigned slot) {
  job* j = xcalloc(1, sizeof(*j));
  j->seq = ++the_run.made;
  j->args = *a;
  j->slot = slot;
  j->out.spill_fd = j->err.spill_fd = -1;
  j->out.parked_at = j->err.parked_at = -1;
  j->out.job = j->err.job = j;
  build_command(j);
  return j;
}

static void on_delay_over(uv_timer_t* t) {
  (void)t;
  start_jobs();
}

/* --load: processes running now, less this one. */
static double running_processes(void) {
  int running = vow__os_running_processes();
  return running > 0 ? running - 1 : 0;
}

/* --load and --memfree hold starts while the machine is busy; looked at
 * again each second, as GNU parallel does. */
static bool machine_busy(void) {
  if (the_run.load_max > 0 && running_processes() >= the_run.load_max)
    return true;
  if (the_run.memfree > 0) {
    double avail = vow__os_memory_available();
    if (avail >= 0 && avail < the_run.memfree / 2 && the_run.running > 1) {
      /* The youngest job goes back to be run later. */
      job* youngest = NULL;
      unsigned i;
      for (i = 0; i < the_run.jobs; i++) {
        job* j = the_run.running_jobs[i];
        if (j && !j->exited && !j->requeue &&
            (youngest == NULL || j->start > youngest->start))
          youngest = j;
      }
      if (youngest != NULL) {
        youngest->requeue = true;
        kill_job(youngest, SIGTERM);
      }
    }
    if (avail >= 0 && avail < the_run.memfree)
      return true;
  }
  return false;
}

static void on_input(void) {
  start_jobs();
}

static void start_jobs(void) {
  while (!the_run.signalled && !the_run.halting && !the_run.output_failed &&
         !the_run.hung_up && the_run.running < the_run.jobs) {
    run_args a;
    unsigned slot;
    job* j;
    int got;
    if (the_run.delay_s > 0 && the_run.last_start > 0) {
      /* --delay: the next start waits until S seconds after the last. */
      double wait = the_run.last_start + the_run.delay_s - vow_cli_now();
      if (wait > 0) {
        if (!uv_is_active((uv_handle_t*)&the_run.delay))
          uv_timer_start(&the_run.delay, on_delay_over,
                         (uint64_t)(wait * 1000) + 1, 0);
        return;
      }
    }
    if ((the_run.load_max > 0 || the_run.memfree > 0) && machine_busy()) {
      if (!uv_is_active((uv_handle_t*)&the_run.delay))
        uv_timer_start(&the_run.delay, on_delay_over, 1000, 0);
      return;
    }
    for (slot = 0; slot < the_run.jobs && the_run.slot_busy[slot]; slot++) {
    }
    if (the_run.waiting != NULL) {
      j = the_run.waiting;
      the_run.waiting = j->next_waiting;
      j->slot = slot + 1;
      the_run.last_start = vow_cli_now();
      spawn_job(j);
      continue;
    }
    got = next_args(&a);
    if (got < 0) {
      the_run.input_ended = true;
      the_run.total = the_run.made;
      if (the_run.keep_order)
        flush_ordered();
      return;
    }
    if (got == 0)
      return; /* on_input comes back when there is more */
    if (skipped(the_run.made + 1)) {
      the_run.made++;
      run_args_free(&a);
      continue;
    }
    the_run.last_start = vow_cli_now();
    j = make_job(&a, slot + 1);
    if (the_run.keep_order) {
      ring_fit(j->seq);
      *ring_at(j->seq) = j;
      if (j->seq == the_run.next_print || the_run.next_print == 0)
        flush_ordered();
    }
    spawn_job(j);
  }
}

/* ---- signals ---------------------------------------------------------- */

static void on_signal(uv_signal_t* h, int sig) {
  (void)h;
  if (sig == SIGHUP && !the_run.hung_up) {
    /* A hang-up (the terminal went away), as GNU parallel takes it:
     * nothing new starts, the running jobs finish and are logged, and
     * the run ends as it would have (a joblog's --resume runs the rest).
     * Each job leads a session of its own, so the terminal's SIGHUP does
     * not reach it. */
    the_run.hung_up = true;
    fprintf(stderr,
            "vow: SIGHUP received: no new jobs will start; waiting for %zu "
            "to finish (SIGTERM stops them now)\n",
            the_run.running);
    stop_starting();
    uv_signal_stop(&the_run.sighup);
    return;
  }
  /* Running jobs get the signal; nothing new starts; what finishes is
   * logged; then we exit with 128 + the signal. */
  the_run.signalled = sig;
  end_running_jobs(sig);
  stop_starting();
  uv_signal_stop(&the_run.sigint);
  uv_signal_stop(&the_run.sigterm);
  uv_signal_stop(&the_run.sighup);
}

/* vow runs no shell unless --shell, so a pipe, redirection or command
 * list typed into the command reaches the program as a word (as with
 * parallel -q): say so once, since it is rarely what was meant. */
static void hint_shell_words(void) {
  static const char* const ops[] = {"|", "||", "&&",   ";", ">", ">>",
                                    "<", "2>", "2>&1", "&", "|&"};
  size_t w, k;
  if (the_run.shell)
    return;
  for (w = 0; w < the_run.ncommand; w++) {
    const char* word = the_run.command[w];
    bool op = false;
    for (k = 0; k < sizeof(ops) / sizeof(ops[0]) && !op; k++)
      op = strcmp(word, ops[k]) == 0;
    /* one word holding a whole pipeline: `vow run 'sort | uniq -c'` */
    if (!op && w == 0 && strchr(word, ' ') != NULL)
      op = strpbrk(word, "|;&<>") != NULL;
    if (op) {
      fprintf(stderr,
              "vow: hint: \"%s\" in the command is passed to it as an "
              "argument: vow runs no shell (like parallel -q); add --shell "
              "for pipes and redirections\n",
              word);
      return;
    }
  }
}

/* --workdir DIR is made when missing, parents too, as GNU parallel makes
 * it; what cannot be made, or is not a directory, is an error before any
 * job runs. */
static int make_workdir(const char* dir) {
  char path[4096];
  struct stat st;
  size_t i, len = strlen(dir);
  if (len == 0 || len >= sizeof(path)) {
    vow_cli_error("--workdir: \"%s\" is not a usable directory name", dir);
    return -1;
  }
  memcpy(path, dir, len + 1);
  for (i = 1; i <= len; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    path[i] = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
      vow_cli_error("--workdir %s: cannot make %s: %s", dir, path,
                    strerror(errno));
      return -1;
    }
    path[i] = dir[i];
  }
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    vow_cli_error("--workdir %s: not a directory", dir);
    return -1;
  }
  return 0;
}

/* A path with . and .. taken out as a cd takes them (lexically). */
static void normalize_path(char* path) {
  char* out = path;
  const char* p = path;
  while (*p) {
    const char* end;
    size_t n;
    while (*p == '/')
      p++;
    end = strchrnul(p, '/');
    n = (size_t)(end - p);
    if (n == 1 && p[0] == '.') {
      /* nothing */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      while (out > path && *--out != '/')
        ;
    } else if (n > 0) {
      *out++ = '/';
      memmove(out, p, n);
      out += n;
    }
    p = end;
  }
  if (out == path)
    *out++ = '/';
  *out = '\0';
}

/* --workdir DIR: made now (--wd ...: one for each job as it starts), and
 * the $PWD and $OLDPWD its jobs will see. */
static int set_workdir(void) {
  const char* pwd = getenv("PWD");
  char cwd[4096];
  struct stat here, st;
  vbuf p = {0};
  if (getcwd(cwd, sizeof(cwd)) == NULL)
    snprintf(cwd, sizeof(cwd), "/");
  /* $PWD names where vow runs the way the caller's shell named it */
  if (pwd != NULL && pwd[0] == '/' && stat(pwd, &st) == 0 &&
      stat(".", &here) == 0 && st.st_dev == here.st_dev &&
      st.st_ino == here.st_ino)
    snprintf(cwd, sizeof(cwd), "%s", pwd);
  the_run.caller_dir = strdup(cwd);
  if (strcmp(the_run.workdir, "...") == 0)
    return 0;
  if (make_workdir(the_run.workdir) != 0)
    return -1;
  if (the_run.workdir[0] != '/') {
    vbuf_str(&p, cwd);
    vbuf_add(&p, "/", 1);
  }
  vbuf_str(&p, the_run.workdir);
  vbuf_add(&p, "", 1);
  normalize_path(p.data);
  the_run.wd_pwd = p.data;
  return 0;
}

static void on_tick(uv_timer_t* t) {
  (void)t;
  out_progress(false);
}

/* --shuf: every job's values read first, then run in random order. */
static void shuffle_all(void) {
  size_t cap = 0, i;
  run_args a;
  while (run_inputs_next(&the_run.in, &a, true) == 1) {
    if (the_run.nshuffled == cap) {
      cap = cap ? cap * 2 : 256;
      the_run.shuffled = realloc(the_run.shuffled, cap * sizeof(run_args));
      if (the_run.shuffled == NULL)
        exit(VOW_EXIT_ERROR);
    }
    the_run.shuffled[the_run.nshuffled++] = a;
  }
  /* The clock's microseconds, wrapped to the seed's width. */
  srand((unsigned)(uint64_t)(vow_cli_now() * 1e6) ^ (unsigned)getpid());
  for (i = the_run.nshuffled; i > 1; i--) {
    size_t k = (size_t)rand() % i;
    run_args t = the_run.shuffled[i - 1];
    the_run.shuffled[i - 1] = the_run.shuffled[k];
    the_run.shuffled[k] = t;
  }
  if (the_run.shuffled == NULL)
    the_run.shuffled = xcalloc(1, sizeof(run_args));
}

/* The budget of -X, -m and --xargs: a command line of GNU parallel's
 * length, less the command's own words. */
static void size_multi(void) {
  run_linelen_init(&the_run.in, the_run.command, the_run.ncommand,
                   the_run.shell);
}

/* --shell: whether a replacement string stands in the command's first
 * word (before a blank or =: vow run --shell {} ::: 'ls -l', l{}). Then
 * the values are the command's own text and go in unquoted, everywhere
 * in it, as GNU parallel does; V={} cmd is an assignment, quoted. */
static bool command_in_first_word(void) {
  const char* p = the_run.ncommand > 0 ? the_run.command[0] : "";
  for (; *p && strchr(" \t\n=", *p) == NULL; p++) {
    run_token t;
    if (run_parse_token(p, &the_run.in, &t) > 0)
      return true;
  }
  return false;
}

static int dry_run(void) {
  run_args a;
  while (the_run.shuffled ? next_args(&a) == 1
                          : run_inputs_next(&the_run.in, &a, true) == 1) {
    job* j = make_job(&a, (unsigned)((the_run.made) % the_run.jobs) + 1);
    printf("%s\n", j->cmdline);
    free_job(j);
  }
  if (fflush(stdout) != 0) {
    vow_cli_error("writing standard output: %s", strerror(errno));
    return VOW_EXIT_ERROR;
  }
  return 0;
}

/* Ends a run that started no job: the inputs closed, the loop too. */
static int close_early(uv_loop_t* loop, int status) {
  run_inputs_close(&the_run.in);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return status;
}

int vow_cli_run(int argc, char** argv) {
  int first, status;
  uv_loop_t loop;
  uv_timer_t tick;
  bool need_all;
  memset(&the_run, 0, sizeof(the_run));
  the_run.park_fd = -1;
  first = run_parse_options(argc, argv);
  if (first < 0)
    return VOW_EXIT_ERROR;
  the_run.command = argv + first;
  while (first + (int)the_run.ncommand < argc &&
         strncmp(argv[first + (int)the_run.ncommand], ":::", 3) != 0)
    the_run.ncommand++;
  the_run.values_command = the_run.ncommand == 0 && the_run.resume != 3;
  if (run_pick_shell(the_run.shell_path, sizeof(the_run.shell_path)) != 0)
    return VOW_EXIT_ERROR;
  the_run.in.raw_values = the_run.shell && command_in_first_word();
  if (run_inputs_parse(&the_run.in, argc, argv, first + (int)the_run.ncommand,
                       the_run.arg_files, the_run.narg_files) != 0)
    return VOW_EXIT_ERROR;
  hint_shell_words();
  if (the_run.workdir != NULL && set_workdir() != 0)
    return VOW_EXIT_ERROR;
  if (the_run.retries == 0)
    the_run.retries = 1; /* --retries N: N tries in all */
  the_run.in.jobs = the_run.jobs;
  if (the_run.in.multi)
    size_multi();
  uv_loop_init(&loop);
  the_run.loop = &loop;
  /* What needs the count of all jobs reads the whole input first, as GNU
   * parallel does for these. */
  need_all = the_run.shuf || the_run.halt_pct;
  if (the_run.resume != 3 &&
      run_inputs_open(&the_run.in, the_run.dry_run ? NULL : &loop, need_all) !=
          0)
    return close_early(&loop, VOW_EXIT_ERROR);
  if (the_run.shell && !the_run.in.raw_values && the_run.retry_cmds == NULL) {
    char why[512];
    if (run_shell_check(the_run.command, the_run.ncommand, &the_run.in, why,
                        sizeof(why)) != NULL) {
      vow_cli_error("%s", why);
      return close_early(&loop, VOW_EXIT_ERROR);
    }
  }
  the_run.in.ready = on_input;
  if (the_run.shuf)
    shuffle_all();
  if (the_run.dry_run)
    return close_early(&loop, dry_run());
  if (open_joblog() != 0)
    return close_early(&loop, VOW_EXIT_ERROR);
  if (need_all)
    the_run.total =
        the_run.shuffled ? the_run.nshuffled : run_inputs_left(&the_run.in);
  if (the_run.resume == 3)
    the_run.total = the_run.skip_n;
  the_run.next_print = 1;
  the_run.slot_busy = xcalloc(the_run.jobs, sizeof(bool));
  the_run.running_jobs = xcalloc(the_run.jobs, sizeof(job*));
  signal(SIGPIPE, SIG_IGN); /* a closed stdout is seen as EPIPE */
  uv_signal_init(&loop, &the_run.sigint);
  uv_signal_init(&loop, &the_run.sigterm);
  uv_signal_init(&loop, &the_run.sighup);
  vow__procs_init(&the_run.procs, &loop);
  uv_signal_start(&the_run.sigint, on_signal, SIGINT);
  uv_signal_start(&the_run.sigterm, on_signal, SIGTERM);
  uv_signal_start(&the_run.sighup, on_signal, SIGHUP);
  uv_unref((uv_handle_t*)&the_run.sigint);
  uv_unref((uv_handle_t*)&the_run.sigterm);
  uv_unref((uv_handle_t*)&the_run.sighup);
  uv_timer_init(&loop, &tick);
  uv_timer_init(&loop, &the_run.delay);
  vow_progress_init(&the_run.progress, the_run.progress_style);
  if (the_run.progress.on) {
    uv_timer_start(&tick, on_tick, 200, 200);
    uv_unref((uv_handle_t*)&tick);
  }
  start_jobs();
  uv_run(&loop, UV_RUN_DEFAULT);
  out_progress(true);
  if (the_run.keep_order)
    flush_ordered();
  if (the_run.joblog_f && fclose(the_run.joblog_f) != 0)
    run_output_failed(the_run.joblog, errno);
  out_finish();
  run_inputs_close(&the_run.in);
  vow__procs_close(&the_run.procs, NULL);
  uv_close((uv_handle_t*)&the_run.sigint, NULL);
  uv_close((uv_handle_t*)&the_run.sigterm, NULL);
  uv_close((uv_handle_t*)&the_run.sighup, NULL);
  uv_close((uv_handle_t*)&tick, NULL);
  uv_close((uv_handle_t*)&the_run.delay, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (the_run.signalled == SIGPIPE || the_run.broken_pipe) {
    /* Ended by a closed stdout: say so the way GNU parallel's death by
     * SIGPIPE says it to the shell. */
    fflush(stdout);
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    return 128 + SIGPIPE;
  }
  if (the_run.output_failed)
    return VOW_EXIT_ERROR;
  if (the_run.signalled)
    return 128 + the_run.signalled;
  if (the_run.halting)
    return halt_exit_status();
  status = the_run.failed > 100 ? VOW_EXIT_MANY : (int)the_run.failed;
  return status;
}
