"""Typed usage of fastfifo.Queue and fastfifo.aio, checked by ``mypy --strict``.

See endpoints_usage.py; never executed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from typing_extensions import assert_type

import fastfifo
import fastfifo.aio


def with_a_queue() -> list[Any]:
    with fastfifo.Queue(maxsize=100) as q:
        assert_type(q, fastfifo.Queue)
        q.put({"job": 1})
        q.put_nowait(("tuple", 2))
        q.put_many([1, 2, 3], timeout=1.0)
        assert_type(q.qsize(), int)
        assert_type(q.empty(), bool)
        assert_type(q.maxsize, int)
        assert_type(q.path, str)
        first = q.get(timeout=1.0)
        assert_type(first, Any)  # as multiprocessing.Queue: objects of any type
        return [first, *q.get_many(timeout=0.0, max_messages=10)]


def raw_queue(path: str) -> fastfifo.Queue:
    return fastfifo.Queue(path, raw=True, max_message_size=1 << 20)


async def service(path: str) -> int:
    writer = await fastfifo.aio.open_writer(path, open_timeout=1.0)
    assert_type(writer, fastfifo.aio.Writer)
    async with fastfifo.aio.Reader(path, shared=True) as reader:
        await writer.put(b"ping")
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


async def aio_queue() -> None:
    q = fastfifo.aio.Queue(maxsize=10)
    await q.put({"a": 1})
    assert_type(await q.get(), Any)
    assert_type(q.queue, Any)
