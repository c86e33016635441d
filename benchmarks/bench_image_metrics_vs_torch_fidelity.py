"""hf-dgm's FID / KID / IS against torch-fidelity's, on the same images through the same Inception weights.

No wheel ships the real FID Inception weights (`pt_inception-2015-12-05-6726825d.pth`) and this project's machines
reach no other host, so the script builds a weights file in the exact pt_inception layout with seeded random values
(batch-norm statistics calibrated on the images so that the features are not degenerate), and feeds the SAME file to
torch-fidelity (`feature_extractor_weights_path`) and to hf-dgm (`allow_nonstandard_weights=True`, the hash check's
opt-out). Images: scikit-learn's digits (8x8, 0..16 scaled to uint8, as RGB); input1 ("generated") = the even-indexed
digits with a seeded pixel noise, input2 ("real") = the odd-indexed digits. hf-dgm runs with
`preprocessing="torch-fidelity"` (TF1 legacy bilinear resize, (x - 128) / 128), torch-fidelity with its defaults.

torch-fidelity needs torchvision; PyPI's torchvision wheels are CUDA builds that do not import beside torch
2.13.0+cpu, so torch-fidelity may live in another interpreter: `--fidelity-python /tmp/tfid-venv/bin/python` (a venv
with torch 2.13.0 + torchvision 0.28.0 + torch-fidelity 0.4.0 from PyPI), or the env var
HF_DGM_TORCH_FIDELITY_PYTHON. Without either, torch-fidelity is imported here.

    python benchmarks/bench_image_metrics_vs_torch_fidelity.py --fidelity-python /tmp/tfid-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

FIDELITY_SIDE = r"""
import json, sys
import numpy as np, torch, torch_fidelity

class Images(torch.utils.data.Dataset):
    def __init__(self, array):
        self.array = torch.from_numpy(array)
    def __len__(self):
        return self.array.shape[0]
    def __getitem__(self, i):
        return self.array[i]

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
out = torch_fidelity.calculate_metrics(
    input1=Images(np.load(args["input1"])), input2=Images(np.load(args["input2"])), cuda=False, isc=True, fid=True,
    kid=True, kid_subset_size=args["kid_subset_size"], kid_subsets=args["kid_subsets"], isc_splits=args["isc_splits"],
    feature_extractor="inception-v3-compat", feature_extractor_weights_path=args["weights"], batch_size=50,
    cache=False, verbose=False, save_cpu_ram=True,
)
print("RESULT " + json.dumps({k: float(v) for k, v in out.items()}))
"""


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits().images  # (1797, 8, 8) in 0..16
    u8 = np.clip(np.round(digits * (255.0 / 16.0)), 0, 255)
    rng = np.random.RandomState(seed)
    input1 = np.clip(u8[0::2][:n] + rng.normal(0, 24, size=u8[0::2][:n].shape), 0, 255).round()
    input2 = u8[1::2][:n]
    to_rgb = lambda a: np.repeat(a.astype(np.uint8)[:, None], 3, axis=1)  # noqa: E731
    return to_rgb(input1), to_rgb(input2)


def make_weights(path: str, calibration: np.ndarray, seed: int = 0) -> None:
    """pt_inception layout, seeded random conv/fc weights, batch-norm statistics set from the calibration images."""
    import torch

    from hf_dgm.metrics.image_features import FIDInceptionV3, images_to_tensor

    torch.manual_seed(seed)
    model = FIDInceptionV3(preprocessing="torch-fidelity")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration pass
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    model.train()
    with torch.no_grad():
        model(images_to_tensor(calibration))
    model.eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)


def ours(input1, input2, weights, args) -> dict[str, float]:
    from hf_dgm.metrics.image_features import compute_fid, compute_inception_score, compute_kid

    common = dict(feature_extractor=weights, preprocessing="torch-fidelity", allow_nonstandard_weights=True,
                  batch_size=50)  # fmt: skip
    fid = compute_fid(input1, input2, **common)
    kid_mean, kid_std = compute_kid(
        input1, input2, num_subsets=args.kid_subsets, subset_size=args.kid_subset_size, **common
    )
    is_mean, is_std = compute_inception_score(input1, splits=args.isc_splits, **common)
    return {
        "frechet_inception_distance": fid,
        "kernel_inception_distance_mean": kid_mean,
        "kernel_inception_distance_std": kid_std,
        "inception_score_mean": is_mean,
        "inception_score_std": is_std,
    }


def theirs(input1_path, input2_path, weights, args) -> dict[str, float]:
    payload = json.dumps({
        "input1": input1_path, "input2": input2_path, "weights": weights, "kid_subset_size": args.kid_subset_size,
        "kid_subsets": args.kid_subsets, "isc_splits": args.isc_splits, "threads": args.threads,
    })  # fmt: skip
    python = args.fidelity_python or os.environ.get("HF_DGM_TORCH_FIDELITY_PYTHON") or sys.executable
    proc = subprocess.run([python, "-c", FIDELITY_SIDE, payload], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"torch-fidelity run failed ({python}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=150)
    parser.add_argument("--kid-subset-size", type=int, default=100)
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--isc-splits", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fidelity-python", default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    input1, input2 = make_images(args.num_images)
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "pt_inception-2015-12-05-6726825d.pth")  # the layout, NOT the real weights
        make_weights(weights, np.concatenate([input1, input2]))
        p1, p2 = os.path.join(tmp, "input1.npy"), os.path.join(tmp, "input2.npy")
        np.save(p1, input1)
        np.save(p2, input2)
        start = time.time()
        result_theirs = theirs(p1, p2, weights, args)
        t_theirs = time.time() - start
        start = time.time()
        result_ours = ours(input1, input2, weights, args)
        t_ours = time.time() - start
    print(f"{args.num_images} + {args.num_images} digits, KID {args.kid_subsets} subsets of {args.kid_subset_size}, "
          f"IS {args.isc_splits} splits; seeded random pt_inception-layout weights (same file for both)")  # fmt: skip
    print(f"{'metric':34s} {'hf-dgm':>22s} {'torch-fidelity':>22s} {'abs diff':>10s} {'rel diff':>10s}")
    rows = {}
    for key, value in result_ours.items():
        other = result_theirs[key]
        diff = abs(value - other)
        rel = diff / max(abs(other), 1e-300)
        rows[key] = (value, other, diff, rel)
        print(f"{key:34s} {value:22.15g} {other:22.15g} {diff:10.2e} {rel:10.2e}")
    print(f"time: hf-dgm {t_ours:.1f} s, torch-fidelity {t_theirs:.1f} s")
    return rows


if __name__ == "__main__":
    main()
