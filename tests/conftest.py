"""Fixtures: every test that takes ``ff`` runs once per backend (compiled and pure).

The compiled backend is never skipped: if it cannot be imported the "cython"
runs fail, unless FASTFIFO_NO_EXTENSIONS=1 says this is a pure-Python install.
The backends themselves are in tests/helpers.py, which test files import from.
"""

from __future__ import annotations

import types

import pytest
from helpers import BACKENDS, endpoints

import fastfifo


@pytest.fixture(params=BACKENDS)
def ff(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return endpoints(request.param)


@pytest.fixture
def fifo(tmp_path) -> str:
    return fastfifo.mkfifo(str(tmp_path / "q"))
