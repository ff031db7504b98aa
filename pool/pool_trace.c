/* VOW_DEBUG: a one-line trace of every message between the parent and
 * its workers and of every worker's change of state, for the user who
 * must find out, on a cluster, why a run stalls or a task came back.
 *
 *   VOW_DEBUG=1       lines on stderr
 *   VOW_DEBUG=FILE    lines appended to FILE (one process or many)
 *
 * Read once per process. Off, a trace point costs one load and a branch.
 * Each line is written whole with one write(2), so lines of several pools
 * and processes interleave but never tear. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_internal.h"

int vow__trace_fd = -1;
static uint64_t trace_start_ns;
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_open(void) {
  const char* where = getenv("VOW_DEBUG");
  if (where == NULL || *where == '\0' || strcmp(where, "0") == 0)
    return;
  trace_start_ns = vow__now_ns();
  if (strcmp(where, "1") == 0) {
    vow__trace_fd = 2;
    return;
  }
  vow__trace_fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (vow__trace_fd < 0)
    fprintf(stderr, "vow: VOW_DEBUG: cannot open %s: %s; no trace\n", where,
            strerror(errno));
}

void vow__trace_init(void) {
  pthread_once(&trace_once, trace_open);
}

static const char* const state_names[] = {"STARTING", "READY", "RETIRING",
                                          "STOPPING", "DEAD"};

const char* vow__worker_state_name(int state) {
  return state >= 0 && state <= PW_DEAD ? state_names[state] : "?";
}

void vow__trace(const pworker* w, const char* fmt, ...) {
  char line[512];
  uint64_t t = vow__now_ns() - trace_start_ns;
  int n, m;
  va_list ap;
  n = snprintf(line, sizeof(line), "vow-trace %llu.%06llu pid %d ",
               (unsigned long long)(t / 1000000000u),
               (unsigned long long)(t % 1000000000u / 1000u), (int)getpid());
  if (w == NULL)
    n += snprintf(line + n, sizeof(line) - (size_t)n, "pool");
  else
    n += snprintf(line + n, sizeof(line) - (size_t)n, "worker %u", w->slot);
  if (w != NULL && w->pid > 0)
    n += snprintf(line + n, sizeof(line) - (size_t)n, " (pid %d)", w->pid);
  n += snprintf(line + n, sizeof(line) - (size_t)n, ": ");
  va_start(ap, fmt);
  m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n += m;
  if ((size_t)n >= sizeof(line) - 1)
    n = (int)sizeof(line) - 2; /* cut: the end of a long message */
  line[n++] = '\n';
  (void)!write(vow__trace_fd, line, (size_t)n);
}

void vow__worker_set_state(pworker* w, int state) {
  if (w->state == state)
    return;
  VOW__TRACE(w, "state %s -> %s", vow__worker_state_name((int)w->state),
             vow__worker_state_name(state));
  w->state = state;
}
