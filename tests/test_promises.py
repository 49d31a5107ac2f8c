"""Promises under hostile use, one test (or more) per class of bug.

Each class once broke a promise of the README or a docstring (issue 13): unchecked
arithmetic on user sizes, float-to-integer conversions of timeouts, waits that ignored
signals, SIGPIPE decided once at open, close() racing blocked threads, allocations that
failed for ever, claims larger than asked, losses reported late or never, bad input
without its path, and "only a FIFO is ever opened" being not quite literal.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import fcntl
import functools
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import losses_logged, proc_state

import fastfifo
from fastfifo import _core_py, aio

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="Linux only (tee, OFD locks, /proc, inotify)")

HUGE_COUNTS = [2**31, 2**62, sys.maxsize, 2**64, 10**30]


def frame(payload: bytes, kind: int = 0) -> bytes:
    return _core_py.encode_header(kind, len(payload)) + payload


def first_fragment(total: int, data: bytes) -> bytes:
    return _core_py.encode_header(1, len(data) + 8) + total.to_bytes(8, "little") + data


def collect(r, n: int, max_messages: int, timeout: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        got += r.get_many(max_messages=max_messages, timeout=timeout)
    return got


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
def test_any_max_messages_of_one_or_more_works(ff, fifo, shared):
    with ff.Reader(fifo, shared=shared) as r, ff.Writer(fifo) as w:
        for n in HUGE_COUNTS:
            w.put_many([b"x"] * 100)
            assert collect(r, 100, n) == [b"x"] * 100
            with pytest.raises(fastfifo.Empty):
                r.get_many(max_messages=n, timeout=0)
        kept = []
        for i in range(25):  # zero-copy batches kept alive while more arrive
            w.put_many([bytes([i]) * 4000] * 60)
            got = 0
            while got < 60:
                batch = r.get_batch(max_messages=sys.maxsize, timeout=5)
                kept.append((i, batch))
                got += len(batch)
        for i, batch in kept:
            assert all(bytes(m) == bytes([i]) * 4000 for m in batch)


def test_max_messages_must_be_an_int_of_at_least_one(ff, fifo):
    with ff.Reader(fifo) as r:
        for bad in (0, -1, -(2**70)):
            with pytest.raises(ValueError, match="max_messages") as e:
                r.get_many(max_messages=bad, timeout=0)
            assert fifo in str(e.value)
        for bad in (2.5, "3", None):
            with pytest.raises(TypeError, match="max_messages") as e:
                r.get_batch(max_messages=bad, timeout=0)
            assert fifo in str(e.value)


def test_size_options_of_any_size_are_checked_before_use(ff, fifo):
    with ff.Reader(fifo, max_message_size=2**80, pipe_size=2**80) as r:
        with ff.Writer(fifo, max_message_size=10**30, pipe_size=2**70) as w:
            w.put(b"y" * 10_000)
            assert r.get(timeout=5) == b"y" * 10_000
            if LINUX:  # asked for more than the system's pipe-max-size: given at most that
                with open("/proc/sys/fs/pipe-max-size") as f:
                    assert r.pipe_size <= max(int(f.read()), 1 << 20)
    for bad, exc in ((0, ValueError), (-1, ValueError), (1.5, TypeError), ("8", TypeError)):
        with pytest.raises(exc, match="max_message_size") as e:
            ff.Reader(fifo, max_message_size=bad)
        assert fifo in str(e.value)
        if bad != 0:  # pipe_size=0 keeps the pipe's size, as None does
            with pytest.raises(exc, match="pipe_size"):
                ff.Reader(fifo, pipe_size=bad)


# ---------------------------------------------------------------- timeouts


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 10**400, 1e13, 3600])
def test_huge_timeouts_wait_behind_another_thread(ff, fifo, timeout):
    """Once a bug: inf, 1e300 and 1e13 failed at once ("held the Reader for inf s")."""
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        first = threading.Thread(target=r.get, daemon=True)  # holds the Reader, waiting
        first.start()
        while True:  # until the first thread is inside
            try:
                r.get(timeout=0)
            except fastfifo.Empty as e:
                if "another thread" in str(e):
                    break
        out: list[object] = []
        second = threading.Thread(target=lambda: out.append(r.get(timeout=timeout)))
        second.start()
        second.join(0.3)
        assert second.is_alive() and not out, f"get(timeout={timeout!r}) ended: {out}"
        w.put_many([b"one", b"two"])
        first.join(10)
        second.join(10)
        assert out and out[0] in (b"one", b"two")


def test_a_long_lock_wait_sleeps_instead_of_spinning(ff, fifo):
    """Once a bug: timeout=3600 made the readers' lock wait sleep 1 us at a time."""
    holder = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.flock(holder, fcntl.LOCK_EX)
    cpu: list[float] = []
    try:
        with ff.Reader(fifo, shared=True) as r, ff.Writer(fifo) as w:
            w.put(b"waiting")

            def wait() -> None:
                c0, t0 = time.thread_time(), time.monotonic()
                with pytest.raises(fastfifo.ClosedError):
                    r.get(timeout=3600)
                cpu.append((time.thread_time() - c0) / (time.monotonic() - t0))

            t = threading.Thread(target=wait)
            t.start()
            t.join(0.5)
            r.close()
            t.join(10)
    finally:
        os.close(holder)
    assert cpu and cpu[0] < 0.1, f"the waiting thread used {cpu[0]:.0%} of a CPU"


