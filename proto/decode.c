/* Messages from pre-scanned frames: the shape of each message type, and
 * the iterators over batches. */
#include "proto_internal.h"

const char* vowp_type_name(int type) {
  switch (type) {
#define XX(name, value) \
  case VOWP_##name:     \
    return #name;
    VOWP_MSG_MAP(XX)
#undef XX
    default:
      return "unknown";
  }
}

const char* vowp_err_text(vowp_err code) {
  switch (code) {
#define XX(name, text) \
  case VOWP_E_##name:  \
    return text;
    VOWP_ERR_MAP(XX)
#undef XX
    case VOWP_OK:
      return "ok";
  }
  return "unknown error";
}

/* Reads the array header of an item and checks its element count. */
static vowp_err read_tuple(vowp__cursor* c, const char* field, size_t want) {
  size_t n;
  uint64_t at = c->base + (uint64_t)(c->p - c->start);
  vowp_err rc = vowp__read_array(c, field, &n);
  if (rc != VOWP_OK)
    return rc;
  if (n != want)
    return vowp__fail(c->err, VOWP_E_BAD_SHAPE, at,
                      "%s: %s has %zu elements, expected %zu, at byte %llu",
                      c->msg, field, n, want, (unsigned long long)at);
  return VOWP_OK;
}

static vowp_err read_task(vowp__cursor* c, vowp_task* t) {
  vowp_err rc;
  if ((rc = read_tuple(c, "task", 4)) != VOWP_OK)
    return rc;
  if ((rc = vowp__read_uint(c, "task id", &t->id)) != VOWP_OK)
    return rc;
  if ((rc = vowp__read_str(c, "task fn", &t->fn)) != VOWP_OK)
    return rc;
  vowp__read_any(c, &t->args);
  return vowp__read_uint(c, "task seed", &t->seed);
}

/* last: the batch's last result, whose value is the message's last
 * object: it ends where the message does (the pre-scan proved the bytes
 * one object), so its bytes are not walked. A map chunk's results, often
 * alone in their message, are most of the bytes a parent reads. */
static vowp_err read_result(vowp__cursor* c, vowp_result* r, bool last) {
  vowp_err rc;
  if ((rc = read_tuple(c, "result", 2)) != VOWP_OK)
    return rc;
  if ((rc = vowp__read_uint(c, "result id", &r->id)) != VOWP_OK)
    return rc;
  if (last && c->end != NULL) {
    r->value.data = (const char*)c->p;
    r->value.len = (size_t)(c->end - c->p);
    c->p = c->end;
    return VOWP_OK;
  }
  vowp__read_any(c, &r->value);
  return VOWP_OK;
}

