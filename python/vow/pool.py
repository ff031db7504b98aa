"""vow.Pool: a libvow context and worker pool driven from Python.

Every task is a libvow promise added to one collector with the task's tag;
whoever waits (Task.result, as_completed, an asyncio or Twisted reader on
the loop's backend fd) runs libuv's loop without blocking in it, takes
what has settled in batches, and settles the Python side. Nothing runs on
another thread."""
import collections
import concurrent.futures
import ctypes
import os
import select
import shlex
import sys
import time

from . import _lib
from .codec import CannotPack, packb, unpackb
from .errors import BadInput, VowError, error_class

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TAKE = 512  # settled promises taken per call


def _fn_name(fn):
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", None)
    if not name:
        raise TypeError(f"a task function is a name or a function, not {fn!r}")
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
        _lib.cancel(self._promise)
        self._pool._pump(0)
        return True

    def cancelled(self):
        from .errors import Cancelled
        return isinstance(self._error, Cancelled)

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
            fn(self)

    def __repr__(self):
        state = "pending" if not self._done else (
            "failed" if self._error is not None else "done")
        return f"<vow.Task {state}>"


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
              times a task whose worker died is given to another (with
              retries, tasks that were beside it on the worker run again
              alone and only the one that kills its worker fails).
    in_flight: tasks sent ahead to each worker (default: adaptive).
    """

    def __init__(self, workers=None, worker=None, *, module=None,
                 timeout=None, retries=0, queue_limit=None,
                 recycle_after=None, in_flight=None, env=None, cwd=None,
                 stderr="relay"):
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
        self._tasks = {}
        self._next_tag = 1
        self._settled = (_lib.Settled * _TAKE)()
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

    def submit(self, fn, *args):
        """Runs fn(*args) on a worker; returns its Task. fn is the
        function's name in the worker's module (or the function, whose
        __name__ is used)."""
        self._check_open()
        return self._watch(_lib.pool_submit(self._pool, _fn_name(fn),
                                            self._value(list(args))))

    def submit_timeout(self, timeout, fn, *args):
        """submit with this task's own timeout in seconds."""
        self._check_open()
        return self._watch(_lib.pool_submit_timeout(
            self._pool, _fn_name(fn), self._value(list(args)),
            max(1, int(timeout * 1000))))

    def map_async(self, fn, iterable):
        """A Task whose value is [fn(x) for x in iterable], run in chunks
        sized for the workers; it fails with the first item's failure
        ("map item K: ...")."""
        self._check_open()
        items = list(iterable)
        if not items:
            task = Task(self, None)
            task._settle([], None)
            return task
        return self._watch(_lib.pool_map(self._pool, _fn_name(fn),
                                         self._value(items)))

    def map(self, fn, iterable, timeout=None):
        """[fn(x) for x in iterable] on the workers, in order."""
        return self.map_async(fn, iterable).result(timeout)

    def as_completed(self, tasks, timeout=None):
        return as_completed(tasks, timeout)

    # ---- the loop -----------------------------------------------------------

    def _dispatch(self):
        """Settles the tasks whose promises have settled."""
        took = _TAKE
        while took == _TAKE:
            took = _lib.collector_take(self._collector, self._settled, _TAKE)
            for i in range(took):
                s = self._settled[i]
                task = self._tasks.pop(s.tag)
                if s.state == _lib.FULFILLED:
                    task._settle(unpackb(ctypes.string_at(s.bytes, s.len))
                                 if s.bytes else None, None)
                else:
                    task._settle(None, _error_of(s.failure))

    def _pump(self, wait_s):
        """Runs what is due on the loop; with wait_s (None: no limit),
        first waits that long for something to happen."""
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
        ms = _lib.uv_backend_timeout(self._loop)
        return None if ms < 0 else ms / 1000

    # ---- the end -------------------------------------------------------------

    def _check_open(self):
        if self._closed:
            raise RuntimeError("vow: the pool is shut down")

    def shutdown(self, wait=True, cancel_futures=False):
        """Ends the pool: with wait, queued tasks run first; without, or
        with cancel_futures, unfinished tasks fail with Cancelled. The
        workers are gone when this returns."""
        if self._closed:
            return
        self._closed = True
        graceful = wait and not cancel_futures
        done = self._watch(_lib.pool_shutdown(self._pool, graceful))
        self._wait(done.done, None)
        self._wait(lambda: not self._tasks, None)
        if self._driver is not None:
            self._driver.detach()
            self._driver = None
        _lib.collector_free(self._collector)
        _lib.pool_free(self._pool)
        _lib.ctx_close(self._ctx)
        self._collector = self._pool = self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown(wait=True)
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
        try:
            tasks[0]._pool._wait(lambda: all(t._done for t in tasks), timeout)
        except TimeoutError:
            pass
    done = {t for t in tasks if t._done}
    return done, {t for t in tasks if not t._done}


__all__ = ["Pool", "Task", "as_completed", "wait", "VowError"]
