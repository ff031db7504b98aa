/* proto/proto.h — vow's wire protocol, shared by the parent, the workers,
 * the CLI and every transport. Depends on msgpack-c alone.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload:
 * one msgpack array whose first element is the message type. The decoder
 * checks the length against a limit before buffering the payload, then
 * pre-scans the payload (every count and length bounded by the bytes left,
 * objects counted, nesting capped below msgpack-c's 32 levels) before
 * reading a field. Arguments and results are never unpacked here: they stay
 * slices of the frame's bytes, which msgpack-c can unpack safely later
 * because the pre-scan has bounded them. docs/protocol.md is the spec.
 *
 * Not thread-safe: one encoder or decoder per thread at a time.
 */
#ifndef VOW_PROTO_PROTO_H
#define VOW_PROTO_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version HELLO carries. A peer with another version is refused. */
#define VOWP_VERSION 1

/* Message types: the X-macro gives the enum, the names and the shapes. */
#define VOWP_MSG_MAP(XX) \
  XX(HELLO, 1)           \
  XX(TASKS, 2)           \
  XX(RESULTS, 3)         \
  XX(ERROR, 4)           \
  XX(PROGRESS, 5)        \
  XX(CANCEL, 6)          \
  XX(PING, 7)            \
  XX(PONG, 8)            \
  XX(SHUTDOWN, 9)        \
  XX(MAPS, 10)

typedef enum vowp_type {
#define VOWP__TYPE_ENUM(name, value) VOWP_##name = (value),
  VOWP_MSG_MAP(VOWP__TYPE_ENUM)
#undef VOWP__TYPE_ENUM
} vowp_type;

/* "HELLO", ...; "unknown" for anything else. Static. */
const char* vowp_type_name(int type);

/* Protocol errors: the code says which rule was broken, the text says what
 * and where (message type, field, byte offset in the stream). */
#define VOWP_ERR_MAP(XX)                         \
  XX(FRAME_TOO_BIG, "frame over the size limit") \
  XX(EMPTY_FRAME, "empty frame")                 \
  XX(TRUNCATED, "stream ended inside a frame")   \
  XX(MALFORMED, "malformed msgpack")             \
  XX(TOO_DEEP, "nesting too deep")               \
  XX(TOO_MANY_OBJECTS, "too many objects")       \
  XX(TRAILING, "trailing bytes in frame")        \
  XX(BAD_SHAPE, "wrong element count or type")   \
  XX(UNKNOWN_TYPE, "unknown message type")       \
  XX(VERSION, "protocol version mismatch")       \
  XX(NOMEM, "out of memory")

typedef enum vowp_err {
  VOWP_OK = 0,
#define VOWP__ERR_ENUM(name, text) VOWP_E_##name,
  VOWP_ERR_MAP(VOWP__ERR_ENUM)
#undef VOWP__ERR_ENUM
} vowp_err;

typedef struct vowp_error {
  vowp_err code;
  uint64_t offset; /* byte offset in the stream where the problem is */
  char text[256];  /* one line, no newline */
} vowp_error;

/* Static text for a code. */
const char* vowp_err_text(vowp_err code);

/* Decoder limits. Zero fields take the defaults. */
typedef struct vowp_limits {
  size_t max_frame;   /* payload bytes; default 64 MiB */
  size_t max_objects; /* msgpack objects in one frame; default 1 Mi */
  unsigned max_depth; /* nested containers in one frame; default and
                         most 31, below msgpack-c's fixed 32 */
} vowp_limits;

#define VOWP_DEFAULT_MAX_FRAME ((size_t)64 << 20)
#define VOWP_DEFAULT_MAX_OBJECTS ((size_t)1 << 20)
#define VOWP_MAX_DEPTH 31u

/* What one value (a task's arguments, a map's item, a result) may hold
 * so that every message carrying it stays within the default limits: a
 * task's arguments sit three containers deep in TASKS, a map item or an
 * item's result four deep in MAPS or RESULTS, and a message's own
 * objects (type, ids, names, seeds) are far fewer than 64. */
