"""Writer(linger=): close() waits until the pipe is empty, bounded like SO_LINGER.

The kernel frees what is in a FIFO when its last descriptor closes; a lingering Writer
keeps the pipe alive until readers have taken everything.  Readers here come and go
(a shared reader that takes one message and closes, as ``recv --count 1`` does), which
is exactly when a non-lingering producer loses the rest.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import threading
import time

import pytest

import fastfifo


def closing_in_thread(w) -> tuple[threading.Thread, list[BaseException | None]]:
    """Start ``w.close()`` in a thread; the list gets its exception (or None) at the end."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            w.close()
        except BaseException as e:
            outcome.append(e)
        else:
            outcome.append(None)

    t = threading.Thread(target=run)
    t.start()
    return t, outcome


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


def lingering(w) -> bool:
    return w._linger_stop is not None


def test_close_waits_until_readers_coming_and_going_took_everything(ff, fifo):
    first = ff.Reader(fifo, shared=True)
    w = ff.Writer(fifo, linger=None)
    w.put_many([b"resize a.jpg", b"resize b.jpg"])
    t, outcome = closing_in_thread(w)
    wait_until(lambda: lingering(w), "close() lingers")
    assert first.get(timeout=5) == b"resize a.jpg"  # a claim: the other stays in the pipe
    first.close()  # without the lingering Writer, this close would free the pipe
    assert t.is_alive() and not w.closed  # b is still in the pipe: close() goes on waiting
    with ff.Reader(fifo, shared=True) as second:
        assert second.get(timeout=5) == b"resize b.jpg"
        t.join(20)
    assert not t.is_alive() and outcome == [None] and w.closed


def test_a_bounded_linger_raises_timeout_naming_the_path_and_the_bytes(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True) as idle:  # holds the FIFO, never reads
        w = ff.Writer(fifo, linger=0.05)
        w.put(b"x" * 92)  # 100 bytes with the header
        with pytest.raises(TimeoutError) as info:
            w.close()
        assert w.closed  # closed all the same
        e = info.value
        assert e.errno == errno.ETIMEDOUT and e.filename == fifo
        assert "100 bytes were still in the pipe" in e.strerror
        assert "keep a reader running, or linger longer" in e.strerror  # what to do
        assert idle.get(timeout=5) == b"x" * 92  # the reader still had the FIFO open
        w.close()  # idempotent, and no second error


def test_linger_zero_is_the_default_and_closes_at_once(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True) as idle:
        w = ff.Writer(fifo)
        assert w.linger == 0
        w.put(b"stays")
        w.close()  # returns with the message still in the pipe
        assert w.closed and idle.get(timeout=5) == b"stays"


def test_close_from_another_thread_ends_the_linger(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True):
        w = ff.Writer(fifo, linger=None)
        w.put(b"nobody takes this")
        t, outcome = closing_in_thread(w)
        wait_until(lambda: lingering(w), "close() lingers")
        w.close()
        t.join(20)
        assert not t.is_alive() and outcome == [None] and w.closed


def test_a_signal_whose_handler_raises_ends_the_linger(ff, fifo):
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with ff.Reader(fifo, stop_at_eof=True):
            w = ff.Writer(fifo, linger=None)
            w.put(b"nobody takes this")
            pid = os.getpid()
            threading.Thread(
                target=lambda: (
                    wait_until(lambda: lingering(w), "close() lingers"),
                    os.kill(pid, signal.SIGUSR1),
                )
            ).start()
            with pytest.raises(KeyboardInterrupt):
                w.close()  # the main thread lingers; the handler runs here
            assert w.closed
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_close_does_not_linger_behind_a_put_blocked_in_another_thread(ff, fifo):
    with ff.Reader(fifo, pipe_size=None, stop_at_eof=True):  # never reads
        w = ff.Writer(fifo, linger=None, pipe_size=None)
        errors: list[BaseException] = []

        def fill() -> None:
            try:
                while True:
                    w.put(b"x" * 4000)  # blocks once the pipe is full
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=fill)
        t.start()
        wait_until(lambda: fastfifo._open.bytes_waiting(w.fileno()) >= 60_000, "the pipe fills")
        w.close()  # wakes the put instead of waiting for a pipe nobody drains
        t.join(20)
        assert not t.is_alive() and w.closed
        assert len(errors) == 1 and isinstance(errors[0], fastfifo.ClosedError)


@pytest.mark.parametrize("bad", [float("nan"), -1, -0.5, "soon", [1]])
def test_a_bad_linger_is_refused_before_opening(ff, fifo, bad):
    # No reader: had the Writer tried to open, it would wait (open_timeout=None).
    with pytest.raises((ValueError, TypeError)) as info:
        ff.Writer(fifo, linger=bad)
    assert fifo in str(info.value) and "linger" in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), -1, -0.5, "soon", [1]])
def test_a_bad_linger_attribute_is_refused_like_the_argument(ff, fifo, bad):
    # "The linger attribute may be changed before close()": by the same rules, or a NaN
    # set here would make close() wait for ever and -1 would time out "after -1 s".
    with ff.Reader(fifo, stop_at_eof=True) as idle:  # holds the FIFO, never reads
        w = ff.Writer(fifo, linger=0.05)
        w.put(b"m")
        with pytest.raises((ValueError, TypeError)) as info:
            w.linger = bad
        assert fifo in str(info.value) and "linger" in str(info.value)
        assert w.linger == 0.05  # unchanged
        w.linger = float("inf")  # the constructor's rules: inf means no limit
        assert w.linger is None
        w.linger = 0
        w.close()  # at once: the message stays for the reader
        assert idle.get(timeout=5) == b"m"


@pytest.mark.parametrize("forever", [None, float("inf")])
def test_linger_without_a_limit(ff, fifo, forever):
    with ff.Reader(fifo) as r:
        w = ff.Writer(fifo, linger=forever)
        assert w.linger is None
        w.put(b"m")
        assert r.get(timeout=5) == b"m"
        w.close()  # the pipe is empty: returns at once
        assert w.closed


def test_a_writer_dropped_without_close_does_not_linger(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True) as idle:  # holds the FIFO, takes nothing yet
        w = ff.Writer(fifo, linger=None)
        w.put(b"still here")
        del w
        gc.collect()  # would never return if the finaliser lingered
        assert idle.get(timeout=5) == b"still here"
        with pytest.raises(EOFError):  # the writer's fd was closed: the stream ended
            idle.get(timeout=5)
