"""msgpack as vow sends it: with the msgpack module (Debian's
python3-msgpack) when there is one, else a built-in codec for the types
the protocol uses, so a worker runs on any python3. numpy arrays travel as
msgpack bin with their dtype and shape, and come back as arrays."""
import os
import struct
import threading

from . import _shm
from ._shared import Shared

try:
    import msgpack
except ImportError:  # any python3 will do: the built-in codec below
    msgpack = None

# The hot paths in C (python/vow/_fastcodec.c, _fastrun.c), where CMake built
# it for this interpreter; VOW_FASTCODEC=0 turns it off (the results are
# the same, it is only slower).
fastcodec = None
if msgpack is not None and os.environ.get("VOW_FASTCODEC", "1") != "0":
    try:
        from . import _fastcodec as fastcodec
    except ImportError:
        pass

class CannotPack(TypeError):
    """A value with no msgpack form."""


ARRAY_KEY = "__ndarray__"

# How numpy arrays travel: as a map {"__ndarray__": dtype, "shape": [...],
# "data": bin} (dtype as numpy spells it, e.g. "<f8"; data in C order),
# which a Python parent turns back into an array; or, for a parent that
# is not Python (the vow command writes JSON), as nested lists.
arrays_as_bin = True


# While pack_with_parts packs: the parts it sets apart, and how it
# writes a big array into shared memory.
_parting = threading.local()
# A parent sets apart numpy arrays of this many bytes or more (a pool
# sets it); None: never.
leave_arrays_from = None


class BigArrays(Exception):
    """Raised by a packer that met a value to set apart as a part (a big
    numpy array, a Shared): the caller packs again with pack_with_parts."""


def _part(obj):
    """The reference that stands for obj, a part now (Shared)."""
    parts = _parting.parts
    parts.append(obj)
    return msgpack.ExtType(_shm.SHM_EXT,
                           _shm.ref_bytes(len(parts) - 1, 0, 0)[3:])


def _default(obj):
    """numpy arrays as arrays_as_bin says, numpy scalars as numbers; any
    other type is named in the failure."""
    if isinstance(obj, Shared):
        if obj._value is None:
            raise CannotPack("a vow.Shared that was closed cannot be sent")
        if getattr(_parting, "inline", False) or msgpack is None:
            value = obj.value()  # a packer takes no array from default
            return _default(value) if hasattr(value, "dtype") else value
        if getattr(_parting, "parts", None) is None:
            raise BigArrays()
        return _part(obj)
    if hasattr(obj, "__array_interface__") and hasattr(obj, "dtype"):
        if obj.dtype.hasobject:
            raise CannotPack("a numpy array of Python objects cannot be sent")
        if getattr(obj, "ndim", 1) == 0 or not arrays_as_bin:
            return obj.tolist()
        if leave_arrays_from is not None and \
                leave_arrays_from <= obj.nbytes < 1 << 32 and \
                not getattr(_parting, "inline", False):
            if getattr(_parting, "parts", None) is None:
                raise BigArrays()
            shared = _parting.share(obj)
            if shared is not None:  # else no segment: the bytes inline
                return _part(shared)
        return {ARRAY_KEY: obj.dtype.str, "shape": list(obj.shape),
                "data": obj.tobytes(order="C")}
    if isinstance(obj, int):
        raise CannotPack(f"the integer {obj} does not fit in 64 bits")
    kind = type(obj)
    name = kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"
    raise CannotPack(f"a value of type {name} cannot be sent "
                     "(None, bool, int, float, str, bytes, list, tuple, "
                     "dict or a numpy value)")


def _array_of(d):
    """The numpy array a map in _default's form stands for (a copy the
    receiver may write to, unless its data is a view of shared memory:
    then the array is that memory, read-only); other maps as they are."""
    if ARRAY_KEY in d and "data" in d and "shape" in d:
        import numpy
        a = numpy.frombuffer(d["data"], dtype=numpy.dtype(d[ARRAY_KEY]))
        a = a.reshape(d["shape"])
        return a if isinstance(d["data"], memoryview) else a.copy()
    return d


