# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The compiled core: frame encoding and decoding, receive buffers and the
read/write/poll loops.  ``_core_py.py`` is its pure-Python twin with the same
contract; docs/PROTOCOL.md is the wire format both speak.

Every fd is non-blocking.  Waiting is always ``poll()`` on the FIFO and on the
endpoint's wake-up pipe, with the GIL released and the timeout recomputed from
a monotonic deadline, so ``close()`` from another thread and Ctrl-C (EINTR,
then ``PyErr_CheckSignals``) both end a wait promptly.
"""

from libc.errno cimport errno, EINTR, EAGAIN, EPIPE
from libc.string cimport memcpy, memchr, memmove
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport uint8_t, uint32_t
from libc.math cimport ceil
from posix.unistd cimport read, write, close
from posix.types cimport sigset_t
from posix.signal cimport sigaction, sigaction_t
from libc.signal cimport SIG_DFL
from cpython.bytes cimport (PyBytes_FromStringAndSize, PyBytes_AS_STRING,
                            PyBytes_GET_SIZE, PyBytes_CheckExact)
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, NOWAIT_LOCK)

from . cimport _posix as px

import os

from ._errors import ClosedError, CorruptStreamError, Empty, Full, MessageTooLargeError

BACKEND = "cython"

cdef enum:
    HEADER = 8
    MAGIC = 0xFA
    KIND_WHOLE = 0
    FRAMES = 0
    LINES = 1
    # _take() results
    GOT = 1
    NEED = 0
    BAD_HEADER = -1
    TOO_LARGE = -2
    NEWLINE = 10


# ---------------------------------------------------------------- wire format

cdef inline uint32_t header_check(uint32_t flags, uint32_t length) noexcept nogil:
    # 16 bits of a multiplicative hash over flags and length: random bytes pass
    # the magic, flags and check tests about once in 2**30 positions.
    return (((length ^ (flags << 24)) * <uint32_t>0x9E3779B1u) & <uint32_t>0xFFFFFFFFu) >> 16


cdef inline void put_header(uint8_t *p, uint32_t flags, uint32_t length) noexcept nogil:
    cdef uint32_t c = header_check(flags, length)
    p[0] = MAGIC
    p[1] = <uint8_t>flags
    p[2] = <uint8_t>(c & 0xFF)
    p[3] = <uint8_t>(c >> 8)
    p[4] = <uint8_t>(length & 0xFF)
    p[5] = <uint8_t>((length >> 8) & 0xFF)
    p[6] = <uint8_t>((length >> 16) & 0xFF)
    p[7] = <uint8_t>(length >> 24)


cdef inline uint32_t header_length(const uint8_t *p) noexcept nogil:
    return p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16) | (<uint32_t>p[7] << 24)


cdef inline bint header_valid(const uint8_t *p) noexcept nogil:
    if p[0] != MAGIC or p[1] != KIND_WHOLE:
        return False
    cdef uint32_t c = header_check(p[1], header_length(p))
    return p[2] == (c & 0xFF) and p[3] == (c >> 8)


def encode_header(uint32_t flags, uint32_t length):
    """The 8-byte frame header for a payload of ``length`` bytes (for tests and tools)."""
    cdef uint8_t h[HEADER]
    put_header(h, flags, length)
    return PyBytes_FromStringAndSize(<char *>h, HEADER)


# ---------------------------------------------------------------- time and signals

cdef inline double monotonic() noexcept nogil:
    cdef px.timespec ts
    px.clock_gettime(px.CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef double to_deadline(object timeout) except? -2.0:
    """-1.0 means no deadline (block for ever); 0 or more is a monotonic time."""
    if timeout is None:
        return -1.0
    cdef double t = timeout
    if not t >= 0.0:  # also catches NaN
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return monotonic() + t


cdef Py_ssize_t guarded_write(int fd, const char *p, size_t n, int *err) noexcept nogil:
    # SIGPIPE is at SIG_DFL (an embedder, or a child that reset it): block it for
    # this write so EPIPE comes back as an error instead of killing the process,
    # then consume the signal the failed write queued before unblocking.
    cdef sigset_t pipe_only, old
    px.sigemptyset(&pipe_only)
    px.sigaddset(&pipe_only, px.SIGPIPE)
    px.pthread_sigmask(px.SIG_BLOCK, &pipe_only, &old)
    cdef Py_ssize_t r = write(fd, p, n)
    err[0] = errno
    if r < 0 and err[0] == EPIPE and not px.sigismember(&old, px.SIGPIPE):
        px.fastfifo_consume_sigpipe()
    px.pthread_sigmask(px.SIG_SETMASK, &old, NULL)
    return r


def sigpipe_is_default():
    """True when SIGPIPE would kill this process (its disposition is SIG_DFL).

    Asks the kernel, not Python's table: an embedding host may have reset it.
    """
    cdef sigaction_t sa
    sigaction(px.SIGPIPE, NULL, &sa)
    return sa.sa_handler == SIG_DFL


# ---------------------------------------------------------------- endpoint base

cdef class _Endpoint:
    """An fd, a wake-up pipe and a lock that serialises calls from several threads.

    ``close()`` never frees an fd another thread is waiting on: it marks the
    endpoint closing and writes to the wake-up pipe; whichever of ``close()`` and
    the busy call gets the lock last closes the fds (all under the GIL).
    """
    cdef int fd
    cdef int wake_r
    cdef int wake_w
    cdef bint closing
    cdef PyThread_type_lock lock
    cdef readonly object path

    def __cinit__(self, *args, **kwargs):
        self.fd = -1
        self.wake_r = -1
        self.wake_w = -1
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self._close_fds()
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    def _attach(self, int fd, path):
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.fd, self.wake_r, self.wake_w, self.path = fd, r, w, path

    cdef void _close_fds(self) noexcept:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        if self.wake_r >= 0:
            close(self.wake_r)
            self.wake_r = -1
        if self.wake_w >= 0:
            close(self.wake_w)
            self.wake_w = -1

    cdef int _enter(self, double deadline) except -1:
        """Take the call lock; 1 when taken, 0 when the deadline passed first."""
        cdef long long us
        cdef px.PyLockStatus st
        if self.closing:
            self._raise_closed()
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            if deadline < 0:
                us = -1
            else:
                us = <long long>((deadline - monotonic()) * 1e6)
                if us < 0:
                    us = 0
            with nogil:
                st = px.PyThread_acquire_lock_timed(self.lock, us, 0)
            if st != px.PY_LOCK_ACQUIRED:
                return 0
        if self.closing:
            PyThread_release_lock(self.lock)
            self._raise_closed()
        return 1

    cdef void _leave(self) noexcept:
        PyThread_release_lock(self.lock)
        if self.closing and PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            self._close_fds()
            PyThread_release_lock(self.lock)

    cdef int _raise_closed(self) except -1:
        raise ClosedError(f"{type(self).__name__} for {self.path!r} is closed")

    def close(self):
        """Close the endpoint (idempotent); a call blocked in another thread raises ClosedError."""
        cdef char one = b"x"
        self.closing = True
        if self.wake_w >= 0:
            write(self.wake_w, &one, 1)
        if PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            self._close_fds()
            PyThread_release_lock(self.lock)

    @property
    def closed(self):
        """True once ``close()`` was called."""
        return self.closing

    def fileno(self):
        """The FIFO's file descriptor (non-blocking), for ``select``/``poll``/event loops."""
        if self.closing:
            self._raise_closed()
        return self.fd

    cdef int _wait(self, short events, double deadline) except -1:
        """poll() the FIFO for ``events``; its revents, or 0 once the deadline passed."""
        cdef px.pollfd fds[2]
        cdef int ms, r, err
        cdef double left
        while True:
            fds[0].fd = self.fd
            fds[0].events = events
            fds[0].revents = 0
            fds[1].fd = self.wake_r
            fds[1].events = px.POLLIN
            fds[1].revents = 0
            if deadline < 0:
                ms = -1
            else:
                left = deadline - monotonic()
                ms = 0 if left <= 0 else <int>ceil(min(left, 86400.0) * 1000.0)
            with nogil:
                r = px.poll(fds, 2, ms)
                err = errno
            if r < 0:
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise OSError(err, os.strerror(err), self.path)
            if fds[1].revents or (fds[0].revents & px.POLLNVAL):
                self._raise_closed()
            if fds[0].revents:
                return fds[0].revents
            if ms == 0 or (deadline >= 0 and monotonic() >= deadline):
                return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# ---------------------------------------------------------------- writer

