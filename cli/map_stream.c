/* vow map's lines: read from stdin as they arrive, sent to the pool in
 * groups, their results written in input order (or as they complete).
 *
 * Memory holds a window of MAP_WINDOW lines, not the input: reading stops
 * while the window is full and goes on as lines are written. A pipe or
 * terminal is watched on the loop, so the first line runs as soon as it
 * arrives; a regular file is read as the window allows. A group goes to
 * the pool when it is full, or when no more input is there for now. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "map.h"

map_state M;

static map_line* line_at(size_t i) {
  return &M.ring[i % MAP_WINDOW];
}

static bool room(void) {
  return M.nread - M.next_out < MAP_WINDOW;
}

/* ---- results out ------------------------------------------------------ */

static void emit(size_t i) {
  map_line* l = line_at(i);
  FILE* f = l->error && M.errors_to_stderr ? stderr : stdout;
  if (l->skipped || l->text == NULL)
    return;
  vow_progress_erase(&M.progress);
  if (M.numbers && !l->error)
    fprintf(f, "{\"line\":%zu,\"result\":", i + 1);
  fputs(l->text, f);
  if (M.numbers && !l->error)
    fputc('}', f);
  fputc('\n', f);
  free(l->text);
  l->text = NULL;
}

/* Moves past the lines that are settled: written now in input order, or
 * (--unordered) already written when they settled. */
static void advance(void) {
  while (M.next_out < M.nread && line_at(M.next_out)->settled) {
    map_line* l = line_at(M.next_out);
    if (!M.unordered)
      emit(M.next_out);
    vbuf_free(&l->arg);
    memset(l, 0, sizeof(*l));
    M.next_out++;
  }
}

static void settle_line(size_t i, char* text, bool error) {
  map_line* l = line_at(i);
  l->text = text;
  l->error = error;
  l->settled = true;
  vbuf_free(&l->arg);
  M.done++;
  if (error)
    M.failed++;
  if (M.joblog) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "%s line %zu", M.fn, i + 1);
    vow_cli_joblog_write(M.joblog, i + 1, M.start, vow_cli_now() - M.start,
                         strlen(text), error ? 1 : 0, 0, cmd);
  }
  if (M.unordered)
    emit(i);
  advance();
}

