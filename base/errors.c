/* Error codes: vow's own range and libuv's errno values; and a caller's
 * misuse of the API, said and stopped. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "misuse.h"
#include "vow/common.h"

void vow__misuse(const char* call, const char* fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  /* One write: the line stays whole beside other threads' output. */
  fprintf(stderr, "vow: %s: %s (a bug in the calling program)\n", call, text);
  fflush(stderr);
  abort();
}

unsigned vow_version(void) {
  return (VOW_VERSION_MAJOR << 16) | (VOW_VERSION_MINOR << 8) |
         VOW_VERSION_PATCH;
}

const char* vow_strerror(int code) {
  switch (code) {
#define XX(name, value, text) \
  case VOW_##name:            \
    return text;
    VOW_ERRNO_MAP(XX)
#undef XX
    case 0:
      return "success";
    default:
      return uv_strerror(code);
  }
}

const char* vow_err_name(int code) {
  switch (code) {
#define XX(name, value, text) \
  case VOW_##name:            \
    return "VOW_" #name;
    VOW_ERRNO_MAP(XX)
#undef XX
    case 0:
      return "VOW_OK";
    default:
      return uv_err_name(code);
  }
}
