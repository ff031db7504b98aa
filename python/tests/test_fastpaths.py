"""vow._fastcodec's paths in C against the Python they stand for. A
Python worker's task loop (run_tasks) against the same loop in Python
(VOW_FASTCODEC=0): one batch holding every kind of task it hands back (a
call that raises, keyword arguments, no such function, a result it will
not pack, a big result, a slow task and the one after it) gives the same
frames from a real worker either way. A pool's submit and settle (Quick)
beside Submitting's: the same records, tasks and results."""
import os
import struct
import subprocess
import sys
import threading

import pytest

from vow import codec
from vow.worker import (ERROR, HELLO, PROGRESS, RESULTS, SHUTDOWN, TASKS,
                        TASK_ERROR)

if codec.fastcodec is None:
    if os.environ.get("VOW_FASTCODEC_BUILT") == "1":
        raise AssertionError("vow._fastcodec was built but does not load")
    pytest.skip("vow._fastcodec is not built here (no python3-dev)",
                allow_module_level=True)

MODULE = '''
import time

import vow.worker


def add(a, b=0):
    return a + b


def boom(n):
    raise ValueError(f"boom {n}")


def unpicklable():
    return lambda: 0


def big(n):
    return b"x" * n


def nap(s):
    time.sleep(s)
    return s


def seed_of():
    return vow.worker.seed()


def as_tuple(*xs):
    return xs
'''

BIG = 2 << 20  # past the fast loop's limit (a frame's objects)
# [id, name, args, seed]: what a Python parent sends.
BATCH = [
    [1, "add", [1, 2], 11],
    [2, "boom", [2], 12],
    [3, "add", {"args": [3], "kwargs": {"b": 4}}, 13],
    [4, "missing", [], 14],
    [5, "unpicklable", [], 15],
    [6, "big", [BIG], 16],
    [7, "seed_of", [], 17],
    [8, "nap", [0.003], 18],  # past Reporter.SLOW_NS: the next is said
    [9, "as_tuple", [1, "two", None], 19],
    [10, "add", [2**62, 2**62], 20],  # a result past int64 is pickled
] + [[100 + i, "add", [i, i], i] for i in range(200)] + \
    [[400 + i, "seed_of", [], 1000 + i] for i in range(50)]


def frames(data):
    at = 0
    while at < len(data):
        (n,) = struct.unpack_from(">I", data, at)
        yield codec.unpackb(data[at + 4:at + 4 + n])
        at += 4 + n


def run_batch(tmp_path, fast):
    module = tmp_path / "loop_tasks.py"
    module.write_text(MODULE)
    env = dict(os.environ, VOW_WORKER_CHANNEL="stdio", VOW_WORKER_QUIET="1",
               VOW_PYTHON_PARENT="1", VOW_FASTCODEC="1" if fast else "0")
    body = codec.msgpack.packb([TASKS, BATCH], use_bin_type=True)
    stop = codec.msgpack.packb([SHUTDOWN])
    err = tmp_path / f"stderr.{int(fast)}"
    with open(err, "wb") as stderr:
        # stdin stays open until the worker ends: a stdio worker takes its
        # channel's hang-up for its launcher's end.
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys, vow.worker as w; "
             "assert (w._quick is not None) == (sys.argv[1] == '1'); "
             "sys.argv[1:] = sys.argv[2:]; w.main()",
             "1" if fast else "0", str(module)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=stderr)
        proc.stdin.write(struct.pack(">I", len(body)) + body +
                         struct.pack(">I", len(stop)) + stop)
        proc.stdin.flush()
        data = proc.stdout.read()
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, err.read_text()
    out = list(frames(data))
    assert out[0][0] == HELLO
    return out[1:]


def settled(out):
    """{task id: ("value", v) or ("error", kind, message, the detail's
    last line)} and the ids said started (PROGRESS 0.0)."""
    by_id, started = {}, []
    for msg in out:
        if msg[0] == RESULTS:
            for task_id, value in msg[1]:
                assert task_id not in by_id
                by_id[task_id] = ("value", value)
        elif msg[0] == ERROR:
            _, task_id, kind, _, message, detail = msg
            assert task_id not in by_id
            # The traceback's frames differ (the C loop adds none of its
            # own); its last line is the exception as Python prints it.
            lines = (detail or "").split("\nvow-python-exception: ")[0] \
                .rstrip().splitlines()
            last = lines[-1] if lines else None
            by_id[task_id] = ("error", kind, message, last)
        elif msg[0] == PROGRESS:
            started.append(msg[1])
    return by_id, started


