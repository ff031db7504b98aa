/* Field reads over pre-scanned bytes, and the protocol's error text. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto_internal.h"

vowp_err vowp__fail(vowp_error* err, vowp_err code, uint64_t offset,
                    const char* fmt, ...) {
  va_list ap;
  err->code = code;
  err->offset = offset;
  va_start(ap, fmt);
  vsnprintf(err->text, sizeof(err->text), fmt, ap);
  va_end(ap);
  /* Every message says where, in the stream's bytes. */
  if (strstr(err->text, "at byte") == NULL) {
    size_t used = strlen(err->text);
    snprintf(err->text + used, sizeof(err->text) - used, " at byte %llu",
             (unsigned long long)offset);
  }
  return code;
}

static uint64_t offset_of(const vowp__cursor* c) {
  return c->base + (uint64_t)(c->p - c->start);
}

/* The msgpack family of the object at p, for error text. */
static const char* family(const unsigned char* p) {
  vowp__head h;
  vowp__read_head(p, SIZE_MAX, &h);
  return h.what;
}

static vowp_err wrong(vowp__cursor* c, const char* field, const char* want) {
  return vowp__fail(c->err, VOWP_E_BAD_SHAPE, offset_of(c),
                    "%s: field %s: expected %s, got %s at byte %llu", c->msg,
                    field, want, family(c->p),
                    (unsigned long long)offset_of(c));
}

vowp_err vowp__read_array(vowp__cursor* c, const char* field, size_t* n) {
  uint32_t count;
  size_t head;
  /* Pre-scanned: whatever header is at p fits. */
  if (!vowp_array_header(c->p, 5, &count, &head))
    return wrong(c, field, "array");
  *n = count;
  c->p += head;
  return VOWP_OK;
}

vowp_err vowp__read_uint(vowp__cursor* c, const char* field, uint64_t* out) {
  unsigned char b = c->p[0];
  if (b <= 0x7f) {
    *out = b;
    c->p += 1;
  } else if (b >= 0xcc && b <= 0xcf) {
    int w = 1 << (b - 0xcc);
    *out = vowp_read_be(c->p + 1, w);
    c->p += 1 + w;
  } else {
    return wrong(c, field, "unsigned int");
  }
  return VOWP_OK;
}

vowp_err vowp__read_int(vowp__cursor* c, const char* field, int64_t* out) {
  unsigned char b = c->p[0];
  if (b >= 0xd0 && b <= 0xd3) {
    int w = 1 << (b - 0xd0);
    uint64_t u = vowp_read_be(c->p + 1, w);
    if (w < 8 && (u >> (w * 8 - 1)) & 1)
      u |= ~(uint64_t)0 << (w * 8);
    *out = (int64_t)u;
    c->p += 1 + w;
    return VOWP_OK;
  }
  if (b >= 0xe0) {
    *out = (int8_t)b;
    c->p += 1;
    return VOWP_OK;
  }
  {
    uint64_t u = 0;
    const unsigned char* at = c->p;
    if (vowp__read_uint(c, field, &u) != VOWP_OK) {
      c->p = at;
      return wrong(c, field, "int");
    }
    if (u > INT64_MAX) {
      c->p = at;
      return vowp__fail(c->err, VOWP_E_BAD_SHAPE, offset_of(c),
                        "%s: field %s: %llu does not fit a signed 64-bit "
                        "int, at byte %llu",
                        c->msg, field, (unsigned long long)u,
                        (unsigned long long)offset_of(c));
    }
    *out = (int64_t)u;
  }
  return VOWP_OK;
}

vowp_err vowp__read_double(vowp__cursor* c, const char* field, double* out) {
  unsigned char b = c->p[0];
  if (b == 0xcb) {
    uint64_t u = vowp_read_be(c->p + 1, 8);
    memcpy(out, &u, sizeof(*out));
    c->p += 9;
  } else if (b == 0xca) {
    uint32_t u = (uint32_t)vowp_read_be(c->p + 1, 4);
    float f;
    memcpy(&f, &u, sizeof(f));
    *out = f;
    c->p += 5;
  } else {
    int64_t i;
    if (vowp__read_int(c, field, &i) != VOWP_OK)
      return wrong(c, field, "number");
    *out = (double)i;
  }
  return VOWP_OK;
}

