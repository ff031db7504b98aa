"""A pool's options, from Pool's keyword arguments to libvow's
vow_pool_options_t: the worker's command line, its environment, the
limits."""
import ctypes
import os
import shlex
import sys

from . import _lib

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_argv(worker, module):
    """The worker's command line from Pool's worker= or module=."""
    if (worker is None) == (module is None):
        raise ValueError("give the worker command (worker=...) or a "
                         "Python module for vow.worker (module=...)")
    if module is not None:
        return [sys.executable, "-m", "vow.worker", module]
    if isinstance(worker, str):
        return shlex.split(worker)
    return [str(a) for a in worker]


def worker_env(extra):
    """Workers know their parent is Python (they spread a task's argument
    list, and send numpy arrays as arrays) and find this package."""
    path = os.environ.get("PYTHONPATH")
    entries = {"VOW_PYTHON_PARENT": "1",
               "PYTHONPATH": _PACKAGE_PARENT + (os.pathsep + path
                                                if path else "")}
    entries.update(extra or {})
    return [f"{k}={v}" for k, v in entries.items()]


def check_counts(**counts):
    """As multiprocessing and concurrent.futures check theirs: a count
    given (not None) is an int of at least 1, else TypeError or
    ValueError naming it."""
    for name, value in counts.items():
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int or None, "
                            f"not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1 (or None), "
                             f"not {value}")


def check_chunksize(chunksize):
    """A chunksize given is at least 1, as Executor.map and Pool.imap
    require."""
    if chunksize is not None and chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, not {chunksize}")


class Options:
    """vow_pool_options_t filled in, with the arrays it points into kept
    alive as long as this object is."""

    def __init__(self, argv, *, workers, timeout, retries, queue_limit,
                 recycle_after, in_flight, env, cwd, stderr, seed):
        if stderr not in _lib.STDERR_MODES:
            raise ValueError(f"stderr is one of {sorted(_lib.STDERR_MODES)}")
        self._keep = []
        o = self.struct = _lib.PoolOptions()
        _lib.pool_options_init(ctypes.byref(o))
        o.workers = workers or 0
        o.worker_argv = self._strv(argv)
        o.timeout_ms = int(timeout * 1000) if timeout else 0
        o.retries = retries
        o.queue_limit = queue_limit or 0
        o.recycle_after = recycle_after or 0
        o.seed = seed
        o.in_flight = in_flight or 0
        o.env = self._strv(worker_env(env))
        o.cwd = os.fsencode(cwd) if cwd else None
        o.stderr_mode = _lib.STDERR_MODES[stderr]

    def _strv(self, words):
        arr = (ctypes.c_char_p * (len(words) + 1))(
            *[os.fsencode(w) for w in words], None)
        self._keep.append(arr)
        return arr
