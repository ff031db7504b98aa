/* The worker's read–run–reply loop.
 *
 * Tasks arrive in TASKS batches and are copied into a local FIFO, so the
 * decoder's buffer can be reused while they wait. Each task's result is
 * packed by its function straight into an open RESULTS batch; the batch is
 * written when nothing else is ready to run, when it grows past 64 KiB, or
 * after a millisecond, so tiny tasks share writes and a long one never
 * holds back the results before it. Every task received gets exactly one
 * reply (a result or an ERROR), which keeps the parent's books exact. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker_internal.h"
#include "fdio.h"
#include "shm.h"

#define FLUSH_BYTES (64 * 1024)
#define BIG_ARGS (1024 * 1024)
#define FLUSH_NS 1000000ull
#define KIND_TASK_ERROR 5 /* vow_failure_kind_t: VOW_FAIL_TASK_ERROR */
#define KIND_CANCELLED 1  /* VOW_FAIL_CANCELLED */
#define KIND_BAD_INPUT 12 /* VOW_FAIL_BAD_INPUT */

typedef struct job job;
struct job {
  job* next;
  uint64_t id;
  uint64_t seed;
  int fn;         /* index in the table, -1 if unknown */
  bool cancelled; /* a CANCEL came before it ran */
  bool chunk;     /* a map chunk: args is the array of items */
  uint64_t first; /* map chunk: the run index of its first item */
  size_t len;     /* args bytes */
  char* name;     /* the function name as sent, for unknown names */
  const char* args;
  char* owned;       /* a big task's whole frame buffer, taken from the decoder
                        instead of copying its args; else NULL */
  vow__seg_map* seg; /* args in a shared-memory segment: its mapping */
  vow__seg_map** parts; /* the segments of parts inside args, in order */
  size_t nparts;
};

struct vow_task_ctx {
  uint64_t id;
  uint64_t seed;
  bool cancelled;
  char error[512];
  bool failed;
  bool in_chunk;            /* a map's item: its result is an array's */
  vow__result_space result; /* vow_task_result_bin's, if asked for */
};

typedef struct server {
  const vow_function_t* fns;
  size_t nfns;
  int in_fd, out_fd;
  vowp_decoder dec;
  vowp_encoder enc;  /* result batches; a running task's result is open */
  vowp_encoder side; /* messages sent while a task runs: written at once */
  job* head;
  job* tail;
  vow_task_ctx_t* running;
  uint64_t first_unflushed_ns; /* 0: nothing waiting */
  uint64_t last_poll_ns;
  bool shutdown;
  int shm_sock;           /* the side socket for segments, or -1 */
  uint64_t shm_threshold; /* results from this many bytes go there */
  uint64_t shm_sent;      /* ids of the segments sent */
  vow__shm_inbox shm_in;  /* segments that came ahead of their tasks */
  vow__seg_map* maps;     /* the segments queued and running tasks use */
} server;

static server* the_server; /* the task-context calls reach it */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void flush(server* s) {
  const char* data;
  size_t len;
  vowp_open_batch_end(&s->enc);
  data = vowp_encoder_data(&s->enc, &len);
  if (len > 0 && vow__worker_write(s->out_fd, data, len) != 0) {
    /* The parent is gone or stopped listening: nothing left to serve. */
    _exit(0);
  }
  vowp_encoder_reset(&s->enc);
  s->first_unflushed_ns = 0;
}

/* Makes sure an open RESULTS batch is there to add to. */
static void ensure_batch(server* s) {
  if (s->enc.count_at == 0) {
    vowp_results_begin_open(&s->enc);
    if (s->first_unflushed_ns == 0)
      s->first_unflushed_ns = now_ns();
  }
}

/* Checks the value packed at value_at, the last thing in the encoder, as
 * one object a RESULTS frame can carry: nested at most max_depth, within
 * the objects and bytes one frame may hold. Returns 0, or -1 with why in
 * task's error. A value too big goes out in no frame: its task fails,
 * and the worker lives on. */
