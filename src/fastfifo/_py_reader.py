"""The pure core's MessageBatch and ReaderCore with its public calls (twin of ``_batch.pxi``
and ``_reader.pxi``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import time
from collections.abc import Iterator
from typing import Any

from . import _errors as texts
from ._errors import ClosedError, CorruptStreamError, MessageTooLargeError, report_loss
from ._py_claims import AT_EOF, FILLED, TIMED_OUT, _ClaimingReader
from ._py_clock import _tee, _to_deadline, parse
from ._py_reader_base import ABANDONED

GOT, NEED = parse.GOT, parse.NEED


class MessageBatch:
    """Messages from ``Reader.get_batch()``: read-only views by index or iteration."""

    def __init__(self) -> None:
        self._messages: list[bytes] = []

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, i: int) -> memoryview:
        return memoryview(self._messages[i])

    def __iter__(self) -> Iterator[memoryview]:
        return (memoryview(m) for m in self._messages)

    def tolist(self) -> list[bytes]:
        """The messages as a list of bytes (copies)."""
        return list(self._messages)

    def __repr__(self) -> str:
        return f"<fastfifo.MessageBatch of {len(self._messages)} messages>"


class ReaderCore(_ClaimingReader):
    """Reads into one buffer and cuts whole messages out of it; see the Cython core."""

    def _fill(self, deadline: float | None) -> int:
        """Read more bytes: FILLED, TIMED_OUT or AT_EOF (see the Cython core)."""
        if self._shared:
            return self._fill_shared(deadline)
        self._compact()
        if self._eof_select:
            return self._fill_select(deadline)
        if self._drained:
            rev = self._wait_data(deadline)
            if rev == 0:
                return TIMED_OUT
            if rev == ABANDONED:
                return FILLED
        while True:
            try:
                n = os.readv(self._fd, [self._rbuf])
            except BlockingIOError:
                rev = self._wait_data(deadline)
                if rev == 0:
                    return TIMED_OUT
                if rev == ABANDONED:
                    return FILLED
                continue
            if n:
                self._drained = n < len(self._rbuf)
                self._append(memoryview(self._rbuf)[:n])
                return FILLED
            # See _fill in _reader.pxi: read() gives 0 before the first writer and after the
            # last, but only after the last is POLLHUP set.
            rev = self._wait(select.POLLIN, 0.0)
            if rev & select.POLLIN:
                continue
            if rev & select.POLLHUP:
                return AT_EOF
            if self._wait_data(deadline) == 0:
                return TIMED_OUT

    def _fill_select(self, deadline: float | None) -> int:
        """_fill where poll() cannot see the last writer leave: see the Cython core."""
        while True:
            rev = self._wait_data(deadline)
            if rev == 0:
                return TIMED_OUT
            if rev == ABANDONED:
                return FILLED
            try:
                n = os.readv(self._fd, [self._rbuf])
            except BlockingIOError:
                continue
            if not n:
                return AT_EOF
            self._append(memoryview(self._rbuf)[:n])
            return FILLED

    def _refill(self, status: int, deadline: float | None, timeout: object) -> bool:
        """No whole message in the buffer: raise what ``status`` reports, else read more.

        True when bytes arrived, False at the end of the stream; Empty at the deadline.
        (A message too large for memory is dropped by ``_append``.)
        """
        if status < 0:
            self._p.raise_bad(status)
        r = self._fill(deadline)
        if r == TIMED_OUT:
            raise texts.no_message(self.path, timeout)
        return r == FILLED

    # ------------------------------------------------------------ public calls

    def get(self, timeout: float | None = None) -> bytes:
        """(The docstring is _docs.py's, set at import.)"""
        deadline = _to_deadline(timeout)
        p = self._p
        if not self._enter(deadline):
            raise texts.busy(self.path, "Reader", timeout)
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            p.claim_max = 1
            while True:
                status = p.take()
                if status == GOT:
                    return self._cut()
                if not self._refill(status, deadline, timeout):
                    return p.end_of_stream()  # type: ignore[no-any-return]
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    def get_many(self, max_messages: int = 1000, timeout: float | None = None) -> list[bytes]:
        """(The docstring is _docs.py's, set at import.)"""
        deadline = _to_deadline(timeout)
        max_messages = parse.check_count(self.path, max_messages)
        p = self._p
        if not self._enter(deadline):
            raise texts.busy(self.path, "Reader", timeout)
        out: list[bytes] = []
        read_more = True
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            p.claim_max = max_messages
            while True:
                status = NEED
                while len(out) < max_messages:
                    status = p.take()
                    if status != GOT:
                        break
                    out.append(self._cut())
                if len(out) >= max_messages:
                    return out
                if out:
                    if status < 0 or not read_more or self._shared or self._drained:
                        return out
                    read_more = False
                    if self._fill(0.0) != FILLED:
                        return out
                    continue
                if not self._refill(status, deadline, timeout):
                    return [p.end_of_stream()]
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    def get_batch(self, max_messages: int = 1000, timeout: float | None = None) -> MessageBatch:
        """As ``get_many``, as a ``MessageBatch`` (here each message is its own bytes)."""
        batch = MessageBatch()
        batch._messages = self.get_many(max_messages, timeout)
        return batch

    def __iter__(self) -> ReaderCore:
        return self

    def __next__(self) -> bytes:
        """The next message; bad input is skipped and logged: see the Cython core."""
        while True:
            try:
                return self.get()
            except (EOFError, ClosedError):
                raise StopIteration from None
            except (CorruptStreamError, MessageTooLargeError) as e:
                report_loss(str(e))

    # ------------------------------------------------------------ peek, then commit
    # Twin of the end of _reader.pxi (for fastfifo.relay; see there and docs/relay.md).

    _peek_open = False
    _peek_bytes = 0

    @property
    def _peek_held(self) -> int:
        """Bytes the held peek leaves in the pipe until ``_commit()`` (0: none held)."""
        return self._peek_bytes if self._peek_open else 0

    def _peek_many(self, max_messages: int = 1000, timeout: float | None = None) -> list[bytes]:
        """Whole messages left in the pipe under the readers' lock: see the Cython core."""
        n = min(parse.check_count(self.path, max_messages), 1 << 20)
        deadline = _to_deadline(timeout)
        p = self._p
        if not (self._shared and self._use_tee):
            raise ValueError(
                f"{self.path!r}: peeking needs a Reader opened with shared=True "
                "on a system with tee() (Linux)"
            )
        if not self._enter(deadline):
            raise texts.busy(self.path, "Reader", timeout)
        out: list[bytes] = []
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            if self._peek_open:
                raise RuntimeError(
                    f"{self.path!r}: a peek is held; _commit() or _abandon() it before "
                    "peeking again"
                )
            p.claim_max = n
            while True:
                status = NEED
                while len(out) < n:
                    status = p.take()
                    if status != GOT:
                        break
                    out.append(self._cut())
                if out:
                    return out
                if status < 0:
                    p.raise_bad(status)
                if (
                    self._locked
                    or self._holding()
                    or p.end > p.start
                    or p.asm is not None
                    or p.asm_skip
                    or p.discard
                    or p.skip_line
                ):
                    r = self._fill(deadline)
                else:
                    r = self._peek_claim(n, deadline)
                    if r == 1:
                        self._peek_open = True
                        try:
                            while True:
                                status = p.take()
                                if status != GOT:
                                    break
                                out.append(self._cut())
                            if status != NEED or p.end != p.start or not out:
                                raise RuntimeError(
                                    f"{self.path!r}: a peek did not parse into whole "
                                    "messages (a fastfifo bug)"
                                )
                        except BaseException:
                            self._abandon_held()
                            raise
                        return out
                if r == 0:
                    raise texts.no_message(self.path, timeout)
                if r < 0:
                    return [p.end_of_stream()]
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    def _commit(self) -> None:
        """Consume exactly the bytes the held peek covers, and release the readers' lock."""
        self._enter(None)
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            if not self._peek_open:
                return
            got = 0
            try:
                while got < self._peek_bytes:
                    try:
                        r = os.splice(self._fd, self._null_fd, self._peek_bytes - got)
                    except InterruptedError:
                        continue
                    except BlockingIOError:
                        r = 0
                    if r <= 0:
                        raise OSError(
                            errno.EAGAIN,
                            f"the pipe lost {self._peek_bytes - got} bytes a peek held (a "
                            "reader without shared=True, or cat, reads this FIFO too?)",
                            self.path,
                        )
                    got += r
            finally:
                self._peek_open = False
                self._peek_bytes = 0
                self._release()
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    def _abandon(self) -> None:
        """Release the readers' lock without consuming: the peeked messages stay first."""
        self._enter(None)
        try:
            self._inside = True  # (first: see _Endpoint._enter)
            self._abandon_held()
        finally:
            self._inside = False  # (first: see _Endpoint._enter)
            self._leave()

    def _abandon_held(self) -> None:
        if self._peek_open:
            self._peek_open = False
            self._peek_bytes = 0
            self._release()

    def _peek_claim(self, n: int, deadline: float | None) -> int:
        """1 peeked (lock kept), 2 an ordinary claim took bytes, 0 deadline, -1 end."""
        p = self._p
        first = True
        while True:
            got_lock = False
            if first:
                try:
                    fcntl.flock(self._rlock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got_lock = True
                except BlockingIOError:
                    pass
            if not got_lock:
                if self._wait(select.POLLIN, deadline) == 0:
                    return 0
                if not self._lock_wait(self._rlock_fd, False, deadline):
                    return 0
            first = False
            self._locked = True
            p.resync = False
            try:
                r = self._peek_tee(n)
                if r == 1:
                    self._peek_bytes = p.end - p.start
                    return 1
                if r == 2:
                    r = self._claim_tee()
                    if r == 1:
                        if not self._holding():
                            self._release()
                        return 2
            except BaseException:
                if not self._holding():
                    self._release()
                raise
            self._release()
            if r == -1:
                return -1
            if r == -2:
                if self._wait_wake(0.002, deadline) == 0:
                    return 0
            elif deadline is not None and time.monotonic() >= deadline:
                return 0

    def _peek_tee(self, want: int) -> int:
        """1 peeked, 2 ordinary claim needed, 0 empty, -1 end, -2 not whole yet."""
        p = self._p
        win = self._window if want >= self._window // 4096 else want * 4096
        gone = False
        self._compact()
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
            cut = p.peek_size(peeked, 0, n, want, self._window)
            if (cut == 0 or p.pk_wider) and n == win and win < self._window:
                win = min(self._window, win * 4)
                continue
            if p.pk_how == parse.PEEK_ORDINARY:
                return 2
            if cut:
                self._append(peeked[:cut])
                return 1
            if p.pk_how == parse.PEEK_OPEN:
                if n == self._window or gone:
                    return 2
                if self._writer_gone():
                    gone = True
                    continue
                return -2
            if p.framing == parse.LINES and (n > p.maxmsg or n > parse.ATOMIC_MAX):
                return 2
            if n == self._window or (
                self._stop_at_eof and self._wait(select.POLLIN, 0.0) & select.POLLHUP
            ):
                return 2
            return -2


class BorrowingReaderCore(ReaderCore):
    """A ReaderCore over descriptors that its owner keeps, and closes (see the Cython core)."""

    def _attach(self, fd: int, path: Any) -> None:
        self._fd, self.path = fd, path

    def _wake_on(self, fd: int) -> None:
        """Also end waits when ``fd`` is readable (or in error): the owner's wake-up."""
        self._wake_r = fd

    def _mid_message(self) -> bool:
        """Whether the next call goes on from where this one stopped (see the Cython core)."""
        p = self._p
        return bool(
            self._locked or p.in_msg or p.owe or p.asm is not None or p.asm_skip or p.end > p.start
        )

    def _close_fds(self) -> None:
        self._fd = self._wake_r = self._wake_w = -1
        self._rlock_fd = self._wlock_fd = self._peek_r = self._peek_w = self._null_fd = -1
