"""Exceptions raised by fastfifo.

Each one subclasses the closest built-in so callers that already catch
``queue.Empty``, ``ValueError`` or ``OSError`` keep working.  Every message
names the FIFO path and says what to do.
"""

from __future__ import annotations

import errno
import queue

# Where fastfifo reports data it had to drop (a large message cut short by its writer,
# bytes that are not messages skipped by an iterating reader): WARNING records on the
# ``fastfifo`` logger, one per event, each naming the FIFO.  Losses are operational
# events the caller cannot prevent, so they are logged rather than warned (docs/guide.md,
# "What is lost, and when").  With no logging configured, Python prints them on stderr.
# (``logging`` is imported on the first loss: it is not needed to start.)


def report_loss(text: str) -> None:
    """Log one data-loss event; never raises into the receive path that found it."""
    try:
        import logging

        logging.getLogger("fastfifo").warning("%s", text)
    except Exception:  # a broken handler must not cost the caller a message in hand
        pass


def not_bytes_error(path: object, data: object, index: int = -1) -> TypeError:
    """The TypeError for a message that is not bytes-like, with what to do instead."""
    where = "" if index < 0 else f" (message {index} of the batch)"
    hint = ""
    if isinstance(data, str):
        hint = " Encode text first (e.g. text.encode()), or use framing='lines' for text lines;"
    return TypeError(
        f"{path!r}: a message must be a bytes-like object (bytes, bytearray, memoryview), "
        f"not {type(data).__name__}{where}.{hint} to send Python objects use fastfifo.Queue"
    )


# Each class says it lives in ``fastfifo`` (where users import and catch it), so
# tracebacks, reprs and pickles show ``fastfifo.Empty``, not ``fastfifo._errors.Empty``.


class Empty(queue.Empty):
    """No message arrived before the timeout (``Reader.get``, ``get_many``)."""

    __module__ = "fastfifo"


class Full(queue.Full):
    """The pipe stayed full until the timeout (``Writer.put``, ``put_many``).

    ``sent`` is how many messages of the call were written before it gave up:
    those were delivered, the rest were not, so a retry should resend
    ``messages[sent:]`` only.
    """

    __module__ = "fastfifo"

    def __init__(self, message: str = "", sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class ClosedError(ValueError):
    """The endpoint is closed (or was closed by another thread while waiting)."""

    __module__ = "fastfifo"


class NotAFifoError(OSError):
    """Something other than a FIFO (a regular file, directory, symlink...) is at the path."""

    __module__ = "fastfifo"


class MessageTooLargeError(ValueError):
    """A message exceeds what the endpoint accepts (atomic limit or ``max_message_size``)."""

    __module__ = "fastfifo"


class CorruptStreamError(ValueError):
    """Bytes in the FIFO are not valid frames (a foreign writer, or a truncated message).

    The reader has skipped the bad bytes (``skipped`` counts them) and the next
    call goes on with the valid messages that follow.
    """

    __module__ = "fastfifo"

    def __init__(self, message: str = "", skipped: int = 0) -> None:
        super().__init__(message)
        self.skipped = skipped


class IncompleteMessageWarning(UserWarning):
    """No longer issued: kept so that code which filters it still imports.

    A large message cut short (its writer died or gave up mid-message) is now counted in
    ``Reader.dropped_messages`` and logged on the ``fastfifo`` logger.
    """

    __module__ = "fastfifo"


# ---------------------------------------------------------------- the texts both cores raise
# One home for each message, so the cores cannot drift apart: each function returns the
# exception for the core to raise.  ``timeout`` is what the caller passed.


def busy(path: object, what: str, timeout: object, sent: int | None = None) -> Exception:
    """Another thread of this process was inside the same endpoint until the deadline."""
    text = f"{path!r}: another thread held the {what} for {timeout} s"
    if what == "Reader":
        return Empty(text)
    return Full(text + "; nothing was written", 0 if sent is None else sent)


def no_message(path: object, timeout: object) -> Empty:
    return Empty(f"{path!r}: no message within {timeout} s")


def pipe_full(path: object, timeout: object) -> Full:
    return Full(
        f"{path!r}: the pipe stayed full for {timeout} s (the reader is not keeping up); "
        f"nothing was written",
        0,
    )


def batch_full(path: object, timeout: object, sent: int) -> Full:
    return Full(
        f"{path!r}: the pipe stayed full for {timeout} s (the reader is not keeping up); "
        f"the first {sent} messages were written, the rest were not",
        sent,
    )


def pending_full(path: object, timeout: object, pending: int, flushing: bool = False) -> Full:
    """A buffered Writer could not write what it holds: the call's message was not taken."""
    if flushing:
        tail = f"{pending} messages are still buffered"
    else:
        tail = f"{pending} earlier messages are still buffered and this one was not taken"
    return Full(
        f"{path!r}: the pipe stayed full for {timeout} s (the reader is not keeping up); {tail}", 0
    )


def large_lock_held(path: object, timeout: object) -> Full:
    return Full(
        f"{path!r}: another writer held the large-message lock for {timeout} s; nothing was "
        f"written",
        0,
    )


def large_cut(path: object, timeout: object, done: int, n: int) -> Full:
    return Full(
        f"{path!r}: the pipe stayed full for {timeout} s after {done} of {n} bytes of a "
        f"large message; the message was not delivered (readers drop the part they got and "
        f"log it)",
        0,
    )


def in_batch(exc: Full, path: object, timeout: object, sent: int) -> Full:
    """A large message of a ``put_many`` batch gave up: say so, and how much was sent."""
    return Full(f"{exc} ({batch_full(path, timeout, sent)})", sent)


def broken_pipe(path: object) -> BrokenPipeError:
    return BrokenPipeError(
        32,
        "no reader has the FIFO open any more (every reader closed or died); the message "
        "was not written. Start a reader and reopen the Writer",
        path,
    )


def linger_left(left: int, limit: float) -> str:
    """What a linger that ran out left behind (the CLI adds its own advice to it)."""
    return (
        f"{left} bytes were still in the pipe after lingering {limit:g} s for a reader to "
        "take them; they are lost unless another process has the FIFO open"
    )


def linger_timeout(path: object, left: int, limit: float) -> TimeoutError:
    """A lingering close() (``Writer(linger=)``, ``aio.Writer.aclose()``) that ran out;
    ``bytes_left`` is the count."""
    e = TimeoutError(
        errno.ETIMEDOUT,
        f"{linger_left(left, limit)} (keep a reader running, or linger longer: "
        "linger=None waits until the pipe is empty)",
        path,
    )
    e.bytes_left = left  # type: ignore[attr-defined]
    return e


def short_write(path: object, done: int, n: int) -> OSError:
    return OSError(0, f"short write of {done} of {n} bytes", path)


def closed(kind: str, path: object, reason: object) -> ClosedError:
    why = f" ({reason})" if reason else ""
    return ClosedError(f"{kind} for {path!r} is closed{why}")
