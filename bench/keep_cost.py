"""What keeping every payload costs a Python receiver in the batched rows of bench/run.py.

``bench/run.py``'s Python receivers keep every payload until the clock stops, so that the
delivery check can run outside the timed window; the C limit's reader checks as it reads
and keeps nothing (docs/benchmarks.md, "How a number is made").  For large batched
payloads that difference is not small: hundreds of MB of fresh memory per run.  This
script measures it for fastfifo, 1→1, ``put_many`` of 100 / ``get_many(1000)``, with the
receiver keeping every message (as in bench/run.py) and dropping each batch once it has
counted it, interleaved with the C limit's packed row of the same size:

    python bench/keep_cost.py                 # 1 KiB and 4000 B, 3 runs each
    python bench/keep_cost.py --size 1024 --reps 5

A dropping receiver checks nothing but the count, so its rate is what a consumer that
processes and forgets each message could get at most; it is not a row of bench/run.py.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastfifo
from bench.climit import CLimit
from bench.workloads import Row

BATCH = 100


def _send(path: str, size: int, count: int) -> None:
    batch = [i.to_bytes(8, "little") + b"x" * (size - 8) for i in range(BATCH)]
    with fastfifo.Writer(path) as w:
        for _ in range(count // BATCH):
            w.put_many(batch)


def fastfifo_rate(size: int, count: int, keep: bool) -> float:
    """Messages per second from the first batch received to the last."""
    with tempfile.TemporaryDirectory(prefix="keep-cost-") as tmp:
        path = fastfifo.mkfifo(os.path.join(tmp, "q"))
        with fastfifo.Reader(path) as r:
            writer = multiprocessing.get_context("fork").Process(
                target=_send, args=(path, size, count)
            )
            writer.start()
            kept: list[bytes] = []
            got, start = 0, 0.0
            while got < count:
                batch = r.get_many(1000)
                if not start:
                    start = time.perf_counter()
                if keep:
                    kept.extend(batch)
                got += len(batch)
            seconds = time.perf_counter() - start
            writer.join()
    if got != count:
        sys.exit(f"keep_cost: took {got} messages, sent {count}")
    return count / seconds


def c_rate(size: int, count: int) -> float:
    result: dict[str, Any] = CLimit().measure(Row("throughput", size, batched=True), count, 120)
    if result["status"] != "ok":
        sys.exit(f"keep_cost: the C limit failed: {result['status']}")
    return float(result["messages"]) / float(result["seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, action="append", help="repeatable (default 1024, 4000)")
    ap.add_argument("--count", type=int, default=400_000, help="messages per run (at 1 KiB)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    print("1→1 batched, MB/s of payload (median of runs, range)\n")
    print("| size | fastfifo, receiver keeps all | fastfifo, receiver drops | C limit, packed |")
    print("|---:|---:|---:|---:|")
    for size in args.size or [1024, 4000]:
        count = max(BATCH, args.count * 1024 // size // BATCH * BATCH)
        rates: dict[str, list[float]] = {"keep": [], "drop": [], "C": []}
        for _ in range(args.reps):
            rates["keep"].append(fastfifo_rate(size, count, keep=True))
            rates["drop"].append(fastfifo_rate(size, count, keep=False))
            rates["C"].append(c_rate(size, count))
        cells = [
            f"{statistics.median(v) * size / 1e6:,.0f} "
            f"({min(v) * size / 1e6:,.0f}-{max(v) * size / 1e6:,.0f})"
            for v in rates.values()
        ]
        print(f"| {size} B | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
