"""The quick subset: 1→1 64 B, one at a time and batched, fastfifo vs the os.read baseline.

Finishes in well under a minute; ``python bench/run.py --quick`` runs it with the full
reporting.  (``fastfifo bench`` does not use it: the command's own, smaller benchmark is
``fastfifo/_bench.py``, which the wheel ships.)
"""

from __future__ import annotations

from . import harness, report
from .harness import Progress, Result
from .workloads import quick_cases

#: Shorter runs than the full suite: the quick subset is a smoke test of speed.
QUICK_SECONDS = 0.3


def run_quick(
    reps: int = 3, seconds: float = QUICK_SECONDS, progress: Progress | None = None
) -> list[Result]:
    """Measures the quick subset; returns one Result per (workload, peer)."""
    results: list[Result] = []
    for row, peers in harness.by_row(quick_cases()):
        results += harness.measure_row(row, peers, reps, seconds, progress)
    return results


def quick_table(results: list[Result]) -> str:
    """The markdown table for ``run_quick()``'s results."""
    titles = {row.key: row.title for row, _ in quick_cases()}
    return report.markdown(results, titles)
