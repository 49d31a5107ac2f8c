"""Which core is loaded, and the switch that forces the pure-Python one."""

from __future__ import annotations

import os
import subprocess
import sys

import fastfifo


def test_backend_is_reported():
    assert fastfifo.backend in ("cython", "python")
    if os.environ.get("FASTFIFO_REQUIRE_CYTHON"):
        # Set by .ci/run and the wheel builds: the compiled core must be what loaded.
        assert fastfifo.backend == "cython"


def test_env_var_selects_the_pure_python_core():
    env = dict(os.environ, FASTFIFO_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", "import fastfifo; print(fastfifo.backend)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out == "python\n"


def test_pipe_buf_is_the_platform_atomic_limit():
    assert (4096 if sys.platform.startswith("linux") else 512) == fastfifo.PIPE_BUF
