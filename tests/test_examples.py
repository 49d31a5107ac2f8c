"""The programs in examples/ run as shipped and print what they promise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="no examples/ beside tests/")


def example_env() -> dict[str, str]:
    """This interpreter (and its `fastfifo` script) first on PATH, as after `pip install`."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHON"] = sys.executable
    return env


def run_example(*command: str) -> subprocess.CompletedProcess[str]:
    """Run an example the way its docstring says; it must exit 0."""
    r = subprocess.run(command, capture_output=True, text=True, timeout=120, env=example_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_work_queue():
    r = run_example(
        sys.executable,
        str(EXAMPLES / "work_queue.py"),
        "--workers",
        "3",
        "--tasks",
        "3000",
        "--batch",
        "8",
    )
    out = r.stdout
    assert "3000 tasks, 3 shared workers" in out
    counts = [int(n) for n in re.findall(r"worker \d+: (\d+) tasks", out)]
    assert len(counts) == 3 and sum(counts) == 3000
    # 1_000_003 + 2*i for i < 3000: the primes among them, counted here independently
    assert re.search(r"every task done exactly once: (\d+) primes", out).group(1) == str(
        sum(_is_prime(1_000_003 + 2 * i) for i in range(3000))
    )


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_shell_pipeline():
    r = run_example("sh", str(EXAMPLES / "shell_pipeline.sh"))
    out = r.stdout
    for expected in [
        "recv printed: hello from echo",
        "recv printed: two",
        "recv printed: lines from printf",
        "summed the 100 messages: 5050",
        "worker got: resize a.jpg",
        "worker got: resize b.jpg",
        "worker got: resize c.jpg",
        "queue empty (recv exit status 3)",
        "recv --hex: 00ff0a41",
        "done",
    ]:
        assert expected in out, out
    assert out.index("resize a.jpg") < out.index("resize b.jpg") < out.index("resize c.jpg")
    if sys.platform.startswith("linux"):
        assert '"buffered_bytes": 60' in out  # 3 frames: 3 x 8-byte header + 36 bytes
    assert r.stderr == ""
