/* vow._fastcodec: the parent's hot msgpack paths in C.
 *
 * A map of a million items ends as a million Python objects made from the
 * workers' bytes; in Python (even through msgpack's own C unpacker and a
 * list.extend per slice) that costs twice what making the objects does.
 * This module decodes a stream of values with exactly the results that
 * codec.stream_reader's msgpack.Unpacker gives (raw=False,
 * strict_map_key=False, the same hooks), and can decode an array straight
 * into its place in a list made beforehand, so a map's results are made
 * once, where they end. pack_int_range packs range(start, start + count *
 * step, step) as msgpack.packb would, without making its ints. A Python
 * worker's loop over plain tasks is in _fastrun.c, Pool.submit's
 * plain path and the settling of plain results in _fastpool.c.
 *
 * What it leaves to Python: ext types other than vow's tuple (ext_hook,
 * and the fallback for msgpack's timestamp, ext -1) and maps holding the
 * numpy key (array_hook). The module is optional: codec.py works the
 * same without it. */
#include "_fastcodec.h"

#include <string.h>

/* msgpack-python's unpacker refuses deeper nesting too. */
#define MAX_DEPTH 1024

typedef struct {
  PyObject_HEAD Py_buffer view;
  const unsigned char* at;
  const unsigned char* end;
  PyObject* ext_hook;   /* ext_hook(code, data) for ext types but vow's */
  PyObject* array_hook; /* array_hook(dict) for a map with ARRAY_KEY */
  PyObject* fallback;   /* fallback(bytes): one value the way msgpack does */
  int tuple_ext;        /* the ext code of a tuple, or -1000: none */
} Stream;

static PyObject* array_key; /* "__ndarray__" */

static PyObject* truncated(void) {
  PyErr_SetString(PyExc_ValueError, "vow: a msgpack value is cut short");
  return NULL;
}

static int need(const Stream* s, const unsigned char* p, size_t n) {
  return (size_t)(s->end - p) >= n;
}

static uint64_t be(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v = (v << 8) | p[i];
  return v;
}

static PyObject* decode(Stream* s, int depth);

/* The length of a sized type whose header is at s->at (its marker already
 * read): `bytes` big-endian length bytes follow the marker. */
static int read_len(Stream* s, int bytes, size_t* len) {
  if (!need(s, s->at, (size_t)bytes)) {
    truncated();
    return -1;
  }
  *len = (size_t)be(s->at, bytes);
  s->at += bytes;
  return 0;
}

static PyObject* decode_str(Stream* s, size_t n) {
  if (!need(s, s->at, n))
    return truncated();
  PyObject* o = PyUnicode_DecodeUTF8((const char*)s->at, (Py_ssize_t)n, NULL);
  s->at += n;
  return o;
}

static PyObject* decode_bin(Stream* s, size_t n) {
  if (!need(s, s->at, n))
    return truncated();
  PyObject* o = PyBytes_FromStringAndSize((const char*)s->at, (Py_ssize_t)n);
  s->at += n;
  return o;
}

