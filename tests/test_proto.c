/* The wire protocol: golden vectors from docs/protocol.md, round trips,
 * streams cut anywhere, every protocol error, hostile headers. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers_plain.h"
#include "proto.h"

/* ---- golden vectors -------------------------------------------------- */

/* Reads the ```hex golden=NAME block of docs/protocol.md into out. */
static size_t golden(const char* name, unsigned char* out, size_t cap) {
  FILE* f = fopen(VOW_PROTOCOL_MD, "r");
  char line[512], tag[128];
  size_t n = 0;
  int in = 0;
  assert_non_null(f);
  snprintf(tag, sizeof(tag), "```hex golden=%s\n", name);
  while (fgets(line, sizeof(line), f)) {
    if (!in) {
      in = strcmp(line, tag) == 0;
      continue;
    }
    if (strncmp(line, "```", 3) == 0)
      break;
    {
      char* p = line;
      unsigned v;
      int used;
      while (sscanf(p, " %2x%n", &v, &used) == 1) {
        assert_true(n < cap);
        out[n++] = (unsigned char)v;
        p += used;
      }
    }
  }
  fclose(f);
  if (!in)
    fail_msg("no golden vector named %s in %s", name, VOW_PROTOCOL_MD);
  return n;
}

static void check_golden(const char* name, vowp_encoder* e) {
  unsigned char want[256];
  size_t n = golden(name, want, sizeof(want)), len;
  const char* got = vowp_encoder_data(e, &len);
  if (len != n || memcmp(got, want, n) != 0) {
    size_t i;
    fprintf(stderr, "%s encodes as:", name);
    for (i = 0; i < len; i++)
      fprintf(stderr, " %02x", (unsigned char)got[i]);
    fprintf(stderr, "\n");
    fail_msg("%s differs from docs/protocol.md", name);
  }
  vowp_encoder_reset(e);
}

/* Encodes the examples of docs/protocol.md, in its order. */
static void encode_examples(vowp_encoder* e, bool check) {
  static const char* const fns[] = {"sum", "pi"};
  msgpack_packer* pk;
#define DONE(name) \
  if (check)       \
  check_golden(name, e)
  vowp_encode_hello(e, 1, 4242, fns, 2);
  DONE("hello");
  vowp_tasks_begin(e, 2);
  pk = vowp_task_open(e, 1, "sum");
  msgpack_pack_array(pk, 3);
  msgpack_pack_int(pk, 1);
  msgpack_pack_int(pk, 2);
  msgpack_pack_int(pk, 3);
  vowp_task_close(e, 7);
  pk = vowp_task_open(e, 2, "pi");
  msgpack_pack_int(pk, 1000000);
  vowp_task_close(e, 8);
  assert_int_equal(vowp_batch_end(e), VOWP_OK);
  DONE("tasks");
  vowp_results_begin(e, 2);
  msgpack_pack_int(vowp_result_open(e, 1), 6);
  msgpack_pack_double(vowp_result_open(e, 2), 3.5);
  vowp_batch_end(e);
  DONE("results");
  vowp_encode_error(e, 2, 5, -22, "bad input", NULL);
  DONE("error");
  vowp_encode_error(e, 0, 3, 0, "worker died", "signal 11");
  DONE("error_detail");
  vowp_encode_progress(e, 2, 0.5, "halfway");
  DONE("progress");
  vowp_encode_cancel(e, 2);
  DONE("cancel");
  vowp_encode_ping(e, 9);
  DONE("ping");
  vowp_encode_pong(e, 9);
  DONE("pong");
  vowp_encode_shutdown(e);
  DONE("shutdown");
  vowp_maps_begin(e, 1);
  vowp_chunk_raw(e, 5, "sum", "\x92\x92\x01\x02\x92\x03\x04", 7, 42, 5);
  vowp_batch_end(e);
  DONE("maps");
  {
    unsigned char ref[VOWP_SHM_REF_LEN];
    vowp_tasks_begin(e, 1);
    vowp_shm_ref_write(ref, 1, 0, (uint64_t)1 << 20);
    vowp_task_raw(e, 3, "sum", ref, sizeof(ref), 9);
    vowp_batch_end(e);
    DONE("tasks_shm");
    vowp_results_begin(e, 1);
    vowp_shm_ref_write(ref, 1, 4096, (uint64_t)2 << 20);
    vowp_result_raw(e, 3, ref, sizeof(ref));
    vowp_batch_end(e);
    DONE("results_shm");
    {
      unsigned char args[2 + VOWP_SHM_REF_LEN] = {0x92};
      size_t at[2];
      vowp_shm_ref_write(args + 1, 2, 4096, 65536);
      args[1 + VOWP_SHM_REF_LEN] = 5;
      /* the part is found where it stands, and nowhere else */
      assert_int_equal(vowp_shm_refs((const char*)args, sizeof(args), at, 2),
                       1);
      assert_int_equal(at[0], 1);
      vowp_tasks_begin(e, 1);
      vowp_task_raw(e, 4, "sum", args, sizeof(args), 9);
      vowp_batch_end(e);
      DONE("tasks_part");
    }
  }
#undef DONE
}