def test_negative_timeouts_do_not_wait(ff, fifo):
    with ff.Reader(fifo, pipe_size=65536) as r, ff.Writer(fifo, pipe_size=65536) as w:
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=-1)
        with pytest.raises(fastfifo.Empty):
            r.get_many(timeout=-1e300)
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=-(10**400))
        while True:
            try:
                w.put(b"f" * 4000, timeout=-0.5)
            except fastfifo.Full:
                break
        assert r.get(timeout=5) == b"f" * 4000


def test_nan_and_non_numbers_are_refused_as_timeouts(ff, fifo):
    nan = float("nan")
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        calls = [
            lambda: r.get(timeout=nan),
            lambda: r.get_many(timeout=nan),
            lambda: r.get_batch(timeout=nan),
            lambda: w.put(b"x", timeout=nan),
            lambda: w.put_many([b"x"], timeout=nan),
            lambda: w.flush(timeout=nan),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="NaN"):
                call()
        with pytest.raises(TypeError, match="timeout"):
            r.get(timeout="1")
        w.put(b"still fine")
        assert r.get(timeout=5) == b"still fine"
    with pytest.raises(ValueError, match="NaN") as e:
        ff.Writer(fifo, open_timeout=nan)  # no reader: once waited for ever
    assert fifo in str(e.value)

    async def main() -> None:
        with pytest.raises(ValueError, match="NaN"):
            await aio.open_writer(fifo, open_timeout=nan)

    asyncio.run(main())


# ---------------------------------------------------------------- signals

_CHILD = """
import fcntl, importlib, os, signal, sys, threading
from fastfifo._endpoints import classes_for
from fastfifo import _core_py
Writer, Reader = classes_for(importlib.import_module({core!r}))
p = {path!r}
T = {timeout!r}
"""

_WAITS = {
    "the call lock": """
r = Reader(p)
threading.Thread(target=r.get, daemon=True).start()
while True:
    try:
        r.get(timeout=0)
    except Exception as e:
        if "another thread" in str(e):
            break
print("READY", flush=True)
r.get(timeout=T)
""",
    "the readers' lock": """
holder = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
fcntl.flock(holder, fcntl.LOCK_EX)
r = Reader(p, shared=True)
w = Writer(p)
w.put(b"waiting")
print("READY", flush=True)
r.get(timeout=T)
""",
    "the writers' lock": """
r = Reader(p)
holder = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
_core_py._ofd_lock(holder, fcntl.F_WRLCK)        # sending a large message...
_core_py._ofd_lock(holder, fcntl.F_WRLCK, 12345)  # ...as another open Writer does
w = Writer(p)
print("READY", flush=True)
w.put(b"L" * 100_000, timeout=T)
""",
    "an incomplete head": """
r = Reader(p, framing="lines", shared=True)
fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
os.write(fd, b"abc")
print("READY", flush=True)
r.get(timeout=T)
""",
    "data": """
r = Reader(p)
print("READY", flush=True)
r.get(timeout=T)
""",
    "room in a full pipe": """
r = Reader(p, pipe_size=65536)
w = Writer(p, pipe_size=65536)
try:
    while True:
        w.put(b"x" * 4000, timeout=0)
except Exception:
    pass
print("READY", flush=True)
w.put(b"x" * 4000, timeout=T)
""",
}


