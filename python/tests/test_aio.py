"""Tasks as asyncio futures: the pool driven from asyncio's loop through
add_reader, chains written with await, cancel through the future."""
import asyncio

import pytest

import vow
from conftest import TASKS


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_three_calls_chained_with_await():
    async def main():
        with vow.Pool(workers=2, module=TASKS) as pool:
            a = await pool.submit("add", 1, 2)
            b = await pool.submit("square", a)
            c = await pool.submit("add", b, 1)
            return c
    assert run(main()) == 10


def test_gather_many_and_failures():
    async def main():
        with vow.Pool(workers=2, module=TASKS) as pool:
            values = await asyncio.gather(
                *[pool.submit("square", i) for i in range(200)])
            with pytest.raises(ValueError):
                await pool.submit("fail", "in a coroutine")
            return values
    assert run(main()) == [i * i for i in range(200)]


def test_the_asyncio_loop_keeps_running_while_tasks_run():
    async def main():
        with vow.Pool(workers=1, module=TASKS) as pool:
            ticks = 0
            fut = pool.submit("sleep_then", "done", 0.5).aio()
            while not fut.done():
                await asyncio.sleep(0.05)
                ticks += 1
            return await fut, ticks
    value, ticks = run(main())
    assert value == "done" and ticks >= 5


def test_cancelling_the_future_cancels_the_task():
    async def main():
        with vow.Pool(workers=1, module=TASKS) as pool:
            task = pool.submit("sleep_then", 1, 30)
            fut = task.aio()
            await asyncio.sleep(0.1)
            fut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await fut
            with pytest.raises(vow.Cancelled):
                task.result(timeout=30)
            return await pool.submit("add", 2, 3)
    assert run(main()) == 5


def test_timeout_in_a_coroutine():
    async def main():
        with vow.Pool(workers=1, module=TASKS) as pool:
            with pytest.raises(vow.TaskTimeout):
                await pool.submit_timeout(0.2, "sleep_then", 1, 30)
            return True
    assert run(main())


def test_async_with_shuts_down_without_blocking_the_loop():
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        t = asyncio.ensure_future(ticker())
        async with vow.Pool(workers=2, module=TASKS) as pool:
            tasks = [pool.submit("sleep_then", i, 0.3) for i in range(2)]
            before = ticks
        # Leaving the block waited for the two tasks (0.3 s) with the
        # loop running meanwhile.
        assert [task.result() for task in tasks] == [0, 1]
        assert ticks - before >= 5
        t.cancel()
        with pytest.raises(RuntimeError):
            pool.submit("add", 1, 1)
    asyncio.run(main())
