/* Collectors: each watched promise gets an internal link on its chain; when
 * the link runs, its entry moves to the collector's ready list, where
 * vow_collector_take finds it. An entry outlives its collector when the
 * collector is freed first: the link then only drops it. */
#include <string.h>

#include "core.h"
#include "pool_submit.h"
#include "proto.h"
#include "vow/collect.h"

typedef struct entry entry;
struct entry {
  entry* prev; /* in `watching`, or the ready and taken lists (next only) */
  entry* next;
  vow_collector_t* c; /* NULL once the collector is gone */
  vow_promise_t* p;   /* a reference of ours */
  uint64_t tag;
};

struct vow_collector {
  vow_ctx_t* ctx;
  entry watching; /* sentinel of a circular list */
  entry* ready_head;
  entry* ready_tail;
  entry* taken; /* handed out by the last take */
  size_t nready;
  size_t nwatching;
};

static void unlink_entry(entry* e) {
  e->prev->next = e->next;
  e->next->prev = e->prev;
}

static void drop(entry* e) {
  vow_promise_release(e->p);
  vow__free(e);
}

static void run_collect(vow_promise_t* p, const vow__link* link) {
  entry* e = link->data;
  vow_collector_t* c = e->c;
  (void)p;
  if (c == NULL) {
    drop(e);
    return;
  }
  unlink_entry(e);
  c->nwatching--;
  e->next = NULL;
  if (c->ready_tail != NULL)
    c->ready_tail->next = e;
  else
    c->ready_head = e;
  c->ready_tail = e;
  c->nready++;
}

/* The context is closing with p unsettled: its slot is dealt with by the
 * walk at close, so only the entry goes. */
static void discard_collect(const vow__link* link) {
  entry* e = link->data;
  if (e->c != NULL) {
    unlink_entry(e);
    e->c->nwatching--;
  }
  vow__free(e);
}

static const vow__node_kind collect_kind = {run_collect, discard_collect};

vow_collector_t* vow_collector_new(vow_ctx_t* ctx) {
  VOW__NOT_NULL(ctx, "the context");
  vow_collector_t* c = vow__calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->ctx = ctx;
  c->watching.prev = c->watching.next = &c->watching;
  return c;
}

int vow_collector_add(vow_collector_t* c, vow_promise_t* p, uint64_t tag) {
  VOW__NOT_NULL(c, "the collector");
  VOW__LIVE_PROMISE(p);
  entry* e;
  if (vow_promise_ctx(p) != c->ctx)
    return UV_EINVAL;
  if ((e = vow__malloc(sizeof(*e))) == NULL)
    return UV_ENOMEM;
  e->c = c;
  e->p = vow_promise_ref(p);
  e->tag = tag;
  if (vow__append(p, &collect_kind, e) == NULL) {
    vow_promise_release(p);
    vow__free(e);
    return UV_ENOMEM;
  }
  e->next = &c->watching;
  e->prev = c->watching.prev;
  e->prev->next = e;
  c->watching.prev = e;
  c->nwatching++;
  return 0;
}

vow_promise_t* vow_collector_submit(vow_collector_t* c, vow_pool_t* pool,
                                    const char* fn, const void* args,
                                    size_t len, uint64_t timeout_ms,
                                    uint64_t tag, int* err) {
  VOW__NOT_NULL(c, "the collector");
  VOW__NOT_NULL(pool, "the pool");
  VOW__NOT_NULL(fn, "the function name");
  vow_value_t* v;
  vow_promise_t* p;
  int rc;
  if (vow__pool_ctx(pool) != c->ctx) {
    *err = UV_EINVAL;
    return NULL;
  }
  if ((v = vow_value_new_msgpack(args, len, err)) == NULL)
    return NULL;
  p = timeout_ms ? vow_pool_submit_timeout(pool, fn, v, timeout_ms)
                 : vow_pool_submit(pool, fn, v);
  if (p == NULL) {
    *err = c->ctx->closing ? UV_ECANCELED : UV_ENOMEM;
    return NULL;
  }
  if ((rc = vow_collector_add(c, p, tag)) != 0) {
    /* Nobody would see its outcome: it is not run. */
    vow_cancel(p);
    vow_promise_release(p);
    *err = rc;
    return NULL;
  }
  vow_promise_release(p); /* the collector's reference keeps it */
  return p;
}

/* The function name a record starts with: a whole msgpack str with no
 * NUL in it, since it is handed on as a C string. */
