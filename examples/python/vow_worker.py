"""A vow worker in Python: serves the functions of a Python module to a vow
parent (the vow command, or any program using vow's pool), so Python
functions run in parallel across processes with no interpreter lock
between them.

    vow map --worker "python3 examples/python/vow_worker.py examples/python/tasks.py" \\
        square < numbers.jsonl
    vow map --worker "python3 -m vow_worker tasks.py" square   # installed

Every public function of the module (a name not starting with _) is
offered. A function gets the task's argument, decoded from msgpack, and
returns its result; an exception fails the task with its type, message
and traceback. vow_worker.seed() is the running task's seed. numpy arrays
and scalars (anything with .tolist()) are sent as lists and numbers; a
result that cannot be sent fails its task, naming the type.

It speaks vow's wire protocol (docs/protocol.md): 4-byte big-endian frame
lengths, one msgpack array per frame. With the msgpack module (Debian's
python3-msgpack, or pip's msgpack) it uses that; without it, a built-in
codec in this file, so any python3 will do. The channel is fd 3 (or
stdin/stdout when VOW_WORKER_CHANNEL is "stdio"); fd 1 is pointed at
stderr so a print() cannot corrupt a frame.
"""
import importlib.util
import os
import struct
import sys
import traceback

try:
    import msgpack
except ImportError:  # any python3 will do: the built-in codec below
    msgpack = None

VERSION = 1
HELLO, TASKS, RESULTS, ERROR, PROGRESS, CANCEL, PING, PONG, SHUTDOWN, MAPS = range(1, 11)
TASK_ERROR = 5  # vow_failure_kind_t
MASK = (1 << 64) - 1

_seed = 0


# ---- msgpack --------------------------------------------------------------

class CannotPack(TypeError):
    """A value with no msgpack form."""