def test_the_c_loop_reports_what_the_python_loop_does(tmp_path):
    fast, plain = settled(run_batch(tmp_path, True)), \
        settled(run_batch(tmp_path, False))
    by_id, started = fast
    assert by_id == plain[0]
    assert sorted(by_id) == sorted(t[0] for t in BATCH)
    assert by_id[1] == ("value", 3)
    assert by_id[2] == ("error", TASK_ERROR, "ValueError: boom 2",
                        "ValueError: boom 2")
    assert by_id[3] == ("value", 7)
    assert by_id[4][1] == 12 and '"missing"' in by_id[4][2]
    assert by_id[5][1] == TASK_ERROR and "unpicklable()" in by_id[5][2]
    assert by_id[6] == ("value", b"x" * BIG)
    assert by_id[7] == ("value", 17)  # the task's own seed
    assert by_id[9] == ("value", (1, "two", None))
    assert by_id[10] == ("value", 2**63)
    assert all(by_id[100 + i] == ("value", 2 * i) for i in range(200))
    assert all(by_id[400 + i] == ("value", 1000 + i) for i in range(50))
    # After the slow task, both say the next one started before it runs.
    assert 9 in started and 9 in plain[1]


def test_a_results_frame_stays_within_its_batch_bytes(tmp_path):
    # 200 results of 4 KiB pass BATCH_BYTES (512 KiB): the loop writes
    # what it holds before it passes it, as Reporter.finish does.
    global BATCH
    saved = BATCH
    BATCH = [[i, "big", [4096], 0] for i in range(200)]
    try:
        out = run_batch(tmp_path, True)
    finally:
        BATCH = saved
    results = [m for m in out if m[0] == RESULTS]
    assert len(results) >= 2
    assert [t for m in results for t, _ in m[1]] == list(range(200))
    assert all(len(codec.msgpack.packb(m[1])) <= (1 << 19) + 8192
               for m in results)


def test_submit_in_c_makes_the_tasks_and_records_python_makes(pool):
    """Pool.submit's plain path (vow._fastcodec.Quick) beside its
    Python one, by turns in one pool: every kind of call it hands back
    (keyword arguments, a function not yet named, an argument that does
    not pack) lands in the same order with the right results, and a Task
    it makes is the one Task(pool, None) makes. Their results are settled
    by Quick.settle, the failures and callbacks among them by Python."""
    import tasks_for_tests as t
    from vow import BadInput
    from vow._task import Task
    quick = pool._quick
    taken = []

    class Counting:
        settle = quick.settle

        def __call__(self, *args):
            task = quick(*args)
            taken.append(task is not None)
            return task
    pool._quick = Counting()
    warm = [pool.submit(t.square, i) for i in range(10)]  # names square
    made = pool.submit(t.square, 3)
    assert taken[-1]  # past the tasks sent at once: the C path's
    fresh = Task(pool, None)
    for slot in Task.__slots__[:-1]:
        if slot not in ("_promise",):
            assert getattr(made, slot) == getattr(fresh, slot), slot
    tasks, want, failed, called = [], [], [], []
    for i in range(600):  # batches of 256 handed over on the way
        if i % 7 == 0:
            tasks.append(pool.submit(t.scale, i, factor=2))
            want.append(2 * i)
        elif i % 11 == 0:
            with pytest.raises(BadInput):
                pool.submit(t.echo, lambda: i)
            continue
        elif i % 13 == 0:
            tasks.append(pool.submit(t.add, i, 1))  # named on first use
            want.append(i + 1)
        elif i % 17 == 0:
            failed.append(pool.submit(t.fail, f"no {i}"))
            continue
        elif i % 19 == 0:
            task = pool.submit(t.square, i)
            task.add_done_callback(lambda task: called.append(
                task.result()))
            tasks.append(task)
            want.append(i * i)
        else:
            tasks.append(pool.submit(t.square, i))
            want.append(i * i)
    assert [task.result(timeout=60) for task in tasks] == want
    for task in failed:
        with pytest.raises(Exception, match="no "):
            task.result(timeout=60)
    assert sorted(called) == sorted(i * i for i in range(600)
                                    if i % 19 == 0 and i % 7 and i % 11
                                    and i % 13 and i % 17)
    assert made.result(timeout=60) == 9
    assert [w.result(timeout=60) for w in warm] == [i * i for i in
                                                    range(10)]
    assert sum(taken) > 400 and not all(taken)
    assert not pool._tasks  # every tag settled and let go


@pytest.mark.parametrize("peer", ["python", "other"])
def test_a_record_is_the_name_and_the_packed_list(peer):
    """Quick's record of a call: the function's packed name, then the
    arguments as the pool's packer packs their list."""
    from vow import _task
    from test_fastcodec import values
    pack = codec.python_packer() if peer == "python" else codec.packer()
    name = codec.packb("f")
    for args in ([], [1], [None, True, 2**64 - 1, -2**63, 1.5, "naïve",
                            b"\0"], values(), [(1, 2), {3: [4]}]):
        names, tasks, batch, batch_tasks = {"f": name}, {}, [], []
        quick = codec.fastcodec.Quick(
            threading.RLock(), names, pack, tasks, batch, batch_tasks,
            _task.Task, 256, 0)

        class Pool:
            _closed = _driving = False
            _driver = None
            _next_tag = 5
        pool = Pool()
        try:
            want = name + pack(list(args))
        except (TypeError, ValueError, OverflowError):
            want = None  # the Python path's to refuse
        task = quick(pool, "f", tuple(args), {})
        if want is None:
            assert task is None and not batch
            continue
        assert batch == [want]
        assert batch_tasks == [task] and tasks == {5: task}
        assert pool._next_tag == 6 and task._pool is pool
