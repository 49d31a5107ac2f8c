"""Leaks: file descriptors over many open/close cycles, memory over a million messages.

File descriptors are counted in /proc/self/fd (/dev/fd elsewhere).  Memory is measured
two ways after a warm-up: the process's resident set (/proc/self/statm) over the second
half of the run, and the number of blocks CPython's allocator holds over all of it
(``sys.getallocatedblocks``, exact for leaked Python objects).  The compiled core runs
1,000,000 messages through each API; the pure-Python twin 100,000 (it is ten times
slower, and has no C allocations of its own to leak).  scripts/memcheck.sh runs valgrind
on the extension for leaks and bad accesses in C.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

import pytest

import fastfifo
from fastfifo._core_py import encode_header

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="reads /proc/self/statm")
FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
PAGE = os.sysconf("SC_PAGE_SIZE")

#: Under AddressSanitizer (scripts/sanitize.sh) freed memory sits in ASan's quarantine and
#: PYTHONMALLOC=malloc empties getallocatedblocks(): the runs then check for memory errors
#: only, and these bounds are not applied.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


#: Allowed RSS growth over the second half of a run (500,000 messages for the compiled
#: core): 4 bytes a message; a leaked bytes object (>= 33 bytes) or buffer per message
#: would be 8x that at least.
RSS_SLACK = (1 << 40) if SANITIZED else 2 << 20
BLOCKS_SLACK = 2000


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir(FD_DIR)}


def settled_fds() -> set[int]:
    """The open fds once garbage from earlier tests (cycles through tracebacks, say, that
    hold a Process's sentinel pipe) has been collected: a baseline that only this test moves."""
    gc.collect()
    return open_fds()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# ------------------------------------------------------------------ file descriptors


def test_ten_thousand_open_close_cycles_leak_no_fd(ff, tmp_path):
    """10,000 cycles, each an open/close (or a failed open) and an exception mid-call."""
    fifo = fastfifo.mkfifo(tmp_path / "q")
    lonely = fastfifo.mkfifo(tmp_path / "no-reader")
    grouped = fastfifo.mkfifo(tmp_path / "group-writable")
    os.chmod(grouped, 0o620)
    regular = tmp_path / "file"
    regular.write_bytes(b"data")
    missing = str(tmp_path / "missing")
    keeper = ff.Reader(fifo)  # Writers open at once
    writer = ff.Writer(fifo)

    def fails(exc, fn, *args, **kw):
        with pytest.raises(exc):
            fn(*args, **kw)

    cycles = [
        lambda: ff.Reader(fifo).close(),
        lambda: ff.Writer(fifo).close(),
        lambda: ff.Reader(fifo, stop_at_eof=True).close(),
        lambda: ff.Writer(fifo, buffered=True).close(),
        lambda: fails(TimeoutError, ff.Writer, lonely, open_timeout=0),
        lambda: fails(FileNotFoundError, ff.Reader, missing),
        lambda: fails(fastfifo.NotAFifoError, ff.Writer, str(regular), open_timeout=0),
        lambda: fails(PermissionError, ff.Reader, grouped),
        lambda: fails(ValueError, ff.Reader, fifo, framing="json"),
    ]
    if LINUX:
        cycles.append(lambda: ff.Reader(fifo, shared=True).close())
    too_big = bytes(65 << 20)  # above the Writer's max_message_size: refused before writing
    with ff.Reader(fifo) as r_mid, ff.Writer(fifo) as w_mid:
        r_mid.close()  # only to get a closed endpoint for ClosedError below
        mid_call = [  # exceptions raised part-way through calls on open endpoints
            lambda: fails(fastfifo.Empty, keeper.get, timeout=0),
            lambda: fails(fastfifo.Empty, keeper.get_many, timeout=0),
            lambda: fails(fastfifo.MessageTooLargeError, w_mid.put, too_big),
            lambda: fails(TypeError, w_mid.put, 12345),
            lambda: fails(TypeError, w_mid.put_many, [b"a", object(), b"c"]),
            lambda: fails(ValueError, ff.Writer(fifo, framing="lines").put, b"a\nb"),
            lambda: fails(fastfifo.ClosedError, r_mid.get, timeout=0),
        ]
        before = settled_fds()
        midway = None
        for i in range(10_000):
            cycles[i % len(cycles)]()
            mid_call[i % len(mid_call)]()
            if i == 4_999:
                gc.collect()
                midway = open_fds()
        # A Writer that the put_many above stopped short must not have written a prefix.
        with pytest.raises(fastfifo.Empty):
            keeper.get(timeout=0)
        gc.collect()
        after = open_fds()
    assert midway == before and after == before, (sorted(midway ^ before), sorted(after ^ before))
    writer.close()
    keeper.close()


def test_blocked_calls_interrupted_by_signals_leak_nothing(ff, fifo):
    """A signal handler raising inside a blocked get/put (EINTR): the error propagates, the
    endpoint stays usable, and nothing leaks."""

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    r = ff.Reader(fifo, pipe_size=None)
    w = ff.Writer(fifo, pipe_size=None)
    before = settled_fds()
    try:
        for i in range(40):
            signal.setitimer(signal.ITIMER_REAL, 0.002)
            with pytest.raises(Interrupted):
                if i % 2:
                    r.get()  # nothing comes: blocks until the signal
                else:
                    while True:  # fill the pipe: the put blocks until the signal
                        w.put(b"f" * 4000)
            signal.setitimer(signal.ITIMER_REAL, 0)
            while True:
                try:
                    r.get_many(timeout=0)
                except fastfifo.Empty:
                    break
        w.put(b"still works")
        assert r.get(timeout=5) == b"still works"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    gc.collect()
    assert open_fds() == before
    r.close()
    w.close()


# ------------------------------------------------------------------ memory


def _messages(n: int) -> list[bytes]:
    return [bytes([i % 251]) * (i % 97) for i in range(n)]


def _pump_get(r, w, rounds, msgs):
    for _ in range(rounds):
        for m in msgs:
            w.put(m)
        for m in msgs:
            assert r.get(timeout=0) == m


def _pump_many(r, w, rounds, msgs):
    for _ in range(rounds):
        w.put_many(msgs)
        got = 0
        while got < len(msgs):
            got += len(r.get_many(timeout=0))


def _pump_batch(r, w, rounds, msgs):
    kept = []
    for i in range(rounds):
        w.put_many(msgs)
        got = 0
        while got < len(msgs):
            batch = r.get_batch(timeout=0)
            got += len(batch)
            if i % 7 == 0:
                kept.append(batch[0])  # a view outliving its batch for a while
            for v in batch:
                v.nbytes  # noqa: B018  (touch every view)
            batch.tolist()
        if len(kept) > 20:
            kept.clear()
    kept.clear()  # (a view keeps its whole receive chunk alive until it goes)


def _pump_buffered(r, w, rounds, msgs):
    for _ in range(rounds):
        for m in msgs:
            w.put(m)
        w.flush()
        got = 0
        while got < len(msgs):
            got += len(r.get_many(timeout=0))


def _pump_large(r, w, rounds, msgs):
    big = [b"L" * (5000 + 1000 * (i % 10)) for i in range(len(msgs))]
    for _ in range(rounds):
        for b in big:
            w.put(b)
            assert r.get(timeout=0) == b


def _pump_errors(r, w, rounds, msgs):
    """Per message slot: junk, an oversized frame (max_message_size=1000), a good frame."""
    fd = os.open(r.path, os.O_WRONLY | os.O_NONBLOCK)
    bad = b"junk!" * 3 + encode_header(0, 2000) + b"z" * 2000 + encode_header(0, 2) + b"ok"
    try:
        for _ in range(rounds):
            for _ in range(len(msgs) // 10):
                os.write(fd, bad)
                with pytest.raises(fastfifo.CorruptStreamError):
                    r.get(timeout=0)
                with pytest.raises(fastfifo.MessageTooLargeError):
                    r.get(timeout=0)
                assert r.get(timeout=0) == b"ok"
    finally:
        os.close(fd)


APIS = {
    "put/get": (_pump_get, {}, {}),
    "put_many/get_many": (_pump_many, {}, {}),
    "put_many/get_batch": (_pump_batch, {}, {}),
    "buffered put/get_many": (_pump_buffered, {"buffered": True}, {}),
    "lines put_many/get_many": (_pump_many, {"framing": "lines"}, {"framing": "lines"}),
    "shared get_many": (_pump_many, {}, {"shared": True}),
    "shared get_batch": (_pump_batch, {}, {"shared": True}),
}


def _measure(pump, r, w, total, batch):
    """(RSS growth over the second half of the run, allocated-blocks growth over the whole
    run, messages, seconds).  The first half may still raise high-water marks (the receive
    chunks that zero-copy batches pin, for one); a leak grows in both halves."""
    msgs = _messages(batch)
    if b"\n" in b"".join(msgs):
        msgs = [m.replace(b"\n", b"") for m in msgs]
    rounds = total // batch
    pump(r, w, max(rounds // 20, 2), msgs)  # warm up: buffers, free lists, caches
    gc.collect()
    blocks0 = sys.getallocatedblocks()
    start = time.monotonic()
    pump(r, w, rounds // 2, msgs)
    gc.collect()
    rss1 = rss()
    pump(r, w, rounds - rounds // 2, msgs)
    took = time.monotonic() - start
    gc.collect()
    return rss() - rss1, sys.getallocatedblocks() - blocks0, rounds * batch, took


@linux_only
@pytest.mark.parametrize("api", list(APIS))
def test_memory_is_stable_over_a_million_messages(ff, fifo, api):
    pump, wopts, ropts = APIS[api]
    total = 1_000_000 if ff.name == "cython" else 100_000
    with ff.Reader(fifo, **ropts) as r, ff.Writer(fifo, **wopts) as w:
        grew, blocks, n, took = _measure(pump, r, w, total, 1000)
        assert r.dropped_messages == 0 and r.skipped_bytes == 0
    print(
        f"{ff.name} {api}: {n} messages in {took:.1f} s, RSS {grew / 1024:+.0f} KiB "
        f"(second half), blocks {blocks:+d}"
    )
    assert grew < RSS_SLACK, f"RSS grew {grew / 1e6:.1f} MB over the last {n // 2} messages"
    assert blocks < BLOCKS_SLACK, f"{blocks} more Python allocations after {n} messages"


@linux_only
def test_memory_is_stable_for_large_messages_and_shared_readers(ff, fifo):
    """Fragments and reassembly: 20,000 messages of 5-14 KB (cython; 4,000 pure)."""
    total = 20_000 if ff.name == "cython" else 4_000
    for ropts in ({}, {"shared": True}):
        with ff.Reader(fifo, **ropts) as r, ff.Writer(fifo) as w:
            grew, blocks, n, _took = _measure(_pump_large, r, w, total, 100)
            assert r.dropped_messages == 0
        print(
            f"{ff.name} large {ropts}: {n} messages, RSS {grew / 1024:+.0f} KiB, blocks {blocks:+d}"
        )
        assert grew < RSS_SLACK and blocks < BLOCKS_SLACK


@linux_only
def test_memory_is_stable_through_error_paths(ff, fifo):
    """Corrupt bytes and oversized frames, over and over: the errors leak nothing."""
    total = 1_000_000 if ff.name == "cython" else 200_000
    with ff.Reader(fifo, max_message_size=1000) as r, ff.Writer(fifo) as w:
        grew, blocks, n, _took = _measure(_pump_errors, r, w, total, 1000)
    print(
        f"{ff.name} errors: {n // 10} rounds of junk + oversized + good, "
        f"RSS {grew / 1024:+.0f} KiB, blocks {blocks:+d}"
    )
    assert grew < RSS_SLACK and blocks < BLOCKS_SLACK


@linux_only
@pytest.mark.parametrize("many", [False, True], ids=["put/get", "put_many/get_many"])
def test_memory_is_stable_through_the_queue(ff, fifo, many):
    # Queue.get/put are Python over the core (pickling each object): 300,000 one at a time,
    # 1,000,000 in batches.
    total = (1_000_000 if many else 300_000) if ff.name == "cython" else 50_000
    q = fastfifo.Queue._for_backend(ff.name, fifo)
    objs = [("job", i, b"x" * (i % 50)) for i in range(1000)]

    def pump(r, w, rounds, msgs):
        for _ in range(rounds):
            if many:
                q.put_many(objs)
                got = 0
                while got < len(objs):
                    got += len(q.get_many(timeout=0))
            else:
                for o in objs:
                    q.put(o)
                for o in objs:
                    assert q.get(timeout=0) == o

    grew, blocks, n, took = _measure(pump, None, None, total, 1000)
    q.close()
    print(
        f"{ff.name} Queue {'many' if many else 'single'}: {n} objects in {took:.1f} s, "
        f"RSS {grew / 1024:+.0f} KiB, blocks {blocks:+d}"
    )
    assert grew < RSS_SLACK and blocks < BLOCKS_SLACK


def test_endpoints_and_queues_are_collected(ff, fifo):
    """Dropped without close(): the objects go away with their fds (no reference cycles)."""
    keeper = ff.Reader(fifo)
    before = settled_fds()
    gc.collect()
    gc.disable()
    try:
        for _ in range(300):
            ff.Reader(fifo)
            ff.Writer(fifo).put(b"x")
            ff.Writer(fifo, buffered=True).put(b"y")
            fastfifo.Queue._for_backend(ff.name, fifo)
        assert open_fds() == before  # freed by reference counting alone
    finally:
        gc.enable()
    keeper.close()
