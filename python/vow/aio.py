"""vow tasks as asyncio futures: `await task` (or task.aio()) in a
coroutine. The pool's loop is driven from asyncio's through
loop.add_reader on its backend fd; no second thread. A pool outlives the
loop: once asyncio.run() has closed it, the pool goes on without it."""
import asyncio

from .drive import Driver


def attach(pool, loop=None):
    """Drives pool from loop (default: the running one); returns the
    driver. Done by the first await, so only needed to choose the loop."""
    loop = loop or asyncio.get_running_loop()
    driver = pool._driver
    if driver is not None and getattr(driver, "loop", None) is loop:
        return driver
    if driver is not None:
        driver.detach()
    fd = pool.fileno()

    def stop():
        if not loop.is_closed():
            loop.remove_reader(fd)

    # call_soon_threadsafe: a thread other than the loop's may submit.
    driver = Driver(pool, loop.call_soon_threadsafe, loop.call_later, stop)
    driver.loop = loop
    loop.add_reader(fd, driver.run)
    pool._driver = driver
    driver.kick()
    return driver


class _TaskFuture(asyncio.Future):
    """Cancelling it cancels the task at once (a done callback would run
    only on a later turn)."""

    _vow_task = None

    def cancel(self, *args, **kwargs):
        cancelled = super().cancel(*args, **kwargs)
        if cancelled and self._vow_task is not None:
            self._vow_task.cancel()
        return cancelled


def future(task, loop=None):
    """An asyncio future settled with the task's outcome; cancelling it
    cancels the task."""
    loop = loop or asyncio.get_running_loop()
    attach(task._pool, loop)
    fut = _TaskFuture(loop=loop)
    fut._vow_task = task
    task.add_done_callback(lambda t: t._pass_to(fut))
    return fut
