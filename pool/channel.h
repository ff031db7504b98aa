/* pool/channel.h — the channel to one worker: a stream, the decoder of
 * what comes in, and the writes going out. It knows frames, not tasks or
 * workers: it hands decoded messages up and takes encoded frames down,
 * so another kind of channel (a socket a worker connects back on, a
 * shared-memory side path) changes this file and the transport that
 * opens it, not the pool. Private to pool/. */
#ifndef VOW_POOL_CHANNEL_H
#define VOW_POOL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "proto.h"
#include "vow/value.h"

typedef struct vow__chan vow__chan;

/* Bytes arrived (status > 0: take the messages with vow__chan_next), or
 * the read side ended (status < 0: UV_EOF or a libuv error). */
typedef void (*vow__chan_read_fn)(vow__chan* ch, ssize_t status);
/* A write has finished (status 0) or failed. */
typedef void (*vow__chan_sent_fn)(vow__chan* ch, int status);

struct vow__chan {
  uv_pipe_t pipe; /* the stream: what a transport opens (a pipe, a socket) */
  vowp_decoder dec;
  void* owner; /* whose channel: the callbacks find it here */
  vow__chan_read_fn on_read;
  vow__chan_sent_fn on_sent;
};

/* Makes the stream handle (not yet open) and the decoder. */
void vow__chan_init(vow__chan* ch, uv_loop_t* loop, void* owner);
/* Starts reading once a transport has opened the stream. 0 or a libuv
 * error. */
int vow__chan_start(vow__chan* ch, vow__chan_read_fn on_read,
                    vow__chan_sent_fn on_sent);
void vow__chan_stop_reading(vow__chan* ch);
/* The next whole message in what has arrived: 1 with *m (valid until the
 * next call), 0 when none is left, -1 when the bytes break the protocol
 * (vow__chan_error says how). */
int vow__chan_next(vow__chan* ch, vowp_msg* m);
/* What broke the protocol, or why the read could not finish. */
const char* vow__chan_error(const vow__chan* ch);
/* At the end of the read side: 0, or -1 when it ended inside a message. */
int vow__chan_finish(vow__chan* ch);
/* Bytes of a message begun and not finished. */
size_t vow__chan_partial(const vow__chan* ch);
/* Takes the buffer the last message lies in (the caller frees it, with
 * vow__free), so a big value keeps its bytes where they arrived; NULL
 * when it cannot. */
char* vow__chan_steal(vow__chan* ch);
/* Bytes that have arrived and not been read yet, as the kernel says
 * (0 when it cannot say). */
int vow__chan_unread(const vow__chan* ch);

/* True while frames can still be written (the stream is not closing). */
bool vow__chan_writable(const vow__chan* ch);
/* Bytes written and not yet taken by the kernel. */
size_t vow__chan_backlog(const vow__chan* ch);
/* Writes the encoder's frames, taking its buffer. False when memory ran
 * out before they could go (an encoder that could not grow, or no
 * request); a channel that cannot be written counts as written, as the
 * end of its worker deals with what it held. */
bool vow__chan_write(vow__chan* ch, vowp_encoder* e);
/* Writes one frame as head (malloc'd, taken), the value's bytes where
 * they are (the value is held until written) and tail (copied). False
 * when it could not be queued: the caller still owns head. */
bool vow__chan_write_around(vow__chan* ch, char* head, size_t head_len,
                            vow_value_t* v, const void* tail, size_t tail_len);

/* Closes the stream; cb runs with it once closed. */
void vow__chan_close(vow__chan* ch, uv_close_cb cb);
bool vow__chan_closing(const vow__chan* ch);
/* Frees the decoder, after the stream has closed. */
void vow__chan_destroy(vow__chan* ch);

#endif
