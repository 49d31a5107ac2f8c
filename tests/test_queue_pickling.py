"""fastfifo.Queue pickles as multiprocessing.Queue does (ForkingPickler), and travels itself.

``forking_dumps`` must give the bytes ``ForkingPickler.dumps`` gives; Connections,
sockets and reducers registered with ``multiprocessing.reduction`` travel through the
queue as through ``multiprocessing.Queue``; a subclass of Queue stays itself when the
queue is sent to another process.
"""

from __future__ import annotations

import array
import collections
import copyreg
import dataclasses
import decimal
import enum
import fractions
import multiprocessing
import pickle
import socket
import threading
from multiprocessing.reduction import ForkingPickler

import pytest
from helpers import BACKENDS, ff_queue

import fastfifo
from fastfifo._forking import forking_dumps


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Colour(enum.Enum):
    RED = 1


class Tracked:
    """Pickled through a reducer registered with multiprocessing.reduction (below)."""

    def __init__(self, value, via=""):
        self.value, self.via = value, via


def _rebuild_tracked(value):
    return Tracked(value, via="registered reducer")


def _reduce_tracked(obj):
    return _rebuild_tracked, (obj.value,)


class ViaCopyreg:
    def __init__(self, value):
        self.value = value


def _reduce_via_copyreg(obj):
    return ViaCopyreg, (obj.value * 10,)


copyreg.pickle(ViaCopyreg, _reduce_via_copyreg)


def _corpus():
    shared = [1, 2, 3]
    loop: list = []
    loop.append(loop)
    return [
        None, True, 0, -1, 2**70, 1.5, float("inf"), "", "text", "ü" * 40, b"", b"\0" * 70_000,
        bytearray(b"ba"), (), (1, "a", None), [1, [2, [3]]], {"id": 1, "tags": ["a", "b"]},
        {1, 2, 3}, frozenset({"x"}), [shared, shared], loop, Point(1, 2.5), Colour.RED,
        decimal.Decimal("1.10"), fractions.Fraction(1, 3), array.array("i", range(100)),
        collections.OrderedDict(a=1), collections.Counter("hello"), len, Point,
        range(10), slice(1, 5), complex(1, 2), ViaCopyreg(3),
        [{"id": i, "name": f"item-{i}", "price": 1.5} for i in range(300)],
    ]  # fmt: skip


def test_forking_dumps_gives_the_bytes_of_forkingpickler_dumps():
    for obj in _corpus():
        assert forking_dumps(obj) == bytes(ForkingPickler.dumps(obj)), repr(obj)[:80]
        assert forking_dumps(obj) == bytes(ForkingPickler.dumps(obj))  # reused: still equal


def test_forking_dumps_sees_reducers_registered_later():
    ForkingPickler.register(Tracked, _reduce_tracked)
    try:
        data = forking_dumps(Tracked(7))
        assert data == bytes(ForkingPickler.dumps(Tracked(7)))
        back = pickle.loads(data)
        assert (back.value, back.via) == (7, "registered reducer")
    finally:
        del ForkingPickler._extra_reducers[Tracked]
    assert pickle.loads(forking_dumps(Tracked(7))).via == ""  # unregistered again


def test_forking_dumps_after_a_failure_and_when_re_entered():
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        forking_dumps([1, threading.Lock()])
    assert forking_dumps({"ok": 1}) == bytes(ForkingPickler.dumps({"ok": 1}))

    class Nested:
        def __reduce__(self):
            inner = forking_dumps(("inner", 1))  # a __reduce__ that pickles (puts) too
            return pickle.loads, (inner,)

    assert pickle.loads(forking_dumps([Nested(), 2])) == [("inner", 1), 2]


def test_forking_dumps_from_many_threads_at_once():
    objs = _corpus()
    expected = [bytes(ForkingPickler.dumps(o)) for o in objs]
    errors = []

    def work():
        for _ in range(50):
            if [forking_dumps(o) for o in objs] != expected:
                errors.append("differs")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_registered_reducer_is_used_by_the_queue(backend):
    ForkingPickler.register(Tracked, _reduce_tracked)
    try:
        q = ff_queue(backend)
        q.put(Tracked(5))
        got = q.get(timeout=5)
        assert (got.value, got.via) == (5, "registered reducer")
        q.put(ViaCopyreg(2))  # copyreg's table too
        assert q.get(timeout=5).value == 20
        q.close()
    finally:
        del ForkingPickler._extra_reducers[Tracked]


def _answer_through(q):
    conn = q.get(timeout=30)
    conn.send(("hello from", multiprocessing.current_process().name))
    sock = q.get(timeout=30)
    sock.sendall(b"socket works")
    sock.close()
    conn.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_connections_and_sockets_travel_through_the_queue(method):
    """Issue 14: the receiver got a bare descriptor number; sockets raised TypeError."""
    ctx = multiprocessing.get_context(method)
    q = fastfifo.Queue()
    mine, theirs = ctx.Pipe()
    s1, s2 = socket.socketpair()
    child = ctx.Process(target=_answer_through, args=(q,), name="answerer")
    child.start()
    q.put(theirs)
    q.put(s2)
    assert mine.recv() == ("hello from", "answerer")
    assert s1.recv(100) == b"socket works"
    child.join(30)
    assert child.exitcode == 0
    for x in (mine, theirs, s1, s2):
        x.close()
    q.close()


class MyQueue(fastfifo.Queue):
    """A subclass, as users write them for multiprocessing.Queue."""

    def put_twice(self, obj):
        self.put(obj)
        self.put(obj)

    def __getstate__(self):
        return (super().__getstate__(), "extra state")

    def __setstate__(self, state):
        base, self.extra = state
        super().__setstate__(base)


def _use_subclass(q, results):
    results.put((type(q).__name__, q.extra))
    q.put_twice("from child")


def test_a_subclass_survives_pickling_and_starting_a_process():
    q = MyQueue()
    twin = pickle.loads(pickle.dumps(q))
    assert type(twin) is MyQueue and twin.extra == "extra state"
    twin.put_twice(1)
    assert [q.get(timeout=5), q.get(timeout=5)] == [1, 1]
    results = fastfifo.Queue()
    child = multiprocessing.get_context("spawn").Process(target=_use_subclass, args=(q, results))
    child.start()
    assert results.get(timeout=60) == ("MyQueue", "extra state")
    assert [q.get(timeout=30), q.get(timeout=30)] == ["from child"] * 2
    child.join(30)
    assert child.exitcode == 0
    for x in (q, twin, results):
        x.close()
