"""``fastfifo stat PATH``: is it a FIFO, owner and mode, who has it open, bytes buffered.

The inspection itself (lstat, /proc, FIONREAD) is ``fastfifo._fifostat``; this module
parses the command and prints the report.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._fifostat import stat_fifo
from ._common import EXIT_NOT_A_FIFO, EXIT_OK, FORMATTER, SEE_EXIT_STATUS, say, wrap


def add_parser(sub: Any) -> None:
    t = sub.add_parser(
        "stat",
        help="is it a FIFO, owner and mode, who has it open, pipe size, bytes buffered",
        formatter_class=FORMATTER,
        description=wrap(
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
        "  fastfifo stat /tmp/jobs/q > /dev/null && echo 'a FIFO is there'\n\n" + SEE_EXIT_STATUS,
    )
    t.add_argument("path", metavar="PATH")
    t.add_argument("--json", action="store_true", help="print a JSON object")
    t.add_argument(
        "--open",
        action="store_true",
        help="open the FIFO to read its pipe size and buffered bytes even when no "
        "reader is seen (may wake a writer waiting for a reader: see above)",
    )
    t.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    info = stat_fifo(args.path, force_open=args.open)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_stat(info))
    if not info["is_fifo"]:
        say("stat", "error", f"{args.path}: a {info['type']} is there, not a FIFO")
        return EXIT_NOT_A_FIFO
    return EXIT_OK
