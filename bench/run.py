#!/usr/bin/env python3
"""fastfifo benchmark suite: fastfifo against its peers, in real processes over real channels.

Every run checks delivery (each message exactly once and intact) and the table says
so beside the figures.  Peers that are not installed are reported, never fatal.

Examples
--------
  python bench/run.py --quick                      # ~15 s: 1→1 64 B vs os.read
  python bench/run.py --json out.json --plot out.png
  python bench/run.py --only 64B --only pingpong   # substring of ROW:PEER
  python bench/run.py --only '1to1-*-batch:*'      # glob on ROW:PEER
  python bench/run.py --list                       # every ROW:PEER key
  python bench/run.py --from-json out.json --plot out.png   # re-render, no measuring
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import harness, report
from bench.workloads import all_peers, all_rows, quick_cases, select


class Progress:
    """A status line on stderr (rewritten in place on a terminal) and a line per finished case."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.done = 0
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.title = ""

    def _clock(self) -> str:
        spent = time.monotonic() - self.t0
        eta = ""
        if self.done:
            left = spent / self.done * (self.rows - self.done)
            eta = f", ~{left / 60:.0f} min left" if left >= 90 else f", ~{left:.0f} s left"
        return f"[row {min(self.done + 1, self.rows)}/{self.rows}, {spent:.0f} s{eta}]"

    def row(self, title: str) -> None:
        self.title = title
        self.step("starting")

    def step(self, text: str) -> None:
        if self.tty:
            line = f"{self._clock()} {self.title} · {text}"
            width = shutil.get_terminal_size((100, 20)).columns - 1
            sys.stderr.write("\r\x1b[K" + line[:width])
            sys.stderr.flush()

    def finish(self, results: list) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
        self.done += 1
        for r in results:
            if r.kind == "pingpong" and r.latency() is not None:
                figure = f"{r.latency():.1f} µs median"
            elif r.rate is not None:
                figure = f"{r.rate:,.0f} msg/s"
            else:
                figure = "—"
            status = r.status if len(r.status) < 90 else r.status[:87] + "..."
            sys.stderr.write(f"  {self.title} · {r.label}: {figure}, {status}\n")
        sys.stderr.write(f"{self._clock()} {self.title} done\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        epilog="Rows: "
        + ", ".join(r.key for r in all_rows())
        + ". Peers: "
        + ", ".join(p.key for p in all_peers())
        + ".",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="only 1→1 64 B (one at a time and batched), fastfifo vs os.read; well under a minute",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="keep ROW:PEER keys containing PATTERN (a glob if it has * ? [); "
        "repeatable; see --list",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=3,
        help="timed runs per case (default 3; the median is reported, min-max shown)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="target length of one timed run; the message count is calibrated "
        "by a pilot run (default 0.5, 0.3 with --quick)",
    )
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also draw a PNG (needs matplotlib)")
    p.add_argument("--markdown", metavar="FILE", help="also write the report to FILE")
    p.add_argument("--list", action="store_true", help="print the ROW:PEER keys and exit")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        action="append",
        help="measure nothing: render the report (and --plot) from --json files; "
        "repeat to merge, a later file's workloads replacing an earlier one's",
    )
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 0.5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return rerender(args)
    if args.quick:
        cases = quick_cases()
    else:
        cases = [(row, peer) for row in all_rows() for peer in all_peers()]
    cases = select(cases, args.only)
    if args.list:
        print("\n".join(f"{row.key}:{peer.key}" for row, peer in cases))
        return 0
    if not cases:
        print(f"no ROW:PEER matches {args.only}; see --list", file=sys.stderr)
        return 2
    if args.plot and _no_matplotlib():
        print(
            "--plot needs matplotlib, which is not installed here (pip install matplotlib, "
            "or pip install -r bench/requirements.txt); going on without it",
            file=sys.stderr,
        )
        args.plot = None

    info = report.machine()
    info["load average at the start"] = report.load_average()
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"note: the machine is busy (load average {info['load average at the start']}); "
            "figures will be noisy",
            file=sys.stderr,
        )
    print(
        f"fastfifo {info['fastfifo']} on {info['cpu']} ({info['cores']} cores), "
        f"{info['kernel']}, {info['python']}: {len(cases)} cases, {args.reps} runs each",
        file=sys.stderr,
    )
    groups = harness.by_row(cases)
    progress = Progress(len(groups))
    results: list = []
    try:
        for row, peers in groups:
            progress.row(row.title)
            found = harness.measure_row(row, peers, args.reps, args.seconds, progress.step)
            results += found
            progress.finish(found)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting what was measured so far", file=sys.stderr)
    info["load average at the end"] = report.load_average()

    titles = {row.key: row.title for row, _ in cases}
    config = {
        "reps": args.reps,
        "seconds": args.seconds,
        "quick": args.quick,
        "only": args.only,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    if args.json:
        report.write_json(args.json, results, info, config)
        print(f"wrote {args.json}", file=sys.stderr)
    output(args, results, render(results, titles, info, config))
    return 1 if any(r.status.startswith("FAIL") for r in results) else 0


def output(args: argparse.Namespace, results: list, text: str) -> None:
    """The report to stdout (and ``--markdown``), and the ``--plot``."""
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot:
        problem = report.plot(args.plot, results)
        print(problem or f"wrote {args.plot}", file=sys.stderr)


def rerender(args: argparse.Namespace) -> int:
    """``--from-json``: the report and plot of earlier runs (merged by workload)."""
    rows: dict[str, list] = {}
    for path in args.from_json:
        with open(path) as f:
            data = json.load(f)
        found: dict[str, list] = {}
        for r in data["results"]:
            found.setdefault(r["row"], []).append(harness.Result.from_json(r))
        rows.update(found)
    order = [row.key for row in all_rows()]
    results = [
        r
        for key in sorted(rows, key=lambda k: order.index(k) if k in order else 99)
        for r in rows[key]
    ]
    titles = {row.key: row.title for row in all_rows()}
    output(args, results, render(results, titles, data["machine"], data["config"]))
    return 0


def render(results: list, titles: dict, info: dict, config: dict) -> str:
    parts = [
        "## Machine\n",
        report.machine_markdown(info),
        f"\n{config['reps']} timed runs per case of about {config['seconds']} s each "
        "(message count calibrated by a pilot run); "
        "median shown, min – max beside it.\n",  # noqa: RUF001 (a range: an en dash)
        "\n## Results\n",
        report.markdown(results, titles),
    ]
    measured = [t for t in report.targets(results) if "row not run" not in t["why"]]
    if any(t["ratio"] is not None or "not measured" not in t["why"] for t in measured):
        parts += ["\n## Targets (issue 4)\n", report.targets_markdown(measured)]
    return "\n".join(parts)


def _no_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
