"""The pure core's shared-reader claims (twin of ``_claims.pxi``); how much a claim takes
is the shared parser's decision (``Parser.claim_size`` / ``exact_want``)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import time

from ._py_clock import _tee, parse
from ._py_reader_base import ABANDONED, _ReaderBase

HEADER, FRAMES, LINES = parse.HEADER, parse.FRAMES, parse.LINES
KIND_FIRST, KIND_MIDDLE, KIND_LAST = parse.KIND_FIRST, parse.KIND_MIDDLE, parse.KIND_LAST

# The Fill and Claim results (the enums of _core.pyx)
FILLED, TIMED_OUT, AT_EOF = 1, 0, -1
CLAIMED, NOTHING, CLAIM_EOF, HEAD_INCOMPLETE = 1, 0, -1, -2


class _ClaimingReader(_ReaderBase):
    """Shared readers' claims: each message to exactly one reader (twin of ``_claims.pxi``)."""

    def _fill_shared(self, deadline: float | None) -> int:
        p = self._p
        first = True
        while True:
            if not self._locked:
                # As the Cython core: try the lock and a claim first, then wait.
                try:
                    if not first:
                        raise BlockingIOError
                    fcntl.flock(self._rlock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if self._wait(select.POLLIN, deadline) == 0:
                        return TIMED_OUT
                    if not self._lock_wait(self._rlock_fd, False, deadline):
                        return TIMED_OUT
                self._locked = True
                p.resync = False  # a fresh claim: see _claims.pxi
            first = False
            try:
                r = self._claim_tee() if self._use_tee else self._claim_exact()
            except BaseException:
                if not self._holding():
                    self._release()
                raise
            if r == CLAIMED:
                if not self._holding():
                    self._release()
                return FILLED
            if r == CLAIM_EOF:
                if p.in_msg:  # every writer left part-way through a message
                    if p.framing == FRAMES:
                        p.drop_partial("every writer left before it ended")
                    p.in_msg = False
                p.owe = 0
                self._release()
                return AT_EOF
            if p.owe:  # part-way through a frame or line of ours: see _claims.pxi
                if self._wait(select.POLLIN, deadline) == 0:
                    return TIMED_OUT
                continue
            if p.in_msg:
                if r == HEAD_INCOMPLETE:  # stray bytes short of a frame: see _claims.pxi
                    if p.framing == FRAMES and self._writer_gone():
                        p.drop_partial("its writer died or gave up part-way")
                        p.in_msg = False
                        self._release()
                        return FILLED
                    if self._wait_wake(0.002, deadline) == 0:
                        return TIMED_OUT
                    continue
                rev = self._wait_data(deadline)
                if rev == ABANDONED:
                    self._release()
                    return FILLED
                if rev == 0:
                    return TIMED_OUT
                continue
            self._release()
            if r == HEAD_INCOMPLETE:
                if self._wait_wake(0.002, deadline) == 0:
                    return TIMED_OUT
            elif deadline is not None and time.monotonic() >= deadline:
                return TIMED_OUT

    def _holding(self) -> bool:
        """Whether the pipe's head continues what this reader has begun taking."""
        return bool(self._p.in_msg or self._p.owe != 0)

    def _release(self) -> None:
        if self._locked:
            self._unlock(self._rlock_fd, False)
            self._locked = False

    def _wait_wake(self, seconds: float, deadline: float | None) -> int:
        until = time.monotonic() + seconds
        if deadline is not None and deadline < until:
            until = deadline
        if self._select_wake([self._wake_r], max(until - time.monotonic(), 0.0)):
            self._raise_closed()
        return 0 if deadline is not None and time.monotonic() >= deadline else 1

    def _claim_tee(self) -> int:
        """Under the lock: peek with tee(), size the claim, consume exactly it (Claim)."""
        p = self._p
        if p.owe:
            return self._claim_owed()
        # See _claims.pxi: peek about what this claim can take, widen if it is not enough.
        win = self._window if p.claim_max >= self._window // 4096 else p.claim_max * 4096
        while True:
            try:
                n = _tee(self._fd, self._peek_w, win)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    return NOTHING
                raise OSError(e.errno, f"{e.strerror} (peeking with tee)", self.path) from None
            if n == 0:
                return CLAIM_EOF if self._wait(select.POLLIN, 0.0) & select.POLLHUP else NOTHING
            peeked = bytearray()
            while len(peeked) < n:
                peeked += os.read(self._peek_r, n - len(peeked))
            k = p.claim_size(peeked, 0, n)
            if (k == 0 or p.c_wider) and n == win and win < self._window:
                win = min(self._window, win * 4)
                continue
            if k == 0 and self._stop_at_eof and self._wait(select.POLLIN, 0.0) & select.POLLHUP:
                k = n  # every writer left: the unfinished tail is ours
                p.c_in_msg = False
            break
        if k == 0:
            return HEAD_INCOMPLETE
        got = 0
        while got < k:  # no /dev/null (fastfifo.Queue): read the same bytes, dropped
            if self._null_fd >= 0:
                got += os.splice(self._fd, self._null_fd, k - got)
            else:
                got += len(os.read(self._fd, k - got))
        self._compact()
        self._append(peeked[:k])
        p.in_msg = p.c_in_msg
        p.owe = p.c_owe
        return CLAIMED

    def _claim_owed(self) -> int:
        """Under the lock, part-way through a frame: read (some of) its rest (see _claims.pxi)."""
        p = self._p
        try:
            data = os.read(self._fd, min(p.owe, self._window))
        except (BlockingIOError, InterruptedError):
            return NOTHING
        if not data:
            return CLAIM_EOF if self._wait(select.POLLIN, 0.0) & select.POLLHUP else NOTHING
        self._compact()
        p.owe -= len(data)
        self._append(data)
        return CLAIMED

    def _claim_exact(self) -> int:
        """No tee(): read exactly up to the end of one message (see _claims.pxi)."""
        p = self._p
        self._compact()
        p.x_at, p.x_junk, p.x_frag = 0, False, -1
        got = 0
        while True:
            want = p.exact_want()
            owed = p.x_owed
            if want == 0:
                if got:
                    break
                want, owed = (HEADER if p.framing == FRAMES else 1), False
            elif got >= self._window or (p.framing == LINES and p.end - p.start > p.maxmsg):
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
                p.owe = want if owed else 0
                return CLAIM_EOF if self._wait(select.POLLIN, 0.0) & select.POLLHUP else NOTHING
            self._append(data)
            got += len(data)
        p.owe = want if owed else 0
        if p.x_frag in (KIND_FIRST, KIND_MIDDLE):
            p.in_msg = True
        elif p.x_frag == KIND_LAST:
            p.in_msg = False
        return CLAIMED if got else NOTHING