#define VOWP_TASK_MAX_DEPTH (VOWP_MAX_DEPTH - 3u)
#define VOWP_ITEM_MAX_DEPTH (VOWP_MAX_DEPTH - 4u)
#define VOWP_VALUE_MAX_OBJECTS (VOWP_DEFAULT_MAX_OBJECTS - 64u)
/* The bytes one result may take: a RESULTS frame holding it alone. */
#define VOWP_VALUE_MAX_BYTES (VOWP_DEFAULT_MAX_FRAME - 64u)

/* The n-byte big-endian number at p (msgpack's byte order). */
static inline uint64_t vowp_read_be(const unsigned char* p, int n) {
  uint64_t x = 0;
  int i;
  for (i = 0; i < n; i++)
    x = x << 8 | p[i];
  return x;
}

/* The environment a pool sets for its workers. */
#define VOWP_ENV_CHANNEL "VOW_WORKER_CHANNEL" /* "3", or "stdio" */
#define VOWP_ENV_PARENT "VOW_PARENT_PID"      /* for the getppid() check */
#define VOWP_ENV_LIMITS "VOW_WORKER_LIMITS"   /* "as=BYTES,cpu=S,nofile=N" */
/* Under a launcher: send an unasked PONG with token 0 (a heartbeat)
 * every this many ms, from a thread that tasks cannot starve. */
#define VOWP_ENV_HEARTBEAT "VOW_HEARTBEAT_MS"

/* Local workers: the descriptor of the side socket that carries
 * shared-memory segments (docs/protocol.md, "Shared memory"). */
#define VOWP_ENV_SHM "VOW_SHM_FD"

/* A value in a shared-memory segment: in place of a task's arguments or
 * of a result, the msgpack ext of type VOWP_EXT_SHM whose 24 bytes are
 * the segment's id, the value's offset in the segment and its length,
 * each 8 bytes big-endian. */
#define VOWP_EXT_SHM 83
#define VOWP_SHM_REF_LEN 27 /* c7 18 53, then the 24 bytes */

static inline void vowp_write_be64(unsigned char* p, uint64_t x) {
  int i;
  for (i = 7; i >= 0; i--, x >>= 8)
    p[i] = (unsigned char)x;
}

static inline void vowp_shm_ref_write(unsigned char* p, uint64_t id,
                                      uint64_t off, uint64_t len) {
  p[0] = 0xc7;
  p[1] = 24;
  p[2] = VOWP_EXT_SHM;
  vowp_write_be64(p + 3, id);
  vowp_write_be64(p + 11, off);
  vowp_write_be64(p + 19, len);
}

/* Whether the n bytes at p are exactly a reference; its fields if so. */
static inline bool vowp_shm_ref_read(const void* at, size_t n, uint64_t* id,
                                     uint64_t* off, uint64_t* len) {
  const unsigned char* p = (const unsigned char*)at;
  if (n != VOWP_SHM_REF_LEN || p[0] != 0xc7 || p[1] != 24 ||
      p[2] != VOWP_EXT_SHM)
    return false;
  *id = vowp_read_be(p + 3, 8);
  *off = vowp_read_be(p + 11, 8);
  *len = vowp_read_be(p + 19, 8);
  return true;
}

/* Where references stand anywhere inside buf[0..len), one msgpack value
 * that vowp_prescan accepted: the offsets of up to max of them into at
 * (NULL: only counted). Returns how many there are. */
size_t vowp_shm_refs(const char* buf, size_t len, size_t* at, size_t max);

/* Writes x as 4 big-endian bytes: frame lengths and array32 counts. */
static inline void vowp_write_be32(unsigned char* p, uint32_t x) {
  p[0] = (unsigned char)(x >> 24);
  p[1] = (unsigned char)(x >> 16);
  p[2] = (unsigned char)(x >> 8);
  p[3] = (unsigned char)x;
}

