#!/usr/bin/env bash
# The long fuzzing run of the frame and line decoders (both cores, one-reader and shared
# lanes).  CI runs a ~10 s version (tests/test_fuzz.py::test_fuzz_the_decoders).
#
#   bash fuzz/run.sh                 # 10 minutes with atheris (installed if missing)
#   bash fuzz/run.sh 3600            # an hour
#   bash fuzz/run.sh 600 --known-bugs   # also the lanes/checks with known, unfixed bugs
#
# With atheris (coverage-guided): the corpus grows in fuzz/corpus/, failing inputs land in
# fuzz/artifacts/ (replay one: python tests/test_fuzz.py --replay FILE --lanes LANES).
# Without it (atheris has wheels for Linux x86_64 only, and building it needs clang):
# hypothesis-generated programs for the same time.  Either way it ends with a summary line
# "executions=... findings=...".
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
known=0
if [ "${2:-}" = "--known-bugs" ]; then known=1; fi
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
mkdir -p fuzz/corpus fuzz/artifacts

if ! "$PYTHON" -c 'import atheris' 2>/dev/null; then
    echo "==> atheris is not installed; trying: $PYTHON -m pip install atheris"
    "$PYTHON" -m pip install --quiet atheris 2>&1 | tail -3 || true
fi

log=$(mktemp "${TMPDIR:-/tmp}/fastfifo-fuzz-$(date +%Y%m%d-%H%M%S).XXXXXX.log")
if "$PYTHON" -c 'import atheris' 2>/dev/null; then
    echo "==> atheris for $seconds s (log: $log)"
    FUZZ_KNOWN_BUGS=$known "$PYTHON" fuzz/fuzz_decoder.py -max_total_time="$seconds" \
        -timeout=60 -rss_limit_mb=4096 -max_len=8192 -print_final_stats=1 \
        -artifact_prefix=fuzz/artifacts/ fuzz/corpus >"$log" 2>&1
    rc=$?
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' \
        | tail -1)
    crashes=$(ls fuzz/artifacts/ | grep -cE '^(crash|timeout|oom|leak)-' || true)
    grep -E '^(INFO|#[0-9]+ +DONE)|Finding|Error|==[0-9]+==' "$log" | tail -8
    echo "fuzz: engine=atheris executions=${execs:-?} seconds=$seconds exit=$rc" \
         "findings=$crashes (artifacts in fuzz/artifacts/) corpus=$(ls fuzz/corpus | wc -l)"
    exit $rc
fi

echo "==> atheris unavailable: hypothesis for $seconds s"
lanes_expr="t.DEFAULT_LANES + t.EXACT_LANES"
if [ "$known" = 1 ]; then
    lanes_expr="$lanes_expr + t.KNOWN_BUG_LANES"
fi
lanes_arg=(--lanes "$("$PYTHON" -c "import sys; sys.path.insert(0, 'tests'); import test_fuzz as t; print(','.join($lanes_expr))")")
"$PYTHON" tests/test_fuzz.py --hypothesis --seconds "$seconds" \
    --last-input fuzz/artifacts/last-input "${lanes_arg[@]}" 2>&1 | tee "$log" | tail -30
exit "${PIPESTATUS[0]}"
