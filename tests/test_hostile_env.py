"""Hostile peers and hostile environments, each with its documented behaviour.

docs/SECURITY.md says what fastfifo checks and what it cannot protect against; these
tests hold it to that.  (tests/test_hostile.py covers hostile *bytes* for one reader; here
are shared readers, stalled and stopped writers, swapped paths, foreign owners, running
out of file descriptors and the 8 KiB pipes of a user over the pipe quota.)

Bugs found while writing these are tests at the end, each with its reproduction: strict
xfail while open, regression tests once fixed (the fuzzing ones are also in
tests/test_fuzz.py: KNOWN_BUGS while open, REGRESSIONS).
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import termios
import textwrap
import threading
import time
import tracemalloc

import pytest
from helpers import BACKENDS, endpoints, losses_logged

import fastfifo
from fastfifo import _core_py, _endpoints
from fastfifo._core_py import encode_header

CTX = multiprocessing.get_context("fork")
LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="a Linux kernel feature (tee, F_SETPIPE_SZ)")
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def frame(payload: bytes, kind: int = 0) -> bytes:
    return encode_header(kind, len(payload)) + payload


def first_fragment(total: int, data: bytes) -> bytes:
    return encode_header(1, len(data) + 8) + total.to_bytes(8, "little") + data


def raw_writer(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_NONBLOCK)


def fionread(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def timed_get(r, timeout):
    """(result or exception type, wall seconds, CPU seconds of this process)."""
    t, c = time.monotonic(), time.process_time()
    try:
        out = r.get(timeout=timeout)
    except (fastfifo.Empty, fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError) as e:
        out = type(e)
    return out, time.monotonic() - t, time.process_time() - c


def drain(readers, timeout=0.0, rounds=10_000):
    """Messages (per reader) and errors until every reader reports Empty."""
    got = {id(r): [] for r in readers}
    errors = []
    for _ in range(rounds):
        quiet = 0
        for r in readers:
            try:
                got[id(r)] += r.get_many(timeout=timeout)
            except fastfifo.Empty:
                quiet += 1
            except (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError) as e:
                errors.append(e)
        if quiet == len(readers):
            return [got[id(r)] for r in readers], errors
    raise AssertionError("the readers never went quiet")


def collect(reader, n, seconds):
    """get_many() until ``n`` messages came or ``seconds`` passed (an upper bound, not a wait)."""
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < n and time.monotonic() < deadline:
        try:
            got += reader.get_many(timeout=0.1)
        except fastfifo.Empty:
            pass
    return got


def in_thread(fn, *args):
    """Run fn in a thread; (thread, result list) -- result gets [value] or [exception]."""
    out = []

    def go():
        try:
            out.append(fn(*args))
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


# ------------------------------------------------------------------ headers claiming gigabytes


@linux_only
def test_shared_reader_discards_a_header_claiming_gigabytes(ff, fifo):
    """As for one reader (test_hostile.py): refused before any allocation, payload skipped."""
    with ff.Reader(fifo, shared=True, max_message_size=1 << 20) as r:
        cap = r.buffer_capacity
        fd = raw_writer(fifo)
        os.write(fd, encode_header(0, 3 << 30) + b"x" * 100)
        with pytest.raises(fastfifo.MessageTooLargeError, match="3221225472 bytes exceeds") as e:
            r.get(timeout=5)
        assert fifo in str(e.value)
        for _ in range(4):  # by its own header, what follows is its payload: skipped
            os.write(fd, b"y" * 60_000)
            with pytest.raises(fastfifo.Empty):
                r.get(timeout=0.05)
        assert r.buffer_capacity <= cap + _endpoints.PEEK_WINDOW  # one claim, never 3 GiB
        assert r.dropped_messages == 1 and r.skipped_bytes == 0
        os.close(fd)


@pytest.mark.parametrize(
    "shared", [False, pytest.param(True, marks=linux_only)], ids=["one-reader", "shared"]
)
def test_first_fragment_announcing_a_huge_total_allocates_nothing(ff, fifo, shared):
    """A FIRST fragment saying 2**62 bytes follow: refused on sight, its fragments dropped."""
    tracemalloc.start()
    try:
        with ff.Reader(fifo, shared=shared, max_message_size=1 << 20) as r:
            cap = r.buffer_capacity
            base = tracemalloc.get_traced_memory()[0]
            fd = raw_writer(fifo)
            os.write(
                fd,
                first_fragment(1 << 62, b"a" * 100)
                + frame(b"b" * 50, kind=2)
                + frame(b"c" * 50, kind=3)
                + frame(b"after"),
            )
            with pytest.raises(fastfifo.MessageTooLargeError, match="exceeds max_message_size"):
                r.get(timeout=5)
            assert r.get(timeout=5) == b"after"
            assert r.dropped_messages == 1
            assert r.buffer_capacity <= cap + _endpoints.PEEK_WINDOW
            assert tracemalloc.get_traced_memory()[1] - base < 1 << 20
            os.close(fd)
    finally:
        tracemalloc.stop()


def test_first_fragment_of_a_message_that_never_comes_is_freed(ff, fifo):
    """A total within max_message_size is reserved (bounded by it) and freed on the drop."""
    tracemalloc.start()
    try:
        with ff.Reader(fifo, max_message_size=64 << 20) as r:
            base = tracemalloc.get_traced_memory()[0]
            fd = raw_writer(fifo)  # holds no writers' lock: a writer that died
            os.write(fd, first_fragment(48 << 20, b"a" * 100))
            with losses_logged("writer died", count=1):
                with pytest.raises(fastfifo.Empty):
                    r.get(timeout=0.3)
                os.write(fd, frame(b"next"))
                assert r.get(timeout=5) == b"next"
            current, peak = tracemalloc.get_traced_memory()
            assert peak - base <= (64 << 20) + (2 << 20)  # never above max_message_size
            assert current - base < 1 << 20  # and given back
            assert r.dropped_messages == 1
            os.close(fd)
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ garbage, shared readers


@linux_only
@pytest.mark.parametrize("seed", range(3))
def test_garbage_between_frames_with_two_shared_readers(ff, fifo, seed):
    rng = random.Random(seed)
    msgs, stream, junk = [], [], 0
    for i in range(300):
        if rng.random() < 0.2:
            j = bytes(b for b in rng.randbytes(rng.randint(1, 40)) if b != 0xFA) or b"?"
            stream.append(j)
            junk += len(j)
        m = b"m%d:" % i + rng.randbytes(rng.randint(0, 200))
        msgs.append(m)
        stream.append(frame(m))
    data = b"".join(stream)
    r1, r2 = ff.Reader(fifo, shared=True), ff.Reader(fifo, shared=True)
    fd = raw_writer(fifo)
    got = [[], []]
    errors = []
    pos = 0
    while pos < len(data):  # cut anywhere, even inside headers and junk
        n = rng.randint(1, 3000)
        os.write(fd, data[pos : pos + n])
        pos += n
        order = rng.choice([1, -1])
        per, errs = drain([r1, r2][::order])
        for i, part in enumerate(per[::order]):
            got[i] += part
        errors += errs
    os.close(fd)
    every = got[0] + got[1]
    assert sorted(every) == sorted(msgs)  # each valid frame exactly once, whole
    index = {m: i for i, m in enumerate(msgs)}
    for part in got:
        assert [index[m] for m in part] == sorted(index[m] for m in part)  # stream order
    assert all(isinstance(e, fastfifo.CorruptStreamError) for e in errors)
    assert r1.skipped_bytes + r2.skipped_bytes == junk
    assert errors  # reported (every run: test_every_junk_run_is_reported_with_shared_readers)
    r1.close()
    r2.close()


# ------------------------------------------------------------------ a writer that stops mid-frame


@pytest.mark.parametrize(
    "shared", [False, pytest.param(True, marks=linux_only)], ids=["one-reader", "shared"]
)
def test_half_a_frame_then_silence(ff, fifo, shared):
    """A raw writer sends half a frame and stalls, holding the FIFO open.

    Documented behaviour: the readers wait for the rest (get honours its timeout, without
    spinning, and a shared reader holds no lock meanwhile); when the rest comes, the frame
    and everything after it are delivered.  A reader cannot tell whose bytes are whose, so
    bytes another writer sends meanwhile complete the stalled frame (see the next test):
    only byte-stream peers (shell tools, raw fds) can write partial frames, never a Writer.
    """
    readers = [ff.Reader(fifo, shared=shared) for _ in range(2 if shared else 1)]
    fd = raw_writer(fifo)
    whole = frame(b"A" * 100)
    os.write(fd, whole[:50])
    for r in readers:
        out, wall, cpu = timed_get(r, 0.3)
        assert out is fastfifo.Empty
        assert 0.29 <= wall < 1.5
        assert cpu < 0.15, f"spinning: {cpu:.2f} s of CPU in a 0.3 s wait"
    os.write(fd, whole[50:] + frame(b"later"))
    got = [m for part in drain(readers, timeout=0.2)[0] for m in part]
    assert got == [b"A" * 100, b"later"]
    os.close(fd)
    for r in readers:
        r.close()


def test_bytes_written_after_a_stalled_partial_frame_complete_it(ff, fifo):
    """The documented limit of a byte stream: the reader takes the header at its word."""
    with ff.Reader(fifo) as r:
        fd = raw_writer(fifo)
        os.write(fd, encode_header(0, 100) + b"A" * 50)  # claims 100 bytes, sends 50
        with ff.Writer(fifo) as w:
            w.put(b"B" * 42)  # 50 bytes on the wire
            w.put(b"C")
        assert r.get(timeout=5) == b"A" * 50 + frame(b"B" * 42)
        assert r.get(timeout=5) == b"C"
        os.close(fd)


def _stoppable_large_writer(backend, path, size):
    ns = endpoints(backend)
    with ns.Writer(path) as w:
        w.put(b"L" * size)


@pytest.mark.parametrize(
    "shared", [False, pytest.param(True, marks=linux_only)], ids=["one-reader", "shared"]
)
def test_writer_stopped_mid_large_message(ff, fifo, shared):
    """A Writer frozen (SIGSTOP) part-way through a large message, holding the writers' lock.

    Other writers' small messages still flow; another large message waits for the lock
    and gives up at its timeout (Full, nothing written); gets honour their timeouts; when
    the frozen writer resumes, its message arrives whole.
    """
    size = 3 << 20
    r = ff.Reader(fifo, shared=shared)
    victim = CTX.Process(target=_stoppable_large_writer, args=(ff.name, fifo, size))
    victim.start()
    try:
        while fionread(r.fileno()) < r.pipe_size // 2:  # part-way through its message
            time.sleep(0.001)
        os.kill(victim.pid, signal.SIGSTOP)
        out, wall, cpu = timed_get(r, 0.3)  # takes what is there, then waits in vain
        while out is not fastfifo.Empty:
            out, wall, cpu = timed_get(r, 0.3)
        assert 0.29 <= wall < 1.5 and cpu < 0.25
        with ff.Writer(fifo) as w:
            w.put_many([b"small-%d" % i for i in range(100)])
            with pytest.raises(fastfifo.Full, match="large-message lock"):
                w.put(b"M" * 100_000, timeout=0.2)
            got = [m for part in drain([r], timeout=0.1)[0] for m in part]
            assert got == [b"small-%d" % i for i in range(100)]
            os.kill(victim.pid, signal.SIGCONT)
            assert r.get(timeout=30) == b"L" * size
            w.put(b"M" * 100_000, timeout=10)
            assert r.get(timeout=10) == b"M" * 100_000
        victim.join(30)
        assert victim.exitcode == 0
        assert r.dropped_messages == 0
    finally:
        if victim.is_alive():
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
        r.close()


# ------------------------------------------------------------------ the path swapped under us


def test_fifo_swapped_for_a_file_or_symlink_after_creation(ff, tmp_path):
    """Created as a FIFO, replaced before the open: refused by name, the file untouched."""
    path = str(tmp_path / "q")
    target = tmp_path / "precious"
    target.write_bytes(b"precious data")
    other_fifo = fastfifo.mkfifo(tmp_path / "other")
    for swap in ("file", "symlink-to-file", "symlink-to-fifo"):
        fastfifo.mkfifo(path)
        os.remove(path)
        if swap == "file":
            with open(path, "wb") as f:
                f.write(b"precious data")
        else:
            os.symlink(str(target) if swap == "symlink-to-file" else other_fifo, path)
        what = "regular file" if swap == "file" else "symbolic link"
        for opener in (
            lambda: ff.Writer(path, open_timeout=0),
            lambda: ff.Writer(path, open_timeout=0, create=True),
            lambda: ff.Reader(path),
            lambda: ff.Reader(path, shared=True),
            lambda: fastfifo.Queue._for_backend(ff.name, path),
        ):
            with pytest.raises(fastfifo.NotAFifoError, match=what) as e:
                opener()
            assert e.value.filename == path
        assert target.read_bytes() == b"precious data"
        if swap == "file":
            with open(path, "rb") as f:
                assert f.read() == b"precious data"
        os.remove(path)


def test_racing_swaps_never_open_anything_but_the_fifo(ff, tmp_path):
    """A thread swaps the path (atomic renames) among a FIFO, a file and symlinks while we
    open it: every open that succeeds is the FIFO, and nothing is ever written elsewhere."""
    path = str(tmp_path / "q")
    store_fifo = fastfifo.mkfifo(tmp_path / "store-fifo")
    store_file = str(tmp_path / "store-file")
    with open(store_file, "wb") as f:
        f.write(b"keep")
    keeper = ff.Reader(store_fifo)  # the FIFO always has a reader
    variants = ["fifo", "file", "link-file", "link-fifo"]
    stop = threading.Event()
    swaps = [0]

    def swapper():
        try:
            swap()
        except BaseException as e:
            swap_error.append(e)
            raise

    swap_error = []

    def swap():
        i = 0
        while not stop.is_set():
            kind = variants[i % 4]
            tmp = f"{path}.{i % 2}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # left over if a replace raced with a test's own cleanup
            if kind == "fifo":
                os.link(store_fifo, tmp)
            elif kind == "file":
                os.link(store_file, tmp)
            else:
                os.symlink(store_file if kind == "link-file" else store_fifo, tmp)
            os.replace(tmp, path)  # atomic: the path always names something
            i += 1
            swaps[0] = i

    os.link(store_fifo, path)
    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    sent = refused = 0
    got = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < 0.6 or not (sent and refused):
            assert not swap_error and time.monotonic() - start < 20, (sent, refused, swap_error)
            try:
                with ff.Writer(path, open_timeout=0) as w:
                    w.put(b"msg-%d" % sent, timeout=5)
                    sent += 1
            except fastfifo.NotAFifoError as e:
                assert e.filename == path
                refused += 1
            try:
                ff.Reader(path).close()
            except fastfifo.NotAFifoError:
                refused += 1
            try:
                got += keeper.get_many(timeout=0)
            except fastfifo.Empty:
                pass
    finally:
        stop.set()
        t.join()
    got += [m for part in drain([keeper], timeout=0.1)[0] for m in part]
    assert got == [b"msg-%d" % i for i in range(sent)]
    with open(store_file, "rb") as f:
        assert f.read() == b"keep"
    assert swaps[0] > 1 and sent > 0 and refused > 0
    keeper.close()


# ------------------------------------------------------------------ owners and modes


def _foreign_owner(path, monkeypatch) -> int:
    """Make ``path`` belong to another user: chown as root, else pretend to be another uid."""
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        return 65534
    real = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: real + 4242)
    return os.stat(path).st_uid


def test_fifo_owned_by_another_user_is_refused_unless_allowed(ff, tmp_path, monkeypatch):
    path = fastfifo.mkfifo(tmp_path / "q")
    owner = _foreign_owner(path, monkeypatch)
    keeper = ff.Reader(path, strict_permissions=False)  # so that a Writer's open succeeds
    for opener in (
        lambda **kw: ff.Reader(path, **kw),
        lambda **kw: ff.Reader(path, stop_at_eof=True, **kw),
        lambda **kw: ff.Writer(path, open_timeout=0, **kw),
        lambda **kw: fastfifo.Queue._for_backend(ff.name, path, **kw),
    ):
        with pytest.raises(PermissionError, match=f"owned by uid {owner}") as e:
            opener()
        assert e.value.filename == path
        assert "strict_permissions=False" in str(e.value)
    if LINUX:
        with pytest.raises(PermissionError, match=f"owned by uid {owner}"):
            ff.Reader(path, shared=True)
    with ff.Writer(path, strict_permissions=False, open_timeout=5) as w:
        w.put(b"trusted")
    assert keeper.get(timeout=5) == b"trusted"
    keeper.close()


@pytest.mark.parametrize("mode", [0o602, 0o622, 0o660, 0o666], ids=oct)
def test_fifo_writable_by_group_or_others_is_refused(ff, tmp_path, mode):
    path = fastfifo.mkfifo(tmp_path / "q")
    os.chmod(path, mode)
    keeper = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # a reader: Writers get to the check
    for opener in (lambda: ff.Reader(path), lambda: ff.Writer(path, open_timeout=0)):
        with pytest.raises(PermissionError, match=f"writable by group or others .mode {mode:04o}"):
            opener()
    os.close(keeper)
    with ff.Reader(path, strict_permissions=False) as r:
        with ff.Writer(path, strict_permissions=False) as w:
            w.put(b"opted in")
        assert r.get(timeout=5) == b"opted in"


def test_readable_by_others_is_accepted_as_documented(ff, tmp_path):
    """Only *writable* by group/others is refused (docs/SECURITY.md: readable lets others
    take messages, so keep FIFOs 0600 -- fastfifo.mkfifo does)."""
    path = fastfifo.mkfifo(tmp_path / "q")
    os.chmod(path, 0o644)
    with ff.Reader(path) as r, ff.Writer(path) as w:
        w.put(b"x")
        assert r.get(timeout=5) == b"x"


# ------------------------------------------------------------------ running out of fds


_EMFILE_CHILD = textwrap.dedent(
    """
    import errno, gc, json, os, resource, sys
    sys.path.insert(0, {tests!r})
    from helpers import endpoints
    import fastfifo

    ns = endpoints({backend!r})
    path = {path!r}
    keeper = ns.Reader(path)                       # Writers can open at once
    Queue = fastfifo.Queue                         # imported on first use: import it now
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def fds():
        return sorted(int(x) for x in os.listdir("/dev/fd"))

    def exhaust(keep_free):
        held = []
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as e:
                assert e.errno == errno.EMFILE, e
                break
        for fd in held[:keep_free]:
            os.close(fd)
        return held[keep_free:]

    openers = {{
        "Reader": lambda: ns.Reader(path),
        "Reader(shared)": lambda: ns.Reader(path, shared=True),
        "Writer": lambda: ns.Writer(path, open_timeout=0),
        "Queue.put": lambda: Queue._for_backend({backend!r}, path).put(b"x"),
    }}
    if not {shared_ok!r}:
        del openers["Reader(shared)"]
    results = []
    for name, opener in openers.items():
        for free in range(0, 10):
            before = fds()
            held = exhaust(free)
            try:
                obj = opener()
                outcome = {{"ok": True}}
            except OSError as e:
                obj = None
                outcome = {{"ok": False, "type": type(e).__name__, "errno": e.errno,
                            "text": str(e)}}
            for fd in held:
                os.close(fd)
            if obj is not None:
                obj.close()
            del obj
            gc.collect()
            outcome.update(name=name, free=free, leaked=sorted(set(fds()) - set(before)))
            results.append(outcome)
            if outcome["ok"]:
                break
    # Afterwards everything works.
    with ns.Writer(path) as w:
        w.put(b"still fine")
    keeper.get(timeout=5)                          # the Queue's b"x" (or ours)
    print(json.dumps(results))
    """
)


def _emfile_results(backend, fifo):
    code = _EMFILE_CHILD.format(
        tests=os.path.dirname(__file__), backend=backend, path=fifo, shared_ok=LINUX
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_running_out_of_fds_gives_emfile_and_leaks_nothing(backend, fifo):
    """RLIMIT_NOFILE reached at every step of opening: a clean OSError(EMFILE), no crash,
    no descriptor left behind, and the process goes on working."""
    results = _emfile_results(backend, fifo)
    for res in results:
        assert res["leaked"] == [], res
        if not res["ok"]:
            assert res["type"] in ("OSError",) and res["errno"] == errno.EMFILE, res
    names = {r["name"] for r in results}
    assert all(any(r["ok"] for r in results if r["name"] == n) for n in names)
    assert any(not r["ok"] for r in results)


# ------------------------------------------------------------------ 8 KiB pipes


def _exercise_small_pipe(ff, fifo, shared, **opts):
    readers = [ff.Reader(fifo, shared=shared, **opts) for _ in range(2 if shared else 1)]
    with ff.Writer(fifo, **opts) as w:
        assert w.pipe_size == 8192 and all(r.pipe_size == 8192 for r in readers)
        smalls = [b"s%d" % i + b"." * (i % 300) for i in range(3000)]
        bigs = [bytes([i]) * n for i, n in enumerate([5000, 100_000, 1_000_000])]

        def send():
            for i in range(0, 3000, 100):
                w.put_many(smalls[i : i + 100])
            for b in bigs:
                w.put(b)
            w.put_many([b"x" * 4088, b"y" * 4089, b"tail"])

        t, err = in_thread(send)
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 3006 and time.monotonic() < deadline:
            for r in readers:
                try:
                    got += r.get_many(max_messages=50, timeout=0.05)
                except fastfifo.Empty:
                    pass
        t.join(30)
        assert err == [None], err
    for r in readers:
        assert r.dropped_messages == 0 and r.skipped_bytes == 0
        r.close()
    want = [*smalls, *bigs, b"x" * 4088, b"y" * 4089, b"tail"]
    if shared:
        assert sorted(got) == sorted(want)
    else:
        assert got == want


@linux_only
@pytest.mark.parametrize("shared", [False, True], ids=["one-reader", "shared"])
def test_everything_works_in_an_8k_pipe(ff, fifo, shared):
    """The per-user fallback size (pipe-user-pages-soft exceeded): 2 pages, so 2 writes."""
    hold = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # keeps the pipe (and its size) alive
    try:
        assert fcntl.fcntl(hold, F_SETPIPE_SZ, 8192) == 8192
        _exercise_small_pipe(ff, fifo, shared, pipe_size=None)
    finally:
        os.close(hold)


@linux_only
def test_a_refused_pipe_size_falls_back_quietly(ff, fifo, monkeypatch):
    """F_SETPIPE_SZ refused (EPERM, as over the quota): the endpoints keep the 8 KiB pipe."""
    hold = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    assert fcntl.fcntl(hold, F_SETPIPE_SZ, 8192) == 8192
    real = fcntl.fcntl

    def refusing(fd, cmd, *args):
        if cmd == F_SETPIPE_SZ and fd != hold:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(fd, cmd, *args)

    monkeypatch.setattr(fcntl, "fcntl", refusing)
    try:
        _exercise_small_pipe(ff, fifo, False)  # asks for the default 1 MiB
    finally:
        os.close(hold)


# ------------------------------------------------------------------ bugs found by this work
# Fixed ones are regression tests; open ones are strict xfail tests.


@linux_only
def test_shared_reader_and_a_whole_frame_larger_than_the_peek_window(ff, fifo):
    """Once a bug: no shared reader could claim it, and every one waited for ever."""
    with ff.Reader(fifo, shared=True) as r:
        fd = os.open(fifo, os.O_WRONLY)
        t, _ = in_thread(os.write, fd, frame(b"B" * 300_000) + frame(b"after"))
        got = collect(r, 2, 1.5)
        t.join(5)
        os.close(fd)
        assert [len(m) for m in got] == [300_000, 5]


@linux_only
def test_shared_lines_reader_and_a_line_longer_than_the_peek_window(ff, fifo):
    """Once a bug, as above for a shell writer's long line."""
    with ff.Reader(fifo, framing="lines", shared=True) as r:
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, b"L" * 300_000 + b"\nnext\n")
        got = collect(r, 2, 1.5)
        os.close(fd)
        assert [len(m) for m in got] == [300_000, 4]


