/* Command jobs as processes: children of proc/ in a session of their
 * own, so the job is its process group; stdout and stderr come back over
 * pipes and go to PATH.out/ID.out and ID.err, files made only when the
 * job writes something; the end of a job is its leader's exit, after
 * which the rest of its group is killed.
 *
 * A job is recorded as running before it is spawned, and its process
 * group right after; every job process also carries VOW_QUEUE_JOB=DB#ID
 * in its environment. A restarted daemon kills what a dead one left by
 * both marks: the recorded group, and the environment, which also finds
 * a job spawned in the instant before its group was recorded. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "fdio.h"
#include "os.h"
#include "proc.h"

extern char** environ;

typedef struct jobio {
  qjob* j;
  vow__proc proc;
  int files[2]; /* -1 until the job writes to that stream */
  void (*left_slot)(qjob* j);
  char lost[300]; /* why some of its output could not be kept, if so */
} jobio;

static const char* const exts[2] = {"out", "err"};

static void marker(char* buf, size_t size, int64_t id) {
  snprintf(buf, size, "VOW_QUEUE_JOB=%s#%lld", the_daemon.paths.db,
           (long long)id);
}

/* Output that cannot be kept (a full disk, a quota, no descriptors) is
 * still read, so the job never blocks on a full pipe, and the job's end
 * says what was lost: it is never reported done with its output cut. */
static void lose_output(jobio* io, const char* name, int err) {
  if (io->lost[0] == '\0') {
    snprintf(io->lost, sizeof(io->lost), "writing %s/%s: %s",
             the_daemon.paths.out, name, strerror(err));
    qd_log("job %lld: %s; the rest of that output is dropped",
           (long long)io->j->id, io->lost);
  }
}

/* ---- ending ----------------------------------------------------------- */

static void on_io_closed(vow__proc* proc) {
  jobio* io = proc->data;
  qjob* j = io->j;
  int status = proc->exit_status, sig = proc->term_signal, k;
  char why[512];
  for (k = 0; k < 2; k++)
    if (io->files[k] >= 0 && close(io->files[k]) != 0) {
      char name[48];
      snprintf(name, sizeof(name), "%lld.%s", (long long)j->id, exts[k]);
      lose_output(io, name, errno);
    }
  free(j->output_error);
  j->output_error = io->lost[0] ? strdup(io->lost) : NULL;
  free(io);
  j->io = NULL;
  j->exit_status = status;
  j->term_signal = sig;
  if (j->cancel_asked) {
    the_daemon.hooks.job_ended(j, QS_CANCELLED, "cancelled");
    return;
  }
  if (the_daemon.stopping) {
    the_daemon.hooks.job_ended(j, QS_INTERRUPTED,
                               "the daemon was shut down while it ran");
    return;
  }
  if (j->term_sent)
    snprintf(why, sizeof(why), "timed out after %g s", j->timeout_s);
  else if (sig != 0)
    snprintf(why, sizeof(why), "killed by signal %d (%s)", sig, strsignal(sig));
  else
    snprintf(why, sizeof(why), "exited with status %d", status);
  if (j->output_error != NULL) {
    /* Its output is cut: whatever the job did, it did not all reach us. */
    size_t len = strlen(why);
    snprintf(why + len, sizeof(why) - len, "; its output is incomplete: %s",
             j->output_error);
    the_daemon.hooks.job_ended(j, QS_FAILED, why);
  } else if (!j->term_sent && sig == 0 && status == 0) {
    the_daemon.hooks.job_ended(j, QS_DONE, NULL);
  } else {
    the_daemon.hooks.job_ended(j, QS_FAILED, why);
  }
}

/* Its output is all in (or past the grace): its end is recorded now. */
static void on_io_done(vow__proc* proc) {
  vow__proc_close(proc, on_io_closed);
}

/* The leader exited and the rest of its group is gone: its slot is free
 * now; its end is recorded once its output is all in, which needs no
 * slot. */
static void on_job_exit(vow__proc* proc) {
  jobio* io = proc->data;
  qjob* j = io->j;
  size_t i;
  /* Its group id is free for reuse from now on: nothing may signal it
   * any more, and its timeout (TERM, then KILL) is moot. */
  j->pgid = 0;
  if (j->timer != NULL)
    uv_timer_stop(j->timer);
  for (i = 0; i < the_daemon.nrunning; i++)
    if (the_daemon.running[i] == j) {
      the_daemon.running[i] = the_daemon.running[--the_daemon.nrunning];
      break;
    }
  io->left_slot(j);
  qd_schedule();
}

void qd_job_signal(qjob* j, int sig) {
  if (j->kind == 0 && j->io != NULL)
    vow__proc_signal(&j->io->proc, sig);
}

void qd_job_stop(qjob* j) {
  if (j->kind == 0 && j->io != NULL)
    vow__proc_stop(&j->io->proc, VOW__GRACE_QUEUE_MS);
}

/* ---- output ----------------------------------------------------------- */

