"""The wire format, the message parser and the claim sizing: written once, for both cores.

This is Cython's pure-Python mode.  With ``_parse.pxd`` (the C types) this file compiles
into the extension module ``fastfifo._parse``, which the compiled core cimports; the
pure-Python twin runs this very file uncompiled (``_core_py`` loads it by path, because
the compiled module of the same name would shadow it).  The few operations that must
differ (``memchr`` against ``bytes.find``, a ``bytes`` made from a pointer against one made
from a slice) are the ``if cython.compiled:`` branches of the primitives at the top;
everything below them is one source.  docs/PROTOCOL.md describes the format.

What stays in each core is the I/O: receive buffers, reads and writes, waits, the claim
syscalls (``tee``/``splice``/exact reads under the readers' lock).  A core owns the buffer
and tells the parser where the unparsed bytes are (``buf``, ``start``, ``end``); the parser
cuts messages out of them and says where (``cut_off``/``cut_len``, or ``cut_obj`` for a
message reassembled from fragments), so that each core makes the object its own way
(``bytes``, or a view recorded in a ``MessageBatch``).
"""

from __future__ import annotations

import operator
import sys

try:
    import cython
except ImportError:  # run uncompiled without Cython installed: see _cython_shim
    from . import _cython_shim as cython

from ._errors import CorruptStreamError, MessageTooLargeError, report_loss

if not cython.compiled:  # compiled, these are the C enum of _parse.pxd
    HEADER = 8
    MAGIC = 0xFA
    KIND_WHOLE = 0  # a whole message
    KIND_FIRST = 1  # first fragment of a large message: u64 total length, then data
    KIND_MIDDLE = 2
    KIND_LAST = 3
    KIND_MASK = 3
    FRAMES = 0
    LINES = 1
    NEWLINE = 10
    # take() results
    GOT = 1
    NEED = 0
    BAD_HEADER = -1
    TOO_LARGE = -2
    NO_MEMORY = -3  # within max_message_size, but the memory for it was refused
    # PIPE_BUF on Linux (the only system with tee()): no writer can put a longer frame
    # or line in the pipe atomically, so a shared reader never waits to peek one whole.
    ATOMIC_MAX = 4096
    # A fragment is one atomic write: never larger than a pipe page.
    FRAGMENT_MAX = 65536
    # peek_size() results (how the head of the pipe can be peeked)
    PEEK_OK = 0  # whole messages to hold
    PEEK_MORE = 1  # none whole yet
    PEEK_OPEN = 2  # a large message at the head lacks fragments
    PEEK_ORDINARY = 3  # the head is for an ordinary claim (bad bytes, too large...)

# Constants too large for a C int literal: typed (unsigned long long) in _parse.pxd.
MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B1  # 2**32 / the golden ratio

#: The take() result codes by name, for messages and tests.
RESULTS = {1: "GOT", 0: "NEED", -1: "BAD_HEADER", -2: "TOO_LARGE", -3: "NO_MEMORY"}


# ---------------------------------------------------------------- primitives
# The only code that differs between the compiled and the uncompiled module.


def find_byte(buf, byte, i, end):
    """Index of the first ``byte`` in ``buf[i:end]``, or -1."""
    if cython.compiled:
        hit = memchr(buf + i, byte, end - i)  # noqa: F821 (from _parse.pxd)
        return -1 if hit == cython.NULL else cython.cast(cython.p_uchar, hit) - buf
    else:
        return buf.find(bytes((byte,)), i, end)


def make_bytes(buf, i, n):
    """A new ``bytes`` holding ``buf[i:i + n]``."""
    if cython.compiled:
        return PyBytes_FromStringAndSize(cython.cast(cython.p_char, buf + i), n)  # noqa: F821 (from _parse.pxd)
    else:
        return bytes(buf[i : i + n])


def new_message(total):
    """Room for a message reassembled from fragments (MemoryError if refused)."""
    if cython.compiled:
        return PyBytes_FromStringAndSize(cython.NULL, total)  # noqa: F821 (from _parse.pxd)
    else:
        return bytearray(total)


