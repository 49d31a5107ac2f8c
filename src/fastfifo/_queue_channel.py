"""One ``fastfifo.Queue`` in one process: its descriptors, endpoints, waits and feeder.

A ``_Channel`` is what ``queues.Queue`` drives:

* **the FIFO, opened read-write once.**  Messages are written to it and claimed from
  it, ``poll()`` on it says whether one may be waiting, and it keeps the pipe (and the
  messages in it) alive while this process has the queue.
* **one private pipe.**  Where ``tee()`` exists (Linux) it is the space a claim peeks
  into, to take whole messages, and where they are counted (``qsize``, ``maxsize``).
  It is also the queue's wake-up: ``close()`` writes a byte into it, which ends every
  wait on the queue in this process.
* **core endpoints over those descriptors** (``BorrowingWriterCore`` and
  ``BorrowingReaderCore``: they close nothing, the channel does).  They are called with
  ``timeout=0`` (only the feeder thread lets them wait): waiting happens here, in
  ``poll()`` on the FIFO and the private pipe, so that ``close()`` ends it.
* **the feeder**: what the pipe had no room for, and the thread that writes it, started
  the first time a put finds the pipe full (multiprocessing's feeder thread, which holds
  everything not yet written, is there from the first put).

Three descriptors, and a fourth for a moment while a message larger than one atomic
write is sent: the writers' lock is taken through a description of the FIFO of its own,
because this process's reader looks for it through the first one (a lock is invisible
to a query made through the description that holds it).
"""

from __future__ import annotations

import collections
import errno
import os
import select
import stat
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from multiprocessing import util as _mp_util
from types import ModuleType
from typing import Any, NamedTuple

from ._endpoints import (
    _name_the_fifo,
    _take_presence,
    _wait_out_bursts,
    lent_reader,
    lent_writer,
)
from ._errors import ClosedError, Empty, Full
from ._open import (
    LOCKS_ON_FIFOS,
    PEEK_WINDOW,
    Backoff,
    bytes_waiting,
    drain,
    open_fifo,
    pipe_capacity,
    room_for,
    set_pipe_size,
    sidecar_lock,
)

#: Processes open their own description of a queue's FIFO from a descriptor they hold
#: (``/proc/self/fd/N``): a private queue needs no name.  Elsewhere (macOS) by its path.
REOPEN_BY_FD: bool = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")

#: While a large message is part-way received, a waiting get() retries this often, so
#: that the core notices its writer died (and drops it) as the blocking Reader does.
_MID_MESSAGE_TICK = 0.1
#: A timeout at least this long (about 31 years), like ``inf``, waits for ever.
_FOREVER = 1e9
#: Every message takes at least this many bytes in the pipe (an empty frame).
_MIN_FRAME = 8


class _Options(NamedTuple):
    """What a Queue is made with: all that travels when it is pickled (but descriptors)."""

    path: str | None  # None: a private queue with no name (reopened from descriptors)
    label: str  # the name in messages (for a private queue, where it was created)
    maxsize: int
    dumps: Callable[[Any], Any] | None
    loads: Callable[[bytes], Any] | None
    raw: bool
    max_message_size: int
    pipe_size: int | None
    strict_permissions: bool
    backend: str | None


def core_for(name: str | None) -> ModuleType:
    """The core a queue runs on: the selected one, or (tests) "cython" or "python"."""
    if name is None:
        from ._backend import core

        return core
    if name == "python":
        from . import _core_py

        return _core_py
    if name == "cython":
        from . import _core

        compiled: ModuleType = _core
        return compiled
    raise ValueError(f"backend must be 'cython' or 'python', not {name!r}")


