"""fastfifo.aio: asyncio endpoints over both backends, under the default loop and uvloop.

uvloop is part of the test extra: if it cannot be imported this module fails (it is
never skipped).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time

import pytest
import uvloop
from helpers import losses_logged

import fastfifo
from fastfifo import aio

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def run(request):
    """Run a coroutine to completion on a fresh loop of the parametrised kind."""

    def run(coro):
        loop = asyncio.new_event_loop() if request.param == "asyncio" else uvloop.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    return run


async def _yield(n: int = 1) -> None:
    """Let the loop run ``n`` iterations (a scheduling yield, not a timed wait)."""
    for _ in range(n):
        await asyncio.sleep(0)


# ---------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared"])
def test_thousand_producer_and_consumer_tasks(ff, fifo, run, shared):
    n = 1000

    async def main():
        async with (
            aio.Reader(ff.Reader(fifo, shared=shared)) as r,
            aio.Writer(ff.Writer(fifo)) as w,
        ):
            got: list[bytes] = []

            async def consumer():
                got.append(await r.get())

            async def producer(i):
                await w.put(b"task-%d" % i)

            # Consumers first: all 1000 wait on one descriptor before anything is sent.
            consumers = [asyncio.create_task(consumer()) for _ in range(n)]
            await _yield()
            await asyncio.wait_for(asyncio.gather(*consumers, *(producer(i) for i in range(n))), 30)
            return got

    got = run(main())
    assert sorted(got) == sorted(b"task-%d" % i for i in range(n))


def test_get_many_and_async_for(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo, stop_at_eof=True))
        with ff.Writer(fifo) as w:
            w.put_many([b"m%d" % i for i in range(50)])
            first = await r.get_many(max_messages=10)
            assert first == [b"m%d" % i for i in range(10)]
        # The writer has closed: async for ends at end of stream.
        rest = [m async for m in r]
        r.close()
        return first + rest

    assert run(main()) == [b"m%d" % i for i in range(50)]


@pytest.mark.parametrize("yields", [0, 1, 2, 3, 4])
def test_cancelled_get_loses_no_message(ff, fifo, run, yields):
    """Cancel a pending get at every point around the message's arrival."""

    async def main():
        r = aio.Reader(ff.Reader(fifo))
        with ff.Writer(fifo) as w:
            task = asyncio.create_task(r.get())
            await _yield(2)  # the get is now waiting on the descriptor
            assert not task.done()
            w.put(b"the message")
            await _yield(yields)
            task.cancel()
            try:
                early = await task
            except asyncio.CancelledError:
                early = None
            if early is None:
                # Cancelled: the same message is still there for the next get.
                assert await asyncio.wait_for(r.get(), 5) == b"the message"
            else:
                assert early == b"the message"
            with pytest.raises(fastfifo.Empty):
                r.get_nowait()
        r.close()
        return early

    early = run(main())
    if yields == 0:
        assert early is None  # this case is the "pending get cancelled" one


def test_timeouts_from_asyncio(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r.get(), 0.05)
        timeout = getattr(asyncio, "timeout", None)  # Python >= 3.11
        if timeout is not None:
            with pytest.raises(TimeoutError):
                async with timeout(0.05):
                    await r.get_many()
        with ff.Writer(fifo) as w:
            w.put(b"after the timeouts")
        assert await asyncio.wait_for(r.get(), 5) == b"after the timeouts"
        r.close()

    run(main())


def test_many_waiters_cancelled_at_random_lose_nothing(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo))
        w = aio.Writer(ff.Writer(fifo))
        got: list[bytes] = []

        async def consumer():
            got.append(await r.get())

        tasks = [asyncio.create_task(consumer()) for _ in range(300)]
        await _yield()
        for i in range(200):
            await w.put(b"%d" % i)
            if i % 2:
                tasks[i].cancel()  # some woken, some still queued
        await asyncio.gather(*tasks, return_exceptions=True)
        while True:
            try:
                got += r.get_many_nowait()
            except fastfifo.Empty:
                break
        r.close()
        w.close()
        return got

    assert sorted(run(main())) == sorted(b"%d" % i for i in range(200))


def _tick_while(loop, seconds):
    async def ticker():
        ticks, gap, last = 0, 0.0, loop.time()
        end = last + seconds
        while loop.time() < end:
            await asyncio.sleep(0.01)
            now = loop.time()
            gap, last = max(gap, now - last), now
            ticks += 1
        return ticks, gap

    return ticker()


