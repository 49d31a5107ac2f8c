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
    cdef bint present         # holds a writers' presence lock (see _burst)
    cdef Py_ssize_t capacity  # the pipe's size in bytes when it opened
    cdef px.iovec *iov        # _burst's pieces and fragment headers (made on first use)
    cdef unsigned char *hdrs
    cdef Py_ssize_t iov_max
    cdef Py_ssize_t pend_bytes, pend_msgs
    cdef char *ring           # _burst's pages (see there); NULL until first needed
    cdef Py_ssize_t ring_pages, ring_at

    def __cinit__(self, *args, **kwargs):
        self.lock_fd = -1

    def __dealloc__(self):
        cdef int err
        if self.pend_bytes and self.fd >= 0:
            # Never closed: a last non-blocking try for what put() buffered (a file
            # flushes on deallocation too); if the pipe is full it is lost.
            guarded_write(self.fd, self.scratch, self.pend_bytes, &err)
        free(self.scratch)
        free(self.iov)
        free(self.hdrs)
        if self.ring != NULL:
            munmap(self.ring, self.ring_pages * PAGE)

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
            r = write_now(self.fd, self.guard, p, n, &err)
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
        """Send one message as FIRST, MIDDLE..., LAST fragments under the writers' lock.

        Each fragment is one atomic write; a Writer that is the only one open sends as
        many whole fragments as the pipe surely has room for in one writev() instead
        (see ``_burst``).
        """
        cdef Py_ssize_t off = 0, chunk
        cdef unsigned char *h = <unsigned char *>self.scratch
        cdef int kind
        if not self._lock_wait(self.lock_fd, self.lock_ofd, deadline):
            raise texts.large_lock_held(self.path, timeout)
        try:
            while True:
                # The burst byte first, then the look for other Writers: a Writer that
                # opens after the look waits at open until the burst is over
                # (_endpoints._wait_out_bursts), so none writes into a burst it missed.
                if self.present and px.fastfifo_ofd_lock_at(self.fd, px.F_WRLCK, 1) == 0:
                    try:
                        if px.fastfifo_ofd_held_at(self.fd, 2, 0) == 0:
                            off = self._burst(p, n, off)  # the only Writer open: see _burst
                    finally:
                        px.fastfifo_ofd_lock_at(self.fd, px.F_UNLCK, 1)
                    if off == n:
                        return 1
                chunk = min(n - off, self.atomic - (2 * HEADER if off == 0 else HEADER))
                kind = KIND_FIRST if off == 0 else (KIND_LAST if off + chunk == n
                                                    else KIND_MIDDLE)
                if off == 0:
                    put_header(h, 0, KIND_FIRST, <unsigned int>(chunk + 8))
                    put_u64(h, HEADER, <unsigned long long>n)
                    memcpy(self.scratch + 2 * HEADER, p, chunk)
                else:
                    put_header(h, 0, kind, <unsigned int>chunk)
                    memcpy(self.scratch + HEADER, p + off, chunk)
                if not self._write(self.scratch, HEADER + (8 if off == 0 else 0) + chunk,
                                   deadline):
                    raise texts.large_cut(self.path, timeout, off, n)
                off += chunk
                if off == n:
                    return 1
        finally:
            self._unlock(self.lock_fd, self.lock_ofd)

    cdef Py_ssize_t _burst(self, const char *p, Py_ssize_t n, Py_ssize_t off) except -1:
        """The fragments of the only Writer open: as many whole ones as the pipe surely
        has room for, in one system call.

        Every Writer holds a lock on a byte of its own from byte 2 on while it is open
        (its presence, taken in ``Writer.__init__``); a Writer that sees no other one
        sends its large messages this way.  With room for all of them the call never
        waits, so the kernel takes it whole under the pipe's lock: no other write lands
        inside it, and a writer killed meanwhile leaves whole fragments, which readers
        drop as usual.
        The room is counted in pipe slots by the one rule, ``_parse.free_slots`` (it errs
        towards fewer), and each fragment is given a slot.  Returns the new offset:
        ``off`` itself when there was no room for two fragments (the caller then sends
        one the ordinary way, which waits for room up to its deadline).

        Where it can (``_ring_ready``), each fragment is built in a page of a ring and
        the pages are handed to the pipe by one vmsplice(): the kernel copies nothing
        in.  The pipe then refers to those pages until a reader takes them, so a page is
        written again only when the pipe has surely let it go.  Pages go out in ring
        order and a pipe never holds more pages than its ``cap`` bytes (one page per
        slot: these pages are never merged into), so while the ring has at least
        ``cap / PAGE + k`` pages, a page about to be written was handed over more than a
        pipe's worth of pages ago: a reader has taken it.  ``_ring_ready`` keeps the ring
        at two more pipes' worth than that, asked each burst (another process may grow
        the pipe), for readers that move the FIFO's bytes into pipes of their own with
        splice() or tee() and read them there later: they see them as sent while they
        hold at most two pipes' worth of this Writer's pages so (fastfifo's readers copy,
        or tee only what they read at once).  Elsewhere one writev() of the headers and
        the caller's bytes.  A short call (only a race does this) ends in
        ``_finish_iov``; a vmsplice() is short only between fragments (whole pages).
        """
        cdef Py_ssize_t k, i, j, r, cap, whole, want = 0, at = off, chunk, hl, first
        cdef int err
        cdef unsigned char *h
        cdef int kind
        cdef bint pages
        cdef px.iovec runs[2]
        if self.iov == NULL:
            self.iov_max = max(1, min(self.capacity // 4096, 256))
            self.iov = <px.iovec *>malloc(self.iov_max * 2 * sizeof(px.iovec))
            self.hdrs = <unsigned char *>malloc(self.iov_max * 2 * HEADER)
            if self.iov == NULL or self.hdrs == NULL:
                return off
        cap = px.fastfifo_pipe_size(self.fd)  # asked each time: another process may resize
        if cap <= 0:
            cap = self.capacity
        # (two slots spared for small messages of a Writer that opens meanwhile)
        k = min(free_slots(cap, px.fastfifo_bytes_waiting(self.fd), PAGE) - 2, self.iov_max)
        if k < 2:
            return off
        pages = self._ring_ready(cap)
        i = 0
        while i < k and at < n:
            chunk = min(n - at, self.atomic - (2 * HEADER if at == 0 else HEADER))
            if pages:
                h = <unsigned char *>self.ring + ((self.ring_at + i) % self.ring_pages) * PAGE
            else:
                h = self.hdrs + i * 2 * HEADER
            if at == 0:
                put_header(h, 0, KIND_FIRST, <unsigned int>(chunk + 8))
                put_u64(h, HEADER, <unsigned long long>n)
                hl = 2 * HEADER
            else:
                kind = KIND_LAST if at + chunk == n else KIND_MIDDLE
                put_header(h, 0, kind, <unsigned int>chunk)
                hl = HEADER
            self.iov[2 * i].iov_base = h
            self.iov[2 * i].iov_len = hl
            if pages:
                memcpy(h + hl, p + at, chunk)
                self.iov[2 * i + 1].iov_base = h + hl
            else:
                self.iov[2 * i + 1].iov_base = <void *>(p + at)
            self.iov[2 * i + 1].iov_len = chunk
            want += hl + chunk
            at += chunk
            i += 1
        if pages:
            # Every fragment but the message's last fills its page, so the pages up to
            # the ring's end and those from its start are two runs of contiguous bytes.
            first = min(i, self.ring_pages - self.ring_at)
            runs[0].iov_base = self.iov[0].iov_base
            runs[0].iov_len = (first - 1) * PAGE + self.iov[2 * first - 2].iov_len \
                + self.iov[2 * first - 1].iov_len
            runs[1].iov_base = self.ring
            runs[1].iov_len = want - runs[0].iov_len
            j = 2 if i > first else 1
            if sigpipe_may_kill(self.guard):
                r = guarded_writev(self.fd, runs, j, &err, True)
            else:
                r = px.fastfifo_vmsplice(self.fd, runs, j)
                err = errno
        elif sigpipe_may_kill(self.guard):
            r = guarded_writev(self.fd, self.iov, 2 * i, &err)
        else:
            r = px.writev(self.fd, self.iov, 2 * i)
            err = errno
        if r < 0:
            if err == EAGAIN or err == EINTR:
                return off
            if err == EPIPE:
                raise texts.broken_pipe(self.path)
            raise OSError(err, os.strerror(err), self.path)
        whole = i if r == want else self._finish_iov(i, r)
        if pages:
            self.ring_at = (self.ring_at + whole) % self.ring_pages
        if whole == i:
            return at
        at = off
        for j in range(whole):
            at += self.iov[2 * j + 1].iov_len
        return at

    cdef bint _ring_ready(self, Py_ssize_t cap) except -1:
        """Whether ``_burst`` may hand pages to the pipe: Linux, fragments of one page
        each, and a ring of three times the pipe's ``cap`` bytes in pages plus the
        largest burst (made or remade here)."""
        cdef Py_ssize_t want = 3 * (cap // PAGE) + self.iov_max
        cdef void *m
        if not px.FASTFIFO_HAVE_VMSPLICE or self.atomic != PAGE or PAGE != 4096:
            return False
        if self.ring != NULL and self.ring_pages >= want:
            return True
        if self.ring != NULL:
            # The pipe grew.  Pages still in it keep their contents when unmapped (the
            # pipe holds them); a fresh ring starts from pages the pipe never had.
            munmap(self.ring, self.ring_pages * PAGE)
            self.ring = NULL
        m = mmap(NULL, want * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if m == MAP_FAILED:
            return False
        self.ring, self.ring_pages, self.ring_at = <char *>m, want, 0
        return True

    cdef Py_ssize_t _finish_iov(self, Py_ssize_t count, Py_ssize_t done) except -1:
        """After a short writev() of ``count`` fragments (``done`` bytes went in): finish
        the fragment it cut, if any, and return how many fragments are whole in the pipe.

        Only a race makes the write short (a Writer that opened between the count and
        the write, the pipe resized by another process).  A fragment is never left cut,
        since readers would take the next write's bytes as the rest of it: this waits
        for room until it is whole, also past the deadline, and runs signal handlers only
        once it is.  The fragments not started go back to the caller, which sends them
        one by one within its deadline.
        """
        cdef Py_ssize_t f, j, left, r
        cdef const char *q
        cdef int err
        cdef bint interrupted = False
        cdef px.pollfd pfd
        for f in range(count):
            left = self.iov[2 * f].iov_len + self.iov[2 * f + 1].iov_len
            if done >= left:
                done -= left
                continue
            if done == 0:
                return f
            for j in range(2 * f, 2 * f + 2):
                left = self.iov[j].iov_len
                q = <const char *>self.iov[j].iov_base
                if done >= left:
                    done -= left
                    continue
                q += done
                left -= done
                done = 0
                while left > 0:
                    r = write_now(self.fd, self.guard, q, left, &err)
                    if r > 0:
                        q += r
                        left -= r
                    elif r < 0 and err == EPIPE:
                        raise texts.broken_pipe(self.path)  # no reader is left to mislead
                    elif r < 0 and err != EAGAIN and err != EINTR:
                        raise OSError(err, os.strerror(err), self.path)
                    else:
                        interrupted = interrupted or err == EINTR
                        pfd.fd = self.fd
                        pfd.events = px.POLLOUT
                        pfd.revents = 0
                        with nogil:
                            if px.poll(&pfd, 1, 100) < 0 and errno == EINTR:
                                interrupted = True
            if interrupted:
                PyErr_CheckSignals()
            return f + 1
        return count

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


# ---------------------------------------------------------------- writer over lent descriptors

cdef class BorrowingWriterCore(WriterCore):
    """A WriterCore over descriptors that its owner keeps, and closes (fastfifo.Queue).

    It makes no wake-up pipe of its own: ``_wake_on(fd)`` names a descriptor that its
    waits watch too (readable, or in error, ends them with ``ClosedError``), and
    ``close()`` wakes nobody: the owner does.  Closing or collecting it closes no
    descriptor.  The large-message lock is lent per use with ``_lock_on(fd)``, which
    must come before a message above one atomic write (``_lock_on(-1)`` takes it back).
    """

    def _attach(self, int fd, path):
        self.fd, self.path = fd, path

    def _wake_on(self, int fd):
        """Also end waits when ``fd`` is readable (or in error): the owner's wake-up."""
        self.wake_r = fd

    def _lock_on(self, int fd, bint ofd=True):
        """The descriptor to take the writers' lock on (OFD lock, else flock) from now on."""
        self.lock_fd, self.lock_ofd = fd, ofd

    cdef void _close_fds(self) noexcept:
        self.fd = self.wake_r = self.wake_w = self.lock_fd = -1
