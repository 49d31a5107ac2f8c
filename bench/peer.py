"""The interface every benchmark peer implements, and the clock they share.

A peer moves ``bytes`` payloads from writer processes to reader processes.  The
harness (``bench.harness``) creates the channel in the parent with ``setup``,
forks the workers, and calls ``send``/``receive`` (or ``echo``/``ping``) in them.
Each worker opens its endpoint, then calls ``ready()`` (a barrier that returns
the start time) so that set-up is never timed, then runs its tight loop.

Peers keep their loops free of anything but the library calls: checking happens
after the clock stops (``bench.messages``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

#: Monotonic nanoseconds, the same clock as the C limit's CLOCK_MONOTONIC, so
#: timestamps from different processes can be compared.
if hasattr(time, "CLOCK_MONOTONIC"):
    def now() -> int:
        return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
else:  # pragma: no cover - every POSIX system has it
    now = time.monotonic_ns

#: How long a reader of a multi-reader run waits for more before checking whether
#: the writers are done (multi-reader runs cannot count: who gets what is not known).
IDLE = 0.05

Ready = Callable[[], int]


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
    def send(self, channel: Any, row: Any, wid: int, items: list, ready: Ready) -> int:
        """Send ``items`` (payloads, or lists of payloads for batched rows); return the start time."""
        raise NotImplementedError

    def receive(self, channel: Any, row: Any, rid: int, count: int | None, ready: Ready,
                done: Any) -> tuple[list, int, int]:
        """Receive; returns (messages, start time, time the last message arrived).

        ``count`` is the exact number to receive when there is one reader.  With
        several readers it is None: receive until ``done`` is set and nothing more
        comes (``IDLE``), taking the time after every receive call.
        """
        raise NotImplementedError

    def echo(self, channel: Any, row: Any, count: int, ready: Ready) -> None:
        """Ping-pong server: receive ``count`` messages and send each one back."""
        raise NotImplementedError

    def ping(self, channel: Any, row: Any, payloads: list, ready: Ready) -> tuple[list, list]:
        """Ping-pong client: send each payload, wait for its echo; returns (replies, round-trip ns)."""
        raise NotImplementedError
