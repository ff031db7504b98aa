/* vow._fastcodec.Quick: a pool's two hottest paths in C. Called, it is
 * Pool.submit for the plain call (a function already named, positional
 * arguments that pack) when the call has nothing more to do than gather
 * it (no batch to hand over, no loop to run or wake, no driver to kick);
 * its settle() is Pumping._dispatch for the plain result (a value to
 * decode for a task nobody is called back for).
 *
 * Submitting a task of microseconds costs the parent more in Python (two
 * frames, a dozen attribute lookups, the packer called through a wrapper,
 * Task.__init__) than the task costs its worker. A Quick holds what
 * Submitting.submit looks up each time (the pool's lock, names, packer,
 * tasks and batch) and takes the same steps under the same lock; where
 * they would take another turn it returns None, having done nothing, and
 * Submitting.submit takes the call from the start. Pool.submit itself is
 * SubmitMethod (at the end), which hands the pool's Quick the plain call
 * with no Python frame around it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <structmember.h>

#include <vow/collect.h>

#include "_fastcodec.h"

/* A Task's slots, written as Task.__init__(pool, None) writes them. */
enum { T_POOL, T_PROMISE, T_DONE, T_VALUE, T_ERROR, T_CALLBACKS, T_INTO, T_N };
static const char* const task_slots[T_N] = {
    "_pool", "_promise", "_done", "_value", "_error", "_callbacks", "_into"};

typedef struct {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* acquire; /* the pool's RLock's, bound */
  PyObject* release;
  PyObject* names;       /* dict: function -> its name, packed */
  PyObject* pack;        /* the pool's packer */
  PyObject* tasks;       /* dict: tag -> Task */
  PyObject* batch;       /* list: records gathered */
  PyObject* batch_tasks; /* list: their Tasks */
  PyTypeObject* task_type;
  Py_ssize_t slot_at[T_N]; /* each slot's offset in a Task */
  Py_ssize_t batch_max;    /* a batch this long is handed over */
  Py_ssize_t eager;        /* while at most this many tasks are out, each
                            * is sent at once */
} Quick;

static PyObject *s_closed, *s_next_tag, *s_driver, *s_driving;

static int quick_traverse(Quick* g, visitproc visit, void* arg) {
  Py_VISIT(g->acquire);
  Py_VISIT(g->release);
  Py_VISIT(g->names);
  Py_VISIT(g->pack);
  Py_VISIT(g->tasks);
  Py_VISIT(g->batch);
  Py_VISIT(g->batch_tasks);
  Py_VISIT(g->task_type);
  return 0;
}

static int quick_clear(Quick* g) {
  Py_CLEAR(g->acquire);
  Py_CLEAR(g->release);
  Py_CLEAR(g->names);
  Py_CLEAR(g->pack);
  Py_CLEAR(g->tasks);
  Py_CLEAR(g->batch);
  Py_CLEAR(g->batch_tasks);
  Py_CLEAR(g->task_type);
  return 0;
}

static void quick_dealloc(Quick* g) {
  PyObject_GC_UnTrack(g);
  quick_clear(g);
  Py_TYPE(g)->tp_free((PyObject*)g);
}

static PyObject* quick_call(Quick* g, PyObject* const* args, size_t nargsf,
                            PyObject* kwnames);

/* Each of the Task type's slots, found where its member descriptor says:
 * a type whose slots are not all such members is refused. */
static int find_slots(Quick* g) {
  for (int i = 0; i < T_N; i++) {
    PyObject* d =
        PyObject_GetAttrString((PyObject*)g->task_type, task_slots[i]);
    if (d == NULL)
      return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) &&
             ((PyMemberDescrObject*)d)->d_member->type == T_OBJECT_EX;
    if (ok)
      g->slot_at[i] = ((PyMemberDescrObject*)d)->d_member->offset;
    Py_DECREF(d);
    if (!ok) {
      PyErr_Format(PyExc_TypeError, "Quick: Task.%s is not a slot",
                   task_slots[i]);
      return -1;
    }
  }
  return 0;
}

/* Quick(lock, names, pack, tasks, batch, batch_tasks, task_type,
 *           batch_max, eager) */
