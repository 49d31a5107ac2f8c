"""Timeouts, blocking, close() from another thread, end of stream, full pipes."""

from __future__ import annotations

import os
import threading
import time

import pytest

import fastfifo


def test_get_timeout_raises_empty_on_time(ff, fifo):
    with ff.Reader(fifo) as r:
        t0 = time.monotonic()
        with pytest.raises(fastfifo.Empty, match=r"no message within 0\.2 s") as e:
            r.get(timeout=0.2)
        elapsed = time.monotonic() - t0
        assert 0.2 <= elapsed < 2.0
        assert fifo in str(e.value)
        t0 = time.monotonic()
        with pytest.raises(fastfifo.Empty):
            r.get_many(timeout=0)
        assert time.monotonic() - t0 < 0.5
        assert isinstance(e.value, __import__("queue").Empty)


def test_get_none_blocks_until_data_and_other_threads_run(ff, fifo):
    got = []
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        t = threading.Thread(target=lambda: got.append(r.get(timeout=None)))
        t.start()
        # While the reader blocks, this thread keeps running (the wait released the GIL).
        spins = 0
        t_end = time.monotonic() + 0.3
        while time.monotonic() < t_end:
            spins += 1
        assert t.is_alive() and not got, "get(timeout=None) returned without data"
        assert spins > 10_000
        w.put(b"late")
        t.join(5)
        assert not t.is_alive()
    assert got == [b"late"]


def test_close_from_another_thread_wakes_a_blocked_get(ff, fifo):
    r = ff.Reader(fifo)
    errors = []
    entered = threading.Event()

    def blocked():
        entered.set()
        try:
            r.get(timeout=None)
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    entered.wait()
    t.join(0.2)  # let it reach poll(); if it has not yet, it sees closing on entry
    t0 = time.monotonic()
    r.close()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert len(errors) == 1 and isinstance(errors[0], fastfifo.ClosedError)
    assert r.closed


def test_close_from_another_thread_wakes_a_put_on_a_full_pipe(ff, fifo):
    with ff.Reader(fifo):
        w = ff.Writer(fifo, pipe_size=None)
        while True:  # fill the pipe
            try:
                w.put(b"x" * 4000, timeout=0)
            except fastfifo.Full:
                break
        errors = []

        def blocked():
            try:
                w.put(b"y" * 4000, timeout=None)  # a slot-sized write cannot merge: it waits
            except Exception as e:
                errors.append(e)

        t = threading.Thread(target=blocked)
        t.start()
        t.join(0.2)
        assert t.is_alive()
        w.close()
        t.join(5)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], fastfifo.ClosedError)


def test_full_pipe_raises_full_and_put_many_reports_what_was_sent(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo, pipe_size=None) as w:
        written = 0
        while True:
            try:
                w.put(b"%06d" % written + b"." * 1000, timeout=0)
            except fastfifo.Full as e:
                assert e.sent == 0 and fifo in str(e)
                break
            written += 1
        t0 = time.monotonic()
        with pytest.raises(fastfifo.Full):
            w.put(b"z" * 1006, timeout=0.2)  # same size: cannot squeeze into a page
        assert time.monotonic() - t0 >= 0.2
        # The reader drains the pipe into its buffer; a batch larger than the pipe
        # then goes in partly, and Full says how much.
        first = r.get_many(max_messages=8, timeout=5)
        with pytest.raises(fastfifo.Full) as e:
            w.put_many([b"b" * 1000] * 4 * (w.pipe_size // 4096 + 10), timeout=0)
        assert 0 < e.value.sent < 4 * (w.pipe_size // 4096 + 10)
        received = first
        while True:
            try:
                received += r.get_many(timeout=0.2)
            except fastfifo.Empty:
                break
        assert len(received) == written + e.value.sent
        assert received[:written] == [b"%06d" % i + b"." * 1000 for i in range(written)]


def test_stop_at_eof_ends_like_cat(ff, fifo):
    with ff.Reader(fifo, stop_at_eof=True) as r:
        with ff.Writer(fifo) as w:
            w.put(b"a")
        assert r.get(timeout=5) == b"a"
        with pytest.raises(EOFError, match="every writer"):
            r.get(timeout=5)
        # A reader that never met a writer waits instead of reporting EOF.
    with ff.Reader(fifo, stop_at_eof=True) as r2:
        with pytest.raises(fastfifo.Empty):
            r2.get(timeout=0.2)


def test_default_reader_waits_for_the_next_writer_without_spinning(ff, fifo):
    with ff.Reader(fifo) as r:
        with ff.Writer(fifo) as w:
            w.put(b"first")
        assert r.get(timeout=5) == b"first"
        cpu0 = time.process_time()
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.5)  # the writer is gone: wait, do not spin on POLLHUP
        assert time.process_time() - cpu0 < 0.1
        with ff.Writer(fifo) as w2:
            w2.put(b"second")
        assert r.get(timeout=5) == b"second"


def test_reader_paced_for_a_busy_writer_sleeps_once_the_writer_stops(ff, fifo):
    # Bytes waiting at each read mark the writer busy, and get() then paces its reads
    # (the compiled core spins up to 3 us between them). Once the pipe runs dry the
    # wait must be poll(), not a spin: no CPU burnt while nothing arrives.
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        for round_ in range(3):
            msgs = [b"%d-%d" % (round_, i) for i in range(2000)]
            w.put_many(msgs)
            assert [r.get(timeout=5) for _ in msgs] == msgs
        cpu0 = time.process_time()
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.5)
        assert time.process_time() - cpu0 < 0.1
        w.put(b"after")
        assert r.get(timeout=5) == b"after"


def test_writer_open_times_out_without_a_reader(ff, fifo):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="no reader") as e:
        ff.Writer(fifo, open_timeout=0.2)
    assert 0.2 <= time.monotonic() - t0 < 2.0
    assert e.value.filename == fifo
    with pytest.raises(TimeoutError):
        ff.Writer(fifo, open_timeout=0)


def test_writer_open_waits_for_a_reader(ff, fifo):
    result = []
    t = threading.Thread(target=lambda: result.append(ff.Writer(fifo, open_timeout=10)))
    t.start()
    t.join(0.2)
    assert t.is_alive(), "Writer opened although no reader existed"
    with ff.Reader(fifo) as r:
        t.join(10)
        assert result
        with result[0] as w:
            w.put(b"hi")
        assert r.get(timeout=5) == b"hi"


def test_reader_gone_raises_broken_pipe(ff, fifo):
    r = ff.Reader(fifo)
    w = ff.Writer(fifo)
    w.put(b"x")
    r.close()
    with pytest.raises(BrokenPipeError, match="no reader") as e:
        w.put(b"y")
    assert e.value.filename == fifo
    with pytest.raises(BrokenPipeError):
        w.put_many([b"y"])
    w.close()


def test_concurrent_getters_in_threads_each_message_once(ff, fifo):
    n = 20_000
    seen = []
    lock = threading.Lock()
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:

        def consume():
            while True:
                try:
                    msgs = r.get_many(max_messages=7, timeout=0.5)
                except fastfifo.Empty:
                    return
                with lock:
                    seen.extend(msgs)

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        w.put_many(b"%d" % i for i in range(n))
        for t in threads:
            t.join(30)
    assert sorted(seen, key=int) == [b"%d" % i for i in range(n)]
    assert len(set(seen)) == n


def test_wait_for_reader_does_not_leak_fds(ff, fifo):
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        with pytest.raises(TimeoutError):
            ff.Writer(fifo, open_timeout=0)
    assert len(os.listdir("/proc/self/fd")) == before
