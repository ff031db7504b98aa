"""A vow worker in Python: serves the functions of a Python module to a vow
parent (the vow command, or any program using vow's pool), so Python
functions run in parallel across processes with no interpreter lock
between them.

    vow map --worker "python3 -m vow.worker examples/python/tasks.py" \\
        square < numbers.jsonl
    vow.Pool(module="tasks")          # a Python parent (docs/python.md)

Every public function of the module (a name not starting with _) is
offered; for a Python parent, also any function it names as
"module:qualname" or a builtin's name, imported when first asked for
(`python3 -m vow.worker --any` serves those alone). A function gets the task's argument, decoded from msgpack, and
returns its result; an exception fails the task with its type, message
and traceback. vow.worker.seed() is the running task's seed. numpy arrays
travel with their dtype and shape to a Python parent (vow/codec.py),
numpy scalars as numbers; a result that cannot be sent fails its task, naming the type.
Started by a Python parent (vow.Pool sets VOW_PYTHON_PARENT=1), a task's
argument is the list of the parent's arguments and the function gets them
spread out: pool.submit(f, a, b) calls f(a, b) (keyword arguments come as
{"args": [...], "kwargs": {...}}), and a map over "f*" calls f(*item);
for other parents numpy arrays go as nested lists.

It speaks vow's wire protocol (docs/protocol.md): 4-byte big-endian frame
lengths, one msgpack array per frame. With the msgpack module (Debian's
python3-msgpack, or pip's msgpack) it uses that; without it, a built-in
codec, so any python3 will do. The channel is fd 3 (or
stdin/stdout when VOW_WORKER_CHANNEL is "stdio"); fd 1 is pointed at
stderr so a print() cannot corrupt a frame.
"""
import base64
import builtins
import collections
import importlib.util
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
import traceback

from vow import _shm, codec
from vow.codec import CannotPack, array_header, msgpack, packb, unpackb

VERSION = 1
HELLO, TASKS, RESULTS, ERROR, PROGRESS, CANCEL, PING, PONG, SHUTDOWN, MAPS = \
    range(1, 11)
TASK_ERROR = 5  # vow_failure_kind_t
KIND_CANCELLED = 1
MASK = (1 << 64) - 1
# What one result may take (proto.h's VOWP_VALUE_MAX_BYTES and _OBJECTS):
# a frame holding it alone. A batch of results is written before it
# passes BATCH_BYTES, so it never passes a frame's limits either.
VALUE_MAX_BYTES = (64 << 20) - 64
VALUE_MAX_OBJECTS = (1 << 20) - 64
BATCH_BYTES = 1 << 19

# The running task's seed: given with a task; for an item of a map,
# derived (only when asked for) from the map's seed and the item's index.
# A chunk's items run in a C loop (list(map(...))), twice as fast as a
# Python one, so the index is read off the chunk's iterator: a list
# iterator's length hint is exactly the items it has not yet handed out.
_seed = None  # the running task's, None outside a task
_run_seed = None
_items = None  # the running chunk's iterator
_items_end = 0  # the index after its last item


def seed():
    """The seed of the task running now. Outside a task (in the parent,
    or in a worker between tasks) there is none: RuntimeError."""
    if _run_seed is None:
        if _seed is None:
            raise RuntimeError("vow.worker.seed() is called outside a task: "
                               "only a task running on a worker has a seed")
        return _seed
    return task_seed(_run_seed, _item_index())


def _item_index():
    """The index in the map of the chunk's item running now."""
    return _items_end - _items.__length_hint__() - 1


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


ANY = "--any"  # the module argument of a worker with no module of its own
_loading_main = False  # the parent's main script is being loaded


_main = None  # the parent's main script, once loaded


