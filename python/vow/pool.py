"""vow.Pool: a libvow context and worker pool driven from Python.

Every task is a libvow promise added to one collector with the task's tag;
whoever waits (Task.result, as_completed, an asyncio or Twisted reader on
the loop's backend fd) runs libuv's loop without blocking in it, takes
what has settled in batches, and settles the Python side. Nothing runs on
another thread."""
import array
import collections
import concurrent.futures
import ctypes
import functools
import itertools
import logging
import os
import re
import select
import shlex
import struct
import sys
import time

from . import _lib
from . import codec
from .codec import CannotPack, packb, unpackb
from .errors import BadInput, VowError, error_class

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_log = logging.getLogger("vow")
_TAKE = 512  # settled promises taken per call
_BATCH = 256  # submissions handed to libvow per call
_SLICE_MIN, _SLICE_MAX = 1024, 16384  # items per vow_pool_map of a map
_MAP_ITEM = re.compile(r"map item (\d+):")
_VALUES_BUF = 1 << 18  # bytes of values copied out per take
_SIZE_T = next(code for code in "LQI" if array.array(code).itemsize ==
               ctypes.sizeof(ctypes.c_size_t))
_SETTLED = struct.Struct("@QiPPNPP")  # vow_settled_t, as _lib.Settled
assert _SETTLED.size == ctypes.sizeof(_lib.Settled)
_string_at = ctypes.string_at


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


def _error_of(failure):
    kind = _lib.failure_kind(failure)
    name = _lib.failure_kind_name(kind).decode()
    message = (_lib.failure_message(failure) or b"").decode(errors="replace")
    detail = _lib.failure_detail(failure)
    origin = _lib.failure_origin(failure)
    pid = function = exit_status = term_signal = None
    if origin:
        o = origin.contents
        pid = o.pid or None
        function = o.function.decode() if o.function else None
        exit_status = o.exit_status if o.exit_status >= 0 else None
        term_signal = o.term_signal if o.term_signal >= 0 else None
    return error_class(kind)(
        message, kind=name, code=_lib.failure_code(failure), pid=pid,
        function=function, exit_status=exit_status, term_signal=term_signal,
        remote_traceback=detail.decode(errors="replace") if detail else None)


def _call_args(args, kwargs):
    """A call's arguments as the worker reads them: the list of positional
    arguments, or with keyword arguments {"args": [...], "kwargs": {...}}."""
    return {"args": args, "kwargs": kwargs} if kwargs else args


def _with_callbacks(task, callback, error_callback):
    """task, with multiprocessing's callback(value) and
    error_callback(error) added."""
    if callback is not None or error_callback is not None:
        def done(t):
            if t._error is None:
                if callback is not None:
                    callback(t._value)
            elif error_callback is not None:
                error_callback(t._error)
        task.add_done_callback(done)
    return task


def _bad_input(e):
    """BadInput for an argument packing refused with e."""
    return BadInput(str(e) if isinstance(e, CannotPack) else
                    f"the value cannot be sent to vow: {e}", kind="bad input")


def _refused(code):
    """The error of a submission libvow refused with code."""
    if code == _lib.UV_ENOMEM:
        return MemoryError("vow: no memory for a task")
    return RuntimeError(f"vow: the task was refused: {_lib.strerror(code)}")


