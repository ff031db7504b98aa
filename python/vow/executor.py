"""vow.ProcessPoolExecutor: concurrent.futures' ProcessPoolExecutor over a
vow pool. Its futures are concurrent.futures.Future objects in the states
CPython gives them (pending until a worker runs the task, running, done,
cancelled), settled by the pool's own driver thread, so that
concurrent.futures.wait, as_completed and asyncio's run_in_executor work
as they do with CPython's executor.

    from vow import ProcessPoolExecutor
    with ProcessPoolExecutor() as ex:
        print(list(ex.map(pow, range(5), range(5))))

Functions go by name (a builtin, or module:qualname: see docs/python.md);
a worker that dies fails only the task it was running (CPython's executor
breaks and fails every pending future)."""
import concurrent.futures
import concurrent.futures.process as cf_process
import itertools
import threading
import time
from concurrent.futures import _base

from .errors import Cancelled, WorkerDied
from .pool import Pool

_BROKEN = ("the worker cannot serve", "workers cannot start")


def _broken(error):
    """BrokenProcessPool for a failure that says no worker can serve
    (the initializer failed, the module does not import), else None."""
    if isinstance(error, WorkerDied) and str(error.message).startswith(
            _BROKEN):
        return cf_process.BrokenProcessPool(
            f"A child process terminated abruptly, the process pool is not "
            f"usable anymore ({error.message})")
    return None


class _Future(concurrent.futures.Future):
    """A future over one vow task: running() and cancel() ask the pool
    whether a worker runs the task now."""

    def __init__(self, task, state):
        super().__init__()
        self._vow_task = task
        self._state_of_pool = state  # not the executor: a dropped one ends

    def running(self):
        started = self._vow_task.started()  # the pool's lock, not ours
        with self._condition:
            if started and self._state == _base.PENDING:
                self._state = _base.RUNNING
            return self._state == _base.RUNNING

    def cancel(self):
        task = self._vow_task
        with task._pool._lock:  # the task settles under it, nowhere else
            if task._done:
                return self.cancelled()
            if task.started():
                with self._condition:
                    if self._state == _base.PENDING:
                        self._state = _base.RUNNING
                return False
            task.cancel()  # settles it, and us, before it returns
        return self.cancelled()

    def _drive(self, timeout):
        # Waiting on the driver thread itself (from a done-callback):
        # nobody else would run the loop.
        pool = self._vow_task._pool
        if threading.current_thread() is pool._thread and not self.done():
            try:
                pool._wait(self.done, timeout)
            except TimeoutError:
                pass

    def result(self, timeout=None):
        self._drive(timeout)
        return super().result(timeout)

    def exception(self, timeout=None):
        self._drive(timeout)
        return super().exception(timeout)

    def _from_task(self, task):
        """The task has settled (under the pool's lock, on the driver
        thread or a waiter): so does the future."""
        self._state_of_pool.pending.pop(task, None)
        error = task._error
        if isinstance(error, Cancelled):
            with self._condition:
                if self._state in (_base.PENDING, _base.RUNNING):
                    self._state = _base.PENDING  # as CPython's cancel wants
            if super().cancel():
                self.set_running_or_notify_cancel()
            return
        with self._condition:
            if self._state in (_base.FINISHED, _base.CANCELLED,
                               _base.CANCELLED_AND_NOTIFIED):
                return
        if error is None:
            self.set_result(task._value)
        else:
            broken = _broken(error)
            if broken is not None:
                self._state_of_pool.broken = broken.args[0]
                error = broken
            self.set_exception(error)


def _check_workers(max_workers):
    if max_workers is not None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool):
            raise TypeError("max_workers must be an integer")
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")


class _PoolState:
    """What the futures of an executor share with it: the tasks not yet
    settled, and why the pool is broken, if it is."""

    def __init__(self):
        self.pending = {}  # Task -> its future
        self.broken = False


