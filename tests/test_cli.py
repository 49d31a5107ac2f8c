"""The ``fastfifo`` command, driven as a subprocess (``python -m fastfifo``).

Peers are the Python API (both backends), shell tools (``echo > fifo``, ``cat fifo``)
and other ``fastfifo`` processes.  Waits are on conditions (a process has the FIFO
open, a shell is blocked in open()), never on the clock.
"""

from __future__ import annotations

import json
import os
import platform
import pty
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import BACKENDS, endpoints, proc_state, proc_syscall

import fastfifo
from fastfifo._fifostat import list_openers
from fastfifo._open import LOCKS_ON_FIFOS

CLI = [sys.executable, "-m", "fastfifo"]
LINUX = sys.platform.startswith("linux")


def cli_env(backend: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTFIFO_NO_EXTENSIONS", None)
    if backend == "python":
        env["FASTFIFO_NO_EXTENSIONS"] = "1"
    return env


class Cli:
    """Runs ``python -m fastfifo`` on one backend."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.env = cli_env(backend)

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 30, **kw
    ) -> subprocess.CompletedProcess[bytes]:
        kw.setdefault("env", self.env)
        return subprocess.run(
            [*CLI, *args], input=input, capture_output=True, timeout=timeout, **kw
        )

    def start(self, *args: str, **kw) -> subprocess.Popen[bytes]:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("env", self.env)
        return subprocess.Popen([*CLI, *args], **kw)


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest) -> Cli:
    return Cli(request.param)


@pytest.fixture
def cli1() -> Cli:
    """For tests of the command itself, where the backend does not matter."""
    return Cli(BACKENDS[0])


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    return fastfifo.mkfifo(str(tmp_path / "q"))


def one_line_error(result: subprocess.CompletedProcess[bytes], command: str) -> str:
    err = result.stderr.decode()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastfifo {command}: error: ") or (
        command == "" and lines[0].startswith("fastfifo: error: ")
    ), err
    return lines[0]


def wait_until(
    condition, what: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``condition`` (a state we can observe, not a guess at timing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def has_open(pid: int, path: str) -> bool:
    found = list_openers(os.stat(path))
    assert found is not None
    return any(o["pid"] == pid for o in found[0])


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")

# open/openat syscall numbers, to see that a process is blocked opening a FIFO.
_OPEN_SYSCALLS = {"x86_64": {2, 257}, "aarch64": {56}}


def blocked_in_open(pid: int) -> bool:
    first = proc_syscall(pid) or ""
    return first.isdigit() and int(first) in _OPEN_SYSCALLS[platform.machine()]


can_see_syscalls = pytest.mark.skipif(
    platform.machine() not in _OPEN_SYSCALLS or not os.path.exists("/proc/self/syscall"),
    reason="needs /proc/PID/syscall on x86_64 or aarch64",
)


# ------------------------------------------------------------------ the command itself


def test_help_shows_commands_examples_and_exit_statuses(cli1):
    r = cli1.run("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    for word in (
        "mkfifo",
        "send",
        "recv",
        "stat",
        "bench",
        "examples:",
        "exit status (every command):",
        "timeout",
        "other than a FIFO",
    ):
        assert word in out
    for command in ("mkfifo", "send", "recv", "stat", "bench"):
        r = cli1.run(command, "--help")
        assert r.returncode == 0
        assert "examples:" in r.stdout.decode()
    r = cli1.run("--version")
    assert r.returncode == 0 and fastfifo.__version__ in r.stdout.decode()


def test_console_script_is_installed(cli1):
    script = Path(sys.executable).parent / "fastfifo"
    if not script.exists():
        pytest.skip("no fastfifo script beside this interpreter")
    r = subprocess.run([str(script), "--version"], capture_output=True, timeout=30)
    assert r.returncode == 0 and fastfifo.__version__ in r.stdout.decode()


def test_bare_fastfifo_prints_the_help_on_stderr_and_exits_2(cli1):
    r = cli1.run()
    assert r.returncode == 2  # a usage error: a script that lost its command fails
    assert r.stdout == b""
    err = r.stderr.decode()
    assert err.startswith("usage: fastfifo") and "exit status (every command):" in err
    assert err == cli1.run("--help").stdout.decode()  # the same help as --help


def test_the_exit_statuses_are_listed_once_in_the_main_help(cli1):
    assert cli1.run("--help").stdout.decode().count("permission denied") == 1
    for command in ("mkfifo", "send", "recv", "stat", "bench"):
        out = cli1.run(command, "--help").stdout.decode()
        assert "permission denied" not in out and "'fastfifo --help'" in out, command


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["recv"],
        ["recv", "q", "--count", "0"],
        ["recv", "q", "--timeout", "-1"],
        ["recv", "q", "--hex", "--json"],
        ["send", "q", "--bogus", "x"],
        ["send", "q", "--hex", "zz"],
        ["send", "q", "-0", "x"],
        ["mkfifo", "q", "--mode", "9"],
        ["mkfifo", "q", "--mode", "4755"],
    ],
)
def test_usage_errors_exit_2_with_one_line(cli1, tmp_path, args):
    r = cli1.run(*args, cwd=tmp_path)
    assert r.returncode == 2, r
    line = one_line_error(r, args[0] if args and args[0] in ("recv", "send", "mkfifo") else "")
    assert "--help" in line
    assert not (tmp_path / "q").exists()


# ------------------------------------------------------------------ mkfifo


def test_mkfifo_makes_exactly_the_mode_asked_for(cli1, tmp_path):
    def strict_umask():
        os.umask(0o077)

    r = cli1.run("mkfifo", str(tmp_path / "a"), preexec_fn=strict_umask)
    assert r.returncode == 0 and r.stderr == b""
    st = os.lstat(tmp_path / "a")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    r = cli1.run("mkfifo", str(tmp_path / "b"), "--mode", "640", preexec_fn=strict_umask)
    assert r.returncode == 0
    assert stat.S_IMODE(os.lstat(tmp_path / "b").st_mode) == 0o640


def test_mkfifo_leaves_an_existing_fifo_and_says_so(cli1, fifo):
    r = cli1.run("mkfifo", fifo)
    assert r.returncode == 0 and r.stderr == b""
    r = cli1.run("mkfifo", fifo, "--mode", "0o644")
    assert r.returncode == 0
    assert "already there, with mode 0600" in r.stderr.decode()
    assert stat.S_IMODE(os.lstat(fifo).st_mode) == 0o600


def test_mkfifo_warns_that_a_group_writable_fifo_is_refused(cli1, tmp_path):
    r = cli1.run("mkfifo", str(tmp_path / "q"), "--mode", "620")
    assert r.returncode == 0
    assert "--no-strict-permissions" in r.stderr.decode()


def test_mkfifo_errors(cli1, tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"keep me")
    r = cli1.run("mkfifo", str(f))
    assert r.returncode == 4
    assert "regular file" in one_line_error(r, "mkfifo")
    assert f.read_bytes() == b"keep me"
    r = cli1.run("mkfifo", str(tmp_path / "no" / "q"))
    assert r.returncode == 5
    assert "directory does not exist" in one_line_error(r, "mkfifo")


# ------------------------------------------------------------------ send/recv with the Python API


def test_recv_prints_what_a_python_writer_sent(cli, fifo):
    ff = endpoints(cli.backend)
    recv = cli.start("recv", fifo, "--count", "3")
    with ff.Writer(fifo, open_timeout=20) as w:  # waits for recv's Reader
        w.put(b"hello")
        w.put_many([b"two words", b""])
    out, err = recv.communicate(timeout=30)
    assert recv.returncode == 0, err
    assert out == b"hello\ntwo words\n\n"
    assert err == b""


def test_send_arguments_and_stdin_lines_reach_a_python_reader(cli, fifo):
    ff = endpoints(cli.backend)
    with ff.Reader(fifo) as r:
        # --linger 0: this Reader holds the FIFO open and reads only once send returned.
        res = cli.run("send", fifo, "--linger", "0", "one", "two words", "--", "-dash")
        assert res.returncode == 0, res.stderr
        assert r.get_many(timeout=5) == [b"one", b"two words", b"-dash"]
        res = cli.run("send", fifo, "--linger", "0", input=b"a\n\nb c\nno newline at the end")
        assert res.returncode == 0, res.stderr
        got = []
        while len(got) < 4:
            got += r.get_many(timeout=5)
        assert got == [b"a", b"", b"b c", b"no newline at the end"]


BINARY = [bytes(range(256)), b"\n\n", b"\x00", b"", b"caf\xc3\xa9", b"\xff" * 5000]


@pytest.mark.parametrize("encoding", ["--hex", "--json", "-0"])
def test_binary_messages_round_trip_with_the_python_api(cli, fifo, encoding):
    ff = endpoints(cli.backend)
    msgs = BINARY if encoding != "-0" else [m for m in BINARY if b"\0" not in m]
    # Python Writer -> recv (prints them) -> send (reads them back) -> Python Reader
    recv = cli.start("recv", fifo, "--count", str(len(msgs)), encoding)
    with ff.Writer(fifo, open_timeout=20) as w:
        for m in msgs:
            w.put(m)  # b"\xff" * 5000 is larger than PIPE_BUF: it goes as fragments
    printed, err = recv.communicate(timeout=30)
    assert recv.returncode == 0, err
    if encoding == "--json":
        lines = [json.loads(line) for line in printed.splitlines()]
        assert lines[4] == {"text": "café"} and "base64" in lines[0]
    with ff.Reader(fifo) as r:
        res = cli.run("send", fifo, "--linger", "0", encoding, input=printed)
        assert res.returncode == 0, res.stderr
        got = []
        while len(got) < len(msgs):
            got += r.get_many(timeout=5)
    assert got == msgs


def test_raw_output_warns_once_about_a_message_with_a_newline(cli1, fifo):
    ff = endpoints(cli1.backend)
    recv = cli1.start("recv", fifo, "--count", "3")
    with ff.Writer(fifo, open_timeout=20) as w:
        w.put_many([b"fine", b"two\nlines", b"again\n"])
    out, err = recv.communicate(timeout=30)
    assert recv.returncode == 0
    assert out == b"fine\ntwo\nlines\nagain\n\n"
    assert err.decode().count("warning") == 1 and "--hex" in err.decode()
    assert "message 2 contains a newline" in err.decode()  # counted across the batch


def test_count_takes_exactly_n_and_leaves_the_rest(cli, fifo):
    ff = endpoints(cli.backend)
    keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # holds the pipe (and its data) open
    try:
        with ff.Writer(fifo) as w:
            w.put_many([b"m%d" % i for i in range(10)])
        first = cli.run("recv", fifo, "--count", "3")
        assert first.returncode == 0 and first.stdout == b"m0\nm1\nm2\n"
        rest = cli.run("recv", fifo, "--count", "7", "--timeout", "0")
        assert rest.returncode == 0, rest.stderr
        assert rest.stdout == b"".join(b"m%d\n" % i for i in range(3, 10))
        empty = cli.run("recv", fifo, "--timeout", "0")
        assert empty.returncode == 3 and empty.stdout == b""
        assert "no message arrived" in one_line_error(empty, "recv")
    finally:
        os.close(keep)


def test_timeouts_exit_3(cli1, fifo):
    ff = endpoints(cli1.backend)
    r = cli1.run("send", fifo, "--open-timeout", "0", "x")  # no reader
    assert r.returncode == 3
    assert "no reader" in one_line_error(r, "send")
    keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        with ff.Writer(fifo) as w:
            w.put(b"only one")
        r = cli1.run("recv", fifo, "--count", "2", "--timeout", "0.2")
        assert r.returncode == 3
        assert r.stdout == b"only one\n"
        assert "1 of 2 messages" in one_line_error(r, "recv")
    finally:
        os.close(keep)


def test_send_waits_for_full_pipe_then_exits_3_saying_how_many_went(cli1, fifo):
    with endpoints(cli1.backend).Reader(fifo, pipe_size=None):  # never reads
        big = b"\n".join(b"x" * 4000 for _ in range(2000)) + b"\n"  # 8 MB: more than fits
        r = cli1.run("send", fifo, "--timeout", "0.2", input=big)
    assert r.returncode == 3
    line = one_line_error(r, "send")
    assert "stayed full" in line and "messages were sent" in line


def test_send_to_a_reader_that_leaves_exits_1(cli1, fifo):
    ff = endpoints(cli1.backend)
    r = ff.Reader(fifo)
    send = cli1.start("send", fifo, stdin=subprocess.PIPE)
    send.stdin.write(b"first\n")
    send.stdin.flush()
    assert r.get(timeout=20) == b"first"
    r.close()  # the only reader is gone
    _, err = send.communicate(b"second\n", timeout=30)
    assert send.returncode == 1
    assert "1 messages were sent" in err.decode() and len(err.splitlines()) == 1


def test_send_cut_by_a_leaving_reader_does_not_say_none_was_sent(cli, fifo):
    # 300 messages of 4000 bytes: more than the pipe holds, so put_many is under way when
    # the reader leaves with one of them. "0 messages were sent" would be false.
    ff = endpoints(cli.backend)
    r = ff.Reader(fifo, shared=True)  # takes only the message it returns
    args = [b"%03d" % i + b"x" * 3997 for i in range(300)]
    send = cli.start("send", fifo, *[a.decode() for a in args])
    assert r.get(timeout=20) == args[0]
    r.close()  # the only reader is gone, with the pipe full
    _, err = send.communicate(timeout=30)
    assert send.returncode == 1, err
    line = err.decode()
    assert len(err.splitlines()) == 1, err
    assert "0 messages were sent before the last 300, some of which may have been" in line


# ------------------------------------------------------------------ shell peers


def test_echo_into_recv_lines(cli, fifo):
    recv = cli.start("recv", fifo, "--framing", "lines", "--count", "4")
    subprocess.run(["sh", "-c", f"echo hi > '{fifo}'"], check=True, timeout=30)
    subprocess.run(["sh", "-c", f"printf 'one\\ntwo\\n\\n' > '{fifo}'"], check=True, timeout=30)
    out, err = recv.communicate(timeout=30)
    assert recv.returncode == 0, err
    assert out == b"hi\none\ntwo\n\n"


def test_recv_until_eof_ends_like_cat(cli, fifo):
    recv = cli.start("recv", fifo, "--framing", "lines", "--until-eof")
    subprocess.run(
        ["sh", "-c", f"printf 'a\\nb\\nlast, no newline' > '{fifo}'"], check=True, timeout=30
    )
    out, err = recv.communicate(timeout=30)
    assert recv.returncode == 0, err
    assert out == b"a\nb\nlast, no newline\n"


def test_send_lines_into_cat(cli, fifo):
    cat = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    try:
        r = cli.run(
            "send", fifo, "--framing", "lines", input=b"".join(b"%d\n" % i for i in range(1000))
        )
        assert r.returncode == 0, r.stderr
        out, _ = cat.communicate(timeout=30)
    finally:
        cat.kill()
    assert out == b"".join(b"%d\n" % i for i in range(1000))


def test_lines_send_refuses_a_newline_before_waiting(cli1, fifo):
    r = cli1.run("send", fifo, "--framing", "lines", "--hex", "610a62")  # "a\nb"
    assert r.returncode == 2
    assert "newline" in one_line_error(r, "send")


# ------------------------------------------------------------------ shared readers


def test_shared_recv_processes_each_get_distinct_messages(cli, fifo):
    ff = endpoints(cli.backend)
    # Each recv stops once no message came for 1 s (exit 3 if it got none at all).
    readers = [cli.start("recv", fifo, "--shared", "--timeout", "1") for _ in range(2)]
    try:
        sent = [b"job %d" % i for i in range(300)]
        with ff.Writer(fifo, open_timeout=20) as w:
            w.put_many(sent)
        outs = [p.communicate(timeout=30) for p in readers]
    finally:
        for p in readers:
            p.kill()
    assert all(p.returncode in (0, 3) for p in readers), outs
    got = [line for out, _ in outs for line in out.splitlines()]
    assert sorted(got) == sorted(sent)  # each exactly once, whole


@needs_proc
def test_shared_recv_until_eof(cli, fifo):
    ff = endpoints(cli.backend)
    readers = [cli.start("recv", fifo, "--shared", "--until-eof") for _ in range(2)]
    try:
        for p in readers:  # both have the FIFO open before the only writer comes and goes
            wait_until(lambda p=p: has_open(p.pid, fifo), "recv opened the FIFO", proc=p)
        sent = [b"job %d" % i for i in range(300)]
        with ff.Writer(fifo) as w:
            w.put_many(sent)
        outs = [p.communicate(timeout=30) for p in readers]
    finally:
        for p in readers:
            p.kill()
    assert [p.returncode for p in readers] == [0, 0], outs
    got = [line for out, _ in outs for line in out.splitlines()]
    assert sorted(got) == sorted(sent)


# ------------------------------------------------------------------ errors at the path


@pytest.mark.parametrize("command", [["send", "x"], ["recv"], ["stat"]])
def test_regular_file_at_the_path_exits_4_and_is_untouched(cli1, tmp_path, command):
    f = tmp_path / "q"
    f.write_bytes(b"precious")
    r = cli1.run(command[0], str(f), *command[1:])
    assert r.returncode == 4
    assert "regular file" in one_line_error(r, command[0])
    assert f.read_bytes() == b"precious"


@pytest.mark.parametrize("command", [["send", "x"], ["recv"], ["stat"]])
def test_missing_path_exits_5(cli1, tmp_path, command):
    r = cli1.run(command[0], str(tmp_path / "nope"), *command[1:])
    assert r.returncode == 5
    one_line_error(r, command[0])
    assert not (tmp_path / "nope").exists()


def test_create_option_makes_the_fifo(cli1, tmp_path):
    path = tmp_path / "new"
    r = cli1.run("recv", str(path), "--create", "--timeout", "0")
    assert r.returncode == 3
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_group_writable_fifo_is_refused_unless_asked(cli1, fifo):
    os.chmod(fifo, 0o620)
    r = cli1.run("recv", fifo, "--timeout", "0")
    assert r.returncode == 6
    assert "--no-strict-permissions" in one_line_error(r, "recv")
    r = cli1.run("recv", fifo, "--timeout", "0", "--no-strict-permissions")
    assert r.returncode == 3


# ------------------------------------------------------------------ signals and stdout


@needs_proc
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_recv_interrupted(cli1, fifo, sig, status):
    # As a shell starts a foreground job: with SIGINT at its default even when this test
    # runs in a background job (where SIGINT is ignored, and Python then keeps ignoring it).
    recv = cli1.start("recv", fifo, preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    wait_until(lambda: has_open(recv.pid, fifo), "recv opened the FIFO", proc=recv)
    recv.send_signal(sig)
    _, err = recv.communicate(timeout=30)
    assert recv.returncode == status, err
    assert b"Traceback" not in err


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_recv_interrupted_while_printing_says_what_is_lost_in_its_words(cli, fifo, sig, status):
    # "when interrupted, what it had read but not printed is lost, and it says how many
    # bytes": the batch being printed counts too, and the advice is recv's options.
    ff = endpoints(cli.backend)
    with ff.Reader(fifo, stop_at_eof=True), ff.Writer(fifo) as w:  # the holder never reads
        w.put_many([b"m%04d" % i + b"." * 95 for i in range(2000)])  # 108 bytes each
        out_r, out_w = os.pipe()
        try:
            recv = cli.start(
                "recv", fifo, "--hex", stdout=out_w,
                preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL),
            )  # fmt: skip
            os.close(out_w)
            # A batch of 1000 is ~200 KB of hex: more than this read and the pipe's 64 KiB,
            # so recv is inside printing it for as long as nobody reads more.
            assert os.read(out_r, 65536)
            recv.send_signal(sig)
            _, err = recv.communicate(timeout=30)
        finally:
            os.close(out_r)
    assert recv.returncode == status, err
    text = err.decode()
    assert len(err.splitlines()) == 1, text
    assert "1000 messages taken from the FIFO were being printed" in text
    assert "108000 more bytes recv had read from it were not printed" in text  # 1000 x 108
    assert "--count N or --shared" in text and "shared=True" not in text


def test_recv_says_what_was_lost_when_stdout_closes(cli1, fifo):
    ff = endpoints(cli1.backend)
    recv = cli1.start("recv", fifo)
    with ff.Writer(fifo, open_timeout=20) as w:
        w.put(b"first")
        assert recv.stdout.readline() == b"first\n"
        recv.stdout.close()  # like `| head -n 1`
        w.put(b"second")
        _, err = recv.communicate(timeout=30)
    assert recv.returncode == 1
    assert "not printed" in err.decode() and len(err.splitlines()) == 1


def test_recv_stdout_closed_with_more_read_is_still_one_line(cli, fifo):
    # A plain recv reads ahead: when stdout closes, the bytes it read past the batch it
    # could not print are lost too; the error line says so, and stays one line (exit 1).
    ff = endpoints(cli.backend)
    with ff.Reader(fifo, stop_at_eof=True), ff.Writer(fifo) as w:  # the holder never reads
        w.put_many([b"m%04d" % i for i in range(5000)])  # 65,000 bytes: one read takes all
        out_r, out_w = os.pipe()
        os.close(out_r)  # stdout is closed before recv prints anything
        try:
            recv = cli.start("recv", fifo, stdout=out_w)
        finally:
            os.close(out_w)
        _, err = recv.communicate(timeout=30)
    assert recv.returncode == 1, err
    line = err.decode()
    assert len(err.splitlines()) == 1, err
    assert "1000 messages taken from the FIFO were not printed" in line
    assert "nor 52000 more bytes recv had read" in line  # the other 4000 messages


# ------------------------------------------------------------------ stat


def test_stat_reports_owner_mode_pipe_size_and_buffered_bytes(cli, fifo):
    ff = endpoints(cli.backend)
    with ff.Reader(fifo) as r, ff.Writer(fifo) as w:
        w.put(b"x" * 100)
        w.put_many([b"a", b"b"])
        res = cli.run("stat", fifo, "--json")
        assert res.returncode == 0, res.stderr
        info = json.loads(res.stdout)
        text = cli.run("stat", fifo)
        assert r.get_many(timeout=5) == [b"x" * 100, b"a", b"b"]  # nothing was taken
    assert info["type"] == "fifo" and info["is_fifo"] is True
    assert info["mode"] == "0600" and info["permissions"] == "prw-------"
    assert info["uid"] == os.geteuid() and info["fastfifo_accepts"] is True
    assert info["directory"]["private"] is (
        stat.S_IMODE(os.stat(os.path.dirname(fifo)).st_mode) & 0o077 == 0
    )
    assert info["opened"] is True
    assert info["buffered_bytes"] == 3 * 8 + 102
    if LINUX:
        assert info["pipe_size"] == r.pipe_size
        assert info["readers"] == 1 and info["writers"] == 2  # the Reader is read-write
        assert {o["pid"] for o in info["openers"]} == {os.getpid()}
        assert {o["access"] for o in info["openers"]} == {"rw", "w"}
    assert text.returncode == 0
    out = text.stdout.decode()
    assert "type:       FIFO" in out and "mode:       0600 (prw-------)" in out
    assert "buffered:   126 bytes" in out


@needs_proc
def test_stat_of_an_unopened_fifo_does_not_open_it(cli1, fifo):
    res = cli1.run("stat", fifo, "--json")
    assert res.returncode == 0
    info = json.loads(res.stdout)
    assert info["openers"] == [] and info["readers"] == 0
    assert info["opened"] is False and info["buffered_bytes"] is None
    assert "no reader" in info["not_opened_because"]
    assert "not opened" in cli1.run("stat", fifo).stdout.decode()


@can_see_syscalls
def test_stat_does_not_wake_a_shell_writer_waiting_for_a_reader(cli1, fifo):
    ff = endpoints(cli1.backend)
    echo = subprocess.Popen(["sh", "-c", f"echo still here > '{fifo}'"], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: blocked_in_open(echo.pid), "sh blocks opening the FIFO")
        assert cli1.run("stat", fifo).returncode == 0
        assert cli1.run("stat", fifo, "--json").returncode == 0
        # Had stat opened the FIFO for reading, sh would have written into it and its
        # message would have died with stat's descriptor.
        with ff.Reader(fifo, framing="lines") as r:
            assert r.get(timeout=20) == b"still here"
        assert echo.wait(timeout=30) == 0
    finally:
        echo.kill()


@can_see_syscalls
def test_stat_does_not_end_a_cat_waiting_for_a_writer(cli1, fifo):
    ff = endpoints(cli1.backend)
    cat = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    try:
        wait_until(lambda: blocked_in_open(cat.pid), "cat blocks opening the FIFO")
        for _ in range(2):
            assert cli1.run("stat", fifo, "--open").returncode == 0  # read-only: harmless
        with ff.Writer(fifo, framing="lines", open_timeout=20) as w:
            w.put(b"for cat")
        out, _ = cat.communicate(timeout=30)
    finally:
        cat.kill()
    assert out == b"for cat\n"  # cat saw no writer come and go before ours


def test_stat_of_a_regular_file_in_json(cli1, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    r = cli1.run("stat", str(f), "--json")
    assert r.returncode == 4
    info = json.loads(r.stdout)
    assert info["is_fifo"] is False and info["type"] == "regular file"
    assert info["fastfifo_accepts"] is False and info["opened"] is False


def test_stat_of_a_symlink_to_a_fifo_is_not_followed(cli1, fifo, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(fifo)
    r = cli1.run("stat", str(link), "--json")
    assert r.returncode == 4
    assert json.loads(r.stdout)["type"] == "symbolic link"


# ------------------------------------------------------------------ bench


def test_bench_json(cli1, tmp_path):
    r = cli1.run("bench", "--count", "2000", "--repeat", "1", "--json", "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert len(report["results"]) == 4
    assert all(row["delivery"] == "ok" for row in report["results"])


def test_bench_compares_each_row_with_its_fair_baseline_and_flags_noise():
    """put/get against one write per message, put_many against joined writes; a row
    whose runs spread widely is named (issue 17: one noisy run must show as such)."""
    from fastfifo import _bench

    def row(i, med, lo, hi):
        return {"row": _bench.ROWS[i][0], "msg_per_s": med, "min": lo, "max": hi,
                "mb_per_s": med * 64 / 1e6, "delivery": "ok"}  # fmt: skip

    report = {
        "machine": _bench.machine(), "count": 1000, "size": 64, "repeat": 3,
        "results": [row(0, 1.0e6, 0.99e6, 1.01e6), row(1, 8.0e6, 5.0e6, 8.1e6),
                    row(2, 2.0e6, 1.9e6, 2.1e6), row(3, 4.0e6, 3.9e6, 4.1e6)],
    }  # fmt: skip
    lines = _bench.format_table(report).splitlines()
    put = next(x for x in lines if x.startswith("| fastfifo put / get |"))
    many = next(x for x in lines if x.startswith("| fastfifo put_many / get_many |"))
    assert "| 0.50x one write per message |" in put
    assert "| 2.00x joined writes |" in many
    assert "| 39% |" in many  # (8.1M - 5.0M) / 8.0M
    noisy = [x for x in lines if x.startswith("Noisy:")]
    assert len(noisy) == 1 and "put_many / get_many (39%)" in noisy[0]
    assert "put / get (" not in noisy[0].replace("put_many / get_many", "")


@pytest.mark.parametrize("size", ["0", "-3", "7"])
def test_bench_size_too_small_is_a_usage_error(cli1, size):
    # "2: usage error: a bad option or argument", refused before anything is measured.
    r = cli1.run("bench", "--quiet", f"--size={size}")
    assert r.returncode == 2
    line = one_line_error(r, "bench")
    assert "--size" in line and "at least 8" in line
    assert r.stdout == b""


def test_bench_plot(cli1, tmp_path):
    from fastfifo import _bench

    if not _bench.have_matplotlib():
        pytest.skip("matplotlib is not installed")
    png = tmp_path / "bench.png"
    r = cli1.run(
        "bench", "--count", "2000", "--repeat", "1", "--quiet", "--plot", str(png), timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib_fails_at_once(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from fastfifo.cli import main; "
        "sys.exit(main(['bench', '--plot', sys.argv[1]]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.png")], capture_output=True, timeout=30
    )
    assert r.returncode == 1
    assert "needs matplotlib" in one_line_error(r, "bench")
    assert r.stdout == b""  # nothing was measured
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------ startup


def test_commands_need_neither_fastfifo_aio_nor_the_bench_module(tmp_path):
    """``import fastfifo`` may leave ``fastfifo.aio`` (and asyncio) unimported: the commands
    must not lean on it.  Here it is an empty module, so any use of it fails; and only
    ``bench`` imports ``fastfifo._bench``."""
    code = textwrap.dedent(
        """
        import sys, types
        sys.modules["fastfifo.aio"] = types.ModuleType("fastfifo.aio")
        import fastfifo
        from fastfifo.cli import main

        path = sys.argv[1]
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0, e.code
        assert main(["mkfifo", path]) == 0
        with fastfifo.Reader(path) as r:
            assert main(["send", path, "--linger", "0", "--json", '{"text": "there"}']) == 0
            assert r.get(timeout=5) == b"there"
            with fastfifo.Writer(path) as w:
                w.put(b"back")
                assert main(["stat", path]) == 0
                assert main(["recv", path, "--count", "1", "--timeout", "5", "--json"]) == 0
        for name in ("asyncio", "fastfifo._bench"):
            assert name not in sys.modules, name
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "q")], capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.endswith(b'{"text": "back"}\n'), r.stdout[-200:]


