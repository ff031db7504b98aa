"""Submitting: a task's call packed and gathered, handed to libvow a
batch at a time (a call through ctypes costs more than the rest of a
submit), each promise watched by the pool's collector under the task's
tag."""
import array
import ctypes
import importlib.machinery
import os
import sys
import types

from . import _lib, codec
from ._shared import Shared
from ._task import Task
from .codec import CannotPack, packb
from .errors import BadInput, PoolNotRunning

BATCH = 256  # submissions handed to libvow per call
_SIZE_T = next(code for code in "LQI" if array.array(code).itemsize ==
               ctypes.sizeof(ctypes.c_size_t))


def _fn_name(fn):
    """What names fn to a worker: a name as given ("square": the worker
    module's function, or a builtin); a function as "module:qualname",
    which a Python worker imports (a function of the parent's main script
    is found in the worker's copy of it, as multiprocessing's spawn does)."""
    if isinstance(fn, str):
        if not fn:
            raise TypeError("a task function's name is empty")
        return fn.encode()
    qualname = getattr(fn, "__qualname__", None) or \
        getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", None)
    if not callable(fn) or not qualname:
        raise TypeError(f"a task function is a name or a function, not "
                        f"{fn!r}")
    if "<locals>" in qualname and fn.__name__.isidentifier():
        return fn.__name__.encode()  # the worker module's function so named
    if "<" in qualname or not module:
        # A lambda, a nested function: nothing else carries the code over.
        raise TypeError(f"{fn!r} has no name a worker can look up: vow "
                        "sends a task function by name, so it must be "
                        "defined at the top of a module (or a class in it)")
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, (type, types.ModuleType)):
        raise TypeError(f"{fn!r} is a method of an object, which a worker "
                        "cannot look up by name: vow sends task functions "
                        "by name, not the objects they belong to")
    return f"{module}:{qualname}{_where_unimportable(module)}".encode()


def _where_unimportable(module_name):
    """"@path" for a module that a worker could not import by its name (one
    loaded from a file by path, as pytest's importlib mode does), so the
    worker loads it from there; "" for any other (checked once each)."""
    where = _WHERE.get(module_name)
    if where is None:
        where = ""
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None)
        if path and module_name not in ("__main__", "builtins"):
            # sys.path alone, not sys.modules (where the module is): what
            # a worker's import finds. A package's module stands or falls
            # with its top-level package.
            top = module_name.partition(".")[0]
            try:
                spec = importlib.machinery.PathFinder.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            if spec is None or (top == module_name and spec.origin and
                                os.path.realpath(spec.origin) !=
                                os.path.realpath(path)):
                where = "@" + os.path.abspath(path)
        _WHERE[module_name] = where
    return where


_WHERE = {}  # a module's name -> its "@path", or ""


def _call_args(args, kwargs):
    """A call's arguments as the worker reads them: the list of positional
    arguments, or with keyword arguments {"args": [...], "kwargs": {...}}."""
    # A list, not the tuple: a Python worker's codec would keep the tuple
    # a tuple (an ext type, slower both ways) for no one's benefit.
    return {"args": list(args), "kwargs": kwargs} if kwargs else list(args)


def _shared_from(pieces, lens, align_at):
    """A vow value in a new shared-memory segment, written from pieces
    (bytes or addresses) through the kernel, byte align_at on a page;
    None when no segment can be made."""
    err = ctypes.c_int(0)
    ptrs = (ctypes.c_void_p * len(pieces))(*(
        ctypes.cast(ctypes.c_char_p(p), ctypes.c_void_p).value
        if isinstance(p, bytes) else p for p in pieces))
    sizes = (ctypes.c_size_t * len(lens))(*lens)
    return _lib.value_new_shared_from(ptrs, sizes, len(pieces), align_at,
                                      ctypes.byref(err)) or None


def _bad_input(e):
    """BadInput for an argument packing refused with e."""
    return BadInput(str(e) if isinstance(e, CannotPack) else
                    f"the value cannot be sent to vow: {e}", kind="bad input")


def _refused(code):
    """The error of a submission libvow refused with code."""
    if code == _lib.UV_ENOMEM:
        return MemoryError("vow: no memory for a task")
    return RuntimeError(f"vow: the task was refused: {_lib.strerror(code)}")


