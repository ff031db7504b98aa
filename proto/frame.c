/* The streaming decoder: frames arrive in chunks of any size, straight
 * into the decoder's buffer (a libuv alloc_cb hands out its free tail),
 * and are decoded in place.
 *
 * Memory follows the bytes that arrived, never the length a header
 * claims: the buffer grows past its first chunk only for a frame whose
 * header has passed the limit, and then only by doubling when what it
 * has received fills it, so a peer that claims 60 MiB and sends 100 bytes
 * costs one chunk. Consumed frames are dropped by moving the leftover
 * bytes of the next frame to the front. */
#include <stdlib.h>
#include <string.h>

#include "proto_internal.h"

#define HEADER 4
#define CHUNK ((size_t)64 << 10)
/* Small frames in a row after which a buffer grown for a big one shrinks:
 * a stream of big frames keeps its buffer instead of reallocating it for
 * each. */
#define SHRINK_AFTER 64

void vowp_decoder_init(vowp_decoder* d, const vowp_limits* limits) {
  memset(d, 0, sizeof(*d));
  if (limits != NULL)
    d->limits = *limits;
  if (d->limits.max_frame == 0)
    d->limits.max_frame = VOWP_DEFAULT_MAX_FRAME;
  if (d->limits.max_objects == 0)
    d->limits.max_objects = VOWP_DEFAULT_MAX_OBJECTS;
  if (d->limits.max_depth == 0 || d->limits.max_depth > VOWP_MAX_DEPTH)
    d->limits.max_depth = VOWP_MAX_DEPTH;
}

void vowp_decoder_destroy(vowp_decoder* d) {
  vow__free(d->buf);
  d->buf = NULL;
  d->cap = d->start = d->end = 0;
}

const vowp_error* vowp_decoder_error(const vowp_decoder* d) {
  return &d->error;
}

static uint32_t frame_len(const char* p) {
  const unsigned char* u = (const unsigned char*)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         u[3];
}

/* Checks the header of the frame at start, if it has arrived. Returns the
 * whole frame's size (header included), 0 when the header is incomplete,
 * or SIZE_MAX after setting the error. */
static size_t check_header(vowp_decoder* d) {
  size_t len;
  if (d->error.code != VOWP_OK)
    return SIZE_MAX;
  if (d->end - d->start < HEADER)
    return 0;
  len = frame_len(d->buf + d->start);
  if (len > d->limits.max_frame) {
    vowp__fail(&d->error, VOWP_E_FRAME_TOO_BIG, d->stream_off + d->start,
               "frame of %zu bytes exceeds the limit of %zu, at byte %llu", len,
               d->limits.max_frame,
               (unsigned long long)(d->stream_off + d->start));
    return SIZE_MAX;
  }
  if (len == 0) {
    vowp__fail(&d->error, VOWP_E_EMPTY_FRAME, d->stream_off + d->start,
               "empty frame at byte %llu",
               (unsigned long long)(d->stream_off + d->start));
    return SIZE_MAX;
  }
  return HEADER + len;
}

void vowp_decoder_buffer(vowp_decoder* d, char** base, size_t* len) {
  size_t frame = check_header(d), want;
  *base = NULL;
  *len = 0;
  if (frame == SIZE_MAX)
    return;
  /* Drop consumed bytes, so the buffer holds the current frame from its
   * start. */
  if (d->start > 0) {
    memmove(d->buf, d->buf + d->start, d->end - d->start);
    d->stream_off += d->start;
    d->end -= d->start;
    d->start = 0;
  }
  want = CHUNK;
  if (frame > CHUNK) {
    /* Double only once the buffer is full, up to the frame. glibc moves
     * big blocks with mremap, so the doublings copy nothing. */
    want = d->cap < CHUNK ? CHUNK : d->cap;
    if (d->end == d->cap)
      want = d->cap * 2 < frame ? d->cap * 2 : frame;
  }
  if (d->cap < want) {
    char* grown = vow__realloc(d->buf, want);
    if (grown == NULL) {
      vowp__fail(&d->error, VOWP_E_NOMEM, d->stream_off,
                 "no memory for a frame of %zu bytes", want);
      return;
    }
    d->buf = grown;
    d->cap = want;
  } else if (d->cap > CHUNK && want == CHUNK && d->end <= CHUNK &&
             d->small_run >= SHRINK_AFTER) {
    /* Big frames have stopped coming: give their memory back. */
    char* shrunk = vow__realloc(d->buf, CHUNK);
    if (shrunk != NULL) {
      d->buf = shrunk;
      d->cap = CHUNK;
    }
  }
  *base = d->buf + d->end;
  *len = d->cap - d->end;
}

void vowp_decoder_commit(vowp_decoder* d, size_t n) {
  d->end += n;
}

