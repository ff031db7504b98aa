/* vow run: command lines in parallel, in the manner of GNU parallel.
 *
 * Each job is a child process in its own session (so its process group
 * can be signalled whole), spawned and awaited on the loop, with its
 * stdout and stderr captured: kept in memory up to a limit, then spilled
 * to a private temporary file, and printed whole when the job ends (in
 * input order with -k), so no two jobs' output ever interleave. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <spawn.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "run.h"

#define MEM_LIMIT (1u << 20) /* bytes kept in memory per stream per job */
#define KILL_GRACE_MS 200

typedef struct capture {
  uv_pipe_t pipe;
  vbuf mem;
  int spill_fd; /* -1 until the memory limit is passed */
  size_t total; /* bytes received */
  bool eof;
  struct job* job;
  int fd;        /* 1 or 2: where it is printed */
  vbuf partial;  /* --line-buffer: a line not yet ended */
  bool mid_line; /* --tag: the last byte printed was not a newline */
} capture;

typedef struct job {
  size_t seq;
  const char** args;
  char** argv;   /* what runs */
  char* cmdline; /* for the joblog, --dry-run and messages */
  unsigned slot;
  unsigned attempts;
  int pid; /* 0 until spawned */
  capture out, err;
  uv_timer_t timer; /* --timeout, then the KILL after TERM */
  int open_handles;
  bool exited, timed_out, killed_term, finished, printed;
  int64_t exit_status;
  int term_signal;
  double start, runtime;
  struct job* next_done; /* finished, waiting to be printed (-k) */
} job;

typedef struct run_state {
  uv_loop_t* loop;
  run_inputs in;
  char** command;
  size_t ncommand;
  bool shell, keep_order, line_buffer, tag, dry_run, nul, bar;
  unsigned jobs;
  double timeout_s;   /* 0: none */
  double timeout_pct; /* N%: of the median runtime */
  unsigned retries;   /* total tries per job (GNU: --retries N) */
  const char* joblog;
  FILE* joblog_f;
  int resume; /* 0, 1 --resume, 2 --resume-failed */
  char* skip; /* by seq: already done according to the joblog */
  size_t skip_n;
  /* --halt */
  const char* tagstring;  /* --tagstring STR */
  const char* workdir;    /* --workdir DIR: where jobs run */
  const char* nice;       /* --nice N: run jobs under nice -n N */
  double delay_s;         /* --delay S: between job starts */
  double last_start;      /* when the last job started, for --delay */
  uv_timer_t delay;       /* the next start, while --delay holds it */
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
  size_t total, next, running, done, failed, succeeded;
  bool* slot_busy;
  job** by_seq; /* -k: finished jobs by seq until printed */
  size_t next_print;
  double* runtimes;
  size_t nruntimes;
  bool command_has_replacement; /* else arguments are appended */
  int signalled;
  uv_signal_t sigint, sigterm, sighup, sigchld;
  char spill_dir[64];
} run_state;

static run_state S;
extern char** environ;

static double now_s(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return; /* a closed stdout is not our failure to report */
    }
    p += k;
    n -= (size_t)k;
  }
}

/* ---- output ----------------------------------------------------------- */

static void spill(capture* c) {
  char path[128];
  if (S.spill_dir[0] == '\0') {
    const char* tmp = getenv("TMPDIR");
    snprintf(S.spill_dir, sizeof(S.spill_dir), "%s/vow-XXXXXX",
             tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (mkdtemp(S.spill_dir) == NULL) {
      S.spill_dir[0] = '\0';
      return; /* keep it in memory then */
    }
  }
  snprintf(path, sizeof(path), "%s/outXXXXXX", S.spill_dir);
  c->spill_fd = mkstemp(path);
  if (c->spill_fd >= 0) {
    unlink(path); /* gone when closed, whatever happens to us */
    write_all(c->spill_fd, c->mem.data, c->mem.len);
    c->mem.len = 0;
  }
}

/* --tag: the arguments; --tagstring STR: STR with its replacement
 * strings made for this job. A tab follows, as in GNU parallel. */
static void put_tag(int fd, job* j) {
  vbuf t = {0};
  size_t i;
  if (S.tagstring != NULL)
    run_expand(&t, S.tagstring, &S.in, j->args, j->seq, j->slot, false);
  for (i = 0; S.tagstring == NULL && i < S.in.nlists; i++) {
    if (i)
      vbuf_add(&t, " ", 1);
    vbuf_str(&t, j->args[i]);
  }
  vbuf_add(&t, "\t", 1);
  write_all(fd, t.data, t.len);
  vbuf_free(&t);
}

/* Writes bytes, tagging each line when --tag is on. The bytes may come in
 * pieces cut anywhere: the capture remembers whether a line is open. */
static void put(capture* c, const char* p, size_t n) {
  if (!S.tag) {
    write_all(c->fd, p, n);
    return;
  }
  while (n > 0) {
    const char* nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) + 1 : n;
    if (!c->mid_line)
      put_tag(c->fd, c->job);
    write_all(c->fd, p, len);
    c->mid_line = nl == NULL;
    p += len;
    n -= len;
  }
}

/* Prints what the job wrote; spilled output is copied through a fixed
 * buffer, so a job's gigabytes never sit in our memory. */
