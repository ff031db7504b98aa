/* Error codes: vow's own range and libuv's errno values. */
#include <uv.h>

#include "vow/common.h"

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