static void golden_vectors_match_spec(void** state) {
  vowp_encoder e;
  (void)state;
  vowp_encoder_init(&e);
  encode_examples(&e, true);
  vowp_encoder_destroy(&e);
}

static bool slice_is(vowp_slice s, const char* text) {
  return s.len == strlen(text) && memcmp(s.data, text, s.len) == 0;
}

static void golden_vectors_decode(void** state) {
  unsigned char buf[256];
  vowp_decoder d;
  vowp_msg m;
  vowp_slice fn;
  vowp_task t;
  vowp_result r;
  size_t n;
  (void)state;
  vowp_decoder_init(&d, NULL);
  n = golden("hello", buf, sizeof(buf));
  vowp_decoder_feed(&d, buf, n);
  assert_int_equal(vowp_decoder_next(&d, &m), 1);
  assert_int_equal(m.type, VOWP_HELLO);
  assert_int_equal(m.u.hello.version, 1);
  assert_int_equal(m.u.hello.pid, 4242);
  assert_int_equal(m.u.hello.n, 2);
  assert_true(vowp_next_function(&m.u.hello.functions, &fn));
  assert_true(slice_is(fn, "sum"));
  assert_true(vowp_next_function(&m.u.hello.functions, &fn));
  assert_true(slice_is(fn, "pi"));
  assert_false(vowp_next_function(&m.u.hello.functions, &fn));

  n = golden("tasks", buf, sizeof(buf));
  vowp_decoder_feed(&d, buf, n);
  assert_int_equal(vowp_decoder_next(&d, &m), 1);
  assert_int_equal(m.type, VOWP_TASKS);
  assert_int_equal(m.u.tasks.n, 2);
  assert_true(vowp_next_task(&m.u.tasks.items, &t));
  assert_int_equal(t.id, 1);
  assert_true(slice_is(t.fn, "sum"));
  assert_int_equal(t.args.len, 4);
  assert_memory_equal(t.args.data, "\x93\x01\x02\x03", 4);
  assert_int_equal(t.seed, 7);
  assert_true(vowp_next_task(&m.u.tasks.items, &t));
  assert_int_equal(t.id, 2);
  assert_int_equal(t.seed, 8);
  assert_false(vowp_next_task(&m.u.tasks.items, &t));

  n = golden("results", buf, sizeof(buf));
  vowp_decoder_feed(&d, buf, n);
  assert_int_equal(vowp_decoder_next(&d, &m), 1);
  assert_true(vowp_next_result(&m.u.results.items, &r));
  assert_int_equal(r.id, 1);
  assert_memory_equal(r.value.data, "\x06", 1);
  assert_true(vowp_next_result(&m.u.results.items, &r));
  assert_int_equal(r.value.len, 9);

  n = golden("error", buf, sizeof(buf));
  vowp_decoder_feed(&d, buf, n);
  assert_int_equal(vowp_decoder_next(&d, &m), 1);
  assert_int_equal(m.u.error.id, 2);
  assert_int_equal(m.u.error.kind, 5);
  assert_int_equal(m.u.error.code, -22);
  assert_true(slice_is(m.u.error.message, "bad input"));
  assert_false(m.u.error.has_detail);

  n = golden("progress", buf, sizeof(buf));
  vowp_decoder_feed(&d, buf, n);
  assert_int_equal(vowp_decoder_next(&d, &m), 1);
  assert_true(m.u.progress.fraction == 0.5);
  assert_true(slice_is(m.u.progress.text, "halfway"));
  assert_int_equal(vowp_decoder_next(&d, &m), 0);
  assert_int_equal(vowp_decoder_finish(&d), 0);
  vowp_decoder_destroy(&d);
}

