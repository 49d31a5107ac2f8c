"""Peers over a named pipe: fastfifo itself, and the hand-written ``os.read`` reader.

The ``os.read`` peer is what users write today: the writer sends
``struct.pack('<I', len(payload)) + payload`` with ``os.write``, the reader
``os.read(fd, 65536)``s and cuts frames out with ``struct.unpack_from``.  It keeps
the default pipe size (64 KiB) because that is what such code gets; fastfifo asks
for 1 MiB.
"""

from __future__ import annotations

import functools
import os
import select
import struct
import tempfile
import time
from typing import Any

from .peer import IDLE, Peer, now

_LEN = struct.Struct("<I")


def _fifo(tmpdir: str, name: str) -> str:
    path = os.path.join(tmpdir, name)
    os.mkfifo(path, 0o600)
    return path


class FastFifo(Peer):
    """fastfifo ``Writer``/``Reader``: ``put``/``get`` or ``put_many``/``get_many``."""

    key = "fastfifo"
    name = "fastfifo"
    batched = True

    def label(self, row: Any) -> str:
        if row.kind == "pingpong":
            return "fastfifo put/get"
        calls = "put_many/get_many" if row.batched else "put/get"
        shared = " (shared=True)" if row.readers > 1 else ""
        return f"fastfifo {calls}{shared}"

    def unavailable(self) -> str | None:
        try:
            import fastfifo  # noqa: F401
        except ImportError as exc:
            return f"not installed ({exc})"
        return None

    def unsupported(self, row: Any) -> str | None:
        reason = super().unsupported(row)
        if reason:
            return reason
        return _probe(row.size, row.readers > 1)

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        if row.kind == "pingpong":
            return (_fifo(tmpdir, "req"), _fifo(tmpdir, "resp"))
        return _fifo(tmpdir, "q")

    def send(self, channel: Any, row: Any, wid: int, items: list, ready: Any) -> int:
        import fastfifo

        with fastfifo.Writer(channel) as w:
            start = ready()
            if row.batched:
                put_many = w.put_many
                for batch in items:
                    put_many(batch)
            else:
                put = w.put
                for payload in items:
                    put(payload)
        return start

    def receive(self, channel, row, rid, count, ready, done):
        import fastfifo

        kwargs = {"shared": True} if row.readers > 1 else {}
        out: list = []
        with fastfifo.Reader(channel, **kwargs) as r:
            start = ready()
            if count is not None:
                if row.batched:
                    get_many, extend, got = r.get_many, out.extend, 0
                    while got < count:
                        batch = get_many(1000)
                        extend(batch)
                        got += len(batch)
                else:
                    get, append = r.get, out.append
                    for _ in range(count):
                        append(get())
                return out, start, now()
            end = start
            call = r.get_many if row.batched else r.get
            add = out.extend if row.batched else out.append
            while True:
                try:
                    add(call(timeout=IDLE))
                except fastfifo.Empty:
                    if done.is_set():
                        return out, start, end
                    continue
                end = now()

    def echo(self, channel, row, count, ready):
        import fastfifo

        req, resp = channel
        with fastfifo.Reader(req) as r, fastfifo.Writer(resp) as w:
            ready()
            get, put = r.get, w.put
            for _ in range(count):
                put(get())

    def ping(self, channel, row, payloads, ready):
        import fastfifo

        req, resp = channel
        with fastfifo.Reader(resp) as r, fastfifo.Writer(req) as w:
            ready()
            return _ping_loop(w.put, r.get, payloads)


def _ping_loop(send: Any, recv: Any, payloads: list) -> tuple[list, list]:
    """The client loop every Python peer shares: time each send + receive."""
    clock = time.perf_counter_ns
    replies: list = []
    rtts: list = []
    keep, note = replies.append, rtts.append
    for payload in payloads:
        t0 = clock()
        send(payload)
        reply = recv()
        note(clock() - t0)
        keep(reply)
    return replies, rtts


