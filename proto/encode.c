/* The encoder: frames appended to one growing buffer. msgpack-c's packer
 * writes straight into it, so an argument packed by the caller is never
 * copied again before the write. */
#include <stdlib.h>
#include <string.h>

#include "proto_internal.h"

#define HEADER 4

static int append(void* data, const char* buf, size_t len) {
  vowp_encoder* e = data;
  if (e->failed)
    return -1;
  if (e->cap - e->len < len) {
    size_t cap = e->cap ? e->cap : 256;
    char* grown;
    while (cap - e->len < len)
      cap *= 2;
    grown = vow__realloc(e->data, cap);
    if (grown == NULL) {
      e->failed = true;
      return -1;
    }
    e->data = grown;
    e->cap = cap;
  }
  memcpy(e->data + e->len, buf, len);
  e->len += len;
  return 0;
}

void vowp_encoder_init(vowp_encoder* e) {
  memset(e, 0, sizeof(*e));
  msgpack_packer_init(&e->pk, e, append);
}

void vowp_encoder_destroy(vowp_encoder* e) {
  vow__free(e->data);
  e->data = NULL;
  e->len = e->cap = 0;
}

void vowp_encoder_trim(vowp_encoder* e, size_t keep) {
  if (e->len != 0 || e->cap <= keep)
    return;
  vow__free(e->data);
  e->data = NULL;
  e->cap = 0;
}

void vowp_encoder_reset(vowp_encoder* e) {
  e->len = 0;
  e->failed = false;
}

const char* vowp_encoder_data(const vowp_encoder* e, size_t* len) {
  *len = e->len;
  return e->data;
}

char* vowp_encoder_release(vowp_encoder* e, size_t* len) {
  char* data = e->data;
  *len = e->len;
  e->data = NULL;
  e->len = e->cap = 0;
  e->failed = false;
  return data;
}

/* Opens a frame: a length placeholder, then the message array header. */
static void frame_open(vowp_encoder* e, int type, size_t elements) {
  static const char zero[HEADER] = {0};
  e->frame_start = e->len;
  append(e, zero, HEADER);
  msgpack_pack_array(&e->pk, elements);
  msgpack_pack_uint8(&e->pk, (uint8_t)type);
}

/* Writes the frame's length into its placeholder. */
static vowp_err frame_close(vowp_encoder* e) {
  size_t len;
  unsigned char* h;
  if (e->failed) {
    e->len = e->frame_start; /* drop the partial frame */
    return VOWP_E_NOMEM;
  }
  len = e->len - e->frame_start - HEADER;
  h = (unsigned char*)e->data + e->frame_start;
  vowp_write_be32(h, (uint32_t)len);
  return VOWP_OK;
}

static void pack_str(vowp_encoder* e, const char* s) {
  size_t n = s ? strlen(s) : 0;
  msgpack_pack_str(&e->pk, n);
  msgpack_pack_str_body(&e->pk, s, n);
}

vowp_err vowp_encode_hello(vowp_encoder* e, uint32_t version, int64_t pid,
                           const char* const* functions, size_t n) {
  size_t i;
  frame_open(e, VOWP_HELLO, 4);
  msgpack_pack_uint32(&e->pk, version);
  msgpack_pack_int64(&e->pk, pid);
  msgpack_pack_array(&e->pk, n);
  for (i = 0; i < n; i++)
    pack_str(e, functions[i]);
  return frame_close(e);
}

vowp_err vowp_encode_error(vowp_encoder* e, uint64_t id, uint32_t kind,
                           int64_t code, const char* message,
                           const char* detail) {
  frame_open(e, VOWP_ERROR, 6);
  msgpack_pack_uint64(&e->pk, id);
  msgpack_pack_uint32(&e->pk, kind);
  msgpack_pack_int64(&e->pk, code);
  pack_str(e, message);
  if (detail)
    pack_str(e, detail);
  else
    msgpack_pack_nil(&e->pk);
  return frame_close(e);
}

vowp_err vowp_encode_progress(vowp_encoder* e, uint64_t id, double fraction,
                              const char* text) {
  frame_open(e, VOWP_PROGRESS, 4);
  msgpack_pack_uint64(&e->pk, id);
  msgpack_pack_double(&e->pk, fraction);
  pack_str(e, text);
  return frame_close(e);
}