/* An array header of n elements in 32-bit form (5 bytes), whatever n is:
 * its size is known before the elements are counted. */
static inline void vowp_write_array32(unsigned char* p, uint32_t n) {
  p[0] = 0xdd;
  vowp_write_be32(p + 1, n);
}

/* Borrowed bytes inside a frame. */
typedef struct vowp_slice {
  const char* data;
  size_t len;
} vowp_slice;

typedef struct vowp_task {
  uint64_t id;
  vowp_slice fn;   /* the function's name (str body, not NUL-terminated) */
  vowp_slice args; /* one msgpack object, encoded */
  uint64_t seed;
} vowp_task;

/* A chunk of a map: the function applied to each element of `items` (one
 * encoded msgpack array); element k runs with the seed
 * vowp_task_seed(run_seed, first + k). */
typedef struct vowp_chunk {
  uint64_t id;
  vowp_slice fn;
  vowp_slice items; /* an encoded msgpack array */
  uint64_t run_seed;
  uint64_t first; /* the index of items[0] in the run */
} vowp_chunk;

/* The seed of the task (or map item) with this index in a run seeded with
 * run_seed: splitmix64, so it depends on nothing else. */
uint64_t vowp_task_seed(uint64_t run_seed, uint64_t index);

typedef struct vowp_result {
  uint64_t id;
  vowp_slice value; /* one msgpack object, encoded */
} vowp_result;

/* The items of a batch, read one at a time from the frame's bytes: the
 * decoder has already checked every item, so reading allocates nothing and
 * cannot fail. */
typedef struct vowp_iter {
  const unsigned char* p;   /* next item */
  size_t left;              /* items not yet read */
  const unsigned char* end; /* the message's end: where its last item ends */
} vowp_iter;

/* A decoded message. Slices and iterators point into the decoder's buffer
 * and stay valid until the next call on that decoder. */
typedef struct vowp_msg {
  vowp_type type;
  union {
    struct {
      uint32_t version;
      int64_t pid;
      size_t n;
      vowp_iter functions; /* vowp_next_function */
    } hello;
    struct {
      size_t n;
      vowp_iter items; /* vowp_next_task */
    } tasks;
    struct {
      size_t n;
      vowp_iter items; /* vowp_next_result */
    } results;
    struct {
      size_t n;
      vowp_iter items; /* vowp_next_chunk */
    } maps;
    struct {
      uint64_t id;   /* 0: not about one task */
      uint32_t kind; /* vow_failure_kind_t */
      int64_t code;  /* errno-style, 0 if none */
      vowp_slice message;
      bool has_detail;
      vowp_slice detail; /* e.g. a crash report */
    } error;
    struct {
      uint64_t id;
      double fraction;
      vowp_slice text;
    } progress;
    struct {
      uint64_t id;
    } cancel;
    struct {
      uint64_t token;
    } ping; /* PING and PONG */
  } u;
} vowp_msg;

/* Each fills *out with the next item and returns true, or returns false
 * when the batch is done. */
bool vowp_next_function(vowp_iter* it, vowp_slice* out);
bool vowp_next_task(vowp_iter* it, vowp_task* out);
bool vowp_next_result(vowp_iter* it, vowp_result* out);
bool vowp_next_chunk(vowp_iter* it, vowp_chunk* out);

/* The size of the msgpack object at p, which vowp_prescan has accepted as
 * part of a larger whole: for walking an array's elements. */
size_t vowp_object_size(const char* p);

/* The whole size of a scalar whose size its first byte alone gives
 * (fixint, nil, bool, the fixed-width numbers, fixstr, fixext), indexed by
 * that byte; 0 for every other byte (containers, str, bin, ext and the
 * reserved 0xc1). The walks' fast path past the common objects. */
