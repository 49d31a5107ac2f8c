"""Pick the core: the compiled one unless FASTFIFO_NO_EXTENSIONS is set or it is missing."""

from __future__ import annotations

import os
from types import ModuleType

from . import _core_py


def _select() -> ModuleType:
    if os.environ.get("FASTFIFO_NO_EXTENSIONS", "") not in ("", "0"):
        return _core_py
    try:
        from fastfifo import _core
    except ImportError:  # a pure install (no compiler, or built with FASTFIFO_NO_EXTENSIONS=1)
        return _core_py
    compiled: ModuleType = _core
    return compiled


core: ModuleType = _select()
