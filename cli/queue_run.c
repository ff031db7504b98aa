/* The daemon's jobs: which may start, starting them behind a gate,
 * reaping them, timeouts, cancel, dependencies, and the recovery of jobs
 * a dead daemon left running.
 *
 * A command job is forked into a session of its own (its process group
 * is its pid) and waits at a gate, a pipe, before it execs: the daemon
 * records the group in the database first and opens the gate after. If
 * the daemon dies in between, the gate's write end closes and the child
 * exits without running anything; so every job that ran is recorded as
 * running, and a restarted daemon can find and kill what is left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue_daemon.h"

#define KILL_GRACE_MS 2000

daemon_t D;

double qd_now(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void qd_log(const char* fmt, ...) {
  va_list ap;
  char when[32];
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
  fprintf(stderr, "%s vow serve: ", when);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

qjob* qd_job(int64_t id) {
  return id > 0 && id <= D.max_id ? D.jobs[id] : NULL;
}

/* ---- lists ------------------------------------------------------------ */

static void push(qjob*** v, size_t* n, size_t* cap, qjob* j) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    qjob** grown = realloc(*v, c * sizeof(qjob*));
    if (grown == NULL) {
      qd_log("out of memory");
      exit(VOW_EXIT_ERROR);
    }
    *v = grown;
    *cap = c;
  }
  (*v)[(*n)++] = j;
}

static void drop(qjob** v, size_t* n, qjob* j) {
  size_t i;
  for (i = 0; i < *n; i++)
    if (v[i] == j) {
      v[i] = v[--*n];
      return;
    }
}

/* The ready heap: higher priority first, then lower id. */
static bool before(const qjob* a, const qjob* b) {
  return a->priority != b->priority ? a->priority > b->priority : a->id < b->id;
}

static void heap_push(qjob* j) {
  size_t i;
  push(&D.ready, &D.nready, &D.ready_cap, j);
  for (i = D.nready - 1; i > 0 && before(D.ready[i], D.ready[(i - 1) / 2]);
       i = (i - 1) / 2) {
    qjob* t = D.ready[i];
    D.ready[i] = D.ready[(i - 1) / 2];
    D.ready[(i - 1) / 2] = t;
  }
}

static qjob* heap_pop(void) {
  qjob* top;
  size_t i = 0;
  if (D.nready == 0)
    return NULL;
  top = D.ready[0];
  D.ready[0] = D.ready[--D.nready];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    qjob* t;
    if (l < D.nready && before(D.ready[l], D.ready[m]))
      m = l;
    if (r < D.nready && before(D.ready[r], D.ready[m]))
      m = r;
    if (m == i)
      break;
    t = D.ready[i];
    D.ready[i] = D.ready[m];
    D.ready[m] = t;
    i = m;
  }
  return top;
}

/* Removes a job from the heap (cancel of a ready job): rebuilt, since
 * cancels are rare next to starts. */
static void heap_remove(qjob* j) {
  size_t i, n = D.nready;
  qjob** all = D.ready;
  D.ready = NULL;
  D.nready = D.ready_cap = 0;
  for (i = 0; i < n; i++)
    if (all[i] != j)
      heap_push(all[i]);
  free(all);
}

/* ---- dependencies ----------------------------------------------------- */

/* 1: every dependency succeeded; 0: some still pending; -1: one ended
 * without success (its id in *bad). */
static int deps_state(const qjob* j, int64_t* bad) {
  size_t i;
  int result = 1;
  for (i = 0; i < j->nafter; i++) {
    qjob* d = qd_job(j->after[i]);
    if (d == NULL || d->state == QS_DONE)
      continue; /* unknown ids are refused at submit */
    if (qstate_final(d->state)) {
      *bad = d->id;
      return -1;
    }
    result = 0;
  }
  return result;
}

static void settle_waiters(qjob* j) {
  if (j->ended_p != NULL) {
    vow_fulfil(j->ended_p, vow_value_new_int(j->id));
    vow_promise_release(j->ended_p);
    j->ended_p = NULL;
  }
}

