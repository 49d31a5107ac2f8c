"""Build the Cython core.  Everything else lives in pyproject.toml.

FASTFIFO_NO_EXTENSIONS=1 at build time skips the extension (pure-Python install).
FASTFIFO_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.
"""

import os

from setuptools import setup

ext_modules = []
if os.environ.get("FASTFIFO_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize
    from setuptools import Extension

    extra_compile = ["-O2"]
    extra_link = []
    if os.environ.get("FASTFIFO_SANITIZE"):
        flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
        extra_compile, extra_link = flags, flags
    ext_modules = cythonize(
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

setup(ext_modules=ext_modules)
