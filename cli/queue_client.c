/* The job queue's client commands: vow submit, status, wait, output,
 * cancel, pause, resume, shutdown. Each connects to the daemon (starting
 * it when none runs), sends msgpack requests and prints the replies.
 * Plain blocking I/O: a client does one thing and exits. */
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

#include "json.h"
#include "queue.h"

extern char** environ;

typedef struct conn {
  int fd;
  queue_paths paths;
  vbuf in;
  msgpack_unpacked reply;
} conn;

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

/* Runs `vow serve --socket PATH`, which returns once its detached daemon
 * listens (or another one already holds the socket). */
static void start_daemon(const char* sock) {
  pid_t pid = fork();
  int status;
  if (pid == 0) {
    char* argv[] = {"vow", "serve", "--socket", (char*)sock, NULL};
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
      dup2(devnull, 2); /* "already serves" from a racing start is fine */
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  if (pid > 0)
    waitpid(pid, &status, 0);
}

static int conn_open(conn* c, const char* socket_opt, bool autostart) {
  int tries;
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  msgpack_unpacked_init(&c->reply);
  if (queue_paths_init(&c->paths, socket_opt) != 0)
    return -1;
  c->fd = try_connect(c->paths.sock);
  if (c->fd >= 0)
    return 0;
  if (!autostart || (c->fd != -ENOENT && c->fd != -ECONNREFUSED)) {
    vow_cli_error("cannot reach the daemon at %s: %s", c->paths.sock,
                  c->fd == -ENOENT || c->fd == -ECONNREFUSED
                      ? "it is not running"
                      : strerror(-c->fd));
    return -1;
  }
  start_daemon(c->paths.sock);
  /* A daemon started by a racing client may take a moment to listen. */
  for (tries = 0; tries < 100; tries++) {
    struct timespec ts = {0, 20 * 1000000};
    c->fd = try_connect(c->paths.sock);
    if (c->fd >= 0)
      return 0;
    nanosleep(&ts, NULL);
  }
  vow_cli_error("the daemon at %s did not start: see %s", c->paths.sock,
                c->paths.log);
  return -1;
}

static void conn_close(conn* c) {
  if (c->fd >= 0)
    close(c->fd);
  vbuf_free(&c->in);
  msgpack_unpacked_destroy(&c->reply);
}

static const msgpack_object* read_reply(conn* c);

static int send_request(conn* c, msgpack_sbuffer* sb) {
  int rc = qw_write_frame(c->fd, sb->data, sb->size);
  msgpack_sbuffer_destroy(sb);
  if (rc != 0) {
    /* A daemon that refused us (another uid, say) has said why and
     * closed before our request went out: its reason is the error. */
    if (read_reply(c) != NULL)
      vow_cli_error("writing to the daemon: %s", strerror(-rc));
    return -1;
  }
  return 0;
}

/* Reads one reply into c->reply. Returns the reply map, or NULL after
 * saying what went wrong (the daemon's own error included). */
static const msgpack_object* read_reply(conn* c) {
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

static void begin(msgpack_sbuffer* sb, msgpack_packer* pk, const char* op,
                  size_t more) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(pk, 2 + more);
  qw_pack_kv_int(pk, "v", VOW_QUEUE_VERSION);
  qw_pack_kv_str(pk, "op", op);
}

static bool parse_id(const char* s, int64_t* out) {
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

static void pack_ids(msgpack_packer* pk, const int64_t* ids, size_t n) {
  size_t i;
  qw_pack_str(pk, "ids");
  msgpack_pack_array(pk, n);
  for (i = 0; i < n; i++)
    msgpack_pack_int64(pk, ids[i]);
}

/* ---- submit ----------------------------------------------------------- */

typedef struct submit_opts {
  const char* name;
  int64_t after[64];
  size_t nafter;
  int64_t priority;
  double timeout;
  int64_t retries;
} submit_opts;

static void pack_submit(msgpack_sbuffer* sb, const submit_opts* o, char** argv,
                        int argc, const char* cwd) {
  msgpack_packer pk;
  size_t i, nenv = 0;
  int k;
  while (environ[nenv] != NULL)
    nenv++;
  begin(sb, &pk, "submit", 8);
  qw_pack_kv_str(&pk, "name", o->name);
  qw_pack_str(&pk, "argv");
  msgpack_pack_array(&pk, (size_t)argc);
  for (k = 0; k < argc; k++)
    qw_pack_str(&pk, argv[k]);
  qw_pack_kv_str(&pk, "cwd", cwd);
  qw_pack_str(&pk, "env");
  msgpack_pack_array(&pk, nenv);
  for (i = 0; i < nenv; i++)
    qw_pack_str(&pk, environ[i]);
  qw_pack_kv_int(&pk, "priority", o->priority);
  qw_pack_str(&pk, "timeout");
  msgpack_pack_double(&pk, o->timeout);
  qw_pack_kv_int(&pk, "retries", o->retries);
  qw_pack_str(&pk, "after");
  msgpack_pack_array(&pk, o->nafter);
  for (i = 0; i < o->nafter; i++)
    msgpack_pack_int64(&pk, o->after[i]);
}

static int print_id(conn* c) {
  const msgpack_object* r = read_reply(c);
  int64_t id;
  if (r == NULL || !qw_get_int(r, "id", &id))
    return -1;
  printf("%lld\n", (long long)id);
  return 0;
}

/* A line with nothing a shell would interpret runs as its words, without
 * a shell between: the same effect, one exec less. */
static int simple_words(char* line, char** words, int max) {
  static const char special[] = "|&;<>()$`\\\"'*?[]#~=%{}!\n";
  int n = 0;
  char* p;
  if (strpbrk(line, special) != NULL)
    return 0;
  for (p = strtok(line, " \t"); p != NULL; p = strtok(NULL, " \t")) {
    if (n == max)
      return 0;
    words[n++] = p;
  }
  return n;
}

/* Commands from stdin, one per line, each run by /bin/sh -c (or as its
 * words, when no shell is needed): many jobs through one connection,
 * with up to WINDOW requests in flight. */
static int submit_lines(conn* c, const submit_opts* o, const char* cwd) {
  enum { WINDOW = 256 };
  char* line = NULL;
  size_t cap = 0, pending = 0;
  ssize_t len;
  int rc = 0;
  while ((len = getline(&line, &cap, stdin)) >= 0) {
    msgpack_sbuffer sb;
    char* argv[3] = {"/bin/sh", "-c", line};
    char* words[64];
    char* copy;
    int nwords;
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = '\0';
    if (len == 0)
      continue;
    copy = strdup(line);
    nwords = copy ? simple_words(copy, words, 64) : 0;
    if (nwords > 0)
      pack_submit(&sb, o, words, nwords, cwd);
    else
      pack_submit(&sb, o, argv, 3, cwd);
    free(copy);
    if (send_request(c, &sb) != 0) {
      rc = -1;
      break;
    }
    if (++pending == WINDOW) {
      for (; pending > 0; pending--)
        if (print_id(c) != 0)
          rc = -1;
      fflush(stdout);
    }
  }
  for (; pending > 0; pending--)
    if (print_id(c) != 0)
      rc = -1;
  free(line);
  return rc;
}

static int submit_map(conn* c, const submit_opts* o, char** argv, int argc) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char lib[4096];
  if (argc != 3) {
    vow_cli_error("usage: vow submit --map LIB.so FUNCTION JSON");
    return -1;
  }
  if (realpath(argv[0], lib) == NULL) {
    vow_cli_error("%s: %s", argv[0], strerror(errno));
    return -1;
  }
  begin(&sb, &pk, "submit", 8);
  qw_pack_str(&pk, "map");
  msgpack_pack_true(&pk);
  qw_pack_kv_str(&pk, "lib", lib);
  qw_pack_kv_str(&pk, "fn", argv[1]);
  qw_pack_kv_str(&pk, "arg", argv[2]);
  qw_pack_kv_str(&pk, "name", o->name);
  qw_pack_kv_int(&pk, "priority", o->priority);
  qw_pack_kv_int(&pk, "retries", o->retries);
  qw_pack_str(&pk, "after");
  msgpack_pack_array(&pk, o->nafter);
  for (size_t i = 0; i < o->nafter; i++)
    msgpack_pack_int64(&pk, o->after[i]);
  if (send_request(c, &sb) != 0)
    return -1;
  return print_id(c);
}

static int cmd_submit(conn* c, int argc, char** argv) {
  submit_opts o;
  bool from_stdin = false, map = false;
  char cwd[4096];
  int i;
  memset(&o, 0, sizeof(o));
  for (i = 0; i < argc; i++) {
    const char* a = argv[i];
    bool more = i + 1 < argc;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    } else if (strcmp(a, "--name") == 0 && more) {
      o.name = argv[++i];
    } else if (strcmp(a, "--after") == 0 && more) {
      if (o.nafter == 64) {
        vow_cli_error("at most 64 --after");
        return VOW_EXIT_ERROR;
      }
      if (!parse_id(argv[++i], &o.after[o.nafter++]))
        return VOW_EXIT_ERROR;
    } else if (strcmp(a, "--priority") == 0 && more) {
      o.priority = strtoll(argv[++i], NULL, 10);
    } else if (strcmp(a, "--timeout") == 0 && more) {
      char* end;
      o.timeout = strtod(argv[++i], &end);
      if (*end != '\0' || o.timeout < 0) {
        vow_cli_error("--timeout %s: not a number of seconds", argv[i]);
        return VOW_EXIT_ERROR;
      }
    } else if (strcmp(a, "--retries") == 0 && more) {
      o.retries = strtoll(argv[++i], NULL, 10);
    } else if (strcmp(a, "--stdin") == 0) {
      from_stdin = true;
    } else if (strcmp(a, "--map") == 0) {
      map = true;
    } else if (a[0] == '-' && !map) {
      vow_cli_error("unknown option %s (see vow submit --help)", a);
      return VOW_EXIT_ERROR;
    } else {
      break;
    }
  }
  if (getcwd(cwd, sizeof(cwd)) == NULL) {
    vow_cli_error("cannot read the working directory: %s", strerror(errno));
    return VOW_EXIT_ERROR;
  }
  if (map)
    return submit_map(c, &o, argv + i, argc - i) ? VOW_EXIT_ERROR : 0;
  if (from_stdin)
    return submit_lines(c, &o, cwd) ? VOW_EXIT_ERROR : 0;
  if (i >= argc) {
    vow_cli_error("no command to submit (vow submit [options] -- CMD ARGS)");
    return VOW_EXIT_ERROR;
  }
  {
    msgpack_sbuffer sb;
    pack_submit(&sb, &o, argv + i, argc - i, cwd);
    if (send_request(c, &sb) != 0 || print_id(c) != 0)
      return VOW_EXIT_ERROR;
  }
  return 0;
}

