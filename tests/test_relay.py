"""fastfifo relay: FIFO <-> Redis Stream against a real Redis server, losing nothing.

The server is the `test` extra's own redis-server binary (tests/helpers.py), run on a free
127.0.0.1 port; no test talks to any other address.  The relays run on the backend
fastfifo picked (the suite runs again on the pure one under FASTFIFO_NO_EXTENSIONS=1).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from helpers import RedisServer, redis_server_binary

import fastfifo
from fastfifo import relay
from fastfifo._open import bytes_waiting

redis = pytest.importorskip("redis", reason="redis-py is part of the test extra")

LINUX = sys.platform.startswith("linux")


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def server_binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server binary (the test extra installs one on this platform?)")
    return binary


@pytest.fixture(scope="module")
def server(server_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    srv = RedisServer(server_binary, str(tmp_path_factory.mktemp("redis"))).start()
    yield srv
    srv.kill()


@pytest.fixture
def stream() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fifos(tmp_path) -> tuple[str, str]:
    return fastfifo.mkfifo(str(tmp_path / "in")), fastfifo.mkfifo(str(tmp_path / "out"))


@contextmanager
def running(r: relay.Relay) -> Iterator[relay.Relay]:
    """Run a Relay in a thread; stop it on leaving and re-raise what it raised."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            r.run()
        except BaseException as e:
            failure.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    try:
        yield r
    finally:
        r.stop()
        t.join(30)
        assert not t.is_alive(), "the relay did not stop"
    if failure:
        raise failure[0]


def collect(reader: Any, n: int, timeout: float = 30.0) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(out)} of {n} messages arrived"
        try:
            out += reader.get_many(10_000, timeout=min(left, 1.0))
        except fastfifo.Empty:
            pass
    return out


def payloads(n: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}{i:07d}".encode() for i in range(n)]


# ------------------------------------------------------------------ URLs and options (no server)


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("redis://h?stream=s", ("redis", "h", 6379, 0, "s", None, None)),
        ("redis://h:7000/3?stream=jobs", ("redis", "h", 7000, 3, "jobs", None, None)),
        ("redis://u:p%40ss@h/1?stream=a", ("redis", "h", 6379, 1, "a", "u", "p@ss")),
        ("redis://:pw@h?stream=a", ("redis", "h", 6379, 0, "a", None, "pw")),
        (
            "rediss://h:6380?stream=a&ssl_ca_certs=/ca.pem",
            ("rediss", "h", 6380, 0, "a", None, None),
        ),
        ("REDIS://[::1]:6379/0?stream=a", ("redis", "::1", 6379, 0, "a", None, None)),
    ],
)
def test_urls_that_parse(url, expect, monkeypatch):
    monkeypatch.delenv(relay.DEFAULT_PASSWORD_ENV, raising=False)
    r = relay.parse_redis_url(url)
    assert (r.scheme, r.host, r.port, r.db, r.stream, r.username, r.password) == expect


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://u:sekret@h/0", "no stream named"),
        ("redis://u:sekret@h/0?stream=a&stream=b", "given 2 times"),
        ("redis://u:sekret@h/0?stream=a&maxlen=5", "unknown stream option 'maxlen'"),
        ("redis://u:sekret@h/zero?stream=a", "database number"),
        ("redis://u:sekret@h:99999/0?stream=a", "not a valid Redis URL"),
        ("redis://u:sekret@h:port/0?stream=a", "not a valid Redis URL"),
        ("redis://u:sek/ret@h:6379/0?stream=a", "not a valid Redis URL"),  # / not encoded
        ("redis://u:sek#ret@h:6379/0?stream=a", "not a valid Redis URL"),  # # not encoded
        ("redis://u:sek:ret@h:port/0?stream=a", "not a valid Redis URL"),
        ("redis://u:sekret@/0?stream=a", "no host"),
        ("http://u:sekret@h/0?stream=a", "unsupported URL scheme 'http'"),
        ("redis://u:sekret@h/0?stream=a&ssl_ca_certs=x", "rediss://"),
        ("redis://u:sekret@h/0?stream=a#frag", "fragment"),
    ],
)
def test_bad_urls_say_what_is_wrong_and_never_show_the_password(url, words):
    with pytest.raises(relay.RelayConfigError) as info:
        relay.parse_redis_url(url)
    assert words in str(info.value)
    for part in ("sekret", "sek", "ret@"):
        assert part not in str(info.value)
    assert "***" in str(info.value)


