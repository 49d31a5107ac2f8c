"""``fastfifo recv PATH``: print the messages that arrive, one per line (or hex, JSON, NUL)."""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
from collections.abc import Sequence
from typing import Any

import fastfifo

from ._codec import encode_output, encoding_of
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TIMEOUT,
    FORMATTER,
    SEE_EXIT_STATUS,
    Terminated,
    add_encoding_options,
    add_endpoint_options,
    describe,
    open_endpoint,
    positive_int,
    say,
    seconds,
    waiting,
    wrap,
)


def add_parser(sub: Any) -> None:
    r = sub.add_parser(
        "recv",
        help="receive messages from a FIFO and print them",
        formatter_class=FORMATTER,
        description=wrap(
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
        "  fastfifo recv q --shared --json            # one of several workers\n"
        "  while job=$(fastfifo recv q -n 1 --timeout 0 --quiet); do ...; done\n\n"
        + SEE_EXIT_STATUS,
    )
    add_endpoint_options(r)
    r.add_argument(
        "--count",
        "-n",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N messages (exit 3 if fewer arrive)",
    )
    r.add_argument(
        "--timeout",
        type=seconds,
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
    r.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="say nothing on stderr when fewer messages than asked arrive (the exit "
        "status, 3, still says so): for loops that end when a queue is empty",
    )
    add_encoding_options(r, "print")
    r.set_defaults(func=run)


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
            for i, m in enumerate(msgs):
                if self.terminator in m:
                    self.warned = True
                    what = "a newline" if self.terminator == b"\n" else "a NUL byte"
                    say(
                        "recv",
                        "warning",
                        f"message {self.printed + i + 1} contains {what}, so "
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


def run(args: argparse.Namespace) -> int:
    # With --count or --shared, recv claims messages exactly (the shared-reader protocol):
    # it never takes from the FIFO a message it will not print, so the messages after the
    # N-th stay there for the next reader.  Otherwise it reads like a plain Reader (fast,
    # and a lone unterminated last line is delivered at end of stream).
    path: str = args.path
    claims = args.count is not None or args.shared
    output = _Output(encoding_of(args))
    reader = open_endpoint(
        lambda: fastfifo.Reader(
            path,
            framing=args.framing,
            stop_at_eof=args.until_eof,
            shared=claims,
            strict_permissions=args.strict_permissions,
            create=args.create,
        ),
        path,
        strict_permissions=args.strict_permissions,
        open_timeout=None,
    )
    got = 0
    status = EXIT_OK
    what = "a message or for every writer to leave" if args.until_eof else "a message"
    losses = _LossesOnStderr()  # what the library logs about lost data, as recv warnings
    logger = logging.getLogger("fastfifo")
    logger.addHandler(losses)
    propagate, logger.propagate = logger.propagate, False
    printing = 0  # messages taken from the FIFO whose printing is under way
    try:
        while args.count is None or got < args.count:
            want = 1 if args.shared else 1000
            if args.count is not None:
                want = min(want, args.count - got)
            try:
                if got:
                    msgs = reader.get_many(max_messages=want, timeout=args.timeout)
                else:  # the first wait is the one a newcomer may wonder about
                    with waiting("recv", f"{path}: waiting for {what} (Ctrl-C stops)"):
                        msgs = reader.get_many(max_messages=want, timeout=args.timeout)
            except queue.Empty:
                if got == 0 or args.count is not None:
                    _short(args, got, f"within the timeout of {args.timeout:g} s")
                    status = EXIT_TIMEOUT
                break
            except EOFError:
                if args.count is not None:
                    _short(args, got, "before every writer left")
                    status = EXIT_TIMEOUT
                break
            except (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError) as e:
                say("recv", "warning", describe(e))
                continue
            printing = len(msgs)
            try:
                output.write(msgs)
            except BrokenPipeError:
                _stdout_gone()
                # One line says all that is lost (exit 1 is one line on stderr): what the
                # Reader read past these messages too, which its close() would report.
                more = reader.buffered
                losses.muted = True
                say(
                    "recv",
                    "error",
                    f"standard output was closed; {len(msgs)} messages taken "
                    "from the FIFO were not printed"
                    + (f", nor {more} more bytes recv had read from it" if more else "")
                    + " (they are lost)",
                )
                return EXIT_ERROR
            printing = 0
            got += len(msgs)
    except (KeyboardInterrupt, Terminated):
        _interrupted(path, printing, reader.buffered, losses)
        raise
    finally:
        reader.close()  # (bytes read and not printed are reported through ``losses``)
        logger.removeHandler(losses)
        logger.propagate = propagate
    return status


def _interrupted(path: str, printing: int, more: int, losses: _LossesOnStderr) -> None:
    """Ctrl-C or SIGTERM: say in recv's words (one line) what was taken and not printed."""
    lost = []
    if printing:
        lost.append(f"{printing} messages taken from the FIFO were being printed (the last "
                    "ones may be missing or cut short)")  # fmt: skip
    if more:
        lost.append(f"{more} more bytes recv had read from it were not printed")
    if lost:
        losses.muted = True  # this line says it; the Reader's close() would say it again
        say(
            "recv",
            "warning",
            f"{path}: interrupted: {'; '.join(lost)}; they are lost (with --count N or "
            "--shared, recv takes from the FIFO only what it prints)",
        )


def _short(args: argparse.Namespace, got: int, why: str) -> None:
    """Say (unless --quiet) that fewer messages than asked arrived."""
    if args.quiet:
        return
    if args.count is None:
        text = f"{args.path}: no message arrived {why}"
    else:
        text = f"{args.path}: {got} of {args.count} messages arrived {why}"
    say("recv", "error", text)


class _LossesOnStderr(logging.Handler):
    """Prints the ``fastfifo`` logger's loss reports as ``recv: warning: ...`` lines."""

    muted = False  # set once an error line has said what is lost

    def emit(self, record: logging.LogRecord) -> None:
        if not self.muted:
            say("recv", "warning", record.getMessage())


def _stdout_gone() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
