"""vow.Pool: a libvow context and worker pool driven from Python.

Every task is a libvow promise added to one collector with the task's tag;
whoever waits (Task.result, as_completed, an asyncio or Twisted reader on
the loop's backend fd, the executor's driver thread) runs libuv's loop
without blocking in it, takes what has settled in batches, and settles the
Python side, under the pool's lock (any thread may use the pool).

This file is the façade, multiprocessing.Pool's interface; each concern
has a file of its own:
  _task.py      Task, a map's task, failures as exceptions, waiting
  _options.py   Pool's arguments as vow_pool_options_t
  _submit.py    naming functions, gathering submissions, handing them over
  _maps.py      map, starmap, imap, imap_unordered, apply
  _pump.py      the lock, running the loop, taking what has settled
  _shutdown.py  shutdown, close, terminate, join, the context managers
  executor.py   concurrent.futures' ProcessPoolExecutor on the same engine"""
import atexit
import ctypes
import os
import sys
import weakref

from . import _lib
from . import codec
from ._maps import Mapping
from ._options import Options, check_counts, worker_argv
from ._pump import Pumping, _TakeBuffers
from ._shutdown import Ending
from ._submit import BATCH, Submitting
from ._task import Task, as_completed, wait
from .errors import VowError


class Pool(Submitting, Mapping, Pumping, Ending):
    """Worker processes running Python functions (or C ones: any vow
    worker command). The first arguments are multiprocessing.Pool's:

    processes: how many workers (default: the CPUs online); workers= is
              the same.
    initializer, initargs: initializer(*initargs) runs in each worker as
              it starts; if it raises, the pool fails its tasks at once.
    maxtasksperchild: a worker is replaced after this many tasks (also
              recycle_after=).
    context:  accepted, unused: workers are always fresh interpreters.

    vow's own:
    module:   the module whose functions the workers serve ("mymodule",
              or a path); without module= or worker=, each function is
              found by the name the parent sends (a builtin, or a
              function's module:qualname).
    worker:   any vow worker command instead, a string or a list.
    timeout:  seconds a task may run (default: none); retries: how many
              times a task whose worker died is given to another. Only
              the task the worker was running is failed or retried.
    in_flight: tasks sent ahead to each busy worker (default: adaptive).
    seed:     the run's seed: task k (in the order submitted, a map's
              items one by one) sees vow.worker.seed() derived from it,
              the same on any number of workers.
    stdout:   "inherit" (a task's print() reaches this program's stdout)
              or "stderr" (it goes where stderr= sends the workers').
    launchers: start workers through ssh, srun...: a list of launchers,
              each a command (string or list; one worker) or a pair
              (command, workers); see docs/cluster.md.
    liveness: seconds (default 20): under launchers, a worker that holds
              tasks and sends nothing, not even its heartbeat, this long is
              lost with its host; its tasks run on the other workers.
    """

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None, *, workers=None,
                 worker=None, module=None, timeout=None, retries=0,
                 queue_limit=None, recycle_after=None, in_flight=None,
                 env=None, cwd=None, stderr="relay", stdout="inherit",
                 seed=0, launchers=None, liveness=None):
        _refuse_in_worker()
        if maxtasksperchild is not None and (
                not isinstance(maxtasksperchild, int) or
                isinstance(maxtasksperchild, bool) or maxtasksperchild < 1):
            raise ValueError("maxtasksperchild must be a positive int or "
                             "None")  # multiprocessing's words
        check_counts(processes=processes, workers=workers,
                     recycle_after=recycle_after)
        workers = _one_of("processes", processes, "workers", workers)
        recycle_after = _one_of("maxtasksperchild", maxtasksperchild,
                                "recycle_after", recycle_after)
        if initializer is not None and not callable(initializer) and \
                not isinstance(initializer, str):
            raise TypeError("initializer must be a callable")
        argv = worker_argv(worker, module)
        options = Options(argv, workers=workers, timeout=timeout,
                          retries=retries, queue_limit=queue_limit,
                          recycle_after=recycle_after, in_flight=in_flight,
                          env=env, cwd=cwd, stderr=stderr, seed=seed,
                          initializer=initializer, initargs=initargs,
                          launchers=launchers, stdout=stdout,
                          liveness=liveness)
        self._ctx = None
        self._pool = None
        self._collector = None
        self._closed = True  # until made
        self._init_pump()
        self._remote_tb = None  # the class of a raised exception's __cause__
        err = ctypes.c_int(0)
        self._ctx = _lib.ctx_new(None, ctypes.byref(err))
        if not self._ctx:
            self._close_pump()
            raise OSError(f"vow: cannot make a context: "
                          f"{_lib.strerror(err.value)}")
        self._pool = _lib.pool_new(self._ctx, ctypes.byref(options.struct),
                                   ctypes.byref(err))
        if not self._pool:
            _lib.ctx_close(self._ctx)
            self._ctx = None
            self._close_pump()
            raise ValueError(f"vow: the pool's options were refused: "
                             f"{_lib.strerror(err.value)}")
        self._collector = _lib.collector_new(self._ctx)
        self._loop = _lib.ctx_loop(self._ctx)
        self._fd = _lib.uv_backend_fd(self._loop)
        self._nworkers = options.struct.workers or os.cpu_count() or 1
        self._eager = 2 * self._nworkers  # tasks sent as soon as submitted
        self._tasks = {}
        self._next_tag = 1
        self._take_buffers = [_TakeBuffers()]  # one per depth of _dispatch
        self._read_values = codec.stream_reader()
        self._names = {}  # task function -> its name as bytes
        # Used under the lock. A Python worker takes tuples and pickles.
        python_worker = _python_worker(argv)
        # numpy arrays of 1 MiB or more (VOW_POOL_SHM_THRESHOLD) are
        # written once into shared memory, not copied through msgpack.
        codec.leave_arrays_from = 1 << 20
        self._packb = codec.python_packer() if python_worker \
            else codec.packer()
        self._pack_overflow = codec.pack_overflow if python_worker \
            else self._packb
        self._batch = []  # records gathered by submit, and their tasks
        self._batch_tasks = []
        # submit's plain calls and plain results in C (_fastpool.c), or
        # None
        self._quick = codec.fastcodec.Quick(
            self._lock, self._names, self._packb, self._tasks, self._batch,
            self._batch_tasks, Task, BATCH, self._eager) \
            if codec.fastcodec else None
        self._out = (ctypes.c_void_p * BATCH)()
        self._out_ptrs = memoryview(self._out).cast("B").cast("P")
        self._errs = (ctypes.c_int * BATCH)()
        self._closed = False
        self._driver = None  # an asyncio or Twisted loop driving ours
        self._owner = os.getpid()
        _live.add(self)

    def __del__(self):
        # A pool dropped without shutdown (del p; gc.collect()) stops its
        # workers: what was left unfinished is cancelled.
        if getattr(self, "_pool", None) is None or self._closed:
            return
        try:
            self.shutdown(wait=False)
        except Exception:
            pass


