"""The pure core's reader base: buffer, parser, fragments, waiting for data.

Twin of ``_reader_base.pxi``.
"""

from __future__ import annotations

import fcntl
import os
import select
import time
from typing import Any

from ._errors import (
    CorruptStreamError,
    MessageTooLargeError,
    report_loss,
)
from ._py_endpoint import _Endpoint
from ._py_wire import (
    _MAGIC_BYTE,
    BAD_HEADER,
    FRAMES,
    GOT,
    HEADER,
    KIND_FIRST,
    KIND_LAST,
    KIND_MIDDLE,
    KIND_WHOLE,
    LINES,
    NEED,
    NO_MEMORY,
    TOO_LARGE,
    _header_valid,
    _ofd_held,
    _prefix_impossible,
)


class _ReaderBase(_Endpoint):
    """A Reader's state, receive buffer and message parser (twin of ``_reader_base.pxi``)."""

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
        self._asm_total = self._asm_have = 0
        self._asm_skip = False
        self._orphan = False
        self._need = 1  # bytes the message at the head needs in all (see the Cython core)
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
        if not self._closing and hasattr(self, "_buf"):
            n = len(self._buf) - self._start - self._discard
            if self._asm is not None:
                self._drop_partial("the Reader closed before it ended")
            if n > 0 and not self._skip_line:
                report_loss(
                    f"{self.path!r}: the Reader closed with {n} bytes read from the FIFO and "
                    "not yet returned as messages; they are lost (take every message before "
                    "closing, or use shared=True: a shared Reader holds only what its calls "
                    "return)"
                )
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
        return len(self._buf) - self._start

    @property
    def buffer_capacity(self) -> int:
        """Bytes the receive buffers hold now (bounded by max_message_size plus one read)."""
        return len(self._buf) + len(self._rbuf) + (len(self._asm) if self._asm else 0)

    # ------------------------------------------------------------ parsing

    def _take(self) -> tuple[int, bytes | None]:
        buf = self._buf
        self._need = 1
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
                if avail < HEADER and not _prefix_impossible(buf, s, avail):
                    self._need = HEADER
                    return NEED, None
                if avail < HEADER or not _header_valid(buf, s):
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
                        self._need = HEADER + length
                        return NEED, None
                    self._start = s + HEADER + length
                    return GOT, bytes(buf[s + HEADER : self._start])
                if length > 65536 or (kind == KIND_FIRST and length < 8):
                    return BAD_HEADER, None
                if avail < HEADER + length:
                    self._need = HEADER + length
                    return NEED, None
                data = buf[s + HEADER : s + HEADER + length]
                if kind == KIND_FIRST and int.from_bytes(data[:8], "little") > self._maxmsg:
                    return TOO_LARGE, None
                try:
                    msg = self._fragment(kind, data)
                except MemoryError:  # no room for the whole message: drop it, go on
                    return NO_MEMORY, None
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
                self._need = avail + 1
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
            # The whole message at once (as the Cython core): a MemoryError comes here,
            # at its first fragment, not half-way through it.
            self._asm = bytearray(total)
            self._asm[: len(data) - 8] = data[8:]
            self._asm_have = len(data) - 8
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
        have = self._asm_have
        if have + len(data) > self._asm_total:
            self._drop_partial("its fragments add up to more than it announced")
            self._asm_skip = kind != KIND_LAST
            return None
        self._asm[have : have + len(data)] = data
        self._asm_have = have + len(data)
        if kind == KIND_MIDDLE:
            return None
        if self._asm_have != self._asm_total:
            self._drop_partial("its fragments add up to less than it announced")
            return None
        msg, self._asm = bytes(self._asm), None
        return msg

    def _drop_partial(self, reason: str) -> None:
        """Drop the large message being reassembled; count and report it (at once, once)."""
        self.dropped_messages += 1
        if self._asm is not None:
            what = f"a large message ({self._asm_have} of {self._asm_total} bytes received)"
        else:
            what = "an incomplete large message"
        self._asm = None
        self._asm_skip = False
        report_loss(
            f"{self.path!r}: dropped {what}: {reason} "
            f"({self.dropped_messages} dropped by this reader so far)"
        )

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

    def _raise_bad(self, status: int, cause: BaseException | None = None) -> None:
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
        size = f"{'at least ' if self._framing == LINES else ''}{n} bytes"
        if status == NO_MEMORY:
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {size} could not be allocated in this process "
                f"(MemoryError); it was discarded and the messages after it are still "
                f"delivered (free memory, or set a lower max_message_size to refuse such "
                f"messages up front)"
            ) from cause
        raise MessageTooLargeError(
            f"{self.path!r}: a message of {size} exceeds max_message_size={self._maxmsg}; "
            f"it was discarded and the messages after it are still delivered (raise "
            f"max_message_size to receive it)"
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

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes just taken from the FIFO to the buffer; never loses them.

        If the buffer cannot grow for the message at its head (one larger than a read,
        within max_message_size: see ``_refill`` in the Cython core), that message is
        dropped (MessageTooLargeError, as the Cython core) and ``data`` goes through the
        same skipping, so the stream stays in step.
        """
        try:
            self._buf += data
            return
        except MemoryError as e:
            if not (self._need > self._bufsize and len(self._buf) > self._start):
                raise
            cause = e
        try:
            self._raise_bad(NO_MEMORY, cause)
        except MessageTooLargeError as refused:
            k = min(self._discard, len(self._buf) - self._start)
            self._start += k
            self._discard -= k
            k = min(self._discard, len(data))
            self._discard -= k
            rest = memoryview(data)[k:]
            if self._skip_line:
                nl = bytes(rest).find(b"\n")
                rest = rest[nl + 1 :] if nl >= 0 else rest[:0]
                self._skip_line = nl < 0
            self._compact()
            self._buf += rest
            raise refused from cause

    def _compact(self) -> None:
        if self._start:
            del self._buf[: self._start]
            self._start = 0
