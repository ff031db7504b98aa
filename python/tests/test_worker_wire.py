"""The Python worker, a real process on a stdio channel, held to
docs/protocol.md's golden vectors byte for byte, as tests/test_proto.c
holds the C encoder and decoder: the frames the spec shows going to a
worker produce the frames the spec shows coming back."""
import os
import re
import struct
import subprocess
import sys

from vow import codec

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "..", "..", "docs", "protocol.md")
PROGRESS = 5


def golden():
    """{name: frame bytes} from the spec's ```hex golden=NAME blocks."""
    text = open(SPEC, encoding="utf-8").read()
    return {name: bytes.fromhex(body)
            for name, body in re.findall(r"```hex golden=(\w+)\n(.*?)```",
                                         text, re.S)}


def frame(body):
    return struct.pack(">I", len(body)) + body


class Worker:
    def __init__(self, tmp_path):
        module = tmp_path / "spec_tasks.py"
        # The spec's examples: sum([1, 2, 3]) is 6, and pi answers 3.5.
        module.write_text("import builtins\n\n"
                          "def sum(xs):\n    return builtins.sum(xs)\n\n"
                          "def pi(n):\n    return 3.5\n")
        env = dict(os.environ, VOW_WORKER_CHANNEL="stdio",
                   VOW_WORKER_QUIET="1")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "vow.worker", str(module)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def frame(self):
        """The next frame, header included; PROGRESS frames (a task that
        ran past 5 ms on a busy host) are passed over."""
        while True:
            head = self.p.stdout.read(4)
            assert len(head) == 4, "the worker closed its channel"
            body = self.p.stdout.read(struct.unpack(">I", head)[0])
            if codec.unpackb(body)[0] != PROGRESS:
                return head + body


def test_the_python_worker_speaks_the_golden_vectors(tmp_path):
    g = golden()
    w = Worker(tmp_path)
    try:
        # HELLO with the worker's own pid for the spec's 4242; the names
        # may come in any order, and the Python worker sorts them.
        hello = g["hello"][4:]
        pid = codec.packb(4242)
        names = codec.packb(["sum", "pi"])
        assert pid in hello and names in hello
        want = hello.replace(pid, codec.packb(w.p.pid)).replace(
            names, codec.packb(["pi", "sum"]))
        assert w.frame() == frame(want)

        w.send(g["tasks"])
        assert w.frame() == g["results"]

        w.send(g["ping"])
        assert w.frame() == g["pong"]

        # MAPS: sum over [[1, 2], [3, 4]] as chunk 5: one RESULTS entry
        # holding the item results in order.
        w.send(g["maps"])
        assert w.frame() == frame(bytes.fromhex("92 03 91 92 05 92 03 07"))

        w.send(g["shutdown"])
        assert w.p.stdout.read() == b""
        assert w.p.wait(timeout=30) == 0
    finally:
        if w.p.poll() is None:
            w.p.kill()
            w.p.wait()