static PyObject* quick_new(PyTypeObject* type, PyObject* args,
                           PyObject* kwargs) {
  PyObject *lock, *names, *pack, *tasks, *batch, *batch_tasks;
  PyTypeObject* task_type;
  Py_ssize_t batch_max, eager;
  if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
    PyErr_SetString(PyExc_TypeError, "Quick takes no keyword arguments");
    return NULL;
  }
  if (!PyArg_ParseTuple(args, "OO!OO!O!O!O!nn:Quick", &lock, &PyDict_Type,
                        &names, &pack, &PyDict_Type, &tasks, &PyList_Type,
                        &batch, &PyList_Type, &batch_tasks, &PyType_Type,
                        &task_type, &batch_max, &eager))
    return NULL;
  Quick* g = (Quick*)type->tp_alloc(type, 0);
  if (g == NULL)
    return NULL;
  g->vectorcall = (vectorcallfunc)quick_call;
  g->acquire = PyObject_GetAttrString(lock, "acquire");
  g->release = PyObject_GetAttrString(lock, "release");
  g->names = Py_NewRef(names);
  g->pack = Py_NewRef(pack);
  g->tasks = Py_NewRef(tasks);
  g->batch = Py_NewRef(batch);
  g->batch_tasks = Py_NewRef(batch_tasks);
  g->task_type = (PyTypeObject*)Py_NewRef(task_type);
  g->batch_max = batch_max;
  g->eager = eager;
  if (g->acquire == NULL || g->release == NULL || find_slots(g) < 0) {
    Py_DECREF(g);
    return NULL;
  }
  return (PyObject*)g;
}

/* The record sent for the call: the function's name, then its arguments
 * as a list, both packed (each argument as the pool's packer packs it).
 * NULL with no error set: not one this path packs. */
static PyObject* record_of(Quick* g, PyObject* name, PyObject* const* args,
                           Py_ssize_t nargs) {
  vowpy_packed b;
  if (!PyBytes_Check(name))
    return NULL;
  Py_ssize_t n = PyBytes_GET_SIZE(name);
  if (vowpy_packed_start(&b, n + 8 + 9 * nargs, 0) < 0)
    return NULL;
  if (vowpy_put_raw(&b, PyBytes_AS_STRING(name), (size_t)n) < 0 ||
      vowpy_put_array_head(&b, (size_t)nargs) < 0)
    goto fail;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    int rc = vowpy_pack_value(&b, args[i], g->pack);
    if (rc <= 0) {
      if (rc == 0)
        PyErr_Clear(); /* Submitting._gather packs it, and says why not */
      goto fail;
    }
  }
  return vowpy_packed_end(&b);
fail:
  Py_CLEAR(b.bytes);
  return NULL;
}

/* Task(pool, None), its slots written directly. */
static PyObject* new_task(Quick* g, PyObject* pool) {
  PyObject* task = g->task_type->tp_alloc(g->task_type, 0);
  if (task == NULL)
    return NULL;
  for (int i = 0; i < T_N; i++) {
    PyObject* v = i == T_POOL ? pool : i == T_DONE ? Py_False : Py_None;
    *(PyObject**)((char*)task + g->slot_at[i]) = Py_NewRef(v);
  }
  return task;
}

/* Whether the call is this path's: the pool open, no driver, no thread in
 * select() to wake, and after it the batch not full nor the tasks out so
 * few that it goes at once. 1 yes, 0 no, -1 an error. */
static int quiet(Quick* g, PyObject* pool, PyObject* fn) {
  PyObject* driver = PyObject_GetAttr(pool, s_driver);
  if (driver == NULL)
    return -1;
  int has_driver = driver != Py_None;
  Py_DECREF(driver);
  if (has_driver || PyList_GET_SIZE(g->batch) + 1 >= g->batch_max ||
      PyDict_GET_SIZE(g->tasks) + 1 <= g->eager)
    return 0;
  int closed = vowpy_attr_true(pool, s_closed);
  int driving = closed ? closed : vowpy_attr_true(pool, s_driving);
  if (closed < 0 || driving < 0)
    return -1;
  if (closed || driving)
    return 0;
  PyObject* name = PyDict_GetItemWithError(g->names, fn);
  if (name == NULL)
    return PyErr_Occurred() ? -1 : 0;
  return 1;
}

