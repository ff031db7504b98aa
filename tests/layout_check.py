#!/usr/bin/env python3
"""Checks the source tree against docs/ARCHITECTURE.md.

Fails, saying where, when:
  - an #include "..." in one folder reaches a header of another folder
    that the ```arrows block does not let it use;
  - the arrows themselves make a circle;
  - two C files (.c, .h) share a name, except a public header
    include/vow/X.h with its implementation X.c;
  - a file outside runner/entry.c in libvow's folders calls exit();
  - one of the pool's front ends (map, stream, collect) includes
    pool_internal.h instead of pool_submit.h;
  - a pool/ file calls a function of another of the pool's concerns
    that the ```pool block does not let it call (calls go one way).

Usage: layout_check.py SOURCE_DIR
"""
import collections
import os
import re
import sys

# The pool's front ends call its engine one way, through pool_submit.h:
# they never see struct vow_pool or its workers.
FRONT_ENDS = tuple(os.path.join("pool", f)
                   for f in ("pool_map.c", "pool_stream.c", "collect.c"))

LIBRARY = ("base", "proto", "proc", "core", "mpi", "worker", "runner", "pool")


def read_arrows(root):
    text = open(os.path.join(root, "docs", "ARCHITECTURE.md")).read()
    m = re.search(r"```arrows\n(.*?)```", text, re.S)
    if not m:
        sys.exit("docs/ARCHITECTURE.md has no ```arrows block")
    arrows = {}
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        left, _, right = line.partition("->")
        arrows[left.strip()] = set(right.split())
    return arrows


def read_pool_concerns(root):
    """The ```pool block: each line `concern: files -> concerns it may
    call`."""
    text = open(os.path.join(root, "docs", "ARCHITECTURE.md")).read()
    m = re.search(r"```pool\n(.*?)```", text, re.S)
    if not m:
        sys.exit("docs/ARCHITECTURE.md has no ```pool block")
    of_file, may_call = {}, {}
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        name, _, rest = line.partition(":")
        files, _, calls = rest.partition("->")
        name = name.strip()
        for f in files.split():
            of_file[f] = name
        may_call[name] = set(calls.split())
    return of_file, may_call


DEFINITION = re.compile(r"^[A-Za-z][\w \*]*?\b(vow__\w+)\s*\([^;{]*\)\s*\{",
                        re.M | re.S)
CALL = re.compile(r"\b(vow__\w+)\s*\(")


def pool_calls(root, problems):
    """Between the pool's concerns, calls go one way: a function of
    another concern is called only when the block draws that arrow."""
    of_file, may_call = read_pool_concerns(root)
    folder = os.path.join(root, "pool")
    code, defined_in = {}, {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".c"):
            continue
        if f not in of_file:
            problems.append("pool/%s is in no concern of the ```pool block"
                            % f)
            continue
        text = open(os.path.join(folder, f), errors="replace").read()
        code[f] = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        for m in DEFINITION.finditer(code[f]):
            defined_in[m.group(1)] = f
    for f, text in sorted(code.items()):
        here = of_file[f]
        for fn in sorted(set(CALL.findall(text))):
            there = of_file.get(defined_in.get(fn, f))
            if there != here and there not in may_call[here]:
                problems.append("pool/%s (%s) calls %s of pool/%s (%s): "
                                "%s -> %s is not drawn in the ```pool block"
                                % (f, here, fn, defined_in[fn], there,
                                   here, there))


def c_files(root):
    for top in sorted(os.listdir(root)):
        path = os.path.join(root, top)
        if top.startswith((".", "build")) or not os.path.isdir(path):
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(folder, name), root)


def concern(path):
    """The folder that names a file's concern: its top folder, or
    include/vow for the public API."""
    parts = path.split(os.sep)
    return "include/vow" if parts[0] == "include" else parts[0]


def find_circle(arrows):
    state = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(arrows.get(node, ())):
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in state:
                found = visit(nxt, trail + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(arrows):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def main():
    root = sys.argv[1]
    arrows = read_arrows(root)
    problems = []

    circle = find_circle(arrows)
    if circle:
        problems.append("the arrows make a circle: " + " -> ".join(circle))

    files = list(c_files(root))
    by_name = collections.defaultdict(list)
    for f in files:
        by_name[os.path.basename(f)].append(f)
    for name, paths in sorted(by_name.items()):
        if len(paths) > 1:
            problems.append("two files named %s: %s" % (name, ", ".join(paths)))
    public = {os.path.basename(f)[:-2] for f in files
              if f.startswith(os.path.join("include", "vow"))}
    by_stem = collections.defaultdict(set)
    for f in files:
        by_stem[os.path.basename(f)[:-2]].add(os.path.dirname(f))
    for stem, folders in sorted(by_stem.items()):
        folders = set(folders) - ({os.path.join("include", "vow")}
                                  if stem in public else set())
        if len(folders) > 1:
            problems.append("%s.c/.h in more than one folder: %s"
                            % (stem, ", ".join(sorted(folders))))

    seen_edges = set()
    for f in files:
        here = concern(f)
        text = open(os.path.join(root, f), errors="replace").read()
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M):
            if f in FRONT_ENDS and os.path.basename(inc) == "pool_internal.h":
                problems.append('%s includes "pool_internal.h": a front end '
                                "uses the engine through pool_submit.h only"
                                % f)
            if inc.startswith("vow/"):
                continue  # the public API: anyone's
            targets = by_name.get(os.path.basename(inc), [])
            owners = {concern(t) for t in targets}
            if not owners or here in owners:
                continue  # generated (version.h) or its own folder's
            there = sorted(owners)[0]
            seen_edges.add((here, there))
            if here not in arrows:
                problems.append("%s: folder %s is not in the arrows"
                                % (f, here))
            elif there not in arrows[here]:
                problems.append('%s includes "%s": %s -> %s is not an '
                                "arrow of docs/ARCHITECTURE.md"
                                % (f, inc, here, there))
        if here in LIBRARY and f != os.path.join("runner", "entry.c"):
            code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
            for m in re.finditer(r"(?<![_\w])exit\s*\(", code):
                line = code.count("\n", 0, m.start()) + 1
                problems.append("%s:%d calls exit(): only runner/entry.c "
                                "ends the process" % (f, line))

    pool_calls(root, problems)

    # An arrow nothing uses is a drawing the code does not match.
    for here, theres in sorted(arrows.items()):
        for there in sorted(theres):
            if (here, there) not in seen_edges:
                problems.append("the arrow %s -> %s is drawn but no file "
                                "uses it" % (here, there))

    for p in problems:
        print("layout: " + p)
    if problems:
        return 1
    print("layout: %d C files in %d folders keep the %d arrows"
          % (len(files), len({concern(f) for f in files}),
             sum(len(v) for v in arrows.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
