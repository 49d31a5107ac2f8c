"""The workloads (rows of the table) and the peers, in the order the table shows them."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from .climit import CLimit
from .peer import Peer
from .peers_ext import FasterFifo, PosixMQ, Zmq
from .peers_fifo import FastFifo, FastFifoBuffered, FastFifoViews, OsRead, PythonFloor
from .peers_std import MpPipe, MpQueue, MpSimpleQueue

SIZES = (16, 64, 256, 1024, 4000, 65536)


def size_text(size: int) -> str:
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


@dataclass(frozen=True)
class Row:
    """One workload: who sends to whom, how big, batched or not."""

    kind: str  # "throughput" or "pingpong"
    size: int
    writers: int = 1
    readers: int = 1
    batched: bool = False
    #: ping-pong: "apart" (the two processes pinned to different CPUs) or "same" (both
    #: pinned to one CPU: every round trip is two context switches on it).
    cpus: str = "apart"

    @property
    def key(self) -> str:
        """Identifier for ``--only`` and the JSON, e.g. ``1to1-64B-batch``."""
        size = size_text(self.size).replace(" ", "")
        if self.kind == "pingpong":
            return f"pingpong-{size}" + ("-samecpu" if self.cpus == "same" else "")
        mode = "batch" if self.batched else "put"
        return f"{self.writers}to{self.readers}-{size}-{mode}"

    @property
    def title(self) -> str:
        """What the table shows, e.g. ``1→1 64 B, batched``."""
        if self.kind == "pingpong":
            where = "one CPU" if self.cpus == "same" else "two CPUs"
            return f"ping-pong {size_text(self.size)}, {where}"
        mode = "batched" if self.batched else "one at a time"
        return f"{self.writers}→{self.readers} {size_text(self.size)}, {mode}"


def all_rows() -> list[Row]:
    rows = [Row("throughput", size, batched=batched) for size in SIZES for batched in (False, True)]
    rows += [Row("throughput", 64, writers=4, readers=1, batched=b) for b in (False, True)]
    rows += [Row("throughput", 64, writers=4, readers=4, batched=b) for b in (False, True)]
    rows.append(Row("pingpong", 64))
    rows.append(Row("pingpong", 64, cpus="same"))
    return rows


def all_peers() -> list[Peer]:
    return [
        FastFifo(),
        FastFifoBuffered(),
        FastFifoViews(),
        CLimit(),
        OsRead(),
        PythonFloor(),
        MpQueue(),
        MpSimpleQueue(),
        MpPipe(),
        FasterFifo(),
        Zmq(),
        PosixMQ(),
    ]


def quick_cases() -> list[tuple[Row, Peer]]:
    """The quick subset: 1→1 64 B, one at a time and batched, fastfifo vs os.read."""
    rows = [Row("throughput", 64), Row("throughput", 64, batched=True)]
    return [(row, peer) for row in rows for peer in (FastFifo(), OsRead())]


def select(cases: list[tuple[Row, Peer]], patterns: list[str]) -> list[tuple[Row, Peer]]:
    """Keeps the cases whose ``ROW:PEER`` key matches any pattern.

    A pattern with ``*``, ``?`` or ``[`` is a glob on the whole key (case-insensitive),
    anything else a substring: ``64B``, ``pingpong``, ``faster-fifo``, ``1to1-*-batch:*``.
    """
    if not patterns:
        return cases
    kept = []
    for row, peer in cases:
        key = f"{row.key}:{peer.key}".lower()
        for pattern in patterns:
            p = pattern.lower()
            if fnmatch.fnmatchcase(key, p) if any(c in p for c in "*?[") else p in key:
                kept.append((row, peer))
                break
    return kept