static void print_capture(capture* c) {
  if (c->spill_fd >= 0) {
    char buf[65536];
    ssize_t k;
    lseek(c->spill_fd, 0, SEEK_SET);
    while ((k = read(c->spill_fd, buf, sizeof(buf))) > 0)
      put(c, buf, (size_t)k);
    close(c->spill_fd);
    c->spill_fd = -1;
  }
  if (c->mem.len)
    put(c, c->mem.data, c->mem.len);
  c->mem.len = 0;
}

/* ---- joblog ----------------------------------------------------------- */

static void log_job(job* j) {
  vow_cli_joblog_write(S.joblog_f, j->seq, j->start, j->runtime, j->out.total,
                       j->term_signal ? -1 : j->exit_status, j->term_signal,
                       j->cmdline);
}

static int open_joblog(void) {
  if (S.joblog == NULL)
    return 0;
  if (S.resume && vow_cli_joblog_read(S.joblog, S.total, S.skip, S.resume) != 0)
    return -1;
  S.joblog_f = vow_cli_joblog_open(S.joblog, S.resume != 0);
  return S.joblog_f ? 0 : -1;
}

/* ---- jobs ------------------------------------------------------------- */

static void start_jobs(void);
static void kill_job(job* j, int sig);

static int compare_doubles(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median_runtime(void) {
  double* r;
  double m;
  if (S.nruntimes < 3)
    return 0;
  r = malloc(S.nruntimes * sizeof(double));
  if (r == NULL)
    return 0;
  memcpy(r, S.runtimes, S.nruntimes * sizeof(double));
  qsort(r, S.nruntimes, sizeof(double), compare_doubles);
  m = r[S.nruntimes / 2];
  free(r);
  return m;
}

static void free_job(job* j) {
  size_t i;
  for (i = 0; j->argv[i]; i++)
    free(j->argv[i]);
  free(j->argv);
  free(j->cmdline);
  free(j->args);
  vbuf_free(&j->out.mem);
  vbuf_free(&j->err.mem);
  vbuf_free(&j->out.partial);
  vbuf_free(&j->err.partial);
  free(j);
}

static void print_job(job* j) {
  if (!S.line_buffer) {
    print_capture(&j->out);
    print_capture(&j->err);
  }
  j->printed = true;
}

/* Prints what may be printed now: everything finished with -k stops at
 * the first job still running. */
static void flush_ordered(void) {
  while (S.next_print < S.total) {
    job* j = S.by_seq[S.next_print];
    if (S.skip && S.skip[S.next_print]) {
      S.next_print++;
      continue;
    }
    if (j == NULL)
      break;
    print_job(j);
    S.by_seq[S.next_print] = NULL;
    free_job(j);
    S.next_print++;
  }
}

static bool failed_job(const job* j) {
  return j->term_signal != 0 || j->exit_status != 0;
}

enum { HALT_FAIL, HALT_SUCCESS, HALT_DONE };

/* GNU parallel's exit status after a --halt: the failing job's own with
 * fail=1; 0 with success=; with a percentage, the percentage of all jobs
 * that had failed when the halt was decided, rounded up; otherwise their
 * number (101 past 100). */
static int halt_exit_status(void) {
  if (S.halt_why == HALT_FAIL && !S.halt_pct && S.halt_count == 1)
    return S.halt_status;
  if (S.halt_why == HALT_SUCCESS)
    return 0;
  if (S.halt_pct)
    return (int)ceil((double)S.halt_failed * 100.0 / (double)S.total - 1e-9);
  return S.halt_failed > 100 ? VOW_EXIT_MANY : (int)S.halt_failed;
}

static void check_halt(job* j) {
  double n = S.halt_why == HALT_SUCCESS ? (double)S.succeeded
             : S.halt_why == HALT_FAIL  ? (double)S.failed
                                        : (double)(S.succeeded + S.failed);
  bool hit;
  if (S.halt_when == 0 || S.halting)
    return;
  if ((S.halt_why == HALT_SUCCESS && failed_job(j)) ||
      (S.halt_why == HALT_FAIL && !failed_job(j)))
    return;
  hit = S.halt_pct ? n / (double)S.total >= S.halt_count : n >= S.halt_count;
  if (!hit)
    return;
  S.halting = true;
  S.halt_status = j->term_signal ? 128 + j->term_signal : (int)j->exit_status;
  S.halt_failed = S.failed;
  fprintf(stderr, "vow: this job %s:\n%s\n",
          failed_job(j) ? "failed" : "succeeded", j->cmdline);
  if (S.halt_when == 2) {
    S.next = S.total; /* start nothing more; the caller kills the rest */
  } else if (S.running > 0) {
    fprintf(stderr, "vow: starting no more jobs; waiting for %zu to finish\n",
            S.running);
  }
}

static job** running_jobs; /* by slot, for signals and --halt now */
static int spawn_job(job* j);

static void job_finished(job* j) {
  j->runtime = now_s() - j->start;
  j->finished = true;
  S.running--;
  if (S.running == 0)
    uv_unref((uv_handle_t*)&S.sigchld);
  S.slot_busy[j->slot - 1] = false;
  running_jobs[j->slot - 1] = NULL;
  if (failed_job(j) && j->attempts < S.retries && !S.halting && !S.signalled) {
    /* Try again in the same slot: what this attempt printed is dropped,
     * and only the last attempt goes in the joblog. */
    j->exited = j->finished = j->timed_out = j->killed_term = false;
    j->exit_status = 0;
    j->term_signal = 0;
    j->out.mem.len = j->err.mem.len = 0;
    j->out.total = j->err.total = 0;
    j->out.partial.len = j->err.partial.len = 0;
    /* The new try's pipes are read from their start: a stale EOF would
     * close them the moment it exits, before its output is in. */
    j->out.eof = j->err.eof = false;
    j->out.mid_line = j->err.mid_line = false;
    if (j->out.spill_fd >= 0)
      close(j->out.spill_fd);
    if (j->err.spill_fd >= 0)
      close(j->err.spill_fd);
    j->out.spill_fd = j->err.spill_fd = -1;
    if (spawn_job(j) == 0)
      return;
  }
  S.done++;
  if (failed_job(j))
    S.failed++;
  else
    S.succeeded++;
  if (S.nruntimes < S.total)
    S.runtimes[S.nruntimes++] = j->runtime;
  log_job(j);
  check_halt(j);
  if (S.halt_when == 2 && S.halting) {
    unsigned i;
    for (i = 0; i < S.jobs; i++)
      if (running_jobs[i])
        kill_job(running_jobs[i], SIGTERM);
  }
  if (S.keep_order) {
    S.by_seq[j->seq - 1] = j;
    flush_ordered();
  } else {
    print_job(j);
    free_job(j);
  }
  start_jobs();
}

/* ---- one job's process ------------------------------------------------- */

static void on_job_closed(uv_handle_t* h) {
  /* A pipe's data is its capture; the timer's, the job. */
  job* j = h->type == UV_NAMED_PIPE ? ((capture*)h->data)->job : h->data;
  if (--j->open_handles == 0)
    job_finished(j);
}

static void maybe_done(job* j) {
  if (!j->exited || !j->out.eof || !j->err.eof)
    return;
  uv_close((uv_handle_t*)&j->out.pipe, on_job_closed);
  uv_close((uv_handle_t*)&j->err.pipe, on_job_closed);
  uv_close((uv_handle_t*)&j->timer, on_job_closed);
}

static void on_job_exit(job* j, int64_t status, int sig) {
  j->exited = true;
  j->exit_status = status;
  j->term_signal = sig;
  uv_timer_stop(&j->timer);
  maybe_done(j);
}

static void kill_job(job* j, int sig) {
  if (j->exited || j->pid <= 0)
    return;
  /* The job leads its own session: the whole group gets it. */
  kill(-j->pid, sig);
}

/* Reaps every job that has exited. The run's only children are its jobs,
 * so waitpid(-1) takes nothing that is not ours. */
static void on_sigchld(uv_signal_t* h, int sig) {
  int status;
  pid_t pid;
  (void)h;
  (void)sig;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    unsigned i;
    for (i = 0; i < S.jobs; i++) {
      job* j = running_jobs[i];
      if (j == NULL || j->pid != pid)
        continue;
      if (WIFSIGNALED(status))
        on_job_exit(j, 0, WTERMSIG(status));
      else
        on_job_exit(j, WEXITSTATUS(status), 0);
      break;
    }
  }
}