def _bytes_of(x):
    """A bin decoded as a view, as bytes unless an array took it."""
    return bytes(x) if isinstance(x, memoryview) else x


# A sized type's markers: its fix form and the length below which it
# applies (None, 0: none), then its 8-, 16- and 32-bit length forms.
_HEADS = {
    "str": (0xA0, 32, 0xD9, 0xDA, 0xDB),
    "bin": (None, 0, 0xC4, 0xC5, 0xC6),
    "array": (0x90, 16, None, 0xDC, 0xDD),
    "map": (0x80, 16, None, 0xDE, 0xDF),
}


# Integer forms by width: (unsigned, signed) markers and struct format.
_INTS = ((8, (0xCC, 0xD0), "b"), (16, (0xCD, 0xD1), "h"),
         (32, (0xCE, 0xD2), "i"), (64, (0xCF, 0xD3), "q"))


def _head(kind, n):
    """The header of a str, bin, array or map of length n."""
    fix, fix_limit, m8, m16, m32 = _HEADS[kind]
    if fix is not None and n < fix_limit:
        return struct.pack("B", fix | n)
    if m8 is not None and n < 1 << 8:
        return struct.pack(">BB", m8, n)
    if n < 1 << 16:
        return struct.pack(">BH", m16, n)
    return struct.pack(">BI", m32, n)


def _pack_builtin(obj, out, depth=0):
    """msgpack for the types the protocol uses, when the msgpack module is
    not installed."""
    if depth > 512:
        raise CannotPack("the result is nested too deeply to send")
    if obj is None:
        out.append(b"\xc0")
    elif obj is True or obj is False:
        out.append(b"\xc3" if obj else b"\xc2")
    elif isinstance(obj, int):
        if 0 <= obj < 0x80:
            out.append(struct.pack("B", obj))
        elif -32 <= obj < 0:
            out.append(struct.pack("b", obj))
        elif -(1 << 63) <= obj < 1 << 64:
            # The smallest form, as msgpack's own packer writes it.
            for bits, (m_unsigned, m_signed), fmt in _INTS:
                if 0 <= obj < 1 << bits:
                    out.append(struct.pack(">B" + fmt.upper(), m_unsigned, obj))
                    break
                if -(1 << (bits - 1)) <= obj < 0:
                    out.append(struct.pack(">B" + fmt, m_signed, obj))
                    break
        else:
            raise CannotPack(f"the integer {obj} does not fit in 64 bits")
    elif isinstance(obj, float):
        out.append(b"\xcb" + struct.pack(">d", obj))
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        out.append(_head("str", len(b)))
        out.append(b)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        out.append(_head("bin", len(b)))
        out.append(b)
    elif isinstance(obj, (list, tuple)):
        out.append(_head("array", len(obj)))
        for item in obj:
            _pack_builtin(item, out, depth + 1)
    elif isinstance(obj, dict):
        out.append(_head("map", len(obj)))
        for key, value in obj.items():
            _pack_builtin(key, out, depth + 1)
            _pack_builtin(value, out, depth + 1)
    else:
        _pack_builtin(_default(obj), out, depth + 1)


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
_SIZED = {  # marker: (struct format, what follows)
    0xCC: (">B", "int"), 0xCD: (">H", "int"), 0xCE: (">I", "int"),
    0xCF: (">Q", "int"), 0xD0: (">b", "int"), 0xD1: (">h", "int"),
    0xD2: (">i", "int"), 0xD3: (">q", "int"), 0xCA: (">f", "int"),
    0xCB: (">d", "int"), 0xD9: (">B", "str"), 0xDA: (">H", "str"),
    0xDB: (">I", "str"), 0xC4: (">B", "bin"), 0xC5: (">H", "bin"),
    0xC6: (">I", "bin"), 0xDC: (">H", "array"), 0xDD: (">I", "array"),
    0xDE: (">H", "map"), 0xDF: (">I", "map"),
}


