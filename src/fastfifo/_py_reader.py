"""The pure core's MessageBatch and ReaderCore with its public calls (twin of ``_batch.pxi``
and ``_reader.pxi``).
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

from . import _errors as texts
from ._errors import ClosedError, CorruptStreamError, MessageTooLargeError, report_loss
from ._py_claims import AT_EOF, FILLED, TIMED_OUT, _ClaimingReader
from ._py_clock import _to_deadline, parse
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
            p.claim_max = 1
            while True:
                status = p.take()
                if status == GOT:
                    return self._cut()
                if not self._refill(status, deadline, timeout):
                    return p.end_of_stream()  # type: ignore[no-any-return]
        finally:
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
