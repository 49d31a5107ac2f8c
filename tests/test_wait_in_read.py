"""A get() that waits for ever in a process with one Python thread waits inside read().

The compiled core's reader, once waits have found the pipe empty (a request/reply peer,
a slow producer), waits for the next message in a blocking read() of a private second
description of the FIFO instead of poll() then read() (docs/guide.md, "Performance
notes").  What must still hold, each checked here in a child process whose main thread
is seen asleep in that very system call: the message is delivered, Ctrl-C ends the
wait, a signal handler that closes the Reader ends it with ClosedError, the descriptor
shared with others stays non-blocking, and close() leaves no descriptor of the FIFO.
The pure core waits in poll(); the same behaviour is checked on it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import proc_state, proc_syscall

from fastfifo._core_py import encode_header as _encode_header

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/PID/syscall"
)

_CHILD = """
import importlib, os, signal, sys
import fastfifo
from fastfifo._endpoints import classes_for
Writer, Reader = classes_for(importlib.import_module({core!r}))
p = {path!r}
ino = os.stat(p).st_ino

def fifo_fds():
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.stat(f"/proc/self/fd/{{fd}}").st_ino == ino:
                out.add(int(fd))
        except OSError:
            pass
    return out

r = Reader(p)
w = Writer(p)
w.put(b"first")
assert r.get() == b"first"          # a read that emptied the pipe
for _ in range(2):                  # two waits in which nothing came
    try:
        r.get(timeout=0.01)
    except fastfifo.Empty:
        pass
"""

_MODES = {
    "a message comes": """
print("READY", flush=True)
got = r.get()
print("GOT", got.decode(), os.get_blocking(r.fileno()), flush=True)
""",
    "ctrl-c": """
print("READY", flush=True)
r.get()
""",
    "a handler closes the reader": """
mine = fifo_fds()
signal.signal(signal.SIGUSR1, lambda *a: r.close())
print("READY", flush=True)
try:
    r.get()
except fastfifo.ClosedError as e:
    w.close()
    print("CLOSED", mine > fifo_fds() == set(), "closed" in str(e), flush=True)
""",
}


def _syscall(pid: int) -> str | None:
    """The number of the system call ``pid``'s main thread is in, while it sleeps."""
    return proc_syscall(pid) if proc_state(pid) == "S" else None


def _asleep_in(pid: int) -> str:
    """The system call ``pid`` sleeps in (the same one twice, 20 ms apart)."""
    deadline = time.monotonic() + 30
    while True:
        first = _syscall(pid)
        time.sleep(0.02)
        if first is not None and first == _syscall(pid):
            return first
        assert time.monotonic() < deadline, f"process {pid} never went to sleep"


@pytest.fixture(scope="module")
def read_nr() -> str:
    """read()'s system call number on this machine: that of a cat waiting on its stdin."""
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        return _asleep_in(cat.pid)
    finally:
        cat.kill()
        cat.wait()


@linux_only
@pytest.mark.parametrize("mode", list(_MODES))
def test_a_wait_for_ever_after_empty_waits(ff, fifo, read_nr, mode):
    core = "fastfifo._core" if ff.name == "cython" else "fastfifo._core_py"
    code = _CHILD.format(core=core, path=fifo) + textwrap.dedent(_MODES[mode])
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert select.select([p.stdout], [], [], 30)[0], "the child never got ready"
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        # The compiled core sleeps in read() itself; the pure one in poll().
        assert (_asleep_in(p.pid) == read_nr) is (ff.name == "cython")
        if mode == "a message comes":
            with ff.Writer(fifo) as w:
                w.put(b"second")
        elif mode == "ctrl-c":
            p.send_signal(signal.SIGINT)
        else:
            p.send_signal(signal.SIGUSR1)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if mode == "a message comes":
        assert (p.returncode, out.split()) == (0, ["GOT", "second", "False"]), err
    elif mode == "ctrl-c":
        assert p.returncode != 0 and "KeyboardInterrupt" in err, err
    else:
        assert (p.returncode, out.split()) == (0, ["CLOSED", "True", "True"]), err


_FORKS = """
pids = []
def forks(*a):
    pids.append(os.fork())
    if pids[0]:  # (one write() per line: print() under PYTHONUNBUFFERED=1 makes one
        os.write(1, f"FORKED {pids[0]}\\n".encode())  # per piece, and the two interleave)
signal.signal(signal.SIGUSR1, forks)
print("READY", flush=True)
try:
    got = r.get()
except fastfifo.ClosedError as e:  # the child the handler forked: its copy is closed
    os.write(1, f"CHILD {'fork()' in str(e)}\\n".encode())
    os._exit(0)
os.waitpid(pids[0], 0)
print("PARENT", got.decode(), flush=True)
"""


_FORKS_SHARED = """
from fastfifo._core_py import encode_header
raw = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
os.write(raw, encode_header(0, 5)[:3])  # an unfinished head: shared readers back off
"""


@linux_only
@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared-backing-off"])
def test_a_handler_that_forks_leaves_the_child_with_closed_error(ff, fifo, shared):
    """A signal handler that forks (a supervisor replacing a worker, say) runs inside the
    wait; the child returns from it into that same get(), with the Reader's descriptors
    closed by the fork handler.  It must raise ClosedError at once: the compiled core's
    poll() ignored the closed (negative) descriptor and slept for ever, the pure core's
    poll object kept reporting the old numbers as invalid and spun."""
    core = "fastfifo._core" if ff.name == "cython" else "fastfifo._core_py"
    code = _CHILD.format(core=core, path=fifo)
    if shared:  # (its waits: the 2 ms back-off, and the lock; the pure core said ValueError)
        code = code.replace("r = Reader(p)", "r = Reader(p, shared=True)") + _FORKS_SHARED
    code += textwrap.dedent(_FORKS)
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    forked = 0
    try:
        assert select.select([p.stdout], [], [], 30)[0], "the child never got ready"
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        _asleep_in(p.pid)
        p.send_signal(signal.SIGUSR1)
        got = b""  # the forked child's line and its parent's, in either order
        while got.count(b"\n") < 2 and select.select([p.stdout], [], [], 30)[0]:
            got += os.read(p.stdout.fileno(), 4096)  # (the two may come in one read)
        lines = dict(line.partition(" ")[::2] for line in got.decode().splitlines())
        forked = int(lines.get("FORKED") or 0)
        assert lines.get("CHILD") == "True", f"the forked child is still waiting: {got!r}"
        assert set(lines) == {"FORKED", "CHILD"}, f"the two lines were not whole: {got!r}"
        with ff.Writer(fifo) as w:
            if shared:  # (the rest of the unfinished head comes first)
                os.write(w.fileno(), _encode_header(0, 5)[3:] + b"fifth")
            w.put(b"second")
        out, err = p.communicate(timeout=30)
    finally:
        if forked:  # (a child left waiting for ever would outlive the test)
            try:
                os.kill(forked, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            p.kill()
            p.wait()
    want = "fifth" if shared else "second"
    assert (p.returncode, out.split()) == (0, ["PARENT", want]), err
