"""The pure-Python twin of ``_core.pyx``: the same contract with ``os`` and ``select``.

It is the reference (tests run every behaviour against both) and the fallback
where no compiler or wheel exists (``FASTFIFO_NO_EXTENSIONS=1`` selects it).
Keep the two in step: same classes, same methods, same errors, same bytes on
the wire (docs/PROTOCOL.md).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from ._errors import (
    ClosedError,
    CorruptStreamError,
    Empty,
    Full,
    IncompleteMessageWarning,
    MessageTooLargeError,
)

BACKEND = "python"

HEADER = 8
MAGIC = 0xFA
KIND_WHOLE, KIND_FIRST, KIND_MIDDLE, KIND_LAST = 0, 1, 2, 3
FRAMES = 0
LINES = 1
GOT, NEED, BAD_HEADER, TOO_LARGE = 1, 0, -1, -2
_MAGIC_BYTE = bytes([MAGIC])
#: PIPE_BUF on Linux (the only system with tee()): see ATOMIC_MAX in _core.pyx.
ATOMIC_MAX = 4096


def _check(flags: int, length: int) -> int:
    return (((length ^ (flags << 24)) * 0x9E3779B1) & 0xFFFFFFFF) >> 16


def encode_header(flags: int, length: int) -> bytes:
    """The 8-byte frame header for a payload of ``length`` bytes (for tests and tools)."""
    c = _check(flags, length)
    return bytes((MAGIC, flags, c & 0xFF, c >> 8)) + length.to_bytes(4, "little")


def _header_valid(buf: bytes | bytearray, i: int) -> bool:
    if buf[i] != MAGIC or buf[i + 1] & ~3:
        return False
    c = _check(buf[i + 1], int.from_bytes(buf[i + 4 : i + 8], "little"))
    return buf[i + 2] == (c & 0xFF) and buf[i + 3] == (c >> 8)


def _header_usable(buf: bytes | bytearray, i: int) -> bool:
    """A valid header the parser does not refuse as bad (a fragment is one atomic write)."""
    if not _header_valid(buf, i):
        return False
    kind = buf[i + 1] & 3
    length = int.from_bytes(buf[i + 4 : i + 8], "little")
    return kind == KIND_WHOLE or (length <= 65536 and (kind != KIND_FIRST or length >= 8))


# tee() has no os.* wrapper; on Linux take it from libc (ctypes is part of CPython).
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
HAVE_TEE = _libc is not None and hasattr(_libc, "tee")
_SPLICE_F_NONBLOCK = 2
# Open-file-description locks (Linux fcntl.h): released when the holder dies, and
# independent of flock(), so readers' and writers' locks never interact.
_F_OFD_GETLK, _F_OFD_SETLK = 36, 37
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86_64/aarch64


def _tee(fd_in: int, fd_out: int, n: int) -> int:
    r: int = _libc.tee(fd_in, fd_out, ctypes.c_size_t(n), _SPLICE_F_NONBLOCK)  # type: ignore[union-attr]
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _ofd_lock(fd: int, kind: int) -> None:
    fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, 0, 1, 0))


def _ofd_held(fd: int) -> bool:
    res = fcntl.fcntl(fd, _F_OFD_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
    return bool(_FLOCK.unpack(res)[0] != fcntl.F_UNLCK)


def _to_deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    t = float(timeout)
    if not t >= 0.0:
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return time.monotonic() + t


def _guarded_write(fd: int, data: bytes | memoryview) -> int:
    # SIGPIPE at SIG_DFL would kill us on EPIPE: block it around the write and
    # consume the signal the failed write queued (see guarded_write in _wire.pxi).
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
        reason = getattr(self, "_closed_reason", None)
        why = f" ({reason})" if reason else ""
        raise ClosedError(f"{type(self).__name__} for {self.path!r} is closed{why}")

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

    def _lock_wait(self, fd: int, ofd: bool, deadline: float | None) -> bool:
        """Take flock (ofd false) or the OFD write lock; False when the deadline passed.

        As in the Cython core: never a blocking lock call, a few yields, then
        1-10 ms sleeps in poll() on the wake-up pipe.
        """
        spins, ms = 0, 0
        while True:
            try:
                if ofd:
                    _ofd_lock(fd, fcntl.F_WRLCK)
                else:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except (BlockingIOError, PermissionError):
                pass
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if spins < 20:
                spins += 1
                os.sched_yield()
                continue
            ms = 1 if ms == 0 else min(ms * 2, 10)
            if deadline is not None:
                ms = max(1, min(ms, int(-(-(deadline - time.monotonic()) * 1000 // 1))))
            if select.select([self._wake_r], [], [], ms / 1000)[0]:
                self._raise_closed()

    @staticmethod
    def _unlock(fd: int, ofd: bool) -> None:
        if ofd:
            _ofd_lock(fd, fcntl.F_UNLCK)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WriterCore(_Endpoint):
    """Frames messages and writes them in atomic (<= PIPE_BUF) writes; see the Cython core."""

    _lock_fd = -1

    def _configure(
        self,
        fd: int,
        path: Any,
        framing: int,
        atomic: int,
        guard_sigpipe: bool,
        max_message_size: int,
        lock_fd: int,
        lock_ofd: bool,
        buffered: bool = False,
    ) -> None:
        self._buffered = buffered
        self._pend: list[bytes] = []
        self._pend_bytes = 0
        self._framing, self._atomic, self._guard = framing, atomic, guard_sigpipe
        self._attach(fd, path)  # first: see the Cython core's _configure
        self._maxmsg, self._lock_fd, self._lock_ofd = max_message_size, lock_fd, lock_ofd
        self._overhead = HEADER if framing == FRAMES else 1

    def _close_fds(self) -> None:
        if self._lock_fd >= 0 and self._lock_fd != self._fd:
            os.close(self._lock_fd)
        self._lock_fd = -1
        super()._close_fds()

    @property
    def max_atomic_message(self) -> int:
        """The largest message that goes out in one atomic write."""
        return self._atomic - self._overhead

    def _frame_size(self, data: memoryview, index: int) -> int:
        """Bytes of the encoded message when it fits one atomic write, else 0 (fragments)."""
        n = data.nbytes
        total = n + self._overhead
        where = "" if index < 0 else f" (message {index} of the batch)"
        if total > self._atomic and (self._framing == LINES or n > self._maxmsg):
            if self._framing == LINES:
                limit = (
                    f"lines framing sends each line in one atomic write, so the limit is "
                    f"{self._atomic - 1} bytes (PIPE_BUF={self._atomic}); use "
                    f"framing='frames' for larger messages"
                )
            else:
                limit = f"the limit is max_message_size={self._maxmsg}"
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {n} bytes{where} is too large: {limit}; "
                f"nothing was written"
            )
        if self._framing == LINES and bytes(data).find(b"\n") >= 0:
            raise ValueError(
                f"{self.path!r}: a message{where} contains a newline, which lines framing "
                f"uses as the separator; nothing was written. Use framing='frames' for "
                f"binary data"
            )
        return total if total <= self._atomic else 0

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
            if n != len(chunk):
                raise OSError(0, f"short write of {n} of {len(chunk)} bytes", self.path)
            return True

    def _write_large(self, data: memoryview, deadline: float | None, timeout: Any) -> None:
        """Send one message as FIRST, MIDDLE..., LAST fragments under the writers' lock."""
        n = data.nbytes
        if not self._lock_wait(self._lock_fd, self._lock_ofd, deadline):
            raise Full(
                f"{self.path!r}: another writer held the large-message lock for {timeout} s; "
                "nothing was written",
                0,
            )
        try:
            chunk = min(n, self._atomic - 2 * HEADER)
            frame = encode_header(KIND_FIRST, chunk + 8) + n.to_bytes(8, "little") + data[:chunk]
            off = 0
            while True:
                if not self._write(frame, deadline):
                    raise Full(
                        f"{self.path!r}: the pipe stayed full for {timeout} s after {off} of "
                        f"{n} bytes of a large message; the message was not delivered "
                        "(readers drop the part they got, with an IncompleteMessageWarning)",
                        0,
                    )
                off += chunk
                if off == n:
                    return
                chunk = min(n - off, self._atomic - HEADER)
                kind = KIND_LAST if off + chunk == n else KIND_MIDDLE
                frame = encode_header(kind, chunk) + data[off : off + chunk]
        finally:
            self._unlock(self._lock_fd, self._lock_ofd)

    @staticmethod
    def _view(data: Any) -> memoryview:
        v = memoryview(data)
        return v.cast("B") if v.ndim != 1 or v.format != "B" else v

    def put(self, data: Any, timeout: float | None = None) -> None:
        """Write one message (bytes-like).  See the Cython core."""
        deadline = _to_deadline(timeout)
        view = self._view(data)
        total = self._frame_size(view, -1)
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s")
        try:
            if total == 0:
                if self._pend and not self._flush(deadline):
                    raise Full(self._pending_message(timeout))
                self._write_large(view, deadline, timeout)
            elif self._buffered:
                if self._pend_bytes + total > self._atomic and not self._flush(deadline):
                    raise Full(self._pending_message(timeout))
                self._pend.append(self._encode(view))
                self._pend_bytes += total
            elif not self._write(self._encode(view), deadline):
                raise Full(
                    f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not "
                    "keeping up); nothing was written",
                    0,
                )
        finally:
            self._leave()

    def _flush(self, deadline: float | None) -> bool:
        if self._pend and not self._write(b"".join(self._pend), deadline):
            return False
        self._pend, self._pend_bytes = [], 0
        return True

    def _pending_message(self, timeout: float | None) -> str:
        return (
            f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not keeping "
            f"up); {len(self._pend)} earlier messages are still buffered and this one was not "
            "taken"
        )

    def flush(self, timeout: float | None = None) -> None:
        """Write the messages ``put()`` buffered (``buffered=True``); a no-op otherwise."""
        deadline = _to_deadline(timeout)
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s")
        try:
            if not self._flush(deadline):
                raise Full(
                    f"{self.path!r}: the pipe stayed full for {timeout} s; {len(self._pend)} "
                    "messages are still buffered",
                    0,
                )
        finally:
            self._leave()

    @property
    def pending(self) -> int:
        """Messages buffered by ``put()`` and not yet written (``buffered=True``)."""
        return len(self._pend)

    def _flush_if_idle(self) -> bool:
        """close(): flush, waiting as needed, unless another thread is inside a call."""
        if self._closing or not self._lock.acquire(False):
            return False
        try:
            self._flush(None)
        finally:
            self._lock.release()
        return True

    def _after_fork_in_child(self) -> None:
        """After fork(): the description, its lock and the buffer are the parent's; close."""
        self._pend, self._pend_bytes = [], 0
        self._closing = True
        self._closed_reason = "it was opened before fork(); open a new Writer in this process"
        self._close_fds()

    def put_many(self, messages: Iterable[Any], timeout: float | None = None) -> None:
        """Write many messages, packed into as few atomic writes as possible."""
        deadline = _to_deadline(timeout)
        seq = messages if type(messages) is list else list(messages)
        views = [self._view(item) for item in seq]
        sizes = [self._frame_size(v, i) for i, v in enumerate(views)]
        if not views:
            return
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s", 0)
        try:
            if self._pend and not self._flush(deadline):
                raise Full(self._pending_message(timeout), 0)
            chunk: list[bytes] = []
            used = pending = sent = 0
            for v, size in zip(views, sizes):
                if size == 0 or used + size > self._atomic:
                    if chunk and not self._write(b"".join(chunk), deadline):
                        raise Full(self._full_message(timeout, sent), sent)
                    sent += pending
                    chunk, used, pending = [], 0, 0
                if size == 0:
                    try:
                        self._write_large(v, deadline, timeout)
                    except Full as e:
                        raise Full(f"{e} ({self._full_message(timeout, sent)})", sent) from None
                    sent += 1
                    continue
                chunk.append(self._encode(v))
                used += size
                pending += 1
            if chunk and not self._write(b"".join(chunk), deadline):
                raise Full(self._full_message(timeout, sent), sent)
        finally:
            self._leave()

    def _full_message(self, timeout: float | None, sent: int) -> str:
        return (
            f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not keeping "
            f"up); the first {sent} messages were written, the rest were not"
        )


