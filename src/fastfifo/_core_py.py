"""The pure-Python twin of ``_core.pyx``: the same contract with ``os`` and ``select``.

It is the reference (tests run every behaviour against both) and the fallback
where no compiler or wheel exists (``FASTFIFO_NO_EXTENSIONS=1`` selects it).
Keep the two in step: same classes, same methods, same errors, same bytes on
the wire (docs/PROTOCOL.md).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import threading
import time
from collections.abc import Iterable
from typing import Any

from ._errors import ClosedError, CorruptStreamError, Empty, Full, MessageTooLargeError

BACKEND = "python"

HEADER = 8
MAGIC = 0xFA
KIND_WHOLE = 0
FRAMES = 0
LINES = 1
GOT, NEED, BAD_HEADER, TOO_LARGE = 1, 0, -1, -2
_MAGIC_BYTE = bytes([MAGIC])


def _check(flags: int, length: int) -> int:
    return (((length ^ (flags << 24)) * 0x9E3779B1) & 0xFFFFFFFF) >> 16


def encode_header(flags: int, length: int) -> bytes:
    """The 8-byte frame header for a payload of ``length`` bytes (for tests and tools)."""
    c = _check(flags, length)
    return bytes((MAGIC, flags, c & 0xFF, c >> 8)) + length.to_bytes(4, "little")


def _header_valid(buf: bytes | bytearray, i: int) -> bool:
    if buf[i] != MAGIC or buf[i + 1] != KIND_WHOLE:
        return False
    c = _check(buf[i + 1], int.from_bytes(buf[i + 4 : i + 8], "little"))
    return buf[i + 2] == (c & 0xFF) and buf[i + 3] == (c >> 8)


def _to_deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    t = float(timeout)
    if not t >= 0.0:
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return time.monotonic() + t


def _guarded_write(fd: int, data: bytes | memoryview) -> int:
    # SIGPIPE at SIG_DFL would kill us on EPIPE: block it around the write and
    # consume the signal the failed write queued (see _core.pyx guarded_write).
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        return os.write(fd, data)
    except BrokenPipeError:
        if signal.SIGPIPE not in old:
            if hasattr(signal, "sigtimedwait"):
                signal.sigtimedwait({signal.SIGPIPE}, 0)
            elif signal.SIGPIPE in signal.sigpending():  # macOS: no sigtimedwait
                signal.sigwait({signal.SIGPIPE})
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def sigpipe_is_default() -> bool:
    """True when SIGPIPE would kill this process (Python's view of its disposition)."""
    return signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL


class _Endpoint:
    """An fd, a wake-up pipe and a lock that serialises calls from several threads."""

    path: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._fd = self._wake_r = self._wake_w = -1
        self._closing = False
        self._lock = threading.Lock()
        self._state = threading.Lock()  # guards fd numbers between close() and _leave()
        self.path = None

    def __del__(self) -> None:
        self._close_fds()

    def _attach(self, fd: int, path: Any) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._fd, self._wake_r, self._wake_w, self.path = fd, r, w, path

    def _close_fds(self) -> None:
        for name in ("_fd", "_wake_r", "_wake_w"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    def _enter(self, deadline: float | None) -> bool:
        if self._closing:
            self._raise_closed()
        if not self._lock.acquire(False):
            wait = -1 if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not self._lock.acquire(True, wait):
                return False
        if self._closing:
            self._lock.release()
            self._raise_closed()
        return True

    def _leave(self) -> None:
        self._lock.release()
        if self._closing and self._lock.acquire(False):
            with self._state:
                self._close_fds()
            self._lock.release()

    def _raise_closed(self) -> None:
        raise ClosedError(f"{type(self).__name__} for {self.path!r} is closed")

    def close(self) -> None:
        """Close the endpoint (idempotent); a call blocked in another thread raises ClosedError."""
        with self._state:
            self._closing = True
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except BlockingIOError:
                    pass
        if self._lock.acquire(False):
            with self._state:
                self._close_fds()
            self._lock.release()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closing

    def fileno(self) -> int:
        """The FIFO's file descriptor (non-blocking), for ``select``/``poll``/event loops."""
        if self._closing:
            self._raise_closed()
        return self._fd

    def _wait(self, events: int, deadline: float | None) -> int:
        """poll() the FIFO for ``events``; its revents, or 0 once the deadline passed."""
        p = select.poll()
        p.register(self._fd, events)
        p.register(self._wake_r, select.POLLIN)
        while True:
            if deadline is None:
                ms = None
            else:
                left = deadline - time.monotonic()
                ms = 0 if left <= 0 else int(-(-min(left, 86400.0) * 1000 // 1))
            ready = dict(p.poll(ms))  # retries EINTR itself after running signal handlers
            if ready.get(self._wake_r) or ready.get(self._fd, 0) & select.POLLNVAL:
                self._raise_closed()
            if ready.get(self._fd):
                return ready[self._fd]
            if ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                return 0

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WriterCore(_Endpoint):
    """Frames messages and writes them in atomic (<= PIPE_BUF) writes."""

    def _configure(
        self, fd: int, path: Any, framing: int, atomic: int, guard_sigpipe: bool
    ) -> None:
        self._framing, self._atomic, self._guard = framing, atomic, guard_sigpipe
        self._overhead = HEADER if framing == FRAMES else 1
        self._attach(fd, path)

    @property
    def max_atomic_message(self) -> int:
        """The largest message that goes out in one atomic write."""
        return self._atomic - self._overhead

    def _frame_size(self, data: memoryview, index: int) -> int:
        n = data.nbytes
        total = n + self._overhead
        where = "" if index < 0 else f" (message {index} of the batch)"
        if total > self._atomic:
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {n} bytes{where} does not fit one atomic write: "
                f"the limit is {self._atomic - self._overhead} bytes (PIPE_BUF={self._atomic} "
                f"minus framing); nothing was written. Split the message"
            )
        if self._framing == LINES and bytes(data).find(b"\n") >= 0:
            raise ValueError(
                f"{self.path!r}: a message{where} contains a newline, which lines framing "
                f"uses as the separator; nothing was written. Use framing='frames' for "
                f"binary data"
            )
        return total

    def _encode(self, data: memoryview) -> bytes:
        if self._framing == FRAMES:
            return encode_header(KIND_WHOLE, data.nbytes) + data
        return bytes(data) + b"\n"

    def _write(self, chunk: bytes, deadline: float | None) -> bool:
        while True:
            try:
                n = _guarded_write(self._fd, chunk) if self._guard else os.write(self._fd, chunk)
            except BlockingIOError:
                if self._wait(select.POLLOUT, deadline) == 0:
                    return False
                continue
            except BrokenPipeError:
                raise BrokenPipeError(
                    errno.EPIPE,
                    "no reader has the FIFO open any more (every reader closed or died); the "
                    "message was not written. Start a reader and reopen the Writer",
                    self.path,
                ) from None
            except InterruptedError:  # pragma: no cover - os.write retries EINTR itself
                continue
            if n != len(chunk):
                raise OSError(0, f"short write of {n} of {len(chunk)} bytes", self.path)
            return True

    def put(self, data: Any, timeout: float | None = None) -> None:
        """Write one message (bytes-like) in one atomic write.  See the Cython core."""
        deadline = _to_deadline(timeout)
        with memoryview(data) as view:
            view = view.cast("B") if view.ndim != 1 or view.format != "B" else view
            self._frame_size(view, -1)
            if not self._enter(deadline):
                raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s")
            try:
                if not self._write(self._encode(view), deadline):
                    raise Full(
                        f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not "
                        "keeping up); nothing was written",
                        0,
                    )
            finally:
                self._leave()

    def put_many(self, messages: Iterable[Any], timeout: float | None = None) -> None:
        """Write many messages, packed into as few atomic writes as possible."""
        deadline = _to_deadline(timeout)
        seq = messages if type(messages) is list else list(messages)
        views = []
        for i, item in enumerate(seq):
            v = memoryview(item)
            v = v.cast("B") if v.ndim != 1 or v.format != "B" else v
            self._frame_size(v, i)
            views.append(v)
        if not views:
            return
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s", 0)
        try:
            chunk: list[bytes] = []
            used = pending = sent = 0
            for v in views:
                size = v.nbytes + self._overhead
                if used + size > self._atomic:
                    if not self._write(b"".join(chunk), deadline):
                        raise Full(self._full_message(timeout, sent), sent)
                    sent += pending
                    chunk, used, pending = [], 0, 0
                chunk.append(self._encode(v))
                used += size
                pending += 1
            if not self._write(b"".join(chunk), deadline):
                raise Full(self._full_message(timeout, sent), sent)
        finally:
            self._leave()

    def _full_message(self, timeout: float | None, sent: int) -> str:
        return (
            f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not keeping "
            f"up); the first {sent} messages were written, the rest were not"
        )


class ReaderCore(_Endpoint):
    """Reads into one buffer and parses whole messages out of it."""

    skipped_bytes: int
    dropped_messages: int

    def _configure(
        self,
        fd: int,
        path: Any,
        framing: int,
        max_message_size: int,
        buffer_size: int,
        stop_at_eof: bool,
    ) -> None:
        self._framing, self._maxmsg, self._stop_at_eof = framing, max_message_size, stop_at_eof
        self._bufsize = max(buffer_size, 4096)
        self._buf = bytearray()
        self._rbuf = bytearray(self._bufsize)  # read target, reused: no 1 MiB bytes per read
        self._start = 0
        self._discard = 0
        self._skip_line = False
        self._resync = False
        self.skipped_bytes = 0
        self.dropped_messages = 0
        self._attach(fd, path)

    @property
    def buffered(self) -> int:
        """Bytes read from the FIFO and not yet returned as messages."""
        return len(self._buf) - self._start

    @property
    def buffer_capacity(self) -> int:
        """Bytes the receive buffers hold now (bounded by max_message_size plus one read)."""
        return len(self._buf) + len(self._rbuf)

    def _take(self) -> tuple[int, bytes | None]:
        buf = self._buf
        while True:
            avail = len(buf) - self._start
            if self._discard:
                k = min(self._discard, avail)
                self._start += k
                self._discard -= k
                if self._discard:
                    return NEED, None
                continue
            s = self._start
            if self._framing == FRAMES:
                if avail < HEADER:
                    return NEED, None
                if not _header_valid(buf, s):
                    if not self._resync:
                        return BAD_HEADER, None
                    k = self._scan(s + 1)
                    self.skipped_bytes += k - s
                    self._start = k
                    continue
                self._resync = False
                length = int.from_bytes(buf[s + 4 : s + 8], "little")
                if length > self._maxmsg:
                    return TOO_LARGE, None
                if avail < HEADER + length:
                    return NEED, None
                self._start = s + HEADER + length
                return GOT, bytes(buf[s + HEADER : self._start])
            nl = buf.find(b"\n", s)
            if self._skip_line:
                if nl < 0:
                    self._start = len(buf)
                    return NEED, None
                self._start = nl + 1
                self._skip_line = False
                continue
            if nl < 0:
                return (TOO_LARGE, None) if avail > self._maxmsg else (NEED, None)
            if nl - s > self._maxmsg:
                return TOO_LARGE, None
            self._start = nl + 1
            return GOT, bytes(buf[s:nl])

    def _scan(self, i: int) -> int:
        buf, end = self._buf, len(self._buf)
        while i < end:
            i = buf.find(_MAGIC_BYTE, i)
            if i < 0:
                return end
            if end - i < HEADER or _header_valid(buf, i):
                return i
            i += 1
        return end

    def _raise_bad(self, status: int) -> None:
        s = self._start
        if status == BAD_HEADER:
            k = self._scan(s + 1)
            n = k - s
            head = bytes(self._buf[s : s + min(n, 16)])
            self._start = k
            self.skipped_bytes += n
            self._resync = True
            raise CorruptStreamError(
                f"{self.path!r}: skipped {n} bytes that are not fastfifo frames (they start "
                f"{head!r}): a foreign or corrupt writer, or a lines peer writing into a "
                f"frames FIFO. Valid messages after them are still delivered",
                n,
            )
        self.dropped_messages += 1
        if self._framing == FRAMES:
            n = int.from_bytes(self._buf[s + 4 : s + 8], "little")
            self._start = s + HEADER
            self._discard = n
        else:
            nl = self._buf.find(b"\n", s)
            if nl < 0:
                n = len(self._buf) - s
                self._start = len(self._buf)
                self._skip_line = True
            else:
                n = nl - s
                self._start = nl + 1
        least = "at least " if self._framing == LINES else ""
        raise MessageTooLargeError(
            f"{self.path!r}: a message of {least}{n} bytes exceeds max_message_size="
            f"{self._maxmsg}; it was discarded and the messages after it are still delivered "
            f"(raise max_message_size to receive it)"
        )

    def _fill(self, deadline: float | None) -> int:
        """Read more bytes: 1 when some arrived, 0 on timeout, -1 at end of stream."""
        if self._start:
            del self._buf[: self._start]
            self._start = 0
        while True:
            try:
                n = os.readv(self._fd, [self._rbuf])
            except BlockingIOError:
                if self._wait(select.POLLIN, deadline) == 0:
                    return 0
                continue
            if n:
                self._buf += memoryview(self._rbuf)[:n]
                return 1
            # See _core.pyx: 0 before the first writer has no POLLHUP, after the last has.
            rev = self._wait(select.POLLIN, 0.0)
            if rev & select.POLLIN:
                continue
            if rev & select.POLLHUP:
                return -1
            if self._wait(select.POLLIN, deadline) == 0:
                return 0

    def _end_of_stream(self) -> bytes:
        n = len(self._buf) - self._start
        if n and not self._discard and not self._skip_line:
            rest = bytes(self._buf[self._start :])
            self._start = len(self._buf)
            if self._framing == LINES:
                return rest
            self.skipped_bytes += n
            raise CorruptStreamError(
                f"{self.path!r}: the last writer left in the middle of a frame; its "
                f"{n} bytes were dropped",
                n,
            )
        self._start = len(self._buf)
        self._discard = 0
        self._skip_line = False
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    def get(self, timeout: float | None = None) -> bytes:
        """Return the next message as bytes.  See the Cython core."""
        deadline = _to_deadline(timeout)
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            while True:
                status, msg = self._take()
                if status == GOT:
                    return msg  # type: ignore[return-value]
                if status < 0:
                    self._raise_bad(status)
                r = self._fill(deadline)
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return self._end_of_stream()
        finally:
            self._leave()

    def get_many(self, max_messages: int = 1000, timeout: float | None = None) -> list[bytes]:
        """Return a list of 1 to ``max_messages`` messages.  See the Cython core."""
        deadline = _to_deadline(timeout)
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        out: list[bytes] = []
        read_more = True
        try:
            while True:
                status = NEED
                while len(out) < max_messages:
                    status, msg = self._take()
                    if status != GOT:
                        break
                    out.append(msg)  # type: ignore[arg-type]
                if len(out) >= max_messages:
                    return out
                if out:
                    if status < 0 or not read_more:
                        return out
                    read_more = False
                    if self._fill(0.0) <= 0:
                        return out
                    continue
                if status < 0:
                    self._raise_bad(status)
                r = self._fill(deadline)
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return [self._end_of_stream()]
        finally:
            self._leave()

    def __iter__(self) -> ReaderCore:
        return self

    def __next__(self) -> bytes:
        try:
            return self.get()
        except (EOFError, ClosedError):
            raise StopIteration from None
