"""Whole messages, in order per writer, with many concurrent writer processes."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from helpers import BACKENDS, check_message, endpoints, make_message, sizes

import fastfifo

WRITERS = 8
PER_WRITER = 5_000


def _writer_main(backend: str, path: str, wid: int, batched: bool, largest: int) -> None:
    ns = endpoints(backend)
    msgs = [make_message(wid, seq, n) for seq, n in enumerate(sizes(wid, PER_WRITER, largest))]
    with ns.Writer(path) as w:
        if batched:
            for i in range(0, len(msgs), 97):  # odd batch size: batches straddle writes
                w.put_many(msgs[i : i + 97])
        else:
            for m in msgs:
                w.put(m)


@pytest.mark.parametrize("batched", [False, True], ids=["put", "put_many"])
def test_eight_writer_processes_every_message_intact_and_in_order(ff, fifo, batched):
    largest = fastfifo.PIPE_BUF - 8
    ctx = multiprocessing.get_context("fork")
    with ff.Reader(fifo) as r:
        procs = [
            ctx.Process(target=_writer_main, args=(ff.name, fifo, wid, batched, largest))
            for wid in range(WRITERS)
        ]
        for p in procs:
            p.start()
        expected_len = [sizes(wid, PER_WRITER, largest) for wid in range(WRITERS)]
        next_seq = [0] * WRITERS
        got = 0
        while got < WRITERS * PER_WRITER:
            for msg in r.get_many(max_messages=500, timeout=60):
                wid, seq = check_message(msg)
                assert seq == next_seq[wid], f"writer {wid}: got #{seq}, expected #{next_seq[wid]}"
                assert len(msg) == expected_len[wid][seq]
                next_seq[wid] += 1
                got += 1
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert next_seq == [PER_WRITER] * WRITERS
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0)


@pytest.mark.parametrize("writer_backend", BACKENDS)
@pytest.mark.parametrize("reader_backend", BACKENDS)
def test_backends_interoperate(fifo, writer_backend, reader_backend):
    """Bytes written by one backend are read by the other (and by itself)."""
    w_ns, r_ns = endpoints(writer_backend), endpoints(reader_backend)
    msgs = [make_message(1, i, n) for i, n in enumerate(sizes(1, 300, 4000))]
    msgs += [b"", b"\xfa", bytes(range(256))]
    with r_ns.Reader(fifo) as r, w_ns.Writer(fifo) as w:
        w.put_many(msgs[:150])
        for m in msgs[150:]:
            w.put(m)
        out = []
        while len(out) < len(msgs):
            out += r.get_many(timeout=5)
    assert out == msgs


def test_both_backends_put_identical_bytes_on_the_wire(fifo):
    """The wire format is one: each backend's frames are byte-for-byte the same."""
    streams = []
    for name in BACKENDS:
        ns = endpoints(name)
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            with ns.Writer(fifo) as w:
                w.put(b"hello")
                w.put_many([b"", b"x" * 100, memoryview(b"view"), bytearray(b"ba")])
            streams.append(os.read(fd, 1 << 16))
        finally:
            os.close(fd)
    expected = b"".join(
        fastfifo._core_py.encode_header(0, len(m)) + m
        for m in [b"hello", b"", b"x" * 100, b"view", b"ba"]
    )
    assert all(s == expected for s in streams)
    if "cython" in BACKENDS:
        from fastfifo import _core

        assert _core.encode_header(0, 123456) == fastfifo._core_py.encode_header(0, 123456)


def test_message_types_and_sizes_round_trip(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        limit = w.max_atomic_message
        assert limit == fastfifo.PIPE_BUF - 8
        for m in [
            b"",
            b"a",
            bytearray(b"bytearray"),
            memoryview(b"xmemoryviewx")[1:-1],
            b"\x00" * limit,
        ]:
            w.put(m)
            assert r.get(timeout=5) == bytes(m)


def test_put_many_accepts_any_iterable_and_empty(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        w.put_many([])
        w.put_many(b"%d" % i for i in range(2000))
        out = []
        while len(out) < 2000:
            out += r.get_many(max_messages=333, timeout=5)
            assert len(out) % 333 == 0 or len(out) == 2000 or len(out) < 2000
        assert out == [b"%d" % i for i in range(2000)]


def test_get_many_respects_max_messages(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        w.put_many([b"m"] * 10)
        assert len(r.get_many(max_messages=3, timeout=5)) == 3
        assert len(r.get_many(max_messages=100, timeout=5)) == 7
        with pytest.raises(ValueError, match="max_messages"):
            r.get_many(max_messages=0)


def test_iteration_yields_messages_until_eof(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True) as r:
        with ff.Writer(fifo) as w:
            w.put_many([b"one", b"two", b"three"])
        assert list(r) == [b"one", b"two", b"three"]


def test_protocol_doc_example_matches_the_encoder():
    """docs/PROTOCOL.md shows b"hi" as a frame; keep the doc and the code in step."""
    assert (fastfifo._core_py.encode_header(0, 2) + b"hi").hex(" ") == (
        "fa 00 6e 3c 02 00 00 00 68 69"
    )
