"""The C limit: ``c/fifo_limit.c`` compiled with ``cc -O2`` and run as real processes.

It uses the os.read baseline's wire format (4-byte length + payload) and the
payload layout of ``bench.messages``, so it is checked the same way (in C).  It
is the ceiling for what any Python library can do over one FIFO on this machine:
unbatched rows use one ``write()`` per message, batched rows pack frames into
64 KiB writes (one writer) or ``PIPE_BUF`` writes (several writers, so that each
write stays atomic).  The reader ``read()``s 1 MiB at a time.  Both ends ask for a
1 MiB pipe.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from typing import Any

from .peer import Peer, pin

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "fifo_limit.c")


@functools.cache
def build() -> tuple[str | None, str]:
    """Compiles the C limit into a temporary directory; returns (binary or None, why not)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None, f"n/a: no C compiler ({cc!r} not found)"
    outdir = tempfile.mkdtemp(prefix="ffbench-c-")
    atexit.register(shutil.rmtree, outdir, True)  # forked workers leave via os._exit
    binary = os.path.join(outdir, "fifo_limit")
    proc = subprocess.run([cc, "-O2", "-o", binary, SOURCE], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"n/a: {cc} -O2 failed: {proc.stderr.strip()[:200]}"
    return binary, ""


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def _collect(procs: list[subprocess.Popen], timeout: float) -> list[dict[str, str]]:
    out = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=timeout)
            lines = stdout.strip().splitlines()
            fields = _fields(lines[-1]) if lines else {}
            if proc.returncode != 0 or fields.get("status") is None:
                fields.setdefault("status", f"FAIL: exit {proc.returncode} {stderr.strip()[:100]}")
            out.append(fields)
    except subprocess.TimeoutExpired:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise TimeoutError(f"the C processes did not finish within {timeout:.0f} s") from None
    return out


class CLimit(Peer):
    """Not a Python peer: it runs its own processes (see ``measure`` / ``measure_pingpong``)."""

    key = "C"
    name = "C limit"
    # The C processes stream their payloads (no copies kept), so runs can be long enough.
    max_messages = 200_000_000
    max_bytes = 64 << 30
    batched = True
    multi_reader = False  # no shared-reader protocol in the C limit

    def label(self, row: Any) -> str:
        if row.kind == "pingpong":
            return "C limit (write/read)"
        if not row.batched:
            return "C limit, write() per message"
        return "C limit, packed " + ("PIPE_BUF writes" if row.writers > 1 else "64 KiB writes")

    def unavailable(self) -> str | None:
        binary, why = build()
        return None if binary else why

    def measure(self, row: Any, count: int, timeout: float) -> dict[str, Any]:
        """One throughput run: ``row.writers`` writers of ``count`` messages, one reader."""
        binary, _ = build()
        mode = "single" if not row.batched else ("atomic" if row.writers > 1 else "packed")
        total = count * row.writers
        with tempfile.TemporaryDirectory(prefix="ffbench-") as tmp:
            path = os.path.join(tmp, "q")
            os.mkfifo(path, 0o600)
            pipe = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            reader = subprocess.Popen([binary, "read", path, str(total), str(row.size)], **pipe)
            writers = [
                subprocess.Popen(
                    [binary, "write", path, str(count), str(row.size), str(w * count), mode], **pipe
                )
                for w in range(row.writers)
            ]
            results = _collect([*writers, reader], timeout)
        problems = [r["status"] for r in results if r["status"] != "ok"]
        if problems:
            return {
                "status": problems[0] if problems[0].startswith("FAIL") else "FAIL: " + problems[0]
            }
        start = min(int(r["start"]) for r in results[:-1])
        span = (int(results[-1]["end"]) - start) / 1e9
        return {"status": "ok", "seconds": span, "messages": total}

    def measure_pingpong(self, row: Any, count: int, warmup: int, timeout: float) -> dict:
        """One ping-pong run: ``count`` timed round trips after ``warmup`` untimed ones."""
        binary, _ = build()
        with tempfile.TemporaryDirectory(prefix="ffbench-") as tmp:
            req, resp = os.path.join(tmp, "req"), os.path.join(tmp, "resp")
            os.mkfifo(req, 0o600)
            os.mkfifo(resp, 0o600)
            pipe = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            server = subprocess.Popen(
                [binary, "pong", req, resp, str(count + warmup), str(row.size)], **pipe
            )
            client = subprocess.Popen(
                [binary, "ping", req, resp, str(count), str(row.size), str(warmup)], **pipe
            )
            # (pinned once started: the untimed warm-up round trips come first)
            pin(row, "server", server.pid)
            pin(row, "client", client.pid)
            srv, cli = _collect([client, server], timeout)[::-1]
        if cli["status"] != "ok" or srv["status"] != "ok":
            bad = cli["status"] if cli["status"] != "ok" else srv["status"]
            return {"status": bad if bad.startswith("FAIL") else "FAIL: " + bad}
        return {
            "status": "ok",
            "median_ns": int(cli["median_ns"]),
            "p99_ns": int(cli["p99_ns"]),
            "messages": count,
        }
