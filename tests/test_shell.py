"""Shell tools are peers in lines framing; SIGPIPE never kills a writer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from helpers import BACKENDS

import fastfifo


def test_echo_and_printf_into_a_lines_reader(ff, fifo):
    with ff.Reader(fifo, framing="lines") as r:
        subprocess.run(["sh", "-c", f"echo hi > '{fifo}'"], check=True, timeout=30)
        subprocess.run(
            ["sh", "-c", f"printf 'one\\ntwo\\n\\nthree\\n' > '{fifo}'"], check=True, timeout=30
        )
        subprocess.run(
            ["sh", "-c", f"for i in 1 2 3; do echo line$i; done > '{fifo}'"], check=True, timeout=30
        )
        got = []
        while len(got) < 8:
            got += r.get_many(timeout=5)
    assert got == [b"hi", b"one", b"two", b"", b"three", b"line1", b"line2", b"line3"]


def test_unterminated_last_line_is_delivered_at_eof(ff, fifo):
    with ff.Reader(fifo, framing="lines", stop_at_eof=True) as r:
        subprocess.run(["sh", "-c", f"printf 'a\\nno newline' > '{fifo}'"], check=True, timeout=30)
        assert list(r) == [b"a", b"no newline"]


def test_cat_reads_what_a_lines_writer_sent(ff, fifo):
    cat = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    try:
        with ff.Writer(fifo, framing="lines", open_timeout=30) as w:
            w.put(b"hello")
            w.put_many([b"from", b"fastfifo", b""])
        out, _ = cat.communicate(timeout=30)
    finally:
        cat.kill()
    assert out == b"hello\nfrom\nfastfifo\n\n"


def test_lines_writer_refuses_a_newline_inside_a_message(ff, fifo):
    with ff.Reader(fifo, framing="lines") as r, ff.Writer(fifo, framing="lines") as w:
        with pytest.raises(ValueError, match="newline"):
            w.put(b"two\nlines")
        with pytest.raises(ValueError, match="message 1 of the batch"):
            w.put_many([b"ok", b"not\nok"])
        w.put(b"after")
        assert r.get(timeout=5) == b"after"  # the refused ones wrote nothing


_SIGPIPE_CHILD = textwrap.dedent(
    """
    import signal, sys
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # as in an embedder or a CLI tool
    import fastfifo
    assert fastfifo.backend == sys.argv[2], fastfifo.backend
    w = fastfifo.Writer(sys.argv[1])
    w.put(b"first")
    print("ready", flush=True)
    sys.stdin.readline()                            # the parent closes the reader meanwhile
    try:
        w.put(b"second")
    except BrokenPipeError as e:
        print("BrokenPipeError", e.filename, flush=True)
    try:
        w.put_many([b"third"])
    except BrokenPipeError:
        print("BrokenPipeError again", flush=True)
    """
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_broken_pipe_error_in_a_child_whose_sigpipe_is_default(fifo, backend):
    env = dict(os.environ)
    env.pop("FASTFIFO_NO_EXTENSIONS", None)
    if backend == "python":
        env["FASTFIFO_NO_EXTENSIONS"] = "1"
    r = fastfifo.Reader(fifo)
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGPIPE_CHILD, fifo, backend],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        assert r.get(timeout=10) == b"first"
        r.close()
        out, _ = child.communicate("go\n", timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, f"child died with {child.returncode} (-13 is SIGPIPE)"
    assert out == f"BrokenPipeError {fifo}\nBrokenPipeError again\n"
