/* Command jobs as processes: spawned with posix_spawn (vfork-fast) into a
 * session of their own, so the job is its process group; stdout and
 * stderr come back over pipes and go to PATH.out/ID.out and ID.err,
 * files made only when the job writes something; the end of a job is its
 * leader's exit, after which the rest of its group is killed.
 *
 * A job is recorded as running before it is spawned, and its process
 * group right after; every job process also carries VOW_QUEUE_JOB=DB#ID
 * in its environment. A restarted daemon kills what a dead one left by
 * both marks: the recorded group, and the environment, which also finds
 * a job spawned in the instant before its group was recorded. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "os.h"
#include "fdio.h"

extern char** environ;

/* After the leader exits, how long the pipes may stay open (a process
 * that left the group keeps them) before they are closed anyway. */
#define EOF_GRACE_MS 1000

typedef struct jobio {
  qjob* j;
  uv_pipe_t pipes[2]; /* stdout, stderr */
  int files[2];       /* -1 until the job writes to that stream */
  bool eof[2];
  int open_handles;
  bool exited;
  int status;
  uv_timer_t grace;
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

static void on_io_closed(uv_handle_t* h) {
  jobio* io = h->data;
  qjob* j = io->j;
  int status = io->status, k;
  char why[512];
  if (--io->open_handles > 0)
    return;
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
  j->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  j->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
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
  else if (WIFSIGNALED(status))
    snprintf(why, sizeof(why), "killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
  if (j->output_error != NULL) {
    /* Its output is cut: whatever the job did, it did not all reach us. */
    size_t len = strlen(why);
    snprintf(why + len, sizeof(why) - len, "; its output is incomplete: %s",
             j->output_error);
    the_daemon.hooks.job_ended(j, QS_FAILED, why);
  } else if (!j->term_sent && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    the_daemon.hooks.job_ended(j, QS_DONE, NULL);
  } else {
    the_daemon.hooks.job_ended(j, QS_FAILED, why);
  }
}

static void close_io(jobio* io) {
  int k;
  uv_timer_stop(&io->grace);
  if (!uv_is_closing((uv_handle_t*)&io->grace))
    uv_close((uv_handle_t*)&io->grace, on_io_closed);
  for (k = 0; k < 2; k++)
    if (!uv_is_closing((uv_handle_t*)&io->pipes[k]))
      uv_close((uv_handle_t*)&io->pipes[k], on_io_closed);
}

static void maybe_done(jobio* io) {
  if (io->exited && io->eof[0] && io->eof[1])
    close_io(io);
}

static void on_grace(uv_timer_t* t) {
  close_io(t->data); /* escaped processes keep writing: not ours to wait */
}

bool qd_reap(void (*left_slot)(qjob* j)) {
  size_t i = 0;
  bool freed = false;
  while (i < the_daemon.nrunning) {
    qjob* j = the_daemon.running[i];
    jobio* io = j->io;
    int status;
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    /* Seen without reaping first: the leader stays a zombie, so its pid
     * (the group's id) cannot be reused by the time we kill the rest of
     * its group, which a job is. */
    if (j->kind != 0 || io == NULL || io->exited ||
        waitid(P_PID, (id_t)j->pgid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid == 0) {
      i++;
      continue;
    }
    kill(-(pid_t)j->pgid, SIGKILL);
    if (waitpid((pid_t)j->pgid, &status, 0) != (pid_t)j->pgid) {
      i++;
      continue;
    }
    io->exited = true;
    io->status = status;
    /* Its group id is free for reuse from now on: nothing may signal it
     * any more, and its timeout (TERM, then KILL) is moot. */
    j->pgid = 0;
    if (j->timer != NULL)
      uv_timer_stop(j->timer);
    /* Its slot is free now; its end is recorded once its output is all
     * in (maybe_done), which needs no slot. */
    the_daemon.running[i] = the_daemon.running[--the_daemon.nrunning];
    left_slot(j);
    freed = true;
    uv_timer_start(&io->grace, on_grace, EOF_GRACE_MS, 0);
    maybe_done(io);
  }
  return freed;
}

/* ---- output ----------------------------------------------------------- */

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  static char scratch[65536]; /* consumed before the next read */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  jobio* io = s->data;
  int k = s == (uv_stream_t*)&io->pipes[0] ? 0 : 1;
  char name[48];
  int rc;
  if (n < 0) {
    io->eof[k] = true;
    uv_read_stop(s);
    maybe_done(io);
    return;
  }
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
  rc = vowp_write_all(io->files[k], buf->base, (size_t)n);
  if (rc != 0) {
    lose_output(io, name, -rc);
    close(io->files[k]);
    io->files[k] = -2;
  }
}

/* ---- spawning --------------------------------------------------------- */

/* The last lookup: jobs in a row are often the same command from the
 * same shell, and a lookup walks every PATH entry. */
static struct {
  char* cmd;
  char* path;
  char* exe;
} last;

/* PATH lookup in the job's own environment. */
static char* resolve(const char* cmd, char** env) {
  const char* path = "/usr/local/bin:/usr/bin:/bin";
  const char* search;
  size_t i;
  if (strchr(cmd, '/') != NULL)
    return strdup(cmd);
  for (i = 0; env != NULL && env[i] != NULL; i++)
    if (strncmp(env[i], "PATH=", 5) == 0)
      path = env[i] + 5;
  if (last.exe != NULL && strcmp(last.cmd, cmd) == 0 &&
      strcmp(last.path, path) == 0 && access(last.exe, X_OK) == 0)
    return strdup(last.exe);
  for (search = path; *search != '\0';) {
    const char* end = strchr(search, ':');
    size_t len = end ? (size_t)(end - search) : strlen(search);
    char full[4096];
    if (len > 0 && len + strlen(cmd) + 2 < sizeof(full)) {
      snprintf(full, sizeof(full), "%.*s/%s", (int)len, search, cmd);
      if (access(full, X_OK) == 0) {
        free(last.cmd);
        free(last.path);
        free(last.exe);
        last.cmd = strdup(cmd);
        last.path = strdup(path);
        last.exe = strdup(full);
        if (last.cmd == NULL || last.path == NULL || last.exe == NULL) {
          free(last.exe);
          last.exe = NULL;
        }
        return strdup(full);
      }
    }
    search += len + (end != NULL);
  }
  return NULL;
}

static int64_t start_ticks_of(pid_t pid) {
  long long pgrp, sid, ticks;
  return vow__os_process_ids(pid, &pgrp, &sid, &ticks) ? ticks : 0;
}

int qd_spawn(qjob* j, char* why, size_t whylen) {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, rc, k;
  char* exe = resolve(j->argv[0], j->env);
  char mark[256];
  char** envp;
  size_t nenv = 0, i;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  pid_t pid;
  jobio* io;
  if (exe == NULL) {
    snprintf(why, whylen, "%s: command not found", j->argv[0]);
    return -1;
  }
  while (j->env != NULL && j->env[nenv] != NULL)
    nenv++;
  envp = calloc(nenv + 2, sizeof(char*));
  io = calloc(1, sizeof(*io));
  if (envp == NULL || io == NULL || vow__os_pipe(out, false) != 0 ||
      vow__os_pipe(err, false) != 0) {
    snprintf(why, whylen, "cannot start: %s", strerror(errno));
    free(envp);
    free(io);
    free(exe);
    for (k = 0; k < 2; k++) {
      if (out[k] >= 0)
        close(out[k]);
      if (err[k] >= 0)
        close(err[k]);
    }
    return -1;
  }
  for (i = 0; i < nenv; i++)
    envp[i] = j->env[i];
  marker(mark, sizeof(mark), j->id);
  envp[nenv] = mark;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (j->cwd != NULL)
    posix_spawn_file_actions_addchdir_np(&fa, j->cwd);
  posix_spawnattr_init(&at);
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(
      &at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  /* A try's output replaces the last try's: never appended to it. */
  for (k = 0; k < 2; k++) {
    char name[48];
    snprintf(name, sizeof(name), "%lld.%s", (long long)j->id, exts[k]);
    unlinkat(the_daemon.out_dir, name, 0);
  }
  free(j->output_error);
  j->output_error = NULL;
  umask(the_daemon.job_umask); /* inherited at the spawn; ours again at once */
  rc = posix_spawn(&pid, exe, &fa, &at, j->argv, envp);
  umask(077);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(out[1]);
  close(err[1]);
  free(envp);
  free(exe);
  if (rc != 0) {
    snprintf(why, whylen, "cannot run %s: %s", j->argv[0], strerror(rc));
    close(out[0]);
    close(err[0]);
    free(io);
    return -1;
  }
  j->pgid = pid;
  j->start_ticks = start_ticks_of(pid);
  free(j->boot_id);
  j->boot_id = strdup(the_daemon.boot_id);
  io->j = j;
  io->files[0] = io->files[1] = -1;
  io->open_handles = 3;
  uv_timer_init(the_daemon.loop, &io->grace);
  io->grace.data = io;
  for (k = 0; k < 2; k++) {
    uv_pipe_init(the_daemon.loop, &io->pipes[k], 0);
    io->pipes[k].data = io;
    uv_pipe_open(&io->pipes[k], k == 0 ? out[0] : err[0]);
    uv_read_start((uv_stream_t*)&io->pipes[k], on_alloc, on_read);
  }
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

static void on_hook_exit(uv_process_t* p, int64_t status, int sig) {
  if (status != 0 || sig != 0)
    qd_log("--on-finish exited with status %lld, signal %d", (long long)status,
           sig);
  uv_close((uv_handle_t*)p, (uv_close_cb)free);
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
  uv_process_t* p;
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  char* args[4];
  int rc;
  if (the_daemon.on_finish == NULL)
    return;
  qjob_command(j, &cmd);
  while (environ[nenv] != NULL)
    nenv++;
  env = calloc(nenv + NVARS + 1, sizeof(char*));
  p = calloc(1, sizeof(*p));
  if (env == NULL || p == NULL) {
    free(env);
    free(p);
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
  memset(&o, 0, sizeof(o));
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 2; /* the log */
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  o.file = args[0];
  o.args = args;
  o.env = env;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.exit_cb = on_hook_exit;
  rc = uv_spawn(the_daemon.loop, p, &o);
  if (rc != 0) {
    qd_log("--on-finish: cannot start /bin/sh: %s", uv_strerror(rc));
    uv_close((uv_handle_t*)p, (uv_close_cb)free);
  } else {
    uv_unref((uv_handle_t*)p);
  }
  for (i = 0; i < NVARS; i++)
    free(values[i]);
  free(env);
  vbuf_free(&cmd);
}
