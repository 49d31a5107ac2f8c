"""``fastfifo send PATH [MESSAGE...]``: send messages (arguments, or lines of stdin)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any

import fastfifo

from .._errors import linger_left
from ._codec import decode_input, encoding_of
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TIMEOUT,
    FORMATTER,
    SEE_EXIT_STATUS,
    CommandError,
    UsageError,
    add_encoding_options,
    add_endpoint_options,
    describe,
    open_endpoint,
    seconds,
    waiting,
    wrap,
)


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "send",
        help="send messages into a FIFO",
        formatter_class=FORMATTER,
        description=wrap(
            "Send each MESSAGE as one message; with no MESSAGE, send each line of "
            "standard input (without its newline) as one message, as soon as it is read. Like "
            "`echo > fifo`, send first waits for a reader to open the FIFO (--open-timeout "
            "bounds that). Messages are whole and never mixed with other writers' (frames "
            "framing also carries messages larger than PIPE_BUF, and any bytes)."
        )
        + "\n\n"
        + wrap(
            "Then send lingers: it waits until the pipe is empty, because the kernel "
            "destroys what is in a FIFO when the last process that has it open closes it. So "
            "`fastfifo recv PATH --count 1` can take one message and the next recv still finds "
            "the others. --linger S bounds that wait (exit 3 if messages are still in the pipe "
            "then); --linger 0 returns as soon as the messages are in the pipe (right when "
            "another process holds the FIFO open, e.g. a shell's `exec 3<>PATH`). The pipe is "
            "shared: send waits for every writer's messages, not only its own."
        ),
        epilog="examples:\n"
        "  fastfifo send q 'job 1' 'job 2'           # two messages\n"
        "  seq 1000 | fastfifo send q                # 1000 messages, one per line\n"
        "  fastfifo send q --framing lines hello     # `cat q` prints: hello\n"
        "  fastfifo recv a --hex | fastfifo send b --hex   # forward any bytes, exactly\n"
        "  fastfifo send q --open-timeout 5 ping || echo 'no reader'\n"
        "  fastfifo send q --linger 0 job            # q is held open by another process\n\n"
        + SEE_EXIT_STATUS,
    )
    add_endpoint_options(s)
    s.add_argument(
        "message",
        metavar="MESSAGE",
        nargs="*",
        help="messages to send (default: lines of standard input); put -- "
        "before a MESSAGE that starts with -",
    )
    s.add_argument(
        "--open-timeout",
        type=seconds,
        default=None,
        metavar="S",
        help="wait at most S seconds for a reader to open the FIFO (default: for ever)",
    )
    s.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        metavar="S",
        help="wait at most S seconds while the pipe is full (default: for ever)",
    )
    s.add_argument(
        "--linger",
        type=seconds,
        default=None,
        metavar="S",
        help="after sending, wait at most S seconds until the pipe is empty (default: "
        "until it is, however long; 0: do not wait)",
    )
    add_encoding_options(s, "read")
    s.set_defaults(func=run)


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


def _arguments(args: argparse.Namespace, encoding: str) -> list[bytes]:
    """The MESSAGE arguments as messages (checked before anything is opened)."""
    if args.null and args.message:
        raise UsageError("-0/--null applies to standard input; give no MESSAGE with it")
    given: list[bytes] = []
    for i, arg in enumerate(args.message, 1):
        try:
            given.append(decode_input(os.fsencode(arg), encoding))
        except ValueError as e:
            raise UsageError(f"MESSAGE {i}: {e}") from None
    if args.framing == "lines":
        for i, m in enumerate(given, 1):
            if b"\n" in m:
                raise UsageError(
                    f"MESSAGE {i} contains a newline, which lines framing cannot "
                    "carry (use --framing frames)"
                )
    return given


def run(args: argparse.Namespace) -> int:
    path: str = args.path
    encoding = encoding_of(args)
    given = _arguments(args, encoding)
    with waiting(
        "send",
        f"{path}: waiting for a reader to open the FIFO (start `fastfifo recv {path}` or a "
        "Reader; Ctrl-C gives up)",
    ):
        writer = open_endpoint(
            lambda: fastfifo.Writer(
                path,
                framing=args.framing,
                open_timeout=args.open_timeout,
                strict_permissions=args.strict_permissions,
                create=args.create,
                linger=args.linger,
            ),
            path,
            strict_permissions=args.strict_permissions,
            open_timeout=args.open_timeout,
        )
    sent = 0
    in_flight = 0  # messages of the put_many under way: an error may cut it anywhere
    ok = False
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
                with waiting(
                    "send", f"{path}: the pipe is full; waiting for readers to take messages"
                ):
                    in_flight = len(batch)
                    writer.put_many(batch, timeout=args.timeout)
                    in_flight = 0
            except fastfifo.Full as e:
                sent += e.sent
                raise CommandError(
                    EXIT_TIMEOUT,
                    f"{path}: the pipe stayed full for {args.timeout:g} s (the reader is not "
                    f"keeping up); {sent} messages were sent, the rest were not",
                ) from None
            sent += len(batch)
        ok = True
    except (BrokenPipeError, ValueError) as e:
        if in_flight:  # some of the batch may be in the pipe (or taken) already
            count = f"{sent} messages were sent before the last {in_flight}, some of which "
            count += "may have been sent too"
        else:
            count = f"{sent} messages were sent before this"
        raise CommandError(EXIT_ERROR, f"{describe(e)} ({count})") from None
    finally:
        if not ok:  # failed or interrupted: close at once, nothing to linger for
            writer.linger = 0
            writer.close()
    return _close_lingering(writer, path, sent)


def _close_lingering(writer: fastfifo.Writer, path: str, sent: int) -> int:
    """Close, first waiting (--linger) until the pipe is empty."""
    try:
        with waiting(
            "send",
            f"{path}: {sent} messages sent; waiting until readers have taken everything in "
            "the pipe, since what is left in a FIFO dies with its last open descriptor "
            "(--linger 0 does not wait)",
        ):
            writer.close()
    except TimeoutError as e:
        left = getattr(e, "bytes_left", None)
        if left is None:  # not the linger's (cannot happen today): the library's words
            raise CommandError(EXIT_TIMEOUT, f"{describe(e)} ({sent} messages were sent)") from None
        raise CommandError(
            EXIT_TIMEOUT,
            f"{path}: {linger_left(left, writer.linger or 0.0)} ({sent} messages were sent; "
            "keep a reader running, or give a longer --linger, or none: send then waits "
            "until the pipe is empty)",
        ) from None
    return EXIT_OK
