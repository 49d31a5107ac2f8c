"""The pure-Python twin of ``_core.pyx``: the same contract with ``os`` and ``select``.

It is the reference (tests run every behaviour against both) and the fallback
where no compiler or wheel exists (``FASTFIFO_NO_EXTENSIONS=1`` selects it).
Keep the two in step: same classes, same methods, same errors, same bytes on
the wire (docs/PROTOCOL.md).

This module gathers the twin's parts, laid out as the compiled core's included files:
``_py_wire`` (``_wire.pxi``), ``_py_endpoint``, ``_py_writer``, and the reader in the
same three layers: ``_py_reader_base``, ``_py_claims``, ``_py_reader`` (with
MessageBatch, which ``_batch.pxi`` holds in the compiled core).
"""

from __future__ import annotations

from ._py_reader import MessageBatch, ReaderCore
from ._py_wire import (
    ATOMIC_MAX,
    BACKEND,
    HAVE_TEE,
    _ofd_held,
    _ofd_lock,
    _tee,
    encode_header,
    sigpipe_is_default,
)
from ._py_writer import WriterCore

__all__ = [
    "ATOMIC_MAX",
    "BACKEND",
    "HAVE_TEE",
    "MessageBatch",
    "ReaderCore",
    "WriterCore",
    "_ofd_held",
    "_ofd_lock",
    "_tee",
    "encode_header",
    "sigpipe_is_default",
]
