/* hello: read a file with a timeout and print its size. Shown whole in
 * README.md. */
#include <stdio.h>
#include <vow/vow.h>

/* Each callback gets the result it now owns and says what comes next. */
static vow_outcome_t count_bytes(vow_value_t* file, void* data) {
  const void* bytes;
  size_t len = 0;
  (void)data;
  vow_value_get_bin(file, &bytes, &len);
  vow_value_release(file);
  return vow_ok(vow_value_new_int((int64_t)len));
}

static vow_outcome_t print_count(vow_value_t* n, void* data) {
  int64_t len = 0;
  vow_value_get_int(n, &len);
  printf("%s: %lld bytes\n", (const char*)data, (long long)len);
  return vow_ok(n);
}

static vow_outcome_t print_failure(vow_failure_t* f, void* data) {
  char line[256];
  vow_failure_describe(f, line, sizeof line);
  fprintf(stderr, "%s\n", line);
  vow_failure_release(f); /* handled: recover with nil */
  *(int*)data = 1;
  return vow_ok(NULL);
}

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/etc/os-release";
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL); /* vow owns the loop */
  vow_promise_t* p = vow_timeout(vow_read_file(ctx, path), 1000);
  vow_add_callback(p, count_bytes, NULL);
  vow_add_callback(p, print_count, (void*)path);
  int failed = 0;
  vow_add_errback(p, print_failure, &failed);
  vow_ctx_wait(ctx, p);
  vow_promise_release(p);
  vow_ctx_close(ctx);
  return failed;
}
