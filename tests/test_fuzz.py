"""Fuzzing the frame and line decoders of both cores, through real FIFOs.

The harness in this module turns any byte string into a *program*: a stream of frames,
lines, fragments of large messages, garbage and forged headers, cut into chunks at places
the input chooses.  Each chunk is written into one FIFO per reader *lane* (compiled or
pure core; one reader or a shared reader) and every lane is drained with ``timeout=0``
before the next chunk is written, so the input's chunk boundaries become read boundaries.

Checks, after every call and at the end:

* every program: no crash, no hang (a 2 s watchdog per call), only documented exceptions
  (``Empty``, ``CorruptStreamError``, ``MessageTooLargeError``, ``EOFError`` once every
  writer left, ``IncompleteMessageWarning``), progress (a bounded number of calls), the
  receive buffer bounded by ``max_message_size`` plus a read, ``skipped_bytes`` no more
  than the stream, and the compiled and pure cores report exactly the same events;
* raw frames programs (garbage may hold the magic byte, headers may be forged, fragments
  may be cut or inconsistent): every delivered message is a frame the stream really
  contains (a whole frame's payload, or a chain of fragments that adds up to it);
* strict frames programs (garbage never holds the magic byte, fragments are well formed)
  and every lines program: the exact sequence of messages, too-large reports and corrupt
  reports is predicted from the program, as are ``skipped_bytes`` and ``dropped_messages``.

Where it runs: the tests below (hypothesis-generated inputs, a bounded number of
executions, in a child process so that a crash in the extension is reported as a failure
with the input that caused it rather than killing the session); ``fuzz/fuzz_decoder.py``
(atheris, coverage-guided) and ``fuzz/run.sh`` for long runs.  Every crash or mis-parse
the fuzzing found is a case in ``REGRESSIONS``.

The harness lives here, not in ``fuzz/``, because the test suite is also run from an
installed wheel with only ``tests/`` copied (``.ci/check-dist.sh``, cibuildwheel).
"""

from __future__ import annotations

import argparse
import faulthandler
import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import PURE_ONLY, collect_losses

import fastfifo
from fastfifo import _core_py, _endpoints
from fastfifo._endpoints import classes_for

HEADER = 8
MAGIC = 0xFA
KIND_WHOLE, KIND_FIRST, KIND_MIDDLE, KIND_LAST = 0, 1, 2, 3
#: A program stops growing its stream here: under the shared readers' 256 KiB peek window
#: (a single frame or line larger than the window is a separate, known issue: see
#: tests/test_hostile_env.py) and far under the 1 MiB pipes the shared lanes use.
STREAM_CAP = 192 * 1024
CHUNK_CAP = 160
HANG_SECONDS = 5.0
_RUN_LIMIT = 60.0  # outside calls (writing, opening, closing): far more than a program needs
MAX_SIZES = [fastfifo.DEFAULT_MAX_MESSAGE_SIZE, 5000, 300, 16]

#: lane -> (backend, shared, exact claims)
LANES: dict[str, tuple[str, bool, bool]] = {
    "cython": ("cython", False, False),
    "python": ("python", False, False),
    "cython-shared": ("cython", True, False),
    "python-shared": ("python", True, False),
    "cython-exact": ("cython", True, True),
    "python-exact": ("python", True, True),
}
#: Lanes the CI run fuzzes.  Shared lanes need tee() (Linux): elsewhere a shared reader
#: claims by exact reads, which the "exact" lanes fuzz (test_fuzz_the_exact_claim_lanes).
_SHARED = ["cython-shared", "python-shared"] if _core_py.HAVE_TEE else []
DEFAULT_LANES = [
    name for name in ["cython", "python", *_SHARED] if not (PURE_ONLY and name.startswith("cython"))
]
EXACT_LANES = ["python-exact"] if PURE_ONLY else ["cython-exact", "python-exact"]
#: Lanes with known, unfixed bugs (none open now), fuzzed only on request.
KNOWN_BUG_LANES: list[str] = []
#: Known bugs the fuzzing found that are not fixed yet (each also has a strict xfail test
#: in tests/test_hostile_env.py).  Fixed ones are in REGRESSIONS.
KNOWN_BUGS: dict[str, str] = {}


class Finding(AssertionError):
    """The decoder did something the contract forbids."""


class Hang(BaseException):
    """Raised by the watchdog inside a call that did not return in time."""


def header(flags: int, length: int) -> bytes:
    return _core_py.encode_header(flags & 0xFF, length & 0xFFFFFFFF)


def frame(payload: bytes) -> bytes:
    return header(KIND_WHOLE, len(payload)) + payload


def fragments(data: bytes, sizes: list[int]) -> list[bytes]:
    """A large message as FIRST, MIDDLE..., LAST frames with the given payload sizes."""
    out, off = [], 0
    first = min(sizes[0], max(len(data) - 1, 0))
    out.append(header(KIND_FIRST, first + 8) + len(data).to_bytes(8, "little") + data[:first])
    off = first
    i = 1
    while off < len(data) or len(out) == 1:
        n = max(1, min(sizes[i % len(sizes)], len(data) - off))
        kind = KIND_LAST if off + n >= len(data) else KIND_MIDDLE
        out.append(header(kind, n) + data[off : off + n])
        off += n
        i += 1
    return out


