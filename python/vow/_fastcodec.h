/* What vow._fastcodec's sources share: the module is _fastcodec.c (the
 * msgpack paths), _fastpack.c (writing msgpack), _fastrun.c (a Python
 * worker's task loop) and
 * _fastpool.c (a pool's plain submit and settle). */
#ifndef VOW_PY_FASTCODEC_H
#define VOW_PY_FASTCODEC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

/* v packed as msgpack-python packs an int (the smallest form, unsigned
 * for v >= 0) at p; returns the end. At most 9 bytes. */
unsigned char* vowpy_pack_int(unsigned char* p, int64_t v);

/* next(stream) for a Stream (StopIteration at its end). */
PyObject* vowpy_stream_next(PyObject* stream);

/* A msgpack value being written at the end of bytes (_fastpack.c). */
typedef struct {
  PyObject* bytes; /* its room: its size is the capacity */
  Py_ssize_t len;  /* what is written */
} vowpy_packed;

/* Room for cap bytes, writing from at. -1: no memory. */
int vowpy_packed_start(vowpy_packed* b, Py_ssize_t cap, Py_ssize_t at);
/* n bytes more at the end, to write; NULL: no memory. */
unsigned char* vowpy_room(vowpy_packed* b, Py_ssize_t n);
int vowpy_put_raw(vowpy_packed* b, const void* data, size_t n);
/* An array's header for n items, the smallest form: written at out (room
 * for VOWPY_ARRAY_HEAD_MAX bytes), its length returned; or at the end. */
#define VOWPY_ARRAY_HEAD_MAX 5
size_t vowpy_array_head(unsigned char* out, size_t n);
int vowpy_put_array_head(vowpy_packed* b, size_t n);
/* v packed: 1; 0 when pack (the caller's packer, for the types not packed
 * here) refused it, nothing written; -1 an error. */
int vowpy_pack_value(vowpy_packed* b, PyObject* v, PyObject* pack);
/* The bytes written, the room let go. */
PyObject* vowpy_packed_end(vowpy_packed* b);

/* Whether obj.name is true: 1 or 0; -1 an error. */
int vowpy_attr_true(PyObject* obj, PyObject* name);

/* Each text interned where its entry says; -1 an error. */
typedef struct {
  PyObject** at;
  const char* text;
} vowpy_name;
int vowpy_intern(const vowpy_name* names, size_t n);

int vowpy_fastrun_init(void);
int vowpy_fastpool_init(void);
extern PyTypeObject vowpy_quick_type;
extern PyTypeObject vowpy_submit_method_type;
PyObject* vowpy_run_tasks(PyObject* self, PyObject* const* args,
                          Py_ssize_t nargs);
PyObject* vowpy_map_packed(PyObject* self, PyObject* const* args,
                           Py_ssize_t nargs);

#endif
