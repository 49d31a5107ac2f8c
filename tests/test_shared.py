"""Shared readers, large messages and crash safety (real processes, real SIGKILLs)."""

from __future__ import annotations

import array
import fcntl
import multiprocessing
import os
import signal
import subprocess
import sys
import termios
import threading
import time

import pytest
from helpers import (
    BACKENDS,
    KillSafeCounters,
    KillSafeFlag,
    catch_ctrl_c_and_go_on,
    check_message,
    check_two_consumers,
    collect_losses,
    ctrl_c_again_and_again,
    endpoints,
    losses_logged,
    make_message,
    sizes,
    stop_in_order,
)

import fastfifo

CTX = multiprocessing.get_context("fork")


def _writer(backend, path, wid, count, largest, batched):
    ns = endpoints(backend)
    msgs = [make_message(wid, seq, n) for seq, n in enumerate(sizes(wid, count, largest))]
    with ns.Writer(path) as w:
        if batched:
            for i in range(0, count, 61):
                w.put_many(msgs[i : i + 61])
        else:
            for m in msgs:
                w.put(m)


def _shared_reader(backend, path, out_path, done, progress, index, max_batch, exact):
    """Record (writer, seq) of every message taken, flushed after each claim."""
    import random

    from fastfifo import _endpoints

    _endpoints._FORCE_EXACT_CLAIMS = exact
    ns = endpoints(backend)
    rng = random.Random(os.getpid())
    with ns.Reader(path, shared=True) as r, open(out_path, "wb", buffering=0) as out:
        while True:
            try:
                n = rng.randint(1, max_batch)
                msgs = [r.get(timeout=0.5)] if n == 1 else r.get_many(n, timeout=0.5)
            except fastfifo.Empty:
                if done.is_set():
                    return
                continue
            ids = array.array("Q", [])
            for m in msgs:
                wid, seq = check_message(m)
                ids.append(wid << 32 | seq)
            out.write(ids.tobytes())
            progress.add(index, len(msgs))