class Submitting:
    """Pool's submitting half."""

    def _name(self, fn):
        """fn's name packed as a msgpack str, as the records sent with
        vow_collector_submit_many begin."""
        name = self._names.get(fn)
        if name is None:
            name = self._names[fn] = packb(_fn_name(fn).decode())
        return name

    def _gather(self, fn, args, kwargs, timeout_ms=0):
        """A Task for fn(*args, **kwargs), its record gathered for the
        next _flush (or, holding big numpy arrays, submitted now from
        shared memory; with timeout_ms, its own timeout)."""
        # Submissions are gathered and handed to libvow BATCH at a time
        # (and whenever the loop runs): a call through ctypes costs more
        # than the rest of a submit.
        if self._closed:  # _check_open, without a call on the hot path
            raise PoolNotRunning("Pool not running")
        name = self._names.get(fn) or self._name(fn)
        try:
            data = self._packb(_call_args(args, kwargs))
        except codec.BigArrays:
            return self._submit_shared(fn, _call_args(args, kwargs),
                                       timeout_ms)
        except OverflowError:  # an int past 64 bits: pickled, if it may
            data = self._pack_big(_call_args(args, kwargs))
        except (TypeError, ValueError) as e:
            raise _bad_input(e) from None
        task = Task(self, None)
        self._tasks[self._next_tag] = task
        self._next_tag += 1
        self._batch.append(name + data)
        self._batch_tasks.append(task)
        return task

    def _submit_shared(self, fn, call, timeout_ms):
        """A Task for a call holding parts (Shared values, big numpy
        arrays, each array written once into a segment of its own): its
        head packed with a reference where each part stands, submitted
        now (after what was gathered before it). Lock held."""
        value = self._value_with_parts(call)
        self._flush()  # the order of submission is the order of sending
        name = _fn_name(fn)
        promise = _lib.pool_submit_timeout(self._pool, name, value,
                                           timeout_ms) if timeout_ms else \
            _lib.pool_submit(self._pool, name, value)
        return self._watch(promise)

    def _value_with_parts(self, obj):
        """A vow_value_t of obj with its parts set apart."""
        made = []  # the Shared made for this call's arrays

        def share(array):
            shared = self._share_array(array)
            if shared is not None:
                made.append(shared)
            return shared
        try:
            data, parts = codec.pack_with_parts(self._packb, obj, share)
        except OverflowError:
            data, parts = self._pack_big(obj), []
        except (TypeError, ValueError) as e:
            raise _bad_input(e) from None
        if not parts:
            return self._value(None, data)
        err = ctypes.c_int(0)
        refs = (ctypes.c_void_p * len(parts))(*(p._value for p in parts))
        value = _lib.value_new_with_parts(data, len(data), refs, len(parts),
                                          ctypes.byref(err))
        for shared in made:  # the value holds them now, or none needs them
            shared.close()
        if not value:
            raise MemoryError("vow: no memory for a task's arguments")
        return value

    def _share_array(self, array):
        """A Shared of numpy array array: its map's head and its bytes
        (made C-contiguous first if they are not) written once into a new
        segment, the data on a page. None when no segment can be made."""
        import numpy
        head = codec.array_head(array)
        array = numpy.ascontiguousarray(array)
        value = _shared_from((head, array.ctypes.data), (len(head),
                                                         array.nbytes),
                             len(head))
        return Shared(value, array.nbytes) if value else None

    def share(self, obj):
        """obj written once into shared memory, for many tasks: a Shared
        to pass in their arguments where obj would go. A numpy array is
        copied there once, straight from its memory; any other value is
        packed once. docs/python.md, "Big arrays"."""
        with self._lock:
            self._check_open()
        if hasattr(obj, "__array_interface__") and hasattr(obj, "dtype") \
                and not obj.dtype.hasobject and getattr(obj, "ndim", 0):
            if obj.nbytes >= 1 << 32:
                raise ValueError(f"vow: an array of {obj.nbytes} bytes "
                                 "cannot be shared (at most 4 GiB - 1)")
            shared = self._share_array(obj)
            if shared is None:
                raise MemoryError("vow: no shared-memory segment could be "
                                  f"made for {obj.nbytes} bytes")
            return shared
        try:
            data = codec.pack_inline(self._packb, obj)
        except OverflowError:
            data = self._pack_big(obj)
        except (TypeError, ValueError) as e:
            raise _bad_input(e) from None
        value = _shared_from((data,), (len(data),), 0)
        if not value:
            raise MemoryError("vow: no shared-memory segment could be made "
                              f"for {len(data)} bytes")
        return Shared(value, len(data))

    def _pack_big(self, value):
        try:
            return self._pack_overflow(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise _bad_input(e) from None

    def submit(self, fn, /, *args, **kwargs):
        """Runs fn(*args, **kwargs) on a worker; returns its Task. fn is
        the function's name in the worker's module (or the function: see
        _fn_name)."""
        with self._lock:
            task = self._gather(fn, args, kwargs)
            driver = self._driver
            if driver is not None and driver.kick():
                if len(self._batch) == BATCH:
                    self._flush()
            elif len(self._batch) == BATCH or len(self._tasks) <= self._eager:
                # Tasks reach the workers when the loop runs. It runs here,
                # in C only (no Python callback runs inside submit), for
                # each of the first tasks while the workers may be idle,
                # and then once a batch: the workers start at once, and go
                # on with the first tasks while the caller still submits
                # the rest. Twice: replies are read after the turn's
                # sending, and what they free a worker for is sent only at
                # the next turn, which would be a batch away.
                self._flush()
                _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
                _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
            if self._driving:
                self._wake()  # the thread sleeping in the loop sends it
        return task

    def _flush(self, timeout_ms=0):
        """Hands the gathered submissions to libvow (with timeout_ms, each
        its own timeout). Lock held."""
        batch, tasks = self._batch, self._batch_tasks
        n = len(batch)
        if n == 0:
            return
        lens = array.array(_SIZE_T, map(len, batch))
        records = b"".join(batch)
        # Emptied in place: the Quick holds these lists.
        batch.clear()
        tasks = tasks[:]
        self._batch_tasks.clear()
        first_tag = self._next_tag - n
        done = _lib.collector_submit_many(
            self._collector, self._pool, records,
            lens.buffer_info()[0], n, timeout_ms, first_tag, self._out,
            self._errs)
        promises = self._out_ptrs[:n]
        for task, promise in zip(tasks, promises):
            task._promise = promise
        if done < n:  # out of memory: those fail now
            for i, task in enumerate(tasks):
                if not promises[i]:
                    del self._tasks[first_tag + i]
                    task._settle(None, _refused(self._errs[i]))

    def submit_timeout(self, timeout, fn, /, *args, **kwargs):
        """submit with this task's own timeout in seconds."""
        with self._lock:
            self._flush()  # the order of submission is the order of sending
            task = self._gather(fn, args, kwargs, max(1, int(timeout * 1000)))
            self._flush(max(1, int(timeout * 1000)))
            if task._done:  # refused
                raise task._error
            driver = self._driver
            if driver is None or not driver.kick():
                _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
            self._wake()
        return task

    def _value(self, obj, data=None):
        """A vow_value_t of obj, or of data, obj already packed."""
        try:
            if data is None:
                data = self._packb(obj)
        except OverflowError:
            data = self._pack_big(obj)
        except (TypeError, ValueError) as e:
            raise _bad_input(e) from None
        err = ctypes.c_int(0)
        v = _lib.value_new_msgpack(data, len(data), ctypes.byref(err))
        if not v:
            raise MemoryError("vow: no memory for a task's arguments")
        return v

    def _watch(self, promise):
        """A Task for promise, watched by the collector (lock held)."""
        if not promise:
            raise RuntimeError("vow: the pool's context is closed")
        tag = self._next_tag
        self._next_tag += 1
        task = Task(self, promise)
        if _lib.collector_add(self._collector, promise, tag) != 0:
            _lib.promise_release(promise)
            raise MemoryError("vow: no memory to watch a task")
        _lib.promise_release(promise)  # the collector holds it now
        self._tasks[tag] = task
        if self._driver is not None:
            self._driver.kick()
        self._wake()
        return task


if codec.fastcodec is not None:
    # The plain call (a named function, positional arguments, nothing to
    # hand over) goes straight to the pool's Quick, with no Python frame;
    # the rest to submit as written above (_fastpool.c, SubmitMethod).
    Submitting.submit = codec.fastcodec.SubmitMethod(Submitting.submit)
