"""The pure core's shared-reader claims (twin of ``_claims.pxi``); how much a claim takes
is the shared parser's decision (``Parser.claim_size`` / ``exact_want``)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import time

from ._open import drain
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
        if self._pending is not None and self._settle():  # a claim a signal handler's
            return FILLED  # exception cut short, and even its except below: it took this
        if self._peek_dirty:  # (its wake-up pipe may be the private pipe: fastfifo.Queue)
            drain(self._peek_r)
            self._peek_dirty = False
        while True:
            try:
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
                r = self._claim_tee() if self._use_tee else self._claim_exact()
            except BaseException:
                # (also a signal handler's exception, Ctrl-C, which can land right after
                # the lock was taken and before _locked says so: unlock regardless; and
                # after a consume: keep what it took first, which may be the start of a
                # large message that holds the lock)
                if self._pending is not None:
                    self._settle()
                if not self._holding():
                    self._locked = False
                    if self._rlock_fd >= 0:  # (not when a handler closed the Reader)
                        fcntl.flock(self._rlock_fd, fcntl.LOCK_UN)
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
            # _locked first, then the unlock, with no function call in between: were a
            # signal handler's exception to leave _locked set on an unlocked lock, the
            # next claim would run without it, beside another reader's.
            self._locked = False
            fcntl.flock(self._rlock_fd, fcntl.LOCK_UN)

    def _wait_wake(self, seconds: float, deadline: float | None) -> int:
        until = time.monotonic() + seconds
        if deadline is not None and deadline < until:
            until = deadline
        if self._select_wake([self._wake_r], max(until - time.monotonic(), 0.0)):
            self._raise_closed()
        return 0 if deadline is not None and time.monotonic() >= deadline else 1

    def _claim_tee(self) -> int:
        """Under the lock: peek with tee(), size the claim, consume exactly it (Claim).

        Unlike the Cython core's, this claim is Python, and a signal handler's exception
        (a Ctrl-C the caller catches and goes on from) can land at any call in it.  Each
        step leaves a record for the next claim to finish it from: ``_peek_dirty`` while
        the private pipe may hold a peek's bytes (else the next peek would read them as
        its own), ``_pending`` while the claimed bytes may have been read and not kept
        (see ``_settle``).  Whatever the instant, the claim then either happened whole,
        its message kept for the next get(), or did not happen.
        """
        p = self._p
        if p.owe:
            return self._claim_owed()
        # See _claims.pxi: peek about what this claim can take, widen if it is not enough.
        win = self._window if p.claim_max >= self._window // 4096 else p.claim_max * 4096
        while True:
            self._peek_dirty = True
            try:
                n = _tee(self._fd, self._peek_w, win)
            except OSError as e:
                self._peek_dirty = False
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    return NOTHING
                raise OSError(e.errno, f"{e.strerror} (peeking with tee)", self.path) from None
            if n == 0:
                self._peek_dirty = False
                return CLAIM_EOF if self._wait(select.POLLIN, 0.0) & select.POLLHUP else NOTHING
            peeked = bytearray()
            while len(peeked) < n:
                peeked += os.read(self._peek_r, n - len(peeked))
            self._peek_dirty = False
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
        # Consume the claim by reading it over a copy of the peek whose first byte is
        # changed: once the read has been, that byte is the peek's again, even if its
        # result never reached us (see _settle).  One read: the pipe holds the k bytes,
        # and no other reader takes any while we hold the lock.
        claim = peeked[:k]
        claim[0] ^= 0xFF
        self._pending = (claim, peeked[0], p.c_in_msg, p.c_owe)
        got = os.readv(self._fd, [claim])
        while got < k:  # (only if a reader that ignores the lock took some: finish it)
            got += os.readv(self._fd, [memoryview(claim)[got:]])
        self._settle()
        return CLAIMED

    def _settle(self) -> bool:
        """Finish a consume that a signal handler's exception cut short (or that just
        ran): if its read happened, keep what it read, as the claim would have (True)."""
        pending = self._pending
        assert pending is not None
        claim, first, in_msg, owe = pending
        if claim[0] != first:  # the read never happened: nothing was taken
            self._pending = None
            return False
        p = self._p
        self._compact()
        n = len(claim)
        self._pending = None  # (no call from here to the end: nothing can land between)
        try:
            self._buf += claim
            p.end += n
        except MemoryError:
            self._append(claim)  # (drops the message at the head if it must: see there)
        p.in_msg = in_msg
        p.owe = owe
        return True

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
