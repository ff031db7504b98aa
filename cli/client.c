/* The job queue's client commands: vow submit, status, wait, output,
 * cancel, remove, clean, restart, parallel, pause, resume, shutdown. Each
 * connects to the daemon (starting it when none runs, but for status and
 * shutdown), sends msgpack requests and prints the replies. Plain
 * blocking I/O: a client does one thing and exits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "json.h"
#include "os.h"

static int try_connect(const char* path) {
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  memset(&a, 0, sizeof(a));
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
  if (connect(fd, (struct sockaddr*)&a, sizeof(a)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* Nothing goes to a server that is not the user's own: one of another
 * user listening at the path (a socket planted in a shared folder) would
 * be sent the command, its arguments and the whole environment. Returns
 * 0, or -1 after saying who listens. */
static int check_server(int fd, const char* path) {
  uid_t uid;
  pid_t pid;
  if (vow__os_peer_uid(fd, &uid, &pid) != 0) {
    vow_cli_error("cannot tell who listens at %s: %s", path, strerror(errno));
    return -1;
  }
  if (uid != geteuid()) {
    vow_cli_error(
        "the daemon at %s runs as uid %u (pid %d), not as you (uid %u): "
        "refusing to send it anything",
        path, (unsigned)uid, (int)pid, (unsigned)geteuid());
    return -1;
  }
  return 0;
}

