"""Submitting: a task's call packed and gathered, handed to libvow a
batch at a time (a call through ctypes costs more than the rest of a
submit), each promise watched by the pool's collector under the task's
tag."""
import array
import ctypes

from . import _lib
from ._task import Task
from .codec import CannotPack, packb
from .errors import BadInput

BATCH = 256  # submissions handed to libvow per call
_SIZE_T = next(code for code in "LQI" if array.array(code).itemsize ==
               ctypes.sizeof(ctypes.c_size_t))


def _fn_name(fn):
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", None)
    if not name:
        raise TypeError(f"a task function is a name or a function, not {fn!r}")
    if not isinstance(fn, str) and not name.isidentifier():
        # A lambda or the like: nothing else carries the code over.
        raise TypeError(f"{fn!r} has no name a worker can look up: vow "
                        "sends a task function by name, so it must be a "
                        "function defined at the top of the worker's module")
    return name.encode()


def _call_args(args, kwargs):
    """A call's arguments as the worker reads them: the list of positional
    arguments, or with keyword arguments {"args": [...], "kwargs": {...}}."""
    return {"args": args, "kwargs": kwargs} if kwargs else args


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

    def _gather(self, fn, args, kwargs):
        """A Task for fn(*args, **kwargs), its record gathered for the
        next _flush."""
        # Submissions are gathered and handed to libvow BATCH at a time
        # (and whenever the loop runs): a call through ctypes costs more
        # than the rest of a submit.
        if self._closed:  # _check_open, without a call on the hot path
            raise RuntimeError("vow: the pool is shut down")
        name = self._names.get(fn) or self._name(fn)
        try:
            data = self._packb(_call_args(args, kwargs))
        except (TypeError, ValueError, OverflowError) as e:
            raise _bad_input(e) from None
        task = Task(self, None)
        self._tasks[self._next_tag] = task
        self._next_tag += 1
        self._batch.append(name + data)
        self._batch_tasks.append(task)
        return task

    def submit(self, fn, *args, **kwargs):
        """Runs fn(*args, **kwargs) on a worker; returns its Task. fn is
        the function's name in the worker's module (or the function, whose
        __name__ is used)."""
        task = self._gather(fn, args, kwargs)
        if self._driver is not None:
            self._driver.kick()
            if len(self._batch) == BATCH:
                self._flush()
        elif len(self._batch) == BATCH or len(self._tasks) <= self._eager:
            # Tasks reach the workers when the loop runs. It runs here, in
            # C only (no Python callback runs inside submit), for each of
            # the first tasks while the workers may be idle, and then once
            # a batch: the workers start at once, and go on with the first
            # tasks while the caller still submits the rest.
            self._flush()
            _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
        return task

    def _flush(self, timeout_ms=0):
        """Hands the gathered submissions to libvow (with timeout_ms, each
        its own timeout)."""
        batch, tasks = self._batch, self._batch_tasks
        n = len(batch)
        if n == 0:
            return
        lens = array.array(_SIZE_T, map(len, batch))
        self._batch, self._batch_tasks = [], []
        first_tag = self._next_tag - n
        done = _lib.collector_submit_many(
            self._collector, self._pool, b"".join(batch),
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

    def submit_timeout(self, timeout, fn, *args, **kwargs):
        """submit with this task's own timeout in seconds."""
        self._flush()  # the order of submission is the order of sending
        task = self._gather(fn, args, kwargs)
        self._flush(max(1, int(timeout * 1000)))
        if task._done:  # refused
            raise task._error
        if self._driver is not None:
            self._driver.kick()
        return task

    def _value(self, obj):
        try:
            data = packb(obj)
        except CannotPack as e:
            raise BadInput(str(e), kind="bad input") from None
        err = ctypes.c_int(0)
        v = _lib.value_new_msgpack(data, len(data), ctypes.byref(err))
        if not v:
            raise MemoryError("vow: no memory for a task's arguments")
        return v

    def _watch(self, promise):
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
        return task
