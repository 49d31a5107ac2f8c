# Included by _core.pyx (one extension module; see its docstring for the layout).
# _Endpoint: the fd, wake-up pipe and call lock every endpoint has.

# ---------------------------------------------------------------- endpoint base

cdef class _Endpoint:
    """An fd, a wake-up pipe and a lock that serialises calls from several threads.

    ``close()`` never frees an fd another thread is waiting on: it marks the
    endpoint closing and writes to the wake-up pipe; whichever of ``close()`` and
    the busy call gets the lock last closes the fds (all under the GIL).
    """
    cdef int fd
    cdef int wake_r
    cdef int wake_w
    cdef bint closing
    cdef bint eof_select      # wait for POLLIN with select(), which sees the last writer leave
    cdef PyThread_type_lock lock
    cdef readonly object path
    cdef object closed_reason

    def __cinit__(self, *args, **kwargs):
        self.fd = -1
        self.wake_r = -1
        self.wake_w = -1
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self._close_fds()
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    def _attach(self, int fd, path):
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.fd, self.wake_r, self.wake_w, self.path = fd, r, w, path

    cdef void _close_fds(self) noexcept:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        if self.wake_r >= 0:
            close(self.wake_r)
            self.wake_r = -1
        if self.wake_w >= 0:
            close(self.wake_w)
            self.wake_w = -1

    cdef int _enter(self, double deadline) except -1:
        """Take the call lock; 1 when taken, 0 when the deadline passed first.

        Waits in slices of at most 50 ms with signals allowed to interrupt, running the
        signal handlers after each (so Ctrl-C ends the wait at once where the lock wait
        is interruptible, and within 50 ms where it is not) and checking ``close()``.
        """
        cdef long long us
        cdef double left
        cdef px.PyLockStatus st
        if self.closing:
            self._raise_closed()
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            while True:
                us = 50000
                if deadline >= 0:
                    left = deadline - monotonic()
                    if left < 0.05:
                        us = <long long>(left * 1e6) if left > 0 else 0
                with nogil:
                    st = px.PyThread_acquire_lock_timed(self.lock, us, 1)
                if st == px.PY_LOCK_ACQUIRED:
                    break
                PyErr_CheckSignals()
                if self.closing:
                    self._raise_closed()
                if deadline >= 0 and monotonic() >= deadline:
                    return 0
        if self.closing:
            self._leave()  # the last thread out closes the fds (see _leave)
            self._raise_closed()
        return 1

    cdef void _leave(self) noexcept:
        """Release the call lock.  Once closing, whoever can take the lock again closes the
        fds: every thread that held it passes here, so the last one out always does."""
        PyThread_release_lock(self.lock)
        if self.closing and PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            self._close_fds()
            PyThread_release_lock(self.lock)

    cdef int _raise_closed(self) except -1:
        raise texts.closed(type(self).__name__, self.path, self.closed_reason)

    def close(self):
        """Close the endpoint (idempotent); a call blocked in another thread raises ClosedError."""
        cdef char one = b"x"
        self.closing = True
        if self.wake_w >= 0:
            write(self.wake_w, &one, 1)
        if PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            self._close_fds()
            PyThread_release_lock(self.lock)

    @property
    def _waits_in_select(self):
        """Whether waits for data use select() (see ReaderCore._fill_select); for tests."""
        return self.eof_select

    @property
    def closed(self):
        """True once ``close()`` was called."""
        return self.closing

    def fileno(self):
        """The FIFO's file descriptor (non-blocking), for ``select``/``poll``/event loops."""
        if self.closing:
            self._raise_closed()
        return self.fd

    cdef int _wait(self, short events, double deadline) except -1:
        """poll() the FIFO for ``events``; its revents, or 0 once the deadline passed.

        With ``eof_select`` a wait for POLLIN uses select() instead (see
        ReaderCore._fill_select); readable is then reported as POLLIN.
        """
        cdef px.pollfd fds[2]
        cdef int ms, r, err, fd_ready = 0, wake_ready = 0
        cdef double left
        while True:
            if self.fd < 0:
                # Closed under this wait: a signal handler that forked leaves the child
                # here with the parent's descriptors closed (_after_fork_in_child), and
                # poll() ignores a negative fd, so it would sleep for ever.
                self._raise_closed()
            fds[0].fd = self.fd
            fds[0].events = events
            fds[0].revents = 0
            fds[1].fd = self.wake_r
            fds[1].events = px.POLLIN
            fds[1].revents = 0
            if deadline < 0:
                ms = -1
            else:
                left = deadline - monotonic()
                ms = 0 if left <= 0 else <int>ceil(min(left, 86400.0) * 1000.0)
            if self.eof_select and events == px.POLLIN:
                with nogil:
                    r = px.fastfifo_select_in(self.fd, self.wake_r, ms, &fd_ready, &wake_ready)
                    err = errno
                if r == -2:  # an fd above FD_SETSIZE: poll() from now on (no EOF on macOS)
                    self.eof_select = False
                    continue
                fds[0].revents = px.POLLIN if fd_ready else 0
                fds[1].revents = px.POLLIN if wake_ready else 0
            else:
                with nogil:
                    r = px.poll(fds, 2, ms)
                    err = errno
            if r < 0:
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise OSError(err, os.strerror(err), self.path)
            if fds[1].revents or (fds[0].revents & px.POLLNVAL):
                self._raise_closed()
            if fds[0].revents:
                return fds[0].revents
            if ms == 0 or (deadline >= 0 and monotonic() >= deadline):
                return 0

    cdef int _lock_wait(self, int fd, bint ofd, double deadline) except -1:
        """Take flock(LOCK_EX) (ofd false) or the OFD write lock on byte 0 of ``fd``.

        1 when taken, 0 when the deadline passed first.  Never a blocking lock call:
        a few yields first (claims hold the lock for microseconds), then sleeps of
        25 us to 2 ms in ppoll() on the wake-up pipe, so close() and timeouts still work
        while another process holds the lock through a large message.
        """
        cdef int r, err, spins = 0
        cdef double us = 0, left
        while True:
            if self.fd < 0:  # closed by a handler that forked (see _wait)
                self._raise_closed()
            with nogil:
                if ofd:
                    r = px.fastfifo_ofd_lock(fd, px.F_WRLCK)
                else:
                    r = px.flock(fd, px.LOCK_EX | px.LOCK_NB)
                err = errno
            if r == 0:
                return 1
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if err != EAGAIN and err != EACCES:  # EWOULDBLOCK == EAGAIN on Linux and macOS
                raise OSError(err, f"{os.strerror(err)} (taking the "
                              f"{'writer' if ofd else 'reader'} lock)", self.path)
            PyErr_CheckSignals()
            if deadline >= 0 and monotonic() >= deadline:
                return 0
            if spins < 20:
                spins += 1
                with nogil:
                    px.sched_yield()
                continue
            # The holder is descheduled (more processes than cores) or receiving a
            # large message: sleep 25 us doubling to 2 ms, woken early by close().
            # (Microseconds in a double: a long timeout never overflows an int.)
            us = 25.0 if us == 0 else min(us * 2, 2000.0)
            if deadline >= 0:
                left = (deadline - monotonic()) * 1e6
                if left < us:
                    us = max(1.0, left + 1.0)
            with nogil:
                r = px.fastfifo_sleep_on(self.wake_r, <long>us)
            if r > 0:
                self._raise_closed()
            # r < 0 with EINTR: a signal arrived; PyErr_CheckSignals() above runs its
            # handler on the next turn (KeyboardInterrupt ends the wait there).

    cdef void _unlock(self, int fd, bint ofd) noexcept:
        if ofd:
            px.fastfifo_ofd_lock(fd, px.F_UNLCK)
        else:
            px.flock(fd, px.LOCK_UN)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
