"""vow from Python: CPU-bound functions on worker processes, each result
a promise the parent can wait on three ways (blocking, asyncio, Twisted).

    import vow
    with vow.Pool(module="mytasks") as pool:
        print(pool.submit("square", 7).result())
        print(pool.map("square", range(1000))[:3])

vow.Pool is multiprocessing.Pool's interface, vow.ProcessPoolExecutor
concurrent.futures'; both run on one engine.

The package loads libvow only when the pool is used, so a worker
(python3 -m vow.worker MODULE) needs nothing but python3, and starts
without the parent's imports. See
docs/python.md."""

__all__ = ["Pool", "ProcessPoolExecutor", "Task", "VowError", "TaskError",
           "WorkerDied", "PoisonTask", "TaskTimeout", "Cancelled",
           "ProtocolError", "QueueFull", "BadInput", "WaitTimeout",
           "PoolNotRunning", "Shared", "as_completed", "wait"]

_ERRORS = {"VowError", "TaskError", "WorkerDied", "PoisonTask",
           "TaskTimeout", "Cancelled", "ProtocolError", "QueueFull",
           "BadInput", "WaitTimeout", "PoolNotRunning"}


def __getattr__(name):
    # Loaded when first used: a worker (vow.worker) imports none of it.
    if name in _ERRORS:
        from . import errors
        value = globals()[name] = getattr(errors, name)
        return value
    if name in ("Pool", "Task", "as_completed", "wait"):
        from . import pool
        value = globals()[name] = getattr(pool, name)  # once: hot paths
        return value
    if name == "Shared":
        from ._shared import Shared
        globals()[name] = Shared
        return Shared
    if name == "ProcessPoolExecutor":
        from .executor import ProcessPoolExecutor
        globals()[name] = ProcessPoolExecutor
        return ProcessPoolExecutor
    raise AttributeError(f"module 'vow' has no attribute {name!r}")