static void on_job_timer(uv_timer_t* t) {
  job* j = t->data;
  if (!j->killed_term) {
    j->timed_out = j->killed_term = true;
    kill_job(j, SIGTERM);
    uv_timer_start(&j->timer, on_job_timer, KILL_GRACE_MS, 0);
  } else {
    kill_job(j, SIGKILL); /* it ignored TERM */
  }
}

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  static char scratch[65536];
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  capture* c = s->data;
  if (n < 0) {
    if (S.line_buffer && c->partial.len) {
      put(c, c->partial.data, c->partial.len);
      c->partial.len = 0;
    }
    c->eof = true;
    uv_read_stop(s);
    maybe_done(c->job);
    return;
  }
  c->total += (size_t)n;
  if (S.line_buffer) {
    /* Whole lines go out as they come; a line is never cut. */
    const char* p = buf->base;
    size_t left = (size_t)n;
    const char* nl;
    while ((nl = memchr(p, '\n', left)) != NULL) {
      size_t len = (size_t)(nl - p) + 1;
      if (c->partial.len) {
        vbuf_add(&c->partial, p, len);
        put(c, c->partial.data, c->partial.len);
        c->partial.len = 0;
      } else {
        put(c, p, len);
      }
      p += len;
      left -= len;
    }
    if (left)
      vbuf_add(&c->partial, p, left);
    return;
  }
  if (c->spill_fd >= 0) {
    write_all(c->spill_fd, buf->base, (size_t)n);
    return;
  }
  vbuf_add(&c->mem, buf->base, (size_t)n);
  if (c->mem.len > MEM_LIMIT)
    spill(c);
}

/* The environment of a job: ours, with GNU parallel's $PARALLEL_SEQ (its
 * job number, {#}) and $PARALLEL_JOBSLOT (its slot, {%}). Built in place
 * for each spawn; posix_spawn copies it before it returns. */
