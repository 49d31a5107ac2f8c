# Included by _core.pyx (one extension module; see its docstring for the layout).
# WriterCore: atomic writes, buffered mode, large messages as fragments.

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
    cdef bint present         # holds the writers' presence lock (see _sole_write)
    cdef Py_ssize_t capacity  # the pipe's size in bytes when it opened
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
                   bint buffered=False, bint present=False, Py_ssize_t capacity=0):
        self.buffered = buffered
        self.present, self.capacity = present, capacity
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

    cdef inline Py_ssize_t _frame_size(self, const char *p, Py_ssize_t n,
                                       Py_ssize_t index) except -1:
        """Bytes of the encoded message when it fits one atomic write, else 0 (fragments);
        the checks and their errors are ``_parse.frame_total``'s."""
        if self.framing == FRAMES and n + HEADER <= self.atomic:
            return n + HEADER
        return frame_total(self.framing, self.atomic, self.maxmsg, n,
                           self.framing == LINES and memchr(p, NEWLINE, n) != NULL,
                           self.path, index)

    cdef inline Py_ssize_t _encode(self, char *dst, const char *p, Py_ssize_t n) noexcept:
        if self.framing == FRAMES:
            put_header(<unsigned char *>dst, 0, KIND_WHOLE, <unsigned int>n)
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
            if sigpipe_may_kill(self.guard):
                r = guarded_write(self.fd, p, n, &err)
            else:
                r = write(self.fd, p, n)
                err = errno
            if r == n:
                return 1
            if r >= 0:  # a write <= PIPE_BUF is never partial (POSIX); guard anyway
                raise texts.short_write(self.path, r, n)
            if err == EAGAIN:
                if self._wait(px.POLLOUT, deadline) == 0:
                    return 0
            elif err == EINTR:
                PyErr_CheckSignals()
            elif err == EPIPE:
                raise texts.broken_pipe(self.path)
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef int _write_large(self, const char *p, Py_ssize_t n, double deadline, timeout) except -1:
        """Send one message as FIRST, MIDDLE..., LAST fragments under the writers' lock."""
        cdef Py_ssize_t off = 0, chunk
        cdef unsigned char *h = <unsigned char *>self.scratch
        cdef int kind
        if self.present and self.framing == FRAMES and self._sole_write(p, n):
            return 1
        if not self._lock_wait(self.lock_fd, self.lock_ofd, deadline):
            raise texts.large_lock_held(self.path, timeout)
        try:
            chunk = min(n, self.atomic - 2 * HEADER)
            put_header(h, 0, KIND_FIRST, <unsigned int>(chunk + 8))
            put_u64(h, HEADER, <unsigned long long>n)
            memcpy(self.scratch + 2 * HEADER, p, chunk)
            while True:
                if not self._write(self.scratch, HEADER + (8 if off == 0 else 0) + chunk,
                                   deadline):
                    raise texts.large_cut(self.path, timeout, off, n)
                off += chunk
                if off == n:
                    return 1
                chunk = min(n - off, self.atomic - HEADER)
                kind = KIND_LAST if off + chunk == n else KIND_MIDDLE
                put_header(h, 0, kind, <unsigned int>chunk)
                memcpy(self.scratch + HEADER, p + off, chunk)
        finally:
            self._unlock(self.lock_fd, self.lock_ofd)

    cdef int _sole_write(self, const char *p, Py_ssize_t n) except -1:
        """One write() for a large message when no other fastfifo Writer has the FIFO open.

        Every Writer holds a lock on a byte of its own from byte 2 on while it is open
        (its presence, taken in ``Writer.__init__``).  A Writer that takes byte 1 and
        then finds no other presence is the only one; a Writer opening meanwhile waits
        (after taking its presence) until byte 1 is free, so one of the two always sees
        the other.  Then the message goes as one frame in one write() instead of
        fragments -- if the pipe surely has room for all of it, so the write never waits
        (a writer killed part-way through a write that waits would leave a frame short
        for the next writer's bytes to fill).  1 when sent, 0 when the fragments must go
        instead (nothing written then).
        """
        cdef Py_ssize_t waiting, r, total = HEADER + n, free_pages
        cdef int err
        if px.fastfifo_ofd_lock_at(self.fd, px.F_WRLCK, 1) != 0:
            return 0  # another Writer is sending one this way (or no such locks here)
        try:
            if px.fastfifo_ofd_held_at(self.fd, 2, 0) != 0:
                return 0  # another Writer is open
            waiting = px.fastfifo_bytes_waiting(self.fd)
            # Pages of the pipe in use: what is waiting, plus a partly read first page
            # and a partly filled last one.
            free_pages = self.capacity // 4096 - (waiting + 4095) // 4096 - 2
            if waiting < 0 or free_pages * 4096 < total + 4096:
                return 0
            put_header(<unsigned char *>self.scratch, 0, KIND_WHOLE, <unsigned int>n)
            if sigpipe_may_kill(self.guard):
                r = guarded_write2(self.fd, self.scratch, HEADER, p, n, &err)
            else:
                r = px.fastfifo_write2(self.fd, self.scratch, HEADER, p, n)
                err = errno
            if r == total:
                return 1
            if r < 0:
                if err == EAGAIN:
                    return 0
                if err == EPIPE:
                    raise texts.broken_pipe(self.path)
                raise OSError(err, os.strerror(err), self.path)
            # Cannot happen with the room checked; never leave the frame short.
            if r < HEADER:
                self._finish(self.scratch + r, HEADER - r)
                r = HEADER
            self._finish(p + (r - HEADER), total - r)
            return 1
        finally:
            px.fastfifo_ofd_lock_at(self.fd, px.F_UNLCK, 1)

    cdef int _finish(self, const char *p, Py_ssize_t n) except -1:
        """Write the rest of a frame begun by _sole_write, whatever it takes."""
        cdef Py_ssize_t r
        cdef int err
        cdef px.pollfd pfd
        while n > 0:
            if sigpipe_may_kill(self.guard):
                r = guarded_write(self.fd, p, n, &err)
            else:
                r = write(self.fd, p, n)
                err = errno
            if r > 0:
                p += r
                n -= r
            elif r < 0 and err == EPIPE:
                raise texts.broken_pipe(self.path)
            elif r < 0 and err != EAGAIN and err != EINTR:
                raise OSError(err, os.strerror(err), self.path)
            else:
                pfd.fd = self.fd
                pfd.events = px.POLLOUT
                pfd.revents = 0
                with nogil:
                    px.poll(&pfd, 1, 100)
        return 0

    def put(self, data, timeout=None):
        """(The docstring is _docs.py's, set at import.)"""
        cdef Py_buffer view
        cdef double deadline = to_deadline(timeout)
        if PyBytes_CheckExact(data):
            self._put(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), deadline, timeout)
            return
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except TypeError:
            raise not_bytes_error(self.path, data) from None
        try:
            self._put(<char *>view.buf, view.len, deadline, timeout)
        finally:
            PyBuffer_Release(&view)

    cdef int _put(self, const char *p, Py_ssize_t n, double deadline, timeout) except -1:
        cdef Py_ssize_t total = self._frame_size(p, n, -1)
        if not self._enter(deadline):
            raise texts.busy(self.path, "Writer", timeout)
        try:
            if total == 0:
                if self.pend_bytes and not self._flush(deadline):
                    raise texts.pending_full(self.path, timeout, self.pend_msgs)
                self._write_large(p, n, deadline, timeout)
            elif self.buffered:
                if self.pend_bytes + total > self.atomic:
                    if not self._flush(deadline):
                        raise texts.pending_full(self.path, timeout, self.pend_msgs)
                self.pend_bytes += self._encode(self.scratch + self.pend_bytes, p, n)
                self.pend_msgs += 1
            else:
                self._encode(self.scratch, p, n)
                if not self._write(self.scratch, total, deadline):
                    raise texts.pipe_full(self.path, timeout)
        finally:
            self._leave()
        return 0

    cdef int _flush(self, double deadline) except -1:
        """Write the buffered messages (one atomic write); 1 when done, 0 on timeout."""
        if self.pend_bytes and not self._write(self.scratch, self.pend_bytes, deadline):
            return 0
        self.pend_bytes = self.pend_msgs = 0
        return 1

    def flush(self, timeout=None):
        """(The docstring is _docs.py's, set at import.)"""
        cdef double deadline = to_deadline(timeout)
        if not self._enter(deadline):
            raise texts.busy(self.path, "Writer", timeout)
        try:
            if not self._flush(deadline):
                raise texts.pending_full(self.path, timeout, self.pend_msgs, True)
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
            self._leave()
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
        """(The docstring is _docs.py's, set at import.)"""
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
                try:
                    PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
                except TypeError:
                    raise not_bytes_error(self.path, item, i) from None
                try:
                    self._frame_size(<char *>view.buf, view.len, i)
                finally:
                    PyBuffer_Release(&view)
        if n == 0:
            return
        if not self._enter(deadline):
            raise texts.busy(self.path, "Writer", timeout, 0)
        try:
            if self.pend_bytes and not self._flush(deadline):
                raise texts.pending_full(self.path, timeout, self.pend_msgs)
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
                raise texts.batch_full(self.path, timeout, sent)
        finally:
            self._leave()

    cdef int _pack(self, const char *p, Py_ssize_t size, Py_ssize_t *used,
                   Py_ssize_t *pending, Py_ssize_t *sent, double deadline, timeout) except -1:
        """Add one message to the batch in scratch, flushing whole writes as it fills."""
        cdef Py_ssize_t total = size + (HEADER if self.framing == FRAMES else 1)
        if used[0] + total > self.atomic:
            if used[0] and not self._write(self.scratch, used[0], deadline):
                raise texts.batch_full(self.path, timeout, sent[0])
            sent[0] += pending[0]
            used[0] = pending[0] = 0
        if total > self.atomic:
            try:
                self._write_large(p, size, deadline, timeout)
            except Full as e:
                raise texts.in_batch(e, self.path, timeout, sent[0])
            sent[0] += 1
            return 0
        used[0] += self._encode(self.scratch + used[0], p, size)
        pending[0] += 1
        return 0