@pytest.mark.parametrize(
    "framing,partial", [("frames", frame(b"hello")[:4]), ("lines", b"no newline yet")]
)
def test_exact_claims_honour_the_timeout_on_a_partial_frame(
    ff, fifo, monkeypatch, framing, partial
):
    """Once a bug: exact-read claims (shared readers without tee, i.e. macOS) waited for
    the rest with no deadline, holding the readers' lock."""
    monkeypatch.setattr(_endpoints, "_FORCE_EXACT_CLAIMS", True)
    r = ff.Reader(fifo, framing=framing, shared=True)
    fd = raw_writer(fifo)
    os.write(fd, partial)
    t, out = in_thread(r.get, 0.2)
    t.join(1.0)
    hung = t.is_alive()
    r.close()  # wakes it (ClosedError) if it hung
    t.join(5)
    os.close(fd)
    assert not hung, "get(timeout=0.2) still blocked after 1 s"
    assert isinstance(out[0], fastfifo.Empty)


@linux_only
def test_shared_overlong_line_reported_once_and_its_rest_never_delivered(ff, fifo):
    r1 = ff.Reader(fifo, framing="lines", shared=True, max_message_size=16)
    r2 = ff.Reader(fifo, framing="lines", shared=True, max_message_size=16)
    fd = raw_writer(fifo)
    os.write(fd, b"a" * 20)  # an overlong line, still being written
    with losses_logged(count=0):  # reported once, by the MessageTooLargeError
        with pytest.raises(fastfifo.MessageTooLargeError):
            r1.get(timeout=0.1)
        with pytest.raises(fastfifo.Empty):
            r1.get(timeout=0.1)
    os.write(fd, b"aaaa\nnext\n")  # the rest of it, then a good line
    got = [m for part in drain([r2, r1], timeout=0.1)[0] for m in part]
    os.close(fd)
    r1.close()
    r2.close()
    assert got == [b"next"]
    assert r1.dropped_messages == 1


