"""End of stream for stop_at_eof readers, waiting in poll() and in select().

macOS's poll() and kqueue never report that the last writer of a FIFO left, so there a
stop_at_eof Reader waits in select(), which does (fastfifo._endpoints._SELECT_FOR_EOF).
Linux reports it both ways, so every test here runs both wait paths on both cores: the
select() path is the one macOS uses, exercised here on real FIFOs.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time

import pytest

import fastfifo
from fastfifo import _endpoints


# macOS's poll() cannot see the end of the stream, so only Linux runs the poll() path here.
@pytest.fixture(params=["poll", "select"] if sys.platform.startswith("linux") else ["select"])
def wait(request, monkeypatch):
    monkeypatch.setattr(_endpoints, "_SELECT_FOR_EOF", request.param == "select")
    return request.param


def open_reader(ff, fifo, wait, **kw):
    r = ff.Reader(fifo, stop_at_eof=True, **kw)
    assert r._waits_in_select == (wait == "select" and not kw.get("shared", False))
    return r


def test_messages_then_eof_like_cat(ff, fifo, wait):
    with open_reader(ff, fifo, wait) as r:
        with ff.Writer(fifo) as w:
            w.put_many([b"one", b"two"])
        assert r.get(timeout=5) == b"one"
        assert r.get(timeout=5) == b"two"
        with pytest.raises(EOFError, match="every writer"):
            r.get(timeout=5)


def test_a_reader_that_never_met_a_writer_waits(ff, fifo, wait):
    with open_reader(ff, fifo, wait) as r:
        t0 = time.monotonic()
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.3)
        assert time.monotonic() - t0 >= 0.3


def test_a_writer_that_leaves_without_writing_ends_the_stream(ff, fifo, wait):
    with open_reader(ff, fifo, wait) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        with pytest.raises(EOFError):
            r.get(timeout=5)


def test_a_blocked_get_wakes_when_the_last_writer_leaves(ff, fifo, wait):
    # The case macOS's poll() misses: the reader is asleep when the writer goes. Whether
    # the thread is already waiting when close() runs or not, the result must be EOF.
    with open_reader(ff, fifo, wait) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        outcome: list[BaseException | bytes] = []

        def reader() -> None:
            try:
                outcome.append(r.get(timeout=30))
            except BaseException as e:
                outcome.append(e)

        t = threading.Thread(target=reader)
        t.start()
        os.close(fd)
        t.join(30)
        assert not t.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], EOFError), outcome


def test_waiting_does_not_spin(ff, fifo, wait):
    with open_reader(ff, fifo, wait) as r:
        with ff.Writer(fifo) as w:
            w.put(b"x")
            assert r.get(timeout=5) == b"x"
            cpu0 = time.process_time()
            with pytest.raises(fastfifo.Empty):
                r.get(timeout=0.5)  # the writer is still there: nothing to read, no EOF
            assert time.process_time() - cpu0 < 0.1


def test_close_from_another_thread_wakes_the_wait(ff, fifo, wait):
    with open_reader(ff, fifo, wait) as r:
        outcome: list[BaseException] = []

        def reader() -> None:
            try:
                r.get(timeout=30)
            except BaseException as e:
                outcome.append(e)

        t = threading.Thread(target=reader)
        t.start()
        r.close()
        t.join(30)
        assert not t.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], fastfifo.ClosedError), outcome


def test_a_shell_writer_then_eof(ff, fifo, wait):
    with open_reader(ff, fifo, wait, framing="lines") as r:
        subprocess.run(["sh", "-c", f"printf 'a\\nb\\nlast' > '{fifo}'"], check=True, timeout=30)
        assert list(r) == [b"a", b"b", b"last"]


def test_shared_readers_keep_poll(ff, fifo, wait):
    with open_reader(ff, fifo, wait, shared=True) as r, ff.Writer(fifo) as w:
        w.put(b"s")
        assert r.get(timeout=5) == b"s"


def test_descriptors_above_fd_setsize_fall_back_to_poll(ff, fifo, wait):
    # select() cannot take an fd >= FD_SETSIZE (1024): writing one into an fd_set would
    # corrupt memory. Such a Reader must fall back to poll() and still work.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1100
    if hard != resource.RLIM_INFINITY and hard < want + 50:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low to open fd {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want + 50), hard))
    fillers = []
    try:
        while True:  # take every free number below `want`, so the Reader's fds land above
            fd = os.open(os.devnull, os.O_RDONLY)
            fillers.append(fd)
            if fd >= want:
                break
        with open_reader(ff, fifo, wait) as r:
            assert r.fileno() >= 1024
            with ff.Writer(fifo) as w:
                w.put(b"high")
            assert r.get(timeout=5) == b"high"
            assert not r._waits_in_select  # it fell back at the first wait
            with pytest.raises(EOFError):
                r.get(timeout=5)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_async_reader_ends_where_the_event_loop_cannot_see_the_end(ff, fifo, wait):
    # On macOS the event loop (kqueue) is never told that the last writer left, so a
    # select()-mode aio Reader also retries on a tick (aio.EOF_TICK). Here the loop's
    # watch on the descriptor is switched off, as blind as kqueue: only the tick can end
    # the stream. (Whether the consumer is already waiting when the writer closes or
    # not, the stream must end after b"first".)
    import asyncio

    from fastfifo import aio

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        if wait == "select":
            loop.add_reader = lambda *args: None  # type: ignore[method-assign]
            loop.remove_reader = lambda fd: False  # type: ignore[method-assign]
        r = aio.Reader(open_reader(ff, fifo, wait))
        got: list[bytes] = []

        async def consume() -> None:
            async for m in r:
                got.append(m)

        with ff.Writer(fifo) as w:
            w.put(b"first")
            task = asyncio.create_task(consume())
            await asyncio.sleep(0)  # let the consumer run to its first wait
        await asyncio.wait_for(task, 10)
        r.close()
        return got

    assert asyncio.run(main()) == [b"first"]