/* ---- status and wait -------------------------------------------------- */

static int collect_ids(int argc, char** argv, int64_t** ids, size_t* n,
                       const char* flag, bool* flag_set) {
  int i;
  *ids = calloc((size_t)argc + 1, sizeof(int64_t));
  *n = 0;
  for (i = 0; i < argc; i++) {
    if (flag != NULL && strcmp(argv[i], flag) == 0) {
      *flag_set = true;
      continue;
    }
    if (!parse_id(argv[i], &(*ids)[(*n)++]))
      return -1;
  }
  return 0;
}

static void print_job_line(const msgpack_object* j) {
  int64_t id = 0, status = -1;
  char* state = qw_get_str(j, "state");
  char* name = qw_get_str(j, "name");
  char* cmd = qw_get_str(j, "command");
  char* err = qw_get_str(j, "error");
  qw_get_int(j, "id", &id);
  qw_get_int(j, "status", &status);
  printf("%-6lld %-11s ", (long long)id, state ? state : "?");
  if (status >= 0)
    printf("%-4lld ", (long long)status);
  else
    printf("%-4s ", "-");
  printf("%-12s %s", name ? name : "-", cmd ? cmd : "");
  if (err && state && strcmp(state, "done") != 0)
    printf("   (%s)", err);
  putchar('\n');
  free(state);
  free(name);
  free(cmd);
  free(err);
}