/* ---- round trips ----------------------------------------------------- */

/* Re-encodes a decoded message: equal bytes prove every field survived. */
static void reencode(vowp_encoder* e, vowp_msg* m) {
  vowp_iter it;
  switch (m->type) {
    case VOWP_HELLO: {
      const char* names[64];
      char store[64][64];
      vowp_slice s;
      size_t i = 0;
      it = m->u.hello.functions;
      while (vowp_next_function(&it, &s)) {
        assert_true(i < 64 && s.len < 64);
        memcpy(store[i], s.data, s.len);
        store[i][s.len] = '\0';
        names[i] = store[i];
        i++;
      }
      vowp_encode_hello(e, m->u.hello.version, m->u.hello.pid, names, i);
      return;
    }
    case VOWP_TASKS: {
      vowp_task t;
      char fn[256];
      it = m->u.tasks.items;
      vowp_tasks_begin(e, m->u.tasks.n);
      while (vowp_next_task(&it, &t)) {
        assert_true(t.fn.len < sizeof(fn));
        memcpy(fn, t.fn.data, t.fn.len);
        fn[t.fn.len] = '\0';
        vowp_task_raw(e, t.id, fn, t.args.data, t.args.len, t.seed);
      }
      vowp_batch_end(e);
      return;
    }
    case VOWP_RESULTS: {
      vowp_result r;
      it = m->u.results.items;
      vowp_results_begin(e, m->u.results.n);
      while (vowp_next_result(&it, &r))
        vowp_result_raw(e, r.id, r.value.data, r.value.len);
      vowp_batch_end(e);
      return;
    }
    case VOWP_ERROR: {
      char msg[256], detail[256];
      memcpy(msg, m->u.error.message.data, m->u.error.message.len);
      msg[m->u.error.message.len] = '\0';
      if (m->u.error.has_detail) {
        memcpy(detail, m->u.error.detail.data, m->u.error.detail.len);
        detail[m->u.error.detail.len] = '\0';
      }
      vowp_encode_error(e, m->u.error.id, m->u.error.kind, m->u.error.code, msg,
                        m->u.error.has_detail ? detail : NULL);
      return;
    }
    case VOWP_PROGRESS: {
      char text[256];
      memcpy(text, m->u.progress.text.data, m->u.progress.text.len);
      text[m->u.progress.text.len] = '\0';
      vowp_encode_progress(e, m->u.progress.id, m->u.progress.fraction, text);
      return;
    }
    case VOWP_CANCEL:
      vowp_encode_cancel(e, m->u.cancel.id);
      return;
    case VOWP_PING:
      vowp_encode_ping(e, m->u.ping.token);
      return;
    case VOWP_PONG:
      vowp_encode_pong(e, m->u.ping.token);
      return;
    case VOWP_SHUTDOWN:
      vowp_encode_shutdown(e);
      return;
    case VOWP_MAPS: {
      vowp_chunk k;
      char fn[256];
      it = m->u.maps.items;
      vowp_maps_begin(e, m->u.maps.n);
      while (vowp_next_chunk(&it, &k)) {
        memcpy(fn, k.fn.data, k.fn.len);
        fn[k.fn.len] = '\0';
        vowp_chunk_raw(e, k.id, fn, k.items.data, k.items.len, k.run_seed,
                       k.first);
      }
      vowp_batch_end(e);
      return;
    }
  }
}

