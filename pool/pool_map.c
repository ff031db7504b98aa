/* vow_pool_map: many items of one function, sent in chunks and joined
 * into one array of results. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "pool_submit.h"
#include "proto.h"

/* A map runs in chunks: one task applies fn to a run of items, so a
 * million tiny items cost a few hundred messages, not a million. Chunks
 * are small enough (about 64 per worker) to share the work evenly, and at
 * most 4096 items. Item k of the map gets the seed of run index first + k,
 * exactly as if each had been submitted alone. */
typedef struct map_run {
  vow_pool_t* pool;
  uint64_t first; /* run index of item 0 */
  size_t n;
} map_run;

#define MAX_CHUNK 4096

static size_t chunk_size(const vow_pool_t* pool, size_t n) {
  size_t c = n / ((size_t)vow__pool_slots(pool) * 64);
  if (c < 1)
    c = 1;
  if (c > MAX_CHUNK)
    c = MAX_CHUNK;
  return c;
}

/* Joins the chunks' result arrays into one array of n results, in one
 * value: one allocation and one copy of the bytes. */
static vow_outcome_t map_join(vow_value_t* chunks, void* data) {
  map_run* m = data;
  size_t i, total = 5, at = 0, nchunks = vow_value_array_len(chunks);
  unsigned char* out;
  vow_value_t* joined;
  for (i = 0; i < nchunks; i++) {
    size_t len;
    vow_value_bytes(vow_value_array_at(chunks, i), &len);
    total += len;
  }
  joined = vow__value_alloc_encoded(total, &out);
  if (joined == NULL) {
    vow_value_release(chunks);
    vow__free(m);
    return vow_err(NULL);
  }
  vowp_write_array32(out, (uint32_t)m->n);
  at = 5;
  for (i = 0; i < nchunks; i++) {
    size_t len, head = 0;
    uint32_t count;
    const unsigned char* b =
        vow_value_bytes(vow_value_array_at(chunks, i), &len);
    /* checked an array of its count when it arrived: drop its header */
    vowp_array_header(b, len, &count, &head);
    memcpy(out + at, b + head, len - head);
    at += len - head;
  }
  vow__value_set_len(joined, at);
  vow_value_release(chunks);
  vow__free(m);
  return vow_ok(joined);
}

/* Renames "item k of the chunk" to the item's index in the map. */
static vow_outcome_t map_failed(vow_failure_t* f, void* data) {
  map_run* m = data;
  const vow_origin_t* o = vow_failure_origin(f);
  unsigned k;
  int used = 0;
  const char* msg = vow_failure_message(f);
  uint64_t first = m->first;
  vow__free(m);
  if (o->task_id >= first &&
      sscanf(msg, "item %u of the chunk: %n", &k, &used) == 1 && used > 0) {
    vow_failure_t* g = vow_failure_new(
        vow_failure_kind(f), vow_failure_code(f), "map item %llu: %s",
        (unsigned long long)(o->task_id - first + k), msg + used);
    vow_failure_set_origin(g, o);
    if (vow_failure_detail(f))
      vow_failure_set_detail(g, vow_failure_detail(f));
    vow_failure_release(f);
    return vow_err(g);
  }
  return vow_err(f);
}

/* A chunk holds up to `chunk` items, and only while their bytes stay
 * within a batch's half: a big item goes alone, and a chunk's objects
 * (never more than its bytes) stay far below what one message may hold.
 * *flat: whether every item is a scalar. */

/* The chunk of the items of an array value from item lo; *hi: where the
 * next chunk starts. */
static vow_value_t* chunk_of_values(vow_value_t* items, size_t lo, size_t chunk,
                                    size_t* hi, bool* flat) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  vow_value_t* args;
  size_t i, n = vow_value_array_len(items), taken = 0;
  for (i = lo; i < n && i - lo < chunk; i++) {
    size_t ilen;
    const char* item = vow_value_bytes(vow_value_array_at(items, i), &ilen);
    *flat = *flat && vowp_scalar_size[(unsigned char)item[0]] == ilen;
    if (i > lo && taken + ilen > VOW__BATCH_BYTES / 2)
      break;
    taken += ilen;
  }
  *hi = i;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, *hi - lo);
  for (i = lo; i < *hi; i++) {
    size_t ilen;
    const void* ib = vow_value_bytes(vow_value_array_at(items, i), &ilen);
    msgpack_sbuffer_write(&sb, ib, ilen);
  }
  args = vow__value_from_encoded(sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return args;
}

/* The chunk of the encoded items at *at, `left` of them still to go: one
 * walk to find where it ends (a scalar's size is its first byte's), one
 * copy into the task's value. Advances *at; *count: the chunk's items. */
