"""Soak: 8 writers and 4 shared readers on one FIFO, with random SIGKILLs of both.

``run_soak`` is the whole experiment; ``scripts/soak.py`` runs it for 10 minutes (or any
duration) and the test below for 30 seconds.  It lives here so the suite can run it from
an installed wheel, where only ``tests/`` is copied.

Writers (each a fresh process with its own writer id, mixing ``put``, ``put_many`` and the
buffered Writer, small messages and large ones sent as fragments) log an *intent* record
before each send and a *commit* record once the call returned, unbuffered.  So for a
writer that was killed, the intents after its last commit are the messages it may or may
not have sent (a batch cut short, a large message cut mid-way); everything committed was
sent.  Readers (shared, compiled or pure core at random, taking 1-20 messages a call with
``get``, ``get_many`` or ``get_batch``) check each message's checksum and log its id,
unbuffered, after every claim: a killed reader loses at most the claim it held (up to 20
messages, plus one large message it was reassembling).

Verdict: no message received twice, none corrupt, none that was never sent; committed
messages not received are at most ``20 + 1`` per killed reader.
"""

from __future__ import annotations

import argparse
import array
import fcntl
import json
import multiprocessing
import os
import random
import signal
import struct
import sys
import tempfile
import termios
import time
import zlib
from typing import Any

from helpers import PURE_ONLY, KillSafeFlag, collect_losses

import fastfifo
from fastfifo import _core_py
from fastfifo._endpoints import classes_for

CTX = multiprocessing.get_context("fork")
MAX_BATCH = 20
_HEAD = struct.Struct("<IIQ")  # writer id, sequence number, crc32 of the body (in 8 bytes)
_REC = struct.Struct("<cQ")  # b"I" intent / b"C" commit (up to and including seq)


def _core(name: str) -> Any:
    if name == "cython":
        from fastfifo import _core

        return _core
    return _core_py


def _message(wid: int, seq: int, rng: random.Random) -> bytes:
    r = rng.random()
    size = (
        rng.randint(16, 300)
        if r < 0.8
        else rng.randint(301, 4088)
        if r < 0.97
        else (rng.randint(4089, 400_000))
    )
    body = rng.randbytes(size - _HEAD.size)
    return _HEAD.pack(wid, seq, zlib.crc32(body)) + body


def _check(msg: bytes) -> int | None:
    """The message's id (wid << 32 | seq), or None if it is torn or garbled."""
    if len(msg) < _HEAD.size:
        return None
    wid, seq, crc = _HEAD.unpack_from(msg)
    if zlib.crc32(msg[_HEAD.size :]) != crc:
        return None
    return wid << 32 | seq


def _writer(path: str, wid: int, log_path: str, stop: Any, backend: str, seed: int) -> None:
    rng = random.Random(seed)
    writer_cls, _ = classes_for(_core(backend))
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    mode = rng.choice(["put", "put_many", "buffered"])
    seq = 0

    def note(kind: bytes, s: int) -> None:
        os.write(log, _REC.pack(kind, s))

    with writer_cls(path, buffered=mode == "buffered") as w:
        while not stop.is_set():
            n = 1 if mode == "put" else rng.randint(1, MAX_BATCH)
            batch = [_message(wid, seq + i, rng) for i in range(n)]
            os.write(log, b"".join(_REC.pack(b"I", seq + i) for i in range(n)))
            if mode == "put":
                w.put(batch[0])
            elif mode == "put_many":
                w.put_many(batch)
            else:
                for m in batch:
                    w.put(m)
                w.flush()
            seq += n
            note(b"C", seq - 1)
    os.close(log)


def _reader(path: str, out_path: str, stats_path: str, done: Any, backend: str, seed: int) -> None:
    rng = random.Random(seed)
    _, reader_cls = classes_for(_core(backend))
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    corrupt = errors = 0
    with collect_losses() as caught:
        with reader_cls(path, shared=True) as r:
            while True:
                n = rng.randint(1, MAX_BATCH)
                how = rng.randrange(3)
                try:
                    if n == 1 or how == 0:
                        msgs = [r.get(timeout=0.2)]
                    elif how == 1:
                        msgs = r.get_many(n, timeout=0.2)
                    else:
                        msgs = r.get_batch(n, timeout=0.2).tolist()
                except fastfifo.Empty:
                    if done.is_set():
                        break
                    continue
                except (fastfifo.CorruptStreamError, fastfifo.MessageTooLargeError):
                    errors += 1
                    continue
                ids = array.array("Q")
                for m in msgs:
                    i = _check(m)
                    if i is None:
                        corrupt += 1
                    else:
                        ids.append(i)
                os.write(out, ids.tobytes())  # flushed after each claim
                del caught[:-1000]
        with open(stats_path, "w") as f:
            json.dump(
                {
                    "corrupt": corrupt,
                    "errors": errors,
                    "dropped": r.dropped_messages,
                    "warnings": len(caught),
                },
                f,
            )
    os.close(out)


