/* vow submit: command lines, from its arguments or one per stdin line,
 * or a task function over JSON items. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    if (qc_send(c, &sb) != 0) {
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
