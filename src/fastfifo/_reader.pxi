# Included by _core.pyx (one extension module; see its docstring for the layout).
# ReaderCore: reading from a FIFO alone or shared, and the public get calls.

# ---------------------------------------------------------------- reader: public calls

#: Least time between two reads while the writer is busy and the caller takes each
#: message at once (see ReaderCore._fill).  3 us: 1, 3, 5 and 10 us gave 1.80M-1.85M
#: msg/s in the 1->1 put/get A/B; a caller that spends this long per read never waits.
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
        """Read more bytes: 1 when some arrived, 0 on timeout, -1 at end of stream."""
        cdef Py_ssize_t r
        cdef int err, rev
        cdef bint first = True
        cdef double until
        if self.shared:
            return self._fill_shared(deadline)
        self._make_room(max(self.need - (self.end - self.start), 65536))
        if self.eof_select:
            return self._fill_select(deadline)
        if self.drained and self.busy:
            # The writer is busy and the caller needed no time since the last read: a
            # read now would bring a message or two, and every read() takes the pipe's
            # mutex that each write() needs too, so re-reading at once slows the writer
            # (1->1 put/get: 1.65M msg/s re-reading at once, 1.82M with this pause; see
            # docs/guide.md, "Performance notes").  Leave READ_GAP seconds between
            # reads, spinning without the GIL.  A read that finds the pipe empty ends
            # this until bytes are again waiting when the caller comes back.
            until = self.t_read + READ_GAP
            with nogil:
                while monotonic() < until:
                    pass
        while True:
            with nogil:
                r = read(self.fd, self.buf + self.end, self.cap - self.end)
                err = errno
            if r > 0:
                if first:
                    self.busy = True  # bytes were waiting when the caller came back
                    self.t_read = monotonic()
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
                if first:
                    self.busy = first = False  # the caller is ahead of the writer
                rev = self._wait_data(deadline)
                if rev == 0:
                    return 0
                if rev == -3:
                    return 1
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
        while True:
            rev = self._wait_data(deadline)
            if rev == 0:
                return 0
            if rev == -3:
                return 1
            with nogil:
                r = read(self.fd, self.buf + self.end, self.cap - self.end)
                err = errno
            if r > 0:
                self.end += r
                return 1
            if r == 0:
                return -1
            if err == EINTR:
                PyErr_CheckSignals()
            elif err != EAGAIN:
                raise OSError(err, os.strerror(err), self.path)

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
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    cdef int _refill(self, int status, double deadline, timeout) except -1:
        """No whole message in the buffer: raise what ``status`` reports, else read more.

        1 when bytes arrived, 0 at the end of the stream; Empty at the deadline.
        """
        cdef int r
        if status < 0:
            self._raise_bad(status)
        try:
            r = self._fill(deadline)
        except MemoryError as e:
            # No room to grow the buffer for the message at its head (one larger than
            # the buffer, within max_message_size): drop that message, not the stream.
            if status == NEED and self.need > self.cap and self.end > self.start:
                self._raise_bad(NO_MEMORY, e)
            raise
        if r == 0:
            raise Empty(f"{self.path!r}: no message within {timeout} s")
        return r > 0

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

        Notes
        -----
        A large message cut short by its writer is dropped, counted in
        ``dropped_messages`` and logged (WARNING) on the ``fastfifo`` logger.
        """
        cdef double deadline = to_deadline(timeout)
        cdef int status
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            self.claim_max = 1
            while True:
                msg = self._take(&status)
                if status == GOT:
                    return msg
                if not self._refill(status, deadline, timeout):
                    return self._end_of_stream()
        finally:
            self._leave()

    def get_many(self, max_messages=1000, timeout=None):
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
        return self._get_many(self._count_arg(max_messages), timeout, None)

    def get_batch(self, max_messages=1000, timeout=None):
        """As ``get_many``, but without copying: a ``MessageBatch`` of read-only views.

        One object per call however many messages it holds; a view per message is
        made only when you index or iterate.  The bytes stay valid while the batch
        or any view from it is alive (the Reader reads into a fresh buffer
        meanwhile); drop the batch to let the Reader reuse its buffer.
        """
        cdef Py_ssize_t n = self._count_arg(max_messages)
        cdef MessageBatch batch = MessageBatch()
        self._get_many(n, timeout, batch)
        return batch

    cdef list _get_many(self, Py_ssize_t max_messages, timeout, MessageBatch batch):
        cdef double deadline = to_deadline(timeout)
        cdef int status = NEED
        cdef bint read_more = True
        cdef list out = []
        cdef Py_ssize_t count = 0
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
                if not self._refill(status, deadline, timeout):
                    msg = self._end_of_stream()
                    if batch is not None:
                        batch._add_bytes(msg)
                    return [msg]
        finally:
            self.batch = None
            self._leave()

    cdef Py_ssize_t _count_arg(self, object n) except -1:
        """``max_messages`` as a C size: any int >= 1 (a huge one means "all there are")."""
        try:
            v = operator.index(n)
        except TypeError:
            raise TypeError(f"{self.path!r}: max_messages must be an int >= 1, not "
                            f"{type(n).__name__}") from None
        if v < 1:
            raise ValueError(f"{self.path!r}: max_messages must be >= 1, not {v}")
        return v if v < PY_SSIZE_T_MAX else PY_SSIZE_T_MAX

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
