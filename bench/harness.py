"""Runs measurements: real processes over real channels, delivery checked every time.

One *run* forks ``row.writers`` writer and ``row.readers`` reader processes (the
``fork`` start method, so queues made in the parent are inherited as users do),
lets each open its endpoint and build its payloads, lines them up on a barrier,
and times from the barrier to the moment the last message was received.  The
readers then check what they got (``bench.messages``) and the parent checks that
all readers together got every index exactly once.

``measure_row`` first does a small pilot run per peer to learn its rate and picks a
message count that lasts about ``seconds`` (capped for memory), then repeats the
timed runs ``reps`` times, interleaving the peers, and keeps every repetition: the
report shows the median and the min-max.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import messages
from .peer import Sync, pin

#: Ping-pong: untimed round trips first, and the range of timed ones.
WARMUP = 200
PINGPONG_MIN, PINGPONG_MAX = 1000, 30000

Progress = Callable[[str], None]


@dataclass
class Result:
    """Everything measured for one (row, peer) pair."""

    row: str
    peer: str
    label: str
    status: str  # "ok", "FAIL: ...", "not installed ...", "n/a: ...", "not supported yet: ..."
    kind: str = "throughput"
    size: int = 0
    count: int = 0  # messages per run (all writers), or timed round trips
    per_writer: int = 0  # messages per writer per run (round trips for ping-pong)
    timeout: float = 0.0  # seconds a timed run may take before it counts as failed
    note: str = ""
    runs: list = field(default_factory=list)  # one dict per repetition

    # --- throughput ----------------------------------------------------------
    def rates(self) -> list[float]:
        if self.kind != "throughput":
            return []
        return [r["messages"] / r["seconds"] for r in self.runs if r["status"] == "ok"]

    @property
    def rate(self) -> float | None:
        """Median messages per second over the repetitions."""
        rates = self.rates()
        return statistics.median(rates) if rates else None

    @property
    def mbps(self) -> float | None:
        """Median payload megabytes (10^6) per second."""
        return None if self.rate is None else self.rate * self.size / 1e6

    # --- ping-pong -----------------------------------------------------------
    def latency(self, key: str = "median_ns") -> float | None:
        """Median over the repetitions of a round-trip figure (``median_ns``/``p99_ns``), in µs."""
        if self.kind != "pingpong":
            return None
        values = [r[key] for r in self.runs if r["status"] == "ok"]
        return statistics.median(values) / 1000 if values else None

    def spread(self) -> tuple[float, float] | None:
        """(min, max) of the per-repetition figure: msg/s, or median round trip in µs."""
        if self.kind == "pingpong":
            values = [r["median_ns"] / 1000 for r in self.runs if r["status"] == "ok"]
        else:
            values = self.rates()
        return (min(values), max(values)) if values else None

    @classmethod
    def from_json(cls, data: dict) -> Result:
        """The inverse of ``to_json`` (derived figures are recomputed)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict:
        data = asdict(self)
        if self.kind == "pingpong":
            data.update(median_us=self.latency(), p99_us=self.latency("p99_ns"))
        else:
            data.update(msgs_per_s=self.rate, mb_per_s=self.mbps)
        data["spread"] = self.spread()
        return data


def context() -> Any:
    """The multiprocessing context used for every worker (fork: inherits parent-made queues)."""
    return multiprocessing.get_context("fork")


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:]
    at = f" at {os.path.basename(where[0].filename)}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _writer_main(peer, channel, row, wid, count, sync_args, results) -> None:
    sync = Sync(*sync_args, report=lambda: results.put(("writer", wid, sync.start)))
    try:
        payloads = messages.make_payloads(wid * count, count, row.size)
        items = (
            messages.batches(payloads, messages.batch_size(row.size)) if row.batched else payloads
        )
        peer.send(channel, row, wid, items, sync)
        sync.sent()
    except BaseException as exc:
        results.put(("error", f"writer {wid}", _describe(exc)))


def _reader_main(peer, channel, row, rid, count, sync_args, results) -> None:
    try:
        sync = Sync(*sync_args, report=None, rid=rid)
        got, start, end = peer.receive(channel, row, rid, count, sync)
        indices, problem = messages.check_received(got, row.size)
        results.put(("reader", rid, start, end, indices, problem))
    except BaseException as exc:
        results.put(("error", f"reader {rid}", _describe(exc)))


