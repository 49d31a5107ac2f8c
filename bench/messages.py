"""Benchmark payloads that can be checked for exactly-once, intact delivery.

Every payload of ``size`` bytes (``size >= 16``) carries its global index as a
little-endian u64 twice, in its first and in its last 8 bytes, with a fixed
filler between (byte ``j`` is ``(j * 7 + 0x5A) & 0xFF``; ``bench/c/fifo_limit.c``
builds the same bytes).  A reader can then check, at C speed with no Python code
per message:

* every payload has the right length (a split or merged message does not);
* head index == tail index (a torn or interleaved message does not);
* the filler is intact (corruption);
* the indices received by all readers together are exactly ``0 .. total-1``
  once each (loss, duplication).

Writer ``w`` of ``n`` writers sends indices ``w * count .. (w + 1) * count - 1``.
Generating and checking are done outside the timed part of a run.
"""

from __future__ import annotations

from array import array

MIN_SIZE = 16


def filler(size: int) -> bytes:
    """The bytes between the two index copies of a ``size``-byte payload."""
    return bytes((j * 7 + 0x5A) & 0xFF for j in range(8, size - 8))


def make_payloads(first: int, count: int, size: int) -> list[bytes]:
    """Payloads with indices ``first .. first+count-1`` (built in bulk, not per message)."""
    if size < MIN_SIZE:
        raise ValueError(f"payloads must be at least {MIN_SIZE} bytes, not {size}")
    template = bytes(8) + filler(size) + bytes(8)
    blob = bytearray(template * count)
    index = array("Q", range(first, first + count))
    if index.itemsize != 8:  # pragma: no cover - every supported platform has 8-byte Q
        raise RuntimeError("array('Q') is not 8 bytes here")
    if array("H", [1]).tobytes() != b"\x01\x00":  # big-endian host: store little-endian
        index.byteswap()
    raw = index.tobytes()
    # Extended-slice assignment writes byte k of every index in one C-level call.
    for k in range(8):
        column = raw[k::8]
        blob[k::size] = column
        blob[size - 8 + k :: size] = column
    data = bytes(blob)
    return [data[i : i + size] for i in range(0, count * size, size)]


def batches(payloads: list[bytes], batch: int) -> list[list[bytes]]:
    """Split ``payloads`` into lists of at most ``batch`` messages (for ``put_many``)."""
    return [payloads[i : i + batch] for i in range(0, len(payloads), batch)]


def batch_size(size: int) -> int:
    """Messages per ``put_many`` call: 1000, fewer for big payloads (about 256 KiB per batch)."""
    return max(1, min(1000, (256 * 1024) // size))


def check_received(messages: list, size: int) -> tuple[bytes, str | None]:
    """Checks one reader's messages; returns (their indices as u64 bytes, problem or None).

    ``messages`` may hold bytes, bytearray or memoryview objects.  All the work is
    done by C-level bytes operations on one joined copy, so checking a million
    small messages takes a fraction of a second.
    """
    if not messages:
        return b"", None
    lengths = set(map(len, messages))
    if lengths != {size}:
        wrong = sorted(lengths - {size})[:3]
        return b"", f"FAIL: wrong message length(s) {wrong}, expected {size}"
    blob = b"".join(messages)
    n = len(messages)
    indices = bytearray(8 * n)
    for k in range(8):
        column = blob[k::size]
        if column != blob[size - 8 + k :: size]:
            return b"", "FAIL: torn message (head index != tail index)"
        indices[k::8] = column
    if size > MIN_SIZE:
        # Zero both index copies, then the whole stream must equal the template n times.
        scrubbed = bytearray(blob)
        zeros = bytes(n)
        for k in range(8):
            scrubbed[k::size] = zeros
            scrubbed[size - 8 + k :: size] = zeros
        if scrubbed != (bytes(8) + filler(size) + bytes(8)) * n:
            return b"", "FAIL: corrupted payload bytes"
    return bytes(indices), None


def check_indices(parts: list[bytes], total: int, ordered: bool) -> str | None:
    """Checks that the readers' index lists together hold ``0 .. total-1`` exactly once.

    ``ordered``: one writer and one reader, so the indices must also arrive in order.
    """
    got = array("Q")
    for part in parts:
        got.frombytes(part)
    if array("H", [1]).tobytes() != b"\x01\x00":  # pragma: no cover
        got.byteswap()
    expected = array("Q", range(total))
    if ordered and got == expected:
        return None
    ordered_got = array("Q", sorted(got))
    if ordered_got == expected:
        return "FAIL: messages out of order" if ordered else None
    distinct = set(got)
    missing = sum(1 for i in range(total) if i not in distinct)
    return (
        f"FAIL: {len(got)} received for {total} sent "
        f"({len(got) - len(distinct)} duplicates, {missing} missing)"
    )
