/* JSON to msgpack and back, through jansson: integers stay integers,
 * floats keep every bit (jansson prints 17 significant digits), strings
 * and nesting as they are; msgpack bin and ext become base64 strings or
 * arrays of byte values. */
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proto.h"

/* Packs j, counting what the wire bounds: containers nested, objects. */
typedef struct packing {
  msgpack_packer pk;
  size_t objects;
  unsigned deepest;
} packing;

static int pack_json(packing* p, const json_t* j, unsigned depth) {
  msgpack_packer* pk = &p->pk;
  size_t i;
  const char* key;
  json_t* v;
  p->objects++;
  switch (json_typeof(j)) {
    case JSON_NULL:
      return msgpack_pack_nil(pk);
    case JSON_TRUE:
      return msgpack_pack_true(pk);
    case JSON_FALSE:
      return msgpack_pack_false(pk);
    case JSON_INTEGER:
      return msgpack_pack_int64(pk, (int64_t)json_integer_value(j));
    case JSON_REAL:
      return msgpack_pack_double(pk, json_real_value(j));
    case JSON_STRING:
      msgpack_pack_str(pk, json_string_length(j));
      return msgpack_pack_str_body(pk, json_string_value(j),
                                   json_string_length(j));
    case JSON_ARRAY:
    case JSON_OBJECT:
      break;
  }
  if (++depth > p->deepest)
    p->deepest = depth;
  if (depth > VOWP_ITEM_MAX_DEPTH)
    return -1; /* said by the caller; no deeper */
  if (json_is_array(j)) {
    msgpack_pack_array(pk, json_array_size(j));
    for (i = 0; i < json_array_size(j); i++)
      if (pack_json(p, json_array_get(j, i), depth) != 0)
        return -1;
    return 0;
  }
  msgpack_pack_map(pk, json_object_size(j));
  json_object_foreach((json_t*)j, key, v) {
    p->objects++;
    msgpack_pack_str(pk, strlen(key));
    msgpack_pack_str_body(pk, key, strlen(key));
    if (pack_json(p, v, depth) != 0)
      return -1;
  }
  return 0;
}

int vow_json_to_msgpack(const char* line, size_t len, vbuf* out, char* err,
                        size_t errsize) {
  json_error_t e;
  json_t* j = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  packing p;
  size_t start = out->len;
  int rc;
  if (j == NULL) {
    snprintf(err, errsize, "not valid JSON: %s at column %d", e.text, e.column);
    return -1;
  }
  memset(&p, 0, sizeof(p));
  msgpack_packer_init(&p.pk, out, vow_json_vbuf_write);
  rc = pack_json(&p, j, 0);
  json_decref(j);
  /* What the protocol cannot carry is refused here, with the reason,
   * rather than sent to kill a worker or arrive as something else. */
  if (rc != 0 && p.deepest > VOWP_ITEM_MAX_DEPTH)
    snprintf(err, errsize,
             "JSON nested more than %u levels deep: a task's value may nest "
             "at most %u",
             VOWP_ITEM_MAX_DEPTH, VOWP_ITEM_MAX_DEPTH);
  else if (rc == 0 && p.objects > VOWP_VALUE_MAX_OBJECTS)
    snprintf(err, errsize,
             "JSON of %zu values: a task's value may hold at most %zu",
             p.objects, (size_t)VOWP_VALUE_MAX_OBJECTS);
  else if (rc == 0 && out->len - start > VOWP_DEFAULT_MAX_FRAME - 4096)
    snprintf(
        err, errsize,
        "JSON of %zu bytes as msgpack: a task's value may take at most %zu",
        out->len - start, VOWP_DEFAULT_MAX_FRAME - 4096);
  else if (rc != 0)
    snprintf(err, errsize, "cannot convert to msgpack");
  else
    return 0;
  out->len = start;
  return -1;
}

