"""map, starmap, imap and their kin: an iterable cut into slices, each
slice one vow_pool_map (run in chunks on the workers), sent a few ahead
of what has been taken."""
import itertools

from . import _lib
from ._options import check_chunksize
from ._submit import _fn_name
from ._task import _MapTask, _slice_values, _with_callbacks, as_completed

_SLICE_MIN, _SLICE_MAX = 1024, 16384  # items per vow_pool_map of a map


class Mapping:
    """Pool's map half, and multiprocessing's apply."""

    def _map_slices(self, fn, iterable, star=False):
        """Yields (index of its first item, its Task) for consecutive
        slices of iterable, each one vow_pool_map (run in chunks on the
        workers), about 8 slices per worker: the workers start on the
        first while the next are packed, and each slice's results are
        decoded as it arrives, not all at the end. With star, each item is
        a sequence of arguments."""
        name = _fn_name(fn) + (b"*" if star else b"")
        try:
            n = len(iterable)
        except TypeError:
            n = None
        size = _SLICE_MAX if n is None else \
            min(_SLICE_MAX, max(_SLICE_MIN, -(-n // (8 * self._nworkers))))
        it = iter(iterable)
        first = 0
        while True:
            items = list(itertools.islice(it, size))
            if not items:
                return
            task = self._watch(_lib.pool_map(self._pool, name,
                                             self._value(items)))
            if self._driver is None:
                _lib.uv_run(self._loop, _lib.UV_RUN_NOWAIT)  # sends it
            yield first, task
            first += len(items)

    def _start_map(self, fn, iterables, star=False):
        self._check_open()
        self._flush()
        if not iterables:
            raise TypeError("map needs at least one iterable")
        if len(iterables) > 1:  # fn(x, y, ...) over zip(xs, ys, ...)
            return self._map_slices(fn, zip(*iterables), True)
        return self._map_slices(fn, iterables[0], star)

    def map_async(self, fn, *iterables, chunksize=None, callback=None,
                  error_callback=None):
        """A Task whose value is [fn(x) for x in iterable] (with several
        iterables, fn(x, y, ...) over them in step); it fails with the
        first item's failure ("map item K: ..."), and the rest is then
        cancelled. vow sizes the chunks itself: chunksize is accepted, as
        multiprocessing and concurrent.futures take it, and not needed."""
        check_chunksize(chunksize)
        task = _MapTask(self, list(self._start_map(fn, iterables)))
        return _with_callbacks(task, callback, error_callback)

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        """[fn(x) for x in iterable] on the workers, in order (with several
        iterables, fn(x, y, ...) over them in step)."""
        return self.map_async(fn, *iterables,
                              chunksize=chunksize).result(timeout)

    def starmap_async(self, fn, iterable, chunksize=None, callback=None,
                      error_callback=None):
        """map_async of fn(*args) for each args in iterable."""
        check_chunksize(chunksize)
        task = _MapTask(self, list(self._start_map(fn, (iterable,), True)))
        return _with_callbacks(task, callback, error_callback)

    def starmap(self, fn, iterable, chunksize=None, timeout=None):
        """[fn(*args) for args in iterable] on the workers, in order."""
        return self.starmap_async(fn, iterable,
                                  chunksize=chunksize).result(timeout)

    def imap(self, fn, *iterables, chunksize=None, timeout=None):
        """fn(x) for x in iterable, yielded in order as they come in. The
        iterable is read and sent a few slices ahead of what has been
        yielded (two per worker), so an endless one works; timeout
        bounds each wait for the next slice. Raises the first failure
        ("map item K: ..."); closing the generator cancels the rest."""
        check_chunksize(chunksize)
        return self._ahead(fn, iterables, timeout,
                           lambda ahead: ahead.pop(0))

    def imap_unordered(self, fn, *iterables, chunksize=None, timeout=None):
        """As imap, but each slice's results are yielded as soon as that
        slice is done, whichever it is."""
        check_chunksize(chunksize)

        def first_done(ahead):
            def find():
                return next((k for k, (_, task) in enumerate(ahead)
                             if task._done), None)
            self._wait(lambda: find() is not None, timeout)
            return ahead.pop(find())
        return self._ahead(fn, iterables, timeout, first_done)

    def _ahead(self, fn, iterables, timeout, take):
        """The values of a map's slices, sent two per worker ahead of what
        has been yielded, each yielded slice the one take(ahead) picks."""
        ahead = []
        try:
            for part in self._start_map(fn, iterables):
                ahead.append(part)
                if len(ahead) >= 2 * self._nworkers:
                    yield from _slice_values(take(ahead), timeout)
            while ahead:
                yield from _slice_values(take(ahead), timeout)
        finally:
            for _, task in ahead:
                task.cancel()

    def apply_async(self, fn, args=(), kwds=None, callback=None,
                    error_callback=None):
        """multiprocessing's apply_async: submit(fn, *args, **kwds), with
        callback(value) or error_callback(error) once it settles (run
        where the pool's loop runs, not on another thread)."""
        task = self.submit(fn, *args, **(kwds or {}))
        return _with_callbacks(task, callback, error_callback)

    def apply(self, fn, args=(), kwds=None):
        """fn(*args, **kwds) on a worker, waited for."""
        return self.submit(fn, *args, **(kwds or {})).result()

    def as_completed(self, tasks, timeout=None):
        return as_completed(tasks, timeout)
