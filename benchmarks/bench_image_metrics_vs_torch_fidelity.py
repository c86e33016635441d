"""hf-dgm's FID / KID / IS against torch-fidelity's, on the same images through the same Inception weights.

No wheel ships the real FID Inception weights (`pt_inception-2015-12-05-6726825d.pth`) and this project's machines
reach no other host, so the script builds a weights file in the exact pt_inception layout with seeded random values
(batch-norm statistics calibrated on the images so that the features are not degenerate), and feeds the SAME file to
torch-fidelity (`feature_extractor_weights_path`) and to hf-dgm (`allow_nonstandard_weights=True`, the hash check's
opt-out). Images: scikit-learn's digits (8x8, 0..16 scaled to uint8, as RGB); input1 ("generated") = the even-indexed
digits with a seeded pixel noise, input2 ("real") = the odd-indexed digits. hf-dgm runs with
`preprocessing="torch-fidelity"` (TF1 legacy bilinear resize, (x - 128) / 128), torch-fidelity with its defaults.

Findings (issue 32, item 4), 60 + 60 digits, `--kid-subset-size 50 --isc-splits 5`, torch 2.13.0 (+cpu here,
+cu130 on CPU beside torch-fidelity):

* Features: bit-identical (pool3 and logits_unbiased, max abs diff 0). They were not before hf-dgm's
  `resize_bilinear_tf1` was rewritten to TF1's own arithmetic: a weighted sum `(1 - w) a + w b` with float64
  weights left 500,388 of the 1,072,812 values of 4 images' 299x299 network input 1 ulp off (max abs 9.5e-7,
  in [-1, 1]); the network on identical input is bit-identical (layer by layer, both torch builds), but the
  1-ulp input differences grew to pool3 max abs 9.8e-4 (relative Frobenius 1.8e-4) and logits 2.7e-4 through
  the network (120 images), which made FID differ by rel 3.9e-6 and KID by 2.3e-7.
* Metrics on equal features: IS equal (IS std to 1 ulp). FID and KID differ in the 10th and 6th digits
  because `torch_fidelity.calculate_metrics` keeps the features float32: FID's mean vectors are float32
  (`np.mean` of float32; TTUR's TF code does the same) so ||mu1 - mu2||^2 is a float32 dot product (the whole
  FID difference), and KID's kernel matrices and their sums are float32. hf-dgm computes both in float64
  (pytorch-fid's convention). torch-fidelity's own metric functions given the same features cast to float64
  agree with hf-dgm to 4e-16 (FID) and 4e-14 (KID): the second table the script prints. Measured:

      metric          hf-dgm                 calculate_metrics      rel diff   float64 functions  rel diff
      FID             36.2288425470172       36.2288425359512       3.05e-10   36.2288425470172   3.92e-16
      KID mean        -0.00050855231142533   -0.000508551597595215  1.40e-06   -0.000508552311425308  4.37e-14
      KID std         0.00096718604649994    0.000967182277475533   3.90e-06   0.000967186046499918   2.31e-14
      IS mean         1.0044325090762        1.0044325090762        0          1.0044325090762    0
      IS std          0.00147051468054818    0.00147051468054818    1.92e-15   (same)             1.92e-15

torch-fidelity needs torchvision; PyPI's torchvision wheels are CUDA builds that do not import beside torch
2.13.0+cpu, so torch-fidelity may live in another interpreter: `--fidelity-python /tmp/tfid-venv/bin/python` (a venv
with torch 2.13.0 + torchvision 0.28.0 + torch-fidelity 0.4.0 from PyPI), or the env var
HF_DGM_TORCH_FIDELITY_PYTHON. Without either, torch-fidelity is imported here.

    python benchmarks/bench_image_metrics_vs_torch_fidelity.py --num-images 60 --kid-subset-size 50 \
        --isc-splits 5 --fidelity-python /tmp/tfid-venv/bin/python
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
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.utils import get_featuresdict_from_dataset

class Images(torch.utils.data.Dataset):
    def __init__(self, array):
        self.array = torch.from_numpy(array)
    def __len__(self):
        return self.array.shape[0]
    def __getitem__(self, i):
        return self.array[i]

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
input1, input2 = Images(np.load(args["input1"])), Images(np.load(args["input2"]))
out = torch_fidelity.calculate_metrics(
    input1=input1, input2=input2, cuda=False, isc=True, fid=True,
    kid=True, kid_subset_size=args["kid_subset_size"], kid_subsets=args["kid_subsets"], isc_splits=args["isc_splits"],
    feature_extractor="inception-v3-compat", feature_extractor_weights_path=args["weights"], batch_size=50,
    cache=False, verbose=False, save_cpu_ram=True,
)
# The same features again (same extractor, same batches), saved for the stage comparison, and torch-fidelity's own
# metric functions on them cast to float64 (calculate_metrics keeps them float32: mean vector and KID kernels).
fe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                 feature_extractor_weights_path=args["weights"])
feats = [get_featuresdict_from_dataset(x, fe, 50, False, True, False) for x in (input1, input2)]
np.savez(args["features"], pool3_1=feats[0]["2048"].numpy(), pool3_2=feats[1]["2048"].numpy(),
         logits_1=feats[0]["logits_unbiased"].numpy())
f1, f2 = feats[0]["2048"].double(), feats[1]["2048"].double()
out64 = fid_statistics_to_metric(fid_features_to_statistics(f1), fid_features_to_statistics(f2), False)
out64.update(kid_features_to_metric(
    f1, f2, kid_subsets=args["kid_subsets"], kid_subset_size=args["kid_subset_size"], verbose=False, rng_seed=2020,
    kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1))
out64.update(isc_features_to_metric(feats[0]["logits_unbiased"], splits=args["isc_splits"]))
print("RESULT " + json.dumps({"calculate_metrics": {k: float(v) for k, v in out.items()},
                              "float64": {k: float(v) for k, v in out64.items()}, "torch": torch.__version__}))
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


def our_features(input1, input2, weights) -> dict[str, np.ndarray]:
    """hf-dgm's pool3 / logits_unbiased, batches of 50 per set as torch-fidelity cuts them, as float32."""
    from hf_dgm.metrics.image_features import extract_features, load_fid_inception

    model = load_fid_inception(weights, preprocessing="torch-fidelity", allow_nonstandard_weights=True)
    out1 = extract_features(input1, model, batch_size=50, output=["pool3", "logits_unbiased"])
    out2 = extract_features(input2, model, batch_size=50, output="pool3")
    return {"pool3_1": out1["pool3"], "pool3_2": out2, "logits_1": out1["logits_unbiased"]}


