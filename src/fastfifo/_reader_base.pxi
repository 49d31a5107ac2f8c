# Included by _core.pyx (one extension module; see its docstring for the layout).
# _ReaderBase: receive buffer, frame and line parser, fragments, waiting for data.

# ---------------------------------------------------------------- reader: buffer and parser

cdef class _ReaderBase(_Endpoint):
    """A Reader's state, receive buffer and message parser (no waiting for claims here)."""
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
    cdef bint busy            # the last read found bytes waiting: the writer is busy
    cdef double t_read        # monotonic time of the last read that returned bytes
    # a large message being reassembled from its fragments
    cdef object asm           # the bytes object being filled, or None
    cdef Py_ssize_t asm_total, asm_have
    cdef bint asm_skip        # dropping the fragments of a message that is not delivered
    cdef bint orphan          # inside fragments whose first one this reader never got
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

    def _configure(self, int fd, path, int framing, Py_ssize_t max_message_size,
                   Py_ssize_t buffer_size, bint stop_at_eof, int wlock_fd=-1,
                   bint wlock_ofd=True):
        self.chunk = _Chunk(max(buffer_size, 4096))
        self.buf, self.cap = self.chunk.data, self.chunk.size
        self._attach(fd, path)  # first: see WriterCore._configure
        self.framing, self.maxmsg, self.stop_at_eof = framing, max_message_size, stop_at_eof
        self.wlock_fd = fd if wlock_fd < 0 else wlock_fd
        self.wlock_ofd = wlock_ofd

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
        cdef Py_ssize_t n = self.end - self.start - self.discard
        if not self.closing:
            if self.asm is not None:
                self._drop_partial("the Reader closed before it ended")
            if n > 0 and not self.skip_line:
                report_loss(f"{self.path!r}: the Reader closed with {n} bytes read from the "
                            f"FIFO and not yet returned as messages; they are lost (take "
                            f"every message before closing, or use shared=True: a shared "
                            f"Reader holds only what its calls return)")
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
                if avail < HEADER and not prefix_impossible(p, avail):
                    self.need = HEADER
                    status[0] = NEED
                    return None
                if avail < HEADER or not header_valid(p):
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
                try:
                    msg = self._fragment(kind, p + HEADER, length)
                except MemoryError:  # no room for the whole message: drop it, go on
                    status[0] = NO_MEMORY
                    return None
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

    cdef int _drop_partial(self, reason) except -1:
        """Drop the large message being reassembled; count and report it (at once, once)."""
        self.dropped_messages += 1
        if self.asm is not None:
            what = f"a large message ({self.asm_have} of {self.asm_total} bytes received)"
        else:
            what = "an incomplete large message"
        self.asm = None
        self.asm_skip = False
        report_loss(f"{self.path!r}: dropped {what}: {reason} "
                    f"({self.dropped_messages} dropped by this reader so far)")
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

    cdef int _raise_bad(self, int status, object cause=None) except -1:
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
        size = f"{'at least ' if self.framing == LINES else ''}{n} bytes"
        if status == NO_MEMORY:
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {size} could not be allocated in this process "
                f"(MemoryError); it was discarded and the messages after it are still "
                f"delivered (free memory, or set a lower max_message_size to refuse such "
                f"messages up front)") from cause
        raise MessageTooLargeError(
            f"{self.path!r}: a message of {size} exceeds max_message_size={self.maxmsg}; "
            f"it was discarded and the messages after it are still delivered (raise "
            f"max_message_size to receive it)")

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