# ---------------------------------------------------------------------------- programs


class _Source:
    """Reads the fuzz input front to back; past its end every byte is 0."""

    def __init__(self, data: bytes) -> None:
        self.data, self.i = data, 0

    def left(self) -> int:
        return len(self.data) - self.i

    def byte(self) -> int:
        if self.i < len(self.data):
            self.i += 1
            return self.data[self.i - 1]
        return 0

    def u16(self) -> int:
        return self.byte() << 8 | self.byte()

    def take(self, n: int) -> bytes:
        s = self.data[self.i : self.i + n]
        self.i += len(s)
        return s


@dataclass
class Program:
    framing: str
    strict: bool
    maxmsg: int
    stop_at_eof: bool
    style: int
    #: The harness holds the writers' large-message lock while it writes (as a Writer
    #: sending fragments does); without it, a reader that finds the pipe empty mid-message
    #: rightly concludes that the writer died and drops the partial message.
    hold_lock: bool
    chunks: list[bytes] = field(default_factory=list)
    #: Events a reader must report, in order ("m", payload) / ("L",) / ("C",); None when
    #: only the invariants can be checked (raw frames programs).
    expected: list[tuple[Any, ...]] | None = None
    #: Events only a stop_at_eof reader reports (after every writer left).
    expected_at_eof: list[tuple[Any, ...]] = field(default_factory=list)
    #: ``expected`` for shared readers, which report bad bytes once per claim: a run of
    #: them that a chunk boundary splits is two runs when the reader claimed (and so
    #: reported) its first part on its own (see _Builder.boundary).
    expected_shared: list[tuple[Any, ...]] | None = None
    garbage: int = 0
    too_large: int = 0

    @property
    def stream(self) -> bytes:
        return b"".join(self.chunks)

    def describe(self) -> str:
        return (
            f"framing={self.framing} strict={self.strict} max_message_size={self.maxmsg} "
            f"stop_at_eof={self.stop_at_eof} style={self.style} lock={self.hold_lock} "
            f"chunks={len(self.chunks)} "
            f"stream={len(self.stream)} bytes"
        )


class _Builder:
    def __init__(self, prog: Program) -> None:
        self.p = prog
        self.cur = bytearray()
        self.size = 0
        self.in_garbage = False
        self.pending: list[tuple[bytes, tuple[Any, ...] | None]] = []
        self.events: list[tuple[Any, ...]] = []
        # shared readers: the run of bad bytes they are in, and its bytes not claimed yet
        self.shared_in_garbage = False
        self.unclaimed_garbage = 0
        self.events_shared: list[tuple[Any, ...]] = []

    def put(self, data: bytes) -> None:
        self.cur += data
        self.size += len(data)

    def boundary(self) -> None:
        if self.cur:
            self.p.chunks.append(bytes(self.cur))
            self.cur = bytearray()
            # The readers drain the pipe after each chunk.  A shared reader claims (and
            # reports) bad bytes at the head at once (strict junk has no MAGIC byte, so
            # even one byte can never begin a header), and then lets go of the lock,
            # unless it is inside a large message: what follows is then a claim of its
            # own, and its bad bytes a new run.
            if self.unclaimed_garbage and not self.pending:
                self.shared_in_garbage = False
                self.unclaimed_garbage = 0

    def event(self, ev: tuple[Any, ...]) -> None:
        if ev == ("L",):
            self.p.too_large += 1
        self.events.append(ev)
        self.events_shared.append(ev)

    # frames
    def message(self, payload: bytes) -> None:
        if self.p.framing == "lines":
            if self.p.strict:
                payload = payload.replace(b"\n", b"")
            self.put(payload + b"\n")
            return
        self.put(frame(payload))
        self.in_garbage = self.shared_in_garbage = False
        self.unclaimed_garbage = 0
        self.event(("m", payload) if len(payload) <= self.p.maxmsg else ("L",))

    def garbage(self, junk: bytes) -> None:
        if self.p.framing == "frames" and self.p.strict:
            junk = junk.replace(bytes([MAGIC]), b"")
            if not junk:
                return
            if not self.in_garbage:
                self.events.append(("C",))
            if not self.shared_in_garbage:
                self.events_shared.append(("C",))
            self.in_garbage = self.shared_in_garbage = True
            self.unclaimed_garbage += len(junk)
            self.p.garbage += len(junk)
        self.put(junk)

    def large(self, data: bytes, sizes: list[int]) -> None:
        if self.p.framing == "lines":
            self.put(data.replace(b"\n", b"") + b"\n")
            return
        if self.p.strict:
            self.flush_fragments()
        frags = fragments(data, sizes)
        last: tuple[Any, ...] | None = None
        if len(data) > self.p.maxmsg:
            self.event(("L",))
        else:
            last = ("m", data)
        self.pending = [(f, None) for f in frags[:-1]] + [(frags[-1], last)]
        self.next_fragment()  # the FIRST one goes out now

    def next_fragment(self) -> None:
        if self.pending:
            data, ev = self.pending.pop(0)
            self.put(data)
            self.in_garbage = self.shared_in_garbage = False
            self.unclaimed_garbage = 0
            if ev is not None:
                self.event(ev)

    def flush_fragments(self) -> None:
        while self.pending:
            self.next_fragment()

    def forged(self, flags: int, length: int, payload: bytes) -> None:
        if self.p.framing == "lines" or self.p.strict:
            self.message(payload)
            return
        self.put(header(flags, length) + payload)


