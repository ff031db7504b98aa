"""The functions bench/python_parent.py runs on every pool: trivial, so
what is measured is the pool, not the work."""


def noop(*_):
    return None


def echo(x):
    return x
