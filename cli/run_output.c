/* vow run's output: each job's stdout and stderr captured (in memory up
 * to a limit, then spilled to a private temporary file) and printed whole
 * when the job ends, so no two jobs' output interleave; with -k, the job
 * printed next writes its stdout straight through, and finished jobs
 * waiting their turn are parked in one file, not in memory. Also
 * --results files and the progress line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "run_state.h"
#include "fdio.h"

#define MEM_LIMIT (1u << 20) /* bytes kept in memory per stream per job */
#define PARK_IN_MEMORY 4096  /* -k: less than this waits in memory */

/* Output that could not be written is never dropped without a word: the
 * run is told (run_output_failed), which names what failed, starts
 * nothing more and ends with status 255. */
static void write_or_fail(int fd, const char* what, const char* p, size_t n) {
  int rc = vowp_write_all(fd, p, n);
  if (rc == 0)
    return;
  /* A closed stdout (| head) is noted: the run stops starting jobs, as
   * GNU parallel does when SIGPIPE ends it. */
  if (rc == -EPIPE && fd == 1) {
    run_stdout_closed();
    return;
  }
  run_output_failed(what, -rc);
}

static const char* spill_name(void) {
  return the_run.spill_dir[0] ? the_run.spill_dir : "a spill file";
}

void out_write(int fd, const char* p, size_t n) {
  if (fd == 1 || fd == 2)
    vow_progress_erase(&the_run.progress);
  write_or_fail(fd, fd == 1 ? "standard output" : "standard error", p, n);
}

static int spill_file(void) {
  char path[128];
  int fd;
  if (the_run.spill_dir[0] == '\0') {
    const char* tmp = getenv("TMPDIR");
    snprintf(the_run.spill_dir, sizeof(the_run.spill_dir), "%s/vow-XXXXXX",
             tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (mkdtemp(the_run.spill_dir) == NULL) {
      the_run.spill_dir[0] = '\0';
      return -1; /* keep it in memory then */
    }
  }
  snprintf(path, sizeof(path), "%s/outXXXXXX", the_run.spill_dir);
  fd = mkstemp(path);
  if (fd >= 0)
    unlink(path); /* gone when closed, whatever happens to us */
  return fd;
}

static void spill(capture* c) {
  c->spill_fd = spill_file();
  if (c->spill_fd >= 0) {
    write_or_fail(c->spill_fd, spill_name(), c->mem.data, c->mem.len);
    c->mem.len = 0;
  }
}

/* --tag: the values; --tagstring STR: STR with its replacement strings
 * made for this job. A tab follows, as in GNU parallel. */
static void put_tag(int fd, job* j) {
  vbuf t = {0};
  size_t i;
  if (the_run.tagstring != NULL)
    run_expand_plain(&t, the_run.tagstring, &the_run.in, &j->args, j->seq,
                     j->slot);
  for (i = 0; the_run.tagstring == NULL && i < j->args.n; i++) {
    if (i)
      vbuf_add(&t, " ", 1);
    vbuf_str(&t, j->args.v[i]);
  }
  vbuf_add(&t, "\t", 1);
  out_write(fd, t.data, t.len);
  vbuf_free(&t);
}

/* Writes bytes, tagging each line when --tag is on. The bytes may come in
 * pieces cut anywhere: the capture remembers whether a line is open. */
static void put(capture* c, const char* p, size_t n) {
  if (!the_run.tag) {
    out_write(c->fd, p, n);
    return;
  }
  while (n > 0) {
    const char* nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) + 1 : n;
    if (!c->mid_line)
      put_tag(c->fd, c->job);
    out_write(c->fd, p, len);
    c->mid_line = nl == NULL;
    p += len;
    n -= len;
  }
}

/* Copies len bytes at off of fd through a fixed buffer, so a job's
 * gigabytes never sit in our memory. */
static void copy_out(capture* c, int fd, off_t off, size_t len, int to,
                     const char* to_name) {
  char buf[65536];
  while (len > 0) {
    ssize_t k = pread(fd, buf, len < sizeof(buf) ? len : sizeof(buf), off);
    if (k <= 0) {
      run_output_failed(spill_name(), k < 0 ? errno : EIO);
      break;
    }
    if (to >= 0)
      write_or_fail(to, to_name, buf, (size_t)k);
    else
      put(c, buf, (size_t)k);
    off += k;
    len -= (size_t)k;
  }
}

/* Everything captured, in order, to fd `to` (named to_name), or printed
 * when to < 0. */
static void emit(capture* c, int to, const char* to_name) {
  if (c->parked_at >= 0)
    copy_out(c, the_run.park_fd, c->parked_at, c->parked_len, to, to_name);
  if (c->spill_fd >= 0)
    copy_out(c, c->spill_fd, 0, (size_t)lseek(c->spill_fd, 0, SEEK_END), to,
             to_name);
  if (c->mem.len) {
    if (to >= 0)
      write_or_fail(to, to_name, c->mem.data, c->mem.len);
    else
      put(c, c->mem.data, c->mem.len);
  }
}

