/* bench/proto: the protocol layer against raw msgpack-c on the same
 * objects, in one run.
 *
 * Each round encodes one message, moves its bytes into the receiver's
 * buffer (as a read(2) from a pipe would) and decodes it, reading every
 * field. vow: vowp_encoder, then vowp_decoder_buffer/commit/next. Raw
 * msgpack-c: msgpack_packer into an sbuffer, then msgpack_unpacker's
 * reserve/consumed/next and the fields from the msgpack_object tree.
 *
 *   proto [ROUNDS]   (default 2,000,000 small; 2,000 of 1 MiB)
 *
 * Prints "shape<TAB>vow<TAB>raw<TAB>unit" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint64_t sink; /* keeps the reads from being optimised out */

enum { TASK, RESULT, BIG };

/* ---- vow --------------------------------------------------------------- */

static double run_vow(int shape, size_t rounds, const char* bin, size_t blen) {
  vowp_encoder e;
  vowp_decoder d;
  vowp_msg m;
  size_t i;
  double t0;
  vowp_encoder_init(&e);
  vowp_decoder_init(&d, NULL);
  t0 = now_s();
  for (i = 0; i < rounds; i++) {
    const char* data;
    char* base;
    size_t len, room;
    vowp_encoder_reset(&e);
    if (shape == RESULT) {
      vowp_results_begin(&e, 1);
      msgpack_pack_int64(vowp_result_open(&e, i + 1), 0x1234567890LL);
    } else {
      msgpack_packer* pk;
      vowp_tasks_begin(&e, 1);
      pk = vowp_task_open(&e, i + 1, "sum");
      if (shape == BIG) {
        msgpack_pack_bin(pk, blen);
        msgpack_pack_bin_body(pk, bin, blen);
      } else {
        msgpack_pack_int64(pk, 0x1234567890LL);
      }
      vowp_task_close(&e, 42);
    }
    vowp_batch_end(&e);
    data = vowp_encoder_data(&e, &len);
    /* The pipe: reads land in the decoder's buffer, a piece at a time
     * until the frame's header is known, then the rest at once. */
    while (len > 0) {
      size_t n;
      vowp_decoder_buffer(&d, &base, &room);
      if (room == 0)
        abort();
      n = room < len ? room : len;
      memcpy(base, data, n);
      vowp_decoder_commit(&d, n);
      data += n;
      len -= n;
    }
    if (vowp_decoder_next(&d, &m) != 1)
      abort();
    if (shape == RESULT) {
      vowp_result r;
      vowp_next_result(&m.u.results.items, &r);
      sink += r.id + r.value.len;
    } else {
      vowp_task t;
      vowp_next_task(&m.u.tasks.items, &t);
      sink += t.id + t.fn.len + t.args.len + t.seed;
    }
  }
  t0 = now_s() - t0;
  vowp_decoder_destroy(&d);
  vowp_encoder_destroy(&e);
  return t0;
}

/* ---- raw msgpack-c ----------------------------------------------------- */

static double run_raw(int shape, size_t rounds, const char* bin, size_t blen) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_unpacker up;
  msgpack_unpacked un;
  size_t i;
  double t0;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_unpacker_init(&up, 64 << 10);
  msgpack_unpacked_init(&un);
  t0 = now_s();
  for (i = 0; i < rounds; i++) {
    msgpack_object* item;
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint8(&pk, shape == RESULT ? 3 : 2);
    msgpack_pack_array(&pk, 1);
    if (shape == RESULT) {
      msgpack_pack_array(&pk, 2);
      msgpack_pack_uint64(&pk, i + 1);
      msgpack_pack_int64(&pk, 0x1234567890LL);
    } else {
      msgpack_pack_array(&pk, 4);
      msgpack_pack_uint64(&pk, i + 1);
      msgpack_pack_str(&pk, 3);
      msgpack_pack_str_body(&pk, "sum", 3);
      if (shape == BIG) {
        msgpack_pack_bin(&pk, blen);
        msgpack_pack_bin_body(&pk, bin, blen);
      } else {
        msgpack_pack_int64(&pk, 0x1234567890LL);
      }
      msgpack_pack_uint64(&pk, 42);
    }
    if (!msgpack_unpacker_reserve_buffer(&up, sb.size))
      abort();
    memcpy(msgpack_unpacker_buffer(&up), sb.data, sb.size); /* the pipe */
    msgpack_unpacker_buffer_consumed(&up, sb.size);
    if (msgpack_unpacker_next(&up, &un) != MSGPACK_UNPACK_SUCCESS)
      abort();
    /* The same checks and reads the protocol layer makes. */
    if (un.data.type != MSGPACK_OBJECT_ARRAY || un.data.via.array.size != 2)
      abort();
    item = &un.data.via.array.ptr[1].via.array.ptr[0];
    if (shape == RESULT) {
      sink += item->via.array.ptr[0].via.u64 +
              (uint64_t)item->via.array.ptr[1].via.i64;
    } else {
      msgpack_object* f = item->via.array.ptr;
      if (item->via.array.size != 4 || f[1].type != MSGPACK_OBJECT_STR)
        abort();
      sink += f[0].via.u64 + f[1].via.str.size + f[3].via.u64 +
              (shape == BIG ? f[2].via.bin.size : (uint64_t)f[2].via.i64);
    }
  }
  t0 = now_s() - t0;
  msgpack_unpacked_destroy(&un);
  msgpack_unpacker_destroy(&up);
  msgpack_sbuffer_destroy(&sb);
  return t0;
}

static void row(const char* shape, int which, size_t rounds, const char* bin,
                size_t blen) {
  /* Alternate, best of three each, so neither side gets a colder cache. */
  double best_vow = 1e9, best_raw = 1e9;
  int k;
  for (k = 0; k < 3; k++) {
    double v = run_vow(which, rounds, bin, blen);
    double r = run_raw(which, rounds, bin, blen);
    if (v < best_vow)
      best_vow = v;
    if (r < best_raw)
      best_raw = r;
  }
  if (which == BIG)
    printf("%s\t%.0f\t%.0f\tMB/s\n", shape,
           (double)rounds * (double)blen / best_vow / 1e6,
           (double)rounds * (double)blen / best_raw / 1e6);
  else
    printf("%s\t%.0f\t%.0f\tmsg/s\n", shape, (double)rounds / best_vow,
           (double)rounds / best_raw);
}

int main(int argc, char** argv) {
  size_t rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
  size_t blen = (size_t)1 << 20;
  char* bin = malloc(blen);
  memset(bin, 0x5a, blen);
  row("small_task", TASK, rounds, NULL, 0);
  row("small_result", RESULT, rounds, NULL, 0);
  row("task_1MiB_bin", BIG, rounds / 1000 ? rounds / 1000 : 1, bin, blen);
  free(bin);
  return sink == 0;
}
