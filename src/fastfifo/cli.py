"""The ``fastfifo`` command (also ``python -m fastfifo``).

Subcommands: ``mkfifo``, ``send``, ``recv``, ``stat``, ``bench`` and ``relay``
(``_cli_relay``).  Exit statuses
scripts can rely on are the ``EXIT_*`` constants below (and ``fastfifo --help``);
every error is one line on stderr, ``fastfifo COMMAND: error: ...``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import fcntl
import json
import os
import queue
import signal
import stat
import struct
import sys
import termios
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import fastfifo

from . import _cli_relay, _open

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_NOT_A_FIFO = 4
EXIT_MISSING = 5
EXIT_PERMISSION = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

EXIT_STATUS_HELP = """\
exit status:
  0    success
  1    error (one line on stderr): I/O error, the reader went away, message too large...
  2    usage error (bad option or argument)
  3    timeout: recv got no message (or fewer than --count) within --timeout or before
       the stream ended (--until-eof); send found no reader within --open-timeout, or
       the pipe stayed full for --timeout
  4    something other than a FIFO (a file, directory, symlink...) is at PATH
  5    PATH does not exist (for mkfifo: its directory does not exist)
  6    permission denied (by the system, or fastfifo's owner/mode check: see
       --no-strict-permissions)
  130  interrupted (Ctrl-C); 143: terminated (SIGTERM)"""

_FIONREAD = getattr(termios, "FIONREAD", 0x541B)


class _Terminated(BaseException):
    """SIGTERM arrived: leave like Ctrl-C does, through the same clean-up paths."""


class _UsageError(Exception):
    """A bad argument found after parsing (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``fastfifo recv: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ------------------------------------------------------------------ errors and exit statuses


def exit_status(exc: BaseException) -> int:
    """The documented exit status for an exception that ends a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, _Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, _UsageError):
        return EXIT_USAGE
    if isinstance(exc, (TimeoutError, queue.Empty, queue.Full)):
        return EXIT_TIMEOUT
    if isinstance(exc, fastfifo.NotAFifoError):
        return EXIT_NOT_A_FIFO
    if isinstance(exc, FileNotFoundError):
        return EXIT_MISSING
    if isinstance(exc, PermissionError):
        return EXIT_PERMISSION
    return EXIT_ERROR


def describe(exc: BaseException) -> str:
    """One line saying what went wrong (library messages name the path and the fix)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    # The library speaks Python; on the command line the option has another name.
    text = text.replace("pass strict_permissions=False", "pass --no-strict-permissions")
    text = text.replace("Pass strict_permissions=False", "Pass --no-strict-permissions")
    text = text.replace("fastfifo.mkfifo(path) or `mkfifo`", "`fastfifo mkfifo PATH`")
    text = text.replace("fastfifo.mkfifo() / `mkfifo`", "`fastfifo mkfifo PATH`")
    text = text.replace(
        "pass a longer open_timeout (None waits for ever)",
        "give a longer --open-timeout (without it, send waits for ever)",
    )
    return " ".join(text.split())


def _say(command: str, kind: str, text: str) -> None:
    print(f"fastfifo {command}: {kind}: {' '.join(text.split())}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ argument types


def _octal_mode(text: str) -> int:
    digits = text[2:] if text.lower().startswith("0o") else text
    try:
        mode = int(digits, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: give octal permission bits such as 600 or 0600"
        ) from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: only permission bits (at most 777) are allowed"
        )
    return mode


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be a finite number >= 0, not {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


# ------------------------------------------------------------------ message encodings
#
# recv prints each message in one of four encodings and send reads the same four, so
# any message (binary ones included) survives `fastfifo recv ... | fastfifo send ...`.


def _encoding(args: argparse.Namespace) -> str:
    return "null" if args.null else "hex" if args.hex else "json" if args.json else "raw"


def decode_input(item: bytes, encoding: str) -> bytes:
    """One message from one input item (a line, a NUL-terminated record or an argument)."""
    if encoding in ("raw", "null"):
        return item
    if encoding == "hex":
        try:
            return bytes.fromhex(item.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError(f"not hexadecimal: {item[:40]!r}") from None
    try:
        obj = json.loads(item)
    except ValueError:
        raise ValueError(f"not JSON: {item[:40]!r}") from None
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogatepass")
    if isinstance(obj, dict) and len(obj) == 1:
        if isinstance(obj.get("text"), str):
            return str(obj["text"]).encode("utf-8", "surrogatepass")
        if isinstance(obj.get("base64"), str):
            try:
                return base64.b64decode(obj["base64"], validate=True)
            except binascii.Error:
                raise ValueError(f"not base64: {obj['base64'][:40]!r}") from None
    raise ValueError(
        f'JSON input must be a string, {{"text": "..."}} or {{"base64": "..."}}, not {item[:40]!r}'
    )


def encode_output(msg: bytes, encoding: str) -> bytes:
    """How recv prints one message (its terminator included)."""
    if encoding == "raw":
        return msg + b"\n"
    if encoding == "null":
        return msg + b"\0"
    if encoding == "hex":
        return msg.hex().encode("ascii") + b"\n"
    try:
        obj = {"text": msg.decode("utf-8")}
    except UnicodeDecodeError:
        obj = {"base64": base64.b64encode(msg).decode("ascii")}
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


# ------------------------------------------------------------------ mkfifo


def _mkfifo_main(args: argparse.Namespace) -> int:
    path: str = args.path
    mode: int = args.mode
    old = os.umask(0)  # the mode asked for, exactly (as `mkfifo -m` does), not mode & ~umask
    try:
        fastfifo.mkfifo(path, mode, exist_ok=False)
        created = True
    except FileExistsError:  # a FIFO is there (anything else raises NotAFifoError)
        created = False
    finally:
        os.umask(old)
    if not created:
        have = stat.S_IMODE(os.lstat(path).st_mode)
        if have != mode:
            _say(
                "mkfifo",
                "note",
                f"{path}: a FIFO is already there, with mode {have:04o} "
                f"(not {mode:04o}); it was left as it is",
            )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        _say(
            "mkfifo",
            "note",
            f"{path}: mode {mode:04o} lets group or others write to it; "
            "send and recv (and the Python API) refuse such a FIFO unless "
            "--no-strict-permissions (strict_permissions=False) is given",
        )
    return EXIT_OK


# ------------------------------------------------------------------ send


def _split_stdin(separator: bytes, limit: int) -> Iterator[list[bytes]]:
    """Batches of items from stdin, as soon as each read brings some (no waiting to fill)."""
    if sys.stdin is None:
        return
    fd = sys.stdin.fileno()
    tail = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        parts = (tail + chunk).split(separator)
        tail = parts.pop()
        if len(tail) > limit:
            raise fastfifo.MessageTooLargeError(
                f"an input line of more than {limit} bytes (no {separator!r} yet): too large "
                "for one message"
            )
        if parts:
            yield parts
    if tail:
        yield [tail]


def _send_main(args: argparse.Namespace) -> int:
    encoding = _encoding(args)
    if args.null and args.message:
        raise _UsageError("-0/--null applies to standard input; give no MESSAGE with it")
    given: list[bytes] = []
    for i, arg in enumerate(args.message, 1):
        try:
            given.append(decode_input(os.fsencode(arg), encoding))
        except ValueError as e:
            raise _UsageError(f"MESSAGE {i}: {e}") from None
    if args.framing == "lines":
        for i, m in enumerate(given, 1):
            if b"\n" in m:
                raise _UsageError(
                    f"MESSAGE {i} contains a newline, which lines framing cannot "
                    "carry (use --framing frames)"
                )
    writer = fastfifo.Writer(
        args.path,
        framing=args.framing,
        open_timeout=args.open_timeout,
        strict_permissions=args.strict_permissions,
        create=args.create,
    )
    sent = 0
    try:
        if given:
            batches: Iterator[list[bytes]] = iter([given])
        else:
            separator = b"\0" if args.null else b"\n"
            batches = _split_stdin(separator, 4 * writer.max_message_size + 16)
        for items in batches:
            batch = given
            if not given:
                batch = []
                for item in items:
                    try:
                        batch.append(decode_input(item, encoding))
                    except ValueError as e:
                        raise ValueError(f"input item {sent + len(batch) + 1}: {e}") from None
            try:
                writer.put_many(batch, timeout=args.timeout)
            except fastfifo.Full as e:
                sent += e.sent
                raise fastfifo.Full(
                    f"{args.path}: the pipe stayed full for {args.timeout:g} s (the reader is "
                    f"not keeping up); {sent} messages were sent, the rest were not",
                    sent,
                ) from None
            sent += len(batch)
    except (BrokenPipeError, ValueError) as e:
        raise type(e)(f"{describe(e)} ({sent} messages were sent before this)") from None
    finally:
        writer.close()
    return EXIT_OK


# ------------------------------------------------------------------ recv


class _Output:
    """Writes recv's messages to stdout, a batch at a time, flushing after each batch."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.out = sys.stdout.buffer
        self.printed = 0
        self.warned = encoding not in ("raw", "null")  # hex and JSON are unambiguous
        self.terminator = b"\0" if encoding == "null" else b"\n"

    def write(self, msgs: Sequence[bytes]) -> None:
        if not self.warned:
            for m in msgs:
                if self.terminator in m:
                    self.warned = True
                    what = "a newline" if self.terminator == b"\n" else "a NUL byte"
                    _say(
                        "recv",
                        "warning",
                        f"message {self.printed + 1} contains {what}, so "
                        "its output is ambiguous; use --hex or --json for binary messages",
                    )
                    break
        if self.encoding in ("raw", "null"):
            data = self.terminator.join(msgs) + self.terminator
        else:
            data = b"".join(encode_output(m, self.encoding) for m in msgs)
        self.out.write(data)
        self.out.flush()
        self.printed += len(msgs)


def _recv_main(args: argparse.Namespace) -> int:
    # With --count or --shared, recv claims messages exactly (the shared-reader protocol):
    # it never takes from the FIFO a message it will not print, so the messages after the
    # N-th stay there for the next reader.  Otherwise it reads like a plain Reader (fast,
    # and a lone unterminated last line is delivered at end of stream).
    claims = args.count is not None or args.shared
    encoding = _encoding(args)
    output = _Output(encoding)
    reader = fastfifo.Reader(
        args.path,
        framing=args.framing,
        stop_at_eof=args.until_eof,
        shared=claims,
        strict_permissions=args.strict_permissions,
        create=args.create,
    )
    got = 0
    status = EXIT_OK
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", fastfifo.IncompleteMessageWarning)
            warnings.showwarning = _recv_warning
            while args.count is None or got < args.count:
                want = 1 if args.shared else 1000
                if args.count is not None:
                    want = min(want, args.count - got)
                try:
                    msgs = reader.get_many(max_messages=want, timeout=args.timeout)
                except queue.Empty:
                    if got == 0 or args.count is not None:
                        _say(
                            "recv",
                            "error",
                            _short_of(args, got, f"within the timeout of {args.timeout:g} s"),
                        )
                        status = EXIT_TIMEOUT
                    break
                except EOFError:
                    if args.count is not None:
                        _say("recv", "error", _short_of(args, got, "before every writer left"))
                        status = EXIT_TIMEOUT
                    break
                except (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError) as e:
                    _say("recv", "warning", describe(e))
                    continue
                try:
                    output.write(msgs)
                except BrokenPipeError:
                    _stdout_gone()
                    _say(
                        "recv",
                        "error",
                        f"standard output was closed; {len(msgs)} messages taken "
                        "from the FIFO were not printed (they are lost)",
                    )
                    return EXIT_ERROR
                got += len(msgs)
    except (KeyboardInterrupt, _Terminated):
        if reader.buffered:
            _say(
                "recv",
                "note",
                f"stopped with {reader.buffered} bytes read from the FIFO and "
                "not printed (they are lost)",
            )
        raise
    finally:
        reader.close()
    return status


def _short_of(args: argparse.Namespace, got: int, why: str) -> str:
    if args.count is None:
        return f"{args.path}: no message arrived {why}"
    return f"{args.path}: {got} of {args.count} messages arrived {why}"


def _recv_warning(message: Warning | str, category: type[Warning], *rest: Any, **kw: Any) -> None:
    _say("recv", "warning", str(message))


def _stdout_gone() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# ------------------------------------------------------------------ stat

_KINDS: list[tuple[Callable[[int], bool], str]] = [
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISREG, "regular file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
]


def _kind(mode: int) -> str:
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


def _openers(st: os.stat_result) -> tuple[list[dict[str, Any]], bool] | None:
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
    kind = _kind(st.st_mode)
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
    seen = _openers(st)
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
        info["not_opened_because"] = describe(e)
        return info
    try:
        info["opened"] = True
        if _open._F_GETPIPE_SZ is not None:
            info["pipe_size"] = fcntl.fcntl(fd, _open._F_GETPIPE_SZ)
        raw = fcntl.ioctl(fd, _FIONREAD, b"\0\0\0\0")
        info["buffered_bytes"] = struct.unpack("i", raw)[0]
    finally:
        os.close(fd)
    return info


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n} bytes ({n // scale} {unit})"
    return f"{n} bytes"


def format_stat(info: dict[str, Any]) -> str:
    """The text form of ``stat_fifo()``'s report."""
    kind = "FIFO" if info["is_fifo"] else f"{info['type']} (not a FIFO)"
    owner = f"{info['owner'] or '?'} (uid {info['uid']})"
    group = f"{info['group'] or '?'} (gid {info['gid']})"
    lines = [
        f"path:       {info['path']}",
        f"type:       {kind}",
        f"owner:      {owner}, group {group}",
        f"mode:       {info['mode']} ({info['permissions']})",
    ]
    if info["fastfifo_accepts"]:
        lines.append("fastfifo:   accepts it (yours, not writable by group or others)")
    else:
        lines.append(f"fastfifo:   refuses it: {info['fastfifo_refuses_because']}")
    d = info["directory"]
    if d:
        private = "private to you" if d["private"] else "NOT private: others can enter it"
        lines.append(f"directory:  {d['path']} (mode {d['mode']}, {private})")
    if not info["is_fifo"]:
        return "\n".join(lines)
    openers = info["openers"]
    if openers is None:
        lines.append("open by:    unknown (no /proc on this system)")
    else:
        access = {"r": "read", "w": "write", "rw": "read-write", "?": "?"}
        pids = len({o["pid"] for o in openers})
        summary = (
            f"{len(openers)} fd(s) in {pids} process(es): {info['readers']} for reading, "
            f"{info['writers']} for writing"
            if openers
            else "nobody"
        )
        if not info["openers_complete"]:
            summary += " (other users' processes could not be inspected)"
        lines.append(f"open by:    {summary}")
        for o in openers:
            lines.append(
                f"              pid {o['pid']} {o['command']} (fd {o['fd']}, {access[o['access']]})"
            )
    if info["opened"]:
        size = info["pipe_size"]
        lines.append(f"pipe size:  {_size(size) if size is not None else 'unknown here'}")
        lines.append(f"buffered:   {info['buffered_bytes']} bytes")
    else:
        lines.append(f"pipe size:  - (not opened: {info['not_opened_because']})")
        lines.append("buffered:   -")
    return "\n".join(lines)


def _stat_main(args: argparse.Namespace) -> int:
    info = stat_fifo(args.path, force_open=args.open)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_stat(info))
    if not info["is_fifo"]:
        _say("stat", "error", f"{args.path}: a {info['type']} is there, not a FIFO")
        return EXIT_NOT_A_FIFO
    return EXIT_OK


# ------------------------------------------------------------------ bench


def _bench_main(args: argparse.Namespace) -> int:
    from . import _bench  # (statistics, platform...): only this command needs it

    if args.plot and not _bench.have_matplotlib():
        _say(
            "bench",
            "error",
            "--plot needs matplotlib, which is not installed (pip install matplotlib)",
        )
        return EXIT_ERROR

    def progress(text: str) -> None:
        if not args.quiet:
            print(
                f"\r\033[K{text}" if sys.stderr.isatty() else text,
                end="" if sys.stderr.isatty() else "\n",
                file=sys.stderr,
                flush=True,
            )

    report = _bench.run(count=args.count, size=args.size, repeat=args.repeat, progress=progress)
    if sys.stderr.isatty() and not args.quiet:
        print("\r\033[K", end="", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_bench.format_table(report))
    if args.plot:
        try:
            _bench.plot(report, args.plot)
        except ImportError as e:  # installed, but broken
            _say("bench", "error", f"--plot: matplotlib could not be imported: {e}")
            return EXIT_ERROR
        if not args.quiet:
            print(f"plot written to {args.plot}", file=sys.stderr)
    return 0 if all(r["delivery"] == "ok" for r in report["results"]) else 1


# ------------------------------------------------------------------ the parser

_FORMATTER = argparse.RawDescriptionHelpFormatter


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=88)


def _add_endpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the FIFO")
    p.add_argument(
        "--framing",
        choices=("frames", "lines"),
        default="frames",
        help="frames (default): binary-safe, what Writer/Reader use by default; "
        "lines: one message per line, what shell tools read and write",
    )
    p.add_argument(
        "--create", action="store_true", help="create the FIFO (mode 0600) if it does not exist"
    )
    p.add_argument(
        "--no-strict-permissions",
        dest="strict_permissions",
        action="store_false",
        help="accept a FIFO owned by another user or writable by group/others",
    )


def _add_encoding_options(p: argparse.ArgumentParser, verb: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-0", "--null", action="store_true", help=f"{verb} NUL-terminated messages instead of lines"
    )
    g.add_argument("--hex", action="store_true", help=f"{verb} each message as a line of hex")
    g.add_argument(
        "--json",
        action="store_true",
        help=f'{verb} each message as a line of JSON: {{"text": ...}} (UTF-8) or '
        '{"base64": ...}' + (" (a plain JSON string is accepted too)" if verb == "read" else ""),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastfifo",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Unix named pipes (FIFOs) as a fast, correct message queue: make one, "
            "send and receive messages from the shell, look inside one, benchmark."
        ),
        epilog="examples:\n"
        "  fastfifo mkfifo /tmp/jobs/q              # mode 0600\n"
        "  fastfifo send /tmp/jobs/q 'resize a.jpg' 'resize b.jpg'\n"
        "  fastfifo recv /tmp/jobs/q --count 1 --timeout 5\n"
        "  fastfifo stat /tmp/jobs/q --json\n"
        "  fastfifo bench --plot bench.png\n\n"
        "'fastfifo COMMAND --help' tells more.\n\n" + EXIT_STATUS_HELP,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"fastfifo {fastfifo.__version__} ({fastfifo.backend} core)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser(
        "mkfifo",
        help="create a FIFO (mode 0600)",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Create a FIFO at PATH with exactly the mode given (the umask does not "
            "apply). If a FIFO is already there it is left as it is (exit 0, with a note if its "
            "mode differs); anything else there is an error (exit 4). Put FIFOs in a directory "
            "only you can enter (mkdir -m 700)."
        ),
        epilog="examples:\n"
        "  mkdir -m 700 /tmp/jobs && fastfifo mkfifo /tmp/jobs/q\n"
        "  fastfifo mkfifo /tmp/jobs/q --mode 640\n\n" + EXIT_STATUS_HELP,
    )
    m.add_argument("path", metavar="PATH")
    m.add_argument(
        "--mode",
        type=_octal_mode,
        default=0o600,
        help="octal permission bits (default 600: only you can read and write)",
    )
    m.set_defaults(func=_mkfifo_main)

    s = sub.add_parser(
        "send",
        help="send messages into a FIFO",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Send each MESSAGE as one message; with no MESSAGE, send each line of "
            "standard input (without its newline) as one message, as soon as it is read. Like "
            "`echo > fifo`, send first waits for a reader to open the FIFO (--open-timeout "
            "bounds that). Messages are whole and never mixed with other writers' (frames "
            "framing also carries messages larger than PIPE_BUF, and any bytes)."
        ),
        epilog="examples:\n"
        "  fastfifo send q 'job 1' 'job 2'           # two messages\n"
        "  seq 1000 | fastfifo send q                # 1000 messages, one per line\n"
        "  fastfifo send q --framing lines hello     # `cat q` prints: hello\n"
        "  fastfifo recv a --hex | fastfifo send b --hex   # forward any bytes, exactly\n"
        "  fastfifo send q --open-timeout 5 ping || echo 'no reader'\n\n" + EXIT_STATUS_HELP,
    )
    _add_endpoint_options(s)
    s.add_argument(
        "message",
        metavar="MESSAGE",
        nargs="*",
        help="messages to send (default: lines of standard input); put -- "
        "before a MESSAGE that starts with -",
    )
    s.add_argument(
        "--open-timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="wait at most S seconds for a reader to open the FIFO (default: for ever)",
    )
    s.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="wait at most S seconds while the pipe is full (default: for ever)",
    )
    _add_encoding_options(s, "read")
    s.set_defaults(func=_send_main)

    r = sub.add_parser(
        "recv",
        help="receive messages from a FIFO and print them",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Print each message received from the FIFO, one per line (the raw bytes, "
            "then a newline). Binary messages: use --hex or --json (or -0), which print any "
            "message unambiguously and which `fastfifo send` reads back. By default recv waits for "
            "messages for ever, also across writers coming and going; --count, --timeout and "
            "--until-eof end it. With --count or --shared recv takes from the FIFO exactly the "
            "messages it prints, so the others stay there for the next reader."
        ),
        epilog="examples:\n"
        "  fastfifo recv q                            # print messages until Ctrl-C\n"
        "  job=$(fastfifo recv q --count 1)           # take exactly one message\n"
        "  fastfifo recv q --timeout 0                # what is there now (exit 3: nothing)\n"
        "  fastfifo recv q --framing lines --until-eof   # like `cat q`\n"
        "  fastfifo recv q --shared --json            # one of several workers\n\n"
        + EXIT_STATUS_HELP,
    )
    _add_endpoint_options(r)
    r.add_argument(
        "--count",
        "-n",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop after N messages (exit 3 if fewer arrive)",
    )
    r.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="stop when no message arrives for S seconds (exit 3 if none did, or "
        "fewer than --count); 0 prints what is there now",
    )
    r.add_argument(
        "--until-eof",
        action="store_true",
        help="stop, like cat, once a writer has come and every writer has left",
    )
    r.add_argument(
        "--shared",
        action="store_true",
        help="other readers share this FIFO (recv or Reader(shared=True)): take one "
        "message at a time, each message to exactly one reader",
    )
    _add_encoding_options(r, "print")
    r.set_defaults(func=_recv_main)

    t = sub.add_parser(
        "stat",
        help="is it a FIFO, owner and mode, who has it open, pipe size, bytes buffered",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Report on PATH without disturbing it: the type (is it a FIFO), owner and "
            "mode (and whether fastfifo accepts them), the processes that have it open (from "
            "/proc, Linux), and, when a reader has it open, the pipe size and the bytes buffered "
            "in it now. stat never reads, never writes and never changes the pipe size; it opens "
            "the FIFO (read-only, non-blocking) only when a reader already has it open, because "
            "opening it as the only reader would wake a writer waiting in open(): what that "
            "writer then writes is lost when stat closes the FIFO (or it fails with a broken "
            "pipe)."
        ),
        epilog="examples:\n"
        "  fastfifo stat /tmp/jobs/q\n"
        "  fastfifo stat /tmp/jobs/q --json | jq .buffered_bytes\n"
        "  fastfifo stat /tmp/jobs/q > /dev/null && echo 'a FIFO is there'\n\n" + EXIT_STATUS_HELP,
    )
    t.add_argument("path", metavar="PATH")
    t.add_argument("--json", action="store_true", help="print a JSON object")
    t.add_argument(
        "--open",
        action="store_true",
        help="open the FIFO to read its pipe size and buffered bytes even when no "
        "reader is seen (may wake a writer waiting for a reader: see above)",
    )
    t.set_defaults(func=_stat_main)

    b = sub.add_parser(
        "bench",
        help="quick 1 -> 1 benchmark through a temporary FIFO",
        formatter_class=_FORMATTER,
        description=_wrap(
            "Run a producer process and a consumer through a temporary FIFO and print "
            "msg/s for fastfifo beside a hand-written os.read loop. Every run checks that each "
            "message arrived once, in order and intact (exit 1 if not)."
        ),
        epilog="examples:\n"
        "  fastfifo bench --count 500000 --size 64\n"
        "  fastfifo bench --json > bench.json\n"
        "  fastfifo bench --plot bench.png          # needs matplotlib\n",
    )
    b.add_argument("--count", type=_positive_int, default=200_000, help="messages per run (200000)")
    b.add_argument("--size", type=int, default=64, help="message size in bytes (64)")
    b.add_argument(
        "--repeat", type=_positive_int, default=3, help="runs per row; the median is shown (3)"
    )
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument(
        "--plot", metavar="FILE.png", help="also draw the results into FILE.png (needs matplotlib)"
    )
    b.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    b.set_defaults(func=_bench_main)

    _cli_relay.add_parser(sub, _FORMATTER, _wrap, EXIT_STATUS_HELP)
    return parser


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status (``fastfifo --help`` lists them)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse hands `send PATH --opt X MESSAGE...` its MESSAGEs as extras; anything
        # else left over is an unknown option or a stray argument.
        cut = extra.index("--") if "--" in extra else len(extra)
        before, after = extra[:cut], extra[cut + 1 :]
        if args.command != "send" or any(e.startswith("-") and e != "-" for e in before):
            parser.exit(
                EXIT_USAGE,
                f"fastfifo {args.command}: error: unrecognized arguments: "
                f"{' '.join(extra)} (see 'fastfifo {args.command} --help')\n",
            )
        args.message += before + after
    old_sigterm = None
    if args.command in ("send", "recv", "relay"):
        try:
            old_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread (main() called from a test, say)
            pass
    try:
        return int(args.func(args))
    except (KeyboardInterrupt, _Terminated) as e:
        return exit_status(e)
    except _UsageError as e:
        _say(args.command, "error", f"{e} (see 'fastfifo {args.command} --help')")
        return EXIT_USAGE
    except (OSError, ValueError, queue.Empty, queue.Full) as e:
        _say(args.command, "error", describe(e))
        return exit_status(e)
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
