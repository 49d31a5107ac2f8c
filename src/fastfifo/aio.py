"""asyncio endpoints: ``await get()``, ``await put()``, ``async for``, with no threads.

Each endpoint wraps a blocking ``fastfifo.Reader``/``Writer`` and only ever calls it
with ``timeout=0``, which never blocks: a ``get(timeout=0)`` returns one whole message
or raises ``Empty`` having taken nothing, and a small ``put(timeout=0)`` writes the
whole message or nothing.  When such a call cannot proceed, the endpoint waits for the
FIFO's descriptor with ``loop.add_reader``/``add_writer`` and tries again.  So:

* a cancelled ``get`` (``asyncio.timeout``, ``wait_for``, ``task.cancel()``) loses no
  message: it was either returned before the cancellation or is still in the pipe;
* any number of tasks can wait on one endpoint: they queue in FIFO order and one
  readiness callback serves them all (the loop allows one callback per descriptor);
* with a shared Reader, "readable" may mean another process is about to claim the
  message; the endpoint simply waits again (with a short backoff while another reader
  holds the claim lock, so it never spins).

Writers have two styles.  ``await put(data)`` returns once the message is in the pipe
(waiting while the pipe is full: that is the backpressure).  ``write(data)`` never waits:
it sends now if it can, else keeps the message in an in-process backlog that the loop
flushes in order as the pipe drains, and ``await drain()`` pauses the producer while the
backlog is above ``high_water`` bytes, as ``asyncio.StreamWriter`` does.

Messages above ``max_atomic_message`` (4088 bytes on Linux) travel as several
fragments under the writers' lock; the core cannot yet suspend a message half-way and
resume it later without blocking, and giving up half-way would make readers drop it.
So those puts alone run the blocking ``Writer.put`` in the loop's default executor:
the loop is never blocked and no message is ever left half-written.  A large put that
has started completes even if the task awaiting it is cancelled.
"""

from __future__ import annotations

import asyncio
import os
import select
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._backend import core as _core
from ._endpoints import classes_for
from ._errors import (
    ClosedError,
    CorruptStreamError,
    Empty,
    Full,
    MessageTooLargeError,
    linger_timeout,
    not_bytes_error,
    report_loss,
)
from ._open import Backoff, bytes_waiting, check_timeout, room_for

__all__ = ["Queue", "Reader", "Writer", "open_writer"]

if TYPE_CHECKING:
    from typing_extensions import Buffer, Unpack

    from . import _endpoints
    from . import queues as _queues
    from .queues import T as Item  # a Queue's items (defaults to Any)
else:
    Item = TypeVar("Item")

T = TypeVar("T")

_SyncWriter, _SyncReader = classes_for(_core)

#: A shared reader that waits re-checks this often, so a large message whose writer
#: died half-way is dropped (and the readers' lock released) as the blocking get does.
SHARED_TICK = 0.1
#: Seconds between retries of a stop_at_eof Reader on macOS, where kqueue misses the end
#: of the stream (docs/guide.md, macOS limits).
EOF_TICK = 0.05
#: Backoff bounds while the FIFO is readable but another reader holds the claim lock.
_BACKOFF_MIN, _BACKOFF_MAX = 0.0005, 0.02


def _is_path(source: Any) -> bool:
    return isinstance(source, (str, bytes, os.PathLike))


