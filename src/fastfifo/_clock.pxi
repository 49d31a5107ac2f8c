# Included by _core.pyx (one extension module; see its docstring for the layout).
# The clock, deadlines, SIGPIPE-safe writes, and peeking at a pipe (for fastfifo.Queue).

# ---------------------------------------------------------------- time and signals

cdef inline double monotonic() noexcept nogil:
    cdef px.timespec ts
    px.clock_gettime(px.CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef double FOREVER = 1e9   # _open.FOREVER: timeouts from here up wait for ever


cdef double to_deadline(object timeout) except? -2.0:
    """-1.0 means no deadline (block for ever); 0 or more is a monotonic time.

    The rules are ``_open.check_timeout``'s (None, inf or >= FOREVER wait for ever, a
    negative timeout does not wait, NaN and non-numbers are refused); an ordinary float
    or int in range takes this fast path, anything else the rules themselves.
    """
    cdef double t = -1.0
    if timeout is None:
        return -1.0
    if PyFloat_CheckExact(timeout):
        t = PyFloat_AS_DOUBLE(timeout)
    elif PyLong_CheckExact(timeout) and -0x20000000000000 < timeout < 0x20000000000000:
        t = timeout
    if 0.0 <= t < FOREVER:
        return monotonic() + t
    wait = check_timeout(timeout)
    return -1.0 if wait is None else monotonic() + <double>wait


cdef Py_ssize_t guarded_write(int fd, const char *p, size_t n, int *err) noexcept nogil:
    # SIGPIPE is at SIG_DFL (an embedder, or a child that reset it): block it for
    # this write so EPIPE comes back as an error instead of killing the process,
    # then consume the signal the failed write queued before unblocking.
    cdef sigset_t pipe_only, old
    px.sigemptyset(&pipe_only)
    px.sigaddset(&pipe_only, px.SIGPIPE)
    px.pthread_sigmask(px.SIG_BLOCK, &pipe_only, &old)
    cdef Py_ssize_t r = write(fd, p, n)
    err[0] = errno
    if r < 0 and err[0] == EPIPE and not px.sigismember(&old, px.SIGPIPE):
        px.fastfifo_consume_sigpipe()
    px.pthread_sigmask(px.SIG_SETMASK, &old, NULL)
    return r


cdef Py_ssize_t guarded_writev(int fd, const px.iovec *iov, int count,
                               int *err, bint pages=False) noexcept nogil:
    # As guarded_write, for one writev() (``pages``: one vmsplice() of the same pieces).
    cdef sigset_t pipe_only, old
    px.sigemptyset(&pipe_only)
    px.sigaddset(&pipe_only, px.SIGPIPE)
    px.pthread_sigmask(px.SIG_BLOCK, &pipe_only, &old)
    cdef Py_ssize_t r = (px.fastfifo_vmsplice(fd, iov, count) if pages
                         else px.writev(fd, iov, count))
    err[0] = errno
    if r < 0 and err[0] == EPIPE and not px.sigismember(&old, px.SIGPIPE):
        px.fastfifo_consume_sigpipe()
    px.pthread_sigmask(px.SIG_SETMASK, &old, NULL)
    return r


def sigpipe_is_default():
    """True when SIGPIPE would kill this process now (its disposition is SIG_DFL).

    Asks the kernel, not Python's table: an embedding host may have reset it.
    """
    cdef sigaction_t sa
    sigaction(px.SIGPIPE, NULL, &sa)
    return sa.sa_handler == SIG_DFL


# Python's own record of the SIGPIPE disposition (``_signal.getsignal``: no system call).
# It starts as the kernel's and follows every ``signal.signal()``.
import _signal
cdef object _getsignal = _signal.getsignal
cdef object _SIGPIPE_NUM = int(px.SIGPIPE)
cdef object _SIG_DFL_OBJ = _signal.SIG_DFL


cdef double _kernel_asked = -1.0    # when the kernel was last asked (monotonic seconds)
cdef bint _kernel_default = False   # what it said


cdef inline bint sigpipe_may_kill(bint at_open) except -1:
    """Whether a write now must guard against SIGPIPE (decided per write, not once).

    ``at_open``: the kernel said SIG_DFL when the Writer opened.  Then Python's table,
    which every ``signal.signal(SIGPIPE, ...)`` updates at once (the stdlib's idiom for
    command-line tools).  Then the kernel itself, asked again once a millisecond: a C
    library that resets SIGPIPE behind Python's back is seen within 1 ms (asking on
    every write would add a system call per message: docs/guide.md, "SIGPIPE").
    """
    global _kernel_asked, _kernel_default
    cdef sigaction_t sa
    cdef double now
    if at_open:
        return True
    h = _getsignal(_SIGPIPE_NUM)
    if h is _SIG_DFL_OBJ or h == _SIG_DFL_OBJ:
        return True
    now = monotonic()
    if now - _kernel_asked >= 0.001:
        sigaction(px.SIGPIPE, NULL, &sa)
        _kernel_default = sa.sa_handler == SIG_DFL
        _kernel_asked = now
    return _kernel_default


cdef inline Py_ssize_t write_now(int fd, bint at_open, const char *p, size_t n,
                                 int *err) except -2:
    """One write(), guarded against SIGPIPE when it may kill now (``sigpipe_may_kill``);
    -1 with ``err`` set on failure.  (The burst's writev() chooses the same way.)"""
    cdef Py_ssize_t r
    if sigpipe_may_kill(at_open):
        return guarded_write(fd, p, n, err)
    r = write(fd, p, n)
    err[0] = errno
    return r


def peek(int fd, int peek_r, int peek_w, Py_ssize_t nbytes):
    """Up to ``nbytes`` from the head of the pipe ``fd``, consuming none of them (tee()).

    ``peek_w``/``peek_r`` are the two ends of an empty private pipe (both non-blocking);
    it is empty again on return.  It holds what one tee() can copy: a private pipe
    smaller than what waits in ``fd`` gives only the first part.  Returns b"" when
    ``fd`` is empty.  Raises ``OSError`` (the private pipe may then hold stale bytes:
    replace it) and, where there is no tee() (macOS), ``NotImplementedError``.
    (For ``fastfifo.Queue``'s ``qsize()``; ``count_messages`` counts what it returns.)
    """
    cdef Py_ssize_t r, got = 0, k
    cdef int err
    cdef char *dst
    if not px.FASTFIFO_HAVE_TEE:
        raise NotImplementedError("peeking at a pipe needs tee() (Linux)")
    if nbytes <= 0:
        return b""
    while True:
        with nogil:
            r = px.fastfifo_tee(fd, peek_w, <size_t>nbytes)
            err = errno
        if r >= 0:
            break
        if err == EAGAIN:
            return b""
        if err != EINTR:
            raise OSError(err, f"{os.strerror(err)} (peeking with tee)")
        PyErr_CheckSignals()
    out = PyBytes_FromStringAndSize(NULL, r)
    dst = PyBytes_AS_STRING(out)
    while got < r:  # drain it all before anything can raise: the pipe must end empty
        with nogil:
            k = read(peek_r, dst + got, r - got)
            err = errno
        if k > 0:
            got += k
        elif k < 0 and err == EINTR:
            continue
        else:
            raise OSError(err, f"{os.strerror(err)} (reading the peek pipe)")
    PyErr_CheckSignals()
    return out
