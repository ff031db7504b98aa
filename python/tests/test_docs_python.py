"""docs/python.md's snippets run as written: the task module is written
to a folder as mytasks.py, and each of the others runs there as a
script of its own (imports included), printing what the guide says."""
import os
import re
import subprocess
import sys

import pytest

GUIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     "docs", "python.md")


def snippets():
    text = open(GUIDE).read()
    head = text[:text.index("## Two faces")]  # the chained-calls section
    return re.findall(r"```python\n(.*?)```", head, re.S)


def faces_snippet():
    text = open(GUIDE).read()
    part = text[text.index("## Two faces"):text.index("## The pool")]
    return re.findall(r"```python\n(.*?)```", part, re.S)


def test_the_guide_has_its_four_snippets():
    blocks = snippets()
    assert len(blocks) == 4
    assert "def fetch" in blocks[0]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_snippet_runs_as_written(tmp_path, k):
    blocks = snippets()
    if "twisted" in blocks[k]:
        pytest.importorskip("twisted")
    (tmp_path / "mytasks.py").write_text(blocks[0])
    script = tmp_path / f"snippet{k}.py"
    script.write_text(blocks[k])
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == f"total {sum(range(1000))}"


def test_the_two_faces_snippet_runs_as_written(tmp_path):
    (block,) = faces_snippet()
    script = tmp_path / "faces.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        str([x ** 3 for x in range(10)]), "1024",
        str([pow(x, x) for x in range(5)])]


def test_the_share_snippet_runs_as_written(tmp_path):
    pytest.importorskip("numpy")
    text = open(GUIDE).read()
    part = text[text.index("### Big arrays"):text.index("## Where vow")]
    (block,) = re.findall(r"```python\n(.*?)```", part, re.S)
    script = tmp_path / "share.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    starmap, submitted = [eval(line) for line in run.stdout.splitlines()]
    assert starmap == submitted and len(starmap) == 8
    assert [b - a for a, b in zip(starmap, starmap[1:])] == [1.0] * 7
