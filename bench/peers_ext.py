"""Third-party peers: faster-fifo, pyzmq PUSH/PULL over ``ipc://``, posix_ipc.

Each is given its best case for raw bytes: faster-fifo gets pass-through
``dumps``/``loads`` (no pickling), pyzmq copies small frames as its docs advise,
posix_ipc gets the largest queue the kernel allows this user.  A peer that is not
installed reports "not installed" and the run goes on.
"""

from __future__ import annotations

import functools
import itertools
import os
import queue
from typing import Any

from .peer import IDLE, Peer, missing, now, ping_loop, receive_until_done

FOREVER = 3600.0  # faster-fifo's blocking calls take a float timeout (default 10 s), not None
_names = itertools.count()


def _as_is(payload: bytes) -> bytes:
    return payload


class FasterFifo(Peer):
    key = "faster-fifo"
    name = "faster-fifo"
    batched = True

    def label(self, row: Any) -> str:
        return "faster-fifo " + ("put_many/get_many" if row.batched else "put/get")

    def unavailable(self) -> str | None:
        return missing("faster_fifo")

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        from faster_fifo import Queue

        # A 1 MiB ring, like the 1 MiB pipe fastfifo asks for.
        def make() -> Any:
            return Queue(max_size_bytes=1 << 20, loads=bytes, dumps=_as_is)

        return (make(), make()) if row.kind == "pingpong" else make()

    def send(self, channel, row, wid, items, sync):
        sync.ready()
        if row.batched:
            put_many = channel.put_many
            for batch in items:
                put_many(batch, True, FOREVER)
        else:
            put = channel.put
            for payload in items:
                put(payload, True, FOREVER)

    def receive(self, channel, row, rid, count, sync):
        start = sync.ready()
        out: list = []
        if count is not None:
            if row.batched:
                get_many, extend, got = channel.get_many, out.extend, 0
                while got < count:
                    batch = get_many(True, FOREVER, 1000)
                    extend(batch)
                    got += len(batch)
            else:
                get, append = channel.get, out.append
                for _ in range(count):
                    append(get(True, FOREVER))
            return out, start, now()
        if row.batched:
            take, add = functools.partial(channel.get_many, True, IDLE, 1000), out.extend
        else:
            take, add = functools.partial(channel.get, True, IDLE), out.append
        return out, start, receive_until_done(take, add, queue.Empty, sync, start, out.__len__)

    def echo(self, channel, row, count, sync):
        req, resp = channel
        sync.ready()
        for _ in range(count):
            resp.put(req.get(True, FOREVER), True, FOREVER)

    def ping(self, channel, row, payloads, sync):
        req, resp = channel
        sync.ready()
        return ping_loop(
            lambda m: req.put(m, True, FOREVER), lambda: resp.get(True, FOREVER), payloads
        )


class Zmq(Peer):
    """PUSH/PULL over ``ipc://``: each reader binds a PULL, each writer connects to all."""

    key = "pyzmq"
    name = "pyzmq PUSH/PULL ipc://"

    def unavailable(self) -> str | None:
        return missing("zmq")

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        # Endpoints only: a zmq Context must be made after the fork, in each worker.
        if row.kind == "pingpong":
            return (f"ipc://{tmpdir}/zreq", f"ipc://{tmpdir}/zresp")
        return [f"ipc://{tmpdir}/z{i}" for i in range(row.readers)]

    def send(self, channel, row, wid, items, sync):
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUSH)
        for endpoint in channel:
            sock.connect(endpoint)
        sync.ready()
        send = sock.send
        for payload in items:
            send(payload)
        # Stay connected until the readers have everything: a PUSH process that closes
        # right after its last send (even with LINGER -1 and Context.term) lost the
        # last few hundred messages in about 1 run in 8 here (libzmq drops what the
        # PULL side has not read yet when the peer disconnects).
        sync.sent()
        sync.finished.wait(600)
        sock.close(linger=-1)
        ctx.term()

    def receive(self, channel, row, rid, count, sync):
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.PULL)
        sock.bind(channel[rid])
        start = sync.ready()
        out: list = []
        try:
            if count is not None:
                recv, append = sock.recv, out.append
                for _ in range(count):
                    append(recv())
                return out, start, now()
            sock.rcvtimeo = int(IDLE * 1000)
            return (
                out,
                start,
                receive_until_done(sock.recv, out.append, zmq.Again, sync, start, out.__len__),
            )
        finally:
            sock.close(linger=0)
            ctx.term()

    def _pair(self, bind: str, connect: str) -> tuple[Any, Any, Any]:
        import zmq

        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.bind(bind)
        push = ctx.socket(zmq.PUSH)
        push.connect(connect)
        return ctx, pull, push

    def echo(self, channel, row, count, sync):
        ctx, pull, push = self._pair(channel[0], channel[1])
        sync.ready()
        for _ in range(count):
            push.send(pull.recv())
        sync.finished.wait(600)  # see send(): the last echo must be read before we go
        push.close(linger=-1)
        pull.close(linger=0)
        ctx.term()

    def ping(self, channel, row, payloads, sync):
        ctx, pull, push = self._pair(channel[1], channel[0])
        sync.ready()
        try:
            return ping_loop(push.send, pull.recv, payloads)
        finally:
            push.close(linger=0)
            pull.close(linger=0)
            ctx.term()


