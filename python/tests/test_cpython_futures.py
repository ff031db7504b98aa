"""CPython 3.11's Lib/test/test_concurrent_futures.py, the cases that
apply to a process pool, ported onto vow.ProcessPoolExecutor: each keeps
its name and what it asserts; functions go by name (cpython_tasks.py).
Sleeps are shortened where the case only needs one task to be slower than
another. Where vow differs on purpose (a killed worker fails only its
task), the case asserts vow's behaviour and says so; docs/python.md lists
the differences."""
import concurrent.futures as futures
import gc
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from concurrent.futures._base import (CANCELLED, CANCELLED_AND_NOTIFIED,
                                      FINISHED, PENDING, RUNNING, Future)
from concurrent.futures.process import BrokenProcessPool

import pytest

import vow
from cpython_tasks import (capture, get_init_status, init, init_fail,
                           kill_self, make_dummy_object, mul,
                           raise_runtime_error, sleep_and_raise)

HERE = os.path.dirname(os.path.abspath(__file__))


def create_future(state=PENDING, exception=None, result=None):
    f = Future()
    f._state = state
    f._exception = exception
    f._result = result
    return f


PENDING_FUTURE = create_future(state=PENDING)
RUNNING_FUTURE = create_future(state=RUNNING)
CANCELLED_FUTURE = create_future(state=CANCELLED)
CANCELLED_AND_NOTIFIED_FUTURE = create_future(state=CANCELLED_AND_NOTIFIED)
EXCEPTION_FUTURE = create_future(state=FINISHED, exception=OSError())
SUCCESSFUL_FUTURE = create_future(state=FINISHED, result=42)

WORKER_COUNT = 5


@pytest.fixture
def executor():
    ex = vow.ProcessPoolExecutor(max_workers=WORKER_COUNT)
    yield ex
    ex.shutdown(wait=True)


def run_script(code):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [HERE] + [p for p in sys.path if p])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, env=env, timeout=120)


# ---- ExecutorShutdownTest ----------------------------------------------

def test_run_after_shutdown(executor):
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 5)


def test_interpreter_shutdown():
    # A script that submits and exits without shutdown: the task runs.
    r = run_script("""
        from vow import ProcessPoolExecutor
        from cpython_tasks import sleep_and_print
        if __name__ == "__main__":
            t = ProcessPoolExecutor(5)
            t.submit(sleep_and_print, 1.0, "apple")
        """)
    assert r.stderr == b""
    assert r.stdout.strip() == b"apple"


def test_submit_after_interpreter_shutdown():
    r = run_script("""
        import atexit
        @atexit.register
        def run_last():
            try:
                t.submit(id, None)
            except RuntimeError:
                print("runtime-error")
                raise
        from vow import ProcessPoolExecutor
        if __name__ == "__main__":
            t = ProcessPoolExecutor(5)
            t.submit(id, 42).result()
        """)
    assert "RuntimeError: cannot schedule new futures" in r.stderr.decode()
    assert r.stdout.strip() == b"runtime-error"


def test_hang_issue12364(executor):
    fs = [executor.submit(time.sleep, 0.1) for _ in range(50)]
    executor.shutdown()
    for f in fs:
        f.result()


def test_cancel_futures(executor):
    fs = [executor.submit(time.sleep, .1) for _ in range(50)]
    executor.shutdown(cancel_futures=True)
    cancelled = [fut for fut in fs if fut.cancelled()]
    assert len(cancelled) > 20
    others = [fut for fut in fs if not fut.cancelled()]
    for fut in others:
        assert fut.done(), f"{fut._state=}"
        assert fut.exception() is None
    assert len(others) > 0


def test_hang_gh83386():
    # CPython skips it for its process pool (it hangs there); vow's does
    # not.
    r = run_script("""
        from vow import ProcessPoolExecutor
        from cpython_tasks import sleep_and_print
        if __name__ == "__main__":
            t = ProcessPoolExecutor(max_workers=3)
            t.submit(sleep_and_print, 1.0, "apple")
            t.shutdown(wait=False)
        """)
    assert r.stderr == b""
    assert r.stdout.strip() == b"apple"