def decode(data: bytes) -> Program:
    """The program a fuzz input describes (see the op table in the code)."""
    src = _Source(data)
    cfg = src.byte()
    prog = Program(
        framing="lines" if cfg & 1 else "frames",
        strict=not cfg & 2,
        maxmsg=MAX_SIZES[(cfg >> 2) & 3],
        stop_at_eof=bool(cfg & 16),
        style=(cfg >> 5) & 3,
        hold_lock=not cfg & 2 or bool(cfg & 128),
    )
    b = _Builder(prog)
    while src.left() and b.size < STREAM_CAP and len(prog.chunks) < CHUNK_CAP:
        op = src.byte() % 8
        if op <= 2:  # a message: 0-239 bytes, or up to 5000 with a two-byte length
            n = src.byte()
            if n >= 240:
                n = src.u16() % 5001
            b.message(src.take(n))
        elif op == 3:  # garbage
            b.garbage(src.take(src.byte() + 1))
        elif op == 4:  # a chunk boundary: what was built so far is one write
            b.boundary()
        elif op == 5:  # a large message (frames: fragments; lines: a long line)
            total = src.u16() * (1 + (src.byte() & 1)) + 1
            seed = src.byte()
            style = src.byte()
            if style & 1:  # any sizes, but at most ~64 fragments
                least = total // 64 + 1
                sizes = [max(src.u16() % 4088 + 1, least) for _ in range(1 + style % 5)]
            else:
                sizes = [4080, 4088]  # what a Writer sends
            b.large(random.Random(seed).randbytes(total), sizes)
        elif op == 6:  # the next fragment of the large message in progress
            b.next_fragment()
        else:  # a forged header (raw frames), with a payload of the input's choosing
            flags = src.byte()
            length = int.from_bytes(src.take(4).ljust(4, b"\0"), "little")
            b.forged(flags, length, src.take(src.byte()))
    if prog.framing == "frames":
        if prog.strict:
            b.flush_fragments()
            b.message(b"END")  # a trailing partial header is "not yet", not garbage
        prog.expected = b.events if prog.strict else None
        prog.expected_shared = b.events_shared if prog.strict else None
    b.boundary()
    if prog.framing == "lines":
        *whole, tail = prog.stream.split(b"\n")
        prog.expected = [("m", x) if len(x) <= prog.maxmsg else ("L",) for x in whole]
        if len(tail) > prog.maxmsg:
            prog.expected.append(("L",))
        elif tail:
            prog.expected_at_eof.append(("m", tail))
        prog.too_large = sum(1 for e in prog.expected if e == ("L",))
    return prog


# ---------------------------------------------------------------------------- running

_fifo_dir: str | None = None


def _fifo(lane: str) -> str:
    global _fifo_dir
    if _fifo_dir is None:
        _fifo_dir = tempfile.mkdtemp(prefix="fastfifo-fuzz-")
    return fastfifo.mkfifo(os.path.join(_fifo_dir, lane))


def _backend(name: str) -> Any:
    if name == "cython":
        from fastfifo import _core

        return _core
    return _core_py


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang()


