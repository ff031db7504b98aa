"""numpy arrays both ways: msgpack bin with dtype and shape."""
import numpy as np


def test_arrays_round_trip(pool):
    for a in (np.arange(12.0).reshape(3, 4),
              np.arange(6, dtype=np.int32).reshape(2, 3, 1),
              np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
              np.zeros((0, 5), dtype=np.uint8)):
        b = pool.submit("echo", a).result(timeout=30)
        assert isinstance(b, np.ndarray)
        assert b.dtype == a.dtype and b.shape == a.shape
        assert np.array_equal(a, b)
        b[...] = 0 if b.size else b  # writable


def test_worker_sees_dtype_and_shape(pool):
    a = np.ones((4, 5), dtype=">f4")  # big-endian survives
    d = pool.submit("describe", a).result(timeout=30)
    assert d == {"dtype": ">f4", "shape": [4, 5], "sum": 20.0}


def test_non_contiguous_and_scalars(pool):
    a = np.arange(20).reshape(4, 5)[:, ::2]
    assert np.array_equal(pool.submit("echo", a).result(timeout=30), a)
    assert pool.submit("square", np.int64(7)).result(timeout=30) == 49
    assert pool.map("square", np.arange(5)) == [0, 1, 4, 9, 16]
