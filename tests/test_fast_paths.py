"""Buffered writers, zero-copy batch receive: fast, and still whole, once, in order."""

from __future__ import annotations

import fcntl
import gc
import os
import sys
import threading
import time

import pytest

import fastfifo


def test_buffered_put_packs_and_flush_sends(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo, buffered=True) as w:
        w.put(b"one")
        w.put(b"two")
        assert w.pending == 2
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0)  # buffered: nothing written yet
        w.flush()
        assert w.pending == 0
        assert r.get_many(timeout=5) == [b"one", b"two"]


def test_buffered_writer_writes_when_a_page_fills_and_on_close(ff, fifo):
    msgs = [b"%05d" % i + b"." * 95 for i in range(1000)]
    with ff.Reader(fifo) as r:
        w = ff.Writer(fifo, buffered=True)
        for m in msgs:
            w.put(m)
        assert 0 < w.pending < fastfifo.PIPE_BUF // 100  # everything else went out
        w.close()  # flushes the rest
        got = []
        while len(got) < len(msgs):
            got += r.get_many(timeout=5)
    assert got == msgs


def test_buffered_writer_mixes_with_large_messages_and_put_many_in_order(ff, fifo):
    big = os.urandom(300_000)
    with ff.Reader(fifo) as r:
        with ff.Writer(fifo, buffered=True) as w:
            w.put(b"a")
            w.put_many([b"b", b"c"])  # flushes "a" first
            w.put(b"d")
            sender = threading.Thread(target=w.put, args=(big,))  # flushes "d" first
            sender.start()
            got = []
            while len(got) < 5:
                got += r.get_many(timeout=5)
            sender.join(10)
            w.put(b"e")
        assert got == [b"a", b"b", b"c", b"d", big]
        assert r.get(timeout=5) == b"e"  # leaving the with block flushed it


def test_fork_never_sends_buffered_messages_twice(ff, fifo):
    with ff.Reader(fifo) as r:
        w = ff.Writer(fifo, buffered=True)
        w.put(b"parent's")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                w.put(b"child's")  # the child's copy is closed: it cannot send the buffer
            except fastfifo.ClosedError as e:
                code = 0 if "before fork" in str(e) else 2
            with ff.Writer(fifo) as own:  # its own Writer works
                own.put(b"child's own")
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        w.put(b"parent's second")  # the parent's Writer is untouched
        w.close()
        got = []
        while True:
            try:
                got += r.get_many(timeout=0.2)
            except fastfifo.Empty:
                break
    assert sorted(got) == [b"child's own", b"parent's", b"parent's second"]


def test_closing_inherited_endpoints_in_a_child_leaves_the_parents_working(ff, fifo):
    r = ff.Reader(fifo, pipe_size=None)
    w = ff.Writer(fifo, pipe_size=None)
    pid = os.fork()
    if pid == 0:
        w.close()
        r.close()
        os._exit(0)
    os.waitpid(pid, 0)
    while True:  # the parent's waits must not be woken by the child's close()
        try:
            w.put(b"x" * 1000, timeout=0.05)
        except fastfifo.Full:
            break
    assert r.get(timeout=5) == b"x" * 1000
    w.close()
    r.close()


def test_batches_are_zero_copy_and_never_overwritten(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        first = [b"A%03d" % i * 10 for i in range(300)]
        w.put_many(first)
        batches = []
        while sum(len(b) for b in batches) < len(first):
            batches.append(r.get_batch(max_messages=100, timeout=5))
        views = [v for b in batches for v in b]
        assert all(isinstance(v, memoryview) and v.readonly for v in views)
        # Much more traffic: the reader must not reuse the bytes our batches point to.
        for _ in range(20):
            w.put_many([b"B" * 4000] * 200)
            while True:
                try:
                    r.get_batch(timeout=0)
                except fastfifo.Empty:
                    break
        assert [bytes(v) for v in views] == first
        assert [m for b in batches for m in b.tolist()] == first
        assert bytes(batches[0][-1]) == first[len(batches[0]) - 1]
        if ff.name == "cython":
            assert views[1].obj is views[0].obj  # one buffer behind them: no copies
        with pytest.raises(TypeError):
            views[0][0] = 0  # read-only
        with pytest.raises(IndexError):
            batches[0][len(batches[0])]


def test_dropping_batches_lets_the_reader_reuse_its_buffer(ff, fifo):
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        w.put_many([b"x" * 50] * 10)
        batch = r.get_batch(timeout=5)
        owner = batch[0].obj
        del batch
        gc.collect()
        w.put_many([b"y" * 50] * 10)
        again = r.get_batch(timeout=5)
        assert again.tolist() == [b"y" * 50] * 10
        if ff.name == "cython":
            assert again[0].obj is owner  # reused, not reallocated


def test_batches_with_large_messages_shared_readers_and_lines(ff, fifo):
    big = os.urandom(100_000)
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        w.put_many([b"s1", big, b"s2"])
        got = []
        while len(got) < 3:
            got += r.get_batch(timeout=5).tolist()
        assert got == [b"s1", big, b"s2"]
    with ff.Reader(fifo, shared=True, framing="lines") as r:
        with ff.Writer(fifo, framing="lines") as w:
            w.put_many([b"l1", b"l2", b"l3"])
        got = []
        while len(got) < 3:
            got += [bytes(v) for v in r.get_batch(max_messages=2, timeout=5)]
    assert got == [b"l1", b"l2", b"l3"]


def test_close_from_another_thread_wakes_a_blocked_buffered_writer(ff, fifo):
    with ff.Reader(fifo):
        w = ff.Writer(fifo, buffered=True, pipe_size=None)
        try:
            while True:  # fill the pipe through the buffer
                w.put(b"x" * 1000, timeout=0)
        except fastfifo.Full:
            pass
        errors = []

        def blocked():
            try:
                w.put(b"y" * 1000, timeout=None)
            except Exception as e:
                errors.append(e)

        t = threading.Thread(target=blocked)
        t.start()
        t.join(0.2)
        assert t.is_alive()
        w.close()  # must not wait behind the blocked put to flush
        t.join(5)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], fastfifo.ClosedError)


