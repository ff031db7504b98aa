/* What vow._fastcodec's sources share: the module is _fastcodec.c (the
 * msgpack paths), _fastrun.c (a Python worker's task loop) and
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

int vowpy_fastrun_init(void);
int vowpy_fastpool_init(void);
extern PyTypeObject vowpy_quick_type;
extern PyTypeObject vowpy_submit_method_type;
PyObject* vowpy_run_tasks(PyObject* self, PyObject* const* args,
                          Py_ssize_t nargs);
PyObject* vowpy_map_packed(PyObject* self, PyObject* const* args,
                           Py_ssize_t nargs);

#endif
