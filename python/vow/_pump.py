"""The loop pump: libuv's loop run without blocking in it, and what has
settled taken from the collector in bulk and handed to the tasks."""
import ctypes
import select
import struct
import time

from . import _lib
from ._task import _error_of
from .codec import unpackb

TAKE = 512  # settled promises taken per call
VALUES_BUF = 1 << 18  # bytes of values copied out per take
_SETTLED = struct.Struct("@QiPPNPP")  # vow_settled_t, as _lib.Settled
assert _SETTLED.size == ctypes.sizeof(_lib.Settled)
_string_at = ctypes.string_at


class Pumping:
    """Pool's loop half."""

    def _dispatch(self):
        """Settles the tasks whose promises have settled."""
        tasks = self._tasks
        used = self._used
        while _lib.collector_ready(self._collector):
            took = _lib.collector_take_into(
                self._collector, self._settled, TAKE, self._values_buf,
                VALUES_BUF, self._used_ref)
            # A task's share of the parent's work is a few hundred
            # nanoseconds, so each part is read in bulk: the entries in one
            # pass of struct (not field by field through ctypes), the
            # values as one msgpack stream copied out by libvow.
            values = self._read_values(self._values_view[:used.value]) \
                if used.value else None
            for tag, state, _, data, length, failure, _ in \
                    _SETTLED.iter_unpack(
                        self._settled_bytes[:took * _SETTLED.size]):
                task = tasks.pop(tag)
                if state != _lib.FULFILLED:
                    task._settle(None, _error_of(failure))
                    continue
                if not data:
                    value = None
                elif values is not None:
                    value = next(values)
                else:  # one value too big for the buffer
                    value = unpackb(_string_at(data, length))
                if task._callbacks is None:  # _settle, inline
                    task._value = value
                    task._done = True
                    task._promise = None
                else:
                    task._settle(value, None)

    def _pump(self, wait_s):
        """Runs what is due on the loop; with wait_s (None: no limit),
        first waits that long for something to happen."""
        self._flush()
        if wait_s != 0:
            ms = _lib.uv_backend_timeout(self._loop)
            if ms >= 0:
                wait_s = ms / 1000 if wait_s is None else min(wait_s, ms / 1000)
            select.select([self._fd], [], [], wait_s)
        _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
        self._dispatch()

    def _wait(self, done, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        self._pump(0)
        while not done():
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("vow: the wait timed out")
            self._pump(left)

    def fileno(self):
        """The loop's backend fd: readable when the pool has work for
        poll() (see docs/python.md); call poll() then."""
        return self._fd

    def poll(self):
        """Runs what is due without waiting; settles tasks whose results
        have arrived."""
        self._pump(0)

    def next_timeout(self):
        """Seconds until the loop's next timer (None: none)."""
        if self._batch:
            return 0  # submissions wait to be sent
        ms = _lib.uv_backend_timeout(self._loop)
        return None if ms < 0 else ms / 1000
