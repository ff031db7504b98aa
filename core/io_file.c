/* Reading and writing whole files on the loop, through libuv's fs
 * requests: open, (fstat,) read or write until done, close. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

typedef struct fileop {
  vow__op op;
  vow_ctx_t* ctx;
  vow_promise_t* p; /* NULL once cancelled or closing: never settle then */
  uv_fs_t req;
  uv_file fd;
  bool writing;
  int error;        /* first error, 0 if none */
  const char* what; /* the step that failed */
  char* path;
  char* data; /* read: bytes so far; write: what to write */
  size_t len; /* bytes read or written so far */
  size_t cap; /* read: capacity of data; write: bytes to write */
} fileop;

static void step(uv_fs_t* req);

static void finish(fileop* f) {
  vow_ctx_t* ctx = f->ctx;
  if (f->p != NULL) {
    vow_promise_t* p = f->p;
    f->p = NULL;
    if (f->error != 0) {
      vow_failure_t* fail =
          vow_failure_new(VOW_FAIL_IO, f->error, "cannot %s %s: %s", f->what,
                          f->path, uv_strerror(f->error));
      vow_origin_t o = {0, NULL, f->path, 0, -1, -1};
      vow_failure_set_origin(fail, &o);
      vow_reject(p, fail);
    } else if (f->writing) {
      vow_fulfil(p, vow_value_new_int((int64_t)f->len));
    } else {
      vow_value_t* v = vow_value_new_bin(f->data, f->len);
      if (v == NULL)
        vow_reject(p, vow__failure_nomem());
      else
        vow_fulfil(p, v);
    }
  }
  vow__free(f->data);
  vow__free(f->path);
  vow__op_done(ctx, &f->op);
  vow__free(f);
}

static void fail_step(fileop* f, int error, const char* what) {
  if (f->error == 0) {
    f->error = error;
    f->what = what;
  }
}

/* Starts the close of the file, or finishes when none is open. */
static void close_or_finish(fileop* f) {
  if (f->fd >= 0) {
    uv_file fd = f->fd;
    f->fd = -1;
    if (uv_fs_close(f->ctx->loop, &f->req, fd, step) == 0)
      return;
  }
  finish(f);
}

static void read_more(fileop* f) {
  uv_buf_t buf;
  int rc;
  if (f->cap - f->len < 4096) {
    size_t cap = f->cap ? f->cap * 2 : 65536;
    char* grown = vow__realloc(f->data, cap);
    if (grown == NULL) {
      fail_step(f, UV_ENOMEM, "read");
      close_or_finish(f);
      return;
    }
    f->data = grown;
    f->cap = cap;
  }
  buf = uv_buf_init(f->data + f->len, (unsigned)(f->cap - f->len));
  rc = uv_fs_read(f->ctx->loop, &f->req, f->fd, &buf, 1, -1, step);
  if (rc != 0) {
    fail_step(f, rc, "read");
    close_or_finish(f);
  }
}

static void write_more(fileop* f) {
  uv_buf_t buf = uv_buf_init(f->data + f->len, (unsigned)(f->cap - f->len));
  int rc = uv_fs_write(f->ctx->loop, &f->req, f->fd, &buf, 1, -1, step);
  if (rc != 0) {
    fail_step(f, rc, "write");
    close_or_finish(f);
  }
}

static void step(uv_fs_t* req) {
  fileop* f = req->data;
  uv_fs_type type = req->fs_type;
  ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (type == UV_FS_CLOSE) {
    if (result < 0)
      fail_step(f, (int)result, "close");
    finish(f);
    return;
  }
  if (result < 0) {
    fail_step(f, (int)result,
              type == UV_FS_OPEN   ? "open"
              : type == UV_FS_READ ? "read"
                                   : "write");
    close_or_finish(f);
    return;
  }
  if (f->p == NULL) { /* cancelled: stop early, but close what is open */
    if (type == UV_FS_OPEN)
      f->fd = (uv_file)result;
    close_or_finish(f);
    return;
  }
  switch (type) {
    case UV_FS_OPEN:
      f->fd = (uv_file)result;
      if (f->writing)
        f->cap == 0 ? close_or_finish(f) : write_more(f);
      else
        read_more(f);
      return;
    case UV_FS_READ:
      if (result == 0) {
        close_or_finish(f);
        return;
      }
      f->len += (size_t)result;
      read_more(f);
      return;
    case UV_FS_WRITE:
      f->len += (size_t)result;
      if (f->len < f->cap)
        write_more(f);
      else
        close_or_finish(f);
      return;
    default:
      abort(); /* no other request is ever started */
  }
}

static void file_cancel(vow_promise_t* p, void* data) {
  fileop* f = data;
  (void)p;
  f->p = NULL;
  /* Only a request still queued in the thread pool can be cancelled; a
   * running one completes and the machine then closes the file. */
  uv_cancel((uv_req_t*)&f->req);
}

static void file_shutdown(vow__op* op) {
  fileop* f = VOW__CONTAINER_OF(op, fileop, op);
  f->p = NULL;
  uv_cancel((uv_req_t*)&f->req);
}

static vow_promise_t* start(vow_ctx_t* ctx, const char* path, bool writing,
                            const void* data, size_t len) {
  fileop* f = vow__calloc(1, sizeof(*f));
  vow_promise_t* p;
  int rc;
  if (f == NULL)
    return vow_fail(ctx, vow__failure_nomem());
  f->path = vow__strdup(path);
  if (writing && len > 0) {
    f->data = vow__malloc(len);
    if (f->data)
      memcpy(f->data, data, len);
  }
  if (f->path == NULL || (writing && len > 0 && f->data == NULL)) {
    vow__free(f->path);
    vow__free(f->data);
    vow__free(f);
    return vow_fail(ctx, vow__failure_nomem());
  }
  p = vow_promise_new(ctx, file_cancel, f);
  if (p == NULL) {
    vow__free(f->path);
    vow__free(f->data);
    vow__free(f);
    return NULL;
  }
  f->ctx = ctx;
  f->p = p;
  f->fd = -1;
  f->writing = writing;
  f->cap = writing ? len : 0;
  f->req.data = f;
  vow__op_start(ctx, &f->op, file_shutdown);
  rc = uv_fs_open(
      ctx->loop, &f->req, path,
      writing ? O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDONLY | O_CLOEXEC,
      0644, step);
  if (rc != 0) {
    /* Reported through the promise like any later error; the promise is
     * settled now but its callbacks still run on a later tick. */
    fail_step(f, rc, "open");
    finish(f);
  }
  return p;
}

vow_promise_t* vow_read_file(vow_ctx_t* ctx, const char* path) {
  VOW__NOT_NULL(ctx, "the context");
  VOW__NOT_NULL(path, "the path");
  return start(ctx, path, false, NULL, 0);
}

vow_promise_t* vow_write_file(vow_ctx_t* ctx, const char* path,
                              const void* data, size_t len) {
  VOW__NOT_NULL(ctx, "the context");
  VOW__NOT_NULL(path, "the path");
  return start(ctx, path, true, data, len);
}
