/* Finds the shared-memory references inside a msgpack value: where a
 * task's arguments hold parts kept apart (docs/protocol.md, "Parts"). */
#include "proto_internal.h"

size_t vowp_shm_refs(const char* buf, size_t len, size_t* at, size_t max) {
  const unsigned char* p = (const unsigned char*)buf;
  uint64_t pending = 1;
  size_t pos = 0, found = 0;
  /* The objects in order, as one stream: a container only adds its
   * elements to those still due. */
  while (pending > 0 && pos < len) {
    vowp__head h;
    size_t scalar = vowp_scalar_size[p[pos]];
    pending--;
    if (scalar != 0) { /* the common objects, at a glance */
      pos += scalar;
      continue;
    }
    if (!vowp__read_head(p + pos, len - pos, &h))
      break; /* not prescanned: nothing more is read */
    if (h.size == 3 && p[pos] == 0xc7 && h.body == 24 &&
        p[pos + 2] == VOWP_EXT_SHM) {
      if (found < max && at != NULL)
        at[found] = pos;
      found++;
    }
    pos += h.size;
    if (h.body > len - pos)
      break;
    pos += (size_t)h.body;
    if (h.container)
      pending += h.items;
  }
  return found;
}