/* A stream holding every message type with edge values. */
static void encode_edge_stream(vowp_encoder* e, size_t big_bin) {
  static const char* const none[1] = {NULL};
  static const char* const one_empty[] = {""};
  char* bin = malloc(big_bin);
  msgpack_packer* pk;
  int i;
  memset(bin, 0xab, big_bin);
  vowp_encode_hello(e, VOWP_VERSION, -1, none, 0);
  vowp_encode_hello(e, VOWP_VERSION, INT64_MAX, one_empty, 1);
  vowp_tasks_begin(e, 0);
  vowp_batch_end(e);
  vowp_tasks_begin(e, 4);
  vowp_task_raw(e, 0, "", "\xc0", 1, 0);
  vowp_task_raw(e, UINT64_MAX, "f", "\x90", 1, UINT64_MAX);
  pk = vowp_task_open(e, 7, "nested");
  /* 20 levels of {"k": [ ... ]} around a string */
  for (i = 0; i < 10; i++) {
    msgpack_pack_map(pk, 1);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "k", 1);
    msgpack_pack_array(pk, 1);
  }
  msgpack_pack_str(pk, 3);
  msgpack_pack_str_body(pk, "end", 3);
  vowp_task_close(e, 3);
  pk = vowp_task_open(e, 8, "bin");
  msgpack_pack_bin(pk, big_bin);
  msgpack_pack_bin_body(pk, bin, big_bin);
  vowp_task_close(e, 4);
  vowp_batch_end(e);
  vowp_results_begin(e, 2);
  vowp_result_raw(e, 0, "\xa0", 1);
  msgpack_pack_double(vowp_result_open(e, UINT64_MAX), -0.0);
  vowp_batch_end(e);
  vowp_encode_error(e, 0, 0, INT64_MIN, "", "");
  vowp_encode_error(e, UINT64_MAX, UINT32_MAX, INT64_MAX, "x", NULL);
  vowp_encode_progress(e, 1, 1.0, "");
  vowp_encode_cancel(e, UINT64_MAX);
  vowp_encode_ping(e, 0);
  vowp_encode_pong(e, UINT64_MAX);
  vowp_encode_shutdown(e);
  free(bin);
}

/* Decodes everything in d and re-encodes it into out. Returns the number
 * of messages. */
static size_t drain_into(vowp_decoder* d, vowp_encoder* out) {
  vowp_msg m;
  size_t n = 0;
  int rc;
  while ((rc = vowp_decoder_next(d, &m)) == 1) {
    reencode(out, &m);
    n++;
  }
  if (rc < 0)
    fail_msg("decode error: %s", vowp_decoder_error(d)->text);
  return n;
}

static void round_trip_every_type(void** state) {
  vowp_encoder e, back;
  vowp_decoder d;
  const char* data;
  const char* again;
  size_t len, len2;
  (void)state;
  vowp_encoder_init(&e);
  vowp_encoder_init(&back);
  encode_edge_stream(&e, (size_t)1 << 20);
  data = vowp_encoder_data(&e, &len);
  vowp_decoder_init(&d, NULL);
  assert_int_equal(vowp_decoder_feed(&d, data, len), VOWP_OK);
  assert_int_equal(drain_into(&d, &back), 12);
  assert_int_equal(vowp_decoder_finish(&d), 0);
  again = vowp_encoder_data(&back, &len2);
  assert_int_equal(len2, len);
  assert_memory_equal(again, data, len);
  vowp_decoder_destroy(&d);
  vowp_encoder_destroy(&e);
  vowp_encoder_destroy(&back);
}

/* Feeds data cut into the given chunk sizes, decoding as it goes, and
 * checks that re-encoding gives the data back. */
static void feed_in_chunks(const char* data, size_t len, const size_t* cuts,
                           size_t ncuts) {
  vowp_decoder d;
  vowp_encoder back;
  size_t pos = 0, i = 0, len2;
  vowp_decoder_init(&d, NULL);
  vowp_encoder_init(&back);
  while (pos < len) {
    size_t n = i < ncuts ? cuts[i++] : len - pos;
    if (n > len - pos)
      n = len - pos;
    assert_int_equal(vowp_decoder_feed(&d, data + pos, n), VOWP_OK);
    pos += n;
    drain_into(&d, &back);
  }
  assert_int_equal(vowp_decoder_finish(&d), 0);
  assert_memory_equal(vowp_encoder_data(&back, &len2), data, len);
  assert_int_equal(len2, len);
  vowp_encoder_destroy(&back);
  vowp_decoder_destroy(&d);
}

static void stream_cut_at_every_byte(void** state) {
  vowp_encoder e;
  const char* data;
  size_t len, cut, ones[4096];
  (void)state;
  vowp_encoder_init(&e);
  encode_edge_stream(&e, 300);
  encode_examples(&e, false);
  data = vowp_encoder_data(&e, &len);
  assert_true(len < 4096);
  for (cut = 0; cut <= len; cut++)
    feed_in_chunks(data, len, &cut, 1);
  for (cut = 0; cut < len; cut++)
    ones[cut] = 1;
  feed_in_chunks(data, len, ones, len); /* one byte at a time */
  vowp_encoder_destroy(&e);
}