@linux_only
@pytest.mark.parametrize("framing", ["frames", "lines"])
def test_shared_stop_at_eof_reader_mid_message_when_the_last_writer_leaves(ff, fifo, framing):
    r = ff.Reader(fifo, framing=framing, shared=True, stop_at_eof=True, max_message_size=100)
    fd = raw_writer(fifo)
    if framing == "frames":
        lock_fd, _ofd = _endpoints._writer_lock(fifo, fd)
        _core_py._ofd_lock(lock_fd, fcntl.F_WRLCK)  # what a Writer holds for fragments
        os.write(fd, first_fragment(50, b"a" * 20))
    else:
        os.write(fd, b"L" * 200)  # an overlong last line
    with pytest.raises((fastfifo.Empty, fastfifo.MessageTooLargeError)):
        r.get(timeout=0.1)
    os.close(fd)  # the writer dies: its lock goes, and it was the last writer
    with losses_logged(count=None if framing == "frames" else 0) as caught:
        t, out = in_thread(r.get, 0.3)
        t.join(1.5)
        hung = t.is_alive()
        r.close()
        t.join(5)
    assert not hung, "get(timeout=0.3) still running after 1.5 s"
    assert isinstance(out[0], EOFError)
    if framing == "frames":  # the cut message is dropped, and said so (once)
        assert len(caught) == 1 and r.dropped_messages == 1