async def _assert_waits_idly(task, seconds=0.3):
    """While ``task`` waits, the loop stays responsive and the process nearly idle."""
    cpu = time.process_time()
    ticks, gap = await _tick_while(asyncio.get_running_loop(), seconds)
    cpu = time.process_time() - cpu
    assert not task.done()
    assert ticks >= 5 and gap < 0.2, (ticks, gap)
    assert cpu < 0.15, f"waiting used {cpu:.3f} s of CPU in {seconds} s"


def test_loop_stays_responsive_and_idle_while_get_waits(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo, shared=True))
        task = asyncio.create_task(r.get())
        await _assert_waits_idly(task)
        with ff.Writer(fifo) as w:
            w.put(b"wake up")
        assert await asyncio.wait_for(task, 5) == b"wake up"
        r.close()

    run(main())


def test_shared_reader_waits_without_spinning_while_another_holds_the_claim(ff, fifo, run):
    """Readable but claimed by someone else: back off, stay responsive, then deliver."""

    async def main():
        r = aio.Reader(ff.Reader(fifo, shared=True))
        other = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        fcntl.flock(other, fcntl.LOCK_EX)  # another reader is mid-claim
        try:
            with ff.Writer(fifo) as w:
                w.put(b"contended")
            task = asyncio.create_task(r.get())
            await _assert_waits_idly(task)
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
        assert await asyncio.wait_for(task, 5) == b"contended"
        os.close(other)
        r.close()

    run(main())


def _large_writer(backend, fifo):
    from helpers import endpoints

    with endpoints(backend).Writer(fifo, pipe_size=65536) as w:
        w.put(b"L" * (1 << 20))  # 16 times the pipe: it waits for room part-way


def test_waiting_shared_reader_drops_a_dead_writers_partial_and_releases_the_claim(ff, fifo, run):
    """A writer dies mid-message while an aio shared reader waits for the rest of it."""
    import multiprocessing
    import signal
    import struct
    import termios

    r1 = aio.Reader(ff.Reader(fifo, shared=True, pipe_size=65536))
    child = multiprocessing.get_context("fork").Process(target=_large_writer, args=(ff.name, fifo))
    child.start()
    try:
        while struct.unpack("i", fcntl.ioctl(r1.fileno(), termios.FIONREAD, b"    "))[0] < 60_000:
            child.join(0.005)  # until the pipe is full and the writer waits for room
        os.kill(child.pid, signal.SIGSTOP)  # frozen mid-message, holding the writers' lock
        with pytest.raises(fastfifo.Empty):
            r1.get_nowait()  # r1 takes the fragments so far and now holds the claim
    except BaseException:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        raise

    async def main():
        waiting = asyncio.create_task(r1.get())
        await _yield(2)  # r1 waits for the rest of the message...
        os.kill(child.pid, signal.SIGKILL)  # ...whose writer now dies; nothing more arrives
        child.join()
        while r1.reader.dropped_messages == 0:  # only the periodic re-check can notice
            await asyncio.sleep(0.01)  # polling a counter (main() has a 10 s limit)
        assert not waiting.done()
        waiting.cancel()
        with ff.Writer(fifo) as w:
            w.put(b"after")
        with ff.Reader(fifo, shared=True) as r2:
            return r2.get(timeout=5)  # the claim lock was released: another reader can claim

    with losses_logged("dropped"):
        assert run(asyncio.wait_for(main(), 10)) == b"after"
    r1.close()


def test_close_ends_waiting_gets_and_async_for(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo))
        getter = asyncio.create_task(r.get())

        async def loop_over():
            return [m async for m in r]

        looper = asyncio.create_task(loop_over())
        await _yield(2)
        r.close()
        with pytest.raises(fastfifo.ClosedError):
            await asyncio.wait_for(getter, 5)
        assert await asyncio.wait_for(looper, 5) == []

    run(main())


# ---------------------------------------------------------------- writers


def test_write_backlog_and_drain_give_backpressure_in_order(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo, pipe_size=65536))
        w = aio.Writer(ff.Writer(fifo, pipe_size=65536), high_water=100_000)
        msgs = [b"%06d" % i + b"." * 994 for i in range(3000)]  # 3 MB: far more than the pipe
        for m in msgs:
            w.write(m)
        assert w.backlog > 100_000
        drain = asyncio.create_task(w.drain())
        await _yield(20)
        assert not drain.done()  # nobody reads: the producer is held back

        async def consume():
            got: list[bytes] = []
            while len(got) < len(msgs):
                got += await r.get_many()
            return got

        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(drain, 10)
        assert w.backlog <= w.low_water
        await asyncio.wait_for(w.flush(), 10)
        assert w.backlog == 0
        got = await asyncio.wait_for(consumer, 10)
        await w.aclose()
        r.close()
        return got, msgs

    got, msgs = run(main())
    assert got == msgs


