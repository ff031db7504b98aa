/* Running a child command on the loop and collecting its exit status and
 * output: a child of proc/, settled when it is done (exited, and both of
 * its pipes at EOF).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

typedef struct capture {
  char* data;
  size_t len, cap;
  bool failed; /* out of memory: the rest is dropped, the run fails */
} capture;

typedef struct command {
  vow__op op;
  vow_ctx_t* ctx;
  vow_promise_t* p; /* NULL once cancelled or closing */
  vow__proc proc;
  capture out, err;
  char* name; /* argv[0], for messages */
} command;

static void free_result(void* ptr) {
  vow_command_result_t* r = ptr;
  vow__free(r->out);
  vow__free(r->err);
  vow__free(r);
}

static void on_closed(vow__proc* proc) {
  command* c = proc->data;
  vow__free(c->out.data);
  vow__free(c->err.data);
  vow__free(c->name);
  vow__op_done(c->ctx, &c->op);
  vow__free(c);
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

static void on_output(vow__proc* proc, int stream, const char* data,
                      size_t len) {
  command* c = proc->data;
  capture* cap = stream == 1 ? &c->out : &c->err;
  if (cap->failed)
    return;
  if (cap->cap - cap->len < len) {
    size_t ncap = cap->cap ? cap->cap : 65536;
    char* grown;
    while (ncap - cap->len < len)
      ncap *= 2;
    if ((grown = vow__realloc(cap->data, ncap)) == NULL) {
      cap->failed = true;
      return;
    }
    cap->data = grown;
    cap->cap = ncap;
  }
  memcpy(cap->data + cap->len, data, len);
  cap->len += len;
}

static void on_done(vow__proc* proc) {
  command* c = proc->data;
  vow_command_result_t* r;
  vow_value_t* v;
  vow_promise_t* p = c->p;
  c->p = NULL;
  if (p != NULL) {
    r = c->out.failed || c->err.failed ? NULL : vow__calloc(1, sizeof(*r));
    if (r != NULL) {
      r->exit_status = proc->term_signal ? -1 : proc->exit_status;
      r->term_signal = proc->term_signal;
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
  vow__proc_close(&c->proc, on_closed);
}

static const vow__proc_calls command_calls = {on_output, NULL, NULL, on_done};

/* Nobody is left to want its output: SIGKILL at once. */
static void command_cancel(vow_promise_t* p, void* data) {
  command* c = data;
  (void)p;
  c->p = NULL;
  vow__proc_kill(&c->proc);
}

static void command_shutdown(vow__op* op) {
  command* c = VOW__CONTAINER_OF(op, command, op);
  c->p = NULL;
  if (!c->proc.done)
    vow__proc_close(&c->proc, on_closed);
}

vow_promise_t* vow_run_command(vow_ctx_t* ctx, const char* const* argv) {
  VOW__NOT_NULL(ctx, "the context");
  VOW__NOT_NULL(argv, "argv");
  command* c;
  vow_promise_t* p;
  vow__proc_spec spec = {0};
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
  spec.argv = (char* const*)argv;
  spec.fd[0] = VOW__PROC_NULL;
  spec.fd[1] = spec.fd[2] = VOW__PROC_PIPE;
  spec.fd3 = -1;
  spec.default_signals = true;
  rc = vow__proc_spawn(&c->proc, &ctx->procs, &spec, &command_calls, c);
  if (rc != 0) {
    int err = uv_translate_sys_error(rc);
    vow_failure_t* f = vow_failure_new(VOW_FAIL_IO, err, "cannot run %s: %s",
                                       argv[0], uv_strerror(err));
    vow_origin_t o = {0, argv[0], NULL, 0, -1, -1};
    vow_failure_set_origin(f, &o);
    vow__free(c->name);
    vow__free(c);
    vow_reject(p, f);
    return p;
  }
  vow__op_start(ctx, &c->op, command_shutdown);
  return p;
}
