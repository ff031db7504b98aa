/* The progress line of vow run and vow map: on stderr, redrawn in place
 * with a carriage return, fitted to the terminal's width so it never
 * wraps, drawn only when stderr is a terminal, and erased before anything
 * else is written to the terminal, so it never mixes with output. */
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

/* Nothing is to be done about a terminal that is gone. */
static void put(const char* s, size_t n) {
  (void)vowp_write_all(2, s, n);
}

static size_t columns(void) {
  struct winsize ws;
  if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
    return ws.ws_col;
  return 80;
}

void vow_progress_init(vow_progress* p, int style) {
  p->style = style;
  p->on = style != 0 && isatty(2);
  p->drawn = false;
  p->started = vow_cli_now();
}

void vow_progress_erase(vow_progress* p) {
  if (!p->drawn)
    return;
  p->drawn = false;
  put("\r\033[K", 4);
}

static int format(const vow_progress* p, char* line, size_t size,
                  const vow_progress_counts* c) {
  double elapsed = vow_cli_now() - p->started;
  double avg = c->done ? elapsed / (double)c->done : 0.0;
  double pct = c->total ? (double)c->done * 100.0 / (double)c->total : 0.0;
  double eta = c->total && c->done ? avg * (double)(c->total - c->done) : 0.0;
  size_t cols = columns(), width, filled, i;
  char bar[128];
  int len;
  if (p->style == 'p')
    return snprintf(line, size,
                    "local:%zu/%zu/%.0f%%/%.2fs running/done/%%/avg s, %zu "
                    "failed",
                    c->running, c->done, pct, avg, c->failed);
  if (p->style == 'e' || c->total == 0)
    return c->total ? snprintf(line, size,
                               "ETA: %.0fs Left: %zu AVG: %.2fs  "
                               "local:%zu/%zu/%.0f%%",
                               eta, c->total - c->done, avg, c->running,
                               c->done, pct)
                    : snprintf(line, size,
                               "%zu done, %zu failed, %zu running, %.0f/s",
                               c->done, c->failed, c->running,
                               elapsed > 0 ? (double)c->done / elapsed : 0.0);
  len = snprintf(line, size, "%3.0f%% %zu:%zu=%.0fs ", pct, c->done,
                 c->total - c->done, eta);
  if (len < 0 || (size_t)len + 4 >= cols)
    return len;
  width = cols - (size_t)len - 4;
  if (width > sizeof(bar) - 1)
    width = sizeof(bar) - 1;
  filled = (size_t)(pct / 100.0 * (double)width);
  for (i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : ' ';
  bar[width] = '\0';
  return len + snprintf(line + len, size - (size_t)len, "[%s]", bar);
}

void vow_progress_draw(vow_progress* p, const vow_progress_counts* c,
                       bool final) {
  char line[512];
  int len;
  if (!p->on)
    return;
  line[0] = '\r';
  len = format(p, line + 1, sizeof(line) - 8, c);
  if (len < 0)
    return;
  if ((size_t)len >= sizeof(line) - 8)
    len = (int)sizeof(line) - 9;
  if ((size_t)len + 1 > columns() - 1)
    len = (int)columns() - 2; /* never wrap: \r could not redraw it */
  len++;
  len += snprintf(line + len, sizeof(line) - (size_t)len, "\033[K%s",
                  final ? "\n" : "");
  put(line, (size_t)len);
  p->drawn = !final;
}
