"""4 writers -> 4 shared readers, one put()/get() per message: a profiling workload.

The "4→4 64 B, one at a time" row of bench/run.py, standalone, so that ``strace -f -c``
or ``perf record -a`` can watch it whole (docs/benchmarks.md, "What stands between
fastfifo and the targets it does not meet"):

    python bench/shared_claims.py [MESSAGES_PER_WRITER]
    strace -f -c -o /tmp/st.txt python bench/shared_claims.py 100000

Each reader takes messages until none came for 0.3 s; the rate counts from the moment
every process is ready to the moment the writers are done and the readers drained, less
that 0.3 s.  It checks that every message was taken exactly once (by count).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time

import fastfifo

IDLE = 0.3


def _write(path: str, n: int, ready: mp.synchronize.Barrier) -> None:
    with fastfifo.Writer(path) as w:
        ready.wait()
        put, msg = w.put, b"x" * 64
        for _ in range(n):
            put(msg)


def _read(path: str, ready: mp.synchronize.Barrier, counts: mp.Queue) -> None:
    n = 0
    with fastfifo.Reader(path, shared=True) as r:
        ready.wait()
        get = r.get
        try:
            while True:
                get(timeout=IDLE)
                n += 1
        except fastfifo.Empty:
            pass
    counts.put(n)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    path = os.path.join(tempfile.mkdtemp(), "q")
    fastfifo.mkfifo(path)
    keep = fastfifo.Reader(path, shared=True)  # holds the FIFO open; never reads
    ready = mp.Barrier(9)
    counts: mp.Queue = mp.Queue()
    writers = [mp.Process(target=_write, args=(path, n, ready)) for _ in range(4)]
    readers = [mp.Process(target=_read, args=(path, ready, counts)) for _ in range(4)]
    for p in writers + readers:
        p.start()
    ready.wait()
    t0 = time.perf_counter()
    for p in writers:
        p.join()
    total = sum(counts.get() for _ in readers)
    elapsed = time.perf_counter() - t0 - IDLE
    for p in readers:
        p.join()
    keep.close()
    os.unlink(path)
    print(f"{total} of {4 * n} messages taken: {total / elapsed / 1e3:.0f}k msg/s")
    if total != 4 * n:
        sys.exit(1)


if __name__ == "__main__":
    main()
