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


cdef double to_deadline(object timeout) except? -2.0:
    """-1.0 means no deadline (block for ever); 0 or more is a monotonic time."""
    if timeout is None:
        return -1.0
    cdef double t = timeout
    if not t >= 0.0:  # also catches NaN
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
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
    """True when SIGPIPE would kill this process (its disposition is SIG_DFL).

    Asks the kernel, not Python's table: an embedding host may have reset it.
    """
    cdef sigaction_t sa
    sigaction(px.SIGPIPE, NULL, &sa)
    return sa.sa_handler == SIG_DFL