class PosixMQ(Peer):
    """POSIX message queue (posix_ipc); the kernel keeps message boundaries."""

    key = "posix_ipc"
    name = "posix_ipc MessageQueue"

    def unavailable(self) -> str | None:
        return missing("posix_ipc")

    def unsupported(self, row: Any) -> str | None:
        reason = super().unsupported(row)
        if reason:
            return reason
        try:
            self.teardown(self.setup(row, "", None))
        except ValueError as exc:
            return f"n/a: {exc}"
        return None

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        return (
            (_make_mq(row.size), _make_mq(row.size))
            if row.kind == "pingpong"
            else _make_mq(row.size)
        )

    def note(self, channel: Any) -> str:
        mq = channel[0] if isinstance(channel, tuple) else channel
        return f"queue of {mq.max_messages} x {mq.max_message_size} B"

    def teardown(self, channel: Any) -> None:
        for mq in channel if isinstance(channel, tuple) else (channel,):
            try:
                mq.unlink()
            except Exception:
                pass
            mq.close()

    def send(self, channel, row, wid, items, sync):
        sync.ready()
        send = channel.send
        for payload in items:
            send(payload)

    def receive(self, channel, row, rid, count, sync):
        import posix_ipc

        start = sync.ready()
        out: list = []
        receive, append = channel.receive, out.append
        if count is not None:
            for _ in range(count):
                append(receive()[0])
            return out, start, now()
        # (message, priority) pairs: the priorities are dropped after the clock stops.
        got: list = []
        take = functools.partial(receive, IDLE)
        end = receive_until_done(take, got.append, posix_ipc.BusyError, sync, start, got.__len__)
        return [m for m, _ in got], start, end

    def echo(self, channel, row, count, sync):
        req, resp = channel
        sync.ready()
        receive, send = req.receive, resp.send
        for _ in range(count):
            send(receive()[0])

    def ping(self, channel, row, payloads, sync):
        req, resp = channel
        sync.ready()
        return ping_loop(req.send, lambda: resp.receive()[0], payloads)


def _make_mq(size: int) -> Any:
    """The deepest queue this user may create for ``size``-byte messages.

    Linux defaults to at most 10 messages of 8192 bytes (``/proc/sys/fs/mqueue``) and
    ``RLIMIT_MSGQUEUE`` (800 KiB) caps a user's queues in total; a privileged user may
    go beyond ``msg_max``/``msgsize_max``.  Tries deep queues first and settles for less.
    """
    import posix_ipc

    error = None
    for depth in (256, 64, 10):
        name = f"/ffbench-{os.getpid()}-{next(_names)}"
        try:
            return posix_ipc.MessageQueue(
                name, posix_ipc.O_CREX, max_messages=depth, max_message_size=size
            )
        except (ValueError, OSError, posix_ipc.Error) as exc:
            error = exc
    limit = ""
    try:
        with open("/proc/sys/fs/mqueue/msgsize_max") as f:
            limit = f", msgsize_max is {f.read().strip()} B"
    except OSError:
        pass
    raise ValueError(f"no POSIX message queue for {size}-byte messages here ({error}{limit})")
