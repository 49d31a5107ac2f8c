"""fastfifo: Unix named pipes (FIFOs) as a fast, correct message queue.

>>> import fastfifo
>>> fastfifo.mkfifo("/tmp/q")                         # doctest: +SKIP
>>> with fastfifo.Reader("/tmp/q") as r, fastfifo.Writer("/tmp/q") as w:  # doctest: +SKIP
...     w.put(b"hello")
...     r.get(timeout=1.0)
b'hello'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the same classes, as type checkers can see them
    from ._core import MessageBatch as MessageBatch
    from ._endpoints import Reader as Reader
    from ._endpoints import Writer as Writer
else:
    Writer, Reader = classes_for(_core_module)
    #: What ``Reader.get_batch`` returns: zero-copy views of a batch of messages.
    MessageBatch = _core_module.MessageBatch

if TYPE_CHECKING:
    from . import aio as aio
    from . import relay as relay
    from .queues import Queue as Queue


def __getattr__(name: str) -> Any:
    # Imported on first use: fastfifo.aio needs asyncio and fastfifo.queues needs
    # multiprocessing, which together cost more import time than the rest of fastfifo.
    if name in ("aio", "relay"):  # fastfifo.relay: FIFO <-> Redis Stream (needs redis-py)
        return importlib.import_module(f".{name}", __name__)
    if name == "Queue":
        return importlib.import_module(".queues", __name__).Queue
    raise AttributeError(f"module 'fastfifo' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PIPE_SIZE",
    "PIPE_BUF",
    "ClosedError",
    "CorruptStreamError",
    "Empty",
    "Full",
    "IncompleteMessageWarning",
    "MessageBatch",
    "MessageTooLargeError",
    "NotAFifoError",
    "Queue",
    "Reader",
    "Writer",
    "__version__",
    "aio",
    "backend",
    "mkfifo",
    "relay",
]
