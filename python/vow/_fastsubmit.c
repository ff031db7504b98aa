/* vow._fastcodec.Submitter: Pool.submit in C, for the plain call (a
 * function already named, positional arguments that pack) when the call
 * has nothing more to do than gather it (no batch to hand over, no loop
 * to run or wake, no driver to kick).
 *
 * Submitting a task of microseconds costs the parent more in Python (two
 * frames, a dozen attribute lookups, the packer called through a wrapper,
 * Task.__init__) than the task costs its worker. A Submitter holds what
 * Submitting.submit looks up each time (the pool's lock, names, packer,
 * tasks and batch) and takes the same steps under the same lock; where
 * they would take another turn it returns None, having done nothing, and
 * Submitting.submit takes the call from the start. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <structmember.h>

#include "_fastcodec.h"

/* A Task's slots, written as Task.__init__(pool, None) writes them. */
enum { T_POOL, T_PROMISE, T_DONE, T_VALUE, T_ERROR, T_CALLBACKS, T_INTO, T_N };
static const char* const task_slots[T_N] = {
    "_pool", "_promise", "_done", "_value", "_error", "_callbacks", "_into"};

typedef struct {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* lock;        /* the pool's RLock */
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
} Submitter;

static PyObject *s_closed, *s_next_tag, *s_driver, *s_driving, *s_acquire,
    *s_release;

static int submitter_traverse(Submitter* g, visitproc visit, void* arg) {
  Py_VISIT(g->lock);
  Py_VISIT(g->names);
  Py_VISIT(g->pack);
  Py_VISIT(g->tasks);
  Py_VISIT(g->batch);
  Py_VISIT(g->batch_tasks);
  Py_VISIT(g->task_type);
  return 0;
}

static int submitter_clear(Submitter* g) {
  Py_CLEAR(g->lock);
  Py_CLEAR(g->names);
  Py_CLEAR(g->pack);
  Py_CLEAR(g->tasks);
  Py_CLEAR(g->batch);
  Py_CLEAR(g->batch_tasks);
  Py_CLEAR(g->task_type);
  return 0;
}

static void submitter_dealloc(Submitter* g) {
  PyObject_GC_UnTrack(g);
  submitter_clear(g);
  Py_TYPE(g)->tp_free((PyObject*)g);
}

static PyObject* submitter_call(Submitter* g, PyObject* const* args,
                                size_t nargsf, PyObject* kwnames);

/* Each of the Task type's slots, found where its member descriptor says:
 * a type whose slots are not all such members is refused. */
static int find_slots(Submitter* g) {
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
      PyErr_Format(PyExc_TypeError, "Submitter: Task.%s is not a slot",
                   task_slots[i]);
      return -1;
    }
  }
  return 0;
}

/* Submitter(lock, names, pack, tasks, batch, batch_tasks, task_type,
 *           batch_max, eager) */
static PyObject* submitter_new(PyTypeObject* type, PyObject* args,
                               PyObject* kwargs) {
  PyObject *lock, *names, *pack, *tasks, *batch, *batch_tasks;
  PyTypeObject* task_type;
  Py_ssize_t batch_max, eager;
  if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
    PyErr_SetString(PyExc_TypeError, "Submitter takes no keyword arguments");
    return NULL;
  }
  if (!PyArg_ParseTuple(args, "OO!OO!O!O!O!nn:Submitter", &lock, &PyDict_Type,
                        &names, &pack, &PyDict_Type, &tasks, &PyList_Type,
                        &batch, &PyList_Type, &batch_tasks, &PyType_Type,
                        &task_type, &batch_max, &eager))
    return NULL;
  Submitter* g = (Submitter*)type->tp_alloc(type, 0);
  if (g == NULL)
    return NULL;
  g->vectorcall = (vectorcallfunc)submitter_call;
  g->lock = Py_NewRef(lock);
  g->names = Py_NewRef(names);
  g->pack = Py_NewRef(pack);
  g->tasks = Py_NewRef(tasks);
  g->batch = Py_NewRef(batch);
  g->batch_tasks = Py_NewRef(batch_tasks);
  g->task_type = (PyTypeObject*)Py_NewRef(task_type);
  g->batch_max = batch_max;
  g->eager = eager;
  if (find_slots(g) < 0) {
    Py_DECREF(g);
    return NULL;
  }
  return (PyObject*)g;
}

/* The record sent for the call: the function's name, then its arguments,
 * both packed. NULL with no error set: not one this path packs. */
static PyObject* record_of(Submitter* g, PyObject* name, PyObject* args) {
  PyObject* call = PySequence_List(args); /* a worker reads a list */
  if (call == NULL)
    return NULL;
  PyObject* data = PyObject_CallOneArg(g->pack, call);
  Py_DECREF(call);
  if (data == NULL || !PyBytes_Check(data) || !PyBytes_Check(name)) {
    Py_XDECREF(data);
    PyErr_Clear();
    return NULL;
  }
  Py_ssize_t n = PyBytes_GET_SIZE(name), m = PyBytes_GET_SIZE(data);
  PyObject* record = PyBytes_FromStringAndSize(NULL, n + m);
  if (record != NULL) {
    memcpy(PyBytes_AS_STRING(record), PyBytes_AS_STRING(name), (size_t)n);
    memcpy(PyBytes_AS_STRING(record) + n, PyBytes_AS_STRING(data), (size_t)m);
  }
  Py_DECREF(data);
  return record;
}