# ------------------------------------------------------------------ send lingers


def test_send_lingers_until_readers_coming_and_going_took_everything(cli, fifo):
    """The README's sequence: send two, recv --count 1 twice; nothing dies in between."""
    send = cli.start("send", fifo, "resize a.jpg", "resize b.jpg")
    first = cli.run("recv", fifo, "--count", "1")
    assert first.returncode == 0 and first.stdout == b"resize a.jpg\n", first.stderr
    # recv has closed the FIFO; only send has it open now, and b is in the pipe, so send
    # must still be there (it leaves once the pipe is empty).
    assert send.poll() is None
    second = cli.run("recv", fifo, "--count", "1", "--json")
    assert second.returncode == 0 and second.stdout == b'{"text": "resize b.jpg"}\n'
    out, err = send.communicate(timeout=30)
    assert send.returncode == 0 and out == b"" and err == b""


def test_send_linger_bound_exits_3_saying_what_was_left(cli1, fifo):
    ff = endpoints(cli1.backend)
    with ff.Reader(fifo, stop_at_eof=True) as idle:  # holds the FIFO, takes nothing yet
        r = cli1.run("send", fifo, "--linger", "0.1", "left behind")
        assert r.returncode == 3
        line = one_line_error(r, "send")
        assert "19 bytes were still in the pipe" in line and "--linger" in line
        assert "1 messages were sent" in line
        # What to do, in the command's words (not the library's linger=None).
        assert "a longer --linger" in line and "linger=" not in line and fifo in line
        assert idle.get(timeout=5) == b"left behind"  # sent, and alive while a reader is


