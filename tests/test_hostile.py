"""Foreign, corrupt and hostile bytes: a clear error, no crash, no hang, bounded memory."""

from __future__ import annotations

import itertools
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastfifo
from fastfifo._core_py import encode_header


def frame(payload: bytes) -> bytes:
    return encode_header(0, len(payload)) + payload


def raw_writer(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_NONBLOCK)


def drain(r, timeout=0.2):
    """Every message and every error the reader reports until it goes quiet."""
    out = []
    while True:
        try:
            out += r.get_many(timeout=timeout)
        except fastfifo.Empty:
            return out
        except (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError) as e:
            out.append(e)


def test_random_bytes_give_a_clear_error_and_later_frames_still_arrive(ff, fifo):
    garbage = bytes(b for b in random.Random(1).randbytes(5000) if b != 0xFA)
    with ff.Reader(fifo) as r:
        fd = raw_writer(fifo)
        os.write(fd, frame(b"before") + garbage + frame(b"after"))
        assert r.get(timeout=5) == b"before"
        with pytest.raises(fastfifo.CorruptStreamError, match="not fastfifo frames") as e:
            r.get(timeout=5)
        assert fifo in str(e.value)
        assert r.get(timeout=5) == b"after"
        assert r.skipped_bytes == len(garbage)
        os.close(fd)


def test_random_bytes_with_magic_bytes_never_crash_or_deliver_garbage(ff, fifo):
    rng = random.Random(2)
    with ff.Reader(fifo, max_message_size=4096) as r:
        fd = raw_writer(fifo)
        for _ in range(20):
            os.write(fd, rng.randbytes(3000))
        out = drain(r)
        os.close(fd)
        assert all(
            isinstance(x, (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError)) for x in out
        )
        assert r.buffer_capacity <= 2 * (1 << 20) + 4096 + 8


def test_text_lines_into_a_frames_fifo(ff, fifo):
    import subprocess

    with ff.Reader(fifo) as r:
        subprocess.run(["sh", "-c", f"echo hello world > '{fifo}'"], check=True, timeout=30)
        with pytest.raises(fastfifo.CorruptStreamError, match=r"b'hello world\\n'"):
            r.get(timeout=5)
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.1)


def test_header_claiming_an_enormous_length(ff, fifo):
    with ff.Reader(fifo, max_message_size=1 << 20) as r:
        cap = r.buffer_capacity
        fd = raw_writer(fifo)
        os.write(fd, encode_header(0, 0xFFFFFFFF) + b"x" * 100)
        with pytest.raises(fastfifo.MessageTooLargeError, match="4294967295 bytes exceeds") as e:
            r.get(timeout=5)
        assert fifo in str(e.value)
        # By its own header, what follows is that message's payload: skipped, never buffered.
        os.write(fd, b"y" * 60000)
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.2)
        assert r.buffer_capacity == cap
        assert r.dropped_messages == 1
        os.close(fd)


def test_oversized_message_is_skipped_and_the_next_delivered(ff, fifo):
    with ff.Reader(fifo, max_message_size=1000) as r:
        fd = raw_writer(fifo)
        os.write(fd, frame(b"a" * 3000) + frame(b"small"))
        with pytest.raises(fastfifo.MessageTooLargeError, match="3000 bytes exceeds max_message_"):
            r.get(timeout=5)
        assert r.get(timeout=5) == b"small"
        os.close(fd)


def test_overlong_line_is_skipped_and_the_next_delivered(ff, fifo):
    with ff.Reader(fifo, framing="lines", max_message_size=100) as r:
        fd = raw_writer(fifo)
        os.write(fd, b"short\n" + b"L" * 5000 + b"\nnext\n")
        assert r.get(timeout=5) == b"short"
        with pytest.raises(fastfifo.MessageTooLargeError, match="max_message_size=100"):
            r.get(timeout=5)
        assert r.get(timeout=5) == b"next"
        os.close(fd)


def test_writer_gone_mid_frame_is_reported_at_eof(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True) as r:
        fd = raw_writer(fifo)
        os.write(fd, frame(b"whole") + frame(b"cut short")[:10])
        os.close(fd)
        assert r.get(timeout=5) == b"whole"
        with pytest.raises(fastfifo.CorruptStreamError, match="middle of a frame"):
            r.get(timeout=5)
        with pytest.raises(EOFError):
            r.get(timeout=5)


def test_errors_after_good_messages_do_not_lose_them(ff, fifo):
    """get_many returns what it has; the error comes with the next call."""
    with ff.Reader(fifo) as r:
        fd = raw_writer(fifo)
        os.write(fd, frame(b"1") + frame(b"2") + b"junk!!!!!" + frame(b"3"))
        assert r.get_many(timeout=5) == [b"1", b"2"]
        with pytest.raises(fastfifo.CorruptStreamError):
            r.get_many(timeout=5)
        assert r.get_many(timeout=5) == [b"3"]
        os.close(fd)


_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(msgs=st.lists(st.binary(max_size=300), max_size=40), cuts=st.lists(st.integers(0, 20000)))
def test_any_chunking_of_a_valid_stream_decodes_exactly(ff, fifo, msgs, cuts):
    stream = b"".join(frame(m) for m in msgs)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    with ff.Reader(fifo) as r:
        fd = raw_writer(fifo)
        got = []
        for a, b in itertools.pairwise(bounds):
            os.write(fd, stream[a:b])
            try:
                got += r.get_many(timeout=0)
            except fastfifo.Empty:
                pass
        os.close(fd)
        assert got == msgs
        assert r.buffered == 0


@_settings
@given(
    parts=st.lists(
        st.one_of(
            st.tuples(st.just("msg"), st.binary(max_size=200)),
            st.tuples(
                st.just("junk"), st.binary(min_size=1, max_size=50).filter(lambda b: 0xFA not in b)
            ),
        ),
        max_size=30,
    )
)
def test_garbage_between_frames_is_reported_and_every_frame_survives(ff, fifo, parts):
    parts = [*parts, ("msg", b"END")]  # a trailing partial header is only "not yet", not junk
    stream = b"".join(frame(p) if kind == "msg" else p for kind, p in parts)
    sent = [p for kind, p in parts if kind == "msg"]
    with ff.Reader(fifo) as r:
        fd = raw_writer(fifo)
        os.write(fd, stream)
        os.close(fd)
        out = drain(r, timeout=0)
    assert [m for m in out if isinstance(m, bytes)] == sent
    junk_regions = sum(
        1
        for i, (kind, _) in enumerate(parts)
        if kind == "junk" and (i == 0 or parts[i - 1][0] != "junk")
    )
    assert sum(isinstance(m, fastfifo.CorruptStreamError) for m in out) == junk_regions
