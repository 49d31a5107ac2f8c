#!/usr/bin/env bash
# Lint the GitHub workflow and Dependabot files with linters from PyPI, in a throwaway venv.
# actionlint is not used: its PyPI wrapper downloads the binary from GitHub at install time.
set -euo pipefail
exec </dev/null
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
venv=$(mktemp -d "${TMPDIR:-/tmp}/fastfifo-lint-workflows.XXXXXX")
trap 'rm -rf "$venv"' EXIT
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r .github/requirements/workflows.txt 2> >(grep -v "is ignored: it is neither" >&2)

"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
# --offline: no GitHub API calls (no token here); every offline audit still runs.
"$venv/bin/zizmor" --offline --persona=pedantic .github/