def copy_into(msg, at, buf, i, n):
    """Copy ``buf[i:i + n]`` into the message being reassembled, at ``at``."""
    if cython.compiled:
        memcpy(PyBytes_AS_STRING(msg) + at, buf + i, n)  # noqa: F821 (from _parse.pxd)
    else:
        msg[at : at + n] = buf[i : i + n]


def finish_message(msg):
    """The reassembled message as the ``bytes`` a Reader returns."""
    if cython.compiled:
        return msg
    else:
        return bytes(msg)


# ---------------------------------------------------------------- wire format


def header_check(flags, length):
    """16 bits of a multiplicative hash over flags and length: random bytes pass the
    magic, flags and check tests about once in 2**30 positions."""
    h = (length ^ (flags << 24)) & MASK32  # (64-bit unsigned arithmetic when compiled)
    h = (h * GOLDEN) & MASK32
    return h >> 16


def header_length(p, i):
    v = p[i + 7]  # (a 32-bit unsigned local when compiled: no signed shift overflow)
    v = (v << 8) | p[i + 6]
    v = (v << 8) | p[i + 5]
    return (v << 8) | p[i + 4]


def load_u64(p, i):
    v = 0
    for k in range(7, -1, -1):
        v = (v << 8) | p[i + k]
    return v


def put_header(dst, i, flags, length):
    """Write the 8-byte header for ``flags`` and a payload of ``length`` at ``dst[i]``."""
    c = header_check(flags, length)
    dst[i] = MAGIC
    dst[i + 1] = flags
    dst[i + 2] = c & 0xFF
    dst[i + 3] = c >> 8
    dst[i + 4] = length & 0xFF
    dst[i + 5] = (length >> 8) & 0xFF
    dst[i + 6] = (length >> 16) & 0xFF
    dst[i + 7] = (length >> 24) & 0xFF


def put_u64(dst, i, v):
    for k in range(8):
        dst[i + k] = v & 0xFF
        v >>= 8


def encode_header(flags, length):
    """The 8-byte frame header for a payload of ``length`` bytes (for tests and tools)."""
    if cython.compiled:
        h = PyBytes_FromStringAndSize(cython.NULL, HEADER)  # noqa: F821 (from _parse.pxd)
        put_header(cython.cast(cython.p_uchar, PyBytes_AS_STRING(h)), 0, flags, length)  # noqa: F821 (from _parse.pxd)
        return h
    else:
        h = bytearray(HEADER)
        put_header(h, 0, flags & 0xFF, length & 0xFFFFFFFF)
        return bytes(h)


def header_valid(p, i):
    if p[i] != MAGIC or (p[i + 1] & ~KIND_MASK):
        return False
    c = header_check(p[i + 1], header_length(p, i))
    return p[i + 2] == (c & 0xFF) and p[i + 3] == (c >> 8)


def header_usable(p, i):
    """A valid header the parser does not refuse as bad (a fragment is one atomic write)."""
    if not header_valid(p, i):
        return False
    kind = p[i + 1] & KIND_MASK
    if kind == KIND_WHOLE:
        return True
    length = header_length(p, i)
    return length <= FRAGMENT_MAX and (kind != KIND_FIRST or length >= 8)


def prefix_impossible(p, i, avail):
    """Whether ``avail`` (< HEADER) bytes at ``i`` can never begin a header: a foreign
    writer's (a stray ``echo hi``), reported at once instead of waited on."""
    return avail >= 1 and (p[i] != MAGIC or (avail >= 2 and (p[i + 1] & ~KIND_MASK) != 0))


# ---------------------------------------------------------------- checks and texts


def frame_total(framing, atomic, maxmsg, n, newline, path, index):
    """Bytes of one encoded message when it fits one atomic write, else 0 (fragments).

    ``newline``: the message holds a newline byte (refused in lines framing).  Raises
    what a Writer says about a message it will not send; nothing is written then.
    """
    total = n + (HEADER if framing == FRAMES else 1)
    if total > atomic and (framing == LINES or n > maxmsg):
        where = "" if index < 0 else f" (message {index} of the batch)"
        if framing == LINES:
            limit = (
                f"lines framing sends each line in one atomic write, so the limit is "
                f"{atomic - 1} bytes (PIPE_BUF={atomic}); use framing='frames' for larger "
                f"messages"
            )
        else:
            limit = f"the limit is max_message_size={maxmsg}"
        raise MessageTooLargeError(
            f"{path!r}: a message of {n} bytes{where} is too large: {limit}; nothing was written"
        )
    if newline:
        where = "" if index < 0 else f" (message {index} of the batch)"
        raise ValueError(
            f"{path!r}: a message{where} contains a newline, which lines framing uses as "
            f"the separator; nothing was written. Use framing='frames' for binary data"
        )
    return total if total <= atomic else 0


