"""The Python side of a task: Task (one task's outcome, settled exactly
once), the map's _MapTask over its slices, the concurrent.futures view,
and waiting on many (as_completed, wait)."""
import base64
import collections
import concurrent.futures
import functools
import io
import itertools
import logging
import pickle
import re
import time

from . import _lib
from .errors import ProtocolError, TaskError, VowError, error_class

_log = logging.getLogger("vow")
_MAP_ITEM = re.compile(r"map item (\d+):")


_EXCEPTION_MARK = "\nvow-python-exception: "  # vow.worker's EXCEPTION_MARK
_SAFE_GLOBALS = {("copyreg", "_reconstructor"), ("builtins", "object"),
                 ("builtins", "set"), ("builtins", "frozenset"),
                 ("builtins", "bytearray"), ("builtins", "complex"),
                 ("builtins", "range"), ("builtins", "slice")}


class _ExceptionUnpickler(pickle.Unpickler):
    """Loads an exception a worker pickled, and nothing that could run
    code: the only classes it makes are exception classes (and the few
    builtin types their arguments may hold)."""

    def find_class(self, module, name):
        found = super().find_class(module, name)
        if (module, name) in _SAFE_GLOBALS or (
                isinstance(found, type) and issubclass(found, BaseException)):
            return found
        raise pickle.UnpicklingError(f"{module}.{name} is not an exception")


def _raised(blob):
    """The exception a worker raised, from its pickle; None if it cannot be
    made here (its class does not import, say)."""
    try:
        e = _ExceptionUnpickler(io.BytesIO(base64.b64decode(blob))).load()
    except Exception:
        return None
    return e if isinstance(e, BaseException) else None


def _error_of(failure, remote_traceback_class=None):
    """What a failed task raises: the exception the function raised, as
    it was raised (its __cause__ the worker's traceback, its vow_error the
    VowError with where it happened), else the VowError."""
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
    detail = detail.decode(errors="replace") if detail else None
    raised = None
    if detail and _EXCEPTION_MARK in detail:
        detail, _, blob = detail.rpartition(_EXCEPTION_MARK)
        raised = _raised(blob)
    error = error_class(kind)(
        message, kind=name, code=_lib.failure_code(failure), pid=pid,
        function=function, exit_status=exit_status, term_signal=term_signal,
        remote_traceback=detail)
    if raised is None:
        return error
    raised = _as_task_error(raised, error)
    if detail.strip():
        if remote_traceback_class is None:
            from multiprocessing.pool import RemoteTraceback
            remote_traceback_class = RemoteTraceback
        raised.__cause__ = remote_traceback_class(
            f'\n"""\n{detail.rstrip()}\n"""')
    return raised


_TASK_ERROR_OF = {}  # an exception class -> its TaskError twin


def _twin(cls):
    """A class that is cls (its name, its str and repr) and vow's
    TaskError too, so that `except ZeroDivisionError` and
    `except vow.TaskError` both catch a task's ZeroDivisionError; None if
    the two cannot be joined."""
    twin = _TASK_ERROR_OF.get(cls)
    if twin is None and cls not in _TASK_ERROR_OF:
        try:
            twin = type(cls.__name__, (cls, TaskError),
                        {"__module__": cls.__module__,
                         "__qualname__": cls.__qualname__,
                         "__str__": _text_of(cls.__str__),
                         "__repr__": _text_of(cls.__repr__),
                         "__reduce__": _reduce_as_original})
        except TypeError:  # a layout of its own
            twin = None
        _TASK_ERROR_OF[cls] = twin
    return twin


def _text_of(method):
    """cls's __str__ or __repr__, or, where it raises (as it did in the
    worker, say), the message the worker sent."""
    def text(self):
        try:
            return method(self)
        except Exception:
            return self.__dict__.get("message") or object.__repr__(self)
    return text


def _reduce_as_original(self):
    """Pickled, a twin is the exception it stands for."""
    original = type(self).__mro__[1]
    return (original, self.args, dict(self.__dict__) or None)


def _as_task_error(raised, error):
    """raised, the worker's exception as unpickled here, as an instance of
    its TaskError twin carrying error's facts (kind, pid, message, the
    remote traceback); raised itself, with error as its vow_error, when it
    cannot be."""
    cls = type(raised)
    twin = _twin(cls)
    made = None
    if twin is not None:
        try:
            func, args, *rest = raised.__reduce_ex__(4)
            if func is cls:
                made = twin(*args)
                state = rest[0] if rest else None
                if isinstance(state, dict):
                    made.__dict__.update(state)
        except Exception:
            made = None
    if made is None:
        raised.vow_error = error
        return raised
    made.__dict__.update(message=error.message, kind=error.kind,
                         code=error.code, pid=error.pid,
                         function=error.function,
                         exit_status=error.exit_status,
                         term_signal=error.term_signal,
                         remote_traceback=error.remote_traceback,
                         vow_error=error)
    return made


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


