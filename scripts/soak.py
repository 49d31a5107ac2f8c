#!/usr/bin/env python3
"""Soak fastfifo: 8 writers and 4 shared readers for 10 minutes, with random SIGKILLs.

    .venv/bin/python scripts/soak.py                   # 10 minutes
    .venv/bin/python scripts/soak.py --duration 3600 --seed 42
    .venv/bin/python scripts/soak.py --help

Writers log what they are about to send and what was sent; readers log what they took,
after every claim.  At the end it checks that no message arrived twice, none was corrupt
or never sent, and that the committed messages that did not arrive are within what the
killed readers can have held (20 + 1 each), and prints the figures as one JSON line.
Exit status 0 when every check held.  The experiment itself is tests/test_soak.py
(CI runs it for 30 seconds).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
)

import test_soak

if __name__ == "__main__":
    sys.exit(test_soak.main())