class Lane:
    def __init__(self, name: str, prog: Program, watchdog: bool) -> None:
        backend, shared, exact = LANES[name]
        self.name, self.prog, self.shared, self.watchdog = name, prog, shared, watchdog
        self.eof = prog.stop_at_eof
        _, reader_cls = classes_for(_backend(backend))
        path = _fifo(name)
        old = _endpoints._FORCE_EXACT_CLAIMS
        _endpoints._FORCE_EXACT_CLAIMS = exact
        try:
            self.reader = reader_cls(
                path,
                framing=prog.framing,
                max_message_size=prog.maxmsg,
                stop_at_eof=self.eof,
                shared=shared,
                # Plain lanes keep the default 64 KiB pipe (and so a 64 KiB buffer that
                # must grow and compact); shared lanes take 1 MiB so unclaimed heads fit.
                pipe_size=fastfifo.DEFAULT_PIPE_SIZE if shared else None,
            )
        finally:
            _endpoints._FORCE_EXACT_CLAIMS = old
        self.wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.lock_fd, self.lock_ofd = -1, False
        if prog.hold_lock:
            self.lock_fd, self.lock_ofd = _endpoints._writer_lock(path, self.wfd)
            if self.lock_ofd:
                _core_py._ofd_lock(self.lock_fd, fcntl.F_WRLCK)
            else:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self.cap0 = self.reader.buffer_capacity
        self.events: list[tuple[Any, ...]] = []
        self.kept: list[tuple[Any, list[bytes]]] = []
        self.views: list[tuple[memoryview, bytes]] = []
        self.calls = 0
        self.max_calls = 4 * len(prog.stream) + 100

    def unlock(self) -> None:
        if self.lock_fd >= 0:
            if self.lock_fd != self.wfd:
                os.close(self.lock_fd)  # the sidecar lock file (macOS)
            elif self.lock_ofd:
                _core_py._ofd_lock(self.lock_fd, fcntl.F_UNLCK)
            self.lock_fd = -1

    def close(self) -> None:
        self.unlock()
        if self.wfd >= 0:
            os.close(self.wfd)
            self.wfd = -1
        self.reader.close()
        # Views outlive their Reader: they own (a reference to) the bytes they show.
        self.kept.clear()
        self.check_kept()
        self.views.clear()

    def fail(self, what: str) -> Finding:
        return Finding(f"[{self.name}] {what} ({self.prog.describe()})")

    def call(self) -> bool:
        """One call with timeout=0: False once it raised Empty."""
        self.calls += 1
        if self.calls > self.max_calls:
            raise self.fail(f"no progress: {self.calls} calls for {len(self.prog.stream)} bytes")
        r, style = self.reader, self.prog.style
        got: list[tuple[Any, ...]] = []
        more = True
        with warnings.catch_warnings(record=True) as caught, collect_losses() as lost:
            warnings.simplefilter("always")
            if self.watchdog:
                signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
                # A loop in C that never returns to Python (so SIGALRM's handler never
                # runs) ends the process with a traceback instead; the caller reports
                # the input (see --last-input).
                faulthandler.dump_traceback_later(HANG_SECONDS + 2, exit=True)
            try:
                kind = style if style < 3 else 3 + self.calls % 3
                if kind in (0, 3):
                    msgs = [r.get(timeout=0)]
                elif kind in (1, 4):
                    msgs = r.get_many(max_messages=1000 if kind == 1 else 3, timeout=0)
                else:
                    batch = r.get_batch(max_messages=1000 if kind == 2 else 3, timeout=0)
                    msgs = batch.tolist()
                    self.keep(batch, msgs)
                got += [("m", m) for m in msgs]
                if not msgs or not all(type(m) is bytes for m in msgs):
                    raise self.fail(f"get/get_many/get_batch returned {msgs!r}")
            except fastfifo.Empty:
                more = False
            except fastfifo.CorruptStreamError as e:
                got.append(("C",))
                if not (e.skipped > 0 and self.prog.stream and r.path in str(e)):
                    raise self.fail(f"unclear CorruptStreamError: {e!r}") from None
            except fastfifo.MessageTooLargeError as e:
                got.append(("L",))
                if r.path not in str(e):
                    raise self.fail(f"unclear MessageTooLargeError: {e!r}") from None
            except EOFError:
                got.append(("EOF",))
                more = False
            except Hang:
                raise self.fail(
                    f"call {self.calls} did not return within {HANG_SECONDS} s with timeout=0"
                ) from None
            finally:
                if self.watchdog:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    faulthandler.dump_traceback_later(_RUN_LIMIT, exit=True)
        for w in caught:
            raise self.fail(f"unexpected warning {w.category.__name__}: {w.message}")
        self.events += [("W",)] * len(lost) + got
        self.check_kept()
        bound = self.cap0 + 2 * (self.prog.maxmsg + HEADER) + 2 * _endpoints.PEEK_WINDOW
        if r.buffer_capacity > bound:
            raise self.fail(f"buffer_capacity {r.buffer_capacity} > {bound}")
        if r.skipped_bytes > len(self.prog.stream):
            raise self.fail(f"skipped_bytes {r.skipped_bytes} > stream {len(self.prog.stream)}")
        return more

    def keep(self, batch: Any, msgs: list[bytes]) -> None:
        """Hold on to zero-copy batches and views for a while: they must not change."""
        if len(batch) != len(msgs) or [bytes(v) for v in batch] != msgs:
            raise self.fail("a MessageBatch disagrees with its own tolist()")
        if bytes(batch[-1]) != msgs[-1] or bytes(batch[len(msgs) - 1]) != msgs[-1]:
            raise self.fail("MessageBatch indexing disagrees with tolist()")
        self.kept.append((batch, msgs))
        self.views.append((batch[0], msgs[0]))
        del self.kept[:-4], self.views[:-8]

    def check_kept(self) -> None:
        for batch, msgs in self.kept:
            if [bytes(v) for v in batch] != msgs:
                raise self.fail("a MessageBatch kept alive changed under later reads")
        for view, msg in self.views:
            if bytes(view) != msg:
                raise self.fail("a view from a MessageBatch changed under later reads")

    def drain(self) -> None:
        while self.call():
            pass

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        stuck = 0
        while view.nbytes:
            try:
                view = view[os.write(self.wfd, view) :]
                stuck = 0
            except BlockingIOError:
                stuck += 1
                if stuck > 3:
                    raise self.fail("the pipe stays full: the reader consumes nothing") from None
                self.drain()

    def finish(self) -> None:
        """Every writer leaves; a stop_at_eof reader must then report the end."""
        self.unlock()
        os.close(self.wfd)
        self.wfd = -1
        if not self.eof:
            return
        for _ in range(len(self.prog.stream) + 20):
            self.call()
            if self.events and self.events[-1] == ("EOF",):
                return
        raise self.fail("no EOFError after every writer left")