int vow_json_vbuf_write(void* data, const char* buf, size_t len) {
  vbuf_add(data, buf, len);
  return 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The length of the well-formed UTF-8 sequence at p (at most n bytes
 * there), or 0: overlong forms, surrogates and code points past U+10FFFF
 * are not well formed (RFC 3629). */
static size_t utf8_sequence(const unsigned char* p, size_t n) {
  size_t len, i;
  uint32_t cp;
  if (p[0] < 0xc2 || p[0] > 0xf4)
    return 0;
  len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
  if (len > n)
    return 0;
  cp = p[0] & (0x7f >> len);
  for (i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* Results are written straight from the msgpack object into text, without
 * building a JSON tree first: this is the per-line hot path of vow map.
 * A msgpack str need not be UTF-8 (a C function's bytes, a command's
 * arguments): each byte that is not part of a well-formed sequence is
 * written as U+FFFD, so the text is always valid JSON. */
static void put_string(vbuf* b, const char* p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0, from = 0;
  vbuf_add(b, "\"", 1);
  while (i < n) {
    unsigned char c = (unsigned char)p[i];
    const char* esc = NULL;
    char u[7];
    if (c >= 0x80) {
      size_t len = utf8_sequence((const unsigned char*)p + i, n - i);
      if (len > 0) {
        i += len;
        continue;
      }
      esc = "\\ufffd";
    } else if (c >= 0x20 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    vbuf_add(b, p + from, i - from);
    from = ++i;
    if (esc == NULL)
      switch (c) {
        case '"':
          esc = "\\\"";
          break;
        case '\\':
          esc = "\\\\";
          break;
        case '\n':
          esc = "\\n";
          break;
        case '\r':
          esc = "\\r";
          break;
        case '\t':
          esc = "\\t";
          break;
        case '\b':
          esc = "\\b";
          break;
        case '\f':
          esc = "\\f";
          break;
        default:
          memcpy(u, "\\u00", 4);
          u[4] = hex[c >> 4];
          u[5] = hex[c & 15];
          u[6] = '\0';
          esc = u;
      }
    vbuf_str(b, esc);
  }
  if (n > from) /* p may be NULL for an empty string */
    vbuf_add(b, p + from, n - from);
  vbuf_add(b, "\"", 1);
}

static void put_bytes(vbuf* b, const char* p, size_t n, int mode) {
  size_t i;
  if (mode == VOW_BYTES_ARRAY) {
    char num[8];
    vbuf_add(b, "[", 1);
    for (i = 0; i < n; i++) {
      int len =
          snprintf(num, sizeof(num), "%s%u", i ? "," : "", (unsigned char)p[i]);
      vbuf_add(b, num, (size_t)len);
    }
    vbuf_add(b, "]", 1);
    return;
  }
  vbuf_add(b, "\"", 1);
  for (i = 0; i + 2 < n; i += 3) {
    unsigned v = (unsigned char)p[i] << 16 | (unsigned char)p[i + 1] << 8 |
                 (unsigned char)p[i + 2];
    char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63],
                 b64[v & 63]};
    vbuf_add(b, q, 4);
  }
  if (i < n) {
    unsigned v = (unsigned char)p[i] << 16 |
                 (i + 1 < n ? (unsigned char)p[i + 1] << 8 : 0);
    char q[4] = {b64[v >> 18], b64[(v >> 12) & 63],
                 i + 1 < n ? b64[(v >> 6) & 63] : '=', '='};
    vbuf_add(b, q, 4);
  }
  vbuf_add(b, "\"", 1);
}

static void put_json(vbuf* b, const msgpack_object* o, int mode) {
  char num[40];
  int len;
  uint32_t i;
  switch (o->type) {
    case MSGPACK_OBJECT_NIL:
      vbuf_add(b, "null", 4);
      return;
    case MSGPACK_OBJECT_BOOLEAN:
      vbuf_str(b, o->via.boolean ? "true" : "false");
      return;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      len = snprintf(num, sizeof(num), "%llu", (unsigned long long)o->via.u64);
      vbuf_add(b, num, (size_t)len);
      return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      len = snprintf(num, sizeof(num), "%lld", (long long)o->via.i64);
      vbuf_add(b, num, (size_t)len);
      return;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      if (o->via.f64 != o->via.f64 || o->via.f64 - o->via.f64 != 0) {
        vbuf_add(b, "null", 4); /* JSON has no NaN or infinity */
        return;
      }
      /* 17 significant digits: the double comes back bit for bit. */
      len = snprintf(num, sizeof(num), "%.17g", o->via.f64);
      vbuf_add(b, num, (size_t)len);
      if (strpbrk(num, ".e") == NULL)
        vbuf_add(b, ".0", 2);
      return;
    case MSGPACK_OBJECT_STR:
      put_string(b, o->via.str.ptr, o->via.str.size);
      return;
    case MSGPACK_OBJECT_BIN:
      put_bytes(b, o->via.bin.ptr, o->via.bin.size, mode);
      return;
    case MSGPACK_OBJECT_EXT:
      put_bytes(b, o->via.ext.ptr, o->via.ext.size, mode);
      return;
    case MSGPACK_OBJECT_ARRAY:
      vbuf_add(b, "[", 1);
      for (i = 0; i < o->via.array.size; i++) {
        if (i)
          vbuf_add(b, ",", 1);
        put_json(b, &o->via.array.ptr[i], mode);
      }
      vbuf_add(b, "]", 1);
      return;
    case MSGPACK_OBJECT_MAP:
      vbuf_add(b, "{", 1);
      for (i = 0; i < o->via.map.size; i++) {
        const msgpack_object* k = &o->via.map.ptr[i].key;
        if (i)
          vbuf_add(b, ",", 1);
        if (k->type == MSGPACK_OBJECT_STR) {
          put_string(b, k->via.str.ptr, k->via.str.size);
        } else {
          /* JSON keys are strings: another key is its JSON text. */
          vbuf key = {0};
          put_json(&key, k, mode);
          put_string(b, key.data ? key.data : "", key.len);
          vbuf_free(&key);
        }
        vbuf_add(b, ":", 1);
        put_json(b, &o->via.map.ptr[i].val, mode);
      }
      vbuf_add(b, "}", 1);
      return;
  }
  vbuf_add(b, "null", 4);
}

int vow_msgpack_write_json(vbuf* out, const void* bytes, size_t len,
                           int bytes_mode) {
  /* One zone, cleared and reused for every result (the command is single
   * threaded): no allocation per line for small results. */
  static msgpack_zone* zone;
  msgpack_object obj;
  size_t off = 0;
  int rc = -1;
  if (zone == NULL && (zone = msgpack_zone_new(4096)) == NULL)
    return -1;
  if (msgpack_unpack(bytes, len, &off, zone, &obj) == MSGPACK_UNPACK_SUCCESS) {
    put_json(out, &obj, bytes_mode);
    rc = 0;
  }
  msgpack_zone_clear(zone);
  return rc;
}

char* vow_msgpack_to_json(const void* bytes, size_t len, int bytes_mode) {
  vbuf b = {0};
  if (vow_msgpack_write_json(&b, bytes, len, bytes_mode) != 0) {
    vbuf_free(&b);
    return NULL;
  }
  return b.data ? b.data : strdup("");
}

char* vow_json_error_line(size_t line, const char* message,
                          const char* detail) {
  /* Messages come from workers too: written as any string is, so a byte
   * that is not UTF-8 never makes the line invalid or drops the key. */
  vbuf b = {0};
  char head[48];
  int n = snprintf(head, sizeof(head), "{\"line\":%zu,\"error\":", line);
  vbuf_add(&b, head, (size_t)n);
  put_string(&b, message, strlen(message));
  if (detail != NULL && *detail != '\0') {
    vbuf_str(&b, ",\"detail\":");
    put_string(&b, detail, strlen(detail));
  }
  vbuf_add(&b, "}", 2); /* and the terminating NUL */
  return b.data;
}