def _default(obj):
    """numpy arrays and scalars (and anything else with .tolist()) go as
    lists and numbers; any other type is named in the task's failure."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist) and not isinstance(obj, type):
        return tolist()
    if isinstance(obj, int):
        raise CannotPack(f"the integer {obj} does not fit in 64 bits")
    kind = type(obj)
    name = kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"
    raise CannotPack(f"a value of type {name} cannot be sent "
                     "(return None, bool, int, float, str, bytes, list, "
                     "tuple, dict or a numpy value)")


# A sized type's markers: its fix form and the length below which it
# applies (None, 0: none), then its 8-, 16- and 32-bit length forms.
_HEADS = {
    "str": (0xA0, 32, 0xD9, 0xDA, 0xDB),
    "bin": (None, 0, 0xC4, 0xC5, 0xC6),
    "array": (0x90, 16, None, 0xDC, 0xDD),
    "map": (0x80, 16, None, 0xDE, 0xDF),
}


# Integer forms by width: (unsigned, signed) markers and struct format.
_INTS = ((8, (0xCC, 0xD0), "b"), (16, (0xCD, 0xD1), "h"),
         (32, (0xCE, 0xD2), "i"), (64, (0xCF, 0xD3), "q"))


def _head(kind, n):
    """The header of a str, bin, array or map of length n."""
    fix, fix_limit, m8, m16, m32 = _HEADS[kind]
    if fix is not None and n < fix_limit:
        return struct.pack("B", fix | n)
    if m8 is not None and n < 1 << 8:
        return struct.pack(">BB", m8, n)
    if n < 1 << 16:
        return struct.pack(">BH", m16, n)
    return struct.pack(">BI", m32, n)


def _pack_builtin(obj, out, depth=0):
    """msgpack for the types the protocol uses, when the msgpack module is
    not installed."""
    if depth > 512:
        raise CannotPack("the result is nested too deeply to send")
    if obj is None:
        out.append(b"\xc0")
    elif obj is True or obj is False:
        out.append(b"\xc3" if obj else b"\xc2")
    elif isinstance(obj, int):
        if 0 <= obj < 0x80:
            out.append(struct.pack("B", obj))
        elif -32 <= obj < 0:
            out.append(struct.pack("b", obj))
        elif -(1 << 63) <= obj < 1 << 64:
            # The smallest form, as msgpack's own packer writes it.
            for bits, (m_unsigned, m_signed), fmt in _INTS:
                if 0 <= obj < 1 << bits:
                    out.append(struct.pack(">B" + fmt.upper(), m_unsigned, obj))
                    break
                if -(1 << (bits - 1)) <= obj < 0:
                    out.append(struct.pack(">B" + fmt, m_signed, obj))
                    break
        else:
            raise CannotPack(f"the integer {obj} does not fit in 64 bits")
    elif isinstance(obj, float):
        out.append(b"\xcb" + struct.pack(">d", obj))
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        out.append(_head("str", len(b)))
        out.append(b)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        out.append(_head("bin", len(b)))
        out.append(b)
    elif isinstance(obj, (list, tuple)):
        out.append(_head("array", len(obj)))
        for item in obj:
            _pack_builtin(item, out, depth + 1)
    elif isinstance(obj, dict):
        out.append(_head("map", len(obj)))
        for key, value in obj.items():
            _pack_builtin(key, out, depth + 1)
            _pack_builtin(value, out, depth + 1)
    else:
        _pack_builtin(_default(obj), out, depth + 1)


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
_SIZED = {  # marker: (struct format, what follows)
    0xCC: (">B", "int"), 0xCD: (">H", "int"), 0xCE: (">I", "int"),
    0xCF: (">Q", "int"), 0xD0: (">b", "int"), 0xD1: (">h", "int"),
    0xD2: (">i", "int"), 0xD3: (">q", "int"), 0xCA: (">f", "int"),
    0xCB: (">d", "int"), 0xD9: (">B", "str"), 0xDA: (">H", "str"),
    0xDB: (">I", "str"), 0xC4: (">B", "bin"), 0xC5: (">H", "bin"),
    0xC6: (">I", "bin"), 0xDC: (">H", "array"), 0xDD: (">I", "array"),
    0xDE: (">H", "map"), 0xDF: (">I", "map"),
}


def _unpack_builtin(data, at=0):
    """Decodes one msgpack object at data[at:]; returns it and where the
    next one starts."""
    m = data[at]
    at += 1
    if m < 0x80:
        return m, at
    if m >= 0xE0:
        return m - 0x100, at
    if 0xA0 <= m < 0xC0:
        n = m & 0x1F
        return data[at:at + n].decode("utf-8", "surrogateescape"), at + n
    if 0x90 <= m < 0xA0:
        what, n = "array", m & 0x0F
    elif 0x80 <= m < 0x90:
        what, n = "map", m & 0x0F
    elif m in _FIXED:
        return _FIXED[m], at
    elif m in _SIZED:
        fmt, what = _SIZED[m]
        size = struct.calcsize(fmt)
        n = struct.unpack_from(fmt, data, at)[0]
        at += size
        if what == "int":
            return n, at
    else:
        raise ValueError(f"msgpack type 0x{m:02x} is not used by vow")
    if what == "str":
        return data[at:at + n].decode("utf-8", "surrogateescape"), at + n
    if what == "bin":
        return bytes(data[at:at + n]), at + n
    if what == "array":
        items = []
        for _ in range(n):
            item, at = _unpack_builtin(data, at)
            items.append(item)
        return items, at
    result = {}
    for _ in range(n):
        key, at = _unpack_builtin(data, at)
        value, at = _unpack_builtin(data, at)
        result[key] = value
    return result, at


def packb(obj):
    if msgpack is not None:
        try:
            return msgpack.packb(obj, use_bin_type=True, default=_default)
        except CannotPack:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise CannotPack(f"the result cannot be sent to vow: {e}") from e
    out = []
    _pack_builtin(obj, out)
    return b"".join(out)


def unpackb(data):
    if msgpack is not None:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    return _unpack_builtin(memoryview(data).tobytes())[0]


def _array_header(n):
    return _head("array", n)



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
    return (_array_header(2) + packb(RESULTS) + _array_header(len(results))
            + b"".join(results))


def main():
    global _seed
    if len(sys.argv) != 2:
        sys.exit("usage: python3 vow_worker.py MODULE(.py), or "
                 "python3 -m vow_worker MODULE(.py)")
    # Run as a script or with -m, this module is __main__: a task module's
    # `import vow_worker` must find this one, whose seed() is the task's.
    sys.modules.setdefault("vow_worker", sys.modules[__name__])
    functions = load(sys.argv[1])
    if msgpack is None and not os.environ.get("VOW_WORKER_QUIET"):
        print("vow_worker.py: no msgpack module for this python3; using the "
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
                    value = packb(fn(args))
                except CannotPack as e:  # the traceback would be ours
                    ch.write([ERROR, task_id, TASK_ERROR, 0,
                              f"the result of {name}(): {e}", None])
                    continue
                except Exception as e:  # a task's failure, not the worker's
                    text, tb = failure_of(e)
                    ch.write([ERROR, task_id, TASK_ERROR, 0, text, tb])
                    continue
                results.append(_array_header(2) + packb(task_id) + value)
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
                    [_array_header(2) + packb(chunk_id)
                     + _array_header(len(out)) + b"".join(out)]))
        # CANCEL is advisory: a Python function cannot be stopped midway,
        # and the parent kills the worker after its grace period.


if __name__ == "__main__":
    main()
