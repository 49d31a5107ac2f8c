"""Exceptions raised by fastfifo.

Each one subclasses the closest built-in so callers that already catch
``queue.Empty``, ``ValueError`` or ``OSError`` keep working.  Every message
names the FIFO path and says what to do.
"""

from __future__ import annotations

import logging
import queue

#: Where fastfifo reports data it had to drop (a large message cut short by its writer,
#: bytes that are not messages skipped by an iterating reader): WARNING records, one per
#: event, each naming the FIFO.  Losses are operational events the caller cannot prevent,
#: so they are logged rather than warned (docs/guide.md, "What is lost, and when").
#: With no logging configured, Python prints WARNING records on stderr.
logger = logging.getLogger("fastfifo")


def report_loss(text: str) -> None:
    """Log one data-loss event; never raises into the receive path that found it."""
    try:
        logger.warning("%s", text)
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


class Empty(queue.Empty):
    """No message arrived before the timeout (``Reader.get``, ``get_many``)."""


class Full(queue.Full):
    """The pipe stayed full until the timeout (``Writer.put``, ``put_many``).

    ``sent`` is how many messages of the call were written before it gave up:
    those were delivered, the rest were not, so a retry should resend
    ``messages[sent:]`` only.
    """

    def __init__(self, message: str = "", sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class ClosedError(ValueError):
    """The endpoint is closed (or was closed by another thread while waiting)."""


class NotAFifoError(OSError):
    """Something other than a FIFO (a regular file, directory, symlink...) is at the path."""


class MessageTooLargeError(ValueError):
    """A message exceeds what the endpoint accepts (atomic limit or ``max_message_size``)."""


class CorruptStreamError(ValueError):
    """Bytes in the FIFO are not valid frames (a foreign writer, or a truncated message).

    The reader has skipped the bad bytes (``skipped`` counts them) and the next
    call goes on with the valid messages that follow.
    """

    def __init__(self, message: str = "", skipped: int = 0) -> None:
        super().__init__(message)
        self.skipped = skipped


class IncompleteMessageWarning(UserWarning):
    """No longer issued: kept so that code which filters it still imports.

    A large message cut short (its writer died or gave up mid-message) is now counted in
    ``Reader.dropped_messages`` and logged on the ``fastfifo`` logger (see ``logger``).
    """
