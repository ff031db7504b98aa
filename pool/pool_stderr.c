/* A worker's stderr: the end kept for crash reports, and each line
 * relayed to ours with the worker's name in front. Bytes come from
 * pool_worker.c, which reads the pipe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

static void keep_tail(pworker* w, const char* p, size_t n) {
  if (n >= sizeof(w->tail)) {
    p += n - sizeof(w->tail) + 1;
    n = sizeof(w->tail) - 1;
  }
  if (w->tail_len + n >= sizeof(w->tail)) {
    size_t drop = w->tail_len + n - (sizeof(w->tail) - 1);
    memmove(w->tail, w->tail + drop, w->tail_len - drop);
    w->tail_len -= drop;
  }
  memcpy(w->tail + w->tail_len, p, n);
  w->tail_len += n;
  w->tail[w->tail_len] = '\0';
}

/* Writes one line to our stderr with the worker's name in front. */
void vow__worker_relay_line(pworker* w, const char* p, size_t n) {
  char head[64];
  int h = snprintf(head, sizeof(head), "[worker %u pid %d] ", w->slot, w->pid);
  vow__relay_line(head, (size_t)h, p, n);
}

void vow__worker_err_flush(pworker* w) {
  if (w->line_len > 0 && w->pool->opt.stderr_mode == VOW_STDERR_RELAY)
    vow__worker_relay_line(w, w->line, w->line_len);
  w->line_len = 0;
}

void vow__worker_err_take(pworker* w, const char* p, size_t len) {
  size_t i, start = 0, n = len;
  keep_tail(w, p, n);
  if (w->pool->opt.stderr_mode != VOW_STDERR_RELAY)
    return;
  for (i = 0; i < n; i++) {
    if (p[i] != '\n')
      continue;
    if (w->line_len > 0) {
      size_t take = (size_t)(i + 1 - start);
      if (w->line_len + take > sizeof(w->line))
        take = sizeof(w->line) - w->line_len;
      memcpy(w->line + w->line_len, p + start, take);
      vow__worker_relay_line(w, w->line, w->line_len + take);
      w->line_len = 0;
    } else {
      vow__worker_relay_line(w, p + start, (size_t)(i + 1 - start));
    }
    start = i + 1;
  }
  if (start < n) {
    size_t rest = (size_t)(n - start);
    if (w->line_len + rest > sizeof(w->line)) {
      /* An overlong line goes out in pieces. */
      vow__worker_relay_line(w, w->line, w->line_len);
      w->line_len = 0;
      if (rest > sizeof(w->line))
        rest = sizeof(w->line);
    }
    memcpy(w->line + w->line_len, p + start, rest);
    w->line_len += rest;
  }
}
