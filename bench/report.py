"""Turning results into a markdown table, JSON, a PNG plot, and the issue-4 targets."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from .harness import Result
from .workloads import size_text

# --------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        proc = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
        )
        return proc.stdout.strip() or "?"
    return platform.processor() or "?"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    try:
        import fastfifo

        info["fastfifo"] = (
            f"{fastfifo.__version__} (backend: {fastfifo.backend}; source {source_revision()})"
        )
    except ImportError as exc:
        info["fastfifo"] = f"not importable ({exc})"
    info["faster-fifo"] = _version("faster-fifo")
    info["pyzmq"] = _version("pyzmq")
    try:
        import zmq

        info["pyzmq"] += f" (libzmq {zmq.zmq_version()})"
    except ImportError:
        pass
    info["posix_ipc"] = _version("posix_ipc")
    if sys.platform.startswith("linux"):
        info["pipe-max-size"] = _read("/proc/sys/fs/pipe-max-size")
        info["mqueue msg_max / msgsize_max"] = (
            f"{_read('/proc/sys/fs/mqueue/msg_max')} / {_read('/proc/sys/fs/mqueue/msgsize_max')}"
        )
    cc = (
        subprocess.run([os.environ.get("CC", "cc"), "--version"], capture_output=True, text=True)
        if _which_cc()
        else None
    )
    info["cc"] = cc.stdout.splitlines()[0] if cc and cc.stdout else "not found"
    return info


def load_average() -> str:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def source_revision() -> str:
    """The git revision of the fastfifo that is imported, which is not always this
    checkout's: an A/B run puts another worktree's ``src`` first on PYTHONPATH, and a
    wheel installed in a venv inside the checkout is no revision of it at all."""
    import fastfifo

    init = os.path.abspath(fastfifo.__file__)
    here = os.path.dirname(init)

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", here, *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"? (git did not run: {e})"
        return proc.stdout.strip() if proc.returncode == 0 else None

    tracked = git("ls-files", "--error-unmatch", os.path.basename(init))
    if tracked is None or tracked.startswith("? "):
        return tracked or f"? (not from a git checkout: {here})"
    return git("describe", "--always", "--dirty") or "?"


def _which_cc() -> bool:
    import shutil

    return shutil.which(os.environ.get("CC", "cc")) is not None


# --------------------------------------------------------------------- numbers


def _si(value: float | None) -> str:
    if value is None:
        return "—"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _mb(value: float | None) -> str:
    return "—" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3g}")


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _fastfifo(results: list[Result], row: str) -> Result | None:
    for r in results:
        if r.row == row and r.peer == "fastfifo" and r.runs:
            return r
    return None


def _delivery(r: Result) -> str:
    if r.status == "ok":
        fails = sum(1 for run in r.runs if run["status"] != "ok")
        return "ok" if not fails else f"{fails} of {len(r.runs)} runs failed"
    return r.status.replace("|", "/")


def _peer_cell(r: Result) -> str:
    name = f"**{r.label}**" if r.peer == "fastfifo" else r.label
    return f"{name} ({r.note})" if r.note else name


def _groups(results: list[Result]) -> list[list[Result]]:
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.row, []).append(r)
    return list(groups.values())


def _not_applicable(group: list[Result], workload: str, columns: int) -> list[str]:
    """One line naming the peers that cannot run this workload, by reason."""
    reasons: dict[str, list[str]] = {}
    for r in group:
        if r.status.startswith("n/a"):
            reasons.setdefault(r.status[len("n/a: ") :], []).append(r.peer)
    if not reasons:
        return []
    text = "; ".join(f"{', '.join(names)} ({why})" for why, names in reasons.items())
    return [f"| {workload} | *n/a:* {text} |" + " |" * (columns - 2)]


def markdown(results: list[Result], titles: dict[str, str]) -> str:
    """Throughput and ping-pong tables (GitHub markdown)."""
    out = []
    for kind in ("throughput", "pingpong"):
        groups = [g for g in _groups(results) if g[0].kind == kind]
        if not groups:
            continue
        if out:
            out.append("")
        if kind == "throughput":
            out += [
                "| workload | peer | msg/s (median) | min – max "  # noqa: RUF001
                "| MB/s | fastfifo ÷ peer | delivery |",
                "|---|---|---:|---:|---:|---:|---|",
            ]
        else:
            out += [
                "| workload | peer | round trip µs (median) "
                "| min – max of medians "  # noqa: RUF001 (ranges take an en dash)
                "| p99 µs | peer ÷ fastfifo | delivery |",
                "|---|---|---:|---:|---:|---:|---|",
            ]
        for group in groups:
            ff = _fastfifo(results, group[0].row)
            first = True
            for r in group:
                if r.status.startswith("n/a"):
                    continue
                workload = titles.get(r.row, r.row) if first else ""
                first = False
                spread = r.spread()
                if kind == "throughput":
                    ratio = ff.rate / r.rate if ff and ff.rate and r.rate else None
                    figures = [
                        _si(r.rate),
                        f"{_si(spread[0])} – {_si(spread[1])}"  # noqa: RUF001
                        if spread
                        else "—",
                        _mb(r.mbps),
                    ]
                else:
                    base = ff.latency() if ff else None
                    ratio = r.latency() / base if base and r.latency() else None
                    figures = [
                        _us(r.latency()),
                        f"{_us(spread[0])} – {_us(spread[1])}"  # noqa: RUF001
                        if spread
                        else "—",
                        _us(r.latency("p99_ns")),
                    ]
                out.append(
                    f"| {workload} | {_peer_cell(r)} | "
                    + " | ".join(figures)
                    + f" | {_ratio(ratio)} | {_delivery(r)} |"
                )
            out += _not_applicable(
                group, titles.get(group[0].row, group[0].row) if first else "", 7
            )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------- targets

#: (description, fastfifo row, peer, peer row, minimum fastfifo/peer ratio[, fastfifo mode])
TARGETS = [
    ("1→1 64 B put/get ≥ 1.0x C one write() per message", "1to1-64B-put", "C", "1to1-64B-put", 1.0),
    ("1→1 64 B put/get ≥ 5x multiprocessing.Queue", "1to1-64B-put", "mp.Queue", "1to1-64B-put", 5),
    ("1→1 64 B put/get ≥ 4x faster-fifo get", "1to1-64B-put", "faster-fifo", "1to1-64B-put", 4),
    ("1→1 64 B put/get ≥ 1.2x pyzmq", "1to1-64B-put", "pyzmq", "1to1-64B-put", 1.2),
    (
        "1→1 64 B batched ≥ 10x faster-fifo get_many",
        "1to1-64B-batch",
        "faster-fifo",
        "1to1-64B-batch",
        10,
    ),
    ("1→1 64 B batched ≥ 0.3x packed C", "1to1-64B-batch", "C", "1to1-64B-batch", 0.3),
    ("1→1 1 KiB batched ≥ 0.8x packed C (MB/s)", "1to1-1KiB-batch", "C", "1to1-1KiB-batch", 0.8),
    ("1→1 4000 B batched ≥ 0.8x packed C (MB/s)", "1to1-4000B-batch", "C", "1to1-4000B-batch", 0.8),
    (
        "1→1 64 KiB put/get ≥ 1.0x faster-fifo (MB/s)",
        "1to1-64KiB-put",
        "faster-fifo",
        "1to1-64KiB-put",
        1.0,
    ),
    (
        "1→1 64 KiB batched ≥ 1.0x faster-fifo (MB/s)",
        "1to1-64KiB-batch",
        "faster-fifo",
        "1to1-64KiB-batch",
        1.0,
    ),
    (
        "4→4 64 B shared readers (batched) ≥ 1.5x pyzmq PUSH/PULL",
        "4to4-64B-batch",
        "pyzmq",
        "4to4-64B-put",
        1.5,
    ),
    (
        "4→4 64 B shared readers (batched) ≥ 2x faster-fifo get_many",
        "4to4-64B-batch",
        "faster-fifo",
        "4to4-64B-batch",
        2,
    ),
    # The same rows with fastfifo's fast modes: Writer(buffered=True) for per-message put,
    # get_batch() for zero-copy receive.
    (
        "1→1 64 B put (buffered=True)/get ≥ 1.0x C one write() per message",
        "1to1-64B-put",
        "C",
        "1to1-64B-put",
        1.0,
        "fastfifo-buffered",
    ),
    (
        "1→1 64 B put (buffered=True)/get ≥ 1.2x pyzmq",
        "1to1-64B-put",
        "pyzmq",
        "1to1-64B-put",
        1.2,
        "fastfifo-buffered",
    ),
    (
        "1→1 64 B zero-copy batch receive ≥ 0.5x packed C",
        "1to1-64B-batch",
        "C",
        "1to1-64B-batch",
        0.5,
        "fastfifo-views",
    ),
    (
        "1→1 1 KiB batched, zero-copy ≥ 0.8x packed C (MB/s)",
        "1to1-1KiB-batch",
        "C",
        "1to1-1KiB-batch",
        0.8,
        "fastfifo-views",
    ),
    (
        "1→1 4000 B batched, zero-copy ≥ 0.8x packed C (MB/s)",
        "1to1-4000B-batch",
        "C",
        "1to1-4000B-batch",
        0.8,
        "fastfifo-views",
    ),
]


def _find(results: list[Result], row: str, peer: str) -> Result | None:
    return next((r for r in results if r.row == row and r.peer == peer), None)


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """The issue-4 targets with the measured ratio (fastfifo ÷ peer; ping-pong: latency ratio)."""
    out = []
    for text, ff_row, peer, peer_row, minimum, *mode in TARGETS:
        ff = _find(results, ff_row, mode[0] if mode else "fastfifo")
        other = _find(results, peer_row, peer)
        out.append(_target(text, ff, other, lambda r: r.rate, lambda x, m=minimum: x >= m))
    ff, c = _find(results, "pingpong-64B", "fastfifo"), _find(results, "pingpong-64B", "C")
    out.append(
        _target(
            "ping-pong 64 B median ≤ 1.3x the C round trip (fastfifo ÷ C)",
            ff,
            c,
            lambda r: r.latency(),
            lambda x: x <= 1.3,
        )
    )
    return out


def _target(
    text: str, ff: Result | None, other: Result | None, figure: Any, good: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {"target": text, "ratio": None, "met": None, "why": ""}
    for who, r in (("fastfifo", ff), ("peer", other)):
        if r is None:
            row["why"] = f"not measured ({who} row not run)"
            return row
        if figure(r) is None:
            row["why"] = f"{r.label}: {r.status}"
            return row
    row["ratio"] = figure(ff) / figure(other)
    row["met"] = good(row["ratio"])
    return row


def targets_markdown(rows: Iterable[dict[str, Any]]) -> str:
    out = ["| target (issue 4) | measured | met |", "|---|---:|---|"]
    for t in rows:
        met = {True: "yes", False: "**no**", None: "—"}[t["met"]]
        measured = _ratio(t["ratio"]) if t["ratio"] is not None else t["why"]
        out.append(f"| {t['target']} | {measured} | {met} |")
    return "\n".join(out) + "\n"


def machine_markdown(info: dict[str, Any]) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in info.items()) + "\n"


# --------------------------------------------------------------------- files


def write_json(path: str, results: list[Result], info: dict[str, Any], config: dict) -> None:
    data = {
        "machine": info,
        "config": config,
        "results": [r.to_json() for r in results],
        "targets": targets(results),
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def plot(path: str, results: list[Result]) -> str | None:
    """Saves a PNG; returns None, or why it could not (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "--plot needs matplotlib, which is not installed "
            "(pip install matplotlib, or pip install -r bench/requirements.txt)"
        )
    fig, axes = plt.subplots(2, 2, figsize=(15, 11))
    peers = list(dict.fromkeys(r.peer for r in results))
    palette = iter(plt.get_cmap("tab20").colors)  # (20: room for every peer, C aside)
    colors = {p: "black" if p == "C" else next(palette) for p in peers}
    for ax, batched in ((axes[0][0], False), (axes[0][1], True)):
        suffix = "-batch" if batched else "-put"
        title = "1→1 " + (
            "batched (put_many/get_many, packed writes)" if batched else "one message per call"
        )
        drawn = 0
        for peer in peers:
            pts = sorted(
                (r.size, r.mbps)
                for r in results
                if r.peer == peer
                and r.rate
                and r.row.startswith("1to1-")
                and r.row.endswith(suffix)
            )
            if pts:
                drawn += 1
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    "o--" if peer == "C" else "o-",
                    label="C limit" if peer == "C" else peer,
                    color=colors[peer],
                    linewidth=3 if peer == "fastfifo" else 1.3,
                )
        if not drawn:
            _empty(ax, title)
            continue
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted({r.size for r in results if r.row.startswith("1to1-")}) or [64])
        ax.set_xticklabels([size_text(s) for s in ax.get_xticks()], fontsize=8)
        ax.set_xlabel("payload")
        ax.set_ylabel("MB/s (payload bytes, log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    _bars(
        axes[1][0],
        [r for r in results if r.kind == "throughput" and r.row.startswith("4to")],
        lambda r: r.rate,
        "msg/s (log)",
        "4 writers: 4→1 and 4→4 (64 B)",
        colors,
        log=True,
    )
    _bars(
        axes[1][1],
        [r for r in results if r.kind == "pingpong"],
        lambda r: r.latency(),
        "round trip µs (median; lower is better)",
        "ping-pong 64 B",
        colors,
        log=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _bars(
    ax: Any, results: list[Result], value: Any, xlabel: str, title: str, colors: dict, log: bool
) -> None:
    shown = [r for r in results if value(r)]
    if not shown:
        _empty(ax, title)
        return
    labels = [
        f"{r.row.split('-')[0].replace('to', '→')} {r.row.split('-')[-1]} · {r.label}"
        if r.kind == "throughput"
        else r.label
        for r in shown
    ]
    ax.barh(range(len(shown)), [value(r) for r in shown], color=[colors[r.peer] for r in shown])
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", which="both", alpha=0.3)


def _empty(ax: Any, title: str) -> None:
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        "not measured in this run",
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="gray",
    )
    ax.set_axis_off()
