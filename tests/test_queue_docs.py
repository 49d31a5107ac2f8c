"""docs/queue-and-asyncio.md compares fastfifo.Queue with multiprocessing.Queue in two
tables; every row names the tests that check it, and those tests must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "queue-and-asyncio.md"

pytestmark = pytest.mark.skipif(not DOC.is_file(), reason="no docs/ beside tests/")


def _comparison_rows() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Coming from `multiprocessing.Queue`")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [r for r in rows if not r.startswith("| |")]  # not the header rows


def _defined_tests() -> set[str]:
    names: set[str] = set()
    for f in Path(__file__).parent.glob("test_*.py"):
        names |= set(re.findall(r"^def (test_\w+)", f.read_text(), re.M))
    return names


def test_every_row_of_the_comparison_tables_names_tests_that_exist():
    rows = _comparison_rows()
    assert len(rows) >= 25  # both tables
    defined = _defined_tests()
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row)
        assert named, f"this row names no test: {row[:80]}"
        missing = [n for n in named if n not in defined]
        assert not missing, f"{missing} (named in: {row[:60]}...) are not defined in tests/"