def _python_worker(argv):
    """Whether argv runs vow.worker (module= or no worker= does)."""
    return len(argv) >= 3 and argv[1:3] == ["-m", "vow.worker"]


def _one_of(name, value, alias, alias_value):
    """The count given under either of its two names."""
    if value is not None and alias_value is not None:
        raise TypeError(f"give {name} or {alias}, not both")
    return value if value is not None else alias_value


def _refuse_in_worker():
    """A pool made while a worker loads the parent's main script (one with
    no `if __name__ == "__main__":` guard) would start workers without
    end, each loading the script again."""
    worker = sys.modules.get("vow.worker")
    if worker is not None and getattr(worker, "_loading_main", False):
        raise RuntimeError(
            "vow.Pool: the main script makes a pool at import: a worker "
            "loading it (to find a function defined there) would make one "
            "too. Make pools under `if __name__ == \"__main__\":`, as "
            "multiprocessing requires")


class _ForkedPool(Pool):
    """A pool as a forked child sees it: its loop, channels and workers
    are the parent's, and touching them would break the parent's (the
    epoll set is shared) or abort in libuv. Every use says so instead;
    the object does nothing when it goes."""

    def _refuse(self, *args, **kwargs):
        owner = object.__getattribute__(self, "_owner")
        raise RuntimeError(
            f"vow.Pool: this pool belongs to process {owner}, and this is "
            f"a child it forked ({os.getpid()}): the child cannot use it; "
            f"make a pool in the child")

    def __getattribute__(self, name):
        if name in ("__class__", "__dict__", "_refuse", "_owner"):
            return object.__getattribute__(self, name)
        object.__getattribute__(self, "_refuse")()

    __enter__ = __exit__ = __aenter__ = __aexit__ = _refuse

    def __del__(self):
        pass  # the parent's to end, not ours


_live = weakref.WeakSet()  # pools of this process


def _disown_after_fork():
    for pool in list(_live):
        pool.__class__ = _ForkedPool
    _live.clear()


os.register_at_fork(after_in_child=_disown_after_fork)


def _finish_at_exit():
    """A script that submits and exits without shutdown has its tasks run
    first, as concurrent.futures joins its executors at exit; so does one
    that shut down without waiting."""
    for pool in list(_live):
        try:
            if pool._ctx is not None:
                pool._begin_shutdown(True, False)  # if not begun already
                pool._end()
        except Exception:
            pass


atexit.register(_finish_at_exit)


__all__ = ["Pool", "Task", "as_completed", "wait", "VowError"]
