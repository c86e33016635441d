"""Slow cross-check: hf-dgm's FID / KID / IS equal torch-fidelity's on the same images through the same (seeded
random, pt_inception-layout) weights file; see benchmarks/bench_image_metrics_vs_torch_fidelity.py. torch-fidelity is
an optional benchmark dependency: in this interpreter, or in the one named by HF_DGM_TORCH_FIDELITY_PYTHON."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fidelity_python():
    python = os.environ.get("HF_DGM_TORCH_FIDELITY_PYTHON") or sys.executable
    ok = subprocess.run([python, "-c", "import torch_fidelity"], capture_output=True).returncode == 0
    return python if ok else None


@pytest.mark.slow
def test_fid_kid_is_match_torch_fidelity():
    python = _fidelity_python()
    if python is None:
        pytest.skip("torch-fidelity is not installed (here, or in HF_DGM_TORCH_FIDELITY_PYTHON's interpreter)")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_image_metrics_vs_torch_fidelity import main

    rows = main(["--num-images", "60", "--kid-subset-size", "50", "--isc-splits", "5", "--fidelity-python", python])
    for key, (ours, theirs, diff, rel) in rows.items():
        assert rel < 1e-5 or diff < 1e-9, f"{key}: hf-dgm {ours!r} vs torch-fidelity {theirs!r}"
