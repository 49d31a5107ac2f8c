"""fastfifo.Queue under hostile use: threads, exhausted pipe pages, odd timeouts, signals,
huge objects.  (Issue 13 #7, #8, #9, #11; issue 14 #5.)"""

from __future__ import annotations

import errno
import fcntl
import math
import multiprocessing
import os
import signal
import sys
import threading
import time

import pytest
from helpers import BACKENDS, as_unprivileged, ff_queue

import fastfifo
import fastfifo._core_py  # imported now: the unprivileged children may not read the stdlib
import fastfifo.queues

LINUX = sys.platform.startswith("linux")
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_qsize_is_thread_safe(backend):
    """Issue 13 #7: with 15,000 waiting, 4 threads calling qsize() got 0, 1344 or 14976."""
    q = ff_queue(backend)
    q.put_many(range(15_000))
    seen: set[int] = set()
    errors = []

    def ask():
        try:
            for _ in range(12):
                seen.add(q.qsize())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and seen == {15_000}
    q.close()


# ------------------------------------------------------------------ exhausted pipe pages


def _exhaust_pipe_pages() -> tuple[int, int, int]:
    """A child process that holds 1 MiB pipes until the kernel refuses another: the user
    is then over /proc/sys/fs/pipe-user-pages-soft, so new pipes get 8 KiB and cannot
    grow.  Returns (its pid, how many it holds, a descriptor to close to let it go)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(ready_r)
        os.close(done_w)  # else it would never see the parent's end close
        held = []
        while True:
            r, w = os.pipe()
            held.append((r, w))
            if fcntl.fcntl(w, F_GETPIPE_SZ) == 8192:
                break  # over the soft limit: new pipes get two pages
            try:
                fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
            except PermissionError:
                pass  # too close to the limit for 1 MiB: the next pipes fill the rest
        os.write(ready_w, b"%d\n" % len(held))
        os.read(done_r, 1)  # until the parent closes its end
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    with os.fdopen(ready_r, "rb") as f:
        held = int(f.readline())
    return pid, held, done_w


def _count_under_exhaustion(backend):
    unbounded = ff_queue(backend)
    bounded = ff_queue(backend, maxsize=500)
    for q in (unbounded, bounded):
        q.put_many([b"m%03d" % i + b"." * 100 for i in range(400)])  # ~45 KB waiting
    hog, pipes_held, release = _exhaust_pipe_pages()
    try:
        r, w = os.pipe()  # proof: a new pipe is small and may not grow
        small = fcntl.fcntl(w, F_GETPIPE_SZ)
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, 65536)
            grows = True
        except PermissionError:
            grows = False
        os.close(r)
        os.close(w)
        out = {"pipes held": pipes_held, "new pipe": small, "grows": grows}
        out["qsize"] = [unbounded.qsize(), bounded.qsize()]
        put = 0
        try:
            while put < 1000:
                bounded.put_nowait(b"more")
                put += 1
        except fastfifo.Full:
            pass
        out["put under maxsize=500"] = put
        out["qsize after"] = bounded.qsize()
        # A process that opens the queue now gets a small private pipe: it cannot see all
        # of the ~45 KB waiting, and says so instead of answering wrong.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 9
            try:
                unbounded.qsize()
                code = 1
            except OSError as e:
                code = 0 if e.errno == errno.ENOBUFS and "pipe-user-pages-soft" in str(e) else 2
            try:
                bounded.put_nowait(b"over")  # cannot count: conservatively full
                code = code or 3
            except fastfifo.Full:
                pass
            os._exit(code)
        out["late opener"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    finally:
        os.close(release)
        os.waitpid(hog, 0)
    return out


@pytest.mark.skipif(not LINUX, reason="the per-user pipe quota is Linux's")
def test_qsize_and_maxsize_stay_right_when_pipe_pages_run_out(backend):
    """Issue 13 #8: with the user's pipe pages used up (by another process, for real),
    qsize() said 304 of 400 and maxsize=500 let 1000 more puts through."""
    out = as_unprivileged(lambda: _count_under_exhaustion(backend))
    assert isinstance(out, dict), out
    assert out["new pipe"] == 8192 and not out["grows"] and out["pipes held"] > 10, out
    assert out["qsize"] == [400, 400]
    assert out["put under maxsize=500"] == 100 and out["qsize after"] == 500
    assert out["late opener"] == 0, out


# ------------------------------------------------------------------ timeouts


def test_negative_timeouts_mean_do_not_wait_as_multiprocessing(backend):
    """Issue 13 #11: q.get(timeout=deadline - time.monotonic()) raised ValueError."""
    for q in (multiprocessing.get_context("fork").Queue(1), ff_queue(backend, maxsize=1)):
        t0 = time.monotonic()
        with pytest.raises(fastfifo.Empty.__mro__[1]):  # queue.Empty, for both
            q.get(timeout=-1)
        q.put("x", timeout=-5)  # room: put
        with pytest.raises(fastfifo.Full.__mro__[1]):  # queue.Full, at once
            q.put("y", timeout=-0.5)
        for _ in range(100):  # multiprocessing's feeder may take a moment
            try:
                assert q.get(timeout=-1) == "x"  # there: taken without waiting
                break
            except fastfifo.Empty.__mro__[1]:
                time.sleep(0.01)
        else:
            pytest.fail("never got x")
        assert time.monotonic() - t0 < 5
        q.close()


