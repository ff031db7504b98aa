"""The peer of bench-transport over MPI: mpi4py.futures' MPIPoolExecutor
on the same work, task by task (submit per task), with the same measures.

    mpiexec -n 3 /usr/bin/python3 -m mpi4py.futures bench/mpi_peer.py TASKS TRIPS

Rank 0 runs this script; ranks 1 and 2 are the executor's workers.
"""
import os
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def noop():
    return None


def echo(x):
    return x


def ppid():
    return os.getppid(), os.getpid()


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def out(measure, value, unit):
    print(f"{measure}\t{value:.2f}\t{unit}", flush=True)


def main():
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    trips = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with MPIPoolExecutor() as ex:
        list(ex.map(echo, range(100)))  # every worker up
        t0 = time.perf_counter()
        futures = [ex.submit(noop) for _ in range(tasks)]
        for f in futures:
            f.result()
        out("tasks_per_s", tasks / (time.perf_counter() - t0), "tasks/s")
        lat = []
        for i in range(trips + 50):
            t = time.perf_counter()
            ex.submit(echo, 7).result()
            if i >= 50:
                lat.append((time.perf_counter() - t) * 1e6)
        lat.sort()
        out("rt_p50_us", lat[len(lat) // 2], "us")
        out("rt_p99_us", lat[len(lat) * 99 // 100], "us")
        # Idle: this process and a worker rank over 2 s with nothing to do.
        worker = ex.submit(ppid).result()[1]
        me0, w0 = time.process_time(), cpu_s(worker)
        time.sleep(2)
        me1, w1 = time.process_time(), cpu_s(worker)
        out("idle_cpu_pct_parent", 100 * (me1 - me0) / 2, "%")
        out("idle_cpu_pct_agent", 100 * (w1 - w0) / 2, "%")


if __name__ == "__main__":
    main()
