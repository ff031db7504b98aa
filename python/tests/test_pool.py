"""vow.Pool from Python: real worker processes (python3 -m vow.worker),
real signals, real bytes."""
import concurrent.futures
import ctypes
import os
import signal
import threading
import time

import pytest

import vow
from vow import _lib
from conftest import TASKS


def test_options_mirror_the_c_struct():
    o = _lib.PoolOptions()
    _lib.pool_options_init(ctypes.byref(o))
    assert o.size == ctypes.sizeof(_lib.PoolOptions)
    assert ctypes.sizeof(_lib.Settled) == 7 * 8


def test_submit_and_result(pool):
    assert pool.submit("add", 40, 2).result(timeout=30) == 42
    assert pool.submit("square", 7).result(timeout=30) == 49


def test_a_function_object_is_sent_by_name(pool):
    def square(x):  # same name as the worker's
        raise AssertionError("runs on the worker, not here")
    assert pool.submit(square, 9).result(timeout=30) == 81


def test_many_tasks_each_settle_once(pool):
    tasks = [pool.submit("add", i, 1) for i in range(2000)]
    assert [t.result(timeout=60) for t in tasks] == [i + 1 for i in range(2000)]


def test_map_keeps_order(pool):
    assert pool.map("square", range(10000)) == [i * i for i in range(10000)]
    assert pool.map("square", []) == []


def test_map_of_many_slices_keeps_order_and_counts_items_from_the_start(pool):
    n = 50000  # several slices of the map
    assert pool.map("square", range(n)) == [i * i for i in range(n)]
    items = list(range(n))
    items[40000] = "x"
    with pytest.raises(TypeError) as info:
        pool.map("square", items)
    assert info.value.vow_error.message.startswith("map item 40000:")


def test_imap_yields_in_order_from_an_endless_iterable(pool):
    def naturals():
        i = 0
        while True:
            yield i
            i += 1
    got = []
    for value in pool.imap("square", naturals()):
        got.append(value)
        if len(got) == 5000:
            break
    assert got == [i * i for i in range(5000)]
    # The generator closed: what it had sent ahead was cancelled, and the
    # pool goes on.
    assert pool.submit("add", 1, 2).result(timeout=30) == 3


def test_imap_raises_a_failure_at_its_position_and_goes_on(pool):
    items = list(range(3000)) + ["x"] + list(range(10))
    got = []
    it = pool.imap("square", items)
    with pytest.raises(TypeError):
        for value in it:
            got.append(value)
    # Every result before the failing item came first, as multiprocessing
    # yields them; the items after it follow.
    assert got == [i * i for i in range(3000)]
    assert list(it) == [i * i for i in range(10)]


def test_cancelling_a_map_cancels_its_slices(pool):
    task = pool.map_async("sleep_then", [[i, 0.2] for i in range(4)])
    task.cancel()
    with pytest.raises(vow.Cancelled):
        task.result(timeout=30)
    assert pool.submit("add", 2, 3).result(timeout=30) == 5


def test_a_task_cancelled_before_it_is_sent(pool):
    tasks = [pool.submit("add", i, 0) for i in range(10)]
    # The first 2 x workers tasks go out at once; the 9th is still
    # gathered in the pool, not sent.
    assert tasks[8]._promise is None
    assert tasks[8].cancel()
    with pytest.raises(vow.Cancelled):
        tasks[8].result(timeout=30)
    assert [t.result(timeout=30) for i, t in enumerate(tasks) if i != 8] == \
        [i for i in range(10) if i != 8]


def test_cancel_after_the_result_came_in_keeps_the_result(pool):
    """A result libvow has but the task has not taken yet (the loop ran
    inside submit) stands: cancel says False, as for a finished task."""
    task = pool.submit("add", 20, 22)
    deadline = time.monotonic() + 60
    while _lib.promise_state(task._promise) == _lib.PENDING:
        assert time.monotonic() < deadline, "the task never finished"
        _lib.uv_run(pool._loop, _lib.UV_RUN_NOWAIT)
        time.sleep(0.001)
    assert not task.done()
    assert task.cancel() is False
    assert task.result(timeout=30) == 42
    assert not task.cancelled()