def theirs(input1_path, input2_path, weights, features_path, args) -> dict:
    payload = json.dumps({
        "input1": input1_path, "input2": input2_path, "weights": weights, "kid_subset_size": args.kid_subset_size,
        "kid_subsets": args.kid_subsets, "isc_splits": args.isc_splits, "threads": args.threads,
        "features": features_path,
    })  # fmt: skip
    python = args.fidelity_python or os.environ.get("HF_DGM_TORCH_FIDELITY_PYTHON") or sys.executable
    proc = subprocess.run([python, "-c", FIDELITY_SIDE, payload], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"torch-fidelity run failed ({python}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _table(title, ours_values, their_values) -> dict[str, tuple[float, float, float, float]]:
    print(title)
    print(f"  {'metric':34s} {'hf-dgm':>22s} {'torch-fidelity':>22s} {'abs diff':>10s} {'rel diff':>10s}")
    rows = {}
    for key, value in ours_values.items():
        other = their_values[key]
        diff = abs(value - other)
        rel = diff / max(abs(other), 1e-300)
        rows[key] = (value, other, diff, rel)
        print(f"  {key:34s} {value:22.15g} {other:22.15g} {diff:10.2e} {rel:10.2e}")
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
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
        features_path = os.path.join(tmp, "fidelity_features.npz")
        np.save(p1, input1)
        np.save(p2, input2)
        start = time.time()
        result_theirs = theirs(p1, p2, weights, features_path, args)
        t_theirs = time.time() - start
        start = time.time()
        result_ours = ours(input1, input2, weights, args)
        t_ours = time.time() - start
        features_theirs = dict(np.load(features_path))
        features_ours = our_features(input1, input2, weights)
    print(f"{args.num_images} + {args.num_images} digits, KID {args.kid_subsets} subsets of {args.kid_subset_size}, "
          f"IS {args.isc_splits} splits; seeded random pt_inception-layout weights (same file for both); "
          f"torch {torch.__version__} here, {result_theirs['torch']} beside torch-fidelity")  # fmt: skip
    print("features (float32), hf-dgm vs torch-fidelity:")
    features = {}
    for key, theirs_value in features_theirs.items():
        ours_value = features_ours[key].astype(np.float32)
        max_abs = float(np.abs(ours_value.astype(np.float64) - theirs_value).max())
        features[key] = max_abs
        print(f"  {key:10s} {theirs_value.shape}  max abs diff {max_abs:.3e}  bit-identical: "
              f"{bool(np.array_equal(ours_value, theirs_value))}")  # fmt: skip
    rows = _table("metrics, torch_fidelity.calculate_metrics (float32 mean vector and KID kernels):",
                  result_ours, result_theirs["calculate_metrics"])  # fmt: skip
    rows64 = _table("metrics, torch-fidelity's metric functions on the same features cast to float64:",
                    result_ours, result_theirs["float64"])  # fmt: skip
    print(f"time: hf-dgm {t_ours:.1f} s, torch-fidelity {t_theirs:.1f} s (two feature passes)")
    return {"metrics": rows, "metrics_float64": rows64, "features_max_abs_diff": features,
            "torch": (torch.__version__, result_theirs["torch"])}  # fmt: skip


if __name__ == "__main__":
    main()
