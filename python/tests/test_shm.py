"""Big values by shared memory through the Python worker (docs/pool.md,
"Big values"): the same values as the channel gives, past its 64 MiB,
segments seen going both ways in the pool's trace, none left behind."""
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = r"""
import os, sys
sys.path.insert(0, %(here)r)
import numpy as np
import pytest
import vow
import tasks_for_tests as t

def held(pid):
    n = sum("/memfd:vow" in line for line in open(f"/proc/{pid}/maps"))
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:vow")
        except OSError:
            pass
    return n

with vow.Pool(1) as p:
    b = bytes(range(256)) * 8192 * 4  # 8 MiB
    assert p.submit(t.echo, b).result(timeout=60) == b
    a = np.arange(9 << 20, dtype=np.float64)  # 72 MiB: past a frame
    back = p.submit(t.echo, a).result(timeout=120)
    assert back.dtype == a.dtype and np.array_equal(back, a)
    # a view of the segment it came in, no copy: read-only, and holding
    # the segment until it goes
    assert not back.flags.writeable and not back.flags.owndata
    assert held(os.getpid()) > 0
    del back
    worker = p.submit(t.pid).result(timeout=60)
    print("held", held(os.getpid()), held(worker))
"""


def run_traced():
    env = dict(os.environ, VOW_DEBUG="1")
    return subprocess.run([sys.executable, "-c", SCRIPT % {"here": HERE}],
                          capture_output=True, text=True, env=env,
                          timeout=300)


def test_big_values_go_by_segments_both_ways():
    r = run_traced()
    assert r.returncode == 0, r.stderr[-3000:]
    trace = r.stderr
    # arguments out, results back, each by a segment
    assert trace.count("-> segment") == 2, trace[-3000:]
    assert trace.count("<- segment") == 2, trace[-3000:]
    assert "held 0 0" in r.stdout


def test_small_values_keep_the_channel(pool):
    a = np.arange(1000.0)
    assert np.array_equal(pool.submit("echo", a).result(timeout=30), a)
    assert pool.submit("echo", b"x" * 1000).result(timeout=30) == b"x" * 1000


def test_an_array_by_shared_memory_is_a_read_only_view_of_it(pool):
    a = np.arange(2 << 20, dtype=np.float64).reshape(1024, 2048)  # 16 MiB
    writeable, memory, total = pool.submit("array_view", a).result(
        timeout=60)
    assert not writeable  # the segment itself, not a copy
    assert memory == "mmap"
    assert total == float(a.sum())
    # a small one is the worker's own copy, writable
    writeable, memory, _ = pool.submit("array_view", a[:2]).result(
        timeout=30)
    assert writeable and memory != "mmap"


def test_arrays_of_any_order_and_dtype_by_shared_memory(pool):
    for a in (np.asfortranarray(np.arange(1 << 18, dtype=np.int32)
                                .reshape(512, 512)),
              np.arange(1 << 20, dtype=np.float32)[::2],
              np.ones((256, 1024), dtype=">f8"),
              np.arange(1 << 18, dtype=np.complex128)):
        assert np.array_equal(pool.submit("echo", a).result(timeout=60), a)


def test_big_arrays_anywhere_in_a_call(pool):
    a = np.arange(1 << 18, dtype=np.float64)  # 2 MiB
    b = np.ones((512, 512), dtype=np.int16)  # 512 KiB: stays inline
    assert pool.submit("describe", a).result(timeout=60)["sum"] == a.sum()
    got = pool.submit("echo", [a, b, "x", (a, 1)]).result(timeout=60)
    assert np.array_equal(got[0], a) and np.array_equal(got[1], b)
    assert got[2] == "x" and isinstance(got[3], tuple)
    assert np.array_equal(got[3][0], a) and got[3][1] == 1
    assert pool.submit("scale", a, factor=2).result(timeout=60)[-1] == \
        2 * a[-1]
    assert np.array_equal(
        pool.submit_timeout(60, "echo", a).result(timeout=60), a)


PEAK = r"""
import sys
sys.path.insert(0, %(here)r)
import numpy as np
import pytest
import vow
import tasks_for_tests as t

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

with vow.Pool(1) as p:
    a = np.arange(8 << 20, dtype=np.float64)  # 64 MiB
    p.submit(t.pid).result(timeout=60)
    open("/proc/self/clear_refs", "w").write("5")
    before = kib("VmRSS")
    assert p.submit(t.describe, a).result(timeout=120)["sum"] == a.sum()
    print((kib("VmHWM") - before) // 1024)
"""


