"""The loop pump: libuv's loop run without blocking in it, and what has
settled taken from the collector in bulk and handed to the tasks.

libvow is not thread-safe, so every call into it is made under the pool's
lock. Whoever waits drives the loop: the first thread to wait sleeps in
select() on the loop's backend fd with the lock released, then runs the
loop and settles tasks under it; other threads waiting meanwhile sleep on
the pool's condition, woken after each turn, and one of them drives next
once the first has what it waited for. A thread that runs the loop while
another sleeps in select() wakes it through a pipe, so that a result it
took, or a timer it added, is seen at once. A pool may also have a driver
thread of its own (Executor futures, concurrent.futures.wait and
callbacks then need no waiter): it is the one waiter that never leaves."""
import ctypes
import os
import select
import struct
import threading
import time

from . import _lib, codec
from ._task import _error_of
from .codec import unpackb
from .errors import PoolNotRunning, WaitTimeout

TAKE = 512  # settled promises taken per call
VALUES_BUF = 1 << 18  # bytes of values copied out per take
_SETTLED = struct.Struct("@QiPPNPP")  # vow_settled_t, as _lib.Settled
assert _SETTLED.size == ctypes.sizeof(_lib.Settled)
_string_at = ctypes.string_at


# A reply that comes within this many seconds is waited for awake: on a
# virtual machine, waking from select costs tens of microseconds, as much
# as a whole round trip to a worker.
_SPIN_S = 100e-6


def _spin_then_select(fds, wait_s, spin):
    """select(fds, wait_s) for reading; with spin, polling for the first
    _SPIN_S."""
    if not spin:
        select.select(fds, [], [], wait_s)
    elif wait_s is None or wait_s > 0:
        end = time.perf_counter() + _SPIN_S
        while not select.select(fds, [], [], 0)[0]:
            if time.perf_counter() >= end:
                select.select(fds, [], [], wait_s)
                return


