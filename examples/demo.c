/* vow-demo: counts the lines, words and bytes of many files at once on one
 * libuv loop, with promise chains instead of nested callbacks.
 *
 *   vow-demo FILE...
 *
 * At most 16 files are read at a time (a semaphore); each read has a 5 s
 * timeout; a file that cannot be read is reported and the others go on
 * (all_settled). Meanwhile `uname -sr` runs as a child command and a
 * heartbeat ticks every millisecond, both on the same loop. The totals are then
 * written to a summary file and read back to check them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vow/vow.h"

typedef struct counts {
  int64_t lines, words, bytes;
} counts;

typedef struct demo {
  vow_ctx_t* ctx;
  vow_semaphore_t* readers;
  char** paths;
  int nfiles;
  int ticks;
  uint64_t start_ns;
  vow_promise_t* heartbeat;
  counts total;
  int failed;
  char summary_path[64];
  char summary[256];
} demo;

typedef struct file_job {
  demo* d;
  const char* path;
} file_job;

/* Counts a file's bytes into a msgpack array [lines, words, bytes]. */
static vow_outcome_t count_file(vow_value_t* v, void* data) {
  const unsigned char* b;
  size_t len, i;
  counts c = {0, 0, 0};
  int in_word = 0;
  vow_value_t* items[3];
  (void)data;
  if (vow_value_get_bin(v, (const void**)&b, &len) != 0) {
    vow_value_release(v);
    return vow_errf(VOW_FAIL_BAD_INPUT, 0, "not file contents");
  }
  for (i = 0; i < len; i++) {
    int space = b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r');
    if (b[i] == '\n')
      c.lines++;
    if (!space && !in_word)
      c.words++;
    in_word = !space;
  }
  c.bytes = (int64_t)len;
  vow_value_release(v);
  items[0] = vow_value_new_int(c.lines);
  items[1] = vow_value_new_int(c.words);
  items[2] = vow_value_new_int(c.bytes);
  return vow_ok(vow_value_new_array(items, 3));
}

static vow_promise_t* read_one(void* data) {
  file_job* job = data;
  vow_promise_t* p = vow_read_file(job->d->ctx, job->path);
  return vow_add_callback(vow_timeout(p, 5000), count_file, NULL);
}

static vow_outcome_t ignore_cancel(vow_failure_t* f, void* data);
static void tick(demo* d);
static vow_outcome_t on_tick(vow_value_t* v, void* data) {
  demo* d = data;
  vow_value_release(v);
  d->ticks++;
  tick(d);
  return vow_ok(NULL);
}

static void tick(demo* d) {
  vow_promise_release(d->heartbeat);
  d->heartbeat = vow_add_callback(vow_sleep(d->ctx, 1), on_tick, d);
  vow_promise_ref(d->heartbeat);
  vow_add_errback(d->heartbeat, ignore_cancel, NULL);
}

/* Stopping the heartbeat cancels its sleep: that is no error. */
static vow_outcome_t ignore_cancel(vow_failure_t* f, void* data) {
  (void)data;
  if (vow_failure_check(f, VOW_FAIL_CANCELLED)) {
    vow_failure_release(f);
    return vow_ok(NULL);
  }
  return vow_err(f);
}

static vow_outcome_t print_uname(vow_value_t* v, void* data) {
  const vow_command_result_t* r = vow_value_get_ptr(v);
  (void)data;
  printf("system: %s", r->out_len ? r->out : "(no output)\n");
  vow_value_release(v);
  return vow_ok(NULL);
}

static vow_outcome_t print_failure(vow_failure_t* f, void* data) {
  char line[512];
  vow_failure_describe(f, line, sizeof(line));
  fprintf(stderr, "%s: %s\n", (const char*)data, line);
  vow_failure_release(f);
  return vow_ok(NULL);
}

