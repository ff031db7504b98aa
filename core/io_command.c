/* Running a child command on the loop and collecting its exit status and
 * output.
 *
 * The command is done only when its exit has been reported and both of its
 * pipes have reached EOF: exit can arrive before the last output (libuv
 * #610), so the result is built when all three are in.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

typedef struct command command;

typedef struct capture {
  uv_pipe_t pipe;
  command* owner;
  char* data;
  size_t len, cap;
  bool eof;
} capture;

struct command {
  vow__op op;
  vow_ctx_t* ctx;
  vow_promise_t* p; /* NULL once cancelled or closing */
  uv_process_t proc;
  capture out, err;
  char* name;   /* argv[0], for messages */
  bool running; /* spawned and not yet reaped: safe to signal */
  bool exited;
  int64_t exit_status;
  int term_signal;
  int open_handles;
  int error; /* a read error, 0 if none */
};

static void free_result(void* ptr) {
  vow_command_result_t* r = ptr;
  vow__free(r->out);
  vow__free(r->err);
  vow__free(r);
}

static void on_closed(uv_handle_t* h) {
  command* c = h->type == UV_PROCESS ? h->data : ((capture*)h->data)->owner;
  if (--c->open_handles > 0)
    return;
  vow__free(c->out.data);
  vow__free(c->err.data);
  vow__free(c->name);
  vow__op_done(c->ctx, &c->op);
  vow__free(c);
}

static void close_all(command* c) {
  if (!uv_is_closing((uv_handle_t*)&c->proc))
    uv_close((uv_handle_t*)&c->proc, on_closed);
  if (!uv_is_closing((uv_handle_t*)&c->out.pipe))
    uv_close((uv_handle_t*)&c->out.pipe, on_closed);
  if (!uv_is_closing((uv_handle_t*)&c->err.pipe))
    uv_close((uv_handle_t*)&c->err.pipe, on_closed);
}

/* Moves a capture's bytes into a NUL-terminated string. */
static char* take_bytes(capture* cap, size_t* len) {
  char* s = cap->data ? vow__realloc(cap->data, cap->len + 1) : vow__malloc(1);
  if (s == NULL)
    return NULL;
  s[cap->len] = '\0';
  *len = cap->len;
  cap->data = NULL;
  cap->len = cap->cap = 0;
  return s;
}

static void maybe_done(command* c) {
  vow_command_result_t* r;
  vow_value_t* v;
  vow_promise_t* p = c->p;
  if (!c->exited || !c->out.eof || !c->err.eof)
    return;
  c->p = NULL;
  if (p != NULL) {
    if (c->error != 0) {
      vow_failure_t* f = vow_failure_new(VOW_FAIL_IO, c->error,
                                         "cannot read the output of %s: %s",
                                         c->name, uv_strerror(c->error));
      vow_origin_t o = {
          0, c->name, NULL, c->proc.pid, (int)c->exit_status, c->term_signal};
      vow_failure_set_origin(f, &o);
      vow_reject(p, f);
    } else {
      r = vow__calloc(1, sizeof(*r));
      if (r != NULL) {
        r->exit_status = c->exit_status;
        r->term_signal = c->term_signal;
        r->out = take_bytes(&c->out, &r->out_len);
        r->err = take_bytes(&c->err, &r->err_len);
      }
      v = r && r->out && r->err ? vow_value_new_ptr(r, free_result) : NULL;
      if (v == NULL) {
        if (r)
          free_result(r);
        vow_reject(p, vow__failure_nomem());
      } else {
        vow_fulfil(p, v);
      }
    }
  }
  close_all(c);
}