static void stream_random_chunkings(void** state) {
  vowp_encoder e;
  const char* data;
  size_t len, cuts[8192], round, rounds = scaled_plain(3000);
  (void)state;
  vowp_encoder_init(&e);
  encode_edge_stream(&e, 100000); /* a frame larger than the 64 KiB chunk */
  encode_examples(&e, false);
  data = vowp_encoder_data(&e, &len);
  srand(12345);
  for (round = 0; round < rounds; round++) {
    size_t i, total = 0;
    size_t max = (size_t)1 << (rand() % 17); /* 1 byte .. 64 KiB pieces */
    for (i = 0; i < 8192 && total < len; i++) {
      cuts[i] = 1 + (size_t)rand() % max;
      total += cuts[i];
    }
    feed_in_chunks(data, len, cuts, i);
  }
  vowp_encoder_destroy(&e);
}

/* The libuv way: read straight into the decoder's buffer. */
static void buffer_and_commit(void** state) {
  vowp_encoder e;
  vowp_decoder d;
  vowp_msg m;
  const char* data;
  size_t len, pos = 0, got = 0;
  (void)state;
  vowp_encoder_init(&e);
  encode_edge_stream(&e, (size_t)200 << 10);
  data = vowp_encoder_data(&e, &len);
  vowp_decoder_init(&d, NULL);
  while (pos < len) {
    char* base;
    size_t room, n;
    vowp_decoder_buffer(&d, &base, &room);
    assert_true(room > 0);
    n = room < 1000 ? room : 1000;
    if (n > len - pos)
      n = len - pos;
    memcpy(base, data + pos, n); /* what read(2) would do */
    vowp_decoder_commit(&d, n);
    pos += n;
    while (vowp_decoder_next(&d, &m) == 1)
      got++;
  }
  assert_int_equal(got, 12);
  /* The big frame (the 200 KiB bin and a few small tasks) made the
   * buffer grow to fit it, not beyond. */
  assert_true(d.cap > ((size_t)200 << 10) &&
              d.cap <= ((size_t)200 << 10) + 256);
  /* Once small frames have come for a while, the memory goes back. */
  for (pos = 0; pos < 100; pos++) {
    char* base;
    size_t room;
    vowp_decoder_buffer(&d, &base, &room);
    memcpy(base, "\x00\x00\x00\x03\x92\x07\x01", 7);
    vowp_decoder_commit(&d, 7);
    assert_int_equal(vowp_decoder_next(&d, &m), 1);
  }
  vowp_decoder_buffer(&d, &(char*){NULL}, &pos);
  assert_int_equal(d.cap, 64 * 1024);
  vowp_decoder_destroy(&d);
  vowp_encoder_destroy(&e);
}

/* ---- protocol errors ------------------------------------------------- */

/* Feeds one frame (payload given, header added) and expects an error. */
static const vowp_error* expect_error(vowp_decoder* d, const void* payload,
                                      size_t len, vowp_err code) {
  unsigned char h[4];
  vowp_msg m;
  h[0] = (unsigned char)(len >> 24);
  h[1] = (unsigned char)(len >> 16);
  h[2] = (unsigned char)(len >> 8);
  h[3] = (unsigned char)len;
  vowp_decoder_feed(d, h, 4);
  vowp_decoder_feed(d, payload, len);
  assert_int_equal(vowp_decoder_next(d, &m), -1);
  if (vowp_decoder_error(d)->code != code)
    fail_msg("expected %s, got %s: %s", vowp_err_text(code),
             vowp_err_text(vowp_decoder_error(d)->code),
             vowp_decoder_error(d)->text);
  /* The error is sticky: the stream cannot be trusted past it. */
  assert_int_equal(vowp_decoder_next(d, &m), -1);
  return vowp_decoder_error(d);
}

#define EXPECT(payload, code, text_part)                                 \
  do {                                                                   \
    vowp_decoder d_;                                                     \
    const vowp_error* err_;                                              \
    vowp_decoder_init(&d_, NULL);                                        \
    err_ = expect_error(&d_, payload, sizeof(payload) - 1, code);        \
    if (strstr(err_->text, text_part) == NULL)                           \
      fail_msg("error text \"%s\" lacks \"%s\"", err_->text, text_part); \
    vowp_decoder_destroy(&d_);                                           \
  } while (0)

