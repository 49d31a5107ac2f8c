"""The one room rule, ``_parse.free_slots``: both builds compute the same, and the kernel
never has less room than it promises.

Three callers trust it not to overestimate: ``fastfifo.Queue`` and ``fastfifo.aio``
(through ``_open.room_for``) before a large message they must not leave half-written,
and a sole Writer of either core before it sends a large message's fragments in one
writev() (a short one would cost a wait in the middle of a message).  Here a real pipe
is left in states a writer and readers can leave it in (writes of every size, partial
reads), then filled with as many page-sized writes as the rule allows: every one must
go in whole at once.
"""

from __future__ import annotations

import fcntl
import os
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastfifo
from fastfifo import _open, _py_clock

compiled = pytest.importorskip("fastfifo._parse")
pure = _py_clock.parse
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pipe slots")

PAGE = _open.PAGE
F_SETPIPE_SZ = 1031


def test_both_builds_compute_the_same_room():
    for capacity in (0, 4096, 65536, 1 << 20):
        for waiting in (-1, 0, 1, 4095, 4096, 4097, 30_000, 65536, 1 << 20):
            for page in (4096, 16384, 65536):
                assert compiled.free_slots(capacity, waiting, page) == pure.free_slots(
                    capacity, waiting, page
                ), (capacity, waiting, page)


def test_the_rule_in_numbers():
    assert pure.free_slots(65536, 0, 4096) == 16  # an empty pipe: every slot
    assert pure.free_slots(65536, 1, 4096) == 13  # one byte may be split over 2 + 1
    assert pure.free_slots(65536, 8 * 4096, 4096) == 0
    assert pure.free_slots(65536, -1, 4096) == 0  # unknown: no room promised


def _pipe(capacity: int) -> tuple[int, int]:
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, capacity)
    os.set_blocking(w, False)
    os.set_blocking(r, False)
    return r, w


def _replay(ops: list[tuple[str, int]], capacity: int) -> tuple[int, int]:
    """A pipe left as ``ops`` leave it: writes of n bytes (as much as fits) and reads."""
    r, w = _pipe(capacity)
    for op, n in ops:
        try:
            if op == "w":
                os.write(w, b"x" * n)
            else:
                os.read(r, n)
        except BlockingIOError:
            pass
    return r, w


# Sizes at a page's edges leave the most slots per byte: a write of a whole page never
# shares a slot, so one byte and then a page, repeated, take two slots per 4097 bytes.
sizes = st.one_of(
    st.sampled_from([1, 7, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE]), st.integers(1, 3 * PAGE)
)
ops = st.lists(st.tuples(st.sampled_from(["w", "w", "r"]), sizes), max_size=60)


@linux
@settings(max_examples=150, deadline=None)
@given(ops=ops, capacity=st.sampled_from([4 * PAGE, 16 * PAGE, 64 * PAGE]))
@example(ops=[("w", 1), ("w", PAGE)] * 5, capacity=16 * PAGE)  # 10 slots for 5 pages' bytes
def test_the_pipe_has_the_room_the_rule_promises(ops, capacity):
    for way in ("writes", "writev"):
        r, w = _replay(ops, capacity)
        try:
            k = fastfifo._parse.free_slots(capacity, _open.bytes_waiting(r), PAGE)
            piece = b"f" * PAGE  # a whole fragment (PIPE_BUF bytes) per slot
            if way == "writes":  # room_for: each fragment one write
                for i in range(k):
                    assert os.write(w, piece) == PAGE, (i, k)
            elif k:  # a sole Writer's burst: k fragments in one writev()
                assert os.writev(w, [piece] * k) == k * PAGE, k
        except BlockingIOError:
            pytest.fail(f"{way}: no room for {k} pages promised by free_slots")
        finally:
            os.close(r)
            os.close(w)


@linux
def test_a_sole_writer_counts_room_in_the_pipe_as_it_is_now(ff, fifo):
    """The pipe's size is asked at each large message, not kept from open: another process
    may shrink it (F_SETPIPE_SZ).  Counting with the size at open, a sole Writer would
    write more than fits in one writev() and wait for the rest without a deadline; counted
    now, a put with a timeout that finds no room gives up at its deadline (and says so)."""
    import threading

    with ff.Reader(fifo) as r, ff.Writer(fifo, pipe_size=1 << 20) as w:
        assert w.pipe_size == 1 << 20
        fcntl.fcntl(r.fileno(), F_SETPIPE_SZ, 16 * PAGE)  # another process's doing
        outcome: list[BaseException | None] = []

        def put() -> None:
            try:
                w.put(b"x" * 300_000, timeout=0.3)  # nobody reads: it cannot all fit
                outcome.append(None)
            except BaseException as e:
                outcome.append(e)

        t = threading.Thread(target=put, daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive(), "put() with timeout=0.3 still waiting after 30 s"
        assert isinstance(outcome[0], fastfifo.Full), outcome
        assert "large message" in str(outcome[0])


@linux
@pytest.mark.skipif(not hasattr(os, "splice"), reason="os.splice (Python >= 3.10, Linux)")
def test_a_burst_the_pipe_cuts_short_still_delivers_every_fragment_whole(ff, fifo, tmp_path):
    """Room the rule cannot see: bytes spliced from a file take a slot each, however
    small, so the sole Writer's writev() is cut short.  The fragment it cut is finished,
    the rest sent one by one: the message arrives whole, and the foreign bytes are
    reported, not delivered."""
    import threading

    src = tmp_path / "bytes"
    src.write_bytes(b"\x00" * 4096)
    big = bytes(range(256)) * 700 + b"tail"  # 179,204 bytes: 44 fragments, the last short
    got: list[bytes] = []
    reports: list[Exception] = []
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        fcntl.fcntl(r.fileno(), F_SETPIPE_SZ, 64 * PAGE)  # 64 slots: 44 fragments need 44
        wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            with open(src, "rb") as f:
                for i in range(40):  # 40 one-byte slots: the rule sees 40 bytes, 3 slots
                    assert os.splice(f.fileno(), wfd, 1, offset_src=i) == 1
            os.write(wfd, _py_clock.parse.encode_header(0, 5) + b"small")  # merges: a part slot
        finally:
            os.close(wfd)
        junk = _open.bytes_waiting(r.fileno())
        sent: list[BaseException | None] = []

        def put() -> None:
            try:
                w.put(big, timeout=30)
                sent.append(None)
            except BaseException as e:
                sent.append(e)

        t = threading.Thread(target=put, daemon=True)
        t.start()
        while _open.bytes_waiting(r.fileno()) == junk:  # the burst is in (and was cut)
            assert t.is_alive() or sent, "put() ended without writing"
        while len(got) < 2:
            try:
                got.append(r.get(timeout=30))
            except fastfifo.CorruptStreamError as e:
                reports.append(e)  # the spliced bytes
        t.join(30)
    assert sent == [None]
    assert got == [b"small", big]
    assert reports and "40 bytes" in str(reports[0]), reports