def _echo_main(peer, channel, row, count, sync_args, results) -> None:
    try:
        pin(row, "server")
        peer.echo(channel, row, count, Sync(*sync_args, report=None))
        results.put(("server",))
    except BaseException as exc:
        results.put(("error", "ping-pong server", _describe(exc)))


def _ping_main(peer, channel, row, count, sync_args, results) -> None:
    try:
        pin(row, "client")
        payloads = messages.make_payloads(0, WARMUP + count, row.size)
        replies, rtts = peer.ping(channel, row, payloads, Sync(*sync_args, report=None))
        problem = None if replies == payloads else "FAIL: an echo differed from what was sent"
        timed = sorted(rtts[WARMUP:])
        results.put(("client", timed[len(timed) // 2], timed[len(timed) * 99 // 100], problem))
    except BaseException as exc:
        results.put(("error", "ping-pong client", _describe(exc)))


def _run_workers(targets, results, timeout, on_report):
    """Start workers, feed their reports to ``on_report`` until it returns True; kill leftovers."""
    ctx = context()
    procs = [ctx.Process(target=t, args=a, daemon=True) for t, a in targets]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"FAIL: timeout after {timeout:.0f} s"
            try:
                report = results.get(timeout=min(left, 0.5))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    return f"FAIL: a worker died (exit code {dead[0]})"
                continue
            if report[0] == "error":
                return f"FAIL: {report[1]}: {report[2]}"
            if on_report(report):
                break
        for proc in procs:
            proc.join(timeout=10)
        return None
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()


def run_throughput(peer: Any, row: Any, count: int, timeout: float) -> dict:
    """One run; ``count`` messages per writer.  Returns {"status", "seconds", "messages"}."""
    if hasattr(peer, "measure"):
        return peer.measure(row, count, timeout)
    ctx = context()
    tmp = tempfile.mkdtemp(prefix="ffbench-")
    channel = peer.setup(row, tmp, ctx)
    total = count * row.writers
    results = ctx.Queue()
    done, finished = ctx.Event(), ctx.Event()
    tally = ctx.RawArray("q", row.readers) if row.readers > 1 else None
    sync_args = (ctx.Barrier(row.writers + row.readers), done, finished, tally, total)
    per_reader = total if row.readers == 1 else None
    targets = [
        (_reader_main, (peer, channel, row, r, per_reader, sync_args, results))
        for r in range(row.readers)
    ]
    targets += [
        (_writer_main, (peer, channel, row, w, count, sync_args, results))
        for w in range(row.writers)
    ]
    starts: list[int] = []
    ends: list[int] = []
    parts: list[bytes] = []
    problems: list[str] = []
    left = {"writer": row.writers, "reader": row.readers}

    def on_report(report: tuple) -> bool:
        left[report[0]] -= 1
        starts.append(report[2])
        if report[0] == "writer" and left["writer"] == 0 and row.readers > 1:
            peer.after_writers(channel, row)
            done.set()
        if report[0] == "reader":
            ends.append(report[3])
            parts.append(report[4])
            if report[5]:
                problems.append(report[5])
            if not left["reader"]:
                finished.set()
        return not left["writer"] and not left["reader"]

    try:
        note = peer.note(channel)
        failure = _run_workers(targets, results, timeout, on_report)
    finally:
        peer.teardown(channel)
        shutil.rmtree(tmp, ignore_errors=True)
    if failure or problems:
        return {"status": failure or problems[0], "note": note}
    status = messages.check_indices(parts, total, ordered=row.writers == 1 and row.readers == 1)
    return {
        "status": status or "ok",
        "seconds": (max(ends) - min(starts)) / 1e9,
        "messages": total,
        "note": note,
    }


def run_pingpong(peer: Any, row: Any, count: int, timeout: float) -> dict:
    """One ping-pong run of ``count`` timed round trips; {"status", "median_ns", "p99_ns"}."""
    if hasattr(peer, "measure_pingpong"):
        return peer.measure_pingpong(row, count, WARMUP, timeout)
    ctx = context()
    tmp = tempfile.mkdtemp(prefix="ffbench-")
    channel = peer.setup(row, tmp, ctx)
    results, finished = ctx.Queue(), ctx.Event()
    sync_args = (ctx.Barrier(2), ctx.Event(), finished, None, 0)
    targets = [
        (_echo_main, (peer, channel, row, WARMUP + count, sync_args, results)),
        (_ping_main, (peer, channel, row, count, sync_args, results)),
    ]
    got: dict = {}

    def on_report(report: tuple) -> bool:
        got[report[0]] = report
        if report[0] == "client":
            finished.set()
        return len(got) == 2

    try:
        failure = _run_workers(targets, results, timeout, on_report)
    finally:
        peer.teardown(channel)
        shutil.rmtree(tmp, ignore_errors=True)
    if failure:
        return {"status": failure}
    _, median, p99, problem = got["client"]
    return {"status": problem or "ok", "median_ns": median, "p99_ns": p99, "messages": count}


def _pilot_count(row: Any) -> int:
    """Messages per writer for the pilot run: about 2 MiB, between 100 and 20000."""
    return max(100, min(20000, (2 << 20) // row.size // row.writers))


def plan(peer: Any, row: Any, seconds: float) -> tuple[int, dict]:
    """Pilot run; returns (count for the timed runs, the pilot's result)."""
    if row.kind == "pingpong":
        pilot = run_pingpong(peer, row, 500, timeout=120)
        if pilot["status"] != "ok":
            return 0, pilot
        count = int(seconds / (pilot["median_ns"] / 1e9))
        return max(PINGPONG_MIN, min(PINGPONG_MAX, count)), pilot
    n = _pilot_count(row)
    pilot = run_throughput(peer, row, n, timeout=120)
    if pilot["status"] != "ok":
        return 0, pilot
    rate = pilot["messages"] / pilot["seconds"]
    total = min(int(rate * seconds), peer.max_messages, peer.max_bytes // row.size)
    return max(n, total // row.writers), pilot


def prepare(peer: Any, row: Any, seconds: float, progress: Progress | None = None) -> Result:
    """Checks that ``peer`` can run ``row`` and does the pilot run; no timed run yet.

    A Result whose status is not "ok" afterwards is final (n/a, not installed, failed pilot).
    """
    result = Result(
        row=row.key, peer=peer.key, label=peer.label(row), status="ok", kind=row.kind, size=row.size
    )
    reason = peer.unavailable() or peer.unsupported(row)
    if reason:
        result.status = reason
        return result
    if progress:
        progress("pilot run")
    count, pilot = plan(peer, row, seconds)
    result.note = pilot.get("note", "")
    if pilot["status"] != "ok":
        result.status = pilot["status"] + " (pilot run)"
        return result
    result.per_writer = count
    result.count = count * (row.writers if row.kind == "throughput" else 1)
    if row.kind == "pingpong":
        expected = count * pilot["median_ns"] / 1e9
    else:
        expected = result.count * pilot["seconds"] / pilot["messages"]
    result.timeout = 60 + 20 * expected
    return result


def repeat(peer: Any, row: Any, result: Result) -> None:
    """One more timed run for a prepared ``result``."""
    if row.kind == "pingpong":
        run = run_pingpong(peer, row, result.per_writer, result.timeout)
    else:
        run = run_throughput(peer, row, result.per_writer, result.timeout)
    result.runs.append(run)
    if run["status"] != "ok" and result.status == "ok":
        result.status = run["status"]


def measure_row(
    row: Any, peers: list, reps: int, seconds: float, progress: Progress | None = None
) -> list[Result]:
    """All ``peers`` on one ``row``, repetitions interleaved (peer A, B, C, A, B, C...).

    Interleaving spreads slow drifts of a noisy machine over every peer alike, so the
    ratios within a row stay fair even when the absolute figures move.
    """
    say = progress or (lambda text: None)
    results = []
    for peer in peers:
        results.append(prepare(peer, row, seconds, lambda t, p=peer: say(f"{p.label(row)}: {t}")))
    for rep in range(reps):
        for peer, result in zip(peers, results, strict=True):
            if result.status == "ok" or result.runs:
                say(f"{peer.label(row)}: run {rep + 1}/{reps}, {result.count:,} messages")
                repeat(peer, row, result)
    return results


def by_row(cases: list[tuple[Any, Any]]) -> list[tuple[Any, list]]:
    """Groups (row, peer) cases into (row, [peers]) in first-seen order."""
    groups: dict[Any, list] = {}
    for row, peer in cases:
        groups.setdefault(row, []).append(peer)
    return list(groups.items())
