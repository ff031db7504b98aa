"""map, starmap, imap and their kin, as multiprocessing.Pool has them.

map and starmap cut the iterable into slices, each one vow_pool_map (run
in chunks on the workers), and fail as a whole with the first failing
item. imap and imap_unordered stream: each item (or each chunk of
chunksize items) is a task of its own, sent a window ahead of what has
been taken, so the first result is there as soon as it exists and a
failing item raises at its position, after the results before it."""
import collections
import itertools

from . import _lib, codec
from ._options import check_chunksize
from ._submit import _fn_name
from ._task import _Listed, _MapTask, _with_callbacks, as_completed
from .errors import WaitTimeout

_SLICE_MIN, _SLICE_MAX = 1024, 16384  # items per vow_pool_map of a map
_WINDOW = 4096  # items an imap keeps sent ahead of what has been taken


def _star_name(fn, star):
    """fn's name as a map sends it; "name*" takes each item as a list of
    arguments."""
    return _fn_name(fn) + (b"*" if star else b"")


class _IMap:
    """multiprocessing's IMapIterator: next(timeout) raises
    multiprocessing.TimeoutError (a TimeoutError too) and loses nothing:
    a later next() goes on where it stopped. A failing item raises its
    exception at its position; the items after it follow. close(), or the
    iterator going away, cancels what is left."""

    def __init__(self, pool, units, window, ordered, timeout):
        self._pool = pool
        self._units = units  # (task, is a chunk) in order
        self._window = window
        self._ordered = ordered
        self._timeout = timeout
        self._ahead = collections.deque()  # units sent, in order
        self._finished = collections.deque()  # unordered: units done
        self._values = collections.deque()  # a chunk's values to hand out
        self._more = True
        # What the iterable raised: raised once the results before it are
        # taken, as multiprocessing does.
        self._failed = None

    def __iter__(self):
        return self

    def __next__(self):
        return self.next(self._timeout)

    def _fill(self):
        while self._more and len(self._ahead) < self._window:
            try:
                unit = next(self._units, None)
            except Exception as e:
                self._more = False
                self._failed = e
                break
            if unit is None:
                self._more = False
                break
            self._ahead.append(unit)
            if not self._ordered:
                finished = self._finished  # not self: no cycle through it
                unit[0].add_done_callback(
                    lambda task, unit=unit: finished.append(unit))

    def next(self, timeout=None):
        if self._values:
            return self._values.popleft()
        self._fill()
        if not self._ahead:
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            raise StopIteration
        if self._ordered:
            unit = self._ahead[0]
            try:
                unit[0].wait_done(timeout)
            except TimeoutError:
                raise WaitTimeout("vow: the next result did not come "
                                  "within the timeout") from None
            self._ahead.popleft()
        else:
            try:
                self._pool._wait(lambda: self._finished, timeout)
            except TimeoutError:
                raise WaitTimeout("vow: no result came within the "
                                  "timeout") from None
            unit = self._finished.popleft()
            self._ahead.remove(unit)
        task, chunk = unit
        self._fill()
        if task._error is not None:
            raise task._error
        if not chunk:
            return task._value
        self._values.extend(task._value)
        return self._values.popleft() if self._values else self.next(timeout)

    def close(self):
        """Cancels what was sent and not yet taken; reads no more."""
        self._more = False
        self._failed = None
        ahead, self._ahead = self._ahead, collections.deque()
        for task, _ in ahead:
            task.cancel()

    def __del__(self):
        try:
            if self._ahead and self._pool._ctx is not None:
                self.close()
        except Exception:
            pass


