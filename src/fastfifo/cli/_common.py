"""What every ``fastfifo`` command shares: exit statuses, error lines, notices, options."""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import stat
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import fastfifo

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_NOT_A_FIFO = 4
EXIT_MISSING = 5
EXIT_PERMISSION = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

#: Said once, in ``fastfifo --help`` (and docs/guide.md); each command's help points there.
EXIT_STATUS_HELP = """\
exit status (every command):
  0    success
  1    error (one line on stderr): I/O error, the reader went away, message too large...
  2    usage error (bad option or argument; also bare `fastfifo`, which prints this help)
  3    timeout: recv got no message (or fewer than --count) within --timeout or before
       the stream ended (--until-eof); send found no reader within --open-timeout, the
       pipe stayed full for --timeout, or messages were still in it after --linger
  4    something other than a FIFO (a file, directory, symlink...) is at PATH
  5    PATH does not exist (for mkfifo: its directory does not exist)
  6    permission denied (by the system, or fastfifo's owner/mode check: see
       --no-strict-permissions)
  130  interrupted (Ctrl-C); 143: terminated (SIGTERM)"""

SEE_EXIT_STATUS = (
    "exit status: listed in 'fastfifo --help' (0 success, 1 error, 2 usage, 3 timeout...)"
)

FORMATTER = argparse.RawDescriptionHelpFormatter

#: Seconds a command waits before it says on stderr (a terminal only) what it waits for.
NOTICE_AFTER = 1.0


class Terminated(BaseException):
    """SIGTERM arrived: leave like Ctrl-C does, through the same clean-up paths."""


class UsageError(Exception):
    """A bad argument found after parsing (exit 2)."""


class CommandError(Exception):
    """An error in the command's own words (its options, not the library's): one line."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``fastfifo recv: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def wrap(text: str) -> str:
    return textwrap.fill(text, width=88)


# ------------------------------------------------------------------ errors and exit statuses


def exit_status(exc: BaseException) -> int:
    """The documented exit status for an exception that ends a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, CommandError):
        return exc.status
    if isinstance(exc, UsageError):
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
    """One line saying what went wrong, in the library's words (they name the path)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def say(command: str, kind: str, text: str) -> None:
    """``fastfifo COMMAND: KIND: text`` on stderr, as one line."""
    print(f"fastfifo {command}: {kind}: {' '.join(text.split())}", file=sys.stderr, flush=True)


T = TypeVar("T")


def open_endpoint(
    opener: Callable[[], T], path: str, *, strict_permissions: bool, open_timeout: float | None
) -> T:
    """Open a Writer or Reader; errors at PATH come out in the command's own words.

    The library's messages name its Python options (``strict_permissions=False``,
    ``open_timeout``, ``fastfifo.mkfifo()``); here the error is recognised by its type
    and path, and the command says what to do with its options instead.  Any other
    error keeps the library's text.
    """
    try:
        return opener()
    except OSError as exc:
        if exc.filename != path:
            raise
        text = _open_error_text(exc, path, strict_permissions, open_timeout)
        if text is None:
            raise
        raise CommandError(exit_status(exc), text) from None


def _open_error_text(
    exc: OSError, path: str, strict_permissions: bool, open_timeout: float | None
) -> str | None:
    from .._fifostat import kind_of

    if isinstance(exc, fastfifo.NotAFifoError):
        try:
            what = "a " + kind_of(os.lstat(path).st_mode)
        except OSError:
            what = "something else"
        return (
            f"{path}: {what} is there, not a FIFO; fastfifo leaves it alone (remove it, "
            f"or make a FIFO elsewhere with `fastfifo mkfifo PATH`)"
        )
    if isinstance(exc, FileNotFoundError):
        return f"{path}: no FIFO there; make one with `fastfifo mkfifo {path}` (or pass --create)"
    if isinstance(exc, TimeoutError):
        return (
            f"{path}: no reader opened the FIFO within {open_timeout:g} s; start a reader "
            f"first (`fastfifo recv {path}`), or give a longer --open-timeout (without it, "
            "send waits for ever)"
        )
    if isinstance(exc, PermissionError) and strict_permissions:
        # fastfifo's own owner/mode check (the system let us open it), not the system's.
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if st.st_uid != os.geteuid():
            return (
                f"{path}: the FIFO is owned by uid {st.st_uid}, not by you (uid "
                f"{os.geteuid()}); another user could read or inject messages. Pass "
                "--no-strict-permissions if you trust that user"
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return (
                f"{path}: the FIFO is writable by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}), so other users could inject messages; "
                f"`chmod 600 {path}`, or pass --no-strict-permissions if that is intended"
            )
    return None


# ------------------------------------------------------------------ saying what we wait for


def _notice_delay() -> float | None:
    """Seconds before a notice; None: no notices (stderr is not a terminal)."""
    try:
        if sys.stderr is None or not sys.stderr.isatty():
            return None
    except ValueError:  # stderr closed
        return None
    text = os.environ.get("FASTFIFO_NOTICE_AFTER", "")
    try:
        delay = float(text) if text else NOTICE_AFTER
    except ValueError:
        return NOTICE_AFTER
    return delay if delay == delay else NOTICE_AFTER  # NaN: the default


@contextlib.contextmanager
def waiting(command: str, text: str) -> Iterator[None]:
    """While the block waits, say ``text`` on stderr once it has waited a moment.

    Only when stderr is a terminal: scripts and pipelines see nothing.  The moment is
    ``NOTICE_AFTER`` seconds, or ``$FASTFIFO_NOTICE_AFTER`` (0 says it at once).
    """
    delay = _notice_delay()
    if delay is None:
        yield
        return
    if delay <= 0:
        say(command, "waiting", text)
        yield
        return
    import threading

    timer = threading.Timer(delay, say, (command, "waiting", text))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# ------------------------------------------------------------------ argument types and options


def octal_mode(text: str) -> int:
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


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be a finite number >= 0, not {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_endpoint_options(p: argparse.ArgumentParser) -> None:
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


def add_encoding_options(p: argparse.ArgumentParser, verb: str) -> None:
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