static int check_result(server* s, vow_task_ctx_t* task, const char* fn,
                        size_t value_at, unsigned max_depth) {
  vowp_error err;
  vowp_limits lim = {0, VOWP_VALUE_MAX_OBJECTS, max_depth};
  size_t vlen = s->enc.len - value_at;
  if (vlen == 0) {
    vow_task_fail(task, "%s packed no result", fn);
    return -1;
  }
  if (vlen > VOWP_VALUE_MAX_BYTES &&
      (s->shm_sock < 0 || vlen < s->shm_threshold)) {
    vow_task_fail(task, "result too big (%zu bytes, limit %zu)", vlen,
                  (size_t)VOWP_VALUE_MAX_BYTES);
    return -1;
  }
  if (vowp_prescan(s->enc.data + value_at, vlen, &lim, 0, &err) == VOWP_OK)
    return 0;
  if (err.code == VOWP_E_TOO_MANY_OBJECTS)
    vow_task_fail(task, "result too big (more than %zu objects, limit %zu)",
                  (size_t)VOWP_VALUE_MAX_OBJECTS,
                  (size_t)VOWP_VALUE_MAX_OBJECTS);
  else
    vow_task_fail(task, "%s packed %s", fn, err.text);
  return -1;
}

/* A big result goes in a frame of its own: the results before it (less
 * than FLUSH_BYTES) go out first, so no frame passes the limits one
 * result is held to. */
static void send_alone_if_big(server* s, uint64_t id, size_t mark,
                              size_t value_at) {
  size_t vlen = s->enc.len - value_at;
  char* value;
  if (vlen <= FLUSH_BYTES || s->enc.count == 1)
    return;
  value = vow__malloc(vlen);
  if (value == NULL)
    return; /* then it waits in this batch: the limits still hold */
  memcpy(value, s->enc.data + value_at, vlen);
  s->enc.len = mark;
  s->enc.count--;
  flush(s);
  ensure_batch(s);
  vowp_result_raw(&s->enc, id, value, vlen);
  vow__free(value);
}

/* A result of shm_threshold bytes or more goes in a segment of its own,
 * a reference in its place. Returns false, the result left as it was,
 * when it cannot: then it takes the wire, where it fits. */
static bool send_in_segment(server* s, size_t value_at, char* why,
                            size_t why_len) {
  size_t vlen = s->enc.len - value_at;
  int fd, rc;
  uint64_t id = s->shm_sent + 1;
  if (s->shm_sock < 0 || vlen < s->shm_threshold)
    return false;
  if ((rc = vow__shm_create(vlen, &fd, NULL)) != 0) {
    snprintf(why, why_len, "cannot make a shared-memory segment: %s",
             strerror(rc));
    return false;
  }
  if ((rc = vow__shm_write(fd, s->enc.data + value_at, vlen)) == 0 &&
      (rc = vow__shm_seal(fd, NULL, vlen)) == 0)
    rc = vow__shm_send(s->shm_sock, id, fd);
  close(fd); /* in flight, the kernel holds it */
  if (rc != 0) {
    snprintf(why, why_len, "cannot send a shared-memory segment: %s",
             strerror(rc));
    return false;
  }
  s->shm_sent = id;
  s->enc.len = value_at;
  vowp_shm_ref_write((unsigned char*)s->enc.data + value_at, id, 0, vlen);
  s->enc.len += VOWP_SHM_REF_LEN;
  return true;
}

/* After a task's result is packed and checked: by a segment when it is
 * big, else alone in a frame when it is big for a batch. 0, or -1 with
 * the task failed when it fits neither way. */
static int send_result(server* s, vow_task_ctx_t* task, uint64_t id,
                       size_t mark, size_t value_at) {
  char why[256] = "";
  size_t vlen = s->enc.len - value_at;
  if (send_in_segment(s, value_at, why, sizeof(why)))
    return 0;
  if (vlen > VOWP_VALUE_MAX_BYTES) {
    vow_task_fail(task,
                  "result too big (%zu bytes) for the channel (limit %zu) "
                  "and %s",
                  vlen, (size_t)VOWP_VALUE_MAX_BYTES, why);
    return -1;
  }
  send_alone_if_big(s, id, mark, value_at);
  return 0;
}

