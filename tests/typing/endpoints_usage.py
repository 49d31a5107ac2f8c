"""Typed usage of fastfifo's blocking API, checked by ``mypy --strict`` (tests/test_typing.py).

``assert_type`` fails the check if a type is wider (say ``Any``) or different than the one
written here, so these lines pin down what users' type checkers see.  Never executed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from typing_extensions import assert_type

import fastfifo


def roundtrip(directory: Path) -> list[bytes]:
    path = fastfifo.mkfifo(directory / "q")
    assert_type(path, str)
    with fastfifo.Reader(path, max_message_size=1 << 20) as reader:
        assert_type(reader, fastfifo.Reader)
        with fastfifo.Writer(path, open_timeout=1.0, buffered=True) as writer:
            assert_type(writer, fastfifo.Writer)
            writer.put(b"bytes")
            writer.put(bytearray(b"a bytearray"))
            writer.put(memoryview(b"a view"))
            writer.put_many([b"one", b"two"], timeout=0.5)
            writer.flush()
            assert_type(writer.pending, int)
            assert_type(writer.max_atomic_message, int)
            assert_type(writer.framing, Literal["frames", "lines"])
        one = reader.get(timeout=1.0)
        assert_type(one, bytes)
        many = reader.get_many(10, timeout=0.0)
        assert_type(many, list[bytes])
        batch = reader.get_batch(10)
        assert_type(batch, fastfifo.MessageBatch)
        for view in batch:
            assert_type(view, memoryview)
        assert_type(batch[0], memoryview)
        assert_type(batch.tolist(), list[bytes])
        assert_type(reader.skipped_bytes, int)
        assert_type(reader.dropped_messages, int)
        assert_type(reader.shared, bool)
        assert_type(reader.pipe_size, int)
        assert_type(reader.path, str)
        assert_type(reader.fileno(), int)
        return [one, *many, *batch.tolist()]


def consume(path: str | os.PathLike[str]) -> int:
    """Iterating a Reader yields bytes; the errors carry typed details."""
    total = 0
    with fastfifo.Reader(path, framing="lines", shared=True, stop_at_eof=True) as reader:
        while True:
            try:
                for message in reader:
                    assert_type(message, bytes)
                    total += len(message)
                break
            except fastfifo.CorruptStreamError as exc:
                assert_type(exc.skipped, int)
            except fastfifo.MessageTooLargeError:
                continue
    return total


def send_all(path: str, messages: list[bytes]) -> int:
    writer = fastfifo.Writer(path, open_timeout=0)
    try:
        writer.put_many(messages, timeout=0.1)
    except fastfifo.Full as exc:
        assert_type(exc.sent, int)
        return exc.sent
    except (fastfifo.ClosedError, fastfifo.NotAFifoError, TimeoutError):
        return 0
    finally:
        writer.close()
    return len(messages)


def takes_a_writer(writer: fastfifo.Writer) -> None:
    """The public classes work as annotations."""
    writer.put(b"x")


def constants() -> tuple[int, int, int, str, str]:
    return (
        fastfifo.PIPE_BUF,
        fastfifo.DEFAULT_MAX_MESSAGE_SIZE,
        fastfifo.DEFAULT_PIPE_SIZE,
        fastfifo.backend,
        fastfifo.__version__,
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        print(roundtrip(Path(d)))
