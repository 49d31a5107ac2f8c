"""What the tests share: the backends, payloads that prove integrity and order, and small
process helpers.  Test files import from here (never from conftest)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import random
import re
import struct
import types
import zlib
from collections.abc import Iterator

from fastfifo._endpoints import classes_for

_FORK = multiprocessing.get_context("fork")

#: A pure-Python install (FASTFIFO_NO_EXTENSIONS=1): only the "python" backend exists.
PURE_ONLY = os.environ.get("FASTFIFO_NO_EXTENSIONS", "") not in ("", "0")
#: The backends every ``ff`` test runs on (tests/conftest.py).
BACKENDS = ["python"] if PURE_ONLY else ["cython", "python"]


def backend_module(name: str) -> types.ModuleType:
    return importlib.import_module("fastfifo._core" if name == "cython" else "fastfifo._core_py")


def endpoints(name: str) -> types.SimpleNamespace:
    """Writer/Reader classes over the named backend (also used inside child processes)."""
    writer, reader = classes_for(backend_module(name))
    return types.SimpleNamespace(name=name, Writer=writer, Reader=reader)


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


class KillSafeFlag:
    """A one-way flag for forked children, in shared memory without a lock.

    ``multiprocessing.Event``/``Value`` take a lock in shared memory on every access, so
    a child SIGKILLed while holding it hangs everyone else: tests that kill processes use
    this (and ``KillSafeCounters``) instead.
    """

    def __init__(self) -> None:
        self._value = _FORK.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


class KillSafeCounters:
    """One counter per child in shared memory, each written only by its child (no lock)."""

    def __init__(self, n: int) -> None:
        self._slots = _FORK.RawArray("q", n)

    def add(self, i: int, k: int) -> None:
        self._slots[i] += k

    def total(self) -> int:
        return sum(self._slots)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextlib.contextmanager
def collect_losses() -> Iterator[list[str]]:
    """The texts fastfifo logs about lost data (the ``fastfifo`` logger) in the block."""
    texts: list[str] = []
    handler = _Collect(texts)
    logger = logging.getLogger("fastfifo")
    logger.addHandler(handler)
    try:
        yield texts
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def losses_logged(match: str | None = None, count: int | None = None) -> Iterator[list[str]]:
    """Collect what fastfifo logs about lost data (the ``fastfifo`` logger) in the block.

    Yields the list of texts as they come.  On leaving, at least one text (exactly
    ``count`` if given) must match ``match`` (a regex; None: any).  ``count=0``
    asserts that nothing was reported.
    """
    with collect_losses() as texts:
        yield texts
    hits = [t for t in texts if match is None or re.search(match, t)]
    if count is None:
        assert hits, f"no loss report matching {match!r}; reports: {texts}"
    else:
        assert len(hits) == count, (
            f"{len(hits)} loss reports matching {match!r}, not {count}: {texts}"
        )
