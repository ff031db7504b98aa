/* Collectors: each watched promise gets an internal link on its chain; when
 * the link runs, its entry moves to the collector's ready list, where
 * vow_collector_take finds it. An entry outlives its collector when the
 * collector is freed first: the link then only drops it. */
#include "internal.h"
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
  vow_collector_t* c = vow__calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->ctx = ctx;
  c->watching.prev = c->watching.next = &c->watching;
  return c;
}

int vow_collector_add(vow_collector_t* c, vow_promise_t* p, uint64_t tag) {
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

static void release_taken(vow_collector_t* c) {
  while (c->taken != NULL) {
    entry* e = c->taken;
    c->taken = e->next;
    drop(e);
  }
}

size_t vow_collector_take(vow_collector_t* c, vow_settled_t* out, size_t max) {
  size_t n = 0;
  entry* last = NULL;
  release_taken(c);
  while (n < max && c->ready_head != NULL) {
    entry* e = c->ready_head;
    vow_settled_t* s = &out[n++];
    c->ready_head = e->next;
    s->tag = e->tag;
    s->promise = e->p;
    s->state = vow_promise_state(e->p);
    s->value = vow_promise_value(e->p);
    s->bytes = s->value ? vow_value_bytes(s->value, &s->len) : NULL;
    if (s->bytes == NULL)
      s->len = 0;
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

size_t vow_collector_ready(const vow_collector_t* c) {
  return c->nready;
}

size_t vow_collector_watching(const vow_collector_t* c) {
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