def _contained(msg: bytes, stream: bytes, index: dict[str, Any]) -> bool:
    """Whether ``msg`` is the payload of a whole frame in ``stream``, or a fragment chain."""
    if not index:
        whole: set[bytes] = set()
        firsts: list[tuple[int, bytes]] = []
        middles: set[bytes] = set()
        lasts: set[bytes] = set()
        i = stream.find(bytes([MAGIC]))
        while 0 <= i <= len(stream) - HEADER:
            flags = stream[i + 1]
            length = int.from_bytes(stream[i + 4 : i + 8], "little")
            if stream[i : i + HEADER] == header(flags, length) and not flags & ~3:
                body = stream[i + HEADER : i + HEADER + length]
                if len(body) == length:
                    if flags == KIND_WHOLE:
                        whole.add(body)
                    elif flags == KIND_FIRST and length >= 8:
                        firsts.append((int.from_bytes(body[:8], "little"), body[8:]))
                    elif flags == KIND_MIDDLE and body:
                        middles.add(body)
                    elif flags == KIND_LAST:
                        lasts.add(body)
            i = stream.find(bytes([MAGIC]), i + 1)
        index.update(whole=whole, firsts=firsts, middles=middles, lasts=lasts)
    if msg in index["whole"]:
        return True
    starts = {len(d) for total, d in index["firsts"] if total == len(msg) and msg.startswith(d)}
    seen: set[int] = set()
    while starts:
        pos = starts.pop()
        if pos in seen:
            continue
        seen.add(pos)
        if msg[pos:] in index["lasts"]:
            return True
        starts |= {pos + len(m) for m in index["middles"] if msg.startswith(m, pos)}
    return False


def run(
    data: bytes,
    lanes: list[str] | None = None,
    watchdog: bool = False,
) -> dict[str, list[tuple[Any, ...]]]:
    """Run one fuzz input through every lane and check it; raises Finding.

    ``watchdog`` arms SIGALRM around each call (the fuzzing child processes do; inside
    pytest, pytest-timeout owns SIGALRM).
    """
    prog = decode(data)
    names = DEFAULT_LANES if lanes is None else lanes
    old = signal.signal(signal.SIGALRM, _on_alarm) if watchdog else None
    if watchdog:
        faulthandler.dump_traceback_later(_RUN_LIMIT, exit=True)  # writes, opens, closes
    opened: list[Lane] = []
    try:
        for name in names:
            opened.append(Lane(name, prog, watchdog))
        for chunk in prog.chunks:
            for lane in opened:
                lane.write(chunk)
                lane.drain()
        for lane in opened:
            lane.finish()
        _check(prog, opened)
    finally:
        for lane in opened:
            lane.close()
        if watchdog:
            signal.signal(signal.SIGALRM, old)
            faulthandler.cancel_dump_traceback_later()
    return {lane.name: lane.events for lane in opened}


def _check(prog: Program, lanes: list[Lane]) -> None:
    stream = prog.stream
    index: dict[str, Any] = {}
    for lane in lanes:
        r, events = lane.reader, lane.events
        if lane.eof:
            if events.count(("EOF",)) != 1 or events[-1] != ("EOF",):
                raise lane.fail(f"EOFError not last and once: {events[-3:]}")
            events = events[:-1]
        if prog.expected is not None:
            expected = prog.expected
            if lane.shared and prog.expected_shared is not None:
                expected = prog.expected_shared
            want = expected + (prog.expected_at_eof if lane.eof else [])
            if events != want:
                raise lane.fail(
                    f"events differ from the program's:\n got  {_short(events)}\n"
                    f" want {_short(want)}"
                )
            if r.skipped_bytes != prog.garbage:
                raise lane.fail(f"skipped_bytes {r.skipped_bytes} != garbage {prog.garbage}")
            if r.dropped_messages != prog.too_large:
                raise lane.fail(f"dropped_messages {r.dropped_messages} != {prog.too_large}")
            if prog.framing == "frames" and r.buffered:
                raise lane.fail(f"{r.buffered} bytes left buffered after a whole stream")
        else:
            for ev in events:
                if ev[0] == "m" and not _contained(ev[1], stream, index):
                    raise lane.fail(
                        f"delivered {ev[1][:40]!r}... ({len(ev[1])} bytes), "
                        "which is no frame of the stream"
                    )
    # The two cores are one contract: same events, same counters, lane for lane.  Except
    # where a loss warning (W) falls among the messages: the harness puts a call's
    # warnings before its messages, and which call parses a dropped message's bytes
    # depends on how much each read takes, which the cores choose differently around
    # large messages (the compiled one reads a fragment at a time there: get_many's
    # "one more read's worth" is smaller).  So the W's are compared by number; every
    # other event, in order.
    by_kind: dict[tuple[bool, bool], list[Lane]] = {}
    for lane in lanes:
        by_kind.setdefault(LANES[lane.name][1:], []).append(lane)
    for group in by_kind.values():
        for other in group[1:]:
            a, b = group[0], other
            same = _comparable(a) == _comparable(b)
            if not same:
                raise b.fail(
                    f"the cores disagree:\n {a.name}: {_short(a.events)} skipped="
                    f"{a.reader.skipped_bytes} dropped={a.reader.dropped_messages}\n {b.name}: "
                    f"{_short(b.events)} skipped={b.reader.skipped_bytes} "
                    f"dropped={b.reader.dropped_messages} ({prog.describe()})"
                )


