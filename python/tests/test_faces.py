"""What code written for multiprocessing and concurrent.futures relies on
beyond CPython's own tests: threads sharing a pool, asyncio.run() closing
the loop that drove it, streaming imap, exception texts that are not
plain, the idle-worker rule, launchers."""
import asyncio
import os
import threading
import time

import pytest

import vow
from cpython_tasks import pid_after
from conftest import TASKS


def test_two_threads_submit_and_wait_on_one_pool():
    with vow.Pool(2, module=TASKS) as pool:
        out, errors = [], []

        def work(k):
            try:
                tasks = [pool.submit("add", k, j) for j in range(300)]
                out.append(sum(t.result(timeout=60) for t in tasks))
                out.append(sum(pool.map("square", range(k, k + 50))))
            except Exception as e:  # reported below, not lost in a thread
                errors.append(e)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        want = [300 * k + 44850 for k in range(4)] + \
            [sum(i * i for i in range(k, k + 50)) for k in range(4)]
        assert sorted(out) == sorted(want)


def test_a_pool_outlives_the_loop_asyncio_run_closed():
    with vow.Pool(2, module=TASKS) as pool:
        async def main(n):
            return await asyncio.gather(
                *[pool.submit("square", i) for i in range(n)])
        assert asyncio.run(main(20)) == [i * i for i in range(20)]
        # The loop is closed now; the pool goes on, with or without one.
        assert pool.submit("add", 1, 2).result(timeout=60) == 3
        assert pool.map("square", range(5)) == [0, 1, 4, 9, 16]
        assert asyncio.run(main(5)) == [0, 1, 4, 9, 16]


def test_imap_yields_the_first_result_before_the_rest_exist(tmp_path):
    # The later items wait for a file that is made only once the first
    # result has been taken: an imap that waited for all would never end.
    gate = str(tmp_path / "gate")
    with vow.Pool(2, module=TASKS) as pool:
        items = [(0, "")] + [(i, gate) for i in range(1, 20)]
        it = pool.imap("wait_for_file_item", items)
        assert next(it) == 0
        open(gate, "w").close()
        assert list(it) == list(range(1, 20))


@pytest.mark.parametrize("how", ["nul", "not utf-8", "str raises"])
def test_an_exception_whose_text_is_not_plain_arrives_intact(how):
    # Its TaskError (a ValueError too, when the parent can make one) with
    # the text as it was: the exception's args exactly, the message
    # escaped where it cannot be text.
    with vow.Pool(1, module=TASKS) as pool:
        with pytest.raises(vow.TaskError) as info:
            pool.submit("raise_odd", how).result(timeout=60)
        e = info.value
        if how == "nul":
            assert isinstance(e, ValueError) and e.args == ("a\x00b",)
            assert "a\\x00b" in e.message
        elif how == "not utf-8":
            assert isinstance(e, ValueError)
            assert e.args == ("bad \udcff byte",)
            assert "\\udcff" in e.message
        else:
            # Its class lives in the worker's module alone: a TaskError.
            assert "str() failed" in e.message
            assert "_StrRaises" in e.message
        # The worker is unharmed.
        assert pool.submit("add", 1, 1).result(timeout=60) == 2


def test_an_idle_worker_takes_what_waits_behind_a_busy_one():
    # Three tasks on two workers: the third, sent ahead behind the long
    # one or not, runs on the worker that finished the short one.
    with vow.Pool(2) as pool:
        pool.map(abs, range(100))  # warm, with tiny tasks measured
        long = pool.submit(pid_after, 1.5)
        short = pool.submit(pid_after, 0.05)
        third = pool.submit(pid_after, 0.3)
        assert third.result(timeout=60) == short.result(timeout=60)
        assert long.result(timeout=60) != third.result()


