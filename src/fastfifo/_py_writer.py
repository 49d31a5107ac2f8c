"""The pure core's WriterCore (twin of ``_writer.pxi``)."""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Iterable
from typing import Any

from ._errors import (
    Full,
    MessageTooLargeError,
    not_bytes_error,
)
from ._py_endpoint import _Endpoint
from ._py_wire import (
    FRAMES,
    HEADER,
    KIND_FIRST,
    KIND_LAST,
    KIND_MIDDLE,
    KIND_WHOLE,
    LINES,
    _guarded_write,
    _to_deadline,
    encode_header,
    sigpipe_may_kill,
)


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
                if sigpipe_may_kill(self._guard):
                    n = _guarded_write(self._fd, chunk)
                else:
                    n = os.write(self._fd, chunk)
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
                        "(readers drop the part they got and log it)",
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

    def _view(self, data: Any, index: int = -1) -> memoryview:
        try:
            v = memoryview(data)
        except TypeError:
            raise not_bytes_error(self.path, data, index) from None
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
            self._leave()
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
        views = [self._view(item, i) for i, item in enumerate(seq)]
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
