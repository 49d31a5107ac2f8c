"""``fastfifo.Queue``: a ``multiprocessing.Queue`` work-alike over a FIFO.

A queue is a FIFO plus policy.  Each process that uses it has a ``_Channel``
(_queue_channel.py): one read-write descriptor of the FIFO, one private pipe, core
endpoints that close nothing, and a feeder thread started when the pipe is full.
Objects are pickled in the caller with multiprocessing's rules (_forking.py), so a
pickling error is raised by ``put``; with ``maxsize=0`` a put never waits, as
multiprocessing's.

The FIFO of a private queue (``Queue()``) has no name: it is unlinked as soon as it is
open, so the kernel frees it with the last descriptor and nothing is left in the
filesystem, even when the creator is killed.  Other processes get it as
multiprocessing passes its own pipes: inherited through ``fork()``, or as a descriptor
(``reduction.DupFd``) when the queue is pickled.  Each opens a description of its own
from that descriptor (``/proc/self/fd/N``) on first use, because shared readers must
not share one (their lock is per description).  Where there is no ``/proc`` (macOS)
the name is kept, and removed when the creating object goes.
"""

from __future__ import annotations

import errno
import os
import pickle
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable
from multiprocessing import context as _mp_context
from multiprocessing import reduction as _mp_reduction
from multiprocessing import util as _mp_util
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

from . import _queue_channel
from ._backend import core as _default_core
from ._errors import ClosedError, Full, MessageTooLargeError
from ._forking import forking_dumps, forking_dumps_many
from ._open import DEFAULT_PIPE_SIZE, bytes_waiting, mkfifo, open_fifo, set_pipe_size
from ._queue_channel import (
    Holder,
    _Channel,
    _Options,
    core_for,
    deadline_for,
    full_text,
    reopen,
)

if TYPE_CHECKING:  # T defaults to Any (PEP 696): an unannotated Queue() is a Queue[Any]
    from typing_extensions import TypeVar

    T = TypeVar("T", default=Any)
else:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["Queue"]

#: Messages can be counted by peeking at the pipe (tee) here; elsewhere (macOS) qsize()
#: is refused, as multiprocessing.Queue.qsize() is there, and maxsize is estimated.
CAN_PEEK: bool = _default_core.HAVE_TEE

#: At most this many messages per claim (a larger max_messages asks for "all there is").
_MAX_CLAIM = 1 << 20

