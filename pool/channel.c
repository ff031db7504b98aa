/* The channel to one worker: frames in through the decoder, frames out
 * through libuv's write queue. */
#include "channel.h"

#include <string.h>
#include <sys/ioctl.h>

#include "alloc.h"
#include "uv_buf.h"

typedef struct wreq {
  uv_write_t req;
  char* data;
  vow_value_t* hold; /* bytes written in place, kept alive until written */
  char tail[16];
} wreq;

void vow__chan_init(vow__chan* ch, uv_loop_t* loop, void* owner) {
  memset(ch, 0, sizeof(*ch));
  uv_pipe_init(loop, &ch->pipe, 0);
  ch->pipe.data = ch;
  ch->owner = owner;
  vowp_decoder_init(&ch->dec, NULL);
}

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  vow__chan* ch = h->data;
  (void)suggested;
  *buf = vowp_decoder_uv_buf(&ch->dec);
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  vow__chan* ch = s->data;
  (void)buf;
  if (n > 0)
    vowp_decoder_commit(&ch->dec, (size_t)n);
  ch->on_read(ch, n);
}

int vow__chan_start(vow__chan* ch, vow__chan_read_fn on_read_fn,
                    vow__chan_sent_fn on_sent) {
  ch->on_read = on_read_fn;
  ch->on_sent = on_sent;
  return uv_read_start((uv_stream_t*)&ch->pipe, on_alloc, on_read);
}

void vow__chan_stop_reading(vow__chan* ch) {
  uv_read_stop((uv_stream_t*)&ch->pipe);
}

int vow__chan_next(vow__chan* ch, vowp_msg* m) {
  int rc = vowp_decoder_next(&ch->dec, m);
  return rc < 0 ? -1 : rc;
}

const char* vow__chan_error(const vow__chan* ch) {
  return vowp_decoder_error(&ch->dec)->text;
}

int vow__chan_finish(vow__chan* ch) {
  return vowp_decoder_finish(&ch->dec) != 0 ? -1 : 0;
}

size_t vow__chan_partial(const vow__chan* ch) {
  return vowp_decoder_partial(&ch->dec);
}

char* vow__chan_steal(vow__chan* ch) {
  return vowp_decoder_steal(&ch->dec);
}

int vow__chan_unread(const vow__chan* ch) {
  uv_os_fd_t fd;
  int pending = 0;
  if (uv_fileno((const uv_handle_t*)&ch->pipe, &fd) != 0 ||
      ioctl(fd, FIONREAD, &pending) != 0)
    return 0;
  return pending;
}

bool vow__chan_writable(const vow__chan* ch) {
  return !uv_is_closing((const uv_handle_t*)&ch->pipe);
}

size_t vow__chan_backlog(const vow__chan* ch) {
  return ch->pipe.write_queue_size;
}

static void on_written(uv_write_t* req, int status) {
  wreq* r = (wreq*)req;
  vow__chan* ch = req->handle->data;
  vow__free(r->data);
  vow_value_release(r->hold);
  vow__free(r);
  if (ch->on_sent != NULL)
    ch->on_sent(ch, status);
}

bool vow__chan_write(vow__chan* ch, vowp_encoder* e) {
  wreq* r;
  size_t len;
  uv_buf_t buf;
  char* data;
  if (e->failed)
    return false;
  data = vowp_encoder_release(e, &len);
  if (data == NULL || len == 0 || !vow__chan_writable(ch)) {
    vow__free(data);
    return true;
  }
  r = vow__malloc(sizeof(*r));
  if (r == NULL) {
    vow__free(data);
    return false;
  }
  r->data = data;
  r->hold = NULL;
  buf = uv_buf_init(data, (unsigned)len);
  if (uv_write(&r->req, (uv_stream_t*)&ch->pipe, &buf, 1, on_written) != 0) {
    vow__free(data);
    vow__free(r);
  }
  return true;
}

bool vow__chan_write_around(vow__chan* ch, char* head, size_t head_len,
                            vow_value_t* v, const void* tail, size_t tail_len) {
  wreq* r;
  uv_buf_t bufs[3];
  size_t len;
  const void* bytes = vow_value_bytes(v, &len);
  if (!vow__chan_writable(ch) || tail_len > sizeof(r->tail))
    return false;
  r = vow__calloc(1, sizeof(*r));
  if (r == NULL)
    return false;
  memcpy(r->tail, tail, tail_len);
  r->data = head;
  r->hold = vow_value_ref(v);
  bufs[0] = uv_buf_init(head, (unsigned)head_len);
  bufs[1] = uv_buf_init((char*)bytes, (unsigned)len);
  bufs[2] = uv_buf_init(r->tail, (unsigned)tail_len);
  if (uv_write(&r->req, (uv_stream_t*)&ch->pipe, bufs, 3, on_written) != 0) {
    vow_value_release(r->hold);
    vow__free(r);
    return false;
  }
  return true;
}

void vow__chan_close(vow__chan* ch, uv_close_cb cb) {
  uv_close((uv_handle_t*)&ch->pipe, cb);
}

bool vow__chan_closing(const vow__chan* ch) {
  return uv_is_closing((const uv_handle_t*)&ch->pipe);
}

void vow__chan_destroy(vow__chan* ch) {
  vowp_decoder_destroy(&ch->dec);
}