static char** job_environ(const job* j) {
  static char** env;
  static size_t cap;
  static char seq[48], slot[48];
  size_t n = 0, k = 0;
  while (environ[n] != NULL)
    n++;
  if (cap < n + 3) {
    char** grown = realloc(env, (n + 3) * sizeof(char*));
    if (grown == NULL)
      return environ; /* without the two variables rather than not at all */
    env = grown;
    cap = n + 3;
  }
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "PARALLEL_SEQ=", 13) != 0 &&
        strncmp(environ[i], "PARALLEL_JOBSLOT=", 17) != 0)
      env[k++] = environ[i];
  snprintf(seq, sizeof(seq), "PARALLEL_SEQ=%zu", j->seq);
  snprintf(slot, sizeof(slot), "PARALLEL_JOBSLOT=%u", j->slot);
  env[k++] = seq;
  env[k++] = slot;
  env[k] = NULL;
  return env;
}

/* Starts the job with posix_spawn (clone with a shared address space, no
 * page-table copy: a fork of this process costs more than the job it
 * starts), in a new session, stdin from /dev/null, stdout and stderr into
 * pipes, and SIGPIPE back at its default. */
static int spawn_process(job* j, int out_fd, int err_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, dflt;
  pid_t pid;
  int rc;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  if (S.workdir != NULL)
    posix_spawn_file_actions_addchdir_np(&fa, S.workdir);
  posix_spawnattr_init(&at);
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dflt);
  posix_spawnattr_setflags(
      &at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (S.nice != NULL) {
    /* posix_spawn cannot set a priority, and lowering our own would take
     * vow's loop down with its jobs: nice(1) runs the command. */
    size_t n = 0;
    char** av;
    while (j->argv[n] != NULL)
      n++;
    av = calloc(n + 4, sizeof(char*));
    if (av == NULL) {
      rc = ENOMEM;
    } else {
      av[0] = (char*)"nice";
      av[1] = (char*)"-n";
      av[2] = (char*)S.nice;
      memcpy(av + 3, j->argv, n * sizeof(char*));
      rc = posix_spawnp(&pid, "nice", &fa, &at, av, job_environ(j));
      free(av);
    }
  } else {
    rc = posix_spawnp(&pid, j->argv[0], &fa, &at, j->argv, job_environ(j));
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc == 0)
    j->pid = pid;
  return rc;
}

static int spawn_job(job* j) {
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  int rc;
  j->attempts++;
  S.slot_busy[j->slot - 1] = true;
  running_jobs[j->slot - 1] = j;
  S.running++;
  j->out.job = j->err.job = j;
  j->out.fd = 1;
  j->err.fd = 2;
  j->out.spill_fd = j->err.spill_fd = -1;
  uv_pipe_init(S.loop, &j->out.pipe, 0);
  uv_pipe_init(S.loop, &j->err.pipe, 0);
  uv_timer_init(S.loop, &j->timer);
  j->timer.data = j;
  j->out.pipe.data = &j->out;
  j->err.pipe.data = &j->err;
  j->open_handles = 3;
  j->pid = 0;
  j->start = now_s();
  rc = pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0
           ? -errno
           : -spawn_process(j, out[1], err[1]);
  if (out[1] >= 0)
    close(out[1]);
  if (err[1] >= 0)
    close(err[1]);
  if (out[0] >= 0)
    uv_pipe_open(&j->out.pipe, out[0]);
  if (err[0] >= 0)
    uv_pipe_open(&j->err.pipe, err[0]);
  if (rc != 0) {
    /* As a shell says it: the job fails with 127, the run goes on. */
    char msg[512];
    int len = snprintf(msg, sizeof(msg), "vow: %s: %s\n", j->argv[0],
                       uv_strerror(rc));
    vbuf_add(&j->err.mem, msg, (size_t)len);
    j->exited = true;
    j->exit_status = 127;
    j->out.eof = j->err.eof = true;
    maybe_done(j);
    return 0;
  }
  /* The loop lives while a job runs: its exit comes only as SIGCHLD. */
  uv_ref((uv_handle_t*)&S.sigchld);
  /* A job that exited before its pid was known to on_sigchld was reaped
   * there as nobody's; look again now that it is. */
  {
    int status;
    if (waitpid(j->pid, &status, WNOHANG) == j->pid) {
      if (WIFSIGNALED(status))
        on_job_exit(j, 0, WTERMSIG(status));
      else
        on_job_exit(j, WEXITSTATUS(status), 0);
    }
  }
  uv_read_start((uv_stream_t*)&j->out.pipe, on_alloc, on_read);
  uv_read_start((uv_stream_t*)&j->err.pipe, on_alloc, on_read);
  {
    double limit = S.timeout_s;
    if (S.timeout_pct > 0) {
      double m = median_runtime();
      limit = m > 0 ? m * S.timeout_pct / 100.0 : 0;
    }
    if (limit > 0)
      uv_timer_start(&j->timer, on_job_timer, (uint64_t)(limit * 1000.0), 0);
  }
  return 0;
}

/* Builds the job's command: each word with its replacements made (or the
 * arguments appended when no word has one); with --shell, one string for
 * /bin/sh in which every argument is quoted. */