class ProcessPoolExecutor(concurrent.futures.Executor):
    """concurrent.futures.ProcessPoolExecutor's interface on vow workers.

    max_workers, initializer, initargs, max_tasks_per_child are CPython's;
    mp_context is accepted and unused (workers are always fresh
    interpreters, as with "spawn"). Any vow.Pool keyword (module=,
    worker=, timeout=, retries=, seed=, launchers=, ...) may follow."""

    def __init__(self, max_workers=None, mp_context=None, initializer=None,
                 initargs=(), *, max_tasks_per_child=None, **options):
        _check_workers(max_workers)
        if initializer is not None and not callable(initializer) and \
                not isinstance(initializer, str):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        self._shutdown_lock = threading.Lock()
        self._shutdown_thread = False
        self._state = _PoolState()
        self._pool = Pool(max_workers, initializer, initargs,
                          max_tasks_per_child, **options)
        self._pool._remote_tb = cf_process._RemoteTraceback
        self._max_workers = self._pool._nworkers
        with self._pool._lock:
            self._pool._start_thread()

    def submit(self, fn, /, *args, **kwargs):
        with self._shutdown_lock:
            if self._state.broken:
                raise cf_process.BrokenProcessPool(self._state.broken)
            if self._shutdown_thread:
                raise RuntimeError("cannot schedule new futures after "
                                   "shutdown")
            if cf_process._global_shutdown:
                raise RuntimeError("cannot schedule new futures after "
                                   "interpreter shutdown")
            pool = self._pool
            with pool._lock:
                task = pool.submit(fn, *args, **kwargs)
                future = _Future(task, self._state)
                self._state.pending[task] = future
                task.add_done_callback(future._from_task)
            return future

    submit.__doc__ = concurrent.futures.Executor.submit.__doc__

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """As concurrent.futures: results in order, an exception raised at
        its item's position (with chunksize > 1, at its chunk's), and a
        TimeoutError once timeout seconds have passed since the call."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if timeout is not None:
            end_time = timeout + time.monotonic()
        if chunksize == 1:
            fs = [self.submit(fn, *args) for args in zip(*iterables)]
            unpack = None
        else:
            fs = self._submit_chunks(fn, iterables, chunksize)
            unpack = True

        def result_iterator():
            try:
                fs.reverse()
                while fs:
                    f = fs.pop()
                    try:
                        if timeout is None:
                            value = f.result()
                        else:
                            value = f.result(end_time - time.monotonic())
                    finally:
                        f.cancel()
                    del f
                    if unpack:
                        yield from value
                    else:
                        # Held by the caller alone, not this frame too.
                        box = [value]
                        del value
                        yield box.pop()
            finally:
                for future in fs:
                    future.cancel()
        return result_iterator()

    def _submit_chunks(self, fn, iterables, chunksize):
        """One future per chunk of chunksize calls, its value their
        results (vow_pool_map runs the chunk on one worker)."""
        from ._maps import _star_name
        pool = self._pool
        name = _star_name(fn, True)
        it = zip(*iterables)
        fs = []
        while True:
            items = [list(args) for args in itertools.islice(it, chunksize)]
            if not items:
                return fs
            with self._shutdown_lock:
                if self._shutdown_thread:
                    raise RuntimeError("cannot schedule new futures after "
                                       "shutdown")
                with pool._lock:
                    task = pool._map_task(name, items)
                    future = _Future(task, self._state)
                    self._state.pending[task] = future
                    task.add_done_callback(future._from_task)
            fs.append(future)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._shutdown_lock:
            self._shutdown_thread = True
        if cancel_futures:
            # As CPython: what no worker has started is cancelled; what
            # runs finishes. Workers just started have not yet taken
            # anything: the first tasks are let begin (CPython counts
            # those in its call queue as running).
            self._let_first_begin()
            with self._pool._lock:
                pending = list(self._state.pending.values())
            for future in pending:
                future.cancel()
        if wait:
            self._pool.shutdown(wait=True)
        else:
            # The driver thread runs what is left and frees the pool.
            self._pool._begin_shutdown(True, False)

    shutdown.__doc__ = concurrent.futures.Executor.shutdown.__doc__

    def _let_first_begin(self):
        pool = self._pool
        with pool._lock:
            first = list(itertools.islice(self._state.pending,
                                          self._max_workers))
        if first and not pool._closed:
            pool._wait(lambda: any(t._done or t.started() for t in first),
                       None)

    @property
    def _broken(self):
        return self._state.broken

    def __del__(self):
        if getattr(self, "_pool", None) is not None and \
                not self._shutdown_thread:
            try:
                self.shutdown(wait=False)
            except Exception:
                pass


__all__ = ["ProcessPoolExecutor"]