@linux_only
def test_every_junk_run_is_reported_with_shared_readers(ff, fifo):
    """Once a bug: a reader still resynchronising from an earlier run (whose end another
    reader took) skipped the next run silently; only skipped_bytes counted it."""
    r1, r2 = ff.Reader(fifo, shared=True), ff.Reader(fifo, shared=True)
    fd = raw_writer(fifo)
    os.write(fd, b"junk-A!!!!")
    with pytest.raises(fastfifo.CorruptStreamError):
        r1.get(timeout=1)
    os.write(fd, frame(b"F"))
    assert r2.get(timeout=1) == b"F"  # r1 never sees a valid header after junk-A
    os.write(fd, b"junk-B!!!!" + frame(b"G"))
    try:
        with pytest.raises(fastfifo.CorruptStreamError):
            r1.get(timeout=1)
    finally:
        os.close(fd)
        r1.close()
        r2.close()


@pytest.mark.parametrize(
    "framing,msg", [("frames", b"hello"), ("lines", b"no newline yet")], ids=["frames", "lines"]
)
def test_exact_claims_keep_a_partial_frame_and_its_rest_from_other_readers(
    ff, fifo, monkeypatch, framing, msg
):
    """The reader that read part of a frame keeps those bytes and the readers' lock across
    its timed-out calls, so no other reader takes the rest as if a frame started there."""
    monkeypatch.setattr(_endpoints, "_FORCE_EXACT_CLAIMS", True)
    r1 = ff.Reader(fifo, framing=framing, shared=True)
    r2 = ff.Reader(fifo, framing=framing, shared=True)
    wire = frame(msg) if framing == "frames" else msg + b"\n"
    nxt = frame(b"next") if framing == "frames" else b"next\n"
    fd = raw_writer(fifo)
    os.write(fd, wire[:4])
    try:
        for r in (r1, r2, r1):
            out, wall, cpu = timed_get(r, 0.2)
            assert out is fastfifo.Empty
            assert 0.19 <= wall < 1.5 and cpu < 0.15, (wall, cpu)
        os.write(fd, wire[4:] + nxt)
        per, errors = drain([r2, r1], timeout=0.2)
        assert errors == []
        assert per[1][:1] == [msg]  # r1 finished what it began; r2 never saw its rest
        assert sorted(per[0] + per[1]) == sorted([msg, b"next"])
    finally:
        os.close(fd)
        r1.close()
        r2.close()