vow_promise_t* qd_ended(qjob* j) {
  if (qstate_final(j->state))
    return vow_succeed(D.ctx, vow_value_new_int(j->id));
  if (j->ended_p == NULL)
    j->ended_p = vow_promise_new(D.ctx, NULL, NULL);
  /* Each waiter gets a branch: cancelling it (a client that went away)
   * leaves the job's own promise alone. */
  return vow_branch(j->ended_p);
}

static void set_final(qjob* j, int state, const char* error);

/* A job ended: the queued jobs that waited on it may go, or never will. */
static void release_dependents(void) {
  bool changed = true;
  while (changed) {
    size_t i;
    changed = false;
    for (i = 0; i < D.nwaiting; i++) {
      qjob* w = D.waiting[i];
      int64_t bad = 0;
      int st = deps_state(w, &bad);
      char why[96];
      if (st == 0)
        continue;
      drop(D.waiting, &D.nwaiting, w);
      changed = true;
      if (st > 0) {
        heap_push(w);
      } else {
        snprintf(why, sizeof(why), "dependency %lld did not succeed (%s)",
                 (long long)bad, qstate_name(qd_job(bad)->state));
        set_final(w, QS_CANCELLED, why);
      }
      break;
    }
  }
}

void qd_add(qjob* j) {
  int64_t bad = 0;
  int st;
  if (j->id >= (int64_t)D.njobs_cap) {
    size_t cap = D.njobs_cap ? D.njobs_cap : 1024;
    qjob** grown;
    while ((int64_t)cap <= j->id)
      cap *= 2;
    grown = realloc(D.jobs, cap * sizeof(qjob*));
    if (grown == NULL) {
      qd_log("out of memory");
      exit(VOW_EXIT_ERROR);
    }
    memset(grown + D.njobs_cap, 0, (cap - D.njobs_cap) * sizeof(qjob*));
    D.jobs = grown;
    D.njobs_cap = cap;
  }
  D.jobs[j->id] = j;
  if (j->id > D.max_id)
    D.max_id = j->id;
  if (j->state != QS_QUEUED)
    return;
  st = deps_state(j, &bad);
  if (st > 0)
    heap_push(j);
  else
    push(&D.waiting, &D.nwaiting, &D.waiting_cap, j);
  if (st < 0)
    release_dependents();
}

/* ---- ending ----------------------------------------------------------- */

static void close_timer(qjob* j) {
  if (j->timer != NULL) {
    uv_timer_stop(j->timer);
    uv_close((uv_handle_t*)j->timer, (uv_close_cb)free);
    j->timer = NULL;
  }
}

static void set_final(qjob* j, int state, const char* error) {
  j->state = state;
  j->ended = qd_now();
  if (error != NULL) {
    free(j->error);
    j->error = strdup(error);
  }
  if (qdb_update(D.db, j) != 0)
    qd_log("job %lld: %s", (long long)j->id, qdb_error(D.db));
  settle_waiters(j);
  release_dependents();
}

/* A running job's end: final, or back in the queue for another try. */
void qd_job_ended(qjob* j, int state, const char* error) {
  drop(D.running, &D.nrunning, j);
  close_timer(j);
  if ((state == QS_FAILED || state == QS_INTERRUPTED) && !j->cancel_asked &&
      j->attempts <= j->retries) {
    j->state = QS_QUEUED;
    free(j->error);
    j->error = error ? strdup(error) : NULL;
    if (qdb_update(D.db, j) != 0)
      qd_log("job %lld: %s", (long long)j->id, qdb_error(D.db));
    heap_push(j);
  } else {
    set_final(j, state, error);
  }
  qd_schedule();
  qd_maybe_drained();
}

