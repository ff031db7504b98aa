/* vow map's lines: read from stdin as they arrive, sent to the pool in
 * groups, their results written in input order (or as they complete).
 *
 * Memory holds a window of MAP_WINDOW lines, not the input: reading stops
 * while the window is full and goes on as lines are written. A pipe or
 * terminal is watched on the loop, so the first line runs as soon as it
 * arrives; a regular file is read as the window allows. A group goes to
 * the pool when it is full, or when no more input is there for now. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "map.h"

map_state the_map;

static map_line* line_at(size_t i) {
  return &the_map.ring[i % MAP_WINDOW];
}

static bool room(void) {
  return the_map.nread - the_map.next_out < MAP_WINDOW;
}

/* ---- results out ------------------------------------------------------ */

static void emit(size_t i) {
  map_line* l = line_at(i);
  FILE* f = l->error && the_map.errors_to_stderr ? stderr : stdout;
  if (l->skipped || l->text == NULL)
    return;
  vow_progress_erase(&the_map.progress);
  if (the_map.numbers && !l->error)
    fprintf(f, "{\"line\":%zu,\"result\":", map_lineno(i));
  fputs(l->text, f);
  if (the_map.numbers && !l->error)
    fputc('}', f);
  fputc('\n', f);
  if (the_map.joblog) {
    /* Written once this result has left stdout's buffer (map_flush). */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "%s line %zu", the_map.fn, map_lineno(i));
    vow_cli_joblog_line(&the_map.joblog_due, map_lineno(i), the_map.start,
                        vow_cli_now() - the_map.start, strlen(l->text),
                        l->error ? 1 : 0, 0, cmd);
  }
  free(l->text);
  l->text = NULL;
}

static void output_failed(const char* what, int err) {
  /* A closed stdout (| head) ends the run quietly, as SIGPIPE would. */
  if (err == EPIPE && strcmp(what, "standard output") == 0)
    the_map.broken_pipe = true;
  else if (!the_map.output_failed)
    vow_cli_error("output is incomplete: writing %s: %s", what, strerror(err));
  the_map.output_failed = true;
}

void map_flush(void) {
  if (the_map.output_failed)
    return;
  if (fflush(stdout) != 0 || ferror(stdout)) {
    output_failed("standard output", errno ? errno : EIO);
    return;
  }
  if (the_map.joblog_due.len > 0) {
    int rc = fwrite(the_map.joblog_due.data, 1, the_map.joblog_due.len,
                    the_map.joblog) == the_map.joblog_due.len &&
                     fflush(the_map.joblog) == 0
                 ? 0
             : errno ? errno
                     : EIO;
    the_map.joblog_due.len = 0;
    if (rc != 0)
      output_failed(the_map.joblog_path, rc);
  }
}

/* Moves past the lines that are settled: written now in input order, or
 * (--unordered) already written when they settled. */
static void advance(void) {
  while (the_map.next_out < the_map.nread &&
         line_at(the_map.next_out)->settled) {
    map_line* l = line_at(the_map.next_out);
    if (!the_map.unordered)
      emit(the_map.next_out);
    vbuf_free(&l->arg);
    memset(l, 0, sizeof(*l));
    the_map.next_out++;
  }
}

static void settle_line(size_t i, char* text, bool error) {
  map_line* l = line_at(i);
  l->text = text;
  l->error = error;
  l->settled = true;
  vbuf_free(&l->arg);
  the_map.done++;
  if (error)
    the_map.failed++;
  if (the_map.unordered)
    emit(i);
  advance();
}

static void settle_failure(size_t i, vow_failure_t* f) {
  char line[1024];
  const char* detail = vow_failure_detail(f);
  vow_failure_describe(f, line, sizeof(line));
  if (the_map.traceback && detail != NULL && *detail != '\0') {
    vow_progress_erase(&the_map.progress);
    fprintf(stderr, "vow: line %zu: %s\n%s%s", map_lineno(i), line, detail,
            detail[strlen(detail) - 1] == '\n' ? "" : "\n");
  }
  settle_line(i, vow_json_error_line(map_lineno(i), line, detail), true);
}