@pytest.mark.parametrize(
    "exact", [pytest.param(False, marks=linux_only), True], ids=["tee", "exact"]
)
def test_shared_readers_never_deliver_frames_inside_a_discarded_payload(
    ff, fifo, monkeypatch, exact
):
    """Once a bug: the reader that refused an oversized frame (MessageTooLargeError) let go
    of the lock with its payload still in the pipe; another reader then read the payload
    as a stream and delivered the frames inside it as good messages."""
    monkeypatch.setattr(_endpoints, "_FORCE_EXACT_CLAIMS", exact)
    r1 = ff.Reader(fifo, shared=True, max_message_size=100)
    r2 = ff.Reader(fifo, shared=True, max_message_size=100)
    payload = b"".join(frame(b"inner-%d" % i) for i in range(60))
    big = encode_header(0, len(payload)) + payload
    fd = raw_writer(fifo)
    try:
        os.write(fd, big[:60])
        with pytest.raises(fastfifo.MessageTooLargeError):
            r1.get(timeout=1)
        os.write(fd, big[60:] + frame(b"after"))
        per, errors = drain([r2, r1], timeout=0.1)
        assert per[0] + per[1] == [b"after"]
        assert errors == []
        assert r1.dropped_messages == 1 and r1.skipped_bytes == r2.skipped_bytes == 0
    finally:
        os.close(fd)
        r1.close()
        r2.close()


