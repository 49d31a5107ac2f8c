"""Typed usage of fastfifo.Queue and fastfifo.aio, checked by ``mypy --strict``.

See endpoints_usage.py; never executed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from typing_extensions import assert_type

import fastfifo
import fastfifo.aio

Job = tuple[str, int]


def with_a_queue() -> list[Job]:
    q: fastfifo.Queue[Job]
    with fastfifo.Queue(maxsize=100) as q:
        assert_type(q, fastfifo.Queue[Job])
        q.put(("resize", 1))
        q.put_nowait(("crop", 2))
        q.put_many([("a", 1), ("b", 2)], timeout=1.0)
        assert_type(q.qsize(), int)
        assert_type(q.empty(), bool)
        assert_type(q.maxsize, int)
        assert_type(q.path, str | None)  # None: a private queue (no name)
        first = q.get(timeout=1.0)
        assert_type(first, Job)
        rest = q.get_many(timeout=0.0, max_messages=10)
        assert_type(rest, list[Job])
        return [first, *rest]


def an_unannotated_queue_holds_anything() -> None:
    q = fastfifo.Queue()  # as multiprocessing.Queue(): items of any type
    assert_type(q, fastfifo.Queue[Any])
    q.put({"job": 1})
    assert_type(q.get(), Any)


def raw_queue(path: str) -> fastfifo.Queue[bytes]:
    q = fastfifo.Queue(path, raw=True, max_message_size=1 << 20)
    assert_type(q, fastfifo.Queue[bytes])  # raw=True: bytes in, bytes out
    assert_type(q.get(timeout=0.0), bytes)
    return q


def raw_chosen_at_run_time(raw: bool) -> None:
    q = fastfifo.Queue(raw=raw)
    assert_type(q, fastfifo.Queue[Any])


async def service(path: str) -> int:
    writer = await fastfifo.aio.open_writer(path, open_timeout=1.0, framing="lines", linger=5)
    assert_type(writer, fastfifo.aio.Writer)
    assert_type(writer.writer, fastfifo.Writer)
    async with fastfifo.aio.Reader(path, shared=True) as reader:
        assert_type(reader.reader, fastfifo.Reader)
        await writer.put(b"ping")
        await writer.put_many([b"a", bytearray(b"b"), memoryview(b"c")])
        writer.write(b"pong")
        await writer.drain()
        message = await asyncio.wait_for(reader.get(), timeout=1.0)
        assert_type(message, bytes)
        assert_type(await reader.get_many(10), list[bytes])
        async for m in reader:
            assert_type(m, bytes)
            break
    await writer.aclose()
    return len(message)


async def wrap_endpoints(path: str) -> None:
    """The aio classes also wrap endpoints opened with the blocking API."""
    reader = fastfifo.aio.Reader(fastfifo.Reader(path))
    writer = fastfifo.aio.Writer(fastfifo.Writer(path, open_timeout=0))
    await writer.put(await reader.get())


async def aio_queue() -> None:
    q: fastfifo.aio.Queue[dict[str, int]] = fastfifo.aio.Queue(maxsize=10)
    await q.put({"a": 1})
    assert_type(await q.get(), dict[str, int])
    assert_type(q.get_nowait(), dict[str, int])
    assert_type(await q.get_many(5), list[dict[str, int]])
    assert_type(q.queue, fastfifo.Queue[dict[str, int]])
    async for item in q:
        assert_type(item, dict[str, int])
    shared = fastfifo.aio.Queue(fastfifo.Queue[int]())
    assert_type(shared, fastfifo.aio.Queue[int])
