"""What a task's failure raises: VowError, one subclass per kind of
failure, with where it happened and the remote traceback."""
import concurrent.futures
import multiprocessing
from concurrent.futures.process import BrokenProcessPool


class VowError(Exception):
    """A task's failure. `kind` names what happened ("task error",
    "worker died", "timeout", ...); `pid` is the worker's process id (or
    None), `remote_traceback` the worker's traceback text for a Python
    exception there, `function` the task's function."""

    def __init__(self, message, kind="error", code=0, pid=None,
                 function=None, exit_status=None, term_signal=None,
                 remote_traceback=None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.code = code
        self.pid = pid
        self.function = function
        self.exit_status = exit_status
        self.term_signal = term_signal
        self.remote_traceback = remote_traceback

    def __str__(self):
        where = f" (worker {self.pid})" if self.pid else ""
        text = f"{self.kind}: {self.message}{where}"
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text


class TaskError(VowError):
    """The task's function raised (or returned what cannot be sent)."""


class WorkerDied(VowError, BrokenProcessPool):
    """The worker running the task died (killed, crashed, exited). Only
    that task fails, and the pool goes on; code written for
    ProcessPoolExecutor, where the whole pool breaks, catches it as the
    BrokenProcessPool it expects."""


class PoisonTask(VowError):
    """The task killed every worker it was given to, retries included."""


class TaskTimeout(VowError, TimeoutError):
    """The task ran past its timeout; its worker was replaced."""


class Cancelled(VowError, concurrent.futures.CancelledError):
    """The task was cancelled before it finished."""


class ProtocolError(VowError):
    """The worker broke the wire protocol and was killed."""


class QueueFull(VowError):
    """The pool's queue limit was reached."""


class BadInput(VowError):
    """The task was refused: an unknown function, arguments that cannot
    be sent, a pool shutting down."""


class WaitTimeout(multiprocessing.TimeoutError, TimeoutError):
    """A wait ran out of time (Task.result(timeout), get(timeout), an
    imap's next(timeout)); the task goes on. Both multiprocessing's
    TimeoutError and the builtin one (concurrent.futures') catch it."""


class PoolNotRunning(RuntimeError, ValueError):
    """The pool is closed or shut down: multiprocessing raises ValueError
    there, concurrent.futures RuntimeError; this is both."""


# vow_failure_kind_t values (include/vow/failure.h), in order from 1.
_BY_KIND = {1: Cancelled, 2: TaskTimeout, 3: WorkerDied, 4: PoisonTask,
            5: TaskError, 6: ProtocolError, 8: QueueFull, 12: BadInput}


def error_class(kind):
    return _BY_KIND.get(kind, VowError)
