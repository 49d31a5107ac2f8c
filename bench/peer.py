"""The interface every benchmark peer implements, and the clock they share.

A peer moves ``bytes`` payloads from writer processes to reader processes.  The
harness (``bench.harness``) creates the channel in the parent with ``setup``,
forks the workers, and calls ``send``/``receive`` (or ``echo``/``ping``) in them.
Each worker opens its endpoint, then calls ``sync.ready()`` (a barrier that returns
the start time) so that set-up is never timed, then runs its tight loop.

Peers keep their loops free of anything but the library calls: checking happens
after the clock stops (``bench.messages``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

#: Monotonic nanoseconds, the same clock as the C limit's CLOCK_MONOTONIC, so
#: timestamps from different processes can be compared.
if hasattr(time, "CLOCK_MONOTONIC"):

    def now() -> int:
        return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
else:  # pragma: no cover - every POSIX system has it
    now = time.monotonic_ns

#: How long a reader of a multi-reader run waits for more before checking whether the
#: writers are done and the readers' counts add up (who gets what is not known ahead).
IDLE = 0.05
#: How long readers wait for messages still in flight after the writers are done (a
#: lost message is then reported by the delivery check).
GIVE_UP = 10.0


class Sync:
    """What a worker gets from the harness to line up with the others.

    ``ready()``  wait on the start barrier; returns the start time (ns).  Call it after
                 opening the endpoint, right before the timed loop.
    ``sent()``   a writer has sent everything (the harness calls it after ``send``
                 returns; a peer that must stay connected calls it earlier).
    ``done``     event: every writer has sent everything (multi-reader rows).
    ``finished`` event: every reader (or the ping-pong client) has everything.
    ``all_received(n)``  a multi-reader row's reader, idle after ``done``, has ``n``
                 messages: True once the readers' published counts add up to every
                 message sent (or after ``GIVE_UP`` s, when the check will report the loss).
    """

    def __init__(
        self,
        barrier: Any,
        done: Any,
        finished: Any,
        tally: Any,
        expected: int,
        report: Callable[[], None] | None,
        rid: int = -1,
    ) -> None:
        self._barrier = barrier
        self._report = report
        self._sent = False
        self._tally = tally
        self._expected = expected
        self._rid = rid
        self._give_up = 0.0
        self.start = 0
        self.done = done
        self.finished = finished

    def ready(self) -> int:
        self._barrier.wait(timeout=120)
        self.start = now()
        return self.start

    def sent(self) -> None:
        if not self._sent and self._report is not None:
            self._sent = True
            self._report()

    def all_received(self, n: int) -> bool:
        # A lull after the writers are done does not mean everything arrived: a peer that
        # sends asynchronously (pyzmq's I/O thread) can still have messages in flight.
        if self._tally is None:
            return True
        self._tally[self._rid] = n  # lock-free shared memory, one slot per reader
        if not self._give_up:
            self._give_up = time.monotonic() + GIVE_UP
        return sum(self._tally) >= self._expected or time.monotonic() > self._give_up


class Peer:
    """Base class: one way of moving messages between processes.

    Attributes
    ----------
    key : str
        Short identifier used by ``--only`` and in the JSON.
    name : str
        What the table shows, e.g. ``"multiprocessing.Queue"``.
    batched, multi_writer, multi_reader, pingpong : bool
        Which kinds of workload the peer can run.
    """

    key = ""
    name = ""
    #: Caps per run: Python peers hold every payload in memory on both sides.
    max_messages = 3_000_000
    max_bytes = 256 << 20
    batched = False
    multi_writer = True
    multi_reader = True
    pingpong = True

    def label(self, row: Any) -> str:
        """Name plus the calls used for this row (e.g. ``put_many/get_many``)."""
        return self.name

    def unavailable(self) -> str | None:
        """None when the peer can run here, else why not (e.g. ``"not installed"``)."""
        return None

    def unsupported(self, row: Any) -> str | None:
        """None when the peer can run ``row``, else why not."""
        if row.kind == "pingpong":
            return None if self.pingpong else "n/a: no request/reply channel"
        if row.batched and not self.batched:
            return "n/a: no batch API"
        if row.writers > 1 and not self.multi_writer:
            return "n/a: one sender per channel"
        if row.readers > 1 and not self.multi_reader:
            return "n/a: one receiver per channel"
        return None

    def note(self, channel: Any) -> str:
        """Anything the table should say about how the channel was set up."""
        return ""

    # --- in the parent -------------------------------------------------------
    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        """Create the channel (FIFO, queue...) before the workers fork."""
        raise NotImplementedError

    def after_writers(self, channel: Any, row: Any) -> None:
        """Called once every writer has finished (e.g. to send end markers)."""

    def teardown(self, channel: Any) -> None:
        """Remove what ``setup`` created."""

    # --- in worker processes -------------------------------------------------
    def send(self, channel: Any, row: Any, wid: int, items: list, sync: Sync) -> None:
        """Send ``items`` (payloads, or lists of payloads for batched rows)."""
        raise NotImplementedError

    def receive(
        self, channel: Any, row: Any, rid: int, count: int | None, sync: Sync
    ) -> tuple[list, int, int]:
        """Receive; returns (messages, start time, time the last message arrived).

        ``count`` is the exact number to receive when there is one reader.  With
        several readers it is None: receive until ``sync.done`` is set and nothing
        more comes (``IDLE``), taking the time after every receive call.
        """
        raise NotImplementedError

    def echo(self, channel: Any, row: Any, count: int, sync: Sync) -> None:
        """Ping-pong server: receive ``count`` messages and send each one back."""
        raise NotImplementedError

    def ping(self, channel: Any, row: Any, payloads: list, sync: Sync) -> tuple[list, list]:
        """Ping-pong client: send each payload, await its echo; returns (replies, ns per trip)."""
        raise NotImplementedError


def missing(module: str) -> str | None:
    """None if ``module`` imports, else why not (what ``Peer.unavailable`` returns)."""
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc})"
    return None


def receive_until_done(
    take: Callable[[], Any],
    add: Callable[[Any], Any],
    idle: type[BaseException],
    sync: Sync,
    start: int,
    received: Callable[[], int],
) -> int:
    """The receive loop of a multi-reader row: ``add(take())`` until every message is in.

    ``take`` waits at most ``IDLE`` and raises ``idle`` when nothing came; once
    ``sync.done`` is set such a timeout ends the loop if the readers' counts
    (``received()`` messages here) add up to all that was sent.  Returns the time the
    last message arrived (``start`` if none did).
    """
    end = start
    while True:
        try:
            add(take())
        except idle:
            if sync.done.is_set() and sync.all_received(received()):
                return end
            continue
        end = now()


def ping_loop(send: Any, recv: Any, payloads: list) -> tuple[list, list]:
    """The client loop every Python peer shares: time each send + receive."""
    clock = time.perf_counter_ns
    replies: list = []
    rtts: list = []
    keep, note = replies.append, rtts.append
    for payload in payloads:
        t0 = clock()
        send(payload)
        reply = recv()
        note(clock() - t0)
        keep(reply)
    return replies, rtts


def pin(row: Any, role: str, pid: int = 0) -> None:
    """Pin a ping-pong side to its CPU (``role`` "server" or "client"), where it can be."""
    if row.kind != "pingpong" or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if row.cpus == "same" or len(cpus) < 2:
        os.sched_setaffinity(pid, {cpus[0]})
    else:
        os.sched_setaffinity(pid, {cpus[0] if role == "server" else cpus[1]})
