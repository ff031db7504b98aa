/* mpi/mpi_agent.c — a node agent: forks local workers over
 * socketpairs as the pool does on one machine, and relays their bytes to
 * rank 0. A task that crashes kills only its worker, never this rank:
 * MPI survives no process death, so the agent is the one process on the
 * node that must not die, and runs no task code at all. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mpi_agent.h"
#include "mpi_link.h"
#include "os.h"

extern char** environ;

static int chld_pipe[2] = {-1, -1};

static void on_sigchld(int sig) {
  int saved = errno;
  (void)sig;
  if (write(chld_pipe[1], "c", 1) < 0) {
  }
  errno = saved;
}

typedef struct agent {
  int rank;
  mlink link;
  char** env; /* ours, without the MPI launcher's variables */
  bool quit;
} agent;

/* Workers must not take themselves for ranks of this job. */
static char** worker_env(void) {
  static const char* const drop[] = {"OMPI_", "PMIX_", "OPAL_", "PMI_",
                                     "HYDRA_"};
  size_t n = 0, k = 0, i, d;
  char** env;
  while (environ[n] != NULL)
    n++;
  env = calloc(n + 1, sizeof(char*));
  if (env == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    bool keep = true;
    for (d = 0; d < sizeof(drop) / sizeof(drop[0]); d++)
      if (strncmp(environ[i], drop[d], strlen(drop[d])) == 0)
        keep = false;
    if (keep)
      env[k++] = environ[i];
  }
  return env;
}

/* How many workers this rank runs: VOW_MPI_WORKERS, else this node's
 * cores shared among the ranks placed on it. */
static unsigned slots_offered(void) {
  const char* s = getenv("VOW_MPI_WORKERS");
  const char* local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  long cores = sysconf(_SC_NPROCESSORS_ONLN), per;
  if (s != NULL && atoi(s) > 0)
    return (unsigned)atoi(s);
  per = cores / (local != NULL && atoi(local) > 0 ? atoi(local) : 1);
  return per > 0 ? (unsigned)per : 1;
}

/* In the child: the channel on stdin and stdout, stderr on err (or
 * VOW_MPI_ERR_*), nothing else of ours, the leading `env NAME=VALUE...`
 * of the command applied here (so that an exec failure is the worker's
 * own, with its errno sent back on ep). */
static void run_worker(agent* a, char** argv, const char* cwd, int chan,
                       int err, int ep) {
  sigset_t none;
  size_t n = 0, nargs = 0, k;
  char** env;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  if (dup2(chan, 0) < 0 || dup2(chan, 1) < 0)
    _exit(127);
  if (err == VOW_MPI_ERR_DISCARD)
    err = open("/dev/null", O_WRONLY);
  if (err >= 0 && dup2(err, 2) < 0)
    _exit(127);
  /* MPI's own descriptors are not the worker's business. */
  for (int fd = 3; fd < 1024; fd++)
    if (fd != ep)
      close(fd);
  while (a->env[n] != NULL)
    n++;
  while (argv[nargs] != NULL)
    nargs++;
  env = calloc(n + nargs + 1, sizeof(char*));
  if (env == NULL)
    _exit(127);
  memcpy(env, a->env, n * sizeof(char*));
  if (strcmp(argv[0], "env") == 0)
    for (argv++; argv[0] != NULL && strchr(argv[0], '=') != NULL; argv++) {
      size_t name = (size_t)(strchr(argv[0], '=') - argv[0]);
      for (k = 0; k < n; k++)
        if (strncmp(env[k], argv[0], name + 1) == 0)
          break;
      if (k == n)
        n++;
      env[k] = argv[0];
    }
  if (argv[0] == NULL) {
    errno = EINVAL;
  } else if (cwd[0] == '\0' || chdir(cwd) == 0) {
    execvpe(argv[0], argv, env);
  }
  err = errno;
  if (write(ep, &err, sizeof(err)) < 0) {
  }
  _exit(127);
}

static void start_worker(agent* a, uint32_t id, const char* payload, size_t n,
                         int64_t argc, int err_mode) {
  char** argv = calloc((size_t)argc + 1, sizeof(char*));
  const char* cwd = payload;
  const char* end = payload + n;
  const char* at = payload + strlen(payload) + 1;
  int sv[2], ep[2], er[2] = {-1, -1}, err = 0;
  int64_t i;
  pid_t pid;
  mchan *c, *errc = NULL;
  if (argv == NULL || n == 0 || payload[n - 1] != '\0')
    goto fail;
  for (i = 0; i < argc; i++) {
    if (at >= end)
      goto fail;
    argv[i] = (char*)at;
    at += strlen(at) + 1;
  }
  if (argc == 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    goto fail;
  if (err_mode == 1 && vow__os_pipe(er, false) != 0) {
    close(sv[0]);
    close(sv[1]);
    goto fail;
  }
  if (vow__os_pipe(ep, false) != 0) {
    close(sv[0]);
    close(sv[1]);
    if (er[0] >= 0) {
      close(er[0]);
      close(er[1]);
    }
    goto fail;
  }
  pid = fork();
  if (pid == 0) {
    close(ep[0]);
    run_worker(a, argv, cwd, sv[1],
               err_mode == 1                     ? er[1]
               : err_mode == VOW_MPI_ERR_DISCARD ? VOW_MPI_ERR_DISCARD
                                                 : VOW_MPI_ERR_INHERIT,
               ep[1]);
  }
  close(sv[1]);
  close(ep[1]);
  if (er[1] >= 0)
    close(er[1]);
  /* The exec closes ep; a failure sends its errno first. */
  while (pid > 0 && read(ep[0], &err, sizeof(err)) < 0 && errno == EINTR) {
  }
  close(ep[0]);
  if (pid < 0 || err != 0) {
    if (pid > 0)
      waitpid(pid, NULL, 0);
    close(sv[0]);
    if (er[0] >= 0)
      close(er[0]);
    free(argv);
    mlink_send(&a->link, 0, MM_EXIT, id, -1, -(err ? err : errno), NULL, 0);
    return;
  }
  c = mlink_add(&a->link, id, sv[0], 0);
  if (c != NULL && er[0] >= 0 &&
      (errc = mlink_add(&a->link, id | MCHAN_STDERR, er[0], 0)) == NULL) {
    mlink_remove(&a->link, c); /* closes sv[0] */
    c = NULL;
    sv[0] = -1;
  }
  if (c == NULL) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (sv[0] >= 0)
      close(sv[0]);
    if (er[0] >= 0 && errc == NULL)
      close(er[0]);
    free(argv);
    mlink_send(&a->link, 0, MM_EXIT, id, -1, -ENOMEM, NULL, 0);
    return;
  }
  c->pid = pid;
  free(argv);
  return;
fail:
  free(argv);
  mlink_send(&a->link, 0, MM_EXIT, id, -1, 0, NULL, 0);
}

