"""fastfifo.Queue against multiprocessing.Queue and faster_fifo.Queue, small Python objects.

Run from the root of a checkout (faster-fifo is optional; its rows say "not installed"):

    python bench/queue_bench.py                 # the full table, median of 3 runs
    python bench/queue_bench.py --reps 5 --seconds 1.0
    python bench/queue_bench.py --only fastfifo.Queue --rows 1->1 --json out.json
    python bench/queue_bench.py --baseline ../other-checkout/src   # before/after, one run
    python bench/queue_bench.py --ceiling       # also what any Python queue reaches

``--json`` also writes every run's rate.  ``--baseline SRC`` adds fastfifo.Queue from
another checkout (``SRC`` holds its built ``fastfifo`` package) as one more peer: its runs
are made by this script in a child interpreter that imports that one, interleaved with
the others', so a before/after comparison shares the machine's load (this VM's load
moves a single peer by 20-30% between invocations).

Every run forks fresh producer and consumer processes (``fork``, so a queue made in the
parent is inherited as users do); producers build their objects, everyone meets on a
barrier, and the clock runs from the barrier to the moment the last object is taken.
Consumers stop at a ``None`` per consumer that the parent puts once every producer is
done.  Each consumer adds up the ids it took; the run fails unless the total and count
match exactly (nothing lost or duplicated).  A pilot run per (row, peer) sizes the timed
runs to about ``--seconds`` each, and the peers' timed runs are interleaved.

``--ceiling`` adds ``records``, not a library: about the cheapest exactly-once queue of
pickled objects between Python processes, to show what a ``get()`` of one system call
gives.  Every object is padded to one record of ``RECORD`` bytes in an anonymous pipe.
Every write is whole records and ``RECORD`` divides the page size, so the kernel cuts a
write (when the pipe fills) only between records, and a ``read()`` of one record takes
one whole object with no lock: consumers never split one.  It gives up what fastfifo
keeps: objects larger than a record, shell writers, a name in the filesystem,
``close()`` ending waits, and errors that say what went wrong.  For the batched rows,
``--ceiling`` prints instead what pickling alone allows: ``pickle.dumps`` and
``pickle.loads`` of each kind of object, timed in this process, and the rate of a
producer and a consumer that did nothing else, each on its own CPU.

Objects: ``dict`` is ``{"id": i, "name": "item-i", "price": 1.5, "tags": ["a", "b"]}``;
``tuple`` is ``(i, "item-i", 1.5, True)``.  Everything is pickled (each queue's default).
"Batched" sends lists of 100 with ``put_many`` and takes up to 1000 per ``get_many``
(multiprocessing.Queue has neither, so it has no batched rows).
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FOREVER = 3600.0  # faster-fifo's blocking calls take a float timeout (default 10 s)
BATCH = 100
CTX = multiprocessing.get_context("fork")


def _now() -> float:
    t: float = time.clock_gettime(time.CLOCK_MONOTONIC)  # one clock for every process
    return t


def make_objects(kind: str, first: int, count: int) -> list[Any]:
    if kind == "dict":
        return [
            {"id": i, "name": f"item-{i}", "price": 1.5, "tags": ["a", "b"]}
            for i in range(first, first + count)
        ]
    return [(i, f"item-{i}", 1.5, True) for i in range(first, first + count)]


def ident(obj: Any) -> int:
    i: int = obj["id"] if isinstance(obj, dict) else obj[0]
    return i


# ---------------------------------------------------------------- peers


@dataclass
class Peer:
    key: str
    make: Callable[[], Any]
    put_many: Callable[[Any, list[Any]], None] | None
    get_many: Callable[[Any], list[Any]] | None
    put: Callable[[Any, Any], None]
    get: Callable[[Any], Any]
    baseline: str | None = None  # fastfifo from this src directory, in a child interpreter


def _fastfifo() -> Peer:
    import fastfifo

    return Peer(
        "fastfifo.Queue",
        lambda: fastfifo.Queue(),
        lambda q, xs: q.put_many(xs),
        lambda q: q.get_many(max_messages=1000),
        lambda q, x: q.put(x),
        lambda q: q.get(),
    )


def _multiprocessing() -> Peer:
    return Peer(
        "multiprocessing.Queue",
        lambda: CTX.Queue(),
        None,
        None,
        lambda q, x: q.put(x),
        lambda q: q.get(),
    )


def _faster_fifo() -> Peer:
    import faster_fifo  # type: ignore[import-not-found,unused-ignore]

    return Peer(
        "faster_fifo.Queue",
        lambda: faster_fifo.Queue(max_size_bytes=1 << 20),  # the size of fastfifo's pipe
        lambda q, xs: q.put_many(xs, True, FOREVER),
        lambda q: q.get_many(True, FOREVER, 1000),
        lambda q, x: q.put(x, True, FOREVER),
        lambda q: q.get(True, FOREVER),
    )


#: The records ceiling's record: a 4-byte length, the pickle, padding (divides PIPE_BUF).
RECORD = 256


class _Records:
    """The ``records`` ceiling's queue (see the module docstring): inherited through fork."""

    def __init__(self) -> None:
        import fcntl

        self.r, self.w = os.pipe()
        fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, 1 << 20)  # fastfifo's pipe size

    @staticmethod
    def _record(obj: Any) -> bytes:
        import pickle

        data = pickle.dumps(obj)
        if len(data) > RECORD - 4:
            raise ValueError(f"records: an object of {len(data)} pickled bytes")
        return (len(data).to_bytes(4, "little") + data).ljust(RECORD, b"\0")

    @staticmethod
    def _object(rec: bytes | memoryview) -> Any:
        import pickle

        return pickle.loads(rec[4 : 4 + int.from_bytes(rec[:4], "little")])

    def put(self, obj: Any) -> None:
        os.write(self.w, self._record(obj))

    def get(self) -> Any:
        return self._object(os.read(self.r, RECORD))  # blocking: one whole record

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def pickle_limit(kind: str, reps: int) -> tuple[float, float, float]:
    """(dumps s, loads s, objects/s): the best of ``reps`` timings of 20,000 calls each,
    and the rate of a producer that only pickled and a consumer that only unpickled."""
    import pickle

    objs = make_objects(kind, 0, 20_000)
    data = [pickle.dumps(o) for o in objs]
    dumps = loads = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for o in objs:
            pickle.dumps(o)
        t1 = time.perf_counter()
        for d in data:
            pickle.loads(d)
        t2 = time.perf_counter()
        dumps, loads = min(dumps, (t1 - t0) / len(objs)), min(loads, (t2 - t1) / len(objs))
    return dumps, loads, 1 / max(dumps, loads)


