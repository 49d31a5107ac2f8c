"""Large messages 1→1 with a receiver that drops what it takes: rate and CPU per message.

``bench/run.py``'s 64 KiB rows keep every payload until the clock stops (so the delivery
check runs outside the timed window), and at 64 KiB that keeping (fresh memory for every
message) costs the receiver as much as the transport.  This script measures the
transport: a sole ``Writer`` in a forked process sends ``--count`` messages of ``--size``
bytes (a ring of 64 distinct payloads), a ``Reader`` takes them (``get`` or
``get_many``) and checks each against the payload sent, then drops it.  It prints
messages/s and the CPU time per message of the writer (its process) and of the reader.

    python bench/large_messages.py                           # 64 KiB, 3 runs of each call
    python bench/large_messages.py --baseline ../other/src   # A/B: runs alternate

``--baseline SRC`` (repeatable) runs every measurement also with the ``fastfifo`` package
in ``SRC`` (another checkout's built ``src``), the builds' runs alternating so that they
share the machine's load (this VM's speed drifts by a quarter within an hour).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

RING = 64


def _payloads(size: int) -> list[bytes]:
    return [i.to_bytes(4, "little") * (size // 4) + bytes(size % 4) for i in range(RING)]


def _send(path: str, size: int, count: int, batched: bool) -> None:
    import fastfifo

    msgs = _payloads(size)
    with fastfifo.Writer(path) as w:
        if batched:
            for i in range(0, count, 16):
                w.put_many([msgs[(i + j) % RING] for j in range(min(16, count - i))])
        else:
            for i in range(count):
                w.put(msgs[i % RING])


def one_run(size: int, count: int, batched: bool) -> dict[str, float]:
    """One run in this process (the reader) and a forked writer."""
    import fastfifo

    msgs = _payloads(size)
    with tempfile.TemporaryDirectory(prefix="large-") as tmp:
        path = fastfifo.mkfifo(os.path.join(tmp, "q"))
        with fastfifo.Reader(path) as r:
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            writer = multiprocessing.get_context("fork").Process(
                target=_send, args=(path, size, count, batched)
            )
            t0 = time.perf_counter()
            writer.start()
            got = bad = 0
            while got < count:
                batch = r.get_many(1000, timeout=60) if batched else [r.get(timeout=60)]
                for m in batch:
                    bad += m != msgs[got % RING]
                    got += 1
            dt = time.perf_counter() - t0
            writer.join()
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if bad or writer.exitcode != 0:
        raise SystemExit(f"{bad} of {count} messages differ; writer exit {writer.exitcode}")
    reader_cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    writer_cpu = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
    return {
        "rate": count / dt,
        "writer_us": writer_cpu / count * 1e6,
        "reader_us": reader_cpu / count * 1e6,
    }


def _run_with(src: str | None, size: int, count: int, batched: bool) -> dict[str, float]:
    if src is None:
        return one_run(size, count, batched)
    env = dict(os.environ, PYTHONPATH=src)
    args = json.dumps([size, count, batched])
    out = subprocess.run(
        [sys.executable, __file__, "--one-run", args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"baseline run failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--baseline", metavar="SRC", action="append", help="also run another checkout's src"
    )
    ap.add_argument("--one-run", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one_run:
        size, count, batched = json.loads(args.one_run)
        print(json.dumps(one_run(size, count, batched)))
        return 0
    import fastfifo

    builds: dict[str, str | None] = {f"this checkout ({fastfifo.backend})": None}
    for src in args.baseline or ():
        builds[f"baseline {src}"] = os.path.abspath(src)
    print(f"# 1→1, {args.size} B messages, receiver drops them; median of {args.reps}\n")
    print("| calls | build | msg/s (median) | min – max | writer CPU µs/msg | reader CPU µs/msg |")  # noqa: RUF001
    print("|---|---|---:|---:|---:|---:|")
    for batched in (False, True):
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in builds}
        for _ in range(args.reps):
            for key, src in builds.items():
                runs[key].append(_run_with(src, args.size, args.count, batched))
        for key, rs in runs.items():
            rates = [r["rate"] for r in rs]
            w = statistics.median(r["writer_us"] for r in rs)
            rd = statistics.median(r["reader_us"] for r in rs)
            calls = "put_many/get_many" if batched else "put/get"
            print(
                f"| {calls} | {key} | {statistics.median(rates):,.0f} "
                f"| {min(rates):,.0f} – {max(rates):,.0f} | {w:.1f} | {rd:.1f} |",  # noqa: RUF001
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
