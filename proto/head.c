/* The one table of msgpack's header bytes: what each says, how long its
 * header is, and what follows it. The pre-scan checks frames with it; the
 * reader skips and names objects with it. */
#include "proto_internal.h"

// clang-format off
#define R2(x) x, x
#define R4(x) R2(x), R2(x)
#define R8(x) R4(x), R4(x)
#define R16(x) R8(x), R8(x)
#define R32(x) R16(x), R16(x)
#define R64(x) R32(x), R32(x)
#define R128(x) R64(x), R64(x)
const unsigned char vowp_scalar_size[256] = {
  R128(1),          /* 0x00-0x7f positive fixint */
  R16(0),           /* 0x80-0x8f fixmap */
  R16(0),           /* 0x90-0x9f fixarray */
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                    /* 0xa0-0xbf fixstr: the byte, then 0 to 31 bytes */
  1, 0, 1, 1,       /* 0xc0 nil, 0xc1 reserved, 0xc2-0xc3 bool */
  0, 0, 0,          /* 0xc4-0xc6 bin */
  0, 0, 0,          /* 0xc7-0xc9 ext */
  5, 9,             /* 0xca-0xcb float 32, 64 */
  2, 3, 5, 9,       /* 0xcc-0xcf uint 8-64 */
  2, 3, 5, 9,       /* 0xd0-0xd3 int 8-64 */
  3, 4, 6, 10, 18,  /* 0xd4-0xd8 fixext 1-16: the byte, type, data */
  0, 0, 0,          /* 0xd9-0xdb str */
  0, 0,             /* 0xdc-0xdd array */
  0, 0,             /* 0xde-0xdf map */
  R32(1),           /* 0xe0-0xff negative fixint */
};
// clang-format on

bool vowp__read_head(const unsigned char* p, size_t left, vowp__head* h) {
  unsigned char b = p[0];
  int w = 0;
  h->size = 1;
  h->body = 0;
  h->items = 0;
  h->container = false;
  h->what = "int";
  if (b <= 0x7f || b >= 0xe0)
    return true;
  if (b >= 0xc0 && b <= 0xc3) {
    h->what = b == 0xc0 ? "nil" : b == 0xc1 ? "reserved byte 0xc1" : "bool";
    return b != 0xc1;
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
      h->what = b == 0xca ? "float" : "int";
      h->size = 5;
      return left >= h->size;
    case 0xcb:
    case 0xcf:
    case 0xd3: /* float64, uint64, int64 */
      h->what = b == 0xcb ? "float" : "int";
      h->size = 9;
      return left >= h->size;
    case 0xcc:
    case 0xd0: /* uint8, int8 */
      h->size = 2;
      return left >= h->size;
    case 0xcd:
    case 0xd1: /* uint16, int16 */
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
