# Included by _core.pyx (one extension module; see its docstring for the layout).
# _ReaderBase: the receive buffer the parser reads from, and waiting for data.

# ---------------------------------------------------------------- reader: buffer

cdef class _ReaderBase(_Endpoint):
    """A Reader's state and receive buffer; ``p`` (``_parse.Parser``) cuts the messages.

    The buffer is ``chunk`` (``buf``, ``cap`` bytes); its unparsed bytes are
    ``buf[p.start:p.end]``.  Every change of the chunk goes through ``_set_chunk`` so the
    parser's view of it stays current.
    """
    cdef Parser p
    cdef bint stop_at_eof
    cdef _Chunk chunk         # owns buf; replaced (not overwritten) while views are alive
    cdef char *buf
    cdef Py_ssize_t cap
    cdef MessageBatch batch   # inside get_batch(): record offsets instead of copying
    cdef bint drained         # the last read() came back short: the pipe was empty then
    cdef bint busy            # the last read found bytes waiting: the writer is busy
    cdef double t_read        # monotonic time of the last read that returned bytes
    cdef int quick            # waits in a row that found data already there
    cdef int spin_miss        # spins in a row that found nothing
    cdef int spin_skip        # waits still to go without a spin
    cdef double t_pause       # monotonic time spinning was last turned off
    cdef int gap_miss         # paced reads in a row that brought one message only
    cdef int gap_skip         # reads still to go without pacing
    cdef bint alone           # this thread may run on one CPU only (checked each second)
    cdef double t_cpus        # monotonic time that was last checked
    cdef int twin             # blocking description for long waits (-1: not yet, -2: never)
    cdef bint large           # the buffer's head was a large message's first fragment
    cdef size_t fresh_above   # in-place reads filled memory up to here (_fill_middles)
    # shared readers
    cdef bint shared, use_tee, locked
    cdef int rlock_fd, wlock_fd, peek_r, peek_w, null_fd
    cdef bint wlock_ofd
    cdef Py_ssize_t window

    def __cinit__(self, *args, **kwargs):
        self.rlock_fd = self.wlock_fd = self.peek_r = self.peek_w = self.null_fd = -1
        self.twin = -1

    def _configure(self, int fd, path, int framing, Py_ssize_t max_message_size,
                   Py_ssize_t buffer_size, bint stop_at_eof, int wlock_fd=-1,
                   bint wlock_ofd=True):
        self.p = Parser(path, framing, max_message_size)
        self._set_chunk(_Chunk(max(buffer_size, 4096)))
        self._attach(fd, path)  # first: see WriterCore._configure
        self.stop_at_eof = stop_at_eof
        self.t_cpus = -1e9  # (ask at the first wait)
        self.wlock_fd = fd if wlock_fd < 0 else wlock_fd
        self.wlock_ofd = wlock_ofd

    cdef inline void _set_chunk(self, _Chunk chunk) noexcept:
        self.chunk, self.buf, self.cap = chunk, chunk.data, chunk.size
        self.p.buf = <const unsigned char *>chunk.data

    def _eof_by_select(self):
        """Wait in select(), which sees the last writer leave (stop_at_eof, not shared)."""
        self.eof_select = self.stop_at_eof and not self.shared

    def _share(self, int rlock_fd, int peek_r, int peek_w, int null_fd, Py_ssize_t window,
               bint use_tee):
        """Switch to shared mode; the fds are owned (and closed) by the caller's close()."""
        self.eof_select = False
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

    def close(self):
        """Close the Reader (idempotent); a call blocked in another thread raises ClosedError.

        What it had read and not yet returned dies with it: that is reported (logged
        on the ``fastfifo`` logger), never silent.
        """
        if not self.closing and self.p is not None:
            self.p.report_unread()
        _Endpoint.close(self)

    cdef void _close_fds(self) noexcept:
        cdef int fd
        for fd in (self.peek_r, self.peek_w, self.null_fd):
            if fd >= 0:
                close(fd)
        if self.rlock_fd >= 0 and self.rlock_fd != self.fd:
            close(self.rlock_fd)
        if self.wlock_fd >= 0 and self.wlock_fd != self.fd:
            close(self.wlock_fd)
        if self.twin >= 0:
            close(self.twin)
        self.twin = -2
        self.peek_r = self.peek_w = self.null_fd = self.rlock_fd = self.wlock_fd = -1
        _Endpoint._close_fds(self)

    @property
    def buffered(self):
        """Bytes read from the FIFO and not yet returned as messages."""
        return self.p.end - self.p.start

    @property
    def buffer_capacity(self):
        """Bytes the receive buffer holds now (grows only for a frame up to max_message_size)."""
        return self.cap

    @property
    def skipped_bytes(self):
        """Bytes skipped because they were not valid frames (see CorruptStreamError)."""
        return self.p.skipped_bytes

    @property
    def dropped_messages(self):
        """Messages dropped: too large, not allocatable, or large ones cut short."""
        return self.p.dropped_messages

    # ------------------------------------------------------------ messages

    # ------------------------------------------------------------ the buffer

    cdef int _make_room(self, Py_ssize_t want) except -1:
        """Room for ``want`` more bytes after ``end`` (compacting first, growing if needed)."""
        cdef Parser p = self.p
        cdef Py_ssize_t live = p.end - p.start
        if self.chunk.exports:
            # Views point below ``start``: append after ``end`` while there is room,
            # and move to a fresh chunk only when the bytes would have to move.
            if self.cap - p.end < want:
                self._new_chunk(max(self.cap, live + want))
            return 0
        if live == 0:
            p.start = p.end = 0
        elif p.start and self.cap - p.end < want:
            memmove(self.buf, self.buf + p.start, live)
            p.start, p.end = 0, live
        if self.cap - p.end < want:
            self._grow(p.end + want)
        return 0

    cdef int _new_chunk(self, Py_ssize_t size) except -1:
        """Move the unparsed bytes to a fresh chunk; the old one lives on with its views."""
        cdef Parser p = self.p
        cdef Py_ssize_t live = p.end - p.start
        cdef _Chunk fresh = _Chunk(max(size, live))
        memcpy(fresh.data, self.buf + p.start, live)
        self._set_chunk(fresh)
        p.start, p.end = 0, live
        return 0

    cdef int _grow(self, Py_ssize_t size) except -1:
        cdef char *nb
        if self.chunk.exports:
            return self._new_chunk(size)
        nb = <char *>realloc(self.chunk.data, size)
        if nb == NULL:
            raise MemoryError()
        self.chunk.data, self.chunk.size = nb, size
        self._set_chunk(self.chunk)
        return 0

    # ------------------------------------------------------------ waiting

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

        Returns poll's revents, 0 on timeout, or ABANDONED when the partial message was
        dropped (its writer released the lock and the pipe stayed empty).
        """
        cdef double step
        cdef int rev
        cdef px.pollfd pfd
        cdef Parser p = self.p
        if not p.large_under_way():
            return self._wait(px.POLLIN, deadline)
        while True:
            # Check the lock first, then that the pipe is empty: a writer that wrote
            # its last fragment and unlocked in between leaves data we would see.
            # (Lines have no fragments and no writers' lock: an overlong line is
            # waited for to its newline, so no other reader ever gets its tail.)
            if p.framing == FRAMES and self._writer_gone():
                pfd.fd = self.fd
                pfd.events = px.POLLIN
                pfd.revents = 0
                if px.poll(&pfd, 1, 0) == 0:
                    p.drop_partial("its writer died or gave up part-way")
                    p.in_msg = False
                    return ABANDONED
            step = monotonic() + 0.1
            rev = self._wait(px.POLLIN, step if deadline < 0 or step < deadline else deadline)
            if rev:
                return rev
            if deadline >= 0 and monotonic() >= deadline:
                return 0


cdef inline object _cut(_ReaderBase r):
    """The message ``r.p.take()`` just cut, as bytes (or recorded in the batch: True).

    A function, not a method, so that it is inlined where messages are taken."""
    cdef Parser p = r.p
    cdef object msg = p.cut_obj
    if msg is not None:
        p.cut_obj = None
        if r.batch is not None:
            r.batch._add_bytes(msg)
            return True
        return msg
    if r.batch is not None:
        r.batch._add(r.chunk, p.cut_off, p.cut_len)
        return True
    return PyBytes_FromStringAndSize(r.buf + p.cut_off, p.cut_len)
