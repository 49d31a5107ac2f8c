"""fastfifo.Queue without maxsize: put never waits, as multiprocessing.Queue's.

What the pipe has no room for waits in the process, in a feeder thread started then,
which writes it in order, and is flushed at close()/join_thread()/exit with
multiprocessing's semantics, cancel_join_thread() included.
"""

from __future__ import annotations

import fcntl
import gc
import multiprocessing
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import BACKENDS, ff_queue, losses_logged

import fastfifo
import fastfifo._open

FORK = multiprocessing.get_context("fork")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _feeders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fastfifo.Queue feeder"]


def test_an_unbounded_put_never_waits_and_never_raises_full(backend):
    q = ff_queue(backend, pipe_size=65536)
    n = 30_000  # about six times what the pipe holds
    t0 = time.monotonic()
    for i in range(n):
        q.put_nowait(i)  # multiprocessing.Queue: always succeeds without maxsize
    for i in range(n, 2 * n):
        q.put(i, timeout=0)  # a timed put cannot fail either
    assert time.monotonic() - t0 < 60
    assert not q.full()
    assert q.qsize() == 2 * n
    assert [q.get(timeout=5) for _ in range(2 * n)] == list(range(2 * n))  # in order
    assert q.empty()
    q.close()


def test_the_feeder_thread_starts_only_when_the_pipe_is_full(backend):
    q = ff_queue(backend, pipe_size=65536)
    # (this queue's feeders are the ones not there before: a queue an earlier test
    # closed may still have its feeder for a moment, ending at any time)
    before = set(_feeders())
    for i in range(100):
        q.put(i)  # plenty of room: written by put itself
    assert not set(_feeders()) - before
    for i in range(20_000):
        q.put(i)
    assert len(set(_feeders()) - before) == 1  # the pipe filled up: now there is one
    got = []
    while len(got) < 20_100:
        got += q.get_many(max_messages=100_000, timeout=30)
    q.close()
    q.join_thread()
    assert not set(_feeders()) - before  # it ended once it had written everything


def test_one_thread_fills_the_queue_then_drains_it_with_a_4_mib_object(backend):
    q = ff_queue(backend)
    big = os.urandom(4 << 20)  # four times the pipe
    q.put(big)
    q.put("after")
    assert q.get(timeout=30) == big
    assert q.get(timeout=5) == "after"
    q.close()


def _worker(q, results):
    got = []
    while (x := q.get(timeout=60)) is not None:
        got.append(x)
    results.send(got)


def test_fill_the_queue_then_start_the_workers():
    # Issue 14: blocked for ever at item 45,679 (small ints) when put waited for the pipe.
    q = fastfifo.Queue()
    for i in range(60_000):
        q.put(i)
    q.put_many([None, None])
    pipes = [FORK.Pipe(duplex=False) for _ in range(2)]
    workers = [FORK.Process(target=_worker, args=(q, w)) for _, w in pipes]
    for p in workers:
        p.start()
    got = [x for r, _ in pipes for x in r.recv()]
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(got) == list(range(60_000))
    q.close()


def test_order_is_kept_from_written_at_once_to_fed_and_back(backend):
    q = ff_queue(backend, pipe_size=65536, raw=True)
    sizes = [10, 5000, 100, 70_000, 1, 300, 20_000] * 40  # small, large, over the pipe
    msgs = [b"%06d" % i + bytes([i % 251]) * n for i, n in enumerate(sizes)]
    got = []

    def consume():
        while len(got) < len(msgs):
            got.extend(q.get_many(timeout=30))

    for m in msgs[:100]:
        q.put(m)  # no consumer yet: the pipe fills, the feeder takes over
    t = threading.Thread(target=consume)
    t.start()
    for m in msgs[100:]:
        q.put(m)
        if len(got) > 150:
            time.sleep(0)  # let the consumer catch up: puts go to the pipe again
    t.join(60)
    assert got == msgs


def test_a_pickling_error_is_raised_by_put_while_the_feeder_holds_messages(backend):
    q = ff_queue(backend, pipe_size=65536)
    for i in range(20_000):
        q.put(i)
    assert q.qsize() == 20_000
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put(lambda: 0)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put_many([1, threading.Lock()])
    assert q.qsize() == 20_000  # nothing of them was put
    got = []
    while len(got) < 20_000:
        got += q.get_many(max_messages=30_000, timeout=30)
    assert got == list(range(20_000))
    q.close()


def test_close_and_join_thread_wait_until_the_feeder_wrote_everything(backend, tmp_path):
    path = str(tmp_path / "q")
    consumer = ff_queue(backend, path, pipe_size=65536)
    producer = ff_queue(backend, path, pipe_size=65536)
    for i in range(30_000):
        producer.put(i)
    producer.close()  # as multiprocessing: the feeder goes on writing what it holds
    joined = threading.Event()

    def join():
        producer.join_thread()
        joined.set()

    t = threading.Thread(target=join)
    t.start()
    assert not joined.wait(0.3)  # the pipe is full and nobody reads: still writing
    got = []
    while len(got) < 30_000:
        got += consumer.get_many(max_messages=5000, timeout=30)
    assert joined.wait(30)
    t.join()
    assert got == list(range(30_000))
    with pytest.raises(fastfifo.Empty):
        consumer.get(timeout=0.1)
    consumer.close()


