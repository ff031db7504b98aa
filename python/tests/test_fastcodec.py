"""vow._fastcodec, the parent's msgpack paths in C, against msgpack's own
unpacker and packer on the same bytes; and maps through a real pool
giving the same results with it and without it (VOW_FASTCODEC=0)."""
import datetime
import fractions
import json
import os
import random
import struct
import subprocess
import sys

import msgpack
import pytest

from vow import codec
from conftest import TASKS

fastcodec = codec.fastcodec
if fastcodec is None:
    if os.environ.get("VOW_FASTCODEC_BUILT") == "1":
        raise AssertionError("vow._fastcodec was built but does not load")
    pytest.skip("vow._fastcodec is not built here (no python3-dev)",
                allow_module_level=True)

read_fast = codec.stream_reader()


def read_msgpack(data):
    """What codec.stream_reader reads with msgpack alone."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                object_hook=codec._array_of,
                                ext_hook=codec._ext_hook)
    unpacker.feed(data)
    return list(unpacker)


INT_EDGES = [0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2**31 - 1,
             2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
             -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
             -2**31, -2**31 - 1, -2**63]


def values():
    """One of each kind the stream may carry, as a Python parent's peer
    packs them."""
    return [
        None, True, False, *INT_EDGES,
        0.0, -0.0, 1.5, float("inf"), 1e300,
        "", "a", "x" * 31, "y" * 32, "z" * 255, "w" * 256, "v" * 65536,
        "naïve ☃ 𝄞", b"", b"\x00\xff", b"b" * 300, b"c" * 70000,
        [], [1, [2, [3, []]]], list(range(40)), {"a": 1, 2: [3]},
        {(1, 2): "tuple key"}, (1, "two", (3.0,)), (), ([],),
        {1, 2, 3}, fractions.Fraction(1, 3),
        datetime.datetime(2026, 12, 7, 14, 0),
        2**100, -2**80,
    ]


def packed_as_a_python_peer(value):
    pack = codec.python_packer()
    try:
        return pack(value)
    except OverflowError:
        return codec.pack_overflow(value)


@pytest.mark.parametrize("value", values(), ids=repr)
def test_each_value_reads_as_msgpack_reads_it(value):
    data = packed_as_a_python_peer(value)
    got = list(read_fast(data))
    assert got == read_msgpack(data) == [value]
    assert [type(v) for v in got] == [type(value)]


def test_float32_and_a_stream_of_everything():
    data = b"".join(packed_as_a_python_peer(v) for v in values())
    data += b"\xca" + struct.pack(">f", 0.25)  # float 32
    assert list(read_fast(data)) == read_msgpack(data)


def test_numpy_arrays_and_other_extension_types():
    numpy = pytest.importorskip("numpy")
    a = numpy.arange(12, dtype="<f8").reshape(3, 4)
    data = msgpack.packb({codec.ARRAY_KEY: a.dtype.str, "shape": [3, 4],
                          "data": a.tobytes()})
    (got,) = read_fast(data)
    assert isinstance(got, numpy.ndarray) and (got == a).all()
    # An ext type vow does not use comes back as msgpack's ExtType, and
    # msgpack's own timestamp (ext -1) as its Timestamp, as msgpack does.
    other = msgpack.packb(msgpack.ExtType(42, b"xyz"))
    stamp = msgpack.packb(msgpack.Timestamp(1, 2))
    assert list(read_fast(other + stamp)) == read_msgpack(other + stamp)


def test_random_values_read_as_msgpack_reads_them():
    rng = random.Random(7)

    def any_value(depth=0):
        kind = rng.randrange(9 if depth < 4 else 6)
        if kind == 0:
            return rng.choice(INT_EDGES) + rng.randrange(-3, 4) \
                if rng.random() < 0.5 else rng.randrange(-2**40, 2**40)
        if kind == 1:
            return rng.uniform(-1e9, 1e9)
        if kind == 2:
            return "".join(chr(rng.randrange(1, 0x3000))
                           for _ in range(rng.randrange(40)))
        if kind == 3:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        if kind == 4:
            return rng.choice([None, True, False])
        if kind == 5:
            return rng.randrange(-2**63, 2**64)
        if kind == 6:
            return [any_value(depth + 1) for _ in range(rng.randrange(20))]
        if kind == 7:
            return tuple(any_value(depth + 1)
                         for _ in range(rng.randrange(5)))
        return {str(k): any_value(depth + 1) for k in range(rng.randrange(6))}

    for _ in range(300):
        vs = [any_value() for _ in range(rng.randrange(1, 6))]
        data = b"".join(packed_as_a_python_peer(v) for v in vs)
        assert list(read_fast(data)) == read_msgpack(data) == vs


def test_into_puts_an_array_where_it_is_told():
    out = ["keep"] * 10
    stream = read_fast(msgpack.packb([1, "two", (3,)]) +
                       msgpack.packb(list(range(5))) + msgpack.packb("tail"))
    assert stream.into(out, 2) == 3
    assert stream.into(out, 5) == 5
    assert out == ["keep", "keep", 1, "two", [3], 0, 1, 2, 3, 4]
    assert next(stream) == "tail"
    with pytest.raises(StopIteration):
        next(stream)


def test_into_refuses_what_does_not_fit_or_is_not_an_array():
    with pytest.raises(ValueError, match="do not fit"):
        read_fast(msgpack.packb([1, 2, 3])).into([None] * 4, 2)
    with pytest.raises(ValueError, match="not an array"):
        read_fast(msgpack.packb({"a": 1})).into([None] * 4, 0)
    with pytest.raises(ValueError, match="negative"):
        read_fast(msgpack.packb([1])).into([None] * 4, -1)
    with pytest.raises(TypeError):
        read_fast(msgpack.packb([1])).into((None,), 0)


@pytest.mark.parametrize("data, what", [
    (b"\xc1", "not a msgpack type"),
    (b"\xcd\x01", "cut short"),
    (b"\x92\x01", "cut short"),
    (b"\xdd\xff\xff\xff\xff\x00", "cut short"),  # claims 4 G items
    (b"\xdf\xff\xff\xff\xff\x00", "cut short"),
    (b"\xdb\xff\xff\xff\xff", "cut short"),
    (b"\xc6\x00\x00\x10\x00ab", "cut short"),
    (b"\xc9\xff\xff\xff\xff\x01", "cut short"),
    (b"\x91" * 1100 + b"\xc0", "nested too deeply"),
])
def test_bad_bytes_raise_and_allocate_nothing_they_claim(data, what):
    with pytest.raises(ValueError, match=what):
        list(read_fast(data))


def test_bad_utf8_raises_as_msgpack_does():
    data = b"\xa2\xff\xfe"
    with pytest.raises(UnicodeDecodeError):
        list(read_fast(data))
    with pytest.raises(UnicodeDecodeError):
        read_msgpack(data)


class HookFailed(Exception):
    pass


def guarded_ext_hook(code, data):
    """codec's ext hook, whose own errors (an ExtraData among them) are
    told apart from those of the unpackb around it."""
    try:
        return codec._ext_hook(code, data)
    except Exception as e:
        raise HookFailed(repr(e)) from e


def read_msgpack_strictly(data):
    """The values back to back in data by msgpack.unpackb, which (unlike
    an Unpacker, which waits for more) calls a value cut short an error."""
    out = []
    while data:
        try:
            out.append(msgpack.unpackb(
                data, raw=False, strict_map_key=False,
                object_hook=codec._array_of, ext_hook=guarded_ext_hook))
            break
        except msgpack.ExtraData as e:
            out.append(e.unpacked)
            data = e.extra
    return out


def test_random_bytes_read_as_msgpack_reads_them_or_fail():
    """Whatever the bytes: no crash, and the stream reads what msgpack
    reads, or fails where msgpack fails."""
    rng = random.Random(11)
    both_failed = 0
    for _ in range(5000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
        try:
            ours, our_error = list(read_fast(data)), None
        except Exception as e:  # the hooks' own errors too (pickle's...)
            ours, our_error = None, e
        try:
            theirs, their_error = read_msgpack_strictly(data), None
        except Exception as e:
            theirs, their_error = None, e
        assert (our_error is None) == (their_error is None), \
            (data, our_error, their_error)
        if our_error is None:
            assert repr(ours) == repr(theirs), data
        else:
            both_failed += 1
    assert 0 < both_failed < 5000  # both kinds of bytes were tried


@pytest.mark.parametrize("r", [
    range(0), range(1), range(20), range(1_000), range(70_000),
    range(5, -5, -1), range(-70_000, 70_000, 7),
    range(-2**63, -2**63 + 5), range(2**63 - 5, 2**63),
    range(-2**40, 2**40, 2**30 + 17), range(2**32 - 3, 2**32 + 3),
], ids=repr)
def test_pack_range_is_msgpacks_packing_of_its_ints(r):
    if not r:
        assert not codec.packs_range(r)
        return
    assert codec.packs_range(r)
    assert codec.pack_range(r) == msgpack.packb(list(r))


def test_a_range_past_64_bits_is_not_packed_here():
    assert not codec.packs_range(range(2**63 - 1, 2**63 + 1))
    assert not codec.packs_range(range(-2**63 - 1, 0))
    with pytest.raises(OverflowError):
        fastcodec.pack_int_range(2**63 - 1, 1, 2)


MAPS = r'''
import json, sys
import vow
tasks = sys.argv[1]
out = {}
with vow.Pool(workers=2, module=tasks) as p:
    out["range"] = p.map("echo", range(40_000))
    out["backwards"] = p.map("echo", range(30_000, -30_000, -3))
    out["past 64 bits"] = p.map("echo", range(2**64 - 5, 2**64 + 5))
    out["list"] = p.map("square", list(range(-5_000, 5_000)))
    out["tuple"] = p.map("echo", tuple("ab" * 3_000))
    out["generator"] = p.map("echo", (x * 0.5 for x in range(20_000)))
    out["nested"] = p.map("echo", [[i, {"k": (i, str(i))}] for i in range(5_000)])
    out["types"] = [repr(v) for v in p.map("echo", [(1, 2), {3}, 2**70, None])]
    out["big"] = p.map("echo", ["x" * 3_000] * 200)  # a slice past 256 KiB
    out["starmap"] = p.starmap("add", [(i, i) for i in range(10_000)])
    out["empty"] = p.map("echo", [])
    try:
        p.starmap("fail_at", [(i, 12_345) for i in range(20_000)])
    except Exception as e:
        out["failure"] = [str(e), e.vow_error.message]
    out["one task"] = sorted(set(p.map("pid_of", range(3_000), 3_000)))
print(json.dumps({k: v if k != "one task" else len(v)
                  for k, v in out.items()}))
'''


def packable(value, pack):
    try:
        pack(value)
        return True
    except (TypeError, ValueError, OverflowError):
        return False


@pytest.mark.parametrize("peer", ["python", "other"])
def test_a_chunk_packs_as_its_packer_packs_the_list(peer):
    # A worker's map chunk (map_packed) against the packer on the whole
    # list of results, for a Python parent's packer and another's.
    pack = codec.python_packer() if peer == "python" else codec.packer()
    ok = [v for v in values() if packable(v, pack)]
    rng = random.Random(5)
    for n in (0, 1, 15, 16, 17, 300, 65535, 65536, 70000):
        items = [rng.choice(ok) for _ in range(n)]
        out = []
        got = fastcodec.map_packed(lambda x: x, iter(items), out, pack)
        assert out == items
        assert got == pack(items)


def test_a_chunk_it_cannot_pack_is_left_to_the_caller_whole():
    pack = codec.python_packer()
    calls = []

    def f(x):
        calls.append(x)
        return 2**70 if x == 3 else (lambda: 0) if x == 5 else x
    for items in ([5, 6], [1, 5, 3], [1, 3, 5]):
        out, calls[:] = [], []
        assert fastcodec.map_packed(f, iter(items), out, pack) is None
        assert calls == items  # every item is still called, once
        assert [v for v in out if not callable(v)] == \
            [f(x) for x in items if x != 5]
    # An int past 64 bits goes through the packer (which pickles it), as
    # in the packer's own packing of the list.
    out = []
    assert fastcodec.map_packed(f, iter([1, 2, 3, 4]), out, pack) == \
        pack([1, 2, 2**70, 4])


def test_a_call_that_raises_leaves_the_iterator_after_its_item():
    def f(x):
        if x == 7:
            raise ValueError("seven")
        return x
    it, out = iter(range(10)), []
    with pytest.raises(ValueError, match="seven"):
        fastcodec.map_packed(f, it, out, codec.python_packer())
    assert out == list(range(7)) and next(it) == 8


def run_maps(fast):
    env = dict(os.environ, VOW_FASTCODEC="1" if fast else "0")
    proc = subprocess.run([sys.executable, "-c", MAPS, TASKS], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_maps_give_the_same_results_with_and_without_it():
    fast, plain = run_maps(True), run_maps(False)
    assert fast == plain
    assert fast["range"] == list(range(40_000))
    assert fast["backwards"] == list(range(30_000, -30_000, -3))
    assert fast["past 64 bits"] == list(range(2**64 - 5, 2**64 + 5))
    assert fast["list"] == [x * x for x in range(-5_000, 5_000)]
    assert fast["types"] == ["(1, 2)", "{3}", repr(2**70), "None"]
    assert fast["starmap"] == [2 * i for i in range(10_000)]
    assert fast["empty"] == []
    assert fast["failure"][0] == "item 12345 is bad"
    assert fast["failure"][1].startswith("map item 12345: ")
    # chunksize=3000 over 3000 items: one task, so one worker ran them all
    assert fast["one task"] == 1
