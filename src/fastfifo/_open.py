"""Creating and opening FIFOs safely, and the rules for user options (not a hot path).

Shared by both cores.  The opening rules (docs/SECURITY.md): never ``O_CREAT`` (it makes
a regular file, and ``protected_fifos`` refuses it in sticky directories); look at what
is at the path before opening anything where the system allows (``O_PATH`` on Linux),
open with ``O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC`` and ``fstat`` the descriptor, because a
stat before the open is a race.  The option rules: ``check_timeout`` and ``check_size``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
import sys
import termios
import time
from collections.abc import Callable

from . import _parse
from ._errors import NotAFifoError

#: Pipe size fastfifo asks for (the unprivileged Linux maximum, pipe-max-size).
DEFAULT_PIPE_SIZE = 1 << 20

# Linux fcntl.h values; Python names them from 3.10 on, the fallback covers odd builds.
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031 if sys.platform == "linux" else None)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032 if sys.platform == "linux" else None)


def _describe(st_mode: int) -> str:
    if stat.S_ISREG(st_mode):
        return "a regular file"
    if stat.S_ISDIR(st_mode):
        return "a directory"
    if stat.S_ISLNK(st_mode):
        return "a symbolic link"
    if stat.S_ISSOCK(st_mode):
        return "a socket"
    if stat.S_ISCHR(st_mode) or stat.S_ISBLK(st_mode):
        return "a device"
    return "not a FIFO"


def _not_a_fifo(path: str, what: str) -> NotAFifoError:
    return NotAFifoError(
        errno.EINVAL,
        f"{what} is at {path!r}, not a FIFO; fastfifo refuses to use it "
        f"(remove it, or create a FIFO with fastfifo.mkfifo() / `mkfifo`)",
        path,
    )


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except OSError:
        return False


def mkfifo(path: str | os.PathLike[str], mode: int = 0o600, *, exist_ok: bool = True) -> str:
    """Create a FIFO at ``path`` (``mode`` is filtered by the umask, as ``os.mkfifo``).

    Parameters
    ----------
    path : str or os.PathLike
        Where to create it.  Nothing is ever created through a symlink.
    mode : int
        Permission bits, 0o600 by default: only the owner can read and write.
    exist_ok : bool
        If a FIFO already exists at ``path``, return quietly (its mode is left as is).

    Returns
    -------
    str
        The path.

    Raises
    ------
    FileExistsError
        A FIFO is at ``path`` and ``exist_ok`` is false.
    NotAFifoError
        Something else (a file, a directory, a symlink) is at ``path``.
    FileNotFoundError
        The parent directory does not exist.
    """
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"path must be a str or os.PathLike[str], not {type(p).__name__}")
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise ValueError(f"{p!r}: mode must be permission bits such as 0o600, not {mode!r}")
    try:
        os.mkfifo(p, mode)
    except FileExistsError:
        st = os.lstat(p)
        if not stat.S_ISFIFO(st.st_mode):
            raise _not_a_fifo(p, _describe(st.st_mode).capitalize()) from None
        if not exist_ok:
            raise FileExistsError(
                errno.EEXIST, "a FIFO already exists (pass exist_ok=True to reuse it)", p
            ) from None
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, "cannot create a FIFO: the directory does not exist", p
        ) from None
    except OSError as e:  # os.mkfifo() names no path: say which, and what to do
        raise _named(e, p, _MKFIFO_HINTS.get(e.errno or 0, "cannot create a FIFO")) from None
    return p


_MKFIFO_HINTS = {
    errno.EACCES: "cannot create a FIFO: no permission to write in its directory",
    errno.EPERM: "cannot create a FIFO here (the file system or a security policy refuses it)",
    errno.ENOTDIR: "cannot create a FIFO: a part of the path is not a directory",
    errno.EROFS: "cannot create a FIFO: the file system is read-only",
    errno.ENAMETOOLONG: "cannot create a FIFO: the path is too long",
    errno.ENOSPC: "cannot create a FIFO: no space (or no inodes) left on the device",
    errno.ELOOP: "cannot create a FIFO: too many symbolic links in the path",
}


def _named(e: OSError, path: str, what: str) -> OSError:
    """A copy of ``e`` (same class and errno) whose message says ``what`` and names ``path``."""
    return type(e)(e.errno, f"{e.strerror}: {what}", path)


#: Linux: look at what is at a path through an O_PATH descriptor (which opens nothing:
#: no device driver runs, no FIFO peer is waited for) before opening it for real
#: through /proc/self/fd, which reaches the very inode that was checked.
_O_PATH = getattr(os, "O_PATH", 0) if sys.platform.startswith("linux") else 0


def _open_checked(path: str, flags: int) -> int:
    """Open ``path`` only if it is a FIFO (Linux: checked before opening anything)."""
    try:
        pfd = os.open(path, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError:
        return os.open(path, flags)  # the same error (or none) from the real open
    try:
        st = os.fstat(pfd)
        if not stat.S_ISFIFO(st.st_mode):
            raise _not_a_fifo(path, _describe(st.st_mode).capitalize())
        try:
            fd = os.open(f"/proc/self/fd/{pfd}", flags & ~os.O_NOFOLLOW)
        except FileNotFoundError:  # no /proc: open by name (and fstat it afterwards)
            return os.open(path, flags)
        except OSError as e:
            raise type(e)(e.errno, e.strerror, path) from None
    finally:
        os.close(pfd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):  # cannot happen: be sure
            raise _not_a_fifo(path, "Something that changed while it was opened")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_fifo(path: str, flags: int, *, strict_permissions: bool = True) -> int:
    """Open an existing FIFO with ``flags`` plus O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC; check it.

    Only a FIFO is ever opened on Linux: what is at the path is examined through an
    ``O_PATH`` descriptor first (a regular file, device, socket, directory or symlink
    is refused before anything opens it).  Elsewhere the descriptor is ``fstat``-ed
    right after the open and refused then.  Returns a non-blocking fd.  Raises
    ``FileNotFoundError``, ``NotAFifoError``, ``PermissionError`` and, for ``O_WRONLY``
    with no reader, ``OSError(ENXIO)`` (callers retry that).
    """
    full = flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = _open_checked(path, full) if _O_PATH else os.open(path, full)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            "no FIFO at this path; create it first with fastfifo.mkfifo(path) or `mkfifo`",
            path,
        ) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _not_a_fifo(path, "A symbolic link") from None
        if e.errno == errno.EISDIR:
            raise _not_a_fifo(path, "A directory") from None
        if e.errno == errno.ENXIO and not (flags & os.O_WRONLY and _is_fifo(path)):
            # A socket (or a device with no driver) at the path; for a FIFO opened
            # for writing ENXIO means "no reader yet", which the caller retries.
            raise _not_a_fifo(path, _describe(os.lstat(path).st_mode).capitalize()) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise PermissionError(
                e.errno,
                f"{e.strerror}: no permission to open the FIFO "
                "(check its owner and mode with `ls -l`)",
                path,
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISFIFO(st.st_mode):
            raise _not_a_fifo(path, _describe(st.st_mode).capitalize())
        if strict_permissions:
            if st.st_uid != os.geteuid():
                raise PermissionError(
                    errno.EACCES,
                    f"the FIFO is owned by uid {st.st_uid}, not by this process (uid "
                    f"{os.geteuid()}); another user could read or inject messages. Pass "
                    "strict_permissions=False if you trust that user",
                    path,
                )
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise PermissionError(
                    errno.EACCES,
                    "the FIFO is writable by group or others (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}), so other users could inject messages. "
                    "`chmod 600` it, or pass "
                    "strict_permissions=False if that is intended",
                    path,
                )
    except BaseException:
        os.close(fd)
        raise
    return fd


# macOS: a per-fd "never send SIGPIPE for writes on this fd" (fcntl.h F_SETNOSIGPIPE = 73).
_F_SETNOSIGPIPE = getattr(fcntl, "F_SETNOSIGPIPE", 73 if sys.platform == "darwin" else None)


def no_sigpipe(fd: int) -> None:
    """Where the kernel offers it (macOS), make writes on ``fd`` fail with EPIPE, never signal."""
    if _F_SETNOSIGPIPE is not None:
        fcntl.fcntl(fd, _F_SETNOSIGPIPE, 1)


def open_writer_fd(path: str, open_timeout: float | None, *, strict_permissions: bool) -> int:
    """Open for writing, waiting up to ``open_timeout`` seconds for a reader.

    A FIFO cannot be polled for "a reader arrived" without opening it, so this
    retries the non-blocking open with a backoff from 1 ms to 50 ms.
    """
    wait = check_timeout(open_timeout, "open_timeout", path)
    deadline = None if wait is None else time.monotonic() + wait
    backoff = Backoff(0.001, 0.05)
    while True:
        try:
            fd = open_fifo(path, os.O_WRONLY, strict_permissions=strict_permissions)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        else:
            try:
                no_sigpipe(fd)
            except BaseException:
                os.close(fd)
                raise
            return fd
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise TimeoutError(
                errno.ETIMEDOUT,
                f"no reader opened the FIFO within {open_timeout} s; start a reader first, "
                "or pass a longer open_timeout (None waits for ever)",
                path,
            )
        time.sleep(backoff.next(None if deadline is None else deadline - now))


#: Timeouts at or above this many seconds (about 31 years) wait for ever, as None does
#: (the cores use the same bound).
FOREVER = 1e9


def check_timeout(timeout: object, name: str = "timeout", path: str | None = None) -> float | None:
    """A user's timeout as seconds to wait: None for ever (None, inf, >= FOREVER), 0 for a
    negative one ("do not wait", as multiprocessing.Queue); NaN and non-numbers refused.

    The one statement of these rules; the Cython core's ``to_deadline`` follows them."""
    where = "" if path is None else f"{path!r}: "
    if timeout is None:
        return None
    if isinstance(timeout, (str, bytes, bytearray)) or not hasattr(timeout, "__float__"):
        raise TypeError(
            f"{where}{name} must be None or a number of seconds, not "
            f"{type(timeout).__name__} {timeout!r}"
        )
    try:
        t = float(timeout)
    except OverflowError:  # an int too large for a float
        return None if timeout > 0 else 0.0  # type: ignore[operator]
    if t != t:
        raise ValueError(f"{where}{name} must be None or a number of seconds, not NaN")
    return None if t >= FOREVER else max(t, 0.0)


