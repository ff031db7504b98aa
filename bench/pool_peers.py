"""The Python peers of bench/pool, on the same work, printed the same way:
"measure<TAB>value<TAB>unit". Run with Debian's /usr/bin/python3.

    pool_peers.py [N]   items for Pool.map (default 1,000,000)

Per-task submission is measured on fewer tasks (N/10 for apply_async,
N/20 for concurrent.futures): at their rates a million would take
minutes; the rate is what is compared."""
import concurrent.futures
import multiprocessing
import os
import sys
import time
import tracemalloc


def noop(_=None):
    return None


def echo(x):
    return x


def getpid(_=None):
    return os.getpid()


def sleep(seconds):
    time.sleep(seconds)


def out(measure, value, unit):
    print(f"{measure}\t{value:.2f}\t{unit}", flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    ctx = multiprocessing.get_context("fork")

    with ctx.Pool(1) as pool:
        # (g) an idle worker's resident memory, forked from a parent that
        # has done nothing yet.
        pid = pool.apply(getpid)
        time.sleep(0.2)
        out("g_python_worker_rss_idle_kib", rss_kib(pid), "KiB")

    with ctx.Pool(2) as pool:
        # (a) apply_async, one task at a time, each with its own result.
        count = n // 10
        t0 = time.perf_counter()
        results = [pool.apply_async(noop) for _ in range(count)]
        for r in results:
            r.get()
        out("a_apply_async_tasks_per_s", count / (time.perf_counter() - t0),
            "tasks/s")

        # (b) map with Python's best chunk size for this; the list of
        # items is built inside the clock, as vow packs its items inside.
        t0 = time.perf_counter()
        pool.map(echo, list(range(n)), chunksize=1000)
        out("b_pool_map_items_per_s", n / (time.perf_counter() - t0),
            "items/s")

    with ctx.Pool(1) as pool:
        # (c) sequential round trips of one small task.
        for _ in range(100):
            pool.apply(echo, (7,))
        us = []
        for _ in range(10000):
            t0 = time.perf_counter()
            pool.apply(echo, (7,))
            us.append((time.perf_counter() - t0) * 1e6)
        us.sort()
        out("c_pool_apply_p50_us", us[len(us) // 2], "us")
        out("c_pool_apply_p99_us", us[len(us) * 99 // 100], "us")


    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        count = n // 20
        list(ex.map(noop, range(100)))  # start the workers
        t0 = time.perf_counter()
        futures = [ex.submit(noop) for _ in range(count)]
        for f in futures:
            f.result()
        out("a_futures_tasks_per_s", count / (time.perf_counter() - t0),
            "tasks/s")

    with ctx.Pool(1) as pool:
        # (f) parent memory per pending task: the worker is busy, so every
        # apply_async waits in the parent.
        pool.apply_async(sleep, (30,))
        time.sleep(0.2)
        count = n // 5
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        pending = [pool.apply_async(noop) for _ in range(count)]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out("f_python_bytes_per_pending_task", (after - before) / count,
            "bytes")
        del pending
        pool.terminate()


if __name__ == "__main__":
    main()