def test_a_big_array_is_copied_once_by_the_parent():
    r = subprocess.run([sys.executable, "-c", PEAK % {"here": HERE}],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # Its one copy is the segment, written through the kernel: none of it
    # in this process's memory. msgpack's way holds three copies.
    assert int(r.stdout.split()[-1]) < 16, r.stdout


def held_here():
    """Segments this process has mapped or open."""
    n = sum("/memfd:vow" in line for line in open("/proc/self/maps"))
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:vow")
        except OSError:
            pass
    return n


def test_a_shared_array_is_mapped_once_per_worker():
    import vow
    a = np.arange(1 << 20, dtype=np.float64)  # 8 MiB
    with vow.Pool(1, module=os.path.join(HERE, "tasks_for_tests.py")) as p:
        shared = p.share(a)
        assert shared.nbytes == a.nbytes
        got = [t.result(timeout=60) for t in
               [p.submit("keep", shared, k) for k in range(8)]]
        # eight tasks, each keeping its array: still one mapping
        assert [mapped for mapped, _ in got] == [1] * 8
        assert [total for _, total in got] == [a.sum() + k for k in range(8)]
        assert p.submit("forget").result(timeout=60) == 0
        # the same array sent each time without share: a segment per task
        got = [t.result(timeout=60) for t in
               [p.submit("keep", a) for _ in range(3)]]
        assert [mapped for mapped, _ in got] == [1, 2, 3]
        assert p.submit("forget").result(timeout=60) == 0
        shared.close()
        assert "closed" in repr(shared)
        assert held_here() == 0


def test_shared_values_in_maps_and_nested(pool):
    import pickle
    import vow
    a = np.arange(1 << 18, dtype=np.float64)  # 2 MiB
    with pool.share(a) as shared:
        assert pool.starmap("scale", [(shared, k) for k in range(3)])[2][-1] \
            == 2 * a[-1]
        assert [x[1] for x in pool.imap("keep", [shared] * 3)] == \
            [a.sum()] * 3
        pool.submit("forget").result(timeout=60)
        assert np.array_equal(pool.submit("echo", {"k": [shared]}).result(
            timeout=60)["k"][0], a)
        got = pool.submit("echo", (shared, 1)).result(timeout=60)  # a tuple
        assert np.array_equal(got[0], a) and got[1] == 1
        del got  # a view of the segment it came back in
        with pytest.raises(TypeError):
            pickle.dumps(shared)
    with pytest.raises(vow.BadInput, match="closed"):
        pool.submit("echo", shared)
    other = pool.share({"name": "x", "data": b"y" * (2 << 20)})
    assert pool.submit("echo", other).result(timeout=60)["name"] == "x"
    other.close()
    assert held_here() == 0


def test_a_worker_out_of_descriptors_fails_only_the_task():
    import vow
    with vow.Pool(1, module=os.path.join(HERE, "tasks_for_tests.py")) as p:
        pid, soft = p.submit("nofile_to_lowest_free").result(timeout=60)
        with pytest.raises(vow.TaskError, match="RLIMIT_NOFILE"):
            p.submit("echo", b"x" * (2 << 20)).result(timeout=60)
        with p.share(np.arange(1 << 18, dtype=np.float64)) as shared:
            with pytest.raises(vow.TaskError, match="RLIMIT_NOFILE"):
                p.submit("keep", shared).result(timeout=60)  # a part
        assert p.submit("nofile_back", soft).result(timeout=60) == pid
        assert p.submit("echo", b"y" * (2 << 20)).result(timeout=60) == \
            b"y" * (2 << 20)
        assert p.submit("pid").result(timeout=60) == pid


def test_a_worker_that_cannot_map_fails_only_the_task():
    import vow
    with vow.Pool(1, module=os.path.join(HERE, "tasks_for_tests.py")) as p:
        pid = p.submit("address_space_to", 64).result(timeout=60)
        with pytest.raises(vow.TaskError, match="no memory to map or read"):
            p.submit("echo", b"x" * (200 << 20)).result(timeout=120)
        assert p.submit("address_space_to", None).result(timeout=60) == pid
        assert p.submit("echo", b"y" * (2 << 20)).result(timeout=60) == \
            b"y" * (2 << 20)
