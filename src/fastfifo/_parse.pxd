# C types for _parse.py (Cython's pure-Python mode: this file augments that one when it
# is compiled, and the compiled core cimports these declarations).  The code is there.

cimport cython
from libc.stdint cimport uint32_t
from libc.string cimport memchr, memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cdef enum:
    HEADER = 8
    MAGIC = 0xFA
    KIND_WHOLE = 0
    KIND_FIRST = 1
    KIND_MIDDLE = 2
    KIND_LAST = 3
    KIND_MASK = 3
    FRAMES = 0
    LINES = 1
    NEWLINE = 10
    GOT = 1
    NEED = 0
    BAD_HEADER = -1
    TOO_LARGE = -2
    NO_MEMORY = -3
    ATOMIC_MAX = 4096
    FRAGMENT_MAX = 65536
    PEEK_OK = 0
    PEEK_MORE = 1
    PEEK_OPEN = 2
    PEEK_ORDINARY = 3

cdef unsigned long long MASK32, GOLDEN

# primitives (the small ones "inline": Cython warns that declarations should not be, but
# it applies it, and these are called once or more per message)
cdef inline Py_ssize_t find_byte(const unsigned char *buf, int byte, Py_ssize_t i,
                                 Py_ssize_t end) noexcept
cdef object make_bytes(const unsigned char *buf, Py_ssize_t i, Py_ssize_t n)
cdef object new_message(Py_ssize_t total)
cdef void copy_into(object msg, Py_ssize_t at, const unsigned char *buf, Py_ssize_t i,
                    Py_ssize_t n) noexcept
cdef object finish_message(object msg)


# wire format
@cython.locals(h=cython.ulonglong)
cdef inline uint32_t header_check(uint32_t flags, uint32_t length) noexcept


@cython.locals(v=uint32_t)
cdef inline uint32_t header_length(const unsigned char *p, Py_ssize_t i) noexcept


@cython.locals(v=cython.ulonglong, k=cython.int)
cdef inline unsigned long long load_u64(const unsigned char *p, Py_ssize_t i) noexcept


@cython.locals(c=uint32_t)
cdef void put_header(unsigned char *dst, Py_ssize_t i, uint32_t flags, uint32_t length) noexcept


@cython.locals(k=cython.int)
cdef void put_u64(unsigned char *dst, Py_ssize_t i, unsigned long long v) noexcept


@cython.locals(c=uint32_t)
cdef inline bint header_valid(const unsigned char *p, Py_ssize_t i) noexcept


@cython.locals(kind=cython.int, length=uint32_t)
cdef inline bint header_usable(const unsigned char *p, Py_ssize_t i) noexcept


cdef inline bint prefix_impossible(const unsigned char *p, Py_ssize_t i, Py_ssize_t avail) noexcept


# checks
@cython.locals(total=Py_ssize_t)
cdef Py_ssize_t frame_total(int framing, Py_ssize_t atomic, Py_ssize_t maxmsg, Py_ssize_t n,
                            bint newline, object path, Py_ssize_t index) except -1


@cython.locals(used=Py_ssize_t, free=Py_ssize_t)
cpdef Py_ssize_t free_slots(Py_ssize_t capacity, Py_ssize_t waiting, Py_ssize_t page) noexcept


@cython.locals(i=Py_ssize_t, count=Py_ssize_t, length=Py_ssize_t, kind=cython.int)
cdef Py_ssize_t count_in(const unsigned char *p, Py_ssize_t n, Py_ssize_t limit) noexcept


cdef class Parser:
    cdef readonly object path
    cdef public int framing
    cdef public Py_ssize_t maxmsg
    # the unparsed bytes are buf[start:end] (the core owns buf)
    cdef const unsigned char *buf
    cdef public Py_ssize_t start, end
    cdef public Py_ssize_t need       # bytes the message at the head needs in all
    cdef public Py_ssize_t discard    # bytes of an oversized frame still to skip
    cdef public bint skip_line        # lines: dropping the rest of an overlong line
    cdef public bint resync           # frames: skipping garbage (reported) to the next header
    # what take() cut: buf[cut_off:cut_off + cut_len], or cut_obj (reassembled)
    cdef public Py_ssize_t cut_off, cut_len
    cdef public object cut_obj
    # a large message being reassembled
    cdef object asm
    cdef Py_ssize_t asm_total, asm_have
    cdef public bint asm_skip         # dropping the fragments of a message not delivered
    cdef bint orphan                  # inside fragments whose first this reader never got
    # shared readers' claims
    cdef public bint in_msg           # the pipe's head continues a large message of ours
    cdef public Py_ssize_t owe        # bytes at the pipe's head that finish a unit of ours
    cdef public Py_ssize_t claim_max
    cdef public bint c_in_msg, c_wider
    cdef public Py_ssize_t c_owe
    cdef public Py_ssize_t x_at
    cdef public bint x_junk, x_owed
    cdef public int x_frag
    cdef public int pk_how
    cdef public bint pk_wider
    # counters
    cdef public unsigned long long skipped_bytes
    cdef public unsigned long long dropped_messages

    @cython.locals(avail=Py_ssize_t, k=Py_ssize_t, s=Py_ssize_t, nl=Py_ssize_t,
                   length=Py_ssize_t, kind=cython.int, done=cython.int)
    cdef int take(self) except -9

    @cython.locals(total=cython.ulonglong)
    cdef int fragment(self, int kind, Py_ssize_t at, Py_ssize_t length) except -1

    cdef int drop_partial(self, reason) except -1

    @cython.locals(end=Py_ssize_t)
    cdef Py_ssize_t scan(self, Py_ssize_t i) noexcept

    @cython.locals(s=Py_ssize_t, k=Py_ssize_t, n=Py_ssize_t, nl=Py_ssize_t)
    cdef int raise_bad(self, int status, object cause=*) except -1

    cdef bint too_big_for_memory(self, Py_ssize_t cap) noexcept

    @cython.locals(n=Py_ssize_t)
    cdef object end_of_stream(self)

    @cython.locals(n=Py_ssize_t)
    cdef int report_unread(self) except -1

    cdef bint large_under_way(self) noexcept

    cdef Py_ssize_t assembling(self) noexcept

    @cython.locals(length=Py_ssize_t)
    cdef Py_ssize_t head_frame_size(self, const unsigned char *p, Py_ssize_t base,
                                    Py_ssize_t n) noexcept

    @cython.locals(i=Py_ssize_t, count=Py_ssize_t, j=Py_ssize_t, nl=Py_ssize_t,
                   length=Py_ssize_t, kind=cython.int, in_msg=bint)
    cdef Py_ssize_t claim_size(self, const unsigned char *p, Py_ssize_t base,
                               Py_ssize_t n) except -1

    @cython.locals(end=Py_ssize_t, i=Py_ssize_t, nl=Py_ssize_t, avail=Py_ssize_t,
                   length=Py_ssize_t)
    cdef Py_ssize_t exact_want(self) except -1

    @cython.locals(i=Py_ssize_t, cut=Py_ssize_t, count=Py_ssize_t, nl=Py_ssize_t,
                   length=Py_ssize_t, kind=cython.int, total=cython.ulonglong, open_=bint)
    cdef Py_ssize_t peek_size(self, const unsigned char *p, Py_ssize_t base, Py_ssize_t n,
                              Py_ssize_t want, Py_ssize_t window) except -1