static void every_protocol_error(void** state) {
  vowp_decoder d;
  vowp_limits small = {100, 10, 0};
  vowp_msg m;
  (void)state;
  /* Frame over the limit: refused on its header, nothing buffered. */
  vowp_decoder_init(&d, &small);
  vowp_decoder_feed(&d, "\x00\x00\x00\x65", 4);
  assert_int_equal(vowp_decoder_next(&d, &m), -1);
  assert_int_equal(vowp_decoder_error(&d)->code, VOWP_E_FRAME_TOO_BIG);
  assert_non_null(strstr(vowp_decoder_error(&d)->text, "101 bytes"));
  assert_int_equal(vowp_decoder_feed(&d, "more", 4), VOWP_E_FRAME_TOO_BIG);
  vowp_decoder_destroy(&d);

  vowp_decoder_init(&d, NULL);
  vowp_decoder_feed(&d, "\x00\x00\x00\x00", 4);
  assert_int_equal(vowp_decoder_next(&d, &m), -1);
  assert_int_equal(vowp_decoder_error(&d)->code, VOWP_E_EMPTY_FRAME);
  vowp_decoder_destroy(&d);

  /* Truncated: inside the header, and inside the payload. */
  vowp_decoder_init(&d, NULL);
  vowp_decoder_feed(&d, "\x00\x00", 2);
  assert_int_equal(vowp_decoder_next(&d, &m), 0);
  assert_int_equal(vowp_decoder_finish(&d), -1);
  assert_int_equal(vowp_decoder_error(&d)->code, VOWP_E_TRUNCATED);
  assert_non_null(strstr(vowp_decoder_error(&d)->text, "2 of 4 bytes"));
  vowp_decoder_destroy(&d);
  vowp_decoder_init(&d, NULL);
  vowp_decoder_feed(&d, "\x00\x00\x00\x03\x92\x07", 6);
  assert_int_equal(vowp_decoder_next(&d, &m), 0);
  assert_int_equal(vowp_decoder_finish(&d), -1);
  assert_non_null(strstr(vowp_decoder_error(&d)->text, "6 of 7 bytes"));
  vowp_decoder_destroy(&d);

  EXPECT("\x92\x07\xc1", VOWP_E_MALFORMED,
         "PING: reserved byte 0xc1 header does not fit in the 1 bytes left at "
         "byte 6");
  EXPECT("\x92\x07\xcd\x01", VOWP_E_MALFORMED, "does not fit");
  EXPECT("\x92\x92\x07\x01", VOWP_E_MALFORMED, "frame ends where another");
  EXPECT("\x92\x07\x01\x01", VOWP_E_TRAILING, "1 trailing bytes");
  EXPECT("\x92\x63\x01", VOWP_E_UNKNOWN_TYPE, "unknown message type 99");
  EXPECT("\x91\x63", VOWP_E_UNKNOWN_TYPE, "at byte 5");
  EXPECT("\x90", VOWP_E_BAD_SHAPE, "no message type");
  EXPECT("\x01", VOWP_E_BAD_SHAPE, "expected array, got int");
  EXPECT("\x93\x07\x01\x02", VOWP_E_BAD_SHAPE, "PING: 3 elements, expected 2");
  EXPECT("\x92\x07\xa1x", VOWP_E_BAD_SHAPE,
         "PING: field token: expected unsigned int, got str at byte 6");
  EXPECT("\x92\x02\x91\x93\x01\xa1\x66\x00", VOWP_E_BAD_SHAPE,
         "TASKS: task has 3 elements, expected 4");
  EXPECT("\x92\x02\x91\x94\x01\x02\x00\x00", VOWP_E_BAD_SHAPE,
         "TASKS: field task fn: expected str, got int");
  EXPECT("\x94\x01\x02\x01\x90", VOWP_E_VERSION,
         "peer speaks protocol version 2, this side speaks 1");
  EXPECT("\x96\x04\x01\x05\x00\xa0\x01", VOWP_E_BAD_SHAPE,
         "ERROR: field detail: expected str or nil, got int");
  EXPECT("\x92\x0a\x91\x95\x01\xa1\x66\x01\x00\x00", VOWP_E_BAD_SHAPE,
         "MAPS: field chunk items: expected array, got int");

  /* Too many objects, with a small limit. */
  vowp_decoder_init(&d, &small);
  expect_error(&d, "\x92\x03\x9a\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01", 13,
               VOWP_E_TOO_MANY_OBJECTS);
  assert_non_null(strstr(vowp_decoder_error(&d)->text, "more than 10"));
  vowp_decoder_destroy(&d);
}

