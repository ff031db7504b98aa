"""Pool.share's handle: a value written once into shared memory, which
any number of tasks' arguments then name instead of carrying it."""


class Shared:
    """A value in shared memory, made by Pool.share (docs/python.md, "Big
    arrays"). Put it in a task's arguments where the value would go, at
    any depth, in as many tasks as needed: a local worker is sent its
    segment, maps it once for all the tasks it holds, and the function
    receives the value (a numpy array as a read-only view of the
    mapping). Workers under a launcher get the value's bytes instead.
    The memory goes when this handle is closed (or collected) and the
    last task holding it is over; close() is safe while tasks run."""

    __slots__ = ("_value", "nbytes", "__weakref__")

    def __init__(self, value, nbytes):
        self._value = value  # a vow_value_t, this handle's reference
        self.nbytes = nbytes

    def value(self):
        """The value, decoded from the shared memory (a copy)."""
        import ctypes
        from . import _lib, codec
        if self._value is None:
            raise ValueError("vow.Shared: closed")
        length = ctypes.c_size_t(0)
        at = _lib.value_bytes(self._value, ctypes.byref(length))
        return codec.unpackb(ctypes.string_at(at, length.value))

    def close(self):
        """Gives up this handle's reference to the memory."""
        value, self._value = self._value, None
        if value:
            from . import _lib  # not at import: workers have no libvow
            _lib.value_release(value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):
        raise TypeError("a vow.Shared goes in a vow task's arguments; it "
                        "cannot be pickled")

    def __repr__(self):
        state = "closed" if self._value is None else f"{self.nbytes} bytes"
        return f"<vow.Shared {state}>"