/* Drops what is held, keeping the count of bytes received. */
static void clear_held(capture* c) {
  c->mem.len = 0;
  c->partial.len = 0;
  if (c->spill_fd >= 0)
    close(c->spill_fd);
  c->spill_fd = -1;
  c->parked_at = -1;
  c->parked_len = 0;
}

void out_reset(capture* c) {
  clear_held(c);
  c->total = 0;
  c->eof = false;
  c->mid_line = false;
}

static void print_capture(capture* c) {
  emit(c, -1, NULL);
  clear_held(c);
}

/* Whether what the job writes to c goes out as it comes: with -k, the
 * job printed next writes its stdout through (with --line-buffer, its
 * stderr too: no other job's lines can come between). */
static bool passes_through(const capture* c) {
  return c->job->direct && (c->fd == 1 || the_run.line_buffer);
}

/* --line-buffer without -k: any job's whole lines as they come. */
static bool by_lines(void) {
  return the_run.line_buffer && !the_run.keep_order;
}

void out_received(capture* c, const char* p, size_t n) {
  c->total += n;
  if (the_run.ungroup)
    return;
  if (passes_through(c)) {
    put(c, p, n);
    return;
  }
  if (by_lines()) {
    /* Whole lines go out as they come; a line is never cut. */
    const char* nl;
    while ((nl = memchr(p, '\n', n)) != NULL) {
      size_t len = (size_t)(nl - p) + 1;
      if (c->partial.len) {
        vbuf_add(&c->partial, p, len);
        put(c, c->partial.data, c->partial.len);
        c->partial.len = 0;
      } else {
        put(c, p, len);
      }
      p += len;
      n -= len;
    }
    if (n)
      vbuf_add(&c->partial, p, n);
    return;
  }
  if (c->spill_fd >= 0) {
    write_or_fail(c->spill_fd, spill_name(), p, n);
    return;
  }
  vbuf_add(&c->mem, p, n);
  if (c->mem.len > MEM_LIMIT)
    spill(c);
}

void out_ended(capture* c) {
  if (by_lines() && c->partial.len) {
    put(c, c->partial.data, c->partial.len);
    c->partial.len = 0;
  }
  c->eof = true;
}

/* -k: the job is printed next. What it wrote so far goes out now, and
 * its stdout from here on as it comes (with --line-buffer, GNU parallel's
 * -k --line-buffer, its stderr too). */
void out_go_direct(job* j) {
  /* A job that may run again (--retries, --memfree) is printed whole,
   * once: only its last try's output is shown. */
  if (j->direct || the_run.ungroup || the_run.results != NULL ||
      the_run.retries > 1 || the_run.memfree > 0)
    return;
  print_capture(&j->out);
  if (the_run.line_buffer)
    print_capture(&j->err);
  j->direct = true;
}

/* -k: a finished job waits for the ones before it. Its output moves to
 * the parking file (one file for all of them, so neither memory nor file
 * descriptors grow with the jobs waiting). */
static void park(capture* c) {
  off_t at = the_run.park_end;
  size_t len = 0;
  if (c->spill_fd < 0 && c->mem.len < PARK_IN_MEMORY)
    return;
  if (the_run.park_fd < 0 && (the_run.park_fd = spill_file()) < 0)
    return; /* it waits where it is then */
  if (c->spill_fd >= 0) {
    char buf[65536];
    ssize_t k;
    while ((k = pread(c->spill_fd, buf, sizeof(buf), (off_t)len)) > 0 &&
           pwrite(the_run.park_fd, buf, (size_t)k, at + (off_t)len) == k)
      len += (size_t)k;
    if (k != 0)
      return; /* it could not all be moved: the spill file stays */
  }
  if (c->mem.len && pwrite(the_run.park_fd, c->mem.data, c->mem.len,
                           at + (off_t)len) != (ssize_t)c->mem.len)
    return;
  len += c->mem.len;
  if (c->spill_fd >= 0)
    close(c->spill_fd);
  c->spill_fd = -1;
  vbuf_free(&c->mem);
  c->parked_at = at;
  c->parked_len = len;
  the_run.park_end = at + (off_t)len;
}

void out_park(job* j) {
  park(&j->out);
  park(&j->err);
}

void out_print_job(job* j) {
  if (!by_lines() && !the_run.ungroup && the_run.results == NULL) {
    print_capture(&j->out);
    print_capture(&j->err);
  }
  j->printed = true;
  out_progress(false);
}

/* ---- --results -------------------------------------------------------- */

/* A value as one path component: \ as \\ and / as \_, as GNU parallel
 * writes them; "." and ".." escaped too, so no value leaves DIR; cut to
 * the 255 bytes a file name may have, as GNU parallel cuts it. */
