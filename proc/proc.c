/* Children by posix_spawn: glibc starts them with a clone that shares
 * our memory until the exec, so a parent holding gigabytes starts a
 * child as fast as a small one (a fork would copy its page tables first).
 *
 * Reaping: SIGCHLD wakes the loop; a child that has exited is looked at
 * without being reaped (WNOWAIT) while its pid, which is also its group's
 * id, cannot be reused, so the rest of its group can still be killed;
 * then it is reaped. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "os.h"

extern char** environ;

struct vow__orphan {
  pid_t pid;
  bool killed; /* else a background child, left to run */
};

#define SCRATCH_BYTES 65536

/* ---- the command's path ------------------------------------------------ */

/* The last lookup: jobs in a row are often the same command, and a lookup
 * walks every PATH entry. Shared by every thread that spawns. */
static struct {
  uv_once_t once;
  uv_mutex_t lock;
  char* cmd;
  char* path;
  char* exe;
} last = {UV_ONCE_INIT};

static void init_last(void) {
  uv_mutex_init(&last.lock);
}

static void remember(const char* cmd, const char* path, const char* exe) {
  vow__free(last.cmd);
  vow__free(last.path);
  vow__free(last.exe);
  last.cmd = vow__strdup(cmd);
  last.path = vow__strdup(path);
  last.exe = vow__strdup(exe);
  if (last.cmd == NULL || last.path == NULL || last.exe == NULL) {
    vow__free(last.exe);
    last.exe = NULL;
  }
}

/* cmd as execvp would find it in env's PATH (the child's, as libuv and a
 * shell look it up), or NULL with errno set. */
static char* resolve(const char* cmd, char* const* env) {
  const char* path = "/usr/local/bin:/usr/bin:/bin";
  const char* search;
  char* found = NULL;
  size_t i;
  int err = ENOENT;
  /* Checked here too, not only by the exec: where the spawn is a fork
   * (under valgrind), the exec's errno cannot come back. */
  if (strchr(cmd, '/') != NULL)
    return access(cmd, X_OK) == 0 ? vow__strdup(cmd) : NULL;
  if (*cmd == '\0') {
    errno = ENOENT;
    return NULL;
  }
  for (i = 0; env != NULL && env[i] != NULL; i++)
    if (strncmp(env[i], "PATH=", 5) == 0)
      path = env[i] + 5;
  uv_once(&last.once, init_last);
  uv_mutex_lock(&last.lock);
  if (last.exe != NULL && strcmp(last.cmd, cmd) == 0 &&
      strcmp(last.path, path) == 0 && access(last.exe, X_OK) == 0)
    found = vow__strdup(last.exe);
  uv_mutex_unlock(&last.lock);
  if (found != NULL)
    return found;
  for (search = path;;) {
    const char* end = strchr(search, ':');
    size_t len = end ? (size_t)(end - search) : strlen(search);
    char full[4096];
    /* An empty entry is the working directory, as execvp has it. */
    if (len + strlen(cmd) + 3 < sizeof(full)) {
      snprintf(full, sizeof(full), "%.*s/%s", (int)(len ? len : 1),
               len ? search : ".", cmd);
      if (access(full, X_OK) == 0) {
        uv_mutex_lock(&last.lock);
        remember(cmd, path, full);
        uv_mutex_unlock(&last.lock);
        return vow__strdup(full);
      }
      if (errno == EACCES)
        err = EACCES;
    }
    if (end == NULL)
      break;
    search = end + 1;
  }
  errno = err;
  return NULL;
}

/* ---- the live list ------------------------------------------------------- */

static void link_live(vow__proc* p) {
  vow__procs* set = p->set;
  p->prev = NULL;
  p->next = set->live;
  if (set->live != NULL)
    set->live->prev = p;
  set->live = p;
  /* The loop lives while a child runs, as with a libuv process handle. */
  if (!p->background && set->nforeground++ == 0)
    uv_ref((uv_handle_t*)&set->sigchld);
}