def check_size(value: object, name: str, path: str, *, allow_none: bool = False) -> int | None:
    """A user's size option as an int >= 1 (any size: huge ones are capped by the caller)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(
            f"{path!r}: {name} must be an int >= 1{' or None' if allow_none else ''}, not "
            f"{type(value).__name__} {value!r}"
        )
    n = value.__index__()
    if n < 1:
        raise ValueError(f"{path!r}: {name} must be >= 1, not {n}")
    return int(n)


def _pipe_max_size() -> int:
    """The system's pipe-max-size: a larger request is capped to it, even for root."""
    try:
        with open("/proc/sys/fs/pipe-max-size", "rb") as f:
            return max(int(f.read()), 4096)
    except (OSError, ValueError):
        return DEFAULT_PIPE_SIZE


def set_pipe_size(fd: int, size: int | None) -> int:
    """Grow the pipe to ``size`` bytes where the kernel allows; return the size in force.

    The size is shared by every opener and lost when the last fd closes, so both
    endpoints ask for it on open.  A refusal (EPERM above pipe-max-size or over the
    per-user soft limit) keeps the current size: that is slower, never wrong.
    """
    if _F_GETPIPE_SZ is None or _F_SETPIPE_SZ is None:
        return 8192  # macOS: fixed by net.local.stream.*space
    current: int = fcntl.fcntl(fd, _F_GETPIPE_SZ)
    if size and size > current:
        size = min(size, _pipe_max_size())
        try:
            current = fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
        except OSError:
            pass
    return current