_EXIT_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import ff_queue
    q = ff_queue({backend!r}, {path!r}, pipe_size=65536)
    for i in range({n}):
        q.put(i)
    {then}
    print("exiting", flush=True)
    """
)


def _run_child(backend, path, n, then):
    code = _EXIT_CHILD.format(
        tests=os.path.dirname(__file__), backend=backend, path=path, n=n, then=then
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_at_exit_a_process_waits_for_its_feeder_so_nothing_is_lost(backend, tmp_path):
    path = str(tmp_path / "q")
    consumer = ff_queue(backend, path, pipe_size=65536)
    child = _run_child(backend, path, 30_000, "pass  # exits without close()")
    assert child.stdout.readline() == "exiting\n"  # its main code is done...
    time.sleep(0.2)
    assert child.poll() is None  # ...but it waits at exit for its feeder, which waits for room
    got = []
    while len(got) < 30_000:
        got += consumer.get_many(max_messages=5000, timeout=30)
    assert child.wait(30) == 0
    assert got == list(range(30_000))
    consumer.close()


def test_cancel_join_thread_lets_a_process_exit_and_loses_what_it_held(backend, tmp_path):
    path = str(tmp_path / "q")
    consumer = ff_queue(backend, path, pipe_size=65536)
    child = _run_child(backend, path, 30_000, "q.cancel_join_thread()")
    assert child.stdout.readline() == "exiting\n"
    assert child.wait(30) == 0  # exits with no consumer: it does not wait for the feeder
    got = []
    while True:
        try:
            got += consumer.get_many(max_messages=5000, timeout=0.2)
        except fastfifo.Empty:
            break
    assert 0 < len(got) < 30_000  # what was in the pipe; the rest died with the process
    assert got == list(range(len(got)))
    consumer.close()


def test_a_queue_collected_with_messages_in_its_feeder_still_delivers_them(backend, tmp_path):
    path = str(tmp_path / "q")
    consumer = ff_queue(backend, path, pipe_size=65536)
    producer = ff_queue(backend, path, pipe_size=65536)
    for i in range(30_000):
        producer.put(i)
    del producer
    gc.collect()  # the feeder goes on, then closes what the queue had open
    got = []
    while len(got) < 30_000:
        got += consumer.get_many(max_messages=5000, timeout=30)
    assert got == list(range(30_000))
    consumer.close()


@pytest.mark.parametrize("maxsize", [0, 5])
def test_timed_puts_of_large_messages_never_leave_a_fragment(backend, tmp_path, maxsize):
    """Issue 14: a put(timeout=t) of a message over one atomic write used to give up
    part-way under contention; readers then dropped the fragment with a warning.  Now a
    put either puts the whole message or (maxsize, Full) none of it."""
    path = str(tmp_path / "q")
    consumer = ff_queue(backend, path, raw=True, pipe_size=65536)
    producers = [ff_queue(backend, path, maxsize, raw=True, pipe_size=65536) for _ in range(3)]
    put_ok: list[bytes] = []
    lock = threading.Lock()

    def produce(k):
        for i in range(40):
            msg = b"%d-%d-" % (k, i) + bytes([k]) * 30_000
            try:
                producers[k].put(msg, timeout=0.01)
            except fastfifo.Full:
                continue
            with lock:
                put_ok.append(msg)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    with losses_logged(count=0):  # a message dropped as incomplete fails the test
        for t in threads:
            t.start()
        got = []
        while any(t.is_alive() for t in threads):
            try:
                got += consumer.get_many(max_messages=3, timeout=0.05)
            except fastfifo.Empty:
                pass
            time.sleep(0.002)  # a slow consumer: the producers contend for room
        for p in producers:
            p.close()  # their feeders (maxsize=0) go on writing what they hold
        flushed = threading.Thread(target=lambda: [p.join_thread() for p in producers])
        flushed.start()
        while True:
            try:
                got += consumer.get_many(timeout=0.2)
            except fastfifo.Empty:
                if not flushed.is_alive():
                    break
        flushed.join()
    assert sorted(got) == sorted(put_ok)
    if maxsize == 0:
        assert len(put_ok) == 120  # without maxsize no put fails
    consumer.close()


def _hold_the_writers_lock(path: str) -> int:
    """Another writer holding the writers' lock (an OFD write lock on byte 0, as the core
    takes it): no large message can be written meanwhile."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    fcntl.fcntl(fd, 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
    return fd  # F_OFD_SETLK (37); closing the descriptor releases it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OFD locks on FIFOs")
def test_empty_and_qsize_count_what_the_feeder_holds(backend, tmp_path):
    """multiprocessing.Queue.empty() is true while its feeder still holds objects;
    fastfifo.Queue.empty() counts them (qsize() does in both)."""
    path = str(tmp_path / "q")
    q = ff_queue(backend, path, raw=True)
    lock = _hold_the_writers_lock(path)
    try:
        big = b"B" * (3 << 20)  # larger than the pipe: the feeder takes it, and must wait
        q.put(big)
        assert fastfifo._open.bytes_waiting(q.fileno()) == 0  # nothing in the pipe...
        assert not q.empty() and q.qsize() == 1  # ...and yet one object in the queue
    finally:
        os.close(lock)
    assert q.get(timeout=30) == big
    # The reader can take the last bytes before the feeder's write() has returned to it;
    # the feeder then stops counting the object (both are snapshots, as multiprocessing's
    # are).  Wait for that, up to 30 s: the count must come to 0, not stay at 1.
    deadline = time.monotonic() + 30
    while not (q.empty() and q.qsize() == 0):
        assert time.monotonic() < deadline, "the feeder still counts an object it sent"
        time.sleep(0.001)
    q.close()