/* Writes the side encoder's frames now. They never cut into a result,
 * because a running task's result is built in the other encoder. */
static void flush_side(server* s) {
  const char* data;
  size_t len;
  data = vowp_encoder_data(&s->side, &len);
  if (len > 0 && vow__worker_write(s->out_fd, data, len) != 0)
    _exit(0);
  vowp_encoder_reset(&s->side);
}

static void send_error(server* s, uint64_t id, uint32_t kind,
                       const char* message) {
  if (s->running) {
    vowp_encode_error(&s->side, id, kind, 0, message, NULL);
    flush_side(s);
    return;
  }
  vowp_open_batch_end(&s->enc); /* a batch cannot hold an ERROR */
  vowp_encode_error(&s->enc, id, kind, 0, message, NULL);
  if (s->first_unflushed_ns == 0)
    s->first_unflushed_ns = now_ns();
}

static int find_fn(server* s, vowp_slice name) {
  size_t i;
  for (i = 0; i < s->nfns; i++)
    if (strlen(s->fns[i].name) == name.len &&
        memcmp(s->fns[i].name, name.data, name.len) == 0)
      return (int)i;
  return -1;
}

static void enqueue_owned(server* s, const vowp_task* t, char* owned,
                          bool chunk);

static void enqueue(server* s, const vowp_task* t) {
  enqueue_owned(s, t, NULL, false);
}

/* A map chunk travels as a job whose args are the items and whose seed
 * is the run's seed; each item's own seed is derived when it runs. */
static void enqueue_chunk(server* s, const vowp_chunk* k) {
  vowp_task t;
  t.id = k->id;
  t.fn = k->fn;
  t.args = k->items;
  t.seed = k->run_seed;
  enqueue_owned(s, &t, NULL, true); /* a map's items hold no parts */
  if (s->tail != NULL && s->tail->id == k->id) {
    s->tail->chunk = true;
    s->tail->first = k->first;
  }
}

/* A task whose arguments are a segment's reference: the bytes mapped
 * (*seg; NULL when they are not a reference). True when they were; false
 * after answering the task with why. A reference that names no segment
 * sent breaks the protocol. */
static bool map_args(server* s, const vowp_task* t, vow__seg_map** seg) {
  uint64_t id, off, len;
  char why[256];
  int fd;
  *seg = NULL;
  if (s->shm_sock < 0 ||
      !vowp_shm_ref_read(t->args.data, t->args.len, &id, &off, &len))
    return true;
  fd = vow__shm_take(&s->shm_in, s->shm_sock, id);
  if (fd == VOW__SHM_LOST) {
    send_error(s, t->id, KIND_TASK_ERROR, VOW__WORKER_LOST_SEGMENT);
    return false;
  }
  if (fd < 0) {
    fprintf(stderr,
            "vow worker: protocol error from the parent: task %llu names "
            "shared-memory segment %llu, which never came\n",
            (unsigned long long)t->id, (unsigned long long)id);
    flush(s);
    _exit(3);
  }
  *seg = vow__seg_map_open(&s->maps, fd, off, len, why, sizeof(why));
  if (*seg == NULL) {
    send_error(s, t->id, KIND_TASK_ERROR, why);
    return false;
  }
  return true;
}