@linux_only
@pytest.mark.parametrize("framing", ["frames", "lines"])
def test_shared_reader_and_a_frame_larger_than_a_small_pipe(ff, fifo, framing):
    """A foreign frame (or line) within the peek window but larger than the pipe can never
    be seen whole in it: the reader takes it as it comes instead of waiting for ever."""
    hold = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # keeps the pipe (and its size) alive
    try:
        assert fcntl.fcntl(hold, F_SETPIPE_SZ, 8192) == 8192
        with ff.Reader(fifo, framing=framing, shared=True, pipe_size=None) as r:
            big = b"B" * 50_000
            data = frame(big) + frame(b"after") if framing == "frames" else big + b"\nafter\n"
            fd = os.open(fifo, os.O_WRONLY)
            t, out = in_thread(os.write, fd, data)  # blocks until the reader takes it
            got = collect(r, 2, 10)
            t.join(5)
            os.close(fd)
            assert out == [len(data)]
            assert got == [big, b"after"]
    finally:
        os.close(hold)


def _partial_frame_then_killed(backend, path, ready):
    r = endpoints(backend).Reader(path, shared=True)
    try:
        r.get(timeout=0.5)  # takes the beginning of the large frame, then times out
    except fastfifo.Empty:
        ready.set()
    time.sleep(60)  # holds the readers' lock, and the partial frame, until killed


