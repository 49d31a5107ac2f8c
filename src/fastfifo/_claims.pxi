# Included by _core.pyx (one extension module; see its docstring for the layout).
# _ClaimingReader: shared readers' claims (flock + tee/splice, or exact reads).

# ---------------------------------------------------------------- reader: shared claims

cdef class _ClaimingReader(_ReaderBase):
    """Shared readers' claims: each message goes to exactly one reader (ReaderCore's docs)."""

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
        PyErr_CheckSignals()  # EINTR: run the handler (Ctrl-C ends the wait here)
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
        cdef Py_ssize_t win = self.window
        if self.claim_max < self.window // 4096:  # (never claim_max * 4096: it may overflow)
            win = self.claim_max * 4096
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
                        PyErr_CheckSignals()
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
                    PyErr_CheckSignals()
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
        while i < n:
            if n - i < HEADER and not (i == 0 and prefix_impossible(p, n)):
                break  # a header still arriving (or one a foreign writer left short, below)
            if n - i < HEADER or not header_usable(p + i):
                if i:
                    break
                j = 1  # garbage at the head: take it up to the next possible header
                while j < n and not (p[j] == MAGIC and (n - j < HEADER or header_valid(p + j))):
                    j += 1
                wider[0] = j == n
                return j
            length = header_length(p + i)
            kind = p[i + 1] & KIND_MASK
            if count >= self.claim_max and (kind == KIND_WHOLE or kind == KIND_FIRST):
                # Mid-way through a large message with the claim full: take only its
                # fragments, so a claim holds at most max_messages plus that message
                # (the lock stays held until its last fragment, over later calls).
                break
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