def _read_records(path: str) -> list[tuple[bytes, int]]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    data = data[: len(data) // _REC.size * _REC.size]
    return [_REC.unpack_from(data, i) for i in range(0, len(data), _REC.size)]


def _read_ids(path: str) -> array.array:
    ids = array.array("Q")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return ids
    ids.frombytes(data[: len(data) // 8 * 8])
    return ids


def _fionread(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def run_soak(
    duration: float = 600.0,
    writers: int = 8,
    readers: int = 4,
    kill_every: tuple[float, float] = (0.05, 0.6),
    seed: int | None = None,
    backends: tuple[str, ...] | None = None,
    say: Any = print,
) -> dict[str, Any]:
    """Run the soak; return its figures (``ok`` says whether every check held)."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    backends = backends or (("python",) if PURE_ONLY else ("cython", "python"))
    work = tempfile.mkdtemp(prefix="fastfifo-soak-")
    path = fastfifo.mkfifo(os.path.join(work, "q"))
    keeper = classes_for(_core(backends[0]))[1](path, shared=True)  # holds the pipe open
    stop, done = KillSafeFlag(), KillSafeFlag()  # never multiprocessing.Event (see helpers)
    wlogs: dict[int, str] = {}
    rlogs: list[tuple[str, str]] = []
    killed_writers: set[int] = set()
    killed_readers = 0
    next_wid = [1]

    def start_writer() -> tuple[int, Any]:
        wid = next_wid[0]
        next_wid[0] += 1
        wlogs[wid] = os.path.join(work, f"w{wid}.log")
        p = CTX.Process(
            target=_writer,
            args=(path, wid, wlogs[wid], stop, rng.choice(backends), rng.randrange(1 << 30)),
            daemon=True,
        )
        p.start()
        return wid, p

    def start_reader() -> Any:
        k = len(rlogs)
        rlogs.append((os.path.join(work, f"r{k}.ids"), os.path.join(work, f"r{k}.json")))
        p = CTX.Process(
            target=_reader,
            args=(path, *rlogs[k], done, rng.choice(backends), rng.randrange(1 << 30)),
            daemon=True,
        )
        p.start()
        return p

    say(
        f"soak: {writers} writers, {readers} shared readers, {duration:.0f} s, seed {seed}, "
        f"backends {','.join(backends)}, fifo {path}"
    )
    rprocs = [start_reader() for _ in range(readers)]
    wprocs = [start_writer() for _ in range(writers)]
    start = time.monotonic()
    next_kill = start + rng.uniform(*kill_every)
    last_report = start
    try:
        while time.monotonic() - start < duration:
            time.sleep(0.01)
            now = time.monotonic()
            if now >= next_kill:
                next_kill = now + rng.uniform(*kill_every)
                if rng.random() < 0.5:
                    i = rng.randrange(writers)
                    wid, p = wprocs[i]
                    os.kill(p.pid, signal.SIGKILL)
                    p.join()
                    killed_writers.add(wid)
                    wprocs[i] = start_writer()
                else:
                    i = rng.randrange(readers)
                    os.kill(rprocs[i].pid, signal.SIGKILL)
                    rprocs[i].join()
                    killed_readers += 1
                    rprocs[i] = start_reader()
            for wid, p in wprocs:  # a writer that died by itself is a failure
                if not p.is_alive() and p.exitcode != 0:
                    raise AssertionError(f"writer {wid} exited with {p.exitcode}")
            for p in rprocs:
                if not p.is_alive() and p.exitcode != 0:
                    raise AssertionError(f"a reader exited with {p.exitcode}")
            if now - last_report >= 60:
                last_report = now
                say(
                    f"  {now - start:.0f} s: {len(killed_writers)} writers and "
                    f"{killed_readers} readers killed so far"
                )
        stop.set()
        for wid, p in wprocs:
            p.join(120)
            assert p.exitcode == 0, f"writer {wid} exited with {p.exitcode}"
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 1.0:  # the readers drain the pipe
            if _fionread(keeper.fileno()):
                quiet_since = time.monotonic()
            time.sleep(0.01)
        done.set()
        for p in rprocs:
            p.join(120)
            assert p.exitcode == 0, f"a reader exited with {p.exitcode}"
        leftover = []
        while True:
            try:
                leftover += keeper.get_many(timeout=0)
            except fastfifo.Empty:
                break
    finally:
        stop.set()
        done.set()
        for p in [p for _, p in wprocs] + rprocs:
            if p.is_alive():
                p.kill()
                p.join()
        keeper.close()
    took = time.monotonic() - start
    return _verdict(wlogs, rlogs, killed_writers, killed_readers, leftover, took, seed, say, work)


def _verdict(wlogs, rlogs, killed_writers, killed_readers, leftover, took, seed, say, work):
    committed: set[int] = set()
    maybe: set[int] = set()
    for wid, log in wlogs.items():
        intents, last_commit = [], -1
        for kind, s in _read_records(log):
            if kind == b"I":
                intents.append(s)
            else:
                last_commit = s
        for s in intents:
            (committed if s <= last_commit else maybe).add(wid << 32 | s)
        if wid not in killed_writers and any(s > last_commit for s in intents):
            raise AssertionError(f"writer {wid} was not killed but left uncommitted intents")
    received = array.array("Q")
    for ids, _ in rlogs:
        received.extend(_read_ids(ids))
    stats = {"corrupt": 0, "errors": 0, "dropped": 0, "warnings": 0}
    for m in leftover:
        i = _check(m)
        if i is None:
            stats["corrupt"] += 1
        else:
            received.append(i)
    for _, st in rlogs:
        try:
            with open(st) as f:
                for k, v in json.load(f).items():
                    stats[k] += v
        except FileNotFoundError:
            pass  # a killed reader's stats
    seen = set(received)
    duplicates = len(received) - len(seen)
    unexpected = len(seen - committed - maybe)
    missing = len(committed - seen)
    bound = killed_readers * (MAX_BATCH + 1)
    figures = {
        "seconds": round(took, 1),
        "seed": seed,
        "messages_committed": len(committed),
        "messages_received": len(received),
        "maybe_sent_by_killed_writers": len(maybe),
        "of_which_received": len(maybe & seen),
        "writer_kills": len(killed_writers),
        "reader_kills": killed_readers,
        "lost_with_killed_readers": missing,
        "loss_bound": bound,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "corrupt": stats["corrupt"],
        "reader_errors": stats["errors"],
        "dropped_partial_messages": stats["dropped"],
        "leftover_in_pipe": len(leftover),
    }
    figures["ok"] = (
        duplicates == 0
        and unexpected == 0
        and stats["corrupt"] == 0
        and stats["errors"] == 0
        and missing <= bound
    )
    say("soak: " + json.dumps(figures))
    if figures["ok"]:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        say(f"soak: FAILED; logs kept in {work}")
    return figures


def test_soak_thirty_seconds_with_kills():
    figures = run_soak(duration=float(os.environ.get("FASTFIFO_SOAK_SECONDS", "30")))
    assert figures["ok"], figures
    assert figures["writer_kills"] > 5 and figures["reader_kills"] > 5
    assert figures["messages_received"] > 10_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="fastfifo soak: writers and shared readers, "
        "with random SIGKILLs; verifies exactly-once delivery"
    )
    ap.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument(
        "--kill-every",
        type=float,
        nargs=2,
        default=(0.05, 0.6),
        metavar=("MIN", "MAX"),
        help="seconds between kills, drawn uniformly",
    )
    ap.add_argument("--seed", type=int)
    ap.add_argument("--backends", default=None, help="comma-separated: cython,python")
    args = ap.parse_args(argv)
    figures = run_soak(
        args.duration,
        args.writers,
        args.readers,
        tuple(args.kill_every),
        args.seed,
        tuple(args.backends.split(",")) if args.backends else None,
    )
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
