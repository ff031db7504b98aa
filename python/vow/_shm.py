"""Shared-memory segments beside a local worker's channel: the worker's
half of docs/protocol.md, "Shared memory" (base/shm.c is the C one).

A segment is a sealed memfd sent over the side socket (fd 4) with an id,
before the frame whose reference (msgpack ext 83: id, offset, length)
names it. Needs Linux, Python 3.9 (socket.send_fds) and the msgpack
module (the built-in decoder reads no ext types); without them the
worker does not take part and every value keeps the channel."""
import fcntl
import mmap
import os
import socket
import stat
import struct
import weakref

SHM_EXT = 83
_REF = struct.Struct(">QQQ")
_ID = struct.Struct("=Q")  # the side socket's ids: the sender's order
_SEALS = (getattr(fcntl, "F_SEAL_SHRINK", 0) | getattr(fcntl, "F_SEAL_GROW", 0)
          | getattr(fcntl, "F_SEAL_WRITE", 0))


class ShmError(Exception):
    """A reference the parent sent that names no usable segment."""


class SegmentLost(Exception):
    """A segment this worker cannot take: its descriptor could not be
    received (the worker is at its limit of open descriptors), or there
    is no memory to map or read it. Its task fails; the worker goes
    on."""


_LOST = -1  # in the inbox: a segment whose descriptor never arrived


def ref_bytes(seg_id, off, length):
    """The reference's msgpack bytes, as they stand in a frame."""
    return b"\xc7\x18" + bytes([SHM_EXT]) + _REF.pack(seg_id, off, length)


def parse_ref(data):
    """(id, offset, length) of an ext 83's 24 bytes."""
    return _REF.unpack(data)


def _supported():
    return (hasattr(os, "memfd_create") and hasattr(socket, "send_fds")
            and hasattr(fcntl, "F_ADD_SEALS") and _SEALS)


def _pread_all(fd, off, length):
    """length bytes at off of fd, read."""
    data = bytearray(length)
    with memoryview(data) as view:
        done = 0
        while done < length:
            n = os.preadv(fd, [view[done:]], off + done)
            if n <= 0:
                raise ShmError(f"a segment shorter than its {length} bytes")
            done += n
    return data


def _decode_segment(fd, st, off, length, decode):
    """decode(the length bytes at off of segment fd, whose fstat is st),
    checked and mapped read-only (read, where they cannot be mapped)."""
    if not stat.S_ISREG(st.st_mode):
        raise ShmError("a descriptor that is not a segment")
    if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & _SEALS != _SEALS:
        raise ShmError("a segment not sealed against changes")
    if length == 0 or off + length > st.st_size:
        raise ShmError(f"{off + length} bytes past the end of its "
                       f"segment of {st.st_size}")
    start = off - off % mmap.ALLOCATIONGRANULARITY
    try:
        mm = mmap.mmap(fd, off + length - start, mmap.MAP_SHARED,
                       mmap.PROT_READ, offset=start)
    except OSError:  # no address space for it: read, as C does
        try:
            data = _pread_all(fd, off, length)
        except MemoryError:
            raise SegmentLost(
                f"the worker has no memory to map or read the {length} "
                "bytes of its arguments' shared-memory segment") from None
        return decode(memoryview(data).toreadonly())
    try:
        return decode(memoryview(mm)[off - start:off - start + length])
    finally:
        try:
            mm.close()
        except BufferError:
            pass  # views of it live on: unmapped when they go


class Side:
    """The worker's side socket: segments in and out."""

    def __init__(self, fd, threshold):
        self.sock = socket.socket(fileno=fd)
        self.threshold = threshold
        self.sent = 0
        self.inbox = {}  # id -> descriptor, come ahead of its frame
        # a part's (device, inode, offset, length) -> its decoded value,
        # while that lives
        self.parts = {}

    @classmethod
    def from_environment(cls, channel_is_stdio, have_msgpack):
        """The side socket the pool gave this worker, announced, or
        None."""
        spec = os.environ.get("VOW_SHM_FD", "")
        fd, _, threshold = spec.partition(",")
        if (channel_is_stdio or not have_msgpack or not _supported()
                or not fd.isdigit() or not threshold.isdigit()):
            return None
        try:
            side = cls(int(fd), int(threshold))
            if side.sock.type != socket.SOCK_SEQPACKET:
                side.sock.detach()
                return None
            side.sock.sendmsg([_ID.pack(0)])
        except OSError:
            return None
        os.set_inheritable(int(fd), False)
        return side

    def _take(self, seg_id):
        fd = self.inbox.pop(seg_id, None)
        while fd is None:
            try:
                data, fds, flags, _ = socket.recv_fds(self.sock, 8, 4,
                                                      socket.MSG_DONTWAIT)
            except BlockingIOError:
                raise ShmError(f"segment {seg_id}, which never came") \
                    from None
            for extra in fds[1:]:
                os.close(extra)
            if len(data) == 8 and not fds and flags & socket.MSG_CTRUNC:
                fds = [_LOST]  # the id came; the kernel kept its descriptor
            if len(data) != 8 or not fds:
                if fds:
                    os.close(fds[0])
                continue
            got = _ID.unpack(data)[0]
            if got == seg_id:
                fd = fds[0]
            else:
                self.inbox[got] = fds[0]
        if fd == _LOST:
            raise SegmentLost(
                "the worker could not receive a shared-memory segment of "
                "its arguments: it has as many descriptors open as its "
                "limit allows (RLIMIT_NOFILE)")
        return fd

    def read(self, seg_id, off, length, decode):
        """decode(the bytes) of a segment the parent sent, mapped
        read-only. What decode made may keep views of it (numpy arrays):
        the mapping then lives as long as they do, and goes with the
        last."""
        fd = self._take(seg_id)
        try:
            return _decode_segment(fd, os.fstat(fd), off, length, decode)
        finally:
            os.close(fd)

    def read_part(self, seg_id, off, length):
        """A part of a task's arguments from its segment, decoded as
        codec.unpack_shared decodes: the same object (a numpy array over
        the one mapping) for every task that holds it while any of them
        still does, so a worker maps a shared array once, not per
        task."""
        from . import codec
        fd = self._take(seg_id)
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, off, length)
            ref = self.parts.get(key)
            value = ref() if ref is not None else None
            if value is not None:
                return value
            value = _decode_segment(fd, st, off, length, codec.unpack_shared)
        finally:
            os.close(fd)
        try:
            self.parts[key] = weakref.ref(value, self._forget(key))
        except TypeError:
            pass  # not an array: decoded again for each task
        return value

    def _forget(self, key):
        parts = self.parts

        def gone(ref):
            if parts.get(key) is ref:
                del parts[key]
        return gone

    def write(self, data):
        """The reference to a new segment holding data, sent; None when
        it cannot be made (the value keeps the channel)."""
        seg_id = self.sent + 1
        fd = -1
        try:
            fd = os.memfd_create("vow", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.posix_fallocate(fd, 0, len(data))
            with memoryview(data) as view:
                done = 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], done)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS | fcntl.F_SEAL_SEAL)
            socket.send_fds(self.sock, [_ID.pack(seg_id)], [fd],
                            socket.MSG_DONTWAIT)
        except OSError:
            return None
        finally:
            if fd >= 0:
                os.close(fd)
        self.sent = seg_id
        return ref_bytes(seg_id, 0, len(data))
