"""What is at the path: only a FIFO is ever opened; everything else gets a clear error."""

from __future__ import annotations

import os
import stat

import pytest

import fastfifo


def test_mkfifo_creates_a_fifo_with_mode_0600(tmp_path):
    old = os.umask(0)
    try:
        path = fastfifo.mkfifo(tmp_path / "q")
    finally:
        os.umask(old)
    st = os.lstat(path)
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_mkfifo_exist_ok(tmp_path):
    path = fastfifo.mkfifo(tmp_path / "q")
    assert fastfifo.mkfifo(path) == path
    with pytest.raises(FileExistsError, match="exist_ok"):
        fastfifo.mkfifo(path, exist_ok=False)


def test_mkfifo_refuses_a_regular_file(tmp_path):
    f = tmp_path / "q"
    f.write_bytes(b"data")
    with pytest.raises(fastfifo.NotAFifoError, match="regular file") as e:
        fastfifo.mkfifo(f)
    assert str(f) in str(e.value)
    assert f.read_bytes() == b"data"


def test_missing_path_says_to_create_it(ff, tmp_path):
    missing = str(tmp_path / "nope")
    for open_endpoint in (lambda: ff.Reader(missing), lambda: ff.Writer(missing, open_timeout=0)):
        with pytest.raises(FileNotFoundError, match="mkfifo") as e:
            open_endpoint()
        assert e.value.filename == missing


def _assert_refused(ff, path, what):
    for open_endpoint in (
        lambda: ff.Reader(path),
        lambda: ff.Reader(path, stop_at_eof=True),
        lambda: ff.Writer(path, open_timeout=0),
    ):
        with pytest.raises(fastfifo.NotAFifoError, match=what) as e:
            open_endpoint()
        assert e.value.filename == str(path)
        assert "not a FIFO" in str(e.value)


def test_regular_file_is_refused_and_never_written(ff, tmp_path):
    f = tmp_path / "q"
    f.write_bytes(b"precious")
    before = os.stat(f)
    _assert_refused(ff, f, "regular file")
    after = os.stat(f)
    assert f.read_bytes() == b"precious"
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_directory_is_refused(ff, tmp_path):
    d = tmp_path / "q"
    d.mkdir()
    _assert_refused(ff, d, "directory")


def test_symlink_is_refused_even_to_a_fifo(ff, tmp_path):
    real = fastfifo.mkfifo(tmp_path / "real")
    link = tmp_path / "q"
    link.symlink_to(real)
    _assert_refused(ff, link, "symbolic link")


def test_create_option_makes_the_fifo(ff, tmp_path):
    path = str(tmp_path / "made")
    with ff.Reader(path, create=True) as r, ff.Writer(path) as w:
        w.put(b"x")
        assert r.get(timeout=5) == b"x"
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600


def test_group_writable_fifo_is_refused_unless_allowed(ff, tmp_path):
    path = fastfifo.mkfifo(tmp_path / "q")
    os.chmod(path, 0o620)
    with pytest.raises(PermissionError, match="writable by group") as e:
        ff.Reader(path)
    assert e.value.filename == path
    with ff.Reader(path, strict_permissions=False) as r:
        with ff.Writer(path, strict_permissions=False) as w:
            w.put(b"ok")
        assert r.get(timeout=5) == b"ok"


def test_bad_options_are_rejected(ff, fifo):
    with pytest.raises(ValueError, match="framing"):
        ff.Reader(fifo, framing="json")
    with pytest.raises(ValueError, match="max_message_size"):
        ff.Reader(fifo, max_message_size=0)
    with ff.Reader(fifo) as r:
        with pytest.raises(fastfifo.Empty):
            r.get(timeout=-1)  # negative: do not wait (as multiprocessing.Queue)
        with pytest.raises(ValueError, match="NaN"):
            r.get(timeout=float("nan"))
        with pytest.raises(TypeError, match="timeout"):
            r.get(timeout="1")


def test_endpoints_do_not_pickle(ff, fifo):
    import pickle

    with ff.Reader(fifo) as r:
        with pytest.raises(TypeError, match="pass the path"):
            pickle.dumps(r)


def test_close_is_idempotent_and_later_calls_fail_clearly(ff, fifo):
    r = ff.Reader(fifo)
    w = ff.Writer(fifo)
    assert not r.closed and r.fileno() >= 0
    for e in (r, w):
        e.close()
        e.close()
        assert e.closed
    with pytest.raises(fastfifo.ClosedError, match="closed"):
        r.get(timeout=0)
    with pytest.raises(fastfifo.ClosedError, match="closed"):
        w.put(b"x")
    with pytest.raises(fastfifo.ClosedError):
        r.fileno()


def test_fds_are_not_leaked(ff, fifo):
    def count():
        return len(os.listdir("/proc/self/fd"))

    with ff.Reader(fifo):  # warm up lazily created module state
        pass
    before = count()
    for _ in range(200):
        with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
            w.put(b"x")
            r.get(timeout=5)
        with pytest.raises(fastfifo.NotAFifoError):
            ff.Reader(os.path.dirname(fifo))
    assert count() == before