void qd_on_sigchld(uv_signal_t* h, int sig) {
  size_t i = 0;
  (void)h;
  (void)sig;
  while (i < D.nrunning) {
    qjob* j = D.running[i];
    int status;
    pid_t r;
    char why[64];
    if (j->kind != 0 || j->pgid <= 0 ||
        (r = waitpid((pid_t)j->pgid, &status, WNOHANG)) <= 0) {
      i++;
      continue;
    }
    /* The rest of its group goes with it: a job is its process group. */
    kill(-(pid_t)j->pgid, SIGKILL);
    j->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    j->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (j->cancel_asked) {
      qd_job_ended(j, QS_CANCELLED, "cancelled");
    } else if (D.stopping) {
      qd_job_ended(j, QS_INTERRUPTED, "the daemon was shut down while it ran");
    } else if (j->term_sent) {
      snprintf(why, sizeof(why), "timed out after %g s", j->timeout_s);
      qd_job_ended(j, QS_FAILED, why);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      qd_job_ended(j, QS_DONE, NULL);
    } else {
      if (WIFSIGNALED(status))
        snprintf(why, sizeof(why), "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
      else
        snprintf(why, sizeof(why), "exited with status %d",
                 WEXITSTATUS(status));
      qd_job_ended(j, QS_FAILED, why);
    }
    i = 0; /* the list changed */
  }
}

static void on_kill_timer(uv_timer_t* t) {
  qjob* j = t->data;
  if (!j->term_sent) {
    /* Its timeout: TERM now, KILL if it is still there later. */
    j->term_sent = true;
    kill(-(pid_t)j->pgid, SIGTERM);
    uv_timer_start(t, on_kill_timer, KILL_GRACE_MS, 0);
  } else {
    kill(-(pid_t)j->pgid, SIGKILL);
  }
}

static void terminate(qjob* j) {
  if (j->kind == 1 && j->task_p != NULL) {
    vow_cancel(j->task_p); /* its worker is stopped by the pool */
    return;
  }
  if (j->kind != 0 || j->pgid <= 0)
    return;
  kill(-(pid_t)j->pgid, SIGCONT); /* a paused job must hear it */
  kill(-(pid_t)j->pgid, SIGTERM);
  j->term_sent = true;
  if (j->timer == NULL) {
    j->timer = malloc(sizeof(*j->timer));
    if (j->timer == NULL)
      return;
    uv_timer_init(D.loop, j->timer);
    j->timer->data = j;
  }
  uv_timer_start(j->timer, on_kill_timer, KILL_GRACE_MS, 0);
}

void qd_cancel(qjob* j, const char* why) {
  if (j->state == QS_QUEUED) {
    drop(D.waiting, &D.nwaiting, j);
    heap_remove(j);
    set_final(j, QS_CANCELLED, why);
    qd_maybe_drained();
  } else if (j->state == QS_RUNNING && !j->cancel_asked) {
    j->cancel_asked = true;
    terminate(j);
  }
}

void qd_signal_running(int sig) {
  size_t i;
  for (i = 0; i < D.nrunning; i++)
    if (D.running[i]->kind == 0 && D.running[i]->pgid > 0)
      kill(-(pid_t)D.running[i]->pgid, sig);
}

void qd_stop_all(void) {
  size_t i;
  D.stopping = true;
  for (i = 0; i < D.nrunning; i++)
    terminate(D.running[i]);
}

/* ---- starting --------------------------------------------------------- */

/* PATH lookup done before fork, since the child may only make
 * async-signal-safe calls. */
static char* resolve(const char* cmd, char** env) {
  const char* path = "/usr/local/bin:/usr/bin:/bin";
  size_t i;
  if (strchr(cmd, '/') != NULL)
    return strdup(cmd);
  for (i = 0; env != NULL && env[i] != NULL; i++)
    if (strncmp(env[i], "PATH=", 5) == 0)
      path = env[i] + 5;
  while (*path != '\0') {
    const char* end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    char full[4096];
    if (len > 0 && len + strlen(cmd) + 2 < sizeof(full)) {
      snprintf(full, sizeof(full), "%.*s/%s", (int)len, path, cmd);
      if (access(full, X_OK) == 0)
        return strdup(full);
    }
    path += len + (end != NULL);
  }
  return NULL;
}

static int64_t start_ticks_of(pid_t pid) {
  char path[64], buf[1024];
  FILE* f;
  size_t n;
  char* p;
  long long ticks = 0;
  int field;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  f = fopen(path, "r");
  if (f == NULL)
    return 0;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  p = strrchr(buf, ')'); /* the command name may hold anything */
  if (p == NULL)
    return 0;
  /* Field 3 starts after ") "; starttime is field 22. */
  for (field = 2; field < 22 && p != NULL; field++)
    p = strchr(p + 1, ' ');
  if (p != NULL)
    sscanf(p + 1, "%lld", &ticks);
  return ticks;
}

static int open_output(const qjob* j, const char* ext) {
  char path[192];
  snprintf(path, sizeof(path), "%s/%lld.%s", D.paths.out, (long long)j->id,
           ext);
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* Forks j behind its gate. 0, or -1 when it could not be started (then
 * it has failed, and been dealt with). */
static int start_command(qjob* j) {
  int out = open_output(j, "out"), err = open_output(j, "err");
  int gate[2] = {-1, -1}, devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  char* exe = resolve(j->argv[0], j->env);
  char why[300];
  pid_t pid;
  if (exe == NULL || out < 0 || err < 0 || devnull < 0 ||
      pipe2(gate, O_CLOEXEC) != 0) {
    if (exe == NULL)
      snprintf(why, sizeof(why), "%s: command not found", j->argv[0]);
    else
      snprintf(why, sizeof(why), "cannot start: %s", strerror(errno));
    goto failed;
  }
  pid = fork();
  if (pid < 0) {
    snprintf(why, sizeof(why), "cannot fork: %s", strerror(errno));
    goto failed;
  }
  if (pid == 0) {
    sigset_t none;
    char go;
    struct sigaction dfl;
    int s;
    setsid();
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (s = 1; s < NSIG; s++)
      sigaction(s, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    umask(D.job_umask);
    dup2(devnull, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (read(gate[0], &go, 1) != 1)
      _exit(125); /* the daemon died before it recorded us: run nothing */
    if (j->cwd != NULL && chdir(j->cwd) != 0) {
      static const char msg[] = "vow: cannot enter the job's directory\n";
      if (write(2, msg, sizeof(msg) - 1) < 0) {
      }
      _exit(126);
    }
    execve(exe, j->argv, j->env ? j->env : (char*[]){NULL});
    {
      static const char msg[] = "vow: cannot run the job's command\n";
      if (write(2, msg, sizeof(msg) - 1) < 0) {
      }
    }
    _exit(127);
  }
  close(gate[0]);
  close(out);
  close(err);
  close(devnull);
  free(exe);
  j->pgid = pid;
  j->start_ticks = start_ticks_of(pid);
  free(j->boot_id);
  j->boot_id = strdup(D.boot_id);
  j->go_fd = gate[1];
  return 0;
failed:
  free(exe);
  if (gate[0] >= 0)
    close(gate[0]);
  if (gate[1] >= 0)
    close(gate[1]);
  if (out >= 0)
    close(out);
  if (err >= 0)
    close(err);
  if (devnull >= 0)
    close(devnull);
  j->exit_status = 127;
  push(&D.running, &D.nrunning, &D.running_cap, j);
  qd_job_ended(j, QS_FAILED, why);
  return -1;
}

static void on_retry(uv_timer_t* t) {
  (void)t;
  qd_schedule();
}

static void start(qjob* j) {
  j->attempts++;
  j->state = QS_RUNNING;
  j->started = qd_now();
  j->term_sent = j->cancel_asked = false;
  j->exit_status = j->term_signal = 0;
  if (j->kind == 1) {
    push(&D.running, &D.nrunning, &D.running_cap, j);
    if (qdb_update(D.db, j) != 0)
      qd_log("job %lld: %s", (long long)j->id, qdb_error(D.db));
    qd_map_start(j);
    return;
  }
  if (start_command(j) != 0)
    return;
  push(&D.running, &D.nrunning, &D.running_cap, j);
  /* Recorded before the gate opens, or not run at all. */
  if (qdb_update(D.db, j) != 0) {
    qd_log("job %lld not started: %s; trying again in 1 s", (long long)j->id,
           qdb_error(D.db));
    close(j->go_fd); /* the child exits at the closed gate */
    j->go_fd = -1;
    waitpid((pid_t)j->pgid, NULL, 0);
    drop(D.running, &D.nrunning, j);
    j->state = QS_QUEUED;
    j->attempts--;
    j->pgid = 0;
    heap_push(j);
    uv_timer_start(&D.retry_timer, on_retry, 1000, 0);
    return;
  }
  if (write(j->go_fd, "g", 1) != 1)
    qd_log("job %lld: its gate would not open", (long long)j->id);
  close(j->go_fd);
  j->go_fd = -1;
  if (j->timeout_s > 0) {
    j->timer = malloc(sizeof(*j->timer));
    if (j->timer != NULL) {
      uv_timer_init(D.loop, j->timer);
      j->timer->data = j;
      uv_timer_start(j->timer, on_kill_timer, (uint64_t)(j->timeout_s * 1000.0),
                     0);
    }
  }
}

void qd_schedule(void) {
  if (D.retry_timer.data == NULL) {
    uv_timer_init(D.loop, &D.retry_timer);
    D.retry_timer.data = &D;
  }
  if (uv_is_active((uv_handle_t*)&D.retry_timer))
    return;
  while (!D.paused && !D.stopping && D.nrunning < D.slots && D.nready > 0) {
    qjob* j = heap_pop();
    if (j->state != QS_QUEUED)
      continue;
    start(j);
  }
}

/* ---- recovery --------------------------------------------------------- */

/* Kills every process of a dead daemon's job: same process group and
 * session as its recorded leader, started no earlier than it. Only in the
 * boot it ran in: after a reboot the numbers mean other processes. */
static unsigned kill_leftovers(const qjob* j) {
  DIR* d;
  struct dirent* e;
  unsigned killed = 0;
  if (j->pgid <= 0 || j->boot_id == NULL || strcmp(j->boot_id, D.boot_id))
    return 0;
  d = opendir("/proc");
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL) {
    char path[64], buf[1024];
    FILE* f;
    size_t n;
    char* p;
    long long pgrp = 0, sid = 0, ticks = 0;
    int pid = atoi(e->d_name), field;
    if (pid <= 0)
      continue;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 2, "%*c %*d %lld %lld", &pgrp, &sid) != 2)
      continue;
    for (field = 2; field < 22 && p != NULL; field++)
      p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%lld", &ticks) != 1)
      continue;
    if (pgrp == j->pgid && sid == j->pgid && ticks >= j->start_ticks) {
      kill(pid, SIGKILL);
      killed++;
    }
  }
  closedir(d);
  return killed;
}

void qd_recover(void) {
  int64_t id;
  for (id = 1; id <= D.max_id; id++) {
    qjob* j = D.jobs[id];
    unsigned killed;
    if (j == NULL || j->state != QS_RUNNING)
      continue;
    killed = j->kind == 0 ? kill_leftovers(j) : 0;
    j->pgid = 0;
    if (j->attempts <= j->retries) {
      j->state = QS_QUEUED;
      free(j->error);
      j->error = strdup("interrupted by the daemon's death; retried");
      if (qdb_update(D.db, j) != 0)
        qd_log("job %lld: %s", (long long)j->id, qdb_error(D.db));
      heap_push(j);
    } else {
      set_final(j, QS_INTERRUPTED,
                "the daemon died while it ran (no retries left)");
    }
    qd_log(
        "job %lld was running when the last daemon died: %u processes "
        "of it killed; %s",
        (long long)j->id, killed, qstate_name(j->state));
  }
}
