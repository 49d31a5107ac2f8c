"""The quick benchmark behind ``fastfifo bench``: 1 -> 1 through a temporary FIFO.

One producer process, one consumer (this process), 64-byte messages by default.
Rows: fastfifo ``put``/``get``, fastfifo ``put_many``/``get_many``, and the
hand-written loop users write today (``os.write`` of a 4-byte length prefix plus
payload per message, ``os.read`` of 64 KiB plus a Python parse loop).  Every run
checks delivery: each message once, in order, intact.  The full suite with the
other peers is ``bench/run.py`` in the source tree.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import fastfifo

_LEN = struct.Struct("<I")
_SEQ = struct.Struct("<Q")


def _payloads(count: int, size: int) -> list[bytes]:
    pad = b"." * (size - _SEQ.size)
    return [_SEQ.pack(i) + pad for i in range(count)]


# ------------------------------------------------------------------ producers (child side)


def _produce_fastfifo(path: str, count: int, size: int, batch: int, ready: Any, go: Any) -> None:
    msgs = _payloads(count, size)
    with fastfifo.Writer(path) as w:
        ready.set()
        go.wait()
        if batch > 1:
            for i in range(0, count, batch):
                w.put_many(msgs[i : i + batch])
        else:
            put = w.put
            for m in msgs:
                put(m)


def _produce_os_write(path: str, count: int, size: int, batch: int, ready: Any, go: Any) -> None:
    msgs = [_LEN.pack(size) + m for m in _payloads(count, size)]
    fd = os.open(path, os.O_WRONLY)
    try:
        ready.set()
        go.wait()
        if batch > 1:  # what a careful hand-written writer does: join, stay <= PIPE_BUF
            per = max(1, fastfifo.PIPE_BUF // (size + 4))
            for i in range(0, count, per):
                os.write(fd, b"".join(msgs[i : i + per]))
        else:
            for m in msgs:
                os.write(fd, m)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ consumers (this process)


def _consume_fastfifo(reader: Any, count: int, batch: int) -> list[bytes]:
    out: list[bytes] = []
    if batch > 1:
        while len(out) < count:
            out += reader.get_many(max_messages=batch, timeout=60)
    else:
        get = reader.get
        out = [get(timeout=60) for _ in range(count)]
    return out


def _consume_os_read(fd: int, count: int) -> list[bytes]:
    out: list[bytes] = []
    buf = b""
    unpack = _LEN.unpack_from
    while len(out) < count:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("writer left early")
        buf += chunk
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (n,) = unpack(buf, pos)
            if end - pos - 4 < n:
                break
            out.append(buf[pos + 4 : pos + 4 + n])
            pos += 4 + n
        buf = buf[pos:]
    return out


# ------------------------------------------------------------------ one measured run


def _wait_ready(ready: Any, p: Any) -> None:
    while not ready.wait(0.1):
        if not p.is_alive():
            raise RuntimeError(f"the benchmark's producer process exited ({p.exitcode})")


def _run_once(kind: str, count: int, size: int, batch: int) -> tuple[float, str]:
    ctx = multiprocessing.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="fastfifo-bench-")  # 0700: only we can reach the FIFO
    path = fastfifo.mkfifo(os.path.join(tmp, "q"))
    # The clock starts once the producer has started, built its payloads and opened its
    # end (`ready`), and it starts sending on `go`: start-up is never timed.
    ready, go = ctx.Event(), ctx.Event()
    try:
        if kind == "fastfifo":
            with fastfifo.Reader(path) as r:
                p = ctx.Process(
                    target=_produce_fastfifo, args=(path, count, size, batch, ready, go)
                )
                p.start()
                _wait_ready(ready, p)
                t0 = time.perf_counter()
                go.set()
                got = _consume_fastfifo(r, count, batch)
                elapsed = time.perf_counter() - t0
        else:
            p = ctx.Process(target=_produce_os_write, args=(path, count, size, batch, ready, go))
            p.start()
            fd = os.open(path, os.O_RDONLY)  # blocks until the producer opens
            try:
                _wait_ready(ready, p)
                t0 = time.perf_counter()
                go.set()
                got = _consume_os_read(fd, count)
                elapsed = time.perf_counter() - t0
            finally:
                os.close(fd)
        p.join(60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    expected = _payloads(count, size)
    check = "ok" if got == expected else f"FAILED ({len(got)} of {count}, or out of order)"
    return count / elapsed, check


ROWS: list[tuple[str, str, int]] = [
    ("fastfifo put / get", "fastfifo", 1),
    ("fastfifo put_many / get_many", "fastfifo", 1000),
    ("hand-written os.write / os.read, one write per message", "os", 1),
    ("hand-written os.write / os.read, joined writes", "os", 1000),
]

#: Each fastfifo row's fair baseline: the hand-written loop doing the same work (one
#: write per message for put/get; messages joined into as few writes as PIPE_BUF allows
#: for put_many/get_many), by index in ROWS.
BASELINE = {0: 2, 1: 3}

#: Runs of one row spread wider than this (max - min over the median) are flagged: the
#: machine was busy, and the row's median should be read as a range.
NOISY = 0.20


def run(
    count: int = 200_000,
    size: int = 64,
    repeat: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every row ``repeat`` times; return machine details and per-row results."""
    if size < _SEQ.size:
        raise ValueError(f"size must be at least {_SEQ.size} bytes")
    results = []
    for i, (label, kind, batch) in enumerate(ROWS, 1):
        rates, checks = [], []
        for rep in range(repeat):
            if progress:
                progress(f"[{i}/{len(ROWS)}] {label}: run {rep + 1} of {repeat}")
            rate, check = _run_once(kind, count, size, batch)
            rates.append(rate)
            checks.append(check)
        bad = [c for c in checks if c != "ok"]
        results.append(
            {
                "row": label,
                "msg_per_s": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "mb_per_s": statistics.median(rates) * size / 1e6,
                "delivery": bad[0] if bad else "ok",
            }
        )
    return {
        "machine": machine(),
        "count": count,
        "size": size,
        "repeat": repeat,
        "results": results,
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "fastfifo": fastfifo.__version__,
        "backend": fastfifo.backend,
    }


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    rows = report["results"]
    lines = [
        f"fastfifo {m['fastfifo']} ({m['backend']} core), Python {m['python']}, {m['os']}, "
        f"{m['cpu']} x{m['cores']}",
        f"1 -> 1, {report['count']:,} messages of {report['size']} B, median of "
        f"{report['repeat']} runs (min-max, and the spread: max - min over the median)",
        "",
        "| workload | msg/s | spread | MB/s | vs its baseline | delivery |",
        "|---|---:|---:|---:|---|---|",
    ]
    noisy = []
    for i, r in enumerate(rows):
        spread = (r["max"] - r["min"]) / r["msg_per_s"] if r["msg_per_s"] else 0.0
        if spread > NOISY:
            noisy.append(f"{r['row']} ({spread:.0%})")
        if i in BASELINE and BASELINE[i] < len(rows):
            base = rows[BASELINE[i]]
            versus = f"{r['msg_per_s'] / base['msg_per_s']:.2f}x {_short(base['row'])}"
        else:
            versus = "(a baseline)"
        lines.append(
            f"| {r['row']} | {r['msg_per_s']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f}) | "
            f"{spread:.0%} | {r['mb_per_s']:,.1f} | {versus} | {r['delivery']} |"
        )
    lines += [
        "",
        "Each fastfifo row is compared with the hand-written loop doing the same work: one",
        "os.write per message for put / get, messages joined into PIPE_BUF-sized writes for",
        "put_many / get_many.",
    ]
    if noisy:
        lines.append(
            f"Noisy: the runs of {', '.join(noisy)} spread more than {NOISY:.0%}; the machine "
            "was busy, so read those medians as ranges (or run again with --repeat 5)."
        )
    return "\n".join(lines)


