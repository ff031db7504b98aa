/* vow submit: command lines, from its arguments or one per stdin line,
 * or a task function over JSON items. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "client.h"

extern char** environ;

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
  qc_begin(sb, &pk, "submit", 9);
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

int qc_print_id(conn* c) {
  const msgpack_object* r = qc_reply(c);
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

/* stdin read by hand, not through stdio: whether a whole line is already
 * here, or the next one must be waited for, decides when the replies
 * still outstanding are read. */
typedef struct line_reader {
  vbuf buf; /* read, not yet taken */
  size_t pos;
  vbuf line; /* the line taken last */
  bool eof;
  bool warned_nul;
} line_reader;

/* The next line (its newline gone, NUL-terminated, valid until the next
 * call), or NULL when none is whole in the buffer yet (or at the end). */
static char* take_line(line_reader* r) {
  size_t left = r->buf.len - r->pos;
  char* start = left ? r->buf.data + r->pos : NULL;
  char* nl = left ? memchr(start, '\n', left) : NULL;
  size_t len, i;
  if (nl == NULL && !(r->eof && left > 0))
    return NULL;
  len = nl ? (size_t)(nl - start) : left;
  r->pos += len + (nl != NULL);
  r->line.len = 0;
  for (i = 0; i < len; i++) {
    if (start[i] != '\0') {
      vbuf_add(&r->line, start + i, 1);
      continue;
    }
    /* As GNU parallel does: a NUL cannot be passed in an argument, so
     * it becomes the two characters \0, and that is said once. */
    if (!r->warned_nul)
      fprintf(stderr,
              "vow: warning: a NUL character in the input was replaced with "
              "\\0 (NUL cannot be passed in a command)\n");
    r->warned_nul = true;
    vbuf_add(&r->line, "\\0", 2);
  }
  vbuf_add(&r->line, "", 1);
  return r->line.data;
}

/* Reads more of stdin: false at the end. */
static bool read_more(line_reader* r) {
  char chunk[65536];
  ssize_t n;
  if (r->pos > 0) {
    memmove(r->buf.data, r->buf.data + r->pos, r->buf.len - r->pos);
    r->buf.len -= r->pos;
    r->pos = 0;
  }
  do
    n = read(0, chunk, sizeof(chunk));
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    r->eof = true;
    return false;
  }
  vbuf_add(&r->buf, chunk, (size_t)n);
  return true;
}

static bool input_waiting(void) {
  struct pollfd p = {0, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

/* Commands from stdin, one per line, each run by /bin/sh -c (or as its
 * words, when no shell is needed): many jobs through one connection,
 * with up to WINDOW requests in flight. When the input pauses, the ids
 * so far are printed, so a slow producer sees each one as it goes. */
static int submit_lines(conn* c, const submit_opts* o, const char* cwd) {
  enum { WINDOW = 256 };
  line_reader in = {{0}, 0, {0}, false, false};
  size_t pending = 0;
  int rc = 0;
  for (;;) {
    msgpack_sbuffer sb;
    char* argv[3] = {"/bin/sh", "-c", NULL};
    char* words[64];
    char* copy;
    char* line;
    int nwords;
    if ((line = take_line(&in)) == NULL) {
      if (in.eof)
        break;
      if (pending > 0 && !input_waiting()) {
        for (; pending > 0; pending--)
          if (qc_print_id(c) != 0)
            rc = -1;
        fflush(stdout);
      }
      read_more(&in);
      continue;
    }
    if (*line == '\0')
      continue;
    argv[2] = line;
    copy = strdup(line);
    nwords = copy ? simple_words(copy, words, 64) : 0;
    if (nwords > 0)
      pack_submit(&sb, o, words, nwords, cwd);
    else
      pack_submit(&sb, o, argv, 3, cwd);
    free(copy);
    /* Lines may come slowly: the daemon closes a connection idle past
     * its --idle-timeout, and one with no reply to come is opened again. */
    if ((pending == 0 && qc_reopen_if_closed(c) != 0) || qc_send(c, &sb) != 0) {
      rc = -1;
      break;
    }
    if (++pending == WINDOW) {
      for (; pending > 0; pending--)
        if (qc_print_id(c) != 0)
          rc = -1;
      fflush(stdout);
    }
  }
  for (; pending > 0; pending--)
    if (qc_print_id(c) != 0)
      rc = -1;
  vbuf_free(&in.buf);
  vbuf_free(&in.line);
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
  qc_begin(&sb, &pk, "submit", 9);
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
  if (qc_send(c, &sb) != 0)
    return -1;
  return qc_print_id(c);
}

int cmd_submit(conn* c, int argc, char** argv) {
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
      if (!qc_parse_id(argv[++i], &o.after[o.nafter++]))
        return VOW_EXIT_ERROR;
    } else if (strcmp(a, "--priority") == 0 && more) {
      if (!qc_parse_int(argv[++i], "--priority", -1000000, 1000000,
                        &o.priority))
        return VOW_EXIT_ERROR;
    } else if (strcmp(a, "--timeout") == 0 && more) {
      char* end;
      o.timeout = strtod(argv[++i], &end);
      if (*end != '\0' || o.timeout < 0) {
        vow_cli_error("--timeout %s: not a number of seconds", argv[i]);
        return VOW_EXIT_ERROR;
      }
    } else if (strcmp(a, "--retries") == 0 && more) {
      if (!qc_parse_int(argv[++i], "--retries", 0, 1000, &o.retries))
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
    if (qc_send(c, &sb) != 0 || qc_print_id(c) != 0)
      return VOW_EXIT_ERROR;
  }
  return 0;
}
