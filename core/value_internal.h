/* core/value_internal.h — a value's insides, for the files of core/ that
 * make values: value.c (the kinds and their readers), value_shm.c (values
 * in shared-memory segments) and value_parts.c (arguments with parts). */
#ifndef VOW_CORE_VALUE_INTERNAL_H
#define VOW_CORE_VALUE_INTERNAL_H

#include "core.h"

#define IMMORTAL UINT32_MAX

/* What a msgpack value's u.ext.base points to. */
enum {
  HOLD_HEAP,  /* a malloc'd buffer holding the bytes, or NULL */
  HOLD_SHM,   /* a shm_hold: the value has a segment */
  HOLD_PARTS, /* a value_parts: the bytes follow the header */
};

/* A msgpack value keeps its bytes right after the header, one allocation
 * per value. */
struct vow_value {
  uint32_t refs;
  uint8_t kind;
  uint8_t holder; /* VOW_VALUE_MSGPACK: what u.ext.base is (HOLD_...) */
  size_t len;     /* bytes, or array length */
  union {
    struct {
      void* ptr;
      void (*dtor)(void*);
    } p;
    vow_failure_t* failure;
    vow_value_t** items;
    struct {
      void* base;                /* owned buffer the bytes live in */
      const unsigned char* data; /* NULL: the bytes follow the header */
    } ext;                       /* VOW_VALUE_MSGPACK */
  } u;
  unsigned char bytes[];
};

/* A new value of kind with nbytes after its header (the bytes of a
 * msgpack value), one reference; NULL when memory runs out. */
vow_value_t* vow__value_alloc(int kind, size_t nbytes);
/* NULL, with *err (if err) set to code. */
vow_value_t* vow__value_fail(int* err, int code);
/* What a value in a segment (HOLD_SHM) and one with parts (HOLD_PARTS)
 * hold, let go with the value. */
void vow__value_drop_hold(void* hold);
void vow__value_drop_parts(void* parts);

#endif /* VOW_CORE_VALUE_INTERNAL_H */
