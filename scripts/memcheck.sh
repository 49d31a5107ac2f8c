#!/usr/bin/env bash
# A short valgrind memcheck run of the compiled core (scripts/memcheck_workload.py: every
# API, error paths, shared readers, large messages, the Queue, ~150 fuzz programs).
#
#   bash scripts/memcheck.sh            # ~1-3 minutes
#
# PYTHONMALLOC=malloc sends every Python allocation through malloc, so valgrind sees
# them all.  CPython keeps objects alive at exit by design and has uninitialised-looking
# reads in its own code; those are not fastfifo's: the verdict counts only the error and
# definite-leak records whose stack passes through the extension (fastfifo/_core*.so).
# The full log is kept (its path is printed).
#
# Environment: PYTHON (default .venv/bin/python, else python3), MEMCHECK_FUZZ_INPUTS
# (fuzz programs to run, default 150).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
command -v valgrind >/dev/null || { echo "memcheck.sh: valgrind is not installed" >&2; exit 2; }
"$PYTHON" -c 'import fastfifo, sys; sys.exit(fastfifo.backend != "cython")' || {
    echo "memcheck.sh: the compiled core is not installed" >&2; exit 2; }

log=$(mktemp "${TMPDIR:-/tmp}/fastfifo-memcheck.XXXXXX.log")
supp=$(mktemp "${TMPDIR:-/tmp}/fastfifo-memcheck.XXXXXX.supp")
# CPython's own: its small-object tricks and interned/immortal objects at exit.
cat >"$supp" <<'SUPP'
{
   cpython-address-in-range
   Memcheck:Addr4
   fun:address_in_range
}
{
   cpython-address-in-range-cond
   Memcheck:Cond
   fun:address_in_range
}
{
   cpython-address-in-range-value
   Memcheck:Value8
   fun:address_in_range
}
SUPP

echo "==> valgrind memcheck: $PYTHON scripts/memcheck_workload.py (log: $log)"
start=$(date +%s)
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=40 \
    --track-origins=no --suppressions="$supp" --log-file="$log" \
    "$PYTHON" scripts/memcheck_workload.py
rc=$?
echo "==> workload exit $rc after $(( $(date +%s) - start )) s"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" "$log" \
    | sed 's/^==[0-9]*== */    /'

# Records (blank-line separated) that mention the extension are ours.
# (valgrind prefixes every line with ==PID==; without it, records are blank-line separated)
ours=$(sed 's/^==[0-9]*== \{0,1\}//' "$log" | awk 'BEGIN{RS=""} \
    /_core[.a-z0-9_-]*\.so|fastfifo\/_core|_core\.(c|pyx)|__pyx_/ \
    && /(Invalid|uninitialised|Conditional jump|definitely lost|Mismatched|free\(\)|overlap)/ \
    {n++; print "----"; print} END{exit n>0}')
found=$?
records=$(sed 's/^==[0-9]*== \{0,1\}//' "$log" | awk 'BEGIN{RS=""} \
    /(Invalid|uninitialised|Conditional jump|definitely lost|Mismatched|free\(\)|overlap)/ \
    {n++} END{print n+0}')
frames=$(grep -cE "__pyx_|fastfifo/_core" "$log")
echo "    error/leak records: $records in all; stack frames in the extension anywhere: $frames"
if [ "$found" -ne 0 ]; then
    echo "==> memcheck: errors or definite leaks in the extension:"
    echo "$ours" | sed 's/^==[0-9]*== */    /' | head -200
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "==> memcheck: the workload failed (exit $rc); see $log"
    exit "$rc"
fi
echo "==> memcheck: no errors and no definite leaks in the extension (fastfifo/_core)"
rm -f "$supp"