/* Gathers the call under the lock: the Task, or NULL with an error, or
 * NULL without one (not this path's, nothing done). */
static PyObject* gather(Quick* g, PyObject* pool, PyObject* fn,
                        PyObject* const* call_args, Py_ssize_t nargs) {
  int go = quiet(g, pool, fn);
  if (go <= 0) {
    if (go < 0 && !PyErr_ExceptionMatches(PyExc_Exception))
      return NULL;
    PyErr_Clear(); /* Submitting.submit meets it again, and says so */
    return NULL;
  }
  PyObject* name = Py_NewRef(PyDict_GetItemWithError(g->names, fn));
  PyObject* record = record_of(g, name, call_args, nargs);
  Py_DECREF(name);
  if (record == NULL)
    return NULL;
  PyObject *task = NULL, *next = NULL;
  PyObject* tag = PyObject_GetAttr(pool, s_next_tag);
  long long tag_value = tag == NULL ? -1 : PyLong_AsLongLong(tag);
  if (tag_value < 0)
    goto fail;
  task = new_task(g, pool);
  next = PyLong_FromLongLong(tag_value + 1);
  if (task == NULL || next == NULL || PyDict_SetItem(g->tasks, tag, task) < 0)
    goto fail;
  if (PyObject_SetAttr(pool, s_next_tag, next) < 0 ||
      PyList_Append(g->batch, record) < 0 ||
      PyList_Append(g->batch_tasks, task) < 0) {
    /* (out of memory only) the task is in no batch: it never was */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyDict_DelItem(g->tasks, tag) < 0)
      PyErr_Clear();
    PyErr_Restore(type, value, tb);
    goto fail;
  }
  Py_DECREF(tag);
  Py_DECREF(next);
  Py_DECREF(record);
  return task;
fail:
  if (!PyErr_Occurred())
    PyErr_SetString(PyExc_TypeError,
                    "Quick: the pool's _next_tag is "
                    "not a tag");
  Py_XDECREF(tag);
  Py_XDECREF(next);
  Py_XDECREF(task);
  Py_DECREF(record);
  return NULL;
}

/* The Task gathered for fn(*args) under the pool's lock, or None (not
 * this path's: nothing done), or NULL (an error). */
static PyObject* submit_plain(Quick* g, PyObject* pool, PyObject* fn,
                              PyObject* const* args, Py_ssize_t nargs) {
  PyObject* r = PyObject_CallNoArgs(g->acquire);
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  PyObject* task = gather(g, pool, fn, args, nargs);
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  r = PyObject_CallNoArgs(g->release);
  if (r == NULL) {
    Py_XDECREF(task);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return NULL;
  }
  Py_DECREF(r);
  PyErr_Restore(type, value, tb);
  if (task == NULL && !PyErr_Occurred())
    return Py_NewRef(Py_None);
  return task;
}

/* g(pool, fn, args, kwargs): the Task gathered for fn(*args, **kwargs),
 * or None (Submitting.submit is to take the call). The tag is the pool's
 * _next_tag, which it then advances. (The pool is an argument: a
 * Quick the pool holds must not hold it.) */
static PyObject* quick_call(Quick* g, PyObject* const* args, size_t nargsf,
                            PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 4 || kwnames != NULL ||
      !PyTuple_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "Quick(pool, fn, args: tuple, kwargs)");
    return NULL;
  }
  int has_kwargs = PyObject_IsTrue(args[3]);
  if (has_kwargs != 0)
    return has_kwargs < 0 ? NULL : Py_NewRef(Py_None);
  return submit_plain(g, args[0], args[1], &PyTuple_GET_ITEM(args[2], 0),
                      PyTuple_GET_SIZE(args[2]));
}

static PyObject** slot(Quick* g, PyObject* task, int i) {
  return (PyObject**)((char*)task + g->slot_at[i]);
}

static void set_slot(Quick* g, PyObject* task, int i, PyObject* v) {
  PyObject* old = *slot(g, task, i);
  *slot(g, task, i) = Py_NewRef(v);
  Py_XDECREF(old);
}

/* The task of entry e if its result is plain (fulfilled, its Task waited
 * for by nobody's callback and not a map's slice), taken out of the
 * pool's tasks (a new reference); NULL when not (an error set or not). */