static void on_output(vow__proc* proc, int stream, const char* data, size_t n) {
  jobio* io = proc->data;
  int k = stream - 1;
  char name[48];
  int rc;
  snprintf(name, sizeof(name), "%lld.%s", (long long)io->j->id, exts[k]);
  if (io->files[k] == -2)
    return; /* already lost */
  if (io->files[k] < 0) {
    /* A new file in our own folder: never one that is there already
     * (qd_spawn removed the last try's), never through a link. */
    io->files[k] =
        openat(the_daemon.out_dir, name,
               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (io->files[k] < 0) {
      lose_output(io, name, errno);
      io->files[k] = -2;
      return;
    }
  }
  rc = vowp_write_all(io->files[k], data, n);
  if (rc != 0) {
    lose_output(io, name, -rc);
    close(io->files[k]);
    io->files[k] = -2;
  }
}

static const vow__proc_calls job_calls = {on_output, NULL, on_job_exit,
                                          on_io_done};

/* ---- spawning --------------------------------------------------------- */

static int64_t start_ticks_of(pid_t pid) {
  long long pgrp, sid, ticks;
  return vow__os_process_ids(pid, &pgrp, &sid, &ticks) ? ticks : 0;
}

int qd_spawn(qjob* j, void (*left_slot)(qjob* j), char* why, size_t whylen) {
  vow__proc_spec spec = {0};
  char mark[256];
  char** envp;
  size_t nenv = 0, i;
  jobio* io;
  int rc, k;
  while (j->env != NULL && j->env[nenv] != NULL)
    nenv++;
  envp = calloc(nenv + 2, sizeof(char*));
  io = calloc(1, sizeof(*io));
  if (envp == NULL || io == NULL) {
    snprintf(why, whylen, "cannot start: %s", strerror(ENOMEM));
    free(envp);
    free(io);
    return -1;
  }
  for (i = 0; i < nenv; i++)
    envp[i] = j->env[i];
  marker(mark, sizeof(mark), j->id);
  envp[nenv] = mark;
  /* A try's output replaces the last try's: never appended to it. */
  for (k = 0; k < 2; k++) {
    char name[48];
    snprintf(name, sizeof(name), "%lld.%s", (long long)j->id, exts[k]);
    unlinkat(the_daemon.out_dir, name, 0);
  }
  free(j->output_error);
  j->output_error = NULL;
  io->j = j;
  io->files[0] = io->files[1] = -1;
  io->left_slot = left_slot;
  spec.argv = j->argv;
  spec.env = envp;
  spec.cwd = j->cwd;
  spec.fd[0] = VOW__PROC_NULL;
  spec.fd[1] = spec.fd[2] = VOW__PROC_PIPE;
  spec.fd3 = -1;
  spec.own_group = spec.end_group_at_exit = spec.default_signals = true;
  spec.eof_grace_ms = VOW__GRACE_EOF_MS;
  umask(the_daemon.job_umask); /* inherited at the spawn; ours again at once */
  rc = vow__proc_spawn(&io->proc, &the_daemon.procs, &spec, &job_calls, io);
  umask(077);
  free(envp);
  if (rc != 0) {
    if (rc == ENOENT && strchr(j->argv[0], '/') == NULL)
      snprintf(why, whylen, "%s: command not found", j->argv[0]);
    else
      snprintf(why, whylen, "cannot run %s: %s", j->argv[0], strerror(rc));
    free(io);
    return -1;
  }
  j->pgid = io->proc.pid;
  j->start_ticks = start_ticks_of(io->proc.pid);
  free(j->boot_id);
  j->boot_id = strdup(the_daemon.boot_id);
  j->io = io;
  return 0;
}

/* ---- what a dead daemon left ------------------------------------------ */

/* The running job (in the database) a process belongs to, or NULL: by
 * its environment's mark, or by the recorded group, session and start
 * time (the latter only in the boot the job ran in). */
static qjob* owner(int pid, const char* mark_prefix, size_t prefix_len) {
  static char buf[1 << 17];
  size_t n, off;
  long long pgrp = 0, sid = 0, ticks = 0;
  int64_t id;
  if (vow__os_process_environ(pid, buf, sizeof(buf), &n))
    for (off = 0; off < n; off += strlen(buf + off) + 1)
      if (strncmp(buf + off, mark_prefix, prefix_len) == 0) {
        qjob* j = qd_job(strtoll(buf + off + prefix_len, NULL, 10));
        if (j != NULL && j->state == QS_RUNNING && j->kind == 0)
          return j;
      }
  if (!vow__os_process_ids(pid, &pgrp, &sid, &ticks))
    return NULL;
  for (id = 1; id <= the_daemon.max_id; id++) {
    qjob* j = the_daemon.jobs[id];
    if (j != NULL && j->state == QS_RUNNING && j->kind == 0 && j->pgid > 0 &&
        pgrp == j->pgid && sid == j->pgid && ticks >= j->start_ticks &&
        j->boot_id != NULL && strcmp(j->boot_id, the_daemon.boot_id) == 0)
      return j;
  }
  return NULL;
}

typedef struct leftovers {
  char prefix[256];
  size_t plen;
  pid_t self;
  unsigned killed;
} leftovers;

static bool kill_if_left_over(pid_t pid, void* arg) {
  leftovers* l = arg;
  if (pid != l->self && owner((int)pid, l->prefix, l->plen) != NULL &&
      kill(pid, SIGKILL) == 0)
    l->killed++;
  return true;
}

unsigned qd_kill_leftovers(void) {
  leftovers l;
  snprintf(l.prefix, sizeof(l.prefix), "VOW_QUEUE_JOB=%s#",
           the_daemon.paths.db);
  l.plen = strlen(l.prefix);
  l.self = getpid();
  l.killed = 0;
  vow__os_each_process(kill_if_left_over, &l);
  return l.killed;
}

/* ---- --on-finish ------------------------------------------------------- */

/* Hooks still running, closed (and left to run) when the daemon stops. */
typedef struct hook {
  vow__proc proc;
  struct hook *prev, *next;
} hook;
static hook* hooks;

static void on_hook_closed(vow__proc* proc) {
  hook* h = proc->data;
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    hooks = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  free(h);
}

static void on_hook_exit(vow__proc* proc) {
  if (proc->exit_status != 0 || proc->term_signal != 0)
    qd_log("--on-finish exited with status %d, signal %d", proc->exit_status,
           proc->term_signal);
  vow__proc_close(proc, on_hook_closed);
}

static const vow__proc_calls hook_calls = {NULL, NULL, on_hook_exit, NULL};

void qd_spawn_close(void) {
  hook* h;
  for (h = hooks; h != NULL; h = h->next)
    if (h->proc.running)
      vow__proc_close(&h->proc, on_hook_closed);
  vow__procs_close(&the_daemon.procs, NULL);
}

/* Runs the hook through /bin/sh with the job in its environment. Its
 * output goes to the daemon's log; it never holds the daemon up. */
void qd_on_finish(const qjob* j) {
  static const char* const names[] = {
      "VOW_JOB_ID",     "VOW_JOB_NAME",    "VOW_JOB_GROUP",  "VOW_JOB_STATE",
      "VOW_JOB_STATUS", "VOW_JOB_COMMAND", "VOW_JOB_STDOUT", "VOW_JOB_STDERR"};
  enum { NVARS = sizeof(names) / sizeof(names[0]) };
  char* values[NVARS];
  vbuf cmd = {0};
  char** env;
  size_t nenv = 0, i, k = 0;
  hook* h;
  vow__proc_spec spec = {0};
  char* args[4];
  int rc;
  if (the_daemon.on_finish == NULL)
    return;
  qjob_command(j, &cmd);
  while (environ[nenv] != NULL)
    nenv++;
  env = calloc(nenv + NVARS + 1, sizeof(char*));
  h = calloc(1, sizeof(*h));
  if (env == NULL || h == NULL) {
    free(env);
    free(h);
    vbuf_free(&cmd);
    return;
  }
  for (i = 0; i < nenv; i++)
    if (strncmp(environ[i], "VOW_JOB_", 8) != 0)
      env[k++] = environ[i];
  for (i = 0; i < NVARS; i++) {
    char num[32];
    const char* v = num;
    switch (i) {
      case 0:
        snprintf(num, sizeof(num), "%lld", (long long)j->id);
        break;
      case 1:
        v = j->name ? j->name : "";
        break;
      case 2:
        v = j->grp ? j->grp->name : QD_DEFAULT_GROUP;
        break;
      case 3:
        v = qstate_name(j->state);
        break;
      case 4:
        snprintf(num, sizeof(num), "%d", qjob_status(j));
        break;
      case 5:
        v = cmd.data ? cmd.data : "";
        break;
      default:
        snprintf(num, sizeof(num), "%lld", (long long)j->id);
        break;
    }
    if (i >= 6)
      rc = asprintf(&values[i], "%s=%s/%s.%s", names[i], the_daemon.paths.out,
                    num, i == 6 ? "out" : "err");
    else
      rc = asprintf(&values[i], "%s=%s", names[i], v);
    if (rc < 0)
      values[i] = NULL;
    if (values[i] != NULL)
      env[k++] = values[i];
  }
  env[k] = NULL;
  args[0] = (char*)"/bin/sh";
  args[1] = (char*)"-c";
  args[2] = (char*)the_daemon.on_finish;
  args[3] = NULL;
  spec.argv = args;
  spec.env = env;
  spec.fd[0] = VOW__PROC_NULL;
  spec.fd[1] = spec.fd[2] = 2; /* the log */
  spec.fd3 = -1;
  spec.default_signals = spec.background = true;
  rc = vow__proc_spawn(&h->proc, &the_daemon.procs, &spec, &hook_calls, h);
  if (rc != 0) {
    qd_log("--on-finish: cannot start /bin/sh: %s", strerror(rc));
    free(h);
  } else {
    h->next = hooks;
    if (hooks != NULL)
      hooks->prev = h;
    hooks = h;
  }
  for (i = 0; i < NVARS; i++)
    free(values[i]);
  free(env);
  vbuf_free(&cmd);
}