class Mapping:
    """Pool's map half, and multiprocessing's apply."""

    def _map_task(self, name, items, packed=None, chunk=0):
        """A Task for vow_pool_map of name over items (or over packed,
        their msgpack array), chunk items to a worker's task (0: libvow's
        rule): the list of results, or the first item's failure."""
        with self._lock:
            self._check_open()
            task = self._watch(_lib.pool_map_chunked(
                self._pool, name, self._value(items, packed), chunk))
            if self._driver is None:
                _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)  # sends it
                self._wake()
        return task

    def _map_slices(self, fn, iterable, chunksize, star=False):
        """Yields (index of its first item, item count, its Task) for
        consecutive slices of iterable, about 8 slices per worker: the
        workers start on the first while the next are packed, and each
        slice's results are decoded as it arrives, not all at the end.
        Each slice runs in chunks of chunksize items, or else chunks sized
        as libvow sizes a map's, for the whole iterable when its length is
        known. With star, each item is a sequence of arguments. A range is
        packed without making its ints; a list or tuple is sliced, not
        iterated."""
        name = _star_name(fn, star)
        try:
            n = len(iterable)
        except TypeError:
            n = None
        size = _SLICE_MAX if n is None else \
            min(_SLICE_MAX, max(_SLICE_MIN, -(-n // (8 * self._nworkers))))
        chunk = chunksize or (0 if n is None else max(
            1, n // (64 * self._nworkers)))
        if chunksize:  # slices of whole chunks
            size = chunksize * max(1, size // chunksize)
        kind = type(iterable)
        if kind is range and not star and codec.packs_range(iterable):
            for first in range(0, n, size):
                part = iterable[first:first + size]
                yield first, len(part), self._map_task(
                    name, None, codec.pack_range(part), chunk)
            return
        if kind is list or kind is tuple:
            for first in range(0, n, size):
                # a list: a tuple would travel as one tuple, not its items
                items = list(iterable[first:first + size])
                yield from self._slice(fn, name, items, first, chunk, star)
            return
        it = iter(iterable)
        first = 0
        while True:
            items = list(itertools.islice(it, size))
            if not items:
                return
            yield from self._slice(fn, name, items, first, chunk, star)
            first += len(items)

    def _slice(self, fn, name, items, first, chunk, star):
        """A map's slice of items from item first on: one vow_pool_map,
        or, when they hold parts (a Shared, a big numpy array) that a
        map's chunks cannot carry, each item a task of its own."""
        try:
            yield first, len(items), self._map_task(name, items, chunk=chunk)
        except codec.BigArrays:
            for k, item in enumerate(items):
                task = self.submit(fn, *item) if star else \
                    self.submit(fn, item)
                yield first + k, 1, _Listed(self, task)

    def _start_map(self, fn, iterable, chunksize, star=False):
        with self._lock:
            self._check_open()
            self._flush()
        # The results' list is made first, when the length is known: then
        # it takes memory the last map's list left, before the slices'
        # buffers come and go there.
        out = None
        if codec.fastcodec is not None:
            try:
                out = [None] * len(iterable)
            except TypeError:
                pass
        slices = list(self._map_slices(fn, iterable, chunksize, star))
        if codec.fastcodec is not None and slices:
            first, count, _ = slices[-1]
            if out is None or len(out) != first + count:
                out = [None] * (first + count)
        return _MapTask(self, slices, out)

    def map_async(self, func, iterable, chunksize=None, callback=None,
                  error_callback=None):
        """A Task whose value is [func(x) for x in iterable]; it fails with
        the first failing item's exception (its vow_error says "map item
        K"), and the rest is then cancelled. With chunksize, the workers
        take chunksize items at a time (at most 4096), else as many as
        give each worker about 64 chunks of the whole map."""
        check_chunksize(chunksize)
        task = self._start_map(func, iterable, chunksize)
        return _with_callbacks(task, callback, error_callback)

    def map(self, func, iterable, chunksize=None, timeout=None):
        """[func(x) for x in iterable] on the workers, in order."""
        return self.map_async(func, iterable, chunksize).result(timeout)

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        """map_async of func(*args) for each args in iterable."""
        check_chunksize(chunksize)
        task = self._start_map(func, iterable, chunksize, True)
        return _with_callbacks(task, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None, timeout=None):
        """[func(*args) for args in iterable] on the workers, in order."""
        return self.starmap_async(func, iterable, chunksize).result(timeout)

    def _units(self, func, iterable, chunksize, star):
        """(Task, is a chunk) for each item, or each chunk of chunksize
        items, of iterable, sent as it is read."""
        it = iter(iterable)
        if chunksize == 1:
            submit = self.submit
            for item in it:
                yield (submit(func, *item) if star else submit(func, item),
                       False)
            return
        name = _star_name(func, star)
        while True:
            items = list(itertools.islice(it, chunksize))
            if not items:
                return
            try:
                yield self._map_task(name, items), True
            except codec.BigArrays:  # parts: each item a task of its own
                for item in items:
                    yield (self.submit(func, *item) if star else
                           self.submit(func, item)), False

    def _imap(self, func, iterable, chunksize, timeout, ordered, star=False):
        check_chunksize(chunksize)
        self._check_open()
        chunksize = chunksize or 1
        window = max(2 * self._nworkers, _WINDOW // chunksize)
        return _IMap(self, self._units(func, iterable, chunksize, star),
                     window, ordered, timeout)

    def imap(self, func, iterable, chunksize=1, *, timeout=None):
        """func(x) for x in iterable, yielded in order as each comes in
        (with chunksize, chunks of that many items go to a worker
        together). The iterable is read a window ahead of what has been
        taken, so an endless one works; timeout bounds each wait for the
        next result (see _IMap). Closing it cancels the rest."""
        return self._imap(func, iterable, chunksize, timeout, True)

    def imap_unordered(self, func, iterable, chunksize=1, *, timeout=None):
        """As imap, but each result (or chunk) is yielded as soon as it is
        done, whichever it is."""
        return self._imap(func, iterable, chunksize, timeout, False)

    def apply_async(self, func, args=(), kwds=None, callback=None,
                    error_callback=None):
        """multiprocessing's apply_async: submit(func, *args, **kwds), with
        callback(value) or error_callback(error) once it settles (on the
        thread that runs the pool's loop then)."""
        task = self.submit(func, *args, **(kwds or {}))
        return _with_callbacks(task, callback, error_callback)

    def apply(self, func, args=(), kwds=None):
        """func(*args, **kwds) on a worker, waited for."""
        return self.submit(func, *args, **(kwds or {})).result()

    def as_completed(self, tasks, timeout=None):
        return as_completed(tasks, timeout)