# ---------------------------------------------------------------- the sole writer's one write

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="presence locks are OFD locks on the FIFO (Linux)"
)


def _writes() -> int:
    """write()/writev() system calls this process has made (/proc/self/io, syscw)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscw:"))


def _drain_whole(r, n: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        got += r.get_many(timeout=5)
    return got


@linux_only
def test_a_sole_writer_sends_a_large_message_in_one_write(ff, fifo):
    """The pure-Python core in one writev() of all its fragments; the compiled core
    builds them in pages of its own and hands those to the pipe (one vmsplice(), which
    is no write(): the kernel copies nothing in)."""
    big = bytes(range(256)) * 256  # 64 KiB: 17 fragments of at most PIPE_BUF bytes
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        before = _writes()
        w.put(big)
        assert _writes() - before == (0 if ff.name == "cython" else 1)
        assert _drain_whole(r, 1) == [big]


@linux_only
def test_a_sole_writers_large_message_is_what_put_got_not_what_its_buffer_became(ff, fifo):
    """A burst is built in the Writer's own pages: a buffer the caller changes (or
    frees) as soon as ``put`` returns has no part in what the reader gets."""
    buf = bytearray(b"A" * 200_000)
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        w.put(buf)
        w.put(memoryview(buf)[:70_000])
        buf[:] = b"B" * len(buf)
        assert _drain_whole(r, 2) == [b"A" * 200_000, b"A" * 70_000]


def _numbered(i: int, size: int) -> bytes:
    return i.to_bytes(4, "little") * (size // 4)


@linux_only
def test_a_sole_writer_reuses_its_pages_only_after_the_pipe_let_them_go(ff, fifo):
    """The compiled core's sole Writer hands pages of a ring to the pipe and writes them
    again later: many times the ring's size of distinct messages, read by a reader that
    lags, arrive as sent.  (With a ring of half the pipe they do not.)  Midway another
    process grows the pipe, and the Writer takes a larger ring: the old one's pages
    still in the pipe keep what they hold."""
    size, count = 65536, 600  # 39 MB; the ring is 2 MiB, then 3.5 MiB
    with ff.Reader(fifo) as r:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the writer child
            code = 1
            try:
                with ff.Writer(fifo, pipe_size=1 << 19) as w:
                    for i in range(count):
                        if i == count // 2:
                            other = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                            fcntl.fcntl(other, fcntl.F_SETPIPE_SZ, 1 << 20)
                            os.close(other)
                        w.put(_numbered(i, size))
                code = 0
            finally:
                os._exit(code)
        # The reader lags: it takes a message only while the pipe is at least three
        # quarters full (or the writer has finished), so the pipe holds as many of the
        # Writer's pages as it can whenever the Writer builds the next ones.
        from fastfifo._open import bytes_waiting, pipe_capacity

        bad, status = [], None
        for i in range(count):
            while status is None:
                if bytes_waiting(r.fileno()) * 4 >= pipe_capacity(r.fileno()) * 3:
                    break
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = code
            if r.get(timeout=30) != _numbered(i, size):
                bad.append(i)
        if status is None:
            status = os.waitpid(pid, 0)[1]
        assert status == 0
    assert bad == []


@linux_only
def test_a_reader_that_splices_into_a_pipe_of_its_own_reads_what_was_sent(ff, fifo, tmp_path):
    """A reader that moves a sole Writer's large messages out of the FIFO with splice()
    and reads them from its own pipe only after the FIFO has filled again behind them
    (one pipe's worth held in ours: the documented margin is two) reads them as sent."""
    from fastfifo._open import bytes_waiting

    size = 65536
    first = [_numbered(i, size) for i in range(12)]
    later = [_numbered(100 + i, size) for i in range(12)]
    with ff.Reader(fifo, pipe_size=1 << 20) as r, ff.Writer(fifo) as w:
        mine_r, mine_w = os.pipe()
        try:
            fcntl.fcntl(mine_w, fcntl.F_SETPIPE_SZ, 1 << 20)
            for m in first:
                w.put(m)
            want = moved = bytes_waiting(r.fileno())
            while moved:  # the FIFO's bytes, moved (not copied) into our pipe
                moved -= os.splice(r.fileno(), mine_w, moved)
            for m in later:  # the Writer fills the FIFO again
                w.put(m)
            raw = b""
            while len(raw) < want:
                raw += os.read(mine_r, want - len(raw))
            assert _drain_whole(r, len(later)) == later
        finally:
            os.close(mine_r)
            os.close(mine_w)
    # What our pipe held, read as a stream by a Reader of a FIFO of its own.
    again = fastfifo.mkfifo(str(tmp_path / "again"))
    with ff.Reader(again, pipe_size=1 << 20) as r2:
        fd = os.open(again, os.O_WRONLY)
        try:
            os.write(fd, raw)
        finally:
            os.close(fd)
        assert _drain_whole(r2, len(first)) == first


@linux_only
def test_with_another_writer_open_each_fragment_is_its_own_write(ff, fifo):
    big = b"F" * 65536
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w, ff.Writer(fifo):
        before = _writes()
        w.put(big)
        assert _writes() - before == 17  # atomic writes of <= PIPE_BUF: none interleave
        assert _drain_whole(r, 1) == [big]


@linux_only
def test_a_writer_that_opens_during_a_burst_waits_until_it_is_over(ff, fifo):
    """A burst holds the burst byte's lock from before it looks for other Writers until
    its fragments are whole; a Writer that opens meanwhile was not seen, so it waits at
    open (at most BURST_WAIT) and writes nothing into the burst."""
    from fastfifo._endpoints import BURST_WAIT
    from fastfifo._py_clock import _ofd_lock

    with ff.Reader(fifo) as r:
        burst = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a sole Writer, mid-burst
        _ofd_lock(burst, fcntl.F_WRLCK, 1)
        opened: list = []
        t = threading.Thread(target=lambda: opened.append(ff.Writer(fifo, open_timeout=30)))
        t.start()
        t.join(BURST_WAIT / 4)
        assert t.is_alive() and not opened  # still waiting: the burst is not over
        _ofd_lock(burst, fcntl.F_UNLCK, 1)
        t.join(30)
        with opened[0] as w:
            w.put(b"after")
        # A burst that does not end (its writer stopped) delays an open, never blocks it.
        _ofd_lock(burst, fcntl.F_WRLCK, 1)
        t0 = time.monotonic()
        with ff.Writer(fifo) as w:
            assert BURST_WAIT <= time.monotonic() - t0 < BURST_WAIT + 5
            w.put(b"later")
        os.close(burst)
        assert _drain_whole(r, 2) == [b"after", b"later"]


@linux_only
@pytest.mark.parametrize("how", ["open_timeout=0", "aio.Writer"])
def test_a_writer_that_never_waits_for_a_reader_still_waits_out_a_burst(ff, fifo, how):
    """open_timeout is how long to wait for a reader; a Writer opened with 0 (the default
    of fastfifo.aio.Writer) writes at once, so it must wait out a burst it was too late
    to be seen by as much as any other: it did not wait at all, and its messages could
    land inside a fragment the burst was finishing."""
    from fastfifo import aio
    from fastfifo._endpoints import BURST_WAIT
    from fastfifo._py_clock import _ofd_lock

    def open_one():
        return ff.Writer(fifo, open_timeout=0) if how == "open_timeout=0" else aio.Writer(fifo)

    with ff.Reader(fifo) as r:
        burst = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a sole Writer, mid-burst
        _ofd_lock(burst, fcntl.F_WRLCK, 1)
        opened: list = []
        t = threading.Thread(target=lambda: opened.append(open_one()))
        t.start()
        t.join(BURST_WAIT / 4)
        assert t.is_alive() and not opened  # still waiting: the burst is not over
        _ofd_lock(burst, fcntl.F_UNLCK, 1)
        t.join(30)
        w = opened[0]
        (w if how == "open_timeout=0" else w.writer).put(b"after")
        w.close()
        os.close(burst)
        assert _drain_whole(r, 1) == [b"after"]


@linux_only
def test_a_sole_writer_does_not_burst_while_another_holds_the_burst_byte(ff, fifo):
    """Another Writer taking the burst byte (opening, or bursting itself) makes a sole
    Writer send fragments one atomic write each, as when it is not alone."""
    from fastfifo._py_clock import _ofd_lock

    big = b"B" * 65536
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        other = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        _ofd_lock(other, fcntl.F_WRLCK, 1)
        before = _writes()
        w.put(big)
        assert _writes() - before == 17
        os.close(other)
        assert _drain_whole(r, 1) == [big]


@linux_only
def test_a_named_queue_is_seen_by_a_writer_of_its_fifo(fifo):
    """A named Queue's puts could land inside a burst it did not see: it holds a
    presence lock, so a Writer of the same FIFO never bursts while it is open."""
    big = b"Q" * 65536
    q = fastfifo.Queue(fifo, raw=True)
    with fastfifo.Writer(fifo) as w:
        before = _writes()
        w.put(big)
        assert _writes() - before == 17
    assert q.get(timeout=5) == big
    q.close()


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
def test_large_messages_from_a_sole_writer_arrive_whole(ff, fifo, shared):
    """Larger than the pipe and the shared readers' peek window too, sent in bursts."""
    sizes = [5000, 65536, 300_000, 3]
    msgs = [bytes([i]) * n for i, n in enumerate(sizes)]
    with ff.Reader(fifo, shared=shared) as r, ff.Writer(fifo) as w:
        got: list[bytes] = []
        sender = threading.Thread(target=lambda: [w.put(m) for m in msgs])
        sender.start()
        while len(got) < len(msgs):
            got += r.get_many(timeout=10)
        sender.join(10)
    assert got == msgs


# ---------------------------------------------------------------- fragments read in place

_MIDDLE = fastfifo.PIPE_BUF - 8  # a MIDDLE fragment's payload as Linux writers cut them


def _fragments(msg: bytes) -> list[bytes]:
    """``msg`` as a Writer's FIRST, MIDDLE... and LAST fragments (raw frames)."""
    from fastfifo._core_py import encode_header

    first = msg[: _MIDDLE - 8]
    out = [encode_header(1, len(first) + 8) + len(msg).to_bytes(8, "little") + first]
    at = len(first)
    while at < len(msg):
        chunk = msg[at : at + _MIDDLE]
        at += len(chunk)
        out.append(encode_header(3 if at == len(msg) else 2, len(chunk)) + chunk)
    return out


class _RawWriter:
    """A writer of raw frames that holds the writers' lock (byte 0) as a Writer does
    while it sends a large message, so readers wait for the rest instead of dropping it."""

    def __init__(self, fifo: str) -> None:
        from fastfifo._py_clock import _ofd_lock

        self.fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        _ofd_lock(self.fd, fcntl.F_WRLCK, 0)

    def send(self, data: bytes) -> None:
        assert os.write(self.fd, data) == len(data)  # the pipe has room: 1 MiB

    def __enter__(self) -> _RawWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # (and with it the lock)


@pytest.mark.parametrize("split", ["after the first", "inside a middle one"])
def test_a_small_message_between_fragments_read_in_place_comes_whole(ff, fifo, split):
    """The compiled core reads a large message's middle fragments straight into it; a
    message of another writer between them (the protocol allows it) breaks that off and
    is parsed as usual, and both messages arrive whole.  The first part is sent and
    parsed first, so that the rest is read while a message is being reassembled."""
    big = _numbered(7, 100_000)
    frags = _fragments(big)
    small = b"from another writer"
    from fastfifo._core_py import encode_header

    stream = frags[0] + b"".join(frags[1:4]) + encode_header(0, len(small)) + small
    stream += b"".join(frags[4:])
    cut = len(frags[0]) + (0 if split == "after the first" else 1000)
    with ff.Reader(fifo) as r, _RawWriter(fifo) as w:
        w.send(stream[:cut])
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0)  # takes the first fragment (and part of the next)
        w.send(stream[cut:])
        assert r.get(timeout=5) == small
        assert r.get(timeout=5) == big
        assert r.dropped_messages == 0


def test_a_first_fragment_among_middle_ones_read_in_place_drops_the_message_cut_short(ff, fifo):
    """A writer that died part-way through a large message, and a new one: its first
    fragment among what is read in place ends the old message (dropped, counted) and
    the new message arrives whole."""
    old, new = _numbered(1, 100_000), _numbered(2, 60_000)
    old_frags, new_frags = _fragments(old), _fragments(new)
    with ff.Reader(fifo) as r, _RawWriter(fifo) as w:
        w.send(old_frags[0])
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0)
        w.send(b"".join(old_frags[1:6]) + b"".join(new_frags))
        assert r.get(timeout=5) == new
        assert r.dropped_messages == 1