static PyObject* decode_array(Stream* s, size_t n, int depth) {
  /* Each item is at least a byte: a count past what is left is a lie, and
   * must not allocate. */
  if (!need(s, s->at, n))
    return truncated();
  PyObject* list = PyList_New((Py_ssize_t)n);
  if (list == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    PyObject* item = decode(s, depth + 1);
    if (item == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  return list;
}

static PyObject* decode_map(Stream* s, size_t n, int depth) {
  if (!need(s, s->at, n))
    return truncated();
  PyObject* dict = PyDict_New();
  if (dict == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    PyObject* key = decode(s, depth + 1);
    if (key == NULL)
      goto fail;
    PyObject* value = decode(s, depth + 1);
    if (value == NULL) {
      Py_DECREF(key);
      goto fail;
    }
    int rc = PyDict_SetItem(dict, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    if (rc < 0)
      goto fail;
  }
  /* codec._array_of returns any other map as it is: only a map that may
   * be an array costs a call. */
  int has = PyDict_Contains(dict, array_key);
  if (has < 0)
    goto fail;
  if (has) {
    PyObject* made = PyObject_CallOneArg(s->array_hook, dict);
    Py_DECREF(dict);
    return made;
  }
  return dict;
fail:
  Py_DECREF(dict);
  return NULL;
}

/* One value the way msgpack decodes it, from its first byte `start` to
 * where the walk that skipped it left s->at. */
static PyObject* by_fallback(Stream* s, const unsigned char* start) {
  PyObject* bytes =
      PyBytes_FromStringAndSize((const char*)start, s->at - start);
  if (bytes == NULL)
    return NULL;
  PyObject* made = PyObject_CallOneArg(s->fallback, bytes);
  Py_DECREF(bytes);
  return made;
}

static PyObject* decode_ext(Stream* s, size_t n, const unsigned char* start,
                            int depth) {
  if (!need(s, s->at, n + 1))
    return truncated();
  int code = (int8_t)s->at[0];
  const unsigned char* data = s->at + 1;
  s->at += n + 1;
  if (code == s->tuple_ext) {
    /* Its payload is the tuple's items as one array, alone. */
    Stream inner = *s;
    inner.at = data;
    inner.end = data + n;
    if (n > 0 &&
        ((data[0] & 0xF0) == 0x90 || data[0] == 0xDC || data[0] == 0xDD)) {
      PyObject* items = decode(&inner, depth + 1);
      if (items == NULL)
        return NULL;
      if (inner.at == inner.end && PyList_CheckExact(items)) {
        PyObject* t = PyList_AsTuple(items);
        Py_DECREF(items);
        return t;
      }
      Py_DECREF(items);
    }
    /* Anything else in it: codec._ext_hook's own answer, error or not. */
  }
  if (code == -1) /* msgpack makes its Timestamp itself */
    return by_fallback(s, start);
  return PyObject_CallFunction(s->ext_hook, "iy#", code, (const char*)data,
                               (Py_ssize_t)n);
}

static PyObject* decode(Stream* s, int depth) {
  if (depth > MAX_DEPTH) {
    PyErr_SetString(PyExc_ValueError, "vow: a value is nested too deeply");
    return NULL;
  }
  if (s->at >= s->end)
    return truncated();
  const unsigned char* start = s->at;
  unsigned m = *s->at++;
  size_t n;
  if (m < 0x80)
    return PyLong_FromLong((long)m);
  if (m >= 0xE0)
    return PyLong_FromLong((long)m - 0x100);
  if (m < 0x90)
    return decode_map(s, m & 0x0F, depth);
  if (m < 0xA0)
    return decode_array(s, m & 0x0F, depth);
  if (m < 0xC0)
    return decode_str(s, m & 0x1F);
  switch (m) {
    case 0xC0:
      Py_RETURN_NONE;
    case 0xC2:
      Py_RETURN_FALSE;
    case 0xC3:
      Py_RETURN_TRUE;
    case 0xC4:
    case 0xC5:
    case 0xC6:
      if (read_len(s, 1 << (m - 0xC4), &n) < 0)
        return NULL;
      return decode_bin(s, n);
    case 0xC7:
    case 0xC8:
    case 0xC9:
      if (read_len(s, 1 << (m - 0xC7), &n) < 0)
        return NULL;
      return decode_ext(s, n, start, depth);
    case 0xCA: {
      if (!need(s, s->at, 4))
        return truncated();
      uint32_t bits = (uint32_t)be(s->at, 4);
      float f;
      memcpy(&f, &bits, 4);
      s->at += 4;
      return PyFloat_FromDouble(f);
    }
    case 0xCB: {
      if (!need(s, s->at, 8))
        return truncated();
      uint64_t bits = be(s->at, 8);
      double d;
      memcpy(&d, &bits, 8);
      s->at += 8;
      return PyFloat_FromDouble(d);
    }
    case 0xCC:
    case 0xCD:
    case 0xCE:
    case 0xCF: {
      int bytes = 1 << (m - 0xCC);
      if (!need(s, s->at, (size_t)bytes))
        return truncated();
      uint64_t v = be(s->at, bytes);
      s->at += bytes;
      /* PyLong_FromLong has the fast path for one-digit ints */
      if (v <= (uint64_t)LONG_MAX)
        return PyLong_FromLong((long)v);
      return PyLong_FromUnsignedLongLong(v);
    }
    case 0xD0:
    case 0xD1:
    case 0xD2:
    case 0xD3: {
      int bytes = 1 << (m - 0xD0);
      if (!need(s, s->at, (size_t)bytes))
        return truncated();
      uint64_t v = be(s->at, bytes);
      s->at += bytes;
      /* sign-extend from the value's width */
      int shift = 64 - 8 * bytes;
      int64_t sv = (int64_t)(v << shift) >> shift;
      if (sv >= LONG_MIN && sv <= LONG_MAX)
        return PyLong_FromLong((long)sv);
      return PyLong_FromLongLong(sv);
    }
    case 0xD4:
    case 0xD5:
    case 0xD6:
    case 0xD7:
    case 0xD8:
      return decode_ext(s, (size_t)1 << (m - 0xD4), start, depth);
    case 0xD9:
    case 0xDA:
    case 0xDB:
      if (read_len(s, 1 << (m - 0xD9), &n) < 0)
        return NULL;
      return decode_str(s, n);
    case 0xDC:
    case 0xDD:
      if (read_len(s, m == 0xDC ? 2 : 4, &n) < 0)
        return NULL;
      return decode_array(s, n, depth);
    case 0xDE:
    case 0xDF:
      if (read_len(s, m == 0xDE ? 2 : 4, &n) < 0)
        return NULL;
      return decode_map(s, n, depth);
    default: /* 0xC1: never used */
      PyErr_Format(PyExc_ValueError,
                   "vow: 0x%02x is not a msgpack type (at byte %zd)", m,
                   (Py_ssize_t)(start - (const unsigned char*)s->view.buf));
      return NULL;
  }
}

static void stream_dealloc(Stream* s) {
  if (s->view.obj != NULL)
    PyBuffer_Release(&s->view);
  Py_XDECREF(s->ext_hook);
  Py_XDECREF(s->array_hook);
  Py_XDECREF(s->fallback);
  Py_TYPE(s)->tp_free((PyObject*)s);
}

static PyObject* stream_next(Stream* s) {
  if (s->at >= s->end)
    return NULL; /* StopIteration */
  return decode(s, 0);
}

static PyTypeObject StreamType;

PyObject* vowpy_stream_next(PyObject* stream) {
  if (!Py_IS_TYPE(stream, &StreamType)) {
    PyErr_SetString(PyExc_TypeError, "not a vow._fastcodec.Stream");
    return NULL;
  }
  PyObject* v = stream_next((Stream*)stream);
  if (v == NULL && !PyErr_Occurred())
    PyErr_SetNone(PyExc_StopIteration);
  return v;
}

/* Stream.into(list, offset): the next value, an array, decoded into
 * list[offset:offset + n]; returns n. */
static PyObject* stream_into(Stream* s, PyObject* const* args,
                             Py_ssize_t nargs) {
  if (nargs != 2 || !PyList_CheckExact(args[0])) {
    PyErr_SetString(PyExc_TypeError, "into(list, offset)");
    return NULL;
  }
  PyObject* list = args[0];
  Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
  if (offset < 0) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_ValueError, "into: a negative offset");
    return NULL;
  }
  size_t n;
  if (s->at >= s->end)
    return truncated();
  unsigned m = *s->at++;
  if ((m & 0xF0) == 0x90) {
    n = m & 0x0F;
  } else if (m == 0xDC || m == 0xDD) {
    if (read_len(s, m == 0xDC ? 2 : 4, &n) < 0)
      return NULL;
  } else {
    PyErr_SetString(PyExc_ValueError, "into: the value is not an array");
    return NULL;
  }
  if (n > (size_t)(PY_SSIZE_T_MAX - offset) ||
      offset + (Py_ssize_t)n > PyList_GET_SIZE(list)) {
    PyErr_Format(PyExc_ValueError,
                 "into: %zu items do not fit at %zd of a list of %zd", n,
                 offset, PyList_GET_SIZE(list));
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    /* A map's results are mostly ints: those are read here, the rest by
     * decode. */
    PyObject* item;
    unsigned b = s->at < s->end ? *s->at : 0xC1;
    if (b < 0x80) {
      s->at++;
      item = PyLong_FromLong((long)b);
    } else if (b == 0xCD && need(s, s->at, 3)) {
      item = PyLong_FromLong((long)be(s->at + 1, 2));
      s->at += 3;
    } else if (b == 0xCE && need(s, s->at, 5)) {
      item = PyLong_FromLong((long)be(s->at + 1, 4));
      s->at += 5;
    } else {
      item = decode(s, 1);
    }
    if (item == NULL)
      return NULL;
    Py_ssize_t at = offset + (Py_ssize_t)i;
    /* a hook may have shrunk the list meanwhile */
    if (at >= PyList_GET_SIZE(list)) {
      Py_DECREF(item);
      PyErr_SetString(PyExc_ValueError, "into: the list shrank");
      return NULL;
    }
    PyObject* old = PyList_GET_ITEM(list, at);
    PyList_SET_ITEM(list, at, item);
    Py_XDECREF(old);
  }
  return PyLong_FromSize_t(n);
}

static PyMethodDef stream_methods[] = {
    {"into", (PyCFunction)(void (*)(void))stream_into, METH_FASTCALL,
     "into(list, offset): the next value, an array, decoded into "
     "list[offset:offset + n]; returns n."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vow._fastcodec.Stream",
    .tp_basicsize = sizeof(Stream),
    .tp_dealloc = (destructor)stream_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The msgpack values in a buffer, back to back.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)stream_next,
    .tp_methods = stream_methods,
};

/* stream(buffer, ext_hook, array_hook, fallback, tuple_ext) */
static PyObject* make_stream(PyObject* self, PyObject* const* args,
                             Py_ssize_t nargs) {
  (void)self;
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError,
                    "stream(buffer, ext_hook, array_hook, fallback, "
                    "tuple_ext)");
    return NULL;
  }
  long tuple_ext = PyLong_AsLong(args[4]);
  if (tuple_ext == -1 && PyErr_Occurred())
    return NULL;
  Stream* s = PyObject_New(Stream, &StreamType);
  if (s == NULL)
    return NULL;
  s->view.obj = NULL;
  s->ext_hook = s->array_hook = s->fallback = NULL;
  if (PyObject_GetBuffer(args[0], &s->view, PyBUF_SIMPLE) < 0) {
    Py_DECREF(s);
    return NULL;
  }
  s->at = s->view.buf;
  s->end = s->at + s->view.len;
  s->ext_hook = Py_NewRef(args[1]);
  s->array_hook = Py_NewRef(args[2]);
  s->fallback = Py_NewRef(args[3]);
  /* outside int8, no ext code matches it */
  s->tuple_ext = tuple_ext < -128 || tuple_ext > 127 ? -1000 : (int)tuple_ext;
  return (PyObject*)s;
}