static void refill(void);

typedef struct line_ref {
  size_t index;
} line_ref;

static vow_outcome_t on_result(vow_value_t* v, vow_failure_t* f, void* data) {
  line_ref* r = data;
  if (f != NULL) {
    settle_failure(r->index, f);
    vow_failure_release(f);
  } else {
    size_t len;
    const void* b = vow_value_bytes(v, &len);
    char* text = b ? vow_msgpack_to_json(b, len, the_map.bytes_mode) : NULL;
    if (text == NULL)
      settle_line(
          r->index,
          vow_json_error_line(map_lineno(r->index),
                              "the result cannot be written as JSON", NULL),
          true);
    else
      settle_line(r->index, text, false);
    vow_value_release(v);
  }
  free(r);
  refill();
  return vow_ok(NULL);
}

/* Lines [first, first + n) went to the pool together, as one map: line L
 * (from 1) has the seed of run index L, in its group or alone, so what
 * fails around it never changes its result. */
typedef struct group {
  size_t first, n;
} group;

static void run_alone(size_t i) {
  line_ref* r = malloc(sizeof(*r));
  map_line* l = line_at(i);
  vow_promise_t* p;
  if (r == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  r->index = i;
  p = vow_pool_submit_indexed(
      the_map.pool, the_map.fn,
      vow_value_new_msgpack(l->arg.data, l->arg.len, NULL), map_lineno(i));
  vow_promise_release(vow_add_both(p, on_result, r));
}

static void settle_from(size_t i, const msgpack_object* o) {
  vbuf text = {0};
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_object(&pk, *o);
  if (vow_msgpack_write_json(&text, sb.data, sb.size, the_map.bytes_mode) == 0)
    settle_line(i, text.data ? text.data : strdup(""), false);
  else
    settle_line(
        i,
        vow_json_error_line(map_lineno(i),
                            "the result cannot be written as JSON", NULL),
        true);
  msgpack_sbuffer_destroy(&sb);
}

static vow_outcome_t on_group(vow_value_t* v, vow_failure_t* f, void* data) {
  group* g = data;
  size_t k;
  if (f == NULL) {
    msgpack_unpacked un;
    uint32_t have = 0;
    msgpack_unpacked_init(&un);
    if (vow_value_unpack(v, &un) == 0 && un.data.type == MSGPACK_OBJECT_ARRAY)
      have = un.data.via.array.size;
    for (k = 0; k < g->n; k++) {
      if (k >= have) /* never trusted to line up */
        settle_line(g->first + k,
                    vow_json_error_line(map_lineno(g->first + k),
                                        "the worker returned no result for "
                                        "this line",
                                        NULL),
                    true);
      else
        settle_from(g->first + k, &un.data.via.array.ptr[k]);
    }
    msgpack_unpacked_destroy(&un);
    vow_value_release(v);
  } else {
    /* Each line alone: every failure on its own line, the rest fine. */
    vow_failure_release(f);
    for (k = 0; k < g->n; k++)
      run_alone(g->first + k);
  }
  free(g);
  refill();
  return vow_ok(NULL);
}

static void flush_group(void) {
  group* g;
  uint32_t n = (uint32_t)the_map.group_valid;
  unsigned char* h;
  if (the_map.group_valid == 0)
    return;
  g = malloc(sizeof(*g));
  if (g == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  h = (unsigned char*)
          the_map.group_items.data; /* array 32 header, count last */
  h[1] = (unsigned char)(n >> 24);
  h[2] = (unsigned char)(n >> 16);
  h[3] = (unsigned char)(n >> 8);
  h[4] = (unsigned char)n;
  g->first = the_map.group_first;
  g->n = the_map.group_valid;
  vow_promise_release(vow_add_both(
      vow_pool_map_indexed(the_map.pool, the_map.fn,
                           vow_value_new_msgpack(the_map.group_items.data,
                                                 the_map.group_items.len, NULL),
                           map_lineno(g->first)),
      on_group, g));
  the_map.group_items.len = 0;
  the_map.group_valid = 0;
}

/* ---- lines in --------------------------------------------------------- */

/* Lines a group takes: about 64 groups a worker over the whole input, as
 * the pool sizes its chunks, so a long input goes in few large messages
 * while a short one of slow tasks writes (and logs) each result as it
 * comes. The whole is estimated: from a file's size, else from the lines
 * seen so far. */
static size_t group_target(void) {
  double lines = (double)the_map.nread;
  size_t g;
  if (the_map.size > 0 && the_map.consumed > 0)
    lines =
        (double)the_map.nread * (double)the_map.size / (double)the_map.consumed;
  g = (size_t)(lines / ((double)the_map.workers * 64.0));
  return g < 1 ? 1 : g > MAP_GROUP ? MAP_GROUP : g;
}

static void take_line(const char* text, size_t len) {
  size_t i, done_at;
  map_line* l;
  char msg[256];
  /* Another shard's line: counted, never held. */
  if (the_map.shard_n &&
      the_map.nseen++ % the_map.shard_n != the_map.shard_k - 1) {
    return;
  }
  i = the_map.nread++;
  l = line_at(i);
  done_at = map_lineno(i) - 1;
  memset(l, 0, sizeof(*l));
  if (done_at < the_map.nskip && the_map.skip[done_at]) {
    /* Done in an earlier run: no output, nothing to run. A group is a
     * run of lines that are all sent, so it ends here. */
    flush_group();
    l->skipped = l->settled = true;
    the_map.done++;
    advance();
    return;
  }
  if (vow_json_to_msgpack(text, len, &l->arg, msg, sizeof(msg)) != 0) {
    flush_group();
    vbuf_free(&l->arg);
    settle_line(i, vow_json_error_line(map_lineno(i), msg, NULL), true);
    return;
  }
  if (the_map.shard_n) {
    /* A shard's lines are not consecutive lines of the input, and a
     * map's items take consecutive seeds: each goes alone, with its own
     * line's seed, as it has in any shard and in the whole run. */
    run_alone(i);
    return;
  }
  if (the_map.group_valid == 0) {
    static const unsigned char header[5] = {0xdd, 0, 0, 0, 0};
    the_map.group_target = group_target();
    the_map.group_first = i;
    vbuf_add(&the_map.group_items, header, sizeof(header));
  }
  vbuf_add(&the_map.group_items, l->arg.data, l->arg.len);
  if (++the_map.group_valid == the_map.group_target)
    flush_group();
}

/* The next whole line held in the buffer. */
static bool next_line(const char** text, size_t* len) {
  const char* start;
  const char* nl;
  if (the_map.pos >= the_map.buf.len)
    return false;
  start = the_map.buf.data + the_map.pos;
  nl = memchr(start, '\n', the_map.buf.len - the_map.pos);
  if (nl == NULL)
    return false;
  *text = start;
  *len = (size_t)(nl - start);
  the_map.pos += *len + 1;
  the_map.consumed += (off_t)*len + 1;
  return true;
}

static int read_more(void) {
  char chunk[65536];
  ssize_t k;
  if (the_map.pos > 0) {
    memmove(the_map.buf.data, the_map.buf.data + the_map.pos,
            the_map.buf.len - the_map.pos);
    the_map.buf.len -= the_map.pos;
    the_map.pos = 0;
  }
  do
    k = read(the_map.fd, chunk, sizeof(chunk));
  while (k < 0 && errno == EINTR);
  if (k > 0)
    vbuf_add(&the_map.buf, chunk, (size_t)k);
  return k < 0 ? -errno : (int)(k > 0);
}

static void on_readable(uv_poll_t* p, int status, int events);

static void watch(void) {
  bool want = the_map.pollable && !the_map.fd_eof && room();
  if (want == the_map.polling)
    return;
  the_map.polling = want;
  if (want)
    uv_poll_start(&the_map.poll, UV_READABLE, on_readable);
  else
    uv_poll_stop(&the_map.poll);
}

/* Takes the lines there are now, as far as the window allows. */
static void pump(void) {
  const char* text;
  size_t len;
  if (the_map.output_failed)
    return; /* the run is ending: nothing more is read */
  for (;;) {
    int got;
    while (room() && next_line(&text, &len))
      take_line(text, len);
    if (!room() || the_map.fd_eof || (the_map.pollable && !the_map.readable))
      break;
    got = read_more();
    the_map.readable = false; /* one read a wake-up: the next could block */
    if (got == -EAGAIN)
      break;
    if (got <= 0) {
      if (got < 0)
        the_map.read_errno = -got;
      the_map.fd_eof = true;
    }
  }
  if (the_map.fd_eof && room() && the_map.pos < the_map.buf.len) {
    /* The last line, without its newline. */
    len = the_map.buf.len - the_map.pos;
    the_map.consumed += (off_t)len;
    the_map.pos = the_map.buf.len;
    take_line(the_map.buf.data + the_map.buf.len - len, len);
  }
  if (the_map.fd_eof && the_map.pos >= the_map.buf.len)
    the_map.input_ended = true;
  flush_group();
  watch();
}

/* Called as lines settle: more are read once there is room for a group
 * (or everything is written), so groups stay large. */
static void refill(void) {
  if (the_map.input_ended)
    return;
  if (MAP_WINDOW - (the_map.nread - the_map.next_out) >= MAP_GROUP ||
      the_map.next_out == the_map.nread)
    pump();
}

static void on_readable(uv_poll_t* p, int status, int events) {
  (void)p;
  (void)events;
  the_map.readable = true;
  if (status < 0) {
    the_map.read_errno = -status;
    the_map.fd_eof = true;
  }
  pump();
}

int map_stream_start(uv_loop_t* loop) {
  struct stat st;
  the_map.fd = 0;
  the_map.ring = calloc(MAP_WINDOW, sizeof(map_line));
  if (the_map.ring == NULL) {
    vow_cli_error("out of memory");
    return -1;
  }
  if (fstat(the_map.fd, &st) == 0 && S_ISREG(st.st_mode))
    the_map.size = st.st_size - lseek(the_map.fd, 0, SEEK_CUR);
  else
    the_map.pollable = uv_poll_init(loop, &the_map.poll, the_map.fd) == 0;
  pump(); /* a file is read now; a pipe once the loop says it is ready */
  return 0;
}

bool map_stream_finished(void) {
  return the_map.output_failed ||
         (the_map.input_ended && the_map.next_out == the_map.nread);
}

void map_stream_close(void) {
  if (the_map.pollable)
    uv_close((uv_handle_t*)&the_map.poll, NULL);
  free(the_map.ring);
  vbuf_free(&the_map.buf);
  vbuf_free(&the_map.group_items);
  vbuf_free(&the_map.joblog_due);
  if (the_map.read_errno != 0)
    vow_cli_error("reading the input: %s", strerror(the_map.read_errno));
}

/* The progress line: the total is known once the input has ended, and
 * estimated from the bytes read for a regular file. */
void map_progress(bool final) {
  vow_progress_counts c = {the_map.done, 0, the_map.nread - the_map.done,
                           the_map.failed};
  if (!the_map.progress.on)
    return;
  if (the_map.input_ended)
    c.total = the_map.nread;
  else if (the_map.size > 0 && the_map.consumed > 0)
    c.total = (size_t)((double)the_map.nread * (double)the_map.size /
                       (double)the_map.consumed);
  if (c.total < the_map.nread)
    c.total = the_map.nread;
  vow_progress_draw(&the_map.progress, &c, final);
}