@linux_only
def test_a_reader_killed_part_way_through_a_large_frame_loses_only_that_frame(ff, fifo):
    """A frame too large to peek whole is taken as it arrives.  Its reader, SIGKILLed
    part-way, loses that frame; its rest reaches the other readers as bad bytes (reported),
    and every message after it is delivered."""
    ready = CTX.Event()
    survivor = ff.Reader(fifo, shared=True)
    fd = raw_writer(fifo)
    big = frame(b"B" * 400_000)
    os.write(fd, big[:300_000])
    child = CTX.Process(target=_partial_frame_then_killed, args=(ff.name, fifo, ready))
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(fastfifo.Empty):  # the child holds the lock
            survivor.get(timeout=0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        child.close()
    os.write(fd, big[300_000:] + frame(b"after-1") + frame(b"after-2"))
    per, errors = drain([survivor], timeout=0.2)
    os.close(fd)
    survivor.close()
    assert per[0] == [b"after-1", b"after-2"]
    assert errors and all(isinstance(e, fastfifo.CorruptStreamError) for e in errors)
    assert survivor.skipped_bytes == len(big) - 300_000  # the lost frame's rest, nothing else


@pytest.mark.parametrize("backend", BACKENDS)
def test_running_out_of_fds_names_the_fifo(backend, fifo):
    """Wherever opening runs out of descriptors (the FIFO itself, or the wake-up pipe, peek
    pipe or /dev/null after it), the OSError names the FIFO."""
    failures = [r for r in _emfile_results(backend, fifo) if not r["ok"]]
    assert failures and all(fifo in r["text"] for r in failures), [
        (r["name"], r["free"], r["text"]) for r in failures if fifo not in r["text"]
    ]


_DOUBLE_CLOSE_CHILD = textwrap.dedent(
    """
    import gc, os, resource, sys
    sys.path.insert(0, {tests!r})
    from helpers import endpoints

    ns = endpoints({backend!r})
    keeper = ns.Reader({path!r})
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    gc.disable()
    bad = []
    for name, opener in [("Writer", lambda: ns.Writer({path!r}, open_timeout=0)),
                         ("Reader", lambda: ns.Reader({path!r}))]:
        held = []
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        os.close(held.pop())  # one free fd: the FIFO opens, the wake-up pipe cannot
        try:
            opener()
        except OSError as e:
            err = e
        mine = os.open(os.devnull, os.O_RDONLY)  # reuses the number the failed open freed
        del err
        gc.collect()                              # the failed endpoint is freed now
        try:
            os.fstat(mine)
            os.close(mine)
        except OSError:
            bad.append(f"{{name}}: fd {{mine}} was closed by the failed endpoint")
        for fd in held:
            os.close(fd)
    print(bad)
    sys.exit(1 if bad else 0)
    """
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_open_never_closes_someone_elses_fd(backend, fifo):
    code = _DOUBLE_CLOSE_CHILD.format(tests=os.path.dirname(__file__), backend=backend, path=fifo)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