static void unlink_live(vow__proc* p) {
  vow__procs* set = p->set;
  if (p->prev != NULL)
    p->prev->next = p->next;
  else
    set->live = p->next;
  if (p->next != NULL)
    p->next->prev = p->prev;
  p->prev = p->next = NULL;
  if (!p->background && --set->nforeground == 0)
    uv_unref((uv_handle_t*)&set->sigchld);
}

/* ---- ending -------------------------------------------------------------- */

static void maybe_done(vow__proc* p) {
  if (p->done || !p->exited || !p->eof[0] || !p->eof[1])
    return;
  p->done = true;
  uv_timer_stop(&p->timer);
  if (p->calls->on_done != NULL)
    p->calls->on_done(p);
}

static void stop_reading(vow__proc* p, int k) {
  if (p->eof[k])
    return;
  p->eof[k] = true;
  uv_read_stop((uv_stream_t*)&p->pipes[k]);
  if (p->calls->on_eof != NULL)
    p->calls->on_eof(p, k + 1);
}

static void on_timer(uv_timer_t* t) {
  vow__proc* p = t->data;
  if (p->running) {
    vow__proc_kill(p); /* the stop grace is over */
    return;
  }
  /* The EOF grace is over: a process that left the group keeps writing,
   * and is not ours to wait for. */
  stop_reading(p, 0);
  stop_reading(p, 1);
  maybe_done(p);
}

/* Takes what is in pipe k now and ends it: the exit is in, so all the
 * child itself wrote is there. */
static void drain(vow__proc* p, int k) {
  uv_os_fd_t fd;
  ssize_t n;
  if (p->eof[k] || uv_fileno((uv_handle_t*)&p->pipes[k], &fd) != 0)
    return;
  uv_read_stop((uv_stream_t*)&p->pipes[k]);
  while ((n = read(fd, p->set->scratch, SCRATCH_BYTES)) > 0 ||
         (n < 0 && errno == EINTR))
    if (n > 0)
      p->calls->on_output(p, k + 1, p->set->scratch, (size_t)n);
  stop_reading(p, k);
}

/* Reaps p, whose exit waitid has seen and left in place. */
static void take(vow__proc* p) {
  int status = 0;
  if (p->end_group)
    kill(-p->pid, SIGKILL); /* its pid is still the group's own */
  while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
    ;
  unlink_live(p);
  p->running = false;
  p->exited = true;
  p->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  p->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  uv_timer_stop(&p->timer);
  if (p->calls->on_exit != NULL)
    p->calls->on_exit(p);
  if (p->drain) {
    drain(p, 0);
    drain(p, 1);
  } else if (!p->done && (!p->eof[0] || !p->eof[1]) && p->eof_grace_ms > 0) {
    uv_timer_start(&p->timer, on_timer, p->eof_grace_ms, 0);
  }
  maybe_done(p);
}

static bool has_exited(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

/* closing: the last look, which waits for those that were killed. */
static void reap_orphans(vow__procs* set, bool closing) {
  size_t i = 0;
  while (i < set->norphans) {
    struct vow__orphan* o = &set->orphans[i];
    int flags = closing && o->killed ? 0 : WNOHANG;
    pid_t got = waitpid(o->pid, NULL, flags);
    if (got == o->pid || (got < 0 && errno == ECHILD) || closing)
      set->orphans[i] = set->orphans[--set->norphans];
    else
      i++;
  }
}

/* Each callback may start or close children, so every search starts
 * again from the list's head. */
static void on_sigchld(uv_signal_t* h, int sig) {
  vow__procs* set = h->data;
  (void)sig;
  for (;;) {
    siginfo_t info;
    vow__proc* p;
    memset(&info, 0, sizeof(info));
    /* The usual case: the first exited child is one of ours. */
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid == 0)
      break;
    for (p = set->live; p != NULL && p->pid != info.si_pid; p = p->next)
      ;
    if (p == NULL) {
      /* Someone else's child (the program's, or an orphan of ours)
       * comes first: ask for each of ours instead. */
      for (p = set->live; p != NULL && !has_exited(p->pid); p = p->next)
        ;
      if (p == NULL)
        break;
    }
    take(p);
  }
  if (set->norphans > 0)
    reap_orphans(set, false);
}