def _read_ids(path):
    ids = array.array("Q")
    with open(path, "rb") as f:
        data = f.read()
    ids.frombytes(data[: len(data) // 8 * 8])
    return list(ids)


def _run_shared(
    backend, fifo, tmp_path, *, writers, readers, per_writer, kill=0, max_batch=20, exact=False
):
    done = KillSafeFlag()  # readers are SIGKILLed: no multiprocessing.Event/Value locks
    progress = KillSafeCounters(readers)
    largest = fastfifo.PIPE_BUF - 8
    outs = [str(tmp_path / f"reader{i}.ids") for i in range(readers)]
    rprocs = [
        CTX.Process(
            target=_shared_reader,
            args=(backend, fifo, outs[i], done, progress, i, max_batch, exact),
        )
        for i in range(readers)
    ]
    for p in rprocs:
        p.start()
    ns = endpoints(backend)
    # Hold the FIFO open so writers can open before the readers are up.
    keeper = ns.Reader(fifo, shared=True)
    wprocs = [
        CTX.Process(target=_writer, args=(backend, fifo, w, per_writer, largest, w % 2))
        for w in range(writers)
    ]
    for p in wprocs:
        p.start()
    killed = []
    total = writers * per_writer
    for k in range(kill):
        # Kill readers one after another while traffic flows, at whatever instant they are at.
        target = total * (k + 1) // (kill + 2)
        while progress.total() < target:
            time.sleep(0.001)
        victim = rprocs[k]
        os.kill(victim.pid, signal.SIGKILL)
        victim.join()
        killed.append(k)
    for p in wprocs:
        p.join(120)
        assert p.exitcode == 0
    done.set()
    for i, p in enumerate(rprocs):
        p.join(120)
        if i not in killed:
            assert p.exitcode == 0, f"reader {i} exited with {p.exitcode}"
    keeper.close()
    per_reader = [_read_ids(o) for o in outs]
    return per_reader, killed, total


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_writers_four_shared_readers_exactly_once(backend, fifo, tmp_path):
    per_reader, _, total = _run_shared(
        backend, fifo, tmp_path, writers=4, readers=4, per_writer=20_000
    )
    every = [i for ids in per_reader for i in ids]
    assert len(every) == total
    assert len(set(every)) == total  # no duplicates
    assert set(every) == {w << 32 | s for w in range(4) for s in range(20_000)}
    assert all(len(ids) > 0 for ids in per_reader), [len(ids) for ids in per_reader]


def test_exact_read_claims_without_tee_are_exactly_once_too(fifo, tmp_path):
    """The macOS claim path (no tee): exercised here by switching tee off."""
    per_reader, _, _ = _run_shared(
        BACKENDS[0], fifo, tmp_path, writers=2, readers=3, per_writer=5_000, exact=True
    )
    every = [i for ids in per_reader for i in ids]
    assert sorted(every) == sorted({w << 32 | s for w in range(2) for s in range(5_000)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_shared_readers_one_after_another(backend, fifo, tmp_path):
    max_batch = 10
    per_reader, killed, _ = _run_shared(
        backend,
        fifo,
        tmp_path,
        writers=4,
        readers=4,
        per_writer=10_000,
        kill=3,
        max_batch=max_batch,
    )
    every = [i for ids in per_reader for i in ids]
    assert len(every) == len(set(every)), "a message was delivered twice"
    sent = {w << 32 | s for w in range(4) for s in range(10_000)}
    assert set(every) <= sent
    lost = len(sent) - len(every)
    # A killed reader loses at most the claim it held (max_batch messages): taken from the
    # pipe but not yet recorded.  Nothing else may go missing.
    assert lost <= len(killed) * max_batch, f"lost {lost} with {len(killed)} kills"
    survivor = [ids for i, ids in enumerate(per_reader) if i not in killed]
    assert survivor and len(survivor[0]) > 0


def _big_writer(backend, path, wid, count):
    import random

    ns = endpoints(backend)
    rng = random.Random(wid)
    with ns.Writer(path) as w:
        for seq in range(count):
            size = rng.choice([16, 100, 4000, 5000, 70_000, 1_000_000, 3_000_000])
            w.put(make_message(wid, seq, size))


@pytest.mark.parametrize("shared", [False, True], ids=["one-reader", "shared-readers"])
def test_large_and_small_messages_from_three_writers_arrive_whole(ff, fifo, shared):
    count = 25
    procs = [CTX.Process(target=_big_writer, args=(ff.name, fifo, w, count)) for w in range(3)]
    readers = [ff.Reader(fifo, shared=shared) for _ in range(2 if shared else 1)]
    for p in procs:
        p.start()
    got = {}
    next_seq = [0, 0, 0]
    deadline = time.monotonic() + 120
    while len(got) < 3 * count and time.monotonic() < deadline:
        for r in readers:
            try:
                for m in r.get_many(max_messages=5, timeout=0.05):
                    wid, seq = check_message(m)
                    assert (wid, seq) not in got
                    got[wid, seq] = len(m)
                    if not shared:
                        assert seq == next_seq[wid]
                        next_seq[wid] += 1
            except fastfifo.Empty:
                pass
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for r in readers:
        assert r.dropped_messages == 0
        r.close()
    assert len(got) == 3 * count
    assert max(got.values()) > 1_000_000


def _fionread(fd):
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def _eight_mib_writer(backend, path):
    ns = endpoints(backend)
    with ns.Writer(path) as w:
        w.put(b"\x00" * (8 << 20))  # blocks part-way: nobody reads yet


@pytest.mark.parametrize("shared", [False, True], ids=["one-reader", "shared-reader"])
def test_writer_killed_mid_large_message(ff, fifo, shared):
    r = ff.Reader(fifo, shared=shared)
    victim = CTX.Process(target=_eight_mib_writer, args=(ff.name, fifo))
    victim.start()
    while _fionread(r.fileno()) < r.pipe_size // 2:  # it is part-way through the message
        time.sleep(0.001)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    with ff.Writer(fifo) as w:
        smalls = [b"after-%d" % i for i in range(50)]
        # The pipe is full of the dead writer's fragments: send from a thread while we read.
        sender = threading.Thread(target=w.put_many, args=(smalls,))
        sender.start()
        got = []
        with losses_logged("writer died"):
            while True:
                try:
                    got += r.get_many(timeout=1.0)
                except fastfifo.Empty:
                    break
        sender.join(30)
        assert got == smalls  # never the partial 8 MiB, never garbage
        assert r.dropped_messages == 1
        w.put(b"and on")
        assert r.get(timeout=5) == b"and on"
    r.close()


def _lines_reader(backend, path, out_path, done):
    ns = endpoints(backend)
    with ns.Reader(path, framing="lines", shared=True) as r, open(out_path, "w") as out:
        while True:
            try:
                for line in r.get_many(max_messages=7, timeout=0.5):
                    out.write(line.decode() + "\n")
            except fastfifo.Empty:
                if done.is_set():
                    return


@pytest.mark.parametrize("backend", BACKENDS)
def test_shell_echo_loops_into_three_shared_lines_readers(backend, fifo, tmp_path):
    n = 1500
    done = CTX.Event()
    outs = [str(tmp_path / f"lines{i}.txt") for i in range(3)]
    readers = [
        CTX.Process(target=_lines_reader, args=(backend, fifo, outs[i], done)) for i in range(3)
    ]
    keeper = endpoints(backend).Reader(fifo, framing="lines", shared=True)
    for p in readers:
        p.start()
    loops = [
        subprocess.Popen(
            [
                "sh",
                "-c",
                f'i=1; while [ $i -le {n} ]; do echo "w{w}-$i" > "{fifo}"; i=$((i+1)); done',
            ]
        )
        for w in range(3)
    ]
    for s in loops:
        assert s.wait(120) == 0
    done.set()
    for p in readers:
        p.join(60)
        assert p.exitcode == 0
    leftover = []
    try:
        leftover = [x.decode() for x in keeper.get_many(timeout=0)]
    except fastfifo.Empty:
        pass
    keeper.close()
    lines = leftover
    for o in outs:
        with open(o) as f:
            lines += f.read().split()
    expected = [f"w{w}-{i}" for w in range(3) for i in range(1, n + 1)]
    assert sorted(lines) == sorted(expected)
    assert len(lines) == len(set(lines))


def test_reader_inherited_across_fork_is_closed_in_the_child(ff, fifo):
    r = ff.Reader(fifo, shared=True)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            r.get(timeout=0)
        except fastfifo.ClosedError as e:
            code = 0 if "before fork" in str(e) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with ff.Writer(fifo) as w:  # the parent's Reader is untouched
        w.put(b"still mine")
    assert r.get(timeout=5) == b"still mine"
    r.close()


def test_large_message_limit_and_lines_limit(ff, fifo):
    with ff.Reader(fifo, max_message_size=1 << 20) as r:
        with ff.Writer(fifo, max_message_size=100_000) as w:
            with pytest.raises(fastfifo.MessageTooLargeError, match="max_message_size=100000"):
                w.put(b"x" * 100_001)
            w.put(b"y" * 100_000)
            assert r.get(timeout=5) == b"y" * 100_000
        with ff.Writer(fifo) as w:
            # Above the reader's limit: discarded as it arrives, reported.  (It is larger
            # than the pipe, so it is sent from a thread while we read.)
            sender = threading.Thread(target=w.put_many, args=([b"z" * 6_000_000, b"next"],))
            sender.start()
            with pytest.raises(fastfifo.MessageTooLargeError, match="6000000 bytes"):
                r.get(timeout=5)
            assert r.get(timeout=5) == b"next"
            sender.join(30)
            assert r.buffer_capacity < 3_000_000  # never the size of the discarded message
    with ff.Reader(fifo, framing="lines") as r, ff.Writer(fifo, framing="lines") as w:
        with pytest.raises(fastfifo.MessageTooLargeError, match="lines framing"):
            w.put(b"l" * fastfifo.PIPE_BUF)


def test_orphan_fragments_are_dropped_not_delivered(ff, fifo):
    """Fragments whose first part another reader took (and died with) never surface."""
    from fastfifo._core_py import encode_header

    with ff.Reader(fifo) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(
            fd,
            encode_header(2, 3)
            + b"mid"
            + encode_header(3, 3)
            + b"end"
            + encode_header(0, 2)
            + b"ok",
        )
        os.close(fd)
        with losses_logged("dropped", count=1):
            assert r.get(timeout=5) == b"ok"
            with pytest.raises(fastfifo.Empty):
                r.get(timeout=0.1)
        assert r.dropped_messages == 1


def test_shared_reader_with_an_unfinished_head_waits_and_then_reports(ff, fifo):
    """A line without its newline (or a few foreign bytes) at the head of a shared FIFO."""
    with ff.Reader(fifo, framing="lines", shared=True) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"no newline yet")
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.1)
        os.write(fd, b"... now\n")
        os.close(fd)
        assert r.get(timeout=5) == b"no newline yet... now"
    with ff.Reader(fifo, shared=True) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, fastfifo._core_py.encode_header(0, 5)[:3])  # may yet become a header
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.1)
        os.write(fd, fastfifo._core_py.encode_header(0, 5)[3:] + b"whole")
        os.close(fd)
        assert r.get(timeout=5) == b"whole"
    with ff.Reader(fifo, shared=True) as r:
        # 2 bytes that can never begin a header (a stray shell write into a frames FIFO)
        # are reported at once, not waited on for ever.
        subprocess.run(["sh", "-c", f"printf hi > '{fifo}'"], check=True, timeout=30)
        with pytest.raises(fastfifo.CorruptStreamError, match="skipped 2 bytes"):
            r.get(timeout=5)


