"""The functions bench/python_parent.py runs on every pool: trivial, so
what is measured is the pool, not the work."""


def noop(*_):
    return None


def echo(x):
    return x


def total(a):
    """The sum of an array: a reduction that reads every byte."""
    return float(a.sum())


def sum_shared(ref):
    """The sum of an array in a multiprocessing.shared_memory block."""
    from multiprocessing import shared_memory

    import numpy as np
    name, shape, dtype = ref
    block = shared_memory.SharedMemory(name=name)
    try:
        view = np.ndarray(shape, np.dtype(dtype), buffer=block.buf)
        total = float(view.sum())
        del view
        return total
    finally:
        block.close()