class Task:
    """One task's outcome, settled exactly once: a value or a VowError.
    result() and exception() wait for it (running the pool's loop);
    future(), an asyncio await or deferred() hand the same outcome to the
    other ways of waiting."""

    __slots__ = ("_pool", "_promise", "_done", "_value", "_error",
                 "_callbacks", "__weakref__")

    def __init__(self, pool, promise):
        self._pool = pool
        self._promise = promise
        self._done = False
        self._value = None
        self._error = None
        self._callbacks = None

    def done(self):
        return self._done

    def result(self, timeout=None):
        """The task's value; raises its VowError, or TimeoutError when
        timeout (seconds) passes first."""
        if not self._done:
            self._pool._wait(lambda: self._done, timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout=None):
        if not self._done:
            self._pool._wait(lambda: self._done, timeout)
        return self._error

    def cancel(self):
        """Cancels the task if it has not settled: it then fails with
        Cancelled (its worker is stopped if it had started). Returns
        whether it was still pending."""
        if self._done:
            return False
        if self._promise is None:  # still gathered in the pool
            self._pool._flush()
            if self._done:  # refused there
                return False
        if _lib.promise_state(self._promise) not in (_lib.PENDING,
                                                     _lib.WAITING):
            # Settled in libvow (the loop ran inside submit) and not yet
            # taken here: the result stands.
            self._pool._dispatch()
            return False
        _lib.cancel(self._promise)
        self._pool._pump(0)
        return True

    def cancelled(self):
        from .errors import Cancelled
        return isinstance(self._error, Cancelled)

    # multiprocessing's AsyncResult, for code written against it.
    def get(self, timeout=None):
        """result(timeout)."""
        return self.result(timeout)

    def ready(self):
        return self._done

    def successful(self):
        """Whether it settled with a value; ValueError if not settled."""
        if not self._done:
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout=None):
        """Waits until it settles or timeout passes; raises nothing."""
        if not self._done:
            try:
                self._pool._wait(lambda: self._done, timeout)
            except TimeoutError:
                pass

    def add_done_callback(self, fn):
        """fn(task) once the task has settled (now, if it has)."""
        if self._done:
            fn(self)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def aio(self):
        """An asyncio future for this task (vow.aio): the pool's loop is
        then driven from asyncio's."""
        from . import aio
        return aio.future(self)

    def __await__(self):
        return self.aio().__await__()

    def deferred(self, reactor=None):
        """A Twisted Deferred for this task (vow.twisted): the pool's loop
        is then driven from the reactor."""
        from . import twisted
        return twisted.deferred(self, reactor)

    def future(self):
        """A concurrent.futures.Future settled with this task's outcome.
        Its result() and exception() run the pool's loop while they wait
        (call them from the pool's thread); cancel() cancels the task.
        concurrent.futures.wait and as_completed do not run the loop: use
        vow.wait and vow.as_completed."""
        f = _Future(self)
        f.set_running_or_notify_cancel()
        self.add_done_callback(lambda task: task._pass_to(f))
        return f

    def _pass_to(self, fut):
        """Settles fut (a concurrent.futures or asyncio future) with this
        task's outcome, unless it is done already (cancelled)."""
        if fut.done():
            return
        if self._error is not None:
            fut.set_exception(self._error)
        else:
            fut.set_result(self._value)

    def _settle(self, value, error):
        self._done = True
        self._value = value
        self._error = error
        self._promise = None
        callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            try:
                fn(self)
            except Exception:  # as concurrent.futures: the others still run
                _log.exception("vow: exception in a callback of %r", self)

    def __repr__(self):
        state = "pending" if not self._done else (
            "failed" if self._error is not None else "done")
        return f"<vow.Task {state}>"


def _in_map(error, first):
    """error of a slice whose first item is item first of the whole map,
    its "map item K" counted from the start of the map."""
    m = _MAP_ITEM.match(error.message or "") if first else None
    if m is None:
        return error
    copy = type(error)(
        f"map item {int(m.group(1)) + first}:{error.message[m.end():]}",
        kind=error.kind, code=error.code, pid=error.pid,
        function=error.function, exit_status=error.exit_status,
        term_signal=error.term_signal,
        remote_traceback=error.remote_traceback)
    return copy


def _slice_values(part, timeout):
    first, task = part
    try:
        return task.result(timeout)
    except VowError as e:
        raise _in_map(e, first) from None


