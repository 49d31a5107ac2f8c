# Included by _core.pyx (one extension module; see its docstring for the layout).
# ReaderCore: reading from a FIFO alone or shared, and the public get calls.

# ---------------------------------------------------------------- reader: public calls

#: Least time between two reads while the writer is busy and the caller takes each
#: message at once (see ReaderCore._fill; the measurements are in docs/benchmarks.md).
#: A caller that spends this long per read never waits.
cdef double READ_GAP = 3e-6
#: Two paced reads in a row that brought one message only (the pause did not pay: the
#: writer is slow, or it is this very thread, as in put() then get()) stop pacing for
#: this many reads.
cdef int GAP_PAUSE = 256
#: A wait for data that returns sooner than this found the data already there.
cdef double BUSY_WAIT = 2e-6
#: How long a reader that is ahead of its writer keeps reading before it sleeps, and for
#: how many waits it stops after two spins found nothing (docs/guide.md, "Performance
#: notes").
cdef double SPIN_WAIT = 20e-6
cdef int SPIN_PAUSE = 256
#: ... and for at least this long: a caller that waits every few microseconds (a round
#: trip on one CPU) would otherwise spin in vain, twice, every 256 waits.
cdef double SPIN_PAUSE_TIME = 10e-3
#: The payload of a MIDDLE fragment as Linux writers cut them (PIPE_BUF - HEADER), and
#: how many of them one read takes straight into the message (ReaderCore._fill_middles).
cdef Py_ssize_t MIDDLE = ATOMIC_MAX - HEADER
import select as _select
#: Writers here cut fragments of that size (PIPE_BUF is 4096: Linux; macOS cuts 512).
cdef bint MIDDLES_IN_PLACE = _select.PIPE_BUF == ATOMIC_MAX
cdef enum:
    MIDDLES = 64

#: A large message from this size up is read fragment by fragment (see ReaderCore._fill).
cdef Py_ssize_t LARGE = 8 * MIDDLE


cdef inline bint _large_at(const char *buf, Py_ssize_t i, Py_ssize_t end, bint was) noexcept:
    """Whether the reads that follow should be small (see ReaderCore._fill): yes when
    ``buf[i:end]`` begins with the first fragment of a message of LARGE bytes or more,
    no when with a whole message, a smaller message's first fragment or no frame, and as
    ``was`` when with a later fragment (a large message's last one comes between two
    large messages) or too little to tell.  Only a read size depends on it."""
    cdef const unsigned char *h = <const unsigned char *>buf + i
    cdef int kind
    if end - i < 2:
        return was
    if h[0] != MAGIC:
        return False
    kind = h[1] & KIND_MASK
    if kind == KIND_FIRST:
        if end - i < 2 * HEADER:
            return was
        return load_u64(h, HEADER) >= <unsigned long long>LARGE
    return was and kind != KIND_WHOLE


