#!/usr/bin/env bash
# Fresh machine -> install -> the default (fast) test suite. Slow tests: `pytest -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python -m pytest -m "not slow" -q --timeout 900 "$@"
