"""A work queue: one producer, N shared worker processes, results back through a second FIFO.

    python examples/work_queue.py                  # 4 workers, 2000 tasks
    python examples/work_queue.py --workers 8 --tasks 100000 --batch 64

The producer puts tasks ("id number") into the FIFO ``tasks``.  Every worker opens
its own ``Reader(tasks, shared=True)``: each task goes to exactly one of them, whole.
Workers take up to ``--batch`` tasks per call (``get_many``), find whether each number
is prime, and put "id worker answer" into the FIFO ``results``, which the producer
reads.  When the producer closes its Writer, the workers' Readers (``stop_at_eof=True``)
end like ``cat`` and the workers exit.  The summary checks that every task was done
exactly once.

Only paths cross process boundaries: each process opens its own endpoints.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

import fastfifo


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def worker(number: int, tasks_path: str, results_path: str, batch: int, ready: Any) -> None:
    # stop_at_eof: leave once the producer (the only writer) has closed the FIFO.
    with (
        fastfifo.Reader(tasks_path, shared=True, stop_at_eof=True) as tasks,
        fastfifo.Writer(results_path) as results,
    ):
        ready.wait()  # all Readers and the producer's Writer are open
        while True:
            try:
                jobs = tasks.get_many(max_messages=batch)  # 1..batch whole messages
            except EOFError:
                break
            out = []
            for job in jobs:
                task_id, n = job.split()
                out.append(b"%s %d %d" % (task_id, number, is_prime(int(n))))
            results.put_many(out)  # packed into as few atomic writes as possible


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16, help="tasks per get_many call")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="work-queue-")  # mode 0700: only we can reach the FIFOs
    ctx = multiprocessing.get_context("spawn")  # children start clean; they open by path
    try:
        tasks_path = fastfifo.mkfifo(os.path.join(workdir, "tasks"))
        results_path = fastfifo.mkfifo(os.path.join(workdir, "results"))
        started = time.perf_counter()
        # Open our end of the results first: workers' Writers wait for a reader.
        with fastfifo.Reader(results_path) as results:
            # Everyone meets at the barrier: the workers with their Readers open, the
            # producer with its Writer open.  So no worker starts reading before the
            # producer is there (a stop_at_eof Reader ends once a writer has come and
            # gone), and the producer cannot finish before every worker is there.
            ready = ctx.Barrier(args.workers + 1, timeout=60)
            procs = [
                ctx.Process(target=worker, args=(i, tasks_path, results_path, args.batch, ready))
                for i in range(args.workers)
            ]
            for p in procs:
                p.start()
            numbers = {i: 1_000_003 + 2 * i for i in range(args.tasks)}

            def produce() -> None:
                with fastfifo.Writer(tasks_path, open_timeout=60) as tasks:
                    ready.wait()
                    tasks.put_many(b"%d %d" % item for item in numbers.items())
                # Closed: once the workers have taken every task, they see the end.

            # Send from a thread and read the results here meanwhile: with both pipes
            # full, a producer that only sent would wait for workers that wait for it
            # to read their results.
            producer = threading.Thread(target=produce)
            producer.start()
            done: Counter[int] = Counter()
            per_worker: Counter[int] = Counter()
            primes = 0
            while sum(done.values()) < args.tasks:
                for line in results.get_many(timeout=60):
                    task_id, who, answer = map(int, line.split())
                    done[task_id] += 1
                    per_worker[who] += 1
                    primes += answer
                    assert bool(answer) == is_prime(numbers[task_id]), f"wrong answer {line!r}"
            producer.join()
            for p in procs:
                p.join(60)
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"{args.tasks} tasks, {args.workers} shared workers, batches of up to {args.batch} "
        f"(fastfifo {fastfifo.__version__}, {fastfifo.backend} core)"
    )
    for w in range(args.workers):
        print(f"  worker {w}: {per_worker[w]} tasks")
    twice = [t for t, n in done.items() if n > 1]
    missing = args.tasks - len(done)
    if twice or missing or any(p.exitcode != 0 for p in procs):
        print(
            f"FAILED: {len(twice)} tasks done twice, {missing} never done, worker exit codes "
            f"{[p.exitcode for p in procs]}"
        )
        return 1
    print(f"every task done exactly once: {primes} primes found in {elapsed:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
