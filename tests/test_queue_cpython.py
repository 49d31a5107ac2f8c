"""CPython's own multiprocessing.Queue tests, run unchanged against fastfifo.Queue.

tests/cpython_queue_tests.py subclasses ``test._test_multiprocessing._TestQueue`` with
``Queue = fastfifo.Queue`` and runs it in a process of its own, under each start method
and each core.  Every test must pass but one, which checks a documented difference: a
pickling error is raised by ``put`` instead of being printed by the feeder thread (the
object lost).  ``test_task_done`` and ``test_queue_feeder_on_queue_feeder_error`` use
``multiprocessing``'s ``JoinableQueue`` and a ``multiprocessing.queues.Queue`` subclass,
not ``self.Queue``; they run with the rest, as CPython's suite runs them.  A Python
installed without its test package (``test._test_multiprocessing``) skips these, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import BACKENDS

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpython_queue_tests.py")

#: The one test whose outcome differs from multiprocessing.Queue's, and how (see
#: docs/queue-and-asyncio.md, "What is different": a pickling error).
DIFFERENT = {
    "test_queue_feeder_donot_stop_onexc": "error: AttributeError: q.put(NotSerializable())",
}


def _run(method: str, backend: str) -> dict:
    env = dict(os.environ)
    if backend == "python":
        env["FASTFIFO_NO_EXTENSIONS"] = "1"
    else:
        env["FASTFIFO_REQUIRE_EXTENSIONS"] = "1"
    proc = subprocess.run(
        [sys.executable, DRIVER, method], capture_output=True, text=True, env=env, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_cpython_s_queue_tests_pass_but_for_the_documented_pickling_error(method, backend):
    outcome = _run(method, backend)
    if "unavailable" in outcome:  # e.g. Debian's python3 without libpython3.X-testsuite,
        # or the official Docker images, which delete the test package
        pytest.skip(f"{sys.executable} has no test._test_multiprocessing (CPython's tests)")
    assert len(outcome) >= 10, outcome  # _TestQueue has 10 tests in 3.10-3.11, more later
    assert {name: how for name, how in outcome.items() if how != "ok"} == DIFFERENT