def _comparable(lane: Lane) -> tuple[Any, ...]:
    """What the two cores must agree on (see _check): events but W in order, W's count."""
    events = [ev for ev in lane.events if ev != ("W",)]
    warned = len(lane.events) - len(events)
    return (events, warned, lane.reader.skipped_bytes, lane.reader.dropped_messages)


def _short(events: list[tuple[Any, ...]]) -> str:
    out = []
    for ev in events[:30]:
        out.append(f"m{len(ev[1])}:{ev[1][:8]!r}" if ev[0] == "m" else ev[0])
    return "[" + ", ".join(out) + (", ...]" if len(events) > 30 else "]")


def programs() -> Any:
    """A hypothesis strategy for fuzz inputs that are well-formed op lists (plus raw bytes)."""
    from hypothesis import strategies as st

    def message(payload: bytes) -> bytes:
        n = len(payload)
        return bytes([0, n]) + payload if n < 240 else bytes([0, 240, n >> 8, n & 255]) + payload

    tricky = st.sampled_from(
        [
            bytes([MAGIC]),
            bytes([MAGIC, 0]),
            header(0, 3)[:5],
            header(0, 1 << 20),
            b"\n",
            header(KIND_MIDDLE, 2),
            header(KIND_LAST, 0),
            header(KIND_FIRST, 8),
            b"\0" * 8,
        ]
    )
    junk = st.one_of(st.binary(min_size=1, max_size=64), tricky)
    sizes = st.lists(st.integers(0, 65535), min_size=1, max_size=5)
    op = st.one_of(
        st.binary(max_size=300).map(message),
        st.binary(max_size=4600).map(message),
        junk.map(lambda j: bytes([3, len(j) - 1]) + j),
        st.just(bytes([4])),
        st.just(bytes([4])),
        st.tuples(st.integers(0, 65535), st.integers(0, 1), st.integers(0, 255), sizes).map(
            lambda t: (
                bytes([5, t[0] >> 8, t[0] & 255, t[1], t[2], 2 * len(t[3]) - 1])
                + b"".join(x.to_bytes(2, "big") for x in t[3])
            )
        ),
        st.just(bytes([5, 16, 0, 0, 1, 0])),  # an ordinary 4097-byte large message
        st.just(bytes([6])),
        st.tuples(st.integers(0, 255), st.integers(0, (1 << 32) - 1), st.binary(max_size=40)).map(
            lambda t: bytes([7, t[0]]) + t[1].to_bytes(4, "little") + bytes([len(t[2])]) + t[2]
        ),
    )
    ops = st.integers(0, 40).flatmap(lambda n: st.lists(op, min_size=n, max_size=n))
    structured = st.tuples(st.integers(0, 255), ops).map(lambda t: bytes([t[0]]) + b"".join(t[1]))
    return st.one_of(structured, structured, st.binary(max_size=2048))


# ---------------------------------------------------------------------------- examples

SEEDS: list[bytes] = [
    # strict frames: messages, garbage, a boundary inside a header, a large message
    bytes([0, 0, 5])
    + b"hello"
    + bytes([3, 9])
    + b"not-frame!"
    + bytes([1, 2])
    + b"ok"
    + bytes([4, 0, 1])
    + b"x"
    + bytes([5, 40, 0, 0, 7, 0, 6, 6, 6, 6]),
    # raw frames with a forged header and a cut chunk
    bytes([2, 7, 0, 255, 255, 0, 0, 3]) + b"abc" + bytes([4, 0, 3]) + b"xyz",
    # lines with an overlong line for max_message_size=16
    bytes([1 | 12, 0, 40]) + b"a" * 40 + bytes([0, 3]) + b"abc" + bytes([4, 3, 5]) + b"tail!",
    # stop_at_eof, get_many(3), strict frames
    bytes([16 | 64, 0, 1]) + b"a" + bytes([0, 1]) + b"b" + bytes([4, 3, 2]) + b"zz",
]