static unsigned char* put_be16(unsigned char* p, uint16_t x) {
  p[0] = (unsigned char)(x >> 8);
  p[1] = (unsigned char)x;
  return p + 2;
}

static unsigned char* put_be32(unsigned char* p, uint32_t x) {
  p[0] = (unsigned char)(x >> 24);
  p[1] = (unsigned char)(x >> 16);
  p[2] = (unsigned char)(x >> 8);
  p[3] = (unsigned char)x;
  return p + 4;
}

static unsigned char* put_be64(unsigned char* p, uint64_t x) {
  p = put_be32(p, (uint32_t)(x >> 32));
  return put_be32(p, (uint32_t)x);
}

/* An int as msgpack-python packs it: the smallest form, unsigned for
 * positive values. */
unsigned char* vowpy_pack_int(unsigned char* p, int64_t v) {
  if (v >= 0) {
    uint64_t u = (uint64_t)v;
    if (u < 0x80) {
      *p++ = (unsigned char)u;
    } else if (u <= 0xFF) {
      *p++ = 0xCC;
      *p++ = (unsigned char)u;
    } else if (u <= 0xFFFF) {
      *p++ = 0xCD;
      p = put_be16(p, (uint16_t)u);
    } else if (u <= 0xFFFFFFFFu) {
      *p++ = 0xCE;
      p = put_be32(p, (uint32_t)u);
    } else {
      *p++ = 0xCF;
      p = put_be64(p, u);
    }
    return p;
  }
  if (v >= -32) {
    *p++ = (unsigned char)(0x100 + v);
  } else if (v >= INT8_MIN) {
    *p++ = 0xD0;
    *p++ = (unsigned char)(uint8_t)(int8_t)v;
  } else if (v >= INT16_MIN) {
    *p++ = 0xD1;
    p = put_be16(p, (uint16_t)(int16_t)v);
  } else if (v >= INT32_MIN) {
    *p++ = 0xD2;
    p = put_be32(p, (uint32_t)(int32_t)v);
  } else {
    *p++ = 0xD3;
    p = put_be64(p, (uint64_t)v);
  }
  return p;
}

