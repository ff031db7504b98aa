"""The end of a pool: shutdown (waiting, or cancelling what is left),
its asyncio form, and both context managers."""
import threading

from . import _lib
from .errors import PoolNotRunning


class Ending:
    """Pool's shutdown half."""

    def _check_open(self):
        if self._closed:
            raise PoolNotRunning("Pool not running")

    def _begin_shutdown(self, wait, cancel_futures):
        """The Task of the pool's shutdown; None if it has begun already."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            self._flush()
            self._shutdown_task = self._watch(_lib.pool_shutdown(
                self._pool, wait and not cancel_futures))
            return self._shutdown_task

    def _free(self):
        """Frees the pool once every task has settled; the driver thread,
        if there is one, is let go first."""
        try:
            self._wait(lambda: not self._tasks, None)  # settled before it
        except PoolNotRunning:  # freed by another thread
            return
        with self._lock:
            if self._ctx is None:
                return
            if self._freeing:
                # Another thread frees it: return once it has (at once if
                # this is the driver thread, which that one waits for).
                while self._ctx is not None and \
                        self._thread is not threading.current_thread():
                    self._cond.wait()
                return
            self._freeing = True
            self._wake()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            if self._ctx is None:
                return
            if self._driver is not None:
                self._driver.detach()
                self._driver = None
            _lib.collector_free(self._collector)
            _lib.pool_free(self._pool)
            _lib.ctx_close(self._ctx)
            self._collector = self._pool = self._ctx = None
            self._close_pump()
            self._cond.notify_all()

    def shutdown(self, wait=True, cancel_futures=False):
        """Ends the pool: with wait, queued tasks run first; without, or
        with cancel_futures, unfinished tasks fail with Cancelled. The
        workers are gone when this returns. From a coroutine, await
        aclose() instead: this blocks the event loop while it waits."""
        if self._begin_shutdown(wait, cancel_futures) is not None:
            self._end()

    def _end(self):
        """Waits for the shutdown begun to be over, then frees the pool."""
        with self._lock:
            if self._ctx is None:
                return
            done = self._shutdown_task
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

    # multiprocessing.Pool's ending: close() lets what was submitted run,
    # terminate() cancels it, join() waits for the workers to be gone.
    def close(self):
        """No more tasks; the workers end once what was submitted has run
        (join() waits for that)."""
        self._begin_shutdown(True, False)

    def terminate(self):
        """Cancels what is unfinished and stops the workers now."""
        with self._lock:
            if self._ctx is None:
                return
            started = self._closed
        if not started:
            self.shutdown(wait=False)
            return
        # close() came first: cancel what is left of it.
        with self._lock:
            for task in list(self._tasks.values()):
                if task is not self._shutdown_task and not task._done \
                        and task._promise is not None:
                    _lib.cancel(task._promise)
            self._pump(0)
        self.join()

    def join(self):
        """Waits for the workers to be gone, after close() or
        terminate()."""
        with self._lock:
            if not self._closed:
                raise ValueError("Pool is still running")
        self._end()

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