cdef class WriterCore(_Endpoint):
    """Frames messages and writes them in atomic (<= PIPE_BUF) writes."""
    cdef int framing
    cdef bint guard
    cdef Py_ssize_t atomic
    cdef char *scratch

    def __dealloc__(self):
        free(self.scratch)

    def _configure(self, int fd, path, int framing, Py_ssize_t atomic, bint guard_sigpipe):
        self.scratch = <char *>malloc(atomic)
        if self.scratch == NULL:
            raise MemoryError()
        self.framing, self.atomic, self.guard = framing, atomic, guard_sigpipe
        self._attach(fd, path)

    @property
    def max_atomic_message(self):
        """The largest message that goes out in one atomic write."""
        return self.atomic - (HEADER if self.framing == FRAMES else 1)

    cdef Py_ssize_t _frame_size(self, const char *p, Py_ssize_t n, Py_ssize_t index) except -1:
        cdef Py_ssize_t total = n + (HEADER if self.framing == FRAMES else 1)
        if total > self.atomic:
            where = "" if index < 0 else f" (message {index} of the batch)"
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {n} bytes{where} does not fit one atomic write: "
                f"the limit is {self.atomic - (total - n)} bytes (PIPE_BUF={self.atomic} minus "
                f"framing); nothing was written. Split the message")
        if self.framing == LINES and memchr(p, NEWLINE, n) != NULL:
            where = "" if index < 0 else f" (message {index} of the batch)"
            raise ValueError(
                f"{self.path!r}: a message{where} contains a newline, which lines framing "
                f"uses as the separator; nothing was written. Use framing='frames' for "
                f"binary data")
        return total

    cdef inline Py_ssize_t _encode(self, char *dst, const char *p, Py_ssize_t n) noexcept:
        if self.framing == FRAMES:
            put_header(<uint8_t *>dst, KIND_WHOLE, <uint32_t>n)
            memcpy(dst + HEADER, p, n)
            return n + HEADER
        memcpy(dst, p, n)
        dst[n] = NEWLINE
        return n + 1

    cdef int _write(self, const char *p, Py_ssize_t n, double deadline) except -1:
        """Write n <= PIPE_BUF bytes in one go; 1 when written, 0 on timeout."""
        cdef Py_ssize_t r
        cdef int err
        while True:
            if self.guard:
                r = guarded_write(self.fd, p, n, &err)
            else:
                r = write(self.fd, p, n)
                err = errno
            if r == n:
                return 1
            if r >= 0:  # a write <= PIPE_BUF is never partial (POSIX); guard anyway
                raise OSError(0, f"short write of {r} of {n} bytes", self.path)
            if err == EAGAIN:
                if self._wait(px.POLLOUT, deadline) == 0:
                    return 0
            elif err == EINTR:
                PyErr_CheckSignals()
            elif err == EPIPE:
                raise BrokenPipeError(
                    EPIPE, "no reader has the FIFO open any more (every reader closed or "
                    "died); the message was not written. Start a reader and reopen the Writer",
                    self.path)
            else:
                raise OSError(err, os.strerror(err), self.path)

    def put(self, data, timeout=None):
        """Write one message (bytes-like) in one atomic write.

        Parameters
        ----------
        data : bytes-like
            The message.  At most ``max_atomic_message`` bytes.
        timeout : float or None
            Seconds to wait while the pipe is full; None waits for ever, 0 never waits.

        Raises
        ------
        Full
            The pipe stayed full until the timeout; nothing was written.
        MessageTooLargeError
            The message does not fit one atomic write; nothing was written.
        BrokenPipeError
            No reader has the FIFO open.
        ClosedError
            The Writer is closed (or was closed by another thread meanwhile).
        """
        cdef Py_buffer view
        cdef double deadline = to_deadline(timeout)
        cdef Py_ssize_t total
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            total = self._frame_size(<char *>view.buf, view.len, -1)
            if not self._enter(deadline):
                raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s")
            try:
                self._encode(self.scratch, <char *>view.buf, view.len)
                if not self._write(self.scratch, total, deadline):
                    raise Full(f"{self.path!r}: the pipe stayed full for {timeout} s "
                               f"(the reader is not keeping up); nothing was written", 0)
            finally:
                self._leave()
        finally:
            PyBuffer_Release(&view)

    def put_many(self, messages, timeout=None):
        """Write many messages, packed into as few atomic writes as possible.

        Every message is checked before anything is written.  Each write holds
        whole messages only, so concurrent writers never split one.

        Raises
        ------
        Full
            The pipe stayed full until the timeout; ``exc.sent`` messages (a
            prefix of the batch) were written, the rest were not.
        MessageTooLargeError, ValueError
            A message is too large (or, in lines framing, holds a newline);
            nothing was written.
        BrokenPipeError, ClosedError
            As for ``put``.
        """
        cdef double deadline = to_deadline(timeout)
        cdef list seq = messages if type(messages) is list else list(messages)
        cdef Py_ssize_t i, n = len(seq), used = 0, size, pending = 0, sent = 0
        cdef Py_buffer view
        cdef object item
        cdef const char *p
        # Pass 1: validate the whole batch so a bad message writes nothing.
        for i in range(n):
            item = seq[i]
            if PyBytes_CheckExact(item):
                self._frame_size(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), i)
            else:
                PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
                try:
                    self._frame_size(<char *>view.buf, view.len, i)
                finally:
                    PyBuffer_Release(&view)
        if n == 0:
            return
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s", 0)
        try:
            for i in range(n):
                item = seq[i]
                if PyBytes_CheckExact(item):
                    p = PyBytes_AS_STRING(item)
                    size = PyBytes_GET_SIZE(item)
                    if used + size + HEADER > self.atomic:
                        if not self._write(self.scratch, used, deadline):
                            raise Full(self._full_message(timeout, sent), sent)
                        sent += pending
                        used = pending = 0
                    used += self._encode(self.scratch + used, p, size)
                else:
                    PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
                    try:
                        if used + view.len + HEADER > self.atomic:
                            if not self._write(self.scratch, used, deadline):
                                raise Full(self._full_message(timeout, sent), sent)
                            sent += pending
                            used = pending = 0
                        used += self._encode(self.scratch + used, <char *>view.buf, view.len)
                    finally:
                        PyBuffer_Release(&view)
                pending += 1
            if not self._write(self.scratch, used, deadline):
                raise Full(self._full_message(timeout, sent), sent)
        finally:
            self._leave()

    def _full_message(self, timeout, sent):
        return (f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not "
                f"keeping up); the first {sent} messages were written, the rest were not")


