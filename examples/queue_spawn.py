"""fastfifo.Queue as a drop-in for multiprocessing.Queue, under the ``spawn`` start method.

Three producer processes put small dicts (and one 100 kB message each, larger than one
atomic write); three consumer processes share the queue and take every item exactly
once.  Run it with ``python examples/queue_spawn.py``.
"""

from __future__ import annotations

import multiprocessing

import fastfifo

ITEMS = 1000  # per producer


def produce(q: fastfifo.Queue, producer: int) -> None:
    for seq in range(ITEMS):
        q.put({"producer": producer, "seq": seq})
    # Larger than one atomic write: sent as fragments, delivered whole to one consumer.
    q.put({"producer": producer, "seq": ITEMS, "blob": bytes(100_000)})


def consume(q: fastfifo.Queue, results: fastfifo.Queue) -> None:
    taken = []
    while (item := q.get()) is not None:  # blocks until an item (or the stop signal) comes
        whole = "blob" not in item or item["blob"] == bytes(100_000)
        taken.append((item["producer"], item["seq"], whole))
    results.put(taken)


def main() -> None:
    ctx = multiprocessing.get_context("spawn")
    jobs = fastfifo.Queue()  # a private queue: its FIFO has no name, nothing is left behind
    results = fastfifo.Queue()
    consumers = [ctx.Process(target=consume, args=(jobs, results)) for _ in range(3)]
    producers = [ctx.Process(target=produce, args=(jobs, p)) for p in range(3)]
    for p in consumers + producers:
        p.start()  # each child gets the queue as multiprocessing passes its pipes
    for p in producers:
        p.join()
    for _ in consumers:
        jobs.put(None)  # one stop signal per consumer
    taken = [item for _ in consumers for item in results.get(timeout=60)]
    for p in consumers:
        p.join()

    expected = {(p, seq) for p in range(3) for seq in range(ITEMS + 1)}
    ids = [(p, seq) for p, seq, _ in taken]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    print(f"{len(ids)} items from 3 producers, taken by 3 consumers, each exactly once")
    print(f"large messages arrived whole: {all(whole for _, _, whole in taken)}")


if __name__ == "__main__":
    main()
