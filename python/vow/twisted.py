"""vow tasks as Twisted Deferreds: task.deferred(). The pool's loop is
driven from the reactor, which watches its backend fd (addReader); no
second thread.

Run the reactor with reactor.run(installSignalHandlers=False): otherwise
it takes SIGCHLD for itself, libuv never hears that a worker exited, and
a dead worker is replaced late (by the end of its channel) while shutdown
waits for exits it cannot see."""
import signal
import warnings

from twisted.internet import defer
from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from .drive import Driver


@implementer(IReadDescriptor)
class _Reader:
    def __init__(self, fd, run):
        self._fd = fd
        self.doRead = run

    def fileno(self):
        return self._fd

    def connectionLost(self, reason):
        pass

    def logPrefix(self):
        return "vow"


class _Call:
    """A reactor.callLater handle whose cancel() is safe after it ran."""

    def __init__(self, delayed):
        self._delayed = delayed

    def cancel(self):
        if self._delayed.active():
            self._delayed.cancel()


def attach(pool, reactor=None):
    """Drives pool from the reactor (default: the global one); done by
    the first deferred(), so only needed to choose the reactor."""
    if reactor is None:
        from twisted.internet import reactor
    driver = pool._driver
    if driver is not None and getattr(driver, "reactor", None) is reactor:
        return driver
    if driver is not None:
        driver.detach()
    reader = None

    def stop():
        reactor.removeReader(reader)

    driver = Driver(pool, lambda fn: _Call(reactor.callLater(0, fn)),
                    lambda s, fn: _Call(reactor.callLater(s, fn)), stop)
    reactor.callWhenRunning(_check_sigchld)
    driver.reactor = reactor
    reader = _Reader(pool.fileno(), driver.run)
    reactor.addReader(reader)
    pool._driver = driver
    driver.kick()
    return driver


def _check_sigchld():
    # libuv's handler is installed from C, so Python sees None; a Python
    # handler here is the reactor's.
    if callable(signal.getsignal(signal.SIGCHLD)):
        warnings.warn("vow: the reactor handles SIGCHLD, so vow cannot see "
                      "its workers exit; run it with "
                      "reactor.run(installSignalHandlers=False)",
                      RuntimeWarning, stacklevel=2)


def deferred(task, reactor=None):
    """A Deferred fired with the task's outcome (errback with a Failure of
    its VowError); cancelling it cancels the task."""
    attach(task._pool, reactor)
    d = defer.Deferred(lambda _: task.cancel())

    def settle(t):
        if d.called:  # cancelled already: Deferred errbacked itself
            return
        if t._error is not None:
            d.errback(Failure(t._error))
        else:
            d.callback(t._value)

    task.add_done_callback(settle)
    return d