# Queues alive in this process, so that a fork() child drops what it must not share.
_live_queues: weakref.WeakSet[Queue[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for q in list(_live_queues):
        q._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _remove_private_dir(directory: str) -> None:
    for remove, path in ((os.unlink, os.path.join(directory, "queue")), (os.rmdir, directory)):
        try:
            remove(path)
        except OSError:
            pass


class Queue(Generic[T]):
    """A process-safe FIFO queue of Python objects, a drop-in for ``multiprocessing.Queue``.

    Parameters
    ----------
    path : str, os.PathLike or None
        None (default): a private queue, reachable only through this object (pass it to
        child processes, pickle it), as a ``multiprocessing.Queue`` is.  Its FIFO has no
        name (the kernel frees it with the last process that holds it).  A path: the
        FIFO to use, created (mode 0600) if missing and never removed by fastfifo, so
        that unrelated processes share the queue by naming the same path.
    maxsize : int
        0 or less (default): no limit, ``put`` never waits and never raises ``Full``.
        More: ``put`` waits while the queue holds ``maxsize`` objects or more (those in
        the pipe, counted by peeking at it, plus those this process has not written
        yet); see docs/queue-and-asyncio.md for the precision of that count.
    dumps, loads : callable, optional
        Serialisers.  Default: multiprocessing's ``ForkingPickler`` (what
        ``multiprocessing.Queue`` uses).  ``dumps`` must return a bytes-like object.
        Pass module-level functions: they travel with the queue to other processes.
    raw : bool
        Send and receive bytes as they are (no serialiser): ``put`` takes a bytes-like
        object, ``get`` returns ``bytes``.  Type checkers see ``Queue(raw=True)`` as a
        ``Queue[bytes]`` and refuse ``dumps``/``loads`` with it.
    max_message_size : int or None
        Largest serialised object accepted, in bytes.  None (default): no limit but
        memory.  Messages above one atomic write (4088 bytes on Linux) travel as
        fragments under the writers' lock and are reassembled whole.
    pipe_size : int or None
        Pipe capacity to ask the kernel for (Linux; 1 MiB by default).
    strict_permissions : bool
        Refuse a FIFO owned by another user or writable by group/others.
    create : bool
        Create the FIFO at ``path`` if it does not exist (default True).

    Raises
    ------
    TypeError
        The first argument is an int (``fastfifo.Queue(10)``: write ``maxsize=10``).
    OSError
        The FIFO cannot be created or opened (the message names the path).
    """

    # For type checkers: Queue(raw=True) is a Queue[bytes]; dumps/loads only without raw.
    @overload
    def __init__(
        self: Queue[bytes],
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        raw: Literal[True],
        max_message_size: int | None = None,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
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
        max_message_size: int | None = None,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        raw: bool,
        max_message_size: int | None = None,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
    ) -> None: ...

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        maxsize: int = 0,
        *,
        dumps: Callable[[Any], Any] | None = None,
        loads: Callable[[bytes], Any] | None = None,
        raw: bool = False,
        max_message_size: int | None = None,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = True,
    ) -> None:
        backend = self.__dict__.pop("_backend", None)  # set by _for_backend (tests)
        if isinstance(path, int):  # multiprocessing.Queue(10) means maxsize=10
            raise TypeError(
                f"the first argument of fastfifo.Queue is the FIFO path, not maxsize; "
                f"write fastfifo.Queue(maxsize={path})"
            )
        what = "fastfifo.Queue()" if path is None else f"fastfifo.Queue({os.fspath(path)!r})"
        if not isinstance(maxsize, int):
            raise TypeError(f"{what}: maxsize must be an int, not {maxsize!r}")
        if raw and (dumps is not None or loads is not None):
            raise ValueError(f"{what}: raw=True sends bytes as they are; do not pass dumps/loads")
        if max_message_size is None:
            max_message_size = sys.maxsize
        elif not isinstance(max_message_size, int) or max_message_size < 1:
            raise ValueError(
                f"{what}: max_message_size must be None (no limit) or an int >= 1, "
                f"not {max_message_size!r}"
            )
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
            p = os.fsdecode(os.fspath(path))
            if create:
                mkfifo(p, 0o600, exist_ok=True)
        try:
            fd = open_fifo(p, os.O_RDWR, strict_permissions=strict_permissions)
            try:
                set_pipe_size(fd, pipe_size)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            if directory is not None:
                _remove_private_dir(directory)
            raise
        private_path: str | None = p
        if directory is not None:
            if _queue_channel.REOPEN_BY_FD:
                _remove_private_dir(directory)  # nameless from here on
                private_path = None
            else:
                # No /proc/self/fd (macOS): keep the name while this object lives; it is
                # removed when it is collected or at exit (after multiprocessing joined the
                # children it started).
                _mp_util.Finalize(self, _remove_private_dir, (directory,), exitpriority=-100)
        opts = _Options(
            path=private_path,
            label=p,
            maxsize=max(maxsize, 0),  # as multiprocessing: 0 or less means no limit
            dumps=dumps,
            loads=loads,
            raw=raw,
            max_message_size=max_message_size,
            pipe_size=pipe_size,
            strict_permissions=strict_permissions,
            backend=backend,
        )
        self._setup(opts)
        try:
            # The channel now, while the FIFO is being sized: its private pipe is sized
            # to match, before the per-user pipe allowance can run out.
            self._attach(_Channel(fd, opts, self._core))
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _for_backend(cls, backend: str, *args: Any, **options: Any) -> Queue[Any]:
        """For tests: a queue over the named core ("cython" or "python"), kept when pickled."""
        q: Queue[Any] = cls.__new__(cls)
        q.__dict__["_backend"] = backend
        q.__init__(*args, **options)  # type: ignore[misc]
        return q

    def _setup(self, opts: _Options) -> None:
        self._opts = opts
        self._label = opts.label
        self._maxsize = opts.maxsize
        self._core = core_for(opts.backend)
        if opts.raw:
            self._dumps: Callable[[Any], Any] | None = None
            self._loads: Callable[[bytes], Any] | None = None
        else:
            self._dumps = forking_dumps if opts.dumps is None else opts.dumps
            self._loads = pickle.loads if opts.loads is None else opts.loads
        self._max_size = opts.max_message_size
        self._chan: _Channel | None = None  # this process's channel (also in _holder)
        self._stashed = False  # _stash or _stash_error holds something
        self._closed = False
        self._join_cancelled = False
        self._opening = threading.Lock()
        self._stash: list[bytes] = []  # undecoded messages left by a failed loads()
        self._stash_error: BaseException | None = None
        self._holder = Holder()
        # Collected: close what it holds (a feeder first writes what it has).
        weakref.finalize(self, Holder.release, self._holder).atexit = False
        _live_queues.add(self)

    def _attach(self, chan: _Channel) -> None:
        """Make ``chan`` this process's channel."""
        chan.join_cancelled = self._join_cancelled
        self._holder.chan = self._chan = chan
        # At exit, before multiprocessing joins its children (as its Queue's
        # _finalize_close): close, so that a feeder writes what it holds and ends; then
        # multiprocessing waits for it (the feeder's own finalizer, priority -5).
        # Registered here: a fork child started by multiprocessing clears the registry.
        _mp_util.Finalize(self, Holder.release, (self._holder,), exitpriority=10)

    # ------------------------------------------------------------ pickling and fork

    def __getstate__(self) -> dict[str, Any]:
        if self._closed:
            raise ValueError(f"cannot send a closed Queue ({self._label!r}) to another process")
        fd: Any = None
        if self._opts.path is None or _mp_context.get_spawning_popen() is not None:
            # The descriptor, as multiprocessing passes its own pipes (to a process being
            # started), or through its resource sharer (Pool tasks, another queue...).
            fd = _mp_reduction.DupFd(self._anchor())
        return {"options": self._opts, "fd": fd}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["options"])
        if state["fd"] is not None:
            fd = state["fd"].detach()
            os.set_inheritable(fd, False)
            self._holder.keep = fd

    def _anchor(self) -> int:
        chan = self._holder.chan
        if chan is not None and not chan.closed:
            return chan.fd
        if self._holder.keep >= 0:
            return self._holder.keep
        return self._channel().fd

    def _after_fork(self) -> None:
        """In a fork() child: the channel is the parent's.  Keep its FIFO descriptor (the
        queue and its messages stay alive through it); open a channel on first use."""
        holder = self._holder
        chan = holder.chan
        if chan is not None:
            holder.chan = self._chan = None
            holder.keep = chan.abandon()
        self._opening = threading.Lock()
        self._join_cancelled = False  # as multiprocessing's _after_fork
        # Undecoded messages a failed loads() left are the parent's to deliver, not ours.
        self._stash, self._stash_error, self._stashed = [], None, False

    def _channel(self) -> _Channel:
        """This process's channel, opened on first use (after fork, after unpickling)."""
        with self._opening:
            if self._closed:
                raise ClosedError(f"Queue {self._label!r} is closed")
            holder = self._holder
            chan = holder.chan
            if chan is None:
                o = self._opts
                fd = reopen(holder.keep, o.path, o.label, o.strict_permissions)
                try:
                    set_pipe_size(fd, o.pipe_size)
                    chan = _Channel(fd, o, self._core)
                except BaseException:
                    os.close(fd)
                    raise
                self._attach(chan)
                if holder.keep >= 0:
                    os.close(holder.keep)
                    holder.keep = -1
            return chan

    # ------------------------------------------------------------ put

    def _as_buffer(self, data: Any) -> memoryview:
        """A bytes-like ``data`` as a flat memoryview of bytes (else a clear TypeError)."""
        try:
            view = memoryview(data)
        except TypeError:
            dumps = self._dumps
            what = "raw=True queues take" if dumps is None else f"dumps ({dumps!r}) must return"
            raise TypeError(
                f"Queue {self._label!r}: {what} a bytes-like object, not "
                f"{type(data).__name__}; nothing was put"
            ) from None
        return view.cast("B") if view.ndim != 1 or view.format != "B" else view

    def _too_large(self, size: int, where: str) -> MessageTooLargeError:
        return MessageTooLargeError(
            f"Queue {self._label!r}: an object of {size} bytes{where} once serialised is "
            f"larger than max_message_size={self._opts.max_message_size}; nothing was put"
        )

    def put(self, obj: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue.

        Without ``maxsize`` it never waits and never raises ``Full``: when the pipe has
        room the message is written before ``put`` returns; when it has none, this
        process's feeder thread (started then) holds it and writes it as soon as
        there is room, as ``multiprocessing.Queue``'s does.  With ``maxsize``,
        ``block``/``timeout`` say how long to wait while the queue is full (None: for
        ever; ``block=False``, 0 or a negative timeout: not at all).

        The object is pickled here, so a pickling error is raised by ``put`` and
        nothing is put.

        Raises
        ------
        queue.Full (fastfifo.Full)
            ``maxsize`` objects were in the queue until the timeout; nothing was put.
        ValueError (fastfifo.ClosedError)
            The queue was closed (in this process).
        """
        chan = self._chan
        if chan is None or self._closed:
            chan = self._live_channel()
        dumps = self._dumps
        data = obj if dumps is None else dumps(obj)
        if type(data) is not bytes:
            data = self._as_buffer(data)
        size = len(data)
        if size > self._max_size:
            raise self._too_large(size, "")
        if self._maxsize:
            chan.wait_room(
                self._maxsize, 1, CAN_PEEK, deadline_for(self._label, block, timeout), timeout
            )
            if not CAN_PEEK:
                chan.note_sizes([size])
        elif timeout is not None:
            deadline_for(self._label, block, timeout)  # refuse NaN, even if unused
        chan.send(data, size)

    def put_nowait(self, obj: T) -> None:
        """``put(obj, block=False)``: without ``maxsize`` it always succeeds."""
        self.put(obj, False)

    def put_many(self, objs: Iterable[T], block: bool = True, timeout: float | None = None) -> None:
        """Put several objects in order, packed into as few atomic writes as possible.

        Every object is pickled before anything is put.  With ``maxsize``, as many as
        fit are put and the rest wait; on ``Full``, ``exc.sent`` objects (a prefix)
        were put and the rest were not.
        """
        chan = self._chan
        if chan is None or self._closed:
            chan = self._live_channel()
        dumps = self._dumps
        items: list[Any]
        if dumps is forking_dumps:
            items = forking_dumps_many(objs)  # bytes, every one
        else:
            items = list(objs) if dumps is None else list(map(dumps, objs))
            for i, x in enumerate(items):
                if type(x) is not bytes:
                    items[i] = self._as_buffer(x)
        if not items:
            return
        sizes = list(map(len, items))
        if max(sizes) > self._max_size:
            big = max(range(len(sizes)), key=sizes.__getitem__)
            raise self._too_large(sizes[big], f" (object {big} of the batch)")
        if not self._maxsize:
            if timeout is not None:
                deadline_for(self._label, block, timeout)  # refuse NaN, even if unused
            chan.send_many(items, sizes)
            return
        deadline = deadline_for(self._label, block, timeout)
        sent = 0
        while sent < len(items):
            try:
                room = chan.wait_room(self._maxsize, len(items) - sent, CAN_PEEK, deadline, timeout)
            except Full:
                raise Full(
                    f"{full_text(self._label, self._maxsize, timeout)}; "
                    f"{sent} of {len(items)} objects were put",
                    sent,
                ) from None
            if not CAN_PEEK:
                chan.note_sizes(sizes[sent : sent + room])
            chan.send_many(items[sent : sent + room], sizes[sent : sent + room])
            sent += room

    def put_many_nowait(self, objs: Iterable[T]) -> None:
        """``put_many(objs, block=False)``."""
        self.put_many(objs, False)

    # ------------------------------------------------------------ get

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an object from the queue.

        ``block=True, timeout=None`` waits for ever; a timeout waits at most that many
        seconds; ``block=False``, 0 or a negative timeout never waits.

        Raises
        ------
        queue.Empty (fastfifo.Empty)
            Nothing came in time.
        ValueError (fastfifo.ClosedError)
            The queue was closed in this process (also when it happens during the wait).
        """
        chan = self._chan
        if chan is None or self._closed or self._stashed:
            if self._stashed and not self._closed:
                return self._take_stashed(1)[0]
            chan = self._live_channel()
        # The deadline counts from now; None (the common case) costs nothing here.
        deadline = None if timeout is None and block else deadline_for(self._label, block, timeout)
        data = chan.take(0, deadline, timeout)
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

        Each call claims at most ``max_messages`` from the pipe, so several consumers
        share the load.  If ``loads`` fails on one message, the objects before it are
        returned and the error is raised by the next call; the messages after it are
        kept and delivered after that.
        """
        if type(max_messages) is not int:
            raise TypeError(
                f"Queue {self._label!r}: max_messages must be an int, not {max_messages!r}"
            )
        if max_messages < 1:
            raise ValueError(
                f"Queue {self._label!r}: max_messages must be >= 1, not {max_messages}"
            )
        chan = self._chan
        if chan is None or self._closed or self._stashed:
            if self._stashed and not self._closed:
                return self._take_stashed(max_messages)
            chan = self._live_channel()
        n = min(max_messages, _MAX_CLAIM)
        deadline = None if timeout is None and block else deadline_for(self._label, block, timeout)
        msgs = chan.take(n, deadline, timeout)
        return self._decode_many(msgs)

    def get_many_nowait(self, max_messages: int = 1000) -> list[T]:
        """``get_many(block=False, max_messages=max_messages)``."""
        return self.get_many(False, max_messages=max_messages)

    def _take_stashed(self, n: int) -> list[T]:
        """Up to ``n`` objects a failed ``loads`` left behind (its error first)."""
        err = self._stash_error
        if err is not None:
            self._stash_error = None
            self._stashed = bool(self._stash)
            raise err
        msgs, self._stash = self._stash[:n], self._stash[n:]
        self._stashed = bool(self._stash)
        return self._decode_many(msgs)

    def _decode_many(self, msgs: list[bytes]) -> list[T]:
        """Deserialise a batch; if one fails, keep the rest (in order) for the next call."""
        loads = self._loads
        if loads is None:
            raw: list[Any] = msgs  # raw=True: T is bytes
            return raw
        try:
            return list(map(loads, msgs))
        except Exception:
            pass
        out: list[Any] = []
        for i, m in enumerate(msgs):
            try:
                out.append(loads(m))
            except Exception as e:
                self._stash = msgs[i + 1 :] + self._stash
                self._stashed = bool(self._stash)
                if not out:
                    raise
                self._stash_error = e
                self._stashed = True
                return out
        return out  # pragma: no cover - loads failed above, then not: a flaky loads

    # ------------------------------------------------------------ state

    def qsize(self) -> int:
        """The number of objects in the queue: whole messages in the pipe, not yet taken
        by any consumer, plus those this process put and has not written yet.

        The pipe is peeked at without consuming it (Linux ``tee()``): the cost grows with
        the bytes waiting.  A snapshot, like ``multiprocessing.Queue.qsize()``, that
        other processes make stale at once.

        Raises
        ------
        NotImplementedError
            Where the pipe cannot be peeked at (macOS), as ``multiprocessing.Queue.qsize``
            does there.
        OSError (ENOBUFS)
            This process's private pipe is smaller than what waits in the FIFO and cannot
            grow (the per-user pipe allowance is used up): it could not count them all.
        """
        chan = self._live_channel()
        if not CAN_PEEK:
            raise NotImplementedError(
                "qsize() needs tee() to count the messages in a FIFO (Linux only); "
                "use empty() or a bounded get_many() instead"
            )
        n, exact = chan.count(-1)
        if not exact:
            raise OSError(
                errno.ENOBUFS,
                f"cannot count the messages: more bytes wait in the FIFO than this "
                f"process's private pipe ({chan.peek_cap} bytes) can show, and the kernel "
                f"refuses to grow it (the per-user pipe allowance, "
                f"/proc/sys/fs/pipe-user-pages-soft, is used up); retry when fewer wait",
                self._label,
            )
        return n + chan.unsent()

    def empty(self) -> bool:
        """True if no object is in the queue now: none waiting in the pipe, none held by
        this process's feeder (a snapshot, like ``multiprocessing``'s)."""
        chan = self._live_channel()
        return chan.unsent() == 0 and bytes_waiting(chan.fd) == 0

    def full(self) -> bool:
        """True if a ``put`` would wait now: with ``maxsize``, the queue holds ``maxsize``
        objects or more; without it, never (``put`` never waits then)."""
        chan = self._live_channel()
        return bool(self._maxsize) and chan.room(self._maxsize, 1, CAN_PEEK) == 0

    def _live_channel(self) -> _Channel:
        if self._closed:
            raise ClosedError(f"Queue {self._label!r} is closed")
        return self._chan or self._channel()

    @property
    def maxsize(self) -> int:
        """The item limit given to the constructor (0: none)."""
        return self._maxsize

    @property
    def path(self) -> str | None:
        """The FIFO's path (another process can open the queue with ``Queue(path)``);
        None for a private queue, whose FIFO has no name."""
        return self._opts.path

    def fileno(self) -> int:
        """A descriptor to *poll* (never read): readable when a message may be waiting.

        Part of the interface ``fastfifo.aio.Queue`` uses: ``fileno()`` for readiness,
        then ``get_nowait``/``get_many_nowait``, and ``put_nowait``/``put_many_nowait``.
        """
        return self._live_channel().fd

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called in this process."""
        return self._closed

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Indicate that this process will put no more objects (idempotent).

        As ``multiprocessing.Queue.close()``: the feeder thread, if this process
        started one, goes on writing what it holds and then ends (``join_thread()``
        waits for that).  Later calls raise ``ValueError`` (``fastfifo.ClosedError``),
        and unlike multiprocessing, a ``get``/``put`` waiting in another thread is
        woken and raises it too.  Other processes keep using the queue; when the last
        one closes it, the kernel discards what is left in the pipe.
        """
        if self._closed:
            return
        self._closed = True
        chan = self._holder.chan
        if chan is not None:
            chan.close()

    def join_thread(self) -> None:
        """Wait until the feeder thread has written everything this process put.

        As in ``multiprocessing``: only after ``close()`` (``AssertionError`` before),
        and it waits for ever while no consumer makes room in the pipe, unless
        ``cancel_join_thread()`` was called (then it returns at once).
        """
        if not self._closed:
            raise AssertionError(f"Queue {self._label!r} not closed")
        chan = self._holder.chan
        if chan is not None:
            chan.join()

    def cancel_join_thread(self) -> None:
        """Do not wait for the feeder thread at exit (nor in ``join_thread()``).

        As in ``multiprocessing``: the process can then exit while objects it put are
        still unwritten, and they are lost.
        """
        self._join_cancelled = True
        chan = self._holder.chan
        if chan is not None:
            chan.cancel_join()

    def __enter__(self) -> Queue[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        name = self._label if self._opts.path is not None else f"private, made as {self._label!r}"
        return f"<fastfifo.Queue {name!r} maxsize={self._maxsize}{state}>"