void vow__procs_init(vow__procs* set, uv_loop_t* loop) {
  memset(set, 0, sizeof(*set));
  set->loop = loop;
}

static int start_watch(vow__procs* set) {
  int rc;
  if (set->started)
    return 0;
  set->scratch = vow__malloc(SCRATCH_BYTES);
  if (set->scratch == NULL)
    return ENOMEM;
  uv_signal_init(set->loop, &set->sigchld);
  set->sigchld.data = set;
  rc = uv_signal_start(&set->sigchld, on_sigchld, SIGCHLD);
  if (rc != 0) {
    uv_close((uv_handle_t*)&set->sigchld, NULL);
    vow__free(set->scratch);
    set->scratch = NULL;
    return -rc;
  }
  uv_unref((uv_handle_t*)&set->sigchld);
  set->started = true;
  return 0;
}

static void on_watch_closed(uv_handle_t* h) {
  vow__procs* set = h->data;
  if (set->on_closed != NULL)
    set->on_closed(set);
}

bool vow__procs_close(vow__procs* set, void (*on_closed)(vow__procs* set)) {
  /* Those killed were sent SIGKILL: waiting for them is short. */
  reap_orphans(set, true);
  vow__free(set->orphans);
  set->orphans = NULL;
  set->norphans = set->orphans_cap = 0;
  if (!set->started)
    return false;
  set->started = false;
  vow__free(set->scratch);
  set->scratch = NULL;
  set->on_closed = on_closed;
  uv_close((uv_handle_t*)&set->sigchld, on_watch_closed);
  return true;
}

/* ---- output -------------------------------------------------------------- */

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  vow__proc* p = h->data;
  (void)suggested;
  *buf = uv_buf_init(p->set->scratch, SCRATCH_BYTES);
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  vow__proc* p = s->data;
  int k = s == (uv_stream_t*)&p->pipes[0] ? 0 : 1;
  if (n > 0) {
    p->calls->on_output(p, k + 1, buf->base, (size_t)n);
    return;
  }
  if (n == 0)
    return;
  stop_reading(p, k);
  maybe_done(p);
}

/* ---- starting ------------------------------------------------------------ */

static void set_stream(posix_spawn_file_actions_t* fa, int target, int what,
                       int pipe_end) {
  if (what == VOW__PROC_PIPE)
    posix_spawn_file_actions_adddup2(fa, pipe_end, target);
  else if (what < 0)
    posix_spawn_file_actions_addopen(fa, target, "/dev/null",
                                     target == 0 ? O_RDONLY : O_WRONLY, 0);
  else /* onto itself, it clears close-on-exec, which libuv sets on ours */
    posix_spawn_file_actions_adddup2(fa, what, target);
}

static void close_pair(int fds[2]) {
  for (int k = 0; k < 2; k++)
    if (fds[k] >= 0)
      close(fds[k]);
}