class _MapTask(Task):
    """A map's Task: settled from the Tasks of its slices, with the list
    of all their values, or the first failure among them."""

    __slots__ = ("_slices", "_parts", "_left")

    def __init__(self, pool, slices):
        super().__init__(pool, None)
        self._slices = slices
        self._parts = [None] * len(slices)
        self._left = len(slices)
        if not slices:
            self._settle([], None)
        for k, (first, task) in enumerate(slices):
            task.add_done_callback(functools.partial(self._part_done, k,
                                                     first))

    def _part_done(self, k, first, task):
        if self._done:
            return
        if task._error is not None:
            self._settle(None, _in_map(task._error, first))
            self._cancel_slices()
            return
        self._parts[k] = task._value
        self._left -= 1
        if self._left == 0:
            parts, self._parts = self._parts, None
            values = parts[0]
            for part in itertools.islice(parts, 1, None):
                values.extend(part)
            self._settle(values, None)

    def _cancel_slices(self):
        # Not Task.cancel: this runs while the pool settles tasks, and
        # must not run the loop again from inside that.
        for _, task in self._slices:
            if not task._done and task._promise is not None:
                _lib.cancel(task._promise)

    def cancel(self):
        if self._done:
            return False
        self._cancel_slices()
        self._pool._pump(0)
        return True


class _Future(concurrent.futures.Future):
    """concurrent.futures.Future over a task: waiting runs the loop."""

    def __init__(self, task):
        super().__init__()
        self._vow_task = task

    def _drive(self, timeout):
        if not self.done():
            try:
                self._vow_task._pool._wait(self.done, timeout)
            except TimeoutError:
                pass  # the base class says so below

    def result(self, timeout=None):
        self._drive(timeout)
        return super().result(timeout=0)

    def exception(self, timeout=None):
        self._drive(timeout)
        return super().exception(timeout=0)

    def cancel(self):
        return self._vow_task.cancel() or self.cancelled()


