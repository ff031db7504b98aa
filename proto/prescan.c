/* The pre-scan: walks one frame's msgpack bytes without allocating and
 * proves them safe to read. Every container's count and every str, bin and
 * ext length is bounded by the bytes still left (each element needs at
 * least one byte), objects are counted and nesting is capped, so neither
 * the field reader nor a later msgpack-c unpack of an argument can be made
 * to allocate more than the frame's size warrants. Iterative: a stack of
 * remaining counts, at most VOWP_MAX_DEPTH + 1 deep. */
#include <stdio.h>

#include "internal.h"

/* What one header says. */
typedef struct head {
  size_t size;    /* header bytes, including any length field */
  uint64_t body;  /* payload bytes that follow (str, bin, ext) */
  uint64_t items; /* elements that follow (array: n; map: 2n) */
  bool container;
  const char* what; /* for messages */
} head;

/* Reads the header at p (with `left` bytes available). Returns false when
 * the header itself does not fit or the byte is reserved; *h->what says
 * which. */
static bool read_head(const unsigned char* p, size_t left, head* h) {
  unsigned char b = p[0];
  int w = 0;
  h->size = 1;
  h->body = 0;
  h->items = 0;
  h->container = false;
  h->what = "scalar";
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3)) {
    if (b == 0xc1) {
      h->what = "reserved byte 0xc1";
      return false;
    }
    return true;
  }
  if (b >= 0xa0 && b <= 0xbf) {
    h->what = "str";
    h->body = b & 0x1f;
    return true;
  }
  if (b >= 0x90 && b <= 0x9f) {
    h->what = "array";
    h->items = b & 0x0f;
    h->container = true;
    return true;
  }
  if (b >= 0x80 && b <= 0x8f) {
    h->what = "map";
    h->items = 2u * (b & 0x0f);
    h->container = true;
    return true;
  }
  switch (b) {
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32 */
      w = 1 << (b - 0xc4);
      h->what = "bin";
      break;
    case 0xd9:
    case 0xda:
    case 0xdb: /* str 8/16/32 */
      w = 1 << (b - 0xd9);
      h->what = "str";
      break;
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32: length, then type */
      w = 1 << (b - 0xc7);
      h->what = "ext";
      break;
    case 0xca:
    case 0xce:
    case 0xd2: /* float32, uint32, int32 */
      h->what = "number";
      h->size = 5;
      return left >= h->size;
    case 0xcb:
    case 0xcf:
    case 0xd3: /* float64, uint64, int64 */
      h->what = "number";
      h->size = 9;
      return left >= h->size;
    case 0xcc:
    case 0xd0: /* uint8, int8 */
      h->what = "number";
      h->size = 2;
      return left >= h->size;
    case 0xcd:
    case 0xd1: /* uint16, int16 */
      h->what = "number";
      h->size = 3;
      return left >= h->size;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext */
      h->what = "ext";
      h->size = 2;
      h->body = (uint64_t)1 << (b - 0xd4);
      return left >= 2;
    case 0xdc:
    case 0xdd: /* array 16/32 */
      w = b == 0xdc ? 2 : 4;
      h->what = "array";
      h->container = true;
      break;
    case 0xde:
    case 0xdf: /* map 16/32 */
      w = b == 0xde ? 2 : 4;
      h->what = "map";
      h->container = true;
      break;
    default:
      return true; /* every byte value is covered above */
  }
  h->size = (size_t)1 + (size_t)w + (b >= 0xc7 && b <= 0xc9 ? 1 : 0);
  if (left < h->size)
    return false;
  if (h->container) {
    h->items = vowp_read_be(p + 1, w);
    if (b == 0xde || b == 0xdf)
      h->items *= 2;
  } else {
    h->body = vowp_read_be(p + 1, w);
  }
  return true;
}

vowp_err vowp_prescan(const char* buf, size_t len, const vowp_limits* lim,
                      uint64_t base, vowp_error* err) {
  const unsigned char* p = (const unsigned char*)buf;
  uint64_t remaining[VOWP_MAX_DEPTH + 2];
  unsigned depth = 0;
  size_t pos = 0, objects = 0;
  remaining[0] = 1; /* exactly one top-level object */
  for (;;) {
    head h;
    size_t left;
    while (remaining[depth] == 0) {
      if (depth == 0)
        goto done;
      depth--;
    }
    remaining[depth]--;
    left = len - pos;
    if (left == 0)
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos,
                        "frame ends where another object is due "
                        "(%llu more)",
                        (unsigned long long)remaining[depth] + 1);
    if (++objects > lim->max_objects)
      return vowp__fail(err, VOWP_E_TOO_MANY_OBJECTS, base + pos,
                        "more than %zu objects in one frame", lim->max_objects);
    if (!read_head(p + pos, left, &h))
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos,
                        "%s header does not fit in the %zu bytes left", h.what,
                        left);
    pos += h.size;
    left = len - pos;
    if (h.body > left)
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos - h.size,
                        "%s of %llu bytes exceeds the %zu bytes left", h.what,
                        (unsigned long long)h.body, left);
    pos += (size_t)h.body;
    if (!h.container)
      continue;
    /* Each element takes at least one byte, so a count above the bytes
     * left is a lie, caught here before anything trusts it. */
    if (h.items > left)
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos - h.size,
                        "%s of %llu elements exceeds the %zu bytes left",
                        h.what, (unsigned long long)h.items, left);
    if (depth + 1 > lim->max_depth)
      return vowp__fail(err, VOWP_E_TOO_DEEP, base + pos - h.size,
                        "nesting too deep: more than %u levels",
                        lim->max_depth);
    remaining[++depth] = h.items;
  }
done:
  if (pos != len)
    return vowp__fail(err, VOWP_E_TRAILING, base + pos,
                      "%zu trailing bytes after the message", len - pos);
  return VOWP_OK;
}