def test_send_linger_0_returns_while_the_messages_wait(cli1, fifo):
    keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # like a shell's exec 3<>fifo
    try:
        r = cli1.run("send", fifo, "--linger", "0", "a", "b")
        assert r.returncode == 0 and r.stderr == b""
        out = cli1.run("recv", fifo, "--count", "2", "--timeout", "0")
        assert out.stdout == b"a\nb\n"
    finally:
        os.close(keep)


# ------------------------------------------------------------------ saying what we wait for


def run_on_a_terminal(
    cli: Cli, *args: str, until: bytes, then=None, env: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Run a command with stderr on a pseudo-terminal; read it until ``until`` appears,
    call ``then()`` (which lets the command finish) and return (status, stderr)."""
    master, slave = pty.openpty()
    proc = cli.start(*args, stderr=slave, env={**cli.env, **(env or {})})
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while until not in seen:
            assert time.monotonic() < deadline, f"never said {until!r}; said {seen!r}"
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # EIO: the command exited and the terminal closed
                    break
        assert until in seen, seen
        if then is not None:
            then()
        proc.wait(timeout=30)
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return proc.returncode, seen


def test_send_says_on_a_terminal_that_it_waits_for_a_reader(cli1, fifo):
    ff = endpoints(cli1.backend)
    got: list[bytes] = []

    def a_reader_comes() -> None:
        with ff.Reader(fifo) as r:
            got.append(r.get(timeout=20))

    status, said = run_on_a_terminal(
        cli1,
        "send",
        fifo,
        "hello",
        until=b"waiting for a reader to open the FIFO",
        then=a_reader_comes,
    )
    assert status == 0 and got == [b"hello"]
    assert said.count(b"fastfifo send: waiting: ") == 1 and fifo.encode() in said


def test_send_says_on_a_terminal_that_it_lingers(cli1, fifo):
    ff = endpoints(cli1.backend)
    with ff.Reader(fifo, stop_at_eof=True) as r:  # holds the FIFO, reads later
        status, said = run_on_a_terminal(
            cli1,
            "send",
            fifo,
            "x",
            until=b"waiting until readers have taken everything",
            then=lambda: r.get(timeout=20),
            env={"FASTFIFO_NOTICE_AFTER": "0"},
        )
    assert status == 0 and b"1 messages sent" in said


def test_send_says_on_a_terminal_that_the_pipe_is_full(cli1, fifo, tmp_path):
    ff = endpoints(cli1.backend)
    lines = [b"%04d" % i + b"x" * 3996 for i in range(400)]  # 400 pages: more than 1 MiB
    (tmp_path / "input").write_bytes(b"\n".join(lines) + b"\n")
    got: list[bytes] = []
    with ff.Reader(fifo) as r, open(tmp_path / "input", "rb") as stdin:  # r takes nothing yet
        master, slave = pty.openpty()
        send = cli1.start("send", fifo, stdin=stdin, stderr=slave)
        os.close(slave)
        try:
            said = b""
            deadline = time.monotonic() + 30
            while b"the pipe is full" not in said:
                assert time.monotonic() < deadline, said
                if select.select([master], [], [], 0.1)[0]:
                    said += os.read(master, 4096)
            while len(got) < len(lines):
                got.extend(r.get_many(timeout=20))
            assert send.wait(timeout=30) == 0
        finally:
            send.kill()
            send.wait()
            os.close(master)
    assert got == lines
    assert said.startswith(b"fastfifo send: waiting: ") and b"readers to take" in said


def test_recv_says_on_a_terminal_that_it_waits_for_a_message(cli1, fifo):
    ff = endpoints(cli1.backend)

    def a_message_comes() -> None:
        with ff.Writer(fifo, open_timeout=20) as w:
            w.put(b"here")

    status, said = run_on_a_terminal(
        cli1,
        "recv",
        fifo,
        "--count",
        "1",
        until=b"fastfifo recv: waiting: ",
        then=a_message_comes,
        env={"FASTFIFO_NOTICE_AFTER": "0"},
    )
    assert status == 0 and b"waiting for a message" in said


def test_no_waiting_notices_when_stderr_is_not_a_terminal(cli1, fifo):
    # FASTFIFO_NOTICE_AFTER=0 would say it at once, before waiting: only the terminal
    # check keeps these commands' stderr to their one error line.
    env = {**cli1.env, "FASTFIFO_NOTICE_AFTER": "0"}
    r = cli1.run("send", fifo, "--open-timeout", "0.05", "x", env=env)
    assert r.returncode == 3 and "waiting:" not in one_line_error(r, "send")
    r = cli1.run("recv", fifo, "--timeout", "0.05", env=env)
    assert r.returncode == 3 and "waiting:" not in one_line_error(r, "recv")


# ------------------------------------------------------------------ recv details


def test_recv_quiet_ends_a_loop_without_a_word(cli1, fifo):
    r = cli1.run("recv", fifo, "--count", "1", "--timeout", "0", "--quiet")
    assert r.returncode == 3 and r.stdout == b"" and r.stderr == b""


def test_mkfifo_names_the_path_when_a_directory_on_the_way_is_a_fifo(cli1, fifo):
    r = cli1.run("mkfifo", fifo + "/q")
    assert r.returncode == 1
    line = one_line_error(r, "mkfifo")
    assert f"{fifo}/q" in line and "not a directory" in line


# ------------------------------------------------------------------ signals while waiting


@needs_proc
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_recv_count_waiting_for_the_readers_lock_ends_on_a_signal(cli, fifo, sig, status):
    """issue 13: a message waits, but another process holds the readers' lock; recv's
    claim waits for the lock, and Ctrl-C (or SIGTERM) must still end it at once."""
    lock = fifo if LOCKS_ON_FIFOS else fifo + ".readers.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            lock,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    recv = None
    try:
        assert holder.stdout.readline() == b"locked\n"
        keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # the message outlives the writer
        try:
            with endpoints(cli.backend).Writer(fifo) as w:
                w.put(b"waiting behind the lock")
            recv = cli.start(
                "recv", fifo, "--count", "1", preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL)
            )
            # Opened the FIFO, then asleep: only the claim's wait for the lock is left.
            wait_until(
                lambda: has_open(recv.pid, fifo) and proc_state(recv.pid) == "S",
                "recv waits for the readers' lock",
                proc=recv,
            )
            recv.send_signal(sig)
            out, err = recv.communicate(timeout=10)
            assert recv.returncode == status, err
            assert out == b"" and b"Traceback" not in err
        finally:
            os.close(keep)
    finally:
        if recv is not None and recv.poll() is None:
            recv.kill()
            recv.wait()
        holder.kill()
        holder.wait()