def test_a_frame_whose_header_came_before_its_payload_goes_whole_to_one_reader(ff, fifo):
    """A one-message claim peeks at the header only, then reads the frame it announces.
    A foreign writer's frame in two writes (header and a little payload, then the rest)
    still reaches exactly one of two shared readers, whole; the other takes nothing of it,
    and the messages after it arrive as usual."""
    from fastfifo._core_py import encode_header

    frame = encode_header(0, 100) + bytes(range(100))
    with ff.Reader(fifo, shared=True) as r1, ff.Reader(fifo, shared=True) as r2:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, frame[:18])
        for r in (r1, r2, r1):
            with pytest.raises(fastfifo.Empty):
                r.get(timeout=0.05)
        os.write(fd, frame[18:] + encode_header(0, 4) + b"next")
        os.close(fd)
        got = []
        for r in (r2, r1, r2, r1):
            try:
                got.append(r.get(timeout=0.2))
            except fastfifo.Empty:
                pass
        assert got == [bytes(range(100)), b"next"]
        assert r1.skipped_bytes == r2.skipped_bytes == 0


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="macOS's poll() never reports the last writer leaving, and shared readers wait "
    "in poll() (docs/guide.md, macOS limits)",
)
def test_shared_stop_at_eof_reader_waits_for_a_first_writer_then_ends(ff, fifo):
    with ff.Reader(fifo, shared=True, stop_at_eof=True) as r:
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=0.2)  # no writer yet: not the end
        subprocess.run(["sh", "-c", f"printf 'a\\nlast' > '{fifo}'"], check=True, timeout=30)
    with ff.Reader(fifo, framing="lines", shared=True, stop_at_eof=True) as r:
        subprocess.run(["sh", "-c", f"printf 'a\\nlast' > '{fifo}'"], check=True, timeout=30)
        assert list(r) == [b"a", b"last"]