#: Inputs the fuzzing found, replayed on every run: (name, input, lanes, None when fixed
#: or the KNOWN_BUGS key of an open bug, which makes the case a strict xfail).
_S = ["cython-shared", "python-shared"]
REGRESSIONS: list[tuple[str, bytes, list[str], str | None]] = [
    # The compiled shared reader segfaulted on any head shorter than a whole message (3
    # bytes of junk, then a chunk boundary): _claim_tee's "head incomplete" -2 collided
    # with its `except -2`.  Fixed in cd96155.
    ("shared-short-head-segfault", bytes.fromhex("00030261626304"), _S, None),
    # A shared stop_at_eof reader never handed out an unterminated last line (nor reported
    # a cut frame) and never reached EOFError.  Fixed in cd96155.
    ("shared-eof-unterminated-tail", bytes.fromhex("1103027477"), _S, None),
    # A shared reader part-way through a large message, with 3 stray bytes at the head of
    # the pipe, spun at 100% CPU past its timeout.  Fixed in c3742fc.
    ("shared-spin-on-stray-bytes", bytes.fromhex("00051000000100030261626304"), _S, None),
    # A shared lines reader that met the pipe empty inside an overlong line reported it
    # twice (MessageTooLargeError, then IncompleteMessageWarning) and let go of it, so
    # another reader could deliver the rest of the line.  Fixed in a0cf0c7.
    ("shared-overlong-line-twice", bytes.fromhex("0f00000310" + "00" * 17), _S, None),
    # A shared stop_at_eof reader inside an overlong last line (or a large message) when
    # the last writer left spun at 100% CPU for ever.  Fixed in a0cf0c7.
    ("shared-eof-overlong-tail", bytes.fromhex("1d0313" + "61" * 20), _S, None),
    # Exact-read claims (the no-tee path, macOS) waited without a deadline for the rest of
    # a frame or line (get(timeout=...) hung, holding the readers' lock).  Fixed: the
    # reader keeps the partial bytes and the lock, and its calls honour their timeouts.
    ("exact-claims-partial-frame", bytes.fromhex("00030261626304"), EXACT_LANES, None),
    # Not a bug but the oracle's: shared readers report bad bytes once per claim, so a run
    # split by a chunk boundary (after a claim took its first part) is reported twice.
    (
        "shared-junk-run-split-by-a-write",
        bytes.fromhex(
            "34040307c867143dd4adfcdc04000000000000000000000000060003b1233903132165fa1552bf46"
            "2595ce4e4d24f0f92e1c7dc45a040300c1078dffffffff01e50301a2330404050705010009a4d001"
            "8220d42d1d001607fe6ca90400012f055b6801450700ff0036005d46fd0003be5c86051000000100"
            "0307fa030013000000000300fa0307fa00109b0000100003000a00025719"
        ),
        _S + EXACT_LANES,
        None,
    ),
    # Not a bug but the oracle's: bytes that can never begin a header (a stray `echo`)
    # are now reported at once, even fewer than a header's worth, so a shared reader
    # claims them at the end of a write and the next write's junk is a run of its own.
    (
        "short-junk-reported-at-once",
        bytes.fromhex(
            "9c040304366885a086040304c213a01ff30510000001000603071905335c271ca27204000197"
            "05002200940900a403f02f3c0eb8246a0405100000010000013a04040307fa0300130000000007"
            "936b02000005c4fa797431"
        ),
        DEFAULT_LANES + EXACT_LANES,
        None,
    ),
    (
        "short-junk-reported-at-once-exact",
        bytes.fromhex(
            "e404040510000001000407ca8f00000002656507f02504000002da6c0600031ea101060008f849"
            "5dbf145f30ad0003c622600002f64305100000010006000a1e41fa0a526774d8014d0003211160"
            "04000c7649aa8dea6445de01e3c2ad0003c6226004040002f9c8040005499b83f3210304fa00a6"
            "da030005499b83f3210304fa00a6da030300fa00"
        ),
        DEFAULT_LANES + EXACT_LANES,
        None,
    ),
    # Not a bug but the oracle's: the compiled core reads a fragment at a time after a
    # large message's first fragment, so one get_many(timeout=0) parsed less than the
    # pure core's did, and a dropped message's warning came in the next call, after a
    # message instead of before it.  The cores now agree on the W's by number.
    (
        "cores-group-loss-warnings-by-their-reads",
        bytes.fromhex(
            "a20304fa00a6da0303000a0307fa03001300000000000a737806893110326e63d4000dc4267519c4"
            "58319a91b769a15e030d7105d4b2b62eac4e68be7187f75703077e238a6d733937b3060307fa026e"
            "9e02000000030831d151edcf689a4de8040307fa026e9e02000000074d6e1900000a4fbe06f923dc"
            "ec33d893050d4601600101140604040400068a1db72efa1104040500dc00970103c503009a0799d2"
            "02000001090510000001000510000001000304fa00a6da030301fa00060006019ef3d695b80307fa"
            "01bba20800000004"
        ),
        DEFAULT_LANES,
        None,
    ),
]


# ---------------------------------------------------------------------------- the tests


