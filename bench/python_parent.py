"""vow's pool from a Python parent beside Python's own pools, on the same
work from the same interpreter: multiprocessing.Pool, ProcessPoolExecutor
and joblib (loky), 2 workers each.

    PYTHONPATH=<build>/python python3 bench/python_parent.py [N]

N is the map's item count (default 1,000,000). Per-task submission runs
N/10 tasks on vow and apply_async, three times, the median kept; N/100
once on the executor and joblib (their rates are what is compared). Each
map is given range(N) and timed three times, the median kept; vow's five
times, by turns with its floor, list(range(N)), the medians kept. Prints
"measure<TAB>value<TAB>unit" lines, then the table."""
import collections
import concurrent.futures
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import py_tasks  # noqa: E402  (the peers import the workers' functions)
import vow  # noqa: E402

try:
    import joblib
except ImportError:  # python3-joblib
    joblib = None

TASKS = os.path.join(HERE, "py_tasks.py")
ROUND_TRIPS = 5000
values = {}


def out(measure, value, unit):
    values[measure] = value
    print(f"{measure}\t{value:.2f}\t{unit}", flush=True)


def p50(samples):
    samples.sort()
    return samples[len(samples) // 2]


def round_trips(call, count=ROUND_TRIPS):
    for _ in range(min(100, count)):
        call()
    us = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        us.append((time.perf_counter() - t0) * 1e6)
    return p50(us)


def rate(count, run, rounds=1):
    """count / the median time of run()."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return count / p50(times)


def bench_vow(n):
    with vow.Pool(2, module=TASKS) as pool:
        pool.map(py_tasks.noop, range(100))  # the workers are up
        count = n // 10

        def submit_all():
            tasks = [pool.submit(py_tasks.noop) for _ in range(count)]
            vow.wait(tasks)
            for t in tasks:
                t.result()
        out("submit_vow", rate(count, submit_all, 3), "tasks/s")
        # The map and its floor by turns, so that both meet the memory in
        # the same state (a million ints come from freed arenas or fresh
        # pages alike).
        maps, floors = [], []
        for _ in range(5):
            maps.append(rate(n, lambda: pool.map(py_tasks.echo, range(n))))
            floors.append(rate(n, lambda: list(range(n))))
        out("map_vow", p50(maps), "items/s")
        out("floor_map", p50(floors), "items/s")
        # What any pool of processes must spend on that map, wherever it
        # runs: the calls themselves (in a worker, on ints it makes from
        # what it reads) and the parent's list of results (the floor).
        # On 2 cores, no map can finish sooner than half their sum.
        calls = rate(n, lambda: collections.deque(
            map(py_tasks.echo, range(n)), maxlen=0), 3)
        out("calls_map", calls, "items/s")
        out("ceiling_map", 2 / (1 / p50(floors) + 1 / calls), "items/s")
        out("maplist_vow", rate(n, lambda: pool.map(
            py_tasks.echo, list(range(n))), 3), "items/s")
    with vow.Pool(1, module=TASKS) as pool:
        out("rtt_vow", round_trips(
            lambda: pool.submit(py_tasks.echo, 7).result()), "us")


def bench_multiprocessing(n):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.map(py_tasks.noop, range(100))
        count = n // 10

        def submit_all():
            for r in [pool.apply_async(py_tasks.noop) for _ in range(count)]:
                r.get()
        out("submit_mp", rate(count, submit_all, 3), "tasks/s")
        out("map_mp", rate(n, lambda: pool.map(py_tasks.echo, range(n),
                                                chunksize=1000), 3), "items/s")
        out("maplist_mp", rate(n, lambda: pool.map(
            py_tasks.echo, list(range(n)), chunksize=1000), 3), "items/s")
    with ctx.Pool(1) as pool:
        out("rtt_mp", round_trips(lambda: pool.apply(py_tasks.echo, (7,))),
            "us")


def bench_executor(n):
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        list(ex.map(py_tasks.noop, range(100)))
        count = n // 100

        def submit_all():
            for f in [ex.submit(py_tasks.noop) for _ in range(count)]:
                f.result()
        out("submit_cf", rate(count, submit_all), "tasks/s")
        out("map_cf", rate(n, lambda: list(ex.map(
            py_tasks.echo, range(n), chunksize=1000)), 3), "items/s")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        out("rtt_cf", round_trips(
            lambda: ex.submit(py_tasks.echo, 7).result()), "us")


def bench_joblib(n):
    delayed = joblib.delayed
    with joblib.Parallel(n_jobs=2) as par:
        par(delayed(py_tasks.noop)() for _ in range(100))
        count = n // 100
        out("submit_joblib", rate(count, lambda: joblib.Parallel(
            n_jobs=2, batch_size=1)(delayed(py_tasks.noop)()
                                    for _ in range(count))), "tasks/s")
        out("map_joblib", rate(n, lambda: joblib.Parallel(
            n_jobs=2, batch_size=1000)(delayed(py_tasks.echo)(x)
                                       for x in range(n))), "items/s")
        out("rtt_joblib", round_trips(
            lambda: par([delayed(py_tasks.echo)(7)]), 300), "us")


def table():
    rows = [
        ("submit 1 by 1, then wait (tasks/s)", "submit", "hi",
         ("mp", 20, "apply_async")),
        ("map of range(N) (items/s)", "map", "hi",
         ("floor", 0.8, "the floor")),
        ("map of list(range(N)), list timed", "maplist", "hi", None),
        ("round trip p50 (us)", "rtt", "lo", ("mp", 0.5, "Pool.apply")),
    ]
    peers = [("mp", "multiprocessing"), ("cf", "ProcessPoolExecutor"),
             ("joblib", "joblib")]
    print()
    print(f"{'measure':36} {'vow':>12} " + " ".join(
        f"{name:>20}" for _, name in peers) + "   target")
    for title, key, better, goal in rows:
        v = values.get(f"{key}_vow", 0)
        cells = []
        for p, _ in peers:
            w = values.get(f"{key}_{p}")
            cells.append(f"{w:>12.1f} ({v / w:5.2f}x)" if w else f"{'-':>20}")
        verdict = ""
        if goal is not None:
            peer, target, what = goal
            base = values.get("floor_map" if peer == "floor" else
                              f"{key}_{peer}", 0)
            ratio = v / base if base else 0
            ok = ratio >= target if better == "hi" else 0 < ratio <= target
            sign = ">=" if better == "hi" else "<="
            verdict = (f"   {ratio:.2f}x, {sign} {target}x {what}: "
                       f"{'met' if ok else 'MISSED'}")
        print(f"{title:36} {v:>12.1f} " + " ".join(cells) + verdict)
    print("(ratios are vow / peer)")
    floor = values.get("floor_map", 0)
    if floor:
        print(f"map floor: list(range(N)) alone, timed by turns with vow's "
              f"map, runs at {floor:,.0f} items/s here "
              f"({values.get('floor_list', 0):,.0f} at the start)")
    ceiling = values.get("ceiling_map", 0)
    if ceiling and floor:
        print(f"map ceiling on 2 cores: the calls ({values['calls_map']:,.0f}"
              f" items/s alone) and the floor, shared by both cores: "
              f"{ceiling:,.0f} items/s = {ceiling / floor:.2f}x the floor "
              f"for any pool; vow's map is {values.get('map_vow', 0) / ceiling:.2f}"
              f"x of it")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"# Python {sys.version.split()[0]}, 2 workers, N = {n:,}",
          flush=True)
    # The floor of any map in this interpreter: making its list of N
    # results at all (ints, as echo returns), with no pool.
    out("floor_list", rate(n, lambda: list(range(n)), 3), "items/s")
    bench_vow(n)
    bench_multiprocessing(n)
    bench_executor(n)
    if joblib is not None:
        bench_joblib(n)
    else:
        print("# joblib: not installed (python3-joblib)", flush=True)
    table()


if __name__ == "__main__":
    main()