def test_a_callback_that_raises_loses_no_other_result(pool, caplog):
    tasks = [pool.submit("add", i, 0) for i in range(1000)]

    def bad(task):
        raise RuntimeError("from a callback")
    tasks[10].add_done_callback(bad)
    vow.wait(tasks, timeout=60)
    assert [t.result() for t in tasks] == list(range(1000))
    assert "from a callback" in caplog.text


def test_what_multiprocessing_and_futures_users_type(pool):
    """The calls of multiprocessing.Pool and ProcessPoolExecutor work the
    same way on a vow pool."""
    assert pool.submit("scale", 3, factor=2, offset=1).result() == 7
    assert pool.apply("scale", (3,), {"offset": 10}) == 13
    assert pool.map("square", range(5), chunksize=2) == [0, 1, 4, 9, 16]
    assert pool.starmap("add", zip([1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    # map's third argument is chunksize, as multiprocessing has it.
    with pytest.raises(TypeError, match="starmap"):
        pool.map("add", [1, 2, 3], [10, 20, 30])
    assert pool.starmap("add", [(1, 2), (3, 4)]) == [3, 7]
    assert list(pool.imap("square", range(5), chunksize=1)) == \
        [0, 1, 4, 9, 16]
    assert sorted(pool.imap_unordered("square", range(3000))) == \
        sorted(i * i for i in range(3000))
    got, failed = [], []
    ok = pool.apply_async("add", (1, 1), callback=got.append)
    bad = pool.apply_async("fail", ("boom",), error_callback=failed.append)
    assert ok.get(timeout=30) == 2
    bad.wait(timeout=30)
    assert ok.ready() and ok.successful() and not bad.successful()
    assert got == [2] and isinstance(failed[0], ValueError)
    m = pool.map_async("square", [2, 3], callback=got.append)
    assert m.get(timeout=30) == [4, 9] and got[-1] == [4, 9]
    with pytest.raises(ValueError):
        pool.submit("sleep_then", 1, 0.5).successful()


def test_a_task_raises_its_own_exception_with_the_remote_traceback(pool):
    with pytest.raises(ValueError) as info:
        pool.submit("fail", "no such thing").result(timeout=30)
    raised = info.value
    assert isinstance(raised, vow.TaskError) and type(raised).__mro__[1] is \
        ValueError and raised.args == ("no such thing",)
    assert "tasks_for_tests.py" in str(raised.__cause__)
    e = raised
    assert e.kind == "task error"
    assert "ValueError: no such thing" in e.message
    assert e.pid and e.pid != os.getpid()
    assert "Traceback" in e.remote_traceback
    assert "tasks_for_tests.py" in e.remote_traceback
    assert str(e) == "no such thing"  # as the worker's ValueError says it


def test_map_fails_with_the_first_failing_item(pool):
    with pytest.raises(TypeError) as info:
        pool.map("square", [1, 2, "x", 4])
    assert "map item 2" in info.value.vow_error.message


def test_sigkilled_worker_fails_only_its_task():
    """With a retry, the tasks that were in flight beside the one that
    SIGKILLs its worker run again alone and succeed; only that one fails,
    once it has killed a worker while alone on it each try."""
    with vow.Pool(workers=2, module=TASKS, retries=1) as pool:
        tasks = [pool.submit("sleep_then", i, 0.01) for i in range(10)]
        doomed = pool.submit("kill_myself")
        tasks += [pool.submit("sleep_then", i, 0.01) for i in range(10, 20)]
        with pytest.raises(vow.PoisonTask) as info:
            doomed.result(timeout=60)
        assert info.value.term_signal == 9
        assert info.value.pid
        assert [t.result(timeout=60) for t in tasks] == list(range(20))
        # The pool replaced the workers and goes on.
        assert pool.submit("add", 1, 1).result(timeout=60) == 2


def test_without_retries_a_killed_worker_fails_only_its_task():
    """Without retries, the task that SIGKILLs its worker fails with
    WorkerDied and only it: the tasks sent with it to the same worker,
    before and after, still succeed (multiprocessing.Pool would hang on
    the lost task; ProcessPoolExecutor would break the whole pool)."""
    with vow.Pool(workers=1, module=TASKS, in_flight=16) as pool:
        before = [pool.submit("add", i, 1) for i in range(5)]
        # It runs a while before it dies: long enough for its worker to
        # have said it started it (vow.worker.Reporter).
        doomed = pool.submit("kill_myself_after", 0.2)
        after = [pool.submit("add", i, 100) for i in range(5)]
        with pytest.raises(vow.WorkerDied) as info:
            doomed.result(timeout=60)
        assert info.value.term_signal == 9
        assert [t.result(timeout=60) for t in before] == [1, 2, 3, 4, 5]
        assert [t.result(timeout=60) for t in after] == [100, 101, 102,
                                                          103, 104]


def test_a_worker_killed_from_outside_fails_only_the_running_task(tmp_path):
    """SIGKILL sent from outside while a task runs: that task fails, the
    ones sent behind it to the same worker run on its replacement."""
    marker = tmp_path / "started"
    with vow.Pool(workers=1, module=TASKS, in_flight=16) as pool:
        pid = pool.submit("pid").result(timeout=60)
        running = pool.submit("mark_then_sleep", str(marker), 30)
        queued = [pool.submit("add", i, 1) for i in range(5)]
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            pool.poll()  # sends them all
            time.sleep(0.01)
        assert marker.exists()
        # Past the few milliseconds after which its worker has said it
        # started it (vow.worker.Reporter).
        time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(vow.WorkerDied) as info:
            running.result(timeout=60)
        assert info.value.pid == pid
        assert info.value.term_signal == signal.SIGKILL
        assert [t.result(timeout=60) for t in queued] == [1, 2, 3, 4, 5]


def test_retry_gives_a_killed_task_another_worker(tmp_path):
    with vow.Pool(workers=2, module=TASKS, retries=1) as pool:
        marker = str(tmp_path / "killed-once")
        assert pool.submit("kill_myself_once", marker).result(
            timeout=60) == "survived"


def test_timeout(pool):
    with pytest.raises(vow.TaskTimeout):
        pool.submit_timeout(0.2, "sleep_then", 1, 30).result(timeout=60)
    assert pool.submit("add", 2, 2).result(timeout=60) == 4


def test_cancel(pool):
    t = pool.submit("sleep_then", 1, 30)
    time.sleep(0.1)
    assert t.cancel()
    with pytest.raises(vow.Cancelled):
        t.result(timeout=60)
    assert t.cancelled()
    assert not t.cancel()


def test_unknown_function_is_refused(pool):
    with pytest.raises(vow.BadInput):
        pool.submit("no_such_function").result(timeout=30)


def test_an_unsendable_result_fails_its_task(pool):
    with pytest.raises(vow.TaskError) as info:
        pool.submit("unsendable").result(timeout=30)
    assert "object" in info.value.message


def test_a_lambda_is_refused_here_with_the_reason(pool):
    with pytest.raises(TypeError) as info:
        pool.submit(lambda x: x, 1)
    assert "by name" in str(info.value)


def test_an_unsendable_argument_is_refused_here(pool):
    with pytest.raises(vow.BadInput) as info:
        pool.submit("echo", threading.Lock())
    assert "does not pickle" in str(info.value)


def test_values_keep_their_python_types_both_ways(pool):
    import datetime
    sent = ((1, 2), {3}, 1 << 80, datetime.date(2026, 12, 7))
    assert pool.submit("echo", sent).result(timeout=30) == sent
    assert pool.submit("typed_values").result(timeout=30) == sent
    assert pool.map("echo", [(1, 2), frozenset([5])]) == [(1, 2),
                                                          frozenset([5])]


def test_result_waits_no_longer_than_asked(pool):
    t = pool.submit("sleep_then", 1, 2)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        t.result(timeout=0.2)
    assert time.monotonic() - start < 1.5
    assert t.result(timeout=60) == 1


def test_as_completed_and_wait():
    # One task per worker at a time: the slow one cannot hold up the fast.
    with vow.Pool(workers=2, module=TASKS, in_flight=1) as pool:
        slow = pool.submit("sleep_then", "slow", 1.0)
        fast = pool.submit("sleep_then", "fast", 0.01)
        order = [t.result() for t in vow.as_completed([slow, fast],
                                                      timeout=60)]
        assert order == ["fast", "slow"]
        done, not_done = vow.wait([pool.submit("add", 1, 2)], timeout=60)
        assert len(done) == 1 and not not_done


def test_concurrent_futures_adapter(pool):
    t = pool.submit("add", 3, 4)
    f = t.future()
    assert isinstance(f, concurrent.futures.Future)
    t.result(timeout=30)
    assert f.result(timeout=0) == 7
    # Waiting on the Future itself runs the loop.
    bad = pool.submit("fail", "boom").future()
    with pytest.raises(ValueError):
        bad.result(timeout=30)
    assert isinstance(pool.submit("fail", "x").future().exception(30),
                      ValueError)
    slow = pool.submit("sleep_then", 1, 30).future()
    with pytest.raises(concurrent.futures.TimeoutError):
        slow.result(timeout=0.1)
    assert slow.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        slow.result(timeout=30)


def test_shutdown_then_submit_is_refused():
    p = vow.Pool(workers=1, module=TASKS)
    t = p.submit("sleep_then", "queued", 0.1)
    p.shutdown(wait=True)
    assert t.result(timeout=0) == "queued"
    with pytest.raises(RuntimeError):
        p.submit("add", 1, 2)


def test_shutdown_without_wait_cancels_what_is_left():
    p = vow.Pool(workers=1, module=TASKS)
    tasks = [p.submit("sleep_then", i, 5) for i in range(3)]
    p.shutdown(wait=False)
    for t in tasks:
        assert t.done()
        assert isinstance(t.exception(), vow.VowError)


def test_a_block_left_by_an_exception_cancels_what_is_left():
    with pytest.raises(KeyError):
        with vow.Pool(workers=1, module=TASKS) as pool:
            long = pool.submit("sleep_then", 1, 60)
            queued = pool.submit("add", 1, 1)
            raise KeyError("the caller gave up")
    for task in (long, queued):
        assert task.done()
        with pytest.raises(vow.Cancelled):
            task.result()


def test_a_bad_worker_command_fails_tasks_not_the_parent():
    with vow.Pool(workers=1, worker=["/nonexistent/worker"]) as p:
        with pytest.raises(vow.VowError):
            p.submit("add", 1, 2).result(timeout=60)


def test_the_running_script_serves_its_own_functions(tmp_path):
    """module=__file__, as multiprocessing users write their scripts: the
    workers load it as a module, without its __main__ block."""
    script = tmp_path / "script.py"
    script.write_text(
        "import vow\n"
        "def cube(x):\n"
        "    return x ** 3\n"
        "if __name__ == '__main__':\n"
        "    with vow.Pool(2, module=__file__) as pool:\n"
        "        print(pool.map(cube, range(4)), pool.submit(cube, 5).result())\n")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0, 1, 8, 27] 125"


def test_a_map_item_sees_the_seed_it_would_have_had_alone():
    """Seeds follow the order of submission, whatever the chunking: a map
    of n items sees the seeds of n tasks submitted one by one."""
    n = 5000
    with vow.Pool(workers=2, module=TASKS, seed=42) as pool:
        mapped = pool.map("my_seed", range(n))
    with vow.Pool(workers=1, module=TASKS, seed=42) as pool:
        alone = [t.result(timeout=60)
                 for t in [pool.submit("my_seed") for _ in range(n)]]
    assert mapped == alone
    assert len(set(mapped)) == n


def _wakeups(pid):
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    n += int(line.split()[1])
    return n


def test_an_idle_worker_sleeps():
    """The thread that says which task runs sleeps while no task does
    (it woke 200 times a second before)."""
    with vow.Pool(workers=1, module=TASKS) as pool:
        pid = pool.submit("pid").result(timeout=60)
        time.sleep(0.3)  # past its last watches
        before = _wakeups(pid)
        time.sleep(1)
        assert _wakeups(pid) - before < 20
        # It still watches the next task.
        assert pool.submit("sleep_then", 7, 0.05).result(timeout=60) == 7
