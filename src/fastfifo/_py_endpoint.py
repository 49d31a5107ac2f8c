"""The pure core's endpoint base: fd, wake-up pipe and call lock (twin of ``_endpoint.pxi``)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import threading
import time
from typing import Any

from . import _errors as texts
from ._py_clock import (
    _ofd_lock,
)


class _Endpoint:
    """An fd, a wake-up pipe and a lock that serialises calls from several threads."""

    path: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._fd = self._wake_r = self._wake_w = -1
        self._closing = False
        self._eof_select = False  # wait for POLLIN with select(): see the Cython core
        # The call lock: an RLock only so that _enter can tell that this thread holds it
        # (``_is_owned``, recorded by the acquire itself); never taken twice.
        self._lock = threading.RLock()
        self._inside = False  # a call holds the lock and is inside its try (see _enter)
        self._state = threading.Lock()  # guards fd numbers between close() and _leave()
        self.path = None

    def __del__(self) -> None:
        self._close_fds()

    def _attach(self, fd: int, path: Any) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._fd, self._wake_r, self._wake_w, self.path = fd, r, w, path

    def _close_fds(self) -> None:
        for name in ("_fd", "_wake_r", "_wake_w"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    def _enter(self, deadline: float | None) -> bool:
        """Take the call lock; as ``_enter`` in the Cython core (50 ms slices, each
        interruptible: signal handlers run, ``close()`` is noticed).

        Every call is ``if not _enter(): raise ...`` then ``try: self._inside = True ...
        finally: self._inside = False; self._leave()``.  A signal handler runs, and its
        exception (a Ctrl-C the caller catches) is raised, wherever a call returns or a
        function begins: after the acquire here, before the ``try``, at ``_leave``'s
        start.  The lock is then still this thread's with no call inside it, and the
        next call takes it over, where a plain Lock stayed held and every later call
        waited for ever.  ``_inside`` is set and cleared with no call in between.
        """
        if self._closing:
            self._raise_closed()
        if self._take_idle():
            return self._entered()
        # Held: by another thread, or by a call of this one under way further up (a
        # signal handler calls in), which the RLock would let in again: wait as the
        # Cython core does, whose lock this thread cannot take twice.
        ours = self._lock._is_owned()  # type: ignore[attr-defined]
        while True:
            wait = 0.05
            if deadline is not None:
                wait = min(max(deadline - time.monotonic(), 0.0), 0.05)
            if ours:
                time.sleep(wait)  # runs signal handlers
            elif self._lock.acquire(True, wait):  # runs signal handlers on EINTR
                return self._entered()
            if self._closing:
                self._raise_closed()
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _entered(self) -> bool:
        if self._closing:
            self._leave()  # the last thread out closes the fds (see _leave)
            self._raise_closed()
        return True

    def _leave(self) -> None:
        """Release the call lock; once closing, the last thread out closes the fds."""
        self._lock.release()
        if self._closing and self._take_idle():
            with self._state:
                self._close_fds()
            self._lock.release()

    def _take_idle(self) -> bool:
        """Take the call lock if no call holds it (the RLock would let a signal handler
        take it again inside a call of its own thread); see ``_enter``."""
        if self._lock._is_owned():  # type: ignore[attr-defined]
            return not self._inside  # left by an interrupted call of this thread: ours
        return bool(self._lock.acquire(False))

    def _raise_closed(self) -> None:
        raise texts.closed(type(self).__name__, self.path, getattr(self, "_closed_reason", None))

    def close(self) -> None:
        """Close the endpoint (idempotent); a call blocked in another thread raises ClosedError."""
        with self._state:
            self._closing = True
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except BlockingIOError:
                    pass
        if self._take_idle():
            with self._state:
                self._close_fds()
            self._lock.release()

    @property
    def _waits_in_select(self) -> bool:
        """Whether waits for data use select() (see ReaderCore._fill_select); for tests."""
        return self._eof_select

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closing

    def fileno(self) -> int:
        """The FIFO's file descriptor (non-blocking), for ``select``/``poll``/event loops."""
        if self._closing:
            self._raise_closed()
        return self._fd

    def _wait(self, events: int, deadline: float | None) -> int:
        """poll() the FIFO for ``events``; its revents, or 0 once the deadline passed.

        With ``_eof_select`` a wait for POLLIN uses select() instead (see
        ReaderCore._fill_select); readable is then reported as POLLIN.
        """
        if self._eof_select and events == select.POLLIN:
            try:
                return self._wait_select(deadline)
            except ValueError:  # an fd above FD_SETSIZE: poll() from now on
                self._eof_select = False
        if self._fd < 0:  # closed by a handler that forked (see below)
            self._raise_closed()
        p = select.poll()
        p.register(self._fd, events)
        p.register(self._wake_r, select.POLLIN)
        while True:
            if deadline is None:
                ms = None
            else:
                left = deadline - time.monotonic()
                ms = 0 if left <= 0 else int(-(-min(left, 86400.0) * 1000 // 1))
            ready = dict(p.poll(ms))  # retries EINTR itself after running signal handlers
            if self._fd < 0:
                # Closed under this wait: a signal handler that forked leaves the child
                # here with the parent's descriptors closed (_after_fork_in_child); the
                # poll object still watches their old numbers, which poll() then reports
                # as invalid for ever.
                self._raise_closed()
            if ready.get(self._wake_r) or ready.get(self._fd, 0) & select.POLLNVAL:
                self._raise_closed()
            if ready.get(self._fd):
                return ready[self._fd]
            if ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                return 0

    def _select_wake(self, fds: list[int], timeout: float | None) -> list[int]:
        """``select.select(fds, [], [], timeout)[0]`` that says ClosedError, not EBADF or
        ValueError, when a signal handler that forked closed these descriptors in the
        child (see ``_wait``): select() retries EINTR with the old numbers."""
        if self._fd < 0:
            self._raise_closed()
        try:
            return select.select(fds, [], [], timeout)[0]
        except OSError as e:
            if e.errno == errno.EBADF and self._fd < 0:
                self._raise_closed()
            raise

    def _wait_select(self, deadline: float | None) -> int:
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready = self._select_wake([self._fd, self._wake_r], left)  # retries EINTR
            if self._wake_r in ready:
                self._raise_closed()
            if self._fd in ready:
                return select.POLLIN
            if left == 0 or (deadline is not None and time.monotonic() >= deadline):
                return 0

    def _lock_wait(self, fd: int, ofd: bool, deadline: float | None) -> bool:
        """Take flock (ofd false) or the OFD write lock; False when the deadline passed.

        As in the Cython core: never a blocking lock call, a few yields, then
        1-10 ms sleeps in poll() on the wake-up pipe.
        """
        spins, ms = 0, 0
        while True:
            if self._fd < 0:  # closed by a handler that forked (see _wait)
                self._raise_closed()
            try:
                if ofd:
                    _ofd_lock(fd, fcntl.F_WRLCK)
                else:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except (BlockingIOError, PermissionError):
                pass
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if spins < 20:
                spins += 1
                os.sched_yield()
                continue
            ms = 1 if ms == 0 else min(ms * 2, 10)
            if deadline is not None:
                ms = max(1, min(ms, int(-(-(deadline - time.monotonic()) * 1000 // 1))))
            if self._select_wake([self._wake_r], ms / 1000):
                self._raise_closed()

    @staticmethod
    def _unlock(fd: int, ofd: bool) -> None:
        if ofd:
            _ofd_lock(fd, fcntl.F_UNLCK)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
