"""What ``fastfifo stat`` finds out about a path, without disturbing a FIFO there.

The type, owner and mode from ``lstat``; who has the FIFO open from ``/proc`` (Linux);
and, only when a reader already has it open, the pipe size and the bytes buffered in it.
The command's text output is in ``fastfifo/cli/_stat.py``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable
from typing import Any

from ._open import _F_GETPIPE_SZ, bytes_waiting

_KINDS: list[tuple[Callable[[int], bool], str]] = [
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISREG, "regular file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
]


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "unknown")


def _user(uid: int) -> str | None:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return None


def _group(gid: int) -> str | None:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return None


def list_openers(st: os.stat_result) -> tuple[list[dict[str, Any]], bool] | None:
    """Who has this FIFO open, from /proc (Linux): ([{pid, command, fd, access}], complete).

    ``complete`` is false when some processes' fds could not be inspected (another
    user's, without privileges).  None where there is no /proc.
    """
    if not os.path.isdir("/proc/self/fd"):
        return None
    me = os.getpid()
    found: list[dict[str, Any]] = []
    complete = True
    o_path = getattr(os, "O_PATH", 0)
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        fd_dir = f"/proc/{name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            complete = False
            continue
        except OSError:  # the process ended meanwhile
            continue
        for fd in fds:
            try:
                s = os.stat(f"{fd_dir}/{fd}")
                if s.st_ino != st.st_ino or s.st_dev != st.st_dev:
                    continue
                with open(f"/proc/{name}/fdinfo/{fd}") as f:
                    flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
                with open(f"/proc/{name}/comm") as f:
                    command = f.read().strip()
            except (OSError, StopIteration, ValueError, IndexError):
                continue
            if flags & o_path:  # a handle that cannot read or write (another `stat`)
                continue
            access = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}.get(
                flags & os.O_ACCMODE, "?"
            )
            found.append({"pid": int(name), "command": command, "fd": int(fd), "access": access})
    found.sort(key=lambda o: (o["pid"], o["fd"]))
    return found, complete


def _open_for_stat(path: str, st: os.stat_result) -> int:
    """A read-only, non-blocking fd on exactly the FIFO that ``st`` describes.

    On Linux the path is opened with O_PATH first (that opens nothing: no reader or
    writer appears), checked, and then reopened read-only through /proc/self/fd, so
    nothing but the FIFO we checked is ever opened, even if the path changes meanwhile.
    """
    o_path = getattr(os, "O_PATH", 0)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if o_path and os.path.isdir("/proc/self/fd"):
        handle = os.open(path, o_path | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _check_same_fifo(handle, st, path)
            fd = os.open(f"/proc/self/fd/{handle}", flags)
        finally:
            os.close(handle)
    else:
        fd = os.open(path, flags | os.O_NOFOLLOW)
    try:
        _check_same_fifo(fd, st, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_same_fifo(fd: int, st: os.stat_result, path: str) -> None:
    """Raise EAGAIN unless ``fd`` is the FIFO that ``st`` describes (the path changed)."""
    s = os.fstat(fd)
    if not stat.S_ISFIFO(s.st_mode) or (s.st_dev, s.st_ino) != (st.st_dev, st.st_ino):
        raise OSError(errno.EAGAIN, "the path changed while stat looked at it", path)


def stat_fifo(path: str, *, force_open: bool = False) -> dict[str, Any]:
    """What ``fastfifo stat`` reports, as a dict (the ``--json`` output).

    Never disturbs the FIFO: it is opened (read-only, non-blocking, never read) only
    when a reader already has it open, so no writer waiting for a reader is woken, no
    reader sees a writer come and go (an end of stream), no data is consumed and the
    pipe size is not changed.  ``force_open`` opens it even when no reader is seen.
    """
    st = os.lstat(path)  # never follows a symlink, never opens anything
    kind = kind_of(st.st_mode)
    mode = stat.S_IMODE(st.st_mode)
    info: dict[str, Any] = {
        "path": path,
        "type": kind,
        "is_fifo": kind == "fifo",
        "uid": st.st_uid,
        "owner": _user(st.st_uid),
        "gid": st.st_gid,
        "group": _group(st.st_gid),
        "mode": f"{mode:04o}",
        "permissions": stat.filemode(st.st_mode),
    }
    problems = []
    if kind != "fifo":
        problems.append(f"it is a {kind}, not a FIFO")
    if st.st_uid != os.geteuid():
        problems.append(f"it is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append("group or others can write to it")
    info["fastfifo_accepts"] = not problems
    info["fastfifo_refuses_because"] = "; ".join(problems) or None
    parent = os.path.dirname(os.path.abspath(path))
    try:
        pst = os.stat(parent)
        info["directory"] = {
            "path": parent,
            "mode": f"{stat.S_IMODE(pst.st_mode):04o}",
            "private": pst.st_uid == os.geteuid() and not pst.st_mode & 0o077,
        }
    except OSError:
        info["directory"] = None
    info.update(
        openers=None,
        openers_complete=None,
        readers=None,
        writers=None,
        opened=False,
        pipe_size=None,
        buffered_bytes=None,
        not_opened_because=None,
    )
    if kind != "fifo":
        info["not_opened_because"] = "it is not a FIFO"
        return info
    seen = list_openers(st)
    if seen is not None:
        openers, complete = seen
        info["openers"] = openers
        info["openers_complete"] = complete
        info["readers"] = sum(o["access"] in ("r", "rw") for o in openers)
        info["writers"] = sum(o["access"] in ("w", "rw") for o in openers)
    if not (force_open or info["readers"]):
        info["not_opened_because"] = (
            "no process could be seen to have the FIFO open for reading (this system has no /proc)"
            if seen is None
            else "no reader has the FIFO open"
        ) + (
            "; opening it as a reader would wake a writer waiting for one, whose message "
            "would then be lost when stat closes it (--open does it anyway)"
        )
        return info
    try:
        fd = _open_for_stat(path, st)
    except OSError as e:
        info["not_opened_because"] = f"opening it failed: {e.strerror or e}"
        return info
    try:
        info["opened"] = True
        if _F_GETPIPE_SZ is not None:
            info["pipe_size"] = fcntl.fcntl(fd, _F_GETPIPE_SZ)
        info["buffered_bytes"] = bytes_waiting(fd)
    finally:
        os.close(fd)
    return info