def check_count(path, n):
    """``max_messages`` as a C size: any int >= 1 (a huge one means "all there are")."""
    try:
        if isinstance(n, bool):  # an int to Python, but never a count on purpose
            raise TypeError
        v = operator.index(n)
    except TypeError:
        raise TypeError(
            f"{path!r}: max_messages must be an int >= 1, not {type(n).__name__}"
        ) from None
    if v < 1:
        raise ValueError(f"{path!r}: max_messages must be >= 1, not {v}")
    return v if v < sys.maxsize else sys.maxsize


def free_slots(capacity, waiting, page):
    """How many page-sized slots of a Linux pipe of ``capacity`` bytes are surely free
    while ``waiting`` bytes are in it (a negative ``waiting``, unknown: none).

    The one room rule, for ``room_for`` (Queue, aio) and a sole Writer's bursts (both
    cores).  Linux counts a pipe's capacity in slots of a page each; a write that does
    not fit in the last slot's free space starts a new one, so two neighbouring slots
    always hold more than a page, and only the head slot may be partly read: the bytes
    waiting fill at most ``2 * ceil(waiting / page) + 1`` slots.  Each write of up to a
    page (one fragment) needs at most one more; a writev() of several whole fragments
    needs at most one per page of its bytes.  It errs towards "fewer".
    """
    if waiting < 0 or page <= 0:
        return 0
    used = 2 * ((waiting + page - 1) // page) + 1 if waiting > 0 else 0
    free = capacity // page - used
    return free if free > 0 else 0


def count_messages(data, limit=-1):
    """Whole messages at the start of ``data`` (frames framing), at most ``limit`` (-1: all).

    A whole frame counts one, and so does the last fragment of a large message (its
    other fragments count nothing).  Counting stops at the first frame that is not
    complete in ``data``, or whose header is not valid (foreign bytes).  For
    ``fastfifo.Queue``'s ``qsize()`` and ``maxsize``: the frame count comes from here,
    never from a parser of the Queue's own.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if cython.compiled:
        return count_in(
            cython.cast(cython.p_uchar, PyBytes_AS_STRING(data)),  # noqa: F821 (_parse.pxd)
            len(data),
            limit,
        )
    else:
        return count_in(data, len(data), limit)


def count_in(p, n, limit):
    i = 0
    count = 0
    while n - i >= HEADER and (limit < 0 or count < limit):
        if not header_valid(p, i):
            break
        length = header_length(p, i)
        if length > n - i - HEADER:
            break
        kind = p[i + 1] & KIND_MASK
        i += HEADER + length
        if kind in (KIND_WHOLE, KIND_LAST):
            count += 1
    return count


# ---------------------------------------------------------------- the parser


class Parser:
    """Cuts whole messages out of a core's receive buffer; tracks what was dropped.

    The core keeps ``buf``/``start``/``end`` current (``end`` is one past the last
    byte read); ``take()`` advances ``start`` over what it consumed.  Errors leave the
    state as it was (``take`` returns their code) until ``raise_bad`` skips the bad
    bytes and raises, so the next call goes on after them.
    """

    def __init__(self, path, framing, maxmsg):
        self.path = path
        self.framing = framing
        self.maxmsg = maxmsg
        self.start = self.end = self.discard = 0
        self.need = 1
        self.cut_off = self.cut_len = 0
        self.cut_obj = None
        self.skip_line = self.resync = False
        self.asm = None
        self.asm_total = self.asm_have = 0
        self.asm_skip = self.orphan = False
        self.in_msg = False
        self.owe = 0
        self.claim_max = 1
        self.c_in_msg = self.c_wider = False
        self.c_owe = 0
        self.x_at = 0
        self.x_junk = self.x_owed = False
        self.x_frag = -1
        self.pk_how = 0
        self.pk_wider = False
        self.skipped_bytes = 0
        self.dropped_messages = 0

    # ------------------------------------------------------------ taking messages

    def take(self):
        """Cut the next message: GOT (``cut_*`` say where), NEED, or an error code."""
        buf = self.buf
        self.need = 1
        while True:
            avail = self.end - self.start
            if self.discard:
                k = min(self.discard, avail)
                self.start += k
                self.discard -= k
                if self.discard:
                    return NEED
                continue
            s = self.start
            if self.framing == FRAMES:
                if avail < HEADER and not prefix_impossible(buf, s, avail):
                    self.need = HEADER
                    return NEED
                if avail < HEADER or not header_valid(buf, s):
                    if not self.resync:
                        return BAD_HEADER
                    k = self.scan(s + 1)
                    self.skipped_bytes += k - s
                    self.start = k
                    continue
                self.resync = False
                length = header_length(buf, s)
                kind = buf[s + 1] & KIND_MASK
                if kind == KIND_WHOLE:
                    if length > self.maxmsg:
                        return TOO_LARGE
                    if avail < HEADER + length:
                        self.need = HEADER + length
                        return NEED
                    self.cut_off = s + HEADER
                    self.cut_len = length
                    self.start = s + HEADER + length
                    return GOT
                if length > FRAGMENT_MAX or (kind == KIND_FIRST and length < 8):
                    return BAD_HEADER
                if avail < HEADER + length:
                    self.need = HEADER + length
                    return NEED
                if kind == KIND_FIRST and load_u64(buf, s + HEADER) > self.maxmsg:
                    return TOO_LARGE
                try:
                    done = self.fragment(kind, s + HEADER, length)
                except MemoryError:  # no room for the whole message: drop it, go on
                    return NO_MEMORY
                self.start = s + HEADER + length
                if done:
                    return GOT
                continue
            nl = find_byte(buf, NEWLINE, s, self.end)
            if self.skip_line:
                if nl < 0:
                    self.start = self.end
                    return NEED
                self.start = nl + 1
                self.skip_line = False
                continue
            if nl < 0:
                if avail > self.maxmsg:
                    return TOO_LARGE
                self.need = avail + 1
                return NEED
            if nl - s > self.maxmsg:
                return TOO_LARGE
            self.cut_off = s
            self.cut_len = nl - s
            self.start = nl + 1
            return GOT

    def fragment(self, kind, at, length):
        """Fold one fragment (``buf[at:at + length]``) into the message being
        reassembled; 1 when that message is complete (then in ``cut_obj``)."""
        buf = self.buf
        if kind == KIND_FIRST:
            if self.asm is not None or self.asm_skip:
                self.drop_partial(
                    "a new large message began before it ended (its writer died or gave "
                    "up part-way)"
                )
            self.orphan = False
            total = load_u64(buf, at)
            if length - 8 > total:
                self.drop_partial("its first fragment is longer than the whole it announces")
                self.asm_skip = True
                return 0
            self.asm = new_message(total)
            self.asm_total = total
            self.asm_have = length - 8
            copy_into(self.asm, 0, buf, at + 8, length - 8)
            return 0
        if self.asm is None:
            if not self.asm_skip and not self.orphan:
                self.orphan = True
                self.drop_partial(
                    "this reader got fragments of a large message whose beginning went to "
                    "another reader that then died, or was sent before this reader opened"
                )
            if kind == KIND_LAST:
                self.asm_skip = self.orphan = False
            return 0
        if self.asm_have + length > self.asm_total:
            self.drop_partial("its fragments add up to more than it announced")
            self.asm_skip = kind != KIND_LAST
            return 0
        copy_into(self.asm, self.asm_have, buf, at, length)
        self.asm_have += length
        if kind == KIND_MIDDLE:
            return 0
        if self.asm_have != self.asm_total:
            self.drop_partial("its fragments add up to less than it announced")
            return 0
        self.cut_obj = finish_message(self.asm)
        self.asm = None
        return 1

    def drop_partial(self, reason):
        """Drop the large message being reassembled; count and report it (at once, once)."""
        self.dropped_messages += 1
        if self.asm is not None:
            what = f"a large message ({self.asm_have} of {self.asm_total} bytes received)"
        else:
            what = "an incomplete large message"
        self.asm = None
        self.asm_skip = False
        report_loss(
            f"{self.path!r}: dropped {what}: {reason} "
            f"({self.dropped_messages} dropped by this reader so far)"
        )
        return 0

    def scan(self, i):
        """First offset >= i that may start a valid header (``end`` if none)."""
        buf = self.buf
        end = self.end
        while i < end:
            i = find_byte(buf, MAGIC, i, end)
            if i < 0:
                return end
            if end - i < HEADER or header_valid(buf, i):
                return i
            i += 1
        return end

    def raise_bad(self, status, cause=None):
        """Skip past the bad bytes (or oversized message) at the head and raise about it."""
        buf = self.buf
        s = self.start
        if status == BAD_HEADER:
            k = self.scan(s + 1)
            n = k - s
            head = make_bytes(buf, s, min(n, 16))
            self.start = k
            self.skipped_bytes += n
            self.resync = True
            raise CorruptStreamError(
                f"{self.path!r}: skipped {n} bytes that are not fastfifo frames (they start "
                f"{head!r}): a foreign or corrupt writer, or a lines peer writing into a "
                f"frames FIFO. Valid messages after them are still delivered",
                n,
            )
        self.dropped_messages += 1
        if self.framing == FRAMES:
            if (buf[s + 1] & KIND_MASK) == KIND_FIRST:
                if self.asm is not None or self.asm_skip:
                    self.drop_partial("a new large message began before it ended")
                n = load_u64(buf, s + HEADER)
                self.start = s + HEADER + header_length(buf, s)
                self.asm_skip = True
            else:
                n = header_length(buf, s)
                self.start = s + HEADER
                self.discard = n
        else:
            nl = find_byte(buf, NEWLINE, s, self.end)
            if nl < 0:
                n = self.end - s
                self.start = self.end
                self.skip_line = True
            else:
                n = nl - s
                self.start = nl + 1
        size = f"{'at least ' if self.framing == LINES else ''}{n} bytes"
        if status == NO_MEMORY:
            raise MessageTooLargeError(
                f"{self.path!r}: a message of {size} could not be allocated in this process "
                f"(MemoryError); it was discarded and the messages after it are still "
                f"delivered (free memory, or set a lower max_message_size to refuse such "
                f"messages up front)"
            ) from cause
        raise MessageTooLargeError(
            f"{self.path!r}: a message of {size} exceeds max_message_size={self.maxmsg}; "
            f"it was discarded and the messages after it are still delivered (raise "
            f"max_message_size to receive it)"
        )

    def too_big_for_memory(self, cap):
        """After a MemoryError while reading: whether the message at the head is what
        needed the memory (one larger than the buffer's ``cap``), so it is to be dropped."""
        return self.end > self.start and self.need > cap

    def end_of_stream(self):
        """Every writer left: a last unterminated line, or CorruptStreamError/EOFError."""
        n = self.end - self.start
        if self.asm is not None or self.asm_skip:
            self.drop_partial("every writer left before it ended")
        if n and not self.discard and not self.skip_line:
            self.start = self.end
            if self.framing == LINES:
                return make_bytes(self.buf, self.end - n, n)
            self.skipped_bytes += n
            raise CorruptStreamError(
                f"{self.path!r}: the last writer left in the middle of a frame; its {n} "
                f"bytes were dropped",
                n,
            )
        self.start = self.end
        self.discard = 0
        self.skip_line = False
        raise EOFError(f"{self.path!r}: every writer has closed the FIFO (end of stream)")

    def report_unread(self):
        """At close(): what the Reader read and did not return dies with it; say so."""
        n = self.end - self.start - self.discard
        if self.asm is not None:
            self.drop_partial("the Reader closed before it ended")
        if n > 0 and not self.skip_line:
            report_loss(
                f"{self.path!r}: the Reader closed with {n} bytes read from the FIFO and not "
                f"yet returned as messages; they are lost (take every message before "
                f"closing, or use shared=True: a shared Reader holds only what its calls "
                f"return)"
            )
        return 0

    # ------------------------------------------------------------ shared readers' claims

    def large_under_way(self):
        """Whether part of a large message was taken and its rest is still to come (a
        wait must then watch for its writer dying part-way)."""
        return self.asm is not None or self.asm_skip or self.in_msg

    def assembling(self):
        """Bytes still to come of the large message being reassembled (0: none is)."""
        if self.asm is None:
            return 0
        return self.asm_total - self.asm_have

    def head_frame_size(self, p, base, n):
        """For a claim of one message: the size of the frame whose ``n`` (= HEADER)
        header bytes were peeked at ``p[base:]``, when that frame can be taken by one
        read of exactly that many bytes; else 0 (then peek wider: ``claim_size``).

        Only a whole message that a writer wrote in one atomic write (so all of it is in
        the pipe once its header is) and that this reader keeps (not too large), with
        nothing of a large message under way.
        """
        if n != HEADER or self.in_msg or self.framing != FRAMES or not header_valid(p, base):
            return 0
        if p[base + 1] & KIND_MASK != KIND_WHOLE:
            return 0
        length = header_length(p, base)
        if length > self.maxmsg or HEADER + length > ATOMIC_MAX:
            return 0
        return HEADER + length

    def claim_size(self, p, base, n):
        """How many leading bytes of the peeked ``p[base:base + n]`` are whole messages
        for this claim to take (at most ``claim_max``, plus the fragments of a large
        message it is in the middle of).

        Sets ``c_in_msg`` (mid-way through a large message after them), ``c_owe`` (what
        a frame begun in them still lacks: taken at once, too large to wait for whole)
        and ``c_wider`` (a wider peek may take more).
        """
        i = 0
        count = 0
        in_msg = self.in_msg
        self.c_owe = 0
        self.c_wider = False
        if self.framing == LINES:
            while i < n and (count < self.claim_max or in_msg):
                nl = find_byte(p, NEWLINE, base + i, base + n)
                if nl < 0:
                    if i == 0 and (in_msg or n > self.maxmsg or n > ATOMIC_MAX):
                        # A line no writer can have written atomically (or an overlong
                        # one): all of it goes to us, and its rest as it comes.
                        self.c_in_msg = True
                        return n
                    break
                i = nl - base + 1
                count += 1
                in_msg = False
            self.c_in_msg = in_msg
            return i
        while i < n:
            if n - i < HEADER and not (i == 0 and prefix_impossible(p, base, n)):
                break  # a header still arriving (or a foreign writer's short bytes, below)
            if n - i < HEADER or not header_usable(p, base + i):
                if i:
                    break
                j = 1  # garbage at the head: take it up to the next possible header
                while j < n and not (
                    p[base + j] == MAGIC and (n - j < HEADER or header_valid(p, base + j))
                ):
                    j += 1
                self.c_wider = j == n
                self.c_in_msg = in_msg
                return j
            length = header_length(p, base + i)
            kind = p[base + i + 1] & KIND_MASK
            if count >= self.claim_max and kind in (KIND_WHOLE, KIND_FIRST):
                # Mid-way through a large message with the claim full: take only its
                # fragments, so a claim holds at most claim_max plus that message (the
                # lock stays held until its last fragment, over later calls).
                break
            if i + HEADER + length > n:
                if i == 0 and (
                    HEADER + length > ATOMIC_MAX or (kind == KIND_WHOLE and length > self.maxmsg)
                ):
                    # A frame no writer can have written atomically, maybe larger than
                    # the pipe or the peek window, or one too large to keep (its payload
                    # is discarded as it arrives): take what there is, and keep the lock
                    # until the rest came, so nobody else reads its payload as frames.
                    self.c_owe = HEADER + length - n
                    if kind == KIND_FIRST:
                        in_msg = True
                    elif kind == KIND_LAST:
                        in_msg = False
                    self.c_in_msg = in_msg
                    return n
                break
            if kind == KIND_WHOLE and length > self.maxmsg:
                if i:
                    break
                self.c_in_msg = in_msg
                return HEADER + length  # a claim of its own
            i += HEADER + length
            if kind == KIND_FIRST:
                in_msg = True
            elif kind == KIND_LAST:
                in_msg = False
            if kind in (KIND_WHOLE, KIND_LAST):
                count += 1
            if count >= self.claim_max and not in_msg:
                break
        self.c_in_msg = in_msg
        return i

    def exact_want(self):
        """How many more bytes the unit at the end of the buffer lacks (exact claims).

        Walks the unparsed bytes from ``start + x_at`` as ``take`` will cut them, and
        leaves ``x_at`` at the unit that is not whole yet (``x_junk``: at the end of a run
        of bad bytes, whose next possible header is not in the buffer yet).  0: they end
        where a message ends.  ``x_owed``: the unit has begun, so its rest belongs to
        this reader (False after bad bytes, which may or may not go on).  ``x_frag``: the
        kind of the last whole fragment walked over.
        """
        buf = self.buf
        end = self.end
        i = self.start + self.x_at
        self.x_owed = True
        if self.x_at == 0 and self.discard:  # the payload of a frame too large to keep
            if self.discard > end - i:
                return self.discard - (end - i)
            i += self.discard
        if self.x_at == 0 and self.skip_line:  # the rest of an overlong line
            nl = find_byte(buf, NEWLINE, i, end)
            if nl < 0:
                self.x_at = end - self.start
                return 1
            i = nl + 1
        while True:
            if self.x_junk:  # bad bytes: take skips to the next possible header
                i = self.scan(i)
                self.x_at = i - self.start
                if i == end:
                    self.x_owed = False
                    return HEADER
                self.x_junk = False
            self.x_at = i - self.start
            avail = end - i
            if avail == 0:
                return 0
            if self.framing == LINES:
                nl = find_byte(buf, NEWLINE, i, end)
                if nl < 0:
                    return 1
                i = nl + 1
                continue
            if avail < HEADER:
                return HEADER - avail
            if not header_usable(buf, i):
                self.x_junk = True
                i += 1
                continue
            length = header_length(buf, i)
            if avail < HEADER + length:
                return HEADER + length - avail
            if buf[i + 1] & KIND_MASK:
                self.x_frag = buf[i + 1] & KIND_MASK
            i += HEADER + length

    # ------------------------------------------------------------ peeks (fastfifo.relay)

    def peek_size(self, p, base, n, want, window):
        """How many leading bytes of the peeked ``p[base:base + n]`` are whole messages a
        peek can hold (``Reader._peek_many``: taken only once ``_commit()`` consumes them).

        Cuts only where no large message is open; at most ``want`` messages, except that
        small messages between a large message's fragments come with it.  Sets
        ``pk_how`` (PEEK_OK, PEEK_MORE, PEEK_OPEN or PEEK_ORDINARY) and ``pk_wider``
        (a wider peek may hold more).
        """
        i = 0
        cut = 0
        count = 0
        open_ = False
        self.pk_how = PEEK_OK
        self.pk_wider = False
        if self.framing == LINES:
            while i < n and count < want:
                nl = find_byte(p, NEWLINE, base + i, base + n)
                if nl < 0:
                    self.pk_wider = True
                    break
                if nl - base - i > self.maxmsg:
                    if i == 0:
                        self.pk_how = PEEK_ORDINARY
                    break
                i = nl - base + 1
                count += 1
            if i == 0 and self.pk_how == PEEK_OK:
                self.pk_how = PEEK_MORE
            return i
        while True:
            if n - i < HEADER:
                self.pk_wider = True
                break
            if not header_usable(p, base + i):
                if cut == 0:
                    self.pk_how = PEEK_ORDINARY
                break
            length = header_length(p, base + i)
            kind = p[base + i + 1] & KIND_MASK
            if i + HEADER + length > n:
                if i == 0 and HEADER + length > ATOMIC_MAX:
                    self.pk_how = PEEK_ORDINARY  # no writer wrote it atomically
                    return 0
                self.pk_wider = True
                break
            if kind == KIND_WHOLE:
                if length > self.maxmsg:
                    if cut == 0:
                        self.pk_how = PEEK_ORDINARY
                    break
                count += 1
            elif kind == KIND_FIRST:
                total = load_u64(p, base + i + HEADER)
                if open_ or total > self.maxmsg or total >= window:
                    if cut == 0:
                        self.pk_how = PEEK_ORDINARY
                    break
                open_ = True
            else:
                if not open_:  # fragments whose beginning this reader did not see
                    if cut == 0:
                        self.pk_how = PEEK_ORDINARY
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
        if cut == 0 and self.pk_how == PEEK_OK:
            self.pk_how = PEEK_OPEN if open_ else PEEK_MORE
        return cut
