/* vow serve: the job queue's daemon. One libuv loop: client connections
 * are I/O on it, command jobs are child processes, task-function jobs run
 * on a worker pool, and `vow wait` is a promise (a branch of each job's
 * "ended" promise, joined with vow_all or vow_first_settled).
 *
 * A client of another uid is refused by its peer credentials
 * (SO_PEERCRED), root included: the socket's mode 0600 does not stop
 * root. A client that sends what is not a request (bad msgpack, a frame
 * over the limit, an unknown op) gets an error and is dropped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "proto.h"
#include "uv_buf.h"
#include "conn.h"
#include "requests.h"
#include "os.h"
#include "vow_serve.h"

/* A connection that asks nothing and waits on nothing is closed after
 * this (--idle-timeout). */
#define DEFAULT_IDLE_MS 300000

/* ---- start and stop --------------------------------------------------- */

static void on_listener_closed(uv_handle_t* h) {
  (void)h;
}

static void stop_serving(void) {
  client* c;
  if (uv_is_closing((uv_handle_t*)&the_daemon.listener))
    return;
  qd_final_commit();
  unlink(the_daemon.paths.sock);
  uv_close((uv_handle_t*)&the_daemon.listener, on_listener_closed);
  uv_close((uv_handle_t*)&the_daemon.committer, NULL);
  for (c = the_daemon.clients; c != NULL; c = c->next)
    qconn_close(c);
  qd_spawn_close();
  uv_close((uv_handle_t*)&the_daemon.sigterm, NULL);
  uv_close((uv_handle_t*)&the_daemon.sigint, NULL);
  if (the_daemon.retry_timer.data != NULL)
    uv_close((uv_handle_t*)&the_daemon.retry_timer, NULL);
  qd_tasks_stop();
  qd_log("stopped");
}

static void on_term(uv_signal_t* h, int sig) {
  (void)h;
  qd_log("signal %d: shutting down", sig);
  qd_stop_all();
  qd_maybe_drained();
}

static void load_one(qjob* j, void* data) {
  (void)data;
  qd_add(j);
}

static void load_group(const char* name, unsigned slots, bool paused,
                       void* data) {
  qgroup* g = qd_group(name, true);
  /* -j N given to this daemon is the default group's, over what was kept. */
  if (g != the_daemon.groups[0] || !*(bool*)data)
    g->slots = slots;
  g->paused = paused;
}

static void usage(FILE* f) {
  fputs(
      "usage: vow serve [--socket PATH] [-j N] [--on-finish CMD] "
      "[--foreground]\n"
      "\n"
      "The job queue's daemon; vow submit starts it when it is not\n"
      "running. Jobs, their states and results live in PATH.db (SQLite),\n"
      "their output in PATH.out/, its log in PATH.log. Its process is\n"
      "named \"vow serve\" (pgrep -x 'vow serve' finds it).\n"
      "\n"
      "  --socket PATH   the socket (default: $VOW_SOCKET, else\n"
      "                  $XDG_RUNTIME_DIR/vow/queue.sock, else\n"
      "                  /tmp/vow-UID/queue.sock)\n"
      "  -j N            the default group's slots (default: CPUs, or what\n"
      "                  vow parallel set last)\n"
      "  --on-finish CMD run CMD through /bin/sh as each job ends, with\n"
      "                  VOW_JOB_ID, _NAME, _GROUP, _STATE, _STATUS,\n"
      "                  _COMMAND, _STDOUT and _STDERR in its environment\n"
      "                  (default: $VOW_ON_FINISH); its output goes to the\n"
      "                  log\n"
      "  --idle-timeout S  close a connection that asks nothing and waits\n"
      "                  on nothing for S seconds (default 300; 0: never)\n"
      "  --foreground    stay attached, log to stderr\n",
      f);
}

/* Connections take at most half of the descriptors beyond 64 kept for
 * the daemon itself (8 at the least), and refusals past that a few more,
 * so that no number of open connections can leave the jobs' pipes and
 * output files, or the database, without one. The soft limit is left as
 * it is: jobs inherit it, and a raised one breaks programs that still
 * use select(2). */
