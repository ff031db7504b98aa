/* vow._fastcodec.run_tasks: a Python worker's loop over a batch of tasks,
 * in C, for as long as each task needs only its call.
 *
 * A task of a few microseconds costs the Python worker more to announce,
 * pack and report (attribute by attribute, under the channel's lock) than
 * to run. Here the same steps are taken in the same order, with the same
 * lock, so the watch thread and the cancelling side see exactly what
 * Reporter.start and Reporter.finish would show them. Whatever is not
 * plain is handed back to worker.py before or after the call, never in
 * the middle of a step: a task it does not start here (a cancel was seen,
 * the last task was slow, the watch thread is parked, keyword arguments,
 * no such function), a call that raised, a result this packer refuses or
 * one too big for a frame's fast path. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "_fastcodec.h"

/* What run_tasks returns with the index: the task there was not started,
 * it raised (the exception follows), or it returned (the result
 * follows) and worker.py packs and reports it. */
enum { NOT_STARTED = 0, RAISED = 1, RETURNED = 2 };

static PyObject *s_last_started, *s_cancel_seen, *s_slow, *s_parked, *s_t0,
    *s_running, *s_results, *s_bytes, *s_write_results, *s_seed;

int vowpy_fastrun_init(void) {
  static const vowpy_name names[] = {
      {&s_last_started, "last_started"},
      {&s_cancel_seen, "cancel_seen"},
      {&s_slow, "slow"},
      {&s_parked, "parked"},
      {&s_t0, "t0"},
      {&s_running, "running"},
      {&s_results, "results"},
      {&s_bytes, "bytes"},
      {&s_write_results, "_write_results"},
      {&s_seed, "_seed"},
  };
  return vowpy_intern(names, sizeof(names) / sizeof(names[0]));
}

static long long monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* time.monotonic_ns's clock */
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int set_int(PyObject* obj, PyObject* name, long long v) {
  PyObject* n = PyLong_FromLongLong(v);
  if (n == NULL)
    return -1;
  int rc = PyObject_SetAttr(obj, name, n);
  Py_DECREF(n);
  return rc;
}

static int call_lock(PyObject* method) {
  PyObject* r = PyObject_CallNoArgs(method);
  if (r == NULL)
    return -1;
  Py_DECREF(r);
  return 0;
}

/* Reporter.start for a task that needs none of its slow steps: 1 started,
 * 0 leave it to Reporter.start, -1 an error. last_started is written
 * before cancel_seen is read, as there. */
static int start(PyObject* reporter, PyObject* task_id, long long* t0) {
  if (PyObject_SetAttr(reporter, s_last_started, task_id) < 0)
    return -1;
  int cancel_seen = vowpy_attr_true(reporter, s_cancel_seen);
  int slow = cancel_seen ? 0 : vowpy_attr_true(reporter, s_slow);
  int parked = cancel_seen || slow ? 0 : vowpy_attr_true(reporter, s_parked);
  if (cancel_seen < 0 || slow < 0 || parked < 0)
    return -1;
  if (cancel_seen || slow || parked)
    return 0;
  *t0 = monotonic_ns();
  if (set_int(reporter, s_t0, *t0) < 0)
    return -1;
  return PyObject_SetAttr(reporter, s_running, task_id) < 0 ? -1 : 1;
}

/* Reporter.finish(record), under the channel's lock (lock: its bound
 * acquire and release). */
static int finish(PyObject* reporter, PyObject* const* lock, PyObject* record,
                  long long t0, long long batch_bytes, long long slow_ns) {
  if (call_lock(lock[0]) < 0)
    return -1;
  int rc = -1;
  PyObject *results = NULL, *bytes = NULL;
  long long have;
  Py_ssize_t len = PyBytes_GET_SIZE(record);
  if (PyObject_SetAttr(reporter, s_running, Py_None) < 0)
    goto out;
  results = PyObject_GetAttr(reporter, s_results);
  bytes = PyObject_GetAttr(reporter, s_bytes);
  if (results == NULL || bytes == NULL || !PyList_Check(results))
    goto out;
  have = PyLong_AsLongLong(bytes);
  if (have == -1 && PyErr_Occurred())
    goto out;
  if (PyList_GET_SIZE(results) > 0 && have + len > batch_bytes) {
    PyObject* r = PyObject_CallMethodNoArgs(reporter, s_write_results);
    if (r == NULL)
      goto out;
    Py_DECREF(r);
    Py_SETREF(results, PyObject_GetAttr(reporter, s_results));
    if (results == NULL || !PyList_Check(results))
      goto out;
    have = 0;
  }
  if (PyList_Append(results, record) < 0 ||
      set_int(reporter, s_bytes, have + len) < 0)
    goto out;
  rc = 0;
out:
  if (rc < 0 && results != NULL && !PyList_Check(results) && !PyErr_Occurred())
    PyErr_SetString(PyExc_TypeError,
                    "run_tasks: Reporter.results is not "
                    "a list");
  Py_XDECREF(results);
  Py_XDECREF(bytes);
  if (call_lock(lock[1]) < 0)
    rc = -1;
  if (rc == 0 && monotonic_ns() - t0 >= slow_ns &&
      PyObject_SetAttr(reporter, s_slow, Py_True) < 0)
    rc = -1;
  return rc;
}