def _fuzz_child(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _report(proc: subprocess.CompletedProcess[str], last: str) -> str:
    text = f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    if "Falsifying" not in proc.stderr and os.path.exists(last):
        with open(last, "rb") as f:
            text += f"\ncrashing input: {f.read().hex()}"
    return text


@pytest.mark.parametrize("data", SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_seed_programs_decode_exactly(data):
    events = run(data)
    assert events  # and run() checked them against the program


def test_program_decoder_examples():
    prog = decode(SEEDS[0])
    assert prog.framing == "frames" and prog.strict and len(prog.chunks) == 2
    assert prog.expected[:3] == [("m", b"hello"), ("C",), ("m", b"ok")]
    assert prog.garbage == 10
    prog = decode(SEEDS[2])
    assert prog.expected[0] == ("L",) and prog.expected_at_eof == [("m", b"tail!")]
    assert _contained(b"hi", frame(b"hi"), {})
    big = random.Random(1).randbytes(9000)
    stream = b"junk" + b"".join(fragments(big, [4080, 4088])) + frame(b"x")
    assert _contained(big, stream, {}) and not _contained(big[:-1], stream, {})


@pytest.mark.parametrize(
    "data,lanes",
    [
        pytest.param(
            data,
            [x for x in lanes if x in DEFAULT_LANES + EXACT_LANES + KNOWN_BUG_LANES],
            id=name,
            marks=[pytest.mark.xfail(strict=True, reason="bug: " + KNOWN_BUGS[bug])] if bug else [],
        )
        for name, data, lanes, bug in REGRESSIONS
    ],
)
def test_regressions(data, lanes, tmp_path):
    last = str(tmp_path / "last")
    args = ["--replay-hex", data.hex(), "--lanes", ",".join(lanes), "--hang-seconds", "1"]
    proc = _fuzz_child([*args, "--last-input", last], timeout=60)
    assert proc.returncode == 0, _report(proc, last)


def test_fuzz_the_decoders(tmp_path):
    """~10 s of hypothesis-generated programs through both cores (CI's short run)."""
    last = str(tmp_path / "last")
    proc = _fuzz_child(["--hypothesis", "--seconds", "10", "--last-input", last], timeout=120)
    assert proc.returncode == 0, _report(proc, last)
    print(proc.stdout.strip().splitlines()[-1])


def test_fuzz_the_exact_claim_lanes(tmp_path):
    """The exact-read claim lanes (shared readers without tee, as on macOS).

    Once a strict xfail (they hung on a partial frame: see REGRESSIONS).
    """
    last = str(tmp_path / "last")
    proc = _fuzz_child(
        [
            "--hypothesis",
            "--seconds",
            "3",
            "--hang-seconds",
            "1",
            "--lanes",
            ",".join(EXACT_LANES),
            "--last-input",
            last,
        ],
        timeout=120,
    )
    assert proc.returncode == 0, _report(proc, last)


# ---------------------------------------------------------------------------- command line


def _hypothesis_run(args: argparse.Namespace, lanes: list[str]) -> int:
    """Batches of hypothesis examples (each batch a fresh random seed) until time is up."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    count = 0
    batch = min(args.examples, 200)
    phases = list(Phase) if args.shrink else [Phase.explicit, Phase.generate]

    @settings(
        max_examples=batch,
        deadline=None,
        database=None,
        derandomize=args.derandomize,
        suppress_health_check=list(HealthCheck),
        phases=phases,
        report_multiple_bugs=False,
    )
    @given(programs() | st.sampled_from(SEEDS))
    def one(data: bytes) -> None:
        nonlocal count
        count += 1
        _remember(args.last_input, data)
        run(data, lanes, watchdog=True)

    start = time.monotonic()
    while count < args.examples:
        one()
        if args.derandomize or (args.seconds and time.monotonic() - start >= args.seconds):
            break
    took = time.monotonic() - start
    print(
        f"fuzz: executions={count} lanes={','.join(lanes)} seconds={took:.1f} "
        f"rate={count / max(took, 1e-9):.0f}/s findings=0",
        flush=True,
    )
    return 0


def _remember(path: str | None, data: bytes) -> None:
    if path:
        with open(path, "wb") as f:
            f.write(data)


def _set_hang_seconds(seconds: float) -> None:
    global HANG_SECONDS
    HANG_SECONDS = seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fastfifo decoder fuzzing (hypothesis driver)")
    ap.add_argument("--hypothesis", action="store_true", help="generate inputs with hypothesis")
    ap.add_argument("--examples", type=int, default=1_000_000, help="at most this many inputs")
    ap.add_argument("--seconds", type=float, default=0, help="stop generating after this long")
    ap.add_argument("--max-len", type=int, default=2048, help="longest generated input")
    ap.add_argument(
        "--shrink",
        action="store_true",
        help="shrink a failing input (slow when the finding is a hang)",
    )
    ap.add_argument("--derandomize", action="store_true", help="the same inputs every run")
    ap.add_argument(
        "--lanes", default=",".join(DEFAULT_LANES), help=f"comma-separated, of {', '.join(LANES)}"
    )
    ap.add_argument(
        "--hang-seconds",
        type=float,
        default=HANG_SECONDS,
        help="the watchdog: a call with timeout=0 that takes longer is a hang",
    )
    ap.add_argument("--replay", nargs="*", default=[], help="input files to run once each")
    ap.add_argument("--replay-hex", nargs="*", default=[], help="inputs, in hex, to run once")
    ap.add_argument("--last-input", help="write each input here before running it")
    args = ap.parse_args(argv)
    _set_hang_seconds(args.hang_seconds)
    lanes = [x for x in args.lanes.split(",") if x]
    for name in lanes:
        if name not in LANES:
            ap.error(f"unknown lane {name!r}")
    inputs = [bytes.fromhex(h) for h in args.replay_hex]
    for path in args.replay:
        with open(path, "rb") as f:
            inputs.append(f.read())
    for data in inputs:
        _remember(args.last_input, data)
        events = run(data, lanes, watchdog=True)
        print(
            f"replay ok: {decode(data).describe()}: "
            + "; ".join(f"{k}={_short(v)}" for k, v in events.items())
        )
    if args.hypothesis:
        return _hypothesis_run(args, lanes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
