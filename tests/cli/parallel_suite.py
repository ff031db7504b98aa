#!/usr/bin/env python3
"""GNU parallel's own cases, run with GNU parallel and with vow run in the
same run, their standard output and exit statuses compared byte for byte.

    parallel_suite.py VOW [CASE-NAME-PART...]

The cases (tests/cli/parallel_suite/*.cases) are ported from GNU parallel
20221122's testsuite (tests-to-run/parallel-local-*.sh), its tutorial and
its examples: the command lines that use only the options vow run claims
(docs/cli.md). A case is a block:

    === SOURCE NAME
    # differs: WHY          (optional: a documented difference, see below)
    # margin: WHY           (optional: hangs on a time margin, see below)
    COMMAND LINE
    ...

Each command line runs in bash (a trailing backslash continues it) in a
fresh directory, once with "parallel" the real GNU parallel and once with
"parallel" being tests/cli/parallel_suite/parallel-as-vow, which runs vow
run (with --shell unless -q is given, as parallel runs a shell unless -q).
After each line its status (pipefail: a failing parallel in a pipeline
shows) is printed as "[N]". A case passes when both sides print the same
bytes. A case marked "differs" is one docs/cli.md lists among vow's
differences from GNU parallel; it is run and reported, and fails the
test only if its WHY is not found in docs/cli.md. A case marked "margin"
holds only while each job starts within a fraction of a second (a
--timeout 0.1 s longer than its job, say), which a machine busy with
other work does not promise, to parallel or to vow: when it differs it
runs once more, both sides again, after the other cases.

Exits 0 when every unmarked case passes, 1 otherwise, 77 (skip) when GNU
parallel is not installed."""
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "parallel_suite")
DOCS = os.path.join(HERE, "..", "..", "docs", "cli.md")
TIMEOUT = 180

PREAMBLE = r"""
set -o pipefail
stdout() { "$@" 2>&1; }
stdsort() { "$@" 2>&1 | LC_ALL=C sort; }
export -f stdout stdsort
"""


class Case:
    def __init__(self, source, name):
        self.source, self.name = source, name
        self.lines, self.differs, self.margin = [], None, None

    @property
    def title(self):
        return f"{self.source} {self.name}"


def read_cases(path):
    cases, case, pending = [], None, ""
    for raw in open(path, encoding="utf-8", errors="surrogateescape"):
        line = raw.rstrip("\n")
        if line.startswith("=== "):
            source, _, name = line[4:].partition(" ")
            case = Case(source, name)
            cases.append(case)
            continue
        if case is None or not line.strip():
            continue
        if line.startswith("# differs:"):
            case.differs = line[len("# differs:"):].strip()
            continue
        if line.startswith("# margin:"):
            case.margin = line[len("# margin:"):].strip()
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + "\n"
            continue
        case.lines.append(pending + line)
        pending = ""
    return cases


def script(case):
    parts = [PREAMBLE]
    for line in case.lines:
        parts.append(f"{{ {line}\n}}; echo \"[$?]\"\n")
    return "".join(parts)


def run_side(case, bindir, home, work):
    """Runs the case in the directory work (made fresh, removed after):
    both sides run in the same path, which some cases print."""
    os.mkdir(work)
    env = dict(os.environ, HOME=home, LC_ALL="C.UTF-8", TMPDIR=work)
    env["PATH"] = bindir + ":" + env["PATH"] if bindir else env["PATH"]
    env.pop("PARALLEL", None)
    try:
        proc = subprocess.run(["bash", "-c", script(case)], cwd=work,
                              env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=TIMEOUT)
        return proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"") + b"\n[timed out]\n", e.stderr or b""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    vow = os.path.abspath(sys.argv[1])
    only = sys.argv[2:]
    if shutil.which("parallel") is None:
        print("skip: GNU parallel is not installed")
        sys.exit(77)
    docs = open(DOCS, encoding="utf-8").read()
    home = tempfile.mkdtemp(prefix="vowpar-home.")
    os.makedirs(os.path.join(home, ".parallel"))
    open(os.path.join(home, ".parallel", "will-cite"), "w").close()
    shim = tempfile.mkdtemp(prefix="vowpar-bin.")
    shutil.copy(os.path.join(CASES, "parallel-as-vow"),
                os.path.join(shim, "parallel"))
    os.environ["VOW"] = vow
    cases = []
    for path in sorted(glob.glob(os.path.join(CASES, "*.cases"))):
        cases += read_cases(path)
    if only:
        cases = [c for c in cases if any(o in c.title for o in only)]
    # GNU parallel measures the longest command line once per $HOME.
    subprocess.run(["parallel", "--max-line-length-allowed"],
                   env=dict(os.environ, HOME=home),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    scratch = tempfile.mkdtemp(prefix="vowpar.")

    def both(numbered):
        k, case = numbered
        work = os.path.join(scratch, str(k))
        return (run_side(case, None, home, work),
                run_side(case, shim, home, work))

    passed, documented, failed, undocumented = [], [], [], []
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        outcomes = list(ex.map(both, enumerate(cases)))
    for k, (case, ((want, _), (got, err))) in enumerate(zip(cases,
                                                             outcomes)):
        if want != got and case.margin:
            (want, _), (got, err) = both((k, case))
            if want == got:
                print(f"note: {case.title} ({case.margin}) passed when "
                      f"run again")
        if want == got:
            passed.append(case)
            if case.differs:
                print(f"note: {case.title} is marked as a difference "
                      f"but passes")
            continue
        if case.differs:
            documented.append(case)
            if case.differs not in docs:
                undocumented.append(case)
                print(f"FAIL {case.title}: marked \"{case.differs}\", "
                      f"which docs/cli.md does not say")
            continue
        failed.append(case)
        print(f"FAIL {case.title}")
        print("--- GNU parallel")
        print(want.decode(errors="replace"), end="")
        print("--- vow run")
        print(got.decode(errors="replace"), end="")
        if err:
            print("--- vow run's stderr")
            print(err.decode(errors="replace")[-2000:], end="")
        print()
    for tmp in (home, shim, scratch):
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(cases)} cases: {len(passed)} the same as GNU parallel, "
          f"{len(documented)} documented differences, {len(failed)} "
          f"failed")
    sys.exit(1 if failed or undocumented else 0)


if __name__ == "__main__":
    main()
