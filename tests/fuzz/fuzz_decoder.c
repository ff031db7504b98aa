/* libFuzzer target for the protocol decoder.
 *
 * The first input byte picks how the rest is cut into chunks and which
 * limits apply; the rest is the byte stream. Every message decoded is
 * walked to its last item, and every argument and result is unpacked by
 * msgpack-c: the pre-scan promises that this is safe and never runs out of
 * msgpack-c's nesting stack. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static void unpack_slice(vowp_slice s) {
  msgpack_unpacked un;
  size_t off = 0;
  msgpack_unpacked_init(&un);
  if (msgpack_unpack_next(&un, s.data, s.len, &off) != MSGPACK_UNPACK_SUCCESS ||
      off != s.len)
    abort(); /* the pre-scan let through what msgpack-c cannot read */
  msgpack_unpacked_destroy(&un);
}

static void walk(vowp_msg* m) {
  vowp_slice s;
  vowp_task t;
  vowp_result r;
  size_t n = 0;
  switch (m->type) {
    case VOWP_HELLO:
      while (vowp_next_function(&m->u.hello.functions, &s))
        n++;
      if (n != m->u.hello.n)
        abort();
      break;
    case VOWP_TASKS:
      while (vowp_next_task(&m->u.tasks.items, &t)) {
        unpack_slice(t.args);
        n++;
      }
      if (n != m->u.tasks.n)
        abort();
      break;
    case VOWP_RESULTS:
      while (vowp_next_result(&m->u.results.items, &r)) {
        unpack_slice(r.value);
        n++;
      }
      if (n != m->u.results.n)
        abort();
      break;
    case VOWP_MAPS: {
      vowp_chunk k;
      while (vowp_next_chunk(&m->u.maps.items, &k)) {
        unpack_slice(k.items);
        n++;
      }
      if (n != m->u.maps.n)
        abort();
      break;
    }
    default:
      break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vowp_decoder d;
  vowp_limits limits = {0, 0, 0};
  vowp_msg m;
  size_t chunk, pos = 1;
  if (size < 1)
    return 0;
  chunk = (size_t)(data[0] & 0x3f) + 1;
  if (data[0] & 0x40) { /* tight limits, to reach their errors */
    limits.max_frame = 256;
    limits.max_objects = 16;
    limits.max_depth = 4;
  }
  vowp_decoder_init(&d, &limits);
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    int rc;
    if (data[0] & 0x80) { /* the libuv path: read into the decoder */
      char* base;
      size_t room;
      vowp_decoder_buffer(&d, &base, &room);
      if (room == 0)
        break;
      if (n > room)
        n = room;
      memcpy(base, data + pos, n);
      vowp_decoder_commit(&d, n);
    } else if (vowp_decoder_feed(&d, data + pos, n) != VOWP_OK) {
      break;
    }
    pos += n;
    while ((rc = vowp_decoder_next(&d, &m)) == 1)
      walk(&m);
    if (rc < 0)
      break;
  }
  vowp_decoder_finish(&d);
  vowp_decoder_destroy(&d);
  return 0;
}
