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
        self._report_drops()
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    cdef int _refill(self, int status, double deadline, timeout) except -1:
        """No whole message in the buffer: raise what ``status`` reports, else read more.

        1 when bytes arrived, 0 at the end of the stream; Empty at the deadline.
        """
        cdef int r
        if status < 0:
            self._raise_bad(status)
        self._report_drops()
        r = self._fill(deadline)
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

        Warns
        -----
        IncompleteMessageWarning
            A large message was cut short by its writer and dropped.
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
        cdef int status = NEED
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
                if not self._refill(status, deadline, timeout):
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

    # ------------------------------------------------------------ peek, then commit
    #
    # For fastfifo.relay: take whole messages from a shared FIFO without consuming
    # them, and consume exactly those bytes once they are safe elsewhere.  Internal
    # (underscore) API: see docs/relay.md for why it is not offered to local users.
    # Self-contained: the readers' lock, tee() and the parser are the claims' own.

    cdef Py_ssize_t peek_held   # bytes at the pipe's head the held peek covers
    cdef bint peek_open         # a peek holds the readers' lock until commit/abandon

    @property
    def _peek_held(self):
        """Bytes the held peek leaves in the pipe until ``_commit()`` (0: none held)."""
        return self.peek_held if self.peek_open else 0

    def _peek_many(self, max_messages=1000, timeout=None):
        """Return 1 or more whole messages, leaving them in the pipe under the readers' lock.

        The messages stay at the head of the pipe, and the readers' lock stays held,
        until ``_commit()`` consumes exactly them or ``_abandon()`` (or the death of
        this process, or ``close()``) leaves them for the next claim.  Needs a shared
        Reader with tee() (Linux).  At most ``max_messages``, except that small
        messages interleaved with a large message's fragments come together with it.

        What cannot be peeked whole is taken as ``get_many`` takes it (consumed at
        once; ``_peek_held`` is then 0): bad bytes, a message larger than
        ``max_message_size`` (both raised as get raises them), a message whose
        fragments do not fit in the peek window (256 KiB), and the rest of a large
        message whose writer died part-way.

        Raises Empty, EOFError, CorruptStreamError, MessageTooLargeError and
        ClosedError as ``get_many`` does; RuntimeError while a peek is held.
        """
        cdef Py_ssize_t n = _peek_count(max_messages)
        cdef double deadline = to_deadline(timeout)
        cdef int status = NEED, r
        cdef list out = []
        if not (self.shared and self.use_tee):
            raise ValueError(f"{self.path!r}: peeking needs a Reader opened with shared=True "
                             "on a system with tee() (Linux)")
        if not self._enter(deadline):
            raise Empty(f"{self.path!r}: another thread held the Reader for {timeout} s")
        try:
            if self.peek_open:
                raise RuntimeError(f"{self.path!r}: a peek is held; _commit() or _abandon() "
                                   "it before peeking again")
            self.claim_max = n
            while True:
                # What an ordinary claim took (consumed) is handed out first.
                while len(out) < n:
                    msg = self._take(&status)
                    if status != GOT:
                        break
                    out.append(msg)
                if out:
                    return out
                if status < 0:
                    self._raise_bad(status)
                self._report_drops()
                if (self.locked or self._holding() or self.end > self.start or
                        self.asm is not None or self.asm_skip or self.discard or
                        self.skip_line):
                    r = self._fill(deadline)  # go on with what an ordinary claim began
                else:
                    r = self._peek_claim(n, deadline)
                    if r == 1:
                        self.peek_open = True
                        try:
                            while True:
                                msg = self._take(&status)
                                if status != GOT:
                                    break
                                out.append(msg)
                            if status != NEED or self.end != self.start or not out:
                                raise RuntimeError(f"{self.path!r}: a peek did not parse "
                                                   "into whole messages (a fastfifo bug)")
                        except BaseException:
                            self._abandon_held()
                            raise
                        return out
                if r == 0:
                    raise Empty(f"{self.path!r}: no message within {timeout} s")
                if r < 0:
                    return [self._end_of_stream()]
        finally:
            self._leave()

    def _commit(self):
        """Consume exactly the bytes the held peek covers, and release the readers' lock.

        Does nothing when no peek is held (or the messages were taken the ordinary way).
        """
        cdef Py_ssize_t got = 0, r
        cdef int err
        self._enter(-1.0)
        try:
            if not self.peek_open:
                return
            try:
                while got < self.peek_held:
                    with nogil:
                        r = px.fastfifo_splice(self.fd, self.null_fd, self.peek_held - got)
                        err = errno
                    if r > 0:
                        got += r
                    elif r < 0 and err == EINTR:
                        continue  # never stop half-way: signals run after the commit
                    else:
                        raise OSError(
                            err if r < 0 else EAGAIN,
                            f"the pipe lost {self.peek_held - got} bytes a peek held (a reader "
                            "without shared=True, or cat, reads this FIFO too?)", self.path)
            finally:
                self.peek_open = False
                self.peek_held = 0
                self._release()
        finally:
            self._leave()

    def _abandon(self):
        """Release the readers' lock without consuming: the peeked messages stay first."""
        self._enter(-1.0)
        try:
            self._abandon_held()
        finally:
            self._leave()

    cdef void _abandon_held(self) noexcept:
        if self.peek_open:
            self.peek_open = False
            self.peek_held = 0
            self._release()

    cdef int _peek_claim(self, Py_ssize_t n, double deadline) except -9:
        """Under the call lock: 1 peeked (readers' lock kept), 2 an ordinary claim took
        bytes, 0 at the deadline, -1 at the end of the stream."""
        cdef int r
        cdef bint first = True
        while True:
            if not (first and px.flock(self.rlock_fd, px.LOCK_EX | px.LOCK_NB) == 0):
                if self._wait(px.POLLIN, deadline) == 0:
                    return 0
                if not self._lock_wait(self.rlock_fd, False, deadline):
                    return 0
            first = False
            self.locked = True
            self.resync = False
            try:
                r = self._peek_tee(n)
                if r == 1:
                    self.peek_held = self.end - self.start
                    return 1
                if r == 2:  # not for a peek: take it as a claim does
                    r = self._claim_tee()
                    if r == 1:
                        if not self._holding():
                            self._release()
                        return 2
            except BaseException:
                if not self._holding():
                    self._release()
                raise
            self._release()
            if r == -1:
                return -1
            if r == -2:  # the head is not whole yet: back off instead of spinning
                if self._wait_wake(0.002, deadline) == 0:
                    return 0
            elif deadline >= 0 and monotonic() >= deadline:
                return 0

    cdef int _peek_tee(self, Py_ssize_t want) except -9:
        """Under the readers' lock: peek whole messages into the buffer without consuming.

        1 peeked (``end`` moved past them), 2 the head needs an ordinary claim, 0 pipe
        empty, -1 end of stream, -2 the head is not whole yet.
        """
        cdef Py_ssize_t n, got, r, cut
        cdef Py_ssize_t win = min(self.window, want * 4096)
        cdef int err, how
        cdef bint wider, gone = False
        while True:
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
                return -1 if self._wait(px.POLLIN, 0.0) & px.POLLHUP else 0
            got = 0
            while got < n:
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
            cut = self._peek_size(<const uint8_t *>self.buf + self.end, n, want, &how, &wider)
            if (cut == 0 or wider) and n == win and win < self.window:
                win = min(self.window, win * 4)
                continue
            if how == PEEK_ORDINARY:
                return 2
            if cut:
                self.end += cut
                return 1
            if how == PEEK_OPEN:
                # A large message at the head, not whole yet.  Its writer holds the
                # writers' lock until its last fragment is in the pipe; if the lock was
                # free before a peek that still lacks that fragment, it died part-way.
                if n == self.window or gone:
                    return 2
                if self._writer_gone():
                    gone = True
                    continue
                return -2
            if self.framing == LINES and (n > self.maxmsg or n > ATOMIC_MAX):
                return 2  # a line no writer wrote atomically: taken as it comes
            if n == self.window or (self.stop_at_eof and
                                    self._wait(px.POLLIN, 0.0) & px.POLLHUP):
                return 2
            return -2

    cdef Py_ssize_t _peek_size(self, const uint8_t *p, Py_ssize_t n, Py_ssize_t want,
                               int *how, bint *wider) noexcept:
        """How many leading bytes of ``p[:n]`` are whole messages a peek can hold.

        Cuts only where no large message is open.  ``how``: PEEK_OK (some), PEEK_MORE
        (none whole yet), PEEK_OPEN (a large message at the head lacks fragments) or
        PEEK_ORDINARY (the head is for an ordinary claim: bad bytes, too large, ...).
        ``wider``: a wider peek may hold more.
        """
        cdef Py_ssize_t i = 0, cut = 0, count = 0, size
        cdef uint32_t length
        cdef unsigned long long total
        cdef int kind
        cdef bint open_ = False
        cdef const char *nl
        how[0] = PEEK_OK
        if self.framing == LINES:
            while i < n and count < want:
                nl = <const char *>memchr(p + i, NEWLINE, n - i)
                if nl == NULL:
                    wider[0] = True
                    break
                size = <const uint8_t *>nl - (p + i)
                if size > self.maxmsg:
                    if i == 0:
                        how[0] = PEEK_ORDINARY
                    break
                i += size + 1
                count += 1
            if i == 0 and how[0] == PEEK_OK:
                how[0] = PEEK_MORE
            return i
        while True:
            if n - i < HEADER:
                wider[0] = True
                break
            if not header_usable(p + i):
                if cut == 0:
                    how[0] = PEEK_ORDINARY
                break
            length = header_length(p + i)
            kind = p[i + 1] & KIND_MASK
            if i + HEADER + <Py_ssize_t>length > n:
                if i == 0 and HEADER + <Py_ssize_t>length > ATOMIC_MAX:
                    how[0] = PEEK_ORDINARY  # no writer wrote it atomically
                    return 0
                wider[0] = True
                break
            if kind == KIND_WHOLE:
                if length > <size_t>self.maxmsg:
                    if cut == 0:
                        how[0] = PEEK_ORDINARY
                    break
                count += 1
            elif kind == KIND_FIRST:
                total = load_u64(p + i + HEADER)
                if open_ or total > <unsigned long long>self.maxmsg or \
                        total >= <unsigned long long>self.window:
                    if cut == 0:
                        how[0] = PEEK_ORDINARY
                    break
                open_ = True
            else:
                if not open_:  # fragments whose beginning this reader did not see
                    if cut == 0:
                        how[0] = PEEK_ORDINARY
                    break
                if kind == KIND_LAST:
                    open_ = False
                    count += 1
            i += HEADER + length
            if open_:
                if count > want and cut:
                    break
                continue
            cut = i
            if count >= want:
                break
        if cut == 0 and how[0] == PEEK_OK:
            how[0] = PEEK_OPEN if open_ else PEEK_MORE
        return cut


cdef enum:
    PEEK_OK = 0
    PEEK_MORE = 1
    PEEK_OPEN = 2
    PEEK_ORDINARY = 3


cdef Py_ssize_t _peek_count(object max_messages) except -1:
    """``max_messages`` checked before any arithmetic: an int >= 1, capped at 2**20."""
    if isinstance(max_messages, bool) or not isinstance(max_messages, int):
        raise TypeError(f"max_messages must be an int, not {type(max_messages).__name__}")
    if max_messages < 1:
        raise ValueError(f"max_messages must be >= 1, not {max_messages}")
    return min(max_messages, 1 << 20)