static PyObject* plain_task(Quick* g, const vow_settled_t* e) {
  if (e->state != VOW_FULFILLED)
    return NULL;
  PyObject* tag = PyLong_FromUnsignedLongLong(e->tag);
  if (tag == NULL)
    return NULL;
  PyObject* task = PyDict_GetItemWithError(g->tasks, tag);
  if (task == NULL || !Py_IS_TYPE(task, g->task_type) ||
      *slot(g, task, T_INTO) != Py_None ||
      *slot(g, task, T_CALLBACKS) != Py_None) {
    Py_DECREF(tag);
    return NULL;
  }
  Py_INCREF(task);
  if (PyDict_DelItem(g->tasks, tag) < 0)
    Py_CLEAR(task);
  Py_DECREF(tag);
  return task;
}

/* q.settle(entries, count, start, values): settles entries
 * start.. of the count vow_settled_t in entries while each is plain, each
 * value the next in values (a Stream); returns the index of the first it
 * left to Pumping._dispatch (count: none). */
static PyObject* quick_settle(Quick* g, PyObject* const* args,
                              Py_ssize_t nargs) {
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "settle(entries, count, start, values)");
    return NULL;
  }
  Py_ssize_t count = PyLong_AsSsize_t(args[1]);
  Py_ssize_t i = PyLong_AsSsize_t(args[2]);
  if (PyErr_Occurred())
    return NULL;
  Py_buffer view;
  if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
    return NULL;
  if (count < 0 || i < 0 ||
      (size_t)view.len < (size_t)count * sizeof(vow_settled_t)) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_ValueError, "settle: fewer entries than count");
    return NULL;
  }
  for (; i < count; i++) {
    vow_settled_t e;
    memcpy(&e, (const char*)view.buf + (size_t)i * sizeof(e), sizeof(e));
    PyObject* task = plain_task(g, &e);
    if (task == NULL)
      break;
    PyObject* value =
        e.bytes != NULL ? vowpy_stream_next(args[3]) : Py_NewRef(Py_None);
    if (value == NULL) {
      Py_DECREF(task);
      break;
    }
    set_slot(g, task, T_VALUE, value);
    set_slot(g, task, T_DONE, Py_True);
    set_slot(g, task, T_PROMISE, Py_None);
    Py_DECREF(value);
    Py_DECREF(task);
  }
  PyBuffer_Release(&view);
  return PyErr_Occurred() ? NULL : PyLong_FromSsize_t(i);
}

static PyMethodDef quick_methods[] = {
    {"settle", (PyCFunction)(void (*)(void))quick_settle, METH_FASTCALL,
     "settle(entries, count, start, values): the plain results "
     "among the entries settled; the index of the first left."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject vowpy_quick_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vow._fastcodec.Quick",
    .tp_basicsize = sizeof(Quick),
    .tp_dealloc = (destructor)quick_dealloc,
    .tp_vectorcall_offset = offsetof(Quick, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags =
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc =
        "Quick(lock, names, pack, tasks, batch, batch_tasks, "
        "Task, batch_max, eager): Pool.submit's plain path, called "
        "as s(pool, fn, args, kwargs) (_fastpool.c).",
    .tp_traverse = (traverseproc)quick_traverse,
    .tp_clear = (inquiry)quick_clear,
    .tp_new = quick_new,
    .tp_methods = quick_methods,
};

/* ---- Pool.submit ---------------------------------------------------- */

/* SubmitMethod(submit): Pool.submit as a method implemented in C, called
 * without a Python frame (a method descriptor: pool.submit(...) passes
 * the pool first, with no bound method made). A plain call goes to the
 * pool's _quick (a Quick, or anything called as one); any other, or one
 * _quick gives back, to submit, the Python function, which it stands
 * for: its name, doc and signature (__wrapped__) are submit's. */
typedef struct {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* submit;
} SubmitMethod;

static PyObject* s_quick;

static PyObject* submit_method_call(SubmitMethod* m, PyObject* const* args,
                                    size_t nargsf, PyObject* kwnames) {
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (kwnames == NULL && nargs >= 2) {
    PyObject* quick = PyObject_GetAttr(args[0], s_quick);
    PyObject* task;
    if (quick == NULL)
      return NULL;
    if (quick == Py_None) {
      task = Py_NewRef(Py_None);
    } else if (Py_IS_TYPE(quick, &vowpy_quick_type)) {
      task = submit_plain((Quick*)quick, args[0], args[1], args + 2, nargs - 2);
    } else {
      PyObject* call_args = PyTuple_New(nargs - 2);
      PyObject* kwargs = PyDict_New();
      task = NULL;
      if (call_args != NULL && kwargs != NULL) {
        for (Py_ssize_t i = 2; i < nargs; i++)
          PyTuple_SET_ITEM(call_args, i - 2, Py_NewRef(args[i]));
        task = PyObject_CallFunctionObjArgs(quick, args[0], args[1], call_args,
                                            kwargs, NULL);
      }
      Py_XDECREF(call_args);
      Py_XDECREF(kwargs);
    }
    Py_DECREF(quick);
    if (task != Py_None)
      return task;
    Py_DECREF(task);
  }
  return PyObject_Vectorcall(m->submit, args, nargs, kwnames);
}

static PyObject* submit_method_new(PyTypeObject* type, PyObject* args,
                                   PyObject* kwargs) {
  PyObject* submit;
  if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) ||
      !PyArg_ParseTuple(args, "O:SubmitMethod", &submit))
    return NULL;
  SubmitMethod* m = (SubmitMethod*)type->tp_alloc(type, 0);
  if (m == NULL)
    return NULL;
  m->vectorcall = (vectorcallfunc)submit_method_call;
  m->submit = Py_NewRef(submit);
  return (PyObject*)m;
}

