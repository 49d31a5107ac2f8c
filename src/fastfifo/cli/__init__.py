"""The ``fastfifo`` command (also ``python -m fastfifo``); ``main`` is its entry point.

One module per command (``_mkfifo``, ``_send``, ``_recv``, ``_stat``, ``_benchcmd``,
``_relay``),
each with ``add_parser(sub)`` and ``run(args)``; what they share (exit statuses, error
lines, notices on a terminal, common options) is in ``_common``.  Exit statuses scripts
can rely on are the ``EXIT_*`` constants (and ``fastfifo --help``); every error is one
line on stderr, ``fastfifo COMMAND: error: ...``.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
from collections.abc import Sequence
from typing import Any

import fastfifo

from . import _benchcmd, _mkfifo, _recv, _relay, _send, _stat
from ._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_MISSING,
    EXIT_NOT_A_FIFO,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_STATUS_HELP,
    EXIT_TERMINATED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    FORMATTER,
    CommandError,
    Parser,
    Terminated,
    UsageError,
    describe,
    exit_status,
    say,
    wrap,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING",
    "EXIT_NOT_A_FIFO",
    "EXIT_OK",
    "EXIT_PERMISSION",
    "EXIT_TERMINATED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fastfifo",
        formatter_class=FORMATTER,
        description=wrap(
            "Unix named pipes (FIFOs) as a fast, correct message queue: make one, "
            "send and receive messages from the shell, look inside one, benchmark."
        ),
        epilog="examples:\n"
        "  mkdir -m 700 /tmp/jobs && fastfifo mkfifo /tmp/jobs/q   # mode 0600\n"
        "  fastfifo send /tmp/jobs/q 'resize a.jpg' 'resize b.jpg' &\n"
        "  fastfifo recv /tmp/jobs/q --count 1     # resize a.jpg; b waits in the FIFO\n"
        "  fastfifo recv /tmp/jobs/q --until-eof   # resize b.jpg; ends when send has left\n"
        "  fastfifo stat /tmp/jobs/q --json\n"
        "  fastfifo bench\n\n"
        "'fastfifo COMMAND --help' tells more.\n\n" + EXIT_STATUS_HELP,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"fastfifo {fastfifo.__version__} ({fastfifo.backend} core)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (_mkfifo, _send, _recv, _stat, _benchcmd, _relay):
        command.add_parser(sub)
    return parser


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status (``fastfifo --help`` lists them)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        # Bare `fastfifo`: the whole help, on stderr (nothing was asked for on stdout),
        # and the usage-error status, so a script that lost its command does not pass.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
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
    except (KeyboardInterrupt, Terminated) as e:
        return exit_status(e)
    except UsageError as e:
        say(args.command, "error", f"{e} (see 'fastfifo {args.command} --help')")
        return EXIT_USAGE
    except CommandError as e:
        say(args.command, "error", str(e))
        return e.status
    except (OSError, ValueError, queue.Empty, queue.Full) as e:
        say(args.command, "error", describe(e))
        return exit_status(e)
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
