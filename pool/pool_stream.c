/* vow_pool_stream: results as they come, with a bounded window of tasks
 * in flight. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "pool_submit.h"
#include "proto.h"

/* The elements of items as separate values: an array value's own items,
 * or each element of an encoded msgpack array. Returns the count, or
 * (size_t)-1 when items is neither. *out is malloc'd; each is a new
 * reference. */
static size_t split_items(vow_value_t* items, vow_value_t*** out) {
  size_t n, i;
  *out = NULL;
  if (items == NULL)
    return (size_t)-1;
  if (vow_value_kind(items) == VOW_VALUE_ARRAY) {
    n = vow_value_array_len(items);
    *out = vow__malloc((n ? n : 1) * sizeof(vow_value_t*));
    if (*out == NULL)
      return (size_t)-1;
    for (i = 0; i < n; i++)
      (*out)[i] = vow_value_ref(vow_value_array_at(items, i));
    return n;
  }
  {
    size_t len;
    const char* bytes = vow_value_bytes(items, &len);
    vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
    vowp_error err;
    msgpack_unpacked un;
    size_t off = 0;
    if (bytes == NULL || vowp_prescan(bytes, len, &lim, 0, &err) != VOWP_OK)
      return (size_t)-1;
    msgpack_unpacked_init(&un);
    if (msgpack_unpack_next(&un, bytes, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        un.data.type != MSGPACK_OBJECT_ARRAY) {
      msgpack_unpacked_destroy(&un);
      return (size_t)-1;
    }
    n = un.data.via.array.size;
    *out = vow__malloc((n ? n : 1) * sizeof(vow_value_t*));
    for (i = 0; *out != NULL && i < n; i++) {
      msgpack_sbuffer sb;
      msgpack_packer pk;
      msgpack_sbuffer_init(&sb);
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_object(&pk, un.data.via.array.ptr[i]);
      (*out)[i] = vow__value_from_encoded(sb.data, sb.size);
      msgpack_sbuffer_destroy(&sb);
      if ((*out)[i] == NULL)
        (*out)[i] = vow_value_nil();
    }
    msgpack_unpacked_destroy(&un);
    return *out ? n : (size_t)-1;
  }
}

typedef struct stream_item {
  vow_stream_t* s;
  size_t index;
} stream_item;

struct vow_stream {
  vow_pool_t* pool;
  char* fn;
  vow_value_t** items; /* not yet submitted ones; NULL once sent */
  size_t n;
  size_t next; /* next to submit */
  size_t running;
  size_t delivered; /* results put into `ready` */
  size_t window;
  vow_queue_t* ready;
  vow_promise_t** ps; /* running tasks, for cancel at free */
  stream_item* recs;
  bool freed;
};

static void stream_fill(vow_stream_t* s);

/* Frees a stream that was freed by its owner once none of its tasks is
 * running. */
static void destroy(vow_stream_t* s) {
  vow__free(s->fn);
  vow__free(s->items);
  vow__free(s->ps);
  vow__free(s->recs);
  vow__free(s);
}

static vow_outcome_t stream_result(vow_value_t* v, vow_failure_t* f,
                                   void* data) {
  stream_item* it = data;
  vow_stream_t* s = it->s;
  vow_value_t* out;
  s->running--;
  s->ps[it->index] = NULL;
  if (f != NULL) {
    out = vow_value_new_failure(f);
  } else {
    vow_value_t* pair[2];
    pair[0] = vow_value_new_int((int64_t)it->index);
    pair[1] = v;
    out = vow_value_new_array(pair, 2);
  }
  if (!s->freed) {
    vow_queue_put(s->ready, out);
    s->delivered++;
    stream_fill(s);
  } else {
    vow_value_release(out);
    if (s->running == 0)
      destroy(s);
  }
  return vow_ok(NULL);
}

static void stream_fill(vow_stream_t* s) {
  while (s->next < s->n && s->running + vow_queue_len(s->ready) < s->window) {
    size_t i = s->next++;
    vow_promise_t* p = vow_pool_submit(s->pool, s->fn, s->items[i]);
    s->items[i] = NULL;
    s->recs[i].s = s;
    s->recs[i].index = i;
    if (p == NULL) {
      /* Not even a rejected promise could be made (the context is
       * closing, or memory ran out past the reserve). */
      s->running++;
      stream_result(NULL, vow__failure_nomem(), &s->recs[i]);
      continue;
    }
    s->running++;
    s->ps[i] = p;
    vow_promise_release(vow_add_both(p, stream_result, &s->recs[i]));
  }
}

vow_stream_t* vow_pool_stream(vow_pool_t* pool, const char* fn,
                              vow_value_t* items, size_t window) {
  VOW__NOT_NULL(pool, "the pool");
  vow_stream_t* s = vow__calloc(1, sizeof(*s));
  size_t n;
  if (s == NULL) {
    vow_value_release(items);
    return NULL;
  }
  n = split_items(items, &s->items);
  vow_value_release(items);
  if (n == (size_t)-1)
    n = 0; /* nothing to stream: gets see nil */
  s->pool = pool;
  s->n = n;
  s->window = window ? window : 1024;
  s->fn = vow__strdup(fn ? fn : "");
  s->ready = vow_queue_new(vow__pool_ctx(pool), VOW_UNBOUNDED, VOW_UNBOUNDED);
  s->ps = vow__calloc(n ? n : 1, sizeof(*s->ps));
  s->recs = vow__calloc(n ? n : 1, sizeof(*s->recs));
  if (s->fn == NULL || s->ready == NULL || s->ps == NULL || s->recs == NULL) {
    s->next = n;
    vow_stream_free(s);
    return NULL;
  }
  stream_fill(s);
  return s;
}

vow_promise_t* vow_stream_get(vow_stream_t* s) {
  vow_promise_t* p;
  VOW__NOT_NULL(s, "the stream");
  if (s->delivered == s->n && vow_queue_len(s->ready) == 0)
    return vow_succeed(vow__pool_ctx(s->pool), NULL);
  p = vow_queue_get(s->ready);
  stream_fill(s); /* taking one makes room for the next */
  return p;
}

void vow_stream_free(vow_stream_t* s) {
  size_t i;
  if (s == NULL)
    return;
  s->freed = true;
  for (i = s->next; i < s->n; i++)
    vow_value_release(s->items[i]);
  s->next = s->n;
  vow_queue_free(s->ready);
  s->ready = NULL;
  for (i = 0; i < s->n; i++)
    if (s->ps[i] != NULL)
      vow_cancel(s->ps[i]);
  if (s->running == 0)
    destroy(s);
}