class Pool:
    """Worker processes running Python functions (or C ones: any vow
    worker command).

    worker:   the worker command, a string or a list: e.g.
              "python3 -m vow.worker mymodule"; or module="mymodule" for
              this interpreter running vow.worker on that module.
    workers:  how many (default: the CPUs online).
    timeout:  seconds a task may run (default: none); retries: how many
              times a task whose worker died is given to another. Only
              the task the worker was running is failed or retried; the
              others sent to it run on its replacement (docs/python.md
              says when the pool cannot tell which it was running).
    in_flight: tasks sent ahead to each worker (default: adaptive).
    seed:     the run's seed: task k (in the order submitted, a map's
              items one by one) sees vow.worker.seed() derived from it,
              the same on any number of workers.
    """

    def __init__(self, workers=None, worker=None, *, module=None,
                 timeout=None, retries=0, queue_limit=None,
                 recycle_after=None, in_flight=None, env=None, cwd=None,
                 stderr="relay", seed=0):
        if (worker is None) == (module is None):
            raise ValueError("give the worker command (worker=...) or a "
                             "Python module for vow.worker (module=...)")
        if module is not None:
            argv = [sys.executable, "-m", "vow.worker", module]
        elif isinstance(worker, str):
            argv = shlex.split(worker)
        else:
            argv = [str(a) for a in worker]
        if stderr not in _lib.STDERR_MODES:
            raise ValueError(f"stderr is one of {sorted(_lib.STDERR_MODES)}")
        self._ctx = None
        self._pool = None
        self._collector = None
        err = ctypes.c_int(0)
        self._ctx = _lib.ctx_new(None, ctypes.byref(err))
        if not self._ctx:
            raise OSError(f"vow: cannot make a context: "
                          f"{_lib.strerror(err.value)}")
        self._keep = []  # what the options point into, during pool_new
        o = _lib.PoolOptions()
        _lib.pool_options_init(ctypes.byref(o))
        o.workers = workers or 0
        o.worker_argv = self._strv(argv)
        o.timeout_ms = int(timeout * 1000) if timeout else 0
        o.retries = retries
        o.queue_limit = queue_limit or 0
        o.recycle_after = recycle_after or 0
        o.seed = seed
        o.in_flight = in_flight or 0
        o.env = self._strv(self._worker_env(env))
        o.cwd = os.fsencode(cwd) if cwd else None
        o.stderr_mode = _lib.STDERR_MODES[stderr]
        self._pool = _lib.pool_new(self._ctx, ctypes.byref(o),
                                   ctypes.byref(err))
        self._keep = None
        if not self._pool:
            _lib.ctx_close(self._ctx)
            self._ctx = None
            raise ValueError(f"vow: the pool's options were refused: "
                             f"{_lib.strerror(err.value)}")
        self._collector = _lib.collector_new(self._ctx)
        self._loop = _lib.ctx_loop(self._ctx)
        self._fd = _lib.uv_backend_fd(self._loop)
        self._nworkers = workers or os.cpu_count() or 1
        self._eager = 2 * self._nworkers  # tasks sent as soon as submitted
        self._tasks = {}
        self._next_tag = 1
        self._settled = (_lib.Settled * _TAKE)()
        self._settled_bytes = memoryview(self._settled).cast("B")
        self._values_buf = ctypes.create_string_buffer(_VALUES_BUF)
        self._values_view = memoryview(self._values_buf).cast("B")
        self._read_values = codec.stream_reader()
        self._used = ctypes.c_size_t(0)
        self._used_ref = ctypes.byref(self._used)
        self._names = {}  # task function -> its name as bytes
        self._packb = codec.packer()  # the pool is used from one thread
        self._batch = []  # records gathered by submit, and their tasks
        self._batch_tasks = []
        self._out = (ctypes.c_void_p * _BATCH)()
        self._out_ptrs = memoryview(self._out).cast("B").cast("P")
        self._errs = (ctypes.c_int * _BATCH)()
        self._closed = False
        self._driver = None  # an asyncio or Twisted loop driving ours

    def _strv(self, words):
        arr = (ctypes.c_char_p * (len(words) + 1))(
            *[os.fsencode(w) for w in words], None)
        self._keep.append(arr)
        return arr

    @staticmethod
    def _worker_env(extra):
        """Workers know their parent is Python (they spread a task's
        argument list, and send numpy arrays as arrays) and find this
        package."""
        path = os.environ.get("PYTHONPATH")
        entries = {"VOW_PYTHON_PARENT": "1",
                   "PYTHONPATH": _PACKAGE_PARENT + (os.pathsep + path
                                                    if path else "")}
        entries.update(extra or {})
        return [f"{k}={v}" for k, v in entries.items()]

    # ---- submitting --------------------------------------------------------

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
        # Submissions are gathered and handed to libvow _BATCH at a time
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
            if len(self._batch) == _BATCH:
                self._flush()
        elif len(self._batch) == _BATCH or len(self._tasks) <= self._eager:
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


    def _map_slices(self, fn, iterable, star=False):
        """Yields (index of its first item, its Task) for consecutive
        slices of iterable, each one vow_pool_map (run in chunks on the
        workers), about 8 slices per worker: the workers start on the
        first while the next are packed, and each slice's results are
        decoded as it arrives, not all at the end. With star, each item is
        a sequence of arguments."""
        name = _fn_name(fn) + (b"*" if star else b"")
        try:
            n = len(iterable)
        except TypeError:
            n = None
        size = _SLICE_MAX if n is None else \
            min(_SLICE_MAX, max(_SLICE_MIN, -(-n // (8 * self._nworkers))))
        it = iter(iterable)
        first = 0
        while True:
            items = list(itertools.islice(it, size))
            if not items:
                return
            task = self._watch(_lib.pool_map(self._pool, name,
                                             self._value(items)))
            if self._driver is None:
                _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)  # sends it
            yield first, task
            first += len(items)

    def _start_map(self, fn, iterables, star=False):
        self._check_open()
        self._flush()
        if not iterables:
            raise TypeError("map needs at least one iterable")
        if len(iterables) > 1:  # fn(x, y, ...) over zip(xs, ys, ...)
            return self._map_slices(fn, zip(*iterables), True)
        return self._map_slices(fn, iterables[0], star)

    def map_async(self, fn, *iterables, chunksize=None, callback=None,
                  error_callback=None):
        """A Task whose value is [fn(x) for x in iterable] (with several
        iterables, fn(x, y, ...) over them in step); it fails with the
        first item's failure ("map item K: ..."), and the rest is then
        cancelled. vow sizes the chunks itself: chunksize is accepted, as
        multiprocessing and concurrent.futures take it, and not needed."""
        task = _MapTask(self, list(self._start_map(fn, iterables)))
        return _with_callbacks(task, callback, error_callback)

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        """[fn(x) for x in iterable] on the workers, in order (with several
        iterables, fn(x, y, ...) over them in step)."""
        return self.map_async(fn, *iterables).result(timeout)

    def starmap_async(self, fn, iterable, chunksize=None, callback=None,
                      error_callback=None):
        """map_async of fn(*args) for each args in iterable."""
        task = _MapTask(self, list(self._start_map(fn, (iterable,), True)))
        return _with_callbacks(task, callback, error_callback)

    def starmap(self, fn, iterable, chunksize=None, timeout=None):
        """[fn(*args) for args in iterable] on the workers, in order."""
        return self.starmap_async(fn, iterable).result(timeout)

    def imap(self, fn, *iterables, chunksize=None, timeout=None):
        """fn(x) for x in iterable, yielded in order as they come in. The
        iterable is read and sent a few slices ahead of what has been
        yielded (two per worker), so an endless one works; timeout
        bounds each wait for the next slice. Raises the first failure
        ("map item K: ..."); closing the generator cancels the rest."""
        return self._ahead(fn, iterables, timeout,
                           lambda ahead: ahead.pop(0))

    def imap_unordered(self, fn, *iterables, chunksize=None, timeout=None):
        """As imap, but each slice's results are yielded as soon as that
        slice is done, whichever it is."""
        def first_done(ahead):
            def find():
                return next((k for k, (_, task) in enumerate(ahead)
                             if task._done), None)
            self._wait(lambda: find() is not None, timeout)
            return ahead.pop(find())
        return self._ahead(fn, iterables, timeout, first_done)

    def _ahead(self, fn, iterables, timeout, take):
        """The values of a map's slices, sent two per worker ahead of what
        has been yielded, each yielded slice the one take(ahead) picks."""
        ahead = []
        try:
            for part in self._start_map(fn, iterables):
                ahead.append(part)
                if len(ahead) >= 2 * self._nworkers:
                    yield from _slice_values(take(ahead), timeout)
            while ahead:
                yield from _slice_values(take(ahead), timeout)
        finally:
            for _, task in ahead:
                task.cancel()

    def apply_async(self, fn, args=(), kwds=None, callback=None,
                    error_callback=None):
        """multiprocessing's apply_async: submit(fn, *args, **kwds), with
        callback(value) or error_callback(error) once it settles (run
        where the pool's loop runs, not on another thread)."""
        task = self.submit(fn, *args, **(kwds or {}))
        return _with_callbacks(task, callback, error_callback)

    def apply(self, fn, args=(), kwds=None):
        """fn(*args, **kwds) on a worker, waited for."""
        return self.submit(fn, *args, **(kwds or {})).result()

    def as_completed(self, tasks, timeout=None):
        return as_completed(tasks, timeout)

    # ---- the loop -----------------------------------------------------------

    def _dispatch(self):
        """Settles the tasks whose promises have settled."""
        tasks = self._tasks
        used = self._used
        while _lib.collector_ready(self._collector):
            took = _lib.collector_take_into(
                self._collector, self._settled, _TAKE, self._values_buf,
                _VALUES_BUF, self._used_ref)
            # A task's share of the parent's work is a few hundred
            # nanoseconds, so each part is read in bulk: the entries in one
            # pass of struct (not field by field through ctypes), the
            # values as one msgpack stream copied out by libvow.
            values = self._read_values(self._values_view[:used.value]) \
                if used.value else None
            for tag, state, _, data, length, failure, _ in \
                    _SETTLED.iter_unpack(
                        self._settled_bytes[:took * _SETTLED.size]):
                task = tasks.pop(tag)
                if state != _lib.FULFILLED:
                    task._settle(None, _error_of(failure))
                    continue
                if not data:
                    value = None
                elif values is not None:
                    value = next(values)
                else:  # one value too big for the buffer
                    value = unpackb(_string_at(data, length))
                if task._callbacks is None:  # _settle, inline
                    task._value = value
                    task._done = True
                    task._promise = None
                else:
                    task._settle(value, None)

    def _pump(self, wait_s):
        """Runs what is due on the loop; with wait_s (None: no limit),
        first waits that long for something to happen."""
        self._flush()
        if wait_s != 0:
            ms = _lib.uv_backend_timeout(self._loop)
            if ms >= 0:
                wait_s = ms / 1000 if wait_s is None else min(wait_s, ms / 1000)
            select.select([self._fd], [], [], wait_s)
        _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
        self._dispatch()

    def _wait(self, done, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        self._pump(0)
        while not done():
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("vow: the wait timed out")
            self._pump(left)

    def fileno(self):
        """The loop's backend fd: readable when the pool has work for
        poll() (see docs/python.md); call poll() then."""
        return self._fd

    def poll(self):
        """Runs what is due without waiting; settles tasks whose results
        have arrived."""
        self._pump(0)

    def next_timeout(self):
        """Seconds until the loop's next timer (None: none)."""
        if self._batch:
            return 0  # submissions wait to be sent
        ms = _lib.uv_backend_timeout(self._loop)
        return None if ms < 0 else ms / 1000

    # ---- the end -------------------------------------------------------------

    def _check_open(self):
        if self._closed:
            raise RuntimeError("vow: the pool is shut down")

    def _begin_shutdown(self, wait, cancel_futures):
        """The Task of the pool's shutdown; None if it has begun already."""
        if self._closed:
            return None
        self._closed = True
        self._flush()
        return self._watch(_lib.pool_shutdown(self._pool,
                                              wait and not cancel_futures))

    def _free(self):
        self._wait(lambda: not self._tasks, None)  # settled before it
        if self._driver is not None:
            self._driver.detach()
            self._driver = None
        _lib.collector_free(self._collector)
        _lib.pool_free(self._pool)
        _lib.ctx_close(self._ctx)
        self._collector = self._pool = self._ctx = None

    def shutdown(self, wait=True, cancel_futures=False):
        """Ends the pool: with wait, queued tasks run first; without, or
        with cancel_futures, unfinished tasks fail with Cancelled. The
        workers are gone when this returns. From a coroutine, await
        aclose() instead: this blocks the event loop while it waits."""
        done = self._begin_shutdown(wait, cancel_futures)
        if done is None:
            return
        self._wait(done.done, None)
        self._free()

    async def aclose(self, wait=True, cancel_futures=False):
        """shutdown() for a coroutine: the event loop runs while the
        workers finish. `async with vow.Pool(...)` calls it on the way
        out."""
        done = self._begin_shutdown(wait, cancel_futures)
        if done is None:
            return
        await done
        self._free()

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, *exc):
        await self.aclose(wait=exc_type is None)
        return False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # A block left by an exception (Ctrl-C among them) cancels what is
        # left instead of waiting for it.
        self.shutdown(wait=exc_type is None)
        return False


def as_completed(tasks, timeout=None):
    """Yields the tasks (all of one pool) as they settle."""
    tasks = list(tasks)
    if not tasks:
        return
    pool = tasks[0]._pool
    finished = collections.deque()
    for t in tasks:
        t.add_done_callback(finished.append)
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in range(len(tasks)):
        if not finished:
            left = None if deadline is None else \
                max(0.0, deadline - time.monotonic())
            pool._wait(lambda: finished, left)
        yield finished.popleft()


def wait(tasks, timeout=None):
    """Waits until every task has settled; returns (done, not_done)."""
    tasks = list(tasks)
    if tasks:
        # Tasks mostly settle in the order they were sent: each check
        # resumes where the last stopped, so waiting on n tasks is O(n),
        # not O(n) per turn of the loop.
        at = 0

        def all_done():
            nonlocal at
            while at < len(tasks) and tasks[at]._done:
                at += 1
            return at == len(tasks)
        try:
            tasks[0]._pool._wait(all_done, timeout)
        except TimeoutError:
            pass
    done = {t for t in tasks if t._done}
    return done, {t for t in tasks if not t._done}


__all__ = ["Pool", "Task", "as_completed", "wait", "VowError"]
