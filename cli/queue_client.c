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

/* What a command does when no daemon runs: start one, fail, or (vow
 * status) go on with c->fd < 0. */
typedef enum { CONN_START, CONN_NEED, CONN_LOOK } conn_mode;

static int conn_open(conn* c, const char* socket_opt, conn_mode mode) {
  int tries;
  bool absent;
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  msgpack_unpacked_init(&c->reply);
  if (queue_paths_init(&c->paths, socket_opt) != 0)
    return -1;
  c->fd = try_connect(c->paths.sock);
  if (c->fd >= 0)
    return 0;
  absent = c->fd == -ENOENT || c->fd == -ECONNREFUSED;
  if (absent && mode == CONN_LOOK)
    return 0;
  if (!absent || mode == CONN_NEED) {
    vow_cli_error("cannot reach the daemon at %s: %s", c->paths.sock,
                  absent ? "it is not running" : strerror(-c->fd));
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

static bool parse_int(const char* s, const char* what, int64_t lo, int64_t hi,
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
  const char* group;
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
  begin(sb, &pk, "submit", 9);
  qw_pack_kv_str(&pk, "name", o->name);
  qw_pack_kv_str(&pk, "group", o->group);
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
  begin(&sb, &pk, "submit", 9);
  qw_pack_kv_str(&pk, "group", o->group);
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
    } else if ((strcmp(a, "--group") == 0 || strcmp(a, "-g") == 0) && more) {
      o.group = argv[++i];
    } else if (strcmp(a, "--after") == 0 && more) {
      if (o.nafter == 64) {
        vow_cli_error("at most 64 --after");
        return VOW_EXIT_ERROR;
      }
      if (!parse_id(argv[++i], &o.after[o.nafter++]))
        return VOW_EXIT_ERROR;
    } else if (strcmp(a, "--priority") == 0 && more) {
      if (!parse_int(argv[++i], "--priority", -1000000, 1000000, &o.priority))
        return VOW_EXIT_ERROR;
    } else if (strcmp(a, "--timeout") == 0 && more) {
      char* end;
      o.timeout = strtod(argv[++i], &end);
      if (*end != '\0' || o.timeout < 0) {
        vow_cli_error("--timeout %s: not a number of seconds", argv[i]);
        return VOW_EXIT_ERROR;
      }
    } else if (strcmp(a, "--retries") == 0 && more) {
      if (!parse_int(argv[++i], "--retries", 0, 1000, &o.retries))
        return VOW_EXIT_ERROR;
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

/* Reads job ids from argv, and the flags a command takes: each of
 * bools[] (set when present) and --group G. */
typedef struct id_args {
  int64_t* ids;
  size_t n;
  bool flag[3];
  const char* group;
} id_args;

static int collect_ids(int argc, char** argv, id_args* r,
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
    if (!parse_id(argv[i], &r->ids[r->n++]))
      return -1;
  }
  return 0;
}

/* A moment as the time of day when it is today, else with its date. */
static void format_when(char* buf, size_t size, double t) {
  time_t when = (time_t)t, now = time(NULL);
  struct tm tw, tn;
  if (t <= 0) {
    snprintf(buf, size, "-");
    return;
  }
  localtime_r(&when, &tw);
  localtime_r(&now, &tn);
  if (tw.tm_year == tn.tm_year && tw.tm_yday == tn.tm_yday)
    strftime(buf, size, "%H:%M:%S", &tw);
  else
    strftime(buf, size, "%b %d %H:%M", &tw);
}

static void format_span(char* buf, size_t size, double s) {
  long long secs = (long long)s;
  if (s < 0)
    snprintf(buf, size, "-");
  else if (s < 10)
    snprintf(buf, size, "%.1fs", s);
  else if (secs < 60)
    snprintf(buf, size, "%llds", secs);
  else if (secs < 3600)
    snprintf(buf, size, "%lldm%02llds", secs / 60, secs % 60);
  else
    snprintf(buf, size, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
}

static void print_job_line(const msgpack_object* j) {
  int64_t id = 0, status = -1;
  double started = 0, ended = 0;
  char* state = qw_get_str(j, "state");
  char* name = qw_get_str(j, "name");
  char* group = qw_get_str(j, "group");
  char* cmd = qw_get_str(j, "command");
  char* err = qw_get_str(j, "error");
  const msgpack_object* waiting = qw_get(j, "waiting_on");
  char when[32], span[32];
  bool running = state && strcmp(state, "running") == 0;
  qw_get_int(j, "id", &id);
  qw_get_int(j, "status", &status);
  qw_get_double(j, "started", &started);
  qw_get_double(j, "ended", &ended);
  format_when(when, sizeof(when),
              state && strcmp(state, "queued") == 0 ? 0 : started);
  format_span(span, sizeof(span),
              started <= 0 || (state && strcmp(state, "queued") == 0) ? -1
              : running         ? vow_cli_now() - started
              : ended > started ? ended - started
                                : -1);
  printf("%-6lld %-11s ", (long long)id, state ? state : "?");
  if (status >= 0)
    printf("%-4lld ", (long long)status);
  else
    printf("%-4s ", "-");
  printf("%-12s %-10s %-14s %-8s %s", name ? name : "-",
         group ? group : "default", when, span, cmd ? cmd : "");
  if (waiting != NULL && waiting->type == MSGPACK_OBJECT_ARRAY &&
      waiting->via.array.size > 0) {
    uint32_t k;
    printf("   (waiting on ");
    for (k = 0; k < waiting->via.array.size; k++)
      printf("%s%lld", k ? ", " : "",
             (long long)waiting->via.array.ptr[k].via.i64);
    putchar(')');
  } else if (err && state && strcmp(state, "done") != 0 &&
             strcmp(state, "queued") != 0) {
    printf("   (%s)", err);
  }
  putchar('\n');
  free(state);
  free(name);
  free(group);
  free(cmd);
  free(err);
}

/* A line for each group when there is more than one, or one is paused. */
static void print_groups(const msgpack_object* r) {
  const msgpack_object* groups = qw_get(r, "groups");
  uint32_t i;
  bool any = false;
  if (groups == NULL || groups->type != MSGPACK_OBJECT_ARRAY)
    return;
  for (i = 0; i < groups->via.array.size; i++)
    any |= qw_get_bool(&groups->via.array.ptr[i], "paused");
  if (groups->via.array.size < 2 && !any)
    return;
  for (i = 0; i < groups->via.array.size; i++) {
    const msgpack_object* g = &groups->via.array.ptr[i];
    char* name = qw_get_str(g, "name");
    int64_t slots = 0, running = 0, ready = 0;
    qw_get_int(g, "slots", &slots);
    qw_get_int(g, "running", &running);
    qw_get_int(g, "ready", &ready);
    printf("group %s: %lld slot%s, %lld running, %lld ready%s\n",
           name ? name : "?", (long long)slots, slots == 1 ? "" : "s",
           (long long)running, (long long)ready,
           qw_get_bool(g, "paused") ? " (paused)" : "");
    free(name);
  }
}

static int cmd_status(conn* c, int argc, char** argv) {
  static const char* const flags[3] = {"--json", NULL, NULL};
  msgpack_sbuffer sb;
  msgpack_packer pk;
  id_args a;
  size_t i;
  const msgpack_object *r, *jobs;
  if (collect_ids(argc, argv, &a, flags, true) != 0) {
    free(a.ids);
    return VOW_EXIT_ERROR;
  }
  if (c->fd < 0) {
    /* No daemon: nothing runs, and none is started to say so. */
    if (a.flag[0])
      printf(
          "{\"ok\":true,\"daemon\":false,\"paused\":false,"
          "\"running\":0,\"queued\":0,\"groups\":[],\"jobs\":[]}\n");
    else
      fprintf(stderr,
              "vow: no daemon runs at %s, so nothing is queued or running "
              "(vow submit starts one; jobs it kept show once it runs)\n",
              c->paths.sock);
    free(a.ids);
    return 0;
  }
  begin(&sb, &pk, "status", a.n > 0);
  if (a.n > 0)
    pack_ids(&pk, a.ids, a.n);
  free(a.ids);
  if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  jobs = qw_get(r, "jobs");
  if (jobs == NULL || jobs->type != MSGPACK_OBJECT_ARRAY) {
    vow_cli_error("the daemon's reply has no jobs");
    return VOW_EXIT_ERROR;
  }
  if (a.flag[0]) {
    /* The reply, as JSON: paused, running, queued, pid, groups, jobs. */
    char* text = vow_msgpack_to_json(c->in.data, c->in.len, 0);
    if (text == NULL)
      return VOW_EXIT_ERROR;
    printf("%s\n", text);
    free(text);
    return 0;
  }
  printf("%-6s %-11s %-4s %-12s %-10s %-14s %-8s %s\n", "ID", "STATE", "EXIT",
         "NAME", "GROUP", "STARTED", "TIME", "COMMAND");
  for (i = 0; i < jobs->via.array.size; i++) {
    const msgpack_object* j = &jobs->via.array.ptr[i];
    char* group = qw_get_str(j, "group");
    if (a.group == NULL || (group && strcmp(group, a.group) == 0))
      print_job_line(j);
    free(group);
  }
  print_groups(r);
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
  static const char* const flags[3] = {"--any", NULL, NULL};
  id_args a;
  int rc;
  if (collect_ids(argc, argv, &a, flags, false) != 0 || a.n == 0) {
    if (a.n == 0 && a.ids != NULL)
      vow_cli_error("usage: vow wait ID... [--any]");
    free(a.ids);
    return VOW_EXIT_ERROR;
  }
  rc = wait_for(c, a.ids, a.n, a.flag[0]);
  free(a.ids);
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

/* Sends ids (and flags) as op; prints "N <word>" from the reply's count. */
static int ids_op(conn* c, const char* op, const id_args* a, const char* count,
                  const char* word) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object* r;
  int64_t done = 0;
  begin(&sb, &pk, op, 1);
  pack_ids(&pk, a->ids, a->n);
  if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  qw_get_int(r, count, &done);
  printf("%lld %s\n", (long long)done, word);
  return 0;
}

static int cmd_ids(conn* c, const char* op, int argc, char** argv) {
  id_args a;
  int rc;
  if (collect_ids(argc, argv, &a, NULL, false) != 0 || a.n == 0) {
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
    /* restart: a request a job, each new id printed as it is given */
    size_t i;
    rc = 0;
    for (i = 0; i < a.n && rc == 0; i++) {
      msgpack_sbuffer sb;
      msgpack_packer pk;
      begin(&sb, &pk, "restart", 1);
      pack_ids(&pk, &a.ids[i], 1);
      if (send_request(c, &sb) != 0 || print_id(c) != 0)
        rc = VOW_EXIT_ERROR;
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
      if (!parse_int(argv[i], "vow parallel", 1, 1 << 16, &slots))
        return VOW_EXIT_ERROR;
      continue;
    }
    args[rest++] = argv[i];
  }
  if (collect_ids(rest, args, &a, flags, strcmp(op, "shutdown") != 0) != 0 ||
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
  begin(&sb, &pk, op, 3);
  qw_pack_kv_str(&pk, "group", a.group);
  qw_pack_kv_int(&pk, "slots", slots);
  qw_pack_str(&pk, strcmp(op, "shutdown") == 0 ? "drain" : "successful");
  if (a.flag[0] || a.flag[1])
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  if (send_request(c, &sb) != 0 || (r = read_reply(c)) == NULL)
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
    lock = open(c->paths.lock, O_RDONLY | O_CLOEXEC);
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
     "the same command, directory, environment, group and options.\n"},
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
  if (conn_open(&c, sock, mode) != 0) {
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
  else if (strcmp(command, "cancel") == 0 || strcmp(command, "remove") == 0 ||
           strcmp(command, "restart") == 0)
    rc = cmd_ids(&c, command, argc, argv);
  else
    rc = cmd_queue(&c, command, argc, argv);
  conn_close(&c);
  return rc;
}