static void size_descriptors(void) {
  struct rlimit rl;
  the_daemon.max_fds =
      getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
          ? (size_t)rl.rlim_cur
          : 1024;
  the_daemon.max_clients =
      the_daemon.max_fds > 80 ? (the_daemon.max_fds - 64) / 2 : 8;
  if (the_daemon.max_clients > 4096)
    the_daemon.max_clients = 4096;
}

/* Detaches: a new session, stdio to the log (log_fd, already opened and
 * checked), the parent gone, so a shell or test that started us never
 * waits on us. ready_fd (or -1) is written to once we listen. */
static int detach(int log_fd, int* ready_fd) {
  int fds[2];
  pid_t pid;
  char c;
  if (pipe(fds) != 0)
    return -1;
  pid = fork();
  if (pid < 0)
    return -1;
  if (pid > 0) {
    /* Our caller's answer: whether the daemon came up. */
    close(fds[1]);
    _exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
  }
  close(fds[0]);
  setsid();
  pid = fork();
  if (pid < 0)
    _exit(1);
  if (pid > 0)
    _exit(0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  close(log_fd);
  {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
      close(devnull);
    }
  }
  *ready_fd = fds[1];
  return 0;
}

/* SQLite opens PATH.db and beside it PATH.db-wal and PATH.db-journal,
 * both of which it would replay into the database, and PATH.db-shm.
 * The first three are made here (empty) or checked to be ours before
 * SQLite looks, so none can be planted in between; the fourth is only
 * checked, as exclusive locking never makes it. */
static int claim_database_files(char* err, size_t errlen) {
  static const char* const made[] = {"", "-wal", "-journal"};
  char path[sizeof(the_daemon.paths.db) + 16];
  size_t i;
  for (i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
    int fd;
    snprintf(path, sizeof(path), "%s%s", the_daemon.paths.db, made[i]);
    fd = qf_open(-1, path, O_RDWR | O_CREAT, err, errlen);
    if (fd < 0)
      return -1;
    close(fd);
  }
  snprintf(path, sizeof(path), "%s-shm", the_daemon.paths.db);
  return qf_check(path, err, errlen);
}

/* The empty journal claim_database_files made: in WAL mode SQLite never
 * writes one, and its only check for one is done once it is open. */
static void drop_empty_journal(void) {
  char path[sizeof(the_daemon.paths.db) + 16];
  struct stat st;
  snprintf(path, sizeof(path), "%s-journal", the_daemon.paths.db);
  if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0 &&
      st.st_uid == geteuid())
    unlink(path);
}

/* The highest job id with a file in PATH.out/: a database deleted or
 * emptied beside it must not give those ids again, or a new job's output
 * would be written after an old one's. */
static int64_t highest_output_id(void) {
  int fd = dup(the_daemon.out_dir);
  DIR* d = fd >= 0 ? fdopendir(fd) : NULL;
  struct dirent* e;
  int64_t top = 0;
  if (d == NULL) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  while ((e = readdir(d)) != NULL) {
    char* end;
    long long id = strtoll(e->d_name, &end, 10);
    if (end != e->d_name && id > top &&
        (strcmp(end, ".out") == 0 || strcmp(end, ".err") == 0))
      top = id;
  }
  closedir(d);
  return top;
}

/* The socket's place must be ours before anything there is replaced: a
 * --socket or VOW_SOCKET pointing at a user's file must not delete it, and
 * a directory others may write to (without the sticky bit) would let them
 * swap the socket, the lock or the log under us. */
