"""Task functions the Python package's tests run on vow.worker."""
import os
import signal
import threading
import time


def add(a, b):
    return a + b


def scale(x, factor=1, offset=0):
    return x * factor + offset


def square(x):
    return x * x


def fail(message):
    raise ValueError(message)


def sleep_then(value, seconds):
    time.sleep(seconds)
    return value


def mark_then_sleep(path, seconds):
    """Makes the file path (it has started), then sleeps."""
    open(path, "w").close()
    time.sleep(seconds)
    return "woke"


def pid():
    return os.getpid()


def kill_myself():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_myself_after(seconds):
    time.sleep(seconds)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_myself_once(marker):
    """SIGKILLs its worker the first time (marker: a file path it makes),
    returns "survived" the next."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def echo(x):
    return x


def describe(array):
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "sum": float(array.sum())}


def array_view(array):
    """How a worker holds an array: [writeable, its memory's kind, sum]."""
    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return [bool(array.flags.writeable), type(base).__name__,
            float(array.sum())]


def unsendable():
    return threading.Lock()  # no msgpack form, and it does not pickle


def typed_values():
    """Values msgpack has no form for, which a Python parent gets back as
    they were: a tuple, a set, a big int, a datetime."""
    import datetime
    return ((1, 2), {3}, 1 << 80, datetime.date(2026, 12, 7))


def my_seed(_=None):
    import vow.worker
    return vow.worker.seed()


def wait_for_file(value, path):
    """value, once path exists ("" for none)."""
    while path and not os.path.exists(path):
        time.sleep(0.01)
    return value


def wait_for_file_item(item):
    return wait_for_file(*item)


def pid_of(_):
    return os.getpid()


class _StrRaises(ValueError):
    def __str__(self):
        raise RuntimeError("no text")


def raise_odd(how):
    """An exception whose text is not plain: a NUL in it, a character
    UTF-8 cannot hold, or a __str__ that raises."""
    if how == "nul":
        raise ValueError("a\x00b")
    if how == "not utf-8":
        raise ValueError("bad \udcff byte")
    raise _StrRaises()


def fail_at(item, bad):
    """item, or a ValueError when item is bad."""
    if item == bad:
        raise ValueError(f"item {item} is bad")
    return item


_kept = []


def segments_mapped():
    """The distinct shared-memory segments this worker has mapped."""
    with open("/proc/self/maps") as maps:
        return len({line.split()[4] for line in maps
                    if "/memfd:vow" in line})


def keep(array, k=0):
    """Keeps array (so a later task's could be another mapping of it);
    (the segments mapped now, array's sum + k)."""
    _kept.append(array)
    return segments_mapped(), float(array.sum()) + k


def forget():
    """Lets go of what keep kept; the segments mapped then."""
    import gc
    _kept.clear()
    gc.collect()
    return segments_mapped()


def nofile_to_lowest_free():
    """This worker may open no more descriptors (its soft limit set to
    the lowest free one); its pid."""
    import resource
    lowest = os.dup(0)
    os.close(lowest)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))
    return os.getpid(), soft


def nofile_back(soft):
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return os.getpid()


def address_space_to(extra_mib):
    """This worker's address space capped at what it uses now plus
    extra_mib (None: uncapped again); its pid."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if extra_mib is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return os.getpid()
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) for line in status
                  if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS,
                       ((vm + extra_mib * 1024) * 1024, hard))
    return os.getpid()