#: Bytes a shared reader can see ahead with one tee() (the private peek pipe's size).
PEEK_WINDOW = 256 * 1024


def shared_reader_fds(fd: int) -> tuple[int, int, int]:
    """A private pipe to tee() into (both ends non-blocking) and /dev/null to splice to."""
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        if _F_SETPIPE_SZ is not None:
            try:
                fcntl.fcntl(w, _F_SETPIPE_SZ, PEEK_WINDOW)
            except OSError:
                pass  # a smaller window only means smaller claims
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    return r, w, null


_FIONREAD = getattr(termios, "FIONREAD", 0x541B)


def bytes_waiting(fd: int) -> int:
    """Bytes buffered in the pipe behind ``fd`` (FIONREAD): the one place that asks."""
    n: int = struct.unpack("i", fcntl.ioctl(fd, _FIONREAD, b"\0\0\0\0"))[0]
    return n


class Backoff:
    """Delays for a polling loop: ``first`` seconds, doubling up to ``cap``.

    ``next(left)`` returns the next delay, never more than ``left`` seconds (the time
    to a deadline; None means no deadline).  ``reset()`` starts again from ``first``.
    The one back-off rule for loops that wait for something no fd reports (a reader
    opening a FIFO, a consumer taking a message).
    """

    __slots__ = ("cap", "delay", "first")

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def next(self, left: float | None = None) -> float:
        d = self.delay
        self.delay = min(d * 2, self.cap)
        return d if left is None else max(0.0, min(d, left))

    def reset(self) -> None:
        self.delay = self.first


