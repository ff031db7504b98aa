"""The end of a pool: shutdown (waiting, or cancelling what is left),
its asyncio form, and both context managers."""
from . import _lib


class Ending:
    """Pool's shutdown half."""

    def _check_open(self):
        if self._closed:
            raise RuntimeError("vow: the pool is shut down")

    def _begin_shutdown(self, wait, cancel_futures):
        """The Task of the pool's shutdown; None if it has begun already."""
        if self._closed:
            return None
        self._closed = True
        self._flush()
        return self._watch(_lib.pool_shutdown(self._pool,
                                              wait and not cancel_futures))

    def _free(self):
        self._wait(lambda: not self._tasks, None)  # settled before it
        if self._driver is not None:
            self._driver.detach()
            self._driver = None
        _lib.collector_free(self._collector)
        _lib.pool_free(self._pool)
        _lib.ctx_close(self._ctx)
        self._collector = self._pool = self._ctx = None

    def shutdown(self, wait=True, cancel_futures=False):
        """Ends the pool: with wait, queued tasks run first; without, or
        with cancel_futures, unfinished tasks fail with Cancelled. The
        workers are gone when this returns. From a coroutine, await
        aclose() instead: this blocks the event loop while it waits."""
        done = self._begin_shutdown(wait, cancel_futures)
        if done is None:
            return
        self._wait(done.done, None)
        self._free()

    async def aclose(self, wait=True, cancel_futures=False):
        """shutdown() for a coroutine: the event loop runs while the
        workers finish. `async with vow.Pool(...)` calls it on the way
        out."""
        done = self._begin_shutdown(wait, cancel_futures)
        if done is None:
            return
        await done
        self._free()

    async def __aenter__(self):
        if self._closed:
            raise ValueError("Pool not running")
        return self

    async def __aexit__(self, exc_type, *exc):
        await self.aclose(wait=exc_type is None)
        return False

    def __enter__(self):
        # As multiprocessing.Pool: a pool shut down cannot be entered.
        if self._closed:
            raise ValueError("Pool not running")
        return self

    def __exit__(self, exc_type, *exc):
        # A block left by an exception (Ctrl-C among them) cancels what is
        # left instead of waiting for it.
        self.shutdown(wait=exc_type is None)
        return False
