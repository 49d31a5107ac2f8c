"""Mistakes a type checker must catch.  Checked by ``mypy --strict`` (tests/test_typing.py).

Each line carries ``# type: ignore[code]`` for the error it must raise.  ``--strict``
includes ``--warn-unused-ignores``, so if fastfifo's types ever stop catching one of these
mistakes (say a method becomes ``Any``), the ignore is unused and the check fails.  Never
executed.
"""

from __future__ import annotations

import fastfifo
import fastfifo.aio


def mistakes(path: str) -> None:
    writer = fastfifo.Writer(path)
    writer.put("text is not bytes")  # type: ignore[arg-type]
    writer.put_many(["nor is this"])  # type: ignore[list-item]
    writer.put(b"x", timeout="soon")  # type: ignore[arg-type]
    fastfifo.Writer(path, framing="lines", buffered="yes")  # type: ignore[arg-type]
    fastfifo.Writer(path, "lines")  # type: ignore[call-arg]
    fastfifo.Writer(path, open_timeot=1)  # type: ignore[call-arg]
    fastfifo.Writer(42)  # type: ignore[arg-type]
    fastfifo.Writer(path, framing="line")  # type: ignore[arg-type]
    fastfifo.Writer(path, linger="long")  # type: ignore[arg-type]

    reader = fastfifo.Reader(path)
    text: str = reader.get()  # type: ignore[assignment]
    views: list[memoryview] = reader.get_many()  # type: ignore[assignment]
    reader.get_many(max_messages="all")  # type: ignore[arg-type]
    fastfifo.Reader(path, shared=1.5)  # type: ignore[arg-type]
    fastfifo.Reader(path, framing="bytes")  # type: ignore[arg-type]
    reader.put(b"readers do not write")  # type: ignore[attr-defined]
    writer.get()  # type: ignore[attr-defined]
    first: bytes = reader.get_batch()[0]  # type: ignore[assignment]
    count: str = reader.skipped_bytes  # type: ignore[assignment]
    del text, views, first, count


def not_a_context_for_the_wrong_type() -> None:
    with fastfifo.Reader("q") as reader:
        reader.flush()  # type: ignore[attr-defined]


def queue_and_aio_mistakes(path: str) -> None:
    jobs: fastfifo.Queue[int] = fastfifo.Queue()
    jobs.put("not an int")  # type: ignore[arg-type]
    jobs.put_many([1, "two"])  # type: ignore[list-item]
    name: str = jobs.get()  # type: ignore[assignment]
    fastfifo.aio.Writer(42)  # type: ignore[arg-type]
    fastfifo.aio.Reader(fastfifo.Writer(path))  # type: ignore[arg-type]
    raw = fastfifo.Queue(path, raw=True)
    raw.put("text")  # type: ignore[arg-type]
    fastfifo.Queue(path, raw=True, dumps=repr)  # type: ignore[call-overload]
    del name


async def aio_mistakes(writer: fastfifo.aio.Writer, q: fastfifo.aio.Queue[int]) -> None:
    await fastfifo.aio.open_writer("q", framing="line")  # type: ignore[arg-type]
    await fastfifo.aio.open_writer("q", bufferd=True)  # type: ignore[call-arg]
    await fastfifo.aio.open_writer("q", pipe_size="1M")  # type: ignore[arg-type]
    await writer.put("text")  # type: ignore[arg-type]
    writer.write_many(["text"])  # type: ignore[list-item]
    await q.put(b"bytes")  # type: ignore[arg-type]
