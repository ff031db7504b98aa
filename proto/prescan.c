/* The pre-scan: walks one frame's msgpack bytes without allocating and
 * proves them safe to read. Every container's count and every str, bin and
 * ext length is bounded by the bytes still left (each element needs at
 * least one byte), objects are counted and nesting is capped, so neither
 * the field reader nor a later msgpack-c unpack of an argument can be made
 * to allocate more than the frame's size warrants. Iterative: a stack of
 * remaining counts, at most VOWP_MAX_DEPTH + 1 deep. */
#include <stdio.h>

#include "proto_internal.h"

vowp_err vowp_prescan(const char* buf, size_t len, const vowp_limits* lim,
                      uint64_t base, vowp_error* err) {
  const unsigned char* p = (const unsigned char*)buf;
  uint64_t remaining[VOWP_MAX_DEPTH + 2];
  unsigned depth = 0;
  size_t pos = 0, objects = 0;
  remaining[0] = 1; /* exactly one top-level object */
  for (;;) {
    vowp__head h;
    size_t left;
    /* A run of scalars, the bulk of most frames, in a tight loop: each is
     * bounded and counted as below, and any that is not (or would pass a
     * limit) is left to the full step, which names the error. */
    {
      uint64_t run = remaining[depth], ran = 0;
      if (run > lim->max_objects - objects)
        run = lim->max_objects - objects;
      while (ran < run && pos < len) {
        size_t scalar = vowp_scalar_size[p[pos]];
        if (scalar == 0 || scalar > len - pos)
          break;
        pos += scalar;
        ran++;
      }
      remaining[depth] -= ran;
      objects += ran;
    }
    while (remaining[depth] == 0) {
      if (depth == 0)
        goto done;
      depth--;
    }
    remaining[depth]--;
    left = len - pos;
    if (left == 0)
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos,
                        "frame ends where another object is due "
                        "(%llu more)",
                        (unsigned long long)remaining[depth] + 1);
    if (++objects > lim->max_objects)
      return vowp__fail(err, VOWP_E_TOO_MANY_OBJECTS, base + pos,
                        "more than %zu objects in one frame", lim->max_objects);
    if (!vowp__read_head(p + pos, left, &h))
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos,
                        "%s header does not fit in the %zu bytes left", h.what,
                        left);
    pos += h.size;
    left = len - pos;
    if (h.body > left)
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos - h.size,
                        "%s of %llu bytes exceeds the %zu bytes left", h.what,
                        (unsigned long long)h.body, left);
    pos += (size_t)h.body;
    if (!h.container)
      continue;
    /* Each element takes at least one byte, so a count above the bytes
     * left is a lie, caught here before anything trusts it. */
    if (h.items > left)
      return vowp__fail(err, VOWP_E_MALFORMED, base + pos - h.size,
                        "%s of %llu elements exceeds the %zu bytes left",
                        h.what, (unsigned long long)h.items, left);
    if (depth + 1 > lim->max_depth)
      return vowp__fail(err, VOWP_E_TOO_DEEP, base + pos - h.size,
                        "nesting too deep: more than %u levels",
                        lim->max_depth);
    remaining[++depth] = h.items;
  }
done:
  if (pos != len)
    return vowp__fail(err, VOWP_E_TRAILING, base + pos,
                      "%zu trailing bytes after the message", len - pos);
  return VOWP_OK;
}