static void enqueue_owned(server* s, const vowp_task* t, char* owned,
                          bool chunk) {
  vow__seg_map* seg;
  vow__seg_map** parts;
  size_t nparts;
  job* j;
  if (!map_args(s, t, &seg)) {
    vow__free(owned);
    return;
  }
  parts = NULL;
  nparts = 0;
  if (seg == NULL && !chunk && s->shm_sock >= 0) {
    char why[256];
    int rc = vow__parts_map(s->shm_sock, &s->shm_in, &s->maps, t->args.data,
                            t->args.len, &parts, &nparts, why, sizeof(why));
    if (rc < 0) {
      fprintf(stderr,
              "vow worker: protocol error from the parent: task %llu: %s\n",
              (unsigned long long)t->id, why);
      flush(s);
      _exit(3);
    }
    if (rc > 0) {
      vow__free(owned);
      send_error(s, t->id, KIND_TASK_ERROR, why);
      return;
    }
  }

  if (seg != NULL) {
    vow__free(owned);
    owned = NULL;
  }
  j = vow__malloc(sizeof(*j) + (owned || seg ? 0 : t->args.len));
  if (j == NULL) {
    vow__free(owned);
    vow__seg_map_release(&s->maps, seg);
    vow__parts_free(&s->maps, parts, nparts);
    send_error(s, t->id, KIND_TASK_ERROR, "worker out of memory");
    return;
  }
  j->seg = seg;
  j->parts = parts;
  j->nparts = nparts;
  j->next = NULL;
  j->id = t->id;
  j->seed = t->seed;
  j->fn = find_fn(s, t->fn);
  j->cancelled = false;
  j->chunk = false;
  j->first = 0;
  j->len = t->args.len;
  j->name = NULL;
  if (j->fn < 0) {
    j->name = vow__malloc(t->fn.len + 1);
    if (j->name) {
      memcpy(j->name, t->fn.data, t->fn.len);
      j->name[t->fn.len] = '\0';
    }
  }
  j->owned = owned;
  if (seg != NULL) {
    j->args = (const char*)vow__seg_map_data(seg, &j->len);
  } else if (owned != NULL) {
    j->args = t->args.data; /* inside the buffer the job now owns */
  } else {
    memcpy(j + 1, t->args.data, t->args.len);
    j->args = (const char*)(j + 1);
  }
  if (s->tail)
    s->tail->next = j;
  else
    s->head = j;
  s->tail = j;
}

static void free_job(server* s, job* j) {
  vow__seg_map_release(&s->maps, j->seg);
  vow__parts_free(&s->maps, j->parts, j->nparts);
  vow__free(j->name);
  vow__free(j->owned);
  vow__free(j);
}

/* A CANCEL: the running task sees it through vow_task_cancelled; a queued
 * one is answered now and dropped, so the parent may give it to another
 * worker at once (it asks a busy worker back for an idle one so). */
static void mark_cancelled(server* s, uint64_t id) {
  job *j, *prev = NULL;
  if (s->running && s->running->id == id)
    s->running->cancelled = true;
  for (j = s->head; j; prev = j, j = j->next) {
    if (j->id != id)
      continue;
    if (prev)
      prev->next = j->next;
    else
      s->head = j->next;
    if (s->tail == j)
      s->tail = prev;
    send_error(s, id, KIND_CANCELLED, "cancelled before it started");
    free_job(s, j);
    return;
  }
}

/* Handles every whole message in the decoder. */
static void take_messages(server* s) {
  vowp_msg m;
  int rc;
  while ((rc = vowp_decoder_next(&s->dec, &m)) == 1) {
    vowp_task t;
    switch (m.type) {
      case VOWP_TASKS:
        if (m.u.tasks.n == 1) {
          /* A lone big task keeps its bytes where they arrived: the job
           * takes the decoder's buffer instead of a copy. */
          vowp_iter peek = m.u.tasks.items;
          char* owned;
          if (vowp_next_task(&peek, &t) && t.args.len >= BIG_ARGS &&
              (owned = vowp_decoder_steal(&s->dec)) != NULL) {
            enqueue_owned(s, &t, owned, false);
            break;
          }
        }
        while (vowp_next_task(&m.u.tasks.items, &t))
          enqueue(s, &t);
        break;
      case VOWP_MAPS: {
        vowp_chunk k;
        while (vowp_next_chunk(&m.u.maps.items, &k))
          enqueue_chunk(s, &k);
        break;
      }
      case VOWP_CANCEL:
        mark_cancelled(s, m.u.cancel.id);
        break;
      case VOWP_PING:
        vowp_encode_pong(&s->side, m.u.ping.token);
        flush_side(s);
        break;
      case VOWP_SHUTDOWN:
        s->shutdown = true;
        break;
      default:
        break; /* nothing else is meant for a worker */
    }
  }
  if (rc < 0) {
    fprintf(stderr, "vow worker: protocol error from the parent: %s\n",
            vowp_decoder_error(&s->dec)->text);
    flush(s);
    _exit(3);
  }
}

