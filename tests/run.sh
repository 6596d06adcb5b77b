#!/usr/bin/env bash
# The test command: sets up .venv on first use (torch, the package, the test tools) and runs pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k resume`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser tests drive Debian's chromium (never a downloaded browser).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
exec .venv/bin/python -m pytest "$@"
