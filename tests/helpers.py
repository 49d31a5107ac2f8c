"""Payloads that prove integrity and order, and small process helpers for the tests."""

from __future__ import annotations

import random
import struct
import zlib

_HEAD = struct.Struct("<HII")  # writer id, sequence number, crc32 of the body


def make_message(writer: int, seq: int, size: int) -> bytes:
    """A message of exactly ``size`` bytes (>= 10) that says who sent it and checks itself."""
    body = random.Random(writer * 1_000_003 + seq).randbytes(size - _HEAD.size)
    return _HEAD.pack(writer, seq, zlib.crc32(body)) + body


def check_message(msg: bytes) -> tuple[int, int]:
    """(writer, seq) of an intact message; AssertionError if it was torn or mixed."""
    writer, seq, crc = _HEAD.unpack_from(msg)
    assert zlib.crc32(msg[_HEAD.size :]) == crc, f"corrupt message from writer {writer} #{seq}"
    return writer, seq


def sizes(writer: int, count: int, largest: int) -> list[int]:
    rng = random.Random(writer)
    return [rng.randint(_HEAD.size, largest) for _ in range(count)]
