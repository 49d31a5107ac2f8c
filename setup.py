"""Build the Cython core.  Everything else lives in pyproject.toml.

If the extension cannot be built (no C compiler, no Python headers, an unknown platform),
the install goes on without it: fastfifo then runs on its pure-Python core, which keeps
the same contract, several times slower.  The build says so (a warning, shown by
``pip install -v``), and ``import fastfifo`` warns too, naming the build error, because
pip hides build output.

FASTFIFO_NO_EXTENSIONS=1 at build time skips the extension on purpose (a pure install,
no warning).  FASTFIFO_REQUIRE_EXTENSIONS=1 makes a failed build an error instead of a
fallback (FASTFIFO_REQUIRE_CYTHON=1 is the older name; FASTFIFO_SANITIZE implies it).
FASTFIFO_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

#: Written into the package when the build fell back, for ``import fastfifo`` to report.
FALLBACK_NOTE = "_core_build_failed.txt"


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


SKIP = _flag("FASTFIFO_NO_EXTENSIONS")
REQUIRE = (
    _flag("FASTFIFO_REQUIRE_EXTENSIONS")
    or _flag("FASTFIFO_REQUIRE_CYTHON")
    or _flag("FASTFIFO_SANITIZE")
)


def _warn(reason):
    bar = "*" * 78
    sys.stderr.write(
        f"\n{bar}\n"
        "WARNING: fastfifo's compiled core could not be built, so this install uses the\n"
        "pure-Python core: the same contract, several times slower.\n"
        f"  reason: {reason}\n"
        "To get the compiled core, install a C compiler and the Python headers (e.g.\n"
        "`apt install gcc python3-dev`) and reinstall. FASTFIFO_REQUIRE_EXTENSIONS=1 turns\n"
        "this fallback into an error; FASTFIFO_NO_EXTENSIONS=1 asks for the pure core.\n"
        f"{bar}\n\n"
    )


class BuildExtOrFallBack(build_ext):
    """build_ext that leaves the extension out, with a warning, when it cannot be built."""

    def run(self):
        try:
            super().run()
        except (PlatformError, FileNotFoundError) as e:  # no compiler found at all
            self._fall_back(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError, ValueError) as e:
            self._fall_back(e)
        else:
            self._note_path().unlink(missing_ok=True)  # a stale note from an earlier build

    def _fall_back(self, error):
        if REQUIRE:
            raise error
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        _warn(reason)
        if len(reason) > 240:  # a compiler's whole command line: keep the start and the end
            reason = f"{reason[:160]} ... {reason[-70:]}"
        note = self._note_path()
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(reason + "\n")

    def _note_path(self):
        from pathlib import Path

        if self.inplace:
            package = self.get_finalized_command("build_py").get_package_dir("fastfifo")
            return Path(package) / FALLBACK_NOTE
        return Path(self.build_lib) / "fastfifo" / FALLBACK_NOTE

    def get_outputs(self):
        return [p for p in super().get_outputs() if os.path.exists(p)]


def _extensions():
    if SKIP:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as e:  # built without build isolation, and no Cython here
        if REQUIRE:
            raise
        _warn(f"Cython is not installed ({e})")
        return []
    extra_compile = ["-O2"]
    extra_link = []
    if _flag("FASTFIFO_SANITIZE"):
        flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
        extra_compile, extra_link = flags, flags
    return cythonize(
        [
            # _parse.py is Cython's pure-Python mode (typed by _parse.pxd); the pure
            # twin runs the same file uncompiled.
            Extension(
                f"fastfifo.{name}",
                [f"src/fastfifo/{name}{suffix}"],
                include_dirs=["src/fastfifo"],  # _posix.h
                extra_compile_args=extra_compile,
                extra_link_args=extra_link,
            )
            for name, suffix in (("_parse", ".py"), ("_core", ".pyx"))
        ],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExtOrFallBack})
