/* Small pieces the vow command's subcommands share. */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "tool.h"
#include "vow/vow.h"

void vow_cli_error(const char* fmt, ...) {
  va_list ap;
  fputs("vow: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

double vow_cli_now(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

unsigned vow_cli_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

unsigned vow_cli_jobs(const char* spec, unsigned max_useful) {
  char* end;
  long n;
  unsigned cpus = vow_cli_cpus();
  if (spec == NULL || *spec == '\0')
    return 0;
  if (spec[0] == '+' || spec[0] == '-') {
    n = strtol(spec, &end, 10);
    if (*end != '\0')
      return 0;
    n += (long)cpus;
    return n < 1 ? 1 : (unsigned)n;
  }
  n = strtol(spec, &end, 10);
  if (end == spec || n < 0)
    return 0;
  if (*end == '%' && end[1] == '\0') {
    n = n * (long)cpus / 100;
    return n < 1 ? 1 : (unsigned)n;
  }
  if (*end != '\0')
    return 0;
  if (n == 0)
    return max_useful > 0 ? max_useful : 1; /* as many as can */
  return (unsigned)n;
}

void vbuf_add(vbuf* b, const void* p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    char* grown;
    while (cap < b->len + n + 1)
      cap *= 2;
    grown = realloc(b->data, cap);
    if (grown == NULL) {
      vow_cli_error("out of memory");
      exit(VOW_EXIT_ERROR);
    }
    b->data = grown;
    b->cap = cap;
  }
  if (n > 0) /* p may be NULL then */
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void vbuf_str(vbuf* b, const char* s) {
  vbuf_add(b, s, strlen(s));
}

void vbuf_free(vbuf* b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void vow_cli_quote(vbuf* b, const char* s) {
  const char* p;
  bool safe = *s != '\0';
  for (p = s; *p && safe; p++)
    safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (*p >= '0' && *p <= '9') || strchr("_@%+=:,./-", *p) != NULL;
  if (safe) {
    vbuf_str(b, s);
    return;
  }
  vbuf_add(b, "'", 1);
  for (p = s; *p; p++) {
    if (*p == '\'')
      vbuf_str(b, "'\"'\"'");
    else
      vbuf_add(b, p, 1);
  }
  vbuf_add(b, "'", 1);
}

/* vow-worker beside this vow binary, or on PATH. */
char* vow_cli_find_worker(void) {
  char exe[4096];
  size_t n = sizeof(exe);
  const char* env = getenv("VOW_WORKER");
  if (env != NULL)
    return strdup(env);
  if (uv_exepath(exe, &n) == 0) {
    char* dir = dirname(exe);
    char path[4200];
    snprintf(path, sizeof(path), "%s/vow-worker", dir);
    if (access(path, X_OK) == 0)
      return strdup(path);
  }
  return strdup("vow-worker");
}
