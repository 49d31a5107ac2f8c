"""Fixtures: every test that takes ``ff`` runs once per backend (compiled and pure).

The compiled backend is never skipped: if it cannot be imported the "cython"
runs fail, unless FASTFIFO_NO_EXTENSIONS=1 says this is a pure-Python install.
The backends themselves are in tests/helpers.py, which test files import from.
"""

from __future__ import annotations

import signal
import types

import pytest
from helpers import BACKENDS, endpoints

import fastfifo


def pytest_configure(config: pytest.Config) -> None:
    # Tests send SIGINT to the processes they start and expect Python's KeyboardInterrupt
    # there.  A shell that runs the suite as a background job (`.ci/run &`) starts it with
    # SIGINT ignored, and an ignored signal stays ignored across exec(), so every child
    # would ignore it too.  A handler here is reset to the default by exec(), so children
    # start as they would from a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(params=BACKENDS)
def ff(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return endpoints(request.param)


@pytest.fixture
def fifo(tmp_path) -> str:
    return fastfifo.mkfifo(str(tmp_path / "q"))