def _readable(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


def _nbytes(data: Any) -> int:
    """A message's size in bytes (``len()`` counts items: an array of ints is 4x longer)."""
    if type(data) is bytes:
        return len(data)
    try:
        with memoryview(data) as view:
            return view.nbytes
    except TypeError:
        raise not_bytes_error("aio.Writer", data) from None


class _Waiters:
    """Tasks waiting for a descriptor to be readable, woken one at a time in FIFO order."""

    def __init__(self, fd: int, tick: float | None) -> None:
        self.fd = fd
        self.tick = tick
        self.queue: deque[asyncio.Future[None]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.armed = False
        self.timer: asyncio.TimerHandle | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is not loop:
            if self.queue or self.armed:
                raise RuntimeError("a fastfifo.aio endpoint is in use by another event loop")
            self.loop = loop

    def add(self, fut: asyncio.Future[None], front: bool) -> None:
        if front:
            self.queue.appendleft(fut)
        else:
            self.queue.append(fut)

    def arm(self, delay: float = 0.0) -> None:
        """Watch the descriptor (after ``delay`` seconds) if anyone waits."""
        if not self.queue or self.armed or self.timer is not None or self.loop is None:
            return
        if delay > 0:
            self.timer = self.loop.call_later(delay, self._delayed)
            return
        self.loop.add_reader(self.fd, self.fire)
        self.armed = True
        if self.tick is not None:
            self.timer = self.loop.call_later(self.tick, self.fire)

    def _delayed(self) -> None:
        self.timer = None
        self.arm()

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.armed and self.loop is not None:
            self.armed = False
            self.loop.remove_reader(self.fd)

    def fire(self) -> None:
        """The descriptor is ready (or the tick elapsed): wake the first waiter."""
        self.disarm()
        self.wake_one()

    def wake_one(self) -> None:
        while self.queue:
            fut = self.queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def abandon(self, fut: asyncio.Future[None]) -> None:
        """A waiter leaves (cancelled): if it had been woken, pass its turn on."""
        try:
            self.queue.remove(fut)
        except ValueError:
            self.wake_one()  # it was woken and will not use its turn
        if not self.queue:
            self.disarm()

    def wake_all(self) -> None:
        self.disarm()
        while self.queue:
            fut = self.queue.popleft()
            if not fut.done():
                fut.set_result(None)


class _Receiver:
    """Tasks receiving through ``take()`` (which raises ``Empty`` when there is nothing):
    they try, then wait in FIFO order for the descriptor to be readable and try again,
    backing off while it stays readable yet yields nothing (another reader is claiming)."""

    def __init__(self, fd: int, tick: float | None) -> None:
        self.fd = fd
        self.waiters = _Waiters(fd, tick)
        self.backoff = 0.0

    async def receive(self, take: Callable[[], T]) -> T:
        waiters = self.waiters
        if not waiters.queue:
            try:
                return take()
            except Empty:
                pass
        loop = asyncio.get_running_loop()
        waiters.bind(loop)
        front, delay = False, 0.0
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            waiters.add(fut, front)
            waiters.arm(delay)
            try:
                await fut
            except BaseException:
                waiters.abandon(fut)
                raise
            # Our turn: whatever happens next, the turn passes on to the next waiter.
            try:
                result = take()
            except Empty:
                # Someone else got there first.  If the pipe is still readable another
                # reader holds the claim lock: back off instead of spinning on it.
                if _readable(self.fd):
                    self.backoff = min(max(self.backoff * 2, _BACKOFF_MIN), _BACKOFF_MAX)
                    delay = self.backoff
                else:
                    delay = 0.0
                front = True
                continue
            except BaseException:
                waiters.wake_one()
                raise
            self.backoff = 0.0
            if waiters.queue:
                waiters.wake_one()  # there may be more: let the next waiter try at once
            return result

    def close(self) -> None:
        """Wake every waiting task (each then finds its source closed)."""
        self.waiters.disarm()
        self.waiters.wake_all()


class _Endpoint:
    """What Reader and Writer share: the blocking endpoint they wrap (``_sync``) and its fd."""

    def __init__(
        self, source: Any, options: dict[str, Any], opener: Callable[..., Any], kind: str
    ) -> None:
        if _is_path(source):
            self._sync: Any = opener(source, **options)
        elif options:
            raise TypeError(f"options are for opening a path; pass an open {kind} alone")
        else:
            self._sync = source
        self._fd: int = self._sync.fileno()

    @property
    def path(self) -> str:
        return str(self._sync.path)

    @property
    def closed(self) -> bool:
        return bool(self._sync.closed)

    def fileno(self) -> int:
        return self._fd


class Reader(_Endpoint):
    """Receive whole messages from a FIFO in asyncio code.

    ``Reader(path, **options)`` opens a ``fastfifo.Reader`` with those options
    (``shared=True`` for several reader processes); ``Reader(reader)`` wraps one
    you opened.  Use it from one event loop.  ``get``/``get_many`` raise what the
    blocking ones raise (``EOFError`` with ``stop_at_eof=True``, ``ClosedError``,
    ``CorruptStreamError``...), never ``Empty``: time limits come from asyncio
    (``async with asyncio.timeout(1): msg = await r.get()``).
    """

    def __init__(self, source: str | os.PathLike[str] | _endpoints.Reader, **options: Any) -> None:
        super().__init__(source, options, _SyncReader, "Reader")
        shared = bool(getattr(self._sync, "shared", False))
        # A stop_at_eof Reader that waits in select() (macOS) also retries on a tick: the
        # event loop (kqueue there) never says that the last writer left; select() does.
        eof_tick = EOF_TICK if self._sync._waits_in_select else None
        self._receiver = _Receiver(self._fd, SHARED_TICK if shared else eof_tick)

    @property
    def reader(self) -> _endpoints.Reader:
        """The underlying blocking ``fastfifo.Reader``."""
        sync: _endpoints.Reader = self._sync
        return sync

    def get_nowait(self) -> bytes:
        """The next message if one is waiting, else ``fastfifo.Empty``."""
        msg: bytes = self._sync.get(0)
        return msg

    def get_many_nowait(self, max_messages: int = 1000) -> list[bytes]:
        """1 to ``max_messages`` messages if any are waiting, else ``fastfifo.Empty``."""
        msgs: list[bytes] = self._sync.get_many(max_messages, 0)
        return msgs

    async def get(self) -> bytes:
        """Wait for the next message and return it (bytes)."""
        return await self._receiver.receive(self.get_nowait)

    async def get_many(self, max_messages: int = 1000) -> list[bytes]:
        """Wait until a message is available; return 1 to ``max_messages`` of them."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        return await self._receiver.receive(lambda: self.get_many_nowait(max_messages))

    def __aiter__(self) -> Reader:
        return self

    async def __anext__(self) -> bytes:
        """The next message; as iterating a ``fastfifo.Reader``, bad input (bytes that are
        not messages, a message too large to keep) is skipped and logged, not raised."""
        while True:
            try:
                return await self.get()
            except (EOFError, ClosedError):
                raise StopAsyncIteration from None
            except (CorruptStreamError, MessageTooLargeError) as e:
                report_loss(str(e))

    def close(self) -> None:
        """Close the Reader; waiting ``get`` calls raise ``ClosedError``."""
        self._receiver.waiters.disarm()
        self._sync.close()
        self._receiver.close()

    async def __aenter__(self) -> Reader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<fastfifo.aio.Reader {self._sync!r}>"


class _Pending:
    """A message in the Writer's backlog; ``fut`` (shared by a batch) is set after its last."""

    __slots__ = ("data", "fut", "last", "size")

    def __init__(self, data: Any, size: int, fut: asyncio.Future[None] | None, last: bool) -> None:
        self.data, self.size, self.fut, self.last = data, size, fut, last


class Writer(_Endpoint):
    """Send whole messages into a FIFO from asyncio code.

    ``Writer(path, **options)`` opens a ``fastfifo.Writer`` (``open_timeout`` defaults
    to 0 here, so it never blocks the loop waiting for a reader: use ``await
    open_writer(...)`` to wait for one).  Like every Writer, it waits out another
    Writer's burst at open (microseconds, at most 1 s; docs/guide.md, "Large
    messages").  ``Writer(writer)`` wraps one you opened.

    Messages go into the pipe in the order they were given (``put``, ``put_many``
    and ``write`` share one ordered backlog).

    Parameters
    ----------
    high_water : int
        ``drain()`` waits while the backlog holds more than this many bytes
        (256 KiB), until it is down to ``low_water`` (a quarter of it).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | _endpoints.Writer,
        *,
        high_water: int = 256 * 1024,
        low_water: int | None = None,
        **options: Any,
    ) -> None:
        if _is_path(source):
            options.setdefault("open_timeout", 0)
        super().__init__(source, options, _SyncWriter, "Writer")
        self._atomic: int = self._sync.max_atomic_message
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self._pending: deque[_Pending] = deque()
        self._backlog = 0
        self._inflight: _Pending | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._armed = False
        self._drainers: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def writer(self) -> _endpoints.Writer:
        """The underlying blocking ``fastfifo.Writer``."""
        sync: _endpoints.Writer = self._sync
        return sync

    @property
    def backlog(self) -> int:
        """Bytes accepted by ``write``/``put`` and not yet in the pipe."""
        return self._backlog

    @property
    def max_atomic_message(self) -> int:
        return self._atomic

    # ------------------------------------------------------------ sending

    def put_nowait(self, data: Buffer) -> None:
        """Send now or raise ``fastfifo.Full`` (nothing sent); never waits.

        Also ``Full`` while earlier messages wait in the backlog (they go first).
        A message above ``max_atomic_message`` is only attempted when the pipe has
        room for all of it; a writer racing for that room can still make the core
        give up part-way (``Full``; readers drop the part with a warning).
        """
        self._check()
        if self._pending or self._inflight is not None:
            raise Full(f"{self.path!r}: earlier messages are still waiting to be sent", 0)
        size = _nbytes(data)
        if size > self._atomic and not room_for(self._fd, size, self._atomic):
            raise Full(f"{self.path!r}: no room for a {size}-byte message now", 0)
        self._sync.put(data, 0)

    async def put(self, data: Buffer) -> None:
        """Send one message, waiting (without blocking the loop) while the pipe is full.

        Returns once the message is in the pipe.  If the call is cancelled while
        it waits, the message is not sent (unless it is a large message whose
        sending had started: that one completes).
        """
        self._check()
        size = _nbytes(data)
        if self._put_now(data, size):
            return
        fut = self._bind().create_future()
        self._enqueue([(data, size)], fut)
        await self._await_sent(fut)

    async def put_many(self, messages: Iterable[Buffer]) -> None:
        """Send several messages in order, packed into few atomic writes.

        If cancelled, the messages not yet written are withdrawn (a prefix may have
        been sent).
        """
        self._check()
        items = [(m, _nbytes(m)) for m in messages]
        if not items:
            return
        if (
            not self._pending
            and self._inflight is None
            and all(s <= self._atomic for _, s in items)
        ):
            try:
                self._sync.put_many([m for m, _ in items], 0)
                return
            except Full as e:
                items = items[e.sent :]
        fut = self._bind().create_future()
        self._enqueue(items, fut)
        await self._await_sent(fut)

    def write(self, data: Buffer) -> None:
        """Send ``data`` now if possible, else add it to the backlog; never waits.

        Pair with ``await drain()``.  Errors from sending the backlog (say
        ``BrokenPipeError``) are raised by the next ``write``/``drain``/``put``.
        """
        self._check()
        size = _nbytes(data)
        if self._put_now(data, size):
            return
        self._bind()
        self._enqueue([(data, size)], None)

    def write_many(self, messages: Iterable[Buffer]) -> None:
        """``write`` for several messages (packed into few atomic writes)."""
        self._check()
        items = [(m, _nbytes(m)) for m in messages]
        if not items:
            return
        self._bind()
        self._enqueue(items, None)

    async def drain(self) -> None:
        """Wait while the backlog is above ``high_water`` (until it is at ``low_water``)."""
        self._check()
        if self._backlog > self.high_water:
            await self._wait_backlog(self.low_water)
            self._check()

    async def flush(self) -> None:
        """Wait until the whole backlog (and any large message in flight) is in the pipe."""
        self._check()
        if self._backlog:
            await self._wait_backlog(0)
            self._check()

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Close now, without lingering (that would block the loop).  Messages still in
        the backlog are not sent (their ``put`` raises ``ClosedError``); a large message
        in flight is cut (readers drop it and log it).  ``await aclose()`` sends
        everything first, and lingers."""
        self._disarm()
        if not self._sync.closed:
            self._sync.linger = 0
        self._sync.close()
        if self._error is None:
            self._error = ClosedError(f"Writer for {self.path!r} is closed")
        self._fail_pending(self._error)

    async def aclose(self) -> None:
        """Send the backlog, linger if the Writer was opened with ``linger`` (waiting in
        the loop, so that readers in this loop can take what is left), then close.

        A linger that runs out raises ``TimeoutError`` (closed all the same), as
        ``fastfifo.Writer.close()`` does.
        """
        try:
            if not self.closed and self._error is None:
                await self.flush()
                await self._linger()
        finally:
            self.close()

    async def _linger(self) -> None:
        """``fastfifo.Writer``'s linger, polled with ``asyncio.sleep`` instead of blocking."""
        limit = self._sync.linger
        if limit == 0:
            return
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        backoff = Backoff(0.001, 0.05)  # no event says "the pipe is empty": poll it
        while not self._sync.closed:  # close() from another task ends the wait
            left = bytes_waiting(self._sync.fileno())
            if left == 0:
                return
            now = loop.time()
            if limit is not None and deadline is not None and now >= deadline:
                raise linger_timeout(self.path, left, limit)
            await asyncio.sleep(backoff.next(None if deadline is None else deadline - now))

    async def __aenter__(self) -> Writer:
        return self

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<fastfifo.aio.Writer {self._sync!r} backlog={self._backlog}>"

    # ------------------------------------------------------------ internals

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._sync.closed:
            raise ClosedError(f"Writer for {self.path!r} is closed")

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._pending or self._inflight is not None or self._armed:
                raise RuntimeError("a fastfifo.aio.Writer is in use by another event loop")
            self._loop = loop
        return loop

    def _put_now(self, data: Any, size: int) -> bool:
        """Write a small message at once if nothing waits before it and the pipe has room."""
        if self._pending or self._inflight is not None or size > self._atomic:
            return False
        try:
            self._sync.put(data, 0)
        except Full:
            return False
        return True

    def _enqueue(self, items: list[tuple[Any, int]], fut: asyncio.Future[None] | None) -> None:
        last = len(items) - 1
        for i, (data, size) in enumerate(items):
            self._pending.append(_Pending(data, size, fut, i == last))
            self._backlog += size
        if not self._armed and self._inflight is None:
            self._flush()  # else the loop flushes when the pipe has room (never O(backlog) here)

    async def _await_sent(self, fut: asyncio.Future[None]) -> None:
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done() or fut.cancelled():
                self._withdraw(fut)
            raise

    def _withdraw(self, fut: asyncio.Future[None]) -> None:
        """Drop the not-yet-written messages of a cancelled ``put``/``put_many``."""
        keep: deque[_Pending] = deque()
        for item in self._pending:
            if item.fut is fut:
                self._backlog -= item.size
            else:
                keep.append(item)
        self._pending = keep
        self._notify_drainers()
        if not self._pending:
            self._disarm()

    def _flush(self) -> None:
        """Write as much of the backlog as the pipe takes now; watch the fd for the rest."""
        pending = self._pending
        atomic = self._atomic
        while pending and self._inflight is None:
            head = pending[0]
            if head.size > atomic:
                self._start_large(pending.popleft())
                break
            batch: list[_Pending] = []
            for item in pending:
                if item.size > atomic or len(batch) >= 1024:
                    break
                batch.append(item)
            sent = len(batch)
            try:
                self._sync.put_many([it.data for it in batch], 0)
            except Full as e:
                sent = e.sent
            except BaseException as e:
                self._fail(e)
                return
            for _ in range(sent):
                self._sent(pending.popleft())
            if sent < len(batch):
                self._arm()
                self._notify_drainers()
                return
        if not pending:
            self._disarm()
        self._notify_drainers()

    def _sent(self, item: _Pending) -> None:
        self._backlog -= item.size
        if item.last and item.fut is not None and not item.fut.done():
            item.fut.set_result(None)

    def _start_large(self, item: _Pending) -> None:
        assert self._loop is not None
        self._disarm()
        self._inflight = item
        done = self._loop.run_in_executor(None, self._sync.put, item.data, None)
        done.add_done_callback(lambda f: self._large_done(item, f))

    def _large_done(self, item: _Pending, f: asyncio.Future[None]) -> None:
        self._inflight = None
        exc = None if f.cancelled() else f.exception()
        if exc is not None:
            self._backlog -= item.size
            if item.fut is not None and not item.fut.done():
                item.fut.set_exception(exc)
            self._fail(exc)
            return
        self._sent(item)
        self._flush()

    def _arm(self) -> None:
        if not self._armed and self._loop is not None:
            self._loop.add_writer(self._fd, self._flush)
            self._armed = True

    def _disarm(self) -> None:
        if self._armed and self._loop is not None:
            self._armed = False
            self._loop.remove_writer(self._fd)

    def _fail(self, exc: BaseException) -> None:
        self._disarm()
        if self._error is None:
            self._error = exc
        self._fail_pending(exc)

    def _fail_pending(self, exc: BaseException) -> None:
        for item in self._pending:
            if item.fut is not None and not item.fut.done():
                item.fut.set_exception(exc)
        self._pending.clear()
        self._backlog = self._inflight.size if self._inflight is not None else 0
        self._notify_drainers()

    async def _wait_backlog(self, level: int) -> None:
        fut = self._bind().create_future()
        self._drainers.append((level, fut))
        self._notify_drainers()
        try:
            await fut
        finally:
            self._drainers = [(lv, f) for lv, f in self._drainers if f is not fut]

    def _notify_drainers(self) -> None:
        if not self._drainers:
            return
        failed = self._error is not None
        for level, fut in self._drainers:
            if not fut.done() and (
                failed or (self._backlog <= level and (level or self._inflight is None))
            ):
                fut.set_result(None)


async def open_writer(
    path: str | os.PathLike[str],
    *,
    open_timeout: float | None = None,
    **options: Unpack[_endpoints.WriterOptions],
) -> Writer:
    """Open an asyncio Writer, waiting (without blocking the loop) for a reader.

    ``open_timeout``: None waits for ever; otherwise ``TimeoutError`` after that many
    seconds.  Other options are ``fastfifo.Writer``'s.
    """
    loop = asyncio.get_running_loop()
    wait = check_timeout(open_timeout, "open_timeout", os.fspath(path))
    deadline = None if wait is None else loop.time() + wait
    backoff = Backoff(0.001, 0.05)
    while True:
        try:
            return Writer(path, open_timeout=0, **options)
        except TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                raise
        # No readiness event exists for "a reader opened the FIFO": poll with a backoff.
        await asyncio.sleep(backoff.next(None if deadline is None else deadline - loop.time()))


class Queue(Generic[Item]):
    """asyncio access to a ``fastfifo.Queue`` (objects, pickled as its ``put`` pickles them).

    ``Queue(queue)`` wraps a ``fastfifo.Queue`` (which can also be used, or passed to
    worker processes, as usual); ``Queue(path=None, **options)`` makes one.

    It uses only the queue's non-blocking calls (``get_nowait``, ``get_many_nowait``,
    ``put_nowait``, ``put_many_nowait``) and ``fileno()``: a get that finds nothing waits
    for the loop to see that descriptor readable, then tries again (as ``Reader``).
    Without ``maxsize`` a put never waits (the queue's feeder thread holds what the pipe
    has no room for); with it, ``put`` retries with a 1-20 ms backoff while the queue is
    full, because no event says that a consumer took an object.
    """

    def __init__(
        self, queue: _queues.Queue[Item] | str | os.PathLike[str] | None = None, **options: Any
    ) -> None:
        from .queues import Queue as SyncQueue

        if queue is None or isinstance(queue, (str, bytes, os.PathLike)):
            queue = SyncQueue(queue, **options)
        elif options:
            raise TypeError("options are for making a Queue; pass an open Queue alone")
        self._queue: _queues.Queue[Item] = queue
        self._receiver: _Receiver | None = None

    @property
    def queue(self) -> _queues.Queue[Item]:
        """The underlying ``fastfifo.Queue``."""
        return self._queue

    def _recv(self) -> _Receiver:
        r = self._receiver
        if r is None:
            r = self._receiver = _Receiver(self._queue.fileno(), SHARED_TICK)
        return r

    async def put(self, obj: Item) -> None:
        """Put ``obj`` (pickling errors are raised here); with ``maxsize``, wait while full."""
        q = self._queue
        delay = 0.001
        while True:
            try:
                q.put_nowait(obj)
                return
            except Full:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)

    def put_nowait(self, obj: Item) -> None:
        """Put now; ``fastfifo.Full`` only with ``maxsize``, when the queue is full."""
        self._queue.put_nowait(obj)

    async def put_many(self, objs: Iterable[Item]) -> None:
        """Put several objects in order; with ``maxsize``, wait for room for the rest."""
        items = list(objs)
        q = self._queue
        delay = 0.001
        while items:
            try:
                q.put_many_nowait(items)
                return
            except Full as e:
                items = items[e.sent :]
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)

    async def get(self) -> Item:
        """Wait for the next object and return it."""
        return await self._recv().receive(self._queue.get_nowait)

    def get_nowait(self) -> Item:
        """The next object if one is waiting, else ``fastfifo.Empty``."""
        return self._queue.get_nowait()

    async def get_many(self, max_messages: int = 1000) -> list[Item]:
        """Wait until an object is available; return 1 to ``max_messages`` of them."""
        q = self._queue
        if max_messages < 1:  # (checked here too: get_many_nowait would say it only later)
            raise ValueError(f"{q!r}: max_messages must be >= 1, not {max_messages}")
        return await self._recv().receive(lambda: q.get_many_nowait(max_messages))

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    def full(self) -> bool:
        return self._queue.full()

    def __aiter__(self) -> Queue[Item]:
        return self

    async def __anext__(self) -> Item:
        try:
            return await self.get()
        except ClosedError:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the queue in this process, then wait (without blocking the loop) until
        the objects this process put are all in the pipe (``join_thread()``)."""
        self.close()
        await asyncio.get_running_loop().run_in_executor(None, self._queue.join_thread)

    def close(self) -> None:
        """Close the queue in this process; waiting ``get``/``put`` calls raise ``ClosedError``."""
        self._queue.close()
        if self._receiver is not None:
            self._receiver.close()
