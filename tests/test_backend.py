"""Which core is loaded, the switch that forces the pure-Python one, and never a silent
fall-back to it: a compiled core that is broken, or was not built, is reported."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastfifo
from fastfifo._backend import FALLBACK_NOTE

REQUIRED = any(
    os.environ.get(name, "") not in ("", "0")
    for name in ("FASTFIFO_REQUIRE_EXTENSIONS", "FASTFIFO_REQUIRE_CYTHON")
)


def test_backend_is_reported():
    assert fastfifo.backend in ("cython", "python")
    if REQUIRED and os.environ.get("FASTFIFO_NO_EXTENSIONS", "") in ("", "0"):
        # Set by .ci/run, CI and the wheel builds: the compiled core must be what loaded.
        assert fastfifo.backend == "cython"


def package_copy(tmp_path: Path, core: str) -> Path:
    """A copy of the fastfifo package being tested, in tmp_path, with its compiled core
    ``"corrupt"`` (garbage where the .so is), ``"missing"``, or ``"not built"`` (missing,
    with the note setup.py leaves when the build fell back)."""
    source = Path(fastfifo.__file__).parent
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    shutil.copytree(
        source,
        tmp_path / "fastfifo",
        ignore=lambda d, names: [
            n for n in names if n == "__pycache__" or n.endswith(suffixes) or n == FALLBACK_NOTE
        ],
    )
    if core == "corrupt":
        so = tmp_path / "fastfifo" / f"_core{importlib.machinery.EXTENSION_SUFFIXES[0]}"
        so.write_bytes(b"not a shared object\n")
    elif core == "not built":
        (tmp_path / "fastfifo" / FALLBACK_NOTE).write_text("CompileError: command 'false' failed\n")
    return tmp_path


def import_copy(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FASTFIFO_")}
    return subprocess.run(
        [sys.executable, "-c", "import fastfifo; print(fastfifo.backend, fastfifo.__file__)"],
        env={**clean, "PYTHONPATH": str(root), **env},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_corrupt_compiled_core_warns_once_naming_the_error(tmp_path):
    root = package_copy(tmp_path, "corrupt")
    r = import_copy(root)
    assert r.returncode == 0, r.stderr
    backend, where = r.stdout.split()
    assert backend == "python" and where.startswith(str(root))  # the copy was imported
    assert r.stderr.count("RuntimeWarning") == 1, r.stderr
    assert "the compiled core failed to import" in r.stderr
    assert "_core" in r.stderr and "FASTFIFO_REQUIRE_EXTENSIONS=1" in r.stderr
    quiet = import_copy(root, FASTFIFO_NO_EXTENSIONS="1")  # the pure core, chosen: no warning
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("python ")


@pytest.mark.parametrize("name", ["FASTFIFO_REQUIRE_EXTENSIONS", "FASTFIFO_REQUIRE_CYTHON"])
@pytest.mark.parametrize("core", ["corrupt", "not built", "missing"])
def test_required_extensions_make_a_missing_core_fatal(tmp_path, name, core):
    r = import_copy(package_copy(tmp_path, core), **{name: "1"})
    assert r.returncode == 1 and r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastfifo: ") and "FASTFIFO_REQUIRE_EXTENSIONS" in last
    assert {
        "corrupt": "failed to import",
        "not built": "could not be built when fastfifo was installed (CompileError",
        "missing": "pure-Python install",
    }[core] in last


def test_a_build_that_fell_back_is_reported_at_import(tmp_path):
    r = import_copy(package_copy(tmp_path, "not built"))
    assert r.returncode == 0 and r.stdout.startswith("python ")
    assert r.stderr.count("RuntimeWarning") == 1
    assert "could not be built when fastfifo was installed (CompileError" in r.stderr


def test_a_pure_install_made_on_purpose_is_quiet(tmp_path):
    r = import_copy(package_copy(tmp_path, "missing"))
    assert r.returncode == 0 and r.stdout.startswith("python ") and r.stderr == ""


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
