#!/usr/bin/env bash
# Fresh machine -> install -> the main job: compose the pip-shipped MiniLM encoder and SmolLM2 decoder into
# Optimus, fine-tune briefly on SNLI, evaluate, and write the model folder to runs/optimus-main.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python -m hf_dgm.training.optimus.main_job --output_dir "${1:-runs/optimus-main}"
