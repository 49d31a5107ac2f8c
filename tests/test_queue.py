"""fastfifo.Queue: the multiprocessing.Queue behaviours users rely on, and its own.

Tests taking ``make_queue`` run against ``multiprocessing.Queue`` and against
``fastfifo.Queue`` over each backend: where both run, the semantics match.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import multiprocessing.queues
import os
import pickle
import queue
import random
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from helpers import (
    BACKENDS,
    catch_ctrl_c_and_go_on,
    check_two_consumers,
    collect_losses,
    ctrl_c_again_and_again,
    ff_queue,
    losses_logged,
    stop_in_order,
)

import fastfifo
import fastfifo._queue_channel
from fastfifo import queues as ffqueue

KINDS = ["multiprocessing", *(f"fastfifo-{b}" for b in BACKENDS)]
FF_KINDS = [f"fastfifo-{b}" for b in BACKENDS]


def _new(kind: str, maxsize: int = 0, **options):
    if kind == "multiprocessing":
        return multiprocessing.Queue(maxsize)
    return ff_queue(kind.split("-")[1], maxsize=maxsize, **options)


@pytest.fixture(params=KINDS)
def make_queue(request):
    made = []

    def make(maxsize: int = 0, **options):
        q = _new(request.param, maxsize, **options)
        made.append(q)
        return q

    make.kind = request.param
    yield make
    for q in made:
        q.close()
        if isinstance(q, multiprocessing.queues.Queue):
            q.cancel_join_thread()  # never hang at exit on a feeder with unread data


@pytest.fixture(params=FF_KINDS)
def ffq(request):
    made = []

    def make(*args, **options):
        q = ff_queue(request.param.split("-")[1], *args, **options)
        made.append(q)
        return q

    make.backend = request.param.split("-")[1]
    yield make
    for q in made:
        q.close()


# ---------------------------------------------------------------- shared semantics


def test_order_and_object_types_survive(make_queue):
    q = make_queue()
    objs = [
        {"id": i, "tags": ["a", "b"], "score": i / 3} if i % 2 else (i, f"s{i}", None)
        for i in range(200)
    ]
    objs += [b"bytes", 3.5, {"nested": {"x": [1, 2, (3, 4)]}}, frozenset({1, 2})]
    for o in objs:
        q.put(o)
    assert [q.get(timeout=5) for _ in objs] == objs


def test_get_with_timeout_raises_queue_empty_after_the_timeout(make_queue):
    q = make_queue()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert 0.19 <= time.monotonic() - t0 < 2.0


def test_nonblocking_get_never_waits_and_ignores_timeout(make_queue):
    q = make_queue()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False, 10)  # block=False: the timeout is ignored
    with pytest.raises(queue.Empty):
        q.get(block=False)
    assert time.monotonic() - t0 < 1.0


def test_get_with_timeout_none_blocks_until_a_put(make_queue):
    q = make_queue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get()))  # block=True, timeout=None
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # still waiting: no default timeout
    q.put({"late": True})
    t.join(10)
    assert got == [{"late": True}]


def test_maxsize_full_put_nowait_and_put_timeout(make_queue):
    q = make_queue(maxsize=2)
    assert not q.full()
    q.put(1)
    q.put({"two": 2})
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, False, 10)  # block=False: the timeout is ignored
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.2)
    assert 0.19 <= time.monotonic() - t0 < 2.0
    assert q.qsize() == 2
    assert q.get(timeout=5) == 1
    q.put_nowait(3)
    assert [q.get(timeout=5), q.get(timeout=5)] == [{"two": 2}, 3]


def test_blocking_put_waits_for_room_then_completes(make_queue):
    q = make_queue(maxsize=1)
    q.put("first")
    done = threading.Event()

    def producer():
        q.put("second")  # block=True, timeout=None
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.3)  # the queue is full: the put waits
    assert q.get(timeout=5) == "first"
    assert done.wait(10)
    t.join()
    assert q.get(timeout=5) == "second"


def test_qsize_and_empty(make_queue):
    q = make_queue()
    assert q.empty()
    assert q.qsize() == 0
    for i in range(5):
        q.put(i)
    assert q.qsize() == 5
    assert q.get(timeout=5) == 0
    assert q.qsize() == 4
    for _ in range(4):
        q.get(timeout=5)
    assert q.qsize() == 0
    assert q.empty()


def test_close_then_put_and_get_raise_value_error(make_queue):
    q = make_queue()
    q.put(1)
    q.close()
    with pytest.raises(ValueError):
        q.put(2)
    with pytest.raises(ValueError):
        q.get(timeout=1)
    q.join_thread()
    q.close()  # idempotent


def test_after_close_qsize_full_and_empty_raise_closed_error(ffq):
    """multiprocessing.Queue still answers qsize()/full() after close() (its semaphore
    lives on) and raises OSError from empty(); here every call but close() and
    join_thread() raises ClosedError (a ValueError), as put and get do."""
    q = ffq(maxsize=3)
    q.put(1)
    q.close()
    for call in (q.qsize, q.full, q.empty):
        with pytest.raises(fastfifo.ClosedError, match="is closed"):
            call()
    q.join_thread()


def test_full_says_whether_the_put_waited(ffq):
    q = ffq(maxsize=1)
    q.put(1)
    with pytest.raises(
        fastfifo.Full,
        match=r"is full \(maxsize=1 objects\) and this put "
        r"does not wait; nothing was put",
    ):
        q.put_nowait(2)
    with pytest.raises(fastfifo.Full, match=r"held maxsize=1 objects for 0.05 s"):
        q.put(2, timeout=0.05)
    with pytest.raises(fastfifo.Full, match=r"does not wait; 0 of 2 objects were put"):
        q.put_many([2, 3], block=False)
    q.close()
    q.join_thread()


def test_join_thread_is_only_for_a_closed_queue(make_queue):
    q = make_queue()
    q.put(1)
    with pytest.raises(AssertionError):
        q.join_thread()
    q.cancel_join_thread()
    q.close()
    q.join_thread()


def test_large_objects_arrive_whole(make_queue):
    q = make_queue()
    big = os.urandom(3 << 20)  # larger than the pipe: the put waits for the reader
    objs = [big, {"small": 1}, list(range(20_000)), b"x" * 5000]
    t = threading.Thread(target=lambda: [q.put(o) for o in objs])
    t.start()
    got = [q.get(timeout=30) for _ in objs]
    t.join()
    assert got == objs


def test_threads_put_and_get_concurrently(make_queue):
    q = make_queue()
    n, threads = 500, 4
    out: list = []
    lock = threading.Lock()

    def producer(k):
        for i in range(n):
            q.put((k, i))

    def consumer():
        for _ in range(n):
            item = q.get(timeout=30)
            with lock:
                out.append(item)

    ts = [threading.Thread(target=producer, args=(k,)) for k in range(threads)]
    ts += [threading.Thread(target=consumer) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted(out) == [(k, i) for k in range(threads) for i in range(n)]


# ---------------------------------------------------------------- fastfifo only


def test_put_writes_at_once_while_the_pipe_has_room_no_feeder_thread(ffq):
    q = ffq()
    threads = threading.active_count()
    q.put({"now": 1})
    q.put(b"L" * 50_000)  # above one atomic write, and there is room: written at once too
    assert not q.empty()
    assert q.qsize() == 2
    assert q.get_nowait() == {"now": 1}  # in the pipe already: no feeder to wait for
    assert q.get_nowait() == b"L" * 50_000
    assert threading.active_count() == threads


def test_pickling_error_is_raised_by_put_and_nothing_is_sent(ffq):
    q = ffq()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put(lambda: 1)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put_many([1, threading.Lock(), 3])  # checked before anything is written
    assert q.empty()
    q.put("still fine")
    assert q.get_nowait() == "still fine"


def test_put_many_and_get_many(ffq):
    q = ffq()
    objs = [{"i": i} for i in range(2500)] + [b"y" * 10_000]
    t = threading.Thread(target=q.put_many, args=(objs,))
    t.start()
    got: list = []
    while len(got) < len(objs):
        batch = q.get_many(timeout=10, max_messages=700)
        assert 1 <= len(batch) <= 700
        got += batch
    t.join()
    assert got == objs
    with pytest.raises(fastfifo.Empty):
        q.get_many_nowait()
    fresh = ffq()  # (on q, the feeder may still be finishing: it would write these later)
    fresh.put_many_nowait([1, 2])
    assert fresh.get_many(block=False) == [1, 2]


def _bad_loads(data):
    obj = pickle.loads(data)
    if obj == "poison":
        raise ValueError("cannot decode")
    return obj


def test_get_many_keeps_the_messages_after_a_failed_loads(ffq):
    q = ffq(loads=_bad_loads)
    q.put_many([1, 2, "poison", 4, 5])
    assert q.get_many(timeout=5) == [1, 2]
    with pytest.raises(ValueError, match="cannot decode"):
        q.get_many(timeout=5)
    assert q.get_many(timeout=5) == [4, 5]
    q.put_many(["poison", 6])
    with pytest.raises(ValueError):
        q.get_many(timeout=5)
    assert q.get(timeout=5) == 6


def test_a_fork_child_does_not_deliver_what_a_failed_loads_left_to_its_parent(ffq):
    q = ffq(loads=_bad_loads)
    q.put_many([1, "poison", 3])
    assert q.get_many(timeout=5) == [1]  # "poison" failed: its error and 3 wait here
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            q.get(timeout=0.2)
        except fastfifo.Empty:
            code = 0  # nothing for the child: the stash was the parent's
        except BaseException:
            code = 2
        os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    with pytest.raises(ValueError, match="cannot decode"):
        q.get(timeout=5)
    assert q.get(timeout=5) == 3


def test_raw_bytes_and_custom_serialisers(ffq):
    raw = ffq(raw=True)
    raw.put(b"as is")
    raw.put(bytearray(b"ba"))
    raw.put(memoryview(b"mv"))
    assert raw.get_many(timeout=5) == [b"as is", b"ba", b"mv"]
    with pytest.raises(ValueError):
        ffq(raw=True, dumps=json.dumps)
    js = ffq(dumps=lambda o: json.dumps(o).encode(), loads=json.loads)
    js.put({"a": [1, 2]})
    assert js.get(timeout=5) == {"a": [1, 2]}
    text = ffq(dumps=json.dumps, loads=json.loads)  # dumps returns str: refused, nothing put
    with pytest.raises(TypeError, match=r"dumps .* must return a bytes-like object, not str"):
        text.put({"a": 1})
    with pytest.raises(TypeError, match="raw=True queues take a bytes-like object, not str"):
        raw.put("text")
    assert text.empty() and raw.empty()


def test_first_argument_is_the_path_not_maxsize():
    with pytest.raises(TypeError, match="maxsize=10"):
        fastfifo.Queue(10)


def test_a_private_queue_is_a_nameless_0600_fifo_that_leaves_nothing_behind(ffq):
    q = ffq()
    assert q.path is None
    made_as = repr(q).split("made as ")[1].split("'")[1]  # where it was created
    assert not os.path.exists(os.path.dirname(made_as))  # unlinked, its directory too
    st = os.stat(f"/proc/self/fd/{q.fileno()}")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_nlink == 0  # no name anywhere: the kernel frees it with the last fd
    q.put("x")
    assert q.get(timeout=5) == "x"


def test_given_path_is_created_and_kept(tmp_path):
    path = str(tmp_path / "jobs")
    q = fastfifo.Queue(path)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    q.close()
    del q
    gc.collect()
    assert os.path.exists(path)
    with pytest.raises(FileNotFoundError):
        fastfifo.Queue(str(tmp_path / "missing"), create=False)


_EXIT_SCRIPT = """
import os, sys, fastfifo
q = fastfifo.Queue()
q.put("x")
pid = os.fork()
if pid == 0:
    q.put("from child")
    del q
    import gc; gc.collect()
    sys.exit(0)          # a normal exit: atexit runs in the child too