# ---------------------------------------------------------------- linger (Writer(linger=))


def test_aclose_lingers_in_the_loop_so_a_reader_in_the_loop_takes_the_rest(ff, fifo, run):
    # A blocking linger inside aclose() would hold the loop, so the reader below (same
    # loop) could never take the message: aclose() would time out with it in the pipe.
    async def main():
        r = aio.Reader(ff.Reader(fifo))
        w = await aio.open_writer(fifo, linger=5.0)
        await w.put(b"the last job")
        closing = asyncio.create_task(w.aclose())
        await _yield(5)
        assert not closing.done() and not w.closed  # lingering, and the loop runs
        assert await asyncio.wait_for(r.get(), 10) == b"the last job"
        await asyncio.wait_for(closing, 10)  # the pipe is empty: no TimeoutError
        assert w.closed
        r.close()

    run(main())


def test_aclose_linger_that_runs_out_raises_timeout_naming_the_path(ff, fifo, run):
    async def main():
        with ff.Reader(fifo, stop_at_eof=True) as idle:  # holds the FIFO, never reads
            w = aio.Writer(ff.Writer(fifo, linger=0.05))
            await w.put(b"x" * 92)  # 100 bytes with the header
            with pytest.raises(TimeoutError) as info:
                await w.aclose()
            assert w.closed  # closed all the same
            assert info.value.filename == fifo
            assert "100 bytes were still in the pipe" in info.value.strerror
            assert idle.get(timeout=5) == b"x" * 92

    run(main())


def test_close_does_not_linger(ff, fifo, run):
    # "close() closes at once": lingering there would block the loop.
    async def main():
        with ff.Reader(fifo, stop_at_eof=True) as idle:  # holds the FIFO, reads after
            w = aio.Writer(ff.Writer(fifo, linger=5.0))
            await w.put(b"stays")
            w.close()  # no TimeoutError: it did not wait for the pipe to empty
            assert w.closed and idle.get(timeout=5) == b"stays"

    run(main())


def test_cancelled_put_waiting_for_room_is_not_sent(ff, fifo, run):
    async def main():
        r = aio.Reader(ff.Reader(fifo, pipe_size=65536))
        w = aio.Writer(ff.Writer(fifo, pipe_size=65536))
        sent = []
        for m in (b"f" * 500, b""):  # fill the pipe up to its last byte
            with pytest.raises(fastfifo.Full):
                while True:
                    w.put_nowait(m)
                    sent.append(m)
        task = asyncio.create_task(w.put(b"CANCELLED"))
        await _yield(3)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert w.backlog == 0
        w.write(b"after")  # queued behind nothing: the withdrawn message is gone
        got: list[bytes] = []
        while len(got) < len(sent) + 1:
            got += await r.get_many()
        assert got == [*sent, b"after"]
        await w.flush()
        w.close()
        r.close()

    run(main())


def test_large_messages_in_order_without_blocking_the_loop(ff, fifo, run):
    big = os.urandom(3 << 20)  # three times the pipe

    async def main():
        loop = asyncio.get_running_loop()
        r = aio.Reader(ff.Reader(fifo))
        w = aio.Writer(ff.Writer(fifo))
        w.write(b"before")
        put_big = asyncio.create_task(w.put(big))
        await _yield()  # the put has begun: what is written next goes after it
        w.write(b"after")
        ticks, gap = await _tick_while(loop, 0.2)  # nobody reads yet: the loop still runs
        assert ticks >= 3 and gap < 0.15, (ticks, gap)
        assert not put_big.done()
        put_big.cancel()  # already sending: it completes anyway, never half-written
        got = [await r.get() for _ in range(3)]
        with pytest.raises(asyncio.CancelledError):
            await put_big
        await w.put(big[:10_000])
        got.append(await r.get())
        await w.aclose()
        r.close()
        return got

    with losses_logged(count=0):  # nothing half-sent, so nothing dropped
        got = run(main())
    assert got == [b"before", big, b"after", big[:10_000]]


def test_broken_pipe_reaches_the_writer(ff, fifo, run):
    async def main():
        reader = ff.Reader(fifo, pipe_size=65536)
        w = aio.Writer(ff.Writer(fifo, pipe_size=65536))
        for _ in range(200):
            w.write(b"b" * 1000)  # more than the pipe: a backlog waits
        assert w.backlog
        reader.close()  # the only reader goes away
        with pytest.raises(BrokenPipeError):
            await asyncio.wait_for(w.flush(), 5)
        with pytest.raises(BrokenPipeError):
            await w.put(b"more")
        w.close()

    run(main())