/* Reads what is there; blocks only if `block`. Returns false at EOF. */
static bool read_some(server* s, bool block) {
  char* base;
  size_t room;
  ssize_t n;
  if (!block) {
    struct pollfd pfd = {s->in_fd, POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0)
      return true;
  }
  if (block && vowp_decoder_partial(&s->dec) > 0 && vow__worker_on_link()) {
    /* A message begun: if its rest is slow to come, the launcher's link
     * may be holding it back until bytes go the other way (see
     * NUDGE_MS in pool_worker.c). */
    struct pollfd pfd = {s->in_fd, POLLIN, 0};
    if (poll(&pfd, 1, 2) == 0)
      vow__worker_nudge_link();
  }
  vowp_decoder_buffer(&s->dec, &base, &room);
  if (room == 0) {
    const vowp_error* e = vowp_decoder_error(&s->dec);
    if (e->code == VOWP_OK)
      return true; /* whole frames wait in the buffer: take them first */
    /* Reading on cannot succeed (no memory for the frame coming in):
     * say why and go, rather than spin on a buffer that never grows. */
    fprintf(stderr, "vow worker: cannot read the next message: %s\n", e->text);
    flush(s);
    _exit(3);
  }
  do {
    n = read(s->in_fd, base, room);
  } while (n < 0 && errno == EINTR);
  if (n <= 0)
    return false;
  vowp_decoder_commit(&s->dec, (size_t)n);
  take_messages(s);
  return true;
}

/* A map chunk: the function on each item, results packed into one array
 * as the chunk's result. The first item that fails fails the chunk, with
 * its index in the message. */
static void run_chunk(server* s, job* j, const msgpack_object* items) {
  vow_task_ctx_t task;
  size_t mark, value_at;
  uint32_t k, n = items->via.array.size;
  const vow_function_t* f = &s->fns[j->fn];
  msgpack_packer* pk;
  ensure_batch(s);
  mark = s->enc.len;
  pk = vowp_result_open(&s->enc, j->id);
  value_at = s->enc.len;
  msgpack_pack_array(pk, n);
  vow__worker_crash_context(j->id, f->name);
  for (k = 0; k < n; k++) {
    memset(&task, 0, sizeof(task));
    task.id = j->id;
    task.seed = vowp_task_seed(j->seed, j->first + k);
    task.in_chunk = true;
    task.result.fd = -1;
    s->running = &task;
    if (f->fn(&task, &items->via.array.ptr[k], pk) != 0 || s->enc.failed)
      break;
  }
  s->running = NULL;
  vow__worker_crash_context(0, NULL);
  if (k == n && !s->enc.failed) {
    if (check_result(s, &task, f->name, value_at, VOWP_TASK_MAX_DEPTH) == 0) {
      send_alone_if_big(s, j->id, mark, value_at);
      return;
    }
    k = n; /* the chunk's results together, not one item */
  }
  s->enc.len = mark;
  s->enc.count--;
  s->enc.failed = false;
  {
    char msg[700];
    if (k == n)
      snprintf(msg, sizeof(msg), "the chunk's results: %s", task.error);
    else
      snprintf(msg, sizeof(msg), "item %u of the chunk: %s", k,
               task.failed ? task.error : "the task function failed");
    send_error(s, j->id, KIND_TASK_ERROR, msg);
  }
}

/* After a task function that wrote its result in place: the result
 * packed (or its segment sent), the space let go. rc is the function's;
 * returns it, or -1 with the task failed. */