static job* make_job(size_t index, unsigned slot) {
  job* j = calloc(1, sizeof(*j));
  bool any = S.command_has_replacement;
  size_t i;
  vbuf line = {0};
  j->seq = index + 1;
  j->args = calloc(S.in.nlists ? S.in.nlists : 1, sizeof(char*));
  run_job_args(&S.in, index, j->args);
  if (S.shell) {
    vbuf sh = {0};
    for (i = 0; i < S.ncommand; i++) {
      if (i)
        vbuf_add(&sh, " ", 1);
      run_expand(&sh, S.command[i], &S.in, j->args, j->seq, slot, true);
    }
    for (i = 0; !any && i < S.in.nlists; i++) {
      vbuf_add(&sh, " ", 1);
      vow_cli_quote(&sh, j->args[i]);
    }
    j->argv = calloc(4, sizeof(char*));
    j->argv[0] = strdup("/bin/sh");
    j->argv[1] = strdup("-c");
    j->argv[2] = strdup(sh.data ? sh.data : "");
    j->cmdline = strdup(sh.data ? sh.data : "");
    vbuf_free(&sh);
    return j;
  }
  j->argv = calloc(S.ncommand + S.in.nlists + 1, sizeof(char*));
  for (i = 0; i < S.ncommand; i++) {
    vbuf w = {0};
    run_expand(&w, S.command[i], &S.in, j->args, j->seq, slot, false);
    j->argv[i] = strdup(w.data ? w.data : "");
    vbuf_free(&w);
  }
  for (size_t k = 0; !any && k < S.in.nlists; k++)
    j->argv[i++] = strdup(j->args[k]);
  for (i = 0; j->argv[i]; i++) {
    if (i)
      vbuf_add(&line, " ", 1);
    vow_cli_quote(&line, j->argv[i]);
  }
  j->cmdline = strdup(line.data ? line.data : "");
  vbuf_free(&line);
  return j;
}

static void start_jobs(void);

static void on_delay_over(uv_timer_t* t) {
  (void)t;
  start_jobs();
}

static void start_jobs(void) {
  while (!S.signalled && !S.halting && S.running < S.jobs && S.next < S.total) {
    size_t index = S.next;
    unsigned slot;
    job* j;
    if (S.skip && S.skip[index]) {
      S.next++;
      continue;
    }
    if (S.delay_s > 0 && S.last_start > 0) {
      /* --delay: the next start waits until S seconds after the last. */
      double wait = S.last_start + S.delay_s - now_s();
      if (wait > 0) {
        if (!uv_is_active((uv_handle_t*)&S.delay))
          uv_timer_start(&S.delay, on_delay_over, (uint64_t)(wait * 1000) + 1,
                         0);
        return;
      }
    }
    S.next++;
    S.last_start = now_s();
    for (slot = 0; slot < S.jobs && S.slot_busy[slot]; slot++) {
    }
    j = make_job(index, slot + 1);
    j->slot = slot + 1;
    spawn_job(j);
  }
}

/* ---- signals ---------------------------------------------------------- */

static void on_signal(uv_signal_t* h, int sig) {
  unsigned i;
  (void)h;
  /* Running jobs get the signal; nothing new starts; what finishes is
   * logged; then we exit with 128 + the signal. A hang-up ends them as
   * TERM does: each job leads a session of its own, so the terminal's
   * SIGHUP never reaches it, and passing HUP on would spare a job that
   * ignores it (nohup), leaving an orphan. */
  S.signalled = sig;
  for (i = 0; i < S.jobs; i++)
    if (running_jobs[i])
      kill_job(running_jobs[i], sig == SIGHUP ? SIGTERM : sig);
  uv_signal_stop(&S.sigint);
  uv_signal_stop(&S.sigterm);
  uv_signal_stop(&S.sighup);
}

/* ---- options ---------------------------------------------------------- */

static void usage(FILE* f) {
  fputs(
      "usage: vow run [options] COMMAND [ARG...] [::: ARGS...] [:::: FILE...]\n"
      "Runs COMMAND once per input, in parallel, like GNU parallel -q.\n"
      "\n"
      "inputs:\n"
      "  ::: A B C         a list of arguments; several lists combine as\n"
      "                    every combination, first list slowest\n"
      "  :::: FILE         one argument a line from FILE (- for stdin)\n"
      "  -a FILE, --arg-file FILE  as :::: FILE, before the sources after\n"
      "                    the command\n"
      "  (none of these)   one argument a line from stdin\n"
      "  -0, --null        inputs are NUL-separated\n"
      "  --link            pair the lists instead (shorter ones wrap)\n"
      "replacement strings in COMMAND (none: the arguments are appended):\n"
      "  {} {.} {/} {//} {/.}  the argument, without extension, basename,\n"
      "                    dirname, basename without extension\n"
      "  {#} {%} {1}..{n}  job number, slot number, n-th list's argument\n"
      "options:\n"
      "  -j N, -P N        jobs at once (default: CPUs; 0: all; N%, +N, -N)\n"
      "  -k, --keep-order  print in input order, not completion order\n"
      "  --line-buffer     pass whole lines through as they come\n"
      "  --tag             prefix each output line with the arguments\n"
      "  --tagstring STR   ... with STR and its replacement strings instead\n"
      "  --workdir DIR, --wd DIR  run jobs in DIR (made if missing)\n"
      "  --nice N          run jobs at niceness N (through nice -n N)\n"
      "  --delay S         start jobs at least S seconds apart\n"
      "  --shell           run COMMAND through /bin/sh; arguments quoted\n"
      "  --timeout S|N%    kill a job (TERM, then KILL) after S seconds, or\n"
      "                    N% of the median runtime\n"
      "  --joblog FILE     a line per finished job, GNU parallel's columns\n"
      "  --resume          skip jobs the joblog shows as run\n"
      "  --resume-failed   rerun the ones the joblog shows as failed\n"
      "  --retries N       run a failing job up to N times\n"
      "  --halt now|soon,fail|success|done=N[%]  stop at failures, successes\n"
      "                    or finished jobs (also 0, 1, 2, -1, -2, N%)\n"
      "  --dry-run         print the commands, run nothing\n"
      "  --bar, --progress, --eta  progress on stderr when it is a terminal\n"
      "  -q, --quote, --will-cite  accepted: vow never needs a shell's "
      "quoting\n"
      "                    and asks for no citation\n"
      "single-letter options bundle: -kj2 is -k -j 2.\n"
      "each job sees $PARALLEL_SEQ (its number) and $PARALLEL_JOBSLOT (its\n"
      "slot).\n"
      "exit status: 0 all succeeded; 1-100 failed jobs; 101 more than 100;\n"
      "255 bad usage or input; 128+N killed by signal N.\n",
      f);
}