static vow_value_t* chunk_of_bytes(const char** at, size_t left, size_t chunk,
                                   bool* flat, size_t* count) {
  const unsigned char* from = (const unsigned char*)*at;
  const unsigned char* q = from;
  size_t k, max = left < chunk ? left : chunk, taken = 0, head;
  unsigned char* out;
  vow_value_t* args;
  for (k = 0; k < max; k++) {
    size_t ilen = vowp_scalar_size[q[0]];
    if (ilen == 0) {
      ilen = vowp_object_size((const char*)q);
      *flat = false;
    }
    if (k > 0 && taken + ilen > VOW__BATCH_BYTES / 2)
      break;
    taken += ilen;
    q += ilen;
  }
  *count = k;
  *at = (const char*)q;
  args = vow__value_alloc_encoded(5 + taken, &out);
  if (args == NULL)
    return NULL;
  if (k < 16) {
    out[0] = (unsigned char)(0x90 | k);
    head = 1;
  } else if (k <= 0xffff) {
    out[0] = 0xdc;
    out[1] = (unsigned char)(k >> 8);
    out[2] = (unsigned char)k;
    head = 3;
  } else {
    vowp_write_array32(out, (uint32_t)k);
    head = 5;
  }
  memcpy(out + head, from, taken);
  vow__value_set_len(args, head + taken);
  return args;
}

/* first_index: item 0's seed index, 0 for its run index; chunk: items
 * per task, 0 for chunk_size's. */
static vow_promise_t* map_items(vow_pool_t* pool, const char* fn,
                                vow_value_t* items, uint64_t first_index,
                                size_t chunk) {
  vow_promise_t** ps = NULL;
  vow_promise_t* all;
  map_run* m = NULL;
  size_t n = 0, nchunks, lo, hi = 0, i, len = 0;
  const char* bytes = NULL;
  const char* at = NULL;
  bool is_array = items && vow_value_kind(items) == VOW_VALUE_ARRAY;
  if (items == NULL) /* what a constructor returns when memory ran out */
    return vow_fail(vow__pool_ctx(pool), vow__failure_nomem());
  if (!is_array) {
    /* A value's bytes were checked when it was made (one object, nesting
     * within VOWP_MAX_DEPTH): only its header is read here. */
    bytes = vow_value_bytes(items, &len);
    if (bytes != NULL) {
      uint32_t count;
      size_t head;
      if (vowp_array_header(bytes, len, &count, &head)) {
        n = count;
        at = bytes + head;
      }
    }
  } else if (is_array) {
    n = vow_value_array_len(items);
    for (i = 0; i < n; i++)
      if (vow_value_bytes(vow_value_array_at(items, i), NULL) == NULL)
        break;
    if (i < n)
      is_array = false, n = 0, at = NULL;
    else
      at = "";
  }
  if (at == NULL) {
    vow_value_release(items);
    return vow_fail(vow__pool_ctx(pool),
                    vow_failure_new(VOW_FAIL_BAD_INPUT, UV_EINVAL,
                                    "vow_pool_map needs an array of msgpack "
                                    "items"));
  }
  if (chunk == 0)
    chunk = chunk_size(pool, n);
  else if (chunk > MAX_CHUNK)
    chunk = MAX_CHUNK;
  /* At most one chunk an item: ps has room for every chunk. */
  ps = vow__malloc((n ? n : 1) * sizeof(*ps));
  m = vow__malloc(sizeof(*m));
  if (ps == NULL || m == NULL) {
    vow__free(ps);
    vow__free(m);
    vow_value_release(items);
    return vow_fail(vow__pool_ctx(pool), vow__failure_nomem());
  }
  m->pool = pool;
  m->first = vow__pool_take_ids(pool, n); /* the items' run indexes */
  m->n = n;
  nchunks = 0;
  for (lo = 0; lo < n; lo = hi) {
    vow_value_t* args;
    bool flat = true; /* every item a scalar */
    if (is_array)
      args = chunk_of_values(items, lo, chunk, &hi, &flat);
    else
      args = chunk_of_bytes(&at, n - lo, chunk, &flat, &hi), hi += lo;
    ps[nchunks++] =
        args == NULL ? vow_fail(vow__pool_ctx(pool), vow__failure_nomem())
                     : vow__pool_submit_task(pool, fn, args, 0, m->first + lo,
                                             first_index ? first_index + lo : 0,
                                             (uint16_t)(hi - lo), flat);
  }
  vow_value_release(items);
  all = vow_all(vow__pool_ctx(pool), ps, nchunks);
  vow__free(ps);
  return vow_add_callbacks(all, map_join, map_failed, m);
}

vow_promise_t* vow_pool_map(vow_pool_t* pool, const char* fn,
                            vow_value_t* items) {
  VOW__NOT_NULL(pool, "the pool");
  return map_items(pool, fn, items, 0, 0);
}

vow_promise_t* vow_pool_map_chunked(vow_pool_t* pool, const char* fn,
                                    vow_value_t* items, size_t chunk) {
  VOW__NOT_NULL(pool, "the pool");
  return map_items(pool, fn, items, 0, chunk);
}

vow_promise_t* vow_pool_map_indexed(vow_pool_t* pool, const char* fn,
                                    vow_value_t* items, uint64_t first_index) {
  vow_promise_t* refused;
  VOW__NOT_NULL(pool, "the pool");
  if ((refused = vow__pool_bad_index(pool, first_index, items)) != NULL)
    return refused;
  return map_items(pool, fn, items, first_index, 0);
}
