"""The pure core's shared-reader claims (twin of ``_claims.pxi``)."""

from __future__ import annotations

import errno
import os
import select
import time

from ._py_reader_base import _ReaderBase
from ._py_wire import (
    ATOMIC_MAX,
    FRAMES,
    HEADER,
    KIND_FIRST,
    KIND_LAST,
    KIND_MIDDLE,
    KIND_WHOLE,
    LINES,
    MAGIC,
    _header_usable,
    _header_valid,
    _prefix_impossible,
    _tee,
)


class _ClaimingReader(_ReaderBase):
    """Shared readers' claims: each message to exactly one reader (twin of ``_claims.pxi``)."""

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
        win = self._window if self._claim_max >= self._window // 4096 else self._claim_max * 4096
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
        self._append(peeked[:k])
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
        self._append(data)
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
        while i < n:
            if n - i < HEADER and not (i == 0 and _prefix_impossible(p, 0, n)):
                break  # a header still arriving (or a foreign writer's short bytes, below)
            if n - i < HEADER or not _header_usable(p, i):
                if i:
                    break
                j = 1
                while j < n and not (p[j] == MAGIC and (n - j < HEADER or _header_valid(p, j))):
                    j += 1
                return j, in_msg, 0, j == n
            length = int.from_bytes(p[i + 4 : i + 8], "little")
            kind = p[i + 1] & 3
            if count >= self._claim_max and kind in (KIND_WHOLE, KIND_FIRST):
                break  # mid-way through a large message with the claim full: see _claims.pxi
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
            self._append(data)
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
