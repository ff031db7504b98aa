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

static size_t chunk_size(const vow_pool_t* pool, size_t n) {
  size_t c = n / ((size_t)vow__pool_slots(pool) * 64);
  if (c < 1)
    c = 1;
  if (c > 4096)
    c = 4096;
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

/* first_index: item 0's seed index, 0 for its run index. */
static vow_promise_t* map_items(vow_pool_t* pool, const char* fn,
                                vow_value_t* items, uint64_t first_index) {
  vow_promise_t** ps = NULL;
  vow_promise_t* all;
  map_run* m = NULL;
  size_t n = 0, chunk, nchunks, lo, hi, i, len = 0;
  const char* bytes = NULL;
  const char* at = NULL;
  bool is_array = items && vow_value_kind(items) == VOW_VALUE_ARRAY;
  if (items == NULL) /* what a constructor returns when memory ran out */
    return vow_fail(vow__pool_ctx(pool), vow__failure_nomem());
  if (!is_array) {
    vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
    vowp_error err;
    bytes = vow_value_bytes(items, &len);
    if (bytes != NULL && vowp_prescan(bytes, len, &lim, 0, &err) == VOWP_OK) {
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
  chunk = chunk_size(pool, n);
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
    msgpack_sbuffer sb;
    msgpack_packer pk;
    vow_value_t* args;
    const char* from = at;
    size_t taken = 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* Up to `chunk` items, and while their bytes stay within a batch's
     * half: a big item goes alone, and a chunk's objects (never more
     * than its bytes) stay far below what one message may hold. */
    for (hi = lo; hi < n && hi - lo < chunk; hi++) {
      size_t ilen;
      if (is_array)
        vow_value_bytes(vow_value_array_at(items, hi), &ilen);
      else
        ilen = vowp_object_size(at);
      if (hi > lo && taken + ilen > VOW__BATCH_BYTES / 2)
        break;
      taken += ilen;
      if (!is_array)
        at += ilen;
    }
    msgpack_pack_array(&pk, hi - lo);
    if (is_array) {
      for (i = lo; i < hi; i++) {
        size_t ilen;
        const void* ib = vow_value_bytes(vow_value_array_at(items, i), &ilen);
        msgpack_sbuffer_write(&sb, ib, ilen);
      }
    } else {
      /* The items of a chunk are contiguous in the encoded array. */
      msgpack_sbuffer_write(&sb, from, (size_t)(at - from));
    }
    args = vow__value_from_encoded(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ps[nchunks++] = vow__pool_submit_task(
        pool, fn, args ? args : vow_value_nil(), 0, m->first + lo,
        first_index ? first_index + lo : 0, (uint16_t)(hi - lo));
  }
  vow_value_release(items);
  all = vow_all(vow__pool_ctx(pool), ps, nchunks);
  vow__free(ps);
  return vow_add_callbacks(all, map_join, map_failed, m);
}

vow_promise_t* vow_pool_map(vow_pool_t* pool, const char* fn,
                            vow_value_t* items) {
  VOW__NOT_NULL(pool, "the pool");
  return map_items(pool, fn, items, 0);
}

vow_promise_t* vow_pool_map_indexed(vow_pool_t* pool, const char* fn,
                                    vow_value_t* items, uint64_t first_index) {
  vow_promise_t* refused;
  VOW__NOT_NULL(pool, "the pool");
  if ((refused = vow__pool_bad_index(pool, first_index, items)) != NULL)
    return refused;
  return map_items(pool, fn, items, first_index);
}