/* The last line of the daemon's log, where it says why it stopped. */
static void print_log_tail(const char* path) {
  char err[256], buf[4096];
  int fd = qf_open(-1, path, O_RDONLY, err, sizeof(err));
  off_t size;
  ssize_t n;
  char *end, *line;
  if (fd < 0)
    return;
  size = lseek(fd, 0, SEEK_END);
  n = pread(fd, buf, sizeof(buf) - 1,
            size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0);
  close(fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  end = buf + n;
  while (end > buf && end[-1] == '\n')
    *--end = '\0';
  line = strrchr(buf, '\n');
  fprintf(stderr, "vow: its log ends: %s\n", line ? line + 1 : buf);
}

/* Runs `vow serve --socket PATH`, which returns once its detached daemon
 * listens (or another one already holds the socket). Returns 0, or -1
 * after passing on what it said when it could not start. */
static int start_daemon(const char* sock, const char* log) {
  int fds[2], status = 0;
  vbuf said = {0};
  char buf[1024];
  ssize_t n;
  pid_t pid;
  if (vow__os_pipe(fds, false) != 0)
    return 0; /* the tries to connect say the rest */
  pid = fork();
  if (pid == 0) {
    char* argv[] = {"vow", "serve", "--socket", (char*)sock, NULL};
    dup2(fds[1], 2);
    execv(vow__os_self_exe(), argv);
    _exit(127);
  }
  close(fds[1]);
  /* The daemon's own stderr is its log: this pipe ends as its starter
   * exits. */
  while ((n = read(fds[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      vbuf_add(&said, buf, (size_t)n);
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, &status, 0);
  /* "already serves" is a racing client's daemon: connect to it. */
  if (pid > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
      !memmem(said.data ? said.data : "", said.len, "already serves", 14)) {
    if (said.len > 0) {
      fwrite(said.data, 1, said.len, stderr);
    } else {
      /* It detached, then stopped: its reason is in its log. */
      vow_cli_error("the daemon at %s did not start: see %s", sock, log);
      print_log_tail(log);
    }
    vbuf_free(&said);
    return -1;
  }
  vbuf_free(&said);
  return 0;
}

/* What a command does when no daemon runs: start one, fail, or (vow
 * status) go on with c->fd < 0. */

int qc_open(conn* c, const char* socket_opt, conn_mode mode) {
  int tries;
  bool absent;
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  msgpack_unpacked_init(&c->reply);
  if (queue_paths_init(&c->paths, socket_opt) != 0)
    return -1;
  c->fd = try_connect(c->paths.sock);
  if (c->fd >= 0)
    return check_server(c->fd, c->paths.sock);
  absent = c->fd == -ENOENT || c->fd == -ECONNREFUSED;
  if (absent && mode == CONN_LOOK)
    return 0;
  if (!absent || mode == CONN_NEED) {
    vow_cli_error("cannot reach the daemon at %s: %s", c->paths.sock,
                  absent ? "it is not running" : strerror(-c->fd));
    return -1;
  }
  if (start_daemon(c->paths.sock, c->paths.log) != 0)
    return -1;
  /* A daemon started by a racing client may take a moment to listen. */
  for (tries = 0; tries < 100; tries++) {
    struct timespec ts = {0, 20 * 1000000};
    c->fd = try_connect(c->paths.sock);
    if (c->fd >= 0)
      return check_server(c->fd, c->paths.sock);
    nanosleep(&ts, NULL);
  }
  vow_cli_error("the daemon at %s did not start: see %s", c->paths.sock,
                c->paths.log);
  print_log_tail(c->paths.log);
  return -1;
}

int qc_reopen_if_closed(conn* c) {
  struct pollfd p = {c->fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0)
    return 0;
  close(c->fd);
  c->fd = try_connect(c->paths.sock);
  if (c->fd < 0) {
    vow_cli_error(
        "the daemon at %s closed the connection and cannot be "
        "reached again: %s",
        c->paths.sock, strerror(-c->fd));
    return -1;
  }
  return check_server(c->fd, c->paths.sock);
}

void qc_close(conn* c) {
  if (c->fd >= 0)
    close(c->fd);
  vbuf_free(&c->in);
  msgpack_unpacked_destroy(&c->reply);
}

int qc_send(conn* c, msgpack_sbuffer* sb) {
  int rc = qw_write_frame(c->fd, sb->data, sb->size);
  msgpack_sbuffer_destroy(sb);
  if (rc != 0) {
    /* A daemon that refused us (another uid, say) has said why and
     * closed before our request went out: its reason is the error. */
    if (qc_reply(c) != NULL)
      vow_cli_error("writing to the daemon: %s", strerror(-rc));
    return -1;
  }
  return 0;
}

/* Reads one reply into c->reply. Returns the reply map, or NULL after
 * saying what went wrong (the daemon's own error included). */
const msgpack_object* qc_reply(conn* c) {
  char err[256];
  int rc = qw_read_frame(c->fd, &c->in, err, sizeof(err));
  const msgpack_object* r;
  if (rc == 0) {
    vow_cli_error("the daemon closed the connection");
    return NULL;
  }
  if (rc < 0) {
    vow_cli_error("%s", err);
    return NULL;
  }
  if (msgpack_unpack_next(&c->reply, c->in.data, c->in.len, NULL) !=
          MSGPACK_UNPACK_SUCCESS ||
      c->reply.data.type != MSGPACK_OBJECT_MAP) {
    vow_cli_error("the daemon's reply is not a msgpack map");
    return NULL;
  }
  r = &c->reply.data;
  if (!qw_get_bool(r, "ok")) {
    char* e = qw_get_str(r, "error");
    vow_cli_error("%s", e ? e : "the daemon refused the request");
    free(e);
    return NULL;
  }
  return r;
}

int qc_jobs(conn* c, void (*head)(const msgpack_object* r, void* data),
            void (*each)(const msgpack_object* job, void* data), void* data) {
  bool first = true;
  for (;;) {
    const msgpack_object* r = qc_reply(c);
    const msgpack_object* jobs;
    uint32_t i;
    if (r == NULL)
      return -1;
    jobs = qw_get(r, "jobs");
    if (jobs == NULL || jobs->type != MSGPACK_OBJECT_ARRAY) {
      vow_cli_error("the daemon's reply has no jobs");
      return -1;
    }
    if (first && head != NULL)
      head(r, data);
    first = false;
    for (i = 0; i < jobs->via.array.size; i++)
      each(&jobs->via.array.ptr[i], data);
    if (!qw_get_bool(r, "more"))
      return 0;
  }
}

void qc_begin(msgpack_sbuffer* sb, msgpack_packer* pk, const char* op,
              size_t more) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(pk, 2 + more);
  qw_pack_kv_int(pk, "v", VOW_QUEUE_VERSION);
  qw_pack_kv_str(pk, "op", op);
}

bool qc_parse_id(const char* s, int64_t* out) {
  char* end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v <= 0) {
    vow_cli_error("\"%s\" is not a job id", s);
    return false;
  }
  *out = v;
  return true;
}

bool qc_parse_int(const char* s, const char* what, int64_t lo, int64_t hi,
                  int64_t* out) {
  char* end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
    vow_cli_error("%s wants a whole number from %lld to %lld, not \"%s\"", what,
                  (long long)lo, (long long)hi, s);
    return false;
  }
  *out = v;
  return true;
}

void qc_pack_ids(msgpack_packer* pk, const int64_t* ids, size_t n) {
  size_t i;
  qw_pack_str(pk, "ids");
  msgpack_pack_array(pk, n);
  for (i = 0; i < n; i++)
    msgpack_pack_int64(pk, ids[i]);
}

/* ---- status and wait -------------------------------------------------- */

int qc_collect_ids(int argc, char** argv, id_args* r,
                   const char* const flags[3], bool takes_group) {
  int i, k;
  memset(r, 0, sizeof(*r));
  r->ids = calloc((size_t)argc + 1, sizeof(int64_t));
  if (r->ids == NULL)
    return -1;
  for (i = 0; i < argc; i++) {
    bool known = false;
    for (k = 0; k < 3 && flags != NULL && flags[k] != NULL; k++)
      if (strcmp(argv[i], flags[k]) == 0)
        known = r->flag[k] = true;
    if (known)
      continue;
    if (takes_group &&
        (strcmp(argv[i], "--group") == 0 || strcmp(argv[i], "-g") == 0)) {
      if (i + 1 == argc) {
        vow_cli_error("%s needs a group's name", argv[i]);
        return -1;
      }
      r->group = argv[++i];
      continue;
    }
    if (argv[i][0] == '-') {
      vow_cli_error("unknown option %s", argv[i]);
      return -1;
    }
    if (!qc_parse_id(argv[i], &r->ids[r->n++]))
      return -1;
  }
  return 0;
}

/* ---- the rest --------------------------------------------------------- */

/* Sends ids (and flags) as op; prints "N <word>" from the reply's count. */
static int ids_op(conn* c, const char* op, const id_args* a, const char* count,
                  const char* word) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object* r;
  int64_t done = 0;
  qc_begin(&sb, &pk, op, 1);
  qc_pack_ids(&pk, a->ids, a->n);
  if (qc_send(c, &sb) != 0 || (r = qc_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  qw_get_int(r, count, &done);
  printf("%lld %s\n", (long long)done, word);
  return 0;
}

static int cmd_ids(conn* c, const char* op, int argc, char** argv) {
  id_args a;
  int rc;
  if (qc_collect_ids(argc, argv, &a, NULL, false) != 0 || a.n == 0) {
    if (a.n == 0 && a.ids != NULL)
      vow_cli_error("usage: vow %s ID...", op);
    free(a.ids);
    return VOW_EXIT_ERROR;
  }
  if (strcmp(op, "cancel") == 0) {
    rc = ids_op(c, op, &a, "cancelled", "cancelled");
  } else if (strcmp(op, "remove") == 0) {
    rc = ids_op(c, op, &a, "removed", "removed");
  } else {
    /* restart: one request, so that the jobs restarted together keep
     * their dependencies on one another; the new ids in the order given */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const msgpack_object *r, *ids;
    uint32_t i;
    rc = VOW_EXIT_ERROR;
    qc_begin(&sb, &pk, "restart", 1);
    qc_pack_ids(&pk, a.ids, a.n);
    if (qc_send(c, &sb) == 0 && (r = qc_reply(c)) != NULL &&
        (ids = qw_get(r, "ids")) != NULL && ids->type == MSGPACK_OBJECT_ARRAY) {
      for (i = 0; i < ids->via.array.size; i++)
        printf("%lld\n", (long long)ids->via.array.ptr[i].via.i64);
      rc = 0;
    }
  }
  free(a.ids);
  return rc;
}

/* clean, pause, resume and parallel: no ids; flags, a group, a count. */
static int cmd_queue(conn* c, const char* op, int argc, char** argv) {
  static const char* const flags[3] = {"--successful", "--drain", NULL};
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object* r;
  id_args a;
  int64_t slots = 0, removed = 0;
  bool parallel = strcmp(op, "parallel") == 0;
  int i, rest = 0;
  char* args[64];
  /* parallel N: the count is not a job id */
  for (i = 0; i < argc && rest < 63; i++) {
    if (parallel && slots == 0 && argv[i][0] != '-' &&
        (i == 0 || (strcmp(argv[i - 1], "--group") != 0 &&
                    strcmp(argv[i - 1], "-g") != 0))) {
      if (!qc_parse_int(argv[i], "vow parallel", 1, 1 << 16, &slots))
        return VOW_EXIT_ERROR;
      continue;
    }
    args[rest++] = argv[i];
  }
  if (qc_collect_ids(rest, args, &a, flags, strcmp(op, "shutdown") != 0) != 0 ||
      a.n > 0) {
    if (a.n > 0)
      vow_cli_error("vow %s takes no job ids (see vow %s --help)", op, op);
    free(a.ids);
    return VOW_EXIT_ERROR;
  }
  free(a.ids);
  if (parallel && slots == 0) {
    vow_cli_error("usage: vow parallel N [--group GROUP]");
    return VOW_EXIT_ERROR;
  }
  qc_begin(&sb, &pk, op, 3);
  qw_pack_kv_str(&pk, "group", a.group);
  qw_pack_kv_int(&pk, "slots", slots);
  qw_pack_str(&pk, strcmp(op, "shutdown") == 0 ? "drain" : "successful");
  if (a.flag[0] || a.flag[1])
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  if (qc_send(c, &sb) != 0 || (r = qc_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  if (strcmp(op, "clean") == 0) {
    qw_get_int(r, "removed", &removed);
    printf("%lld removed\n", (long long)removed);
  }
  if (strcmp(op, "shutdown") == 0) {
    /* Returns once the daemon has gone: it closes our connection when
     * it stops serving, and its lock is free once it has exited. */
    char b;
    int lock;
    while (read(c->fd, &b, 1) > 0) {
    }
    char err[256];
    lock = qf_open(-1, c->paths.lock, O_RDONLY, err, sizeof(err));
    if (lock >= 0) {
      flock(lock, LOCK_SH);
      close(lock);
    }
  }
  return 0;
}

/* ---- usage ------------------------------------------------------------- */

static const char socket_help[] =
    "  --socket PATH     the daemon's socket, before or after the command\n"
    "                    (default: $VOW_SOCKET, else\n"
    "                    $XDG_RUNTIME_DIR/vow/queue.sock, else\n"
    "                    /tmp/vow-UID/queue.sock)\n";

static const struct {
  const char* name;
  const char* text;
} helps[] = {
    {"submit",
     "usage: vow submit [options] -- COMMAND [ARG...]\n"
     "       vow submit [options] --stdin     one command a line, from stdin\n"
     "       vow submit [options] --map LIB.so FUNCTION JSON\n"
     "Queues a job and prints its id; starts the daemon (vow serve) when\n"
     "none runs. The job runs in this directory with this environment,\n"
     "without a shell (--stdin: a line with shell syntax runs in /bin/sh).\n"
     "  --name NAME       a name for vow status\n"
     "  --group GROUP, -g GROUP  run in GROUP, which has slots of its own\n"
     "                    (1 until vow parallel N --group GROUP)\n"
     "  --after ID        start once job ID has succeeded (repeatable); if\n"
     "                    it fails, this one is cancelled\n"
     "  --priority P      higher starts first (default 0)\n"
     "  --timeout S       TERM after S seconds, KILL 2 s later (status 124)\n"
     "  --retries N       run a job that fails up to N more times\n"},
    {"status",
     "usage: vow status [ID...] [--group GROUP] [--json]\n"
     "Every job (or those named): its state, exit status, name, group,\n"
     "when it started, how long it ran (or has run), its command, and\n"
     "what a queued job is waiting on. Never starts a daemon.\n"
     "  --json            the daemon's whole reply, as JSON\n"},
    {"wait",
     "usage: vow wait ID... [--any]\n"
     "Waits until the jobs end and exits with the first non-zero status (or,\n"
     "with --any, the status of the first to end): its exit status, 124\n"
     "timed out, 125 cancelled, interrupted or removed, 128+N killed by\n"
     "signal N.\n"},
    {"output",
     "usage: vow output ID [--follow]\n"
     "The job's stdout (its stderr to stderr); a task function's result.\n"
     "  --follow, -f      as it comes, until the job ends; exits with its\n"
     "                    status\n"},
    {"cancel",
     "usage: vow cancel ID...\n"
     "A queued job never runs; a running one gets TERM, then KILL after\n"
     "2 s, its whole process group.\n"},
    {"remove",
     "usage: vow remove ID...\n"
     "Takes jobs that have ended, or are queued, out of the list, with\n"
     "their output. A job queued after one removed is cancelled. A running\n"
     "job is refused: cancel it first.\n"},
    {"clean",
     "usage: vow clean [--successful] [--group GROUP]\n"
     "Removes every job that has ended (with --successful, those that\n"
     "succeeded), with its output.\n"},
    {"restart",
     "usage: vow restart ID...\n"
     "Runs jobs that have ended again, as new jobs (their ids printed):\n"
     "the same command, directory, environment, group and options, and\n"
     "the same dependencies: on the new job of one restarted with it,\n"
     "else on the same job as before.\n"},
    {"parallel",
     "usage: vow parallel N [--group GROUP]\n"
     "Sets how many jobs of the group (default: the default group) run at\n"
     "once, now and after restarts; makes the group if it is new.\n"},
    {"pause",
     "usage: vow pause [--group GROUP]\n"
     "Starts nothing new and stops running jobs (SIGSTOP to their process\n"
     "groups), in every group or one; vow resume continues them.\n"},
    {"resume",
     "usage: vow resume [--group GROUP]\n"
     "Continues what vow pause stopped, and starts jobs again.\n"},
    {"shutdown",
     "usage: vow shutdown [--drain]\n"
     "Stops running jobs (they end interrupted, and run again at the next\n"
     "start if they have retries left) and the daemon; returns once it has\n"
     "exited.\n"
     "  --drain           first let everything queued run\n"},
};

static void usage(const char* command, FILE* f) {
  size_t i;
  for (i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
    if (strcmp(helps[i].name, command) == 0) {
      fputs(helps[i].text, f);
      fputs(socket_help, f);
      return;
    }
}

bool vow_cli_queue_command(const char* name) {
  size_t i;
  for (i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
    if (strcmp(helps[i].name, name) == 0)
      return true;
  return false;
}

int vow_cli_queue_client(const char* command, int argc, char** argv) {
  conn c;
  const char* sock = NULL;
  conn_mode mode;
  int rc, i, k = 0;
  /* argv[0] is the command's name. --socket PATH may come anywhere
   * before a submitted command's "--". */
  argc--;
  argv++;
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      while (i < argc)
        argv[k++] = argv[i++];
      break;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(command, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--socket") == 0) {
      if (i + 1 == argc) {
        vow_cli_error("--socket needs a path");
        return VOW_EXIT_ERROR;
      }
      sock = argv[++i];
      continue;
    }
    if (strncmp(argv[i], "--socket=", 9) == 0) {
      sock = argv[i] + 9;
      continue;
    }
    argv[k++] = argv[i];
  }
  argc = k;
  /* status only looks, and shutdown only stops: neither starts one. */
  mode = strcmp(command, "status") == 0     ? CONN_LOOK
         : strcmp(command, "shutdown") == 0 ? CONN_NEED
                                            : CONN_START;
  if (qc_open(&c, sock, mode) != 0) {
    qc_close(&c);
    return VOW_EXIT_ERROR;
  }
  if (strcmp(command, "submit") == 0)
    rc = cmd_submit(&c, argc, argv);
  else if (strcmp(command, "status") == 0)
    rc = cmd_status(&c, argc, argv);
  else if (strcmp(command, "wait") == 0)
    rc = cmd_wait(&c, argc, argv);
  else if (strcmp(command, "output") == 0)
    rc = cmd_output(&c, argc, argv);
  else if (strcmp(command, "cancel") == 0 || strcmp(command, "remove") == 0 ||
           strcmp(command, "restart") == 0)
    rc = cmd_ids(&c, command, argc, argv);
  else
    rc = cmd_queue(&c, command, argc, argv);
  qc_close(&c);
  return rc;
}
