"""``fastfifo mkfifo PATH [--mode 600]``: create a FIFO with exactly the mode asked for."""

from __future__ import annotations

import argparse
import os
import stat
from typing import Any

import fastfifo

from ._common import (
    EXIT_OK,
    FORMATTER,
    SEE_EXIT_STATUS,
    CommandError,
    exit_status,
    octal_mode,
    say,
    wrap,
)


def add_parser(sub: Any) -> None:
    m = sub.add_parser(
        "mkfifo",
        help="create a FIFO (mode 0600)",
        formatter_class=FORMATTER,
        description=wrap(
            "Create a FIFO at PATH with exactly the mode given (the umask does not "
            "apply). If a FIFO is already there it is left as it is (exit 0, with a note if its "
            "mode differs); anything else there is an error (exit 4). Put FIFOs in a directory "
            "only you can enter (mkdir -m 700)."
        ),
        epilog="examples:\n"
        "  mkdir -m 700 /tmp/jobs && fastfifo mkfifo /tmp/jobs/q\n"
        "  fastfifo mkfifo /tmp/jobs/q --mode 640\n\n" + SEE_EXIT_STATUS,
    )
    m.add_argument("path", metavar="PATH")
    m.add_argument(
        "--mode",
        type=octal_mode,
        default=0o600,
        help="octal permission bits (default 600: only you can read and write)",
    )
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path: str = args.path
    mode: int = args.mode
    old = os.umask(0)  # the mode asked for, exactly (as `mkfifo -m` does), not mode & ~umask
    try:
        fastfifo.mkfifo(path, mode, exist_ok=False)
        created = True
    except FileExistsError:  # a FIFO is there (anything else raises NotAFifoError)
        created = False
    except OSError as e:
        if e.filename is not None:
            raise
        # os.mkfifo's own errors (ENOTDIR, EACCES, EROFS...) do not carry the path.
        what = e.strerror or str(e)
        if isinstance(e, NotADirectoryError):
            what += " (something on the way to it is not a directory)"
        raise CommandError(exit_status(e), f"{path}: cannot create a FIFO: {what}") from None
    finally:
        os.umask(old)
    if not created:
        have = stat.S_IMODE(os.lstat(path).st_mode)
        if have != mode:
            say(
                "mkfifo",
                "note",
                f"{path}: a FIFO is already there, with mode {have:04o} "
                f"(not {mode:04o}); it was left as it is",
            )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        say(
            "mkfifo",
            "note",
            f"{path}: mode {mode:04o} lets group or others write to it; "
            "send and recv (and the Python API) refuse such a FIFO unless "
            "--no-strict-permissions (strict_permissions=False) is given",
        )
    return EXIT_OK
