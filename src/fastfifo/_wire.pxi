# Included by _core.pyx (one extension module; see its docstring for the layout).
# The wire format (docs/PROTOCOL.md), the clock, and SIGPIPE-safe writes.

# ---------------------------------------------------------------- wire format

cdef inline uint32_t header_check(uint32_t flags, uint32_t length) noexcept nogil:
    # 16 bits of a multiplicative hash over flags and length: random bytes pass
    # the magic, flags and check tests about once in 2**30 positions.
    return (((length ^ (flags << 24)) * <uint32_t>0x9E3779B1u) & <uint32_t>0xFFFFFFFFu) >> 16


cdef inline void put_header(uint8_t *p, uint32_t flags, uint32_t length) noexcept nogil:
    cdef uint32_t c = header_check(flags, length)
    p[0] = MAGIC
    p[1] = <uint8_t>flags
    p[2] = <uint8_t>(c & 0xFF)
    p[3] = <uint8_t>(c >> 8)
    p[4] = <uint8_t>(length & 0xFF)
    p[5] = <uint8_t>((length >> 8) & 0xFF)
    p[6] = <uint8_t>((length >> 16) & 0xFF)
    p[7] = <uint8_t>(length >> 24)


cdef inline uint32_t header_length(const uint8_t *p) noexcept nogil:
    return p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16) | (<uint32_t>p[7] << 24)


cdef inline unsigned long long load_u64(const uint8_t *p) noexcept nogil:
    cdef unsigned long long v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | p[i]
    return v


cdef inline void store_u64(uint8_t *p, unsigned long long v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <uint8_t>(v & 0xFF)
        v >>= 8


cdef inline bint header_valid(const uint8_t *p) noexcept nogil:
    if p[0] != MAGIC or (p[1] & ~KIND_MASK):
        return False
    cdef uint32_t c = header_check(p[1], header_length(p))
    return p[2] == (c & 0xFF) and p[3] == (c >> 8)


cdef inline bint prefix_impossible(const uint8_t *p, Py_ssize_t avail) noexcept nogil:
    """Whether ``avail`` (< HEADER) bytes can never begin a header: a foreign writer's."""
    return avail >= 1 and (p[0] != MAGIC or (avail >= 2 and (p[1] & ~KIND_MASK) != 0))


cdef inline bint header_usable(const uint8_t *p) noexcept nogil:
    """A valid header the parser does not refuse as bad (a fragment is one atomic write)."""
    cdef uint32_t length
    if not header_valid(p):
        return False
    length = header_length(p)
    if (p[1] & KIND_MASK) == KIND_WHOLE:
        return True
    return length <= 65536 and ((p[1] & KIND_MASK) != KIND_FIRST or length >= 8)


def encode_header(uint32_t flags, uint32_t length):
    """The 8-byte frame header for a payload of ``length`` bytes (for tests and tools)."""
    cdef uint8_t h[HEADER]
    put_header(h, flags, length)
    return PyBytes_FromStringAndSize(<char *>h, HEADER)


# ---------------------------------------------------------------- time and signals

cdef inline double monotonic() noexcept nogil:
    cdef px.timespec ts
    px.clock_gettime(px.CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


#: Timeouts at or above this many seconds (about 31 years) wait for ever, as None does:
#: every later conversion of a deadline to micro- or milliseconds then stays in range.
cdef double FOREVER = 1e9


cdef double to_deadline(object timeout) except? -2.0:
    """-1.0 means no deadline (block for ever); 0 or more is a monotonic time.

    None, inf and anything >= FOREVER wait for ever; a negative timeout does not wait
    (as ``multiprocessing.Queue``); NaN and non-numbers are refused.
    """
    cdef double t
    if timeout is None:
        return -1.0
    if isinstance(timeout, (str, bytes, bytearray)):
        raise TypeError(f"timeout must be None or a number of seconds, not "
                        f"{type(timeout).__name__} {timeout!r}")
    try:
        t = timeout
    except OverflowError:  # an int too large for a double: for ever (or, < 0, no wait)
        return -1.0 if timeout > 0 else monotonic()
    except TypeError:
        raise TypeError(f"timeout must be None or a number of seconds, not "
                        f"{type(timeout).__name__} {timeout!r}") from None
    if t != t:
        raise ValueError("timeout must be None or a number of seconds, not NaN")
    if t >= FOREVER:
        return -1.0
    if t < 0.0:
        t = 0.0
    return monotonic() + t


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
