"""Exceptions raised by fastfifo.

Each one subclasses the closest built-in so callers that already catch
``queue.Empty``, ``ValueError`` or ``OSError`` keep working.  Every message
names the FIFO path and says what to do.
"""

from __future__ import annotations

import queue

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
    """A large message was cut short (its writer died or gave up mid-message) and dropped.

    Only messages larger than one atomic write can be cut: they travel as several
    fragments.  The reader counts each in ``Reader.dropped_messages`` and goes on
    delivering the messages that follow.  Turn it into an error with
    ``warnings.simplefilter("error", fastfifo.IncompleteMessageWarning)``.
    """

    __module__ = "fastfifo"