def _records() -> Peer:
    return Peer(
        "records (ceiling)",
        _Records,
        None,  # batches: see pickle_limit()
        None,
        _Records.put,
        _Records.get,
    )


PEERS: list[tuple[str, Callable[[], Peer]]] = [
    ("fastfifo.Queue", _fastfifo),
    ("multiprocessing.Queue", _multiprocessing),
    ("faster_fifo.Queue", _faster_fifo),
]


# ---------------------------------------------------------------- one run


def _producer(
    peer: Peer, q: Any, barrier: Any, kind: str, first: int, count: int, batched: bool
) -> None:
    objs = make_objects(kind, first, count)
    barrier.wait()
    if batched:
        assert peer.put_many is not None
        for i in range(0, count, BATCH):
            peer.put_many(q, objs[i : i + BATCH])
    else:
        put = peer.put
        for o in objs:
            put(q, o)


def _consumer(
    peer: Peer, q: Any, barrier: Any, slot: int, ends: Any, counts: Any, sums: Any, batched: bool
) -> None:
    barrier.wait()
    n = total = 0
    last = _now()
    seen_stop = False
    while not seen_stop:
        batch = peer.get_many(q) if batched else [peer.get(q)]  # type: ignore[misc]
        before = n
        for obj in batch:
            if obj is None:
                if seen_stop:
                    peer.put(q, None)  # another consumer's stop: hand it back
                seen_stop = True
            else:
                n += 1
                total += ident(obj)
        if n > before:
            last = _now()  # the time this consumer took its latest object
    ends[slot], counts[slot], sums[slot] = last, n, total