cdef inline bint _one_whole_frame(const char *buf, Py_ssize_t i, Py_ssize_t end) noexcept:
    """Whether ``buf[i:end]`` is exactly one whole message (one valid WHOLE frame)."""
    cdef const unsigned char *h = <const unsigned char *>buf + i
    if end - i < HEADER or not header_valid(h, 0) or (h[1] & KIND_MASK) != KIND_WHOLE:
        return False
    return HEADER + <Py_ssize_t>header_length(h, 0) == end - i


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
        cdef Py_ssize_t r, want
        cdef int err, rev
        cdef bint first = True, paced = False
        cdef double until
        cdef Parser p = self.p
        if self.shared:
            return self._fill_shared(deadline)
        if MIDDLES_IN_PLACE and p.assembling() > MIDDLE and not self.eof_select:
            if self._fill_middles() > 0:
                return FILLED
        self._make_room(max(p.need - (p.end - p.start), 65536))
        if self.eof_select:
            return self._fill_select(deadline)
        if self.drained and self.busy:
            # The writer is busy and the caller needed no time since the last read: a
            # read now would bring a message or two, and every read() takes the pipe's
            # mutex that each write() needs too, so re-reading at once slows the writer
            # (docs/guide.md, "Performance notes").  Leave READ_GAP seconds between
            # reads, spinning without the GIL -- only where another CPU can run the
            # writer meanwhile.  A read that finds the pipe empty ends this until bytes
            # are again waiting when the caller comes back.
            if self.gap_skip:
                self.gap_skip -= 1
            elif not self._alone():
                until = self.t_read + READ_GAP
                with nogil:
                    while monotonic() < until:
                        pass
                paced = True
        elif self.drained and self.spin_skip:
            # The caller was ahead of the writer and spinning did not pay lately (the
            # writer needs this very CPU, or is slow): wait for data before reading,
            # one system call fewer than read, EAGAIN, poll, read -- or, where nothing
            # but a signal can end the wait, inside read() itself (_read_blocking).  If
            # the data was there already twice in a row, the writer is taken to be busy
            # again (once is the peer of a request/reply answering before this side
            # waited).
            until = monotonic()
            if self.spin_skip > 1 or until - self.t_pause >= SPIN_PAUSE_TIME:
                self.spin_skip -= 1
            r = self._read_blocking(deadline)
            if r > 0:
                p.end += r
            else:
                rev = self._wait_data(deadline)
                if rev == 0:
                    return TIMED_OUT
                if rev == ABANDONED:
                    return FILLED
            if monotonic() - until >= BUSY_WAIT:
                self.quick = 0
            else:
                self.quick += 1
                if self.quick >= 2:
                    self.busy = True
                    self.quick = 0
            if r > 0:
                return FILLED
            first = False
        # After a large message (LARGE bytes or more) came first in the buffer, read no
        # more than a fragment at a time outside _fill_middles: the next large message's
        # first fragment then comes alone, and its middle ones straight into it.
        want = self.cap - p.end
        if self.large and MIDDLES_IN_PLACE:
            want = min(want, ATOMIC_MAX)
        while True:
            with nogil:
                r = read(self.fd, self.buf + p.end, want)
                err = errno
            if r > 0:
                if first:
                    self.busy = True  # bytes were waiting when the caller came back
                    self.t_read = monotonic()
                self.drained = r < want
                p.end += r
                if paced:
                    if (self.drained and p.framing == FRAMES
                            and _one_whole_frame(self.buf, p.start, p.end)):
                        self.gap_miss += 1
                        if self.gap_miss >= 2:
                            self.gap_miss = 0
                            self.gap_skip = GAP_PAUSE
                    else:
                        self.gap_miss = 0
                self.large = (p.framing == FRAMES
                              and _large_at(self.buf, p.start, p.end, self.large))
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
                    if not self.spin_skip and self._spin():
                        continue
                rev = self._wait_data(deadline)
                if rev == 0:
                    return TIMED_OUT
                if rev == ABANDONED:
                    return FILLED
            elif err == EINTR:
                PyErr_CheckSignals()
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef Py_ssize_t _fill_middles(self) except -1:
        """Read the next fragments of the large message being reassembled straight into
        it: one readv() of payload, header, payload... with each payload's place the
        message's next bytes and each header into scratch.  One copy fewer than reading
        into the buffer and copying out.

        Only MIDDLE fragments are asked for (the LAST, which completes the message, is
        read as usual), and only when the buffer holds nothing or the beginning of a
        MIDDLE fragment: the bytes read are then the stream's next ones, the first of
        them that fragment's rest.  The fragments that come whole and are what was
        expected (a valid MIDDLE header of the usual length) count as received; from
        the first that is not (another writer's message between fragments, a new FIRST
        after a writer died, a short read) the bytes read go into the buffer in their
        order and are parsed as usual.  Returns the bytes read; 0 when nothing was read
        (the caller then reads, and waits, as usual).
        """
        cdef Parser p = self.p
        cdef Py_ssize_t left = p.assembling(), have = p.asm_have, avail = p.end - p.start
        cdef Py_ssize_t part = -1, m, j, r, used = 0, frags = 0, first = 0, k, n, rest
        cdef const unsigned char *head
        cdef unsigned char hdrs[MIDDLES * HEADER]
        cdef px.iovec iov[2 * MIDDLES + 1]
        cdef char *dst
        cdef char *lo
        cdef char *hi
        cdef bint populate
        cdef int err
        if left <= MIDDLE:
            return 0
        # Room first for all the read may put in the buffer (it may move the buffer's
        # bytes): once bytes are read, nothing may fail before they have a place.
        self._make_room(min(left, MIDDLES * (HEADER + MIDDLE)) + HEADER + MIDDLE)
        head = <const unsigned char *>self.buf + p.start
        if avail:
            if (avail < HEADER or avail >= HEADER + MIDDLE or not header_valid(head, 0)
                    or head[1] & KIND_MASK != KIND_MIDDLE
                    or header_length(head, 0) != MIDDLE):
                return 0
            part = avail - HEADER
        dst = PyBytes_AS_STRING(p.asm) + have
        if part >= 0:
            memcpy(dst, head + HEADER, part)
            iov[0].iov_base = dst + part
            iov[0].iov_len = MIDDLE - part
            first = 1
            left -= MIDDLE
            dst += MIDDLE
        m = min((left - 1) // MIDDLE, MIDDLES)  # each leaves a LAST to come
        for j in range(m):
            iov[first + 2 * j].iov_base = hdrs + j * HEADER
            iov[first + 2 * j].iov_len = HEADER
            iov[first + 2 * j + 1].iov_base = dst + j * MIDDLE
            iov[first + 2 * j + 1].iov_len = MIDDLE
        if first + 2 * m == 0:
            return 0
        # Memory above any this reader has filled before is likely fresh from the
        # system (a receiver that keeps its messages): fault its pages in first, in one
        # call, not one by one inside the copy with the pipe's mutex held (which the
        # writer then waits for).  Memory that is reused (a receiver that drops its
        # messages) has its pages already, and the call would only cost.
        lo = PyBytes_AS_STRING(p.asm) + have
        hi = dst + m * MIDDLE
        populate = <size_t>hi > self.fresh_above
        if populate:
            self.fresh_above = <size_t>hi
        with nogil:
            if populate:
                px.fastfifo_populate(lo, <size_t>(hi - lo))
            r = px.readv(self.fd, iov, first + 2 * m)
            err = errno
        if r <= 0:
            if r < 0 and err == EINTR:
                PyErr_CheckSignals()
            return 0
        k = 0  # the first piece of iov not taken as a fragment
        if part >= 0 and r >= MIDDLE - part:  # (else that fragment is still not whole)
            used, frags, k = MIDDLE - part, 1, 1
            p.start = p.end  # its header and first part were the buffer's bytes
        j = 0
        while k == first and j < m and r - used >= HEADER + MIDDLE:
            if (not header_valid(hdrs, j * HEADER)
                    or hdrs[j * HEADER + 1] & KIND_MASK != KIND_MIDDLE
                    or header_length(hdrs, j * HEADER) != MIDDLE):
                break
            used += HEADER + MIDDLE
            frags += 1
            j += 1
        if k == first:
            k = first + 2 * j
        p.asm_have = have + frags * MIDDLE
        rest = r - used
        while rest:
            n = min(rest, <Py_ssize_t>iov[k].iov_len)
            memcpy(self.buf + p.end, iov[k].iov_base, n)
            p.end += n
            rest -= n
            k += 1
        return r

    cdef bint _spin(self) noexcept:
        """Whether bytes arrived within SPIN_WAIT, looked for without sleeping.

        The caller is ahead of the writer (request/reply, a slow producer): where the
        writer runs on another CPU, a reply that comes within SPIN_WAIT is then taken
        without the sleep and the wake-up, and a round trip across CPUs is much shorter
        than two blocking processes make it.  It asks poll() with no timeout, which
        looks at the pipe without taking its mutex (a read() per turn would take the
        mutex every write() needs).  Two spins in a row that find nothing (the writer
        needs this very CPU, or is slow) stop spinning for the next SPIN_PAUSE waits,
        and for SPIN_PAUSE_TIME at least.
        """
        cdef px.pollfd pfd
        cdef int n = 0
        cdef double until = monotonic() + SPIN_WAIT
        pfd.fd = self.fd
        pfd.events = px.POLLIN
        with nogil:
            while True:
                pfd.revents = 0
                n = px.poll(&pfd, 1, 0)
                if n != 0 or monotonic() >= until:
                    break
        if n > 0:
            self.spin_miss = 0
            return True
        self.spin_miss += 1
        if self.spin_miss >= 2:
            self.spin_miss = 0
            self.spin_skip = SPIN_PAUSE
            self.t_pause = monotonic()
        return False

    cdef Py_ssize_t _read_blocking(self, double deadline) except -2:
        """Wait for bytes inside read() itself: what it read, or 0 (then poll as usual).

        A wait for ever, in a process with one Python thread, between whole messages:
        then nothing but a signal can need to end the wait (no other thread can call
        close(), no deadline, no writer to watch dying part-way through a message), and a
        blocking read() wakes with the bytes, one system call instead of poll() and read()
        (the round trip on one CPU, docs/benchmarks.md).  The read goes through a private
        blocking description of the FIFO (``fastfifo_blocking_twin``), opened at the
        first such wait, so no description shared with other processes changes mode.  A
        signal ends it with EINTR (Python's handlers do not restart system calls): its
        handler runs here, and the caller's poll() then sees a close() it made.  Where
        there is no twin (macOS, a refused open), the caller polls as before.
        """
        cdef Py_ssize_t r
        cdef int err
        cdef Parser p = self.p
        if (deadline >= 0 or self.twin == -2 or p.large_under_way()
                or not px.fastfifo_single_thread()):
            return 0
        if self.twin < 0:
            self.twin = px.fastfifo_blocking_twin(self.fd)
            if self.twin < 0:
                self.twin = -2
                return 0
        with nogil:
            r = read(self.twin, self.buf + p.end, self.cap - p.end)
            err = errno
        if r > 0:
            self.drained = r < self.cap - p.end
            return r
        if r < 0 and err == EINTR:
            PyErr_CheckSignals()
        return 0  # (0: no writer has the FIFO open; the caller's poll() sorts that out)

    cdef bint _alone(self) noexcept:
        """Whether this thread can run on one CPU only (asked again once a second)."""
        cdef double now = monotonic()
        if now - self.t_cpus >= 1.0:
            self.t_cpus = now
            self.alone = px.fastfifo_cpus() <= 1
        return self.alone

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

    # ------------------------------------------------------------ peek, then commit
    #
    # For fastfifo.relay: take whole messages from a shared FIFO without consuming
    # them, and consume exactly those bytes once they are safe elsewhere.  Internal
    # (underscore) API: see docs/relay.md for why it is not offered to local users.
    # The readers' lock and tee() are the claims'; what a peek holds is decided by the
    # parser (Parser.peek_size, in _parse.py).

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
        Reader with tee() (Linux).  At most ``max_messages`` (capped at 2**20), except
        that small messages interleaved with a large message's fragments come with it.

        What cannot be peeked whole is taken as ``get_many`` takes it (consumed at
        once; ``_peek_held`` is then 0): bad bytes, a message larger than
        ``max_message_size`` (both raised as get raises them), a message whose
        fragments do not fit in the peek window (256 KiB), and the rest of a large
        message whose writer died part-way.

        Raises Empty, EOFError, CorruptStreamError, MessageTooLargeError and
        ClosedError as ``get_many`` does; RuntimeError while a peek is held.
        """
        cdef Py_ssize_t n = min(check_count(self.path, max_messages), 1 << 20)
        cdef double deadline = to_deadline(timeout)
        cdef int status = NEED, r
        cdef list out = []
        cdef Parser p = self.p
        if not (self.shared and self.use_tee):
            raise ValueError(f"{self.path!r}: peeking needs a Reader opened with shared=True "
                             "on a system with tee() (Linux)")
        if not self._enter(deadline):
            raise texts.busy(self.path, "Reader", timeout)
        try:
            if self.peek_open:
                raise RuntimeError(f"{self.path!r}: a peek is held; _commit() or _abandon() "
                                   "it before peeking again")
            p.claim_max = n
            while True:
                # What an ordinary claim took (consumed) is handed out first.
                while len(out) < n:
                    status = p.take()
                    if status != GOT:
                        break
                    out.append(_cut(self))
                if out:
                    return out
                if status < 0:
                    p.raise_bad(status)
                if (self.locked or self._holding() or p.end > p.start or
                        p.asm is not None or p.asm_skip or p.discard or p.skip_line):
                    r = self._fill(deadline)  # go on with what an ordinary claim began
                else:
                    r = self._peek_claim(n, deadline)
                    if r == 1:
                        self.peek_open = True
                        try:
                            while True:
                                status = p.take()
                                if status != GOT:
                                    break
                                out.append(_cut(self))
                            if status != NEED or p.end != p.start or not out:
                                raise RuntimeError(f"{self.path!r}: a peek did not parse "
                                                   "into whole messages (a fastfifo bug)")
                        except BaseException:
                            self._abandon_held()
                            raise
                        return out
                if r == 0:
                    raise texts.no_message(self.path, timeout)
                if r < 0:
                    return [p.end_of_stream()]
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
        cdef Parser p = self.p
        while True:
            if not (first and px.flock(self.rlock_fd, px.LOCK_EX | px.LOCK_NB) == 0):
                if self._wait(px.POLLIN, deadline) == 0:
                    return 0
                if not self._lock_wait(self.rlock_fd, False, deadline):
                    return 0
            first = False
            self.locked = True
            p.resync = False
            try:
                r = self._peek_tee(n)
                if r == 1:
                    self.peek_held = p.end - p.start
                    return 1
                if r == 2:  # not for a peek: take it as a claim does
                    r = self._claim_tee()
                    if r == CLAIMED:
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
        cdef Py_ssize_t win = self.window
        cdef int err
        cdef bint gone = False
        cdef Parser p = self.p
        if want < self.window // 4096:
            win = want * 4096
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
                    r = read(self.peek_r, self.buf + p.end + got, n - got)
                    err = errno
                if r <= 0:
                    if r < 0 and err == EINTR:
                        PyErr_CheckSignals()
                        continue
                    raise OSError(err, f"{os.strerror(err)} (reading the peek pipe)",
                                  self.path)
                got += r
            cut = p.peek_size(p.buf, p.end, n, want, self.window)
            if (cut == 0 or p.pk_wider) and n == win and win < self.window:
                win = min(self.window, win * 4)
                continue
            if p.pk_how == PEEK_ORDINARY:
                return 2
            if cut:
                p.end += cut
                return 1
            if p.pk_how == PEEK_OPEN:
                # A large message at the head, not whole yet.  Its writer holds the
                # writers' lock until its last fragment is in the pipe; if the lock was
                # free before a peek that still lacks that fragment, it died part-way.
                if n == self.window or gone:
                    return 2
                if self._writer_gone():
                    gone = True
                    continue
                return -2
            if p.framing == LINES and (n > p.maxmsg or n > ATOMIC_MAX):
                return 2  # a line no writer wrote atomically: taken as it comes
            if n == self.window or (self.stop_at_eof and
                                    self._wait(px.POLLIN, 0.0) & px.POLLHUP):
                return 2
            return -2


# ---------------------------------------------------------------- reader over lent descriptors

cdef class BorrowingReaderCore(ReaderCore):
    """A ReaderCore over descriptors that its owner keeps, and closes (fastfifo.Queue).

    As ``BorrowingWriterCore``: no wake-up pipe of its own (``_wake_on``), and
    closing or collecting it closes none of the descriptors it was given
    (``_configure``, ``_share``).  A shared one that holds the readers' lock across
    calls keeps holding it until the owner closes the FIFO's descriptor.
    """

    def _attach(self, int fd, path):
        self.fd, self.path = fd, path
        self.twin = -2  # (its owner's descriptors: no twin of them either)

    def _wake_on(self, int fd):
        """Also end waits when ``fd`` is readable (or in error): the owner's wake-up."""
        self.wake_r = fd

    def _mid_message(self):
        """Whether the next call goes on from where this one stopped: bytes read and not
        returned, a message part-way received, or the readers' lock held across calls."""
        cdef Parser p = self.p
        return bool(self.locked or p.in_msg or p.owe or p.asm is not None
                    or p.asm_skip or p.end > p.start)

    cdef void _close_fds(self) noexcept:
        self.fd = self.wake_r = self.wake_w = -1
        self.rlock_fd = self.wlock_fd = self.peek_r = self.peek_w = self.null_fd = -1
