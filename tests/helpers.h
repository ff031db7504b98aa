/* Shared fixtures for the cmocka tests: a fresh context per test on its own
 * loop, a report counter, and callbacks that record what reached them. */
#ifndef VOW_TESTS_HELPERS_H
#define VOW_TESTS_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vow/vow.h"

/* Built with AddressSanitizer: its shadow memory needs more address space
 * than a test that limits it leaves. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

typedef struct fixture {
  vow_ctx_t* ctx;
  int unhandled; /* reports of kind VOW_REPORT_UNHANDLED */
  int pending;   /* reports of kind VOW_REPORT_PENDING */
  int last_kind; /* failure kind of the last unhandled report */
} fixture;

static inline void count_report(vow_ctx_t* ctx, vow_report_kind_t kind,
                                vow_failure_t* f, void* data) {
  fixture* fx = data;
  (void)ctx;
  if (kind == VOW_REPORT_UNHANDLED) {
    fx->unhandled++;
    fx->last_kind = vow_failure_kind(f);
  } else {
    fx->pending++;
  }
}

static inline int fx_setup(void** state) {
  fixture* fx = calloc(1, sizeof(*fx));
  fx->ctx = vow_ctx_new(NULL, NULL);
  vow_ctx_set_report_handler(fx->ctx, count_report, fx);
  *state = fx;
  return 0;
}

static inline int fx_setup_fake(void** state) {
  fixture* fx;
  fx_setup(state);
  fx = *state;
  vow_ctx_use_fake_clock(fx->ctx, 1000);
  return 0;
}

/* Closes the context; a test that expects reports checks the counters
 * before this, so here any report is a failure. */
static inline int fx_teardown(void** state) {
  fixture* fx = *state;
  if (fx->ctx)
    vow_ctx_close(fx->ctx);
  fx->ctx = NULL;
  assert_int_equal(fx->unhandled, 0);
  assert_int_equal(fx->pending, 0);
  free(fx);
  return 0;
}

/* Closes the context now so a test can check what close reported. */
static inline void fx_close(fixture* fx) {
  vow_ctx_close(fx->ctx);
  fx->ctx = NULL;
}

/* A record of what a callback saw. */
typedef struct seen {
  int calls;
  int64_t value; /* the int it got, or -1 */
  int kind;      /* the failure kind it got, or 0 */
  int order;     /* its place in a shared sequence */
} seen;

static inline int64_t int_of(vow_value_t* v) {
  int64_t i = -1;
  if (vow_value_get_int(v, &i) != 0)
    i = -1;
  return i;
}

/* Records an int value and passes it on. */
static inline vow_outcome_t record_value(vow_value_t* v, void* data) {
  seen* s = data;
  s->calls++;
  s->value = int_of(v);
  return vow_ok(v);
}

/* Records a failure's kind and passes it on. */
static inline vow_outcome_t record_failure(vow_failure_t* f, void* data) {
  seen* s = data;
  s->calls++;
  s->kind = vow_failure_kind(f);
  return vow_err(f);
}

/* Records a failure's kind and recovers with 0. */
static inline vow_outcome_t record_and_recover(vow_failure_t* f, void* data) {
  seen* s = data;
  s->calls++;
  s->kind = vow_failure_kind(f);
  vow_failure_release(f);
  return vow_ok(vow_value_new_int(0));
}

/* Adds one to an int. */
static inline vow_outcome_t add_one(vow_value_t* v, void* data) {
  int64_t i = int_of(v);
  (void)data;
  vow_value_release(v);
  return vow_ok(vow_value_new_int(i + 1));
}

/* Quick runs (VOW_QUICK=1) scale long tests down by 100. */
static inline size_t scaled(size_t n) {
  const char* q = getenv("VOW_QUICK");
  return q && *q && *q != '0' ? n / 100 : n;
}

#endif