def _baseline(src: str) -> Peer:
    """fastfifo.Queue from another checkout (``src`` holds its ``fastfifo`` package): each of
    its runs is made by this script in a child interpreter that imports that one."""
    peer = _fastfifo()
    peer.key, peer.baseline = "fastfifo.Queue (baseline)", src
    return peer


#: CPU seconds (user + system) per object of the last run_once, over its child processes:
#: steadier than the rate on a loaded machine, for comparing two builds.
CPU_PER_OBJECT: dict[str, list[float]] = {}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(
    peer: Peer, producers: int, consumers: int, kind: str, batched: bool, per_producer: int
) -> float:
    """Objects per second for one run (raises if delivery was not exactly once)."""
    if peer.baseline is not None:
        args = json.dumps([producers, consumers, kind, batched, per_producer])
        env = dict(os.environ, PYTHONPATH=peer.baseline)
        out = subprocess.run(
            [sys.executable, __file__, "--one-run", args], env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"{peer.key}: {out.stderr[-2000:]}")
        base_rate, cpu = map(float, out.stdout.split()[-2:])
        CPU_PER_OBJECT.setdefault(peer.key, []).append(cpu)
        return base_rate
    cpu0 = _children_cpu()
    q = peer.make()
    barrier = CTX.Barrier(producers + consumers + 1)
    ends = CTX.Array("d", consumers, lock=False)
    counts = CTX.Array("q", consumers, lock=False)
    sums = CTX.Array("q", consumers, lock=False)
    cons = [
        CTX.Process(target=_consumer, args=(peer, q, barrier, c, ends, counts, sums, batched))
        for c in range(consumers)
    ]
    prods = [
        CTX.Process(
            target=_producer, args=(peer, q, barrier, kind, p * per_producer, per_producer, batched)
        )
        for p in range(producers)
    ]
    for p in cons + prods:
        p.start()
    barrier.wait()
    start = _now()
    for p in prods:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"{peer.key}: a producer exited with {p.exitcode}")
    for _ in range(consumers):
        peer.put(q, None)
    for p in cons:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"{peer.key}: a consumer exited with {p.exitcode}")
    total = producers * per_producer
    if sum(counts) != total or sum(sums) != total * (total - 1) // 2:
        raise RuntimeError(f"{peer.key}: delivery check failed: {sum(counts)} of {total}")
    close = getattr(q, "close", None)
    if close is not None:
        close()
    rate: float = total / (max(ends) - start)
    CPU_PER_OBJECT.setdefault(peer.key, []).append((_children_cpu() - cpu0) / total)
    return rate


# ---------------------------------------------------------------- the table


@dataclass
class Row:
    workload: str
    producers: int
    consumers: int
    kind: str
    batched: bool


ROWS = [
    Row(w, n, n, kind, batched)
    for w, n in (("1->1", 1), ("4->4", 4))
    for batched in (False, True)
    for kind in ("dict", "tuple")
]