static int finish_result_space(server* s, vow_task_ctx_t* task,
                               msgpack_packer* pk, int rc, size_t value_at,
                               const char* fn) {
  bool by_segment = task->result.map != NULL;
  if (rc == 0 && s->enc.len != value_at)
    rc = vow_task_fail(task,
                       "%s packed a result besides the one "
                       "vow_task_result_bin gave it",
                       fn);
  else if (rc == 0 &&
           (rc = vow__result_space_finish(&task->result, pk, s->shm_sock,
                                          s->shm_sent + 1)) != 0)
    rc =
        vow_task_fail(task, "its result in shared memory could not be sent: %s",
                      strerror(rc));
  else if (rc == 0 && by_segment)
    s->shm_sent++; /* its segment went with that id */
  vow__result_space_drop(&task->result);
  return rc;
}

static void run_job(server* s, job* j) {
  vow_task_ctx_t task;
  msgpack_unpacked un;
  msgpack_unpacked* parts; /* the parts' objects, decoded */
  size_t off = 0, mark, value_at;
  msgpack_packer* pk;
  int rc;
  if (j->cancelled) {
    send_error(s, j->id, KIND_CANCELLED, "cancelled before it started");
    return;
  }
  if (j->fn < 0) {
    char msg[300];
    snprintf(msg, sizeof(msg), "this worker has no function named \"%s\"",
             j->name ? j->name : "?");
    send_error(s, j->id, KIND_BAD_INPUT, msg);
    return;
  }
  memset(&task, 0, sizeof(task));
  task.id = j->id;
  task.seed = j->seed;
  msgpack_unpacked_init(&un);
  /* The parent's pre-scan bounded these bytes; msgpack-c can take them. */
  if (msgpack_unpack_next(&un, j->args, j->len, &off) !=
      MSGPACK_UNPACK_SUCCESS) {
    msgpack_unpacked_destroy(&un);
    send_error(s, j->id, KIND_BAD_INPUT, "arguments are not msgpack");
    return;
  }
  if (j->chunk) {
    if (un.data.type == MSGPACK_OBJECT_ARRAY)
      run_chunk(s, j, &un.data);
    msgpack_unpacked_destroy(&un);
    return;
  }
  parts = NULL;
  if (j->nparts > 0 &&
      (parts = vow__parts_unpack(&un.data, j->parts, j->nparts)) == NULL) {
    msgpack_unpacked_destroy(&un);
    send_error(s, j->id, KIND_BAD_INPUT,
               "a part of the arguments in shared memory is not msgpack "
               "(or the worker is out of memory)");
    return;
  }
  ensure_batch(s);
  mark = s->enc.len;
  pk = vowp_result_open(&s->enc, j->id);
  value_at = s->enc.len; /* after [id, */
  s->running = &task;
  vow__worker_crash_context(j->id, s->fns[j->fn].name);
  task.result.fd = -1;
  rc = s->fns[j->fn].fn(&task, &un.data, pk);
  vow__worker_crash_context(0, NULL);
  s->running = NULL;
  msgpack_unpacked_destroy(&un);
  vow__parts_destroy(parts, j->nparts);
  if (vow__result_space_used(&task.result))
    rc = finish_result_space(s, &task, pk, rc, value_at, s->fns[j->fn].name);
  if (rc == 0 && !s->enc.failed) {
    /* Exactly one object must follow the id, or the frame is broken. */
    if (check_result(s, &task, s->fns[j->fn].name, value_at,
                     VOWP_TASK_MAX_DEPTH) == 0 &&
        send_result(s, &task, j->id, mark, value_at) == 0)
      return;
    rc = -1;
  }
  /* Roll the half-packed result back and reply with an ERROR instead. */
  s->enc.len = mark;
  s->enc.count--;
  s->enc.failed = false;
  send_error(s, j->id, KIND_TASK_ERROR,
             task.failed ? task.error : "the task function failed");
}