int vow__proc_spawn(vow__proc* p, vow__procs* set, const vow__proc_spec* spec,
                    const vow__proc_calls* calls, void* data) {
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, dflt;
  char* exe;
  pid_t pid;
  int rc, k;
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  memset(p, 0, sizeof(*p));
  p->set = set;
  p->calls = calls;
  p->data = data;
  if ((rc = start_watch(set)) != 0)
    return rc;
  if ((exe = resolve(spec->argv[0], spec->env)) == NULL)
    return errno;
  for (k = 0; k < 2; k++)
    if (spec->fd[k + 1] == VOW__PROC_PIPE && vow__os_pipe(pipes[k], false)) {
      rc = errno;
      close_pair(pipes[0]);
      close_pair(pipes[1]);
      vow__free(exe);
      return rc;
    }
  posix_spawn_file_actions_init(&fa);
  set_stream(&fa, 0, spec->fd[0], -1);
  set_stream(&fa, 1, spec->fd[1], pipes[0][1]);
  set_stream(&fa, 2, spec->fd[2], pipes[1][1]);
  if (spec->fd3 >= 0)
    posix_spawn_file_actions_adddup2(&fa, spec->fd3, 3);
  if (spec->fd4 > 2)
    posix_spawn_file_actions_adddup2(&fa, spec->fd4, 4);
  if (spec->cwd != NULL) /* glibc's; there is no POSIX way */
    posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
  posix_spawnattr_init(&at);
  sigemptyset(&none);
  if (spec->default_signals) {
    sigfillset(&dflt);
  } else {
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
  }
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dflt);
  if (spec->own_group)
    flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&at, flags);
  rc = posix_spawn(&pid, exe, &fa, &at, spec->argv,
                   spec->env ? spec->env : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  vow__free(exe);
  for (k = 0; k < 2; k++)
    if (pipes[k][1] >= 0)
      close(pipes[k][1]);
  if (rc != 0) {
    for (k = 0; k < 2; k++)
      if (pipes[k][0] >= 0)
        close(pipes[k][0]);
    return rc;
  }
  p->pid = pid;
  p->running = true;
  p->group = spec->own_group;
  p->end_group = spec->own_group && spec->end_group_at_exit;
  p->eof_grace_ms = spec->eof_grace_ms;
  p->background = spec->background;
  p->drain = spec->drain_at_exit;
  link_live(p);
  uv_timer_init(set->loop, &p->timer);
  p->timer.data = p;
  p->open_handles = 1;
  for (k = 0; k < 2; k++) {
    p->piped[k] = pipes[k][0] >= 0;
    p->eof[k] = !p->piped[k];
    if (!p->piped[k])
      continue;
    uv_pipe_init(set->loop, &p->pipes[k], 0);
    p->pipes[k].data = p;
    uv_pipe_open(&p->pipes[k], pipes[k][0]);
    uv_read_start((uv_stream_t*)&p->pipes[k], on_alloc, on_read);
    p->open_handles++;
  }
  return 0;
}

/* ---- signals ------------------------------------------------------------- */

void vow__proc_signal(vow__proc* p, int sig) {
  if (!p->running)
    return; /* reaped: its pid may be another's now */
  kill(p->group ? -p->pid : p->pid, sig);
}

void vow__proc_stop(vow__proc* p, unsigned grace_ms) {
  if (!p->running || p->stopping)
    return;
  p->stopping = true;
  vow__proc_signal(p, SIGCONT);
  vow__proc_signal(p, SIGTERM);
  uv_timer_start(&p->timer, on_timer, grace_ms, 0);
}

void vow__proc_kill(vow__proc* p) {
  vow__proc_signal(p, SIGKILL);
  if (p->running && p->group)
    kill(p->pid, SIGKILL); /* the leader too, had it left its group */
}

/* ---- closing ------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t* h) {
  vow__proc* p = h->data;
  if (--p->open_handles == 0 && p->on_closed != NULL)
    p->on_closed(p);
}

static void keep_orphan(vow__procs* set, pid_t pid, bool killed) {
  if (set->norphans == set->orphans_cap) {
    size_t cap = set->orphans_cap ? set->orphans_cap * 2 : 8;
    struct vow__orphan* grown =
        vow__realloc(set->orphans, cap * sizeof(*grown));
    if (grown == NULL) {
      if (killed)
        waitpid(pid, NULL, 0); /* it was sent SIGKILL: not for long */
      return;
    }
    set->orphans = grown;
    set->orphans_cap = cap;
  }
  set->orphans[set->norphans].pid = pid;
  set->orphans[set->norphans++].killed = killed;
}

void vow__proc_close(vow__proc* p, void (*on_closed)(vow__proc* p)) {
  int k;
  p->on_closed = on_closed;
  if (p->running) {
    if (!p->background)
      vow__proc_kill(p);
    unlink_live(p);
    p->running = false;
    if (waitpid(p->pid, NULL, WNOHANG) != p->pid)
      keep_orphan(p->set, p->pid, !p->background);
  }
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t*)&p->timer, on_handle_closed);
  for (k = 0; k < 2; k++)
    if (p->piped[k])
      uv_close((uv_handle_t*)&p->pipes[k], on_handle_closed);
}