static vowp_err read_chunk(vowp__cursor* c, vowp_chunk* k) {
  vowp_err rc;
  unsigned char b;
  if ((rc = read_tuple(c, "chunk", 5)) != VOWP_OK)
    return rc;
  if ((rc = vowp__read_uint(c, "chunk id", &k->id)) != VOWP_OK)
    return rc;
  if ((rc = vowp__read_str(c, "chunk fn", &k->fn)) != VOWP_OK)
    return rc;
  b = c->p[0];
  if (!((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd)) {
    size_t n;
    return vowp__read_array(c, "chunk items", &n); /* names the error */
  }
  vowp__read_any(c, &k->items);
  if ((rc = vowp__read_uint(c, "chunk run seed", &k->run_seed)) != VOWP_OK)
    return rc;
  return vowp__read_uint(c, "chunk first", &k->first);
}

/* Iteration re-reads items the decoder already checked, so no error can
 * occur; the error sink only satisfies the cursor. */
static vowp__cursor iter_cursor(vowp_iter* it, vowp_error* sink) {
  vowp__cursor c;
  c.p = it->p;
  c.start = it->p;
  c.end = it->end;
  c.base = 0;
  c.msg = "";
  c.err = sink;
  return c;
}

bool vowp_next_function(vowp_iter* it, vowp_slice* out) {
  vowp_error sink;
  vowp__cursor c;
  if (it->left == 0)
    return false;
  c = iter_cursor(it, &sink);
  vowp__read_str(&c, "", out);
  it->p = c.p;
  it->left--;
  return true;
}

bool vowp_next_task(vowp_iter* it, vowp_task* out) {
  vowp_error sink;
  vowp__cursor c;
  if (it->left == 0)
    return false;
  c = iter_cursor(it, &sink);
  read_task(&c, out);
  it->p = c.p;
  it->left--;
  return true;
}

bool vowp_next_result(vowp_iter* it, vowp_result* out) {
  vowp_error sink;
  vowp__cursor c;
  if (it->left == 0)
    return false;
  c = iter_cursor(it, &sink);
  read_result(&c, out, it->left == 1);
  it->p = c.p;
  it->left--;
  return true;
}

bool vowp_next_chunk(vowp_iter* it, vowp_chunk* out) {
  vowp_error sink;
  vowp__cursor c;
  if (it->left == 0)
    return false;
  c = iter_cursor(it, &sink);
  read_chunk(&c, out);
  it->p = c.p;
  it->left--;
  return true;
}

/* Reads a batch's array header, then checks every item once. */
static vowp_err read_batch(vowp__cursor* c, const char* field, size_t* n,
                           vowp_iter* it, int kind) {
  vowp_err rc = vowp__read_array(c, field, n);
  size_t i;
  if (rc != VOWP_OK)
    return rc;
  it->p = c->p;
  it->left = *n;
  it->end = c->end;
  for (i = 0; i < *n; i++) {
    vowp_slice s;
    vowp_task t;
    vowp_result r;
    vowp_chunk k;
    rc = kind == VOWP_HELLO   ? vowp__read_str(c, field, &s)
         : kind == VOWP_TASKS ? read_task(c, &t)
         : kind == VOWP_MAPS  ? read_chunk(c, &k)
                              : read_result(c, &r, i + 1 == *n);
    if (rc != VOWP_OK)
      return rc;
  }
  return VOWP_OK;
}

/* Element counts of each message, type included. */
static size_t arity(int type) {
  switch (type) {
    case VOWP_HELLO:
      return 4;
    case VOWP_TASKS:
      return 2;
    case VOWP_RESULTS:
      return 2;
    case VOWP_ERROR:
      return 6;
    case VOWP_PROGRESS:
      return 4;
    case VOWP_CANCEL:
      return 2;
    case VOWP_PING:
      return 2;
    case VOWP_PONG:
      return 2;
    case VOWP_SHUTDOWN:
      return 1;
    case VOWP_MAPS:
      return 2;
    default:
      return 0;
  }
}

vowp_err vowp__decode(const char* payload, size_t len, uint64_t base,
                      vowp_msg* m, vowp_error* err) {
  vowp__cursor c;
  size_t n;
  uint64_t type, u;
  vowp_err rc;
  /* the pre-scan bounded every read below */
  c.p = (const unsigned char*)payload;
  c.start = c.p;
  c.end = c.p + len;
  c.base = base;
  c.msg = "message";
  c.err = err;
  if ((rc = vowp__read_array(&c, "message", &n)) != VOWP_OK)
    return rc;
  if (n == 0)
    return vowp__fail(err, VOWP_E_BAD_SHAPE, base,
                      "message: empty array, no message type, at byte %llu",
                      (unsigned long long)base);
  if ((rc = vowp__read_uint(&c, "type", &type)) != VOWP_OK)
    return rc;
  if (type > 255 || arity((int)type) == 0)
    return vowp__fail(err, VOWP_E_UNKNOWN_TYPE, base + 1,
                      "message: unknown message type %llu at byte %llu",
                      (unsigned long long)type, (unsigned long long)(base + 1));
  c.msg = vowp_type_name((int)type);
  if (n != arity((int)type))
    return vowp__fail(err, VOWP_E_BAD_SHAPE, base,
                      "%s: %zu elements, expected %zu, at byte %llu", c.msg, n,
                      arity((int)type), (unsigned long long)base);
  m->type = (vowp_type)type;
  switch (m->type) {
    case VOWP_HELLO:
      if ((rc = vowp__read_uint(&c, "version", &u)) != VOWP_OK)
        return rc;
      if (u != VOWP_VERSION)
        return vowp__fail(err, VOWP_E_VERSION, base,
                          "HELLO: peer speaks protocol version %llu, this "
                          "side speaks %d",
                          (unsigned long long)u, VOWP_VERSION);
      m->u.hello.version = (uint32_t)u;
      if ((rc = vowp__read_int(&c, "pid", &m->u.hello.pid)) != VOWP_OK)
        return rc;
      return read_batch(&c, "functions", &m->u.hello.n, &m->u.hello.functions,
                        VOWP_HELLO);
    case VOWP_TASKS:
      return read_batch(&c, "tasks", &m->u.tasks.n, &m->u.tasks.items,
                        VOWP_TASKS);
    case VOWP_RESULTS:
      return read_batch(&c, "results", &m->u.results.n, &m->u.results.items,
                        VOWP_RESULTS);
    case VOWP_ERROR:
      if ((rc = vowp__read_uint(&c, "id", &m->u.error.id)) != VOWP_OK ||
          (rc = vowp__read_uint(&c, "kind", &u)) != VOWP_OK)
        return rc;
      if (u > UINT32_MAX)
        return vowp__fail(err, VOWP_E_BAD_SHAPE, base,
                          "ERROR: kind %llu out of range",
                          (unsigned long long)u);
      m->u.error.kind = (uint32_t)u;
      if ((rc = vowp__read_int(&c, "code", &m->u.error.code)) != VOWP_OK ||
          (rc = vowp__read_str(&c, "message", &m->u.error.message)) != VOWP_OK)
        return rc;
      return vowp__read_opt_str(&c, "detail", &m->u.error.detail,
                                &m->u.error.has_detail);
    case VOWP_PROGRESS:
      if ((rc = vowp__read_uint(&c, "id", &m->u.progress.id)) != VOWP_OK ||
          (rc = vowp__read_double(&c, "fraction", &m->u.progress.fraction)) !=
              VOWP_OK)
        return rc;
      return vowp__read_str(&c, "text", &m->u.progress.text);
    case VOWP_CANCEL:
      return vowp__read_uint(&c, "id", &m->u.cancel.id);
    case VOWP_PING:
    case VOWP_PONG:
      return vowp__read_uint(&c, "token", &m->u.ping.token);
    case VOWP_SHUTDOWN:
      return VOWP_OK;
    case VOWP_MAPS:
      return read_batch(&c, "chunks", &m->u.maps.n, &m->u.maps.items,
                        VOWP_MAPS);
  }
  return VOWP_OK;
}
