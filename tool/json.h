/* tool/json.h — JSON lines to msgpack and back for vow map; shared by
 * cli/ and daemon/. */
#ifndef VOW_TOOL_JSON_H
#define VOW_TOOL_JSON_H

#include "tool.h"

enum { VOW_BYTES_BASE64 = 0, VOW_BYTES_ARRAY = 1 };

/* Appends the msgpack form of one JSON text (any value) to out. Returns
 * 0, or -1 with a message in err. */
int vow_json_to_msgpack(const char* line, size_t len, vbuf* out, char* err,
                        size_t errsize);
/* A msgpack packer callback that appends to a vbuf. */
int vow_json_vbuf_write(void* data, const char* buf, size_t len);
/* Appends the compact JSON text of one msgpack object to out. Returns 0
 * or -1 (not msgpack). */
int vow_msgpack_write_json(vbuf* out, const void* bytes, size_t len,
                           int bytes_mode);
/* Compact JSON text of one msgpack object (free() it), or NULL. */
char* vow_msgpack_to_json(const void* bytes, size_t len, int bytes_mode);
/* {"line":N,"error":"..."}, with "detail":"..." when detail is not NULL
 * (a Python worker's traceback, say). free() it. */
char* vow_json_error_line(size_t line, const char* message, const char* detail);

#endif
