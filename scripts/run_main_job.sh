#!/usr/bin/env bash
# Fresh machine -> project-local .venv (scripts/setup.sh) -> the main job: compose the pip-shipped MiniLM encoder and
# SmolLM2 decoder into Optimus, fine-tune briefly on SNLI, evaluate, and write the model folder to runs/optimus-main.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m hf_dgm.training.optimus.main_job --output_dir "${1:-runs/optimus-main}"
