"""A vow worker in Python: serves the functions of a Python module to a vow
parent (the vow command, or any program using vow's pool), so Python
functions run in parallel across processes with no interpreter lock
between them.

    vow map --worker "python3 -m vow.worker examples/python/tasks.py" \\
        square < numbers.jsonl
    vow.Pool(module="tasks")          # a Python parent (docs/python.md)

Every public function of the module (a name not starting with _) is
offered. A function gets the task's argument, decoded from msgpack, and
returns its result; an exception fails the task with its type, message
and traceback. vow.worker.seed() is the running task's seed. numpy arrays
travel with their dtype and shape to a Python parent (vow/codec.py),
numpy scalars as numbers; a result that cannot be sent fails its task, naming the type.
Started by a Python parent (vow.Pool sets VOW_PYTHON_PARENT=1), a task's
argument is the list of the parent's arguments and the function gets them
spread out: pool.submit(f, a, b) calls f(a, b); for other parents numpy
arrays go as nested lists.

It speaks vow's wire protocol (docs/protocol.md): 4-byte big-endian frame
lengths, one msgpack array per frame. With the msgpack module (Debian's
python3-msgpack, or pip's msgpack) it uses that; without it, a built-in
codec, so any python3 will do. The channel is fd 3 (or
stdin/stdout when VOW_WORKER_CHANNEL is "stdio"); fd 1 is pointed at
stderr so a print() cannot corrupt a frame.
"""
import importlib.util
import os
import struct
import sys
import traceback

from vow import codec
from vow.codec import CannotPack, array_header, msgpack, packb, unpackb

VERSION = 1
HELLO, TASKS, RESULTS, ERROR, PROGRESS, CANCEL, PING, PONG, SHUTDOWN, MAPS = \
    range(1, 11)
TASK_ERROR = 5  # vow_failure_kind_t
MASK = (1 << 64) - 1

_seed = 0


def seed():
    """The seed of the task running now."""
    return _seed


def task_seed(run_seed, index):
    """vowp_task_seed: splitmix64, the same seed the C side derives."""
    z = (run_seed + (index + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def load(path):
    if path.endswith(".py"):
        spec = importlib.util.spec_from_file_location("vow_tasks", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(path)
    return {name: f for name, f in vars(module).items()
            if callable(f) and not name.startswith("_")
            and getattr(f, "__module__", None) == module.__name__}


class Channel:
    def __init__(self):
        mode = os.environ.get("VOW_WORKER_CHANNEL")
        if mode is None:
            sys.exit("vow.worker: started outside a vow pool "
                     "(VOW_WORKER_CHANNEL is not set)")
        if mode == "stdio":
            self.rfd, self.wfd = 0, os.dup(1)
        else:
            self.rfd = self.wfd = int(mode)
        os.set_blocking(self.rfd, True)
        os.dup2(2, 1)  # print() goes to stderr, never into a frame

    def read_exact(self, n):
        chunks = []
        while n:
            b = os.read(self.rfd, min(n, 1 << 20))
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def read(self):
        head = self.read_exact(4)
        if head is None:
            return None
        body = self.read_exact(struct.unpack(">I", head)[0])
        if body is None:
            return None
        return unpackb(body)

    def write(self, message):
        self.write_packed(packb(message))

    def write_packed(self, body):
        data = struct.pack(">I", len(body)) + body
        while data:
            data = data[os.write(self.wfd, data):]


def failure_of(e):
    """The task's failure: "Type: message", as Python prints it, and the
    traceback as the detail."""
    text = traceback.format_exception_only(type(e), e)[-1].strip()
    return text, traceback.format_exc()


def results_message(results):
    """RESULTS with each [id, value] packed already: one value that cannot
    be packed fails its own task, not the batch or the worker."""
    return (array_header(2) + packb(RESULTS) + array_header(len(results))
            + b"".join(results))


def main():
    global _seed
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m vow.worker MODULE(.py)")
    # Run with -m, this module is __main__: a task module's
    # `import vow.worker` (or the older `import vow_worker`) must find this
    # one, whose seed() is the task's.
    this = sys.modules[__name__]
    sys.modules.setdefault("vow.worker", this)
    sys.modules.setdefault("vow_worker", this)
    if not hasattr(sys.modules["vow"], "worker"):
        sys.modules["vow"].worker = this
    # A Python parent (vow.Pool) sends a call's arguments as a list to
    # spread, and takes numpy arrays back as arrays; any other parent
    # gets one argument and arrays as lists.
    spread = os.environ.get("VOW_PYTHON_PARENT") == "1"
    codec.arrays_as_bin = spread
    functions = load(sys.argv[1])
    if msgpack is None and not os.environ.get("VOW_WORKER_QUIET"):
        print("vow.worker: no msgpack module for this python3; using the "
              "built-in codec, which is slower (apt-get install "
              "python3-msgpack, or pip install msgpack)", file=sys.stderr)
    ch = Channel()
    ch.write([HELLO, VERSION, os.getpid(), sorted(functions)])
    while True:
        msg = ch.read()
        if msg is None or msg[0] == SHUTDOWN:
            return
        kind = msg[0]
        if kind == PING:
            ch.write([PONG, msg[1]])
        elif kind == TASKS:
            results = []
            for task_id, name, args, task_seed_value in msg[1]:
                fn = functions.get(name)
                if fn is None:
                    ch.write([ERROR, task_id, 12, 0,
                              f'this worker has no function named "{name}"', None])
                    continue
                _seed = task_seed_value
                try:
                    value = packb(fn(*args) if spread else fn(args))
                except CannotPack as e:  # the traceback would be ours
                    ch.write([ERROR, task_id, TASK_ERROR, 0,
                              f"the result of {name}(): {e}", None])
                    continue
                except Exception as e:  # a task's failure, not the worker's
                    text, tb = failure_of(e)
                    ch.write([ERROR, task_id, TASK_ERROR, 0, text, tb])
                    continue
                results.append(array_header(2) + packb(task_id) + value)
            if results:
                ch.write_packed(results_message(results))
        elif kind == MAPS:
            for chunk_id, name, items, run_seed, first in msg[1]:
                fn = functions.get(name)
                if fn is None:
                    ch.write([ERROR, chunk_id, 12, 0,
                              f'this worker has no function named "{name}"', None])
                    continue
                out = []
                try:
                    for k, item in enumerate(items):
                        _seed = task_seed(run_seed, first + k)
                        out.append(packb(fn(item)))
                except CannotPack as e:
                    ch.write([ERROR, chunk_id, TASK_ERROR, 0,
                              f"item {len(out)} of the chunk: the result of "
                              f"{name}(): {e}", None])
                    continue
                except Exception as e:
                    text, tb = failure_of(e)
                    ch.write([ERROR, chunk_id, TASK_ERROR, 0,
                              f"item {len(out)} of the chunk: {text}", tb])
                    continue
                ch.write_packed(results_message(
                    [array_header(2) + packb(chunk_id)
                     + array_header(len(out)) + b"".join(out)]))
        # CANCEL is advisory: a Python function cannot be stopped midway,
        # and the parent kills the worker after its grace period.


if __name__ == "__main__":
    main()