def deadline_for(label: str, block: bool, timeout: float | None) -> float | None:
    """A monotonic deadline, read as multiprocessing.Queue reads ``block``/``timeout``.

    ``block=False`` or ``timeout <= 0``: now (try once, do not wait).  ``None``, ``inf``
    and anything over ~31 years: None (for ever).  NaN and non-numbers are refused, and
    the number is checked before any arithmetic.
    """
    if not block:
        return time.monotonic()
    if timeout is None:
        return None
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise TypeError(
            f"Queue {label!r}: timeout must be None or a number of seconds, not {timeout!r}"
        ) from None
    if t != t:
        raise ValueError(f"Queue {label!r}: timeout must be a number of seconds, not NaN")
    if t >= _FOREVER:
        return None
    return time.monotonic() + max(t, 0.0)


def full_text(label: str, maxsize: int, timeout: object) -> str:
    """What ``Full`` says: how long the queue held ``maxsize`` objects, or that the put
    did not wait (``block=False``, ``put_nowait``, a timeout of 0 or less)."""
    if isinstance(timeout, (int, float)) and timeout > 0:
        return f"Queue {label!r} held maxsize={maxsize} objects for {timeout} s"
    return f"Queue {label!r} is full (maxsize={maxsize} objects) and this put does not wait"


