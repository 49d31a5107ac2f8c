"""fastfifo.Queue lifetimes: who keeps the queue alive, what is left behind, descriptors.

A private queue's FIFO has no name: the kernel frees it with the last descriptor, so a
child keeps the queue after its parent's Queue object is gone, and nothing is left in
the filesystem even when the creator is killed.  Each process holds three descriptors
per queue.  Errors about a queue's path name it.
"""

from __future__ import annotations

import errno
import gc
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest
from helpers import BACKENDS, as_unprivileged

import fastfifo
import fastfifo.queues  # imported now: an unprivileged child may not read the stdlib

LINUX = sys.platform.startswith("linux")


def _get_after_go(q, go, out):
    go.recv()  # the parent has dropped its Queue by now
    out.send(q.get(timeout=30))
    q.put("child was here")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_child_keeps_the_queue_after_its_parent_s_queue_is_collected(method):
    """Issue 13 #5: the child's get raised FileNotFoundError once the parent's Queue was
    garbage-collected (its private directory was removed).  multiprocessing.Queue works."""
    ctx = multiprocessing.get_context(method)
    q = fastfifo.Queue()
    q.put({"still": "here"})
    go_r, go_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_get_after_go, args=(q, go_r, out_w))
    child.start()
    del q
    gc.collect()
    go_w.send("go")
    assert out_r.poll(60)
    assert out_r.recv() == {"still": "here"}
    child.join(60)
    assert child.exitcode == 0


_KILLED_CREATOR = textwrap.dedent(
    """
    import os, signal, fastfifo
    q = fastfifo.Queue()
    q.put(b"x" * 100_000)
    print(repr(q), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_creator_killed_with_sigkill_leaves_nothing_behind():
    tmp = tempfile.gettempdir()
    before = set(os.listdir(tmp))
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_CREATOR], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    made_as = proc.stdout.split("made as ")[1].split("'")[1]
    assert made_as.startswith(tmp) and not os.path.exists(os.path.dirname(made_as))
    assert not [n for n in set(os.listdir(tmp)) - before if n.startswith("fastfifo-queue-")]


_FD_COUNTS = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from helpers import ff_queue
    def n():
        return len(os.listdir("/proc/self/fd"))
    base = n()
    counts = {{}}
    q = ff_queue({backend!r})
    counts["made"] = n() - base
    q.put(1); counts["put"] = n() - base
    q.get(); counts["get"] = n() - base
    q.qsize(); q.empty(); q.full(); counts["qsize"] = n() - base
    q.put_many(range(100)); q.get_many(); counts["put_many/get_many"] = n() - base
    q.put(b"x" * 300_000); q.get(); counts["large"] = n() - base
    for i in range(200_000):
        q.put(i)
    counts["feeder"] = n() - base
    got = 0
    while got < 200_000:
        got += len(q.get_many(max_messages=100_000))
    b = ff_queue({backend!r}, maxsize=10)
    b.put(1); b.full(); b.get(); counts["second queue, maxsize"] = n() - base
    q.close(); q.join_thread(); b.close(); counts["closed"] = n() - base
    print(json.dumps(counts))
    """
)


@pytest.mark.skipif(not LINUX, reason="counts /proc/self/fd")
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_queue_holds_three_descriptors_whatever_it_is_used_for(backend):
    """Issue 14: 1 at creation, 4 after put, 10 after get, 12 after qsize; now 3."""
    code = _FD_COUNTS.format(tests=os.path.dirname(__file__), backend=backend)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    assert counts == {
        "made": 3,
        "put": 3,
        "get": 3,
        "qsize": 3,
        "put_many/get_many": 3,
        "large": 3,
        "feeder": 3,
        "second queue, maxsize": 6,
        "closed": 0,
    }


_MANY_QUEUES = textwrap.dedent(
    """
    import resource, fastfifo
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    queues = []
    for i in range(320):
        q = fastfifo.Queue()
        q.put(i)
        assert q.qsize() == 1 and q.get(timeout=5) == i
        queues.append(q)
    print(len(queues))
    """
)


def test_three_hundred_queues_in_use_under_a_limit_of_1024_descriptors():
    """Issue 14: with ulimit -n 1024, queue #102 failed with EMFILE (multiprocessing: 300+)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MANY_QUEUES], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["320"]


def test_every_error_about_a_queue_s_path_names_it(tmp_path):
    """Issue 13 #13: mkfifo and Queue(path) errors did not name the path (EACCES, ENOTDIR)."""
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    cases = {
        str(afile / "q"): NotADirectoryError,  # ENOTDIR
        str(tmp_path / "missing" / "q"): FileNotFoundError,  # no such directory
        str(afile): fastfifo.NotAFifoError,  # something else is there
    }
    for path, kind in cases.items():
        with pytest.raises(kind) as e:
            fastfifo.Queue(path)
        assert e.value.filename == path and path in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        fastfifo.Queue(str(tmp_path / "absent"), create=False)
    assert e.value.filename == str(tmp_path / "absent")

    private = tmp_path / "private"
    private.mkdir(mode=0o700)  # root's: nobody else may create anything in it
    denied = str(private / "q")
    result = as_unprivileged(lambda: fastfifo.Queue(denied))
    assert result[:3] == ("raised", "PermissionError", errno.EACCES), result
    assert denied in result[3] and "cannot create a FIFO" in result[3]
    fastfifo.mkfifo(denied)  # now it exists (0600, ours): opening it is refused, by name
    result = as_unprivileged(lambda: fastfifo.Queue(denied, create=False))
    assert result[:2] == ("raised", "PermissionError") and denied in result[3], result