def test_open_writer_waits_for_a_reader_without_blocking_the_loop(ff, fifo, run):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await aio.open_writer(fifo, open_timeout=0.05)
        opening = asyncio.create_task(aio.open_writer(fifo))
        ticks, _ = await _tick_while(loop, 0.1)
        assert ticks >= 3 and not opening.done()
        r = aio.Reader(ff.Reader(fifo))
        w = await asyncio.wait_for(opening, 5)
        await w.put(b"hi")
        assert await r.get() == b"hi"
        await w.aclose()
        r.close()

    run(main())


# ---------------------------------------------------------------- processes and queues


def _child_reader(fifo, backend_loop, out_path):
    """A shared reader in a child process; stops at its first empty message."""
    from helpers import endpoints

    ns = endpoints(os.environ.get("FF_TEST_BACKEND", "python"))

    async def consume():
        r = aio.Reader(ns.Reader(fifo, shared=True))
        got = []
        w = ns.Writer(fifo)
        while True:
            batch = await r.get_many(max_messages=7)
            stop = False
            for m in batch:
                if m == b"":
                    if stop:
                        w.put(b"")  # another reader's stop message: hand it back
                    stop = True
                else:
                    got.append(m)
            if stop:
                break
        w.close()
        r.close()
        return got

    loop = asyncio.new_event_loop() if backend_loop == "asyncio" else uvloop.new_event_loop()
    try:
        got = loop.run_until_complete(consume())
    finally:
        loop.close()
    with open(out_path, "wb") as f:
        f.write(b"\n".join(got))


def test_shared_async_readers_in_processes_exactly_once(ff, fifo, tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    os.environ["FF_TEST_BACKEND"] = ff.name
    try:
        keeper = ff.Reader(fifo, shared=True)  # holds the FIFO open; never reads
        outs = [str(tmp_path / f"r{i}") for i in range(3)]
        procs = [
            ctx.Process(target=_child_reader, args=(fifo, LOOPS[i % 2], outs[i])) for i in range(3)
        ]
        for p in procs:
            p.start()
        n = 6000
        with ff.Writer(fifo) as w:
            for i in range(0, n, 100):
                w.put_many([b"msg-%d" % j for j in range(i, i + 100)])
            w.put(b"z" * 50_000)  # a fragmented message among them
            w.put_many([b""] * 3)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        keeper.close()
    finally:
        del os.environ["FF_TEST_BACKEND"]
    got = []
    for o in outs:
        with open(o, "rb") as f:
            data = f.read()
        got += data.split(b"\n") if data else []
    expected = [b"msg-%d" % j for j in range(n)] + [b"z" * 50_000]
    assert sorted(got) == sorted(expected)


def _double_worker(jobs, results):
    for x in iter(jobs.get, None):
        results.put((x, x * 2))


def test_async_queue_with_a_worker_process(run):
    import multiprocessing

    jobs, results = fastfifo.Queue(), fastfifo.Queue()
    worker = multiprocessing.get_context("fork").Process(
        target=_double_worker, args=(jobs, results)
    )
    worker.start()

    async def main():
        ajobs, aresults = aio.Queue(jobs), aio.Queue(results)
        await asyncio.gather(*(ajobs.put(i) for i in range(300)))
        got = []
        while len(got) < 300:
            got += await asyncio.wait_for(aresults.get_many(), 10)
        await ajobs.put(None)
        await ajobs.aclose()
        aresults.close()
        return got

    try:
        got = run(main())
    finally:
        worker.join(30)
    assert worker.exitcode == 0
    assert sorted(got) == [(i, 2 * i) for i in range(300)]


def _loads_refusing_poison(data: bytes) -> object:
    import pickle

    obj = pickle.loads(data)
    if obj == "poison":
        raise ValueError("cannot decode")
    return obj


def test_async_queue_keeps_the_messages_after_a_failed_loads(run):
    # The blocking and async get paths share what a failed loads() left behind: the
    # objects before the bad message, then its error, then the ones after it, in order.
    q = fastfifo.Queue(loads=_loads_refusing_poison)
    q.put_many([1, 2, "poison", 4, 5, 6])

    async def main():
        aq = aio.Queue(q)
        first = await asyncio.wait_for(aq.get_many(), 10)
        with pytest.raises(ValueError, match="cannot decode"):
            await aq.get()
        rest = [await asyncio.wait_for(aq.get(), 10), aq.get_nowait()]
        return first, rest, q.get(timeout=5)

    try:
        assert run(main()) == ([1, 2], [4, 5], 6)
    finally:
        q.close()
