/* base/misuse.h — a caller's bug in using the public API (a NULL where
 * an object is due, a release too many, a call that may not run inside a
 * callback): said on stderr, naming the call, then abort(). In every
 * build, not only under assert(): such a bug never gets better by running
 * on, and a crash further in would name nothing. Private to libvow. */
#ifndef VOW_BASE_MISUSE_H
#define VOW_BASE_MISUSE_H

#include "vow/common.h"

/* Writes "vow: CALL: MESSAGE (a bug in the calling program)" to stderr
 * and aborts. */
__attribute__((noreturn)) void vow__misuse(const char* call, const char* fmt,
                                           ...) VOW_PRINTF(2, 3);

/* Checks cond in the public function it is written in (named by
 * __func__). */
#define VOW__REQUIRE(cond, ...)           \
  do {                                    \
    if (__builtin_expect(!(cond), 0))     \
      vow__misuse(__func__, __VA_ARGS__); \
  } while (0)

/* An argument that must not be NULL, and what it is ("the promise"). */
#define VOW__NOT_NULL(arg, what) VOW__REQUIRE((arg) != NULL, "%s is NULL", what)

/* A promise argument: not NULL, and not one whose last reference is
 * gone (its slot is marked free until it is handed out again). */
#define VOW__LIVE_PROMISE(p)                                          \
  do {                                                                \
    VOW__NOT_NULL(p, "the promise");                                  \
    VOW__REQUIRE((p)->state != VOW__FREED,                            \
                 "the promise was used after its last reference was " \
                 "released");                                         \
  } while (0)

#endif