/* A TASKS frame whose whole nesting is `depth` containers. */
static void nested_frame(vowp_encoder* e, unsigned depth) {
  msgpack_packer* pk;
  unsigned i;
  vowp_tasks_begin(e, 1);         /* the message and the batch: 2 levels */
  pk = vowp_task_open(e, 1, "f"); /* the task tuple: 3 */
  for (i = 3; i < depth; i++)
    msgpack_pack_array(pk, 1);
  msgpack_pack_nil(pk);
  vowp_task_close(e, 0);
  vowp_batch_end(e);
}

static void nesting_31_32_33(void** state) {
  unsigned depth;
  (void)state;
  for (depth = 31; depth <= 33; depth++) {
    vowp_encoder e;
    vowp_decoder d;
    vowp_msg m;
    const char* data;
    size_t len;
    msgpack_unpacked un;
    size_t off = 0;
    int raw;
    vowp_encoder_init(&e);
    nested_frame(&e, depth);
    data = vowp_encoder_data(&e, &len);
    vowp_decoder_init(&d, NULL);
    vowp_decoder_feed(&d, data, len);
    if (depth <= 31) {
      assert_int_equal(vowp_decoder_next(&d, &m), 1);
    } else {
      assert_int_equal(vowp_decoder_next(&d, &m), -1);
      assert_int_equal(vowp_decoder_error(&d)->code, VOWP_E_TOO_DEEP);
      assert_non_null(strstr(vowp_decoder_error(&d)->text, "nesting too deep"));
    }
    /* What msgpack-c alone says of the same payload: at 33 it runs out of
     * its fixed stack and calls it "out of memory". */
    msgpack_unpacked_init(&un);
    raw = msgpack_unpack_next(&un, data + 4, len - 4, &off);
    assert_int_equal(
        raw, depth <= 32 ? MSGPACK_UNPACK_SUCCESS : MSGPACK_UNPACK_NOMEM_ERROR);
    msgpack_unpacked_destroy(&un);
    vowp_decoder_destroy(&d);
    vowp_encoder_destroy(&e);
  }
}

/* Headers that claim far more than the frame holds. */
static const struct {
  const char* bytes;
  size_t len;
  const char* says;
} hostile[] = {
    {"\x92\x03\xdd\xff\xff\xff\xff", 7,
     "RESULTS: array of 4294967295 elements exceeds the 0 bytes left at "
     "byte 6"},
    {"\x92\x03\xdf\xff\xff\xff\xff", 7, "map of 8589934590 elements"},
    {"\x92\x03\xdb\xff\xff\xff\xff", 7, "str of 4294967295 bytes"},
    {"\x92\x03\xc6\xff\xff\xff\xff", 7, "bin of 4294967295 bytes"},
    {"\x92\x03\xc9\xff\xff\xff\xff\x01", 8, "ext of 4294967295 bytes"},
    {"\x92\x03\xdd\x00\xff\xff\xff", 7, "array of 16777215 elements"},
};

static void hostile_headers_rejected(void** state) {
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
    vowp_decoder d;
    const vowp_error* err;
    vowp_decoder_init(&d, NULL);
    err = expect_error(&d, hostile[i].bytes, hostile[i].len, VOWP_E_MALFORMED);
    if (strstr(err->text, hostile[i].says) == NULL)
      fail_msg("\"%s\" lacks \"%s\"", err->text, hostile[i].says);
    assert_non_null(strstr(err->text, "exceeds the"));
    assert_true(d.cap <= 64 * 1024); /* nothing grew for the claim */
    vowp_decoder_destroy(&d);
  }
}

/* In a child process, so its peak RSS is its own: thousands of hostile
 * frames leave the peak small. */