static int cmd_status(conn* c, int argc, char** argv) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int64_t* ids;
  size_t n, i;
  bool json = false;
  const msgpack_object *r, *jobs;
  if (collect_ids(argc, argv, &ids, &n, "--json", &json) != 0) {
    free(ids);
    return VOW_EXIT_ERROR;
  }
  begin(&sb, &pk, "status", n > 0);
  if (n > 0)
    pack_ids(&pk, ids, n);
  free(ids);
  if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  jobs = qw_get(r, "jobs");
  if (jobs == NULL || jobs->type != MSGPACK_OBJECT_ARRAY) {
    vow_cli_error("the daemon's reply has no jobs");
    return VOW_EXIT_ERROR;
  }
  if (json) {
    /* The reply, as JSON: a map of paused, running, queued and jobs. */
    char* text = vow_msgpack_to_json(c->in.data, c->in.len, 0);
    if (text == NULL)
      return VOW_EXIT_ERROR;
    printf("%s\n", text);
    free(text);
    return 0;
  }
  printf("%-6s %-11s %-4s %-12s %s\n", "ID", "STATE", "EXIT", "NAME",
         "COMMAND");
  for (i = 0; i < jobs->via.array.size; i++)
    print_job_line(&jobs->via.array.ptr[i]);
  if (qw_get_bool(r, "paused"))
    printf("(the queue is paused: vow resume starts it again)\n");
  return 0;
}

