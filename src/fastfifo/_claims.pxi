# Included by _core.pyx (one extension module; see its docstring for the layout).
# _ClaimingReader: shared readers' claims (flock + tee/splice, or exact reads).  How much
# a claim takes is decided by the parser (Parser.claim_size / exact_want, in _parse.py).

# ---------------------------------------------------------------- reader: shared claims

cdef class _ClaimingReader(_ReaderBase):
    """Shared readers' claims: each message goes to exactly one reader (ReaderCore's docs)."""

    cdef int _fill_shared(self, double deadline) except -2:
        """Claim whole messages from a FIFO that other readers share; as _fill."""
        cdef int r, rev
        cdef bint first = True
        cdef Parser p = self.p
        while True:
            if not self.locked:
                # Optimistically try the lock and a claim first: when messages are
                # waiting that saves the poll() a blocked reader needs.
                if not (first and px.flock(self.rlock_fd, px.LOCK_EX | px.LOCK_NB) == 0):
                    rev = self._wait(px.POLLIN, deadline)
                    if rev == 0:
                        return TIMED_OUT
                    if not self._lock_wait(self.rlock_fd, False, deadline):
                        return TIMED_OUT
                self.locked = True
                # A fresh claim starts where the last claimer stopped, maybe another
                # reader: bad bytes there are a run of their own, reported on their own.
                p.resync = False
            first = False
            try:
                r = self._claim_tee() if self.use_tee else self._claim_exact()
            except BaseException:
                if not self._holding():
                    self._release()
                raise
            if r == CLAIMED:
                if not self._holding():
                    self._release()
                return FILLED
            if r == CLAIM_EOF:
                if p.in_msg:  # every writer left part-way through a message
                    if p.framing == FRAMES:
                        p.drop_partial("every writer left before it ended")
                    p.in_msg = False
                p.owe = 0
                self._release()
                return AT_EOF
            if p.owe:
                # Part-way through a frame (or line) this reader began taking: the rest
                # is its own, so it keeps the lock and the bytes it has, and waits (up
                # to the deadline: the next call goes on from here).
                if self._wait(px.POLLIN, deadline) == 0:
                    return TIMED_OUT
                continue
            if p.in_msg:
                # Mid-way through a large message: keep the lock (the next fragments
                # are ours), wait for them, and notice if their writer died.
                if r == HEAD_INCOMPLETE:
                    # Stray bytes short of a frame at the head (a foreign writer): poll()
                    # says readable at once, so back off instead of spinning.
                    if p.framing == FRAMES and self._writer_gone():
                        p.drop_partial("its writer died or gave up part-way")
                        p.in_msg = False
                        self._release()
                        return FILLED
                    if self._wait_wake(0.002, deadline) == 0:
                        return TIMED_OUT
                    continue
                rev = self._wait_data(deadline)
                if rev == ABANDONED:
                    self._release()
                    return FILLED
                if rev == 0:
                    return TIMED_OUT
                continue
            self._release()
            if r == HEAD_INCOMPLETE:
                # The head of the pipe is not a whole message yet (a shell writer's
                # line without its newline): back off instead of spinning on POLLIN.
                if self._wait_wake(0.002, deadline) == 0:
                    return TIMED_OUT
            elif deadline >= 0 and monotonic() >= deadline:
                return TIMED_OUT

    cdef inline bint _holding(self) noexcept:
        """Whether the pipe's head continues what this reader has begun taking."""
        return self.p.in_msg or self.p.owe != 0

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
        PyErr_CheckSignals()  # EINTR: run the handler (Ctrl-C ends the wait here)
        return 0 if deadline >= 0 and monotonic() >= deadline else 1

    cdef int _claim_tee(self) except -9:
        """Under the lock: peek with tee(), size the claim, consume exactly it (Claim)."""
        cdef Py_ssize_t n, got, k, r
        cdef int err
        cdef Parser p = self.p
        if p.owe:
            return self._claim_owed()
        if p.claim_max == 1 and not p.in_msg and p.framing == FRAMES:
            r = self._claim_one()
            if r != PEEK_WIDER:
                return r
        # Peek only about what this claim can take: every copy out of the peek pipe
        # is paid per claim.  One atomic write (<= PIPE_BUF) always holds a whole
        # frame, so 4 KiB per message wanted is enough to start; widen if it is not.
        cdef Py_ssize_t win = self.window
        if p.claim_max < self.window // 4096:  # (never claim_max * 4096: it may overflow)
            win = p.claim_max * 4096
        while True:
            n = self._peek(win)
            if n <= 0:
                return n
            k = p.claim_size(p.buf, p.end, n)
            if (k == 0 or p.c_wider) and n == win and win < self.window:
                win = min(self.window, win * 4)
                continue
            if k == 0 and self.stop_at_eof and self._wait(px.POLLIN, 0.0) & px.POLLHUP:
                k = n  # every writer left: the unfinished tail is ours to report (or
                p.c_in_msg = False  # hand out, for a last line without its newline)
            break
        if k == 0:
            return HEAD_INCOMPLETE
        got = 0
        while got < k:  # consume exactly what we claimed, without copying it again
            with nogil:
                if self.null_fd >= 0:
                    r = px.fastfifo_splice(self.fd, self.null_fd, k - got)
                else:  # no /dev/null (fastfifo.Queue): read the same bytes over their copy
                    r = read(self.fd, self.buf + p.end + got, k - got)
                err = errno
            if r <= 0:
                if r < 0 and (err == EINTR or err == EAGAIN):
                    PyErr_CheckSignals()
                    continue
                raise OSError(err, f"{os.strerror(err)} (consuming a claim)", self.path)
            got += r
        p.end += k
        p.in_msg = p.c_in_msg
        p.owe = p.c_owe
        return CLAIMED

    cdef Py_ssize_t _peek(self, Py_ssize_t win) except -9:
        """Under the lock: copy up to ``win`` bytes of the pipe's head to the buffer's end
        (tee() into the private pipe, then read it empty), consuming none of them.

        The count (> 0), or a Claim when there is nothing: NOTHING (empty, or a signal:
        its handler ran), CLAIM_EOF (empty, and every writer left).
        """
        cdef Py_ssize_t n, got = 0, r
        cdef int err
        cdef Parser p = self.p
        self._make_room(win)
        with nogil:
            n = px.fastfifo_tee(self.fd, self.peek_w, win)
            err = errno
        if n < 0:
            if err == EAGAIN:
                return NOTHING
            if err == EINTR:
                PyErr_CheckSignals()
                return NOTHING
            raise OSError(err, f"{os.strerror(err)} (peeking with tee)", self.path)
        if n == 0:
            # Empty with no writer.  As with read(): end of stream only if a writer came
            # and left (POLLHUP); a reader that never met one just waits.
            return CLAIM_EOF if self._wait(px.POLLIN, 0.0) & px.POLLHUP else NOTHING
        while got < n:  # drain the private pipe: it holds exactly the n bytes tee made
            with nogil:
                r = read(self.peek_r, self.buf + p.end + got, n - got)
                err = errno
            if r <= 0:
                if r < 0 and err == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise OSError(err, f"{os.strerror(err)} (reading the peek pipe)", self.path)
            got += r
        return n

    cdef int _claim_one(self) except -9:
        """Under the lock, a claim of one message: peek at its header only, then read it.

        A get() takes one message.  Peeking at a whole window for it copies up to 4 KiB
        out of the private pipe, under the lock, to find an 8-byte header, then moves
        the claimed bytes to /dev/null and keeps their copy.  Here the peek is the
        header's 8 bytes, and the frame is then read, exactly, straight into the buffer
        (the same number of system calls, a fraction of the copying).  Only for a whole
        message written in one atomic write (``Parser.head_frame_size``): all of it is
        in the pipe once its header is, so nothing is consumed that is not this claim.
        Anything else (a fragment, bad bytes, a frame too large to keep, a short head)
        is PEEK_WIDER: the window peek sorts it out, as before.
        """
        cdef Py_ssize_t n, got, k, r
        cdef int err
        cdef Parser p = self.p
        self._make_room(ATOMIC_MAX)
        n = self._peek(HEADER)
        if n <= 0:
            return n
        k = p.head_frame_size(<const unsigned char *>self.buf, p.end, n)
        if k == 0:
            return PEEK_WIDER
        got = 0
        while got < k:  # the frame, header again included, straight into the buffer
            with nogil:
                r = read(self.fd, self.buf + p.end + got, k - got)
                err = errno
            if r > 0:
                got += r
                continue
            if r < 0 and err == EINTR:
                PyErr_CheckSignals()
                continue
            if got == 0 and (r == 0 or err == EAGAIN):  # (the header is gone: another
                return NOTHING                            # reader broke the protocol)
            # Short of a frame whose header was there: a foreign writer's bytes that only
            # look like one.  What came is this claim's; the rest is owed, under the lock.
            if r < 0 and err != EAGAIN:
                raise OSError(err, f"{os.strerror(err)} (consuming a claim)", self.path)
            break
        p.end += got
        p.in_msg = False
        p.owe = k - got
        return CLAIMED

    cdef int _claim_owed(self) except -9:
        """Under the lock, part-way through a frame: read (some of) the rest it is owed.

        A frame too large to peek whole (or the payload of one too large to keep) is
        taken as it arrives, by plain reads of exactly its remaining bytes.
        """
        cdef Parser p = self.p
        cdef Py_ssize_t n = min(p.owe, self.window), r
        cdef int err
        self._make_room(n)
        while True:
            with nogil:
                r = read(self.fd, self.buf + p.end, n)
                err = errno
            if r > 0:
                p.end += r
                p.owe -= r
                return CLAIMED
            if r == 0:
                return CLAIM_EOF if self._wait(px.POLLIN, 0.0) & px.POLLHUP else NOTHING
            if err == EINTR:
                PyErr_CheckSignals()
            elif err == EAGAIN:
                return NOTHING
            else:
                raise OSError(err, os.strerror(err), self.path)

    cdef int _claim_exact(self) except -9:
        """No tee(): read exactly up to the end of one message, so none of the next.

        Frames: the header, then the payload; bad bytes up to the next possible header
        or the end of what the pipe holds; lines: byte by byte to the newline.  Each
        read takes at most what the message still lacks (``Parser.exact_want``).  When
        the pipe runs dry part-way, the bytes read stay in the buffer and ``owe`` says
        how many more are this reader's: it keeps the readers' lock (across calls) until
        they came.
        """
        cdef Py_ssize_t got = 0, want, n, r
        cdef bint owed = False
        cdef int err
        cdef Parser p = self.p
        p.x_at = 0
        p.x_junk = False
        p.x_frag = -1
        while True:
            want = p.exact_want()
            owed = p.x_owed
            if want == 0:
                if got:
                    break
                want = HEADER if p.framing == FRAMES else 1  # the next message begins
                owed = False
            elif got >= self.window or (p.framing == LINES and p.end - p.start > p.maxmsg):
                break  # enough for one call: the parser takes (or refuses) it from here
            n = min(want, self.window)
            self._make_room(n)
            with nogil:
                r = read(self.fd, self.buf + p.end, n)
                err = errno
            if r > 0:
                p.end += r
                got += r
                continue
            if r == 0:
                if got:
                    break
                p.owe = want if owed else 0
                return CLAIM_EOF if self._wait(px.POLLIN, 0.0) & px.POLLHUP else NOTHING
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if err != EAGAIN:
                raise OSError(err, os.strerror(err), self.path)
            break
        p.owe = want if owed else 0
        if p.x_frag == KIND_FIRST or p.x_frag == KIND_MIDDLE:
            p.in_msg = True
        elif p.x_frag == KIND_LAST:
            p.in_msg = False
        return CLAIMED if got else NOTHING
