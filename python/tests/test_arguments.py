"""Where users of multiprocessing and concurrent.futures arrive: bad
arguments refused as those refuse them (ValueError for a count below 1,
TypeError for one that is not an int, before any worker starts), a
module that does not import, a forked child, a pool dropped or left
open at exit."""
import gc
import multiprocessing
import os
import subprocess
import sys

import pytest

import vow
import vow.worker
from conftest import TASKS


@pytest.mark.parametrize("workers", [0, -1])
def test_too_few_workers_is_a_value_error(workers):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        vow.Pool(workers=workers, module=TASKS)
    # The peer refuses it the same way.
    with pytest.raises(ValueError):
        multiprocessing.Pool(processes=workers)


def test_workers_that_are_not_an_int_is_a_type_error():
    with pytest.raises(TypeError, match="workers must be an int"):
        vow.Pool(workers="2", module=TASKS)
    with pytest.raises(TypeError):
        vow.Pool(workers=2.0, module=TASKS)


@pytest.mark.parametrize("n", [0, -3])
def test_recycle_after_below_one_is_a_value_error(n):
    with pytest.raises(ValueError, match="recycle_after must be at least 1"):
        vow.Pool(workers=1, module=TASKS, recycle_after=n)
    with pytest.raises(ValueError):
        multiprocessing.Pool(processes=1, maxtasksperchild=n)


def test_chunksize_below_one_is_refused_at_the_call(pool):
    with pytest.raises(ValueError, match="chunksize must be at least 1"):
        pool.map("square", range(3), chunksize=0)
    with pytest.raises(ValueError):
        pool.map_async("square", range(3), chunksize=-1)
    with pytest.raises(ValueError):
        pool.starmap("add", [(1, 2)], chunksize=0)
    # imap refuses at the call, not at the first next(), as the peers do.
    with pytest.raises(ValueError):
        pool.imap("square", range(3), chunksize=0)
    with pytest.raises(ValueError):
        pool.imap_unordered("square", range(3), chunksize=0)
    # A good chunksize still works, and the pool is unharmed.
    assert pool.map("square", range(4), chunksize=2) == [0, 1, 4, 9]


def test_a_pool_shut_down_cannot_be_entered_again():
    p = vow.Pool(workers=1, module=TASKS)
    with p:
        assert p.submit("add", 1, 2).result(timeout=30) == 3
    with pytest.raises(ValueError, match="Pool not running"):
        with p:
            pass


def test_seed_outside_a_task_is_an_error(pool):
    with pytest.raises(RuntimeError, match="outside a task"):
        vow.worker.seed()
    # Inside a task it is the task's, on every call.
    a = pool.submit("my_seed").result(timeout=30)
    b = pool.submit("my_seed").result(timeout=30)
    assert isinstance(a, int) and isinstance(b, int) and a != b


def test_a_module_that_does_not_import_fails_the_pool_once(tmp_path):
    """Its workers exit saying they cannot serve: every slot is given up
    after one start, and each task fails with the import error's line,
    not with its traceback."""
    bad = tmp_path / "bad_tasks.py"
    bad.write_text("import vow_no_such_module_anywhere\n"
                   "def f(x):\n    return x\n")
    with vow.Pool(workers=2, module=str(bad)) as p:
        tasks = [p.submit("f", i) for i in range(5)]
        for t in tasks:
            with pytest.raises(vow.WorkerDied) as e:
                t.result(timeout=60)
            text = str(e.value)
            assert "cannot serve" in text
            assert "No module named 'vow_no_such_module_anywhere'" in text
            assert "Traceback" not in text
        with pytest.raises(vow.WorkerDied):
            p.map("f", range(3))


def test_a_forked_child_cannot_use_its_parents_pool(pool):
    """The child gets a RuntimeError naming both processes, for a
    submit, waiting on a pending task, a map, shutdown and `with`; the
    parent's pool goes on unharmed. (A task settled before the fork keeps
    its value in the child: nothing of the pool is needed to read it.)"""
    assert pool.submit("add", 1, 2).result(timeout=30) == 3
    pending = pool.submit("sleep_then", 7, 0.5)  # still running at the fork
    pid = os.fork()
    if pid == 0:
        refused = 0
        for use in (lambda: pool.submit("add", 1, 1),
                    lambda: pending.result(),
                    lambda: pool.map("square", [1]),
                    lambda: pool.shutdown()):
            try:
                use()
            except RuntimeError as e:
                refused += "a child it forked" in str(e)
            except BaseException:
                pass
        try:
            with pool:
                pass
        except RuntimeError:
            refused += 1
        os._exit(0 if refused == 5 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert pending.result(timeout=30) == 7
    assert pool.submit("add", 20, 22).result(timeout=30) == 42
    assert pool.map("square", range(5)) == [0, 1, 4, 9, 16]


def test_a_dropped_pool_stops_its_workers():
    p = vow.Pool(workers=2, module=TASKS)
    pids = {p.submit("pid").result(timeout=30) for _ in range(8)}
    p.submit("sleep_then", 1, 60)  # unfinished: cancelled
    del p
    gc.collect()
    for pid in pids:  # our own children: reaped, not just signalled
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_script_that_exits_without_shutdown_runs_its_tasks(tmp_path):
    """As concurrent.futures joins its executors at exit: the tasks
    submitted run before the interpreter goes."""
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "import vow\n"
        f"p = vow.Pool(workers=2, module={TASKS!r})\n"
        f"for i in range(4):\n"
        f"    p.submit('mark_then_sleep', {str(tmp_path)!r} + f'/m{{i}}', 0.2)\n"
        "print('submitted')\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "submitted"
    assert sorted(f.name for f in tmp_path.iterdir() if f.name[0] == "m") == \
        ["m0", "m1", "m2", "m3"]