/* --halt WHEN,WHY=N[%], and GNU parallel's older forms: 0 (never), 1
 * (soon,fail=1), 2 (now,fail=1), -1 (soon,success=1), -2 (now,success=1)
 * and N% (soon,fail=N%). */
static int parse_halt(const char* spec) {
  char how[8];
  const char* comma = strchr(spec, ',');
  const char* eq;
  const char* why;
  char* end;
  if (strcmp(spec, "never") == 0 || strcmp(spec, "0") == 0)
    return 0;
  if (strcmp(spec, "1") == 0 || strcmp(spec, "2") == 0 ||
      strcmp(spec, "-1") == 0 || strcmp(spec, "-2") == 0) {
    S.halt_when = spec[strlen(spec) - 1] == '2' ? 2 : 1;
    S.halt_why = spec[0] == '-' ? HALT_SUCCESS : HALT_FAIL;
    S.halt_count = 1;
    return 0;
  }
  if (comma == NULL) {
    /* N%: soon,fail=N% */
    S.halt_count = strtod(spec, &end);
    if (end == spec || strcmp(end, "%") != 0 || S.halt_count <= 0 ||
        S.halt_count >= 100)
      return -1;
    S.halt_when = 1;
    S.halt_why = HALT_FAIL;
    S.halt_pct = true;
    S.halt_count /= 100.0;
    return 0;
  }
  if ((size_t)(comma - spec) >= sizeof(how))
    return -1;
  memcpy(how, spec, (size_t)(comma - spec));
  how[comma - spec] = '\0';
  if (strcmp(how, "now") == 0)
    S.halt_when = 2;
  else if (strcmp(how, "soon") == 0)
    S.halt_when = 1;
  else
    return -1;
  eq = strchr(comma, '=');
  why = comma + 1;
  if (eq == NULL)
    return -1;
  if (eq - why == 4 && strncmp(why, "fail", 4) == 0)
    S.halt_why = HALT_FAIL;
  else if (eq - why == 7 && strncmp(why, "success", 7) == 0)
    S.halt_why = HALT_SUCCESS;
  else if (eq - why == 4 && strncmp(why, "done", 4) == 0)
    S.halt_why = HALT_DONE;
  else
    return -1;
  S.halt_count = strtod(eq + 1, &end);
  if (end == eq + 1 || S.halt_count <= 0)
    return -1;
  if (*end == '%') {
    S.halt_pct = true;
    S.halt_count /= 100.0;
    end++;
  }
  return *end == '\0' ? 0 : -1;
}

/* Single-letter options, bundled as GNU parallel's Getopt::Long takes
 * them: -kj2 is -k -j 2, -j2 and -P2 are -j 2, and a letter that takes a
 * value takes the rest of the word or the next one. */
static int parse_short(const char* a, int* i, int argc, char** argv,
                       const char** jobs) {
  size_t k;
  for (k = 1; a[k] != '\0'; k++) {
    switch (a[k]) {
      case 'k':
        S.keep_order = true;
        break;
      case '0':
        S.nul = true;
        break;
      case 'q':
        break; /* -q: no shell, every argument one word, vow's default */
      case 'h':
        usage(stdout);
        exit(0);
      case 'j':
      case 'P':
      case 'a': {
        const char* value;
        if (a[k + 1] != '\0') {
          value = a + k + 1;
        } else if (*i + 1 < argc) {
          value = argv[++*i];
        } else {
          vow_cli_error("-%c needs %s", a[k],
                        a[k] == 'a' ? "a file" : "a number of jobs");
          return -1;
        }
        if (a[k] == 'a')
          S.arg_files[S.narg_files++] = value;
        else
          *jobs = value;
        return 0;
      }
      default:
        if (k == 1)
          vow_cli_error("unknown option %s (see vow run --help)", a);
        else
          vow_cli_error("unknown option -%c in %s (see vow run --help)", a[k],
                        a);
        return -1;
    }
  }
  return 0;
}