@functools.lru_cache(maxsize=None)
def _probe(size: int, shared: bool) -> str | None:
    """Asks this fastfifo whether it takes ``size``-byte messages and shared readers."""
    import fastfifo

    with tempfile.TemporaryDirectory(prefix="ffbench-probe-") as tmp:
        path = _fifo(tmp, "probe")
        try:
            reader = fastfifo.Reader(path, shared=True) if shared else fastfifo.Reader(path)
        except TypeError as exc:
            return f"not supported yet: Reader(shared=True) rejected ({exc})"
        with reader, fastfifo.Writer(path, open_timeout=5) as w:
            try:
                w.put(bytes(size), timeout=5)
            except fastfifo.MessageTooLargeError as exc:
                return f"not supported yet: {size}-byte messages ({exc})"
            if reader.get(timeout=5) != bytes(size):
                return "FAIL: probe message came back different"
    return None


class OsRead(Peer):
    """The hand-written frame reader over a FIFO that fastfifo replaces."""

    key = "os.read"
    name = "os.read + struct"
    batched = True
    multi_reader = False  # plain reads split messages between readers (DESIGN.md section 4)

    def label(self, row: Any) -> str:
        return self.name + (" (packed writes)" if row.batched else "")

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        if row.kind == "pingpong":
            return (_fifo(tmpdir, "req"), _fifo(tmpdir, "resp"))
        return _fifo(tmpdir, "q")

    def send(self, channel: Any, row: Any, wid: int, items: list, ready: Any) -> int:
        fd = os.open(channel, os.O_WRONLY)
        try:
            start = ready()
            pack, write = _LEN.pack, os.write
            if not row.batched:
                for payload in items:
                    write(fd, pack(len(payload)) + payload)
                return start
            # Several writers must keep each write <= PIPE_BUF (atomic) and cut at frame
            # boundaries; a lone writer can send the whole batch at once.
            for batch in items:
                frames = [pack(len(p)) + p for p in batch]
                if row.writers == 1:
                    _write_all(fd, b"".join(frames))
                    continue
                limit = select.PIPE_BUF
                chunk: list = []
                used = 0
                for frame in frames:
                    if used + len(frame) > limit and chunk:
                        _write_all(fd, b"".join(chunk))
                        chunk, used = [], 0
                    chunk.append(frame)
                    used += len(frame)
                if chunk:
                    _write_all(fd, b"".join(chunk))
            return start
        finally:
            os.close(fd)

    def receive(self, channel, row, rid, count, ready, done):
        fd = os.open(channel, os.O_RDONLY)
        try:
            start = ready()
            out: list = []
            _read_frames(fd, count, out.append)
            return out, start, now()
        finally:
            os.close(fd)

    def echo(self, channel, row, count, ready):
        req, resp = channel
        rfd = os.open(req, os.O_RDONLY)
        wfd = os.open(resp, os.O_WRONLY)
        try:
            ready()
            pack, write = _LEN.pack, os.write
            _read_frames(rfd, count, lambda m: write(wfd, pack(len(m)) + m))
        finally:
            os.close(rfd)
            os.close(wfd)

    def ping(self, channel, row, payloads, ready):
        req, resp = channel
        wfd = os.open(req, os.O_WRONLY)
        rfd = os.open(resp, os.O_RDONLY)
        try:
            ready()
            pack, write = _LEN.pack, os.write
            got: list = []

            def recv() -> bytes:
                _read_frames(rfd, 1, got.append)
                return got.pop()

            return _ping_loop(lambda m: write(wfd, pack(len(m)) + m), recv, payloads)
        finally:
            os.close(rfd)
            os.close(wfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_frames(fd: int, count: int, deliver: Any) -> None:
    """Read ``count`` length-prefixed frames from ``fd`` and pass each payload to ``deliver``."""
    unpack_from, read = _LEN.unpack_from, os.read
    pending = b""
    got = 0
    while got < count:
        chunk = read(fd, 65536)
        if not chunk:
            raise EOFError(f"the writers closed after {got} of {count} messages")
        data = pending + chunk if pending else chunk
        pos, end = 0, len(data)
        while end - pos >= 4:
            (n,) = unpack_from(data, pos)
            if end - pos - 4 < n:
                break
            pos += 4
            deliver(data[pos : pos + n])
            pos += n
            got += 1
        pending = data[pos:]
    if pending:
        raise ValueError(f"{len(pending)} bytes beyond the last expected frame")
