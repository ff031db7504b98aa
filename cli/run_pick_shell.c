/* vow run --shell: which shell runs the commands, as GNU parallel picks it.
 *
 * $PARALLEL_SHELL first; else the shell vow was started from (the nearest
 * ancestor process that is a shell), because what works at the user's
 * prompt (bash's exported functions, say) must work in the jobs, and
 * $SHELL names the login shell, not the one they typed into (it is not
 * even set under cron, ssh commands or CI runners); else $SHELL; else
 * /bin/sh. Only a shell that reads sh's grammar is taken: --shell quotes
 * each value for sh's grammar, which csh or fish read differently. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "tool.h"

static const char* const sh_family[] = {
    "sh",   "bash", "rbash", "dash", "ash",  "ksh",  "ksh93",
    "mksh", "lksh", "pdksh", "zsh",  "rzsh", "posh", "yash"};

static const char* sh_name(const char* word) {
  const char* base = strrchr(word, '/');
  size_t k;
  base = base ? base + 1 : word;
  if (*base == '-') /* a login shell's argv[0]: -bash */
    base++;
  for (k = 0; k < sizeof(sh_family) / sizeof(sh_family[0]); k++)
    if (strcmp(base, sh_family[k]) == 0)
      return sh_family[k];
  return NULL;
}

/* Any shell, sh-like or not: the walk stops at the nearest one. */
static bool is_shell(const char* word) {
  static const char* const others[] = {"csh",   "tcsh", "bsd-csh", "fish",
                                       "fizsh", "rc",   "rush",    "sash"};
  const char* base = strrchr(word, '/');
  size_t k;
  base = base ? base + 1 : word;
  if (*base == '-')
    base++;
  for (k = 0; k < sizeof(others) / sizeof(others[0]); k++)
    if (strcmp(base, others[k]) == 0)
      return true;
  return sh_name(word) != NULL;
}

static bool read_small(const char* path, char* buf, size_t len) {
  FILE* f = fopen(path, "r");
  size_t n;
  if (f == NULL)
    return false;
  n = fread(buf, 1, len - 1, f);
  fclose(f);
  buf[n] = '\0'; /* cmdline: its first NUL ends argv[0] */
  return n > 0;
}

static long parent_of(long pid) {
  char path[64], stat[512];
  const char* close_paren;
  long ppid;
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  if (!read_small(path, stat, sizeof(stat)))
    return 0;
  /* The name in (...) may hold blanks and parentheses: skip to the last. */
  close_paren = strrchr(stat, ')');
  if (close_paren == NULL || sscanf(close_paren + 1, " %*c %ld", &ppid) != 1)
    return 0;
  return ppid;
}

static bool on_path(const char* name, char* out, size_t outlen) {
  const char* path = getenv("PATH");
  while (path != NULL && *path) {
    const char* end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    if (len > 0 &&
        (size_t)snprintf(out, outlen, "%.*s/%s", (int)len, path, name) <
            outlen &&
        access(out, X_OK) == 0)
      return true;
    path = end ? end + 1 : NULL;
  }
  return false;
}

/* The nearest ancestor that is a shell, when it reads sh's grammar: its
 * program (from /proc/PID/exe, else its name on $PATH). */
static bool parent_shell(char* out, size_t outlen) {
  long pid = (long)getppid();
  int depth;
  for (depth = 0; pid > 1 && depth < 64; depth++) {
    char path[64], argv0[PATH_MAX];
    ssize_t n;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    if (read_small(path, argv0, sizeof(argv0)) && is_shell(argv0)) {
      const char* name = sh_name(argv0);
      if (name == NULL)
        return false;
      snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
      n = readlink(path, out, outlen - 1);
      if (n > 0) {
        out[n] = '\0';
        if (sh_name(out) != NULL && access(out, X_OK) == 0)
          return true;
      }
      return on_path(name, out, outlen);
    }
    pid = parent_of(pid);
  }
  return false;
}

/* A shell named by a variable: a path, or a name on $PATH. */
static bool named_shell(const char* named, char* out, size_t outlen) {
  if (named == NULL || sh_name(named) == NULL)
    return false;
  if (strchr(named, '/') == NULL)
    return on_path(named, out, outlen);
  return access(named, X_OK) == 0 &&
         (size_t)snprintf(out, outlen, "%s", named) < outlen;
}

int run_pick_shell(char* out, size_t outlen) {
  const char* asked = getenv("PARALLEL_SHELL");
  if (asked != NULL && *asked) {
    if (sh_name(asked) == NULL) {
      vow_cli_error(
          "$PARALLEL_SHELL is %s: --shell quotes values for sh's "
          "grammar, so it needs a shell that reads it (bash, dash, "
          "ksh, zsh...)",
          asked);
      return -1;
    }
    if (!named_shell(asked, out, outlen)) {
      vow_cli_error("$PARALLEL_SHELL is %s, which is not found", asked);
      return -1;
    }
    return 0;
  }
  if (!parent_shell(out, outlen) && !named_shell(getenv("SHELL"), out, outlen))
    snprintf(out, outlen, "/bin/sh");
  return 0;
}
