/* vow._fastcodec's msgpack writing: values packed at the end of a bytes
 * object that grows, in exactly msgpack-python's forms (Packer with
 * use_bin_type=True) for the types both of vow's packers pack alike,
 * through a packer of the caller's for the rest. Shared by a worker's map
 * chunk (_fastrun.c) and a pool's submission (_fastpool.c). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_fastcodec.h"

int vowpy_packed_start(vowpy_packed* b, Py_ssize_t cap, Py_ssize_t at) {
  b->bytes = PyBytes_FromStringAndSize(NULL, cap > at ? cap : at);
  b->len = at;
  return b->bytes == NULL ? -1 : 0;
}

PyObject* vowpy_packed_end(vowpy_packed* b) {
  if (_PyBytes_Resize(&b->bytes, b->len) < 0)
    return NULL;
  PyObject* out = b->bytes;
  b->bytes = NULL;
  return out;
}

unsigned char* vowpy_room(vowpy_packed* b, Py_ssize_t n) {
  Py_ssize_t cap = PyBytes_GET_SIZE(b->bytes);
  if (b->len + n > cap) {
    Py_ssize_t want = cap * 2 > b->len + n ? cap * 2 : b->len + n;
    if (_PyBytes_Resize(&b->bytes, want) < 0)
      return NULL;
  }
  unsigned char* at = (unsigned char*)PyBytes_AS_STRING(b->bytes) + b->len;
  b->len += n;
  return at;
}

static void put_be(unsigned char* p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

/* A str's, bin's or array's header (markers for 8-, 16- and 32-bit
 * lengths; fix: the fix form's marker, below fix_below) at the end. */
static int put_head(vowpy_packed* b, size_t n, int fix, size_t fix_below,
                    int m8, int m16, int m32) {
  unsigned char* p;
  if (fix >= 0 && n < fix_below) {
    if ((p = vowpy_room(b, 1)) == NULL)
      return -1;
    p[0] = (unsigned char)(fix | (int)n);
  } else if (m8 >= 0 && n <= 0xFF) {
    if ((p = vowpy_room(b, 2)) == NULL)
      return -1;
    p[0] = (unsigned char)m8;
    p[1] = (unsigned char)n;
  } else if (n <= 0xFFFF) {
    if ((p = vowpy_room(b, 3)) == NULL)
      return -1;
    p[0] = (unsigned char)m16;
    put_be(p + 1, n, 2);
  } else {
    if ((p = vowpy_room(b, 5)) == NULL)
      return -1;
    p[0] = (unsigned char)m32;
    put_be(p + 1, n, 4);
  }
  return 0;
}

int vowpy_put_raw(vowpy_packed* b, const void* data, size_t n) {
  unsigned char* p = vowpy_room(b, (Py_ssize_t)n);
  if (p == NULL)
    return -1;
  memcpy(p, data, n);
  return 0;
}

/* v packed at the end as msgpack-python's Packer(use_bin_type=True) packs
 * it, for the types both of vow's packers pack alike; any other through
 * pack. 1 packed, 0 not (pack refused it: nothing written), -1 an error. */
int vowpy_pack_value(vowpy_packed* b, PyObject* v, PyObject* pack) {
  unsigned char* p;
  if (v == Py_None || v == Py_True || v == Py_False) {
    if ((p = vowpy_room(b, 1)) == NULL)
      return -1;
    *p = v == Py_None ? 0xC0 : v == Py_True ? 0xC3 : 0xC2;
    return 1;
  }
  if (PyLong_CheckExact(v)) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
      return -1;
    if (overflow == 0) {
      unsigned char tmp[9];
      return vowpy_put_raw(b, tmp, (size_t)(vowpy_pack_int(tmp, x) - tmp)) < 0
                 ? -1
                 : 1;
    }
    unsigned long long u = overflow > 0 ? PyLong_AsUnsignedLongLong(v) : 0;
    if (overflow > 0 && !(u == (unsigned long long)-1 && PyErr_Occurred())) {
      if ((p = vowpy_room(b, 9)) == NULL)
        return -1;
      p[0] = 0xCF;
      put_be(p + 1, u, 8);
      return 1;
    }
    PyErr_Clear(); /* past 64 bits: pack's to refuse or pickle */
  } else if (PyFloat_CheckExact(v)) {
    double d = PyFloat_AS_DOUBLE(v);
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    if ((p = vowpy_room(b, 9)) == NULL)
      return -1;
    p[0] = 0xCB;
    put_be(p + 1, bits, 8);
    return 1;
  } else if (PyUnicode_CheckExact(v)) {
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s != NULL)
      return put_head(b, (size_t)n, 0xA0, 32, 0xD9, 0xDA, 0xDB) < 0 ||
                     vowpy_put_raw(b, s, (size_t)n) < 0
                 ? -1
                 : 1;
    PyErr_Clear(); /* a lone surrogate: pack says what is wrong */
  } else if (PyBytes_CheckExact(v)) {
    size_t n = (size_t)PyBytes_GET_SIZE(v);
    return put_head(b, n, -1, 0, 0xC4, 0xC5, 0xC6) < 0 ||
                   vowpy_put_raw(b, PyBytes_AS_STRING(v), n) < 0
               ? -1
               : 1;
  }
  PyObject* packed = PyObject_CallOneArg(pack, v);
  if (packed == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_Exception))
      return -1;
    PyErr_Clear();
    return 0;
  }
  int rc = PyBytes_Check(packed)
               ? vowpy_put_raw(b, PyBytes_AS_STRING(packed),
                               (size_t)PyBytes_GET_SIZE(packed)) < 0
                     ? -1
                     : 1
               : 0;
  Py_DECREF(packed);
  return rc;
}

size_t vowpy_array_head(unsigned char* out, size_t n) {
  if (n < 16) {
    out[0] = (unsigned char)(0x90 | n);
    return 1;
  }
  out[0] = n <= 0xFFFF ? 0xDC : 0xDD;
  put_be(out + 1, n, n <= 0xFFFF ? 2 : 4);
  return n <= 0xFFFF ? 3 : 5;
}

int vowpy_put_array_head(vowpy_packed* b, size_t n) {
  unsigned char head[VOWPY_ARRAY_HEAD_MAX];
  return vowpy_put_raw(b, head, vowpy_array_head(head, n));
}

/* (not packing: what the C paths share besides) */

int vowpy_attr_true(PyObject* obj, PyObject* name) {
  PyObject* v = PyObject_GetAttr(obj, name);
  if (v == NULL)
    return -1;
  int on = PyObject_IsTrue(v);
  Py_DECREF(v);
  return on;
}

int vowpy_intern(const vowpy_name* names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
      return -1;
  return 0;
}
