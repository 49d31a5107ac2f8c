"""The workload scripts/memcheck.sh runs under valgrind: every API of the compiled core.

Small counts (valgrind runs Python ~50x slower), but every path: put/get, put_many/
get_many, zero-copy get_batch with views kept past later reads and past close(), the
buffered Writer, lines, shared readers (tee claims), large messages (fragments and their
reassembly), corrupt and oversized input, a writer gone mid-message, fastfifo.Queue, and
a few hundred fuzz programs from tests/test_fuzz.py through the compiled lanes.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import fastfifo  # noqa: E402
from fastfifo import _core  # noqa: E402
from fastfifo._core_py import encode_header  # noqa: E402
from fastfifo._endpoints import classes_for  # noqa: E402

Writer, Reader = classes_for(_core)


def drain(r, n, batch=False):
    got = []
    while len(got) < n:
        if batch:
            b = r.get_batch(timeout=5)
            got += [bytes(v) for v in b]
        else:
            got += r.get_many(timeout=5)
    return got


def main() -> None:
    logging.getLogger("fastfifo").setLevel(logging.ERROR)  # the drops it provokes are expected
    d = tempfile.mkdtemp(prefix="fastfifo-memcheck-")
    path = fastfifo.mkfifo(os.path.join(d, "q"))
    msgs = [bytes([i % 251]) * (i % 300) for i in range(2000)]

    with Reader(path) as r, Writer(path) as w:
        for m in msgs[:300]:
            w.put(m)
            assert r.get(timeout=5) == m
        w.put_many(msgs)
        assert drain(r, len(msgs)) == msgs
        w.put_many(msgs)
        kept = []
        got = []
        while len(got) < len(msgs):
            b = r.get_batch(max_messages=97, timeout=5)
            kept.append(b[len(b) // 2])
            got += b.tolist()
        assert got == msgs
        for m in (b"L" * 5000, b"M" * 70_000, b"N" * 300_000):
            w.put(m)
            assert r.get(timeout=5) == m
    assert all(isinstance(bytes(v), bytes) for v in kept)  # views outlive their Reader

    with Reader(path) as r, Writer(path, buffered=True) as w:
        for m in msgs:
            w.put(m)
        w.flush()
        assert drain(r, len(msgs), batch=True) == msgs

    with Reader(path, framing="lines") as r, Writer(path, framing="lines") as w:
        lines = [m.replace(b"\n", b"") for m in msgs]
        w.put_many(lines)
        assert drain(r, len(lines)) == lines

    with Reader(path, shared=True) as r1, Reader(path, shared=True) as r2, Writer(path) as w:
        w.put_many(msgs)
        got = []
        while len(got) < len(msgs):
            for r in (r1, r2):
                try:
                    got += r.get_many(max_messages=50, timeout=0.05)
                    got += r.get_batch(max_messages=7, timeout=0).tolist()
                except fastfifo.Empty:
                    pass
        assert sorted(got) == sorted(msgs)

    with Reader(path, max_message_size=1000) as r:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        for _ in range(50):
            os.write(
                fd,
                b"junk" * 5
                + encode_header(0, 3000)
                + b"z" * 3000
                + encode_header(1, 20)
                + (1 << 40).to_bytes(8, "little")
                + b"f" * 12
                + encode_header(0, 2)
                + b"ok",
            )
            for exc in (
                fastfifo.CorruptStreamError,
                fastfifo.MessageTooLargeError,
                fastfifo.MessageTooLargeError,
            ):
                try:
                    r.get(timeout=5)
                    raise AssertionError("no error")
                except exc:
                    pass
            assert r.get(timeout=5) == b"ok"
        # a large message whose writer is gone part-way (no writers' lock held)
        os.write(fd, encode_header(1, 108) + (800).to_bytes(8, "little") + b"p" * 100)
        try:
            r.get(timeout=0.3)
        except fastfifo.Empty:
            pass
        os.close(fd)

    q = fastfifo.Queue(path, _backend="cython")
    for i in range(500):
        q.put(("job", i))
    assert [q.get(timeout=5) for _ in range(500)] == [("job", i) for i in range(500)]
    q.put_many(list(range(1000)))
    got = []
    while len(got) < 1000:
        got += q.get_many(timeout=5)
    assert got == list(range(1000))
    q.close()

    import test_fuzz

    lanes = [x for x in test_fuzz.DEFAULT_LANES if x.startswith("cython")]
    rng = random.Random(8)
    inputs = list(test_fuzz.SEEDS) + [r[1] for r in test_fuzz.REGRESSIONS]
    inputs += [
        rng.randbytes(rng.randint(1, 600))
        for _ in range(int(os.environ.get("MEMCHECK_FUZZ_INPUTS", "150")))
    ]
    for data in inputs:
        test_fuzz.run(data, lanes)
    print(f"memcheck workload: done ({len(inputs)} fuzz programs on {','.join(lanes)})")


if __name__ == "__main__":
    main()