def _unpack_builtin(data, at=0, views=False):
    """Decodes one msgpack object at data[at:]; returns it and where the
    next one starts. With views (data a memoryview of shared memory), a
    numpy array's data stays where it is: the array is a read-only view
    of it."""
    m = data[at]
    at += 1
    if m < 0x80:
        return m, at
    if m >= 0xE0:
        return m - 0x100, at
    if 0xA0 <= m < 0xC0:
        n = m & 0x1F
        return str(data[at:at + n], "utf-8", "surrogateescape"), at + n
    if 0xD4 <= m <= 0xD8 or 0xC7 <= m <= 0xC9:  # ext: its type, its bytes
        if m >= 0xD4:
            n = 1 << (m - 0xD4)
        else:
            size = 1 << (m - 0xC7)
            n = int.from_bytes(data[at:at + size], "big")
            at += size
        return _ext_hook(data[at] - 256 * (data[at] > 127),
                         bytes(data[at + 1:at + 1 + n])), at + 1 + n
    if 0x90 <= m < 0xA0:
        what, n = "array", m & 0x0F
    elif 0x80 <= m < 0x90:
        what, n = "map", m & 0x0F
    elif m in _FIXED:
        return _FIXED[m], at
    elif m in _SIZED:
        fmt, what = _SIZED[m]
        size = struct.calcsize(fmt)
        n = struct.unpack_from(fmt, data, at)[0]
        at += size
        if what == "int":
            return n, at
    else:
        raise ValueError(f"msgpack type 0x{m:02x} is not used by vow")
    if what == "str":
        return str(data[at:at + n], "utf-8", "surrogateescape"), at + n
    if what == "bin":
        return (data[at:at + n] if views else bytes(data[at:at + n])), at + n
    if what == "array":
        items = []
        for _ in range(n):
            item, at = _unpack_builtin(data, at, views)
            items.append(_bytes_of(item))
        return items, at
    result = {}
    for _ in range(n):
        key, at = _unpack_builtin(data, at, views)
        value, at = _unpack_builtin(data, at, views)
        result[_bytes_of(key)] = value
    result = _array_of(result)
    if views and isinstance(result, dict):
        for key, value in result.items():
            result[key] = _bytes_of(value)
    return result, at


# Past this many objects a value in shared memory is decoded by msgpack
# (a copy of its bins) rather than the pure-Python walk that leaves
# arrays where they are: a million floats would take it a second.
_VIEW_OBJECTS = 4096


def unpack_shared(view):
    """The value in view (a memoryview of a mapped segment): numpy arrays
    in it are read-only views of the segment, which stays mapped while
    any of them lives; everything else as unpackb gives it."""
    if msgpack is not None and count_objects(view, _VIEW_OBJECTS) > \
            _VIEW_OBJECTS:
        return unpackb(view)
    value, _ = _unpack_builtin(view, 0, True)
    return _bytes_of(value)


def count_objects(data, limit):
    """The msgpack objects in data (one packed value), counted no further
    than limit + 1: what a frame's limit on objects is checked against."""
    count, at, pending = 0, 0, 1
    while pending and count <= limit:
        pending -= 1
        count += 1
        m = data[at]
        at += 1
        if m < 0x80 or m >= 0xE0 or m in _FIXED:
            continue
        if 0xA0 <= m < 0xC0:
            at += m & 0x1F
        elif 0x90 <= m < 0xA0:
            pending += m & 0x0F
        elif 0x80 <= m < 0x90:
            pending += 2 * (m & 0x0F)
        elif 0xD4 <= m <= 0xD8:  # fixext: a type byte, then 1 to 16 bytes
            at += 1 + (1 << (m - 0xD4))
        elif 0xC7 <= m <= 0xC9:  # ext 8/16/32: length, type byte, bytes
            size = 1 << (m - 0xC7)
            at += size + 1 + int.from_bytes(data[at:at + size], "big")
        else:
            fmt, what = _SIZED[m]
            n = struct.unpack_from(fmt, data, at)[0]
            at += struct.calcsize(fmt)
            if what in ("str", "bin"):
                at += n
            elif what == "array":
                pending += n
            elif what == "map":
                pending += 2 * n
    return count