static int check_socket_place(const char* sock, bool user_given) {
  struct stat st;
  if (user_given) {
    char dir[sizeof(the_daemon.paths.sock)];
    char* slash;
    snprintf(dir, sizeof(dir), "%s", sock);
    slash = strrchr(dir, '/');
    if (slash == NULL)
      snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
      dir[1] = '\0';
    else
      *slash = '\0';
    if (stat(dir, &st) != 0) {
      vow_cli_error("--socket %s: cannot use its directory %s: %s", sock, dir,
                    strerror(errno));
      return -1;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
      vow_cli_error(
          "--socket %s: its directory %s belongs to uid %u, not to "
          "us (uid %u)",
          sock, dir, (unsigned)st.st_uid, (unsigned)geteuid());
      return -1;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(st.st_mode & S_ISVTX)) {
      vow_cli_error(
          "--socket %s: others may write to its directory %s (mode "
          "%04o) and could replace the socket: use a directory "
          "only you can write to",
          sock, dir, (unsigned)(st.st_mode & 07777));
      return -1;
    }
  }
  if (lstat(sock, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      vow_cli_error("%s exists and is not a socket: refusing to replace it",
                    sock);
      return -1;
    }
    if (st.st_uid != geteuid()) {
      vow_cli_error(
          "%s is a socket of uid %u, not ours: refusing to replace "
          "it",
          sock, (unsigned)st.st_uid);
      return -1;
    }
  } else if (errno != ENOENT) {
    vow_cli_error("cannot look at %s: %s", sock, strerror(errno));
    return -1;
  }
  return 0;
}

