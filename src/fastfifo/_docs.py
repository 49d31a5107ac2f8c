"""The docstrings of the cores' public calls, written once.

Both cores set them on their classes (``apply``), so ``help(Writer.put)`` reads the same
whichever core is loaded; tests/test_cores_agree.py checks it.
"""

from __future__ import annotations

_TIMEOUT = """timeout : float or None
    Seconds to wait; None waits for ever, 0 (or less) never waits, inf or
    anything from 1e9 up waits for ever.  NaN and non-numbers are refused."""

PUT = f"""Write one message (bytes-like).

A message up to ``max_atomic_message`` bytes goes out in one atomic
write; a larger one (frames framing, up to ``max_message_size``) as
fragments under the writers' lock.  With ``buffered=True`` small
messages are packed into the Writer's buffer and written, a full atomic
write at a time, when it fills or on ``flush()``/``close()``.

Parameters
----------
data : bytes-like
    The message.
{_TIMEOUT}
    The wait is while the pipe is full (or another writer holds the
    large-message lock, or another thread is inside this Writer).

Raises
------
Full
    The pipe stayed full until the timeout; this message was not taken.
MessageTooLargeError
    Larger than ``max_message_size`` (or, in lines framing, than one atomic
    write); nothing was written.
TypeError
    Not a bytes-like object (the message says what to do instead).
BrokenPipeError
    No reader has the FIFO open (whatever SIGPIPE's disposition is).
ClosedError
    The Writer is closed (or was closed by another thread meanwhile).
"""

PUT_MANY = """Write many messages, packed into as few atomic writes as possible.

Every message is checked before anything is written.  Each write holds
whole messages only, so concurrent writers never split one; messages
larger than one atomic write go out as fragments (see ``put``).

Raises
------
Full
    The pipe stayed full until the timeout; ``exc.sent`` messages (a
    prefix of the batch) were written, the rest were not.
MessageTooLargeError, ValueError, TypeError
    A message is too large, holds a newline in lines framing, or is not
    bytes-like (the message says which one); nothing was written.
BrokenPipeError, ClosedError
    As for ``put``.
"""

FLUSH = """Write the messages ``put()`` buffered (``buffered=True``); a no-op otherwise.

Raises
------
Full
    The pipe stayed full until the timeout; the messages stay buffered.
BrokenPipeError, ClosedError
    As for ``put``.
"""

GET = f"""Return the next message as bytes.

Parameters
----------
{_TIMEOUT}

Raises
------
Empty
    No message arrived before the timeout.
EOFError
    With ``stop_at_eof=True``: every writer has closed the FIFO.
CorruptStreamError, MessageTooLargeError
    Bad bytes, an oversized message or one this process could not allocate
    were skipped; the next call goes on.  (Iterating the Reader logs them
    instead and goes on.)
ClosedError
    The Reader is closed (or was closed by another thread meanwhile).

Notes
-----
A large message cut short by its writer is dropped, counted in
``dropped_messages`` and logged (WARNING) on the ``fastfifo`` logger.
"""

GET_MANY = """Return a list of 1 to ``max_messages`` messages.

Waits (up to ``timeout``) only while no message is available; then takes
every whole message already read plus at most one more read's worth.  A
shared reader claims at most ``max_messages`` per call (plus the fragments
of a large message it is in the middle of), so slow workers take less and
the load balances.  ``max_messages`` is any int >= 1.

Raises
------
Empty, EOFError, CorruptStreamError, MessageTooLargeError, ClosedError
    As for ``get``; an error found after some messages were collected is
    raised by the next call instead, so no message is lost to it.
"""

GET_BATCH = """As ``get_many``, but without copying: a ``MessageBatch`` of read-only views.

One object per call however many messages it holds; a view per message is
made only when you index or iterate.  The bytes stay valid while the batch
or any view from it is alive (the Reader reads into a fresh buffer
meanwhile); drop the batch to let the Reader reuse its buffer.
"""

_DOCS = {
    "WriterCore": {"put": PUT, "put_many": PUT_MANY, "flush": FLUSH},
    "ReaderCore": {"get": GET, "get_many": GET_MANY, "get_batch": GET_BATCH},
}


def apply(*classes: type) -> None:
    """Give the core's classes their docstrings."""
    for cls in classes:
        for name, doc in _DOCS.get(cls.__name__, {}).items():
            getattr(cls, name).__doc__ = doc
