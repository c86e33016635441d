#!/usr/bin/env bash
# Fresh machine -> project-local .venv (scripts/setup.sh) -> the default (fast) test suite.
# Slow tests: .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -m "not slow" -q --timeout 900 "$@"
