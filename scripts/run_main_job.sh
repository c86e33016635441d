#!/usr/bin/env bash
# Fresh machine -> project-local .venv (scripts/setup.sh) -> the main job: compose the pip-shipped MiniLM encoder and
# SmolLM2 decoder into Optimus, fine-tune briefly on SNLI, evaluate, and write the model folder to runs/optimus-main.
# It prints its time estimate after a few timed steps and ends with a five-line verdict (also atop samples.md).
# Usage: bash scripts/run_main_job.sh [OUTPUT_DIR] [main-job flags, e.g. --seed 1 --decoder_training lora]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m hf_dgm.training.optimus.main_job --output_dir "${1:-runs/optimus-main}" "${@:2}"
