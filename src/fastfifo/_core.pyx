# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The compiled core: frame encoding and decoding, receive buffers and the
read/write/poll loops.  ``_core_py.py`` is its pure-Python twin with the same
contract; docs/PROTOCOL.md is the wire format both speak.

One extension module in included files (textual includes keep every cdef call direct):
``_wire.pxi`` (header format, clock, SIGPIPE-safe writes), ``_endpoint.pxi`` (fd, wake-up
pipe, call lock), ``_writer.pxi``, ``_batch.pxi`` (receive chunks, MessageBatch), and the
reader in three layers: ``_reader_base.pxi`` (buffer, parser, fragments, waiting),
``_claims.pxi`` (shared readers' claims) and ``_reader.pxi`` (ReaderCore's public calls).

Every fd is non-blocking.  Waiting is always ``poll()`` on the FIFO and on the
endpoint's wake-up pipe, with the GIL released and the timeout recomputed from
a monotonic deadline, so ``close()`` from another thread and Ctrl-C (EINTR,
then ``PyErr_CheckSignals``) both end a wait promptly.
"""

from libc.errno cimport errno, EINTR, EAGAIN, EPIPE, EACCES
from libc.string cimport memcpy, memchr, memmove
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport uint8_t, uint32_t
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.math cimport ceil
from posix.unistd cimport read, write, close
from posix.types cimport sigset_t
from posix.signal cimport sigaction, sigaction_t
from libc.signal cimport SIG_DFL
from cpython.bytes cimport (PyBytes_FromStringAndSize, PyBytes_AS_STRING,
                            PyBytes_GET_SIZE, PyBytes_CheckExact)
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, NOWAIT_LOCK)

from . cimport _posix as px

import operator
import os

from ._errors import (ClosedError, CorruptStreamError, Empty, Full, MessageTooLargeError,
                      not_bytes_error, report_loss)

#: Whether this build can peek with tee() (Linux); elsewhere shared readers claim by
#: exact reads under the lock.
HAVE_TEE = bool(px.FASTFIFO_HAVE_TEE)

BACKEND = "cython"

cdef enum:
    HEADER = 8
    MAGIC = 0xFA
    KIND_WHOLE = 0      # a whole message
    KIND_FIRST = 1      # first fragment of a large message: u64 total length, then data
    KIND_MIDDLE = 2
    KIND_LAST = 3
    KIND_MASK = 3
    FRAMES = 0
    LINES = 1
    # _take() results
    GOT = 1
    NEED = 0
    BAD_HEADER = -1
    TOO_LARGE = -2
    NO_MEMORY = -3      # the message is within max_message_size, but malloc failed
    NEWLINE = 10
    # PIPE_BUF on Linux (the only system with tee()): no writer can put a longer frame
    # or line in the pipe atomically, so a shared reader never waits to peek one whole.
    ATOMIC_MAX = 4096


# The rest of the module, in order (see the docstring).
include "_wire.pxi"
include "_endpoint.pxi"
include "_writer.pxi"
include "_batch.pxi"
include "_reader_base.pxi"
include "_claims.pxi"
include "_reader.pxi"
