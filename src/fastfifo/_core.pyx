# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The compiled core: receive buffers and the read/write/poll/claim loops.

``_core_py.py`` is its pure-Python twin with the same contract.  What both cores share
is written once: the wire format, the message parser and the claim sizing in
``_parse.py`` (Cython's pure-Python mode: compiled into ``fastfifo._parse``, which this
module cimports; run uncompiled by the twin), the message texts in ``_errors.py`` and
the rules for user options in ``_open.py``.  docs/PROTOCOL.md is the wire format.

One extension module in included files (textual includes keep every cdef call direct):
``_clock.pxi`` (deadlines, SIGPIPE-safe writes), ``_endpoint.pxi`` (fd, wake-up pipe,
call lock), ``_writer.pxi``, ``_batch.pxi`` (receive chunks, MessageBatch), and the
reader in three layers: ``_reader_base.pxi`` (buffer, waiting), ``_claims.pxi`` (shared
readers' claims) and ``_reader.pxi`` (ReaderCore's public calls).  C helpers are in
``_posix.h``, declared in ``_posix.pxd``.

Every fd is non-blocking.  Waiting is always ``poll()`` on the FIFO and on the
endpoint's wake-up pipe, with the GIL released and the timeout recomputed from
a monotonic deadline, so ``close()`` from another thread and Ctrl-C (EINTR,
then ``PyErr_CheckSignals``) both end a wait promptly.
"""

from libc.errno cimport errno, EINTR, EAGAIN, EPIPE, EACCES
from libc.string cimport memchr, memcpy, memmove
from libc.stdlib cimport malloc, realloc, free
from libc.math cimport ceil
from posix.unistd cimport read, write, close
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED
from posix.types cimport sigset_t
from posix.signal cimport sigaction, sigaction_t
from libc.signal cimport SIG_DFL
from cpython.bytes cimport (PyBytes_FromStringAndSize, PyBytes_AS_STRING,
                            PyBytes_GET_SIZE, PyBytes_CheckExact)
from cpython.float cimport PyFloat_CheckExact, PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_CheckExact
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, NOWAIT_LOCK)

from . cimport _posix as px
from ._parse cimport (Parser, HEADER, KIND_WHOLE, KIND_FIRST, KIND_MIDDLE, KIND_LAST,
                      FRAMES, LINES, NEWLINE, GOT, NEED, NO_MEMORY, ATOMIC_MAX, PEEK_OPEN,
                      PEEK_ORDINARY, KIND_MASK, frame_total, free_slots,
                      put_header, put_u64, header_valid, header_length, load_u64, MAGIC)

import os

from . import _docs, _errors as texts
from ._errors import (ClosedError, CorruptStreamError, Full, MessageTooLargeError,
                      not_bytes_error, report_loss)
from ._open import PAGE as _PAGE, check_timeout
from ._parse import check_count
from ._parse import count_messages  # no-cython-lint (for fastfifo.Queue)
from ._parse import encode_header  # no-cython-lint (public: for tests and tools)

#: Whether this build can peek with tee() (Linux); elsewhere shared readers claim by
#: exact reads under the lock.
HAVE_TEE = bool(px.FASTFIFO_HAVE_TEE)

BACKEND = "cython"

#: The pipe slot size (see ``_parse.free_slots``).
cdef Py_ssize_t PAGE = _PAGE


cdef enum Fill:
    # _fill() and _fill_shared(): what a wait for more bytes ended with
    FILLED = 1          # bytes arrived (or a claim was made)
    TIMED_OUT = 0       # the deadline passed first
    AT_EOF = -1         # every writer left (stop_at_eof readers only)

cdef enum Claim:
    # one claim under the readers' lock (_claim_tee, _claim_owed, _claim_exact)
    CLAIMED = 1         # bytes were taken into the buffer
    NOTHING = 0         # the pipe is empty (or the claim would block)
    CLAIM_EOF = -1      # empty, and every writer left
    HEAD_INCOMPLETE = -2    # the head of the pipe is not a whole message yet
    PEEK_WIDER = -4     # _claim_one(): not a case for it; peek a window (_claim_tee)

cdef enum:
    ABANDONED = -3      # _wait_data(): the writer of a half-received message died


# The rest of the module, in order (see the docstring).
include "_clock.pxi"
include "_endpoint.pxi"
include "_writer.pxi"
include "_batch.pxi"
include "_reader_base.pxi"
include "_claims.pxi"
include "_reader.pxi"


_docs.apply(WriterCore, ReaderCore)
