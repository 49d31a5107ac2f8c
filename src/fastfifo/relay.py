"""Move messages between a FIFO and a Redis Stream, losing none: ``fastfifo relay``.

A FIFO lives on one host.  A relay carries its messages to a Redis Stream, and another
relay carries the stream's entries into a FIFO on another host::

    producers -> FIFO -> relay -> Redis Stream -> relay -> FIFO -> consumers

FIFO -> stream: the relay peeks a batch of whole messages under the shared readers'
lock (``tee()``, nothing consumed), adds them to the stream in one ``MULTI``/``EXEC``,
and only then consumes exactly those bytes.  A relay killed before Redis replied
consumed nothing; one killed after it leaves the batch to be sent again (a duplicate).

Stream -> FIFO: ``XREADGROUP`` a batch, write it into the FIFO (whole messages, atomic
writes), then ``XACK``.  On start, and after every reconnection, a relay first writes
the entries still pending for its consumer name; ``XAUTOCLAIM`` takes over the entries
of a consumer idle for longer than ``claim_idle`` seconds.

Either way: no message is lost, and duplicates are bounded by the batches in flight;
:class:`RelayStats` counts them.  docs/relay.md has the guarantees per hop, how to
de-duplicate by entry ID, a two-host topology and a systemd unit.

Needs redis-py: ``pip install 'fastfifo[redis]'``.  URL parsing works without it.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastfifo

from . import _endpoints, _open
from ._endpoints import Framing
from ._open import Backoff

# A redis.Redis; typed loosely, as redis-py's annotations differ between its versions.
_Client = Any

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_BLOCK",
    "DEFAULT_CLAIM_IDLE",
    "DEFAULT_FIELD",
    "DEFAULT_GROUP",
    "DEFAULT_PASSWORD_ENV",
    "RedisStream",
    "Relay",
    "RelayConfigError",
    "RelayError",
    "RelayStats",
    "parse_redis_url",
    "run",
]

log = logging.getLogger("fastfifo.relay")

#: Messages per batch: per peek and XADD transaction, per XREADGROUP and XACK.
DEFAULT_BATCH = 500
#: Seconds one wait for messages lasts (FIFO peek, XREADGROUP BLOCK); stop() within it.
DEFAULT_BLOCK = 1.0
#: Largest block timeout: longer ones are cut to this.
MAX_BLOCK = 60.0
#: Seconds another consumer's entry must be idle before XAUTOCLAIM takes it over.
DEFAULT_CLAIM_IDLE = 60.0
DEFAULT_GROUP = "fastfifo"
#: The stream entry field that carries the message.
DEFAULT_FIELD = "data"
#: Environment variable read for the Redis password when the URL has none.
DEFAULT_PASSWORD_ENV = "FASTFIFO_REDIS_PASSWORD"
#: Seconds to wait for Redis at start before giving up.
DEFAULT_CONNECT_TIMEOUT = 10.0

_URL_OPTIONS = ("stream", "ssl_ca_certs")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Redis errors worth waiting out: a restart (LOADING), a failover (READONLY, MASTERDOWN),
# memory full (OOM: the relay holds its batch until there is room).
_TRANSIENT_REPLIES = (
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
    "OOM",
    "BUSY ",
)


class RelayError(RuntimeError):
    """The relay cannot go on (Redis refused a command for good, a FIFO broke...)."""


class RelayConfigError(ValueError):
    """A bad URL, option or combination of endpoints; nothing was started."""


# One EVALSHA adds a whole batch, atomically.  ARGV: the number k of XADD options (MAXLEN
# ~ N), those options, the field, then the messages.  Values are never part of the source.
_XADD_SCRIPT = """
local k = tonumber(ARGV[1])
local args = {KEYS[1]}
for i = 2, k + 1 do args[#args + 1] = ARGV[i] end
args[#args + 1] = '*'
args[#args + 1] = ARGV[k + 2]
local last = #args + 1
for i = k + 3, #ARGV do
  args[last] = ARGV[i]
  redis.call('XADD', unpack(args))
end
return #ARGV - k - 2
"""


# ------------------------------------------------------------------ endpoints


@dataclass(frozen=True)
class RedisStream:
    """A parsed ``redis://`` or ``rediss://`` URL naming a stream.  Never shows the password."""

    scheme: str
    host: str
    port: int
    db: int
    stream: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_ca_certs: str | None = None

    @property
    def url(self) -> str:
        """The URL with the password replaced by ``***`` (safe to print)."""
        auth = ""
        if self.username or self.password:
            user = urllib.parse.quote(self.username or "", safe="")
            auth = f"{user}:***@" if self.password else f"{user}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = urllib.parse.urlencode({"stream": self.stream})
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}?{query}"

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RedisStream({self.url!r})"


def is_redis_url(text: str) -> bool:
    """True for ``redis://...`` and ``rediss://...`` (any other ``scheme://`` is refused)."""
    return text.lower().startswith(("redis://", "rediss://"))


def _redacted(text: str) -> str:
    """A URL as typed, with whatever may hold a password replaced by ``***``.

    Everything between ``://`` and the last ``@`` is user information (a password may
    itself hold ``@``, ``/`` or ``#`` when not percent-encoded); only a user name before a
    ``:`` is kept.
    """
    start = text.find("://")
    start = 0 if start < 0 else start + 3
    at = text.rfind("@")
    if at < start:
        return text
    info = text[start:at]
    user, colon, _ = info.partition(":")
    shown = f"{user}:***" if colon and not set(user) & set("/?#") else "***"
    return text[:start] + shown + text[at:]


def parse_redis_url(text: str, *, password_env: str | None = DEFAULT_PASSWORD_ENV) -> RedisStream:
    """Parse ``redis://[user:pass@]host:port/db?stream=NAME`` (``rediss://`` for TLS).

    The port defaults to 6379 and the database to 0.  The password comes from the URL
    (percent-encoded) or, when the URL has none, from the environment variable
    ``password_env``.  Query options: ``stream`` (required) and ``ssl_ca_certs``
    (``rediss://`` only: a CA bundle to verify the server with).

    Raises RelayConfigError naming what is wrong; its message never holds the password.
    """
    shown = _redacted(text)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError:
        # urllib's own message may quote part of the netloc, so it is not repeated.
        raise RelayConfigError(
            f"{shown}: not a valid Redis URL: the host or port cannot be read (give "
            "HOST:PORT with a PORT from 0 to 65535; in a password, write / @ : # ? as "
            "%2F %40 %3A %23 %3F)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise RelayConfigError(
            f"{shown}: unsupported URL scheme {parts.scheme!r}; give a FIFO path or a "
            "redis:// (or rediss:// for TLS) URL"
        )
    if not host:
        raise RelayConfigError(f"{shown}: no host in the URL (redis://HOST:PORT/DB?stream=NAME)")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise RelayConfigError(
            f"{shown}: the path must be a database number (/0, /1...), not {parts.path!r}"
        )
    if parts.fragment:
        raise RelayConfigError(f"{shown}: a Redis URL has no #fragment")
    try:
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError as e:
        raise RelayConfigError(f"{shown}: bad query string ({e})") from None
    unknown = sorted(set(query) - set(_URL_OPTIONS))
    if unknown:
        raise RelayConfigError(
            f"{shown}: unknown stream option {unknown[0]!r} in the URL; the options are "
            + ", ".join(f"{o}=" for o in _URL_OPTIONS)
        )
    for name, values in query.items():
        if len(values) != 1:
            raise RelayConfigError(f"{shown}: the option {name}= is given {len(values)} times")
    stream = query.get("stream", [""])[0]
    if not stream:
        raise RelayConfigError(
            f"{shown}: no stream named; add ?stream=NAME to the URL (e.g. {shown.split('?')[0]}"
            "?stream=jobs)"
        )
    ca = query.get("ssl_ca_certs", [None])[0]
    if ca is not None and scheme != "rediss":
        raise RelayConfigError(f"{shown}: ssl_ca_certs= applies to rediss:// (TLS) URLs only")
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if password is None and password_env:
        password = os.environ.get(password_env) or None
    return RedisStream(
        scheme=scheme,
        host=host,
        port=6379 if port is None else port,
        db=int(path) if path else 0,
        stream=stream,
        username=username,
        password=password,
        ssl_ca_certs=ca,
    )


# ------------------------------------------------------------------ statistics


@dataclass
class RelayStats:
    """What a relay did.  ``messages`` crossed; the other counters say how.

    FIFO -> stream: ``resent`` messages were added again after Redis's reply to their
    batch was lost (at most that many duplicates); ``unguarded`` messages could not be
    peeked (see docs/relay.md) and were taken from the FIFO before Redis had them.

    Stream -> FIFO: ``redelivered`` entries were written again from this consumer's
    pending list (written before a crash or a lost XACK: at most that many duplicates);
    ``claimed`` were taken over from idle consumers; ``skipped`` entries had no message
    to write (deleted or trimmed, no ``field``, or not writable in lines framing): they
    were acknowledged, logged with their IDs, and stay in the stream.

    ``lost`` counts unguarded messages the relay was holding when it stopped (or failed)
    before Redis had them; it stays 0 where the FIFO is peeked (Linux).
    """

    source: str
    dest: str
    messages: int = 0
    bytes: int = 0
    batches: int = 0
    resent: int = 0
    unguarded: int = 0
    redelivered: int = 0
    claimed: int = 0
    skipped: int = 0
    retries: int = 0
    outages: int = 0
    outage_seconds: float = 0.0
    fifo_errors: int = 0
    lost: int = 0
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        """One progress line (what ``fastfifo relay --stats`` prints)."""
        t = max(self.elapsed, 1e-9)
        text = (
            f"{self.source} -> {self.dest}: {self.messages} messages "
            f"({self.messages / t:.0f}/s), {self.batches} batches"
        )
        extra = [
            (self.resent, "resent"),
            (self.unguarded, "unguarded"),
            (self.redelivered, "redelivered"),
            (self.claimed, "claimed"),
            (self.skipped, "skipped"),
            (self.fifo_errors, "FIFO errors"),
            (self.lost, "LOST"),
        ]
        text += "".join(f", {n} {name}" for n, name in extra if n)
        if self.retries:
            text += f", {self.retries} retries ({self.outage_seconds:.1f} s without Redis)"
        return text


# ------------------------------------------------------------------ option checks


def _seconds(name: str, value: float | None, *, allow_zero: bool, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise RelayConfigError(f"{name} must be a number of seconds, not None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RelayConfigError(f"{name} must be a number of seconds, not {value!r}")
    v = float(value)
    if math.isnan(v):
        raise RelayConfigError(f"{name} must be a number of seconds, not NaN")
    if v < 0 or (v == 0 and not allow_zero):
        raise RelayConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    return v


def _count(name: str, value: int | None, *, lo: int, hi: int, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RelayConfigError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise RelayConfigError(f"{name} must be from {lo} to {hi}, not {value}")
    return value


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _Stopped(Exception):
    """stop() was called while the relay waited; unwind without losing anything."""


# ------------------------------------------------------------------ the relay


class Relay:
    """A relay between a FIFO and a Redis Stream (one direction, one process or thread).

    Parameters
    ----------
    source, dest : str or os.PathLike
        One is a FIFO path, the other a ``redis://`` or ``rediss://`` URL (see
        :func:`parse_redis_url`).  The direction follows: FIFO -> stream or stream -> FIFO.
    batch : int
        Messages per batch (1 to 100000).  FIFO -> stream: at most this many are peeked
        and added in one transaction.  Stream -> FIFO: XREADGROUP COUNT.
    group, consumer : str
        The consumer group (created at ``group_start`` with MKSTREAM if missing) and this
        relay's consumer name in it.  The default consumer name is ``HOST:FIFO-PATH``, the
        same across restarts, so a restarted relay finds its own pending entries; give
        every relay of a group on one host its own name.  (Stream -> FIFO only.)
    group_start : str
        Where a group created by the relay starts: ``"0"`` (default: every entry in the
        stream) or ``"$"`` (only entries added from now on).
    maxlen : int or None
        FIFO -> stream: cap the stream at about this many entries (``XADD MAXLEN ~``;
        ``maxlen_exact=True`` for ``MAXLEN =``).  Trimming ignores consumer groups: an
        entry trimmed before a consumer read it is lost, so size it generously.
    framing : {"frames", "lines"}
        The FIFO's framing.
    block : float
        Seconds one wait for messages lasts (the FIFO peek, ``XREADGROUP BLOCK``); stop()
        is noticed within it.  Above 60 counts as 60.
    claim_idle : float or None
        Stream -> FIFO: take over (XAUTOCLAIM) entries another consumer of the group has
        held unacknowledged for this many seconds; None (or inf) never does.
    field : str
        The stream entry field that carries the message.
    with_id : bool
        Stream -> FIFO: write each message as ``b"<entry ID> " + message``, so consumers
        can drop duplicates by ID.
    password_env : str or None
        Environment variable read for the password when the URL has none.
    connect_timeout : float or None
        Seconds to keep trying to reach Redis at start before raising ConnectionError;
        None waits for ever.  Once it has connected, the relay waits out any outage.
    strict_permissions, create : bool
        As for ``fastfifo.Reader``/``Writer``.
    on_stats : callable or None
        Called with the :class:`RelayStats` about every ``stats_interval`` seconds.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        dest: str | os.PathLike[str],
        *,
        batch: int = DEFAULT_BATCH,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        group_start: str = "0",
        maxlen: int | None = None,
        maxlen_exact: bool = False,
        framing: Framing = "frames",
        block: float = DEFAULT_BLOCK,
        claim_idle: float | None = DEFAULT_CLAIM_IDLE,
        field: str = DEFAULT_FIELD,
        with_id: bool = False,
        password_env: str | None = DEFAULT_PASSWORD_ENV,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        strict_permissions: bool = True,
        create: bool = False,
        on_stats: Callable[[RelayStats], None] | None = None,
        stats_interval: float = 1.0,
    ) -> None:
        src, dst = os.fspath(source), os.fspath(dest)
        for text in (src, dst):
            if not isinstance(text, str) or not text:
                raise RelayConfigError(f"SOURCE and DEST must be non-empty strings, not {text!r}")
            if _SCHEME.match(text) and not is_redis_url(text):
                parse_redis_url(text)  # raises: unsupported scheme
        if is_redis_url(src) == is_redis_url(dst):
            raise RelayConfigError(
                "one of SOURCE and DEST must be a FIFO path and the other a redis:// URL "
                f"(got {_redacted(src)!r} and {_redacted(dst)!r})"
            )
        self.to_redis = is_redis_url(dst)
        self.redis = parse_redis_url(dst if self.to_redis else src, password_env=password_env)
        self.fifo = src if self.to_redis else dst
        if framing not in ("frames", "lines"):
            raise RelayConfigError(f"framing must be 'frames' or 'lines', not {framing!r}")
        self.framing: Framing = framing
        self.batch = _count("batch", batch, lo=1, hi=100_000, allow_none=False) or 1
        self.maxlen = _count("maxlen", maxlen, lo=1, hi=2**63 - 1, allow_none=True)
        self.maxlen_exact = bool(maxlen_exact)
        block_s = _seconds("block", block, allow_zero=False, allow_none=False) or DEFAULT_BLOCK
        self.block = min(block_s, MAX_BLOCK)
        idle = _seconds("claim_idle", claim_idle, allow_zero=False, allow_none=True)
        self.claim_idle = None if idle is None or math.isinf(idle) else idle
        ct = _seconds("connect_timeout", connect_timeout, allow_zero=True, allow_none=True)
        self.connect_timeout = None if ct is None or math.isinf(ct) else ct
        interval = _seconds("stats_interval", stats_interval, allow_zero=False, allow_none=False)
        self.stats_interval = interval or 1.0
        for name, value in (("group", group), ("field", field)):
            if not isinstance(value, str) or not value:
                raise RelayConfigError(f"{name} must be a non-empty string, not {value!r}")
        if group_start not in ("0", "$") and not re.fullmatch(r"\d+(-\d+)?", str(group_start)):
            raise RelayConfigError(
                f"group_start must be '0', '$' or a stream entry ID, not {group_start!r}"
            )
        self.group, self.field, self.group_start = group, field, group_start
        if consumer is None:
            consumer = f"{socket.gethostname()}:{os.path.abspath(self.fifo)}"
        if not isinstance(consumer, str) or not consumer:
            raise RelayConfigError(f"consumer must be a non-empty string, not {consumer!r}")
        self.consumer = consumer
        self.with_id = bool(with_id)
        self.strict_permissions = strict_permissions
        self.create = create
        self.on_stats = on_stats
        src_shown = self.fifo if self.to_redis else self.redis.url
        dst_shown = self.redis.url if self.to_redis else self.fifo
        self.stats = RelayStats(source=src_shown, dest=dst_shown)
        self._stop = threading.Event()
        self._backoff = Backoff(0.02, 1.0)
        self._outage_since: float | None = None
        self._next_report = 0.0
        self._large_writer: Any = None  # a Writer in a put() of a large message (stop wakes it)

    def __repr__(self) -> str:
        return f"<fastfifo.relay.Relay {self.stats.source} -> {self.stats.dest}>"

    # -------------------------------------------------------------- control

    def stop(self) -> None:
        """Ask run() to return (a Relay runs once); safe from any thread or a signal handler.

        run() returns within about ``block`` seconds, having lost nothing: a peeked batch
        stays in the FIFO, unwritten entries stay pending in the stream.
        """
        self._stop.set()
        w = self._large_writer
        if w is not None:
            w.close()  # wakes a put() of a large message (the entry stays pending)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> RelayStats:
        """Relay until stop() (or an exception: Ctrl-C, a fatal error); return the stats.

        Raises
        ------
        RelayConfigError
            The server lacks something needed (streams, XAUTOCLAIM).
        PermissionError
            Redis refused the credentials (or the FIFO's permissions).
        ConnectionError
            Redis could not be reached within ``connect_timeout`` at start.
        FileNotFoundError, fastfifo.NotAFifoError
            As for ``fastfifo.Reader``/``Writer``.
        RelayError
            Redis refused a command for good (the key is not a stream, say).
        """
        self.stats.started = time.monotonic()
        self._next_report = self.stats.started + self.stats_interval
        client = None
        reader = None
        try:
            # The FIFO first: a missing path or a bad FIFO is reported before any waiting.
            if self.to_redis:
                reader = fastfifo.Reader(
                    self.fifo,
                    framing=self.framing,
                    shared=True,
                    strict_permissions=self.strict_permissions,
                    create=self.create,
                )
            else:
                self._check_fifo()
            client = self._connect()
            if reader is not None:
                self._run_to_redis(client, reader)
            else:
                self._run_to_fifo(client)
        except _Stopped:
            pass
        finally:
            if reader is not None:
                reader.close()
            if client is not None:
                client.close()
        return self.stats

    # -------------------------------------------------------------- Redis plumbing

    def _connect(self) -> _Client:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ImportError(
                "fastfifo relay needs redis-py: pip install 'fastfifo[redis]'"
            ) from None
        r = self.redis
        kwargs: dict[str, Any] = {
            "host": r.host,
            "port": r.port,
            "db": r.db,
            "username": r.username,
            "password": r.password,
            "socket_timeout": self.block + 10.0,
            "socket_connect_timeout": min(self.connect_timeout or 5.0, 5.0) or 0.5,
            "socket_keepalive": True,
            # Every retry is the relay's own: it must know what it re-sent, and count it.
            "retry": Retry(NoBackoff(), 0),
            "client_name": "fastfifo-relay",
        }
        if r.scheme == "rediss":
            kwargs["ssl"] = True
            if r.ssl_ca_certs:
                kwargs["ssl_ca_certs"] = r.ssl_ca_certs
        client = redis.Redis(**kwargs)
        deadline = None if self.connect_timeout is None else time.monotonic() + self.connect_timeout
        backoff = Backoff(0.05, 1.0)
        while True:
            try:
                client.ping()  # reachable, and the credentials are accepted
                break
            except Exception as e:
                kind = self._classify(e)
                if kind == "auth":
                    client.close()
                    raise self._auth_error(e) from None
                if kind != "transient":
                    client.close()
                    raise RelayError(f"{r.url}: Redis refused PING: {_short(e)}") from None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    client.close()
                    raise ConnectionError(
                        errno.ECONNREFUSED,
                        f"cannot reach Redis at {r.host}:{r.port} ({_short(e)}); is the server "
                        f"running and the address right? (tried for {self.connect_timeout:g} s)",
                        r.url,
                    ) from None
                if self._stop.wait(backoff.next(left)):
                    client.close()
                    raise _Stopped() from None
        try:
            version = str(client.info("server").get("redis_version", ""))
        except Exception:  # INFO may be refused by an ACL: then trust the server
            version = ""
        nums = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
        if nums and nums < (5, 0):
            client.close()
            raise RelayConfigError(f"{r.url}: Redis {version} has no streams (5.0 or later needed)")
        if nums and not self.to_redis and self.claim_idle is not None and nums < (6, 2):
            client.close()
            raise RelayConfigError(
                f"{r.url}: Redis {version} has no XAUTOCLAIM (6.2 or later); pass "
                "claim_idle=None (--claim-idle inf) to run without taking over idle entries"
            )
        return client

    def _auth_error(self, exc: BaseException) -> PermissionError:
        r = self.redis
        who = f"user {r.username!r}" if r.username else "the default user"
        how = "no password was given" if r.password is None else "the password was refused"
        return PermissionError(
            errno.EACCES,
            f"Redis at {r.host}:{r.port} refused to authenticate {who}: {how} "
            f"({_short(exc)}); put the password in the URL or in ${DEFAULT_PASSWORD_ENV} "
            "(or the variable named by --password-env)",
            r.url,
        )

    @staticmethod
    def _classify(exc: BaseException) -> str:
        """'auth', 'transient', 'nogroup' or 'fatal' for an exception from redis-py."""
        import redis.exceptions as rex

        auth = (
            rex.AuthenticationError,
            rex.AuthenticationWrongNumberOfArgsError,
            rex.NoPermissionError,
        )
        if isinstance(exc, auth):
            return "auth"
        if isinstance(exc, rex.ResponseError):
            text = str(exc)
            if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                return "auth"
            if text.startswith("NOGROUP") or "NOGROUP" in text[:200]:
                return "nogroup"
            if text.startswith(_TRANSIENT_REPLIES) or "OOM command not allowed" in text:
                return "transient"  # (in a script, OOM comes wrapped in its error)
            return "fatal"
        if isinstance(exc, (rex.ConnectionError, rex.TimeoutError)):
            return "transient"
        return "fatal"

    def _failed(self, client: _Client, exc: Exception, doing: str, holding: int) -> None:
        """A Redis call failed: raise if it is for good; else log, count and back off.

        Raises _Stopped if stop() is called while backing off.
        """
        kind = self._classify(exc)
        if kind == "auth":
            raise self._auth_error(exc) from None
        if kind == "fatal":
            raise RelayError(
                f"{self.redis.url}: Redis refused {doing}: {_short(exc)}; stopping "
                f"({holding} messages not relayed are kept: "
                + ("they stay in the FIFO)" if self.to_redis else "they stay pending)")
            ) from None
        if kind == "nogroup":
            raise exc
        now = time.monotonic()
        self.stats.retries += 1
        if self._outage_since is None:
            self._outage_since = now
            self.stats.outages += 1
            log.warning(
                "%s: Redis unavailable while %s (%s); retrying with back-off, holding %d messages",
                self.redis.url,
                doing,
                _short(exc),
                holding,
            )
        try:
            client.connection_pool.disconnect()
        except Exception:
            pass
        self._report()
        if self._stop.wait(self._backoff.next()):
            raise _Stopped()

    def _recovered(self) -> None:
        if self._outage_since is not None:
            took = time.monotonic() - self._outage_since
            self.stats.outage_seconds += took
            self._outage_since = None
            log.warning("%s: Redis is back after %.2f s", self.redis.url, took)
        self._backoff.reset()

    def _report(self) -> None:
        if self.on_stats is not None and time.monotonic() >= self._next_report:
            self._next_report = time.monotonic() + self.stats_interval
            self.on_stats(self.stats)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped()

    # -------------------------------------------------------------- FIFO -> stream

    def _run_to_redis(self, client: _Client, reader: Any) -> None:
        peek = bool(reader._core.HAVE_TEE) and not _endpoints._FORCE_EXACT_CLAIMS
        if not peek:
            log.warning(
                "%s: this system has no tee(): each batch is taken from the FIFO before Redis "
                "has it, and a relay killed in between loses it (see docs/relay.md)",
                self.fifo,
            )
        head: tuple[str, ...] = ("XADD", self.redis.stream)
        if self.maxlen is not None:
            head += ("MAXLEN", "=" if self.maxlen_exact else "~", str(self.maxlen))
        head += ("*", self.field)
        while True:
            self._report()
            self._check_stop()
            try:
                if peek:
                    msgs = reader._peek_many(self.batch, timeout=self.block)
                else:
                    msgs = reader.get_many(self.batch, timeout=self.block)
            except fastfifo.Empty:
                continue
            except (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError) as e:
                self.stats.fifo_errors += 1
                log.warning("%s", _short(e))
                continue
            guarded = peek and reader._peek_held > 0
            if not guarded:
                self.stats.unguarded += len(msgs)
            try:
                self._add(client, head, msgs)
            except BaseException:
                if guarded:
                    reader._abandon()  # nothing consumed: the batch stays first in line
                else:
                    self.stats.lost += len(msgs)
                    log.error(
                        "%s: %d messages taken from the FIFO were not added to the "
                        "stream and are lost",
                        self.fifo,
                        len(msgs),
                    )
                raise
            if guarded:
                reader._commit()
            self.stats.messages += len(msgs)
            self.stats.batches += 1
            self.stats.bytes += sum(map(len, msgs))

    def _add(self, client: _Client, head: tuple[str, ...], msgs: list[bytes]) -> None:
        """XADD every message atomically, waiting out outages (_Stopped on stop()).

        One EVALSHA of a script that XADDs each message (one command to encode instead of
        one per message: redis-py's encoding is most of a relay's cost), or, where the
        server refuses scripts, one MULTI/EXEC.  Either is all or nothing.
        """
        from redis.exceptions import NoScriptError

        uncertain = False
        while True:
            pipe = None
            sending = False
            try:
                if self._script is None and not self._said_no_script:
                    self._load_script(client)
                if uncertain:
                    client.ping()  # the connection is up before the batch goes again
                    uncertain = False
                    self.stats.resent += len(msgs)
                sending = True
                if self._script is not None:
                    opts = head[2:-2]  # MAXLEN ~ N, if any
                    client.execute_command(
                        "EVALSHA", self._script, 1, head[1], len(opts), *opts, head[-1], *msgs
                    )
                else:
                    pipe = client.pipeline(transaction=True)
                    for m in msgs:
                        pipe.execute_command(*head, m)
                    pipe.execute()
                self._recovered()
                return
            except NoScriptError:  # Redis restarted since SCRIPT LOAD: nothing ran
                self._script = None
            except Exception as e:
                # A failure to connect sent nothing; any other may have come after Redis
                # took the batch: sending it again may duplicate it (counted in resent).
                transient = self._classify(e) == "transient"
                if sending and transient and "connecting to" not in str(e):
                    uncertain = True
                self._failed(client, e, "adding a batch to the stream", len(msgs))
            finally:
                if pipe is not None:
                    pipe.reset()

    def _load_script(self, client: _Client) -> None:
        """SCRIPT LOAD the batch script; where scripts are refused, MULTI/EXEC is used."""
        try:
            self._script = _text(client.script_load(_XADD_SCRIPT))
        except Exception as e:
            if self._classify(e) == "transient":
                raise
            if not self._said_no_script:
                self._said_no_script = True
                log.info(
                    "%s: scripts refused (%s); adding batches with MULTI/EXEC",
                    self.redis.url,
                    _short(e),
                )

    _script: str | None = None
    _said_no_script = False

    # -------------------------------------------------------------- stream -> FIFO

    def _run_to_fifo(self, client: _Client) -> None:
        self._make_group(client)
        writer = self._open_writer(None)
        pending = True  # first, this consumer's own pending entries (written before a crash?)
        next_claim = time.monotonic() if self.claim_idle is not None else math.inf
        cursor = "0-0"
        stream = self.redis.stream
        try:
            while True:
                self._report()
                self._check_stop()
                try:
                    if pending:
                        reply = client.xreadgroup(
                            self.group, self.consumer, {stream: "0"}, count=self.batch
                        )
                        entries = reply[0][1] if reply else []
                        self._recovered()
                        if not entries:
                            pending = False
                            continue
                        self.stats.redelivered += len(entries)
                    elif time.monotonic() >= next_claim:
                        got = client.xautoclaim(
                            stream,
                            self.group,
                            self.consumer,
                            int((self.claim_idle or 0) * 1000),
                            cursor,
                            count=self.batch,
                        )
                        self._recovered()
                        cursor = _text(got[0])
                        entries = got[1]
                        if cursor == "0-0":
                            next_claim = time.monotonic() + max((self.claim_idle or 0) / 2, 0.05)
                        self.stats.claimed += len(entries)
                    else:
                        reply = client.xreadgroup(
                            self.group,
                            self.consumer,
                            {stream: ">"},
                            count=self.batch,
                            block=max(1, int(self.block * 1000)),
                        )
                        self._recovered()
                        entries = reply[0][1] if reply else []
                except Exception as e:
                    if self._classify(e) == "nogroup":
                        log.warning(
                            "%s: the consumer group %r is gone (Redis restarted without "
                            "persistence?); creating it again",
                            self.redis.url,
                            self.group,
                        )
                        self._make_group(client)
                    else:
                        self._failed(client, e, "reading from the stream", 0)
                    pending = True  # a reply lost on the way left entries pending for us
                    continue
                if entries:
                    writer = self._deliver(client, writer, entries)
        finally:
            writer.close()

    def _check_fifo(self) -> None:
        """Stream -> FIFO: that a FIFO fastfifo accepts is there (open for writing, closed
        again at once; no reader yet is fine)."""
        if self.create:
            fastfifo.mkfifo(self.fifo)
        try:
            fd = _open.open_fifo(self.fifo, os.O_WRONLY, strict_permissions=self.strict_permissions)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        else:
            os.close(fd)

    def _make_group(self, client: _Client) -> None:
        while True:
            self._check_stop()
            try:
                client.xgroup_create(self.redis.stream, self.group, self.group_start, mkstream=True)
                log.info("%s: created the consumer group %r", self.redis.url, self.group)
            except Exception as e:
                if "BUSYGROUP" not in str(e):
                    self._failed(client, e, "creating the consumer group", 0)
                    continue
            self._recovered()
            return

    def _open_writer(self, old: Any) -> Any:
        """A Writer on the FIFO, waiting (stop() honoured) for a reader to open it.

        ``old`` (a Writer whose reader went away) stays open until the new one is, so what
        it wrote stays in the pipe for the next reader meanwhile.
        """
        said = False
        try:
            while True:
                self._check_stop()
                try:
                    return fastfifo.Writer(
                        self.fifo,
                        framing=self.framing,
                        open_timeout=min(self.block, 0.25),
                        strict_permissions=self.strict_permissions,
                        create=self.create,
                    )
                except TimeoutError:
                    if not said:
                        said = True
                        log.info("%s: waiting for a reader to open the FIFO", self.fifo)
                    self._report()
        finally:
            if old is not None:
                old.close()

    def _deliver(self, client: _Client, writer: Any, entries: list[Any]) -> Any:
        """Write the entries' messages into the FIFO, then XACK them; return the Writer."""
        fieldb = self.field.encode()
        acks: list[Any] = []  # skipped entries, then written ones
        msgs: list[bytes] = []
        ids: list[Any] = []
        for eid, fields in entries:
            if eid is None:  # an entry deleted while pending (Redis 6.2 XAUTOCLAIM): no ID
                continue
            value = fields.get(fieldb) if fields else None
            why = None
            if value is None:
                why = (
                    f"it has no field {self.field!r}"
                    if fields
                    else "it was deleted or trimmed from the stream"
                )
            elif self.with_id:
                value = (eid if isinstance(eid, bytes) else str(eid).encode()) + b" " + value
            if (
                value is not None
                and self.framing == "lines"
                and (b"\n" in value or len(value) >= fastfifo.PIPE_BUF)
            ):
                why = "lines framing cannot carry it (a newline, or PIPE_BUF bytes or more)"
            if why is not None or value is None:
                self.stats.skipped += 1
                log.warning(
                    "%s: entry %s skipped (acknowledged, still in the stream): %s",
                    self.redis.url,
                    _text(eid),
                    why,
                )
                acks.append(eid)
                continue
            msgs.append(bytes(value))
            ids.append(eid)
        done = 0
        read_at = time.monotonic()
        try:
            for a, b in self._chunks(msgs):
                while a < b:
                    self._check_stop()
                    try:
                        if b - a == 1 and len(msgs[a]) > fastfifo.PIPE_BUF - 8:
                            self._large_writer = writer  # stop() closes it to wake the put
                            try:
                                writer.put(msgs[a])
                            finally:
                                self._large_writer = None
                            a += 1
                        else:
                            writer.put_many(msgs[a:b], timeout=self.block)
                            a = b
                    except fastfifo.Full as e:  # the pipe stayed full: backpressure
                        a += e.sent
                        read_at = self._keep_claimed(client, ids[a:], read_at)
                        self._report()
                    except BrokenPipeError:  # the reader went away: wait for the next one
                        log.info("%s: the reader went away; waiting for the next", self.fifo)
                        writer = self._open_writer(writer)
                    except fastfifo.ClosedError:
                        self._check_stop()
                        raise
                    finally:
                        done = a
        except BaseException:
            self._ack_once(client, acks + ids[:done])  # the rest stays pending
            raise
        finally:
            self.stats.messages += done
            self.stats.bytes += sum(len(m) for m in msgs[:done])
        self._ack(client, acks + ids)
        self.stats.batches += 1
        return writer

    def _chunks(self, msgs: list[bytes]) -> list[tuple[int, int]]:
        """Index ranges of msgs, each one atomic write (or one large message on its own).

        A write a vanished reader refused (EPIPE) wrote nothing, so after a new reader
        came the chunk is written again whole, and no message twice."""
        over = 8 if self.framing == "frames" else 1
        cap = fastfifo.PIPE_BUF
        out: list[tuple[int, int]] = []
        start, used = 0, 0
        for i, m in enumerate(msgs):
            size = len(m) + over
            if used and used + size > cap:
                out.append((start, i))
                start, used = i, 0
            used += size
            if size > cap:
                out.append((start, i + 1))
                start, used = i + 1, 0
        if start < len(msgs):
            out.append((start, len(msgs)))
        return out

    def _keep_claimed(self, client: _Client, ids: list[Any], since: float) -> float:
        """While the FIFO is full, reset the idle time of the entries not yet written, so
        that other relays of the group do not take them over (XCLAIM ... JUSTID)."""
        if self.claim_idle is None or not ids or time.monotonic() - since < self.claim_idle / 3:
            return since
        try:
            client.xclaim(self.redis.stream, self.group, self.consumer, 0, ids, justid=True)
        except Exception as e:
            log.info("%s: could not refresh pending entries (%s)", self.redis.url, _short(e))
        return time.monotonic()

    def _ack(self, client: _Client, ids: list[Any]) -> None:
        if not ids:
            return
        while True:
            try:
                client.xack(self.redis.stream, self.group, *ids)
                self._recovered()
                return
            except Exception as e:
                if self._classify(e) == "nogroup":
                    return  # the group is gone (Redis restarted empty): nothing to ack
                try:
                    self._failed(client, e, "acknowledging written entries", len(ids))
                except _Stopped:
                    log.warning(
                        "%s: stopped before %d written entries were acknowledged; this "
                        "consumer will write them again when it restarts (duplicates)",
                        self.redis.url,
                        len(ids),
                    )
                    raise

    def _ack_once(self, client: _Client, ids: list[Any]) -> None:
        """Acknowledge what was written before an interruption: one try, errors ignored."""
        if ids:
            try:
                client.xack(self.redis.stream, self.group, *ids)
            except Exception:
                pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def run(source: str | os.PathLike[str], dest: str | os.PathLike[str], **options: Any) -> RelayStats:
    """Relay from ``source`` to ``dest`` until stopped; see :class:`Relay` for the options.

    Blocks (Ctrl-C ends it, losing nothing); returns the final :class:`RelayStats`.
    To stop it from elsewhere, make a :class:`Relay` and call its ``stop()``.
    """
    return Relay(source, dest, **options).run()
