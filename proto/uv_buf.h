/* proto/uv_buf.h — a decoder's free space as a libuv read buffer, for the
 * sides that read the protocol on a libuv loop (the pool, the queue
 * daemon). Apart from proto.h, which needs msgpack-c alone. */
#ifndef VOW_PROTO_UV_BUF_H
#define VOW_PROTO_UV_BUF_H

#include <uv.h>

#include "proto.h"

/* For a libuv alloc_cb: where the next bytes go (len 0 once the decoder
 * has failed or memory ran out, which stops the read with UV_ENOBUFS). */
static inline uv_buf_t vowp_decoder_uv_buf(vowp_decoder* d) {
  char* base;
  size_t len;
  vowp_decoder_buffer(d, &base, &len);
  return uv_buf_init(base, (unsigned)len);
}

#endif
