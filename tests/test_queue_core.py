"""The core primitives fastfifo.Queue is built on, on both backends.

``count_messages`` and ``peek`` (appended to _wire.pxi / _py_wire.py), the endpoints over
lent descriptors (``BorrowingWriterCore``/``BorrowingReaderCore``), and shared claims
that consume by reading instead of splicing to /dev/null.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import os
import sys

import pytest
from helpers import BACKENDS

import fastfifo
import fastfifo._open
from fastfifo._endpoints import lent_reader, lent_writer

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="tee() exists on Linux only")


def core_for(name: str):
    return importlib.import_module("fastfifo._core" if name == "cython" else "fastfifo._core_py")


@pytest.fixture(params=BACKENDS)
def core(request):
    return core_for(request.param)


def _frame(core, payload: bytes, kind: int = 0) -> bytes:
    return core.encode_header(kind, len(payload)) + payload


def _first(core, total: int, chunk: bytes) -> bytes:
    body = total.to_bytes(8, "little") + chunk
    return core.encode_header(1, len(body)) + body


def test_count_messages_counts_whole_frames_and_last_fragments(core):
    whole = [_frame(core, b"m%d" % i) for i in range(5)]
    large = [_first(core, 6, b"ab"), _frame(core, b"cd", 2), _frame(core, b"ef", 3)]
    data = b"".join(whole[:2] + large + whole[2:])
    assert core.count_messages(data) == 6  # 5 whole + 1 large (counted at its last part)
    assert core.count_messages(data, 3) == 3
    assert core.count_messages(data, 0) == 0
    assert core.count_messages(b"") == 0
    assert core.count_messages(memoryview(data)) == 6
    assert core.count_messages(bytearray(data)) == 6


def test_count_messages_stops_at_an_incomplete_or_foreign_frame(core):
    good = _frame(core, b"x" * 10)
    assert core.count_messages(good * 3 + good[:-1]) == 3  # the last one is cut short
    assert core.count_messages(good + b"garbage!" + good) == 1  # not a valid header
    assert core.count_messages(good + good[:5]) == 1  # not even a whole header


def test_count_messages_gives_the_same_answer_on_both_cores():
    from fastfifo import _core_py

    cores = [core_for(b) for b in BACKENDS]
    blobs = [
        b"".join(_frame(_core_py, os.urandom(n % 97)) for n in range(300)),
        os.urandom(5000),
        _frame(_core_py, b"a") + os.urandom(3) + _frame(_core_py, b"b"),
    ]
    for blob in blobs:
        for cut in (len(blob), len(blob) - 1, len(blob) // 2, 7):
            answers = {c.count_messages(blob[:cut]) for c in cores}
            assert len(answers) == 1, (cut, answers)


def _nonblocking_pipe(size: int | None = None) -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    if size:
        fcntl.fcntl(w, 1031, size)  # F_SETPIPE_SZ
    return r, w


@linux_only
def test_peek_copies_the_head_and_consumes_nothing(core):
    fifo_r, fifo_w = _nonblocking_pipe()
    peek_r, peek_w = _nonblocking_pipe()
    try:
        assert core.peek(fifo_r, peek_r, peek_w, 100) == b""  # empty: nothing, no error
        os.write(fifo_w, b"hello world")
        assert core.peek(fifo_r, peek_r, peek_w, 5) == b"hello"
        assert core.peek(fifo_r, peek_r, peek_w, 1000) == b"hello world"
        assert core.peek(fifo_r, peek_r, peek_w, 0) == b""
        with pytest.raises(BlockingIOError):
            os.read(peek_r, 1)  # the private pipe is left empty
        assert os.read(fifo_r, 100) == b"hello world"  # all still there
    finally:
        for fd in (fifo_r, fifo_w, peek_r, peek_w):
            os.close(fd)


@linux_only
def test_peek_sees_only_what_the_private_pipe_holds(core):
    fifo_r, fifo_w = _nonblocking_pipe(1 << 20)
    peek_r, peek_w = _nonblocking_pipe(4096)  # one page
    try:
        for i in range(40):
            os.write(fifo_w, bytes([i]) * 4000)  # one page each
        got = core.peek(fifo_r, peek_r, peek_w, 160_000)
        assert 0 < len(got) < 160_000
        assert got == b"".join(bytes([i]) * 4000 for i in range(40))[: len(got)]
        with pytest.raises(OSError) as e:
            core.peek(-1, peek_r, peek_w, 10)
        assert "peeking with tee" in str(e.value)
    finally:
        for fd in (fifo_r, fifo_w, peek_r, peek_w):
            os.close(fd)


def _open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd" if LINUX else "/dev/fd")}


def test_lent_endpoints_never_close_their_descriptors(core, tmp_path):
    path = fastfifo.mkfifo(str(tmp_path / "q"))
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    wake_r, wake_w = _nonblocking_pipe()
    peek_r, peek_w = _nonblocking_pipe()
    mine = {fd, wake_r, wake_w, peek_r, peek_w}
    before = _open_fds()
    try:
        w = lent_writer(core, fd, path, max_message_size=1 << 20, wake_fd=wake_w)
        r = lent_reader(
            core, fd, path, max_message_size=1 << 20, wake_fd=wake_r, peek_r=peek_r,
            peek_w=peek_w, window=65536, rlock_fd=fd, wlock_fd=fd,
        )  # fmt: skip
        assert _open_fds() == before  # they open nothing either
        w.put(b"one", 0)
        w.put_many([b"two", b"three"], 0)
        assert r.get(0) == b"one"
        assert r.get_many(10, 0) == [b"two", b"three"]
        assert not r._mid_message()
        w.close()
        r.close()
        assert w.closed and r.closed
        del w, r
        gc.collect()
        assert _open_fds() == before and mine <= _open_fds()
    finally:
        for x in mine:
            os.close(x)


def test_a_lent_endpoint_wait_ends_when_its_wake_fd_is_readable(core, tmp_path):
    path = fastfifo.mkfifo(str(tmp_path / "q"))
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    wake_r, wake_w = _nonblocking_pipe()
    peek_r, peek_w = _nonblocking_pipe()
    try:
        r = lent_reader(
            core, fd, path, max_message_size=1 << 20, wake_fd=wake_r, peek_r=peek_r,
            peek_w=peek_w, window=65536, rlock_fd=fd, wlock_fd=fd,
        )  # fmt: skip
        with pytest.raises(fastfifo.Empty):
            r.get(0.05)
        os.write(wake_w, b"x")
        with pytest.raises(fastfifo.ClosedError):
            r.get(30)  # ends at once
    finally:
        for x in (fd, wake_r, wake_w, peek_r, peek_w):
            os.close(x)


def test_a_large_message_through_lent_endpoints_with_a_lent_writers_lock(core, tmp_path):
    path = fastfifo.mkfifo(str(tmp_path / "q"))
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    wake_r, wake_w = _nonblocking_pipe()
    peek_r, peek_w = _nonblocking_pipe()
    lock = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # a description of its own
    fastfifo._open.set_pipe_size(fd, 1 << 20)
    try:
        w = lent_writer(core, fd, path, max_message_size=1 << 20, wake_fd=wake_w)
        r = lent_reader(
            core, fd, path, max_message_size=1 << 20, wake_fd=wake_r, peek_r=peek_r,
            peek_w=peek_w, window=65536, rlock_fd=fd, wlock_fd=fd,
        )  # fmt: skip
        big = os.urandom(100_000)
        w._lock_on(lock, LINUX)
        w.put(big, None)
        w._lock_on(-1, LINUX)
        assert r.get(5) == big
    finally:
        for x in (fd, wake_r, wake_w, peek_r, peek_w, lock):
            os.close(x)


@linux_only
@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_claims_without_dev_null_take_each_message_once(backend, tmp_path):
    """A shared reader given no /dev/null (null_fd -1) consumes a claim by reading it."""
    ns_core = core_for(backend)
    path = fastfifo.mkfifo(str(tmp_path / "q"))
    fds = []
    readers = []
    for _ in range(2):
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        wr, ww = _nonblocking_pipe()
        pr, pw = _nonblocking_pipe()
        fds += [fd, wr, ww, pr, pw]
        r = lent_reader(
            ns_core, fd, path, max_message_size=1 << 20, wake_fd=wr, peek_r=pr,
            peek_w=pw, window=65536, rlock_fd=fd, wlock_fd=fd,
        )  # fmt: skip
        readers.append(r)
    try:
        with fastfifo.Writer(path) as w:
            w.put_many([b"%d" % i for i in range(3000)])
        got = []
        turn = 0
        while len(got) < 3000:
            try:
                got += readers[turn % 2].get_many(7, 0)
            except fastfifo.Empty:
                pass
            turn += 1
        assert sorted(got, key=int) == [b"%d" % i for i in range(3000)]
        for r in readers:
            with pytest.raises(fastfifo.Empty):
                r.get(0)
    finally:
        for x in fds:
            os.close(x)