/* pack_int_range(start, step, count): msgpack.packb(list(range(start,
 * start + count * step, step))), every item fitting in int64. */
static PyObject* pack_int_range(PyObject* self, PyObject* const* args,
                                Py_ssize_t nargs) {
  (void)self;
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "pack_int_range(start, step, count)");
    return NULL;
  }
  long long start = PyLong_AsLongLong(args[0]);
  long long step = PyLong_AsLongLong(args[1]);
  Py_ssize_t count = PyLong_AsSsize_t(args[2]);
  if (PyErr_Occurred())
    return NULL;
  if (count < 0 || (uint64_t)count > UINT32_MAX) {
    PyErr_SetString(PyExc_ValueError, "pack_int_range: count out of range");
    return NULL;
  }
  long long last;
  if (count > 0 &&
      (__builtin_mul_overflow(step, (long long)(count - 1), &last) ||
       __builtin_add_overflow(start, last, &last))) {
    PyErr_SetString(PyExc_OverflowError,
                    "pack_int_range: the range passes 64 bits");
    return NULL;
  }
  PyObject* out = PyBytes_FromStringAndSize(NULL, 5 + 9 * count);
  if (out == NULL)
    return NULL;
  unsigned char* base = (unsigned char*)PyBytes_AS_STRING(out);
  unsigned char* p = base;
  p += vowpy_array_head(p, (size_t)count);
  long long v = start;
  for (Py_ssize_t i = 0; i < count; i++) {
    p = vowpy_pack_int(p, v);
    if (i + 1 < count)
      v += step; /* cannot overflow: the last item fits */
  }
  if (_PyBytes_Resize(&out, p - base) < 0)
    return NULL;
  return out;
}