static void submit_method_dealloc(SubmitMethod* m) {
  PyObject_GC_UnTrack(m);
  Py_CLEAR(m->submit);
  Py_TYPE(m)->tp_free((PyObject*)m);
}

static int submit_method_traverse(SubmitMethod* m, visitproc visit, void* arg) {
  Py_VISIT(m->submit);
  return 0;
}

static PyObject* submit_method_get(PyObject* self, PyObject* obj,
                                   PyObject* type) {
  (void)type;
  if (obj == NULL || obj == Py_None)
    return Py_NewRef(self);
  return PyMethod_New(self, obj);
}

/* What describes it is the Python function's. */
static PyObject* submit_method_getattr(SubmitMethod* m, PyObject* name) {
  if (PyUnicode_Check(name) &&
      (PyUnicode_CompareWithASCIIString(name, "__wrapped__") == 0))
    return Py_NewRef(m->submit);
  if (PyUnicode_Check(name) &&
      (PyUnicode_CompareWithASCIIString(name, "__doc__") == 0 ||
       PyUnicode_CompareWithASCIIString(name, "__name__") == 0 ||
       PyUnicode_CompareWithASCIIString(name, "__qualname__") == 0 ||
       PyUnicode_CompareWithASCIIString(name, "__module__") == 0))
    return PyObject_GetAttr(m->submit, name);
  return PyObject_GenericGetAttr((PyObject*)m, name);
}

static PyObject* submit_method_repr(SubmitMethod* m) {
  return PyObject_Repr(m->submit);
}

PyTypeObject vowpy_submit_method_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vow._fastcodec.SubmitMethod",
    .tp_basicsize = sizeof(SubmitMethod),
    .tp_dealloc = (destructor)submit_method_dealloc,
    .tp_vectorcall_offset = offsetof(SubmitMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_getattro = (getattrofunc)submit_method_getattr,
    .tp_repr = (reprfunc)submit_method_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_traverse = (traverseproc)submit_method_traverse,
    .tp_descr_get = submit_method_get,
    .tp_new = submit_method_new,
};

int vowpy_fastpool_init(void) {
  static const vowpy_name names[] = {
      {&s_closed, "_closed"}, {&s_next_tag, "_next_tag"},
      {&s_driver, "_driver"}, {&s_driving, "_driving"},
      {&s_quick, "_quick"},
  };
  if (vowpy_intern(names, sizeof(names) / sizeof(names[0])) < 0 ||
      PyType_Ready(&vowpy_submit_method_type) < 0)
    return -1;
  return PyType_Ready(&vowpy_quick_type);
}