vowp_err vowp__read_str(vowp__cursor* c, const char* field, vowp_slice* out) {
  unsigned char b = c->p[0];
  size_t hdr, n;
  if (b >= 0xa0 && b <= 0xbf) {
    hdr = 1;
    n = b & 0x1f;
  } else if (b >= 0xd9 && b <= 0xdb) {
    int w = 1 << (b - 0xd9);
    hdr = 1 + (size_t)w;
    n = (size_t)vowp_read_be(c->p + 1, w);
  } else {
    return wrong(c, field, "str");
  }
  out->data = (const char*)c->p + hdr;
  out->len = n;
  c->p += hdr + n;
  return VOWP_OK;
}

vowp_err vowp__read_opt_str(vowp__cursor* c, const char* field, vowp_slice* out,
                            bool* present) {
  if (c->p[0] == 0xc0) {
    c->p += 1;
    out->data = NULL;
    out->len = 0;
    *present = false;
    return VOWP_OK;
  }
  *present = true;
  if (vowp__read_str(c, field, out) != VOWP_OK)
    return wrong(c, field, "str or nil");
  return VOWP_OK;
}

/* Size of the header at p and of what follows it directly (payload bytes)
 * and through it (elements). The bytes were validated by the pre-scan. */
static size_t skip_head(const unsigned char* p, uint64_t* items) {
  vowp__head h;
  size_t scalar = vowp_scalar_size[p[0]];
  if (scalar != 0) {
    *items = 0;
    return scalar;
  }
  vowp__read_head(p, SIZE_MAX, &h);
  *items = h.items;
  return h.size + (size_t)h.body;
}

void vowp__read_any(vowp__cursor* c, vowp_slice* out) {
  uint64_t left = 1;
  out->data = (const char*)c->p;
  /* Counting objects still due flattens the nesting: no recursion. */
  while (left > 0) {
    uint64_t items;
    c->p += skip_head(c->p, &items);
    left += items - 1;
  }
  out->len = (size_t)((const char*)c->p - out->data);
}

size_t vowp_object_size(const char* p) {
  vowp_error sink;
  vowp__cursor c;
  vowp_slice out;
  c.p = (const unsigned char*)p;
  c.start = c.p;
  c.end = NULL;
  c.base = 0;
  c.msg = "";
  c.err = &sink;
  vowp__read_any(&c, &out);
  return out.len;
}

bool vowp_str_header(const void* bytes, size_t len, size_t* n, size_t* head) {
  const unsigned char* b = bytes;
  int w;
  if (len >= 1 && b[0] >= 0xa0 && b[0] <= 0xbf) {
    *n = b[0] & 0x1f;
    *head = 1;
    return true;
  }
  if (len < 1 || b[0] < 0xd9 || b[0] > 0xdb)
    return false;
  w = 1 << (b[0] - 0xd9);
  if (len < 1 + (size_t)w)
    return false;
  *n = (size_t)vowp_read_be(b + 1, w);
  *head = 1 + (size_t)w;
  return true;
}

bool vowp_array_header(const void* bytes, size_t len, uint32_t* n,
                       size_t* head) {
  const unsigned char* b = bytes;
  if (len >= 1 && b[0] >= 0x90 && b[0] <= 0x9f) {
    *n = b[0] & 0x0f;
    *head = 1;
    return true;
  }
  if (len >= 3 && b[0] == 0xdc) {
    *n = (uint32_t)b[1] << 8 | b[2];
    *head = 3;
    return true;
  }
  if (len >= 5 && b[0] == 0xdd) {
    *n = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 |
         b[4];
    *head = 5;
    return true;
  }
  return false;
}