def _short(row: str) -> str:
    return "one write per message" if "one write" in row else "joined writes"


def have_matplotlib() -> bool:
    """Whether ``plot()`` can work here (matplotlib is an optional extra)."""
    import importlib.util

    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def plot(report: dict[str, Any], path: str) -> None:
    """Draw msg/s per row (median, with the min-max range of the runs) into a PNG at ``path``."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    rows = report["results"]
    labels = [r["row"].replace(", ", ",\n", 1) for r in rows]
    med = [r["msg_per_s"] / 1e6 for r in rows]
    lo = [(r["msg_per_s"] - r["min"]) / 1e6 for r in rows]
    hi = [(r["max"] - r["msg_per_s"]) / 1e6 for r in rows]
    colors = ["tab:blue" if r["row"].startswith("fastfifo") else "tab:gray" for r in rows]
    for i, j in BASELINE.items():  # name each fastfifo row's baseline beside it
        if j < len(rows):
            ratio = rows[i]["msg_per_s"] / rows[j]["msg_per_s"]
            labels[i] += f"\n({ratio:.2f}x its baseline: {_short(rows[j]['row'])})"
    fig, ax = plt.subplots(figsize=(9, 1.1 + 0.8 * len(rows)))
    try:
        y = list(range(len(rows)))[::-1]
        ax.barh(y, med, xerr=[lo, hi], color=colors, capsize=4)
        ax.set_yticks(y, labels)
        for yi, m, up, r in zip(y, med, hi, rows):
            note = "" if r["delivery"] == "ok" else f"  {r['delivery']}"
            ax.text(m + up, yi, f"  {m:,.2f}M{note}", va="center", fontsize=9)
        ax.set_xlabel("million messages per second (median; bars show min-max of the runs)")
        m = report["machine"]
        ax.set_title(
            f"fastfifo bench: 1 -> 1, {report['count']:,} x {report['size']} B, "
            f"{report['repeat']} runs per row\nfastfifo {m['fastfifo']} ({m['backend']}), "
            f"Python {m['python']}, {m['os']}, {m['cores']} cores",
            fontsize=10,
        )
        ax.set_xlim(0, max(med[i] + hi[i] for i in range(len(rows))) * 1.25 or 1)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


if __name__ == "__main__":  # pragma: no cover
    print(format_table(run(progress=lambda s: print(s, file=sys.stderr))))