def _main_thread_sleeps(pid: int) -> bool:
    return proc_state(pid) == "S"


@linux_only
@pytest.mark.parametrize("timeout", [None, 3600.0], ids=["no-timeout", "timeout"])
@pytest.mark.parametrize("what", list(_WAITS))
def test_ctrl_c_ends_every_wait_at_once(ff, fifo, what, timeout):
    core = "fastfifo._core" if ff.name == "cython" else "fastfifo._core_py"
    code = _CHILD.format(core=core, path=fifo, timeout=timeout) + textwrap.dedent(_WAITS[what])
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert select.select([p.stdout], [], [], 30)[0], "the child never got ready"
        assert p.stdout.readline().strip() == "READY"
        # In the wait: the main thread sleeps in the kernel (twice in a row, 20 ms apart).
        deadline = time.monotonic() + 30
        while not (
            _main_thread_sleeps(p.pid) and time.sleep(0.02) is None and _main_thread_sleeps(p.pid)
        ):
            assert time.monotonic() < deadline, "the child never waited"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)  # its wait would last an hour (or for ever)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0 and "KeyboardInterrupt" in err, err


# ---------------------------------------------------------------- SIGPIPE

_SIGPIPE_CHILD = """
import ctypes, importlib, signal, time
from fastfifo._endpoints import classes_for
Writer, Reader = classes_for(importlib.import_module({core!r}))
p = {path!r}
r = Reader(p)
w = Writer(p, buffered={buffered!r})
if {how!r} == "python":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # the stdlib's idiom for CLI tools
else:
    ctypes.CDLL(None).signal(signal.SIGPIPE, 0)     # a C library, behind Python's back
    time.sleep(0.01)                                # (seen within a millisecond)
r.close()
try:
{op}
except BrokenPipeError as e:
    print("BROKEN", e.filename)
"""

_OPS = {
    "put": "    w.put(b'x')",
    "put_many": "    w.put_many([b'a', b'b'])",
    "large put": "    w.put(b'L' * 100_000)",
    "buffered close": "    w.put(b'x')\n    w.close()",
}


