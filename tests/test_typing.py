"""The package's types, as users' type checkers see them (issue: typing).

* ``mypy --strict`` over the typed usage examples in tests/typing/: what must type-check
  does (``assert_type`` pins each type down, so ``Any`` fails), and what must be rejected
  is (each mistake in misuse.py carries a ``type: ignore`` that ``--strict`` reports as
  unused if the mistake stops being an error);
* ``mypy.stubtest`` compares src/fastfifo/_core.pyi with the compiled module, so the stub
  cannot drift from the extension.

Both run mypy in a subprocess against the installed package (or the editable install),
from a scratch directory, so no project configuration or cache is involved.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PURE_ONLY

TYPING = Path(__file__).parent / "typing"


def mypy_strict(tmp_path: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return run_mypy(tmp_path, "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), *files)


def run_mypy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_typed_usage_examples_pass_mypy_strict(tmp_path):
    files = sorted(str(p) for p in TYPING.glob("*.py"))
    assert len(files) >= 2, files
    result = mypy_strict(tmp_path, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no issues found in {len(files)} source files" in result.stdout


def test_mypy_strict_rejects_a_mistyped_call(tmp_path):
    """The check above can fail: a wrong type in user code is reported, with its line."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import fastfifo\n"
        "def f(r: fastfifo.Reader, w: fastfifo.Writer) -> str:\n"
        "    w.put('text')\n"
        "    return r.get()\n"
    )
    result = mypy_strict(tmp_path, str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'bad.py:3: error: Argument 1 to "put"' in result.stdout
    assert "bad.py:4: error: Incompatible return value type" in result.stdout


def test_the_extension_stub_matches_the_compiled_module(tmp_path):
    if importlib.util.find_spec("fastfifo._core") is None:
        assert PURE_ONLY, "the compiled core is missing but FASTFIFO_NO_EXTENSIONS is not set"
        pytest.skip("pure-Python install: there is no compiled module to compare the stub with")
    allowlist = TYPING / "stubtest-allowlist.txt"
    result = run_mypy(tmp_path, "mypy.stubtest", "--allowlist", str(allowlist), "fastfifo._core")
    assert result.returncode == 0, result.stdout + result.stderr