/* Sends a wait for ids and reads the reply: the exit status to give. */
static int wait_for(conn* c, const int64_t* ids, size_t n, bool any) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object *r, *jobs;
  size_t i;
  int status = 0;
  begin(&sb, &pk, "wait", 2);
  pack_ids(&pk, ids, n);
  qw_pack_str(&pk, "any");
  if (any)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  jobs = qw_get(r, "jobs");
  if (jobs == NULL || jobs->type != MSGPACK_OBJECT_ARRAY)
    return VOW_EXIT_ERROR;
  for (i = 0; i < jobs->via.array.size; i++) {
    int64_t s = -1;
    qw_get_int(&jobs->via.array.ptr[i], "status", &s);
    if (any) {
      /* The first that ended: its status. */
      if (s >= 0)
        return (int)s;
      continue;
    }
    if (s != 0 && status == 0)
      status = (int)s;
  }
  return status;
}

static int cmd_wait(conn* c, int argc, char** argv) {
  int64_t* ids;
  size_t n;
  bool any = false;
  int rc;
  if (collect_ids(argc, argv, &ids, &n, "--any", &any) != 0 || n == 0) {
    if (n == 0)
      vow_cli_error("usage: vow wait ID... [--any]");
    free(ids);
    return VOW_EXIT_ERROR;
  }
  rc = wait_for(c, ids, n, any);
  free(ids);
  return rc;
}

/* ---- output ----------------------------------------------------------- */

static void copy_new(int from, int to) {
  char buf[65536];
  ssize_t n;
  while ((n = read(from, buf, sizeof(buf))) > 0) {
    const char* p = buf;
    while (n > 0) {
      ssize_t w = write(to, p, (size_t)n);
      if (w <= 0)
        return;
      p += w;
      n -= w;
    }
  }
}

