#!/usr/bin/env bash
# Build the Cython core with AddressSanitizer + UndefinedBehaviorSanitizer and run the test
# suite against that build.
#
#   bash scripts/sanitize.sh                 # the whole suite (both backends), ~2-4 min
#   bash scripts/sanitize.sh tests/test_fuzz.py -k decoders   # any pytest arguments
#
# How: a snapshot of the repository's files (tracked + untracked-but-not-ignored) is copied
# to a temporary directory, built there with FASTFIFO_SANITIZE=1 (setup.py then compiles
# with -fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g) and installed into a
# fresh venv; the tests run from that directory, so only the sanitized build is imported
# and the working tree's own extension is never touched.
#
# CPython itself is not instrumented, so the ASan runtime is preloaded
# (LD_PRELOAD=$(gcc -print-file-name=libasan.so)); PYTHONMALLOC=malloc routes Python's
# allocations through malloc so ASan sees them; leak detection is off (CPython keeps many
# objects alive at exit by design; scripts/memcheck.sh and tests/test_leaks.py cover leaks,
# the latter checking RSS only outside sanitizer runs: ASan's quarantine holds freed memory).
# Any ASan report aborts the process; UBSan halts on the first error with a stack trace.
#
# Environment knobs:
#   PYTHON=python3.12     interpreter for the venv (default: python3)
#   SANITIZE_KEEP=1       keep the temporary directory (its path is printed)
set -euo pipefail
exec </dev/null

PYTHON=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fastfifo-sanitize.XXXXXX")
cleanup() {
    if [ "${SANITIZE_KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
if [ ! -e "$libasan" ] || [ ! -e "$libubsan" ]; then
    echo "sanitize.sh: gcc has no libasan/libubsan here (install gcc's sanitizer runtimes)" >&2
    exit 2
fi

echo "==> snapshot of $repo -> $work/src-tree"
mkdir -p "$work/src-tree"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
    | grep -v -e '^bench/results/' \
    | tar -cf - -T -) | tar -xf - -C "$work/src-tree"
rm -f "$work"/src-tree/src/fastfifo/*.so "$work"/src-tree/src/fastfifo/_core.c

echo "==> venv with build and test tools"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
pipq() { "$py" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }; }
pipq "setuptools>=77" "Cython>=3.1,<4"

echo "==> build with FASTFIFO_SANITIZE=1 (and install the test extra)"
(cd "$work/src-tree" && FASTFIFO_SANITIZE=1 "$py" -m pip install --quiet \
    --disable-pip-version-check --no-build-isolation ".[test]" 2>&1 \
    | { grep -v -e "is ignored: it is neither a file nor a directory" || true; })
# (not imported here: without the preloaded runtime an ASan extension refuses to load)
so=$(ls "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"/fastfifo/_core*.so)
echo "extension: $so"
if ! ldd "$so" | grep -q libasan; then
    echo "sanitize.sh: the extension is not linked with libasan; FASTFIFO_SANITIZE was ignored" >&2
    exit 2
fi

# libstdc++ too: C++ extensions the tests load (matplotlib's kiwisolver, for the bench plot)
# throw exceptions, and ASan's __cxa_throw interceptor must find the real one at start-up.
libstdcxx=$(gcc -print-file-name=libstdc++.so)
export LD_PRELOAD="$libasan${libstdcxx:+:$libstdcxx}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1
export FASTFIFO_REQUIRE_CYTHON=1

# The tests run from a directory outside any source tree: `import fastfifo` is the
# sanitized install.  The fuzz harness (fuzz/) comes along for tests/test_fuzz.py.
cd "$work/src-tree"
rm -rf src
"$py" -c 'import fastfifo; assert fastfifo.backend == "cython", fastfifo.backend; print("backend:", fastfifo.backend, fastfifo.__file__)'

if [ "$#" -eq 0 ]; then
    set -- tests
fi
echo "==> pytest $* (ASan+UBSan)"
start=$(date +%s)
set +e
"$py" -m pytest -p no:cacheprovider -q "$@"
rc=$?
set -e
echo "==> sanitizers: pytest exit $rc after $(( $(date +%s) - start )) s"
exit $rc