def _parent_main():
    """The parent's main script, loaded as __vow_main__ (as
    multiprocessing's spawn loads it as __mp_main__: its `if __name__ ==
    "__main__":` block does not run)."""
    global _loading_main, _main
    if _main is not None:
        return _main
    path = os.environ.get("VOW_MAIN_PATH")
    if not path:
        raise ImportError("the parent's main module has no file (an "
                          "interactive session or python -c): define task "
                          "functions in a module or a script")
    spec = importlib.util.spec_from_file_location("__vow_main__", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__vow_main__"] = module
    _loading_main = True
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["__vow_main__"]
        raise
    finally:
        _loading_main = False
    _main = module
    return module


class Functions(dict):
    """The functions a task may name: the module's own (offered in HELLO,
    with "*"), a builtin ("pow"), or "module:qualname" (a Python parent
    sends functions so), imported on first use; "name*" takes an item of
    argument lists (starmap). functions[name] is the function, or None
    (why[name] says why); a dict, so that a name seen before costs a
    lookup in C."""

    def __init__(self, offered, spread, any_name):
        super().__init__(offered)
        self.offered_names = sorted(offered)
        self.spread = spread
        self.any_name = any_name  # offer "*"
        self.why = {}  # name -> why it cannot be found

    def offered(self):
        return self.offered_names + (["*"] if self.any_name else [])

    def __missing__(self, name):
        if name in self.why:
            return None
        try:
            fn = self._find(name)
        except Exception as e:  # an import that fails, say
            self.why[name] = "".join(
                traceback.format_exception_only(type(e), e)).strip()
            return None
        if fn is None:
            self.why[name] = ""
        else:
            self[name] = fn
        return fn

    def _find(self, name):
        if name.endswith("*") and self.spread:
            fn = self[name[:-1]]
            return _starred(fn) if fn is not None else None
        if not self.any_name:
            return None
        if ":" not in name:
            fn = getattr(builtins, name, None)
            return fn if callable(fn) else None
        module_name, _, qualname = name.partition(":")
        qualname, _, path = qualname.partition("@")
        try:
            obj = _parent_main() if module_name == "__main__" else \
                _import(module_name, path)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            # A function of the worker's own module, loaded from a path or
            # under another name in the parent.
            obj = dict.get(self, qualname.rpartition(".")[2])
            if obj is None:
                raise
        return obj if callable(obj) else None


def _import(module_name, path):
    """The module by its name, or, when the parent loaded it from a file
    that its name does not find (path given), from that file."""
    if not path or module_name in sys.modules:
        return importlib.import_module(module_name)
    try:
        return importlib.import_module(module_name)
    except ImportError:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module


def _extend_path():
    """The parent's sys.path entries this worker lacks, so a function's
    module imports here as it did there."""
    for entry in os.environ.get("VOW_SYS_PATH", "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)


def _is_null(fd):
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
    except OSError:
        return True
    return st.st_rdev == null.st_rdev and st.st_ino == null.st_ino


class Channel:
    def __init__(self):
        mode = os.environ.get("VOW_WORKER_CHANNEL")
        if mode is None:
            sys.exit("vow.worker: started outside a vow pool "
                     "(VOW_WORKER_CHANNEL is not set)")
        # stdio: under a launcher (ssh, srun), whose side is our parent.
        self.stdio = mode == "stdio"
        if self.stdio:
            self.rfd, self.wfd = 0, os.dup(1)
        else:
            self.rfd = self.wfd = int(mode)
        self.lock = threading.RLock()  # whoever writes a frame
        self.read_lock = threading.Lock()  # whoever reads one
        self.side = None  # the side socket for segments (_shm.Side)
        os.set_blocking(self.rfd, True)
        # print() never goes into a frame (fd 1 under a launcher), nor
        # nowhere: to stderr, unless the pool gave us its stdout.
        if self.stdio or _is_null(1):
            os.dup2(2, 1)

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

    def write_packed(self, body, then=b""):
        """Writes the frame of body (none if it is empty), then the
        frames already made in then, in one write."""
        data = (struct.pack(">I", len(body)) + body if body else b"") + then
        with self.lock:  # the Reporter's thread writes too
            while data:
                data = data[os.write(self.wfd, data):]


class Reporter:
    """Results gathered for one write, and word of which task is running.

    A worker that dies in a task leaves the parent to settle every task it
    held. It can tell the one that was running from those that never
    started when the worker has said (PROGRESS 0.0, after every result
    before it) which task it started: it fails or retries that one alone
    and gives the others back untouched. Saying so costs a write, which
    for a task of microseconds costs more than the task; so it is said
    at once only after a task that took a millisecond or more, and
    otherwise by a thread once a task has run WATCH_S. A worker that dies
    sooner than that in a quick task, with finished results still
    unwritten, leaves those tasks unresolved (the parent treats them all
    as suspects)."""

    WATCH_S = 0.005
    SLOW_NS = 1_000_000
    IDLE_WATCHES = 20  # then the thread sleeps until a task starts

    def __init__(self, ch):
        self.ch = ch
        self.results = []  # packed [id, value] pairs not yet written
        self.bytes = 0  # their size
        self.running = None  # the running task's id
        self.said = None  # the last task whose start was written
        self.slow = False  # the last task took SLOW_NS or more
        self.t0 = 0
        self.parked = False  # the watch thread waits for `wake`
        self.wake = threading.Event()
        # What the watch thread read while a task ran (TASKS, MAPS,
        # SHUTDOWN, None for the end of the channel), for the main loop.
        self.pending = collections.deque()
        self.batch = ()  # the TASKS or MAPS items being run
        self.last_started = None  # the last of them started
        self.cancelled = set()  # not started, answered "cancelled"
        self.cancel_seen = False
        threading.Thread(target=self._watch, name="vow.worker-watch",
                         daemon=True).start()

    def begin(self, items):
        """A batch of tasks or chunks starts (main thread). The batch is
        published before the mark, so the watch thread never pairs this
        batch's "nothing started" with the last one's items."""
        self.batch = items
        self.last_started = None

    def start(self, task_id):
        """The task starts now, unless a CANCEL answered it first (False).
        last_started is written before cancel_seen is read, and _cancel
        writes cancel_seen before it reads last_started: one of the two
        threads sees the other, so a task never both runs and is
        answered "cancelled"."""
        self.last_started = task_id
        if self.cancel_seen:
            with self.ch.lock:
                if task_id in self.cancelled:
                    self.cancelled.discard(task_id)
                    return False
        if self.slow:
            with self.ch.lock:
                self._say_started(task_id)
        self.t0 = time.monotonic_ns()
        self.running = task_id
        if self.parked:
            self.wake.set()
        return True

    def next_message(self):
        """The next message for the main loop: one the watch thread read,
        else the channel's next (None at its end)."""
        if self.pending:
            return self.pending.popleft()
        with self.ch.read_lock:
            if self.pending:
                return self.pending.popleft()
            _spin_until_readable(self.ch.rfd)
            return self.ch.read()

    def read_ahead(self):
        """While a task runs (watch thread): reads what has come, answers
        PING and CANCELs of tasks not yet started at once (the parent takes
        a task back from a busy worker so, for an idle one), and keeps the
        rest for the main loop."""
        ch = self.ch
        if not ch.read_lock.acquire(blocking=False):
            return
        try:
            while select.select([ch.rfd], [], [], 0)[0]:
                msg = ch.read()
                if msg is None or msg[0] not in (PING, CANCEL):
                    self.pending.append(msg)
                    if msg is None:
                        return
                elif msg[0] == PING:
                    ch.write([PONG, msg[1]])
                else:
                    self.cancel(msg[1])
        finally:
            ch.read_lock.release()

    def cancel(self, task_id):
        """A CANCEL: a task received and not yet started is answered
        "cancelled before it started" now and skipped; one that runs or
        has run is let be (a Python function cannot be stopped midway; the
        parent kills the worker after its grace period)."""
        self.cancel_seen = True
        with self.ch.lock:
            if self._waiting(task_id):
                self.cancelled.add(task_id)
                self.ch.write([ERROR, task_id, KIND_CANCELLED, 0,
                               "cancelled before it started", None])

    def _waiting(self, task_id):
        last = self.last_started
        seen_last = last is None
        for item in self.batch:
            if seen_last and item[0] == task_id:
                return True
            if item[0] == last:
                seen_last = True
        return any(msg is not None and msg[0] in (TASKS, MAPS) and
                   any(item[0] == task_id for item in msg[1])
                   for msg in self.pending)

    def finish(self, result=None):
        """The running task has ended, with a packed [id, value], or with
        its ERROR written already."""
        with self.ch.lock:
            self.running = None
            if result is not None:
                if self.results and self.bytes + len(result) > BATCH_BYTES:
                    self._write_results()
                self.results.append(result)
                self.bytes += len(result)
        self.slow = time.monotonic_ns() - self.t0 >= self.SLOW_NS

    def flush(self):
        with self.ch.lock:
            if self.results:
                self._write_results()

    def _write_results(self):  # with ch.lock held
        self.ch.write_packed(results_message(self.results))
        self.results = []
        self.bytes = 0

    def _say_started(self, task_id):  # with ch.lock held
        self.ch.write_packed(
            results_message(self.results) if self.results else b"",
            started(task_id))
        self.results = []
        self.bytes = 0
        self.said = task_id

    def _watch(self):
        seen = None
        idle = 0
        while True:
            time.sleep(self.WATCH_S)
            running = self.running
            if running is None:
                idle += 1
                if idle >= self.IDLE_WATCHES:
                    self._park()
                    idle = 0
                seen = None
                continue
            idle = 0
            if running == seen:
                if _parent_at_start is not None and not self.ch.stdio \
                        and _parent_gone():
                    os.kill(os.getpid(), signal.SIGKILL)
                if running != self.said:
                    with self.ch.lock:
                        if self.running == running:
                            self._say_started(running)
                self.read_ahead()
            seen = running

    def _park(self):
        """Sleeps until a task starts: an idle worker wakes nobody. The
        flag is set before running is read, and start() sets running
        before it reads the flag, so one of them sees the other."""
        self.wake.clear()
        self.parked = True
        if self.running is None:
            self.wake.wait()
        self.parked = False


def too_big(value, side=None):
    """Why a packed result can go in no frame, or None: it fails its own
    task then, and the worker goes on. A side socket may carry more
    bytes than a frame, if not more objects."""
    if len(value) > VALUE_MAX_BYTES and side is None:
        return (f"result too big ({len(value)} bytes, "
                f"limit {VALUE_MAX_BYTES})")
    if (len(value) > VALUE_MAX_OBJECTS and
            codec.count_objects(value, VALUE_MAX_OBJECTS) >
            VALUE_MAX_OBJECTS):
        return (f"result too big (more than {VALUE_MAX_OBJECTS} objects, "
                f"limit {VALUE_MAX_OBJECTS})")
    return None


def _text(e):
    """format_exception_only's last line for e, whatever its __str__ does,
    as text that travels: a NUL or a character UTF-8 cannot hold is
    written as its escape."""
    try:
        text = traceback.format_exception_only(type(e), e)[-1].strip()
    except Exception:  # a __str__ that raises
        text = f"{type(e).__qualname__}: <exception str() failed>"
    return text.encode("utf-8", "backslashreplace").decode(
        "utf-8").replace("\0", "\\x00")


EXCEPTION_MARK = "\nvow-python-exception: "


def failure_of(e):
    """The task's failure: "Type: message", as Python prints it, and the
    traceback as the detail; for a Python parent the exception itself
    follows, pickled (base64, after EXCEPTION_MARK), so the parent raises
    it as it was raised here."""
    text = _text(e)
    try:
        tb = "".join(traceback.format_exception(type(e), e,
                                                e.__traceback__))
    except Exception:
        tb = traceback.format_exc()
    tb = tb.encode("utf-8", "backslashreplace").decode(
        "utf-8").replace("\0", "\\x00")
    if codec.arrays_as_bin:  # a Python parent
        try:
            e.__traceback__ = None  # kept out of the pickle
            tb += EXCEPTION_MARK + base64.b64encode(
                pickle.dumps(e, protocol=4)).decode("ascii")
        except Exception:  # not picklable: the parent raises TaskError
            pass
    return text, tb


def started(task_id):
    """The frame of PROGRESS 0.0 for task_id: the task starts now."""
    body = packb([PROGRESS, task_id, 0.0, ""])
    return struct.pack(">I", len(body)) + body


def results_message(results):
    """RESULTS with each [id, value] packed already: one value that cannot
    be packed fails its own task, not the batch or the worker."""
    return (array_header(2) + packb(RESULTS) + array_header(len(results))
            + b"".join(results))


def _encoding_error(e, name):
    """For a Python parent, the detail of a result that cannot be sent:
    multiprocessing's MaybeEncodingError, pickled, which the parent
    raises as multiprocessing would."""
    if not codec.arrays_as_bin:
        return None
    from multiprocessing.pool import MaybeEncodingError
    try:
        return EXCEPTION_MARK + base64.b64encode(pickle.dumps(
            MaybeEncodingError(e, f"the result of {name}()"))).decode("ascii")
    except Exception:
        return None


def _starred(fn):
    def call(args):
        return fn(*args)
    return call


# The next task that comes within this many seconds is waited for awake:
# on a virtual machine, waking from a blocking read costs tens of
# microseconds, as much as a whole round trip. Only after a batch of a
# task or two, though: one whose parent waits for each result in turn.
# After a longer batch the parent is sending many, the worker's next
# batch is on its way anyway, and the polling would take the CPU that the
# parent needs to send it.
_SPIN_S = 100e-6
_SPIN_AFTER = 2  # tasks in a batch, at most
_last_batch = 1


def _spin_until_readable(fd):
    """Polls fd for _SPIN_S after a short batch; the blocking read that
    follows waits for the rest."""
    if _last_batch > _SPIN_AFTER:
        return
    end = time.perf_counter() + _SPIN_S
    while not select.select([fd], [], [], 0)[0] and \
            time.perf_counter() < end:
        pass


def function_for(ch, reporter, functions, task_id, name):
    """functions[name]; None when there is none, the running task ended
    saying so."""
    fn = functions[name]
    if fn is None:
        why = functions.why.get(name)
        ch.write([ERROR, task_id, 12, 0,
                  f'this worker has no function named "{name}"' +
                  (f": {why}" if why else ""), None])
        reporter.finish()
    return fn


def fail(ch, reporter, task_id, message, detail=None):
    """Ends the running task with an ERROR (a task error)."""
    ch.write([ERROR, task_id, TASK_ERROR, 0, message, detail])
    reporter.finish()


def run_tasks(ch, reporter, functions, tasks, spread):
    global _seed, _run_seed, _last_batch
    _run_seed = None
    _last_batch = len(tasks)
    reporter.begin(tasks)
    if codec.shm_refs_pending:
        # Parts are mapped for the whole batch at once: the tasks that
        # share one take one mapping of it.
        tasks = [(task_id, name, args if isinstance(args, codec.ShmRef)
                  else _shared_parts(ch, task_id, args), task_seed_value)
                 for task_id, name, args, task_seed_value in tasks]
    i, n = 0, len(tasks)
    while i < n:
        kind = obj = None
        if _quick is not None and spread and not codec.shm_refs_pending:
            # Plain tasks (a call, a small result) run and are reported in
            # C; the first that is not comes back here, as it stands.
            i, kind, obj = _quick(tasks, i, functions, reporter,
                                  ch.lock.acquire, ch.lock.release,
                                  _globals, _quick_pack, _quick_limit(ch),
                                  BATCH_BYTES, reporter.SLOW_NS)
            if i == n:
                break
        task_id, name = tasks[i][0], tasks[i][1]
        if kind == _RAISED:
            _failed(ch, reporter, task_id, name, obj)
        elif kind == _RETURNED:
            _returned(ch, reporter, task_id, name, obj)
        else:
            _run_one(ch, reporter, functions, tasks[i], spread)
        i += 1
    _seed = None


# run_tasks's fast loop (vow._fastcodec.run_tasks, _fastrun.c), with a
# packer of its own; where it stopped: a task it did not start, one whose
# call raised, one whose result it left to _returned.
_quick = getattr(codec.fastcodec, "run_tasks", None)
_quick_pack = codec.python_packer() if _quick is not None else None
_RAISED, _RETURNED = 1, 2
_globals = globals()


def _quick_limit(ch):
    """The results the fast loop reports itself are shorter than this:
    within a frame, and a frame's objects, and under the side's
    threshold."""
    limit = VALUE_MAX_OBJECTS + 1
    return limit if ch.side is None else min(limit, ch.side.threshold)


def _run_one(ch, reporter, functions, task, spread):
    global _seed
    task_id, name, args, task_seed_value = task
    if not reporter.start(task_id):
        return  # cancelled before it started, and answered so
    if isinstance(args, codec.ShmRef):
        codec.shm_refs_pending -= 1
        args = _shared_args(ch, task_id, args)
    if isinstance(args, _shm.SegmentLost):
        fail(ch, reporter, task_id, str(args))
        return
    fn = function_for(ch, reporter, functions, task_id, name)
    if fn is None:
        return
    _seed = task_seed_value
    try:
        if not spread:
            result = fn(args)
        elif isinstance(args, dict):  # keyword arguments too
            result = fn(*args["args"], **args["kwargs"])
        else:
            result = fn(*args)
    except Exception as e:  # a task's failure, not the worker's
        _failed(ch, reporter, task_id, name, e)
        return
    _returned(ch, reporter, task_id, name, result)


def _failed(ch, reporter, task_id, name, e):
    """The running task raised e."""
    if isinstance(e, CannotPack):  # the traceback would be ours
        fail(ch, reporter, task_id, f"the result of {name}(): {e}",
             _encoding_error(e, name))
    else:
        fail(ch, reporter, task_id, *failure_of(e))


def _returned(ch, reporter, task_id, name, result):
    """The running task returned result: packed and reported."""
    try:
        value = packb(result)
    except Exception as e:
        _failed(ch, reporter, task_id, name, e)
        return
    why = too_big(value, ch.side)
    if why is not None:
        fail(ch, reporter, task_id, f"the result of {name}(): {why}")
        return
    if ch.side is not None and len(value) >= ch.side.threshold:
        ref = ch.side.write(value)
        if ref is None and len(value) > VALUE_MAX_BYTES:
            fail(ch, reporter, task_id, f"the result of {name}(): "
                 f"too big ({len(value)} bytes) for a frame, and no "
                 "shared-memory segment could be made for it")
            return
        value = ref or value
    reporter.finish(array_header(2) + packb(task_id) + value)


def _shared_args(ch, task_id, ref):
    """A task's arguments from the segment its reference names (or the
    SegmentLost that fails the task)."""
    try:
        if ch.side is None:
            raise _shm.ShmError("a reference, and no side socket")
        return ch.side.read(*ref, codec.unpack_shared)
    except _shm.SegmentLost as e:
        return e  # the task fails, saying so
    except (_shm.ShmError, OSError, ValueError) as e:
        _broken_by_parent(task_id, e)


def _broken_by_parent(task_id, e):
    """A reference to no usable segment breaks the protocol: the worker
    says so and ends, as for any other."""
    print(f"vow.worker: protocol error from the parent: task {task_id}"
          f" names shared memory: {e}", file=sys.stderr, flush=True)
    os._exit(3)


def _shared_parts(ch, task_id, args):
    """args with each reference inside them (a part: docs/protocol.md,
    "Parts") replaced by the value it stands for, decoded from its
    segment as _shared_args does."""
    lost = []

    def walk(x):
        if isinstance(x, codec.ShmRef):
            codec.shm_refs_pending -= 1
            try:
                return ch.side.read_part(*x)
            except _shm.SegmentLost as e:  # the rest are taken all the same
                lost.append(e)
                return None
        if type(x) is list:
            return [walk(v) for v in x]
        if type(x) is dict:
            return {walk(k): walk(v) for k, v in x.items()}
        if type(x) is tuple:
            return tuple(walk(v) for v in x)
        return x
    try:
        if ch.side is None:
            raise _shm.ShmError("a reference, and no side socket")
        args = walk(args)
        return lost[0] if lost else args
    except (_shm.ShmError, OSError, ValueError) as e:
        _broken_by_parent(task_id, e)


def run_chunks(ch, reporter, functions, chunks):
    """Map chunks: each item's result, packed as one array."""
    global _run_seed, _items, _items_end, _last_batch
    _last_batch = sum(len(chunk[2]) for chunk in chunks)
    reporter.begin(chunks)
    for chunk_id, name, items, run_seed, first in chunks:
        if not reporter.start(chunk_id):
            continue
        fn = function_for(ch, reporter, functions, chunk_id, name)
        if fn is None:
            continue
        _run_seed = run_seed
        _items = iter(items)
        _items_end = first + len(items)
        try:
            if _map_packed is not None:
                # Called and packed in C, as packb(out) would pack them.
                out = []
                packed = _map_packed(fn, _items, out, _chunk_pack())
            else:
                out, packed = list(map(fn, _items)), None
        except Exception as e:
            text, tb = failure_of(e)
            fail(ch, reporter, chunk_id,
                 f"item {_item_index() - first} of the chunk: {text}", tb)
            continue
        try:
            if packed is None:
                packed = packb(out)
        except CannotPack:
            # Which item: the first whose result does not pack.
            k, e = next((k, e) for k, e in enumerate(map(_pack_error, out))
                        if e is not None)
            fail(ch, reporter, chunk_id,
                 f"item {k} of the chunk: the result of {name}(): {e}")
            continue
        why = too_big(packed)
        if why is not None:
            # An item too big alone, or the items together.
            k, item_why = next(((k, w) for k, w in enumerate(
                too_big(packb(v)) for v in out) if w is not None),
                (None, None))
            fail(ch, reporter, chunk_id,
                 f"item {k} of the chunk: the result of {name}(): {item_why}"
                 if k is not None else
                 f"the chunk's results: the results of {name}(): {why}")
            continue
        reporter.finish(array_header(2) + packb(chunk_id) + packed)
    _run_seed = None


_map_packed = getattr(codec.fastcodec, "map_packed", None)
_chunk_packer = None


def _chunk_pack():
    """What packs a chunk's result that map_packed does not pack itself,
    for this worker's parent."""
    global _chunk_packer
    if _chunk_packer is None:
        _chunk_packer = codec.python_packer() if codec.python_peer else \
            codec.packer()
    return _chunk_packer


def _pack_error(value):
    """Why value cannot be packed (a CannotPack), or None if it can."""
    try:
        packb(value)
    except CannotPack as e:
        return e
    return None


PR_SET_PDEATHSIG = 1
# The parent-death signal (VOW__PARENT_DEATH_SIGNAL in base/os.h).
PARENT_DEATH_SIGNAL = signal.SIGRTMIN + 6 if hasattr(signal, "SIGRTMIN") \
    else signal.SIGKILL
# A worker that can never serve (its module does not import) exits with
# this before its HELLO, so the pool does not start it again
# (VOW_WORKER_EXIT_CANNOT_SERVE in vow/worker.h).
EXIT_CANNOT_SERVE = 78
HANGUP_POLL_S = 0.4


_parent_at_start = None


def _parent_gone():
    return os.getppid() != _parent_at_start


def _on_parent_death_signal(signum, frame):
    # The kernel says the thread that started us has ended: the parent
    # process may live on (it drives its pool from any thread).
    if _parent_gone():
        os.kill(os.getpid(), signal.SIGKILL)


def _die_with_parent():
    """Ends this worker with its parent, as the C worker ends: the
    kernel's parent-death signal for a local worker, sent when the thread
    that started us ends, which ends us only if the parent process is gone
    (the watch thread checks too while a task runs, for a task deep in C
    code that would hold the handler off); one under a launcher (ssh, the
    stdio channel), whose parent is the launcher's side, watches its
    channel's hang-up (_watch_hangup)."""
    global _parent_at_start
    _parent_at_start = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            signal.signal(PARENT_DEATH_SIGNAL, _on_parent_death_signal)
            ctypes.CDLL(None, use_errno=True).prctl(
                PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
        except (OSError, AttributeError, ValueError):
            pass
    parent = os.environ.get("VOW_PARENT_PID")
    if parent and parent.isdigit() and int(parent) != os.getppid():
        sys.exit(f"vow.worker: parent {parent} is gone")


def _heartbeat(ch, every_s):
    """Says the worker is alive (an unasked PONG, token 0) every every_s
    seconds, from a thread: a task that never returns to the loop cannot
    stop it, so only a worker that is gone, frozen or cut off goes silent
    (the pool's liveness bound, VOW_HEARTBEAT_MS, under launchers)."""
    beat = packb([PONG, 0])
    while True:
        try:
            ch.write_packed(beat)
        except OSError:
            os._exit(0)  # nobody is left to read what we would send
        time.sleep(every_s)


def _watch_hangup(fd):
    """Waits for the channel to hang up (no byte is read: only the hang-up
    is asked for), in slices, so that the channel is not held open by the
    wait, and ends the process then: nobody is left to read a result."""
    import select
    try:
        first = os.fstat(fd)
        poller = select.poll()
        poller.register(fd, getattr(select, "POLLRDHUP", 0x2000))
    except OSError:
        return
    while True:
        events = poller.poll(HANGUP_POLL_S * 1000)
        try:
            now = os.fstat(fd)
        except OSError:
            return
        if (now.st_ino, now.st_dev) != (first.st_ino, first.st_dev):
            return
        for _, ev in events:
            if ev & select.POLLNVAL:
                return
            if ev & (select.POLLHUP | select.POLLERR |
                     getattr(select, "POLLRDHUP", 0x2000)):
                os._exit(0)


def _cannot_serve(why):
    """Ends a worker that can never serve (in an except clause): the
    traceback, then a last line the pool's failures quote, and the exit
    status that tells the pool not to start it again."""
    kind, e = sys.exc_info()[:2]
    traceback.print_exc()
    print(f"vow.worker: {why}: "
          f"{''.join(traceback.format_exception_only(kind, e)).strip()}",
          file=sys.stderr)
    sys.stderr.flush()
    os._exit(EXIT_CANNOT_SERVE)


def _run_initializer(functions):
    """The pool's initializer(*initargs) (VOW_INITIALIZER), before HELLO:
    one that raises leaves this worker unable to serve."""
    spec = os.environ.get("VOW_INITIALIZER")
    if not spec:
        return
    name, args = pickle.loads(base64.b64decode(spec))
    fn = functions[name]
    if fn is None:
        why = functions.why.get(name)
        raise LookupError(f'no function named "{name}"' +
                          (f": {why}" if why else ""))
    fn(*args)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: python3 -m vow.worker MODULE(.py) | {ANY}")
    _die_with_parent()  # before the module's import, however long it takes
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
    codec.python_peer = spread  # tuples stay tuples; the rest pickled
    _extend_path()
    try:
        # A Python parent may name any function; to other parents (the
        # vow command) the module's functions are the ones offered.
        functions = Functions({} if sys.argv[1] == ANY else
                              load(sys.argv[1]), spread,
                              spread or sys.argv[1] == ANY)
    except (Exception, SystemExit):  # a sys.exit() at import too
        _cannot_serve(f"cannot serve {sys.argv[1]}")
    try:
        _run_initializer(functions)
    except (Exception, SystemExit):
        _cannot_serve("cannot serve: the initializer failed")
    if msgpack is None and not os.environ.get("VOW_WORKER_QUIET"):
        print("vow.worker: no msgpack module for this python3; using the "
              "built-in codec, which is slower (apt-get install "
              "python3-msgpack, or pip install msgpack)", file=sys.stderr)
    ch = Channel()
    ch.side = _shm.Side.from_environment(ch.stdio, msgpack is not None)
    if ch.stdio:
        # Under a launcher: the parent-death signal is the launcher's.
        threading.Thread(target=_watch_hangup, args=(ch.rfd,), daemon=True,
                         name="vow hang-up watch").start()
    ch.write([HELLO, VERSION, os.getpid(), functions.offered()])
    every_ms = os.environ.get("VOW_HEARTBEAT_MS", "")
    if every_ms.isdigit() and int(every_ms) > 0:
        threading.Thread(target=_heartbeat, args=(ch, int(every_ms) / 1000),
                         daemon=True, name="vow heartbeat").start()
    reporter = Reporter(ch)
    while True:
        msg = reporter.next_message()
        if msg is None or msg[0] == SHUTDOWN:
            reporter.flush()
            return
        kind = msg[0]
        if kind == PING:
            ch.write([PONG, msg[1]])
        elif kind == TASKS:
            run_tasks(ch, reporter, functions, msg[1], spread)
        elif kind == MAPS:
            run_chunks(ch, reporter, functions, msg[1])
        elif kind == CANCEL:
            reporter.cancel(msg[1])
        reporter.flush()


if __name__ == "__main__":
    main()