def test_context_manager_shutdown():
    with vow.ProcessPoolExecutor(max_workers=5) as e:
        assert list(e.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2,
                                                  3, 4]
    with pytest.raises(RuntimeError):
        e.submit(abs, 1)


def test_del_shutdown():
    executor = vow.ProcessPoolExecutor(max_workers=5)
    res = executor.map(abs, range(-5, 5))
    pool = executor._pool
    thread = pool._thread
    del executor
    gc.collect()
    # The executor's resources are let go once its work is done.
    thread.join(60)
    assert not thread.is_alive() and pool._ctx is None
    assert all([r == abs(v) for r, v in zip(res, range(-5, 5))])


def test_shutdown_no_wait():
    executor = vow.ProcessPoolExecutor(max_workers=5)
    res = executor.map(abs, range(-5, 5))
    thread = executor._pool._thread
    executor.shutdown(wait=False)
    thread.join(60)
    assert not thread.is_alive()
    assert all([r == abs(v) for r, v in zip(res, range(-5, 5))])


# ---- WaitTests ----------------------------------------------------------

def test_20369(executor):
    future = executor.submit(time.sleep, 1.5)
    done, not_done = futures.wait([future, future],
                                  return_when=futures.ALL_COMPLETED)
    assert {future} == done
    assert set() == not_done


def test_first_completed(executor):
    future1 = executor.submit(mul, 21, 2)
    future2 = executor.submit(time.sleep, 1.5)
    done, not_done = futures.wait([CANCELLED_FUTURE, future1, future2],
                                  return_when=futures.FIRST_COMPLETED)
    assert {future1} == done
    assert {CANCELLED_FUTURE, future2} == not_done


def test_first_completed_some_already_completed(executor):
    future1 = executor.submit(time.sleep, 1.5)
    finished, pending = futures.wait(
        [CANCELLED_AND_NOTIFIED_FUTURE, SUCCESSFUL_FUTURE, future1],
        return_when=futures.FIRST_COMPLETED)
    assert {CANCELLED_AND_NOTIFIED_FUTURE, SUCCESSFUL_FUTURE} == finished
    assert {future1} == pending


def test_first_exception(executor):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(sleep_and_raise, 1.5)
    future3 = executor.submit(time.sleep, 3)
    finished, pending = futures.wait([future1, future2, future3],
                                     return_when=futures.FIRST_EXCEPTION)
    assert {future1, future2} == finished
    assert {future3} == pending


def test_first_exception_some_already_complete(executor):
    future1 = executor.submit(divmod, 21, 0)
    future2 = executor.submit(time.sleep, 1.5)
    finished, pending = futures.wait(
        [SUCCESSFUL_FUTURE, CANCELLED_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE,
         future1, future2],
        return_when=futures.FIRST_EXCEPTION)
    assert {SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE,
            future1} == finished
    assert {CANCELLED_FUTURE, future2} == pending


def test_first_exception_one_already_failed(executor):
    future1 = executor.submit(time.sleep, 2)
    finished, pending = futures.wait([EXCEPTION_FUTURE, future1],
                                     return_when=futures.FIRST_EXCEPTION)
    assert {EXCEPTION_FUTURE} == finished
    assert {future1} == pending


def test_all_completed(executor):
    future1 = executor.submit(divmod, 2, 0)
    future2 = executor.submit(mul, 2, 21)
    finished, pending = futures.wait(
        [SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE,
         future1, future2],
        return_when=futures.ALL_COMPLETED)
    assert {SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE,
            EXCEPTION_FUTURE, future1, future2} == finished
    assert set() == pending


def test_timeout(executor):
    future1 = executor.submit(mul, 6, 7)
    future2 = executor.submit(time.sleep, 6)
    finished, pending = futures.wait(
        [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE,
         future1, future2],
        timeout=5, return_when=futures.ALL_COMPLETED)
    assert {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE,
            SUCCESSFUL_FUTURE, future1} == finished
    assert {future2} == pending


def test_pending_calls_race(executor):
    # Many threads' worth of waiting on many futures at once (issue #14406
    # in CPython's thread pool test; here on process workers).
    fs = {executor.submit(time.sleep, 0.01) for i in range(100)}
    futures.wait(fs, return_when=futures.ALL_COMPLETED)
    assert all(f.done() for f in fs)


