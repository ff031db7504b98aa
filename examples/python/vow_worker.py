"""A vow worker in Python: serves the functions of a Python module to a vow
parent (the vow command, or any program using vow's pool), so Python
functions run in parallel across processes with no interpreter lock
between them.

    vow map --worker "python3 examples/python/vow_worker.py examples/python/tasks.py" \\
        square < numbers.jsonl

Every public function of the module (a name not starting with _) is
offered. A function gets the task's argument, decoded from msgpack, and
returns its result; an exception fails the task with its message and
traceback. vow_worker.seed() is the running task's seed.

It speaks vow's wire protocol (docs/protocol.md) with Debian's
python3-msgpack: 4-byte big-endian frame lengths, one msgpack array per
frame. The channel is fd 3 (or stdin/stdout when VOW_WORKER_CHANNEL is
"stdio"); fd 1 is pointed at stderr so a print() cannot corrupt a frame.
"""
import importlib.util
import os
import struct
import sys
import traceback

import msgpack

VERSION = 1
HELLO, TASKS, RESULTS, ERROR, PROGRESS, CANCEL, PING, PONG, SHUTDOWN, MAPS = range(1, 11)
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
    # The task module may import vow_worker (for seed()) from beside us.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
            sys.exit("vow_worker.py: started outside a vow pool "
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
        return msgpack.unpackb(body, raw=False, strict_map_key=False)

    def write(self, message):
        body = msgpack.packb(message, use_bin_type=True)
        data = struct.pack(">I", len(body)) + body
        while data:
            data = data[os.write(self.wfd, data):]


def failure_of(e):
    return str(e) or type(e).__name__, traceback.format_exc()


def main():
    global _seed
    if len(sys.argv) != 2:
        sys.exit("usage: vow_worker.py MODULE(.py)")
    functions = load(sys.argv[1])
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
                    results.append([task_id, fn(args)])
                except Exception as e:  # a task's failure, not the worker's
                    text, tb = failure_of(e)
                    ch.write([ERROR, task_id, TASK_ERROR, 0, text, tb])
            if results:
                ch.write([RESULTS, results])
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
                        out.append(fn(item))
                except Exception as e:
                    text, tb = failure_of(e)
                    ch.write([ERROR, chunk_id, TASK_ERROR, 0,
                              f"item {len(out)} of the chunk: {text}", tb])
                    continue
                ch.write([RESULTS, [[chunk_id, out]]])
        # CANCEL is advisory: a Python function cannot be stopped midway,
        # and the parent kills the worker after its grace period.


if __name__ == "__main__":
    main()