static void settle_failure(size_t i, vow_failure_t* f) {
  char line[1024];
  const char* detail = vow_failure_detail(f);
  vow_failure_describe(f, line, sizeof(line));
  if (M.traceback && detail != NULL && *detail != '\0') {
    vow_progress_erase(&M.progress);
    fprintf(stderr, "vow: line %zu: %s\n%s%s", i + 1, line, detail,
            detail[strlen(detail) - 1] == '\n' ? "" : "\n");
  }
  settle_line(i, vow_json_error_line(i + 1, line, detail), true);
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
    char* text = b ? vow_msgpack_to_json(b, len, M.bytes_mode) : NULL;
    if (text == NULL)
      settle_line(
          r->index,
          vow_json_error_line(r->index + 1,
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

/* Lines [first, first + n) went to the pool together; sent[k] says
 * whether line first + k was among them (a line that is not JSON, or was
 * done in an earlier run, was not). */
typedef struct group {
  size_t first, n;
  char* sent;
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
  p = vow_pool_submit(M.pool, M.fn,
                      vow_value_new_msgpack(l->arg.data, l->arg.len, NULL));
  vow_promise_release(vow_add_both(p, on_result, r));
}

static void settle_from(size_t i, const msgpack_object* o) {
  vbuf text = {0};
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_object(&pk, *o);
  if (vow_msgpack_write_json(&text, sb.data, sb.size, M.bytes_mode) == 0)
    settle_line(i, text.data ? text.data : strdup(""), false);
  else
    settle_line(i,
                vow_json_error_line(
                    i + 1, "the result cannot be written as JSON", NULL),
                true);
  msgpack_sbuffer_destroy(&sb);
}

static vow_outcome_t on_group(vow_value_t* v, vow_failure_t* f, void* data) {
  group* g = data;
  size_t k;
  if (f == NULL) {
    msgpack_unpacked un;
    uint32_t at = 0, have = 0;
    msgpack_unpacked_init(&un);
    if (vow_value_unpack(v, &un) == 0 && un.data.type == MSGPACK_OBJECT_ARRAY)
      have = un.data.via.array.size;
    for (k = 0; k < g->n; k++) {
      if (!g->sent[k])
        continue;
      if (at >= have) /* never trusted to line up */
        settle_line(g->first + k,
                    vow_json_error_line(g->first + k + 1,
                                        "the worker returned no result for "
                                        "this line",
                                        NULL),
                    true);
      else
        settle_from(g->first + k, &un.data.via.array.ptr[at++]);
    }
    msgpack_unpacked_destroy(&un);
    vow_value_release(v);
  } else {
    /* Each line alone: every failure on its own line, the rest fine. */
    vow_failure_release(f);
    for (k = 0; k < g->n; k++)
      if (g->sent[k])
        run_alone(g->first + k);
  }
  free(g->sent);
  free(g);
  refill();
  return vow_ok(NULL);
}

static void flush_group(void) {
  group* g;
  uint32_t n = (uint32_t)M.group_valid;
  unsigned char* h;
  if (M.group_valid == 0)
    return;
  g = malloc(sizeof(*g));
  if (g == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  h = (unsigned char*)M.group_items.data; /* array 32 header, count last */
  h[1] = (unsigned char)(n >> 24);
  h[2] = (unsigned char)(n >> 16);
  h[3] = (unsigned char)(n >> 8);
  h[4] = (unsigned char)n;
  g->first = M.group_first;
  g->n = M.group_sent.len;
  g->sent = M.group_sent.data;
  memset(&M.group_sent, 0, sizeof(M.group_sent));
  vow_promise_release(vow_add_both(
      vow_pool_map(
          M.pool, M.fn,
          vow_value_new_msgpack(M.group_items.data, M.group_items.len, NULL)),
      on_group, g));
  M.group_items.len = 0;
  M.group_valid = 0;
}

/* ---- lines in --------------------------------------------------------- */

/* Lines a group takes: about 64 groups a worker over the whole input, as
 * the pool sizes its chunks, so a long input goes in few large messages
 * while a short one of slow tasks writes (and logs) each result as it
 * comes. The whole is estimated: from a file's size, else from the lines
 * seen so far. */
static size_t group_target(void) {
  double lines = (double)M.nread;
  size_t g;
  if (M.size > 0 && M.consumed > 0)
    lines = (double)M.nread * (double)M.size / (double)M.consumed;
  g = (size_t)(lines / ((double)M.workers * 64.0));
  return g < 1 ? 1 : g > MAP_GROUP ? MAP_GROUP : g;
}

static void take_line(const char* text, size_t len) {
  size_t i = M.nread++;
  map_line* l = line_at(i);
  char msg[256];
  memset(l, 0, sizeof(*l));
  if (i < M.nskip && M.skip[i]) {
    /* Done in an earlier run: no output, nothing to run. */
    l->skipped = l->settled = true;
    M.done++;
    advance();
    return;
  }
  if (vow_json_to_msgpack(text, len, &l->arg, msg, sizeof(msg)) != 0) {
    vbuf_free(&l->arg);
    settle_line(i, vow_json_error_line(i + 1, msg, NULL), true);
    return;
  }
  if (M.group_valid == 0) {
    static const unsigned char header[5] = {0xdd, 0, 0, 0, 0};
    M.group_target = group_target();
    M.group_first = i;
    M.group_sent.len = 0;
    vbuf_add(&M.group_items, header, sizeof(header));
  }
  while (M.group_first + M.group_sent.len < i)
    vbuf_add(&M.group_sent, "", 1); /* a line not sent */
  vbuf_add(&M.group_sent, "\1", 1);
  vbuf_add(&M.group_items, l->arg.data, l->arg.len);
  if (++M.group_valid == M.group_target)
    flush_group();
}

/* The next whole line held in the buffer. */
static bool next_line(const char** text, size_t* len) {
  const char* start = M.buf.data + M.pos;
  const char* nl;
  if (M.pos >= M.buf.len)
    return false;
  nl = memchr(start, '\n', M.buf.len - M.pos);
  if (nl == NULL)
    return false;
  *text = start;
  *len = (size_t)(nl - start);
  M.pos += *len + 1;
  M.consumed += (off_t)*len + 1;
  return true;
}

static int read_more(void) {
  char chunk[65536];
  ssize_t k;
  if (M.pos > 0) {
    memmove(M.buf.data, M.buf.data + M.pos, M.buf.len - M.pos);
    M.buf.len -= M.pos;
    M.pos = 0;
  }
  do
    k = read(M.fd, chunk, sizeof(chunk));
  while (k < 0 && errno == EINTR);
  if (k > 0)
    vbuf_add(&M.buf, chunk, (size_t)k);
  return k < 0 ? -errno : (int)(k > 0);
}

static void on_readable(uv_poll_t* p, int status, int events);

static void watch(void) {
  bool want = M.pollable && !M.fd_eof && room();
  if (want == M.polling)
    return;
  M.polling = want;
  if (want)
    uv_poll_start(&M.poll, UV_READABLE, on_readable);
  else
    uv_poll_stop(&M.poll);
}

/* Takes the lines there are now, as far as the window allows. */
static void pump(void) {
  const char* text;
  size_t len;
  for (;;) {
    int got;
    while (room() && next_line(&text, &len))
      take_line(text, len);
    if (!room() || M.fd_eof || (M.pollable && !M.readable))
      break;
    got = read_more();
    M.readable = false; /* one read a wake-up: the next could block */
    if (got == -EAGAIN)
      break;
    if (got <= 0) {
      if (got < 0)
        M.read_errno = -got;
      M.fd_eof = true;
    }
  }
  if (M.fd_eof && room() && M.pos < M.buf.len) {
    /* The last line, without its newline. */
    len = M.buf.len - M.pos;
    M.consumed += (off_t)len;
    M.pos = M.buf.len;
    take_line(M.buf.data + M.buf.len - len, len);
  }
  if (M.fd_eof && M.pos >= M.buf.len)
    M.input_ended = true;
  flush_group();
  watch();
}

/* Called as lines settle: more are read once there is room for a group
 * (or everything is written), so groups stay large. */
static void refill(void) {
  if (M.input_ended)
    return;
  if (MAP_WINDOW - (M.nread - M.next_out) >= MAP_GROUP || M.next_out == M.nread)
    pump();
}

static void on_readable(uv_poll_t* p, int status, int events) {
  (void)p;
  (void)events;
  M.readable = true;
  if (status < 0) {
    M.read_errno = -status;
    M.fd_eof = true;
  }
  pump();
}

int map_stream_start(uv_loop_t* loop) {
  struct stat st;
  M.fd = 0;
  M.ring = calloc(MAP_WINDOW, sizeof(map_line));
  if (M.ring == NULL) {
    vow_cli_error("out of memory");
    return -1;
  }
  if (fstat(M.fd, &st) == 0 && S_ISREG(st.st_mode))
    M.size = st.st_size - lseek(M.fd, 0, SEEK_CUR);
  else
    M.pollable = uv_poll_init(loop, &M.poll, M.fd) == 0;
  pump(); /* a file is read now; a pipe once the loop says it is ready */
  return 0;
}

bool map_stream_finished(void) {
  return M.input_ended && M.next_out == M.nread;
}

void map_stream_close(void) {
  if (M.pollable)
    uv_close((uv_handle_t*)&M.poll, NULL);
  free(M.ring);
  vbuf_free(&M.buf);
  vbuf_free(&M.group_items);
  vbuf_free(&M.group_sent);
  if (M.read_errno != 0)
    vow_cli_error("reading the input: %s", strerror(M.read_errno));
}

/* The progress line: the total is known once the input has ended, and
 * estimated from the bytes read for a regular file. */
void map_progress(bool final) {
  vow_progress_counts c = {M.done, 0, M.nread - M.done, M.failed};
  if (!M.progress.on)
    return;
  if (M.input_ended)
    c.total = M.nread;
  else if (M.size > 0 && M.consumed > 0)
    c.total = (size_t)((double)M.nread * (double)M.size / (double)M.consumed);
  if (c.total < M.nread)
    c.total = M.nread;
  vow_progress_draw(&M.progress, &c, final);
}
