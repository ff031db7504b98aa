/* The daemon's state and what every layer of it uses: the log and the
 * job table. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "daemon.h"

daemon_t the_daemon;

void qd_log(const char* fmt, ...) {
  va_list ap;
  char when[32];
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
  fprintf(stderr, "%s vow serve: ", when);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

qjob* qd_job(int64_t id) {
  return id > 0 && id <= the_daemon.max_id ? the_daemon.jobs[id] : NULL;
}
