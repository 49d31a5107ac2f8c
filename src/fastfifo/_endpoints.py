"""Writer and Reader: options, opening and policy over a core's hot loops.

The classes subclass the selected core's ``WriterCore``/``ReaderCore``, so
``put``/``get`` are the core's own C (or reference Python) methods with no
Python frame in between.  ``classes_for(core)`` builds the same pair over either
backend, which is how the tests run everything against both.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import secrets
import select
import sys
import time
import weakref
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ._errors import linger_timeout
from ._open import (
    DEFAULT_PIPE_SIZE,
    LOCKS_ON_FIFOS,
    PEEK_WINDOW,
    Backoff,
    bytes_waiting,
    check_size,
    check_timeout,
    mkfifo,
    open_fifo,
    open_writer_fd,
    set_pipe_size,
    shared_reader_fds,
    sidecar_lock,
)
from ._py_clock import _ofd_lock

#: Largest write that POSIX guarantees is not interleaved with other writers'.
PIPE_BUF: int = select.PIPE_BUF

#: Default cap on one received message; every allocation is bounded by it.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

#: The two framings (docs/guide.md, "choosing a framing").
Framing = Literal["frames", "lines"]

_FRAMINGS = {"frames": 0, "lines": 1}


class WriterOptions(TypedDict, total=False):
    """``Writer``'s keyword options but ``open_timeout``, for ``**options`` that pass them on
    (``aio.open_writer``), so a type checker still checks each one."""

    framing: Framing
    max_message_size: int
    pipe_size: int | None
    strict_permissions: bool
    create: bool
    buffered: bool
    linger: float | None


#: Tests set this to run shared readers through the exact-read claims that systems
#: without tee() (macOS) use.
_FORCE_EXACT_CLAIMS = False
#: A stop_at_eof Reader (not shared) waits in select(), not poll(): macOS's poll() and
#: kqueue never report that the last writer of a FIFO left, select() does.  Linux's
#: poll() reports it (POLLHUP); the tests switch this on there to run the select() path.
_SELECT_FOR_EOF = sys.platform == "darwin"


if TYPE_CHECKING:  # type checkers see the compiled core's API (_core.pyi) as the base
    import threading

    from ._core import ReaderCore as _CoreReader
    from ._core import WriterCore as _CoreWriter
else:  # at run time classes_for() mixes these classes into either core's classes
    _CoreWriter = _CoreReader = object


def _check_linger(path: str | os.PathLike[str], linger: object) -> float | None:
    """The linger in seconds (None: no limit): ``check_timeout``'s rules, but a negative
    linger is refused rather than read as "do not wait" (0 says that)."""
    p = os.fspath(path)
    seconds = check_timeout(linger, "linger", p)
    if seconds == 0.0 and isinstance(linger, (int, float)) and linger < 0:
        raise ValueError(f"{p!r}: linger must be >= 0 seconds (or None: no limit), not {linger!r}")
    return seconds


def _prepare(
    path: str | os.PathLike[str],
    framing: str,
    max_message_size: int,
    pipe_size: int | None,
    create: bool,
) -> tuple[str, int, int]:
    """What Writer and Reader check before opening: (path, framing code, size cap).

    Sizes are checked before any arithmetic: ints >= 1 of any size, a huge
    ``max_message_size`` meaning "no cap" (sys.maxsize); ``pipe_size`` None or 0 keeps
    the pipe's size.
    """
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"path must be a str or os.PathLike[str], not {type(p).__name__}")
    try:
        code = _FRAMINGS[framing]
    except (KeyError, TypeError):
        raise ValueError(f"{p!r}: framing must be 'frames' or 'lines', not {framing!r}") from None
    maxmsg = min(check_size(max_message_size, "max_message_size", p) or 1, sys.maxsize)
    if pipe_size != 0:
        check_size(pipe_size, "pipe_size", p, allow_none=True)
    if create:
        mkfifo(p, exist_ok=True)
    return p, code, maxmsg


# Readers alive in this process: after fork() the child's copies are closed (see
# ReaderCore._after_fork_in_child), so a child never reads through its parent's fd.
_live_readers: weakref.WeakSet[Any] = weakref.WeakSet()


# Writers alive in this process: after fork() the child's copies are closed too (they
# share the parent's open file description, so its large-message lock, and its buffer).
_live_writers: weakref.WeakSet[Any] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for endpoint in [*_live_readers, *_live_writers]:
        endpoint._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _writer_lock(path: str, fd: int) -> tuple[int, bool]:
    """(fd, is_ofd) of the large-message lock: an OFD lock on the FIFO fd, or a sidecar file."""
    if LOCKS_ON_FIFOS:
        return fd, True
    return sidecar_lock(path, ".writers.lock"), False


def _take_presence(fd: int) -> bool:
    """Take this Writer's presence: a write lock on a byte of its own from byte 2 on, held
    while it is open.  A Writer that sees no other presence is the only one open, and
    sends the fragments of a large message in one write (WriterCore._burst)."""
    while True:  # a byte no other Writer holds
        try:
            _ofd_lock(fd, fcntl.F_WRLCK, 2 + secrets.randbits(48))
            return True
        except (BlockingIOError, PermissionError):
            continue


#: The byte whose lock a sole Writer holds through each burst (``WriterCore._burst``).
BURST_BYTE = 1

#: How long a Writer that opens waits for another Writer's burst to end (seconds).
BURST_WAIT = 1.0


def _wait_out_bursts(fd: int) -> None:
    """After taking this Writer's presence: wait until no other Writer is in a burst.

    A Writer that saw no other one sends a large message's fragments in one writev(),
    holding the burst byte's lock from before it looks for other Writers until the
    fragments are whole.  A Writer that opened after that look is not seen, and its
    small messages could land inside a fragment the burst has to finish in a second
    write (only when the pipe filled meanwhile); so it sends nothing until that burst
    is over.  Taking and releasing the burst byte's lock here waits for it: every later
    burst sees this Writer's presence and sends fragments one atomic write at a time.
    A burst lasts microseconds (or until its reader frees 4 KiB): this waits at most
    BURST_WAIT seconds, so a burster that is stopped (SIGSTOP) or whose reader stopped
    reading never keeps other Writers from opening; the guide's "Large messages" says
    what is then left to chance.  ``open_timeout`` does not shorten it: that is how long
    to wait for a *reader*, and a Writer opened with 0 (``fastfifo.aio.Writer``'s
    default) writes at once, so it needs the wait as much as any.  Ctrl-C ends it.
    """
    deadline = time.monotonic() + BURST_WAIT
    backoff = Backoff(25e-6, 0.002)
    while True:
        try:
            _ofd_lock(fd, fcntl.F_WRLCK, BURST_BYTE)
        except (BlockingIOError, PermissionError):
            now = time.monotonic()
            if now >= deadline:
                return
            time.sleep(backoff.next(deadline - now))
            continue
        _ofd_lock(fd, fcntl.F_UNLCK, BURST_BYTE)
        return


def _name_the_fifo(exc: BaseException, path: str) -> None:
    """Make an OSError raised after the FIFO opened (wake-up pipe, peek pipe, lock files)
    say which FIFO it was opening, and what to do when descriptors ran out."""
    if not isinstance(exc, OSError) or exc.errno is None or exc.filename == path:
        return
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        what = "a pipe" if exc.filename is None else repr(exc.filename)
        exc.strerror = (
            f"{exc.strerror} (the FIFO opened, but {what}, which fastfifo opens next, "
            f"could not be; close unused descriptors or raise the limit, e.g. ulimit -n)"
        )
        exc.filename = path
    elif exc.filename is None:
        exc.filename = path


def _endpoint_repr(self: Any) -> str:
    state = "closed" if self.closed else f"fd={self.fileno()}"
    return f"<fastfifo.{type(self).__name__} {self.path!r} framing={self.framing!r} {state}>"


def _no_pickle(self: Any) -> Any:
    raise TypeError(
        f"a {type(self).__name__} cannot be pickled or sent to another process; pass the "
        f"path ({self.path!r}) instead and open it there"
    )


class Writer(_CoreWriter):
    """Sends whole messages into a FIFO; safe with any number of concurrent writers.

    Parameters
    ----------
    path : str or os.PathLike
        The FIFO.  It must exist (``create=True`` makes it with mode 0600).
    framing : {"frames", "lines"}
        ``"frames"``: binary-safe, length-prefixed (docs/PROTOCOL.md).
        ``"lines"``: each message plus ``\\n``; shell tools read it with ``cat``.
    open_timeout : float or None
        How long to wait for a reader to open the FIFO: None waits for ever
        (like ``echo > fifo``), 0 fails at once.  Raises ``TimeoutError``.
        (Whatever it is, a Writer that opens during another's burst waits for
        it to end: microseconds, at most 1 s; docs/guide.md, "Large messages".)
    max_message_size : int
        Largest message ``put`` accepts (default 64 MiB, as the Reader's).
        Messages above ``max_atomic_message`` go out as fragments under the
        writers' lock (frames framing only).
    buffered : bool
        ``put`` packs messages into a buffer of one atomic write and writes it
        when full, on ``flush()``, and on ``close()``/leaving the ``with``
        block.  Many times faster for small messages in hot loops; buffered
        messages wait (and die with the process) until then.
    pipe_size : int or None
        Pipe capacity to ask the kernel for (Linux; default 1 MiB, None keeps it).
    strict_permissions : bool
        Refuse a FIFO owned by another user or writable by group/others.
    create : bool
        Create the FIFO (mode 0600) if it does not exist.
    linger : float or None
        What ``close()`` does with messages still in the pipe, like a socket's
        ``SO_LINGER``.  0 (default): close at once; what is in the pipe lives on
        while any process has the FIFO open and dies with the last descriptor.
        A number: ``close()`` first waits up to that many seconds until the
        pipe is empty (every message taken by a reader), then raises
        ``TimeoutError`` (the Writer is closed all the same) if bytes are left.
        None: wait until the pipe is empty, however long.  The wait polls the
        pipe (1 to 50 ms apart), ends on Ctrl-C, and a ``close()`` from another
        thread ends it at once.  The pipe is shared: the wait is for every
        writer's messages, not only this one's.

    A Writer (like a Reader) belongs to the process that opened it: after
    ``fork()`` the child's copy is closed (``ClosedError`` says why), so its
    buffer is never sent twice and its large-message lock is never shared.
    """

    _core: ModuleType  # the backend, set by classes_for()
    framing: Framing
    max_message_size: int
    buffered: bool
    pipe_size: int  # the capacity the kernel gave
    _linger_limit: float | None = 0.0
    _linger_stop: threading.Event | None = None  # set while close() lingers

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        framing: Framing = "frames",
        open_timeout: float | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = False,
        buffered: bool = False,
        linger: float | None = 0.0,
    ) -> None:
        super().__init__()
        linger = _check_linger(path, linger)  # before opening: a bad one waits for nothing
        p, code, maxmsg = _prepare(path, framing, max_message_size, pipe_size, create)
        fd = open_writer_fd(p, open_timeout, strict_permissions=strict_permissions)
        lock_fd = -1
        try:
            self.pipe_size = set_pipe_size(fd, pipe_size)
            lock_fd, ofd = _writer_lock(p, fd)
            present = LOCKS_ON_FIFOS and _take_presence(fd)
            if present:
                _wait_out_bursts(fd)
            self._configure(
                fd,
                p,
                code,
                PIPE_BUF,
                self._core.sigpipe_is_default(),
                maxmsg,
                lock_fd,
                ofd,
                buffered,
                present,
                self.pipe_size,
            )
        except BaseException as exc:
            os.close(fd)
            if lock_fd not in (-1, fd):
                os.close(lock_fd)
            _name_the_fifo(exc, p)
            raise
        self.framing = framing
        self.max_message_size = max_message_size
        self.buffered = buffered
        self._linger_limit = linger
        _live_writers.add(self)

    @property
    def linger(self) -> float | None:
        """Seconds ``close()`` waits for the pipe to empty (None: no limit); may be changed
        before ``close()``, with the constructor's checks (NaN, a negative number or a
        non-number is refused; ``inf`` means None)."""
        return self._linger_limit

    @linger.setter
    def linger(self, value: float | None) -> None:
        self._linger_limit = _check_linger(self.path, value)

    def close(self) -> None:
        """Flush buffered messages, linger if asked (``linger=``), then close; idempotent.

        The flush waits for room as needed.  If it fails (no reader any more) the
        Writer is still closed and the error is raised.  With ``linger``, close
        then waits until the pipe is empty, and raises ``TimeoutError`` (closed
        all the same) if the linger time passed first.  Called from another
        thread while a ``put`` is blocked, close() wakes that call
        (``ClosedError``) instead of waiting behind it, sends nothing still
        buffered and does not linger; called while another thread lingers in
        close(), it ends that wait.  A Writer that is garbage-collected without
        close() does not linger.
        """
        stop = self._linger_stop
        if stop is not None:  # another thread is lingering in close(): end that wait now
            stop.set()
            super().close()
            return
        if self.linger != 0 and not self.closed:
            import threading  # only lingering Writers need it (`import fastfifo` stays lean)

            stop = self._linger_stop = threading.Event()
        try:
            # False when another thread is inside a call: close() must wake it, not wait.
            idle = self._flush_if_idle()
            if idle and stop is not None:
                self._linger(stop)
        finally:
            self._linger_stop = None
            super().close()

    def _linger(self, stop: threading.Event) -> None:
        """Wait until the pipe is empty, for at most ``self.linger`` seconds or until ``stop``."""
        limit = self.linger
        deadline = None if limit is None else time.monotonic() + limit
        backoff = Backoff(0.001, 0.05)  # no event says "the pipe is empty": poll it
        while not stop.is_set():
            try:
                left = bytes_waiting(self.fileno())
            except (ValueError, OSError):  # ClosedError, EBADF: closed by another thread
                return
            # close() marks the Writer closed before it closes the fd: if it is still open
            # now, the fd asked above was this FIFO's (not a number closed and reused).
            if self.closed or left == 0:
                return
            now = time.monotonic()
            if limit is not None and deadline is not None and now >= deadline:
                raise linger_timeout(self.path, left, limit)
            # Event.wait ends early on close() from another thread; Ctrl-C interrupts it.
            stop.wait(backoff.next(None if deadline is None else deadline - now))

    __repr__ = _endpoint_repr
    __reduce__ = _no_pickle


class Reader(_CoreReader):
    """Receives whole messages from a FIFO (one Reader per FIFO).

    Parameters
    ----------
    path : str or os.PathLike
        The FIFO.  It must exist (``create=True`` makes it with mode 0600).
    framing : {"frames", "lines"}
        Must match the writers'.
    max_message_size : int
        Largest message accepted (default 64 MiB); a larger one is discarded
        with ``MessageTooLargeError``.  Bounds every allocation.
    stop_at_eof : bool
        False (default): when every writer has left, keep waiting for the next
        one (the Reader holds the FIFO open read-write, so it never sees EOF
        and never spins).  True: end like ``cat`` (``get`` raises ``EOFError``,
        iteration stops) once a writer has come and every writer has left.
    shared : bool
        Several Reader processes share this FIFO and each message goes to
        exactly one of them, whole (docs/guide: "shared readers").  Each call
        claims at most its ``max_messages`` (``get``: one), so load balances.
    pipe_size, strict_permissions, create
        As for ``Writer``.
    """

    _core: ModuleType  # the backend, set by classes_for()
    framing: Framing
    max_message_size: int
    shared: bool
    pipe_size: int  # the capacity the kernel gave

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        framing: Framing = "frames",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        stop_at_eof: bool = False,
        shared: bool = False,
        pipe_size: int | None = DEFAULT_PIPE_SIZE,
        strict_permissions: bool = True,
        create: bool = False,
    ) -> None:
        super().__init__()
        p, code, maxmsg = _prepare(path, framing, max_message_size, pipe_size, create)
        # O_RDWR keeps a writer on the FIFO (ours), so read() never returns 0
        # and poll() never reports a level-triggered POLLHUP when the last
        # writer leaves: no spinning, and the next writer is simply read on.
        flags = os.O_RDONLY if stop_at_eof else os.O_RDWR
        fd = open_fifo(p, flags, strict_permissions=strict_permissions)
        owned: list[int] = []
        try:
            self.pipe_size = set_pipe_size(fd, pipe_size)
            wlock_fd, ofd = _writer_lock(p, fd)
            if wlock_fd != fd:
                owned.append(wlock_fd)
            self._configure(
                fd,
                p,
                code,
                maxmsg,
                max(self.pipe_size, 65536),
                stop_at_eof,
                wlock_fd,
                ofd,
            )
            owned = []  # the core closes them from here on
            if shared:
                rlock_fd = fd if LOCKS_ON_FIFOS else sidecar_lock(p, ".readers.lock")
                peek_r, peek_w, null = shared_reader_fds(fd)
                self._share(
                    rlock_fd,
                    peek_r,
                    peek_w,
                    null,
                    PEEK_WINDOW,
                    self._core.HAVE_TEE and not _FORCE_EXACT_CLAIMS,
                )
            elif stop_at_eof and _SELECT_FOR_EOF:
                self._eof_by_select()
        except BaseException as exc:
            if self.closed is False and self.path is not None:
                self.close()
            else:
                os.close(fd)
            for extra in owned:
                os.close(extra)
            _name_the_fifo(exc, p)
            raise
        self.framing = framing
        self.max_message_size = max_message_size
        self.shared = shared
        _live_readers.add(self)

    __repr__ = _endpoint_repr
    __reduce__ = _no_pickle


@functools.cache
def classes_for(core: ModuleType) -> tuple[type[Writer], type[Reader]]:
    """The (Writer, Reader) classes over ``core`` (``_core`` or ``_core_py``).

    Each is ``Writer``/``Reader`` above mixed into the core's ``WriterCore``/``ReaderCore``
    (``put``/``get`` are the core's own methods, no Python frame in between); type checkers
    see the module-level classes, typed against the compiled core's stub (_core.pyi).
    """
    made = []
    for api, base in ((Writer, core.WriterCore), (Reader, core.ReaderCore)):
        namespace = {
            "__module__": "fastfifo",
            "__qualname__": api.__name__,
            "__doc__": api.__doc__,
            "_core": core,
        }
        made.append(type(api.__name__, (api, base), namespace))
    return made[0], made[1]


# ---------------------------------------------------------------- lent endpoints


def lent_writer(
    core: ModuleType, fd: int, path: str, *, max_message_size: int, wake_fd: int
) -> Any:
    """A frames writer over ``fd`` that closes nothing: its owner keeps the descriptors.

    fastfifo.Queue's (see queues.py): it calls the writer with ``timeout=0`` except from
    its feeder thread, whose waits end when ``wake_fd`` (the write end of the queue's
    private pipe) reports an error, i.e. once the queue closed the read end.  The
    writers' lock is lent per large message (``_lock_on``).
    """
    w = core.BorrowingWriterCore()
    w._configure(
        fd,
        path,
        _FRAMINGS["frames"],
        PIPE_BUF,
        core.sigpipe_is_default(),
        max_message_size,
        -1,
        LOCKS_ON_FIFOS,
    )
    w._wake_on(wake_fd)
    return w


def lent_reader(
    core: ModuleType,
    fd: int,
    path: str,
    *,
    max_message_size: int,
    wake_fd: int,
    peek_r: int,
    peek_w: int,
    window: int,
    rlock_fd: int,
    wlock_fd: int,
) -> Any:
    """A shared frames reader over ``fd`` that closes nothing (fastfifo.Queue's).

    It claims with tee() into ``peek_r``/``peek_w`` where the system has it, and consumes
    a claim by reading it over its peeked copy (no /dev/null descriptor); ``wake_fd``
    readable ends its waits.  ``rlock_fd`` takes the readers' flock; ``wlock_fd`` must be
    a description other than the one the writers' lock is taken through, so that this
    reader sees its own process's large messages being written.  It claims by exact
    reads only where there is no tee() (or ``_FORCE_EXACT_CLAIMS``, for tests): a get()
    then reads the header and the payload in two calls, between which a killed consumer
    leaves the payload to the others as bad bytes.
    """
    r = core.BorrowingReaderCore()
    r._configure(
        fd, path, _FRAMINGS["frames"], max_message_size, 65536, False, wlock_fd, LOCKS_ON_FIFOS
    )
    r._share(rlock_fd, peek_r, peek_w, -1, window, core.HAVE_TEE and not _FORCE_EXACT_CLAIMS)
    r._wake_on(wake_fd)
    return r