# Between two Python ends (vow.Pool and vow.worker) a value keeps its
# Python type: a tuple travels as msgpack ext TUPLE_EXT (its items as an
# array), any other value msgpack has no form for (a set, a datetime, a
# subclass of int or dict, an int past 64 bits, an object of one's own) as
# ext PICKLE_EXT, pickled, as multiprocessing sends everything. Other ends
# (C workers, the vow command) never see either.
TUPLE_EXT = 1
PICKLE_EXT = 2
python_peer = False  # set in a worker whose parent is Python


def _default_python(obj):
    """_default for a Python peer: tuples and pickles as ext types."""
    if type(obj) is tuple:
        return msgpack.ExtType(TUPLE_EXT, _pack_nested(list(obj)))
    if (hasattr(obj, "__array_interface__") and hasattr(obj, "dtype") and
            not obj.dtype.hasobject) or isinstance(obj, Shared):
        return _default(obj)
    return msgpack.ExtType(PICKLE_EXT, _pickled(obj))


_spare_packers = []  # a Packer is not re-entrant: one per nesting level


def _pack_nested(obj):
    # Inside an ext's bytes no reference is looked for: parts there are
    # packed where they are.
    pk = _spare_packers.pop() if _spare_packers else _python_packer()
    parts, inline = getattr(_parting, "parts", None), \
        getattr(_parting, "inline", False)
    # (Outside pack_with_parts, a part met here still sends its caller
    # there: a map's item then goes as a task of its own.)
    _parting.parts, _parting.inline = None, inline or parts is not None
    try:
        return pk.pack(obj)
    finally:
        _parting.parts, _parting.inline = parts, inline
        _spare_packers.append(pk)


def _pickled(obj):
    """obj pickled; a value that cannot be raises CannotPack, except that
    an exception its own __reduce__ raises is raised as it is, as
    multiprocessing lets it through."""
    import pickle
    try:
        return pickle.dumps(obj, protocol=5)
    except (TypeError, AttributeError, pickle.PicklingError) as e:
        kind = type(obj)
        raise CannotPack(f"a value of type {kind.__module__}."
                         f"{kind.__qualname__} cannot be sent: it has no "
                         f"msgpack form and does not pickle ({e})") from None


def _python_packer():
    return msgpack.Packer(use_bin_type=True, strict_types=True,
                          default=_default_python)


class ShmRef(tuple):
    """A value in a shared-memory segment: (id, offset, length), as a
    reference (msgpack ext 83) stands for it in a frame."""


# References decoded and not yet resolved: a worker looks for them in a
# task's arguments only while there are some.
shm_refs_pending = 0


def _ext_hook(code, data):
    global shm_refs_pending
    if code == _shm.SHM_EXT and len(data) == 24:
        shm_refs_pending += 1
        return ShmRef(_shm.parse_ref(data))
    if code == TUPLE_EXT:
        return tuple(unpackb(data))
    if code == PICKLE_EXT:
        import pickle
        return pickle.loads(data)
    return msgpack.ExtType(code, data)


def python_packer():
    """packer() for a Python peer: a value whose msgpack form would change
    its type (a tuple, a set...) keeps it (TUPLE_EXT, PICKLE_EXT). Like
    packer() it may raise OverflowError (an int past 64 bits); then
    pack_overflow does."""
    if msgpack is None:
        return packb
    return _python_packer().pack


def pack_overflow(obj):
    """obj, which holds an int past 64 bits somewhere, pickled whole."""
    return _pack_nested(msgpack.ExtType(PICKLE_EXT, _pickled(obj)))


_pack_python = None


