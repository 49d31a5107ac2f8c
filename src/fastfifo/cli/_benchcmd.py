"""``fastfifo bench``: the quick 1 -> 1 benchmark (``fastfifo._bench``) from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import EXIT_ERROR, FORMATTER, SEE_EXIT_STATUS, positive_int, say, wrap


def add_parser(sub: Any) -> None:
    b = sub.add_parser(
        "bench",
        help="quick 1 -> 1 benchmark through a temporary FIFO",
        formatter_class=FORMATTER,
        description=wrap(
            "Run a producer process and a consumer through a temporary FIFO and print "
            "msg/s for fastfifo beside a hand-written os.read loop. Every run checks that each "
            "message arrived once, in order and intact (exit 1 if not)."
        ),
        epilog="examples:\n"
        "  fastfifo bench --count 500000 --size 64\n"
        "  fastfifo bench --json > bench.json\n"
        "  fastfifo bench --plot bench.png          # needs the plot extra: fastfifo[plot]\n\n"
        + SEE_EXIT_STATUS,
    )
    b.add_argument("--count", type=positive_int, default=200_000, help="messages per run (200000)")
    b.add_argument("--size", type=message_size, default=64, help="message size in bytes (64)")
    b.add_argument(
        "--repeat", type=positive_int, default=3, help="runs per row; the median is shown (3)"
    )
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the results into FILE.png (needs matplotlib: the plot extra)",
    )
    b.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    b.set_defaults(func=run)


def message_size(text: str) -> int:
    """--size: a usage error (exit 2) below the 8 bytes of each message's sequence
    number (``_bench._SEQ``, not imported here: the parser is built for every command)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}") from None
    if value < 8:
        raise argparse.ArgumentTypeError(
            f"must be at least 8 bytes (each message carries an 8-byte sequence number), "
            f"not {value}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    from .. import _bench  # (statistics, platform...): only this command needs it

    if args.plot and not _bench.have_matplotlib():
        say(
            "bench",
            "error",
            f"--plot {args.plot}: drawing needs matplotlib, which is not installed; install "
            "the plot extra (pip install 'fastfifo[plot]', or pip install matplotlib), or "
            "leave out --plot",
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
            say(
                "bench",
                "error",
                f"--plot {args.plot}: matplotlib is installed but could not be imported: {e}",
            )
            return EXIT_ERROR
        if not args.quiet:
            print(f"plot written to {args.plot}", file=sys.stderr)
    return 0 if all(r["delivery"] == "ok" for r in report["results"]) else 1
