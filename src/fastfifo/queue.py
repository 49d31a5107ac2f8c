"""``fastfifo.Queue``: a ``multiprocessing.Queue`` work-alike over a FIFO.

The queue is a FIFO path plus policy: objects are pickled in the caller (so a
pickling error is raised by ``put``, never lost in a feeder thread), written with
the core's atomic (or, above ``max_atomic_message``, locked-fragment) writes, and
read by a *shared* Reader, so any number of consumer processes take each message
exactly once.  There is no background thread: ``put`` returns once the message is
in the kernel's pipe.

Lifetimes
---------
* ``Queue()`` makes a FIFO in a fresh 0700 directory (``tempfile.mkdtemp``); the
  directory is removed when the creating Queue is garbage-collected, or at exit
  after ``multiprocessing`` has joined its children (``multiprocessing.util.Finalize``
  with a negative exit priority: a plain ``weakref.finalize`` would run first and pull
  the path from under children that have not opened it yet).
* Every Queue object holds one ``O_RDWR`` descriptor on the FIFO (the *anchor*): it
  keeps the pipe, and the messages in it, alive while any process uses the queue,
  lets writers open at once, and serves ``empty()``/``full()``/``qsize()``.
* Pickled (process arguments under spawn/forkserver, ``Pool`` tasks, even through
  another Queue), a Queue travels as its path and options.  When pickled to start a
  process, the anchor itself is passed to the child as ``multiprocessing`` passes its
  own pipes, so the queue's contents survive even if the parent closes it at once.
* Under fork, the child's copy reopens its endpoints on first use (a Reader or Writer
  must never be shared by two processes).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pickle
import select
import shutil
import struct
import tempfile
import termios
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from multiprocessing import context as _mp_context
from multiprocessing import reduction as _mp_reduction
from multiprocessing import util as _mp_util
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, overload

from . import _core_py
from ._backend import core as _default_core
from ._endpoints import DEFAULT_MAX_MESSAGE_SIZE, classes_for
from ._errors import ClosedError, Full
from ._open import DEFAULT_PIPE_SIZE, mkfifo, open_fifo, pipe_capacity, set_pipe_size

if TYPE_CHECKING:  # T defaults to Any (PEP 696): an unannotated Queue() is a Queue[Any]
    from typing_extensions import TypeVar

    T = TypeVar("T", default=Any)
else:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["Queue"]

#: Frames can be counted by peeking at the pipe (tee) here; elsewhere qsize() is refused.
CAN_PEEK: bool = _core_py.HAVE_TEE

_HEADER = struct.Struct("<BBHI")  # magic, flags, check, length (docs/PROTOCOL.md)
_MAGIC = 0xFA
_FRAME_OVERHEAD = 8
_KIND_WHOLE, _KIND_LAST = 0, 3
_FIONREAD = getattr(termios, "FIONREAD", 0x541B)


def _default_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


def _core_for(name: str | None) -> ModuleType:
    if name is None:
        return _default_core
    if name == "python":
        return _core_py
    if name == "cython":
        from . import _core

        compiled: ModuleType = _core
        return compiled
    raise ValueError(f"backend must be 'cython' or 'python', not {name!r}")


def _close_fds(fds: list[int]) -> None:
    """Close every fd in ``fds`` (a list shared with the Queue) and mark them closed."""
    for i, fd in enumerate(fds):
        if fd >= 0:
            fds[i] = -1
            try:
                os.close(fd)
            except OSError:
                pass


def _remove_private_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class _Options(NamedTuple):
    """What a Queue is made with: all that travels when it is pickled (but the anchor)."""

    path: str
    maxsize: int
    dumps: Callable[[Any], Any] | None
    loads: Callable[[bytes], Any] | None
    raw: bool
    max_message_size: int
    pipe_size: int | None
    strict_permissions: bool
    backend: str | None


# Queues alive in this process, so that a fork() child drops what it must not share.
_live_queues: weakref.WeakSet[Queue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for q in list(_live_queues):
        q._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Queue(Generic[T]):
    """A process-safe FIFO queue of Python objects, like ``multiprocessing.Queue``.

    Parameters
    ----------
    path : str, os.PathLike or None
        None (default): a private FIFO in a fresh 0700 temporary directory, removed
        when this Queue is garbage-collected or its process exits.  A path: the FIFO
        to use, created (mode 0600) if missing and never removed by fastfifo, so
        unrelated processes can share the queue by naming the same path.
    maxsize : int
        0 or less (default 0): no item limit; ``put`` waits only while the pipe itself is full
        (``pipe_size`` bytes, 1 MiB by default).  > 0: ``put`` also waits while the
        queue holds ``maxsize`` messages or more, counted by peeking at the pipe (see
        ``qsize``).  The count is checked before each write, so with several
        producers the queue can exceed ``maxsize`` by up to one message per
        concurrent producer.
    dumps, loads : callable, optional
        Serialisers (default: ``pickle`` at the highest protocol).  ``dumps`` must
        return a bytes-like object.  Pass module-level functions: they travel with
        the Queue to child processes.
    raw : bool
        Send and receive bytes as they are (no serialiser): ``put`` takes a
        bytes-like object, ``get`` returns ``bytes``.  Type checkers see
        ``Queue(raw=True)`` as a ``Queue[bytes]`` and refuse ``dumps``/``loads`` with it.
    max_message_size : int
        Largest serialised message (64 MiB default).  Messages above
        ``max_atomic_message`` (4088 bytes on Linux) travel as fragments under the
        writers' lock and are reassembled whole.
    pipe_size : int or None
        Pipe capacity to ask the kernel for (Linux; 1 MiB default).
    strict_permissions : bool
        Refuse a FIFO owned by another user or writable by group/others.
    create : bool
        Create the FIFO at ``path`` if it does not exist (default True).

    Unlike ``multiprocessing.Queue``: ``put`` is synchronous (no feeder thread, so
    nothing is buffered in the process and ``join_thread`` has nothing to wait
    for); a Queue can be pickled anywhere (``Pool`` tasks, other queues), not only
    when a process starts; and with ``maxsize=0`` the queue is bounded by the pipe
    (``put`` blocks when 1 MiB of messages are waiting) rather than unbounded.
    """

    # For type checkers: Queue(raw=True) is a Queue[bytes]; dumps/loads only without raw.
    @overload
    def __init__(
        self: Queue[bytes],
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        raw: Literal[True],
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
        _backend: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        dumps: Callable[[Any], Any] | None = None,
        loads: Callable[[bytes], Any] | None = None,
        raw: Literal[False] = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
        _backend: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        raw: bool,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
        _backend: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        dumps: Callable[[Any], Any] | None = None,
        loads: Callable[[bytes], Any] | None = None,
        raw: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
        _backend: str | None = None,
    ) -> None:
        if isinstance(path, int):  # multiprocessing.Queue(10) means maxsize=10
            raise TypeError(
                f"the first argument of fastfifo.Queue is the FIFO path, not maxsize; "
                f"write fastfifo.Queue(maxsize={path})"
            )
        if not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {maxsize!r}")
        maxsize = max(maxsize, 0)  # as multiprocessing: 0 or less means no item limit
        if raw and (dumps is not None or loads is not None):
            raise ValueError("raw=True sends bytes as they are; do not pass dumps/loads too")
        directory = None
        if path is None:
            directory = tempfile.mkdtemp(prefix="fastfifo-queue-")  # mode 0700
            p = os.path.join(directory, "queue")
            try:
                mkfifo(p, 0o600, exist_ok=False)
            except BaseException:
                _remove_private_dir(directory)
                raise
        else:
            p = os.fspath(path)
            if create:
                mkfifo(p, 0o600, exist_ok=True)
        options = _Options(
            path=p,
            maxsize=maxsize,
            dumps=dumps,
            loads=loads,
            raw=raw,
            max_message_size=max_message_size,
            pipe_size=pipe_size,
            strict_permissions=strict_permissions,
            backend=_backend,
        )
        try:
            self._setup(options, anchor=-1)
        except BaseException:
            if directory is not None:
                _remove_private_dir(directory)
            raise
        self._directory: str | None = directory
        if directory is not None:
            # Runs when this Queue is collected, or at exit *after* multiprocessing
            # has joined its children; never in another process (it checks the pid).
            _mp_util.Finalize(self, _remove_private_dir, (directory,), exitpriority=-100)

    def _setup(self, options: _Options, anchor: int) -> None:
        self._options = options
        self._path = path = options.path
        self._maxsize = options.maxsize
        raw, dumps, loads = options.raw, options.dumps, options.loads
        self._dumps: Callable[[Any], Any] | None = (
            None if raw else (dumps if dumps is not None else _default_dumps)
        )
        self._loads: Callable[[bytes], Any] | None = (
            None if raw else (loads if loads is not None else pickle.loads)
        )
        self._writer_cls, self._reader_cls = classes_for(_core_for(options.backend))
        self._directory = None
        self._writer: Any = None
        self._reader: Any = None
        self._closed = False
        self._opening = threading.Lock()
        self._closing = threading.Event()  # wakes a put waiting for room under maxsize
        self._stash: list[bytes] = []  # undecoded messages left by a failed loads()
        self._stash_error: BaseException | None = None
        self._put_bytes = self._put_count = 0  # for the estimate where peeking is impossible
        # fds[0]: the anchor (O_RDWR on the FIFO); fds[1:3]: the private peek pipe.
        if anchor < 0:
            anchor = open_fifo(path, os.O_RDWR, strict_permissions=options.strict_permissions)
            try:
                set_pipe_size(anchor, options.pipe_size)
            except BaseException:
                os.close(anchor)
                raise
        self._fds = [anchor, -1, -1]
        weakref.finalize(self, _close_fds, self._fds).atexit = False
        _live_queues.add(self)

    # ------------------------------------------------------------ pickling and fork

    def __reduce__(self) -> tuple[Any, ...]:
        if self._closed:
            raise ValueError(f"cannot send a closed Queue ({self._path!r}) to another process")
        anchor: Any = None
        if _mp_context.get_spawning_popen() is not None:
            # Starting a process (spawn/forkserver): hand it the anchor the way
            # multiprocessing hands over its own pipes, so the pipe's contents are
            # alive in the child from its first instruction.
            anchor = _mp_reduction.DupFd(self._fds[0])
        return (_rebuild, (self._options, anchor))

    def _after_fork(self) -> None:
        """In a fork() child: endpoints are reopened on first use; the anchor is kept.

        The inherited endpoints are dropped, not closed: close() would write to their
        wake-up pipes, which the parent's copies share (see the report on issue 5), and
        their descriptors go when the objects do.  A Writer must not be shared: two
        processes on one open file description also share its large-message lock.
        """
        self._writer = self._reader = None
        self._opening = threading.Lock()
        self._closing = threading.Event()
        if self._closed:
            self._closing.set()
        # The peek pipe is private to one process: tee()s from two would mix.
        self._drop_peek_pipe()  # closes the child's copies only

    def _drop_peek_pipe(self) -> None:
        fds = self._fds[1:3]
        self._fds[1] = self._fds[2] = -1
        _close_fds(fds)

    # ------------------------------------------------------------ endpoints

    def _open_writer(self) -> Any:
        with self._opening:
            self._check_open()
            if self._writer is None:
                o = self._options
                # Our own anchor is a reader, so the open never waits.
                self._writer = self._writer_cls(
                    self._path,
                    open_timeout=0,
                    max_message_size=o.max_message_size,
                    pipe_size=o.pipe_size,
                    strict_permissions=o.strict_permissions,
                )
            return self._writer

    def _open_reader(self) -> Any:
        with self._opening:
            self._check_open()
            if self._reader is None:
                o = self._options
                self._reader = self._reader_cls(
                    self._path,
                    shared=True,
                    max_message_size=o.max_message_size,
                    pipe_size=o.pipe_size,
                    strict_permissions=o.strict_permissions,
                )
            return self._reader

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"Queue {self._path!r} is closed")

    # ------------------------------------------------------------ put

    def put(self, obj: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue.

        ``block=True, timeout=None`` waits as long as the queue is full; a timeout
        waits at most that many seconds; ``block=False`` never waits.  The object
        is serialised here, so a pickling error is raised to the caller, and the
        message is in the pipe when ``put`` returns.

        Raises ``queue.Full`` (``fastfifo.Full``) if there was no room in time, and
        ``ValueError`` (``fastfifo.ClosedError``) if the queue was closed.
        """
        if self._closed:
            self._check_open()
        dumps = self._dumps
        data: Any = obj if dumps is None else dumps(obj)  # raw=True: obj is bytes-like
        w = self._writer or self._open_writer()
        t = timeout if block else 0.0
        if self._maxsize:
            if not CAN_PEEK:
                self._note_size(data)
            t = self._wait_room(1, t, timeout)
        if not block:
            n = data.nbytes if isinstance(data, memoryview) else len(data)
            if n > w.max_atomic_message:
                self._check_room_for_large(n)
        w.put(data, t)

    def put_nowait(self, obj: T) -> None:
        """``put(obj, block=False)``."""
        self.put(obj, False)

    def put_many(self, objs: Iterable[T], block: bool = True, timeout: float | None = None) -> None:
        """Put several objects, packed into as few atomic writes as possible.

        Every object is serialised before anything is written.  On ``Full``,
        ``exc.sent`` objects (a prefix) were put and the rest were not.
        """
        if self._closed:
            self._check_open()
        dumps = self._dumps
        items = list(objs) if dumps is None else [dumps(o) for o in objs]
        if not items:
            return
        w = self._writer or self._open_writer()
        t = timeout if block else 0.0
        if not self._maxsize:
            w.put_many(items, t)
            return
        sent = 0
        while sent < len(items):
            try:
                room = self._room(len(items) - sent)
                if room == 0:
                    t = self._wait_room(1, t, timeout)
                    room = max(1, self._room(len(items) - sent))
                w.put_many(items[sent : sent + room], t)
            except Full as e:
                raise Full(
                    f"{e} ({sent + e.sent} of {len(items)} objects were put)", sent + e.sent
                ) from None
            sent += room

    def put_many_nowait(self, objs: Iterable[T]) -> None:
        """``put_many(objs, block=False)``."""
        self.put_many(objs, False)

    # ------------------------------------------------------------ get

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an object from the queue.

        ``block=True, timeout=None`` waits for ever; a timeout waits at most that
        many seconds; ``block=False`` never waits.  Raises ``queue.Empty``
        (``fastfifo.Empty``) when nothing came in time, ``ValueError``
        (``fastfifo.ClosedError``) if the queue was closed.
        """
        if self._closed:
            self._check_open()
        stashed = self._take_stashed(1)
        if stashed is not None:
            return stashed[0]
        r = self._reader or self._open_reader()
        data = r.get(timeout if block else 0.0)
        loads = self._loads
        obj: T = data if loads is None else loads(data)  # raw=True: T is bytes
        return obj

    def get_nowait(self) -> T:
        """``get(block=False)``."""
        return self.get(False)

    def get_many(
        self, block: bool = True, timeout: float | None = None, max_messages: int = 1000
    ) -> list[T]:
        """Remove and return 1 to ``max_messages`` objects (waits only while there are none).

        Each call claims at most ``max_messages`` from the pipe, so several
        consumers share the load.  If ``loads`` fails on one message, the objects
        before it are returned and the error is raised by the next call; the
        messages after it are kept and delivered after that.
        """
        if self._closed:
            self._check_open()
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        stashed = self._take_stashed(max_messages)
        if stashed is not None:
            return stashed
        r = self._reader or self._open_reader()
        return self._decode_many(r.get_many(max_messages, timeout if block else 0.0))

    def get_many_nowait(self, max_messages: int = 1000) -> list[T]:
        """``get_many(block=False, max_messages=max_messages)``."""
        return self.get_many(False, max_messages=max_messages)

    def _take_stashed(self, n: int) -> list[T] | None:
        """Up to ``n`` objects a failed ``loads`` left behind (its error first), else None.

        Every get path (this class's and fastfifo.aio.Queue's) asks here first.
        """
        if not self._stash and self._stash_error is None:
            return None
        err = self._stash_error
        if err is not None:
            self._stash_error = None
            raise err
        msgs, self._stash = self._stash[:n], self._stash[n:]
        return self._decode_many(msgs)

    def _decode_many(self, msgs: list[bytes]) -> list[T]:
        """Deserialise a batch; if one fails, keep the rest (in order) for the next call."""
        loads = self._loads
        if loads is None:
            raw: list[Any] = msgs  # raw=True: T is bytes
            return raw
        out: list[Any] = []
        append = out.append
        for i, m in enumerate(msgs):
            try:
                append(loads(m))
            except Exception as e:
                self._stash = msgs[i + 1 :] + self._stash
                if not out:
                    raise
                self._stash_error = e
                return out
        return out

    # ------------------------------------------------------------ state

    def qsize(self) -> int:
        """The number of messages in the pipe, not yet taken by any consumer.

        Counted by peeking at the pipe without consuming it (Linux ``tee()``); the
        cost grows with the bytes waiting (up to the pipe size, 1 MiB).  Like
        ``multiprocessing.Queue.qsize`` it is a snapshot that other processes make
        stale at once.  Raises ``NotImplementedError`` where the pipe cannot be
        peeked (macOS), as ``multiprocessing.Queue.qsize`` does there.
        """
        self._check_open()
        if not CAN_PEEK:
            raise NotImplementedError(
                "qsize() needs tee() to count the messages in a FIFO (Linux only); "
                "use empty() or a bounded get_many() instead"
            )
        return self._count(None)

    def empty(self) -> bool:
        """True if no message is waiting in the pipe (a snapshot, like ``multiprocessing``'s)."""
        self._check_open()
        return not self._poll(select.POLLIN)

    def full(self) -> bool:
        """True if a ``put`` would wait now.

        With ``maxsize``: the queue holds ``maxsize`` messages or more.  Always: the
        pipe has no room for another atomic write.
        """
        self._check_open()
        if self._maxsize and self._room(1) == 0:
            return True
        return not self._poll(select.POLLOUT)

    @property
    def maxsize(self) -> int:
        """The item limit given to the constructor (0: bounded by the pipe only)."""
        return self._maxsize

    @property
    def path(self) -> str:
        """The FIFO's path (another process can open the queue with ``Queue(path)``)."""
        return self._path

    def fileno(self) -> int:
        """A descriptor to *poll* (never read): readable when a message may be waiting."""
        self._check_open()
        return self._fds[0]

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the queue in this process (idempotent).

        Later calls raise ``ValueError`` (``fastfifo.ClosedError``); a ``get`` or
        ``put`` blocked in another thread is woken and raises it too.  Messages
        already put stay in the pipe for the other processes that have the queue
        open; when the last process closes it the kernel discards what is left.
        """
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for end in (self._writer, self._reader):
            if end is not None:
                end.close()
        self._writer = self._reader = None
        _close_fds(self._fds)

    def join_thread(self) -> None:
        """Nothing to wait for: ``put`` has written each message before it returned.

        As in ``multiprocessing``, it may only be called after ``close()``.
        """
        if not self._closed:
            raise AssertionError(f"Queue {self._path!r} not closed")

    def cancel_join_thread(self) -> None:
        """Nothing to cancel (there is no feeder thread); kept for compatibility."""

    def __enter__(self) -> Queue[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<fastfifo.Queue {self._path!r} maxsize={self._maxsize}{state}>"

    # ------------------------------------------------------------ internals

    def _poll(self, events: int) -> bool:
        p = select.poll()
        p.register(self._fds[0], events)
        return bool(p.poll(0))

    def _bytes_waiting(self) -> int:
        buf = fcntl.ioctl(self._fds[0], _FIONREAD, b"\0\0\0\0")
        n: int = struct.unpack("i", buf)[0]
        return n

    def _peek_pipe(self) -> tuple[int, int]:
        if self._fds[1] < 0:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            try:
                # As large as the FIFO, so one tee() sees all of it.
                set_pipe_size(w, pipe_capacity(self._fds[0]))
            except OSError:
                pass
            self._fds[1], self._fds[2] = r, w
        return self._fds[1], self._fds[2]

    def _count(self, limit: int | None) -> int:
        """Whole messages at the head of the pipe (at most ``limit``), without consuming any."""
        peek_r, peek_w = self._peek_pipe()
        try:
            n = _core_py._tee(self._fds[0], peek_w, 1 << 30)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return 0
            raise
        try:
            chunks = []
            got = 0
            while got < n:
                chunk = os.read(peek_r, n - got)
                chunks.append(chunk)
                got += len(chunk)
        except BaseException:
            self._drop_peek_pipe()  # never leave stale bytes for the next count
            raise
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        count = i = 0
        unpack = _HEADER.unpack_from
        stop = n - _FRAME_OVERHEAD
        while i <= stop:
            magic, flags, _check, length = unpack(buf, i)
            if magic != _MAGIC:
                break  # not ours (a foreign writer): count what we could parse
            i += _FRAME_OVERHEAD + length
            if i > n:
                break
            kind = flags & 3
            if kind in (_KIND_WHOLE, _KIND_LAST):
                count += 1
                if limit is not None and count >= limit:
                    break
        return count

    def _room(self, want: int) -> int:
        """How many of ``want`` messages fit under ``maxsize`` now (0 when full)."""
        maxsize = self._maxsize
        waiting = self._bytes_waiting()
        if waiting < _FRAME_OVERHEAD * (maxsize - want + 1):
            return want  # a frame is at least 8 bytes: fewer than maxsize - want + 1 wait
        if CAN_PEEK:
            count = self._count(maxsize)
        elif self._put_count:
            # No way to peek (macOS): estimate from the mean size of our own messages.
            count = waiting * self._put_count // self._put_bytes
        else:
            count = waiting // 64
        return max(0, min(want, maxsize - count))

    def _wait_room(self, want: int, t: float | None, timeout: float | None) -> float | None:
        """Wait until a message fits under ``maxsize``; return the time left for the write.

        There is no kernel event for "a consumer took a message", so this checks
        with a backoff from 0.5 ms to 10 ms (``close()`` from another thread wakes it).
        """
        deadline = None if t is None else time.monotonic() + t
        delay = 0.0005
        while self._room(want) == 0:
            if self._closed:
                self._check_open()
            if deadline is None:
                self._closing.wait(delay)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Full(
                        f"Queue {self._path!r} held maxsize={self._maxsize} messages "
                        f"for {timeout} s; nothing was put",
                        0,
                    )
                self._closing.wait(min(delay, left))
            delay = min(delay * 2, 0.01)
        if self._closed:
            self._check_open()
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _note_size(self, data: Any) -> None:
        self._put_count += 1
        self._put_bytes += len(data) + _FRAME_OVERHEAD

    def _check_room_for_large(self, size: int) -> None:
        """A non-blocking put of a fragmented message: refuse it up front if it cannot fit.

        The core gives up part-way when the pipe fills (readers then drop the part
        with an IncompleteMessageWarning); checking the free space first makes that
        rare (only a concurrent writer can still take the room meanwhile).
        """
        frames = size // 4000 + 2
        free = pipe_capacity(self._fds[0]) - self._bytes_waiting() - 4096
        if size + frames * (_FRAME_OVERHEAD + 8) > free:
            raise Full(
                f"Queue {self._path!r}: no room for a {size}-byte message now; nothing was put", 0
            )


def _rebuild(options: _Options, anchor: Any) -> Queue[Any]:
    """Unpickle a Queue in another process: same path and options, its own endpoints."""
    q: Queue[Any] = Queue.__new__(Queue)
    fd = -1
    if anchor is not None:
        fd = anchor.detach()
        os.set_inheritable(fd, False)
    try:
        q._setup(options, anchor=fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    return q
