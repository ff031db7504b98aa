/* Values: msgpack bytes read back, pointers with destructors, arrays,
 * failures, reference counts. */
#include "helpers.h"

static void ints_round_trip(void** state) {
  int64_t cases[] = {0,      1,         127,       128,       -1,       -32,
                     -33,    255,       256,       65535,     65536,    -32768,
                     -32769, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    vow_value_t* v = vow_value_new_int(cases[i]);
    int64_t out = 12345;
    double d;
    assert_int_equal(vow_value_get_int(v, &out), 0);
    assert_true(out == cases[i]);
    assert_int_equal(vow_value_get_double(v, &d), 0);
    assert_true(d == (double)cases[i]);
    vow_value_release(v);
  }
}

static void other_scalars(void** state) {
  vow_value_t* d = vow_value_new_double(2.5);
  vow_value_t* b = vow_value_new_bool(true);
  vow_value_t* s = vow_value_new_str("héllo", 6);
  vow_value_t* bin = vow_value_new_bin("\0\1\2", 3);
  double dv;
  bool bv = false;
  const char* sv;
  const void* binv;
  size_t len;
  int64_t iv;
  (void)state;
  assert_int_equal(vow_value_get_double(d, &dv), 0);
  assert_true(dv == 2.5);
  assert_int_equal(vow_value_get_int(d, &iv), UV_EINVAL);
  assert_int_equal(vow_value_get_bool(b, &bv), 0);
  assert_true(bv);
  assert_int_equal(vow_value_get_str(s, &sv, &len), 0);
  assert_int_equal(len, 6);
  assert_memory_equal(sv, "héllo", 6);
  assert_int_equal(vow_value_get_bin(s, &binv, &len), UV_EINVAL);
  assert_int_equal(vow_value_get_bin(bin, &binv, &len), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(binv, "\0\1\2", 3);
  assert_true(vow_value_is_nil(vow_value_nil()));
  assert_false(vow_value_is_nil(b));
  vow_value_release(d);
  vow_value_release(b);
  vow_value_release(s);
  vow_value_release(bin);
}

static void long_strings_use_wider_headers(void** state) {
  size_t sizes[] = {31, 32, 255, 256, 65535, 65536, 100000};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    char* buf = malloc(sizes[i]);
    vow_value_t* v;
    const char* out;
    size_t len;
    memset(buf, 'x', sizes[i]);
    v = vow_value_new_str(buf, sizes[i]);
    assert_int_equal(vow_value_get_str(v, &out, &len), 0);
    assert_int_equal(len, sizes[i]);
    assert_memory_equal(out, buf, len);
    vow_value_release(v);
    free(buf);
  }
}

static void msgpack_is_validated(void** state) {
  /* {"a": [1, 2]} */
  const unsigned char good[] = {0x81, 0xa1, 'a', 0x92, 0x01, 0x02};
  const unsigned char truncated[] = {0x92, 0x01};
  const unsigned char two[] = {0x01, 0x02};
  int err = 0;
  vow_value_t* v = vow_value_new_msgpack(good, sizeof(good), &err);
  msgpack_unpacked un;
  size_t len;
  (void)state;
  assert_non_null(v);
  assert_int_equal(vow_value_kind(v), VOW_VALUE_MSGPACK);
  assert_memory_equal(vow_value_bytes(v, &len), good, sizeof(good));
  assert_int_equal(len, sizeof(good));
  msgpack_unpacked_init(&un);
  assert_int_equal(vow_value_unpack(v, &un), 0);
  assert_int_equal(un.data.type, MSGPACK_OBJECT_MAP);
  assert_int_equal(un.data.via.map.ptr[0].val.via.array.size, 2);
  msgpack_unpacked_destroy(&un);
  vow_value_release(v);
  assert_null(vow_value_new_msgpack(truncated, sizeof(truncated), &err));
  assert_int_equal(err, UV_EINVAL);
  err = 0;
  assert_null(vow_value_new_msgpack(two, sizeof(two), &err));
  assert_int_equal(err, UV_EINVAL);
}

static int destroyed;
static void count_destroy(void* p) {
  destroyed += *(int*)p;
}

static void pointers_and_arrays(void** state) {
  int weight = 1;
  vow_value_t* p = vow_value_new_ptr(&weight, count_destroy);
  vow_value_t* items[3];
  vow_value_t* arr;
  (void)state;
  destroyed = 0;
  items[0] = vow_value_ref(p);
  items[1] = vow_value_new_int(7);
  items[2] = vow_value_new_failure(vow_failure_new(VOW_FAIL_USER, 0, "f"));
  arr = vow_value_new_array(items, 3);
  assert_int_equal(vow_value_array_len(arr), 3);
  assert_ptr_equal(vow_value_get_ptr(vow_value_array_at(arr, 0)), &weight);
  assert_int_equal(int_of(vow_value_array_at(arr, 1)), 7);
  assert_string_equal(
      vow_failure_message(vow_value_get_failure(vow_value_array_at(arr, 2))),
      "f");
  assert_null(vow_value_array_at(arr, 3));
  assert_null(vow_value_get_ptr(arr));
  vow_value_release(p);
  assert_int_equal(destroyed, 0); /* the array still holds it */
  vow_value_release(arr);
  assert_int_equal(destroyed, 1);
}

static void failure_ref_counts(void** state) {
  vow_failure_t* f = vow_failure_new(VOW_FAIL_IO, -2, "%s %d", "x", 1);
  (void)state;
  vow_failure_ref(f);
  vow_failure_release(f);
  assert_string_equal(vow_failure_message(f), "x 1");
  vow_failure_release(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ints_round_trip),
      cmocka_unit_test(other_scalars),
      cmocka_unit_test(long_strings_use_wider_headers),
      cmocka_unit_test(msgpack_is_validated),
      cmocka_unit_test(pointers_and_arrays),
      cmocka_unit_test(failure_ref_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