os.waitpid(pid, 0)
assert q.get(timeout=5) == "x" and q.get(timeout=5) == "from child"
print("ok", flush=True)
"""


def test_a_child_that_drops_its_copy_and_exits_leaves_the_parents_queue_working():
    out = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok"]


def test_unrelated_processes_share_a_queue_by_path(ffq, tmp_path):
    path = str(tmp_path / "shared-q")
    q = ffq(path)
    code = (
        f"import fastfifo; q = fastfifo.Queue._for_backend({ffq.backend!r}, {path!r}); "
        "q.put_many([{'from': 'other', 'i': i} for i in range(100)]); q.put(('end',))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    # The other process has exited: the messages live on in the pipe we hold open.
    got = [q.get(timeout=5) for _ in range(101)]
    assert got == [{"from": "other", "i": i} for i in range(100)] + [("end",)]


def test_close_wakes_a_get_blocked_in_another_thread(ffq):
    q = ffq()
    errors = []

    def blocked():
        try:
            q.get()
        except ValueError as e:
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    t.join(0.2)
    assert t.is_alive()
    q.close()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(errors[0], fastfifo.ClosedError)


def test_queue_needs_no_fastfifo_aio():
    """``import fastfifo`` may leave ``fastfifo.aio`` (and asyncio) unimported: Queue must
    not lean on it (here it is an empty module, so any use of it fails)."""
    code = (
        "import sys, types; sys.modules['fastfifo.aio'] = types.ModuleType('fastfifo.aio'); "
        "import fastfifo; q = fastfifo.Queue(); q.put({'n': 1}); "
        "assert q.get(timeout=5) == {'n': 1}; q.close(); "
        "assert 'asyncio' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def test_pickle_round_trip_shares_the_same_fifo(ffq):
    q = ffq()
    twin = pickle.loads(pickle.dumps(q))
    assert twin.path == q.path and twin.maxsize == q.maxsize
    twin.put("via twin")
    assert q.get(timeout=5) == "via twin"
    twin.close()
    q.close()
    with pytest.raises(ValueError):
        pickle.dumps(q)


def _square_into(args):
    q, i = args
    q.put((i, i * i))
    return os.getpid()


def test_queue_can_be_sent_to_pool_workers(ffq):
    q = ffq()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_square_into, [(q, i) for i in range(6)])
    assert sorted(q.get(timeout=10) for _ in range(6)) == [(i, i * i) for i in range(6)]


def test_maxsize_put_many_puts_a_prefix_then_full(ffq):
    q = ffq(maxsize=3)
    with pytest.raises(fastfifo.Full) as info:
        q.put_many(range(5), timeout=0.1)
    assert info.value.sent == 3
    assert q.get_many(timeout=5) == [0, 1, 2]


def test_an_unbounded_queue_is_never_full_even_when_its_pipe_is(ffq):
    q = ffq(pipe_size=65536, raw=True)
    for _ in range(300):  # 300 KB: more than four times the pipe
        q.put_nowait(b"z" * 1000)
    assert not q.full()
    assert q.qsize() == 300  # what the feeder holds counts (multiprocessing's does too)
    assert not q.empty()
    assert [q.get(timeout=5) for _ in range(300)] == [b"z" * 1000] * 300


def test_a_large_put_that_does_not_fit_waits_whole_in_the_feeder(ffq):
    q = ffq(pipe_size=65536, raw=True)
    q.put(b"a" * 40_000)  # fragments; leaves less than 30 KB of room
    q.put_nowait(b"b" * 40_000)  # no room for all of it: none of it is written now
    q.put(b"c")  # and what follows waits behind it
    with losses_logged(count=0):  # no message dropped as incomplete: nothing half-sent
        assert q.get(timeout=5) == b"a" * 40_000
        assert q.get(timeout=5) == b"b" * 40_000
        assert q.get(timeout=5) == b"c"
        with pytest.raises(fastfifo.Empty):
            q.get(timeout=0.1)


def test_without_tee_qsize_refuses_and_maxsize_estimates(ffq, monkeypatch):
    monkeypatch.setattr(ffqueue, "CAN_PEEK", False)
    q = ffq(maxsize=2)
    with pytest.raises(NotImplementedError):
        q.qsize()
    q.put("a")
    q.put("b")
    with pytest.raises(fastfifo.Full):
        q.put_nowait("c")
    assert q.get(timeout=5) == "a"
    q.put_nowait("c")


def test_fork_child_reopens_its_own_endpoints(ffq):
    q = ffq(pipe_size=65536)
    q.put("before")
    assert q.get(timeout=5) == "before"  # the parent's reader and writer are open
    q.put("for child")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if q.get(timeout=5) == "for child" else 2
            q.put(("child", 1))
            q.put(b"c" * 20_000)  # a fragmented message: needs a Writer of its own
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)  # the parent reads only once the child is done
    assert os.waitstatus_to_exitcode(status) == 0
    assert q.get(timeout=5) == ("child", 1)
    assert q.get(timeout=5) == b"c" * 20_000
    # The child left the parent's channel intact: puts, gets and the feeder all work.
    q.put_many([b"x" * 1000] * 200)  # three times the pipe: the rest goes to the feeder
    assert [q.get(timeout=5) for _ in range(200)] == [b"x" * 1000] * 200
    with pytest.raises(fastfifo.Empty):
        q.get(timeout=0.05)


def _drain_into(q, results, n):
    results.put([q.get(timeout=10) for _ in range(n)])


def test_contents_survive_the_parent_closing_before_a_spawned_child_opens(ffq):
    q, results = ffq(), ffq()
    q.put_many(range(10))
    p = multiprocessing.get_context("spawn").Process(target=_drain_into, args=(q, results, 10))
    p.start()
    q.close()  # the parent's last fd: the pipe lives on in the child's inherited anchor
    assert results.get(timeout=30) == list(range(10))
    p.join(30)
    assert p.exitcode == 0


# ---------------------------------------------------------------- 3 producers, 3 consumers

PER_PRODUCER = 1500


def _producer(q, wid):
    for i in range(PER_PRODUCER):
        if i % 300 == 7:
            q.put({"w": wid, "i": i, "pad": b"p" * 20_000})  # fragmented: above the atomic size
        elif i % 2:
            q.put((wid, i))
        else:
            q.put({"w": wid, "i": i})
    q.put_many([(wid, -k) for k in range(1, 51)])


def _consumer(q, results, cid):
    got = []
    n = 0
    while True:
        n += 1
        batch = [q.get()] if n % 2 else q.get_many(max_messages=n % 17 + 1)
        stop = False
        for item in batch:
            if item is None:
                if stop:
                    q.put(None)  # another consumer's stop signal: hand it back
                stop = True
            else:
                got.append(item if isinstance(item, tuple) else (item["w"], item["i"]))
        if stop:
            break
    results.put((cid, got))


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_three_producers_three_consumers_exactly_once(method):
    ctx = multiprocessing.get_context(method)
    q, results = fastfifo.Queue(), fastfifo.Queue()
    consumers = [ctx.Process(target=_consumer, args=(q, results, c)) for c in range(3)]
    producers = [ctx.Process(target=_producer, args=(q, w)) for w in range(3)]
    for p in consumers + producers:
        p.start()
    for p in producers:
        p.join(60)
        assert p.exitcode == 0
    q.put_many([None, None, None])
    per_consumer = dict(results.get(timeout=60) for _ in range(3))
    for p in consumers:
        p.join(60)
        assert p.exitcode == 0
    every = [x for got in per_consumer.values() for x in got]
    expected = [(w, i) for w in range(3) for i in range(PER_PRODUCER)]
    expected += [(w, -k) for w in range(3) for k in range(1, 51)]
    assert len(every) == len(expected)
    assert sorted(every) == sorted(expected)  # each exactly once
    for got in per_consumer.values():  # each producer's items in order within a consumer
        for w in range(3):
            seq = [i for ww, i in got if ww == w and i >= 0]
            assert seq == sorted(seq)
    q.close()
    results.close()


def test_maxsize_counts_the_pipe_and_this_process_s_unsent_objects(ffq, tmp_path):
    """maxsize bounds what is in the pipe plus what this process holds unsent.  Objects
    another process holds unsent (the pipe was full) are not seen: two producers of large
    objects can together put more than maxsize (multiprocessing.Queue: exactly maxsize)."""
    path = str(tmp_path / "q")
    a = ffq(path, 5, raw=True, pipe_size=65536)
    b = ffq(path, 5, raw=True, pipe_size=65536)  # another producer (a process of its own)
    big = b"x" * 30_000  # two fill the 64 KiB pipe
    put = {"a": 0, "b": 0}
    with pytest.raises(fastfifo.Full):
        while True:
            a.put(big, timeout=0)
            put["a"] += 1
    # a's count is never above 5 (an object the feeder has just written may be counted
    # twice for a moment, in the pipe and in flight: maxsize errs towards waiting).
    assert put["a"] in (4, 5)
    deadline = time.monotonic() + 30
    while b.qsize() < 2:  # a's feeder has written the two that fit in the pipe
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with pytest.raises(fastfifo.Full):
        while True:
            b.put(big, timeout=0)
            put["b"] += 1
    assert put["b"] == 3  # b sees a's two in the pipe, not what a holds unsent
    assert b.qsize() == 5 and a.qsize() == put["a"]
    got = []
    while len(got) < put["a"] + 3:
        got += a.get_many(timeout=30)
    assert got == [big] * (put["a"] + 3)


def test_a_private_queue_where_fifos_cannot_be_reopened_by_descriptor(monkeypatch):
    """Without /proc/self/fd (macOS) a private queue keeps its name while its creating
    object lives: other processes open it by that name; it goes with the object."""
    monkeypatch.setattr(fastfifo._queue_channel, "REOPEN_BY_FD", False)
    q = fastfifo.Queue()
    path = q.path
    assert path is not None and stat.S_ISFIFO(os.lstat(path).st_mode)
    q.put("before fork")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if q.get(timeout=10) == "before fork" else 2
            q.put("from child")
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert q.get(timeout=10) == "from child"
    del q
    gc.collect()
    assert not os.path.exists(os.path.dirname(path))


def _killed_consumer(q, taken, gets) -> None:
    while True:
        i = q.get()
        taken[i] = 1
        gets.value += 1  # (no lock: one of these runs at a time, and it is killed)


def _survive(q, got, errors, key=lambda item: item) -> None:
    """Take objects, ``key`` of each into ``got`` (CorruptStreamErrors into ``errors``),
    up to a None."""
    while True:
        try:
            item = q.get(timeout=60)
        except fastfifo.CorruptStreamError as e:
            errors.append(e)
            continue
        if item is None:
            return
        got.append(key(item))


def _endless_producer(q, stop, count, limit) -> None:
    i = 0
    while not stop.is_set() and i < limit:
        try:
            q.put(i, timeout=0.05)
        except fastfifo.Full:
            continue
        i += 1
    count.value = i
    q.put(None)


def test_a_consumer_killed_at_any_instant_costs_the_others_nothing(ffq):
    """SIGKILL a consumer again and again while it takes objects: a surviving consumer
    never sees the rest of an object the killed one had begun taking (no
    CorruptStreamError, nothing logged), and at most one object per kill is lost."""
    ctx = multiprocessing.get_context("fork")
    kills, limit = 40, 8_000_000  # (the producer stops at ``limit``: far more than it needs)
    q = ffq()
    taken = ctx.Array("b", limit, lock=False)  # 1 where a killed consumer took it
    gets, stop, count = ctx.Value("l", 0, lock=False), ctx.Event(), ctx.Value("l", 0)
    producer = ctx.Process(target=_endless_producer, args=(q, stop, count, limit))
    producer.start()
    got, errors = [], []
    rng = random.Random(0)

    with collect_losses() as logged:
        survivor = threading.Thread(target=_survive, args=(q, got, errors))
        survivor.start()
        for _ in range(kills):
            victim = ctx.Process(target=_killed_consumer, args=(q, taken, gets))
            victim.start()
            # Kill it part-way through its run of gets, wherever that is.
            target = rng.randint(1, 300)
            deadline = time.monotonic() + 60
            start = gets.value
            while gets.value - start < target and victim.is_alive() and producer.is_alive():
                assert time.monotonic() < deadline, "the consumer took nothing"
                time.sleep(0.0005)
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
        stop.set()
        producer.join(60)
        survivor.join(120)
    assert not survivor.is_alive()
    assert not errors, f"a survivor saw a killed consumer's half-taken object: {errors[0]}"
    assert not logged, logged
    sent = count.value
    by_victims = [i for i in range(sent) if taken[i]]
    assert len(got) == len(set(got)), "an object was delivered twice"
    assert not set(got) & set(by_victims), "an object went to two consumers"
    lost = sent - len(got) - len(by_victims)
    assert 0 <= lost <= kills, f"{lost} objects lost with {kills} kills"


def _interrupted_consumer(q, taken, gets, ints, ready, done, many) -> None:
    def take():
        return q.get_many(max_messages=many, timeout=0.05) if many else [q.get(timeout=0.05)]

    catch_ctrl_c_and_go_on(take, lambda i: taken.__setitem__(i, 1), gets, ints, ready, done)


@pytest.mark.parametrize("many", [0, 16], ids=["get", "get_many"])
def test_a_consumer_that_catches_ctrl_c_and_goes_on_breaks_nothing(ffq, many):
    """Ctrl-C a consumer again and again while it takes objects; it catches each
    KeyboardInterrupt and goes on taking.  What an interrupted get() was returning may
    be lost (as when the consumer is killed), and nothing else: no object is delivered
    twice, no consumer sees CorruptStreamError or a false ClosedError, and the
    interrupted consumer and the others go on taking objects."""
    ctx = multiprocessing.get_context("fork")
    limit = 8_000_000  # (the producer stops at ``limit``: far more than it needs)
    q = ffq()
    taken = ctx.Array("b", limit, lock=False)
    gets, ints = ctx.Value("l", 0, lock=False), ctx.Value("l", 0, lock=False)
    stop, ready, done, count = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Value("l", 0)
    producer = ctx.Process(target=_endless_producer, args=(q, stop, count, limit))
    producer.start()
    got, errors = [], []

    with collect_losses() as logged:
        survivor = threading.Thread(target=_survive, args=(q, got, errors))
        survivor.start()
        args = (q, taken, gets, ints, ready, done, many)
        victim = ctx.Process(target=_interrupted_consumer, args=args)
        victim.start()
        try:
            ctrl_c_again_and_again(victim, gets, ready, seed=1)
        finally:
            stop_in_order(done, victim, stop, producer, survivor)
    assert victim.exitcode == 0, f"the consumer died (exit code {victim.exitcode})"
    assert not survivor.is_alive()
    assert not errors, f"a survivor saw an interrupted consumer's half-taken object: {errors[0]}"
    assert not logged, logged
    assert ints.value > 0, "no get() was interrupted: the test tested nothing"
    check_two_consumers(count.value, got, taken, ints.value * max(many, 1))


def _interrupted_producer(q, acked, gets, ints, ready, done) -> None:
    next_id = [0]

    def put():
        i = next_id[0]
        next_id[0] += 1
        q.put((i, b"x" * 20_000))  # (above one atomic write: the large path)
        return [i]

    catch_ctrl_c_and_go_on(put, lambda i: acked.__setitem__(i, 1), gets, ints, ready, done)
    q.put(None)
    q.close()
    q.join_thread()  # (waits for the feeder: it must still be writing)


def test_a_producer_that_catches_ctrl_c_and_goes_on_breaks_nothing(ffq):
    """Ctrl-C a producer of large objects again and again; it catches each
    KeyboardInterrupt and goes on putting.  Every put() that returned is delivered, none
    twice, no consumer sees CorruptStreamError, and the feeder still writes afterwards
    (an exception that left the queue marked as writing kept it waiting for ever).  An
    object whose put was interrupted part-way is dropped by the reader and logged, as
    documented, so what is logged is not checked here."""
    ctx = multiprocessing.get_context("fork")
    limit = 2_000_000
    q = ffq()
    acked = ctx.Array("b", limit, lock=False)
    gets, ints = ctx.Value("l", 0, lock=False), ctx.Value("l", 0, lock=False)
    ready, done = ctx.Event(), ctx.Event()
    got, errors = [], []
    with collect_losses():
        consumer = threading.Thread(target=_survive, args=(q, got, errors, lambda o: o[0]))
        consumer.start()
        producer = ctx.Process(
            target=_interrupted_producer, args=(q, acked, gets, ints, ready, done)
        )
        producer.start()
        try:
            ctrl_c_again_and_again(producer, gets, ready, seed=3)
        finally:
            done.set()
            producer.join(60)
            if producer.is_alive():
                producer.kill()
                producer.join()
                q.put(None)  # (the consumer's end, which the producer never sent)
            consumer.join(120)
    assert producer.exitcode == 0, f"the producer did not end: exit code {producer.exitcode}"
    assert not consumer.is_alive()
    assert not errors, f"a consumer saw a half-written object: {errors[0]}"
    assert ints.value > 0, "no put() was interrupted: the test tested nothing"
    ids = set(got)
    assert len(got) == len(ids), "an object was delivered twice"
    missing = [i for i in range(limit) if acked[i] and i not in ids]
    assert not missing, f"{len(missing)} objects whose put() returned never came"