int vow_cli_serve(int argc, char** argv) {
  const char* sock = NULL;
  bool foreground = false;
  int i, lock, ready_fd = -1, log_fd = -1, rc;
  int64_t top;
  char err[512];
  bool slots_given = false;
  unsigned slots = vow_cli_cpus();
  memset(&the_daemon, 0, sizeof(the_daemon));
  the_daemon.hooks.job_ended = qd_job_ended;
  the_daemon.hooks.committed = qconn_flush_replies;
  the_daemon.hooks.stop = stop_serving;
  the_daemon.hooks.request = qd_request;
  the_daemon.on_finish = getenv("VOW_ON_FINISH");
  the_daemon.idle_ms = DEFAULT_IDLE_MS;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      sock = argv[++i];
    } else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
      slots = vow_cli_jobs(argv[++i], 1u << 16);
      slots_given = true;
      if (slots == 0) {
        vow_cli_error("-j %s: not a number of jobs", argv[i]);
        return VOW_EXIT_ERROR;
      }
    } else if (strcmp(argv[i], "--on-finish") == 0 && i + 1 < argc) {
      the_daemon.on_finish = argv[++i];
    } else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc) {
      char* end;
      double t = strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(t >= 0) || t > 1e7) {
        vow_cli_error("--idle-timeout %s: not a number of seconds", argv[i]);
        return VOW_EXIT_ERROR;
      }
      the_daemon.idle_ms = (uint64_t)(t * 1000.0);
    } else if (strcmp(argv[i], "--foreground") == 0) {
      foreground = true;
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      vow_cli_error("unknown option %s (see vow serve --help)", argv[i]);
      return VOW_EXIT_ERROR;
    }
  }
  if (queue_paths_init(&the_daemon.paths, sock) != 0)
    return VOW_EXIT_ERROR;
  if (sock == NULL)
    sock = getenv("VOW_SOCKET");
  if (check_socket_place(the_daemon.paths.sock,
                         sock != NULL && *sock != '\0') != 0)
    return VOW_EXIT_ERROR;
  the_daemon.job_umask = umask(077);
  /* One daemon per socket: the lock is held for our whole life. It, the
   * log, the output folder and the database's files are each made here
   * or refused unless they are ours (tool/owned.c). */
  lock = qf_open(-1, the_daemon.paths.lock, O_RDWR | O_CREAT, err, sizeof(err));
  if (lock < 0) {
    vow_cli_error("%s", err);
    return VOW_EXIT_ERROR;
  }
  if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
    vow_cli_error("a daemon already serves %s", the_daemon.paths.sock);
    return VOW_EXIT_ERROR;
  }
  if (!foreground &&
      (log_fd = qf_open(-1, the_daemon.paths.log, O_WRONLY | O_CREAT | O_APPEND,
                        err, sizeof(err))) < 0) {
    vow_cli_error("%s", err);
    return VOW_EXIT_ERROR;
  }
  the_daemon.out_dir = qf_open_dir(the_daemon.paths.out, err, sizeof(err));
  if (the_daemon.out_dir < 0 || claim_database_files(err, sizeof(err)) != 0) {
    vow_cli_error("%s", err);
    return VOW_EXIT_ERROR;
  }
  if (!foreground && detach(log_fd, &ready_fd) != 0) {
    vow_cli_error("cannot detach: %s", strerror(errno));
    return VOW_EXIT_ERROR;
  }
  /* What ps and pgrep show: "vow serve", not "vow". */
  vow__os_set_name("vow serve");
  size_descriptors();
  the_daemon.db = qdb_open(the_daemon.paths.db, err, sizeof(err));
  if (the_daemon.db == NULL) {
    qd_log("%s", err);
    return VOW_EXIT_ERROR;
  }
  drop_empty_journal();
  top = highest_output_id();
  if (qdb_ids_after(the_daemon.db, top) > 0)
    qd_log(
        "%s holds output of jobs up to %lld that %s does not know: new "
        "jobs are numbered after them",
        the_daemon.paths.out, (long long)top, the_daemon.paths.db);
  vow__os_boot_id(the_daemon.boot_id, sizeof(the_daemon.boot_id));
  the_daemon.loop = uv_default_loop();
  vow__procs_init(&the_daemon.procs, the_daemon.loop);
  the_daemon.ctx = vow_ctx_new(the_daemon.loop, NULL);
  the_daemon.paused = qdb_paused(the_daemon.db);
  qd_group(QD_DEFAULT_GROUP, true)->slots = slots;
  if (qdb_load_groups(the_daemon.db, load_group, &slots_given) != 0)
    qd_log("%s", qdb_error(the_daemon.db));
  if (the_daemon.on_finish != NULL && *the_daemon.on_finish == '\0')
    the_daemon.on_finish = NULL;
  if (qdb_load(the_daemon.db, load_one, NULL) != 0)
    qd_log("%s", qdb_error(the_daemon.db));
  qd_recover();
  uv_pipe_init(the_daemon.loop, &the_daemon.listener, 0);
  /* A dead daemon's, the lock says; and a socket of ours, checked again
   * now that we hold the lock. */
  if (check_socket_place(the_daemon.paths.sock, false) != 0)
    return VOW_EXIT_ERROR;
  unlink(the_daemon.paths.sock);
  rc = uv_pipe_bind(&the_daemon.listener, the_daemon.paths.sock);
  if (rc == 0)
    rc = uv_listen((uv_stream_t*)&the_daemon.listener, 511, qconn_accept);
  if (rc != 0) {
    qd_log("cannot listen on %s: %s", the_daemon.paths.sock, uv_strerror(rc));
    return VOW_EXIT_ERROR;
  }
  chmod(the_daemon.paths.sock, 0600);
  uv_signal_init(the_daemon.loop, &the_daemon.sigterm);
  uv_signal_start(&the_daemon.sigterm, on_term, SIGTERM);
  uv_signal_init(the_daemon.loop, &the_daemon.sigint);
  uv_signal_start(&the_daemon.sigint, on_term, SIGINT);
  qd_log("serving %s (pid %d, %u slots, %lld jobs known%s)",
         the_daemon.paths.sock, (int)getpid(), the_daemon.groups[0]->slots,
         (long long)the_daemon.max_id, the_daemon.paused ? ", paused" : "");
  if (ready_fd >= 0) {
    if (write(ready_fd, "r", 1) != 1) {
    }
    close(ready_fd);
  }
  uv_prepare_init(the_daemon.loop, &the_daemon.committer);
  uv_prepare_start(&the_daemon.committer, qd_commit);
  qd_schedule();
  vow_ctx_run(the_daemon.ctx);
  /* What the last turns recorded (jobs that ended as we stopped). */
  if (qdb_flush(the_daemon.db) != 0)
    qd_log("%s", qdb_error(the_daemon.db));
  vow_ctx_close(the_daemon.ctx);
  qdb_close(the_daemon.db);
  /* The lock is not closed here: the kernel drops it as the process
   * exits, after its memory is gone, so a client that waits on the lock
   * ("vow shutdown") returns only once no daemon is left to be seen. */
  (void)lock;
  return 0;
}
