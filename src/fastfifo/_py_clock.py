"""The pure core's libc helpers (tee, OFD locks), deadlines and SIGPIPE-safe writes.

Twin of ``_clock.pxi`` and ``_posix.h``; also loads ``_parse.py`` (the wire format and
parser both cores share) as source.  ``_core_py`` is the module the rest of fastfifo
imports.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import importlib.util
import os
import signal
import struct
import sys
import time
from types import ModuleType
from typing import Any

from ._open import check_timeout

BACKEND = "python"


def _load_parse_source() -> ModuleType:
    """``_parse.py`` run uncompiled (the compiled ``fastfifo._parse``, when present, would
    shadow it on a plain import: it is the same source, typed for C)."""
    name = __name__.rpartition(".")[0] + "._parse_py"
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_parse.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: The shared wire format, parser and claim sizing (``_parse.py``), uncompiled.
parse: Any = _load_parse_source()

# tee() has no os.* wrapper; on Linux take it from libc (ctypes is part of CPython).
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
HAVE_TEE = _libc is not None and hasattr(_libc, "tee")
_SPLICE_F_NONBLOCK = 2
# Open-file-description locks (Linux fcntl.h): released when the holder dies, and
# independent of flock(), so readers' and writers' locks never interact.
_F_OFD_GETLK, _F_OFD_SETLK = 36, 37
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86_64/aarch64


def _tee(fd_in: int, fd_out: int, n: int) -> int:
    r: int = _libc.tee(fd_in, fd_out, ctypes.c_size_t(n), _SPLICE_F_NONBLOCK)  # type: ignore[union-attr]
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _ofd_lock(fd: int, kind: int, at: int = 0) -> None:
    """A lock of ``kind`` (F_RDLCK, F_WRLCK, F_UNLCK) on byte ``at``; non-blocking."""
    fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, at, 1, 0))


def _ofd_held(fd: int, at: int = 0, length: int = 1) -> bool:
    """Whether another open file description holds a lock on [at, at + length) (0: to
    the end)."""
    res = fcntl.fcntl(fd, _F_OFD_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, at, length, 0))
    return bool(_FLOCK.unpack(res)[0] != fcntl.F_UNLCK)


def _to_deadline(timeout: object) -> float | None:
    """None (no deadline) or a monotonic time; as ``to_deadline`` in the Cython core
    (the rules are ``_open.check_timeout``'s: inf or huge waits for ever, negative does
    not wait, NaN and non-numbers are refused)."""
    wait = check_timeout(timeout)
    return None if wait is None else time.monotonic() + wait


def _guarded_write(fd: int, data: bytes | memoryview | list[Any]) -> int:
    # SIGPIPE at SIG_DFL would kill us on EPIPE: block it around the write and
    # consume the signal the failed write queued (see guarded_write in _clock.pxi).
    # (A list is written in one writev().)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        return os.writev(fd, data) if isinstance(data, list) else os.write(fd, data)
    except BrokenPipeError:
        if signal.SIGPIPE not in old:
            if hasattr(signal, "sigtimedwait"):
                signal.sigtimedwait({signal.SIGPIPE}, 0)
            elif signal.SIGPIPE in signal.sigpending():  # macOS: no sigtimedwait
                signal.sigwait({signal.SIGPIPE})
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def sigpipe_is_default() -> bool:
    """True when SIGPIPE would kill this process now (its disposition is SIG_DFL).

    Asks the kernel where it can without C (Linux: /proc/self/status lists the ignored
    and caught signals), else Python's table, which starts as the kernel's.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f if b":" in line)
        bit = 1 << (signal.SIGPIPE - 1)
        return not (int(fields[b"SigIgn"], 16) | int(fields[b"SigCgt"], 16)) & bit
    except (OSError, KeyError, ValueError):
        return signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL


_kernel = [-1.0, False]  # when the kernel was last asked (monotonic seconds), what it said


def sigpipe_may_kill(at_open: bool) -> bool:
    """Whether a write now must guard against SIGPIPE: as ``sigpipe_may_kill`` in the
    Cython core (the kernel's answer at open, Python's table on every write, the kernel
    again once a millisecond)."""
    if at_open or signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL:
        return True
    now = time.monotonic()
    if now - _kernel[0] >= 0.001:
        _kernel[:] = [now, sigpipe_is_default()]
    return _kernel[1] is True


def peek(fd: int, peek_r: int, peek_w: int, nbytes: int) -> bytes:
    """Up to ``nbytes`` from the head of the pipe ``fd``, consuming none: see the Cython core."""
    if not HAVE_TEE:
        raise NotImplementedError("peeking at a pipe needs tee() (Linux)")
    if nbytes <= 0:
        return b""
    while True:
        try:
            r = _tee(fd, peek_w, nbytes)
            break
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return b""
            if e.errno != errno.EINTR:
                raise OSError(e.errno, f"{e.strerror} (peeking with tee)") from None
    chunks = []
    got = 0
    while got < r:  # drain it all: the pipe must end empty
        chunk = os.read(peek_r, r - got)
        if not chunk:
            raise OSError(0, "the peek pipe ended early (reading the peek pipe)")
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
