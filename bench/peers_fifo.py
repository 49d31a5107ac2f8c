"""Peers over a named pipe: fastfifo itself, and the hand-written ``os.read`` reader.

The ``os.read`` peer is what users write today: the writer sends
``struct.pack('<I', len(payload)) + payload`` with ``os.write``, the reader
``os.read(fd, 65536)``s and cuts frames out with ``struct.unpack_from``.  It keeps
the default pipe size (64 KiB) because that is what such code gets; fastfifo asks
for 1 MiB.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import struct
import tempfile
from typing import Any

from .peer import IDLE, Peer, missing, now, ping_loop, receive_until_done

_LEN = struct.Struct("<I")


def _fifo(tmpdir: str, name: str) -> str:
    path = os.path.join(tmpdir, name)
    os.mkfifo(path, 0o600)
    return path


def _fifos(row: Any, tmpdir: str) -> Any:
    """The channel of both FIFO peers: a path, or (request, response) paths for ping-pong."""
    if row.kind == "pingpong":
        return (_fifo(tmpdir, "req"), _fifo(tmpdir, "resp"))
    return _fifo(tmpdir, "q")


@contextlib.contextmanager
def _ends(channel: Any, server: bool) -> Any:
    """A raw ping-pong side's (read fd, write fd): opened in the order the other side
    opens them (request first), so neither open waits for ever; closed afterwards."""
    req, resp = channel
    first = os.open(req, os.O_RDONLY if server else os.O_WRONLY)
    try:
        second = os.open(resp, os.O_WRONLY if server else os.O_RDONLY)
        try:
            yield (first, second) if server else (second, first)
        finally:
            os.close(second)
    finally:
        os.close(first)


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
        return missing("fastfifo")

    def unsupported(self, row: Any) -> str | None:
        reason = super().unsupported(row)
        if reason:
            return reason
        return _probe(row.size, row.readers > 1)

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        return _fifos(row, tmpdir)

    def send(self, channel, row, wid, items, sync):
        import fastfifo

        with fastfifo.Writer(channel) as w:
            sync.ready()
            if row.batched:
                put_many = w.put_many
                for batch in items:
                    put_many(batch)
            else:
                put = w.put
                for payload in items:
                    put(payload)

    def receive(self, channel, row, rid, count, sync):
        import fastfifo

        kwargs = {"shared": True} if row.readers > 1 else {}
        out: list = []
        with fastfifo.Reader(channel, **kwargs) as r:
            start = sync.ready()
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
            take = functools.partial(r.get_many if row.batched else r.get, timeout=IDLE)
            add = out.extend if row.batched else out.append
            return (
                out,
                start,
                receive_until_done(take, add, fastfifo.Empty, sync, start, out.__len__),
            )

    def echo(self, channel, row, count, sync):
        import fastfifo

        req, resp = channel
        with fastfifo.Reader(req) as r, fastfifo.Writer(resp) as w:
            sync.ready()
            get, put = r.get, w.put
            for _ in range(count):
                put(get())

    def ping(self, channel, row, payloads, sync):
        import fastfifo

        req, resp = channel
        with fastfifo.Reader(resp) as r, fastfifo.Writer(req) as w:
            sync.ready()
            return ping_loop(w.put, r.get, payloads)


@functools.cache
def _probe(size: int, shared: bool) -> str | None:
    """Asks this fastfifo whether it takes ``size``-byte messages and shared readers."""
    import fastfifo

    with tempfile.TemporaryDirectory(prefix="ffbench-probe-") as tmp:
        path = _fifo(tmp, "probe")
        try:
            reader = fastfifo.Reader(path, shared=True) if shared else fastfifo.Reader(path)
        except TypeError:
            return "not supported yet: Reader(shared=True) raises TypeError"
        with reader, fastfifo.Writer(path, open_timeout=5) as w:
            try:
                w.put(bytes(size), timeout=5)
            except fastfifo.MessageTooLargeError:
                limit = getattr(w, "max_atomic_message", "?")
                return (
                    f"not supported yet: {size}-byte messages raise MessageTooLargeError "
                    f"(limit {limit} B)"
                )
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
        return _fifos(row, tmpdir)

    def send(self, channel, row, wid, items, sync):
        fd = os.open(channel, os.O_WRONLY)
        try:
            sync.ready()
            pack, write = _LEN.pack, os.write
            if not row.batched:
                for payload in items:
                    write(fd, pack(len(payload)) + payload)
            elif row.writers == 1:
                for batch in items:
                    _write_all(fd, b"".join([pack(len(p)) + p for p in batch]))
            else:
                # Several writers: each write must stay <= PIPE_BUF (atomic) and end on
                # a frame boundary, or messages of different writers interleave.
                for batch in items:
                    chunk: list = []
                    used = 0
                    for payload in batch:
                        frame = pack(len(payload)) + payload
                        if used + len(frame) > select.PIPE_BUF and chunk:
                            _write_all(fd, b"".join(chunk))
                            chunk, used = [], 0
                        chunk.append(frame)
                        used += len(frame)
                    if chunk:
                        _write_all(fd, b"".join(chunk))
        finally:
            os.close(fd)

    def receive(self, channel, row, rid, count, sync):
        fd = os.open(channel, os.O_RDONLY)
        try:
            start = sync.ready()
            out: list = []
            _read_frames(fd, count, out.append)
            return out, start, now()
        finally:
            os.close(fd)

    def echo(self, channel, row, count, sync):
        with _ends(channel, server=True) as (rfd, wfd):
            sync.ready()
            pack, write = _LEN.pack, os.write
            _read_frames(rfd, count, lambda m: write(wfd, pack(len(m)) + m))

    def ping(self, channel, row, payloads, sync):
        with _ends(channel, server=False) as (rfd, wfd):
            sync.ready()
            pack, write = _LEN.pack, os.write
            got: list = []

            def recv() -> bytes:
                _read_frames(rfd, 1, got.append)
                return got.pop()

            return ping_loop(lambda m: write(wfd, pack(len(m)) + m), recv, payloads)


class PythonFloor(Peer):
    """Ping-pong only: the least a Python process can do per round trip over FIFOs.

    One ``os.write`` of the payload and one blocking ``os.read``, nothing else: no
    length prefix, no framing, no checks (it relies on one message in flight and on a
    write of at most ``PIPE_BUF`` arriving in one piece).  No library can do less per
    round trip from Python, so it is the ceiling of the ping-pong targets measured
    in the same run, as the C limit is the floor of the latency.
    """

    key = "python-floor"
    name = "Python floor: os.write/os.read, unframed (ceiling)"
    multi_writer = False
    multi_reader = False

    def unsupported(self, row: Any) -> str | None:
        return None if row.kind == "pingpong" else "n/a: ping-pong only"

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        return _fifos(row, tmpdir)

    def echo(self, channel: Any, row: Any, count: int, sync: Any) -> None:
        with _ends(channel, server=True) as (rfd, wfd):
            sync.ready()
            read, write = os.read, os.write
            for _ in range(count):
                write(wfd, read(rfd, 65536))

    def ping(
        self, channel: Any, row: Any, payloads: list[bytes], sync: Any
    ) -> tuple[list[Any], list[Any]]:
        with _ends(channel, server=False) as (rfd, wfd):
            sync.ready()
            read, write = os.read, os.write
            return ping_loop(lambda m: write(wfd, m), lambda: read(rfd, 65536), payloads)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


class FastFifoBuffered(FastFifo):
    """fastfifo ``Writer(buffered=True)``: per-message ``put`` packed into atomic writes."""

    key = "fastfifo-buffered"
    name = "fastfifo buffered"
    pingpong = False

    def label(self, row: Any) -> str:
        return "fastfifo Writer(buffered=True) put / get"

    def unsupported(self, row: Any) -> str | None:
        if row.batched:
            return "n/a: this row is put_many/get_many"
        return super().unsupported(row)

    def send(self, channel, row, wid, items, sync):
        import fastfifo

        with fastfifo.Writer(channel, buffered=True) as w:
            sync.ready()
            put = w.put
            for payload in items:
                put(payload)


class FastFifoViews(FastFifo):
    """fastfifo ``get_batch``: zero-copy batch receive (a MessageBatch per call)."""

    key = "fastfifo-views"
    name = "fastfifo zero-copy"
    pingpong = False

    def label(self, row: Any) -> str:
        return "fastfifo put_many / get_batch (zero-copy)"

    def unsupported(self, row: Any) -> str | None:
        if not row.batched:
            return "n/a: batch API only"
        return super().unsupported(row)

    def receive(self, channel, row, rid, count, sync):
        import fastfifo

        kwargs = {"shared": True} if row.readers > 1 else {}
        batches: list = []
        with fastfifo.Reader(channel, **kwargs) as r:
            start = sync.ready()
            get, keep, got = r.get_batch, batches.append, 0
            if count is not None:
                while got < count:
                    batch = get(1000)
                    keep(batch)
                    got += len(batch)
                end = now()
            else:
                take = functools.partial(get, timeout=IDLE)
                end = receive_until_done(
                    take, keep, fastfifo.Empty, sync, start, lambda: sum(map(len, batches))
                )
        # The clock has stopped: copy out for the delivery check only.
        return [m for b in batches for m in b.tolist()], start, end
