#!/usr/bin/env python3
"""Why one put/get per message trails a hand-written loop: the experiment behind
docs/guide.md "Performance notes".

One writer process (pinned to CPU 0) sends N 64-byte frames through a FIFO to a reader
in this process (pinned to CPU 1). It prints msg/s and the CPU each side used per
second of the run (os.times: 10 ms ticks, and the writer's includes its start-up, so
rough), median of --reps runs, interleaved. Writers: ``os``
(os.write of a prebuilt frame, blocking fd) or ``fastfifo`` (Writer.put). Readers:

- ``hand``: blocking os.read(65536) plus a Python parse loop; it never polls.
- ``hand-polled``: the same, after one poll() on the FIFO before the run. Linux then
  wakes the pipe's readers on every write (pipe->poll_usage), which costs the writer.
- ``get``: fastfifo Reader.get(), one call per message.

  python bench/pipe_contention.py --reps 15
  python bench/pipe_contention.py --writers fastfifo --readers hand,get --reps 21

The writer is the bottleneck in every pairing (its CPU stays at ~1.0). What changes
its speed is how often the reader takes the pipe's mutex and whether the pipe was
ever polled. The reader-side pause that fastfifo's compiled core now makes was
measured by running this with the core before and after it (docs/benchmarks.md, A/B).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import select
import statistics
import struct
import tempfile
import time

import fastfifo
from fastfifo._core_py import encode_header

SIZE = 64
PAYLOAD = b"." * SIZE
_LEN = struct.Struct("<4xI")  # a fastfifo frame header: magic, flags, check, length


def _frame(n: int) -> bytes:
    return encode_header(0, n) + PAYLOAD


def _write(path: str, kind: str, count: int, ready, go) -> None:
    os.sched_setaffinity(0, {0})
    if kind == "os":
        frame = _frame(SIZE)
        fd = os.open(path, os.O_WRONLY)
        ready.set()
        go.wait()
        for _ in range(count):
            os.write(fd, frame)
        os.close(fd)
    else:
        with fastfifo.Writer(path) as w:
            ready.set()
            go.wait()
            put = w.put
            for _ in range(count):
                put(PAYLOAD)


def _read_hand(fd: int, count: int) -> list[bytes]:
    out: list[bytes] = []
    buf = b""
    unpack = _LEN.unpack_from
    while len(out) < count:
        buf += os.read(fd, 65536)
        pos, end = 0, len(buf)
        while end - pos >= 8:
            (n,) = unpack(buf, pos)
            if end - pos - 8 < n:
                break
            out.append(buf[pos + 8 : pos + 8 + n])
            pos += 8 + n
        buf = buf[pos:]
    return out


def run_once(writer: str, reader: str, count: int) -> tuple[float, float, float]:
    """(msg/s, reader CPU per second, writer CPU per second) of one run."""
    with tempfile.TemporaryDirectory() as d:
        path = fastfifo.mkfifo(os.path.join(d, "q"))
        ctx = multiprocessing.get_context("fork")
        ready, go = ctx.Event(), ctx.Event()
        r = fastfifo.Reader(path) if reader == "get" else None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK) if r is None else -1
        p = ctx.Process(target=_write, args=(path, writer, count, ready, go))
        p.start()
        try:
            while not ready.wait(0.1):
                if not p.is_alive():
                    raise RuntimeError(f"the writer process exited ({p.exitcode})")
            if fd >= 0:
                os.set_blocking(fd, True)
                if reader == "hand-polled":
                    poller = select.poll()
                    poller.register(fd, select.POLLIN)
                    poller.poll(0)
            t0, c0 = time.perf_counter(), os.times()
            go.set()
            if r is not None:
                get = r.get
                out = [get() for _ in range(count)]
            else:
                out = _read_hand(fd, count)
            seconds = time.perf_counter() - t0
            c1 = os.times()
            p.join(30)
            c2 = os.times()
        finally:
            if r is not None:
                r.close()
            if fd >= 0:
                os.close(fd)
            p.join(30)
        if len(out) != count or out[-1] != PAYLOAD:
            raise RuntimeError(f"delivery check failed: {len(out)} of {count}")
        reader_cpu = (c1.user - c0.user + c1.system - c0.system) / seconds
        writer_cpu = (
            c2.children_user - c0.children_user + c2.children_system - c0.children_system
        ) / seconds
        return count / seconds, reader_cpu, writer_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", default="os,fastfifo")
    ap.add_argument("--readers", default="hand,hand-polled,get")
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=11)
    args = ap.parse_args()
    os.sched_setaffinity(0, {1})
    cases = [(w, r) for w in args.writers.split(",") for r in args.readers.split(",")]
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {c: [] for c in cases}
    for _ in range(args.reps):
        for case in cases:
            results[case].append(run_once(*case, args.count))
    print(
        f"fastfifo {fastfifo.__version__} ({fastfifo.backend}), {args.count:,} x {SIZE} B, "
        f"median of {args.reps}"
    )
    for (w, r), runs in results.items():
        rate = [x[0] for x in runs]
        print(
            f"writer={w:8s} reader={r:11s} {statistics.median(rate) / 1e6:5.2f}M msg/s "
            f"({min(rate) / 1e6:.2f}-{max(rate) / 1e6:.2f})  CPU/s reader "
            f"{statistics.median(x[1] for x in runs):.2f} writer "
            f"{statistics.median(x[2] for x in runs):.2f}"
        )


if __name__ == "__main__":
    main()
