"""``fastfifo relay SOURCE DEST``: the relay's command line (``fastfifo.relay`` does the work)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

from .. import relay as _relay
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    FORMATTER,
    SEE_EXIT_STATUS,
    UsageError,
    describe,
    exit_status,
    say,
    wrap,
)

DESCRIPTION = (
    "Move messages between a FIFO and a Redis Stream, losing none. One of SOURCE and DEST is "
    "a FIFO path, the other a Redis URL: redis://[USER:PASSWORD@]HOST[:PORT][/DB]?stream=NAME "
    "(rediss:// for TLS). FIFO -> stream: a batch leaves the FIFO only once Redis has it. "
    "Stream -> FIFO: entries are acknowledged only once they are in the FIFO; on start the "
    "relay first writes the entries still pending for its consumer name. A relay killed at "
    "any instant loses nothing (FIFO -> stream: where tee() exists, Linux; see docs/relay.md); "
    "at most the batch in flight is relayed twice. Put the "
    "password in $FASTFIFO_REDIS_PASSWORD (or the variable --password-env names) rather "
    "than in the URL: it is never printed either way. Runs until Ctrl-C or SIGTERM."
)

EXAMPLES = """\
examples:
  fastfifo relay /run/app/jobs 'redis://10.0.0.5:6379/0?stream=jobs'     # host A
  fastfifo relay 'redis://10.0.0.5:6379/0?stream=jobs' /run/app/jobs \\
      --group workers --consumer host-b                                # host B
  FASTFIFO_REDIS_PASSWORD=secret fastfifo relay q 'rediss://redis.example:6380?stream=q'
  fastfifo relay q 'redis://localhost?stream=q' --maxlen 1000000 --stats
