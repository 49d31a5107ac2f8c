"""The pure-Python twin of ``_core.pyx``: the same contract with ``os`` and ``select``.

It is the reference (tests run every behaviour against both) and the fallback
where no compiler or wheel exists (``FASTFIFO_NO_EXTENSIONS=1`` selects it).
What the two cores share is written once and run by both: the wire format, the
parser and the claim sizing (``_parse.py``, which this twin runs uncompiled), the
message texts (``_errors.py``), the rules for options (``_open.py``).  The I/O
loops are each core's own.  ``tests/test_backend.py`` checks that both cores have
the same public names and signatures.

This module gathers the twin's parts, laid out as the compiled core's included files:
``_py_clock`` (``_clock.pxi``, ``_posix.h``), ``_py_endpoint``, ``_py_writer``, and the
reader in the same three layers: ``_py_reader_base``, ``_py_claims``, ``_py_reader``
(with MessageBatch, which ``_batch.pxi`` holds in the compiled core).
"""

from __future__ import annotations

from . import _docs
from ._py_clock import (
    BACKEND,
    HAVE_TEE,
    _ofd_held,
    _ofd_lock,
    _tee,
    parse,
    peek,
    sigpipe_is_default,
)
from ._py_reader import BorrowingReaderCore, MessageBatch, ReaderCore
from ._py_writer import BorrowingWriterCore, WriterCore

_docs.apply(WriterCore, ReaderCore)

#: See ATOMIC_MAX in _parse.py.
ATOMIC_MAX: int = parse.ATOMIC_MAX
encode_header = parse.encode_header
count_messages = parse.count_messages

__all__ = [
    "ATOMIC_MAX",
    "BACKEND",
    "HAVE_TEE",
    "BorrowingReaderCore",
    "BorrowingWriterCore",
    "MessageBatch",
    "ReaderCore",
    "WriterCore",
    "_ofd_held",
    "_ofd_lock",
    "_tee",
    "count_messages",
    "encode_header",
    "peek",
    "sigpipe_is_default",
]