static int parse_options(int argc, char** argv) {
  int i;
  const char* jobs = NULL;
  S.arg_files = calloc((size_t)argc + 1, sizeof(char*));
  if (S.arg_files == NULL) {
    vow_cli_error("out of memory");
    return -1;
  }
  for (i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* val = NULL;
#define TAKES(name)                                                        \
  (strcmp(a, name) == 0                                                    \
       ? (i + 1 < argc ? (val = argv[++i], 1)                              \
                       : (vow_cli_error("%s needs a value", name),         \
                          exit(VOW_EXIT_ERROR), 0))                        \
   : strncmp(a, name "=", sizeof(name)) == 0 ? (val = a + sizeof(name), 1) \
                                             : 0)
    if (a[0] != '-' || strcmp(a, "-") == 0)
      break;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[1] != '-') {
      if (parse_short(a, &i, argc, argv, &jobs) != 0)
        return -1;
    } else if (strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--keep-order") == 0) {
      S.keep_order = true;
    } else if (strcmp(a, "--line-buffer") == 0) {
      S.line_buffer = true;
    } else if (strcmp(a, "--tag") == 0) {
      S.tag = true;
    } else if (strcmp(a, "--shell") == 0) {
      S.shell = true;
    } else if (strcmp(a, "--dry-run") == 0) {
      S.dry_run = true;
    } else if (strcmp(a, "--null") == 0) {
      S.nul = true;
    } else if (strcmp(a, "--quote") == 0 || strcmp(a, "--will-cite") == 0 ||
               strcmp(a, "--no-notice") == 0) {
      /* accepted as GNU parallel users type them: --quote is vow's
       * default, and vow asks for no citation */
    } else if (strcmp(a, "--link") == 0) {
      S.in.link = true;
    } else if (strcmp(a, "--bar") == 0 || strcmp(a, "--progress") == 0 ||
               strcmp(a, "--eta") == 0) {
      S.bar = true;
    } else if (strcmp(a, "--resume") == 0) {
      S.resume = 1;
    } else if (strcmp(a, "--resume-failed") == 0) {
      S.resume = 2;
    } else if (TAKES("--jobs") || TAKES("--max-procs")) {
      jobs = val;
    } else if (TAKES("--delay")) {
      char* end;
      S.delay_s = strtod(val, &end);
      if (end == val || *end != '\0' || S.delay_s < 0) {
        vow_cli_error("--delay wants seconds, not \"%s\"", val);
        return -1;
      }
    } else if (TAKES("--nice")) {
      char* end;
      long n = strtol(val, &end, 10);
      if (end == val || *end != '\0' || n < -20 || n > 19) {
        vow_cli_error("--nice wants a niceness from -20 to 19, not \"%s\"",
                      val);
        return -1;
      }
      S.nice = val;
    } else if (TAKES("--workdir") || TAKES("--wd")) {
      S.workdir = val;
    } else if (TAKES("--tagstring")) {
      S.tagstring = val;
      S.tag = true;
    } else if (TAKES("--arg-file")) {
      S.arg_files[S.narg_files++] = val;
    } else if (TAKES("--timeout")) {
      char* end;
      double t = strtod(val, &end);
      if (end == val || t <= 0 || (*end != '\0' && strcmp(end, "%") != 0)) {
        vow_cli_error("--timeout wants seconds or N%%, not \"%s\"", val);
        return -1;
      }
      if (*end == '%')
        S.timeout_pct = t;
      else
        S.timeout_s = t;
    } else if (TAKES("--joblog")) {
      S.joblog = val;
    } else if (TAKES("--retries")) {
      char* end;
      long n = strtol(val, &end, 10);
      if (*end != '\0' || n < 0) {
        vow_cli_error("--retries wants a count, not \"%s\"", val);
        return -1;
      }
      S.retries = (unsigned)n;
    } else if (TAKES("--halt")) {
      if (parse_halt(val) != 0) {
        vow_cli_error(
            "--halt wants now|soon,fail|success|done=N[%%], not \"%s\"", val);
        return -1;
      }
    } else {
      vow_cli_error("unknown option %s (see vow run --help)", a);
      return -1;
    }
#undef TAKES
  }
  if (jobs != NULL) {
    S.jobs = vow_cli_jobs(jobs, 1024);
    if (S.jobs == 0) {
      vow_cli_error("-j wants N, N%%, +N, -N or 0, not \"%s\"", jobs);
      return -1;
    }
  } else {
    S.jobs = vow_cli_cpus();
  }
  if (S.resume && S.joblog == NULL) {
    vow_cli_error("--resume needs --joblog FILE");
    return -1;
  }
  return i;
}

/* vow runs no shell unless --shell, so a pipe, redirection or command
 * list typed into the command reaches the program as a word (as with
 * parallel -q): say so once, since it is rarely what was meant. */
