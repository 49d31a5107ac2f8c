"""Fixtures: every test that takes ``ff`` runs once per backend (compiled and pure).

The compiled backend is never skipped: if it cannot be imported the "cython"
runs fail, unless FASTFIFO_NO_EXTENSIONS=1 says this is a pure-Python install.
"""

from __future__ import annotations

import importlib
import os
import types

import pytest

import fastfifo
from fastfifo._endpoints import classes_for

PURE_ONLY = os.environ.get("FASTFIFO_NO_EXTENSIONS", "") not in ("", "0")
BACKENDS = ["python"] if PURE_ONLY else ["cython", "python"]


def backend_module(name: str) -> types.ModuleType:
    return importlib.import_module("fastfifo._core" if name == "cython" else "fastfifo._core_py")


def endpoints(name: str) -> types.SimpleNamespace:
    """Writer/Reader classes over the named backend (also used inside child processes)."""
    writer, reader = classes_for(backend_module(name))
    return types.SimpleNamespace(name=name, Writer=writer, Reader=reader)


@pytest.fixture(params=BACKENDS)
def ff(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return endpoints(request.param)


@pytest.fixture
def fifo(tmp_path) -> str:
    return fastfifo.mkfifo(str(tmp_path / "q"))