# ---------------------------------------------------------------- reader

cdef class ReaderCore(_Endpoint):
    """Reads into one growing buffer and parses whole messages out of it."""
    cdef int framing
    cdef bint stop_at_eof
    cdef char *buf
    cdef Py_ssize_t cap, start, end, need
    cdef Py_ssize_t maxmsg
    cdef Py_ssize_t discard   # bytes of an oversized frame still to skip
    cdef bint skip_line       # lines: dropping the rest of an overlong line
    cdef bint resync          # frames: skipping garbage (already reported) to the next header
    cdef bint drained         # the last read() came back short: the pipe was empty then
    cdef readonly unsigned long long skipped_bytes
    cdef readonly unsigned long long dropped_messages

    def __dealloc__(self):
        free(self.buf)

    def _configure(self, int fd, path, int framing, Py_ssize_t max_message_size,
                   Py_ssize_t buffer_size, bint stop_at_eof):
        self.cap = max(buffer_size, 4096)
        self.buf = <char *>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.framing, self.maxmsg, self.stop_at_eof = framing, max_message_size, stop_at_eof
        self._attach(fd, path)

    @property
    def buffered(self):
        """Bytes read from the FIFO and not yet returned as messages."""
        return self.end - self.start

    @property
    def buffer_capacity(self):
        """Bytes the receive buffer holds now (grows only for a frame up to max_message_size)."""
        return self.cap

    cdef object _take(self, int *status):
        """Cut the next message out of the buffer; GOT, NEED or an error code (state unchanged)."""
        cdef Py_ssize_t avail, k, n
        cdef const uint8_t *p
        cdef const char *nl
        cdef uint32_t length
        self.need = 1
        while True:
            avail = self.end - self.start
            if self.discard:
                k = min(self.discard, avail)
                self.start += k
                self.discard -= k
                if self.discard:
                    status[0] = NEED
                    return None
                continue
            p = <const uint8_t *>self.buf + self.start
            if self.framing == FRAMES:
                if avail < HEADER:
                    self.need = HEADER
                    status[0] = NEED
                    return None
                if not header_valid(p):
                    if not self.resync:
                        status[0] = BAD_HEADER
                        return None
                    k = self._scan(self.start + 1)
                    self.skipped_bytes += k - self.start
                    self.start = k
                    continue
                self.resync = False
                length = header_length(p)
                if length > <size_t>self.maxmsg:
                    status[0] = TOO_LARGE
                    return None
                if avail < HEADER + <Py_ssize_t>length:
                    self.need = HEADER + length
                    status[0] = NEED
                    return None
                self.start += HEADER + length
                status[0] = GOT
                return PyBytes_FromStringAndSize(<const char *>p + HEADER, length)
            nl = <const char *>memchr(p, NEWLINE, avail)
            if self.skip_line:
                if nl == NULL:
                    self.start = self.end
                    status[0] = NEED
                    return None
                self.start = nl + 1 - self.buf
                self.skip_line = False
                continue
            if nl == NULL:
                if avail > self.maxmsg:
                    status[0] = TOO_LARGE
                    return None
                self.need = avail + 1
                status[0] = NEED
                return None
            n = nl - <const char *>p
            if n > self.maxmsg:
                status[0] = TOO_LARGE
                return None
            self.start += n + 1
            status[0] = GOT
            return PyBytes_FromStringAndSize(<const char *>p, n)

    cdef Py_ssize_t _scan(self, Py_ssize_t i) noexcept:
        """First offset >= i that may start a valid header (end of buffer if none)."""
        cdef const char *m
        while i < self.end:
            m = <const char *>memchr(self.buf + i, MAGIC, self.end - i)
            if m == NULL:
                return self.end
            i = m - self.buf
            if self.end - i < HEADER or header_valid(<const uint8_t *>m):
                return i
            i += 1
        return self.end

    cdef int _raise_bad(self, int status) except -1:
        """Skip past the bad bytes at the head of the buffer and raise about them."""
        cdef Py_ssize_t k, n
        cdef const char *nl
        if status == BAD_HEADER:
            k = self._scan(self.start + 1)
            n = k - self.start
            head = PyBytes_FromStringAndSize(self.buf + self.start, min(n, 16))
            self.start = k
            self.skipped_bytes += n
            self.resync = True
            raise CorruptStreamError(
                f"{self.path!r}: skipped {n} bytes that are not fastfifo frames (they start "
                f"{head!r}): a foreign or corrupt writer, or a lines peer writing into a "
                f"frames FIFO. Valid messages after them are still delivered", n)
        self.dropped_messages += 1
        if self.framing == FRAMES:
            n = header_length(<const uint8_t *>self.buf + self.start)
            self.start += HEADER
            self.discard = n
        else:
            nl = <const char *>memchr(self.buf + self.start, NEWLINE, self.end - self.start)
            if nl == NULL:
                n = self.end - self.start
                self.start = self.end
                self.skip_line = True
            else:
                n = nl - (self.buf + self.start)
                self.start = nl + 1 - self.buf
        raise MessageTooLargeError(
            f"{self.path!r}: a message of {'at least ' if self.framing == LINES else ''}{n} "
            f"bytes exceeds max_message_size={self.maxmsg}; it was discarded and the "
            f"messages after it are still delivered (raise max_message_size to receive it)")

    cdef int _fill(self, double deadline) except -2:
        """Read more bytes: 1 when some arrived, 0 on timeout, -1 at end of stream."""
        cdef Py_ssize_t r, live = self.end - self.start
        cdef int err, rev
        if live == 0:
            self.start = self.end = 0
        elif self.start and (self.cap - self.end < 65536 or self.cap - self.start < self.need):
            memmove(self.buf, self.buf + self.start, live)
            self.start, self.end = 0, live
        if self.need > self.cap:
            self._grow(self.need)
        if self.drained:
            # The pipe was empty at the last read: a read now would most likely be
            # EAGAIN, so poll first.  Two syscalls per wake-up instead of three is
            # what lets one reader keep up with a writer making one write per message.
            if self._wait(px.POLLIN, deadline) == 0:
                return 0
        while True:
            with nogil:
                r = read(self.fd, self.buf + self.end, self.cap - self.end)
                err = errno
            if r > 0:
                self.drained = r < self.cap - self.end
                self.end += r
                return 1
            if r == 0:
                # No writer has the FIFO open (only O_RDONLY readers see this).  A
                # reader that has not met a writer yet reads 0 too, but poll() shows
                # no POLLHUP until a writer came and left (fs/pipe.c suppresses it).
                rev = self._wait(px.POLLIN, 0.0)
                if rev & px.POLLIN:
                    continue
                if rev & px.POLLHUP:
                    return -1
                if self._wait(px.POLLIN, deadline) == 0:
                    return 0
            elif err == EAGAIN:
                if self._wait(px.POLLIN, deadline) == 0:
                    return 0
            elif err == EINTR:
                PyErr_CheckSignals()
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef int _grow(self, Py_ssize_t size) except -1:
        cdef char *nb = <char *>realloc(self.buf, size)
        if nb == NULL:
            raise MemoryError()
        self.buf, self.cap = nb, size
        return 0

    cdef object _end_of_stream(self):
        """Every writer left: hand out a last unterminated line, or report a cut frame."""
        cdef Py_ssize_t n = self.end - self.start
        if n and not self.discard and not self.skip_line:
            self.start = self.end
            if self.framing == LINES:
                return PyBytes_FromStringAndSize(self.buf + self.end - n, n)
            self.skipped_bytes += n
            raise CorruptStreamError(
                f"{self.path!r}: the last writer left in the middle of a frame; its "
                f"{n} bytes were dropped", n)
        self.start = self.end
        self.discard = 0
        self.skip_line = False
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    def get(self, timeout=None):
        """Return the next message as bytes.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait; None waits for ever, 0 never waits.

        Raises
        ------
        Empty
            No message arrived before the timeout.
        EOFError
            With ``stop_at_eof=True``: every writer has closed the FIFO.
        CorruptStreamError, MessageTooLargeError
            Bad bytes or an oversized message were skipped; the next call goes on.
        ClosedError
            The Reader is closed (or was closed by another thread meanwhile).
        """
        cdef double deadline = to_deadline(timeout)
        cdef int status, r
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            while True:
                msg = self._take(&status)
                if status == GOT:
                    return msg
                if status < 0:
                    self._raise_bad(status)
                r = self._fill(deadline)
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return self._end_of_stream()
        finally:
            self._leave()

    def get_many(self, Py_ssize_t max_messages=1000, timeout=None):
        """Return a list of 1 to ``max_messages`` messages.

        Waits (up to ``timeout``) only while no message is available; then takes
        every whole message already read plus at most one more read's worth.

        Raises
        ------
        Empty, EOFError, CorruptStreamError, MessageTooLargeError, ClosedError
            As for ``get``; an error found after some messages were collected is
            raised by the next call instead, so no message is lost to it.
        """
        cdef double deadline = to_deadline(timeout)
        cdef int status = NEED, r
        cdef bint read_more = True
        cdef list out = []
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            while True:
                while len(out) < max_messages:
                    msg = self._take(&status)
                    if status != GOT:
                        break
                    out.append(msg)
                if len(out) >= max_messages:
                    return out
                if out:
                    if status < 0 or not read_more:
                        return out
                    read_more = False
                    # One more read without waiting, unless the last read found the
                    # pipe empty (then it is most likely still empty: skip the syscall).
                    if self.drained or self._fill(0.0) <= 0:
                        return out
                    continue
                if status < 0:
                    self._raise_bad(status)
                r = self._fill(deadline)
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return [self._end_of_stream()]
        finally:
            self._leave()

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.get()
        except (EOFError, ClosedError):
            raise StopIteration