static PyMethodDef module_methods[] = {
    {"stream", (PyCFunction)(void (*)(void))make_stream, METH_FASTCALL,
     "stream(buffer, ext_hook, array_hook, fallback, tuple_ext): an "
     "iterator over the msgpack values in buffer."},
    {"pack_int_range", (PyCFunction)(void (*)(void))pack_int_range,
     METH_FASTCALL,
     "pack_int_range(start, step, count): a range's ints as one msgpack "
     "array."},
    {"run_tasks", (PyCFunction)(void (*)(void))vowpy_run_tasks, METH_FASTCALL,
     "run_tasks(tasks, start, functions, reporter, acquire, release, "
     "globals, pack, limit, batch_bytes, slow_ns): a worker's plain tasks "
     "run and "
     "reported; (index, kind, obj) where it stopped (_fastrun.c)."},
    {"map_packed", (PyCFunction)(void (*)(void))vowpy_map_packed, METH_FASTCALL,
     "map_packed(fn, items, out, pack): a map chunk's results, called, "
     "kept in out and packed as one array (None: pack them yourself); "
     "_fastrun.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastcodec_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vow._fastcodec",
    .m_doc = "The parent's hot msgpack paths in C (see codec.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastcodec(void) {
  if (PyType_Ready(&StreamType) < 0)
    return NULL;
  array_key = PyUnicode_InternFromString("__ndarray__");
  if (array_key == NULL || vowpy_fastrun_init() < 0 ||
      vowpy_fastpool_init() < 0)
    return NULL;
  PyObject* module = PyModule_Create(&fastcodec_module);
  if (module != NULL &&
      (PyModule_AddObjectRef(module, "Quick", (PyObject*)&vowpy_quick_type) <
           0 ||
       PyModule_AddObjectRef(module, "SubmitMethod",
                             (PyObject*)&vowpy_submit_method_type) < 0))
    Py_CLEAR(module);
  return module;
}
