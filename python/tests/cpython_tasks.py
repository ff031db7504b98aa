"""The task functions of CPython 3.11's test_concurrent_futures.py and
_test_multiprocessing.py (_TestPool*), for their cases ported onto vow
(test_cpython_futures.py, test_cpython_pool.py). They go to the workers
by name: this module's name and theirs."""
import os
import time


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


def sleep_and_raise(t):
    time.sleep(t)
    raise Exception("this is an exception")


def sleep_and_print(t, msg):
    time.sleep(t)
    print(msg, flush=True)


def sqr(x, wait=0.0):
    time.sleep(wait)
    return x * x


def identity(x):
    return x


def raise_large_valuerror(wait):
    time.sleep(wait)
    raise ValueError("x" * 1024**2)


def raising():
    raise KeyError("key")


def unpickleable_result():
    return lambda: 42


def raise_runtime_error():
    raise RuntimeError(123)  # some comment


def wrapped_exception():
    raise RuntimeError("foo")


def acquire_then_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


INITIALIZER_STATUS = "uninitialized"


def init(x):
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = x


def get_init_status():
    return INITIALIZER_STATUS


def init_fail():
    raise ValueError("error in initializer")


def exit_now():
    os._exit(1)


def kill_self():
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


class SayWhenError(ValueError):
    pass


def exception_throwing_generator(total, when):
    if when == -1:
        raise SayWhenError("Somebody said when")
    for i in range(total):
        if i == when:
            raise SayWhenError("Somebody said when")
        yield i


class MyObject(object):
    def my_method(self):
        pass


def make_dummy_object(_):
    return MyObject()


class CountedObject(object):
    n_instances = 0

    def __new__(cls):
        cls.n_instances += 1
        return object.__new__(cls)

    def __del__(self):
        type(self).n_instances -= 1


class StrRaises(ValueError):
    def __str__(self):
        raise RuntimeError("no text")


def raise_str_raises():
    raise StrRaises("hidden")