static int cmd_output(conn* c, int argc, char** argv) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object* r;
  int64_t id = 0;
  bool follow = false;
  char *out = NULL, *err = NULL, *state = NULL, *result = NULL;
  int i, fo = -1, fe = -1, rc = 0;
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
      follow = true;
    else if (!parse_id(argv[i], &id))
      return VOW_EXIT_ERROR;
  }
  if (id == 0) {
    vow_cli_error("usage: vow output ID [--follow]");
    return VOW_EXIT_ERROR;
  }
  begin(&sb, &pk, "output", 1);
  pack_ids(&pk, &id, 1);
  if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  state = qw_get_str(r, "state");
  result = qw_get_str(r, "result");
  out = qw_get_str(r, "out");
  err = qw_get_str(r, "err");
  if (out == NULL) {
    /* A task function's job: its result (or failure), as JSON. */
    if (result != NULL)
      printf("%s\n", result);
    goto done;
  }
  fo = open(out, O_RDONLY | O_CLOEXEC);
  fe = open(err, O_RDONLY | O_CLOEXEC);
  if (fo >= 0)
    copy_new(fo, 1);
  if (fe >= 0)
    copy_new(fe, 2);
  if (follow && state != NULL &&
      (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0)) {
    /* New bytes by inotify, the end by a wait on the daemon: nothing is
     * polled on a timer. */
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    msgpack_sbuffer wsb;
    msgpack_packer wpk;
    struct pollfd pf[2];
    if (in >= 0) {
      inotify_add_watch(in, out, IN_MODIFY);
      inotify_add_watch(in, err, IN_MODIFY);
      inotify_add_watch(in, c->paths.out, IN_CREATE);
    }
    begin(&wsb, &wpk, "wait", 1);
    pack_ids(&wpk, &id, 1);
    if (send_request(c, &wsb) != 0) {
      rc = VOW_EXIT_ERROR;
      goto done;
    }
    pf[0].fd = c->fd;
    pf[0].events = POLLIN;
    pf[1].fd = in;
    pf[1].events = POLLIN;
    for (;;) {
      char evbuf[4096];
      if (poll(pf, in >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
        break;
      if (in >= 0 && (pf[1].revents & POLLIN))
        while (read(in, evbuf, sizeof(evbuf)) > 0) {
        }
      if (fo < 0)
        fo = open(out, O_RDONLY | O_CLOEXEC);
      if (fe < 0)
        fe = open(err, O_RDONLY | O_CLOEXEC);
      if (fo >= 0)
        copy_new(fo, 1);
      if (fe >= 0)
        copy_new(fe, 2);
      if (pf[0].revents & (POLLIN | POLLHUP))
        break;
    }
    r = read_reply(c);
    if (fo >= 0)
      copy_new(fo, 1);
    if (fe >= 0)
      copy_new(fe, 2);
    if (in >= 0)
      close(in);
    if (r != NULL) {
      const msgpack_object* jobs = qw_get(r, "jobs");
      int64_t s = 0;
      if (jobs && jobs->type == MSGPACK_OBJECT_ARRAY &&
          jobs->via.array.size == 1)
        qw_get_int(&jobs->via.array.ptr[0], "status", &s);
      rc = (int)s;
    } else {
      rc = VOW_EXIT_ERROR;
    }
  }
done:
  if (fo >= 0)
    close(fo);
  if (fe >= 0)
    close(fe);
  free(out);
  free(err);
  free(state);
  free(result);
  return rc;
}

/* ---- the rest --------------------------------------------------------- */

static int simple(conn* c, const char* op, int argc, char** argv) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object* r;
  if (strcmp(op, "cancel") == 0) {
    int64_t* ids;
    size_t n;
    int64_t done = 0;
    if (collect_ids(argc, argv, &ids, &n, NULL, NULL) != 0 || n == 0) {
      if (n == 0)
        vow_cli_error("usage: vow cancel ID...");
      free(ids);
      return VOW_EXIT_ERROR;
    }
    begin(&sb, &pk, op, 1);
    pack_ids(&pk, ids, n);
    free(ids);
    if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
      return VOW_EXIT_ERROR;
    qw_get_int(r, "cancelled", &done);
    printf("%lld cancelled\n", (long long)done);
    return 0;
  }
  if (strcmp(op, "shutdown") == 0) {
    bool drain = argc > 0 && strcmp(argv[0], "--drain") == 0;
    begin(&sb, &pk, op, 1);
    qw_pack_str(&pk, "drain");
    if (drain)
      msgpack_pack_true(&pk);
    else
      msgpack_pack_false(&pk);
    if (send_request(c, &sb) != 0 || read_reply(c) == NULL)
      return VOW_EXIT_ERROR;
    /* Returns once the daemon has gone: it closes our connection when
     * it stops serving, and its lock is free once it has exited. */
    {
      char b;
      int lock;
      while (read(c->fd, &b, 1) > 0) {
      }
      lock = open(c->paths.lock, O_RDONLY | O_CLOEXEC);
      if (lock >= 0) {
        flock(lock, LOCK_SH);
        close(lock);
      }
    }
    return 0;
  }
  begin(&sb, &pk, op, 0);
  if (send_request(c, &sb) != 0 || read_reply(c) == NULL)
    return VOW_EXIT_ERROR;
  return 0;
}

static void usage(FILE* f) {
  fputs(
      "usage: vow submit [--name N] [--after ID]... [--priority P]\n"
      "                  [--timeout S] [--retries N] -- CMD ARGS\n"
      "       vow submit [options] --stdin      (one sh command per line)\n"
      "       vow submit [options] --map LIB.so FUNCTION JSON\n"
      "       vow status [ID...] [--json]\n"
      "       vow wait ID... [--any]\n"
      "       vow output ID [--follow]\n"
      "       vow cancel ID...\n"
      "       vow pause | vow resume\n"
      "       vow shutdown [--drain]\n"
      "\n"
      "Each takes --socket PATH first (default: $VOW_SOCKET, else\n"
      "$XDG_RUNTIME_DIR/vow/queue.sock, else /tmp/vow-UID/queue.sock) and\n"
      "starts the daemon (vow serve) when none runs. vow wait exits with\n"
      "the job's status (the first non-zero one of several; 124 timed out,\n"
      "125 cancelled or interrupted, 128+N killed by signal N).\n",
      f);
}

int vow_cli_queue_client(const char* command, int argc, char** argv) {
  conn c;
  const char* sock = NULL;
  int rc;
  /* argv[0] is the command's name. */
  argc--;
  argv++;
  if (argc > 0 && (strcmp(argv[0], "--help") == 0 || !strcmp(argv[0], "-h"))) {
    usage(stdout);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[0], "--socket") == 0) {
    sock = argv[1];
    argc -= 2;
    argv += 2;
  }
  if (conn_open(&c, sock, strcmp(command, "shutdown") != 0) != 0) {
    conn_close(&c);
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
  else
    rc = simple(&c, command, argc, argv);
  conn_close(&c);
  return rc;
}
