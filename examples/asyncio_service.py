"""An asyncio service that takes requests from a FIFO and hands CPU work to processes.

* Requests arrive on a FIFO that any program can write to; here a shell loop
  (``echo N``) plays the client.  The service reads them with ``fastfifo.aio.Reader``:
  no threads, the event loop stays free while it waits.
* Each request gets its own task.  CPU-heavy work goes to worker processes through a
  ``fastfifo.Queue``; the tasks ``await`` it through ``fastfifo.aio.Queue``, and one
  dispatcher task routes the answers back.
* A heartbeat task shows the loop never stalls.

Run it with ``python examples/asyncio_service.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import tempfile

import fastfifo
from fastfifo import aio

REQUESTS = 200
WORKERS = 2


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def worker(jobs: fastfifo.Queue, results: fastfifo.Queue) -> None:
    """A plain blocking worker process: no asyncio here."""
    for request_id, n in iter(jobs.get, None):
        results.put((request_id, fib(n)))


async def serve(requests_path: str, jobs: aio.Queue, results: aio.Queue) -> list[tuple[int, int]]:
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[int]] = {}

    async def dispatch() -> None:
        async for request_id, answer in results:  # objects, unpickled
            waiting.pop(request_id).set_result(answer)

    async def handle(request_id: int, n: int) -> tuple[int, int]:
        waiting[request_id] = loop.create_future()
        await jobs.put((request_id, n))
        return n, await asyncio.wait_for(waiting[request_id], 30)

    dispatcher = asyncio.create_task(dispatch())
    handlers: list[asyncio.Task[tuple[int, int]]] = []
    # stop_at_eof: the loop below ends when the client closes its end, like `cat`.
    async with aio.Reader(requests_path, framing="lines", stop_at_eof=True) as requests:
        client = subprocess.Popen(
            [
                "sh",
                "-c",
                f'for i in $(seq 1 {REQUESTS}); do echo $((i % 12 + 12)); done > "{requests_path}"',
            ]
        )
        async for line in requests:  # one request per line
            handlers.append(asyncio.create_task(handle(len(handlers), int(line))))
    answers = await asyncio.gather(*handlers)
    dispatcher.cancel()
    client.wait()
    return answers


async def heartbeat(stop: asyncio.Event) -> float:
    """The longest pause between 10 ms ticks while the service ran."""
    loop = asyncio.get_running_loop()
    longest, last = 0.0, loop.time()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = loop.time()
        longest, last = max(longest, now - last), now
    return longest


async def main() -> None:
    directory = tempfile.mkdtemp()
    requests_path = fastfifo.mkfifo(os.path.join(directory, "requests"))
    jobs, results = fastfifo.Queue(), fastfifo.Queue()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=worker, args=(jobs, results)) for _ in range(WORKERS)]
    for w in workers:
        w.start()

    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(stop))
    ajobs, aresults = aio.Queue(jobs), aio.Queue(results)
    answers = await asyncio.wait_for(serve(requests_path, ajobs, aresults), 120)
    stop.set()
    longest = await beat

    for _ in workers:
        await ajobs.put(None)  # stop signals
    await ajobs.aclose()
    aresults.close()
    for w in workers:
        w.join()
    os.unlink(requests_path)
    os.rmdir(directory)

    print(f"served {len(answers)} requests from a shell client with {WORKERS} worker processes")
    print(f"all answers correct: {all(fib(n) == answer for n, answer in answers)}")
    print(
        f"event loop stayed responsive (longest pause between heartbeats: {longest * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