class _ValueRef:
    """One reference to a vow_value_t, given up when this goes."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = _lib.value_ref(value)

    def __del__(self):
        _lib.value_release(self.value)


def _over_segment(value, data, length):
    """A result that came by shared memory, decoded in place: its numpy
    arrays are read-only views of the segment's mapping, which lives
    while any of them does (they hold the value that holds it)."""
    buf = (ctypes.c_char * length).from_address(data)
    buf.owner = _ValueRef(value)
    return codec.unpack_shared(memoryview(buf).cast("B").toreadonly())


class _TakeBuffers:
    """Where one depth of _dispatch takes settled promises to: their
    entries and their values' bytes, read in place. A callback that waits
    on another task dispatches again from inside the first dispatch, into
    the next depth's buffers, so that nothing the outer one still reads is
    overwritten."""

    __slots__ = ("settled", "settled_bytes", "values", "values_view",
                 "used", "used_ref")

    def __init__(self):
        self.settled = (_lib.Settled * TAKE)()
        self.settled_bytes = memoryview(self.settled).cast("B")
        self.values = ctypes.create_string_buffer(VALUES_BUF)
        self.values_view = memoryview(self.values).cast("B")
        self.used = ctypes.c_size_t(0)
        self.used_ref = ctypes.byref(self.used)


class Pumping:
    """Pool's loop half."""

    def _init_pump(self):
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._driving = False  # a thread sleeps in select(), lock released
        self._dispatching = 0  # settling tasks (callbacks may run)
        self._freeing = False  # the driver thread is to end
        self._shutdown_task = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._woken = False
        self._thread = None  # the pool's own driver thread, if any

    def _close_pump(self):
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1

    def _dispatch(self):
        """Settles the tasks whose promises have settled (lock held)."""
        depth = self._dispatching
        if depth == len(self._take_buffers):
            self._take_buffers.append(_TakeBuffers())
        bufs = self._take_buffers[depth]
        used = bufs.used
        quick = self._quick
        self._dispatching += 1
        big_taken = False
        try:
            while _lib.collector_ready(self._collector):
                took = _lib.collector_take_into(
                    self._collector, bufs.settled, TAKE, bufs.values,
                    VALUES_BUF, bufs.used_ref)
                # A task's share of the parent's work is a few hundred
                # nanoseconds, so each part is read in bulk and in place:
                # the entries as the array libvow wrote (not field by
                # field through ctypes), the values as one msgpack stream
                # copied out by libvow.
                values = self._read_values(
                    bufs.values_view[:used.value]) if used.value else None
                entries = bufs.settled_bytes[:took * _SETTLED.size]
                big_taken = big_taken or values is None
                i = 0
                while i < took:
                    if quick is not None and values is not None:
                        # The plain results, settled in C (_fastpool.c);
                        # the first that is not comes here.
                        i = quick.settle(entries, took, i, values)
                        if i == took:
                            break
                    self._settle_entry(
                        _SETTLED.unpack_from(entries, i * _SETTLED.size),
                        values)
                    i += 1
            if big_taken:
                # A big value is let go now, not at the next take: a
                # result the caller dropped frees its memory at once.
                _lib.collector_take_into(self._collector, bufs.settled, 0,
                                         bufs.values, 0, bufs.used_ref)
        finally:
            self._dispatching -= 1

    def _settle_entry(self, entry, values):
        """Settles the task of one vow_settled_t entry; values: the stream
        of the take's values (None: this one is too big for it)."""
        tag, state, value_ptr, data, length, failure, _ = entry
        task = self._tasks.pop(tag)
        if state != _lib.FULFILLED:
            task._settle(None, _error_of(failure, self._remote_tb))
            return
        if not data:
            value = None
        elif values is None and task._into is None and \
                _lib.value_is_shared(value_ptr):
            value = _over_segment(value_ptr, data, length)
        elif values is None:  # one value too big for the buffer
            big = _string_at(data, length)
            value = unpackb(big) if task._into is None else \
                self._read_values(big).into(*task._into)
        elif task._into is None:
            value = next(values)
        else:  # a map's slice, decoded into the map's list
            value = values.into(*task._into)
        if task._callbacks is None:  # _settle, inline
            task._value = value
            task._done = True
            task._promise = None
        else:
            task._settle(value, None)

    def _wake(self):
        """Wakes the thread sleeping in select(), if one is (lock held)."""
        if self._driving and not self._woken:
            self._woken = True
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:
                pass

    def _sleep(self, wait_s):
        """Sleeps until the loop has something to do, the wait_s passes
        (None: no limit) or another thread wakes us; with the lock
        released unless tasks are being settled (a callback waiting),
        whose buffers another thread must not touch meanwhile."""
        ms = _lib.uv_backend_timeout(self._loop)
        if ms >= 0:
            wait_s = ms / 1000 if wait_s is None else min(wait_s, ms / 1000)
        if self._dispatching:
            select.select([self._fd], [], [], wait_s)
            return
        self._driving = True
        saved = self._lock._release_save()
        try:
            # Awake only for a reply due soon: with more tasks out than
            # workers, the workers want the CPU, and replies come in bulk.
            _spin_then_select([self._fd, self._wake_r], wait_s,
                              0 < len(self._tasks) <= self._nworkers)
        finally:
            self._lock._acquire_restore(saved)
            self._driving = False
            if self._woken:
                self._woken = False
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass

    def _pump(self, wait_s):
        """Runs what is due on the loop; with wait_s (None: no limit),
        first waits that long for something to happen. Lock held."""
        self._flush()
        if wait_s != 0:
            self._sleep(wait_s)
            if self._ctx is None:  # freed by another thread meanwhile
                return
        _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)
        self._dispatch()
        self._wake()  # what it took may be what the sleeper waits for
        self._cond.notify_all()

    def _wait(self, done, timeout):
        """Returns once done() is true (checked under the lock), driving
        the loop unless another thread is; TimeoutError after timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._ctx is not None:
                self._pump(0)
            while not done():
                if self._ctx is None:
                    raise PoolNotRunning("vow: the pool is shut down")
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise WaitTimeout("vow: the wait timed out")
                if self._driving and not self._dispatching:
                    self._cond.wait(left)  # the driver notifies each turn
                else:
                    self._pump(left)

    def _start_thread(self):
        """Gives the pool a driver thread of its own (lock held): tasks
        settle, and callbacks run, with nobody waiting."""
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._drive_until_freed,
                                        name="vow.Pool driver", daemon=True)
        self._thread.start()

    def _drive_until_freed(self):
        """The driver thread: runs the loop until the pool is freed, and
        frees it itself once a shutdown that nobody waits for is over."""
        def over():
            done = self._shutdown_task
            return self._ctx is None or self._freeing or (
                done is not None and done._done and not self._tasks)
        try:
            self._wait(over, None)
        except PoolNotRunning:  # freed meanwhile
            return
        self._free()  # nothing if another thread frees it

    def fileno(self):
        """The loop's backend fd: readable when the pool has work for
        poll() (see docs/python.md); call poll() then."""
        return self._fd

    def poll(self):
        """Runs what is due without waiting; settles tasks whose results
        have arrived."""
        with self._lock:
            if self._ctx is not None:
                self._pump(0)

    def next_timeout(self):
        """Seconds until the loop's next timer (None: none)."""
        with self._lock:
            if self._batch:
                return 0  # submissions wait to be sent
            if self._ctx is None:
                return None
            ms = _lib.uv_backend_timeout(self._loop)
        return None if ms < 0 else ms / 1000
