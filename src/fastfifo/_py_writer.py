"""The pure core's WriterCore (twin of ``_writer.pxi``); checks, headers and texts are
shared (``_parse.py``, ``_errors.py``)."""

from __future__ import annotations

import fcntl
import os
import select
import signal
from collections.abc import Iterable
from typing import Any

from . import _errors as texts
from ._errors import Full, not_bytes_error
from ._open import PAGE, bytes_waiting, pipe_capacity
from ._py_clock import (
    _guarded_write,
    _ofd_held,
    _ofd_lock,
    _to_deadline,
    parse,
    sigpipe_may_kill,
)
from ._py_endpoint import _Endpoint

HEADER, FRAMES, LINES = parse.HEADER, parse.FRAMES, parse.LINES
KIND_WHOLE, KIND_FIRST, KIND_MIDDLE, KIND_LAST = (
    parse.KIND_WHOLE,
    parse.KIND_FIRST,
    parse.KIND_MIDDLE,
    parse.KIND_LAST,
)
encode_header = parse.encode_header


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
        present: bool = False,
        capacity: int = 0,  # (the compiled core sizes its iovec array by it)
    ) -> None:
        self._buffered = buffered
        self._present = present
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
        return int(self._atomic - self._overhead)

    def _frame_size(self, data: memoryview, index: int) -> int:
        """Bytes of the encoded message when it fits one atomic write, else 0 (fragments)."""
        newline = self._framing == LINES and bytes(data).find(b"\n") >= 0
        total: int = parse.frame_total(
            self._framing, self._atomic, self._maxmsg, data.nbytes, newline, self.path, index
        )
        return total

    def _encode(self, data: memoryview) -> bytes:
        if self._framing == FRAMES:
            return encode_header(KIND_WHOLE, data.nbytes) + data  # type: ignore[no-any-return]
        return bytes(data) + b"\n"

    def _write_now(self, data: bytes | memoryview | list[bytes]) -> int:
        """One write (a list: one writev()), guarded against SIGPIPE when it may kill now
        (``sigpipe_may_kill``).  Every write of a message's bytes goes through it."""
        if sigpipe_may_kill(self._guard):
            return _guarded_write(self._fd, data)
        return os.writev(self._fd, data) if isinstance(data, list) else os.write(self._fd, data)

    def _write(self, chunk: bytes, deadline: float | None) -> bool:
        while True:
            try:
                n = self._write_now(chunk)
            except BlockingIOError:
                if self._wait(select.POLLOUT, deadline) == 0:
                    return False
                continue
            except BrokenPipeError:
                raise texts.broken_pipe(self.path) from None
            if n != len(chunk):
                raise texts.short_write(self.path, n, len(chunk))
            return True

    def _write_large(self, data: memoryview, deadline: float | None, timeout: Any) -> None:
        """Send one message as FIRST, MIDDLE..., LAST fragments under the writers' lock
        (in bursts when this is the only Writer: see the Cython core)."""
        n = data.nbytes
        # Each lock is taken inside the try that lets it go (an unlock of a lock not held
        # does nothing): a signal handler's exception (Ctrl-C) can land as soon as the
        # taking call returns, and a lock left held would keep other Writers from large
        # messages, or from opening at all (the burst byte), until this one's next.
        try:
            if not self._lock_wait(self._lock_fd, self._lock_ofd, deadline):
                raise texts.large_lock_held(self.path, timeout)
            off = 0
            while True:
                if self._present:
                    try:  # (the burst byte, then the look for others: see the Cython core)
                        if self._burst_byte(True) and not _ofd_held(self._fd, 2, 0):
                            off = self._burst(data, off)  # the only Writer open
                    finally:
                        self._burst_byte(False)
                    if off == n:
                        return
                if not self._write(self._fragment(data, off), deadline):
                    raise texts.large_cut(self.path, timeout, off, n)
                off += self._chunk(n, off)
                if off == n:
                    return
        finally:
            self._unlock(self._lock_fd, self._lock_ofd)

    def _burst_byte(self, take: bool) -> bool:
        """Take (whether it was free) or release the lock a burst holds (``BURST_BYTE``)."""
        try:
            _ofd_lock(self._fd, fcntl.F_WRLCK if take else fcntl.F_UNLCK, 1)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def _chunk(self, n: int, off: int) -> int:
        return int(min(n - off, self._atomic - (2 * HEADER if off == 0 else HEADER)))

    def _fragment(self, data: memoryview, off: int) -> bytes:
        """The fragment of ``data`` that begins at ``off``, header and all."""
        n = data.nbytes
        chunk = self._chunk(n, off)
        if off == 0:
            head = encode_header(KIND_FIRST, chunk + 8) + n.to_bytes(8, "little")
        else:
            head = encode_header(KIND_LAST if off + chunk == n else KIND_MIDDLE, chunk)
        return head + data[off : off + chunk]  # type: ignore[no-any-return]

    def _burst(self, data: memoryview, off: int) -> int:
        """As many whole fragments as the pipe surely has room for, in one writev()."""
        n = data.nbytes
        cap = pipe_capacity(self._fd)  # asked each time: another process may resize it
        k = min(parse.free_slots(cap, bytes_waiting(self._fd), PAGE) - 2, 256)  # 2 spared
        if k < 2:
            return off
        parts: list[bytes] = []
        at = off
        while len(parts) < k and at < n:
            parts.append(self._fragment(data, at))
            at += self._chunk(n, at)
        try:
            r = self._write_now(parts)
        except (BlockingIOError, InterruptedError):
            return off
        except BrokenPipeError:
            raise texts.broken_pipe(self.path) from None
        if r == sum(len(x) for x in parts):
            return at
        return self._finish_cut(data, off, parts, r)

    def _finish_cut(self, data: memoryview, off: int, parts: list[bytes], done: int) -> int:
        """After a short writev(): finish the fragment it cut and return the new offset
        (see _finish_iov in the Cython core: only a race does this; a fragment is never
        left cut, so this waits past the deadline and runs signal handlers once it is
        whole; the fragments not started go back to the caller)."""
        n = data.nbytes
        at = off
        for part in parts:
            if done >= len(part):
                done -= len(part)
                at += self._chunk(n, at)
                continue
            if done == 0:
                return at
            rest = part[done:]
            # Signals wait until the fragment is whole (a handler that raised here would
            # leave it cut); SIGPIPE is handled by the write itself.
            held = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE}
            old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
            try:
                while rest:
                    try:
                        rest = rest[self._write_now(rest) :]
                    except BlockingIOError:
                        select.select([], [self._fd], [], 0.1)
                    except BrokenPipeError:
                        raise texts.broken_pipe(self.path) from None
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return at + self._chunk(n, at)
        return at

    def _view(self, data: Any, index: int = -1) -> memoryview:
        try:
            v = memoryview(data)
        except TypeError:
            raise not_bytes_error(self.path, data, index) from None
        return v.cast("B") if v.ndim != 1 or v.format != "B" else v

    def put(self, data: Any, timeout: float | None = None) -> None:
        """(The docstring is _docs.py's, set at import.)"""
        deadline = _to_deadline(timeout)
        view = self._view(data)
        total = self._frame_size(view, -1)
        if not self._enter(deadline):
            raise texts.busy(self.path, "Writer", timeout)
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            if total == 0:
                if self._pend and not self._flush(deadline):
                    raise texts.pending_full(self.path, timeout, len(self._pend))
                self._write_large(view, deadline, timeout)
            elif self._buffered:
                if self._pend_bytes + total > self._atomic and not self._flush(deadline):
                    raise texts.pending_full(self.path, timeout, len(self._pend))
                self._pend.append(self._encode(view))
                self._pend_bytes += total
            elif not self._write(self._encode(view), deadline):
                raise texts.pipe_full(self.path, timeout)
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    def _flush(self, deadline: float | None) -> bool:
        if self._pend and not self._write(b"".join(self._pend), deadline):
            return False
        self._pend, self._pend_bytes = [], 0
        return True

    def flush(self, timeout: float | None = None) -> None:
        """Write the messages ``put()`` buffered (``buffered=True``); a no-op otherwise."""
        deadline = _to_deadline(timeout)
        if not self._enter(deadline):
            raise texts.busy(self.path, "Writer", timeout)
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            if not self._flush(deadline):
                raise texts.pending_full(self.path, timeout, len(self._pend), True)
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    @property
    def pending(self) -> int:
        """Messages buffered by ``put()`` and not yet written (``buffered=True``)."""
        return len(self._pend)

    def _flush_if_idle(self) -> bool:
        """close(): flush, waiting as needed, unless another thread is inside a call."""
        if self._closing or not self._take_idle():
            return False
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            self._flush(None)
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
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
            raise texts.busy(self.path, "Writer", timeout, 0)
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            if self._pend and not self._flush(deadline):
                raise texts.pending_full(self.path, timeout, len(self._pend))
            chunk: list[bytes] = []
            used = pending = sent = 0
            for v, size in zip(views, sizes):
                if size == 0 or used + size > self._atomic:
                    if chunk and not self._write(b"".join(chunk), deadline):
                        raise texts.batch_full(self.path, timeout, sent)
                    sent += pending
                    chunk, used, pending = [], 0, 0
                if size == 0:
                    try:
                        self._write_large(v, deadline, timeout)
                    except Full as e:
                        raise texts.in_batch(e, self.path, timeout, sent) from None
                    sent += 1
                    continue
                chunk.append(self._encode(v))
                used += size
                pending += 1
            if chunk and not self._write(b"".join(chunk), deadline):
                raise texts.batch_full(self.path, timeout, sent)
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()


class BorrowingWriterCore(WriterCore):
    """A WriterCore over descriptors that its owner keeps, and closes (see the Cython core)."""

    def _attach(self, fd: int, path: Any) -> None:
        self._fd, self.path = fd, path

    def _wake_on(self, fd: int) -> None:
        """Also end waits when ``fd`` is readable (or in error): the owner's wake-up."""
        self._wake_r = fd

    def _lock_on(self, fd: int, ofd: bool = True) -> None:
        """The descriptor to take the writers' lock on (OFD lock, else flock) from now on."""
        self._lock_fd, self._lock_ofd = fd, ofd

    def _close_fds(self) -> None:
        self._fd = self._wake_r = self._wake_w = self._lock_fd = -1
