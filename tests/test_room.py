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