# ---- AsCompletedTests ---------------------------------------------------

def test_no_timeout(executor):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(mul, 7, 6)
    completed = set(futures.as_completed(
        [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE,
         future1, future2]))
    assert {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE,
            SUCCESSFUL_FUTURE, future1, future2} == completed


def test_zero_timeout(executor):
    future1 = executor.submit(time.sleep, 2)
    completed_futures = set()
    try:
        for future in futures.as_completed(
                [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE,
                 SUCCESSFUL_FUTURE, future1], timeout=0):
            completed_futures.add(future)
    except futures.TimeoutError:
        pass
    assert {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE,
            SUCCESSFUL_FUTURE} == completed_futures


def test_duplicate_futures(executor):
    future1 = executor.submit(time.sleep, 2)
    completed = [f for f in futures.as_completed(
        itertools.repeat(future1, 3))]
    assert len(completed) == 1


def test_correct_timeout_exception_msg():
    futures_list = [CANCELLED_AND_NOTIFIED_FUTURE, PENDING_FUTURE,
                    RUNNING_FUTURE, SUCCESSFUL_FUTURE]
    with pytest.raises(futures.TimeoutError) as cm:
        list(futures.as_completed(futures_list, timeout=0))
    assert str(cm.value) == '2 (of 4) futures unfinished'


# ---- ExecutorTest -------------------------------------------------------

def test_submit(executor):
    future = executor.submit(pow, 2, 8)
    assert 256 == future.result()


def test_submit_keyword(executor):
    future = executor.submit(mul, 2, y=8)
    assert 16 == future.result()
    future = executor.submit(capture, 1, self=2, fn=3)
    assert future.result() == ((1,), {'self': 2, 'fn': 3})
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


def test_map(executor):
    assert list(executor.map(pow, range(10), range(10))) == \
        list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == \
        list(map(pow, range(10), range(10)))


def test_map_exception(executor):
    i = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert i.__next__() == (0, 1)
    assert i.__next__() == (0, 1)
    with pytest.raises(ZeroDivisionError):
        i.__next__()


def test_map_timeout(executor):
    results = []
    try:
        for i in executor.map(time.sleep, [0, 0, 6], timeout=2):
            results.append(i)
    except futures.TimeoutError:
        pass
    else:
        pytest.fail('expected TimeoutError')
    assert [None, None] == results


def test_shutdown_race_issue12456(executor):
    executor.map(str, [2] * (WORKER_COUNT + 1))
    executor.shutdown()


def test_max_workers_negative():
    for number in (0, -1):
        with pytest.raises(ValueError,
                           match="max_workers must be greater than 0"):
            vow.ProcessPoolExecutor(max_workers=number)