extern const unsigned char vowp_scalar_size[256];
/* Reads the array header at the start of an encoded object of len bytes:
 * true with the element count in *n and the header's length in *head,
 * false when the object is not an array. */
bool vowp_array_header(const void* bytes, size_t len, uint32_t* n,
                       size_t* head);
/* The same for a str: true with its byte length in *n and the header's
 * length in *head, false when bytes does not start with a str header. */
bool vowp_str_header(const void* bytes, size_t len, size_t* n, size_t* head);

/* ---- pre-scan -------------------------------------------------------- */

/* Checks that buf[0..len) is exactly one well-formed msgpack object within
 * the limits. Returns VOWP_OK, or an error filled in with offsets relative
 * to base_offset. Never reads outside buf, never allocates. */
vowp_err vowp_prescan(const char* buf, size_t len, const vowp_limits* limits,
                      uint64_t base_offset, vowp_error* err);

/* ---- streaming decoder ----------------------------------------------- */

typedef struct vowp_decoder {
  vowp_limits limits;
  char* buf; /* received bytes; frames are parsed in place */
  size_t cap;
  size_t start;        /* first byte not yet consumed */
  size_t end;          /* one past the last byte received */
  uint64_t stream_off; /* stream offset of buf[0] */
  unsigned small_run;  /* frames in a row that fit the first chunk */
  vowp_error error;    /* sticky once set */
} vowp_decoder;

/* limits may be NULL for the defaults. */
void vowp_decoder_init(vowp_decoder* d, const vowp_limits* limits);
void vowp_decoder_destroy(vowp_decoder* d);

/* Where the next bytes should go, for a libuv alloc_cb: *base and *len get
 * free space inside the decoder (grown by doubling as a frame's bytes fill
 * it, up to that frame's size, and only after its length has passed the
 * limit). *len is 0 after an error or when memory runs out. Invalidates
 * the last message. */
void vowp_decoder_buffer(vowp_decoder* d, char** base, size_t* len);
/* n bytes were written at the start of the last buffer given out. */
void vowp_decoder_commit(vowp_decoder* d, size_t n);
/* Copies bytes in (for callers that did not read into the buffer).
 * Returns VOWP_OK or the sticky error. */
vowp_err vowp_decoder_feed(vowp_decoder* d, const void* data, size_t len);
/* Decodes the next whole message. Returns 1 with *msg filled, 0 when more
 * bytes are needed, or -1 on a protocol error (see vowp_decoder_error).
 * After an error the stream cannot be resynchronised: every later call
 * returns -1. */
int vowp_decoder_next(vowp_decoder* d, vowp_msg* msg);
/* For other protocols on the same framing (the job queue's): the next
 * whole frame's payload, pre-scanned with the decoder's limits but not
 * decoded as a worker message. Returns 1, 0 or -1 as vowp_decoder_next. */
int vowp_decoder_next_frame(vowp_decoder* d, vowp_slice* payload);
/* Hands the buffer over (free() it) when the last message returned by
 * vowp_decoder_next ended exactly where the received bytes end, so its
 * slices stay valid in the caller's hands without a copy; NULL otherwise.
 * The decoder starts afresh with an empty buffer. */
char* vowp_decoder_steal(vowp_decoder* d);
/* Bytes received of a frame not yet complete (0 between frames): a
 * reader uses it to notice a peer that stopped in mid-message. */
size_t vowp_decoder_partial(const vowp_decoder* d);
/* Bytes the decoder holds in its buffer now. */
size_t vowp_decoder_capacity(const vowp_decoder* d);
/* Gives back a buffer grown for a big frame when no big frame is pending:
 * for an idle reader that should shrink to its resting size. */
void vowp_decoder_trim(vowp_decoder* d);
/* The peer closed the stream: a partial frame is a TRUNCATED error.
 * Returns 0, or -1 with the error set. */
int vowp_decoder_finish(vowp_decoder* d);
const vowp_error* vowp_decoder_error(const vowp_decoder* d);