def test_a_socket_at_the_path_is_not_a_fifo(ff, tmp_path):
    import socket

    path = str(tmp_path / "sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    try:
        with pytest.raises(fastfifo.NotAFifoError, match="socket"):
            ff.Reader(path)
        with pytest.raises(fastfifo.NotAFifoError, match="socket"):
            ff.Writer(path, open_timeout=5)
    finally:
        s.close()


def _endless_seq_writer(backend, path, stop, count, limit):
    """Write 32-byte messages numbered 0, 1, ... until ``stop``; then b"END"."""
    ns = endpoints(backend)
    with ns.Writer(path) as w:
        i = 0
        while not stop.is_set() and i < limit - 64:
            w.put_many([i.to_bytes(8, "little") + b"." * 24 for i in range(i, i + 64)])
            i += 64
        count.value = i
        w.put(b"END")


def _interrupted_reader(backend, path, taken, gets, ints, ready, done, many):
    """A shared reader that catches the KeyboardInterrupt a SIGINT raises inside a get()
    and goes on taking, until ``done``."""
    with endpoints(backend).Reader(path, shared=True) as r:

        def take():
            return r.get_many(many, timeout=0.05) if many else [r.get(timeout=0.05)]

        def record(m):
            taken[int.from_bytes(m[:8], "little")] = 1

        catch_ctrl_c_and_go_on(take, record, gets, ints, ready, done)


@pytest.mark.parametrize("many", [0, 16], ids=["get", "get_many"])
def test_a_shared_reader_that_catches_ctrl_c_and_goes_on_breaks_nothing(ff, fifo, many):
    """Ctrl-C a shared reader again and again while it takes messages; it catches each
    KeyboardInterrupt and goes on.  What an interrupted get() was returning may be lost
    (as when the reader is killed), and nothing else: no message is delivered twice, the
    other reader sees no half-taken message (CorruptStreamError, a loss logged), and
    both go on taking messages (no lock left held, no false ClosedError)."""
    limit = 1 << 24  # (far more than the writer can write before it is stopped)
    taken = CTX.Array("b", limit, lock=False)
    gets, ints = CTX.Value("l", 0, lock=False), CTX.Value("l", 0, lock=False)
    stop, ready, done, count = CTX.Event(), CTX.Event(), CTX.Event(), CTX.Value("l", 0)
    got, errors = [], []
    with ff.Reader(fifo, shared=True) as survivor_r, collect_losses() as logged:

        def survive() -> None:
            while True:
                try:
                    m = survivor_r.get(timeout=60)
                except fastfifo.CorruptStreamError as e:
                    errors.append(e)
                    continue
                if m == b"END":
                    return
                got.append(int.from_bytes(m[:8], "little"))

        writer = CTX.Process(target=_endless_seq_writer, args=(ff.name, fifo, stop, count, limit))
        args = (ff.name, fifo, taken, gets, ints, ready, done, many)
        victim = CTX.Process(target=_interrupted_reader, args=args)
        survivor = threading.Thread(target=survive)
        victim.start()
        writer.start()
        survivor.start()
        try:
            ctrl_c_again_and_again(victim, gets, ready, seed=2)
        finally:
            stop_in_order(done, victim, stop, writer, survivor)
    assert victim.exitcode == 0, f"the reader died (exit code {victim.exitcode})"
    assert not survivor.is_alive(), "the other reader stopped taking"
    assert not errors, f"the other reader saw a half-taken message: {errors[0]}"
    assert not logged, logged
    assert ints.value > 0, "no get() was interrupted: the test tested nothing"
    check_two_consumers(count.value, got, taken, ints.value * max(many, 1))