def measure_row(
    row: Row, peers: dict[str, Peer], reps: int, seconds: float
) -> dict[str, list[float]]:
    """Rates per peer.  A pilot run sizes each peer's runs; the timed runs are interleaved
    (A, B, C, A, B, C...) so that a drift in the machine's load hits every peer alike."""
    per: dict[str, int] = {}
    for key, peer in peers.items():
        pilot_n = 5_000 if row.producers == 1 else 2_000
        rate = run_once(peer, row.producers, row.consumers, row.kind, row.batched, pilot_n)
        n = max(2_000, min(int(rate * seconds / row.producers), 2_000_000))
        per[key] = n - n % BATCH
    rates: dict[str, list[float]] = {key: [] for key in peers}
    for _ in range(reps):
        for key, peer in peers.items():
            rates[key].append(
                run_once(peer, row.producers, row.consumers, row.kind, row.batched, per[key])
            )
    return rates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="timed runs per cell (median shown)")
    ap.add_argument("--seconds", type=float, default=0.5, help="target length of a run")
    ap.add_argument("--only", help="comma-separated peers to run (default: all)")
    ap.add_argument("--rows", help="run only the rows whose workload is this (1->1 or 4->4)")
    ap.add_argument("--json", metavar="FILE", help="also write every rate measured to FILE")
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="also measure 'records', a lock-free queue of fixed records (the most one "
        "system call per get() gives; see the module docstring)",
    )
    ap.add_argument(
        "--baseline",
        metavar="SRC",
        help="also measure fastfifo.Queue from another checkout's src directory, its runs "
        "interleaved with the others' (an A/B in one run)",
    )
    ap.add_argument("--one-run", help=argparse.SUPPRESS)  # a baseline's run (see _baseline)
    args = ap.parse_args(argv)
    if args.one_run:
        producers, consumers, kind, batched, n = json.loads(args.one_run)
        ff = _fastfifo()
        rate = run_once(ff, producers, consumers, kind, batched, n)
        print(rate, CPU_PER_OBJECT[ff.key][-1])
        return 0

    peers: dict[str, Peer | str] = {}
    for key, factory in PEERS:
        if args.only and key not in args.only.split(","):
            continue
        try:
            peers[key] = factory()
        except ImportError as e:
            peers[key] = f"not installed ({e})"
    if args.ceiling:
        peers["records (ceiling)"] = _records()
    if args.baseline:
        base = _baseline(os.path.abspath(args.baseline))
        peers[base.key] = base

    import fastfifo

    where = os.path.dirname(os.path.dirname(fastfifo.__file__))
    print(
        f"# fastfifo.Queue vs peers: small Python objects ({os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, fastfifo {fastfifo.__version__} "
        f"backend={fastfifo.backend} from {where}, median of {args.reps})\n"
    )
    record: list[dict[str, Any]] = []
    print(
        "| workload | objects | calls | peer | objects/s (median) | min – max "  # noqa: RUF001
        "| fastfifo ÷ peer |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    for row in ROWS:
        if args.rows and row.workload != args.rows:
            continue
        usable = {
            key: peer
            for key, peer in peers.items()
            if not isinstance(peer, str) and (peer.put_many is not None or not row.batched)
        }
        calls = "put_many/get_many" if row.batched else "put/get"
        print(f"  {row.workload} {row.kind} {calls}...", file=sys.stderr, flush=True)
        CPU_PER_OBJECT.clear()
        rates = measure_row(row, usable, args.reps, args.seconds)
        medians = {key: statistics.median(r) for key, r in rates.items()}
        for key, r in rates.items():
            cpu = CPU_PER_OBJECT[key][-len(r) :]  # the timed runs (not the pilot)
            record.append(
                {"workload": row.workload, "objects": row.kind, "calls": calls, "peer": key,
                 "rates": r, "median": medians[key], "cpu_us_per_object": [c * 1e6 for c in cpu]}
            )  # fmt: skip
        mine = medians.get("fastfifo.Queue")
        for key, peer in peers.items():
            if isinstance(peer, str):
                cells = (peer, "", "")
            elif key not in rates:
                continue  # multiprocessing.Queue has no put_many/get_many
            else:
                ratio = ""
                if mine:
                    ratio = "1.00" if key == "fastfifo.Queue" else f"{mine / medians[key]:.2f}"
                spread = f"{min(rates[key]):,.0f} – {max(rates[key]):,.0f}"  # noqa: RUF001
                cells = (f"{medians[key]:,.0f}", spread, ratio)
            print(
                f"| {row.workload} | {row.kind} | {calls} | {key} | {' | '.join(cells)} |",
                flush=True,
            )
        if args.ceiling and row.batched and row.producers == 1:
            dumps, loads, limit = pickle_limit(row.kind, args.reps)
            ratio = f"{mine / limit:.2f}" if mine else ""
            spread = f"dumps {dumps * 1e6:.2f} µs, loads {loads * 1e6:.2f} µs"
            print(f"| {row.workload} | {row.kind} | {calls} | pickle alone (ceiling) "
                  f"| {limit:,.0f} | {spread} | {ratio} |", flush=True)  # fmt: skip
            record.append(
                {"workload": row.workload, "objects": row.kind, "calls": calls,
                 "peer": "pickle alone (ceiling)", "median": limit,
                 "dumps_us": dumps * 1e6, "loads_us": loads * 1e6}
            )  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"fastfifo": where, "backend": fastfifo.backend, "rows": record}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
