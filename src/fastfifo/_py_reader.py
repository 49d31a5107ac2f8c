"""The pure core's MessageBatch and ReaderCore with its public calls (twin of ``_batch.pxi``
and ``_reader.pxi``).
"""

from __future__ import annotations

import operator
import os
import select
import sys
from collections.abc import Iterator

from ._errors import (
    ClosedError,
    CorruptStreamError,
    Empty,
    MessageTooLargeError,
    report_loss,
)
from ._py_claims import _ClaimingReader
from ._py_wire import (
    GOT,
    LINES,
    NEED,
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
                self._append(memoryview(self._rbuf)[:n])
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
            self._append(memoryview(self._rbuf)[:n])
            return 1

    def _refill(self, status: int, deadline: float | None, timeout: float | None) -> bool:
        """No whole message in the buffer: raise what ``status`` reports, else read more.

        True when bytes arrived, False at the end of the stream; Empty at the deadline.
        """
        if status < 0:
            self._raise_bad(status)
        r = self._fill(deadline)  # (a message too large for memory: see _append)
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
        max_messages = self._count_arg(max_messages)
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

    def _count_arg(self, n: int) -> int:
        """``max_messages``: any int >= 1 (as the Cython core, which caps it at sys.maxsize)."""
        try:
            v = operator.index(n)
        except TypeError:
            raise TypeError(
                f"{self.path!r}: max_messages must be an int >= 1, not {type(n).__name__}"
            ) from None
        if v < 1:
            raise ValueError(f"{self.path!r}: max_messages must be >= 1, not {v}")
        return min(v, sys.maxsize)

    def __next__(self) -> bytes:
        """The next message; bad input is skipped and logged: see the Cython core."""
        while True:
            try:
                return self.get()
            except (EOFError, ClosedError):
                raise StopIteration from None
            except (CorruptStreamError, MessageTooLargeError) as e:
                report_loss(str(e))
