#!/usr/bin/env bash
# Lint the CI and packaging configuration with linters from PyPI, in a throwaway venv:
# the GitHub workflows, dependabot.yml and pyproject.toml (including [tool.cibuildwheel]).
# actionlint is not used: its PyPI wrapper downloads the binary from GitHub at install time.
set -euo pipefail
exec </dev/null
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

# One cibuildwheel version: the action that builds the wheels and the package whose schema
# lints [tool.cibuildwheel] (Dependabot bumps them separately; this fails until they agree).
"$PYTHON" - <<'PY'
import re
import sys

workflow = open(".github/workflows/wheels.yml").read()
action = re.findall(r"uses: pypa/cibuildwheel@[0-9a-f]{40} # v(\S+)", workflow)
lint = re.findall(r"^cibuildwheel==(\S+)$", open(".github/requirements/config-lint.txt").read(), re.M)
if len(action) != 1 or lint != action:
    sys.exit(f"cibuildwheel versions differ: wheels.yml {action}, config-lint.txt {lint}")
print(f"cibuildwheel {action[0]} in wheels.yml and config-lint.txt")
PY
venv=$(mktemp -d "${TMPDIR:-/tmp}/fastfifo-lint-config.XXXXXX")
trap 'rm -rf "$venv"' EXIT
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r .github/requirements/config-lint.txt 2> >(grep -v "is ignored: it is neither" >&2)

"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
# --offline: no GitHub API calls (no token here); every offline audit still runs.
"$venv/bin/zizmor" --offline --persona=pedantic .github/
# PEP 621 metadata, [tool.setuptools] and [tool.cibuildwheel] (a misspelt option fails here,
# not in a release build on GitHub).
"$venv/bin/validate-pyproject" pyproject.toml