def _ms(left: float | None) -> int | None:
    """poll()'s timeout in whole milliseconds, rounded up and at most a day (None: block)."""
    if left is None:
        return None
    return max(0, int(-(-min(left, 86400.0) * 1000 // 1)))


def reopen(fd: int, path: str | None, label: str, strict: bool) -> int:
    """A description of this process's own of the FIFO behind ``fd`` (else at ``path``)."""
    if fd >= 0 and REOPEN_BY_FD:
        try:
            new = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise OSError(
                e.errno, f"{e.strerror} (reopening the queue's FIFO from descriptor {fd})", label
            ) from None
        if not stat.S_ISFIFO(os.fstat(new).st_mode):  # pragma: no cover - it was a FIFO
            os.close(new)
            raise OSError(errno.EBADF, f"descriptor {fd} is no longer the queue's FIFO", label)
        return new
    if path is None:
        raise OSError(
            errno.EBADF,
            "this private queue cannot be opened here: its FIFO has no name and this "
            "process holds no descriptor of it",
            label,
        )
    return open_fifo(path, os.O_RDWR, strict_permissions=strict)


def _private_pipe(fifo: int, peeking: bool) -> tuple[int, int]:
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        if peeking:
            # As large as the FIFO, so that one tee() sees everything waiting in it; made
            # with the queue, before the per-user pipe allowance can run out.
            set_pipe_size(w, pipe_capacity(fifo))
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    return r, w


class _Channel:
    """The queue in one process (see the module docstring).  Two locks, ``rlock`` first:

    * ``rlock``: one reader call or count at a time.  Both use the private pipe, and a
      claim or count in progress has bytes in it, which a waiter that sees it readable
      must not take for the wake-up: it waits for ``rlock`` and looks again.
    * ``mutex`` (with ``cond``): the feeder's buffer, who is writing, the waiters, closing.
    """

    def __init__(self, fd: int, opts: _Options, core: ModuleType) -> None:
        self.fd = fd
        self.label = opts.label
        self.opts = opts
        self.core = core
        try:
            self.peek_r, self.peek_w = _private_pipe(fd, core.HAVE_TEE)
        except BaseException as exc:
            _name_the_fifo(exc, self.label)  # EMFILE: say which FIFO, and what to do
            raise
        self.peek_cap = pipe_capacity(self.peek_w)
        self.rlock = threading.Lock()
        self.mutex = threading.Lock()
        self.cond = threading.Condition(self.mutex)
        self.rlock_fd = self.wlock_fd = -1  # macOS: sidecar lock files
        self.buffer: collections.deque[bytes] = collections.deque()  # for the feeder
        self.busy = False  # a write of ours runs outside the mutex (the feeder, a large put)
        self.inflight = 0  # messages the feeder took from the buffer and has not written yet
        self.thread: threading.Thread | None = None
        self.idle = False  # the feeder thread waits on ``cond`` for something to write
        self.join_cancelled = False
        self.joiner: Any = None  # multiprocessing.util.Finalize that joins the feeder
        self.joined: threading.Thread | None = None  # the feeder ``joiner`` joins
        self.waiters = 0
        self.closed = False  # no more get/put here; the feeder still writes what it holds
        self.shut = False  # descriptors closed
        self.put_count = self.put_bytes = 0  # maxsize where peeking is impossible (macOS)
        try:
            # Every claim peeks (tee) where it can, a get() too: it then takes its object
            # in one read(), so a consumer killed at any instant leaves the stream whole.
            # (Exact reads, the header then the payload, take one system call less, but a
            # consumer killed between the two left the payload to another consumer as bad
            # bytes: tests/test_queue.py, test_a_consumer_killed_at_any_instant_...)
            self.reader = self._make_reader()
            # Its waits (the feeder's) end once close() shut the private pipe's read end:
            # the write end then polls as in error.
            self.writer = lent_writer(
                core, fd, self.label, max_message_size=opts.max_message_size, wake_fd=self.peek_w
            )
            if LOCKS_ON_FIFOS and opts.path is not None:
                # A named queue's FIFO may have fastfifo.Writers too: be seen by them, so
                # that none sends a large message in one burst that a put of ours could
                # land inside (see _endpoints._wait_out_bursts).
                _take_presence(fd)
                _wait_out_bursts(fd)
        except BaseException:
            for x in {self.peek_r, self.peek_w, self.rlock_fd, self.wlock_fd} - {fd, -1}:
                os.close(x)
            raise
        self.atomic: int = self.writer.max_atomic_message

    # ------------------------------------------------------------ endpoints

    def _make_reader(self) -> Any:
        if LOCKS_ON_FIFOS:
            self.rlock_fd = self.wlock_fd = self.fd
        elif self.rlock_fd < 0:  # macOS: flock on sidecar files (two opens: two descriptions)
            self.rlock_fd = sidecar_lock(self.label, ".readers.lock")
            self.wlock_fd = sidecar_lock(self.label, ".writers.lock")
        return lent_reader(
            self.core,
            self.fd,
            self.label,
            max_message_size=self.opts.max_message_size,
            wake_fd=self.peek_r,
            peek_r=self.peek_r,
            peek_w=self.peek_w,
            window=min(PEEK_WINDOW, self.peek_cap),
            rlock_fd=self.rlock_fd,
            wlock_fd=self.wlock_fd,
        )

    def attempt(self, many: int) -> Any:
        """(Holding rlock.)  ``get_many(many, 0)``, or ``get(0)`` when ``many`` is 0."""
        if many:
            return self.reader.get_many(many, 0)
        return self.reader.get(0)

    def _open_writers_lock(self) -> int:
        if not LOCKS_ON_FIFOS:
            return sidecar_lock(self.label, ".writers.lock")
        try:
            return os.open(f"/proc/self/fd/{self.fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise OSError(
                e.errno, f"{e.strerror} (opening the writers' lock for a large message)", self.label
            ) from None

    # ------------------------------------------------------------ waiting

    def closed_error(self) -> ClosedError:
        return ClosedError(f"Queue {self.label!r} is closed")

    def _woken(self) -> None:
        """The private pipe is readable: the queue was closed, or a claim or count in
        another thread has its bytes there (then wait for it to end, and look again)."""
        if self.closed:
            raise self.closed_error()
        with self.rlock:
            if self.closed:
                raise self.closed_error()
            # No claim or count runs now, and close() writes its byte only once closed
            # is set: what the pipe holds was left by a claim or count that a signal
            # handler's exception cut short (the pure core's, Ctrl-C).  Drop it, or
            # every wait would find the pipe readable and spin.
            drain(self.peek_r)

    def try_take(self, many: int) -> Any:
        """``attempt(many)`` under ``rlock``, or None when there is nothing to take now."""
        # (``with``, never acquire() then try: a signal handler's exception (Ctrl-C) can
        # land between the two and leave the lock held for ever; see take())
        with self.rlock:
            if self.closed:
                raise self.closed_error()
            try:
                return self.attempt(many)
            except Empty:
                return None

    def take(self, many: int, deadline: float | None, timeout: object) -> Any:
        """``attempt(many)``, waiting for a message until ``deadline`` (None: for ever)."""
        # try_take and attempt, written out: this is every get()'s path, and each
        # Python call level costs about a tenth of a claim (docs/benchmarks.md).
        # ``with``, never acquire() then try: a signal handler runs when a call returns,
        # so a Ctrl-C caught by the consumer could land between acquire() and try and
        # leave the lock held, and every later get() of the process wait for ever.  The
        # ``with`` statement takes the lock with no such point before its block.
        with self.rlock:
            if self.closed:
                raise self.closed_error()
            try:
                if many:
                    return self.reader.get_many(many, 0)
                return self.reader.get(0)
            except Empty:
                pass
        if deadline is not None and time.monotonic() >= deadline:
            raise Empty(f"Queue {self.label!r}: no object within {timeout} s")
        counted = False
        try:
            with self.mutex:  # (counted as in sleep(): see there)
                if self.closed:
                    raise self.closed_error()
                self.waiters += 1
                counted = True
            return self._wait_take(many, deadline, timeout)
        finally:
            if counted:  # (not under the mutex: its wait can end in a handler's exception)
                self.waiters -= 1
                self.shut_if_done()

    def _wait_take(self, many: int, deadline: float | None, timeout: object) -> Any:
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        p.register(self.peek_r, select.POLLIN)
        backoff = Backoff(25e-6, 0.002)  # as the core's lock waits
        reader = self.reader
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Empty(f"Queue {self.label!r}: no object within {timeout} s")
            if reader._mid_message():
                left = _MID_MESSAGE_TICK if left is None else min(left, _MID_MESSAGE_TICK)
            ready = dict(p.poll(_ms(left)))  # retries EINTR after running signal handlers
            if self.peek_r in ready:
                self._woken()
                continue
            got = self.try_take(many)
            if got is not None:
                return got
            if self.fd not in ready:
                backoff.reset()
                continue
            # Readable, yet nothing to take: another process is claiming, or the head of
            # the pipe is not a whole message yet.  Back off instead of spinning.
            pause = backoff.next(None if deadline is None else deadline - time.monotonic())
            if pause < 1e-4:
                os.sched_yield()
            else:
                time.sleep(pause)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (whole milliseconds); ``close()`` ends it with ``ClosedError``."""
        counted = False
        try:
            # The count and ``counted`` change with no call between them (nor before
            # the finally's decrement), so a signal handler's exception (Ctrl-C), which
            # can land where a call returns or a function begins, or end a wait for a
            # lock, cannot leave the one without the other: a count left behind would
            # keep close() from ever closing the descriptors.  (The decrement is one
            # attribute update with no call inside: no other thread runs in between.)
            with self.mutex:
                if self.closed:
                    raise self.closed_error()
                self.waiters += 1
                counted = True
            p = select.poll()
            p.register(self.peek_r, select.POLLIN)
            if p.poll(_ms(seconds)):
                self._woken()
        finally:
            if counted:  # (not under the mutex: its wait can end in a handler's exception)
                self.waiters -= 1
                self.shut_if_done()

    # ------------------------------------------------------------ counting

    def count(self, limit: int) -> tuple[int, bool]:
        """(whole messages in the pipe, at most ``limit`` (-1: all), whether exact)."""
        with self.rlock:
            if self.closed:
                raise self.closed_error()
            for attempt in (0, 1):
                waiting = bytes_waiting(self.fd)
                if waiting == 0:
                    return 0, True
                try:
                    data = self.core.peek(self.fd, self.peek_r, self.peek_w, waiting)
                except BaseException:
                    drain(self.peek_r)
                    raise
                n = self.core.count_messages(data, limit)
                fifo_cap = pipe_capacity(self.fd)
                if len(data) >= waiting or n == limit or self.peek_cap >= fifo_cap:
                    return n, True
                # The private pipe is smaller than the FIFO, so it may have shown only the
                # first part.  Grow it, if the per-user pipe allowance lets us now.
                if attempt == 0:
                    self.peek_cap = set_pipe_size(self.peek_w, fifo_cap)
            return n, False

    def unsent(self) -> int:
        """Messages this process put that are not in the pipe yet (the feeder's)."""
        return len(self.buffer) + self.inflight

    def room(self, maxsize: int, want: int, peek: bool) -> int:
        """How many of ``want`` messages fit under ``maxsize`` now (0 when full); ``peek``:
        count them by peeking (else estimate them from our own messages' sizes)."""
        free = maxsize - self.unsent()
        if free <= 0:
            return 0
        waiting = bytes_waiting(self.fd)
        if waiting < _MIN_FRAME * free:
            n = waiting // _MIN_FRAME  # fewer than ``free`` messages, whatever they are
        elif peek:
            n, exact = self.count(free)
            if not exact and n < free:
                # Only part of the pipe could be seen (the private pipe could not be made
                # as large as the FIFO): wait until what is waiting can be counted.
                return 0
        else:
            # No way to peek (macOS): estimate from the mean size of our own messages.
            n = waiting * self.put_count // self.put_bytes if self.put_count else waiting // 64
        return max(0, min(want, free - n))

    def wait_room(
        self, maxsize: int, want: int, peek: bool, deadline: float | None, timeout: object
    ) -> int:
        """Wait until some of ``want`` messages fit under ``maxsize``; how many do.

        No kernel event says "a consumer took a message", so this looks again with a
        backoff from 0.5 to 10 ms (``close()`` from another thread ends it).
        """
        backoff = Backoff(0.0005, 0.01)
        while True:
            room = self.room(maxsize, want, peek)
            if room:
                return room
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Full(f"{full_text(self.label, maxsize, timeout)}; nothing was put", 0)
            self.sleep(backoff.next(left))

    def note_sizes(self, sizes: list[int]) -> None:
        """Where the pipe cannot be peeked at (macOS): the sizes maxsize is estimated from."""
        self.put_count += len(sizes)
        self.put_bytes += sum(sizes) + _MIN_FRAME * len(sizes)

    # ------------------------------------------------------------ sending

    def send(self, data: Any, size: int) -> None:
        """Write ``data`` now if the pipe has room and nothing of ours waits before it;
        else hand it to the feeder.  Never waits for a consumer."""
        mine = False  # busy is ours to clear
        try:
            with self.mutex:  # (not acquire() then try: see take())
                if self.closed:
                    raise self.closed_error()
                w = self.writer
                if self.buffer or self.busy:
                    self._hand_over([data])  # behind what waits already
                    return
                if size <= self.atomic:
                    try:
                        w.put(data, 0)
                    except Full:
                        self._hand_over([data])
                    return
                if not room_for(self.fd, size, self.atomic):
                    self._hand_over([data])
                    return
                # A large message that fits: written here, others queue behind.  busy
                # and mine change with no call between, inside the try: a signal
                # handler's exception (Ctrl-C) landing as the mutex is let go must not
                # leave busy set, or the feeder would wait for ever and write nothing.
                self.busy = True
                mine = True
            self._write_large(w, [data])
        finally:
            if mine:
                # busy first, outside the mutex (one attribute store: the GIL makes it
                # whole): the wait for the mutex can itself end in a handler's exception.
                # Should it, the feeder wakes at the next put or at close().
                self.busy = False
                with self.mutex:
                    if self.buffer:
                        self._start_feeder()
                    self.cond.notify_all()
                self.shut_if_done()

    def send_many(self, items: list[Any], sizes: list[int]) -> None:
        """``send`` for a batch: as much as the pipe has room for now, the rest to the feeder."""
        with self.mutex:
            if self.closed:
                raise self.closed_error()
            w = self.writer
            if not self.buffer and not self.busy and max(sizes) <= self.atomic:
                try:
                    w.put_many(items, 0)
                    return
                except Full as e:
                    items = items[e.sent :]
            self._hand_over(items)

    def _hand_over(self, items: list[Any]) -> None:
        """(Under the mutex.)  Queue ``items`` for the feeder, copying mutable buffers."""
        if len(items) == 1:
            x = items[0]
            self.buffer.append(x if type(x) is bytes else bytes(x))
        else:
            self.buffer.extend(x if type(x) is bytes else bytes(x) for x in items)
        self._start_feeder()

    def _start_feeder(self) -> None:
        """(Under the mutex.)  Start the feeder, or wake it.

        A signal handler's exception (Ctrl-C in a producer that catches it) can land
        anywhere in here, also inside ``Thread.start()``, so nothing is assumed from an
        earlier call: the thread is recorded before it starts, and one recorded that did
        not come to run within a second (its start was cut short) is replaced by a new
        one.  (Started first and recorded after, an exception in between left a feeder
        no one knew of; starting the recorded one again could run it twice.)
        """
        t = self.thread
        if t is not None and not t._started.is_set() and not t._started.wait(1.0):  # type: ignore[attr-defined]
            t = None  # (a thread that was started sets it at once)
        if t is None:
            t = self.thread = threading.Thread(
                target=self._feed, name="fastfifo.Queue feeder", daemon=True
            )
        if self.joined is not t and not self.join_cancelled:
            # As multiprocessing's: at exit, after the processes it started were joined,
            # wait for the feeder to write what it holds (unless cancel_join_thread()).
            # (Before the start: no feeder runs without its joiner.)
            self.joiner = _mp_util.Finalize(t, _join_feeder, [weakref.ref(t)], exitpriority=-5)
            self.joined = t  # (cut off before this: a second joiner of t, harmless)
        if not t._started.is_set():  # type: ignore[attr-defined]
            t.start()
        elif self.idle:  # else it will look at the buffer before it waits again
            self.cond.notify()

    def _write_large(self, w: Any, items: list[Any]) -> None:
        """Write a batch with a message above one atomic write, waiting for room (the
        caller made sure it fits now, or is the feeder), the writers' lock taken through
        a description of its own."""
        lock = self._open_writers_lock()
        try:
            w._lock_on(lock, LOCKS_ON_FIFOS)
            if len(items) == 1:
                w.put(items[0], None)
            else:
                w.put_many(items, None)
        finally:
            w._lock_on(-1, LOCKS_ON_FIFOS)
            os.close(lock)

    def _feed(self) -> None:
        """The feeder thread: write what the pipe had no room for, in order, waiting for
        room; end once the queue is closed and nothing is left."""
        w = self.writer
        try:
            while True:
                with self.cond:
                    while self.busy or not self.buffer:
                        if self.closed and not self.buffer and not self.busy:
                            return
                        self.idle = True
                        self.cond.wait()
                        self.idle = False
                    batch = list(self.buffer)
                    self.buffer.clear()
                    self.busy = True
                    self.inflight = len(batch)
                try:
                    self._feed_batch(w, batch)
                finally:
                    with self.cond:
                        self.busy = False
                        self.inflight = 0
                        self.cond.notify_all()  # (a second feeder may wait: see _start_feeder)
        finally:
            with self.mutex:
                if self.thread is threading.current_thread():
                    self.thread = None
            self.shut_if_done()

    def _feed_batch(self, w: Any, batch: list[bytes]) -> None:
        """Write ``batch`` in runs (small messages packed together, a large one alone),
        taking each run off ``inflight`` once written, so that maxsize's count sees an
        object in the pipe or in flight, and counts it twice for a moment at most."""
        atomic = self.atomic
        i = 0
        while i < len(batch):
            j = i + 1
            if len(batch[i]) <= atomic:
                while j < len(batch) and len(batch[j]) <= atomic:
                    j += 1
            self._feed_run(w, batch[i:j])
            with self.mutex:
                self.inflight -= j - i
            i = j

    def _feed_run(self, w: Any, run: list[bytes]) -> None:
        backoff = Backoff(0.01, 1.0)
        while True:
            try:
                if len(run[0]) > self.atomic:
                    self._write_large(w, run)
                else:
                    w.put_many(run, None)
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(backoff.next())  # the writers' lock needs a descriptor
                    continue
                self._report(e, run)
                return
            except Exception as e:
                self._report(e, run)
                return

    def _report(self, e: BaseException, batch: list[bytes]) -> None:
        # As multiprocessing's feeder: the traceback on stderr (the put has returned).
        print(
            f"fastfifo.Queue {self.label!r}: the feeder thread could not write "
            f"{len(batch)} messages:",
            file=sys.stderr,
        )
        traceback.print_exception(type(e), e, e.__traceback__)

    def join(self) -> None:
        if self.joiner is not None:
            self.joiner()

    def cancel_join(self) -> None:
        self.join_cancelled = True
        if self.joiner is not None:
            self.joiner.cancel()

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """No more get/put here: wake every wait, let the feeder write what it holds, then
        close the descriptors (at once if nothing waits and the feeder is idle)."""
        with self.rlock, self.mutex:  # rlock: no claim or count has bytes in the pipe now
            if self.closed:
                return
            self.closed = True
            os.write(self.peek_w, b"x")
            self.cond.notify_all()
        self.shut_if_done()

    def shut_if_done(self) -> None:
        with self.mutex:
            if self.shut or not self.closed or self.waiters or self.busy or self.buffer:
                return
            if self.thread is not None:
                return
            self.shut = True
        self.reader.close()  # closes nothing: they are lent
        self.writer.close()
        for fd in {self.fd, self.peek_r, self.peek_w, self.rlock_fd, self.wlock_fd} - {-1}:
            os.close(fd)

    def abandon(self) -> int:
        """After fork(), in the child, where this channel is the parent's: close the child's
        copies of the private pipe (no wake-up byte: the parent's shares the pipe), forget
        what the feeder held (the parent writes it), as multiprocessing does, and return
        the FIFO descriptor for the child to keep (-1 if closed)."""
        if self.shut:
            return -1
        self.shut = True
        self.buffer = collections.deque()
        for fd in {self.peek_r, self.peek_w, self.rlock_fd, self.wlock_fd} - {self.fd, -1}:
            os.close(fd)
        if self.closed:
            os.close(self.fd)
            return -1
        return self.fd


def _join_feeder(ref: weakref.ref[threading.Thread]) -> None:
    t = ref()
    # (not one whose start a signal handler's exception cut short: see _start_feeder)
    if t is not None and t is not threading.current_thread() and t.ident is not None:
        t.join()


class Holder:
    """What a Queue holds open in this process, shared with its finalizer (which must not
    refer to the Queue itself)."""

    __slots__ = ("chan", "keep")

    def __init__(self) -> None:
        self.chan: _Channel | None = None
        self.keep = -1  # a descriptor of the FIFO not opened here (inherited, received)

    def release(self) -> None:
        """The Queue was collected, or the process exits (before multiprocessing joins its
        children): close the channel (a feeder writes what it holds first; the channel's
        descriptors close after it) and the descriptor kept."""
        chan, keep = self.chan, self.keep
        self.chan, self.keep = None, -1
        if chan is not None:
            chan.close()
        if keep >= 0:
            os.close(keep)
