"""Running a pool's loop from another event loop (asyncio, Twisted): the
other loop watches the pool's backend fd and its next timer, and polls
the pool when either fires; a submit asks for a poll on the next turn,
so the task is sent without waiting for the fd. A loop that has closed
(asyncio.run() returned) is let go: the pool is then driven by whoever
waits, or by the next loop that awaits one of its tasks."""


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
        """Asks for a poll on the loop's next turn; False (and the driver
        detached from the pool) if that loop has closed, so the pool
        goes on without it."""
        if self._soon is None:
            try:
                self._soon = self._call_soon(self.run)
            except RuntimeError:  # asyncio.run() has closed the loop
                self.detach()
                if self.pool._driver is self:
                    self.pool._driver = None
                return False
        return True

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
                try:
                    handle.cancel()
                except RuntimeError:
                    pass
        self._soon = self._timer = None
        try:
            self._stop()
        except RuntimeError:
            pass