/* [task_id, value] as one record: the array's header, the id, the value
 * packed already. */
static PyObject* record_of(const unsigned char* id, size_t id_len,
                           PyObject* value) {
  Py_ssize_t len = PyBytes_GET_SIZE(value);
  PyObject* out = PyBytes_FromStringAndSize(NULL, 1 + (Py_ssize_t)id_len + len);
  if (out == NULL)
    return NULL;
  unsigned char* p = (unsigned char*)PyBytes_AS_STRING(out);
  *p++ = 0x92;
  memcpy(p, id, id_len);
  memcpy(p + id_len, PyBytes_AS_STRING(value), (size_t)len);
  return out;
}

static PyObject* stopped(Py_ssize_t i, int kind, PyObject* obj) {
  PyObject* out = Py_BuildValue("(niO)", i, kind, obj ? obj : Py_None);
  Py_XDECREF(obj);
  return out;
}

/* The exception the call raised, with its traceback, for worker.py to
 * report; NULL with the error restored when it is not an Exception (it
 * ends the worker's loop, as in worker.py). */
static PyObject* raised(void) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
    PyErr_Restore(type, value, tb);
    return NULL;
  }
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL)
    PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
}

/* run_tasks(tasks, start, functions, reporter, acquire, release, globals,
 *           pack, limit, batch_bytes, slow_ns) -> (index, kind, obj)
 *
 * Runs tasks[start:] (each [id, name, args, seed], args a list or tuple
 * to spread) until one needs worker.py: index is that task's, or
 * len(tasks) when all are done. A result packs with pack and is reported
 * here when shorter than limit bytes, under the channel's lock (its
 * acquire and release, bound). */
PyObject* vowpy_run_tasks(PyObject* self, PyObject* const* args,
                          Py_ssize_t nargs) {
  (void)self;
  if (nargs != 11 || !PyList_Check(args[0]) || !PyDict_Check(args[6])) {
    PyErr_SetString(PyExc_TypeError,
                    "run_tasks(tasks, start, functions, reporter, acquire, "
                    "release, globals, pack, limit, batch_bytes, slow_ns)");
    return NULL;
  }
  PyObject *tasks = args[0], *functions = args[2], *reporter = args[3],
           *globals = args[6], *pack = args[7];
  PyObject* const* lock = args + 4;
  Py_ssize_t i = PyLong_AsSsize_t(args[1]);
  Py_ssize_t limit = PyLong_AsSsize_t(args[8]);
  long long batch_bytes = PyLong_AsLongLong(args[9]);
  long long slow_ns = PyLong_AsLongLong(args[10]);
  if (PyErr_Occurred())
    return NULL;
  for (; i >= 0 && i < PyList_GET_SIZE(tasks); i++) {
    PyObject* task = PyList_GET_ITEM(tasks, i);
    if (!(PyList_Check(task) || PyTuple_Check(task)) ||
        PySequence_Fast_GET_SIZE(task) != 4)
      return stopped(i, NOT_STARTED, NULL);
    PyObject** field = PySequence_Fast_ITEMS(task);
    PyObject *task_id = field[0], *name = field[1], *call = field[2];
    if (!PyList_Check(call) && !PyTuple_Check(call))
      return stopped(i, NOT_STARTED, NULL); /* keyword arguments */
    unsigned char id[9];
    size_t id_len;
    if (!PyLong_Check(task_id))
      return stopped(i, NOT_STARTED, NULL);
    long long id_value = PyLong_AsLongLong(task_id);
    if (id_value < 0) {
      PyErr_Clear();
      return stopped(i, NOT_STARTED, NULL);
    }
    id_len = (size_t)(vowpy_pack_int(id, id_value) - id);
    PyObject* fn = PyObject_GetItem(functions, name);
    if (fn == NULL)
      return NULL; /* as functions[name] raises in worker.py */
    if (fn == Py_None) {
      Py_DECREF(fn);
      return stopped(i, NOT_STARTED, NULL); /* no such function */
    }
    long long t0;
    Py_INCREF(task); /* the call may not drop what it runs on */
    int began = start(reporter, task_id, &t0);
    if (began <= 0 || PyDict_SetItem(globals, s_seed, field[3]) < 0) {
      Py_DECREF(fn);
      Py_DECREF(task);
      return began == 0 ? stopped(i, NOT_STARTED, NULL) : NULL;
    }
    /* (a tuple's items, or the list's, which nothing else can reach) */
    PyObject* result =
        PyObject_Vectorcall(fn, PySequence_Fast_ITEMS(call),
                            (size_t)PySequence_Fast_GET_SIZE(call), NULL);
    Py_DECREF(fn);
    Py_DECREF(task);
    if (result == NULL) {
      PyObject* e = raised();
      return e == NULL ? NULL : stopped(i, RAISED, e);
    }
    PyObject* value = PyObject_CallOneArg(pack, result);
    if (value == NULL || !PyBytes_Check(value) ||
        PyBytes_GET_SIZE(value) >= limit) {
      /* worker.py packs it again, and says why it cannot go, if so */
      if (value == NULL && !PyErr_ExceptionMatches(PyExc_Exception))
        return NULL;
      PyErr_Clear();
      Py_XDECREF(value);
      return stopped(i, RETURNED, result);
    }
    Py_DECREF(result);
    PyObject* record = record_of(id, id_len, value);
    Py_DECREF(value);
    if (record == NULL)
      return NULL;
    int rc = finish(reporter, lock, record, t0, batch_bytes, slow_ns);
    Py_DECREF(record);
    if (rc < 0)
      return NULL;
  }
  return stopped(PyList_GET_SIZE(tasks), NOT_STARTED, NULL);
}