def drain(fd: int) -> None:
    """Read a non-blocking pipe empty, dropping what it held (a private peek pipe)."""
    try:
        while os.read(fd, 1 << 16):
            pass
    except BlockingIOError:
        pass


def pipe_capacity(fd: int) -> int:
    """The pipe's size in bytes where the kernel tells it (Linux), else 8192 (macOS)."""
    if _F_GETPIPE_SZ is None:
        return 8192
    size: int = fcntl.fcntl(fd, _F_GETPIPE_SZ)
    return size


def sidecar_lock(path: str, suffix: str) -> int:
    """An fd on ``path + suffix``, a lock file for systems that refuse locks on FIFOs (macOS).

    Created with mode 0600 if missing, never through a symlink; only flock() is used on it.
    """
    lock_path = path + suffix
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_a_fifo(lock_path, _describe(st.st_mode).capitalize())
    except BaseException:
        os.close(fd)
        raise
    return fd


#: Linux lets flock() and open-file-description locks be taken on FIFO fds (and they are
#: independent of each other); macOS refuses every advisory lock on a FIFO.
LOCKS_ON_FIFOS = sys.platform.startswith("linux")


#: The one room rule (typed here for mypy: _parse's types are in its .pxd).
free_slots: Callable[[int, int, int], int] = _parse.free_slots

#: The pipe slot size (Linux: one page); see ``_parse.free_slots``.
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def room_for(fd: int, size: int, per_write: int) -> bool:
    """Whether a message of ``size`` bytes fits in the pipe behind ``fd`` now, sent as
    fragments of at most ``per_write`` payload bytes, each one atomic write.

    The one room estimate: ``fastfifo.aio.Writer`` and ``fastfifo.Queue`` ask it before
    they start a large message they must not leave half-written.  It errs towards "no":
    Linux counts a pipe's capacity in page-sized slots, and a write that does not fit in
    the last slot's free space takes a new one, so two neighbouring slots always hold
    more than a page: the bytes waiting fill at most ``2 * ceil(waiting / page) + 1``
    slots, and each fragment (up to PIPE_BUF bytes) takes a slot of its own.  Elsewhere
    (macOS) the pipe is a byte buffer.  A wrong "yes" costs a wait, never data.
    """
    writes = -(-size // per_write) + 1  # the first fragment also carries the total length
    capacity = pipe_capacity(fd)
    waiting = bytes_waiting(fd)
    if _F_GETPIPE_SZ is None:
        return size + 16 * writes <= capacity - waiting
    return writes <= free_slots(capacity, waiting, PAGE)