static void put_component(vbuf* b, const char* v) {
  size_t start = b->len;
  if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
    vbuf_add(b, "\\", 1);
  for (; *v; v++) {
    if (*v == '\\')
      vbuf_str(b, "\\\\");
    else if (*v == '/')
      vbuf_str(b, "\\_");
    else if (*v == '\t')
      vbuf_str(b, "\\t");
    else
      vbuf_add(b, v, 1);
  }
  if (b->len - start > 255)
    b->len = start + 255;
}

static int make_dirs(char* path) {
  char* p;
  for (p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
      *p = '/';
      return -1;
    }
    *p = '/';
  }
  return 0;
}

static void write_file(const char* path, capture* c, const char* text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    run_output_failed(path, errno);
    return;
  }
  if (c != NULL)
    emit(c, fd, path);
  else
    write_or_fail(fd, path, text, strlen(text));
  if (close(fd) != 0)
    run_output_failed(path, errno);
}

/* The name of column i (from 0) in --results' layout: --header's, or its
 * number. */
static const char* column_name(size_t i, char* num, size_t len) {
  if (i < the_run.in.nnames && the_run.in.names[i] != NULL)
    return the_run.in.names[i];
  snprintf(num, len, "%zu", i + 1);
  return num;
}

/* GNU parallel's order of the columns in the path: by their names, as
 * numbers first (a name that is no number counts as 0), then as text. */
static int column_cmp(size_t a, size_t b) {
  char na[32], nb[32];
  const char* x = column_name(a, na, sizeof(na));
  const char* y = column_name(b, nb, sizeof(nb));
  double dx = strtod(x, NULL), dy = strtod(y, NULL);
  if (dx != dy)
    return dx < dy ? -1 : 1;
  return strcmp(x, y);
}

/* GNU parallel's layout: DIR/1/VALUE/2/VALUE/{stdout,stderr,seq}, with
 * --header's names for the numbers (in the order of the names); DIR with
 * replacement strings names
 * the stdout file itself (.err and .seq beside it), or a directory when
 * it ends in /. */
void out_results(job* j) {
  vbuf path = {0};
  char seq[32];
  size_t base, i;
  const char *o = "stdout", *e = "stderr", *q = "seq";
  if (the_run.results == NULL)
    return;
  snprintf(seq, sizeof(seq), "%zu", j->seq); /* as parallel: no newline */
  if (run_has_replacement(the_run.results, &the_run.in)) {
    run_expand_plain(&path, the_run.results, &the_run.in, &j->args, j->seq,
                     j->slot);
    if (path.len == 0 || path.data[path.len - 1] != '/') {
      o = "";
      e = ".err";
      q = ".seq";
    }
  } else {
    vbuf_str(&path, the_run.results);
    if (path.data[path.len - 1] != '/')
      vbuf_add(&path, "/", 1);
    size_t ncols = j->args.ntup ? j->args.tup[1] : 0, k;
    size_t* order = calloc(ncols + 1, sizeof(size_t));
    for (i = 0; order != NULL && i < ncols; i++) {
      /* insertion sort: a handful of columns */
      for (k = i; k > 0 && column_cmp(order[k - 1], i) > 0; k--)
        order[k] = order[k - 1];
      order[k] = i;
    }
    for (k = 0; k < ncols; k++) {
      char num[32];
      i = order != NULL ? order[k] : k;
      put_component(&path, column_name(i, num, sizeof(num)));
      vbuf_add(&path, "/", 1);
      put_component(&path, j->args.v[i]);
      vbuf_add(&path, "/", 1);
    }
    free(order);
  }
  if (make_dirs(path.data) != 0) {
    run_output_failed(path.data, errno);
    vbuf_free(&path);
    return;
  }
  base = path.len;
  vbuf_str(&path, o);
  write_file(path.data, &j->out, NULL);
  path.len = base;
  vbuf_str(&path, e);
  write_file(path.data, &j->err, NULL);
  path.len = base;
  vbuf_str(&path, q);
  write_file(path.data, NULL, seq);
  vbuf_free(&path);
}

/* ---- progress ---------------------------------------------------------- */

void out_progress(bool final) {
  vow_progress_counts c = {the_run.done, 0, the_run.running, the_run.failed};
  if (!the_run.progress.on)
    return;
  if (the_run.input_ended) {
    c.total = the_run.total;
  } else if (the_run.total == 0) {
    size_t left = run_inputs_left(&the_run.in);
    c.total = left == SIZE_MAX ? 0 : the_run.made + left;
  } else {
    c.total = the_run.total;
  }
  vow_progress_draw(&the_run.progress, &c, final);
}

void out_finish(void) {
  if (the_run.park_fd >= 0)
    close(the_run.park_fd);
  if (the_run.spill_dir[0])
    rmdir(the_run.spill_dir);
}
