"""fastfifo.aio.Queue: the blocking Queue's semantics from asyncio, under both loops."""

from __future__ import annotations

import asyncio
import threading

import pytest
import uvloop

import fastfifo
from fastfifo import aio


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    def run(coro):
        loop = asyncio.new_event_loop() if request.param == "asyncio" else uvloop.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return run


def test_put_never_waits_without_maxsize_and_aclose_waits_for_the_feeder(run, tmp_path):
    path = str(tmp_path / "q")
    consumer = fastfifo.Queue(path, pipe_size=65536, raw=True)
    producer = aio.Queue(path, pipe_size=65536, raw=True)
    msgs = [b"%04d" % i + b"." * 1000 for i in range(300)]  # 300 KB: four times the pipe
    got: list[bytes] = []

    async def main():
        for m in msgs:
            await asyncio.wait_for(producer.put(m), 5)  # no consumer yet: never waits
        await producer.put_many(msgs[:2])
        assert producer.qsize() == 302 and not producer.full()
        drain = threading.Thread(
            target=lambda: [got.append(consumer.get(timeout=30)) for _ in range(302)]
        )
        drain.start()
        await asyncio.wait_for(producer.aclose(), 60)  # returns once all is in the pipe
        drain.join(60)

    run(main())
    assert got == msgs + msgs[:2]
    consumer.close()


def test_with_maxsize_put_waits_for_room_and_get_waits_for_an_object(run):
    q = aio.Queue(maxsize=2)

    async def main():
        await q.put("a")
        await q.put("b")
        third = asyncio.create_task(q.put("c"))
        await asyncio.sleep(0.05)
        assert not third.done()  # full: it waits
        assert await asyncio.wait_for(q.get(), 5) == "a"
        await asyncio.wait_for(third, 5)  # there was room again
        assert await asyncio.wait_for(q.get_many(10), 5) == ["b", "c"]
        waiting = asyncio.create_task(q.get())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing there: it waits
        q.put_nowait("d")
        assert await asyncio.wait_for(waiting, 5) == "d"
        with pytest.raises(fastfifo.Empty):
            q.get_nowait()

    run(main())
    q.close()


def test_close_ends_a_waiting_get(run):
    q = aio.Queue()

    async def main():
        waiting = asyncio.create_task(q.get())
        await asyncio.sleep(0.05)
        q.close()
        with pytest.raises(fastfifo.ClosedError):
            await asyncio.wait_for(waiting, 5)

    run(main())