/* ---- encoder ---------------------------------------------------------- */

/* Appends whole frames to one growing buffer, so a batch of messages goes
 * out in one write. The packer writes straight into that buffer. */
typedef struct vowp_encoder {
  char* data;
  size_t len;
  size_t cap;
  size_t frame_start; /* where the open frame's header is */
  size_t count_at;    /* where an open batch's count goes; 0: none */
  size_t count;       /* items in the open batch */
  bool failed;        /* a write ran out of memory */
  msgpack_packer pk;
} vowp_encoder;

void vowp_encoder_init(vowp_encoder* e);
void vowp_encoder_destroy(vowp_encoder* e);
/* The frames encoded so far. */
const char* vowp_encoder_data(const vowp_encoder* e, size_t* len);
/* Hands the buffer over (free() it) and resets the encoder. */
char* vowp_encoder_release(vowp_encoder* e, size_t* len);
void vowp_encoder_reset(vowp_encoder* e);

/* Frees the buffer when it is empty and bigger than keep bytes. */
void vowp_encoder_trim(vowp_encoder* e, size_t keep);

/* One call per simple message. Each returns VOWP_OK or VOWP_E_NOMEM. */
vowp_err vowp_encode_hello(vowp_encoder* e, uint32_t version, int64_t pid,
                           const char* const* functions, size_t n);
vowp_err vowp_encode_error(vowp_encoder* e, uint64_t id, uint32_t kind,
                           int64_t code, const char* message,
                           const char* detail /* may be NULL */);
vowp_err vowp_encode_progress(vowp_encoder* e, uint64_t id, double fraction,
                              const char* text);
vowp_err vowp_encode_cancel(vowp_encoder* e, uint64_t id);
vowp_err vowp_encode_ping(vowp_encoder* e, uint64_t token);
vowp_err vowp_encode_pong(vowp_encoder* e, uint64_t token);
vowp_err vowp_encode_shutdown(vowp_encoder* e);

/* Batches: begin with the count, then exactly that many items, then end.
 * An item's args or value is either given as encoded msgpack bytes (_raw)
 * or packed in place: *_open returns the packer, the caller packs exactly
 * one object, then calls *_close. */
void vowp_tasks_begin(vowp_encoder* e, size_t n);
void vowp_task_raw(vowp_encoder* e, uint64_t id, const char* fn,
                   const void* args, size_t args_len, uint64_t seed);
msgpack_packer* vowp_task_open(vowp_encoder* e, uint64_t id, const char* fn);
void vowp_task_close(vowp_encoder* e, uint64_t seed);
void vowp_results_begin(vowp_encoder* e, size_t n);
void vowp_result_raw(vowp_encoder* e, uint64_t id, const void* value,
                     size_t value_len);
msgpack_packer* vowp_result_open(vowp_encoder* e, uint64_t id);
/* A MAPS batch of n chunks; items is one encoded msgpack array. */
void vowp_maps_begin(vowp_encoder* e, size_t n);
void vowp_chunk_raw(vowp_encoder* e, uint64_t id, const char* fn,
                    const void* items, size_t items_len, uint64_t run_seed,
                    uint64_t first);
/* Ends a TASKS, RESULTS or MAPS frame. Returns VOWP_OK or VOWP_E_NOMEM. */
vowp_err vowp_batch_end(vowp_encoder* e);

/* A RESULTS batch whose count is not known in advance: the count is
 * written when the batch ends (as a 32-bit array header). Items go in with
 * vowp_result_open/raw; vowp_open_batch_count says how many so far. */
void vowp_results_begin_open(vowp_encoder* e);
size_t vowp_open_batch_count(const vowp_encoder* e);
/* Ends an open batch; an open batch with no items is dropped whole. */
vowp_err vowp_open_batch_end(vowp_encoder* e);

#ifdef __cplusplus
}
#endif
#endif /* VOW_PROTO_H */
