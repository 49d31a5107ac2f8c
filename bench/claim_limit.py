"""The C ceiling for one-at-a-time shared claims: ``c/claim_limit.c``, three claim methods.

The "4→4 64 B, one at a time" row of ``bench/run.py`` has no C peer (the C limit there has
no shared-reader protocol).  This script gives it one for each way of sending every
message to exactly one of several readers (the header of ``c/claim_limit.c`` says what
each does and what it gives up), plus ``python-packet``: packet mode again, with plain
``os.write``/``os.read`` in forked Python processes, the most any Python library gets
from one system call per message (no framing object, no checks beyond the count):

    python bench/claim_limit.py                       # 4 writers, 1/2/4 readers, 64 B, 3 runs
    python bench/claim_limit.py --readers 4 --reps 5 --json out.json

Runs of the three methods are interleaved, so a before/after shares the machine's load.
Every run checks that each message was taken exactly once and whole; a run that does
not says so and the script exits 1.  The rate is the median of ``--reps`` runs, with the
range.  Needs ``cc`` (or ``$CC``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "claim_limit.c")
METHODS = ("flock", "mutex", "packet", "python-packet")
HEADER = struct.Struct("<II")  # payload length, index: c/claim_limit.c's frame


def _py_writer(path: str, first: int, count: int, size: int, ready: Any, go: Any) -> None:
    fd = os.open(path, os.O_WRONLY)
    os.set_blocking(fd, True)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
    pack, write, pad = HEADER.pack, os.write, b"x" * size
    ready.release()
    go.wait()
    for i in range(first, first + count):
        write(fd, pack(size, i & 0xFFFFFFFF) + pad)
    os.close(fd)


def _py_reader(path: str, size: int, ready: Any, go: Any, out: Any) -> None:
    fd = os.open(path, os.O_RDONLY)  # blocking: each read waits for one packet
    read, unpack_from, whole = os.read, HEADER.unpack_from, 8 + size
    taken = index_sum = torn = 0
    ready.release()
    go.wait()
    while True:
        frame = read(fd, 4096)
        length, index = unpack_from(frame)
        if length == 0xFFFFFFFF:  # the parent's stop packet: one per reader
            break
        torn += len(frame) != whole or length != size
        taken += 1
        index_sum += index
    out.send((taken, index_sum, torn))


def run_python(readers: int, writers: int, count: int, size: int) -> dict[str, str]:
    """Packet mode with plain os.write/os.read in forked processes: the Python ceiling."""
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="claim-limit-") as tmp:
        path = os.path.join(tmp, "q")
        os.mkfifo(path, 0o600)
        keep = os.open(path, os.O_RDWR)
        fcntl.fcntl(keep, fcntl.F_SETPIPE_SZ, 1 << 20)
        fcntl.fcntl(keep, fcntl.F_SETFL, fcntl.fcntl(keep, fcntl.F_GETFL) | os.O_DIRECT)
        ready, go = ctx.Semaphore(0), ctx.Event()
        pipes = [ctx.Pipe(duplex=False) for _ in range(readers)]
        procs = [
            ctx.Process(target=_py_reader, args=(path, size, ready, go, w)) for _, w in pipes
        ] + [
            ctx.Process(target=_py_writer, args=(path, k * count, count, size, ready, go))
            for k in range(writers)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire()
        start = time.perf_counter()
        go.set()
        for p in procs[readers:]:
            p.join()
        for _ in range(readers):
            os.write(keep, HEADER.pack(0xFFFFFFFF, 0))
        results = [r.recv() for r, _ in pipes]
        seconds = time.perf_counter() - start
        for p in procs[:readers]:
            p.join()
        os.close(keep)
    total = count * writers
    taken = sum(r[0] for r in results)
    ok = taken == total and sum(r[1] for r in results) == total * (total - 1) // 2
    status = "ok" if ok else "lost or duplicated"
    if any(r[2] for r in results):
        status = "a torn frame"
    return {
        "mode": "python-packet",
        "readers": str(readers),
        "writers": str(writers),
        "messages": str(total),
        "seconds": f"{seconds:.6f}",
        "rate": f"{total / seconds:.0f}",
        "status": status,
    }


def build(outdir: str) -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        sys.exit(f"claim_limit: no C compiler ({cc!r} not found); set CC")
    binary = os.path.join(outdir, "claim_limit")
    proc = subprocess.run(
        [cc, "-O2", "-pthread", "-o", binary, SOURCE], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"claim_limit: {cc} failed:\n{proc.stderr}")
    return binary


def run_once(
    binary: str, method: str, readers: int, writers: int, count: int, size: int
) -> dict[str, str]:
    proc = subprocess.run(
        [binary, method, str(readers), str(writers), str(count), str(size)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    if proc.returncode != 0 or fields.get("status") != "ok":
        fields["status"] = fields.get("status", f"exit {proc.returncode}: {proc.stderr.strip()}")
    return fields


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, action="append", help="repeatable (default 1, 2, 4)")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--count", type=int, default=200_000, help="messages per writer")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (8-byte header added)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    args = ap.parse_args(argv)
    readers = args.readers or [1, 2, 4]
    runs: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="claim-limit-") as tmp:
        binary = build(tmp)
        for n in readers:
            for _ in range(args.reps):
                for method in METHODS:
                    if method == "python-packet":
                        runs.append(run_python(n, args.writers, args.count, args.size))
                    else:
                        runs.append(
                            run_once(binary, method, n, args.writers, args.count, args.size)
                        )
    bad = [r for r in runs if r.get("status") != "ok"]
    print(
        f"{args.writers} writers, {args.size} B payloads, one message per read, "
        f"median of {args.reps} (msg/s)\n"
    )
    print("| readers | " + " | ".join(METHODS) + " |")
    print("|---:|" + "---:|" * len(METHODS))
    for n in readers:
        cells = []
        for method in METHODS:
            rates = [
                float(r["rate"])
                for r in runs
                if r.get("mode") == method and r.get("readers") == str(n) and r["status"] == "ok"
            ]
            cells.append(
                f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
                if rates
                else "failed"
            )
        print(f"| {n} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)
    for r in bad:
        print(f"FAILED: {r}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