def test_free_reference(executor):
    # Issue #14406: the result iterator keeps no reference to the results.
    for obj in executor.map(make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        gc.collect()
        assert wr() is None


def test_map_chunksize(executor):
    def bad_map():
        list(executor.map(pow, range(40), range(40), chunksize=-1))

    ref = list(map(pow, range(40), range(40)))
    assert list(executor.map(pow, range(40), range(40), chunksize=6)) == ref
    assert list(executor.map(pow, range(40), range(40), chunksize=50)) == ref
    assert list(executor.map(pow, range(40), range(40), chunksize=40)) == ref
    with pytest.raises(ValueError):
        bad_map()


def test_traceback(executor):
    # The exception is raised as the worker raised it, its __cause__ the
    # remote traceback.
    future = executor.submit(raise_runtime_error)
    with pytest.raises(Exception) as cm:
        future.result()
    exc = cm.value
    # CPython: type(exc) is RuntimeError. vow: its class is RuntimeError's
    # twin that is also vow.TaskError (its name, str and repr are
    # RuntimeError's), so both except clauses catch it.
    assert type(exc).__mro__[1] is RuntimeError
    assert type(exc).__name__ == "RuntimeError"
    assert isinstance(exc, vow.TaskError)
    assert exc.args == (123,)
    cause = exc.__cause__
    assert type(cause) is futures.process._RemoteTraceback
    assert 'raise RuntimeError(123)  # some comment' in cause.tb


def test_killed_child(executor):
    # CPython: the whole pool breaks, every future fails with
    # BrokenProcessPool, and so does any later submit. vow: the task whose
    # worker was killed fails with WorkerDied (a BrokenProcessPool, so the
    # same except clause catches it); the pool replaces the worker and
    # goes on.
    f = executor.submit(kill_self)
    with pytest.raises(BrokenProcessPool):
        f.result()
    assert isinstance(f.exception(), vow.WorkerDied)
    assert executor.submit(pow, 2, 8).result() == 256


def test_max_tasks_per_child():
    executor = vow.ProcessPoolExecutor(1, max_tasks_per_child=3)
    f1 = executor.submit(os.getpid)
    original_pid = f1.result()
    f2 = executor.submit(os.getpid)
    assert f2.result() == original_pid
    f3 = executor.submit(os.getpid)
    assert f3.result() == original_pid
    f4 = executor.submit(os.getpid)
    new_pid = f4.result()
    assert original_pid != new_pid
    executor.shutdown()


def test_max_tasks_per_child_invalid():
    with pytest.raises(ValueError):
        vow.ProcessPoolExecutor(1, max_tasks_per_child=0)
    with pytest.raises(TypeError):
        vow.ProcessPoolExecutor(1, max_tasks_per_child="3")


def test_max_tasks_early_shutdown():
    executor = vow.ProcessPoolExecutor(3, max_tasks_per_child=1)
    futs = []
    for i in range(6):
        futs.append(executor.submit(mul, i, i))
    executor.shutdown()
    for i, fut in enumerate(futs):
        assert fut.result() == i * i


def test_saturation_and_idle_reuse():
    # vow starts every worker at once (as CPython's fork context does);
    # none is started again while the pool is used.
    executor = vow.ProcessPoolExecutor(4)
    pids = {executor.submit(os.getpid).result() for _ in range(20)}
    assert 1 <= len(pids) <= 4
    executor.shutdown()


# ---- InitializerMixin / FailingInitializerMixin -------------------------

def test_initializer():
    executor = vow.ProcessPoolExecutor(max_workers=5, initializer=init,
                                       initargs=('initialized',))
    futs = [executor.submit(get_init_status) for _ in range(5)]
    for f in futs:
        assert f.result() == 'initialized'
    executor.shutdown()


def test_failing_initializer():
    executor = vow.ProcessPoolExecutor(max_workers=5, initializer=init_fail,
                                       stderr="discard")
    futs = [executor.submit(get_init_status) for _ in range(5)]
    for f in futs:
        with pytest.raises(futures.BrokenExecutor):
            f.result()
    # At some point, the executor should break
    t1 = time.monotonic()
    while not executor._broken:
        if time.monotonic() - t1 >= 5:
            pytest.fail("executor not broken after 5 s.")
        time.sleep(0.01)
    # ... and from this point submit() is guaranteed to fail
    with pytest.raises(futures.BrokenExecutor):
        executor.submit(get_init_status)
    executor.shutdown()


# ---- futures' states, as the executor gives them ------------------------

def test_running_only_once_a_worker_runs_it():
    executor = vow.ProcessPoolExecutor(1)
    first = executor.submit(time.sleep, 1)
    second = executor.submit(mul, 2, 3)
    t = time.monotonic()
    while not first.running() and time.monotonic() - t < 30:
        time.sleep(0.01)
    assert first.running() and not second.running()
    assert second.cancel() and second.cancelled()
    seen = []
    second.add_done_callback(seen.append)
    assert seen == [second]
    with pytest.raises(futures.CancelledError):
        second.exception()
    assert not first.cancel()
    assert first.result() is None
    executor.shutdown()


def test_run_in_executor():
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(
            *[loop.run_in_executor(ex, pow, 3, i) for i in range(5)])
    with vow.ProcessPoolExecutor(2) as ex:
        assert asyncio.run(main()) == [1, 3, 9, 27, 81]
        # The executor outlives the loop asyncio.run closed.
        assert asyncio.run(main()) == [1, 3, 9, 27, 81]


def test_two_threads_submit_and_wait():
    with vow.ProcessPoolExecutor(2) as ex:
        out = []

        def work(k):
            out.append(sum(ex.submit(mul, k, j).result() for j in range(200)))
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(out) == [k * 19900 for k in range(4)]