static vow_outcome_t check_summary(vow_value_t* v, void* data) {
  demo* d = data;
  const void* b;
  size_t len;
  int same = vow_value_get_bin(v, &b, &len) == 0 && len == strlen(d->summary) &&
             memcmp(b, d->summary, len) == 0;
  vow_value_release(v);
  printf("summary written to %s and read back: %s\n", d->summary_path,
         same ? "identical" : "DIFFERENT");
  remove(d->summary_path);
  return same ? vow_ok(NULL)
              : vow_errf(VOW_FAIL_IO, 0, "summary file changed on disk");
}

static vow_outcome_t read_back(vow_value_t* v, void* data) {
  demo* d = data;
  vow_value_release(v);
  return vow_wait(vow_add_callback(vow_read_file(d->ctx, d->summary_path),
                                   check_summary, d));
}

static vow_outcome_t report_all(vow_value_t* results, void* data) {
  demo* d = data;
  size_t i;
  for (i = 0; i < vow_value_array_len(results); i++) {
    vow_value_t* r = vow_value_array_at(results, i);
    vow_failure_t* f = vow_value_get_failure(r);
    int64_t n[3] = {0, 0, 0};
    int k;
    if (f != NULL) {
      char line[512];
      vow_failure_describe(f, line, sizeof(line));
      fprintf(stderr, "skipped: %s\n", line);
      d->failed++;
      continue;
    }
    for (k = 0; k < 3; k++)
      vow_value_get_int(vow_value_array_at(r, k), &n[k]);
    d->total.lines += n[0];
    d->total.words += n[1];
    d->total.bytes += n[2];
  }
  vow_value_release(results);
  vow_cancel(d->heartbeat);
  snprintf(d->summary, sizeof(d->summary),
           "files %d, unreadable %d, lines %lld, words %lld, bytes %lld\n",
           d->nfiles, d->failed, (long long)d->total.lines,
           (long long)d->total.words, (long long)d->total.bytes);
  fputs(d->summary, stdout);
  printf(
      "read in %.1f ms on one thread; the 1 ms heartbeat ticked %d times "
      "meanwhile\n",
      (double)(uv_hrtime() - d->start_ns) / 1e6, d->ticks);
  return vow_wait(vow_add_callback(
      vow_write_file(d->ctx, d->summary_path, d->summary, strlen(d->summary)),
      read_back, d));
}

static vow_outcome_t demo_failed(vow_failure_t* f, void* data) {
  demo* d = data;
  d->failed++;
  return print_failure(f, (void*)"vow-demo");
}

int main(int argc, char** argv) {
  demo d;
  vow_promise_t** reads;
  file_job* jobs;
  vow_promise_t* done;
  static const char* const uname_argv[] = {"uname", "-sr", NULL};
  int i, state;
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE...\n", argv[0]);
    return 2;
  }
  memset(&d, 0, sizeof(d));
  d.ctx = vow_ctx_new(NULL, NULL);
  d.readers = vow_semaphore_new(d.ctx, 16);
  d.paths = argv + 1;
  d.nfiles = argc - 1;
  d.start_ns = uv_hrtime();
  snprintf(d.summary_path, sizeof(d.summary_path), "vow-demo-summary.%d.txt",
           (int)uv_os_getpid());
  reads = calloc((size_t)d.nfiles, sizeof(*reads));
  jobs = calloc((size_t)d.nfiles, sizeof(*jobs));
  for (i = 0; i < d.nfiles; i++) {
    jobs[i].d = &d;
    jobs[i].path = d.paths[i];
    reads[i] = vow_semaphore_run(d.readers, read_one, &jobs[i]);
  }
  vow_promise_release(vow_add_callbacks(vow_run_command(d.ctx, uname_argv),
                                        print_uname, print_failure,
                                        (void*)"uname"));
  tick(&d);
  done = vow_add_callback(vow_all_settled(d.ctx, reads, (size_t)d.nfiles),
                          report_all, &d);
  vow_add_errback(done, demo_failed, &d);
  state = vow_ctx_wait(d.ctx, done);
  vow_promise_release(done);
  vow_promise_release(d.heartbeat);
  vow_semaphore_free(d.readers);
  vow_ctx_close(d.ctx);
  free(reads);
  free(jobs);
  return state == VOW_FULFILLED && d.failed == 0 ? 0 : 1;
}