/* Task(pool, None), its slots written directly. */
static PyObject* new_task(Submitter* g, PyObject* pool) {
  PyObject* task = g->task_type->tp_alloc(g->task_type, 0);
  if (task == NULL)
    return NULL;
  for (int i = 0; i < T_N; i++) {
    PyObject* v = i == T_POOL ? pool : i == T_DONE ? Py_False : Py_None;
    *(PyObject**)((char*)task + g->slot_at[i]) = Py_NewRef(v);
  }
  return task;
}

/* 1: the attribute is true; 0: false; -1: an error. */
static int attr_true(PyObject* obj, PyObject* name) {
  PyObject* v = PyObject_GetAttr(obj, name);
  if (v == NULL)
    return -1;
  int on = PyObject_IsTrue(v);
  Py_DECREF(v);
  return on;
}

/* Whether the call is this path's: the pool open, no driver, no thread in
 * select() to wake, and after it the batch not full nor the tasks out so
 * few that it goes at once. 1 yes, 0 no, -1 an error. */
static int quiet(Submitter* g, PyObject* pool, PyObject* fn) {
  PyObject* driver = PyObject_GetAttr(pool, s_driver);
  if (driver == NULL)
    return -1;
  int has_driver = driver != Py_None;
  Py_DECREF(driver);
  if (has_driver || PyList_GET_SIZE(g->batch) + 1 >= g->batch_max ||
      PyDict_GET_SIZE(g->tasks) + 1 <= g->eager)
    return 0;
  int closed = attr_true(pool, s_closed);
  int driving = closed ? closed : attr_true(pool, s_driving);
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
static PyObject* gather(Submitter* g, PyObject* pool, PyObject* fn,
                        PyObject* call_args) {
  int go = quiet(g, pool, fn);
  if (go <= 0) {
    if (go < 0 && !PyErr_ExceptionMatches(PyExc_Exception))
      return NULL;
    PyErr_Clear(); /* Submitting.submit meets it again, and says so */
    return NULL;
  }
  PyObject* name = Py_NewRef(PyDict_GetItemWithError(g->names, fn));
  PyObject* record = record_of(g, name, call_args);
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
                    "Submitter: the pool's _next_tag is "
                    "not a tag");
  Py_XDECREF(tag);
  Py_XDECREF(next);
  Py_XDECREF(task);
  Py_DECREF(record);
  return NULL;
}

/* g(pool, fn, args, kwargs): the Task gathered for fn(*args, **kwargs),
 * or None (Submitting.submit is to take the call). The tag is the pool's
 * _next_tag, which it then advances. (The pool is an argument: a
 * Submitter the pool holds must not hold it.) */
static PyObject* submitter_call(Submitter* g, PyObject* const* args,
                                size_t nargsf, PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) != 4 || kwnames != NULL ||
      !PyTuple_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError,
                    "Submitter(pool, fn, args: tuple, kwargs)");
    return NULL;
  }
  int has_kwargs = PyObject_IsTrue(args[3]);
  if (has_kwargs != 0)
    return has_kwargs < 0 ? NULL : Py_NewRef(Py_None);
  PyObject* r = PyObject_CallMethodNoArgs(g->lock, s_acquire);
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  PyObject* task = gather(g, args[0], args[1], args[2]);
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  r = PyObject_CallMethodNoArgs(g->lock, s_release);
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

PyTypeObject vowpy_submitter_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vow._fastcodec.Submitter",
    .tp_basicsize = sizeof(Submitter),
    .tp_dealloc = (destructor)submitter_dealloc,
    .tp_vectorcall_offset = offsetof(Submitter, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags =
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc =
        "Submitter(lock, names, pack, tasks, batch, batch_tasks, "
        "Task, batch_max, eager): Pool.submit's plain path, called "
        "as s(pool, fn, args, kwargs) (_fastsubmit.c).",
    .tp_traverse = (traverseproc)submitter_traverse,
    .tp_clear = (inquiry)submitter_clear,
    .tp_new = submitter_new,
};

int vowpy_fastsubmit_init(void) {
  struct {
    PyObject** at;
    const char* text;
  } names[] = {
      {&s_closed, "_closed"},  {&s_next_tag, "_next_tag"},
      {&s_driver, "_driver"},  {&s_driving, "_driving"},
      {&s_acquire, "acquire"}, {&s_release, "release"},
  };
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    *names[i].at = PyUnicode_InternFromString(names[i].text);
    if (*names[i].at == NULL)
      return -1;
  }
  return PyType_Ready(&vowpy_submitter_type);
}
