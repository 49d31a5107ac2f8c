# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The compiled core: frame encoding and decoding, receive buffers and the
read/write/poll loops.  ``_core_py.py`` is its pure-Python twin with the same
contract; docs/PROTOCOL.md is the wire format both speak.

Every fd is non-blocking.  Waiting is always ``poll()`` on the FIFO and on the
endpoint's wake-up pipe, with the GIL released and the timeout recomputed from
a monotonic deadline, so ``close()`` from another thread and Ctrl-C (EINTR,
then ``PyErr_CheckSignals``) both end a wait promptly.
"""

from libc.errno cimport errno, EINTR, EAGAIN, EPIPE, EACCES
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
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, NOWAIT_LOCK)

from . cimport _posix as px

import os
import warnings

from ._errors import (ClosedError, CorruptStreamError, Empty, Full, IncompleteMessageWarning,
                      MessageTooLargeError)

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
    NEWLINE = 10
    # PIPE_BUF on Linux (the only system with tee()): no writer can put a longer frame
    # or line in the pipe atomically, so a shared reader never waits to peek one whole.
    ATOMIC_MAX = 4096


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


cdef inline unsigned long long load_u64(const uint8_t *p) noexcept nogil:
    cdef unsigned long long v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | p[i]
    return v


cdef inline void store_u64(uint8_t *p, unsigned long long v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <uint8_t>(v & 0xFF)
        v >>= 8


cdef inline bint header_valid(const uint8_t *p) noexcept nogil:
    if p[0] != MAGIC or (p[1] & ~KIND_MASK):
        return False
    cdef uint32_t c = header_check(p[1], header_length(p))
    return p[2] == (c & 0xFF) and p[3] == (c >> 8)


cdef inline bint header_usable(const uint8_t *p) noexcept nogil:
    """A valid header the parser does not refuse as bad (a fragment is one atomic write)."""
    cdef uint32_t length
    if not header_valid(p):
        return False
    length = header_length(p)
    if (p[1] & KIND_MASK) == KIND_WHOLE:
        return True
    return length <= 65536 and ((p[1] & KIND_MASK) != KIND_FIRST or length >= 8)


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
    cdef object closed_reason

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
        raise ClosedError(f"{type(self).__name__} for {self.path!r} is closed"
                          + (f" ({self.closed_reason})" if self.closed_reason else ""))

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

    cdef int _lock_wait(self, int fd, bint ofd, double deadline) except -1:
        """Take flock(LOCK_EX) (ofd false) or the OFD write lock on byte 0 of ``fd``.

        1 when taken, 0 when the deadline passed first.  Never a blocking lock call:
        a few yields first (claims hold the lock for microseconds), then sleeps of
        25 us to 2 ms in ppoll() on the wake-up pipe, so close() and timeouts still work
        while another process holds the lock through a large message.
        """
        cdef int r, err, spins = 0
        cdef long us = 0
        cdef double left
        while True:
            with nogil:
                if ofd:
                    r = px.fastfifo_ofd_lock(fd, px.F_WRLCK)
                else:
                    r = px.flock(fd, px.LOCK_EX | px.LOCK_NB)
                err = errno
            if r == 0:
                return 1
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if err != EAGAIN and err != EACCES:  # EWOULDBLOCK == EAGAIN on Linux and macOS
                raise OSError(err, f"{os.strerror(err)} (taking the "
                              f"{'writer' if ofd else 'reader'} lock)", self.path)
            if deadline >= 0 and monotonic() >= deadline:
                return 0
            if spins < 20:
                spins += 1
                with nogil:
                    px.sched_yield()
                continue
            # The holder is descheduled (more processes than cores) or receiving a
            # large message: sleep 25 us doubling to 2 ms, woken early by close().
            us = 25 if us == 0 else min(us * 2, 2000)
            if deadline >= 0:
                left = deadline - monotonic()
                us = max(1, min(us, <int>(left * 1e6) + 1))
            with nogil:
                r = px.fastfifo_sleep_on(self.wake_r, us)
            if r > 0:
                self._raise_closed()

    cdef void _unlock(self, int fd, bint ofd) noexcept:
        if ofd:
            px.fastfifo_ofd_lock(fd, px.F_UNLCK)
        else:
            px.flock(fd, px.LOCK_UN)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# ---------------------------------------------------------------- writer

cdef class WriterCore(_Endpoint):
    """Frames messages and writes them in atomic (<= PIPE_BUF) writes.

    A message too large for one atomic write (frames framing only) goes out as
    fragments, each one atomic write, under the writers' lock so that no two
    large messages interleave; small messages from other writers may still fall
    between the fragments, and readers reassemble around them.
    """
    cdef int framing
    cdef bint guard
    cdef Py_ssize_t atomic
    cdef Py_ssize_t maxmsg
    cdef int lock_fd
    cdef bint lock_ofd
    cdef char *scratch
    cdef bint buffered        # put() packs into scratch; flush() (or a full scratch) writes
    cdef Py_ssize_t pend_bytes, pend_msgs

    def __cinit__(self, *args, **kwargs):
        self.lock_fd = -1

    def __dealloc__(self):
        cdef int err
        if self.pend_bytes and self.fd >= 0:
            # Never closed: a last non-blocking try for what put() buffered (a file
            # flushes on deallocation too); if the pipe is full it is lost.
            guarded_write(self.fd, self.scratch, self.pend_bytes, &err)
        free(self.scratch)

    cdef void _close_fds(self) noexcept:
        if self.lock_fd >= 0 and self.lock_fd != self.fd:
            close(self.lock_fd)
        self.lock_fd = -1
        _Endpoint._close_fds(self)

    def _configure(self, int fd, path, int framing, Py_ssize_t atomic, bint guard_sigpipe,
                   Py_ssize_t max_message_size, int lock_fd, bint lock_ofd,
                   bint buffered=False):
        self.buffered = buffered
        self.scratch = <char *>malloc(atomic)
        if self.scratch == NULL:
            raise MemoryError()
        # Attach first: if it fails, no fd number is recorded, so deallocation can never
        # close a number the caller already closed (and someone else may have reused).
        self._attach(fd, path)
        self.framing, self.atomic, self.guard = framing, atomic, guard_sigpipe
        self.maxmsg, self.lock_fd, self.lock_ofd = max_message_size, lock_fd, lock_ofd

    @property
    def max_atomic_message(self):
        """The largest message that goes out in one atomic write."""
        return self.atomic - (HEADER if self.framing == FRAMES else 1)

    cdef Py_ssize_t _frame_size(self, const char *p, Py_ssize_t n, Py_ssize_t index) except -1:
        """Bytes of the encoded message when it fits one atomic write, else 0 (fragments)."""
        cdef Py_ssize_t total = n + (HEADER if self.framing == FRAMES else 1)
        if total > self.atomic and (self.framing == LINES or n > self.maxmsg):
            where = "" if index < 0 else f" (message {index} of the batch)"
            if self.framing == LINES:
                limit = (f"lines framing sends each line in one atomic write, so the limit "
                         f"is {self.atomic - 1} bytes (PIPE_BUF={self.atomic}); use "
                         f"framing='frames' for larger messages")
            else:
                limit = f"the limit is max_message_size={self.maxmsg}"
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {n} bytes{where} is too large: {limit}; "
                f"nothing was written")
        if self.framing == LINES and memchr(p, NEWLINE, n) != NULL:
            where = "" if index < 0 else f" (message {index} of the batch)"
            raise ValueError(
                f"{self.path!r}: a message{where} contains a newline, which lines framing "
                f"uses as the separator; nothing was written. Use framing='frames' for "
                f"binary data")
        return total if total <= self.atomic else 0

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

    cdef int _write_large(self, const char *p, Py_ssize_t n, double deadline, timeout) except -1:
        """Send one message as FIRST, MIDDLE..., LAST fragments under the writers' lock."""
        cdef Py_ssize_t off = 0, chunk
        cdef uint8_t *h = <uint8_t *>self.scratch
        cdef int kind
        if not self._lock_wait(self.lock_fd, self.lock_ofd, deadline):
            raise Full(f"{self.path!r}: another writer held the large-message lock for "
                       f"{timeout} s; nothing was written", 0)
        try:
            chunk = min(n, self.atomic - 2 * HEADER)
            put_header(h, KIND_FIRST, <uint32_t>(chunk + 8))
            store_u64(h + HEADER, <unsigned long long>n)
            memcpy(self.scratch + 2 * HEADER, p, chunk)
            while True:
                if not self._write(self.scratch, HEADER + (8 if off == 0 else 0) + chunk,
                                   deadline):
                    raise Full(
                        f"{self.path!r}: the pipe stayed full for {timeout} s after "
                        f"{off} of {n} bytes of a large message; the message was not "
                        f"delivered (readers drop the part they got, with an "
                        f"IncompleteMessageWarning)", 0)
                off += chunk
                if off == n:
                    return 1
                chunk = min(n - off, self.atomic - HEADER)
                kind = KIND_LAST if off + chunk == n else KIND_MIDDLE
                put_header(h, kind, <uint32_t>chunk)
                memcpy(self.scratch + HEADER, p + off, chunk)
        finally:
            self._unlock(self.lock_fd, self.lock_ofd)

    def put(self, data, timeout=None):
        """Write one message (bytes-like).

        A message up to ``max_atomic_message`` bytes goes out in one atomic
        write; a larger one (frames framing, up to ``max_message_size``) as
        fragments under the writers' lock.  With ``buffered=True`` small
        messages are packed into the Writer's buffer and written, a full atomic
        write at a time, when it fills or on ``flush()``/``close()``.

        Parameters
        ----------
        data : bytes-like
            The message.
        timeout : float or None
            Seconds to wait while the pipe is full (or another writer holds the
            large-message lock); None waits for ever, 0 never waits.

        Raises
        ------
        Full
            The pipe stayed full until the timeout; this message was not taken.
        MessageTooLargeError
            Larger than ``max_message_size`` (or, in lines framing, than one atomic
            write); nothing was written.
        BrokenPipeError
            No reader has the FIFO open.
        ClosedError
            The Writer is closed (or was closed by another thread meanwhile).
        """
        cdef Py_buffer view
        cdef double deadline = to_deadline(timeout)
        if PyBytes_CheckExact(data):
            self._put(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), deadline, timeout)
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._put(<char *>view.buf, view.len, deadline, timeout)
        finally:
            PyBuffer_Release(&view)

    cdef int _put(self, const char *p, Py_ssize_t n, double deadline, timeout) except -1:
        cdef Py_ssize_t total = self._frame_size(p, n, -1)
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s")
        try:
            if total == 0:
                if self.pend_bytes and not self._flush(deadline):
                    raise Full(self._pending_message(timeout))
                self._write_large(p, n, deadline, timeout)
            elif self.buffered:
                if self.pend_bytes + total > self.atomic:
                    if not self._flush(deadline):
                        raise Full(self._pending_message(timeout))
                self.pend_bytes += self._encode(self.scratch + self.pend_bytes, p, n)
                self.pend_msgs += 1
            else:
                self._encode(self.scratch, p, n)
                if not self._write(self.scratch, total, deadline):
                    raise Full(f"{self.path!r}: the pipe stayed full for {timeout} s "
                               f"(the reader is not keeping up); nothing was written", 0)
        finally:
            self._leave()
        return 0

    cdef int _flush(self, double deadline) except -1:
        """Write the buffered messages (one atomic write); 1 when done, 0 on timeout."""
        if self.pend_bytes and not self._write(self.scratch, self.pend_bytes, deadline):
            return 0
        self.pend_bytes = self.pend_msgs = 0
        return 1

    def _pending_message(self, timeout):
        return (f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not "
                f"keeping up); {self.pend_msgs} earlier messages are still buffered and "
                f"this one was not taken")

    def flush(self, timeout=None):
        """Write the messages ``put()`` buffered (``buffered=True``); a no-op otherwise.

        Raises
        ------
        Full
            The pipe stayed full until the timeout; the messages stay buffered.
        BrokenPipeError, ClosedError
            As for ``put``.
        """
        cdef double deadline = to_deadline(timeout)
        if not self._enter(deadline):
            raise Full(f"{self.path!r}: another thread held the Writer for {timeout} s")
        try:
            if not self._flush(deadline):
                raise Full(f"{self.path!r}: the pipe stayed full for {timeout} s; "
                           f"{self.pend_msgs} messages are still buffered", 0)
        finally:
            self._leave()

    @property
    def pending(self):
        """Messages buffered by ``put()`` and not yet written (``buffered=True``)."""
        return self.pend_msgs

    def _flush_if_idle(self):
        """close(): flush, waiting as needed, unless another thread is inside a call.

        That thread may be blocked on a full pipe, and close() must wake it rather
        than wait behind it; its buffered messages are then not sent.
        """
        if self.closing or not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            return False
        try:
            self._flush(-1.0)
        finally:
            PyThread_release_lock(self.lock)
        return True

    def _after_fork_in_child(self):
        """After fork(): the open file description (and its large-message lock) and any
        buffered messages are the parent's.  Two processes sharing one description would
        share one lock, so their large messages could mix: the child's copy is closed.
        (No wake-up byte: the wake-up pipe is shared with the parent too.)
        """
        self.pend_bytes = self.pend_msgs = 0
        self.closing = True
        self.closed_reason = "it was opened before fork(); open a new Writer in this process"
        self._close_fds()

    def put_many(self, messages, timeout=None):
        """Write many messages, packed into as few atomic writes as possible.

        Every message is checked before anything is written.  Each write holds
        whole messages only, so concurrent writers never split one; messages
        larger than one atomic write go out as fragments (see ``put``).

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
        cdef Py_ssize_t i, n = len(seq), used = 0, pending = 0, sent = 0
        cdef Py_buffer view
        cdef object item
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
            if self.pend_bytes and not self._flush(deadline):
                raise Full(self._pending_message(timeout), 0)
            for i in range(n):
                item = seq[i]
                if PyBytes_CheckExact(item):
                    self._pack(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), &used,
                               &pending, &sent, deadline, timeout)
                else:
                    PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
                    try:
                        self._pack(<char *>view.buf, view.len, &used, &pending, &sent,
                                   deadline, timeout)
                    finally:
                        PyBuffer_Release(&view)
            if used and not self._write(self.scratch, used, deadline):
                raise Full(self._full_message(timeout, sent), sent)
        finally:
            self._leave()

    cdef int _pack(self, const char *p, Py_ssize_t size, Py_ssize_t *used,
                   Py_ssize_t *pending, Py_ssize_t *sent, double deadline, timeout) except -1:
        """Add one message to the batch in scratch, flushing whole writes as it fills."""
        cdef Py_ssize_t total = size + (HEADER if self.framing == FRAMES else 1)
        if used[0] + total > self.atomic:
            if used[0] and not self._write(self.scratch, used[0], deadline):
                raise Full(self._full_message(timeout, sent[0]), sent[0])
            sent[0] += pending[0]
            used[0] = pending[0] = 0
        if total > self.atomic:
            try:
                self._write_large(p, size, deadline, timeout)
            except Full as e:
                raise Full(f"{e} ({self._full_message(timeout, sent[0])})", sent[0])
            sent[0] += 1
            return 0
        used[0] += self._encode(self.scratch + used[0], p, size)
        pending[0] += 1
        return 0

    def _full_message(self, timeout, sent):
        return (f"{self.path!r}: the pipe stayed full for {timeout} s (the reader is not "
                f"keeping up); the first {sent} messages were written, the rest were not")


# ---------------------------------------------------------------- reader

cdef class _Chunk:
    """A receive buffer that counts its exports (read-only views handed to users).

    While any view is alive the Reader never moves, reuses or frees these bytes:
    it switches to a fresh chunk instead, and this one is freed with its last view.
    """
    cdef char *data
    cdef Py_ssize_t size
    cdef Py_ssize_t exports

    def __cinit__(self, Py_ssize_t size):
        self.data = <char *>malloc(size)
        if self.data == NULL:
            raise MemoryError()
        self.size = size

    def __dealloc__(self):
        free(self.data)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.data, self.size, 1, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1


cdef class MessageBatch:
    """Messages from ``Reader.get_batch()``, received without copying them.

    ``batch[i]`` and iteration give read-only memoryviews into the Reader's
    receive buffer, made only when asked for.  The bytes stay valid and unchanged
    while the batch (or any view from it) is alive: the Reader reads into a fresh
    buffer meanwhile.  ``tolist()`` copies them out as bytes.
    """
    cdef _Chunk chunk
    cdef Py_ssize_t n, room
    cdef Py_ssize_t *offs
    cdef Py_ssize_t *lens
    cdef dict whole           # index -> bytes for messages that arrived in fragments
    cdef object base

    def __dealloc__(self):
        free(self.offs)
        free(self.lens)
        if self.chunk is not None:
            self.chunk.exports -= 1

    cdef int _reserve(self) except -1:
        cdef Py_ssize_t *o
        cdef Py_ssize_t *ln
        if self.n < self.room:
            return 0
        self.room = max(64, self.room * 2)
        o = <Py_ssize_t *>realloc(self.offs, self.room * sizeof(Py_ssize_t))
        if o == NULL:
            raise MemoryError()
        self.offs = o
        ln = <Py_ssize_t *>realloc(self.lens, self.room * sizeof(Py_ssize_t))
        if ln == NULL:
            raise MemoryError()
        self.lens = ln
        return 0

    cdef int _add(self, _Chunk chunk, Py_ssize_t off, Py_ssize_t length) except -1:
        if self.chunk is None:
            self.chunk = chunk
            chunk.exports += 1
        elif self.chunk is not chunk:  # _get_many never lets the buffer move mid-batch
            raise RuntimeError("fastfifo internal error: a batch spans two buffers")
        self._reserve()
        self.offs[self.n] = off
        self.lens[self.n] = length
        self.n += 1
        return 0

    cdef int _add_bytes(self, object msg) except -1:
        if self.whole is None:
            self.whole = {}
        self._reserve()
        self.whole[self.n] = msg
        self.offs[self.n] = self.lens[self.n] = 0
        self.n += 1
        return 0

    def __len__(self):
        return self.n

    def __getitem__(self, Py_ssize_t i):
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("MessageBatch index out of range")
        if self.whole is not None and i in self.whole:
            return memoryview(self.whole[i])
        if self.base is None:
            self.base = memoryview(self.chunk)
        return self.base[self.offs[i]:self.offs[i] + self.lens[i]]

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            yield self[i]

    def tolist(self):
        """The messages as a list of bytes (copies)."""
        cdef Py_ssize_t i
        return [bytes(self[i]) for i in range(self.n)]

    def __repr__(self):
        return f"<fastfifo.MessageBatch of {self.n} messages>"


cdef class ReaderCore(_Endpoint):
    """Reads into one growing buffer and cuts whole messages out of it.

    Shared mode (several reader processes on one FIFO, each message to exactly one):
    a reader takes the readers' flock, peeks at the head of the pipe with tee()
    (nothing is consumed), finds where whole frames end, consumes exactly those
    bytes with splice() to /dev/null, and unlocks.  A reader killed at any point
    before the splice consumed nothing; after it, it holds only its claim.  Without
    tee() (macOS) the claim is one message read exactly (header, then payload).
    """
    cdef int framing
    cdef bint stop_at_eof
    cdef _Chunk chunk         # owns buf; replaced (not overwritten) while views are alive
    cdef char *buf
    cdef Py_ssize_t cap, start, end, need
    cdef MessageBatch batch   # inside get_batch(): record offsets instead of copying
    cdef Py_ssize_t maxmsg
    cdef Py_ssize_t discard   # bytes of an oversized frame still to skip
    cdef bint skip_line       # lines: dropping the rest of an overlong line
    cdef bint resync          # frames: skipping garbage (already reported) to the next header
    cdef bint drained         # the last read() came back short: the pipe was empty then
    # a large message being reassembled from its fragments
    cdef object asm           # the bytes object being filled, or None
    cdef Py_ssize_t asm_total, asm_have
    cdef bint asm_skip        # dropping the fragments of a message that is not delivered
    cdef bint orphan          # inside fragments whose first one this reader never got
    cdef list late_warnings   # drops found mid-call, reported at the next safe point
    # shared readers
    cdef bint shared, use_tee, locked, in_msg
    cdef Py_ssize_t owe       # bytes at the pipe's head that finish a unit this reader began
    cdef int rlock_fd, wlock_fd, peek_r, peek_w, null_fd
    cdef bint wlock_ofd
    cdef Py_ssize_t window, claim_max
    cdef readonly unsigned long long skipped_bytes
    cdef readonly unsigned long long dropped_messages

    def __cinit__(self, *args, **kwargs):
        self.rlock_fd = self.wlock_fd = self.peek_r = self.peek_w = self.null_fd = -1
        self.late_warnings = []

    def _configure(self, int fd, path, int framing, Py_ssize_t max_message_size,
                   Py_ssize_t buffer_size, bint stop_at_eof, int wlock_fd=-1,
                   bint wlock_ofd=True):
        self.chunk = _Chunk(max(buffer_size, 4096))
        self.buf, self.cap = self.chunk.data, self.chunk.size
        self._attach(fd, path)  # first: see WriterCore._configure
        self.framing, self.maxmsg, self.stop_at_eof = framing, max_message_size, stop_at_eof
        self.wlock_fd = fd if wlock_fd < 0 else wlock_fd
        self.wlock_ofd = wlock_ofd

    def _share(self, int rlock_fd, int peek_r, int peek_w, int null_fd, Py_ssize_t window,
               bint use_tee):
        """Switch to shared mode; the fds are owned (and closed) by the caller's close()."""
        self.shared, self.rlock_fd, self.use_tee = True, rlock_fd, use_tee
        self.peek_r, self.peek_w, self.null_fd, self.window = peek_r, peek_w, null_fd, window
        if self.cap < window + 65536:
            self._grow(window + 65536)

    def _after_fork_in_child(self):
        """After fork(): the open file descriptions (and any lock) are the parent's.

        Two processes reading through one description would split messages, and
        flock() does not exclude them from each other, so the child's copy is closed.
        """
        self.locked = False
        self.closing = True
        self.closed_reason = "it was opened before fork(); open a new Reader in this process"
        self._close_fds()

    cdef void _close_fds(self) noexcept:
        cdef int fd
        for fd in (self.peek_r, self.peek_w, self.null_fd):
            if fd >= 0:
                close(fd)
        if self.rlock_fd >= 0 and self.rlock_fd != self.fd:
            close(self.rlock_fd)
        if self.wlock_fd >= 0 and self.wlock_fd != self.fd:
            close(self.wlock_fd)
        self.peek_r = self.peek_w = self.null_fd = self.rlock_fd = self.wlock_fd = -1
        _Endpoint._close_fds(self)

    @property
    def buffered(self):
        """Bytes read from the FIFO and not yet returned as messages."""
        return self.end - self.start

    @property
    def buffer_capacity(self):
        """Bytes the receive buffer holds now (grows only for a frame up to max_message_size)."""
        return self.cap

    # ------------------------------------------------------------ parsing

    cdef object _take(self, int *status):
        """Cut the next message out of the buffer; GOT, NEED or an error code (state unchanged)."""
        cdef Py_ssize_t avail, k, n
        cdef const uint8_t *p
        cdef const char *nl
        cdef uint32_t length
        cdef int kind
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
                kind = p[1] & KIND_MASK
                if kind == KIND_WHOLE:
                    if length > <size_t>self.maxmsg:
                        status[0] = TOO_LARGE
                        return None
                    if avail < HEADER + <Py_ssize_t>length:
                        self.need = HEADER + length
                        status[0] = NEED
                        return None
                    self.start += HEADER + length
                    status[0] = GOT
                    if self.batch is not None:
                        self.batch._add(self.chunk, self.start - length, length)
                        return True
                    return PyBytes_FromStringAndSize(<const char *>p + HEADER, length)
                # A fragment is one atomic write: never larger than a pipe page.
                if length > 65536 or (kind == KIND_FIRST and length < 8):
                    status[0] = BAD_HEADER
                    return None
                if avail < HEADER + <Py_ssize_t>length:
                    self.need = HEADER + length
                    status[0] = NEED
                    return None
                if kind == KIND_FIRST and load_u64(p + HEADER) > <unsigned long long>self.maxmsg:
                    status[0] = TOO_LARGE
                    return None
                msg = self._fragment(kind, p + HEADER, length)
                self.start += HEADER + length
                if msg is not None:
                    status[0] = GOT
                    return msg
                continue
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
            if self.batch is not None:
                self.batch._add(self.chunk, self.start - n - 1, n)
                return True
            return PyBytes_FromStringAndSize(<const char *>p, n)

    cdef object _fragment(self, int kind, const uint8_t *data, uint32_t length):
        """Fold one fragment into the message being reassembled; the message when complete."""
        cdef unsigned long long total
        if kind == KIND_FIRST:
            if self.asm is not None or self.asm_skip:
                self._drop_partial("a new large message began before it ended (its writer "
                                   "died or gave up part-way)")
            self.orphan = False
            total = load_u64(data)
            if length - 8 > total:
                self._drop_partial("its first fragment is longer than the whole it announces")
                self.asm_skip = True
                return None
            self.asm = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)
            self.asm_total, self.asm_have = total, length - 8
            memcpy(PyBytes_AS_STRING(self.asm), data + 8, length - 8)
            return None
        if self.asm is None:
            if not self.asm_skip and not self.orphan:
                self.orphan = True
                self._drop_partial("this reader got fragments of a large message whose "
                                   "beginning went to another reader that then died, or was "
                                   "sent before this reader opened")
            if kind == KIND_LAST:
                self.asm_skip = self.orphan = False
            return None
        if self.asm_have + length > self.asm_total:
            self._drop_partial("its fragments add up to more than it announced")
            self.asm_skip = kind != KIND_LAST
            return None
        memcpy(PyBytes_AS_STRING(self.asm) + self.asm_have, data, length)
        self.asm_have += length
        if kind == KIND_MIDDLE:
            return None
        if self.asm_have != self.asm_total:
            self._drop_partial("its fragments add up to less than it announced")
            return None
        msg, self.asm = self.asm, None
        return msg

    cdef void _drop_partial(self, reason):
        self.dropped_messages += 1
        if self.asm is not None:
            what = f"a large message ({self.asm_have} of {self.asm_total} bytes received)"
        else:
            what = "an incomplete large message"
        self.asm = None
        self.asm_skip = False
        self.late_warnings.append(f"{self.path!r}: dropped {what}: {reason}")

    cdef int _report_drops(self) except -1:
        """Issue the warnings for drops found earlier; only where no message is in hand."""
        cdef list pending = self.late_warnings
        if pending:
            self.late_warnings = []
            for text in pending:
                warnings.warn(text, IncompleteMessageWarning, stacklevel=3)
        return 0

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
        cdef const uint8_t *p = <const uint8_t *>self.buf + self.start
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
            if (p[1] & KIND_MASK) == KIND_FIRST:
                if self.asm is not None or self.asm_skip:
                    self._drop_partial("a new large message began before it ended")
                n = <Py_ssize_t>load_u64(p + HEADER)
                self.start += HEADER + header_length(p)
                self.asm_skip = True
            else:
                n = header_length(p)
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

    # ------------------------------------------------------------ reading

    cdef int _make_room(self, Py_ssize_t want) except -1:
        """Room for ``want`` more bytes after ``end`` (compacting first, growing if needed)."""
        cdef Py_ssize_t live = self.end - self.start
        if self.chunk.exports:
            # Views point below ``start``: append after ``end`` while there is room,
            # and move to a fresh chunk only when the bytes would have to move.
            if self.cap - self.end < want:
                self._new_chunk(max(self.cap, live + want))
            return 0
        if live == 0:
            self.start = self.end = 0
        elif self.start and self.cap - self.end < want:
            memmove(self.buf, self.buf + self.start, live)
            self.start, self.end = 0, live
        if self.cap - self.end < want:
            self._grow(self.end + want)
        return 0

    cdef int _new_chunk(self, Py_ssize_t size) except -1:
        """Move the unparsed bytes to a fresh chunk; the old one lives on with its views."""
        cdef Py_ssize_t live = self.end - self.start
        cdef _Chunk fresh = _Chunk(max(size, live))
        memcpy(fresh.data, self.buf + self.start, live)
        self.chunk, self.buf, self.cap = fresh, fresh.data, fresh.size
        self.start, self.end = 0, live
        return 0

    cdef int _grow(self, Py_ssize_t size) except -1:
        cdef char *nb
        if self.chunk.exports:
            return self._new_chunk(size)
        nb = <char *>realloc(self.chunk.data, size)
        if nb == NULL:
            raise MemoryError()
        self.chunk.data, self.chunk.size = nb, size
        self.buf, self.cap = nb, size
        return 0

    cdef bint _writer_gone(self) except -1:
        """True when no writer holds the large-message lock (so no fragment is on its way)."""
        cdef int r
        if self.wlock_ofd:
            r = px.fastfifo_ofd_held(self.wlock_fd)
            return r == 0
        if px.flock(self.wlock_fd, px.LOCK_EX | px.LOCK_NB) == 0:  # sidecar lock file
            px.flock(self.wlock_fd, px.LOCK_UN)
            return True
        return False

    cdef int _wait_data(self, double deadline) except -1:
        """Wait for POLLIN; while a large message is half received, also notice its writer dying.

        Returns poll's revents, 0 on timeout, or -3 when the partial message was
        abandoned (its writer released the lock and the pipe stayed empty).
        """
        cdef double step
        cdef int rev
        cdef px.pollfd pfd
        if self.asm is None and not self.asm_skip and not self.in_msg:
            return self._wait(px.POLLIN, deadline)
        while True:
            # Check the lock first, then that the pipe is empty: a writer that wrote
            # its last fragment and unlocked in between leaves data we would see.
            # (Lines have no fragments and no writers' lock: an overlong line is
            # waited for to its newline, so no other reader ever gets its tail.)
            if self.framing == FRAMES and self._writer_gone():
                pfd.fd = self.fd
                pfd.events = px.POLLIN
                pfd.revents = 0
                if px.poll(&pfd, 1, 0) == 0:
                    self._drop_partial("its writer died or gave up part-way")
                    self.in_msg = False
                    return -3
            step = monotonic() + 0.1
            rev = self._wait(px.POLLIN, step if deadline < 0 or step < deadline else deadline)
            if rev:
                return rev
            if deadline >= 0 and monotonic() >= deadline:
                return 0

    cdef int _fill(self, double deadline) except -2:
        """Read more bytes: 1 when some arrived, 0 on timeout, -1 at end of stream."""
        cdef Py_ssize_t r
        cdef int err, rev
        if self.shared:
            return self._fill_shared(deadline)
        self._make_room(max(self.need - (self.end - self.start), 65536))
        if self.drained:
            # The pipe was empty at the last read: a read now would most likely be
            # EAGAIN, so poll first (two syscalls per wake-up instead of three).
            rev = self._wait_data(deadline)
            if rev == 0:
                return 0
            if rev == -3:
                return 1
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
                if self._wait_data(deadline) == 0:
                    return 0
            elif err == EAGAIN:
                rev = self._wait_data(deadline)
                if rev == 0:
                    return 0
                if rev == -3:
                    return 1
            elif err == EINTR:
                PyErr_CheckSignals()
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef int _fill_shared(self, double deadline) except -2:
        """Claim whole messages from a FIFO that other readers share; as _fill."""
        cdef int r, rev
        cdef bint first = True
        while True:
            if not self.locked:
                # Optimistically try the lock and a claim first: when messages are
                # waiting that saves the poll() a blocked reader needs.
                if not (first and px.flock(self.rlock_fd, px.LOCK_EX | px.LOCK_NB) == 0):
                    rev = self._wait(px.POLLIN, deadline)
                    if rev == 0:
                        return 0
                    if not self._lock_wait(self.rlock_fd, False, deadline):
                        return 0
                self.locked = True
                # A fresh claim starts where the last claimer stopped, maybe another
                # reader: bad bytes there are a run of their own, reported on their own.
                self.resync = False
            first = False
            try:
                r = self._claim_tee() if self.use_tee else self._claim_exact()
            except BaseException:
                if not self._holding():
                    self._release()
                raise
            if r == 1:
                if not self._holding():
                    self._release()
                return 1
            if r == -1:
                if self.in_msg:  # every writer left part-way through a message
                    if self.framing == FRAMES:
                        self._drop_partial("every writer left before it ended")
                    self.in_msg = False
                self.owe = 0
                self._release()
                return -1
            if self.owe:
                # Part-way through a frame (or line) this reader began taking: the rest
                # is its own, so it keeps the lock and the bytes it has, and waits (up
                # to the deadline: the next call goes on from here).
                if self._wait(px.POLLIN, deadline) == 0:
                    return 0
                continue
            if self.in_msg:
                # Mid-way through a large message: keep the lock (the next fragments
                # are ours), wait for them, and notice if their writer died.
                if r == -2:
                    # Stray bytes short of a frame at the head (a foreign writer): poll()
                    # says readable at once, so back off instead of spinning.
                    if self.framing == FRAMES and self._writer_gone():
                        self._drop_partial("its writer died or gave up part-way")
                        self.in_msg = False
                        self._release()
                        return 1
                    if self._wait_wake(0.002, deadline) == 0:
                        return 0
                    continue
                rev = self._wait_data(deadline)
                if rev == -3:
                    self._release()
                    return 1
                if rev == 0:
                    return 0
                continue
            self._release()
            if r == -2:
                # The head of the pipe is not a whole message yet (a shell writer's
                # line without its newline): back off instead of spinning on POLLIN.
                if self._wait_wake(0.002, deadline) == 0:
                    return 0
            elif deadline >= 0 and monotonic() >= deadline:
                return 0

    cdef inline bint _holding(self) noexcept:
        """Whether the pipe's head continues what this reader has begun taking."""
        return self.in_msg or self.owe != 0

    cdef void _release(self) noexcept:
        if self.locked:
            self._unlock(self.rlock_fd, False)
            self.locked = False

    cdef int _wait_wake(self, double seconds, double deadline) except -1:
        """Sleep ``seconds`` (bounded by the deadline) unless close() wakes us; 0 at deadline."""
        cdef px.pollfd pfd
        cdef double until = monotonic() + seconds
        if deadline >= 0 and deadline < until:
            until = deadline
        pfd.fd = self.wake_r
        pfd.events = px.POLLIN
        pfd.revents = 0
        cdef int ms = <int>ceil(max(until - monotonic(), 0.0) * 1000.0)
        with nogil:
            ms = px.poll(&pfd, 1, ms)
        if ms > 0:
            self._raise_closed()
        return 0 if deadline >= 0 and monotonic() >= deadline else 1

    cdef int _claim_tee(self) except -9:
        """Under the lock: 1 claimed, 0 pipe empty, -1 end of stream, -2 head incomplete."""
        cdef Py_ssize_t n, got, k, r, owe = 0
        cdef int err
        cdef bint in_msg, wider
        if self.owe:
            return self._claim_owed()
        # Peek only about what this claim can take: every copy out of the peek pipe
        # is paid per claim.  One atomic write (<= PIPE_BUF) always holds a whole
        # frame, so 4 KiB per message wanted is enough to start; widen if it is not.
        cdef Py_ssize_t win = min(self.window, self.claim_max * 4096)
        while True:
            in_msg = self.in_msg
            self._make_room(win)
            with nogil:
                n = px.fastfifo_tee(self.fd, self.peek_w, win)
                err = errno
            if n < 0:
                if err == EAGAIN:
                    return 0
                if err == EINTR:
                    PyErr_CheckSignals()
                    return 0
                raise OSError(err, f"{os.strerror(err)} (peeking with tee)", self.path)
            if n == 0:
                # Empty with no writer.  As with read(): end of stream only if a writer
                # came and left (POLLHUP); a reader that never met one just waits.
                return -1 if self._wait(px.POLLIN, 0.0) & px.POLLHUP else 0
            got = 0
            while got < n:  # drain the private pipe: it holds exactly the n bytes tee made
                with nogil:
                    r = read(self.peek_r, self.buf + self.end + got, n - got)
                    err = errno
                if r <= 0:
                    if r < 0 and err == EINTR:
                        continue
                    raise OSError(err, f"{os.strerror(err)} (reading the peek pipe)",
                                  self.path)
                got += r
            wider = False
            k = self._claim_size(<const uint8_t *>self.buf + self.end, n, &in_msg, &owe,
                                 &wider)
            if (k == 0 or wider) and n == win and win < self.window:
                win = min(self.window, win * 4)
                continue
            if k == 0 and self.stop_at_eof and self._wait(px.POLLIN, 0.0) & px.POLLHUP:
                k = n  # every writer left: the unfinished tail is ours to report (or
                in_msg = False  # hand out, for a last line without its newline)
            break
        if k == 0:
            return -2
        got = 0
        while got < k:  # consume exactly what we claimed, without copying it again
            with nogil:
                r = px.fastfifo_splice(self.fd, self.null_fd, k - got)
                err = errno
            if r <= 0:
                if r < 0 and (err == EINTR or err == EAGAIN):
                    continue
                raise OSError(err, f"{os.strerror(err)} (consuming a claim)", self.path)
            got += r
        self.end += k
        self.in_msg = in_msg
        self.owe = owe
        return 1

    cdef int _claim_owed(self) except -9:
        """Under the lock, part-way through a frame: read (some of) the rest it is owed.

        A frame too large to peek whole (or the payload of one too large to keep) is
        taken as it arrives, by plain reads of exactly its remaining bytes.
        """
        cdef Py_ssize_t n = min(self.owe, self.window), r
        cdef int err
        self._make_room(n)
        while True:
            with nogil:
                r = read(self.fd, self.buf + self.end, n)
                err = errno
            if r > 0:
                self.end += r
                self.owe -= r
                return 1
            if r == 0:
                return -1 if self._wait(px.POLLIN, 0.0) & px.POLLHUP else 0
            if err == EINTR:
                PyErr_CheckSignals()
            elif err == EAGAIN:
                return 0
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef Py_ssize_t _claim_size(self, const uint8_t *p, Py_ssize_t n, bint *in_msg,
                                Py_ssize_t *owe, bint *wider) noexcept:
        """How many leading bytes of the peeked ``p[:n]`` are whole messages to take.

        ``owe`` is set to what a frame begun in them still lacks (it is taken at once:
        too large to wait for it whole); ``wider`` when a wider peek may take more.
        """
        cdef Py_ssize_t i = 0, count = 0, j
        cdef uint32_t length
        cdef int kind
        cdef const char *nl
        if self.framing == LINES:
            while i < n and (count < self.claim_max or in_msg[0]):
                nl = <const char *>memchr(p + i, NEWLINE, n - i)
                if nl == NULL:
                    if i == 0 and (in_msg[0] or n > self.maxmsg or n > ATOMIC_MAX):
                        # A line no writer can have written atomically (or an overlong
                        # one): all of it goes to us, and its rest as it comes.
                        in_msg[0] = True
                        return n
                    break
                i = <const uint8_t *>nl - p + 1
                count += 1
                in_msg[0] = False
            return i
        while n - i >= HEADER:
            if not header_usable(p + i):
                if i:
                    break
                j = 1  # garbage at the head: take it up to the next possible header
                while j < n and not (p[j] == MAGIC and (n - j < HEADER or header_valid(p + j))):
                    j += 1
                wider[0] = j == n
                return j
            length = header_length(p + i)
            kind = p[i + 1] & KIND_MASK
            if i + HEADER + <Py_ssize_t>length > n:
                if i == 0 and (HEADER + <Py_ssize_t>length > ATOMIC_MAX or
                               (kind == KIND_WHOLE and length > <size_t>self.maxmsg)):
                    # A frame no writer can have written atomically, maybe larger than
                    # the pipe or the peek window, or one too large to keep (its payload
                    # is discarded as it arrives): take what there is, and keep the lock
                    # until the rest came, so nobody else reads its payload as frames.
                    owe[0] = HEADER + <Py_ssize_t>length - n
                    if kind == KIND_FIRST:
                        in_msg[0] = True
                    elif kind == KIND_LAST:
                        in_msg[0] = False
                    return n
                break
            if kind == KIND_WHOLE and length > <size_t>self.maxmsg:
                if i:
                    break
                return HEADER + length  # a claim of its own
            i += HEADER + length
            if kind == KIND_FIRST:
                in_msg[0] = True
            elif kind == KIND_LAST:
                in_msg[0] = False
            if kind == KIND_WHOLE or kind == KIND_LAST:
                count += 1
            if count >= self.claim_max and not in_msg[0]:
                break
        return i

    cdef int _claim_exact(self) except -9:
        """No tee(): read exactly up to the end of one message, so none of the next.

        Frames: the header, then the payload; bad bytes up to the next possible header
        or the end of what the pipe holds; lines: byte by byte to the newline.  Each
        read takes at most what the message still lacks.  When the pipe runs dry
        part-way, the bytes read stay in the buffer and ``owe`` says how many more are
        this reader's: it keeps the readers' lock (across calls) until they came.
        1 claimed, 0 nothing to claim now, -1 end of stream.
        """
        cdef Py_ssize_t at = 0, got = 0, want, n, r
        cdef bint owed = False, junk = False
        cdef int frag = -1, err
        while True:
            want = self._exact_want(&at, &junk, &owed, &frag)
            if want == 0:
                if got:
                    break
                want = HEADER if self.framing == FRAMES else 1  # the next message begins
                owed = False
            elif got >= self.window or (self.framing == LINES and
                                        self.end - self.start > self.maxmsg):
                break  # enough for one call: the parser takes (or refuses) it from here
            n = min(want, self.window)
            self._make_room(n)
            with nogil:
                r = read(self.fd, self.buf + self.end, n)
                err = errno
            if r > 0:
                self.end += r
                got += r
                continue
            if r == 0:
                if got:
                    break
                self.owe = want if owed else 0
                return -1 if self._wait(px.POLLIN, 0.0) & px.POLLHUP else 0
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if err != EAGAIN:
                raise OSError(err, os.strerror(err), self.path)
            break
        self.owe = want if owed else 0
        if frag == KIND_FIRST or frag == KIND_MIDDLE:
            self.in_msg = True
        elif frag == KIND_LAST:
            self.in_msg = False
        return 1 if got else 0

    cdef Py_ssize_t _exact_want(self, Py_ssize_t *at, bint *junk, bint *owed,
                                int *frag) noexcept:
        """How many more bytes the unit at the end of the buffer lacks (exact claims).

        Walks the unparsed bytes from ``start + at`` as the parser will cut them, and
        leaves ``at`` at the unit that is not whole yet (``junk``: at the end of a run of
        bad bytes, whose next possible header is not in the buffer yet).  0: they end
        where a message ends.  ``owed``: the unit has begun, so its rest belongs to this
        reader (False after bad bytes, which may or may not go on).  ``frag``: the kind
        of the last whole fragment walked over.
        """
        cdef Py_ssize_t i = self.start + at[0], avail
        cdef const uint8_t *p
        cdef const char *nl
        cdef uint32_t length
        owed[0] = True
        if at[0] == 0 and self.discard:  # the payload of a frame too large to keep
            if self.discard > self.end - i:
                return self.discard - (self.end - i)
            i += self.discard
        if at[0] == 0 and self.skip_line:  # the rest of an overlong line
            nl = <const char *>memchr(self.buf + i, NEWLINE, self.end - i)
            if nl == NULL:
                at[0] = self.end - self.start
                return 1
            i = nl + 1 - self.buf
        while True:
            if junk[0]:  # bad bytes: the parser skips to the next possible header
                i = self._scan(i)
                at[0] = i - self.start
                if i == self.end:
                    owed[0] = False
                    return HEADER
                junk[0] = False
            at[0] = i - self.start
            avail = self.end - i
            if avail == 0:
                return 0
            if self.framing == LINES:
                nl = <const char *>memchr(self.buf + i, NEWLINE, avail)
                if nl == NULL:
                    return 1
                i = nl + 1 - self.buf
                continue
            if avail < HEADER:
                return HEADER - avail
            p = <const uint8_t *>self.buf + i
            if not header_usable(p):
                junk[0] = True
                i += 1
                continue
            length = header_length(p)
            if avail < HEADER + <Py_ssize_t>length:
                return HEADER + <Py_ssize_t>length - avail
            if p[1] & KIND_MASK:
                frag[0] = p[1] & KIND_MASK
            i += HEADER + length

    cdef object _end_of_stream(self):
        """Every writer left: hand out a last unterminated line, or report a cut frame."""
        cdef Py_ssize_t n = self.end - self.start
        if self.asm is not None or self.asm_skip:
            self._drop_partial("every writer left before it ended")
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
        self._report_drops()
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    # ------------------------------------------------------------ public calls

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

        Warns
        -----
        IncompleteMessageWarning
            A large message was cut short by its writer and dropped.
        """
        cdef double deadline = to_deadline(timeout)
        cdef int status, r
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            self.claim_max = 1
            while True:
                msg = self._take(&status)
                if status == GOT:
                    return msg
                if status < 0:
                    self._raise_bad(status)
                self._report_drops()
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
        every whole message already read plus at most one more read's worth.  A
        shared reader claims at most ``max_messages`` per call, so slow workers
        take less and the load balances.

        Raises
        ------
        Empty, EOFError, CorruptStreamError, MessageTooLargeError, ClosedError
            As for ``get``; an error found after some messages were collected is
            raised by the next call instead, so no message is lost to it.
        """
        return self._get_many(max_messages, timeout, None)

    def get_batch(self, Py_ssize_t max_messages=1000, timeout=None):
        """As ``get_many``, but without copying: a ``MessageBatch`` of read-only views.

        One object per call however many messages it holds; a view per message is
        made only when you index or iterate.  The bytes stay valid while the batch
        or any view from it is alive (the Reader reads into a fresh buffer
        meanwhile); drop the batch to let the Reader reuse its buffer.
        """
        cdef MessageBatch batch = MessageBatch()
        self._get_many(max_messages, timeout, batch)
        return batch

    cdef list _get_many(self, Py_ssize_t max_messages, timeout, MessageBatch batch):
        cdef double deadline = to_deadline(timeout)
        cdef int status = NEED, r
        cdef bint read_more = True
        cdef list out = []
        cdef Py_ssize_t count = 0
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            self.claim_max = max_messages
            self.batch = batch
            while True:
                while count < max_messages:
                    msg = self._take(&status)
                    if status != GOT:
                        break
                    if batch is None:
                        out.append(msg)
                    elif msg is not True:
                        batch._add_bytes(msg)
                    count += 1
                if count >= max_messages:
                    return out
                if count:
                    if status < 0 or not read_more or self.shared or self.drained:
                        return out
                    # A batch's views must all be in one chunk: read more only where
                    # it fits after ``end``, so the buffer cannot move.
                    if batch is not None and self.cap - self.end < 65536:
                        return out
                    read_more = False
                    # One more read without waiting: what the writer queued meanwhile.
                    if self._fill(0.0) <= 0:
                        return out
                    continue
                if status < 0:
                    self._raise_bad(status)
                self._report_drops()
                r = self._fill(deadline)
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    msg = self._end_of_stream()
                    if batch is not None:
                        batch._add_bytes(msg)
                    return [msg]
        finally:
            self.batch = None
            self._leave()

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.get()
        except (EOFError, ClosedError):
            raise StopIteration