static void hint_shell_words(void) {
  static const char* const ops[] = {"|", "||", "&&",   ";", ">", ">>",
                                    "<", "2>", "2>&1", "&", "|&"};
  size_t w, k;
  if (S.shell)
    return;
  for (w = 0; w < S.ncommand; w++) {
    const char* word = S.command[w];
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

/* Splits the rest into the command and the ::: / :::: inputs. */
static int parse_inputs(int argc, char** argv, int first) {
  int i = first;
  input_list* cur = NULL;
  bool files = false, any_sep = false;
  S.command = argv + first;
  while (i < argc && strcmp(argv[i], ":::") != 0 &&
         strcmp(argv[i], "::::") != 0)
    i++;
  S.ncommand = (size_t)(i - first);
  if (S.ncommand == 0) {
    vow_cli_error("no command to run (see vow run --help)");
    return -1;
  }
  S.in.lists = calloc((size_t)argc + 1, sizeof(input_list));
  /* -a FILE: input sources of their own, before the ones after the
   * command, as GNU parallel orders them. */
  for (size_t k = 0; k < S.narg_files; k++) {
    const char* path = S.arg_files[k];
    FILE* f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
      vow_cli_error("cannot read input file %s: %s", path, strerror(errno));
      return -1;
    }
    if (run_list_read(&S.in.lists[S.in.nlists++], f, path, S.nul) != 0)
      return -1;
    if (f != stdin)
      fclose(f);
    any_sep = true;
  }
  for (; i < argc; i++) {
    if (strcmp(argv[i], ":::") == 0 || strcmp(argv[i], "::::") == 0) {
      files = argv[i][3] == ':';
      cur = &S.in.lists[S.in.nlists++];
      any_sep = true;
      continue;
    }
    if (!files) {
      run_list_add(cur, argv[i]);
    } else {
      FILE* f = strcmp(argv[i], "-") == 0 ? stdin : fopen(argv[i], "r");
      if (f == NULL) {
        vow_cli_error("cannot read input file %s: %s", argv[i],
                      strerror(errno));
        return -1;
      }
      if (cur->n > 0 || cur->items != NULL) {
        /* Each further file after :::: is a list of its own. */
        cur = &S.in.lists[S.in.nlists++];
      }
      if (run_list_read(cur, f, argv[i], S.nul) != 0)
        return -1;
      if (f != stdin)
        fclose(f);
    }
  }
  if (!any_sep) {
    S.in.nlists = 1;
    if (run_list_read(&S.in.lists[0], stdin, "stdin", S.nul) != 0)
      return -1;
  }
  return 0;
}

static void show_progress(void) {
  if (S.bar && isatty(2)) {
    fprintf(stderr, "\rvow: %zu/%zu done, %zu running, %zu failed ", S.done,
            S.total, S.running, S.failed);
    fflush(stderr);
  }
}

static void on_tick(uv_timer_t* t) {
  (void)t;
  show_progress();
}

int vow_cli_run(int argc, char** argv) {
  int first, status;
  size_t i;
  uv_loop_t loop;
  uv_timer_t tick;
  memset(&S, 0, sizeof(S));
  first = parse_options(argc, argv);
  if (first < 0 || parse_inputs(argc, argv, first) != 0)
    return VOW_EXIT_ERROR;
  hint_shell_words();
  if (S.workdir != NULL && make_workdir(S.workdir) != 0)
    return VOW_EXIT_ERROR;
  S.total = run_job_count(&S.in);
  for (i = 0; i < S.ncommand; i++)
    S.command_has_replacement |= run_has_replacement(S.command[i]);
  if (S.retries == 0)
    S.retries = 1; /* --retries N: N tries in all */
  if (S.dry_run) {
    for (i = 0; i < S.total; i++) {
      job* j = make_job(i, (unsigned)(i % S.jobs) + 1);
      printf("%s\n", j->cmdline);
      free_job(j);
    }
    return 0;
  }
  S.skip = calloc(S.total ? S.total : 1, 1);
  if (open_joblog() != 0)
    return VOW_EXIT_ERROR;
  S.slot_busy = calloc(S.jobs, sizeof(bool));
  running_jobs = calloc(S.jobs, sizeof(job*));
  S.by_seq = calloc(S.total ? S.total : 1, sizeof(job*));
  S.runtimes = calloc(S.total ? S.total : 1, sizeof(double));
  uv_loop_init(&loop);
  S.loop = &loop;
  uv_signal_init(&loop, &S.sigint);
  uv_signal_init(&loop, &S.sigterm);
  uv_signal_init(&loop, &S.sighup);
  uv_signal_init(&loop, &S.sigchld);
  uv_signal_start(&S.sigchld, on_sigchld, SIGCHLD);
  uv_unref((uv_handle_t*)&S.sigchld);
  uv_signal_start(&S.sigint, on_signal, SIGINT);
  uv_signal_start(&S.sigterm, on_signal, SIGTERM);
  uv_signal_start(&S.sighup, on_signal, SIGHUP);
  uv_unref((uv_handle_t*)&S.sigint);
  uv_unref((uv_handle_t*)&S.sigterm);
  uv_unref((uv_handle_t*)&S.sighup);
  uv_timer_init(&loop, &tick);
  uv_timer_init(&loop, &S.delay);
  if (S.bar && isatty(2)) {
    uv_timer_start(&tick, on_tick, 200, 200);
    uv_unref((uv_handle_t*)&tick);
  }
  start_jobs();
  uv_run(&loop, UV_RUN_DEFAULT);
  show_progress();
  if (S.bar && isatty(2))
    fputc('\n', stderr);
  if (S.keep_order)
    flush_ordered();
  if (S.joblog_f)
    fclose(S.joblog_f);
  if (S.spill_dir[0])
    rmdir(S.spill_dir);
  uv_close((uv_handle_t*)&S.sigchld, NULL);
  uv_close((uv_handle_t*)&S.sigint, NULL);
  uv_close((uv_handle_t*)&S.sigterm, NULL);
  uv_close((uv_handle_t*)&S.sighup, NULL);
  uv_close((uv_handle_t*)&tick, NULL);
  uv_close((uv_handle_t*)&S.delay, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (S.signalled)
    return 128 + S.signalled;
  if (S.halting)
    return halt_exit_status();
  status = S.failed > 100 ? VOW_EXIT_MANY : (int)S.failed;
  return status;
}