static void hostile_headers_keep_peak_memory_small(void** state) {
  pid_t pid;
  int status;
  (void)state;
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rusage before, after;
    int round;
    size_t i;
    getrusage(RUSAGE_SELF, &before);
    for (round = 0; round < 2000; round++) {
      for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        vowp_decoder d;
        vowp_msg m;
        unsigned char h[4] = {0, 0, 0, (unsigned char)hostile[i].len};
        vowp_decoder_init(&d, NULL);
        vowp_decoder_feed(&d, h, 4);
        vowp_decoder_feed(&d, hostile[i].bytes, hostile[i].len);
        if (vowp_decoder_next(&d, &m) != -1)
          _exit(2);
        vowp_decoder_destroy(&d);
      }
    }
    getrusage(RUSAGE_SELF, &after);
    /* ru_maxrss is in KiB: allow 16 MiB of growth at most. */
    _exit(after.ru_maxrss - before.ru_maxrss < 16 * 1024 ? 0 : 3);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* A header may claim any length up to the limit: the buffer follows the
 * bytes that really arrive, so a peer claiming 60 MiB and sending little
 * costs little. */
static void claimed_length_is_not_allocated(void** state) {
  vowp_decoder d;
  vowp_msg m;
  char* base;
  size_t room, got = 4;
  const size_t claim = (size_t)60 << 20;
  (void)state;
  vowp_decoder_init(&d, NULL);
  vowp_decoder_buffer(&d, &base, &room);
  memcpy(base, "\x03\xc0\x00\x00", 4); /* 60 MiB, under the 64 MiB limit */
  vowp_decoder_commit(&d, 4);
  while (got < 4 + ((size_t)1 << 20)) {
    vowp_decoder_buffer(&d, &base, &room);
    assert_true(room > 0);
    memset(base, 0x90, room);
    vowp_decoder_commit(&d, room);
    got += room;
    assert_int_equal(vowp_decoder_next(&d, &m), 0);
    assert_int_equal(vowp_decoder_partial(&d), got);
    /* Never more than twice what arrived (and one first chunk). */
    assert_true(vowp_decoder_capacity(&d) <= 2 * got ||
                vowp_decoder_capacity(&d) == 64 * 1024);
  }
  assert_true(vowp_decoder_capacity(&d) < claim / 16);
  assert_int_equal(vowp_decoder_finish(&d), -1);
  assert_non_null(strstr(vowp_decoder_error(&d)->text, "stream ended inside"));
  vowp_decoder_destroy(&d);
}

/* Every first byte, followed by 0 to 40 zero bytes (a zero is a whole
 * object: fixint 0): the pre-scan accepts exactly what msgpack-c reads as
 * one object with nothing left over, and vowp_object_size measures it as
 * msgpack-c does. The walks' fast path for scalars is checked here
 * against an independent reader, byte value by byte value. */
static void every_first_byte_as_msgpack_c_reads_it(void** state) {
  unsigned char buf[48];
  unsigned b;
  size_t len;
  (void)state;
  for (b = 0; b < 256; b++) {
    for (len = 1; len <= 41; len++) {
      vowp_limits lim = {0, (size_t)-1, VOWP_MAX_DEPTH};
      vowp_error err;
      msgpack_unpacked un;
      size_t off = 0;
      msgpack_unpack_return raw;
      vowp_err ours;
      memset(buf, 0, sizeof(buf));
      buf[0] = (unsigned char)b;
      ours = vowp_prescan((const char*)buf, len, &lim, 0, &err);
      msgpack_unpacked_init(&un);
      raw = msgpack_unpack_next(&un, (const char*)buf, len, &off);
      msgpack_unpacked_destroy(&un);
      if ((ours == VOWP_OK) != (raw == MSGPACK_UNPACK_SUCCESS && off == len))
        fail_msg("byte 0x%02x, %zu bytes: prescan %s, msgpack-c %d after %zu",
                 b, len, ours == VOWP_OK ? "accepts" : err.text, (int)raw, off);
      if (ours == VOWP_OK)
        assert_int_equal(vowp_object_size((const char*)buf), len);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(golden_vectors_match_spec),
      cmocka_unit_test(golden_vectors_decode),
      cmocka_unit_test(round_trip_every_type),
      cmocka_unit_test(stream_cut_at_every_byte),
      cmocka_unit_test(stream_random_chunkings),
      cmocka_unit_test(buffer_and_commit),
      cmocka_unit_test(every_protocol_error),
      cmocka_unit_test(nesting_31_32_33),
      cmocka_unit_test(hostile_headers_rejected),
      cmocka_unit_test(hostile_headers_keep_peak_memory_small),
      cmocka_unit_test(claimed_length_is_not_allocated),
      cmocka_unit_test(every_first_byte_as_msgpack_c_reads_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
