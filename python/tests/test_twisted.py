"""Tasks as Twisted Deferreds: the pool driven from the reactor through
addReader on its backend fd, the chain written with callbacks. The
reactor runs once per process, so one test does it all."""
import vow
from conftest import TASKS


def test_deferred_chains_failures_and_cancel():
    from twisted.internet import defer, reactor

    seen = {}
    pool = vow.Pool(workers=2, module=TASKS)

    @defer.inlineCallbacks
    def scenario():
        # Three calls, each handler starting the next.
        d = pool.submit("add", 1, 2).deferred()
        d.addCallback(lambda a: pool.submit("square", a).deferred())
        d.addCallback(lambda b: pool.submit("add", b, 1).deferred())
        seen["chain"] = yield d
        # A failure reaches the errback as a Failure of the exception.
        try:
            yield pool.submit("fail", "under twisted").deferred()
        except ValueError as e:
            seen["error"] = e.vow_error.remote_traceback
        # Cancelling the Deferred cancels the task.
        task = pool.submit("sleep_then", 1, 30)
        d = task.deferred()
        reactor.callLater(0.1, d.cancel)
        try:
            yield d
        except vow.Cancelled:
            seen["cancelled"] = True
        seen["many"] = yield defer.gatherResults(
            [pool.submit("square", i).deferred() for i in range(100)])

    def finish(result):
        seen["result"] = result
        reactor.stop()

    reactor.callWhenRunning(lambda: scenario().addBoth(finish))
    reactor.callLater(60, reactor.stop)  # a hang fails, not stalls
    # The reactor must leave SIGCHLD to libuv (see vow/twisted.py).
    reactor.run(installSignalHandlers=False)
    pool.shutdown()
    assert seen.get("result") is None, seen.get("result")
    assert seen["chain"] == 10
    assert "ValueError: under twisted" in seen["error"]
    assert seen["cancelled"]
    assert seen["many"] == [i * i for i in range(100)]