vowp_err vowp_decoder_feed(vowp_decoder* d, const void* data, size_t len) {
  const char* p = data;
  while (len > 0) {
    char* base;
    size_t room, n;
    vowp_decoder_buffer(d, &base, &room);
    if (room == 0) {
      if (d->error.code != VOWP_OK)
        return d->error.code;
      /* The buffer holds whole frames not yet taken with next(): a caller
       * feeding faster than it decodes. Grow for the rest. */
      if (d->cap - d->end < len) {
        char* grown = vow__realloc(d->buf, d->end + len);
        if (grown == NULL)
          return vowp__fail(&d->error, VOWP_E_NOMEM, d->stream_off,
                            "no memory to buffer %zu bytes", len);
        d->buf = grown;
        d->cap = d->end + len;
      }
      base = d->buf + d->end;
      room = d->cap - d->end;
    }
    n = room < len ? room : len;
    memcpy(base, p, n);
    vowp_decoder_commit(d, n);
    p += n;
    len -= n;
  }
  return d->error.code;
}

/* The message type a payload claims, for naming it in a pre-scan error:
 * the payload's first bytes are an array header and a small type. */
static const char* claimed_type(const char* payload, size_t len) {
  const unsigned char* p = (const unsigned char*)payload;
  uint32_t n;
  size_t at;
  if (!vowp_array_header(p, len, &n, &at))
    return NULL;
  if (len <= at || p[at] > 0x7f)
    return NULL;
  return strcmp(vowp_type_name(p[at]), "unknown") ? vowp_type_name(p[at])
                                                  : NULL;
}

/* Puts "TYPE: " in front of a pre-scan error's text. */
static void name_type(vowp_error* err, const char* type) {
  size_t prefix, keep;
  if (type == NULL)
    return;
  prefix = strlen(type) + 2;
  keep = strlen(err->text);
  if (keep > sizeof(err->text) - 1 - prefix)
    keep = sizeof(err->text) - 1 - prefix;
  memmove(err->text + prefix, err->text, keep);
  err->text[prefix + keep] = '\0';
  memcpy(err->text, type, prefix - 2);
  err->text[prefix - 2] = ':';
  err->text[prefix - 1] = ' ';
}

int vowp_decoder_next(vowp_decoder* d, vowp_msg* msg) {
  size_t frame = check_header(d);
  uint64_t at;
  const char* payload;
  if (frame == SIZE_MAX)
    return -1;
  if (frame == 0 || d->end - d->start < frame)
    return 0;
  at = d->stream_off + d->start + HEADER;
  payload = d->buf + d->start + HEADER;
  if (vowp_prescan(payload, frame - HEADER, &d->limits, at, &d->error) !=
      VOWP_OK) {
    name_type(&d->error, claimed_type(payload, frame - HEADER));
    return -1;
  }
  if (vowp__decode(payload, frame - HEADER, at, msg, &d->error) != VOWP_OK)
    return -1;
  d->start += frame;
  d->small_run = frame <= CHUNK ? d->small_run + 1 : 0;
  return 1;
}

int vowp_decoder_next_frame(vowp_decoder* d, vowp_slice* payload) {
  size_t frame = check_header(d);
  uint64_t at;
  if (frame == SIZE_MAX)
    return -1;
  if (frame == 0 || d->end - d->start < frame)
    return 0;
  at = d->stream_off + d->start + HEADER;
  payload->data = d->buf + d->start + HEADER;
  payload->len = frame - HEADER;
  if (vowp_prescan(payload->data, payload->len, &d->limits, at, &d->error) !=
      VOWP_OK)
    return -1;
  d->start += frame;
  d->small_run = frame <= CHUNK ? d->small_run + 1 : 0;
  return 1;
}

char* vowp_decoder_steal(vowp_decoder* d) {
  char* buf = d->buf;
  if (buf == NULL || d->start != d->end || d->error.code != VOWP_OK)
    return NULL;
  d->stream_off += d->end;
  d->buf = NULL;
  d->cap = d->start = d->end = 0;
  d->small_run = 0;
  return buf;
}

void vowp_decoder_trim(vowp_decoder* d) {
  size_t pending = d->end - d->start;
  char* shrunk;
  if (d->cap <= CHUNK || pending > CHUNK)
    return;
  memmove(d->buf, d->buf + d->start, pending);
  d->stream_off += d->start;
  d->start = 0;
  d->end = pending;
  shrunk = vow__realloc(d->buf, CHUNK);
  if (shrunk != NULL) {
    d->buf = shrunk;
    d->cap = CHUNK;
  }
}

int vowp_decoder_finish(vowp_decoder* d) {
  size_t have = d->end - d->start;
  size_t frame;
  if (d->error.code != VOWP_OK)
    return -1;
  if (have == 0)
    return 0;
  frame = check_header(d);
  if (frame == SIZE_MAX)
    return -1;
  if (frame == 0)
    vowp__fail(&d->error, VOWP_E_TRUNCATED, d->stream_off + d->end,
               "stream ended inside a frame header: %zu of 4 bytes arrived",
               have);
  else
    vowp__fail(&d->error, VOWP_E_TRUNCATED, d->stream_off + d->end,
               "stream ended inside a frame: %zu of %zu bytes arrived", have,
               frame);
  return -1;
}

size_t vowp_decoder_partial(const vowp_decoder* d) {
  return d->end - d->start;
}

size_t vowp_decoder_capacity(const vowp_decoder* d) {
  return d->cap;
}