static void on_exit_cb(uv_process_t* proc, int64_t status, int sig) {
  command* c = proc->data;
  c->exited = true;
  c->running = false;
  c->exit_status = sig ? -1 : status;
  c->term_signal = sig;
  maybe_done(c);
}

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  capture* cap = h->data;
  (void)suggested;
  if (cap->cap - cap->len < 16384) {
    size_t ncap = cap->cap ? cap->cap * 2 : 65536;
    char* grown = vow__realloc(cap->data, ncap);
    if (grown == NULL) {
      *buf = uv_buf_init(NULL, 0); /* libuv then reports UV_ENOBUFS */
      return;
    }
    cap->data = grown;
    cap->cap = ncap;
  }
  *buf = uv_buf_init(cap->data + cap->len, (unsigned)(cap->cap - cap->len));
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  capture* cap = s->data;
  command* c = cap->owner;
  (void)buf;
  if (n > 0) {
    cap->len += (size_t)n;
    return;
  }
  if (n == 0)
    return;
  if (n != UV_EOF && c->error == 0)
    c->error = (int)n;
  cap->eof = true;
  uv_read_stop(s);
  maybe_done(c);
}

/* Only a child that was spawned and not yet reaped is signalled: the pid
 * of a failed spawn is 0, and kill(0, ...) would hit our own process
 * group. */
static void kill_child(command* c) {
  if (c->running)
    uv_process_kill(&c->proc, SIGKILL);
}

static void command_cancel(vow_promise_t* p, void* data) {
  command* c = data;
  (void)p;
  c->p = NULL;
  kill_child(c);
}

static void command_shutdown(vow__op* op) {
  command* c = VOW__CONTAINER_OF(op, command, op);
  c->p = NULL;
  kill_child(c);
  close_all(c);
}

vow_promise_t* vow_run_command(vow_ctx_t* ctx, const char* const* argv) {
  VOW__NOT_NULL(ctx, "the context");
  VOW__NOT_NULL(argv, "argv");
  command* c;
  vow_promise_t* p;
  uv_process_options_t opts;
  uv_stdio_container_t stdio[3];
  int rc;
  if (argv == NULL || argv[0] == NULL)
    return vow_fail(ctx, vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                         "no command was given"));
  c = vow__calloc(1, sizeof(*c));
  if (c == NULL || (c->name = vow__strdup(argv[0])) == NULL) {
    vow__free(c);
    return vow_fail(ctx, vow__failure_nomem());
  }
  p = vow_promise_new(ctx, command_cancel, c);
  if (p == NULL) {
    vow__free(c->name);
    vow__free(c);
    return NULL;
  }
  c->ctx = ctx;
  c->p = p;
  uv_pipe_init(ctx->loop, &c->out.pipe, 0);
  uv_pipe_init(ctx->loop, &c->err.pipe, 0);
  c->out.owner = c->err.owner = c;
  c->out.pipe.data = &c->out;
  c->err.pipe.data = &c->err;
  c->proc.data = c;
  c->open_handles = 3;
  vow__op_start(ctx, &c->op, command_shutdown);

  memset(&opts, 0, sizeof(opts));
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t*)&c->out.pipe;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t*)&c->err.pipe;
  opts.file = argv[0];
  opts.args = (char**)argv;
  opts.exit_cb = on_exit_cb;
  opts.stdio = stdio;
  opts.stdio_count = 3;
  rc = uv_spawn(ctx->loop, &c->proc, &opts);
  if (rc != 0) {
    vow_failure_t* f = vow_failure_new(VOW_FAIL_IO, rc, "cannot run %s: %s",
                                       argv[0], uv_strerror(rc));
    vow_origin_t o = {0, argv[0], NULL, 0, -1, -1};
    vow_failure_set_origin(f, &o);
    c->p = NULL;
    vow_reject(p, f);
    /* The process handle must be closed even when the spawn failed. */
    close_all(c);
    return p;
  }
  c->running = true;
  uv_read_start((uv_stream_t*)&c->out.pipe, on_alloc, on_read);
  uv_read_start((uv_stream_t*)&c->err.pipe, on_alloc, on_read);
  return p;
}