static bool read_name(const unsigned char* rec, size_t len, const char** text,
                      size_t* text_len) {
  size_t head;
  if (!vowp_str_header(rec, len, text_len, &head) || *text_len > len - head)
    return false;
  *text = (const char*)rec + head;
  return memchr(*text, '\0', *text_len) == NULL;
}

size_t vow_collector_submit_many(vow_collector_t* c, vow_pool_t* pool,
                                 const void* records, const size_t* lens,
                                 size_t n, uint64_t timeout_ms,
                                 uint64_t first_tag, vow_promise_t** out,
                                 int* errs) {
  VOW__NOT_NULL(c, "the collector");
  VOW__NOT_NULL(pool, "the pool");
  VOW__NOT_NULL(out, "out");
  const unsigned char* rec = records;
  char small[128];
  size_t i, done = 0;
  for (i = 0; i < n; rec += lens[i], i++) {
    const char* text;
    size_t text_len, name_len;
    char* fn = small;
    errs[i] = 0;
    out[i] = NULL;
    if (!read_name(rec, lens[i], &text, &text_len)) {
      errs[i] = UV_EINVAL;
      continue;
    }
    name_len = (size_t)(text - (const char*)rec) + text_len;
    /* vow_pool_submit takes a C string. */
    if (text_len >= sizeof(small) && (fn = vow__malloc(text_len + 1)) == NULL) {
      errs[i] = UV_ENOMEM;
      continue;
    }
    memcpy(fn, text, text_len);
    fn[text_len] = '\0';
    out[i] =
        vow_collector_submit(c, pool, fn, rec + name_len, lens[i] - name_len,
                             timeout_ms, first_tag + i, &errs[i]);
    if (fn != small)
      vow__free(fn);
    done += out[i] != NULL;
  }
  return done;
}

static void release_taken(vow_collector_t* c) {
  while (c->taken != NULL) {
    entry* e = c->taken;
    c->taken = e->next;
    drop(e);
  }
}

static size_t take(vow_collector_t* c, vow_settled_t* out, size_t max,
                   char* buf, size_t cap, size_t* used) {
  size_t n = 0;
  entry* last = NULL;
  release_taken(c);
  while (n < max && c->ready_head != NULL) {
    entry* e = c->ready_head;
    vow_settled_t* s = &out[n];
    vow_value_t* value = vow_promise_value(e->p);
    size_t len = 0;
    const void* bytes = value ? vow_value_bytes(value, &len) : NULL;
    if (buf != NULL && bytes != NULL) {
      if (len > cap - *used) {
        if (n > 0)
          break; /* the next take starts with it */
        /* Alone and too big: read where it is, and taken alone. */
        buf = NULL;
        max = 1;
      } else {
        memcpy(buf + *used, bytes, len);
        *used += len;
      }
    }
    n++;
    c->ready_head = e->next;
    s->tag = e->tag;
    s->promise = e->p;
    s->state = vow_promise_state(e->p);
    s->value = value;
    s->bytes = bytes;
    s->len = bytes ? len : 0;
    /* Taking it hands the failure on: not reported as unhandled. */
    s->failure = vow_promise_failure(e->p);
    e->next = NULL;
    if (last != NULL)
      last->next = e;
    else
      c->taken = e;
    last = e;
  }
  if (c->ready_head == NULL)
    c->ready_tail = NULL;
  c->nready -= n;
  return n;
}

size_t vow_collector_take(vow_collector_t* c, vow_settled_t* out, size_t max) {
  VOW__NOT_NULL(c, "the collector");
  return take(c, out, max, NULL, 0, NULL);
}

size_t vow_collector_take_into(vow_collector_t* c, vow_settled_t* out,
                               size_t max, void* buf, size_t cap,
                               size_t* used) {
  VOW__NOT_NULL(c, "the collector");
  *used = 0;
  return take(c, out, max, buf, cap, used);
}

size_t vow_collector_ready(const vow_collector_t* c) {
  VOW__NOT_NULL(c, "the collector");
  return c->nready;
}

size_t vow_collector_watching(const vow_collector_t* c) {
  VOW__NOT_NULL(c, "the collector");
  return c->nwatching;
}

void vow_collector_free(vow_collector_t* c) {
  entry* e;
  if (c == NULL)
    return;
  release_taken(c);
  while ((e = c->ready_head) != NULL) {
    c->ready_head = e->next;
    drop(e);
  }
  /* Their links still run (or are discarded at close) and drop them. */
  for (e = c->watching.next; e != &c->watching; e = e->next)
    e->c = NULL;
  vow__free(c);
}
