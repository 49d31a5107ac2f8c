"""The relay's core primitive: peek whole messages under the readers' lock, commit later.

``Reader._peek_many`` takes whole messages from a shared FIFO without consuming them;
``_commit`` consumes exactly those bytes, ``_abandon`` (or the process dying) leaves them.
Every test runs on both backends; tee() is Linux-only, so these are too.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import sys
import threading
import time

import pytest
from helpers import backend_module, endpoints, losses_logged

import fastfifo
from fastfifo._core_py import _ofd_lock

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="peeking needs tee() (Linux)"
)

KIND_FIRST, KIND_LAST = 1, 3


def msgs(n: int, tag: bytes = b"m") -> list[bytes]:
    return [tag + b"%05d" % i for i in range(n)]


def drain(reader, timeout: float = 0.5) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            out += reader.get_many(10_000, timeout=timeout if not out else 0.05)
        except fastfifo.Empty:
            return out


def test_peek_leaves_messages_until_commit(ff, fifo):
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        w.put_many(msgs(10))
        assert r._peek_held == 0
        got = r._peek_many(4, timeout=1)
        assert got == msgs(10)[:4]
        assert r._peek_held == sum(8 + len(m) for m in got)  # the frames, still in the pipe
        r._abandon()  # nothing consumed: the same four come again
        assert r._peek_held == 0
        assert r._peek_many(4, timeout=1) == msgs(10)[:4]
        r._commit()  # consumed exactly those four
        assert r._peek_held == 0
        assert r._peek_many(100, timeout=1) == msgs(10)[4:]
        r._commit()
        with pytest.raises(fastfifo.Empty):
            r._peek_many(100, timeout=0)


def test_lines_framing_and_a_line_not_finished_yet(ff, fifo):
    with ff.Reader(fifo, shared=True, framing="lines") as r, ff.Writer(fifo) as raw:
        fd = raw.fileno()
        os.write(fd, b"one\ntwo\nthr")  # a byte-stream peer, part-way through a line
        assert r._peek_many(10, timeout=1) == [b"one", b"two"]
        r._commit()
        with pytest.raises(fastfifo.Empty):
            r._peek_many(10, timeout=0.05)  # the head is not a whole line yet
        os.write(fd, b"ee\n")
        assert r._peek_many(10, timeout=1) == [b"three"]
        r._commit()


def test_a_held_peek_keeps_other_shared_readers_out(ff, fifo):
    with ff.Reader(fifo, shared=True) as a, ff.Reader(fifo, shared=True) as b:
        with ff.Writer(fifo) as w:
            w.put_many(msgs(5))
        assert a._peek_many(2, timeout=1) == msgs(5)[:2]
        with pytest.raises(fastfifo.Empty):
            b.get(timeout=0.05)  # the readers' lock is a's until commit/abandon
        a._abandon()
        assert drain(b) == msgs(5)  # abandoned: the peeked two are still first


def test_commit_then_another_reader_gets_the_rest(ff, fifo):
    with ff.Reader(fifo, shared=True) as a, ff.Reader(fifo, shared=True) as b:
        with ff.Writer(fifo) as w:
            w.put_many(msgs(5))
        assert a._peek_many(3, timeout=1) == msgs(5)[:3]
        a._commit()
        assert drain(b) == msgs(5)[3:]


def test_close_with_a_held_peek_consumes_nothing(ff, fifo):
    with ff.Reader(fifo, shared=True) as b:
        with ff.Writer(fifo) as w:
            w.put_many(msgs(3))
        a = ff.Reader(fifo, shared=True)
        assert a._peek_many(10, timeout=1) == msgs(3)
        a.close()  # the kernel releases the lock with the descriptor
        assert drain(b) == msgs(3)


def test_messages_of_ordinary_calls_come_first(ff, fifo):
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        w.put_many(msgs(4))
        assert r.get(timeout=1) == b"m00000"
        assert r._peek_many(10, timeout=1) == msgs(4)[1:]
        assert r._peek_held > 0
        r._commit()


def test_a_large_message_within_the_peek_window_is_held(ff, fifo):
    big = os.urandom(100_000)  # sent as fragments, all within the 256 KiB window
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        w.put(b"before")
        w.put(big)
        w.put(b"after")
        assert r._peek_many(10, timeout=1) == [b"before", big, b"after"]
        held = r._peek_held
        assert held > len(big)
        r._abandon()
        assert r._peek_many(1, timeout=1) == [b"before"]
        r._commit()
        assert r._peek_many(1, timeout=1) == [big]
        r._commit()
        assert drain(r) == [b"after"]


def test_a_message_larger_than_the_window_is_taken_the_ordinary_way(ff, fifo):
    big = os.urandom(600_000)
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        done = threading.Event()
        t = threading.Thread(target=lambda: (w.put(big), w.put(b"next"), done.set()))
        t.start()
        got = r._peek_many(10, timeout=5)
        assert got[0] == big
        assert r._peek_held == 0  # consumed when taken (with what followed): the caller knows
        r._commit()  # a no-op
        t.join(5)
        if got[1:] != [b"next"]:
            assert r._peek_many(10, timeout=5) == [b"next"]
            assert r._peek_held > 0
            r._commit()
        assert done.is_set()


def _fragment(core, kind: int, payload: bytes) -> bytes:
    return core.encode_header(kind, len(payload)) + payload


def test_waits_for_the_rest_of_a_large_message_while_its_writer_holds_the_lock(ff, fifo):
    core = backend_module(ff.name)
    body = os.urandom(10_000)
    first = _fragment(core, KIND_FIRST, len(body).to_bytes(8, "little") + body[:4000])
    last = _fragment(core, KIND_LAST, body[4000:])
    with ff.Reader(fifo, shared=True) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            _ofd_lock(fd, fcntl.F_WRLCK)  # the writers' lock, as a Writer mid-message has it
            os.write(fd, first)
            with pytest.raises(fastfifo.Empty):
                r._peek_many(10, timeout=0.1)
            assert r._peek_held == 0
            os.write(fd, last)
            _ofd_lock(fd, fcntl.F_UNLCK)
            assert r._peek_many(10, timeout=1) == [body]
            assert r._peek_held == len(first) + len(last)
            r._commit()
        finally:
            os.close(fd)


def test_a_large_message_whose_writer_died_is_dropped_and_the_rest_delivered(ff, fifo):
    core = backend_module(ff.name)
    first = _fragment(core, KIND_FIRST, (10_000).to_bytes(8, "little") + b"x" * 4000)
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        os.write(w.fileno(), first)  # no writers' lock held: its writer is gone
        w.put_many([b"a", b"b"])
        got: list[bytes] = []
        with losses_logged("writer died", count=1):  # reported once, when it is found
            while len(got) < 2:
                got += r._peek_many(10, timeout=1)
                r._commit()
            with pytest.raises(fastfifo.Empty):
                r._peek_many(10, timeout=0)
        assert got == [b"a", b"b"]
        assert r.dropped_messages == 1


def test_bad_bytes_are_reported_and_the_next_peek_goes_on(ff, fifo):
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        os.write(w.fileno(), b"garbage!")
        w.put(b"ok")
        with pytest.raises(fastfifo.CorruptStreamError):
            r._peek_many(10, timeout=1)
        assert r._peek_many(10, timeout=1) == [b"ok"]
        assert r._peek_held == 8 + 2
        r._commit()
        assert r.skipped_bytes == 8


def test_argument_and_state_errors(ff, fifo):
    with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
        w.put(b"x")
        with pytest.raises(ValueError, match="max_messages must be >= 1"):
            r._peek_many(0)
        with pytest.raises(TypeError, match="max_messages must be an int"):
            r._peek_many(True)
        with pytest.raises(ValueError, match="timeout"):
            r._peek_many(1, timeout=float("nan"))
        r._commit()  # nothing held: no-ops
        r._abandon()
        assert r._peek_many(10**30, timeout=1) == [b"x"]  # capped, no overflow
        with pytest.raises(RuntimeError, match="a peek is held"):
            r._peek_many(1, timeout=0)
        r._abandon()
    with ff.Reader(fifo) as alone:
        with pytest.raises(ValueError, match="shared=True"):
            alone._peek_many(1, timeout=0)


def test_close_from_another_thread_wakes_a_waiting_peek(ff, fifo):
    r = ff.Reader(fifo, shared=True)
    threading.Timer(0.1, r.close).start()
    t0 = time.monotonic()
    with pytest.raises(fastfifo.ClosedError):
        r._peek_many(10, timeout=30)
    assert time.monotonic() - t0 < 10


def test_a_signal_whose_handler_raises_ends_a_waiting_peek(ff, fifo):
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with ff.Reader(fifo, shared=True) as r:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            t0 = time.monotonic()
            with pytest.raises(Interrupted):
                r._peek_many(10, timeout=30)
            assert time.monotonic() - t0 < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _peek_in_child(name: str, fifo: str, count: int, commit: bool, report_fd: int) -> None:
    """In a forked child: peek ``count`` messages, maybe commit, say so, wait to be killed."""
    try:
        r = endpoints(name).Reader(fifo, shared=True)
        got = r._peek_many(count, timeout=10)
        if commit:
            r._commit()
        os.write(report_fd, b"%d\n" % len(got))
        while True:
            signal.pause()
    finally:
        os._exit(1)


@pytest.mark.parametrize("commit", [False, True], ids=["killed-before-commit", "after-commit"])
def test_a_reader_sigkilled_while_holding_a_peek(ff, fifo, commit):
    """SIGKILL between peek and commit consumes nothing; after commit, exactly the batch."""
    with ff.Reader(fifo, shared=True) as holder:  # keeps the FIFO (and its data) alive
        with ff.Writer(fifo) as w:
            w.put_many(msgs(100))
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _peek_in_child(ff.name, fifo, 30, commit, wfd)
        os.close(wfd)
        try:
            ready, _, _ = select.select([rfd], [], [], 30)
            assert ready, "the child did not report its peek"
            assert os.read(rfd, 100) == b"30\n"
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
        expected = msgs(100)[30:] if commit else msgs(100)
        assert drain(holder) == expected