static vowp_err encode_id_message(vowp_encoder* e, int type, uint64_t id) {
  frame_open(e, type, 2);
  msgpack_pack_uint64(&e->pk, id);
  return frame_close(e);
}

vowp_err vowp_encode_cancel(vowp_encoder* e, uint64_t id) {
  return encode_id_message(e, VOWP_CANCEL, id);
}
vowp_err vowp_encode_ping(vowp_encoder* e, uint64_t token) {
  return encode_id_message(e, VOWP_PING, token);
}
vowp_err vowp_encode_pong(vowp_encoder* e, uint64_t token) {
  return encode_id_message(e, VOWP_PONG, token);
}

vowp_err vowp_encode_shutdown(vowp_encoder* e) {
  frame_open(e, VOWP_SHUTDOWN, 1);
  return frame_close(e);
}

void vowp_tasks_begin(vowp_encoder* e, size_t n) {
  frame_open(e, VOWP_TASKS, 2);
  msgpack_pack_array(&e->pk, n);
}

msgpack_packer* vowp_task_open(vowp_encoder* e, uint64_t id, const char* fn) {
  msgpack_pack_array(&e->pk, 4);
  msgpack_pack_uint64(&e->pk, id);
  pack_str(e, fn);
  return &e->pk;
}

void vowp_task_close(vowp_encoder* e, uint64_t seed) {
  msgpack_pack_uint64(&e->pk, seed);
}

void vowp_task_raw(vowp_encoder* e, uint64_t id, const char* fn,
                   const void* args, size_t args_len, uint64_t seed) {
  vowp_task_open(e, id, fn);
  append(e, args, args_len);
  vowp_task_close(e, seed);
}

void vowp_results_begin(vowp_encoder* e, size_t n) {
  frame_open(e, VOWP_RESULTS, 2);
  msgpack_pack_array(&e->pk, n);
}

msgpack_packer* vowp_result_open(vowp_encoder* e, uint64_t id) {
  e->count++;
  msgpack_pack_array(&e->pk, 2);
  msgpack_pack_uint64(&e->pk, id);
  return &e->pk;
}

void vowp_result_raw(vowp_encoder* e, uint64_t id, const void* value,
                     size_t value_len) {
  vowp_result_open(e, id);
  append(e, value, value_len);
}

vowp_err vowp_batch_end(vowp_encoder* e) {
  return frame_close(e);
}

void vowp_results_begin_open(vowp_encoder* e) {
  unsigned char array32[5];
  vowp_write_array32(array32, 0); /* its count is written at the end */
  frame_open(e, VOWP_RESULTS, 2);
  e->count_at = e->len;
  e->count = 0;
  append(e, (const char*)array32, sizeof(array32));
}

size_t vowp_open_batch_count(const vowp_encoder* e) {
  return e->count_at ? e->count : 0;
}

vowp_err vowp_open_batch_end(vowp_encoder* e) {
  size_t n = e->count;
  if (e->count_at == 0)
    return VOWP_OK;
  if (n == 0 && !e->failed) {
    e->len = e->frame_start; /* nothing in it: drop the frame */
    e->count_at = 0;
    return VOWP_OK;
  }
  if (!e->failed) {
    vowp_write_array32((unsigned char*)e->data + e->count_at, (uint32_t)n);
  }
  e->count_at = 0;
  e->count = 0;
  return frame_close(e);
}

void vowp_maps_begin(vowp_encoder* e, size_t n) {
  frame_open(e, VOWP_MAPS, 2);
  msgpack_pack_array(&e->pk, n);
}

void vowp_chunk_raw(vowp_encoder* e, uint64_t id, const char* fn,
                    const void* items, size_t items_len, uint64_t run_seed,
                    uint64_t first) {
  msgpack_pack_array(&e->pk, 5);
  msgpack_pack_uint64(&e->pk, id);
  pack_str(e, fn);
  append(e, items, items_len);
  msgpack_pack_uint64(&e->pk, run_seed);
  msgpack_pack_uint64(&e->pk, first);
}

uint64_t vowp_task_seed(uint64_t run_seed, uint64_t index) {
  uint64_t z = run_seed + (index + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