def test_nan_is_refused_and_inf_waits_for_ever(backend):
    q = ff_queue(backend, maxsize=1)
    unbounded = ff_queue(backend)
    for call in (
        lambda: q.get(timeout=math.nan),
        lambda: q.put(1, timeout=math.nan),
        lambda: unbounded.put(1, timeout=math.nan),  # refused, though it would not wait
        lambda: unbounded.put_many([1], timeout=math.nan),
        lambda: unbounded.get_many(timeout=math.nan),
    ):
        with pytest.raises(ValueError, match="NaN"):
            call()
    assert unbounded.empty()  # nothing was put
    unbounded.put("waiting")
    for call in (
        lambda: unbounded.get(timeout=math.nan),  # refused before anything is taken
        lambda: unbounded.get_many(timeout=math.nan),
    ):
        with pytest.raises(ValueError, match="NaN"):
            call()
    assert unbounded.get(timeout=-1) == "waiting"
    with pytest.raises(TypeError, match="timeout must be None or a number"):
        q.get(timeout="soon")
    for forever in (math.inf, 1e300, 1e13):
        got: list[float] = []
        t = threading.Thread(target=lambda f=forever, got=got: got.append(q.get(timeout=f)))
        t.start()
        t.join(0.2)
        assert t.is_alive()  # waits, does not fail at once
        q.put(forever)
        t.join(10)
        assert got == [forever]
        q.put("fill")  # maxsize=1: full now
        t = threading.Thread(target=lambda f=forever: q.put("next", timeout=f))
        t.start()
        t.join(0.2)
        assert t.is_alive()  # put(timeout=inf) waits for room too
        assert q.get(timeout=5) == "fill"
        t.join(10)
        assert not t.is_alive() and q.get(timeout=5) == "next"
    q.close()


def test_a_get_with_timeout_inf_waits_behind_another_thread_s_get(backend):
    """Issue 13 #9: with another thread inside, get(timeout=inf) raised Empty in 30 us."""
    q = ff_queue(backend)
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(q.get())),
        threading.Thread(target=lambda: got.append(q.get(timeout=math.inf))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(0.2)
        assert t.is_alive()
    q.put_many(["a", "b"])
    for t in threads:
        t.join(10)
    assert sorted(got) == ["a", "b"]
    q.close()


# ------------------------------------------------------------------ ending waits


class Interrupted(Exception):
    pass


def _raise(*_):
    raise Interrupted


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_a_signal_whose_handler_raises_ends_every_wait(backend):
    q = ff_queue(backend, maxsize=1)
    q.put("full")
    old = signal.signal(signal.SIGALRM, _raise)
    try:
        for wait in (
            lambda: q.put("more"),  # waiting for room under maxsize
            lambda: (q.get(), q.get()),  # waiting for a message
            lambda: q.get_many(timeout=math.inf),
        ):
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            t0 = time.monotonic()
            with pytest.raises(Interrupted):
                wait()
            assert time.monotonic() - t0 < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    q.put_nowait("still works")
    assert q.get(timeout=5) == "still works"
    q.close()


def test_close_from_another_thread_ends_a_put_waiting_for_room(backend):
    q = ff_queue(backend, maxsize=1)
    q.put("full")
    errors = []

    def blocked():
        try:
            q.put("more")
        except ValueError as e:
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    t.join(0.2)
    assert t.is_alive()
    q.close()
    t.join(10)
    assert not t.is_alive() and isinstance(errors[0], fastfifo.ClosedError)


# ------------------------------------------------------------------ sizes


def test_objects_of_any_size_that_fit_in_memory(backend):
    """Issue 14: objects above 64 MiB raised MessageTooLargeError; multiprocessing sent them."""
    q = ff_queue(backend, raw=True)
    big = bytes(range(256)) * ((65 << 20) // 256) + b"end"  # 65 MiB and 3 bytes
    q.put(big)  # one thread: the feeder holds what the pipe cannot
    assert q.get(timeout=120) == big
    q.close()


def test_max_message_size_still_refuses_what_is_larger(backend):
    q = ff_queue(backend, max_message_size=1000, raw=True)
    with pytest.raises(fastfifo.MessageTooLargeError, match="max_message_size=1000"):
        q.put(b"x" * 1001)
    q.put(b"x" * 1000)
    assert q.qsize() == 1
    assert q.get(timeout=5) == b"x" * 1000
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="max_message_size"):
            ff_queue(backend, max_message_size=bad)
    q.close()


def test_huge_max_messages_takes_what_is_there(backend):
    """Issue 13 #1's class: any max_messages >= 1 works (2**62, sys.maxsize, beyond)."""
    q = ff_queue(backend)
    for n in (2**62, sys.maxsize, 2**100):
        q.put_many(range(100))
        got = q.get_many(max_messages=n, timeout=5)
        while len(got) < 100:
            got += q.get_many(max_messages=n, timeout=5)
        assert got == list(range(100))
    for bad, kind in ((0, ValueError), (-5, ValueError), (True, TypeError), (2.0, TypeError)):
        with pytest.raises(kind):
            q.get_many(max_messages=bad)
    q.close()
