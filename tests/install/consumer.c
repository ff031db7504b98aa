/* Built against an installed vow: one promise through the loop. */
#include <stdio.h>
#include <vow/vow.h>

static vow_outcome_t double_it(vow_value_t* v, void* data) {
  int64_t i = 0;
  (void)data;
  vow_value_get_int(v, &i);
  vow_value_release(v);
  return vow_ok(vow_value_new_int(i * 2));
}

int main(void) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_promise_t* p = vow_add_callback(vow_succeed(ctx, vow_value_new_int(21)),
                                      double_it, NULL);
  int64_t out = 0;
  int state = vow_ctx_wait(ctx, p);
  vow_promise_release(p);
  vow_ctx_close(ctx);
  (void)out;
  printf("consumer: %s\n", state == VOW_FULFILLED ? "ok" : "failed");
  return state == VOW_FULFILLED ? 0 : 1;
}