static int serve_loop(server* s) {
  const char** names;
  unsigned since_check = 0;
  size_t i;
  names = vow__malloc((s->nfns ? s->nfns : 1) * sizeof(*names));
  if (names == NULL)
    return 1;
  for (i = 0; i < s->nfns; i++)
    names[i] = s->fns[i].name;
  vowp_encode_hello(&s->enc, VOWP_VERSION, (int64_t)getpid(), names, s->nfns);
  vow__free(names);
  flush(s);
  for (;;) {
    job* j;
    if (s->head == NULL) {
      if (s->shutdown) {
        flush(s);
        return 0;
      }
      flush(s);
      /* Idle: give back what a big task needed. */
      vowp_decoder_trim(&s->dec);
      vowp_encoder_trim(&s->enc, 64 * 1024);
      if (!read_some(s, true)) {
        flush(s);
        return 0; /* EOF: the parent closed the channel */
      }
      continue;
    }
    j = s->head;
    s->head = j->next;
    if (s->head == NULL)
      s->tail = NULL;
    run_job(s, j);
    free_job(s, j);
    /* Results go out when nothing else is queued, at 64 KiB, or once the
     * oldest waiting result is 1 ms old: a task that ran longer than that
     * is reported before the next one starts (the parent times the task
     * at the head of what it sent). The channel is polled for CANCELs and
     * new tasks after each flush and every 32 tasks, not after each: for
     * tiny tasks a poll(2) per task costs more than the task. */
    if (s->enc.len >= FLUSH_BYTES || s->head == NULL ||
        (s->first_unflushed_ns &&
         now_ns() - s->first_unflushed_ns >= FLUSH_NS)) {
      flush(s);
      since_check = 0;
    } else if (++since_check < 32) {
      continue;
    }
    since_check = 0;
    if (!read_some(s, false))
      s->shutdown = true;
  }
}

int vow_worker_serve(const vow_function_t* functions, size_t n) {
  server s;
  int rc;
  memset(&s, 0, sizeof(s));
  s.fns = functions;
  s.nfns = n;
  if (vow__worker_setup(&s.in_fd, &s.out_fd) != 0)
    return 1;
  s.shm_sock = vow__worker_shm_sock(&s.shm_threshold);
  vowp_decoder_init(&s.dec, NULL);
  vowp_encoder_init(&s.enc);
  vowp_encoder_init(&s.side);
  the_server = &s;
  rc = serve_loop(&s);
  the_server = NULL;
  vowp_decoder_destroy(&s.dec);
  vowp_encoder_destroy(&s.enc);
  vowp_encoder_destroy(&s.side);
  vow__shm_inbox_clear(&s.shm_in);
  return rc;
}

/* ---- the task context ------------------------------------------------ */

void* vow_task_result_bin(vow_task_ctx_t* task, size_t len) {
  VOW__NOT_NULL(task, "the task");
  if (task->in_chunk || vow__result_space_used(&task->result) ||
      the_server == NULL)
    return NULL;
  return vow__result_space_open(&task->result, len, the_server->shm_sock,
                                the_server->shm_threshold);
}

uint64_t vow_task_id(const vow_task_ctx_t* task) {
  VOW__NOT_NULL(task, "the task");
  return task->id;
}

uint64_t vow_task_seed(const vow_task_ctx_t* task) {
  VOW__NOT_NULL(task, "the task");
  return task->seed;
}

int vow_task_fail(vow_task_ctx_t* task, const char* fmt, ...) {
  VOW__NOT_NULL(task, "the task");
  VOW__NOT_NULL(fmt, "the format");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(task->error, sizeof(task->error), fmt, ap);
  va_end(ap);
  task->failed = true;
  return -1;
}

void vow_task_progress(vow_task_ctx_t* task, double fraction,
                       const char* text) {
  VOW__NOT_NULL(task, "the task");
  server* s = the_server;
  if (s == NULL)
    return;
  vowp_encode_progress(&s->side, task->id, fraction, text ? text : "");
  flush_side(s);
}

bool vow_task_cancelled(vow_task_ctx_t* task) {
  VOW__NOT_NULL(task, "the task");
  server* s = the_server;
  uint64_t now;
  if (task->cancelled || s == NULL)
    return task->cancelled;
  now = now_ns();
  if (now - s->last_poll_ns >= 1000000ull) {
    s->last_poll_ns = now;
    if (!read_some(s, false))
      task->cancelled = true; /* parent gone */
  }
  return task->cancelled;
}