def test_the_password_comes_from_the_environment_and_is_never_shown(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_PW", "from-env")
    monkeypatch.setenv(relay.DEFAULT_PASSWORD_ENV, "default-env")
    assert relay.parse_redis_url("redis://h?stream=s").password == "default-env"
    assert relay.parse_redis_url("redis://h?stream=s", password_env="MY_PW").password == "from-env"
    assert relay.parse_redis_url("redis://:inurl@h?stream=s").password == "inurl"  # URL wins
    r = relay.parse_redis_url("redis://bob:sekret@h?stream=s")
    for text in (repr(r), str(r), r.url):
        assert "sekret" not in text and "bob:***@" in text
    r = relay.parse_redis_url("redis://bob:p%40ss%2Fw%3Ard@h?stream=s")  # percent-encoded
    assert r.password == "p@ss/w:rd" and "p%40ss" not in repr(r)
    fifo = fastfifo.mkfifo(str(tmp_path / "q"))
    rel = relay.Relay(fifo, "redis://bob:sekret@h?stream=s")
    assert "sekret" not in repr(rel) and "sekret" not in rel.stats.line()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"batch": 0}, "batch must be from 1"),
        ({"batch": 10**9}, "batch must be from 1"),
        ({"batch": 1.5}, "batch must be an integer"),
        ({"block": float("nan")}, "NaN"),
        ({"block": 0}, "block must be > 0"),
        ({"block": -1}, "block must be > 0"),
        ({"claim_idle": float("nan")}, "NaN"),
        ({"connect_timeout": -1}, "connect_timeout must be >= 0"),
        ({"maxlen": 0}, "maxlen must be from 1"),
        ({"framing": "json"}, "framing must be"),
        ({"group": ""}, "group must be"),
        ({"group_start": "soon"}, "group_start must be"),
        ({"field": ""}, "field must be"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(kwargs, words, tmp_path):
    fifo = fastfifo.mkfifo(str(tmp_path / "q"))
    with pytest.raises(relay.RelayConfigError, match=words):
        relay.Relay(fifo, "redis://h?stream=s", **kwargs)


def test_huge_and_infinite_times_mean_wait_long_not_overflow(tmp_path):
    fifo = fastfifo.mkfifo(str(tmp_path / "q"))
    r = relay.Relay(
        "redis://h?stream=s",
        fifo,
        block=1e300,
        claim_idle=float("inf"),
        connect_timeout=float("inf"),
    )
    assert r.block == relay.MAX_BLOCK
    assert r.claim_idle is None and r.connect_timeout is None


def test_one_side_must_be_a_fifo_and_the_other_a_url(tmp_path):
    fifo = fastfifo.mkfifo(str(tmp_path / "q"))
    with pytest.raises(relay.RelayConfigError, match="one of SOURCE and DEST"):
        relay.Relay(fifo, fifo)
    with pytest.raises(relay.RelayConfigError, match="one of SOURCE and DEST"):
        relay.Relay("redis://a?stream=x", "redis://b?stream=y")


def test_a_missing_fifo_is_reported_before_redis_is_tried(tmp_path):
    unreachable = "redis://127.0.0.1:1/0?stream=s"  # nothing listens on port 1
    for src, dst in ((str(tmp_path / "none"), unreachable), (unreachable, str(tmp_path / "none"))):
        with pytest.raises(FileNotFoundError):
            relay.Relay(src, dst, connect_timeout=30).run()


def test_an_unreachable_redis_is_a_clear_connection_error(tmp_path):
    fifo = fastfifo.mkfifo(str(tmp_path / "q"))
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        relay.Relay(fifo, "redis://u:sekret@127.0.0.1:1/0?stream=s", connect_timeout=0.3).run()
    assert "cannot reach Redis at 127.0.0.1:1" in str(info.value)
    assert "sekret" not in str(info.value)
    assert time.monotonic() - t0 < 20


# ------------------------------------------------------------------ both directions


def test_fifo_to_stream_to_fifo_delivers_everything_in_order(server, stream, fifos):
    src, dst = fifos
    url = server.url(stream)
    sent = [*payloads(3000), b"", os.urandom(100_000), bytes(range(256)) * 3, b"end"]
    with fastfifo.Reader(dst) as out:
        a = relay.Relay(src, url, batch=200, block=0.1)
        b = relay.Relay(url, dst, batch=200, block=0.1)
        with running(a), running(b), fastfifo.Writer(src) as w:
            for i in range(0, len(sent), 250):
                w.put_many(sent[i : i + 250])
            got = collect(out, len(sent))
    assert got == sent
    assert a.stats.messages == len(sent) and b.stats.messages == len(sent)
    assert a.stats.unguarded == (0 if LINUX else len(sent))
    assert (a.stats.resent, b.stats.redelivered, b.stats.skipped) == (0, 0, 0)
    client = server.client()
    assert client.xlen(stream) == len(sent)
    assert client.xpending(stream, relay.DEFAULT_GROUP)["pending"] == 0  # all acknowledged


def test_shell_tools_at_both_ends_in_lines_framing(server, stream, fifos):
    src, dst = fifos
    url = server.url(stream)
    a = relay.Relay(src, url, framing="lines", block=0.1)
    b = relay.Relay(url, dst, framing="lines", block=0.1)
    with running(a), running(b):
        subprocess.run(["sh", "-c", f"printf 'hello\\nworld\\n' > '{src}'"], check=True, timeout=30)
        head = subprocess.run(["head", "-n", "2", dst], capture_output=True, timeout=30)
    assert head.stdout == b"hello\nworld\n"


def test_entries_from_other_producers_skips_and_ids(server, stream, fifos, caplog):
    _, dst = fifos
    client = server.client()
    first = client.xadd(stream, {"data": b"one"})
    foreign = client.xadd(stream, {"other": b"x"})
    third = client.xadd(stream, {"data": b"two\nlines"})
    with fastfifo.Reader(dst) as out, caplog.at_level(logging.WARNING, "fastfifo.relay"):
        b = relay.Relay(server.url(stream), dst, with_id=True, block=0.1)
        with running(b):
            got = collect(out, 2)
    assert got == [first + b" one", third + b" two\nlines"]
    assert b.stats.skipped == 1 and b.stats.messages == 2
    assert foreign.decode() in caplog.text and "no field 'data'" in caplog.text
    assert client.xpending(stream, relay.DEFAULT_GROUP)["pending"] == 0
    assert client.xlen(stream) == 3  # acknowledged, not deleted


def test_own_pending_entries_are_written_first(server, stream, fifos):
    _, dst = fifos
    client = server.client()
    client.xgroup_create(stream, "g", "0", mkstream=True)
    for m in payloads(5, "p"):
        client.xadd(stream, {"data": m})
    client.xreadgroup("g", "me", {stream: ">"})  # delivered to "me", never acknowledged
    for m in payloads(5, "n"):
        client.xadd(stream, {"data": m})
    with fastfifo.Reader(dst) as out:
        b = relay.Relay(server.url(stream), dst, group="g", consumer="me", block=0.1)
        with running(b):
            got = collect(out, 10)
    assert got == payloads(5, "p") + payloads(5, "n")
    assert b.stats.redelivered == 5
    assert client.xpending(stream, "g")["pending"] == 0


def test_entries_of_an_idle_consumer_are_claimed(server, stream, fifos):
    _, dst = fifos
    client = server.client()
    client.xgroup_create(stream, "g", "0", mkstream=True)
    for m in payloads(5, "c"):
        client.xadd(stream, {"data": m})
    client.xreadgroup("g", "dead", {stream: ">"})  # a consumer that died holding them
    with fastfifo.Reader(dst) as out:
        b = relay.Relay(
            server.url(stream), dst, group="g", consumer="live", claim_idle=0.2, block=0.1
        )
        with running(b):
            got = collect(out, 5)
    assert got == payloads(5, "c")
    assert b.stats.claimed == 5
    assert client.xpending(stream, "g")["pending"] == 0


def test_a_full_pipe_stops_reading_from_redis(server, stream, fifos):
    _, dst = fifos
    client = server.client()
    sent = [b"%06d" % i + b"x" * 994 for i in range(3000)]  # 3 MB: three times the pipe
    pipe = client.pipeline(transaction=False)
    for m in sent:
        pipe.xadd(stream, {"data": m})
    pipe.execute()
    with fastfifo.Reader(dst) as out:
        b = relay.Relay(server.url(stream), dst, batch=100, block=0.1)
        with running(b):
            full = out.pipe_size * 9 // 10  # 4 frames of 1008 bytes fill each 4 KiB page
            wait_for(lambda: bytes_waiting(out.fileno()) >= full, what="the pipe to fill")
            wait_for(lambda: b.stats.messages > 0)
            pending = client.xpending(stream, relay.DEFAULT_GROUP)["pending"]
            assert pending <= 100  # one batch held, nothing read beyond it
            assert b.stats.messages <= out.pipe_size // 1000
            got = collect(out, len(sent))
    assert got == sent


def test_a_reader_that_goes_away_loses_nothing(server, stream, fifos):
    _, dst = fifos
    client = server.client()
    sent = payloads(2000)
    pipe = client.pipeline(transaction=False)
    for m in sent:
        pipe.xadd(stream, {"data": m})
    pipe.execute()
    first = fastfifo.Reader(dst, shared=True)  # takes from the pipe exactly what it returns
    b = relay.Relay(server.url(stream), dst, batch=50, block=0.1)
    with running(b):
        got = collect(first, 700)
        first.close()  # the only reader goes away, mid-stream: the relay's writes fail
        with fastfifo.Reader(dst) as second:
            got += collect(second, len(sent) - len(got))
    assert got == sent


# ------------------------------------------------------------------ faults


@pytest.fixture
def durable(server_binary: str, tmp_path) -> Iterator[RedisServer]:
    work = tmp_path / "aof"
    work.mkdir()
    srv = RedisServer(server_binary, str(work), aof=True).start()
    yield srv
    srv.kill()


def test_redis_killed_and_restarted_mid_stream(durable, stream, fifos):
    """SIGKILL Redis twice while messages cross both relays: none lost, duplicates counted."""
    src, dst = fifos
    url = durable.url(stream)
    sent = payloads(6000)
    with fastfifo.Reader(dst) as out, fastfifo.Reader(src, shared=True) as _keep_open:
        a = relay.Relay(src, url, batch=100, block=0.1)
        b = relay.Relay(url, dst, batch=100, block=0.1)
        got: list[bytes] = []
        with running(a), running(b), fastfifo.Writer(src) as w:
            for part in range(3):
                w.put_many(sent[part * 2000 : (part + 1) * 2000])
                got += collect(out, 500)  # in flight when Redis dies
                durable.kill()
                durable.start(port=durable.port)
            seen = set(got)
            deadline = time.monotonic() + 60
            while len(seen) < len(sent):
                assert time.monotonic() < deadline, f"{len(sent) - len(seen)} messages lost"
                try:
                    more = out.get_many(10_000, timeout=1)
                except fastfifo.Empty:
                    continue
                got += more
                seen.update(more)
    counts = Counter(got)
    assert set(counts) == set(sent)  # nothing lost, nothing foreign
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= a.stats.resent + b.stats.redelivered
    assert a.stats.outages >= 1 and b.stats.outages >= 1
    assert a.stats.lost == 0


def _relay_process(src: str, dst: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "fastfifo", "relay", src, dst, "--block", "0.1", *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_relays_sigkilled_at_random_instants_lose_nothing(server, stream, fifos):
    """20,000 messages cross while both relays are SIGKILLed and restarted, 3 times each."""
    src, dst = fifos
    url = server.url(stream)
    batch, n, kills = 200, 20_000, 3
    sent = payloads(n)
    rng = random.Random(18)
    got: list[bytes] = []
    procs = {"in": _relay_process(src, url, "--batch", str(batch))}
    procs["out"] = _relay_process(url, dst, "--batch", str(batch), "--consumer", "c")
    killed = Counter[str]()
    try:
        with fastfifo.Reader(dst) as out, fastfifo.Reader(src, shared=True) as _keep_open:

            def produce() -> None:
                with fastfifo.Writer(src) as w:
                    for i in range(0, n, 500):
                        w.put_many(sent[i : i + 500])

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            deadline = time.monotonic() + 90
            # Kill points: after random numbers of messages arrived, so every kill lands
            # while messages are crossing; the side killed is random too.
            points = sorted(rng.sample(range(1000, n - 1000), 2 * kills))
            while len(set(got)) < n:
                assert time.monotonic() < deadline, f"{n - len(set(got))} messages missing"
                if points and len(got) >= points[0]:
                    points.pop(0)
                    side = rng.choice([s for s in ("in", "out") if killed[s] < kills])
                    time.sleep(rng.uniform(0, 0.05))  # a random instant, not a sync point
                    procs[side].kill()
                    procs[side].wait()
                    killed[side] += 1
                    args = (src, url) if side == "in" else (url, dst, "--consumer", "c")
                    procs[side] = _relay_process(*args, "--batch", str(batch))
                try:
                    got += out.get_many(10_000, timeout=0.05)
                except fastfifo.Empty:
                    pass
            producer.join(10)
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
    counts = Counter(got)
    assert set(counts) == set(sent)  # lost: 0
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= sum(killed.values()) * batch  # at most the batch in flight per kill
    assert killed == {"in": kills, "out": kills}


# ------------------------------------------------------------------ credentials and the CLI


@pytest.fixture
def locked(server_binary: str, tmp_path) -> Iterator[RedisServer]:
    srv = RedisServer(server_binary, str(tmp_path), password="s3cret-pw").start()
    yield srv
    srv.kill()


def test_wrong_or_missing_password_is_permission_denied(locked, stream, fifos, monkeypatch):
    src, _ = fifos
    monkeypatch.delenv(relay.DEFAULT_PASSWORD_ENV, raising=False)
    for url, how in (
        (locked.url(stream, password="wrong-pw"), "refused"),
        (locked.url(stream), "no password was given"),
    ):
        with pytest.raises(PermissionError) as info:
            relay.Relay(src, url, connect_timeout=5).run()
        assert how in str(info.value) and "wrong-pw" not in str(info.value)
    monkeypatch.setenv(relay.DEFAULT_PASSWORD_ENV, "s3cret-pw")  # the right one, from env
    a = relay.Relay(src, locked.url(stream), block=0.1)
    with running(a), fastfifo.Writer(src) as w:
        w.put(b"hi")
        wait_for(lambda: a.stats.messages == 1)
    assert locked.client().xlen(stream) == 1


def test_cli_exit_statuses_and_no_password_in_output(locked, stream, fifos):
    src, _ = fifos
    env = {k: v for k, v in os.environ.items() if k != relay.DEFAULT_PASSWORD_ENV}
    cases = [
        ([src, locked.url(stream, password="wrong-pw")], 6, "refused to authenticate"),
        ([src, "redis://:wrong-pw@127.0.0.1:1/0?stream=s", "--connect-timeout", "0.2"], 1,
         "cannot reach"),
        ([src, "redis://:wrong-pw@127.0.0.1/0?stream=s&nope=1"], 2, "unknown stream option"),
        ([src, "redis://:wrong-pw@127.0.0.1/0"], 2, "no stream named"),
        ([src + ".missing", locked.url(stream)], 5, "no FIFO at this path"),
        ([src, locked.url(stream), "--batch", "0"], 2, "--batch"),
    ]  # fmt: skip
    for args, status, words in cases:
        p = subprocess.run(
            [sys.executable, "-m", "fastfifo", "relay", *args],
            capture_output=True,
            timeout=60,
            env=env,
        )
        err = p.stderr.decode()
        assert p.returncode == status, (args, err)
        assert words in err and err.startswith("fastfifo relay: error: "), err
        assert "wrong-pw" not in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_cli_ends_promptly_on_a_signal_losing_nothing(locked, stream, fifos, sig, status):
    src, _ = fifos
    env = dict(os.environ, FASTFIFO_REDIS_PASSWORD="s3cret-pw")
    keep_open = fastfifo.Reader(src, shared=True)  # the FIFO (and its data) outlives the relay
    p = _relay_process(src, locked.url(stream), "--stats", "--stats-interval", "0.1", env=env)
    client = locked.client()
    try:
        with fastfifo.Writer(src, open_timeout=30) as w:
            w.put_many(payloads(1000))
            wait_for(lambda: client.xlen(stream) == 1000, what="the relay to send everything")
            w.put_many(payloads(1000, "late"))  # may be in flight when the signal comes
        p.send_signal(sig)
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == status, err
    text = err.decode()
    assert "s3cret-pw" not in text
    assert f"{src} -> redis://:***@127.0.0.1:{locked.port}/0?stream={stream}: " in text  # --stats
    left = []
    with keep_open:  # what the relay did not send is still in the FIFO
        try:
            while True:
                left += keep_open.get_many(10_000, timeout=0.2)
        except fastfifo.Empty:
            pass
    in_stream = [fields[b"data"] for _, fields in client.xrange(stream)]
    assert Counter(in_stream + left) >= Counter(payloads(1000) + payloads(1000, "late"))


def test_maxlen_caps_the_stream(server, stream, fifos):
    src, _ = fifos
    a = relay.Relay(src, server.url(stream), maxlen=100, maxlen_exact=True, block=0.1)
    with running(a), fastfifo.Writer(src) as w:
        w.put_many(payloads(1000))
        wait_for(lambda: a.stats.messages == 1000)
    client = server.client()
    assert client.xlen(stream) == 100
    assert [f[b"data"] for _, f in client.xrange(stream)] == payloads(1000)[-100:]


def test_a_user_without_scripts_gets_multi_exec(server, stream, fifos, caplog):
    """The batch goes in one EVALSHA; where an ACL refuses scripts, in one MULTI/EXEC."""
    src, _ = fifos
    client = server.client()
    user = f"u{uuid.uuid4().hex[:8]}"
    client.acl_setuser(
        user, enabled=True, passwords=["+pw-" + user], keys=["*"], commands=["+@all", "-@scripting"]
    )
    url = f"redis://{user}:pw-{user}@127.0.0.1:{server.port}/0?stream={stream}"
    with caplog.at_level(logging.INFO, "fastfifo.relay"):
        a = relay.Relay(src, url, block=0.1)
        with running(a), fastfifo.Writer(src) as w:
            w.put_many(payloads(500))
            wait_for(lambda: a.stats.messages == 500)
    assert "scripts refused" in caplog.text and "MULTI/EXEC" in caplog.text
    assert [f[b"data"] for _, f in client.xrange(stream)] == payloads(500)


def test_without_tee_batches_are_taken_first_and_counted(server, stream, fifos, monkeypatch):
    """The macOS path (exact-read claims, run here on Linux): batches cross, counted as
    unguarded, and the relay says what that means."""
    monkeypatch.setattr(fastfifo._endpoints, "_FORCE_EXACT_CLAIMS", True)
    src, _ = fifos
    a = relay.Relay(src, server.url(stream), block=0.1)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("fastfifo.relay").addHandler(handler)
    try:
        with running(a), fastfifo.Writer(src) as w:
            w.put_many(payloads(300))
            wait_for(lambda: a.stats.messages == 300)
    finally:
        logging.getLogger("fastfifo.relay").removeHandler(handler)
    assert a.stats.unguarded == 300 and a.stats.lost == 0
    assert any("no tee()" in r for r in records)
    assert [f[b"data"] for _, f in server.client().xrange(stream)] == payloads(300)


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "relay.md")


@pytest.mark.skipif(not os.path.exists(DOCS), reason="no docs/ beside tests/")
def test_the_documented_deduplication_drops_redelivered_entries(server, stream, fifos):
    """docs/relay.md's without_duplicates(), run on a FIFO that received entries twice."""
    with open(DOCS) as f:
        text = f.read()
    start = text.index("```python", text.index("## De-duplicating by stream entry ID")) + 9
    namespace: dict[str, Any] = {}
    exec(text[start : text.index("```", start)], namespace)
    _, dst = fifos
    client = server.client()
    client.xgroup_create(stream, "g", "0", mkstream=True)
    for m in payloads(5):
        client.xadd(stream, {"data": m})
    reply = client.xreadgroup("g", "me", {stream: ">"})  # "me" read them, then died...
    with fastfifo.Reader(dst) as out:
        with fastfifo.Writer(dst) as w:  # ...after writing them, before its XACK
            w.put_many([eid + b" " + fields[b"data"] for eid, fields in reply[0][1]])
        for m in payloads(3, "new"):
            client.xadd(stream, {"data": m})
        b = relay.Relay(server.url(stream), dst, group="g", consumer="me", with_id=True, block=0.1)
        with running(b):
            unique = namespace["without_duplicates"](out)
            got = [next(unique) for _ in range(8)]
        assert b.stats.redelivered == 5
        with pytest.raises(fastfifo.Empty):
            out.get(timeout=0)  # the five duplicates were read and dropped
    assert [payload for _, payload in got] == payloads(5) + payloads(3, "new")
    assert len({eid for eid, _ in got}) == 8


def test_lines_framing_skips_what_a_line_cannot_carry(server, stream, fifos, caplog):
    _, dst = fifos
    client = server.client()
    ids = [client.xadd(stream, {"data": m}) for m in (b"ok", b"two\nlines", b"x" * 5000, b"end")]
    with fastfifo.Reader(dst, framing="lines") as out, caplog.at_level(logging.WARNING):
        b = relay.Relay(server.url(stream), dst, framing="lines", block=0.1)
        with running(b):
            got = collect(out, 2)
    assert got == [b"ok", b"end"]
    assert b.stats.skipped == 2
    assert ids[1].decode() in caplog.text and ids[2].decode() in caplog.text
    assert client.xpending(stream, relay.DEFAULT_GROUP)["pending"] == 0


def test_redis_out_of_memory_holds_the_batch_until_there_is_room(
    server_binary, tmp_path, stream, fifos
):
    srv = RedisServer(server_binary, str(tmp_path)).start()
    try:
        client = srv.client()
        src, _ = fifos
        a = relay.Relay(src, srv.url(stream), batch=100, block=0.1)
        with running(a), fastfifo.Writer(src) as w:
            w.put(b"first")
            wait_for(lambda: a.stats.messages == 1)
            used = client.info("memory")["used_memory"]
            client.config_set("maxmemory", str(used + 1024))  # noeviction: writes refused
            client.config_set("maxmemory-policy", "noeviction")
            big = [b"%05d" % i + b"y" * 2000 for i in range(200)]
            w.put_many(big)
            wait_for(lambda: a.stats.retries >= 2, what="the relay to meet OOM")
            held = a.stats.messages
            client.config_set("maxmemory", "0")  # room again
            wait_for(lambda: a.stats.messages == 201)
        assert held < 201 and a.stats.outages >= 1 and a.stats.lost == 0
        got = [f[b"data"] for _, f in client.xrange(stream)]
        assert Counter(got) >= Counter([b"first", *big]) and len(got) - 201 <= a.stats.resent
    finally:
        srv.kill()