class MessageBatch:
    """Messages from ``Reader.get_batch()``: read-only views by index or iteration."""

    def __init__(self, messages: list[bytes]) -> None:
        self._messages = messages

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, i: int) -> memoryview:
        return memoryview(self._messages[i])

    def __iter__(self) -> Iterator[memoryview]:
        return (memoryview(m) for m in self._messages)

    def tolist(self) -> list[bytes]:
        """The messages as a list of bytes."""
        return list(self._messages)

    def __repr__(self) -> str:
        return f"<fastfifo.MessageBatch of {len(self._messages)} messages>"


class ReaderCore(_Endpoint):
    """Reads into one buffer and cuts whole messages out of it; see the Cython core."""

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
        wlock_fd: int = -1,
        wlock_ofd: bool = True,
    ) -> None:
        self._framing, self._maxmsg, self._stop_at_eof = framing, max_message_size, stop_at_eof
        self._bufsize = max(buffer_size, 4096)
        self._buf = bytearray()
        self._rbuf = bytearray(self._bufsize)  # read target, reused: no 1 MiB bytes per read
        self._start = 0
        self._discard = 0
        self._skip_line = False
        self._resync = False
        self._drained = False
        self._asm: bytearray | None = None
        self._asm_total = 0
        self._asm_skip = False
        self._orphan = False
        self._late_warnings: list[str] = []
        self._shared = self._locked = self._in_msg = False
        self._owe = 0  # bytes at the pipe's head that finish a unit this reader began
        self._use_tee = False
        self._rlock_fd = self._peek_r = self._peek_w = self._null_fd = -1
        self._attach(fd, path)  # before the lock fds: see the Cython core's _configure
        self._wlock_fd = fd if wlock_fd < 0 else wlock_fd
        self._wlock_ofd = wlock_ofd
        self._window = 0
        self._claim_max = 1
        self.skipped_bytes = 0
        self.dropped_messages = 0

    def _share(
        self, rlock_fd: int, peek_r: int, peek_w: int, null_fd: int, window: int, use_tee: bool
    ) -> None:
        """Switch to shared mode; the fds are closed by close() from here on."""
        self._shared, self._rlock_fd, self._use_tee = True, rlock_fd, use_tee
        self._peek_r, self._peek_w, self._null_fd, self._window = peek_r, peek_w, null_fd, window

    def _after_fork_in_child(self) -> None:
        """After fork(): the open file descriptions (and any lock) are the parent's."""
        self._locked = False
        self._closing = True
        self._closed_reason = "it was opened before fork(); open a new Reader in this process"
        self._close_fds()

    def _close_fds(self) -> None:
        for name in ("_peek_r", "_peek_w", "_null_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)
        for name in ("_rlock_fd", "_wlock_fd"):
            fd = getattr(self, name, -1)
            setattr(self, name, -1)
            if fd >= 0 and fd != self._fd:
                os.close(fd)
        super()._close_fds()

    @property
    def buffered(self) -> int:
        """Bytes read from the FIFO and not yet returned as messages."""
        return len(self._buf) - self._start

    @property
    def buffer_capacity(self) -> int:
        """Bytes the receive buffers hold now (bounded by max_message_size plus one read)."""
        return len(self._buf) + len(self._rbuf) + (len(self._asm) if self._asm else 0)

    # ------------------------------------------------------------ parsing

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
                kind = buf[s + 1] & 3
                if kind == KIND_WHOLE:
                    if length > self._maxmsg:
                        return TOO_LARGE, None
                    if avail < HEADER + length:
                        return NEED, None
                    self._start = s + HEADER + length
                    return GOT, bytes(buf[s + HEADER : self._start])
                if length > 65536 or (kind == KIND_FIRST and length < 8):
                    return BAD_HEADER, None
                if avail < HEADER + length:
                    return NEED, None
                data = buf[s + HEADER : s + HEADER + length]
                if kind == KIND_FIRST and int.from_bytes(data[:8], "little") > self._maxmsg:
                    return TOO_LARGE, None
                msg = self._fragment(kind, data)
                self._start = s + HEADER + length
                if msg is not None:
                    return GOT, msg
                continue
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

    def _fragment(self, kind: int, data: bytearray) -> bytes | None:
        if kind == KIND_FIRST:
            if self._asm is not None or self._asm_skip:
                self._drop_partial(
                    "a new large message began before it ended (its writer died or gave up "
                    "part-way)"
                )
            self._orphan = False
            total = int.from_bytes(data[:8], "little")
            if len(data) - 8 > total:
                self._drop_partial("its first fragment is longer than the whole it announces")
                self._asm_skip = True
                return None
            self._asm = bytearray(data[8:])
            self._asm_total = total
            return None
        if self._asm is None:
            if not self._asm_skip and not self._orphan:
                self._orphan = True
                self._drop_partial(
                    "this reader got fragments of a large message whose beginning went to "
                    "another reader that then died, or was sent before this reader opened"
                )
            if kind == KIND_LAST:
                self._asm_skip = self._orphan = False
            return None
        if len(self._asm) + len(data) > self._asm_total:
            self._drop_partial("its fragments add up to more than it announced")
            self._asm_skip = kind != KIND_LAST
            return None
        self._asm += data
        if kind == KIND_MIDDLE:
            return None
        if len(self._asm) != self._asm_total:
            self._drop_partial("its fragments add up to less than it announced")
            return None
        msg, self._asm = bytes(self._asm), None
        return msg

    def _drop_partial(self, reason: str) -> None:
        self.dropped_messages += 1
        if self._asm is not None:
            what = f"a large message ({len(self._asm)} of {self._asm_total} bytes received)"
        else:
            what = "an incomplete large message"
        self._asm = None
        self._asm_skip = False
        self._late_warnings.append(f"{self.path!r}: dropped {what}: {reason}")

    def _report_drops(self) -> None:
        pending, self._late_warnings = self._late_warnings, []
        for text in pending:
            warnings.warn(text, IncompleteMessageWarning, stacklevel=3)

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
            length = int.from_bytes(self._buf[s + 4 : s + 8], "little")
            if self._buf[s + 1] & 3 == KIND_FIRST:
                if self._asm is not None or self._asm_skip:
                    self._drop_partial("a new large message began before it ended")
                n = int.from_bytes(self._buf[s + 8 : s + 16], "little")
                self._start = s + HEADER + length
                self._asm_skip = True
            else:
                n = length
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

    # ------------------------------------------------------------ reading

    def _writer_gone(self) -> bool:
        if self._wlock_ofd:
            return not _ofd_held(self._wlock_fd)
        try:  # sidecar lock file (macOS)
            fcntl.flock(self._wlock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(self._wlock_fd, fcntl.LOCK_UN)
        return True

    def _pipe_empty(self) -> bool:
        return not select.select([self._fd], [], [], 0)[0]

    def _wait_data(self, deadline: float | None) -> int:
        """As in the Cython core: revents, 0 on timeout, -3 when a partial was abandoned."""
        if self._asm is None and not self._asm_skip and not self._in_msg:
            return self._wait(select.POLLIN, deadline)
        while True:
            if self._framing == FRAMES and self._writer_gone() and self._pipe_empty():
                self._drop_partial("its writer died or gave up part-way")
                self._in_msg = False
                return -3
            step = time.monotonic() + 0.1
            rev = self._wait(
                select.POLLIN, step if deadline is None or step < deadline else deadline
            )
            if rev:
                return rev
            if deadline is not None and time.monotonic() >= deadline:
                return 0

    def _compact(self) -> None:
        if self._start:
            del self._buf[: self._start]
            self._start = 0

    def _fill(self, deadline: float | None) -> int:
        """Read more bytes: 1 when some arrived, 0 on timeout, -1 at end of stream."""
        if self._shared:
            return self._fill_shared(deadline)
        self._compact()
        if self._drained:
            rev = self._wait_data(deadline)
            if rev == 0:
                return 0
            if rev == -3:
                return 1
        while True:
            try:
                n = os.readv(self._fd, [self._rbuf])
            except BlockingIOError:
                rev = self._wait_data(deadline)
                if rev == 0:
                    return 0
                if rev == -3:
                    return 1
                continue
            if n:
                self._drained = n < len(self._rbuf)
                self._buf += memoryview(self._rbuf)[:n]
                return 1
            # See _fill in _reader.pxi: read() gives 0 before the first writer and after the
            # last, but only after the last is POLLHUP set.
            rev = self._wait(select.POLLIN, 0.0)
            if rev & select.POLLIN:
                continue
            if rev & select.POLLHUP:
                return -1
            if self._wait_data(deadline) == 0:
                return 0

    def _fill_shared(self, deadline: float | None) -> int:
        while True:
            if not self._locked:
                if self._wait(select.POLLIN, deadline) == 0:
                    return 0
                if not self._lock_wait(self._rlock_fd, False, deadline):
                    return 0
                self._locked = True
                self._resync = False  # a fresh claim: see _claims.pxi
            try:
                r = self._claim_tee() if self._use_tee else self._claim_exact()
            except BaseException:
                if not self._holding():
                    self._release()
                raise
            if r == 1:
                if not self._holding():
                    self._release()
                return 1
            if r == -1:
                if self._in_msg:  # every writer left part-way through a message
                    if self._framing == FRAMES:
                        self._drop_partial("every writer left before it ended")
                    self._in_msg = False
                self._owe = 0
                self._release()
                return -1
            if self._owe:  # part-way through a frame or line of ours: see _claims.pxi
                if self._wait(select.POLLIN, deadline) == 0:
                    return 0
                continue
            if self._in_msg:
                if r == -2:  # stray bytes short of a frame: back off, see _claims.pxi
                    if self._framing == FRAMES and self._writer_gone():
                        self._drop_partial("its writer died or gave up part-way")
                        self._in_msg = False
                        self._release()
                        return 1
                    if self._wait_wake(0.002, deadline) == 0:
                        return 0
                    continue
                rev = self._wait_data(deadline)
                if rev == -3:
                    self._release()
                    return 1
                if rev == 0:
                    return 0
                continue
            self._release()
            if r == -2:
                if self._wait_wake(0.002, deadline) == 0:
                    return 0
            elif deadline is not None and time.monotonic() >= deadline:
                return 0

    def _holding(self) -> bool:
        """Whether the pipe's head continues what this reader has begun taking."""
        return self._in_msg or self._owe != 0

    def _release(self) -> None:
        if self._locked:
            self._unlock(self._rlock_fd, False)
            self._locked = False

    def _wait_wake(self, seconds: float, deadline: float | None) -> int:
        until = time.monotonic() + seconds
        if deadline is not None and deadline < until:
            until = deadline
        if select.select([self._wake_r], [], [], max(until - time.monotonic(), 0.0))[0]:
            self._raise_closed()
        return 0 if deadline is not None and time.monotonic() >= deadline else 1

    def _claim_tee(self) -> int:
        """Under the lock: 1 claimed, 0 pipe empty, -1 end of stream, -2 head incomplete."""
        if self._owe:
            return self._claim_owed()
        # See _claims.pxi: peek about what this claim can take, widen if it is not enough.
        win = min(self._window, self._claim_max * 4096)
        while True:
            try:
                n = _tee(self._fd, self._peek_w, win)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    return 0
                raise OSError(e.errno, f"{e.strerror} (peeking with tee)", self.path) from None
            if n == 0:
                return -1 if self._wait(select.POLLIN, 0.0) & select.POLLHUP else 0
            peeked = bytearray()
            while len(peeked) < n:
                peeked += os.read(self._peek_r, n - len(peeked))
            k, in_msg, owe, wider = self._claim_size(peeked)
            if (k == 0 or wider) and n == win and win < self._window:
                win = min(self._window, win * 4)
                continue
            if k == 0 and self._stop_at_eof and self._wait(select.POLLIN, 0.0) & select.POLLHUP:
                k, in_msg = n, False  # every writer left: the unfinished tail is ours
            break
        if k == 0:
            return -2
        got = 0
        while got < k:
            got += os.splice(self._fd, self._null_fd, k - got)
        self._compact()
        self._buf += peeked[:k]
        self._in_msg = in_msg
        self._owe = owe
        return 1

    def _claim_owed(self) -> int:
        """Under the lock, part-way through a frame: read (some of) its rest (see _claims.pxi)."""
        try:
            data = os.read(self._fd, min(self._owe, self._window))
        except (BlockingIOError, InterruptedError):
            return 0
        if not data:
            return -1 if self._wait(select.POLLIN, 0.0) & select.POLLHUP else 0
        self._compact()
        self._buf += data
        self._owe -= len(data)
        return 1

    def _claim_size(self, p: bytearray) -> tuple[int, bool, int, bool]:
        """(bytes to take, in_msg, owe, wider): see _claims.pxi."""
        n, i, count, in_msg = len(p), 0, 0, self._in_msg
        if self._framing == LINES:
            while i < n and (count < self._claim_max or in_msg):
                nl = p.find(b"\n", i)
                if nl < 0:
                    if i == 0 and (in_msg or n > self._maxmsg or n > ATOMIC_MAX):
                        return n, True, 0, False
                    break
                i = nl + 1
                count += 1
                in_msg = False
            return i, in_msg, 0, False
        while n - i >= HEADER:
            if not _header_usable(p, i):
                if i:
                    break
                j = 1
                while j < n and not (p[j] == MAGIC and (n - j < HEADER or _header_valid(p, j))):
                    j += 1
                return j, in_msg, 0, j == n
            length = int.from_bytes(p[i + 4 : i + 8], "little")
            kind = p[i + 1] & 3
            if i + HEADER + length > n:
                if i == 0 and (
                    HEADER + length > ATOMIC_MAX or (kind == KIND_WHOLE and length > self._maxmsg)
                ):
                    if kind == KIND_FIRST:
                        in_msg = True
                    elif kind == KIND_LAST:
                        in_msg = False
                    return n, in_msg, HEADER + length - n, False
                break
            if kind == KIND_WHOLE and length > self._maxmsg:
                if i:
                    break
                return HEADER + length, in_msg, 0, False
            i += HEADER + length
            if kind == KIND_FIRST:
                in_msg = True
            elif kind == KIND_LAST:
                in_msg = False
            if kind in (KIND_WHOLE, KIND_LAST):
                count += 1
            if count >= self._claim_max and not in_msg:
                break
        return i, in_msg, 0, False

    def _claim_exact(self) -> int:
        """No tee(): read exactly up to the end of one message (see _claims.pxi)."""
        self._compact()
        at, got, frag, junk = 0, 0, -1, False
        while True:
            want, owed, at, junk, frag = self._exact_want(at, junk, frag)
            if want == 0:
                if got:
                    break
                want, owed = (HEADER if self._framing == FRAMES else 1), False
            elif got >= self._window or (
                self._framing == LINES and len(self._buf) - self._start > self._maxmsg
            ):
                break
            try:
                data = os.read(self._fd, min(want, self._window))
            except InterruptedError:
                continue
            except BlockingIOError:
                break
            if not data:
                if got:
                    break
                self._owe = want if owed else 0
                return -1 if self._wait(select.POLLIN, 0.0) & select.POLLHUP else 0
            self._buf += data
            got += len(data)
        self._owe = want if owed else 0
        if frag in (KIND_FIRST, KIND_MIDDLE):
            self._in_msg = True
        elif frag == KIND_LAST:
            self._in_msg = False
        return 1 if got else 0

    def _exact_want(self, at: int, junk: bool, frag: int) -> tuple[int, bool, int, bool, int]:
        """(bytes the last unit lacks, owed, at, junk, frag): see _claims.pxi."""
        buf, end = self._buf, len(self._buf)
        i = self._start + at
        if at == 0 and self._discard:
            if self._discard > end - i:
                return self._discard - (end - i), True, at, junk, frag
            i += self._discard
        if at == 0 and self._skip_line:
            nl = buf.find(b"\n", i)
            if nl < 0:
                return 1, True, end - self._start, junk, frag
            i = nl + 1
        while True:
            if junk:
                i = self._scan(i)
                if i == end:
                    return HEADER, False, i - self._start, True, frag
                junk = False
            at = i - self._start
            avail = end - i
            if avail == 0:
                return 0, True, at, junk, frag
            if self._framing == LINES:
                nl = buf.find(b"\n", i)
                if nl < 0:
                    return 1, True, at, junk, frag
                i = nl + 1
                continue
            if avail < HEADER:
                return HEADER - avail, True, at, junk, frag
            if not _header_usable(buf, i):
                junk = True
                i += 1
                continue
            length = int.from_bytes(buf[i + 4 : i + 8], "little")
            if avail < HEADER + length:
                return HEADER + length - avail, True, at, junk, frag
            if buf[i + 1] & 3:
                frag = buf[i + 1] & 3
            i += HEADER + length

    def _end_of_stream(self) -> bytes:
        n = len(self._buf) - self._start
        if self._asm is not None or self._asm_skip:
            self._drop_partial("every writer left before it ended")
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
        self._report_drops()
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    # ------------------------------------------------------------ public calls

    def get(self, timeout: float | None = None) -> bytes:
        """Return the next message as bytes.  See the Cython core."""
        deadline = _to_deadline(timeout)
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            self._claim_max = 1
            while True:
                status, msg = self._take()
                if status == GOT:
                    return msg  # type: ignore[return-value]
                if status < 0:
                    self._raise_bad(status)
                self._report_drops()
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
            self._claim_max = max_messages
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
                    if status < 0 or not read_more or self._shared:
                        return out
                    read_more = False
                    if self._drained or self._fill(0.0) <= 0:
                        return out
                    continue
                if status < 0:
                    self._raise_bad(status)
                self._report_drops()
                r = self._fill(deadline)
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return [self._end_of_stream()]
        finally:
            self._leave()

    def get_batch(self, max_messages: int = 1000, timeout: float | None = None) -> MessageBatch:
        """As ``get_many``, as a ``MessageBatch`` (here each message is its own bytes)."""
        return MessageBatch(self.get_many(max_messages, timeout))

    def __iter__(self) -> ReaderCore:
        return self

    def __next__(self) -> bytes:
        try:
            return self.get()
        except (EOFError, ClosedError):
            raise StopIteration from None