class Task:
    """One task's outcome, settled exactly once: a value or a VowError.
    result() and exception() wait for it (running the pool's loop);
    future(), an asyncio await or deferred() hand the same outcome to the
    other ways of waiting."""

    __slots__ = ("_pool", "_promise", "_done", "_value", "_error",
                 "_callbacks", "_into", "__weakref__")

    def __init__(self, pool, promise):
        self._pool = pool
        self._promise = promise
        self._done = False
        self._value = None
        self._error = None
        self._callbacks = None
        # (list, offset): a map's slice whose value, an array, is decoded
        # into its place in the map's list (its _value is then the count).
        self._into = None

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
        pool = self._pool
        with pool._lock:
            if self._done:
                return False
            if self._promise is None:  # still gathered in the pool
                pool._flush()
                if self._done:  # refused there
                    return False
            if _lib.promise_state(self._promise) not in (_lib.PENDING,
                                                         _lib.WAITING):
                # Settled in libvow (the loop ran inside submit) and not
                # yet taken here: the result stands.
                pool._dispatch()
                return False
            _lib.cancel(self._promise)
            pool._pump(0)
        return True

    def started(self):
        """Whether a worker runs it now: false while it is queued or sent
        ahead to a busy worker, and once it has settled."""
        pool = self._pool
        with pool._lock:
            if pool._thread is None and pool._ctx is not None:
                pool._pump(0)  # nobody else runs the loop
            p = self._promise
            return p is not None and bool(_lib.promise_started(p))

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

    def wait_done(self, timeout=None):
        """Waits until it settles; WaitTimeout if timeout passes first."""
        if not self._done:
            self._pool._wait(lambda: self._done, timeout)

    def wait(self, timeout=None):
        """Waits until it settles or timeout passes; raises nothing."""
        if not self._done:
            try:
                self._pool._wait(lambda: self._done, timeout)
            except TimeoutError:
                pass

    def add_done_callback(self, fn):
        """fn(task) once the task has settled (now, if it has)."""
        with self._pool._lock:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        fn(self)

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
    vow_error = getattr(error, "vow_error", None)
    if vow_error is not None and vow_error is not error:
        # The function's own exception: its facts say where.
        error.vow_error = vow_error = _in_map(vow_error, first)
        if isinstance(error, VowError):
            error.message = vow_error.message
        return error
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


class _MapTask(Task):
    """A map's Task: settled from the Tasks of its slices, with the list
    of all their values, or the first failure among them. Where the pool's
    reader can, each slice's results are decoded straight into their
    place in the list, made once up front (see Task._into)."""

    __slots__ = ("_slices", "_out", "_parts", "_left")

    def __init__(self, pool, slices, out):
        """slices: (first item, item count, Task) in order; out: a list of
        as many items as all slices hold, for the pool's reader to decode
        into, or None when it cannot."""
        super().__init__(pool, None)
        self._slices = slices
        self._parts = [None] * len(slices)
        self._left = len(slices)
        self._out = out
        if not slices:
            self._settle([], None)
            return
        with pool._lock:  # against a settling on another thread meanwhile
            for k, (first, count, task) in enumerate(slices):
                if self._out is not None and not task._done:
                    task._into = (self._out, first)
                task.add_done_callback(functools.partial(self._part_done, k))

    def _part_done(self, k, task):
        if self._done:
            return
        first, count, _ = self._slices[k]
        if task._error is not None:
            self._settle(None, _in_map(task._error, first))
            self._cancel_slices()
            return
        part = task._value
        if task._into is not None:
            part = None
            if task._value != count:
                self._settle(None, ProtocolError(
                    f"a map slice of {count} items came back with "
                    f"{task._value} results", kind="protocol error"))
                self._cancel_slices()
                return
        self._parts[k] = part
        self._left -= 1
        if self._left == 0:
            self._settle(self._joined(), None)

    def _joined(self):
        parts, self._parts = self._parts, None
        out, self._out = self._out, None
        if out is None:
            out = parts[0]
            for part in itertools.islice(parts, 1, None):
                out.extend(part)
            return out
        for (first, count, _), part in zip(self._slices, parts):
            if part is not None:  # settled before it could be told where
                out[first:first + count] = part
        return out

    def _cancel_slices(self):
        # Not Task.cancel: this runs while the pool settles tasks, and
        # must not run the loop again from inside that.
        for _, _, task in self._slices:
            if isinstance(task, _Listed):
                task = task._item
            if not task._done and task._promise is not None:
                _lib.cancel(task._promise)

    def cancel(self):
        with self._pool._lock:
            if self._done:
                return False
            self._cancel_slices()
            self._pool._pump(0)
        return True


class _Listed(Task):
    """A Task whose value is [the value of task]: a map's item that went
    as a task of its own (it held parts), as the map's one-item slice."""

    __slots__ = ("_item",)

    def __init__(self, pool, task):
        super().__init__(pool, None)
        self._item = task
        task.add_done_callback(self._item_done)

    def _item_done(self, task):
        self._into = None  # the value is the list itself
        self._settle(None if task._error else [task._value], task._error)

    def cancel(self):
        return self._item.cancel()


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
