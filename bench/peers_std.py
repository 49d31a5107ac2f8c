"""Standard-library peers: ``multiprocessing.Queue``, ``SimpleQueue`` and ``Pipe``.

They are created in the parent and inherited by the forked workers, as users use
them.  ``Queue`` and ``SimpleQueue`` pickle each payload; ``Pipe`` uses
``send_bytes``/``recv_bytes`` (no pickling), over ``os.pipe()`` for throughput
(``duplex=False``) and a socket pair for ping-pong (it needs both directions).
"""

from __future__ import annotations

import functools
import queue
from typing import Any

from .peer import IDLE, Peer, now, ping_loop, receive_until_done


class _MpQueues(Peer):
    """What ``Queue`` and ``SimpleQueue`` share: made by ``ctx.<factory>()``, ``put``/``get``."""

    factory = ""

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        make = getattr(ctx, self.factory)
        if row.kind == "pingpong":
            return (make(), make())
        return make()

    def send(self, channel, row, wid, items, sync):
        sync.ready()
        put = channel.put
        for payload in items:
            put(payload)
        # Queue: the feeder thread writes in the background; the process exit waits for it.

    def echo(self, channel, row, count, sync):
        req, resp = channel
        sync.ready()
        get, put = req.get, resp.put
        for _ in range(count):
            put(get())

    def ping(self, channel, row, payloads, sync):
        req, resp = channel
        sync.ready()
        return ping_loop(req.put, resp.get, payloads)


class MpQueue(_MpQueues):
    key = "mp.Queue"
    name = "multiprocessing.Queue"
    factory = "Queue"

    def receive(self, channel, row, rid, count, sync):
        start = sync.ready()
        out: list = []
        if count is not None:
            get, append = channel.get, out.append
            for _ in range(count):
                append(get())
            return out, start, now()
        take = functools.partial(channel.get, timeout=IDLE)
        return (
            out,
            start,
            receive_until_done(take, out.append, queue.Empty, sync, start, out.__len__),
        )


class MpSimpleQueue(_MpQueues):
    key = "mp.SimpleQueue"
    name = "multiprocessing.SimpleQueue"
    factory = "SimpleQueue"

    def after_writers(self, channel: Any, row: Any) -> None:
        # SimpleQueue.get has no timeout: one end marker per reader, behind all the data.
        for _ in range(row.readers):
            channel.put(None)

    def receive(self, channel, row, rid, count, sync):
        start = sync.ready()
        out: list = []
        get, append = channel.get, out.append
        if count is not None:
            for _ in range(count):
                append(get())
            return out, start, now()
        end = start
        while True:
            payload = get()
            if payload is None:
                return out, start, end
            append(payload)
            end = now()


class MpPipe(Peer):
    key = "mp.Pipe"
    name = "multiprocessing.Pipe"
    multi_writer = False  # "data may become corrupted" with two writers (Python docs)
    multi_reader = False

    def label(self, row: Any) -> str:
        return "multiprocessing.Pipe send_bytes/recv_bytes"

    def setup(self, row: Any, tmpdir: str, ctx: Any) -> Any:
        if row.kind == "pingpong":
            return ctx.Pipe(duplex=True)
        return ctx.Pipe(duplex=False)  # (receiving end, sending end)

    def send(self, channel, row, wid, items, sync):
        conn = channel[1]
        sync.ready()
        send = conn.send_bytes
        for payload in items:
            send(payload)

    def receive(self, channel, row, rid, count, sync):
        conn = channel[0]
        start = sync.ready()
        out: list = []
        recv, append = conn.recv_bytes, out.append
        for _ in range(count):
            append(recv())
        return out, start, now()

    def echo(self, channel, row, count, sync):
        conn = channel[1]
        sync.ready()
        recv, send = conn.recv_bytes, conn.send_bytes
        for _ in range(count):
            send(recv())

    def ping(self, channel, row, payloads, sync):
        conn = channel[0]
        sync.ready()
        return ping_loop(conn.send_bytes, conn.recv_bytes, payloads)
