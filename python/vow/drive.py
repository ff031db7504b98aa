"""Running a pool's loop from another event loop (asyncio, Twisted): the
other loop watches the pool's backend fd and its next timer, and polls
the pool when either fires; a submit asks for a poll on the next turn,
so the task is sent without waiting for the fd. One thread: the pool is
polled only from the loop that drives it."""


class Driver:
    """call_soon(fn) and call_later(seconds, fn) return handles with
    cancel(); stop() undoes the fd watch."""

    def __init__(self, pool, call_soon, call_later, stop):
        self.pool = pool
        self._call_soon = call_soon
        self._call_later = call_later
        self._stop = stop
        self._soon = None
        self._timer = None

    def run(self):
        self._soon = None
        if self.pool._ctx is None:  # shut down and freed
            return
        self.pool.poll()
        self._arm()

    def kick(self):
        if self._soon is None:
            self._soon = self._call_soon(self.run)

    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wait = self.pool.next_timeout()
        if wait == 0:
            self.kick()
        elif wait is not None:
            self._timer = self._call_later(wait, self.run)

    def detach(self):
        for handle in (self._soon, self._timer):
            if handle is not None:
                handle.cancel()
        self._soon = self._timer = None
        self._stop()