@pytest.mark.parametrize("how", ["python", "c"])
@pytest.mark.parametrize("op", list(_OPS))
def test_a_vanished_reader_never_kills_the_writer(ff, fifo, op, how):
    core = "fastfifo._core" if ff.name == "cython" else "fastfifo._core_py"
    code = _SIGPIPE_CHILD.format(
        core=core, path=fifo, buffered=op == "buffered close", how=how, op=_OPS[op]
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"the writer died (status {p.returncode}): {p.stderr}"
    assert p.stdout.split() == ["BROKEN", fifo]


# ---------------------------------------------------------------- close() and threads


def _fds_on(path: str) -> int:
    """How many of this process's descriptors are open on the FIFO at ``path``."""
    st = os.stat(path)
    n = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            other = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        n += (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
    return n


def _thread_sleeps(t: threading.Thread) -> bool:
    try:
        with open(f"/proc/self/task/{t.native_id}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except OSError:
        return False


@linux_only
@pytest.mark.parametrize("side", ["reader", "writer"])
def test_close_with_several_blocked_threads_closes_the_fifo(ff, fifo, side):
    """Once a bug: a thread that took the call lock after close() raised without closing."""
    for _ in range(30):
        keep = ff.Reader(fifo, pipe_size=65536) if side == "writer" else None
        end = ff.Writer(fifo, pipe_size=65536) if side == "writer" else ff.Reader(fifo)
        if side == "writer":
            while True:
                try:
                    end.put(b"x" * 4000, timeout=0)
                except fastfifo.Full:
                    break
            call = functools.partial(end.put, b"x" * 4000)
        else:
            call = end.get
        errors: list[BaseException] = []

        def blocked(call=call, errors=errors) -> None:
            try:
                call()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=blocked) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while not all(_thread_sleeps(t) for t in threads):  # all three inside, waiting
            assert time.monotonic() < deadline, "the threads never blocked"
        end.close()
        for t in threads:
            t.join(10)
        assert len(errors) == 3 and all(isinstance(x, fastfifo.ClosedError) for x in errors)
        if keep is not None:
            keep.close()
        assert _fds_on(fifo) == 0, "the FIFO is still open after close()"


# ---------------------------------------------------------------- memory

_NO_MEMORY_CHILD = """
import importlib, os, resource, sys
from fastfifo._endpoints import classes_for
import fastfifo
Writer, Reader = classes_for(importlib.import_module({core!r}))
r = Reader({path!r}, shared={shared!r})
os.write(1, b"READY\\n")
with open("/proc/self/status") as f:
    vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:")][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + (24 << 20), resource.RLIM_INFINITY))
got = [r.get(timeout=30)]
try:
    r.get(timeout=30)
except fastfifo.MessageTooLargeError as e:
    got.append("refused: " + str(e))
got += [r.get(timeout=30), r.get(timeout=30)]
for g in got:
    print(g if isinstance(g, str) else g.decode())
"""


@linux_only
@pytest.mark.parametrize("kind", ["fragments", "one frame"])
@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
def test_a_message_that_cannot_be_allocated_is_dropped_and_the_rest_delivered(
    ff, fifo, kind, shared
):
    core = "fastfifo._core" if ff.name == "cython" else "fastfifo._core_py"
    code = _NO_MEMORY_CHILD.format(core=core, path=fifo, shared=shared)
    env = dict(os.environ)  # under AddressSanitizer (scripts/sanitize.sh): fail, not abort
    # (and no quarantine: ASan keeps freed memory from reuse, which would use up the
    # child's small allowance before the large message comes)
    env["ASAN_OPTIONS"] = (
        env.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1:quarantine_size_mb=0"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline().strip() == "READY"
        with ff.Writer(fifo) as w:
            w.put(b"before")
            big = b"B" * (40 << 20)
            if kind == "fragments":
                w.put(big)
            else:  # a foreign writer: one frame, larger than the reader's buffer
                w.flush()
                fd = os.open(fifo, os.O_WRONLY)
                os.write(fd, frame(big))
                os.close(fd)
            w.put_many([b"after-1", b"after-2"])
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    lines = out.splitlines()
    assert child.returncode == 0, err
    assert lines[0] == "before" and lines[2:] == ["after-1", "after-2"], out
    assert lines[1].startswith("refused: ") and "could not be allocated" in lines[1]
    assert fifo in lines[1]


# ---------------------------------------------------------------- claims


@linux_only
def test_a_claim_mid_large_message_stays_within_max_messages(ff, fifo):
    """Once a bug: get_many(max_messages=1) took all 200 small messages in its peek window."""
    with ff.Reader(fifo, shared=True) as r:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        lock = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        _core_py._ofd_lock(lock, fcntl.F_WRLCK)  # as a Writer holds it for fragments
        big = b"G" * 6000
        smalls = [b"s%03d" % i for i in range(200)]
        os.write(fd, first_fragment(len(big), big[:3000]))
        os.write(fd, b"".join(frame(m) for m in smalls))
        os.write(fd, frame(big[3000:], kind=3))
        got: list[bytes] = []
        while len(got) < 201:
            got += r.get_many(max_messages=1, timeout=5)
            if len(got) < 200:  # (with the last small one, the last fragment may come too)
                assert r.buffered < 2 * 12, f"{r.buffered} bytes taken beyond one message"
        os.close(fd)
        os.close(lock)
    assert got[:200] == smalls and got[200] == big


# ---------------------------------------------------------------- reports


def test_every_dropped_message_is_reported_at_once(ff, fifo):
    """Once a bug: reports waited for the next read (so never came if the reader closed),
    and three drops made one warning."""
    r = ff.Reader(fifo)
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    with losses_logged(r"dropped a large message", count=3) as texts:
        for i in range(3):  # three large messages, each cut short by the next
            os.write(fd, first_fragment(10_000, b"%d" % i * 100))
        os.write(fd, frame(b"ok"))
        assert r.get(timeout=5) == b"ok"
        r.close()
    os.close(fd)
    assert all(fifo in t for t in texts) and r.dropped_messages == 3


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
def test_a_worker_loop_survives_a_stray_echo(ff, fifo, shared):
    """`echo hi > q` into a frames FIFO: reported once (path, count), the loop goes on."""
    with ff.Reader(fifo, shared=shared) as r:
        with ff.Writer(fifo) as w:
            w.put(b"job-1")
            subprocess.run(["sh", "-c", f"echo hi > '{fifo}'"], check=True, timeout=30)
            w.put(b"job-2")
        got = []
        with losses_logged(r"skipped 3 bytes", count=1) as texts:
            for msg in r:
                got.append(msg)
                if len(got) == 2:
                    break
        assert got == [b"job-1", b"job-2"] and fifo in texts[0]
        subprocess.run(["sh", "-c", f"echo hi > '{fifo}'"], check=True, timeout=30)
        with pytest.raises(fastfifo.CorruptStreamError, match="skipped 3 bytes"):
            r.get(timeout=5)  # get() raises it (no silent Empty)


# ---------------------------------------------------------------- errors name the path


def test_mkfifo_errors_name_the_path(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("")
    for path, exc in (
        (str(regular / "q"), NotADirectoryError),
        (str(tmp_path / "missing" / "q"), FileNotFoundError),
    ):
        with pytest.raises(exc) as e:
            fastfifo.mkfifo(path)
        assert e.value.filename == path and path in str(e.value)
    with pytest.raises(ValueError, match="mode"):
        fastfifo.mkfifo(str(tmp_path / "q"), mode=0o1000000)


def test_a_text_message_gets_a_hint(ff, fifo):
    with ff.Reader(fifo), ff.Writer(fifo) as w:
        with pytest.raises(TypeError, match=r"encode\(\)") as e:
            w.put("text")
        assert fifo in str(e.value) and "fastfifo.Queue" in str(e.value)
        with pytest.raises(TypeError, match=r"message 1 of the batch"):
            w.put_many([b"ok", "text"])


# ---------------------------------------------------------------- only a FIFO is opened


@linux_only
@pytest.mark.parametrize("side", ["Reader", "Writer"])
def test_something_else_at_the_path_is_never_opened(ff, tmp_path, side):
    """inotify reports every open of a file: refusing a regular file must not open it."""
    path = tmp_path / "not-a-fifo"
    path.write_text("data")
    libc = ctypes.CDLL(None, use_errno=True)
    ino = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert ino >= 0
    try:
        assert libc.inotify_add_watch(ino, str(path).encode(), 0x20) >= 0  # IN_OPEN
        with pytest.raises(fastfifo.NotAFifoError, match="regular file"):
            if side == "Writer":
                ff.Writer(str(path), open_timeout=0)
            else:
                ff.Reader(str(path))
        assert not select.select([ino], [], [], 0.05)[0], "the regular file was opened"
    finally:
        os.close(ino)


# ---------------------------------------------------------------- asyncio sizes


def test_aio_writer_sizes_buffers_in_bytes(ff, fifo):
    """Once a bug: len() of an array of 4,000 ints (16,000 bytes) said 4,000."""
    data = array.array("i", range(4000))

    r = ff.Reader(fifo, pipe_size=65536, shared=True)  # takes only what it returns

    async def main() -> list[bytes]:
        w = aio.Writer(ff.Writer(fifo, pipe_size=65536))
        filler = 0
        while True:  # fill the pipe, then make room for less than the array
            try:
                w.put_nowait(b"f" * 4000)
                filler += 1
            except fastfifo.Full:
                break
        got = [r.get(timeout=5), r.get(timeout=5)]
        sending = asyncio.ensure_future(w.put(data))  # must not start: no room for it all
        await asyncio.sleep(0)  # (it tries now)
        while len(got) < filler + 1:
            got += r.get_many(timeout=5)
            await asyncio.sleep(0)
        await sending
        await w.aclose()
        return got

    with losses_logged(count=0):  # never half-sent, so nothing dropped
        got = asyncio.run(main())
    r.close()
    assert got[-1] == data.tobytes() and all(m == b"f" * 4000 for m in got[:-1])
    assert r.dropped_messages == 0