"""


def _seconds(text: str, *, inf_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if math.isnan(value) or value <= 0 or (math.isinf(value) and not inf_ok):
        what = "a number > 0 (or inf)" if inf_ok else "a finite number > 0"
        raise argparse.ArgumentTypeError(f"seconds must be {what}, not {text!r}")
    return value


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "relay",
        help="move messages between a FIFO and a Redis Stream (at least once; none lost on Linux)",
        formatter_class=FORMATTER,
        description=wrap(DESCRIPTION),
        epilog=EXAMPLES
        + "\nrelay exits 0 only when stopped by stop() in Python; from the shell it runs until\n"
        "Ctrl-C (130) or SIGTERM (143). Redis refusing the password is 6, Redis unreachable\n"
        "within --connect-timeout at start is 1, a bad URL or option is 2.\n\n" + SEE_EXIT_STATUS,
    )
    p.add_argument("source", metavar="SOURCE", help="a FIFO path or a redis:// URL")
    p.add_argument("dest", metavar="DEST", help="a redis:// URL or a FIFO path")
    p.add_argument(
        "--batch",
        type=_int_at_least(1),
        default=_relay.DEFAULT_BATCH,
        metavar="N",
        help=f"messages per batch: per XADD transaction, per XREADGROUP (default "
        f"{_relay.DEFAULT_BATCH}; at most 100000)",
    )
    p.add_argument(
        "--group",
        default=_relay.DEFAULT_GROUP,
        metavar="NAME",
        help=f"stream -> FIFO: the consumer group (default {_relay.DEFAULT_GROUP!r}; "
        "created if missing)",
    )
    p.add_argument(
        "--consumer",
        default=None,
        metavar="NAME",
        help="stream -> FIFO: this relay's consumer name (default HOST:FIFO; keep it the "
        "same across restarts, and different for every relay of the group)",
    )
    p.add_argument(
        "--group-start",
        default="0",
        metavar="ID",
        help="where a group the relay creates starts: 0 (default: the whole stream) or $ "
        "(new entries only)",
    )
    p.add_argument(
        "--maxlen",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="FIFO -> stream: keep about N entries (XADD MAXLEN ~ N); trimming ignores "
        "consumers, so entries not yet read can be trimmed",
    )
    p.add_argument("--maxlen-exact", action="store_true", help="MAXLEN = N instead of ~ N")
    p.add_argument(
        "--framing",
        choices=("frames", "lines"),
        default="frames",
        help="the FIFO's framing (default frames)",
    )
    p.add_argument(
        "--block",
        type=lambda t: _seconds(t, inf_ok=False),
        default=_relay.DEFAULT_BLOCK,
        metavar="S",
        help=f"seconds one wait for messages lasts (FIFO peek, XREADGROUP BLOCK; default "
        f"{_relay.DEFAULT_BLOCK:g}, at most {_relay.MAX_BLOCK:g})",
    )
    p.add_argument(
        "--claim-idle",
        type=lambda t: _seconds(t, inf_ok=True),
        default=_relay.DEFAULT_CLAIM_IDLE,
        metavar="S",
        help=f"stream -> FIFO: take over (XAUTOCLAIM) entries another consumer left "
        f"unacknowledged for S seconds (default {_relay.DEFAULT_CLAIM_IDLE:g}; inf: never)",
    )
    p.add_argument(
        "--field",
        default=_relay.DEFAULT_FIELD,
        metavar="NAME",
        help=f"the entry field holding the message (default {_relay.DEFAULT_FIELD!r})",
    )
    p.add_argument(
        "--with-id",
        action="store_true",
        help="stream -> FIFO: write each message as 'ENTRY-ID MESSAGE', to drop duplicates by ID",
    )
    p.add_argument(
        "--password-env",
        default=_relay.DEFAULT_PASSWORD_ENV,
        metavar="VAR",
        help=f"environment variable holding the password when the URL has none "
        f"(default {_relay.DEFAULT_PASSWORD_ENV})",
    )
    p.add_argument(
        "--connect-timeout",
        type=lambda t: _seconds(t, inf_ok=True),
        default=_relay.DEFAULT_CONNECT_TIMEOUT,
        metavar="S",
        help=f"give up (exit 1) if Redis cannot be reached within S seconds at start "
        f"(default {_relay.DEFAULT_CONNECT_TIMEOUT:g}; inf: wait for ever); later outages "
        "are always waited out",
    )
    p.add_argument(
        "--create", action="store_true", help="create the FIFO (mode 0600) if it does not exist"
    )
    p.add_argument(
        "--no-strict-permissions",
        dest="strict_permissions",
        action="store_false",
        help="accept a FIFO owned by another user or writable by group/others",
    )
    p.add_argument(
        "--stats",
        action="store_true",
        help="print a progress line on stderr every --stats-interval seconds, and at the end",
    )
    p.add_argument(
        "--stats-interval",
        type=lambda t: _seconds(t, inf_ok=False),
        default=1.0,
        metavar="S",
        help="seconds between --stats lines (default 1)",
    )
    p.set_defaults(func=run)


class _StderrHandler(logging.Handler):
    """Relay log records as one line each: ``fastfifo relay: warning: ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = {"INFO": "note", "WARNING": "warning"}.get(record.levelname, "error")
        text = " ".join(self.format(record).split())
        print(f"fastfifo relay: {kind}: {text}", file=sys.stderr, flush=True)


def _stats_line(stats: _relay.RelayStats) -> None:
    print(f"fastfifo relay: {stats.line()}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run ``fastfifo relay``; errors are reported here, Ctrl-C/SIGTERM propagate."""
    handler = _StderrHandler()
    logger = logging.getLogger("fastfifo.relay")
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    relay: _relay.Relay | None = None
    try:
        try:
            relay = _relay.Relay(
                args.source,
                args.dest,
                batch=args.batch,
                group=args.group,
                consumer=args.consumer,
                group_start=args.group_start,
                maxlen=args.maxlen,
                maxlen_exact=args.maxlen_exact,
                framing=args.framing,
                block=args.block,
                claim_idle=args.claim_idle,
                field=args.field,
                with_id=args.with_id,
                password_env=args.password_env,
                connect_timeout=args.connect_timeout,
                strict_permissions=args.strict_permissions,
                create=args.create,
                on_stats=_stats_line if args.stats else None,
                stats_interval=args.stats_interval,
            )
        except _relay.RelayConfigError as e:
            raise UsageError(str(e)) from None
        relay.run()
        return EXIT_OK
    except _relay.RelayConfigError as e:
        say("relay", "error", str(e))
        return EXIT_USAGE
    except (OSError, ValueError, ImportError, _relay.RelayError) as e:
        say("relay", "error", describe(e))
        return exit_status(e)
    finally:
        if relay is not None and args.stats:
            _stats_line(relay.stats)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
