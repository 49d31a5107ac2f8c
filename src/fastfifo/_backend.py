"""Pick the core: the compiled one, unless FASTFIFO_NO_EXTENSIONS is set or it cannot load.

Never a silent slow-down: if the compiled core is there but fails to import (a corrupt or
ABI-mismatched ``.so``), or was not built because the build failed (setup.py leaves a
note), fastfifo warns once, naming the error, and runs on the pure-Python core.
FASTFIFO_REQUIRE_EXTENSIONS=1 (or its older name FASTFIFO_REQUIRE_CYTHON=1) makes both
cases an ImportError instead.  A pure install made on purpose (FASTFIFO_NO_EXTENSIONS=1
at build time) and FASTFIFO_NO_EXTENSIONS=1 at run time are quiet.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

#: What setup.py writes into the package when it could not build the compiled core.
FALLBACK_NOTE = "_core_build_failed.txt"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _why_not_compiled(error: ImportError) -> str | None:
    """Why the compiled core is unavailable, or None for a pure install made on purpose."""
    missing = isinstance(error, ModuleNotFoundError) and error.name == "fastfifo._core"
    if not missing:
        return f"the compiled core failed to import ({type(error).__name__}: {error})"
    note = os.path.join(os.path.dirname(os.path.abspath(__file__)), FALLBACK_NOTE)
    try:
        with open(note) as f:
            reason = " ".join(f.read().split())
    except OSError:
        return None
    return f"the compiled core could not be built when fastfifo was installed ({reason})"


def _select() -> ModuleType:
    if not _flag("FASTFIFO_NO_EXTENSIONS"):
        try:
            # (not `from fastfifo import _core`: a missing module must raise ModuleNotFoundError)
            import fastfifo._core as _core
        except ImportError as e:
            why = _why_not_compiled(e)
            if _flag("FASTFIFO_REQUIRE_EXTENSIONS") or _flag("FASTFIFO_REQUIRE_CYTHON"):
                raise ImportError(
                    f"fastfifo: {why or 'this is a pure-Python install (no compiled core)'}, "
                    "and FASTFIFO_REQUIRE_EXTENSIONS is set; reinstall fastfifo with a C "
                    "compiler and the Python headers, or unset FASTFIFO_REQUIRE_EXTENSIONS "
                    "to run on the pure-Python core"
                ) from e
            if why is not None:
                warnings.warn(
                    f"fastfifo: {why}; using the pure-Python core instead, which keeps the "
                    "same contract but is several times slower. Reinstall fastfifo (with a C "
                    "compiler and the Python headers) to get the compiled core back; set "
                    "FASTFIFO_NO_EXTENSIONS=1 to choose the pure core and silence this, or "
                    "FASTFIFO_REQUIRE_EXTENSIONS=1 to make it an error",
                    RuntimeWarning,
                    stacklevel=2,
                )
        else:
            compiled: ModuleType = _core
            return compiled
    # Imported only when needed: the pure twin costs ~15 ms of import time (ctypes, threading).
    from fastfifo import _core_py

    return _core_py


core: ModuleType = _select()
