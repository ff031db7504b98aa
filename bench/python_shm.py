"""A big numpy array to a worker and its sum back, from a Python parent:
vow.Pool beside multiprocessing.Pool (the array pickled through a pipe),
multiprocessing.shared_memory written by hand (the array copied into a
SharedMemory block, its name sent, the worker attaching to it) and
joblib (which memory-maps big arrays) when installed, in the same run.

    PYTHONPATH=<build>/python python3 bench/python_shm.py [MiB]

MiB defaults to 256. Each figure is the median of 3 rounds, the rounds
interleaved (each peer, then the next round). vow_share shares the array
once (pool.share) and sends the handle. memcpy_fresh and memcpy_warm are
the floor: the array copied once into new memory, and into memory whose
pages are already there. Also: 8 tasks on the same array, 2 workers: the
parent's peak RSS growth over the array (VmHWM, reset through
/proc/self/clear_refs). Prints "measure<TAB>value<TAB>
unit" lines, then the table."""
import multiprocessing
import os
import sys
import time
from multiprocessing import shared_memory

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import py_tasks  # noqa: E402
import vow  # noqa: E402

try:
    import joblib
except ImportError:  # python3-joblib
    joblib = None

ROUNDS = 3


def kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_growth_mib(run):
    """run()'s peak RSS growth over what this process held before."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = kib("VmRSS")
    run()
    return (kib("VmHWM") - before) / 1024


def timed(run):
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def sum_by_hand(a):
    """multiprocessing.shared_memory by hand: copy in, send the name."""
    block = shared_memory.SharedMemory(create=True, size=a.nbytes)
    try:
        view = np.ndarray(a.shape, a.dtype, buffer=block.buf)
        view[...] = a
        del view
        return block, (block.name, a.shape, a.dtype.str)
    except BaseException:
        block.close()
        block.unlink()
        raise


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    a = np.arange(mib << 17, dtype=np.float64)
    want = float(a.sum())
    ctx = multiprocessing.get_context("fork")
    times = {k: [] for k in ("vow", "vow_share", "mp", "by_hand", "joblib",
                             "memcpy_fresh", "memcpy_warm")}
    rss = {k: [] for k in times}
    with vow.Pool(2) as vp, ctx.Pool(2) as mp:
        vp.submit(py_tasks.noop).result()
        mp.apply(py_tasks.noop)

        def by_hand():
            block, ref = sum_by_hand(a)
            try:
                assert mp.apply(py_tasks.sum_shared, (ref,)) == want
            finally:
                block.close()
                block.unlink()

        def by_hand_8():
            block, ref = sum_by_hand(a)
            try:
                rs = [mp.apply_async(py_tasks.sum_shared, (ref,))
                      for _ in range(8)]
                assert all(r.get() == want for r in rs)
            finally:
                block.close()
                block.unlink()

        def vow_share(n):
            with vp.share(a) as shared:
                assert all(t.result() == want for t in
                           [vp.submit(py_tasks.total, shared)
                            for _ in range(n)])

        warm = np.empty_like(a)
        warm[...] = 1.0  # its pages are there

        runs = {
            "vow": (lambda: vp.submit(py_tasks.total, a).result() == want,
                    lambda: all(t.result() == want for t in
                                [vp.submit(py_tasks.total, a)
                                 for _ in range(8)])),
            "vow_share": (lambda: vow_share(1), lambda: vow_share(8)),
            "mp": (lambda: mp.apply(py_tasks.total, (a,)) == want,
                   lambda: all(r.get() == want for r in
                               [mp.apply_async(py_tasks.total, (a,))
                                for _ in range(8)])),
            "by_hand": (by_hand, by_hand_8),
        }
        if joblib is not None:
            par = joblib.Parallel(n_jobs=2, max_nbytes="1M")
            delayed = joblib.delayed(py_tasks.total)
            runs["joblib"] = (lambda: par([delayed(a)]),
                              lambda: par([delayed(a)] * 8))
        # The floor: the array's bytes copied once, into new memory (as
        # a.copy()) and into memory already there.
        runs["memcpy_fresh"] = (a.copy, lambda: None)
        runs["memcpy_warm"] = (lambda: np.copyto(warm, a), lambda: None)
        for _ in range(ROUNDS):
            for name, (one, eight) in runs.items():
                times[name].append(timed(one))
                rss[name].append(peak_growth_mib(eight))
    print(f"# {mib} MiB of float64s, summed in a worker; 2 workers; "
          f"median of {ROUNDS}")
    rows = []
    for name in times:
        if not times[name]:
            continue
        t = sorted(times[name])[ROUNDS // 2]
        r = sorted(rss[name])[ROUNDS // 2]
        print(f"{name}_s\t{t:.3f}\ts")
        print(f"{name}_8_tasks_peak_rss_growth_mib\t{r:.0f}\tMiB")
        rows.append((name, t, r))
    print()
    print(f"{'':28} {'one task (s)':>13} {'GB/s':>7} {'8 tasks: RSS growth':>20}")
    for name, t, r in rows:
        print(f"{name:28} {t:13.3f} {a.nbytes / t / 1e9:7.2f} {r:17.0f} MiB")


if __name__ == "__main__":
    main()
