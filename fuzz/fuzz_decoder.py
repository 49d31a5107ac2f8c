#!/usr/bin/env python3
"""Coverage-guided fuzzing of fastfifo's frame and line decoders with atheris (libFuzzer).

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_decoder.py -max_total_time=600 fuzz/corpus
    bash fuzz/run.sh 600            # the same, with the corpus and artifacts set up

Each input is a *program* (see tests/test_fuzz.py, which holds the harness so the test
suite can run it from an installed wheel): frames, lines, fragments of large messages,
garbage and forged headers, cut into chunks at input-chosen places.  The chunks are
written into real FIFOs, and a Reader per lane is drained with ``timeout=0`` after each
one; the harness checks the decoded events against the program (strict programs, lines)
or against invariants (raw programs), and the compiled core against the pure one.

Coverage: atheris instruments the Python code it imports here (the pure-Python core,
the endpoints and the harness), so the fuzzer is guided by the pure twin's branches;
the compiled core runs the same inputs and must report the same events.  (Instrumenting
the C extension itself needs clang's -fsanitize=fuzzer-no-link; gcc has no equivalent.)

Environment:
    FUZZ_LANES=cython,python,...   lanes to run (default: tests/test_fuzz.DEFAULT_LANES
                                   and EXACT_LANES)
    FUZZ_KNOWN_BUGS=1              also the lanes with known, unfixed bugs (KNOWN_BUG_LANES)
    FUZZ_HANG_SECONDS=5            a call with timeout=0 slower than this is a hang
A failing input is written by libFuzzer as crash-<sha1> (see -artifact_prefix); replay
it with ``python tests/test_fuzz.py --replay FILE --lanes ...``.
"""

from __future__ import annotations

import os
import sys

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

with atheris.instrument_imports(include=["fastfifo", "test_fuzz"]):
    import test_fuzz

    import fastfifo
    import fastfifo._core_py  # noqa: F401

KNOWN = os.environ.get("FUZZ_KNOWN_BUGS", "") not in ("", "0")
LANES = [x for x in os.environ.get("FUZZ_LANES", "").split(",") if x] or (
    test_fuzz.DEFAULT_LANES + test_fuzz.EXACT_LANES + (test_fuzz.KNOWN_BUG_LANES if KNOWN else [])
)
test_fuzz._set_hang_seconds(float(os.environ.get("FUZZ_HANG_SECONDS", "5")))


def TestOneInput(data: bytes) -> None:
    test_fuzz.run(data, LANES, watchdog=True)


def write_seeds(directory: str) -> None:
    """Start an empty corpus from the harness's seed programs."""
    os.makedirs(directory, exist_ok=True)
    if not os.listdir(directory):
        for i, seed in enumerate(test_fuzz.SEEDS + [r[1] for r in test_fuzz.REGRESSIONS]):
            with open(os.path.join(directory, f"seed-{i}"), "wb") as f:
                f.write(seed)


def main() -> None:
    for arg in sys.argv[1:]:
        if not arg.startswith("-") and not os.path.isfile(arg):
            write_seeds(arg)  # a corpus directory
    print(f"fuzz_decoder: lanes={','.join(LANES)} known_bugs={KNOWN}", flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