/* ---- a map's chunk ------------------------------------------------- */

/* A chunk's results are written after room for the longest header, which
 * is written in front once their count is known. */

/* The array's header before its n items, which start ARRAY_HEAD_MAX in:
 * the smallest form, as msgpack-python writes it, the items moved up to
 * it. */
static PyObject* finish_array(vowpy_packed* b, size_t n) {
  unsigned char head[VOWPY_ARRAY_HEAD_MAX];
  size_t h = vowpy_array_head(head, n);
  char* base = PyBytes_AS_STRING(b->bytes);
  memmove(base + h, base + VOWPY_ARRAY_HEAD_MAX,
          (size_t)(b->len - VOWPY_ARRAY_HEAD_MAX));
  memcpy(base, head, h);
  b->len -= VOWPY_ARRAY_HEAD_MAX - (Py_ssize_t)h;
  return vowpy_packed_end(b);
}

/* map_packed(fn, items, out, pack): fn called on each item the iterator
 * items gives, in order, each result appended to the list out and packed;
 * returns the packed array of the results, as pack(out) would give it,
 * or None when a result does not pack here (the caller packs out its own
 * way and says why). A call that raises raises here, the iterator at the
 * item after it. */
PyObject* vowpy_map_packed(PyObject* self, PyObject* const* args,
                           Py_ssize_t nargs) {
  (void)self;
  if (nargs != 4 || !PyList_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "map_packed(fn, items, out: list, pack)");
    return NULL;
  }
  PyObject *fn = args[0], *items = args[1], *out = args[2], *pack = args[3];
  vowpy_packed b;
  if (vowpy_packed_start(&b, 4096, VOWPY_ARRAY_HEAD_MAX) < 0)
    return NULL;
  int packing = 1;
  size_t n = 0;
  PyObject* item;
  while ((item = PyIter_Next(items)) != NULL) {
    n++;
    PyObject* result = PyObject_Vectorcall(fn, &item, 1, NULL);
    Py_DECREF(item);
    if (result == NULL)
      goto fail;
    int rc = PyList_Append(out, result);
    if (rc == 0 && packing && (rc = vowpy_pack_value(&b, result, pack)) == 0)
      packing = 0; /* the calls go on; the caller packs */
    Py_DECREF(result);
    if (rc < 0)
      goto fail;
  }
  if (PyErr_Occurred())
    goto fail;
  if (!packing) {
    Py_DECREF(b.bytes);
    Py_RETURN_NONE;
  }
  return finish_array(&b, n);
fail:
  Py_XDECREF(b.bytes);
  return NULL;
}
