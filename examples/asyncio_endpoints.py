"""fastfifo.aio.Reader and Writer: bytes messages in asyncio code.

Shows 1,000 concurrent producer and consumer tasks on one FIFO, a cancelled ``get``
that loses nothing, and ``write()`` + ``await drain()`` backpressure.  Runs under the
default event loop, or uvloop if you pass ``--uvloop``.  Run it with
``python examples/asyncio_endpoints.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import fastfifo
from fastfifo import aio


async def main() -> None:
    path = fastfifo.mkfifo(os.path.join(tempfile.mkdtemp(), "events"))
    reader = aio.Reader(path)  # fastfifo.Reader options go here (shared=True, ...)
    writer = aio.Writer(path)  # a reader is open, so this never waits

    # 1. A thousand consumer tasks and a thousand producer tasks on one FIFO.
    received: list[bytes] = []

    async def consumer() -> None:
        received.append(await reader.get())

    async def producer(i: int) -> None:
        await writer.put(b"event %d" % i)  # waits (without blocking the loop) if the pipe is full

    await asyncio.gather(*(consumer() for _ in range(1000)), *(producer(i) for i in range(1000)))
    assert sorted(received) == sorted(b"event %d" % i for i in range(1000))
    print(f"{len(received)} messages through 1000 producer and 1000 consumer tasks")

    # 2. Time limits come from asyncio, and a cancelled get loses nothing.
    try:
        await asyncio.wait_for(reader.get(), timeout=0.1)
    except asyncio.TimeoutError:
        pass
    pending = asyncio.create_task(reader.get())
    await asyncio.sleep(0)  # the get is now waiting for the FIFO
    await writer.put(b"still here")  # the message arrives...
    pending.cancel()  # ...and the waiting get is cancelled before it could take it
    print(f"a cancelled get lost nothing: {await reader.get()!r}")

    # 3. Backpressure: write() never waits; drain() holds the producer back while more
    #    than high_water bytes (256 KiB by default) wait in the writer's backlog.
    async def slow_consumer(n: int) -> list[bytes]:
        got: list[bytes] = []
        while len(got) < n:
            got += await reader.get_many(max_messages=500)
        return got

    messages = [b"%05d" % i + b"-" * 200 for i in range(20_000)]  # 4 MB: 4x the pipe
    consuming = asyncio.create_task(slow_consumer(len(messages)))
    for m in messages:
        writer.write(m)
        await writer.drain()
    await writer.flush()
    ok = await consuming == messages
    print(f"drain() kept the backlog bounded; {len(messages)} messages arrived in order: {ok}")

    await writer.aclose()  # sends anything still in the backlog, then closes
    reader.close()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
