"""Pick the core: the compiled one unless FASTFIFO_NO_EXTENSIONS is set or it is missing."""

from __future__ import annotations

import os
from types import ModuleType


def _select() -> ModuleType:
    if os.environ.get("FASTFIFO_NO_EXTENSIONS", "") in ("", "0"):
        try:
            from fastfifo import _core
        except ImportError:  # a pure install (no compiler, or built with FASTFIFO_NO_EXTENSIONS=1)
            pass
        else:
            compiled: ModuleType = _core
            return compiled
    # Imported only when needed: the pure twin costs ~15 ms of import time (ctypes, threading).
    from fastfifo import _core_py

    return _core_py


core: ModuleType = _select()
