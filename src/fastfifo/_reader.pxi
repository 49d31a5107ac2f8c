# Included by _core.pyx (one extension module; see its docstring for the layout).
# ReaderCore: reading from a FIFO alone or shared, and the public get calls.

# ---------------------------------------------------------------- reader: public calls

#: Least time between two reads while the writer is busy and the caller takes each
#: message at once (see ReaderCore._fill; the measurements are in docs/benchmarks.md).
#: A caller that spends this long per read never waits.
cdef double READ_GAP = 3e-6

cdef class ReaderCore(_ClaimingReader):
    """Reads into one growing buffer and cuts whole messages out of it.

    Shared mode (several reader processes on one FIFO, each message to exactly one):
    a reader takes the readers' flock, peeks at the head of the pipe with tee()
    (nothing is consumed), finds where whole frames end, consumes exactly those
    bytes with splice() to /dev/null, and unlocks.  A reader killed at any point
    before the splice consumed nothing; after it, it holds only its claim.  Without
    tee() (macOS) the claim is one message read exactly (header, then payload).
    """

    cdef int _fill(self, double deadline) except -2:
        """Read more bytes: FILLED, TIMED_OUT or AT_EOF (see the Fill enum)."""
        cdef Py_ssize_t r
        cdef int err, rev
        cdef bint first = True
        cdef double until
        cdef Parser p = self.p
        if self.shared:
            return self._fill_shared(deadline)
        self._make_room(max(p.need - (p.end - p.start), 65536))
        if self.eof_select:
            return self._fill_select(deadline)
        if self.drained and self.busy:
            # The writer is busy and the caller needed no time since the last read: a
            # read now would bring a message or two, and every read() takes the pipe's
            # mutex that each write() needs too, so re-reading at once slows the writer
            # (docs/guide.md, "Performance notes").  Leave READ_GAP seconds between
            # reads, spinning without the GIL.  A read that finds the pipe empty ends
            # this until bytes are again waiting when the caller comes back.
            until = self.t_read + READ_GAP
            with nogil:
                while monotonic() < until:
                    pass
        while True:
            with nogil:
                r = read(self.fd, self.buf + p.end, self.cap - p.end)
                err = errno
            if r > 0:
                if first:
                    self.busy = True  # bytes were waiting when the caller came back
                    self.t_read = monotonic()
                self.drained = r < self.cap - p.end
                p.end += r
                return FILLED
            if r == 0:
                # No writer has the FIFO open (only O_RDONLY readers see this).  A
                # reader that has not met a writer yet reads 0 too, but poll() shows
                # no POLLHUP until a writer came and left (fs/pipe.c suppresses it).
                rev = self._wait(px.POLLIN, 0.0)
                if rev & px.POLLIN:
                    continue
                if rev & px.POLLHUP:
                    return AT_EOF
                if self._wait_data(deadline) == 0:
                    return TIMED_OUT
            elif err == EAGAIN:
                if first:
                    self.busy = first = False  # the caller is ahead of the writer
                rev = self._wait_data(deadline)
                if rev == 0:
                    return TIMED_OUT
                if rev == ABANDONED:
                    return FILLED
            elif err == EINTR:
                PyErr_CheckSignals()
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef int _fill_select(self, double deadline) except -2:
        """_fill for a stop_at_eof Reader where poll() cannot see the last writer leave.

        macOS's poll() and kqueue never report it; select() does, once: the read that
        returns 0 clears it.  So wait in select() before every read, and a read that
        finds nothing right after select() said readable is the end of the stream (a
        read() gives 0 only while no writer has the FIFO open).  A reader that never
        met a writer is not readable, so it waits, as on Linux.
        """
        cdef Py_ssize_t r
        cdef int err, rev
        cdef Parser p = self.p
        while True:
            rev = self._wait_data(deadline)
            if rev == 0:
                return TIMED_OUT
            if rev == ABANDONED:
                return FILLED
            with nogil:
                r = read(self.fd, self.buf + p.end, self.cap - p.end)
                err = errno
            if r > 0:
                p.end += r
                return FILLED
            if r == 0:
                return AT_EOF
            if err == EINTR:
                PyErr_CheckSignals()
            elif err != EAGAIN:
                raise OSError(err, os.strerror(err), self.path)

    cdef int _refill(self, int status, double deadline, timeout) except -1:
        """No whole message in the buffer: raise what ``status`` reports, else read more.

        1 when bytes arrived, 0 at the end of the stream; Empty at the deadline.
        """
        cdef int r
        if status < 0:
            self.p.raise_bad(status)
        try:
            r = self._fill(deadline)
        except MemoryError as e:
            # No room to grow the buffer for the message at its head (one larger than
            # the buffer, within max_message_size): drop that message, not the stream.
            if status == NEED and self.p.too_big_for_memory(self.cap):
                self.p.raise_bad(NO_MEMORY, e)
            raise
        if r == TIMED_OUT:
            raise texts.no_message(self.path, timeout)
        return r == FILLED

    # ------------------------------------------------------------ public calls

    def get(self, timeout=None):
        """(The docstring is _docs.py's, set at import.)"""
        cdef double deadline = to_deadline(timeout)
        cdef int status
        cdef Parser p = self.p
        if not self._enter(deadline):
            raise texts.busy(self.path, "Reader", timeout)
        try:
            p.claim_max = 1
            while True:
                status = p.take()
                if status == GOT:
                    if p.cut_obj is None:  # (the common case, inline)
                        return PyBytes_FromStringAndSize(self.buf + p.cut_off, p.cut_len)
                    return _cut(self)
                if not self._refill(status, deadline, timeout):
                    return p.end_of_stream()
        finally:
            self._leave()

    def get_many(self, max_messages=1000, timeout=None):
        """(The docstring is _docs.py's, set at import.)"""
        return self._get_many(check_count(self.path, max_messages), timeout, None)

    def get_batch(self, max_messages=1000, timeout=None):
        """(The docstring is _docs.py's, set at import.)"""
        cdef Py_ssize_t n = check_count(self.path, max_messages)
        cdef MessageBatch batch = MessageBatch()
        self._get_many(n, timeout, batch)
        return batch

    cdef list _get_many(self, Py_ssize_t max_messages, timeout, MessageBatch batch):
        cdef double deadline = to_deadline(timeout)
        cdef int status = NEED
        cdef bint read_more = True
        cdef list out = []
        cdef Py_ssize_t count = 0
        cdef Parser p = self.p
        if not self._enter(deadline):
            raise texts.busy(self.path, "Reader", timeout)
        try:
            p.claim_max = max_messages
            self.batch = batch
            while True:
                while count < max_messages:
                    status = p.take()
                    if status != GOT:
                        break
                    if batch is None:
                        if p.cut_obj is None:  # (the common case, inline)
                            out.append(PyBytes_FromStringAndSize(self.buf + p.cut_off,
                                                                 p.cut_len))
                        else:
                            out.append(_cut(self))
                    else:
                        _cut(self)
                    count += 1
                if count >= max_messages:
                    return out
                if count:
                    if status < 0 or not read_more or self.shared or self.drained:
                        return out
                    # A batch's views must all be in one chunk: read more only where
                    # it fits after ``end``, so the buffer cannot move.
                    if batch is not None and self.cap - p.end < 65536:
                        return out
                    read_more = False
                    # One more read without waiting: what the writer queued meanwhile.
                    if self._fill(0.0) <= 0:
                        return out
                    continue
                if not self._refill(status, deadline, timeout):
                    msg = p.end_of_stream()
                    if batch is not None:
                        batch._add_bytes(msg)
                    return [msg]
        finally:
            self.batch = None
            self._leave()

    def __iter__(self):
        return self

    def __next__(self):
        """The next message.  A worker loop survives bad input: bytes that are not
        messages and messages too large to keep are skipped, logged (WARNING, on the
        ``fastfifo`` logger, once per event with the path and the count) and the loop
        goes on; the end of the stream or ``close()`` ends it."""
        while True:
            try:
                return self.get()
            except (EOFError, ClosedError):
                raise StopIteration
            except (CorruptStreamError, MessageTooLargeError) as e:
                report_loss(str(e))
