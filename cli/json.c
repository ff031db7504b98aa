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

static int pack_json(msgpack_packer* pk, const json_t* j) {
  size_t i;
  const char* key;
  json_t* v;
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
      msgpack_pack_array(pk, json_array_size(j));
      for (i = 0; i < json_array_size(j); i++)
        if (pack_json(pk, json_array_get(j, i)) != 0)
          return -1;
      return 0;
    case JSON_OBJECT:
      msgpack_pack_map(pk, json_object_size(j));
      json_object_foreach((json_t*)j, key, v) {
        msgpack_pack_str(pk, strlen(key));
        msgpack_pack_str_body(pk, key, strlen(key));
        if (pack_json(pk, v) != 0)
          return -1;
      }
      return 0;
  }
  return -1;
}

int vow_json_to_msgpack(const char* line, size_t len, vbuf* out, char* err,
                        size_t errsize) {
  json_error_t e;
  json_t* j = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  msgpack_packer pk;
  int rc;
  if (j == NULL) {
    snprintf(err, errsize, "not valid JSON: %s at column %d", e.text, e.column);
    return -1;
  }
  msgpack_packer_init(&pk, out, vow_json_vbuf_write);
  rc = pack_json(&pk, j);
  json_decref(j);
  if (rc != 0)
    snprintf(err, errsize, "cannot convert to msgpack");
  return rc;
}

int vow_json_vbuf_write(void* data, const char* buf, size_t len) {
  vbuf_add(data, buf, len);
  return 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t* bytes_json(const char* p, size_t n, int mode) {
  if (mode == VOW_BYTES_ARRAY) {
    json_t* a = json_array();
    size_t i;
    for (i = 0; i < n; i++)
      json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
  } else {
    vbuf s = {0};
    size_t i;
    json_t* r;
    for (i = 0; i + 2 < n; i += 3) {
      unsigned v = (unsigned char)p[i] << 16 | (unsigned char)p[i + 1] << 8 |
                   (unsigned char)p[i + 2];
      char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63],
                   b64[v & 63]};
      vbuf_add(&s, q, 4);
    }
    if (i < n) {
      unsigned v = (unsigned char)p[i] << 16 |
                   (i + 1 < n ? (unsigned char)p[i + 1] << 8 : 0);
      char q[4] = {b64[v >> 18], b64[(v >> 12) & 63],
                   i + 1 < n ? b64[(v >> 6) & 63] : '=', '='};
      vbuf_add(&s, q, 4);
    }
    r = json_stringn(s.data ? s.data : "", s.len);
    vbuf_free(&s);
    return r;
  }
}

static json_t* object_json(const msgpack_object* o, int mode) {
  uint32_t i;
  switch (o->type) {
    case MSGPACK_OBJECT_NIL:
      return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
      return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      if (o->via.u64 > (uint64_t)INT64_MAX)
        return json_real((double)o->via.u64);
      return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
      return json_stringn_nocheck(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
      return bytes_json(o->via.bin.ptr, o->via.bin.size, mode);
    case MSGPACK_OBJECT_EXT:
      return bytes_json(o->via.ext.ptr, o->via.ext.size, mode);
    case MSGPACK_OBJECT_ARRAY: {
      json_t* a = json_array();
      for (i = 0; i < o->via.array.size; i++)
        json_array_append_new(a, object_json(&o->via.array.ptr[i], mode));
      return a;
    }
    case MSGPACK_OBJECT_MAP: {
      json_t* m = json_object();
      for (i = 0; i < o->via.map.size; i++) {
        const msgpack_object* k = &o->via.map.ptr[i].key;
        json_t* v = object_json(&o->via.map.ptr[i].val, mode);
        if (k->type == MSGPACK_OBJECT_STR) {
          vbuf key = {0};
          vbuf_add(&key, k->via.str.ptr, k->via.str.size);
          json_object_set_new(m, key.data ? key.data : "", v);
          vbuf_free(&key);
        } else {
          /* JSON keys are strings: a non-string key is written as its
           * JSON text. */
          json_t* kj = object_json(k, mode);
          char* text = json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT);
          json_object_set_new(m, text ? text : "", v);
          free(text);
          json_decref(kj);
        }
      }
      return m;
    }
  }
  return json_null();
}

char* vow_msgpack_to_json(const void* bytes, size_t len, int bytes_mode) {
  msgpack_unpacked un;
  size_t off = 0;
  char* text = NULL;
  msgpack_unpacked_init(&un);
  if (msgpack_unpack_next(&un, bytes, len, &off) == MSGPACK_UNPACK_SUCCESS) {
    json_t* j = object_json(&un.data, bytes_mode);
    text =
        json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
  }
  msgpack_unpacked_destroy(&un);
  return text;
}

char* vow_json_error_line(size_t line, const char* message) {
  json_t* o = json_object();
  char* text;
  json_object_set_new(o, "line", json_integer((json_int_t)line));
  json_object_set_new(o, "error", json_string(message));
  text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  return text;
}