def packb(obj):
    global _pack_python
    if python_peer and msgpack is not None:
        if _pack_python is None:
            _pack_python = python_packer()
        try:
            return _pack_python(obj)
        except CannotPack:
            raise
        except OverflowError:
            return pack_overflow(obj)
        except (TypeError, ValueError) as e:
            raise CannotPack(f"the value cannot be sent to vow: {e}") from e
    if msgpack is not None:
        try:
            return msgpack.packb(obj, use_bin_type=True, default=_default)
        except CannotPack:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise CannotPack(f"the value cannot be sent to vow: {e}") from e
    out = []
    _pack_builtin(obj, out)
    return b"".join(out)


def packer():
    """A packb of one's own, for one thread: with the msgpack module, its
    Packer kept from call to call (several times faster than packb on
    small values). Unlike packb it may raise TypeError, ValueError or
    OverflowError for a value that cannot be packed, as well as
    CannotPack."""
    if msgpack is None:
        return packb
    return msgpack.Packer(use_bin_type=True, default=_default).pack


def stream_reader():
    """A function of a buffer of msgpack objects back to back that returns
    an iterator over them, decoded as unpackb would. The buffer may be
    reused once the iterator is made. With fastcodec, the iterator also
    has into(list, offset): the next value, an array, decoded into
    list[offset:offset + n] (returns n)."""
    if fastcodec is not None:
        stream = fastcodec.stream

        def read_fast(data):
            return stream(data, _ext_hook, _array_of, unpackb, TUPLE_EXT)
        return read_fast
    if msgpack is not None:
        def read(data):
            # A new Unpacker each time (it costs about a microsecond): no
            # object left unread in one can be mistaken for the next's.
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                        object_hook=_array_of,
                                        ext_hook=_ext_hook)
            unpacker.feed(data)
            return unpacker
        return read

    def read_builtin(data):
        data = memoryview(data).tobytes()
        at = 0
        while at < len(data):
            value, at = _unpack_builtin(data, at)
            yield value
    return read_builtin


def unpackb(data):
    if msgpack is not None:
        return msgpack.unpackb(data, raw=False, strict_map_key=False,
                               object_hook=_array_of, ext_hook=_ext_hook)
    return _unpack_builtin(memoryview(data).tobytes())[0]


def pack_with_parts(pack, obj, share):
    """pack(obj) with its parts set apart: each Shared in it, and each
    numpy array of leave_arrays_from bytes or more, made a Shared by
    share(array) (None: the array inline). The bytes, with a reference
    where each part stands (vow_value_part_ref), and the parts."""
    _parting.parts, _parting.share = [], share
    try:
        data = pack(obj)
        return data, _parting.parts
    finally:
        _parting.parts = _parting.share = None


def pack_inline(pack, obj):
    """pack(obj) with every part's value where it stands."""
    inline = getattr(_parting, "inline", False)
    _parting.inline = True
    try:
        return pack(obj)
    finally:
        _parting.inline = inline


def array_head(a):
    """The msgpack of numpy array a as _default sends it, up to its data:
    the map, and the bin header its a.nbytes bytes (C order) follow."""
    return b"".join((
        b"\x83", _pack_small(ARRAY_KEY), _pack_small(a.dtype.str),
        _pack_small("shape"), _pack_small(list(a.shape)), _pack_small("data"),
        b"\xc6", a.nbytes.to_bytes(4, "big")))


def _pack_small(obj):
    out = []
    _pack_builtin(obj, out)
    return b"".join(out)


def packs_range(r):
    """Whether pack_range can pack range r (and any slice of it)."""
    return fastcodec is not None and bool(r) and \
        -(1 << 63) <= min(r[0], r[-1]) and max(r[0], r[-1]) < 1 << 63


def pack_range(r):
    """The msgpack array of range r's ints (packs_range(r) holds), packed
    without making them."""
    return fastcodec.pack_int_range(r.start, r.step, len(r))


def array_header(n):
    """The msgpack header of an array of n items, to join packed items."""
    return _head("array", n)
