/* cmocka and the scale knob, for tests that need no vow context. */
#ifndef VOW_TESTS_HELPERS_PLAIN_H
#define VOW_TESTS_HELPERS_PLAIN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Quick runs (VOW_QUICK=1) scale long tests down by 100. */
static inline size_t scaled_plain(size_t n) {
  const char* q = getenv("VOW_QUICK");
  size_t s = q && *q && *q != '0' ? n / 100 : n;
  return s ? s : 1;
}

#endif
