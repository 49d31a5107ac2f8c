"""The Queue and asyncio examples (examples/, shown in docs/queue-and-asyncio.md) run as shipped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOC = ROOT / "docs" / "queue-and-asyncio.md"

# Same rule as test_examples.py: a wheel test run that copies only tests/ has no examples.
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="no examples/ beside tests/")


def run_example(name: str, *args: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


def test_queue_spawn_example():
    assert run_example("queue_spawn.py") == [
        "3003 items from 3 producers, taken by 3 consumers, each exactly once",
        "large messages arrived whole: True",
    ]


def test_asyncio_service_example():
    lines = run_example("asyncio_service.py")
    assert lines[:2] == [
        "served 200 requests from a shell client with 2 worker processes",
        "all answers correct: True",
    ]
    pause = re.fullmatch(
        r"event loop stayed responsive \(longest pause between heartbeats: "
        r"(\d+) ms\)",
        lines[2],
    )
    assert pause is not None, lines
    assert int(pause.group(1)) < 500  # a blocked loop would stall for the whole run


@pytest.mark.parametrize("loop", [[], ["--uvloop"]], ids=["asyncio", "uvloop"])
def test_asyncio_endpoints_example(loop):
    assert run_example("asyncio_endpoints.py", *loop) == [
        "1000 messages through 1000 producer and 1000 consumer tasks",
        "a cancelled get lost nothing: b'still here'",
        "drain() kept the backlog bounded; 20000 messages arrived in order: True",
    ]


def test_the_docs_show_the_examples_as_they_are():
    """Each ``<!-- example: FILE -->`` block in the doc is that file, byte for byte."""
    text = DOC.read_text()
    blocks = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```", text, flags=re.S)
    assert {name for name, _ in blocks} == {
        "examples/queue_spawn.py",
        "examples/asyncio_endpoints.py",
        "examples/asyncio_service.py",
    }
    for name, body in blocks:
        assert body == (ROOT / name).read_text(), f"{DOC.name} shows a stale copy of {name}"
