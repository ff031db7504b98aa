"""A pool's options, from Pool's keyword arguments to libvow's
vow_pool_options_t: the worker's command line, its environment, the
limits."""
import base64
import ctypes
import os
import pickle
import shlex
import sys

from . import _lib

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_argv(worker, module):
    """The worker's command line from Pool's worker= or module= (neither:
    this interpreter running vow.worker with no module of its own, which
    finds each function by the name the parent sends)."""
    if worker is not None and module is not None:
        raise ValueError("give the worker command (worker=...) or a "
                         "Python module for vow.worker (module=...), "
                         "not both")
    if worker is None:
        return [sys.executable, "-m", "vow.worker", module or "--any"]
    if isinstance(worker, str):
        return shlex.split(worker)
    return [str(a) for a in worker]


def worker_env(extra):
    """Workers know their parent is Python (they spread a task's argument
    list, send numpy arrays as arrays and exceptions as they were raised),
    find this package and the parent's sys.path, and the parent's main
    script, where functions defined in it are found."""
    path = os.environ.get("PYTHONPATH")
    entries = {"VOW_PYTHON_PARENT": "1",
               "PYTHONPATH": _PACKAGE_PARENT + (os.pathsep + path
                                                if path else ""),
               # A function's module imports there as it does here.
               "VOW_SYS_PATH": os.pathsep.join(
                   p for p in sys.path if isinstance(p, str))}
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main:
        entries["VOW_MAIN_PATH"] = os.path.abspath(main)
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


def initializer_env(initializer, initargs):
    """VOW_INITIALIZER: the initializer's name and its arguments, which
    the worker calls before it serves (pickled: they stay in this
    program's own workers)."""
    from ._submit import _fn_name
    return base64.b64encode(pickle.dumps(
        (_fn_name(initializer).decode(), tuple(initargs)))).decode("ascii")


def check_chunksize(chunksize):
    """A chunksize given is an int of at least 1, as Executor.map and
    Pool.imap require."""
    if chunksize is None:
        return
    if not isinstance(chunksize, int) or isinstance(chunksize, bool):
        hint = "" if not hasattr(chunksize, "__iter__") else (
            ": Pool.map takes one iterable, as multiprocessing's does "
            "(for several, starmap(f, zip(xs, ys)) or "
            "ProcessPoolExecutor.map(f, xs, ys))")
        raise TypeError(f"chunksize must be an int, not "
                        f"{type(chunksize).__name__}{hint}")
    if chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, not {chunksize}")


class Options:
    """vow_pool_options_t filled in, with the arrays it points into kept
    alive as long as this object is."""

    def __init__(self, argv, *, workers, timeout, retries, queue_limit,
                 recycle_after, in_flight, env, cwd, stderr, seed,
                 initializer=None, initargs=(), launchers=None,
                 stdout="inherit", liveness=None):
        if stderr not in _lib.STDERR_MODES:
            raise ValueError(f"stderr is one of {sorted(_lib.STDERR_MODES)}")
        self._keep = []
        env = dict(env or {})
        if initializer is not None:
            env["VOW_INITIALIZER"] = initializer_env(initializer, initargs)
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
        if stdout not in ("inherit", "stderr"):
            raise ValueError('stdout is "inherit" or "stderr"')
        # A task's print() reaches this program's stdout, as a
        # multiprocessing worker's does; "stderr": where its stderr goes.
        o.inherit_stdout = stdout == "inherit"
        if liveness is not None:
            if liveness < 0.4:
                raise ValueError("liveness must be 0.4 seconds or more")
            o.liveness_ms = int(liveness * 1000)
        if launchers:
            self._launchers(launchers)
            o.workers = sum(L.workers for L in self._keep[-1])

    def _launchers(self, launchers):
        """vow_launcher_t[] from launchers=: each a command (a string or a
        list of words: one worker) or a pair (command, workers)."""
        table = (_lib.Launcher * len(launchers))()
        for k, spec in enumerate(launchers):
            command, n = spec if isinstance(spec, tuple) else (spec, 1)
            words = shlex.split(command) if isinstance(command, str) else \
                [str(w) for w in command]
            check_counts(workers=n)
            if not words:
                raise ValueError("a launcher's command is empty")
            table[k].workers = n
            table[k].argv = self._strv(words)
        self._keep.append(table)
        self.struct.launchers = ctypes.cast(table, ctypes.c_void_p)
        self.struct.nlaunchers = len(launchers)

    def _strv(self, words):
        arr = (ctypes.c_char_p * (len(words) + 1))(
            *[os.fsencode(w) for w in words], None)
        self._keep.append(arr)
        return arr
