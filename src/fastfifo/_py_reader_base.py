"""The pure core's reader base: the receive buffer the shared parser reads, and waiting.

Twin of ``_reader_base.pxi``.  ``self._p`` is ``_parse.Parser`` (the shared source, run
uncompiled); ``self._buf`` is the bytearray it reads, whose unparsed bytes are
``_buf[_p.start:_p.end]`` with ``_p.end == len(_buf)``.
"""

from __future__ import annotations

import fcntl
import os
import select
import time
from typing import Any

from ._errors import MessageTooLargeError
from ._py_clock import _ofd_held, parse
from ._py_endpoint import _Endpoint

FRAMES = parse.FRAMES
ABANDONED = -3  # _wait_data(): the writer of a half-received message died


class _ReaderBase(_Endpoint):
    """A Reader's state and receive buffer (twin of ``_reader_base.pxi``)."""

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
        self._p = parse.Parser(path, framing, max_message_size)
        self._stop_at_eof = stop_at_eof
        self._bufsize = max(buffer_size, 4096)
        self._buf = bytearray()
        self._p.buf = self._buf
        self._rbuf = bytearray(self._bufsize)  # read target, reused: no 1 MiB bytes per read
        self._drained = False
        self._shared = self._locked = False
        self._use_tee = False
        self._rlock_fd = self._peek_r = self._peek_w = self._null_fd = -1
        self._attach(fd, path)  # before the lock fds: see the Cython core's _configure
        self._wlock_fd = fd if wlock_fd < 0 else wlock_fd
        self._wlock_ofd = wlock_ofd
        self._window = 0
        # A claim's steps a signal handler's exception can cut short (see _claim_tee):
        self._peek_dirty = False  # the private pipe may hold a peek's bytes
        self._pending: tuple[bytearray, int, bool, int] | None = None  # a consume

    def _eof_by_select(self) -> None:
        """Wait in select(), which sees the last writer leave (stop_at_eof, not shared)."""
        self._eof_select = self._stop_at_eof and not self._shared

    def _share(
        self, rlock_fd: int, peek_r: int, peek_w: int, null_fd: int, window: int, use_tee: bool
    ) -> None:
        """Switch to shared mode; the fds are closed by close() from here on."""
        self._eof_select = False
        self._shared, self._rlock_fd, self._use_tee = True, rlock_fd, use_tee
        self._peek_r, self._peek_w, self._null_fd, self._window = peek_r, peek_w, null_fd, window

    def _after_fork_in_child(self) -> None:
        """After fork(): the open file descriptions (and any lock) are the parent's."""
        self._locked = False
        self._closing = True
        self._closed_reason = "it was opened before fork(); open a new Reader in this process"
        self._close_fds()

    def close(self) -> None:
        """Close the Reader (idempotent); what it read and did not return is reported."""
        if not self._closing and hasattr(self, "_p"):
            self._p.report_unread()
        super().close()

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
        return int(self._p.end - self._p.start)

    @property
    def buffer_capacity(self) -> int:
        """Bytes the receive buffers hold now (bounded by max_message_size plus one read)."""
        asm = self._p.asm
        return len(self._buf) + len(self._rbuf) + (len(asm) if asm is not None else 0)

    @property
    def skipped_bytes(self) -> int:
        """Bytes skipped because they were not valid frames (see CorruptStreamError)."""
        return int(self._p.skipped_bytes)

    @property
    def dropped_messages(self) -> int:
        """Messages dropped: too large, not allocatable, or large ones cut short."""
        return int(self._p.dropped_messages)

    # ------------------------------------------------------------ messages

    def _cut(self) -> bytes:
        """The message ``_p.take()`` just cut, as bytes."""
        p = self._p
        msg = p.cut_obj
        if msg is not None:
            p.cut_obj = None
            return msg  # type: ignore[no-any-return]
        return bytes(self._buf[p.cut_off : p.cut_off + p.cut_len])

    # ------------------------------------------------------------ the buffer

    def _compact(self) -> None:
        p = self._p
        if p.start:
            del self._buf[: p.start]
            p.end -= p.start
            p.start = 0

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes just taken from the FIFO to the buffer; never loses them.

        If the buffer cannot grow for the message at its head (one larger than a read,
        within max_message_size: see ``_refill`` in the Cython core), that message is
        dropped (MessageTooLargeError, as the Cython core) and ``data`` goes through the
        same skipping, so the stream stays in step.
        """
        p = self._p
        try:
            self._buf += data
            p.end = len(self._buf)
            return
        except MemoryError as e:
            if not p.too_big_for_memory(self._bufsize):
                raise
            cause = e
        try:
            p.raise_bad(parse.NO_MEMORY, cause)
        except MessageTooLargeError as refused:
            k = min(p.discard, p.end - p.start)
            p.start += k
            p.discard -= k
            k = min(p.discard, len(data))
            p.discard -= k
            rest = memoryview(data)[k:]
            if p.skip_line:
                nl = bytes(rest).find(b"\n")
                rest = rest[nl + 1 :] if nl >= 0 else rest[:0]
                p.skip_line = nl < 0
            self._compact()
            self._buf += rest
            p.end = len(self._buf)
            raise refused from cause

    # ------------------------------------------------------------ waiting

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
        """As in the Cython core: revents, 0 on timeout, ABANDONED when a partial was dropped."""
        p = self._p
        if not p.large_under_way():
            return self._wait(select.POLLIN, deadline)
        while True:
            if p.framing == FRAMES and self._writer_gone() and self._pipe_empty():
                p.drop_partial("its writer died or gave up part-way")
                p.in_msg = False
                return ABANDONED
            step = time.monotonic() + 0.1
            rev = self._wait(
                select.POLLIN, step if deadline is None or step < deadline else deadline
            )
            if rev:
                return rev
            if deadline is not None and time.monotonic() >= deadline:
                return 0