def test_launchers_start_workers_through_a_command():
    # `env` as the launcher: it runs the worker command it is given, as
    # ssh or srun would on another host, with the channel on its stdio.
    with vow.Pool(module=TASKS, launchers=[(["env"], 2)]) as pool:
        pids = set(pool.map("pid_of", range(200)))
        assert pool.submit("add", 2, 3).result(timeout=60) == 5
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_a_silent_launched_worker_is_lost_and_its_tasks_run_elsewhere():
    # A worker frozen by SIGSTOP sends nothing, as a host cut off would;
    # under liveness=1 its tasks go to the other worker, each result once.
    # A task longer than the bound is not silence: the heartbeat goes on.
    import signal
    with vow.Pool(module=TASKS, launchers=[(["env"], 2)],
                  liveness=1) as pool:
        assert pool.apply("sleep_then", ("slow", 2.5)) == "slow"
        pids = set(pool.map("pid_of", range(50)))
        frozen = sorted(pids)[0]
        os.kill(frozen, signal.SIGSTOP)
        try:
            started = time.monotonic()
            got = pool.starmap("sleep_then", [(k, 0.05) for k in range(40)],
                               chunksize=1)
            assert got == list(range(40))
            assert time.monotonic() - started < 30
            # The pool killed it as lost (and reaped it).
            for _ in range(100):
                if not os.path.exists(f"/proc/{frozen}"):
                    break
                time.sleep(0.05)
            assert not os.path.exists(f"/proc/{frozen}")
        finally:
            try:
                os.kill(frozen, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_script(path, text):
    """text written to path and run by this interpreter, with this
    sys.path."""
    import subprocess
    import sys
    path.write_text(text)
    return subprocess.run([sys.executable, str(path)], capture_output=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=
                                                os.pathsep.join(sys.path)))


def test_a_function_of_the_main_script_runs_as_spawn_runs_it(tmp_path):
    r = run_script(
        tmp_path / "main_script.py",
        "import vow\n"
        "def cube(x):\n"
        "    return x ** 3\n"
        "if __name__ == '__main__':\n"
        "    with vow.ProcessPoolExecutor(2) as ex:\n"
        "        print(list(ex.map(cube, range(5))))\n"
        "    with vow.Pool(2) as p:\n"
        "        print(p.map(cube, range(5)))\n")
    assert r.stdout.decode().split("\n")[:2] == ["[0, 1, 8, 27, 64]"] * 2, \
        r.stderr.decode()


def test_a_pool_made_at_import_of_the_main_script_is_refused(tmp_path):
    r = run_script(
        tmp_path / "unguarded.py",
        "import vow\n"
        "def cube(x):\n"
        "    return x ** 3\n"
        "pool = vow.Pool(1)\n"
        "print(pool.submit(cube, 2).exception(60).__class__.__name__)\n"
        "pool.shutdown()\n")
    # The worker cannot load the script (it would make a pool of its own):
    # the task fails, once, saying why; no pool starts another.
    assert r.stdout.decode().strip() == "BadInput"
    assert "__main__" in r.stderr.decode() or r.returncode == 0


def test_running_and_cancel_follow_the_worker():
    with vow.Pool(1, module=TASKS) as pool:
        first = pool.submit("sleep_then", 1, 1.0)
        second = pool.submit("add", 1, 2)
        deadline = time.monotonic() + 30
        while not first.started() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.started() and not second.started()
        assert second.cancel()
        with pytest.raises(vow.Cancelled):
            second.result(timeout=60)
        assert first.result(timeout=60) == 1


def test_an_exception_whose_str_raises_reads_as_its_message():
    # Its class imports here (cpython_tasks), so it arrives as its twin;
    # str() of it gives the worker's message instead of raising again.
    from cpython_tasks import raise_str_raises
    with vow.Pool(1) as pool:
        with pytest.raises(vow.TaskError) as info:
            pool.submit(raise_str_raises).result(timeout=60)
    assert type(info.value).__name__ == "StrRaises"
    assert "str() failed" in str(info.value)


def test_a_worker_outlives_the_thread_that_started_it():
    # The kernel's parent-death signal comes when the thread that started
    # a worker ends; the pool lives on in the process, and so must its
    # workers.
    box = {}

    def start():
        box["pool"] = vow.Pool(1, module=TASKS)
        box["pid"] = box["pool"].submit("pid_of", 0).result(timeout=60)
    t = threading.Thread(target=start)
    t.start()
    t.join()
    pool = box["pool"]
    try:
        time.sleep(0.2)  # time for a signal to be acted on
        assert pool.submit("pid_of", 0).result(timeout=60) == box["pid"]
    finally:
        pool.shutdown()


def test_a_function_of_a_module_loaded_by_path_is_found(tmp_path):
    # As pytest's importlib mode loads a test module: by its file, under a
    # name sys.path does not find. The worker loads the same file.
    import importlib.util
    import sys
    path = tmp_path / "loaded_by_path_only.py"
    path.write_text("def triple(x):\n    return 3 * x\n")
    spec = importlib.util.spec_from_file_location("loaded_by_path_only",
                                                  path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["loaded_by_path_only"] = module
    spec.loader.exec_module(module)
    try:
        with vow.Pool(1) as pool:
            assert pool.map(module.triple, range(5)) == [0, 3, 6, 9, 12]
            assert pool.submit(module.triple, 7).result(timeout=60) == 21
    finally:
        del sys.modules["loaded_by_path_only"]
