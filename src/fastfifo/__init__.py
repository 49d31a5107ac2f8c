"""fastfifo: Unix named pipes (FIFOs) as a fast, correct message queue.

>>> import fastfifo
>>> fastfifo.mkfifo("/tmp/q")                         # doctest: +SKIP
>>> with fastfifo.Reader("/tmp/q") as r, fastfifo.Writer("/tmp/q") as w:  # doctest: +SKIP
...     w.put(b"hello")
...     r.get(timeout=1.0)
b'hello'
"""

from __future__ import annotations

from ._backend import core as _core_module
from ._endpoints import DEFAULT_MAX_MESSAGE_SIZE, PIPE_BUF, classes_for
from ._errors import (
    ClosedError,
    CorruptStreamError,
    Empty,
    Full,
    IncompleteMessageWarning,
    MessageTooLargeError,
    NotAFifoError,
)
from ._open import DEFAULT_PIPE_SIZE, mkfifo
from ._version import __version__

#: "cython" when the compiled core is in use, "python" for the pure-Python twin.
backend: str = _core_module.BACKEND

Writer, Reader = classes_for(_core_module)

from . import aio  # noqa: E402  (asyncio endpoints: fastfifo.aio.Reader / Writer / Queue)
from .queue import Queue  # noqa: E402

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PIPE_SIZE",
    "PIPE_BUF",
    "ClosedError",
    "CorruptStreamError",
    "Empty",
    "Full",
    "IncompleteMessageWarning",
    "MessageTooLargeError",
    "NotAFifoError",
    "Queue",
    "Reader",
    "Writer",
    "__version__",
    "aio",
    "backend",
    "mkfifo",
]
