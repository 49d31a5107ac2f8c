"""Run CPython's own ``multiprocessing.Queue`` tests against ``fastfifo.Queue``.

``test._test_multiprocessing._TestQueue`` is the class of CPython's test suite that
checks ``multiprocessing.Queue`` (put/get with and without blocking, timeouts, qsize,
fork, closing, the feeder and its errors).  Its tests call ``self.Queue()``, so a
subclass that sets ``Queue = fastfifo.Queue`` runs them, unchanged, against fastfifo.

    python tests/cpython_queue_tests.py spawn     # prints one JSON object

The object maps each test's name to "ok", or to "<kind>: <ExceptionType>: <line>" for a
failure or an error.  It runs as a script of its own (tests/test_queue_cpython.py starts
it), so that the start method can be set before anything starts a process and so that
``spawn`` and ``forkserver`` children can import the test class from ``__mp_main__``.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import sys
import unittest

import fastfifo

try:
    from test import _test_multiprocessing as cpython_tests
except ImportError:  # a Python installed without its test package
    cpython_tests = None

if cpython_tests is not None:

    class FastfifoQueueUnderCPythonTests(
        cpython_tests.ProcessesMixin, cpython_tests._TestQueue, unittest.TestCase
    ):
        Queue = staticmethod(fastfifo.Queue)


def _summary(exc_text: str) -> str:
    """``ExceptionType: <the test's own line that raised>`` from a formatted traceback."""
    lines = exc_text.rstrip().splitlines()
    source = next(
        (
            lines[i + 1].strip()
            for i, line in enumerate(lines[:-1])
            if "_test_multiprocessing.py" in line
        ),
        "?",
    )
    return f"{lines[-1].split(':')[0]}: {source}"


def main(method: str) -> int:
    if cpython_tests is None:
        print(json.dumps({"unavailable": "no test._test_multiprocessing in this Python"}))
        return 0
    multiprocessing.set_start_method(method, force=True)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(FastfifoQueueUnderCPythonTests)
    outcome = {t.id().rsplit(".", 1)[1]: "ok" for t in suite}  # (run() empties the suite)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    for kind, items in (("failure", result.failures), ("error", result.errors)):
        for test, text in items:
            outcome[test.id().rsplit(".", 1)[1]] = f"{kind}: {_summary(text)}"
    for test, reason in result.skipped:
        outcome[test.id().rsplit(".", 1)[1]] = f"skipped: {reason}"
    print(json.dumps(outcome, sort_keys=True))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/cpython_queue_tests.py fork|spawn|forkserver")
    sys.exit(main(sys.argv[1]))
