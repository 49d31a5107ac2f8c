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

from ._errors import (
    ClosedError,
    CorruptStreamError,
    Empty,
)
from ._py_claims import _ClaimingReader
from ._py_wire import (
    ATOMIC_MAX,
    GOT,
    HEADER,
    KIND_FIRST,
    KIND_LAST,
    KIND_WHOLE,
    LINES,
    NEED,
    _header_usable,
    _tee,
    _to_deadline,
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


class ReaderCore(_ClaimingReader):
    """Reads into one buffer and cuts whole messages out of it; see the Cython core."""

    def _fill(self, deadline: float | None) -> int:
        """Read more bytes: 1 when some arrived, 0 on timeout, -1 at end of stream."""
        if self._shared:
            return self._fill_shared(deadline)
        self._compact()
        if self._eof_select:
            return self._fill_select(deadline)
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

    def _fill_select(self, deadline: float | None) -> int:
        """_fill where poll() cannot see the last writer leave: see the Cython core."""
        while True:
            rev = self._wait_data(deadline)
            if rev == 0:
                return 0
            if rev == -3:
                return 1
            try:
                n = os.readv(self._fd, [self._rbuf])
            except BlockingIOError:
                continue
            if not n:
                return -1
            self._buf += memoryview(self._rbuf)[:n]
            return 1

    def _refill(self, status: int, deadline: float | None, timeout: float | None) -> bool:
        """No whole message in the buffer: raise what ``status`` reports, else read more.

        True when bytes arrived, False at the end of the stream; Empty at the deadline.
        """
        if status < 0:
            self._raise_bad(status)
        self._report_drops()
        r = self._fill(deadline)
        if r == 0:
            raise Empty(f"{self.path!r}: no message within {timeout} s")
        return r > 0

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
                if not self._refill(status, deadline, timeout):
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
                if not self._refill(status, deadline, timeout):
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
        n = _peek_count(max_messages)
        deadline = _to_deadline(timeout)
        if not (self._shared and self._use_tee):
            raise ValueError(
                f"{self.path!r}: peeking needs a Reader opened with shared=True "
                "on a system with tee() (Linux)"
            )
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        out: list[bytes] = []
        try:
            if self._peek_open:
                raise RuntimeError(
                    f"{self.path!r}: a peek is held; _commit() or _abandon() it before "
                    "peeking again"
                )
            self._claim_max = n
            while True:
                status = NEED
                while len(out) < n:
                    status, msg = self._take()
                    if status != GOT:
                        break
                    out.append(msg)  # type: ignore[arg-type]
                if out:
                    return out
                if status < 0:
                    self._raise_bad(status)
                self._report_drops()
                if (
                    self._locked
                    or self._holding()
                    or len(self._buf) > self._start
                    or self._asm is not None
                    or self._asm_skip
                    or self._discard
                    or self._skip_line
                ):
                    r = self._fill(deadline)
                else:
                    r = self._peek_claim(n, deadline)
                    if r == 1:
                        self._peek_open = True
                        try:
                            while True:
                                status, msg = self._take()
                                if status != GOT:
                                    break
                                out.append(msg)  # type: ignore[arg-type]
                            if status != NEED or len(self._buf) != self._start or not out:
                                raise RuntimeError(
                                    f"{self.path!r}: a peek did not parse into whole "
                                    "messages (a fastfifo bug)"
                                )
                        except BaseException:
                            self._abandon_held()
                            raise
                        return out
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return [self._end_of_stream()]
        finally:
            self._leave()

    def _commit(self) -> None:
        """Consume exactly the bytes the held peek covers, and release the readers' lock."""
        self._enter(None)
        try:
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
            self._leave()

    def _abandon(self) -> None:
        """Release the readers' lock without consuming: the peeked messages stay first."""
        self._enter(None)
        try:
            self._abandon_held()
        finally:
            self._leave()

    def _abandon_held(self) -> None:
        if self._peek_open:
            self._peek_open = False
            self._peek_bytes = 0
            self._release()

    def _peek_claim(self, n: int, deadline: float | None) -> int:
        """1 peeked (lock kept), 2 an ordinary claim took bytes, 0 deadline, -1 end."""
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
            self._resync = False
            try:
                r = self._peek_tee(n)
                if r == 1:
                    self._peek_bytes = len(self._buf) - self._start
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
        win = min(self._window, want * 4096)
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
            cut, how, wider = self._peek_size(peeked, want)
            if (cut == 0 or wider) and n == win and win < self._window:
                win = min(self._window, win * 4)
                continue
            if how == _PEEK_ORDINARY:
                return 2
            if cut:
                self._buf += peeked[:cut]
                return 1
            if how == _PEEK_OPEN:
                if n == self._window or gone:
                    return 2
                if self._writer_gone():
                    gone = True
                    continue
                return -2
            if self._framing == LINES and (n > self._maxmsg or n > ATOMIC_MAX):
                return 2
            if n == self._window or (
                self._stop_at_eof and self._wait(select.POLLIN, 0.0) & select.POLLHUP
            ):
                return 2
            return -2

    def _peek_size(self, p: bytearray, want: int) -> tuple[int, int, bool]:
        """(cut, how, wider): see _peek_size in _reader.pxi."""
        n, i, cut, count, how, wider, open_ = len(p), 0, 0, 0, _PEEK_OK, False, False
        if self._framing == LINES:
            while i < n and count < want:
                nl = p.find(b"\n", i)
                if nl < 0:
                    wider = True
                    break
                if nl - i > self._maxmsg:
                    if i == 0:
                        how = _PEEK_ORDINARY
                    break
                i = nl + 1
                count += 1
            if i == 0 and how == _PEEK_OK:
                how = _PEEK_MORE
            return i, how, wider
        while True:
            if n - i < HEADER:
                wider = True
                break
            if not _header_usable(p, i):
                if cut == 0:
                    how = _PEEK_ORDINARY
                break
            length = int.from_bytes(p[i + 4 : i + 8], "little")
            kind = p[i + 1] & 3
            if i + HEADER + length > n:
                if i == 0 and HEADER + length > ATOMIC_MAX:
                    return 0, _PEEK_ORDINARY, False
                wider = True
                break
            if kind == KIND_WHOLE:
                if length > self._maxmsg:
                    if cut == 0:
                        how = _PEEK_ORDINARY
                    break
                count += 1
            elif kind == KIND_FIRST:
                total = int.from_bytes(p[i + HEADER : i + HEADER + 8], "little")
                if open_ or total > self._maxmsg or total >= self._window:
                    if cut == 0:
                        how = _PEEK_ORDINARY
                    break
                open_ = True
            else:
                if not open_:
                    if cut == 0:
                        how = _PEEK_ORDINARY
                    break
                if kind == KIND_LAST:
                    open_ = False
                    count += 1
            i += HEADER + length
            if open_:
                if count > want and cut:
                    break
                continue
            cut = i
            if count >= want:
                break
        if cut == 0 and how == _PEEK_OK:
            how = _PEEK_OPEN if open_ else _PEEK_MORE
        return cut, how, wider


_PEEK_OK, _PEEK_MORE, _PEEK_OPEN, _PEEK_ORDINARY = 0, 1, 2, 3


def _peek_count(max_messages: object) -> int:
    """``max_messages`` checked before any arithmetic: an int >= 1, capped at 2**20."""
    if isinstance(max_messages, bool) or not isinstance(max_messages, int):
        raise TypeError(f"max_messages must be an int, not {type(max_messages).__name__}")
    if max_messages < 1:
        raise ValueError(f"max_messages must be >= 1, not {max_messages}")
    return min(max_messages, 1 << 20)