static void on_msg(void* ud, int src, const mpi_head* h, const char* payload,
                   size_t n) {
  agent* a = ud;
  mchan* c;
  if (src != 0)
    return;
  if (h->kind == MM_QUIT) {
    a->quit = true;
    return;
  }
  if (h->kind == MM_START) {
    start_worker(a, h->chan, payload, n, h->a, (int)h->b);
    return;
  }
  c = mlink_find(&a->link, h->chan);
  if (c == NULL)
    return; /* its worker has gone; rank 0 knows or soon will */
  if (h->kind == MM_DATA) {
    mlink_queue_out(c, payload, n);
  } else if (h->kind == MM_KILL && c->pid > 0) {
    kill(c->pid, (int)h->a);
  } else if (h->kind == MM_EOF) {
    c->shut_when_flushed = true;
    mlink_queue_out(c, NULL, 0);
  }
}

static mchan* find_pid(agent* a, pid_t pid) {
  size_t i;
  for (i = 0; i < a->link.nchans; i++)
    if (a->link.chans[i]->pid == pid)
      return a->link.chans[i];
  return NULL;
}

/* Reads all a channel holds now (a descendant of the worker may keep it
 * open, so not to EOF). */
static void drain_all(agent* a, mchan* c) {
  while (c->fd >= 0 && !c->in_eof) {
    size_t before = a->link.send_bytes;
    mlink_drain(&a->link, c);
    if (a->link.send_bytes == before && !c->in_eof)
      break;
  }
}

/* Each worker that ended: everything it wrote first, then its exit, so
 * rank 0 sees them in the order a local pool would. */
static void reap(agent* a) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    mchan* c = find_pid(a, pid);
    mchan* err;
    if (c == NULL)
      continue;
    err = mlink_find(&a->link, c->id | MCHAN_STDERR);
    drain_all(a, c);
    if (err != NULL) {
      drain_all(a, err);
      mlink_remove(&a->link, err);
    }
    mlink_send(&a->link, 0, MM_EXIT, c->id, WIFEXITED(st) ? WEXITSTATUS(st) : 0,
               WIFSIGNALED(st) ? WTERMSIG(st) : 0, NULL, 0);
    mlink_remove(&a->link, c);
  }
}

/* srun gives stdin to every task unless told --input=0. An agent never
 * uses it, but left unread its pipe fills and srun stops feeding rank 0
 * as well (vow map < a large input hung half-way; closing it does not
 * help, srun's step daemon keeps queueing for it). So a thread of the
 * agent reads and drops it. */
static void* drain_stdin(void* unused) {
  char buf[16384];
  (void)unused;
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EINTR))
      return NULL;
  }
}

static void drop_stdin(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, drain_stdin, NULL) == 0)
    pthread_detach(t);
}

int vow__mpi_agent_run(int rank) {
  agent a;
  struct sigaction sa;
  struct pollfd chld;
  mpi_head hello = {MM_HELLO, 0, 0, 0};
  size_t i;
  memset(&a, 0, sizeof(a));
  a.rank = rank;
  drop_stdin();
  a.env = worker_env();
  if (a.env == NULL || vow__os_pipe(chld_pipe, true) != 0) {
    fprintf(stderr, "vow agent (rank %d): cannot start: %s\n", rank,
            strerror(errno));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  vow__os_timer_slack(1000UL);
  hello.a = slots_offered();
  MPI_Send(&hello, (int)sizeof(hello), MPI_BYTE, 0, VOW_MPI_TAG,
           MPI_COMM_WORLD);
  chld.fd = chld_pipe[0];
  chld.events = POLLIN;
  while (!a.quit) {
    mlink_turn(&a.link, &chld, 1, on_msg, &a);
    if (chld.revents & POLLIN) {
      char b[64];
      while (read(chld_pipe[0], b, sizeof(b)) > 0) {
      }
      reap(&a);
    }
  }
  /* Rank 0 is done: what still runs here is killed, as a pool's
   * immediate shutdown would. */
  for (i = 0; i < a.link.nchans; i++)
    if (a.link.chans[i]->pid > 0)
      kill(a.link.chans[i]->pid, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0) {
  }
  mlink_destroy(&a.link);
  free(a.env);
  MPI_Finalize();
  return 0;
}
